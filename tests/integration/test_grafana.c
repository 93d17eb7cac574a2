/* The Grafana dashboard (contrib/grafana/certmon.json) against a real Prometheus fed with
 * certmon's own output: certmon runs on TLS servers of the test PKI (a trusted chain, a
 * self-signed one, a refused port), a certificate file and a webhook notifier; Debian's
 * prometheus scrapes it every second; then every PromQL expression of every panel, and every
 * template variable's query, is sent to Prometheus's query API with the dashboard's variables
 * as Grafana would fill them ("All"): each must parse and return data. */
#include "cmtest.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

static char dir[256];
static int port_valid, port_self, port_http, port_prom;
static pid_t pid_valid, pid_self, pid_daemon, pid_prom;

static const char *path_in(const char *name)
{
    static char bufs[8][512];
    static unsigned k;
    char *b = bufs[k++ % 8];

    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

struct body {
    char *data;
    size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    char *nd = realloc(b->data, b->len + size * n + 1);

    if (!nd)
        return 0;
    memcpy(nd + b->len, p, size * n);
    b->data = nd;
    b->len += size * n;
    b->data[b->len] = '\0';
    return size * n;
}

/* Asks Prometheus for the instant value of a PromQL expression. Returns the parsed answer
 * (caller decrefs) or NULL when there was no HTTP answer at all. */
static json_t *prom_query(const char *expr)
{
    CURL *c = curl_easy_init();
    struct body b = {0};
    char *q = curl_easy_escape(c, expr, 0), url[8192];
    json_t *j = NULL;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/query?query=%s", port_prom, q);
    curl_free(q);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (curl_easy_perform(c) == CURLE_OK && b.data)
        j = json_loads(b.data, 0, NULL);
    curl_easy_cleanup(c);
    free(b.data);
    return j;
}

/* The expression with the dashboard's variables as Grafana fills them when "All" is chosen
 * (allValue ".+"), and its interval macros. NULL (a failure) for a variable it does not know:
 * the dashboard and this test must agree. */
static char *fill(const char *expr)
{
    static const struct {
        const char *var, *value;
    } vars[] = {
        {"$__rate_interval", "15s"}, {"${job}", ".+"},  {"$job", ".+"},
        {"${target}", ".+"},         {"$target", ".+"},
    };
    char *out = malloc(strlen(expr) * 4 + 1), *o = out;

    for (const char *p = expr; *p;) {
        size_t i;
        if (*p != '$') {
            *o++ = *p++;
            continue;
        }
        for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
            size_t n = strlen(vars[i].var);
            if (!strncmp(p, vars[i].var, n)) {
                o = stpcpy(o, vars[i].value);
                p += n;
                break;
            }
        }
        if (i == sizeof(vars) / sizeof(vars[0])) {
            fprintf(stderr, "\n  unknown variable in '%s'", expr);
            free(out);
            return NULL;
        }
    }
    *o = '\0';
    return out;
}

/* Grafana's label_values(SELECTOR, LABEL) as PromQL: the label's values are those of
 * count by (LABEL) (SELECTOR). Other expressions are returned as they are. */
static char *grafana_query(const char *q)
{
    char *out = NULL;
    const char *comma;

    if (strncmp(q, "label_values(", 13) != 0 || !(comma = strrchr(q, ',')))
        return strdup(q);
    size_t len = strlen(comma + 1);
    while (len && (comma[len] == ')' || comma[len] == ' '))
        len--;
    const char *label = comma + 1;
    while (*label == ' ')
        label++, len--;
    if (asprintf(&out, "count by (%.*s) (%.*s)", (int)len, label, (int)(comma - q - 13), q + 13) <
        0)
        return NULL;
    return out;
}

struct expr {
    char *where; /* panel title / variable name */
    char *promql;
};

static struct expr *exprs;
static size_t nexprs;

static void add_expr(const char *where, const char *q)
{
    char *g = grafana_query(q), *f = g ? fill(g) : NULL;

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    exprs = realloc(exprs, (nexprs + 1) * sizeof(*exprs));
    exprs[nexprs].where = strdup(where);
    exprs[nexprs].promql = f;
    nexprs++;
    free(g);
}

static void collect_panels(json_t *panels, unsigned *rows)
{
    size_t i, k;
    json_t *p, *t;

    json_array_foreach(panels, i, p)
    {
        const char *title = json_string_value(json_object_get(p, "title"));
        const char *type = json_string_value(json_object_get(p, "type"));
        CU_ASSERT_PTR_NOT_NULL(title);
        if (type && !strcmp(type, "row")) {
            (*rows)++;
            collect_panels(json_object_get(p, "panels"), rows);
            continue;
        }
        /* Every panel queries the dashboard's Prometheus input. */
        EXPECT_STR(cm_json_str(p, "datasource.uid"), "${DS_PROMETHEUS}");
        CU_ASSERT(json_array_size(json_object_get(p, "targets")) > 0);
        json_array_foreach(json_object_get(p, "targets"), k, t)
        {
            const char *e = json_string_value(json_object_get(t, "expr"));
            CU_ASSERT_PTR_NOT_NULL(e);
            if (e)
                add_expr(title ? title : "?", e);
        }
    }
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    if (fp) {
        fputs(text, fp);
        fclose(fp);
    }
}

static int suite_init(void)
{
    char conf[4096], prom[1024], listen[64];

    snprintf(dir, sizeof(dir), "/tmp/certmon-grafana-XXXXXX");
    if (!mkdtemp(dir) || !cm_th_pki_dir())
        return -1;
    port_valid = cm_th_free_port();
    port_self = cm_th_free_port();
    port_http = cm_th_free_port();
    port_prom = cm_th_free_port();
    pid_valid = cm_th_s_server(port_valid, "valid.pem", "leaf.key", true);
    pid_self = cm_th_s_server(port_self, "self.pem", "self.key", false);
    if (pid_valid < 0 || pid_self < 0)
        return -1;
    /* The webhook's port refuses: deliveries fail, and are counted. */
    snprintf(conf, sizeof(conf),
             "global = { interval = \"2s\"; startup_spread = \"0s\"; retry_interval = \"1s\"; "
             "state_file = \"state.json\"; };\n"
             "targets = (\n"
             "  { host = \"localhost\"; port = %d; ca_file = \"%s\"; name = \"valid\"; },\n"
             "  { host = \"127.0.0.1\"; port = %d; name = \"selfsigned\"; },\n"
             "  { host = \"127.0.0.1\"; port = %d; name = \"refused\"; posture = false; }\n"
             ");\n"
             "files = ( { path = \"%s\"; } );\n"
             "notifiers = ( { name = \"hook\"; type = \"webhook\"; url = "
             "\"http://127.0.0.1:%d/hook\"; group_wait = \"0s\"; timeout = \"1s\"; } );\n"
             "metrics = { listen = \"127.0.0.1:%d\"; };\n",
             port_valid, cm_th_pki("root.pem"), port_self, cm_th_free_port(),
             cm_th_pki("valid.pem"), cm_th_free_port(), port_http);
    write_file(path_in("certmon.conf"), conf);
    char *argv[] = {(char *)cm_th_certmon(), "run", "-c", (char *)path_in("certmon.conf"), NULL};
    pid_daemon = cm_th_spawn(argv, path_in("certmon.log"));
    if (pid_daemon < 0 || !cm_th_wait_port(port_http, (int)(10000 * CERTMON_SLOWDOWN)))
        return -1;
    snprintf(prom, sizeof(prom),
             "global: { scrape_interval: 1s, evaluation_interval: 1s }\n"
             "scrape_configs:\n"
             "  - job_name: certmon\n"
             "    static_configs: [ { targets: [ '127.0.0.1:%d' ] } ]\n",
             port_http);
    write_file(path_in("prometheus.yml"), prom);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port_prom);
    char *pargv[] = {"prometheus",
                     "--config.file",
                     (char *)path_in("prometheus.yml"),
                     "--storage.tsdb.path",
                     (char *)path_in("prom-data"),
                     "--web.listen-address",
                     listen,
                     NULL};
    pid_prom = cm_th_spawn(pargv, path_in("prometheus.log"));
    return pid_prom > 0 && cm_th_wait_port(port_prom, 20000) ? 0 : -1;
}

static int suite_cleanup(void)
{
    char *argv[] = {"rm", "-rf", dir, NULL}, *out = NULL;

    cm_th_stop(pid_prom);
    cm_th_stop(pid_daemon);
    cm_th_stop(pid_valid);
    cm_th_stop(pid_self);
    cm_th_run(argv, &out, 30, NULL);
    free(out);
    for (size_t i = 0; i < nexprs; i++) {
        free(exprs[i].where);
        free(exprs[i].promql);
    }
    free(exprs);
    return 0;
}

static void test_dashboard_shape(void)
{
    json_error_t je;
    json_t *d = json_load_file(CERTMON_GRAFANA_JSON, 0, &je), *v;
    unsigned rows = 0;
    size_t i;

    if (!d)
        fprintf(stderr, "\n  %s:%d: %s", CERTMON_GRAFANA_JSON, je.line, je.text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    EXPECT_STR(cm_json_str(d, "uid"), "certmon");
    EXPECT_STR(cm_json_str(d, "__inputs.0.name"), "DS_PROMETHEUS");
    collect_panels(json_object_get(d, "panels"), &rows);
    EXPECT_INT(rows, 3); /* fleet overview, per target, notifiers and certmon */
    json_array_foreach(cm_json_get(d, "templating.list"), i, v)
    {
        const char *q = cm_json_str(v, "query.query");
        CU_ASSERT_PTR_NOT_NULL(q);
        if (q)
            add_expr(json_string_value(json_object_get(v, "name")), q);
    }
    CU_ASSERT(nexprs >= 20);
    json_decref(d);
}

/* Each expression parses (status success) and, once certmon has been scraped for a while,
 * returns at least one series. Rates need two samples of a counter that moved, posture data a
 * finished pass, notifier counts a failed delivery: waited for, at most 60 s in all. */
static void test_every_query_returns_data(void)
{
    double end = cm_th_now() + 60 * CERTMON_SLOWDOWN;
    size_t done = 0;
    bool *ok = calloc(nexprs ? nexprs : 1, sizeof(bool));

    CU_ASSERT_FATAL(nexprs > 0);
    while (done < nexprs && cm_th_now() < end) {
        for (size_t i = 0; i < nexprs; i++) {
            if (ok[i])
                continue;
            json_t *j = prom_query(exprs[i].promql);
            const char *status = cm_json_str(j, "status");
            if (status && strcmp(status, "success") != 0) {
                /* A parse error does not get better by waiting. */
                fprintf(stderr, "\n  %s: %s: %s", exprs[i].where, exprs[i].promql,
                        cm_json_str(j, "error"));
                CU_FAIL("a dashboard query does not parse");
                ok[i] = true;
                done++;
            } else if (status && json_array_size(cm_json_get(j, "data.result")) > 0) {
                ok[i] = true;
                done++;
            }
            json_decref(j);
        }
        if (done < nexprs)
            usleep(500000);
    }
    for (size_t i = 0; i < nexprs; i++) {
        if (!ok[i]) {
            fprintf(stderr, "\n  no data for %s: %s", exprs[i].where, exprs[i].promql);
            CU_FAIL("a dashboard query returns no data");
        }
    }
    free(ok);
}

/* The values are certmon's: the fleet's status counts and the refused target failing. */
static void test_values(void)
{
    json_t *j = prom_query("sum by (status) (certmon_status{job=~\".+\", target=~\".+\"})");
    size_t i;
    json_t *r;
    double sum = 0;

    json_array_foreach(cm_json_get(j, "data.result"), i, r)
    {
        sum += atof(cm_json_str(r, "value.1") ? cm_json_str(r, "value.1") : "0");
    }
    EXPECT_INT((long long)sum, 4); /* three endpoints and one file, one status each */
    json_decref(j);
    j = prom_query("count(certmon_probe_success{job=~\".+\", target=~\".+\"} == 0) or vector(0)");
    EXPECT_STR(cm_json_str(j, "data.result.0.value.1"), "1");
    json_decref(j);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"dashboard: rows, panels, datasource input, variables", test_dashboard_shape},
        {"every query parses and returns data from certmon's metrics",
         test_every_query_returns_data},
        {"values match the configured fleet", test_values},
        CU_TEST_INFO_NULL,
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cm_test_main("integration.grafana", tests, suite_init, suite_cleanup);
    curl_global_cleanup();
    return rc;
}
