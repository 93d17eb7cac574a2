/* The posture pass against real servers on 127.0.0.1: openssl s_server configured for each case
 * (legacy versions, static RSA only, DHE-1024, NULL and anonymous suites, a modern server), a
 * scripted SSL 3.0 peer (tests/integration/ssl3_peer.py) that also serves real TLS, a scripted
 * STARTTLS peer, and gnutls-serv for what OpenSSL 3 cannot serve (RC4, 3DES, no secure
 * renegotiation). gnutls-serv listens on every interface, so it runs only inside a network
 * namespace this suite creates (loopback only), as root; without root or `ip netns` those cases
 * are skipped with the reason printed. Every process is started here and stopped by PID in the
 * cleanup; the namespace is deleted there too.
 *
 * The last tests drive cm_posture_start in this process, against a closed port and a silent
 * listener: every check then "could not run", nothing is claimed, the result comes exactly once
 * and within the deadline, and no handle is left on the loop. */
#include "cmtest.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "certmon/probe/posture.h"
#include "certmon/probe/resolve.h"
#include "certmon/probe/tlsio.h"

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

enum srv {
    S_MODERN,      /* OpenSSL defaults: TLS 1.2 and 1.3, ECDHE, DHE-2048 */
    S_TLS12,       /* TLS 1.2 only, modern suites */
    S_TLS10,       /* TLS 1.0 only */
    S_TLS11,       /* TLS 1.1 only */
    S_ALLVERS,     /* TLS 1.0 to 1.3 */
    S_STATIC_RSA,  /* TLS 1.2, AES128-SHA256 only: static RSA key exchange */
    S_DHE1024,     /* TLS 1.2, DHE-RSA only, a 1024-bit group made at test time */
    S_NULL,        /* TLS 1.2, NULL-SHA besides a modern suite */
    S_ANON,        /* TLS 1.2, ADH-AES128-SHA besides a modern suite */
    S_NULL_ONLY,   /* TLS 1.2, NULL suites only: the main handshake is refused */
    S_ANON_ONLY,   /* TLS 1.2, anonymous suites only: refused, and no certificate at all */
    S_CBC_ONLY,    /* TLS 1.2, CBC suites only (ECDHE and static RSA): no AEAD */
    S_SSL3,        /* ssl3_peer.py: real TLS 1.2/1.3, plus a scripted SSL 3.0 ServerHello */
    S_EXPORT,      /* ssl3_peer.py --export: also picks export suites (SSL 3.0 and TLS 1.0) */
    S_SSL3_ONLY,   /* ssl3_peer.py --ssl3-only: SSL 3.0 and nothing newer */
    S_EXPORT_ONLY, /* ssl3_peer.py --ssl3-only --export: SSL 3.0 preferring export suites */
    S_HANG,        /* ssl3_peer.py --silent-after 1: later connections are never answered */
    S_SMTP,        /* starttls_peer.py: SMTP STARTTLS, then TLS 1.2/1.3 */
    S_COUNT
};

static const struct {
    const char *args[8]; /* s_server arguments besides -accept, -cert, -key, -cert_chain */
} ossl[] = {
    [S_MODERN] = {{NULL}},
    [S_TLS12] = {{"-tls1_2", NULL}},
    [S_TLS10] = {{"-tls1", "-cipher", "DEFAULT@SECLEVEL=0", NULL}},
    [S_TLS11] = {{"-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", NULL}},
    [S_ALLVERS] = {{"-cipher", "DEFAULT@SECLEVEL=0", NULL}},
    [S_STATIC_RSA] = {{"-tls1_2", "-cipher", "AES128-SHA256", NULL}},
    [S_DHE1024] = {{"-tls1_2", "-cipher", "DHE-RSA-AES128-SHA256:@SECLEVEL=0", "-dhparam", NULL}},
    [S_NULL] = {{"-tls1_2", "-cipher", "NULL-SHA:ECDHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0", NULL}},
    [S_ANON] = {{"-tls1_2", "-cipher", "ADH-AES128-SHA:ECDHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0",
                 NULL}},
    [S_NULL_ONLY] = {{"-tls1_2", "-cipher", "NULL-SHA:NULL-SHA256:@SECLEVEL=0", NULL}},
    [S_ANON_ONLY] = {{"-tls1_2", "-cipher", "aNULL:!eNULL:@SECLEVEL=0", NULL}},
    [S_CBC_ONLY] = {{"-no_tls1_3", "-cipher",
                     "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA384:AES128-SHA", NULL}},
};

static int port[S_COUNT];
static pid_t pid[S_COUNT];
static char target[S_COUNT][64]; /* "localhost:PORT" */
static char dh1024[512];

/* ---- gnutls-serv in a network namespace of our own ---- */

enum ns_srv {
    N_RC4_3DES,     /* NORMAL plus RC4 and 3DES: every version, both classes */
    N_RC4_ONLY,     /* TLS 1.0, RC4 with static RSA only: a legacy-only server */
    N_3DES_ONLY,    /* TLS 1.2, 3DES only */
    N_NORENEG,      /* TLS 1.2 and older, without RFC 5746 */
    N_RC4_MD5,      /* TLS 1.2 and 1.0, RC4 with an MD5 MAC and static RSA only */
    N_DHE512,       /* DHE only, a 512-bit safe prime, no FFDHE group: refuses our main handshake */
    N_DH_DSA,       /* ECDHE, and DHE with a 2048-bit DSA-style group (not a safe prime) */
    N_DH_COMPOSITE, /* ECDHE, and DHE with a 2048-bit composite "prime" */
    N_DH_SMALL,     /* ECDHE, and DHE with a generator of order 102 (a 1024-bit DSA-style p) */
    N_COUNT
};

static const char *const ns_priority[N_COUNT] = {
    [N_RC4_3DES] = "NORMAL:+ARCFOUR-128:+3DES-CBC",
    [N_RC4_ONLY] = "NORMAL:-VERS-ALL:+VERS-TLS1.0:-CIPHER-ALL:+ARCFOUR-128:-KX-ALL:+RSA",
    [N_3DES_ONLY] = "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+3DES-CBC",
    [N_NORENEG] = "NORMAL:-VERS-TLS1.3:%DISABLE_SAFE_RENEGOTIATION",
    [N_RC4_MD5] = "NORMAL:-VERS-ALL:+VERS-TLS1.2:+VERS-TLS1.0:-CIPHER-ALL:+ARCFOUR-128:-MAC-ALL:"
                  "+MD5:-KX-ALL:+RSA",
    /* A GnuTLS server answers a client that offers FFDHE groups with one of them or not at
     * all (RFC 7919): without them, this one refuses every client that offers any. */
    [N_DHE512] = "NORMAL:-VERS-TLS1.3:-KX-ALL:+DHE-RSA:-GROUP-DH-ALL:%PROFILE_VERY_WEAK",
    [N_DH_DSA] = "NORMAL:-VERS-TLS1.3:-GROUP-DH-ALL",
    [N_DH_COMPOSITE] = "NORMAL:-VERS-TLS1.3:-GROUP-DH-ALL",
    [N_DH_SMALL] = "NORMAL:-VERS-TLS1.3:-GROUP-DH-ALL",
};

/* The DH parameters file of a namespace server (--dhparams), made at test time; "" if none. */
static char ns_dhparams[N_COUNT][512];

static char ns_name[64];      /* the namespace, once made */
static const char *ns_skip;   /* why the namespace cases are skipped, or NULL */
static int ns_port[N_COUNT];  /* ports inside the namespace */
static pid_t ns_pid[N_COUNT]; /* gnutls-serv, by PID */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs argv (bounded) and returns its exit status, output discarded. */
static int run_quiet(char *const argv[], int timeout_s)
{
    char *out;
    int rc = cm_th_run(argv, &out, timeout_s, NULL);

    free(out);
    return rc;
}

/* Waits until something accepts on 127.0.0.1:p inside the namespace: a child joins it and
 * tries, at most timeout_ms. */
static bool ns_wait_port(int p, int timeout_ms)
{
    char path[128];
    pid_t child;
    int st = 0;

    snprintf(path, sizeof(path), "/run/netns/%s", ns_name);
    child = fork();
    if (child == 0) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
            _exit(2);
        _exit(cm_th_wait_port(p, timeout_ms) ? 0 : 1);
    }
    if (child < 0 || waitpid(child, &st, 0) != child)
        return false;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Makes the DH parameters of the namespace servers: a 512-bit safe prime (openssl), a
 * 2048-bit DSA-style group (certtool: p - 1 has a 256-bit prime factor, (p-1)/2 is not
 * prime), and a 2048-bit modulus that is the product of two 1024-bit primes. Returns false
 * (with ns_skip set) when a tool fails. */
static bool ns_make_dhparams(void)
{
    static const struct {
        enum ns_srv n;
        const char *file, *cmd;
    } make[] = {
        {N_DHE512, "dh512.pem", "exec openssl dhparam -out \"$0\" 512 2>/dev/null"},
        /* Only the PEM block: gnutls-serv cannot read certtool's text before it at 2048 bits. */
        {N_DH_DSA, "dh2048dsa.pem",
         "certtool --generate-dh-params --bits 2048 2>/dev/null | "
         "sed -n '/BEGIN DH/,/END DH/p' >\"$0\" && test -s \"$0\""},
        {N_DH_COMPOSITE, "dh2048composite.pem",
         "a=$(openssl prime -generate -bits 1024) && b=$(openssl prime -generate -bits 1024) && "
         "exec /usr/bin/python3 \"$1\" \"$0\" 2 \"$a\" \"$b\""},
        /* p from certtool (p - 1 = 2 * 3 * 17 * a 1018-bit number), g = 2^((p-1)/102) mod p:
         * the server's public values lie in a subgroup of at most 102 elements. */
        {N_DH_SMALL, "dh1024small.pem",
         "exec /usr/bin/python3 \"$1\" \"$0\" "
         "0x160F66C511CFCDDE8FD8499E8FBBC6F2E79DFE3BEF7FCBCCD1864922EFE6CE3C9BF2C051BD5866EEC5818B"
         "9A4042229C6565FB5EF525E965FCE51050E8853C8EAE684661AEDE5B267798E72A8336949CA8046E66CA12BE"
         "82806E8EF8789DE7B1AAB05BD09E20145084B7163220DC7458A0B30C4E1EA2E93CEACC9815AD1F4942 "
         "0xD9FA4BEC54CF84472058C5710839427E690630F3784990FB6853CDC2E4FC834CAAFECD4878723775E00A3D"
         "B1A56DFE6EBB1A01EBCC65ECBA4CF11CF69BFB46F2274CA187399AEC515065FC43CC13A08E3091D776BF45A2"
         "3CF6D6FECCEE2E38118BA89E751AB59CFE8B70CEE4938E5ADEEF16FE927621D6BF346AB0B9C7A506BF"},
    };

    for (size_t i = 0; i < sizeof(make) / sizeof(make[0]); i++) {
        char *file = ns_dhparams[make[i].n];
        snprintf(file, sizeof(ns_dhparams[0]), "%s", cm_th_pki(make[i].file));
        char *argv[] = {
            "/bin/sh", "-c", (char *)make[i].cmd, file, (char *)cm_th_script("dh_params.py"), NULL};
        if (run_quiet(argv, 120) != 0) {
            ns_skip = "cannot make the DH parameters";
            return false;
        }
    }
    return true;
}

static void ns_start(void)
{
    char *add[] = {"ip", "netns", "add", ns_name, NULL};
    char *up[] = {"ip", "-n", ns_name, "link", "set", "lo", "up", NULL};

    if (geteuid() != 0) {
        ns_skip = "not running as root";
        return;
    }
    if (!ns_make_dhparams())
        return;
    snprintf(ns_name, sizeof(ns_name), "certmon-posture-%d", (int)getpid());
    if (run_quiet(add, 10) != 0) {
        ns_name[0] = '\0';
        ns_skip = "'ip netns add' failed";
        return;
    }
    if (run_quiet(up, 10) != 0) {
        ns_skip = "cannot bring up loopback in the namespace";
        return;
    }
    for (int n = 0; n < N_COUNT; n++) {
        char p[16];
        ns_port[n] = 20000 + n; /* the namespace is ours alone: any port is free */
        snprintf(p, sizeof(p), "%d", ns_port[n]);
        char *argv[] = {"ip",
                        "netns",
                        "exec",
                        ns_name,
                        "gnutls-serv",
                        "-p",
                        p,
                        "--x509certfile",
                        (char *)cm_th_pki("valid.chain.pem"),
                        "--x509keyfile",
                        (char *)cm_th_pki("leaf.key"),
                        "--priority",
                        (char *)ns_priority[n],
                        ns_dhparams[n][0] ? "--dhparams" : NULL,
                        ns_dhparams[n],
                        NULL};
        /* ip netns exec execs the command in place: the PID is gnutls-serv's. */
        if ((ns_pid[n] = cm_th_spawn(argv, NULL)) < 0) {
            ns_skip = "cannot start gnutls-serv";
            return;
        }
    }
    for (int n = 0; n < N_COUNT; n++)
        if (!ns_wait_port(ns_port[n], 10000)) {
            ns_skip = "gnutls-serv did not come up in the namespace";
            return;
        }
}

static void ns_stop(void)
{
    char *del[] = {"ip", "netns", "del", ns_name, NULL};

    for (int n = 0; n < N_COUNT; n++)
        cm_th_stop(ns_pid[n]);
    if (ns_name[0] && run_quiet(del, 10) != 0)
        fprintf(stderr, "cannot delete network namespace %s\n", ns_name);
}

/* ---- suite setup ---- */

static pid_t start_openssl(enum srv s)
{
    char accept[32];
    char *argv[32];
    int n = 0;

    snprintf(accept, sizeof(accept), "127.0.0.1:%d", port[s]);
    argv[n++] = "openssl";
    argv[n++] = "s_server";
    argv[n++] = "-accept";
    argv[n++] = accept;
    argv[n++] = "-cert";
    argv[n++] = (char *)cm_th_pki("valid.pem");
    argv[n++] = "-key";
    argv[n++] = (char *)cm_th_pki("leaf.key");
    argv[n++] = "-cert_chain";
    argv[n++] = (char *)cm_th_pki("inter.pem");
    for (int i = 0; ossl[s].args[i]; i++)
        argv[n++] = (char *)ossl[s].args[i];
    if (s == S_DHE1024)
        argv[n++] = dh1024; /* after -dhparam */
    argv[n++] = "-www";
    argv[n++] = "-quiet";
    argv[n] = NULL;
    return cm_th_spawn(argv, NULL);
}

/* The log file of a scripted peer. */
static const char *peer_log(enum srv s)
{
    static char bufs[2][64];
    static unsigned next;
    char *b = bufs[next++ % 2], name[32];

    snprintf(name, sizeof(name), "peer-%d.log", (int)s);
    snprintf(b, sizeof(bufs[0]), "%s", cm_th_pki(name));
    return b;
}

static pid_t start_script(enum srv s)
{
    char p[16];
    char *argv[16];
    int n = 0;

    snprintf(p, sizeof(p), "%d", port[s]);
    if (s == S_SMTP) {
        char *smtp[] = {"/usr/bin/python3",
                        (char *)cm_th_script("starttls_peer.py"),
                        "--proto",
                        "smtp",
                        "--mode",
                        "ok",
                        "--port",
                        p,
                        "--cert",
                        (char *)cm_th_pki("valid.chain.pem"),
                        "--key",
                        (char *)cm_th_pki("leaf.key"),
                        "--max-conns",
                        "100",
                        "--lifetime",
                        "300",
                        "--step-timeout",
                        "5",
                        "--ehlo-name",
                        "certmon.invalid",
                        NULL};
        return cm_th_spawn(smtp, peer_log(s));
    }
    argv[n++] = "/usr/bin/python3";
    argv[n++] = (char *)cm_th_script("ssl3_peer.py");
    argv[n++] = p;
    argv[n++] = (char *)cm_th_pki("valid.chain.pem");
    argv[n++] = (char *)cm_th_pki("leaf.key");
    argv[n++] = "--lifetime";
    argv[n++] = "300";
    if (s == S_EXPORT || s == S_EXPORT_ONLY)
        argv[n++] = "--export";
    if (s == S_SSL3_ONLY || s == S_EXPORT_ONLY)
        argv[n++] = "--ssl3-only";
    if (s == S_HANG) {
        argv[n++] = "--silent-after";
        argv[n++] = "1";
    }
    argv[n] = NULL;
    return cm_th_spawn(argv, peer_log(s));
}

/* Waits (bounded) until a scripted peer says "ready" in its log: connecting to it instead
 * would use up connections that S_SMTP and S_HANG count. */
static bool peer_ready(enum srv s)
{
    for (double end = now_s() + 10 * CERTMON_SLOWDOWN; now_s() < end; usleep(20000)) {
        FILE *fp = fopen(peer_log(s), "r");
        char line[256];
        bool ready = false;

        while (fp && fgets(line, sizeof(line), fp))
            ready |= strcmp(line, "ready\n") == 0;
        if (fp)
            fclose(fp);
        if (ready)
            return true;
    }
    return false;
}

static int suite_init(void)
{
    /* Generated now, not shipped: a fresh group each run (its noise on stderr dropped). */
    char *dh[] = {"/bin/sh", "-c", "exec openssl dhparam -out \"$0\" 1024 2>/dev/null", dh1024,
                  NULL};

    if (!cm_th_pki_dir())
        return -1;
    snprintf(dh1024, sizeof(dh1024), "%s", cm_th_pki("dh1024.pem"));
    if (run_quiet(dh, 120) != 0) {
        fprintf(stderr, "openssl dhparam 1024 failed\n");
        return -1;
    }
    for (int s = 0; s < S_COUNT; s++) {
        port[s] = cm_th_free_port();
        snprintf(target[s], sizeof(target[s]), "localhost:%d", port[s]);
        pid[s] = s < S_SSL3 ? start_openssl((enum srv)s) : start_script((enum srv)s);
        if (pid[s] < 0)
            return -1;
    }
    for (int s = 0; s < S_COUNT; s++) {
        bool up = s < S_SSL3 ? cm_th_wait_port(port[s], 10000) : peer_ready((enum srv)s);
        if (!up) {
            fprintf(stderr, "server %d on port %d did not come up\n", s, port[s]);
            return -1;
        }
    }
    ns_start();
    if (ns_skip)
        fprintf(stderr, "note: gnutls-serv cases (RC4, 3DES, renegotiation) skipped: %s\n",
                ns_skip);
    return 0;
}

static int suite_cleanup(void)
{
    for (int s = 0; s < S_COUNT; s++)
        cm_th_stop(pid[s]);
    ns_stop();
    return 0;
}

/* ---- helpers ---- */

/* certmon check --json --ca root.pem ARGS... (the last one the target). */
#define CHECK(rc, ...)                                                                             \
    cm_th_check_json((rc), NULL, "--ca", cm_th_pki("root.pem"), __VA_ARGS__, NULL)

/* The same inside the namespace. */
static json_t *ns_check(int *rc, int p)
{
    char t[32];
    char *out;
    json_error_t jerr;
    json_t *j;

    snprintf(t, sizeof(t), "127.0.0.1:%d", p);
    char *argv[] = {"ip",
                    "netns",
                    "exec",
                    ns_name,
                    (char *)cm_th_certmon(),
                    "check",
                    "--json",
                    "--ca",
                    (char *)cm_th_pki("root.pem"),
                    t,
                    NULL};
    *rc = cm_th_run(argv, &out, 120, NULL);
    j = json_loads(out, 0, &jerr);
    if (!j)
        fprintf(stderr, "certmon output is not JSON (%s): %.400s\n", jerr.text, out);
    free(out);
    return j;
}

/* The strings of a JSON array joined by spaces. */
static void joined(json_t *arr, char *buf, size_t len)
{
    json_t *v;
    size_t i, used = 0;

    buf[0] = '\0';
    json_array_foreach(arr, i, v)
    {
        int n = snprintf(buf + used, len - used, "%s%s", used ? " " : "",
                         json_is_string(v) ? json_string_value(v) : "?");
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
}

static void expect_list(json_t *t, const char *path, const char *want, unsigned line)
{
    char got[256];
    json_t *arr = cm_json_get(t, path);

    expect_int(json_is_array(arr), 1, path, line);
    joined(arr, got, sizeof(got));
    expect_str(got, want, path, line);
}

#define EXPECT_LIST(t, path, want) expect_list((t), (path), (want), __LINE__)

/* The ids of t's findings that concern the posture, "id/severity[/evidence]" joined by
 * spaces: what each case asserts exactly. */
static void posture_findings(json_t *t, char *buf, size_t len)
{
    static const char *const prefixes[] = {"protocol.", "cipher.", "dh.", "renegotiation."};
    json_t *f;
    size_t i, used = 0;

    buf[0] = '\0';
    json_array_foreach(json_object_get(t, "findings"), i, f)
    {
        const char *id = json_string_value(json_object_get(f, "id"));
        const char *ev = json_string_value(json_object_get(f, "version"));
        bool ours = false;
        char extra[32] = "";
        int n;

        for (size_t k = 0; id && k < sizeof(prefixes) / sizeof(prefixes[0]); k++)
            ours |= strncmp(id, prefixes[k], strlen(prefixes[k])) == 0;
        if (!ours)
            continue;
        if (!ev)
            ev = json_string_value(json_object_get(f, "class"));
        if (ev)
            snprintf(extra, sizeof(extra), "/%s", ev);
        else if (json_is_integer(json_object_get(f, "dh_bits")))
            snprintf(extra, sizeof(extra), "/%lld",
                     (long long)json_integer_value(json_object_get(f, "dh_bits")));
        /* Every posture finding concerns the endpoint, not a certificate. */
        CU_ASSERT(json_is_null(json_object_get(f, "position")));
        n = snprintf(buf + used, len - used, "%s%s/%s%s", used ? " " : "", id,
                     json_string_value(json_object_get(f, "severity")), extra);
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
}

static void expect_posture_findings(json_t *t, const char *want, unsigned line)
{
    char got[512];

    posture_findings(t, got, sizeof(got));
    expect_str(got, want, "posture findings", line);
}

#define EXPECT_POSTURE_FINDINGS(t, want) expect_posture_findings((t), (want), __LINE__)

static long long jint(json_t *t, const char *path)
{
    json_t *v = cm_json_get(t, path);

    return json_is_integer(v) ? (long long)json_integer_value(v) : -99999;
}

/* When a case failed, prints what certmon said, so that a failure can be told from the log;
 * then frees it. */
static void finish_case(unsigned failures_before, json_t *arr)
{
    if (CU_get_number_of_failures() != failures_before) {
        char *dump = json_dumps(arr, JSON_COMPACT);
        fprintf(stderr, "--- certmon said: %s\n", dump ? dump : "(nothing)");
        free(dump);
    }
    json_decref(arr);
}

/* Prints the posture line of a case, for the log (timings are measured, not guessed). */
static void show(const char *what, json_t *t)
{
    char v[128], w[128];

    joined(cm_json_get(t, "posture.versions_accepted"), v, sizeof(v));
    joined(cm_json_get(t, "posture.weak_ciphers_accepted"), w, sizeof(w));
    fprintf(stderr, "  %-22s versions [%s] weak [%s] dh %lld, %lld handshakes, %.1f ms\n", what, v,
            w, jint(t, "posture.dh_bits"), jint(t, "posture.handshakes"),
            json_number_value(cm_json_get(t, "posture.elapsed_ms")));
}

/* ---- openssl s_server cases ---- */

static void test_modern(void)
{
    unsigned before = CU_get_number_of_failures();
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
    int rc;
    json_t *arr = CHECK(&rc, target[S_MODERN]);
    json_t *t = cm_json_only(arr);
    json_t *p = cm_json_get(t, "posture");

    CU_ASSERT_FATAL(json_is_object(p));
    EXPECT_INT(json_object_size(p), sizeof(keys) / sizeof(keys[0]));
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        CU_ASSERT(json_object_get(p, keys[i]) != NULL);
    EXPECT_LIST(t, "posture.versions_accepted", "TLS1.3 TLS1.2");
    EXPECT_LIST(t, "posture.weak_ciphers_accepted", "");
    EXPECT_LIST(t, "posture.not_tested", "");
    CU_ASSERT(json_is_true(cm_json_get(t, "posture.forward_secrecy")));
    CU_ASSERT(json_is_true(cm_json_get(t, "posture.secure_renegotiation")));
    EXPECT_INT(jint(t, "posture.dh_bits"), 2048); /* OpenSSL's automatic group for RSA-2048 */
    /* ... which is RFC 7919 ffdhe2048 (OpenSSL 3 answers the FFDHE groups offered). */
    EXPECT_STR(cm_json_str(t, "posture.dh_group"), "good");
    CU_ASSERT(json_is_true(cm_json_get(t, "posture.aead")));
    /* 11 handshakes at once; no 12th, as TLS 1.3 shows forward secrecy. */
    EXPECT_INT(jint(t, "posture.handshakes"), 11);
    /* Nothing to report about a modern server: the only findings are the missing staple and
     * the test PKI's lack of CRL or OCSP for the leaf and the intermediate (all info). */
    EXPECT_POSTURE_FINDINGS(t, "");
    EXPECT_INT(json_array_size(cm_json_get(t, "findings")), 3);
    EXPECT_STATUS(rc, t, "ok");
    show("modern", t);
    finish_case(before, arr);
}

static void test_tls12_only(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr = CHECK(&rc, target[S_TLS12]);
    json_t *t = cm_json_only(arr);

    EXPECT_LIST(t, "posture.versions_accepted", "TLS1.2");
    CU_ASSERT(json_is_true(cm_json_get(t, "posture.forward_secrecy")));
    EXPECT_POSTURE_FINDINGS(t, "protocol.no_tls13/info");
    EXPECT_STATUS(rc, t, "ok");
    show("TLS 1.2 only", t);
    finish_case(before, arr);
}

static void test_tls10_only(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr = CHECK(&rc, target[S_TLS10]);
    json_t *t = cm_json_only(arr);

    EXPECT_STR(cm_json_str(t, "tls.version"), "TLS1.0");
    EXPECT_LIST(t, "posture.versions_accepted", "TLS1.0");
    /* TLS 1.0 has no AEAD suite at all. */
    EXPECT_POSTURE_FINDINGS(t, "protocol.legacy/warning/TLS1.0 protocol.no_modern/critical "
                               "cipher.no_aead/warning");
    EXPECT_STATUS(rc, t, "critical");
    show("TLS 1.0 only", t);
    finish_case(before, arr);
}

static void test_tls11_only(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr = CHECK(&rc, target[S_TLS11]);
    json_t *t = cm_json_only(arr);

    EXPECT_LIST(t, "posture.versions_accepted", "TLS1.1");
    EXPECT_POSTURE_FINDINGS(t, "protocol.legacy/warning/TLS1.1 protocol.no_modern/critical "
                               "cipher.no_aead/warning");
    EXPECT_STATUS(rc, t, "critical");
    show("TLS 1.1 only", t);
    finish_case(before, arr);
}

static void test_all_versions(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr = CHECK(&rc, target[S_ALLVERS]);
    json_t *t = cm_json_only(arr);

    EXPECT_LIST(t, "posture.versions_accepted", "TLS1.3 TLS1.2 TLS1.1 TLS1.0");
    EXPECT_POSTURE_FINDINGS(t, "protocol.legacy/warning/TLS1.0 protocol.legacy/warning/TLS1.1");
    EXPECT_STATUS(rc, t, "warning");
    show("TLS 1.0 to 1.3", t);
    finish_case(before, arr);
}

static void test_static_rsa(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr = CHECK(&rc, target[S_STATIC_RSA]);
    json_t *t = cm_json_only(arr);

    EXPECT_STR(cm_json_str(t, "tls.cipher"), "TLS_RSA_WITH_AES_128_CBC_SHA256");
    CU_ASSERT(json_is_null(cm_json_get(t, "tls.group")));
    EXPECT_LIST(t, "posture.versions_accepted", "TLS1.2");
    CU_ASSERT(json_is_false(cm_json_get(t, "posture.forward_secrecy")));
    EXPECT_INT(jint(t, "posture.dh_bits"), 0);
    /* The 12th handshake (ECDHE and DHE only) is what proves "only static RSA", the 13th
     * (AEAD suites only) "no AEAD suite": the server has AES-CBC only. */
    EXPECT_INT(jint(t, "posture.handshakes"), 13);
    CU_ASSERT(json_is_false(cm_json_get(t, "posture.aead")));
    EXPECT_POSTURE_FINDINGS(t, "protocol.no_tls13/info cipher.no_forward_secrecy/warning "
                               "cipher.no_aead/warning");
    EXPECT_STATUS(rc, t, "warning");
    show("static RSA only", t);
    finish_case(before, arr);
}

static void test_dhe1024(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr = CHECK(&rc, target[S_DHE1024]);
    json_t *t = cm_json_only(arr);

    EXPECT_STR(cm_json_str(t, "tls.group"), "DH1024");
    EXPECT_INT(jint(t, "posture.dh_bits"), 1024);
    CU_ASSERT(json_is_true(cm_json_get(t, "posture.forward_secrecy")));
    /* openssl dhparam makes safe primes: only the size is weak. */
    EXPECT_STR(cm_json_str(t, "posture.dh_group"), "good");
    EXPECT_POSTURE_FINDINGS(t,
                            "protocol.no_tls13/info cipher.no_aead/warning dh.weak/warning/1024");
    EXPECT_STATUS(rc, t, "warning");
    show("DHE-1024", t);
    finish_case(before, arr);
}

static void test_null_cipher(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr = CHECK(&rc, target[S_NULL]);
    json_t *t = cm_json_only(arr);

    EXPECT_LIST(t, "posture.weak_ciphers_accepted", "NULL");
    EXPECT_POSTURE_FINDINGS(t, "protocol.no_tls13/info cipher.weak/critical/NULL");
    EXPECT_STATUS(rc, t, "critical");
    show("NULL suites", t);
    finish_case(before, arr);
}

static void test_anonymous(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr = CHECK(&rc, target[S_ANON]);
    json_t *t = cm_json_only(arr);
    char got[512];

    EXPECT_LIST(t, "posture.weak_ciphers_accepted", "ANON");
    posture_findings(t, got, sizeof(got));
    CU_ASSERT(strstr(got, "cipher.weak/critical/ANON") != NULL);
    EXPECT_STATUS(rc, t, "critical");
    show("anonymous DH", t);
    finish_case(before, arr);
}

/* ---- hand-built hellos against the scripted peer ---- */

static void test_ssl3(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr = CHECK(&rc, target[S_SSL3]);
    json_t *t = cm_json_only(arr);

    /* The main handshake is real TLS (Python's ssl module); the SSL 3.0 hello gets a scripted
     * SSL 3.0 ServerHello picking AES128-SHA; the export hello an alert. */
    EXPECT_LIST(t, "posture.versions_accepted", "TLS1.3 TLS1.2 SSL3.0");
    EXPECT_LIST(t, "posture.weak_ciphers_accepted", "");
    EXPECT_LIST(t, "posture.not_tested", "");
    EXPECT_POSTURE_FINDINGS(t, "protocol.legacy/critical/SSL3.0");
    EXPECT_STATUS(rc, t, "critical");
    show("SSL 3.0", t);
    finish_case(before, arr);
}

static void test_export(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr = CHECK(&rc, target[S_EXPORT]);
    json_t *t = cm_json_only(arr);

    EXPECT_LIST(t, "posture.versions_accepted", "TLS1.3 TLS1.2 SSL3.0");
    EXPECT_LIST(t, "posture.weak_ciphers_accepted", "EXPORT");
    EXPECT_POSTURE_FINDINGS(t, "protocol.legacy/critical/SSL3.0 cipher.weak/critical/EXPORT");
    EXPECT_STATUS(rc, t, "critical");
    show("SSL 3.0 + export", t);
    finish_case(before, arr);
}

/* ---- gnutls-serv in the namespace ---- */

static bool ns_ready(const char *what)
{
    if (ns_skip)
        fprintf(stderr, "  %s: skipped (%s)\n", what, ns_skip);
    return !ns_skip;
}

static void test_rc4_3des(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr, *t;

    if (!ns_ready("RC4 and 3DES"))
        return;
    arr = ns_check(&rc, ns_port[N_RC4_3DES]);
    t = cm_json_only(arr);
    EXPECT_LIST(t, "posture.versions_accepted", "TLS1.3 TLS1.2 TLS1.1 TLS1.0");
    EXPECT_LIST(t, "posture.weak_ciphers_accepted", "RC4 3DES");
    EXPECT_POSTURE_FINDINGS(t, "protocol.legacy/warning/TLS1.0 protocol.legacy/warning/TLS1.1 "
                               "cipher.weak/critical/RC4 cipher.weak/critical/3DES");
    EXPECT_STATUS(rc, t, "critical");
    show("RC4 + 3DES (gnutls)", t);
    finish_case(before, arr);
}

static void test_rc4_only(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr, *t;

    if (!ns_ready("RC4 only"))
        return;
    arr = ns_check(&rc, ns_port[N_RC4_ONLY]);
    t = cm_json_only(arr);
    /* The main probe offers RC4 last, so a legacy-only server is still probed. */
    EXPECT_STR(cm_json_str(t, "tls.cipher"), "TLS_RSA_WITH_RC4_128_SHA");
    EXPECT_LIST(t, "posture.versions_accepted", "TLS1.0");
    EXPECT_LIST(t, "posture.weak_ciphers_accepted", "RC4");
    CU_ASSERT(json_is_false(cm_json_get(t, "posture.forward_secrecy")));
    EXPECT_POSTURE_FINDINGS(t, "protocol.legacy/warning/TLS1.0 protocol.no_modern/critical "
                               "cipher.weak/critical/RC4 cipher.no_forward_secrecy/warning "
                               "cipher.no_aead/warning");
    EXPECT_STATUS(rc, t, "critical");
    show("RC4 only (gnutls)", t);
    finish_case(before, arr);
}

static void test_3des_only(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr, *t;

    if (!ns_ready("3DES only"))
        return;
    arr = ns_check(&rc, ns_port[N_3DES_ONLY]);
    t = cm_json_only(arr);
    EXPECT_LIST(t, "posture.versions_accepted", "TLS1.2");
    EXPECT_LIST(t, "posture.weak_ciphers_accepted", "3DES");
    EXPECT_POSTURE_FINDINGS(t, "protocol.no_tls13/info cipher.weak/critical/3DES "
                               "cipher.no_aead/warning");
    EXPECT_STATUS(rc, t, "critical");
    show("3DES only (gnutls)", t);
    finish_case(before, arr);
}

static void test_insecure_renegotiation(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr, *t;

    if (!ns_ready("no secure renegotiation"))
        return;
    arr = ns_check(&rc, ns_port[N_NORENEG]);
    t = cm_json_only(arr);
    CU_ASSERT(json_is_false(cm_json_get(t, "posture.secure_renegotiation")));
    EXPECT_POSTURE_FINDINGS(t, "protocol.legacy/warning/TLS1.0 protocol.legacy/warning/TLS1.1 "
                               "protocol.no_tls13/info renegotiation.insecure/warning");
    EXPECT_STATUS(rc, t, "warning");
    show("no RFC 5746 (gnutls)", t);
    finish_case(before, arr);
}

/* ---- weak-only servers: the main handshake is refused, the pass gives the verdict ---- */

/* The message of the finding id (any severity and position) of t, or "". */
static const char *finding_message(json_t *t, const char *id)
{
    const char *m = json_string_value(json_object_get(cm_finding(t, id, NULL, -1), "message"));

    return m ? m : "";
}

static void expect_contains(const char *got, const char *part, unsigned line)
{
    if (!strstr(got, part)) {
        char what[160];
        snprintf(what, sizeof(what), "contains \"%s\"", part);
        expect_str(got, part, what, line);
    }
}

#define EXPECT_CONTAINS(got, part) expect_contains((got), (part), __LINE__)

static void test_null_only(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr = CHECK(&rc, target[S_NULL_ONLY]);
    json_t *t = cm_json_only(arr);

    /* GnuTLS 3.7 turns TLS 1.3 off whenever NULL is enabled, so the main handshake does not
     * offer NULL: it is refused, and the pass says what the server does accept. */
    EXPECT_STR(cm_json_str(t, "error.kind"), "tls");
    EXPECT_CONTAINS(finding_message(t, "probe.failed"), "handshake_failure");
    EXPECT_CONTAINS(finding_message(t, "probe.failed"),
                    "refuses every protocol version and cipher suite a current client offers: it "
                    "accepts only NULL cipher suites (TLS1.2)");
    /* The chain came with one of the pass's handshakes, verified as the main one would be. */
    EXPECT_INT(json_array_size(cm_json_get(t, "chain")), 2);
    CU_ASSERT(json_is_true(cm_json_get(t, "verification.trusted")));
    CU_ASSERT(json_is_true(cm_json_get(t, "verification.hostname_match")));
    CU_ASSERT(json_is_null(cm_json_get(t, "tls.version"))); /* the main handshake's */
    EXPECT_LIST(t, "posture.weak_ciphers_accepted", "NULL");
    EXPECT_POSTURE_FINDINGS(t, "protocol.no_tls13/info cipher.weak/critical/NULL "
                               "cipher.no_forward_secrecy/warning cipher.no_aead/warning");
    EXPECT_INT(json_array_size(cm_json_get(t, "findings")), 5);
    EXPECT_STATUS(rc, t, "critical");
    show("NULL only", t);
    finish_case(before, arr);

    /* Without our root, the chain the pass received is judged untrusted, as any chain. */
    arr = cm_th_check_json(&rc, NULL, target[S_NULL_ONLY], NULL);
    t = cm_json_only(arr);
    CU_ASSERT(cm_finding(t, "chain.untrusted", "critical", -1) != NULL ||
              cm_finding(t, "chain.incomplete", "critical", -1) != NULL);
    CU_ASSERT(cm_finding(t, "probe.failed", "critical", -1) != NULL);
    EXPECT_STATUS(rc, t, "critical");
    finish_case(before, arr);
}

static void test_anon_only(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr = CHECK(&rc, target[S_ANON_ONLY]);
    json_t *t = cm_json_only(arr);
    char got[512];

    EXPECT_STR(cm_json_str(t, "error.kind"), "tls");
    EXPECT_CONTAINS(finding_message(t, "probe.failed"),
                    "it accepts only anonymous cipher suites (TLS1.2)");
    /* Anonymous suites send no certificate: nothing to report about a chain. */
    EXPECT_INT(json_array_size(cm_json_get(t, "chain")), 0);
    EXPECT_LIST(t, "posture.weak_ciphers_accepted", "ANON");
    EXPECT_LIST(t, "posture.versions_accepted", "TLS1.2");
    /* Not "only static RSA": there is no RSA key exchange at all. */
    CU_ASSERT(json_is_null(cm_json_get(t, "posture.forward_secrecy")));
    posture_findings(t, got, sizeof(got));
    EXPECT_CONTAINS(got, "protocol.no_tls13/info cipher.weak/critical/ANON");
    CU_ASSERT(strstr(got, "no_forward_secrecy") == NULL);
    CU_ASSERT(strstr(got, "protocol.no_modern") == NULL);
    EXPECT_STATUS(rc, t, "critical");
    show("anonymous only", t);
    finish_case(before, arr);
}

static void test_cbc_only(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr = CHECK(&rc, target[S_CBC_ONLY]);
    json_t *t = cm_json_only(arr);

    EXPECT_STR(cm_json_str(t, "tls.version"), "TLS1.2");
    EXPECT_CONTAINS(cm_json_str(t, "tls.cipher"), "_CBC_");
    CU_ASSERT(json_is_false(cm_json_get(t, "posture.aead")));
    CU_ASSERT(json_is_true(cm_json_get(t, "posture.forward_secrecy")));
    /* 11, then the AEAD-only handshake that the server refuses. */
    EXPECT_INT(jint(t, "posture.handshakes"), 12);
    EXPECT_POSTURE_FINDINGS(t, "protocol.no_tls13/info cipher.no_aead/warning");
    EXPECT_CONTAINS(finding_message(t, "cipher.no_aead"), "no AEAD cipher suite");
    EXPECT_STATUS(rc, t, "warning");
    show("CBC only", t);
    finish_case(before, arr);
}

static void test_ssl3_only(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr = CHECK(&rc, target[S_SSL3_ONLY]);
    json_t *t = cm_json_only(arr);

    /* Every TLS hello gets an SSL 3.0 ServerHello, which GnuTLS cannot speak: only the
     * hand-built SSL 3.0 hello of the pass is answered as offered. */
    EXPECT_STR(cm_json_str(t, "error.kind"), "tls");
    EXPECT_CONTAINS(finding_message(t, "probe.failed"), "it accepts only SSL3.0 (see");
    EXPECT_LIST(t, "posture.versions_accepted", "SSL3.0");
    EXPECT_POSTURE_FINDINGS(t, "protocol.legacy/critical/SSL3.0 protocol.no_modern/critical");
    EXPECT_INT(json_array_size(cm_json_get(t, "chain")), 0); /* no handshake got that far */
    EXPECT_STATUS(rc, t, "critical");
    show("SSL 3.0 only", t);
    finish_case(before, arr);
}

static void test_export_only(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr = CHECK(&rc, target[S_EXPORT_ONLY]);
    json_t *t = cm_json_only(arr);

    EXPECT_STR(cm_json_str(t, "error.kind"), "tls");
    EXPECT_CONTAINS(finding_message(t, "probe.failed"),
                    "it accepts only export-grade cipher suites (SSL3.0)");
    EXPECT_LIST(t, "posture.versions_accepted", "SSL3.0");
    EXPECT_LIST(t, "posture.weak_ciphers_accepted", "EXPORT");
    EXPECT_POSTURE_FINDINGS(t, "protocol.legacy/critical/SSL3.0 protocol.no_modern/critical "
                               "cipher.weak/critical/EXPORT");
    EXPECT_STATUS(rc, t, "critical");
    show("export only", t);
    finish_case(before, arr);
}

static void test_rc4_md5(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr, *t;

    if (!ns_ready("RC4-MD5 only"))
        return;
    arr = ns_check(&rc, ns_port[N_RC4_MD5]);
    t = cm_json_only(arr);
    /* The main handshake offers RC4 with MD5 too: the server is probed, not "cannot connect". */
    CU_ASSERT(json_is_null(cm_json_get(t, "error")));
    EXPECT_STR(cm_json_str(t, "tls.cipher"), "TLS_RSA_WITH_RC4_128_MD5");
    CU_ASSERT(cm_finding(t, "probe.failed", NULL, -1) == NULL);
    EXPECT_LIST(t, "posture.weak_ciphers_accepted", "RC4");
    EXPECT_POSTURE_FINDINGS(t, "protocol.legacy/warning/TLS1.0 protocol.no_tls13/info "
                               "cipher.weak/critical/RC4 cipher.no_forward_secrecy/warning "
                               "cipher.no_aead/warning");
    EXPECT_STATUS(rc, t, "critical");
    show("RC4-MD5 only (gnutls)", t);
    finish_case(before, arr);
}

static void test_dhe512_only(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr, *t;

    if (!ns_ready("DHE-512 only"))
        return;
    arr = ns_check(&rc, ns_port[N_DHE512]);
    t = cm_json_only(arr);
    EXPECT_STR(cm_json_str(t, "error.kind"), "tls");
    EXPECT_CONTAINS(finding_message(t, "probe.failed"),
                    "it accepts only DHE with a 512-bit group (TLS1.2)");
    EXPECT_INT(json_array_size(cm_json_get(t, "chain")), 2);
    CU_ASSERT(json_is_true(cm_json_get(t, "verification.trusted")));
    EXPECT_INT(jint(t, "posture.dh_bits"), 512);
    EXPECT_STR(cm_json_str(t, "posture.dh_group"), "good"); /* openssl dhparam: a safe prime */
    /* The version checks offer FFDHE groups, which this server refuses at every version: only
     * the DHE check (no group offered) completes, at TLS 1.2, so only TLS 1.2 is proven. */
    EXPECT_LIST(t, "posture.versions_accepted", "TLS1.2");
    EXPECT_POSTURE_FINDINGS(t, "protocol.no_tls13/info dh.weak/critical/512");
    EXPECT_STATUS(rc, t, "critical");
    show("DHE-512 only (gnutls)", t);
    finish_case(before, arr);
}

static void test_dh_bad_group(enum ns_srv n, const char *verdict, const char *reason, unsigned bits)
{
    char want[256];

    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr, *t;

    if (!ns_ready(verdict))
        return;
    arr = ns_check(&rc, ns_port[n]);
    t = cm_json_only(arr);
    /* ECDHE works: the main handshake succeeds, the DHE-only one gets the bad group. */
    CU_ASSERT(json_is_null(cm_json_get(t, "error")));
    EXPECT_INT(jint(t, "posture.dh_bits"), bits);
    EXPECT_STR(cm_json_str(t, "posture.dh_group"), verdict);
    snprintf(want, sizeof(want),
             "protocol.legacy/warning/TLS1.0 protocol.legacy/warning/TLS1.1 "
             "protocol.no_tls13/info dh.weak/critical/%u",
             bits);
    EXPECT_POSTURE_FINDINGS(t, want);
    EXPECT_CONTAINS(finding_message(t, "dh.weak"), reason);
    EXPECT_STATUS(rc, t, "critical");
    show(verdict, t);
    finish_case(before, arr);
}

static void test_dh_dsa(void)
{
    test_dh_bad_group(N_DH_DSA, "not_safe_prime", "not a safe prime", 2048);
}

static void test_dh_composite(void)
{
    test_dh_bad_group(N_DH_COMPOSITE, "composite", "its modulus is not a prime", 2048);
}

static void test_dh_small_order(void)
{
    test_dh_bad_group(N_DH_SMALL, "small_subgroup", "its generator has small order", 1024);
}

/* ---- the pass in check ---- */

static void test_starttls(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr = CHECK(&rc, "--starttls", "smtp", target[S_SMTP]);
    json_t *t = cm_json_only(arr);

    /* Every GnuTLS handshake goes through the SMTP preamble; the hand-built hellos cannot. */
    EXPECT_STR(cm_json_str(t, "starttls"), "smtp");
    EXPECT_LIST(t, "posture.versions_accepted", "TLS1.3 TLS1.2");
    EXPECT_LIST(t, "posture.not_tested", "SSL3.0 EXPORT");
    EXPECT_POSTURE_FINDINGS(t, "");
    EXPECT_STATUS(rc, t, "ok");
    show("SMTP STARTTLS", t);
    finish_case(before, arr);
}

static void test_quick(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    double with, without;
    json_t *arr = cm_th_check_json(&rc, &without, "--quick", "--ca", cm_th_pki("root.pem"),
                                   target[S_TLS10], NULL);
    json_t *t = cm_json_only(arr);

    /* No pass: posture null, no posture finding even for a TLS 1.0-only server. */
    CU_ASSERT(json_is_null(cm_json_get(t, "posture")));
    EXPECT_POSTURE_FINDINGS(t, "");
    EXPECT_STATUS(rc, t, "ok");
    finish_case(before, arr);
    arr = cm_th_check_json(&rc, &with, "--ca", cm_th_pki("root.pem"), target[S_MODERN], NULL);
    finish_case(before, arr);
    fprintf(stderr,
            "  certmon check wall time: %.0f ms with the posture pass, %.0f ms with --quick\n",
            with * 1000, without * 1000);
}

/* A server whose later connections hang: every posture check times out with the target's
 * deadline, and a check that could not run claims nothing (no protocol.no_modern). */
static void test_hanging_server(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    double elapsed;
    json_t *arr = cm_th_check_json(&rc, &elapsed, "--timeout", "1.5", "--ca", cm_th_pki("root.pem"),
                                   target[S_HANG], NULL);
    json_t *t = cm_json_only(arr);

    CU_ASSERT(json_is_null(cm_json_get(t, "error")));
    /* All that is known comes from the main handshake (TLS 1.3, X25519): every check of the
     * pass timed out, and none of them counts as a refusal. */
    EXPECT_STR(cm_json_str(t, "tls.version"), "TLS1.3");
    EXPECT_LIST(t, "posture.versions_accepted", "TLS1.3");
    EXPECT_LIST(t, "posture.weak_ciphers_accepted", "");
    EXPECT_LIST(t, "posture.not_tested",
                "TLS1.2 TLS1.1 TLS1.0 SSL3.0 RC4 3DES NULL EXPORT ANON DHE");
    CU_ASSERT(json_is_true(cm_json_get(t, "posture.forward_secrecy")));
    EXPECT_INT(jint(t, "posture.dh_bits"), 0);
    EXPECT_POSTURE_FINDINGS(t, "");
    EXPECT_STATUS(rc, t, "ok");
    /* The pass ends with the target's deadline, 1.5 s from the start of its probe (give or
     * take the loop turns that deliver the results). */
    {
        double probe = json_number_value(cm_json_get(t, "timing_ms.total"));
        double pass = json_number_value(cm_json_get(t, "posture.elapsed_ms"));
        CU_ASSERT(pass > 1400 && probe + pass < 1500 + 50 * CERTMON_SLOWDOWN);
        fprintf(stderr, "  hanging server: probe %.1f ms + posture pass %.1f ms\n", probe, pass);
    }
    CU_ASSERT(elapsed < 1.5 + 1.5 * CERTMON_SLOWDOWN);
    fprintf(stderr, "  hanging server: %.2f s with --timeout 1.5\n", elapsed);
    finish_case(before, arr);
}

/* Several targets at --concurrency 1: each keeps its slot through its pass, and each gets
 * its own posture, in target order. */
static void test_concurrency(void)
{
    unsigned before = CU_get_number_of_failures();
    int rc;
    json_t *arr =
        CHECK(&rc, "--concurrency", "1", target[S_MODERN], target[S_TLS10], target[S_MODERN]);

    CU_ASSERT_FATAL(json_array_size(arr) == 3);
    EXPECT_LIST(json_array_get(arr, 0), "posture.versions_accepted", "TLS1.3 TLS1.2");
    EXPECT_LIST(json_array_get(arr, 1), "posture.versions_accepted", "TLS1.0");
    EXPECT_LIST(json_array_get(arr, 2), "posture.versions_accepted", "TLS1.3 TLS1.2");
    EXPECT_INT(rc, 2);
    finish_case(before, arr);
}

static void test_text_output(void)
{
    char *out;
    int rc = cm_th_check_merged(&out, "--ca", cm_th_pki("root.pem"), target[S_TLS10], NULL);

    EXPECT_INT(rc, 2);
    CU_ASSERT(strstr(out, "posture: TLS1.0; weak ciphers: none;") != NULL);
    CU_ASSERT(strstr(out, "protocol.legacy: the server accepts TLS1.0") != NULL);
    CU_ASSERT(strstr(out, "protocol.no_modern") != NULL);
    free(out);
}

/* ---- cm_posture_start in this process ---- */

struct got {
    struct cm_posture *p;
    int calls;
    double at;
};

static void on_posture(struct cm_posture *p, void *arg)
{
    struct got *g = arg;

    g->calls++;
    g->at = now_s();
    g->p = p;
}

/* Runs one pass against 127.0.0.1:p with timeout_ms on a loop of its own, to the end. */
static void run_pass(int p, uint64_t timeout_ms, struct got *g, double *elapsed)
{
    uv_loop_t loop;
    struct cm_probe_env env = {0};
    struct cm_target t;
    struct cm_tls_profile prof = {NULL, NULL, NULL};
    char spec[32], err[256];
    double start;

    memset(g, 0, sizeof(*g));
    snprintf(spec, sizeof(spec), "127.0.0.1:%d", p);
    CU_ASSERT_FATAL(uv_loop_init(&loop) == 0);
    CU_ASSERT_FATAL(cm_target_parse(spec, 443, NULL, &t, err, sizeof(err)) == 0);
    CU_ASSERT_FATAL(cm_tls_ctx_new(&env.tls) == 0);
    /* As certmon check does: the trust anchors are loaded before anything runs. */
    t.ca_file = prof.ca_file = cm_th_pki("root.pem");
    CU_ASSERT_FATAL(cm_tls_ctx_load(env.tls, &prof, err, sizeof(err)) == 0);
    CU_ASSERT_FATAL(cm_resolver_new(&loop, &env.resolver, err, sizeof(err)) == 0);
    env.loop = &loop;
    start = now_s();
    CU_ASSERT_FATAL(cm_posture_start(&env, &t, "127.0.0.1", timeout_ms, on_posture, g, NULL) == 0);
    EXPECT_INT(g->calls, 0); /* never from inside the start call */
    uv_run(&loop, UV_RUN_DEFAULT);
    *elapsed = g->at - start;
    cm_resolver_close(env.resolver);
    uv_run(&loop, UV_RUN_DEFAULT);
    EXPECT_INT(uv_loop_close(&loop), 0); /* no handle left behind */
    cm_tls_ctx_free(env.tls);
    cm_target_clear(&t);
}

static void expect_all_unknown(const struct cm_posture *p, unsigned line)
{
    for (int v = 0; v < CM_PV_COUNT; v++)
        expect_int(p->version[v], CM_TRI_UNKNOWN, cm_pv_name((enum cm_pv)v), line);
    for (int w = 0; w < CM_WEAK_COUNT; w++)
        expect_int(p->weak[w], CM_TRI_UNKNOWN, cm_weak_name((enum cm_weak)w), line);
    expect_int(p->forward_secrecy, CM_TRI_UNKNOWN, "forward_secrecy", line);
    expect_int(p->secure_renegotiation, CM_TRI_UNKNOWN, "secure_renegotiation", line);
    expect_int(p->dhe, CM_TRI_UNKNOWN, "dhe", line);
    expect_int(p->dh_bits, 0, "dh_bits", line);
}

static void test_pass_closed_port(void)
{
    struct got g;
    double elapsed;

    run_pass(cm_th_free_port(), 5000, &g, &elapsed);
    EXPECT_INT(g.calls, 1);
    CU_ASSERT_FATAL(g.p != NULL);
    expect_all_unknown(g.p, __LINE__);
    CU_ASSERT(elapsed < 1.0 * CERTMON_SLOWDOWN); /* refused at once, no waiting */
    cm_posture_free(g.p);
}

static void test_pass_silent_listener(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct got g;
    double elapsed;

    /* A listener nobody accepts from: connections complete in the backlog and hear nothing. */
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_FATAL(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
                    listen(fd, 64) == 0 && getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    run_pass(ntohs(sa.sin_port), 300, &g, &elapsed);
    close(fd);
    EXPECT_INT(g.calls, 1);
    CU_ASSERT_FATAL(g.p != NULL);
    expect_all_unknown(g.p, __LINE__);
    /* Connected, so counted; then every check timed out together, at the deadline. */
    EXPECT_INT(g.p->handshakes, 11);
    CU_ASSERT(elapsed >= 0.29 && elapsed < 0.3 + 0.5 * CERTMON_SLOWDOWN);
    fprintf(stderr, "  silent listener, 300 ms deadline: result after %.0f ms\n", elapsed * 1000);
    cm_posture_free(g.p);
}

/* The budget: a full sweep of one endpoint well under a second on loopback. */
static void test_sweep_time(void)
{
    struct got g;
    double elapsed, worst = 0, sum = 0;
    const int rounds = 10;

    for (int i = 0; i < rounds; i++) {
        run_pass(port[S_MODERN], 10000, &g, &elapsed);
        CU_ASSERT_FATAL(g.p != NULL);
        EXPECT_INT(g.p->version[CM_PV_TLS13], CM_TRI_YES);
        EXPECT_INT(g.p->handshakes, 11);
        cm_posture_free(g.p);
        sum += elapsed;
        if (elapsed > worst)
            worst = elapsed;
    }
    fprintf(stderr,
            "  full sweep of one endpoint (11 handshakes): mean %.1f ms, worst %.1f ms "
            "over %d rounds\n",
            sum / rounds * 1000, worst * 1000, rounds);
    CU_ASSERT(worst < 0.5 * CERTMON_SLOWDOWN);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"modern server: no posture finding", test_modern},
        {"TLS 1.2 only", test_tls12_only},
        {"TLS 1.0 only", test_tls10_only},
        {"TLS 1.1 only", test_tls11_only},
        {"TLS 1.0 to 1.3", test_all_versions},
        {"static RSA only", test_static_rsa},
        {"DHE-1024", test_dhe1024},
        {"NULL suites", test_null_cipher},
        {"anonymous DH", test_anonymous},
        {"SSL 3.0 (scripted peer)", test_ssl3},
        {"SSL 3.0 and export (scripted peer)", test_export},
        {"RC4 and 3DES (gnutls-serv)", test_rc4_3des},
        {"RC4 only, TLS 1.0 (gnutls-serv)", test_rc4_only},
        {"3DES only (gnutls-serv)", test_3des_only},
        {"no secure renegotiation (gnutls-serv)", test_insecure_renegotiation},
        {"NULL only: refused, verdict from the pass", test_null_only},
        {"anonymous only: refused, verdict from the pass", test_anon_only},
        {"SSL 3.0 only: refused, verdict from the hand-built hello", test_ssl3_only},
        {"export only: refused, verdict from the hand-built hellos", test_export_only},
        {"CBC only: cipher.no_aead", test_cbc_only},
        {"RC4-MD5 only (gnutls-serv)", test_rc4_md5},
        {"DHE-512 only: refused, verdict from the pass (gnutls-serv)", test_dhe512_only},
        {"DH group not a safe prime (gnutls-serv)", test_dh_dsa},
        {"DH group composite (gnutls-serv)", test_dh_composite},
        {"DH generator of small order (gnutls-serv)", test_dh_small_order},
        {"through STARTTLS", test_starttls},
        {"--quick skips the pass", test_quick},
        {"hanging server: nothing claimed", test_hanging_server},
        {"--concurrency 1", test_concurrency},
        {"text output", test_text_output},
        {"pass against a closed port", test_pass_closed_port},
        {"pass against a silent listener", test_pass_silent_listener},
        {"sweep time", test_sweep_time},
        CU_TEST_INFO_NULL,
    };
    signal(SIGPIPE, SIG_IGN);
    return cm_test_main("integration.posture", tests, suite_init, suite_cleanup);
}
