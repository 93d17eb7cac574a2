/* Certificate history and change tracking, driven as an operator would: a daemon probing an
 * openssl s_server whose certificate is swapped (restarted on the same port with a renewed
 * certificate, then with one for other names), read back through `certmon history`,
 * /api/v1/targets/NAME/history, /api/v1/targets and /metrics, and again after a restart. The
 * PKI (a CA and three leaves) is made at test time with openssl. */
#include "cmtest.h"

#include <signal.h>
#include <stdarg.h>
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
 * renewal), v3 (hist.test and other.test, 90 days: a material change), all with leaf.key;
 * with key2.key: v4 (hist.test, 120 days: a renewal with a new key); with key3.key: rogue.pem
 * (hist.test, self-signed: another issuer). */
static int suite_init(void)
{
    int rc;

    snprintf(dir, sizeof(dir), "/tmp/certmon-history-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    rc = cm_th_sh(
        NULL,
        "set -e; cd '%s'; "
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 "
        "-subj '/CN=History Test CA' -keyout ca.key -out ca.pem "
        "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign,cRLSign "
        "2>/dev/null; "
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=hist.test "
        "-keyout leaf.key -out leaf.csr 2>/dev/null; "
        "for v in 1:30:DNS:hist.test 2:60:DNS:hist.test 3:90:DNS:hist.test,DNS:other.test; "
        "do "
        "  n=${v%%%%:*}; r=${v#*:}; days=${r%%%%:*}; san=${r#*:}; "
        "  printf 'subjectAltName=%%s\\nbasicConstraints=CA:FALSE\\n"
        "extendedKeyUsage=serverAuth\\n' \"$san\" > ext$n; "
        "  openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-days $days -extfile ext$n -out leaf$n.pem 2>/dev/null; "
        "done; "
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=hist.test "
        "-keyout key2.key -out leaf4.csr 2>/dev/null; "
        "openssl x509 -req -in leaf4.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 120 "
        "-extfile ext1 -out leaf4.pem 2>/dev/null; "
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
        "-keyout key3.key -subj /CN=hist.test -days 200 "
        "-addext subjectAltName=DNS:hist.test -out rogue.pem 2>/dev/null",
        dir);
    return rc == 0 ? 0 : -1;
}

static int suite_cleanup(void)
{
    remove_tree(dir);
    return 0;
}

/* openssl s_server on 127.0.0.1:port with cert and key from the suite's directory. */
static pid_t s_server_key(int port, const char *cert, const char *key)
{
    char accept[64], c[512], k[512];
    char *argv[] = {"openssl", "s_server", "-accept", accept, "-cert", c, "-key", k,
                    "-www",    "-quiet",   NULL};
    pid_t pid;

    snprintf(accept, sizeof(accept), "127.0.0.1:%d", port);
    snprintf(c, sizeof(c), "%s/%s", dir, cert);
    snprintf(k, sizeof(k), "%s/%s", dir, key);
    pid = cm_th_spawn(argv, NULL);
    if (pid > 0 && !cm_th_wait_port(port, 5000)) {
        cm_th_stop(pid);
        return -1;
    }
    return pid;
}

static pid_t s_server(int port, const char *cert)
{
    return s_server_key(port, cert, "leaf.key");
}

/* `certmon run -c conf` with its output in a fresh log (the old one removed first, so that
 * nothing a previous run wrote can satisfy a wait). Returns its pid, or -1. */
static pid_t run_daemon(const char *conf, const char *log)
{
    char *argv[] = {(char *)cm_th_certmon(), "run", "-c", (char *)conf, NULL};

    unlink(log);
    return cm_th_spawn(argv, log);
}

/* Writes the daemon configuration conf: the global settings the endpoint tests here share (a
 * probe and a retry every second, no posture pass), continued by fmt (printf): the test's own
 * global settings, the group's closing brace, the rest. */
static void __attribute__((format(printf, 2, 3))) write_conf(const char *conf, const char *fmt, ...)
{
    char *rest = NULL;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&rest, fmt, ap);
    va_end(ap);
    CU_ASSERT_FATAL(n >= 0);
    cm_th_write_config(conf,
                       "global = { interval = \"1s\"; timeout = \"5s\"; startup_spread = \"0s\";\n"
                       "           retry_interval = \"1s\"; posture_interval = \"off\";\n%s",
                       rest);
    free(rest);
}

/* The SHA-256 of a certificate file, lowercase hex. */
static char *fingerprint(const char *cert)
{
    char *out = NULL;

    CU_ASSERT_EQUAL_FATAL(
        cm_th_sh(&out,
                 "openssl x509 -in '%s/%s' -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | "
                 "tr A-F a-f | tr -d '\\n'",
                 dir, cert),
        0);
    return out;
}

/* `certmon history --json` of any target name (a file's "file:PATH"). */
static json_t *history_of(const char *conf, const char *name, int *rc)
{
    char *out = NULL;
    char *argv[] = {
        (char *)cm_th_certmon(), "history", "-c", (char *)conf, "--json", (char *)name, NULL};
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
        json_t *j = history_of(conf, "web", &rc);
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
    char *fp1 = fingerprint("leaf1.pem"), *fp2 = fingerprint("leaf2.pem"),
         *fp3 = fingerprint("leaf3.pem");
    int port = cm_th_free_port(), mport = cm_th_free_port(), code, rc;
    char *body, *out = NULL, want[512];
    pid_t srv, daemon;
    json_t *rows, *rep, *f;

    write_conf(conf,
               "           state_file = \"%s/certmon.db\"; change_window = \"1h\"; };\n"
               "log = { level = \"debug\"; };\n"
               "metrics = { listen = \"127.0.0.1:%d\"; };\n"
               "targets = ( { host = \"127.0.0.1\"; port = %d; name = \"web\";\n"
               "              sni = \"hist.test\"; ca_file = \"%s/ca.pem\"; } );\n",
               dir, mport, port, dir);
    CU_ASSERT_FATAL((srv = s_server(port, "leaf1.pem")) > 0);
    CU_ASSERT_FATAL((daemon = run_daemon(conf, log)) > 0);

    /* v1: one row. */
    rows = wait_rows(conf, 1, 15);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rows);
    EXPECT_STR(cm_json_str(json_array_get(rows, 0), "sha256"), fp1);
    EXPECT_STR(cm_json_str(json_array_get(rows, 0), "subject"), "CN=hist.test");
    EXPECT_STR(cm_json_str(json_array_get(rows, 0), "issuer"), "CN=History Test CA");
    EXPECT_STR(cm_json_str(json_array_get(rows, 0), "key_type"), "EC");
    /* Verified against the target's ca_file alone: private. */
    EXPECT_STR(cm_json_str(json_array_get(rows, 0), "trust"), "private");
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
    CU_ASSERT_FATAL((daemon = run_daemon(conf, log)) > 0);
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
    rows = history_of(conf, "web", &rc);
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
    char *fp1 = fingerprint("leaf1.pem"), *spki = NULL;
    int port = cm_th_free_port(), mport = cm_th_free_port();
    double end;
    pid_t srv, daemon;
    json_t *key = NULL, *leaf = NULL;

    EXPECT_INT(cm_th_sh(&spki,
                        "openssl x509 -in '%s/leaf2.pem' -noout -pubkey | openssl pkey -pubin"
                        " -outform der | sha256sum | cut -c1-64 | tr -d '\\n'",
                        dir),
               0);
    CU_ASSERT_FATAL(spki && strlen(spki) == 64);
    write_conf(conf,
               "           state_file = \"%s/pins.db\"; };\n"
               "metrics = { listen = \"127.0.0.1:%d\"; };\n"
               "targets = (\n"
               "  { host = \"127.0.0.1\"; port = %d; name = \"pinkey\"; sni = \"hist.test\";\n"
               "    ca_file = \"%s/ca.pem\"; pin_sha256 = [ \"%s\" ]; },\n"
               "  { host = \"127.0.0.1\"; port = %d; name = \"pinleaf\"; sni = \"hist.test\";\n"
               "    ca_file = \"%s/ca.pem\"; pin_sha256 = [ \"%s\" ]; } );\n",
               dir, mport, port, dir, spki, port, dir, fp1);
    CU_ASSERT_FATAL((srv = s_server(port, "leaf2.pem")) > 0);
    CU_ASSERT_FATAL((daemon = run_daemon(conf, log)) > 0);
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

/* Waits until the report of target name from /api/v1/targets has (want) or lacks (!want)
 * finding id; returns that report (the last one read when it never did), or NULL. */
static json_t *wait_finding(int mport, const char *name, const char *id, bool want,
                            double timeout_s)
{
    double end = cm_th_now() + timeout_s * CERTMON_SLOWDOWN;
    json_t *rep = NULL;

    for (;;) {
        json_decref(rep);
        rep = named_report(mport, name);
        if (rep && (cm_finding(rep, id, NULL, -1) != NULL) == want)
            return rep;
        if (cm_th_now() >= end)
            return rep;
        usleep(200000);
    }
}

/* Runs a statement on the database with the sqlite3 shell (what the docs tell an operator to
 * do). Returns its exit status. */
static int sqlite(const char *db, const char *sql)
{
    char *argv[] = {"sqlite3", (char *)db, (char *)sql, NULL}, *out = NULL;
    int rc = cm_th_run(argv, &out, 30, NULL);

    free(out);
    return rc;
}

/* pin = "tofu": the first leaf is pinned; the same key renewed and a renewal by the same issuer
 * with a new key move the pin; another issuer is cert.pin_mismatch, also after a restart (the
 * pin is in the database); deleting the pins row and reloading pins the next leaf. */
static void test_tofu(void)
{
    const char *conf = cm_th_path(dir, "tofu.conf"), *log = cm_th_path(dir, "tofu.log"),
               *db = cm_th_path(dir, "tofu.db");
    char *fp4 = fingerprint("leaf4.pem"), *fpr = fingerprint("rogue.pem"), want[256];
    int port = cm_th_free_port(), mport = cm_th_free_port();
    pid_t srv, daemon;
    json_t *rep, *f;

    write_conf(conf,
               "           state_file = \"%s\"; };\n"
               "log = { level = \"debug\"; };\n"
               "metrics = { listen = \"127.0.0.1:%d\"; };\n"
               "targets = ( { host = \"127.0.0.1\"; port = %d; name = \"tofu\";\n"
               "              sni = \"hist.test\"; ca_file = \"%s/ca.pem\";\n"
               "              pin = \"tofu\"; allow_self_signed = true; } );\n",
               db, mport, port, dir);
    CU_ASSERT_FATAL((srv = s_server(port, "leaf1.pem")) > 0);
    CU_ASSERT_FATAL((daemon = run_daemon(conf, log)) > 0);
    CU_ASSERT(cm_th_wait_text(log, "target=tofu pinned on first use", 15 * CERTMON_SLOWDOWN));

    /* The same key, renewed: the pin moves. */
    cm_th_stop(srv);
    CU_ASSERT_FATAL((srv = s_server(port, "leaf2.pem")) > 0);
    CU_ASSERT(cm_th_wait_text(log, "target=tofu pin moved (same key)", 15 * CERTMON_SLOWDOWN));
    /* A new key, by the same issuer, for the same names, later: the pin moves. */
    cm_th_stop(srv);
    CU_ASSERT_FATAL((srv = s_server_key(port, "leaf4.pem", "key2.key")) > 0);
    CU_ASSERT(cm_th_wait_text(log, "target=tofu pin moved (renewal by the same issuer)",
                              15 * CERTMON_SLOWDOWN));
    rep = wait_finding(mport, "tofu", "cert.pin_mismatch", false, 10);
    CU_ASSERT_PTR_NULL(cm_finding(rep, "cert.pin_mismatch", NULL, -1));
    json_decref(rep);

    /* Another issuer: critical, naming both fingerprints. */
    cm_th_stop(srv);
    CU_ASSERT_FATAL((srv = s_server_key(port, "rogue.pem", "key3.key")) > 0);
    rep = wait_finding(mport, "tofu", "cert.pin_mismatch", true, 15);
    f = cm_finding(rep, "cert.pin_mismatch", "critical", 0);
    CU_ASSERT_PTR_NOT_NULL(f);
    EXPECT_STR(cm_json_str(rep, "status"), "critical");
    if (f) {
        const char *msg = json_string_value(json_object_get(f, "message"));
        snprintf(want, sizeof(want), "the leaf certificate (sha256 %s,", fpr);
        CU_ASSERT_PTR_NOT_NULL(msg ? strstr(msg, want) : NULL);
        snprintf(want, sizeof(want), "pinned on first use on ");
        CU_ASSERT_PTR_NOT_NULL(msg ? strstr(msg, want) : NULL);
        snprintf(want, sizeof(want), "(sha256 %s,", fp4);
        CU_ASSERT_PTR_NOT_NULL(msg ? strstr(msg, want) : NULL);
    }
    json_decref(rep);

    /* The pin survives a restart: the rogue leaf is not pinned as a first leaf. */
    EXPECT_INT(cm_th_signal_wait(daemon, SIGTERM, 10 * CERTMON_SLOWDOWN, NULL), 0);
    CU_ASSERT_FATAL((daemon = run_daemon(conf, log)) > 0);
    CU_ASSERT(cm_th_wait_text(log, "started", 15 * CERTMON_SLOWDOWN));
    sleep(2);
    rep = wait_finding(mport, "tofu", "cert.pin_mismatch", true, 15);
    CU_ASSERT_PTR_NOT_NULL(cm_finding(rep, "cert.pin_mismatch", "critical", 0));
    json_decref(rep);
    {
        char *t = cm_th_read_text(log);
        CU_ASSERT_PTR_NULL(t ? strstr(t, "pinned on first use") : NULL);
        free(t);
    }

    /* Re-pinning, as docs/daemon.md says: delete the row, reload. */
    EXPECT_INT(sqlite(db, "DELETE FROM pins WHERE target = 'tofu'"), 0);
    kill(daemon, SIGHUP);
    CU_ASSERT(
        cm_th_wait_text(log, "target=tofu pin removed from the database", 15 * CERTMON_SLOWDOWN));
    CU_ASSERT(cm_th_wait_text(log, "target=tofu pinned on first use", 15 * CERTMON_SLOWDOWN));
    rep = wait_finding(mport, "tofu", "cert.pin_mismatch", false, 15);
    CU_ASSERT_PTR_NULL(cm_finding(rep, "cert.pin_mismatch", NULL, -1));
    json_decref(rep);
    EXPECT_INT(cm_th_signal_wait(daemon, SIGTERM, 10 * CERTMON_SLOWDOWN, NULL), 0);
    cm_th_stop(srv);
    free(fp4);
    free(fpr);
}

/* The first alert of target with finding id (and that status) in any request the receiver
 * got, or NULL; *body keeps the body it is in (decref it); *count (when not NULL) gets how many
 * such alerts all the requests hold. */
static json_t *rx_alert_n(const char *rx, const char *target, const char *id, const char *status,
                          json_t **body, size_t *count)
{
    json_t *r = cm_th_rx_requests(rx), *req, *a, *found = NULL;
    size_t i, k, n = 0;

    *body = NULL;
    json_array_foreach(r, i, req)
    {
        json_t *b = json_loads(cm_json_str(req, "body") ? cm_json_str(req, "body") : "", 0, NULL);
        json_array_foreach(json_object_get(b, "alerts"), k, a)
        {
            const char *t = cm_json_str(a, "target"), *f = cm_json_str(a, "finding"),
                       *st = cm_json_str(a, "status");
            if (!t || !f || !st || strcmp(t, target) != 0 || strcmp(f, id) != 0 ||
                strcmp(st, status) != 0)
                continue;
            if (!found) {
                found = a;
                *body = json_incref(b);
            }
            n++;
        }
        json_decref(b);
    }
    json_decref(r);
    if (count)
        *count = n;
    return found;
}

static json_t *rx_alert(const char *rx, const char *target, const char *id, const char *status,
                        json_t **body)
{
    return rx_alert_n(rx, target, id, status, body, NULL);
}

/* Waits (at most timeout_s) for rx_alert to find one. */
static json_t *wait_rx_alert(const char *rx, const char *target, const char *id, const char *status,
                             json_t **body, double timeout_s)
{
    double end = cm_th_now() + timeout_s * CERTMON_SLOWDOWN;
    json_t *a;

    while (!(a = rx_alert(rx, target, id, status, body)) && cm_th_now() < end)
        usleep(200000);
    return a;
}

/* A certificate's notAfter as RFC 3339 (UTC), as certmon prints it. */
static char *not_after(const char *cert)
{
    char *out = NULL;

    CU_ASSERT_EQUAL_FATAL(
        cm_th_sh(&out,
                 "date -u -d \"$(openssl x509 -in '%s/%s' -noout -enddate | sed 's/.*=//')\" "
                 "+%%Y-%%m-%%dT%%H:%%M:%%SZ | tr -d '\\n'",
                 dir, cert),
        0);
    return out;
}

/* The expiry alerts of the webhook notifier, as an operator reads them from the state
 * database: a line "TARGET FIRED" per alert (FIRED 1 once it fired), by target. */
#define EXPIRY_ROWS                                                                                \
    "SELECT target || ' ' || (fired_at IS NOT NULL) FROM current_alerts WHERE notifier = 'hook'"   \
    " AND finding = 'cert.expiring' ORDER BY target"

/* A renewal resolves the leaf's expiry alert, saying "renewed, now valid until ..."; with
 * notify_renewals the renewal itself goes to the notifiers (cert.renewed, info), through the
 * same receiver; a target without it sends no such notice. The renewal comes after an outage
 * (the server stopped, the probes refused): a probe that got no certificate tells nothing
 * about the certificate, so the expiry alerts stay firing through it, unresolved, and the
 * renewal resolves them; probe.failed fires meanwhile, and resolves with the renewal. */
static void test_renewal_notifications(void)
{
    const char *conf = cm_th_path(dir, "renew.conf"), *log = cm_th_path(dir, "renew.log"),
               *rx = cm_th_path(dir, "renew-rx.jsonl");
    char *fp2 = fingerprint("leaf2.pem"), *until = not_after("leaf2.pem"), want[512], db[300];
    int port = cm_th_free_port(), rport = cm_th_free_port();
    pid_t srv, daemon, prx;
    json_t *a, *body;
    const char *msg;
    char *rows;
    size_t n;

    unlink(rx);
    CU_ASSERT_FATAL((prx = cm_th_rx_start(rport, rx, "--responses", "200", NULL)) > 0);
    /* leaf1 (30 days) is expiring under these thresholds, leaf2 (60 days) is not. */
    write_conf(conf,
               "           state_file = \"%s/renew.db\"; warn_days = 45;\n"
               "           warn_lifetime_pct = 100; notify_renewals = false; };\n"
               "targets = (\n"
               "  { host = \"127.0.0.1\"; port = %d; name = \"loud\"; sni = \"hist.test\";\n"
               "    ca_file = \"%s/ca.pem\"; notify_renewals = true; },\n"
               "  { host = \"127.0.0.1\"; port = %d; name = \"quiet\"; sni = \"hist.test\";\n"
               "    ca_file = \"%s/ca.pem\"; } );\n"
               "notifiers = ( { name = \"hook\"; type = \"webhook\";\n"
               "                url = \"http://127.0.0.1:%d/hook\"; group_wait = \"1s\"; } );\n",
               dir, port, dir, port, dir, rport);
    CU_ASSERT_FATAL((srv = s_server(port, "leaf1.pem")) > 0);
    CU_ASSERT_FATAL((daemon = run_daemon(conf, log)) > 0);
    a = wait_rx_alert(rx, "loud", "cert.expiring", "firing", &body, 15);
    CU_ASSERT_PTR_NOT_NULL(a);
    json_decref(body);
    a = wait_rx_alert(rx, "quiet", "cert.expiring", "firing", &body, 15);
    CU_ASSERT_PTR_NOT_NULL(a);
    json_decref(body);

    /* The outage: the probes are refused, probe.failed fires for both targets. */
    cm_th_stop(srv);
    a = wait_rx_alert(rx, "loud", "probe.failed", "firing", &body, 15);
    CU_ASSERT_PTR_NOT_NULL(a);
    msg = cm_json_str(a, "message");
    CU_ASSERT(msg && strstr(msg, "refused"));
    json_decref(body);
    a = wait_rx_alert(rx, "quiet", "probe.failed", "firing", &body, 15);
    CU_ASSERT_PTR_NOT_NULL(a);
    json_decref(body);
    /* Both probe.failed alerts are in the database (committed after the failed probes' other
     * changes): the expiry alerts are still there, fired, and no resolution was sent. */
    snprintf(db, sizeof(db), "%s/renew.db", dir);
    CU_ASSERT(cm_th_wait_sqlite3(db,
                                 "SELECT count(*) FROM current_alerts WHERE notifier = 'hook'"
                                 " AND finding = 'probe.failed' AND fired_at IS NOT NULL",
                                 "2", 5 * CERTMON_SLOWDOWN));
    rows = cm_th_sqlite3(db, EXPIRY_ROWS);
    EXPECT_STR(rows, "loud 1\nquiet 1");
    free(rows);
    CU_ASSERT_PTR_NULL(rx_alert(rx, "loud", "cert.expiring", "resolved", &body));
    json_decref(body);
    CU_ASSERT_PTR_NULL(rx_alert(rx, "quiet", "cert.expiring", "resolved", &body));
    json_decref(body);

    /* Renewed when it comes back. */
    CU_ASSERT_FATAL((srv = s_server(port, "leaf2.pem")) > 0);
    snprintf(want, sizeof(want), "renewed, now valid until %s; was: ", until);
    a = wait_rx_alert(rx, "loud", "cert.expiring", "resolved", &body, 15);
    CU_ASSERT_PTR_NOT_NULL(a);
    msg = cm_json_str(a, "message");
    CU_ASSERT(msg && !strncmp(msg, want, strlen(want)));
    json_decref(body);
    a = wait_rx_alert(rx, "quiet", "cert.expiring", "resolved", &body, 15);
    CU_ASSERT_PTR_NOT_NULL(a);
    msg = cm_json_str(a, "message");
    CU_ASSERT(msg && !strncmp(msg, want, strlen(want)));
    json_decref(body);
    a = wait_rx_alert(rx, "loud", "probe.failed", "resolved", &body, 15);
    CU_ASSERT_PTR_NOT_NULL(a);
    json_decref(body);
    /* Fired once each: the outage did not make them new. */
    rx_alert_n(rx, "loud", "cert.expiring", "firing", &body, &n);
    EXPECT_INT(n, 1);
    json_decref(body);
    rx_alert_n(rx, "quiet", "cert.expiring", "firing", &body, &n);
    EXPECT_INT(n, 1);
    json_decref(body);

    a = wait_rx_alert(rx, "loud", "cert.renewed", "firing", &body, 15);
    CU_ASSERT_PTR_NOT_NULL(a);
    EXPECT_STR(cm_json_str(a, "severity"), "info");
    snprintf(want, sizeof(want), "certificate of loud renewed: valid until %s, fingerprint %s",
             until, fp2);
    EXPECT_STR(cm_json_str(a, "message"), want);
    json_decref(body);
    /* Both renewals were seen; only one target asked for the notice. */
    CU_ASSERT(cm_th_wait_text(log, "target=quiet certificate renewed", 5 * CERTMON_SLOWDOWN));
    sleep(2);
    CU_ASSERT_PTR_NULL(rx_alert(rx, "quiet", "cert.renewed", "firing", &body));
    json_decref(body);

    EXPECT_INT(cm_th_signal_wait(daemon, SIGTERM, 10 * CERTMON_SLOWDOWN, NULL), 0);
    cm_th_stop(srv);
    cm_th_stop(prx);
    free(fp2);
    free(until);
}

/* Puts the suite's certificate cert at path, atomically (a scan never reads half a file). */
static void place(const char *cert, const char *path)
{
    EXPECT_INT(
        cm_th_sh(NULL, "cp '%s/%s' '%s.tmp' && mv '%s.tmp' '%s'", dir, cert, path, path, path), 0);
}

/* File targets are followed like endpoints: a certificate file found by a glob gets history
 * rows; replaced by a renewal it is a renewal event, by a certificate for other names it is
 * cert.changed. */
static void test_file_history(void)
{
    const char *conf = cm_th_path(dir, "files.conf"), *log = cm_th_path(dir, "files.log");
    char fdir[512], file[600], name[620], want[800], *fp1 = fingerprint("leaf1.pem"),
                                                     *fp3 = fingerprint("leaf3.pem");
    int mport = cm_th_free_port(), rc = -1;
    double end;
    pid_t daemon;
    json_t *rows = NULL, *rep;

    snprintf(fdir, sizeof(fdir), "%s/certs", dir);
    mkdir(fdir, 0700);
    snprintf(file, sizeof(file), "%s/served.pem", fdir);
    snprintf(name, sizeof(name), "file:%s", file);
    place("leaf1.pem", file);
    cm_th_write_config(conf,
                       "global = { interval = \"1s\"; startup_spread = \"0s\";\n"
                       "           state_file = \"%s/files.db\"; };\n"
                       "log = { level = \"debug\"; };\n"
                       "metrics = { listen = \"127.0.0.1:%d\"; };\n"
                       "files = ( { path = \"%s/*.pem\"; } );\n",
                       dir, mport, fdir);
    CU_ASSERT_FATAL((daemon = run_daemon(conf, log)) > 0);
    end = cm_th_now() + 15 * CERTMON_SLOWDOWN;
    do {
        json_decref(rows);
        usleep(300000);
        rows = history_of(conf, name, &rc);
    } while ((rc != 0 || json_array_size(rows) < 1) && cm_th_now() < end);
    EXPECT_INT(rc, 0);
    EXPECT_INT(json_array_size(rows), 1);
    EXPECT_STR(cm_json_str(json_array_get(rows, 0), "sha256"), fp1);
    CU_ASSERT(json_is_null(cm_json_get(json_array_get(rows, 0), "trust"))); /* not verified */
    json_decref(rows);

    place("leaf2.pem", file);
    snprintf(want, sizeof(want), "target=%s certificate renewed, now valid until", name);
    CU_ASSERT(cm_th_wait_text(log, want, 15 * CERTMON_SLOWDOWN));
    place("leaf3.pem", file);
    snprintf(want, sizeof(want), "target=%s certificate changed: SANs added: other.test", name);
    CU_ASSERT(cm_th_wait_text(log, want, 15 * CERTMON_SLOWDOWN));
    rep = wait_finding(mport, name, "cert.changed", true, 10);
    CU_ASSERT_PTR_NOT_NULL(cm_finding(rep, "cert.changed", "warning", 0));
    json_decref(rep);
    /* The row is committed within the store's commit delay after the log line. */
    rows = NULL;
    end = cm_th_now() + 5 * CERTMON_SLOWDOWN;
    do {
        json_decref(rows);
        rows = history_of(conf, name, &rc);
    } while (json_array_size(rows) < 3 && cm_th_now() < end && usleep(100000) == 0);
    EXPECT_INT(json_array_size(rows), 3);
    EXPECT_STR(cm_json_str(json_array_get(rows, 0), "sha256"), fp3);
    json_decref(rows);
    EXPECT_INT(cm_th_signal_wait(daemon, SIGTERM, 10 * CERTMON_SLOWDOWN, NULL), 0);
    free(fp1);
    free(fp3);
}

/* expect_file: the file holds a renewal the server does not serve yet: deploy.stale once
 * deploy_grace has passed, naming both certificates; served, it clears. A missing file is
 * deploy.file_unreadable, and the daemon goes on. */
static void test_expect_file(void)
{
    const char *conf = cm_th_path(dir, "deploy.conf"), *log = cm_th_path(dir, "deploy.log"),
               *file = cm_th_path(dir, "deploy.pem");
    char *fp1 = fingerprint("leaf1.pem"), *fp2 = fingerprint("leaf2.pem"), want[800];
    int port = cm_th_free_port(), mport = cm_th_free_port();
    pid_t srv, daemon;
    json_t *rep, *f;
    const char *msg;

    place("leaf2.pem", file);
    write_conf(conf,
               "           };\n"
               "metrics = { listen = \"127.0.0.1:%d\"; };\n"
               "targets = (\n"
               "  { host = \"127.0.0.1\"; port = %d; name = \"stale\"; sni = \"hist.test\";\n"
               "    ca_file = \"%s/ca.pem\"; expect_file = \"%s\"; deploy_grace = \"3s\"; },\n"
               "  { host = \"127.0.0.1\"; port = %d; name = \"missing\"; sni = \"hist.test\";\n"
               "    ca_file = \"%s/ca.pem\"; expect_file = \"%s/nosuch.pem\"; } );\n",
               mport, port, dir, file, port, dir, dir);
    CU_ASSERT_FATAL((srv = s_server(port, "leaf1.pem")) > 0);
    CU_ASSERT_FATAL((daemon = run_daemon(conf, log)) > 0);
    /* Not before the grace: the first results after the read have no finding. */
    rep = wait_finding(mport, "stale", "cert.expired", false, 10);
    CU_ASSERT_PTR_NULL(cm_finding(rep, "deploy.stale", NULL, -1));
    json_decref(rep);
    rep = wait_finding(mport, "stale", "deploy.stale", true, 15);
    f = cm_finding(rep, "deploy.stale", "warning", 0);
    CU_ASSERT_PTR_NOT_NULL(f);
    msg = f ? json_string_value(json_object_get(f, "message")) : NULL;
    snprintf(want, sizeof(want), "(%s holds sha256 %s, valid until ", file, fp2);
    CU_ASSERT_PTR_NOT_NULL(msg ? strstr(msg, want) : NULL);
    snprintf(want, sizeof(want), "but the server still serves sha256 %s, valid until ", fp1);
    CU_ASSERT_PTR_NOT_NULL(msg ? strstr(msg, want) : NULL);
    CU_ASSERT_PTR_NOT_NULL(msg ? strstr(msg, "renewed on disk on ") : NULL);
    EXPECT_STR(cm_json_str(rep, "status"), "warning");
    json_decref(rep);

    rep = wait_finding(mport, "missing", "deploy.file_unreadable", true, 15);
    f = cm_finding(rep, "deploy.file_unreadable", "warning", 0);
    CU_ASSERT_PTR_NOT_NULL(f);
    msg = f ? json_string_value(json_object_get(f, "message")) : NULL;
    snprintf(want, sizeof(want), "expect_file %s/nosuch.pem cannot be compared", dir);
    CU_ASSERT_PTR_NOT_NULL(msg ? strstr(msg, want) : NULL);
    json_decref(rep);

    /* The server reloaded with the new certificate: the finding goes. */
    cm_th_stop(srv);
    CU_ASSERT_FATAL((srv = s_server(port, "leaf2.pem")) > 0);
    rep = wait_finding(mport, "stale", "deploy.stale", false, 15);
    CU_ASSERT_PTR_NULL(cm_finding(rep, "deploy.stale", NULL, -1));
    json_decref(rep);
    EXPECT_INT(cm_th_signal_wait(daemon, SIGTERM, 10 * CERTMON_SLOWDOWN, NULL), 0);
    cm_th_stop(srv);
    free(fp1);
    free(fp2);
}

static CU_TestInfo tests[] = {
    {"expect_file: deploy.stale after the grace, deploy.file_unreadable", test_expect_file},
    {"file targets: history, renewal, cert.changed", test_file_history},
    {"renewal: expiry alerts resolved as renewed, notify_renewals", test_renewal_notifications},
    {"pin = tofu: pinned, moved by renewals, mismatch, restart, re-pin", test_tofu},
    {"pin_sha256: a pinned key, a pinned certificate", test_pins},
    {"renewal and material change; history through restarts", test_renewal_and_change},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("history", tests, suite_init, suite_cleanup);
}
