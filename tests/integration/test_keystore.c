/* Keystores and key pairs as file targets, driven as an operator would: `certmon run` with
 * files entries for a PKCS#12 file (password from a password_file with a trailing newline), a
 * Java KeyStore made by keytool, and a directory of certificates with keys of the same stem,
 * one of which does not match. Read back through /api/v1/targets and /metrics; the password
 * must appear in neither, nor in the log. The PKI is made at test time with openssl. */
#include "cmtest.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

#define P12PW "p12 s3cret"

static char dir[256];

/* A CA and two leaves (ok.test, other.test) with their keys; store.p12 holds ok.test's key,
 * certificate and the CA; pairs/ holds good.pem + good.key and mis.pem + mis.key (other.test's
 * key beside ok.test's certificate); kt.jks a keytool key pair and the CA. */
static int suite_init(void)
{
    char cmd[4096], *out = NULL;
    int rc;

    snprintf(dir, sizeof(dir), "/tmp/certmon-keystore-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(cmd, sizeof(cmd),
             "set -e; cd '%s'; "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 "
             "-subj '/CN=Keystore Test CA' -keyout ca.key -out ca.pem "
             "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign,cRLSign "
             "2>/dev/null; "
             "for n in ok other; do "
             "  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=$n.test "
             "-keyout $n.key -out $n.csr 2>/dev/null; "
             "  printf 'subjectAltName=DNS:%%s.test\\nbasicConstraints=CA:FALSE\\n' $n >$n.ext; "
             "  openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 60 "
             "-extfile $n.ext -out $n.pem 2>/dev/null; "
             "done; "
             "openssl pkcs12 -export -in ok.pem -inkey ok.key -certfile ca.pem -name ok "
             "-out store.p12 -passout 'pass:" P12PW "'; "
             "printf '%%s\\n' '" P12PW "' >p12.pass; chmod 600 p12.pass; "
             "mkdir pairs; cp ok.pem pairs/good.pem; cp ok.key pairs/good.key; "
             "cp ok.pem pairs/mis.pem; cp other.key pairs/mis.key; "
             "keytool -genkeypair -alias server -keyalg EC -groupname secp256r1 "
             "-dname CN=jks.test -validity 60 -storetype JKS -keystore kt.jks "
             "-storepass changeit -keypass changeit >/dev/null 2>&1; "
             "keytool -importcert -noprompt -alias ca -file ca.pem -storetype JKS "
             "-keystore kt.jks -storepass changeit >/dev/null 2>&1",
             dir);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    rc = cm_th_run(argv, &out, 120, NULL);
    if (rc != 0)
        fprintf(stderr, "making the test files failed (exit %d): %s\n", rc, out ? out : "");
    free(out);
    return rc == 0 ? 0 : -1;
}

static int suite_cleanup(void)
{
    cm_th_remove_tree(dir);
    return 0;
}

/* The target named name in an /api/v1/targets answer, or NULL. */
static json_t *target_named(json_t *arr, const char *name)
{
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *t = cm_json_str(json_array_get(arr, i), "target");
        if (t && !strcmp(t, name))
            return json_array_get(arr, i);
    }
    return NULL;
}

/* Polls /api/v1/targets until it lists n targets that have been probed. */
static json_t *wait_targets(int mport, size_t n, double timeout_s)
{
    double end = cm_th_now() + timeout_s * CERTMON_SLOWDOWN;
    int code;

    do {
        char *body = cm_th_http_get(mport, "/api/v1/targets", &code);
        json_t *a = body && code == 200 ? json_loads(body, 0, NULL) : NULL;
        size_t probed = 0;
        free(body);
        for (size_t i = 0; i < json_array_size(a); i++)
            probed += json_is_string(cm_json_get(json_array_get(a, i), "status"));
        if (json_array_size(a) == n && probed == n)
            return a;
        json_decref(a);
        usleep(200000);
    } while (cm_th_now() < end);
    fprintf(stderr, "\n  /api/v1/targets did not list %zu probed targets\n", n);
    return NULL;
}

/* Starts `certmon run -c conf` (logging to log) and waits until /api/v1/targets on mport
 * lists n probed targets; returns them (the test fails when they do not come). */
static json_t *start_daemon(const char *conf, const char *log, int mport, size_t n, pid_t *daemon)
{
    char *argv[] = {(char *)cm_th_certmon(), "run", "-c", (char *)conf, NULL};
    json_t *a;

    unlink(log);
    CU_ASSERT_FATAL((*daemon = cm_th_spawn(argv, log)) > 0);
    a = wait_targets(mport, n, 30);
    if (!a)
        cm_th_stop(*daemon);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    return a;
}

static void test_daemon_keystores(void)
{
    const char *conf = cm_th_path(dir, "certmon.conf"), *log = cm_th_path(dir, "daemon.log");
    int mport = cm_th_free_port(), code;
    char name[512], *body, *text;
    json_t *a, *t;
    pid_t daemon;

    cm_th_write_config(conf,
                       "global = { interval = \"1h\"; startup_spread = \"0s\";\n"
                       "           posture_interval = \"off\"; revocation = \"off\";\n"
                       "           state_file = \"%s/certmon.db\"; };\n"
                       "log = { level = \"debug\"; };\n"
                       "metrics = { listen = \"127.0.0.1:%d\"; };\n"
                       "targets = ();\n"
                       "files = ( { path = \"store.p12\"; password_file = \"p12.pass\"; },\n"
                       "          { path = \"pairs\"; },\n"
                       "          { path = \"kt.jks\"; } );\n",
                       dir, mport);
    a = start_daemon(conf, log, mport, 4, &daemon);

    /* The PKCS#12 file: its chain, leaf first, like a PEM file's. */
    snprintf(name, sizeof(name), "file:%s/store.p12", dir);
    t = target_named(a, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    EXPECT_STR(cm_json_str(t, "status"), "ok");
    CU_ASSERT(json_is_null(cm_json_get(t, "error")));
    EXPECT_INT(json_array_size(cm_json_get(t, "chain")), 2);
    EXPECT_STR(cm_json_str(t, "chain.0.subject"), "CN=ok.test");
    EXPECT_STR(cm_json_str(t, "chain.1.subject"), "CN=Keystore Test CA");
    EXPECT_STR(cm_json_str(t, "keystore.format"), "pkcs12");
    EXPECT_STR(cm_json_str(t, "keystore.integrity"), "verified");
    EXPECT_INT(json_array_size(cm_json_get(t, "findings")), 0);

    /* The pairs: one match, one key.mismatch (critical, on the certificate). */
    snprintf(name, sizeof(name), "file:%s/pairs/good.pem", dir);
    t = target_named(a, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    EXPECT_STR(cm_json_str(t, "key.status"), "match");
    EXPECT_STR(cm_json_str(t, "key.type"), "EC");
    EXPECT_STR(cm_json_str(t, "key.spki_sha256"), cm_json_str(t, "chain.0.spki_sha256"));
    snprintf(name, sizeof(name), "file:%s/pairs/mis.pem", dir);
    t = target_named(a, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    EXPECT_STR(cm_json_str(t, "status"), "critical");
    EXPECT_STR(cm_json_str(t, "key.status"), "mismatch");
    snprintf(name, sizeof(name), "%s/pairs/mis.key", dir);
    EXPECT_STR(cm_json_str(t, "key.path"), name);
    CU_ASSERT_PTR_NOT_NULL(cm_finding(t, "key.mismatch", "critical", 0));
    /* Key files are no targets of their own. */
    snprintf(name, sizeof(name), "file:%s/pairs/mis.key", dir);
    CU_ASSERT_PTR_NULL(target_named(a, name));

    /* keytool's JKS: read without its password, the integrity not verified. */
    snprintf(name, sizeof(name), "file:%s/kt.jks", dir);
    t = target_named(a, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    EXPECT_INT(json_array_size(cm_json_get(t, "chain")), 2);
    EXPECT_STR(cm_json_str(t, "keystore.format"), "jks");
    EXPECT_STR(cm_json_str(t, "keystore.integrity"), "unverified");
    CU_ASSERT_PTR_NOT_NULL(cm_finding(t, "keystore.unverified", "info", -1));

    /* The password is in no answer, metric or log line. */
    text = json_dumps(a, 0);
    CU_ASSERT_PTR_NOT_NULL(text);
    CU_ASSERT_PTR_NULL(strstr(text ? text : "", P12PW));
    free(text);
    body = cm_th_http_get(mport, "/metrics", &code);
    EXPECT_INT(code, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(body ? body : "", "id=\"key.mismatch\",severity=\"critical\""));
    CU_ASSERT_PTR_NULL(strstr(body ? body : "", P12PW));
    free(body);
    json_decref(a);

    EXPECT_INT(cm_th_signal_wait(daemon, SIGTERM, 10 * CERTMON_SLOWDOWN, NULL), 0);
    text = cm_th_read_text(log);
    CU_ASSERT_PTR_NOT_NULL(text);
    CU_ASSERT_PTR_NULL(strstr(text ? text : "", P12PW));
    CU_ASSERT_PTR_NULL(strstr(text ? text : "", "readable by every user"));
    free(text);
}

/* A wrong password: the P12 target fails with the reason, the daemon carries on. */
static void test_daemon_wrong_password(void)
{
    const char *conf = cm_th_path(dir, "wrong.conf"), *log = cm_th_path(dir, "wrong.log");
    int mport = cm_th_free_port();
    char name[512], want[600];
    json_t *a, *t;
    pid_t daemon;

    cm_th_write_config(conf,
                       "global = { interval = \"1h\"; startup_spread = \"0s\";\n"
                       "           posture_interval = \"off\"; revocation = \"off\"; };\n"
                       "metrics = { listen = \"127.0.0.1:%d\"; };\n"
                       "targets = ();\n"
                       "files = ( { path = \"store.p12\"; password = \"n0t-it\"; } );\n",
                       mport);
    a = start_daemon(conf, log, mport, 1, &daemon);
    snprintf(name, sizeof(name), "file:%s/store.p12", dir);
    t = target_named(a, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    EXPECT_STR(cm_json_str(t, "status"), "critical");
    EXPECT_STR(cm_json_str(t, "error.kind"), "file");
    snprintf(want, sizeof(want), "%s/store.p12: cannot decrypt P12: wrong password", dir);
    EXPECT_STR(cm_json_str(t, "error.message"), want);
    CU_ASSERT_PTR_NOT_NULL(cm_finding(t, "probe.failed", "critical", -1));
    json_decref(a);
    EXPECT_INT(cm_th_signal_wait(daemon, SIGTERM, 10 * CERTMON_SLOWDOWN, NULL), 0);
}

static CU_TestInfo tests[] = {
    {"daemon: PKCS#12, JKS and key pairs", test_daemon_keystores},
    {"daemon: wrong P12 password", test_daemon_wrong_password},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("integration.keystore", tests, suite_init, suite_cleanup);
}
