/* The daemon's HTTP endpoints, served by the httpd module on the daemon's loop:
 *   GET /metrics          every target's cached result (probing keeps its own schedule)
 *   GET /probe?target=    one on-demand probe, answered with that probe's metrics
 *   GET /api/v1/targets   every target's report, the `check --json` object schema
 *   GET /healthz          200 while the loop runs and a configuration is loaded */
#include "daemon_int.h"
#include "certmon/analysis/analyze.h"
#include "certmon/base/error.h"
#include "certmon/base/log.h"
#include "certmon/analysis/metrics.h"
#include "certmon/analysis/report.h"

#include <curl/curl.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* On-demand probes in flight at once; more get 503 (each costs a connection and a handshake,
 * and /probe must not become a way to make the daemon open thousands). */
#define MAX_WEBPROBES 16

struct webprobe {
    struct daemon *d;
    struct cm_httpd_req *req;
    struct gen *gen; /* referenced: the target's strings and policy live in its config */
    struct cm_target t;
    const struct cm_policy *policy;
    const struct cm_labels *labels; /* configured target's labels, or NULL */
    char *name;                     /* the `target` label */
    struct cm_probe *probe;
    bool gone; /* the client went away: the result is dropped */
    struct webprobe *next;
};

static void *view_build(json_t *report, void *arg)
{
    (void)arg;
    return cm_metrics_view_new(report);
}

static void view_free(void *v)
{
    cm_metrics_view_free(v);
}

const struct cm_state_view_hooks cm__web_view_hooks = {view_build, view_free, NULL};

static int cmp_entry(const void *a, const void *b)
{
    return strcmp((*(struct cm_state_entry *const *)a)->name,
                  (*(struct cm_state_entry *const *)b)->name);
}

/* The entries sorted by name, so that outputs are stable. Caller frees. */
static struct cm_state_entry **sorted_entries(struct daemon *d, size_t *n)
{
    struct cm_state_entry *const *es;

    /* Reports restored at start and not checked yet are checked now: what is served is
     * JSON, and every entry has its view. */
    cm_state_check_reports(d->state, SIZE_MAX);
    es = cm_state_entries(d->state, n);
    struct cm_state_entry **v = malloc((*n ? *n : 1) * sizeof(*v));

    if (!v)
        return NULL;
    memcpy(v, es, *n * sizeof(*v));
    qsort(v, *n, sizeof(*v), cmp_entry);
    return v;
}

static void text(struct cm_httpd_req *req, unsigned status, const char *body)
{
    cm_httpd_respond(req, status, "text/plain; charset=utf-8", body, strlen(body), 0);
}

/* One scrape of /metrics, streamed: the views it started with are held (referenced) until
 * the body is out, and rendered 256 KiB at a time, so that 10,000 targets' 40 MB never exist
 * at once. */
struct scrape {
    struct cm_metrics_view **views;
    size_t n;
    struct cm_metrics_notifier *notifiers; /* names copied: a reload may free the originals */
    size_t nnotifiers;
    struct cm_metrics_self self;
    struct cm_metrics_http http; /* self.http points here */
    struct cm_metrics_process proc;
    struct cm_metrics_cursor cur;
    struct cm_metrics_buf buf;
    size_t off;
    bool end;
};

#define SCRAPE_PIECE (256 * 1024)

static ssize_t scrape_read(void *arg, char *out, size_t max)
{
    struct scrape *sc = arg;
    size_t k;

    while (sc->off == sc->buf.len) {
        int rc;
        if (sc->end)
            return 0;
        sc->buf.len = 0;
        sc->off = 0;
        rc = cm_metrics_render_some((const struct cm_metrics_view *const *)sc->views, sc->n,
                                    &sc->self, &sc->proc, &sc->cur, SCRAPE_PIECE, &sc->buf);
        if (rc < 0)
            return -1;
        sc->end = rc == 0;
    }
    k = sc->buf.len - sc->off < max ? sc->buf.len - sc->off : max;
    memcpy(out, sc->buf.data + sc->off, k);
    sc->off += k;
    return (ssize_t)k;
}

static void scrape_done(void *arg)
{
    struct scrape *sc = arg;

    for (size_t i = 0; i < sc->n; i++)
        cm_metrics_view_free(sc->views[i]);
    free(sc->views);
    for (size_t i = 0; i < sc->nnotifiers; i++)
        free((char *)sc->notifiers[i].name);
    free(sc->notifiers);
    cm_metrics_buf_free(&sc->buf);
    free(sc);
}

static void render_metrics(struct daemon *d, struct cm_httpd_req *req)
{
    struct scrape *sc = calloc(1, sizeof(*sc));
    struct cm_state_entry **es = NULL;
    size_t n = 0;

    if (!sc || !(es = sorted_entries(d, &n)) ||
        !(sc->views = calloc(n ? n : 1, sizeof(*sc->views)))) {
        free(es);
        free(sc);
        text(req, 500, "out of memory\n");
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (es[i]->view)
            sc->views[sc->n++] = cm_metrics_view_ref(es[i]->view);
    free(es);
    sc->self = (struct cm_metrics_self){
        .probes_success = d->probes_ok,
        .probes_failure = d->probes_failed,
        .reload_success = d->reload_ok,
        .reload_time = d->reload_at,
        .version = CERTMON_VERSION,
        .gnutls = gnutls_check_version(NULL),
        .libuv = uv_version_string(),
        .libcurl = curl_version_info(CURLVERSION_NOW)->version,
        .targets = d->gen->cfg->target_count,
        .http = &sc->http,
    };
    sc->http = (struct cm_metrics_http){
        .evicted_head_timeout = d->http_counters.evicted_head_timeout,
        .evicted_per_client = d->http_counters.evicted_per_client,
        .evicted_full = d->http_counters.evicted_full,
        .refused_per_client = d->http_counters.refused_per_client,
    };
    if (d->notify) {
        size_t nn = cm_notify_stats(d->notify, NULL, 0);
        struct cm_notify_stats *st = calloc(nn ? nn : 1, sizeof(*st));
        sc->notifiers = calloc(nn ? nn : 1, sizeof(*sc->notifiers));
        if (st && sc->notifiers) {
            cm_notify_stats(d->notify, st, nn);
            for (size_t i = 0; i < nn; i++) {
                struct cm_metrics_notifier *m = &sc->notifiers[sc->nnotifiers];
                if (!(m->name = strdup(st[i].name ? st[i].name : "")))
                    break;
                m->sent = st[i].sent;
                m->failed = st[i].failed;
                m->dropped = st[i].dropped;
                m->queued = st[i].queued;
                sc->nnotifiers++;
            }
        }
        free(st);
        sc->self.notifiers = sc->notifiers;
        sc->self.notifier_count = sc->nnotifiers;
    }
    sc->cur = (struct cm_metrics_cursor)CM_METRICS_CURSOR_INIT;
    cm_metrics_process_read(&sc->proc);
    cm_httpd_respond_stream(req, 200, CM_METRICS_CONTENT_TYPE, scrape_read, scrape_done, sc);
}

/* Scrapes are paced: one render starts at most every METRICS_SPACING_MS; requests arriving
 * faster wait their turn (at most METRICS_QUEUE of them, then 503). A render of 10,000
 * targets costs ~30 ms of loop time, so a scraper asking nonstop would otherwise take the
 * loop from the probes; Prometheus servers scraping every few seconds never wait. */
#define METRICS_SPACING_MS 250
#define METRICS_QUEUE 8

struct scrape_wait {
    struct daemon *d;
    struct cm_httpd_req *req;
    struct scrape_wait *next;
};

static void pace_arm(struct daemon *d);

static void on_pace(uv_timer_t *t)
{
    struct daemon *d = t->data;
    struct scrape_wait *w = d->scrape_queue;

    if (!w)
        return;
    d->scrape_queue = w->next;
    d->scrape_queued--;
    d->scrape_next = uv_now(d->loop) + METRICS_SPACING_MS;
    cm_httpd_on_cancel(w->req, NULL, NULL);
    render_metrics(d, w->req);
    free(w);
    pace_arm(d);
}

static void pace_arm(struct daemon *d)
{
    uint64_t now = uv_now(d->loop);

    if (d->scrape_queue)
        uv_timer_start(&d->scrape_timer, on_pace, d->scrape_next > now ? d->scrape_next - now : 0,
                       0);
}

static void on_scrape_gone(struct cm_httpd_req *req, void *arg)
{
    struct scrape_wait *w = arg, **pp;
    struct daemon *d = w->d;

    (void)req;
    for (pp = &d->scrape_queue; *pp && *pp != w; pp = &(*pp)->next)
        ;
    if (*pp) {
        *pp = w->next;
        d->scrape_queued--;
    }
    free(w);
}

static void serve_metrics(struct daemon *d, struct cm_httpd_req *req)
{
    uint64_t now = uv_now(d->loop);
    struct scrape_wait *w, **pp;

    if (!d->scrape_queue && now >= d->scrape_next) {
        d->scrape_next = now + METRICS_SPACING_MS;
        render_metrics(d, req);
        return;
    }
    if (d->scrape_queued >= METRICS_QUEUE || !(w = calloc(1, sizeof(*w)))) {
        text(req, 503, "too many scrapes waiting; try again\n");
        return;
    }
    w->d = d;
    w->req = req;
    for (pp = &d->scrape_queue; *pp; pp = &(*pp)->next)
        ;
    *pp = w;
    d->scrape_queued++;
    cm_httpd_on_cancel(req, on_scrape_gone, w);
    pace_arm(d);
}

static void serve_targets(struct daemon *d, struct cm_httpd_req *req)
{
    size_t n, len = 4, off = 0;
    struct cm_state_entry **es = sorted_entries(d, &n);
    char *body;

    if (!es) {
        text(req, 500, "out of memory\n");
        return;
    }
    for (size_t i = 0; i < n; i++)
        len += es[i]->report ? strlen(es[i]->report) + 2 : 0;
    if (!(body = malloc(len + 1))) {
        free(es);
        text(req, 500, "out of memory\n");
        return;
    }
    body[off++] = '[';
    for (size_t i = 0, k = 0; i < n; i++) {
        size_t l;
        if (!es[i]->report)
            continue;
        if (k++)
            body[off++] = ',';
        body[off++] = '\n';
        l = strlen(es[i]->report);
        memcpy(body + off, es[i]->report, l);
        off += l;
    }
    body[off++] = '\n';
    body[off++] = ']';
    body[off++] = '\n';
    free(es);
    cm_httpd_respond(req, 200, "application/json", body, off, 1);
}

/* ---- /probe ---- */

static void webprobe_free(struct webprobe *w)
{
    struct webprobe **pp;

    for (pp = &w->d->webprobes; *pp && *pp != w; pp = &(*pp)->next)
        ;
    if (*pp)
        *pp = w->next;
    w->d->nwebprobes--;
    cm_target_clear(&w->t);
    free(w->name);
    cm__gen_unref(w->gen);
    free(w);
}

static void on_webprobe(struct cm_probe_result *res, void *arg)
{
    struct webprobe *w = arg;
    struct cm_findings f = {0};
    struct cm_metrics_view *v = NULL;
    struct cm_metrics_buf out = {0};
    json_t *report = NULL, *labels;
    time_t now = time(NULL);

    w->probe = NULL;
    if (w->gone) {
        cm_probe_result_free(res);
        webprobe_free(w);
        return;
    }
    if (cm_analyze(res, w->policy, now, &f) == 0 && (report = cm_report_json(res, &f, now)) &&
        !json_object_set_new(report, "target", json_string(w->name)) &&
        (labels = json_object()) && !json_object_set_new(report, "labels", labels)) {
        for (size_t i = 0; w->labels && i < w->labels->count; i++)
            json_object_set_new(labels, w->labels->keys[i], json_string(w->labels->values[i]));
        v = cm_metrics_view_new(report);
    }
    if (v && cm_metrics_render((const struct cm_metrics_view *const *)&v, 1, NULL, NULL, &out) == 0)
        cm_httpd_respond(w->req, 200, CM_METRICS_CONTENT_TYPE, out.data, out.len, 1);
    else {
        cm_metrics_buf_free(&out);
        text(w->req, 500, "out of memory\n");
    }
    cm_log_debug("web", "probe target=%s peer=%s error=%s", w->name, cm_httpd_peer(w->req),
                 res->error_message ? res->error_message : "none");
    cm_metrics_view_free(v);
    json_decref(report);
    cm_findings_clear(&f);
    cm_probe_result_free(res);
    webprobe_free(w);
}

static void on_webprobe_gone(struct cm_httpd_req *req, void *arg)
{
    struct webprobe *w = arg;

    (void)req;
    w->gone = true;
    if (w->probe)
        cm_probe_cancel(w->probe); /* on_webprobe runs now and frees w */
}

/* The configured endpoint target that spec (and sni) names: by configured name, or by the
 * same host and port (and SNI, when given). */
static const struct cm_config_target *find_configured(struct daemon *d, const char *spec,
                                                      const struct cm_target *parsed,
                                                      const char *sni)
{
    const struct cm_config *cfg = d->gen->cfg;
    const struct cm_config_target *ct = cm_config_find(cfg, spec);

    if (ct && ct->kind == CM_TARGET_ENDPOINT)
        return ct;
    if (!parsed)
        return NULL;
    for (size_t i = 0; i < cfg->target_count; i++) {
        ct = &cfg->targets[i];
        if (ct->kind != CM_TARGET_ENDPOINT || ct->ep.port != parsed->port ||
            strcasecmp(ct->ep.host, parsed->host) != 0)
            continue;
        if (sni && (!ct->ep.sni || strcasecmp(ct->ep.sni, sni) != 0))
            continue;
        return ct;
    }
    return NULL;
}

static void serve_probe(struct daemon *d, struct cm_httpd_req *req)
{
    const char *spec = cm_httpd_query(req, "target"), *sni = cm_httpd_query(req, "sni");
    const struct cm_config_target *ct;
    struct cm_target parsed;
    char err[256], msg[400];
    bool have_parsed;
    struct webprobe *w;
    uint64_t timeout;

    if (!spec || !*spec) {
        text(req, 400, "missing parameter: target=host[:port] (and optionally sni=NAME)\n");
        return;
    }
    have_parsed = cm_target_parse(spec, CM_DEFAULT_PORT, sni && *sni ? sni : NULL, &parsed, err,
                                  sizeof(err)) == 0;
    ct = find_configured(d, spec, have_parsed ? &parsed : NULL, sni && *sni ? sni : NULL);
    if (!ct && !d->gen->cfg->allow_any_target) {
        cm_target_clear(&parsed);
        snprintf(msg, sizeof(msg),
                 "target '%s' is not configured (set metrics.allow_any_target = true to probe "
                 "any target)\n",
                 spec);
        text(req, 403, msg);
        return;
    }
    if (!ct && !have_parsed) {
        snprintf(msg, sizeof(msg), "bad target '%s': %s\n", spec, err);
        text(req, 400, msg);
        return;
    }
    if (d->nwebprobes >= MAX_WEBPROBES) {
        cm_target_clear(&parsed);
        text(req, 503, "too many probes in flight; try again\n");
        return;
    }
    if (!(w = calloc(1, sizeof(*w)))) {
        cm_target_clear(&parsed);
        text(req, 500, "out of memory\n");
        return;
    }
    w->d = d;
    w->req = req;
    w->gen = d->gen;
    d->gen->refs++;
    d->nwebprobes++;
    w->next = d->webprobes;
    d->webprobes = w;
    if (ct) {
        cm_target_clear(&parsed);
        w->policy = &ct->policy;
        w->labels = &ct->labels;
        timeout = ct->timeout_ms;
        if (cm_target_copy(&w->t, &ct->ep) < 0 || !(w->name = strdup(ct->name)))
            goto nomem;
    } else {
        w->t = parsed; /* ours now */
        w->t.starttls = cm_starttls_for_port(w->t.port);
        w->policy = &d->gen->cfg->policy;
        timeout = d->gen->cfg->timeout_ms;
        if (!(w->name = strdup(parsed.name)))
            goto nomem;
    }
    cm_httpd_on_cancel(req, on_webprobe_gone, w);
    if (cm_probe_start(&(struct cm_probe_env){d->loop, w->gen->tls, d->resolver}, &w->t, timeout,
                       on_webprobe, w, &w->probe) < 0)
        goto nomem;
    return;
nomem:
    cm_httpd_on_cancel(req, NULL, NULL);
    webprobe_free(w);
    text(req, 500, "out of memory\n");
}

/* ---- Routing ---- */

static void on_request(struct cm_httpd_req *req, const char *path, void *arg)
{
    struct daemon *d = arg;

    if (!strcmp(path, "/metrics"))
        serve_metrics(d, req);
    else if (!strcmp(path, "/probe"))
        serve_probe(d, req);
    else if (!strcmp(path, "/api/v1/targets"))
        serve_targets(d, req);
    else if (!strcmp(path, "/healthz"))
        text(req, 200, "ok\n");
    else if (!strcmp(path, "/"))
        text(req, 200,
             "certmon " CERTMON_VERSION "\n/metrics /probe?target=host:port /api/v1/targets "
             "/healthz\n");
    else
        text(req, 404, "not found: try /metrics, /probe?target=host:port, /api/v1/targets or "
                       "/healthz\n");
}

int cm__web_start(struct daemon *d, const struct cm_config *cfg, char *err, size_t errlen)
{
    struct cm_httpd_opts o = {
        .listen = (const char *const *)cfg->listen,
        .listen_count = cfg->listen_count,
        .tls_cert = cfg->tls_cert,
        .tls_key = cfg->tls_key,
        .client_ca = cfg->client_ca,
        .max_connections = cfg->max_connections,
        .max_per_client = cfg->max_per_client,
        .head_timeout_ms = cfg->head_timeout_ms,
        .counters = &d->http_counters,
    };
    int rc;

    if (cfg->listen_count == 0)
        return 0;
    if (!d->scrape_timer_init) {
        uv_timer_init(d->loop, &d->scrape_timer);
        d->scrape_timer.data = d;
        d->scrape_timer_init = true;
    }
    if ((rc = cm_httpd_start(d->loop, &o, on_request, d, &d->httpd, err, errlen)) < 0)
        return rc;
    for (size_t i = 0; i < cfg->listen_count; i++)
        cm_log_info("web", "listen=%s tls=%s client_ca=%s", cfg->listen[i],
                    cfg->tls_cert ? "yes" : "no", cfg->client_ca ? "yes" : "no");
    return 0;
}

void cm__web_stop(struct daemon *d)
{
    /* Pending requests' cancel callbacks cancel their probes, which free themselves. */
    cm_httpd_close(d->httpd); /* queued scrapes are cancelled: on_scrape_gone frees them */
    d->httpd = NULL;
    if (d->scrape_timer_init)
        uv_timer_stop(&d->scrape_timer);
}

void cm__web_close(struct daemon *d)
{
    cm__web_stop(d);
    if (d->scrape_timer_init) {
        uv_close((uv_handle_t *)&d->scrape_timer, NULL);
        d->scrape_timer_init = false;
    }
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

bool cm__web_same(const struct cm_config *a, const struct cm_config *b)
{
    if (a->listen_count != b->listen_count || !same_str(a->tls_cert, b->tls_cert) ||
        !same_str(a->tls_key, b->tls_key) || !same_str(a->client_ca, b->client_ca) ||
        a->head_timeout_ms != b->head_timeout_ms || a->max_connections != b->max_connections ||
        a->max_per_client != b->max_per_client)
        return false;
    for (size_t i = 0; i < a->listen_count; i++)
        if (strcmp(a->listen[i], b->listen[i]) != 0)
            return false;
    return true;
}
