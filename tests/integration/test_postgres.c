/* certmon check --starttls postgres against a real PostgreSQL server: the distribution's
 * binaries (Debian's postgresql package, under /usr/lib/postgresql/VERSION/bin), run by
 * tests/integration/pg_server.sh on a cluster made at test time in a temporary directory. Each
 * case (re)starts that cluster on a free port of 127.0.0.1 with the TLS configuration it needs
 * (a certificate of the PKI made by mkpki.sh, or ssl=off) and stops it again; the postmaster is
 * also remembered by PID, and killed by it when pg_server.sh cannot stop it. Without the server
 * binaries the suite fails, naming the package: they are a declared dependency.
 *
 * Not tested here: choosing postgres by the default port 5432, which may be taken on the test
 * host (integration.starttls covers that against a scripted peer when the port is free). */
#include "cmtest.h"

#include <errno.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

#define PG_BINARIES "/usr/lib/postgresql/*/bin"
#define PG_PACKAGE_HINT "install Debian's postgresql package (contrib/install-deps.sh installs it)"

static char dir[64];     /* the cluster; empty before the suite init made it */
static pid_t postmaster; /* the running server's, 0 when none runs */
static char target[64];  /* "localhost:PORT" of the running server */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* True when a directory holds initdb, pg_ctl and postgres, as pg_server.sh needs them. */
static bool has_server_binaries(const char *bindir)
{
    static const char *const names[] = {"initdb", "pg_ctl", "postgres"};
    char path[512];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", bindir, names[i]);
        if (access(path, X_OK) != 0)
            return false;
    }
    return true;
}

/* The same lookup as pg_server.sh: $PG_BINDIR, or /usr/lib/postgresql/VERSION/bin. */
static bool find_server_binaries(void)
{
    const char *env = getenv("PG_BINDIR");
    glob_t g;
    bool found = false;

    if (env && env[0])
        return has_server_binaries(env);
    if (glob(PG_BINARIES, GLOB_ONLYDIR, NULL, &g) != 0)
        return false;
    for (size_t i = 0; i < g.gl_pathc && !found; i++)
        found = has_server_binaries(g.gl_pathv[i]);
    globfree(&g);
    return found;
}

/* The postmaster's PID: the first line of DIR/postmaster.pid, or 0. */
static pid_t read_postmaster_pid(void)
{
    char path[128], line[32];
    FILE *fp;
    long pid = 0;

    snprintf(path, sizeof(path), "%s/postmaster.pid", dir);
    if (!(fp = fopen(path, "r")))
        return 0;
    if (fgets(line, sizeof(line), fp))
        pid = strtol(line, NULL, 10);
    fclose(fp);
    return pid > 0 ? (pid_t)pid : 0;
}

/* True while pid names a live (not zombie) PostgreSQL process: a PID that was reused by
 * something else is never signalled. */
static bool postgres_alive(pid_t pid)
{
    char path[64], buf[256];
    FILE *fp;
    size_t n;
    const char *paren;
    bool alive = false;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (!(fp = fopen(path, "r")))
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    /* "PID (COMM) STATE ..." */
    paren = strrchr(buf, ')');
    if (paren && paren[1] == ' ' && paren[2] != 'Z')
        alive = strncmp(buf + strcspn(buf, "(") + 1, "postgres", 8) == 0;
    return alive;
}

/* Waits (bounded) for the postmaster to end. */
static bool wait_gone(pid_t pid, double seconds)
{
    double end = now_s() + seconds * CERTMON_SLOWDOWN;

    while (postgres_alive(pid)) {
        if (now_s() > end)
            return false;
        usleep(20000);
    }
    return true;
}

/* The last resort when pg_server.sh could not stop the server: SIGQUIT (PostgreSQL's
 * immediate shutdown), then SIGKILL. */
static void kill_postmaster(void)
{
    pid_t pid = postmaster;

    postmaster = 0;
    if (pid <= 0 || !postgres_alive(pid))
        return;
    fprintf(stderr, "killing postmaster %d\n", (int)pid);
    if (kill(pid, SIGQUIT) == 0 && wait_gone(pid, 5))
        return;
    if (kill(pid, SIGKILL) != 0 && errno != ESRCH)
        fprintf(stderr, "cannot kill postmaster %d: %s\n", (int)pid, strerror(errno));
    else if (!wait_gone(pid, 5))
        fprintf(stderr, "postmaster %d survived SIGKILL\n", (int)pid);
}

/* Runs pg_server.sh CMD DIR [A1 [A2 A3]] (the first NULL ends them), bounded; what it says on
 * stderr reaches ours. Returns its exit status. */
static int pg_server(const char *cmd, const char *a1, const char *a2, const char *a3)
{
    char *argv[8] = {"/bin/sh", (char *)cm_th_script("pg_server.sh"), (char *)cmd, dir};
    char *out = NULL;
    int rc;

    argv[4] = (char *)a1; /* argv[7] stays NULL */
    argv[5] = (char *)a2;
    argv[6] = (char *)a3;
    rc = cm_th_run(argv, &out, (int)(120 * CERTMON_SLOWDOWN), NULL);
    if (out && out[0]) /* it prints nothing on success */
        fprintf(stderr, "pg_server.sh %s said: %.1000s\n", cmd, out);
    free(out);
    return rc;
}

/* Stops the running server, if any: pg_server.sh stop, and by PID when that fails. */
static bool server_stop(void)
{
    int rc;

    if (!dir[0])
        return true;
    if ((rc = pg_server("stop", NULL, NULL, NULL)) != 0) {
        fprintf(stderr, "pg_server.sh stop %s exited %d\n", dir, rc);
        if (!postmaster)
            postmaster = read_postmaster_pid();
        kill_postmaster();
        return false;
    }
    postmaster = 0;
    return true;
}

/* (Re)starts the server on a free port with ssl=on serving the PKI's cert and key, or with
 * ssl=off when cert is NULL. A port taken between the look-up and the start costs a retry. */
static bool server_start(const char *cert, const char *key)
{
    server_stop();
    for (int attempt = 0; attempt < 3; attempt++) {
        char port_s[16];
        int port = cm_th_free_port();
        int rc;

        if (port <= 0)
            continue;
        snprintf(port_s, sizeof(port_s), "%d", port);
        snprintf(target, sizeof(target), "localhost:%d", port);
        rc = cert ? pg_server("start", port_s, cm_th_pki(cert), cm_th_pki(key))
                  : pg_server("start", port_s, NULL, NULL);
        /* Remembered even after a failure: a postmaster that came up late is killed too. */
        postmaster = read_postmaster_pid();
        if (rc == 0 && postmaster > 0)
            return true;
        fprintf(stderr, "pg_server.sh start %s %s %s exited %d\n", dir, port_s,
                cert ? cert : "(ssl=off)", rc);
        server_stop();
    }
    return false;
}

/* When assertions failed since `before`, prints what certmon said and the server's log. */
static void explain(unsigned before, const char *what, json_t *arr)
{
    char path[128], *json;
    FILE *fp;

    if (CU_get_number_of_failures() == before)
        return;
    json = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
    fprintf(stderr, "\n--- %s: certmon said: %.3000s\n--- server log:\n", what,
            json ? json : "(no JSON)");
    free(json);
    snprintf(path, sizeof(path), "%s/server.log", dir);
    if ((fp = fopen(path, "r"))) {
        char line[512];

        while (fgets(line, sizeof(line), fp))
            fputs(line, stderr);
        fclose(fp);
    }
    fputs("---\n", stderr);
}

/* certmon check --json --ca root.pem --starttls postgres localhost:PORT */
#define CHECK(rc)                                                                                  \
    cm_th_check_json((rc), NULL, "--ca", cm_th_pki("root.pem"), "--starttls", "postgres", target,  \
                     NULL)

/* The chain of the PKI: leaf CN=localhost, then the intermediate (the root is not sent). */
static void expect_pki_chain(json_t *t)
{
    EXPECT_INT(json_array_size(cm_json_get(t, "chain")), 2);
    EXPECT_STR(cm_json_str(t, "chain.0.subject"), "CN=localhost");
    EXPECT_STR(cm_json_str(t, "chain.1.subject"), "CN=certmon Test Intermediate CA");
    CU_ASSERT(json_is_true(cm_json_get(t, "verification.trusted")));
    CU_ASSERT(json_is_true(cm_json_get(t, "verification.hostname_match")));
}

/* PostgreSQL 12 and later allow TLS 1.2 and 1.3 only (ssl_min_protocol_version). */
static void expect_modern_tls(json_t *t)
{
    const char *v = cm_json_str(t, "tls.version");

    CU_ASSERT(v && (!strcmp(v, "TLS1.3") || !strcmp(v, "TLS1.2")));
}

static void test_ssl_on(void)
{
    unsigned before = CU_get_number_of_failures();
    json_t *arr, *t;
    int rc;

    CU_ASSERT_FATAL(server_start("valid.chain.pem", "leaf.key"));
    arr = CHECK(&rc);
    t = cm_json_only(arr);
    EXPECT_STR(cm_json_str(t, "starttls"), "postgres");
    EXPECT_STR(cm_json_str(t, "status"), "ok");
    EXPECT_INT(rc, 0);
    CU_ASSERT(json_is_null(cm_json_get(t, "error")));
    expect_pki_chain(t);
    expect_modern_tls(t);
    CU_ASSERT(json_is_number(cm_json_get(t, "timing_ms.starttls")));
    CU_ASSERT(json_is_number(cm_json_get(t, "timing_ms.handshake")));
    explain(before, "ssl=on, valid leaf", arr);
    json_decref(arr);
    CU_ASSERT(server_stop());
}

static void test_ssl_on_expiring(void)
{
    unsigned before = CU_get_number_of_failures();
    json_t *arr, *t, *f;
    int rc;

    CU_ASSERT_FATAL(server_start("expiring20.chain.pem", "leaf.key"));
    arr = CHECK(&rc);
    t = cm_json_only(arr);
    EXPECT_STR(cm_json_str(t, "starttls"), "postgres");
    expect_pki_chain(t);
    expect_modern_tls(t);
    f = cm_finding(t, "cert.expiring", "warning", 0);
    CU_ASSERT(f != NULL);
    /* Made moments ago to expire in 20 days: 19 whole days left, or 20 at a day boundary. */
    CU_ASSERT(json_integer_value(cm_json_get(t, "chain.0.days_left")) >= 19);
    CU_ASSERT(json_integer_value(cm_json_get(t, "chain.0.days_left")) <= 20);
    EXPECT_STR(cm_json_str(t, "status"), "warning");
    EXPECT_INT(rc, 1);
    explain(before, "ssl=on, leaf expiring in 20 days", arr);
    json_decref(arr);
    CU_ASSERT(server_stop());
}

static void test_ssl_off(void)
{
    unsigned before = CU_get_number_of_failures();
    json_t *arr, *t;
    const char *msg;
    int rc;

    CU_ASSERT_FATAL(server_start(NULL, NULL));
    arr = CHECK(&rc);
    t = cm_json_only(arr);
    EXPECT_STR(cm_json_str(t, "starttls"), "postgres");
    EXPECT_STR(cm_json_str(t, "error.kind"), "starttls");
    EXPECT_STR(cm_json_str(t, "status"), "critical");
    EXPECT_INT(rc, 2);
    /* The server's answer to the SSLRequest was 'N'. */
    msg = cm_json_str(t, "error.message");
    CU_ASSERT(msg && strncmp(msg, "PostgreSQL ", 11) == 0);
    CU_ASSERT(msg && strstr(msg, "'N'") != NULL);
    CU_ASSERT(cm_finding(t, "probe.failed", "critical", -1) != NULL);
    EXPECT_INT(json_array_size(cm_json_get(t, "chain")), 0);
    CU_ASSERT(json_is_null(cm_json_get(t, "tls.version")));
    explain(before, "ssl=off", arr);
    json_decref(arr);
    CU_ASSERT(server_stop());
}

static int suite_init(void)
{
    if (!find_server_binaries()) {
        fprintf(stderr,
                "integration.postgres: no PostgreSQL server binaries (initdb, pg_ctl, "
                "postgres) under %s: %s\n",
                getenv("PG_BINDIR") ? getenv("PG_BINDIR") : PG_BINARIES, PG_PACKAGE_HINT);
        return -1;
    }
    if (!cm_th_pki_dir())
        return -1;
    /* Short and under /tmp: the server's socket lives here (at most 107 bytes of path), and
     * the server user must be able to reach it. */
    snprintf(dir, sizeof(dir), "/tmp/certmon-pg.XXXXXX");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "cannot make %s: %s\n", dir, strerror(errno));
        dir[0] = '\0';
        return -1;
    }
    return 0;
}

static int suite_cleanup(void)
{
    char *argv[] = {"rm", "-rf", dir, NULL};
    char *out = NULL;

    if (!dir[0])
        return 0;
    server_stop();
    if (cm_th_run(argv, &out, 60, NULL) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    free(out);
    dir[0] = '\0';
    return 0;
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"ssl=on, valid leaf: ok", test_ssl_on},
        {"ssl=on, leaf expiring in 20 days: cert.expiring", test_ssl_on_expiring},
        {"ssl=off: the server answers 'N'", test_ssl_off},
        CU_TEST_INFO_NULL,
    };
    signal(SIGPIPE, SIG_IGN);
    return cm_test_main("integration.postgres", tests, suite_init, suite_cleanup);
}
