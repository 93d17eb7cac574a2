/* Notification payloads. Every text a human reads is built in a capped buffer from sanitized
 * pieces; every JSON document is built with jansson from strings that are valid UTF-8 by
 * construction, so that a certificate subject or a hostile target name can neither break the
 * JSON, nor add email headers, nor ping a Slack channel. */
#include "certmon/notify/payload.h"
#include "certmon/base/crypto.h"
#include "certmon/base/error.h"
#include "certmon/base/text.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest text any payload may grow to: far above a real group, small enough that a runaway
 * input cannot take the daemon's memory. */
#define BUF_MAX (16u << 20)

/* Slack limits: header text 150 characters, section text 3000. Byte counts bound character
 * counts, so the caps below are in bytes of output. */
#define SLACK_HEADER_MAX 150
#define CAP_TARGET 200
#define CAP_MESSAGE 1500
#define CAP_LABELS 600
#define CAP_LABEL_VALUE 200
/* Notices named one by one in the Slack fallback text. */
#define FALLBACK_ITEMS 5
/* SMTP: a line is at most 998 bytes plus CRLF (RFC 5321 4.5.3.1.6). */
#define MAIL_LINE_MAX 998
/* Latest time accepted anywhere: 9999-12-31T23:59:59Z (RFC 3339 has four-digit years). */
#define TIME_MAX INT64_C(253402300799)

/* ---- A growable buffer with a hard cap; on failure it frees itself and stays failed. ---- */

struct buf {
    char *p;
    size_t len, cap;
    bool failed;
};

static void buf_fail(struct buf *b)
{
    free(b->p);
    *b = (struct buf){.failed = true};
}

static void buf_addn(struct buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len >= BUF_MAX - 1 || n > BUF_MAX - 1 - b->len) {
        buf_fail(b);
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (!(p = realloc(b->p, cap))) {
            buf_fail(b);
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_adds(struct buf *b, const char *s)
{
    buf_addn(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void buf_addf(struct buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    /* Only short, fixed formats come here; user text goes through add_text. */
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        buf_fail(b);
        return;
    }
    buf_addn(b, tmp, (size_t)n);
}

/* The text (an empty string for an empty buffer), or NULL when the buffer failed. */
static char *buf_take(struct buf *b)
{
    char *p;

    if (b->failed)
        return NULL;
    if (!b->p)
        return calloc(1, 1);
    p = b->p;
    *b = (struct buf){0};
    return p;
}

static void buf_clear(struct buf *b)
{
    free(b->p);
    *b = (struct buf){0};
}

/* ---- Text sanitizing ---- */

enum {
    T_LINE = 1 << 0,  /* control characters (CR and LF too) become spaces */
    T_LINES = 1 << 1, /* CR, LF and CRLF become "\n"; other control characters spaces */
    T_SLACK = 1 << 2, /* & < > as &amp; &lt; &gt; (Slack mrkdwn; Telegram's HTML too) */
    T_MD = 1 << 3,    /* \ * _ [ ] ~ ` backslash-escaped (Markdown of Teams cards) */
};

#define T_HTML T_SLACK

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */
#define ELLIPSIS "\xe2\x80\xa6"    /* U+2026 */

/* Appends s (NULL: nothing) as flags say, valid UTF-8 whatever s holds. With max > 0, stops
 * before the output of s would pass max bytes and appends an ellipsis instead. */
static void add_text(struct buf *b, const char *s, unsigned flags, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t avail = s ? strlen(s) : 0, out = 0;

    while (avail > 0) {
        char tmp[8];
        const char *piece = tmp;
        size_t len, used = cm_utf8_seq(p, avail);

        if (used == 0) {
            piece = REPLACEMENT, len = 3, used = 1;
        } else if (used == 1 && (p[0] < 0x20 || p[0] == 0x7f) && (flags & (T_LINE | T_LINES))) {
            if ((flags & T_LINES) && (p[0] == '\n' || p[0] == '\r')) {
                piece = "\n", len = 1;
                if (p[0] == '\r' && avail > 1 && p[1] == '\n')
                    used = 2;
            } else {
                piece = " ", len = 1;
            }
        } else if (used == 1 && (flags & T_SLACK) && (p[0] == '&' || p[0] == '<' || p[0] == '>')) {
            piece = p[0] == '&' ? "&amp;" : p[0] == '<' ? "&lt;" : "&gt;";
            len = strlen(piece);
        } else if (used == 1 && (flags & T_MD) && strchr("\\*_[]~`", p[0])) {
            tmp[0] = '\\';
            tmp[1] = (char)p[0];
            len = 2;
        } else {
            memcpy(tmp, p, used);
            len = used;
        }
        if (max > 0 && out + len > max) {
            buf_adds(b, ELLIPSIS);
            return;
        }
        buf_addn(b, piece, len);
        out += len;
        p += used;
        avail -= used;
    }
}

/* Cuts what b holds from byte start on (valid UTF-8) to at most max characters (code points,
 * max >= 1): a longer text keeps max - 1 of them and ends with an ellipsis. */
static void cut_chars(struct buf *b, size_t start, size_t max)
{
    size_t chars = 0, cut = 0;

    if (b->failed)
        return;
    for (size_t i = start; i < b->len; i++) {
        if (((unsigned char)b->p[i] & 0xc0) != 0x80) {
            if (chars == max - 1)
                cut = i;
            chars++;
        }
    }
    if (chars > max) {
        b->len = cut;
        b->p[cut] = '\0';
        buf_adds(b, ELLIPSIS);
    }
}

/* Cuts what b holds to at most max bytes (max > 3), between characters, ending with an
 * ellipsis when it was longer. */
static void cut_bytes(struct buf *b, size_t max)
{
    size_t cut;

    if (b->failed || b->len <= max)
        return;
    cut = max - 3;
    while (cut > 0 && ((unsigned char)b->p[cut] & 0xc0) == 0x80)
        cut--;
    b->len = cut;
    b->p[cut] = '\0';
    buf_adds(b, ELLIPSIS);
}

/* A JSON string holding s made valid UTF-8 (NULL s: ""). NULL on ENOMEM. */
static json_t *jstr(const char *s)
{
    struct buf b = {0};
    json_t *j;
    char *t;

    add_text(&b, s, 0, 0);
    if (!(t = buf_take(&b)))
        return NULL;
    j = json_string(t);
    free(t);
    return j;
}

/* ---- Names and phrases shared by the formats ---- */

/* alert.c's cm_alert_kind_name, kept here so that payloads depend on alert.h's types only. */
static const char *kind_name(enum cm_alert_kind k)
{
    static const char *const names[] = {"firing", "changed", "repeat", "resolved"};

    return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : NULL;
}

static const char *sev_upper(enum cm_severity s)
{
    static const char *const names[] = {"OK", "INFO", "WARNING", "CRITICAL"};

    return (unsigned)s < 4 ? names[s] : "OK";
}

static bool resolved(const struct cm_notice *x)
{
    return x->kind == CM_ALERT_RESOLVED;
}

static const char *summary_of(const char *id)
{
    const struct cm_finding_def *d = cm_finding_lookup(id);

    return d ? d->summary : id ? id : "";
}

static void rfc3339(int64_t t, char buf[32])
{
    if (t < 0 || t > TIME_MAX)
        snprintf(buf, 32, "unknown");
    else
        cm_time_rfc3339(t, buf, 32);
}

static json_t *jtime(int64_t t)
{
    char buf[32];

    if (t <= 0 || t > TIME_MAX)
        return json_null();
    cm_time_rfc3339(t, buf, sizeof(buf));
    return json_string(buf);
}

/* "just now", "5 minutes ago", "3 hours ago", "1 day ago": how long before now t was. */
static void add_ago(struct buf *b, int64_t t, time_t now)
{
    int64_t d = (int64_t)now - t;

    if (d < 60)
        buf_adds(b, "just now");
    else if (d < 3600)
        buf_addf(b, "%" PRId64 " minute%s ago", d / 60, d / 60 == 1 ? "" : "s");
    else if (d < 86400)
        buf_addf(b, "%" PRId64 " hour%s ago", d / 3600, d / 3600 == 1 ? "" : "s");
    else
        buf_addf(b, "%" PRId64 " day%s ago", d / 86400, d / 86400 == 1 ? "" : "s");
}

/* "2024-05-01T10:00:00Z (3 days ago)", or with bare set "2024-05-01T10:00:00Z, 3 days ago"
 * (for text already in parentheses). */
static void add_when_as(struct buf *b, int64_t t, time_t now, bool bare)
{
    char ts[32];

    if (t <= 0) {
        buf_adds(b, "unknown");
        return;
    }
    rfc3339(t, ts);
    buf_adds(b, ts);
    buf_adds(b, bare ? ", " : " (");
    add_ago(b, t, now);
    if (!bare)
        buf_adds(b, ")");
}

static void add_when(struct buf *b, int64_t t, time_t now)
{
    add_when_as(b, t, now, false);
}

/* "CRITICAL", "CRITICAL (was warning)", "CRITICAL (still firing)" or "RESOLVED". */
static void add_status_word(struct buf *b, const struct cm_notice *x)
{
    if (resolved(x)) {
        buf_adds(b, "RESOLVED");
        return;
    }
    buf_adds(b, sev_upper(x->severity));
    if (x->kind == CM_ALERT_CHANGED && x->previous != x->severity)
        buf_addf(b, " (was %s)", cm_severity_name(x->previous));
    else if (x->kind == CM_ALERT_REPEAT)
        buf_adds(b, " (still firing)");
}

/* "CRITICAL: cert.expired on www.example.com:443" (what is the finding id or its summary). */
static void add_headline(struct buf *b, const struct cm_notice *x, const char *what, unsigned flags)
{
    add_status_word(b, x);
    buf_adds(b, ": ");
    add_text(b, what, flags | T_LINE, 0);
    buf_adds(b, " on ");
    add_text(b, x->target, flags | T_LINE, CAP_TARGET);
}

struct counts {
    size_t sev[4], resolved, targets;
    enum cm_severity worst; /* among the firing ones */
    bool any_firing;
};

static struct counts count(const struct cm_notice *const *items, size_t n)
{
    struct counts c = {0};

    for (size_t i = 0; i < n; i++) {
        const struct cm_notice *x = items[i];
        bool seen = false;

        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(items[j]->target, x->target) == 0;
        c.targets += !seen;
        if (resolved(x)) {
            c.resolved++;
            continue;
        }
        c.sev[(unsigned)x->severity < 4 ? x->severity : 0]++;
        if (!c.any_firing || x->severity > c.worst)
            c.worst = x->severity;
        c.any_firing = true;
    }
    return c;
}

/* "3 alerts (1 critical, 2 warning) on 2 targets", or "RESOLVED: 3 alerts on 2 targets"
 * when all of them are resolutions. */
static void add_group_phrase(struct buf *b, const struct counts *c, size_t n)
{
    static const char *const words[] = {"ok", "info", "warning", "critical"};
    bool first = true;

    if (!c->any_firing)
        buf_adds(b, "RESOLVED: ");
    buf_addf(b, "%zu alert%s", n, n == 1 ? "" : "s");
    if (c->any_firing) {
        buf_adds(b, " (");
        for (int s = 3; s >= 0; s--) {
            if (c->sev[s]) {
                buf_addf(b, "%s%zu %s", first ? "" : ", ", c->sev[s], words[s]);
                first = false;
            }
        }
        if (c->resolved)
            buf_addf(b, "%s%zu resolved", first ? "" : ", ", c->resolved);
        buf_adds(b, ")");
    }
    buf_addf(b, " on %zu target%s", c->targets, c->targets == 1 ? "" : "s");
}

static bool items_ok(const struct cm_notice *const *items, size_t n)
{
    if (!items || n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!items[i] || !items[i]->target || !items[i]->message)
            return false;
    return true;
}

/* ---- Notices ---- */

/* Room for count labels in l (which is empty). Returns 0 or -ENOMEM. */
static int labels_alloc(struct cm_labels *l, size_t count)
{
    if (count == 0)
        return 0;
    l->keys = calloc(count, sizeof(char *));
    l->values = calloc(count, sizeof(char *));
    if (!l->keys || !l->values) {
        cm_labels_clear(l);
        return -ENOMEM;
    }
    return 0;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

struct cm_notice *cm_notice_new(const struct cm_alert_event *ev, const struct cm_labels *labels)
{
    const struct cm_finding_def *def;
    struct cm_notice *n;

    if (!ev || !(n = calloc(1, sizeof(*n))))
        return NULL;
    def = cm_finding_lookup(ev->id);
    n->kind = ev->kind;
    n->id = def ? def->id : ev->id;
    n->position = ev->position;
    n->severity = ev->severity;
    n->previous = ev->previous;
    n->started_at = ev->started_at;
    n->fired_at = ev->fired_at;
    n->at = ev->at;
    n->target = dup_or_empty(ev->target);
    n->message = dup_or_empty(ev->message);
    if (!n->target || !n->message)
        goto fail;
    if (labels && labels->count > 0) {
        if (labels_alloc(&n->labels, labels->count) < 0)
            goto fail;
        for (size_t i = 0; i < labels->count; i++) {
            n->labels.keys[i] = dup_or_empty(labels->keys[i]);
            n->labels.values[i] = dup_or_empty(labels->values[i]);
            n->labels.count = i + 1;
            if (!n->labels.keys[i] || !n->labels.values[i])
                goto fail;
        }
    }
    return n;
fail:
    cm_notice_free(n);
    return NULL;
}

void cm_notice_free(struct cm_notice *n)
{
    if (!n)
        return;
    free(n->target);
    free(n->message);
    cm_labels_clear(&n->labels);
    free(n);
}

/* Labels as a JSON object, names and values made valid UTF-8. */
static json_t *labels_json(const struct cm_labels *l)
{
    json_t *o = json_object();

    for (size_t i = 0; o && i < l->count; i++) {
        struct buf k = {0};
        char *key;
        add_text(&k, l->keys[i], 0, 0);
        key = buf_take(&k);
        if (!key || json_object_set_new(o, key, jstr(l->values[i])) != 0) {
            free(key);
            json_decref(o);
            return NULL;
        }
        free(key);
    }
    return o;
}

json_t *cm_notice_to_json(const struct cm_notice *n)
{
    json_t *labels, *o;

    if (!n || !kind_name(n->kind) || !(labels = labels_json(&n->labels)))
        return NULL;
    o = json_pack("{s:s, s:o, s:s, s:I, s:s, s:s, s:o, s:I, s:I, s:I, s:o}", "kind",
                  kind_name(n->kind), "target", jstr(n->target), "id", n->id ? n->id : "",
                  "position", (json_int_t)n->position, "severity", cm_severity_name(n->severity),
                  "previous", cm_severity_name(n->previous), "message", jstr(n->message),
                  "started_at", (json_int_t)n->started_at, "fired_at", (json_int_t)n->fired_at,
                  "at", (json_int_t)n->at, "labels", labels);
    return o;
}

static bool parse_kind(const char *s, enum cm_alert_kind *out)
{
    for (int k = CM_ALERT_FIRING; s && k <= CM_ALERT_RESOLVED; k++) {
        if (strcmp(s, kind_name((enum cm_alert_kind)k)) == 0) {
            *out = (enum cm_alert_kind)k;
            return true;
        }
    }
    return false;
}

static bool parse_sev(const char *s, enum cm_severity *out)
{
    if (s && strcmp(s, "ok") == 0) {
        *out = CM_SEV_OK;
        return true;
    }
    return s && cm_severity_parse(s, out) == 0;
}

static bool get_time(json_t *j, const char *key, int64_t *out)
{
    json_t *v = json_object_get(j, key);

    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > TIME_MAX)
        return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

struct cm_notice *cm_notice_from_json(json_t *j)
{
    const struct cm_finding_def *def;
    struct cm_alert_event ev = {0};
    json_t *pos, *labels, *v;
    const char *key;
    struct cm_notice *n;
    size_t i;

    if (!json_is_object(j))
        return NULL;
    pos = json_object_get(j, "position");
    labels = json_object_get(j, "labels");
    ev.target = json_string_value(json_object_get(j, "target"));
    ev.message = json_string_value(json_object_get(j, "message"));
    def = cm_finding_lookup(json_string_value(json_object_get(j, "id")));
    if (!def || !ev.target || !ev.message ||
        !parse_kind(json_string_value(json_object_get(j, "kind")), &ev.kind) ||
        !parse_sev(json_string_value(json_object_get(j, "severity")), &ev.severity) ||
        !parse_sev(json_string_value(json_object_get(j, "previous")), &ev.previous) ||
        !json_is_integer(pos) || json_integer_value(pos) < -1 ||
        json_integer_value(pos) > 1000000 || !get_time(j, "started_at", &ev.started_at) ||
        !get_time(j, "fired_at", &ev.fired_at) || !get_time(j, "at", &ev.at) ||
        (labels && !json_is_object(labels)))
        return NULL;
    json_object_foreach(labels, key, v)
    {
        if (!json_is_string(v))
            return NULL;
    }
    ev.id = def->id;
    ev.position = (int)json_integer_value(pos);
    if (!(n = cm_notice_new(&ev, NULL)))
        return NULL;
    if (labels && json_object_size(labels) > 0) {
        size_t count = json_object_size(labels);
        char **keys = NULL;

        if (labels_alloc(&n->labels, count) < 0)
            goto fail;
        /* Sorted by name, as struct cm_labels promises; values follow their keys. */
        i = 0;
        json_object_foreach(labels, key, v)
        {
            if (!(n->labels.keys[i] = strdup(key)))
                goto fail;
            n->labels.count = ++i;
        }
        qsort(n->labels.keys, count, sizeof(char *), cm_cmp_strp);
        keys = n->labels.keys;
        for (i = 0; i < count; i++)
            if (!(n->labels.values[i] =
                      strdup(json_string_value(json_object_get(labels, keys[i])))))
                goto fail;
    }
    return n;
fail:
    cm_notice_free(n);
    return NULL;
}

/* ---- Slack ---- */

static const char *slack_emoji(const struct cm_notice *x)
{
    if (resolved(x))
        return ":large_green_circle:";
    switch (x->severity) {
    case CM_SEV_CRITICAL:
        return ":red_circle:";
    case CM_SEV_WARNING:
        return ":large_orange_circle:";
    case CM_SEV_INFO:
        return ":large_blue_circle:";
    default:
        return ":white_circle:";
    }
}

static const char *slack_group_emoji(const struct counts *c)
{
    struct cm_notice probe = {.kind = c->any_firing ? CM_ALERT_FIRING : CM_ALERT_RESOLVED,
                              .severity = c->worst};

    return slack_emoji(&probe);
}

static void add_labels_line(struct buf *b, const struct cm_labels *l, unsigned flags)
{
    size_t start = b->len;

    for (size_t i = 0; i < l->count; i++) {
        if (b->len - start > CAP_LABELS) {
            buf_addf(b, ", " ELLIPSIS " (%zu more)", l->count - i);
            return;
        }
        if (i > 0)
            buf_adds(b, ", ");
        add_text(b, l->keys[i], flags | T_LINE, CAP_LABEL_VALUE);
        buf_adds(b, "=");
        add_text(b, l->values[i], flags | T_LINE, CAP_LABEL_VALUE);
    }
}

/* The mrkdwn text of one notice's section. */
static void slack_section_text(struct buf *b, const struct cm_notice *x, time_t now)
{
    buf_adds(b, slack_emoji(x));
    buf_adds(b, " *");
    buf_adds(b, resolved(x) ? "RESOLVED" : sev_upper(x->severity));
    buf_adds(b, "* `");
    add_text(b, x->id, T_SLACK | T_LINE, 0);
    buf_adds(b, "` on *");
    add_text(b, x->target, T_SLACK | T_LINE, CAP_TARGET);
    buf_adds(b, "*");
    if (x->kind == CM_ALERT_REPEAT)
        buf_adds(b, " (still firing)");
    buf_adds(b, "\n_");
    add_text(b, summary_of(x->id), T_SLACK | T_LINE, 0);
    buf_adds(b, "_\n");
    add_text(b, *x->message ? x->message : "(no message)", T_SLACK | T_LINE, CAP_MESSAGE);
    buf_addf(b, "\n*Severity:* %s", cm_severity_name(x->severity));
    if (resolved(x))
        buf_adds(b, " (resolved)");
    else if (x->kind == CM_ALERT_CHANGED && x->previous != x->severity)
        buf_addf(b, " (was %s)", cm_severity_name(x->previous));
    buf_adds(b, " \xc2\xb7 *Since:* ");
    add_when(b, x->started_at, now);
    if (resolved(x)) {
        buf_adds(b, " \xc2\xb7 *Resolved:* ");
        add_when(b, x->at, now);
    }
    if (x->position >= 0)
        buf_addf(b, " \xc2\xb7 *Position:* %d", x->position);
    if (x->labels.count > 0) {
        buf_adds(b, "\n*Labels:* ");
        add_labels_line(b, &x->labels, T_SLACK);
    }
}

/* The header's plain text, cut to Slack's 150 characters. */
static json_t *slack_header(const struct cm_notice *const *items, size_t n, const struct counts *c)
{
    struct buf b = {0};
    json_t *j;

    if (n == 1) {
        buf_adds(&b, slack_emoji(items[0]));
        buf_adds(&b, " ");
        add_headline(&b, items[0], summary_of(items[0]->id), 0);
    } else {
        buf_adds(&b, slack_group_emoji(c));
        buf_adds(&b, " ");
        add_group_phrase(&b, c, n);
    }
    cut_chars(&b, 0, SLACK_HEADER_MAX);
    if (b.failed)
        return NULL;
    j = json_pack("{s:s, s:{s:s, s:s%, s:b}}", "type", "header", "text", "type", "plain_text",
                  "text", b.p, b.len, "emoji", 1);
    buf_clear(&b);
    return j;
}

static json_t *mrkdwn_block(const char *type, struct buf *b)
{
    json_t *j = NULL;

    if (b->failed)
        return NULL;
    if (strcmp(type, "section") == 0)
        j = json_pack("{s:s, s:{s:s, s:s%}}", "type", "section", "text", "type", "mrkdwn", "text",
                      b->p ? b->p : "", b->len);
    else
        j = json_pack("{s:s, s:[{s:s, s:s%}]}", "type", "context", "elements", "type", "mrkdwn",
                      "text", b->p ? b->p : "", b->len);
    buf_clear(b);
    return j;
}

/* The fallback text: the essentials in one line, or two for a group. */
static void slack_fallback(struct buf *b, const struct cm_notice *const *items, size_t n,
                           const struct counts *c, time_t now)
{
    if (n == 1) {
        const struct cm_notice *x = items[0];
        buf_adds(b, slack_emoji(x));
        buf_adds(b, " ");
        add_headline(b, x, x->id, T_SLACK);
        buf_adds(b, ": ");
        add_text(b, x->message, T_SLACK | T_LINE, CAP_MESSAGE);
        buf_adds(b, " (since ");
        add_when_as(b, x->started_at, now, true);
        buf_adds(b, ")");
        return;
    }
    buf_adds(b, slack_group_emoji(c));
    buf_adds(b, " ");
    add_group_phrase(b, c, n);
    buf_adds(b, "\n");
    for (size_t i = 0; i < n && i < FALLBACK_ITEMS; i++) {
        if (i > 0)
            buf_adds(b, "; ");
        add_headline(b, items[i], items[i]->id, T_SLACK);
    }
    if (n > FALLBACK_ITEMS)
        buf_addf(b, "; and %zu more", n - FALLBACK_ITEMS);
}

char *cm_payload_slack(const struct cm_notice *const *items, size_t n, time_t now)
{
    struct counts c;
    struct buf b = {0};
    json_t *root = NULL, *blocks;
    char ts[32], *out = NULL;
    size_t shown;

    if (!items_ok(items, n))
        return NULL;
    c = count(items, n);
    if (!(blocks = json_array()))
        return NULL;
    if (json_array_append_new(blocks, slack_header(items, n, &c)) != 0)
        goto done;
    shown = n > CM_PAYLOAD_SLACK_SECTIONS ? CM_PAYLOAD_SLACK_SECTIONS : n;
    for (size_t i = 0; i < shown; i++) {
        slack_section_text(&b, items[i], now);
        if (json_array_append_new(blocks, mrkdwn_block("section", &b)) != 0)
            goto done;
    }
    if (shown < n) {
        buf_addf(&b, "_" ELLIPSIS " and %zu more alert%s not shown here_", n - shown,
                 n - shown == 1 ? "" : "s");
        if (json_array_append_new(blocks, mrkdwn_block("section", &b)) != 0)
            goto done;
    }
    rfc3339(now, ts);
    buf_addf(&b, "certmon %s \xc2\xb7 sent %s", CERTMON_VERSION, ts);
    if (json_array_append_new(blocks, mrkdwn_block("context", &b)) != 0)
        goto done;
    slack_fallback(&b, items, n, &c, now);
    if (b.failed)
        goto done;
    root = json_pack("{s:s%, s:O}", "text", b.p ? b.p : "", b.len, "blocks", blocks);
    if (root)
        out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
done:
    buf_clear(&b);
    json_decref(blocks);
    json_decref(root);
    return out;
}

/* ---- Webhook ---- */

char *cm_payload_webhook(const struct cm_notice *const *items, size_t n, time_t now)
{
    json_t *alerts, *root = NULL;
    char ts[32], *out = NULL;

    if (!items_ok(items, n) || !(alerts = json_array()))
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const struct cm_notice *x = items[i];
        const char *kind = kind_name(x->kind);
        json_t *a = json_pack(
            "{s:s, s:s, s:o, s:s, s:s, s:o, s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "status",
            resolved(x) ? "resolved" : "firing", "event", kind ? kind : "firing", "target",
            jstr(x->target), "finding", x->id ? x->id : "", "summary", summary_of(x->id),
            "position", x->position >= 0 ? json_integer(x->position) : json_null(), "severity",
            cm_severity_name(x->severity), "previous_severity", cm_severity_name(x->previous),
            "message", jstr(x->message), "started_at", jtime(x->started_at), "fired_at",
            jtime(x->fired_at), "event_at", jtime(x->at), "labels", labels_json(&x->labels));
        if (json_array_append_new(alerts, a) != 0)
            goto done;
    }
    rfc3339(now, ts);
    root = json_pack("{s:s, s:s, s:s, s:O}", "version", "1", "sender", "certmon", "sent_at", ts,
                     "alerts", alerts);
    if (root)
        out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
done:
    json_decref(alerts);
    json_decref(root);
    return out;
}

int cm_payload_hmac(const char *secret, const char *body, size_t len, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[32];
    char *p;

    if (!secret || !out || outlen < CM_PAYLOAD_SIG_LEN || (!body && len > 0))
        return CM_EBADARG;
    if (cm_hmac_sha256(secret, strlen(secret), body ? body : "", len, mac) < 0)
        return CM_ETLS;
    p = out + sprintf(out, "sha256=");
    for (size_t i = 0; i < sizeof(mac); i++) {
        *p++ = hex[mac[i] >> 4];
        *p++ = hex[mac[i] & 15];
    }
    *p = '\0';
    return 0;
}

/* ---- Email ---- */

/* A header value: control characters (CR and LF above all) become spaces. */
static void add_header_value(struct buf *b, const char *s)
{
    add_text(b, s, T_LINE, 0);
}

static bool is_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80)
            return false;
    return true;
}

static void add_base64(struct buf *b, const unsigned char *s, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        char q[4];
        if (i + 1 < len)
            v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < len)
            v |= s[i + 2];
        q[0] = tab[(v >> 18) & 63];
        q[1] = tab[(v >> 12) & 63];
        q[2] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        q[3] = i + 2 < len ? tab[v & 63] : '=';
        buf_addn(b, q, 4);
    }
}

/* "Subject: " + subj (sanitized, valid UTF-8) + CRLF. Non-ASCII text goes out as RFC 2047
 * B-encoded words of at most 39 input bytes, cut between characters: "Subject: " plus one
 * 67-character word keeps every line within the 76 characters RFC 2047 allows. */
static void add_subject(struct buf *b, const char *subj, size_t len)
{
    const unsigned char *p = (const unsigned char *)subj;

    buf_adds(b, "Subject: ");
    if (is_ascii(subj, len)) {
        buf_addn(b, subj, len);
        buf_adds(b, "\r\n");
        return;
    }
    for (size_t i = 0; i < len;) {
        size_t chunk = 0;
        while (i + chunk < len) {
            size_t s = cm_utf8_seq(p + i + chunk, len - i - chunk);
            if (s == 0)
                s = 1; /* cannot happen: subj is sanitized */
            if (chunk + s > 39)
                break;
            chunk += s;
        }
        if (i > 0)
            buf_adds(b, "\r\n ");
        buf_adds(b, "=?UTF-8?B?");
        add_base64(b, p + i, chunk);
        buf_adds(b, "?=");
        i += chunk;
    }
    buf_adds(b, "\r\n");
}

/* RFC 5322 date in UTC, with English names whatever the locale. */
static void add_date(struct buf *b, time_t now)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;

    if (!gmtime_r(&now, &tm)) {
        time_t zero = 0;
        gmtime_r(&zero, &tm);
    }
    buf_addf(b, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Unique per call: the time, a process-wide counter and 64 random bits (the process id
 * when the generator fails), so that two certmon processes differ too. */
static void add_message_id(struct buf *b, time_t now)
{
    static atomic_uint counter;
    char tag[CM_UNIQUE_TAG_MAX];
    unsigned c = atomic_fetch_add(&counter, 1) + 1;

    cm_unique_tag(tag);
    buf_addf(b, "Message-ID: <%lld.%u.%s@certmon>\r\n", (long long)now, c, tag);
}

/* One alert of the body, "\n" line ends (turned into CRLF later). The message sits under
 * the headline with its own line breaks; every other line starts with fixed text. */
static void mail_alert(struct buf *b, const struct cm_notice *x, time_t now)
{
    add_headline(b, x, x->id, 0);
    buf_adds(b, "\n");
    add_text(b, *x->message ? x->message : "(no message)", T_LINES, 0);
    buf_adds(b, "\n\n  Target:   ");
    add_text(b, x->target, T_LINE, 0);
    buf_adds(b, "\n  Finding:  ");
    add_text(b, x->id, T_LINE, 0);
    buf_adds(b, " (");
    add_text(b, summary_of(x->id), T_LINE, 0);
    buf_adds(b, ")\n  Severity: ");
    buf_adds(b, cm_severity_name(x->severity));
    if (resolved(x))
        buf_adds(b, " (resolved)");
    else if (x->kind == CM_ALERT_CHANGED && x->previous != x->severity)
        buf_addf(b, " (was %s)", cm_severity_name(x->previous));
    else if (x->kind == CM_ALERT_REPEAT)
        buf_adds(b, " (still firing)");
    if (x->position >= 0)
        buf_addf(b, "\n  Position: %d", x->position);
    buf_adds(b, "\n  Since:    ");
    add_when(b, x->started_at, now);
    if (resolved(x)) {
        buf_adds(b, "\n  Resolved: ");
        add_when(b, x->at, now);
    }
    buf_adds(b, "\n  Labels:   ");
    if (x->labels.count == 0)
        buf_adds(b, "(none)");
    for (size_t i = 0; i < x->labels.count; i++) {
        buf_adds(b, i ? ", " : "");
        add_text(b, x->labels.keys[i], T_LINE, 0);
        buf_adds(b, "=");
        add_text(b, x->labels.values[i], T_LINE, 0);
    }
    buf_adds(b, "\n");
}

/* Appends body ("\n" line ends, valid UTF-8) to b with CRLF line ends, lines over the SMTP
 * limit broken between characters, and, when stuff is set, a dot doubled at the start of a
 * line (RFC 5321 4.5.2). */
static void add_body(struct buf *b, const char *body, bool stuff)
{
    const char *p = body;

    while (*p) {
        size_t len = strcspn(p, "\n");
        const char *next = p[len] ? p + len + 1 : p + len;

        do {
            size_t take = len, room = MAIL_LINE_MAX - 1; /* one byte for a stuffed dot */
            if (take > room) {
                take = room;
                while (take > 0 && ((unsigned char)p[take] & 0xc0) == 0x80)
                    take--;
            }
            if (stuff && p[0] == '.')
                buf_adds(b, ".");
            buf_addn(b, p, take);
            buf_adds(b, "\r\n");
            p += take;
            len -= take;
        } while (len > 0);
        p = next;
    }
}

static char *email(const struct cm_notice *const *items, size_t n, const char *from,
                   const char *const *to, time_t now, bool stuff)
{
    struct buf h = {0}, s = {0}, body = {0};
    struct counts c;
    char ts[32], *text;

    if (!items_ok(items, n) || !from || !to || !to[0])
        return NULL;
    c = count(items, n);

    /* The subject, sanitized, before it is encoded. */
    buf_adds(&s, "[certmon] ");
    if (n == 1)
        add_headline(&s, items[0], items[0]->id, 0);
    else
        add_group_phrase(&s, &c, n);

    buf_adds(&h, "From: ");
    add_header_value(&h, from);
    buf_adds(&h, "\r\nTo: ");
    for (size_t i = 0, line = h.len; to[i]; i++) {
        /* Fold between addresses so that a long list keeps lines short. */
        if (i > 0 && h.len - line + strlen(to[i]) > 72) {
            buf_adds(&h, ",\r\n ");
            line = h.len - 1;
        } else if (i > 0) {
            buf_adds(&h, ", ");
        }
        add_header_value(&h, to[i]);
    }
    buf_adds(&h, "\r\n");
    if (!s.failed)
        add_subject(&h, s.p, s.len);
    add_date(&h, now);
    add_message_id(&h, now);
    buf_adds(&h, "MIME-Version: 1.0\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Transfer-Encoding: 8bit\r\n"
                 "Auto-Submitted: auto-generated\r\n"
                 "\r\n");

    if (n > 1) {
        add_group_phrase(&body, &c, n);
        buf_adds(&body, ".\n\n");
    }
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            buf_adds(&body, "\n");
        mail_alert(&body, items[i], now);
    }
    rfc3339(now, ts);
    buf_addf(&body, "\n-- \nSent by certmon %s at %s\n", CERTMON_VERSION, ts);
    if (!body.failed)
        add_body(&h, body.p, stuff);
    text = (s.failed || body.failed) ? NULL : buf_take(&h);
    buf_clear(&h);
    buf_clear(&s);
    buf_clear(&body);
    return text;
}

char *cm_payload_email(const struct cm_notice *const *items, size_t n, const char *from,
                       const char *const *to, time_t now)
{
    return email(items, n, from, to, now, true);
}

char *cm_payload_email_unstuffed(const struct cm_notice *const *items, size_t n, const char *from,
                                 const char *const *to, time_t now)
{
    return email(items, n, from, to, now, false);
}

/* ---- Alertmanager ---- */

/* One element of the array: x under severity sev; ends_at > 0 sets endsAt (kept no earlier
 * than startsAt, which Alertmanager would refuse). */
static json_t *am_alert(const struct cm_notice *x, enum cm_severity sev, int64_t ends_at,
                        const char *generator_url)
{
    struct buf b = {0};
    json_t *labels, *a;
    char ts[32];
    bool bad = false;

    labels =
        json_pack("{s:s, s:s, s:o, s:s}", "alertname", "CertmonFinding", "finding",
                  x->id ? x->id : "", "target", jstr(x->target), "severity", cm_severity_name(sev));
    if (!labels)
        return NULL;
    if (x->position >= 0) {
        char pos[16];
        snprintf(pos, sizeof(pos), "%d", x->position);
        bad |= json_object_set_new(labels, "position", json_string(pos)) != 0;
    }
    for (size_t i = 0; i < x->labels.count; i++)
        if (cm_label_ok(x->labels.keys[i], x->labels.values[i]))
            bad |= json_object_set_new(labels, x->labels.keys[i], jstr(x->labels.values[i])) != 0;
    /* summary: what and where; description: the finding's own message. */
    add_text(&b, summary_of(x->id), 0, 0);
    buf_adds(&b, " on ");
    add_text(&b, x->target, 0, 0);
    if (bad || b.failed) {
        json_decref(labels);
        buf_clear(&b);
        return NULL;
    }
    a = json_pack("{s:o, s:{s:s%, s:o}}", "labels", labels, "annotations", "summary", b.p, b.len,
                  "description", jstr(x->message));
    buf_clear(&b);
    if (!a)
        return NULL;
    if (x->started_at > 0 && x->started_at <= TIME_MAX) {
        rfc3339(x->started_at, ts);
        bad |= json_object_set_new(a, "startsAt", json_string(ts)) != 0;
        if (ends_at > 0 && ends_at < x->started_at)
            ends_at = x->started_at;
    }
    if (ends_at > 0) {
        rfc3339(ends_at, ts);
        bad |= json_object_set_new(a, "endsAt", json_string(ts)) != 0;
    }
    if (generator_url && *generator_url)
        bad |= json_object_set_new(a, "generatorURL", jstr(generator_url)) != 0;
    if (bad) {
        json_decref(a);
        return NULL;
    }
    return a;
}

char *cm_payload_alertmanager(const struct cm_notice *const *items, size_t n, time_t now,
                              const char *generator_url, int64_t endsat_horizon_s)
{
    json_t *arr;
    char *out = NULL;
    int64_t active_end = 0;

    if (!items_ok(items, n) || !(arr = json_array()))
        return NULL;
    if (endsat_horizon_s > 0)
        active_end =
            endsat_horizon_s > TIME_MAX - (int64_t)now ? TIME_MAX : (int64_t)now + endsat_horizon_s;
    for (size_t i = 0; i < n; i++) {
        const struct cm_notice *x = items[i];
        int64_t at = x->at > 0 ? x->at : (int64_t)now;

        if (resolved(x)) {
            if (json_array_append_new(arr, am_alert(x, x->severity, at, generator_url)) != 0)
                goto done;
            continue;
        }
        /* The alert under its old severity is another alert to Alertmanager: end it now. */
        if (x->kind == CM_ALERT_CHANGED && x->previous != x->severity &&
            json_array_append_new(arr, am_alert(x, x->previous, at, generator_url)) != 0)
            goto done;
        if (json_array_append_new(arr, am_alert(x, x->severity, active_end, generator_url)) != 0)
            goto done;
    }
    out = json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER);
done:
    json_decref(arr);
    return out;
}

/* ---- Shared by the chat formats (Teams, Telegram, ntfy) ---- */

/* Emoji by what the notice says, as UTF-8: red, orange, blue circles; green when resolved. */
static const char *emoji_of(const struct cm_notice *x)
{
    if (resolved(x))
        return "\xf0\x9f\x9f\xa2"; /* U+1F7E2 */
    switch (x->severity) {
    case CM_SEV_CRITICAL:
        return "\xf0\x9f\x94\xb4"; /* U+1F534 */
    case CM_SEV_WARNING:
        return "\xf0\x9f\x9f\xa0"; /* U+1F7E0 */
    case CM_SEV_INFO:
        return "\xf0\x9f\x94\xb5"; /* U+1F535 */
    default:
        return "\xe2\x9a\xaa"; /* U+26AA */
    }
}

static const char *group_emoji(const struct counts *c)
{
    struct cm_notice probe = {.kind = c->any_firing ? CM_ALERT_FIRING : CM_ALERT_RESOLVED,
                              .severity = c->worst};

    return emoji_of(&probe);
}

/* "Since: 2023-11-15T09:33:20Z (3 days ago) · Resolved: ... · Position: 0" */
static void add_times_line(struct buf *b, const struct cm_notice *x, time_t now)
{
    buf_adds(b, "Since: ");
    add_when(b, x->started_at, now);
    if (resolved(x)) {
        buf_adds(b, " \xc2\xb7 Resolved: ");
        add_when(b, x->at, now);
    }
    if (x->position >= 0)
        buf_addf(b, " \xc2\xb7 Position: %d", x->position);
}

/* ---- PagerDuty ---- */

/* Longest payload.source: PagerDuty names no limit; a host name fits in 255. */
#define PD_SOURCE_MAX 255
/* The message in custom_details: the summary holds the start of it already. */
#define PD_DETAIL_MAX 4000

int cm_payload_pagerduty_dedup_key(const struct cm_notice *x, char *out, size_t outlen)
{
    static const char label[] = "certmon pagerduty dedup_key v1";
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[CM_SHA256_LEN];
    struct buf b = {0};
    char *p;
    int rc;

    if (!x || !out || outlen < CM_PAYLOAD_PD_DEDUP_LEN)
        return CM_EBADARG;
    /* NUL separators: "a" + "b.c" and "a.b" + "c" must not collide. */
    buf_adds(&b, x->target ? x->target : "");
    buf_addn(&b, "", 1);
    buf_adds(&b, x->id ? x->id : "");
    buf_addn(&b, "", 1);
    buf_addf(&b, "%d", x->position);
    if (b.failed)
        return -ENOMEM;
    rc = cm_hmac_sha256(label, sizeof(label) - 1, b.p, b.len, mac);
    buf_clear(&b);
    if (rc < 0)
        return CM_ETLS;
    p = out + sprintf(out, "certmon-");
    for (size_t i = 0; i < 16; i++) {
        *p++ = hex[mac[i] >> 4];
        *p++ = hex[mac[i] & 15];
    }
    *p = '\0';
    return 0;
}

static const char *pd_severity(enum cm_severity s)
{
    return s == CM_SEV_CRITICAL ? "critical" : s == CM_SEV_WARNING ? "warning" : "info";
}

static json_t *pd_payload(const struct cm_notice *x)
{
    struct buf sum = {0}, src = {0}, msg = {0};
    json_t *details = NULL, *p = NULL, *ts;
    const char *kind = kind_name(x->kind);

    add_headline(&sum, x, x->id, 0);
    buf_adds(&sum, ": ");
    add_text(&sum, *x->message ? x->message : "(no message)", T_LINE, 0);
    cut_chars(&sum, 0, CM_PAYLOAD_PD_SUMMARY_MAX);
    add_text(&src, *x->target ? x->target : "(unnamed)", T_LINE, PD_SOURCE_MAX);
    add_text(&msg, x->message, 0, PD_DETAIL_MAX);
    if (sum.failed || src.failed || msg.failed)
        goto done;
    details = json_pack(
        "{s:o, s:s, s:s, s:s%, s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "target", jstr(x->target),
        "finding", x->id ? x->id : "", "summary", summary_of(x->id), "message", msg.p ? msg.p : "",
        msg.len, "severity", cm_severity_name(x->severity), "previous_severity",
        cm_severity_name(x->previous), "event", kind ? kind : "firing", "position",
        x->position >= 0 ? json_integer(x->position) : json_null(), "started_at",
        jtime(x->started_at), "fired_at", jtime(x->fired_at), "labels", labels_json(&x->labels));
    if (!details)
        goto done;
    p = json_pack("{s:s%, s:s%, s:s}", "summary", sum.p, sum.len, "source", src.p, src.len,
                  "severity", pd_severity(x->severity));
    /* timestamp is optional: left out rather than null when the time is unknown. */
    ts = jtime(x->at > 0 ? x->at : x->started_at);
    if (p && ((json_is_string(ts) && json_object_set(p, "timestamp", ts) != 0) ||
              json_object_set_new(p, "class", json_string(x->id ? x->id : "")) != 0 ||
              json_object_set(p, "custom_details", details) != 0)) {
        json_decref(p);
        p = NULL;
    }
    json_decref(ts);
done:
    json_decref(details);
    buf_clear(&sum);
    buf_clear(&src);
    buf_clear(&msg);
    return p;
}

char *cm_payload_pagerduty(const struct cm_notice *x, const char *routing_key,
                           const char *client_url, time_t now)
{
    char key[CM_PAYLOAD_PD_DEDUP_LEN], *out = NULL;
    json_t *root, *payload;

    (void)now; /* the event's own time goes out; PagerDuty stamps the arrival */
    if (!x || !routing_key || !x->target || !x->message ||
        cm_payload_pagerduty_dedup_key(x, key, sizeof(key)) < 0)
        return NULL;
    root = json_pack("{s:s, s:s, s:s}", "routing_key", routing_key, "event_action",
                     resolved(x) ? "resolve" : "trigger", "dedup_key", key);
    if (!root)
        return NULL;
    if (!resolved(x)) {
        if (!(payload = pd_payload(x)) || json_object_set_new(root, "payload", payload) != 0 ||
            json_object_set_new(root, "client", json_string("certmon")) != 0)
            goto done;
        if (client_url && *client_url &&
            json_object_set_new(root, "client_url", jstr(client_url)) != 0)
            goto done;
    }
    out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
done:
    json_decref(root);
    return out;
}

/* ---- Microsoft Teams ---- */

/* A TextBlock of what b holds (b is cleared). weight/size/subtle style it. */
static json_t *teams_text(struct buf *b, bool bold, const char *size, bool subtle)
{
    json_t *j = NULL;

    if (!b->failed)
        j = json_pack("{s:s, s:s%, s:b}", "type", "TextBlock", "text", b->p ? b->p : "", b->len,
                      "wrap", 1);
    buf_clear(b);
    if (j && bold && json_object_set_new(j, "weight", json_string("Bolder")) != 0)
        goto fail;
    if (j && size && json_object_set_new(j, "size", json_string(size)) != 0)
        goto fail;
    if (j && subtle && json_object_set_new(j, "isSubtle", json_true()) != 0)
        goto fail;
    return j;
fail:
    json_decref(j);
    return NULL;
}

/* Appends {"title": title, "value": what b holds} to facts (b is cleared). */
static int teams_fact(json_t *facts, const char *title, struct buf *b)
{
    int rc = -1;

    if (!b->failed)
        rc = json_array_append_new(
            facts, json_pack("{s:s, s:s%}", "title", title, "value", b->p ? b->p : "", b->len));
    buf_clear(b);
    return rc;
}

static int teams_notice(json_t *body, const struct cm_notice *x, time_t now)
{
    struct buf b = {0};
    json_t *facts = json_array();

    if (!facts)
        return -1;
    buf_adds(&b, emoji_of(x));
    buf_adds(&b, " ");
    add_headline(&b, x, x->id, T_MD);
    if (json_array_append_new(body, teams_text(&b, true, NULL, false)) != 0)
        goto fail;
    add_text(&b, *x->message ? x->message : "(no message)", T_MD | T_LINE, CAP_MESSAGE);
    if (json_array_append_new(body, teams_text(&b, false, NULL, false)) != 0)
        goto fail;
    add_text(&b, x->target, T_MD | T_LINE, CAP_TARGET);
    if (teams_fact(facts, "Target", &b) != 0)
        goto fail;
    add_text(&b, x->id, T_MD | T_LINE, 0);
    buf_adds(&b, " (");
    add_text(&b, summary_of(x->id), T_MD | T_LINE, 0);
    buf_adds(&b, ")");
    if (teams_fact(facts, "Finding", &b) != 0)
        goto fail;
    add_status_word(&b, x);
    if (teams_fact(facts, "Severity", &b) != 0)
        goto fail;
    add_when(&b, x->started_at, now);
    if (teams_fact(facts, "Since", &b) != 0)
        goto fail;
    if (resolved(x)) {
        add_when(&b, x->at, now);
        if (teams_fact(facts, "Resolved", &b) != 0)
            goto fail;
    }
    if (x->position >= 0) {
        buf_addf(&b, "%d", x->position);
        if (teams_fact(facts, "Position", &b) != 0)
            goto fail;
    }
    if (x->labels.count > 0) {
        add_labels_line(&b, &x->labels, T_MD);
        if (teams_fact(facts, "Labels", &b) != 0)
            goto fail;
    }
    return json_array_append_new(body, json_pack("{s:s, s:o}", "type", "FactSet", "facts", facts));
fail:
    buf_clear(&b);
    json_decref(facts);
    return -1;
}

char *cm_payload_teams(const struct cm_notice *const *items, size_t n, time_t now)
{
    struct buf b = {0};
    struct counts c;
    json_t *body, *root = NULL;
    char ts[32], *out = NULL;
    size_t shown;

    if (!items_ok(items, n) || !(body = json_array()))
        return NULL;
    c = count(items, n);
    if (n == 1) {
        buf_adds(&b, emoji_of(items[0]));
        buf_adds(&b, " ");
        add_headline(&b, items[0], summary_of(items[0]->id), T_MD);
    } else {
        buf_adds(&b, group_emoji(&c));
        buf_adds(&b, " ");
        add_group_phrase(&b, &c, n);
    }
    if (json_array_append_new(body, teams_text(&b, true, "Medium", false)) != 0)
        goto done;
    shown = n > CM_PAYLOAD_TEAMS_ITEMS ? CM_PAYLOAD_TEAMS_ITEMS : n;
    for (size_t i = 0; i < shown; i++)
        if (teams_notice(body, items[i], now) != 0)
            goto done;
    if (shown < n) {
        buf_addf(&b, ELLIPSIS " and %zu more alert%s not shown here", n - shown,
                 n - shown == 1 ? "" : "s");
        if (json_array_append_new(body, teams_text(&b, false, NULL, false)) != 0)
            goto done;
    }
    rfc3339(now, ts);
    buf_addf(&b, "certmon %s \xc2\xb7 sent %s", CERTMON_VERSION, ts);
    if (json_array_append_new(body, teams_text(&b, false, "Small", true)) != 0)
        goto done;
    root =
        json_pack("{s:s, s:[{s:s, s:n, s:{s:s, s:s, s:s, s:O}}]}", "type", "message", "attachments",
                  "contentType", "application/vnd.microsoft.card.adaptive", "contentUrl", "content",
                  "$schema", "http://adaptivecards.io/schemas/adaptive-card.json", "type",
                  "AdaptiveCard", "version", "1.4", "body", body);
    if (root)
        out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
done:
    buf_clear(&b);
    json_decref(body);
    json_decref(root);
    return out;
}

/* ---- Telegram ---- */

/* Room kept below Telegram's limit for the "more alerts" line and the footer. */
#define TG_RESERVE 120

size_t cm_payload_telegram_length(const char *text, int html)
{
    const unsigned char *p = (const unsigned char *)(text ? text : "");
    size_t avail = strlen((const char *)p), units = 0;

    while (avail > 0) {
        size_t used;
        if (html && p[0] == '<') {
            const unsigned char *e = memchr(p, '>', avail);
            used = e ? (size_t)(e - p) + 1 : avail;
        } else if (html && p[0] == '&') {
            const unsigned char *e = memchr(p, ';', avail < 10 ? avail : 10);
            used = e ? (size_t)(e - p) + 1 : 1;
            units++;
        } else {
            used = cm_utf8_seq(p, avail);
            if (used == 0)
                used = 1;
            units += used == 4 ? 2 : 1; /* beyond U+FFFF: a surrogate pair */
        }
        p += used;
        avail -= used;
    }
    return units;
}

/* One notice, html or plain. */
static void tg_notice(struct buf *b, const struct cm_notice *x, bool html, time_t now)
{
    unsigned f = html ? T_HTML : 0;

    buf_adds(b, emoji_of(x));
    buf_adds(b, html ? " <b>" : " ");
    add_status_word(b, x);
    buf_adds(b, html ? "</b> <code>" : " ");
    add_text(b, x->id, f | T_LINE, 0);
    buf_adds(b, html ? "</code> on <b>" : " on ");
    add_text(b, x->target, f | T_LINE, CAP_TARGET);
    buf_adds(b, html ? "</b>\n<i>" : "\n");
    add_text(b, summary_of(x->id), f | T_LINE, 0);
    buf_adds(b, html ? "</i>\n" : "\n");
    add_text(b, *x->message ? x->message : "(no message)", f | T_LINES, CAP_MESSAGE);
    buf_adds(b, "\n");
    add_times_line(b, x, now);
    if (x->labels.count > 0) {
        buf_adds(b, "\nLabels: ");
        add_labels_line(b, &x->labels, f);
    }
}

char *cm_payload_telegram(const struct cm_notice *const *items, size_t n, const char *chat_id,
                          int html, time_t now)
{
    struct buf b = {0}, one = {0};
    struct counts c;
    json_t *root;
    char *out = NULL;
    size_t used, i;

    if (!items_ok(items, n) || !chat_id || !*chat_id)
        return NULL;
    c = count(items, n);
    if (n > 1) {
        buf_adds(&b, group_emoji(&c));
        buf_adds(&b, html ? " <b>" : " ");
        add_group_phrase(&b, &c, n);
        buf_adds(&b, html ? "</b>" : "");
    }
    used = b.failed ? 0 : cm_payload_telegram_length(b.p, html);
    for (i = 0; i < n && !b.failed; i++) {
        size_t len;
        tg_notice(&one, items[i], html, now);
        if (one.failed)
            break;
        len = cm_payload_telegram_length(one.p, html) + 2;
        /* The caps of the fields keep any one notice well under the limit. */
        if (used + len > CM_PAYLOAD_TELEGRAM_MAX - TG_RESERVE)
            break;
        if (b.len > 0)
            buf_adds(&b, "\n\n");
        buf_addn(&b, one.p, one.len);
        used += len;
        buf_clear(&one);
    }
    buf_clear(&one);
    if (i < n)
        buf_addf(&b, "\n\n" ELLIPSIS " and %zu more alert%s not shown here", n - i,
                 n - i == 1 ? "" : "s");
    buf_addf(&b, html ? "\n<i>certmon %s</i>" : "\ncertmon %s", CERTMON_VERSION);
    if (b.failed)
        return NULL;
    root = json_pack("{s:s, s:s%}", "chat_id", chat_id, "text", b.p, b.len);
    if (root && html && json_object_set_new(root, "parse_mode", json_string("HTML")) != 0)
        goto done;
    if (root && json_object_set_new(root, "link_preview_options",
                                    json_pack("{s:b}", "is_disabled", 1)) != 0)
        goto done;
    if (root)
        out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
done:
    buf_clear(&b);
    json_decref(root);
    return out;
}

/* ---- ntfy ---- */

void cm_payload_ntfy_clear(struct cm_payload_ntfy *p)
{
    if (!p)
        return;
    free(p->title);
    free(p->body);
    memset(p, 0, sizeof(*p));
}

int cm_payload_ntfy(const struct cm_notice *const *items, size_t n, time_t now,
                    struct cm_payload_ntfy *out)
{
    struct buf t = {0}, enc = {0}, body = {0};
    struct counts c;
    const char *emoji;

    if (!out)
        return CM_EBADARG;
    memset(out, 0, sizeof(*out));
    if (!items_ok(items, n))
        return CM_EBADARG;
    c = count(items, n);
    if (n == 1)
        add_headline(&t, items[0], items[0]->id, 0);
    else
        add_group_phrase(&t, &c, n);
    /* An HTTP header carries ASCII: anything else goes as one RFC 2047 word. */
    if (!t.failed && !is_ascii(t.p, t.len)) {
        buf_adds(&enc, "=?UTF-8?B?");
        add_base64(&enc, (const unsigned char *)t.p, t.len);
        buf_adds(&enc, "?=");
        buf_clear(&t);
        t = enc;
    }
    for (size_t i = 0; i < n; i++) {
        const struct cm_notice *x = items[i];
        if (i > 0)
            buf_adds(&body, "\n\n");
        add_headline(&body, x, x->id, 0);
        buf_adds(&body, "\n");
        add_text(&body, *x->message ? x->message : "(no message)", T_LINES, CAP_MESSAGE);
        buf_adds(&body, "\n");
        add_times_line(&body, x, now);
        if (body.len > CM_PAYLOAD_NTFY_BODY_MAX)
            break; /* cut below; the rest would not be seen */
    }
    cut_bytes(&body, CM_PAYLOAD_NTFY_BODY_MAX);
    if (t.failed || body.failed) {
        buf_clear(&t);
        buf_clear(&body);
        return -ENOMEM;
    }
    out->title = buf_take(&t);
    out->body = buf_take(&body);
    if (!c.any_firing) {
        out->priority = 2;
        emoji = "white_check_mark";
    } else if (c.worst == CM_SEV_CRITICAL) {
        out->priority = 5;
        emoji = "rotating_light";
    } else if (c.worst == CM_SEV_WARNING) {
        out->priority = 4;
        emoji = "warning";
    } else {
        out->priority = 3;
        emoji = "information_source";
    }
    /* Finding ids are catalogue names (letters, digits, dots, underscores): no comma. */
    snprintf(out->tags, sizeof(out->tags), "%s,certmon%s%s", emoji, n == 1 ? "," : "",
             n == 1 && items[0]->id ? items[0]->id : "");
    return 0;
}

/* ---- Receivers' answers ---- */

/* The bytes that go into an answer's log text. */
#define ANSWER_IN_MAX 300

int64_t cm_payload_answer(const char *body, size_t len, char *out, size_t outlen)
{
    struct buf t = {0};
    json_t *j = NULL, *v;
    int64_t retry = -1;
    size_t used = 0;

    if (!out || outlen == 0)
        return -1;
    out[0] = '\0';
    if (body && len > 0 && (j = json_loadb(body, len, 0, NULL)) && json_is_object(j)) {
        json_t *ra = json_object_get(json_object_get(j, "parameters"), "retry_after");
        if (json_is_integer(ra) && json_integer_value(ra) >= 0)
            retry = (int64_t)json_integer_value(ra);
        if (json_is_string(v = json_object_get(j, "description"))) {
            buf_adds(&t, json_string_value(v)); /* Telegram */
        } else if (json_is_string(v = json_object_get(j, "message"))) {
            json_t *e, *errs = json_object_get(j, "errors"); /* PagerDuty */
            size_t i;
            buf_adds(&t, json_string_value(v));
            json_array_foreach(errs, i, e)
            {
                buf_adds(&t, i == 0 ? ": " : "; ");
                buf_adds(&t, json_is_string(e) ? json_string_value(e) : "?");
            }
        }
    }
    json_decref(j);
    if (!t.failed && t.len == 0 && body)
        buf_addn(&t, body, strnlen(body, len));
    if (t.failed)
        return retry;
    /* cm_text_escape per stretch between quotes, a quote as \x22: a log field stays one. */
    for (size_t i = 0; i < t.len && i < ANSWER_IN_MAX && used + 1 < outlen;) {
        size_t seg = strcspn(t.p + i, "\"");
        char in[ANSWER_IN_MAX + 1];
        if (seg > ANSWER_IN_MAX - i)
            seg = ANSWER_IN_MAX - i;
        memcpy(in, t.p + i, seg);
        in[seg] = '\0';
        cm_text_escape(in, out + used, outlen - used);
        used += strlen(out + used);
        i += seg;
        if (i < t.len && t.p[i] == '"') {
            if (used + 5 > outlen)
                break;
            memcpy(out + used, "\\x22", 5);
            used += 4;
            i++;
        }
    }
    buf_clear(&t);
    return retry;
}
