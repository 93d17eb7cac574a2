#include "certmon/probe/probe.h"
#include "certmon/base/error.h"
#include "certmon/base/log.h"
#include "certmon/probe/resolve.h"
#include "certmon/probe/starttls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct cm_probe {
    uv_loop_t *loop;
    const struct cm_target *t;
    struct cm_tls_ctx *tls;
    cm_probe_cb cb;
    void *arg;
    uint64_t timeout_ms;

    /* Lifetime: the probe is freed when refs reaches zero. Each initialised handle and the
     * describe work request hold one reference. A pending lookup holds none: it is
     * cancelled (its callback then never runs) when the probe finishes. */
    int refs;
    bool finished;
    uv_timer_t timer; /* first a zero-delay kick, then the deadline */
    struct cm_resolver *resolver;
    struct cm_resolve_req *lookup; /* pending lookup, or NULL */
    uv_poll_t poll;
    bool poll_open;
    int fd;

    struct cm_addr_list *addrs; /* owned */
    size_t next_addr;
    unsigned attempts;
    char conn_errors[384];

    enum cm_phase phase;
    uint64_t t_start, t_phase;
    struct cm_starttls *starttls; /* the plaintext preamble, while it runs */
    struct cm_tls_conn *conn;
    uv_work_t work;  /* describes the chain off the loop */
    bool describing; /* work queued and its after-work callback not yet run */
    bool describe_failed;
    struct cm_tls_info info; /* what the work describes; moved into res when in time */
    struct cm_probe_result *res;
};

/* Probes delivered at their deadline whose describe work still runs (cm_probe_orphans).
 * Touched on loop threads only; a process has one loop that probes. */
static size_t orphans;

size_t cm_probe_orphans(void)
{
    return orphans;
}

static double ms_since(uint64_t t0)
{
    return (double)(uv_hrtime() - t0) / 1e6;
}

static void probe_unref(struct cm_probe *p)
{
    if (--p->refs > 0)
        return;
    free(p->addrs);
    free(p);
}

static void on_timer_closed(uv_handle_t *h)
{
    probe_unref(h->data);
}

static void on_poll_closed(uv_handle_t *h)
{
    struct cm_probe *p = h->data;

    /* The fd may only be closed once libuv no longer watches it. */
    close(p->fd);
    p->fd = -1;
    probe_unref(p);
}

static void close_poll(struct cm_probe *p, uv_close_cb cb)
{
    if (p->poll_open) {
        p->poll_open = false;
        uv_close((uv_handle_t *)&p->poll, cb);
    }
}

static void deliver(struct cm_probe *p)
{
    struct cm_probe_result *res = p->res;

    /* The session is the describe work's until that work is done. */
    if (p->conn && !p->describing) {
        cm_tls_conn_free(p->conn);
        p->conn = NULL;
    }
    cm_log_debug("probe", "target=%s address=%s result=%s total_ms=%.1f", res->target,
                 res->address[0] ? res->address : "-",
                 res->error_kind == CM_ERRK_NONE ? "ok" : cm_err_kind_name(res->error_kind),
                 res->total_ms);
    p->res = NULL;
    p->cb(res, p->arg);
}

/* Runs on a thread-pool thread: touches only the session and p->info (the target is
 * borrowed for the probe's whole life, which outlasts this work). */
static void describe_work(uv_work_t *w)
{
    struct cm_probe *p = w->data;

    if (cm_tls_conn_describe(p->conn, p->t->verify_name, !p->t->handshake_only, &p->info) < 0)
        p->describe_failed = true;
}

static void describe_done(uv_work_t *w, int status)
{
    struct cm_probe *p = w->data;

    (void)status; /* never cancelled: nothing calls uv_cancel on this request */
    p->describing = false;
    if (!p->res) {
        /* The deadline passed while the chain was described: the result went out without
         * it. Only the leftovers remain. */
        cm_tls_info_clear(&p->info);
        cm_tls_conn_free(p->conn);
        p->conn = NULL;
        orphans--;
        probe_unref(p);
        return;
    }
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, on_timer_closed);
    if (p->describe_failed)
        cm_log_error("probe", "target=%s describe failed: out of memory", p->res->target);
    p->res->tls = p->info;
    memset(&p->info, 0, sizeof(p->info));
    deliver(p);
    probe_unref(p);
}

/* Describing may overrun the deadline by this much: a probe that ended at its deadline
 * (a server that stalled after sending its certificates) still reports the chain that
 * arrived when that is quick, as it always does. */
#define DESCRIBE_MIN_MS 200

/* The deadline passed while the chain was being described (a certificate that costs
 * seconds to parse): the result goes out now, without the description. */
static void on_describe_deadline(uv_timer_t *timer)
{
    struct cm_probe *p = timer->data;
    struct cm_probe_result *res = p->res;
    char msg[160];

    uv_close((uv_handle_t *)&p->timer, on_timer_closed);
    orphans++;
    if (res->error_kind != CM_ERRK_NONE) {
        /* The probe had already failed (at its deadline, or with time too short to describe
         * what arrived): that error stands, without the chain. */
        deliver(p);
        return;
    }
    snprintf(msg, sizeof(msg),
             "timed out after %.3g s describing the certificate chain of %s (handshake done)",
             (double)p->timeout_ms / 1000.0, res->address[0] ? res->address : res->host);
    free(res->error_message);
    res->error_message = strdup(msg);
    res->error_kind = CM_ERRK_TIMEOUT;
    res->error_phase = CM_PHASE_DESCRIBE;
    res->total_ms = ms_since(p->t_start);
    cm_log_info("probe", "target=%s describing the chain outlasted the deadline", res->target);
    deliver(p);
}

static void finish(struct cm_probe *p, enum cm_err_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void finish(struct cm_probe *p, enum cm_err_kind kind, const char *fmt, ...)
{
    struct cm_probe_result *res = p->res;
    char msg[512];

    if (p->finished)
        return;
    p->finished = true;
    res->error_kind = kind;
    res->error_phase = kind == CM_ERRK_NONE ? CM_PHASE_DONE : p->phase;
    if (kind != CM_ERRK_NONE) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        res->error_message = strdup(msg);
    }
    if (p->phase == CM_PHASE_HANDSHAKE && res->handshake_ms < 0)
        res->handshake_ms = ms_since(p->t_phase);
    if (p->phase == CM_PHASE_STARTTLS && res->starttls_ms < 0)
        res->starttls_ms = ms_since(p->t_phase);
    /* A phase that was reached has a time, even when it is where the probe ended. */
    if (p->phase == CM_PHASE_DNS && res->dns_ms < 0)
        res->dns_ms = ms_since(p->t_start);
    if (p->phase == CM_PHASE_CONNECT && res->connect_ms < 0)
        res->connect_ms = ms_since(p->t_phase);
    res->total_ms = ms_since(p->t_start);
    res->finished_at = (int64_t)time(NULL);

    cm_starttls_free(p->starttls);
    p->starttls = NULL;
    if (p->conn && kind == CM_ERRK_NONE)
        cm_tls_conn_bye(p->conn);
    cm_tls_conn_detach(p->conn); /* the fd closes below; describing does no I/O */
    uv_timer_stop(&p->timer);
    close_poll(p, on_poll_closed);
    cm_resolve_cancel(p->lookup);
    p->lookup = NULL;

    /* Whatever the outcome, report the chain that arrived and what verification says.
     * Parsing and verifying the chain is pure CPU work (a third of a probe's), so it runs
     * on the thread pool: the loop stays free for other probes' I/O and deadlines, and
     * the work spreads over the cores. The session is no longer touched by the loop. The
     * deadline still holds: the timer keeps what is left of it. */
    if (p->conn && kind != CM_ERRK_CANCELLED) {
        uint64_t spent = (uv_hrtime() - p->t_start) / 1000000;
        p->work.data = p;
        if (uv_queue_work(p->loop, &p->work, describe_work, describe_done) == 0) {
            p->refs++;
            p->describing = true;
            /* Timers count from the loop's cached time, which a long handshake step (a big
             * certificate parsed inside GnuTLS) has left behind. */
            uv_update_time(p->loop);
            uv_timer_start(&p->timer, on_describe_deadline,
                           p->timeout_ms > spent + DESCRIBE_MIN_MS ? p->timeout_ms - spent
                                                                   : DESCRIBE_MIN_MS,
                           0);
            return;
        }
        describe_work(&p->work);
        res->tls = p->info;
        memset(&p->info, 0, sizeof(p->info));
    }
    uv_close((uv_handle_t *)&p->timer, on_timer_closed);
    deliver(p);
}

static void on_deadline(uv_timer_t *timer)
{
    struct cm_probe *p = timer->data;
    const char *what = p->phase == CM_PHASE_DNS        ? "resolving the name"
                       : p->phase == CM_PHASE_CONNECT  ? "connecting"
                       : p->phase == CM_PHASE_STARTTLS ? "in the STARTTLS preamble"
                                                       : "in the TLS handshake";

    finish(p, CM_ERRK_TIMEOUT, "timed out after %.1f s %s%s%s", (double)p->timeout_ms / 1000.0,
           what, p->res->address[0] && p->phase != CM_PHASE_DNS ? " with " : "",
           p->phase != CM_PHASE_DNS ? p->res->address : "");
}

static void step_handshake(struct cm_probe *p);

/* How long to wait, after a TLS 1.3 handshake in which the server asked for a client
 * certificate, for the server to reject it. Servers answer at once (an alert, or session
 * tickets when they accept), so only a server that says nothing at all costs the whole
 * grace; a busy server needs more than a second, or a rejection would pass for success. */
#define POST_READ_GRACE_MS 3000

static int socket_error(int fd)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        return errno;
    return soerr;
}

/* Ends the probe when a poll on its socket reported an error. Returns true if it did. */
static bool poll_failed(struct cm_probe *p, int status, const char *when)
{
    int soerr;

    if (status >= 0)
        return false;
    /* libuv reports POLLERR as UV_EBADF; the socket knows the real reason. */
    soerr = socket_error(p->fd);
    finish(p, CM_ERRK_IO, "socket error %s: %s", when,
           soerr ? strerror(soerr) : uv_strerror(status));
    return true;
}

/* Ends the probe with GnuTLS error rc, named for a human. */
static void fail_tls(struct cm_probe *p, int rc)
{
    char msg[384];
    bool is_io;

    cm_tls_error_describe(p->conn, rc, msg, sizeof(msg), &is_io);
    p->res->tls_refused = !is_io && cm_tls_error_is_refusal(p->conn, rc);
    finish(p, is_io ? CM_ERRK_IO : CM_ERRK_TLS, "%s", msg);
}

static void on_tls_io(uv_poll_t *h, int status, int events)
{
    struct cm_probe *p = h->data;

    (void)events;
    if (!poll_failed(p, status, "during the TLS handshake"))
        step_handshake(p);
}

/* Judges what the server sent after a TLS 1.3 handshake in which it asked for a client
 * certificate: an alert means it rejected us; tickets, data or silence mean it did not. */
static void judge_post_read(struct cm_probe *p, int rc)
{
    if (rc >= 0)
        finish(p, CM_ERRK_NONE, "%s", "");
    else
        fail_tls(p, rc);
}

static void on_post_read_io(uv_poll_t *h, int status, int events)
{
    struct cm_probe *p = h->data;

    (void)events;
    /* The first records after our Finished decide; an empty read now means they were
     * tickets or the like. */
    if (!poll_failed(p, status, "after the TLS handshake"))
        judge_post_read(p, cm_tls_conn_post_read(p->conn));
}

static void on_post_read_quiet(uv_timer_t *timer)
{
    struct cm_probe *p = timer->data;

    /* The server said nothing within the grace period: it did not reject us. */
    finish(p, CM_ERRK_NONE, "%s", "");
}

static void start_post_read(struct cm_probe *p)
{
    uint64_t spent = (uv_hrtime() - p->t_start) / 1000000;
    uint64_t left = p->timeout_ms > spent ? p->timeout_ms - spent : 0;
    int rc = cm_tls_conn_post_read(p->conn);

    if (rc != 0) {
        judge_post_read(p, rc);
        return;
    }
    /* Wait for the server's first records, at most a second and never past the deadline. */
    uv_timer_start(&p->timer, on_post_read_quiet,
                   left < POST_READ_GRACE_MS ? left : POST_READ_GRACE_MS, 0);
    uv_poll_start(&p->poll, UV_READABLE, on_post_read_io);
}

static void step_handshake(struct cm_probe *p)
{
    bool want_write = false;
    int rc = cm_tls_conn_handshake(p->conn, &want_write);

    if (rc == 1) {
        uv_poll_start(&p->poll, want_write ? UV_WRITABLE : UV_READABLE, on_tls_io);
        return;
    }
    p->res->handshake_ms = ms_since(p->t_phase);
    if (rc != 0)
        fail_tls(p, rc);
    else if (cm_tls_conn_needs_post_read(p->conn))
        start_post_read(p);
    else
        finish(p, CM_ERRK_NONE, "%s", "");
}

static void connect_next(struct cm_probe *p);

static void start_tls(struct cm_probe *p)
{
    struct cm_tls_profile prof = {p->t->ca_file, p->t->client_cert, p->t->client_key};
    int rc;

    p->phase = CM_PHASE_HANDSHAKE;
    p->t_phase = uv_hrtime();
    rc = cm_tls_conn_new(p->tls, p->fd, p->t->sni, &prof, p->t->tls_priority, &p->conn);
    if (rc < 0) {
        finish(p, CM_ERRK_INTERNAL, "cannot set up TLS: %s", cm_strerror(rc));
        return;
    }
    step_handshake(p);
}

static void step_starttls(struct cm_probe *p);

static void on_starttls_io(uv_poll_t *h, int status, int events)
{
    struct cm_probe *p = h->data;

    (void)events;
    if (!poll_failed(p, status, "during the STARTTLS preamble"))
        step_starttls(p);
}

/* Drives the plaintext preamble: send what the machine wants sent, read what the server
 * says, until the machine is done (then TLS starts on the same socket) or fails. Bounded:
 * the machine caps what it accepts, and each pass sends or consumes bytes. */
static void step_starttls(struct cm_probe *p)
{
    unsigned char buf[2048];

    for (;;) {
        size_t len;
        const unsigned char *out = cm_starttls_output(p->starttls, &len);
        ssize_t n;
        int rc;

        if (len > 0) {
            n = send(p->fd, out, len, MSG_NOSIGNAL);
            if (n > 0) {
                cm_starttls_sent(p->starttls, (size_t)n);
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
                uv_poll_start(&p->poll, UV_WRITABLE, on_starttls_io);
                return;
            }
            finish(p, CM_ERRK_IO, "%s preamble: cannot send: %s", cm_starttls_name(p->t->starttls),
                   strerror(errno));
            return;
        }
        if (cm_starttls_done(p->starttls)) {
            cm_starttls_free(p->starttls);
            p->starttls = NULL;
            p->res->starttls_ms = ms_since(p->t_phase);
            start_tls(p);
            return;
        }
        n = recv(p->fd, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            uv_poll_start(&p->poll, UV_READABLE, on_starttls_io);
            return;
        }
        if (n < 0) {
            finish(p, CM_ERRK_IO, "%s preamble: %s", cm_starttls_name(p->t->starttls),
                   strerror(errno));
            return;
        }
        rc = n == 0 ? cm_starttls_eof(p->starttls) : cm_starttls_input(p->starttls, buf, (size_t)n);
        if (rc < 0) {
            const char *why = cm_starttls_error(p->starttls);
            finish(p, CM_ERRK_STARTTLS, "%s", why ? why : cm_strerror(rc));
            return;
        }
    }
}

static void note_connect_error(struct cm_probe *p, int err)
{
    size_t used = strlen(p->conn_errors);

    snprintf(p->conn_errors + used, sizeof(p->conn_errors) - used, "%s%s: %s", used ? "; " : "",
             p->res->address, strerror(err));
}

static void on_poll_closed_retry(uv_handle_t *h)
{
    struct cm_probe *p = h->data;

    close(p->fd);
    p->fd = -1;
    if (!p->finished)
        connect_next(p);
    probe_unref(p);
}

static void on_connected(uv_poll_t *h, int status, int events)
{
    struct cm_probe *p = h->data;
    int rc;
    /* libuv reports POLLERR as UV_EBADF; SO_ERROR holds the real reason (ECONNREFUSED). */
    int soerr = socket_error(p->fd);

    (void)events;
    if (!soerr && status < 0)
        soerr = -status;
    if (soerr) {
        note_connect_error(p, soerr);
        close_poll(p, on_poll_closed_retry);
        return;
    }
    p->res->connect_ms = ms_since(p->t_phase);
    p->t_phase = uv_hrtime();
    if (p->t->starttls == CM_STARTTLS_NONE) {
        start_tls(p);
        return;
    }
    p->phase = CM_PHASE_STARTTLS;
    rc = cm_starttls_new(p->t->starttls, p->t->verify_name, &p->starttls);
    if (rc < 0) {
        finish(p, CM_ERRK_INTERNAL, "cannot start the %s preamble: %s",
               cm_starttls_name(p->t->starttls), cm_strerror(rc));
        return;
    }
    step_starttls(p);
}

static void connect_next(struct cm_probe *p)
{
    while (p->addrs && p->next_addr < p->addrs->count) {
        const struct sockaddr_storage *sa = &p->addrs->addrs[p->next_addr++];
        socklen_t salen =
            sa->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        int fd, one = 1;

        if (sa->ss_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, p->res->address,
                      sizeof(p->res->address));
        else
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, p->res->address,
                      sizeof(p->res->address));
        p->attempts++;
        fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
            /* Our own resources ran out: that says nothing about the endpoint. */
            finish(p, CM_ERRK_INTERNAL, "cannot create a socket: %s", strerror(errno));
            return;
        }
        if (fd < 0) {
            note_connect_error(p, errno);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, (const struct sockaddr *)sa, salen) < 0 && errno != EINPROGRESS) {
            note_connect_error(p, errno);
            close(fd);
            continue;
        }
        p->fd = fd;
        if (uv_poll_init_socket(p->loop, &p->poll, fd) < 0) {
            close(fd);
            p->fd = -1;
            finish(p, CM_ERRK_INTERNAL, "cannot watch the socket for %s", p->res->address);
            return;
        }
        p->poll.data = p;
        p->poll_open = true;
        p->refs++;
        uv_poll_start(&p->poll, UV_WRITABLE, on_connected);
        return;
    }
    p->res->connect_ms = ms_since(p->t_phase);
    if (p->attempts == 0)
        finish(p, CM_ERRK_CONNECT, "no usable address for %s", p->t->host);
    else
        finish(p, CM_ERRK_CONNECT, "cannot connect to port %u: %s", (unsigned)p->t->port,
               p->conn_errors);
}

static void start_connect(struct cm_probe *p, struct cm_addr_list *addrs)
{
    p->addrs = addrs;
    p->next_addr = 0;
    p->res->dns_ms = ms_since(p->t_start);
    p->phase = CM_PHASE_CONNECT;
    p->t_phase = uv_hrtime();
    connect_next(p);
}

static void on_resolved(int status, const char *message, struct cm_addr_list *list, void *arg)
{
    struct cm_probe *p = arg;

    p->lookup = NULL;
    if (status < 0) {
        p->res->dns_ms = ms_since(p->t_start);
        finish(p, CM_ERRK_DNS, "cannot resolve %s: %s", p->t->host, message);
        return;
    }
    start_connect(p, list);
}

static void on_kick(uv_timer_t *timer)
{
    struct cm_probe *p = timer->data;
    struct cm_addr_list *literal;

    /* The deadline counts from cm_probe_start, so subtract the time the kick waited. */
    uint64_t spent = (uv_hrtime() - p->t_start) / 1000000;
    uv_timer_start(&p->timer, on_deadline, p->timeout_ms > spent ? p->timeout_ms - spent : 0, 0);

    if (p->t->connect_address || cm_host_is_ip(p->t->host)) {
        /* A literal needs no resolver. */
        const char *a = p->t->connect_address ? p->t->connect_address : p->t->host;
        if (!(literal = cm_addr_list_literal(a, p->t->port))) {
            finish(p, CM_ERRK_INTERNAL, "out of memory");
            return;
        }
        start_connect(p, literal);
        return;
    }
    if (cm_resolve_start(p->resolver, p->t->host, p->t->port, on_resolved, p, &p->lookup) < 0)
        finish(p, CM_ERRK_INTERNAL, "out of memory");
}

/* Copies our client certificate chain (when the target has one) into the result. */
static int copy_client_chain(struct cm_chain *dst, const struct cm_chain *src)
{
    if (!src || src->count == 0)
        return 0;
    if (!(dst->certs = calloc(src->count, sizeof(*dst->certs))))
        return -ENOMEM;
    for (size_t i = 0; i < src->count; i++) {
        if (cm_cert_copy(&dst->certs[i], &src->certs[i]) < 0)
            return -ENOMEM;
        dst->count++;
    }
    cm_chain_drop_der(dst); /* never checked for revocation */
    return 0;
}

static struct cm_probe_result *result_new(const struct cm_target *t, struct cm_tls_ctx *tls)
{
    struct cm_probe_result *r = calloc(1, sizeof(*r));
    struct cm_tls_profile prof = {t->ca_file, t->client_cert, t->client_key};

    if (!r)
        return NULL;
    if (t->client_cert &&
        copy_client_chain(&r->client_chain, cm_tls_ctx_client_chain(tls, &prof)) < 0) {
        cm_probe_result_free(r);
        return NULL;
    }
    r->target = strdup(t->name);
    r->host = strdup(t->host);
    r->port = t->port;
    r->sni = t->sni ? strdup(t->sni) : NULL;
    r->verify_name = strdup(t->verify_name);
    r->dns_ms = r->connect_ms = r->starttls_ms = r->handshake_ms = r->total_ms = -1;
    r->starttls = t->starttls;
    if (!r->target || !r->host || !r->verify_name || (t->sni && !r->sni)) {
        cm_probe_result_free(r);
        return NULL;
    }
    return r;
}

int cm_probe_start(const struct cm_probe_env *env, const struct cm_target *t, uint64_t timeout_ms,
                   cm_probe_cb cb, void *arg, struct cm_probe **out)
{
    uv_loop_t *loop = env->loop;
    struct cm_probe *p = calloc(1, sizeof(*p));

    if (out)
        *out = NULL;
    if (!p)
        return -ENOMEM;
    if (!(p->res = result_new(t, env->tls))) {
        free(p);
        return -ENOMEM;
    }
    p->loop = loop;
    p->t = t;
    p->tls = env->tls;
    p->resolver = env->resolver;
    p->cb = cb;
    p->arg = arg;
    p->timeout_ms = timeout_ms;
    p->fd = -1;
    p->phase = CM_PHASE_DNS;
    p->t_start = uv_hrtime();
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    p->refs = 1;
    /* Start from a loop callback so that cb never runs inside this function. */
    uv_timer_start(&p->timer, on_kick, 0, 0);
    if (out)
        *out = p;
    return 0;
}

void cm_probe_cancel(struct cm_probe *p)
{
    if (p && !p->finished)
        finish(p, CM_ERRK_CANCELLED, "probe cancelled");
}
