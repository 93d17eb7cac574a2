/* The status page (page.h): rows built once per report, then sorted, filtered and written as
 * HTML with every foreign string escaped on its way out. */
#include "certmon/analysis/page.h"
#include "certmon/analysis/analyze.h"
#include "certmon/base/buf.h"
#include "certmon/base/intern.h"
#include "certmon/base/text.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define NO_TIME INT64_MIN
#define DAY 86400
#define WEEK (7 * DAY)

struct page_label {
    const char *name, *value;
};

/* One allocation per row (issue 14: at 100,000 targets the nine strdups of a row cost more in
 * malloc chunk overhead than in text): the struct, then labels[], then every text the fields
 * point to. Built by measuring first, then copying (row_texts). */
struct cm_page_row {
    const char *name;
    /* issuer, version, finding_id and finding_msg repeat across a fleet's rows: shared
     * (base/intern), given back by cm_page_row_free; the other texts are in the row's block. */
    const char *subject, *issuer; /* the leaf's, or NULL */
    const char *version;          /* TLS version, or NULL */
    const char *sans;             /* the leaf's SANs joined by spaces (searched, not shown) */
    const char *finding_id;       /* the worst finding, or NULL */
    const char *finding_msg;
    const char *error; /* the probe error's message, or NULL */
    size_t nlabels;
    int64_t expiry;     /* earliest not_after of the chain; NO_TIME: no certificate */
    int64_t last_probe; /* NO_TIME: never */
    enum cm_status status;
    enum cm_severity finding_sev;
    bool pending;               /* no report yet */
    struct page_label labels[]; /* nlabels; in the same block, before the texts */
};

/* ---- Output buffer ---- */

void cm_page_buf_free(struct cm_page_buf *b)
{
    if (!b)
        return;
    free(b->data);
    *b = (struct cm_page_buf){0};
}

/* Room for n bytes and the NUL after them; a page stays under a quarter of the address space
 * (the bounds of escaped text are computed below that). */
static bool grow(struct cm_page_buf *b, size_t n)
{
    if (!b->failed && (n >= SIZE_MAX / 4 ||
                       cm_buf_reserve(&b->data, &b->cap, b->len, n + 1, 4096, SIZE_MAX / 4) < 0))
        b->failed = true;
    return !b->failed;
}

static void putn(struct cm_page_buf *b, const char *s, size_t n)
{
    if (!grow(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void put(struct cm_page_buf *b, const char *s)
{
    putn(b, s, strlen(s));
}

static void __attribute__((format(printf, 2, 3))) putf(struct cm_page_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    /* One pass into the room there is; a second only when it did not fit. */
    if (!grow(b, 256))
        return;
    va_start(ap, fmt);
    n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n >= b->cap - b->len) {
        if (!grow(b, (size_t)n + 1))
            return;
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

/* Foreign text, HTML-escaped (element text or a quoted attribute value). NULL writes nothing. */
static void esc(struct cm_page_buf *b, const char *s)
{
    size_t n;

    if (!s)
        return;
    n = strlen(s);
    if (n > (SIZE_MAX - 1) / 6 || !grow(b, CM_HTML_ESCAPE_MAX(n)))
        return;
    b->len += cm_html_escape(s, n, b->data + b->len);
}

/* Foreign text as a URL component (percent-encoded; safe in an attribute as is). */
static void url(struct cm_page_buf *b, const char *s)
{
    size_t n = strlen(s);

    if (n > (SIZE_MAX - 1) / 3 || !grow(b, CM_URL_ENCODE_MAX(n)))
        return;
    b->len += cm_url_encode(s, n, b->data + b->len);
}

/* ---- Reading reports ---- */

static const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int64_t jtime(json_t *o, const char *key)
{
    int64_t t;

    return cm_rfc3339_parse(jstr(o, key), &t) ? t : NO_TIME;
}

static enum cm_status parse_status(const char *s)
{
    if (s && !strcmp(s, "ok"))
        return CM_STATUS_OK;
    if (s && !strcmp(s, "warning"))
        return CM_STATUS_WARNING;
    if (s && !strcmp(s, "critical"))
        return CM_STATUS_CRITICAL;
    return CM_STATUS_UNKNOWN;
}

static enum cm_severity parse_sev(const char *s)
{
    enum cm_severity v;

    return s && cm_severity_parse(s, &v) == 0 ? v : CM_SEV_INFO;
}

/* The texts a row copies out of its report (borrowed from it while the row is built). */
struct row_src {
    const char *name, *subject, *issuer, *version, *finding_id, *finding_msg, *error;
    const char *kept_name; /* the caller's copy of name, borrowed (not copied); or NULL */
    json_t *sans;   /* the leaf's array, or anything else: no SAN text (NULL) */
    json_t *labels; /* the report's object, or anything else: no labels */
    size_t nlabels; /* its string values */
};

/* Where the texts go: at NULL only measures (len grows as if they were copied). */
struct row_text {
    char *at;
    size_t len;
    bool failed; /* a shared text could not be had (out of memory) */
};

/* The shared copy of s (NULL: absent), taken in the copy pass only: a measure counts nothing
 * for it and leaves NULL. */
static const char *row_shared(struct row_text *t, const char *s)
{
    const char *w;

    if (!s || !t->at)
        return NULL;
    if (!(w = cm_intern(s)))
        t->failed = true;
    return w;
}

/* Copies s (NULL: absent, NULL back) to the next place in t. */
static const char *row_text(struct row_text *t, const char *s)
{
    size_t n;
    char *d;

    if (!s)
        return NULL;
    n = strlen(s);
    d = t->at ? t->at + t->len : NULL;
    if (d)
        memcpy(d, s, n + 1);
    t->len += n + 1;
    return d;
}

/* The string SANs, each followed by a space (searched as one text); "" when there are none. */
static const char *row_sans(struct row_text *t, json_t *sans)
{
    char *d = t->at ? t->at + t->len : NULL;
    size_t i, len = 0;
    json_t *v;

    json_array_foreach(sans, i, v) {
        const char *san = json_string_value(v);
        size_t n;
        if (!san)
            continue;
        n = strlen(san);
        if (d) {
            memcpy(d + len, san, n);
            d[len + n] = ' ';
        }
        len += n + 1;
    }
    if (d)
        d[len] = '\0';
    t->len += len + 1;
    return d;
}

/* Points r's text fields at copies of src's texts placed in t, or (t->at NULL) only measures
 * them: both passes walk the same texts in the same order, so the measure is the copy's size.
 * Measuring writes NULLs into r's fields and leaves r->labels alone. */
static void row_texts(struct cm_page_row *r, const struct row_src *src, struct row_text *t)
{
    const char *key;
    size_t k = 0;
    json_t *v;

    r->name = src->kept_name ? src->kept_name : row_text(t, src->name);
    r->subject = row_text(t, src->subject);
    r->issuer = row_shared(t, src->issuer);
    r->version = row_shared(t, src->version);
    r->finding_id = row_shared(t, src->finding_id);
    r->finding_msg = row_shared(t, src->finding_msg);
    r->error = row_text(t, src->error);
    r->sans = json_is_array(src->sans) ? row_sans(t, src->sans) : NULL;
    json_object_foreach(src->labels, key, v) {
        const char *name, *value;
        if (!json_is_string(v) || k == src->nlabels)
            continue;
        name = row_text(t, key);
        value = row_text(t, json_string_value(v));
        if (t->at)
            r->labels[k] = (struct page_label){name, value};
        k++;
    }
}

/* The row of src: the one block sized by a measuring pass, then filled. NULL when out of
 * memory. */
static struct cm_page_row *row_build(const struct row_src *src)
{
    struct cm_page_row *r, m;
    struct row_text t = {NULL, 0, false};
    size_t head = sizeof(*r) + src->nlabels * sizeof(r->labels[0]);

    row_texts(&m, src, &t);
    if (!(r = calloc(1, head + t.len)))
        return NULL;
    r->nlabels = src->nlabels;
    t = (struct row_text){(char *)r + head, 0, false};
    row_texts(r, src, &t);
    if (t.failed) {
        cm_page_row_free(r);
        return NULL;
    }
    return r;
}

struct cm_page_row *cm_page_row_new(json_t *report, const char *name)
{
    struct cm_page_row *r;
    struct row_src src = {0};
    json_t *chain, *leaf, *c, *f, *v;
    enum cm_severity worst = CM_SEV_OK; /* no finding */
    int64_t expiry = NO_TIME;
    const char *key;
    size_t i;

    if (!json_is_object(report) || !(src.name = jstr(report, "target")))
        return NULL;
    if (name && strcmp(name, src.name) == 0)
        src.kept_name = name;
    chain = json_object_get(report, "chain");
    leaf = json_array_get(chain, 0);
    json_array_foreach(chain, i, c) {
        int64_t t = jtime(c, "not_after");
        if (t != NO_TIME && (expiry == NO_TIME || t < expiry))
            expiry = t;
    }
    /* The first finding of the highest severity. */
    json_array_foreach(json_object_get(report, "findings"), i, f) {
        enum cm_severity sev = parse_sev(jstr(f, "severity"));
        if (jstr(f, "id") && (!src.finding_id || sev > worst)) {
            src.finding_id = jstr(f, "id");
            src.finding_msg = jstr(f, "message");
            worst = sev;
        }
    }
    src.subject = jstr(leaf, "subject");
    src.issuer = jstr(leaf, "issuer");
    src.version = jstr(json_object_get(report, "tls"), "version");
    src.error = jstr(json_object_get(report, "error"), "message");
    src.sans = json_object_get(leaf, "sans");
    src.labels = json_object_get(report, "labels");
    json_object_foreach(src.labels, key, v)
        src.nlabels += json_is_string(v);
    if (!(r = row_build(&src)))
        return NULL;
    r->status = parse_status(jstr(report, "status"));
    r->last_probe = jtime(report, "last_probe");
    r->expiry = expiry;
    r->finding_sev = worst;
    return r;
}

struct cm_page_row *cm_page_row_pending(const char *name)
{
    struct row_src src = {.name = name};
    struct cm_page_row *r = row_build(&src);

    if (!r)
        return NULL;
    r->status = CM_STATUS_UNKNOWN;
    r->expiry = r->last_probe = NO_TIME;
    r->pending = true;
    return r;
}

void cm_page_row_free(struct cm_page_row *r)
{
    if (!r)
        return;
    cm_intern_release(r->issuer);
    cm_intern_release(r->version);
    cm_intern_release(r->finding_id);
    cm_intern_release(r->finding_msg);
    free(r);
}

const char *cm_page_row_name(const struct cm_page_row *r)
{
    return r->name;
}

/* ---- Query ---- */

static const char *const sort_names[CM_PAGE_SORT_COUNT] = {
    "urgency", "name", "status", "days", "subject", "issuer", "tls", "finding", "probed",
};
static const char *const sort_titles[CM_PAGE_SORT_COUNT] = {
    "Urgency", "Target", "Status", "Days left", "Subject", "Issuer", "TLS", "Worst finding",
    "Last probe",
};
static const char *const status_names[] = {"ok", "warning", "critical", "unknown"};

void cm_page_query_init(struct cm_page_query *q, size_t page_size)
{
    *q = (struct cm_page_query){0};
    q->page = 1;
    q->page_size = page_size ? page_size : 1;
    q->refresh = true;
    q->refresh_seconds = 60;
}

int cm_page_query_set(struct cm_page_query *q, const char *name, const char *value, char *err,
                      size_t errlen)
{
    char *end;

    if (!value)
        value = "";
    if (!strcmp(name, "status")) {
        for (unsigned s = 0; s < 4; s++)
            if (!strcmp(value, status_names[s])) {
                q->status_mask |= 1u << s;
                return 0;
            }
        cm_errf(err, errlen, "status=%.64s: expected ok, warning, critical or unknown", value);
        return -EINVAL;
    }
    if (!strcmp(name, "label")) {
        const char *colon = strchr(value, ':');
        if (!value[0])
            return 0; /* the form's empty field: no filter */
        if (!colon || colon == value) {
            cm_errf(err, errlen, "label=%.64s: expected NAME:VALUE", value);
            return -EINVAL;
        }
        if (q->labels >= CM_PAGE_MAX_LABELS) {
            cm_errf(err, errlen, "label: at most %d label filters", CM_PAGE_MAX_LABELS);
            return -EINVAL;
        }
        if (strlen(value) >= sizeof(q->label_buf[0])) {
            cm_errf(err, errlen, "label: longer than %zu bytes", sizeof(q->label_buf[0]) - 1);
            return -EINVAL;
        }
        char *b = q->label_buf[q->labels];
        strcpy(b, value);
        b[colon - value] = '\0';
        q->label_name[q->labels] = b;
        q->label_value[q->labels] = b + (colon - value) + 1;
        q->labels++;
        return 0;
    }
    if (!strcmp(name, "q")) {
        q->q = value;
        return 0;
    }
    if (!strcmp(name, "sort")) {
        bool desc = value[0] == '-';
        for (unsigned s = 0; s < CM_PAGE_SORT_COUNT; s++)
            if (!strcmp(value + desc, sort_names[s])) {
                q->sort = (enum cm_page_sort)s;
                q->desc = desc;
                return 0;
            }
        cm_errf(err, errlen,
                "sort=%.64s: expected urgency, name, status, days, subject, issuer, tls, "
                "finding or probed (a leading - reverses)",
                value);
        return -EINVAL;
    }
    if (!strcmp(name, "page")) {
        unsigned long long v;
        errno = 0;
        v = strtoull(value, &end, 10);
        if (value[0] < '1' || value[0] > '9' || *end || errno || v > SIZE_MAX) {
            cm_errf(err, errlen, "page=%.64s: expected a page number from 1", value);
            return -EINVAL;
        }
        q->page = (size_t)v;
        return 0;
    }
    if (!strcmp(name, "refresh")) {
        if (strcmp(value, "0") && strcmp(value, "1")) {
            cm_errf(err, errlen, "refresh=%.64s: expected 1 (on) or 0 (off)", value);
            return -EINVAL;
        }
        q->refresh = value[0] == '1';
        return 0;
    }
    cm_errf(err, errlen,
            "unknown parameter '%.64s': the page takes status=, label=NAME:VALUE, q=, sort=, "
            "page= and refresh=",
            name);
    return -EINVAL;
}

/* ---- Sorting and filtering ---- */

/* Critical first, then warning, then unknown (not known to be fine), then ok. */
static int urgency_rank(enum cm_status s)
{
    switch (s) {
    case CM_STATUS_CRITICAL:
        return 0;
    case CM_STATUS_WARNING:
        return 1;
    case CM_STATUS_UNKNOWN:
        return 2;
    default:
        return 3;
    }
}

static int cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

/* Absent values sort last, whichever the direction. */
static int cmp_str_opt(const char *a, const char *b, bool *absent)
{
    if (!a || !b) {
        *absent = true;
        return (!a) - (!b);
    }
    return strcasecmp(a, b);
}

static int cmp_time_opt(int64_t a, int64_t b, bool *absent)
{
    if (a == NO_TIME || b == NO_TIME) {
        *absent = true;
        return (a == NO_TIME) - (b == NO_TIME);
    }
    return cmp_i64(a, b);
}

static int cmp_rows(const void *pa, const void *pb, void *arg)
{
    const struct cm_page_query *q = arg;
    enum cm_page_sort g_sort = q->sort;
    bool g_desc = q->desc;
    const struct cm_page_row *a = *(const struct cm_page_row *const *)pa;
    const struct cm_page_row *b = *(const struct cm_page_row *const *)pb;
    bool absent = false;
    int c = 0;

    switch (g_sort) {
    case CM_PAGE_SORT_URGENCY:
    case CM_PAGE_SORT_STATUS:
        c = urgency_rank(a->status) - urgency_rank(b->status);
        if (!c) {
            bool dummy = false;
            c = cmp_time_opt(a->expiry, b->expiry, &dummy);
            if (dummy && g_desc)
                c = -c; /* keep "no certificate" after the others in both directions */
        }
        break;
    case CM_PAGE_SORT_NAME:
        break;
    case CM_PAGE_SORT_DAYS:
        c = cmp_time_opt(a->expiry, b->expiry, &absent);
        break;
    case CM_PAGE_SORT_SUBJECT:
        c = cmp_str_opt(a->subject, b->subject, &absent);
        break;
    case CM_PAGE_SORT_ISSUER:
        c = cmp_str_opt(a->issuer, b->issuer, &absent);
        break;
    case CM_PAGE_SORT_TLS:
        c = cmp_str_opt(a->version, b->version, &absent);
        break;
    case CM_PAGE_SORT_FINDING:
        c = (int)b->finding_sev - (int)a->finding_sev;
        if (!c)
            c = cmp_str_opt(a->finding_id, b->finding_id, &absent);
        break;
    case CM_PAGE_SORT_PROBED:
        c = cmp_time_opt(a->last_probe, b->last_probe, &absent);
        break;
    default:
        break;
    }
    if (c && g_desc && !absent)
        c = -c;
    if (!c) {
        c = strcmp(a->name, b->name);
        if (g_desc && g_sort == CM_PAGE_SORT_NAME)
            c = -c;
    }
    return c;
}

static bool has_text(const char *hay, const char *needle)
{
    return hay && strcasestr(hay, needle);
}

static bool row_matches(const struct cm_page_row *r, const struct cm_page_query *q)
{
    if (q->status_mask && !(q->status_mask & (1u << r->status)))
        return false;
    for (size_t i = 0; i < q->labels; i++) {
        bool found = false;
        for (size_t k = 0; k < r->nlabels && !found; k++)
            found = !strcmp(r->labels[k].name, q->label_name[i]) &&
                    !strcmp(r->labels[k].value, q->label_value[i]);
        if (!found)
            return false;
    }
    if (q->q && q->q[0]) {
        bool found = has_text(r->name, q->q) || has_text(r->subject, q->q) ||
                     has_text(r->issuer, q->q) || has_text(r->sans, q->q) ||
                     has_text(r->finding_id, q->q) || has_text(r->finding_msg, q->q) ||
                     has_text(r->error, q->q);
        for (size_t k = 0; k < r->nlabels && !found; k++)
            found = has_text(r->labels[k].name, q->q) || has_text(r->labels[k].value, q->q);
        if (!found)
            return false;
    }
    return true;
}

/* ---- Shared pieces ---- */

/* Whole days from now to t, rounded down (as `days_left` in reports: -1 the day after). */
static int64_t days_until(int64_t t, int64_t now)
{
    int64_t d = t - now;

    return d >= 0 ? d / DAY : -((-d + DAY - 1) / DAY);
}

/* The colour band of a number of days left: the page's fixed bands, independent of the
 * target's policy (its status says what the policy thinks). */
static const char *days_class(int64_t days)
{
    return days < 0 ? "d-expired" : days < 7 ? "d-crit" : days < 30 ? "d-warn" : "d-ok";
}

static void put_days(struct cm_page_buf *b, int64_t days)
{
    if (days < 0)
        putf(b, "expired %" PRId64 " day%s ago", -days, days == -1 ? "" : "s");
    else
        putf(b, "%" PRId64 " day%s", days, days == 1 ? "" : "s");
}

static void put_ago(struct cm_page_buf *b, int64_t t, int64_t now)
{
    char iso[32];
    int64_t d;

    if (t == NO_TIME) {
        put(b, "never");
        return;
    }
    d = now - t; /* both RFC 3339 times: 4-digit years, far from overflowing */
    cm_time_rfc3339(t, iso, sizeof(iso));
    putf(b, "<time datetime=\"%s\" title=\"%s\">", iso, iso);
    if (d < 0)
        put(b, "in the future");
    else if (d < 60)
        putf(b, "%" PRId64 " s ago", d);
    else if (d < 3600)
        putf(b, "%" PRId64 " min ago", d / 60);
    else if (d < DAY)
        putf(b, "%" PRId64 " h ago", d / 3600);
    else
        putf(b, "%" PRId64 " d ago", d / DAY);
    put(b, "</time>");
}

static void put_time(struct cm_page_buf *b, int64_t t)
{
    char iso[32];

    if (t == NO_TIME) {
        put(b, "&mdash;");
        return;
    }
    cm_time_rfc3339(t, iso, sizeof(iso));
    putf(b, "<time datetime=\"%s\">%s</time>", iso, iso);
}

static void put_status(struct cm_page_buf *b, enum cm_status s)
{
    const char *n = status_names[s];

    putf(b, "<span class=\"st st-%s\">%s</span>", n, n);
}

static void page_head(struct cm_page_buf *b, const char *title, bool refresh, unsigned seconds)
{
    put(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
           "<meta name=\"referrer\" content=\"no-referrer\">\n"
           "<meta name=\"color-scheme\" content=\"light dark\">\n");
    if (refresh)
        putf(b, "<meta http-equiv=\"refresh\" content=\"%u\">\n", seconds);
    put(b, "<title>");
    esc(b, title);
    put(b, " &middot; certmon</title>\n<link rel=\"stylesheet\" href=\"/static/style.css\">\n"
           "<script src=\"/static/app.js\" defer></script>\n</head>\n<body>\n"
           "<a class=\"skip\" href=\"#main\">Skip to content</a>\n"
           "<header class=\"top\"><a class=\"brand\" href=\"/\">certmon</a></header>\n"
           "<main id=\"main\">\n");
}

static void page_foot(struct cm_page_buf *b, const struct cm_page_info *info)
{
    put(b, "</main>\n<footer class=\"foot\">");
    if (info && info->version) {
        put(b, "certmon ");
        esc(b, info->version);
    }
    if (info)
        putf(b, " &middot; %zu configured target%s", info->targets, info->targets == 1 ? "" : "s");
    put(b, " &middot; <a href=\"/metrics\">metrics</a> &middot; <a "
           "href=\"/api/v1/targets\">JSON</a></footer>\n</body>\n</html>\n");
}

/* ---- GET / ---- */

/* The query string of q with one change (the column and direction of sort, the page, the
 * status filter or the refresh switch), HTML-escaped for an href. */
struct qchange {
    int sort;           /* -1: q's */
    bool desc;
    size_t page;        /* 0: q's (1 when the sort or a filter changes) */
    int status_only;    /* -1: q's statuses; else only this status; 4: none (all) */
    int refresh;        /* -1: q's */
};

static void put_query(struct cm_page_buf *b, const struct cm_page_query *q, struct qchange c)
{
    bool first = true;
    unsigned mask = c.status_only < 0 ? q->status_mask
                    : c.status_only < 4 ? 1u << c.status_only
                                        : 0;
    int sort = c.sort < 0 ? (int)q->sort : c.sort;
    bool desc = c.sort < 0 ? q->desc : c.desc;
    bool refresh = c.refresh < 0 ? q->refresh : c.refresh == 1;
    size_t page = c.page ? c.page : c.sort >= 0 || c.status_only >= 0 ? 1 : q->page;
#define SEP() (first ? (first = false, "?") : "&amp;")

    put(b, "/");
    for (unsigned s = 0; s < 4; s++)
        if (mask & (1u << s))
            putf(b, "%sstatus=%s", SEP(), status_names[s]);
    for (size_t i = 0; i < q->labels; i++) {
        putf(b, "%slabel=", SEP());
        url(b, q->label_name[i]);
        put(b, "%3A");
        url(b, q->label_value[i]);
    }
    if (q->q && q->q[0]) {
        putf(b, "%sq=", SEP());
        url(b, q->q);
    }
    if (sort || desc)
        putf(b, "%ssort=%s%s", SEP(), desc ? "-" : "", sort_names[sort]);
    if (page > 1)
        putf(b, "%spage=%zu", SEP(), page);
    if (!refresh)
        putf(b, "%srefresh=0", SEP());
#undef SEP
}

static struct qchange qc(int sort, bool desc, size_t page, int status_only, int refresh)
{
    return (struct qchange){sort, desc, page, status_only, refresh};
}

static void put_summary(struct cm_page_buf *b, const struct cm_page_row *const *rows, size_t n,
                        const struct cm_page_query *q, int64_t now)
{
    size_t count[4] = {0}, week = 0, expired = 0, total = 0;
    static const int order[4] = {CM_STATUS_CRITICAL, CM_STATUS_WARNING, CM_STATUS_UNKNOWN,
                                 CM_STATUS_OK};

    for (size_t i = 0; i < n; i++) {
        if (!rows[i])
            continue;
        total++;
        count[rows[i]->status]++;
        if (rows[i]->expiry != NO_TIME && rows[i]->expiry < now)
            expired++;
        else if (rows[i]->expiry != NO_TIME && rows[i]->expiry - now < WEEK)
            week++;
    }
    put(b, "<nav class=\"summary\" aria-label=\"Targets by status\"><ul>\n");
    putf(b, "<li><a class=\"sum sum-all\" href=\"");
    put_query(b, q, qc(-1, false, 0, 4, -1));
    putf(b, "\"><span class=\"n\" id=\"count-all\">%zu</span> all</a></li>\n", total);
    for (int k = 0; k < 4; k++) {
        int s = order[k];
        putf(b, "<li><a class=\"sum sum-%s%s\" href=\"", status_names[s],
             q->status_mask == 1u << s ? " on" : "");
        put_query(b, q, qc(-1, false, 0, s, -1));
        putf(b, "\"><span class=\"n\" id=\"count-%s\">%zu</span> %s</a></li>\n", status_names[s],
             count[s], status_names[s]);
    }
    putf(b,
         "<li><span class=\"sum sum-week\"><span class=\"n\" id=\"count-week\">%zu</span> "
         "expiring within 7 days</span></li>\n"
         "<li><span class=\"sum sum-expired\"><span class=\"n\" id=\"count-expired\">%zu</span> "
         "expired</span></li>\n</ul></nav>\n",
         week, expired);
}

static void put_filters(struct cm_page_buf *b, const struct cm_page_query *q)
{
    put(b, "<form class=\"filters\" method=\"get\" action=\"/\" role=\"search\">\n"
           "<fieldset class=\"stf\"><legend>Status</legend>\n");
    for (unsigned s = 0; s < 4; s++)
        putf(b,
             "<label><input type=\"checkbox\" name=\"status\" value=\"%s\"%s> %s</label>\n",
             status_names[s], q->status_mask & (1u << s) ? " checked" : "", status_names[s]);
    put(b, "</fieldset>\n<label class=\"txt\">Label <input type=\"text\" name=\"label\" "
           "placeholder=\"team:web\" value=\"");
    if (q->labels) {
        esc(b, q->label_name[0]);
        put(b, ":");
        esc(b, q->label_value[0]);
    }
    put(b, "\"></label>\n");
    for (size_t i = 1; i < q->labels; i++) {
        put(b, "<input type=\"hidden\" name=\"label\" value=\"");
        esc(b, q->label_name[i]);
        put(b, ":");
        esc(b, q->label_value[i]);
        put(b, "\">\n");
    }
    put(b, "<label class=\"txt\">Search <input type=\"search\" id=\"q\" name=\"q\" "
           "placeholder=\"name, subject, issuer, finding\" value=\"");
    esc(b, q->q);
    put(b, "\"></label>\n");
    if (q->sort || q->desc)
        putf(b, "<input type=\"hidden\" name=\"sort\" value=\"%s%s\">\n", q->desc ? "-" : "",
             sort_names[q->sort]);
    if (!q->refresh)
        put(b, "<input type=\"hidden\" name=\"refresh\" value=\"0\">\n");
    put(b, "<button type=\"submit\">Filter</button> <a href=\"/");
    if (!q->refresh)
        put(b, "?refresh=0");
    put(b, "\">Reset</a>\n</form>\n");
}

static void put_th(struct cm_page_buf *b, const struct cm_page_query *q, enum cm_page_sort col)
{
    bool on = q->sort == col;
    /* A click on the current column reverses it; another column starts ascending, except
     * the last probe (newest first is what one looks for). */
    bool desc = on ? !q->desc : col == CM_PAGE_SORT_PROBED;

    putf(b, "<th scope=\"col\"%s><a href=\"",
         on ? (q->desc ? " aria-sort=\"descending\"" : " aria-sort=\"ascending\"") : "");
    put_query(b, q, qc((int)col, desc, 0, -1, -1));
    putf(b, "\">%s%s</a></th>", sort_titles[col], on ? (q->desc ? " &darr;" : " &uarr;") : "");
}

static void put_row(struct cm_page_buf *b, const struct cm_page_row *r, int64_t now)
{
    const char *st = status_names[r->status];

    putf(b, "<tr class=\"r-%s\" data-status=\"%s\">", st, st);
    put(b, "<td class=\"c-status\">");
    put_status(b, r->status);
    put(b, "</td><th scope=\"row\" class=\"c-name\"><a href=\"/target/");
    url(b, r->name);
    put(b, "\">");
    esc(b, r->name);
    put(b, "</a>");
    if (r->nlabels) {
        put(b, "<ul class=\"labels\">");
        for (size_t i = 0; i < r->nlabels; i++) {
            put(b, "<li>");
            esc(b, r->labels[i].name);
            put(b, "=");
            esc(b, r->labels[i].value);
            put(b, "</li>");
        }
        put(b, "</ul>");
    }
    put(b, "</th>");
    if (r->expiry != NO_TIME) {
        int64_t d = days_until(r->expiry, now);
        putf(b, "<td class=\"c-days %s\" data-days=\"%" PRId64 "\">", days_class(d), d);
        put_days(b, d);
        put(b, "</td>");
    } else {
        put(b, "<td class=\"c-days d-none\">&mdash;</td>");
    }
    put(b, "<td class=\"c-subject\">");
    esc(b, r->subject);
    put(b, "</td><td class=\"c-issuer\">");
    esc(b, r->issuer);
    put(b, "</td><td class=\"c-tls\">");
    esc(b, r->version);
    put(b, "</td><td class=\"c-finding\">");
    if (r->pending) {
        put(b, "not probed yet");
    } else if (r->finding_id) {
        putf(b, "<span class=\"sev sev-%s\">%s</span> <code>", cm_severity_name(r->finding_sev),
             cm_severity_name(r->finding_sev));
        esc(b, r->finding_id);
        put(b, "</code><span class=\"msg\">");
        esc(b, r->finding_msg);
        put(b, "</span>");
    } else {
        put(b, "none");
    }
    put(b, "</td><td class=\"c-probed\">");
    put_ago(b, r->last_probe, now);
    put(b, "</td></tr>\n");
}

static void put_pages(struct cm_page_buf *b, const struct cm_page_query *q, size_t page,
                      size_t pages, size_t shown, size_t first, size_t last)
{
    putf(b, "<nav class=\"pages\" aria-label=\"Pages\"><p>Targets %zu&ndash;%zu of %zu",
         shown ? first + 1 : 0, last, shown);
    if (pages > 1) {
        putf(b, " &middot; page %zu of %zu", page, pages);
        if (page > 1) {
            put(b, " &middot; <a rel=\"prev\" href=\"");
            put_query(b, q, qc(-1, false, page - 1, -1, -1));
            put(b, "\">previous</a>");
        }
        if (page < pages) {
            put(b, " &middot; <a rel=\"next\" href=\"");
            put_query(b, q, qc(-1, false, page + 1, -1, -1));
            put(b, "\">next</a>");
        }
    }
    put(b, "</p></nav>\n");
}

int cm_page_render_index(const struct cm_page_row *const *rows, size_t n,
                         const struct cm_page_query *q, const struct cm_page_info *info,
                         int64_t now, struct cm_page_buf *out)
{
    const struct cm_page_row **sel = malloc((n ? n : 1) * sizeof(*sel));
    size_t k = 0, pages, page, first, last;

    if (!sel)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (rows[i] && row_matches(rows[i], q))
            sel[k++] = rows[i];
    qsort_r(sel, k, sizeof(*sel), cmp_rows, (void *)q);
    pages = k ? (k + q->page_size - 1) / q->page_size : 1;
    page = q->page > pages ? pages : q->page;
    first = (page - 1) * q->page_size;
    last = first + q->page_size < k ? first + q->page_size : k;

    /* About 600 bytes a row: one allocation up front instead of a copy per doubling. */
    grow(out, (last - first) * 640 + 16384);
    page_head(out, "Certificates", q->refresh, q->refresh_seconds);
    put(out, "<h1>Certificates</h1>\n");
    put_summary(out, rows, n, q, now);
    put_filters(out, q);
    put(out, "<p class=\"refresh\">");
    if (q->refresh)
        putf(out, "This page reloads every %u s. <a id=\"refresh-toggle\" href=\"",
             q->refresh_seconds);
    else
        put(out, "Auto-refresh is off. <a id=\"refresh-toggle\" href=\"");
    put_query(out, q, qc(-1, false, 0, -1, q->refresh ? 0 : 1));
    putf(out, "\">%s</a></p>\n", q->refresh ? "Stop auto-refresh" : "Turn auto-refresh on");
    put(out, "<div class=\"tablewrap\"><table id=\"targets\">\n<caption>Targets ");
    put(out, q->sort == CM_PAGE_SORT_URGENCY && !q->desc
                 ? "by urgency: status, then time to expiry"
                 : "sorted by ");
    if (q->sort != CM_PAGE_SORT_URGENCY || q->desc)
        putf(out, "%s%s", sort_titles[q->sort], q->desc ? ", descending" : "");
    put(out, "</caption>\n<thead><tr>");
    put_th(out, q, CM_PAGE_SORT_STATUS);
    put_th(out, q, CM_PAGE_SORT_NAME);
    put_th(out, q, CM_PAGE_SORT_DAYS);
    put_th(out, q, CM_PAGE_SORT_SUBJECT);
    put_th(out, q, CM_PAGE_SORT_ISSUER);
    put_th(out, q, CM_PAGE_SORT_TLS);
    put_th(out, q, CM_PAGE_SORT_FINDING);
    put_th(out, q, CM_PAGE_SORT_PROBED);
    put(out, "</tr></thead>\n<tbody>\n");
    for (size_t i = first; i < last; i++)
        put_row(out, sel[i], now);
    put(out, "</tbody>\n</table></div>\n");
    if (!k)
        put(out, "<p class=\"empty\" id=\"empty\">No target matches these filters.</p>\n");
    put_pages(out, q, page, pages, k, first, last);
    page_foot(out, info);
    free(sel);
    return out->failed ? -ENOMEM : 0;
}

/* ---- GET /target/{name} ---- */

/* The text of one bullet ("- **Fix:** ...", continued on indented lines) of id's section of
 * docs/findings.md, with the markdown's backticks and emphasis left as they are: it is
 * escaped like everything else. Returns a malloc'd string or NULL. */
static char *finding_doc(const char *md, const char *id, const char *field)
{
    char head[96], bullet[64];
    const char *s, *end, *p, *e;
    char *outp, *o;

    if (!md || snprintf(head, sizeof(head), "\n### `%s`\n", id) >= (int)sizeof(head))
        return NULL;
    snprintf(bullet, sizeof(bullet), "\n- **%s:**", field);
    if (!(s = strstr(md, head)))
        return NULL;
    s += strlen(head);
    end = strstr(s, "\n### ");
    if (!end)
        end = s + strlen(s);
    if (!(p = strstr(s, bullet)) || p >= end)
        return NULL;
    p += strlen(bullet);
    /* The bullet runs until the next bullet, heading or blank line. */
    for (e = p; e < end; e++)
        if (e[0] == '\n' && (e[1] == '-' || e[1] == '\n' || e[1] == '#'))
            break;
    if (!(outp = malloc((size_t)(e - p) + 1)))
        return NULL;
    o = outp;
    for (; p < e; p++) {
        if (*p == '\n') {
            while (p + 1 < e && p[1] == ' ')
                p++;
            *o++ = ' ';
        } else if (*p != '*') {
            *o++ = *p;
        }
    }
    *o = '\0';
    while (o > outp && o[-1] == ' ')
        *--o = '\0';
    for (o = outp; *o == ' '; o++)
        ;
    memmove(outp, o, strlen(o) + 1);
    return outp;
}

static void dl_item(struct cm_page_buf *b, const char *term, const char *value)
{
    putf(b, "<dt>%s</dt><dd>", term);
    if (value)
        esc(b, value);
    else
        put(b, "&mdash;");
    put(b, "</dd>\n");
}

static void put_bool(struct cm_page_buf *b, json_t *v)
{
    put(b, json_is_true(v) ? "yes" : json_is_false(v) ? "no" : "&mdash;");
}

/* Where now is in the lifetime [nb, na], as an SVG bar (no inline style: the CSP forbids it). */
static void put_validity_bar(struct cm_page_buf *b, int64_t nb, int64_t na, int64_t now)
{
    const int w = 300;
    double pos;

    if (nb == NO_TIME || na == NO_TIME || na <= nb)
        return;
    pos = (double)(now - nb) / (double)(na - nb);
    if (pos < 0)
        pos = 0;
    if (pos > 1)
        pos = 1;
    putf(b,
         "<svg class=\"vbar\" width=\"%d\" height=\"14\" viewBox=\"0 0 %d 14\" role=\"img\" "
         "aria-label=\"%.0f%% of the lifetime has passed\"><rect class=\"vb-life\" x=\"0\" "
         "y=\"3\" width=\"%d\" height=\"8\" rx=\"4\"/><rect class=\"vb-used %s\" x=\"0\" y=\"3\" "
         "width=\"%.1f\" height=\"8\" rx=\"4\"/><rect class=\"vb-now\" x=\"%.1f\" y=\"0\" "
         "width=\"2\" height=\"14\"/></svg>",
         w, w, pos * 100, w, days_class(days_until(na, now)), pos * w,
         pos * w > w - 2 ? w - 2 : pos * w);
}

static void put_revocation(struct cm_page_buf *b, json_t *c)
{
    json_t *rev = json_object_get(c, "revocation"), *urls = json_object_get(c, "revocation_urls");
    json_t *v;
    size_t i;

    put(b, "<dt>Revocation</dt><dd>");
    if (json_is_object(rev)) {
        putf(b, "<span class=\"rev rev-");
        esc(b, jstr(rev, "status"));
        put(b, "\">");
        esc(b, jstr(rev, "status"));
        put(b, "</span>");
        if (jstr(rev, "source")) {
            put(b, " (");
            esc(b, jstr(rev, "source"));
            put(b, ")");
        }
        if (jstr(rev, "revoked_at")) {
            put(b, ", revoked at ");
            esc(b, jstr(rev, "revoked_at"));
        }
        if (jstr(rev, "reason")) {
            put(b, ", reason ");
            esc(b, jstr(rev, "reason"));
        }
        if (json_is_true(json_object_get(rev, "crl_stale")))
            put(b, ", CRL past its nextUpdate");
        json_array_foreach(json_object_get(rev, "errors"), i, v) {
            put(b, "<br><span class=\"err\">");
            esc(b, json_string_value(v));
            put(b, "</span>");
        }
    } else {
        put(b, "not checked");
    }
    if (json_is_object(urls)) {
        json_array_foreach(json_object_get(urls, "crl"), i, v) {
            put(b, "<br>CRL: <code>");
            esc(b, json_string_value(v));
            put(b, "</code>");
        }
        if (jstr(urls, "ocsp")) {
            put(b, "<br>OCSP: <code>");
            esc(b, jstr(urls, "ocsp"));
            put(b, "</code>");
        }
    }
    put(b, "</dd>\n");
}

static void put_chain(struct cm_page_buf *b, json_t *chain, int64_t now)
{
    json_t *c, *v;
    size_t i, k;

    put(b, "<section aria-labelledby=\"h-chain\"><h2 id=\"h-chain\">Chain</h2>\n");
    if (!json_array_size(chain)) {
        put(b, "<p>No certificate was received.</p></section>\n");
        return;
    }
    put(b, "<ol class=\"chain\" start=\"0\">\n");
    json_array_foreach(chain, i, c) {
        json_t *key = json_object_get(c, "key");
        int64_t nb = jtime(c, "not_before"), na = jtime(c, "not_after");
        putf(b, "<li class=\"cert\" id=\"cert-%zu\"><h3>Position %zu", i, i);
        if (json_is_true(json_object_get(c, "self_signed")))
            put(b, " &middot; self-signed");
        if (json_is_true(json_object_get(c, "is_ca")))
            put(b, " &middot; CA");
        put(b, "</h3>\n<dl>\n");
        dl_item(b, "Subject", jstr(c, "subject"));
        dl_item(b, "Issuer", jstr(c, "issuer"));
        put(b, "<dt>SANs</dt><dd>");
        if (!json_array_size(json_object_get(c, "sans")))
            put(b, "&mdash;");
        else {
            put(b, "<ul class=\"sans\">");
            json_array_foreach(json_object_get(c, "sans"), k, v) {
                put(b, "<li>");
                esc(b, json_string_value(v));
                put(b, "</li>");
            }
            put(b, "</ul>");
        }
        if (json_is_true(json_object_get(c, "sans_truncated")))
            put(b, " (more not shown)");
        put(b, "</dd>\n<dt>Key</dt><dd>");
        esc(b, jstr(key, "type"));
        if (json_is_integer(json_object_get(key, "bits")))
            putf(b, " %" JSON_INTEGER_FORMAT " bits", json_integer_value(json_object_get(key, "bits")));
        put(b, "</dd>\n");
        dl_item(b, "Signature", jstr(c, "signature"));
        dl_item(b, "Serial", jstr(c, "serial"));
        put(b, "<dt>Validity</dt><dd>");
        put_time(b, nb);
        put(b, " &ndash; ");
        put_time(b, na);
        if (na != NO_TIME) {
            int64_t d = days_until(na, now);
            putf(b, " <span class=\"%s\">(", days_class(d));
            put_days(b, d);
            put(b, " left)</span>");
        }
        put(b, "<br>");
        put_validity_bar(b, nb, na, now);
        put(b, "</dd>\n");
        put_revocation(b, c);
        put(b, "<dt>SHA-256</dt><dd><code class=\"fp\">");
        esc(b, jstr(c, "sha256"));
        put(b, "</code></dd>\n</dl></li>\n");
    }
    put(b, "</ol></section>\n");
}

static void put_findings(struct cm_page_buf *b, json_t *findings, const char *md)
{
    json_t *f;
    size_t i;

    put(b, "<section aria-labelledby=\"h-findings\"><h2 id=\"h-findings\">Findings</h2>\n");
    if (!json_array_size(findings)) {
        put(b, "<p>None: nothing is wrong with this target.</p></section>\n");
        return;
    }
    put(b, "<div class=\"tablewrap\"><table class=\"findings\"><caption>Findings, in the "
           "analyser's order</caption>\n<thead><tr><th scope=\"col\">Severity</th><th "
           "scope=\"col\">Finding</th><th scope=\"col\">Position</th><th "
           "scope=\"col\">Message</th><th scope=\"col\">First seen</th></tr></thead>\n<tbody>\n");
    json_array_foreach(findings, i, f) {
        const char *id = jstr(f, "id");
        enum cm_severity sev = parse_sev(jstr(f, "severity"));
        char *why = id ? finding_doc(md, id, "Triggered when") : NULL;
        char *fix = id ? finding_doc(md, id, "Fix") : NULL;
        putf(b, "<tr><td><span class=\"sev sev-%s\">%s</span></td><th scope=\"row\"><code>",
             cm_severity_name(sev), cm_severity_name(sev));
        esc(b, id);
        put(b, "</code></th><td>");
        if (json_is_integer(json_object_get(f, "position")))
            putf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(f, "position")));
        else
            put(b, "&mdash;");
        put(b, "</td><td>");
        esc(b, jstr(f, "message"));
        if (why || fix) {
            put(b, "<details><summary>What it means, how to fix it</summary>");
            if (why) {
                put(b, "<p><strong>Triggered when:</strong> ");
                esc(b, why);
                put(b, "</p>");
            }
            if (fix) {
                put(b, "<p class=\"fix\"><strong>Fix:</strong> ");
                esc(b, fix);
                put(b, "</p>");
            }
            put(b, "</details>");
        }
        put(b, "</td><td>");
        put_time(b, jtime(f, "first_seen"));
        put(b, "</td></tr>\n");
        free(why);
        free(fix);
    }
    put(b, "</tbody></table></div></section>\n");
}

static void put_str_list(struct cm_page_buf *b, json_t *arr)
{
    json_t *v;
    size_t i;

    if (!json_array_size(arr)) {
        put(b, "none");
        return;
    }
    json_array_foreach(arr, i, v) {
        if (i)
            put(b, ", ");
        esc(b, json_string_value(v));
    }
}

static void put_posture(struct cm_page_buf *b, json_t *p)
{
    put(b, "<section aria-labelledby=\"h-posture\"><h2 id=\"h-posture\">Posture</h2>\n");
    if (!json_is_object(p)) {
        put(b, "<p>No posture pass has run for this target yet.</p></section>\n");
        return;
    }
    put(b, "<table class=\"kv\"><caption>What the server accepts</caption><tbody>\n"
           "<tr><th scope=\"row\">Protocol versions</th><td>");
    put_str_list(b, json_object_get(p, "versions_accepted"));
    put(b, "</td></tr>\n<tr><th scope=\"row\">Weak cipher classes</th><td>");
    put_str_list(b, json_object_get(p, "weak_ciphers_accepted"));
    put(b, "</td></tr>\n<tr><th scope=\"row\">Forward secrecy</th><td>");
    put_bool(b, json_object_get(p, "forward_secrecy"));
    put(b, "</td></tr>\n<tr><th scope=\"row\">AEAD cipher</th><td>");
    put_bool(b, json_object_get(p, "aead"));
    put(b, "</td></tr>\n<tr><th scope=\"row\">DH group bits</th><td>");
    if (json_is_integer(json_object_get(p, "dh_bits")))
        putf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(p, "dh_bits")));
    else
        put(b, "&mdash;");
    put(b, "</td></tr>\n<tr><th scope=\"row\">Secure renegotiation</th><td>");
    put_bool(b, json_object_get(p, "secure_renegotiation"));
    put(b, "</td></tr>\n</tbody></table></section>\n");
}

static void put_phases(struct cm_page_buf *b, json_t *t)
{
    static const char *const phases[] = {"dns", "connect", "handshake", "total"};
    static const char *const titles[] = {"DNS", "Connect", "Handshake", "Total"};
    double total = json_number_value(json_object_get(t, "total"));

    put(b, "<section aria-labelledby=\"h-phases\"><h2 id=\"h-phases\">Probe phases</h2>\n");
    if (!json_is_object(t)) {
        put(b, "<p>No timing recorded.</p></section>\n");
        return;
    }
    put(b, "<table class=\"kv phases\"><caption>Time spent in each phase of the last "
           "probe</caption><tbody>\n");
    for (size_t i = 0; i < 4; i++) {
        json_t *v = json_object_get(t, phases[i]);
        putf(b, "<tr><th scope=\"row\">%s</th><td>", titles[i]);
        if (json_is_number(v)) {
            double ms = json_number_value(v);
            double w = total > 0 ? ms / total * 200 : 0;
            putf(b,
                 "%.1f ms <svg class=\"pbar\" width=\"200\" height=\"10\" viewBox=\"0 0 200 10\" "
                 "aria-hidden=\"true\"><rect x=\"0\" y=\"1\" width=\"%.1f\" height=\"8\"/></svg>",
                 ms, w > 200 ? 200 : w < 0 ? 0 : w);
        } else {
            put(b, "not reached");
        }
        put(b, "</td></tr>\n");
    }
    put(b, "</tbody></table></section>\n");
}

static void put_overview(struct cm_page_buf *b, json_t *r, int64_t now)
{
    json_t *tls = json_object_get(r, "tls"), *ver = json_object_get(r, "verification");
    json_t *err = json_object_get(r, "error"), *labels = json_object_get(r, "labels"), *v;
    json_t *ocsp = json_object_get(r, "ocsp");
    const char *k;
    size_t i;
    char port[16] = "";

    if (json_is_integer(json_object_get(r, "port")))
        snprintf(port, sizeof(port), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(r, "port")));
    put(b, "<section aria-labelledby=\"h-overview\"><h2 id=\"h-overview\">Connection</h2><dl "
           "class=\"overview\">\n");
    dl_item(b, "Host", jstr(r, "host"));
    dl_item(b, "Port", port[0] ? port : NULL);
    dl_item(b, "SNI", jstr(r, "sni"));
    dl_item(b, "Address", jstr(r, "address"));
    if (json_is_object(err)) {
        put(b, "<dt>Error</dt><dd class=\"err\">");
        esc(b, jstr(err, "kind"));
        put(b, ": ");
        esc(b, jstr(err, "message"));
        put(b, "</dd>\n");
    }
    dl_item(b, "TLS version", jstr(tls, "version"));
    dl_item(b, "Cipher", jstr(tls, "cipher"));
    dl_item(b, "Group", jstr(tls, "group"));
    put(b, "<dt>Trusted</dt><dd>");
    put_bool(b, json_object_get(ver, "trusted"));
    put(b, "</dd>\n<dt>Host name matches</dt><dd>");
    put_bool(b, json_object_get(ver, "hostname_match"));
    put(b, "</dd>\n");
    if (json_array_size(json_object_get(ver, "errors"))) {
        put(b, "<dt>Verification errors</dt><dd>");
        put_str_list(b, json_object_get(ver, "errors"));
        put(b, "</dd>\n");
    }
    if (json_is_object(ocsp)) {
        put(b, "<dt>OCSP staple</dt><dd>");
        if (json_is_true(json_object_get(ocsp, "stapled"))) {
            esc(b, jstr(ocsp, "status"));
            put(b, json_is_true(json_object_get(ocsp, "verified")) ? ", verified"
                                                                   : ", not verified");
        } else {
            put(b, "none");
        }
        put(b, "</dd>\n");
    }
    put(b, "<dt>Last probe</dt><dd>");
    put_ago(b, jtime(r, "last_probe"), now);
    put(b, "</dd>\n<dt>Last success</dt><dd>");
    put_ago(b, jtime(r, "last_success"), now);
    put(b, "</dd>\n<dt>Status since</dt><dd>");
    put_time(b, jtime(r, "status_since"));
    put(b, "</dd>\n");
    if (json_is_integer(json_object_get(r, "failures")))
        putf(b, "<dt>Consecutive failures</dt><dd>%" JSON_INTEGER_FORMAT "</dd>\n",
             json_integer_value(json_object_get(r, "failures")));
    if (json_object_size(labels)) {
        put(b, "<dt>Labels</dt><dd><ul class=\"labels\">");
        json_object_foreach(labels, k, v) {
            put(b, "<li>");
            esc(b, k);
            put(b, "=");
            esc(b, json_string_value(v));
            put(b, "</li>");
        }
        put(b, "</ul></dd>\n");
    }
    (void)i;
    put(b, "</dl></section>\n");
}

/* ---- The certificate history: an SVG timeline and its table ---- */

/* Geometry of the timeline in viewBox units; the stylesheet scales the box to the page's
 * width (a phone shrinks it, the table under it stays readable). */
#define TL_W 800   /* width */
#define TL_PAD 12  /* left and right margin, so that edge dates are not cut */
#define TL_TOP 16  /* room above the rows for the "now" label */
#define TL_ROW 22  /* one certificate */
#define TL_AXIS 32 /* the axis, its ticks and dates */
/* Validity stretches the axis at most this far beyond what was served: a 100-year
 * self-signed leaf must not squash the rest. */
#define TL_REACH (400 * DAY)
#define TL_MAX_TICKS 7

/* Times from certificates are attacker-controlled and may be anything an int64 holds: they
 * are clamped to years 1..9999 before any arithmetic, so nothing overflows and gmtime can
 * write every one of them. */
#define TL_MIN_T (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define TL_MAX_T 253402300799LL   /* 9999-12-31T23:59:59Z */

static int64_t tl_clamp(int64_t t)
{
    return t < TL_MIN_T ? TL_MIN_T : t > TL_MAX_T ? TL_MAX_T : t;
}

/* The part of the history the page shows, with the facts drawn from the report. */
struct tl {
    const struct cm_page_cert *c; /* newest first */
    size_t k, n;                  /* shown, and all of them */
    size_t current;               /* index of the leaf the report shows; k: none shown */
    int64_t last_probe;           /* the report's; NO_TIME: none */
    int64_t lo, hi;               /* the axis */
};

static int64_t tl_min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t tl_max(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* When a certificate was seen last: the current leaf is served until the last probe at
 * least (last_seen moves only once an hour while it stays the same). */
static int64_t tl_last_seen(const struct tl *t, size_t i)
{
    int64_t ls = tl_clamp(t->c[i].last_seen);

    return i == t->current && t->last_probe != NO_TIME ? tl_max(ls, tl_clamp(t->last_probe)) : ls;
}

/* The axis: everything served and now, stretched to the validity of what is shown (by at most
 * TL_REACH on either side), with a margin of 2%. */
static void tl_range(struct tl *t, int64_t now)
{
    int64_t slo = now, shi = now, vlo, vhi, pad;

    for (size_t i = 0; i < t->k; i++) {
        slo = tl_min(slo, tl_clamp(t->c[i].first_seen));
        shi = tl_max(shi, tl_last_seen(t, i));
    }
    vlo = slo;
    vhi = shi;
    for (size_t i = 0; i < t->k; i++) {
        vlo = tl_min(vlo, tl_clamp(t->c[i].not_before));
        vhi = tl_max(vhi, tl_clamp(t->c[i].not_after));
    }
    t->lo = tl_max(vlo, slo - TL_REACH);
    t->hi = tl_min(vhi, shi + TL_REACH);
    if (t->hi - t->lo < DAY) { /* less than a day: the day around its middle */
        int64_t mid = t->lo + (t->hi - t->lo) / 2;
        t->lo = mid - DAY / 2;
        t->hi = mid + DAY / 2;
    }
    pad = (t->hi - t->lo) / 50;
    t->lo -= pad;
    t->hi += pad;
}

/* The x of time u, inside the box (times beyond the axis sit on its ends). */
static double tl_x(const struct tl *t, int64_t u)
{
    double x =
        TL_PAD + (double)(tl_clamp(u) - t->lo) / (double)(t->hi - t->lo) * (TL_W - 2 * TL_PAD);

    return x < TL_PAD ? TL_PAD : x > TL_W - TL_PAD ? TL_W - TL_PAD : x;
}

/* Room for tl_date's text: what gcc counts for three ints, though clamped dates take 11. */
#define TL_DATE 48

/* "2026-01-02" of t (clamped: always a date; the year written with 4 digits, which strftime's
 * %Y does not do for years before 1000). */
static void tl_date(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)tl_clamp(t);
    struct tm tm;

    if (!gmtime_r(&tt, &tm))
        snprintf(buf, len, "?");
    else
        snprintf(buf, len, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

static void tl_tick(struct cm_page_buf *b, const struct tl *t, int64_t u, int y)
{
    char d[TL_DATE];
    double x = tl_x(t, u);

    tl_date(u, d, sizeof(d));
    putf(b,
         "<line class=\"tl-grid\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>"
         "<line class=\"tl-tick\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>"
         "<text class=\"tl-date\" x=\"%.1f\" y=\"%d\" text-anchor=\"%s\">%s</text>\n",
         x, TL_TOP, x, y, x, y, x, y + 5, x, y + 18,
         x < TL_PAD + 30          ? "start"
         : x > TL_W - TL_PAD - 30 ? "end"
                                  : "middle",
         d);
}

/* Dates under the rows: whole days (1, 2, 7, 14) or first days of months (1 to 1200 months
 * apart), the smallest step that makes at most TL_MAX_TICKS of them. */
static void tl_axis(struct cm_page_buf *b, const struct tl *t, int y)
{
    static const int day_steps[] = {1, 2, 7, 14};
    static const int month_steps[] = {1, 2, 3, 6, 12, 24, 60, 120, 600, 1200};
    int64_t span = t->hi - t->lo;
    int ticks = 0;

    putf(b, "<line class=\"tl-axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n", TL_PAD, y,
         TL_W - TL_PAD, y);
    for (size_t i = 0; i < sizeof(day_steps) / sizeof(day_steps[0]); i++) {
        int64_t step = day_steps[i] * (int64_t)DAY, u;
        if (span / step > TL_MAX_TICKS)
            continue;
        /* The first multiple of step at or after lo (floor division: lo may be negative). */
        u = (t->lo / step - (t->lo % step < 0)) * step;
        for (; ticks <= TL_MAX_TICKS && u <= t->hi; u += step)
            if (u >= t->lo) {
                tl_tick(b, t, u, y);
                ticks++;
            }
        return;
    }
    for (size_t i = 0; i < sizeof(month_steps) / sizeof(month_steps[0]); i++) {
        int step = month_steps[i];
        time_t lo = (time_t)t->lo;
        struct tm tm;
        long m;
        if (span / (31 * DAY * (int64_t)step) > TL_MAX_TICKS &&
            i + 1 < sizeof(month_steps) / sizeof(month_steps[0]))
            continue;
        if (!gmtime_r(&lo, &tm))
            return;
        /* Months since year 0, rounded up to the step: steps of 12 and more start in
         * January of a year divisible by their number of years. */
        m = ((long)tm.tm_year + 1900) * 12 + tm.tm_mon + 1;
        m = (m + step - 1) / step * step;
        /* Every month start from m on is at or after lo: at most TL_MAX_TICKS + 1 turns. */
        for (int turn = 0; turn <= TL_MAX_TICKS && ticks <= TL_MAX_TICKS; turn++, m += step) {
            struct tm s = {.tm_year = (int)(m / 12 - 1900), .tm_mon = (int)(m % 12), .tm_mday = 1};
            int64_t u = (int64_t)timegm(&s);
            if (u > t->hi)
                break;
            if (u >= t->lo) {
                tl_tick(b, t, u, y);
                ticks++;
            }
        }
        return;
    }
}

/* The sentence that sums the history up: the timeline's <desc> and the text above it. */
static void tl_summary(struct cm_page_buf *b, const struct tl *t, int64_t now)
{
    int64_t since = INT64_MAX;
    char d[TL_DATE];

    for (size_t i = 0; i < t->n; i++)
        since = tl_min(since, tl_clamp(t->c[i].first_seen));
    tl_date(since, d, sizeof(d));
    putf(b, "%zu certificate%s served since %s", t->n, t->n == 1 ? "" : "s", d);
    if (t->current < t->k) {
        int64_t na = t->c[t->current].not_after;
        tl_date(na, d, sizeof(d));
        putf(b, "; current %s %s", na < now ? "expired on" : "valid until", d);
    }
    if (t->k < t->n)
        putf(b, "; the newest %zu shown", t->k);
}

/* One certificate's tooltip: subject, fingerprint prefix, validity, when it was served. */
static void tl_title(struct cm_page_buf *b, const struct tl *t, size_t i)
{
    const struct cm_page_cert *c = &t->c[i];
    char d1[TL_DATE], d2[TL_DATE];

    put(b, "<title>");
    esc(b, c->subject ? c->subject : "(no subject)");
    put(b, "\nSHA-256 ");
    if (c->sha256) {
        char pre[17];
        snprintf(pre, sizeof(pre), "%s", c->sha256);
        esc(b, pre);
        put(b, "&#8230;");
    }
    tl_date(c->not_before, d1, sizeof(d1));
    tl_date(c->not_after, d2, sizeof(d2));
    putf(b, "\nvalid %s to %s", d1, d2);
    tl_date(c->first_seen, d1, sizeof(d1));
    tl_date(tl_last_seen(t, i), d2, sizeof(d2));
    putf(b, "\nserved %s to %s%s</title>", d1, d2, i == t->current ? " (current)" : "");
}

static void tl_svg(struct cm_page_buf *b, const struct tl *t, const char *name, int64_t now)
{
    int h = TL_TOP + (int)t->k * TL_ROW + TL_AXIS, axis_y = TL_TOP + (int)t->k * TL_ROW + 4;
    double xn;

    putf(b,
         "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
         "width=\"%d\" height=\"%d\" role=\"img\" aria-labelledby=\"tl-title tl-desc\">"
         "<title id=\"tl-title\">Certificates served by ",
         TL_W, h, TL_W, h);
    esc(b, name);
    put(b, "</title><desc id=\"tl-desc\">");
    tl_summary(b, t, now);
    put(b, ".</desc>\n");
    tl_axis(b, t, axis_y);
    for (size_t i = 0; i < t->k; i++) {
        const struct cm_page_cert *c = &t->c[i];
        int y = TL_TOP + (int)i * TL_ROW;
        double v1 = tl_x(t, c->not_before), v2 = tl_x(t, c->not_after);
        double s1 = tl_x(t, c->first_seen), s2 = tl_x(t, tl_last_seen(t, i));
        bool cur = i == t->current;

        /* Seen once (or for less than a pixel) still shows: at least 3 units wide. */
        if (v2 - v1 < 1)
            v2 = v1 + 1;
        if (s2 - s1 < 3)
            s1 = s2 - 3 < TL_PAD ? TL_PAD : s2 - 3, s2 = s1 + 3;
        putf(b, "<g class=\"tl-cert%s\" id=\"tl-cert-%zu\">", cur ? " tl-current" : "", i);
        tl_title(b, t, i);
        if (cur)
            putf(b, "<rect class=\"tl-hl\" x=\"0\" y=\"%d\" width=\"%d\" height=\"%d\" rx=\"3\"/>",
                 y, TL_W, TL_ROW);
        putf(b,
             "<rect class=\"tl-valid%s\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"8\" "
             "rx=\"2\"/><rect class=\"tl-served\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" "
             "height=\"14\" rx=\"2\"/></g>\n",
             c->not_after < now ? " tl-expired" : "", v1, y + 7, v2 - v1, s1, y + 4, s2 - s1);
    }
    xn = tl_x(t, now);
    putf(b,
         "<g class=\"tl-nowmark\"><line class=\"tl-now\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" "
         "y2=\"%d\"/><text class=\"tl-now-label\" x=\"%.1f\" y=\"%d\" text-anchor=\"%s\">now"
         "</text></g>\n</svg>\n",
         xn, TL_TOP - 2, xn, axis_y, xn, TL_TOP - 5,
         xn < TL_PAD + 15          ? "start"
         : xn > TL_W - TL_PAD - 15 ? "end"
                                   : "middle");
}

/* The same certificates as a table: for screen readers, for browsers without SVG, and to
 * copy dates from. */
static void tl_table(struct cm_page_buf *b, const struct tl *t, int64_t now)
{
    put(b, "<div class=\"tablewrap\"><table class=\"history\" id=\"history\"><caption>The "
           "certificates served, newest first</caption>\n<thead><tr><th scope=\"col\">Served"
           "</th><th scope=\"col\">Valid</th><th scope=\"col\">Subject</th><th scope=\"col\">"
           "Issuer</th><th scope=\"col\">SHA-256</th></tr></thead>\n<tbody>\n");
    for (size_t i = 0; i < t->k; i++) {
        const struct cm_page_cert *c = &t->c[i];
        putf(b, "<tr%s><th scope=\"row\">", i == t->current ? " class=\"tl-current\"" : "");
        put_time(b, tl_clamp(c->first_seen));
        put(b, " &ndash; ");
        put_time(b, tl_last_seen(t, i));
        if (i == t->current)
            put(b, " <strong>(current)</strong>");
        put(b, "</th><td>");
        put_time(b, tl_clamp(c->not_before));
        put(b, " &ndash; ");
        put_time(b, tl_clamp(c->not_after));
        if (c->not_after < now)
            put(b, " <span class=\"d-expired\">(expired)</span>");
        put(b, "</td><td class=\"c-subject\">");
        esc(b, c->subject);
        put(b, "</td><td class=\"c-issuer\">");
        esc(b, c->issuer);
        put(b, "</td><td><code class=\"fp\">");
        esc(b, c->sha256);
        put(b, "</code></td></tr>\n");
    }
    put(b, "</tbody></table></div>\n");
}

static void put_history(struct cm_page_buf *b, const struct cm_page_history *h, json_t *report,
                        int64_t now)
{
    const char *leaf = jstr(json_array_get(json_object_get(report, "chain"), 0), "sha256");
    struct tl t = {0};

    put(b, "<section aria-labelledby=\"h-history\"><h2 id=\"h-history\">Certificate history"
           "</h2>\n");
    if (jstr(report, "path")) { /* the daemon follows the leaves of endpoints only */
        put(b, "<p>The history follows endpoints: the leaves of certificate files are not "
               "recorded.</p></section>\n");
        return;
    }
    if (!h) {
        put(b, "<p>No history is kept: the daemon keeps the certificates a target served only "
               "with a state database (<code>global.state_file</code>).</p></section>\n");
        return;
    }
    if (h->error) {
        put(b, "<p class=\"err\">The history could not be read: ");
        esc(b, h->error);
        put(b, "</p></section>\n");
        return;
    }
    if (!h->n || !h->certs) {
        put(b, "<p>No certificate has been recorded for this target yet.</p></section>\n");
        return;
    }
    t.c = h->certs;
    t.n = h->n;
    t.k = h->n < CM_PAGE_HISTORY_MAX ? h->n : CM_PAGE_HISTORY_MAX;
    t.current = t.k;
    for (size_t i = 0; leaf && i < t.k && t.current == t.k; i++)
        if (t.c[i].sha256 && !strcasecmp(t.c[i].sha256, leaf))
            t.current = i;
    t.last_probe = jtime(report, "last_probe");
    tl_range(&t, now);
    put(b, "<p class=\"tl-summary\">");
    tl_summary(b, &t, now);
    put(b, ".</p>\n<figure class=\"tl\">");
    tl_svg(b, &t, jstr(report, "target"), now);
    put(b, "<figcaption class=\"tl-key\" aria-hidden=\"true\"><span class=\"k-valid\"></span> "
           "validity <span class=\"k-served\"></span> served <span class=\"k-current\"></span> "
           "served, current <span class=\"k-now\"></span> now</figcaption></figure>\n");
    tl_table(b, &t, now);
    if (t.k < t.n)
        putf(b, "<p class=\"tl-more\">%zu older certificate%s not shown.</p>\n", t.n - t.k,
             t.n - t.k == 1 ? "" : "s");
    put(b, "</section>\n");
}

int cm_page_render_target(json_t *report, const char *findings_md,
                          const struct cm_page_history *hist, const struct cm_page_info *info,
                          int64_t now, bool refresh, struct cm_page_buf *out)
{
    const char *name = jstr(report, "target");
    enum cm_status st;

    if (!json_is_object(report) || !name)
        return -EINVAL;
    st = parse_status(jstr(report, "status"));
    page_head(out, name, refresh, 60);
    put(out, "<p class=\"crumbs\"><a href=\"/\">All targets</a></p>\n<h1 class=\"target\">");
    esc(out, name);
    put(out, " ");
    put_status(out, st);
    put(out, "</h1>\n<p class=\"badge\"><img alt=\"certificate badge\" src=\"/badge/");
    url(out, name);
    put(out, ".svg\" height=\"20\"></p>\n<p class=\"refresh\">");
    put(out, refresh ? "This page reloads every 60 s. <a id=\"refresh-toggle\" href=\"?refresh=0\">"
                       "Stop auto-refresh</a>"
                     : "Auto-refresh is off. <a id=\"refresh-toggle\" href=\"?\">Turn "
                       "auto-refresh on</a>");
    put(out, "</p>\n");
    /* What is wrong first, then the certificates, then the connection's details. */
    put_findings(out, json_object_get(report, "findings"), findings_md);
    put_chain(out, json_object_get(report, "chain"), now);
    put_history(out, hist, report, now);
    put_overview(out, report, now);
    put_posture(out, json_object_get(report, "posture"));
    put_phases(out, json_object_get(report, "timing_ms"));
    page_foot(out, info);
    return out->failed ? -ENOMEM : 0;
}

int cm_page_render_not_found(const char *name, const struct cm_page_info *info,
                             struct cm_page_buf *out)
{
    page_head(out, "Not found", false, 0);
    put(out, "<h1>Not found</h1>\n<p>No target is named <code>");
    esc(out, name);
    put(out, "</code>. <a href=\"/\">All targets</a></p>\n");
    page_foot(out, info);
    return out->failed ? -ENOMEM : 0;
}

/* ---- Badge ---- */

/* Width of text in 11 px Verdana, roughly: shields.io's badges are sized the same way. */
static int text_width(const char *s)
{
    int w = 0;

    for (; *s; s++)
        w += strchr("ilj.,:;!| ", *s) ? 4 : strchr("mwMW", *s) ? 10 : 7;
    return w;
}

int cm_page_render_badge(const struct cm_page_row *r, int64_t now, struct cm_page_buf *out)
{
    static const char *const colours[] = {"#2e7d32", "#a15c00", "#c62828", "#616161"};
    char value[48];
    int lw, vw;

    if (r->pending)
        snprintf(value, sizeof(value), "not probed");
    else if (r->expiry == NO_TIME)
        snprintf(value, sizeof(value), "%s", status_names[r->status]);
    else {
        int64_t d = days_until(r->expiry, now);
        if (d < 0)
            snprintf(value, sizeof(value), "expired");
        else
            snprintf(value, sizeof(value), "%" PRId64 " day%s", d, d == 1 ? "" : "s");
    }
    lw = text_width("cert") + 12;
    vw = text_width(value) + 12;
    putf(out,
         "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"20\" role=\"img\" "
         "aria-label=\"cert: %s\"><title>",
         lw + vw, value);
    esc(out, r->name);
    putf(out,
         ": %s (%s)</title><linearGradient id=\"s\" x2=\"0\" y2=\"100%%\"><stop offset=\"0\" "
         "stop-color=\"#bbb\" stop-opacity=\".1\"/><stop offset=\"1\" stop-opacity=\".1\"/>"
         "</linearGradient><clipPath id=\"r\"><rect width=\"%d\" height=\"20\" rx=\"3\" "
         "fill=\"#fff\"/></clipPath><g clip-path=\"url(#r)\"><rect width=\"%d\" height=\"20\" "
         "fill=\"#555\"/><rect x=\"%d\" width=\"%d\" height=\"20\" fill=\"%s\"/><rect "
         "width=\"%d\" height=\"20\" fill=\"url(#s)\"/></g><g fill=\"#fff\" "
         "text-anchor=\"middle\" font-family=\"Verdana,Geneva,DejaVu Sans,sans-serif\" "
         "font-size=\"11\"><text x=\"%d\" y=\"14\">cert</text><text x=\"%d\" "
         "y=\"14\">%s</text></g></svg>\n",
         value, status_names[r->status], lw + vw, lw, lw, vw, colours[r->status], lw + vw,
         lw / 2, lw + vw / 2, value);
    return out->failed ? -ENOMEM : 0;
}
