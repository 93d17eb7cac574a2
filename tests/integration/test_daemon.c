/* certmon run and certmon config-check, driven as an operator would: a config file written
 * by the test, real TLS servers (openssl s_server) and certificate files from a PKI made at
 * test time, a connection-counting listener for the scheduler, signals for reload and stop,
 * and the state database read back after restarts, a SIGTERM and kill -9. */
#include "cmtest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sqlite3.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "certmon/base/text.h"
#include "certmon/daemon/state.h"
#include "certmon/daemon/store.h"

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

static char dir[256];
static int port_valid, port_self;
static pid_t pid_valid, pid_self;

/* Waits until the file at path contains needle, at most timeout_s (scaled). */
static bool wait_text(const char *path, const char *needle, double timeout_s)
{
    return cm_th_wait_text(path, needle, timeout_s * CERTMON_SLOWDOWN);
}

static bool log_has(const char *log, const char *needle)
{
    char *t = cm_th_read_text(log);
    bool found = strstr(t, needle) != NULL;

    free(t);
    return found;
}

static pid_t start_daemon(const char *conf, const char *log)
{
    char *argv[] = {(char *)cm_th_certmon(), "run", "-c", (char *)conf, NULL};

    unlink(log);
    return cm_th_spawn(argv, log);
}

static bool alive(pid_t pid)
{
    return waitpid(pid, NULL, WNOHANG) == 0;
}

static json_t *load_state(const char *path)
{
    return cm_th_state_json(path);
}

static json_t *state_entry(json_t *st, const char *name)
{
    size_t i;
    json_t *e;

    json_array_foreach(json_object_get(st, "targets"), i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        if (n && !strcmp(n, name))
            return e;
    }
    return NULL;
}

/* Waits until the state file has an entry for name with a report whose last_probe is later
 * than after (Unix seconds; 0: any). Returns the state (caller decrefs) or NULL. */
static json_t *wait_entry(const char *state, const char *name, int64_t after, double timeout_s)
{
    double end = cm_th_now() + timeout_s * CERTMON_SLOWDOWN;

    do {
        json_t *st = load_state(state);
        json_t *e = state_entry(st, name);
        if (e && json_is_object(json_object_get(e, "report")) &&
            json_integer_value(json_object_get(e, "last_probe")) > after)
            return st;
        json_decref(st);
        usleep(100000);
    } while (cm_th_now() < end);
    fprintf(stderr, "\n  no state entry '%s' probed after %lld in %s\n", name, (long long)after,
            state);
    return NULL;
}

static const char *entry_str(json_t *e, const char *path)
{
    return cm_json_str(e, path);
}

static json_t *entry_finding(json_t *e, const char *id)
{
    return cm_finding(json_object_get(e, "report"), id, NULL, -1);
}

/* Runs certmon with args, stderr folded into stdout. */
static int run_certmon(char **out, const char *cmd, const char *conf)
{
    char *argv[] = {"/bin/sh", "-c", "exec \"$0\" \"$1\" -c \"$2\" 2>&1", (char *)cm_th_certmon(),
                    (char *)cmd, (char *)conf, NULL};

    return cm_th_run(argv, out, 30, NULL);
}

static pid_t start_counter(int port, int hold_ms, const char *log)
{
    char p[16], h[16];
    char *argv[] = {"/usr/bin/python3", (char *)cm_th_script("conn_counter.py"), p, h,
                    (char *)log, NULL};

    snprintf(p, sizeof(p), "%d", port);
    snprintf(h, sizeof(h), "%d", hold_ms);
    unlink(log);
    return cm_th_spawn(argv, NULL);
}

/* Reads the counter's log: open times into opens (at most max), the largest number of
 * connections open at once into *peak. The first connection (cm_th_wait_port's) is not
 * counted. Returns the number of opens. */
static size_t read_counter(const char *log, double *opens, size_t max, int *peak)
{
    bool skipped = false;
    FILE *fp = fopen(log, "r");
    char kind[8];
    double t;
    int n;
    size_t count = 0;

    *peak = 0;
    if (!fp)
        return 0;
    while (fscanf(fp, "%7s %lf %d", kind, &t, &n) == 3) {
        if (!strcmp(kind, "open")) {
            if (!skipped) {
                skipped = true;
                continue;
            }
            if (count < max)
                opens[count] = t;
            count++;
        }
        if (n > *peak)
            *peak = n;
    }
    fclose(fp);
    return count;
}

static size_t wait_opens(const char *log, size_t want, double timeout_s)
{
    double end = cm_th_now() + timeout_s * CERTMON_SLOWDOWN, opens[1];
    int peak;
    size_t n;

    do {
        if ((n = read_counter(log, opens, 0, &peak)) >= want)
            return n;
        usleep(50000);
    } while (cm_th_now() < end);
    return n;
}

static void remove_tree(const char *path)
{
    char *argv[] = {"rm", "-rf", (char *)path, NULL};
    char *out = NULL;

    cm_th_run(argv, &out, 30, NULL);
    free(out);
}

/* ---- Suite setup: two TLS servers and a directory of certificate files ---- */

static int suite_init(void)
{
    char *out = NULL;

    snprintf(dir, sizeof(dir), "/tmp/certmon-daemon-XXXXXX");
    if (!mkdtemp(dir) || !cm_th_pki_dir())
        return -1;
    port_valid = cm_th_free_port();
    port_self = cm_th_free_port();
    pid_valid = cm_th_s_server(port_valid, "valid.pem", "leaf.key", true);
    pid_self = cm_th_s_server(port_self, "self.pem", "self.key", false);
    if (pid_valid < 0 || pid_self < 0 || !cm_th_wait_port(port_valid, 5000) ||
        !cm_th_wait_port(port_self, 5000))
        return -1;
    /* Certificate files: PEM, DER, a bundle, garbage, and a private key (skipped). */
    mkdir(cm_th_path(dir, "certs"), 0755);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "cp '%s' '%s/certs/leaf.pem' && cat '%s' > '%s/certs/bundle.pem' && "
             "openssl x509 -in '%s' -outform der -out '%s/certs/leaf.der' && "
             "echo 'this is not a certificate' > '%s/certs/garbage.pem' && "
             "cp '%s' '%s/certs/leaf.key'",
             cm_th_pki("valid.pem"), dir, cm_th_pki("valid.chain.pem"), dir, cm_th_pki("valid.pem"),
             dir, dir, cm_th_pki("leaf.key"), dir);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    int rc = cm_th_run(argv, &out, 30, NULL);
    free(out);
    return rc == 0 ? 0 : -1;
}

static int suite_cleanup(void)
{
    cm_th_stop(pid_valid);
    cm_th_stop(pid_self);
    remove_tree(dir);
    return 0;
}

/* A configuration with the two servers and the certificate directory; extra goes into the
 * targets list; state is the state file's name inside dir. */
static void write_config(const char *conf, const char *state, const char *global_extra,
                         const char *extra_targets, bool with_files)
{
    cm_th_write_config(conf,
               "global = { interval = \"1h\"; timeout = \"5s\"; startup_spread = \"1s\";\n"
               "           state_file = \"%s\"; %s };\n"
               "log = { level = \"debug\"; };\n"
               "targets = (\n"
               "  { host = \"localhost\"; port = %d; ca_file = \"%s\"; labels = { team = \"web\"; }; },\n"
               "  { host = \"127.0.0.1\"; port = %d; name = \"selfsigned\"; interval = \"3s\";\n"
               "    posture = false; }%s%s\n"
               ");\n"
               "%s",
               state, global_extra, port_valid, cm_th_pki("root.pem"), port_self,
               extra_targets ? ",\n  " : "", extra_targets ? extra_targets : "",
               with_files ? "files = ( { path = \"certs\"; interval = \"1h\"; } );\n" : "");
}

/* ---- config-check and startup with bad configurations ---- */

static void test_config_check_ok(void)
{
    const char *conf = cm_th_path(dir, "ok.conf");
    char *out = NULL;

    write_config(conf, "ok-state.json", "", NULL, true);
    EXPECT_INT(run_certmon(&out, "config-check", conf), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "OK: 2 endpoint targets, 1 file targets"));
    free(out);
}

static void test_config_check_names_lines(void)
{
    const char *conf = cm_th_path(dir, "bad.conf");
    char *out = NULL, want[600];

    cm_th_write_config(conf,
               "global = {\n"
               "  intervall = \"1h\";\n"              /* 2: unknown key, near miss */
               "  timeout = \"10x\";\n"               /* 3: bad duration */
               "};\n"
               "targets = (\n"
               "  { host = \"localhost\"; port = 70000; },\n"  /* 6: out of range */
               "  { host = \"a.example\"; ca_file = \"/nonexistent/ca.pem\"; },\n" /* 7 */
               "  { host = \"b.example\"; },\n"
               "  { host = \"b.example\"; }\n"        /* 9: duplicate of line 8 */
               ");\n");
    EXPECT_INT(run_certmon(&out, "config-check", conf), 1);
    snprintf(want, sizeof(want), "%s:2:", conf);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "interval"));
    snprintf(want, sizeof(want), "%s:3:", conf);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
    snprintf(want, sizeof(want), "%s:6:", conf);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
    snprintf(want, sizeof(want), "%s:7:", conf);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
    snprintf(want, sizeof(want), "%s:9:", conf);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
    if (!strstr(out, want))
        fprintf(stderr, "\n%s\n", out);
    free(out);

    /* The daemon refuses to start on it, with the same messages. */
    EXPECT_INT(run_certmon(&out, "run", conf), 1);
    snprintf(want, sizeof(want), "%s:6:", conf);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
    free(out);

    /* A syntax error names its line. */
    cm_th_write_config(conf, "global = {\n  interval = \"1h\";\n  timeout = ;\n};\n");
    EXPECT_INT(run_certmon(&out, "config-check", conf), 1);
    snprintf(want, sizeof(want), "%s:3:", conf);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
    free(out);
}

/* ---- The daemon at work ---- */

static void test_probes_files_restart(void)
{
    const char *conf = cm_th_path(dir, "main.conf"), *state = cm_th_path(dir, "main-state.json");
    const char *log = cm_th_path(dir, "main.log");
    char valid_name[64], fs_self[64];
    json_t *st, *e;
    pid_t pid;
    double elapsed;
    int64_t valid_last, self_last;

    snprintf(valid_name, sizeof(valid_name), "localhost:%d", port_valid);
    write_config(conf, "main-state.json", "", NULL, true);
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);

    /* Every target is probed once within the start spread, and the state file says so. */
    st = wait_entry(state, valid_name, 0, 10);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    json_decref(st);
    st = wait_entry(state, "selfsigned", 0, 10);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    json_decref(st);
    char leaf_pem[600];
    snprintf(leaf_pem, sizeof(leaf_pem), "file:%s/certs/leaf.pem", dir);
    st = wait_entry(state, leaf_pem, 0, 10);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);

    e = state_entry(st, valid_name);
    EXPECT_STR(entry_str(e, "report.status"), "ok");
    EXPECT_STR(entry_str(e, "report.tls.version"), "TLS1.3");
    EXPECT_STR(entry_str(e, "report.labels.team"), "web");
    EXPECT_STR(entry_str(e, "report.chain.0.subject"), "CN=localhost");
    /* The posture pass ran (TLS 1.3 accepted), on its own schedule. */
    CU_ASSERT(json_is_true(cm_json_get(e, "report.posture.forward_secrecy")));
    CU_ASSERT(json_integer_value(json_object_get(e, "posture_at")) > 0);

    e = state_entry(st, "selfsigned");
    EXPECT_STR(entry_str(e, "report.status"), "critical");
    json_t *f = entry_finding(e, "chain.self_signed");
    CU_ASSERT_PTR_NOT_NULL(f);
    const char *first_seen = f ? json_string_value(json_object_get(f, "first_seen")) : NULL;
    CU_ASSERT_PTR_NOT_NULL(first_seen);
    char first_seen_copy[64] = "";
    if (first_seen)
        snprintf(first_seen_copy, sizeof(first_seen_copy), "%s", first_seen);

    /* File targets: one entry per file, PEM, DER and bundle read, garbage a probe.failed,
     * the private key skipped. */
    e = state_entry(st, leaf_pem);
    EXPECT_STR(entry_str(e, "report.chain.0.subject"), "CN=localhost");
    EXPECT_STR(entry_str(e, "report.status"), "ok");
    snprintf(fs_self, sizeof(fs_self), "file:%s", "");
    char name[600];
    snprintf(name, sizeof(name), "file:%s/certs/leaf.der", dir);
    e = state_entry(st, name);
    EXPECT_STR(entry_str(e, "report.chain.0.subject"), "CN=localhost");
    snprintf(name, sizeof(name), "file:%s/certs/bundle.pem", dir);
    e = state_entry(st, name);
    EXPECT_STR(entry_str(e, "report.chain.1.subject"), "CN=certmon Test Intermediate CA");
    snprintf(name, sizeof(name), "file:%s/certs/garbage.pem", dir);
    e = state_entry(st, name);
    EXPECT_STR(entry_str(e, "report.error.kind"), "file");
    CU_ASSERT_PTR_NOT_NULL(entry_finding(e, "probe.failed"));
    snprintf(name, sizeof(name), "file:%s/certs/leaf.key", dir);
    CU_ASSERT_PTR_NULL(state_entry(st, name));
    valid_last = json_integer_value(json_object_get(state_entry(st, valid_name), "last_probe"));
    json_decref(st);

    /* The 3 s target comes round again on its interval. */
    st = load_state(state);
    self_last = json_integer_value(json_object_get(state_entry(st, "selfsigned"), "last_probe"));
    json_decref(st);
    st = wait_entry(state, "selfsigned", self_last, 8);
    CU_ASSERT_PTR_NOT_NULL(st);
    json_decref(st);

    /* A status change was logged as one line with key=value fields. */
    CU_ASSERT(log_has(log, "target=selfsigned status=critical was=new"));

    /* SIGTERM: exit 0 within the bound, state written. */
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, &elapsed), 0);
    CU_ASSERT(elapsed < 3.0 * CERTMON_SLOWDOWN);
    CU_ASSERT(log_has(log, "stopped"));

    /* Restart: the state is loaded, the hourly target is not probed again at once (its
     * schedule continues), the 3 s one is, and its finding keeps its first-seen time. */
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT(wait_text(log, "loaded", 5));
    st = load_state(state);
    self_last = json_integer_value(json_object_get(state_entry(st, "selfsigned"), "last_probe"));
    json_decref(st);
    st = wait_entry(state, "selfsigned", self_last, 8);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    e = state_entry(st, "selfsigned");
    f = entry_finding(e, "chain.self_signed");
    EXPECT_STR(f ? json_string_value(json_object_get(f, "first_seen")) : NULL, first_seen_copy);
    EXPECT_INT(json_integer_value(json_object_get(state_entry(st, valid_name), "last_probe")),
               valid_last);
    json_decref(st);
    EXPECT_INT(cm_th_signal_wait(pid, SIGINT, 10, NULL), 0);
}

static void test_reload(void)
{
    const char *conf = cm_th_path(dir, "reload.conf"),
               *state = cm_th_path(dir, "reload-state.json");
    const char *log = cm_th_path(dir, "reload.log");
    char extra[256], added[64], valid_name[64], want[600];
    json_t *st;
    pid_t pid;
    int64_t t0;

    snprintf(valid_name, sizeof(valid_name), "localhost:%d", port_valid);
    write_config(conf, "reload-state.json", "", NULL, true);
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    st = wait_entry(state, "selfsigned", 0, 10);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    json_decref(st);
    st = wait_entry(state, valid_name, 0, 10);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    int64_t valid_last =
        json_integer_value(json_object_get(state_entry(st, valid_name), "last_probe"));
    json_decref(st);

    /* A valid reload: one target added, the file entry removed, the others untouched. */
    snprintf(extra, sizeof(extra), "{ host = \"127.0.0.1\"; port = %d; name = \"added\"; }",
             port_valid);
    snprintf(added, sizeof(added), "added");
    write_config(conf, "reload-state.json", "", extra, false);
    kill(pid, SIGHUP);
    CU_ASSERT(wait_text(log, "target=added added", 5));
    CU_ASSERT(wait_text(log, "reloaded", 5));
    st = wait_entry(state, added, 0, 10);
    CU_ASSERT_PTR_NOT_NULL(st);
    json_decref(st);
    /* The state file drops the file entries; the unchanged target keeps its history. */
    double end = cm_th_now() + 5 * CERTMON_SLOWDOWN;
    char leaf_pem[600];
    snprintf(leaf_pem, sizeof(leaf_pem), "file:%s/certs/leaf.pem", dir);
    bool gone = false;
    while (!gone && cm_th_now() < end) {
        st = load_state(state);
        gone = st && !state_entry(st, leaf_pem);
        if (gone)
            EXPECT_INT(json_integer_value(
                           json_object_get(state_entry(st, valid_name), "last_probe")),
                       valid_last);
        json_decref(st);
        usleep(100000);
    }
    CU_ASSERT(gone);

    /* An invalid reload: errors with their lines, the old configuration stays and keeps
     * probing. */
    cm_th_write_config(conf, "global = {\n  interval = \"1h\";\n  concurrency = -3;\n};\n"
                     "targets = ( { host = \"x.example\"; port = \"443\"; } );\n");
    kill(pid, SIGHUP);
    snprintf(want, sizeof(want), "%s:3:", conf);
    CU_ASSERT(wait_text(log, want, 5));
    snprintf(want, sizeof(want), "%s:5:", conf);
    CU_ASSERT(wait_text(log, want, 5));
    CU_ASSERT(wait_text(log, "previous configuration stays in force", 5));
    CU_ASSERT(alive(pid));
    st = load_state(state);
    t0 = json_integer_value(json_object_get(state_entry(st, "selfsigned"), "last_probe"));
    json_decref(st);
    st = wait_entry(state, "selfsigned", t0, 8);
    CU_ASSERT_PTR_NOT_NULL(st);
    CU_ASSERT_PTR_NOT_NULL(st ? state_entry(st, "added") : NULL);
    json_decref(st);
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
}

static void test_corrupt_state(void)
{
    const char *conf = cm_th_path(dir, "corrupt.conf"),
               *state = cm_th_path(dir, "corrupt-state.json");
    const char *log = cm_th_path(dir, "corrupt.log");
    json_t *st;
    pid_t pid;
    DIR *dp;
    struct dirent *de;
    bool moved = false;

    write_config(conf, "corrupt-state.json", "", NULL, false);
    cm_th_write_config(state, "{\"version\": 1, \"targets\": [ {\"name\": tru");
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT(wait_text(log, "moved aside", 5));
    CU_ASSERT(wait_text(log, "corrupt-state.json:1:", 1));
    /* Probing goes on, and a fresh state replaces the corrupt one. */
    st = wait_entry(state, "selfsigned", 0, 10);
    CU_ASSERT_PTR_NOT_NULL(st);
    json_decref(st);
    dp = opendir(dir);
    while (dp && (de = readdir(dp)))
        moved |= !strncmp(de->d_name, "corrupt-state.json.corrupt-", 27);
    if (dp)
        closedir(dp);
    CU_ASSERT(moved);
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);

    /* A state file that is valid JSON but not a state document is handled the same way. */
    cm_th_write_config(state, "[1, 2, 3]\n");
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT(wait_text(log, "is not a certmon state file", 5));
    CU_ASSERT(alive(pid));
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
}

/* ---- The scheduler, seen from a server that counts connections ---- */

static void test_concurrency_cap(void)
{
    const char *conf = cm_th_path(dir, "cap.conf"), *log = cm_th_path(dir, "cap.log");
    const char *clog = cm_th_path(dir, "cap-counter.log");
    int port = cm_th_free_port(), peak;
    pid_t counter = start_counter(port, 3000, clog), pid;
    char targets[4096];
    size_t off = 0, n;
    double opens[16];

    CU_ASSERT_FATAL(counter > 0 && cm_th_wait_port(port, 5000));
    usleep(200000);
    for (int i = 0; i < 9; i++)
        off += (size_t)snprintf(targets + off, sizeof(targets) - off,
                                "%s{ host = \"127.0.0.1\"; port = %d; name = \"n%d\"; }",
                                i ? ",\n" : "", port, i);
    cm_th_write_config(conf,
               "global = { interval = \"1h\"; timeout = \"1s\"; concurrency = 3;\n"
               "           startup_spread = \"0s\"; retry_interval = \"1h\"; };\n"
               "log = { level = \"debug\"; };\n"
               "targets = ( %s );\n",
               targets);
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    n = wait_opens(clog, 9, 10);
    EXPECT_INT(n, 9);
    read_counter(clog, opens, 16, &peak);
    /* Never more than the cap at once, and the cap was used. */
    CU_ASSERT(peak <= 3);
    CU_ASSERT(peak >= 2);
    /* Nine one-second timeouts three at a time take about three seconds, not one. */
    if (n >= 9)
        CU_ASSERT(opens[8] - opens[0] >= 1.8);
    /* Each target once: the retry interval is an hour. */
    usleep(500000);
    EXPECT_INT(read_counter(clog, opens, 16, &peak), 9);
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
    cm_th_stop(counter);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Wall-clock seconds: the connection counter's clock (Python's time.time()). */
static double wall_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The first probes of N new targets are spread evenly over min(interval, startup_spread,
 * N x 100 ms): here the k-th of 40 is due k x 100 ms after the scheduler starts, which is after
 * the daemon was spawned. A timer never fires early, so however loaded the machine, the k-th
 * connection the counter sees (in time order) comes no sooner than k x 100 ms after the spawn:
 * that bound needs no margin for load, and fails as soon as probes come before their share of
 * the spread (all at once: the last one 3.9 s early). Load only makes connections late: each
 * comes at most SPREAD_LATE_S after its time, a bound on the daemon's start-up and on any
 * stall of it or of the counter, which fails for probes held back (all at the end of the
 * spread: the first one 3.9 s late). */
#define SPREAD_N 40
#define SPREAD_STEP_S 0.1 /* startup_spread 4 s over 40 targets */
#define SPREAD_LATE_S (1.5 * CERTMON_SLOWDOWN)

static void test_start_spread(void)
{
    const char *conf = cm_th_path(dir, "spread.conf"), *log = cm_th_path(dir, "spread.log");
    const char *clog = cm_th_path(dir, "spread-counter.log");
    int port = cm_th_free_port(), peak;
    pid_t counter = start_counter(port, 0, clog), pid;
    char targets[8192];
    size_t off = 0, n;
    double opens[64], spawned, late = 0;
    size_t n_early = 0;

    CU_ASSERT_FATAL(counter > 0 && cm_th_wait_port(port, 5000));
    usleep(200000);
    for (int i = 0; i < SPREAD_N; i++)
        off += (size_t)snprintf(targets + off, sizeof(targets) - off,
                                "%s{ host = \"127.0.0.1\"; port = %d; name = \"s%d\"; }",
                                i ? ",\n" : "", port, i);
    cm_th_write_config(conf,
               "global = { interval = \"1h\"; timeout = \"2s\"; concurrency = 64;\n"
               "           startup_spread = \"4s\"; retry_interval = \"1h\"; };\n"
               "targets = ( %s );\n",
               targets);
    spawned = wall_now();
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    n = wait_opens(clog, SPREAD_N, 8);
    EXPECT_INT(n, SPREAD_N);
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
    cm_th_stop(counter);
    n = read_counter(clog, opens, 64, &peak);
    if (n < SPREAD_N)
        return;
    /* Each target once: the retry interval is an hour. */
    EXPECT_INT(n, SPREAD_N);
    qsort(opens, SPREAD_N, sizeof(opens[0]), cmp_double);
    for (size_t k = 0; k < SPREAD_N; k++) {
        /* The counter prints milliseconds, and libuv counts whole ones. */
        double due = spawned + (double)k * SPREAD_STEP_S - 0.005;
        n_early += opens[k] < due;
        if (opens[k] - due > late)
            late = opens[k] - due;
    }
    fprintf(stderr, "\n  first probes: %zu came before their time, the latest %.3f s after it\n",
            n_early, late);
    EXPECT_INT(n_early, 0);
    CU_ASSERT(late <= SPREAD_LATE_S);
}

static void test_retry_backoff(void)
{
    const char *conf = cm_th_path(dir, "backoff.conf"), *log = cm_th_path(dir, "backoff.log");
    const char *clog = cm_th_path(dir, "backoff-counter.log");
    int port = cm_th_free_port(), peak;
    pid_t counter = start_counter(port, 0, clog), pid;
    double opens[16];
    size_t n;

    CU_ASSERT_FATAL(counter > 0 && cm_th_wait_port(port, 5000));
    usleep(200000);
    /* The listener closes at once, so every probe fails: retried after 1 s, then 2 s, then
     * 4 s (doubling), the hourly interval notwithstanding. */
    cm_th_write_config(conf,
               "global = { interval = \"1h\"; timeout = \"2s\"; retry_interval = \"1s\";\n"
               "           startup_spread = \"0s\"; };\n"
               "targets = ( { host = \"127.0.0.1\"; port = %d; name = \"flaky\"; } );\n",
               port);
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    n = wait_opens(clog, 4, 10);
    EXPECT_INT(n, 4);
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
    n = read_counter(clog, opens, 16, &peak);
    if (n < 4)
        return;
    double g1 = opens[1] - opens[0], g2 = opens[2] - opens[1], g3 = opens[3] - opens[2];
    CU_ASSERT(g1 >= 0.9 && g1 <= 1.1 + 0.3 * CERTMON_SLOWDOWN);
    CU_ASSERT(g2 >= 1.85 && g2 <= 2.15 + 0.3 * CERTMON_SLOWDOWN);
    CU_ASSERT(g3 >= 3.75 && g3 <= 4.25 + 0.3 * CERTMON_SLOWDOWN);
    if (g1 < 0.9 || g2 < 1.85 || g3 < 3.75)
        fprintf(stderr, "\n  retry gaps: %.3f %.3f %.3f\n", g1, g2, g3);
    cm_th_stop(counter);
}

static void test_shutdown_cancels_in_flight(void)
{
    const char *conf = cm_th_path(dir, "stop.conf"), *log = cm_th_path(dir, "stop.log");
    const char *clog = cm_th_path(dir, "stop-counter.log"),
               *state = cm_th_path(dir, "stop-state.json");
    int port = cm_th_free_port();
    pid_t counter = start_counter(port, 60000, clog), pid;
    double elapsed;
    struct stat sb;

    CU_ASSERT_FATAL(counter > 0 && cm_th_wait_port(port, 5000));
    usleep(200000);
    cm_th_write_config(conf,
               "global = { interval = \"1h\"; timeout = \"60s\"; startup_spread = \"0s\";\n"
               "           state_file = \"stop-state.json\"; };\n"
               "targets = ( { host = \"127.0.0.1\"; port = %d; name = \"silent\"; },\n"
               "            { host = \"localhost\"; port = %d; ca_file = \"%s\"; } );\n",
               port, port_valid, cm_th_pki("root.pem"));
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    /* The silent target's probe is in flight (connected, waiting for a ServerHello that
     * never comes); the other one has finished. */
    CU_ASSERT(wait_opens(clog, 1, 5) >= 1);
    CU_ASSERT(wait_text(log, "status=ok was=new", 5));
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, &elapsed), 0);
    CU_ASSERT(elapsed < 2.0 * CERTMON_SLOWDOWN);
    /* What had been learnt is on disk. */
    CU_ASSERT(stat(state, &sb) == 0);
    json_t *st = load_state(state);
    CU_ASSERT_PTR_NOT_NULL(st);
    char name[64];
    snprintf(name, sizeof(name), "localhost:%d", port_valid);
    CU_ASSERT_PTR_NOT_NULL(state_entry(st, name));
    json_decref(st);
    cm_th_stop(counter);
}

/* Posture passes run on their own interval: a target probed every 2 s keeps the pass it had,
 * folded into each new report, until posture_interval has passed. */
static void test_posture_interval(void)
{
    const char *conf = cm_th_path(dir, "posture.conf"),
               *state = cm_th_path(dir, "posture-state.json");
    const char *log = cm_th_path(dir, "posture.log");
    char name[64];
    json_t *st, *e;
    pid_t pid;
    int64_t at, last;

    snprintf(name, sizeof(name), "localhost:%d", port_valid);
    cm_th_write_config(conf,
               "global = { interval = \"1h\"; startup_spread = \"0s\";\n"
               "           state_file = \"posture-state.json\"; };\n"
               "targets = ( { host = \"localhost\"; port = %d; ca_file = \"%s\";\n"
               "              interval = \"2s\"; posture_interval = \"1m\"; } );\n",
               port_valid, cm_th_pki("root.pem"));
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    st = wait_entry(state, name, 0, 10);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    e = state_entry(st, name);
    at = json_integer_value(json_object_get(e, "posture_at"));
    last = json_integer_value(json_object_get(e, "last_probe"));
    CU_ASSERT(at > 0);
    json_decref(st);
    /* Two more probes, no new pass; the report still carries the posture. */
    for (int round = 0; round < 2; round++) {
        st = wait_entry(state, name, last, 8);
        CU_ASSERT_PTR_NOT_NULL_FATAL(st);
        e = state_entry(st, name);
        last = json_integer_value(json_object_get(e, "last_probe"));
        EXPECT_INT(json_integer_value(json_object_get(e, "posture_at")), at);
        CU_ASSERT(json_is_array(cm_json_get(e, "report.posture.versions_accepted")));
        json_decref(st);
    }
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
}

/* A server that offers only NULL suites refuses the daemon's main handshake: the daemon runs
 * the posture pass anyway, on every probe, and its report carries the real verdict (what the
 * server accepts) and the chain one of the pass's handshakes received. */
static void test_weak_only_server(void)
{
    const char *conf = cm_th_path(dir, "weak.conf"), *state = cm_th_path(dir, "weak-state.json");
    const char *log = cm_th_path(dir, "weak.log");
    int port = cm_th_free_port();
    char name[64], accept[32];
    json_t *st, *e, *f;
    pid_t pid, srv;
    int64_t last;

    snprintf(accept, sizeof(accept), "127.0.0.1:%d", port);
    char *argv[] = {"openssl",
                    "s_server",
                    "-accept",
                    accept,
                    "-cert",
                    (char *)cm_th_pki("valid.pem"),
                    "-key",
                    (char *)cm_th_pki("leaf.key"),
                    "-cert_chain",
                    (char *)cm_th_pki("inter.pem"),
                    "-tls1_2",
                    "-cipher",
                    "NULL-SHA:NULL-SHA256:@SECLEVEL=0",
                    "-www",
                    "-quiet",
                    NULL};
    srv = cm_th_spawn(argv, NULL);
    CU_ASSERT_FATAL(srv > 0);
    CU_ASSERT_FATAL(cm_th_wait_port(port, 5000));
    snprintf(name, sizeof(name), "localhost:%d", port);
    cm_th_write_config(conf,
                       "global = { interval = \"1h\"; startup_spread = \"0s\";\n"
                       "           state_file = \"weak-state.json\"; };\n"
                       "targets = ( { host = \"localhost\"; port = %d; ca_file = \"%s\";\n"
                       "              interval = \"2s\"; } );\n",
                       port, cm_th_pki("root.pem"));
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    last = 0;
    for (int round = 0; round < 2; round++) {
        st = wait_entry(state, name, last, 10);
        CU_ASSERT_PTR_NOT_NULL_FATAL(st);
        e = state_entry(st, name);
        last = json_integer_value(json_object_get(e, "last_probe"));
        EXPECT_STR(entry_str(e, "report.status"), "critical");
        EXPECT_STR(entry_str(e, "report.error.kind"), "tls");
        f = entry_finding(e, "probe.failed");
        CU_ASSERT(f && strstr(json_string_value(json_object_get(f, "message")),
                              "it accepts only NULL cipher suites (TLS1.2)"));
        f = entry_finding(e, "cipher.weak");
        CU_ASSERT(f && json_is_string(json_object_get(f, "class")) &&
                  strcmp(json_string_value(json_object_get(f, "class")), "NULL") == 0);
        CU_ASSERT(entry_finding(e, "cipher.no_aead") != NULL);
        /* The chain came with the pass; trusted under the configured CA. */
        EXPECT_STR(entry_str(e, "report.chain.0.subject"), "CN=localhost");
        CU_ASSERT(json_is_true(cm_json_get(e, "report.verification.trusted")));
        CU_ASSERT(json_integer_value(json_object_get(e, "posture_at")) > 0);
        json_decref(st);
    }
    CU_ASSERT(alive(pid));
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
    cm_th_stop(srv);
}

/* Reloads while runs are in flight: raising the concurrency starts queued runs in the middle
 * of the reload, and removing a running target ends its run there too. Those runs must use
 * the new configuration only (under ASan a mix-up is a use-after-free on the next reload). */
static void write_inflight_config(const char *conf, int port, unsigned concurrency, int ntargets)
{
    char targets[4096];
    size_t off = 0;

    for (int i = 0; i < ntargets; i++)
        off += (size_t)snprintf(targets + off, sizeof(targets) - off,
                                "%s{ host = \"127.0.0.1\"; port = %d; name = \"f%d\"; }",
                                i ? ",\n" : "", port, i);
    cm_th_write_config(conf,
               "global = { interval = \"1h\"; timeout = \"1500ms\"; concurrency = %u;\n"
               "           startup_spread = \"0s\"; retry_interval = \"1s\"; };\n"
               "targets = ( %s );\n",
               concurrency, targets);
}

static void test_reload_in_flight(void)
{
    const char *conf = cm_th_path(dir, "inflight.conf"), *log = cm_th_path(dir, "inflight.log");
    const char *clog = cm_th_path(dir, "inflight-counter.log");
    int port = cm_th_free_port(), peak;
    pid_t counter = start_counter(port, 60000, clog), pid;
    double opens[64];

    CU_ASSERT_FATAL(counter > 0 && cm_th_wait_port(port, 5000));
    usleep(200000);
    write_inflight_config(conf, port, 1, 6);
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT(wait_opens(clog, 1, 5) >= 1);
    /* Raise the cap: five queued runs start inside the reload. */
    write_inflight_config(conf, port, 6, 6);
    kill(pid, SIGHUP);
    CU_ASSERT(wait_text(log, "reloaded", 5));
    CU_ASSERT(wait_opens(clog, 6, 5) >= 6);
    /* Remove running targets, then reload again at once: the runs started above must not
     * hold on to the configuration this second reload replaces. */
    write_inflight_config(conf, port, 2, 3);
    kill(pid, SIGHUP);
    usleep(100000);
    write_inflight_config(conf, port, 3, 4);
    kill(pid, SIGHUP);
    usleep(2500000);
    CU_ASSERT(alive(pid));
    read_counter(clog, opens, 64, &peak);
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
    cm_th_stop(counter);
}

/* GET path from 127.0.0.1:port over HTTP/1.0; returns the status code (0: no answer within
 * timeout_s seconds), and the seconds it took in *took. */
static int http_status(int port, const char *path, double timeout_s, double *took)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    double t0 = cm_th_now(), end = t0 + timeout_s;
    char req[256], buf[512];
    size_t got = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), status = 0;

    if (fd < 0)
        return 0;
    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        write(fd, req, strlen(req)) == (ssize_t)strlen(req)) {
        while (got + 1 < sizeof(buf) && cm_th_now() < end) {
            struct pollfd pfd = {fd, POLLIN, 0};
            if (poll(&pfd, 1, 100) <= 0)
                continue;
            ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
            buf[got] = '\0';
            if (strstr(buf, "\r\n"))
                break;
        }
        buf[got] = '\0';
        if (!strncmp(buf, "HTTP/1.", 7) && got > 12)
            status = atoi(buf + 9);
    }
    close(fd);
    if (took)
        *took = cm_th_now() - t0;
    return status;
}

/* A reload whose configuration includes a FIFO (no writer: a blocking open would wait for
 * ever) fails with a clear error naming the file, while the daemon keeps answering /healthz
 * and probing under the old configuration; a second SIGHUP meanwhile is not lost. */
static void test_reload_fifo_include(void)
{
    const char *conf = cm_th_path(dir, "fifo.conf"), *log = cm_th_path(dir, "fifo.log");
    const char *state = cm_th_path(dir, "fifo-state.json"), *fifo = cm_th_path(dir, "reload.fifo");
    int port = cm_th_free_port();
    char want[600];
    double took = 0;
    json_t *st;
    int64_t t0;
    pid_t pid;

    cm_th_write_config(conf,
                       "global = { interval = \"1h\"; timeout = \"5s\"; startup_spread = \"1s\";\n"
                       "           state_file = \"fifo-state.json\"; };\n"
                       "log = { level = \"debug\"; };\n"
                       "metrics = { listen = \"127.0.0.1:%d\"; };\n"
                       "targets = ( { host = \"127.0.0.1\"; port = %d; name = \"selfsigned\";\n"
                       "              interval = \"2s\"; posture = false; } );\n",
                       port, port_self);
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_FATAL(cm_th_wait_port(port, (int)(5000 * CERTMON_SLOWDOWN)));
    EXPECT_INT(http_status(port, "/healthz", 5, NULL), 200);

    unlink(fifo);
    CU_ASSERT_FATAL(mkfifo(fifo, 0600) == 0);
    cm_th_write_config(conf,
                       "global = { interval = \"1h\"; timeout = \"5s\"; startup_spread = \"1s\";\n"
                       "           state_file = \"fifo-state.json\"; };\n"
                       "log = { level = \"debug\"; };\n"
                       "metrics = { listen = \"127.0.0.1:%d\"; };\n"
                       "@include \"reload.fifo\"\n"
                       "targets = ( { host = \"127.0.0.1\"; port = %d; name = \"selfsigned\";\n"
                       "              interval = \"2s\"; posture = false; } );\n",
                       port, port_self);
    kill(pid, SIGHUP);
    kill(pid, SIGHUP);
    snprintf(want, sizeof(want), "%s:5: @include \"reload.fifo\": %s: not a regular file", conf,
             fifo);
    CU_ASSERT(wait_text(log, want, 5));
    CU_ASSERT(wait_text(log, "previous configuration stays in force", 5));
    CU_ASSERT(wait_text(log, "reload under way; another follows it", 5) ||
              log_has(log, "reloading")); /* the second signal may come after the first ended */
    EXPECT_INT(http_status(port, "/healthz", 5, &took), 200);
    CU_ASSERT(took < 1.0 * CERTMON_SLOWDOWN);
    CU_ASSERT(alive(pid));
    /* The old configuration keeps probing. */
    st = wait_entry(state, "selfsigned", 0, 10);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    t0 = json_integer_value(json_object_get(state_entry(st, "selfsigned"), "last_probe"));
    json_decref(st);
    st = wait_entry(state, "selfsigned", t0, 10);
    CU_ASSERT_PTR_NOT_NULL(st);
    json_decref(st);
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
    unlink(fifo);
}

/* ---- The state database under load: SIGTERM and kill -9 ---- */

#define NFILES 200

/* A directory of NFILES certificate files, scanned every second: NFILES results a second. */
static void write_busy_config(const char *conf, const char *state, int mport)
{
    const char *certs = cm_th_path(dir, "busy-certs");
    char *pem = cm_th_read_text(cm_th_pki("valid.pem")), name[600];

    mkdir(certs, 0755);
    for (int i = 0; i < NFILES; i++) {
        snprintf(name, sizeof(name), "%s/c%03d.pem", certs, i);
        FILE *fp = fopen(name, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
        fputs(pem, fp);
        fclose(fp);
    }
    free(pem);
    cm_th_write_config(conf,
                       "global = { interval = \"1s\"; startup_spread = \"0s\"; "
                       "posture_interval = \"off\"; state_file = \"%s\"; };\n"
                       "log = { level = \"debug\"; };\n"
                       "metrics = { listen = \"127.0.0.1:%d\"; };\n"
                       "files = ( { path = \"%s/*.pem\"; } );\n",
                       state, mport, certs);
}

/* How many times needle occurs in the file at path. */
static size_t count_text(const char *path, const char *needle)
{
    char *t = cm_th_read_text(path);
    size_t n = 0;

    for (const char *p = t; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    free(t);
    return n;
}

/* One value of a query on the database, through SQLite itself; NULL when it cannot be read. */
static char *db_text(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *out = NULL;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_text(st, 0))
        out = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

static long long db_int(const char *path, const char *sql)
{
    char *t = db_text(path, sql);
    long long v = t ? atoll(t) : -1;

    free(t);
    return v;
}

/* SIGTERM: every result the daemon had recorded (what /api/v1/targets showed just before the
 * signal) is in the database after the exit, within a second. */
static void test_sigterm_nothing_lost(void)
{
    const char *conf = cm_th_path(dir, "term.conf"), *state = cm_th_path(dir, "term.db"),
               *log = cm_th_path(dir, "term.log");
    int mport = cm_th_free_port();
    char url[100], *out = NULL;
    json_t *api, *st, *t;
    size_t i;
    double elapsed = 0;
    pid_t pid;
    int behind = 0;

    write_busy_config(conf, state, mport);
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_FATAL(wait_text(log, " started", 10));
    /* Right after a round of results is recorded (each one logs a debug line), well within
     * the writer's commit delay: without the final commit the signal would lose them. */
    usleep((useconds_t)(1.5e6 * CERTMON_SLOWDOWN));
    {
        size_t base = count_text(log, "sub=probe target=file:"), now = base;
        double end = cm_th_now() + 5 * CERTMON_SLOWDOWN;
        while (now < base + NFILES && cm_th_now() < end) {
            usleep(3000);
            now = count_text(log, "sub=probe target=file:");
        }
        CU_ASSERT(now >= base + NFILES);
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/targets", mport);
    char *curl[] = {"curl", "-s", "--max-time", "5", url, NULL};
    EXPECT_INT(cm_th_run(curl, &out, 10, NULL), 0);
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, &elapsed), 0);
    CU_ASSERT(elapsed < 1.0 * CERTMON_SLOWDOWN);
    api = json_loads(out ? out : "", 0, NULL);
    free(out);
    CU_ASSERT_FATAL(json_array_size(api) == NFILES);
    st = load_state(state);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    EXPECT_INT(json_array_size(json_object_get(st, "targets")), NFILES);
    json_array_foreach(api, i, t)
    {
        const char *name = json_string_value(json_object_get(t, "target"));
        char want[40], got[40];
        int64_t lp;
        json_t *e = state_entry(st, name ? name : "");
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        /* The API says when as RFC 3339; the row keeps Unix seconds, and its own report. */
        snprintf(want, sizeof(want), "%s",
                 entry_str(t, "last_probe") ? entry_str(t, "last_probe") : "");
        lp = json_integer_value(json_object_get(e, "last_probe"));
        snprintf(got, sizeof(got), "%s",
                 entry_str(e, "report.last_probe") ? entry_str(e, "report.last_probe") : "");
        CU_ASSERT(strcmp(got, want) >= 0); /* same length RFC 3339 UTC: ordered as text */
        if (strcmp(got, want) < 0 && ++behind <= 3)
            fprintf(stderr, "\n  %s: API said %s before the signal, the database has %s (%lld)\n",
                    name, want, got, (long long)lp);
    }
    json_decref(api);
    json_decref(st);
    CU_ASSERT(wait_text(log, "closed", 1));
    {
        char *ok = db_text(state, "PRAGMA integrity_check");
        EXPECT_STR(ok ? ok : "(unreadable)", "ok");
        free(ok);
    }
}

/* The daemon keeps a report in memory only until the database has it (and a restored one
 * until its view is built): the API and the detail page read the others back from the
 * database, and they are the same reports. */
static void test_reports_from_database(void)
{
    const char *conf = cm_th_path(dir, "disk.conf"), *state = cm_th_path(dir, "disk.db"),
               *log = cm_th_path(dir, "disk.log"), *log2 = cm_th_path(dir, "disk2.log");
    int mport = cm_th_free_port();
    char *before = NULL, *after = NULL, path[700], want[64];
    json_t *a, *b;
    pid_t pid;

    /* The busy config's files, probed once an hour: one round, then quiet. */
    write_busy_config(conf, state, mport);
    cm_th_write_config(conf,
                       "global = { interval = \"1h\"; startup_spread = \"0s\"; "
                       "posture_interval = \"off\"; state_file = \"%s\"; };\n"
                       "log = { level = \"debug\"; };\n"
                       "metrics = { listen = \"127.0.0.1:%d\"; };\n"
                       "files = ( { path = \"%s/*.pem\"; } );\n",
                       state, mport, cm_th_path(dir, "busy-certs"));
    snprintf(want, sizeof(want), "reports_on_disk=%d ", NFILES);
    for (int run = 0; run < 2; run++) {
        const char *l = run ? log2 : log;
        pid = start_daemon(conf, l);
        CU_ASSERT_FATAL(pid > 0);
        CU_ASSERT_FATAL(wait_text(l, " started", 10));
        if (run == 0) {
            double end = cm_th_now() + 10 * CERTMON_SLOWDOWN;
            while (count_text(l, "sub=probe target=file:") < NFILES && cm_th_now() < end)
                usleep(20000);
            /* Their commit, then the next look at what waits for one (2 x 250 ms). */
            usleep((useconds_t)(1.0e6 * CERTMON_SLOWDOWN));
        }
        /* Second run: no new result (each was probed within the hour); every report was
         * restored and let go once its view was built. */
        if (run == 0)
            before = cm_th_http_get_ok(mport, "/api/v1/targets");
        else
            after = cm_th_http_get_ok(mport, "/api/v1/targets");
        if (run == 1) {
            /* The detail page of one of them, its report read back on the pool. */
            int code = 0;
            char *page;
            snprintf(path, sizeof(path), "/target/file:%s/c007.pem",
                     cm_th_path(dir, "busy-certs"));
            page = cm_th_http_get(mport, path, &code);
            EXPECT_INT(code, 200);
            CU_ASSERT(page && strstr(page, "c007.pem") && strstr(page, "localhost"));
            free(page);
        }
        EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
        /* Every report was in the database only at the stop. */
        CU_ASSERT(log_has(l, want));
    }
    a = json_loads(before ? before : "", 0, NULL);
    b = json_loads(after ? after : "", 0, NULL);
    EXPECT_INT(json_array_size(a), NFILES);
    EXPECT_INT(json_array_size(b), NFILES);
    /* The same reports before and after the restart, all read from the database. */
    for (size_t i = 0; i < json_array_size(b) && i < json_array_size(a); i++) {
        json_t *x = json_array_get(a, i), *y = json_array_get(b, i);
        char *xs = json_dumps(x, JSON_SORT_KEYS | JSON_COMPACT),
             *ys = json_dumps(y, JSON_SORT_KEYS | JSON_COMPACT);
        CU_ASSERT(xs && ys && !strcmp(xs, ys));
        CU_ASSERT(entry_str(y, "chain.0.sha256") != NULL);
        free(xs);
        free(ys);
    }
    json_decref(a);
    json_decref(b);
    free(before);
    free(after);
}

/* Wall-clock time now, in seconds with a fraction. */
static double real_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Unix time of the RFC 3339 UTC stamp at s ("2026-12-06T13:12:05.104Z", the fraction
 * optional); 0 when s does not start with one. */
static double stamp_time(const char *s)
{
    int y, mo, d, h, mi, sec, ms = 0, n = 0;

    if (sscanf(s, "%d-%d-%dT%d:%d:%d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n == 0)
        return 0;
    if (s[n] == '.' && sscanf(s + n, ".%dZ", &ms) != 1)
        return 0;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi, .tm_sec = sec};
    return (double)timegm(&tm) + ms / 1000.0;
}

/* A target's newest result logged by some time (its debug line "sub=probe target=NAME
 * status=S last_probe=WHEN", written as the result is recorded and queued for the store). */
struct logged {
    char name[300];
    long long last_probe;
};

/* Every result the daemon logged no later than before, the newest per target, into v (room
 * for cap targets). Returns how many targets. */
static size_t results_logged_by(const char *log, double before, struct logged *v, size_t cap)
{
    char *t = cm_th_read_text(log), *line = t, *nl;
    size_t n = 0;

    for (; line && *line; line = nl ? nl + 1 : NULL) {
        const char *tg, *lp;
        double at;
        size_t i, len;
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (!(tg = strstr(line, " sub=probe target=file:")) || !(lp = strstr(tg, " last_probe=")) ||
            (at = stamp_time(line)) == 0 || at > before)
            continue;
        tg += strlen(" sub=probe target=");
        len = strcspn(tg, " ");
        for (i = 0; i < n && (strlen(v[i].name) != len || strncmp(v[i].name, tg, len)); i++)
            ;
        if (i == n) {
            if (n == cap || len >= sizeof(v[i].name))
                continue;
            snprintf(v[i].name, sizeof(v[i].name), "%.*s", (int)len, tg);
            v[i].last_probe = 0;
            n++;
        }
        long long when = (long long)stamp_time(lp + strlen(" last_probe="));
        if (when > v[i].last_probe)
            v[i].last_probe = when;
    }
    free(t);
    return n;
}

/* How many of the n logged results are not in the database at path (their target's row in
 * `current` older, or missing), printing the first few. */
static size_t results_missing(const char *path, const struct logged *v, size_t n, int round)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    size_t missing = 0;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT last_probe FROM current WHERE name = ?1", -1, &st, NULL) !=
            SQLITE_OK)
        missing = n;
    for (size_t i = 0; st && i < n; i++) {
        long long have = -1;
        sqlite3_bind_text(st, 1, v[i].name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            have = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        if (have < v[i].last_probe && ++missing <= 3)
            fprintf(stderr, "\n  round %d: %s logged with last_probe %lld; the database has %lld\n",
                    round, v[i].name, v[i].last_probe, have);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return missing;
}

/* kill -9 at random moments while results are written: the database is never corrupt, the
 * next start loads it, and what is lost is at most the last second: every result recorded
 * (logged, with the last_probe it carries) a second or more before the kill is in it, in the
 * sanitized builds too (they are slower, but a commit is due 250 ms after a result is queued
 * whatever the build). Each round someone looks at the database with `sqlite3 FILE` while the
 * daemon writes it: that must not take the daemon's WAL away. */
static void test_kill9_integrity(void)
{
    const char *conf = cm_th_path(dir, "kill.conf"), *state = cm_th_path(dir, "kill.db"),
               *log = cm_th_path(dir, "kill.log");
    unsigned seed = (unsigned)time(NULL);
    static struct logged kept[NFILES];

    write_busy_config(conf, state, cm_th_free_port());
    fprintf(stderr, "(seed %u) ", seed);
    for (int round = 0; round < 6; round++) {
        pid_t pid = start_daemon(conf, log);
        double killed_at;
        long long rows;
        size_t n;
        char *ok;
        CU_ASSERT_FATAL(pid > 0);
        CU_ASSERT_FATAL(wait_text(log, " started", 10));
        if (round > 0) {
            /* What the previous round left loads whole. */
            char want[64];
            snprintf(want, sizeof(want), "entries=%d loaded", NFILES);
            CU_ASSERT(log_has(log, want));
        }
        /* The readers of the start (pins, last leaves) have run beside the writer. */
        CU_ASSERT_FATAL(wait_text(log, "restored from the history", 10));
        /* 1.2 to 3.2 s after the first result: results arrive every second (every two or so
         * in a sanitized build, whose scan is slower), commits every 250 ms. (Counted from
         * "started", a loaded machine could kill before anything was recorded, and then there
         * is nothing to judge the loss by.) The look comes halfway. */
        CU_ASSERT_FATAL(wait_text(log, "sub=probe target=file:", 10));
        double wait_s = (1.2 + (rand_r(&seed) % 2000) / 1000.0) * CERTMON_SLOWDOWN;
        usleep((useconds_t)(wait_s / 2 * 1e6));
        {
            char *look[] = {"sqlite3", (char *)state, "SELECT count(*) FROM current", NULL};
            char *out = NULL;
            EXPECT_INT(cm_th_run(look, &out, 10, NULL), 0);
            EXPECT_INT(out ? atoi(out) : -1, NFILES);
            free(out);
        }
        usleep((useconds_t)(wait_s / 2 * 1e6));
        /* A daemon that died (a sanitizer's report ends it) records nothing: say so. */
        bool up = alive(pid);
        CU_ASSERT(up);
        if (!up) {
            char *t = cm_th_read_text(log);
            size_t len = strlen(t);
            fprintf(stderr, "\n  round %d: the daemon died; its log ends:\n%s\n", round,
                    t + (len > 2000 ? len - 2000 : 0));
            free(t);
        }
        killed_at = real_now();
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        ok = db_text(state, "PRAGMA integrity_check");
        EXPECT_STR(ok ? ok : "(unreadable)", "ok");
        free(ok);
        rows = db_int(state, "SELECT count(*) FROM current");
        EXPECT_INT(rows, NFILES);
        /* Every result logged a second or more before the kill is in the database. */
        n = results_logged_by(log, killed_at - 1.0, kept, NFILES);
        CU_ASSERT(n > 0);
        EXPECT_INT(results_missing(state, kept, n, round), 0);
    }
    /* And a clean stop after all that. */
    pid_t pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT(wait_text(log, " started", 10));
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
}

/* A JSON state file of earlier versions is imported at start and kept as *.imported; `certmon
 * state export` shows what the database holds. */
static void test_import_and_export(void)
{
    const char *conf = cm_th_path(dir, "imp.conf"), *state = cm_th_path(dir, "imp-state.json");
    const char *log = cm_th_path(dir, "imp.log");
    char *out = NULL, kept[600];
    json_t *st, *e;
    pid_t pid;

    write_config(conf, "imp-state.json", "", NULL, false);
    /* An entry the old daemon wrote: a finding first seen long ago, two failures. */
    FILE *fp = fopen(state, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fputs("{\"version\":1,\"saved_at\":1700000000,\"targets\":[\n"
          "{\"name\":\"selfsigned\",\"owner\":\"selfsigned\",\"last_probe\":1700000000,"
          "\"last_success\":1699990000,\"status_since\":1699000000,\"failures\":2,"
          "\"status\":\"critical\",\"posture_at\":0,"
          "\"seen\":[[\"chain.self_signed\",0,1600000000]],"
          "\"report\":{\"target\":\"selfsigned\",\"status\":\"critical\",\"findings\":[]}}\n"
          "]}\n",
          fp);
    fclose(fp);
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT(wait_text(log, "entries=1 imported from the JSON state", 10));
    snprintf(kept, sizeof(kept), "%s.imported", state);
    CU_ASSERT_EQUAL(access(kept, F_OK), 0);
    /* The first-seen time survives into the next result. */
    st = wait_entry(state, "selfsigned", 1700000000, 10);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    e = state_entry(st, "selfsigned");
    CU_ASSERT_PTR_NOT_NULL_FATAL(
        cm_finding(json_object_get(e, "report"), "chain.self_signed", NULL, 0));
    EXPECT_STR(entry_str(cm_finding(json_object_get(e, "report"), "chain.self_signed", NULL, 0),
                         "first_seen"),
               "2020-09-13T12:26:40Z");
    json_decref(st);

    /* export while the daemon runs: a table, and the JSON document. */
    EXPECT_INT(cm_th_state_export(conf, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "NAME"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "selfsigned"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "chain.self_signed"));
    /* No notifiers: the sections say so. */
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "\nALERTS (0)\nnone\n\nOUTBOX (0)\nnone\n"));
    free(out);
    st = cm_th_state_export_json(conf);
    CU_ASSERT_PTR_NOT_NULL(st);
    EXPECT_INT(json_integer_value(json_object_get(st, "version")), 1);
    e = state_entry(st, "selfsigned");
    CU_ASSERT_PTR_NOT_NULL(e);
    EXPECT_STR(entry_str(e, "owner"), "selfsigned");
    CU_ASSERT(json_is_array(json_object_get(st, "alerts")));
    EXPECT_INT(json_array_size(json_object_get(st, "alerts")), 0);
    EXPECT_INT(json_array_size(json_object_get(st, "outbox")), 0);
    json_decref(st);
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
    /* Bad use: a clear message, exit 2. */
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "'%s' state export --jsno 2>&1", cm_th_certmon());
    char *bad[] = {"/bin/sh", "-c", cmd, NULL};
    EXPECT_INT(cm_th_run(bad, &out, 30, NULL), 2);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "unknown option '--jsno'"));
    free(out);
}

/* `certmon state export` shows the notifiers' rows of the database, written here through the
 * store as the daemon writes them: a firing and a pending alert, a resolved one (its row gone,
 * its RESOLVED notice queued), queued messages with their attempts, a notice being grouped, a
 * notifier no longer configured. Text from certificates and peers in those rows (an ANSI
 * escape, a newline) is escaped in the table; the webhook URL's secret is never shown. */
static void test_export_alerts(void)
{
    const char *conf = cm_th_path(dir, "exp-alerts.conf");
    char db[600], err[600] = "", *out = NULL;
    long long now = (long long)time(NULL);
    uv_loop_t loop;
    struct cm_store *st = NULL;
    struct cm_state *s = NULL;
    static const char EVIL_TARGET[] = "evil\033[31m.example\n:443";
    static const char EVIL_MSG[] = "the leaf certificate (CN=\033]0;pwned\007) is self-signed\n"
                                   "FAKE 2026-01-01T00:00:00Z line";
    struct cm_alert_row firing = {.target = EVIL_TARGET,
                                  .id = "chain.self_signed",
                                  .position = 0,
                                  .severity = CM_SEV_CRITICAL,
                                  .message = EVIL_MSG,
                                  .started_at = now - 300,
                                  .fired = true,
                                  .fired_at = now - 240,
                                  .notified_at = now - 120,
                                  .seq = 4};
    struct cm_alert_row pending = {.target = "www:443",
                                   .id = "cert.expiring",
                                   .position = -1,
                                   .severity = CM_SEV_WARNING,
                                   .message = "expires in 20 days",
                                   .started_at = now - 10,
                                   .seq = 5};
    struct cm_alert_row resolved = {.target = "old:443",
                                    .id = "cert.expired",
                                    .position = 0,
                                    .severity = CM_SEV_CRITICAL,
                                    .message = "expired",
                                    .started_at = now - 900,
                                    .fired = true,
                                    .fired_at = now - 900,
                                    .notified_at = now - 900,
                                    .seq = 2};
    char notices[1024];
    struct cm_notify_msg_row msg = {.seq = 10,
                                    .url = "https://hooks.slack.com/services/T0/B0/S3cr3tT0k3n",
                                    .created_at = now - 60,
                                    .attempts = 3,
                                    .notices = notices};
    struct cm_notify_msg_row grouped = {
        .seq = 11,
        .created_at = now - 5,
        .notices = "[{\"kind\":\"firing\",\"target\":\"www:443\",\"id\":\"cert.expiring\","
                   "\"position\":-1,\"severity\":\"warning\",\"message\":\"m\"}]"};
    struct cm_notify_msg_row orphan = {
        .seq = 3, .url = "http://127.0.0.1:9/hook", .created_at = now - 30, .notices = "[]"};

    snprintf(notices, sizeof(notices),
             "[{\"kind\":\"firing\",\"target\":\"evil\\u001b[31m.example\\n:443\","
             "\"id\":\"chain.self_signed\",\"position\":0,\"severity\":\"critical\","
             "\"message\":\"x\"},{\"kind\":\"resolved\",\"target\":\"old:443\",\"id\":"
             "\"cert.expired\",\"position\":0,\"severity\":\"critical\",\"message\":\"y\"}]");
    snprintf(db, sizeof(db), "%s", cm_th_path(dir, "exp-alerts.db"));
    CU_ASSERT_FATAL(uv_loop_init(&loop) == 0);
    CU_ASSERT_FATAL(cm_state_new(&s) == 0);
    CU_ASSERT_FATAL(cm_store_open(&loop, db, NULL, now, &st, err, sizeof(err)) == 0);
    cm_state_put(s, "www:443", "www:443")->last_probe = now - 10;
    EXPECT_INT(cm_store_put(st, cm_state_get(s, "www:443")), 0);
    EXPECT_INT(cm_store_alert(st, "hook", &resolved, false), 0);
    EXPECT_INT(cm_store_alert(st, "hook", &firing, false), 0);
    EXPECT_INT(cm_store_alert(st, "hook", &pending, false), 0);
    EXPECT_INT(cm_store_alert(st, "hook", &resolved, true), 0);
    EXPECT_INT(cm_store_outbox_put(st, "hook", &msg), 0);
    EXPECT_INT(cm_store_outbox_put(st, "hook", &grouped), 0);
    EXPECT_INT(cm_store_outbox_put(st, "gone", &orphan), 0);
    EXPECT_INT(cm_store_close(st), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    EXPECT_INT(uv_loop_close(&loop), 0);
    cm_state_free(s);
    cm_th_write_config(conf, "global = { state_file = \"exp-alerts.db\"; };\n"
                             "targets = ( { host = \"www\"; port = 443; } );\n"
                             "notifiers = ( { name = \"hook\"; type = \"slack\";\n"
                             "  url = \"https://hooks.slack.com/services/T0/B0/S3cr3tT0k3n\";\n"
                             "  max_age = \"2h\"; } );\n");

    /* The JSON document: the targets as before, then "alerts" and "outbox". */
    json_t *j = cm_th_state_export_json(conf);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    EXPECT_STR(cm_json_str(j, "targets.0.name"), "www:443");
    EXPECT_INT(json_array_size(json_object_get(j, "alerts")), 2);
    EXPECT_JSON_STRS(
        j, {"alerts.0.notifier", "hook"}, {"alerts.0.target", EVIL_TARGET},
        {"alerts.0.finding", "chain.self_signed"}, {"alerts.0.state", "firing"},
        {"alerts.0.severity", "critical"}, {"alerts.0.message", EVIL_MSG},
        {"alerts.1.target", "www:443"}, {"alerts.1.finding", "cert.expiring"},
        {"alerts.1.state", "pending"}, {"alerts.1.severity", "warning"},
        {"outbox.0.notifier", "gone"}, {"outbox.0.url", "http://127.0.0.1:9/hook"},
        {"outbox.1.notifier", "hook"}, {"outbox.1.url", "https://hooks.slack.com/services/***"},
        {"outbox.1.notices.0.kind", "firing"},
        {"outbox.1.notices.0.target", "evil\033[31m.example\n:443"},
        {"outbox.1.notices.0.finding", "chain.self_signed"},
        {"outbox.1.notices.1.kind", "resolved"}, {"outbox.1.notices.1.target", "old:443"},
        {"outbox.1.notices.1.finding", "cert.expired"}, {"outbox.2.notices.0.kind", "firing"});
    EXPECT_INT(json_integer_value(cm_json_get(j, "alerts.0.position")), 0);
    EXPECT_INT(json_integer_value(cm_json_get(j, "alerts.0.started_at")), now - 300);
    EXPECT_INT(json_integer_value(cm_json_get(j, "alerts.0.fired_at")), now - 240);
    EXPECT_INT(json_integer_value(cm_json_get(j, "alerts.0.notified_at")), now - 120);
    EXPECT_INT(json_integer_value(cm_json_get(j, "alerts.1.position")), -1);
    CU_ASSERT(json_is_null(cm_json_get(j, "alerts.1.fired_at")));
    CU_ASSERT(json_is_null(cm_json_get(j, "alerts.1.notified_at")));
    EXPECT_INT(json_array_size(json_object_get(j, "outbox")), 3);
    CU_ASSERT(json_is_null(cm_json_get(j, "outbox.0.expires_at"))); /* not configured */
    EXPECT_INT(json_integer_value(cm_json_get(j, "outbox.1.seq")), 10);
    EXPECT_INT(json_integer_value(cm_json_get(j, "outbox.1.attempts")), 3);
    EXPECT_INT(json_integer_value(cm_json_get(j, "outbox.1.created_at")), now - 60);
    EXPECT_INT(json_integer_value(cm_json_get(j, "outbox.1.expires_at")), now - 60 + 7200);
    CU_ASSERT(json_is_false(cm_json_get(j, "outbox.1.grouping")));
    CU_ASSERT_PTR_NULL(cm_json_get(j, "outbox.1.notices.0.message")); /* not the payload */
    CU_ASSERT(json_is_true(cm_json_get(j, "outbox.2.grouping")));
    CU_ASSERT(json_is_null(cm_json_get(j, "outbox.2.url")));
    json_decref(j);

    /* The document, as printed, holds no secret and still imports as a state file (the new
     * members are read past). */
    {
        const char *copy = cm_th_path(dir, "exp-alerts.json");
        char *cargv[] = {
            (char *)cm_th_certmon(), "state", "export", "-c", (char *)conf, "--json", NULL};
        struct cm_state *u = NULL;
        FILE *fp = fopen(copy, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
        EXPECT_INT(cm_th_run(cargv, &out, 30, NULL), 0);
        CU_ASSERT(out && !strstr(out, "S3cr3t"));
        fputs(out ? out : "", fp);
        fclose(fp);
        free(out);
        CU_ASSERT_FATAL(cm_state_new(&u) == 0);
        EXPECT_INT(cm_store_read(copy, u, err, sizeof(err)), 0);
        CU_ASSERT_PTR_NOT_NULL(cm_state_get(u, "www:443"));
        cm_state_free(u);
    }

    /* The table: a section per table, every text escaped (no raw escape or newline from the
     * rows reaches the terminal), no secret. */
    EXPECT_INT(cm_th_state_export(conf, &out), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT(strchr(out, '\033') == NULL);
    CU_ASSERT(strchr(out, '\007') == NULL);
    CU_ASSERT(!strstr(out, "\nFAKE"));
    CU_ASSERT(!strstr(out, "S3cr3t"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\nALERTS (2)\nNOTIFIER "));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\nOUTBOX (3)\nNOTIFIER "));
    {
        char want[512], t1[32], t2[32], t3[32];
        cm_time_rfc3339(now - 300, t1, sizeof(t1));
        cm_time_rfc3339(now - 240, t2, sizeof(t2));
        cm_time_rfc3339(now - 120, t3, sizeof(t3));
        snprintf(
            want, sizeof(want),
            "\nhook             %-40s chain.self_signed           0 firing  critical %s %s %s\n"
            "                 message: the leaf certificate (CN=\\x1b]0;pwned\\x07) is"
            " self-signed\\x0aFAKE 2026-01-01T00:00:00Z line\n",
            "evil\\x1b[31m.example\\x0a:443", t1, t2, t3);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
        cm_time_rfc3339(now - 10, t1, sizeof(t1));
        snprintf(want, sizeof(want),
                 "\nhook             www:443                                  cert.expiring"
                 "               - pending warning  %s -                    -\n",
                 t1);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
        cm_time_rfc3339(now - 60, t1, sizeof(t1));
        cm_time_rfc3339(now - 60 + 7200, t2, sizeof(t2));
        snprintf(want, sizeof(want),
                 "\nhook                   10 https://hooks.slack.com/services/***"
                 "             %s        3  %s\n"
                 "                          firing   evil\\x1b[31m.example\\x0a:443"
                 " chain.self_signed #0 critical\n"
                 "                          resolved old:443 cert.expired #0 critical\n",
                 t1, t2);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "(grouping: joins the next message)"));
    }
    free(out);
}

static CU_TestInfo tests[] = {
    {"config-check accepts a good config", test_config_check_ok},
    {"config-check and run name the lines of errors", test_config_check_names_lines},
    {"probes, file targets, state across a restart", test_probes_files_restart},
    {"SIGHUP: valid and invalid reloads", test_reload},
    {"corrupt state moved aside", test_corrupt_state},
    {"SIGTERM: every recorded result is in the database", test_sigterm_nothing_lost},
    {"reports kept in the database only are served from it", test_reports_from_database},
    {"kill -9 while writing: integrity, at most a second lost", test_kill9_integrity},
    {"JSON state imported; state export", test_import_and_export},
    {"state export: alerts and the outbox, escaped", test_export_alerts},
    {"scheduler: concurrency cap", test_concurrency_cap},
    {"scheduler: first probes spread", test_start_spread},
    {"scheduler: retry backoff", test_retry_backoff},
    {"SIGTERM cancels probes in flight", test_shutdown_cancels_in_flight},
    {"posture passes on their own interval", test_posture_interval},
    {"weak-only server: the pass gives the verdict", test_weak_only_server},
    {"reloads while runs are in flight", test_reload_in_flight},
    {"SIGHUP with a FIFO include: error, /healthz answers", test_reload_fifo_include},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("daemon", tests, suite_init, suite_cleanup);
}
