/* unit.page: the status page renderer (analysis/page.h) and the HTML and URL escapers
 * (base/text.h). Reports are built here with hostile subjects, issuers, SANs, labels, finding
 * messages and target names; the tests assert that none of them reaches the HTML unescaped,
 * in element text or in attributes, and that the list comes in urgency order, filters,
 * sorts and pages the way the query says. Also prints (never asserts) how long rendering
 * 10,000 targets takes; tests/bench/page_bench.sh asserts the budget. */
#include "certmon/analysis/analyze.h"
#include "certmon/analysis/page.h"
#include "certmon/base/intern.h"
#include "certmon/base/text.h"
#include "cmtest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOW 1800000000LL /* 2027-01-15T08:00:00Z */
#define DAY 86400LL

#define HOSTILE_CN "<script>window.__pwned=1</script>\"><img src=x onerror=alert(1)>"

/* ---- Helpers ---- */

/* A report as the state keeps it: one certificate expiring days from NOW (no chain when
 * days is NO_CERT), status, and the worst finding. Strings are used as given. */
#define NO_CERT (-100000)
static json_t *report(const char *name, const char *status, long days, const char *subject,
                      const char *finding, const char *severity, const char *label_value)
{
    char na[32], nb[32], lp[32];
    json_t *r, *chain = json_array(), *findings = json_array();

    cm_time_rfc3339(NOW + days * DAY, na, sizeof(na));
    cm_time_rfc3339(NOW - 60 * DAY, nb, sizeof(nb));
    cm_time_rfc3339(NOW - 120, lp, sizeof(lp));
    if (days != NO_CERT)
        json_array_append_new(
            chain, json_pack("{s:i, s:s, s:s, s:s, s:s, s:i, s:{s:s, s:i}, s:s, s:[s, s], s:s}",
                             "position", 0, "subject", subject, "issuer", "CN=Test CA \"quoted\"",
                             "not_before", nb, "not_after", na, "days_left", (int)days, "key",
                             "type", "RSA", "bits", 2048, "signature", "RSA-SHA256", "sans",
                             "www.example.test", "<b>san</b>.example.test", "sha256", "ab12"));
    if (finding)
        json_array_append_new(findings,
                              json_pack("{s:s, s:s, s:s, s:i}", "id", finding, "severity",
                                        severity, "message", subject, "position", 0));
    r = json_pack("{s:s, s:s, s:s, s:i, s:o, s:o, s:{s:s}, s:s, s:{s:s}, s:{s:f, s:f, s:f, "
                  "s:f}, s:n}",
                  "target", name, "status", status, "host", "127.0.0.1", "port", 443, "chain",
                  chain, "findings", findings, "tls", "version", "TLS1.3", "last_probe", lp,
                  "labels", "team", label_value, "timing_ms", "dns", 0.5, "connect", 1.0,
                  "handshake", 8.0, "total", 9.5, "posture");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    return r;
}

static struct cm_page_row *row_of(json_t *r)
{
    struct cm_page_row *row = cm_page_row_new(r, NULL);

    json_decref(r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(row);
    return row;
}

static char *render_index(struct cm_page_row **rows, size_t n, const struct cm_page_query *q)
{
    struct cm_page_buf b = {0};
    struct cm_page_info info = {"9.9", n};

    EXPECT_INT(cm_page_render_index((const struct cm_page_row *const *)rows, n, q, &info, NOW, &b),
               0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b.data);
    CU_ASSERT_EQUAL(strlen(b.data), b.len);
    return b.data;
}

/* The target names of the table's rows, in order, joined by spaces. */
static void row_order(const char *html, char *out, size_t outlen)
{
    const char *p = html;
    size_t o = 0;

    out[0] = '\0';
    while ((p = strstr(p, "<th scope=\"row\" class=\"c-name\"><a href=\"/target/"))) {
        const char *s = strchr(p + 40, '>') + 1, *e = strchr(s, '<');
        if (o + (size_t)(e - s) + 2 >= outlen)
            break;
        if (o)
            out[o++] = ' ';
        memcpy(out + o, s, (size_t)(e - s));
        o += (size_t)(e - s);
        out[o] = '\0';
        p = e;
    }
}

/* Renders rows under a fresh query (page size 500) of params, a query string without its '?'
 * ("status=ok&sort=name"; values not encoded), and puts the rows' order into order. Returns
 * the page (caller frees). */
static char *render_query(struct cm_page_row **rows, size_t n, const char *params, char *order,
                          size_t orderlen, unsigned line)
{
    struct cm_page_query q;
    char copy[256], err[256] = "", *sp, *html;

    cm_page_query_init(&q, 500);
    snprintf(copy, sizeof(copy), "%s", params);
    for (char *kv = strtok_r(copy, "&", &sp); kv; kv = strtok_r(NULL, "&", &sp)) {
        char *eq = strchr(kv, '=');
        CU_ASSERT_PTR_NOT_NULL_FATAL(eq);
        *eq = '\0';
        expect_int(cm_page_query_set(&q, kv, eq + 1, err, sizeof(err)), 0, params, line);
    }
    html = render_index(rows, n, &q);
    row_order(html, order, orderlen);
    return html;
}

/* A query string and the rows it shows, in order (names joined by spaces). */
struct query_case {
    const char *params, *order;
};

static void expect_orders(struct cm_page_row **rows, size_t n, const struct query_case *c,
                          size_t count, unsigned line)
{
    char order[512];

    for (size_t i = 0; i < count; i++) {
        free(render_query(rows, n, c[i].params, order, sizeof(order), line));
        expect_str(order, c[i].order, c[i].params, line);
    }
}

/* No hostile markup survives: no tag or attribute injected by the test's strings. */
static void expect_inert(const char *html, unsigned line)
{
    expect_int(strstr(html, "<script>window") != NULL, 0, "raw <script> from a certificate", line);
    expect_int(strstr(html, "<img src=x") != NULL, 0, "raw <img> from a certificate", line);
    expect_int(strstr(html, "<b>") != NULL, 0, "raw <b> from a SAN or label", line);
    expect_int(strstr(html, "\"><img src") != NULL, 0, "an attribute closed by foreign text",
               line);
    expect_int(strstr(html, "'><") != NULL, 0, "an attribute closed by foreign text", line);
    /* The only scripts are the page's own file. */
    const char *p = html;
    int scripts = 0;
    while ((p = strstr(p, "<script"))) {
        scripts++;
        expect_int(strncmp(p, "<script src=\"/static/app.js\" defer></script>", 44), 0,
                   "the page's only script", line);
        p++;
    }
    expect_int(scripts <= 1, 1, "one script element at most", line);
}

/* ---- Escapers ---- */

static void test_html_escape(void)
{
    char out[CM_HTML_ESCAPE_MAX(64)];
    const char *in = "a<b>&\"'\x01\t\n\x7f" "\xc3\xa9" "\xe2\x82\xac" "\xff" "\xc3";
    size_t n = cm_html_escape(in, strlen(in), out);

    EXPECT_STR(out, "a&lt;b&gt;&amp;&quot;&#39;\xef\xbf\xbd\t\n\xef\xbf\xbd\xc3\xa9\xe2\x82\xac"
                    "\xef\xbf\xbd\xef\xbf\xbd");
    EXPECT_INT(n, strlen(out));
    /* An embedded NUL is a control byte too. */
    n = cm_html_escape("a\0b", 3, out);
    EXPECT_STR(out, "a\xef\xbf\xbd" "b");
    /* The worst case fits the bound: every byte an entity of 6. */
    n = cm_html_escape("''''''''", 8, out);
    EXPECT_INT(n, 8 * 5);
    n = cm_html_escape("\"\"", 2, out);
    EXPECT_INT(n, 12);
    CU_ASSERT(n + 1 <= CM_HTML_ESCAPE_MAX(2));
    /* An overlong '<' (0xC0 0xBC) is not a '<' and not valid UTF-8. */
    cm_html_escape("\xc0\xbc", 2, out);
    EXPECT_STR(out, "\xef\xbf\xbd\xef\xbf\xbd");
}

static void test_url_encode(void)
{
    char out[CM_URL_ENCODE_MAX(64)];

    cm_url_encode("a b/c?d=e&f#\"<>'%~._-Z9", 23, out);
    EXPECT_STR(out, "a%20b%2Fc%3Fd%3De%26f%23%22%3C%3E%27%25~._-Z9");
    cm_url_encode("\xc3\xa9", 2, out);
    EXPECT_STR(out, "%C3%A9");
}

/* ---- The list ---- */

static void test_urgency_order(void)
{
    struct cm_page_row *rows[] = {
        row_of(report("ok-far", "ok", 300, "CN=far", NULL, NULL, "a")),
        row_of(report("ok-near", "ok", 40, "CN=near", NULL, NULL, "a")),
        row_of(report("warn-20", "warning", 20, "CN=w20", "cert.expiring", "warning", "b")),
        row_of(report("crit-expired", "critical", -3, "CN=x", "cert.expired", "critical", "b")),
        row_of(report("crit-5", "critical", 5, "CN=c5", "cert.expiring", "critical", "a")),
        row_of(report("crit-down", "critical", NO_CERT, "", "probe.failed", "critical", "a")),
        row_of(report("unknown-1", "unknown", NO_CERT, "", "probe.failed", "critical", "a")),
        cm_page_row_pending("not-yet"),
        NULL,
    };
    static const struct query_case sorts[] = {
        {"sort=days", "crit-expired crit-5 warn-20 ok-near ok-far crit-down not-yet unknown-1"},
        {"sort=-days", "ok-far ok-near warn-20 crit-5 crit-expired crit-down not-yet unknown-1"},
        {"sort=name", "crit-5 crit-down crit-expired not-yet ok-far ok-near unknown-1 warn-20"},
    };
    size_t n = sizeof(rows) / sizeof(rows[0]);
    char order[512], *html;

    html = render_query(rows, n, "", order, sizeof(order), __LINE__);
    EXPECT_STR(order, "crit-expired crit-5 crit-down warn-20 not-yet unknown-1 ok-near ok-far");
    /* Days left, coloured by band; the summary counts every row. */
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "class=\"c-days d-expired\" data-days=\"-3\">expired 3 "
                                        "days ago<"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "class=\"c-days d-crit\" data-days=\"5\">5 days<"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "class=\"c-days d-warn\" data-days=\"20\">20 days<"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "class=\"c-days d-ok\" data-days=\"300\">300 days<"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "id=\"count-all\">8<"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "id=\"count-critical\">3<"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "id=\"count-unknown\">2<"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "id=\"count-ok\">2<"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "id=\"count-week\">1<"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "id=\"count-expired\">1<"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "<meta http-equiv=\"refresh\" content=\"60\">"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "<caption>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "not probed yet"));
    free(html);

    /* Other columns, both directions; absent values stay last. */
    expect_orders(rows, n, sorts, sizeof(sorts) / sizeof(sorts[0]), __LINE__);
    html = render_query(rows, n, "sort=days", order, sizeof(order), __LINE__);
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "aria-sort=\"ascending\""));
    free(html);
    for (size_t i = 0; i < n; i++)
        cm_page_row_free(rows[i]);
}

static void test_filters(void)
{
    struct cm_page_row *rows[] = {
        row_of(report("a.example", "ok", 300, "CN=alpha", NULL, NULL, "web")),
        row_of(report("b.example", "warning", 20, "CN=beta", "cert.expiring", "warning", "db")),
        row_of(report("c.example", "critical", 2, "CN=gamma", "cert.expiring", "critical", "web")),
    };
    /* Statuses, labels, text (in names and subjects; SANs and finding ids are searched too). */
    static const struct query_case cases[] = {
        {"status=ok&status=critical", "c.example a.example"},
        {"label=team:web", "c.example a.example"},
        {"q=BETA", "b.example"},
        {"q=www.example.test&q=cert.expiring", "c.example b.example"},
        {"q=nothing-like-it", ""},
    };
    char order[256], *html;

    expect_orders(rows, 3, cases, sizeof(cases) / sizeof(cases[0]), __LINE__);
    html = render_query(rows, 3, "status=ok&status=critical", order, sizeof(order), __LINE__);
    /* The form shows what is on; the summary still counts everything. */
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "value=\"critical\" checked"));
    CU_ASSERT_PTR_NULL(strstr(html, "value=\"warning\" checked"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "id=\"count-all\">3<"));
    /* Column links keep the filters. */
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "href=\"/?status=ok&amp;status=critical&amp;sort=name\""));
    free(html);

    html = render_query(rows, 3, "q=nothing-like-it", order, sizeof(order), __LINE__);
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "No target matches these filters."));
    free(html);

    html = render_query(rows, 3, "refresh=0", order, sizeof(order), __LINE__);
    CU_ASSERT_PTR_NULL(strstr(html, "http-equiv=\"refresh\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "id=\"refresh-toggle\" href=\"/\">Turn auto-refresh on"));
    /* Links keep the refresh off. */
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "href=\"/?sort=name&amp;refresh=0\""));
    free(html);
    for (size_t i = 0; i < 3; i++)
        cm_page_row_free(rows[i]);
}

static void test_query_errors(void)
{
    struct cm_page_query q;
    char err[256];

    cm_page_query_init(&q, 500);
    EXPECT_INT(cm_page_query_set(&q, "status", "bad", err, sizeof(err)), -EINVAL);
    EXPECT_STR(err, "status=bad: expected ok, warning, critical or unknown");
    EXPECT_INT(cm_page_query_set(&q, "label", "", err, sizeof(err)), 0); /* an empty field */
    EXPECT_INT(q.labels, 0);
    EXPECT_INT(cm_page_query_set(&q, "label", "nocolon", err, sizeof(err)), -EINVAL);
    EXPECT_STR(err, "label=nocolon: expected NAME:VALUE");
    EXPECT_INT(cm_page_query_set(&q, "sort", "size", err, sizeof(err)), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "sort=size: expected urgency, name"));
    EXPECT_INT(cm_page_query_set(&q, "page", "0", err, sizeof(err)), -EINVAL);
    EXPECT_STR(err, "page=0: expected a page number from 1");
    EXPECT_INT(cm_page_query_set(&q, "page", "2x", err, sizeof(err)), -EINVAL);
    EXPECT_INT(cm_page_query_set(&q, "page", "99999999999999999999999", err, sizeof(err)),
               -EINVAL);
    EXPECT_INT(cm_page_query_set(&q, "refresh", "yes", err, sizeof(err)), -EINVAL);
    EXPECT_INT(cm_page_query_set(&q, "statuss", "ok", err, sizeof(err)), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown parameter 'statuss'"));
    for (int i = 0; i < CM_PAGE_MAX_LABELS; i++)
        EXPECT_INT(cm_page_query_set(&q, "label", "a:b", err, sizeof(err)), 0);
    EXPECT_INT(cm_page_query_set(&q, "label", "a:b", err, sizeof(err)), -EINVAL);
    /* Nothing bad was kept. */
    EXPECT_INT(q.status_mask, 0);
    EXPECT_INT(q.page, 1);
}

static void test_pagination(void)
{
    struct cm_page_row *rows[25];
    struct cm_page_query q;
    char name[32], order[1024], *html;

    for (int i = 0; i < 25; i++) {
        snprintf(name, sizeof(name), "t%02d", i);
        rows[i] = row_of(report(name, "ok", 100 + i, "CN=x", NULL, NULL, "a"));
    }
    cm_page_query_init(&q, 10);
    html = render_index(rows, 25, &q);
    row_order(html, order, sizeof(order));
    EXPECT_STR(order, "t00 t01 t02 t03 t04 t05 t06 t07 t08 t09");
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "Targets 1&ndash;10 of 25 &middot; page 1 of 3"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "<a rel=\"next\" href=\"/?page=2\">"));
    free(html);
    EXPECT_INT(cm_page_query_set(&q, "page", "3", NULL, 0), 0);
    html = render_index(rows, 25, &q);
    row_order(html, order, sizeof(order));
    EXPECT_STR(order, "t20 t21 t22 t23 t24");
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "Targets 21&ndash;25 of 25 &middot; page 3 of 3"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "<a rel=\"prev\" href=\"/?page=2\">"));
    CU_ASSERT_PTR_NULL(strstr(html, "rel=\"next\""));
    free(html);
    /* Past the end: the last page. */
    EXPECT_INT(cm_page_query_set(&q, "page", "9", NULL, 0), 0);
    html = render_index(rows, 25, &q);
    row_order(html, order, sizeof(order));
    EXPECT_STR(order, "t20 t21 t22 t23 t24");
    free(html);
    for (int i = 0; i < 25; i++)
        cm_page_row_free(rows[i]);
}

static void test_hostile_list(void)
{
    struct cm_page_row *rows[] = {
        row_of(report("evil\"><img src=x onerror=alert(1)>", "critical", 3, "CN=" HOSTILE_CN,
                      "chain.self_signed", "critical", "<b>x</b>\"'")),
        row_of(report("ctl\x01\x1b[31m", "ok", 90, "CN=\xe6\x97\xa5\xe6\x9c\xac \x7f",
                      NULL, NULL, "v")),
    };
    struct cm_page_query q;
    char *html;

    cm_page_query_init(&q, 500);
    /* Filters echoed into the form and the links are foreign too. */
    EXPECT_INT(cm_page_query_set(&q, "q", "\"><img src=x onerror=alert(2)>", NULL, 0), 0);
    html = render_index(rows, 2, &q);
    expect_inert(html, __LINE__);
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "value=\"&quot;&gt;&lt;img src=x onerror=alert(2)&gt;\""));
    free(html);
    cm_page_query_init(&q, 500);
    EXPECT_INT(cm_page_query_set(&q, "label", "team:<b>x</b>\"'", NULL, 0), 0);
    html = render_index(rows, 2, &q);
    expect_inert(html, __LINE__);
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "CN=&lt;script&gt;window.__pwned=1&lt;/script&gt;&quot;"
                                        "&gt;&lt;img src=x onerror=alert(1)&gt;"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "<li>team=&lt;b&gt;x&lt;/b&gt;&quot;&#39;</li>"));
    /* The name in the link is percent-encoded, in the text escaped. */
    CU_ASSERT_PTR_NOT_NULL(
        strstr(html, "href=\"/target/evil%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E\">"
                     "evil&quot;&gt;&lt;img src=x onerror=alert(1)&gt;</a>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "label=team%3A%3Cb%3Ex%3C%2Fb%3E%22%27"));
    free(html);
    cm_page_query_init(&q, 500);
    html = render_index(rows, 2, &q);
    /* Control bytes are replaced (bad UTF-8 never gets this far: reports are JSON, and the
     * escaper's own test covers it); good UTF-8 is kept. */
    CU_ASSERT_PTR_NOT_NULL(strstr(html, ">ctl\xef\xbf\xbd\xef\xbf\xbd[31m</a>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "CN=\xe6\x97\xa5\xe6\x9c\xac \xef\xbf\xbd"));
    CU_ASSERT_PTR_NULL(strstr(html, "\x1b"));
    free(html);
    for (size_t i = 0; i < 2; i++)
        cm_page_row_free(rows[i]);
}

/* ---- The detail page and the badge ---- */

static const char *const MD = "# Findings\n\n## The catalogue\n\n### `chain.self_signed`\n\n"
                              "- **Severity:** critical.\n- **Triggered when:** the server sent "
                              "a lone\n  self-signed certificate <em>.\n- **Fix:** get a "
                              "certificate from a CA.\n\n### `cert.expired`\n\n- **Fix:** renew "
                              "it.\n";

static void test_target_page(void)
{
    json_t *r = report("evil\"><img src=x onerror=alert(1)>", "critical", 15, "CN=" HOSTILE_CN,
                       "chain.self_signed", "critical", "<b>x</b>");
    struct cm_page_buf b = {0};
    struct cm_page_info info = {"9.9", 1};

    json_object_set_new(r, "posture",
                        json_pack("{s:[s, s], s:[s], s:b, s:i, s:b}", "versions_accepted",
                                  "TLS1.2", "TLS1.3", "weak_ciphers_accepted", "3DES<i>",
                                  "forward_secrecy", 1, "dh_bits", 2048, "secure_renegotiation",
                                  0));
    json_object_set_new(json_array_get(json_object_get(r, "chain"), 0), "revocation",
                        json_pack("{s:s, s:s, s:s, s:s, s:b, s:[s]}", "status", "revoked",
                                  "source", "crl", "revoked_at", "2027-01-01T00:00:00Z", "reason",
                                  "keyCompromise<x>", "crl_stale", 0, "errors",
                                  "fetch <failed>"));
    EXPECT_INT(cm_page_render_target(r, MD, NULL, &info, NOW, true, &b), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b.data);
    expect_inert(b.data, __LINE__);
    /* Findings with the docs' text, markdown emphasis dropped, foreign text escaped. */
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "<code>chain.self_signed</code>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "<strong>Triggered when:</strong> the server sent a "
                                          "lone self-signed certificate &lt;em&gt;.</p>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "<strong>Fix:</strong> get a certificate from a CA."));
    /* The chain: validity with a bar a quarter of the way (60 days of 75 passed: 80%). */
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "aria-label=\"80% of the lifetime has passed\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "<span class=\"d-warn\">(15 days left)</span>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "<li>&lt;b&gt;san&lt;/b&gt;.example.test</li>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "RSA 2048 bits"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "CN=Test CA &quot;quoted&quot;"));
    /* Revocation, posture, phases. */
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "<span class=\"rev rev-revoked\">revoked</span> (crl), "
                                          "revoked at 2027-01-01T00:00:00Z, reason "
                                          "keyCompromise&lt;x&gt;"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "fetch &lt;failed&gt;"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "<th scope=\"row\">Protocol versions</th><td>TLS1.2, "
                                          "TLS1.3</td>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "3DES&lt;i&gt;"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "<th scope=\"row\">Handshake</th><td>8.0 ms"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "src=\"/badge/evil%22%3E%3Cimg%20src%3Dx%20onerror%3D"
                                          "alert%281%29%3E.svg\""));
    cm_page_buf_free(&b);

    /* Without docs and posture. */
    json_object_set_new(r, "posture", json_null());
    EXPECT_INT(cm_page_render_target(r, NULL, NULL, &info, NOW, false, &b), 0);
    CU_ASSERT_PTR_NULL(strstr(b.data, "Triggered when"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "No posture pass has run"));
    CU_ASSERT_PTR_NULL(strstr(b.data, "http-equiv=\"refresh\""));
    cm_page_buf_free(&b);
    json_decref(r);
    r = json_integer(1);
    EXPECT_INT(cm_page_render_target(r, NULL, NULL, &info, NOW, false, &b), -EINVAL);
    json_decref(r);
    cm_page_buf_free(&b);

    EXPECT_INT(cm_page_render_not_found("<script>x</script>", &info, &b), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "<code>&lt;script&gt;x&lt;/script&gt;</code>"));
    cm_page_buf_free(&b);
}

static void test_badge(void)
{
    struct cm_page_row *ok = row_of(report("a<b>", "ok", 23, "CN=a", NULL, NULL, "x"));
    struct cm_page_row *one = row_of(report("one", "warning", 1, "CN=a", NULL, NULL, "x"));
    struct cm_page_row *exp = row_of(report("e", "critical", -1, "CN=a", NULL, NULL, "x"));
    struct cm_page_row *down = row_of(report("d", "critical", NO_CERT, "", NULL, NULL, "x"));
    struct cm_page_row *pend = cm_page_row_pending("p");
    struct cm_page_buf b = {0};

    EXPECT_INT(cm_page_render_badge(ok, NOW, &b), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, ">23 days</text>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "fill=\"#2e7d32\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "<title>a&lt;b&gt;: 23 days (ok)</title>"));
    CU_ASSERT(strncmp(b.data, "<svg xmlns=\"http://www.w3.org/2000/svg\"", 39) == 0);
    b.len = 0;
    EXPECT_INT(cm_page_render_badge(one, NOW, &b), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, ">1 day</text>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "fill=\"#a15c00\""));
    b.len = 0;
    EXPECT_INT(cm_page_render_badge(exp, NOW, &b), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, ">expired</text>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "fill=\"#c62828\""));
    b.len = 0;
    EXPECT_INT(cm_page_render_badge(down, NOW, &b), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, ">critical</text>"));
    b.len = 0;
    EXPECT_INT(cm_page_render_badge(pend, NOW, &b), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, ">not probed</text>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "fill=\"#616161\""));
    cm_page_buf_free(&b);
    cm_page_row_free(ok);
    cm_page_row_free(one);
    cm_page_row_free(exp);
    cm_page_row_free(down);
    cm_page_row_free(pend);
}

static void test_bad_reports(void)
{
    json_t *j = json_pack("{s:i}", "target", 5);

    CU_ASSERT_PTR_NULL(cm_page_row_new(j, NULL));
    CU_ASSERT_PTR_NULL(cm_page_row_new(j, "t"));
    CU_ASSERT_PTR_NULL(cm_page_row_new(NULL, NULL));
    json_decref(j);
    /* Wrong types everywhere: shown as absent, never a crash. */
    j = json_pack("{s:s, s:i, s:s, s:[i, s], s:i, s:s, s:i}", "target", "t", "status", 3,
                  "chain", "x", "findings", 1, "x", "labels", 7, "last_probe", "yesterday",
                  "tls", 4);
    struct cm_page_row *r = cm_page_row_new(j, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    struct cm_page_buf b = {0};
    struct cm_page_query q;
    cm_page_query_init(&q, 500);
    EXPECT_INT(cm_page_render_index((const struct cm_page_row *const *)&r, 1, &q, NULL, NOW, &b),
               0);
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "<span class=\"st st-unknown\">unknown</span>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "never"));
    b.len = 0;
    EXPECT_INT(cm_page_render_target(j, "", NULL, NULL, NOW, false, &b), 0);
    cm_page_buf_free(&b);
    cm_page_row_free(r);
    json_decref(j);
}

/* ---- The certificate history's timeline ---- */

/* The detail page of a report (leaf "ab12", 15 days left, last probe 2 minutes before NOW)
 * with hist as its history. Caller frees. */
static char *history_page(const char *name, const struct cm_page_history *hist)
{
    json_t *r = report(name, "ok", 15, "CN=www.example.test", NULL, NULL, "web");
    struct cm_page_buf b = {0};
    struct cm_page_info info = {"9.9", 1};

    EXPECT_INT(cm_page_render_target(r, NULL, hist, &info, NOW, false, &b), 0);
    json_decref(r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b.data);
    expect_inert(b.data, __LINE__);
    return b.data;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;

    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The number after attr=" in the first element after marker (from html on), or -1e9. */
static double attr_after(const char *html, const char *marker, const char *attr)
{
    const char *p = strstr(html, marker), *end;
    char key[32];

    if (!p)
        return -1e9;
    end = strchr(p, '>');
    snprintf(key, sizeof(key), " %s=\"", attr);
    p = strstr(p, key);
    return p && p < end ? strtod(p + strlen(key), NULL) : -1e9;
}

/* Every x, x1, x2 and width of the timeline's SVG, inside its 800-unit box; no NaN, no
 * infinity. */
static void expect_in_box(const char *html, unsigned line)
{
    const char *s = strstr(html, "<svg class=\"timeline\""), *e = s ? strstr(s, "</svg>") : NULL;
    static const char *const attrs[] = {" x=\"", " x1=\"", " x2=\"", " width=\""};

    expect_int(s && e, 1, "a timeline", line);
    if (!s || !e)
        return;
    expect_int(strstr(s, "nan") && strstr(s, "nan") < e, 0, "NaN in the timeline", line);
    expect_int(strstr(s, "inf") && strstr(s, "inf") < e, 0, "infinity in the timeline", line);
    for (size_t a = 0; a < 4; a++)
        for (const char *p = s; (p = strstr(p, attrs[a])) && p < e; p++) {
            double v = strtod(p + strlen(attrs[a]), NULL);
            expect_int(v >= 0 && v <= 800, 1, attrs[a], line);
        }
}

static struct cm_page_cert cert(const char *sha, const char *subject, long nb, long na, long fs,
                                long ls)
{
    return (struct cm_page_cert){.sha256 = sha,
                                 .subject = subject,
                                 .issuer = "CN=Test CA",
                                 .not_before = NOW + nb * DAY,
                                 .not_after = NOW + na * DAY,
                                 .first_seen = NOW + fs * DAY,
                                 .last_seen = NOW + ls * DAY};
}

static void test_history_empty(void)
{
    struct cm_page_history none = {0}, err = {.error = "database <locked>"};
    char *html;

    /* No state database: said so, nothing drawn. */
    html = history_page("t", NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "<h2 id=\"h-history\">Certificate history</h2>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "No history is kept"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "<code>global.state_file</code>"));
    CU_ASSERT_PTR_NULL(strstr(html, "class=\"timeline\""));
    free(html);
    /* A database with no row for the target: zero leaves. */
    html = history_page("t", &none);
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "No certificate has been recorded for this target yet."));
    CU_ASSERT_PTR_NULL(strstr(html, "class=\"timeline\""));
    CU_ASSERT_PTR_NULL(strstr(html, "id=\"history\""));
    free(html);
    /* A certificate file: the daemon records no history for it, whatever it is handed. */
    {
        json_t *r = report("file:/etc/ssl/a.pem", "ok", 15, "CN=a", NULL, NULL, "web");
        struct cm_page_cert c = cert("ab12", "CN=a", -60, 15, -59, -2);
        struct cm_page_history one = {&c, 1, NULL};
        struct cm_page_buf b = {0};
        json_object_set_new(r, "path", json_string("/etc/ssl/a.pem"));
        EXPECT_INT(cm_page_render_target(r, NULL, &one, NULL, NOW, false, &b), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "the leaves of certificate files are not recorded"));
        CU_ASSERT_PTR_NULL(strstr(b.data, "class=\"timeline\""));
        cm_page_buf_free(&b);
        json_decref(r);
    }
    /* A read error: its reason, escaped, and the rest of the page. */
    html = history_page("t", &err);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(html, "<p class=\"err\">The history could not be read: database &lt;locked&gt;"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "<h2 id=\"h-posture\">"));
    free(html);
}

static void test_history_one(void)
{
    /* The leaf the report shows, seen since 59 days ago, last stored 2 days ago. */
    struct cm_page_cert c = cert("ab12", "CN=www.example.test", -60, 15, -59, -2);
    struct cm_page_history h = {&c, 1, NULL};
    char *html = history_page("one", &h);
    double xnow, sx, sw;

    CU_ASSERT_PTR_NOT_NULL(strstr(html, "<p class=\"tl-summary\">1 certificate served since "
                                        "2026-11-17; current valid until 2027-01-30.</p>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "role=\"img\" aria-labelledby=\"tl-title tl-desc\">"
                                        "<title id=\"tl-title\">Certificates served by one"
                                        "</title><desc id=\"tl-desc\">1 certificate served since "
                                        "2026-11-17; current valid until 2027-01-30.</desc>"));
    EXPECT_INT(count(html, "<g class=\"tl-cert"), 1);
    EXPECT_INT(count(html, "<g class=\"tl-cert tl-current\""), 1);
    /* The tooltip: subject, fingerprint, validity, served up to the last probe (today). */
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "<title>CN=www.example.test\nSHA-256 ab12&#8230;\nvalid "
                                        "2026-11-16 to 2027-01-30\nserved 2026-11-17 to "
                                        "2027-01-15 (current)</title>"));
    /* The served bar ends at now, where the marker is. */
    xnow = attr_after(html, "<line class=\"tl-now\"", "x1");
    sx = attr_after(html, "<rect class=\"tl-served\"", "x");
    sw = attr_after(html, "<rect class=\"tl-served\"", "width");
    CU_ASSERT(xnow > 400 && xnow < 800);
    CU_ASSERT(sx > 0 && sx + sw > xnow - 1 && sx + sw < xnow + 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(html, ">now</text>"));
    CU_ASSERT(count(html, "<text class=\"tl-date\"") >= 2);
    /* The table under it, one row, marked current; no "older not shown". */
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "<table class=\"history\" id=\"history\">"));
    EXPECT_INT(count(html, "<tr class=\"tl-current\">"), 1);
    CU_ASSERT_PTR_NULL(strstr(html, "not shown"));
    /* No inline style anywhere (the CSP forbids it): classes only. */
    CU_ASSERT_PTR_NULL(strstr(html, "style="));
    expect_in_box(html, __LINE__);
    free(html);
}

static void test_history_three(void)
{
    /* Newest first, as the store reads them: the current leaf, a renewal's predecessor, and
     * one that was served after it expired. */
    struct cm_page_cert c[3] = {
        cert("ab12", "CN=www.example.test", -60, 15, -59, -2),
        cert("cd34", "CN=www.example.test", -150, -50, -140, -60),
        cert("ef56", "CN=old.example.test", -300, -200, -299, -140),
    };
    struct cm_page_history h = {c, 3, NULL};
    char *html = history_page("three", &h);
    double x[3], xnow = attr_after(html, "<line class=\"tl-now\"", "x1");
    const char *p = html;

    CU_ASSERT_PTR_NOT_NULL(strstr(html, "3 certificates served since 2026-03-22; current valid "
                                        "until 2027-01-30.</desc>"));
    EXPECT_INT(count(html, "<g class=\"tl-cert"), 3);
    EXPECT_INT(count(html, "<g class=\"tl-cert tl-current\" id=\"tl-cert-0\""), 1);
    /* Bars in the order given, each served span starting right of the older one's. */
    for (int i = 0; i < 3; i++) {
        p = strstr(p, "<rect class=\"tl-served\"");
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        x[i] = attr_after(p, "<rect class=\"tl-served\"", "x");
        p++;
    }
    CU_ASSERT(x[2] < x[1] && x[1] < x[0] && x[0] < xnow);
    /* The two expired leaves are marked so, the current one is not. */
    EXPECT_INT(count(html, "<rect class=\"tl-valid tl-expired\""), 2);
    EXPECT_INT(count(html, "<span class=\"d-expired\">(expired)</span>"), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "<title>CN=old.example.test\nSHA-256 ef56&#8230;\nvalid "
                                        "2026-03-21 to 2026-06-29\nserved 2026-03-22 to "
                                        "2026-08-28</title>"));
    /* The axis spans about ten months: a date every two months, on the first. */
    {
        size_t ticks = 0;
        for (const char *q = html; (q = strstr(q, "<text class=\"tl-date\"")); q++) {
            const char *t = strchr(q, '>') + 1;
            ticks++;
            CU_ASSERT(strncmp(t + 7, "-01</text>", 10) == 0);
            CU_ASSERT((atoi(t + 5) - 1) % 2 == 0);
        }
        CU_ASSERT(ticks >= 4 && ticks <= 7);
    }
    /* The table lists them newest first. */
    CU_ASSERT(strstr(html, "<code class=\"fp\">ab12</code>") <
              strstr(html, "<code class=\"fp\">cd34</code>"));
    CU_ASSERT(strstr(html, "<code class=\"fp\">cd34</code>") <
              strstr(html, "<code class=\"fp\">ef56</code>"));
    expect_in_box(html, __LINE__);
    free(html);
}

static void test_history_hostile(void)
{
    /* Certificate text ends the SVG and opens a script, in the subject, the issuer and the
     * fingerprint; the target name too. None of it may become markup. */
    struct cm_page_cert c =
        cert("</svg><script>window.__pwned=1</script>",
             "CN=</svg><script>window.__pwned=1</script>" HOSTILE_CN, -10, 80, -9, -1);
    struct cm_page_history h = {&c, 1, NULL};
    char *html;

    c.issuer = "CN=\"><img src=x onerror=alert(1)>";
    html = history_page("</title></svg><script>window.__pwned=1</script>", &h);
    CU_ASSERT_PTR_NULL(strstr(html, "</svg><script"));
    CU_ASSERT_PTR_NULL(strstr(html, "</title></svg>"));
    /* Every <svg> the page opens, it closes itself: foreign text closed none of them. */
    EXPECT_INT(count(html, "<svg "), count(html, "</svg>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "<title>CN=&lt;/svg&gt;&lt;script&gt;window.__pwned=1"
                                        "&lt;/script&gt;&lt;script&gt;"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "SHA-256 &lt;/svg&gt;&lt;script&gt;wi&#8230;"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "Certificates served by &lt;/title&gt;&lt;/svg&gt;"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "<td class=\"c-issuer\">CN=&quot;&gt;&lt;img src=x "));
    free(html);
}

static void test_history_bounds(void)
{
    enum { N = CM_PAGE_HISTORY_MAX + 10 };
    struct cm_page_cert c[N], wild[2];
    struct cm_page_history h = {c, N, NULL};
    char sha[N][8], *html;

    /* A weekly rotation, newest first: only the newest CM_PAGE_HISTORY_MAX are drawn. */
    for (int i = 0; i < N; i++) {
        snprintf(sha[i], sizeof(sha[i]), "%04d", i);
        c[i] = cert(sha[i], "CN=rot.example.test", -7 * i - 1, -7 * i + 8, -7 * i, -7 * i + 7);
    }
    c[0].sha256 = "ab12";
    html = history_page("rot", &h);
    EXPECT_INT(count(html, "<g class=\"tl-cert"), CM_PAGE_HISTORY_MAX);
    EXPECT_INT(count(strstr(html, "id=\"history\""), "<code class=\"fp\">"), CM_PAGE_HISTORY_MAX);
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "<p class=\"tl-more\">10 older certificates not shown."));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "60 certificates served since 2025-11-28; current valid "
                                        "until 2027-01-23; the newest 50 shown.</desc>"));
    CU_ASSERT_PTR_NULL(strstr(html, ">0050</code>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, ">0049</code>"));
    CU_ASSERT(count(html, "<text class=\"tl-date\"") <= 8);
    expect_in_box(html, __LINE__);
    free(html);

    /* Times at the ends of int64 (a hostile or broken certificate) and a leaf not the
     * report's: drawn inside the box, the axis stays on what was served. */
    wild[0] = cert("ffff", "CN=wild", 0, 0, -3, -1);
    wild[0].not_before = INT64_MIN;
    wild[0].not_after = INT64_MAX;
    wild[1] = cert("eeee", "CN=wild", 0, 0, -5, -4);
    wild[1].not_before = wild[1].not_after = 0;
    h = (struct cm_page_history){wild, 2, NULL};
    html = history_page("wild", &h);
    EXPECT_INT(count(html, "<g class=\"tl-cert"), 2);
    EXPECT_INT(count(html, "tl-current"), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "2 certificates served since 2027-01-10.</desc>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "valid 0001-01-01 to 9999-12-31"));
    expect_in_box(html, __LINE__);
    free(html);

    /* Everything within 20 hours (a one-hour certificate, served for an hour, 19 hours ago):
     * the axis is the day around it, and now is inside it, right of the bar. */
    wild[0] = cert("ab12", "CN=short", 0, 0, 0, 0);
    wild[0].not_before = wild[0].first_seen = NOW - 20 * 3600;
    wild[0].not_after = wild[0].last_seen = NOW - 19 * 3600;
    h = (struct cm_page_history){wild, 1, NULL};
    html = history_page("short", &h);
    {
        double xnow = attr_after(html, "<line class=\"tl-now\"", "x1");
        double sx = attr_after(html, "<rect class=\"tl-served\"", "x");
        CU_ASSERT(xnow > sx + 20 && xnow < 800 - 12 - 20);
    }
    expect_in_box(html, __LINE__);
    free(html);
}

/* Wall and CPU milliseconds of one render (CPU time is what the loop loses; wall time also
 * counts other processes on a shared machine). */
static void time_render(const char *what, struct cm_page_row **rows, size_t n,
                        const struct cm_page_query *q, struct cm_page_buf *b)
{
    struct timespec w0, w1, c0, c1;

    clock_gettime(CLOCK_MONOTONIC, &w0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    EXPECT_INT(cm_page_render_index((const struct cm_page_row *const *)rows, n, q, NULL, NOW, b),
               0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    fprintf(stderr, "  %s: %.1f ms wall, %.1f ms CPU, %zu bytes\n", what,
            (w1.tv_sec - w0.tv_sec) * 1e3 + (w1.tv_nsec - w0.tv_nsec) / 1e6,
            (c1.tv_sec - c0.tv_sec) * 1e3 + (c1.tv_nsec - c0.tv_nsec) / 1e6, b->len);
}

/* Not a test of the budget (tests/bench/page_bench.sh measures the daemon): shows the cost in
 * the log. */
static void test_timing(void)
{
    enum { N = 10000 };
    struct cm_page_row **rows = calloc(N, sizeof(*rows));
    struct cm_page_query q;
    struct cm_page_buf b = {0};
    char name[64];

    CU_ASSERT_PTR_NOT_NULL_FATAL(rows);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "host-%05d.example.test:443", i);
        rows[i] = row_of(report(name, i % 7 ? "ok" : "warning", (i * 37) % 400 - 5,
                                "CN=host.example.test", i % 7 ? NULL : "cert.expiring", "warning",
                                i % 2 ? "web" : "db"));
    }
    fprintf(stderr, "\n");
    cm_page_query_init(&q, N);
    time_render("10,000 targets on one page, fresh memory", rows, N, &q, &b);
    b.len = 0;
    time_render("the same into a reused buffer", rows, N, &q, &b);
    cm_page_buf_free(&b);
    cm_page_query_init(&q, 500);
    time_render("10,000 targets, one page of 500", rows, N, &q, &b);
    cm_page_buf_free(&b);
    EXPECT_INT(cm_page_query_set(&q, "q", "host-0999", NULL, 0), 0);
    time_render("10,000 targets, text filter", rows, N, &q, &b);
    cm_page_buf_free(&b);
    for (int i = 0; i < N; i++)
        cm_page_row_free(rows[i]);
    free(rows);

    /* A detail page with a full timeline (CM_PAGE_HISTORY_MAX bars, more left out). */
    {
        enum { H = CM_PAGE_HISTORY_MAX + 10 };
        struct cm_page_cert c[H];
        struct cm_page_history h = {c, H, NULL};
        json_t *r = report("t", "ok", 15, "CN=www.example.test", NULL, NULL, "web");
        struct timespec c0, c1;
        for (int i = 0; i < H; i++)
            c[i] = cert("ab12", "CN=www.example.test", -30 * i - 1, -30 * i + 60, -30 * i,
                        -30 * i + 29);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        EXPECT_INT(cm_page_render_target(r, NULL, &h, NULL, NOW, false, &b), 0);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        fprintf(stderr, "  detail page with %d history bars: %.2f ms CPU, %zu bytes\n",
                CM_PAGE_HISTORY_MAX,
                (c1.tv_sec - c0.tv_sec) * 1e3 + (c1.tv_nsec - c0.tv_nsec) / 1e6, b.len);
        cm_page_buf_free(&b);
        json_decref(r);
    }
}

/* Heap bytes a row holds (malloc's chunk overhead included, as the daemon's RSS sees it), for
 * a typical report: printed, since glibc's allocator decides the rounding (issue 14's budget:
 * 100,000 targets under 200 MiB, every target with a row). Measured with the name copied and
 * borrowed from the caller (the daemon's rows borrow the state entry's). */
static void test_row_memory(void)
{
    enum { N = 10000, NAME = 64 };
    struct cm_page_row **rows = calloc(N, sizeof(*rows));
    char *names = calloc(N, NAME); /* the caller's names: outside the measure */
    json_t *r =
        report("x", "warning", 20, "CN=host.example.test", "cert.expiring", "warning", "web");

    CU_ASSERT_PTR_NOT_NULL_FATAL(rows);
    CU_ASSERT_PTR_NOT_NULL_FATAL(names);
    for (int i = 0; i < N; i++)
        snprintf(names + (size_t)i * NAME, NAME, "host-%05d.example.test:443", i);
    for (int borrow = 0; borrow < 2; borrow++) {
        size_t before = cm_th_heap_used();
        for (int i = 0; i < N; i++) {
            const char *name = names + (size_t)i * NAME;
            json_object_set_new(r, "target", json_string(name));
            rows[i] = cm_page_row_new(r, borrow ? name : NULL);
            CU_ASSERT_PTR_NOT_NULL_FATAL(rows[i]);
        }
        cm_th_print_heap(borrow ? "a row of a typical report, name borrowed"
                                : "a row of a typical report, name copied",
                         before, N);
        for (int i = 0; i < N; i++)
            cm_page_row_free(rows[i]);
    }
    free(names);
    free(rows);
    json_decref(r);
}

/* The texts a fleet's rows repeat (issuer, TLS version, finding id and message) are held once
 * for all of them and given back with the last row; the page shows each row's own. */
static void test_row_shared_texts(void)
{
    size_t c0 = cm_intern_count();
    json_t *j = report("a.example.test:443", "warning", 20, "CN=a.example.test", "cert.expiring",
                       "warning", "web");
    struct cm_page_row *rows[3];
    struct cm_page_query q;
    char *html;

    rows[0] = cm_page_row_new(j, NULL);
    /* issuer, version, finding id, finding message (the report's message is its subject) */
    EXPECT_INT(cm_intern_count(), c0 + 4);
    json_object_set_new(j, "target", json_string("b.example.test:443"));
    rows[1] = cm_page_row_new(j, NULL);
    EXPECT_INT(cm_intern_count(), c0 + 4);
    json_decref(j);
    j = report("c.example.test:443", "warning", 20, "CN=c.example.test", "cert.expiring",
               "warning", "web");
    rows[2] = cm_page_row_new(j, NULL);
    json_decref(j);
    EXPECT_INT(cm_intern_count(), c0 + 5); /* another message */
    for (int i = 0; i < 3; i++)
        CU_ASSERT_PTR_NOT_NULL_FATAL(rows[i]);
    cm_page_query_init(&q, 500);
    html = render_index(rows, 3, &q);
    CU_ASSERT(strstr(html, "CN=a.example.test") && strstr(html, "CN=c.example.test"));
    CU_ASSERT(strstr(html, "CN=Test CA &quot;quoted&quot;") != NULL);
    free(html);
    cm_page_row_free(rows[0]);
    EXPECT_INT(cm_intern_count(), c0 + 5);
    cm_page_row_free(rows[1]);
    EXPECT_INT(cm_intern_count(), c0 + 4); /* the last row's four */
    cm_page_row_free(rows[2]);
    EXPECT_INT(cm_intern_count(), c0);
}

/* A row points at the name its caller keeps only when that is the report's target; another
 * text never replaces the report's (the page shows what the report says). */
static void test_row_borrowed_name(void)
{
    json_t *j = report("web.example.test:443", "ok", 80, "CN=web.example.test", NULL, NULL, "web");
    char kept[] = "web.example.test:443", other[] = "elsewhere.example.test:443";
    struct cm_page_row *a = cm_page_row_new(j, kept), *b = cm_page_row_new(j, other),
                       *c = cm_page_row_new(j, NULL);
    struct cm_page_query q;
    char *html;

    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_EQUAL(cm_page_row_name(a), kept);
    CU_ASSERT_STRING_EQUAL(cm_page_row_name(b), "web.example.test:443");
    CU_ASSERT_STRING_EQUAL(cm_page_row_name(c), "web.example.test:443");
    CU_ASSERT_PTR_NOT_EQUAL(cm_page_row_name(c), kept);
    /* The borrowed name is what the list shows and links to. */
    cm_page_query_init(&q, 50);
    html = render_index(&a, 1, &q);
    CU_ASSERT_PTR_NOT_NULL(strstr(html, "href=\"/target/web.example.test%3A443\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(html, ">web.example.test:443<"));
    free(html);
    cm_page_row_free(a);
    cm_page_row_free(b);
    cm_page_row_free(c);
    json_decref(j);
}

static CU_TestInfo tests[] = {
    {"html escape", test_html_escape},
    {"url encode", test_url_encode},
    {"urgency order and sorting", test_urgency_order},
    {"filters", test_filters},
    {"query errors", test_query_errors},
    {"pagination", test_pagination},
    {"hostile text in the list", test_hostile_list},
    {"target page", test_target_page},
    {"badge", test_badge},
    {"malformed reports", test_bad_reports},
    {"history: none, not kept, unreadable", test_history_empty},
    {"history: one leaf", test_history_one},
    {"history: three leaves", test_history_three},
    {"history: hostile certificate text", test_history_hostile},
    {"history: bounds and extreme times", test_history_bounds},
    {"timing (printed)", test_timing},
    {"row memory (printed)", test_row_memory},
    {"rows share the texts a fleet repeats", test_row_shared_texts},
    {"row borrows the kept name", test_row_borrowed_name},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("page", tests, NULL, NULL);
}
