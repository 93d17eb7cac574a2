/* Unit tests for ACME Renewal Information (src/probe/ari.c), its base helpers (src/base/text.c) and its
 * findings (src/analysis/analyze.c). The pure parts run on hand-made input; the client runs against
 * tests/integration/ari_server.py on 127.0.0.1. */
#include "cmtest.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "certmon/analysis/analyze.h"
#include "certmon/probe/ari.h"
#include "certmon/base/error.h"
#include "certmon/http/httpc.h"
#include "certmon/base/text.h"

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

#define NOW ((time_t)1800000000) /* 2027-01-15T08:00:00Z */
#define HOUR 3600

/* ---- Base helpers ---- */

static void test_base64url(void)
{
    /* RFC 4648 section 10 vectors, without padding, and the two characters that differ
     * from base64 ("+/" become "-_"). */
    static const struct {
        const char *in, *out;
    } v[] = {{"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
             {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff", "-_8"}};
    char buf[32];

    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t n = strlen(v[i].in);
        EXPECT_INT(cm_base64url_encode(v[i].in, n, buf, sizeof(buf)), strlen(v[i].out));
        EXPECT_STR(buf, v[i].out);
        EXPECT_INT(CM_B64URL_LEN(n), strlen(v[i].out) + 1);
        /* Exactly the room it needs is enough; one byte less is refused, leaving "". */
        EXPECT_INT(cm_base64url_encode(v[i].in, n, buf, CM_B64URL_LEN(n)), strlen(v[i].out));
        if (n) {
            EXPECT_INT(cm_base64url_encode(v[i].in, n, buf, CM_B64URL_LEN(n) - 1), -1);
            EXPECT_STR(buf, "");
        }
    }
    EXPECT_INT(cm_base64url_encode("x", 1, buf, 0), -1);
}

static void test_hex_decode(void)
{
    unsigned char b[4];

    EXPECT_INT(cm_hex_decode("00a1FF", b, sizeof(b)), 3);
    CU_ASSERT(b[0] == 0x00 && b[1] == 0xa1 && b[2] == 0xff);
    EXPECT_INT(cm_hex_decode("", b, sizeof(b)), 0);
    EXPECT_INT(cm_hex_decode("abc", b, sizeof(b)), -1);        /* odd */
    EXPECT_INT(cm_hex_decode("zz", b, sizeof(b)), -1);         /* not hex */
    EXPECT_INT(cm_hex_decode("0011223344", b, sizeof(b)), -1); /* too long */
}

static void test_escape(void)
{
    char buf[32];

    CU_ASSERT(cm_text_escape("https://a.example/x?y=1", buf, sizeof(buf)));
    EXPECT_STR(buf, "https://a.example/x?y=1");
    CU_ASSERT(cm_text_escape("a\x07\\b\n\xc3\xa9", buf, sizeof(buf)));
    EXPECT_STR(buf, "a\\x07\\\\b\\x0a\\xc3\\xa9");
    /* Cut at a whole escape, never inside one. */
    CU_ASSERT(!cm_text_escape("ab\x01", buf, 5));
    EXPECT_STR(buf, "ab");
}

static void test_rfc3339(void)
{
    int64_t t = 0;

    CU_ASSERT(cm_rfc3339_parse("2027-01-15T08:00:00Z", &t));
    EXPECT_INT(t, NOW);
    CU_ASSERT(cm_rfc3339_parse("2027-01-15T09:30:00.123+01:30", &t));
    EXPECT_INT(t, NOW);
    CU_ASSERT(!cm_rfc3339_parse("2027-01-15 08:00:00Z", &t));
    CU_ASSERT(!cm_rfc3339_parse("2027-13-15T08:00:00Z", &t));
    CU_ASSERT(!cm_rfc3339_parse("2027-01-15T08:00:00", &t));
    CU_ASSERT(!cm_rfc3339_parse(NULL, &t));
}

/* ---- Certificate id ---- */

static void test_cert_id(void)
{
    /* RFC 9773 section 4.1's example: AKI 69:88:5B:..:D4, serial 00:87:65:43:21 (the
     * leading zero byte is part of the DER encoding and of the id). */
    struct cm_cert c = {.aki = "69885b6b87464041e1b37b847ba0ae2cde01c8d4", .serial = "0087654321"};
    char id[CM_ARI_ID_MAX], err[200] = "";

    EXPECT_INT(cm_ari_cert_id(&c, id, sizeof(id), err, sizeof(err)), 0);
    EXPECT_STR(id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");

    c.aki = "";
    EXPECT_INT(cm_ari_cert_id(&c, id, sizeof(id), err, sizeof(err)), CM_EBADARG);
    CU_ASSERT(strstr(err, "no authority key identifier") != NULL);
    c.aki = "6988";
    c.serial = "";
    EXPECT_INT(cm_ari_cert_id(&c, id, sizeof(id), err, sizeof(err)), CM_EBADARG);
    CU_ASSERT(strstr(err, "no serial") != NULL);
    /* The longest id x509.c can produce fits in CM_ARI_ID_MAX. */
    char big[129];
    memset(big, 'f', 128);
    big[128] = '\0';
    c.aki = big;
    c.serial = big;
    EXPECT_INT(cm_ari_cert_id(&c, id, sizeof(id), err, sizeof(err)), 0);
    EXPECT_INT(strlen(id), 86 + 1 + 86);
    EXPECT_INT(cm_ari_cert_id(&c, id, 100, err, sizeof(err)), CM_EBADARG);
}

/* ---- Parsing ---- */

static int parse(const char *body, struct cm_ari *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    err[0] = '\0';
    return cm_ari_parse(body, strlen(body), a, err, errlen);
}

static void test_parse(void)
{
    struct cm_ari a;
    char err[300];

    EXPECT_INT(parse("{\"suggestedWindow\": {\"start\": \"2027-01-14T08:00:00Z\", \"end\": "
                     "\"2027-01-15T08:00:00Z\"}, \"explanationURL\": \"https://x.example/e\"}",
                     &a, err, sizeof(err)),
               0);
    CU_ASSERT(a.has_window);
    EXPECT_INT(a.window_start, NOW - 24 * HOUR);
    EXPECT_INT(a.window_end, NOW);
    EXPECT_STR(a.explanation_url, "https://x.example/e");
    free(a.explanation_url);

    /* No explanation: NULL. start == end is a window of one instant. */
    EXPECT_INT(parse("{\"suggestedWindow\": {\"start\": \"2027-01-15T08:00:00Z\", \"end\": "
                     "\"2027-01-15T08:00:00Z\"}}",
                     &a, err, sizeof(err)),
               0);
    CU_ASSERT_PTR_NULL(a.explanation_url);

    static const struct {
        const char *body, *why;
    } bad[] = {
        {"{\"suggestedWindow\": {\"start\": ", "not JSON"},
        {"[1]", "no suggestedWindow"},
        {"{}", "no suggestedWindow"},
        {"{\"suggestedWindow\": \"soon\"}", "no suggestedWindow"},
        {"{\"suggestedWindow\": {\"end\": \"2027-01-15T08:00:00Z\"}}", "start is not"},
        {"{\"suggestedWindow\": {\"start\": \"yesterday\", \"end\": \"2027-01-15T08:00:00Z\"}}",
         "start is not"},
        {"{\"suggestedWindow\": {\"start\": \"2027-01-15T08:00:00Z\", \"end\": 5}}", "end is not"},
        {"{\"suggestedWindow\": {\"start\": \"2027-01-16T08:00:00Z\", \"end\": "
         "\"2027-01-15T08:00:00Z\"}}",
         "start is after its end"},
        {"{\"suggestedWindow\": {\"start\": \"2027-01-14T08:00:00Z\", \"end\": "
         "\"2027-01-15T08:00:00Z\"}, \"explanationURL\": 7}",
         "explanationURL is not a string"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        EXPECT_INT(parse(bad[i].body, &a, err, sizeof(err)), CM_EBADARG);
        CU_ASSERT(!a.has_window);
        if (!strstr(err, bad[i].why))
            fprintf(stderr, "\n  body %s: error '%s' lacks '%s'\n", bad[i].body, err, bad[i].why);
        CU_ASSERT(strstr(err, bad[i].why) != NULL);
    }

    /* An explanation URL longer than 2048 bytes is cut, at a character boundary. */
    size_t n = 3000;
    char *body = malloc(n + 200), *p;
    CU_ASSERT_FATAL(body != NULL);
    p = body + sprintf(body, "{\"suggestedWindow\": {\"start\": \"2027-01-14T08:00:00Z\", \"end\": "
                             "\"2027-01-15T08:00:00Z\"}, \"explanationURL\": \"x");
    for (size_t i = 0; i < 1100; i++)
        p += sprintf(p, "\xc3\xa9");
    strcpy(p, "\"}");
    EXPECT_INT(parse(body, &a, err, sizeof(err)), 0);
    CU_ASSERT(a.explanation_url && strlen(a.explanation_url) == 2047);
    free(a.explanation_url);
    free(body);
}

static void test_directory_parse(void)
{
    char *url = NULL, err[300];
    const char *ok = "{\"newNonce\": \"https://ca.example/nonce\", \"renewalInfo\": "
                     "\"https://ca.example/renewal-info\"}";

    EXPECT_INT(cm_ari_directory_parse(ok, strlen(ok), &url, err, sizeof(err)), 0);
    EXPECT_STR(url, "https://ca.example/renewal-info");
    free(url);
    static const struct {
        const char *body, *why;
    } bad[] = {
        {"{\"newNonce\": \"https://ca.example/nonce\"}", "has no renewalInfo"},
        {"<html>", "not JSON"},
        {"{\"renewalInfo\": \"ftp://ca.example/ri\"}", "not an http(s) URL"},
        {"{\"renewalInfo\": \"https://ca.example/a b\"}", "not an http(s) URL"},
        {"{\"renewalInfo\": 3}", "not an http(s) URL"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        EXPECT_INT(cm_ari_directory_parse(bad[i].body, strlen(bad[i].body), &url, err, sizeof(err)),
                   CM_EBADARG);
        CU_ASSERT_PTR_NULL(url);
        CU_ASSERT(strstr(err, bad[i].why) != NULL);
    }
}

/* ---- Findings ---- */

#define LEAF_SHA "5f1c9e2a0d7b43e8a6c1f0b9d2e7a4c3b8f6e1d0c9a7b5e3f2d1c0b9a8e7f6d5"

/* A result whose leaf is valid, trusted and stapled around NOW, so that only ARI findings
 * (and none of the others) depend on the test. */
static struct cm_probe_result *result_with(struct cm_ari *a)
{
    struct cm_probe_result *r = calloc(1, sizeof(*r));
    struct cm_cert *c;

    CU_ASSERT_FATAL(r != NULL);
    r->target = strdup("example.com:443");
    r->host = strdup("example.com");
    r->verify_name = strdup("example.com");
    r->port = 443;
    r->tls.chain.certs = c = calloc(1, sizeof(*c));
    r->tls.chain.count = 1;
    c->subject = strdup("CN=example.com");
    c->issuer = strdup("CN=example.com");
    c->serial = strdup("01");
    c->signature = strdup("ECDSA-SHA256");
    c->sig_hash = "SHA256";
    c->sha256 = strdup(LEAF_SHA);
    c->key_type = "EC";
    c->key_bits = 256;
    c->not_before = NOW - 30 * 24 * HOUR;
    c->not_after = NOW + 60 * 24 * HOUR;
    c->sans = calloc(1, sizeof(*c->sans));
    CU_ASSERT_FATAL(c->sans != NULL);
    c->sans[0] = strdup("example.com");
    c->san_count = c->san_total = 1;
    r->ari = a;
    return r;
}

static struct cm_ari *window(int64_t start, int64_t end, const char *expl, const char *sha)
{
    struct cm_ari *a = calloc(1, sizeof(*a));

    CU_ASSERT_FATAL(a != NULL);
    a->has_window = true;
    a->window_start = start;
    a->window_end = end;
    a->explanation_url = expl ? strdup(expl) : NULL;
    a->cert_sha256 = strdup(sha);
    a->retry_after = -1;
    return a;
}

/* The only ARI finding of r under the default policy (policy rules from p when not NULL). */
static const struct cm_finding *ari_finding(struct cm_probe_result *r, struct cm_findings *fs,
                                            const struct cm_policy *p)
{
    struct cm_policy def = CM_POLICY_DEFAULT;
    const struct cm_finding *found = NULL;
    int n = 0;

    def.allow_self_signed = true;
    EXPECT_INT(cm_analyze(r, p ? p : &def, NOW, fs), 0);
    for (size_t i = 0; i < fs->count; i++)
        if (!strncmp(fs->items[i].id, "cert.renewal", 12) ||
            !strcmp(fs->items[i].id, "ari.unavailable")) {
            found = &fs->items[i];
            n++;
        }
    CU_ASSERT(n <= 1);
    return found;
}

static void test_findings(void)
{
    struct cm_findings fs = {0};
    struct cm_probe_result *r;
    const struct cm_finding *f;

    /* Past the end of the window, same certificate: a warning with the window and the
     * explanation, escaped. */
    r = result_with(window(NOW - 10 * 24 * HOUR, NOW - 2 * 24 * HOUR - 1,
                           "https://ca.example/i?x=1\x1b[31m", LEAF_SHA));
    f = ari_finding(r, &fs, NULL);
    CU_ASSERT_FATAL(f != NULL);
    EXPECT_STR(f->id, "cert.renewal_window_passed");
    EXPECT_INT(f->severity, CM_SEV_WARNING);
    EXPECT_INT(f->position, 0);
    EXPECT_STR(f->message, "the CA suggested renewing the leaf certificate between "
                           "2027-01-05T08:00:00Z and 2027-01-13T07:59:59Z; that window ended 48 "
                           "hours ago and the same certificate is still served; explanation: "
                           "https://ca.example/i?x=1\\x1b[31m");
    EXPECT_INT(cm_findings_status(&fs), CM_STATUS_WARNING);
    cm_findings_clear(&fs);
    cm_probe_result_free(r);

    /* One second past the end already counts; the end itself is still inside. */
    r = result_with(window(NOW - 3600, NOW - 1, NULL, LEAF_SHA));
    f = ari_finding(r, &fs, NULL);
    CU_ASSERT_FATAL(f != NULL);
    EXPECT_STR(f->id, "cert.renewal_window_passed");
    CU_ASSERT(strstr(f->message, "ended 0 hours ago") != NULL);
    CU_ASSERT(strstr(f->message, "explanation") == NULL);
    cm_findings_clear(&fs);
    cm_probe_result_free(r);

    r = result_with(window(NOW - 3600, NOW, NULL, LEAF_SHA));
    f = ari_finding(r, &fs, NULL);
    CU_ASSERT_FATAL(f != NULL);
    EXPECT_STR(f->id, "cert.renewal_window_open");
    EXPECT_INT(f->severity, CM_SEV_INFO);
    EXPECT_STR(f->message, "the CA suggests renewing the leaf certificate now: its renewal "
                           "window runs from 2027-01-15T07:00:00Z to 2027-01-15T08:00:00Z");
    EXPECT_INT(cm_findings_status(&fs), CM_STATUS_OK);
    cm_findings_clear(&fs);
    cm_probe_result_free(r);

    /* A window in the future: nothing. */
    r = result_with(window(NOW + 1, NOW + 3600, NULL, LEAF_SHA));
    CU_ASSERT_PTR_NULL(ari_finding(r, &fs, NULL));
    cm_findings_clear(&fs);
    cm_probe_result_free(r);

    /* A window fetched for another certificate (the server has renewed since): nothing. */
    r = result_with(window(NOW - 10 * 24 * HOUR, NOW - 2 * 24 * HOUR, NULL, "00ff"));
    CU_ASSERT_PTR_NULL(ari_finding(r, &fs, NULL));
    cm_findings_clear(&fs);
    cm_probe_result_free(r);

    /* No window: the reason, as info. */
    struct cm_ari *e = calloc(1, sizeof(*e));
    e->error = strdup("renewal information from http://x/: HTTP 500\x07");
    e->retry_after = -1;
    r = result_with(e);
    f = ari_finding(r, &fs, NULL);
    CU_ASSERT_FATAL(f != NULL);
    EXPECT_STR(f->id, "ari.unavailable");
    EXPECT_INT(f->severity, CM_SEV_INFO);
    EXPECT_STR(f->message, "renewal information from http://x/: HTTP 500\\x07");
    cm_findings_clear(&fs);
    cm_probe_result_free(r);

    /* Not asked: nothing. */
    r = result_with(NULL);
    CU_ASSERT_PTR_NULL(ari_finding(r, &fs, NULL));
    cm_findings_clear(&fs);
    cm_probe_result_free(r);

    /* The policy applies: ignore, or raise. */
    struct cm_policy p = CM_POLICY_DEFAULT;
    p.allow_self_signed = true;
    EXPECT_INT(cm_policy_set_severity(&p, "cert.renewal_window_passed", CM_SEV_CRITICAL), 0);
    r = result_with(window(NOW - 10 * 24 * HOUR, NOW - 2 * 24 * HOUR, NULL, LEAF_SHA));
    f = ari_finding(r, &fs, &p);
    CU_ASSERT_FATAL(f != NULL);
    EXPECT_INT(f->severity, CM_SEV_CRITICAL);
    cm_findings_clear(&fs);
    EXPECT_INT(cm_policy_ignore(&p, "cert.renewal_window_passed"), 0);
    CU_ASSERT_PTR_NULL(ari_finding(r, &fs, &p));
    cm_findings_clear(&fs);
    cm_probe_result_free(r);
    cm_policy_clear(&p);
}

static void test_copy(void)
{
    struct cm_ari *a = window(1, 2, "https://e.example", LEAF_SHA), *b;

    a->url = strdup("http://x/ri/id");
    a->cert_id = strdup("id");
    b = cm_ari_copy(a);
    CU_ASSERT_FATAL(b != NULL);
    CU_ASSERT(b->url != a->url && !strcmp(b->url, a->url));
    EXPECT_STR(b->explanation_url, "https://e.example");
    EXPECT_STR(b->cert_sha256, LEAF_SHA);
    CU_ASSERT_PTR_NULL(b->error);
    cm_ari_free(a);
    cm_ari_free(b);
    CU_ASSERT_PTR_NULL(cm_ari_copy(NULL));
    cm_ari_free(NULL);
}

/* ---- The client, against ari_server.py ---- */

static pid_t srv_pid = -1;
static int srv_port;
static char srv_log[256];

static int start_server(void)
{
    char port[16];

    srv_port = cm_th_free_port();
    snprintf(port, sizeof(port), "%d", srv_port);
    snprintf(srv_log, sizeof(srv_log), "/tmp/certmon-unit-ari-%d.jsonl", (int)getpid());
    unlink(srv_log);
    char *argv[] = {"/usr/bin/python3",
                    (char *)cm_th_script("ari_server.py"),
                    "--port",
                    port,
                    "--log",
                    srv_log,
                    "--lifetime",
                    "120",
                    NULL};
    srv_pid = cm_th_spawn(argv, NULL);
    if (srv_pid < 0 || !cm_th_wait_port(srv_port, (int)(10000 * CERTMON_SLOWDOWN)))
        return -1;
    return 0;
}

static int stop_server(void)
{
    if (srv_pid > 0)
        cm_th_stop(srv_pid);
    unlink(srv_log);
    return 0;
}

/* Lines of the server's log that contain needle. */
static int log_count(const char *needle)
{
    FILE *fp = fopen(srv_log, "r");
    char line[1024];
    int n = 0;

    if (!fp)
        return 0;
    while (fgets(line, sizeof(line), fp))
        n += strstr(line, needle) != NULL;
    fclose(fp);
    return n;
}

struct got {
    int n;
    struct cm_ari *a[8];
};

static void on_got(struct cm_ari *a, void *arg)
{
    struct got *g = arg;

    if (g->n < 8)
        g->a[g->n] = a;
    else
        cm_ari_free(a);
    g->n++;
}

static void on_guard(uv_timer_t *t)
{
    (void)t;
}

static bool run_until(uv_loop_t *loop, const int *n, int want, int timeout_ms)
{
    uv_timer_t guard;
    uint64_t end = uv_hrtime() + (uint64_t)(timeout_ms * CERTMON_SLOWDOWN) * 1000000u;

    uv_timer_init(loop, &guard);
    uv_timer_start(&guard, on_guard, 20, 20);
    while (*n < want && uv_hrtime() < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *n >= want;
}

static void got_clear(struct got *g)
{
    for (int i = 0; i < g->n && i < 8; i++)
        cm_ari_free(g->a[i]);
    memset(g, 0, sizeof(*g));
}

static void finish(uv_loop_t *loop, struct cm_ari_client *c, struct cm_httpc *h)
{
    uint64_t end = uv_hrtime() + 5000000000u;

    cm_ari_client_free(c);
    cm_httpc_close(h);
    while (uv_loop_alive(loop) && uv_hrtime() < end)
        uv_run(loop, UV_RUN_NOWAIT);
    EXPECT_INT(uv_loop_close(loop), 0);
}

static void test_client_cache(void)
{
    uv_loop_t loop;
    struct cm_httpc *h = NULL;
    struct cm_ari_client *c = NULL;
    struct cm_ari *a = NULL;
    struct got g = {0};
    char url[128], err[200];
    struct cm_cert leaf = {.aki = "69885b6b87464041e1b37b847ba0ae2cde01c8d4",
                           .serial = "0087654321",
                           .sha256 = LEAF_SHA};
    size_t entries, requests;

    CU_ASSERT_FATAL(uv_loop_init(&loop) == 0);
    CU_ASSERT_FATAL(cm_httpc_new(&loop, &h, err, sizeof(err)) == 0);
    CU_ASSERT_FATAL(cm_ari_client_new(h, 2, &c) == 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/past/renewal-info", srv_port);
    struct cm_ari_source src = {.ari_url = url};

    /* Two lookups of one certificate in flight together: one request. */
    EXPECT_INT(cm_ari_lookup(c, &src, &leaf, 5000, on_got, &g, &a), 0);
    EXPECT_INT(cm_ari_lookup(c, &src, &leaf, 5000, on_got, &g, &a), 0);
    CU_ASSERT(run_until(&loop, &g.n, 2, 10000));
    EXPECT_INT(g.n, 2);
    for (int i = 0; i < 2 && i < g.n; i++) {
        CU_ASSERT_FATAL(g.a[i] != NULL);
        CU_ASSERT(g.a[i]->has_window);
        CU_ASSERT_PTR_NULL(g.a[i]->error);
        EXPECT_STR(g.a[i]->cert_id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
        EXPECT_STR(g.a[i]->cert_sha256, LEAF_SHA);
        EXPECT_INT(g.a[i]->retry_after, 3600);
        /* Polled again no sooner than the server's Retry-After. */
        EXPECT_INT(g.a[i]->next_poll - g.a[i]->fetched_at, 3600);
        CU_ASSERT(g.a[i]->window_end < (int64_t)time(NULL));
    }
    EXPECT_INT(log_count("\"id\": \"aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE\""), 1);
    got_clear(&g);

    /* Until then the answer comes from the cache, at once, without a request. */
    EXPECT_INT(cm_ari_lookup(c, &src, &leaf, 5000, on_got, &g, &a), 1);
    CU_ASSERT_FATAL(a != NULL);
    CU_ASSERT(a->has_window);
    cm_ari_free(a);
    a = NULL;
    EXPECT_INT(log_count("\"mode\": \"past\""), 1);
    cm_ari_client_stats(c, &entries, &requests);
    EXPECT_INT(entries, 1);
    EXPECT_INT(requests, 1);

    /* A certificate without AKI: an error record at once. */
    struct cm_cert noaki = {.aki = "", .serial = "01", .sha256 = LEAF_SHA};
    EXPECT_INT(cm_ari_lookup(c, &src, &noaki, 5000, on_got, &g, &a), 1);
    CU_ASSERT_FATAL(a != NULL);
    CU_ASSERT(!a->has_window);
    CU_ASSERT(a->error && strstr(a->error, "no authority key identifier"));
    cm_ari_free(a);
    a = NULL;

    /* The cache stays within its bound (2 here): three more certificates evict the oldest. */
    char serial[8];
    for (int i = 0; i < 3; i++) {
        struct cm_cert other = leaf;
        snprintf(serial, sizeof(serial), "0%d", i + 1);
        other.serial = serial;
        EXPECT_INT(cm_ari_lookup(c, &src, &other, 5000, on_got, &g, &a), 0);
        CU_ASSERT(run_until(&loop, &g.n, 1, 10000));
        got_clear(&g);
    }
    cm_ari_client_stats(c, &entries, &requests);
    EXPECT_INT(entries, 2);
    EXPECT_INT(requests, 4);
    /* The first certificate was evicted: asked again. */
    EXPECT_INT(cm_ari_lookup(c, &src, &leaf, 5000, on_got, &g, &a), 0);
    CU_ASSERT(run_until(&loop, &g.n, 1, 10000));
    got_clear(&g);
    EXPECT_INT(log_count("\"id\": \"aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE\""), 2);

    /* Bad arguments: refused, the callback never runs. */
    struct cm_ari_source none = {0};
    EXPECT_INT(cm_ari_lookup(c, &none, &leaf, 5000, on_got, &g, &a), -EINVAL);
    EXPECT_INT(cm_ari_lookup(c, &src, &leaf, 5000, NULL, &g, &a), -EINVAL);
    EXPECT_INT(g.n, 0);

    finish(&loop, c, h);
}

static void test_client_directory(void)
{
    uv_loop_t loop;
    struct cm_httpc *h = NULL;
    struct cm_ari_client *c = NULL;
    struct cm_ari *a = NULL;
    struct got g = {0};
    char url[128], err[200];
    struct cm_cert leaf = {.aki = "0102", .serial = "7f", .sha256 = LEAF_SHA};

    CU_ASSERT_FATAL(uv_loop_init(&loop) == 0);
    CU_ASSERT_FATAL(cm_httpc_new(&loop, &h, err, sizeof(err)) == 0);
    CU_ASSERT_FATAL(cm_ari_client_new(h, 0, &c) == 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/open/directory", srv_port);
    struct cm_ari_source src = {.directory = url};

    /* Lookups waiting for the directory share its fetch. */
    EXPECT_INT(cm_ari_lookup(c, &src, &leaf, 5000, on_got, &g, &a), 0);
    EXPECT_INT(cm_ari_lookup(c, &src, &leaf, 5000, on_got, &g, &a), 0);
    CU_ASSERT(run_until(&loop, &g.n, 2, 10000));
    for (int i = 0; i < 2 && i < g.n; i++) {
        CU_ASSERT_FATAL(g.a[i] != NULL);
        CU_ASSERT(g.a[i]->has_window);
        EXPECT_STR(g.a[i]->cert_id, "AQI.fw");
        CU_ASSERT(g.a[i]->url && strstr(g.a[i]->url, "/open/renewal-info/AQI.fw"));
    }
    got_clear(&g);
    EXPECT_INT(log_count("\"/open/directory\""), 1);
    EXPECT_INT(log_count("\"/open/renewal-info/AQI.fw\""), 1);

    /* Another certificate: the directory is not fetched again. */
    leaf.serial = "7e";
    EXPECT_INT(cm_ari_lookup(c, &src, &leaf, 5000, on_got, &g, &a), 0);
    CU_ASSERT(run_until(&loop, &g.n, 1, 10000));
    got_clear(&g);
    EXPECT_INT(log_count("\"/open/directory\""), 1);

    /* A directory without renewalInfo: the error names it, and is cached for a while. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/noari/directory", srv_port);
    EXPECT_INT(cm_ari_lookup(c, &src, &leaf, 5000, on_got, &g, &a), 0);
    CU_ASSERT(run_until(&loop, &g.n, 1, 10000));
    CU_ASSERT_FATAL(g.a[0] != NULL);
    CU_ASSERT(g.a[0]->error && strstr(g.a[0]->error, "has no renewalInfo"));
    got_clear(&g);
    EXPECT_INT(cm_ari_lookup(c, &src, &leaf, 5000, on_got, &g, &a), 1);
    CU_ASSERT(a && a->error && strstr(a->error, "has no renewalInfo"));
    cm_ari_free(a);
    EXPECT_INT(log_count("\"/noari/directory\""), 1);

    finish(&loop, c, h);
}

static void test_client_errors(void)
{
    uv_loop_t loop;
    struct cm_httpc *h = NULL;
    struct cm_ari_client *c = NULL;
    struct cm_ari *a = NULL;
    struct got g = {0};
    char url[128], err[200];
    struct cm_cert leaf = {.aki = "0102", .serial = "05", .sha256 = LEAF_SHA};

    CU_ASSERT_FATAL(uv_loop_init(&loop) == 0);
    CU_ASSERT_FATAL(cm_httpc_new(&loop, &h, err, sizeof(err)) == 0);
    CU_ASSERT_FATAL(cm_ari_client_new(h, 0, &c) == 0);

    static const struct {
        const char *mode, *why;
        int64_t retry;
    } cases[] = {
        {"500", "HTTP 500", 300},
        {"badjson", "is not JSON", 300},
        /* An answer with a Retry-After longer than 5 minutes: that is kept. */
        {"backwards", "start is after its end", 3600},
        {"nosuchmode", "HTTP 404 (the CA does not know this certificate)", 300},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/%s/renewal-info/", srv_port, cases[i].mode);
        struct cm_ari_source src = {.ari_url = url};
        EXPECT_INT(cm_ari_lookup(c, &src, &leaf, 5000, on_got, &g, &a), 0);
        CU_ASSERT(run_until(&loop, &g.n, 1, 10000));
        CU_ASSERT_FATAL(g.n == 1 && g.a[0] != NULL);
        CU_ASSERT(!g.a[0]->has_window);
        if (!g.a[0]->error || !strstr(g.a[0]->error, cases[i].why))
            fprintf(stderr, "\n  %s: error '%s'\n", cases[i].mode, g.a[0]->error);
        CU_ASSERT(g.a[0]->error && strstr(g.a[0]->error, cases[i].why));
        /* A trailing slash in the configured URL does not double. */
        CU_ASSERT(g.a[0]->url && strstr(g.a[0]->url, "/renewal-info/AQI.BQ"));
        /* Failures are asked again after 5 minutes, not at every probe. */
        EXPECT_INT(g.a[0]->next_poll - g.a[0]->fetched_at, cases[i].retry);
        got_clear(&g);
        EXPECT_INT(cm_ari_lookup(c, &src, &leaf, 5000, on_got, &g, &a), 1);
        CU_ASSERT(a && a->error);
        cm_ari_free(a);
    }

    /* A tarpit: the lookup ends at its timeout. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/tarpit/renewal-info", srv_port);
    struct cm_ari_source src = {.ari_url = url};
    double t0 = cm_th_now();
    EXPECT_INT(cm_ari_lookup(c, &src, &leaf, 500, on_got, &g, &a), 0);
    CU_ASSERT(run_until(&loop, &g.n, 1, 5000));
    double took = cm_th_now() - t0;
    CU_ASSERT(took >= 0.45 && took < 2.0 * CERTMON_SLOWDOWN);
    CU_ASSERT_FATAL(g.n == 1 && g.a[0] != NULL);
    CU_ASSERT(g.a[0]->error && strstr(g.a[0]->error, "timed out"));
    got_clear(&g);

    /* Freeing the client with a lookup in flight: its callback runs, "cancelled". */
    leaf.serial = "06";
    EXPECT_INT(cm_ari_lookup(c, &src, &leaf, 5000, on_got, &g, &a), 0);
    cm_ari_client_free(c);
    EXPECT_INT(g.n, 1);
    CU_ASSERT(g.a[0] && g.a[0]->error && strstr(g.a[0]->error, "cancelled"));
    got_clear(&g);
    finish(&loop, NULL, h);
}

static CU_TestInfo tests[] = {
    {"base64url", test_base64url},
    {"hex decode", test_hex_decode},
    {"escape", test_escape},
    {"RFC 3339", test_rfc3339},
    {"certificate id (RFC 9773 example)", test_cert_id},
    {"renewal information parse", test_parse},
    {"directory parse", test_directory_parse},
    {"findings", test_findings},
    {"copy and free", test_copy},
    {"client: shared requests, cache, bound", test_client_cache},
    {"client: directory", test_client_directory},
    {"client: errors and tarpit", test_client_errors},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    return cm_test_main("ari", tests, start_server, stop_server);
}
