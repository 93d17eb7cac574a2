#include "certmon/probe/ari.h"
#include "certmon/base/error.h"
#include "certmon/http/httpc.h"
#include "certmon/base/log.h"
#include "certmon/base/text.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* How long answers are kept before the server is asked again (RFC 9773 section 4.3.3: the
 * client polls no more often than Retry-After says). Without a Retry-After: 6 hours. A
 * Retry-After under a minute counts as a minute (a server cannot make us poll in a loop) and
 * one over a week as a week (the window can move: a CA announcing mass revocation must be
 * heard). Failures are retried after 5 minutes, or the server's Retry-After when longer. */
#define ARI_POLL_DEFAULT_S (6 * 3600)
#define ARI_POLL_MIN_S 60
#define ARI_POLL_MAX_S (7 * 86400)
#define ARI_ERROR_RETRY_S 300
/* A failed directory fetch is retried after this long (a good one is kept for the client's
 * life: the renewalInfo URL of a CA does not move). */
#define ARI_DIR_RETRY_S 300
/* At most this many directories are remembered (a configuration names a handful). */
#define ARI_DIR_MAX 256
/* explanationURL is attacker-controlled text: longer ones are cut. */
#define ARI_EXPLANATION_MAX 2048

/* ---- Plain data ---- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int cm_ari_cert_id(const struct cm_cert *leaf, char *buf, size_t len, char *err, size_t errlen)
{
    unsigned char aki[64], serial[64];
    long na, ns, o;

    if (!leaf || !leaf->aki || !leaf->aki[0]) {
        snprintf(err, errlen,
                 "the certificate has no authority key identifier: RFC 9773 "
                 "renewal information cannot name it");
        return CM_EBADARG;
    }
    if (!leaf->serial || !leaf->serial[0]) {
        snprintf(err, errlen, "the certificate has no serial number");
        return CM_EBADARG;
    }
    /* x509.c keeps the serial as encoded (a leading zero byte included), which is what RFC
     * 9773 section 4.1 asks for. */
    na = cm_hex_decode(leaf->aki, aki, sizeof(aki));
    ns = cm_hex_decode(leaf->serial, serial, sizeof(serial));
    if (na <= 0 || ns <= 0) {
        snprintf(err, errlen, "the certificate's key identifier or serial cannot be decoded");
        return CM_EBADARG;
    }
    if ((o = cm_base64url_encode(aki, (size_t)na, buf, len)) < 0 || (size_t)o + 2 > len ||
        cm_base64url_encode(serial, (size_t)ns, buf + o + 1, len - (size_t)o - 1) < 0) {
        snprintf(err, errlen, "the certificate id does not fit");
        return CM_EBADARG;
    }
    buf[o] = '.';
    return 0;
}

int cm_ari_parse(const char *body, size_t len, struct cm_ari *a, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je), *win, *start, *end, *expl;
    int64_t ts, te;
    int rc = CM_EBADARG;

    a->has_window = false;
    if (!root) {
        snprintf(err, errlen, "the renewal information is not JSON: %s (line %d)", je.text,
                 je.line);
        return CM_EBADARG;
    }
    win = json_object_get(root, "suggestedWindow");
    start = json_object_get(win, "start");
    end = json_object_get(win, "end");
    expl = json_object_get(root, "explanationURL");
    if (!json_is_object(root) || !json_is_object(win)) {
        snprintf(err, errlen, "the renewal information has no suggestedWindow object");
    } else if (!json_is_string(start) || !cm_rfc3339_parse(json_string_value(start), &ts)) {
        snprintf(err, errlen, "suggestedWindow.start is not an RFC 3339 time");
    } else if (!json_is_string(end) || !cm_rfc3339_parse(json_string_value(end), &te)) {
        snprintf(err, errlen, "suggestedWindow.end is not an RFC 3339 time");
    } else if (ts > te) {
        snprintf(err, errlen, "suggestedWindow.start is after its end");
    } else if (expl && !json_is_string(expl)) {
        snprintf(err, errlen, "explanationURL is not a string");
    } else {
        free(a->explanation_url);
        a->explanation_url = NULL;
        if (expl) {
            size_t n = json_string_length(expl);
            const char *s = json_string_value(expl);
            if (n > ARI_EXPLANATION_MAX) {
                n = ARI_EXPLANATION_MAX;
                while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
                    n--; /* cut at a character boundary */
            }
            if (!(a->explanation_url = strndup(s, n))) {
                json_decref(root);
                return -ENOMEM;
            }
        }
        a->window_start = ts;
        a->window_end = te;
        a->has_window = true;
        rc = 0;
    }
    json_decref(root);
    return rc;
}

static bool is_http_url(const char *s)
{
    return !strncasecmp(s, "http://", 7) || !strncasecmp(s, "https://", 8);
}

int cm_ari_directory_parse(const char *body, size_t len, char **url, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je), *ri;
    int rc = CM_EBADARG;

    *url = NULL;
    if (!root) {
        snprintf(err, errlen, "the ACME directory is not JSON: %s (line %d)", je.text, je.line);
        return CM_EBADARG;
    }
    ri = json_object_get(root, "renewalInfo");
    if (!json_is_object(root) || !ri) {
        snprintf(err, errlen,
                 "the ACME directory has no renewalInfo: the CA does not offer "
                 "renewal information (RFC 9773)");
    } else if (!json_is_string(ri) || !is_http_url(json_string_value(ri)) ||
               strpbrk(json_string_value(ri), "\r\n ") ||
               json_string_length(ri) != strlen(json_string_value(ri))) {
        snprintf(err, errlen, "the ACME directory's renewalInfo is not an http(s) URL");
    } else {
        rc = (*url = strdup(json_string_value(ri))) ? 0 : -ENOMEM;
    }
    json_decref(root);
    return rc;
}

/* ---- The client ---- */

struct waiter {
    struct waiter *next;
    cm_ari_cb cb;
    void *arg;
    char *sha256;
};

/* One certificate at one renewalInfo URL. */
struct entry {
    struct entry *prev, *next; /* oldest fetch first */
    char *url;                 /* {renewalInfo}/{id}: the key */
    char *cert_id;
    struct cm_ari *ans; /* the last answer, NULL before the first */
    struct cm_httpc_xfer *xfer;
    struct waiter *waiters;
};

/* A lookup waiting for its directory. */
struct dir_wait {
    struct dir_wait *next;
    cm_ari_cb cb;
    void *arg;
    char *cert_id, *sha256, *ca_file;
    uint64_t timeout_ms;
};

struct dir {
    struct dir *next;
    struct cm_ari_client *c;
    char *url;
    char *renewal_url; /* once known */
    char *error;       /* the last failure, retried from retry_at */
    int64_t retry_at;
    struct cm_httpc_xfer *xfer;
    struct dir_wait *waiting;
};

struct cm_ari_client {
    struct cm_httpc *http;
    size_t max_entries, nentries, requests, ndirs;
    struct entry *head, *tail;
    struct dir *dirs;
    bool freeing;
};

int cm_ari_client_new(struct cm_httpc *http, size_t max_entries, struct cm_ari_client **out)
{
    struct cm_ari_client *c;

    if (!http || !out)
        return -EINVAL;
    if (!(c = calloc(1, sizeof(*c))))
        return -ENOMEM;
    c->http = http;
    c->max_entries = max_entries ? max_entries : 4096;
    *out = c;
    return 0;
}

void cm_ari_client_stats(const struct cm_ari_client *c, size_t *entries, size_t *requests)
{
    *entries = c ? c->nentries : 0;
    *requests = c ? c->requests : 0;
}

/* An ARI record that only says what went wrong. NULL when out of memory. */
static struct cm_ari *ari_error(const char *url, const char *cert_id, const char *sha256,
                                const char *why)
{
    struct cm_ari *a = calloc(1, sizeof(*a));

    if (!a)
        return NULL;
    a->url = dup_or_null(url);
    a->cert_id = dup_or_null(cert_id);
    a->cert_sha256 = strdup(sha256 ? sha256 : "");
    a->error = strdup(why);
    a->fetched_at = (int64_t)time(NULL);
    a->next_poll = a->fetched_at;
    a->retry_after = -1;
    if (!a->cert_sha256 || !a->error || (url && !a->url) || (cert_id && !a->cert_id)) {
        cm_ari_free(a);
        return NULL;
    }
    return a;
}

/* A copy of an entry's answer for one waiter (whose leaf it names). */
static struct cm_ari *answer_for(const struct cm_ari *ans, const char *sha256)
{
    struct cm_ari *a = cm_ari_copy(ans);

    if (a) {
        free(a->cert_sha256);
        if (!(a->cert_sha256 = strdup(sha256 ? sha256 : ""))) {
            cm_ari_free(a);
            return NULL;
        }
    }
    return a;
}

static void entry_unlink(struct cm_ari_client *c, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void entry_append(struct cm_ari_client *c, struct entry *e)
{
    e->prev = c->tail;
    e->next = NULL;
    if (c->tail)
        c->tail->next = e;
    else
        c->head = e;
    c->tail = e;
}

static void entry_free(struct cm_ari_client *c, struct entry *e)
{
    entry_unlink(c, e);
    c->nentries--;
    cm_ari_free(e->ans);
    free(e->url);
    free(e->cert_id);
    free(e);
}

/* Keeps the cache within its bound: the oldest entries with nothing in flight go. */
static void entries_trim(struct cm_ari_client *c)
{
    struct entry *e = c->head, *next;

    for (; e && c->nentries > c->max_entries; e = next) {
        next = e->next;
        if (!e->xfer && !e->waiters)
            entry_free(c, e);
    }
}

static void on_info(const struct cm_httpc_result *r, void *arg)
{
    struct entry *e = arg;
    struct cm_ari *ans = calloc(1, sizeof(*ans));
    struct waiter *w = e->waiters;
    int64_t now = (int64_t)time(NULL), wait;
    char err[1024] = "", red[400];

    e->xfer = NULL;
    e->waiters = NULL;
    if (ans) {
        ans->url = strdup(e->url);
        ans->cert_id = strdup(e->cert_id);
        ans->fetched_at = now;
        ans->retry_after = r->retry_after_hdr_s;
        cm_httpc_redact(e->url, red, sizeof(red));
        if (r->curl_code != 0)
            snprintf(err, sizeof(err), "renewal information from %s: %s", red, r->error);
        else if (r->status != 200)
            snprintf(err, sizeof(err), "renewal information from %s: HTTP %ld%s", red, r->status,
                     r->status == 404 ? " (the CA does not know this certificate)" : "");
        else if (cm_ari_parse(r->body, r->body_len, ans, err, sizeof(err)) == -ENOMEM)
            snprintf(err, sizeof(err), "out of memory");
        if (err[0])
            ans->error = strdup(err);
        if (!ans->url || !ans->cert_id || (err[0] && !ans->error)) {
            cm_ari_free(ans);
            ans = NULL;
        }
    }
    if (ans) {
        if (ans->error)
            wait = ans->retry_after > ARI_ERROR_RETRY_S ? ans->retry_after : ARI_ERROR_RETRY_S;
        else
            wait = ans->retry_after < 0 ? ARI_POLL_DEFAULT_S : ans->retry_after;
        if (wait < ARI_POLL_MIN_S)
            wait = ARI_POLL_MIN_S;
        if (wait > ARI_POLL_MAX_S)
            wait = ARI_POLL_MAX_S;
        ans->next_poll = now + wait;
        cm_ari_free(e->ans);
        e->ans = ans;
        if (ans->error)
            cm_log_info("ari", "url=%s error=\"%s\" retry_in_s=%lld", red, ans->error,
                        (long long)wait);
    }
    while (w) {
        struct waiter *next = w->next;
        struct cm_ari *a = e->ans ? answer_for(e->ans, w->sha256) : NULL;
        w->cb(a, w->arg);
        free(w->sha256);
        free(w);
        w = next;
    }
}

static int waiter_add(struct waiter **list, cm_ari_cb cb, void *arg, const char *sha256)
{
    struct waiter *w = calloc(1, sizeof(*w)), **pp;

    if (!w || !(w->sha256 = strdup(sha256 ? sha256 : ""))) {
        free(w);
        return -ENOMEM;
    }
    w->cb = cb;
    w->arg = arg;
    for (pp = list; *pp; pp = &(*pp)->next)
        ;
    *pp = w;
    return 0;
}

/* The renewal information of cert_id at base: 1 with *out from the cache, 0 when cb will
 * run, or -ENOMEM. */
static int entry_get(struct cm_ari_client *c, const char *base, const char *cert_id,
                     const char *sha256, const char *ca_file, uint64_t timeout_ms, cm_ari_cb cb,
                     void *arg, struct cm_ari **out)
{
    size_t bl = strlen(base);
    bool slash = bl > 0 && base[bl - 1] == '/';
    size_t ul = bl + strlen(cert_id) + 2;
    char *url = malloc(ul);
    struct entry *e;
    int rc;

    if (!url)
        return -ENOMEM;
    snprintf(url, ul, "%s%s%s", base, slash ? "" : "/", cert_id);
    for (e = c->head; e; e = e->next)
        if (!strcmp(e->url, url))
            break;
    if (e && e->ans && !e->xfer && (int64_t)time(NULL) < e->ans->next_poll) {
        free(url);
        return (*out = answer_for(e->ans, sha256)) ? 1 : -ENOMEM;
    }
    if (!e) {
        if (!(e = calloc(1, sizeof(*e))) || !(e->cert_id = strdup(cert_id))) {
            free(e);
            free(url);
            return -ENOMEM;
        }
        e->url = url;
        url = NULL;
        entry_append(c, e);
        c->nentries++;
    }
    free(url);
    if ((rc = waiter_add(&e->waiters, cb, arg, sha256)) < 0)
        return rc;
    if (!e->xfer) {
        struct cm_httpc_req req = {.url = e->url,
                                   .headers =
                                       (const char *const[]){"Accept: application/json", NULL},
                                   .timeout_ms = timeout_ms ? timeout_ms : 1,
                                   .ca_file = ca_file};
        if ((rc = cm_httpc_request(c->http, &req, on_info, e, &e->xfer)) < 0) {
            struct waiter *w = e->waiters;
            char why[160];
            /* The request cannot start: a bad URL (checked at configuration) or memory. */
            e->waiters = w->next;
            snprintf(why, sizeof(why), "renewal information request cannot start: %s",
                     cm_strerror(rc));
            *out = ari_error(e->url, cert_id, sha256, why);
            free(w->sha256);
            free(w);
            return *out ? 1 : -ENOMEM;
        }
        c->requests++;
        /* Moved to the end: the entry least recently fetched is the first to go. */
        entry_unlink(c, e);
        entry_append(c, e);
        entries_trim(c);
    }
    return 0;
}

static void dir_wait_free(struct dir_wait *w)
{
    free(w->cert_id);
    free(w->sha256);
    free(w->ca_file);
    free(w);
}

static void on_directory(const struct cm_httpc_result *r, void *arg)
{
    struct dir *d = arg;
    struct cm_ari_client *c = d->c;
    struct dir_wait *w = d->waiting;
    char err[1024] = "", red[400];
    char *url = NULL;

    d->xfer = NULL;
    d->waiting = NULL;
    cm_httpc_redact(d->url, red, sizeof(red));
    if (r->curl_code != 0)
        snprintf(err, sizeof(err), "ACME directory %s: %s", red, r->error);
    else if (r->status != 200)
        snprintf(err, sizeof(err), "ACME directory %s: HTTP %ld", red, r->status);
    else if (cm_ari_directory_parse(r->body, r->body_len, &url, err, sizeof(err)) == -ENOMEM)
        snprintf(err, sizeof(err), "out of memory");
    free(d->error);
    d->error = NULL;
    if (url) {
        d->renewal_url = url;
    } else {
        d->error = strdup(err);
        d->retry_at = (int64_t)time(NULL) + ARI_DIR_RETRY_S;
        cm_log_info("ari", "directory=%s error=\"%s\"", red, err);
    }
    while (w) {
        struct dir_wait *next = w->next;
        struct cm_ari *a = NULL;
        int rc = 1;
        if (d->renewal_url && !c->freeing)
            rc = entry_get(c, d->renewal_url, w->cert_id, w->sha256, w->ca_file, w->timeout_ms,
                           w->cb, w->arg, &a);
        else
            a = ari_error(d->url, w->cert_id, w->sha256,
                          c->freeing ? "cancelled"
                          : d->error ? d->error
                                     : err);
        if (rc != 0)
            w->cb(a, w->arg); /* a NULL answer tells of memory running out */
        dir_wait_free(w);
        w = next;
    }
}

static int dir_lookup(struct cm_ari_client *c, const struct cm_ari_source *src, const char *cert_id,
                      const char *sha256, uint64_t timeout_ms, cm_ari_cb cb, void *arg,
                      struct cm_ari **out)
{
    struct dir *d;
    struct dir_wait *w, **pp;
    int rc;

    for (d = c->dirs; d; d = d->next)
        if (!strcmp(d->url, src->directory))
            break;
    if (d && d->renewal_url)
        return entry_get(c, d->renewal_url, cert_id, sha256, src->ca_file, timeout_ms, cb, arg,
                         out);
    if (d && d->error && !d->xfer && (int64_t)time(NULL) < d->retry_at)
        return (*out = ari_error(d->url, cert_id, sha256, d->error)) ? 1 : -ENOMEM;
    if (!d) {
        if (c->ndirs >= ARI_DIR_MAX)
            return (*out = ari_error(src->directory, cert_id, sha256,
                                     "too many ACME directories (at most 256)"))
                       ? 1
                       : -ENOMEM;
        if (!(d = calloc(1, sizeof(*d))) || !(d->url = strdup(src->directory))) {
            free(d);
            return -ENOMEM;
        }
        d->c = c;
        d->next = c->dirs;
        c->dirs = d;
        c->ndirs++;
    }
    if (!(w = calloc(1, sizeof(*w))) || !(w->cert_id = strdup(cert_id)) ||
        !(w->sha256 = strdup(sha256 ? sha256 : "")) ||
        (src->ca_file && !(w->ca_file = strdup(src->ca_file)))) {
        if (w)
            dir_wait_free(w);
        return -ENOMEM;
    }
    w->cb = cb;
    w->arg = arg;
    w->timeout_ms = timeout_ms;
    if (!d->xfer) {
        struct cm_httpc_req req = {.url = d->url,
                                   .headers =
                                       (const char *const[]){"Accept: application/json", NULL},
                                   .timeout_ms = timeout_ms ? timeout_ms : 1,
                                   .ca_file = src->ca_file};
        if ((rc = cm_httpc_request(c->http, &req, on_directory, d, &d->xfer)) < 0) {
            char why[160];
            snprintf(why, sizeof(why), "ACME directory request cannot start: %s", cm_strerror(rc));
            dir_wait_free(w);
            return (*out = ari_error(d->url, cert_id, sha256, why)) ? 1 : -ENOMEM;
        }
        c->requests++;
    }
    for (pp = &d->waiting; *pp; pp = &(*pp)->next)
        ;
    *pp = w;
    return 0;
}

int cm_ari_lookup(struct cm_ari_client *c, const struct cm_ari_source *src,
                  const struct cm_cert *leaf, uint64_t timeout_ms, cm_ari_cb cb, void *arg,
                  struct cm_ari **out)
{
    char id[CM_ARI_ID_MAX], err[200];
    const char *sha256 = leaf && leaf->sha256 ? leaf->sha256 : "";

    if (!c || !src || !cb || !out || c->freeing || (!src->ari_url == !src->directory))
        return -EINVAL;
    *out = NULL;
    if (cm_ari_cert_id(leaf, id, sizeof(id), err, sizeof(err)) < 0)
        return (*out = ari_error(src->ari_url ? src->ari_url : src->directory, NULL, sha256, err))
                   ? 1
                   : -ENOMEM;
    if (src->ari_url)
        return entry_get(c, src->ari_url, id, sha256, src->ca_file, timeout_ms, cb, arg, out);
    return dir_lookup(c, src, id, sha256, timeout_ms, cb, arg, out);
}

int cm_ari_peek(struct cm_ari_client *c, const struct cm_ari_source *src,
                const struct cm_cert *leaf, struct cm_ari **out, bool *due)
{
    char id[CM_ARI_ID_MAX], err[200], *url;
    const char *base = src ? src->ari_url : NULL;
    struct entry *e;
    size_t bl, ul;

    *out = NULL;
    *due = true;
    if (!c || !src || c->freeing)
        return 0;
    if (!base && src->directory)
        for (struct dir *d = c->dirs; d && !base; d = d->next)
            if (!strcmp(d->url, src->directory))
                base = d->renewal_url;
    if (!base || cm_ari_cert_id(leaf, id, sizeof(id), err, sizeof(err)) < 0)
        return 0;
    bl = strlen(base);
    ul = bl + strlen(id) + 2;
    if (!(url = malloc(ul)))
        return -ENOMEM;
    snprintf(url, ul, "%s%s%s", base, bl > 0 && base[bl - 1] == '/' ? "" : "/", id);
    for (e = c->head; e; e = e->next)
        if (!strcmp(e->url, url))
            break;
    free(url);
    if (!e || !e->ans)
        return 0;
    *due = !e->xfer && (int64_t)time(NULL) >= e->ans->next_poll;
    return (*out = answer_for(e->ans, leaf->sha256)) ? 1 : -ENOMEM;
}

void cm_ari_client_free(struct cm_ari_client *c)
{
    if (!c)
        return;
    c->freeing = true;
    /* Cancelling runs each callback at once; the directories' waiters get "cancelled". */
    for (struct dir *d = c->dirs; d; d = d->next)
        if (d->xfer)
            cm_httpc_cancel(d->xfer);
    for (struct entry *e = c->head; e; e = e->next)
        if (e->xfer)
            cm_httpc_cancel(e->xfer);
    while (c->dirs) {
        struct dir *d = c->dirs;
        c->dirs = d->next;
        free(d->url);
        free(d->renewal_url);
        free(d->error);
        free(d);
    }
    while (c->head)
        entry_free(c, c->head);
    free(c);
}
