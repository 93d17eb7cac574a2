/* certmon check --starttls against scripted servers (tests/integration/starttls_peer.py) that
 * play the real plaintext transcript of each protocol, then TLS with the valid leaf of the PKI
 * made by mkpki.sh. Each case starts its own peer on a free port, for one connection; the
 * peer checks every byte the client sends and exits 1 when the client deviated, so each case
 * checks certmon's report and the peer's verdict. Peers are stopped by PID (at the latest in
 * the suite cleanup, and they end themselves after --lifetime). */
#include "cmtest.h"

#include "certmon/probe/starttls.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

/* ---- peers ---- */

struct peer {
    pid_t pid;
    int port;
    int status; /* exit status once reaped, -1 before or when it did not exit by itself */
    char log[512];
    char target[64]; /* "localhost:PORT" */
};

#define MAX_LIVE 16
static pid_t live[MAX_LIVE]; /* peers not yet reaped, for the suite cleanup */

static void track(pid_t pid, bool add)
{
    for (int i = 0; i < MAX_LIVE; i++) {
        if (add ? live[i] == 0 : live[i] == pid) {
            live[i] = add ? pid : 0;
            return;
        }
    }
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The whole file, NUL-terminated (malloc'd; empty when it cannot be read). */
static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    char *buf = calloc(1, 65537);
    size_t n = 0;

    if (fp && buf) {
        n = fread(buf, 1, 65536, fp);
        buf[n] = '\0';
    }
    if (fp)
        fclose(fp);
    return buf;
}

/* Reaps the peer if it exited, recording its status. Returns true when it is gone. */
static bool reaped(struct peer *pr)
{
    int st;

    if (pr->pid <= 0)
        return true;
    if (waitpid(pr->pid, &st, WNOHANG) != pr->pid)
        return false;
    track(pr->pid, false);
    pr->pid = 0;
    pr->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return true;
}

/* Starts a peer for proto in mode on port (a free one when 0) serving max_conns connections,
 * and waits (bounded) until it says "ready". Returns false, with the reason on stderr, when it
 * did not come up; the peer is then stopped. */
static bool peer_start(struct peer *pr, const char *proto, const char *mode, int port,
                       int max_conns)
{
    static unsigned serial;
    char port_s[16], conns_s[16], logname[96];
    double end;

    memset(pr, 0, sizeof(*pr));
    pr->status = -1;
    pr->port = port > 0 ? port : cm_th_free_port();
    snprintf(port_s, sizeof(port_s), "%d", pr->port);
    snprintf(conns_s, sizeof(conns_s), "%d", max_conns);
    snprintf(pr->target, sizeof(pr->target), "localhost:%d", pr->port);
    snprintf(logname, sizeof(logname), "peer-%u-%s-%s.log", serial++, proto, mode);
    snprintf(pr->log, sizeof(pr->log), "%s", cm_th_pki(logname));

    char *argv[] = {"/usr/bin/python3",
                    (char *)cm_th_script("starttls_peer.py"),
                    "--proto",
                    (char *)proto,
                    "--mode",
                    (char *)mode,
                    "--port",
                    port_s,
                    "--cert",
                    (char *)cm_th_pki("valid.chain.pem"),
                    "--key",
                    (char *)cm_th_pki("leaf.key"),
                    "--max-conns",
                    conns_s,
                    "--lifetime",
                    "120",
                    "--step-timeout",
                    "5",
                    "--ehlo-name",
                    CM_STARTTLS_CLIENT_NAME,
                    "--xmpp-host",
                    "localhost",
                    NULL};

    if (pr->port <= 0 || (pr->pid = cm_th_spawn(argv, pr->log)) <= 0) {
        fprintf(stderr, "cannot start the %s peer\n", proto);
        pr->pid = 0;
        return false;
    }
    track(pr->pid, true);
    /* Waiting for "ready" in its output, rather than connecting to the port, keeps probe
     * connections away from a peer that serves a fixed number of them. */
    end = now_s() + 10.0 * CERTMON_SLOWDOWN;
    while (now_s() < end) {
        char *log = slurp(pr->log);
        bool ready = log && strstr(log, "ready\n") != NULL;

        free(log);
        if (ready)
            return true;
        if (reaped(pr))
            break;
        usleep(20000);
    }
    {
        char *log = slurp(pr->log);

        fprintf(stderr, "the %s peer (%s) on port %d did not come up:\n%s\n", proto, mode, pr->port,
                log ? log : "");
        free(log);
    }
    if (pr->pid > 0) {
        cm_th_stop(pr->pid);
        track(pr->pid, false);
        pr->pid = 0;
    }
    return false;
}

/* Waits (bounded) for the peer to end by itself after its connections; stops it otherwise.
 * Returns its exit status, or -1 when it had to be stopped. */
static int peer_finish(struct peer *pr)
{
    double end = now_s() + 15.0 * CERTMON_SLOWDOWN;

    while (!reaped(pr) && now_s() < end)
        usleep(20000);
    if (pr->pid > 0) {
        fprintf(stderr, "peer on port %d did not end by itself; stopping it\n", pr->port);
        cm_th_stop(pr->pid);
        track(pr->pid, false);
        pr->pid = 0;
        pr->status = -1;
    }
    return pr->status;
}

/* When assertions failed since `before`, prints what certmon said and the peer's log. */
static void explain(unsigned before, const char *what, json_t *arr, const struct peer *pr)
{
    char *json, *log;

    if (CU_get_number_of_failures() == before)
        return;
    json = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
    log = pr ? slurp(pr->log) : NULL;
    fprintf(stderr, "\n--- %s: certmon said: %.2000s\n--- peer log:\n%s---\n", what,
            json ? json : "(no JSON)", log ? log : "");
    free(json);
    free(log);
}

static bool log_has(const struct peer *pr, const char *needle)
{
    char *log = slurp(pr->log);
    bool has = log && strstr(log, needle) != NULL;

    free(log);
    return has;
}

/* certmon check --json --quick --ca root.pem ARGS... The peers serve a fixed number of
 * connections in turn, so no posture pass (its extra handshakes are tested in
 * integration.posture, through a STARTTLS preamble too). */
#define CHECK(rc, elapsed, ...)                                                                    \
    cm_th_check_json((rc), (elapsed), "--quick", "--ca", cm_th_pki("root.pem"), __VA_ARGS__, NULL)

/* ---- the protocols ---- */

static const struct proto {
    const char *name;     /* as --starttls and the JSON spell it */
    const char *label;    /* as error messages spell it */
    const char *evidence; /* in the error message of a refusal: what the server said */
} protos[] = {
    {"smtp", "SMTP", "454 4.7.0 TLS not available"},
    {"imap", "IMAP", "NO [UNAVAILABLE] TLS not available"},
    {"pop3", "POP3", "-ERR TLS not available"},
    {"ftp", "FTP", "534 Request denied for policy reasons"},
    {"ldap", "LDAP", "resultCode 2"},
    {"postgres", "PostgreSQL", "'N'"},
    {"mysql", "MySQL", "CLIENT_SSL"},
    {"xmpp", "XMPP", "<failure"},
};

static const struct proto *find_proto(const char *name)
{
    for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++)
        if (!strcmp(protos[i].name, name))
            return &protos[i];
    CU_FAIL_FATAL("unknown protocol");
    return NULL;
}

static bool is_number(json_t *t, const char *path)
{
    return json_is_number(cm_json_get(t, path));
}

/* The server agrees: the preamble, then a full TLS probe as for direct TLS. */
static void run_ok(const char *name)
{
    unsigned before = CU_get_number_of_failures();
    struct peer pr;
    json_t *arr, *t;
    int rc;

    CU_ASSERT_FATAL(peer_start(&pr, name, "ok", 0, 1));
    arr = CHECK(&rc, NULL, "--starttls", name, pr.target);
    t = cm_json_only(arr);
    EXPECT_STR(cm_json_str(t, "starttls"), name);
    EXPECT_STR(cm_json_str(t, "status"), "ok");
    EXPECT_INT(rc, 0);
    CU_ASSERT(json_is_null(cm_json_get(t, "error")));
    EXPECT_INT(json_array_size(cm_json_get(t, "chain")), 2);
    EXPECT_STR(cm_json_str(t, "chain.0.subject"), "CN=localhost");
    EXPECT_STR(cm_json_str(t, "chain.1.subject"), "CN=certmon Test Intermediate CA");
    CU_ASSERT(json_is_true(cm_json_get(t, "verification.trusted")));
    CU_ASSERT(json_is_true(cm_json_get(t, "verification.hostname_match")));
    CU_ASSERT(cm_json_str(t, "tls.version") != NULL);
    CU_ASSERT(is_number(t, "timing_ms.starttls"));
    CU_ASSERT(json_number_value(cm_json_get(t, "timing_ms.starttls")) >= 0);
    CU_ASSERT(is_number(t, "timing_ms.handshake"));
    /* The peer saw the exact transcript, then a complete handshake. */
    EXPECT_INT(peer_finish(&pr), 0);
    CU_ASSERT(log_has(&pr, "TLS handshake done"));
    explain(before, name, arr, &pr);
    json_decref(arr);
}

/* The server declines in its protocol's own words: a starttls error that quotes them. */
static void run_refused(const char *name, const char *mode, const char *evidence)
{
    const struct proto *p = find_proto(name);
    unsigned before = CU_get_number_of_failures();
    struct peer pr;
    json_t *arr, *t;
    const char *msg;
    char prefix[32];
    int rc;

    CU_ASSERT_FATAL(peer_start(&pr, name, mode, 0, 1));
    arr = CHECK(&rc, NULL, "--starttls", name, pr.target);
    t = cm_json_only(arr);
    EXPECT_STR(cm_json_str(t, "starttls"), name);
    EXPECT_STR(cm_json_str(t, "error.kind"), "starttls");
    EXPECT_STR(cm_json_str(t, "status"), "critical");
    EXPECT_INT(rc, 2);
    msg = cm_json_str(t, "error.message");
    snprintf(prefix, sizeof(prefix), "%s ", p->label);
    CU_ASSERT(msg && strncmp(msg, prefix, strlen(prefix)) == 0);
    CU_ASSERT(msg && strstr(msg, evidence) != NULL);
    CU_ASSERT(cm_finding(t, "probe.failed", "critical", -1) != NULL);
    EXPECT_INT(json_array_size(cm_json_get(t, "chain")), 0);
    CU_ASSERT(json_is_null(cm_json_get(t, "tls.version")));
    /* certmon hung up without trying TLS (or anything else) after the refusal. */
    EXPECT_INT(peer_finish(&pr), 0);
    explain(before, name, arr, &pr);
    json_decref(arr);
}

#define OK_CASE(p)                                                                                 \
    static void test_ok_##p(void)                                                                  \
    {                                                                                              \
        run_ok(#p);                                                                                \
    }                                                                                              \
    static void test_refused_##p(void)                                                             \
    {                                                                                              \
        run_refused(#p, "refuse", find_proto(#p)->evidence);                                       \
    }

OK_CASE(smtp)
OK_CASE(imap)
OK_CASE(pop3)
OK_CASE(ftp)
OK_CASE(ldap)
OK_CASE(postgres)
OK_CASE(mysql)
OK_CASE(xmpp)

/* SMTP and XMPP servers that do not offer STARTTLS at all. */
static void test_not_offered(void)
{
    run_refused("smtp", "nostarttls", "does not offer STARTTLS");
    run_refused("xmpp", "nostarttls", "does not offer STARTTLS");
}

/* Something that is not the protocol at all answers the first step. */
static void test_garbage(void)
{
    static const char *const names[] = {"smtp", "imap"};

    for (size_t i = 0; i < 2; i++)
        run_refused(names[i], "garbage", "HTTP/1.1 400 Bad Request");
}

/* A server that accepts and never speaks: the deadline ends the preamble. */
static void test_silent_times_out(void)
{
    unsigned before = CU_get_number_of_failures();
    struct peer pr;
    json_t *arr, *t;
    double elapsed = 0;
    int rc;

    CU_ASSERT_FATAL(peer_start(&pr, "smtp", "silent", 0, 1));
    arr = CHECK(&rc, &elapsed, "--timeout", "1.5", "--starttls", "smtp", pr.target);
    t = cm_json_only(arr);
    EXPECT_STR(cm_json_str(t, "error.kind"), "timeout");
    EXPECT_STR(cm_json_str(t, "error.phase"), "starttls");
    EXPECT_STR(cm_json_str(t, "status"), "critical");
    EXPECT_INT(rc, 2);
    CU_ASSERT(json_number_value(cm_json_get(t, "timing_ms.total")) >= 1400);
    CU_ASSERT(json_is_null(cm_json_get(t, "timing_ms.handshake")));
    CU_ASSERT(elapsed < 1.5 + 1.5 * CERTMON_SLOWDOWN);
    EXPECT_INT(peer_finish(&pr), 0);
    explain(before, "silent smtp", arr, &pr);
    if (elapsed >= 1.5 + 1.5 * CERTMON_SLOWDOWN)
        fprintf(stderr, "silent smtp: certmon took %.2f s\n", elapsed);
    json_decref(arr);
}

static void test_bogus_protocol(void)
{
    char *out;
    int rc = cm_th_check_merged(&out, "--starttls", "bogus", "localhost:1", NULL);

    EXPECT_INT(rc, 3);
    CU_ASSERT(strstr(out, "bogus") != NULL);
    if (rc != 3 || !strstr(out, "bogus"))
        fprintf(stderr, "certmon check --starttls bogus -> %d: %.300s\n", rc, out);
    free(out);
}

/* --starttls none: TLS from the first byte, so a ClientHello reaches a plaintext server. */
static void test_none_against_smtp(void)
{
    unsigned before = CU_get_number_of_failures();
    struct peer pr;
    json_t *arr, *t;
    int rc;

    CU_ASSERT_FATAL(peer_start(&pr, "smtp", "ok", 0, 1));
    arr = CHECK(&rc, NULL, "--starttls", "none", pr.target);
    t = cm_json_only(arr);
    CU_ASSERT(json_is_null(cm_json_get(t, "starttls")));
    CU_ASSERT(json_is_null(cm_json_get(t, "timing_ms.starttls")));
    EXPECT_STR(cm_json_str(t, "error.kind"), "tls");
    EXPECT_STR(cm_json_str(t, "status"), "critical");
    EXPECT_INT(rc, 2);
    /* The peer took it for a deviation: a TLS record where EHLO belongs. */
    EXPECT_INT(peer_finish(&pr), 1);
    CU_ASSERT(log_has(&pr, "client sent a TLS record where the server expected EHLO"));
    explain(before, "--starttls none against smtp", arr, &pr);
    json_decref(arr);
}

/* Without --starttls the protocol follows the port, and --starttls none turns that off. Needs
 * one of the conventional ports free (unprivileged ones only); passes with a note otherwise. */
static void test_default_by_port(void)
{
    static const struct {
        int port;
        const char *proto;
    } ports[] = {{5222, "xmpp"}, {3306, "mysql"}, {5432, "postgres"}};
    unsigned before = CU_get_number_of_failures();
    struct peer pr;
    const char *proto = NULL;
    json_t *arr, *t;
    int rc;

    for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]) && !proto; i++)
        if (peer_start(&pr, ports[i].proto, "ok", ports[i].port, 2))
            proto = ports[i].proto;
    if (!proto) {
        fprintf(stderr, "note: ports 5222, 3306 and 5432 are all taken; default by port not "
                        "tested\n");
        return;
    }

    arr = CHECK(&rc, NULL, pr.target);
    t = cm_json_only(arr);
    EXPECT_STR(cm_json_str(t, "starttls"), proto);
    EXPECT_STR(cm_json_str(t, "status"), "ok");
    EXPECT_INT(rc, 0);
    explain(before, proto, arr, &pr);
    json_decref(arr);

    before = CU_get_number_of_failures();
    arr = CHECK(&rc, NULL, "--starttls", "none", pr.target);
    t = cm_json_only(arr);
    CU_ASSERT(json_is_null(cm_json_get(t, "starttls")));
    EXPECT_STR(cm_json_str(t, "status"), "critical");
    /* A server that speaks first garbles the handshake (tls); one that waits for the client
     * hangs up on the ClientHello (io). Either way the peer saw TLS where plaintext belongs. */
    CU_ASSERT(cm_json_str(t, "error.kind") && (!strcmp(cm_json_str(t, "error.kind"), "tls") ||
                                               !strcmp(cm_json_str(t, "error.kind"), "io")));
    EXPECT_INT(peer_finish(&pr), 1);
    CU_ASSERT(log_has(&pr, "client sent a TLS record where the server expected"));
    explain(before, "--starttls none on the conventional port", arr, &pr);
    json_decref(arr);
}

static int suite_init(void)
{
    return cm_th_pki_dir() ? 0 : -1;
}

static int suite_cleanup(void)
{
    for (int i = 0; i < MAX_LIVE; i++) {
        if (live[i] > 0)
            cm_th_stop(live[i]);
        live[i] = 0;
    }
    return 0;
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"smtp: STARTTLS accepted", test_ok_smtp},
        {"imap: STARTTLS accepted", test_ok_imap},
        {"pop3: STLS accepted", test_ok_pop3},
        {"ftp: AUTH TLS accepted", test_ok_ftp},
        {"ldap: StartTLS accepted", test_ok_ldap},
        {"postgres: SSLRequest accepted", test_ok_postgres},
        {"mysql: SSLRequest after CLIENT_SSL", test_ok_mysql},
        {"xmpp: <proceed/>", test_ok_xmpp},
        {"smtp: 454 to STARTTLS", test_refused_smtp},
        {"imap: NO to STARTTLS", test_refused_imap},
        {"pop3: -ERR to STLS", test_refused_pop3},
        {"ftp: 534 to AUTH TLS", test_refused_ftp},
        {"ldap: resultCode 2", test_refused_ldap},
        {"postgres: 'N'", test_refused_postgres},
        {"mysql: no CLIENT_SSL", test_refused_mysql},
        {"xmpp: <failure/>", test_refused_xmpp},
        {"smtp, xmpp: STARTTLS not offered", test_not_offered},
        {"smtp, imap: garbage instead of the protocol", test_garbage},
        {"smtp: silent server times out in phase starttls", test_silent_times_out},
        {"--starttls bogus exits 3", test_bogus_protocol},
        {"--starttls none against smtp: tls error", test_none_against_smtp},
        {"default by port, and none turns it off", test_default_by_port},
        CU_TEST_INFO_NULL,
    };
    signal(SIGPIPE, SIG_IGN);
    return cm_test_main("integration.starttls", tests, suite_init, suite_cleanup);
}
