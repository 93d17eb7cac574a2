#include "certmon/http/httpc.h"
#include "certmon/base/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SUB "httpc"

#define HTTP_TIMEOUT_MS 30000
#define MAIL_TIMEOUT_MS 60000

/* A transfer is in exactly one list of its client at a time: queued (started, not yet handed
 * to libcurl), active (in the multi handle), or dead (cancelled: its callback has run, but it
 * is still in the multi handle until the next kick removes it). While its callback runs after
 * a normal completion it is in none. */
enum xfer_state { XS_QUEUED, XS_ACTIVE, XS_DONE };

struct xlist {
    struct cm_httpc_xfer *head, *tail;
    size_t n;
};

struct cm_httpc_xfer {
    struct cm_httpc *h;
    CURL *easy;
    cm_httpc_cb cb;
    void *arg;
    enum xfer_state state;
    struct cm_httpc_xfer *prev, *next;

    struct curl_slist *list; /* HTTP headers, or SMTP recipients: must outlive the transfer */
    char *message;           /* SMTP: our copy of the message, read by on_read */
    size_t msg_len, msg_off;

    char *body; /* response body, NUL-terminated, at most body_max bytes kept */
    size_t body_len, body_cap;
    size_t body_max;  /* bytes kept at most */
    bool body_strict; /* a longer body fails the transfer */
    bool body_over;   /* ... and it was longer */
    int64_t retry_after_s;
    char etag[256], last_modified[64]; /* response headers, "" when absent */

    uint64_t start_ns;
    char url[256]; /* redacted, for logs */
    char errbuf[CURL_ERROR_SIZE];
};

/* One socket libcurl asked us to watch. Freed in its poll's close callback. */
struct sock {
    uv_poll_t poll;
    struct cm_httpc *h;
    curl_socket_t fd;
    struct sock *prev, *next; /* h->socks: polls not yet closing */
};

struct cm_httpc {
    uv_loop_t *loop;
    CURLM *multi;     /* NULL after teardown */
    uv_timer_t timer; /* libcurl's timeout (CURLMOPT_TIMERFUNCTION) */
    uv_idle_t kick;   /* runs queued work from the loop once: adds and removals */
    struct xlist queued, active, dead;
    struct sock *socks;
    unsigned handles; /* uv handles initialised and not yet through their close callback */
    unsigned busy;    /* our frames on the stack that may run user callbacks */
    bool closing;     /* cm_httpc_close was called */
    bool torn_down;   /* the multi handle is gone and our handles are closing */
};

/* ---- Lists ---- */

static void xlist_append(struct xlist *l, struct cm_httpc_xfer *x)
{
    x->next = NULL;
    x->prev = l->tail;
    if (l->tail)
        l->tail->next = x;
    else
        l->head = x;
    l->tail = x;
    l->n++;
}

static void xlist_remove(struct xlist *l, struct cm_httpc_xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        l->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    else
        l->tail = x->prev;
    x->prev = x->next = NULL;
    l->n--;
}

/* ---- Handles and teardown ---- */

static void handle_closed(struct cm_httpc *h)
{
    if (--h->handles == 0 && h->torn_down)
        free(h);
}

static void on_sock_closed(uv_handle_t *hd)
{
    struct sock *s = hd->data;
    struct cm_httpc *h = s->h;

    free(s);
    handle_closed(h);
}

static void on_handle_closed(uv_handle_t *hd)
{
    handle_closed(hd->data);
}

/* Stops watching a socket: uv_close stops the poll at once (the descriptor leaves epoll
 * before libcurl closes it, so a reused descriptor number can get a fresh poll). */
static void sock_close(struct sock *s)
{
    struct cm_httpc *h = s->h;

    if (s->prev)
        s->prev->next = s->next;
    else
        h->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void xfer_free(struct cm_httpc_xfer *x)
{
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->list);
    free(x->message);
    free(x->body);
    free(x);
}

/* Called with no transfer left but the dead: they leave the multi handle, the multi handle is
 * cleaned up while the loop is alive (its socket callback may still ask us to stop polls),
 * then every remaining handle is closed; the last close callback frees h. */
static void teardown(struct cm_httpc *h)
{
    h->torn_down = true;
    while (h->dead.head) {
        struct cm_httpc_xfer *x = h->dead.head;
        xlist_remove(&h->dead, x);
        curl_multi_remove_handle(h->multi, x->easy);
        xfer_free(x);
    }
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
    while (h->socks)
        sock_close(h->socks);
    uv_close((uv_handle_t *)&h->timer, on_handle_closed);
    uv_close((uv_handle_t *)&h->kick, on_handle_closed);
}

/* Leaves a frame that may have run user callbacks. A cm_httpc_close made from one of them
 * defers the teardown to here, so that nothing is freed under a running callback or under a
 * loop of ours. */
static void busy_exit(struct cm_httpc *h)
{
    if (--h->busy == 0 && h->closing && !h->torn_down)
        teardown(h);
}

static void on_kick(uv_idle_t *t);

/* An idle handle, not a 0 ms timer: libuv runs a timer re-armed at 0 from a timer callback
 * again in the same pass, while an idle callback runs once per loop iteration. */
static void kick(struct cm_httpc *h)
{
    if (!h->closing && !uv_is_active((uv_handle_t *)&h->kick))
        uv_idle_start(&h->kick, on_kick);
}

/* ---- Completion ---- */

/* Runs the user's callback once. why, when set, replaces curl's error text (the transfer did
 * not finish inside libcurl: cancelled, or never added); status and body are then not
 * reported. */
static void deliver(struct cm_httpc_xfer *x, CURLcode code, const char *why)
{
    struct cm_httpc_result r = {
        .curl_code = (int)code, .retry_after_s = -1, .retry_after_hdr_s = -1, .body = "",
        .etag = "", .last_modified = ""};
    long status = 0;
    char over[64];

    if (!why) {
        if (curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
            r.status = status;
        if (x->body) {
            r.body = x->body;
            r.body_len = x->body_len;
        }
        if (r.status == 429 || r.status == 503)
            r.retry_after_s = x->retry_after_s;
        r.retry_after_hdr_s = x->retry_after_s;
        r.etag = x->etag;
        r.last_modified = x->last_modified;
        r.xfer = x;
        if (x->body_over) {
            snprintf(over, sizeof(over), "response body larger than %zu bytes", x->body_max);
            why = over;
        }
    }
    if (code != CURLE_OK)
        r.error = why ? why : x->errbuf[0] ? x->errbuf : curl_easy_strerror(code);
    else
        r.error = "";
    r.elapsed_s = (double)(uv_hrtime() - x->start_ns) / 1e9;
    x->state = XS_DONE;
    cm_log_debug(SUB, "url=%s curl=%d status=%ld elapsed_ms=%.0f error=\"%s\"", x->url, r.curl_code,
                 r.status, r.elapsed_s * 1000, r.error);
    x->cb(&r, x->arg);
}

char *cm_httpc_take_body(const struct cm_httpc_result *r, size_t *len)
{
    struct cm_httpc_xfer *x = r ? r->xfer : NULL;
    char *b;

    *len = 0;
    if (!x || !x->body)
        return NULL;
    b = x->body;
    *len = x->body_len;
    x->body = NULL;
    x->body_len = x->body_cap = 0;
    /* The buffer grew by doubling: give the slack back before it is kept. */
    char *shrunk = realloc(b, *len + 1);
    return shrunk ? shrunk : b;
}

/* Reads every finished transfer. Must follow each curl_multi_socket_action: libcurl reports
 * completions only through this queue. */
static void drain(struct cm_httpc *h)
{
    CURLMsg *m;
    int left;

    while (!h->closing && (m = curl_multi_info_read(h->multi, &left))) {
        struct cm_httpc_xfer *x = NULL;
        CURL *e = m->easy_handle;
        CURLcode code = m->data.result;
        char *priv = NULL;

        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        x = (struct cm_httpc_xfer *)(void *)priv;
        /* m is invalid from here on. Removing between two info_read calls is allowed. */
        curl_multi_remove_handle(h->multi, e);
        if (x->state == XS_DONE) {
            xlist_remove(&h->dead, x);
            xfer_free(x);
            continue;
        }
        xlist_remove(&h->active, x);
        deliver(x, code, NULL);
        xfer_free(x);
    }
}

static void on_kick(uv_idle_t *t)
{
    struct cm_httpc *h = t->data;
    size_t n = h->queued.n; /* what a callback below queues waits for the next iteration */

    uv_idle_stop(t);
    h->busy++;
    while (h->dead.head) {
        struct cm_httpc_xfer *x = h->dead.head;
        xlist_remove(&h->dead, x);
        curl_multi_remove_handle(h->multi, x->easy);
        xfer_free(x);
    }
    while (!h->closing && h->queued.head && n-- > 0) {
        struct cm_httpc_xfer *x = h->queued.head;
        CURLMcode mc;

        xlist_remove(&h->queued, x);
        /* add_handle calls our timer callback (timeout 0), which only arms h->timer. */
        mc = curl_multi_add_handle(h->multi, x->easy);
        if (mc != CURLM_OK) {
            deliver(x, mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT,
                    curl_multi_strerror(mc));
            xfer_free(x);
            continue;
        }
        x->state = XS_ACTIVE;
        xlist_append(&h->active, x);
    }
    busy_exit(h);
}

/* ---- libcurl's socket and timer callbacks: they touch only libuv ---- */

static void on_timeout(uv_timer_t *t)
{
    struct cm_httpc *h = t->data;
    int running;
    CURLMcode mc;

    h->busy++;
    mc = curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    if (mc != CURLM_OK)
        cm_log_warn(SUB, "curl_multi_socket_action(timeout) failed: %s", curl_multi_strerror(mc));
    drain(h);
    busy_exit(h);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct sock *s = p->data;
    struct cm_httpc *h = s->h;
    int flags = 0, running;
    CURLMcode mc;

    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    h->busy++;
    mc = curl_multi_socket_action(h->multi, s->fd, flags, &running);
    if (mc != CURLM_OK)
        cm_log_warn(SUB, "curl_multi_socket_action failed: %s", curl_multi_strerror(mc));
    drain(h);
    busy_exit(h);
}

/* CURLMOPT_SOCKETFUNCTION. Returns 0 even when a poll cannot be set up: -1 would mark the
 * whole multi handle dead (every transfer, present and future, fails); the one transfer that
 * cannot be watched ends at its own timeout instead. */
static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct cm_httpc *h = userp;
    struct sock *s = socketp;
    int events = 0, rc;

    if (what == CURL_POLL_REMOVE) {
        if (s)
            sock_close(s);
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s) {
            cm_log_warn(SUB, "fd=%d cannot be watched: out of memory", (int)fd);
            return 0;
        }
        if ((rc = uv_poll_init_socket(h->loop, &s->poll, fd)) < 0) {
            cm_log_warn(SUB, "fd=%d cannot be watched: %s", (int)fd, uv_strerror(rc));
            free(s);
            return 0;
        }
        s->h = h;
        s->fd = fd;
        s->poll.data = s;
        s->next = h->socks;
        if (h->socks)
            h->socks->prev = s;
        h->socks = s;
        h->handles++;
        /* curl_multi_assign is meant to be called from here (curl's multi-uv.c does). */
        if (curl_multi_assign(h->multi, fd, s) != CURLM_OK) {
            sock_close(s);
            return 0;
        }
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    if ((rc = uv_poll_start(&s->poll, events, on_poll)) < 0)
        cm_log_warn(SUB, "fd=%d cannot be watched: %s", (int)fd, uv_strerror(rc));
    return 0;
}

/* CURLMOPT_TIMERFUNCTION. A timeout of 0 becomes 1 ms: libcurl wants socket_action "as soon
 * as possible" but never from inside this callback, and a 0 ms uv_timer re-armed from a timer
 * callback would run again in the same pass of uv__run_timers. */
static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
    struct cm_httpc *h = userp;

    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, on_timeout, timeout_ms == 0 ? 1 : (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- Per-transfer callbacks (run inside libcurl; they touch only the transfer) ---- */

/* Keeps the first CM_HTTPC_BODY_MAX bytes and discards the rest without failing the
 * transfer: the status matters more than a huge body. The buffer frees itself when it
 * cannot grow (the transfer then fails with CURLE_WRITE_ERROR). */
static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct cm_httpc_xfer *x = ud;
    size_t len = size * nmemb, take = x->body_max - x->body_len;

    if (x->body_strict && len > take) {
        x->body_over = true;
        return 0; /* CURLE_WRITE_ERROR */
    }
    if (take > len)
        take = len;
    if (take == 0)
        return len;
    if (x->body_len + take + 1 > x->body_cap) {
        size_t cap = x->body_cap ? x->body_cap : 1024;
        char *nb;

        while (cap < x->body_len + take + 1)
            cap *= 2;
        if (cap > x->body_max + 1)
            cap = x->body_max + 1;
        if (!(nb = realloc(x->body, cap))) {
            free(x->body);
            x->body = NULL;
            x->body_len = x->body_cap = 0;
            return 0;
        }
        x->body = nb;
        x->body_cap = cap;
    }
    memcpy(x->body + x->body_len, data, take);
    x->body_len += take;
    x->body[x->body_len] = '\0';
    return len;
}

/* Retry-After (RFC 9110 section 10.2.3): delta-seconds or an HTTP-date. Returns seconds from
 * now (a past date gives 0), or -1 when the value is neither. */
static int64_t parse_retry_after(const char *v, time_t now)
{
    size_t n = strlen(v);

    if (n > 0 && strspn(v, "0123456789") == n) {
        /* More than 9 digits is over 30 years: call it unusable rather than overflow. */
        return n > 9 ? -1 : strtoll(v, NULL, 10);
    }
    time_t t = curl_getdate(v, NULL);
    if (t == (time_t)-1)
        return -1;
    return t > now ? (int64_t)(t - now) : 0;
}

/* Copies a header's value (trimmed) into buf when the header line data is named name
 * ("etag:"); values that do not fit, or hold control bytes, are dropped. */
static void header_value(const char *data, size_t len, const char *name, char *buf, size_t cap)
{
    size_t nl = strlen(name);
    const char *p, *end;

    if (len <= nl || strncasecmp(data, name, nl) != 0)
        return;
    p = data + nl;
    end = data + len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if ((size_t)(end - p) >= cap)
        return;
    for (const char *q = p; q < end; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f)
            return;
    memcpy(buf, p, (size_t)(end - p));
    buf[end - p] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    static const char name[] = "retry-after:";
    struct cm_httpc_xfer *x = ud;
    size_t len = size * nmemb, n;
    char v[128];
    const char *p, *end;

    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        x->retry_after_s = -1; /* a new response (after a 100 Continue, say) */
        x->etag[0] = x->last_modified[0] = '\0';
        return len;
    }
    header_value(data, len, "etag:", x->etag, sizeof(x->etag));
    header_value(data, len, "last-modified:", x->last_modified, sizeof(x->last_modified));
    if (len <= sizeof(name) - 1 || strncasecmp(data, name, sizeof(name) - 1) != 0)
        return len;
    p = data + sizeof(name) - 1;
    end = data + len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    n = (size_t)(end - p);
    if (n == 0 || n >= sizeof(v))
        return len;
    memcpy(v, p, n);
    v[n] = '\0';
    x->retry_after_s = parse_retry_after(v, time(NULL));
    return len;
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *ud)
{
    struct cm_httpc_xfer *x = ud;
    size_t room = size * nmemb, left = x->msg_len - x->msg_off;

    if (room > left)
        room = left;
    memcpy(buf, x->message + x->msg_off, room);
    x->msg_off += room;
    return room;
}

/* ---- Starting transfers ---- */

static int map_setopt(CURLcode c)
{
    switch (c) {
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_NOT_BUILT_IN:
    case CURLE_UNKNOWN_OPTION:
        return -ENOTSUP;
    default:
        return -EINVAL;
    }
}

#define SETOPT(x, opt, val)                                                                        \
    do {                                                                                           \
        CURLcode c_ = curl_easy_setopt((x)->easy, (opt), (val));                                   \
        if (c_ != CURLE_OK) {                                                                      \
            rc = map_setopt(c_);                                                                   \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

static bool has_scheme(const char *url, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    return (strncasecmp(url, a, la) == 0 && strncmp(url + la, "://", 3) == 0) ||
           (strncasecmp(url, b, lb) == 0 && strncmp(url + lb, "://", 3) == 0);
}

/* Strings that libcurl writes into a request line, a header or an SMTP command: CR and LF
 * would let a value start a line of its own. */
static bool one_line(const char *s)
{
    return !s || !strpbrk(s, "\r\n");
}

static long clamp_ms(uint64_t ms, long dflt)
{
    if (ms == 0)
        return dflt;
    return ms > LONG_MAX ? LONG_MAX : (long)ms;
}

/* A new transfer with the options every kind shares. protocols is the comma list for
 * CURLOPT_PROTOCOLS_STR. */
static int xfer_new(struct cm_httpc *h, const char *url, const char *protocols, long timeout_ms,
                    const char *ca_file, cm_httpc_cb cb, void *arg, struct cm_httpc_xfer **out)
{
    struct cm_httpc_xfer *x = calloc(1, sizeof(*x));
    int rc;

    *out = NULL;
    if (!x)
        return -ENOMEM;
    if (!(x->easy = curl_easy_init())) {
        free(x);
        return -ENOMEM;
    }
    x->h = h;
    x->cb = cb;
    x->arg = arg;
    x->retry_after_s = -1;
    x->body_max = CM_HTTPC_BODY_MAX;
    cm_httpc_redact(url, x->url, sizeof(x->url));
    SETOPT(x, CURLOPT_URL, url);
    SETOPT(x, CURLOPT_PRIVATE, (void *)x);
    SETOPT(x, CURLOPT_ERRORBUFFER, x->errbuf);
    SETOPT(x, CURLOPT_NOSIGNAL, 1L);
    SETOPT(x, CURLOPT_TIMEOUT_MS, timeout_ms);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(x, CURLOPT_PROTOCOLS_STR, protocols);
    SETOPT(x, CURLOPT_REDIR_PROTOCOLS_STR, protocols);
#else
    {
        long p = strncmp(protocols, "http", 4) == 0   ? CURLPROTO_HTTP | CURLPROTO_HTTPS
                 : strncmp(protocols, "file", 4) == 0 ? CURLPROTO_FILE
                                                      : CURLPROTO_SMTP | CURLPROTO_SMTPS;
        SETOPT(x, CURLOPT_PROTOCOLS, p);
        SETOPT(x, CURLOPT_REDIR_PROTOCOLS, p);
    }
#endif
    SETOPT(x, CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(x, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(x, CURLOPT_WRITEDATA, (void *)x);
    if (ca_file)
        SETOPT(x, CURLOPT_CAINFO, ca_file);
    *out = x;
    return 0;
fail:
    xfer_free(x);
    return rc;
}

static void xfer_enqueue(struct cm_httpc *h, struct cm_httpc_xfer *x, struct cm_httpc_xfer **out)
{
    x->state = XS_QUEUED;
    x->start_ns = uv_hrtime();
    xlist_append(&h->queued, x);
    kick(h);
    if (out)
        *out = x;
}

int cm_httpc_request(struct cm_httpc *h, const struct cm_httpc_req *req, cm_httpc_cb cb, void *arg,
                     struct cm_httpc_xfer **out)
{
    struct cm_httpc_xfer *x;
    bool has_ct = false;
    int rc;

    if (out)
        *out = NULL;
    bool file = req && req->url && req->allow_file && has_scheme(req->url, "file", "file");

    if (!h || !req || !cb || !req->url || (!has_scheme(req->url, "http", "https") && !file) ||
        !one_line(req->url) || !one_line(req->content_type) || (req->body_len && !req->body))
        return -EINVAL;
    for (const char *const *hd = req->headers; hd && *hd; hd++) {
        if (!one_line(*hd))
            return -EINVAL;
        if (strncasecmp(*hd, "content-type:", 13) == 0)
            has_ct = true;
    }
    if (h->closing)
        return -ECANCELED;
    if ((rc = xfer_new(h, req->url, file ? "file" : "http,https",
                       clamp_ms(req->timeout_ms, HTTP_TIMEOUT_MS), req->ca_file, cb, arg, &x)))
        return rc;
    if (req->body_max) {
        x->body_max = req->body_max;
        x->body_strict = true;
    }
    SETOPT(x, CURLOPT_USERAGENT, "certmon/" CERTMON_VERSION);
    SETOPT(x, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(x, CURLOPT_HEADERDATA, (void *)x);
    for (const char *const *hd = req->headers; hd && *hd; hd++) {
        struct curl_slist *l = curl_slist_append(x->list, *hd);
        if (!l) {
            rc = -ENOMEM;
            goto fail;
        }
        x->list = l;
    }
    if (req->body) {
        char ct[256];
        const char *extra[2] = {"Expect:", ct};

        /* Without "Expect:" libcurl waits for a 100 Continue before large bodies: a round
         * trip that many webhook receivers never answer. */
        snprintf(ct, sizeof(ct), "Content-Type: %s",
                 req->content_type ? req->content_type : "application/json");
        for (size_t i = 0; i < (has_ct ? 1u : 2u); i++) {
            struct curl_slist *l = curl_slist_append(x->list, extra[i]);
            if (!l) {
                rc = -ENOMEM;
                goto fail;
            }
            x->list = l;
        }
        SETOPT(x, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SETOPT(x, CURLOPT_COPYPOSTFIELDS, req->body_len ? req->body : "");
    } else {
        SETOPT(x, CURLOPT_HTTPGET, 1L);
    }
    if (x->list)
        SETOPT(x, CURLOPT_HTTPHEADER, x->list);
    xfer_enqueue(h, x, out);
    return 0;
fail:
    xfer_free(x);
    return rc;
}

int cm_httpc_mail(struct cm_httpc *h, const struct cm_httpc_mail *m, cm_httpc_cb cb, void *arg,
                  struct cm_httpc_xfer **out)
{
    struct cm_httpc_xfer *x;
    int rc;

    if (out)
        *out = NULL;
    if (!h || !m || !cb || !m->url || !has_scheme(m->url, "smtp", "smtps") || !one_line(m->url) ||
        !m->from || !one_line(m->from) || !m->to || !m->to[0] || !m->message ||
        !one_line(m->username) || !one_line(m->password))
        return -EINVAL;
    for (const char *const *t = m->to; *t; t++)
        if (!one_line(*t))
            return -EINVAL;
    if (h->closing)
        return -ECANCELED;
    if ((rc = xfer_new(h, m->url, "smtp,smtps", clamp_ms(m->timeout_ms, MAIL_TIMEOUT_MS),
                       m->ca_file, cb, arg, &x)))
        return rc;
    for (const char *const *t = m->to; *t; t++) {
        struct curl_slist *l = curl_slist_append(x->list, *t);
        if (!l) {
            rc = -ENOMEM;
            goto fail;
        }
        x->list = l;
    }
    x->msg_len = strlen(m->message);
    if (!(x->message = malloc(x->msg_len + 1))) {
        rc = -ENOMEM;
        goto fail;
    }
    memcpy(x->message, m->message, x->msg_len + 1);
    SETOPT(x, CURLOPT_MAIL_FROM, m->from);
    SETOPT(x, CURLOPT_MAIL_RCPT, x->list);
    SETOPT(x, CURLOPT_UPLOAD, 1L);
    SETOPT(x, CURLOPT_READFUNCTION, on_read);
    SETOPT(x, CURLOPT_READDATA, (void *)x);
    SETOPT(x, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->msg_len);
    /* One connection per mail: libcurl 7.88 matches TLS settings only for implicit-TLS
     * schemes when it picks a cached connection, so a mail without ca_file would ride on a
     * STARTTLS connection verified under another notifier's ca_file. Mail is rare enough. */
    SETOPT(x, CURLOPT_FRESH_CONNECT, 1L);
    SETOPT(x, CURLOPT_FORBID_REUSE, 1L);
    if (m->starttls)
        SETOPT(x, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    /* libcurl keeps its own copies of these; they are never logged (x->url is redacted). */
    if (m->username)
        SETOPT(x, CURLOPT_USERNAME, m->username);
    if (m->password)
        SETOPT(x, CURLOPT_PASSWORD, m->password);
    xfer_enqueue(h, x, out);
    return 0;
fail:
    xfer_free(x);
    return rc;
}

/* ---- Cancel, close ---- */

/* The callback runs now. A transfer already in the multi handle leaves it from the next
 * kick, never from here: the caller may be anywhere, and libcurl must not be re-entered. */
static void cancel_xfer(struct cm_httpc *h, struct cm_httpc_xfer *x)
{
    if (x->state == XS_QUEUED) {
        xlist_remove(&h->queued, x);
        deliver(x, CURLE_ABORTED_BY_CALLBACK, "transfer cancelled");
        xfer_free(x);
        return;
    }
    xlist_remove(&h->active, x);
    xlist_append(&h->dead, x);
    deliver(x, CURLE_ABORTED_BY_CALLBACK, "transfer cancelled");
    kick(h);
}

void cm_httpc_cancel(struct cm_httpc_xfer *x)
{
    struct cm_httpc *h;

    if (!x || x->state == XS_DONE)
        return;
    h = x->h;
    h->busy++;
    cancel_xfer(h, x);
    busy_exit(h);
}

size_t cm_httpc_active(const struct cm_httpc *h)
{
    return h ? h->queued.n + h->active.n : 0;
}

void cm_httpc_close(struct cm_httpc *h)
{
    if (!h || h->closing)
        return;
    h->closing = true;
    h->busy++;
    /* Callbacks may cancel other transfers; take the head each time. */
    while (h->queued.head)
        cancel_xfer(h, h->queued.head);
    while (h->active.head)
        cancel_xfer(h, h->active.head);
    busy_exit(h);
}

int cm_httpc_new(uv_loop_t *loop, struct cm_httpc **out, char *err, size_t errlen)
{
    static bool global_done;
    const curl_version_info_data *vi;
    struct cm_httpc *h;

    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!err)
        errlen = 0;
    if (!loop) {
        snprintf(err, errlen, "no loop");
        return -EINVAL;
    }
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            snprintf(err, errlen, "libcurl cannot be initialised");
            return -ENOMEM;
        }
        global_done = true;
    }
    vi = curl_version_info(CURLVERSION_NOW);
    if (!(vi->features & CURL_VERSION_ASYNCHDNS)) {
        snprintf(err, errlen,
                 "libcurl %s resolves names synchronously (no AsynchDNS): it would block the loop",
                 vi->version);
        return -ENOTSUP;
    }
    if (!(h = calloc(1, sizeof(*h))) || !(h->multi = curl_multi_init())) {
        free(h);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    h->loop = loop;
    uv_timer_init(loop, &h->timer);
    uv_idle_init(loop, &h->kick);
    h->timer.data = h->kick.data = h;
    h->handles = 2;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, (void *)h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, (void *)h);
    *out = h;
    return 0;
}

/* ---- Redaction ---- */

struct outbuf {
    char *p;
    size_t len, used;
};

static void put(struct outbuf *o, const char *s, size_t n)
{
    size_t room = o->len - 1 - o->used;

    if (n > room)
        n = room;
    memcpy(o->p + o->used, s, n);
    o->used += n;
    o->p[o->used] = '\0';
}

static void puts0(struct outbuf *o, const char *s)
{
    put(o, s, strlen(s));
}

/* A path segment that looks like a secret: long, of token characters, with letters and
 * digits both (webhook tokens, API keys; ':' for Telegram's "bot123456:AAH..."). Words and
 * numeric ids stay readable. */
static bool token_like(const char *s, size_t n)
{
    bool alpha = false, digit = false;

    if (n < 20)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            alpha = true;
        else if (c >= '0' && c <= '9')
            digit = true;
        else if (!strchr("-_.~=+%:", c))
            return false;
    }
    return alpha && digit;
}

static bool scheme_ok(const char *s, size_t n)
{
    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || strchr("+-.", s[i])))
            return false;
    return true;
}

void cm_httpc_redact(const char *url, char *buf, size_t len)
{
    struct outbuf o = {buf, len, 0};
    const char *p = url, *sep, *at = NULL, *host, *hend;
    size_t alen, plen;
    bool slack;

    if (!buf || len == 0)
        return;
    buf[0] = '\0';
    if (!url)
        return;
    sep = strstr(url, "://");
    if (sep && scheme_ok(url, (size_t)(sep - url))) {
        put(&o, url, (size_t)(sep - url) + 3);
        p = sep + 3;
    }
    /* Authority: userinfo (up to the last '@') becomes ***. */
    alen = strcspn(p, "/?#");
    for (const char *q = p; q < p + alen; q++)
        if (*q == '@')
            at = q;
    host = p;
    if (at) {
        puts0(&o, "***@");
        host = at + 1;
    }
    put(&o, host, (size_t)(p + alen - host));
    hend = host[0] == '[' ? memchr(host, ']', (size_t)(p + alen - host)) : NULL;
    if (!hend)
        hend = host + strcspn(host, ":/?#");
    slack = (size_t)(hend - host) == 15 && strncasecmp(host, "hooks.slack.com", 15) == 0;
    p += alen;

    /* Path: Slack's webhook secret is everything after /services/; elsewhere token-like
     * segments go. */
    plen = strcspn(p, "?#");
    if (slack && plen >= 10 && strncmp(p, "/services/", 10) == 0) {
        puts0(&o, "/services/");
        if (plen > 10)
            puts0(&o, "***");
    } else {
        const char *q = p, *end = p + plen;
        while (q < end) {
            size_t n;
            if (*q == '/') {
                put(&o, "/", 1);
                q++;
                continue;
            }
            n = strcspn(q, "/?#");
            if ((size_t)(end - q) < n)
                n = (size_t)(end - q);
            if (token_like(q, n))
                puts0(&o, "***");
            else
                put(&o, q, n);
            q += n;
        }
    }
    p += plen;
    if (*p == '?')
        puts0(&o, "?***");
    else if (*p == '#')
        puts0(&o, "#***");
}
