/* The status page: HTML for GET / (every target by urgency), GET /target/{name} (one target)
 * and the shields-style badge GET /badge/{name}.svg. Pure: no I/O, no clock (now is given).
 *
 * Each state entry keeps a row (cm_page_row_new, built when its report changes, like the
 * metrics view), so that the list page sorts and filters plain structs and never parses
 * JSON; the detail page parses the one report it shows. Every string that comes from a
 * certificate, a peer or the configuration goes through cm_html_escape (base/text.h) before
 * it is written, in element text and in attribute values alike, and through cm_url_encode in
 * URLs. The pages load nothing but /static/style.css and /static/app.js from the daemon
 * itself (CM_PAGE_CSP), and work without JavaScript. docs/status-page.md describes them. */
#ifndef CERTMON_PAGE_H
#define CERTMON_PAGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What GET / shows of one target. Opaque; immutable once built. */
struct cm_page_row;

/* Builds the row of one target from its report (the JSON object the state keeps: the `check
 * --json` object plus "labels", "last_probe" ...; see state.h). Missing or malformed fields
 * are shown as absent. Returns NULL when out of memory or when report is not an object with a
 * string "target". The row does not refer to report afterwards. name, when not NULL, is the
 * target's name as the caller keeps it for at least as long as the row (the state entry's):
 * when it equals the report's "target" the row points at it instead of holding a copy (at
 * 100,000 rows, ~3 MB); NULL, or another text: the row copies the report's. */
struct cm_page_row *cm_page_row_new(json_t *report, const char *name);

/* A row for a target known by name only (no report yet): status unknown, "not probed yet".
 * NULL when out of memory. */
struct cm_page_row *cm_page_row_pending(const char *name);

/* NULL is a no-op. */
void cm_page_row_free(struct cm_page_row *r);

/* The list's columns, for sort=. */
enum cm_page_sort {
    CM_PAGE_SORT_URGENCY = 0, /* status (critical, warning, unknown, ok), then expiry */
    CM_PAGE_SORT_NAME,
    CM_PAGE_SORT_STATUS,
    CM_PAGE_SORT_DAYS,
    CM_PAGE_SORT_SUBJECT,
    CM_PAGE_SORT_ISSUER,
    CM_PAGE_SORT_TLS,
    CM_PAGE_SORT_FINDING,
    CM_PAGE_SORT_PROBED,
    CM_PAGE_SORT_COUNT
};

#define CM_PAGE_MAX_LABELS 8 /* label= filters at once */

/* What the visitor asked for through the query string. Strings are borrowed. Start from
 * cm_page_query_init. */
struct cm_page_query {
    unsigned status_mask; /* bit (1 << enum cm_status) per status= given; 0: every status */
    const char *label_name[CM_PAGE_MAX_LABELS], *label_value[CM_PAGE_MAX_LABELS];
    size_t labels; /* label=NAME:VALUE filters, all must match */
    char label_buf[CM_PAGE_MAX_LABELS][128]; /* private: the split NAME:VALUE texts */
    const char *q;           /* q=: case-insensitive text in name, subject, issuer, SANs,
                              * finding, error or labels; NULL or "": none */
    enum cm_page_sort sort;  /* sort= */
    bool desc;               /* sort=-COLUMN */
    size_t page;             /* page=, from 1 */
    size_t page_size;        /* rows per page (the configuration's web.page_size) */
    bool refresh;            /* refresh=1 (default) or refresh=0 */
    unsigned refresh_seconds; /* the meta refresh interval when refresh is on */
};

/* Defaults: every status, urgency order, page 1, auto-refresh on every 60 s. */
void cm_page_query_init(struct cm_page_query *q, size_t page_size);

/* Applies one query parameter (name=value, both URL-decoded; value borrowed until the render).
 * An empty label= or q= (the form's empty fields) filters nothing. Returns 0, or -EINVAL with
 * a reason naming the parameter in err: an unknown parameter, an unknown status or column, a
 * label without ':', a page that is not a positive number, more
 * than CM_PAGE_MAX_LABELS labels. */
int cm_page_query_set(struct cm_page_query *q, const char *name, const char *value, char *err,
                      size_t errlen);

/* A growable output buffer; on allocation failure it stops growing and failed is set. After a
 * render that did not fail, data[len] is a NUL. Start zeroed. */
struct cm_page_buf {
    char *data;
    size_t len, cap;
    bool failed;
};

void cm_page_buf_free(struct cm_page_buf *b);

/* Facts about the daemon shown in the page footer (strings borrowed; NULL: left out). */
struct cm_page_info {
    const char *version;
    size_t targets; /* configured targets */
};

/* Renders GET / over rows[0..n) (NULL entries skipped; order does not matter: the page
 * sorts): the summary bar (counts by status over all rows, expiring within 7 days), the
 * filter form, the table of the rows that pass q's filters in q's order, the page q->page of
 * them (the last page when q->page is past it). Cost: O(n log n) for the sort, then only the
 * page's rows are written. Returns 0 or -ENOMEM. */
int cm_page_render_index(const struct cm_page_row *const *rows, size_t n,
                         const struct cm_page_query *q, const struct cm_page_info *info,
                         int64_t now, struct cm_page_buf *out);

/* One leaf certificate a target has served, as the detail page's timeline draws it: plain
 * data that the daemon copies out of its history (store.h), so that this renderer never
 * reads a database. Strings borrowed (NULL: absent); times are Unix seconds. */
struct cm_page_cert {
    const char *sha256;            /* hex SHA-256 of the certificate */
    const char *subject, *issuer;  /* RFC 4514, attacker-controlled */
    int64_t not_before, not_after; /* the validity */
    int64_t first_seen, last_seen; /* when certmon saw it served (last_seen moves at most
                                    * hourly: the current leaf is drawn up to the last probe) */
};

/* The most certificates the timeline draws (and its table lists): the newest ones; the page
 * says how many older ones it left out. */
#define CM_PAGE_HISTORY_MAX 50

/* The certificate history handed to cm_page_render_target. */
struct cm_page_history {
    const struct cm_page_cert *certs; /* newest first (by first_seen), as the store reads them;
                                       * borrowed; all n of them, the renderer bounds them */
    size_t n;
    const char *error; /* the read failed: this reason is shown (escaped) instead; NULL: none */
};

/* Renders GET /target/{name} from the target's report (as for cm_page_row_new): the chain with
 * validity bars, the findings with their documentation (findings_md: the text of
 * docs/findings.md, whose "Triggered when" and "Fix" of each id are shown; NULL: left out),
 * verification and revocation, the posture, the probe phases, and the history of served
 * certificates (hist; NULL: the daemon keeps none, which the section says, as it says that
 * file targets, whose report has a "path", have none): an inline SVG
 * timeline (one bar per leaf from not_before to not_after, first_seen..last_seen drawn
 * stronger, the leaf the report shows highlighted, a "now" marker, an axis with dates,
 * <title> tooltips; no script, no style attribute: classes of the compiled-in stylesheet)
 * with a table of the same certificates under it, at most CM_PAGE_HISTORY_MAX of each.
 * Returns 0, -EINVAL when report is not an object, or -ENOMEM. */
int cm_page_render_target(json_t *report, const char *findings_md,
                          const struct cm_page_history *hist, const struct cm_page_info *info,
                          int64_t now, bool refresh, struct cm_page_buf *out);

/* Renders the badge of one row: "cert | 23 days" (or "expired", "no certificate",
 * "unknown"), coloured by status, as a self-contained SVG. Returns 0 or -ENOMEM. */
int cm_page_render_badge(const struct cm_page_row *r, int64_t now, struct cm_page_buf *out);

/* Renders the "not found" page for GET /target/{name} of an unknown name. */
int cm_page_render_not_found(const char *name, const struct cm_page_info *info,
                             struct cm_page_buf *out);

/* The target a row shows (borrowed from the row). */
const char *cm_page_row_name(const struct cm_page_row *r);

/* Headers every page response carries: nothing may load from elsewhere, no inline script or
 * style runs, the page may not be framed. */
#define CM_PAGE_CSP                                                                            \
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "                \
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
#define CM_PAGE_BADGE_CSP "default-src 'none'"
#define CM_PAGE_CONTENT_TYPE "text/html; charset=utf-8"
#define CM_PAGE_BADGE_CONTENT_TYPE "image/svg+xml; charset=utf-8"

#endif
