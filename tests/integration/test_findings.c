/* The findings catalogue against real TLS servers: one openssl s_server per case on 127.0.0.1,
 * serving a certificate of the PKI made by mkpki.sh, checked with certmon check --json --ca
 * root.pem. Every server is started in the suite init and stopped by PID in the cleanup. */
#include "cmtest.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum srv {
    S_CLEAN,     /* valid.pem + inter.pem */
    S_LEAFONLY,  /* valid.pem without its intermediate */
    S_DISORDER,  /* valid.pem, root.pem, inter.pem */
    S_ROOTLAST,  /* valid.pem, inter.pem, root.pem */
    S_RSA1024,   /* leaf with an RSA-1024 key */
    S_EC,        /* leaf with an EC P-256 key */
    S_SHA1,      /* leaf signed with RSA-SHA1 */
    S_NOSAN,     /* CN=localhost, no subjectAltName */
    S_LONGLIFE,  /* leaf valid 500 days */
    S_SHORT6,    /* leaf valid 6 days, 4 left */
    S_SHORT6END, /* leaf valid 6 days, 12 hours left */
    S_NINETY25,  /* leaf valid 90 days, 25 left */
    S_WILDCARD,  /* SANs *.localtest and localhost */
    S_MUSTAPLE,  /* TLS feature status_request, no staple served */
    S_INTEREXP,  /* valid leaf under an intermediate that expired 5 days ago */
    S_OCSP_GOOD, /* valid.pem with a stapled good OCSP response */
    S_OCSP_REV,  /* revoked.pem with a stapled revoked OCSP response */
    S_SELF,      /* self-signed leaf */
    S_MTLS13,    /* requires a client certificate from our PKI, TLS 1.3 */
    S_MTLS12,    /* the same, TLS 1.2 */
    S_COUNT
};

static const struct server {
    const char *cert, *key, *chain, *staple;
    bool weak;              /* needs security level 0 to load at all */
    const char *client_tls; /* requires a client certificate issued under root.pem, and
                             * speaks this version only ("-tls1_3", "-tls1_2") */
} servers[S_COUNT] = {
    [S_CLEAN] = {"valid.pem", "leaf.key", "inter.pem", NULL, false},
    [S_LEAFONLY] = {"valid.pem", "leaf.key", NULL, NULL, false},
    [S_DISORDER] = {"valid.pem", "leaf.key", "root_inter.pem", NULL, false},
    [S_ROOTLAST] = {"valid.pem", "leaf.key", "inter_root.pem", NULL, false},
    [S_RSA1024] = {"rsa1024.pem", "rsa1024.key", "inter.pem", NULL, true},
    [S_EC] = {"ec.pem", "ec.key", "inter.pem", NULL, false},
    [S_SHA1] = {"sha1.pem", "leaf.key", "inter.pem", NULL, true},
    [S_NOSAN] = {"nosan.pem", "leaf.key", "inter.pem", NULL, false},
    [S_LONGLIFE] = {"longlife.pem", "leaf.key", "inter.pem", NULL, false},
    [S_SHORT6] = {"short6.pem", "leaf.key", "inter.pem", NULL, false},
    [S_SHORT6END] = {"short6end.pem", "leaf.key", "inter.pem", NULL, false},
    [S_NINETY25] = {"ninety25.pem", "leaf.key", "inter.pem", NULL, false},
    [S_WILDCARD] = {"wildcard.pem", "leaf.key", "inter.pem", NULL, false},
    [S_MUSTAPLE] = {"mustaple.pem", "leaf.key", "inter.pem", NULL, false},
    [S_INTEREXP] = {"leaf_under_expired.pem", "leaf.key", "inter_expired.pem", NULL, false},
    [S_OCSP_GOOD] = {"valid.pem", "leaf.key", "inter.pem", "valid.ocsp.der", false},
    [S_OCSP_REV] = {"revoked.pem", "leaf.key", "inter.pem", "revoked.ocsp.der", false},
    [S_SELF] = {"self.pem", "self.key", NULL, NULL, false},
    [S_MTLS13] = {"valid.pem", "leaf.key", "inter.pem", NULL, false, "-tls1_3"},
    [S_MTLS12] = {"valid.pem", "leaf.key", "inter.pem", NULL, false, "-tls1_2"},
};

static int port[S_COUNT];
static pid_t pid[S_COUNT];
static char local[S_COUNT][64]; /* "localhost:PORT" */

static int suite_init(void)
{
    if (!cm_th_pki_dir())
        return -1;
    for (int s = 0; s < S_COUNT; s++) {
        const struct server *sv = &servers[s];
        char accept[32];
        char *argv[28];
        int n = 0;

        port[s] = cm_th_free_port();
        snprintf(local[s], sizeof(local[s]), "localhost:%d", port[s]);
        snprintf(accept, sizeof(accept), "127.0.0.1:%d", port[s]);
        argv[n++] = "openssl";
        argv[n++] = "s_server";
        argv[n++] = "-accept";
        argv[n++] = accept;
        argv[n++] = "-cert";
        argv[n++] = (char *)cm_th_pki(sv->cert);
        argv[n++] = "-key";
        argv[n++] = (char *)cm_th_pki(sv->key);
        if (sv->chain) {
            /* s_server sends -cert_chain as given, without reordering (no -build_chain). */
            argv[n++] = "-cert_chain";
            argv[n++] = (char *)cm_th_pki(sv->chain);
        }
        if (sv->staple) {
            argv[n++] = "-status_file";
            argv[n++] = (char *)cm_th_pki(sv->staple);
        }
        if (sv->weak) {
            /* OpenSSL 3 refuses RSA-1024 keys and SHA-1 signatures above level 0. */
            argv[n++] = "-cipher";
            argv[n++] = "DEFAULT@SECLEVEL=0";
        }
        if (sv->client_tls) {
            argv[n++] = "-Verify";
            argv[n++] = "2";
            argv[n++] = "-verify_return_error"; /* s_server otherwise accepts any cert */
            argv[n++] = "-CAfile";
            argv[n++] = (char *)cm_th_pki("root.pem");
            argv[n++] = (char *)sv->client_tls;
        }
        argv[n++] = "-www";
        argv[n++] = "-quiet";
        argv[n] = NULL;
        if ((pid[s] = cm_th_spawn(argv, NULL)) < 0)
            return -1;
    }
    for (int s = 0; s < S_COUNT; s++) {
        if (!cm_th_wait_port(port[s], 10000)) {
            fprintf(stderr, "s_server for %s on port %d did not come up\n", servers[s].cert,
                    port[s]);
            return -1;
        }
    }
    return 0;
}

static int suite_cleanup(void)
{
    for (int s = 0; s < S_COUNT; s++)
        cm_th_stop(pid[s]);
    return 0;
}

/* ---- helpers ---- */

/* certmon check --json --ca root.pem ARGS...; the last argument is the target. */
#define PROBE(rc, ...)                                                                             \
    cm_th_check_json((rc), NULL, "--ca", cm_th_pki("root.pem"), __VA_ARGS__, NULL)

/* The findings of t as "id/severity/position ...", for failure messages. */
static void describe(json_t *t, char *buf, size_t len)
{
    json_t *f;
    size_t i, used = 0;

    buf[0] = '\0';
    json_array_foreach(json_object_get(t, "findings"), i, f)
    {
        json_t *pos = json_object_get(f, "position");
        int n = snprintf(buf + used, len - used, " %s/%s/%lld",
                         json_string_value(json_object_get(f, "id")),
                         json_string_value(json_object_get(f, "severity")),
                         json_is_integer(pos) ? (long long)json_integer_value(pos) : -1LL);
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
}

/* Asserts that t has (want) or lacks (!want) a finding; the message lists what came. Returns
 * the finding. */
static json_t *expect_finding(json_t *t, const char *id, const char *sev, int pos, bool want,
                              unsigned line)
{
    json_t *f = cm_finding(t, id, sev, pos);
    char got[512], msg[768];

    describe(t, got, sizeof(got));
    snprintf(msg, sizeof(msg), "%s %s/%s/%d; findings:%s", want ? "want" : "do not want", id,
             sev ? sev : "*", pos, got);
    CU_assertImplementation((f != NULL) == want, line, msg, __FILE__, "", CU_FALSE);
    return f;
}

#define EXPECT_FINDING(t, id, sev, pos) expect_finding((t), (id), (sev), (pos), true, __LINE__)
#define EXPECT_NO_FINDING(t, id) expect_finding((t), (id), NULL, -1, false, __LINE__)

/* Asserts that every finding of t is info: nothing that changes the status. */
static void expect_only_info(json_t *t, unsigned line)
{
    json_t *f;
    size_t i;
    bool ok = true;
    char got[512], msg[600];

    json_array_foreach(json_object_get(t, "findings"), i, f)
    {
        const char *sev = json_string_value(json_object_get(f, "severity"));
        ok = ok && sev && !strcmp(sev, "info");
    }
    describe(t, got, sizeof(got));
    snprintf(msg, sizeof(msg), "want only info findings; findings:%s", got);
    CU_assertImplementation(ok, line, msg, __FILE__, "", CU_FALSE);
}

#define EXPECT_ONLY_INFO(t) expect_only_info((t), __LINE__)

static bool has_string(json_t *arr, const char *s)
{
    json_t *v;
    size_t i;

    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v) && !strcmp(json_string_value(v), s))
            return true;
    }
    return false;
}

static const char *fstr(json_t *f, const char *key)
{
    return json_string_value(json_object_get(f, key));
}

static long long fint(json_t *f, const char *key)
{
    json_t *v = json_object_get(f, key);

    return json_is_integer(v) ? (long long)json_integer_value(v) : -99999;
}

static void rfc3339(time_t t, char *buf, size_t len)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- chain shape ---- */

static void test_clean_chain(void)
{
    int rc;
    json_t *arr = PROBE(&rc, local[S_CLEAN]);
    json_t *t = cm_json_only(arr);

    EXPECT_STATUS(rc, t, "ok");
    EXPECT_ONLY_INFO(t);
    EXPECT_INT(json_array_size(cm_json_get(t, "chain")), 2);
    CU_ASSERT(json_is_false(cm_json_get(t, "chain.0.must_staple")));
    CU_ASSERT(json_is_false(cm_json_get(t, "ocsp.stapled")));
    CU_ASSERT(json_is_null(cm_json_get(t, "ocsp.status")));
    json_decref(arr);
}

static void test_ec_p256_is_clean(void)
{
    int rc;
    json_t *arr = PROBE(&rc, local[S_EC]);
    json_t *t = cm_json_only(arr);

    EXPECT_STR(cm_json_str(t, "chain.0.key.type"), "EC");
    EXPECT_INT(json_integer_value(cm_json_get(t, "chain.0.key.bits")), 256);
    EXPECT_STATUS(rc, t, "ok");
    EXPECT_ONLY_INFO(t);
    EXPECT_NO_FINDING(t, "key.weak");
    json_decref(arr);
}

static void test_intermediate_missing(void)
{
    int rc;
    json_t *arr = PROBE(&rc, local[S_LEAFONLY]);
    json_t *t = cm_json_only(arr);

    EXPECT_INT(json_array_size(cm_json_get(t, "chain")), 1);
    CU_ASSERT(has_string(cm_json_get(t, "verification.errors"), "signer_not_found"));
    /* Position: the last certificate sent, here the leaf. */
    EXPECT_FINDING(t, "chain.incomplete", "critical", 0);
    EXPECT_STATUS(rc, t, "critical");
    json_decref(arr);
}

static void test_chain_out_of_order(void)
{
    int rc;
    json_t *arr = PROBE(&rc, local[S_DISORDER]);
    json_t *t = cm_json_only(arr);

    /* Reported as sent: leaf, root, intermediate. GnuTLS sorts the chain to verify it. */
    EXPECT_INT(json_array_size(cm_json_get(t, "chain")), 3);
    EXPECT_STR(cm_json_str(t, "chain.1.subject"), "CN=certmon Test Root CA");
    EXPECT_STR(cm_json_str(t, "chain.2.subject"), "CN=certmon Test Intermediate CA");
    CU_ASSERT(json_is_true(cm_json_get(t, "verification.trusted")));
    /* The leaf (0) is the first certificate not followed by its issuer. */
    EXPECT_FINDING(t, "chain.order", "warning", 0);
    EXPECT_FINDING(t, "chain.root_sent", "info", 1);
    EXPECT_STATUS(rc, t, "warning");
    json_decref(arr);
}

static void test_root_sent_last(void)
{
    int rc;
    json_t *arr = PROBE(&rc, local[S_ROOTLAST]);
    json_t *t = cm_json_only(arr);

    EXPECT_INT(json_array_size(cm_json_get(t, "chain")), 3);
    CU_ASSERT(json_is_true(cm_json_get(t, "chain.2.self_signed")));
    EXPECT_FINDING(t, "chain.root_sent", "info", 2);
    EXPECT_NO_FINDING(t, "chain.order");
    EXPECT_ONLY_INFO(t);
    EXPECT_STATUS(rc, t, "ok");
    json_decref(arr);
}

static void test_intermediate_expired(void)
{
    int rc;
    json_t *arr = PROBE(&rc, local[S_INTEREXP]);
    json_t *t = cm_json_only(arr);
    json_t *f;

    EXPECT_STR(cm_json_str(t, "chain.1.subject"), "CN=certmon Test Expired Intermediate CA");
    CU_ASSERT(json_integer_value(cm_json_get(t, "chain.1.days_left")) < -4);
    f = EXPECT_FINDING(t, "cert.expired", "critical", 1);
    EXPECT_NO_FINDING(t, "chain.incomplete");
    EXPECT_STATUS(rc, t, "critical");
    /* The leaf itself is fine. */
    CU_ASSERT(cm_finding(t, "cert.expired", NULL, 0) == NULL);
    if (f)
        EXPECT_INT(fint(f, "days_left"), json_integer_value(cm_json_get(t, "chain.1.days_left")));
    json_decref(arr);
}

/* ---- the leaf certificate ---- */

static void test_rsa1024_key(void)
{
    int rc;
    json_t *arr = PROBE(&rc, local[S_RSA1024]);
    json_t *t = cm_json_only(arr);
    json_t *f;

    EXPECT_INT(json_integer_value(cm_json_get(t, "chain.0.key.bits")), 1024);
    f = EXPECT_FINDING(t, "key.weak", "critical", 0);
    if (f) {
        EXPECT_STR(fstr(f, "key_type"), "RSA");
        EXPECT_INT(fint(f, "key_bits"), 1024);
    }
    CU_ASSERT(cm_finding(t, "key.weak", NULL, 1) == NULL); /* the intermediate is RSA-2048 */
    EXPECT_STATUS(rc, t, "critical");
    json_decref(arr);
}

static void test_sha1_signature(void)
{
    int rc;
    json_t *arr = PROBE(&rc, local[S_SHA1]);
    json_t *t = cm_json_only(arr);
    json_t *f;

    EXPECT_STR(cm_json_str(t, "chain.0.signature"), "RSA-SHA1");
    /* GnuTLS itself refuses the SHA-1 signature when verifying. */
    CU_ASSERT(has_string(cm_json_get(t, "verification.errors"), "insecure_algorithm"));
    f = EXPECT_FINDING(t, "signature.weak", "critical", 0);
    if (f)
        EXPECT_STR(fstr(f, "algorithm"), "RSA-SHA1");
    CU_ASSERT(cm_finding(t, "signature.weak", NULL, 1) == NULL);
    /* The specific finding explains the distrust; no generic chain.untrusted beside it. */
    CU_ASSERT(cm_finding(t, "chain.untrusted", NULL, -1) == NULL);
    EXPECT_STATUS(rc, t, "critical");
    json_decref(arr);
}

static void test_no_san(void)
{
    int rc;
    json_t *arr = PROBE(&rc, local[S_NOSAN]);
    json_t *t = cm_json_only(arr);

    EXPECT_INT(json_array_size(cm_json_get(t, "chain.0.sans")), 0);
    EXPECT_STR(cm_json_str(t, "chain.0.subject"), "CN=localhost");
    /* GnuTLS falls back to the CN when there is no DNS subjectAltName: the name matches. */
    CU_ASSERT(json_is_true(cm_json_get(t, "verification.hostname_match")));
    EXPECT_NO_FINDING(t, "host.mismatch");
    EXPECT_FINDING(t, "cert.no_san", "warning", 0);
    EXPECT_STATUS(rc, t, "warning");
    json_decref(arr);
}

/* The message of t's finding id at pos contains every word given (NULL-terminated). */
static void expect_message_has(json_t *t, const char *id, int pos, unsigned line, ...)
{
    json_t *f = cm_finding(t, id, NULL, pos);
    const char *msg = f ? json_string_value(json_object_get(f, "message")) : NULL;
    const char *w;
    va_list ap;

    CU_assertImplementation(msg != NULL, line, id, __FILE__, "", CU_FALSE);
    va_start(ap, line);
    while (msg && (w = va_arg(ap, const char *))) {
        char what[512];
        snprintf(what, sizeof(what), "'%s' has '%s'", msg, w);
        CU_assertImplementation(strstr(msg, w) != NULL, line, what, __FILE__, "", CU_FALSE);
    }
    va_end(ap);
}
#define EXPECT_MESSAGE_HAS(t, id, pos, ...)                                                        \
    expect_message_has((t), (id), (pos), __LINE__, __VA_ARGS__, (const char *)NULL)

/* The leaf lives 500 days and was issued yesterday, after 2026-03-15: 200 days at most,
 * unless the policy sets its own limit. */
static void test_long_lifetime(void)
{
    int rc;
    json_t *arr = PROBE(&rc, local[S_LONGLIFE]);
    json_t *t = cm_json_only(arr);
    char issued[16];
    time_t yesterday = time(NULL) - 86400;
    struct tm tm;

    EXPECT_FINDING(t, "cert.lifetime_long", "info", 0);
    /* mkpki.sh issued it a day before it ran, a moment ago: the date of NOW - 1 day, unless
     * the run straddled midnight (then either date). */
    gmtime_r(&yesterday, &tm);
    strftime(issued, sizeof(issued), "%Y-%m-%d", &tm);
    EXPECT_MESSAGE_HAS(t, "cert.lifetime_long", 0, "was issued ", ", valid 500 days; ",
                       "certificates issued from 2026-03-15 may be valid at most 200 days");
    if (strncmp(cm_json_str(t, "chain.0.not_before"), issued, 10) == 0)
        EXPECT_MESSAGE_HAS(t, "cert.lifetime_long", 0, issued);
    EXPECT_ONLY_INFO(t);
    EXPECT_STATUS(rc, t, "ok");
    json_decref(arr);

    /* A private PKI's own rule: 825 days allows it, 400 does not. */
    arr = PROBE(&rc, "--max-lifetime-days", "825", local[S_LONGLIFE]);
    t = cm_json_only(arr);
    EXPECT_NO_FINDING(t, "cert.lifetime_long");
    json_decref(arr);
    arr = PROBE(&rc, "--max-lifetime-days", "400", local[S_LONGLIFE]);
    t = cm_json_only(arr);
    EXPECT_FINDING(t, "cert.lifetime_long", "info", 0);
    EXPECT_MESSAGE_HAS(t, "cert.lifetime_long", 0, ", valid 500 days; ",
                       "the policy (max_lifetime_days) allows at most 400 days");
    json_decref(arr);

    /* A 90-day leaf is within every limit of the schedule until 2029-03-15. */
    arr = PROBE(&rc, local[S_CLEAN]);
    t = cm_json_only(arr);
    EXPECT_NO_FINDING(t, "cert.lifetime_long");
    json_decref(arr);
}

/* Short-lived certificates do not warn for their whole life: thresholds scale with the
 * lifetime (33% for a warning, 10% for critical) when that is shorter than the days. */
static void test_expiry_lifetime(void)
{
    int rc;
    json_t *arr = PROBE(&rc, local[S_SHORT6]);
    json_t *t = cm_json_only(arr);
    json_t *f;
    char *out = NULL;
    char perf[128];

    /* 6 days, 4 left: fine (a warning only under 1.98 days). */
    EXPECT_INT(json_integer_value(cm_json_get(t, "chain.0.days_left")), 3);
    EXPECT_NO_FINDING(t, "cert.expiring");
    EXPECT_ONLY_INFO(t);
    EXPECT_STATUS(rc, t, "ok");
    json_decref(arr);

    /* The perfdata thresholds are the ones this certificate is judged by. */
    snprintf(perf, sizeof(perf), "'%s_days'=3;1.98:;0.60:;;", local[S_SHORT6]);
    rc = cm_th_check_merged(&out, "--quick", "--ca", cm_th_pki("root.pem"), local[S_SHORT6], NULL);
    EXPECT_INT(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(out);
    if (out && !strstr(out, perf)) {
        fprintf(stderr, "\n  no %s in:\n%s\n", perf, out);
        CU_FAIL("perfdata with the lifetime thresholds");
    }
    free(out);

    /* --warn-lifetime-pct 100 --crit-lifetime-pct 100: the day rule alone, critical. */
    arr = PROBE(&rc, "--warn-lifetime-pct", "100", "--crit-lifetime-pct", "100", local[S_SHORT6]);
    t = cm_json_only(arr);
    EXPECT_FINDING(t, "cert.expiring", "critical", 0);
    EXPECT_MESSAGE_HAS(t, "cert.expiring", 0, "expires in 3 days, on ",
                       "; under the 7-day critical threshold");
    EXPECT_STATUS(rc, t, "critical");
    json_decref(arr);

    /* 6 days, 12 hours left: under 10% (14.4 hours), critical. */
    arr = PROBE(&rc, local[S_SHORT6END]);
    t = cm_json_only(arr);
    f = EXPECT_FINDING(t, "cert.expiring", "critical", 0);
    if (f)
        EXPECT_INT(json_integer_value(json_object_get(f, "days_left")), 0);
    EXPECT_MESSAGE_HAS(t, "cert.expiring", 0, "expires in 0 days, on ",
                       "; under 10% of its 6-day lifetime");
    EXPECT_STATUS(rc, t, "critical");
    json_decref(arr);

    /* 90 days, 25 left: a warning by the lifetime rule (29.7 days < 30). */
    arr = PROBE(&rc, local[S_NINETY25]);
    t = cm_json_only(arr);
    f = EXPECT_FINDING(t, "cert.expiring", "warning", 0);
    if (f)
        EXPECT_INT(json_integer_value(json_object_get(f, "days_left")), 24);
    EXPECT_MESSAGE_HAS(t, "cert.expiring", 0, "expires in 24 days, on ",
                       "; under 33% of its 90-day lifetime");
    EXPECT_STATUS(rc, t, "warning");
    json_decref(arr);

    /* ... and nothing at 20% (18 days). */
    arr = PROBE(&rc, "--warn-lifetime-pct", "20", local[S_NINETY25]);
    t = cm_json_only(arr);
    EXPECT_NO_FINDING(t, "cert.expiring");
    EXPECT_STATUS(rc, t, "ok");
    json_decref(arr);
}

static void test_wildcard(void)
{
    int rc;
    json_t *arr = PROBE(&rc, local[S_WILDCARD]);
    json_t *t = cm_json_only(arr);

    EXPECT_STR(cm_json_str(t, "chain.0.sans.0"), "*.localtest");
    EXPECT_FINDING(t, "cert.wildcard", "info", 0);
    EXPECT_ONLY_INFO(t);
    EXPECT_STATUS(rc, t, "ok");
    json_decref(arr);
}

/* ---- OCSP ---- */

static void test_must_staple_without_staple(void)
{
    int rc;
    json_t *arr = PROBE(&rc, local[S_MUSTAPLE]);
    json_t *t = cm_json_only(arr);

    CU_ASSERT(json_is_true(cm_json_get(t, "chain.0.must_staple")));
    CU_ASSERT(json_is_false(cm_json_get(t, "chain.1.must_staple")));
    CU_ASSERT(json_is_false(cm_json_get(t, "ocsp.stapled")));
    /* GnuTLS's own verification flags it too. */
    CU_ASSERT(has_string(cm_json_get(t, "verification.errors"), "missing_ocsp_status"));
    CU_ASSERT(cm_finding(t, "chain.untrusted", NULL, -1) == NULL);
    EXPECT_FINDING(t, "ocsp.must_staple_missing", "critical", 0);
    EXPECT_STATUS(rc, t, "critical");
    json_decref(arr);
}

static void test_stapled_good(void)
{
    int rc;
    time_t now = time(NULL);
    json_t *arr = PROBE(&rc, local[S_OCSP_GOOD]);
    json_t *t = cm_json_only(arr);
    const char *this_update = cm_json_str(t, "ocsp.this_update");
    const char *next_update = cm_json_str(t, "ocsp.next_update");
    char lo[32], hi[32];

    CU_ASSERT(json_is_true(cm_json_get(t, "ocsp.stapled")));
    EXPECT_STR(cm_json_str(t, "ocsp.status"), "good");
    CU_ASSERT(json_is_true(cm_json_get(t, "ocsp.verified")));
    /* Made with the PKI (moments ago), valid for 7 days. */
    rfc3339(now + 60, hi, sizeof(hi));
    CU_ASSERT(this_update && strlen(this_update) == 20 && strcmp(this_update, hi) <= 0);
    rfc3339(now + 6 * 86400, lo, sizeof(lo));
    rfc3339(now + 7 * 86400 + 60, hi, sizeof(hi));
    CU_ASSERT(next_update && strcmp(next_update, lo) > 0 && strcmp(next_update, hi) <= 0);
    CU_ASSERT(json_is_true(cm_json_get(t, "verification.trusted")));
    EXPECT_NO_FINDING(t, "ocsp.not_stapled");
    EXPECT_ONLY_INFO(t);
    EXPECT_STATUS(rc, t, "ok");
    json_decref(arr);
}

static void test_stapled_revoked(void)
{
    int rc;
    json_t *arr = PROBE(&rc, local[S_OCSP_REV]);
    json_t *t = cm_json_only(arr);

    CU_ASSERT(json_is_true(cm_json_get(t, "ocsp.stapled")));
    EXPECT_STR(cm_json_str(t, "ocsp.status"), "revoked");
    CU_ASSERT(has_string(cm_json_get(t, "verification.errors"), "revoked"));
    EXPECT_FINDING(t, "cert.revoked", "critical", 0);
    CU_ASSERT(cm_finding(t, "chain.untrusted", NULL, -1) == NULL);
    EXPECT_STATUS(rc, t, "critical");
    json_decref(arr);
}

/* ---- policy flags ---- */

/* The policy tests use --quick: S_RSA1024 runs at security level 0, so it also accepts TLS
 * 1.0 and 1.1, and the posture findings would hide what is tested here. */
static void test_ignore(void)
{
    int rc;
    json_t *arr = PROBE(&rc, "--quick", "--ignore", "key.weak", local[S_RSA1024]);
    json_t *t = cm_json_only(arr);

    EXPECT_NO_FINDING(t, "key.weak");
    EXPECT_STATUS(rc, t, "ok");
    json_decref(arr);
}

static void test_severity_override(void)
{
    int rc;
    json_t *arr = PROBE(&rc, "--quick", "--severity", "key.weak=warning", local[S_RSA1024]);
    json_t *t = cm_json_only(arr);

    EXPECT_FINDING(t, "key.weak", "warning", 0);
    EXPECT_STATUS(rc, t, "warning");
    json_decref(arr);
}

static void test_min_rsa_bits(void)
{
    int rc;
    json_t *arr = PROBE(&rc, "--quick", "--min-rsa-bits", "1024", local[S_RSA1024]);
    json_t *t = cm_json_only(arr);

    EXPECT_NO_FINDING(t, "key.weak");
    EXPECT_STATUS(rc, t, "ok");
    json_decref(arr);

    /* Both RSA-2048 certificates sent fall short of 4096 (the root is not sent). */
    arr = PROBE(&rc, "--min-rsa-bits", "4096", local[S_CLEAN]);
    t = cm_json_only(arr);
    for (int pos = 0; pos < 2; pos++) {
        json_t *f = EXPECT_FINDING(t, "key.weak", NULL, pos);
        if (f)
            EXPECT_INT(fint(f, "key_bits"), 2048);
    }
    CU_ASSERT(rc == 1 || rc == 2);
    json_decref(arr);
}

static void test_allow_self_signed(void)
{
    int rc;
    json_t *arr = PROBE(&rc, local[S_SELF]);
    json_t *t = cm_json_only(arr);

    EXPECT_FINDING(t, "chain.self_signed", "critical", 0); /* without the flag */
    json_decref(arr);

    arr = PROBE(&rc, "--allow-self-signed", local[S_SELF]);
    t = cm_json_only(arr);
    EXPECT_NO_FINDING(t, "chain.self_signed");
    EXPECT_NO_FINDING(t, "chain.untrusted");
    EXPECT_STATUS(rc, t, "ok");
    json_decref(arr);
}

static void test_bad_policy_arguments(void)
{
    static const struct {
        const char *opt, *val, *says;
    } cases[] = {
        {"--ignore", "no.such", "no.such"},
        {"--severity", "key.weak=loud", "loud"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out;
        int rc = cm_th_check_merged(&out, cases[i].opt, cases[i].val, local[S_CLEAN], NULL);

        EXPECT_INT(rc, 3);
        CU_ASSERT(strstr(out, cases[i].says) != NULL);
        if (rc != 3 || !strstr(out, cases[i].says))
            fprintf(stderr, "certmon check %s %s -> %d: %.300s\n", cases[i].opt, cases[i].val, rc,
                    out);
        free(out);
    }
}

/* mTLS, under TLS 1.3 (rejection after the handshake) and TLS 1.2 (inside it). */
static void test_mtls(void)
{
    static const enum srv both[] = {S_MTLS13, S_MTLS12};

    for (size_t i = 0; i < 2; i++) {
        const char *target = local[both[i]];
        const char *version = both[i] == S_MTLS13 ? "TLS1.3" : "TLS1.2";
        int rc;
        json_t *arr, *t;

        /* No client certificate configured. */
        arr = PROBE(&rc, target);
        t = cm_json_only(arr);
        EXPECT_FINDING(t, "mtls.client_cert_required", "critical", -1);
        CU_ASSERT(cm_finding(t, "probe.failed", NULL, -1) == NULL);
        CU_ASSERT(json_is_true(cm_json_get(t, "mtls.client_cert_requested")));
        CU_ASSERT(json_is_false(cm_json_get(t, "mtls.client_cert_sent")));
        EXPECT_STATUS(rc, t, "critical");
        json_decref(arr);

        /* Ours, issued under the root the server trusts: accepted. */
        arr = PROBE(&rc, "--client-cert", cm_th_pki("client.chain.pem"), "--client-key",
                    cm_th_pki("client.key"), target);
        t = cm_json_only(arr);
        EXPECT_STR(cm_json_str(t, "tls.version"), version);
        CU_ASSERT(json_is_true(cm_json_get(t, "mtls.client_cert_sent")));
        EXPECT_STR(cm_json_str(t, "mtls.client_cert.subject"), "CN=certmon client");
        CU_ASSERT(json_is_null(cm_json_get(t, "error")));
        EXPECT_STATUS(rc, t, "ok");
        json_decref(arr);

        /* A certificate from a root the server does not trust: refused. */
        arr = PROBE(&rc, "--client-cert", cm_th_pki("foreign_client.chain.pem"), "--client-key",
                    cm_th_pki("client.key"), target);
        t = cm_json_only(arr);
        EXPECT_FINDING(t, "mtls.client_cert_rejected", "critical", -1);
        CU_ASSERT(cm_finding(t, "probe.failed", NULL, -1) == NULL);
        /* The server names the CAs it accepts; GnuTLS does not send a certificate from
         * another one, and the server refuses the empty answer. */
        CU_ASSERT(json_is_false(cm_json_get(t, "mtls.client_cert_sent")));
        EXPECT_STR(cm_json_str(t, "mtls.client_cert.issuer"), "CN=certmon Foreign Root");
        EXPECT_STR(cm_json_str(t, "error.kind"), "tls");
        EXPECT_STATUS(rc, t, "critical");
        json_decref(arr);
    }
}

/* Our own client certificate expires in 5 days: the server still accepts it, but certmon
 * warns before every mTLS endpoint starts refusing it. */
static void test_mtls_client_cert_expiring(void)
{
    int rc;
    json_t *arr = PROBE(&rc, "--client-cert", cm_th_pki("client_expiring.chain.pem"),
                        "--client-key", cm_th_pki("client.key"), local[S_MTLS13]);
    json_t *t = cm_json_only(arr);
    json_t *f = EXPECT_FINDING(t, "mtls.client_cert_expiring", "critical", -1);

    if (f)
        CU_ASSERT(json_integer_value(json_object_get(f, "days_left")) == 4);
    CU_ASSERT(json_is_null(cm_json_get(t, "error")));
    EXPECT_STATUS(rc, t, "critical");
    json_decref(arr);

    arr = PROBE(&rc, "--crit-days", "3", "--client-cert", cm_th_pki("client_expiring.chain.pem"),
                "--client-key", cm_th_pki("client.key"), local[S_MTLS13]);
    t = cm_json_only(arr);
    EXPECT_FINDING(t, "mtls.client_cert_expiring", "warning", -1);
    EXPECT_STATUS(rc, t, "warning");
    json_decref(arr);
}

/* An expired client certificate is sent (its issuer is one the server names) and refused. */
static void test_mtls_client_cert_expired(void)
{
    static const enum srv both[] = {S_MTLS13, S_MTLS12};

    for (size_t i = 0; i < 2; i++) {
        int rc;
        json_t *arr = PROBE(&rc, "--client-cert", cm_th_pki("client_expired.chain.pem"),
                            "--client-key", cm_th_pki("client.key"), local[both[i]]);
        json_t *t = cm_json_only(arr);

        EXPECT_FINDING(t, "mtls.client_cert_expired", "critical", -1);
        EXPECT_FINDING(t, "mtls.client_cert_rejected", "critical", -1);
        CU_ASSERT(json_is_true(cm_json_get(t, "mtls.client_cert_sent")));
        CU_ASSERT(cm_finding(t, "probe.failed", NULL, -1) == NULL);
        EXPECT_STATUS(rc, t, "critical");
        json_decref(arr);
    }
}

/* A key that does not belong to the certificate is a usage error, not an endpoint problem. */
static void test_mtls_bad_key(void)
{
    char *out;
    const char *argv[] = {cm_th_certmon(), "check",
                          "--client-cert", cm_th_pki("client.pem"),
                          "--client-key",  cm_th_pki("leaf.key"),
                          local[S_CLEAN],  NULL};
    int rc = cm_th_run((char *const *)argv, &out, 30, NULL);

    CU_ASSERT_EQUAL(rc, 3);
    free(out);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"clean chain", test_clean_chain},
        {"EC P-256 leaf is clean", test_ec_p256_is_clean},
        {"intermediate missing", test_intermediate_missing},
        {"chain out of order", test_chain_out_of_order},
        {"root sent last", test_root_sent_last},
        {"intermediate expired", test_intermediate_expired},
        {"RSA-1024 key", test_rsa1024_key},
        {"SHA-1 signature", test_sha1_signature},
        {"no subjectAltName", test_no_san},
        {"long lifetime", test_long_lifetime},
        {"expiry thresholds scale with the lifetime", test_expiry_lifetime},
        {"wildcard", test_wildcard},
        {"must-staple without staple", test_must_staple_without_staple},
        {"stapled OCSP good", test_stapled_good},
        {"stapled OCSP revoked", test_stapled_revoked},
        {"--ignore", test_ignore},
        {"--severity", test_severity_override},
        {"--min-rsa-bits", test_min_rsa_bits},
        {"--allow-self-signed", test_allow_self_signed},
        {"bad policy arguments exit 3", test_bad_policy_arguments},
        {"mTLS required, accepted, rejected", test_mtls},
        {"mTLS client certificate expiring", test_mtls_client_cert_expiring},
        {"mTLS client certificate expired", test_mtls_client_cert_expired},
        {"mTLS key mismatch exits 3", test_mtls_bad_key},
        CU_TEST_INFO_NULL,
    };
    signal(SIGPIPE, SIG_IGN);
    return cm_test_main("integration.findings", tests, suite_init, suite_cleanup);
}
