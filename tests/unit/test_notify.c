/* notify against real receivers on 127.0.0.1 (tests/integration/http_receiver.py and
 * smtp_receiver.py): routing and filters, grouping, retries with backoff and Retry-After,
 * refusals, persistence across a restart, email, Alertmanager HA and notify-test. Every test
 * runs its own loop with bounded waits and ends with uv_loop_close() == 0. */
#include "cmtest.h"
#include "certmon/base/error.h"
#include "certmon/notify/alert.h"
#include "certmon/notify/notify.h"
#include "certmon/notify/payload.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

static char tmpdir[64];

/* ---- Receivers ---- */

struct rx {
    pid_t pid;
    int port;
    char log[256];
};

/* Starts tests/integration/SCRIPT on port (0: a free one) with the extra arguments
 * (NULL-terminated) and waits until it accepts connections. */
static bool rx_start_on(struct rx *rx, int port_no, const char *script, ...)
{
    char *argv[40], port[16], out[300];
    int argc = 0;
    va_list ap;

    memset(rx, 0, sizeof(*rx));
    rx->port = port_no > 0 ? port_no : cm_th_free_port();
    snprintf(port, sizeof(port), "%d", rx->port);
    snprintf(rx->log, sizeof(rx->log), "%s/%s.%d.jsonl", tmpdir, script, rx->port);
    snprintf(out, sizeof(out), "%s/%s.%d.out", tmpdir, script, rx->port);
    argv[argc++] = "/usr/bin/python3";
    argv[argc++] = (char *)cm_th_script(script);
    argv[argc++] = "--port";
    argv[argc++] = port;
    argv[argc++] = "--log";
    argv[argc++] = rx->log;
    argv[argc++] = "--lifetime";
    argv[argc++] = "120";
    va_start(ap, script);
    for (const char *a; argc < 39 && (a = va_arg(ap, const char *));)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    rx->pid = cm_th_spawn(argv, out);
    if (rx->pid <= 0 || !cm_th_wait_port(rx->port, 10000)) {
        fprintf(stderr, "%s did not start (see %s)\n", script, out);
        cm_th_stop(rx->pid);
        rx->pid = 0;
        return false;
    }
    return true;
}
#define rx_start(rx, ...) rx_start_on((rx), 0, __VA_ARGS__)

static void rx_stop(struct rx *rx)
{
    if (rx->pid > 0)
        cm_th_stop(rx->pid);
    rx->pid = 0;
}

/* Every line the receiver logged, as a JSON array (caller decrefs). */
static json_t *rx_log(const struct rx *rx)
{
    json_t *arr = json_array();
    FILE *f = fopen(rx->log, "r");
    char *line = NULL;
    size_t cap = 0;

    if (!f)
        return arr;
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, JSON_ALLOW_NUL, NULL);
        if (j)
            json_array_append_new(arr, j);
    }
    free(line);
    fclose(f);
    return arr;
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

/* Request i's body, parsed (caller decrefs), or NULL. */
static json_t *rx_body(json_t *log, size_t i)
{
    const char *b = cm_json_str(json_array_get(log, i), "body");
    return b ? json_loads(b, 0, NULL) : NULL;
}

/* ---- Loop and notifier ---- */

struct env {
    uv_loop_t loop;
    struct cm_httpc *h;
    struct cm_notify *n;
    struct cm_config cfg;
    int changes;
};

static void on_change(void *arg)
{
    ((struct env *)arg)->changes++;
}

static struct cm_config_notifier *add_notifier(struct env *e, const char *name,
                                               enum cm_notifier_kind kind, const char *url)
{
    static const char *const types[] = {"slack",     "webhook", "email",    "alertmanager",
                                        "pagerduty", "teams",   "telegram", "ntfy"};
    struct cm_config_notifier *c;

    e->cfg.notifiers = realloc(e->cfg.notifiers, (e->cfg.notifier_count + 1) * sizeof(*c));
    CU_ASSERT_FATAL(e->cfg.notifiers != NULL);
    c = &e->cfg.notifiers[e->cfg.notifier_count++];
    memset(c, 0, sizeof(*c));
    c->name = (char *)name;
    c->type = (char *)types[kind];
    c->kind = kind;
    c->min_severity = CM_SEV_WARNING;
    c->group_wait_ms = 0;
    c->repeat_ms = 0;
    c->timeout_ms = 5000;
    c->max_age_ms = 24u * 3600u * 1000u;
    c->resend_ms = 60000;
    c->url = url ? strdup(url) : NULL;
    return c;
}

static void env_init(struct env *e)
{
    char err[256] = "";

    memset(e, 0, sizeof(*e));
    CU_ASSERT_FATAL(uv_loop_init(&e->loop) == 0);
    EXPECT_INT(cm_httpc_new(&e->loop, &e->h, err, sizeof(err)), 0);
    CU_ASSERT_FATAL(e->h != NULL);
}

/* Creates the notifiers once the config is filled in. */
static void env_start(struct env *e)
{
    EXPECT_INT(cm_notify_new(&e->loop, e->h, &e->cfg, &e->n), 0);
    CU_ASSERT_FATAL(e->n != NULL);
    cm_notify_on_change(e->n, on_change, e);
}

static void drain(uv_loop_t *loop)
{
    uint64_t end = uv_hrtime() + 5000000000u;
    while (uv_loop_alive(loop) && uv_hrtime() < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
}

static void env_finish_at(struct env *e, unsigned line)
{
    cm_notify_close(e->n);
    cm_httpc_close(e->h);
    drain(&e->loop);
    expect_int(uv_loop_close(&e->loop), 0, "uv_loop_close", line);
    for (size_t i = 0; i < e->cfg.notifier_count; i++) {
        free(e->cfg.notifiers[i].url);
        free(e->cfg.notifiers[i].urls);
    }
    free(e->cfg.notifiers);
}
#define env_finish(e) env_finish_at((e), __LINE__)

static void on_guard(uv_timer_t *t)
{
    (void)t;
}

static struct cm_notify_stats stats_of(struct env *e, const char *name)
{
    struct cm_notify_stats st[16];
    size_t k = cm_notify_stats(e->n, st, 16);
    struct cm_notify_stats none = {0};

    for (size_t i = 0; i < k && i < 16; i++)
        if (strcmp(st[i].name, name) == 0)
            return st[i];
    return none;
}

enum what { SENT, FAILED, DROPPED };

static uint64_t counter(struct env *e, const char *name, enum what w)
{
    struct cm_notify_stats s = stats_of(e, name);
    return w == SENT ? s.sent : w == FAILED ? s.failed : s.dropped;
}

/* Runs the loop until notifier name's counter w reaches want, or timeout_ms passed
 * (name NULL: just runs). */
static bool run_until(struct env *e, const char *name, enum what w, uint64_t want, int timeout_ms)
{
    uv_timer_t guard;
    uint64_t end = uv_hrtime() + (uint64_t)(timeout_ms * CERTMON_SLOWDOWN) * 1000000u;
    bool ok;

    uv_timer_init(&e->loop, &guard);
    uv_timer_start(&guard, on_guard, 20, 20);
    while (!(ok = name && counter(e, name, w) >= want) && uv_hrtime() < end)
        uv_run(&e->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    return ok;
}
#define run_for(e, ms) run_until((e), NULL, SENT, 0, (ms))

static char *url_of(const char *scheme, int port, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s://127.0.0.1:%d%s", scheme, port, path);
    return strdup(buf);
}

/* One webhook notifier of a test's table: its name, the receiver path it posts to, and its
 * filters. */
struct hook {
    const char *name, *path;
    enum cm_severity min_severity;
    const char **findings;         /* NULL: all */
    const struct cm_labels *match; /* NULL: none */
};

/* Adds the table's notifiers, posting to the receiver on port. */
static void add_hooks(struct env *e, int port, const struct hook *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct cm_config_notifier *c = add_notifier(e, h[i].name, CM_NOTIFIER_WEBHOOK, NULL);
        c->url = url_of("http", port, h[i].path);
        c->min_severity = h[i].min_severity;
        if (h[i].findings) {
            c->findings = h[i].findings;
            c->finding_count = 1;
        }
        if (h[i].match)
            c->match = *h[i].match;
    }
}

/* ---- Findings ---- */

static struct cm_finding f_expiring = {.id = "cert.expiring",
                                       .severity = CM_SEV_WARNING,
                                       .message = "expires in 5 days",
                                       .position = 0};
static struct cm_finding f_untrusted = {.id = "chain.untrusted",
                                        .severity = CM_SEV_CRITICAL,
                                        .message = "issuer not trusted",
                                        .position = -1};
static struct cm_finding f_info = {
    .id = "chain.order", .severity = CM_SEV_INFO, .message = "chain out of order", .position = -1};

static char *k_env[] = {"env"}, *v_prod[] = {"prod"}, *v_dev[] = {"dev"};
static const struct cm_labels prod = {.keys = k_env, .values = v_prod, .count = 1};
static const struct cm_labels dev = {.keys = k_env, .values = v_dev, .count = 1};

static void observe(struct env *e, const char *target, const struct cm_labels *l, int n, ...)
{
    struct cm_finding items[8];
    struct cm_findings f = {.items = items, .count = 0};
    va_list ap;

    va_start(ap, n);
    for (int i = 0; i < n && i < 8; i++)
        items[f.count++] = *va_arg(ap, struct cm_finding *);
    va_end(ap);
    cm_notify_observe(e->n, target, l, &f, NULL, (int64_t)time(NULL));
}

/* ---- Tests ---- */

static void test_webhook_grouped_signed_resolved(void)
{
    struct env e;
    struct rx rx;
    struct cm_config_notifier *c;
    char *hdrs[] = {"X-Extra: yes"};
    char sig[CM_PAYLOAD_SIG_LEN];
    json_t *log, *b;
    const char *body;

    CU_ASSERT_FATAL(rx_start(&rx, "http_receiver.py", NULL));
    env_init(&e);
    c = add_notifier(&e, "hook", CM_NOTIFIER_WEBHOOK, NULL);
    c->url = url_of("http", rx.port, "/hook");
    c->secret = "s3cret";
    c->headers = hdrs;
    c->header_count = 1;
    c->group_wait_ms = 300;
    env_start(&e);

    observe(&e, "a.example:443", &prod, 2, &f_expiring, &f_untrusted);
    EXPECT_INT(stats_of(&e, "hook").queued, 1);
    CU_ASSERT(e.changes > 0);
    run_for(&e, 150);
    log = rx_log(&rx);
    EXPECT_INT(json_array_size(log), 0); /* still grouping */
    json_decref(log);
    CU_ASSERT(run_until(&e, "hook", SENT, 1, 5000));
    EXPECT_INT(stats_of(&e, "hook").queued, 0);
    EXPECT_INT(counter(&e, "hook", FAILED), 0);

    log = rx_log(&rx);
    EXPECT_INT(json_array_size(log), 1);
    EXPECT_STR(cm_json_str(log, "0.path"), "/hook");
    EXPECT_STR(cm_json_str(log, "0.headers.x-extra"), "yes");
    body = cm_json_str(log, "0.body");
    CU_ASSERT_FATAL(body != NULL);
    EXPECT_INT(cm_payload_hmac("s3cret", body, strlen(body), sig, sizeof(sig)), 0);
    EXPECT_STR(cm_json_str(log, "0.headers.x-certmon-signature"), sig);
    b = rx_body(log, 0);
    EXPECT_STR(cm_json_str(b, "version"), "1");
    EXPECT_INT(json_array_size(cm_json_get(b, "alerts")), 2);
    EXPECT_STR(cm_json_str(b, "alerts.0.status"), "firing");
    EXPECT_STR(cm_json_str(b, "alerts.0.labels.env"), "prod");
    json_decref(b);
    json_decref(log);

    /* The same findings again: nothing new. Then they go away: one resolved message. */
    observe(&e, "a.example:443", &prod, 2, &f_expiring, &f_untrusted);
    EXPECT_INT(stats_of(&e, "hook").queued, 0);
    observe(&e, "a.example:443", &prod, 0);
    CU_ASSERT(run_until(&e, "hook", SENT, 2, 5000));
    log = rx_log(&rx);
    EXPECT_INT(json_array_size(log), 2);
    b = rx_body(log, 1);
    EXPECT_INT(json_array_size(cm_json_get(b, "alerts")), 2);
    EXPECT_STR(cm_json_str(b, "alerts.0.status"), "resolved");
    EXPECT_STR(cm_json_str(b, "alerts.1.status"), "resolved");
    json_decref(b);
    json_decref(log);
    env_finish(&e);
    rx_stop(&rx);
}

static void test_retry_500_then_200(void)
{
    struct env e;
    struct rx rx;
    json_t *log;
    double t0, t1;

    CU_ASSERT_FATAL(rx_start(&rx, "http_receiver.py", "--responses", "500,200", NULL));
    env_init(&e);
    add_notifier(&e, "hook", CM_NOTIFIER_WEBHOOK, NULL)->url = url_of("http", rx.port, "/h");
    env_start(&e);
    observe(&e, "a.example:443", NULL, 1, &f_expiring);
    CU_ASSERT(run_until(&e, "hook", SENT, 1, 8000));
    EXPECT_INT(counter(&e, "hook", SENT), 1);
    EXPECT_INT(counter(&e, "hook", FAILED), 1);
    EXPECT_INT(counter(&e, "hook", DROPPED), 0);
    run_for(&e, 300);
    log = rx_log(&rx);
    EXPECT_INT(json_array_size(log), 2);
    EXPECT_STR(cm_json_str(log, "0.answer"), "500");
    EXPECT_STR(cm_json_str(log, "1.answer"), "200");
    t0 = json_real_value(cm_json_get(log, "0.time"));
    t1 = json_real_value(cm_json_get(log, "1.time"));
    CU_ASSERT(t1 - t0 >= 0.75 && t1 - t0 < 3.0); /* 1 s +-20 % */
    json_decref(log);
    env_finish(&e);
    rx_stop(&rx);
}

static void test_retry_after(void)
{
    struct env e;
    struct rx rx;
    json_t *log;
    double gap;

    CU_ASSERT_FATAL(
        rx_start(&rx, "http_receiver.py", "--responses", "429,200", "--retry-after", "2", NULL));
    env_init(&e);
    add_notifier(&e, "hook", CM_NOTIFIER_WEBHOOK, NULL)->url = url_of("http", rx.port, "/h");
    env_start(&e);
    observe(&e, "a.example:443", NULL, 1, &f_expiring);
    CU_ASSERT(run_until(&e, "hook", SENT, 1, 10000));
    EXPECT_INT(counter(&e, "hook", FAILED), 1);
    log = rx_log(&rx);
    EXPECT_INT(json_array_size(log), 2);
    gap = json_real_value(cm_json_get(log, "1.time")) - json_real_value(cm_json_get(log, "0.time"));
    CU_ASSERT(gap >= 2.0 - 0.05);
    if (gap < 1.95)
        fprintf(stderr, "retry after %.3f s, want >= 2\n", gap);
    json_decref(log);
    env_finish(&e);
    rx_stop(&rx);
}

static void test_refused_400(void)
{
    struct env e;
    struct rx rx;
    json_t *log;

    CU_ASSERT_FATAL(
        rx_start(&rx, "http_receiver.py", "--responses", "400", "--body", "invalid_payload", NULL));
    env_init(&e);
    add_notifier(&e, "slack", CM_NOTIFIER_SLACK, NULL)->url = url_of("http", rx.port, "/s");
    env_start(&e);
    observe(&e, "a.example:443", NULL, 1, &f_expiring);
    CU_ASSERT(run_until(&e, "slack", DROPPED, 1, 5000));
    run_for(&e, 1500); /* no retry comes */
    EXPECT_INT(counter(&e, "slack", DROPPED), 1);
    EXPECT_INT(counter(&e, "slack", SENT), 0);
    EXPECT_INT(counter(&e, "slack", FAILED), 1);
    EXPECT_INT(stats_of(&e, "slack").queued, 0);
    log = rx_log(&rx);
    EXPECT_INT(json_array_size(log), 1);
    CU_ASSERT(strstr(or_empty(cm_json_str(log, "0.body")), "\"text\"") != NULL);
    json_decref(log);
    env_finish(&e);
    rx_stop(&rx);
}

static size_t alerts_on(json_t *log, const char *path, const char *finding)
{
    size_t i, n = 0;
    json_t *r;

    json_array_foreach(log, i, r)
    {
        if (strcmp(or_empty(cm_json_str(r, "path")), path) != 0)
            continue;
        json_t *b = json_loads(or_empty(cm_json_str(r, "body")), 0, NULL), *a;
        size_t k;
        json_array_foreach(cm_json_get(b, "alerts"), k, a)
        {
            if (!finding || strcmp(or_empty(cm_json_str(a, "finding")), finding) == 0)
                n++;
        }
        json_decref(b);
    }
    return n;
}

/* Alerts the receiver got on path (of finding, or all when NULL): want of them. */
struct alerts_want {
    const char *path, *finding;
    size_t want;
};

static void expect_alerts(json_t *log, const struct alerts_want *w, size_t n, unsigned line)
{
    char what[128];

    for (size_t i = 0; i < n; i++) {
        snprintf(what, sizeof(what), "alerts on %s of %s", w[i].path,
                 w[i].finding ? w[i].finding : "any finding");
        expect_int(alerts_on(log, w[i].path, w[i].finding), w[i].want, what, line);
    }
}

static void test_filters(void)
{
    struct env e;
    struct rx rx;
    static const char *only[] = {"chain.untrusted"};
    static const struct hook hooks[] = {
        {"crit", "/crit", CM_SEV_CRITICAL, NULL, NULL},
        {"info", "/info", CM_SEV_INFO, NULL, NULL},
        {"only", "/only", CM_SEV_WARNING, only, NULL},
        {"prod", "/prod", CM_SEV_WARNING, NULL, &prod},
        {"dev", "/dev", CM_SEV_WARNING, NULL, &dev},
    };
    /* Both targets fire together: one message each for crit and only (2 alerts); prod gets
     * the warning and the critical of a.example only. */
    static const struct alerts_want want[] = {
        {"/crit", NULL, 2}, {"/crit", "chain.untrusted", 2},
        {"/info", NULL, 4}, {"/info", "chain.order", 1},
        {"/only", NULL, 2}, {"/only", "chain.untrusted", 2},
        {"/prod", NULL, 2}, {"/dev", NULL, 0},
    };
    json_t *log;

    CU_ASSERT_FATAL(rx_start(&rx, "http_receiver.py", NULL));
    env_init(&e);
    add_hooks(&e, rx.port, hooks, sizeof(hooks) / sizeof(hooks[0]));
    env_start(&e);

    observe(&e, "a.example:443", &prod, 3, &f_expiring, &f_untrusted, &f_info);
    observe(&e, "nolabels:443", NULL, 1, &f_untrusted);
    for (size_t i = 0; i < 4; i++)
        CU_ASSERT(run_until(&e, hooks[i].name, SENT, 1, 5000));
    run_for(&e, 300);
    EXPECT_INT(counter(&e, "dev", SENT), 0);
    EXPECT_INT(stats_of(&e, "dev").queued, 0);

    log = rx_log(&rx);
    expect_alerts(log, want, sizeof(want) / sizeof(want[0]), __LINE__);
    json_decref(log);
    env_finish(&e);
    rx_stop(&rx);
}

/* A renewal: the leaf's expiry alert resolves with the note in front of its message (another
 * alert resolving at the same time keeps its own); the renewal event goes to the notifiers
 * whose match and findings take it, whatever their min_severity. */
static void test_renewed_and_event(void)
{
    struct env e;
    struct rx rx;
    static const char *only[] = {"chain.untrusted"}, *renewed[] = {"cert.renewed"};
    static const struct hook hooks[] = {
        {"all", "/all", CM_SEV_CRITICAL, NULL, NULL},
        {"only", "/only", CM_SEV_WARNING, only, NULL},
        {"renewed", "/renewed", CM_SEV_WARNING, renewed, NULL},
        {"dev", "/dev", CM_SEV_WARNING, NULL, &dev},
        {"warn", "/warn", CM_SEV_WARNING, NULL, NULL},
    };
    /* min_severity critical does not hold the event back; a findings list does, unless it
     * names cert.renewed; a match that fails does. */
    static const struct alerts_want want[] = {
        {"/all", "cert.renewed", 1},
        {"/only", "cert.renewed", 0},
        {"/renewed", NULL, 1},
        {"/dev", NULL, 0},
    };
    struct cm_findings none = {0};
    json_t *log, *b;
    size_t i, found = 0;

    CU_ASSERT_FATAL(rx_start(&rx, "http_receiver.py", NULL));
    env_init(&e);
    add_hooks(&e, rx.port, hooks, sizeof(hooks) / sizeof(hooks[0]));
    env_start(&e);

    observe(&e, "a.example:443", &prod, 2, &f_expiring, &f_untrusted);
    CU_ASSERT(run_until(&e, "warn", SENT, 1, 5000));
    cm_notify_observe_renewed(e.n, "a.example:443", &prod, &none, NULL, (int64_t)time(NULL),
                              "renewed, now valid until 2027-03-01T00:00:00Z");
    cm_notify_event(e.n, "a.example:443", &prod, "cert.renewed",
                    "certificate of a.example:443 renewed", (int64_t)time(NULL));
    CU_ASSERT(run_until(&e, "warn", SENT, 2, 5000));
    CU_ASSERT(run_until(&e, "all", SENT, 2, 5000));
    CU_ASSERT(run_until(&e, "renewed", SENT, 1, 5000));
    run_for(&e, 300);
    EXPECT_INT(counter(&e, "dev", SENT), 0);

    log = rx_log(&rx);
    /* "warn" got the two alerts, then their resolution and the event in one message. */
    EXPECT_INT(alerts_on(log, "/warn", NULL), 5);
    for (i = 0; i < json_array_size(log); i++) {
        if (strcmp(or_empty(cm_json_str(json_array_get(log, i), "path")), "/warn") != 0 ||
            !(b = rx_body(log, i)))
            continue;
        if (json_array_size(cm_json_get(b, "alerts")) == 3) {
            found++;
            EXPECT_JSON_STRS(
                b, {"alerts.0.status", "resolved"}, {"alerts.0.finding", "cert.expiring"},
                {"alerts.0.message",
                 "renewed, now valid until 2027-03-01T00:00:00Z; was: expires in 5 days"},
                {"alerts.1.finding", "chain.untrusted"}, {"alerts.1.message", "issuer not trusted"},
                {"alerts.2.status", "firing"}, {"alerts.2.finding", "cert.renewed"},
                {"alerts.2.severity", "info"},
                {"alerts.2.message", "certificate of a.example:443 renewed"});
        }
        json_decref(b);
    }
    EXPECT_INT(found, 1);
    expect_alerts(log, want, sizeof(want) / sizeof(want[0]), __LINE__);
    json_decref(log);
    env_finish(&e);
    rx_stop(&rx);
}

static void test_persist_across_restart(void)
{
    struct env e;
    struct rx rx;
    int port = cm_th_free_port();
    char *url = url_of("http", port, "/h");
    json_t *saved, *log, *b;
    char *text;

    /* The receiver is down: the message stays queued. */
    env_init(&e);
    add_notifier(&e, "hook", CM_NOTIFIER_WEBHOOK, url);
    env_start(&e);
    observe(&e, "a.example:443", NULL, 1, &f_expiring);
    CU_ASSERT(run_until(&e, "hook", FAILED, 1, 5000));
    EXPECT_INT(stats_of(&e, "hook").queued, 1);
    saved = cm_notify_to_json(e.n);
    CU_ASSERT_FATAL(saved != NULL);
    EXPECT_INT(json_array_size(cm_json_get(saved, "hook.queue")), 1);
    EXPECT_INT(json_array_size(cm_json_get(saved, "hook.alerts")), 1);
    EXPECT_STR(cm_json_str(saved, "hook.queue.0.url"), url);
    CU_ASSERT(json_integer_value(cm_json_get(saved, "hook.queue.0.attempts")) >= 1);
    text = json_dumps(saved, JSON_COMPACT);
    json_decref(saved);
    env_finish(&e);

    /* "Restart": a new notify loads the document, then the receiver comes up. */
    env_init(&e);
    add_notifier(&e, "hook", CM_NOTIFIER_WEBHOOK, url);
    env_start(&e);
    saved = json_loads(text, 0, NULL);
    EXPECT_INT(cm_notify_load_json(e.n, saved), 0);
    json_decref(saved);
    free(text);
    EXPECT_INT(stats_of(&e, "hook").queued, 1);
    CU_ASSERT_FATAL(rx_start_on(&rx, port, "http_receiver.py", NULL));
    CU_ASSERT(run_until(&e, "hook", SENT, 1, 8000));
    /* The alert table came back too: the same finding is not sent again. */
    observe(&e, "a.example:443", NULL, 1, &f_expiring);
    run_for(&e, 300);
    EXPECT_INT(stats_of(&e, "hook").queued, 0);
    log = rx_log(&rx);
    EXPECT_INT(json_array_size(log), 1);
    b = rx_body(log, 0);
    EXPECT_INT(json_array_size(cm_json_get(b, "alerts")), 1);
    EXPECT_STR(cm_json_str(b, "alerts.0.finding"), "cert.expiring");
    EXPECT_STR(cm_json_str(b, "alerts.0.target"), "a.example:443");
    json_decref(b);
    json_decref(log);
    saved = cm_notify_to_json(e.n);
    EXPECT_INT(json_array_size(cm_json_get(saved, "hook.queue")), 0);
    json_decref(saved);
    env_finish(&e);
    rx_stop(&rx);
    free(url);
}

static void test_load_json_max_age_and_malformed(void)
{
    struct env e;
    json_t *doc;
    char buf[1024];
    int port = cm_th_free_port();

    env_init(&e);
    add_notifier(&e, "hook", CM_NOTIFIER_WEBHOOK, NULL)->url = url_of("http", port, "/h");
    env_start(&e);
    doc = json_loads("{\"hook\": {\"alerts\": 5}}", 0, NULL);
    EXPECT_INT(cm_notify_load_json(e.n, doc), CM_ESTATE);
    json_decref(doc);
    doc = json_loads("{\"hook\": {\"queue\": [{\"notices\": []}]}}", 0, NULL);
    EXPECT_INT(cm_notify_load_json(e.n, doc), CM_ESTATE);
    json_decref(doc);
    EXPECT_INT(stats_of(&e, "hook").queued, 0);

    snprintf(buf, sizeof(buf),
             "{\"other\": {}, \"hook\": {\"alerts\": [], \"queue\": [{\"url\": \"x\", "
             "\"created_at\": %lld, \"attempts\": 3, \"notices\": [{\"kind\": \"firing\", "
             "\"target\": \"t:443\", \"id\": \"cert.expired\", \"position\": 0, \"severity\": "
             "\"critical\", \"previous\": \"critical\", \"message\": \"m\", \"started_at\": 1, "
             "\"fired_at\": 1, \"at\": 1}]}]}}",
             (long long)time(NULL) - 2 * 86400);
    doc = json_loads(buf, 0, NULL);
    CU_ASSERT_FATAL(doc != NULL);
    EXPECT_INT(cm_notify_load_json(e.n, doc), 0);
    json_decref(doc);
    EXPECT_INT(stats_of(&e, "hook").queued, 1);
    CU_ASSERT(run_until(&e, "hook", DROPPED, 1, 3000));
    EXPECT_INT(stats_of(&e, "hook").queued, 0);
    EXPECT_INT(counter(&e, "hook", FAILED), 0); /* never tried */
    env_finish(&e);
}

static void test_email(void)
{
    struct env e;
    struct rx rx;
    struct cm_config_notifier *c;
    char *to[] = {"ops@example.org", "oncall@example.org"};
    json_t *log;
    const char *data;

    CU_ASSERT_FATAL(rx_start(&rx, "smtp_receiver.py", NULL));
    env_init(&e);
    c = add_notifier(&e, "mail", CM_NOTIFIER_EMAIL, NULL);
    c->url = url_of("smtp", rx.port, "");
    c->from = "certmon@example.org";
    c->to = to;
    c->to_count = 2;
    c->starttls = false;
    env_start(&e);
    observe(&e, "a.example:443", NULL, 1, &f_expiring);
    CU_ASSERT(run_until(&e, "mail", SENT, 1, 8000));
    log = rx_log(&rx);
    EXPECT_INT(json_array_size(log), 1);
    EXPECT_STR(cm_json_str(log, "0.mail_from"), "certmon@example.org");
    EXPECT_INT(json_array_size(cm_json_get(log, "0.rcpt_tos")), 2);
    EXPECT_STR(cm_json_str(log, "0.rcpt_tos.0"), "ops@example.org");
    EXPECT_STR(cm_json_str(log, "0.rcpt_tos.1"), "oncall@example.org");
    data = cm_json_str(log, "0.data");
    CU_ASSERT_FATAL(data != NULL);
    CU_ASSERT(strstr(data, "Subject: [certmon] WARNING: cert.expiring on a.example:443\r\n") !=
              NULL);
    CU_ASSERT(strstr(data, "expires in 5 days") != NULL);
    json_decref(log);
    env_finish(&e);
    rx_stop(&rx);
}

static void test_alertmanager_ha(void)
{
    struct env e;
    struct rx a, b;
    struct cm_config_notifier *c;
    int dead = cm_th_free_port();
    json_t *log, *body;

    CU_ASSERT_FATAL(rx_start(&a, "http_receiver.py", NULL));
    CU_ASSERT_FATAL(rx_start(&b, "http_receiver.py", NULL));
    env_init(&e);
    c = add_notifier(&e, "am", CM_NOTIFIER_ALERTMANAGER, NULL);
    c->urls = calloc(3, sizeof(char *));
    c->urls[0] = url_of("http", a.port, "/api/v2/alerts");
    c->urls[1] = url_of("http", dead, "/api/v2/alerts"); /* down: holds back nobody */
    c->urls[2] = url_of("http", b.port, "/api/v2/alerts");
    c->url_count = 3;
    c->url = strdup(c->urls[0]);
    c->generator_url = "http://certmon.example/";
    env_start(&e);

    observe(&e, "a.example:443", &prod, 1, &f_untrusted);
    CU_ASSERT(run_until(&e, "am", SENT, 2, 5000));
    CU_ASSERT(counter(&e, "am", FAILED) >= 1);
    EXPECT_INT(stats_of(&e, "am").queued, 1); /* the dead one's */
    observe(&e, "a.example:443", &prod, 0);
    CU_ASSERT(run_until(&e, "am", SENT, 4, 5000));
    for (int i = 0; i < 2; i++) {
        log = rx_log(i == 0 ? &a : &b);
        EXPECT_INT(json_array_size(log), 2);
        EXPECT_STR(cm_json_str(log, "0.path"), "/api/v2/alerts");
        body = rx_body(log, 0);
        EXPECT_INT(json_array_size(body), 1);
        EXPECT_STR(cm_json_str(body, "0.labels.alertname"), "CertmonFinding");
        EXPECT_STR(cm_json_str(body, "0.labels.finding"), "chain.untrusted");
        EXPECT_STR(cm_json_str(body, "0.labels.env"), "prod");
        EXPECT_STR(cm_json_str(body, "0.generatorURL"), "http://certmon.example/");
        json_decref(body);
        body = rx_body(log, 1);
        CU_ASSERT(cm_json_str(body, "0.endsAt") != NULL); /* resolved */
        json_decref(body);
        json_decref(log);
    }
    EXPECT_INT(stats_of(&e, "am").queued, 2); /* firing and resolved wait for the dead one */
    for (size_t i = 0; i < 3; i++)
        free(c->urls[i]);
    env_finish(&e);
    rx_stop(&a);
    rx_stop(&b);
}

struct tested {
    int n;
    char names[4][32];
    long status[4];
    int curl_code[4];
};

static void on_tested(const char *name, const char *type, const struct cm_httpc_result *r,
                      void *arg)
{
    struct tested *t = arg;
    (void)type;
    if (t->n < 4) {
        snprintf(t->names[t->n], sizeof(t->names[0]), "%s", name);
        t->status[t->n] = r->status;
        t->curl_code[t->n] = r->curl_code;
    }
    t->n++;
}

static void test_notify_test(void)
{
    struct env e;
    struct rx ok, gone;
    struct cm_config_notifier *c;
    struct tested t = {0};
    json_t *log, *b;
    uint64_t end;

    CU_ASSERT_FATAL(rx_start(&ok, "http_receiver.py", NULL));
    CU_ASSERT_FATAL(rx_start(&gone, "http_receiver.py", "--responses", "404", NULL));
    env_init(&e);
    c = add_notifier(&e, "hook", CM_NOTIFIER_WEBHOOK, NULL);
    c->url = url_of("http", ok.port, "/h");
    c->min_severity = CM_SEV_CRITICAL; /* bypassed */
    add_notifier(&e, "slack", CM_NOTIFIER_SLACK, NULL)->url = url_of("http", gone.port, "/s");
    env_start(&e);
    EXPECT_INT(cm_notify_test(e.n, "nope", on_tested, &t), -ENOENT);
    EXPECT_INT(cm_notify_test(e.n, NULL, on_tested, &t), 2);
    EXPECT_INT(t.n, 0);
    end = uv_hrtime() + 5000000000u;
    while (t.n < 2 && uv_hrtime() < end)
        run_for(&e, 20);
    EXPECT_INT(t.n, 2);
    for (int i = 0; i < 2 && i < t.n; i++) {
        EXPECT_INT(t.curl_code[i], 0);
        EXPECT_INT(t.status[i], strcmp(t.names[i], "hook") == 0 ? 200 : 404);
    }
    /* Bypasses the queue: no counters move. */
    EXPECT_INT(counter(&e, "slack", DROPPED), 0);
    EXPECT_INT(counter(&e, "hook", SENT), 0);
    log = rx_log(&ok);
    b = rx_body(log, 0);
    EXPECT_STR(cm_json_str(b, "alerts.0.target"), CM_NOTIFY_TEST_TARGET);
    EXPECT_STR(cm_json_str(b, "alerts.0.message"), CM_NOTIFY_TEST_MESSAGE);
    EXPECT_STR(cm_json_str(b, "alerts.0.severity"), "info");
    json_decref(b);
    json_decref(log);

    /* Only one, and a close with the test in flight reports it cancelled. */
    t.n = 0;
    EXPECT_INT(cm_notify_test(e.n, "hook", on_tested, &t), 1);
    cm_notify_close(e.n);
    EXPECT_INT(t.n, 1);
    EXPECT_INT(t.curl_code[0], CURLE_ABORTED_BY_CALLBACK);
    e.n = NULL;
    env_finish(&e);
    rx_stop(&ok);
    rx_stop(&gone);
}

static void test_close_in_flight_keeps_message(void)
{
    struct env e;
    struct rx rx;
    json_t *saved;

    CU_ASSERT_FATAL(rx_start(&rx, "http_receiver.py", "--responses", "hang", NULL));
    env_init(&e);
    add_notifier(&e, "hook", CM_NOTIFIER_WEBHOOK, NULL)->url = url_of("http", rx.port, "/h");
    env_start(&e);
    observe(&e, "a.example:443", NULL, 1, &f_expiring);
    run_for(&e, 500);
    EXPECT_INT(cm_httpc_active(e.h), 1);
    saved = cm_notify_to_json(e.n);
    EXPECT_INT(json_array_size(cm_json_get(saved, "hook.queue")), 1); /* being sent: kept */
    json_decref(saved);
    cm_notify_close(e.n);
    EXPECT_INT(cm_httpc_active(e.h), 0);
    saved = cm_notify_to_json(e.n); /* still readable until its handles have closed */
    EXPECT_INT(json_array_size(cm_json_get(saved, "hook.queue")), 1);
    EXPECT_INT(json_integer_value(cm_json_get(saved, "hook.queue.0.attempts")), 0);
    json_decref(saved);
    e.n = NULL;
    env_finish(&e);
    rx_stop(&rx);
}

static void test_reconfigure(void)
{
    struct env e;
    struct rx rx;
    struct cm_config cfg2 = {0};
    struct cm_config_notifier nn[2];

    CU_ASSERT_FATAL(rx_start(&rx, "http_receiver.py", NULL));
    env_init(&e);
    add_notifier(&e, "keep", CM_NOTIFIER_WEBHOOK, NULL)->url = url_of("http", rx.port, "/k");
    add_notifier(&e, "gone", CM_NOTIFIER_WEBHOOK, NULL)->url = url_of("http", rx.port, "/g");
    env_start(&e);
    observe(&e, "a.example:443", NULL, 1, &f_expiring);
    CU_ASSERT(run_until(&e, "keep", SENT, 1, 5000));

    nn[0] = e.cfg.notifiers[0];
    nn[0].min_severity = CM_SEV_CRITICAL;
    memset(&nn[1], 0, sizeof(nn[1]));
    nn[1] = e.cfg.notifiers[1];
    nn[1].name = "new";
    cfg2.notifiers = nn;
    cfg2.notifier_count = 2;
    EXPECT_INT(cm_notify_reconfigure(e.n, &cfg2), 0);
    EXPECT_INT(counter(&e, "keep", SENT), 1); /* kept: counters and table */
    EXPECT_INT(stats_of(&e, "gone").name == NULL, 1);
    EXPECT_INT(counter(&e, "new", SENT), 0);
    /* keep now wants critical only: its fired warning resolves. */
    observe(&e, "a.example:443", NULL, 1, &f_expiring);
    CU_ASSERT(run_until(&e, "keep", SENT, 2, 5000));
    CU_ASSERT(run_until(&e, "new", SENT, 1, 5000));
    cm_notify_close(e.n);
    e.n = NULL;
    env_finish(&e);
    rx_stop(&rx);
}

/* The number of notifiers grows and shrinks while one is kept: the per-notifier bookkeeping of
 * a reload is sized by the notifiers running before it (ASan and LSan would see a read past it
 * or a leak). */
static void test_reconfigure_count_changes(void)
{
    struct env e;
    struct rx rx;
    struct cm_config grow = {0}, shrink = {0};
    struct cm_config_notifier three[3], one[1];

    CU_ASSERT_FATAL(rx_start(&rx, "http_receiver.py", NULL));
    env_init(&e);
    add_notifier(&e, "keep", CM_NOTIFIER_WEBHOOK, NULL)->url = url_of("http", rx.port, "/k");
    env_start(&e);
    observe(&e, "a.example:443", NULL, 1, &f_expiring);
    CU_ASSERT(run_until(&e, "keep", SENT, 1, 5000));

    for (size_t i = 0; i < 3; i++)
        three[i] = e.cfg.notifiers[0];
    three[1].name = "second";
    three[2].name = "third";
    grow.notifiers = three;
    grow.notifier_count = 3;
    EXPECT_INT(cm_notify_reconfigure(e.n, &grow), 0);
    EXPECT_INT(counter(&e, "keep", SENT), 1);
    EXPECT_INT(counter(&e, "second", SENT), 0);
    CU_ASSERT(stats_of(&e, "third").name != NULL);

    one[0] = three[2];
    shrink.notifiers = one;
    shrink.notifier_count = 1;
    EXPECT_INT(cm_notify_reconfigure(e.n, &shrink), 0);
    CU_ASSERT(stats_of(&e, "keep").name == NULL);
    CU_ASSERT(stats_of(&e, "second").name == NULL);
    /* The one left delivers. */
    observe(&e, "b.example:443", NULL, 1, &f_expiring);
    CU_ASSERT(run_until(&e, "third", SENT, 1, 5000));
    cm_notify_close(e.n);
    e.n = NULL;
    env_finish(&e);
    rx_stop(&rx);
}

static void test_for_and_repeat_by_tick(void)
{
    struct env e;
    struct rx rx;
    struct cm_config_notifier *c;
    json_t *log;

    CU_ASSERT_FATAL(rx_start(&rx, "http_receiver.py", NULL));
    env_init(&e);
    c = add_notifier(&e, "slow", CM_NOTIFIER_WEBHOOK, NULL);
    c->url = url_of("http", rx.port, "/slow");
    c->for_ms = 1000;
    c = add_notifier(&e, "am", CM_NOTIFIER_ALERTMANAGER, NULL);
    c->url = url_of("http", rx.port, "/am");
    c->resend_ms = 1000; /* re-sent while active */
    c->repeat_ms = 0;    /* ignored for Alertmanager */
    env_start(&e);
    observe(&e, "a.example:443", &prod, 1, &f_untrusted);
    EXPECT_INT(stats_of(&e, "slow").queued, 0); /* pending */
    CU_ASSERT(run_until(&e, "slow", SENT, 1, 4000));
    CU_ASSERT(run_until(&e, "am", SENT, 2, 4000)); /* firing, then a repeat from the tick */
    log = rx_log(&rx);
    EXPECT_INT(alerts_on(log, "/slow", "chain.untrusted"), 1);
    json_decref(log);
    env_finish(&e);
    rx_stop(&rx);
}

static void remove_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}

static int suite_init(void)
{
    static const char *const proxies[] = {"http_proxy",  "https_proxy", "HTTP_PROXY",
                                          "HTTPS_PROXY", "all_proxy",   "ALL_PROXY"};
    for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++)
        unsetenv(proxies[i]);
    setenv("no_proxy", "127.0.0.1,localhost", 1);
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/certmon-notify.XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    atexit(remove_tmpdir);
    return 0;
}

/* PagerDuty takes one event per request: a group of two alerts leaves as two events, and a
 * persisted message of several notices (here a webhook's, the notifier having become a
 * pagerduty one under the same name) is split on load. */
static void test_pagerduty_one_event_per_alert(void)
{
    struct env e;
    struct rx rx;
    struct cm_config_notifier *c;
    int dead = cm_th_free_port();
    json_t *log, *b0, *b1, *saved;
    char *text;

    CU_ASSERT_FATAL(rx_start(&rx, "http_receiver.py", "--responses", "202", NULL));
    env_init(&e);
    c = add_notifier(&e, "pd", CM_NOTIFIER_PAGERDUTY, NULL);
    c->url = url_of("http", rx.port, "/v2/enqueue");
    c->token = "K3y";
    c->group_wait_ms = 200;
    env_start(&e);
    observe(&e, "a.example:443", &prod, 2, &f_expiring, &f_untrusted);
    CU_ASSERT(run_until(&e, "pd", SENT, 2, 5000));
    log = rx_log(&rx);
    EXPECT_INT(json_array_size(log), 2);
    b0 = rx_body(log, 0);
    b1 = rx_body(log, 1);
    EXPECT_JSON_STRS(b0, {"event_action", "trigger"}, {"routing_key", "K3y"},
                     {"payload.class", "cert.expiring"}, {"payload.source", "a.example:443"});
    EXPECT_JSON_STRS(b1, {"event_action", "trigger"}, {"routing_key", "K3y"},
                     {"payload.class", "chain.untrusted"}, {"payload.source", "a.example:443"});
    CU_ASSERT(
        strcmp(or_empty(cm_json_str(b0, "dedup_key")), or_empty(cm_json_str(b1, "dedup_key"))));
    json_decref(log);
    /* Resolved: two resolve events with the same keys. */
    observe(&e, "a.example:443", &prod, 0);
    CU_ASSERT(run_until(&e, "pd", SENT, 4, 5000));
    log = rx_log(&rx);
    {
        json_t *r0 = rx_body(log, 2), *r1 = rx_body(log, 3);
        EXPECT_JSON_STRS(r0, {"event_action", "resolve"},
                         {"dedup_key", or_empty(cm_json_str(b0, "dedup_key"))});
        EXPECT_JSON_STRS(r1, {"event_action", "resolve"},
                         {"dedup_key", or_empty(cm_json_str(b1, "dedup_key"))});
        json_decref(r0);
        json_decref(r1);
    }
    json_decref(log);
    json_decref(b0);
    json_decref(b1);
    env_finish(&e);

    /* A webhook "x" cannot deliver: its queue holds one message of two notices. */
    env_init(&e);
    c = add_notifier(&e, "x", CM_NOTIFIER_WEBHOOK, NULL);
    c->url = url_of("http", dead, "/h");
    env_start(&e);
    observe(&e, "b.example:443", NULL, 2, &f_expiring, &f_untrusted);
    CU_ASSERT(run_until(&e, "x", FAILED, 1, 5000));
    saved = cm_notify_to_json(e.n);
    EXPECT_INT(json_array_size(cm_json_get(saved, "x.queue")), 1);
    EXPECT_INT(json_array_size(cm_json_get(saved, "x.queue.0.notices")), 2);
    text = json_dumps(saved, JSON_COMPACT);
    json_decref(saved);
    env_finish(&e);
    /* "x" is a pagerduty notifier after the restart: two events. */
    env_init(&e);
    c = add_notifier(&e, "x", CM_NOTIFIER_PAGERDUTY, NULL);
    c->url = url_of("http", rx.port, "/v2/enqueue");
    c->token = "K3y";
    env_start(&e);
    saved = json_loads(text, 0, NULL);
    EXPECT_INT(cm_notify_load_json(e.n, saved), 0);
    json_decref(saved);
    free(text);
    CU_ASSERT(run_until(&e, "x", SENT, 2, 8000));
    EXPECT_INT(counter(&e, "x", DROPPED), 0);
    log = rx_log(&rx);
    EXPECT_INT(json_array_size(log), 6);
    b0 = rx_body(log, 4);
    EXPECT_STR(cm_json_str(b0, "payload.source"), "b.example:443");
    json_decref(b0);
    json_decref(log);
    env_finish(&e);
    rx_stop(&rx);
}

/* Telegram: the request goes to BASE/bot<token>/sendMessage; the persisted queue names the
 * base URL only. ntfy: the Bearer token in a header. */
static void test_telegram_url_and_ntfy_token(void)
{
    struct env e;
    struct rx rx;
    struct cm_config_notifier *t, *n;
    int dead = cm_th_free_port();
    json_t *log, *saved;
    char *text;

    CU_ASSERT_FATAL(rx_start(&rx, "http_receiver.py", NULL));
    env_init(&e);
    t = add_notifier(&e, "tg", CM_NOTIFIER_TELEGRAM, NULL);
    t->url = url_of("http", rx.port, "/tgapi/");
    t->token = "12345:AAsecret";
    t->chat_id = "42";
    t->html = true;
    n = add_notifier(&e, "nt", CM_NOTIFIER_NTFY, NULL);
    n->url = url_of("http", rx.port, "/topic");
    n->token = "tk_1";
    env_start(&e);
    observe(&e, "a.example:443", NULL, 1, &f_untrusted);
    CU_ASSERT(run_until(&e, "tg", SENT, 1, 5000));
    CU_ASSERT(run_until(&e, "nt", SENT, 1, 5000));
    log = rx_log(&rx);
    EXPECT_INT(json_array_size(log), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *r = json_array_get(log, i);
        if (!strcmp(or_empty(cm_json_str(r, "path")), "/topic")) {
            EXPECT_JSON_STRS(r, {"headers.authorization", "Bearer tk_1"},
                             {"headers.priority", "5"});
        } else {
            EXPECT_STR(cm_json_str(r, "path"), "/tgapi/bot12345:AAsecret/sendMessage");
        }
    }
    json_decref(log);
    env_finish(&e);

    env_init(&e);
    t = add_notifier(&e, "tg", CM_NOTIFIER_TELEGRAM, NULL);
    t->url = url_of("http", dead, "");
    t->token = "12345:AAsecret";
    t->chat_id = "42";
    env_start(&e);
    observe(&e, "a.example:443", NULL, 1, &f_untrusted);
    CU_ASSERT(run_until(&e, "tg", FAILED, 1, 5000));
    saved = cm_notify_to_json(e.n);
    text = json_dumps(saved, JSON_COMPACT);
    CU_ASSERT_FATAL(text != NULL);
    CU_ASSERT_PTR_NULL(strstr(text, "AAsecret"));
    EXPECT_INT(json_array_size(cm_json_get(saved, "tg.queue")), 1);
    free(text);
    json_decref(saved);
    env_finish(&e);
    rx_stop(&rx);
}

/* ---- Row by row (the persistence hooks) ----
 *
 * What a caller that writes each reported row keeps (the daemon: tables alerts and outbox),
 * as JSON objects keyed like the tables' primary keys; turned back into load_json's document
 * the way the store reads it (cm_store_notify_read: in seq order, with seq, grouped notices
 * as "grouping"). */
struct mirror {
    json_t *alerts, *outbox; /* "notifier|target|id|position" / "notifier|seq" -> row */
    unsigned puts, gones, tried, dropped;
};

static void m_alert(void *arg, const char *notifier, const struct cm_alert_row *r, bool removed)
{
    struct mirror *m = arg;
    char key[512];

    snprintf(key, sizeof(key), "%s|%s|%s|%d", notifier, r->target, r->id, r->position);
    if (removed) {
        EXPECT_INT(json_object_del(m->alerts, key), 0);
        return;
    }
    json_object_set_new(
        m->alerts, key,
        json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:I, s:o, s:o, s:I}", "_n", notifier, "target",
                  r->target, "id", r->id, "position", r->position, "severity",
                  cm_severity_name(r->severity), "message", r->message, "started_at",
                  (json_int_t)r->started_at, "fired_at",
                  r->fired ? json_integer(r->fired_at) : json_null(), "notified_at",
                  r->fired ? json_integer(r->notified_at) : json_null(), "seq",
                  (json_int_t)r->seq));
}

static void m_put(void *arg, const char *notifier, const struct cm_notify_msg_row *r)
{
    struct mirror *m = arg;
    char key[300];
    json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:o}", "_n", notifier, "seq", (json_int_t)r->seq,
                          "created_at", (json_int_t)r->created_at, "attempts",
                          (json_int_t)r->attempts, "notices", json_loads(r->notices, 0, NULL));

    CU_ASSERT_FATAL(o != NULL);
    if (r->url)
        json_object_set_new(o, "url", json_string(r->url));
    else
        json_object_set_new(o, "grouping", json_true());
    snprintf(key, sizeof(key), "%s|%llu", notifier, (unsigned long long)r->seq);
    json_object_set_new(m->outbox, key, o);
    m->puts++;
}

static void m_tried(void *arg, const char *notifier, uint64_t seq, unsigned attempts)
{
    struct mirror *m = arg;
    char key[300];

    snprintf(key, sizeof(key), "%s|%llu", notifier, (unsigned long long)seq);
    CU_ASSERT_FATAL(json_object_get(m->outbox, key) != NULL);
    json_object_set_new(json_object_get(m->outbox, key), "attempts", json_integer(attempts));
    m->tried++;
}

static void m_gone(void *arg, const char *notifier, uint64_t seq)
{
    struct mirror *m = arg;
    char key[300];

    snprintf(key, sizeof(key), "%s|%llu", notifier, (unsigned long long)seq);
    EXPECT_INT(json_object_del(m->outbox, key), 0); /* only what was put goes */
    m->gones++;
}

static void m_dropped(void *arg, const char *notifier)
{
    struct mirror *m = arg;
    json_t *tables[] = {m->alerts, m->outbox};

    m->dropped++;
    for (int t = 0; t < 2; t++) {
        const char *k;
        void *tmp;
        json_t *v;
        json_object_foreach_safe(tables[t], tmp, k, v)
        {
            if (!strcmp(cm_json_str(v, "_n"), notifier))
                json_object_del(tables[t], k);
        }
    }
}

static const struct cm_notify_persist mirror_hooks = {
    .alert = m_alert, .msg_put = m_put, .msg_tried = m_tried, .msg_gone = m_gone,
    .dropped = m_dropped};

/* Appends v to arr, kept in seq order. */
static void insert_by_seq(json_t *arr, json_t *v)
{
    size_t i = json_array_size(arr);
    json_int_t seq = json_integer_value(json_object_get(v, "seq"));

    while (i > 0 && json_integer_value(json_object_get(json_array_get(arr, i - 1), "seq")) > seq)
        i--;
    json_array_insert(arr, i, v);
}

static json_t *mirror_doc(const struct mirror *m)
{
    json_t *doc = json_object();
    const char *names[] = {"alerts", "queue"};
    json_t *tables[] = {m->alerts, m->outbox};

    for (int t = 0; t < 2; t++) {
        const char *k;
        json_t *v;
        json_object_foreach(tables[t], k, v)
        {
            const char *n = cm_json_str(v, "_n");
            json_t *nt = json_object_get(doc, n), *copy = json_deep_copy(v);
            if (!nt) {
                nt = json_pack("{s:[], s:[]}", "alerts", "queue");
                json_object_set_new(doc, n, nt);
            }
            json_object_del(copy, "_n");
            insert_by_seq(json_object_get(nt, names[t]), copy);
            json_decref(copy);
        }
    }
    return doc;
}

static void test_persist_row_by_row(void)
{
    struct env e;
    struct rx rx;
    struct mirror m = {.alerts = json_object(), .outbox = json_object()};
    int port = cm_th_free_port();
    char *url = url_of("http", port, "/h");
    struct cm_config_notifier *c;
    json_t *doc, *saved, *log, *b;

    /* The receiver is down. A finding fires: its alert row, and its notice as a row of its
     * own while it is grouped ("killed" here, it would come back into the group). */
    env_init(&e);
    c = add_notifier(&e, "hook", CM_NOTIFIER_WEBHOOK, url);
    c->group_wait_ms = 300;
    add_notifier(&e, "old", CM_NOTIFIER_WEBHOOK, url);
    env_start(&e);
    cm_notify_set_persist(e.n, &mirror_hooks, &m);
    observe(&e, "a.example:443", NULL, 2, &f_expiring, &f_untrusted);
    EXPECT_INT(json_object_size(m.alerts), 4); /* two notifiers, two alerts each */
    EXPECT_INT(json_object_size(m.outbox), 4);
    doc = mirror_doc(&m);
    EXPECT_INT(json_array_size(cm_json_get(doc, "hook.queue")), 2);
    CU_ASSERT(json_is_true(cm_json_get(doc, "hook.queue.0.grouping")));
    EXPECT_STR(cm_json_str(doc, "hook.alerts.0.id"), "cert.expiring");
    CU_ASSERT(json_is_integer(cm_json_get(doc, "hook.alerts.0.fired_at")));
    json_decref(doc);
    /* The group leaves as one message: one row replaces the two; each failed attempt is
     * counted on it. */
    CU_ASSERT(run_until(&e, "hook", FAILED, 2, 8000));
    doc = mirror_doc(&m);
    EXPECT_INT(json_array_size(cm_json_get(doc, "hook.queue")), 1);
    EXPECT_STR(cm_json_str(doc, "hook.queue.0.url"), url);
    EXPECT_INT(json_array_size(cm_json_get(doc, "hook.queue.0.notices")), 2);
    CU_ASSERT(json_integer_value(cm_json_get(doc, "hook.queue.0.attempts")) >= 2);
    CU_ASSERT(m.tried >= 2);
    /* What the rows hold is what to_json holds (the queue and the alert table). */
    saved = cm_notify_to_json(e.n);
    EXPECT_INT(json_integer_value(cm_json_get(doc, "hook.queue.0.attempts")),
               json_integer_value(cm_json_get(saved, "hook.queue.0.attempts")));
    CU_ASSERT(json_equal(cm_json_get(doc, "hook.queue.0.notices"),
                         cm_json_get(saved, "hook.queue.0.notices")));
    EXPECT_INT(json_array_size(cm_json_get(saved, "hook.alerts")), 2);
    json_decref(saved);
    json_decref(doc);
    /* A reload removes "old": its rows go. */
    {
        struct cm_config cfg2 = e.cfg;
        cfg2.notifier_count = 1;
        EXPECT_INT(cm_notify_reconfigure(e.n, &cfg2), 0);
        EXPECT_INT(m.dropped, 1);
        EXPECT_INT(json_object_size(m.alerts), 2);
        EXPECT_INT(cm_notify_reconfigure(e.n, &e.cfg), 0); /* back: "old" starts empty */
    }
    doc = mirror_doc(&m);
    env_finish(&e);

    /* "Restart" from the rows: the message is delivered once the receiver is up, and its row
     * goes; the alert table came back (nothing fires again); a new message gets a new seq. */
    env_init(&e);
    c = add_notifier(&e, "hook", CM_NOTIFIER_WEBHOOK, url);
    c->group_wait_ms = 300;
    env_start(&e);
    EXPECT_INT(cm_notify_load_json(e.n, doc), 0);
    cm_notify_set_persist(e.n, &mirror_hooks, &m);
    json_decref(doc);
    EXPECT_INT(stats_of(&e, "hook").queued, 1);
    CU_ASSERT_FATAL(rx_start_on(&rx, port, "http_receiver.py", NULL));
    CU_ASSERT(run_until(&e, "hook", SENT, 1, 8000));
    observe(&e, "a.example:443", NULL, 2, &f_expiring, &f_untrusted);
    run_for(&e, 500);
    EXPECT_INT(counter(&e, "hook", SENT), 1);
    EXPECT_INT(json_object_size(m.outbox), 0);
    /* Resolved: the alert rows go, and the resolution is queued, then delivered. */
    observe(&e, "a.example:443", NULL, 0);
    EXPECT_INT(json_object_size(m.alerts), 0);
    CU_ASSERT(run_until(&e, "hook", SENT, 2, 8000));
    EXPECT_INT(json_object_size(m.outbox), 0);
    log = rx_log(&rx);
    EXPECT_INT(json_array_size(log), 2);
    b = rx_body(log, 1);
    EXPECT_STR(cm_json_str(b, "alerts.0.status"), "resolved");
    json_decref(b);
    json_decref(log);
    /* persist_all reports every row as it is now. */
    observe(&e, "b.example:443", NULL, 1, &f_untrusted);
    json_object_clear(m.alerts);
    json_object_clear(m.outbox);
    EXPECT_INT(cm_notify_persist_all(e.n), 0);
    EXPECT_INT(json_object_size(m.alerts), 1);
    EXPECT_INT(json_object_size(m.outbox), 1); /* the notice being grouped */
    env_finish(&e);
    rx_stop(&rx);

    /* "Killed" while grouping: the grouped notice comes back into the group and leaves. */
    doc = mirror_doc(&m);
    CU_ASSERT(json_is_true(cm_json_get(doc, "hook.queue.0.grouping")));
    CU_ASSERT_FATAL(rx_start_on(&rx, port, "http_receiver.py", NULL));
    env_init(&e);
    c = add_notifier(&e, "hook", CM_NOTIFIER_WEBHOOK, url);
    c->group_wait_ms = 300;
    env_start(&e);
    EXPECT_INT(cm_notify_load_json(e.n, doc), 0);
    json_decref(doc);
    CU_ASSERT(run_until(&e, "hook", SENT, 1, 8000));
    log = rx_log(&rx); /* the receiver's log goes on from the first two requests */
    EXPECT_INT(json_array_size(log), 3);
    b = rx_body(log, 2);
    EXPECT_STR(cm_json_str(b, "alerts.0.target"), "b.example:443");
    EXPECT_STR(cm_json_str(b, "alerts.0.status"), "firing");
    json_decref(b);
    json_decref(log);
    env_finish(&e);
    rx_stop(&rx);
    json_decref(m.alerts);
    json_decref(m.outbox);
    free(url);
}

static CU_TestInfo tests[] = {
    {"pagerduty_one_event_per_alert", test_pagerduty_one_event_per_alert},
    {"telegram_url_and_ntfy_token", test_telegram_url_and_ntfy_token},
    {"webhook: grouped, signed, resolved", test_webhook_grouped_signed_resolved},
    {"500 then 200", test_retry_500_then_200},
    {"429 Retry-After", test_retry_after},
    {"400 refused for good", test_refused_400},
    {"filters: severity, findings, match", test_filters},
    {"renewal: resolved as renewed; the renewal event", test_renewed_and_event},
    {"persisted across a restart", test_persist_across_restart},
    {"persisted row by row: grouped, queued, tried, delivered, dropped", test_persist_row_by_row},
    {"load_json: max_age and malformed", test_load_json_max_age_and_malformed},
    {"email", test_email},
    {"alertmanager HA", test_alertmanager_ha},
    {"notify-test", test_notify_test},
    {"close in flight keeps the message", test_close_in_flight_keeps_message},
    {"reconfigure: notifiers added and removed around a kept one", test_reconfigure_count_changes},
    {"reconfigure", test_reconfigure},
    {"for and Alertmanager resend from the tick timer", test_for_and_repeat_by_tick},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("notify", tests, suite_init, NULL);
}
