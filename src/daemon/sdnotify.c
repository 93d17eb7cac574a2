#include "certmon/daemon/sdnotify.h"
#include "certmon/base/error.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cm_sdnotify_open(struct cm_sdnotify *n, char *err, size_t errlen)
{
    const char *path = getenv("NOTIFY_SOCKET");
    size_t len;

    memset(n, 0, sizeof(*n));
    n->fd = -1;
    if (!path || !*path)
        return 0;
    len = strlen(path);
    if (path[0] != '/' && path[0] != '@') {
        snprintf(err, errlen,
                 "NOTIFY_SOCKET=%s is neither an absolute path nor an abstract "
                 "socket name ('@' first); vsock addresses are not supported",
                 path);
        return CM_EBADARG;
    }
    if (len >= sizeof(n->addr.sun_path) || len < 2) {
        snprintf(err, errlen, "NOTIFY_SOCKET is %zu bytes long; a socket address holds 2 to %zu",
                 len, sizeof(n->addr.sun_path) - 1);
        return CM_EBADARG;
    }
    n->addr.sun_family = AF_UNIX;
    memcpy(n->addr.sun_path, path, len);
    /* An abstract address is the name after a NUL byte, and its length counts exactly: no
     * terminator (unix(7)). A path is sent with its terminator, as libsystemd does. */
    if (path[0] == '@') {
        n->addr.sun_path[0] = '\0';
        n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    }
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (n->fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot create a socket for NOTIFY_SOCKET: %s", strerror(e));
        return -e;
    }
    n->enabled = true;
    return 0;
}

int cm_sdnotify_send(const struct cm_sdnotify *n, const char *msg)
{
    ssize_t w;

    if (!n->enabled)
        return 0;
    /* systemd reads the sender's credentials from the datagram (SO_PASSCRED on its side) to
     * tell the main process from others: sendto is enough. MSG_NOSIGNAL: no SIGPIPE when
     * systemd is gone. */
    do
        w = sendto(n->fd, msg, strlen(msg), MSG_NOSIGNAL, (const struct sockaddr *)&n->addr,
                   n->addrlen);
    while (w < 0 && errno == EINTR);
    return w < 0 ? -errno : 0;
}

int cm_sdnotify_sendf(const struct cm_sdnotify *n, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    if (!n->enabled)
        return 0;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return cm_sdnotify_send(n, buf);
}

uint64_t cm_sdnotify_watchdog_usec(void)
{
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    char *end;
    uint64_t v;

    if (!usec || !*usec)
        return 0;
    if (pid && *pid) {
        errno = 0;
        long long p = strtoll(pid, &end, 10);
        /* Meant for another process (a parent that exec'd us without clearing it). */
        if (errno || *end || p != (long long)getpid())
            return 0;
    }
    errno = 0;
    v = strtoull(usec, &end, 10);
    if (errno || *end || usec[0] == '-')
        return 0;
    return v;
}

void cm_sdnotify_close(struct cm_sdnotify *n)
{
    if (n->enabled && n->fd >= 0)
        close(n->fd);
    n->fd = -1;
    n->enabled = false;
}
