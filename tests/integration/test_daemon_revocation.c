/* Revocation in the daemon (`certmon run`), against real servers on 127.0.0.1: the PKI of
 * mkrevoke.sh made at test time, its CRLs served by crl_server.py (ETag, 304, a log of every
 * request), `openssl ocsp` behind ocsp_responder.py, one openssl s_server per endpoint, a
 * tarpit that accepts and never answers, and certificate files. What is checked is what an
 * operator sees: /api/v1/targets, /metrics (and promtool), the CRL server's log, the daemon's
 * exit status. The conditional re-fetch is also checked on the checker itself (cm_revctx on a
 * real loop), where the 304 and the kept CRL can be read from its statistics. */
#include "cmrevoke.h"
#include "cmtest.h"

#include <curl/curl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "certmon/http/httpc.h"
#include "certmon/probe/filecert.h"
#include "certmon/probe/revocation.h"

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

/* Chain files behind the intermediate, one file entry each: they all name inter.crl. */
#define NFILES 20
/* The tarpit target's revocation_timeout, in seconds. */
#define TARPIT_S 15

enum srv { S_GOOD, S_REVOKED, S_TARPIT, S_OCSP_GOOD, S_OCSP_REVOKED, S_COUNT };
static const char *const certs[S_COUNT] = {"good.pem", "revoked.pem", "tarpit.pem", "ocspgood.pem",
                                           "ocsprevoked.pem"};

static struct cm_th_revpki pki;
static int port[S_COUNT], web_port;
static pid_t pid[S_COUNT];
static pid_t daemon_pid; /* the daemon a test runs: stopped by the cleanup when a test fails */

/* name in the PKI's directory (a static rotating buffer: the last 8 stay valid). */
static const char *path(const char *name)
{
    return cm_th_path(pki.dir, name);
}

static int run_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int run_sh(const char *fmt, ...)
{
    char cmd[2048], *out = NULL;
    va_list ap;
    int rc;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    rc = cm_th_run(argv, &out, 60, NULL);
    free(out);
    return rc;
}

/* ---- HTTP to the daemon ---- */

struct body {
    char *data;
    size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    char *nd = realloc(b->data, b->len + size * n + 1);

    if (!nd)
        return 0;
    memcpy(nd + b->len, p, size * n);
    b->data = nd;
    b->len += size * n;
    b->data[b->len] = '\0';
    return size * n;
}

/* GETs a path of the daemon's listener; the HTTP status (0: no answer), the body in *out. */
static long get_local(const char *p, char **out)
{
    CURL *c = curl_easy_init();
    struct body b = {NULL, 0};
    char url[300];
    long status = 0;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", web_port, p);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    *out = b.data ? b.data : strdup("");
    return status;
}

/* /api/v1/targets, parsed (caller decrefs), or NULL. */
static json_t *api_targets(void)
{
    char *body = NULL;
    json_t *j = NULL;

    if (get_local("/api/v1/targets", &body) == 200)
        j = json_loads(body, 0, NULL);
    free(body);
    return j;
}

static json_t *report_of(json_t *all, const char *target)
{
    size_t i;
    json_t *r;

    json_array_foreach(all, i, r)
    {
        const char *t = cm_json_str(r, "target");
        if (t && !strcmp(t, target))
            return r;
    }
    return NULL;
}

/* The value of the sample whose name and labels are exactly key; NAN when absent. */
static double sample(const char *text, const char *key)
{
    size_t n = strlen(key);

    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, key, n) && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return NAN;
}

static int count_prefix(const char *text, const char *prefix)
{
    int n = 0;

    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        n += !strncmp(p, prefix, strlen(prefix));
    return n;
}

/* ---- Suite ---- */

static int suite_cleanup(void);

static int suite_start(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cm_th_revpki_start(&pki, "certmon-drev", false) < 0)
        return -1;
    web_port = cm_th_free_port();
    /* Chain files (leaf, then its intermediate), a directory with a revoked chain and a leaf
     * alone, and a chain with the stale CRL for the conditional re-fetch. */
    if (run_sh("cd '%s' && mkdir -p files more nostore && cat good.pem inter.pem > "
               "nostore/chain.pem && for i in $(seq 1 %d); do cat good.pem "
               "inter.pem > files/chain$i.pem; done && cat good.pem inter.pem > extra.pem && "
               "cat revoked.pem inter.pem > more/revoked-chain.pem && cp good.pem "
               "more/leaf-only.pem && cat stale.pem inter.pem > stale-chain.pem",
               pki.dir, NFILES) != 0)
        return -1;
    for (int s = 0; s < S_COUNT; s++)
        if ((pid[s] = cm_th_revpki_s_server(&pki, certs[s], "inter.pem", &port[s])) < 0)
            return -1;
    return 0;
}

static int suite_init(void)
{
    if (suite_start() == 0)
        return 0;
    suite_cleanup();
    return -1;
}

static int suite_cleanup(void)
{
    for (int s = 0; s < S_COUNT; s++)
        if (pid[s] > 0)
            cm_th_stop(pid[s]);
    if (daemon_pid > 0)
        cm_th_stop(daemon_pid);
    cm_th_revpki_stop(&pki);
    curl_global_cleanup();
    return 0;
}

/* ---- The daemon ---- */

/* Writes the daemon's configuration: concurrency 1, so that a run holding its slot while it
 * waits for a CA would hold up every other target. The tarpit target sorts first by name
 * and so runs first. extra: more file entries (text, may be ""). */
static void write_conf(const char *conf, const char *extra)
{
    FILE *fp = fopen(conf, "w");

    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fprintf(
        fp,
        "global = { interval = \"1h\"; timeout = \"5s\"; concurrency = 1;\n"
        "  startup_spread = \"0s\"; posture_interval = \"off\"; revocation_timeout = \"10s\"; };\n"
        "log = { level = \"debug\"; };\n"
        "metrics = { listen = \"127.0.0.1:%d\"; };\n"
        "targets = (\n"
        "  { name = \"a-tarpit\"; host = \"127.0.0.1\"; port = %d; ca_file = \"%s\";\n"
        "    revocation_timeout = \"%ds\"; },\n"
        "  { name = \"crl-good\"; host = \"127.0.0.1\"; port = %d; ca_file = \"%s\"; },\n"
        "  { name = \"crl-revoked\"; host = \"127.0.0.1\"; port = %d; ca_file = \"%s\"; },\n"
        "  { name = \"ocsp-good\"; host = \"127.0.0.1\"; port = %d; ca_file = \"%s\"; },\n"
        "  { name = \"ocsp-revoked\"; host = \"127.0.0.1\"; port = %d; ca_file = \"%s\"; },\n"
        "  { name = \"rev-off\"; host = \"127.0.0.1\"; port = %d; ca_file = \"%s\";\n"
        "    revocation = \"off\"; }\n"
        ");\n"
        "files = (\n",
        web_port, port[S_TARPIT], path("root.pem"), TARPIT_S, port[S_GOOD], path("root.pem"),
        port[S_REVOKED], path("root.pem"), port[S_OCSP_GOOD], path("root.pem"),
        port[S_OCSP_REVOKED], path("root.pem"), port[S_REVOKED], path("root.pem"));
    for (int i = 1; i <= NFILES; i++) {
        char name[64];
        snprintf(name, sizeof(name), "files/chain%d.pem", i);
        fprintf(fp, "  { path = \"%s\"; ca_file = \"%s\"; },\n", path(name), path("root.pem"));
    }
    /* Without ca_file: the intermediate's issuer is looked up in the system store. */
    fprintf(fp, "%s  { path = \"%s\"; },\n", extra, path("nostore/chain.pem"));
    fprintf(fp, "  { path = \"%s\"; ca_file = \"%s\"; }\n);\n", path("more"), path("root.pem"));
    fclose(fp);
}

static void target_of(const char *file, char *buf, size_t len)
{
    snprintf(buf, len, "file:%s", path(file));
}

/* Every target but the tarpit: 5 endpoints, NFILES chain files, nostore/chain.pem, the 2
 * files of more/. */
#define NOT_TARPIT (5 + NFILES + 1 + 2)

static size_t reports_without_tarpit(json_t *all, bool *tarpit)
{
    size_t i, n = 0;
    json_t *r;

    *tarpit = false;
    json_array_foreach(all, i, r)
    {
        const char *t = cm_json_str(r, "target");
        if (t && !strcmp(t, "a-tarpit"))
            *tarpit = true;
        else
            n++;
    }
    return n;
}

static json_t *finding_at(json_t *report, const char *id, int position)
{
    return cm_finding(report, id, NULL, position);
}

static void test_daemon_revocation(void)
{
    char conf[400], log[400], t_file[600], t_revoked[600], t_leaf[600], key[800];
    json_t *all = NULL, *r, *f;
    double t0, t_others = 0;
    bool tarpit_done = true;
    char *m = NULL;

    snprintf(conf, sizeof(conf), "%s", path("daemon.conf"));
    snprintf(log, sizeof(log), "%s", path("daemon.log"));
    write_conf(conf, "");
    unlink(pki.crl_log);
    char *argv[] = {(char *)cm_th_certmon(), "run", "-c", conf, NULL};
    t0 = cm_th_now();
    if (daemon_pid > 0) /* left by a test that failed */
        cm_th_stop(daemon_pid);
    pid_t d = daemon_pid = cm_th_spawn(argv, log);
    CU_ASSERT_FATAL(d > 0);

    /* Every other target is judged while the tarpit target still waits for its CRL: its run
     * gave its only slot back after the handshake. */
    do {
        json_decref(all);
        all = api_targets();
        if (all && reports_without_tarpit(all, &tarpit_done) == NOT_TARPIT) {
            t_others = cm_th_now() - t0;
            break;
        }
        usleep(100000);
    } while (cm_th_now() - t0 < TARPIT_S - 1);
    if (!all || reports_without_tarpit(all, &tarpit_done) != NOT_TARPIT)
        run_sh("tail -n 40 '%s' >&2", log); /* say why */
    CU_ASSERT_FATAL(all != NULL);
    EXPECT_INT(reports_without_tarpit(all, &tarpit_done), NOT_TARPIT);
    CU_ASSERT_FALSE(tarpit_done);
    CU_ASSERT(t_others > 0 && t_others < TARPIT_S - 1);
    printf("\n  %d targets judged in %.2f s while the tarpit CRL (timeout %d s) was pending\n",
           NOT_TARPIT, t_others, TARPIT_S);
    /* And the tarpit target did run first: its wait began before any other target ran. */
    {
        char *text = NULL;
        char *cat[] = {"/bin/cat", log, NULL};
        cm_th_run(cat, &text, 10, NULL);
        const char *wait = strstr(text, "target=a-tarpit checks=1 waiting");
        const char *other = strstr(text, "target=crl-good ");
        CU_ASSERT(wait && other && wait < other);
        free(text);
    }

    /* Revoked via CRL: the leaf, critical, with its source, time and reason. */
    r = report_of(all, "crl-revoked");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    EXPECT_STR(cm_json_str(r, "chain.0.revocation.status"), "revoked");
    EXPECT_STR(cm_json_str(r, "chain.0.revocation.source"), "crl");
    EXPECT_STR(cm_json_str(r, "chain.0.revocation.reason"), "keyCompromise");
    CU_ASSERT_PTR_NOT_NULL(cm_json_str(r, "chain.0.revocation.revoked_at"));
    EXPECT_STR(cm_json_str(r, "chain.1.revocation.status"), "good"); /* by the root's CRL */
    f = finding_at(r, "cert.revoked", 0);
    CU_ASSERT_PTR_NOT_NULL(f);
    EXPECT_STR(cm_json_str(f, "severity"), "critical");
    EXPECT_STR(cm_json_str(r, "status"), "critical");
    /* Good via CRL. */
    r = report_of(all, "crl-good");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    EXPECT_STR(cm_json_str(r, "chain.0.revocation.status"), "good");
    EXPECT_STR(cm_json_str(r, "chain.0.revocation.source"), "crl");
    CU_ASSERT_PTR_NULL(finding_at(r, "cert.revoked", -1));
    EXPECT_STR(cm_json_str(r, "status"), "ok");
    /* Revoked and good via OCSP (openssl ocsp). */
    r = report_of(all, "ocsp-revoked");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    EXPECT_STR(cm_json_str(r, "chain.0.revocation.status"), "revoked");
    EXPECT_STR(cm_json_str(r, "chain.0.revocation.source"), "ocsp");
    EXPECT_STR(cm_json_str(r, "chain.0.revocation.reason"), "superseded");
    CU_ASSERT_PTR_NOT_NULL(finding_at(r, "cert.revoked", 0));
    r = report_of(all, "ocsp-good");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    EXPECT_STR(cm_json_str(r, "chain.0.revocation.status"), "good");
    EXPECT_STR(cm_json_str(r, "chain.0.revocation.source"), "ocsp");
    /* revocation = "off": the revoked leaf is not reported, nothing about revocation is. */
    r = report_of(all, "rev-off");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT(json_is_null(cm_json_get(r, "chain.0.revocation")));
    CU_ASSERT_PTR_NULL(finding_at(r, "cert.revoked", -1));
    CU_ASSERT_PTR_NULL(finding_at(r, "revocation.none", -1));
    CU_ASSERT_PTR_NULL(finding_at(r, "revocation.unavailable", -1));
    EXPECT_STR(cm_json_str(r, "status"), "ok");
    /* File targets: a chain file's leaf is checked against the intermediate in it, the
     * intermediate against the root of the entry's ca_file; a revoked one is critical; a leaf
     * alone says why it cannot be checked. */
    target_of("files/chain7.pem", t_file, sizeof(t_file));
    r = report_of(all, t_file);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    EXPECT_STR(cm_json_str(r, "chain.0.revocation.status"), "good");
    EXPECT_STR(cm_json_str(r, "chain.0.revocation.source"), "crl");
    EXPECT_STR(cm_json_str(r, "chain.1.revocation.status"), "good");
    EXPECT_STR(cm_json_str(r, "chain.1.revocation.source"), "crl");
    EXPECT_STR(cm_json_str(r, "status"), "ok");
    CU_ASSERT(json_is_null(cm_json_get(r, "trust_anchor"))); /* lent for the check only */
    /* The test root is in no system store: the intermediate cannot be checked, and says why. */
    target_of("nostore/chain.pem", t_file, sizeof(t_file));
    r = report_of(all, t_file);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    EXPECT_STR(cm_json_str(r, "chain.0.revocation.status"), "good");
    EXPECT_STR(cm_json_str(r, "chain.1.revocation.status"), "unavailable");
    f = finding_at(r, "revocation.unavailable", 1);
    CU_ASSERT(f && strstr(cm_json_str(f, "message"), "nor among the trust anchors"));
    target_of("more/revoked-chain.pem", t_revoked, sizeof(t_revoked));
    r = report_of(all, t_revoked);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    EXPECT_STR(cm_json_str(r, "chain.0.revocation.status"), "revoked");
    CU_ASSERT_PTR_NOT_NULL(finding_at(r, "cert.revoked", 0));
    target_of("more/leaf-only.pem", t_leaf, sizeof(t_leaf));
    r = report_of(all, t_leaf);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    EXPECT_STR(cm_json_str(r, "chain.0.revocation.status"), "unavailable");
    f = finding_at(r, "revocation.unavailable", 0);
    CU_ASSERT_PTR_NOT_NULL(f);
    CU_ASSERT(f && strstr(cm_json_str(f, "message"), "the issuer certificate is not in the file"));

    /* One CA behind NFILES + 4 chains: its CRL was fetched once, and the root's once. */
    EXPECT_INT(cm_th_crl_gets(&pki, "/inter.crl"), 1);
    EXPECT_INT(cm_th_crl_gets(&pki, "/root.crl"), 1);

    /* /metrics: the status per position, and the cache. */
    EXPECT_INT(get_local("/metrics", &m), 200);
#define RS "certmon_cert_revocation_status{target=\""
    EXPECT_INT(sample(m, RS "crl-revoked\",position=\"0\",status=\"revoked\"}"), 1);
    EXPECT_INT(sample(m, RS "crl-revoked\",position=\"0\",status=\"good\"}"), 0);
    EXPECT_INT(sample(m, RS "crl-revoked\",position=\"1\",status=\"good\"}"), 1);
    EXPECT_INT(sample(m, RS "ocsp-revoked\",position=\"0\",status=\"revoked\"}"), 1);
    EXPECT_INT(sample(m, RS "ocsp-good\",position=\"0\",status=\"good\"}"), 1);
    EXPECT_INT(sample(m, RS "crl-good\",position=\"0\",status=\"good\"}"), 1);
    snprintf(key, sizeof(key), RS "%s\",position=\"0\",status=\"unavailable\"}", t_leaf);
    EXPECT_INT(sample(m, key), 1);
    EXPECT_INT(count_prefix(m, RS "rev-off\""), 0);
    EXPECT_INT(count_prefix(m, "certmon_finding{target=\"rev-off\",id=\"cert.revoked\""), 0);
    EXPECT_INT(
        sample(m,
               "certmon_finding{target=\"crl-revoked\",id=\"cert.revoked\",severity=\"critical\"}"),
        1);
    EXPECT_INT(
        sample(
            m,
            "certmon_finding{target=\"ocsp-revoked\",id=\"cert.revoked\",severity=\"critical\"}"),
        1);
    EXPECT_INT(sample(m, "certmon_crl_cache_crls"), 2);    /* inter.crl, root.crl */
    EXPECT_INT(sample(m, "certmon_crl_cache_entries"), 3); /* 2 leaves, inter2 */
    CU_ASSERT(sample(m, "certmon_crl_cache_bytes") > 0);
    CU_ASSERT(sample(m, "certmon_crl_cache_oldest_age_seconds") >= 0);
    EXPECT_INT(sample(m, "certmon_ocsp_cache_answers"), 2);
    /* inter.crl, root.crl, the tarpit, two OCSP queries. */
    EXPECT_INT(sample(m, "certmon_revocation_fetches_total"), 5);
    EXPECT_INT(sample(m, "certmon_revocation_not_modified_total"), 0);
#undef RS
    {
        FILE *fp = fopen(path("scrape.txt"), "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
        fputs(m, fp);
        fclose(fp);
        EXPECT_INT(run_sh("promtool check metrics < '%s'", path("scrape.txt")), 0);
    }
    free(m);
    json_decref(all);
    all = NULL;

    /* The tarpit target is judged once its own budget is spent: unavailable, "timed out". */
    do {
        json_decref(all);
        all = api_targets();
        if (all && (r = report_of(all, "a-tarpit")))
            break;
        usleep(200000);
    } while (cm_th_now() - t0 < TARPIT_S + 15 * CERTMON_SLOWDOWN);
    r = all ? report_of(all, "a-tarpit") : NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT(cm_th_now() - t0 >= TARPIT_S - 1);
    EXPECT_STR(cm_json_str(r, "chain.0.revocation.status"), "unavailable");
    f = finding_at(r, "revocation.unavailable", 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(cm_json_str(f, "message"), "/inter.crl: timed out"));
    json_decref(all);
    all = NULL;

    /* A reload keeps the cache: a new chain behind the same CA is judged without a fetch. */
    {
        char extra[700], t_extra[600];
        snprintf(extra, sizeof(extra), "  { path = \"%s\"; },\n", path("extra.pem"));
        write_conf(conf, extra);
        kill(d, SIGHUP);
        target_of("extra.pem", t_extra, sizeof(t_extra));
        double t1 = cm_th_now();
        do {
            json_decref(all);
            all = api_targets();
            if (all && report_of(all, t_extra))
                break;
            usleep(100000);
        } while (cm_th_now() - t1 < 15 * CERTMON_SLOWDOWN);
        r = all ? report_of(all, t_extra) : NULL;
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        EXPECT_STR(cm_json_str(r, "chain.0.revocation.status"), "good");
        EXPECT_INT(cm_th_crl_gets(&pki, "/inter.crl"), 1);
        json_decref(all);
        all = NULL;
    }

    double took;
    EXPECT_INT(cm_th_signal_wait(d, SIGTERM, 10 * CERTMON_SLOWDOWN, &took), 0);
    daemon_pid = 0;
}

/* A run waiting for a silent CA is cancelled cleanly when its target is removed by a reload,
 * and when the daemon stops: no wait for the timeout, exit status 0 (under the sanitizers: no
 * leak, no use after free). */
static void test_stop_in_flight(void)
{
    char conf[400], log[400];
    FILE *fp;
    double took = 0;

    snprintf(conf, sizeof(conf), "%s", path("stop.conf"));
    snprintf(log, sizeof(log), "%s", path("stop.log"));
    fp = fopen(conf, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fprintf(fp,
            "global = { posture_interval = \"off\"; revocation_timeout = \"5m\"; };\n"
            "log = { level = \"debug\"; };\n"
            "metrics = { listen = \"127.0.0.1:%d\"; };\n"
            "targets = ( { name = \"a-tarpit\"; host = \"127.0.0.1\"; port = %d; ca_file = \"%s\"; "
            "} );\n"
            "files = ( { path = \"%s\"; } );\n",
            cm_th_free_port(), port[S_TARPIT], path("root.pem"), path("files/chain1.pem"));
    fclose(fp);
    char *argv[] = {(char *)cm_th_certmon(), "run", "-c", conf, NULL};
    if (daemon_pid > 0) /* left by a test that failed */
        cm_th_stop(daemon_pid);
    pid_t d = daemon_pid = cm_th_spawn(argv, log);
    CU_ASSERT_FATAL(d > 0);
    CU_ASSERT_FATAL(
        cm_th_wait_text(log, "target=a-tarpit checks=1 waiting", 15 * CERTMON_SLOWDOWN));

    /* Removed while it waits: its run ends at once. */
    fp = fopen(conf, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fprintf(fp,
            "global = { posture_interval = \"off\"; revocation_timeout = \"5m\"; };\n"
            "log = { level = \"debug\"; };\n"
            "files = ( { path = \"%s\"; } );\n",
            path("files/chain1.pem"));
    fclose(fp);
    kill(d, SIGHUP);
    CU_ASSERT(cm_th_wait_text(log, "target=a-tarpit removed", 15 * CERTMON_SLOWDOWN));
    /* Back again: it joins the fetch still in flight, and waits. */
    fp = fopen(conf, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fprintf(fp,
            "global = { posture_interval = \"off\"; revocation_timeout = \"5m\"; };\n"
            "log = { level = \"debug\"; };\n"
            "targets = ( { name = \"b-tarpit\"; host = \"127.0.0.1\"; port = %d; ca_file = \"%s\"; "
            "} );\n"
            "files = ( { path = \"%s\"; } );\n",
            port[S_TARPIT], path("root.pem"), path("files/chain1.pem"));
    fclose(fp);
    kill(d, SIGHUP);
    CU_ASSERT(cm_th_wait_text(log, "target=b-tarpit checks=1 waiting", 15 * CERTMON_SLOWDOWN));
    CU_ASSERT(waitpid(d, NULL, WNOHANG) == 0); /* alive */
    /* Stopped while it waits: at once, cleanly. */
    EXPECT_INT(cm_th_signal_wait(d, SIGTERM, 10 * CERTMON_SLOWDOWN, &took), 0);
    daemon_pid = 0;
    CU_ASSERT(took < 3 * CERTMON_SLOWDOWN);
    printf("\n  stopped in %.2f s with a revocation check in flight\n", took);
}

/* ---- The conditional re-fetch, on the checker itself ---- */

struct waitcb {
    bool done;
};

static void on_rev(struct cm_probe_result *res, void *arg)
{
    (void)res;
    ((struct waitcb *)arg)->done = true;
}

/* Checks res on the loop and waits for the answer (bounded). */
static void check_once(uv_loop_t *loop, struct cm_revctx *ctx, struct cm_probe_result *res)
{
    struct waitcb w = {false};
    double end = cm_th_now() + 10 * CERTMON_SLOWDOWN;

    EXPECT_INT(cm_rev_check(ctx, res, 5000, on_rev, &w, NULL), 0);
    while (!w.done && cm_th_now() < end)
        uv_run(loop, UV_RUN_ONCE);
    CU_ASSERT_TRUE(w.done);
}

/* A CRL past its nextUpdate is fetched again (at most once per refetch interval) with
 * If-None-Match; the 304 keeps the CRL held, and counts; a changed CRL is fetched whole. */
static void test_conditional_get(void)
{
    struct cm_file_scan_result scan = {0};
    struct cm_httpc *http = NULL;
    struct cm_revctx *ctx = NULL;
    struct cm_rev_stats st;
    struct cm_probe_result *res;
    uv_loop_t loop;
    json_t *reqs;
    int64_t next_update;
    char err[256];

    unlink(pki.crl_log);
    EXPECT_INT(cm_file_scan(path("stale-chain.pem"), (int64_t)time(NULL), &scan), 0);
    CU_ASSERT_FATAL(scan.count == 1 && scan.items[0]->tls.chain.count == 2);
    res = scan.items[0];
    CU_ASSERT_FATAL(uv_loop_init(&loop) == 0);
    CU_ASSERT_FATAL(cm_httpc_new(&loop, &http, err, sizeof(err)) == 0);
    CU_ASSERT_FATAL(cm_revctx_new(&loop, http, &ctx) == 0);
    cm_revctx_set_refetch(ctx, 1);

    /* First: fetched whole, held, and stale. */
    check_once(&loop, ctx, res);
    CU_ASSERT_PTR_NOT_NULL_FATAL(res->revocation);
    EXPECT_INT(res->revocation->certs[0].status, CM_REV_UNAVAILABLE);
    CU_ASSERT_TRUE(res->revocation->certs[0].crl_stale);
    next_update = res->revocation->certs[0].next_update;
    CU_ASSERT(next_update > 0 && next_update < (int64_t)time(NULL));
    cm_revctx_stats(ctx, (int64_t)time(NULL), &st);
    EXPECT_INT(st.crls, 1);
    EXPECT_INT(st.fetches, 1);
    EXPECT_INT(st.not_modified, 0);
    reqs = cm_th_crl_requests(&pki, "/stale.crl");
    EXPECT_INT(json_array_size(reqs), 1);
    CU_ASSERT(json_is_null(cm_json_get(reqs, "0.if_none_match")));
    EXPECT_INT(json_integer_value(cm_json_get(reqs, "0.status")), 200);
    json_decref(reqs);

    /* At once: nothing is fetched (within the refetch interval). */
    check_once(&loop, ctx, res);
    EXPECT_INT(cm_th_crl_gets(&pki, "/stale.crl"), 1);

    /* A second later: a conditional GET, answered 304; the CRL held is kept. */
    usleep(1100000);
    check_once(&loop, ctx, res);
    reqs = cm_th_crl_requests(&pki, "/stale.crl");
    EXPECT_INT(json_array_size(reqs), 2);
    EXPECT_STR(cm_json_str(reqs, "1.if_none_match"), cm_json_str(reqs, "0.etag"));
    CU_ASSERT_PTR_NOT_NULL(cm_json_str(reqs, "1.if_modified_since"));
    EXPECT_INT(json_integer_value(cm_json_get(reqs, "1.status")), 304);
    json_decref(reqs);
    cm_revctx_stats(ctx, (int64_t)time(NULL), &st);
    EXPECT_INT(st.fetches, 2);
    EXPECT_INT(st.not_modified, 1);
    EXPECT_INT(st.crls, 1);
    EXPECT_INT(res->revocation->certs[0].status, CM_REV_UNAVAILABLE);
    CU_ASSERT_TRUE(res->revocation->certs[0].crl_stale);
    EXPECT_INT(res->revocation->certs[0].next_update, next_update);

    /* The CA publishes a current CRL: the ETag no longer matches, the new CRL is fetched and
     * the leaf is good. */
    CU_ASSERT_FATAL(run_sh("cp '%s/www/inter.crl' '%s/www/stale.crl'", pki.dir, pki.dir) == 0);
    usleep(1100000);
    check_once(&loop, ctx, res);
    reqs = cm_th_crl_requests(&pki, "/stale.crl");
    EXPECT_INT(json_array_size(reqs), 3);
    CU_ASSERT_PTR_NOT_NULL(cm_json_str(reqs, "2.if_none_match"));
    EXPECT_INT(json_integer_value(cm_json_get(reqs, "2.status")), 200);
    json_decref(reqs);
    EXPECT_INT(res->revocation->certs[0].status, CM_REV_GOOD);
    EXPECT_INT(res->revocation->certs[0].source, CM_REV_SRC_CRL);
    cm_revctx_stats(ctx, (int64_t)time(NULL), &st);
    EXPECT_INT(st.fetches, 3);
    EXPECT_INT(st.not_modified, 1);

    cm_revctx_close(ctx);
    cm_httpc_close(http);
    uv_run(&loop, UV_RUN_DEFAULT);
    EXPECT_INT(uv_loop_close(&loop), 0);
    cm_file_scan_result_clear(&scan);
}

static CU_TestInfo tests[] = {
    {"conditional GET: If-None-Match, a 304 keeps the CRL, a new CRL replaces it",
     test_conditional_get},
    {"daemon: revoked via CRL and OCSP, one fetch per CA, a tarpit delays nobody, off",
     test_daemon_revocation},
    {"daemon: a check in flight is cancelled by a reload and by a stop", test_stop_in_flight},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("integration.daemon_revocation", tests, suite_init, suite_cleanup);
}
