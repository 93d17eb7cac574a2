/* certmon check against hostile peers and inputs on 127.0.0.1: certificates with thousands of
 * names (made with openssl at test time, served by openssl s_server), a server that drips its
 * handshake a byte a second, one that sends a 16 MB handshake message (tests/integration/
 * hostile_peer.py), a DNS server answering 500 identical or 100 distinct addresses
 * (fake_dns.py), and --targets files with bytes that are not a target list. Every case must
 * end within its deadline with a named error, or with a sensible result. Every process is
 * started here and stopped by PID in the suite cleanup. */
#include "cmtest.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

enum srv {
    S_SANS9000,
    S_SANS1500,
    S_VALID,
    S_CHAIN100,
    S_DRIP,
    S_HUGE,
    S_DNS_SAME,
    S_DNS_MANY,
    S_COUNT
};

static pid_t pid[S_COUNT];
static int port[S_COUNT];

/* Writes an openssl extension file with n DNS names ("localhost" first, then h1.ex, h2.ex,
 * ...) and signs a leaf for leaf.key with the test PKI's intermediate. */
static int make_leaf(const char *name, int n)
{
    char ext[600], csr[600], cmd[3000];
    FILE *fp;

    snprintf(ext, sizeof(ext), "%s/%s.ext", cm_th_pki_dir(), name);
    snprintf(csr, sizeof(csr), "%s/%s.csr", cm_th_pki_dir(), name);
    if (!(fp = fopen(ext, "w")))
        return -1;
    fprintf(fp, "subjectAltName = @alt\n[alt]\nDNS.1 = localhost\n");
    for (int i = 2; i <= n; i++)
        fprintf(fp, "DNS.%d = h%d.ex\n", i, i);
    fclose(fp);
    snprintf(cmd, sizeof(cmd),
             "openssl req -new -key '%s' -subj /CN=localhost -out '%s' 2>/dev/null && "
             "openssl x509 -req -in '%s' -CA '%s' -CAkey '%s' -set_serial %d -days 30 "
             "-extfile '%s' -out '%s/%s.pem' 2>/dev/null",
             cm_th_pki("leaf.key"), csr, csr, cm_th_pki("inter.pem"), cm_th_pki("inter.key"), n,
             ext, cm_th_pki_dir(), name);
    return system(cmd) == 0 ? 0 : -1;
}

static pid_t start_script(const char *script, char *const args[])
{
    char *argv[128] = {"/usr/bin/python3", (char *)cm_th_script(script)};
    int n = 2;

    for (; args[n - 2] && n < 127; n++)
        argv[n] = args[n - 2];
    argv[n] = NULL;
    return cm_th_spawn(argv, NULL);
}

static int suite_init(void)
{
    char p[S_COUNT][16];
    static char many[100][16];

    if (!cm_th_pki_dir() || make_leaf("sans9000", 9000) < 0 || make_leaf("sans1500", 1500) < 0)
        return -1;
    for (int s = 0; s < S_COUNT; s++) {
        port[s] = cm_th_free_port();
        snprintf(p[s], sizeof(p[s]), "%d", port[s]);
    }
    pid[S_SANS9000] = cm_th_s_server(port[S_SANS9000], "sans9000.pem", "leaf.key", true);
    pid[S_SANS1500] = cm_th_s_server(port[S_SANS1500], "sans1500.pem", "leaf.key", true);
    pid[S_VALID] = cm_th_s_server(port[S_VALID], "valid.pem", "leaf.key", true);
    {
        /* The intermediate sent 100 times after the leaf: 101 certificates, 82 KB. */
        char chain[600], accept[32], cert[600], key[600];
        FILE *fp;
        snprintf(chain, sizeof(chain), "%s/chain100.pem", cm_th_pki_dir());
        snprintf(cert, sizeof(cert), "%s", cm_th_pki("valid.pem"));
        snprintf(key, sizeof(key), "%s", cm_th_pki("leaf.key"));
        snprintf(accept, sizeof(accept), "127.0.0.1:%d", port[S_CHAIN100]);
        if (!(fp = fopen(chain, "w")))
            return -1;
        for (int i = 0; i < 100; i++) {
            FILE *in = fopen(cm_th_pki("inter.pem"), "r");
            char buf[4096];
            size_t n;
            if (!in)
                return -1;
            while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
                fwrite(buf, 1, n, fp);
            fclose(in);
        }
        fclose(fp);
        pid[S_CHAIN100] =
            cm_th_spawn((char *[]){"openssl", "s_server", "-accept", accept, "-cert", cert, "-key",
                                   key, "-cert_chain", chain, "-quiet", NULL},
                        NULL);
    }
    pid[S_DRIP] = start_script("hostile_peer.py", (char *[]){"drip", p[S_DRIP], NULL});
    pid[S_HUGE] = start_script("hostile_peer.py", (char *[]){"huge", p[S_HUGE], NULL});
    pid[S_DNS_SAME] = start_script("fake_dns.py", (char *[]){p[S_DNS_SAME], "500*127.0.0.1", NULL});
    {
        char *args[103] = {p[S_DNS_MANY]};
        for (int i = 0; i < 100; i++) {
            snprintf(many[i], sizeof(many[i]), "127.0.0.%d", i + 1);
            args[i + 1] = many[i];
        }
        pid[S_DNS_MANY] = start_script("fake_dns.py", args);
    }
    for (int s = 0; s < S_COUNT; s++) {
        if (pid[s] <= 0) {
            fprintf(stderr, "server %d did not start\n", s);
            return -1;
        }
        /* The DNS servers listen on TCP too: waiting for that covers their UDP socket. */
        if (!cm_th_wait_port(port[s], 10000)) {
            fprintf(stderr, "server %d on port %d did not come up\n", s, port[s]);
            return -1;
        }
    }
    return 0;
}

static int suite_cleanup(void)
{
    for (int s = 0; s < S_COUNT; s++)
        if (pid[s] > 0)
            cm_th_stop(pid[s]);
    return 0;
}

static const char *str(json_t *o, const char *path)
{
    const char *s = cm_json_str(o, path);
    return s ? s : "(absent)";
}

/* 9,000 names: GnuTLS would parse them in time quadratic in their number (seconds under
 * sanitizers, on the loop), so the Certificate message is refused before it does, with an
 * error that says why, at once. */
static void test_9000_sans_refused_in_time(void)
{
    char target[64];
    double elapsed;
    int rc;
    json_t *arr, *t;

    snprintf(target, sizeof(target), "localhost:%d", port[S_SANS9000]);
    arr = cm_th_check_json(&rc, &elapsed, "--timeout", "3", "--ca", cm_th_pki("root.pem"), target,
                           NULL);
    fprintf(stderr, "\n  9,000 SANs, --timeout 3: %.2f s ", elapsed);
    CU_ASSERT_FATAL(json_array_size(arr) == 1);
    t = json_array_get(arr, 0);
    EXPECT_STATUS(rc, t, "critical");
    EXPECT_STR(str(t, "error.kind"), "tls");
    CU_ASSERT_PTR_NOT_NULL(strstr(str(t, "error.message"), "position 0 lists 9000 subject "
                                                           "alternative names; certmon refuses "
                                                           "more than 2048"));
    CU_ASSERT_PTR_NOT_NULL(cm_finding(t, "probe.failed", "critical", -1));
    CU_ASSERT(elapsed < 3.5 * CERTMON_SLOWDOWN);
    json_decref(arr);
}

/* 1,500 names: accepted and reported, the list cut at 1,000 and the report says so; the host
 * name matches (GnuTLS checks every name). Under sanitizers GnuTLS's parsing alone takes
 * seconds: there the probe may end at its deadline instead, with a named timeout. */
static void test_1500_sans_cut_at_1000(void)
{
    char target[64];
    double elapsed;
    int rc;
    json_t *arr, *t, *sans;

    snprintf(target, sizeof(target), "localhost:%d", port[S_SANS1500]);
    arr = cm_th_check_json(&rc, &elapsed, "--timeout", "3", "--ca", cm_th_pki("root.pem"), target,
                           NULL);
    fprintf(stderr, "\n  1,500 SANs, --timeout 3: %.2f s ", elapsed);
    CU_ASSERT_FATAL(json_array_size(arr) == 1);
    t = json_array_get(arr, 0);
    CU_ASSERT(elapsed < 3.5 * CERTMON_SLOWDOWN);
    if (CERTMON_SLOWDOWN > 1.0 && json_is_object(cm_json_get(t, "error"))) {
        fprintf(stderr, "(sanitizers: %s in %s) ", str(t, "error.kind"), str(t, "error.phase"));
        EXPECT_STR(str(t, "error.kind"), "timeout");
        CU_ASSERT(!strcmp(str(t, "error.phase"), "describe") ||
                  !strcmp(str(t, "error.phase"), "handshake"));
        json_decref(arr);
        return;
    }
    CU_ASSERT(json_is_null(cm_json_get(t, "error")));
    CU_ASSERT(json_is_true(cm_json_get(t, "verification.trusted")));
    CU_ASSERT(json_is_true(cm_json_get(t, "verification.hostname_match")));
    EXPECT_INT(json_integer_value(cm_json_get(t, "chain.0.san_count")), 1500);
    CU_ASSERT(json_is_true(cm_json_get(t, "chain.0.sans_truncated")));
    sans = cm_json_get(t, "chain.0.sans");
    EXPECT_INT(json_array_size(sans), 1000);
    EXPECT_STR(json_string_value(json_array_get(sans, 0)), "localhost");
    EXPECT_STR(json_string_value(json_array_get(sans, 999)), "h1000.ex");
    /* The intermediate has no names: nothing cut. */
    EXPECT_INT(json_integer_value(cm_json_get(t, "chain.1.san_count")), 0);
    CU_ASSERT(json_is_false(cm_json_get(t, "chain.1.sans_truncated")));
    CU_ASSERT_PTR_NULL(cm_finding(t, "probe.failed", NULL, -1));
    CU_ASSERT_PTR_NULL(cm_finding(t, "host.mismatch", NULL, -1));
    json_decref(arr);
}

/* 101 certificates: all reported, in the order sent, without delay. */
static void test_100_certificate_chain(void)
{
    char target[64];
    double elapsed;
    int rc;
    json_t *arr, *t;

    snprintf(target, sizeof(target), "localhost:%d", port[S_CHAIN100]);
    arr = cm_th_check_json(&rc, &elapsed, "--timeout", "3", "--ca", cm_th_pki("root.pem"), target,
                           NULL);
    fprintf(stderr, "\n  101-certificate chain, --timeout 3: %.2f s ", elapsed);
    CU_ASSERT_FATAL(json_array_size(arr) == 1);
    t = json_array_get(arr, 0);
    CU_ASSERT(json_is_null(cm_json_get(t, "error")));
    EXPECT_INT(json_array_size(cm_json_get(t, "chain")), 101);
    EXPECT_STR(str(t, "chain.100.subject"), "CN=certmon Test Intermediate CA");
    EXPECT_INT(json_integer_value(cm_json_get(t, "chain.100.position")), 100);
    CU_ASSERT(json_is_true(cm_json_get(t, "verification.hostname_match")));
    CU_ASSERT(elapsed < 3.5 * CERTMON_SLOWDOWN);
    json_decref(arr);
}

/* A server that sends its ServerHello a byte a second: one timeout, in the handshake. */
static void test_drip_feed_times_out(void)
{
    char target[64];
    double elapsed;
    int rc;
    json_t *arr, *t;

    snprintf(target, sizeof(target), "127.0.0.1:%d", port[S_DRIP]);
    arr = cm_th_check_json(&rc, &elapsed, "--timeout", "2", "--ca", cm_th_pki("root.pem"), target,
                           NULL);
    fprintf(stderr, "\n  drip-feed, --timeout 2: %.2f s ", elapsed);
    CU_ASSERT_FATAL(json_array_size(arr) == 1);
    t = json_array_get(arr, 0);
    EXPECT_STATUS(rc, t, "critical");
    EXPECT_STR(str(t, "error.kind"), "timeout");
    EXPECT_STR(str(t, "error.phase"), "handshake");
    CU_ASSERT_PTR_NOT_NULL(strstr(str(t, "error.message"), "timed out after 2.0 s"));
    CU_ASSERT(elapsed < 2.0 + 1.0 * CERTMON_SLOWDOWN);
    json_decref(arr);
}

/* A handshake message announcing 16 MB: refused when it outgrows what GnuTLS buffers (128 KB),
 * not read to its end, and before the deadline. GnuTLS takes its time over those 128 KB (read
 * in small pieces and moved around: about 0.3 s here, nearly 2 s under sanitizers on a busy
 * machine), so the deadline is what this checks: the probe's own total, and the command's time
 * with a margin for starting up. */
static void test_16mb_handshake_message(void)
{
    char target[64];
    double elapsed;
    int rc;
    json_t *arr, *t;

    snprintf(target, sizeof(target), "127.0.0.1:%d", port[S_HUGE]);
    arr = cm_th_check_json(&rc, &elapsed, "--timeout", "3", "--ca", cm_th_pki("root.pem"), target,
                           NULL);
    CU_ASSERT_FATAL(json_array_size(arr) == 1);
    t = json_array_get(arr, 0);
    fprintf(stderr, "\n  16 MB handshake message, --timeout 3: %.2f s (probe %.0f ms) ", elapsed,
            json_number_value(cm_json_get(t, "timing_ms.total")));
    EXPECT_STATUS(rc, t, "critical");
    EXPECT_STR(str(t, "error.kind"), "tls");
    CU_ASSERT_PTR_NOT_NULL(strstr(str(t, "error.message"), "GNUTLS_E_HANDSHAKE_TOO_LARGE"));
    CU_ASSERT(json_number_value(cm_json_get(t, "timing_ms.total")) < 3000);
    CU_ASSERT(elapsed < 3.0 + 0.5 * CERTMON_SLOWDOWN);
    json_decref(arr);
}

/* 500 identical A records are one address, so one probe under --all-addresses. */
static void test_500_identical_answers_one_probe(void)
{
    char dns[64], target[64];
    int rc;
    json_t *arr, *t;

    snprintf(dns, sizeof(dns), "127.0.0.1:%d", port[S_DNS_SAME]);
    snprintf(target, sizeof(target), "same.test:%d", port[S_VALID]);
    setenv("CERTMON_DNS_SERVERS", dns, 1);
    arr = cm_th_check_json(&rc, NULL, "--quick", "--all-addresses", "--ca", cm_th_pki("root.pem"),
                           "--sni", "localhost", target, NULL);
    unsetenv("CERTMON_DNS_SERVERS");
    CU_ASSERT_FATAL(json_array_size(arr) == 1);
    t = json_array_get(arr, 0);
    EXPECT_STR(str(t, "address"), "127.0.0.1");
    EXPECT_STR(str(t, "target"), target);
    EXPECT_STATUS(rc, t, "ok");
    json_decref(arr);
}

/* 100 distinct addresses: the first 64, in answer order, and a note that says so. */
static void test_100_distinct_answers_cut_at_64(void)
{
    char dns[64], target[64], want[32];
    int rc;
    char *out = NULL;
    json_t *arr;

    snprintf(dns, sizeof(dns), "127.0.0.1:%d", port[S_DNS_MANY]);
    snprintf(target, sizeof(target), "many.test:%d", port[S_VALID]);
    setenv("CERTMON_DNS_SERVERS", dns, 1);
    arr = cm_th_check_json(&rc, NULL, "--quick", "--timeout", "3", "--all-addresses", "--ca",
                           cm_th_pki("root.pem"), "--sni", "localhost", target, NULL);
    CU_ASSERT_FATAL(json_array_size(arr) == 64);
    for (size_t i = 0; i < 64; i++) {
        snprintf(want, sizeof(want), "127.0.0.%zu", i + 1);
        EXPECT_STR(cm_json_str(json_array_get(arr, i), "address"), want);
    }
    /* Only 127.0.0.1 has a server; the others refuse. */
    CU_ASSERT(json_is_null(cm_json_get(json_array_get(arr, 0), "error")));
    EXPECT_STR(str(json_array_get(arr, 1), "error.kind"), "connect");
    json_decref(arr);
    rc = cm_th_check_merged(&out, "--quick", "--timeout", "3", "--all-addresses", "--ca",
                            cm_th_pki("root.pem"), "--sni", "localhost", target, NULL);
    unsetenv("CERTMON_DNS_SERVERS");
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "certmon check: many.test has more than 64 "
                                              "addresses; probing the first 64 (36 more answers "
                                              "left out)"));
    EXPECT_INT(rc, 2);
    free(out);
}

/* Runs check --targets on a file holding len bytes of text; expects exit 3 and want in the
 * output. */
static void expect_targets_error(const char *text, size_t len, const char *want, unsigned line)
{
    char path[600];
    char *out = NULL;
    FILE *fp;
    int rc;

    snprintf(path, sizeof(path), "%s/targets.txt", cm_th_pki_dir());
    fp = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fwrite(text, 1, len, fp);
    fclose(fp);
    rc = cm_th_check_merged(&out, "--targets", path, NULL);
    expect_int(rc, 3, "exit status", line);
    if (!out || !strstr(out, want)) {
        fprintf(stderr, "\n  line %u: want '%s' in: %s\n", line, want, out ? out : "(null)");
        CU_assertImplementation(CU_FALSE, line, "error message", __FILE__, "", CU_FALSE);
    }
    free(out);
}

#define EXPECT_TARGETS_ERROR(lit, want)                                                            \
    expect_targets_error((lit), sizeof(lit) - 1, (want), __LINE__)

/* A targets file is text, one target a line: anything else is an error naming FILE:LINE, never
 * a line silently cut short. */
static void test_targets_file_bad_bytes(void)
{
    char *big = malloc(10000);
    char want[700];
    char *out = NULL;

    EXPECT_TARGETS_ERROR("127.0.0.1:1\n127.0.0.1:2\0 127.0.0.1:3\n",
                         "targets.txt:2: a NUL byte at column 12");
    EXPECT_TARGETS_ERROR("# fine\n\nlocal\033[31mhost:443\n", "targets.txt:3: control character "
                                                              "0x1b at column 6");
    EXPECT_TARGETS_ERROR("h\xc3\xa9llo.example:443 # caf\xc3\xa9\n",
                         "targets.txt:1: non-ASCII byte 0xc3 at column 2");
    memset(big, 'a', 9999);
    big[9999] = '\n';
    expect_targets_error(big, 10000, "targets.txt:1: line longer than 4096 bytes", __LINE__);
    free(big);
    /* A device that never ends a line is bounded too. */
    EXPECT_INT(cm_th_check_merged(&out, "--targets", "/dev/zero", NULL), 3);
    snprintf(want, sizeof(want), "/dev/zero:1: line longer than 4096 bytes");
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, want));
    free(out);
    /* Non-ASCII in a comment is fine; CRLF line ends are fine. */
    {
        char path[600], target[64];
        FILE *fp;
        int rc;
        json_t *arr;

        snprintf(path, sizeof(path), "%s/targets-ok.txt", cm_th_pki_dir());
        fp = fopen(path, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
        fprintf(fp, "# caf\xc3\xa9\r\nlocalhost:%d # \xc3\xa9t\xc3\xa9\r\n", port[S_VALID]);
        fclose(fp);
        snprintf(target, sizeof(target), "localhost:%d", port[S_VALID]);
        arr = cm_th_check_json(&rc, NULL, "--quick", "--ca", cm_th_pki("root.pem"), "--targets",
                               path, NULL);
        CU_ASSERT_FATAL(json_array_size(arr) == 1);
        EXPECT_STR(str(json_array_get(arr, 0), "target"), target);
        EXPECT_STATUS(rc, json_array_get(arr, 0), "ok");
        json_decref(arr);
    }
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"9,000 SANs: refused at once, named", test_9000_sans_refused_in_time},
        {"1,500 SANs: reported, cut at 1,000", test_1500_sans_cut_at_1000},
        {"101-certificate chain", test_100_certificate_chain},
        {"drip-feed server times out", test_drip_feed_times_out},
        {"16 MB handshake message", test_16mb_handshake_message},
        {"500 identical DNS answers: one probe", test_500_identical_answers_one_probe},
        {"100 distinct DNS answers: 64 probes", test_100_distinct_answers_cut_at_64},
        {"targets file with bad bytes", test_targets_file_bad_bytes},
        CU_TEST_INFO_NULL,
    };
    signal(SIGPIPE, SIG_IGN);
    return cm_test_main("integration.hostile", tests, suite_init, suite_cleanup);
}
