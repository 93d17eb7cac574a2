#include "certmon/http/httpd.h"
#include "certmon/base/error.h"
#include "certmon/base/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define SUB "httpd"

/* The largest TLS file read at start: a certificate chain or CA bundle is far smaller. */
#define MAX_PEM_BYTES (1024 * 1024)

/* TLS 1.2 and 1.3 only: Debian's NORMAL still offers TLS 1.0 and 1.1, which no scraper needs. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* Where a request is in its life. A request is created by the first access-handler call
 * (headers complete) and lives until every holder below has let go. */
enum req_state {
    RS_NEW,     /* headers accepted, handler not called yet */
    RS_HANDLER, /* the handler is running */
    RS_PENDING, /* handler returned without answering: connection suspended */
    RS_READY,   /* answered while suspended: waiting for the resume to queue the response */
    RS_DONE,    /* response queued with MHD (or an early rejection) */
    RS_GONE     /* client went away or listener closed while pending; nothing will be sent */
};

struct listener;

struct cm_httpd_req {
    struct listener *l;          /* NULL once MHD has finished with the request */
    struct MHD_Connection *conn; /* likewise */
    enum req_state state;

    /* Lifetime: freed when refs reaches zero. MHD holds one reference from the first
     * access-handler call until its completion callback; the user holds one from the
     * handler call until cm_httpd_respond (or until the cancel callback returned); the
     * disconnect watch holds one from uv_poll_init until its close callback. */
    int refs;
    bool user_ref;
    bool suspended; /* between MHD_suspend_connection and MHD_resume_connection */
    bool watching;  /* watch is initialised and not yet being closed */
    bool queued;    /* in l->resume_head */

    const char *const *headers; /* extra response headers: name, value, ..., NULL (borrowed
                                 * until the response is built) */
    struct MHD_Response *resp; /* what to send once resumed (RS_HANDLER, RS_READY) */
    bool resp_shared;          /* resp is the httpd's shared 500: never destroyed here */
    unsigned status;

    void (*cancel_cb)(struct cm_httpd_req *, void *);
    void *cancel_arg;

    struct cm_httpd_req *prev, *next; /* l->reqs */
    struct cm_httpd_req *qnext;       /* l->resume_head */

    /* MHD does not notice a client leaving while its connection is suspended, so a pending
     * request watches the socket itself for the peer's FIN or an error (EPOLLRDHUP only:
     * pipelined bytes do not wake it). Stopped before the connection is resumed, so libuv
     * never watches a descriptor MHD may close. */
    uv_poll_t watch;

    char peer[INET6_ADDRSTRLEN];
    char method[16];
    char path[128]; /* for debug logs: printable ASCII, shortened */
};

struct listener {
    struct cm_httpd *h;
    const char *name; /* the listen string as given (borrowed from h->names) */
    struct MHD_Daemon *d;
    bool handles_open;                /* poll and timer initialised and not yet closed */
    uv_poll_t poll;                   /* readability of MHD's epoll descriptor */
    uv_timer_t timer;                 /* MHD_get_timeout, and the kick after resumes */
    struct cm_httpd_req *reqs;        /* every request MHD still holds */
    struct cm_httpd_req *resume_head; /* requests to resume from the next timer callback */
    unsigned max_conn; /* MHD's limit: max_live plus one spare slot (see conn_started) */
    /* Every connection MHD holds, oldest accepted first, and the rules that keep one client
     * from holding them all (see "Connection guard" below). */
    struct hconn *conns, *conns_tail;
    unsigned live;       /* connections not evicted */
    unsigned max_live;   /* opts->max_connections */
    unsigned per_client; /* live connections one client address may hold */
    uint64_t head_ms;    /* deadline for a request head */
    bool tls;
    bool starting;
    char start_msg[256]; /* MHD's last message while starting, for the error text */
};

struct cm_httpd {
    uv_loop_t *loop;
    cm_httpd_handler handler;
    void *arg;
    struct listener *ls;
    size_t nls;
    char **names;
    unsigned handles; /* uv handles initialised and not yet through their close callback */
    unsigned running; /* MHD_run calls under way (handlers run inside them) */
    bool close_deferred;
    bool closing;
    bool mtls;
    size_t max_request_bytes;
    struct cm_httpd_counters *counters; /* opts->counters, or own_counters */
    struct cm_httpd_counters own_counters;
    char *cert_pem, *key_pem, *ca_pem;
    size_t key_len;
    struct MHD_Response *resp_500; /* shared, for when building a response fails */
};

static void on_timer(uv_timer_t *t);

/* ---- Connection guard ----
 *
 * MHD's idle timeout restarts on every byte, so a client that sends a header byte a second,
 * or many clients that connect and say nothing, would hold every connection slot for as long
 * as they like, and /healthz and /metrics would go unanswered. Three rules bound that:
 * - a request head (request line and headers) must be complete within head_ms of the accept
 *   (or of the end of the previous response on a kept-alive connection);
 * - one client address (an IPv4 address, an IPv6 /64) holds at most per_client connections;
 * - when every slot is taken, a new connection replaces the oldest one still waiting for its
 *   head; at the per-address limit, that address's oldest one.
 * A health check or scrape sends its head at once, so it stays in while attackers churn.
 * Only connections waiting for a head are ever cut: requests being answered, and pending ones
 * (/probe), are not. A connection is cut by shutting its socket down: MHD then reads EOF and
 * closes it itself, so the descriptor is never closed behind MHD's back. */
struct hconn {
    struct listener *l;
    struct MHD_Connection *c;
    struct hconn *prev, *next; /* l->conns */
    uint64_t head_since;       /* loop time (ms) when the wait for a request head began */
    bool in_head;              /* waiting for a request head */
    bool served;               /* a request was answered on it (kept alive since) */
    bool evicted;              /* shut down by the guard; MHD has not closed it yet */
    int fd;
    unsigned char key[16]; /* client address: IPv4 (4 bytes) or the IPv6 /64 (8 bytes) */
    unsigned char keylen;
};

static void addr_key(const struct sockaddr *sa, unsigned char key[16], unsigned char *keylen)
{
    *keylen = 0;
    if (!sa)
        return;
    if (sa->sa_family == AF_INET) {
        memcpy(key, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        *keylen = 4;
    } else if (sa->sa_family == AF_INET6) {
        /* One host usually has a whole /64: counting full addresses would let it open as
         * many connections as it likes. */
        memcpy(key, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 8);
        *keylen = 8;
    }
}

static bool same_key(const struct hconn *hc, const unsigned char *key, unsigned char keylen)
{
    return hc->keylen == keylen && !memcmp(hc->key, key, keylen);
}

/* Cuts a connection that is waiting for its head. On its first request (nothing answered
 * yet) a plain-HTTP client is told why with a 408; a kept-alive connection is closed
 * quietly, as an idle one would be. */
static void conn_cut(struct hconn *hc, uint64_t *counter, const char *why)
{
#define BODY_408 "request head not received in time\n"
    static const char r408[] = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                               "Content-Type: text/plain; charset=utf-8\r\n"
                               "Cache-Control: no-store\r\nContent-Length: 34\r\n\r\n" BODY_408;
    _Static_assert(sizeof(BODY_408) - 1 == 34, "Content-Length of the 408");
    char peer[INET6_ADDRSTRLEN] = "";

    if (hc->evicted)
        return;
    hc->evicted = true;
    hc->l->live--;
    (*counter)++;
    if (hc->fd < 0)
        return;
    if (!hc->l->tls && !hc->served)
        (void)!send(hc->fd, r408, sizeof(r408) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    shutdown(hc->fd, SHUT_RDWR);
    if (cm_log_threshold >= CM_LOG_DEBUG) {
        if (hc->keylen == 4)
            inet_ntop(AF_INET, hc->key, peer, sizeof(peer));
        else if (hc->keylen == 8) {
            unsigned char a6[16] = {0};
            memcpy(a6, hc->key, 8);
            inet_ntop(AF_INET6, a6, peer, sizeof(peer));
        }
        cm_log_debug(SUB, "listen=%s peer=%s%s connection closed: %s", hc->l->name,
                     peer[0] ? peer : "unknown", hc->keylen == 8 ? "/64" : "", why);
    }
}

/* The connection waiting longest for its head (of one address when key is set), or NULL. */
static struct hconn *oldest_in_head(struct listener *l, const struct hconn *except,
                                    const unsigned char *key, unsigned char keylen)
{
    struct hconn *best = NULL;

    for (struct hconn *hc = l->conns; hc; hc = hc->next)
        if (hc != except && hc->in_head && !hc->evicted && (!key || same_key(hc, key, keylen)) &&
            (!best || hc->head_since < best->head_since))
            best = hc;
    return best;
}

/* MHD asks before it takes a connection. At the per-address limit the address's oldest
 * connection still waiting for its head makes room; without one, the new one is refused. */
static enum MHD_Result conn_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    struct listener *l = cls;
    unsigned char key[16], keylen;
    unsigned n = 0;
    struct hconn *victim;

    (void)addrlen;
    addr_key(addr, key, &keylen);
    if (!keylen)
        return MHD_YES;
    for (struct hconn *hc = l->conns; hc; hc = hc->next)
        n += !hc->evicted && same_key(hc, key, keylen);
    if (n < l->per_client)
        return MHD_YES;
    if (!(victim = oldest_in_head(l, NULL, key, keylen))) {
        l->h->counters->refused_per_client++;
        cm_log_debug(SUB,
                     "listen=%s a client address at its limit of %u connections, all "
                     "busy: refused",
                     l->name, l->per_client);
        return MHD_NO;
    }
    conn_cut(victim, &l->h->counters->evicted_per_client,
             "replaced by a newer connection from the same address");
    return MHD_YES;
}

static void conn_started(struct listener *l, struct MHD_Connection *c, void **ctx)
{
    const union MHD_ConnectionInfo *ci;
    struct hconn *hc = calloc(1, sizeof(*hc)), *victim;

    *ctx = hc;
    if (!hc) {
        /* Not tracked: the guard cannot cut it, but MHD's idle timeout still applies. */
        return;
    }
    hc->l = l;
    hc->c = c;
    hc->in_head = true;
    hc->head_since = uv_now(l->h->loop);
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    hc->fd = ci ? ci->connect_fd : -1;
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    addr_key(ci ? ci->client_addr : NULL, hc->key, &hc->keylen);
    hc->prev = l->conns_tail;
    if (l->conns_tail)
        l->conns_tail->next = hc;
    else
        l->conns = hc;
    l->conns_tail = hc;
    l->live++;
    /* MHD's limit leaves one slot spare, so that a newcomer is seen at all when every slot is
     * taken: it replaces the oldest connection still waiting for its head. When every
     * connection is busy answering, it stays, MHD is at its limit, and further clients wait
     * in the listen backlog. */
    if (l->live > l->max_live && (victim = oldest_in_head(l, hc, NULL, 0)))
        conn_cut(victim, &l->h->counters->evicted_full,
                 "every connection slot taken: replaced by a newer connection");
}

static void conn_closed(struct listener *l, struct hconn *hc)
{
    if (!hc)
        return;
    if (!hc->evicted)
        l->live--;
    if (hc->prev)
        hc->prev->next = hc->next;
    else
        l->conns = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    else
        l->conns_tail = hc->prev;
    free(hc);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **ctx,
                          enum MHD_ConnectionNotificationCode code)
{
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        conn_started(cls, c, ctx);
    else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        conn_closed(cls, *ctx);
        *ctx = NULL;
    }
}

static struct hconn *hconn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        c ? MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : NULL;

    return ci ? ci->socket_context : NULL;
}

/* Cuts every connection whose head is overdue. Returns the loop time of the next deadline,
 * or UINT64_MAX. */
static uint64_t head_sweep(struct listener *l)
{
    uint64_t now = uv_now(l->h->loop), next = UINT64_MAX;

    for (struct hconn *hc = l->conns; hc; hc = hc->next) {
        if (!hc->in_head || hc->evicted)
            continue;
        if (now - hc->head_since >= l->head_ms)
            conn_cut(hc, &l->h->counters->evicted_head_timeout,
                     hc->served ? "idle past the request head deadline"
                                : "request head not complete within the deadline");
        else if (hc->head_since + l->head_ms < next)
            next = hc->head_since + l->head_ms;
    }
    return next;
}

/* ---- Requests ---- */

static void req_unref(struct cm_httpd_req *r)
{
    if (--r->refs > 0)
        return;
    if (r->resp && !r->resp_shared)
        MHD_destroy_response(r->resp);
    free(r);
}

static void user_release(struct cm_httpd_req *r)
{
    if (r->user_ref) {
        r->user_ref = false;
        req_unref(r);
    }
}

static void on_watch_closed(uv_handle_t *hd)
{
    req_unref(hd->data);
}

static void watch_stop(struct cm_httpd_req *r)
{
    if (r->watching) {
        r->watching = false;
        uv_close((uv_handle_t *)&r->watch, on_watch_closed);
    }
}

static void enqueue_resume(struct cm_httpd_req *r)
{
    struct listener *l = r->l;
    struct cm_httpd_req **p;

    if (!l || r->queued)
        return;
    for (p = &l->resume_head; *p; p = &(*p)->qnext)
        ;
    *p = r;
    r->qnext = NULL;
    r->queued = true;
    /* MHD_resume_connection is called from the timer, never from inside an MHD callback
     * (a handler may answer another request that is pending). */
    if (l->handles_open)
        uv_timer_start(&l->timer, on_timer, 0, 0);
}

static void dequeue_resume(struct cm_httpd_req *r)
{
    struct cm_httpd_req **p;

    if (!r->queued || !r->l)
        return;
    for (p = &r->l->resume_head; *p; p = &(*p)->qnext) {
        if (*p == r) {
            *p = r->qnext;
            break;
        }
    }
    r->qnext = NULL;
    r->queued = false;
}

/* A pending request is abandoned: the client left, or the listener is closing. */
static void req_abandon(struct cm_httpd_req *r)
{
    void (*cb)(struct cm_httpd_req *, void *) = r->cancel_cb;

    r->state = RS_GONE;
    watch_stop(r);
    if (cb && r->user_ref) {
        r->cancel_cb = NULL;
        cb(r, r->cancel_arg);
        user_release(r);
    }
    /* Without a cancel callback the user reference stays: the handler does not know the
     * client left and will answer; cm_httpd_respond then drops the answer and frees. */
}

static void on_watch(uv_poll_t *p, int status, int events)
{
    struct cm_httpd_req *r = p->data;

    if (r->state != RS_PENDING)
        return;
    cm_log_debug(SUB, "listen=%s peer=%s client left before the response%s%s",
                 r->l ? r->l->name : "-", r->peer, status < 0 ? ": " : "",
                 status < 0 ? uv_strerror(status) : "");
    req_abandon(r);
    /* Resumed without a response, the access handler refuses it and MHD closes it. */
    enqueue_resume(r);
}

static void watch_start(struct cm_httpd_req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    int rc;

    if (!ci || ci->connect_fd < 0)
        return;
    rc = uv_poll_init_socket(r->l->h->loop, &r->watch, ci->connect_fd);
    if (rc < 0) {
        cm_log_debug(SUB, "listen=%s peer=%s cannot watch the pending connection: %s", r->l->name,
                     r->peer, uv_strerror(rc));
        return;
    }
    r->watch.data = r;
    r->refs++;
    r->watching = true;
    rc = uv_poll_start(&r->watch, UV_DISCONNECT, on_watch);
    if (rc < 0) {
        cm_log_debug(SUB, "listen=%s peer=%s cannot watch the pending connection: %s", r->l->name,
                     r->peer, uv_strerror(rc));
        watch_stop(r);
    }
}

/* Copies s for a log line: printable ASCII only, at most 120 bytes. */
static const char *log_safe(const char *s, char *buf, size_t len)
{
    size_t i = 0;

    for (; s && *s && i + 4 < len && i < 120; s++)
        buf[i++] = (*s > 0x20 && *s < 0x7f && *s != '"') ? *s : '?';
    if (s && *s)
        buf[i++] = '.', buf[i++] = '.', buf[i++] = '.';
    buf[i] = '\0';
    return buf;
}

static enum MHD_Result req_send(struct cm_httpd_req *r)
{
    enum MHD_Result ret = MHD_queue_response(r->conn, r->status, r->resp);

    if (!r->resp_shared)
        MHD_destroy_response(r->resp);
    r->resp = NULL;
    r->state = RS_DONE;
    cm_log_debug(SUB, "listen=%s peer=%s method=%s path=%s status=%u%s", r->l->name, r->peer,
                 r->method, r->path, r->status, ret == MHD_YES ? "" : " queue=failed");
    return ret;
}

static bool has_ctl(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* Builds r's response. On failure r gets the shared 500 and the error is returned. */
struct stream {
    cm_httpd_reader read;
    void (*done)(void *arg);
    void *arg;
};

static ssize_t on_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *st = cls;
    ssize_t n;

    (void)pos;
    n = st->read(st->arg, buf, max);
    /* MHD takes 0 for "nothing yet, ask again": the reader's 0 is the end. */
    return n > 0 ? n : n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void on_stream_free(void *cls)
{
    struct stream *st = cls;

    if (st->done)
        st->done(st->arg);
    free(st);
}

static int req_finish_build(struct cm_httpd_req *r, unsigned status, const char *ctype,
                            struct MHD_Response *resp, int rc);

static int req_build(struct cm_httpd_req *r, unsigned status, const char *ctype, const char *body,
                     size_t len, int take)
{
    struct MHD_Response *resp = NULL;
    int rc = 0;

    if (status < 200 || status > 599 || has_ctl(ctype) || (!body && len)) {
        rc = -EINVAL;
    } else if (len == 0) {
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else {
        resp = MHD_create_response_from_buffer(
            len, (void *)body, take ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
        if (resp)
            take = 0; /* MHD owns the body now */
    }
    if (take)
        free((void *)body);
    return req_finish_build(r, status, ctype, resp, rc);
}

static int req_build_stream(struct cm_httpd_req *r, unsigned status, const char *ctype,
                            cm_httpd_reader read, void (*done)(void *), void *arg)
{
    struct MHD_Response *resp = NULL;
    struct stream *st = NULL;
    int rc = 0;

    if (status < 200 || status > 599 || has_ctl(ctype) || !read)
        rc = -EINVAL;
    else if (!(st = malloc(sizeof(*st))))
        rc = -ENOMEM;
    if (st) {
        *st = (struct stream){read, done, arg};
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, on_stream_read, st,
                                                 on_stream_free);
        if (!resp) {
            free(st);
            rc = -ENOMEM;
        }
    }
    if (!resp && done)
        done(arg); /* on_stream_free will not run */
    return req_finish_build(r, status, ctype, resp, rc);
}

static int req_finish_build(struct cm_httpd_req *r, unsigned status, const char *ctype,
                            struct MHD_Response *resp, int rc)
{
    if (!rc && !resp)
        rc = -ENOMEM;
    if (resp &&
        ((ctype && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) == MHD_NO) ||
         MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") == MHD_NO)) {
        MHD_destroy_response(resp);
        resp = NULL;
        rc = -ENOMEM;
    }
    for (size_t i = 0; resp && r->headers && r->headers[i] && r->headers[i + 1]; i += 2)
        if (has_ctl(r->headers[i]) || has_ctl(r->headers[i + 1]) ||
            MHD_add_response_header(resp, r->headers[i], r->headers[i + 1]) == MHD_NO) {
            MHD_destroy_response(resp);
            resp = NULL;
            rc = -EINVAL;
        }
    r->headers = NULL;
    if (rc) {
        cm_log_warn(SUB, "listen=%s peer=%s cannot build the response (status=%u): %s; sending 500",
                    r->l ? r->l->name : "-", r->peer, status, cm_strerror(rc));
        r->resp = r->l ? r->l->h->resp_500 : NULL;
        r->resp_shared = true;
        r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        return rc;
    }
    r->resp = resp;
    r->resp_shared = false;
    r->status = status;
    return 0;
}

/* Answers at once with a short text, closing the connection afterwards (an unread body
 * must not be taken for the next request). */
static enum MHD_Result reject(struct cm_httpd_req *r, unsigned status, const char *text)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret;

    r->state = RS_DONE;
    if (!resp)
        return MHD_NO;
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8") ==
            MHD_NO ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close") == MHD_NO ||
        (status == MHD_HTTP_METHOD_NOT_ALLOWED &&
         MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") == MHD_NO)) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    cm_log_debug(SUB, "listen=%s peer=%s method=%s status=%u (rejected)", r->l->name, r->peer,
                 r->method, status);
    return ret;
}

/* NULL when the connection presented a client certificate that verifies against the
 * client CA (MHD loaded it as the credentials' trust list), else why not. */
static const char *client_cert_problem(struct MHD_Connection *c, char *buf, size_t len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t s = ci ? (gnutls_session_t)ci->tls_session : NULL;
    gnutls_typed_vdata_st purpose = {.type = GNUTLS_DT_KEY_PURPOSE_OID,
                                     .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT};
    unsigned n = 0, status = 0;
    gnutls_datum_t out;
    int rc;

    if (!s)
        return "no TLS session";
    if (gnutls_certificate_type_get2(s, GNUTLS_CTYPE_PEERS) != GNUTLS_CRT_X509 ||
        !gnutls_certificate_get_peers(s, &n) || n == 0)
        return "no client certificate";
    rc = gnutls_certificate_verify_peers(s, &purpose, 1, &status);
    if (rc < 0) {
        snprintf(buf, len, "verification failed: %s", gnutls_strerror(rc));
        return buf;
    }
    if (status == 0)
        return NULL;
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) == 0) {
        snprintf(buf, len, "%s", (const char *)out.data);
        gnutls_free(out.data);
    } else {
        snprintf(buf, len, "not trusted (status 0x%x)", status);
    }
    return buf;
}

static bool has_body(struct MHD_Connection *c)
{
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING))
        return true;
    if (!cl)
        return false;
    while (*cl == '0')
        cl++;
    return *cl != '\0';
}

static void format_peer(struct MHD_Connection *c, char *buf, size_t len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;

    buf[0] = '\0';
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
                  (socklen_t)len);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf,
                  (socklen_t)len);
    if (!buf[0])
        snprintf(buf, len, "unknown");
}

/* First access-handler call: the request line and headers are complete. Requests that will
 * not reach the handler are answered here, before any body is read. */
static enum MHD_Result req_begin(struct listener *l, struct MHD_Connection *c, const char *method,
                                 void **con_cls)
{
    struct cm_httpd *h = l->h;
    struct cm_httpd_req *r = calloc(1, sizeof(*r));
    const union MHD_ConnectionInfo *ci;
    const char *why;
    char buf[256];

    if (!r)
        return MHD_NO;
    r->l = l;
    r->conn = c;
    r->refs = 1;
    r->state = RS_NEW;
    r->next = l->reqs;
    if (l->reqs)
        l->reqs->prev = r;
    l->reqs = r;
    *con_cls = r;
    format_peer(c, r->peer, sizeof(r->peer));
    log_safe(method, r->method, sizeof(r->method));
    struct hconn *hc = hconn_of(c);
    if (hc)
        hc->in_head = false;

    if (h->mtls && (why = client_cert_problem(c, buf, sizeof(buf)))) {
        cm_log_info(SUB, "listen=%s peer=%s client certificate rejected: %s", l->name, r->peer,
                    why);
        return reject(r, MHD_HTTP_FORBIDDEN, "client certificate required\n");
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reject(r, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD are supported\n");
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (ci && ci->header_size > h->max_request_bytes)
        return reject(r, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE, "request header too large\n");
    if (has_body(c))
        return reject(r, MHD_HTTP_CONTENT_TOO_LARGE, "a request body is not accepted\n");
    return MHD_YES;
}

/* Last access-handler call (no body): hands the request to the handler. */
static enum MHD_Result req_dispatch(struct cm_httpd_req *r, const char *url)
{
    struct cm_httpd *h = r->l->h;

    log_safe(url, r->path, sizeof(r->path));
    r->state = RS_HANDLER;
    r->refs++;
    r->user_ref = true;
    h->handler(r, url, h->arg);
    if (r->resp)
        return req_send(r);
    r->state = RS_PENDING;
    MHD_suspend_connection(r->conn);
    r->suspended = true;
    watch_start(r);
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct cm_httpd_req *r = *con_cls;

    if (!r)
        return req_begin(cls, c, method, con_cls);
    if (*upload_data_size) {
        /* Bodies are refused in req_begin; discard anything that still arrives. */
        *upload_data_size = 0;
        return MHD_YES;
    }
    switch (r->state) {
    case RS_NEW:
        return req_dispatch(r, url);
    case RS_READY:
        return req_send(r);
    case RS_GONE:
        return MHD_NO;
    default:
        return MHD_YES;
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct listener *l = cls;
    struct cm_httpd_req *r = *con_cls;

    struct hconn *hc = hconn_of(c);

    if (hc) {
        /* A kept-alive connection waits for its next head under the same deadline. */
        hc->in_head = true;
        hc->served = true;
        hc->head_since = uv_now(l->h->loop);
    }
    if (!r)
        return;
    *con_cls = NULL;
    if (r->state == RS_PENDING) /* not expected: MHD keeps suspended connections */
        req_abandon(r);
    dequeue_resume(r);
    if (r->prev)
        r->prev->next = r->next;
    else
        l->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        cm_log_debug(SUB, "listen=%s peer=%s request ended early (code %d)", l->name, r->peer,
                     (int)toe);
    r->l = NULL;
    r->conn = NULL;
    req_unref(r);
}

/* ---- Public request API ---- */

const char *cm_httpd_query(struct cm_httpd_req *req, const char *name)
{
    if (!req || !req->conn || !name)
        return NULL;
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

struct query_each {
    int (*cb)(void *arg, const char *name, const char *value);
    void *arg;
    int rc;
};

static enum MHD_Result on_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    struct query_each *qe = cls;

    (void)kind;
    qe->rc = qe->cb(qe->arg, key, value ? value : "");
    return qe->rc ? MHD_NO : MHD_YES;
}

int cm_httpd_query_each(struct cm_httpd_req *req,
                        int (*cb)(void *arg, const char *name, const char *value), void *arg)
{
    struct query_each qe = {cb, arg, 0};

    if (!req || !req->conn)
        return 0;
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, on_query_arg, &qe);
    return qe.rc;
}

void cm_httpd_set_headers(struct cm_httpd_req *req, const char *const *headers)
{
    if (req)
        req->headers = headers;
}

const char *cm_httpd_peer(struct cm_httpd_req *req)
{
    return req ? req->peer : "";
}

void cm_httpd_on_cancel(struct cm_httpd_req *req, void (*cb)(struct cm_httpd_req *, void *),
                        void *arg)
{
    if (!req)
        return;
    req->cancel_cb = cb;
    req->cancel_arg = arg;
}

/* An answer handed to cm_httpd_respond (a body) or cm_httpd_respond_stream (a reader): both go
 * through one state machine, answer_deliver. */
struct answer {
    bool stream;
    const char *body; /* !stream */
    size_t len;
    int take;             /* body is ours to free */
    cm_httpd_reader read; /* stream */
    void (*done)(void *arg);
    void *arg;
};

static int answer_build(struct cm_httpd_req *req, unsigned status, const char *content_type,
                        const struct answer *a)
{
    return a->stream ? req_build_stream(req, status, content_type, a->read, a->done, a->arg)
                     : req_build(req, status, content_type, a->body, a->len, a->take);
}

/* Releases what an answer that is not sent holds. */
static void answer_drop(const struct answer *a)
{
    if (a->stream && a->done)
        a->done(a->arg);
    else if (!a->stream && a->take)
        free((void *)a->body);
}

static int answer_deliver(struct cm_httpd_req *req, unsigned status, const char *content_type,
                          const struct answer *a)
{
    int rc;

    if (!req) {
        answer_drop(a);
        return -EINVAL;
    }
    switch (req->state) {
    case RS_HANDLER:
        if (req->resp)
            break; /* answered twice */
        rc = answer_build(req, status, content_type, a);
        user_release(req);
        return rc;
    case RS_PENDING:
        rc = answer_build(req, status, content_type, a);
        req->state = RS_READY;
        watch_stop(req);
        enqueue_resume(req);
        user_release(req);
        return rc;
    case RS_GONE:
        /* The client left and no cancel callback was set: drop the answer. */
        answer_drop(a);
        user_release(req);
        return 0;
    default:
        break;
    }
    answer_drop(a);
    return -EINVAL;
}

int cm_httpd_respond(struct cm_httpd_req *req, unsigned status, const char *content_type,
                     const char *body, size_t len, int take)
{
    return answer_deliver(req, status, content_type,
                          &(struct answer){.body = body, .len = len, .take = take});
}

int cm_httpd_respond_stream(struct cm_httpd_req *req, unsigned status, const char *content_type,
                            cm_httpd_reader read, void (*done)(void *arg), void *arg)
{
    return answer_deliver(req, status, content_type,
                          &(struct answer){.stream = true, .read = read, .done = done, .arg = arg});
}

/* ---- Listeners on the loop ---- */

static void rearm(struct listener *l)
{
    MHD_UNSIGNED_LONG_LONG t;

    if (!l->d || !l->handles_open)
        return;
    uint64_t next = head_sweep(l), now = uv_now(l->h->loop);
    uint64_t due = next == UINT64_MAX ? UINT64_MAX : next > now ? next - now : 0;

    if (l->resume_head)
        due = 0;
    else if (MHD_get_timeout(l->d, &t) == MHD_YES && (uint64_t)t < due)
        due = (uint64_t)t;
    if (due == UINT64_MAX)
        uv_timer_stop(&l->timer);
    else
        uv_timer_start(&l->timer, on_timer, due > UINT32_MAX ? UINT32_MAX : due, 0);
}

static unsigned connections(struct listener *l)
{
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);

    return di ? di->num_connections : 0;
}

static void run_daemon(struct listener *l)
{
    struct cm_httpd *h = l->h;
    bool at_limit;

    if (!l->d)
        return;
    h->running++;
    at_limit = connections(l) >= l->max_conn;
    MHD_run(l->d);
    /* At its connection limit MHD takes the listening socket out of its epoll set, and puts
     * it back only at the start of the next MHD_run: when this run closed connections,
     * nothing else would wake us to accept the ones waiting in the backlog. */
    if (at_limit && connections(l) < l->max_conn)
        MHD_run(l->d);
    h->running--;
    if (h->close_deferred && h->running == 0) {
        h->close_deferred = false;
        cm_httpd_close(h);
        return;
    }
    rearm(l);
}

static void on_timer(uv_timer_t *t)
{
    struct listener *l = t->data;
    struct cm_httpd_req *r;

    while ((r = l->resume_head)) {
        l->resume_head = r->qnext;
        r->qnext = NULL;
        r->queued = false;
        if (r->suspended) {
            r->suspended = false;
            MHD_resume_connection(r->conn);
        }
    }
    run_daemon(l);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    run_daemon(p->data);
}

/* MHD's messages: kept while starting for the error text, otherwise debug only. */
__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct listener *l = cls;
    char msg[256];
    size_t n;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    if (l->starting)
        snprintf(l->start_msg, sizeof(l->start_msg), "%s", msg);
    cm_log_debug(SUB, "listen=%s mhd=\"%s\"", l->name, msg);
}

static void h_free(struct cm_httpd *h)
{
    for (size_t i = 0; i < h->nls; i++)
        free(h->names[i]);
    free(h->names);
    free(h->ls);
    free(h->cert_pem);
    free(h->ca_pem);
    if (h->key_pem) {
        /* The private key is a secret: do not leave it in freed memory. */
        explicit_bzero(h->key_pem, h->key_len);
        free(h->key_pem);
    }
    free(h);
}

static void on_handle_closed(uv_handle_t *hd)
{
    struct listener *l = hd->data;
    struct cm_httpd *h = l->h;

    if (--h->handles == 0 && h->closing)
        h_free(h);
}

void cm_httpd_close(struct cm_httpd *h)
{
    bool found;

    if (!h || h->closing)
        return;
    if (h->running) {
        /* Called from a handler (inside MHD_run): MHD_stop_daemon must wait until it returns. */
        h->close_deferred = true;
        return;
    }
    h->closing = true;
    /* Cancel callbacks first, on every listener: one may answer another pending request. */
    do {
        found = false;
        for (size_t i = 0; i < h->nls && !found; i++) {
            for (struct cm_httpd_req *r = h->ls[i].reqs; r; r = r->next) {
                if (r->state == RS_PENDING) {
                    req_abandon(r);
                    found = true;
                    break;
                }
            }
        }
    } while (found);
    for (size_t i = 0; i < h->nls; i++) {
        struct listener *l = &h->ls[i];

        while (l->resume_head)
            dequeue_resume(l->resume_head);
        /* MHD_stop_daemon requires every connection resumed first; it then closes them,
         * and its completion callbacks release the requests. */
        for (struct cm_httpd_req *r = l->reqs; r; r = r->next) {
            if (r->suspended) {
                r->suspended = false;
                MHD_resume_connection(r->conn);
            }
        }
        /* Stop watching the epoll descriptor before MHD closes it. */
        if (l->handles_open) {
            l->handles_open = false;
            uv_close((uv_handle_t *)&l->poll, on_handle_closed);
            uv_close((uv_handle_t *)&l->timer, on_handle_closed);
        }
        if (l->d) {
            MHD_stop_daemon(l->d);
            l->d = NULL;
            cm_log_info(SUB, "listen=%s stopped", l->name);
        }
    }
    if (h->resp_500) {
        MHD_destroy_response(h->resp_500);
        h->resp_500 = NULL;
    }
    if (h->handles == 0)
        h_free(h);
}

/* ---- Starting ---- */

static int read_pem(const char *what, const char *path, char **out, size_t *len, char *err,
                    size_t errlen)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (this runs on the loop when a
     * reload restarts the listener); the regular-file check below then refuses it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    int rc = 0;

    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s %s: cannot open: %s", what, path, strerror(-rc));
        return rc;
    }
    if (fstat(fd, &st) < 0) {
        rc = -errno;
    } else if (!S_ISREG(st.st_mode) || st.st_size > MAX_PEM_BYTES) {
        rc = S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
    } else if (!(buf = malloc((size_t)st.st_size + 1))) {
        rc = -ENOMEM;
    } else {
        while (got < (size_t)st.st_size) {
            ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                rc = -errno;
                break;
            }
            if (n == 0)
                break;
            got += (size_t)n;
        }
        buf[got] = '\0';
    }
    close(fd);
    if (!rc && memchr(buf, '\0', got))
        rc = CM_ETLS; /* DER or binary data: MHD takes NUL-terminated PEM */
    if (rc) {
        if (buf) {
            explicit_bzero(buf, got);
            free(buf);
        }
        snprintf(err, errlen, "%s %s: cannot read: %s", what, path,
                 rc == -EINVAL   ? "not a regular file"
                 : rc == CM_ETLS ? "not a PEM file"
                                 : strerror(-rc));
        return rc;
    }
    *out = buf;
    *len = got;
    return 0;
}

/* Checks that pem holds at least one PEM certificate. */
static int check_certs(const char *what, const char *path, const char *pem, size_t len, char *err,
                       size_t errlen)
{
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)len};
    gnutls_x509_crt_t *crts = NULL;
    unsigned n = 0;
    int rc = gnutls_x509_crt_list_import2(&crts, &n, &d, GNUTLS_X509_FMT_PEM, 0);

    for (unsigned i = 0; rc >= 0 && i < n; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    if (rc < 0 || n == 0) {
        snprintf(err, errlen, "%s %s: no usable PEM certificate: %s", what, path,
                 rc < 0 ? gnutls_strerror(rc) : "none found");
        return CM_ETLS;
    }
    return 0;
}

/* Reads and checks the TLS files, so that every error names its file (MHD would only fail). */
static int load_tls(struct cm_httpd *h, const struct cm_httpd_opts *o, char *err, size_t errlen)
{
    gnutls_datum_t cd, kd;
    gnutls_x509_privkey_t key = NULL;
    gnutls_certificate_credentials_t cred = NULL;
    size_t clen, calen;
    int rc;

    if ((rc = read_pem("tls_cert", o->tls_cert, &h->cert_pem, &clen, err, errlen)) ||
        (rc = read_pem("tls_key", o->tls_key, &h->key_pem, &h->key_len, err, errlen)) ||
        (rc = check_certs("tls_cert", o->tls_cert, h->cert_pem, clen, err, errlen)))
        return rc;
    cd = (gnutls_datum_t){(unsigned char *)h->cert_pem, (unsigned)clen};
    kd = (gnutls_datum_t){(unsigned char *)h->key_pem, (unsigned)h->key_len};
    if ((rc = gnutls_x509_privkey_init(&key)) < 0 ||
        (rc = gnutls_x509_privkey_import2(key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        snprintf(err, errlen, "tls_key %s: no usable PEM private key: %s", o->tls_key,
                 gnutls_strerror(rc));
        gnutls_x509_privkey_deinit(key);
        return CM_ETLS;
    }
    gnutls_x509_privkey_deinit(key);
    if ((rc = gnutls_certificate_allocate_credentials(&cred)) < 0 ||
        (rc = gnutls_certificate_set_x509_key_mem(cred, &cd, &kd, GNUTLS_X509_FMT_PEM)) < 0) {
        snprintf(err, errlen, "tls_key %s does not fit tls_cert %s: %s", o->tls_key, o->tls_cert,
                 gnutls_strerror(rc));
        if (cred)
            gnutls_certificate_free_credentials(cred);
        return rc == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : CM_ETLS;
    }
    gnutls_certificate_free_credentials(cred);
    if (o->client_ca) {
        if ((rc = read_pem("client_ca", o->client_ca, &h->ca_pem, &calen, err, errlen)) ||
            (rc = check_certs("client_ca", o->client_ca, h->ca_pem, calen, err, errlen)))
            return rc;
        h->mtls = true;
    }
    return 0;
}

/* Parses "IPv4:port", "[IPv6]:port" or "host:port" into an address. A host name is resolved
 * here with getaddrinfo, which blocks: acceptable at start only. The first address wins. */
static int resolve_listen(const char *s, struct sockaddr_storage *ss, socklen_t *sslen, char *err,
                          size_t errlen)
{
    char host[256];
    const char *port, *colon;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    size_t hlen;
    bool bracket = s[0] == '[';
    char *end;
    long pv;
    int rc;

    if (bracket) {
        colon = strchr(s, ']');
        if (!colon || colon[1] != ':') {
            snprintf(err, errlen, "listen %s: an IPv6 address is written [ADDRESS]:PORT", s);
            return -EINVAL;
        }
        hlen = (size_t)(colon - s - 1);
        s++;
        port = colon + 2;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s))) {
            snprintf(err, errlen, "listen %s: expected ADDRESS:PORT or [IPv6]:PORT", s);
            return -EINVAL;
        }
        hlen = (size_t)(colon - s);
        port = colon + 1;
    }
    if (hlen == 0 || hlen >= sizeof(host)) {
        snprintf(err, errlen, "listen %s: missing or overlong address", bracket ? s - 1 : s);
        return -EINVAL;
    }
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    errno = 0;
    pv = (*port >= '0' && *port <= '9') ? strtol(port, &end, 10) : 0;
    if (pv < 1 || pv > 65535 || errno || *end) {
        snprintf(err, errlen, "listen %s: the port must be a number from 1 to 65535",
                 bracket ? s - 1 : s);
        return -EINVAL;
    }
    if (bracket) {
        hints.ai_family = AF_INET6;
        hints.ai_flags |= AI_NUMERICHOST;
    }
    rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0 || !ai) {
        snprintf(err, errlen, "listen %s: cannot resolve %s: %s", bracket ? s - 1 : s, host,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        if (ai)
            freeaddrinfo(ai);
        return rc == EAI_MEMORY ? -ENOMEM : rc == EAI_AGAIN ? -EAGAIN : -EINVAL;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *sslen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* Opens the listening socket. We bind it rather than MHD (MHD_OPTION_SOCK_ADDR) so that a
 * failure comes back as its errno (MHD_start_daemon only returns NULL). */
static int open_socket(const char *name, const struct sockaddr_storage *ss, socklen_t sslen,
                       int *out, char *err, size_t errlen)
{
    int one = 1;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const char *step = "cannot create a socket";
    int rc;

    if (fd < 0)
        goto fail;
    step = "cannot set socket options";
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        goto fail;
    /* An IPv6 listener takes IPv6 only, so that [::]:P and 0.0.0.0:P can both be listed. */
    if (ss->ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
        goto fail;
    step = "cannot bind";
    if (bind(fd, (const struct sockaddr *)ss, sslen) < 0)
        goto fail;
    step = "cannot listen";
    if (listen(fd, SOMAXCONN) < 0)
        goto fail;
    *out = fd;
    return 0;
fail:
    rc = -errno;
    if (fd >= 0)
        close(fd);
    snprintf(err, errlen, "listen %s: %s: %s", name, step, strerror(-rc));
    return rc;
}

static int start_listener(struct cm_httpd *h, struct listener *l, const struct cm_httpd_opts *o,
                          char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    struct MHD_OptionItem ops[16];
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    unsigned max_conn = o->max_connections ? o->max_connections : 64;
    unsigned per_client = o->max_per_client ? o->max_per_client : (max_conn + 3) / 4;
    unsigned idle = o->idle_timeout_s ? o->idle_timeout_s : 30;
    /* MHD's per-connection pool holds the read buffer (request line and headers, parsed in
     * place), the header index and the response header. Twice the request bound plus room
     * for the response keeps every request we accept comfortably inside it; MHD itself
     * answers 431 (or 414) to anything that does not fit. */
    size_t pool = 2 * h->max_request_bytes + 8192;
    size_t n = 0;
    int fd = -1, rc;

    if ((rc = resolve_listen(l->name, &ss, &sslen, err, errlen)) ||
        (rc = open_socket(l->name, &ss, sslen, &fd, err, errlen)))
        return rc;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    l->max_live = max_conn;
    l->max_conn = max_conn + 1; /* the spare slot of the connection guard */
    l->per_client = per_client < max_conn ? per_client : max_conn;
    l->head_ms = o->head_timeout_ms ? o->head_timeout_ms : 10000;
    l->tls = h->cert_pem != NULL;
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, fd, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, (intptr_t)l->max_conn, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, l};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)idle, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)pool, NULL};
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, l};
    if (h->cert_pem) {
        flags |= MHD_USE_TLS;
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->cert_pem};
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->key_pem};
        ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, TLS_PRIORITIES};
        /* MHD loads the trust list into its credentials and asks every client for a
         * certificate (GNUTLS_CERT_REQUEST, not REQUIRE): req_begin enforces it. */
        if (h->ca_pem)
            ops[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, h->ca_pem};
    }
    ops[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

    l->starting = true;
    l->start_msg[0] = '\0';
    l->d = MHD_start_daemon(flags, 0, conn_policy, l, on_access, l, MHD_OPTION_EXTERNAL_LOGGER,
                            on_mhd_log, l, MHD_OPTION_ARRAY, ops, MHD_OPTION_END);
    l->starting = false;
    if (!l->d) {
        /* MHD closes the listening socket on its own failure paths once it has taken it
         * (observed with 0.9.75); closing it here could close a descriptor reused since. */
        snprintf(err, errlen, "listen %s: cannot start the HTTP server%s%s", l->name,
                 l->start_msg[0] ? ": " : "", l->start_msg);
        return h->cert_pem ? CM_ETLS : -EIO;
    }
    return 0;
}

static int init_handles(struct cm_httpd *h, struct listener *l, char *err, size_t errlen)
{
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_EPOLL_FD);
    int rc;

    if (!di) {
        snprintf(err, errlen, "listen %s: MHD gives no epoll descriptor", l->name);
        return -EIO;
    }
    if ((rc = uv_poll_init(h->loop, &l->poll, di->epoll_fd)) < 0) {
        snprintf(err, errlen, "listen %s: cannot watch MHD's epoll descriptor: %s", l->name,
                 uv_strerror(rc));
        return rc;
    }
    uv_timer_init(h->loop, &l->timer);
    l->poll.data = l;
    l->timer.data = l;
    l->handles_open = true;
    h->handles += 2;
    if ((rc = uv_poll_start(&l->poll, UV_READABLE, on_poll)) < 0) {
        snprintf(err, errlen, "listen %s: cannot watch MHD's epoll descriptor: %s", l->name,
                 uv_strerror(rc));
        return rc;
    }
    rearm(l);
    return 0;
}

int cm_httpd_start(uv_loop_t *loop, const struct cm_httpd_opts *opts, cm_httpd_handler handler,
                   void *arg, struct cm_httpd **out, char *err, size_t errlen)
{
    struct cm_httpd *h;
    char dummy[1];
    int rc = 0;

    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    if (out)
        *out = NULL;
    if (!loop || !opts || !handler || !out || !opts->listen || opts->listen_count == 0) {
        snprintf(err, errlen, "httpd: no listen address or handler");
        return -EINVAL;
    }
    if (!opts->tls_cert != !opts->tls_key) {
        snprintf(err, errlen, "tls_cert and tls_key go together");
        return -EINVAL;
    }
    if (opts->client_ca && !opts->tls_cert) {
        snprintf(err, errlen, "client_ca needs tls_cert and tls_key");
        return -EINVAL;
    }
    if (!(h = calloc(1, sizeof(*h))) || !(h->ls = calloc(opts->listen_count, sizeof(*h->ls))) ||
        !(h->names = calloc(opts->listen_count, sizeof(*h->names)))) {
        if (h)
            free(h->ls);
        free(h);
        snprintf(err, errlen, "httpd: out of memory");
        return -ENOMEM;
    }
    h->loop = loop;
    h->handler = handler;
    h->arg = arg;
    h->max_request_bytes = opts->max_request_bytes ? opts->max_request_bytes : 16 * 1024;
    h->counters = opts->counters ? opts->counters : &h->own_counters;
    h->nls = opts->listen_count;
    for (size_t i = 0; i < h->nls; i++) {
        h->ls[i].h = h;
        if (!opts->listen[i] || !(h->names[i] = strdup(opts->listen[i]))) {
            rc = opts->listen[i] ? -ENOMEM : -EINVAL;
            snprintf(err, errlen, "httpd: %s",
                     opts->listen[i] ? "out of memory" : "empty listen address");
            goto fail;
        }
        h->ls[i].name = h->names[i];
    }
    if (opts->tls_cert && (rc = load_tls(h, opts, err, errlen)))
        goto fail;
    h->resp_500 = MHD_create_response_from_buffer(
        sizeof("internal error\n") - 1, (void *)"internal error\n", MHD_RESPMEM_PERSISTENT);
    if (!h->resp_500 || MHD_add_response_header(h->resp_500, MHD_HTTP_HEADER_CONTENT_TYPE,
                                                "text/plain; charset=utf-8") == MHD_NO) {
        rc = -ENOMEM;
        snprintf(err, errlen, "httpd: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < h->nls; i++)
        if ((rc = start_listener(h, &h->ls[i], opts, err, errlen)))
            goto fail;
    for (size_t i = 0; i < h->nls; i++)
        if ((rc = init_handles(h, &h->ls[i], err, errlen)))
            goto fail;
    for (size_t i = 0; i < h->nls; i++)
        cm_log_info(SUB, "listen=%s tls=%s client_auth=%s listening", h->ls[i].name,
                    h->cert_pem ? "on" : "off", h->mtls ? "on" : "off");
    *out = h;
    return 0;
fail:
    /* Closes whatever started; the handles (if any) free h from their close callbacks. */
    cm_httpd_close(h);
    return rc;
}
