/* certmon check against real TLS servers on 127.0.0.1 (openssl s_server) with a PKI made at
 * test time, plus a refused port, a silent listener and a plain-HTTP server. Every server is
 * started here and stopped by PID in the suite cleanup. */
#include "cmtest.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

enum srv {
    S_VALID,
    S_EXPIRED,
    S_NOTYET,
    S_EXP5,
    S_EXP20,
    S_SELF,
    S_WRONG,
    S_HTTP,
    S_SILENT,
    S_REFUSED,
    S_VALID6,
    S_MULTI_A,      /* 127.0.0.1:P, valid leaf, and ... */
    S_MULTI_B,      /* ... 127.0.0.2:P (same port), another leaf: a stale node */
    S_DNS,          /* fake DNS server (UDP) answering 127.0.0.1 and 127.0.0.2 */
    S_NEEDCLIENT,   /* TLS 1.2 server that demands a client certificate */
    S_NEEDCLIENT13, /* the same under TLS 1.3: it rejects us after the handshake */
    S_OPTCLIENT13,  /* TLS 1.3, asks for a client certificate but does not insist */
    S_COUNT
};

static int port[S_COUNT];
static pid_t pid[S_COUNT];
static char addr[S_COUNT][64];  /* "127.0.0.1:PORT" */
static char local[S_COUNT][64]; /* "localhost:PORT" */
static int64_t pki_now;
static bool have_ipv6;

static int start_tls(enum srv s, const char *cert, const char *key, bool chain)
{
    char accept[64];
    char *argv[24];
    int n = 0;

    snprintf(accept, sizeof(accept),
             s == S_VALID6    ? "[::1]:%d"
             : s == S_MULTI_B ? "127.0.0.2:%d"
                              : "127.0.0.1:%d",
             port[s]);
    argv[n++] = "openssl";
    argv[n++] = "s_server";
    argv[n++] = "-accept";
    argv[n++] = accept;
    argv[n++] = "-cert";
    argv[n++] = (char *)cm_th_pki(cert);
    argv[n++] = "-key";
    argv[n++] = (char *)cm_th_pki(key);
    if (chain) {
        argv[n++] = "-cert_chain";
        argv[n++] = (char *)cm_th_pki("inter.pem");
    }
    if (s == S_NEEDCLIENT) {
        /* TLS 1.2: the rejection arrives inside the handshake, after the chain. */
        argv[n++] = "-Verify";
        argv[n++] = "1";
        argv[n++] = "-tls1_2";
    } else if (s == S_NEEDCLIENT13 || s == S_OPTCLIENT13) {
        argv[n++] = s == S_NEEDCLIENT13 ? "-Verify" : "-verify";
        argv[n++] = "1";
        argv[n++] = "-tls1_3";
    }
    argv[n++] = "-www";
    argv[n++] = "-quiet";
    argv[n] = NULL;
    pid[s] = cm_th_spawn(argv, NULL);
    return pid[s] > 0 ? 0 : -1;
}

/* A listener that accepts connections and never says a word, in a child process of ours. */
static pid_t start_silent(int p)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    pid_t child;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 512) < 0)
        return -1;
    child = fork();
    if (child == 0) {
        alarm(600); /* never outlive the suite by much, even if the parent dies */
        /* Accepted sockets stay open (and silent) until this process is stopped. */
        for (int n = 0;;) {
            int c = accept(fd, NULL, NULL);
            if (c >= 0 && ++n > 1000)
                close(c);
        }
    }
    close(fd);
    return child;
}

static int64_t read_pki_now(void)
{
    FILE *fp = fopen(cm_th_pki("now"), "r");
    long long v = 0;

    if (fp) {
        if (fscanf(fp, "%lld", &v) != 1)
            v = 0;
        fclose(fp);
    }
    return v;
}

static int suite_init(void)
{
    static const struct {
        enum srv s;
        const char *cert;
        bool chain;
    } tls[] = {
        {S_VALID, "valid.pem", true},      {S_EXPIRED, "expired.pem", true},
        {S_NOTYET, "notyet.pem", true},    {S_EXP5, "expiring5.pem", true},
        {S_EXP20, "expiring20.pem", true}, {S_WRONG, "wrongname.pem", true},
    };

    if (!cm_th_pki_dir())
        return -1;
    pki_now = read_pki_now();
    for (int s = 0; s < S_COUNT; s++) {
        port[s] = s == S_MULTI_B ? port[S_MULTI_A] : cm_th_free_port();
        snprintf(addr[s], sizeof(addr[s]), "127.0.0.1:%d", port[s]);
        snprintf(local[s], sizeof(local[s]), "localhost:%d", port[s]);
    }
    for (size_t i = 0; i < sizeof(tls) / sizeof(tls[0]); i++)
        if (start_tls(tls[i].s, tls[i].cert, "leaf.key", tls[i].chain) < 0)
            return -1;
    if (start_tls(S_SELF, "self.pem", "self.key", false) < 0 ||
        start_tls(S_NEEDCLIENT, "valid.pem", "leaf.key", true) < 0 ||
        start_tls(S_NEEDCLIENT13, "valid.pem", "leaf.key", true) < 0 ||
        start_tls(S_OPTCLIENT13, "valid.pem", "leaf.key", true) < 0 ||
        start_tls(S_MULTI_A, "valid.pem", "leaf.key", true) < 0 ||
        start_tls(S_MULTI_B, "expiring20.pem", "leaf.key", true) < 0)
        return -1;
    {
        char p[16];
        snprintf(p, sizeof(p), "%d", port[S_DNS]);
        char *argv[] = {"/usr/bin/python3",
                        (char *)cm_th_script("fake_dns.py"),
                        p,
                        "127.0.0.1",
                        "127.0.0.2",
                        NULL};
        pid[S_DNS] = cm_th_spawn(argv, NULL);
    }
    {
        char p[16];
        snprintf(p, sizeof(p), "%d", port[S_HTTP]);
        char *argv[] = {"/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", p, NULL};
        pid[S_HTTP] = cm_th_spawn(argv, NULL);
    }
    pid[S_SILENT] = start_silent(port[S_SILENT]);
    if (pid[S_SILENT] < 0)
        return -1;
    /* IPv6 loopback is optional on CI hosts; the IPv6 test is skipped without it. */
    {
        int fd = socket(AF_INET6, SOCK_STREAM, 0);
        struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        have_ipv6 = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        if (fd >= 0)
            close(fd);
    }
    if (have_ipv6 && start_tls(S_VALID6, "valid.pem", "leaf.key", true) < 0)
        return -1;
    for (int s = 0; s < S_COUNT; s++) {
        /* Not TCP on 127.0.0.1 of their own: checked by use (MULTI_B shares MULTI_A's port on
         * 127.0.0.2; DNS is UDP). */
        if (s == S_REFUSED || s == S_VALID6 || s == S_MULTI_B || s == S_DNS)
            continue;
        if (!cm_th_wait_port(port[s], 10000)) {
            fprintf(stderr, "server %d on port %d did not come up\n", s, port[s]);
            return -1;
        }
    }
    if (have_ipv6)
        usleep(300000); /* cm_th_wait_port speaks IPv4 only; s_server starts in well under this */
    return 0;
}

static int suite_cleanup(void)
{
    for (int s = 0; s < S_COUNT; s++)
        cm_th_stop(pid[s]);
    return 0;
}

/* ---- helpers on the JSON output ---- */

static json_t *only(json_t *arr)
{
    CU_ASSERT_FATAL(json_is_array(arr));
    CU_ASSERT_FATAL(json_array_size(arr) == 1);
    return json_array_get(arr, 0);
}

static const char *str(json_t *o, const char *path)
{
    json_t *v = o;
    char buf[128], *save, *tok;

    snprintf(buf, sizeof(buf), "%s", path);
    for (tok = strtok_r(buf, ".", &save); tok && v; tok = strtok_r(NULL, ".", &save))
        v = isdigit((unsigned char)tok[0]) ? json_array_get(v, (size_t)atoi(tok))
                                           : json_object_get(v, tok);
    return json_string_value(v);
}

static json_t *get(json_t *o, const char *path)
{
    json_t *v = o;
    char buf[128], *save, *tok;

    snprintf(buf, sizeof(buf), "%s", path);
    for (tok = strtok_r(buf, ".", &save); tok && v; tok = strtok_r(NULL, ".", &save))
        v = isdigit((unsigned char)tok[0]) ? json_array_get(v, (size_t)atoi(tok))
                                           : json_object_get(v, tok);
    return v;
}

/* str() for use with strstr: a missing field reads as "" and fails the search. */
static const char *str_or_empty(json_t *o, const char *path)
{
    const char *s = str(o, path);

    return s ? s : "";
}

static bool has_finding(json_t *t, const char *id, const char *severity, int position)
{
    json_t *f;
    size_t i;

    json_array_foreach(json_object_get(t, "findings"), i, f)
    {
        json_t *pos = json_object_get(f, "position");
        if (strcmp(json_string_value(json_object_get(f, "id")), id) != 0)
            continue;
        if (severity && strcmp(json_string_value(json_object_get(f, "severity")), severity))
            continue;
        if (position >= 0 && (!json_is_integer(pos) || json_integer_value(pos) != position))
            continue;
        return true;
    }
    return false;
}

static bool has_string(json_t *arr, const char *s)
{
    json_t *v;
    size_t i;

    json_array_foreach(arr, i,
                       v) if (json_is_string(v) && !strcmp(json_string_value(v), s)) return true;
    return false;
}

static void rfc3339(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* days_left is the floor of the remaining time in days, taken at some instant during the run. */
static void assert_days_left(json_t *cert, int64_t not_after, time_t t0, time_t t1)
{
    json_int_t got = json_integer_value(json_object_get(cert, "days_left"));
    json_int_t a = (json_int_t)floor((double)(not_after - t0) / 86400.0);
    json_int_t b = (json_int_t)floor((double)(not_after - t1) / 86400.0);

    CU_ASSERT(json_is_integer(json_object_get(cert, "days_left")));
    CU_ASSERT(got == a || got == b);
    if (got != a && got != b)
        fprintf(stderr, "days_left %lld, expected %lld\n", (long long)got, (long long)a);
}

/* ---- tests ---- */

static void test_valid_chain_with_ca(void)
{
    int rc;
    time_t t0 = time(NULL);
    /* --quick: no posture pass, so posture is null (integration.posture covers the pass). */
    json_t *arr =
        cm_th_check_json(&rc, NULL, "--quick", "--ca", cm_th_pki("root.pem"), local[S_VALID], NULL);
    time_t t1 = time(NULL);
    json_t *t = only(arr);
    char want[32];

    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(str(t, "status"), "ok");
    CU_ASSERT_STRING_EQUAL(str(t, "target"), local[S_VALID]);
    CU_ASSERT_STRING_EQUAL(str(t, "host"), "localhost");
    CU_ASSERT_EQUAL(json_integer_value(get(t, "port")), port[S_VALID]);
    CU_ASSERT_STRING_EQUAL(str(t, "sni"), "localhost");
    CU_ASSERT(str(t, "address") && (!strcmp(str(t, "address"), "127.0.0.1")));
    CU_ASSERT(json_is_null(get(t, "error")));
    CU_ASSERT(json_is_true(get(t, "verification.trusted")));
    CU_ASSERT(json_is_true(get(t, "verification.hostname_match")));
    CU_ASSERT_EQUAL(json_array_size(get(t, "verification.errors")), 0);
    CU_ASSERT_STRING_EQUAL(str(t, "tls.version"), "TLS1.3");
    CU_ASSERT_PTR_NOT_NULL(str(t, "tls.cipher"));
    CU_ASSERT_PTR_NOT_NULL(str(t, "tls.group"));
    CU_ASSERT(json_is_number(get(t, "timing_ms.dns")));
    CU_ASSERT(json_is_number(get(t, "timing_ms.connect")));
    CU_ASSERT(json_is_number(get(t, "timing_ms.handshake")));
    CU_ASSERT(json_number_value(get(t, "timing_ms.total")) >=
              json_number_value(get(t, "timing_ms.handshake")));
    CU_ASSERT_EQUAL(json_array_size(get(t, "chain")), 2);
    CU_ASSERT_EQUAL(json_integer_value(get(t, "chain.0.position")), 0);
    CU_ASSERT_EQUAL(json_integer_value(get(t, "chain.1.position")), 1);
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.subject"), "CN=localhost");
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.issuer"), "CN=certmon Test Intermediate CA");
    CU_ASSERT_STRING_EQUAL(str(t, "chain.1.subject"), "CN=certmon Test Intermediate CA");
    CU_ASSERT_STRING_EQUAL(str(t, "chain.1.issuer"), "CN=certmon Test Root CA");
    rfc3339(pki_now + 90 * 86400, want, sizeof(want));
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.not_after"), want);
    rfc3339(pki_now - 86400, want, sizeof(want));
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.not_before"), want);
    assert_days_left(get(t, "chain.0"), pki_now + 90 * 86400, t0, t1);
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.key.type"), "RSA");
    CU_ASSERT_EQUAL(json_integer_value(get(t, "chain.0.key.bits")), 2048);
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.signature"), "RSA-SHA256");
    CU_ASSERT_EQUAL(strlen(str(t, "chain.0.sha256")), 64);
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.sans.0"), "localhost");
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.sans.1"), "127.0.0.1");
    CU_ASSERT(json_is_false(get(t, "chain.0.is_ca")));
    CU_ASSERT(json_is_true(get(t, "chain.1.is_ca")));
    CU_ASSERT(json_is_false(get(t, "chain.0.self_signed")));
    /* s_server staples nothing, and the test PKI publishes no CRL or OCSP responder: those
     * are the only remarks, and only informational. */
    CU_ASSERT_EQUAL(json_array_size(get(t, "findings")), 3);
    CU_ASSERT(has_finding(t, "ocsp.not_stapled", "info", 0));
    CU_ASSERT(has_finding(t, "revocation.none", "info", 0));
    CU_ASSERT(has_finding(t, "revocation.none", "info", 1));
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.revocation.status"), "none");
    CU_ASSERT(json_is_null(get(t, "chain.0.revocation.source")));
    CU_ASSERT(json_is_null(get(t, "posture")));
    json_decref(arr);
}

static void test_ip_target_verifies_ip_san(void)
{
    int rc;
    json_t *arr = cm_th_check_json(&rc, NULL, "--ca", cm_th_pki("root.pem"), addr[S_VALID], NULL);
    json_t *t = only(arr);

    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT(json_is_null(get(t, "sni"))); /* no SNI for an address literal (RFC 6066) */
    CU_ASSERT(json_is_true(get(t, "verification.hostname_match")));
    CU_ASSERT_STRING_EQUAL(str(t, "status"), "ok");
    json_decref(arr);
}

static void test_ipv6_literal(void)
{
    char target[64];
    int rc;

    if (!have_ipv6) {
        fprintf(stderr, "no IPv6 loopback here: skipped\n");
        return;
    }
    snprintf(target, sizeof(target), "[::1]:%d", port[S_VALID6]);
    json_t *arr = cm_th_check_json(&rc, NULL, "--ca", cm_th_pki("root.pem"), target, NULL);
    json_t *t = only(arr);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(str(t, "target"), target);
    CU_ASSERT_STRING_EQUAL(str(t, "host"), "::1");
    CU_ASSERT_STRING_EQUAL(str(t, "address"), "::1");
    CU_ASSERT_STRING_EQUAL(str(t, "status"), "ok");
    json_decref(arr);
}

static void test_untrusted_without_ca(void)
{
    int rc;
    json_t *arr = cm_th_check_json(&rc, NULL, local[S_VALID], NULL);
    json_t *t = only(arr);

    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT_STRING_EQUAL(str(t, "status"), "critical");
    CU_ASSERT(json_is_false(get(t, "verification.trusted")));
    CU_ASSERT(has_string(get(t, "verification.errors"), "signer_not_found"));
    CU_ASSERT(has_finding(t, "chain.untrusted", "critical", -1));
    CU_ASSERT_EQUAL(json_array_size(get(t, "chain")), 2); /* still reported in full */
    json_decref(arr);
}

static void test_expired_leaf(void)
{
    int rc;
    time_t t0 = time(NULL);
    json_t *arr =
        cm_th_check_json(&rc, NULL, "--ca", cm_th_pki("root.pem"), local[S_EXPIRED], NULL);
    time_t t1 = time(NULL);
    json_t *t = only(arr);
    char want[32];

    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT_STRING_EQUAL(str(t, "status"), "critical");
    CU_ASSERT(has_finding(t, "cert.expired", "critical", 0));
    CU_ASSERT(!has_finding(t, "chain.untrusted", NULL, -1)); /* expiry is not distrust */
    CU_ASSERT(has_string(get(t, "verification.errors"), "expired"));
    rfc3339(pki_now - 2 * 86400, want, sizeof(want));
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.not_after"), want);
    assert_days_left(get(t, "chain.0"), pki_now - 2 * 86400, t0, t1);
    CU_ASSERT(json_integer_value(get(t, "chain.0.days_left")) < 0);
    json_decref(arr);
}

static void test_not_yet_valid_leaf(void)
{
    int rc;
    json_t *arr = cm_th_check_json(&rc, NULL, "--ca", cm_th_pki("root.pem"), local[S_NOTYET], NULL);
    json_t *t = only(arr);
    char want[32];

    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT(has_finding(t, "cert.not_yet_valid", "critical", 0));
    rfc3339(pki_now + 10 * 86400, want, sizeof(want));
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.not_before"), want);
    CU_ASSERT(has_string(get(t, "verification.errors"), "not_activated"));
    json_decref(arr);
}

static void test_expiring_in_5_days(void)
{
    int rc;
    time_t t0 = time(NULL);
    json_t *arr = cm_th_check_json(&rc, NULL, "--ca", cm_th_pki("root.pem"), local[S_EXP5], NULL);
    time_t t1 = time(NULL);
    json_t *t = only(arr);

    CU_ASSERT_EQUAL(rc, 2); /* inside the default 7 critical days */
    CU_ASSERT(has_finding(t, "cert.expiring", "critical", 0));
    CU_ASSERT(json_is_true(get(t, "verification.trusted")));
    assert_days_left(get(t, "chain.0"), pki_now + 5 * 86400, t0, t1);
    CU_ASSERT_EQUAL(json_integer_value(get(t, "chain.0.days_left")), 4);
    json_decref(arr);

    arr = cm_th_check_json(&rc, NULL, "--ca", cm_th_pki("root.pem"), "--crit-days", "3",
                           local[S_EXP5], NULL);
    t = only(arr);
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT_STRING_EQUAL(str(t, "status"), "warning");
    CU_ASSERT(has_finding(t, "cert.expiring", "warning", 0));
    json_decref(arr);
}

static void test_expiring_in_20_days(void)
{
    int rc;
    json_t *arr = cm_th_check_json(&rc, NULL, "--ca", cm_th_pki("root.pem"), local[S_EXP20], NULL);
    json_t *t = only(arr);

    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT_STRING_EQUAL(str(t, "status"), "warning");
    CU_ASSERT(has_finding(t, "cert.expiring", "warning", 0));
    json_decref(arr);

    arr = cm_th_check_json(&rc, NULL, "--ca", cm_th_pki("root.pem"), "--warn-days", "10",
                           local[S_EXP20], NULL);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(str(only(arr), "status"), "ok");
    json_decref(arr);
}

static void test_self_signed(void)
{
    int rc;
    json_t *arr = cm_th_check_json(&rc, NULL, "--ca", cm_th_pki("root.pem"), local[S_SELF], NULL);
    json_t *t = only(arr);

    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT(has_finding(t, "chain.self_signed", "critical", 0));
    CU_ASSERT(!has_finding(t, "chain.untrusted", NULL, -1));
    CU_ASSERT_EQUAL(json_array_size(get(t, "chain")), 1);
    CU_ASSERT(json_is_true(get(t, "chain.0.self_signed")));
    CU_ASSERT(json_is_false(get(t, "verification.trusted")));
    json_decref(arr);
}

static void test_wrong_hostname(void)
{
    int rc;
    json_t *arr = cm_th_check_json(&rc, NULL, "--ca", cm_th_pki("root.pem"), local[S_WRONG], NULL);
    json_t *t = only(arr);

    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT(has_finding(t, "host.mismatch", "critical", 0));
    CU_ASSERT(json_is_false(get(t, "verification.hostname_match")));
    CU_ASSERT(json_is_true(get(t, "verification.trusted")));
    CU_ASSERT(has_string(get(t, "verification.errors"), "hostname_mismatch"));
    json_decref(arr);

    /* Presenting and verifying the name the certificate was made for fixes it. */
    arr = cm_th_check_json(&rc, NULL, "--ca", cm_th_pki("root.pem"), "--sni", "wrong.example",
                           addr[S_WRONG], NULL);
    t = only(arr);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(str(t, "sni"), "wrong.example");
    CU_ASSERT(json_is_true(get(t, "verification.hostname_match")));
    json_decref(arr);
}

static void test_refused_port(void)
{
    int rc;
    json_t *arr = cm_th_check_json(&rc, NULL, addr[S_REFUSED], NULL);
    json_t *t = only(arr);

    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT_STRING_EQUAL(str(t, "status"), "critical");
    CU_ASSERT_STRING_EQUAL(str(t, "error.kind"), "connect");
    CU_ASSERT(strstr(str_or_empty(t, "error.message"), "refused") != NULL);
    CU_ASSERT(has_finding(t, "probe.failed", "critical", -1));
    CU_ASSERT_EQUAL(json_array_size(get(t, "chain")), 0);
    CU_ASSERT(json_is_null(get(t, "timing_ms.handshake")));
    json_decref(arr);
}

static void test_silent_listener_times_out(void)
{
    int rc;
    double elapsed;
    json_t *arr = cm_th_check_json(&rc, &elapsed, "--timeout", "1.5", "--ca", cm_th_pki("root.pem"),
                                   addr[S_SILENT], local[S_VALID], NULL);
    json_t *t;

    CU_ASSERT_FATAL(json_array_size(arr) == 2);
    t = json_array_get(arr, 0);
    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT_STRING_EQUAL(str(t, "status"), "critical");
    CU_ASSERT_STRING_EQUAL(str(t, "error.kind"), "timeout");
    CU_ASSERT_STRING_EQUAL(str(t, "error.phase"), "handshake");
    CU_ASSERT(json_number_value(get(t, "timing_ms.total")) >= 1400);
    /* The healthy target beside it is unaffected, and the run ends with the deadline. */
    CU_ASSERT_STRING_EQUAL(str(json_array_get(arr, 1), "status"), "ok");
    CU_ASSERT(json_number_value(get(json_array_get(arr, 1), "timing_ms.total")) <
              1000 * CERTMON_SLOWDOWN);
    CU_ASSERT(elapsed < 1.5 + 2.0 * CERTMON_SLOWDOWN);
    json_decref(arr);
}

static void test_plain_http_server(void)
{
    int rc;
    json_t *arr = cm_th_check_json(&rc, NULL, addr[S_HTTP], NULL);
    json_t *t = only(arr);

    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT_STRING_EQUAL(str(t, "error.kind"), "tls");
    CU_ASSERT(strstr(str_or_empty(t, "error.message"), "TLS") != NULL);
    CU_ASSERT(json_is_null(get(t, "tls.version")));
    json_decref(arr);
}

static void test_failed_handshake_still_reports_chain(void)
{
    int rc;
    json_t *arr =
        cm_th_check_json(&rc, NULL, "--ca", cm_th_pki("root.pem"), local[S_NEEDCLIENT], NULL);
    json_t *t = only(arr);

    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT_STRING_EQUAL(str(t, "error.kind"), "tls");
    CU_ASSERT(strstr(str_or_empty(t, "error.message"), "handshake_failure (40)") != NULL);
    CU_ASSERT(json_is_null(get(t, "tls.version")));
    /* The server's chain arrived before the rejection and is reported and verified. */
    CU_ASSERT_EQUAL(json_array_size(get(t, "chain")), 2);
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.subject"), "CN=localhost");
    CU_ASSERT(json_is_true(get(t, "verification.trusted")));
    /* The server wanted a client certificate: said so, instead of a generic failure. */
    CU_ASSERT(has_finding(t, "mtls.client_cert_required", "critical", -1));
    CU_ASSERT(!has_finding(t, "probe.failed", NULL, -1));
    CU_ASSERT(json_is_true(get(t, "mtls.client_cert_requested")));
    json_decref(arr);
}

static void test_tls13_client_certificate_required(void)
{
    int rc;
    json_t *arr = cm_th_check_json(&rc, NULL, "--ca", cm_th_pki("root.pem"), local[S_NEEDCLIENT13],
                                   local[S_OPTCLIENT13], NULL);
    json_t *t;

    CU_ASSERT_FATAL(json_array_size(arr) == 2);
    /* The handshake call succeeds; the rejection comes with the first record after it. */
    t = json_array_get(arr, 0);
    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT_STRING_EQUAL(str(t, "status"), "critical");
    CU_ASSERT_STRING_EQUAL(str(t, "error.kind"), "tls");
    CU_ASSERT(strstr(str_or_empty(t, "error.message"), "certificate_required (116)") != NULL);
    CU_ASSERT(strstr(str_or_empty(t, "error.message"), "client certificate") != NULL);
    CU_ASSERT(has_finding(t, "mtls.client_cert_required", "critical", -1));
    CU_ASSERT_STRING_EQUAL(str(t, "tls.version"), "TLS1.3");
    CU_ASSERT_EQUAL(json_array_size(get(t, "chain")), 2);
    /* A server that only asks, and accepts no certificate, is fine. */
    t = json_array_get(arr, 1);
    CU_ASSERT_STRING_EQUAL(str(t, "status"), "ok");
    CU_ASSERT(json_is_null(get(t, "error")));
    json_decref(arr);
}

static void test_dns_failure(void)
{
    int rc;
    json_t *arr = cm_th_check_json(&rc, NULL, "--timeout", "8", "no-such-host.invalid:443", NULL);
    json_t *t = only(arr);
    const char *kind = str(t, "error.kind");

    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(kind);
    /* .invalid never resolves; a host whose resolver is unreachable times out in "dns". */
    CU_ASSERT(!strcmp(kind, "dns") ||
              (!strcmp(kind, "timeout") && !strcmp(str(t, "error.phase"), "dns")));
    CU_ASSERT(json_is_null(get(t, "address")));
    json_decref(arr);
}

/* A DNS server that never answers delays only the names it is asked about. */
static void test_silent_dns_server(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_DGRAM, 0), rc;
    char servers[64];
    double elapsed;
    json_t *arr;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_FATAL(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
                    getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    snprintf(servers, sizeof(servers), "127.0.0.1:%d", ntohs(sa.sin_port));
    setenv("CERTMON_DNS_SERVERS", servers, 1);
    arr = cm_th_check_json(&rc, &elapsed, "--timeout", "1.5", "--concurrency", "3", "--ca",
                           cm_th_pki("root.pem"), "slow-1.example", "slow-2.example",
                           "slow-3.example", local[S_VALID], addr[S_VALID], NULL);
    unsetenv("CERTMON_DNS_SERVERS");
    close(fd);

    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT_FATAL(json_array_size(arr) == 5);
    for (size_t i = 0; i < 3; i++) {
        json_t *t = json_array_get(arr, i);
        CU_ASSERT_STRING_EQUAL(str(t, "error.kind"), "timeout");
        CU_ASSERT_STRING_EQUAL(str(t, "error.phase"), "dns");
    }
    /* /etc/hosts and address literals need no DNS server, and wait for no other lookup,
     * even with every probe slot taken by a stuck lookup first. */
    CU_ASSERT_STRING_EQUAL(str(json_array_get(arr, 3), "status"), "ok");
    CU_ASSERT_STRING_EQUAL(str(json_array_get(arr, 4), "status"), "ok");
    CU_ASSERT(elapsed < 2 * 1.5 + 1.5 * CERTMON_SLOWDOWN);
    json_decref(arr);
}

/* One name, two addresses, two different leaves: the stale node is found. */
static void test_all_addresses(void)
{
    char servers[64], target[64];
    int rc;
    json_t *arr;

    snprintf(servers, sizeof(servers), "127.0.0.1:%d", port[S_DNS]);
    snprintf(target, sizeof(target), "multi.test:%d", port[S_MULTI_A]);
    setenv("CERTMON_DNS_SERVERS", servers, 1);
    usleep(200000); /* the UDP server and 127.0.0.2 listener have no port to wait for */
    arr = cm_th_check_json(&rc, NULL, "--ca", cm_th_pki("root.pem"), "--sni", "localhost",
                           "--all-addresses", target, addr[S_VALID], NULL);
    unsetenv("CERTMON_DNS_SERVERS");

    CU_ASSERT_FATAL(json_array_size(arr) == 3);
    for (size_t i = 0; i < 2; i++) {
        json_t *t = json_array_get(arr, i);
        CU_ASSERT_STRING_EQUAL(str(t, "target"), target);
        CU_ASSERT(has_finding(t, "endpoint.inconsistent", "warning", 0));
        CU_ASSERT(json_is_true(get(t, "verification.trusted")));
    }
    CU_ASSERT_STRING_EQUAL(str(arr, "0.address"), "127.0.0.1");
    CU_ASSERT_STRING_EQUAL(str(arr, "1.address"), "127.0.0.2");
    CU_ASSERT(strcmp(str(arr, "0.chain.0.sha256"), str(arr, "1.chain.0.sha256")) != 0);
    CU_ASSERT(has_finding(json_array_get(arr, 1), "cert.expiring", "warning", 0));
    /* A literal, or a name with one address, is one result as before. */
    CU_ASSERT_STRING_EQUAL(str(arr, "2.target"), addr[S_VALID]);
    CU_ASSERT(!has_finding(json_array_get(arr, 2), "endpoint.inconsistent", NULL, -1));
    CU_ASSERT_EQUAL(rc, 1);
    json_decref(arr);
}

static void test_fifty_targets_in_order(void)
{
    const char *argv[64];
    enum srv kinds[50];
    int n = 0, rc;
    double elapsed;
    json_t *arr;

    for (int i = 0; i < 50; i++) {
        static const enum srv mix[] = {S_VALID, S_EXPIRED, S_VALID, S_REFUSED, S_SELF,
                                       S_VALID, S_SILENT,  S_EXP20, S_VALID,   S_WRONG};
        kinds[i] = mix[i % 10];
        argv[n++] = local[kinds[i]];
    }
    argv[n] = NULL;
    {
        char *full[80];
        int m = 0;
        char *out;
        json_error_t jerr;
        full[m++] = (char *)cm_th_certmon();
        full[m++] = "check";
        full[m++] = "--json";
        full[m++] = "--timeout";
        full[m++] = "2";
        full[m++] = "--ca";
        full[m++] = (char *)cm_th_pki("root.pem");
        for (int i = 0; i < n; i++)
            full[m++] = (char *)argv[i];
        full[m] = NULL;
        rc = cm_th_run(full, &out, 60, &elapsed);
        arr = json_loads(out, 0, &jerr);
        free(out);
    }
    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT_FATAL(json_array_size(arr) == 50);
    for (int i = 0; i < 50; i++) {
        json_t *t = json_array_get(arr, (size_t)i);
        const char *want = kinds[i] == S_VALID   ? "ok"
                           : kinds[i] == S_EXP20 ? "warning"
                                                 : "critical";
        CU_ASSERT_STRING_EQUAL(str(t, "target"), local[kinds[i]]); /* order as given */
        CU_ASSERT_STRING_EQUAL(str(t, "status"), want);
        if (kinds[i] == S_SILENT)
            CU_ASSERT_STRING_EQUAL(str(t, "error.kind"), "timeout");
        if (kinds[i] == S_REFUSED)
            CU_ASSERT_STRING_EQUAL(str(t, "error.kind"), "connect");
    }
    CU_ASSERT(elapsed <
              2.0 + 3.0 * CERTMON_SLOWDOWN); /* five silent targets cost one timeout, not five */
    json_decref(arr);
}

static void test_200_targets_20_silent(void)
{
    char path[] = "/tmp/certmon-targets.XXXXXX";
    int fd = mkstemp(path), rc, ok = 0, timeouts = 0;
    FILE *fp = fdopen(fd, "w");
    double elapsed;
    json_t *arr, *t;
    size_t i;

    CU_ASSERT_FATAL(fp != NULL);
    fprintf(fp, "# 180 healthy endpoints and 20 that accept and never answer\n");
    for (int k = 0; k < 200; k++)
        fprintf(fp, "%s%s\n", k % 10 == 3 ? addr[S_SILENT] : local[S_VALID],
                k % 7 == 0 ? "   # with a comment" : "");
    fclose(fp);
    /* With the posture pass on (the default): targets on one endpoint share one sweep. */
    arr = cm_th_check_json(&rc, &elapsed, "--timeout", "3", "--ca", cm_th_pki("root.pem"),
                           "--targets", path, NULL);
    unlink(path);
    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT_FATAL(json_array_size(arr) == 200);
    json_array_foreach(arr, i, t)
    {
        if (!strcmp(str(t, "status"), "ok")) {
            ok++;
            /* Every healthy target got the posture of its endpoint. */
            CU_ASSERT(json_is_array(get(t, "posture.versions_accepted")));
        } else if (str(t, "error.kind") && !strcmp(str(t, "error.kind"), "timeout"))
            timeouts++;
    }
    CU_ASSERT_EQUAL(ok, 180);
    CU_ASSERT_EQUAL(timeouts, 20);
    CU_ASSERT(elapsed < 3.0 + 3.0 * CERTMON_SLOWDOWN);
    fprintf(stderr, "200 targets (20 silent, --timeout 3): %.2f s\n", elapsed);
    json_decref(arr);
}

static void test_duplicates_kept(void)
{
    int rc;
    json_t *arr = cm_th_check_json(&rc, NULL, "--ca", cm_th_pki("root.pem"), local[S_VALID],
                                   addr[S_REFUSED], local[S_VALID], NULL);

    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT_FATAL(json_array_size(arr) == 3);
    CU_ASSERT_STRING_EQUAL(str(arr, "0.target"), local[S_VALID]);
    CU_ASSERT_STRING_EQUAL(str(arr, "1.target"), addr[S_REFUSED]);
    CU_ASSERT_STRING_EQUAL(str(arr, "2.target"), local[S_VALID]);
    CU_ASSERT_STRING_EQUAL(str(arr, "2.status"), "ok");
    json_decref(arr);
}

/* Runs certmon with stderr folded into stdout, for checking messages. */
static int run_merged(const char *args, char **out)
{
    char cmd[1024];
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};

    snprintf(cmd, sizeof(cmd), "'%s' %s 2>&1", cm_th_certmon(), args);
    return cm_th_run(argv, out, 30, NULL);
}

static void test_bad_arguments_are_unknown(void)
{
    static const struct {
        const char *args;
        const char *says;
    } cases[] = {
        {"check", "no targets"},
        {"check --timeout 0 example.com", "--timeout"},
        {"check --timeout abc example.com", "--timeout"},
        {"check --concurrency 0 example.com", "--concurrency"},
        {"check --warn-days -1 example.com", "--warn-days"},
        {"check --crit-days 40 example.com", "--crit-days"},
        {"check --warn-lifetime-pct 0 example.com",
         "--warn-lifetime-pct must be an integer from 1 to 100, not '0'"},
        {"check --crit-lifetime-pct 101 example.com",
         "--crit-lifetime-pct must be an integer from 1 to 100, not '101'"},
        {"check --warn-lifetime-pct 33.3 example.com", "--warn-lifetime-pct"},
        {"check --crit-lifetime-pct 50 example.com",
         "--crit-lifetime-pct (50) must not exceed --warn-lifetime-pct (33)"},
        {"check --max-lifetime-days -1 example.com",
         "--max-lifetime-days must be an integer from 0 to 36500"},
        {"check --bogus example.com", "--bogus"},
        {"check example.com:0", "port"},
        {"check example.com:99999", "port"},
        {"check 'bad host!'", "bad host!"},
        {"check '[::1'", "]"},
        {"check --ca /nonexistent/ca.pem example.com", "/nonexistent/ca.pem"},
        {"check --targets /nonexistent/list", "/nonexistent/list"},
        {"frobnicate", "unknown command"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out;
        int rc = run_merged(cases[i].args, &out);
        CU_ASSERT_EQUAL(rc, 3);
        CU_ASSERT(strstr(out, cases[i].says) != NULL);
        if (rc != 3 || !strstr(out, cases[i].says))
            fprintf(stderr, "certmon %s -> %d: %s\n", cases[i].args, rc, out);
        free(out);
    }
}

static void test_targets_file_error_names_line(void)
{
    char path[] = "/tmp/certmon-targets.XXXXXX";
    int fd = mkstemp(path), rc;
    FILE *fp = fdopen(fd, "w");
    char args[256], *out, want[300];

    fprintf(fp, "# comment\n\nexample.com\nexample.com:notaport\n");
    fclose(fp);
    snprintf(args, sizeof(args), "check --targets %s", path);
    rc = run_merged(args, &out);
    unlink(path);
    CU_ASSERT_EQUAL(rc, 3);
    snprintf(want, sizeof(want), "%s:4:", path);
    CU_ASSERT(strstr(out, want) != NULL);
    free(out);
}

static void test_human_output(void)
{
    char args[512], *out;
    int rc;

    snprintf(args, sizeof(args), "check --ca %s %s %s", cm_th_pki("root.pem"), local[S_VALID],
             local[S_EXP20]);
    rc = run_merged(args, &out);
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT(strncmp(out, "CERTMON WARNING: 2 targets", 26) == 0);
    CU_ASSERT(strstr(out, "OK       localhost:") != NULL);
    CU_ASSERT(strstr(out, "WARNING  localhost:") != NULL);
    CU_ASSERT(strstr(out, "cert.expiring") != NULL);
    CU_ASSERT(strstr(out, "TLS1.3") != NULL);
    CU_ASSERT(strstr(out, "\033[") == NULL); /* not a terminal: no colour */
    free(out);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"valid chain with --ca", test_valid_chain_with_ca},
        {"IP target verifies IP SAN", test_ip_target_verifies_ip_san},
        {"IPv6 literal", test_ipv6_literal},
        {"untrusted without --ca", test_untrusted_without_ca},
        {"expired leaf", test_expired_leaf},
        {"not yet valid leaf", test_not_yet_valid_leaf},
        {"expiring in 5 days", test_expiring_in_5_days},
        {"expiring in 20 days", test_expiring_in_20_days},
        {"self-signed", test_self_signed},
        {"wrong hostname", test_wrong_hostname},
        {"refused port", test_refused_port},
        {"silent listener times out", test_silent_listener_times_out},
        {"plain HTTP server", test_plain_http_server},
        {"failed handshake still reports chain", test_failed_handshake_still_reports_chain},
        {"TLS 1.3 client certificate required", test_tls13_client_certificate_required},
        {"DNS failure", test_dns_failure},
        {"silent DNS server", test_silent_dns_server},
        {"all addresses of a name", test_all_addresses},
        {"50 targets in order", test_fifty_targets_in_order},
        {"200 targets, 20 silent", test_200_targets_20_silent},
        {"duplicates kept", test_duplicates_kept},
        {"bad arguments exit 3", test_bad_arguments_are_unknown},
        {"targets file error names line", test_targets_file_error_names_line},
        {"human output", test_human_output},
        CU_TEST_INFO_NULL,
    };
    signal(SIGPIPE, SIG_IGN);
    return cm_test_main("integration.check", tests, suite_init, suite_cleanup);
}
