#include "cmtest.h"
#include "certmon/config/config.h"
#include "certmon/daemon/state.h"
#include "certmon/daemon/store.h"

#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int cm_test_main(const char *suite, CU_TestInfo *tests, CU_InitializeFunc init,
                 CU_CleanupFunc cleanup)
{
    CU_SuiteInfo suites[] = {{(char *)suite, init, cleanup, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    unsigned failed_tests, failures, suites_failed;

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    if (CU_register_suites(suites) != CUE_SUCCESS) {
        fprintf(stderr, "cannot register suite: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    /* Read the counts before CU_cleanup_registry wipes them. */
    failed_tests = CU_get_number_of_tests_failed();
    failures = CU_get_number_of_failures();
    suites_failed = CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    if (failed_tests || failures || suites_failed) {
        fprintf(stderr, "%s: %u tests failed, %u assertion failures, %u suites failed\n", suite,
                failed_tests, failures, suites_failed);
        return 1;
    }
    return 0;
}

void cm_expect_str(const char *got, const char *want, const char *expr, const char *file,
                   unsigned line)
{
    char msg[768];
    CU_BOOL ok = (got && want) ? strcmp(got, want) == 0 : got == want;

    snprintf(msg, sizeof(msg), "%s: want \"%s\", got \"%s\"", expr, want ? want : "(null)",
             got ? got : "(null)");
    CU_assertImplementation(ok, line, msg, file, "", CU_FALSE);
}

void cm_expect_int(long long got, long long want, const char *expr, const char *file, unsigned line)
{
    char msg[256];

    snprintf(msg, sizeof(msg), "%s: want %lld, got %lld", expr, want, got);
    CU_assertImplementation(got == want, line, msg, file, "", CU_FALSE);
}

void cm_expect_status(int rc, json_t *t, const char *want, const char *file, unsigned line)
{
    static const char *const words[] = {"ok", "warning", "critical", "unknown"};

    cm_expect_str(cm_json_str(t, "status"), want, "status", file, line);
    for (int i = 0; i < 4; i++)
        if (!strcmp(want, words[i]))
            cm_expect_int(rc, i, "exit status", file, line);
}

/* Ports handed out below the kernel's ephemeral range (32768 and up by default): a port that
 * bind(0) just returned is the next one the kernel gives to outgoing connections too, and a
 * parallel test process may be handed it as well. A random pick per process among 12,000 makes
 * both collisions unlikely; bind(0) remains the fallback. A port is taken when 127.0.0.1:port
 * can be bound for type (SOCK_STREAM; a DNS server's also SOCK_DGRAM) now. */
static bool port_bindable_as(int port, int type)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, type, 0);
    bool ok;

    if (fd < 0)
        return false;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

int cm_th_free_dns_port(void)
{
    for (int i = 0; i < 50; i++) {
        int port = cm_th_free_port();
        if (port > 0 && port_bindable_as(port, SOCK_DGRAM))
            return port;
    }
    return -1;
}

int cm_th_free_port(void)
{
    static unsigned seed;
    static int given[512]; /* the last ports handed out by this process: never twice */
    static size_t ngiven, next;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int fd, port = -1;

    if (!seed)
        seed = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL);
    for (int i = 0; i < 200; i++) {
        int p = 20000 + (int)(rand_r(&seed) % 12000);
        bool seen = false;
        for (size_t j = 0; j < ngiven && !seen; j++)
            seen = given[j] == p;
        if (!seen && port_bindable_as(p, SOCK_STREAM)) {
            given[next] = p;
            next = (next + 1) % (sizeof(given) / sizeof(given[0]));
            if (ngiven < sizeof(given) / sizeof(given[0]))
                ngiven++;
            return p;
        }
    }
    if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
        return -1;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

pid_t cm_th_spawn(char *const argv[], const char *log_path)
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    const char *out = log_path ? log_path : "/dev/null";
    int rc;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    return rc == 0 ? pid : -1;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool cm_th_wait_port(int port, int timeout_ms)
{
    double end = now_s() + timeout_ms / 1000.0;

    while (now_s() < end) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(fd);
            return true;
        }
        if (fd >= 0)
            close(fd);
        usleep(20000);
    }
    return false;
}

void cm_th_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

int cm_th_run(char *const argv[], char **out, int timeout_s, double *elapsed_s)
{
    posix_spawn_file_actions_t fa;
    int pipefd[2];
    pid_t pid;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    double start = now_s();
    int status = 0;
    bool exited = false;

    *out = NULL;
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
    for (;;) {
        char tmp[8192];
        ssize_t n = read(pipefd[0], tmp, sizeof(tmp));
        if (n > 0) {
            if (len + (size_t)n + 1 > cap) {
                cap = (len + (size_t)n + 1) * 2;
                buf = realloc(buf, cap);
            }
            memcpy(buf + len, tmp, (size_t)n);
            len += (size_t)n;
            continue;
        }
        if (!exited && waitpid(pid, &status, WNOHANG) == pid)
            exited = true;
        if (n == 0 && exited)
            break;
        if (n == 0) {
            /* Output closed but the process lingers: wait for it within the bound. */
            if (now_s() - start > timeout_s) {
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                exited = true;
                break;
            }
            usleep(2000);
            continue;
        }
        if (now_s() - start > timeout_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            exited = true;
            break;
        }
        usleep(2000);
    }
    close(pipefd[0]);
    if (elapsed_s)
        *elapsed_s = now_s() - start;
    if (!buf)
        buf = calloc(1, 1);
    else
        buf[len] = '\0';
    *out = buf;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int cm_th_sh(char **out, const char *fmt, ...)
{
    char *cmd = NULL, *got = NULL;
    char *argv[] = {"/bin/sh", "-c", NULL, NULL};
    va_list ap;
    int n, rc;

    va_start(ap, fmt);
    n = vasprintf(&cmd, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    argv[2] = cmd;
    rc = cm_th_run(argv, &got, 60, NULL);
    free(cmd);
    if (out)
        *out = got;
    else
        free(got);
    return rc;
}

json_t *cm_th_check_json(int *exit_code, double *elapsed_s, ...)
{
    char *argv[512];
    int argc = 0;
    va_list ap;
    char *out;
    json_error_t jerr;
    json_t *j;

    argv[argc++] = (char *)cm_th_certmon();
    argv[argc++] = "check";
    argv[argc++] = "--json";
    va_start(ap, elapsed_s);
    for (const char *a; argc < 511 && (a = va_arg(ap, const char *));)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    *exit_code = cm_th_run(argv, &out, 120, elapsed_s);
    j = json_loads(out, 0, &jerr);
    if (!j)
        fprintf(stderr, "certmon output is not JSON (%s): %.400s\n", jerr.text, out);
    free(out);
    return j;
}

static char pki_dir[256];

static void remove_pki(void)
{
    char cmd[300];

    if (pki_dir[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pki_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", pki_dir);
    }
}

const char *cm_th_pki_dir(void)
{
    char cmd[512];

    if (pki_dir[0])
        return pki_dir;
    snprintf(pki_dir, sizeof(pki_dir), "/tmp/certmon-pki.XXXXXX");
    if (!mkdtemp(pki_dir)) {
        pki_dir[0] = '\0';
        return NULL;
    }
    atexit(remove_pki);
    snprintf(cmd, sizeof(cmd), "sh '%s' '%s'", CERTMON_MKPKI, pki_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "mkpki.sh failed\n");
        return NULL;
    }
    return pki_dir;
}

const char *cm_th_path(const char *dir, const char *name)
{
    static char bufs[8][512];
    static unsigned next;
    char *b = bufs[next++ % 8];

    snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
    return b;
}

char *cm_th_read_text(const char *path)
{
    FILE *fp = fopen(path, "r"), *mem;
    char *buf = NULL, chunk[4096];
    size_t len = 0, n;

    if (!fp)
        return strdup("");
    if (!(mem = open_memstream(&buf, &len))) {
        fclose(fp);
        return NULL;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        fwrite(chunk, 1, n, mem);
    fclose(mem);
    fclose(fp);
    return buf;
}

const char *cm_th_pki(const char *name)
{
    static char bufs[8][512];
    static unsigned next;
    char *b = bufs[next++ % 8];

    snprintf(b, sizeof(bufs[0]), "%s/%s", cm_th_pki_dir(), name);
    return b;
}

const char *cm_th_script(const char *name)
{
    static char bufs[4][512];
    static unsigned next;
    char *b = bufs[next++ % 4];
    const char *slash = strrchr(CERTMON_MKPKI, '/');

    if (slash)
        snprintf(b, sizeof(bufs[0]), "%.*s/%s", (int)(slash - CERTMON_MKPKI), CERTMON_MKPKI, name);
    else
        snprintf(b, sizeof(bufs[0]), "%s", name);
    return b;
}

const char *cm_th_certmon(void)
{
    const char *env = getenv("CERTMON_BIN");

    return env ? env : CERTMON_BIN;
}

int cm_th_check_merged(char **out, ...)
{
    char *argv[512];
    int argc = 0;
    va_list ap;

    /* The shell only redirects: the arguments reach certmon as given, unquoted. */
    argv[argc++] = "/bin/sh";
    argv[argc++] = "-c";
    argv[argc++] = "exec \"$0\" check \"$@\" 2>&1";
    argv[argc++] = (char *)cm_th_certmon();
    va_start(ap, out);
    for (const char *a; argc < 511 && (a = va_arg(ap, const char *));)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    return cm_th_run(argv, out, 120, NULL);
}

json_t *cm_json_get(json_t *o, const char *path)
{
    json_t *v = o;
    char buf[128], *save, *tok;

    snprintf(buf, sizeof(buf), "%s", path);
    for (tok = strtok_r(buf, ".", &save); tok && v; tok = strtok_r(NULL, ".", &save))
        v = (tok[0] >= '0' && tok[0] <= '9') ? json_array_get(v, strtoul(tok, NULL, 10))
                                             : json_object_get(v, tok);
    return v;
}

const char *cm_json_str(json_t *o, const char *path)
{
    return json_string_value(cm_json_get(o, path));
}

void cm_expect_json_strs(json_t *j, const struct cm_json_want *wants, size_t n, const char *file,
                         unsigned line)
{
    for (size_t i = 0; i < n; i++)
        cm_expect_str(cm_json_str(j, wants[i].path), wants[i].want, wants[i].path, file, line);
}

json_t *cm_json_only(json_t *arr)
{
    CU_ASSERT_FATAL(json_is_array(arr));
    CU_ASSERT_FATAL(json_array_size(arr) == 1);
    return json_array_get(arr, 0);
}

json_t *cm_finding(json_t *t, const char *id, const char *severity, int position)
{
    json_t *f;
    size_t i;

    json_array_foreach(json_object_get(t, "findings"), i, f)
    {
        const char *fid = json_string_value(json_object_get(f, "id"));
        const char *sev = json_string_value(json_object_get(f, "severity"));
        json_t *pos = json_object_get(f, "position");

        if (!fid || strcmp(fid, id) != 0)
            continue;
        if (severity && (!sev || strcmp(sev, severity) != 0))
            continue;
        if (position >= 0 && (!json_is_integer(pos) || json_integer_value(pos) != position))
            continue;
        return f;
    }
    return NULL;
}

static void on_loop_guard(uv_timer_t *t)
{
    (void)t;
}

bool cm_th_loop_until(uv_loop_t *loop, const int *n, int want, int timeout_ms)
{
    uv_timer_t guard;
    uint64_t end = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;

    uv_timer_init(loop, &guard);
    uv_timer_start(&guard, on_loop_guard, 20, 20);
    while (*n < want && uv_hrtime() < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *n >= want;
}

bool cm_th_config_error(const struct cm_config_errors *errs, const char *want, size_t case_no)
{
    bool found = false;

    for (size_t k = 0; k < errs->count; k++)
        found |= strstr(errs->msgs[k], want) != NULL;
    if (!found)
        fprintf(stderr, "\n    case %zu: want '%s' in '%s'", case_no, want,
                errs->count ? errs->msgs[0] : "(nothing)");
    return found;
}

double cm_th_metric(const char *body, const char *name, const char *m1, const char *m2)
{
    size_t nl = strlen(name);

    for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        const char *end = strchr(p, '\n');
        char line[2048];
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len >= sizeof(line) || strncmp(p, name, nl) || (p[nl] != '{' && p[nl] != ' '))
            continue;
        memcpy(line, p, len);
        line[len] = '\0';
        if ((m1 && !strstr(line, m1)) || (m2 && !strstr(line, m2)))
            continue;
        return atof(strrchr(line, ' ') + 1);
    }
    return -1;
}

double cm_th_wait_metric(int port, const char *name, const char *m1, const char *m2, double want,
                         double timeout_s)
{
    double start = cm_th_now(), end = start + timeout_s;

    do {
        int code;
        char *body = cm_th_http_get(port, "/metrics", &code);
        double v = body && code == 200 ? cm_th_metric(body, name, m1, m2) : -2;
        free(body);
        if (v > -2 && (want < 0 ? v < 0 : v == want))
            return cm_th_now() - start;
        usleep(50 * 1000);
    } while (cm_th_now() < end);
    return -1;
}

/* ---- A real DNS server ---- */

pid_t cm_th_dnsmasq(const char *dir, int port, int ttl, const char *records)
{
    char conf[512], log[512], conf_arg[600], user_arg[300], name[64];
    struct passwd *pw = getpwuid(geteuid());
    FILE *fp;
    pid_t pid;

    snprintf(name, sizeof(name), "dnsmasq-%d.conf", port);
    snprintf(conf, sizeof(conf), "%s", cm_th_path(dir, name));
    snprintf(name, sizeof(name), "dnsmasq-%d.log", port);
    snprintf(log, sizeof(log), "%s", cm_th_path(dir, name));
    if (!pw || !(fp = fopen(conf, "w")))
        return -1;
    /* no-resolv/no-hosts: answer from this file alone; bind-interfaces: only 127.0.0.1, so
     * that parallel tests on other ports do not collide on the wildcard address. */
    fprintf(fp,
            "no-resolv\nno-hosts\nno-poll\nbind-interfaces\nlisten-address=127.0.0.1\n"
            "port=%d\nlocal-ttl=%d\nlog-queries\nlog-facility=-\n%s\n",
            port, ttl, records);
    if (fclose(fp) != 0)
        return -1;
    snprintf(conf_arg, sizeof(conf_arg), "--conf-file=%s", conf);
    /* As root dnsmasq would switch to the user "nobody"; naming the current user keeps it
     * as it is (as any other user it cannot switch and ignores the option). */
    snprintf(user_arg, sizeof(user_arg), "--user=%s", pw->pw_name);
    /* /usr/sbin is not in every user's PATH. */
    char *bin = access("/usr/sbin/dnsmasq", X_OK) == 0 ? "/usr/sbin/dnsmasq" : "dnsmasq";
    char *argv[] = {bin, "--keep-in-foreground", "--pid-file=", conf_arg, user_arg, NULL};
    pid = cm_th_spawn(argv, log);
    if (pid > 0 && !cm_th_wait_port(port, 5000)) {
        cm_th_stop(pid);
        return -1;
    }
    return pid;
}

/* ---- Helpers for the daemon's integration suites ---- */

size_t cm_th_heap_used(void)
{
    return mallinfo2().uordblks;
}

void cm_th_print_heap(const char *what, size_t before, size_t n)
{
    size_t now = cm_th_heap_used();

    if (now > before && n)
        fprintf(stderr, "\n  %s: %.0f heap bytes\n", what, (double)(now - before) / (double)n);
    else /* an allocator other than glibc's (the sanitizers') */
        fprintf(stderr, "\n  %s: heap use not measurable here\n", what);
}

double cm_th_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

pid_t cm_th_s_server(int port, const char *cert, const char *key, bool inter)
{
    char accept[64], c[512], k[512], chain[512];
    char *argv[] = {"openssl", "s_server", "-accept", accept, "-cert", c, "-key", k,
                    "-www",    "-quiet",   inter ? "-cert_chain" : NULL, chain, NULL};
    pid_t pid;

    /* cm_th_pki's buffers rotate: copy the paths. */
    snprintf(c, sizeof(c), "%s", cm_th_pki(cert));
    snprintf(k, sizeof(k), "%s", cm_th_pki(key));
    snprintf(chain, sizeof(chain), "%s", cm_th_pki("inter.pem"));
    snprintf(accept, sizeof(accept), "127.0.0.1:%d", port);
    pid = cm_th_spawn(argv, NULL);
    if (pid > 0 && !cm_th_wait_port(port, 5000)) {
        cm_th_stop(pid);
        return -1;
    }
    return pid;
}

void cm_th_write_config(const char *path, const char *fmt, ...)
{
    FILE *fp = fopen(path, "w");
    char *text = NULL;
    va_list ap;
    int n;

    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    va_start(ap, fmt);
    n = vasprintf(&text, fmt, ap);
    va_end(ap);
    CU_ASSERT_FATAL(n >= 0);
    fputs(text, fp);
    if (strstr(text, "targets") && !strstr(text, "metrics"))
        fprintf(fp, "\nmetrics = { listen = \"127.0.0.1:%d\"; };\n", cm_th_free_port());
    free(text);
    fclose(fp);
}

bool cm_th_wait_text(const char *path, const char *needle, double timeout_s)
{
    double end = cm_th_now() + timeout_s;

    do {
        FILE *fp = fopen(path, "r");
        char *line = NULL;
        size_t cap = 0;
        bool found = false;
        while (fp && !found && getline(&line, &cap, fp) > 0)
            found = strstr(line, needle) != NULL;
        free(line);
        if (fp)
            fclose(fp);
        if (found)
            return true;
        usleep(50000);
    } while (cm_th_now() < end);
    fprintf(stderr, "\n  waited %.1f s for '%s' in %s\n", timeout_s, needle, path);
    return false;
}

int cm_th_signal_wait(pid_t pid, int sig, double timeout_s, double *elapsed_s)
{
    double t0 = cm_th_now();
    int st;

    kill(pid, sig);
    for (;;) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            break;
        if (cm_th_now() - t0 > timeout_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            st = -1;
            break;
        }
        usleep(20000);
    }
    if (elapsed_s)
        *elapsed_s = cm_th_now() - t0;
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

char *cm_th_http_get(int port, const char *path, int *code)
{
    char url[512], *out = NULL, *nl;
    char *argv[] = {"curl", "-s", "--noproxy",      "*", "--max-time",
                    "10",   "-w", "\n%{http_code}", url, NULL};

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    *code = 0;
    if (cm_th_run(argv, &out, 30, NULL) != 0 || !out) {
        free(out);
        return NULL;
    }
    if ((nl = strrchr(out, '\n'))) {
        *code = atoi(nl + 1);
        *nl = '\0';
    }
    return out;
}

char *cm_th_http_get_ok(int port, const char *path)
{
    int code;
    char *body = cm_th_http_get(port, path, &code);

    if (code != 200) {
        free(body);
        return NULL;
    }
    return body;
}

void cm_th_remove_tree(const char *path)
{
    char *argv[] = {"rm", "-rf", (char *)path, NULL};
    char *out = NULL;

    if (path && path[0])
        cm_th_run(argv, &out, 30, NULL);
    free(out);
}

int cm_th_stderr_begin(const char *path)
{
    int saved, fd;

    fflush(stderr);
    if ((saved = dup(STDERR_FILENO)) < 0)
        return -1;
    if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        close(saved);
        return -1;
    }
    dup2(fd, STDERR_FILENO);
    close(fd);
    return saved;
}

char *cm_th_stderr_end(int saved, const char *path)
{
    if (saved < 0)
        return NULL;
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    return cm_th_read_text(path);
}

json_t *cm_th_state_json(const char *path)
{
    struct cm_state *s = NULL;
    char err[600], *text = NULL;
    size_t len;
    json_t *j = NULL;

    if (cm_state_new(&s) == 0 && cm_store_read(path, s, err, sizeof(err)) == 0 &&
        cm_state_serialize(s, time(NULL), &text, &len) == 0)
        j = json_loadb(text, len, 0, NULL);
    free(text);
    cm_state_free(s);
    return j;
}

/* Runs `certmon state export -c conf [--json]`. */
static int state_export(const char *conf, bool as_json, char **out)
{
    char *argv[] = {(char *)cm_th_certmon(),   "state", "export", "-c", (char *)conf,
                    as_json ? "--json" : NULL, NULL};

    *out = NULL;
    return cm_th_run(argv, out, 30, NULL);
}

int cm_th_state_export(const char *conf, char **out)
{
    return state_export(conf, false, out);
}

json_t *cm_th_state_export_json(const char *conf)
{
    char *out;
    json_t *j = NULL;
    json_error_t je;
    int rc = state_export(conf, true, &out);

    if (rc != 0)
        fprintf(stderr, "\n  certmon state export -c %s --json: exit status %d\n", conf, rc);
    else if (!(j = json_loads(out ? out : "", 0, &je)))
        fprintf(stderr, "\n  certmon state export -c %s --json: not JSON: %s\n", conf, je.text);
    free(out);
    return j;
}

/* ---- The scripted HTTP receiver ---- */

void cm_th_no_proxy(void)
{
    static const char *const vars[] = {"http_proxy",  "https_proxy", "HTTP_PROXY",
                                       "HTTPS_PROXY", "all_proxy",   "ALL_PROXY"};

    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    setenv("no_proxy", "127.0.0.1,localhost", 1);
}

pid_t cm_th_rx_start(int port, const char *log, ...)
{
    char p[16], *argv[40];
    size_t argc = 0;
    const char *a;
    va_list ap;
    pid_t pid;

    snprintf(p, sizeof(p), "%d", port);
    argv[argc++] = "/usr/bin/python3";
    argv[argc++] = (char *)cm_th_script("http_receiver.py");
    argv[argc++] = "--port";
    argv[argc++] = p;
    argv[argc++] = "--log";
    argv[argc++] = (char *)log;
    va_start(ap, log);
    while ((a = va_arg(ap, const char *)) && argc < sizeof(argv) / sizeof(argv[0]) - 1)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    pid = cm_th_spawn(argv, NULL);
    if (pid > 0 && !cm_th_wait_port(port, 5000)) {
        cm_th_stop(pid);
        return -1;
    }
    return pid;
}

json_t *cm_th_rx_requests(const char *log)
{
    json_t *arr = json_array();
    FILE *fp = fopen(log, "r");
    char *line = NULL;
    size_t cap = 0;

    while (arr && fp && getline(&line, &cap, fp) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        if (j)
            json_array_append_new(arr, j);
    }
    free(line);
    if (fp)
        fclose(fp);
    return arr;
}

size_t cm_th_rx_wait(const char *log, size_t want, double timeout_s)
{
    double end = cm_th_now() + timeout_s;
    size_t n;

    do {
        json_t *r = cm_th_rx_requests(log);
        n = json_array_size(r);
        json_decref(r);
        if (n >= want)
            return n;
        usleep(100000);
    } while (cm_th_now() < end);
    return n;
}

json_t *cm_th_rx_body(json_t *requests, size_t i)
{
    const char *b = cm_json_str(json_array_get(requests, i), "body");

    return b ? json_loads(b, 0, NULL) : NULL;
}

char *cm_th_sqlite3(const char *path, const char *sql)
{
    char *argv[] = {"sqlite3", (char *)path, (char *)sql, NULL}, *out = NULL;
    size_t n;

    if (cm_th_run(argv, &out, 30, NULL) != 0) {
        free(out);
        return NULL;
    }
    for (n = out ? strlen(out) : 0; n > 0 && out[n - 1] == '\n'; n--)
        out[n - 1] = '\0';
    return out;
}

bool cm_th_wait_sqlite3(const char *path, const char *sql, const char *want, double timeout_s)
{
    double end = cm_th_now() + timeout_s;
    char *got = NULL;

    for (;;) {
        free(got);
        got = cm_th_sqlite3(path, sql);
        if (got && strcmp(got, want) == 0) {
            free(got);
            return true;
        }
        if (cm_th_now() >= end)
            break;
        usleep(100000);
    }
    fprintf(stderr, "\n  waited %.1f s for \"%s\" from \"%s\" on %s; last: \"%s\"\n", timeout_s,
            want, sql, path, got ? got : "(failed)");
    free(got);
    return false;
}
