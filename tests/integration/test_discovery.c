/* integration.discovery: file_sd discovery in a running daemon, as an operator sees it. JSON
 * and YAML files in a directory of the test, written while `certmon run` runs against two
 * local `openssl s_server` endpoints: targets appear in /api/v1/targets and /metrics within 5 s
 * of a write and leave within 5 s of a removal, without a SIGHUP; a target that did not change
 * keeps its last probe while another one changes; broken files (bad JSON, bad YAML, wrong
 * types, a bad __certmon_ value) keep the targets they had and show in /metrics and the log
 * with file:line; labels and __certmon_ keys reach /metrics and the probe; a configured target
 * keeps its name against a discovered one; a SIGHUP reload keeps the discovered targets and
 * their state. */
#include "cmtest.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

static char dir[256], sd[300], conf[300], logpath[300];
static int port_a, port_b, mport;
static pid_t pid_a, pid_b, pid_d;

/* Writes a discovery file the way tools should: a temporary name, then a rename. */
static void write_sd(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void write_sd(const char *name, const char *fmt, ...)
{
    char tmp[400], path[400];
    FILE *fp;
    va_list ap;

    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", sd, name);
    snprintf(path, sizeof(path), "%s/%s", sd, name);
    fp = fopen(tmp, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    va_start(ap, fmt);
    vfprintf(fp, fmt, ap);
    va_end(ap);
    fclose(fp);
    CU_ASSERT_EQUAL_FATAL(rename(tmp, path), 0);
}

/* cm_th_wait_metric on the daemon, the time scaled. */
static double wait_metric(const char *name, const char *m1, const char *m2, double want,
                          double timeout_s)
{
    return cm_th_wait_metric(mport, name, m1, m2, want, timeout_s * CERTMON_SLOWDOWN);
}

/* Whether /api/v1/targets lists a report of target name. */
static bool listed(const char *name)
{
    char *body = cm_th_http_get_ok(mport, "/api/v1/targets");
    json_t *j = body ? json_loads(body, 0, NULL) : NULL, *t;
    bool found = false;
    size_t i;

    json_array_foreach(j, i, t)
    {
        const char *n = cm_json_str(t, "target");
        found |= n && !strcmp(n, name);
    }
    json_decref(j);
    free(body);
    return found;
}

static double wait_listed(const char *name, bool want, double timeout_s)
{
    double start = cm_th_now(), end = start + timeout_s * CERTMON_SLOWDOWN;

    do {
        if (listed(name) == want)
            return cm_th_now() - start;
        usleep(50 * 1000);
    } while (cm_th_now() < end);
    return -1;
}

static int suite_init(void)
{
    snprintf(dir, sizeof(dir), "/tmp/certmon-discovery-XXXXXX");
    if (!mkdtemp(dir) || !cm_th_pki_dir())
        return -1;
    snprintf(sd, sizeof(sd), "%s/targets.d", dir);
    snprintf(conf, sizeof(conf), "%s/certmon.conf", dir);
    snprintf(logpath, sizeof(logpath), "%s/daemon.log", dir);
    if (mkdir(sd, 0755) < 0)
        return -1;
    port_a = cm_th_free_port();
    port_b = cm_th_free_port();
    pid_a = cm_th_s_server(port_a, "valid.pem", "leaf.key", true);
    pid_b = cm_th_s_server(port_b, "valid.pem", "leaf.key", true);
    return pid_a > 0 && pid_b > 0 ? 0 : -1;
}

static int suite_cleanup(void)
{
    if (pid_d > 0)
        cm_th_signal_wait(pid_d, SIGTERM, 10, NULL);
    cm_th_stop(pid_a);
    cm_th_stop(pid_b);
    if (!getenv("CERTMON_KEEP"))
        cm_th_remove_tree(dir);
    return 0;
}

/* The daemon: one configured target ("configured", port a), a discovery source over *.json and
 * *.yml of the directory with defaults (the test CA, a label), probes once an hour: every
 * probe after the first comes from a change. */
static void test_start(void)
{
    char *argv[] = {(char *)cm_th_certmon(), "run", "-c", conf, NULL};

    mport = cm_th_free_port();
    write_sd("a.json",
             "[{\"targets\": [\"127.0.0.1:%d\"],\n"
             "  \"labels\": {\"env\": \"prod\", \"__meta_filepath\": \"dropped\",\n"
             "             \"__certmon_name\": \"alpha\"}}]\n",
             port_a);
    cm_th_write_config(
        conf,
        "global = { interval = \"1h\"; startup_spread = \"1s\"; state_file = "
        "\"%s/state.db\"; };\n"
        "log = { level = \"debug\"; };\n"
        "metrics = { listen = \"127.0.0.1:%d\"; };\n"
        "targets = ( { name = \"configured\"; host = \"127.0.0.1\"; port = %d;\n"
        "              ca_file = \"%s\"; } );\n"
        "discovery = ( { name = \"fleet\"; files = [\"targets.d/*.json\",\n"
        "                \"targets.d/*.yml\"]; refresh = \"30s\"; ca_file = \"%s\";\n"
        "                labels = { team = \"web\"; }; } );\n",
        dir, mport, port_b, cm_th_pki("root.pem"), cm_th_pki("root.pem"));
    pid_d = cm_th_spawn(argv, logpath);
    CU_ASSERT_FATAL(pid_d > 0);
    CU_ASSERT_FATAL(cm_th_wait_port(mport, (int)(10000 * CERTMON_SLOWDOWN)));
    CU_ASSERT_FATAL(wait_listed("alpha", true, 10) >= 0);
    CU_ASSERT(wait_listed("configured", true, 10) >= 0);

    char *m = cm_th_http_get_ok(mport, "/metrics");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    /* Labels: the file's, the source's; Prometheus's meta label dropped. */
    EXPECT_INT(cm_th_metric(m, "certmon_probe_success", "target=\"alpha\"", "env=\"prod\""), 1);
    EXPECT_INT(cm_th_metric(m, "certmon_probe_success", "target=\"alpha\"", "team=\"web\""), 1);
    CU_ASSERT(strstr(m, "__meta_filepath") == NULL && strstr(m, "dropped") == NULL);
    EXPECT_INT(cm_th_metric(m, "certmon_verify_ok", "target=\"alpha\"", NULL), 1);
    EXPECT_INT(cm_th_metric(m, "certmon_discovery_files", "source=\"fleet\"", NULL), 1);
    EXPECT_INT(cm_th_metric(m, "certmon_discovery_targets", "source=\"fleet\"", NULL), 1);
    EXPECT_INT(cm_th_metric(m, "certmon_discovery_file_valid", "a.json\"", NULL), 1);
    EXPECT_INT(cm_th_metric(m, "certmon_discovery_errors_total", "a.json\"", NULL), 0);
    CU_ASSERT(cm_th_metric(m, "certmon_discovery_last_success_timestamp_seconds", "a.json\"",
                           NULL) > 1.7e9);
    EXPECT_INT(cm_th_metric(m, "certmon_targets", NULL, NULL), 2);

    /* The new families pass Prometheus's own checker. */
    char path[400], cmd[600], *out = NULL;
    snprintf(path, sizeof(path), "%s/metrics.txt", dir);
    FILE *fp = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fputs(m, fp);
    fclose(fp);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s' 2>&1", path);
    char *sh[] = {"/bin/sh", "-c", cmd, NULL};
    EXPECT_INT(cm_th_run(sh, &out, 30, NULL), 0);
    if (out && *out)
        fprintf(stderr, "\n    promtool: %s", out);
    free(out);
    free(m);
}

/* A YAML file written while the daemon runs: its targets are probed within 5 s; __certmon_sni
 * reaches the probe (the name the leaf must match: it does not, so host.mismatch); alpha, not
 * touched, keeps its last probe. */
static void test_add_yaml(void)
{
    char *m = cm_th_http_get_ok(mport, "/metrics");
    double alpha_at, took;

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    alpha_at = cm_th_metric(m, "certmon_last_probe_timestamp_seconds", "target=\"alpha\"", NULL);
    free(m);
    CU_ASSERT(alpha_at > 0);
    sleep(1); /* a new probe of alpha would show a later second */
    write_sd("b.yml",
             "# the web tier\n"
             "- targets:\n"
             "    - 127.0.0.1:%d\n"
             "  labels:\n"
             "    __certmon_name: gamma\n"
             "    __certmon_sni: wrong.example\n"
             "    __certmon_warn_days: \"10\"\n"
             "    tier: edge\n",
             port_b);
    took = wait_listed("gamma", true, 5);
    fprintf(stderr, "(gamma probed %.2f s after the write) ", took);
    CU_ASSERT(took >= 0 && took < 5);
    m = cm_th_http_get_ok(mport, "/metrics");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    EXPECT_INT(cm_th_metric(m, "certmon_verify_ok", "target=\"gamma\"", "tier=\"edge\""), 0);
    EXPECT_INT(cm_th_metric(m, "certmon_finding", "target=\"gamma\"", "id=\"host.mismatch\""), 1);
    EXPECT_INT(cm_th_metric(m, "certmon_last_probe_timestamp_seconds", "target=\"alpha\"", NULL),
               alpha_at);
    EXPECT_INT(cm_th_metric(m, "certmon_discovery_files", "source=\"fleet\"", NULL), 2);
    EXPECT_INT(cm_th_metric(m, "certmon_discovery_targets", "source=\"fleet\"", NULL), 2);
    free(m);
}

/* Broken files keep their targets, and say so in /metrics and the log, with file:line. */
static void test_broken_files(void)
{
    char want[600];
    double alpha_at;
    char *m = cm_th_http_get_ok(mport, "/metrics");

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    alpha_at = cm_th_metric(m, "certmon_last_probe_timestamp_seconds", "target=\"alpha\"", NULL);
    free(m);

    /* Bad JSON: a missing bracket on line 2. */
    write_sd("a.json", "[{\"targets\": [\"127.0.0.1:%d\"],\n  \"labels\": {}}\n", port_a);
    CU_ASSERT(wait_metric("certmon_discovery_file_valid", "a.json\"", NULL, 0, 5) >= 0);
    EXPECT_INT(wait_metric("certmon_discovery_errors_total", "a.json\"", NULL, 1, 5) >= 0, 1);
    snprintf(want, sizeof(want), "%s/a.json:3: not valid JSON", sd);
    CU_ASSERT(cm_th_wait_text(logpath, want, 5));
    CU_ASSERT(cm_th_wait_text(logpath, "a.json not applied: its previous 1 targets stay", 5));

    /* Wrong types in YAML: targets a scalar, on line 2. */
    write_sd("b.yml", "- labels: {tier: edge}\n  targets: 127.0.0.1:%d\n", port_b);
    CU_ASSERT(wait_metric("certmon_discovery_file_valid", "b.yml\"", NULL, 0, 5) >= 0);
    snprintf(want, sizeof(want),
             "%s/b.yml:2: group 0: targets: expected a list of strings, found a scalar", sd);
    CU_ASSERT(cm_th_wait_text(logpath, want, 5));

    /* Bad YAML syntax. */
    write_sd("b.yml", "- targets: [127.0.0.1:%d\n  labels: {tier: edge}\n", port_b);
    CU_ASSERT(wait_metric("certmon_discovery_errors_total", "b.yml\"", NULL, 2, 5) >= 0);
    snprintf(want, sizeof(want), "%s/b.yml:", sd);
    CU_ASSERT(cm_th_wait_text(logpath, "not valid YAML", 5));

    /* A bad entry: a __certmon_ value the target table refuses, named with file:line. */
    write_sd("b.yml", "- targets: [127.0.0.1:%d]\n  labels: {__certmon_interval: soon}\n", port_b);
    CU_ASSERT(wait_metric("certmon_discovery_errors_total", "b.yml\"", NULL, 3, 5) >= 0);
    snprintf(want, sizeof(want), "%s/b.yml:1: group 0, target '127.0.0.1:%d': __certmon_interval",
             sd, port_b);
    CU_ASSERT(cm_th_wait_text(logpath, want, 5));

    /* Every target stayed, and was not probed again. */
    CU_ASSERT(listed("alpha") && listed("gamma") && listed("configured"));
    m = cm_th_http_get_ok(mport, "/metrics");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    EXPECT_INT(cm_th_metric(m, "certmon_discovery_targets", "source=\"fleet\"", NULL), 2);
    EXPECT_INT(cm_th_metric(m, "certmon_probe_success", "target=\"gamma\"", NULL), 1);
    EXPECT_INT(cm_th_metric(m, "certmon_last_probe_timestamp_seconds", "target=\"alpha\"", NULL),
               alpha_at);
    free(m);

    /* Fixed: applied again; alpha's content is what it was, so its schedule stays. */
    write_sd("a.json",
             "[{\"targets\": [\"127.0.0.1:%d\"],\n"
             "  \"labels\": {\"env\": \"prod\", \"__certmon_name\": \"alpha\"}}]\n",
             port_a);
    CU_ASSERT(wait_metric("certmon_discovery_file_valid", "a.json\"", NULL, 1, 5) >= 0);
    EXPECT_INT(wait_metric("certmon_last_probe_timestamp_seconds", "target=\"alpha\"", NULL,
                           alpha_at, 2) >= 0,
               1);
}

/* A discovered name a configured target has: the configured one stays as configured. */
static void test_collision(void)
{
    write_sd("c.json",
             "[{\"targets\": [\"127.0.0.1:%d\"], \"labels\": "
             "{\"__certmon_name\": \"configured\", \"clash\": \"yes\"}}]\n",
             port_a);
    CU_ASSERT(cm_th_wait_text(logpath, "target=configured file=", 5));
    CU_ASSERT(cm_th_wait_text(logpath, "left out: a configured target has that name", 5));
    char *m = cm_th_http_get_ok(mport, "/metrics");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    EXPECT_INT(cm_th_metric(m, "certmon_discovery_files", "source=\"fleet\"", NULL), 3);
    EXPECT_INT(cm_th_metric(m, "certmon_discovery_targets", "source=\"fleet\"", NULL), 2);
    CU_ASSERT(strstr(m, "clash=") == NULL);
    free(m);
    unlink(cm_th_path(sd, "c.json"));
}

/* SIGHUP: the reloaded configuration keeps the discovered targets, state and schedule. */
static void test_reload_keeps(void)
{
    char *m = cm_th_http_get_ok(mport, "/metrics");
    double alpha_at;

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    alpha_at = cm_th_metric(m, "certmon_last_probe_timestamp_seconds", "target=\"alpha\"", NULL);
    free(m);
    CU_ASSERT_EQUAL_FATAL(kill(pid_d, SIGHUP), 0);
    CU_ASSERT(cm_th_wait_text(logpath, "reloaded targets=3", 10));
    sleep(1);
    m = cm_th_http_get_ok(mport, "/metrics");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    EXPECT_INT(cm_th_metric(m, "certmon_last_probe_timestamp_seconds", "target=\"alpha\"", NULL),
               alpha_at);
    EXPECT_INT(cm_th_metric(m, "certmon_probe_success", "target=\"gamma\"", NULL), 1);
    free(m);
}

/* The directory gone (an unmounted file system): every target stays; back, it is followed
 * again. */
static void test_dir_gone(void)
{
    char away[400];

    snprintf(away, sizeof(away), "%s.away", sd);
    CU_ASSERT_EQUAL_FATAL(rename(sd, away), 0);
    CU_ASSERT(cm_th_wait_text(logpath, "its targets stay as they were", 5));
    CU_ASSERT(listed("alpha") && listed("gamma"));
    char *m = cm_th_http_get_ok(mport, "/metrics");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    EXPECT_INT(cm_th_metric(m, "certmon_discovery_targets", "source=\"fleet\"", NULL), 2);
    free(m);
    CU_ASSERT_EQUAL_FATAL(rename(away, sd), 0);
    /* Back: a change in it is seen at once again. */
    write_sd("d.json",
             "[{\"targets\": [\"127.0.0.1:%d\"], \"labels\": "
             "{\"__certmon_name\": \"delta\"}}]\n",
             port_b);
    CU_ASSERT(wait_listed("delta", true, 5) >= 0);
    unlink(cm_th_path(sd, "d.json"));
    CU_ASSERT(wait_listed("delta", false, 5) >= 0);
}

/* A removed file takes its targets along within 5 s; the others stay. */
static void test_remove(void)
{
    double took;

    CU_ASSERT_EQUAL_FATAL(unlink(cm_th_path(sd, "b.yml")), 0);
    took = wait_listed("gamma", false, 5);
    fprintf(stderr, "(gamma gone %.2f s after the removal) ", took);
    CU_ASSERT(took >= 0 && took < 5);
    CU_ASSERT(wait_metric("certmon_probe_success", "target=\"gamma\"", NULL, -1, 5) >= 0);
    CU_ASSERT(listed("alpha") && listed("configured"));
    CU_ASSERT(wait_metric("certmon_discovery_files", "source=\"fleet\"", NULL, 1, 5) >= 0);
    CU_ASSERT(cm_th_wait_text(logpath, "b.yml gone: its 1 targets are dropped", 5));
    EXPECT_INT(cm_th_signal_wait(pid_d, SIGTERM, 10, NULL), 0);
    pid_d = -1;
}

static CU_TestInfo tests[] = {
    {"start: discovered targets probed, labels and metrics", test_start},
    {"a YAML file added: probed within 5 s, __certmon_sni reaches the probe", test_add_yaml},
    {"broken files keep their targets, reported in log and metrics", test_broken_files},
    {"a configured name wins", test_collision},
    {"SIGHUP keeps discovered targets and their state", test_reload_keeps},
    {"the directory gone keeps every target", test_dir_gone},
    {"a removed file takes its targets within 5 s", test_remove},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("discovery", tests, suite_init, suite_cleanup);
}
