/* Notifiers: routing, grouping and the delivery queues (contract in certmon/notify.h).
 *
 * Each notifier owns two timers: `tick` drives its alert table (cm_alerts_next), `deliver`
 * flushes the group buffer and starts transfers. Transfers are only ever started from the
 * `deliver` callback, never from an httpc callback (libcurl must not be re-entered). A
 * notifier counts its open handles and frees itself when the last one has closed, so that a
 * reload can drop one while the others carry on. */
#include "certmon/notify/notify.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "certmon/notify/alert.h"
#include "certmon/base/error.h"
#include "certmon/base/text.h"
#include "certmon/base/log.h"
#include "certmon/notify/payload.h"

#define SUB "notify"
#define BACKOFF_BASE_MS 1000u
#define BACKOFF_CAP_MS (5u * 60u * 1000u)
#define ANSWER_LOG_MAX 300
#define LABEL_BUCKETS 1024u
#define CURL_ERROR_MAX 512 /* libcurl's error texts fit in CURL_ERROR_SIZE (256) */

/* One message waiting for delivery: its notices leave together. */
struct msg {
    struct msg *next;
    struct cm_notice **items;
    size_t n;
    int64_t created_at; /* Unix seconds */
    unsigned attempts;  /* failed attempts so far */
    uint64_t seq;       /* its persisted row (cm_notify_msg_row) */
};

/* One destination (the notifier's URL, or one Alertmanager of urls): a FIFO with at most one
 * transfer in flight, so order is kept. Allocated on its own: transfers point at it. */
struct queue {
    struct notifier *nt;
    char *url;
    struct msg *head, *tail;
    size_t len;
    struct cm_httpc_xfer *xfer; /* in flight (for head), or NULL */
    uint64_t next_ms;           /* loop time before which head is not tried again */
};

struct notifier {
    struct cm_notify *owner; /* NULL once closed */
    const struct cm_config_notifier *cfg;
    char *name;
    struct cm_alerts *alerts;
    uv_timer_t tick, deliver;
    int handles; /* open handles; freed at 0 */
    struct cm_notice **group;
    uint64_t *group_seq; /* [group_cap]: each grouped notice's persisted row */
    size_t group_n, group_cap;
    uint64_t group_due; /* loop time of the flush; valid while group_n > 0 */
    struct queue **queues;
    size_t queue_count;
    uint64_t sent, failed, dropped;
    bool changed; /* set by emit: the caller's on_change is due */
    bool closing;
    struct cm_notify *parent; /* set by cm_notify_close: freed after its notifiers */
};

/* Last labels seen per target, for events emitted by ticks (observe brings them). */
struct tlabels {
    struct tlabels *next;
    char *target;
    struct cm_labels labels;
};

/* One notify-test transfer. */
struct probe_ctx {
    struct probe_ctx *next, **pprev;
    struct cm_notify *owner;
    struct cm_httpc_xfer *xfer;
    char *name;
    const char *type;
    char *secret; /* the notifier's token, hidden in what cb is shown; or NULL */
    void (*cb)(const char *, const char *, const struct cm_httpc_result *, void *);
    void *arg;
};

struct cm_notify {
    uv_loop_t *loop;
    struct cm_httpc *http;
    const struct cm_config *cfg;
    struct notifier **nts;
    size_t nt_count;
    struct tlabels *labels[LABEL_BUCKETS];
    struct probe_ctx *probes;
    void (*on_change)(void *);
    void *on_change_arg;
    struct cm_notify_persist persist; /* row by row; every hook NULL: not persisted */
    void *persist_arg;
    uint64_t next_seq;        /* of the next message or grouped notice */
    size_t closing;           /* notifiers whose handles are still closing after cm_notify_close */
    const char *resolve_note; /* during cm_notify_observe_renewed only: its note */
};

/* ---- Small helpers ---- */

static bool labels_match(const struct cm_labels *have, const struct cm_labels *want)
{
    for (size_t i = 0; i < want->count; i++) {
        bool ok = false;
        for (size_t j = 0; have && j < have->count && !ok; j++)
            ok = strcmp(have->keys[j], want->keys[i]) == 0 &&
                 strcmp(have->values[j], want->values[i]) == 0;
        if (!ok)
            return false;
    }
    return true;
}

static struct tlabels **tlabels_find(struct cm_notify *n, const char *target)
{
    struct tlabels **pp = &n->labels[cm_fnv1a_str(target) % LABEL_BUCKETS];
    while (*pp && strcmp((*pp)->target, target) != 0)
        pp = &(*pp)->next;
    return pp;
}

static const struct cm_labels *tlabels_get(struct cm_notify *n, const char *target)
{
    struct tlabels *t = *tlabels_find(n, target);
    return t ? &t->labels : NULL;
}

/* Remembers target's labels (a failure only costs the labels of later tick events). */
static void tlabels_set(struct cm_notify *n, const char *target, const struct cm_labels *l)
{
    struct tlabels **pp = tlabels_find(n, target), *t = *pp;
    struct cm_labels copy;

    if (cm_labels_copy(&copy, l) < 0)
        return;
    if (!t) {
        if (!(t = calloc(1, sizeof(*t))) || !(t->target = strdup(target))) {
            free(t);
            cm_labels_clear(&copy);
            return;
        }
        *pp = t;
    } else {
        cm_labels_clear(&t->labels);
    }
    t->labels = copy;
}

static void tlabels_remove(struct cm_notify *n, const char *target)
{
    struct tlabels **pp = tlabels_find(n, target), *t = *pp;
    if (!t)
        return;
    *pp = t->next;
    cm_labels_clear(&t->labels);
    free(t->target);
    free(t);
}

static struct cm_notice *notice_dup(const struct cm_notice *o)
{
    struct cm_alert_event ev = {.kind = o->kind,
                                .target = o->target,
                                .id = o->id,
                                .position = o->position,
                                .severity = o->severity,
                                .previous = o->previous,
                                .message = o->message,
                                .started_at = o->started_at,
                                .fired_at = o->fired_at,
                                .at = o->at};
    return cm_notice_new(&ev, &o->labels);
}

static void msg_free(struct msg *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        cm_notice_free(m->items[i]);
    free(m->items);
    free(m);
}

static void queue_push(struct queue *q, struct msg *m)
{
    m->next = NULL;
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    q->len++;
}

static struct msg *queue_pop(struct queue *q)
{
    struct msg *m = q->head;
    if (!m)
        return NULL;
    q->head = m->next;
    if (!q->head)
        q->tail = NULL;
    q->len--;
    m->next = NULL;
    return m;
}

static void queue_free(struct queue *q)
{
    if (!q)
        return;
    while (q->head)
        msg_free(queue_pop(q));
    free(q->url);
    free(q);
}

static bool is_am(const struct notifier *nt)
{
    return nt->cfg->kind == CM_NOTIFIER_ALERTMANAGER;
}

static struct cm_alert_opts alert_opts(const struct notifier *nt)
{
    const struct cm_config_notifier *c = nt->cfg;
    struct cm_alert_opts o = {.for_s = (int64_t)(c->for_ms / 1000),
                              .repeat_s =
                                  (int64_t)((is_am(nt) ? c->resend_ms : c->repeat_ms) / 1000)};
    return o;
}

static void redact(const char *url, char *buf, size_t len)
{
    cm_httpc_redact(url ? url : "", buf, len);
}

static void notify_changed(struct cm_notify *n)
{
    if (n && n->on_change)
        n->on_change(n->on_change_arg);
}

/* ---- Persistence, row by row ---- */

static bool persisting(const struct notifier *nt)
{
    return nt->owner && nt->owner->persist.msg_put;
}

/* The notices as the JSON array text of an outbox row; NULL when out of memory. */
static char *notices_text(struct cm_notice *const *items, size_t cnt)
{
    json_t *arr = json_array();
    char *text = NULL;

    for (size_t i = 0; arr && i < cnt; i++)
        if (json_array_append_new(arr, cm_notice_to_json(items[i])) < 0)
            goto out;
    if (arr)
        text = json_dumps(arr, JSON_COMPACT);
out:
    json_decref(arr);
    return text;
}

static void persist_row(struct notifier *nt, uint64_t seq, const char *url, int64_t created_at,
                        unsigned attempts, struct cm_notice *const *items, size_t cnt)
{
    struct cm_notify *n = nt->owner;
    struct cm_notify_msg_row row = {
        .seq = seq, .url = url, .created_at = created_at, .attempts = attempts};
    char *text;

    if (!persisting(nt))
        return;
    if (!(text = notices_text(items, cnt))) {
        cm_log_error(SUB, "notifier=%s message not persisted: out of memory", nt->name);
        return;
    }
    row.notices = text;
    n->persist.msg_put(n->persist_arg, nt->name, &row);
    free(text);
}

/* A message of queue q, queued now (or changed whole). */
static void persist_msg(struct notifier *nt, const struct queue *q, const struct msg *m)
{
    persist_row(nt, m->seq, q->url, m->created_at, m->attempts, (struct cm_notice *const *)m->items,
                m->n);
}

static void persist_gone(struct notifier *nt, uint64_t seq)
{
    if (persisting(nt) && nt->owner->persist.msg_gone)
        nt->owner->persist.msg_gone(nt->owner->persist_arg, nt->name, seq);
}

static void persist_tried(struct notifier *nt, const struct msg *m)
{
    if (persisting(nt) && nt->owner->persist.msg_tried)
        nt->owner->persist.msg_tried(nt->owner->persist_arg, nt->name, m->seq, m->attempts);
}

static uint64_t new_seq(struct notifier *nt)
{
    return nt->owner ? nt->owner->next_seq++ : 0;
}

/* The alert table's change hook (alert.h). */
static void on_alert_row(const struct cm_alert_row *row, bool removed, void *arg)
{
    struct notifier *nt = arg;

    if (nt->owner && nt->owner->persist.alert)
        nt->owner->persist.alert(nt->owner->persist_arg, nt->name, row, removed);
}

/* ---- Timers ---- */

static void on_deliver(uv_timer_t *t);

/* Arms `deliver` for the earliest of: the group flush, a queue head that may be tried. */
static void arm_deliver(struct notifier *nt)
{
    uint64_t now = uv_now(nt->deliver.loop), due = UINT64_MAX;

    if (nt->closing)
        return;
    if (nt->group_n > 0)
        due = nt->group_due;
    for (size_t i = 0; i < nt->queue_count; i++) {
        struct queue *q = nt->queues[i];
        if (q->head && !q->xfer && q->next_ms < due)
            due = q->next_ms;
    }
    if (due == UINT64_MAX)
        uv_timer_stop(&nt->deliver);
    else
        uv_timer_start(&nt->deliver, on_deliver, due > now ? due - now : 0, 0);
}

static void on_tick(uv_timer_t *t);

static void arm_tick(struct notifier *nt)
{
    struct cm_alert_opts o = alert_opts(nt);
    int64_t next = cm_alerts_next(nt->alerts, &o), now = (int64_t)time(NULL);
    uint64_t delay;

    if (nt->closing)
        return;
    if (next == INT64_MAX) {
        uv_timer_stop(&nt->tick);
        return;
    }
    delay = next <= now ? 0 : (uint64_t)(next - now) * 1000u;
    uv_timer_start(&nt->tick, on_tick, delay, 0);
}

/* ---- Grouping ---- */

/* The expiry alerts of the leaf, which a renewal resolves. */
static bool is_leaf_expiry(const struct cm_alert_event *ev)
{
    return ev->position <= 0 &&
           (!strcmp(ev->id, "cert.expired") || !strncmp(ev->id, "cert.expiring", 13));
}

/* A RESOLVED event that a renewal caused, its message led by the renewal's note: "renewed,
 * now valid until ...; was: <the last message>". Returns the message (malloc'd) or NULL. */
static char *renewed_message(const struct cm_notify *n, const struct cm_alert_event *ev)
{
    char *m;

    if (!n || !n->resolve_note || ev->kind != CM_ALERT_RESOLVED || !is_leaf_expiry(ev))
        return NULL;
    if (asprintf(&m, "%s; was: %s", n->resolve_note, ev->message ? ev->message : "") < 0)
        return NULL;
    return m;
}

/* Room for n notices in the group buffer (and their seqs). Returns 0 or -ENOMEM. */
static int group_reserve(struct notifier *nt, size_t n)
{
    size_t cap = nt->group_cap ? nt->group_cap : 8;
    struct cm_notice **g;
    uint64_t *gs;

    if (n <= nt->group_cap)
        return 0;
    while (cap < n)
        cap *= 2;
    if (!(g = realloc(nt->group, cap * sizeof(*g))))
        return -ENOMEM;
    nt->group = g;
    if (!(gs = realloc(nt->group_seq, cap * sizeof(*gs))))
        return -ENOMEM; /* group_cap unchanged: the bigger group array is merely unused */
    nt->group_seq = gs;
    nt->group_cap = cap;
    return 0;
}

static void emit(const struct cm_alert_event *ev, void *arg)
{
    struct notifier *nt = arg;
    struct cm_notice *no;
    char *renewed = renewed_message(nt->owner, ev);
    struct cm_alert_event rev;

    if (renewed) {
        rev = *ev;
        rev.message = renewed;
        ev = &rev;
    }

    nt->changed = true;
    if (group_reserve(nt, nt->group_n + 1) < 0)
        goto oom;
    if (!(no = cm_notice_new(ev, nt->owner ? tlabels_get(nt->owner, ev->target) : NULL)))
        goto oom;
    if (nt->group_n == 0)
        nt->group_due = uv_now(nt->deliver.loop) + nt->cfg->group_wait_ms;
    nt->group_seq[nt->group_n] = new_seq(nt);
    nt->group[nt->group_n++] = no;
    /* Persisted at once, as a notice being grouped: a crash before the group leaves must not
     * lose what the alert table already counts as notified. */
    persist_row(nt, nt->group_seq[nt->group_n - 1], NULL, (int64_t)time(NULL), 0, &no, 1);
    free(renewed);
    return;
oom:
    cm_log_error(SUB, "notifier=%s target=%s finding=%s event=%s lost: out of memory", nt->name,
                 ev->target, ev->id, cm_alert_kind_name(ev->kind));
    free(renewed);
}

/* Turns the group buffer into one message per queue. On ENOMEM the buffer stays (retried at
 * the next flush). */
static void flush_group(struct notifier *nt)
{
    struct msg **ms;
    size_t nq = nt->queue_count;

    if (nt->group_n == 0 || nq == 0)
        return;
    if (!(ms = calloc(nq, sizeof(*ms))))
        goto oom;
    for (size_t i = 0; i < nq; i++) {
        if (!(ms[i] = calloc(1, sizeof(**ms))))
            goto oom_free;
        ms[i]->created_at = (int64_t)time(NULL);
        ms[i]->seq = new_seq(nt);
        ms[i]->n = nt->group_n;
        if (i + 1 == nq) {
            ms[i]->items = nt->group; /* the last one takes the buffer itself */
            continue;
        }
        if (!(ms[i]->items = calloc(nt->group_n, sizeof(struct cm_notice *))))
            goto oom_free;
        for (size_t k = 0; k < nt->group_n; k++)
            if (!(ms[i]->items[k] = notice_dup(nt->group[k])))
                goto oom_free;
    }
    for (size_t i = 0; i < nq; i++) {
        queue_push(nt->queues[i], ms[i]);
        persist_msg(nt, nt->queues[i], ms[i]);
    }
    for (size_t k = 0; k < nt->group_n; k++)
        persist_gone(nt, nt->group_seq[k]);
    cm_log_debug(SUB, "notifier=%s queued notices=%zu destinations=%zu", nt->name, nt->group_n, nq);
    nt->group = NULL;
    free(nt->group_seq);
    nt->group_seq = NULL;
    nt->group_n = nt->group_cap = 0;
    free(ms);
    return;
oom_free:
    for (size_t i = 0; i < nq; i++) {
        if (ms[i] && (!ms[i]->items || ms[i]->items == nt->group)) {
            ms[i]->items = NULL;
            ms[i]->n = 0;
        }
        msg_free(ms[i]);
    }
    free(ms);
oom:
    nt->group_due = uv_now(nt->deliver.loop) + 1000;
    cm_log_error(SUB, "notifier=%s grouping failed: out of memory; will retry", nt->name);
}

/* ---- Delivery ---- */

static void on_sent(const struct cm_httpc_result *r, void *arg);

static const char *const *null_terminated(char **v, size_t n, const char *extra, char ***out)
{
    char **a = calloc(n + 2, sizeof(char *));
    size_t k = 0;
    if (!a)
        return NULL;
    for (size_t i = 0; i < n; i++)
        a[k++] = v[i];
    if (extra)
        a[k++] = (char *)extra;
    *out = a;
    return (const char *const *)a;
}

/* The four receivers of services (PagerDuty, Teams, Telegram, ntfy): their payload, URL and
 * headers. Telegram's URL holds the bot token: it is built here, per attempt, so that no
 * queue, log line or persisted message ever holds it. */
static int send_service(struct cm_httpc *http, const struct notifier *nt, const char *url,
                        const struct cm_notice *const *items, size_t n, cm_httpc_cb cb, void *arg,
                        struct cm_httpc_xfer **x)
{
    const struct cm_config_notifier *c = nt->cfg;
    time_t now = time(NULL);
    struct cm_payload_ntfy np = {0};
    char *body = NULL, *full = NULL, prio[32], *auth = NULL, *title = NULL, *tags = NULL;
    const char *hdrs[5] = {NULL};
    const char *ctype = NULL;
    size_t nh = 0;
    int rc;

    switch (c->kind) {
    case CM_NOTIFIER_PAGERDUTY:
        /* One event per request: queue_kick split the message (split_head). */
        if (n != 1)
            return -EINVAL;
        body = cm_payload_pagerduty(items[0], c->token, c->client_url, now);
        break;
    case CM_NOTIFIER_TEAMS:
        body = cm_payload_teams(items, n, now);
        break;
    case CM_NOTIFIER_TELEGRAM: {
        size_t ul = strlen(url);
        body = cm_payload_telegram(items, n, c->chat_id, c->html, now);
        if (asprintf(&full, "%.*s/bot%s/sendMessage", (int)(ul && url[ul - 1] == '/' ? ul - 1 : ul),
                     url, c->token ? c->token : "") < 0)
            full = NULL;
        if (!full) {
            free(body);
            return -ENOMEM;
        }
        url = full;
        break;
    }
    case CM_NOTIFIER_NTFY:
        if ((rc = cm_payload_ntfy(items, n, now, &np)) < 0)
            return rc;
        body = np.body;
        np.body = NULL;
        snprintf(prio, sizeof(prio), "Priority: %d", np.priority);
        if (asprintf(&title, "Title: %s", np.title) < 0 ||
            asprintf(&tags, "Tags: %s", np.tags) < 0 ||
            (c->token && asprintf(&auth, "Authorization: Bearer %s", c->token) < 0)) {
            rc = -ENOMEM;
            goto out;
        }
        hdrs[nh++] = title;
        hdrs[nh++] = prio;
        hdrs[nh++] = tags;
        if (auth)
            hdrs[nh++] = auth;
        ctype = "text/plain; charset=utf-8";
        break;
    default:
        return -EINVAL;
    }
    if (!body) {
        rc = -ENOMEM;
        goto out;
    }
    struct cm_httpc_req req = {.url = url,
                               .headers = nh ? hdrs : NULL,
                               .body = body,
                               .body_len = strlen(body),
                               .content_type = ctype,
                               .timeout_ms = c->timeout_ms,
                               .ca_file = c->ca_file};
    rc = cm_httpc_request(http, &req, cb, arg, x);
out:
    cm_payload_ntfy_clear(&np);
    free(title);
    free(tags);
    free(auth);
    free(full);
    free(body);
    return rc;
}

/* Renders the payload of m for nt and starts one transfer on http. Returns what httpc
 * returned, or -ENOMEM. */
static int send_msg(struct cm_httpc *http, const struct notifier *nt, const char *url,
                    const struct cm_notice *const *items, size_t n, cm_httpc_cb cb, void *arg,
                    struct cm_httpc_xfer **x)
{
    const struct cm_config_notifier *c = nt->cfg;
    time_t now = time(NULL);
    char *body = NULL, **arr = NULL;
    char sig[sizeof(CM_PAYLOAD_SIG_HEADER) + 2 + CM_PAYLOAD_SIG_LEN];
    int rc;

    switch (c->kind) {
    case CM_NOTIFIER_PAGERDUTY:
    case CM_NOTIFIER_TEAMS:
    case CM_NOTIFIER_TELEGRAM:
    case CM_NOTIFIER_NTFY:
        return send_service(http, nt, url, items, n, cb, arg, x);
    case CM_NOTIFIER_EMAIL: {
        const char *const *to = null_terminated(c->to, c->to_count, NULL, &arr);
        if (!to)
            return -ENOMEM;
        body = cm_payload_email_unstuffed(items, n, c->from, to, now);
        if (!body) {
            free(arr);
            return -ENOMEM;
        }
        struct cm_httpc_mail m = {.url = url,
                                  .starttls = c->starttls,
                                  .username = c->username,
                                  .password = c->password,
                                  .from = c->from,
                                  .to = to,
                                  .message = body,
                                  .timeout_ms = c->timeout_ms,
                                  .ca_file = c->ca_file};
        rc = cm_httpc_mail(http, &m, cb, arg, x);
        break;
    }
    default: {
        const char *const *hdrs = NULL;
        if (c->kind == CM_NOTIFIER_SLACK)
            body = cm_payload_slack(items, n, now);
        else if (c->kind == CM_NOTIFIER_WEBHOOK)
            body = cm_payload_webhook(items, n, now);
        else
            body = cm_payload_alertmanager(items, n, now, c->generator_url,
                                           (int64_t)(4 * (c->resend_ms / 1000)));
        if (!body)
            return -ENOMEM;
        if (c->kind == CM_NOTIFIER_WEBHOOK) {
            const char *extra = NULL;
            if (c->secret) {
                size_t off = (size_t)snprintf(sig, sizeof(sig), "%s: ", CM_PAYLOAD_SIG_HEADER);
                rc = cm_payload_hmac(c->secret, body, strlen(body), sig + off, sizeof(sig) - off);
                if (rc < 0) {
                    free(body);
                    return rc;
                }
                extra = sig;
            }
            if (!(hdrs = null_terminated(c->headers, c->header_count, extra, &arr))) {
                free(body);
                return -ENOMEM;
            }
        }
        /* An Alertmanager is configured by its base URL; its API is under it. */
        char amurl[2048];
        if (c->kind == CM_NOTIFIER_ALERTMANAGER) {
            size_t ul = strlen(url);
            static const char api[] = "/api/v2/alerts";
            if (ul < sizeof(api) - 1 || strcmp(url + ul - (sizeof(api) - 1), api) != 0) {
                if (snprintf(amurl, sizeof(amurl), "%.*s%s",
                             (int)(ul && url[ul - 1] == '/' ? ul - 1 : ul), url,
                             api) < (int)sizeof(amurl))
                    url = amurl;
            }
        }
        struct cm_httpc_req req = {.url = url,
                                   .headers = hdrs,
                                   .body = body,
                                   .body_len = strlen(body),
                                   .timeout_ms = c->timeout_ms,
                                   .ca_file = c->ca_file};
        rc = cm_httpc_request(http, &req, cb, arg, x);
        break;
    }
    }
    free(arr);
    free(body);
    return rc;
}

static uint64_t backoff_ms(unsigned attempts, int64_t retry_after_s)
{
    unsigned shift = attempts > 0 ? attempts - 1 : 0;
    uint64_t d = shift >= 9 ? BACKOFF_CAP_MS : (uint64_t)BACKOFF_BASE_MS << shift;
    if (d > BACKOFF_CAP_MS)
        d = BACKOFF_CAP_MS;
    /* +-20 % so that notifiers that failed together do not retry together. */
    d = d * (80 + (uint64_t)(rand() % 41)) / 100;
    if (retry_after_s >= 0 && (uint64_t)retry_after_s * 1000u > d)
        d = (uint64_t)retry_after_s * 1000u;
    return d;
}

static void drop_head(struct queue *q, const char *why)
{
    struct notifier *nt = q->nt;
    char u[256];

    redact(q->url, u, sizeof(u));
    persist_gone(nt, q->head->seq);
    msg_free(queue_pop(q));
    nt->dropped++;
    nt->changed = true;
    cm_log_warn(SUB, "notifier=%s url=%s message dropped: %s", nt->name, u, why);
}

/* PagerDuty takes one event per request: a message of several notices (a group, or one
 * persisted before the notifier became a pagerduty one) becomes one message per notice, in
 * order, at the head of q. Returns 0 or -ENOMEM (q unchanged). */
static int split_head(struct queue *q)
{
    struct msg *m = q->head, *first = NULL, *last = NULL, *s;

    for (size_t i = 0; i < m->n; i++) {
        if (!(s = calloc(1, sizeof(*s))) || !(s->items = calloc(1, sizeof(*s->items)))) {
            free(s);
            while (first) {
                s = first->next;
                free(first->items);
                free(first);
                first = s;
            }
            return -ENOMEM;
        }
        s->n = 1;
        s->created_at = m->created_at;
        s->attempts = m->attempts;
        s->seq = new_seq(q->nt);
        s->items[0] = m->items[i];
        if (last)
            last->next = s;
        else
            first = s;
        last = s;
    }
    last->next = m->next;
    q->head = first;
    if (q->tail == m)
        q->tail = last;
    q->len += m->n - 1;
    for (s = first; s != last->next; s = s->next)
        persist_msg(q->nt, q, s);
    persist_gone(q->nt, m->seq);
    m->n = 0; /* the notices moved */
    msg_free(m);
    return 0;
}

/* s with every occurrence of secret replaced by "***", into out (outlen > 0): a bot token in
 * a URL may come back in libcurl's error text or a receiver's answer. */
static void scrub(const char *s, const char *secret, char *out, size_t outlen)
{
    size_t k = 0, sl = secret ? strlen(secret) : 0;

    for (s = s ? s : ""; *s && k + 1 < outlen;) {
        if (sl > 0 && strncmp(s, secret, sl) == 0) {
            size_t c = outlen - 1 - k < 3 ? outlen - 1 - k : 3;
            memcpy(out + k, "***", c);
            k += c;
            s += sl;
        } else {
            out[k++] = *s++;
        }
    }
    out[k] = '\0';
}

/* Starts the head of q when it is due. */
static void queue_kick(struct queue *q, uint64_t now_ms)
{
    struct notifier *nt = q->nt;
    struct msg *m;
    int64_t max_age_s = (int64_t)(nt->cfg->max_age_ms / 1000);
    char u[256];
    int rc;

    while ((m = q->head) && !q->xfer && q->next_ms <= now_ms) {
        if (nt->cfg->max_age_ms > 0 && (int64_t)time(NULL) - m->created_at > max_age_s) {
            drop_head(q, "older than max_age");
            continue;
        }
        if (nt->cfg->kind == CM_NOTIFIER_PAGERDUTY && m->n > 1 && split_head(q) < 0) {
            q->next_ms = now_ms + backoff_ms(1, -1);
            cm_log_error(SUB, "notifier=%s out of memory splitting a message; will retry",
                         nt->name);
            return;
        }
        m = q->head;
        rc = send_msg(nt->owner->http, nt, q->url, (const struct cm_notice *const *)m->items, m->n,
                      on_sent, q, &q->xfer);
        if (rc == 0)
            return;
        q->xfer = NULL;
        redact(q->url, u, sizeof(u));
        if (rc == -EINVAL || rc == -ENOTSUP || rc == CM_EBADARG) {
            nt->dropped++;
            nt->changed = true;
            cm_log_error(SUB, "notifier=%s url=%s message dropped: cannot be sent: %s", nt->name, u,
                         cm_strerror(rc));
            persist_gone(nt, m->seq);
            msg_free(queue_pop(q));
            continue;
        }
        /* ENOMEM, or the client is closing: try again later. */
        q->next_ms = now_ms + backoff_ms(++m->attempts, -1);
        persist_tried(nt, m);
        cm_log_warn(SUB, "notifier=%s url=%s send failed: %s", nt->name, u, cm_strerror(rc));
    }
}

static void on_deliver(uv_timer_t *t)
{
    struct notifier *nt = t->data;
    uint64_t now = uv_now(t->loop);
    bool changed = false;

    if (nt->closing || !nt->owner)
        return;
    if (nt->group_n > 0 && nt->group_due <= now) {
        flush_group(nt);
        changed = true;
    }
    for (size_t i = 0; i < nt->queue_count; i++)
        queue_kick(nt->queues[i], now);
    arm_deliver(nt);
    if (changed || nt->changed) {
        nt->changed = false;
        notify_changed(nt->owner);
    }
}

/* The receiver's answer for a log line: its error text (PagerDuty's errors, Telegram's
 * description) escaped, the notifier's secret hidden. Returns the answer's own retry hint
 * (Telegram's parameters.retry_after), or -1. */
static int64_t answer_text(const struct notifier *nt, const struct cm_httpc_result *r, char *buf,
                           size_t len)
{
    char raw[ANSWER_LOG_MAX * 4 + 1];
    int64_t retry = cm_payload_answer(r->body, r->body ? r->body_len : 0, raw, sizeof(raw));

    scrub(raw, nt->cfg->token, buf, len);
    return retry;
}

static void on_sent(const struct cm_httpc_result *r, void *arg)
{
    struct queue *q = arg;
    struct notifier *nt = q->nt;
    struct msg *m = q->head;
    bool mail = nt->cfg->kind == CM_NOTIFIER_EMAIL;
    char u[256], ans[ANSWER_LOG_MAX * 4 + 1], err[CURL_ERROR_MAX];
    int64_t retry;

    q->xfer = NULL;
    if (nt->closing || !m)
        return; /* cancelled by close or reconfigure: the message stays queued */
    redact(q->url, u, sizeof(u));
    if (r->curl_code == 0 && (mail || (r->status >= 200 && r->status < 300))) {
        nt->sent++;
        cm_log_info(SUB, "notifier=%s url=%s delivered notices=%zu attempts=%u status=%ld",
                    nt->name, u, m->n, m->attempts + 1, r->status);
        persist_gone(nt, m->seq);
        msg_free(queue_pop(q));
        q->next_ms = 0;
    } else {
        bool refused = mail ? (r->status >= 500 && r->status < 600)
                            : (r->curl_code == 0 && r->status >= 400 && r->status < 500 &&
                               r->status != 429 && r->status != 408);
        nt->failed++;
        retry = answer_text(nt, r, ans, sizeof(ans));
        scrub(r->error, nt->cfg->token, err, sizeof(err));
        if (refused) {
            nt->dropped++;
            cm_log_error(SUB,
                         "notifier=%s url=%s message refused, dropped: status=%ld notices=%zu "
                         "answer=\"%s\"",
                         nt->name, u, r->status, m->n, ans);
            persist_gone(nt, m->seq);
            msg_free(queue_pop(q));
            q->next_ms = 0;
        } else {
            /* Telegram says when to come back in its answer as well as in Retry-After. */
            uint64_t d = backoff_ms(++m->attempts, r->retry_after_s >= 0 ? r->retry_after_s
                                                   : r->status == 429    ? retry
                                                                         : -1);
            q->next_ms = uv_now(nt->deliver.loop) + d;
            persist_tried(nt, m);
            cm_log_warn(SUB,
                        "notifier=%s url=%s attempt failed: status=%ld curl=%d error=\"%s\" "
                        "attempts=%u retry_in_ms=%llu answer=\"%s\"",
                        nt->name, u, r->status, r->curl_code, err, m->attempts,
                        (unsigned long long)d, ans);
        }
    }
    nt->changed = true;
    /* The next transfer starts from the timer, never inside httpc's callback. */
    arm_deliver(nt);
    if (nt->owner) {
        nt->changed = false;
        notify_changed(nt->owner);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct notifier *nt = t->data;
    struct cm_alert_opts o = alert_opts(nt);
    size_t before = nt->group_n;

    if (nt->closing)
        return;
    cm_alerts_tick(nt->alerts, &o, (int64_t)time(NULL), emit, nt);
    arm_tick(nt);
    if (nt->group_n != before)
        arm_deliver(nt);
    if (nt->changed) {
        nt->changed = false;
        notify_changed(nt->owner);
    }
}

/* ---- Notifier lifecycle ---- */

static void notifier_free(struct notifier *nt)
{
    for (size_t i = 0; i < nt->group_n; i++)
        cm_notice_free(nt->group[i]);
    free(nt->group);
    free(nt->group_seq);
    for (size_t i = 0; i < nt->queue_count; i++)
        queue_free(nt->queues[i]);
    free(nt->queues);
    cm_alerts_free(nt->alerts);
    free(nt->name);
    free(nt);
}

static void notify_free(struct cm_notify *n)
{
    for (size_t b = 0; b < LABEL_BUCKETS; b++)
        while (n->labels[b]) {
            struct tlabels *t = n->labels[b];
            n->labels[b] = t->next;
            cm_labels_clear(&t->labels);
            free(t->target);
            free(t);
        }
    free(n->nts);
    free(n);
}

static void on_nt_closed(uv_handle_t *h)
{
    struct notifier *nt = h->data;
    struct cm_notify *parent = nt->parent;

    if (--nt->handles > 0)
        return;
    notifier_free(nt);
    if (parent && --parent->closing == 0)
        notify_free(parent);
}

/* Cancels nt's transfers (their messages stay queued) and closes its timers. */
static void notifier_close(struct notifier *nt)
{
    nt->closing = true;
    for (size_t i = 0; i < nt->queue_count; i++)
        if (nt->queues[i]->xfer)
            cm_httpc_cancel(nt->queues[i]->xfer);
    uv_close((uv_handle_t *)&nt->tick, on_nt_closed);
    uv_close((uv_handle_t *)&nt->deliver, on_nt_closed);
}

static struct queue *queue_new(struct notifier *nt, const char *url)
{
    struct queue *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->nt = nt;
    if (!(q->url = strdup(url ? url : ""))) {
        free(q);
        return NULL;
    }
    return q;
}

/* The destinations of c: every Alertmanager, or the one URL. */
static size_t dest_count(const struct cm_config_notifier *c)
{
    if (c->kind == CM_NOTIFIER_ALERTMANAGER && c->url_count > 0)
        return c->url_count;
    return 1;
}

static const char *dest_url(const struct cm_config_notifier *c, size_t i)
{
    if (c->kind == CM_NOTIFIER_ALERTMANAGER && c->url_count > 0)
        return c->urls[i];
    return c->url;
}

/* New queues for c, taking over those of old with the same URL (or, for a one-URL kind, the
 * one queue whatever its URL). Returns the new array or NULL (ENOMEM; nothing taken). */
static struct queue **queues_for(struct notifier *nt, const struct cm_config_notifier *c,
                                 struct queue **old, size_t old_n, bool *taken)
{
    size_t n = dest_count(c);
    struct queue **qs = calloc(n, sizeof(*qs));
    char *urls[64] = {0};

    if (!qs)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *u = dest_url(c, i);
        for (size_t k = 0; k < old_n && !qs[i]; k++) {
            if (taken[k])
                continue;
            if (c->kind != CM_NOTIFIER_ALERTMANAGER || strcmp(old[k]->url, u ? u : "") == 0)
                qs[i] = old[k];
        }
        if (qs[i] && strcmp(qs[i]->url, u ? u : "") != 0) {
            if (i < 64 && !(urls[i] = strdup(u ? u : "")))
                goto fail;
        } else if (!qs[i] && !(qs[i] = queue_new(nt, u))) {
            goto fail;
        }
        for (size_t k = 0; k < old_n; k++)
            if (old[k] == qs[i])
                taken[k] = true;
    }
    for (size_t i = 0; i < n && i < 64; i++)
        if (urls[i]) {
            free(qs[i]->url);
            qs[i]->url = urls[i];
        }
    return qs;
fail:
    for (size_t i = 0; i < n && i < 64; i++)
        free(urls[i]);
    for (size_t i = 0; i < n; i++) {
        bool was_old = false;
        for (size_t k = 0; k < old_n; k++)
            if (old[k] == qs[i])
                was_old = true;
        if (!was_old)
            queue_free(qs[i]);
    }
    for (size_t k = 0; k < old_n; k++)
        taken[k] = false;
    free(qs);
    return NULL;
}

static struct notifier *notifier_new(struct cm_notify *n, const struct cm_config_notifier *c)
{
    struct notifier *nt = calloc(1, sizeof(*nt));
    bool none = false;

    if (!nt)
        return NULL;
    nt->owner = n;
    nt->cfg = c;
    if (!(nt->name = strdup(c->name ? c->name : "")) || cm_alerts_new(&nt->alerts) < 0 ||
        !(nt->queues = queues_for(nt, c, NULL, 0, &none))) {
        cm_alerts_free(nt->alerts);
        free(nt->name);
        free(nt);
        return NULL;
    }
    nt->queue_count = dest_count(c);
    cm_alerts_on_change(nt->alerts, on_alert_row, nt);
    uv_timer_init(n->loop, &nt->tick);
    uv_timer_init(n->loop, &nt->deliver);
    nt->tick.data = nt->deliver.data = nt;
    nt->handles = 2;
    return nt;
}

/* ---- Public API ---- */

int cm_notify_new(uv_loop_t *loop, struct cm_httpc *http, const struct cm_config *cfg,
                  struct cm_notify **out)
{
    struct cm_notify *n;

    *out = NULL;
    if (!(n = calloc(1, sizeof(*n))))
        return -ENOMEM;
    n->loop = loop;
    n->http = http;
    n->cfg = cfg;
    if (cfg && cfg->notifier_count > 0 &&
        !(n->nts = calloc(cfg->notifier_count, sizeof(*n->nts)))) {
        free(n);
        return -ENOMEM;
    }
    for (size_t i = 0; cfg && i < cfg->notifier_count; i++) {
        if (!(n->nts[i] = notifier_new(n, &cfg->notifiers[i]))) {
            cm_notify_close(n);
            return -ENOMEM;
        }
        n->nt_count = i + 1;
    }
    *out = n;
    return 0;
}

/* After an alert-table step of nt: notes a change of the table, re-arms the timers. */
static void after_alerts(struct cm_notify *n, struct notifier *nt, size_t before_count,
                         size_t before_group)
{
    if (cm_alerts_count(nt->alerts) != before_count)
        nt->changed = true;
    arm_tick(nt);
    if (nt->group_n != before_group)
        arm_deliver(nt);
    (void)n;
}

/* cm_notify_observe; with without_cert every table observes through
 * cm_alerts_observe_without_cert. */
static void observe(struct cm_notify *n, const char *target, const struct cm_labels *labels,
                    const struct cm_findings *f, const int64_t *first_seen, int64_t now,
                    bool without_cert)
{
    size_t count = f ? f->count : 0;
    struct cm_finding *items = NULL;
    int64_t *fs = NULL;
    bool changed = false;

    if (!n || !target)
        return;
    tlabels_set(n, target, labels);
    if (count > 0 &&
        (!(items = calloc(count, sizeof(*items))) || !(fs = calloc(count, sizeof(*fs))))) {
        free(items);
        cm_log_error(SUB, "target=%s findings not routed: out of memory", target);
        return;
    }
    for (size_t i = 0; i < n->nt_count; i++) {
        struct notifier *nt = n->nts[i];
        const struct cm_config_notifier *c = nt->cfg;
        struct cm_findings sel = {.items = items, .count = 0};
        struct cm_alert_opts o = alert_opts(nt);
        size_t before = cm_alerts_count(nt->alerts), bg = nt->group_n;

        if (labels_match(labels, &c->match)) {
            for (size_t k = 0; k < count; k++) {
                const struct cm_finding *fi = &f->items[k];
                bool want = fi->severity >= c->min_severity && fi->severity != CM_SEV_OK;
                if (want && c->finding_count > 0) {
                    want = false;
                    for (size_t j = 0; j < c->finding_count && !want; j++)
                        want = strcmp(c->findings[j], fi->id) == 0;
                }
                if (!want)
                    continue;
                if (first_seen)
                    fs[sel.count] = first_seen[k];
                items[sel.count++] = *fi;
            }
        }
        if ((without_cert ? cm_alerts_observe_without_cert : cm_alerts_observe)(
                nt->alerts, target, &sel, first_seen ? fs : NULL, &o, now, emit, nt) < 0)
            cm_log_error(SUB, "notifier=%s target=%s alert table: out of memory", nt->name, target);
        after_alerts(n, nt, before, bg);
        if (nt->changed) {
            nt->changed = false;
            changed = true;
        }
    }
    free(items);
    free(fs);
    if (changed)
        notify_changed(n);
}

void cm_notify_observe(struct cm_notify *n, const char *target, const struct cm_labels *labels,
                       const struct cm_findings *f, const int64_t *first_seen, int64_t now)
{
    observe(n, target, labels, f, first_seen, now, false);
}

void cm_notify_observe_without_cert(struct cm_notify *n, const char *target,
                                    const struct cm_labels *labels, const struct cm_findings *f,
                                    const int64_t *first_seen, int64_t now)
{
    observe(n, target, labels, f, first_seen, now, true);
}

void cm_notify_observe_renewed(struct cm_notify *n, const char *target,
                               const struct cm_labels *labels, const struct cm_findings *f,
                               const int64_t *first_seen, int64_t now, const char *note)
{
    if (!n)
        return;
    n->resolve_note = note;
    cm_notify_observe(n, target, labels, f, first_seen, now);
    n->resolve_note = NULL;
}

/* Whether notifier c takes a notice of id for a target with labels: its match and, when it
 * lists findings, that list (min_severity is for findings, not for events asked for). */
static bool wants_event(const struct cm_config_notifier *c, const struct cm_labels *labels,
                        const char *id)
{
    if (!labels_match(labels, &c->match))
        return false;
    for (size_t j = 0; j < c->finding_count; j++)
        if (!strcmp(c->findings[j], id))
            return true;
    return c->finding_count == 0;
}

void cm_notify_event(struct cm_notify *n, const char *target, const struct cm_labels *labels,
                     const char *id, const char *message, int64_t now)
{
    struct cm_alert_event ev = {
        .kind = CM_ALERT_FIRING,
        .target = target,
        .id = id,
        .position = 0,
        .severity = CM_SEV_INFO,
        .previous = CM_SEV_INFO,
        .message = message,
        .started_at = now,
        .fired_at = now,
        .at = now,
    };
    bool changed = false;

    if (!n || !target || !id)
        return;
    tlabels_set(n, target, labels);
    for (size_t i = 0; i < n->nt_count; i++) {
        struct notifier *nt = n->nts[i];
        size_t bg = nt->group_n;
        if (!wants_event(nt->cfg, labels, id))
            continue;
        emit(&ev, nt);
        if (nt->group_n != bg)
            arm_deliver(nt);
        if (nt->changed) {
            nt->changed = false;
            changed = true;
        }
    }
    if (changed)
        notify_changed(n);
}

void cm_notify_forget(struct cm_notify *n, const char *target, int64_t now)
{
    bool changed = false;

    if (!n || !target)
        return;
    for (size_t i = 0; i < n->nt_count; i++) {
        struct notifier *nt = n->nts[i];
        size_t before = cm_alerts_count(nt->alerts), bg = nt->group_n;
        cm_alerts_forget(nt->alerts, target, now, emit, nt);
        after_alerts(n, nt, before, bg);
        if (nt->changed) {
            nt->changed = false;
            changed = true;
        }
    }
    tlabels_remove(n, target);
    if (changed)
        notify_changed(n);
}

/* A reconfiguration in the making: for each configured notifier, the running one it keeps
 * (with the queues it reuses) or a new one. Built whole before anything changes. */
struct reconf {
    size_t count;          /* notifiers of the new configuration */
    struct notifier **nts; /* [count]: kept or new */
    struct queue ***qs;    /* [count]: a kept notifier's new queue array; NULL for a new one */
    bool *kept;            /* [n->nt_count]: the running notifier stays */
    bool **taken;          /* [n->nt_count][its queues]: the queue is reused */
};

/* Everything that can fail, first: matches notifiers by name, builds their queue arrays and
 * the new notifiers. Returns 0 or -ENOMEM (then reconf_undo). */
static int reconf_prepare(struct cm_notify *n, const struct cm_config *cfg, struct reconf *r)
{
    size_t count = r->count;

    if (count > 0 &&
        (!(r->nts = calloc(count, sizeof(*r->nts))) || !(r->qs = calloc(count, sizeof(*r->qs)))))
        return -ENOMEM;
    if (n->nt_count > 0 && !(r->kept = calloc(n->nt_count, sizeof(*r->kept))))
        return -ENOMEM;
    if (n->nt_count > 0 && !(r->taken = calloc(n->nt_count, sizeof(*r->taken))))
        return -ENOMEM;
    for (size_t i = 0; i < count; i++) {
        const struct cm_config_notifier *c = &cfg->notifiers[i];
        for (size_t k = 0; k < n->nt_count && !r->nts[i]; k++) {
            if (r->kept[k] || strcmp(n->nts[k]->name, c->name ? c->name : "") != 0)
                continue;
            struct notifier *old = n->nts[k];
            if (!(r->taken[k] = calloc(old->queue_count + 1, sizeof(bool))))
                return -ENOMEM;
            if (!(r->qs[i] = queues_for(old, c, old->queues, old->queue_count, r->taken[k])))
                return -ENOMEM;
            r->kept[k] = true;
            r->nts[i] = old;
        }
        if (!r->nts[i] && !(r->nts[i] = notifier_new(n, c)))
            return -ENOMEM;
    }
    return 0;
}

/* After a failed reconf_prepare: frees the new notifiers and the queues made new. */
static void reconf_undo(struct cm_notify *n, const struct cm_config *cfg, struct reconf *r)
{
    for (size_t i = 0; i < r->count && r->nts; i++) {
        bool old = false;
        for (size_t k = 0; k < n->nt_count; k++)
            old = old || n->nts[k] == r->nts[i];
        if (r->nts[i] && !old)
            notifier_close(r->nts[i]);
        if (r->qs && r->qs[i] && r->nts[i]) {
            /* Free only the queues that were made new. */
            struct notifier *o = r->nts[i];
            for (size_t j = 0; j < dest_count(&cfg->notifiers[i]); j++) {
                bool was = false;
                for (size_t m = 0; m < o->queue_count; m++)
                    was = was || o->queues[m] == r->qs[i][j];
                if (!was)
                    queue_free(r->qs[i][j]);
            }
            free(r->qs[i]);
        }
    }
}

/* Gives kept notifier nt its new queue array qs for c (taken: which of its queues moved): the
 * queues not taken over are dropped with their messages. */
static void replace_queues(struct notifier *nt, const bool *taken, struct queue **qs,
                           const struct cm_config_notifier *c)
{
    for (size_t j = 0; j < nt->queue_count; j++) {
        struct queue *q = nt->queues[j];
        if (taken[j])
            continue;
        char u[256];
        redact(q->url, u, sizeof(u));
        if (q->xfer) {
            nt->closing = true; /* on_sent must leave the queue alone */
            cm_httpc_cancel(q->xfer);
            nt->closing = false;
        }
        cm_log_info(SUB, "notifier=%s url=%s removed by reload, messages_dropped=%zu", nt->name, u,
                    q->len);
        for (const struct msg *m = q->head; m; m = m->next)
            persist_gone(nt, m->seq);
        queue_free(q);
    }
    free(nt->queues);
    nt->queues = qs;
    nt->queue_count = dest_count(c);
    nt->cfg = c;
}

/* Cannot fail: closes the notifiers not kept, swaps the kept ones' queues, installs the list
 * and arms every notifier's timers. */
static void reconf_commit(struct cm_notify *n, const struct cm_config *cfg, struct reconf *r)
{
    for (size_t k = 0; k < n->nt_count; k++) {
        struct notifier *old = n->nts[k];
        if (!r->kept[k]) {
            size_t lost = old->group_n > 0 ? 1 : 0;
            for (size_t j = 0; j < old->queue_count; j++)
                lost += old->queues[j]->len;
            cm_log_info(SUB, "notifier=%s removed by reload, messages_dropped=%zu", old->name,
                        lost);
            if (n->persist.dropped)
                n->persist.dropped(n->persist_arg, old->name);
            old->owner = NULL;
            notifier_close(old);
        }
    }
    for (size_t i = 0; i < r->count; i++) {
        struct notifier *nt = r->nts[i];
        size_t k = 0;
        if (!r->qs[i])
            continue; /* new one */
        while (n->nts[k] != nt)
            k++;
        replace_queues(nt, r->taken[k], r->qs[i], &cfg->notifiers[i]);
        r->qs[i] = NULL;
    }
    free(n->nts);
    n->nts = r->nts;
    n->nt_count = r->count;
    n->cfg = cfg;
    r->nts = NULL;
    for (size_t i = 0; i < n->nt_count; i++) {
        arm_tick(n->nts[i]);
        arm_deliver(n->nts[i]);
    }
    notify_changed(n);
}

int cm_notify_reconfigure(struct cm_notify *n, const struct cm_config *cfg)
{
    struct reconf r = {.count = cfg ? cfg->notifier_count : 0};
    size_t running = n->nt_count; /* taken[] is sized by the list before the commit */
    int rc = reconf_prepare(n, cfg, &r);

    if (rc == 0)
        reconf_commit(n, cfg, &r);
    else
        reconf_undo(n, cfg, &r);
    for (size_t k = 0; r.taken && k < running; k++)
        free(r.taken[k]);
    free(r.taken);
    free(r.kept);
    free(r.qs);
    free(r.nts);
    return rc;
}

static json_t *msg_json(const struct cm_notice *const *items, size_t cnt, const char *url,
                        int64_t created_at, unsigned attempts)
{
    json_t *o = json_object(), *arr = json_array();

    if (!o || !arr)
        goto fail;
    for (size_t i = 0; i < cnt; i++)
        if (json_array_append_new(arr, cm_notice_to_json(items[i])) < 0)
            goto fail;
    if (json_object_set_new(o, "notices", arr) < 0) {
        arr = NULL;
        goto fail;
    }
    arr = NULL;
    if (json_object_set_new(o, "url", json_string(url ? url : "")) < 0 ||
        json_object_set_new(o, "created_at", json_integer(created_at)) < 0 ||
        json_object_set_new(o, "attempts", json_integer(attempts)) < 0)
        goto fail;
    return o;
fail:
    json_decref(arr);
    json_decref(o);
    return NULL;
}

json_t *cm_notify_to_json(const struct cm_notify *n)
{
    json_t *root = json_object();

    if (!root || !n)
        return root;
    for (size_t i = 0; i < n->nt_count; i++) {
        const struct notifier *nt = n->nts[i];
        json_t *o = json_object(), *queue = json_array();
        if (!o || !queue || json_object_set_new(o, "alerts", cm_alerts_to_json(nt->alerts)) < 0 ||
            json_object_set(o, "queue", queue) < 0 || json_object_set_new(root, nt->name, o) < 0) {
            json_decref(queue);
            json_decref(root);
            return NULL;
        }
        json_decref(queue);
        for (size_t j = 0; j < nt->queue_count; j++) {
            const struct queue *q = nt->queues[j];
            for (const struct msg *m = q->head; m; m = m->next)
                if (json_array_append_new(queue,
                                          msg_json((const struct cm_notice *const *)m->items, m->n,
                                                   q->url, m->created_at, m->attempts)) < 0)
                    goto fail;
            /* Notices still being grouped are persisted as the message they will become. */
            if (nt->group_n > 0 &&
                json_array_append_new(queue,
                                      msg_json((const struct cm_notice *const *)nt->group,
                                               nt->group_n, q->url, (int64_t)time(NULL), 0)) < 0)
                goto fail;
        }
    }
    return root;
fail:
    json_decref(root);
    return NULL;
}

/* Parsed, not yet applied state of one notifier. */
struct loaded {
    struct cm_alerts *alerts;
    struct msg **msgs; /* per queue: a list (head) */
    struct msg **tails;
    struct msg *grouped, *grouped_tail; /* notices that were being grouped, one per msg */
    bool present;                       /* the document names the notifier */
    uint64_t max_seq;                   /* the highest "seq" seen, +1 (0: none) */
};

static int load_queue(struct notifier *nt, json_t *arr, struct loaded *l)
{
    size_t i;
    json_t *e;

    if (!json_is_array(arr))
        return CM_ESTATE;
    json_array_foreach(arr, i, e)
    {
        json_t *notices = json_object_get(e, "notices"), *jn;
        json_t *url = json_object_get(e, "url"), *ca = json_object_get(e, "created_at"),
               *at = json_object_get(e, "attempts"), *seq = json_object_get(e, "seq");
        bool grouping = json_is_true(json_object_get(e, "grouping"));
        size_t qi = 0, k;
        struct msg *m;

        if (!json_is_object(e) || !json_is_array(notices) || json_array_size(notices) == 0 ||
            !json_is_integer(ca) || (url && !json_is_string(url)) || (at && !json_is_integer(at)) ||
            (seq && (!json_is_integer(seq) || json_integer_value(seq) < 0)) ||
            (grouping && json_array_size(notices) != 1))
            return CM_ESTATE;
        if (is_am(nt) && !grouping) {
            for (qi = 0; qi < nt->queue_count; qi++)
                if (url && strcmp(nt->queues[qi]->url, json_string_value(url)) == 0)
                    break;
            if (qi == nt->queue_count) {
                char u[256];
                redact(url ? json_string_value(url) : "", u, sizeof(u));
                cm_log_warn(SUB, "notifier=%s url=%s not configured: persisted message dropped",
                            nt->name, u);
                continue;
            }
        }
        if (!(m = calloc(1, sizeof(*m))) ||
            !(m->items = calloc(json_array_size(notices), sizeof(*m->items)))) {
            free(m);
            return -ENOMEM;
        }
        m->created_at = json_integer_value(ca);
        m->attempts = at && json_integer_value(at) > 0 ? (unsigned)json_integer_value(at) : 0;
        /* A row's own seq, kept (its row is updated and deleted by it); else a new one,
         * given when the load is applied. */
        m->seq = seq ? (uint64_t)json_integer_value(seq) : UINT64_MAX;
        if (seq && m->seq + 1 > l->max_seq)
            l->max_seq = m->seq + 1;
        json_array_foreach(notices, k, jn)
        {
            if (!(m->items[k] = cm_notice_from_json(jn))) {
                msg_free(m);
                return CM_ESTATE;
            }
            m->n = k + 1;
        }
        if (grouping) {
            if (l->grouped_tail)
                l->grouped_tail->next = m;
            else
                l->grouped = m;
            l->grouped_tail = m;
            continue;
        }
        if (l->tails[qi])
            l->tails[qi]->next = m;
        else
            l->msgs[qi] = m;
        l->tails[qi] = m;
    }
    return 0;
}

static void loaded_clear(struct loaded *l, size_t nq)
{
    cm_alerts_free(l->alerts);
    for (size_t i = 0; l->msgs && i < nq; i++)
        while (l->msgs[i]) {
            struct msg *m = l->msgs[i];
            l->msgs[i] = m->next;
            msg_free(m);
        }
    while (l->grouped) {
        struct msg *m = l->grouped;
        l->grouped = m->next;
        msg_free(m);
    }
    free(l->msgs);
    free(l->tails);
    memset(l, 0, sizeof(*l));
}

int cm_notify_load_json(struct cm_notify *n, json_t *j)
{
    struct loaded *ls;
    int rc = 0;

    if (!n || !json_is_object(j))
        return CM_ESTATE;
    if (n->nt_count == 0)
        return 0;
    if (!(ls = calloc(n->nt_count, sizeof(*ls))))
        return -ENOMEM;
    for (size_t i = 0; i < n->nt_count && rc == 0; i++) {
        struct notifier *nt = n->nts[i];
        json_t *o = json_object_get(j, nt->name);
        if (!o)
            continue;
        if (!json_is_object(o)) {
            rc = CM_ESTATE;
            break;
        }
        json_t *a = json_object_get(o, "alerts"), *q = json_object_get(o, "queue");
        /* Without "alerts" the table stays as it is (loaded row by row: cm_notify_load_alert). */
        if (!(ls[i].msgs = calloc(nt->queue_count, sizeof(struct msg *))) ||
            !(ls[i].tails = calloc(nt->queue_count, sizeof(struct msg *))) ||
            (a && cm_alerts_new(&ls[i].alerts) < 0)) {
            rc = -ENOMEM;
            break;
        }
        ls[i].present = true;
        if (a && (rc = cm_alerts_from_json(ls[i].alerts, a)) < 0)
            break;
        if (q && (rc = load_queue(nt, q, &ls[i])) < 0)
            break;
    }
    /* The grouped notices need room in their groups before anything is applied. */
    for (size_t i = 0; i < n->nt_count && rc == 0; i++) {
        size_t more = 0;
        for (const struct msg *m = ls[i].grouped; m; m = m->next)
            more++;
        if (more && group_reserve(n->nts[i], n->nts[i]->group_n + more) < 0)
            rc = -ENOMEM;
    }
    if (rc == 0) {
        for (size_t i = 0; i < n->nt_count; i++)
            if (ls[i].max_seq > n->next_seq)
                n->next_seq = ls[i].max_seq;
        for (size_t i = 0; i < n->nt_count; i++) {
            struct notifier *nt = n->nts[i];
            if (!ls[i].present)
                continue;
            if (ls[i].alerts) {
                cm_alerts_free(nt->alerts);
                nt->alerts = ls[i].alerts;
                ls[i].alerts = NULL;
                cm_alerts_on_change(nt->alerts, on_alert_row, nt);
            }
            for (size_t qi = 0; qi < nt->queue_count; qi++)
                while (ls[i].msgs[qi]) {
                    struct msg *m = ls[i].msgs[qi];
                    ls[i].msgs[qi] = m->next;
                    if (m->seq == UINT64_MAX)
                        m->seq = new_seq(nt);
                    queue_push(nt->queues[qi], m);
                }
            /* Notices that were being grouped go back to the group, which leaves group_wait
             * from now (the wait they had is not known). */
            while (ls[i].grouped) {
                struct msg *m = ls[i].grouped;
                ls[i].grouped = m->next;
                if (nt->group_n == 0)
                    nt->group_due = uv_now(nt->deliver.loop) + nt->cfg->group_wait_ms;
                nt->group_seq[nt->group_n] = m->seq == UINT64_MAX ? new_seq(nt) : m->seq;
                nt->group[nt->group_n++] = m->items[0];
                m->n = 0; /* the notice moved */
                msg_free(m);
            }
            arm_tick(nt);
            arm_deliver(nt);
        }
    } else if (rc != -ENOMEM) {
        rc = CM_ESTATE;
    }
    for (size_t i = 0; i < n->nt_count; i++)
        loaded_clear(&ls[i], n->nts[i]->queue_count);
    free(ls);
    return rc;
}

int cm_notify_load_alert(struct cm_notify *n, const char *notifier, const struct cm_alert_row *r)
{
    struct notifier *nt;
    int rc;

    if (!n || !notifier)
        return -EINVAL;
    for (size_t i = 0; i < n->nt_count; i++) {
        nt = n->nts[i];
        if (strcmp(nt->name, notifier) != 0)
            continue;
        rc = cm_alerts_add(nt->alerts, r);
        arm_tick(nt);
        return rc;
    }
    return -ENOENT;
}

void cm_notify_set_persist(struct cm_notify *n, const struct cm_notify_persist *p, void *arg)
{
    if (!n)
        return;
    if (p)
        n->persist = *p;
    else
        memset(&n->persist, 0, sizeof(n->persist));
    n->persist_arg = arg;
}

static void persist_alert_row(const struct cm_alert_row *row, void *arg)
{
    on_alert_row(row, false, arg);
}

int cm_notify_persist_all(struct cm_notify *n)
{
    int rc = 0;

    if (!n)
        return 0;
    for (size_t i = 0; i < n->nt_count; i++) {
        struct notifier *nt = n->nts[i];
        if (cm_alerts_foreach(nt->alerts, persist_alert_row, nt) < 0) {
            cm_log_error(SUB, "notifier=%s alert table not persisted: out of memory", nt->name);
            rc = -ENOMEM;
        }
        for (size_t j = 0; j < nt->queue_count; j++)
            for (const struct msg *m = nt->queues[j]->head; m; m = m->next)
                persist_msg(nt, nt->queues[j], m);
        for (size_t k = 0; k < nt->group_n; k++)
            persist_row(nt, nt->group_seq[k], NULL, (int64_t)time(NULL), 0, &nt->group[k], 1);
    }
    return rc;
}

void cm_notify_on_change(struct cm_notify *n, void (*cb)(void *arg), void *arg)
{
    n->on_change = cb;
    n->on_change_arg = arg;
}

size_t cm_notify_stats(const struct cm_notify *n, struct cm_notify_stats *out, size_t max)
{
    if (!n)
        return 0;
    for (size_t i = 0; i < n->nt_count && i < max; i++) {
        const struct notifier *nt = n->nts[i];
        out[i].name = nt->name;
        out[i].sent = nt->sent;
        out[i].failed = nt->failed;
        out[i].dropped = nt->dropped;
        out[i].queued = nt->group_n > 0 ? 1 : 0;
        for (size_t j = 0; j < nt->queue_count; j++)
            out[i].queued += nt->queues[j]->len;
    }
    return n->nt_count;
}

static void probe_done(const struct cm_httpc_result *r, void *arg)
{
    struct probe_ctx *p = arg;

    *p->pprev = p->next;
    if (p->next)
        p->next->pprev = p->pprev;
    if (p->cb && p->secret) {
        /* The caller prints what libcurl and the receiver said: without the token. */
        struct cm_httpc_result c = *r;
        char err[CURL_ERROR_MAX];
        size_t blen = r->body ? r->body_len * 3 + 1 : 1;
        char *body = malloc(blen);
        scrub(r->error, p->secret, err, sizeof(err));
        c.error = err;
        if (body) {
            scrub(r->body, p->secret, body, blen);
            c.body = body;
            c.body_len = strlen(body);
        } else {
            c.body = "";
            c.body_len = 0;
        }
        p->cb(p->name, p->type, &c, p->arg);
        free(body);
    } else if (p->cb) {
        p->cb(p->name, p->type, r, p->arg);
    }
    free(p->secret);
    free(p->name);
    free(p);
}

int cm_notify_test(struct cm_notify *n, const char *only,
                   void (*cb)(const char *name, const char *type, const struct cm_httpc_result *r,
                              void *arg),
                   void *arg)
{
    int sent = 0;
    bool named = false;
    int64_t now = (int64_t)time(NULL);
    struct cm_alert_event ev = {.kind = CM_ALERT_FIRING,
                                .target = CM_NOTIFY_TEST_TARGET,
                                .id = CM_NOTIFY_TEST_FINDING,
                                .position = -1,
                                .severity = CM_SEV_INFO,
                                .previous = CM_SEV_INFO,
                                .message = CM_NOTIFY_TEST_MESSAGE,
                                .started_at = now,
                                .fired_at = now,
                                .at = now};
    struct cm_notice *no;

    if (!n)
        return -ENOENT;
    if (!(no = cm_notice_new(&ev, NULL)))
        return -ENOMEM;
    for (size_t i = 0; i < n->nt_count; i++) {
        struct notifier *nt = n->nts[i];
        if (only && strcmp(only, nt->name) != 0)
            continue;
        named = true;
        for (size_t d = 0; d < nt->queue_count; d++) {
            struct probe_ctx *p = calloc(1, sizeof(*p));
            int rc;
            if (!p || !(p->name = strdup(nt->name)) ||
                (nt->cfg->token && !(p->secret = strdup(nt->cfg->token)))) {
                if (p)
                    free(p->name);
                free(p);
                cm_notice_free(no);
                return sent > 0 ? sent : -ENOMEM;
            }
            p->owner = n;
            p->type = nt->cfg->type ? nt->cfg->type : "";
            p->cb = cb;
            p->arg = arg;
            p->next = n->probes;
            p->pprev = &n->probes;
            if (n->probes)
                n->probes->pprev = &p->next;
            n->probes = p;
            rc = send_msg(n->http, nt, nt->queues[d]->url, (const struct cm_notice *const *)&no, 1,
                          probe_done, p, &p->xfer);
            if (rc < 0) {
                char u[256];
                redact(nt->queues[d]->url, u, sizeof(u));
                cm_log_error(SUB, "notifier=%s url=%s test message not sent: %s", nt->name, u,
                             cm_strerror(rc));
                *p->pprev = p->next;
                if (p->next)
                    p->next->pprev = p->pprev;
                free(p->secret);
                free(p->name);
                free(p);
                continue;
            }
            sent++;
        }
    }
    cm_notice_free(no);
    return named ? sent : -ENOENT;
}

void cm_notify_close(struct cm_notify *n)
{
    if (!n)
        return;
    while (n->probes)
        cm_httpc_cancel(n->probes->xfer); /* probe_done unlinks it */
    /* n stays readable (to_json) until the last notifier's handles have closed. */
    n->closing = n->nt_count;
    for (size_t i = 0; i < n->nt_count; i++) {
        n->nts[i]->parent = n;
        notifier_close(n->nts[i]);
    }
    if (n->nt_count == 0)
        notify_free(n);
}
