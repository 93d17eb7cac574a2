/* certmon run under a stand-in for systemd: the test binds the AF_UNIX datagram socket that
 * $NOTIFY_SOCKET names (as systemd does for Type=notify), starts the daemon with it, and reads
 * what arrives, with the sender's credentials: READY=1 once the listener answers, WATCHDOG=1
 * at half of $WATCHDOG_USEC, RELOADING=1 then READY=1 around SIGHUP (a failed reload too),
 * STOPPING=1 on SIGTERM, all from the daemon's own PID. */
#include "cmtest.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

static char dir[256];

static const char *path_in(const char *name)
{
    static char bufs[8][512];
    static unsigned k;
    char *b = bufs[k++ % 8];

    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

/* One notification as received: its text and the PID the kernel vouches for. */
struct note {
    char text[1024];
    pid_t pid;
    double at;
};

/* Binds a datagram socket at path ('@' first: abstract) with SO_PASSCRED, as systemd does. */
static int bind_notify(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    socklen_t salen;
    int one = 1, fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    CU_ASSERT_FATAL(fd >= 0 && len < sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@') {
        sa.sun_path[0] = '\0';
        salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        unlink(path);
        salen = (socklen_t)sizeof(sa);
    }
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sa, salen) == 0);
    CU_ASSERT_FATAL(setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) == 0);
    return fd;
}

/* Receives one notification within timeout_s; false on timeout. */
static bool recv_note(int fd, double timeout_s, struct note *n)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(struct ucred))];
    } ctl;
    struct iovec iov = {.iov_base = n->text, .iov_len = sizeof(n->text) - 1};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = ctl.buf,
                        .msg_controllen = sizeof(ctl.buf)};
    ssize_t r;

    if (poll(&p, 1, (int)(timeout_s * 1000 * CERTMON_SLOWDOWN)) != 1)
        return false;
    r = recvmsg(fd, &mh, 0);
    if (r < 0)
        return false;
    n->text[r] = '\0';
    n->pid = -1;
    n->at = cm_th_now();
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred uc;
            memcpy(&uc, CMSG_DATA(c), sizeof(uc));
            n->pid = uc.pid;
        }
    }
    return true;
}

/* True when the message has the assignment line (e.g. "READY=1") as a whole line. */
static bool has_line(const char *text, const char *line)
{
    size_t len = strlen(line);

    for (const char *p = text; (p = strstr(p, line)) != NULL; p += len) {
        if ((p == text || p[-1] == '\n') && (p[len] == '\0' || p[len] == '\n'))
            return true;
    }
    return false;
}

/* Waits for a message with the line `want`, skipping WATCHDOG=1 pings (counted into
 * *pings when not NULL) but failing on any other message in between: the order is the
 * contract. Returns true when it came in time from pid. */
static bool expect_note(int fd, pid_t pid, const char *want, double timeout_s, struct note *out,
                        unsigned *pings, unsigned line)
{
    double end = cm_th_now() + timeout_s * CERTMON_SLOWDOWN;
    struct note n;

    while (cm_th_now() < end) {
        if (!recv_note(fd, end - cm_th_now(), &n))
            break;
        expect_int(n.pid, pid, "sender pid", line);
        if (has_line(n.text, want)) {
            if (out)
                *out = n;
            return true;
        }
        if (!strcmp(n.text, "WATCHDOG=1")) {
            if (pings)
                (*pings)++;
            continue;
        }
        fprintf(stderr, "\n  line %u: waiting for %s, got '%s'\n", line, want, n.text);
        CU_FAIL("a notification out of order");
        return false;
    }
    fprintf(stderr, "\n  line %u: no %s within %.1f s\n", line, want, timeout_s);
    CU_FAIL("a notification did not come");
    return false;
}

/* A configuration with one certificate file (no network needed) and the listener on port. */
static void write_conf(const char *conf, int port, const char *extra)
{
    cm_th_write_config(conf,
                       "global = { interval = \"1h\"; state_file = \"state.json\"; };\n"
                       "files = ( { path = \"%s\"; } );\n"
                       "metrics = { listen = \"127.0.0.1:%d\"; };\n%s",
                       cm_th_pki("valid.pem"), port, extra);
}

/* Starts certmon run with NOTIFY_SOCKET (and WATCHDOG_USEC when not NULL) in its environment
 * only. */
static pid_t start(const char *conf, const char *notify, const char *wd_usec, const char *log)
{
    char *argv[] = {(char *)cm_th_certmon(), "run", "-c", (char *)conf, NULL};
    pid_t pid;

    setenv("NOTIFY_SOCKET", notify, 1);
    if (wd_usec)
        setenv("WATCHDOG_USEC", wd_usec, 1);
    pid = cm_th_spawn(argv, log);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    CU_ASSERT_FATAL(pid > 0);
    return pid;
}

static int suite_init(void)
{
    snprintf(dir, sizeof(dir), "/tmp/certmon-sdnotify-XXXXXX");
    return mkdtemp(dir) && cm_th_pki_dir() ? 0 : -1;
}

static int suite_cleanup(void)
{
    char *argv[] = {"rm", "-rf", dir, NULL};
    char *out = NULL;

    cm_th_run(argv, &out, 30, NULL);
    free(out);
    return 0;
}

/* The whole life of a Type=notify service: start, watchdog, reload, stop. */
static void test_lifecycle(void)
{
    const char *sock = path_in("notify.sock"), *conf = path_in("life.conf");
    int port = cm_th_free_port(), fd = bind_notify(sock);
    struct note ready, reloading, n;
    unsigned pings = 0;

    write_conf(conf, port, "");
    /* 300 ms: pings every 150 ms. */
    pid_t pid = start(conf, sock, "300000", path_in("life.log"));
    CU_ASSERT_FATAL(expect_note(fd, pid, "READY=1", 10, &ready, &pings, __LINE__));
    /* READY means the listener is up: it accepts at once. */
    CU_ASSERT(cm_th_wait_port(port, 100));
    CU_ASSERT_PTR_NOT_NULL(strstr(ready.text, "STATUS=running; 1 targets from "));
    EXPECT_INT(pings, 0);

    /* Pings at about half the watchdog interval, from the loop. */
    double first = 0, last = 0;
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_FATAL(expect_note(fd, pid, "WATCHDOG=1", 2, &n, NULL, __LINE__));
        if (i == 0)
            first = n.at;
        last = n.at;
    }
    double gap = (last - first) / 3;
    CU_ASSERT(gap > 0.075 && gap < 0.300 * CERTMON_SLOWDOWN);

    /* SIGHUP: RELOADING=1 with a monotonic timestamp, then READY=1. */
    kill(pid, SIGHUP);
    CU_ASSERT_FATAL(expect_note(fd, pid, "RELOADING=1", 5, &reloading, NULL, __LINE__));
    CU_ASSERT_PTR_NOT_NULL(strstr(reloading.text, "\nMONOTONIC_USEC="));
    CU_ASSERT_FATAL(expect_note(fd, pid, "READY=1", 10, &ready, NULL, __LINE__));
    CU_ASSERT_PTR_NOT_NULL(strstr(ready.text, "STATUS=running; 1 targets"));
    CU_ASSERT(cm_th_wait_text(path_in("life.log"), "reloaded targets=1", 5));

    /* Pings go on after the reload. */
    CU_ASSERT(expect_note(fd, pid, "WATCHDOG=1", 2, NULL, NULL, __LINE__));

    /* SIGTERM: STOPPING=1, then a clean exit. */
    kill(pid, SIGTERM);
    CU_ASSERT(expect_note(fd, pid, "STOPPING=1", 5, NULL, NULL, __LINE__));
    EXPECT_INT(cm_th_signal_wait(pid, 0, 10 * CERTMON_SLOWDOWN, NULL), 0);
    close(fd);
}

/* A reload that fails keeps the old configuration, and systemd still hears READY=1 (else the
 * unit would hang in "reloading" until its timeout); the status says the reload failed. An
 * abstract socket name works as well as a path. No WATCHDOG_USEC: no pings. */
static void test_failed_reload_abstract(void)
{
    char sock[128];
    const char *conf = path_in("fail.conf");
    int port = cm_th_free_port();
    struct note n;
    unsigned pings = 0;

    snprintf(sock, sizeof(sock), "@certmon-test-%d", (int)getpid());
    int fd = bind_notify(sock);
    write_conf(conf, port, "");
    pid_t pid = start(conf, sock, NULL, path_in("fail.log"));
    CU_ASSERT_FATAL(expect_note(fd, pid, "READY=1", 10, NULL, &pings, __LINE__));

    write_conf(conf, port, "global_typo = 1;\n");
    kill(pid, SIGHUP);
    CU_ASSERT_FATAL(expect_note(fd, pid, "RELOADING=1", 5, NULL, &pings, __LINE__));
    CU_ASSERT_FATAL(expect_note(fd, pid, "READY=1", 10, &n, &pings, __LINE__));
    CU_ASSERT_PTR_NOT_NULL(strstr(n.text, "STATUS=running; the last reload failed"));
    CU_ASSERT(cm_th_wait_port(port, 100));

    kill(pid, SIGTERM);
    CU_ASSERT(expect_note(fd, pid, "STOPPING=1", 5, NULL, &pings, __LINE__));
    EXPECT_INT(cm_th_signal_wait(pid, 0, 10 * CERTMON_SLOWDOWN, NULL), 0);
    EXPECT_INT(pings, 0);
    close(fd);
}

/* A NOTIFY_SOCKET that cannot be used is a warning naming it; the daemon runs without. */
static void test_bad_socket(void)
{
    const char *conf = path_in("bad.conf"), *log = path_in("bad.log");
    int port = cm_th_free_port();

    write_conf(conf, port, "");
    pid_t pid = start(conf, "relative/notify.sock", NULL, log);
    CU_ASSERT(cm_th_wait_port(port, (int)(10000 * CERTMON_SLOWDOWN)));
    CU_ASSERT(cm_th_wait_text(log,
                              "systemd notifications off: NOTIFY_SOCKET=relative/notify.sock "
                              "is neither an absolute path",
                              5));
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10 * CERTMON_SLOWDOWN, NULL), 0);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"lifecycle: READY, WATCHDOG, RELOADING/READY, STOPPING in order", test_lifecycle},
        {"failed reload still READY; abstract socket; no watchdog", test_failed_reload_abstract},
        {"unusable NOTIFY_SOCKET is a warning", test_bad_socket},
        CU_TEST_INFO_NULL,
    };
    return cm_test_main("integration.sdnotify", tests, suite_init, suite_cleanup);
}
