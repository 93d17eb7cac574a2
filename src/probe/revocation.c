/* The revocation checker on the loop: a cache of CRL indexes keyed by URL and issuer key, one
 * fetch per URL in flight however many certificates wait for it, parsing on the thread pool,
 * and jobs that each fill one probe result within their own deadline. */
#include "certmon/base/error.h"
#include "certmon/http/httpc.h"
#include "certmon/base/log.h"
#include "certmon/probe/revocation.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SUB "revocation"

/* A CRL that could not be had, or that was fetched and found past its nextUpdate, is not
 * fetched again for this long (by default; cm_revctx_set_refetch): a down distribution point
 * costs one attempt per minute, not one per certificate. */
#define RETRY_S 60

/* ---- Checker ---- */

struct waiter;

/* One cached CRL (or the last failure to get it), for one URL and one issuer key; or one
 * cached OCSP answer, for one responder URL, issuer key and serial. */
struct slot {
    struct slot *next;  /* every slot, for stats, pruning and closing */
    struct slot *hnext; /* the slots of its bucket (slot_index) */
    struct cm_revctx *ctx;
    bool is_ocsp;
    char *serial; /* OCSP: the certificate's serial (hex); NULL for a CRL */
    char *url;
    char issuer_key[65]; /* SHA-256 of the issuer's SubjectPublicKeyInfo, hex */
    struct cm_crl *crl;  /* NULL until one was fetched and verified */
    int64_t fetched_at;  /* when crl was last fetched or confirmed (304) */
    int64_t used_at;     /* when a job last asked for it (see cm_revctx_prune) */
    char etag[256], last_modified[64];
    char error[300];   /* why the last attempt failed, "" when it did not */
    int64_t failed_at; /* when it failed */
    bool busy;         /* a fetch or a parse is in flight */
    struct cm_httpc_xfer *xfer;
    struct waiter *waiters; /* doubly linked */
    /* The parse in flight. */
    uv_work_t work;
    char *body;
    size_t body_len;
    unsigned char *issuer_der;
    size_t issuer_der_len;
    bool issuer_has_ku;
    unsigned issuer_ku_bits;
    struct cm_crl *parsed;
    int parse_rc;
    char parse_err[256];
    /* OCSP: the query in flight (the certificate, the nonce sent) and the last answer. */
    unsigned char *cert_der;
    size_t cert_der_len;
    unsigned char nonce[CM_OCSP_NONCE_MAX];
    size_t nonce_len;
    bool have_answer;
    struct cm_ocsp_answer answer, parsed_answer;
};

/* One certificate of one job waiting for one slot. */
struct waiter {
    struct waiter *prev, *next;
    struct slot *slot; /* NULL once served */
    struct cm_rev_job *job;
    size_t pos;
};

/* Per certificate of a job, while it runs. */
struct pending {
    unsigned outstanding; /* slots not yet heard from */
    bool good, stale;
    enum cm_rev_source good_source; /* what said good first */
};

struct cm_rev_job {
    struct cm_revctx *ctx;
    struct cm_rev_job *prev, *next;
    struct cm_probe_result *res;
    cm_rev_cb cb;
    void *arg;
    struct cm_revocation *rev;
    struct pending *pend;
    struct waiter *waiters; /* array, one per (certificate, URL) that waits */
    size_t nwaiters;
    size_t outstanding; /* waiters not yet served */
    uint64_t timeout_ms;
    uv_timer_t timer;
    bool done;
    const char *why; /* what sources still outstanding at the end count as */
};

struct cm_revctx {
    uv_loop_t *loop;
    struct cm_httpc *httpc;
    struct slot *slots;
    /* An index of the slots, so that a lookup does not walk them all: a daemon may hold one
     * OCSP answer per certificate of ten thousand targets. NULL (out of memory) falls back to
     * the list. */
    struct slot **buckets;
    size_t nbuckets, nslots; /* nbuckets is a power of two */
    struct cm_rev_job *jobs;
    unsigned handles; /* job timers not yet closed */
    unsigned works;   /* parses in flight */
    bool closing;
    uint64_t fetches, not_modified;
    int64_t retry_s; /* RETRY_S unless set */
    int64_t pruned_at;
};

static void slot_free(struct slot *s)
{
    cm_crl_free(s->crl);
    free(s->url);
    free(s->serial);
    free(s);
}

static void maybe_free_ctx(struct cm_revctx *ctx)
{
    if (!ctx->closing || ctx->handles || ctx->works)
        return;
    for (struct slot *s = ctx->slots, *n; s; s = n) {
        n = s->next;
        slot_free(s);
    }
    free(ctx->buckets);
    free(ctx);
}

/* Up to 8 hex digits of s as a number (stops at the first other character). */
static uint32_t hex32(const char *s)
{
    uint32_t v = 0;

    for (int i = 0; i < 8 && s[i]; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            break;
        v = v << 4 | (uint32_t)d;
    }
    return v;
}

/* The bucket of a slot. No hash function is needed: the issuer key is a SHA-256 already, and
 * the serials of one issuer are random (CA/Browser Forum: 64 bits of entropy), so their last
 * digits spread one issuer's answers. One issuer's few CRL URLs share a bucket. */
static size_t slot_bucket(const struct cm_revctx *ctx, const char *key, const char *serial)
{
    uint32_t h = hex32(key);

    if (serial) {
        size_t n = strlen(serial);
        h ^= hex32(serial + (n > 8 ? n - 8 : 0)) * 2654435761u;
    }
    return h & (ctx->nbuckets - 1);
}

/* Doubles the index (at least 64 buckets) and fills it from the list. Returns false, keeping
 * the old index, when out of memory. */
static bool index_grow(struct cm_revctx *ctx)
{
    size_t n = ctx->nbuckets ? 2 * ctx->nbuckets : 64;
    struct slot **b = calloc(n, sizeof(*b));

    if (!b)
        return false;
    free(ctx->buckets);
    ctx->buckets = b;
    ctx->nbuckets = n;
    for (struct slot *s = ctx->slots; s; s = s->next) {
        size_t k = slot_bucket(ctx, s->issuer_key, s->is_ocsp ? s->serial : NULL);
        s->hnext = b[k];
        b[k] = s;
    }
    return true;
}

/* Takes s out of the list and the index, and frees it. */
static void slot_drop(struct cm_revctx *ctx, struct slot **link, struct slot *s)
{
    *link = s->next;
    if (ctx->buckets) {
        struct slot **pp =
            &ctx->buckets[slot_bucket(ctx, s->issuer_key, s->is_ocsp ? s->serial : NULL)];
        while (*pp && *pp != s)
            pp = &(*pp)->hnext;
        if (*pp)
            *pp = s->hnext;
    }
    ctx->nslots--;
    slot_free(s);
}

int cm_revctx_new(uv_loop_t *loop, struct cm_httpc *httpc, struct cm_revctx **out)
{
    struct cm_revctx *ctx;

    *out = NULL;
    if (!(ctx = calloc(1, sizeof(*ctx))))
        return -ENOMEM;
    ctx->loop = loop;
    ctx->httpc = httpc;
    ctx->retry_s = RETRY_S;
    *out = ctx;
    return 0;
}

void cm_revctx_set_refetch(struct cm_revctx *ctx, unsigned seconds)
{
    ctx->retry_s = seconds;
}

void cm_revctx_stats(const struct cm_revctx *ctx, int64_t now, struct cm_rev_stats *out)
{
    (void)now;
    memset(out, 0, sizeof(*out));
    if (!ctx)
        return;
    for (const struct slot *s = ctx->slots; s; s = s->next) {
        if (!s->crl) {
            out->ocsp_answers += s->is_ocsp && s->have_answer;
            continue;
        }
        out->crls++;
        out->bytes += cm_crl_memory(s->crl);
        out->entries += cm_crl_count(s->crl);
        int64_t t = cm_crl_this_update(s->crl);
        if (!out->oldest_this_update || t < out->oldest_this_update)
            out->oldest_this_update = t;
    }
    out->fetches = ctx->fetches;
    out->not_modified = ctx->not_modified;
}

static int add_error(struct cm_rev_cert *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int add_error(struct cm_rev_cert *c, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    if (c->error_count >= CM_REV_MAX_ERRORS)
        return 0;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (!(c->errors[c->error_count] = strdup(buf)))
        return -ENOMEM;
    c->error_count++;
    return 0;
}

/* Settles certificate pos of job j from its collected evidence. */
static void decide(struct cm_rev_job *j, size_t pos)
{
    struct cm_rev_cert *c = &j->rev->certs[pos];
    struct pending *p = &j->pend[pos];

    if (c->status != CM_REV_UNAVAILABLE || c->source != CM_REV_SRC_NONE)
        return; /* decided already (revoked, staple, none, unchecked) */
    if (p->good) {
        c->status = CM_REV_GOOD;
        c->source = p->good_source;
    } else if (p->stale) {
        c->crl_stale = true;
    }
}

static void job_closed(uv_handle_t *h)
{
    struct cm_rev_job *j = h->data;
    struct cm_revctx *ctx = j->ctx;

    free(j->waiters);
    free(j->pend);
    free(j);
    ctx->handles--;
    maybe_free_ctx(ctx);
}

/* Takes j off ctx's list of jobs. */
static void job_unlink(struct cm_revctx *ctx, struct cm_rev_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        ctx->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
}

/* Ends job j: unlinks its waiters still queued, writes the result, runs the callback once. */
static void job_finish(struct cm_rev_job *j)
{
    struct cm_revctx *ctx = j->ctx;

    if (j->done)
        return;
    j->done = true;
    uv_timer_stop(&j->timer);
    for (size_t k = 0; k < j->nwaiters; k++) {
        struct waiter *w = &j->waiters[k];
        if (!w->slot)
            continue;
        if (add_error(&j->rev->certs[w->pos], "%s: %s", w->slot->url,
                      j->why ? j->why : "timed out") < 0)
            cm_log_warn(SUB, "out of memory noting a timeout");
        if (w->prev)
            w->prev->next = w->next;
        else
            w->slot->waiters = w->next;
        if (w->next)
            w->next->prev = w->prev;
        w->slot = NULL;
    }
    for (size_t i = 0; i < j->rev->count; i++)
        decide(j, i);
    job_unlink(ctx, j);
    cm_revocation_free(j->res->revocation);
    j->res->revocation = j->rev;
    j->rev = NULL;
    j->cb(j->res, j->arg);
    uv_close((uv_handle_t *)&j->timer, job_closed);
}

static void on_job_timer(uv_timer_t *t)
{
    job_finish(t->data);
}

/* What slot s says about certificate pos of job j. */
static void apply(struct cm_rev_job *j, size_t pos, const struct slot *s, int64_t now)
{
    const struct cm_cert *cert = &j->res->tls.chain.certs[pos];
    struct cm_rev_cert *c = &j->rev->certs[pos];
    struct pending *p = &j->pend[pos];
    const char *reason = NULL;
    int64_t when = 0;
    bool excluded = false;
    int rc = 0;

    if (s->is_ocsp) {
        const struct cm_ocsp_answer *a = &s->answer;
        if (!s->have_answer) {
            rc = add_error(c, "%s: OCSP: %s", s->url, s->error[0] ? s->error : "no answer");
        } else if (a->status == CM_REV_REVOKED) {
            if (c->status != CM_REV_REVOKED) {
                c->status = CM_REV_REVOKED;
                c->source = CM_REV_SRC_OCSP;
                c->revoked_at = a->revoked_at;
                c->reason = a->reason;
                c->this_update = a->this_update;
                c->next_update = a->next_update;
            }
        } else if (a->this_update > now + 300) {
            rc = add_error(c, "%s: OCSP: the response is not valid yet (thisUpdate in the future)",
                           s->url);
        } else if (a->next_update && a->next_update < now) {
            rc = add_error(c, "%s: OCSP: the response is out of date", s->url);
        } else if (c->status != CM_REV_REVOKED) {
            if (!p->good)
                p->good_source = CM_REV_SRC_OCSP;
            p->good = true;
            c->this_update = a->this_update;
            c->next_update = a->next_update;
        }
        if (rc < 0)
            cm_log_warn(SUB, "out of memory noting a revocation error");
        return;
    }
    if (!s->crl) {
        rc = add_error(c, "%s: %s", s->url, s->error[0] ? s->error : "no CRL");
    } else if (cm_crl_lookup(s->crl, cert, &when, &reason, &excluded)) {
        /* A listed serial is revoked whether or not the CRL is current: revocation is final. */
        if (c->status != CM_REV_REVOKED) {
            c->status = CM_REV_REVOKED;
            c->source = CM_REV_SRC_CRL;
            c->revoked_at = when;
            c->reason = reason;
            c->this_update = cm_crl_this_update(s->crl);
            c->next_update = cm_crl_next_update(s->crl);
        }
    } else if (excluded) {
        rc = add_error(c, "%s: the CRL's scope excludes this certificate", s->url);
    } else if (cm_crl_this_update(s->crl) > now + 300) {
        rc = add_error(c, "%s: the CRL is not valid yet (thisUpdate in the future)", s->url);
    } else if (cm_crl_next_update(s->crl) && cm_crl_next_update(s->crl) < now) {
        char t[32];
        cm_time_rfc3339(cm_crl_next_update(s->crl), t, sizeof(t));
        rc = add_error(c, "%s: the CRL is out of date (nextUpdate %s)", s->url, t);
        if (!p->good && c->status != CM_REV_REVOKED) {
            c->this_update = cm_crl_this_update(s->crl);
            c->next_update = cm_crl_next_update(s->crl);
        }
        p->stale = true;
    } else if (c->status != CM_REV_REVOKED) {
        if (!p->good)
            p->good_source = CM_REV_SRC_CRL;
        p->good = true;
        c->this_update = cm_crl_this_update(s->crl);
        c->next_update = cm_crl_next_update(s->crl);
    }
    if (rc < 0)
        cm_log_warn(SUB, "out of memory noting a revocation error");
}

/* Serves every waiter of s (its fetch or parse has ended). */
static void slot_serve(struct slot *s)
{
    int64_t now = (int64_t)time(NULL);
    struct waiter *w;

    while ((w = s->waiters)) {
        struct cm_rev_job *j = w->job;
        s->waiters = w->next;
        if (w->next)
            w->next->prev = NULL;
        w->slot = NULL;
        apply(j, w->pos, s, now);
        j->pend[w->pos].outstanding--;
        if (--j->outstanding == 0)
            job_finish(j);
    }
}

static void slot_fail(struct slot *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void slot_fail(struct slot *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(s->error, sizeof(s->error), fmt, ap);
    va_end(ap);
    s->failed_at = (int64_t)time(NULL);
    if (s->crl || s->have_answer) {
        /* A re-fetch that failed: what is held so far still serves (as stale, when it is). */
        s->error[0] = '\0';
    }
}

static void parse_work(uv_work_t *w)
{
    struct slot *s = w->data;
    struct cm_cert issuer = {0};

    issuer.der = s->issuer_der;
    issuer.der_len = s->issuer_der_len;
    issuer.has_key_usage = s->issuer_has_ku;
    issuer.key_usage = s->issuer_ku_bits;
    if (s->is_ocsp) {
        struct cm_cert cert = {0};
        cert.der = s->cert_der;
        cert.der_len = s->cert_der_len;
        s->parse_rc = cm_ocsp_check(s->body, s->body_len, &cert, &issuer, s->nonce, s->nonce_len,
                                    &s->parsed_answer, s->parse_err, sizeof(s->parse_err));
        return;
    }
    s->parse_rc =
        cm_crl_parse(s->body, s->body_len, &issuer, &s->parsed, s->parse_err, sizeof(s->parse_err));
}

static void parse_done(uv_work_t *w, int status)
{
    struct slot *s = w->data;
    struct cm_revctx *ctx = s->ctx;

    free(s->body);
    s->body = NULL;
    free(s->issuer_der);
    s->issuer_der = NULL;
    free(s->cert_der);
    s->cert_der = NULL;
    ctx->works--;
    s->busy = false;
    if (status < 0) {
        slot_fail(s, "parse cancelled");
    } else if (s->is_ocsp && s->parse_rc < 0) {
        /* A response that does not verify replaces the answer held: never "good" by default. */
        s->have_answer = false;
        snprintf(s->error, sizeof(s->error), "%s",
                 s->parse_rc == -ENOMEM ? "out of memory" : s->parse_err);
        s->failed_at = (int64_t)time(NULL);
        cm_log_info(SUB, "url=%s ocsp response rejected: %s", s->url, s->error);
    } else if (s->is_ocsp) {
        s->answer = s->parsed_answer;
        s->have_answer = true;
        s->fetched_at = (int64_t)time(NULL);
        s->error[0] = '\0';
    } else if (s->parse_rc < 0) {
        /* A CRL that does not verify replaces nothing: a forged one must not hide a good one,
         * but neither may it pass for current. */
        cm_crl_free(s->crl);
        s->crl = NULL;
        snprintf(s->error, sizeof(s->error), "%s",
                 s->parse_rc == -ENOMEM ? "out of memory" : s->parse_err);
        s->failed_at = (int64_t)time(NULL);
        cm_log_info(SUB, "url=%s crl rejected: %s", s->url, s->error);
    } else {
        cm_crl_free(s->crl);
        s->crl = s->parsed;
        s->fetched_at = (int64_t)time(NULL);
        s->error[0] = '\0';
        cm_log_debug(SUB, "url=%s crl entries=%zu bytes=%zu", s->url, cm_crl_count(s->crl),
                     cm_crl_memory(s->crl));
    }
    s->parsed = NULL;
    if (ctx->closing) {
        while (s->waiters)
            slot_serve(s);
        maybe_free_ctx(ctx);
        return;
    }
    slot_serve(s);
}

/* The fetch of s ended without a parse to follow. */
static void fetch_end(struct slot *s)
{
    s->busy = false;
    free(s->issuer_der);
    s->issuer_der = NULL;
    free(s->cert_der);
    s->cert_der = NULL;
}

static void on_fetched(const struct cm_httpc_result *r, void *arg)
{
    struct slot *s = arg;
    struct cm_revctx *ctx = s->ctx;
    bool file = strncasecmp(s->url, "file:", 5) == 0;

    s->xfer = NULL;
    if (r->curl_code != 0) {
        fetch_end(s);
        slot_fail(s, "cannot %s: %s", s->is_ocsp ? "query the responder" : "fetch the CRL",
                  r->error);
        slot_serve(s);
        return;
    }
    if (r->status == 304 && s->crl && !s->is_ocsp) {
        ctx->not_modified++;
        fetch_end(s);
        s->fetched_at = (int64_t)time(NULL);
        slot_serve(s);
        return;
    }
    if (!file && r->status != 200) {
        fetch_end(s);
        slot_fail(s, "cannot %s: HTTP status %ld",
                  s->is_ocsp ? "query the responder" : "fetch the CRL", r->status);
        slot_serve(s);
        return;
    }
    snprintf(s->etag, sizeof(s->etag), "%s", r->etag ? r->etag : "");
    snprintf(s->last_modified, sizeof(s->last_modified), "%s",
             r->last_modified ? r->last_modified : "");
    s->body = cm_httpc_take_body(r, &s->body_len);
    if (!s->body) {
        fetch_end(s);
        slot_fail(s, "%s", s->is_ocsp ? "empty response" : "the CRL is empty");
        slot_serve(s);
        return;
    }
    s->work.data = s;
    if (uv_queue_work(ctx->loop, &s->work, parse_work, parse_done) < 0) {
        free(s->body);
        s->body = NULL;
        fetch_end(s);
        slot_fail(s, "cannot queue the CRL's parse");
        slot_serve(s);
        return;
    }
    ctx->works++;
}

/* Starts the OCSP query of s for cert. Returns 0 or a negative code (the query did not
 * start). */
static int slot_query(struct slot *s, const struct cm_cert *cert, const struct cm_cert *issuer,
                      uint64_t timeout_ms)
{
    struct cm_revctx *ctx = s->ctx;
    unsigned char *req;
    size_t len;
    int rc;

    if ((rc = cm_ocsp_request(cert, issuer, &req, &len, s->nonce, &s->nonce_len)) < 0)
        return rc;
    s->issuer_der = malloc(issuer->der_len);
    s->cert_der = malloc(cert->der_len);
    if (!s->issuer_der || !s->cert_der) {
        free(req);
        fetch_end(s);
        return -ENOMEM;
    }
    memcpy(s->issuer_der, issuer->der, issuer->der_len);
    s->issuer_der_len = issuer->der_len;
    memcpy(s->cert_der, cert->der, cert->der_len);
    s->cert_der_len = cert->der_len;
    s->issuer_has_ku = false; /* the responder's signature is checked by cm_ocsp_check */
    struct cm_httpc_req hr = {
        .url = s->url,
        .body = (const char *)req,
        .body_len = len,
        .content_type = "application/ocsp-request",
        .timeout_ms = timeout_ms,
        .body_max = 1024 * 1024,
    };
    s->busy = true;
    ctx->fetches++;
    rc = cm_httpc_request(ctx->httpc, &hr, on_fetched, s, &s->xfer);
    free(req);
    if (rc < 0)
        fetch_end(s);
    return rc;
}

/* Starts the fetch of s. On failure the slot records why (and the caller serves waiters). */
static int slot_fetch(struct slot *s, const struct cm_cert *issuer, uint64_t timeout_ms)
{
    struct cm_revctx *ctx = s->ctx;
    char inm[300], ims[100];
    const char *headers[3] = {NULL, NULL, NULL};
    size_t nh = 0;
    int rc;

    if (!(s->issuer_der = malloc(issuer->der_len)))
        return -ENOMEM;
    memcpy(s->issuer_der, issuer->der, issuer->der_len);
    s->issuer_der_len = issuer->der_len;
    s->issuer_has_ku = issuer->has_key_usage;
    s->issuer_ku_bits = issuer->key_usage;
    /* Conditional only when the CRL we hold came from that response. */
    if (s->crl && s->etag[0]) {
        snprintf(inm, sizeof(inm), "If-None-Match: %s", s->etag);
        headers[nh++] = inm;
    }
    if (s->crl && s->last_modified[0]) {
        snprintf(ims, sizeof(ims), "If-Modified-Since: %s", s->last_modified);
        headers[nh++] = ims;
    }
    struct cm_httpc_req req = {
        .url = s->url,
        .headers = headers,
        .timeout_ms = timeout_ms,
        .body_max = CM_CRL_MAX_BYTES,
        .allow_file = 1,
    };
    s->busy = true;
    ctx->fetches++;
    if ((rc = cm_httpc_request(ctx->httpc, &req, on_fetched, s, &s->xfer)) < 0) {
        s->busy = false;
        free(s->issuer_der);
        s->issuer_der = NULL;
        return rc;
    }
    return 0;
}

/* The slot for a CRL (serial NULL) or an OCSP answer about serial, made when missing. */
static struct slot *slot_get(struct cm_revctx *ctx, const char *url, const char *key,
                             const char *serial)
{
    struct slot *s;

    if (ctx->buckets)
        s = ctx->buckets[slot_bucket(ctx, key, serial)];
    else
        s = ctx->slots;
    for (; s; s = ctx->buckets ? s->hnext : s->next)
        if (!strcmp(s->url, url) && !strcmp(s->issuer_key, key) && s->is_ocsp == !!serial &&
            (!serial || !strcmp(s->serial, serial)))
            return s;
    if (!(s = calloc(1, sizeof(*s))) || !(s->url = strdup(url)) ||
        (serial && !(s->serial = strdup(serial)))) {
        if (s)
            free(s->url);
        free(s);
        return NULL;
    }
    s->is_ocsp = serial != NULL;
    s->ctx = ctx;
    snprintf(s->issuer_key, sizeof(s->issuer_key), "%s", key);
    s->next = ctx->slots;
    ctx->slots = s;
    ctx->nslots++;
    if (ctx->nslots > ctx->nbuckets && index_grow(ctx))
        return s; /* the new index was filled from the list, s included */
    if (ctx->buckets) {
        size_t k = slot_bucket(ctx, key, serial);
        s->hnext = ctx->buckets[k];
        ctx->buckets[k] = s;
    }
    return s;
}

static bool scheme_ok(const char *url)
{
    return !strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8) ||
           !strncasecmp(url, "file://", 7);
}

/* The certificate that issued chain position pos: another sent certificate, else the trust
 * anchor; NULL when neither is known (or has no encoding). */
static const struct cm_cert *issuer_of(const struct cm_probe_result *res, size_t pos)
{
    const struct cm_chain *chain = &res->tls.chain;
    const struct cm_cert *c = &chain->certs[pos];

    for (size_t k = 0; k < chain->count; k++)
        if (k != pos && chain->certs[k].der && cm_cert_issued_by(c, &chain->certs[k]))
            return &chain->certs[k];
    if (res->tls.anchor.count && res->tls.anchor.certs[0].der &&
        cm_cert_issued_by(c, &res->tls.anchor.certs[0]))
        return &res->tls.anchor.certs[0];
    return NULL;
}

/* Does the slot have to be fetched (again) for this request? */
static bool slot_needs_fetch(const struct slot *s, int64_t now)
{
    const int64_t retry = s->ctx->retry_s;

    if (s->busy)
        return false;
    if (s->is_ocsp && s->have_answer) {
        /* An answer without nextUpdate is kept for the refetch time (RFC 6960: newer is always
         * available). */
        int64_t until = s->answer.next_update ? s->answer.next_update : s->fetched_at + retry;
        if (now < until)
            return false;
        return now - s->fetched_at >= retry && now - s->failed_at >= retry;
    }
    if (s->crl) {
        int64_t next = cm_crl_next_update(s->crl);
        /* A CRL without nextUpdate is kept for an hour. */
        int64_t until = next ? next : s->fetched_at + 3600;
        if (now < until)
            return false;
        return now - s->fetched_at >= retry && now - s->failed_at >= retry;
    }
    return !s->error[0] || now - s->failed_at >= retry;
}

/* Serves certificate pos of job j from the slot for url (a CRL, or an OCSP answer about cert
 * when cert is not NULL): at once when the cache holds it, else by waiting for the fetch it
 * starts or joins. Returns 0 or -ENOMEM. */
static int use_slot(struct cm_rev_job *j, size_t pos, const char *url, const struct cm_cert *issuer,
                    const struct cm_cert *cert, int64_t now)
{
    const char *key = issuer->spki_sha256 ? issuer->spki_sha256 : "";
    struct slot *s = slot_get(j->ctx, url, key, cert ? (cert->serial ? cert->serial : "") : NULL);
    int rc = 0;

    if (!s)
        return -ENOMEM;
    s->used_at = now;
    if (slot_needs_fetch(s, now)) {
        rc = cert ? slot_query(s, cert, issuer, j->timeout_ms)
                  : slot_fetch(s, issuer, j->timeout_ms);
        if (rc == -ENOMEM)
            return rc;
        if (rc < 0) {
            snprintf(s->error, sizeof(s->error), "cannot start the %s: %s",
                     cert ? "query" : "fetch", cm_strerror(rc));
            s->failed_at = now;
        }
    }
    if (!s->busy) {
        apply(j, pos, s, now);
        return 0;
    }
    struct waiter *w = &j->waiters[j->nwaiters++];
    w->slot = s;
    w->job = j;
    w->pos = pos;
    w->prev = NULL;
    w->next = s->waiters;
    if (s->waiters)
        s->waiters->prev = w;
    s->waiters = w;
    j->pend[pos].outstanding++;
    j->outstanding++;
    return 0;
}

/* Plans certificate pos of job j: staple, CRL slots to wait for. A dry run only counts the
 * waiters it would need in *nw (j->rev is not there yet). Returns 0 or -ENOMEM. */
static int plan_cert(struct cm_rev_job *j, size_t pos, int64_t now, size_t *nw, bool dry)
{
    const struct cm_probe_result *res = j->res;
    const struct cm_cert *cert = &res->tls.chain.certs[pos];
    struct cm_rev_cert *c = dry ? NULL : &j->rev->certs[pos];
    const struct cm_cert *issuer;

    if (cert->self_signed || !cert->der)
        return 0; /* a trust anchor (or a placeholder): unchecked */
    if (pos == 0 && res->tls.ocsp.verified &&
        (res->tls.ocsp.status == CM_OCSP_GOOD || res->tls.ocsp.status == CM_OCSP_REVOKED)) {
        if (!dry) {
            c->status = res->tls.ocsp.status == CM_OCSP_GOOD ? CM_REV_GOOD : CM_REV_REVOKED;
            c->source = CM_REV_SRC_STAPLE;
            c->revoked_at = res->tls.ocsp.revoked_at;
            c->this_update = res->tls.ocsp.this_update;
            c->next_update = res->tls.ocsp.next_update;
        }
        return 0;
    }
    if (cert->crl_url_count == 0 && !(cert->ocsp_url && cert->ocsp_url[0])) {
        if (!dry)
            c->status = CM_REV_NONE;
        return 0;
    }
    if (!dry)
        c->status = CM_REV_UNAVAILABLE;
    issuer = issuer_of(res, pos);
    if (!issuer) {
        /* A file holding a leaf alone (cert.pem) cannot be checked: its issuer is usually an
         * intermediate that no trust store holds, and the data must be verified against it. */
        if (dry)
            return 0;
        return res->path ? add_error(c, "the issuer certificate is not in the file, nor "
                                        "among the trust anchors (monitor the full chain "
                                        "file, e.g. fullchain.pem)")
                         : add_error(c, "the issuer certificate is not available to verify "
                                        "revocation data");
    }
    for (size_t u = 0; u < cert->crl_url_count; u++) {
        const char *url = cert->crl_urls[u];
        if (!scheme_ok(url)) {
            if (!dry &&
                add_error(c, "%s: scheme not supported (http, https and file are)", url) < 0)
                return -ENOMEM;
            continue;
        }
        if (dry) {
            (*nw)++;
            continue;
        }
        int rc = use_slot(j, pos, url, issuer, NULL, now);
        if (rc < 0)
            return rc;
    }
    if (cert->ocsp_url && cert->ocsp_url[0]) {
        const char *url = cert->ocsp_url;
        if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8)) {
            if (!dry &&
                add_error(c, "%s: OCSP: scheme not supported (http and https are)", url) < 0)
                return -ENOMEM;
        } else if (dry) {
            (*nw)++;
        } else {
            int rc = use_slot(j, pos, url, issuer, cert, now);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int cm_rev_check(struct cm_revctx *ctx, struct cm_probe_result *res, uint64_t timeout_ms,
                 cm_rev_cb cb, void *arg, struct cm_rev_job **out)
{
    const struct cm_chain *chain = &res->tls.chain;
    int64_t now = (int64_t)time(NULL);
    struct cm_rev_job *j;
    size_t nw = 0;
    int rc = -ENOMEM;

    if (out)
        *out = NULL;
    if (ctx->closing)
        return -ECANCELED;
    if (now - ctx->pruned_at >= 3600) {
        ctx->pruned_at = now;
        cm_revctx_prune(ctx, now, CM_REV_IDLE_S);
    }
    if (!(j = calloc(1, sizeof(*j))))
        return -ENOMEM;
    j->ctx = ctx;
    j->res = res;
    for (size_t i = 0; i < chain->count; i++)
        plan_cert(j, i, now, &nw, true);
    j->cb = cb;
    j->arg = arg;
    j->timeout_ms = timeout_ms ? timeout_ms : 1;
    if (!(j->rev = calloc(1, sizeof(*j->rev))) ||
        (chain->count && !(j->rev->certs = calloc(chain->count, sizeof(*j->rev->certs)))) ||
        (chain->count && !(j->pend = calloc(chain->count, sizeof(*j->pend)))) ||
        (nw && !(j->waiters = calloc(nw, sizeof(*j->waiters)))))
        goto fail;
    j->rev->count = chain->count;
    /* Linked before planning: a fetch that fails at once serves its waiters through the job. */
    j->next = ctx->jobs;
    if (ctx->jobs)
        ctx->jobs->prev = j;
    ctx->jobs = j;
    uv_timer_init(ctx->loop, &j->timer);
    j->timer.data = j;
    ctx->handles++;
    for (size_t i = 0; i < chain->count; i++) {
        j->rev->certs[i].status = CM_REV_UNCHECKED;
        if ((rc = plan_cert(j, i, now, &nw, false)) < 0)
            break;
    }
    if (rc == -ENOMEM && j->nwaiters == 0 && j->outstanding == 0) {
        /* Nothing waits yet: undo. */
        j->done = true;
        job_unlink(ctx, j);
        cm_revocation_free(j->rev);
        j->rev = NULL;
        uv_close((uv_handle_t *)&j->timer, job_closed);
        return -ENOMEM;
    }
    /* Every answer was in the cache: deliver from the loop, never inside this call. */
    uv_timer_start(&j->timer, on_job_timer, j->outstanding ? timeout_ms : 0, 0);
    if (out)
        *out = j;
    return 0;
fail:
    if (j->rev)
        cm_revocation_free(j->rev);
    free(j->pend);
    free(j->waiters);
    free(j);
    return -ENOMEM;
}

size_t cm_revctx_prune(struct cm_revctx *ctx, int64_t now, int64_t idle_s)
{
    size_t dropped = 0;

    for (struct slot **pp = &ctx->slots, *s; (s = *pp);) {
        if (!s->busy && !s->waiters && now - s->used_at >= idle_s) {
            slot_drop(ctx, pp, s);
            dropped++;
        } else {
            pp = &s->next;
        }
    }
    return dropped;
}

void cm_rev_cancel(struct cm_rev_job *j)
{
    if (!j || j->done)
        return;
    j->why = "cancelled";
    job_finish(j);
}

void cm_revctx_close(struct cm_revctx *ctx)
{
    if (!ctx)
        return;
    ctx->closing = true;
    while (ctx->jobs) {
        ctx->jobs->why = "cancelled";
        job_finish(ctx->jobs);
    }
    for (struct slot *s = ctx->slots; s; s = s->next)
        if (s->xfer)
            cm_httpc_cancel(s->xfer); /* on_fetched runs now; no waiter is left to serve */
    maybe_free_ctx(ctx);
}
