/* Unit tests for rendering (src/analysis/report.c): the JSON object of docs/check.md and the text
 * block, from hand-built probe results and findings at a fixed time. */
#include "cmfixture.h"
#include "cmtest.h"

#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certmon/analysis/analyze.h"
#include "certmon/probe/posture.h"
#include "certmon/probe/probe.h"
#include "certmon/analysis/report.h"

#define DAY 86400
#define NOW ((time_t)1800000000) /* 2027-01-15T08:00:00Z */

/* JSON accessors that report what they found. */
#define J_STR(obj, key, want) j_str((obj), (key), (want), __LINE__)
#define J_INT(obj, key, want) j_int((obj), (key), (want), __LINE__)
#define J_BOOL(obj, key, want) j_bool((obj), (key), (want), __LINE__)
#define J_NULL(obj, key) j_null((obj), (key), __LINE__)
#define J_REAL(obj, key, want) j_real((obj), (key), (want), __LINE__)

static void j_str(const json_t *o, const char *key, const char *want, unsigned line)
{
    const json_t *v = json_object_get(o, key);

    if (!json_is_string(v)) {
        char msg[128];
        snprintf(msg, sizeof(msg), "\"%s\" is a string", key);
        CU_assertImplementation(CU_FALSE, line, msg, __FILE__, "", CU_FALSE);
        return;
    }
    expect_str(json_string_value(v), want, key, line);
}

static void j_int(const json_t *o, const char *key, long long want, unsigned line)
{
    const json_t *v = json_object_get(o, key);
    char msg[128];

    snprintf(msg, sizeof(msg), "\"%s\" is an integer", key);
    CU_assertImplementation(json_is_integer(v), line, msg, __FILE__, "", CU_FALSE);
    if (json_is_integer(v))
        expect_int(json_integer_value(v), want, key, line);
}

static void j_bool(const json_t *o, const char *key, bool want, unsigned line)
{
    const json_t *v = json_object_get(o, key);
    char msg[128];

    snprintf(msg, sizeof(msg), "\"%s\" is %s", key, want ? "true" : "false");
    CU_assertImplementation(want ? json_is_true(v) : json_is_false(v), line, msg, __FILE__, "",
                            CU_FALSE);
}

static void j_null(const json_t *o, const char *key, unsigned line)
{
    char msg[128];

    snprintf(msg, sizeof(msg), "\"%s\" is present and null", key);
    CU_assertImplementation(json_is_null(json_object_get(o, key)), line, msg, __FILE__, "",
                            CU_FALSE);
}

static void j_real(const json_t *o, const char *key, double want, unsigned line)
{
    const json_t *v = json_object_get(o, key);
    char msg[160];

    snprintf(msg, sizeof(msg), "\"%s\": want real %.9g, got %s %.9g", key, want,
             json_is_real(v) ? "real" : "non-real", json_is_real(v) ? json_real_value(v) : 0.0);
    CU_assertImplementation(json_is_real(v) && json_real_value(v) == want, line, msg, __FILE__, "",
                            CU_FALSE);
}

/* The array under key, asserted to hold n strings equal to want[]. */
static void j_strings(const json_t *o, const char *key, const char *const *want, size_t n,
                      unsigned line)
{
    const json_t *a = json_object_get(o, key);
    char msg[128];

    snprintf(msg, sizeof(msg), "\"%s\" is an array of %zu", key, n);
    CU_assertImplementation(json_is_array(a) && json_array_size(a) == n, line, msg, __FILE__, "",
                            CU_FALSE);
    for (size_t i = 0; json_is_array(a) && i < n && i < json_array_size(a); i++)
        expect_str(json_string_value(json_array_get(a, i)), want[i], key, line);
}

/* The object has exactly these keys. */
static void j_keys(const json_t *o, const char *const *keys, size_t n, unsigned line)
{
    char msg[128];

    CU_assertImplementation(json_is_object(o), line, "is an object", __FILE__, "", CU_FALSE);
    snprintf(msg, sizeof(msg), "object has %zu keys (got %zu)", n, json_object_size(o));
    CU_assertImplementation(json_object_size(o) == n, line, msg, __FILE__, "", CU_FALSE);
    for (size_t i = 0; i < n; i++) {
        snprintf(msg, sizeof(msg), "key \"%s\" present", keys[i]);
        CU_assertImplementation(json_object_get(o, keys[i]) != NULL, line, msg, __FILE__, "",
                                CU_FALSE);
    }
}

static void fill_cert(struct cm_cert *c, const char *subject, const char *issuer,
                      int64_t not_before, int64_t not_after, bool is_ca, const char *const *sans,
                      size_t nsans)
{
    memset(c, 0, sizeof(*c));
    c->subject = cm_tf_strdup(subject);
    c->issuer = cm_tf_strdup(issuer);
    c->serial = cm_tf_strdup(is_ca ? "00c8" : "0123abcd");
    c->signature = cm_tf_strdup("RSA-SHA256");
    c->sha256 = cm_tf_strdup(is_ca ? "9e2a0d7b43e8a6c1f0b9d2e7a4c3b8f6e1d0c9a7b5e3f2d1c0b9a8e7f6d55f1c"
                              : "5f1c9e2a0d7b43e8a6c1f0b9d2e7a4c3b8f6e1d0c9a7b5e3f2d1c0b9a8e7f6d5");
    c->key_type = is_ca ? "EC" : "RSA";
    c->key_bits = is_ca ? 384 : 2048;
    c->not_before = not_before;
    c->not_after = not_after;
    c->is_ca = is_ca;
    c->self_signed = strcmp(subject, issuer) == 0;
    if (nsans) {
        c->sans = calloc(nsans, sizeof(*c->sans));
        CU_ASSERT_PTR_NOT_NULL_FATAL(c->sans);
        for (size_t i = 0; i < nsans; i++)
            c->sans[i] = cm_tf_strdup(sans[i]);
        c->san_count = nsans;
    }
}

static const char *const leaf_sans[] = {"example.com", "www.example.com", "192.0.2.1"};

/* A successful probe of example.com:443: a trusted two-certificate chain matching the name,
 * the leaf valid until NOW + 90 days, the intermediate until NOW + 1825 days. */
static struct cm_probe_result *healthy(void)
{
    struct cm_probe_result *r = cm_tf_endpoint(NOW);

    r->connect_ms = 2.25;
    r->total_ms = 14.0;
    fill_cert(&r->tls.chain.certs[0], "CN=example.com,O=Example", "CN=Example CA,O=Example",
              NOW - DAY, NOW + 90 * DAY, false, leaf_sans, 3);
    fill_cert(&r->tls.chain.certs[1], "CN=Example CA,O=Example", "CN=Example Root,O=Example",
              NOW - 100 * DAY, NOW + 1825LL * DAY, true, NULL, 0);
    return r;
}

/* A probe that failed before any certificate arrived. */
static struct cm_probe_result *failed(enum cm_err_kind kind, enum cm_phase phase,
                                      const char *message)
{
    struct cm_probe_result *r = calloc(1, sizeof(*r));

    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    r->target = cm_tf_strdup("example.com:443");
    r->host = cm_tf_strdup("example.com");
    r->port = 443;
    r->sni = cm_tf_strdup("example.com");
    r->verify_name = cm_tf_strdup("example.com");
    r->error_kind = kind;
    r->error_phase = phase;
    r->error_message = message ? cm_tf_strdup(message) : NULL;
    r->dns_ms = r->connect_ms = r->starttls_ms = r->handshake_ms = r->total_ms = -1;
    return r;
}

static void add_finding(struct cm_findings *f, const char *id, enum cm_severity sev, int pos,
                        const char *msg)
{
    struct cm_finding *n = realloc(f->items, (f->count + 1) * sizeof(*n));

    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    f->items = n;
    /* Zeroed: no evidence unless a test adds it. */
    memset(&n[f->count], 0, sizeof(n[f->count]));
    n[f->count].id = id;
    n[f->count].severity = sev;
    n[f->count].position = pos;
    n[f->count].message = cm_tf_strdup(msg);
    f->count++;
}

static json_t *render(const struct cm_probe_result *r, const struct cm_findings *f, time_t now)
{
    json_t *j = cm_report_json(r, f, now);

    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    return j;
}

static const char *const top_keys[] = {
    "target", "host",  "port",         "sni",      "address",      "starttls",
    "status", "error", "timing_ms",    "tls",      "verification", "ocsp",
    "mtls",   "chain", "trust_anchor", "findings", "posture", "ari"};
#define N_TOP (sizeof(top_keys) / sizeof(top_keys[0]))

static void test_top_level(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f = {0};
    static const char *const timing_keys[] = {"dns", "connect", "starttls", "handshake", "total"};
    static const char *const tls_keys[] = {"version", "cipher", "group"};
    static const char *const ver_keys[] = {"trusted", "hostname_match", "errors"};
    static const char *const ocsp_keys[] = {"stapled", "status", "verified", "this_update",
                                            "next_update"};
    json_t *j = render(r, &f, NOW);

    j_keys(j, top_keys, N_TOP, __LINE__);
    J_STR(j, "target", "example.com:443");
    J_STR(j, "host", "example.com");
    J_INT(j, "port", 443);
    J_STR(j, "sni", "example.com");
    J_STR(j, "address", "192.0.2.1");
    J_STR(j, "status", "ok");
    J_NULL(j, "error");
    J_NULL(j, "posture");

    json_t *t = json_object_get(j, "timing_ms");
    j_keys(t, timing_keys, 5, __LINE__);
    J_REAL(t, "dns", 1.5);
    J_REAL(t, "connect", 2.25);
    J_REAL(t, "handshake", 10.25);
    J_REAL(t, "total", 14.0);

    json_t *tls = json_object_get(j, "tls");
    j_keys(tls, tls_keys, 3, __LINE__);
    J_STR(tls, "version", "TLS1.3");
    J_STR(tls, "cipher", "TLS_AES_128_GCM_SHA256");
    J_STR(tls, "group", "X25519");

    json_t *v = json_object_get(j, "verification");
    j_keys(v, ver_keys, 3, __LINE__);
    J_BOOL(v, "trusted", true);
    J_BOOL(v, "hostname_match", true);
    j_strings(v, "errors", NULL, 0, __LINE__);

    /* Nothing stapled. */
    json_t *o = json_object_get(j, "ocsp");
    j_keys(o, ocsp_keys, 5, __LINE__);
    J_BOOL(o, "stapled", false);
    J_NULL(o, "status");
    J_BOOL(o, "verified", false);
    J_NULL(o, "this_update");
    J_NULL(o, "next_update");

    CU_ASSERT(json_is_array(json_object_get(j, "chain")));
    EXPECT_INT(json_array_size(json_object_get(j, "chain")), 2);
    CU_ASSERT(json_is_array(json_object_get(j, "findings")));
    EXPECT_INT(json_array_size(json_object_get(j, "findings")), 0);
    json_decref(j);
    cm_probe_result_free(r);
}

static void test_nulls(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f = {0};
    json_t *j;

    free(r->sni);
    r->sni = NULL;
    r->address[0] = '\0';
    free(r->tls.version);
    free(r->tls.cipher);
    free(r->tls.group);
    r->tls.version = r->tls.cipher = r->tls.group = NULL;
    j = render(r, &f, NOW);
    j_keys(j, top_keys, N_TOP, __LINE__);
    J_NULL(j, "sni");
    J_NULL(j, "address");
    J_NULL(json_object_get(j, "tls"), "version");
    J_NULL(json_object_get(j, "tls"), "cipher");
    J_NULL(json_object_get(j, "tls"), "group");
    json_decref(j);
    cm_probe_result_free(r);

    /* An IPv6 target without SNI. */
    r = healthy();
    free(r->target);
    free(r->host);
    free(r->sni);
    r->target = cm_tf_strdup("[2001:db8::1]:8443");
    r->host = cm_tf_strdup("2001:db8::1");
    r->port = 8443;
    r->sni = NULL;
    strcpy(r->address, "2001:db8::1");
    j = render(r, &f, NOW);
    J_STR(j, "target", "[2001:db8::1]:8443");
    J_STR(j, "host", "2001:db8::1");
    J_INT(j, "port", 8443);
    J_NULL(j, "sni");
    J_STR(j, "address", "2001:db8::1");
    json_decref(j);
    cm_probe_result_free(r);
}

static void test_errors(void)
{
    static const char *const timeout_keys[] = {"kind", "phase", "message"};
    static const char *const error_keys[] = {"kind", "message"};
    static const struct {
        enum cm_phase phase;
        const char *name;
    } phases[] = {
        {CM_PHASE_DNS, "dns"}, {CM_PHASE_CONNECT, "connect"}, {CM_PHASE_HANDSHAKE, "handshake"}};
    static const struct {
        enum cm_err_kind kind;
        const char *name;
    } kinds[] = {
        {CM_ERRK_DNS, "dns"}, {CM_ERRK_CONNECT, "connect"}, {CM_ERRK_STARTTLS, "starttls"},
        {CM_ERRK_TLS, "tls"}, {CM_ERRK_IO, "io"},           {CM_ERRK_CANCELLED, "cancelled"}};
    struct cm_findings f = {0};

    for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
        struct cm_probe_result *r =
            failed(CM_ERRK_TIMEOUT, phases[i].phase, "timed out after 10.0 s");
        json_t *j = render(r, &f, NOW);
        json_t *e = json_object_get(j, "error");

        j_keys(j, top_keys, N_TOP, __LINE__);
        j_keys(e, timeout_keys, 3, __LINE__);
        J_STR(e, "kind", "timeout");
        J_STR(e, "phase", phases[i].name);
        J_STR(e, "message", "timed out after 10.0 s");
        json_decref(j);
        cm_probe_result_free(r);
    }
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        struct cm_probe_result *r = failed(kinds[i].kind, CM_PHASE_CONNECT, "it broke");
        json_t *j = render(r, &f, NOW);
        json_t *e = json_object_get(j, "error");

        j_keys(j, top_keys, N_TOP, __LINE__);
        j_keys(e, error_keys, 2, __LINE__);
        J_STR(e, "kind", kinds[i].name);
        J_STR(e, "message", "it broke");
        json_decref(j);
        cm_probe_result_free(r);
    }
    /* No message: an empty one. */
    {
        struct cm_probe_result *r = failed(CM_ERRK_CONNECT, CM_PHASE_CONNECT, NULL);
        json_t *j = render(r, &f, NOW);
        json_t *e = json_object_get(j, "error");

        j_keys(e, error_keys, 2, __LINE__);
        J_STR(e, "kind", "connect");
        J_STR(e, "message", "");
        json_decref(j);
        cm_probe_result_free(r);
    }
}

static void test_failed_probe(void)
{
    struct cm_probe_result *r = failed(CM_ERRK_DNS, CM_PHASE_DNS, "cannot resolve example.com");
    struct cm_findings f = {0};
    json_t *j;

    add_finding(&f, "probe.failed", CM_SEV_CRITICAL, -1, "cannot resolve example.com");
    j = render(r, &f, NOW);
    j_keys(j, top_keys, N_TOP, __LINE__);
    J_STR(j, "status", "critical");
    J_NULL(j, "address");
    J_NULL(json_object_get(j, "timing_ms"), "dns");
    J_NULL(json_object_get(j, "timing_ms"), "connect");
    J_NULL(json_object_get(j, "timing_ms"), "handshake");
    J_NULL(json_object_get(j, "timing_ms"), "total");
    J_NULL(json_object_get(j, "tls"), "version");
    J_BOOL(json_object_get(j, "verification"), "trusted", false);
    J_BOOL(json_object_get(j, "verification"), "hostname_match", false);
    /* Nothing was verified, so there are no verification errors. */
    j_strings(json_object_get(j, "verification"), "errors", NULL, 0, __LINE__);
    EXPECT_INT(json_array_size(json_object_get(j, "chain")), 0);
    EXPECT_INT(json_array_size(json_object_get(j, "findings")), 1);
    json_decref(j);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_timings(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f = {0};
    json_t *j, *t;
    char *dump;

    r->dns_ms = 1.2345678;
    r->connect_ms = -1;
    r->starttls_ms = 3.5;
    r->handshake_ms = 0;
    r->total_ms = 11.9996;
    j = render(r, &f, NOW);
    t = json_object_get(j, "timing_ms");
    J_REAL(t, "dns", 1.235);
    J_NULL(t, "connect");
    J_REAL(t, "handshake", 0.0);
    J_REAL(t, "total", 12.0);
    /* Rendered the way `check --json` prints it. */
    dump = json_dumps(t, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    EXPECT_STR(dump, "{\"dns\":1.235,\"connect\":null,\"starttls\":3.5,\"handshake\":0.0,"
                     "\"total\":12.0}");
    free(dump);
    json_decref(j);

    r->dns_ms = -0.001;
    r->connect_ms = 1.0004;
    r->starttls_ms = -1;
    r->handshake_ms = 1.2344999;
    r->total_ms = 1234.5;
    j = render(r, &f, NOW);
    t = json_object_get(j, "timing_ms");
    J_NULL(t, "dns");
    J_REAL(t, "connect", 1.0);
    J_REAL(t, "handshake", 1.234);
    J_REAL(t, "total", 1234.5);
    json_decref(j);
    cm_probe_result_free(r);
}

static void test_chain_entries(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f = {0};
    static const char *const cert_keys[] = {"position",
                                            "subject",
                                            "issuer",
                                            "serial",
                                            "not_before",
                                            "not_after",
                                            "days_left",
                                            "key",
                                            "sans",
                                            "is_ca",
                                            "self_signed",
                                            "sha256",
                                            "signature",
                                            "must_staple",
                                            "spki_sha256",
                                            "key_usage",
                                            "extended_key_usage",
                                            "san_count",
                                            "sans_truncated",
                                            "revocation",
                                            "revocation_urls"};
    static const char *const key_keys[] = {"type", "bits"};
    json_t *j = render(r, &f, NOW);
    json_t *chain = json_object_get(j, "chain");
    json_t *c0 = json_array_get(chain, 0), *c1 = json_array_get(chain, 1);

    CU_ASSERT_PTR_NOT_NULL_FATAL(c0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c1);
    j_keys(c0, cert_keys, sizeof(cert_keys) / sizeof(cert_keys[0]), __LINE__);
    J_INT(c0, "position", 0);
    J_STR(c0, "subject", "CN=example.com,O=Example");
    J_STR(c0, "issuer", "CN=Example CA,O=Example");
    J_STR(c0, "serial", "0123abcd");
    J_STR(c0, "not_before", "2027-01-14T08:00:00Z");
    J_STR(c0, "not_after", "2027-04-15T08:00:00Z");
    J_INT(c0, "days_left", 90);
    j_keys(json_object_get(c0, "key"), key_keys, 2, __LINE__);
    J_STR(json_object_get(c0, "key"), "type", "RSA");
    J_INT(json_object_get(c0, "key"), "bits", 2048);
    J_STR(c0, "signature", "RSA-SHA256");
    J_STR(c0, "sha256", "5f1c9e2a0d7b43e8a6c1f0b9d2e7a4c3b8f6e1d0c9a7b5e3f2d1c0b9a8e7f6d5");
    j_strings(c0, "sans", leaf_sans, 3, __LINE__);
    J_INT(c0, "san_count", 3);
    J_BOOL(c0, "sans_truncated", false);
    J_BOOL(c0, "is_ca", false);
    J_BOOL(c0, "self_signed", false);
    J_BOOL(c0, "must_staple", false);
    /* Extensions absent: null, not an empty list (which would mean "nothing allowed"). */
    CU_ASSERT(json_is_null(json_object_get(c0, "key_usage")));
    CU_ASSERT(json_is_null(json_object_get(c0, "extended_key_usage")));
    CU_ASSERT(json_is_null(json_object_get(j, "trust_anchor")));
    /* Not checked: revocation null; no distribution point, no responder. */
    CU_ASSERT(json_is_null(json_object_get(c0, "revocation")));
    CU_ASSERT_EQUAL(json_array_size(cm_json_get(c0, "revocation_urls.crl")), 0);
    CU_ASSERT(json_is_null(cm_json_get(c0, "revocation_urls.ocsp")));

    j_keys(c1, cert_keys, sizeof(cert_keys) / sizeof(cert_keys[0]), __LINE__);
    J_INT(c1, "position", 1);
    J_STR(c1, "subject", "CN=Example CA,O=Example");
    J_STR(c1, "serial", "00c8");
    J_STR(c1, "not_after", "2032-01-14T08:00:00Z");
    J_INT(c1, "days_left", 1825);
    J_STR(json_object_get(c1, "key"), "type", "EC");
    J_INT(json_object_get(c1, "key"), "bits", 384);
    j_strings(c1, "sans", NULL, 0, __LINE__);
    J_BOOL(c1, "is_ca", true);
    J_BOOL(c1, "must_staple", false);
    json_decref(j);

    /* A certificate whose names were cut at CM_X509_MAX_SANS says how many it had. */
    r->tls.chain.certs[0].san_total = 9000;
    j = render(r, &f, NOW);
    c0 = json_array_get(json_object_get(j, "chain"), 0);
    j_strings(c0, "sans", leaf_sans, 3, __LINE__);
    J_INT(c0, "san_count", 9000);
    J_BOOL(c0, "sans_truncated", true);
    json_decref(j);
    r->tls.chain.certs[0].san_total = 0;

    /* A must-staple leaf; the flag is per certificate. */
    r->tls.chain.certs[0].must_staple = true;
    j = render(r, &f, NOW);
    chain = json_object_get(j, "chain");
    J_BOOL(json_array_get(chain, 0), "must_staple", true);
    J_BOOL(json_array_get(chain, 1), "must_staple", false);
    json_decref(j);
    r->tls.chain.certs[0].must_staple = false;

    /* days_left is counted from the time passed in, not from the probe. */
    j = render(r, &f, NOW + DAY + 1);
    J_INT(json_array_get(json_object_get(j, "chain"), 0), "days_left", 88);
    json_decref(j);
    j = render(r, &f, NOW + 90 * DAY);
    J_INT(json_array_get(json_object_get(j, "chain"), 0), "days_left", 0);
    json_decref(j);
    j = render(r, &f, NOW + 90 * DAY + 1);
    J_INT(json_array_get(json_object_get(j, "chain"), 0), "days_left", -1);
    json_decref(j);
    j = render(r, &f, NOW + 92 * DAY + 1);
    J_INT(json_array_get(json_object_get(j, "chain"), 0), "days_left", -3);
    json_decref(j);

    /* A self-signed single certificate. */
    cm_cert_clear(&r->tls.chain.certs[1]);
    r->tls.chain.count = 1;
    cm_cert_clear(&r->tls.chain.certs[0]);
    fill_cert(&r->tls.chain.certs[0], "CN=localhost", "CN=localhost", 0, 1798761600, false, NULL,
              0);
    j = render(r, &f, NOW);
    chain = json_object_get(j, "chain");
    EXPECT_INT(json_array_size(chain), 1);
    J_BOOL(json_array_get(chain, 0), "self_signed", true);
    J_STR(json_array_get(chain, 0), "not_before", "1970-01-01T00:00:00Z");
    J_STR(json_array_get(chain, 0), "not_after", "2027-01-01T00:00:00Z");
    J_INT(json_array_get(chain, 0), "days_left", -15);
    json_decref(j);
    cm_probe_result_free(r);
}

static void test_verification_errors(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f = {0};
    static const char *const e1[] = {"signer_not_found", "hostname_mismatch"};
    static const char *const e2[] = {"signer_not_found", "expired"};
    static const char *const e3[] = {"invalid"};
    static const char *const e4[] = {"hostname_mismatch"};
    json_t *j, *v;

    r->tls.verify.trusted = false;
    r->tls.verify.hostname_match = false;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_SIGNER_NOT_FOUND;
    j = render(r, &f, NOW);
    v = json_object_get(j, "verification");
    J_BOOL(v, "trusted", false);
    J_BOOL(v, "hostname_match", false);
    j_strings(v, "errors", e1, 2, __LINE__);
    json_decref(j);

    r->tls.verify.hostname_match = true;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_EXPIRED | CM_VERIFY_SIGNER_NOT_FOUND;
    j = render(r, &f, NOW);
    j_strings(json_object_get(j, "verification"), "errors", e2, 2, __LINE__);
    json_decref(j);

    r->tls.verify.status = CM_VERIFY_INVALID;
    j = render(r, &f, NOW);
    j_strings(json_object_get(j, "verification"), "errors", e3, 1, __LINE__);
    json_decref(j);

    /* Trusted, but not for this name. */
    r->tls.verify.trusted = true;
    r->tls.verify.status = 0;
    r->tls.verify.hostname_match = false;
    j = render(r, &f, NOW);
    J_BOOL(json_object_get(j, "verification"), "trusted", true);
    j_strings(json_object_get(j, "verification"), "errors", e4, 1, __LINE__);
    json_decref(j);

    /* Not verified at all: nothing to list. */
    r->tls.verify.done = false;
    r->tls.verify.trusted = false;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_SIGNER_NOT_FOUND;
    j = render(r, &f, NOW);
    j_strings(json_object_get(j, "verification"), "errors", NULL, 0, __LINE__);
    json_decref(j);
    cm_probe_result_free(r);
}

static void test_findings(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f = {0};
    static const char *const keys[] = {"id", "severity", "message", "position"};
    json_t *j, *fs;

    add_finding(&f, "cert.expiring", CM_SEV_WARNING, 1, "chain certificate 1 expires soon");
    add_finding(&f, "chain.untrusted", CM_SEV_CRITICAL, -1, "the chain does not verify");
    add_finding(&f, "x.note", CM_SEV_INFO, 0, "just so you know");
    j = render(r, &f, NOW);
    J_STR(j, "status", "critical");
    fs = json_object_get(j, "findings");
    EXPECT_INT(json_array_size(fs), 3);
    for (size_t i = 0; i < json_array_size(fs); i++)
        j_keys(json_array_get(fs, i), keys, 4, __LINE__);
    J_STR(json_array_get(fs, 0), "id", "cert.expiring");
    J_STR(json_array_get(fs, 0), "severity", "warning");
    J_STR(json_array_get(fs, 0), "message", "chain certificate 1 expires soon");
    J_INT(json_array_get(fs, 0), "position", 1);
    J_STR(json_array_get(fs, 1), "id", "chain.untrusted");
    J_STR(json_array_get(fs, 1), "severity", "critical");
    J_STR(json_array_get(fs, 1), "message", "the chain does not verify");
    J_NULL(json_array_get(fs, 1), "position");
    J_STR(json_array_get(fs, 2), "id", "x.note");
    J_STR(json_array_get(fs, 2), "severity", "info");
    J_INT(json_array_get(fs, 2), "position", 0);
    json_decref(j);

    /* The status is the worst finding; info does not count. */
    cm_findings_clear(&f);
    add_finding(&f, "x.note", CM_SEV_INFO, -1, "n");
    j = render(r, &f, NOW);
    J_STR(j, "status", "ok");
    json_decref(j);
    add_finding(&f, "cert.expiring", CM_SEV_WARNING, 0, "w");
    j = render(r, &f, NOW);
    J_STR(j, "status", "warning");
    json_decref(j);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_ocsp(void)
{
    static const char *const ocsp_keys[] = {"stapled", "status", "verified", "this_update",
                                            "next_update"};
    struct cm_probe_result *r = healthy();
    struct cm_findings f = {0};
    json_t *j, *o;

    /* A good staple that verified, with both times. */
    r->tls.ocsp = (struct cm_ocsp){.status = CM_OCSP_GOOD,
                                   .verified = true,
                                   .this_update = NOW - 3600,
                                   .next_update = NOW + 7 * DAY};
    j = render(r, &f, NOW);
    o = json_object_get(j, "ocsp");
    j_keys(o, ocsp_keys, 5, __LINE__);
    J_BOOL(o, "stapled", true);
    J_STR(o, "status", "good");
    J_BOOL(o, "verified", true);
    J_STR(o, "this_update", "2027-01-15T07:00:00Z");
    J_STR(o, "next_update", "2027-01-22T08:00:00Z");
    json_decref(j);

    /* Revoked, unverified, without a next update. The revocation time is not a field. */
    r->tls.ocsp = (struct cm_ocsp){.status = CM_OCSP_REVOKED,
                                   .verified = false,
                                   .this_update = NOW - 2 * DAY,
                                   .revoked_at = NOW - 3 * DAY};
    j = render(r, &f, NOW);
    o = json_object_get(j, "ocsp");
    j_keys(o, ocsp_keys, 5, __LINE__);
    J_BOOL(o, "stapled", true);
    J_STR(o, "status", "revoked");
    J_BOOL(o, "verified", false);
    J_STR(o, "this_update", "2027-01-13T08:00:00Z");
    J_NULL(o, "next_update");
    json_decref(j);

    /* The other statuses by name; a staple that cannot be parsed has no times. */
    r->tls.ocsp = (struct cm_ocsp){.status = CM_OCSP_UNKNOWN, .verified = true};
    j = render(r, &f, NOW);
    J_STR(json_object_get(j, "ocsp"), "status", "unknown");
    J_BOOL(json_object_get(j, "ocsp"), "stapled", true);
    json_decref(j);
    r->tls.ocsp = (struct cm_ocsp){.status = CM_OCSP_BAD};
    j = render(r, &f, NOW);
    o = json_object_get(j, "ocsp");
    J_BOOL(o, "stapled", true);
    J_STR(o, "status", "unparseable");
    J_BOOL(o, "verified", false);
    J_NULL(o, "this_update");
    J_NULL(o, "next_update");
    json_decref(j);

    /* A failed probe still has the object, empty. */
    cm_probe_result_free(r);
    r = failed(CM_ERRK_CONNECT, CM_PHASE_CONNECT, "refused");
    j = render(r, &f, NOW);
    o = json_object_get(j, "ocsp");
    j_keys(o, ocsp_keys, 5, __LINE__);
    J_BOOL(o, "stapled", false);
    J_NULL(o, "status");
    json_decref(j);
    cm_probe_result_free(r);
}

static void test_finding_evidence(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f = {0};
    static const char *const plain[] = {"id", "severity", "message", "position"};
    static const char *const with_days[] = {"id", "severity", "message", "position", "days_left"};
    static const char *const with_key[] = {"id",       "severity", "message",
                                           "position", "key_type", "key_bits"};
    static const char *const with_alg[] = {"id", "severity", "message", "position", "algorithm"};
    json_t *j, *fs;

    add_finding(&f, "cert.expiring", CM_SEV_WARNING, 0, "expires in 12 days");
    f.items[0].has_days_left = true;
    f.items[0].days_left = 12;
    add_finding(&f, "cert.expiring", CM_SEV_CRITICAL, 1, "expires in 0 days");
    f.items[1].has_days_left = true;
    f.items[1].days_left = 0; /* present although 0 */
    add_finding(&f, "cert.expired", CM_SEV_CRITICAL, 0, "expired 3 days ago");
    f.items[2].has_days_left = true;
    f.items[2].days_left = -4;
    add_finding(&f, "key.weak", CM_SEV_WARNING, 0, "a 224-bit EC key");
    f.items[3].key_type = "EC";
    f.items[3].key_bits = 224;
    add_finding(&f, "signature.weak", CM_SEV_CRITICAL, 1, "signed with RSA-SHA1");
    f.items[4].algorithm = cm_tf_strdup("RSA-SHA1");
    add_finding(&f, "host.mismatch", CM_SEV_CRITICAL, 0, "not valid for example.com");
    /* days_left set but not flagged: absent. */
    f.items[5].days_left = 77;

    j = render(r, &f, NOW);
    fs = json_object_get(j, "findings");
    EXPECT_INT(json_array_size(fs), 6);
    j_keys(json_array_get(fs, 0), with_days, 5, __LINE__);
    J_INT(json_array_get(fs, 0), "days_left", 12);
    j_keys(json_array_get(fs, 1), with_days, 5, __LINE__);
    J_INT(json_array_get(fs, 1), "days_left", 0);
    j_keys(json_array_get(fs, 2), with_days, 5, __LINE__);
    J_INT(json_array_get(fs, 2), "days_left", -4);
    j_keys(json_array_get(fs, 3), with_key, 6, __LINE__);
    J_STR(json_array_get(fs, 3), "key_type", "EC");
    J_INT(json_array_get(fs, 3), "key_bits", 224);
    j_keys(json_array_get(fs, 4), with_alg, 5, __LINE__);
    J_STR(json_array_get(fs, 4), "algorithm", "RSA-SHA1");
    j_keys(json_array_get(fs, 5), plain, 4, __LINE__);
    /* The evidence does not change the rest. */
    J_STR(json_array_get(fs, 3), "id", "key.weak");
    J_STR(json_array_get(fs, 3), "severity", "warning");
    J_STR(json_array_get(fs, 3), "message", "a 224-bit EC key");
    J_INT(json_array_get(fs, 3), "position", 0);
    J_STR(j, "status", "critical");
    json_decref(j);
    cm_findings_clear(&f); /* frees the algorithm too */
    cm_probe_result_free(r);
}

/* What the analyser produces renders as documented: evidence included. */
static void test_analysed_findings(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f = {0};
    const struct cm_policy policy = CM_POLICY_DEFAULT;
    json_t *j, *fs, *it;

    r->tls.chain.certs[0].not_before = NOW - 80 * DAY; /* 100 days: warn_days applies */
    r->tls.chain.certs[0].not_after = NOW + 20 * DAY;
    r->tls.chain.certs[0].key_bits = 1024;
    free(r->tls.chain.certs[1].signature);
    r->tls.chain.certs[1].signature = cm_tf_strdup("RSA-SHA1");
    r->tls.chain.certs[1].sig_hash = "SHA1";
    CU_ASSERT_EQUAL_FATAL(cm_analyze(r, &policy, NOW, &f), 0);
    j = render(r, &f, NOW);
    fs = json_object_get(j, "findings");
    EXPECT_INT(json_array_size(fs), 4);
    it = json_array_get(fs, 0);
    J_STR(it, "id", "cert.expiring");
    J_INT(it, "days_left", 20);
    CU_ASSERT_PTR_NULL(json_object_get(it, "key_type"));
    it = json_array_get(fs, 1);
    J_STR(it, "id", "key.weak");
    J_STR(it, "severity", "critical");
    J_INT(it, "position", 0);
    J_STR(it, "key_type", "RSA");
    J_INT(it, "key_bits", 1024);
    CU_ASSERT_PTR_NULL(json_object_get(it, "days_left"));
    it = json_array_get(fs, 2);
    J_STR(it, "id", "signature.weak");
    J_INT(it, "position", 1);
    J_STR(it, "algorithm", "RSA-SHA1");
    CU_ASSERT_PTR_NULL(json_object_get(it, "key_type"));
    it = json_array_get(fs, 3);
    J_STR(it, "id", "ocsp.not_stapled");
    J_STR(it, "severity", "info");
    CU_ASSERT_PTR_NULL(json_object_get(it, "days_left"));
    CU_ASSERT_PTR_NULL(json_object_get(it, "algorithm"));
    J_STR(j, "status", "critical");
    json_decref(j);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* Renders the text block into a string (caller frees). */
static char *text(const struct cm_probe_result *r, const struct cm_findings *f, time_t now,
                  bool colour)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);

    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    cm_report_text(fp, r, f, now, colour);
    CU_ASSERT_EQUAL(fclose(fp), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    return buf;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Removes ANSI SGR sequences (ESC [ digits/semicolons m) in place. */
static void strip_ansi(char *s)
{
    char *w = s;

    for (const char *p = s; *p;) {
        if (p[0] == '\033' && p[1] == '[') {
            const char *q = p + 2;
            while ((*q >= '0' && *q <= '9') || *q == ';')
                q++;
            if (*q == 'm') {
                p = q + 1;
                continue;
            }
        }
        *w++ = *p++;
    }
    *w = '\0';
}

static void test_text_ok(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f = {0};
    char *s, *c;

    add_finding(&f, "x.note", CM_SEV_INFO, -1, "a note");
    s = text(r, &f, NOW, false);
    EXPECT_STR(s, "OK       example.com:443 (192.0.2.1)  90 days left (2027-04-15T08:00:00Z)\n"
                  "         TLS1.3 TLS_AES_128_GCM_SHA256 X25519, handshake 10 ms\n"
                  "         chain: 2 certificates, trusted, hostname matches\n"
                  "         0 example.com <- Example CA  RSA 2048  RSA-SHA256  "
                  "2027-04-15T08:00:00Z\n"
                  "         1 Example CA <- Example Root  EC 384  RSA-SHA256  "
                  "2032-01-14T08:00:00Z\n"
                  "         info     x.note: a note\n");
    CU_ASSERT_PTR_NULL(strchr(s, '\033'));

    c = text(r, &f, NOW, true);
    CU_ASSERT_PTR_NOT_NULL(strstr(c, "\033["));
    CU_ASSERT(starts_with(c, "\033[1;32mOK      \033[0m \033[1mexample.com:443\033[0m \033[2m("
                             "192.0.2.1)\033[0m  90 days left"));
    /* Colours change nothing else. */
    strip_ansi(c);
    EXPECT_STR(c, s);
    free(s);
    free(c);
    cm_findings_clear(&f);

    /* One day left: singular. */
    r->tls.chain.certs[0].not_after = NOW + DAY + 30;
    s = text(r, &f, NOW, false);
    CU_ASSERT(starts_with(
        s, "OK       example.com:443 (192.0.2.1)  1 day left (2027-01-16T08:00:30Z)\n"));
    free(s);
    cm_probe_result_free(r);
}

static void test_text_critical(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f = {0};
    char *s, *c;

    /* The intermediate expired; it is the earliest expiry. */
    r->tls.chain.certs[1].not_after = NOW - 1;
    r->tls.verify.trusted = false;
    r->tls.verify.hostname_match = false;
    r->address[0] = '\0';
    add_finding(&f, "cert.expired", CM_SEV_CRITICAL, 1, "chain certificate 1 expired");
    add_finding(&f, "host.mismatch", CM_SEV_CRITICAL, 0, "not valid for example.com");
    add_finding(&f, "cert.expiring", CM_SEV_WARNING, 0, "expires soon");
    s = text(r, &f, NOW, false);
    EXPECT_STR(s, "CRITICAL example.com:443  expired 2027-01-15T07:59:59Z\n"
                  "         TLS1.3 TLS_AES_128_GCM_SHA256 X25519, handshake 10 ms\n"
                  "         chain: 2 certificates, not trusted, hostname does not match\n"
                  "         0 example.com <- Example CA  RSA 2048  RSA-SHA256  "
                  "2027-04-15T08:00:00Z\n"
                  "         1 Example CA <- Example Root  EC 384  RSA-SHA256  "
                  "2027-01-15T07:59:59Z\n"
                  "         critical cert.expired: chain certificate 1 expired\n"
                  "         critical host.mismatch: not valid for example.com\n"
                  "         warning  cert.expiring: expires soon\n");
    CU_ASSERT_PTR_NULL(strchr(s, '\033'));
    c = text(r, &f, NOW, true);
    CU_ASSERT(starts_with(c, "\033[1;31mCRITICAL\033[0m \033[1mexample.com:443\033[0m  expired"));
    CU_ASSERT_PTR_NOT_NULL(strstr(c, "\033[1;31mcritical"));
    CU_ASSERT_PTR_NOT_NULL(strstr(c, "\033[1;33mwarning"));
    strip_ansi(c);
    EXPECT_STR(c, s);
    free(s);
    free(c);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_text_failed(void)
{
    struct cm_probe_result *r =
        failed(CM_ERRK_CONNECT, CM_PHASE_CONNECT, "cannot connect to port 443: refused");
    struct cm_findings f = {0};
    char *s, *c;

    strcpy(r->address, "192.0.2.1");
    add_finding(&f, "probe.failed", CM_SEV_CRITICAL, -1, "cannot connect to port 443: refused");
    s = text(r, &f, NOW, false);
    EXPECT_STR(s, "CRITICAL example.com:443 (192.0.2.1)\n"
                  "         critical probe.failed: cannot connect to port 443: refused\n");
    c = text(r, &f, NOW, true);
    CU_ASSERT_PTR_NOT_NULL(strstr(c, "\033["));
    strip_ansi(c);
    EXPECT_STR(c, s);
    free(s);
    free(c);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_text_names(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f = {0};
    char *s;

    /* No CN: the whole subject; an empty subject is named as such. */
    free(r->tls.chain.certs[0].subject);
    free(r->tls.chain.certs[1].issuer);
    r->tls.chain.certs[0].subject = cm_tf_strdup("O=Example,OU=Web");
    r->tls.chain.certs[1].issuer = cm_tf_strdup("");
    free(r->tls.chain.certs[1].subject);
    r->tls.chain.certs[1].subject = cm_tf_strdup("O=Example,CN=Late CN");
    s = text(r, &f, NOW, false);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "         0 O=Example,OU=Web <- Example CA  RSA 2048"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "         1 Late CN <- (empty subject)  EC 384"));
    free(s);
    cm_probe_result_free(r);
}

/* A posture pass hung on the result renders as docs/check.md documents it. */
static void test_posture(void)
{
    static const char *const keys[] = {"versions_accepted",
                                       "weak_ciphers_accepted",
                                       "forward_secrecy",
                                       "aead",
                                       "dh_bits",
                                       "dh_group",
                                       "secure_renegotiation",
                                       "not_tested",
                                       "handshakes",
                                       "elapsed_ms"};
    static const char *const versions[] = {"TLS1.3", "TLS1.2", "SSL3.0"};
    static const char *const weak[] = {"RC4", "EXPORT"};
    static const char *const untested[] = {"TLS1.1", "NULL", "DHE"};
    static const char *const none[] = {NULL};
    struct cm_probe_result *r = healthy();
    struct cm_posture *p = calloc(1, sizeof(*p));
    struct cm_findings f = {0};
    json_t *j, *o, *fs;
    char *s;

    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    p->version[CM_PV_TLS13] = CM_TRI_YES;
    p->version[CM_PV_TLS12] = CM_TRI_YES;
    p->version[CM_PV_TLS11] = CM_TRI_UNKNOWN;
    p->version[CM_PV_TLS10] = CM_TRI_NO;
    p->version[CM_PV_SSL30] = CM_TRI_YES;
    p->weak[CM_WEAK_RC4] = CM_TRI_YES;
    p->weak[CM_WEAK_3DES] = CM_TRI_NO;
    p->weak[CM_WEAK_NULL] = CM_TRI_UNKNOWN;
    p->weak[CM_WEAK_EXPORT] = CM_TRI_YES;
    p->weak[CM_WEAK_ANON] = CM_TRI_NO;
    p->forward_secrecy = CM_TRI_NO;
    p->dhe = CM_TRI_UNKNOWN;
    p->dh_bits = 1024;
    p->secure_renegotiation = CM_TRI_UNKNOWN;
    p->handshakes = 12;
    p->elapsed_ms = 8.25;
    r->posture = p;

    add_finding(&f, "protocol.legacy", CM_SEV_CRITICAL, -1, "SSL 3.0");
    f.items[0].version = "SSL3.0";
    add_finding(&f, "cipher.weak", CM_SEV_CRITICAL, -1, "RC4");
    f.items[1].cipher_class = "RC4";
    add_finding(&f, "dh.weak", CM_SEV_WARNING, -1, "1024 bits");
    f.items[2].dh_bits = 1024;
    j = render(r, &f, NOW);
    o = json_object_get(j, "posture");
    j_keys(o, keys, sizeof(keys) / sizeof(keys[0]), __LINE__);
    j_strings(o, "versions_accepted", versions, 3, __LINE__);
    j_strings(o, "weak_ciphers_accepted", weak, 2, __LINE__);
    j_strings(o, "not_tested", untested, 3, __LINE__);
    J_BOOL(o, "forward_secrecy", false);
    J_NULL(o, "secure_renegotiation");
    J_INT(o, "dh_bits", 1024);
    J_NULL(o, "dh_group"); /* no group judged */
    J_NULL(o, "aead");
    J_INT(o, "handshakes", 12);
    J_REAL(o, "elapsed_ms", 8.25);
    /* The evidence of the posture findings. */
    fs = json_object_get(j, "findings");
    J_STR(json_array_get(fs, 0), "version", "SSL3.0");
    J_STR(json_array_get(fs, 1), "class", "RC4");
    J_INT(json_array_get(fs, 2), "dh_bits", 1024);
    CU_ASSERT_PTR_NULL(json_object_get(json_array_get(fs, 0), "class"));
    CU_ASSERT_PTR_NULL(json_object_get(json_array_get(fs, 1), "dh_bits"));
    CU_ASSERT_PTR_NULL(json_object_get(json_array_get(fs, 2), "version"));
    json_decref(j);

    s = text(r, &f, NOW, false);
    CU_ASSERT_PTR_NOT_NULL(strstr(
        s, "\n         posture: TLS1.3 TLS1.2 SSL3.0; weak ciphers: RC4 EXPORT; forward secrecy: "
           "no; DH 1024 bits; secure renegotiation: unknown (12 handshakes, 8 ms)\n"
           "         critical protocol.legacy: SSL 3.0\n"));
    free(s);

    /* Nothing accepted, everything fine, no DH seen. */
    memset(p, 0, sizeof(*p));
    p->forward_secrecy = CM_TRI_YES;
    p->secure_renegotiation = CM_TRI_YES;
    j = render(r, &f, NOW);
    o = json_object_get(j, "posture");
    j_strings(o, "versions_accepted", none, 0, __LINE__);
    j_strings(o, "weak_ciphers_accepted", none, 0, __LINE__);
    J_BOOL(o, "forward_secrecy", true);
    J_BOOL(o, "secure_renegotiation", true);
    J_INT(o, "dh_bits", 0);
    json_decref(j);
    s = text(r, &f, NOW, false);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "posture: no version accepted; weak ciphers: none; forward "
                                     "secrecy: yes; secure renegotiation: yes (0 handshakes"));
    free(s);
    cm_findings_clear(&f);
    cm_probe_result_free(r); /* frees the posture */
}

/* ---- File targets (filecert.h) ---- */

/* What cm_file_scan makes of a PEM bundle holding the chain of healthy(). */
static struct cm_probe_result *file_result(void)
{
    struct cm_probe_result *r = healthy();

    cm_tf_to_file(r, "/etc/ssl/bundle.pem");
    return r;
}

/* Keeps the first n certificates of the chain. */
static void keep_certs(struct cm_probe_result *r, size_t n)
{
    for (size_t i = n; i < r->tls.chain.count; i++)
        cm_cert_clear(&r->tls.chain.certs[i]);
    r->tls.chain.count = n;
}

/* Key usage, extended key usage and the trust anchor, as check --json shows them. */
static void test_usage_and_anchor(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f = {0};
    struct cm_cert *leaf = &r->tls.chain.certs[0];
    static const char *const ku[] = {"digitalSignature", "keyAgreement"};
    static const char *const eku[] = {"clientAuth", "1.2.3.4"};
    json_t *j, *c0, *a;

    leaf->has_key_usage = true;
    leaf->key_usage = CM_KU_DIGITAL_SIGNATURE | CM_KU_KEY_AGREEMENT;
    leaf->has_eku = true;
    free(leaf->eku);
    leaf->eku = strdup("clientAuth, 1.2.3.4");
    free(leaf->spki_sha256);
    leaf->spki_sha256 = strdup("ab01");
    /* The anchor: a copy of the intermediate (sent, so at position 1), then a root that only
     * the trust store holds (position 2, the chain length). */
    r->tls.anchor.certs = calloc(1, sizeof(struct cm_cert));
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->tls.anchor.certs);
    CU_ASSERT_EQUAL_FATAL(cm_cert_copy(&r->tls.anchor.certs[0], &r->tls.chain.certs[1]), 0);
    r->tls.anchor.count = 1;

    j = render(r, &f, NOW);
    c0 = json_array_get(json_object_get(j, "chain"), 0);
    j_strings(c0, "key_usage", ku, 2, __LINE__);
    j_strings(c0, "extended_key_usage", eku, 2, __LINE__);
    J_STR(c0, "spki_sha256", "ab01");
    a = json_object_get(j, "trust_anchor");
    CU_ASSERT(json_is_object(a));
    J_INT(a, "position", 1);
    J_STR(a, "subject", "CN=Example CA,O=Example");
    json_decref(j);

    free(r->tls.anchor.certs[0].sha256);
    r->tls.anchor.certs[0].sha256 = strdup("00ff");
    free(r->tls.anchor.certs[0].subject);
    r->tls.anchor.certs[0].subject = strdup("CN=Store Root");
    j = render(r, &f, NOW);
    a = json_object_get(j, "trust_anchor");
    J_INT(a, "position", 2);
    J_STR(a, "subject", "CN=Store Root");
    json_decref(j);
    cm_probe_result_free(r);
}

static void test_file_json(void)
{
    static const char *const file_keys[] = {
        "target", "path",         "host",      "port",    "sni",          "address",  "starttls",
        "status", "error",        "timing_ms", "tls",     "verification", "ocsp",     "mtls",
        "chain",  "trust_anchor", "findings",  "posture", "ari",          "keystore", "key"};
    struct cm_probe_result *r = file_result();
    struct cm_findings f = {0};
    json_t *j, *t;
    char *dump;

    add_finding(&f, "cert.expiring", CM_SEV_WARNING, 1, "bundle certificate 1 expires soon");
    j = render(r, &f, NOW);
    j_keys(j, file_keys, sizeof(file_keys) / sizeof(file_keys[0]), __LINE__);
    J_STR(j, "target", "file:/etc/ssl/bundle.pem");
    J_STR(j, "path", "/etc/ssl/bundle.pem");
    J_STR(j, "status", "warning");
    J_NULL(j, "error");
    t = json_object_get(j, "timing_ms");
    J_NULL(t, "dns");
    J_NULL(t, "connect");
    J_NULL(t, "starttls");
    J_NULL(t, "handshake");
    J_REAL(t, "total", 0.25);
    EXPECT_INT(json_array_size(json_object_get(j, "chain")), 2);
    J_STR(json_array_get(json_object_get(j, "chain"), 1), "subject", "CN=Example CA,O=Example");
    J_INT(json_array_get(json_object_get(j, "findings"), 0), "position", 1);
    /* The order: "path" right after "target", then the keys of an endpoint in theirs. */
    json_object_del(j, "chain");
    json_object_del(j, "findings");
    dump = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    EXPECT_STR(dump,
               "{\"target\":\"file:/etc/ssl/bundle.pem\",\"path\":\"/etc/ssl/bundle.pem\","
               "\"host\":null,\"port\":null,\"sni\":null,\"address\":null,"
               "\"starttls\":null,\"status\":\"warning\",\"error\":null,"
               "\"timing_ms\":{\"dns\":null,\"connect\":null,\"starttls\":null,"
               "\"handshake\":null,\"total\":0.25},\"tls\":null,\"verification\":null,"
               "\"ocsp\":null,\"mtls\":null,\"trust_anchor\":null,\"posture\":null,\"ari\":null,"
               "\"keystore\":{\"format\":\"certificates\",\"integrity\":null},"
               "\"key\":null}");
    free(dump);
    json_decref(j);
    cm_findings_clear(&f);

    /* Failed: error kind "file", no certificate. */
    keep_certs(r, 0);
    r->error_kind = CM_ERRK_FILE;
    r->error_message = cm_tf_strdup("cannot read /etc/ssl/bundle.pem: Permission denied");
    r->total_ms = 0.01;
    add_finding(&f, "probe.failed", CM_SEV_CRITICAL, -1,
                "cannot read /etc/ssl/bundle.pem: Permission denied");
    j = render(r, &f, NOW);
    j_keys(j, file_keys, sizeof(file_keys) / sizeof(file_keys[0]), __LINE__);
    J_STR(j, "status", "critical");
    {
        static const char *const error_keys[] = {"kind", "message"};
        json_t *e = json_object_get(j, "error");
        j_keys(e, error_keys, 2, __LINE__);
        J_STR(e, "kind", "file");
        J_STR(e, "message", "cannot read /etc/ssl/bundle.pem: Permission denied");
    }
    EXPECT_INT(json_array_size(json_object_get(j, "chain")), 0);
    json_decref(j);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_file_text(void)
{
    struct cm_probe_result *r = file_result();
    struct cm_findings f = {0};
    char *s, *c;

    r->tls.chain.certs[1].not_after = NOW + 10 * DAY;
    add_finding(&f, "cert.expiring", CM_SEV_WARNING, 1,
                "bundle certificate 1 (CN=Example CA,O=Example) expires in 10 days");
    s = text(r, &f, NOW, false);
    EXPECT_STR(s, "WARNING  file:/etc/ssl/bundle.pem  10 days left (2027-01-25T08:00:00Z)\n"
                  "         2 certificates in /etc/ssl/bundle.pem\n"
                  "         0 example.com <- Example CA  RSA 2048  RSA-SHA256  "
                  "2027-04-15T08:00:00Z\n"
                  "         1 Example CA <- Example Root  EC 384  RSA-SHA256  "
                  "2027-01-25T08:00:00Z\n"
                  "         warning  cert.expiring: bundle certificate 1 (CN=Example CA,O=Example) "
                  "expires in 10 days\n");
    c = text(r, &f, NOW, true);
    strip_ansi(c);
    EXPECT_STR(c, s);
    free(s);
    free(c);
    cm_findings_clear(&f);

    /* One certificate: singular. */
    keep_certs(r, 1);
    s = text(r, &f, NOW, false);
    EXPECT_STR(s, "OK       file:/etc/ssl/bundle.pem  90 days left (2027-04-15T08:00:00Z)\n"
                  "         1 certificate in /etc/ssl/bundle.pem\n"
                  "         0 example.com <- Example CA  RSA 2048  RSA-SHA256  "
                  "2027-04-15T08:00:00Z\n");
    free(s);

    /* Failed: the finding carries the message. */
    keep_certs(r, 0);
    r->error_kind = CM_ERRK_FILE;
    r->error_message = cm_tf_strdup("no certificate found in /etc/ssl/bundle.pem (not PEM or DER)");
    add_finding(&f, "probe.failed", CM_SEV_CRITICAL, -1,
                "no certificate found in /etc/ssl/bundle.pem (not PEM or DER)");
    s = text(r, &f, NOW, false);
    EXPECT_STR(s, "CRITICAL file:/etc/ssl/bundle.pem\n"
                  "         critical probe.failed: no certificate found in /etc/ssl/bundle.pem "
                  "(not PEM or DER)\n");
    free(s);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static CU_TestInfo tests[] = {
    {"JSON: top-level object", test_top_level},
    {"JSON: nulls", test_nulls},
    {"JSON: error object", test_errors},
    {"JSON: failed probe", test_failed_probe},
    {"JSON: timings", test_timings},
    {"JSON: chain entries", test_chain_entries},
    {"JSON: verification errors", test_verification_errors},
    {"JSON: findings", test_findings},
    {"JSON: OCSP", test_ocsp},
    {"JSON: finding evidence", test_finding_evidence},
    {"JSON: analysed findings", test_analysed_findings},
    {"text: OK", test_text_ok},
    {"text: CRITICAL", test_text_critical},
    {"text: failed probe", test_text_failed},
    {"text: certificate names", test_text_names},
    {"JSON and text: posture", test_posture},
    {"JSON: key usage, extended key usage, trust anchor", test_usage_and_anchor},
    {"JSON: file target", test_file_json},
    {"text: file target", test_file_text},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("report", tests, NULL, NULL);
}
