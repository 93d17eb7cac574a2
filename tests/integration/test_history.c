/* Certificate history and change tracking, driven as an operator would: a daemon probing an
 * openssl s_server whose certificate is swapped (restarted on the same port with a renewed
 * certificate, then with one for other names), read back through `certmon history`,
 * /api/v1/targets/NAME/history, /api/v1/targets and /metrics, and again after a restart. The
 * PKI (a CA and three leaves) is made at test time with openssl. */
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

static void remove_tree(const char *path)
{
    char *argv[] = {"rm", "-rf", (char *)path, NULL};
    char *out = NULL;

    cm_th_run(argv, &out, 30, NULL);
    free(out);
}

/* A CA, and leaves signed by it: v1 (hist.test, 30 days), v2 (the same names, 60 days: a
 * renewal), v3 (hist.test and other.test, 90 days: a material change). */
static int suite_init(void)
{
    char cmd[4096], *out = NULL;

    snprintf(dir, sizeof(dir), "/tmp/certmon-history-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(cmd, sizeof(cmd),
             "set -e; cd '%s'; "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 "
             "-subj '/CN=History Test CA' -keyout ca.key -out ca.pem "
             "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign,cRLSign "
             "2>/dev/null; "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=hist.test "
             "-keyout leaf.key -out leaf.csr 2>/dev/null; "
             "for v in 1:30:DNS:hist.test 2:60:DNS:hist.test 3:90:DNS:hist.test,DNS:other.test; do "
             "  n=${v%%%%:*}; r=${v#*:}; days=${r%%%%:*}; san=${r#*:}; "
             "  printf 'subjectAltName=%%s\\nbasicConstraints=CA:FALSE\\n"
             "extendedKeyUsage=serverAuth\\n' \"$san\" > ext$n; "
             "  openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-days $days -extfile ext$n -out leaf$n.pem 2>/dev/null; "
             "done",
             dir);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    int rc = cm_th_run(argv, &out, 60, NULL);
    free(out);
    return rc == 0 ? 0 : -1;
}

static int suite_cleanup(void)
{
    remove_tree(dir);
    return 0;
}

static pid_t s_server(int port, const char *cert)
{
    char accept[64], c[512], k[512];
    char *argv[] = {"openssl", "s_server", "-accept", accept, "-cert", c, "-key", k,
                    "-www",    "-quiet",   NULL};
    pid_t pid;

    snprintf(accept, sizeof(accept), "127.0.0.1:%d", port);
    snprintf(c, sizeof(c), "%s/%s", dir, cert);
    snprintf(k, sizeof(k), "%s/leaf.key", dir);
    pid = cm_th_spawn(argv, NULL);
    if (pid > 0 && !cm_th_wait_port(port, 5000)) {
        cm_th_stop(pid);
        return -1;
    }
    return pid;
}

/* The SHA-256 of a certificate file, lowercase hex. */
static char *fingerprint(const char *cert)
{
    char cmd[1024], *out = NULL;
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};

    snprintf(cmd, sizeof(cmd),
             "openssl x509 -in '%s/%s' -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | "
             "tr A-F a-f | tr -d '\\n'",
             dir, cert);
    CU_ASSERT_EQUAL_FATAL(cm_th_run(argv, &out, 30, NULL), 0);
    return out;
}


static json_t *history_json(const char *conf, int *rc)
{
    char *out = NULL;
    char *argv[] = {(char *)cm_th_certmon(), "history", "-c", (char *)conf, "--json", "web", NULL};
    json_t *j;

    *rc = cm_th_run(argv, &out, 30, NULL);
    j = out ? json_loads(out, 0, NULL) : NULL;
    free(out);
    return j;
}

/* Waits until `certmon history --json` lists n rows. */
static json_t *wait_rows(const char *conf, size_t n, double timeout_s)
{
    double end = cm_th_now() + timeout_s * CERTMON_SLOWDOWN;
    int rc;

    do {
        json_t *j = history_json(conf, &rc);
        if (rc == 0 && json_array_size(j) == n)
            return j;
        json_decref(j);
        usleep(200000);
    } while (cm_th_now() < end);
    fprintf(stderr, "\n  the history did not reach %zu rows\n", n);
    return NULL;
}

/* The report of the one target from /api/v1/targets, or NULL. */
static json_t *web_report(int mport)
{
    int code;
    char *body = cm_th_http_get(mport, "/api/v1/targets", &code);
    json_t *a = body && code == 200 ? json_loads(body, 0, NULL) : NULL, *found = NULL;

    free(body);
    /* The configuration has one target. */
    if (json_array_size(a) == 1)
        found = json_incref(json_array_get(a, 0));
    json_decref(a);
    return found;
}

static void test_renewal_and_change(void)
{
    const char *conf = cm_th_path(dir, "certmon.conf"), *log = cm_th_path(dir, "daemon.log");
    char *argv[] = {(char *)cm_th_certmon(), "run", "-c", (char *)conf, NULL};
    char *fp1 = fingerprint("leaf1.pem"), *fp2 = fingerprint("leaf2.pem"),
         *fp3 = fingerprint("leaf3.pem");
    int port = cm_th_free_port(), mport = cm_th_free_port(), code, rc;
    char *body, *out = NULL, want[512];
    pid_t srv, daemon;
    json_t *rows, *rep, *f;

    cm_th_write_config(conf,
                       "global = { interval = \"1s\"; timeout = \"5s\"; startup_spread = \"0s\";\n"
                       "           retry_interval = \"1s\"; posture_interval = \"off\";\n"
                       "           state_file = \"%s/certmon.db\"; change_window = \"1h\"; };\n"
                       "log = { level = \"debug\"; };\n"
                       "metrics = { listen = \"127.0.0.1:%d\"; };\n"
                       "targets = ( { host = \"127.0.0.1\"; port = %d; name = \"web\";\n"
                       "              sni = \"hist.test\"; ca_file = \"%s/ca.pem\"; } );\n",
                       dir, mport, port, dir);
    CU_ASSERT_FATAL((srv = s_server(port, "leaf1.pem")) > 0);
    unlink(log);
    CU_ASSERT_FATAL((daemon = cm_th_spawn(argv, log)) > 0);

    /* v1: one row. */
    rows = wait_rows(conf, 1, 15);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rows);
    EXPECT_STR(cm_json_str(json_array_get(rows, 0), "sha256"), fp1);
    EXPECT_STR(cm_json_str(json_array_get(rows, 0), "subject"), "CN=hist.test");
    EXPECT_STR(cm_json_str(json_array_get(rows, 0), "issuer"), "CN=History Test CA");
    EXPECT_STR(cm_json_str(json_array_get(rows, 0), "key_type"), "EC");
    json_decref(rows);

    /* v2 on the same port: a renewal, logged and counted, no finding. */
    cm_th_stop(srv);
    CU_ASSERT_FATAL((srv = s_server(port, "leaf2.pem")) > 0);
    CU_ASSERT(cm_th_wait_text(log, "certificate renewed, now valid until", 15 * CERTMON_SLOWDOWN));
    rows = wait_rows(conf, 2, 15);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rows);
    EXPECT_STR(cm_json_str(json_array_get(rows, 0), "sha256"), fp2);
    EXPECT_STR(cm_json_str(json_array_get(rows, 1), "sha256"), fp1);
    json_decref(rows);
    sleep(2);
    rep = web_report(mport);
    CU_ASSERT_PTR_NOT_NULL(rep);
    CU_ASSERT_PTR_NULL(cm_finding(rep, "cert.changed", NULL, -1));
    json_decref(rep);

    /* v3, with another name: a material change, raised as cert.changed. */
    cm_th_stop(srv);
    CU_ASSERT_FATAL((srv = s_server(port, "leaf3.pem")) > 0);
    CU_ASSERT(cm_th_wait_text(log, "certificate changed: SANs added: other.test",
                              15 * CERTMON_SLOWDOWN));
    rows = wait_rows(conf, 3, 15);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rows);
    EXPECT_STR(cm_json_str(json_array_get(rows, 0), "sha256"), fp3);
    EXPECT_INT(json_array_size(cm_json_get(json_array_get(rows, 0), "sans")), 2);
    json_decref(rows);
    {
        double end = cm_th_now() + 10 * CERTMON_SLOWDOWN;
        f = NULL;
        rep = NULL;
        while (!f && cm_th_now() < end) {
            json_decref(rep);
            rep = web_report(mport);
            f = cm_finding(rep, "cert.changed", "warning", 0);
            if (!f)
                usleep(200000);
        }
    }
    CU_ASSERT_PTR_NOT_NULL(f);
    if (f) {
        const char *msg = json_string_value(json_object_get(f, "message"));
        CU_ASSERT_PTR_NOT_NULL(msg);
        CU_ASSERT_PTR_NOT_NULL(msg ? strstr(msg, "SANs added: other.test") : NULL);
        snprintf(want, sizeof(want), "old sha256 %s, new sha256 %s", fp2, fp3);
        CU_ASSERT_PTR_NOT_NULL(msg ? strstr(msg, want) : NULL);
    }
    json_decref(rep);

    /* /metrics counts both kinds. */
    body = cm_th_http_get(mport, "/metrics", &code);
    EXPECT_INT(code, 200);
    CU_ASSERT_PTR_NOT_NULL(body ? strstr(body, "certmon_cert_changes_total{target=\"web\","
                                               "kind=\"renewal\"} 1\n")
                                : NULL);
    CU_ASSERT_PTR_NOT_NULL(body ? strstr(body, "certmon_cert_changes_total{target=\"web\","
                                               "kind=\"change\"} 1\n")
                                : NULL);
    free(body);

    /* The API: newest first; an unknown target is 404. */
    body = cm_th_http_get(mport, "/api/v1/targets/web/history", &code);
    EXPECT_INT(code, 200);
    rows = body ? json_loads(body, 0, NULL) : NULL;
    EXPECT_INT(json_array_size(rows), 3);
    EXPECT_STR(cm_json_str(json_array_get(rows, 0), "sha256"), fp3);
    EXPECT_STR(cm_json_str(json_array_get(rows, 2), "sha256"), fp1);
    json_decref(rows);
    free(body);
    body = cm_th_http_get(mport, "/api/v1/targets/nosuch/history", &code);
    EXPECT_INT(code, 404);
    free(body);

    /* The history survives a restart, and so does the memory of the last leaf: v2 served
     * again while the daemon was down is told as a change (other.test is gone). */
    EXPECT_INT(cm_th_signal_wait(daemon, SIGTERM, 10 * CERTMON_SLOWDOWN, NULL), 0);
    cm_th_stop(srv);
    CU_ASSERT_FATAL((srv = s_server(port, "leaf2.pem")) > 0);
    unlink(log);
    CU_ASSERT_FATAL((daemon = cm_th_spawn(argv, log)) > 0);
    CU_ASSERT(cm_th_wait_text(log, "started", 15 * CERTMON_SLOWDOWN));
    CU_ASSERT(cm_th_wait_text(log, "certificate changed: SANs removed: other.test",
                              15 * CERTMON_SLOWDOWN));
    {
        char *targv[] = {(char *)cm_th_certmon(), "history", "-c", (char *)conf, "web", NULL};
        EXPECT_INT(cm_th_run(targv, &out, 30, NULL), 0);
        CU_ASSERT_PTR_NOT_NULL(out ? strstr(out, "FIRST SEEN") : NULL);
        CU_ASSERT_PTR_NOT_NULL(out ? strstr(out, "CN=hist.test") : NULL);
        CU_ASSERT_PTR_NOT_NULL(out ? strstr(out, "sans: hist.test, other.test") : NULL);
        snprintf(want, sizeof(want), "%.16s", fp1);
        CU_ASSERT_PTR_NOT_NULL(out ? strstr(out, want) : NULL);
        free(out);
        out = NULL;
        char *bargv[] = {(char *)cm_th_certmon(), "history", "-c", (char *)conf, "nosuch", NULL};
        EXPECT_INT(cm_th_run(bargv, &out, 30, NULL), 1);
        free(out);
    }
    rows = history_json(conf, &rc);
    EXPECT_INT(rc, 0);
    EXPECT_INT(json_array_size(rows), 3);
    json_decref(rows);
    EXPECT_INT(cm_th_signal_wait(daemon, SIGTERM, 10 * CERTMON_SLOWDOWN, NULL), 0);
    cm_th_stop(srv);
    free(fp1);
    free(fp2);
    free(fp3);
}

/* The report of target name from /api/v1/targets, or NULL. */
static json_t *named_report(int mport, const char *name)
{
    int code;
    char *body = cm_th_http_get(mport, "/api/v1/targets", &code);
    json_t *a = body && code == 200 ? json_loads(body, 0, NULL) : NULL, *t, *found = NULL;
    size_t i;

    free(body);
    json_array_foreach(a, i, t)
    {
        const char *n = json_string_value(json_object_get(t, "target"));
        if (n && !strcmp(n, name))
            found = json_incref(t);
    }
    json_decref(a);
    return found;
}

/* pin_sha256: a pinned key survives the renewal (the leaves share their key); a pinned
 * certificate does not. */
static void test_pins(void)
{
    const char *conf = cm_th_path(dir, "pins.conf"), *log = cm_th_path(dir, "pins.log");
    char *argv[] = {(char *)cm_th_certmon(), "run", "-c", (char *)conf, NULL};
    char *fp1 = fingerprint("leaf1.pem"), *spki = NULL, cmd[1024];
    char *sargv[] = {"/bin/sh", "-c", cmd, NULL};
    int port = cm_th_free_port(), mport = cm_th_free_port();
    double end;
    pid_t srv, daemon;
    json_t *key = NULL, *leaf = NULL;

    snprintf(cmd, sizeof(cmd),
             "openssl x509 -in '%s/leaf2.pem' -noout -pubkey | openssl pkey -pubin -outform der "
             "| sha256sum | cut -c1-64 | tr -d '\\n'",
             dir);
    EXPECT_INT(cm_th_run(sargv, &spki, 30, NULL), 0);
    CU_ASSERT_FATAL(spki && strlen(spki) == 64);
    cm_th_write_config(conf,
                       "global = { interval = \"1s\"; timeout = \"5s\"; startup_spread = \"0s\";\n"
                       "           posture_interval = \"off\"; state_file = \"%s/pins.db\"; };\n"
                       "metrics = { listen = \"127.0.0.1:%d\"; };\n"
                       "targets = (\n"
                       "  { host = \"127.0.0.1\"; port = %d; name = \"pinkey\"; sni = \"hist.test\";\n"
                       "    ca_file = \"%s/ca.pem\"; pin_sha256 = [ \"%s\" ]; },\n"
                       "  { host = \"127.0.0.1\"; port = %d; name = \"pinleaf\"; sni = \"hist.test\";\n"
                       "    ca_file = \"%s/ca.pem\"; pin_sha256 = [ \"%s\" ]; } );\n",
                       dir, mport, port, dir, spki, port, dir, fp1);
    CU_ASSERT_FATAL((srv = s_server(port, "leaf2.pem")) > 0);
    unlink(log);
    CU_ASSERT_FATAL((daemon = cm_th_spawn(argv, log)) > 0);
    end = cm_th_now() + 15 * CERTMON_SLOWDOWN;
    while ((!key || !leaf) && cm_th_now() < end) {
        json_decref(key);
        json_decref(leaf);
        usleep(300000);
        key = named_report(mport, "pinkey");
        leaf = named_report(mport, "pinleaf");
    }
    CU_ASSERT_PTR_NOT_NULL(key);
    CU_ASSERT_PTR_NOT_NULL(leaf);
    CU_ASSERT_PTR_NULL(cm_finding(key, "cert.pin_mismatch", NULL, -1));
    CU_ASSERT_PTR_NOT_NULL(cm_finding(leaf, "cert.pin_mismatch", "critical", 0));
    EXPECT_STR(cm_json_str(leaf, "status"), "critical");
    json_decref(key);
    json_decref(leaf);
    EXPECT_INT(cm_th_signal_wait(daemon, SIGTERM, 10 * CERTMON_SLOWDOWN, NULL), 0);
    cm_th_stop(srv);
    free(fp1);
    free(spki);
}

static CU_TestInfo tests[] = {
    {"pin_sha256: a pinned key, a pinned certificate", test_pins},
    {"renewal and material change; history through restarts", test_renewal_and_change},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("history", tests, suite_init, suite_cleanup);
}
