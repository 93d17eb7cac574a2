/* Unit tests for the state store (src/daemon/state.c): the name index, recording results with their
 * first-seen times, the state file's JSON both ways, the atomic write and loading with its
 * all-or-nothing rule; and its database (src/daemon/store.c): rows both ways through the
 * writer thread, the import of a JSON state, a corrupt database moved aside. Results are built by
 * hand and judged at fixed times. */
#include "cmfixture.h"
#include "cmtest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sqlite3.h>
#include <unistd.h>
#include <uv.h>

#include "certmon/analysis/analyze.h"
#include "certmon/base/error.h"
#include "certmon/base/text.h"
#include "certmon/probe/posture.h"
#include "certmon/probe/probe.h"
#include "certmon/daemon/state.h"
#include "certmon/daemon/store.h"
#include "certmon/probe/x509.h"

#define DAY 86400
#define NOW ((time_t)1800000000) /* 2027-01-15T08:00:00Z */

static const struct cm_policy def = CM_POLICY_DEFAULT;

/* ---- Helpers ---- */

static uint64_t rnd_state = 0x2545f4914f6cdd1dULL;

static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

static void shuffle(size_t *v, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = rnd() % i, t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

/* A successful probe of example.com:443: a trusted two-certificate chain matching the name,
 * the leaf issued 100 days ago and valid until NOW + leaf_days (a lifetime long enough that
 * the fixed warn_days and crit_days are the expiry thresholds, not a share of it). No OCSP
 * staple (an info finding). Timings with more digits than a report keeps. */
static struct cm_probe_result *healthy(int64_t leaf_days)
{
    struct cm_probe_result *r = cm_tf_endpoint(NOW);

    r->dns_ms = 1.23456789;
    r->handshake_ms = 10.987654321;
    r->total_ms = 14.7213;
    cm_tf_fill_cert(&r->tls.chain.certs[0], "CN=example.com", "CN=Example CA", NOW - 100 * DAY,
              NOW + leaf_days * DAY, false);
    cm_tf_fill_cert(&r->tls.chain.certs[1], "CN=Example CA", "CN=Example Root", NOW - 100 * DAY,
              NOW + 1825LL * DAY, true);
    return r;
}

/* A probe that failed before any certificate arrived. */
static struct cm_probe_result *failed(enum cm_err_kind kind, const char *message)
{
    struct cm_probe_result *r = calloc(1, sizeof(*r));

    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    r->target = cm_tf_strdup("example.com:443");
    r->host = cm_tf_strdup("example.com");
    r->port = 443;
    r->verify_name = cm_tf_strdup("example.com");
    r->error_kind = kind;
    r->error_phase = CM_PHASE_CONNECT;
    r->error_message = cm_tf_strdup(message);
    r->dns_ms = r->connect_ms = r->starttls_ms = r->handshake_ms = r->total_ms = -1;
    return r;
}

/* Analyses res at now under the default policy and records it into e. */
static int record_at(struct cm_state_entry *e, const struct cm_probe_result *res,
                     const struct cm_labels *labels, time_t now, bool *changed, enum cm_status *old)
{
    struct cm_findings f = {0};
    int rc;

    CU_ASSERT_EQUAL_FATAL(cm_analyze(res, &def, now, &f), 0);
    rc = cm_state_record(e, res, &f, labels, now, changed, old);
    cm_findings_clear(&f);
    return rc;
}

/* Records res and frees it; checks the call succeeded. */
static void record(struct cm_state_entry *e, struct cm_probe_result *res, time_t now, bool *changed,
                   enum cm_status *old)
{
    bool ch;
    enum cm_status o;

    CU_ASSERT_EQUAL(record_at(e, res, NULL, now, changed ? changed : &ch, old ? old : &o), 0);
    cm_probe_result_free(res);
}

/* When e first saw finding id at pos, or -1 when it does not hold it. */
static int64_t seen_at(const struct cm_state_entry *e, const char *id, int pos)
{
    for (size_t i = 0; i < e->seen_count; i++)
        if (e->seen[i].position == pos && !strcmp(e->seen[i].id, id))
            return e->seen[i].first_seen;
    return -1;
}

static const char *rfc3339(int64_t t)
{
    static char buf[4][32];
    static int k;

    k = (k + 1) % 4;
    cm_time_rfc3339(t, buf[k], sizeof(buf[k]));
    return buf[k];
}

/* The entry's report as JSON text (unpacked when packed): valid until four more calls; NULL
 * when it has none. */
static const char *rtext(const struct cm_state_entry *e)
{
    static char *ring[4];
    static unsigned k;
    char *t = NULL;
    size_t len;

    CU_ASSERT_EQUAL_FATAL(cm_state_report_text(e->report, &t, &len), 0);
    k = (k + 1) % 4;
    free(ring[k]);
    ring[k] = t;
    return t;
}

static json_t *parse_report(const struct cm_state_entry *e)
{
    json_error_t je;
    json_t *j;

    CU_ASSERT_PTR_NOT_NULL_FATAL(e->report);
    j = json_loads(rtext(e), 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    return j;
}

/* The finding of a parsed report with that id (and position, unless pos < -1). */
static json_t *report_finding(json_t *rep, const char *id, int pos)
{
    json_t *fs = json_object_get(rep, "findings"), *f;
    size_t i;

    json_array_foreach(fs, i, f)
    {
        json_t *p = json_object_get(f, "position");
        if (strcmp(json_string_value(json_object_get(f, "id")), id))
            continue;
        if (pos < -1 || (pos == -1 ? json_is_null(p) : json_integer_value(p) == pos))
            return f;
    }
    return NULL;
}

/* A scratch directory for this run, removed (with what the tests left) at exit. */
static char tmpdir[64];

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int k;

    k = (k + 1) % 4;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", tmpdir, name);
    return buf[k];
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fputs(text, fp);
    CU_ASSERT_EQUAL(fclose(fp), 0);
}

/* The whole file, malloc'd and NUL-terminated; *len gets its size. NULL when unreadable. */
static char *read_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0, got;

    if (!fp)
        return NULL;
    do {
        if (n + 4096 + 1 > cap) {
            char *nb = realloc(buf, cap = 2 * (n + 4096 + 1));
            CU_ASSERT_PTR_NOT_NULL_FATAL(nb);
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n - 1, fp);
        n += got;
    } while (got > 0);
    fclose(fp);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* The names in dir (without . and ..), sorted, separated by spaces. */
static void list_dir(const char *dir, char *out, size_t len)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char *names[64];
    size_t n = 0, used = 0;

    out[0] = '\0';
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    while ((de = readdir(d)) && n < 64)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            names[n++] = cm_tf_strdup(de->d_name);
    closedir(d);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++) {
        if (used < len)
            used += (size_t)snprintf(out + used, len - used, "%s%s", i ? " " : "", names[i]);
        free(names[i]);
    }
}

static void rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[1024];

    if (!d)
        return;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            struct stat st;
            snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                rm_rf(p);
            else
                unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

static uv_loop_t loop; /* the store's writer reports to it */

static int suite_init(void)
{
    strcpy(tmpdir, "/tmp/cm-test-state-XXXXXX");
    return mkdtemp(tmpdir) && uv_loop_init(&loop) == 0 ? 0 : -1;
}

static int suite_clean(void)
{
    rm_rf(tmpdir);
    /* Every store closed its handle. */
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

/* A fresh subdirectory of the scratch directory. */
static const char *fresh_dir(const char *name)
{
    const char *p = tmp_path(name);

    rm_rf(p);
    CU_ASSERT_EQUAL_FATAL(mkdir(p, 0700), 0);
    return p;
}

static struct cm_state *new_state(void)
{
    struct cm_state *s = NULL;

    CU_ASSERT_EQUAL_FATAL(cm_state_new(&s), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    return s;
}

static size_t count_of(const struct cm_state *s)
{
    size_t n = 0;

    cm_state_entries(s, &n);
    return n;
}

/* ---- The index ---- */

/* Every name is found exactly when present, and the dense array and slots agree. */
static void check_index(struct cm_state *s, char names[][40], const bool *present, size_t n,
                        unsigned line)
{
    size_t count, want = 0;
    struct cm_state_entry *const *es = cm_state_entries(s, &count);

    for (size_t i = 0; i < n; i++) {
        struct cm_state_entry *e = cm_state_get(s, names[i]);
        want += present[i];
        if (present[i] ? !e || strcmp(e->name, names[i]) : e != NULL) {
            char msg[128];
            snprintf(msg, sizeof(msg), "%.39s is %s", names[i], present[i] ? "found" : "gone");
            CU_assertImplementation(CU_FALSE, line, msg, __FILE__, "", CU_FALSE);
            return;
        }
    }
    expect_int(count, want, "entries", line);
    for (size_t i = 0; i < count; i++)
        if (es[i]->slot != i || cm_state_get(s, es[i]->name) != es[i]) {
            CU_assertImplementation(CU_FALSE, line, "entries[i] has slot i and is found", __FILE__,
                                    "", CU_FALSE);
            return;
        }
}

/* Heap bytes an endpoint's entry holds before its first result (malloc's chunk overhead and
 * the state's index included), as at start with 100,000 configured targets: printed, glibc
 * decides the rounding (issue 14). */
static void test_entry_memory(void)
{
    enum { N = 10000 };
    struct cm_state *s = new_state();
    struct cm_state_entry *e;
    size_t before;
    char name[64];

    before = cm_th_heap_used();
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "host-%05d.example.com:443", i);
        CU_ASSERT_PTR_NOT_NULL_FATAL(cm_state_put(s, name, NULL));
    }
    cm_th_print_heap("an endpoint's empty entry", before, N);
    e = cm_state_get(s, "host-09999.example.com:443");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    EXPECT_STR(e->owner, "host-09999.example.com:443");
    CU_ASSERT_PTR_EQUAL(e->owner, e->name); /* one text for an endpoint's name and owner */
    /* Another owner is its own text, in the same block. */
    e = cm_state_put(s, "file:/etc/ssl/a.pem", "certs");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    EXPECT_STR(e->name, "file:/etc/ssl/a.pem");
    EXPECT_STR(e->owner, "certs");
    cm_state_free(s);
}

static void test_put_get_remove(void)
{
    enum { N = 5000 };
    static char names[N][40];
    static bool present[N];
    static struct cm_state_entry *ptr[N];
    static size_t order[N];
    struct cm_state *s = new_state();

    EXPECT_INT(count_of(s), 0);
    CU_ASSERT_PTR_NULL(cm_state_get(s, "example.com:443"));
    for (size_t i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "target-%zu.example.com:443", i);
        ptr[i] = cm_state_put(s, names[i], i % 2 ? "owner" : NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ptr[i]);
        EXPECT_STR(ptr[i]->name, names[i]);
        EXPECT_STR(ptr[i]->owner, i % 2 ? "owner" : names[i]);
        CU_ASSERT_FALSE(ptr[i]->has_status);
        CU_ASSERT_PTR_NULL(ptr[i]->report);
        present[i] = true;
        order[i] = i;
    }
    EXPECT_INT(count_of(s), N);
    check_index(s, names, present, N, __LINE__);
    /* Putting a name again returns its entry; the owner given then is ignored. */
    for (size_t i = 0; i < N; i += 7)
        CU_ASSERT_PTR_EQUAL(cm_state_put(s, names[i], "other"), ptr[i]);
    EXPECT_INT(count_of(s), N);
    CU_ASSERT_PTR_NULL(cm_state_get(s, "target-5000.example.com:443"));
    CU_ASSERT_PTR_NULL(cm_state_get(s, ""));

    /* Removing in random order: after each removal the name is gone and the entry moved into
     * its slot is still found; every so often every name is checked. */
    shuffle(order, N);
    for (size_t k = 0; k < N; k++) {
        size_t i = order[k], slot = ptr[i]->slot, count;
        struct cm_state_entry *const *es;
        CU_ASSERT_PTR_EQUAL_FATAL(cm_state_get(s, names[i]), ptr[i]);
        cm_state_remove(s, ptr[i]);
        present[i] = false;
        CU_ASSERT_PTR_NULL(cm_state_get(s, names[i]));
        es = cm_state_entries(s, &count);
        EXPECT_INT(count, N - k - 1);
        if (slot < count) {
            CU_ASSERT_EQUAL(es[slot]->slot, slot);
            CU_ASSERT_PTR_EQUAL(cm_state_get(s, es[slot]->name), es[slot]);
        }
        if (k % 250 == 0 || k > N - 20)
            check_index(s, names, present, N, __LINE__);
    }
    EXPECT_INT(count_of(s), 0);
    CU_ASSERT_PTR_NULL(cm_state_get(s, names[0]));
    /* An emptied state takes names again. */
    for (size_t i = 0; i < 100; i++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(cm_state_put(s, names[i], NULL));
        present[i] = true;
    }
    check_index(s, names, present, N, __LINE__);
    cm_state_free(s);
    cm_state_free(NULL);
}

/* Random puts and removes over a small name pool, against a model: a table that stays small
 * wraps its probe sequences around its end, which the backward shift must handle. */
static void test_churn(void)
{
    enum { N = 60 };
    static char names[N][40];
    bool present[N] = {false};
    struct cm_state *s = new_state();

    for (size_t i = 0; i < N; i++)
        snprintf(names[i], sizeof(names[i]), "n%zu", i);
    for (unsigned op = 0; op < 30000; op++) {
        size_t i = rnd() % N;
        if (present[i]) {
            cm_state_remove(s, cm_state_get(s, names[i]));
            present[i] = false;
        } else {
            CU_ASSERT_PTR_NOT_NULL_FATAL(cm_state_put(s, names[i], NULL));
            present[i] = true;
        }
        if (op % 7 == 0)
            check_index(s, names, present, N, __LINE__);
    }
    check_index(s, names, present, N, __LINE__);
    cm_state_free(s);
}

/* ---- Recording ---- */

static void test_record_first(void)
{
    struct cm_state *s = new_state();
    struct cm_state_entry *e = cm_state_put(s, "example.com:443", NULL);
    char *keys[] = {"env", "team"}, *values[] = {"prod", "web \"edge\""};
    struct cm_labels labels = {keys, values, 2};
    struct cm_probe_result *r = healthy(20); /* cert.expiring: warning */
    bool changed = false;
    enum cm_status old = CM_STATUS_UNKNOWN;
    json_t *rep, *f;
    size_t i;

    CU_ASSERT_EQUAL(record_at(e, r, &labels, NOW, &changed, &old), 0);
    cm_probe_result_free(r);
    CU_ASSERT_TRUE(changed);
    CU_ASSERT_TRUE(e->has_status);
    EXPECT_INT(e->status, CM_STATUS_WARNING);
    EXPECT_INT(e->status_since, NOW);
    EXPECT_INT(e->last_probe, NOW);
    EXPECT_INT(e->last_success, NOW);
    EXPECT_INT(e->failures, 0);
    CU_ASSERT_TRUE(e->seen_count >= 2);
    for (i = 0; i < e->seen_count; i++)
        EXPECT_INT(e->seen[i].first_seen, NOW);
    EXPECT_INT(seen_at(e, "cert.expiring", 0), NOW);
    EXPECT_INT(seen_at(e, "ocsp.not_stapled", 0), NOW);

    rep = parse_report(e);
    EXPECT_STR(json_string_value(json_object_get(rep, "target")), "example.com:443");
    EXPECT_STR(json_string_value(json_object_get(rep, "status")), "warning");
    EXPECT_STR(json_string_value(json_object_get(json_object_get(rep, "labels"), "env")), "prod");
    EXPECT_STR(json_string_value(json_object_get(json_object_get(rep, "labels"), "team")),
               "web \"edge\"");
    EXPECT_INT(json_object_size(json_object_get(rep, "labels")), 2);
    EXPECT_STR(json_string_value(json_object_get(rep, "last_probe")), "2027-01-15T08:00:00Z");
    EXPECT_STR(json_string_value(json_object_get(rep, "last_success")), rfc3339(NOW));
    EXPECT_STR(json_string_value(json_object_get(rep, "status_since")), rfc3339(NOW));
    CU_ASSERT_TRUE(json_is_integer(json_object_get(rep, "failures")));
    EXPECT_INT(json_integer_value(json_object_get(rep, "failures")), 0);
    EXPECT_INT(json_array_size(json_object_get(rep, "findings")), e->seen_count);
    json_array_foreach(json_object_get(rep, "findings"), i, f)
        EXPECT_STR(json_string_value(json_object_get(f, "first_seen")), rfc3339(NOW));
    CU_ASSERT_PTR_NOT_NULL(report_finding(rep, "cert.expiring", 0));
    /* Numbers stay short in the text (1.235 is not exact in binary). */
    CU_ASSERT_PTR_NOT_NULL(strstr(rtext(e), "\"dns\":1.235,"));
    json_decref(rep);

    /* Without labels the report still has the key, empty. */
    record(e, healthy(20), NOW + 10, &changed, &old);
    CU_ASSERT_FALSE(changed);
    EXPECT_INT(old, CM_STATUS_WARNING);
    rep = parse_report(e);
    CU_ASSERT_TRUE(json_is_object(json_object_get(rep, "labels")));
    EXPECT_INT(json_object_size(json_object_get(rep, "labels")), 0);
    json_decref(rep);
    cm_state_free(s);
}

/* healthy(20) with a leaf that does not match the name: host.mismatch (critical) too. */
static struct cm_probe_result *mismatched(void)
{
    struct cm_probe_result *r = healthy(20);

    r->tls.verify.hostname_match = false;
    return r;
}

static void expect_report_first_seen(const struct cm_state_entry *e, const char *id, int pos,
                                     int64_t want, unsigned line)
{
    json_t *rep = parse_report(e), *f = report_finding(rep, id, pos);

    CU_assertImplementation(f != NULL, line, "the report has the finding", __FILE__, "", CU_FALSE);
    if (f)
        expect_str(json_string_value(json_object_get(f, "first_seen")), rfc3339(want), id, line);
    json_decref(rep);
}

#define EXPECT_FIRST_SEEN(e, id, pos, want)                                                        \
    do {                                                                                           \
        expect_int(seen_at((e), (id), (pos)), (want), id, __LINE__);                               \
        expect_report_first_seen((e), (id), (pos), (want), __LINE__);                              \
    } while (0)

static void test_record_first_seen(void)
{
    struct cm_state *s = new_state();
    struct cm_state_entry *e = cm_state_put(s, "example.com:443", NULL);
    bool changed;
    enum cm_status old;

    record(e, healthy(20), NOW, &changed, &old);
    CU_ASSERT_TRUE(changed);
    EXPECT_INT(seen_at(e, "host.mismatch", 0), -1);

    /* 100 s later a new finding joins: it starts then, the old one keeps its time. */
    record(e, mismatched(), NOW + 100, &changed, &old);
    CU_ASSERT_TRUE(changed);
    EXPECT_INT(old, CM_STATUS_WARNING);
    EXPECT_INT(e->status, CM_STATUS_CRITICAL);
    EXPECT_INT(e->status_since, NOW + 100);
    EXPECT_FIRST_SEEN(e, "cert.expiring", 0, NOW);
    EXPECT_FIRST_SEEN(e, "ocsp.not_stapled", 0, NOW);
    EXPECT_FIRST_SEEN(e, "host.mismatch", 0, NOW + 100);

    /* Staying: the times stay. */
    record(e, mismatched(), NOW + 150, &changed, &old);
    CU_ASSERT_FALSE(changed);
    EXPECT_INT(old, CM_STATUS_CRITICAL);
    EXPECT_INT(e->status_since, NOW + 100);
    EXPECT_FIRST_SEEN(e, "cert.expiring", 0, NOW);
    EXPECT_FIRST_SEEN(e, "host.mismatch", 0, NOW + 100);

    /* Gone, then back: it starts again. */
    record(e, healthy(20), NOW + 200, &changed, &old);
    CU_ASSERT_TRUE(changed);
    EXPECT_INT(old, CM_STATUS_CRITICAL);
    EXPECT_INT(seen_at(e, "host.mismatch", 0), -1);
    EXPECT_FIRST_SEEN(e, "cert.expiring", 0, NOW);
    record(e, mismatched(), NOW + 300, &changed, &old);
    EXPECT_FIRST_SEEN(e, "host.mismatch", 0, NOW + 300);
    EXPECT_FIRST_SEEN(e, "cert.expiring", 0, NOW);

    /* The same id at another position is another finding. */
    {
        struct cm_probe_result *r = healthy(20);
        r->tls.chain.certs[1].not_after = NOW + 300 + 5 * DAY;
        record(e, r, NOW + 400, &changed, &old);
    }
    EXPECT_FIRST_SEEN(e, "cert.expiring", 0, NOW);
    EXPECT_FIRST_SEEN(e, "cert.expiring", 1, NOW + 400);

    /* A result without findings forgets them all. */
    {
        struct cm_probe_result *r = healthy(90);
        r->tls.ocsp = (struct cm_ocsp){.status = CM_OCSP_GOOD,
                                       .verified = true,
                                       .this_update = NOW,
                                       .next_update = NOW + 7 * DAY};
        record(e, r, NOW + 500, &changed, &old);
    }
    EXPECT_INT(e->seen_count, 0);
    EXPECT_INT(e->status, CM_STATUS_OK);
    {
        json_t *rep = parse_report(e);
        EXPECT_INT(json_array_size(json_object_get(rep, "findings")), 0);
        json_decref(rep);
    }
    record(e, healthy(20), NOW + 600, &changed, &old);
    EXPECT_FIRST_SEEN(e, "cert.expiring", 0, NOW + 600);
    cm_state_free(s);
}

static void test_record_status(void)
{
    struct cm_state *s = new_state();
    struct cm_state_entry *e = cm_state_put(s, "example.com:443", NULL);
    bool changed;
    enum cm_status old;
    json_t *rep;

    /* A first result that is a failure: critical, never succeeded. */
    record(e, failed(CM_ERRK_CONNECT, "connection refused"), NOW, &changed, &old);
    CU_ASSERT_TRUE(changed);
    EXPECT_INT(e->status, CM_STATUS_CRITICAL);
    EXPECT_INT(e->failures, 1);
    EXPECT_INT(e->last_probe, NOW);
    EXPECT_INT(e->last_success, 0);
    EXPECT_INT(e->status_since, NOW);
    EXPECT_FIRST_SEEN(e, "probe.failed", -1, NOW);
    rep = parse_report(e);
    EXPECT_INT(json_integer_value(json_object_get(rep, "failures")), 1);
    CU_ASSERT_TRUE(json_is_null(json_object_get(rep, "last_success")));
    EXPECT_STR(json_string_value(json_object_get(rep, "last_probe")), rfc3339(NOW));
    EXPECT_STR(json_string_value(json_object_get(json_object_get(rep, "error"), "kind")),
               "connect");
    EXPECT_STR(json_string_value(json_object_get(json_object_get(rep, "error"), "message")),
               "connection refused");
    json_decref(rep);

    /* Another: the count grows, the status and its time stay. */
    record(e, failed(CM_ERRK_TIMEOUT, "timed out"), NOW + 60, &changed, &old);
    CU_ASSERT_FALSE(changed);
    EXPECT_INT(old, CM_STATUS_CRITICAL);
    EXPECT_INT(e->failures, 2);
    EXPECT_INT(e->status_since, NOW);
    EXPECT_INT(e->last_success, 0);
    EXPECT_FIRST_SEEN(e, "probe.failed", -1, NOW);
    rep = parse_report(e);
    EXPECT_INT(json_integer_value(json_object_get(rep, "failures")), 2);
    EXPECT_STR(json_string_value(json_object_get(rep, "status_since")), rfc3339(NOW));
    json_decref(rep);

    /* A success resets the count and is the last success. */
    record(e, healthy(90), NOW + 120, &changed, &old);
    CU_ASSERT_TRUE(changed);
    EXPECT_INT(old, CM_STATUS_CRITICAL);
    EXPECT_INT(e->status, CM_STATUS_OK);
    EXPECT_INT(e->failures, 0);
    EXPECT_INT(e->last_success, NOW + 120);
    EXPECT_INT(e->status_since, NOW + 120);
    record(e, healthy(90), NOW + 180, &changed, &old);
    CU_ASSERT_FALSE(changed);
    EXPECT_INT(e->status_since, NOW + 120);
    EXPECT_INT(e->last_success, NOW + 180);

    /* A failure after it keeps the last success. */
    record(e, failed(CM_ERRK_TLS, "handshake failed"), NOW + 240, &changed, &old);
    CU_ASSERT_TRUE(changed);
    EXPECT_INT(old, CM_STATUS_OK);
    EXPECT_INT(e->failures, 1);
    EXPECT_INT(e->last_success, NOW + 180);
    EXPECT_INT(e->last_probe, NOW + 240);
    rep = parse_report(e);
    EXPECT_STR(json_string_value(json_object_get(rep, "last_success")), rfc3339(NOW + 180));
    EXPECT_STR(json_string_value(json_object_get(rep, "last_probe")), rfc3339(NOW + 240));
    EXPECT_STR(json_string_value(json_object_get(rep, "status_since")), rfc3339(NOW + 240));
    json_decref(rep);

    /* A first result that is OK is a change too (from no status at all). */
    e = cm_state_put(s, "fresh.example.com:443", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    {
        struct cm_probe_result *r = healthy(90);
        r->tls.ocsp = (struct cm_ocsp){.status = CM_OCSP_GOOD,
                                       .verified = true,
                                       .this_update = NOW,
                                       .next_update = NOW + 7 * DAY};
        changed = false;
        record(e, r, NOW, &changed, &old);
    }
    CU_ASSERT_TRUE(changed);
    EXPECT_INT(e->status, CM_STATUS_OK);
    EXPECT_INT(e->seen_count, 0);
    EXPECT_INT(e->status_since, NOW);
    e = cm_state_get(s, "example.com:443");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);

    /* certmon's own failure: unknown, and still a failure. */
    record(e, failed(CM_ERRK_INTERNAL, "out of file descriptors"), NOW + 300, &changed, &old);
    CU_ASSERT_TRUE(changed);
    EXPECT_INT(old, CM_STATUS_CRITICAL);
    EXPECT_INT(e->status, CM_STATUS_UNKNOWN);
    EXPECT_INT(e->failures, 2);
    EXPECT_INT(e->status_since, NOW + 300);
    cm_state_free(s);
}

/* ---- Posture in the state file ---- */

static struct cm_posture *some_posture(void)
{
    struct cm_posture *p = calloc(1, sizeof(*p));

    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    p->version[CM_PV_TLS13] = CM_TRI_YES;
    p->version[CM_PV_TLS12] = CM_TRI_YES;
    p->version[CM_PV_TLS11] = CM_TRI_NO;
    p->version[CM_PV_TLS10] = CM_TRI_NO;
    p->version[CM_PV_SSL30] = CM_TRI_UNKNOWN;
    p->weak[CM_WEAK_RC4] = CM_TRI_NO;
    p->weak[CM_WEAK_3DES] = CM_TRI_YES;
    p->weak[CM_WEAK_NULL] = CM_TRI_NO;
    p->weak[CM_WEAK_EXPORT] = CM_TRI_UNKNOWN;
    p->weak[CM_WEAK_ANON] = CM_TRI_NO;
    p->forward_secrecy = CM_TRI_YES;
    p->dhe = CM_TRI_YES;
    p->dh_bits = 1024;
    p->secure_renegotiation = CM_TRI_NO;
    p->handshakes = 11;
    p->elapsed_ms = 123.456789;
    return p;
}

static void expect_posture(const struct cm_posture *got, const struct cm_posture *want,
                           unsigned line)
{
    CU_assertImplementation(got != NULL, line, "a posture", __FILE__, "", CU_FALSE);
    if (!got)
        return;
    for (size_t i = 0; i < CM_PV_COUNT; i++)
        expect_int(got->version[i], want->version[i], cm_pv_name((enum cm_pv)i), line);
    for (size_t i = 0; i < CM_WEAK_COUNT; i++)
        expect_int(got->weak[i], want->weak[i], cm_weak_name((enum cm_weak)i), line);
    expect_int(got->forward_secrecy, want->forward_secrecy, "forward_secrecy", line);
    expect_int(got->dhe, want->dhe, "dhe", line);
    expect_int(got->dh_bits, want->dh_bits, "dh_bits", line);
    expect_int(got->secure_renegotiation, want->secure_renegotiation, "secure_renegotiation", line);
    expect_int(got->handshakes, want->handshakes, "handshakes", line);
    CU_assertImplementation(got->elapsed_ms == want->elapsed_ms, line, "elapsed_ms", __FILE__, "",
                            CU_FALSE);
}

/* cm_posture_from_state_json on text j: returns its code. */
static int posture_from(const char *text, struct cm_posture *out)
{
    json_t *j = json_loads(text, 0, NULL);
    int rc;

    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    rc = cm_posture_from_state_json(j, out);
    json_decref(j);
    return rc;
}

static void test_posture_json(void)
{
    struct cm_posture *p = some_posture(), back;
    json_t *j = cm_posture_to_state_json(p);

    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    EXPECT_INT(cm_posture_from_state_json(j, &back), 0);
    expect_posture(&back, p, __LINE__);
    json_decref(j);
    /* Through text, as the state file holds it. */
    {
        char *t = json_dumps((j = cm_posture_to_state_json(p)), JSON_COMPACT);
        json_decref(j);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        EXPECT_INT(posture_from(t, &back), 0);
        expect_posture(&back, p, __LINE__);
        free(t);
    }
    EXPECT_INT(posture_from("{\"version\":[2,2,1,1,0],\"weak\":[1,2,1,0,1],\"forward_secrecy\":2,"
                            "\"dhe\":2,\"dh_bits\":1024,\"secure_renegotiation\":1,"
                            "\"handshakes\":11,\"elapsed_ms\":123.456789}",
                            &back),
               0);
    expect_posture(&back, p, __LINE__);
    /* elapsed_ms is not required. */
    EXPECT_INT(posture_from("{\"version\":[0,0,0,0,0],\"weak\":[0,0,0,0,0],\"forward_secrecy\":0,"
                            "\"dhe\":0,\"dh_bits\":0,\"secure_renegotiation\":0,\"handshakes\":0}",
                            &back),
               0);
    /* What is not a posture. */
    static const char *const bad[] = {
        "[]",
        "{}",
        "{\"version\":[2,2,1,1],\"weak\":[1,2,1,0,1],\"forward_secrecy\":2,\"dhe\":2,"
        "\"dh_bits\":1024,\"secure_renegotiation\":1,\"handshakes\":11}",
        "{\"version\":[2,2,1,1,0],\"weak\":[1,2,1,0,1,0],\"forward_secrecy\":2,\"dhe\":2,"
        "\"dh_bits\":1024,\"secure_renegotiation\":1,\"handshakes\":11}",
        "{\"version\":[2,2,1,1,3],\"weak\":[1,2,1,0,1],\"forward_secrecy\":2,\"dhe\":2,"
        "\"dh_bits\":1024,\"secure_renegotiation\":1,\"handshakes\":11}",
        "{\"version\":[2,2,1,1,0],\"weak\":[1,2,-1,0,1],\"forward_secrecy\":2,\"dhe\":2,"
        "\"dh_bits\":1024,\"secure_renegotiation\":1,\"handshakes\":11}",
        "{\"version\":[2,2,1,1,0],\"weak\":[1,2,1,0,1],\"forward_secrecy\":true,\"dhe\":2,"
        "\"dh_bits\":1024,\"secure_renegotiation\":1,\"handshakes\":11}",
        "{\"version\":[2,2,1,1,0],\"weak\":[1,2,1,0,1],\"dhe\":2,"
        "\"dh_bits\":1024,\"secure_renegotiation\":1,\"handshakes\":11}",
        "{\"version\":[2,2,1,1,0],\"weak\":[1,2,1,0,1],\"forward_secrecy\":2,\"dhe\":2,"
        "\"dh_bits\":\"1024\",\"secure_renegotiation\":1,\"handshakes\":11}",
        "{\"version\":[2,2,1,1,0],\"weak\":[1,2,1,0,1],\"forward_secrecy\":2,\"dhe\":2,"
        "\"dh_bits\":1024,\"secure_renegotiation\":1}",
        "{\"version\":[\"yes\",2,1,1,0],\"weak\":[1,2,1,0,1],\"forward_secrecy\":2,\"dhe\":2,"
        "\"dh_bits\":1024,\"secure_renegotiation\":1,\"handshakes\":11}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        EXPECT_INT(posture_from(bad[i], &back), CM_ESTATE);
    cm_posture_free(p);
}

/* ---- Serialising and loading ---- */

/* A state with one of each kind of entry: recorded with findings and a posture, a file
 * entry owned by its file list, a failing one, one never probed, a name that needs escaping. */
static struct cm_state *sample_state(void)
{
    struct cm_state *s = new_state();
    struct cm_state_entry *e;
    char *keys[] = {"env"}, *values[] = {"prod"};
    struct cm_labels labels = {keys, values, 1};
    bool changed;
    enum cm_status old;
    struct cm_probe_result *r;

    e = cm_state_put(s, "example.com:443", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    r = healthy(20);
    CU_ASSERT_EQUAL(record_at(e, r, &labels, NOW, &changed, &old), 0);
    cm_probe_result_free(r);
    r = mismatched();
    CU_ASSERT_EQUAL(record_at(e, r, &labels, NOW + 100, &changed, &old), 0);
    cm_probe_result_free(r);
    cm_state_set_posture(e, some_posture(), NOW + 50);

    e = cm_state_put(s, "file:/etc/ssl/certs/a.pem", "bundles");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    r = healthy(5);
    free(r->host);
    r->host = NULL;
    r->port = 0;
    r->path = cm_tf_strdup("/etc/ssl/certs/a.pem");
    free(r->target);
    r->target = cm_tf_strdup("bundles");
    record(e, r, NOW + 20, NULL, NULL);

    e = cm_state_put(s, "down.example.net:8443", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    record(e, healthy(90), NOW - 3600, NULL, NULL);
    record(e, failed(CM_ERRK_CONNECT, "connection refused"), NOW, NULL, NULL);
    record(e, failed(CM_ERRK_CONNECT, "connection refused"), NOW + 60, NULL, NULL);

    CU_ASSERT_PTR_NOT_NULL_FATAL(cm_state_put(s, "never.example.org:443", NULL));

    e = cm_state_put(s, "we\"ird\\name\n\t\xc3\xa9:443", "o\"wner");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    record(e, failed(CM_ERRK_DNS, "no such host \"x\"\nsecond line"), NOW + 7, NULL, NULL);
    return s;
}

/* Entries a and b hold the same. */
static void expect_same_entry(const struct cm_state_entry *a, const struct cm_state_entry *b,
                              unsigned line)
{
    CU_assertImplementation(a && b, line, "both entries exist", __FILE__, "", CU_FALSE);
    if (!a || !b)
        return;
    expect_str(b->name, a->name, "name", line);
    expect_str(b->owner, a->owner, "owner", line);
    expect_int(b->last_probe, a->last_probe, "last_probe", line);
    expect_int(b->last_success, a->last_success, "last_success", line);
    expect_int(b->status_since, a->status_since, "status_since", line);
    expect_int(b->failures, a->failures, "failures", line);
    expect_int(b->has_status, a->has_status, "has_status", line);
    if (a->has_status)
        expect_int(b->status, a->status, "status", line);
    expect_str(rtext(b), rtext(a), "report", line);
    expect_int(b->seen_count, a->seen_count, "seen_count", line);
    for (size_t i = 0; i < a->seen_count && i < b->seen_count; i++) {
        /* Loaded ids are the catalogue's own strings. */
        CU_assertImplementation(b->seen[i].id == cm_finding_lookup(a->seen[i].id)->id, line,
                                "seen id is the catalogue's", __FILE__, "", CU_FALSE);
        expect_int(b->seen[i].position, a->seen[i].position, "seen position", line);
        expect_int(b->seen[i].first_seen, a->seen[i].first_seen, "first_seen", line);
    }
    expect_int(b->posture != NULL, a->posture != NULL, "has posture", line);
    if (a->posture && b->posture)
        expect_posture(b->posture, a->posture, line);
    expect_int(b->posture_at, a->posture_at, "posture_at", line);
}

static void expect_same_state(struct cm_state *a, struct cm_state *b, unsigned line)
{
    size_t na, nb;
    struct cm_state_entry *const *ea = cm_state_entries(a, &na);

    cm_state_entries(b, &nb);
    expect_int(nb, na, "entries", line);
    for (size_t i = 0; i < na; i++)
        expect_same_entry(ea[i], cm_state_get(b, ea[i]->name), line);
}

static char *serialize(struct cm_state *s, time_t now, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;

    CU_ASSERT_EQUAL_FATAL(cm_state_serialize(s, now, &buf, &n), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    EXPECT_INT(strlen(buf), n);
    if (len)
        *len = n;
    return buf;
}

/* Loads path into a new state and checks it succeeded. */
static struct cm_state *load_ok(const char *path, unsigned line)
{
    struct cm_state *s = new_state();
    char err[512] = "";
    int rc = cm_state_load(s, path, err, sizeof(err));

    expect_int(rc, 0, "cm_state_load", line);
    if (rc)
        expect_str(err, "", "load error", line);
    return s;
}

static void test_serialize_shape(void)
{
    struct cm_state *s = sample_state();
    size_t len;
    char *buf = serialize(s, NOW + 1000, &len);
    json_error_t je;
    json_t *root = json_loads(buf, 0, &je), *t;
    size_t i;

    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    EXPECT_INT(json_integer_value(json_object_get(root, "version")), CM_STATE_VERSION);
    EXPECT_INT(json_integer_value(json_object_get(root, "saved_at")), NOW + 1000);
    EXPECT_INT(json_array_size(json_object_get(root, "targets")), count_of(s));
    json_array_foreach(json_object_get(root, "targets"), i, t)
    {
        const char *name = json_string_value(json_object_get(t, "name"));
        struct cm_state_entry *e = name ? cm_state_get(s, name) : NULL;
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        EXPECT_STR(json_string_value(json_object_get(t, "owner")), e->owner);
        EXPECT_INT(json_integer_value(json_object_get(t, "failures")), e->failures);
        EXPECT_INT(json_array_size(json_object_get(t, "seen")), e->seen_count);
        if (e->has_status)
            EXPECT_STR(json_string_value(json_object_get(t, "status")), cm_status_name(e->status));
        else
            CU_ASSERT_TRUE(json_is_null(json_object_get(t, "status")));
        /* The report is embedded as an object, the same one the entry holds. */
        if (e->report) {
            char *r = json_dumps(json_object_get(t, "report"),
                                 JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
            EXPECT_STR(r, rtext(e));
            free(r);
        } else {
            CU_ASSERT_PTR_NULL(json_object_get(t, "report"));
        }
        CU_ASSERT_EQUAL(json_object_get(t, "posture") != NULL, e->posture != NULL);
    }
    json_decref(root);
    free(buf);

    /* An empty state is a valid document too. */
    cm_state_free(s);
    s = new_state();
    buf = serialize(s, NOW, &len);
    root = json_loads(buf, 0, &je);
    CU_ASSERT_PTR_NOT_NULL(root);
    EXPECT_INT(json_array_size(json_object_get(root, "targets")), 0);
    json_decref(root);
    free(buf);
    cm_state_free(s);
}

static void test_round_trip(void)
{
    struct cm_state *s = sample_state(), *t, *u;
    const char *path = tmp_path("round.json");
    char err[512] = "", *buf, *again;
    size_t len, len2;
    json_t *root;

    buf = serialize(s, NOW + 1000, &len);
    EXPECT_INT(cm_state_write_file(path, buf, len, err, sizeof(err)), 0);
    t = load_ok(path, __LINE__);
    expect_same_state(s, t, __LINE__);
    /* Written again, it is the same text. */
    again = serialize(t, NOW + 1000, &len2);
    EXPECT_STR(again, buf);
    free(again);

    /* The same document laid out otherwise (pretty-printed by hand) loads the same. */
    root = json_loads(buf, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    CU_ASSERT_EQUAL(json_dump_file(root, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER), 0);
    json_decref(root);
    u = load_ok(path, __LINE__);
    expect_same_state(s, u, __LINE__);
    again = serialize(u, NOW + 1000, &len2);
    EXPECT_STR(again, buf);
    free(again);
    cm_state_free(u);

    /* A loaded entry goes on merging: its findings keep their first-seen times. */
    {
        struct cm_state_entry *e = cm_state_get(t, "example.com:443");
        bool changed;
        enum cm_status old;
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        record(e, mismatched(), NOW + 2000, &changed, &old);
        CU_ASSERT_FALSE(changed);
        EXPECT_INT(old, CM_STATUS_CRITICAL);
        EXPECT_INT(e->status_since, NOW + 100);
        EXPECT_FIRST_SEEN(e, "cert.expiring", 0, NOW);
        EXPECT_FIRST_SEEN(e, "host.mismatch", 0, NOW + 100);
        e = cm_state_get(t, "down.example.net:8443");
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        record(e, failed(CM_ERRK_CONNECT, "connection refused"), NOW + 2000, &changed, &old);
        CU_ASSERT_FALSE(changed);
        EXPECT_INT(e->failures, 3);
        EXPECT_INT(e->last_success, NOW - 3600);
    }
    free(buf);
    cm_state_free(t);
    cm_state_free(s);
}

/* ---- Writing ---- */

static void test_write_file(void)
{
    const char *dir = fresh_dir("write");
    char path[600], err[512] = "", listing[512];
    static const char data[] = "{\"version\":1}\n\0binary\xff tail";
    size_t len;
    char *got;
    struct stat st;

    snprintf(path, sizeof(path), "%s/state.json", dir);
    EXPECT_INT(cm_state_write_file(path, data, sizeof(data) - 1, err, sizeof(err)), 0);
    got = read_all(path, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    EXPECT_INT(len, sizeof(data) - 1);
    CU_ASSERT_EQUAL(memcmp(got, data, sizeof(data) - 1), 0);
    free(got);
    CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
    EXPECT_INT(st.st_mode & 07777, 0600);
    list_dir(dir, listing, sizeof(listing));
    EXPECT_STR(listing, "state.json");

    /* Replacing: a shorter text leaves nothing of the longer one; an old file's looser mode
     * does not carry over. */
    CU_ASSERT_EQUAL(chmod(path, 0644), 0);
    EXPECT_INT(cm_state_write_file(path, "{}\n", 3, err, sizeof(err)), 0);
    got = read_all(path, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    EXPECT_STR(got, "{}\n");
    free(got);
    CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
    EXPECT_INT(st.st_mode & 07777, 0600);
    list_dir(dir, listing, sizeof(listing));
    EXPECT_STR(listing, "state.json");

    /* Nothing to write: an empty file. */
    EXPECT_INT(cm_state_write_file(path, "", 0, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
    EXPECT_INT(st.st_size, 0);

    /* A serialised state, written and read back byte for byte. */
    {
        struct cm_state *s = sample_state();
        char *buf = serialize(s, NOW, &len);
        size_t n;
        EXPECT_INT(cm_state_write_file(path, buf, len, err, sizeof(err)), 0);
        got = read_all(path, &n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(got);
        EXPECT_STR(got, buf);
        free(got);
        free(buf);
        cm_state_free(s);
    }
    list_dir(dir, listing, sizeof(listing));
    EXPECT_STR(listing, "state.json");
}

static void test_write_file_fails(void)
{
    const char *dir = fresh_dir("writefail");
    char path[600], err[512], listing[512];

    /* A directory that does not exist. */
    snprintf(path, sizeof(path), "%s/missing/state.json", dir);
    err[0] = '\0';
    EXPECT_INT(cm_state_write_file(path, "{}", 2, err, sizeof(err)), -ENOENT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, strerror(ENOENT)));
    list_dir(dir, listing, sizeof(listing));
    EXPECT_STR(listing, "");

    /* A path that is a directory: the rename fails, and the temporary file goes. */
    snprintf(path, sizeof(path), "%s/taken", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0700), 0);
    err[0] = '\0';
    CU_ASSERT_TRUE(cm_state_write_file(path, "{}", 2, err, sizeof(err)) < 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
    list_dir(dir, listing, sizeof(listing));
    EXPECT_STR(listing, "taken");

    /* A name too long for the temporary file. */
    {
        char *longp = malloc(5000);
        CU_ASSERT_PTR_NOT_NULL_FATAL(longp);
        memset(longp, 'a', 4999);
        longp[0] = '/';
        longp[4999] = '\0';
        err[0] = '\0';
        CU_ASSERT_TRUE(cm_state_write_file(longp, "{}", 2, err, sizeof(err)) < 0);
        CU_ASSERT_TRUE(err[0] != '\0');
        free(longp);
    }
}

/* ---- Loading ---- */

static void test_load_missing(void)
{
    struct cm_state *s = new_state();
    char err[256] = "";

    EXPECT_INT(cm_state_load(s, tmp_path("no-such-state.json"), err, sizeof(err)), 0);
    EXPECT_INT(count_of(s), 0);
    cm_state_free(s);
}

/* Loads text as a state file into a state that then must be empty; the message names the
 * path and holds want (when not NULL). */
static void expect_load_fails(const char *text, const char *want, unsigned line)
{
    const char *path = tmp_path("bad.json");
    struct cm_state *s = new_state();
    char err[1024] = "", msg[1200];
    int rc;

    write_text(path, text);
    rc = cm_state_load(s, path, err, sizeof(err));
    expect_int(rc, CM_ESTATE, "cm_state_load", line);
    expect_int(count_of(s), 0, "entries after a failed load", line);
    snprintf(msg, sizeof(msg), "message \"%s\" holds \"%s\"", err, want ? want : "");
    CU_assertImplementation(err[0] != '\0' && (!want || strstr(err, want)), line, msg, __FILE__, "",
                            CU_FALSE);
    cm_state_free(s);
}

#define EXPECT_LOAD_FAILS(text, want) expect_load_fails((text), (want), __LINE__)

static void test_load_garbage(void)
{
    char want[600];

    snprintf(want, sizeof(want), "%s:1:", tmp_path("bad.json"));
    EXPECT_LOAD_FAILS("this is not json\n", want);
    EXPECT_LOAD_FAILS("{\"version\":1,\"targets\":[", want);
    snprintf(want, sizeof(want), "%s:3:", tmp_path("bad.json"));
    EXPECT_LOAD_FAILS("{\n  \"version\": 1,\n  oops\n}\n", want);
    EXPECT_LOAD_FAILS("", tmp_path("bad.json"));
    EXPECT_LOAD_FAILS("\x89PNG\r\n\x1a\n\x00\x00", tmp_path("bad.json"));
}

/* One valid entry, as certmon writes it. */
#define GOOD_A                                                                                     \
    "{\"name\":\"a.example:443\",\"owner\":\"a.example:443\",\"last_probe\":1800000000,"           \
    "\"last_success\":1800000000,\"status_since\":1800000000,\"failures\":0,\"status\":\"ok\","    \
    "\"posture_at\":0,\"seen\":[]}"
#define GOOD_B                                                                                     \
    "{\"name\":\"b.example:443\",\"owner\":\"b.example:443\",\"last_probe\":1800000000,"           \
    "\"last_success\":1800000000,\"status_since\":1800000000,\"failures\":0,\"status\":\"ok\","    \
    "\"posture_at\":0,\"seen\":[],\"report\":{\"target\":\"b.example:443\"}}"
#define HEAD "{\"version\":1,\"saved_at\":1800000000,\"targets\":[\n"
#define TAIL "\n]}\n"

/* The same entries in certmon's own layout (one per line) and as one line of JSON. */
#define EXPECT_ENTRIES_FAIL(entries_lines, entries_flat, want)                                     \
    do {                                                                                           \
        EXPECT_LOAD_FAILS(HEAD entries_lines TAIL, want);                                          \
        EXPECT_LOAD_FAILS("{\"version\": 1, \"targets\": [" entries_flat "]}", want);              \
    } while (0)

static void test_load_wrong_shape(void)
{
    /* The layouts themselves load. */
    {
        const char *path = tmp_path("good.json");
        struct cm_state *s;
        write_text(path, HEAD GOOD_A ",\n" GOOD_B TAIL);
        s = load_ok(path, __LINE__);
        EXPECT_INT(count_of(s), 2);
        cm_state_free(s);
        write_text(path, "{\"version\": 1, \"targets\": [" GOOD_A ", " GOOD_B "]}");
        s = load_ok(path, __LINE__);
        EXPECT_INT(count_of(s), 2);
        CU_ASSERT_PTR_NOT_NULL(cm_state_get(s, "b.example:443"));
        if (cm_state_get(s, "b.example:443"))
            EXPECT_STR(cm_state_get(s, "b.example:443")->report, "{\"target\":\"b.example:443\"}");
        cm_state_free(s);
    }
    EXPECT_LOAD_FAILS("[1,2]\n", NULL);
    EXPECT_LOAD_FAILS("{}\n", NULL);
    EXPECT_LOAD_FAILS("\"state\"\n", NULL);
    EXPECT_LOAD_FAILS("{\"version\":1}\n", NULL);
    EXPECT_LOAD_FAILS("{\"version\":1,\"targets\":{}}\n", NULL);
    EXPECT_LOAD_FAILS("{\"version\":2,\"saved_at\":0,\"targets\":[]}\n", "version 2");
    EXPECT_LOAD_FAILS("{\"version\":2,\"saved_at\":0,\"targets\":[\n" GOOD_A TAIL, "version 2");
    EXPECT_LOAD_FAILS("{\"version\": 2, \"targets\": [" GOOD_A "]}", "version 2");
    EXPECT_LOAD_FAILS("{\"targets\": [" GOOD_A "]}", NULL);
    EXPECT_LOAD_FAILS("{\"version\": \"1\", \"targets\": [" GOOD_A "]}", NULL);

    /* A bad entry after good ones: nothing at all is kept. */
    EXPECT_ENTRIES_FAIL(GOOD_A ",\n" GOOD_B ",\n{\"owner\":\"x\",\"seen\":[]}",
                        GOOD_A ", " GOOD_B ", {\"owner\":\"x\",\"seen\":[]}", "targets[2]");
    EXPECT_ENTRIES_FAIL(GOOD_A ",\n{\"name\":\"\",\"seen\":[]}",
                        GOOD_A ", {\"name\":\"\",\"seen\":[]}", "targets[1]");
    EXPECT_ENTRIES_FAIL(GOOD_A ",\n{\"name\":7,\"seen\":[]}", GOOD_A ", {\"name\":7,\"seen\":[]}",
                        "targets[1]");
    EXPECT_ENTRIES_FAIL(GOOD_A ",\n5", GOOD_A ", 5", NULL);
    EXPECT_ENTRIES_FAIL(GOOD_A ",\n[1,2]", GOOD_A ", [1,2]", "targets[1]");
    EXPECT_ENTRIES_FAIL(GOOD_A ",\n{\"name\":\"c\"}", GOOD_A ", {\"name\":\"c\"}", "targets[1]");
    EXPECT_ENTRIES_FAIL(GOOD_A ",\n{\"name\":\"c\",\"seen\":{}}",
                        GOOD_A ", {\"name\":\"c\",\"seen\":{}}", "targets[1]");
    /* The same name twice. */
    EXPECT_ENTRIES_FAIL(GOOD_A ",\n" GOOD_B ",\n" GOOD_A, GOOD_A ", " GOOD_B ", " GOOD_A,
                        "a.example:443");
    /* A status this version does not know, a posture that is not one. */
    EXPECT_ENTRIES_FAIL(GOOD_A ",\n{\"name\":\"c\",\"seen\":[],\"status\":\"fine\"}",
                        GOOD_A ", {\"name\":\"c\",\"seen\":[],\"status\":\"fine\"}", "fine");
    EXPECT_ENTRIES_FAIL(GOOD_A ",\n{\"name\":\"c\",\"seen\":[],\"posture\":{\"version\":[]}}",
                        GOOD_A ", {\"name\":\"c\",\"seen\":[],\"posture\":{\"version\":[]}}",
                        "posture");

    /* certmon's layout cut short or with text after it. */
    EXPECT_LOAD_FAILS(HEAD GOOD_A ",\n" GOOD_B ",\n", tmp_path("bad.json"));
    EXPECT_LOAD_FAILS(HEAD GOOD_A ",\n" GOOD_B, tmp_path("bad.json"));
    EXPECT_LOAD_FAILS(HEAD GOOD_A ",\n{\"name\":\"b.exa", tmp_path("bad.json"));
    EXPECT_LOAD_FAILS(HEAD GOOD_A TAIL "garbage\n", tmp_path("bad.json"));
}

/* Loads text (which must succeed) and returns the state. */
static struct cm_state *load_text(const char *text, unsigned line)
{
    const char *path = tmp_path("layout.json");

    write_text(path, text);
    return load_ok(path, line);
}

/* certmon's first line followed by something other than one entry per line is still a state
 * document when it is JSON, and not one when it is not. */
static void test_load_other_layouts(void)
{
    struct cm_state *s;
    struct cm_state_entry *e;

    /* An entry over two lines, as a hand edit may leave it. */
    s = load_text(HEAD "{\"name\":\"a\",\n\"seen\":[]},\n" GOOD_B TAIL, __LINE__);
    EXPECT_INT(count_of(s), 2);
    CU_ASSERT_PTR_NOT_NULL(cm_state_get(s, "a"));
    cm_state_free(s);
    /* Two entries on one line. */
    s = load_text(HEAD GOOD_A ", " GOOD_B TAIL, __LINE__);
    EXPECT_INT(count_of(s), 2);
    cm_state_free(s);
    /* The report before other members: it is the report object, and only that. */
    s = load_text(HEAD "{\"name\":\"a\",\"report\":{\"target\":\"a\",\"n\":[1,2]},"
                       "\"seen\":[],\"failures\":3}" TAIL,
                  __LINE__);
    e = cm_state_get(s, "a");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    EXPECT_STR(e->report, "{\"target\":\"a\",\"n\":[1,2]}");
    EXPECT_INT(e->failures, 3);
    cm_state_free(s);
    /* An export (`certmon state export --json`): the targets end with "]," and the alerts
     * and the outbox follow, which a state does not take. It is read line by line: an alerts
     * member the whole-tree parse would refuse shows that the rest is not read. */
    s = load_text(HEAD GOOD_A ",\n" GOOD_B "\n],\"alerts\":[\n{\"n\":1}\n],\"outbox\":[\n]}\n",
                  __LINE__);
    EXPECT_INT(count_of(s), 2);
    cm_state_free(s);
    s = load_text(HEAD GOOD_A "\n],\"alerts\":[\n{not JSON\n", __LINE__);
    EXPECT_INT(count_of(s), 1);
    CU_ASSERT_PTR_NOT_NULL(cm_state_get(s, "a.example:443"));
    cm_state_free(s);
    /* Not JSON: entries without a comma between them, a comma after the last. */
    EXPECT_LOAD_FAILS(HEAD GOOD_A "\n" GOOD_B TAIL, tmp_path("bad.json"));
    EXPECT_LOAD_FAILS(HEAD GOOD_A ",\n" GOOD_B ",\n]}\n", tmp_path("bad.json"));
    EXPECT_LOAD_FAILS(HEAD GOOD_A ",\n,\n" GOOD_B TAIL, tmp_path("bad.json"));
}

/* The report text kept from a line is the report's own: the key searched for may also occur
 * inside an earlier member or twice, and a NUL byte may hide in the line (both found by
 * tests/fuzz/fuzz_state: the text kept was not the report's, and the API then served text
 * that is not JSON). */
static void test_load_report_key_elsewhere(void)
{
    static const struct {
        const char *entry, *name, *want;
    } cases[] = {
        /* "report" as a key inside an earlier member's value. */
        {"{\"name\":\"a\",\"seen\":[],\"x\":{\"y\":1,\"report\":2},\"report\":{\"target\":\"a\"}}",
         "a", "{\"target\":\"a\"}"},
        /* Twice at the top: jansson keeps the last value. */
        {"{\"name\":\"b\",\"seen\":[],\"report\":{\"target\":\"old\"},\"report\":{\"target\":\"b\"}"
         "}",
         "b", "{\"target\":\"b\"}"},
        /* Last in jansson's order (a duplicate "seen" keeps its first place), not in the text. */
        {"{\"name\":\"c\",\"seen\":[],\"report\":{\"target\":\"c\"},\"seen\":[]}", "c",
         "{\"target\":\"c\"}"},
        /* Inside a string, quotes escaped. */
        {"{\"name\":\"d\",\"seen\":[],\"s\":\"\\\",\\\"report\\\":1\",\"report\":{\"target\":\"d\"}"
         "}",
         "d", "{\"target\":\"d\"}"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512];
        struct cm_state *s;
        struct cm_state_entry *e;

        snprintf(text, sizeof(text), HEAD "%s" TAIL, cases[i].entry);
        s = load_text(text, __LINE__);
        e = cm_state_get(s, cases[i].name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        EXPECT_STR(e->report, cases[i].want);
        cm_state_free(s);
    }

    /* A NUL byte after a number, which jansson accepts: the report is the parsed one, not
     * the text cut at the NUL. */
    static const char nul[] = HEAD "{\"name\":\"n\",\"seen\":[],\"report\":{\"target\":\"n\","
                                   "\"total\":0.25\0,\"x\":1}}" TAIL;
    const char *path = tmp_path("nul.json");
    FILE *fp = fopen(path, "wb");
    struct cm_state *s;
    struct cm_state_entry *e;

    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    CU_ASSERT_EQUAL(fwrite(nul, 1, sizeof(nul) - 1, fp), sizeof(nul) - 1);
    CU_ASSERT_EQUAL(fclose(fp), 0);
    s = load_ok(path, __LINE__);
    e = cm_state_get(s, "n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    EXPECT_STR(e->report, "{\"target\":\"n\",\"total\":0.25,\"x\":1}");
    cm_state_free(s);
}

static void test_load_unknown_seen(void)
{
    const char *path = tmp_path("seen.json");
    struct cm_state *s;
    struct cm_state_entry *e;

    write_text(path, HEAD "{\"name\":\"a\",\"seen\":[[\"cert.expiring\",0,100],"
                          "[\"no.such.finding\",0,200],[\"ocsp.not_stapled\",0,300],"
                          "[\"cert.expired\",1,400]]}" TAIL);
    s = load_ok(path, __LINE__);
    e = cm_state_get(s, "a");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    EXPECT_INT(e->seen_count, 3);
    EXPECT_INT(seen_at(e, "cert.expiring", 0), 100);
    EXPECT_INT(seen_at(e, "no.such.finding", 0), -1);
    EXPECT_INT(seen_at(e, "ocsp.not_stapled", 0), 300);
    EXPECT_INT(seen_at(e, "cert.expired", 1), 400);
    CU_ASSERT_PTR_EQUAL(e->seen[0].id, cm_finding_lookup("cert.expiring")->id);
    /* What an entry without those fields gets: never probed, owned by itself. */
    EXPECT_STR(e->owner, "a");
    CU_ASSERT_FALSE(e->has_status);
    CU_ASSERT_PTR_NULL(e->report);
    CU_ASSERT_PTR_NULL(e->posture);
    EXPECT_INT(e->last_probe, 0);
    cm_state_free(s);
}

/* stderr (where log lines go) captured into a file between capture_start and capture_end,
 * which reads it into log. */
static int capture_saved = -1;

static void capture_start(void)
{
    int fd = open(tmp_path("load.log"), O_WRONLY | O_CREAT | O_TRUNC, 0600);

    capture_saved = dup(STDERR_FILENO);
    CU_ASSERT_FATAL(capture_saved >= 0 && fd >= 0);
    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

static void capture_end(char *log, size_t loglen)
{
    FILE *fp;
    size_t n = 0;

    fflush(stderr);
    dup2(capture_saved, STDERR_FILENO);
    close(capture_saved);
    if ((fp = fopen(tmp_path("load.log"), "r"))) {
        n = fread(log, 1, loglen - 1, fp);
        fclose(fp);
    }
    log[n] = '\0';
}

/* Loads path with stderr captured into log. */
static struct cm_state *load_logged(const char *path, char *log, size_t loglen, unsigned line)
{
    struct cm_state *s;

    capture_start();
    s = load_ok(path, line);
    capture_end(log, loglen);
    return s;
}

/* A field of the wrong type is ignored with a log line naming the target and the field; the
 * rest of the entry and the other entries load. */
static void test_load_wrong_types(void)
{
    const char *path = tmp_path("types.json");
    char log[4096];
    struct cm_state *s;
    struct cm_state_entry *e;

    write_text(path, HEAD "{\"name\":\"a\",\"owner\":5,\"last_probe\":{},\"failures\":\"x\","
                          "\"last_success\":1800000000,\"status_since\":-4,\"status\":[1],"
                          "\"report\":\"r\",\"seen\":[[\"cert.expiring\",0,100],7,"
                          "[\"cert.expired\",\"0\",400]]},\n" GOOD_B TAIL);
    s = load_logged(path, log, sizeof(log), __LINE__);
    e = cm_state_get(s, "a");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    EXPECT_INT(count_of(s), 2);
    EXPECT_INT(e->failures, 0);
    EXPECT_INT(e->last_probe, 0);
    EXPECT_INT(e->last_success, 1800000000);
    EXPECT_INT(e->status_since, 0);
    EXPECT_STR(e->owner, "a");
    CU_ASSERT_FALSE(e->has_status);
    CU_ASSERT_PTR_NULL(e->report);
    EXPECT_INT(e->seen_count, 1);
    EXPECT_INT(seen_at(e, "cert.expiring", 0), 100);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "level=warning sub=state target=a field=failures: a "
                                       "string, not an integer: ignored"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "target=a field=last_probe: an object, not an integer"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "target=a field=owner: an integer, not a string"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "target=a field=status: an array, not a string"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "target=a field=report: a string, not an object"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "target=a field=status_since: -4 is out of range"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "target=a field=seen[1]: not [id, position, first_seen]"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "target=a field=seen[2]: not [id, position, first_seen]"));
    /* The good entry says nothing. */
    CU_ASSERT_PTR_NULL(strstr(log, "target=b.example:443"));
    EXPECT_INT(cm_state_get(s, "b.example:443")->last_probe, 1800000000);
    if (!strstr(log, "field=failures"))
        fprintf(stderr, "\n  log was: %s\n", log);
    cm_state_free(s);
}

static void test_move_aside(void)
{
    const char *dir = fresh_dir("aside");
    char path[600], moved[700], want[700], listing[512];
    char *got;

    snprintf(path, sizeof(path), "%s/state.json", dir);
    write_text(path, "garbage");
    EXPECT_INT(cm_state_move_aside(path, 1234567890, moved, sizeof(moved)), 0);
    snprintf(want, sizeof(want), "%s.corrupt-1234567890", path);
    EXPECT_STR(moved, want);
    CU_ASSERT_EQUAL(access(path, F_OK), -1);
    got = read_all(moved, NULL);
    EXPECT_STR(got, "garbage");
    free(got);
    list_dir(dir, listing, sizeof(listing));
    EXPECT_STR(listing, "state.json.corrupt-1234567890");

    /* What the daemon does at start: a corrupt file is moved aside, then the state starts
     * empty and loads as a first start. */
    write_text(path, "{\"version\":1,\"targets\":[5]}");
    {
        struct cm_state *s = new_state();
        char err[512];
        EXPECT_INT(cm_state_load(s, path, err, sizeof(err)), CM_ESTATE);
        EXPECT_INT(cm_state_move_aside(path, 1234567999, moved, sizeof(moved)), 0);
        EXPECT_INT(cm_state_load(s, path, err, sizeof(err)), 0);
        EXPECT_INT(count_of(s), 0);
        cm_state_free(s);
    }
    list_dir(dir, listing, sizeof(listing));
    EXPECT_STR(listing, "state.json.corrupt-1234567890 state.json.corrupt-1234567999");

    /* Nothing to move; no room for the new name. */
    EXPECT_INT(cm_state_move_aside(path, 1, moved, sizeof(moved)), -ENOENT);
    write_text(path, "x");
    EXPECT_INT(cm_state_move_aside(path, 1, moved, 10), -ENAMETOOLONG);
    CU_ASSERT_EQUAL(access(path, F_OK), 0);
}

/* ---- The database (store.c) ---- */

static struct cm_store *store_open_ok(const char *path, struct cm_state *s, unsigned line)
{
    struct cm_store *st = NULL;
    char err[600] = "";
    int rc = cm_store_open(&loop, path, s, NOW + 5000, &st, err, sizeof(err));

    if (rc != 0)
        fprintf(stderr, "\n  line %u: cm_store_open(%s): %d %s\n", line, path, rc, err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return st;
}

/* Closes the store and lets the loop release its handle: no handle is left behind. */
static void store_close_ok(struct cm_store *st)
{
    EXPECT_INT(cm_store_close(st), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
}

/* Every entry of s through cm_store_put. */
static void put_all(struct cm_store *st, struct cm_state *s)
{
    size_t n;
    struct cm_state_entry *const *es = cm_state_entries(s, &n);

    for (size_t i = 0; i < n; i++)
        EXPECT_INT(cm_store_put(st, es[i]), 0);
}

/* A round of results: every entry of s at last_probe when, through cm_store_put, committed. */
static void put_round(struct cm_store *st, struct cm_state *s, time_t when)
{
    size_t n;
    struct cm_state_entry *const *es = cm_state_entries(s, &n);

    for (size_t i = 0; i < n; i++) {
        es[i]->last_probe = when;
        EXPECT_INT(cm_store_put(st, es[i]), 0);
    }
    EXPECT_INT(cm_store_sync(st, 5000), 0);
}

static struct cm_state *read_db(const char *path, unsigned line)
{
    struct cm_state *s = new_state();
    char err[600] = "";
    int rc = cm_store_read(path, s, err, sizeof(err));

    if (rc != 0)
        fprintf(stderr, "\n  line %u: cm_store_read(%s): %d %s\n", line, path, rc, err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return s;
}

/* A single value from the database through SQLite itself (what `sqlite3 FILE` shows). */
static char *sql_text(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *out = NULL;

    CU_ASSERT_EQUAL_FATAL(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    CU_ASSERT_EQUAL_FATAL(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        out = cm_tf_strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

#define EXPECT_SQL(path, sql, want)                                                                \
    do {                                                                                           \
        char *got_ = sql_text(path, sql);                                                          \
        EXPECT_STR(got_ ? got_ : "(null)", want);                                                  \
        free(got_);                                                                                \
    } while (0)

static void test_store_round_trip(void)
{
    const char *dir = fresh_dir("store");
    char path[600];
    struct cm_state *s = sample_state(), *t, *u;
    struct cm_store *st;
    struct cm_store_stats stats;

    snprintf(path, sizeof(path), "%s/certmon.db", dir);
    t = new_state();
    st = store_open_ok(path, t, __LINE__); /* no file: a new database */
    EXPECT_INT(count_of(t), 0);
    put_all(st, s);
    /* A sync commits now, and a reader sees the rows while the writer still runs. */
    EXPECT_INT(cm_store_sync(st, 5000), 0);
    u = read_db(path, __LINE__);
    expect_same_state(s, u, __LINE__);
    cm_state_free(u);
    cm_store_get_stats(st, &stats);
    EXPECT_INT(stats.rows_written, 5);
    EXPECT_INT(stats.failures, 0);
    store_close_ok(st);
    /* What sqlite3 shows: WAL mode, one row per entry with plain columns. */
    EXPECT_SQL(path, "PRAGMA journal_mode", "wal");
    EXPECT_SQL(path, "SELECT count(*) FROM targets", "5");
    EXPECT_SQL(path,
               "SELECT status || ' ' || failures || ' ' || last_success FROM targets "
               "WHERE name = 'down.example.net:8443'",
               "critical 2 1799996400");
    /* The report is packed (base/pack.h): a BLOB, a fraction of its JSON text, which
     * `certmon state export` shows (read_db above reads it back whole). */
    EXPECT_SQL(path, "SELECT typeof(report) FROM targets WHERE name = 'example.com:443'", "blob");
    EXPECT_SQL(path, "SELECT owner FROM targets WHERE name = 'file:/etc/ssl/certs/a.pem'",
               "bundles");
    EXPECT_SQL(path, "PRAGMA integrity_check", "ok");

    /* Opened again, the state is what was put, first-seen times included; a recorded result
     * goes on merging them. */
    st = store_open_ok(path, t, __LINE__);
    expect_same_state(s, t, __LINE__);
    {
        struct cm_state_entry *e = cm_state_get(t, "example.com:443");
        bool changed;
        enum cm_status old;
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        record(e, mismatched(), NOW + 2000, &changed, &old);
        EXPECT_FIRST_SEEN(e, "host.mismatch", 0, NOW + 100);
        EXPECT_INT(cm_store_put(st, e), 0);
        /* Removing: one row, then (a state moving to another file) all before new puts. */
        EXPECT_INT(cm_store_delete(st, "never.example.org:443"), 0);
    }
    store_close_ok(st);
    EXPECT_SQL(path, "SELECT count(*) FROM targets", "4");
    /* The new result is in the log until a fold; the view `current` is what counts. */
    EXPECT_SQL(path, "SELECT last_probe FROM targets WHERE name = 'example.com:443'", "1800000100");
    EXPECT_SQL(path, "SELECT group_concat(name) FROM results_a", "example.com:443");
    EXPECT_SQL(path, "SELECT last_probe FROM current WHERE name = 'example.com:443'", "1800002000");
    EXPECT_SQL(path, "SELECT count(*) FROM current", "4");
    u = read_db(path, __LINE__);
    EXPECT_INT(count_of(u), 4);
    EXPECT_FIRST_SEEN(cm_state_get(u, "example.com:443"), "host.mismatch", 0, NOW + 100);
    EXPECT_INT(cm_state_get(u, "example.com:443")->last_probe, NOW + 2000);
    cm_state_free(u);

    st = store_open_ok(path, NULL, __LINE__);
    EXPECT_INT(cm_store_delete_all(st), 0);
    EXPECT_INT(cm_store_put(st, cm_state_get(s, "down.example.net:8443")), 0);
    store_close_ok(st);
    EXPECT_SQL(path, "SELECT group_concat(name) FROM targets", "down.example.net:8443");
    cm_state_free(t);
    cm_state_free(s);
}

/* Without a sync, a change is committed within CM_STORE_COMMIT_MS of its put. */
static void test_store_commit_delay(void)
{
    const char *dir = fresh_dir("delay");
    char path[600];
    struct cm_state *s = sample_state(), *u = NULL;
    struct cm_store *st;
    double t0;

    snprintf(path, sizeof(path), "%s/certmon.db", dir);
    st = store_open_ok(path, NULL, __LINE__);
    put_all(st, s);
    t0 = cm_th_now();
    while (cm_th_now() - t0 < 5) {
        u = read_db(path, __LINE__);
        if (count_of(u) == 5)
            break;
        cm_state_free(u);
        u = NULL;
        usleep(20000);
    }
    CU_ASSERT_PTR_NOT_NULL(u);
    /* Generous against a loaded machine; the bound that matters is "about a second". */
    CU_ASSERT(cm_th_now() - t0 < 1.0);
    if (u)
        expect_same_state(s, u, __LINE__);
    cm_state_free(u);
    store_close_ok(st);
    cm_state_free(s);
}

/* A JSON state of earlier versions at the path is imported once and kept as *.imported. */
static void test_store_import_json(void)
{
    const char *dir = fresh_dir("import");
    char path[600], kept[700], listing[512], head[16] = "";
    struct cm_state *s = sample_state(), *t = new_state();
    struct cm_store *st;
    size_t len;
    char *json = serialize(s, NOW + 1000, &len), *again;
    FILE *fp;

    snprintf(path, sizeof(path), "%s/state.json", dir);
    snprintf(kept, sizeof(kept), "%s.imported", path);
    write_text(path, json);
    st = store_open_ok(path, t, __LINE__);
    expect_same_state(s, t, __LINE__);
    store_close_ok(st);
    list_dir(dir, listing, sizeof(listing));
    EXPECT_STR(listing, "state.json state.json.imported");
    again = read_all(kept, NULL);
    EXPECT_STR(again, json);
    free(again);
    fp = fopen(path, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    CU_ASSERT_EQUAL(fread(head, 1, 16, fp), 16);
    fclose(fp);
    CU_ASSERT(!memcmp(head, "SQLite format 3", 16));
    /* Not imported twice: the next start reads the database. */
    cm_state_free(t);
    t = new_state();
    st = store_open_ok(path, t, __LINE__);
    expect_same_state(s, t, __LINE__);
    store_close_ok(st);
    list_dir(dir, listing, sizeof(listing));
    EXPECT_STR(listing, "state.json state.json.imported");
    /* export --json gives the same document back. */
    again = serialize(t, NOW + 1000, &len);
    EXPECT_STR(again, json);
    free(again);
    free(json);
    cm_state_free(t);
    cm_state_free(s);
}

/* Counts files in dir whose names start with prefix. */
static int count_prefixed(const char *dir, const char *prefix)
{
    DIR *dp = opendir(dir);
    struct dirent *de;
    int n = 0;

    while (dp && (de = readdir(dp)))
        n += !strncmp(de->d_name, prefix, strlen(prefix));
    if (dp)
        closedir(dp);
    return n;
}

static void test_store_corrupt(void)
{
    const char *dir = fresh_dir("corruptdb");
    char path[600], moved[700], buf[8192];
    struct cm_state *s = sample_state(), *t = new_state();
    struct cm_store *st;
    char *got;
    int fd;

    /* A database whose pages were overwritten: moved aside, a fresh one in its place. */
    snprintf(path, sizeof(path), "%s/certmon.db", dir);
    st = store_open_ok(path, NULL, __LINE__);
    put_all(st, s);
    store_close_ok(st);
    fd = open(path, O_WRONLY);
    CU_ASSERT_FATAL(fd >= 0);
    memset(buf, 0xa5, sizeof(buf));
    CU_ASSERT_EQUAL(pwrite(fd, buf, 200, 16), 200); /* the header after the magic */
    CU_ASSERT_EQUAL(pwrite(fd, buf, sizeof(buf), 4096), (ssize_t)sizeof(buf));
    close(fd);
    st = store_open_ok(path, t, __LINE__);
    EXPECT_INT(count_of(t), 0);
    snprintf(moved, sizeof(moved), "%s/certmon.db.corrupt-%lld", dir, (long long)NOW + 5000);
    CU_ASSERT_EQUAL(access(moved, F_OK), 0);
    /* The new database works. */
    put_all(st, s);
    store_close_ok(st);
    EXPECT_SQL(path, "SELECT count(*) FROM targets", "5");
    EXPECT_SQL(path, "PRAGMA integrity_check", "ok");

    /* A JSON state that does not load is moved aside the same way. */
    snprintf(path, sizeof(path), "%s/state.json", dir);
    write_text(path, "{\"version\": 1, \"targets\": [ {\"name\": tru");
    st = store_open_ok(path, t, __LINE__);
    EXPECT_INT(count_of(t), 0);
    store_close_ok(st);
    EXPECT_INT(count_prefixed(dir, "state.json.corrupt-"), 1);
    snprintf(moved, sizeof(moved), "%s/state.json.corrupt-%lld", dir, (long long)NOW + 5000);
    got = read_all(moved, NULL);
    EXPECT_STR(got, "{\"version\": 1, \"targets\": [ {\"name\": tru");
    free(got);
    EXPECT_SQL(path, "SELECT count(*) FROM targets", "0");

    /* Another program's SQLite file is not ours to move or change: an error, file intact. */
    snprintf(path, sizeof(path), "%s/other.db", dir);
    {
        sqlite3 *db;
        CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
        CU_ASSERT_EQUAL(sqlite3_exec(db,
                                     "PRAGMA application_id = 42; CREATE TABLE t(x);"
                                     "INSERT INTO t VALUES (7);",
                                     NULL, NULL, NULL),
                        SQLITE_OK);
        sqlite3_close(db);
        char err[600] = "";
        st = NULL;
        EXPECT_INT(cm_store_open(&loop, path, t, NOW, &st, err, sizeof(err)), CM_ESTATE);
        CU_ASSERT_PTR_NULL(st);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "a SQLite database of another program"));
        uv_run(&loop, UV_RUN_DEFAULT);
        EXPECT_SQL(path, "SELECT x FROM t", "7");
        EXPECT_INT(count_prefixed(dir, "other.db.corrupt"), 0);
    }
    /* A directory that does not exist: an error naming the file. */
    {
        char err[600] = "";
        snprintf(path, sizeof(path), "%s/no/such/dir/certmon.db", dir);
        st = NULL;
        CU_ASSERT(cm_store_open(&loop, path, t, NOW, &st, err, sizeof(err)) < 0);
        CU_ASSERT_PTR_NULL(st);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    cm_state_free(t);
    cm_state_free(s);
}

/* View hooks that count what they build and free. */
static int views_built, views_freed;

static void *count_build(json_t *report, const char *name, void *arg)
{
    const char *target = json_string_value(json_object_get(report, "target"));

    (void)arg;
    /* The entry's name, which a view may point at (the web's rows do). */
    CU_ASSERT_PTR_NOT_NULL(name);
    if (name && target)
        CU_ASSERT_STRING_EQUAL(name, target);
    views_built++;
    return json_incref(report);
}

static void count_free(void *v)
{
    views_freed++;
    json_decref(v);
}

/* Rows edited by hand through sqlite3: a bad field is ignored with a warning, a row without a
 * usable status is skipped, a report that is not JSON is dropped when checked; the rest
 * loads. Reports are checked (parsed, views built) after the load, in slices. */
static void test_store_hand_edits(void)
{
    const char *dir = fresh_dir("edits");
    char path[600];
    struct cm_state *s = sample_state(), *t = new_state();
    struct cm_store *st;
    sqlite3 *db;
    static const struct cm_state_view_hooks hooks = {count_build, count_free, NULL};

    snprintf(path, sizeof(path), "%s/certmon.db", dir);
    st = store_open_ok(path, NULL, __LINE__);
    put_all(st, s);
    store_close_ok(st);
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_exec(db,
                                 "UPDATE targets SET seen = 'not json' WHERE name = "
                                 "'example.com:443';"
                                 "UPDATE targets SET status = 'fine' WHERE name = "
                                 "'down.example.net:8443';"
                                 "UPDATE targets SET report = '{\"broken' WHERE name = "
                                 "'file:/etc/ssl/certs/a.pem';",
                                 NULL, NULL, NULL),
                    SQLITE_OK);
    sqlite3_close(db);
    cm_state_set_view_hooks(t, &hooks);
    views_built = views_freed = 0;
    st = store_open_ok(path, t, __LINE__);
    store_close_ok(st);
    EXPECT_INT(count_of(t), 4);
    CU_ASSERT_PTR_NULL(cm_state_get(t, "down.example.net:8443"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(cm_state_get(t, "example.com:443"));
    EXPECT_INT(cm_state_get(t, "example.com:443")->seen_count, 0);
    /* Nothing parsed yet: three reports wait (never.example.org has none). */
    EXPECT_INT(views_built, 0);
    CU_ASSERT_FALSE(cm_state_check_reports(t, 1));
    EXPECT_INT(views_built, 1);
    CU_ASSERT_TRUE(cm_state_check_reports(t, SIZE_MAX));
    EXPECT_INT(views_built, 2);
    CU_ASSERT_PTR_NOT_NULL(cm_state_get(t, "example.com:443")->report);
    CU_ASSERT_PTR_NOT_NULL(cm_state_get(t, "example.com:443")->view);
    CU_ASSERT_PTR_NOT_NULL(cm_state_get(t, "we\"ird\\name\n\t\xc3\xa9:443")->view);
    CU_ASSERT_PTR_NULL(cm_state_get(t, "file:/etc/ssl/certs/a.pem")->report);
    CU_ASSERT_PTR_NULL(cm_state_get(t, "file:/etc/ssl/certs/a.pem")->view);
    /* Checked once: nothing more to do. */
    CU_ASSERT_TRUE(cm_state_check_reports(t, SIZE_MAX));
    EXPECT_INT(views_built, 2);
    cm_state_free(t);
    EXPECT_INT(views_freed, 2);
    cm_state_free(s);
}

/* Reports are packed in memory and in the database; a packed report damaged by hand is
 * dropped when checked (with a warning), never served; a JSON text report (a database of
 * schema 2) is read as it is and packed once checked. */
static void test_store_packed_reports(void)
{
    const char *dir = fresh_dir("packed");
    char path[600], log[4096];
    struct cm_state *s = sample_state(), *t = new_state();
    struct cm_store *st;
    struct cm_state_entry *e;
    sqlite3 *db;
    size_t len;
    bool packed;
    const char *json = "{\"target\":\"file:/etc/ssl/certs/a.pem\",\"status\":\"ok\"}";
    char sql[512];

    snprintf(path, sizeof(path), "%s/certmon.db", dir);
    e = cm_state_get(s, "example.com:443");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    cm_state_report_data(e->report, &len, &packed);
    CU_ASSERT_TRUE(packed);
    CU_ASSERT(len * 3 < strlen(rtext(e)));
    st = store_open_ok(path, NULL, __LINE__);
    put_all(st, s);
    store_close_ok(st);
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(sql, sizeof(sql),
             "UPDATE targets SET report = substr(report, 1, 20) WHERE name = 'example.com:443';"
             "UPDATE targets SET report = '%s' WHERE name = 'file:/etc/ssl/certs/a.pem';",
             json);
    CU_ASSERT_EQUAL(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    capture_start();
    st = store_open_ok(path, t, __LINE__);
    store_close_ok(st);
    CU_ASSERT_TRUE(cm_state_check_reports(t, SIZE_MAX));
    capture_end(log, sizeof(log));
    CU_ASSERT_PTR_NULL(cm_state_get(t, "example.com:443")->report);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "target=example.com:443 field=report: not a JSON object"));
    e = cm_state_get(t, "file:/etc/ssl/certs/a.pem");
    EXPECT_STR(rtext(e), json);
    cm_state_report_data(e->report, &len, &packed);
    CU_ASSERT_TRUE(packed);
    /* The others came back as they were put. */
    EXPECT_STR(rtext(cm_state_get(t, "down.example.net:8443")),
               rtext(cm_state_get(s, "down.example.net:8443")));
    cm_state_free(t);
    cm_state_free(s);
}

/* An entry removed before its report was checked moves another into its slot: that one is
 * still checked. */
static void test_check_after_remove(void)
{
    const char *dir = fresh_dir("checkrm");
    char path[600];
    struct cm_state *s = sample_state(), *t = new_state();
    struct cm_store *st;
    static const struct cm_state_view_hooks hooks = {count_build, count_free, NULL};
    struct cm_state_entry *const *es;
    size_t n;

    snprintf(path, sizeof(path), "%s/certmon.db", dir);
    st = store_open_ok(path, NULL, __LINE__);
    put_all(st, s);
    store_close_ok(st);
    cm_state_set_view_hooks(t, &hooks);
    views_built = views_freed = 0;
    st = store_open_ok(path, t, __LINE__);
    store_close_ok(st);
    /* Check the first two, then remove the first: the last entry moves into slot 0. */
    CU_ASSERT_FALSE(cm_state_check_reports(t, 2));
    es = cm_state_entries(t, &n);
    EXPECT_INT(n, 5);
    cm_state_remove(t, es[0]);
    CU_ASSERT_TRUE(cm_state_check_reports(t, SIZE_MAX));
    es = cm_state_entries(t, &n);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_FALSE(es[i]->unchecked);
        CU_ASSERT((es[i]->report != NULL) == (es[i]->view != NULL));
    }
    cm_state_free(t);
    EXPECT_INT(views_freed, views_built);
    cm_state_free(s);
}

static void on_latest(void *arg, const char *target, const struct cm_history_row *r)
{
    char *buf = arg;
    size_t off = strlen(buf);

    snprintf(buf + off, 512 - off, "%s=%s:%s;", target, r->sha256, r->sans);
}

/* A two-certificate chain whose leaf has that fingerprint and those SANs. */
static void history_chain(struct cm_chain *ch, const char *sha, const char *san2, int64_t not_after)
{
    ch->count = 2;
    ch->certs = calloc(2, sizeof(*ch->certs));
    CU_ASSERT_PTR_NOT_NULL_FATAL(ch->certs);
    cm_tf_fill_cert(&ch->certs[0], "CN=example.com", "CN=Example CA", NOW - 86400, not_after,
                    false);
    cm_tf_fill_cert(&ch->certs[1], "CN=Example CA", "CN=Example Root", NOW - 86400,
                    NOW + 86400 * 1000LL, true);
    free(ch->certs[0].sha256);
    ch->certs[0].sha256 = cm_tf_strdup(sha);
    free(ch->certs[1].sha256);
    ch->certs[1].sha256 = cm_tf_strdup("ca01");
    if (san2) {
        char **v = realloc(ch->certs[0].sans, 2 * sizeof(*v));
        CU_ASSERT_PTR_NOT_NULL_FATAL(v);
        v[1] = cm_tf_strdup(san2);
        ch->certs[0].sans = v;
        ch->certs[0].san_count = ch->certs[0].san_total = 2;
    }
}

static void test_store_history(void)
{
    const char *dir = fresh_dir("history");
    char path[600], err[600] = "";
    struct cm_chain a = {0}, b = {0};
    struct cm_history_row *rows = NULL;
    struct cm_store *st;
    struct cm_store_stats stats;
    size_t n = 0;

    snprintf(path, sizeof(path), "%s/certmon.db", dir);
    history_chain(&a, "aaaa", NULL, NOW + 30 * 86400);
    history_chain(&b, "bbbb", "www.example.com", NOW + 90 * 86400);
    st = store_open_ok(path, NULL, __LINE__);
    EXPECT_INT(cm_store_seen(st, "web", &a, NOW), 0);
    EXPECT_INT(cm_store_seen(st, "web", &a, NOW + 3600), 0); /* last_seen moves */
    EXPECT_INT(cm_store_seen(st, "web", &a, NOW + 60), 0);   /* ... never back */
    EXPECT_INT(cm_store_seen(st, "web", &b, NOW + 7200), 0);
    EXPECT_INT(cm_store_seen(st, "other", &a, NOW - 500 * 86400), 0);
    EXPECT_INT(cm_store_sync(st, 5000), 0);
    cm_store_get_stats(st, &stats);
    EXPECT_INT(stats.history_written, 5);

    /* Newest first, read while the writer runs. */
    EXPECT_INT(cm_store_history(path, "web", &rows, &n, err, sizeof(err)), 0);
    EXPECT_INT(n, 2);
    if (n == 2) {
        EXPECT_STR(rows[0].sha256, "bbbb");
        EXPECT_INT(rows[0].first_seen, NOW + 7200);
        EXPECT_INT(rows[0].last_seen, NOW + 7200);
        EXPECT_STR(rows[0].sans, "example.com, www.example.com");
        EXPECT_STR(rows[0].chain, "bbbb ca01");
        EXPECT_INT(rows[0].not_after, NOW + 90 * 86400);
        EXPECT_STR(rows[1].sha256, "aaaa");
        EXPECT_INT(rows[1].first_seen, NOW);
        EXPECT_INT(rows[1].last_seen, NOW + 3600);
        EXPECT_STR(rows[1].subject, "CN=example.com");
        EXPECT_STR(rows[1].issuer, "CN=Example CA");
        EXPECT_STR(rows[1].key_type, "RSA");
        EXPECT_INT(rows[1].key_bits, 2048);
    }
    cm_history_free(rows, n);
    EXPECT_SQL(path, "SELECT count(*) FROM history", "3");

    /* Pruning drops what was last seen before the cutoff, nothing else. */
    EXPECT_INT(cm_store_prune(st, NOW - 400 * 86400), 0);
    EXPECT_INT(cm_store_sync(st, 5000), 0);
    EXPECT_SQL(path, "SELECT count(*) FROM history", "2");
    EXPECT_INT(cm_store_history(path, "other", &rows, &n, err, sizeof(err)), 0);
    EXPECT_INT(n, 0);
    cm_history_free(rows, n);
    store_close_ok(st);

    /* The newest leaf of each target, as the daemon restores it at start. */
    {
        char got[512] = "";
        EXPECT_INT(cm_store_latest(path, on_latest, got, err, sizeof(err)), 0);
        EXPECT_STR(got, "web=bbbb:example.com, www.example.com;");
    }

    /* The rows outlive the store (a restart). */
    EXPECT_INT(cm_store_history(path, "web", &rows, &n, err, sizeof(err)), 0);
    EXPECT_INT(n, 2);
    cm_history_free(rows, n);
    EXPECT_INT(cm_store_history("/nonexistent/certmon.db", "web", &rows, &n, err, sizeof(err)),
               -ENOENT);
    cm_chain_clear(&a);
    cm_chain_clear(&b);
}

/* A database of schema 1 (before the history) is upgraded when a store opens it; its rows
 * stay, and until then a reader finds no history rather than an error. */
static void test_store_upgrade(void)
{
    const char *dir = fresh_dir("upgrade");
    char path[600], err[600] = "";
    struct cm_history_row *rows = NULL;
    struct cm_state *s;
    struct cm_store *st;
    struct cm_chain a = {0};
    size_t n = 9;
    sqlite3 *db;

    snprintf(path, sizeof(path), "%s/certmon.db", dir);
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
    EXPECT_INT(sqlite3_exec(db,
                            "CREATE TABLE targets (id INTEGER PRIMARY KEY, name TEXT NOT NULL"
                            " UNIQUE, owner TEXT NOT NULL, status TEXT, last_probe INTEGER NOT"
                            " NULL DEFAULT 0, last_success INTEGER NOT NULL DEFAULT 0,"
                            " status_since INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL"
                            " DEFAULT 0, seen TEXT, posture_at INTEGER NOT NULL DEFAULT 0,"
                            " posture TEXT, report TEXT);"
                            "INSERT INTO targets (name, owner) VALUES ('web', 'web');"
                            "PRAGMA application_id = 1668113506; PRAGMA user_version = 1;",
                            NULL, NULL, NULL),
               SQLITE_OK);
    sqlite3_close(db);
    EXPECT_INT(cm_store_history(path, "web", &rows, &n, err, sizeof(err)), 0);
    EXPECT_INT(n, 0);

    s = new_state();
    st = store_open_ok(path, s, __LINE__);
    EXPECT_INT(count_of(s), 1);
    EXPECT_SQL(path, "PRAGMA user_version", "6");
    EXPECT_SQL(path, "SELECT (SELECT count(*) FROM results_a) + (SELECT count(*) FROM results_b)",
               "0");
    history_chain(&a, "aaaa", NULL, NOW + 30 * 86400);
    EXPECT_INT(cm_store_seen(st, "web", &a, NOW), 0);
    store_close_ok(st);
    EXPECT_INT(cm_store_history(path, "web", &rows, &n, err, sizeof(err)), 0);
    EXPECT_INT(n, 1);
    cm_history_free(rows, n);
    cm_chain_clear(&a);
    cm_state_free(s);
}

/* Two leaves first seen within the same second (a certificate replaced right after its first
 * sight): the one inserted later is the newer, in the history and for cm_store_latest. */
static void latest_sha(void *arg, const char *target, const struct cm_history_row *row)
{
    (void)target;
    snprintf(arg, 16, "%s", row->sha256);
}

static void test_store_same_second(void)
{
    const char *dir = fresh_dir("samesecond");
    char path[600], err[600] = "", latest[16] = "";
    struct cm_history_row *rows = NULL;
    struct cm_chain a = {0}, b = {0};
    struct cm_state *s = new_state();
    struct cm_store *st;
    size_t n = 0;

    snprintf(path, sizeof(path), "%s/certmon.db", dir);
    st = store_open_ok(path, s, __LINE__);
    /* b's key sorts after a's: the primary key's order would give a first. */
    history_chain(&a, "0000", NULL, NOW + 30 * 86400);
    history_chain(&b, "ffff", NULL, NOW + 60 * 86400);
    EXPECT_INT(cm_store_seen_as(st, "web", &a, CM_TRUST_PUBLIC, NOW), 0);
    EXPECT_INT(cm_store_seen_as(st, "web", &b, CM_TRUST_PUBLIC, NOW), 0);
    store_close_ok(st);
    EXPECT_INT(cm_store_history(path, "web", &rows, &n, err, sizeof(err)), 0);
    EXPECT_INT(n, 2);
    if (n == 2) {
        EXPECT_STR(rows[0].sha256, "ffff");
        EXPECT_STR(rows[1].sha256, "0000");
    }
    cm_history_free(rows, n);
    EXPECT_INT(cm_store_latest(path, latest_sha, latest, err, sizeof(err)), 0);
    EXPECT_STR(latest, "ffff");
    cm_chain_clear(&a);
    cm_chain_clear(&b);
    cm_state_free(s);
}

/* Takes the notifiers' tables of schema 6 out again (a database of schema 5). */
#define NOTIFY_DOWN "DROP VIEW current_alerts; DROP TABLE alerts; DROP TABLE alert_log; DROP TABLE outbox;"

/* Takes the results log of schema 5 out again, to make a database of an older schema by
 * hand. */
#define LOG_DOWN                                                                           \
    NOTIFY_DOWN "DROP VIEW current; DROP TABLE results_a; DROP TABLE results_b;"               \
    " ALTER TABLE targets DROP COLUMN seq;"

/* Two leaves' fingerprints. */
#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

/* What cm_store_pins hands over, as "target sha256 spki pinned_at;" lines. */
static void collect_pin_text(void *arg, const char *target, const struct cm_leaf_summary *p,
                             int64_t pinned_at)
{
    char *buf = arg, sha[CM_SHA256_HEX], spki[CM_SHA256_HEX] = "-";
    size_t off = strlen(buf);

    /* Shown by their first four hex digits. */
    cm_hex_encode(p->sha256, CM_SHA256_LEN, sha);
    if (p->has_spki)
        cm_hex_encode(p->spki_sha256, CM_SHA256_LEN, spki);
    snprintf(buf + off, 1024 - off, "%s %.4s %.4s %s %s %u %lld;", target, sha, spki, p->sans,
             p->key_type, p->key_bits, (long long)pinned_at);
}

/* Pins (pin = "tofu"): written, replaced, removed, read back; a database of schema 2 has no
 * pins table until a store opens it, and reads as none until then. */
static void test_store_pins(void)
{
    const char *dir = fresh_dir("pins");
    char path[600], err[600] = "", got[1024] = "";
    struct cm_leaf_summary a, b;
    struct cm_state *s;
    struct cm_store *st;
    sqlite3 *db;

    snprintf(path, sizeof(path), "%s/certmon.db", dir);
    EXPECT_INT(cm_store_pins(path, collect_pin_text, got, err, sizeof(err)), 0); /* no file */
    EXPECT_STR(got, "");
    EXPECT_INT(cm_leaf_summary_from(SHA_A, "CN=a", "CN=CA", "a.example, b.example", "EC", 256,
                                    NOW + 86400, &a),
               0);
    EXPECT_INT(cm_leaf_summary_from(SHA_B, "CN=a", "CN=CA", "a.example", "RSA", 2048,
                                    NOW + 2 * 86400, &b),
               0);
    memset(b.spki_sha256, 0x55, CM_SHA256_LEN);
    b.has_spki = true;
    s = new_state();
    st = store_open_ok(path, s, __LINE__);
    EXPECT_INT(cm_store_pin(st, "web", &a, NOW), 0);
    EXPECT_INT(cm_store_pin(st, "mail", &a, NOW), 0);
    EXPECT_INT(cm_store_pin(st, "web", &b, NOW + 5), 0);
    EXPECT_INT(cm_store_unpin(st, "mail"), 0);
    EXPECT_INT(cm_store_sync(st, 5000), 0);
    EXPECT_INT(cm_store_pins(path, collect_pin_text, got, err, sizeof(err)), 0);
    EXPECT_STR(got, "web bbbb 5555 a.example RSA 2048 1800000005;");
    store_close_ok(st);
    cm_state_free(s);
    /* A row whose fingerprint is no SHA-256 (edited by hand) is no pin. */
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
    EXPECT_INT(sqlite3_exec(db, "UPDATE pins SET sha256 = 'bbbb'", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    got[0] = '\0';
    EXPECT_INT(cm_store_pins(path, collect_pin_text, got, err, sizeof(err)), 0);
    EXPECT_STR(got, "");

    /* Back to schema 2 by hand: the reader finds no pins, the next store brings the table. */
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
    EXPECT_INT(sqlite3_exec(db,
                            LOG_DOWN "ALTER TABLE history DROP COLUMN trust; DROP TABLE pins;"
                            " PRAGMA user_version = 2;",
                            NULL, NULL, NULL),
               SQLITE_OK);
    sqlite3_close(db);
    got[0] = '\0';
    EXPECT_INT(cm_store_pins(path, collect_pin_text, got, err, sizeof(err)), 0);
    EXPECT_STR(got, "");
    s = new_state();
    st = store_open_ok(path, s, __LINE__);
    EXPECT_SQL(path, "PRAGMA user_version", "6");
    EXPECT_SQL(path, "SELECT count(*) FROM pragma_table_info('history') WHERE name = 'trust'", "1");
    EXPECT_INT(cm_store_pin(st, "web", &a, NOW), 0);
    store_close_ok(st);
    EXPECT_INT(cm_store_pins(path, collect_pin_text, got, err, sizeof(err)), 0);
    EXPECT_STR(got, "web aaaa - a.example, b.example EC 256 1800000000;");
    cm_state_free(s);
    cm_leaf_summary_clear(&a);
    cm_leaf_summary_clear(&b);
}

/* The trust of a leaf is kept with its history row (as first seen), read back by
 * cm_store_history, cm_store_latest and the JSON; a database of schema 3 gets the column when
 * a store opens it, and its rows read as unknown before and after. */
static void latest_trust(void *arg, const char *target, const struct cm_history_row *row)
{
    (void)target;
    *(enum cm_leaf_trust *)arg = row->trust;
}

static void test_store_trust(void)
{
    const char *dir = fresh_dir("trust");
    char path[600], err[600] = "";
    struct cm_history_row *rows = NULL;
    struct cm_chain a = {0}, b = {0};
    enum cm_leaf_trust latest = CM_TRUST_UNKNOWN;
    struct cm_state *s = new_state();
    struct cm_store *st;
    json_t *j;
    size_t n = 0;
    sqlite3 *db;

    snprintf(path, sizeof(path), "%s/certmon.db", dir);
    st = store_open_ok(path, s, __LINE__);
    history_chain(&a, "aaaa", NULL, NOW + 30 * 86400);
    history_chain(&b, "bbbb", NULL, NOW + 60 * 86400);
    EXPECT_INT(cm_store_seen_as(st, "web", &a, CM_TRUST_PRIVATE, NOW), 0);
    EXPECT_INT(cm_store_seen_as(st, "web", &a, CM_TRUST_PUBLIC, NOW + 10), 0); /* as first seen */
    EXPECT_INT(cm_store_seen_as(st, "web", &b, CM_TRUST_PUBLIC, NOW + 20), 0);
    store_close_ok(st);
    EXPECT_INT(cm_store_history(path, "web", &rows, &n, err, sizeof(err)), 0);
    EXPECT_INT(n, 2);
    if (n == 2) {
        EXPECT_INT(rows[0].trust, CM_TRUST_PUBLIC);
        EXPECT_INT(rows[1].trust, CM_TRUST_PRIVATE);
        j = cm_history_json(rows, n);
        EXPECT_STR(cm_json_str(j, "0.trust"), "public");
        EXPECT_STR(cm_json_str(j, "1.trust"), "private");
        json_decref(j);
    }
    cm_history_free(rows, n);
    EXPECT_INT(cm_store_latest(path, latest_trust, &latest, err, sizeof(err)), 0);
    EXPECT_INT(latest, CM_TRUST_PUBLIC);

    /* Back to schema 3: no column; read as unknown; upgraded by the next store. */
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
    EXPECT_INT(sqlite3_exec(db, LOG_DOWN "ALTER TABLE history DROP COLUMN trust; PRAGMA user_version = 3;",
                            NULL, NULL, NULL),
               SQLITE_OK);
    sqlite3_close(db);
    EXPECT_INT(cm_store_history(path, "web", &rows, &n, err, sizeof(err)), 0);
    EXPECT_INT(n, 2);
    if (n == 2) {
        EXPECT_INT(rows[0].trust, CM_TRUST_UNKNOWN);
        j = cm_history_json(rows, n);
        CU_ASSERT(json_is_null(cm_json_get(j, "0.trust")));
        json_decref(j);
    }
    cm_history_free(rows, n);
    EXPECT_INT(cm_store_latest(path, latest_trust, &latest, err, sizeof(err)), 0);
    EXPECT_INT(latest, CM_TRUST_UNKNOWN);
    st = store_open_ok(path, s, __LINE__);
    EXPECT_SQL(path, "PRAGMA user_version", "6");
    store_close_ok(st);
    cm_chain_clear(&a);
    cm_chain_clear(&b);
    cm_state_free(s);
}

/* A database of schema 2 (reports as JSON text, no log, no pins, a history without trust) is
 * upgraded in place: its rows and their reports stay and load; a read-only reader before the
 * upgrade reads it too. */
static void test_store_upgrade_2(void)
{
    const char *dir = fresh_dir("upgrade2");
    char path[600];
    struct cm_state *s, *u;
    struct cm_store *st;
    sqlite3 *db;
    const char *rep = "{\"target\":\"web\",\"status\":\"ok\"}";
    char sql[4096];

    snprintf(path, sizeof(path), "%s/certmon.db", dir);
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(sql, sizeof(sql),
             "CREATE TABLE targets (id INTEGER PRIMARY KEY, name TEXT NOT NULL"
             " UNIQUE, owner TEXT NOT NULL, status TEXT, last_probe INTEGER NOT NULL DEFAULT 0,"
             " last_success INTEGER NOT NULL DEFAULT 0, status_since INTEGER NOT NULL DEFAULT 0,"
             " failures INTEGER NOT NULL DEFAULT 0, seen TEXT, posture_at INTEGER NOT NULL"
             " DEFAULT 0, posture TEXT, report TEXT);"
             "CREATE TABLE history (target TEXT NOT NULL, sha256 TEXT NOT NULL, first_seen INTEGER"
             " NOT NULL, last_seen INTEGER NOT NULL, subject TEXT NOT NULL, sans TEXT NOT NULL,"
             " issuer TEXT NOT NULL, key_type TEXT NOT NULL, key_bits INTEGER NOT NULL, not_before"
             " INTEGER NOT NULL, not_after INTEGER NOT NULL, chain TEXT NOT NULL,"
             " PRIMARY KEY (target, sha256));"
             "INSERT INTO targets (name, owner, status, last_probe, seen, report) VALUES ('web',"
             " 'web', 'ok', 1800000000, '[[\"cert.expiring\",0,1799990000]]', '%s');"
             "PRAGMA application_id = 1668113506; PRAGMA user_version = 2;",
             rep);
    EXPECT_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    u = read_db(path, __LINE__);
    EXPECT_INT(count_of(u), 1);
    EXPECT_STR(rtext(cm_state_get(u, "web")), rep);
    cm_state_free(u);

    s = new_state();
    st = store_open_ok(path, s, __LINE__);
    store_close_ok(st);
    EXPECT_SQL(path, "PRAGMA user_version", "6");
    EXPECT_INT(count_of(s), 1);
    EXPECT_INT(cm_state_get(s, "web")->last_probe, 1800000000);
    EXPECT_INT(cm_state_get(s, "web")->seen_count, 1);
    EXPECT_STR(rtext(cm_state_get(s, "web")), rep);
    EXPECT_SQL(path, "SELECT typeof(report) FROM current", "text");
    cm_state_free(s);
}

/* The results log: each put of a known target appends a row; once the log holds more rows
 * than `targets` (and at least the threshold), the store folds it in steps after its
 * commits: every target's row gets its newest result, the log keeps only what came after
 * (and its newest row). At every moment a reader sees each target's newest result. */
static void test_store_fold(void)
{
    const char *dir = fresh_dir("fold");
    char path[600];
    struct cm_state *s = sample_state(), *u;
    struct cm_store *st;
    struct cm_store_stats stats;
    struct cm_state_entry *const *es;
    size_t n;
    bool changed;
    enum cm_status old;

    snprintf(path, sizeof(path), "%s/certmon.db", dir);
    st = store_open_ok(path, NULL, __LINE__);
    cm_store_set_fold_min(st, 10);
    put_all(st, s);
    EXPECT_INT(cm_store_sync(st, 5000), 0);
    /* New targets: rows of their own, no log rows. */
    EXPECT_SQL(path, "SELECT (SELECT count(*) FROM results_a) + (SELECT count(*) FROM results_b)",
               "0");
    es = cm_state_entries(s, &n);
    /* 60 rounds of results, a commit each: the log passes the threshold several times. */
    for (int round = 1; round <= 60; round++) {
        put_round(st, s, NOW + round);
        u = read_db(path, __LINE__);
        EXPECT_INT(count_of(u), n);
        for (size_t i = 0; i < n; i++)
            if (cm_state_get(u, es[i]->name))
                EXPECT_INT(cm_state_get(u, es[i]->name)->last_probe, NOW + round);
        cm_state_free(u);
    }
    cm_store_get_stats(st, &stats);
    CU_ASSERT(stats.folds >= 3);
    EXPECT_INT(stats.failures, 0);
    /* A removal and a return after folds: the old log rows of the name never come back. */
    record(cm_state_get(s, "example.com:443"), mismatched(), NOW + 5000, &changed, &old);
    EXPECT_INT(cm_store_delete(st, "example.com:443"), 0);
    EXPECT_INT(cm_store_put(st, cm_state_get(s, "example.com:443")), 0);
    store_close_ok(st);
    EXPECT_SQL(path, "SELECT last_probe FROM current WHERE name = 'example.com:443'", "1800005000");
    /* Folded: targets' rows are at most two folds behind, the log far shorter than 60 rounds
     * (a fold starts at 10 rows, and the table it leaves fills while it runs). */
    {
        char *left = sql_text(path, "SELECT (SELECT count(*) FROM results_a) +"
                                    " (SELECT count(*) FROM results_b)");
        CU_ASSERT(left && atoi(left) <= 30);
        free(left);
    }
    EXPECT_SQL(path, "SELECT min(last_probe) >= 1800000050 FROM targets", "1");
    EXPECT_SQL(path, "PRAGMA integrity_check", "ok");
    u = read_db(path, __LINE__);
    expect_same_state(s, u, __LINE__);
    cm_state_free(u);
    cm_state_free(s);
}

/* The columns of table t in `sqlite3` terms, "name type" sorted by name, without `id` (the
 * row id of `targets`; seq is the log's), malloc'd. */
static char *columns_of(const char *path, const char *t)
{
    char sql[256];

    snprintf(sql, sizeof(sql),
             "SELECT group_concat(c, ', ') FROM (SELECT name || ' ' || type AS c FROM"
             " pragma_table_info('%s') WHERE name != 'id' ORDER BY name)",
             t);
    return sql_text(path, sql);
}

/* Every column of a target's row survives a write, a fold and a restart. The log tables have
 * the columns of `targets` (store.c spells its statements from one list of them), and a log
 * row whose every column differs from the target's row is copied whole by the fold. The
 * columns are read from the file: a column added later is checked too, and the test fails
 * until its data differs in it. */
static void test_store_fold_columns(void)
{
    const char *dir = fresh_dir("fold_columns");
    char path[600], sql[256], *cols, *log_val[32] = {0}, *log_seq;
    const char *col[32];
    struct cm_state *s1 = new_state(), *s2 = new_state(), *u = new_state();
    struct cm_state_entry *e1, *e2;
    struct cm_posture *p;
    struct cm_store *st;
    struct cm_store_stats stats = {0};
    size_t ncol = 0;

    /* The same target twice, every persisted field different. */
    e1 = cm_state_put(s1, "example.com:443", "owner-1");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e1);
    record(e1, healthy(20), NOW, NULL, NULL);
    cm_state_set_posture(e1, some_posture(), NOW + 50);
    e2 = cm_state_put(s2, "example.com:443", "owner-2");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e2);
    record(e2, healthy(90), NOW - 3600, NULL, NULL);
    record(e2, failed(CM_ERRK_CONNECT, "connection refused"), NOW + 60, NULL, NULL);
    p = some_posture();
    p->dh_bits = 2048;
    cm_state_set_posture(e2, p, NOW + 70);

    snprintf(path, sizeof(path), "%s/certmon.db", dir);
    st = store_open_ok(path, NULL, __LINE__);
    cm_store_set_fold_min(st, 1);
    EXPECT_INT(cm_store_put(st, e1), 0);
    EXPECT_INT(cm_store_sync(st, 5000), 0);
    EXPECT_INT(cm_store_put(st, e2), 0);
    EXPECT_INT(cm_store_sync(st, 5000), 0);
    {
        char *t = columns_of(path, "targets"), *a = columns_of(path, "results_a"),
             *b = columns_of(path, "results_b");
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        CU_ASSERT(strstr(t, "owner TEXT") && strstr(t, "report") && strstr(t, "seq INTEGER"));
        EXPECT_STR(a, t);
        EXPECT_STR(b, t);
        free(t);
        free(a);
        free(b);
    }
    /* e2 is the log's one row, e1 the target's: they differ in every column. */
    EXPECT_SQL(path, "SELECT count(*) FROM results_a", "1");
    log_seq = sql_text(path, "SELECT seq FROM results_a");
    CU_ASSERT_PTR_NOT_NULL_FATAL(log_seq);
    cols = sql_text(path, "SELECT group_concat(name, ' ') FROM pragma_table_info('results_a')"
                          " WHERE name NOT IN ('seq', 'name')");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cols);
    for (char *sp, *c = strtok_r(cols, " ", &sp); c && ncol < 32; c = strtok_r(NULL, " ", &sp))
        col[ncol++] = c;
    EXPECT_INT(ncol, 10);
    for (size_t i = 0; i < ncol; i++) {
        char *row;
        snprintf(sql, sizeof(sql), "SELECT quote(%s) FROM results_a", col[i]);
        log_val[i] = sql_text(path, sql);
        snprintf(sql, sizeof(sql), "SELECT quote(%s) FROM targets", col[i]);
        row = sql_text(path, sql);
        CU_ASSERT_PTR_NOT_NULL_FATAL(log_val[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(row);
        if (!strcmp(row, log_val[i]))
            fprintf(stderr, "\n  column %s: the test's two rows do not differ\n", col[i]);
        CU_ASSERT(strcmp(row, log_val[i]) != 0);
        free(row);
    }
    /* The same result again until a fold has run through (a step with each commit). */
    for (int i = 0; i < 10 && stats.folds == 0; i++) {
        EXPECT_INT(cm_store_put(st, e2), 0);
        EXPECT_INT(cm_store_sync(st, 5000), 0);
        cm_store_get_stats(st, &stats);
    }
    EXPECT_INT(stats.folds, 1);
    store_close_ok(st);
    EXPECT_SQL(path, "SELECT count(*) FROM results_a", "0");
    for (size_t i = 0; i < ncol; i++) {
        char *row;
        snprintf(sql, sizeof(sql), "SELECT quote(%s) FROM targets", col[i]);
        row = sql_text(path, sql);
        expect_str(row, log_val[i], col[i], __LINE__);
        free(row);
        free(log_val[i]);
    }
    /* The row is current up to the folded row's seq (the results after it are in the log). */
    snprintf(sql, sizeof(sql), "SELECT t.seq >= %s AND t.seq <= c.seq FROM targets t, current c",
             log_seq);
    EXPECT_SQL(path, sql, "1");
    /* Restarted: the entry is e2's, every field. */
    st = store_open_ok(path, u, __LINE__);
    store_close_ok(st);
    EXPECT_INT(count_of(u), 1);
    expect_same_entry(e2, cm_state_get(u, "example.com:443"), __LINE__);
    free(cols);
    free(log_seq);
    cm_state_free(u);
    cm_state_free(s2);
    cm_state_free(s1);
}

/* True when the database holds what a fold leaves between its last copy and the emptying of
 * the table it folded: that table (the one with the older rows) is not empty, none of its
 * rows is newer than its target's row, and the other table has taken results since. */
static bool fold_copied_not_emptied(const char *path)
{
    static const char sql[] =
        "SELECT (SELECT count(*) FROM %s) > 0 AND (SELECT count(*) FROM %s) > 0"
        " AND (SELECT max(seq) FROM %s) > (SELECT max(seq) FROM %s)"
        " AND NOT EXISTS (SELECT 1 FROM %s r JOIN targets t ON t.name = r.name"
        " WHERE r.seq > t.seq)";
    char q[600];
    bool yes = false;

    for (int i = 0; i < 2 && !yes; i++) {
        const char *folded = i ? "results_b" : "results_a", *active = i ? "results_a" : "results_b";
        snprintf(q, sizeof(q), sql, folded, active, active, folded, folded);
        char *v = sql_text(path, q);
        yes = v && !strcmp(v, "1");
        free(v);
    }
    return yes;
}

/* A kill -9 after a fold's last copy and before the commit that empties the folded table: the
 * restarted store resumes the fold, finds nothing left to copy, and goes on committing (the
 * daemon under UBSan died at its first commit there, qsort of an empty fold list: every later
 * start too, recording nothing). cm_store_close does not commit an empty batch, so closing
 * right after that copy leaves the same file as the kill. */
static void test_store_fold_resumed_empty(void)
{
    const char *dir = fresh_dir("foldresume");
    char path[600];
    struct cm_state *s = sample_state(), *u;
    struct cm_store *st;
    struct cm_store_stats stats;
    struct cm_state_entry *const *es;
    size_t n;
    int round = 0;
    bool found = false;

    snprintf(path, sizeof(path), "%s/certmon.db", dir);
    st = store_open_ok(path, NULL, __LINE__);
    cm_store_set_fold_min(st, 10);
    put_all(st, s);
    EXPECT_INT(cm_store_sync(st, 5000), 0);
    es = cm_state_entries(s, &n);
    /* A commit a round; a fold takes a step with each: scan, copy, empty. */
    while (!found && ++round <= 60) {
        put_round(st, s, NOW + round);
        found = fold_copied_not_emptied(path);
    }
    store_close_ok(st);
    CU_ASSERT_FATAL(found);
    CU_ASSERT(fold_copied_not_emptied(path)); /* the close committed nothing more */

    /* The restart: every entry at its newest result, and the next results commit. */
    u = new_state();
    st = store_open_ok(path, u, __LINE__);
    EXPECT_INT(count_of(u), n);
    for (size_t i = 0; i < n; i++)
        if (cm_state_get(u, es[i]->name))
            EXPECT_INT(cm_state_get(u, es[i]->name)->last_probe, NOW + round);
    cm_state_free(u);
    for (int more = 1; more <= 3; more++)
        put_round(st, s, NOW + round + more);
    cm_store_get_stats(st, &stats);
    EXPECT_INT(stats.commits, 3);
    EXPECT_INT(stats.failures, 0);
    EXPECT_INT(stats.folds, 1); /* the resumed fold ended: its table emptied */
    store_close_ok(st);
    CU_ASSERT(!fold_copied_not_emptied(path));
    EXPECT_SQL(path, "SELECT count(DISTINCT last_probe) FROM current", "1");
    {
        char want[32];
        snprintf(want, sizeof(want), "%lld", (long long)(NOW + round + 3));
        EXPECT_SQL(path, "SELECT max(last_probe) FROM current", want);
    }
    EXPECT_SQL(path, "PRAGMA integrity_check", "ok");
    cm_state_free(s);
}

static void ignore_pin(void *arg, const char *target, const struct cm_leaf_summary *pin,
                       int64_t pinned_at)
{
    (void)target, (void)pin, (void)pinned_at;
    ++*(int *)arg;
}

static void ignore_latest(void *arg, const char *target, const struct cm_history_row *row)
{
    (void)target, (void)row;
    ++*(int *)arg;
}

/* `sqlite3 FILE SQL` in a process of its own (the supported way to look, store.h): its
 * output without the newline, or NULL when it failed. */
static char *sqlite3_cli(const char *path, const char *sql)
{
    char *argv[] = {"sqlite3", (char *)path, (char *)sql, NULL}, *out = NULL;

    if (cm_th_run(argv, &out, 30, NULL) != 0) {
        free(out);
        return NULL;
    }
    out[strcspn(out, "\n")] = '\0';
    return out;
}

/* The readers the daemon runs beside its writer (the pins and the last leaves at start, the
 * history endpoint, each with a connection of its own) leave the writer's lock on the file
 * alone: a raw open and close of the file in the writer's process would drop it (POSIX
 * locks belong to the process), and then another process closing the file takes itself for
 * the last user, checkpoints and deletes the WAL under the writer, whose commits from then
 * on go to the deleted file: nobody sees them and a kill -9 loses them all. */
static void test_store_readers_keep_lock(void)
{
    const char *dir = fresh_dir("readers");
    char path[600], wal[620], err[600], want[32];
    struct cm_state *s = sample_state();
    struct cm_store *st;
    struct cm_history_row *rows = NULL;
    size_t n = count_of(s), nrows = 0;
    int pins = 0, leaves = 0;
    char *got;

    snprintf(path, sizeof(path), "%s/certmon.db", dir);
    snprintf(wal, sizeof(wal), "%s-wal", path);
    st = store_open_ok(path, NULL, __LINE__);
    put_all(st, s);
    EXPECT_INT(cm_store_sync(st, 5000), 0);
    EXPECT_INT(cm_store_pins(path, ignore_pin, &pins, err, sizeof(err)), 0);
    EXPECT_INT(cm_store_latest(path, ignore_latest, &leaves, err, sizeof(err)), 0);
    EXPECT_INT(cm_store_history(path, "example.com:443", &rows, &nrows, err, sizeof(err)), 0);
    cm_history_free(rows, nrows);
    cm_state_free(read_db(path, __LINE__));
    for (int round = 1; round <= 2; round++) {
        /* Someone looks, and closes the file while the writer holds it. */
        got = sqlite3_cli(path, "SELECT count(*) FROM current");
        snprintf(want, sizeof(want), "%zu", n);
        EXPECT_STR(got ? got : "(failed)", want);
        free(got);
        CU_ASSERT_EQUAL(access(wal, F_OK), 0);
        /* The writer's next results are what the next look sees. */
        put_round(st, s, NOW + 100 * round);
        got = sqlite3_cli(path, "SELECT min(last_probe) FROM current");
        snprintf(want, sizeof(want), "%lld", (long long)(NOW + 100 * round));
        EXPECT_STR(got ? got : "(failed)", want);
        free(got);
    }
    store_close_ok(st);
    cm_state_free(s);
}

/* cm_store_alert_fn: the alert rows a read handed over, by notifier ({"NAME": [target, ...]}). */
static void alert_targets(void *arg, const char *notifier, const struct cm_alert_row *r)
{
    json_t *by = arg, *v = json_object_get(by, notifier);

    if (!v)
        json_object_set_new(by, notifier, v = json_array());
    json_array_append_new(v, json_string(r->target));
}

/* `state export`'s read of the database at path (cm_store_read_all) has the notifiers' rows
 * that cm_store_notify_read gave (want), and no targets; with the alert callback, the same
 * alerts one by one, in order, and no "alerts" members. */
static void expect_read_all(const char *path, json_t *want, unsigned line)
{
    struct cm_state *u = NULL;
    json_t *got = NULL, *by = json_object(), *v;
    const char *name;
    char err[600] = "";

    CU_ASSERT_FATAL(cm_state_new(&u) == 0);
    expect_int(cm_store_read_all(path, u, &got, NULL, NULL, err, sizeof(err)), 0,
               "cm_store_read_all", line);
    if (!json_equal(want, got))
        fprintf(stderr, "\n  line %u: cm_store_read_all's rows differ: %s\n", line, err);
    CU_ASSERT(json_equal(want, got));
    expect_int(count_of(u), 0, "count_of(u)", line);
    json_decref(got);
    cm_state_clear(u);
    expect_int(cm_store_read_all(path, u, &got, alert_targets, by, err, sizeof(err)), 0,
               "cm_store_read_all (callback)", line);
    json_object_foreach(want, name, v)
    {
        size_t i;
        json_t *a;
        CU_ASSERT_PTR_NULL(json_object_get(json_object_get(got, name), "alerts"));
        json_array_foreach(json_object_get(v, "alerts"), i, a)
        {
            expect_str(json_string_value(json_array_get(json_object_get(by, name), i)),
                       json_string_value(json_object_get(a, "target")), "alert row target", line);
        }
        expect_int(json_array_size(json_object_get(by, name)),
                   json_array_size(json_object_get(v, "alerts")), "alert rows", line);
    }
    json_decref(got);
    json_decref(by);
    cm_state_free(u);
}

/* The notifiers' rows (schema 6): alerts upserted and deleted by key, outbox messages and
 * grouped notices put, tried and deleted, a notifier dropped; read back as the document
 * cm_notify_load_json takes, and by sqlite3. A database of schema 5 gets the tables. */
static void test_store_notify(void)
{
    const char *dir = fresh_dir("notify");
    char path[600], err[600] = "";
    struct cm_store *st;
    json_t *j = NULL;
    sqlite3 *db;
    struct cm_alert_row pending = {.target = "www:443",
                                   .id = "cert.expiring",
                                   .position = 0,
                                   .severity = CM_SEV_WARNING,
                                   .message = "expires in 20 days",
                                   .started_at = NOW,
                                   .seq = 7};
    struct cm_alert_row fired = pending;
    struct cm_alert_row other = {.target = "mail:25",
                                 .id = "chain.self_signed",
                                 .position = -1,
                                 .severity = CM_SEV_CRITICAL,
                                 .message = "self-signed \"x\"",
                                 .started_at = NOW - 5,
                                 .fired = true,
                                 .fired_at = NOW,
                                 .notified_at = NOW,
                                 .seq = 3};
    struct cm_notify_msg_row m1 = {.seq = 10,
                                   .url = "http://127.0.0.1:9/hook",
                                   .created_at = NOW,
                                   .notices = "[{\"kind\":\"firing\"}]"};
    struct cm_notify_msg_row g1 = {.seq = 11, .created_at = NOW + 1, .notices = "[{\"k\":1}]"};
    struct cm_notify_msg_row m2 = {.seq = 12, .url = "u", .created_at = NOW, .notices = "[]"};

    fired.fired = true;
    fired.fired_at = NOW + 60;
    fired.notified_at = NOW + 3600;
    fired.severity = CM_SEV_CRITICAL;
    snprintf(path, sizeof(path), "%s/certmon.db", dir);
    st = store_open_ok(path, NULL, __LINE__);
    EXPECT_INT(cm_store_alert(st, "hook", &pending, false), 0);
    EXPECT_INT(cm_store_alert(st, "hook", &other, false), 0);
    EXPECT_INT(cm_store_alert(st, "gone", &other, false), 0);
    EXPECT_INT(cm_store_outbox_put(st, "hook", &m1), 0);
    EXPECT_INT(cm_store_outbox_put(st, "hook", &g1), 0);
    EXPECT_INT(cm_store_outbox_put(st, "hook", &m2), 0);
    EXPECT_INT(cm_store_outbox_put(st, "gone", &m2), 0);
    EXPECT_INT(cm_store_sync(st, 5000), 0);
    EXPECT_SQL(path, "SELECT fired_at IS NULL FROM current_alerts WHERE target = 'www:443'", "1");
    /* The row follows the alert: fired, reminded; the other resolves. */
    EXPECT_INT(cm_store_alert(st, "hook", &fired, false), 0);
    EXPECT_INT(cm_store_alert(st, "hook", &other, true), 0);
    EXPECT_INT(cm_store_outbox_tried(st, "hook", 10, 3), 0);
    EXPECT_INT(cm_store_outbox_delete(st, "hook", 12), 0);
    EXPECT_INT(cm_store_notifier_drop(st, "gone"), 0);
    store_close_ok(st);
    EXPECT_SQL(path, "PRAGMA user_version", "6");
    EXPECT_SQL(path, "SELECT count(*) FROM current_alerts", "1");
    EXPECT_SQL(path,
               "SELECT severity || ' ' || fired_at || ' ' || notified_at FROM current_alerts",
               "critical 1800000060 1800003600");
    EXPECT_SQL(path, "SELECT count(*) FROM alerts", "0"); /* all in the log still */
    EXPECT_SQL(path, "SELECT group_concat(seq || ':' || attempts, ' ') FROM outbox", "10:3 11:0");

    EXPECT_INT(cm_store_notify_read(path, &j, NULL, NULL, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    EXPECT_INT(json_object_size(j), 1);
    expect_read_all(path, j, __LINE__);
    EXPECT_STR(cm_json_str(j, "hook.alerts.0.target"), "www:443");
    EXPECT_STR(cm_json_str(j, "hook.alerts.0.id"), "cert.expiring");
    EXPECT_STR(cm_json_str(j, "hook.alerts.0.severity"), "critical");
    EXPECT_STR(cm_json_str(j, "hook.alerts.0.message"), "expires in 20 days");
    EXPECT_INT(json_integer_value(cm_json_get(j, "hook.alerts.0.position")), 0);
    EXPECT_INT(json_integer_value(cm_json_get(j, "hook.alerts.0.started_at")), NOW);
    EXPECT_INT(json_integer_value(cm_json_get(j, "hook.alerts.0.fired_at")), NOW + 60);
    EXPECT_INT(json_integer_value(cm_json_get(j, "hook.alerts.0.notified_at")), NOW + 3600);
    EXPECT_INT(json_integer_value(cm_json_get(j, "hook.alerts.0.seq")), 7);
    EXPECT_INT(json_array_size(cm_json_get(j, "hook.queue")), 2);
    EXPECT_STR(cm_json_str(j, "hook.queue.0.url"), "http://127.0.0.1:9/hook");
    EXPECT_INT(json_integer_value(cm_json_get(j, "hook.queue.0.attempts")), 3);
    EXPECT_STR(cm_json_str(j, "hook.queue.0.notices.0.kind"), "firing");
    CU_ASSERT(json_is_true(cm_json_get(j, "hook.queue.1.grouping")));
    EXPECT_INT(json_integer_value(cm_json_get(j, "hook.queue.1.created_at")), NOW + 1);
    json_decref(j);

    /* The log is folded into `alerts` once it holds 1,000 rows and twice as many as it: the
     * newest row of each alert stays, removals go, the log is emptied. */
    st = store_open_ok(path, NULL, __LINE__);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 600; i++) {
            char t[32];
            struct cm_alert_row r = other;
            snprintf(t, sizeof(t), "t%03d:443", i);
            r.target = t;
            r.notified_at = NOW + round;
            EXPECT_INT(cm_store_alert(st, "bulk", &r, false), 0);
        }
    EXPECT_INT(cm_store_sync(st, 5000), 0);
    EXPECT_SQL(path, "SELECT count(*) FROM alert_log", "0");
    EXPECT_SQL(path,
               "SELECT count(*) || ' ' || min(notified_at) FROM alerts WHERE notifier = 'bulk'",
               "600 1800000001");
    {
        struct cm_alert_row r = other;
        r.target = "t007:443";
        EXPECT_INT(cm_store_alert(st, "bulk", &r, true), 0);
    }
    store_close_ok(st);
    EXPECT_SQL(path, "SELECT count(*) FROM current_alerts WHERE notifier = 'bulk'", "599");
    EXPECT_SQL(path, "SELECT count(*) FROM current_alerts WHERE target = 't007:443'", "0");
    EXPECT_INT(cm_store_notify_read(path, &j, NULL, NULL, err, sizeof(err)), 0);
    EXPECT_INT(json_array_size(cm_json_get(j, "bulk.alerts")), 599);
    expect_read_all(path, j, __LINE__); /* the folded table and the log after it */
    json_decref(j);

    /* Every row of every notifier goes at once. */
    st = store_open_ok(path, NULL, __LINE__);
    EXPECT_INT(cm_store_notifier_drop(st, NULL), 0);
    store_close_ok(st);
    EXPECT_SQL(path,
               "SELECT (SELECT count(*) FROM alerts) + (SELECT count(*) FROM alert_log) +"
               " (SELECT count(*) FROM outbox)",
               "0");

    /* Back to schema 5: the reader finds no alerts; the next store brings the tables. */
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
    EXPECT_INT(sqlite3_exec(db, NOTIFY_DOWN "PRAGMA user_version = 5;", NULL, NULL, NULL),
               SQLITE_OK);
    sqlite3_close(db);
    EXPECT_INT(cm_store_notify_read(path, &j, NULL, NULL, err, sizeof(err)), 0);
    EXPECT_INT(json_object_size(j), 0);
    json_decref(j);
    {
        struct cm_state *u = NULL;
        CU_ASSERT_FATAL(cm_state_new(&u) == 0);
        EXPECT_INT(cm_store_read_all(path, u, &j, NULL, NULL, err, sizeof(err)), 0);
        EXPECT_INT(json_object_size(j), 0);
        json_decref(j);
        cm_state_free(u);
    }
    st = store_open_ok(path, NULL, __LINE__);
    EXPECT_INT(cm_store_alert(st, "hook", &other, false), 0);
    store_close_ok(st);
    EXPECT_SQL(path, "PRAGMA user_version", "6");
    EXPECT_SQL(path, "SELECT target || ' ' || position || ' ' || seq FROM current_alerts",
               "mail:25 -1 3");
    /* No file: nothing; for `state export`, an error that says so. */
    snprintf(path, sizeof(path), "%s/none.db", dir);
    EXPECT_INT(cm_store_notify_read(path, &j, NULL, NULL, err, sizeof(err)), 0);
    EXPECT_INT(json_object_size(j), 0);
    json_decref(j);
    {
        struct cm_state *u = NULL;
        CU_ASSERT_FATAL(cm_state_new(&u) == 0);
        j = json_null(); /* a singleton: nothing to leak when overwritten */
        EXPECT_INT(cm_store_read_all(path, u, &j, NULL, NULL, err, sizeof(err)), -ENOENT);
        CU_ASSERT_PTR_NULL(j);
        CU_ASSERT(strstr(err, "none.db does not exist") != NULL);
        cm_state_free(u);
    }
}

static CU_TestInfo tests[] = {
    {"put/get/remove 5000 names in random order", test_put_get_remove},
    {"an entry's memory (printed)", test_entry_memory},
    {"random puts and removes in a small table", test_churn},
    {"record: a first result", test_record_first},
    {"record: first-seen times merge", test_record_first_seen},
    {"record: status, failures, last success", test_record_status},
    {"posture in the state file, both ways", test_posture_json},
    {"serialize: the document", test_serialize_shape},
    {"serialize, write, load: the same state", test_round_trip},
    {"write_file: atomic, 0600, nothing left behind", test_write_file},
    {"write_file: failures", test_write_file_fails},
    {"load: missing file is a first start", test_load_missing},
    {"load: not JSON", test_load_garbage},
    {"load: wrong shape loads nothing", test_load_wrong_shape},
    {"load: other layouts of the same JSON", test_load_other_layouts},
    {"load: the report key elsewhere in the line", test_load_report_key_elsewhere},
    {"load: unknown finding ids are dropped", test_load_unknown_seen},
    {"load: a field of the wrong type is ignored and logged", test_load_wrong_types},
    {"move_aside", test_move_aside},
    {"store: rows both ways, read while writing, delete", test_store_round_trip},
    {"store: history rows, newest first, pruned", test_store_history},
    {"store: schema 1 upgraded to the history's", test_store_upgrade},
    {"store: pins both ways; schema 2 upgraded", test_store_pins},
    {"store: the trust of history rows; schema 3 upgraded", test_store_trust},
    {"store: leaves first seen in the same second: the later is newer", test_store_same_second},
    {"store: committed within the commit delay", test_store_commit_delay},
    {"store: a JSON state is imported once", test_store_import_json},
    {"store: corrupt files moved aside, foreign ones left alone", test_store_corrupt},
    {"store: rows edited by hand; reports checked in slices", test_store_hand_edits},
    {"store: reports packed; damaged ones dropped, JSON ones packed", test_store_packed_reports},
    {"store: schema 2 upgraded in place (the results log)", test_store_upgrade_2},
    {"store: the notifiers' alerts and outbox rows; schema 5 upgraded", test_store_notify},
    {"store: the results log folded into the rows", test_store_fold},
    {"store: every column survives a write, a fold and a restart", test_store_fold_columns},
    {"store: a fold cut short after its last copy resumes", test_store_fold_resumed_empty},
    {"store: readers beside the writer keep its lock", test_store_readers_keep_lock},
    {"store: a removal during the checks", test_check_after_remove},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("state", tests, suite_init, suite_clean);
}
