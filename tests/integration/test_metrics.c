/* The daemon's HTTP endpoints as Prometheus and an operator see them: /metrics checked by
 * promtool and scraped by a real Prometheus (Debian's prometheus, on 127.0.0.1 with its own
 * storage), values compared with the certificates to the second; /probe, /api/v1/targets,
 * /healthz; a TLS listener that demands client certificates; bad requests. */
#include "cmtest.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

static char dir[256];
static int port_valid, port_self, port_http, port_https;
static pid_t pid_valid, pid_self, pid_daemon, pid_tls_daemon;
static char valid_name[64];

static void write_file(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void write_file(const char *path, const char *fmt, ...)
{
    FILE *fp = fopen(path, "w");
    va_list ap;

    if (!fp)
        return;
    va_start(ap, fmt);
    vfprintf(fp, fmt, ap);
    va_end(ap);
    fclose(fp);
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

/* GETs url; returns the HTTP status (0 when no response: refused, TLS failure) and the body
 * in *out (caller frees). cacert/cert/key may be NULL. */
static long http_get(const char *url, char **out, const char *cacert, const char *cert,
                     const char *key)
{
    CURL *c = curl_easy_init();
    struct body b = {NULL, 0};
    long status = 0;

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    if (cacert)
        curl_easy_setopt(c, CURLOPT_CAINFO, cacert);
    if (cert) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, cert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, key);
    }
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (out)
        *out = b.data ? b.data : strdup("");
    else
        free(b.data);
    return status;
}

static long get_local(const char *path, char **out)
{
    char url[1100]; /* callers pass paths of up to 1 KiB (queries with escaped names) */

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port_http, path);
    return http_get(url, out, NULL, NULL, NULL);
}

/* The value of the sample whose name and labels (in the exposition's order) start with
 * prefix, e.g. `certmon_probe_success{target="x"`; NAN when absent. */
static double sample(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);

    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (!strncmp(p, prefix, n)) {
            const char *sp = strchr(p, '}');
            sp = sp ? sp + 1 : p + n;
            return strtod(sp, NULL);
        }
    }
    return NAN;
}

static int run_sh(const char *cmd, char **out)
{
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};

    return cm_th_run(argv, out, 60, NULL);
}

/* Unix time of a certificate's notAfter/notBefore, read by openssl. */
static int64_t cert_time(const char *pem, const char *which)
{
    char cmd[600], *out = NULL;
    struct tm tm = {0};
    int64_t t = -1;

    snprintf(cmd, sizeof(cmd), "openssl x509 -noout -%s -dateopt iso_8601 -in '%s'", which,
             cm_th_pki(pem));
    if (run_sh(cmd, &out) == 0) {
        const char *eq = strchr(out, '=');
        if (eq && strptime(eq + 1, "%Y-%m-%d %H:%M:%SZ", &tm))
            t = (int64_t)timegm(&tm);
    }
    free(out);
    return t;
}

static bool wait_for_metric(const char *prefix, double timeout_s)
{
    double end = cm_th_now() + timeout_s * CERTMON_SLOWDOWN;

    do {
        char *m = NULL;
        bool ok = get_local("/metrics", &m) == 200 && !isnan(sample(m, prefix));
        free(m);
        if (ok)
            return true;
        usleep(100000);
    } while (cm_th_now() < end);
    return false;
}

/* ---- Suite ---- */

static int suite_init(void)
{
    char conf[1024];

    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* A server may answer an oversized request and close while we still write it. */
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof(dir), "/tmp/certmon-metrics-XXXXXX");
    if (!mkdtemp(dir) || !cm_th_pki_dir())
        return -1;
    port_valid = cm_th_free_port();
    port_self = cm_th_free_port();
    port_http = cm_th_free_port();
    port_https = cm_th_free_port();
    snprintf(valid_name, sizeof(valid_name), "localhost:%d", port_valid);
    pid_valid = cm_th_s_server(port_valid, "valid.pem", "leaf.key", true);
    pid_self = cm_th_s_server(port_self, "self.pem", "self.key", false);
    if (pid_valid < 0 || pid_self < 0 || !cm_th_wait_port(port_valid, 5000) ||
        !cm_th_wait_port(port_self, 5000))
        return -1;
    snprintf(conf, sizeof(conf), "%s", cm_th_path(dir, "daemon.conf"));
    write_file(conf,
               "global = { interval = \"1h\"; timeout = \"5s\"; startup_spread = \"0s\";\n"
               "           state_file = \"state.json\"; };\n"
               "log = { level = \"debug\"; };\n"
               "metrics = { listen = \"127.0.0.1:%d\"; };\n"
               "targets = (\n"
               "  { host = \"localhost\"; port = %d; ca_file = \"%s\";\n"
               "    labels = { team = \"web\"; env = \"te\\\"st\"; }; },\n"
               "  { host = \"127.0.0.1\"; port = %d; name = \"selfsigned\"; posture = false; }\n"
               ");\n"
               "files = ( { path = \"%s\"; } );\n",
               port_http, port_valid, cm_th_pki("root.pem"), port_self, cm_th_pki("expiring20.pem"));
    char *argv[] = {(char *)cm_th_certmon(), "run", "-c", conf, NULL};
    pid_daemon = cm_th_spawn(argv, cm_th_path(dir, "daemon.log"));
    if (pid_daemon < 0 || !cm_th_wait_port(port_http, 15000))
        return -1;
    return 0;
}

static int suite_cleanup(void)
{
    cm_th_stop(pid_daemon);
    cm_th_stop(pid_tls_daemon);
    cm_th_stop(pid_valid);
    cm_th_stop(pid_self);
    char *out = NULL, cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    run_sh(cmd, &out);
    free(out);
    curl_global_cleanup();
    return 0;
}

/* ---- Tests ---- */

static void test_metrics_values(void)
{
    char prefix[300], *m = NULL;
    char file_target[600];
    int64_t not_after = cert_time("valid.pem", "enddate");
    int64_t not_before = cert_time("valid.pem", "startdate");

    CU_ASSERT_FATAL(not_after > 0 && not_before > 0);
    snprintf(prefix, sizeof(prefix), "certmon_probe_success{target=\"%s\"", valid_name);
    CU_ASSERT_FATAL(wait_for_metric(prefix, 15));
    snprintf(file_target, sizeof(file_target), "certmon_probe_success{target=\"file:%s\"",
             cm_th_pki("expiring20.pem"));
    CU_ASSERT(wait_for_metric(file_target, 15));
    CU_ASSERT(wait_for_metric("certmon_probe_success{target=\"selfsigned\"", 15));
    EXPECT_INT(get_local("/metrics", &m), 200);

    /* The labels: target first, then the configured ones by name, escaped. */
    snprintf(prefix, sizeof(prefix),
             "certmon_probe_success{target=\"%s\",env=\"te\\\"st\",team=\"web\"}", valid_name);
    EXPECT_INT(sample(m, prefix), 1);
    snprintf(prefix, sizeof(prefix),
             "certmon_cert_not_after_timestamp_seconds{target=\"%s\",env=\"te\\\"st\",team=\"web\","
             "position=\"0\"}",
             valid_name);
    EXPECT_INT((int64_t)sample(m, prefix), not_after);
    snprintf(prefix, sizeof(prefix),
             "certmon_cert_not_before_timestamp_seconds{target=\"%s\",env=\"te\\\"st\",team=\"web\","
             "position=\"0\"}",
             valid_name);
    EXPECT_INT((int64_t)sample(m, prefix), not_before);
    snprintf(prefix, sizeof(prefix), "certmon_verify_ok{target=\"%s\"", valid_name);
    EXPECT_INT(sample(m, prefix), 1);
    snprintf(prefix, sizeof(prefix), "certmon_status{target=\"%s\",env=\"te\\\"st\",team=\"web\","
                                     "status=\"ok\"}",
             valid_name);
    EXPECT_INT(sample(m, prefix), 1);
    /* The self-signed one: critical, a finding, verification failed. */
    EXPECT_INT(sample(m, "certmon_verify_ok{target=\"selfsigned\"}"), 0);
    EXPECT_INT(sample(m, "certmon_finding{target=\"selfsigned\",id=\"chain.self_signed\""), 1);
    EXPECT_INT(sample(m, "certmon_status{target=\"selfsigned\",status=\"critical\"}"), 1);
    EXPECT_INT(sample(m, "certmon_status{target=\"selfsigned\",status=\"ok\"}"), 0);
    /* The file target: expiry, and the chain expiry. */
    snprintf(prefix, sizeof(prefix), "certmon_chain_expiry_timestamp_seconds{target=\"file:%s\"}",
             cm_th_pki("expiring20.pem"));
    EXPECT_INT((int64_t)sample(m, prefix), cert_time("expiring20.pem", "enddate"));
    /* Self metrics. */
    CU_ASSERT(sample(m, "certmon_probes_total{result=\"success\"}") >= 2);
    EXPECT_INT(sample(m, "certmon_config_last_reload_success"), 1);
    CU_ASSERT(sample(m, "process_resident_memory_bytes") > 1e6);
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "certmon_build_info{version=\""));
    free(m);
}

static void test_promtool_clean(void)
{
    char *m = NULL, *out = NULL, cmd[700];
    const char *file = cm_th_path(dir, "scrape.txt");
    FILE *fp;

    EXPECT_INT(get_local("/metrics", &m), 200);
    fp = fopen(file, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fputs(m, fp);
    fclose(fp);
    free(m);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s' 2>&1", file);
    EXPECT_INT(run_sh(cmd, &out), 0);
    EXPECT_STR(out, "");
    free(out);
}

static void test_prometheus_scrapes(void)
{
    int port_prom = cm_th_free_port();
    char conf[600], data[600], listen[64], url[1024], query[512], *out = NULL;
    pid_t prom;
    double end;
    bool found = false;
    int64_t not_after = cert_time("valid.pem", "enddate");

    snprintf(conf, sizeof(conf), "%s", cm_th_path(dir, "prometheus.yml"));
    snprintf(data, sizeof(data), "%s", cm_th_path(dir, "prom-data"));
    write_file(conf,
               "global: { scrape_interval: 1s, evaluation_interval: 1s }\n"
               "scrape_configs:\n"
               "  - job_name: certmon\n"
               "    static_configs: [ { targets: [ '127.0.0.1:%d' ] } ]\n",
               port_http);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port_prom);
    char *argv[] = {"prometheus", "--config.file", conf, "--storage.tsdb.path", data,
                    "--web.listen-address", listen, NULL};
    prom = cm_th_spawn(argv, cm_th_path(dir, "prometheus.log"));
    CU_ASSERT_FATAL(prom > 0);
    CU_ASSERT_FATAL(cm_th_wait_port(port_prom, 20000));
    /* Wait for a scrape that carries the target's expiry, then compare it to the second. */
    snprintf(query, sizeof(query),
             "certmon_cert_not_after_timestamp_seconds%%7Btarget%%3D%%22%s%%22%%2Cposition%%3D%%220%%22%%7D",
             valid_name);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/query?query=%s", port_prom, query);
    end = cm_th_now() + 30 * CERTMON_SLOWDOWN;
    while (!found && cm_th_now() < end) {
        free(out);
        out = NULL;
        if (http_get(url, &out, NULL, NULL, NULL) == 200) {
            json_t *j = json_loads(out, 0, NULL);
            json_t *r = cm_json_get(j, "data.result.0.value.1");
            if (json_is_string(r)) {
                found = true;
                EXPECT_INT(atoll(json_string_value(r)), not_after);
                EXPECT_STR(cm_json_str(j, "data.result.0.metric.team"), "web");
            }
            json_decref(j);
        }
        if (!found)
            usleep(250000);
    }
    CU_ASSERT(found);
    /* Prometheus sees the target up and probe_success 1. */
    snprintf(url, sizeof(url),
             "http://127.0.0.1:%d/api/v1/query?query=certmon_probe_success%%7Btarget%%3D%%22selfsigned%%22%%7D",
             port_prom);
    free(out);
    out = NULL;
    EXPECT_INT(http_get(url, &out, NULL, NULL, NULL), 200);
    {
        json_t *j = json_loads(out, 0, NULL);
        EXPECT_STR(cm_json_str(j, "data.result.0.value.1"), "1");
        json_decref(j);
    }
    free(out);
    cm_th_stop(prom);
}

static void test_probe_endpoint(void)
{
    char *m = NULL, path[300], prefix[300];

    /* A configured target, by host:port: probed now, its metrics only. */
    snprintf(path, sizeof(path), "/probe?target=localhost:%d", port_valid);
    EXPECT_INT(get_local(path, &m), 200);
    snprintf(prefix, sizeof(prefix), "certmon_probe_success{target=\"%s\"", valid_name);
    EXPECT_INT(sample(m, prefix), 1);
    snprintf(prefix, sizeof(prefix), "certmon_probe_duration_seconds{target=\"%s\"", valid_name);
    CU_ASSERT(sample(m, prefix) > 0);
    CU_ASSERT_PTR_NULL(strstr(m, "selfsigned")); /* only that target */
    CU_ASSERT_PTR_NULL(strstr(m, "process_"));
    free(m);
    /* By configured name. */
    EXPECT_INT(get_local("/probe?target=selfsigned", &m), 200);
    EXPECT_INT(sample(m, "certmon_verify_ok{target=\"selfsigned\"}"), 0);
    free(m);
    /* Not configured: refused (no open proxy). */
    EXPECT_INT(get_local("/probe?target=127.0.0.1:1", &m), 403);
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "not configured"));
    free(m);
    EXPECT_INT(get_local("/probe", &m), 400);
    free(m);
}

static void test_api_and_health(void)
{
    char *m = NULL;
    json_t *j;
    size_t i;
    json_t *t;
    bool seen = false;

    EXPECT_INT(get_local("/healthz", &m), 200);
    free(m);
    EXPECT_INT(get_local("/api/v1/targets", &m), 200);
    j = json_loads(m, 0, NULL);
    CU_ASSERT_FATAL(json_is_array(j));
    json_array_foreach(j, i, t)
    {
        if (!strcmp(cm_json_str(t, "target") ? cm_json_str(t, "target") : "", valid_name)) {
            seen = true;
            EXPECT_STR(cm_json_str(t, "status"), "ok");
            EXPECT_STR(cm_json_str(t, "chain.0.subject"), "CN=localhost");
            EXPECT_STR(cm_json_str(t, "labels.team"), "web");
        }
    }
    CU_ASSERT(seen);
    json_decref(j);
    free(m);
    EXPECT_INT(get_local("/nope", &m), 404);
    free(m);
}

/* Bad requests: 4xx, and the daemon carries on. */
static void test_bad_requests(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port_http)};
    char buf[512], *m = NULL;
    static char big[70000];
    int fd;
    ssize_t n;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Garbage instead of a request line: libmicrohttpd 0.9.75 hangs up without a word. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    CU_ASSERT(write(fd, "GARBAGE\r\n\r\n", 11) == 11);
    n = read(fd, buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    CU_ASSERT(n == 0 || strstr(buf, " 400 ") != NULL);
    close(fd);
    /* A header line without a colon: 400. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    dprintf(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\nnot a header\r\n\r\n");
    n = read(fd, buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    CU_ASSERT(n > 0 && strstr(buf, " 400 ") != NULL);
    close(fd);
    /* An oversized header. */
    memset(big, 'a', sizeof(big) - 1);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    dprintf(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", big);
    n = read(fd, buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    CU_ASSERT(n > 0 && buf[9] == '4');
    close(fd);
    /* POST is not served. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    dprintf(fd, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    n = read(fd, buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    CU_ASSERT(n > 0 && strstr(buf, " 405 ") != NULL);
    close(fd);
    /* Still serving. */
    EXPECT_INT(get_local("/healthz", &m), 200);
    free(m);
}

/* A second daemon whose listener speaks TLS and wants client certificates from inter.pem's
 * children. */
static void test_tls_and_mtls_listener(void)
{
    char conf[600], url[256], *m = NULL, trust[600], cmd[1200], *out = NULL;

    snprintf(conf, sizeof(conf), "%s", cm_th_path(dir, "tls.conf"));
    snprintf(trust, sizeof(trust), "%s", cm_th_path(dir, "client-ca.pem"));
    snprintf(cmd, sizeof(cmd), "cat '%s' '%s' > '%s'", cm_th_pki("inter.pem"),
             cm_th_pki("root.pem"), trust);
    EXPECT_INT(run_sh(cmd, &out), 0);
    free(out);
    write_file(conf,
               "global = { interval = \"1h\"; startup_spread = \"0s\"; };\n"
               "metrics = { listen = \"127.0.0.1:%d\"; tls_cert = \"%s\"; tls_key = \"%s\";\n"
               "            client_ca = \"%s\"; allow_any_target = true; };\n"
               "targets = ( { host = \"127.0.0.1\"; port = %d; name = \"selfsigned\"; posture = false; } );\n",
               port_https, cm_th_pki("valid.chain.pem"), cm_th_pki("leaf.key"), trust, port_self);
    char *argv[] = {(char *)cm_th_certmon(), "run", "-c", conf, NULL};
    pid_tls_daemon = cm_th_spawn(argv, cm_th_path(dir, "tls-daemon.log"));
    CU_ASSERT_FATAL(pid_tls_daemon > 0 && cm_th_wait_port(port_https, 15000));
    snprintf(url, sizeof(url), "https://localhost:%d/healthz", port_https);
    /* With a client certificate signed by the client CA: served. */
    EXPECT_INT(http_get(url, &m, cm_th_pki("root.pem"), cm_th_pki("client.pem"),
                        cm_th_pki("client.key")),
               200);
    free(m);
    /* Without one: refused (403, or the handshake fails: no response at all). */
    long st = http_get(url, &m, cm_th_pki("root.pem"), NULL, NULL);
    CU_ASSERT(st == 403 || st == 0);
    free(m);
    /* With a certificate from another CA: refused. */
    st = http_get(url, &m, cm_th_pki("root.pem"), cm_th_pki("foreign_client.pem"),
                  cm_th_pki("client.key"));
    CU_ASSERT(st == 403 || st == 0);
    free(m);
    /* Plain HTTP on the TLS port gets nothing useful. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", port_https);
    st = http_get(url, &m, NULL, NULL, NULL);
    CU_ASSERT(st != 200);
    free(m);
    /* The daemon is still there. */
    snprintf(url, sizeof(url), "https://localhost:%d/metrics", port_https);
    EXPECT_INT(http_get(url, &m, cm_th_pki("root.pem"), cm_th_pki("client.pem"),
                        cm_th_pki("client.key")),
               200);
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "certmon_build_info"));
    free(m);
    /* allow_any_target: a target this daemon does not watch can be probed on demand (the
     * system trust store: the test PKI's root is not in it, so it does not verify). */
    snprintf(url, sizeof(url), "https://localhost:%d/probe?target=localhost:%d", port_https,
             port_valid);
    EXPECT_INT(http_get(url, &m, cm_th_pki("root.pem"), cm_th_pki("client.pem"),
                        cm_th_pki("client.key")),
               200);
    char prefix[200];
    snprintf(prefix, sizeof(prefix), "certmon_probe_success{target=\"localhost:%d\"}", port_valid);
    EXPECT_INT(sample(m, prefix), 1);
    snprintf(prefix, sizeof(prefix), "certmon_verify_ok{target=\"localhost:%d\"}", port_valid);
    EXPECT_INT(sample(m, prefix), 0);
    free(m);
    cm_th_stop(pid_tls_daemon);
    pid_tls_daemon = -1;
}

/* ---- Hostile clients ---- */

/* A blocking TCP connection to the listener from loopback address src; -1 on failure. */
static int connect_from(const char *src)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port_http)};
    struct sockaddr_in b = {.sin_family = AF_INET};
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    inet_pton(AF_INET, src, &b.sin_addr);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (bind(fd, (struct sockaddr *)&b, sizeof(b)) < 0 ||
        connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* 1 once the server closed fd (EOF, reset, or data: the 408), 0 while open and silent. */
static int closed_by_server(int fd, bool *got408)
{
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

    if (n > 0) {
        buf[n] = '\0';
        if (got408 && strstr(buf, "HTTP/1.1 408"))
            *got408 = true;
        return 1;
    }
    return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* /healthz and /metrics, timed: both must answer 200 (metrics with a target's series). */
static void check_answers(const char *when, double *worst)
{
    char *m = NULL;
    double t0 = cm_th_now();

    EXPECT_INT(get_local("/healthz", &m), 200);
    free(m);
    m = NULL;
    EXPECT_INT(get_local("/metrics", &m), 200);
    CU_ASSERT(m && strstr(m, "certmon_probe_success{"));
    free(m);
    double took = cm_th_now() - t0;
    if (took > *worst)
        *worst = took;
    if (took > 2.0 * CERTMON_SLOWDOWN)
        fprintf(stderr, "\n  %s: /healthz + /metrics took %.2f s\n", when, took);
}

/* The listener's guard counters from /metrics: evicted head_timeout, per_client, full, and
 * refused per_client, in that order; NAN where a sample is missing. */
static void guard_counters(double c[4])
{
    static const char *const names[4] = {
        "certmon_http_connections_evicted_total{reason=\"head_timeout\"}",
        "certmon_http_connections_evicted_total{reason=\"per_client\"}",
        "certmon_http_connections_evicted_total{reason=\"full\"}",
        "certmon_http_connections_refused_total{reason=\"per_client\"}",
    };
    char *m = NULL;

    EXPECT_INT(get_local("/metrics", &m), 200);
    for (int i = 0; i < 4; i++)
        c[i] = m ? sample(m, names[i]) : NAN;
    free(m);
}

/* The daemon's listener with its default limits (64 connections, a quarter per address, 10 s
 * request heads): 32 clients sending a header byte a second from 4 addresses are closed at the
 * head deadline, and then 2,000 idle connections from 127.0.0.1 (where the checks come from
 * too), then 80 from 20 addresses; /healthz and /metrics answer all along, and the guard's
 * counters on /metrics rise by what it did. */
static void test_hostile_clients(void)
{
    enum { SLOW = 32, IDLE = 2000, FULL = 80 };
    static const char head[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nUser-Agent: drip\r\n\r\n";
    int slow[SLOW], *idle = calloc(IDLE, sizeof(int));
    double opened[SLOW], closed[SLOW], worst = 0, t0, base[4], now[4];
    size_t sent[SLOW];
    bool is408[SLOW];
    int open_n, idle_ok = 0, idle_left = 0, n408 = 0;
    struct rlimit rl;
    char src[32];

    CU_ASSERT_PTR_NOT_NULL_FATAL(idle);
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 3 * IDLE) {
        rl.rlim_cur = rl.rlim_max < 3 * IDLE ? rl.rlim_max : 3 * IDLE;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    CU_ASSERT_FATAL(rl.rlim_cur >= IDLE + SLOW + 100);
    guard_counters(base);
    for (int i = 0; i < 4; i++)
        CU_ASSERT(!isnan(base[i]));

    for (int i = 0; i < SLOW; i++) {
        snprintf(src, sizeof(src), "127.0.0.%d", 2 + i % 4);
        slow[i] = connect_from(src);
        opened[i] = cm_th_now();
        closed[i] = 0;
        sent[i] = 0;
        is408[i] = false;
        CU_ASSERT(slow[i] >= 0);
    }
    t0 = cm_th_now();
    do {
        open_n = 0;
        for (int i = 0; i < SLOW; i++) {
            if (slow[i] < 0 || closed[i] > 0)
                continue;
            if (closed_by_server(slow[i], &is408[i])) {
                closed[i] = cm_th_now();
                continue;
            }
            if (sent[i] < sizeof(head) - 1 &&
                send(slow[i], head + sent[i], 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
                sent[i]++;
            open_n++;
        }
        check_answers("slow heads", &worst);
        usleep(1000 * 1000);
    } while (open_n > 0 && cm_th_now() - t0 < 10 + 6 * CERTMON_SLOWDOWN);
    double first = 1e9, last = 0;
    for (int i = 0; i < SLOW; i++) {
        if (slow[i] < 0)
            continue;
        CU_ASSERT(closed[i] > 0);
        if (closed[i] > 0) {
            double life = closed[i] - opened[i];
            first = life < first ? life : first;
            last = life > last ? life : last;
        }
        n408 += is408[i];
        close(slow[i]);
    }
    CU_ASSERT(first >= 9.0);                         /* the deadline, not sooner */
    CU_ASSERT(last <= 10.0 + 3.0 * CERTMON_SLOWDOWN); /* and not much later */
    EXPECT_INT(n408, SLOW);
    /* Each of them counted as a head timeout, and as nothing else. */
    guard_counters(now);
    CU_ASSERT(now[0] - base[0] >= SLOW);
    EXPECT_INT((long long)(now[1] - base[1]), 0);
    EXPECT_INT((long long)(now[2] - base[2]), 0);
    memcpy(base, now, sizeof(base));

    for (int i = 0; i < IDLE; i++) {
        idle[i] = connect_from("127.0.0.1");
        idle_ok += idle[i] >= 0;
    }
    for (int round = 0; round < 3; round++) {
        check_answers("2,000 idle connections", &worst);
        usleep(500 * 1000);
    }
    for (int i = 0; i < IDLE; i++) {
        if (idle[i] < 0)
            continue;
        idle_left += !closed_by_server(idle[i], NULL);
        close(idle[i]);
    }
    free(idle);
    /* From one address beyond its quarter of the slots: each newcomer replaced that address's
     * oldest connection waiting for its head (the 16 left are the ones not replaced). */
    guard_counters(now);
    double per_client = now[1] - base[1];
    CU_ASSERT(per_client >= IDLE - 16 - 1);
    EXPECT_INT((long long)(now[2] - base[2]), 0);
    memcpy(base, now, sizeof(base));

    /* Every slot taken from many addresses (4 each from 20, under the per-address limit):
     * each connection beyond the 64 replaced the oldest one waiting for its head. */
    int many[FULL], many_ok = 0;
    for (int i = 0; i < FULL; i++) {
        snprintf(src, sizeof(src), "127.0.1.%d", 1 + i / 4);
        many[i] = connect_from(src);
        many_ok += many[i] >= 0;
    }
    EXPECT_INT(many_ok, FULL);
    check_answers("80 idle connections from 20 addresses", &worst);
    guard_counters(now);
    double full = now[2] - base[2];
    CU_ASSERT(full >= FULL - 64);
    EXPECT_INT((long long)(now[1] - base[1]), 0);
    for (int i = 0; i < FULL; i++)
        if (many[i] >= 0)
            close(many[i]);
    fprintf(stderr, "\n  guard counters: %.0f replaced per address, %.0f replaced when full\n",
            per_client, full);
    fprintf(stderr,
            "\n  %d slow heads closed with a 408 after %.1f-%.1f s; %d idle connections, %d left "
            "open by the daemon; /healthz + /metrics at worst %.3f s\n",
            n408, first, last, idle_ok, idle_left, worst);
    EXPECT_INT(idle_ok, IDLE);
    CU_ASSERT(idle_left <= 16);
    CU_ASSERT(worst < 2.0 * CERTMON_SLOWDOWN);
    /* The daemon is still there and well. */
    char *m = NULL;
    EXPECT_INT(get_local("/healthz", &m), 200);
    free(m);
}

static CU_TestInfo tests[] = {
    {"metrics match the certificates", test_metrics_values},
    {"promtool check metrics is clean", test_promtool_clean},
    {"a real Prometheus scrapes the daemon", test_prometheus_scrapes},
    {"/probe: configured and not", test_probe_endpoint},
    {"/api/v1/targets and /healthz", test_api_and_health},
    {"malformed and oversized requests", test_bad_requests},
    {"TLS listener with client certificates", test_tls_and_mtls_listener},
    {"slow heads and idle floods leave /healthz and /metrics answered", test_hostile_clients},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("metrics", tests, suite_init, suite_cleanup);
}
