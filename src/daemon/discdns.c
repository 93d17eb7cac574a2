/* Discovery (include/certmon/daemon/discovery.h), the DNS kinds: a `srv` or `mx` source looks
 * its name up through c-ares on the loop (probe/dnsdisc.h), turns the answer into targets with
 * cm_config_discover as a one-group file_sd document of "host:port" strings, and hands them to
 * cm_disc_source_update like a file does. discovery.c calls the cm__discdns_ functions for
 * every source whose kind is not files. */
#include "certmon/daemon/discovery.h"
#include "certmon/base/error.h"
#include "certmon/base/log.h"
#include "certmon/config/filesd.h"
#include "certmon/probe/dnsdisc.h"
#include "certmon/probe/resolve.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A TTL above this does not hold the next lookup back any longer: a record set with a TTL of
 * a week still gets looked at daily. */
#define MAX_TTL_MS (86400u * 1000u)

struct dsrc {
    struct cm_disc_source *src;
    const struct cm_config *cfg;          /* of the discovery (referenced there) */
    const struct cm_config_discovery *cd; /* cfg->discovery[src->index] */
    uv_loop_t *loop;
    char *label; /* "srv:NAME" or "mx:NAME": the origin of its targets, the `file` label */
    struct cm_resolver *resolver; /* its own, made at start (reads resolv.conf then) */
    struct cm_dnsdisc_req *req;   /* the lookup in flight, or NULL */
    uv_timer_t timer;             /* the next lookup */
    bool timer_init;
    /* The last good answer as a document: a reload turns it into targets anew, and an answer
     * that says the same applies nothing. */
    struct cm_sd_doc doc;
    bool have_doc;
    uint64_t errors;      /* lookups that failed */
    int64_t last_success; /* Unix seconds; 0: none */
    bool valid;           /* the last lookup was good */
};

int cm__discdns_init(struct cm_disc_source *src, const struct cm_config_discovery *cd)
{
    struct dsrc *ds = calloc(1, sizeof(*ds));

    if (!ds)
        return -ENOMEM;
    ds->src = src;
    ds->cfg = cm__disc_config(src);
    ds->cd = cd;
    ds->loop = cm__disc_loop(src);
    const char *kind = cd->kind == CM_DISCOVERY_MX ? "mx" : "srv";
    if (asprintf(&ds->label, "%s:%s", kind, cd->dns_name) < 0) {
        free(ds);
        return -ENOMEM;
    }
    src->impl = ds;
    return 0;
}

void cm__discdns_free(struct cm_disc_source *src)
{
    struct dsrc *ds = src->impl;

    if (!ds)
        return;
    cm_sd_doc_clear(&ds->doc);
    free(ds->label);
    free(ds);
    src->impl = NULL;
}

/* The answer as a file_sd document: one group of "host:port" strings (an mx source's port
 * instead of 25), no labels (the source's labels and keys are its targets' defaults). Returns
 * 0 or -ENOMEM. */
static int doc_of(const struct dsrc *ds, const struct cm_dnsdisc_list *l, struct cm_sd_doc *doc)
{
    struct cm_sd_group *g;

    memset(doc, 0, sizeof(*doc));
    if (!(doc->groups = calloc(1, sizeof(*doc->groups))))
        return -ENOMEM;
    doc->count = 1;
    g = &doc->groups[0];
    g->targets = calloc(l->count ? l->count : 1, sizeof(*g->targets));
    g->target_lines = calloc(l->count ? l->count : 1, sizeof(*g->target_lines));
    if (!g->targets || !g->target_lines) {
        cm_sd_doc_clear(doc);
        return -ENOMEM;
    }
    for (size_t i = 0; i < l->count; i++) {
        unsigned port = ds->cd->kind == CM_DISCOVERY_MX ? ds->cd->port : l->targets[i].port;
        if (asprintf(&g->targets[i], "%s:%u", l->targets[i].host, port) < 0) {
            g->targets[i] = NULL;
            cm_sd_doc_clear(doc);
            return -ENOMEM;
        }
        g->target_count++;
    }
    doc->targets = g->target_count;
    return 0;
}

static bool doc_same(const struct cm_sd_doc *a, const struct cm_sd_doc *b)
{
    const struct cm_sd_group *x = &a->groups[0], *y = &b->groups[0];

    if (x->target_count != y->target_count)
        return false;
    for (size_t i = 0; i < x->target_count; i++)
        if (strcmp(x->targets[i], y->targets[i]))
            return false;
    return true;
}

/* doc's targets under the current configuration, applied as the source's whole list. Returns
 * 0, or a negative code with the reason logged and nothing applied. */
static int apply_doc(struct dsrc *ds, const struct cm_sd_doc *doc)
{
    struct cm_disc_source *src = ds->src;
    struct cm_config_errors errs = {0};
    struct cm_config_target *v = NULL;
    struct cm_gen_targets *list;
    size_t n = 0;
    int rc;

    if ((rc = cm_config_discover(ds->cfg, src->index, ds->label, doc, &v, &n, &errs)) < 0) {
        for (size_t m = 0; m < errs.count && m < 10; m++)
            cm_log_warn("discovery", "%s", errs.msgs[m]);
        cm_config_errors_clear(&errs);
        return rc;
    }
    if (!(list = cm_gen_targets_new(v, n)))
        return -ENOMEM;
    rc = cm_disc_source_update(src, &list, 1, NULL);
    cm_gen_targets_unref(list);
    return rc;
}

static void set_error(struct dsrc *ds, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A failed lookup: the previous targets stay, the reason is the source's last error. */
static void set_error(struct dsrc *ds, const char *fmt, ...)
{
    struct cm_disc_source *src = ds->src;
    va_list ap;
    char *msg;
    int rc;

    ds->errors++;
    ds->valid = false;
    va_start(ap, fmt);
    rc = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (rc < 0)
        msg = NULL;
    cm_log_warn("discovery", "source=%s %s %s; its %zu targets stay as they were", src->name,
                ds->label, msg ? msg : "failed", src->applied);
    free(src->last_error);
    src->last_error = msg;
}

static void on_timer(uv_timer_t *t);

/* The next lookup after delay_ms. */
static void schedule(struct dsrc *ds, uint64_t delay_ms)
{
    uv_timer_start(&ds->timer, on_timer, delay_ms, 0);
}

static void on_answer(int status, const char *message, struct cm_dnsdisc_list *list, void *arg)
{
    struct dsrc *ds = arg;
    struct cm_disc_source *src = ds->src;
    uint64_t next = ds->cd->refresh_ms;
    struct cm_sd_doc doc;
    int rc;

    ds->req = NULL;
    if (status == -ECANCELED) {
        /* The resolver closed under it: only when the source closes. */
        return;
    }
    if (status < 0) {
        set_error(ds, "lookup failed: %s (%s)", message, cm_err_name(status));
        schedule(ds, next);
        return;
    }
    if (message[0])
        cm_log_warn("discovery", "source=%s %s %s", src->name, ds->label, message);
    /* Asking again before the TTL runs out would only get a cache's copy of the same. */
    uint64_t ttl_ms = (uint64_t)list->ttl * 1000u;
    if (ttl_ms > MAX_TTL_MS)
        ttl_ms = MAX_TTL_MS;
    if (ttl_ms > next)
        next = ttl_ms;
    rc = doc_of(ds, list, &doc);
    cm_dnsdisc_list_free(list);
    if (rc < 0) {
        set_error(ds, "out of memory taking the answer in");
        schedule(ds, next);
        return;
    }
    if (ds->have_doc && doc_same(&doc, &ds->doc)) {
        /* The same targets: nothing to apply; only the error (if any) clears. */
        cm_sd_doc_clear(&doc);
    } else if ((rc = apply_doc(ds, &doc)) < 0) {
        cm_sd_doc_clear(&doc);
        set_error(ds, "answer not applied: %s",
                  rc == -ENOMEM ? "out of memory" : "its targets do not fit the source's keys");
        schedule(ds, next);
        return;
    } else {
        cm_sd_doc_clear(&ds->doc);
        ds->doc = doc;
        ds->have_doc = true;
        if (doc.targets == 0)
            cm_log_info("discovery",
                        "source=%s %s targets=0: the records say the service is not offered",
                        src->name, ds->label);
        else
            cm_log_info("discovery", "source=%s %s targets=%zu resolved", src->name, ds->label,
                        doc.targets);
    }
    ds->valid = true;
    ds->last_success = (int64_t)time(NULL);
    free(src->last_error);
    src->last_error = NULL;
    schedule(ds, next);
}

static void on_timer(uv_timer_t *t)
{
    struct dsrc *ds = t->data;
    int rc;

    if (ds->req)
        return;
    rc = cm_dnsdisc_start(ds->resolver,
                          ds->cd->kind == CM_DISCOVERY_MX ? CM_DNSDISC_MX : CM_DNSDISC_SRV,
                          ds->cd->dns_name, ds->cd->timeout_ms, on_answer, ds, &ds->req);
    if (rc < 0) {
        set_error(ds, "lookup not started: %s", cm_strerror(rc));
        schedule(ds, ds->cd->refresh_ms);
    }
}

void cm__discdns_take_over(struct cm_disc_source *src, struct cm_disc_source *prev)
{
    struct dsrc *ds = src->impl, *pds = prev ? prev->impl : NULL;

    /* Only the same question: another name (or another mx port) is another list. */
    if (!pds || !pds->have_doc || strcmp(pds->label, ds->label) || pds->cd->port != ds->cd->port)
        return;
    ds->doc = pds->doc;
    ds->have_doc = true;
    memset(&pds->doc, 0, sizeof(pds->doc));
    pds->have_doc = false;
    ds->errors = pds->errors;
    ds->last_success = pds->last_success;
    ds->valid = pds->valid;
    if (apply_doc(ds, &ds->doc) < 0)
        cm_log_warn("discovery",
                    "source=%s %s its targets are dropped: they do not fit the "
                    "new configuration",
                    src->name, ds->label);
}

void cm__discdns_start(struct cm_disc_source *src, const struct cm_config_discovery *cd)
{
    struct dsrc *ds = src->impl;
    char err[256];

    (void)cd; /* kept since init */
    int rc;

    uv_timer_init(ds->loop, &ds->timer);
    ds->timer.data = ds;
    ds->timer_init = true;
    cm__disc_handle_open(src);
    if ((rc = cm_resolver_new(ds->loop, &ds->resolver, err, sizeof(err))) < 0) {
        /* Nothing to look with: the source stays as it is, and says why. */
        set_error(ds, "no resolver: %s", err);
        return;
    }
    schedule(ds, 0);
}

void cm__discdns_close(struct cm_disc_source *src)
{
    struct dsrc *ds = src->impl;

    if (!ds)
        return;
    /* The lookup first: closing the resolver would call it back. */
    cm_dnsdisc_cancel(ds->req);
    ds->req = NULL;
    cm_resolver_close(ds->resolver);
    ds->resolver = NULL;
    if (ds->timer_init) {
        ds->timer.data = src;
        uv_close((uv_handle_t *)&ds->timer, cm__disc_handle_closed);
        ds->timer_init = false;
    }
}

size_t cm__discdns_nrows(const struct cm_disc_source *src)
{
    (void)src;
    return 2;
}

int cm__discdns_rows(const struct cm_disc_source *src, struct cm_metrics_discovery *v, size_t *k)
{
    const struct dsrc *ds = src->impl;

    /* The source's row, then its one question where a files source has its files. */
    v[*k] = (struct cm_metrics_discovery){.targets = src->applied};
    v[*k].source = strdup(src->name);
    (*k)++;
    v[*k] = (struct cm_metrics_discovery){
        .errors = ds->errors, .last_success = ds->last_success, .valid = ds->valid};
    v[*k].source = strdup(src->name);
    v[*k].file = strdup(ds->label);
    (*k)++;
    return v[*k - 2].source && v[*k - 1].source && v[*k - 1].file ? 0 : -ENOMEM;
}
