/* Chain and purpose findings against real TLS servers: one openssl s_server per case on
 * 127.0.0.1, serving certificates that mkchain.sh adds to the PKI of mkpki.sh (wrong
 * purposes, a chain sent in reverse, weak intermediates and anchors, an interception root),
 * checked with certmon check --json. Every server is started in the suite init and stopped by
 * PID in the cleanup. */
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
    S_EKU_CLIENT, /* leaf with extended key usage clientAuth only */
    S_EC_NODS,    /* EC leaf whose key usage is keyAgreement only */
    S_EC_OK,      /* EC leaf with serverAuth and digitalSignature: the control */
    S_INTER_EKU,  /* server leaf under an intermediate restricted to emailProtection */
    S_REVERSED,   /* inter.pem (with its key) first, then valid.pem */
    S_RSA768,     /* 768-bit RSA leaf */
    S_INTER1024,  /* good leaf under a 1024-bit RSA intermediate */
    S_INTERSHA1,  /* good leaf under an intermediate signed with SHA-1 */
    S_WEAKROOT,   /* leaf + intermediate under a 1024-bit root that only the CA file holds */
    S_IROOT_SENT, /* leaf + the interception root */
    S_IROOT_LEAF, /* the leaf under the interception root alone */
    S_COUNT
};

static const struct server {
    const char *cert, *key, *chain;
    bool weak; /* needs security level 0 to load at all */
} servers[S_COUNT] = {
    [S_EKU_CLIENT] = {"purpose_client.pem", "chain_leaf.key", "inter.pem", false},
    [S_EC_NODS] = {"purpose_ec_nods.pem", "chain_ec.key", "inter.pem", false},
    [S_EC_OK] = {"purpose_ec_ok.pem", "chain_ec.key", "inter.pem", false},
    [S_INTER_EKU] = {"leaf_interemail.pem", "chain_leaf.key", "interemail.pem", false},
    [S_REVERSED] = {"inter.pem", "inter.key", "valid.pem", false},
    [S_RSA768] = {"rsa768.pem", "rsa768.key", "inter.pem", true},
    [S_INTER1024] = {"leaf_inter1024.pem", "chain_leaf.key", "inter1024.pem", true},
    [S_INTERSHA1] = {"leaf_intersha1.pem", "chain_leaf.key", "intersha1.pem", true},
    [S_WEAKROOT] = {"leaf_weakroot.pem", "chain_leaf.key", "weakinter.pem", true},
    [S_IROOT_SENT] = {"leaf_iroot.pem", "chain_leaf.key", "iroot.pem", false},
    [S_IROOT_LEAF] = {"leaf_iroot.pem", "chain_leaf.key", NULL, false},
};

static int port[S_COUNT];
static pid_t pid[S_COUNT];
static char local[S_COUNT][64]; /* "localhost:PORT" */

static int suite_init(void)
{
    char cmd[1024];

    if (!cm_th_pki_dir())
        return -1;
    snprintf(cmd, sizeof(cmd), "sh '%s' '%s'", cm_th_script("mkchain.sh"), cm_th_pki_dir());
    if (system(cmd) != 0) {
        fprintf(stderr, "mkchain.sh failed\n");
        return -1;
    }
    for (int s = 0; s < S_COUNT; s++) {
        const struct server *sv = &servers[s];
        char accept[32];
        char *argv[20];
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
        if (sv->weak) {
            /* OpenSSL 3 refuses short RSA keys and SHA-1 signatures above level 0. */
            argv[n++] = "-cipher";
            argv[n++] = "DEFAULT@SECLEVEL=0";
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

/* certmon check --json --quick --ca CA ARGS...; the last argument is the target. The posture
 * pass is beside the point here. */
#define PROBE_CA(rc, ca, ...)                                                                      \
    cm_th_check_json((rc), NULL, "--quick", "--ca", cm_th_pki(ca), __VA_ARGS__, NULL)
#define PROBE(rc, ...) PROBE_CA(rc, "root.pem", __VA_ARGS__)

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

/* Asserts that t has (want) or lacks (!want, any position and severity) a finding. Returns
 * the finding. */
static json_t *expect_finding(json_t *t, const char *id, const char *sev, int pos, bool want,
                              unsigned line)
{
    json_t *f = cm_finding(t, id, want ? sev : NULL, want ? pos : -1);
    char got[768], msg[1024];

    describe(t, got, sizeof(got));
    snprintf(msg, sizeof(msg), "%s %s/%s/%d; findings:%s", want ? "want" : "do not want", id,
             sev ? sev : "*", pos, got);
    CU_assertImplementation((f != NULL) == want, line, msg, __FILE__, "", CU_FALSE);
    return f;
}

#define EXPECT_FINDING(t, id, sev, pos) expect_finding((t), (id), (sev), (pos), true, __LINE__)
#define EXPECT_NO_FINDING(t, id) expect_finding((t), (id), NULL, -1, false, __LINE__)

/* Asserts that the message of finding f contains needle. */
static void expect_message(json_t *f, const char *needle, unsigned line)
{
    const char *m = f ? json_string_value(json_object_get(f, "message")) : NULL;
    char msg[1024];

    snprintf(msg, sizeof(msg), "message \"%s\" should contain \"%s\"", m ? m : "(none)", needle);
    CU_assertImplementation(m && strstr(m, needle), line, msg, __FILE__, "", CU_FALSE);
}

#define EXPECT_MESSAGE(f, needle) expect_message((f), (needle), __LINE__)

/* Asserts that the JSON array at path holds exactly the strings want (n of them). */
static void expect_strings(json_t *t, const char *path, const char *const *want, size_t n,
                           unsigned line)
{
    json_t *a = cm_json_get(t, path);
    bool ok = json_is_array(a) && json_array_size(a) == n;
    char msg[300];

    for (size_t i = 0; ok && i < n; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        ok = s && !strcmp(s, want[i]);
    }
    snprintf(msg, sizeof(msg), "%s should hold %zu given strings", path, n);
    CU_assertImplementation(ok, line, msg, __FILE__, "", CU_FALSE);
}

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

/* ---- purpose ---- */

static void test_client_only_eku(void)
{
    static const char *const eku[] = {"clientAuth"};
    int rc;
    json_t *arr = PROBE(&rc, local[S_EKU_CLIENT]);
    json_t *t = cm_json_only(arr);
    json_t *f;

    EXPECT_STATUS(rc, t, "critical");
    f = EXPECT_FINDING(t, "cert.purpose", "critical", 0);
    EXPECT_MESSAGE(f, "leaf certificate 0 (CN=certmon chain test purpose_client)");
    EXPECT_MESSAGE(f, "allows only clientAuth, not serverAuth");
    /* GnuTLS's verification for the server purpose says the same, and cert.purpose explains
     * it: no generic chain.untrusted beside it. */
    CU_ASSERT(has_string(cm_json_get(t, "verification.errors"), "purpose_mismatch"));
    CU_ASSERT(json_is_false(cm_json_get(t, "verification.trusted")));
    EXPECT_NO_FINDING(t, "chain.untrusted");
    expect_strings(t, "chain.0.extended_key_usage", eku, 1, __LINE__);
    json_decref(arr);
}

static void test_ec_key_usage_without_signature(void)
{
    static const char *const ku[] = {"keyAgreement"};
    int rc;
    json_t *arr = PROBE(&rc, local[S_EC_NODS]);
    json_t *t = cm_json_only(arr);
    json_t *f;

    EXPECT_STATUS(rc, t, "critical");
    f = EXPECT_FINDING(t, "cert.purpose", "critical", 0);
    EXPECT_MESSAGE(f, "(keyAgreement) without digitalSignature");
    EXPECT_MESSAGE(f, "EC key");
    expect_strings(t, "chain.0.key_usage", ku, 1, __LINE__);
    EXPECT_STR(cm_json_str(t, "chain.0.key.type"), "EC");
    EXPECT_NO_FINDING(t, "chain.untrusted");
    json_decref(arr);
}

static void test_good_purpose_is_clean(void)
{
    static const char *const ku[] = {"digitalSignature"};
    static const char *const eku[] = {"serverAuth"};
    int rc;
    json_t *arr = PROBE(&rc, local[S_EC_OK]);
    json_t *t = cm_json_only(arr);

    EXPECT_STATUS(rc, t, "ok");
    EXPECT_NO_FINDING(t, "cert.purpose");
    expect_strings(t, "chain.0.key_usage", ku, 1, __LINE__);
    expect_strings(t, "chain.0.extended_key_usage", eku, 1, __LINE__);
    CU_ASSERT(json_is_true(cm_json_get(t, "verification.trusted")));
    /* The anchor is root.pem, from the CA file: one past the two certificates sent. */
    EXPECT_STR(cm_json_str(t, "trust_anchor.subject"), "CN=certmon Test Root CA");
    EXPECT_INT(json_integer_value(cm_json_get(t, "trust_anchor.position")), 2);
    json_decref(arr);
}

static void test_intermediate_eku(void)
{
    static const char *const eku[] = {"emailProtection"};
    int rc;
    json_t *arr = PROBE(&rc, local[S_INTER_EKU]);
    json_t *t = cm_json_only(arr);
    json_t *f;

    EXPECT_STATUS(rc, t, "critical");
    f = EXPECT_FINDING(t, "cert.purpose", "critical", 1);
    EXPECT_MESSAGE(f, "chain certificate 1 (CN=certmon chain test interemail) restricts the "
                      "extended key usage of every certificate under it to emailProtection");
    CU_ASSERT(cm_finding(t, "cert.purpose", NULL, 0) == NULL);
    CU_ASSERT(has_string(cm_json_get(t, "verification.errors"), "purpose_mismatch"));
    EXPECT_NO_FINDING(t, "chain.untrusted");
    expect_strings(t, "chain.1.extended_key_usage", eku, 1, __LINE__);
    json_decref(arr);
}

/* ---- chain shape ---- */

static void test_reversed_chain(void)
{
    int rc;
    json_t *arr = PROBE(&rc, local[S_REVERSED]);
    json_t *t = cm_json_only(arr);
    json_t *f;

    EXPECT_STATUS(rc, t, "critical");
    EXPECT_STR(cm_json_str(t, "chain.0.subject"), "CN=certmon Test Intermediate CA");
    CU_ASSERT(json_is_true(cm_json_get(t, "chain.0.is_ca")));
    f = EXPECT_FINDING(t, "chain.ca_as_leaf", "critical", 0);
    EXPECT_MESSAGE(f, "CN=certmon Test Intermediate CA");
    EXPECT_MESSAGE(f, "(CN=localhost) comes at position 1");
    /* The last certificate comes after its issuer: chain.order judges the last position. */
    f = EXPECT_FINDING(t, "chain.order", "warning", 1);
    EXPECT_MESSAGE(f, "certificate 1 (CN=localhost) comes last");
    /* The noise a CA certificate as the leaf used to make. */
    EXPECT_NO_FINDING(t, "host.mismatch");
    EXPECT_NO_FINDING(t, "cert.no_san");
    EXPECT_NO_FINDING(t, "cert.purpose");
    EXPECT_NO_FINDING(t, "chain.untrusted");
    json_decref(arr);
}

/* ---- weak keys and signatures where they are ---- */

static void test_rsa768_leaf(void)
{
    int rc;
    json_t *arr = PROBE(&rc, local[S_RSA768]);
    json_t *t = cm_json_only(arr);

    EXPECT_STATUS(rc, t, "critical");
    EXPECT_FINDING(t, "key.weak", "critical", 0);
    /* GnuTLS blames the short key with insecure_algorithm; key.weak explains it. */
    CU_ASSERT(has_string(cm_json_get(t, "verification.errors"), "insecure_algorithm"));
    EXPECT_NO_FINDING(t, "chain.untrusted");
    json_decref(arr);
}

static void test_weak_intermediate_key(void)
{
    int rc;
    json_t *arr = PROBE(&rc, local[S_INTER1024]);
    json_t *t = cm_json_only(arr);
    json_t *f;

    EXPECT_STATUS(rc, t, "critical");
    f = EXPECT_FINDING(t, "key.weak", "critical", 1);
    EXPECT_MESSAGE(f, "chain certificate 1 (CN=certmon chain test inter1024) has a 1024-bit RSA");
    CU_ASSERT(cm_finding(t, "key.weak", NULL, 0) == NULL);
    EXPECT_NO_FINDING(t, "chain.untrusted");
    json_decref(arr);
}

static void test_sha1_intermediate(void)
{
    int rc;
    json_t *arr = PROBE(&rc, local[S_INTERSHA1]);
    json_t *t = cm_json_only(arr);
    json_t *f;

    EXPECT_STATUS(rc, t, "critical");
    f = EXPECT_FINDING(t, "signature.weak", "critical", 1);
    EXPECT_MESSAGE(f, "chain certificate 1 (CN=certmon chain test intersha1) is signed with "
                      "RSA-SHA1");
    CU_ASSERT(cm_finding(t, "signature.weak", NULL, 0) == NULL);
    CU_ASSERT(has_string(cm_json_get(t, "verification.errors"), "insecure_algorithm"));
    EXPECT_NO_FINDING(t, "chain.untrusted");
    json_decref(arr);
}

static void test_weak_anchor_in_store(void)
{
    int rc;
    json_t *arr = PROBE_CA(&rc, "weakroot.pem", local[S_WEAKROOT]);
    json_t *t = cm_json_only(arr);
    json_t *f;

    EXPECT_STATUS(rc, t, "critical");
    EXPECT_INT(json_array_size(cm_json_get(t, "chain")), 2);
    /* Not sent: reported at the chain length, named as the anchor. */
    f = EXPECT_FINDING(t, "key.weak", "critical", 2);
    EXPECT_MESSAGE(f, "the trust anchor (CN=certmon chain test weakroot) from the trust store "
                      "has a 1024-bit RSA key");
    EXPECT_INT(json_integer_value(cm_json_get(t, "trust_anchor.position")), 2);
    EXPECT_INT(json_integer_value(cm_json_get(t, "trust_anchor.key.bits")), 1024);
    CU_ASSERT(cm_finding(t, "key.weak", NULL, 0) == NULL);
    CU_ASSERT(cm_finding(t, "key.weak", NULL, 1) == NULL);
    EXPECT_NO_FINDING(t, "chain.untrusted");
    json_decref(arr);
}

/* ---- interception roots ---- */

static void test_interception_root_sent(void)
{
    const char *list = cm_th_pki("interception-test.txt");
    int rc;
    json_t *arr, *t, *f;

    /* Trusted (as on a machine where it was installed) and sent along. */
    arr = PROBE_CA(&rc, "iroot.pem", "--interception-roots", list, local[S_IROOT_SENT]);
    t = cm_json_only(arr);
    EXPECT_STATUS(rc, t, "critical");
    f = EXPECT_FINDING(t, "chain.interception_root", "critical", 1);
    EXPECT_MESSAGE(f, "certmon Test Interception Root (CN=certmon chain test iroot)");
    EXPECT_MESSAGE(f, "the trust store trusts it");
    json_decref(arr);

    /* Sent but not trusted here: still an interception root, and untrusted. */
    arr = PROBE(&rc, "--interception-roots", list, local[S_IROOT_SENT]);
    t = cm_json_only(arr);
    f = EXPECT_FINDING(t, "chain.interception_root", "critical", 1);
    EXPECT_MESSAGE(f, "intercepts the connection");
    EXPECT_FINDING(t, "chain.untrusted", "critical", -1);
    json_decref(arr);

    /* Without the list entry the same chain is only a trusted chain with its root sent. */
    arr = PROBE_CA(&rc, "iroot.pem", local[S_IROOT_SENT]);
    t = cm_json_only(arr);
    EXPECT_STATUS(rc, t, "ok");
    EXPECT_NO_FINDING(t, "chain.interception_root");
    json_decref(arr);
}

static void test_interception_root_in_store(void)
{
    const char *list = cm_th_pki("interception-test.txt");
    char spki[80] = "";
    FILE *fp = fopen(cm_th_pki("iroot.spki"), "r");
    int rc;
    json_t *arr, *t, *f;

    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    CU_ASSERT_PTR_NOT_NULL(fgets(spki, sizeof(spki), fp));
    fclose(fp);
    spki[strcspn(spki, "\n")] = '\0';

    arr = PROBE_CA(&rc, "iroot.pem", "--interception-roots", list, local[S_IROOT_LEAF]);
    t = cm_json_only(arr);
    EXPECT_STATUS(rc, t, "critical");
    EXPECT_INT(json_array_size(cm_json_get(t, "chain")), 1);
    f = EXPECT_FINDING(t, "chain.interception_root", "critical", 1);
    EXPECT_MESSAGE(f, "from the trust store: certmon Test Interception Root");
    /* certmon's key hash is openssl's SPKI SHA-256. */
    EXPECT_STR(cm_json_str(t, "trust_anchor.spki_sha256"), spki);
    json_decref(arr);
}

static void test_bad_interception_list(void)
{
    const char *bad = cm_th_pki("bad-interception.txt");
    FILE *fp = fopen(bad, "w");
    char *out = NULL;
    int rc;

    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fputs("# ok\n0123 too short\n", fp);
    fclose(fp);
    rc = cm_th_check_merged(&out, "--interception-roots", bad, local[S_EC_OK], NULL);
    CU_ASSERT_EQUAL(rc, 3);
    CU_ASSERT(out && strstr(out, "line 2: an entry starts with the 64 hex digits"));
    free(out);

    /* Not a regular file: refused before reading (/dev/zero would never end). */
    out = NULL;
    rc = cm_th_check_merged(&out, "--interception-roots", "/dev/zero", local[S_EC_OK], NULL);
    CU_ASSERT_EQUAL(rc, 3);
    CU_ASSERT(out && strstr(out, "/dev/zero: not a regular file"));
    free(out);
}

/* ---- the daemon: interception_roots_file ---- */

/* GET http://127.0.0.1:mport/api/v1/targets with curl, parsed; NULL when it fails. */
static json_t *api_targets(int mport)
{
    char url[64], *out = NULL;
    char *argv[] = {"curl", "-s", "--noproxy", "*", "--max-time", "10", url, NULL};
    json_t *j = NULL;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/targets", mport);
    if (cm_th_run(argv, &out, 20, NULL) == 0 && out)
        j = json_loads(out, 0, NULL);
    free(out);
    return j;
}

static json_t *report_of(json_t *arr, const char *name)
{
    json_t *t;
    size_t i;

    json_array_foreach(arr, i, t)
    {
        const char *n = cm_json_str(t, "target");
        if (n && !strcmp(n, name))
            return t;
    }
    return NULL;
}

/* Polls /api/v1/targets until target name has a report probed after `after` (RFC 3339 UTC,
 * which sorts as text; "": any) for which has_iroot says whether chain.interception_root is there.
 * Returns the array (caller decrefs) or NULL after timeout_s. */
static json_t *wait_report(int mport, const char *name, const char *after, int has_iroot,
                           double timeout_s)
{
    double end = cm_th_now() + timeout_s * CERTMON_SLOWDOWN;

    do {
        json_t *arr = api_targets(mport), *t = arr ? report_of(arr, name) : NULL;
        const char *lp = t ? cm_json_str(t, "last_probe") : NULL;
        if (lp && strcmp(lp, after) > 0 &&
            (has_iroot < 0 ||
             (cm_finding(t, "chain.interception_root", NULL, -1) != NULL) == (has_iroot > 0)))
            return arr;
        json_decref(arr);
        usleep(200000);
    } while (cm_th_now() < end);
    fprintf(stderr, "\n  no report of '%s' (interception root: %d) after '%s'\n", name, has_iroot,
            after);
    return NULL;
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_daemon_interception_roots_file(void)
{
    char tmp[] = "/tmp/certmon-iroot-XXXXXX", conf[128], list[128], empty[128], log[128];
    char *listed = NULL, want[512], *out = NULL;
    int mport = cm_th_free_port();
    json_t *arr, *t, *f;
    char last[64] = "";
    pid_t d;

    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(tmp));
    snprintf(conf, sizeof(conf), "%s/certmon.conf", tmp);
    snprintf(list, sizeof(list), "%s/roots.txt", tmp);
    snprintf(empty, sizeof(empty), "%s/none.txt", tmp);
    snprintf(log, sizeof(log), "%s/daemon.log", tmp);
    {
        char *argv[] = {"cat", (char *)cm_th_pki("interception-test.txt"), NULL};
        CU_ASSERT_EQUAL_FATAL(cm_th_run(argv, &listed, 10, NULL), 0);
    }
    write_text(list, listed);
    write_text(empty, "# no local interception roots\n");
    /* The same leaf under the interception root, trusted by its CA file (as on a machine
     * where the root was installed), twice: once judged with the global list, once with a
     * target's own list that replaces it. */
    cm_th_write_config(
        conf,
        "global = { interval = \"1h\"; timeout = \"5s\"; startup_spread = \"1s\";\n"
        "  interception_roots_file = \"roots.txt\"; posture_interval = \"off\"; };\n"
        "metrics = { listen = \"127.0.0.1:%d\"; };\n"
        "targets = (\n"
        "  { host = \"localhost\"; port = %d; name = \"iroot\"; ca_file = \"%s\"; },\n"
        "  { host = \"localhost\"; port = %d; name = \"own-list\"; ca_file = \"%s\";\n"
        "    interception_roots_file = \"none.txt\"; }\n"
        ");\n",
        mport, port[S_IROOT_LEAF], cm_th_pki("iroot.pem"), port[S_IROOT_LEAF],
        cm_th_pki("iroot.pem"));

    /* config-check reads the list too. */
    {
        char *argv[] = {(char *)cm_th_certmon(), "config-check", "-c", conf, NULL};
        EXPECT_INT(cm_th_run(argv, &out, 30, NULL), 0);
        free(out);
        out = NULL;
    }

    d = cm_th_spawn((char *[]){(char *)cm_th_certmon(), "run", "-c", conf, NULL}, log);
    CU_ASSERT_FATAL(d > 0);
    arr = wait_report(mport, "iroot", "", 1, 15);
    CU_ASSERT_PTR_NOT_NULL(arr);
    if (arr) {
        t = report_of(arr, "iroot");
        f = EXPECT_FINDING(t, "chain.interception_root", "critical", 1);
        EXPECT_MESSAGE(f, "from the trust store: certmon Test Interception Root");
        EXPECT_STR(cm_json_str(t, "status"), "critical");
        json_decref(arr);
    }
    arr = wait_report(mport, "own-list", "", -1, 15);
    CU_ASSERT_PTR_NOT_NULL(arr);
    if (arr) {
        t = report_of(arr, "own-list");
        EXPECT_NO_FINDING(t, "chain.interception_root");
        EXPECT_STR(cm_json_str(t, "status"), "ok");
        json_decref(arr);
    }

    /* A bad line in the list on reload: named with both FILE:LINEs, the old configuration
     * stays. */
    write_text(list, "# edited\nnot-a-hash x\n");
    kill(d, SIGHUP);
    snprintf(want, sizeof(want), "%s:2: global.interception_roots_file: %s:2: an entry starts",
             conf, list);
    CU_ASSERT(cm_th_wait_text(log, want, 10 * CERTMON_SLOWDOWN));
    CU_ASSERT(cm_th_wait_text(log, "previous configuration stays in force", 10 * CERTMON_SLOWDOWN));

    /* The list is part of the configuration: an edited list and SIGHUP, and the target is
     * judged by the new one. */
    arr = api_targets(mport);
    t = arr ? report_of(arr, "iroot") : NULL;
    snprintf(last, sizeof(last), "%s",
             t && cm_json_str(t, "last_probe") ? cm_json_str(t, "last_probe") : "");
    CU_ASSERT(last[0] != '\0');
    json_decref(arr);
    write_text(list, "# the interception root was removed from the list\n");
    sleep(1); /* last_probe has a resolution of a second */
    kill(d, SIGHUP);
    arr = wait_report(mport, "iroot", last, 0, 20);
    CU_ASSERT_PTR_NOT_NULL(arr);
    if (arr) {
        t = report_of(arr, "iroot");
        EXPECT_NO_FINDING(t, "chain.interception_root");
        EXPECT_STR(cm_json_str(t, "status"), "ok");
        json_decref(arr);
    }
    EXPECT_INT(cm_th_signal_wait(d, SIGTERM, 10, NULL), 0);
    free(listed);
    {
        char *argv[] = {"rm", "-rf", tmp, NULL};
        cm_th_run(argv, &out, 30, NULL);
        free(out);
    }
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"EKU clientAuth only: cert.purpose", test_client_only_eku},
        {"EC key usage without digitalSignature: cert.purpose",
         test_ec_key_usage_without_signature},
        {"serverAuth + digitalSignature is clean", test_good_purpose_is_clean},
        {"intermediate without serverAuth: cert.purpose at 1", test_intermediate_eku},
        {"reversed chain: chain.ca_as_leaf and chain.order", test_reversed_chain},
        {"768-bit leaf: key.weak, not untrusted", test_rsa768_leaf},
        {"1024-bit intermediate at its position", test_weak_intermediate_key},
        {"SHA-1 intermediate at its position", test_sha1_intermediate},
        {"weak anchor only in the CA file", test_weak_anchor_in_store},
        {"interception root sent", test_interception_root_sent},
        {"interception root only in the trust store", test_interception_root_in_store},
        {"bad --interception-roots exits 3", test_bad_interception_list},
        {"daemon: interception_roots_file, re-read on SIGHUP", test_daemon_interception_roots_file},
        CU_TEST_INFO_NULL,
    };
    signal(SIGPIPE, SIG_IGN);
    return cm_test_main("integration.chain", tests, suite_init, suite_cleanup);
}
