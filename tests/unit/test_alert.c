/* Unit tests for the alert state machine (src/notify/alert.c): firing at once and after `for`,
 * pending alerts that go away, severity changes, repeats (late ticks included), resolution,
 * what a result without a certificate keeps, alerts per position and per target, forgetting
 * a target, the next due time, the JSON round trip across a "restart" and its refusals, text
 * that is not UTF-8, running out of memory at every allocation, and a 10,000-target run. Every
 * event is checked field by field at fixed times. */
#include "cmtest.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "certmon/notify/alert.h"
#include "certmon/analysis/analyze.h"
#include "certmon/base/error.h"

#define T ((int64_t)1800000000) /* 2027-01-15T08:00:00Z */

#define WARN CM_SEV_WARNING
#define CRIT CM_SEV_CRITICAL

/* ---- Running out of memory ----
 *
 * Without AddressSanitizer (which owns malloc), this program's malloc, calloc and realloc
 * can fail the Nth allocation, for the whole process (libc's strdup and jansson included).
 * Every allocation point of observe, from_json and to_json is made to fail in turn: each
 * call returns -ENOMEM or NULL or succeeds, the table stays usable, and once memory is back
 * the next observe brings it to the same state as if nothing had failed. */
#if defined(__SANITIZE_ADDRESS__)
#define TORTURE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TORTURE 0
#endif
#endif
#if !defined(TORTURE) && defined(__GLIBC__)
#define TORTURE 1
#elif !defined(TORTURE)
#define TORTURE 0
#endif

#if TORTURE
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);

static long alloc_fail_at = -1; /* the allocation that fails, counted from 0; -1: none */
static long alloc_count;
static bool alloc_hold; /* the test's own allocations (recording events) never fail */

static bool alloc_fails(void)
{
    return !alloc_hold && alloc_fail_at >= 0 && alloc_count++ == alloc_fail_at;
}

void *malloc(size_t n)
{
    return alloc_fails() ? NULL : __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    return alloc_fails() ? NULL : __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    return alloc_fails() ? NULL : __libc_realloc(p, n);
}

#else
static bool alloc_hold;
#endif

/* ---- Recording events ---- */

struct ev {
    enum cm_alert_kind kind;
    char *target;
    const char *id;
    int position;
    enum cm_severity severity, previous;
    char *message;
    int64_t started_at, fired_at, at;
};

struct rec {
    struct ev *v;
    size_t n, cap;
};

static void record(const struct cm_alert_event *e, void *arg)
{
    struct rec *r = arg;
    struct ev *v;

    alloc_hold = true;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->v = realloc(r->v, r->cap * sizeof(*r->v));
        CU_ASSERT_PTR_NOT_NULL_FATAL(r->v);
    }
    v = &r->v[r->n++];
    *v = (struct ev){.kind = e->kind,
                     .target = strdup(e->target),
                     .id = e->id,
                     .position = e->position,
                     .severity = e->severity,
                     .previous = e->previous,
                     .message = strdup(e->message),
                     .started_at = e->started_at,
                     .fired_at = e->fired_at,
                     .at = e->at};
    CU_ASSERT_PTR_NOT_NULL_FATAL(v->target);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v->message);
    alloc_hold = false;
}

static void rec_clear(struct rec *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].target);
        free(r->v[i].message);
    }
    r->n = 0;
}

static void rec_free(struct rec *r)
{
    rec_clear(r);
    free(r->v);
    r->v = NULL;
    r->cap = 0;
}

/* Event i of r is exactly this. */
#define EXPECT_EV(r, i, kind, target, id, pos, sev, prev, msg, started, fired, at)                 \
    expect_ev((r), (i), (kind), (target), (id), (pos), (sev), (prev), (msg), (started), (fired),   \
              (at), __LINE__)

static void expect_ev(const struct rec *r, size_t i, enum cm_alert_kind kind, const char *target,
                      const char *id, int pos, enum cm_severity sev, enum cm_severity prev,
                      const char *msg, int64_t started, int64_t fired, int64_t at, unsigned line)
{
    const struct ev *e;

    if (i >= r->n) {
        expect_int(r->n, i + 1, "number of events", line);
        return;
    }
    e = &r->v[i];
    expect_str(cm_alert_kind_name(e->kind), cm_alert_kind_name(kind), "kind", line);
    expect_str(e->target, target, "target", line);
    expect_str(e->id, id, "id", line);
    expect_int(e->position, pos, "position", line);
    expect_str(cm_severity_name(e->severity), cm_severity_name(sev), "severity", line);
    expect_str(cm_severity_name(e->previous), cm_severity_name(prev), "previous", line);
    expect_str(e->message, msg, "message", line);
    expect_int(e->started_at, started, "started_at", line);
    expect_int(e->fired_at, fired, "fired_at", line);
    expect_int(e->at, at, "at", line);
}

/* ---- Building findings ---- */

#define MAXF 64

struct fset {
    struct cm_finding items[MAXF];
    int64_t seen[MAXF];
    struct cm_findings f;
};

static struct fset *fs_reset(struct fset *s)
{
    memset(s, 0, sizeof(*s));
    s->f.items = s->items;
    return s;
}

/* Adds a finding with a catalogue id (the static pointer, as cm_analyze gives it); the
 * message is borrowed. */
static void fs_add(struct fset *s, const char *id, enum cm_severity sev, int pos, const char *msg)
{
    const struct cm_finding_def *d = cm_finding_lookup(id);

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_FATAL(s->f.count < MAXF);
    s->items[s->f.count] =
        (struct cm_finding){.id = d->id, .severity = sev, .message = (char *)msg, .position = pos};
    s->seen[s->f.count] = 0;
    s->f.count++;
}

static struct cm_alerts *new_table(void)
{
    struct cm_alerts *a = NULL;

    CU_ASSERT_EQUAL_FATAL(cm_alerts_new(&a), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    return a;
}

static const struct cm_alert_opts at_once = {0, 0};

/* ---- Tests ---- */

static void test_kind_name(void)
{
    EXPECT_STR(cm_alert_kind_name(CM_ALERT_FIRING), "firing");
    EXPECT_STR(cm_alert_kind_name(CM_ALERT_CHANGED), "changed");
    EXPECT_STR(cm_alert_kind_name(CM_ALERT_REPEAT), "repeat");
    EXPECT_STR(cm_alert_kind_name(CM_ALERT_RESOLVED), "resolved");
}

static void test_fire_at_once(void)
{
    struct cm_alerts *a = new_table();
    struct rec r = {0};
    struct fset s;

    fs_add(fs_reset(&s), "cert.expiring", WARN, 0, "expires in 20 days");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &at_once, T, record, &r), 0);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_FIRING, "www:443", "cert.expiring", 0, WARN, WARN,
              "expires in 20 days", T, T, T);
    EXPECT_INT(cm_alerts_count(a), 1);

    /* Still there: nothing more, and nothing is ever due without repeat_s. */
    rec_clear(&r);
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &at_once, T + 60, record, &r), 0);
    EXPECT_INT(cm_alerts_tick(a, &at_once, T + 100000, record, &r), INT64_MAX);
    EXPECT_INT(r.n, 0);

    /* A first-seen time from the state is the start; the firing is now. */
    s.seen[0] = T - 500;
    EXPECT_INT(cm_alerts_observe(a, "mail:25", &s.f, s.seen, &at_once, T + 10, record, &r), 0);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_FIRING, "mail:25", "cert.expiring", 0, WARN, WARN,
              "expires in 20 days", T - 500, T + 10, T + 10);
    EXPECT_INT(cm_alerts_count(a), 2);
    rec_free(&r);
    cm_alerts_free(a);
}

static void test_fire_after_for(void)
{
    const struct cm_alert_opts o = {300, 0};
    struct cm_alerts *a = new_table();
    struct rec r = {0};
    struct fset s;

    fs_add(fs_reset(&s), "chain.incomplete", CRIT, -1, "no intermediate");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T, record, &r), 0);
    EXPECT_INT(r.n, 0);
    EXPECT_INT(cm_alerts_count(a), 1);
    EXPECT_INT(cm_alerts_next(a, &o), T + 300);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 299, record, &r), T + 300);
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T + 200, record, &r), 0);
    EXPECT_INT(r.n, 0);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 300, record, &r), INT64_MAX);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_FIRING, "www:443", "chain.incomplete", -1, CRIT, CRIT,
              "no intermediate", T, T + 300, T + 300);
    rec_clear(&r);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 1000, record, &r), INT64_MAX);
    EXPECT_INT(r.n, 0);

    /* Seen long before: the next tick fires it, at the tick's time. */
    s.seen[0] = T - 1000;
    EXPECT_INT(cm_alerts_observe(a, "old:443", &s.f, s.seen, &o, T, record, &r), 0);
    EXPECT_INT(r.n, 0);
    EXPECT_INT(cm_alerts_next(a, &o), T - 700);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 5, record, &r), INT64_MAX);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_FIRING, "old:443", "chain.incomplete", -1, CRIT, CRIT,
              "no intermediate", T - 1000, T + 5, T + 5);
    rec_free(&r);
    cm_alerts_free(a);
}

static void test_pending_goes_away(void)
{
    const struct cm_alert_opts o = {300, 60};
    struct cm_alerts *a = new_table();
    struct rec r = {0};
    struct fset s;

    fs_add(fs_reset(&s), "host.mismatch", CRIT, -1, "name not in SANs");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T, record, &r), 0);
    EXPECT_INT(cm_alerts_observe(a, "www:443", &fs_reset(&s)->f, NULL, &o, T + 299, record, &r), 0);
    EXPECT_INT(cm_alerts_count(a), 0);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 10000, record, &r), INT64_MAX);

    /* NULL findings are the same as none. */
    fs_add(fs_reset(&s), "host.mismatch", CRIT, -1, "name not in SANs");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T + 20000, record, &r), 0);
    EXPECT_INT(cm_alerts_observe(a, "www:443", NULL, NULL, &o, T + 20001, record, &r), 0);
    EXPECT_INT(cm_alerts_count(a), 0);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 30000, record, &r), INT64_MAX);
    EXPECT_INT(r.n, 0);
    rec_free(&r);
    cm_alerts_free(a);
}

static void test_changed_while_firing(void)
{
    const struct cm_alert_opts o = {0, 3600};
    struct cm_alerts *a = new_table();
    struct rec r = {0};
    struct fset s;

    fs_add(fs_reset(&s), "cert.expiring", WARN, 0, "expires in 20 days");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T, record, &r), 0);
    fs_add(fs_reset(&s), "cert.expiring", CRIT, 0, "expires in 6 days");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T + 1000, record, &r), 0);
    EXPECT_INT(r.n, 2);
    EXPECT_EV(&r, 1, CM_ALERT_CHANGED, "www:443", "cert.expiring", 0, CRIT, WARN,
              "expires in 6 days", T, T, T + 1000);

    /* The reminder clock restarted at the change. */
    rec_clear(&r);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 3600, record, &r), T + 4600);
    EXPECT_INT(r.n, 0);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 4600, record, &r), T + 8200);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_REPEAT, "www:443", "cert.expiring", 0, CRIT, CRIT,
              "expires in 6 days", T, T, T + 4600);

    /* And back down. */
    rec_clear(&r);
    fs_add(fs_reset(&s), "cert.expiring", WARN, 0, "expires in 25 days");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T + 5000, record, &r), 0);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_CHANGED, "www:443", "cert.expiring", 0, WARN, CRIT,
              "expires in 25 days", T, T, T + 5000);
    EXPECT_INT(cm_alerts_next(a, &o), T + 8600);
    rec_free(&r);
    cm_alerts_free(a);
}

static void test_changed_while_pending(void)
{
    const struct cm_alert_opts o = {300, 0};
    struct cm_alerts *a = new_table();
    struct rec r = {0};
    struct fset s;

    fs_add(fs_reset(&s), "cert.expiring", WARN, 0, "expires in 8 days");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T, record, &r), 0);
    fs_add(fs_reset(&s), "cert.expiring", CRIT, 0, "expires in 7 days");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T + 100, record, &r), 0);
    EXPECT_INT(r.n, 0);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 300, record, &r), INT64_MAX);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_FIRING, "www:443", "cert.expiring", 0, CRIT, CRIT,
              "expires in 7 days", T, T + 300, T + 300);
    rec_free(&r);
    cm_alerts_free(a);
}

static void test_repeat(void)
{
    const struct cm_alert_opts o = {0, 100};
    struct cm_alerts *a = new_table();
    struct rec r = {0};
    struct fset s;

    fs_add(fs_reset(&s), "key.weak", CRIT, 0, "RSA 1024");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T, record, &r), 0);
    rec_clear(&r);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 99, record, &r), T + 100);
    EXPECT_INT(r.n, 0);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 100, record, &r), T + 200);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_REPEAT, "www:443", "key.weak", 0, CRIT, CRIT, "RSA 1024", T, T,
              T + 100);

    /* Late by two and a half intervals: one reminder, the next one interval after it. */
    rec_clear(&r);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 350, record, &r), T + 450);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_REPEAT, "www:443", "key.weak", 0, CRIT, CRIT, "RSA 1024", T, T,
              T + 350);
    rec_clear(&r);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 449, record, &r), T + 450);
    EXPECT_INT(r.n, 0);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 450, record, &r), T + 550);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_REPEAT, "www:443", "key.weak", 0, CRIT, CRIT, "RSA 1024", T, T,
              T + 450);

    /* The same tick twice sends nothing twice; without repeat_s nothing is due. */
    rec_clear(&r);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 450, record, &r), T + 550);
    EXPECT_INT(cm_alerts_tick(a, &at_once, T + 100000, record, &r), INT64_MAX);
    EXPECT_INT(r.n, 0);
    rec_free(&r);
    cm_alerts_free(a);
}

static void test_resolved_once(void)
{
    struct cm_alerts *a = new_table();
    struct rec r = {0};
    struct fset s;

    fs_add(fs_reset(&s), "cert.expiring", WARN, 0, "expires in 20 days");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &at_once, T, record, &r), 0);
    fs_add(fs_reset(&s), "cert.expiring", WARN, 0, "expires in 19 days");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &at_once, T + 10, record, &r), 0);
    EXPECT_INT(r.n, 1);
    rec_clear(&r);
    EXPECT_INT(
        cm_alerts_observe(a, "www:443", &fs_reset(&s)->f, NULL, &at_once, T + 20, record, &r), 0);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_RESOLVED, "www:443", "cert.expiring", 0, WARN, WARN,
              "expires in 19 days", T, T, T + 20);
    EXPECT_INT(cm_alerts_count(a), 0);
    rec_clear(&r);
    EXPECT_INT(cm_alerts_observe(a, "www:443", NULL, NULL, &at_once, T + 30, record, &r), 0);
    EXPECT_INT(cm_alerts_tick(a, &at_once, T + 40, record, &r), INT64_MAX);
    EXPECT_INT(r.n, 0);
    rec_free(&r);
    cm_alerts_free(a);
}

/* A result without a certificate (refused, timed out) tells how the probe failed and nothing
 * about the certificate: the certificate's alerts stay as they are (no RESOLVED, their
 * reminders still due, a pending one still counting its `for`), only failure alerts resolve;
 * a result with a certificate judges them again, without firing them anew. */
static void test_without_cert_keeps(void)
{
    const struct cm_alert_opts o = {0, 3600}, pend = {300, 0};
    struct cm_alerts *a = new_table(), *b = new_table();
    struct rec r = {0};
    struct fset s;

    fs_add(fs_reset(&s), "cert.expiring", WARN, 0, "expires in 20 days");
    fs_add(&s, "chain.untrusted", CRIT, -1, "untrusted");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T, record, &r), 0);
    EXPECT_INT(r.n, 2);

    /* Refused: probe.failed fires, nothing resolves. */
    rec_clear(&r);
    fs_add(fs_reset(&s), "probe.failed", CRIT, -1, "connection refused");
    EXPECT_INT(cm_alerts_observe_without_cert(a, "www:443", &s.f, NULL, &o, T + 60, record, &r), 0);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_FIRING, "www:443", "probe.failed", -1, CRIT, CRIT,
              "connection refused", T + 60, T + 60, T + 60);
    EXPECT_INT(cm_alerts_count(a), 3);

    /* Another failure replaces it: a failure alert resolves, the certificate's stay. */
    rec_clear(&r);
    fs_add(fs_reset(&s), "mtls.client_cert_required", CRIT, -1, "client certificate required");
    EXPECT_INT(cm_alerts_observe_without_cert(a, "www:443", &s.f, NULL, &o, T + 120, record, &r),
               0);
    EXPECT_INT(r.n, 2);
    EXPECT_EV(&r, 0, CM_ALERT_FIRING, "www:443", "mtls.client_cert_required", -1, CRIT, CRIT,
              "client certificate required", T + 120, T + 120, T + 120);
    EXPECT_EV(&r, 1, CM_ALERT_RESOLVED, "www:443", "probe.failed", -1, CRIT, CRIT,
              "connection refused", T + 60, T + 60, T + 120);
    EXPECT_INT(cm_alerts_count(a), 3);

    /* The kept alerts still remind. */
    rec_clear(&r);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 3600, record, &r), T + 3720);
    EXPECT_INT(r.n, 2);
    EXPECT_EV(&r, 0, CM_ALERT_REPEAT, "www:443", "cert.expiring", 0, WARN, WARN,
              "expires in 20 days", T, T, T + 3600);
    EXPECT_EV(&r, 1, CM_ALERT_REPEAT, "www:443", "chain.untrusted", -1, CRIT, CRIT, "untrusted", T,
              T, T + 3600);

    /* The certificate is back (now trusted, closer to its end): one CHANGED, and the alerts
     * that went away resolve; cert.expiring does not fire again. */
    rec_clear(&r);
    fs_add(fs_reset(&s), "cert.expiring", CRIT, 0, "expires in 5 days");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T + 4000, record, &r), 0);
    EXPECT_INT(r.n, 3);
    EXPECT_EV(&r, 0, CM_ALERT_CHANGED, "www:443", "cert.expiring", 0, CRIT, WARN,
              "expires in 5 days", T, T, T + 4000);
    EXPECT_EV(&r, 1, CM_ALERT_RESOLVED, "www:443", "chain.untrusted", -1, CRIT, CRIT, "untrusted",
              T, T, T + 4000);
    EXPECT_EV(&r, 2, CM_ALERT_RESOLVED, "www:443", "mtls.client_cert_required", -1, CRIT, CRIT,
              "client certificate required", T + 120, T + 120, T + 4000);
    EXPECT_INT(cm_alerts_count(a), 1);

    /* A pending alert keeps counting its `for` through a result without a certificate (with
     * no findings at all, too), and fires when it has passed. */
    rec_clear(&r);
    fs_add(fs_reset(&s), "cert.expiring", WARN, 0, "expires in 20 days");
    EXPECT_INT(cm_alerts_observe(b, "mail:25", &s.f, NULL, &pend, T, record, &r), 0);
    EXPECT_INT(cm_alerts_observe_without_cert(b, "mail:25", NULL, NULL, &pend, T + 100, record, &r),
               0);
    EXPECT_INT(r.n, 0);
    EXPECT_INT(cm_alerts_count(b), 1);
    EXPECT_INT(cm_alerts_tick(b, &pend, T + 300, record, &r), INT64_MAX);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_FIRING, "mail:25", "cert.expiring", 0, WARN, WARN,
              "expires in 20 days", T, T + 300, T + 300);

    /* Our own client certificate is judged by every result (the configured file): renewed
     * during an outage, its alert resolves through a result without a server certificate;
     * the server certificate's stays. */
    struct cm_alerts *c = new_table();
    rec_clear(&r);
    fs_add(fs_reset(&s), "mtls.client_cert_expiring", WARN, -1, "our client certificate expires");
    fs_add(&s, "cert.expiring", WARN, 0, "expires in 20 days");
    EXPECT_INT(cm_alerts_observe(c, "api:443", &s.f, NULL, &o, T, record, &r), 0);
    rec_clear(&r);
    fs_add(fs_reset(&s), "probe.failed", CRIT, -1, "connection refused");
    EXPECT_INT(cm_alerts_observe_without_cert(c, "api:443", &s.f, NULL, &o, T + 60, record, &r), 0);
    EXPECT_INT(r.n, 2);
    EXPECT_EV(&r, 0, CM_ALERT_FIRING, "api:443", "probe.failed", -1, CRIT, CRIT,
              "connection refused", T + 60, T + 60, T + 60);
    EXPECT_EV(&r, 1, CM_ALERT_RESOLVED, "api:443", "mtls.client_cert_expiring", -1, WARN, WARN,
              "our client certificate expires", T, T, T + 60);
    EXPECT_INT(cm_alerts_count(c), 2);
    rec_free(&r);
    cm_alerts_free(a);
    cm_alerts_free(b);
    cm_alerts_free(c);
}

static void test_message_updates(void)
{
    const struct cm_alert_opts o = {0, 100};
    struct cm_alerts *a = new_table();
    struct rec r = {0};
    struct fset s;

    fs_add(fs_reset(&s), "cert.expiring", WARN, 0, "expires in 10 days");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T, record, &r), 0);
    rec_clear(&r);
    fs_add(fs_reset(&s), "cert.expiring", WARN, 0, "expires in 9 days");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T + 50, record, &r), 0);
    EXPECT_INT(r.n, 0);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 100, record, &r), T + 200);
    EXPECT_EV(&r, 0, CM_ALERT_REPEAT, "www:443", "cert.expiring", 0, WARN, WARN,
              "expires in 9 days", T, T, T + 100);
    rec_clear(&r);
    fs_add(fs_reset(&s), "cert.expiring", CRIT, 0, "expires in 7 days");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T + 120, record, &r), 0);
    EXPECT_EV(&r, 0, CM_ALERT_CHANGED, "www:443", "cert.expiring", 0, CRIT, WARN,
              "expires in 7 days", T, T, T + 120);
    rec_clear(&r);
    fs_add(fs_reset(&s), "cert.expiring", CRIT, 0, "expires in 6 days");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T + 130, record, &r), 0);
    EXPECT_INT(r.n, 0);
    EXPECT_INT(cm_alerts_observe(a, "www:443", NULL, NULL, &o, T + 140, record, &r), 0);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_RESOLVED, "www:443", "cert.expiring", 0, CRIT, CRIT,
              "expires in 6 days", T, T, T + 140);
    rec_free(&r);
    cm_alerts_free(a);
}

static void test_positions(void)
{
    struct cm_alerts *a = new_table();
    struct rec r = {0};
    struct fset s;

    fs_add(fs_reset(&s), "cert.expiring", WARN, 0, "leaf expires in 20 days");
    fs_add(&s, "cert.expiring", CRIT, 1, "intermediate expires in 5 days");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &at_once, T, record, &r), 0);
    EXPECT_INT(r.n, 2);
    EXPECT_INT(cm_alerts_count(a), 2);
    EXPECT_EV(&r, 0, CM_ALERT_FIRING, "www:443", "cert.expiring", 0, WARN, WARN,
              "leaf expires in 20 days", T, T, T);
    EXPECT_EV(&r, 1, CM_ALERT_FIRING, "www:443", "cert.expiring", 1, CRIT, CRIT,
              "intermediate expires in 5 days", T, T, T);
    rec_clear(&r);
    fs_add(fs_reset(&s), "cert.expiring", CRIT, 1, "intermediate expires in 4 days");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &at_once, T + 60, record, &r), 0);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_RESOLVED, "www:443", "cert.expiring", 0, WARN, WARN,
              "leaf expires in 20 days", T, T, T + 60);
    EXPECT_INT(cm_alerts_count(a), 1);
    rec_free(&r);
    cm_alerts_free(a);
}

static void test_targets_apart(void)
{
    struct cm_alerts *a = new_table();
    struct rec r = {0};
    struct fset s;

    fs_add(fs_reset(&s), "chain.incomplete", CRIT, -1, "no intermediate");
    EXPECT_INT(cm_alerts_observe(a, "a:443", &s.f, NULL, &at_once, T, record, &r), 0);
    fs_add(&s, "ocsp.invalid", WARN, -1, "bad staple");
    EXPECT_INT(cm_alerts_observe(a, "b:443", &s.f, NULL, &at_once, T, record, &r), 0);
    EXPECT_INT(r.n, 3);
    EXPECT_EV(&r, 1, CM_ALERT_FIRING, "b:443", "chain.incomplete", -1, CRIT, CRIT,
              "no intermediate", T, T, T);
    EXPECT_EV(&r, 2, CM_ALERT_FIRING, "b:443", "ocsp.invalid", -1, WARN, WARN, "bad staple", T, T,
              T);
    rec_clear(&r);
    EXPECT_INT(cm_alerts_observe(a, "a:443", NULL, NULL, &at_once, T + 60, record, &r), 0);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_RESOLVED, "a:443", "chain.incomplete", -1, CRIT, CRIT,
              "no intermediate", T, T, T + 60);
    EXPECT_INT(cm_alerts_count(a), 2);
    rec_clear(&r);
    EXPECT_INT(cm_alerts_observe(a, "b:443", &s.f, NULL, &at_once, T + 60, record, &r), 0);
    EXPECT_INT(cm_alerts_observe(a, "c:443", NULL, NULL, &at_once, T + 60, record, &r), 0);
    EXPECT_INT(r.n, 0);
    EXPECT_INT(cm_alerts_count(a), 2);
    rec_free(&r);
    cm_alerts_free(a);
}

static void test_same_id_twice_merges(void)
{
    const struct cm_alert_opts o = {300, 0};
    struct cm_alerts *a = new_table();
    struct rec r = {0};
    struct fset s;

    fs_add(fs_reset(&s), "protocol.legacy", WARN, -1, "accepts TLS1.0");
    fs_add(&s, "cert.wildcard", CM_SEV_INFO, 0, "wildcard");
    fs_add(&s, "protocol.legacy", CRIT, -1, "accepts SSL3.0");
    s.seen[0] = T - 50;
    s.seen[1] = T - 10;
    s.seen[2] = T - 200;
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, s.seen, &o, T, record, &r), 0);
    EXPECT_INT(cm_alerts_count(a), 2);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 100, record, &r), T + 290);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_FIRING, "www:443", "protocol.legacy", -1, CRIT, CRIT,
              "accepts TLS1.0; accepts SSL3.0", T - 200, T + 100, T + 100);
    rec_clear(&r);
    fs_add(fs_reset(&s), "protocol.legacy", WARN, -1, "accepts TLS1.0");
    fs_add(&s, "cert.wildcard", CM_SEV_INFO, 0, "wildcard");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T + 200, record, &r), 0);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_CHANGED, "www:443", "protocol.legacy", -1, WARN, CRIT,
              "accepts TLS1.0", T - 200, T + 100, T + 200);
    rec_free(&r);
    cm_alerts_free(a);
}

static void test_many_findings_one_target(void)
{
    static char msgs[40][32];
    struct cm_alerts *a = new_table();
    struct rec r = {0};
    struct fset s;

    fs_reset(&s);
    for (int i = 0; i < 40; i++) {
        snprintf(msgs[i], sizeof(msgs[i]), "certificate %d expires", i);
        fs_add(&s, "cert.expiring", WARN, i, msgs[i]);
    }
    EXPECT_INT(cm_alerts_observe(a, "big:443", &s.f, NULL, &at_once, T, record, &r), 0);
    EXPECT_INT(r.n, 40);
    for (size_t i = 0; i < r.n; i++)
        EXPECT_INT(r.v[i].position, i);
    rec_clear(&r);
    s.f.count = 39; /* the last one goes */
    EXPECT_INT(cm_alerts_observe(a, "big:443", &s.f, NULL, &at_once, T + 1, record, &r), 0);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_RESOLVED, "big:443", "cert.expiring", 39, WARN, WARN,
              "certificate 39 expires", T, T, T + 1);
    EXPECT_INT(cm_alerts_count(a), 39);
    rec_free(&r);
    cm_alerts_free(a);
}

static void test_forget(void)
{
    const struct cm_alert_opts o = {300, 0};
    struct cm_alerts *a = new_table();
    struct rec r = {0};
    struct fset s;

    fs_add(fs_reset(&s), "chain.untrusted", CRIT, -1, "unknown CA");
    EXPECT_INT(cm_alerts_observe(a, "a:443", &s.f, NULL, &o, T, record, &r), 0);
    EXPECT_INT(cm_alerts_observe(a, "b:443", &s.f, NULL, &o, T, record, &r), 0);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 300, record, &r), INT64_MAX);
    EXPECT_INT(r.n, 2);
    fs_add(&s, "ocsp.not_stapled", CM_SEV_INFO, -1, "no staple");
    EXPECT_INT(cm_alerts_observe(a, "a:443", &s.f, NULL, &o, T + 400, record, &r), 0);
    EXPECT_INT(cm_alerts_count(a), 3);
    rec_clear(&r);
    cm_alerts_forget(a, "a:443", T + 500, record, &r);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_RESOLVED, "a:443", "chain.untrusted", -1, CRIT, CRIT, "unknown CA", T,
              T + 300, T + 500);
    EXPECT_INT(cm_alerts_count(a), 1);
    rec_clear(&r);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 10000, record, &r), INT64_MAX);
    cm_alerts_forget(a, "nobody:443", T + 600, record, &r);
    cm_alerts_forget(a, "a:443", T + 600, record, &r);
    EXPECT_INT(r.n, 0);
    EXPECT_INT(cm_alerts_count(a), 1);
    rec_free(&r);
    cm_alerts_free(a);
}

static void test_next_due(void)
{
    const struct cm_alert_opts fire = {0, 1000}, wait = {300, 1000};
    struct cm_alerts *a = new_table();
    struct rec r = {0};
    struct fset s;

    EXPECT_INT(cm_alerts_next(a, &wait), INT64_MAX);
    EXPECT_INT(cm_alerts_tick(a, &wait, T, record, &r), INT64_MAX);
    fs_add(fs_reset(&s), "signature.weak", CRIT, 1, "SHA-1");
    EXPECT_INT(cm_alerts_observe(a, "b:443", &s.f, NULL, &fire, T, record, &r), 0);
    EXPECT_INT(cm_alerts_next(a, &wait), T + 1000);
    EXPECT_INT(cm_alerts_next(a, &at_once), INT64_MAX);
    EXPECT_INT(cm_alerts_observe(a, "a:443", &s.f, NULL, &wait, T + 100, record, &r), 0);
    EXPECT_INT(cm_alerts_next(a, &wait), T + 400);
    rec_clear(&r);
    EXPECT_INT(cm_alerts_tick(a, &wait, T + 400, record, &r), T + 1000);
    EXPECT_EV(&r, 0, CM_ALERT_FIRING, "a:443", "signature.weak", 1, CRIT, CRIT, "SHA-1", T + 100,
              T + 400, T + 400);
    rec_clear(&r);
    EXPECT_INT(cm_alerts_tick(a, &wait, T + 1000, record, &r), T + 1400);
    EXPECT_EV(&r, 0, CM_ALERT_REPEAT, "b:443", "signature.weak", 1, CRIT, CRIT, "SHA-1", T, T,
              T + 1000);

    /* A late tick tells things in the order they fell due: a (T+1400) before b (T+2000). */
    rec_clear(&r);
    EXPECT_INT(cm_alerts_tick(a, &wait, T + 5000, record, &r), T + 6000);
    EXPECT_INT(r.n, 2);
    EXPECT_EV(&r, 0, CM_ALERT_REPEAT, "a:443", "signature.weak", 1, CRIT, CRIT, "SHA-1", T + 100,
              T + 400, T + 5000);
    EXPECT_EV(&r, 1, CM_ALERT_REPEAT, "b:443", "signature.weak", 1, CRIT, CRIT, "SHA-1", T, T,
              T + 5000);
    rec_free(&r);
    cm_alerts_free(a);
}

static void test_options_change(void)
{
    const struct cm_alert_opts wait = {300, 0}, neg = {-5, -5};
    struct cm_alerts *a = new_table();
    struct rec r = {0};
    struct fset s;

    fs_add(fs_reset(&s), "dh.weak", WARN, -1, "1536-bit group");
    EXPECT_INT(cm_alerts_observe(a, "a:443", &s.f, NULL, &wait, T, record, &r), 0);
    EXPECT_INT(cm_alerts_observe(a, "b:443", &s.f, NULL, &wait, T, record, &r), 0);
    EXPECT_INT(r.n, 0);
    /* `for` set to 0 by a reload: pending alerts fire at the next observe or tick. */
    EXPECT_INT(cm_alerts_observe(a, "a:443", &s.f, NULL, &at_once, T + 10, record, &r), 0);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_FIRING, "a:443", "dh.weak", -1, WARN, WARN, "1536-bit group", T,
              T + 10, T + 10);
    EXPECT_INT(cm_alerts_tick(a, &at_once, T + 11, record, &r), INT64_MAX);
    EXPECT_INT(r.n, 2);
    EXPECT_EV(&r, 1, CM_ALERT_FIRING, "b:443", "dh.weak", -1, WARN, WARN, "1536-bit group", T,
              T + 11, T + 11);

    /* Negative options count as 0; emit may be NULL. */
    rec_clear(&r);
    EXPECT_INT(cm_alerts_observe(a, "c:443", &s.f, NULL, &neg, T, NULL, NULL), 0);
    EXPECT_INT(cm_alerts_tick(a, &neg, T + 100, NULL, NULL), INT64_MAX);
    EXPECT_INT(cm_alerts_tick(a, NULL, T + 100, NULL, NULL), INT64_MAX);
    EXPECT_INT(cm_alerts_count(a), 3);
    EXPECT_INT(cm_alerts_observe(NULL, "c:443", &s.f, NULL, &neg, T, NULL, NULL), -EINVAL);
    EXPECT_INT(cm_alerts_observe(a, NULL, &s.f, NULL, &neg, T, NULL, NULL), -EINVAL);
    rec_free(&r);
    cm_alerts_free(a);
    cm_alerts_free(NULL);
}

/* Saves, frees, makes a new table and loads: a restart. */
static struct cm_alerts *restart(struct cm_alerts *a)
{
    json_t *j = cm_alerts_to_json(a), *j2;
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    struct cm_alerts *b;

    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    json_decref(j);
    cm_alerts_free(a);
    b = new_table();
    j = json_loads(text, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    EXPECT_INT(cm_alerts_from_json(b, j), 0);
    /* The reloaded table saves to the same document. */
    j2 = cm_alerts_to_json(b);
    CU_ASSERT_TRUE(json_equal(j, j2));
    json_decref(j);
    json_decref(j2);
    free(text);
    return b;
}

static void test_json_restart(void)
{
    const struct cm_alert_opts o = {300, 1000};
    struct cm_alerts *a = new_table();
    struct fset sa, sb;
    struct rec r = {0};
    json_t *j, *e;

    fs_add(fs_reset(&sa), "cert.expiring", WARN, 0, "expires in 20 days");
    fs_add(&sa, "chain.incomplete", CRIT, -1, "no intermediate");
    fs_add(fs_reset(&sb), "host.mismatch", CRIT, -1, "name not in SANs");
    EXPECT_INT(cm_alerts_observe(a, "a:443", &sa.f, NULL, &o, T, record, &r), 0);
    EXPECT_INT(cm_alerts_observe(a, "b:443", &sb.f, NULL, &o, T, record, &r), 0);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 300, record, &r), T + 1300);
    EXPECT_INT(r.n, 3);
    sa.items[0].severity = CRIT;
    sa.items[0].message = (char *)"expires in 6 days";
    EXPECT_INT(cm_alerts_observe(a, "a:443", &sa.f, NULL, &o, T + 500, record, &r), 0);
    EXPECT_INT(r.n, 4);
    fs_add(&sb, "key.weak", CRIT, 0, "RSA 1024");
    EXPECT_INT(cm_alerts_observe(a, "b:443", &sb.f, NULL, &o, T + 600, record, &r), 0);
    EXPECT_INT(r.n, 4);

    /* The document: creation order, pending alerts without fired_at/notified_at. */
    j = cm_alerts_to_json(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    EXPECT_INT(json_array_size(j), 4);
    e = json_array_get(j, 0);
    EXPECT_STR(cm_json_str(e, "target"), "a:443");
    EXPECT_STR(cm_json_str(e, "id"), "cert.expiring");
    EXPECT_INT(json_integer_value(json_object_get(e, "position")), 0);
    EXPECT_STR(cm_json_str(e, "severity"), "critical");
    EXPECT_STR(cm_json_str(e, "message"), "expires in 6 days");
    EXPECT_INT(json_integer_value(json_object_get(e, "started_at")), T);
    EXPECT_INT(json_integer_value(json_object_get(e, "fired_at")), T + 300);
    EXPECT_INT(json_integer_value(json_object_get(e, "notified_at")), T + 500);
    e = json_array_get(j, 3);
    EXPECT_STR(cm_json_str(e, "id"), "key.weak");
    CU_ASSERT_TRUE(json_is_null(json_object_get(e, "fired_at")));
    CU_ASSERT_TRUE(json_is_null(json_object_get(e, "notified_at")));
    json_decref(j);

    a = restart(a);
    EXPECT_INT(cm_alerts_count(a), 4);

    /* The same findings after the restart: nothing is re-sent. */
    rec_clear(&r);
    EXPECT_INT(cm_alerts_observe(a, "a:443", &sa.f, NULL, &o, T + 700, record, &r), 0);
    EXPECT_INT(cm_alerts_observe(a, "b:443", &sb.f, NULL, &o, T + 700, record, &r), 0);
    EXPECT_INT(r.n, 0);

    /* The pending one fires on its schedule, reminders keep theirs. */
    EXPECT_INT(cm_alerts_next(a, &o), T + 900);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 900, record, &r), T + 1300);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_FIRING, "b:443", "key.weak", 0, CRIT, CRIT, "RSA 1024", T + 600,
              T + 900, T + 900);
    rec_clear(&r);
    a = restart(a);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 1299, record, &r), T + 1300);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 1300, record, &r), T + 1500);
    EXPECT_INT(r.n, 2);
    EXPECT_EV(&r, 0, CM_ALERT_REPEAT, "a:443", "chain.incomplete", -1, CRIT, CRIT,
              "no intermediate", T, T + 300, T + 1300);
    EXPECT_EV(&r, 1, CM_ALERT_REPEAT, "b:443", "host.mismatch", -1, CRIT, CRIT, "name not in SANs",
              T, T + 300, T + 1300);

    /* A finding gone after a restart resolves, with what was saved. */
    rec_clear(&r);
    a = restart(a);
    sa.f.count = 1;
    EXPECT_INT(cm_alerts_observe(a, "a:443", &sa.f, NULL, &o, T + 1400, record, &r), 0);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_RESOLVED, "a:443", "chain.incomplete", -1, CRIT, CRIT,
              "no intermediate", T, T + 300, T + 1400);
    rec_clear(&r);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 1500, record, &r), T + 1900);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_REPEAT, "a:443", "cert.expiring", 0, CRIT, CRIT, "expires in 6 days",
              T, T + 300, T + 1500);
    rec_free(&r);
    cm_alerts_free(a);
}

static void test_json_unknown_id(void)
{
    struct cm_alerts *a = new_table();
    json_t *j = json_loads(
        "[{\"target\":\"a:443\",\"id\":\"cert.bogus\",\"position\":-1,\"severity\":\"warning\","
        "\"message\":\"m\",\"started_at\":1,\"fired_at\":2,\"notified_at\":3},"
        "{\"target\":\"a:443\",\"id\":\"cert.expired\",\"position\":0,\"severity\":\"critical\","
        "\"message\":\"expired\",\"started_at\":1,\"fired_at\":null,\"notified_at\":null,"
        "\"future\":true}]",
        0, NULL);
    struct rec r = {0};
    json_t *out;

    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    EXPECT_INT(cm_alerts_from_json(a, j), 0);
    EXPECT_INT(cm_alerts_count(a), 1);
    out = cm_alerts_to_json(a);
    EXPECT_INT(json_array_size(out), 1);
    EXPECT_STR(cm_json_str(json_array_get(out, 0), "id"), "cert.expired");
    json_decref(out);

    /* Loading into a table that holds alerts is refused, the table untouched. */
    EXPECT_INT(cm_alerts_from_json(a, j), CM_EBADARG);
    EXPECT_INT(cm_alerts_count(a), 1);
    EXPECT_INT(cm_alerts_tick(a, &(struct cm_alert_opts){60, 0}, 61, record, &r), INT64_MAX);
    EXPECT_INT(r.n, 1);
    EXPECT_EV(&r, 0, CM_ALERT_FIRING, "a:443", "cert.expired", 0, CRIT, CRIT, "expired", 1, 61, 61);
    json_decref(j);
    rec_free(&r);
    cm_alerts_free(a);
}

static void test_json_malformed(void)
{
#define GOOD                                                                                       \
    "{\"target\":\"a:443\",\"id\":\"cert.expired\",\"position\":0,\"severity\":\"critical\","      \
    "\"message\":\"m\",\"started_at\":1,\"fired_at\":2,\"notified_at\":3}"
    static const char *const bad[] = {
        "{}",
        "null",
        "\"alerts\"",
        "[1]",
        "[[]]",
        "[{}]",
        "[" GOOD ", 7]",
        "[" GOOD ", " GOOD "]", /* the same alert twice */
        "[" GOOD ", {\"id\":\"cert.expired\",\"position\":0,\"severity\":\"critical\","
        "\"message\":\"m\",\"started_at\":1,\"fired_at\":2,\"notified_at\":3}]",
        "[{\"target\":7,\"id\":\"cert.expired\",\"position\":0,\"severity\":\"critical\","
        "\"message\":\"m\",\"started_at\":1,\"fired_at\":2,\"notified_at\":3}]",
        "[{\"target\":\"a\",\"id\":null,\"position\":0,\"severity\":\"critical\","
        "\"message\":\"m\",\"started_at\":1,\"fired_at\":2,\"notified_at\":3}]",
        "[{\"target\":\"a\",\"id\":\"cert.expired\",\"position\":\"0\",\"severity\":\"critical\","
        "\"message\":\"m\",\"started_at\":1,\"fired_at\":2,\"notified_at\":3}]",
        "[{\"target\":\"a\",\"id\":\"cert.expired\",\"position\":-2,\"severity\":\"critical\","
        "\"message\":\"m\",\"started_at\":1,\"fired_at\":2,\"notified_at\":3}]",
        "[{\"target\":\"a\",\"id\":\"cert.expired\",\"position\":4294967296,"
        "\"severity\":\"critical\",\"message\":\"m\",\"started_at\":1,\"fired_at\":2,"
        "\"notified_at\":3}]",
        "[{\"target\":\"a\",\"id\":\"cert.expired\",\"position\":0,\"severity\":\"dire\","
        "\"message\":\"m\",\"started_at\":1,\"fired_at\":2,\"notified_at\":3}]",
        "[{\"target\":\"a\",\"id\":\"cert.expired\",\"position\":0,\"severity\":\"critical\","
        "\"started_at\":1,\"fired_at\":2,\"notified_at\":3}]",
        "[{\"target\":\"a\",\"id\":\"cert.expired\",\"position\":0,\"severity\":\"critical\","
        "\"message\":\"m\",\"started_at\":1.5,\"fired_at\":2,\"notified_at\":3}]",
        "[{\"target\":\"a\",\"id\":\"cert.expired\",\"position\":0,\"severity\":\"critical\","
        "\"message\":\"m\",\"started_at\":1,\"fired_at\":null,\"notified_at\":3}]",
        "[{\"target\":\"a\",\"id\":\"cert.expired\",\"position\":0,\"severity\":\"critical\","
        "\"message\":\"m\",\"started_at\":1,\"fired_at\":2}]",
        "[{\"target\":\"a\",\"id\":\"cert.expired\",\"position\":0,\"severity\":\"critical\","
        "\"message\":\"m\",\"started_at\":1,\"fired_at\":\"2\",\"notified_at\":3}]",
        "[{\"target\":\"a\",\"id\":\"cert.expired\",\"position\":0,\"severity\":\"critical\","
        "\"message\":\"m\",\"started_at\":1,\"fired_at\":5,\"notified_at\":3}]",
        "[{\"target\":\"a\\u0000b\",\"id\":\"cert.expired\",\"position\":0,"
        "\"severity\":\"critical\",\"message\":\"m\",\"started_at\":1,\"fired_at\":2,"
        "\"notified_at\":3}]",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cm_alerts *a = new_table();
        json_t *j = json_loads(bad[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL), *out;
        char what[32];

        snprintf(what, sizeof(what), "bad[%zu]", i);
        if (!j) {
            expect_str("unparsable", "JSON", what, __LINE__);
            cm_alerts_free(a);
            continue;
        }
        expect_int(cm_alerts_from_json(a, j), CM_ESTATE, what, __LINE__);
        expect_int(cm_alerts_count(a), 0, what, __LINE__);
        out = cm_alerts_to_json(a);
        expect_int(json_array_size(out), 0, what, __LINE__);
        expect_int(cm_alerts_tick(a, NULL, T, NULL, NULL), INT64_MAX, what, __LINE__);
        json_decref(out);
        json_decref(j);
        cm_alerts_free(a);
    }
    {
        struct cm_alerts *a = new_table();

        EXPECT_INT(cm_alerts_from_json(a, NULL), CM_ESTATE);
        EXPECT_INT(cm_alerts_count(a), 0);
        cm_alerts_free(a);
    }
#undef GOOD
}

/* Text that is not UTF-8 cannot make the table unsavable: it is saved with U+FFFD. */
static void test_json_not_utf8(void)
{
    struct cm_alerts *a = new_table();
    struct fset s;
    json_t *j, *e;

    fs_add(fs_reset(&s), "host.mismatch", CRIT, -1, "CN=caf\xe9 is not www");
    EXPECT_INT(cm_alerts_observe(a, "www\xff:443", &s.f, NULL, &at_once, T, NULL, NULL), 0);
    j = cm_alerts_to_json(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    e = json_array_get(j, 0);
    EXPECT_STR(cm_json_str(e, "target"), "www\xef\xbf\xbd:443");
    EXPECT_STR(cm_json_str(e, "message"), "CN=caf\xef\xbf\xbd is not www");
    json_decref(j);
    cm_alerts_free(a);
}

#if TORTURE
static void fail_nth(long n)
{
    alloc_count = 0;
    alloc_fail_at = n;
}

/* Stops failing; whether the failure was reached. */
static bool fail_off(void)
{
    bool hit = alloc_fail_at >= 0 && alloc_count > alloc_fail_at;

    alloc_fail_at = -1;
    return hit;
}

/* Target a: cert.expiring warning (to become critical with a new message) and
 * chain.incomplete (to go away); target b: host.mismatch. All fired at T. */
static struct cm_alerts *torture_setup(struct fset *s)
{
    const struct cm_alert_opts o = {0, 100};
    struct cm_alerts *a = new_table();

    fs_add(fs_reset(s), "cert.expiring", WARN, 0, "expires in 9 days");
    fs_add(s, "chain.incomplete", CRIT, -1, "no intermediate");
    EXPECT_INT(cm_alerts_observe(a, "a:443", &s->f, NULL, &o, T, NULL, NULL), 0);
    fs_add(fs_reset(s), "host.mismatch", CRIT, -1, "name not in SANs");
    EXPECT_INT(cm_alerts_observe(a, "b:443", &s->f, NULL, &o, T, NULL, NULL), 0);
    /* 39 findings on a: more than the on-stack map holds. */
    fs_add(fs_reset(s), "cert.expiring", CRIT, 0, "expires in 6 days");
    fs_add(s, "protocol.legacy", WARN, -1, "accepts TLS1.0");
    fs_add(s, "protocol.legacy", CRIT, -1, "accepts SSL3.0");
    for (int i = 0; i < 36; i++)
        fs_add(s, "cipher.weak", CRIT, i, "accepts RC4");
    return a;
}

static size_t count_kind(const struct rec *r, enum cm_alert_kind kind, const char *id, int pos)
{
    size_t n = 0;

    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].kind == kind && strcmp(r->v[i].id, id) == 0 && r->v[i].position == pos)
            n++;
    return n;
}

static void test_out_of_memory(void)
{
    const struct cm_alert_opts o = {0, 100};
    long k;

    for (k = 0;; k++) {
        struct rec r = {0};
        struct fset s;
        struct cm_alerts *a = torture_setup(&s);
        char what[48];
        json_t *j, *e;
        int rc;
        bool hit;

        snprintf(what, sizeof(what), "allocation %ld fails", k);
        fail_nth(k);
        rc = cm_alerts_observe(a, "a:443", &s.f, NULL, &o, T + 10, record, &r);
        hit = fail_off();
        if (rc != 0)
            expect_int(rc, -ENOMEM, what, __LINE__);
        EXPECT_INT(cm_alerts_observe(a, "a:443", &s.f, NULL, &o, T + 20, record, &r), 0);

        /* Across both calls, each event exactly once. */
        expect_int(count_kind(&r, CM_ALERT_RESOLVED, "chain.incomplete", -1), 1, what, __LINE__);
        expect_int(count_kind(&r, CM_ALERT_CHANGED, "cert.expiring", 0), 1, what, __LINE__);
        expect_int(count_kind(&r, CM_ALERT_FIRING, "protocol.legacy", -1), 1, what, __LINE__);
        for (int i = 0; i < 36; i++)
            expect_int(count_kind(&r, CM_ALERT_FIRING, "cipher.weak", i), 1, what, __LINE__);
        expect_int(r.n, 3 + 36, what, __LINE__);

        /* The table as if nothing had failed. */
        j = cm_alerts_to_json(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        expect_int(json_array_size(j), 39, what, __LINE__);
        for (size_t i = 0; i < json_array_size(j); i++) {
            e = json_array_get(j, i);
            CU_ASSERT_TRUE(json_is_integer(json_object_get(e, "fired_at")));
            if (strcmp(cm_json_str(e, "id"), "protocol.legacy") == 0)
                expect_str(cm_json_str(e, "message"), "accepts TLS1.0; accepts SSL3.0", what,
                           __LINE__);
            if (strcmp(cm_json_str(e, "id"), "cert.expiring") == 0) {
                expect_str(cm_json_str(e, "message"), "expires in 6 days", what, __LINE__);
                expect_str(cm_json_str(e, "severity"), "critical", what, __LINE__);
            }
        }
        json_decref(j);
        rec_clear(&r);
        cm_alerts_forget(a, "a:443", T + 30, record, &r);
        cm_alerts_forget(a, "b:443", T + 30, record, &r);
        expect_int(r.n, 39, what, __LINE__);
        expect_int(cm_alerts_count(a), 0, what, __LINE__);
        rec_free(&r);
        cm_alerts_free(a);
        if (!hit)
            break;
    }
    if (k == 0)
        printf("\n    nothing failed: malloc is not this program's (valgrind?) ");
    else
        printf("\n    observe: %ld allocation points failed in turn ", k);

    /* Loading and saving. */
    {
        struct fset s;
        struct cm_alerts *src = torture_setup(&s), *b;
        json_t *want, *got;
        int rc;

        EXPECT_INT(cm_alerts_observe(src, "a:443", &s.f, NULL, &o, T + 10, NULL, NULL), 0);
        want = cm_alerts_to_json(src);
        CU_ASSERT_PTR_NOT_NULL_FATAL(want);
        for (k = 0;; k++) {
            bool hit;

            b = new_table();
            fail_nth(k);
            rc = cm_alerts_from_json(b, want);
            hit = fail_off();
            if (rc != 0) {
                EXPECT_INT(rc, -ENOMEM);
                EXPECT_INT(cm_alerts_count(b), 0);
                EXPECT_INT(cm_alerts_tick(b, &o, T + 1000, NULL, NULL), INT64_MAX);
            } else {
                got = cm_alerts_to_json(b);
                CU_ASSERT_TRUE(json_equal(want, got));
                json_decref(got);
            }
            cm_alerts_free(b);
            if (!hit)
                break;
        }
        printf("(from_json %ld", k);
        for (k = 0;; k++) {
            bool hit;

            fail_nth(k);
            got = cm_alerts_to_json(src);
            hit = fail_off();
            CU_ASSERT_TRUE(!got || json_equal(want, got));
            json_decref(got);
            if (!hit)
                break;
        }
        printf(", to_json %ld) ", k);
        json_decref(want);
        cm_alerts_free(src);
    }
}
#else
static void test_out_of_memory(void)
{
    printf("\n    skipped: the sanitizer owns malloc ");
}
#endif

struct counts {
    size_t kind[4];
};

static void count(const struct cm_alert_event *e, void *arg)
{
    ((struct counts *)arg)->kind[e->kind]++;
}

static double seconds(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* 10,000 targets with 3 findings each, probed in rounds with a tick after each: the counts of
 * events are exact; the time is printed, not judged. */
static void test_scale(void)
{
    enum { N = 10000 };
    const struct cm_alert_opts o = {60, 3600};
    static char names[N][32];
    struct cm_alerts *a = new_table();
    struct counts c = {{0}};
    double observe_s, restart_s;
    struct timespec t0;
    struct fset s;
    char msg[64];
    json_t *j;

    for (int i = 0; i < N; i++)
        snprintf(names[i], sizeof(names[i]), "host%05d.example.com:443", i);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int round = 0; round <= 5; round++) {
        int64_t now = round ? T + 60 + round * 600 : T;

        for (int i = 0; i < N; i++) {
            snprintf(msg, sizeof(msg), "expires in %d days", 20 - round);
            fs_add(fs_reset(&s), "cert.expiring", i % 5 < round ? CRIT : WARN, 0, msg);
            fs_add(&s, "chain.incomplete", CRIT, -1, "no intermediate");
            fs_add(&s, "host.mismatch", CRIT, -1, "name not in SANs");
            EXPECT_INT(cm_alerts_observe(a, names[i], &s.f, NULL, &o, now, count, &c), 0);
        }
        cm_alerts_tick(a, &o, now == T ? T + 60 : now, count, &c);
    }
    EXPECT_INT(cm_alerts_count(a), 3 * N);
    EXPECT_INT(c.kind[CM_ALERT_FIRING], 3 * N);
    EXPECT_INT(c.kind[CM_ALERT_CHANGED], N);
    EXPECT_INT(c.kind[CM_ALERT_REPEAT], 0);
    EXPECT_INT(cm_alerts_tick(a, &o, T + 100000, count, &c), T + 103600);
    EXPECT_INT(c.kind[CM_ALERT_REPEAT], 3 * N);
    observe_s = seconds(&t0);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    a = restart(a);
    restart_s = seconds(&t0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    j = cm_alerts_to_json(a);
    EXPECT_INT(json_array_size(j), 3 * N);
    json_decref(j);
    for (int i = 0; i < N; i++)
        EXPECT_INT(cm_alerts_observe(a, names[i], NULL, NULL, &o, T + 100001, count, &c), 0);
    EXPECT_INT(c.kind[CM_ALERT_RESOLVED], 3 * N);
    EXPECT_INT(cm_alerts_count(a), 0);
    printf("\n    10000 targets x 3 findings: 6 observe rounds with ticks and a repeat of all "
           "%.3f s; save + load + compare %.3f s; resolve all %.3f s\n",
           observe_s, restart_s, seconds(&t0));
    cm_alerts_free(a);
}

/* ---- Change by change: the rows a persisting caller keeps ---- */

/* What a caller that writes each reported row keeps: one JSON object per alert, keyed by
 * "target|id|position", as cm_alerts_to_json would show it (plus "seq"). */
struct mirror {
    json_t *rows;
    size_t puts, removes;
};

static char *row_key(const struct cm_alert_row *r)
{
    char *k;

    CU_ASSERT_FATAL(asprintf(&k, "%s|%s|%d", r->target, r->id, r->position) > 0);
    return k;
}

static json_t *row_json(const struct cm_alert_row *r)
{
    return json_pack("{s:s, s:s, s:i, s:s, s:s, s:I, s:o, s:o, s:I}", "target", r->target, "id",
                     r->id, "position", r->position, "severity", cm_severity_name(r->severity),
                     "message", r->message, "started_at", (json_int_t)r->started_at, "fired_at",
                     r->fired ? json_integer(r->fired_at) : json_null(), "notified_at",
                     r->fired ? json_integer(r->notified_at) : json_null(), "seq",
                     (json_int_t)r->seq);
}

static void mirror_change(const struct cm_alert_row *r, bool removed, void *arg)
{
    struct mirror *m = arg;
    char *k = row_key(r);

    if (removed) {
        m->removes++;
        EXPECT_INT(json_object_del(m->rows, k), 0); /* only what was reported goes */
    } else {
        m->puts++;
        json_object_set_new(m->rows, k, row_json(r));
    }
    free(k);
}

static void mirror_add(const struct cm_alert_row *r, void *arg)
{
    char *k = row_key(r);

    json_object_set_new(arg, k, row_json(r));
    free(k);
}

/* The rows reported so far are the table, field by field. */
static void expect_mirror(const struct cm_alerts *a, const struct mirror *m, unsigned line)
{
    json_t *want = json_object();

    EXPECT_INT(cm_alerts_foreach(a, mirror_add, want), 0);
    expect_int((long long)json_object_size(m->rows), (long long)cm_alerts_count(a), "rows",
               line);
    if (!json_equal(want, m->rows)) {
        char *w = json_dumps(want, JSON_SORT_KEYS), *g = json_dumps(m->rows, JSON_SORT_KEYS);
        expect_str(g, w, "rows reported", line);
        free(w);
        free(g);
    }
    json_decref(want);
}

static void test_change_hook(void)
{
    struct cm_alerts *a = new_table();
    struct cm_alert_opts o = {.for_s = 300, .repeat_s = 3600};
    struct mirror m = {.rows = json_object()};
    struct rec r = {0};
    struct fset s;
    size_t puts;
    json_t *j, *arr;

    cm_alerts_on_change(a, mirror_change, &m);
    /* New: pending rows (fired_at null). */
    fs_add(fs_reset(&s), "cert.expiring", WARN, 0, "expires in 20 days");
    fs_add(&s, "host.mismatch", CRIT, -1, "name not in SANs");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T, record, &r), 0);
    EXPECT_INT(m.puts, 2);
    expect_mirror(a, &m, __LINE__);
    /* The same findings again: nothing changed, nothing to write. */
    puts = m.puts;
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T + 60, record, &r), 0);
    EXPECT_INT(m.puts, puts);
    /* A new message alone is a change of the row (it goes with the next event). */
    fs_add(fs_reset(&s), "cert.expiring", WARN, 0, "expires in 19 days");
    fs_add(&s, "host.mismatch", CRIT, -1, "name not in SANs");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T + 120, record, &r), 0);
    EXPECT_INT(m.puts, puts + 1);
    expect_mirror(a, &m, __LINE__);
    /* Both fire at the tick: one row each. */
    puts = m.puts;
    cm_alerts_tick(a, &o, T + 300, record, &r);
    EXPECT_INT(r.n, 2);
    EXPECT_INT(m.puts, puts + 2);
    expect_mirror(a, &m, __LINE__);
    /* A severity change while firing, a repeat: notified_at moves with each. */
    fs_add(fs_reset(&s), "cert.expiring", CRIT, 0, "expires in 5 days");
    fs_add(&s, "host.mismatch", CRIT, -1, "name not in SANs");
    puts = m.puts;
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T + 1000, record, &r), 0);
    EXPECT_INT(m.puts, puts + 1); /* the message and the severity: one row write */
    cm_alerts_tick(a, &o, T + 3900, record, &r);
    EXPECT_INT(m.puts, puts + 2); /* host.mismatch's reminder */
    expect_mirror(a, &m, __LINE__);
    /* Another target, then resolution and forget: the rows go. */
    fs_add(fs_reset(&s), "chain.self_signed", CRIT, 0, "self-signed");
    EXPECT_INT(cm_alerts_observe(a, "mail:25", &s.f, NULL, &at_once, T + 4000, record, &r), 0);
    expect_mirror(a, &m, __LINE__);
    fs_add(fs_reset(&s), "host.mismatch", CRIT, -1, "name not in SANs");
    EXPECT_INT(cm_alerts_observe(a, "www:443", &s.f, NULL, &o, T + 4100, record, &r), 0);
    EXPECT_INT(m.removes, 1);
    expect_mirror(a, &m, __LINE__);

    /* The rows reported, loaded back in any order with their seq, are the same table: the
     * next events and the creation order come out as without the restart. */
    arr = json_array();
    {
        const char *k;
        json_t *v;
        json_object_foreach(m.rows, k, v)
        {
            json_array_insert(arr, 0, v); /* reversed */
        }
    }
    {
        struct cm_alerts *b = new_table();
        struct mirror m2 = {.rows = json_object()};
        json_t *ja, *jb;
        EXPECT_INT(cm_alerts_from_json(b, arr), 0);
        EXPECT_INT(m.puts, m.puts); /* loading reports nothing (no hook on b yet) */
        EXPECT_INT(cm_alerts_foreach(b, mirror_add, m2.rows), 0);
        CU_ASSERT(json_equal(m2.rows, m.rows));
        ja = cm_alerts_to_json(a);
        jb = cm_alerts_to_json(b);
        CU_ASSERT(json_equal(ja, jb)); /* creation order kept */
        json_decref(ja);
        json_decref(jb);
        /* A new alert after the load comes after every loaded one. */
        cm_alerts_on_change(b, mirror_change, &m2);
        fs_add(fs_reset(&s), "key.weak", WARN, 0, "RSA 1024");
        EXPECT_INT(cm_alerts_observe(b, "new:443", &s.f, NULL, &o, T + 5000, record, &r), 0);
        j = cm_alerts_to_json(b);
        EXPECT_STR(cm_json_str(j, "2.target"), "new:443");
        json_decref(j);
        json_decref(m2.rows);
        cm_alerts_free(b);
    }
    json_decref(arr);
    /* A bad seq is refused. */
    {
        struct cm_alerts *b = new_table();
        j = json_loads("[{\"target\":\"x\",\"id\":\"key.weak\",\"position\":0,\"severity\":"
                       "\"warning\",\"message\":\"m\",\"started_at\":1,\"fired_at\":null,"
                       "\"notified_at\":null,\"seq\":-1}]",
                       0, NULL);
        EXPECT_INT(cm_alerts_from_json(b, j), CM_ESTATE);
        json_decref(j);
        cm_alerts_free(b);
    }
    /* forget: every row of the target goes. */
    cm_alerts_forget(a, "www:443", T + 6000, record, &r);
    cm_alerts_forget(a, "mail:25", T + 6000, record, &r);
    EXPECT_INT(json_object_size(m.rows), 0);
    expect_mirror(a, &m, __LINE__);
    json_decref(m.rows);
    rec_free(&r);
    cm_alerts_free(a);
}

static CU_TestInfo tests[] = {
    {"kind names", test_kind_name},
    {"for 0 fires at once", test_fire_at_once},
    {"for 300 fires at the tick after it", test_fire_after_for},
    {"a pending alert that goes away says nothing", test_pending_goes_away},
    {"severity change while firing", test_changed_while_firing},
    {"severity change while pending", test_changed_while_pending},
    {"repeats, late ticks included", test_repeat},
    {"resolved once, with the last message", test_resolved_once},
    {"a result without a certificate keeps its alerts", test_without_cert_keeps},
    {"message updates go with the next event", test_message_updates},
    {"one alert per position", test_positions},
    {"targets are apart", test_targets_apart},
    {"same id and position twice is one alert", test_same_id_twice_merges},
    {"many findings on one target", test_many_findings_one_target},
    {"forget", test_forget},
    {"next due time", test_next_due},
    {"options change between calls", test_options_change},
    {"JSON across restarts", test_json_restart},
    {"JSON unknown ids dropped", test_json_unknown_id},
    {"JSON malformed refused", test_json_malformed},
    {"JSON of text that is not UTF-8", test_json_not_utf8},
    {"out of memory at every allocation", test_out_of_memory},
    {"10000 targets", test_scale},
    {"change hook: the rows reported are the table", test_change_hook},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("alert", tests, NULL, NULL);
}
