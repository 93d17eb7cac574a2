#include "certmon/probe/resolve.h"

#include "certmon/base/error.h"

#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One watched c-ares socket. */
struct sock {
    struct sock *next;
    struct cm_resolver *r;
    uv_poll_t poll;
    ares_socket_t fd;
};

/* An address lookup (cb) or a raw query (qcb); both NULL once cancelled. */
struct cm_resolve_req {
    cm_resolve_cb cb;
    cm_resolve_query_cb qcb;
    void *arg;
    uint16_t port;
    struct cm_resolver *r;
    /* An answer that came inside a start call waits here for the next loop turn. */
    struct cm_resolve_req *next_ready;
    int status;
    char message[128];
    struct cm_addr_list *list;
    unsigned char *abuf; /* a held query answer (alen bytes), or NULL */
    size_t alen;
};

struct cm_resolver {
    uv_loop_t *loop;
    ares_channel channel;
    uv_timer_t timer; /* c-ares retransmissions and timeouts */
    uv_timer_t kick;  /* delivers answers that arrived synchronously */
    struct sock *socks;
    struct cm_resolve_req *ready;
    bool in_start;
    /* Freed when both timers and every socket poll have closed. */
    int open_handles;
    bool closing;
};

static void maybe_free(struct cm_resolver *r)
{
    if (r->closing && r->open_handles == 0)
        free(r);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct cm_resolver *r = h->data;

    r->open_handles--;
    maybe_free(r);
}

static void on_sock_closed(uv_handle_t *h)
{
    struct sock *s = h->data;
    struct cm_resolver *r = s->r;

    free(s);
    r->open_handles--;
    maybe_free(r);
}

static void arm_timer(struct cm_resolver *r);

static void on_sock_io(uv_poll_t *h, int status, int events)
{
    struct sock *s = h->data;
    struct cm_resolver *r = s->r;
    ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

    /* On a poll error let c-ares read: it sees the socket's error and fails over. */
    if (status < 0 || (events & UV_READABLE))
        rfd = s->fd;
    if (status == 0 && (events & UV_WRITABLE))
        wfd = s->fd;
    ares_process_fd(r->channel, rfd, wfd);
    arm_timer(r);
}

static void on_timer(uv_timer_t *t)
{
    struct cm_resolver *r = t->data;

    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    arm_timer(r);
}

/* c-ares keeps its own retransmission schedule; run it when it next needs attention. */
static void arm_timer(struct cm_resolver *r)
{
    struct timeval tv, *next;

    if (r->closing)
        return;
    next = ares_timeout(r->channel, NULL, &tv);
    if (!next) {
        uv_timer_stop(&r->timer);
        return;
    }
    uint64_t ms = (uint64_t)next->tv_sec * 1000 + (uint64_t)(next->tv_usec + 999) / 1000;
    uv_timer_start(&r->timer, on_timer, ms ? ms : 1, 0);
}

/* c-ares tells us which sockets to watch and for what. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct cm_resolver *r = data;
    struct sock **pp = &r->socks, *s;

    while (*pp && (*pp)->fd != fd)
        pp = &(*pp)->next;
    s = *pp;
    if (!readable && !writable) {
        if (s) {
            /* Stop watching before c-ares closes the fd; memory goes in the close cb. */
            *pp = s->next;
            uv_close((uv_handle_t *)&s->poll, on_sock_closed);
        }
        return;
    }
    if (!s) {
        if (!(s = calloc(1, sizeof(*s))))
            return; /* the query then times out; nothing better to do without memory */
        s->r = r;
        s->fd = fd;
        if (uv_poll_init_socket(r->loop, &s->poll, fd) < 0) {
            free(s);
            return;
        }
        s->poll.data = s;
        s->next = r->socks;
        r->socks = s;
        r->open_handles++;
    }
    uv_poll_start(&s->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0),
                  on_sock_io);
}

int cm_resolver_new(uv_loop_t *loop, struct cm_resolver **out, char *err, size_t errlen)
{
    static bool lib_ready;
    struct ares_options opts = {0};
    struct cm_resolver *r;
    int rc;

    *out = NULL;
    if (!lib_ready) {
        if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
            snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
            return UV_EAI_FAIL;
        }
        lib_ready = true;
    }
    if (!(r = calloc(1, sizeof(*r)))) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    r->loop = loop;
    opts.sock_state_cb = on_sock_state;
    opts.sock_state_cb_data = r;
    rc = ares_init_options(&r->channel, &opts, ARES_OPT_SOCK_STATE_CB);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "cannot initialise the resolver: %s", ares_strerror(rc));
        free(r);
        return rc == ARES_ENOMEM ? -ENOMEM : UV_EAI_FAIL;
    }
    /* CERTMON_DNS_SERVERS ("192.0.2.53,[2001:db8::53]:5353") replaces the servers of
     * /etc/resolv.conf: for probing through a particular resolver, and for tests. */
    const char *servers = getenv("CERTMON_DNS_SERVERS");
    if (servers && (rc = ares_set_servers_ports_csv(r->channel, servers)) != ARES_SUCCESS) {
        snprintf(err, errlen, "CERTMON_DNS_SERVERS=%s: %s", servers, ares_strerror(rc));
        ares_destroy(r->channel);
        free(r);
        return UV_EAI_FAIL;
    }
    uv_timer_init(loop, &r->timer);
    uv_timer_init(loop, &r->kick);
    r->timer.data = r->kick.data = r;
    r->open_handles = 2;
    *out = r;
    return 0;
}

uv_loop_t *cm_resolver_loop(const struct cm_resolver *r)
{
    return r->loop;
}

void cm_resolver_close(struct cm_resolver *r)
{
    if (!r || r->closing)
        return;
    /* ares_destroy runs every pending callback with ARES_EDESTRUCTION (they free their
     * requests without calling back) and reports each socket closed through on_sock_state,
     * which closes its poll handle. */
    ares_destroy(r->channel);
    r->closing = true;
    while (r->ready) {
        struct cm_resolve_req *req = r->ready;
        r->ready = req->next_ready;
        if (req->qcb)
            req->qcb(-ECANCELED, "resolver closed", NULL, 0, req->arg);
        free(req->list);
        free(req->abuf);
        free(req);
    }
    uv_close((uv_handle_t *)&r->timer, on_handle_closed);
    uv_close((uv_handle_t *)&r->kick, on_handle_closed);
    while (r->socks) {
        struct sock *s = r->socks;
        r->socks = s->next;
        uv_close((uv_handle_t *)&s->poll, on_sock_closed);
    }
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return !memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                       &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr));
    return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                   &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
}

/* The distinct IPv4/IPv6 addresses of ai in answer order, at most CM_RESOLVE_MAX_ADDRS of
 * them (the rest counted in dropped). Each candidate is compared with the kept ones only, so
 * the cost is bounded by CM_RESOLVE_MAX_ADDRS per answer record whatever the answer holds. */
static struct cm_addr_list *list_from_ares(const struct ares_addrinfo *ai, uint16_t port)
{
    struct cm_addr_list *l;
    size_t n = 0;

    for (const struct ares_addrinfo_node *a = ai->nodes; a && n < CM_RESOLVE_MAX_ADDRS;
         a = a->ai_next)
        if (a->ai_family == AF_INET || a->ai_family == AF_INET6)
            n++;
    if (n == 0 || !(l = calloc(1, sizeof(*l) + n * sizeof(l->addrs[0]))))
        return NULL;
    for (const struct ares_addrinfo_node *a = ai->nodes; a; a = a->ai_next) {
        struct sockaddr_storage sa = {0};
        bool seen = false;

        if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) || a->ai_addrlen > sizeof(sa))
            continue;
        memcpy(&sa, a->ai_addr, a->ai_addrlen);
        if (a->ai_family == AF_INET)
            ((struct sockaddr_in *)&sa)->sin_port = htons(port);
        else
            ((struct sockaddr_in6 *)&sa)->sin6_port = htons(port);
        for (size_t k = 0; k < l->count && !seen; k++)
            seen = same_addr(&l->addrs[k], &sa);
        if (seen)
            continue;
        if (l->count == n) {
            /* Full: count what is left out (a repeat among the rest counts once per
             * record: the number only says that the list was cut). */
            l->dropped++;
            continue;
        }
        l->addrs[l->count++] = sa;
    }
    return l;
}

static void deliver(struct cm_resolve_req *req)
{
    if (req->cb)
        req->cb(req->status, req->message, req->list, req->arg);
    else
        free(req->list);
    if (req->qcb)
        req->qcb(req->status, req->message, req->abuf, req->alen, req->arg);
    free(req->abuf);
    free(req);
}

static void on_kick(uv_timer_t *t)
{
    struct cm_resolver *r = t->data;

    while (r->ready) {
        struct cm_resolve_req *req = r->ready;
        r->ready = req->next_ready;
        deliver(req);
    }
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    struct cm_resolve_req *req = arg;
    struct cm_resolver *r = req->r;

    (void)timeouts;
    if (status == ARES_SUCCESS && ai) {
        if (!(req->list = list_from_ares(ai, req->port))) {
            req->status = UV_EAI_NONAME;
            snprintf(req->message, sizeof(req->message), "no IPv4 or IPv6 address");
        }
    } else {
        req->status = status == ARES_ENOTFOUND || status == ARES_ENODATA || status == ARES_ENONAME
                          ? UV_EAI_NONAME
                      : status == ARES_ENOMEM ? -ENOMEM
                      : status == ARES_ETIMEOUT || status == ARES_ESERVFAIL ||
                              status == ARES_ECONNREFUSED || status == ARES_EREFUSED
                          ? UV_EAI_AGAIN
                          : UV_EAI_FAIL;
        snprintf(req->message, sizeof(req->message), "%s", ares_strerror(status));
    }
    if (ai)
        ares_freeaddrinfo(ai);
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
        free(req->list);
        free(req);
        return;
    }
    if (r->in_start) {
        /* Answered from /etc/hosts inside cm_resolve_start: the contract says the callback
         * runs from a later loop callback, so hold the answer until the next turn. */
        req->next_ready = r->ready;
        r->ready = req;
        uv_timer_start(&r->kick, on_kick, 0, 0);
        return;
    }
    deliver(req);
}

int cm_resolve_start(struct cm_resolver *r, const char *host, uint16_t port, cm_resolve_cb cb,
                     void *arg, struct cm_resolve_req **out)
{
    struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct cm_resolve_req *req;

    if (out)
        *out = NULL;
    if (!(req = calloc(1, sizeof(*req))))
        return -ENOMEM;
    req->cb = cb;
    req->arg = arg;
    req->port = port;
    req->r = r;
    if (out)
        *out = req;
    r->in_start = true;
    ares_getaddrinfo(r->channel, host, NULL, &hints, on_addrinfo, req);
    r->in_start = false;
    arm_timer(r);
    return 0;
}

/* The project code for a failed c-ares query. */
static int query_status(int status)
{
    switch (status) {
    case ARES_ENOTFOUND:
        return CM_EDNS_NXDOMAIN;
    case ARES_ENODATA:
        return CM_EDNS_NODATA;
    case ARES_ESERVFAIL:
    case ARES_ECONNREFUSED:
        /* c-ares 1.18 fails over to the next server on SERVFAIL and REFUSED and, once none
         * is left, reports ECONNREFUSED, as it does for servers it cannot reach. */
        return CM_EDNS_SERVFAIL;
    case ARES_EREFUSED:
    case ARES_ENOTIMP:
        return CM_EDNS_REFUSED;
    case ARES_ETIMEOUT:
        return CM_EDNS_TIMEOUT;
    case ARES_EBADNAME:
        return CM_EBADARG;
    case ARES_ENOMEM:
        return -ENOMEM;
    case ARES_EDESTRUCTION:
    case ARES_ECANCELLED:
        return -ECANCELED;
    default:
        return CM_EDNS_BADANSWER;
    }
}

static void on_query(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct cm_resolve_req *req = arg;
    struct cm_resolver *r = req->r;

    (void)timeouts;
    req->status = status == ARES_SUCCESS ? 0 : query_status(status);
    if (status == ARES_SUCCESS && (!abuf || alen <= 0))
        req->status = CM_EDNS_BADANSWER;
    snprintf(req->message, sizeof(req->message), "%s",
             req->status == 0 ? ""
             : status == ARES_ECONNREFUSED
                 ? "no DNS server answered the query (SERVFAIL, REFUSED or unreachable)"
                 : ares_strerror(status));
    if (req->status == -ECANCELED) {
        /* The resolver is closing (ares_destroy): the contract still owes a callback. */
        if (req->qcb)
            req->qcb(req->status, "resolver closed", NULL, 0, req->arg);
        free(req);
        return;
    }
    if (r->in_start) {
        /* Failed inside cm_resolve_query (a name c-ares cannot encode, no memory): the
         * callback runs from a later loop callback, as the contract says. The answer is
         * copied, since c-ares frees abuf when this returns. */
        if (req->status == 0 && !(req->abuf = malloc((size_t)alen))) {
            req->status = -ENOMEM;
            snprintf(req->message, sizeof(req->message), "out of memory");
        } else if (req->status == 0) {
            memcpy(req->abuf, abuf, (size_t)alen);
            req->alen = (size_t)alen;
        }
        req->next_ready = r->ready;
        r->ready = req;
        uv_timer_start(&r->kick, on_kick, 0, 0);
        return;
    }
    if (req->qcb)
        req->qcb(req->status, req->message, req->status == 0 ? abuf : NULL,
                 req->status == 0 ? (size_t)alen : 0, req->arg);
    free(req);
}

int cm_resolve_query(struct cm_resolver *r, const char *name, int type, cm_resolve_query_cb cb,
                     void *arg, struct cm_resolve_req **out)
{
    struct cm_resolve_req *req;

    if (out)
        *out = NULL;
    if (r->closing)
        return -ECANCELED;
    if (!(req = calloc(1, sizeof(*req))))
        return -ENOMEM;
    req->qcb = cb;
    req->arg = arg;
    req->r = r;
    if (out)
        *out = req;
    r->in_start = true;
    /* ares_query, not ares_search: the configured name is the whole name, never completed
     * with the search domains of resolv.conf. */
    ares_query(r->channel, name, 1 /* C_IN */, type, on_query, req);
    r->in_start = false;
    arm_timer(r);
    return 0;
}

void cm_resolve_cancel(struct cm_resolve_req *req)
{
    if (req) {
        req->cb = NULL;
        req->qcb = NULL;
    }
}

struct cm_addr_list *cm_addr_list_literal(const char *host, uint16_t port)
{
    struct cm_addr_list *l = calloc(1, sizeof(*l) + sizeof(l->addrs[0]));
    struct sockaddr_in *v4;
    struct sockaddr_in6 *v6;

    if (!l)
        return NULL;
    v4 = (struct sockaddr_in *)&l->addrs[0];
    v6 = (struct sockaddr_in6 *)&l->addrs[0];
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
    } else {
        free(l);
        return NULL;
    }
    l->count = 1;
    return l;
}
