#include "certmon/probe/dnsdisc.h"

#include <ares.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certmon/base/error.h"
#include "certmon/base/text.h"
#include "certmon/probe/target.h"

#define TYPE_MX 15
#define TYPE_SRV 33
#define CLASS_IN 1
#define HEADER_LEN 12

struct cm_dnsdisc_req {
    uv_timer_t timer;             /* the deadline; the request is freed in its close callback */
    struct cm_resolve_req *query; /* pending query, or NULL */
    enum cm_dnsdisc_kind kind;
    cm_dnsdisc_cb cb; /* NULL once cancelled or delivered */
    void *arg;
};

const char *cm_dnsdisc_kind_name(enum cm_dnsdisc_kind kind)
{
    return kind == CM_DNSDISC_MX ? "MX" : "SRV";
}

void cm_dnsdisc_list_free(struct cm_dnsdisc_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        free(l->targets[i].host);
    free(l);
}

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The name at p (inside abuf), expanded, in *name (malloc'd), and the bytes it takes at p in
 * *used. False when it is malformed or runs past the message. */
static bool read_name(const unsigned char *p, const unsigned char *abuf, size_t alen, char **name,
                      size_t *used)
{
    long enclen;

    if (ares_expand_name(p, abuf, (int)alen, name, &enclen) != ARES_SUCCESS)
        return false;
    if (enclen <= 0 || (size_t)enclen > alen - (size_t)(p - abuf)) {
        ares_free_string(*name);
        return false;
    }
    *used = (size_t)enclen;
    return true;
}

/* Orders by host, port, then preference: the first of a run of equal endpoints is the one
 * to keep. */
static int cmp_endpoint(const void *a, const void *b)
{
    const struct cm_dnsdisc_target *x = a, *y = b;
    int c = strcmp(x->host, y->host);

    if (c)
        return c;
    if (x->port != y->port)
        return x->port < y->port ? -1 : 1;
    if (x->priority != y->priority)
        return x->priority < y->priority ? -1 : 1;
    return x->weight > y->weight ? -1 : x->weight < y->weight;
}

static int cmp_preference(const void *a, const void *b)
{
    const struct cm_dnsdisc_target *x = a, *y = b;

    if (x->priority != y->priority)
        return x->priority < y->priority ? -1 : 1;
    if (x->weight != y->weight)
        return x->weight > y->weight ? -1 : 1;
    return cmp_endpoint(a, b);
}

/* Sorts l's targets and drops repeated endpoints (keeping the most preferred record). */
static void dedup(struct cm_dnsdisc_list *l)
{
    size_t n = 0;

    if (l->count < 2)
        return;
    qsort(l->targets, l->count, sizeof(l->targets[0]), cmp_endpoint);
    for (size_t i = 0; i < l->count; i++) {
        if (n > 0 && !strcmp(l->targets[n - 1].host, l->targets[i].host) &&
            l->targets[n - 1].port == l->targets[i].port) {
            free(l->targets[i].host);
            continue;
        }
        l->targets[n++] = l->targets[i];
    }
    l->count = n;
    qsort(l->targets, l->count, sizeof(l->targets[0]), cmp_preference);
}

/* What one answer record holds, once read. */
struct rec {
    char *host; /* expanded, as c-ares gives it ("" for the root) */
    uint16_t port, priority, weight;
};

/* Reads the RDATA of a SRV or MX record (rdlen bytes at p). */
static bool read_rdata(enum cm_dnsdisc_kind kind, const unsigned char *p, size_t rdlen,
                       const unsigned char *abuf, size_t alen, struct rec *out)
{
    size_t fixed = kind == CM_DNSDISC_SRV ? 6 : 2, used;

    if (rdlen < fixed + 1)
        return false;
    if (kind == CM_DNSDISC_SRV) {
        out->priority = get16(p);
        out->weight = get16(p + 2);
        out->port = get16(p + 4);
    } else {
        out->priority = get16(p);
        out->weight = 0;
        out->port = 25;
    }
    if (!read_name(p + fixed, abuf, alen, &out->host, &used))
        return false;
    if (used > rdlen - fixed) {
        ares_free_string(out->host);
        return false;
    }
    return true;
}

/* Keeps the record's target in l, or says why not. Returns -ENOMEM, or 0. */
static int take(struct cm_dnsdisc_list *l, size_t cap, struct rec *rec, bool *unavailable,
                char *first_bad, size_t first_bad_len)
{
    if (!rec->host[0]) {
        /* "." as the SRV target, or a null MX (RFC 7505): the service is not offered. */
        *unavailable = true;
        return 0;
    }
    for (char *c = rec->host; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    if (!cm_host_is_valid_name(rec->host) || cm_host_is_ip(rec->host)) {
        if (l->rejected++ == 0)
            cm_text_escape(rec->host, first_bad, first_bad_len);
        return 0;
    }
    if (l->count == cap) {
        l->dropped++;
        return 0;
    }
    struct cm_dnsdisc_target *t = &l->targets[l->count];
    if (!(t->host = strdup(rec->host)))
        return -ENOMEM;
    t->port = rec->port;
    t->priority = rec->priority;
    t->weight = rec->weight;
    l->count++;
    return 0;
}

int cm_dnsdisc_parse(enum cm_dnsdisc_kind kind, const unsigned char *abuf, size_t alen,
                     struct cm_dnsdisc_list **out, char *err, size_t errlen)
{
    const unsigned char *p = abuf, *end = abuf + alen;
    uint16_t wanted = kind == CM_DNSDISC_MX ? TYPE_MX : TYPE_SRV;
    struct cm_dnsdisc_list *l;
    char first_bad[96] = "";
    bool unavailable = false, seen = false;
    size_t used, cap, matching = 0;
    int rc = CM_EDNS_BADANSWER;

    *out = NULL;
    cm_errf(err, errlen, "%s", "");
    if (alen < HEADER_LEN || alen > INT_MAX) {
        cm_errf(err, errlen, "answer of %zu bytes is not a DNS message", alen);
        return CM_EDNS_BADANSWER;
    }
    uint16_t qdcount = get16(abuf + 4), ancount = get16(abuf + 6);
    cap = ancount < CM_DNSDISC_MAX_RECORDS ? ancount : CM_DNSDISC_MAX_RECORDS;
    if (!(l = calloc(1, sizeof(*l) + cap * sizeof(l->targets[0]))))
        return -ENOMEM;
    l->ttl = UINT32_MAX;
    p += HEADER_LEN;
    for (unsigned i = 0; i < qdcount; i++) {
        char *name;
        if (!read_name(p, abuf, alen, &name, &used))
            goto malformed;
        ares_free_string(name);
        if ((size_t)(end - p) < used + 4)
            goto malformed;
        p += used + 4;
    }
    for (unsigned i = 0; i < ancount; i++) {
        char *owner;
        struct rec rec;

        if (!read_name(p, abuf, alen, &owner, &used))
            goto malformed;
        ares_free_string(owner);
        p += used;
        if (end - p < 10)
            goto malformed;
        uint16_t type = get16(p), class = get16(p + 2), rdlen = get16(p + 8);
        uint32_t ttl = get32(p + 4);
        p += 10;
        if ((size_t)(end - p) < rdlen)
            goto malformed;
        if (type != wanted || class != CLASS_IN) {
            p += rdlen;
            continue;
        }
        if (!read_rdata(kind, p, rdlen, abuf, alen, &rec))
            goto malformed;
        p += rdlen;
        matching++;
        rc = take(l, cap, &rec, &unavailable, first_bad, sizeof(first_bad));
        ares_free_string(rec.host);
        if (rc < 0) {
            cm_dnsdisc_list_free(l);
            return rc;
        }
        /* TTLs above 2^31-1 count as 0 (RFC 2181 section 8). */
        if (ttl > INT32_MAX)
            ttl = 0;
        if (ttl < l->ttl)
            l->ttl = ttl;
        seen = true;
    }
    if (!seen) {
        cm_dnsdisc_list_free(l);
        cm_errf(err, errlen, "the answer holds no %s record", cm_dnsdisc_kind_name(kind));
        return CM_EDNS_NODATA;
    }
    if (l->count == 0 && !unavailable) {
        cm_errf(err, errlen, "all %zu %s records name an invalid host (first: '%s')", matching,
                cm_dnsdisc_kind_name(kind), first_bad);
        cm_dnsdisc_list_free(l);
        return CM_EDNS_BADANSWER;
    }
    dedup(l);
    if (l->rejected && l->dropped)
        cm_errf(err, errlen,
                "%zu records with an invalid host left out (first: '%s'); %zu beyond the "
                "first %d left out",
                l->rejected, first_bad, l->dropped, CM_DNSDISC_MAX_RECORDS);
    else if (l->rejected)
        cm_errf(err, errlen, "%zu records with an invalid host left out (first: '%s')", l->rejected,
                first_bad);
    else if (l->dropped)
        cm_errf(err, errlen, "%zu records beyond the first %d left out", l->dropped,
                CM_DNSDISC_MAX_RECORDS);
    *out = l;
    return 0;

malformed:
    cm_dnsdisc_list_free(l);
    cm_errf(err, errlen, "malformed DNS answer (%zu bytes)", alen);
    return CM_EDNS_BADANSWER;
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Hands the outcome to the user once and lets the request go. */
static void finish(struct cm_dnsdisc_req *req, int status, const char *message,
                   struct cm_dnsdisc_list *list)
{
    cm_dnsdisc_cb cb = req->cb;

    req->cb = NULL;
    uv_close((uv_handle_t *)&req->timer, on_timer_closed);
    if (cb)
        cb(status, message, list, req->arg);
    else
        cm_dnsdisc_list_free(list);
}

static void on_answer(int status, const char *message, const unsigned char *abuf, size_t alen,
                      void *arg)
{
    struct cm_dnsdisc_req *req = arg;
    struct cm_dnsdisc_list *list = NULL;
    char why[256];

    req->query = NULL;
    if (status == 0) {
        status = cm_dnsdisc_parse(req->kind, abuf, alen, &list, why, sizeof(why));
        message = why;
    }
    finish(req, status, message, list);
}

static void on_deadline(uv_timer_t *t)
{
    struct cm_dnsdisc_req *req = t->data;

    /* c-ares may still retransmit the query until its own retries run out; its answer then
     * goes nowhere. */
    cm_resolve_cancel(req->query);
    req->query = NULL;
    finish(req, CM_EDNS_TIMEOUT, "no answer within the deadline", NULL);
}

int cm_dnsdisc_start(struct cm_resolver *r, enum cm_dnsdisc_kind kind, const char *name,
                     uint64_t timeout_ms, cm_dnsdisc_cb cb, void *arg, struct cm_dnsdisc_req **out)
{
    struct cm_dnsdisc_req *req;
    int rc;

    if (out)
        *out = NULL;
    if (!name || !cm_host_is_valid_name(name) || timeout_ms == 0 ||
        (kind != CM_DNSDISC_SRV && kind != CM_DNSDISC_MX))
        return CM_EBADARG;
    if (!(req = calloc(1, sizeof(*req))))
        return -ENOMEM;
    req->kind = kind;
    req->cb = cb;
    req->arg = arg;
    rc = cm_resolve_query(r, name, kind == CM_DNSDISC_MX ? TYPE_MX : TYPE_SRV, on_answer, req,
                          &req->query);
    if (rc < 0) {
        free(req);
        return rc;
    }
    /* The timer cannot fail to start on a live loop; the resolver's loop is ours. */
    uv_timer_init(cm_resolver_loop(r), &req->timer);
    req->timer.data = req;
    uv_timer_start(&req->timer, on_deadline, timeout_ms, 0);
    if (out)
        *out = req;
    return 0;
}

void cm_dnsdisc_cancel(struct cm_dnsdisc_req *req)
{
    if (!req || !req->cb)
        return;
    cm_resolve_cancel(req->query);
    req->query = NULL;
    req->cb = NULL;
    uv_close((uv_handle_t *)&req->timer, on_timer_closed);
}
