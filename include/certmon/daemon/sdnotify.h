/* systemd's service notification protocol (sd_notify(3)), spoken directly: one AF_UNIX
 * datagram of "KEY=VALUE\n" lines per message to the socket named by $NOTIFY_SOCKET. No
 * libsystemd: the protocol is a documented, stable interface, and a daemon that runs without
 * systemd (a container, a terminal) needs no extra library for it.
 *
 * What certmon sends and when (docs/daemon.md): READY=1 once the first configuration is
 * loaded and the metrics listener is up; RELOADING=1 (with MONOTONIC_USEC) when a SIGHUP
 * reload starts and READY=1 when it ends, applied or not; STOPPING=1 on SIGTERM/SIGINT;
 * WATCHDOG=1 every half of $WATCHDOG_USEC from a timer on the loop, so that a stuck loop stops
 * the pings and systemd restarts the service.
 *
 * Not supported: vsock addresses ("vsock:CID:PORT", systemd 254+); such a $NOTIFY_SOCKET is
 * reported as an error and notifications are off. */
#ifndef CERTMON_SDNOTIFY_H
#define CERTMON_SDNOTIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

struct cm_sdnotify {
    /* read-only */
    bool enabled; /* $NOTIFY_SOCKET was set and usable */
    /* private */
    int fd;
    struct sockaddr_un addr;
    socklen_t addrlen;
};

/* Reads $NOTIFY_SOCKET into n. An absolute path or an abstract name ('@' first, sent with a
 * leading NUL) enables it. Returns 0 with n->enabled false when the variable is unset or
 * empty (not under systemd); CM_EBADARG when it is set but unusable (relative path, too long,
 * vsock), with the reason in err; a negative errno when the socket cannot be made. The
 * environment is left as it is. */
int cm_sdnotify_open(struct cm_sdnotify *n, char *err, size_t errlen);

/* Sends one message (newline-separated KEY=VALUE assignments). A no-op returning 0 when n is
 * not enabled. Never blocks: the socket is non-blocking and a full queue is reported as
 * -EAGAIN (systemd drains it quickly; the next message retries). Returns 0 or -errno. */
int cm_sdnotify_send(const struct cm_sdnotify *n, const char *msg);

/* printf-style cm_sdnotify_send; messages longer than 1 KiB are cut (ours are short). */
int cm_sdnotify_sendf(const struct cm_sdnotify *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The watchdog interval systemd asks for, in microseconds: $WATCHDOG_USEC when it is a
 * positive integer and $WATCHDOG_PID is unset or this process's PID (sd_watchdog_enabled(3)),
 * else 0 (no watchdog). */
uint64_t cm_sdnotify_watchdog_usec(void);

/* Closes the socket; n is disabled afterwards. Safe on a zeroed or disabled n. */
void cm_sdnotify_close(struct cm_sdnotify *n);

#endif
