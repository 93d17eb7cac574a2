/* Integration tests for ACME Renewal Information (RFC 9773): `certmon check --ari-url` /
 * `--acme-directory` and the daemon's ari_url / acme_directory, against
 * tests/integration/ari_server.py and an `openssl s_server` on 127.0.0.1 serving a leaf made
 * at test time (with an authority key identifier, and a serial whose DER encoding starts with
 * a zero byte). Debian's pebble 2.4.0 serves no renewalInfo (docs/configuration.md), so the
 * CA side is this small server. */
#include "cmtest.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

static char dir[256];
static int tls_port, ari_port;
static pid_t tls_pid = -1, ari_pid = -1;
static char expected_id[256]; /* the leaf's ARI id, computed without certmon */
static char tls_target[64], ari_log[512];

static int sh(const char *cmd, char **out)
{
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    char *o = NULL;
    int rc = cm_th_run(argv, &o, 60, NULL);

    if (out)
        *out = o;
    else
        free(o);
    return rc;
}

/* The id by another route: openssl prints the AKI and the serial, python encodes them; the
 * serial gets the zero byte DER puts before a first byte with its top bit set. */
static int compute_expected_id(void)
{
    char cmd[2048], *out = NULL;
    int rc;

    snprintf(
        cmd, sizeof(cmd),
        "openssl x509 -in '%s' -noout -ext authorityKeyIdentifier -serial | "
        "/usr/bin/python3 -c '\n"
        "import base64, re, sys\n"
        "t = sys.stdin.read()\n"
        "aki = re.search(r\"((?:[0-9A-F]{2}:)+[0-9A-F]{2})\", t).group(1).replace(\":\", \"\")\n"
        "ser = re.search(r\"serial=([0-9A-F]+)\", t).group(1)\n"
        "ser = (\"0\" if len(ser) %% 2 else \"\") + ser\n"
        "b = bytes.fromhex(ser)\n"
        "b = b\"\\0\" + b if b[0] & 0x80 else b\n"
        "e = lambda x: base64.urlsafe_b64encode(x).decode().rstrip(\"=\")\n"
        "print(e(bytes.fromhex(aki)) + \".\" + e(b), end=\"\")'",
        cm_th_path(dir, "leaf.pem"));
    rc = sh(cmd, &out);
    if (rc == 0 && out && strlen(out) < sizeof(expected_id))
        snprintf(expected_id, sizeof(expected_id), "%s", out);
    else
        fprintf(stderr, "cannot compute the expected id: %s\n", out ? out : "");
    free(out);
    return expected_id[0] ? 0 : -1;
}

static int suite_init(void)
{
    char cmd[4096], port[16];

    snprintf(dir, sizeof(dir), "/tmp/certmon-ari-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    /* A CA and a leaf for localhost valid 90 days (no expiry finding), with AKI and SKI, and
     * a serial whose first byte has its top bit set (DER adds a zero byte: part of the id). */
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && printf '[v3]\\nsubjectAltName=DNS:localhost\\n"
             "authorityKeyIdentifier=keyid\\nsubjectKeyIdentifier=hash\\n"
             "basicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n"
             "keyUsage=digitalSignature\\n' > ext.cnf && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout ca.key -out ca.pem -subj /CN=ARI-Test-CA -days 365 2>/dev/null && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key "
             "-out leaf.csr -subj /CN=localhost 2>/dev/null && "
             "openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key "
             "-set_serial 0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \\n' | sed 's/^./9/') "
             "-days 90 -extfile ext.cnf -extensions v3 -out leaf.pem 2>/dev/null",
             dir);
    if (sh(cmd, NULL) != 0 || compute_expected_id() < 0)
        return -1;

    tls_port = cm_th_free_port();
    snprintf(port, sizeof(port), "127.0.0.1:%d", tls_port);
    char *sv[] = {"openssl", "s_server",
                  "-accept", port,
                  "-cert",   (char *)cm_th_path(dir, "leaf.pem"),
                  "-key",    (char *)cm_th_path(dir, "leaf.key"),
                  "-quiet",  "-naccept",
                  "1000",    NULL};
    tls_pid = cm_th_spawn(sv, NULL);
    snprintf(tls_target, sizeof(tls_target), "127.0.0.1:%d", tls_port);

    ari_port = cm_th_free_port();
    snprintf(port, sizeof(port), "%d", ari_port);
    snprintf(ari_log, sizeof(ari_log), "%s", cm_th_path(dir, "ari.jsonl"));
    char *av[] = {"/usr/bin/python3",
                  (char *)cm_th_script("ari_server.py"),
                  "--port",
                  port,
                  "--log",
                  ari_log,
                  "--lifetime",
                  "300",
                  NULL};
    ari_pid = cm_th_spawn(av, NULL);
    if (tls_pid < 0 || ari_pid < 0 || !cm_th_wait_port(tls_port, 5000) ||
        !cm_th_wait_port(ari_port, 10000))
        return -1;
    return 0;
}

static int suite_cleanup(void)
{
    char cmd[600];

    if (tls_pid > 0)
        cm_th_stop(tls_pid);
    if (ari_pid > 0)
        cm_th_stop(ari_pid);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    sh(cmd, NULL);
    return 0;
}

/* Requests in the ARI server's log that contain needle. */
static int log_count(const char *needle)
{
    FILE *fp = fopen(ari_log, "r");
    char line[2048];
    int n = 0;

    if (!fp)
        return 0;
    while (fgets(line, sizeof(line), fp))
        n += strstr(line, needle) != NULL;
    fclose(fp);
    return n;
}

static const char *url(const char *mode, const char *what)
{
    static char bufs[4][128];
    static unsigned k;
    char *b = bufs[k++ % 4];

    snprintf(b, 128, "http://127.0.0.1:%d/%s/%s", ari_port, mode, what);
    return b;
}

/* certmon check of the test server with an --ari-url (or --acme-directory when dir_mode). */
static json_t *check(int *rc, double *took, const char *opt, const char *value)
{
    return cm_th_check_json(rc, took, "--quick", "--ca", cm_th_path(dir, "ca.pem"), "--sni",
                            "localhost", "--timeout", "3", opt, value, tls_target, NULL);
}

static void test_window_passed(void)
{
    int rc;
    char needle[400];
    json_t *arr = check(&rc, NULL, "--ari-url", url("past", "renewal-info"));
    json_t *t = cm_json_only(arr), *f;

    /* The only problem is the passed window: status warning, exit 1. */
    EXPECT_STATUS(rc, t, "warning");
    f = cm_finding(t, "cert.renewal_window_passed", "warning", 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    const char *msg = cm_json_str(f, "message");
    CU_ASSERT(msg && strstr(msg, "the CA suggested renewing the leaf certificate between "));
    CU_ASSERT(msg && strstr(msg, "that window ended 48 hours ago and the same certificate is "
                                 "still served"));
    /* The explanation URL carries a BEL byte: escaped in the message. */
    CU_ASSERT(msg && strstr(msg, "explanation: https://ca.example/incident?x=1\\x07<b>"));
    CU_ASSERT(msg && !strchr(msg, '\x07'));
    /* and ocsp.not_stapled, and revocation.none: the test leaf names no CRL or responder. */
    CU_ASSERT_PTR_NOT_NULL(cm_finding(t, "revocation.none", "info", 0));
    EXPECT_INT(json_array_size(json_object_get(t, "findings")), 3);

    /* The id certmon asked for is the one computed independently. */
    EXPECT_STR(cm_json_str(t, "ari.cert_id"), expected_id);
    snprintf(needle, sizeof(needle),
             "\"mode\": \"past\", \"kind\": \"renewal-info\", \"id\": \"%s\"", expected_id);
    EXPECT_INT(log_count(needle), 1);
    char want_url[400];
    snprintf(want_url, sizeof(want_url), "%s/%s", url("past", "renewal-info"), expected_id);
    EXPECT_STR(cm_json_str(t, "ari.url"), want_url);
    EXPECT_INT(json_integer_value(cm_json_get(t, "ari.retry_after")), 3600);
    CU_ASSERT(json_is_null(cm_json_get(t, "ari.error")));
    EXPECT_STR(cm_json_str(t, "ari.explanation_url"), "https://ca.example/incident?x=1\x07<b>");
    const char *start = cm_json_str(t, "ari.window_start"), *end = cm_json_str(t, "ari.window_end");
    CU_ASSERT(start && end && strlen(start) == 20 && strlen(end) == 20 && strcmp(start, end) < 0);
    json_decref(arr);
}

static void test_window_open_and_future(void)
{
    int rc;
    json_t *arr = check(&rc, NULL, "--ari-url", url("open", "renewal-info"));
    json_t *t = cm_json_only(arr), *f;

    /* Inside the window: info, the status stays ok. */
    EXPECT_STATUS(rc, t, "ok");
    f = cm_finding(t, "cert.renewal_window_open", "info", 0);
    CU_ASSERT_PTR_NOT_NULL(f);
    CU_ASSERT_PTR_NULL(cm_finding(t, "cert.renewal_window_passed", NULL, -1));
    json_decref(arr);

    arr = check(&rc, NULL, "--ari-url", url("future", "renewal-info"));
    t = cm_json_only(arr);
    EXPECT_STATUS(rc, t, "ok");
    CU_ASSERT_PTR_NULL(cm_finding(t, "cert.renewal_window_open", NULL, -1));
    CU_ASSERT_PTR_NULL(cm_finding(t, "cert.renewal_window_passed", NULL, -1));
    CU_ASSERT_PTR_NULL(cm_finding(t, "ari.unavailable", NULL, -1));
    CU_ASSERT(cm_json_str(t, "ari.window_start") != NULL);
    json_decref(arr);

    /* Without the option: no ari object, no request. */
    int before = log_count("renewal-info");
    arr = cm_th_check_json(&rc, NULL, "--quick", "--ca", cm_th_path(dir, "ca.pem"), "--sni",
                           "localhost", tls_target, NULL);
    t = cm_json_only(arr);
    EXPECT_STATUS(rc, t, "ok");
    CU_ASSERT(json_is_null(json_object_get(t, "ari")));
    EXPECT_INT(log_count("renewal-info"), before);
    json_decref(arr);
}

static void test_bad_answers(void)
{
    static const struct {
        const char *mode, *why;
    } cases[] = {
        {"badjson", "the renewal information is not JSON"},
        {"backwards", "suggestedWindow.start is after its end"},
        {"500", "HTTP 500"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc;
        json_t *arr = check(&rc, NULL, "--ari-url", url(cases[i].mode, "renewal-info"));
        json_t *t = cm_json_only(arr), *f;

        /* No window: an info finding that says why; the certificate's status is unchanged. */
        EXPECT_STATUS(rc, t, "ok");
        f = cm_finding(t, "ari.unavailable", "info", 0);
        CU_ASSERT_PTR_NOT_NULL(f);
        const char *msg = f ? cm_json_str(f, "message") : NULL;
        if (!msg || !strstr(msg, cases[i].why))
            fprintf(stderr, "\n  %s: message '%s'\n", cases[i].mode, msg ? msg : "(none)");
        CU_ASSERT(msg && strstr(msg, cases[i].why));
        const char *err = cm_json_str(t, "ari.error");
        CU_ASSERT(err && strstr(err, cases[i].why));
        CU_ASSERT(json_is_null(cm_json_get(t, "ari.window_start")));
        json_decref(arr);
    }
}

static void test_tarpit_deadline(void)
{
    int rc;
    double took;
    json_t *arr = check(&rc, &took, "--ari-url", url("tarpit", "renewal-info"));
    json_t *t = cm_json_only(arr);

    /* The lookup shares the probe's 3 s deadline: the check ends on time. */
    CU_ASSERT(took < 3.0 + 1.5 * CERTMON_SLOWDOWN);
    EXPECT_STATUS(rc, t, "ok");
    const char *err = cm_json_str(t, "ari.error");
    CU_ASSERT(err && strstr(err, "timed out"));
    CU_ASSERT_PTR_NOT_NULL(cm_finding(t, "ari.unavailable", "info", 0));
    json_decref(arr);
}

static void test_directory(void)
{
    int rc;
    int dirs = log_count("\"/past/directory\""), infos = log_count("\"mode\": \"past\"");
    /* Two targets (the same endpoint twice): one directory fetch, one renewal request. */
    json_t *arr = cm_th_check_json(&rc, NULL, "--quick", "--ca", cm_th_path(dir, "ca.pem"), "--sni",
                                   "localhost", "--acme-directory", url("past", "directory"),
                                   tls_target, tls_target, NULL);

    EXPECT_INT(json_array_size(arr), 2);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *t = json_array_get(arr, i);
        EXPECT_STATUS(rc, t, "warning");
        CU_ASSERT_PTR_NOT_NULL(cm_finding(t, "cert.renewal_window_passed", "warning", 0));
        EXPECT_STR(cm_json_str(t, "ari.cert_id"), expected_id);
    }
    EXPECT_INT(log_count("\"/past/directory\"") - dirs, 1);
    EXPECT_INT(log_count("\"mode\": \"past\"") - infos, 2); /* directory + one renewal-info */
    json_decref(arr);

    /* A CA without ARI: its directory has no renewalInfo. */
    arr = check(&rc, NULL, "--acme-directory", url("noari", "directory"));
    json_t *t = cm_json_only(arr);
    EXPECT_STATUS(rc, t, "ok");
    json_t *f = cm_finding(t, "ari.unavailable", "info", 0);
    CU_ASSERT(f && strstr(cm_json_str(f, "message"), "the ACME directory has no renewalInfo"));
    json_decref(arr);
}

static void test_bad_options(void)
{
    char *out = NULL;
    int rc = cm_th_check_merged(&out, "--ari-url", "ftp://ca.example/ri", tls_target, NULL);

    EXPECT_INT(rc, 3);
    CU_ASSERT(out && strstr(out, "--ari-url must be an http:// or https:// URL"));
    free(out);
    rc = cm_th_check_merged(&out, "--ari-url", "http://a/ri", "--acme-directory", "http://a/d",
                            tls_target, NULL);
    EXPECT_INT(rc, 3);
    CU_ASSERT(out && strstr(out, "exclude each other"));
    free(out);
}

/* ---- The daemon ---- */

static json_t *state_report(const char *state, const char *name)
{
    json_t *st = cm_th_state_json(state), *e;
    size_t i;

    json_array_foreach(json_object_get(st, "targets"), i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        if (n && !strcmp(n, name)) {
            json_t *r = json_incref(json_object_get(e, "report"));
            json_decref(st);
            return r;
        }
    }
    json_decref(st);
    return NULL;
}

/* Lines of the daemon's log with "target=NAME status=" (one per result recorded). */
static int results_logged(const char *log, const char *name)
{
    FILE *fp = fopen(log, "r");
    char line[4096], needle[128];
    int n = 0;

    snprintf(needle, sizeof(needle), "sub=probe target=%s status=", name);
    if (!fp)
        return 0;
    while (fgets(line, sizeof(line), fp))
        n += strstr(line, needle) != NULL;
    fclose(fp);
    return n;
}

static void test_daemon(void)
{
    const char *conf = cm_th_path(dir, "d.conf"), *state = cm_th_path(dir, "d-state.json"),
               *log = cm_th_path(dir, "d.log");
    json_t *r = NULL;
    pid_t pid;

    /* One probe at a time: a run that waited for the tarpit would hold up every other. */
    cm_th_write_config(
        conf,
        "global = { interval = \"1h\"; timeout = \"4s\"; startup_spread = \"0\";\n"
        "           concurrency = 1; state_file = \"%s\"; };\n"
        "log = { level = \"debug\"; };\n"
        "targets = (\n"
        "  { host = \"127.0.0.1\"; port = %d; sni = \"localhost\"; name = \"past\";\n"
        "    ca_file = \"%s\"; posture = false; ari_url = \"%s\"; },\n"
        "  { host = \"127.0.0.1\"; port = %d; sni = \"localhost\"; name = \"slow\";\n"
        "    ca_file = \"%s\"; posture = false; acme_directory = \"%s\"; },\n"
        "  { host = \"127.0.0.1\"; port = %d; sni = \"localhost\"; name = \"plain\";\n"
        "    ca_file = \"%s\"; posture = false; interval = \"1s\"; }\n"
        ");\n",
        state, tls_port, cm_th_path(dir, "ca.pem"), url("past", "renewal-info"), tls_port,
        cm_th_path(dir, "ca.pem"), url("tarpit", "directory"), tls_port, cm_th_path(dir, "ca.pem"));
    char *argv[] = {(char *)cm_th_certmon(), "run", "-c", (char *)conf, NULL};
    unlink(log);
    pid = cm_th_spawn(argv, log);
    CU_ASSERT_FATAL(pid > 0);
    double t0 = cm_th_now();

    /* The tarpit holds the renewal request of "slow" for its 4 s budget. Meanwhile "plain"
     * keeps being probed every second, although only one probe may run at a time. */
    CU_ASSERT(cm_th_wait_text(log, "sub=ari url=http://127.0.0.1", 10 * CERTMON_SLOWDOWN));
    double t_slow = cm_th_now() - t0;
    int plain = results_logged(log, "plain");
    CU_ASSERT(t_slow >= 3.5);
    if (plain < 3)
        fprintf(stderr, "\n  plain probed %d times in %.1f s\n", plain, t_slow);
    CU_ASSERT(plain >= 3);

    /* "past": the window fetched behind the first run makes it run again at once, and its
     * report carries the finding and the ari object. */
    double end = cm_th_now() + 10 * CERTMON_SLOWDOWN;
    while (cm_th_now() < end) {
        json_decref(r);
        r = state_report(state, "past");
        if (r && cm_finding(r, "cert.renewal_window_passed", "warning", 0))
            break;
        usleep(200000);
    }
    CU_ASSERT_FATAL(r != NULL);
    json_t *f = cm_finding(r, "cert.renewal_window_passed", "warning", 0);
    CU_ASSERT_PTR_NOT_NULL(f);
    CU_ASSERT(f && strstr(cm_json_str(f, "message"), "\\x07<b>"));
    EXPECT_STR(cm_json_str(r, "ari.cert_id"), expected_id);
    EXPECT_STR(cm_json_str(r, "status"), "warning");
    json_decref(r);
    r = NULL;

    /* "slow": the timeout is recorded as the reason, once its rerun is in the state. */
    end = cm_th_now() + 10 * CERTMON_SLOWDOWN;
    while (cm_th_now() < end) {
        json_decref(r);
        r = state_report(state, "slow");
        if (r && cm_json_str(r, "ari.error"))
            break;
        usleep(200000);
    }
    CU_ASSERT_FATAL(r != NULL);
    const char *err = cm_json_str(r, "ari.error");
    CU_ASSERT(err && strstr(err, "timed out"));
    CU_ASSERT_PTR_NOT_NULL(cm_finding(r, "ari.unavailable", "info", 0));
    json_decref(r);

    /* One renewal request per certificate and source, however often the targets run. */
    char needle[400];
    snprintf(needle, sizeof(needle),
             "\"mode\": \"past\", \"kind\": \"renewal-info\", \"id\": \"%s\"", expected_id);
    int before = log_count(needle);
    usleep((useconds_t)(1500000 * CERTMON_SLOWDOWN));
    EXPECT_INT(log_count(needle), before);

    /* SIGTERM ends it promptly even with nothing in flight. */
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
}

static void test_daemon_shutdown_in_flight(void)
{
    const char *conf = cm_th_path(dir, "s.conf"), *state = cm_th_path(dir, "s-state.json"),
               *log = cm_th_path(dir, "s.log");
    double took;

    cm_th_write_config(
        conf,
        "global = { interval = \"1h\"; timeout = \"30s\"; startup_spread = \"0\";\n"
        "           state_file = \"%s\"; };\n"
        "log = { level = \"debug\"; };\n"
        "targets = (\n"
        "  { host = \"127.0.0.1\"; port = %d; sni = \"localhost\"; name = \"slow\";\n"
        "    ca_file = \"%s\"; posture = false; ari_url = \"%s\"; }\n"
        ");\n",
        state, tls_port, cm_th_path(dir, "ca.pem"), url("tarpit", "renewal-info"));
    char *argv[] = {(char *)cm_th_certmon(), "run", "-c", (char *)conf, NULL};
    unlink(log);
    pid_t pid = cm_th_spawn(argv, log);
    CU_ASSERT_FATAL(pid > 0);
    /* The first result is recorded while the renewal request hangs in the tarpit. */
    CU_ASSERT(cm_th_wait_text(log, "sub=probe target=slow status=", 10 * CERTMON_SLOWDOWN));
    usleep(300000);
    /* A request stuck for 30 s does not hold up the exit. */
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, &took), 0);
    CU_ASSERT(took < 2.0 * CERTMON_SLOWDOWN);
}

static CU_TestInfo tests[] = {
    {"check: window passed, id as computed independently", test_window_passed},
    {"check: window open, window ahead, not asked", test_window_open_and_future},
    {"check: bad JSON, start after end, HTTP 500", test_bad_answers},
    {"check: tarpit within the deadline", test_tarpit_deadline},
    {"check: ACME directory, shared, without renewalInfo", test_directory},
    {"check: bad options", test_bad_options},
    {"daemon: finding in the report, slow CA delays no probe", test_daemon},
    {"daemon: SIGTERM with a request in flight", test_daemon_shutdown_in_flight},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    return cm_test_main("integration.ari", tests, suite_init, suite_cleanup);
}
