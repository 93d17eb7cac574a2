/* The daemon's HTTP endpoints, served by the httpd module on the daemon's loop:
 *   GET /metrics          every target's cached result (probing keeps its own schedule)
 *   GET /probe?target=    one on-demand probe, answered with that probe's metrics
 *   GET /api/v1/targets   every target's report, the `check --json` object schema
 *   GET /api/v1/targets/NAME/history   the target's certificate history (store.h), read on
 *                         the thread pool through a read-only connection
 *   GET /healthz          200 while the loop runs and a configuration is loaded
 *   GET /                 the status page (page.h), /target/{name} (with the certificate
 *                         history read and the page rendered on the thread pool when a state
 *                         database is kept), /badge/{name}.svg and /static/{style.css,app.js} */
#include "certmon/daemon/web.h"
#include "certmon/analysis/analyze.h"
#include "certmon/base/error.h"
#include "certmon/base/log.h"
#include "certmon/daemon/gen.h"
#include "certmon/http/httpd.h"
#include "certmon/notify/notify.h"
#include "certmon/probe/probe.h"
#include "certmon/probe/revocation.h"
#include "certmon/analysis/metrics.h"
#include "certmon/daemon/discovery.h"
#include "certmon/daemon/process.h"
#include "certmon/daemon/store.h"
#include "certmon/analysis/report.h"
#include "certmon/analysis/page.h"
#include "certmon/daemon/webassets.h"

#include <curl/curl.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* On-demand probes in flight at once; more get 503 (each costs a connection and a handshake,
 * and /probe must not become a way to make the daemon open thousands). */
#define MAX_WEBPROBES 16

/* History reads (the history API's and the detail pages') on the thread pool at once; more get
 * 503. The pool's threads also describe the probes' chains: a client asking for pages nonstop
 * may hold at most this many of them. */
#define MAX_HISTORY_READS 2

struct scrape_wait;

struct cm_web {
    uv_loop_t *loop;
    struct cm_resolver *resolver;
    cm_web_status_fn status; /* what the daemon shows: generation, state, counters */
    void *status_arg;
    struct cm_httpd *httpd;                 /* the listener, or NULL */
    struct cm_httpd_counters http_counters; /* the listener's guard; kept across restarts */
    struct webprobe *webprobes;             /* on-demand probes of /probe in flight */
    unsigned nwebprobes;
    uv_timer_t scrape_timer; /* paces /metrics renders */
    bool scrape_timer_init;  /* the timer is open (initialised and not yet closed) */
    bool closing;            /* cm_web_close ran: freed once the timer has closed and the last
                              * on-demand probe past cancelling has reported */
    uint64_t scrape_next;    /* loop time from which the next render may start */
    struct scrape_wait *scrape_queue;
    unsigned scrape_queued;
    unsigned nhistory; /* history reads, detail pages and /api/v1/targets answers on the thread
                        * pool: web is freed after them */
};

/* What the daemon shows now (a reload changes the generation, a shutdown the notifiers). */
static struct cm_web_status status(struct cm_web *web)
{
    struct cm_web_status st = {0};

    web->status(web->status_arg, &st);
    return st;
}

struct webprobe {
    struct cm_web *web;
    struct cm_httpd_req *req;
    struct cm_gen *gen; /* referenced: the target's strings and policy live in its config */
    struct cm_target t;
    const struct cm_policy *policy;
    const struct cm_labels *labels; /* configured target's labels, or NULL */
    char *name;                     /* the `target` label */
    struct cm_probe *probe;
    bool gone; /* the client went away: the result is dropped */
    struct webprobe *next;
};

/* What the web keeps beside each report: the metrics view and the status page's row. */
struct web_view {
    struct cm_metrics_view *metrics; /* NULL: the report has no string "target" */
    struct cm_page_row *row;
};

static void *view_build(json_t *report, const char *name, void *arg)
{
    struct web_view *v = calloc(1, sizeof(*v));

    (void)arg;
    if (!v)
        return NULL;
    v->metrics = cm_metrics_view_new(report);
    v->row = cm_page_row_new(report, name); /* the entry's name outlives its view */
    if (!v->metrics && !v->row) {
        free(v);
        return NULL;
    }
    return v;
}

static void view_free(void *p)
{
    struct web_view *v = p;

    if (!v)
        return;
    cm_metrics_view_free(v->metrics);
    cm_page_row_free(v->row);
    free(v);
}

const struct cm_state_view_hooks cm_web_view_hooks = {view_build, view_free, NULL};

struct cm_metrics_view *cm_web_view_metrics(void *view)
{
    return view ? ((struct web_view *)view)->metrics : NULL;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp((*(struct cm_state_entry *const *)a)->name,
                  (*(struct cm_state_entry *const *)b)->name);
}

/* The entries sorted by name, so that outputs are stable. Caller frees. */
static struct cm_state_entry **sorted_entries(struct cm_state *state, size_t *n)
{
    struct cm_state_entry *const *es;

    /* Reports restored at start and not checked yet are checked now: what is served is
     * JSON, and every entry has its view. */
    cm_state_check_reports(state, SIZE_MAX);
    es = cm_state_entries(state, n);
    struct cm_state_entry **v = malloc((*n ? *n : 1) * sizeof(*v));

    if (!v)
        return NULL;
    if (*n) /* an empty state may have no array at all: memcpy from NULL is undefined */
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
    struct cm_metrics_change *changes; /* target names copied, like the notifiers' */
    size_t nchanges;
    struct cm_metrics_discovery *disc; /* copies (cm_discovery_stats) */
    size_t ndisc;
    struct cm_metrics_self self;
    struct cm_metrics_http http; /* self.http points here */
    struct cm_metrics_revocation rev; /* self.revocation points here, when there is a checker */
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
    for (size_t i = 0; i < sc->nchanges; i++)
        free((char *)sc->changes[i].target);
    free(sc->changes);
    cm_discovery_stats_free(sc->disc, sc->ndisc);
    cm_metrics_buf_free(&sc->buf);
    free(sc);
}

/* The targets whose served leaf changed, for certmon_cert_changes_total (es sorted by name). */
static void collect_changes(struct scrape *sc, struct cm_state_entry **es, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        k += es[i]->renewals || es[i]->changes;
    if (!k || !(sc->changes = calloc(k, sizeof(*sc->changes))))
        return;
    for (size_t i = 0; i < n; i++) {
        struct cm_metrics_change *c = &sc->changes[sc->nchanges];
        if (!es[i]->renewals && !es[i]->changes)
            continue;
        if (!(c->target = strdup(es[i]->name)))
            break;
        c->renewals = es[i]->renewals;
        c->changes = es[i]->changes;
        sc->nchanges++;
    }
}

static void render_metrics(struct cm_web *web, struct cm_httpd_req *req)
{
    struct scrape *sc = calloc(1, sizeof(*sc));
    struct cm_web_status st = status(web);
    struct cm_state_entry **es = NULL;
    size_t n = 0;

    if (!sc || !(es = sorted_entries(st.state, &n)) ||
        !(sc->views = calloc(n ? n : 1, sizeof(*sc->views)))) {
        free(es);
        free(sc);
        text(req, 500, "out of memory\n");
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (cm_web_view_metrics(es[i]->view))
            sc->views[sc->n++] = cm_metrics_view_ref(cm_web_view_metrics(es[i]->view));
    collect_changes(sc, es, n);
    free(es);
    sc->self = (struct cm_metrics_self){
        .probes_success = st.probes_ok,
        .probes_failure = st.probes_failed,
        .reload_success = st.reload_ok,
        .reload_time = st.reload_at,
        .version = CERTMON_VERSION,
        .gnutls = gnutls_check_version(NULL),
        .libuv = uv_version_string(),
        .libcurl = curl_version_info(CURLVERSION_NOW)->version,
        .targets = st.gen->cfg->target_count,
        .http = &sc->http,
        .changes = sc->changes,
        .change_count = sc->nchanges,
    };
    sc->http = (struct cm_metrics_http){
        .evicted_head_timeout = web->http_counters.evicted_head_timeout,
        .evicted_per_client = web->http_counters.evicted_per_client,
        .evicted_full = web->http_counters.evicted_full,
        .refused_per_client = web->http_counters.refused_per_client,
    };
    if (st.rev) {
        struct cm_rev_stats rs;
        int64_t now = (int64_t)time(NULL);
        cm_revctx_stats(st.rev, now, &rs);
        sc->rev = (struct cm_metrics_revocation){
            .crls = rs.crls,
            .bytes = rs.bytes,
            .entries = rs.entries,
            .oldest_age = rs.oldest_this_update ? now - rs.oldest_this_update : 0,
            .ocsp_answers = rs.ocsp_answers,
            .fetches = rs.fetches,
            .not_modified = rs.not_modified,
        };
        sc->self.revocation = &sc->rev;
    }
    if (st.notify) {
        size_t nn = cm_notify_stats(st.notify, NULL, 0);
        struct cm_notify_stats *ns = calloc(nn ? nn : 1, sizeof(*ns));
        sc->notifiers = calloc(nn ? nn : 1, sizeof(*sc->notifiers));
        if (ns && sc->notifiers) {
            cm_notify_stats(st.notify, ns, nn);
            for (size_t i = 0; i < nn; i++) {
                struct cm_metrics_notifier *m = &sc->notifiers[sc->nnotifiers];
                if (!(m->name = strdup(ns[i].name ? ns[i].name : "")))
                    break;
                m->sent = ns[i].sent;
                m->failed = ns[i].failed;
                m->dropped = ns[i].dropped;
                m->queued = ns[i].queued;
                sc->nnotifiers++;
            }
        }
        free(ns);
        sc->self.notifiers = sc->notifiers;
        sc->self.notifier_count = sc->nnotifiers;
    }
    if (st.discovery && cm_discovery_stats(st.discovery, &sc->disc, &sc->ndisc) == 0) {
        sc->self.discovery = sc->disc;
        sc->self.discovery_count = sc->ndisc;
    }
    sc->cur = (struct cm_metrics_cursor)CM_METRICS_CURSOR_INIT;
    cm_process_read(&sc->proc);
    cm_httpd_respond_stream(req, 200, CM_METRICS_CONTENT_TYPE, scrape_read, scrape_done, sc);
}

/* Renders are paced: /metrics and the status page's list share one turn. After a /metrics
 * render starts, the next render waits METRICS_SPACING_MS; after a status page, PAGE_SPACING
 * times what it cost (at least PAGE_SPACING_MIN_MS). Requests arriving faster wait their turn
 * (at most METRICS_QUEUE of them, then 503). A /metrics render of 10,000 targets costs ~30 ms
 * of loop time, so a scraper (or a browser) asking nonstop would otherwise take the loop from
 * the probes; Prometheus servers scraping every few seconds and people reading never wait. */
#define METRICS_SPACING_MS 250
#define METRICS_QUEUE 8
#define PAGE_SPACING 8 /* a client asking nonstop gets at most 1/8 of the loop */
#define PAGE_SPACING_MIN_MS 5

typedef void (*paced_fn)(struct cm_web *web, struct cm_httpd_req *req);

struct scrape_wait {
    struct cm_web *web;
    struct cm_httpd_req *req;
    paced_fn render; /* sets web->scrape_next */
    struct scrape_wait *next;
};

static void pace_arm(struct cm_web *web);

static void on_pace(uv_timer_t *t)
{
    struct cm_web *web = t->data;
    struct scrape_wait *w = web->scrape_queue;

    if (!w)
        return;
    web->scrape_queue = w->next;
    web->scrape_queued--;
    cm_httpd_on_cancel(w->req, NULL, NULL);
    w->render(web, w->req);
    free(w);
    pace_arm(web);
}

static void pace_arm(struct cm_web *web)
{
    uint64_t now = uv_now(web->loop);

    if (web->scrape_queue)
        uv_timer_start(&web->scrape_timer, on_pace,
                       web->scrape_next > now ? web->scrape_next - now : 0, 0);
}

static void on_scrape_gone(struct cm_httpd_req *req, void *arg)
{
    struct scrape_wait *w = arg, **pp;
    struct cm_web *web = w->web;

    (void)req;
    for (pp = &web->scrape_queue; *pp && *pp != w; pp = &(*pp)->next)
        ;
    if (*pp) {
        *pp = w->next;
        web->scrape_queued--;
    }
    free(w);
}

/* Runs render now when it is the turn of nobody else, or queues it. */
static void paced(struct cm_web *web, struct cm_httpd_req *req, paced_fn render)
{
    uint64_t now = uv_now(web->loop);
    struct scrape_wait *w, **pp;

    if (!web->scrape_queue && now >= web->scrape_next) {
        render(web, req);
        return;
    }
    if (web->scrape_queued >= METRICS_QUEUE || !(w = calloc(1, sizeof(*w)))) {
        text(req, 503, "too many renders waiting; try again\n");
        return;
    }
    w->web = web;
    w->req = req;
    w->render = render;
    for (pp = &web->scrape_queue; *pp; pp = &(*pp)->next)
        ;
    *pp = w;
    web->scrape_queued++;
    cm_httpd_on_cancel(req, on_scrape_gone, w);
    pace_arm(web);
}

static void metrics_paced(struct cm_web *web, struct cm_httpd_req *req)
{
    web->scrape_next = uv_now(web->loop) + METRICS_SPACING_MS;
    render_metrics(web, req);
}

static void serve_metrics(struct cm_web *web, struct cm_httpd_req *req)
{
    paced(web, req, metrics_paced);
}

static void web_maybe_free(struct cm_web *web);

/* GET /api/v1/targets: the reports are referenced on the loop (the entries may change
 * meanwhile) and unpacked into the body on the thread pool: at 100,000 targets that is a
 * second of work, which the loop must not do. */
struct targets_job {
    uv_work_t work;
    struct cm_web *web;
    struct cm_httpd_req *req; /* NULL once the client has gone */
    char **refs;              /* report references, in name order; NULL: in the database */
    size_t n;
    char **names; /* refs[i] NULL: the target's name (a copy), its report read on the pool */
    char *path;   /* the database; NULL when no report is there */
    char *body;
    size_t len;
};

static void on_targets_gone(struct cm_httpd_req *req, void *arg)
{
    struct targets_job *j = arg;

    (void)req;
    j->req = NULL;
}

static void targets_job_free(struct targets_job *j)
{
    for (size_t i = 0; i < j->n; i++) {
        cm_state_report_unref(j->refs[i]);
        if (j->names)
            free(j->names[i]);
    }
    free(j->refs);
    free(j->names);
    free(j->path);
    free(j);
}

static void targets_work(uv_work_t *w)
{
    struct targets_job *j = w->data;
    char *buf = NULL;
    size_t size = 0;
    FILE *fp = NULL;
    bool ok = true;

    /* The reports only the database holds (let go from memory once stored). */
    if (j->path) {
        const char **names = calloc(j->n, sizeof(*names));
        char **got = calloc(j->n, sizeof(*got));
        size_t *at = calloc(j->n, sizeof(*at)), k = 0;
        char err[600];
        ok = names && got && at;
        for (size_t i = 0; ok && i < j->n; i++)
            if (!j->refs[i] && j->names[i]) {
                at[k] = i;
                names[k++] = j->names[i];
            }
        if (ok && cm_store_reports(j->path, names, k, got, err, sizeof(err)) < 0) {
            cm_log_error("web", "/api/v1/targets: %s", err);
            ok = false;
        }
        for (size_t i = 0; ok && i < k; i++)
            j->refs[at[i]] = got[i];
        free(names);
        free(got);
        free(at);
    }
    fp = ok ? open_memstream(&buf, &size) : NULL;
    ok = fp != NULL;
    ok = ok && fputc('[', fp) != EOF;
    for (size_t i = 0, k = 0; ok && i < j->n; i++) {
        char *text = NULL;
        size_t len;
        /* A report that does not unpack (a damaged row) is left out, as a missing one. */
        if (cm_state_report_text(j->refs[i], &text, &len) == -ENOMEM)
            ok = false;
        else if (text)
            ok = fputs(k++ ? ",\n" : "\n", fp) >= 0 && fwrite(text, 1, len, fp) == len;
        free(text);
    }
    ok = ok && fputs("\n]\n", fp) >= 0;
    if (fp && fclose(fp) != 0)
        ok = false;
    if (ok) {
        j->body = buf;
        j->len = size;
    } else {
        free(buf);
    }
}

static void targets_done(uv_work_t *w, int status)
{
    struct targets_job *j = w->data;
    struct cm_web *web = j->web;

    (void)status;
    if (j->req) {
        cm_httpd_on_cancel(j->req, NULL, NULL);
        if (j->body)
            cm_httpd_respond(j->req, 200, "application/json", j->body, j->len, 1);
        else
            text(j->req, 500, "out of memory\n");
        j->body = NULL;
    }
    free(j->body);
    targets_job_free(j);
    web->nhistory--;
    web_maybe_free(web);
}

static void serve_targets(struct cm_web *web, struct cm_httpd_req *req)
{
    size_t n;
    struct cm_state_entry **es = sorted_entries(status(web).state, &n);
    struct targets_job *j = calloc(1, sizeof(*j));

    const char *path = status(web).gen->cfg->state_file;
    bool nomem = false;

    if (!es || !j || !(j->refs = calloc(n ? n : 1, sizeof(*j->refs))) ||
        !(j->names = calloc(n ? n : 1, sizeof(*j->names)))) {
        free(es);
        if (j)
            free(j->refs);
        free(j);
        text(req, 500, "out of memory\n");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (es[i]->report) {
            j->refs[j->n++] = cm_state_report_ref(es[i]);
        } else if (es[i]->report_on_disk && path) {
            nomem = nomem || !(j->names[j->n++] = strdup(es[i]->name));
            nomem = nomem || (!j->path && !(j->path = strdup(path)));
        }
    }
    free(es);
    if (nomem) {
        targets_job_free(j);
        text(req, 500, "out of memory\n");
        return;
    }
    j->web = web;
    j->req = req;
    j->work.data = j;
    if (uv_queue_work(web->loop, &j->work, targets_work, targets_done) < 0) {
        targets_job_free(j);
        text(req, 500, "cannot queue the answer\n");
        return;
    }
    web->nhistory++;
    cm_httpd_on_cancel(req, on_targets_gone, j);
}

/* ---- /probe ---- */

/* Frees web once nothing refers to it any more (cm_web_close). */
static void web_maybe_free(struct cm_web *web)
{
    if (web->closing && !web->scrape_timer_init && web->nwebprobes == 0 && web->nhistory == 0)
        free(web);
}

static void webprobe_free(struct webprobe *w)
{
    struct cm_web *web = w->web;

    struct webprobe **pp;

    for (pp = &w->web->webprobes; *pp && *pp != w; pp = &(*pp)->next)
        ;
    if (*pp)
        *pp = w->next;
    w->web->nwebprobes--;
    cm_target_clear(&w->t);
    free(w->name);
    cm_gen_unref(w->gen);
    free(w);
    web_maybe_free(web);
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
        !json_object_set_new(report, "target", json_string(w->name)) && (labels = json_object()) &&
        !json_object_set_new(report, "labels", labels)) {
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
static const struct cm_config_target *find_configured(const struct cm_config *cfg, const char *spec,
                                                      const struct cm_target *parsed,
                                                      const char *sni)
{
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

static void serve_probe(struct cm_web *web, struct cm_httpd_req *req)
{
    const char *spec = cm_httpd_query(req, "target"), *sni = cm_httpd_query(req, "sni");
    const struct cm_config_target *ct;
    struct cm_target parsed;
    char err[256], msg[400];
    bool have_parsed;
    struct webprobe *w;
    uint64_t timeout;
    struct cm_gen *gen = status(web).gen;

    if (!spec || !*spec) {
        text(req, 400, "missing parameter: target=host[:port] (and optionally sni=NAME)\n");
        return;
    }
    have_parsed = cm_target_parse(spec, CM_DEFAULT_PORT, sni && *sni ? sni : NULL, &parsed, err,
                                  sizeof(err)) == 0;
    ct = find_configured(gen->cfg, spec, have_parsed ? &parsed : NULL, sni && *sni ? sni : NULL);
    if (!ct && !gen->cfg->allow_any_target) {
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
    if (web->nwebprobes >= MAX_WEBPROBES) {
        cm_target_clear(&parsed);
        text(req, 503, "too many probes in flight; try again\n");
        return;
    }
    if (!(w = calloc(1, sizeof(*w)))) {
        cm_target_clear(&parsed);
        text(req, 500, "out of memory\n");
        return;
    }
    w->web = web;
    w->req = req;
    w->gen = cm_gen_ref(gen);
    web->nwebprobes++;
    w->next = web->webprobes;
    web->webprobes = w;
    if (ct) {
        cm_target_clear(&parsed);
        w->policy = ct->policy;
        w->labels = &ct->labels;
        timeout = ct->timeout_ms;
        if (cm_target_copy(&w->t, &ct->ep) < 0 || !(w->name = strdup(ct->name)))
            goto nomem;
    } else {
        w->t = parsed; /* ours now */
        w->t.starttls = cm_starttls_for_port(w->t.port);
        w->policy = &gen->cfg->policy;
        timeout = gen->cfg->timeout_ms;
        if (!(w->name = strdup(parsed.name)))
            goto nomem;
    }
    cm_httpd_on_cancel(req, on_webprobe_gone, w);
    if (cm_probe_start(&(struct cm_probe_env){web->loop, w->gen->tls, web->resolver}, &w->t,
                       timeout, on_webprobe, w, &w->probe) < 0)
        goto nomem;
    return;
nomem:
    cm_httpd_on_cancel(req, NULL, NULL);
    webprobe_free(w);
    text(req, 500, "out of memory\n");
}

/* ---- The status page ---- */

/* Every page answer carries these (page.h): nothing loads from elsewhere, nothing is sniffed
 * into another type, no referrer leaves with a link followed. */
static const char *const page_headers[] = {
    "Content-Security-Policy", CM_PAGE_CSP, "X-Content-Type-Options", "nosniff",
    "Referrer-Policy", "no-referrer", "X-Frame-Options", "DENY", NULL};
static const char *const badge_headers[] = {
    "Content-Security-Policy", CM_PAGE_BADGE_CSP, "X-Content-Type-Options", "nosniff",
    "Referrer-Policy", "no-referrer", NULL};

static void page_respond(struct cm_httpd_req *req, unsigned code, const char *ctype,
                         const char *const *headers, struct cm_page_buf *b, int rc)
{
    if (rc < 0) {
        cm_page_buf_free(b);
        text(req, 500, "out of memory\n");
        return;
    }
    cm_httpd_set_headers(req, headers);
    cm_httpd_respond(req, code, ctype, b->data, b->len, 1);
}

static void page_info(struct cm_web_status *st, struct cm_page_info *info)
{
    *info = (struct cm_page_info){.version = CERTMON_VERSION, .targets = st->gen->cfg->target_count};
}

struct query_ctx {
    struct cm_page_query *q;
    char err[256];
};

static int on_page_param(void *arg, const char *name, const char *value)
{
    struct query_ctx *c = arg;

    return cm_page_query_set(c->q, name, value, c->err, sizeof(c->err)) < 0 ? -1 : 0;
}

/* GET /: rendered at once in its turn (the rows are plain structs; the sort of 10,000 and one
 * page of rows cost a few ms, docs/benchmarks.md), from the rows the state keeps beside each
 * report. */
static void render_index(struct cm_web *web, struct cm_httpd_req *req)
{
    struct cm_web_status st = status(web);
    struct query_ctx c = {0};
    struct cm_page_query q;
    struct cm_page_info info;
    struct cm_page_buf b = {0};
    struct cm_state_entry *const *es;
    const struct cm_page_row **rows;
    struct cm_page_row **pending;
    size_t n, np = 0;
    uint64_t t0, cost_ms;
    int rc;

    cm_page_query_init(&q, st.gen->cfg->page_size);
    c.q = &q;
    if (cm_httpd_query_each(req, on_page_param, &c) != 0) {
        char msg[300];
        snprintf(msg, sizeof(msg), "bad request: %s\n", c.err);
        text(req, 400, msg);
        return;
    }
    cm_state_check_reports(st.state, SIZE_MAX);
    es = cm_state_entries(st.state, &n);
    rows = calloc(n ? n : 1, sizeof(*rows));
    pending = calloc(n ? n : 1, sizeof(*pending));
    if (!rows || !pending) {
        free(rows);
        free(pending);
        text(req, 500, "out of memory\n");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct web_view *v = es[i]->view;
        if (v && v->row)
            rows[i] = v->row;
        else if (!cm_state_has_report(es[i])) /* known, never probed: listed as such */
            rows[i] = pending[np++] = cm_page_row_pending(es[i]->name);
    }
    page_info(&st, &info);
    t0 = uv_hrtime();
    rc = cm_page_render_index(rows, n, &q, &info, (int64_t)time(NULL), &b);
    cost_ms = (uv_hrtime() - t0) / 1000000;
    web->scrape_next = uv_now(web->loop) + (cost_ms * PAGE_SPACING > PAGE_SPACING_MIN_MS
                                                ? cost_ms * PAGE_SPACING
                                                : PAGE_SPACING_MIN_MS);
    for (size_t i = 0; i < np; i++)
        cm_page_row_free(pending[i]);
    free(pending);
    free(rows);
    page_respond(req, 200, CM_PAGE_CONTENT_TYPE, page_headers, &b, rc);
}

static void serve_index(struct cm_web *web, struct cm_httpd_req *req)
{
    paced(web, req, render_index);
}

/* The state entry that /target/NAME or /badge/NAME.svg names (MHD has URL-decoded the path). */
static struct cm_state_entry *entry_named(struct cm_web *web, const char *name)
{
    struct cm_state *state = status(web).state;

    return *name ? cm_state_get(state, name) : NULL;
}

/* ---- History reads on the thread pool (the history API and the detail pages) ---- */

/* What every read of the history on the thread pool carries, whichever answer it makes: the
 * database is read there (it may be large, and the disk slow), never on the loop. A job has
 * this as its first member (work.data points to it, hence to the job). */
struct pool_read {
    uv_work_t work;
    struct cm_web *web;
    struct cm_httpd_req *req; /* NULL once the client has gone */
    char *path, *name;        /* the database and the target: copies, since a reload may free
                               * the configuration's meanwhile */
};

/* Reads the history of name from the database at path, on the calling thread (the pool's):
 * a database not made yet has no rows. */
static int read_history(const char *path, const char *name, struct cm_history_row **rows, size_t *n,
                        char *err, size_t errlen)
{
    int rc = cm_store_history(path, name, rows, n, err, errlen);

    if (rc == -ENOENT) {
        *rows = NULL;
        *n = 0;
        return 0;
    }
    return rc;
}

static void on_read_gone(struct cm_httpd_req *req, void *arg)
{
    struct pool_read *r = arg;

    (void)req;
    r->req = NULL;
}

/* Copies path and name into r (zeroed, the first member of its job), queues work and done on
 * the pool and counts the read. Returns 0, or -1 when the request has been answered already
 * (503 with MAX_HISTORY_READS in flight, 500 when out of memory): then done never runs, r
 * holds nothing and the caller frees its job. */
static int pool_read_start(struct cm_web *web, struct cm_httpd_req *req, struct pool_read *r,
                           const char *path, const char *name, uv_work_cb work,
                           uv_after_work_cb done)
{
    if (web->nhistory >= MAX_HISTORY_READS) {
        text(req, 503, "too many history reads in flight; try again\n");
        return -1;
    }
    r->web = web;
    r->req = req;
    r->work.data = r;
    if (!(r->path = strdup(path)) || !(r->name = strdup(name))) {
        free(r->path);
        text(req, 500, "out of memory\n");
        return -1;
    }
    if (uv_queue_work(web->loop, &r->work, work, done) < 0) {
        free(r->path);
        free(r->name);
        text(req, 500, "cannot queue the read\n");
        return -1;
    }
    web->nhistory++;
    cm_httpd_on_cancel(req, on_read_gone, r);
    return 0;
}

/* First in a job's done callback: the request to answer, its cancel callback cleared, or NULL
 * when the client has gone. */
static struct cm_httpd_req *pool_read_req(struct pool_read *r)
{
    if (r->req)
        cm_httpd_on_cancel(r->req, NULL, NULL);
    return r->req;
}

/* Last in a job's done callback, before the job itself is freed: lets the web go when it is
 * closing and this was the last read. */
static void pool_read_end(struct pool_read *r)
{
    struct cm_web *web = r->web;

    free(r->path);
    free(r->name);
    web->nhistory--;
    web_maybe_free(web);
}

/* ---- GET /target/NAME with a history: read and rendered on the thread pool ---- */

/* One detail page whose target has a history: the database is read, the report parsed and
 * the page rendered on the pool. Everything the pool uses is copied: a new result may free
 * the state's report meanwhile. */
struct target_job {
    struct pool_read r; /* first */
    char *report;       /* JSON text, unpacked on the loop (cheap: a few µs) */
    size_t report_len;
    struct cm_page_info info; /* version: a literal */
    int64_t now;
    bool refresh;
    struct cm_page_buf page; /* made on the pool */
    const char *fail;        /* made on the pool: why there is no page (a 500) */
};

static void target_work(uv_work_t *w)
{
    struct target_job *j = w->data;
    struct cm_history_row *rows = NULL;
    struct cm_page_cert *certs = NULL;
    struct cm_page_history h = {0};
    size_t n = 0;
    char err[600];
    json_t *report;

    /* A report let go from memory once stored: read back here. */
    if (!j->report) {
        const char *name = j->r.name;
        char *ref = NULL;
        if (cm_store_reports(j->r.path, &name, 1, &ref, err, sizeof(err)) < 0 || !ref ||
            cm_state_report_text(ref, &j->report, &j->report_len) < 0 || !j->report) {
            cm_state_report_unref(ref);
            j->fail = "the stored report cannot be read\n";
            return;
        }
        cm_state_report_unref(ref);
    }
    if (read_history(j->r.path, j->r.name, &rows, &n, err, sizeof(err)) < 0) {
        h.error = err; /* the page still shows the rest */
        n = 0;
    } else if (n && !(certs = calloc(n, sizeof(*certs)))) {
        j->fail = "out of memory\n";
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        certs[i] = (struct cm_page_cert){
            .sha256 = rows[i].sha256,
            .subject = rows[i].subject,
            .issuer = rows[i].issuer,
            .not_before = rows[i].not_before,
            .not_after = rows[i].not_after,
            .first_seen = rows[i].first_seen,
            .last_seen = rows[i].last_seen,
        };
    h.certs = certs;
    h.n = n;
    if (!(report = json_loadb(j->report, j->report_len, 0, NULL))) {
        j->fail = "the stored report does not parse\n";
        goto out;
    }
    if (cm_page_render_target(report, cm_web_findings_md, &h, &j->info, j->now, j->refresh,
                              &j->page) < 0) {
        cm_page_buf_free(&j->page);
        j->fail = "out of memory\n";
    }
    json_decref(report);
out:
    free(certs);
    cm_history_free(rows, n);
}

static void target_done(uv_work_t *w, int status)
{
    struct target_job *j = w->data;
    struct cm_httpd_req *req = pool_read_req(&j->r);

    (void)status;
    if (req && j->fail)
        text(req, 500, j->fail);
    else if (req) {
        page_respond(req, 200, CM_PAGE_CONTENT_TYPE, page_headers, &j->page, 0);
        j->page = (struct cm_page_buf){0}; /* taken by the httpd */
    }
    cm_page_buf_free(&j->page);
    free(j->report);
    pool_read_end(&j->r);
    free(j);
}

static void target_job_start(struct cm_web *web, struct cm_httpd_req *req, const char *path,
                             const struct cm_state_entry *e, const struct cm_page_info *info,
                             bool refresh)
{
    struct target_job *j = calloc(1, sizeof(*j));

    if (!j || cm_state_report_text(e->report, &j->report, &j->report_len) < 0 ||
        (!j->report && !e->report_on_disk)) {
        if (j)
            free(j->report);
        free(j);
        text(req, 500, "the stored report cannot be read\n");
        return;
    }
    j->info = *info;
    j->now = (int64_t)time(NULL);
    j->refresh = refresh;
    if (pool_read_start(web, req, &j->r, path, e->name, target_work, target_done) < 0) {
        free(j->report);
        free(j);
    }
}

static void serve_target(struct cm_web *web, struct cm_httpd_req *req, const char *name)
{
    struct cm_web_status st = status(web);
    struct cm_state_entry *e = entry_named(web, name);
    struct cm_page_info info;
    struct cm_page_buf b = {0};
    const char *refresh = cm_httpd_query(req, "refresh");
    json_t *report;
    int rc;

    page_info(&st, &info);
    if (refresh && strcmp(refresh, "0") && strcmp(refresh, "1")) {
        text(req, 400, "bad request: refresh= expects 1 (on) or 0 (off)\n");
        return;
    }
    if (!e) {
        rc = cm_page_render_not_found(name, &info, &b);
        page_respond(req, 404, CM_PAGE_CONTENT_TYPE, page_headers, &b, rc);
        return;
    }
    if (!cm_state_has_report(e)) {
        struct cm_page_row *r = cm_page_row_pending(e->name);
        rc = r ? cm_page_render_index((const struct cm_page_row *const *)&r, 1,
                                      &(struct cm_page_query){.page = 1, .page_size = 1}, &info,
                                      (int64_t)time(NULL), &b)
               : -ENOMEM;
        cm_page_row_free(r);
        page_respond(req, 200, CM_PAGE_CONTENT_TYPE, page_headers, &b, rc);
        return;
    }
    if (st.gen->cfg->state_file) { /* the history is on disk: read and render on the pool */
        target_job_start(web, req, st.gen->cfg->state_file, e, &info,
                         !refresh || refresh[0] == '1');
        return;
    }
    {
        char *t = NULL;
        size_t tlen;
        if (cm_state_report_text(e->report, &t, &tlen) == -ENOMEM) {
            text(req, 500, "out of memory\n");
            return;
        }
        report = t ? json_loadb(t, tlen, 0, NULL) : NULL;
        free(t);
    }
    if (!report) {
        text(req, 500, "the stored report does not parse\n");
        return;
    }
    rc = cm_page_render_target(report, cm_web_findings_md, NULL, &info, (int64_t)time(NULL),
                               !refresh || refresh[0] == '1', &b);
    json_decref(report);
    page_respond(req, 200, CM_PAGE_CONTENT_TYPE, page_headers, &b, rc);
}

static void serve_badge(struct cm_web *web, struct cm_httpd_req *req, const char *file)
{
    size_t len = strlen(file);
    char *name;
    struct cm_state_entry *e;
    struct cm_page_row *pending = NULL;
    const struct cm_page_row *row = NULL;
    struct cm_page_buf b = {0};
    int rc;

    if (len <= 4 || strcmp(file + len - 4, ".svg") != 0 || !(name = strndup(file, len - 4))) {
        text(req, 404, "not found: a badge is /badge/NAME.svg\n");
        return;
    }
    e = entry_named(web, name);
    free(name);
    if (!e) {
        text(req, 404, "not found: no target of that name\n");
        return;
    }
    if (e->view && ((struct web_view *)e->view)->row)
        row = ((struct web_view *)e->view)->row;
    else if (!(row = pending = cm_page_row_pending(e->name))) {
        text(req, 500, "out of memory\n");
        return;
    }
    rc = cm_page_render_badge(row, (int64_t)time(NULL), &b);
    cm_page_row_free(pending);
    page_respond(req, 200, CM_PAGE_BADGE_CONTENT_TYPE, badge_headers, &b, rc);
}

static void serve_static(struct cm_httpd_req *req, const char *ctype, const char *body)
{
    cm_httpd_set_headers(req, page_headers);
    cm_httpd_respond(req, 200, ctype, body, strlen(body), 0);
}

/* ---- /api/v1/targets/NAME/history ---- */

/* One read for the API: the answer is made on the pool too. */
struct history_job {
    struct pool_read r; /* first */
    char *body;         /* the answer, made on the pool */
    size_t len;
    unsigned status;
};

static void history_work(uv_work_t *w)
{
    struct history_job *j = w->data;
    struct cm_history_row *rows = NULL;
    size_t n = 0;
    char err[600];
    json_t *a;
    int rc = read_history(j->r.path, j->r.name, &rows, &n, err, sizeof(err));

    if (rc < 0) {
        j->status = 500;
        if (asprintf(&j->body, "cannot read the history: %s\n", err) < 0)
            j->body = NULL;
    } else if (!(a = cm_history_json(rows, n)) ||
               !(j->body = json_dumps(a, JSON_INDENT(2) | JSON_ENSURE_ASCII))) {
        json_decref(a);
        j->status = 500;
    } else {
        json_decref(a);
        j->status = 200;
    }
    j->len = j->body ? strlen(j->body) : 0;
    cm_history_free(rows, n);
}

static void history_done(uv_work_t *w, int status)
{
    struct history_job *j = w->data;
    struct cm_httpd_req *req = pool_read_req(&j->r);

    (void)status;
    if (req) {
        if (!j->body)
            text(req, 500, "out of memory\n");
        else if (j->status == 200)
            cm_httpd_respond(req, 200, "application/json", j->body, j->len, 1);
        else
            cm_httpd_respond(req, j->status, "text/plain; charset=utf-8", j->body, j->len, 1);
        j->body = NULL;
    }
    free(j->body);
    pool_read_end(&j->r);
    free(j);
}

/* name is the part of the path between /api/v1/targets/ and /history. */
static void serve_history(struct cm_web *web, struct cm_httpd_req *req, const char *name,
                          size_t len)
{
    const struct cm_config *cfg = status(web).gen->cfg;
    struct history_job *j;
    char *n = strndup(name, len);

    if (!n) {
        text(req, 500, "out of memory\n");
        return;
    }
    /* A configured target, or a file a file entry found (its state entry). */
    if (!cm_config_find(cfg, n) && !cm_state_get(status(web).state, n)) {
        free(n);
        text(req, 404, "no such target\n");
        return;
    }
    if (!cfg->state_file) {
        free(n);
        text(req, 404, "no history: global.state_file is not set\n");
        return;
    }
    if (!(j = calloc(1, sizeof(*j))))
        text(req, 500, "out of memory\n");
    else if (pool_read_start(web, req, &j->r, cfg->state_file, n, history_work, history_done) < 0)
        free(j);
    free(n);
}

/* ---- Routing ---- */

static void on_request(struct cm_httpd_req *req, const char *path, void *arg)
{
    struct cm_web *web = arg;

    if (!strcmp(path, "/metrics"))
        serve_metrics(web, req);
    else if (!strcmp(path, "/probe"))
        serve_probe(web, req);
    else if (!strcmp(path, "/api/v1/targets"))
        serve_targets(web, req);
    else if (!strncmp(path, "/api/v1/targets/", 16) && strlen(path) > 16 + 8 &&
             !strcmp(path + strlen(path) - 8, "/history"))
        serve_history(web, req, path + 16, strlen(path) - 16 - 8);
    else if (!strcmp(path, "/healthz"))
        text(req, 200, "ok\n");
    else if (!strcmp(path, "/"))
        serve_index(web, req);
    else if (!strncmp(path, "/target/", 8))
        serve_target(web, req, path + 8);
    else if (!strncmp(path, "/badge/", 7))
        serve_badge(web, req, path + 7);
    else if (!strcmp(path, "/static/style.css"))
        serve_static(req, "text/css; charset=utf-8", cm_web_style_css);
    else if (!strcmp(path, "/static/app.js"))
        serve_static(req, "text/javascript; charset=utf-8", cm_web_app_js);
    else
        text(req, 404,
             "not found: try /, /target/NAME, /badge/NAME.svg, /metrics, "
             "/probe?target=host:port, /api/v1/targets or /healthz\n");
}

int cm_web_new(uv_loop_t *loop, struct cm_resolver *resolver, cm_web_status_fn status_fn, void *arg,
               struct cm_web **out)
{
    struct cm_web *web = calloc(1, sizeof(*web));

    if (!web)
        return -ENOMEM;
    web->loop = loop;
    web->resolver = resolver;
    web->status = status_fn;
    web->status_arg = arg;
    *out = web;
    return 0;
}

int cm_web_start(struct cm_web *web, const struct cm_config *cfg, char *err, size_t errlen)
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
        .counters = &web->http_counters,
    };
    int rc;

    if (cfg->listen_count == 0)
        return 0;
    if (!web->scrape_timer_init) {
        uv_timer_init(web->loop, &web->scrape_timer);
        web->scrape_timer.data = web;
        web->scrape_timer_init = true;
    }
    if ((rc = cm_httpd_start(web->loop, &o, on_request, web, &web->httpd, err, errlen)) < 0)
        return rc;
    for (size_t i = 0; i < cfg->listen_count; i++)
        cm_log_info("web", "listen=%s tls=%s client_ca=%s", cfg->listen[i],
                    cfg->tls_cert ? "yes" : "no", cfg->client_ca ? "yes" : "no");
    return 0;
}

void cm_web_stop(struct cm_web *web)
{
    /* Pending requests' cancel callbacks cancel their probes, which free themselves. */
    cm_httpd_close(web->httpd); /* queued scrapes are cancelled: on_scrape_gone frees them */
    web->httpd = NULL;
    if (web->scrape_timer_init)
        uv_timer_stop(&web->scrape_timer);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct cm_web *web = h->data;

    web->scrape_timer_init = false;
    web_maybe_free(web);
}

void cm_web_close(struct cm_web *web)
{
    if (!web)
        return;
    cm_web_stop(web);
    web->closing = true;
    if (web->scrape_timer_init)
        uv_close((uv_handle_t *)&web->scrape_timer, on_timer_closed);
    else
        web_maybe_free(web);
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

bool cm_web_same(const struct cm_config *a, const struct cm_config *b)
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

void cm_web_pending(const struct cm_web *web, unsigned *probes, unsigned *scrapes)
{
    if (probes)
        *probes = web->nwebprobes;
    if (scrapes)
        *scrapes = web->scrape_queued;
}

void cm_web_unpace(struct cm_web *web)
{
    web->scrape_next = 0;
}
