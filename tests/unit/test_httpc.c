/* httpc against real receivers on 127.0.0.1: tests/integration/http_receiver.py (HTTP and
 * HTTPS with the test PKI) and tests/integration/smtp_receiver.py (aiosmtpd: plain, STARTTLS,
 * SMTPS, AUTH). Every test runs its own loop with bounded waits and ends with
 * uv_loop_close() == 0 and no descriptor left open. */
#include "cmtest.h"
#include "certmon/http/httpc.h"

#include <curl/curl.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

static char tmpdir[64];
static int completions; /* global completion counter, for ordering */

/* ---- Results ---- */

struct got {
    int n;
    int order;
    int curl_code;
    long status;
    char error[CURL_ERROR_SIZE];
    char body[512];
    size_t body_len, body_strlen;
    int64_t retry_after_s;
    double elapsed_s;
};

static void on_result(const struct cm_httpc_result *r, void *arg)
{
    struct got *g = arg;

    g->n++;
    g->order = ++completions;
    g->curl_code = r->curl_code;
    g->status = r->status;
    snprintf(g->error, sizeof(g->error), "%s", r->error ? r->error : "(null)");
    snprintf(g->body, sizeof(g->body), "%s", r->body ? r->body : "(null)");
    g->body_len = r->body_len;
    g->body_strlen = r->body ? strlen(r->body) : 0;
    g->retry_after_s = r->retry_after_s;
    g->elapsed_s = r->elapsed_s;
}

/* ---- Loop helpers ---- */

static void on_guard(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until *n >= want or timeout_ms passed (a guard timer keeps UV_RUN_ONCE from
 * blocking past the bound). Returns whether *n reached want. */
static bool run_until(uv_loop_t *loop, const int *n, int want, int timeout_ms)
{
    uv_timer_t guard;
    uint64_t end = uv_hrtime() + (uint64_t)(timeout_ms * CERTMON_SLOWDOWN) * 1000000u;

    uv_timer_init(loop, &guard);
    uv_timer_start(&guard, on_guard, 20, 20);
    while ((!n || *n < want) && uv_hrtime() < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return !n || *n >= want;
}

static void run_for(uv_loop_t *loop, int ms)
{
    run_until(loop, NULL, 0, ms);
}

static int fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

struct env {
    uv_loop_t loop;
    struct cm_httpc *h;
    int fds;
};

static void env_init(struct env *e)
{
    char err[256] = "";

    completions = 0;
    e->fds = fd_count();
    CU_ASSERT_FATAL(uv_loop_init(&e->loop) == 0);
    EXPECT_INT(cm_httpc_new(&e->loop, &e->h, err, sizeof(err)), 0);
    EXPECT_STR(err, "");
    CU_ASSERT_FATAL(e->h != NULL);
}

/* Closes the client (unless closed already: pass closed = true), runs the loop until every
 * handle is gone (bounded), and checks that the loop closes and no descriptor leaked. */
static void env_finish_at(struct env *e, bool closed, unsigned line)
{
    uint64_t end = uv_hrtime() + 5000000000u;

    if (!closed)
        cm_httpc_close(e->h);
    while (uv_loop_alive(&e->loop) && uv_hrtime() < end) {
        uv_run(&e->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    expect_int(uv_loop_close(&e->loop), 0, "uv_loop_close", line);
    expect_int(fd_count(), e->fds, "open descriptors after the test", line);
}
#define env_finish(e) env_finish_at((e), false, __LINE__)
#define env_finish_closed(e) env_finish_at((e), true, __LINE__)

/* ---- Receivers ---- */

struct rx {
    pid_t pid;
    int port;
    char log[256];
};

/* Starts tests/integration/SCRIPT on a free port with the extra arguments (NULL-terminated)
 * and waits until it accepts connections. */
static bool rx_start(struct rx *rx, const char *script, ...)
{
    char *argv[40], port[16], out[300];
    int argc = 0;
    va_list ap;

    memset(rx, 0, sizeof(*rx));
    rx->port = cm_th_free_port();
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

static void rx_stop(struct rx *rx)
{
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
        json_error_t jerr;
        json_t *j = json_loads(line, JSON_ALLOW_NUL, &jerr);
        if (j)
            json_array_append_new(arr, j);
        else
            fprintf(stderr, "bad log line in %s: %s\n", rx->log, jerr.text);
    }
    free(line);
    fclose(f);
    return arr;
}

static void url_of(char *buf, size_t len, const char *scheme, const char *host, int port,
                   const char *path)
{
    snprintf(buf, len, "%s://%s:%d%s", scheme, host, port, path);
}

static struct cm_httpc_xfer *start_get(struct cm_httpc *h, const char *url, uint64_t timeout_ms,
                                       struct got *g)
{
    struct cm_httpc_req req = {.url = url, .timeout_ms = timeout_ms};
    struct cm_httpc_xfer *x = NULL;

    EXPECT_INT(cm_httpc_request(h, &req, on_result, g, &x), 0);
    return x;
}

/* ---- HTTP ---- */

static void test_post_json(void)
{
    struct env e;
    struct rx rx;
    struct got g = {0};
    char url[128];
    const char *hdrs[] = {"X-Certmon-Test: yes", "Authorization: Bearer t0ken", NULL};
    const char *body = "{\"text\":\"cert expiring\"}";
    json_t *log, *r;

    CU_ASSERT_FATAL(rx_start(&rx, "http_receiver.py", "--body", "{\"ok\":true}", "--content-type",
                             "application/json", NULL));
    env_init(&e);
    url_of(url, sizeof(url), "http", "127.0.0.1", rx.port, "/hooks/alert?src=certmon");
    struct cm_httpc_req req = {
        .url = url, .headers = hdrs, .body = body, .body_len = strlen(body), .timeout_ms = 5000};
    EXPECT_INT(cm_httpc_request(e.h, &req, on_result, &g, NULL), 0);
    EXPECT_INT(g.n, 0); /* never inside the start call */
    EXPECT_INT(cm_httpc_active(e.h), 1);
    CU_ASSERT(run_until(&e.loop, &g.n, 1, 5000));
    EXPECT_INT(g.curl_code, CURLE_OK);
    EXPECT_INT(g.status, 200);
    EXPECT_STR(g.error, "");
    EXPECT_STR(g.body, "{\"ok\":true}");
    EXPECT_INT(g.body_len, 11);
    EXPECT_INT(g.retry_after_s, -1);
    CU_ASSERT(g.elapsed_s > 0 && g.elapsed_s < 5);
    EXPECT_INT(cm_httpc_active(e.h), 0);
    env_finish(&e);

    log = rx_log(&rx);
    EXPECT_INT(json_array_size(log), 1);
    r = json_array_get(log, 0);
    EXPECT_STR(cm_json_str(r, "method"), "POST");
    EXPECT_STR(cm_json_str(r, "path"), "/hooks/alert?src=certmon");
    EXPECT_STR(cm_json_str(r, "headers.content-type"), "application/json");
    EXPECT_STR(cm_json_str(r, "headers.x-certmon-test"), "yes");
    EXPECT_STR(cm_json_str(r, "headers.authorization"), "Bearer t0ken");
    EXPECT_STR(cm_json_str(r, "headers.content-length"), "24");
    EXPECT_STR(cm_json_str(r, "headers.expect"), NULL);
    CU_ASSERT(cm_json_str(r, "headers.user-agent") &&
              strncmp(cm_json_str(r, "headers.user-agent"), "certmon/", 8) == 0);
    EXPECT_STR(cm_json_str(r, "body"), body);
    json_decref(log);
    rx_stop(&rx);
}

static void test_content_type_and_binary_body(void)
{
    struct env e;
    struct rx rx;
    struct got g1 = {0}, g2 = {0}, g3 = {0};
    char url[128];
    const char *own_ct[] = {"content-type: application/x-custom", "User-Agent: probe/1", NULL};
    static const char bin[] = {'a', '\0', 'b', '\0', 'c'};
    json_t *log;

    CU_ASSERT_FATAL(rx_start(&rx, "http_receiver.py", NULL));
    env_init(&e);
    url_of(url, sizeof(url), "http", "127.0.0.1", rx.port, "/ct");
    struct cm_httpc_req r1 = {
        .url = url, .body = "plain", .body_len = 5, .content_type = "text/plain; charset=utf-8"};
    struct cm_httpc_req r2 = {.url = url,
                              .body = "x",
                              .body_len = 1,
                              .headers = own_ct,
                              .content_type = "ignored/when-given"};
    struct cm_httpc_req r3 = {.url = url, .body = bin, .body_len = sizeof(bin)};
    EXPECT_INT(cm_httpc_request(e.h, &r1, on_result, &g1, NULL), 0);
    CU_ASSERT(run_until(&e.loop, &g1.n, 1, 5000));
    EXPECT_INT(cm_httpc_request(e.h, &r2, on_result, &g2, NULL), 0);
    CU_ASSERT(run_until(&e.loop, &g2.n, 1, 5000));
    EXPECT_INT(cm_httpc_request(e.h, &r3, on_result, &g3, NULL), 0);
    CU_ASSERT(run_until(&e.loop, &g3.n, 1, 5000));
    EXPECT_INT(g1.status, 200);
    EXPECT_INT(g2.status, 200);
    EXPECT_INT(g3.status, 200);
    env_finish(&e);

    log = rx_log(&rx);
    EXPECT_INT(json_array_size(log), 3);
    EXPECT_STR(cm_json_str(log, "0.headers.content-type"), "text/plain; charset=utf-8");
    EXPECT_STR(cm_json_str(log, "0.body"), "plain");
    /* The caller's Content-Type replaces ours (sent once), and its User-Agent ours. */
    EXPECT_STR(cm_json_str(log, "1.headers.content-type"), "application/x-custom");
    EXPECT_STR(cm_json_str(log, "1.headers.user-agent"), "probe/1");
    EXPECT_INT(json_integer_value(cm_json_get(log, "2.body_len")), 5);
    EXPECT_STR(cm_json_str(log, "2.headers.content-type"), "application/json");
    json_decref(log);
    rx_stop(&rx);
}

static void test_get(void)
{
    struct env e;
    struct rx rx;
    struct got g = {0};
    char url[128];
    const char *hdrs[] = {"Accept: text/plain", NULL};
    json_t *log;

    CU_ASSERT_FATAL(rx_start(&rx, "http_receiver.py", "--body", "hello", NULL));
    env_init(&e);
    url_of(url, sizeof(url), "http", "127.0.0.1", rx.port, "/status");
    struct cm_httpc_req req = {.url = url, .headers = hdrs};
    EXPECT_INT(cm_httpc_request(e.h, &req, on_result, &g, NULL), 0);
    CU_ASSERT(run_until(&e.loop, &g.n, 1, 5000));
    EXPECT_INT(g.curl_code, CURLE_OK);
    EXPECT_INT(g.status, 200);
    EXPECT_STR(g.body, "hello");
    env_finish(&e);

    log = rx_log(&rx);
    EXPECT_INT(json_array_size(log), 1);
    EXPECT_STR(cm_json_str(log, "0.method"), "GET");
    EXPECT_STR(cm_json_str(log, "0.path"), "/status");
    EXPECT_STR(cm_json_str(log, "0.headers.accept"), "text/plain");
    EXPECT_STR(cm_json_str(log, "0.headers.content-type"), NULL);
    EXPECT_INT(json_integer_value(cm_json_get(log, "0.body_len")), 0);
    json_decref(log);
    rx_stop(&rx);
}

static void test_status_sequence(void)
{
    struct env e;
    struct rx rx;
    struct got g1 = {0}, g2 = {0};
    char url[128];

    CU_ASSERT_FATAL(rx_start(&rx, "http_receiver.py", "--responses", "500,200", "--body",
                             "{\"error\":\"boom\"}", NULL));
    env_init(&e);
    url_of(url, sizeof(url), "http", "127.0.0.1", rx.port, "/");
    start_get(e.h, url, 5000, &g1);
    CU_ASSERT(run_until(&e.loop, &g1.n, 1, 5000));
    start_get(e.h, url, 5000, &g2);
    CU_ASSERT(run_until(&e.loop, &g2.n, 1, 5000));
    /* An HTTP error status is a completed exchange, not a curl error. */
    EXPECT_INT(g1.curl_code, CURLE_OK);
    EXPECT_INT(g1.status, 500);
    EXPECT_STR(g1.body, "{\"error\":\"boom\"}");
    EXPECT_STR(g1.error, "");
    EXPECT_INT(g1.retry_after_s, -1);
    EXPECT_INT(g2.curl_code, CURLE_OK);
    EXPECT_INT(g2.status, 200);
    env_finish(&e);
    rx_stop(&rx);
}

static void test_retry_after(void)
{
    struct env e;
    struct rx delta, date;
    struct got g[4] = {{0}};
    char url[128], url2[128];

    CU_ASSERT_FATAL(rx_start(&delta, "http_receiver.py", "--responses", "429,503,200",
                             "--retry-after", "2", NULL));
    CU_ASSERT_FATAL(rx_start(&date, "http_receiver.py", "--responses", "503", "--retry-after",
                             "date:120", NULL));
    env_init(&e);
    url_of(url, sizeof(url), "http", "127.0.0.1", delta.port, "/");
    url_of(url2, sizeof(url2), "http", "127.0.0.1", date.port, "/");
    for (int i = 0; i < 3; i++) {
        start_get(e.h, url, 5000, &g[i]);
        CU_ASSERT(run_until(&e.loop, &g[i].n, 1, 5000));
    }
    start_get(e.h, url2, 5000, &g[3]);
    CU_ASSERT(run_until(&e.loop, &g[3].n, 1, 5000));
    EXPECT_INT(g[0].status, 429);
    EXPECT_INT(g[0].retry_after_s, 2);
    EXPECT_INT(g[1].status, 503);
    EXPECT_INT(g[1].retry_after_s, 2);
    EXPECT_INT(g[2].status, 200);
    EXPECT_INT(g[2].retry_after_s, -1);
    EXPECT_INT(g[3].status, 503);
    /* An HTTP-date two minutes ahead (one-second resolution, a little time has passed). */
    CU_ASSERT(g[3].retry_after_s >= 115 && g[3].retry_after_s <= 121);
    env_finish(&e);
    rx_stop(&delta);
    rx_stop(&date);
}

/* A receiver that answers after 3 s, with a 500 ms timeout, while a fast receiver answers a
 * transfer started after it: the fast one completes first, the slow one times out at about
 * 0.5 s, and neither waits for the other. */
static void test_timeout_does_not_block_others(void)
{
    struct env e;
    struct rx slow, fast;
    struct got gs = {0}, gf = {0};
    char surl[128], furl[128];

    CU_ASSERT_FATAL(rx_start(&slow, "http_receiver.py", "--delay-ms", "3000", NULL));
    CU_ASSERT_FATAL(rx_start(&fast, "http_receiver.py", NULL));
    env_init(&e);
    url_of(surl, sizeof(surl), "http", "127.0.0.1", slow.port, "/slow");
    url_of(furl, sizeof(furl), "http", "127.0.0.1", fast.port, "/fast");
    start_get(e.h, surl, 500, &gs);
    start_get(e.h, furl, 5000, &gf);
    CU_ASSERT(run_until(&e.loop, &completions, 2, 10000));
    EXPECT_INT(gf.n, 1);
    EXPECT_INT(gf.status, 200);
    EXPECT_INT(gf.order, 1);
    CU_ASSERT(gf.elapsed_s < 0.4);
    EXPECT_INT(gs.order, 2);
    EXPECT_INT(gs.curl_code, CURLE_OPERATION_TIMEDOUT);
    CU_ASSERT(strstr(gs.error, "timed out") != NULL);
    if (gs.elapsed_s < 0.45 || gs.elapsed_s > 1.0 * CERTMON_SLOWDOWN + 0.5)
        fprintf(stderr, "slow transfer elapsed %.3f s\n", gs.elapsed_s);
    CU_ASSERT(gs.elapsed_s >= 0.45 && gs.elapsed_s <= 1.0 * CERTMON_SLOWDOWN + 0.5);
    env_finish(&e);
    rx_stop(&slow);
    rx_stop(&fast);
}

static void test_connection_refused(void)
{
    struct env e;
    struct got g = {0};
    char url[128];

    env_init(&e);
    url_of(url, sizeof(url), "http", "127.0.0.1", cm_th_free_port(), "/");
    start_get(e.h, url, 5000, &g);
    CU_ASSERT(run_until(&e.loop, &g.n, 1, 5000));
    EXPECT_INT(g.curl_code, CURLE_COULDNT_CONNECT);
    EXPECT_INT(g.status, 0);
    CU_ASSERT(g.error[0] != '\0');
    EXPECT_STR(g.body, "");
    env_finish(&e);
}

/* A name that is not "localhost" (libcurl answers that one itself) goes through libcurl's
 * threaded resolver, whose socket pair comes and goes through the socket callback. The
 * machine's own name is used when it resolves to 127.0.0.1 (it does in /etc/hosts here). */
static void test_resolver(void)
{
    struct env e;
    struct rx rx;
    struct got g = {0};
    char host[256], url[400];
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    bool loopback = false;

    if (gethostname(host, sizeof(host)) != 0 || getaddrinfo(host, NULL, &hints, &ai) != 0) {
        fprintf(stderr, "(skipped: the host name does not resolve) ");
        return;
    }
    loopback = ((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
    freeaddrinfo(ai);
    if (!loopback) {
        fprintf(stderr, "(skipped: %s is not 127.0.0.1) ", host);
        return;
    }
    CU_ASSERT_FATAL(rx_start(&rx, "http_receiver.py", NULL));
    env_init(&e);
    url_of(url, sizeof(url), "http", host, rx.port, "/by-name");
    start_get(e.h, url, 5000, &g);
    CU_ASSERT(run_until(&e.loop, &g.n, 1, 5000));
    EXPECT_INT(g.curl_code, CURLE_OK);
    EXPECT_INT(g.status, 200);
    env_finish(&e);
    rx_stop(&rx);
}

/* The receiver reads the request and closes the connection without a word. */
static void test_empty_reply(void)
{
    struct env e;
    struct rx rx;
    struct got g = {0};
    char url[128];

    CU_ASSERT_FATAL(rx_start(&rx, "http_receiver.py", "--responses", "close", NULL));
    env_init(&e);
    url_of(url, sizeof(url), "http", "127.0.0.1", rx.port, "/");
    start_get(e.h, url, 5000, &g);
    CU_ASSERT(run_until(&e.loop, &g.n, 1, 5000));
    EXPECT_INT(g.curl_code, CURLE_GOT_NOTHING);
    EXPECT_INT(g.status, 0);
    env_finish(&e);
    rx_stop(&rx);
}

static void test_https(void)
{
    struct env e;
    struct rx rx;
    struct got ok = {0}, untrusted = {0}, badca = {0};
    char url[128];
    json_t *log;

    CU_ASSERT_FATAL(rx_start(&rx, "http_receiver.py", "--cert", cm_th_pki("valid.chain.pem"),
                             "--key", cm_th_pki("leaf.key"), NULL));
    env_init(&e);
    /* "localhost": the name goes through libcurl's asynchronous resolver. */
    url_of(url, sizeof(url), "https", "localhost", rx.port, "/tls");
    struct cm_httpc_req with_ca = {.url = url,
                                   .body = "{}",
                                   .body_len = 2,
                                   .ca_file = cm_th_pki("root.pem"),
                                   .timeout_ms = 5000};
    struct cm_httpc_req system = {.url = url, .body = "{}", .body_len = 2, .timeout_ms = 5000};
    struct cm_httpc_req missing = {
        .url = url, .ca_file = "/nonexistent/ca.pem", .timeout_ms = 5000};
    EXPECT_INT(cm_httpc_request(e.h, &with_ca, on_result, &ok, NULL), 0);
    EXPECT_INT(cm_httpc_request(e.h, &system, on_result, &untrusted, NULL), 0);
    EXPECT_INT(cm_httpc_request(e.h, &missing, on_result, &badca, NULL), 0);
    CU_ASSERT(run_until(&e.loop, &completions, 3, 10000));
    EXPECT_INT(ok.curl_code, CURLE_OK);
    EXPECT_INT(ok.status, 200);
    EXPECT_INT(untrusted.curl_code, CURLE_PEER_FAILED_VERIFICATION);
    EXPECT_INT(untrusted.status, 0);
    CU_ASSERT(untrusted.error[0] != '\0');
    EXPECT_INT(badca.curl_code, CURLE_SSL_CACERT_BADFILE);

    /* One after the other: the verified connection kept by libcurl is not reused for a
     * transfer that does not trust the server. */
    struct got again = {0}, again_untrusted = {0};
    EXPECT_INT(cm_httpc_request(e.h, &with_ca, on_result, &again, NULL), 0);
    CU_ASSERT(run_until(&e.loop, &again.n, 1, 5000));
    EXPECT_INT(cm_httpc_request(e.h, &system, on_result, &again_untrusted, NULL), 0);
    CU_ASSERT(run_until(&e.loop, &again_untrusted.n, 1, 5000));
    EXPECT_INT(again.status, 200);
    EXPECT_INT(again_untrusted.curl_code, CURLE_PEER_FAILED_VERIFICATION);
    env_finish(&e);

    log = rx_log(&rx);
    EXPECT_INT(json_array_size(log), 2);
    CU_ASSERT(json_is_true(cm_json_get(log, "0.tls")));
    EXPECT_STR(cm_json_str(log, "0.path"), "/tls");
    json_decref(log);
    rx_stop(&rx);
}

static void test_cancel(void)
{
    struct env e;
    struct rx slow;
    struct got g1 = {0}, g2 = {0};
    struct cm_httpc_xfer *x1, *x2;
    char url[128];

    CU_ASSERT_FATAL(rx_start(&slow, "http_receiver.py", "--delay-ms", "3000", NULL));
    env_init(&e);
    url_of(url, sizeof(url), "http", "127.0.0.1", slow.port, "/");

    /* In flight: the request has reached the receiver. */
    x1 = start_get(e.h, url, 10000, &g1);
    run_for(&e.loop, 300);
    EXPECT_INT(g1.n, 0);
    EXPECT_INT(cm_httpc_active(e.h), 1);
    cm_httpc_cancel(x1);
    EXPECT_INT(g1.n, 1); /* at once */
    EXPECT_INT(g1.curl_code, CURLE_ABORTED_BY_CALLBACK);
    EXPECT_STR(g1.error, "transfer cancelled");
    EXPECT_INT(g1.status, 0);
    EXPECT_INT(cm_httpc_active(e.h), 0);

    /* Still queued: the loop has not run since the start. */
    x2 = start_get(e.h, url, 10000, &g2);
    cm_httpc_cancel(x2);
    EXPECT_INT(g2.n, 1);
    EXPECT_INT(g2.curl_code, CURLE_ABORTED_BY_CALLBACK);
    cm_httpc_cancel(NULL);

    /* Neither callback runs again. */
    run_for(&e.loop, 300);
    EXPECT_INT(g1.n, 1);
    EXPECT_INT(g2.n, 1);
    env_finish(&e);
    rx_stop(&slow);
}

/* Callbacks that use the client: one cancels another transfer and starts a new one. */
struct reentry {
    struct cm_httpc *h;
    struct cm_httpc_xfer *victim;
    const char *next_url;
    struct got self, next;
    bool in_start;
    int next_rc;
    bool next_ran_in_start;
};

static void on_next(const struct cm_httpc_result *r, void *arg)
{
    struct reentry *re = arg;

    if (re->in_start)
        re->next_ran_in_start = true;
    on_result(r, &re->next);
}

static void on_first(const struct cm_httpc_result *r, void *arg)
{
    struct reentry *re = arg;
    struct cm_httpc_req req = {.url = re->next_url};

    on_result(r, &re->self);
    cm_httpc_cancel(re->victim);
    re->in_start = true;
    re->next_rc = cm_httpc_request(re->h, &req, on_next, re, NULL);
    re->in_start = false;
}

static void test_callbacks_reenter(void)
{
    struct env e;
    struct rx fast, slow;
    struct reentry re = {0};
    struct got victim = {0};
    char furl[128], surl[128];
    struct cm_httpc_req first;

    CU_ASSERT_FATAL(rx_start(&fast, "http_receiver.py", NULL));
    CU_ASSERT_FATAL(rx_start(&slow, "http_receiver.py", "--delay-ms", "3000", NULL));
    env_init(&e);
    url_of(furl, sizeof(furl), "http", "127.0.0.1", fast.port, "/first");
    url_of(surl, sizeof(surl), "http", "127.0.0.1", slow.port, "/victim");
    re.h = e.h;
    re.next_url = furl;
    re.victim = start_get(e.h, surl, 10000, &victim);
    first = (struct cm_httpc_req){.url = furl};
    EXPECT_INT(cm_httpc_request(e.h, &first, on_first, &re, NULL), 0);
    CU_ASSERT(run_until(&e.loop, &re.next.n, 1, 5000));
    EXPECT_INT(re.self.status, 200);
    EXPECT_INT(victim.n, 1);
    EXPECT_INT(victim.curl_code, CURLE_ABORTED_BY_CALLBACK);
    EXPECT_INT(re.next_rc, 0);
    CU_ASSERT(!re.next_ran_in_start);
    EXPECT_INT(re.next.status, 200);
    EXPECT_INT(cm_httpc_active(e.h), 0);
    env_finish(&e);
    rx_stop(&fast);
    rx_stop(&slow);
}

static void test_close_in_flight(void)
{
    struct env e;
    struct rx slow;
    struct got g[4] = {{0}};
    struct got late = {0};
    char url[128];
    struct cm_httpc_req req;

    CU_ASSERT_FATAL(rx_start(&slow, "http_receiver.py", "--delay-ms", "3000", NULL));
    env_init(&e);
    url_of(url, sizeof(url), "http", "127.0.0.1", slow.port, "/");
    for (int i = 0; i < 3; i++)
        start_get(e.h, url, 10000, &g[i]);
    run_for(&e.loop, 300);
    start_get(e.h, url, 10000, &g[3]); /* still queued */
    EXPECT_INT(cm_httpc_active(e.h), 4);
    cm_httpc_close(e.h);
    for (int i = 0; i < 4; i++) {
        EXPECT_INT(g[i].n, 1);
        EXPECT_INT(g[i].curl_code, CURLE_ABORTED_BY_CALLBACK);
    }
    req = (struct cm_httpc_req){.url = url};
    EXPECT_INT(cm_httpc_request(e.h, &req, on_result, &late, NULL), -ECANCELED);
    cm_httpc_close(e.h); /* a second close before the loop ran is harmless */
    env_finish_closed(&e);
    EXPECT_INT(late.n, 0);
    rx_stop(&slow);
}

struct closer {
    struct cm_httpc *h;
    struct got g;
    struct got *other;
    int other_n_inside;
};

static void on_close_from_cb(const struct cm_httpc_result *r, void *arg)
{
    struct closer *c = arg;

    on_result(r, &c->g);
    cm_httpc_close(c->h);
    c->other_n_inside = c->other->n;
    /* The result stays valid until this callback returns, close or not. */
    CU_ASSERT(r->body && strcmp(r->body, "ok") == 0);
}

static void test_close_from_callback(void)
{
    struct env e;
    struct rx fast, slow;
    struct got gs = {0};
    struct closer c = {0};
    char furl[128], surl[128];
    struct cm_httpc_req req;

    CU_ASSERT_FATAL(rx_start(&fast, "http_receiver.py", NULL));
    CU_ASSERT_FATAL(rx_start(&slow, "http_receiver.py", "--delay-ms", "3000", NULL));
    env_init(&e);
    url_of(furl, sizeof(furl), "http", "127.0.0.1", fast.port, "/");
    url_of(surl, sizeof(surl), "http", "127.0.0.1", slow.port, "/");
    c.h = e.h;
    c.other = &gs;
    start_get(e.h, surl, 10000, &gs);
    req = (struct cm_httpc_req){.url = furl};
    EXPECT_INT(cm_httpc_request(e.h, &req, on_close_from_cb, &c, NULL), 0);
    CU_ASSERT(run_until(&e.loop, &c.g.n, 1, 5000));
    EXPECT_INT(c.g.status, 200);
    EXPECT_INT(c.other_n_inside, 1);
    EXPECT_INT(gs.curl_code, CURLE_ABORTED_BY_CALLBACK);
    env_finish_closed(&e);
    rx_stop(&fast);
    rx_stop(&slow);
}

#define MANY 50

static void test_many_concurrent(void)
{
    struct env e;
    struct rx rx;
    static struct got g[MANY];
    char url[128], bodies[MANY][32];
    json_t *log;
    bool seen[MANY] = {false};
    size_t i;
    json_t *r;
    int ok = 0;

    memset(g, 0, sizeof(g));
    CU_ASSERT_FATAL(rx_start(&rx, "http_receiver.py", "--delay-ms", "200", NULL));
    env_init(&e);
    url_of(url, sizeof(url), "http", "127.0.0.1", rx.port, "/many");
    for (int k = 0; k < MANY; k++) {
        snprintf(bodies[k], sizeof(bodies[k]), "{\"n\":%d}", k);
        struct cm_httpc_req req = {
            .url = url, .body = bodies[k], .body_len = strlen(bodies[k]), .timeout_ms = 10000};
        EXPECT_INT(cm_httpc_request(e.h, &req, on_result, &g[k], NULL), 0);
    }
    EXPECT_INT(cm_httpc_active(e.h), MANY);
    uint64_t t0 = uv_hrtime();
    CU_ASSERT(run_until(&e.loop, &completions, MANY, 15000));
    double took = (double)(uv_hrtime() - t0) / 1e9;
    for (int k = 0; k < MANY; k++)
        ok += g[k].n == 1 && g[k].curl_code == 0 && g[k].status == 200;
    EXPECT_INT(ok, MANY);
    /* Concurrent, not one after another: 50 answers delayed 200 ms each would take 10 s. */
    if (took > 3.0 * CERTMON_SLOWDOWN)
        fprintf(stderr, "%d transfers took %.2f s\n", MANY, took);
    CU_ASSERT(took < 3.0 * CERTMON_SLOWDOWN);
    EXPECT_INT(cm_httpc_active(e.h), 0);
    env_finish(&e);

    log = rx_log(&rx);
    EXPECT_INT(json_array_size(log), MANY);
    json_array_foreach(log, i, r)
    {
        json_error_t jerr;
        json_t *b = json_loads(cm_json_str(r, "body"), 0, &jerr);
        json_int_t n = json_integer_value(json_object_get(b, "n"));
        if (n >= 0 && n < MANY)
            seen[n] = true;
        json_decref(b);
    }
    ok = 0;
    for (int k = 0; k < MANY; k++)
        ok += seen[k];
    EXPECT_INT(ok, MANY);
    json_decref(log);
    rx_stop(&rx);
}

static void test_body_cap(void)
{
    struct env e;
    struct rx rx;
    struct got g = {0};
    char url[128];

    CU_ASSERT_FATAL(rx_start(&rx, "http_receiver.py", "--body-bytes", "200000", NULL));
    env_init(&e);
    url_of(url, sizeof(url), "http", "127.0.0.1", rx.port, "/big");
    start_get(e.h, url, 5000, &g);
    CU_ASSERT(run_until(&e.loop, &g.n, 1, 5000));
    EXPECT_INT(g.curl_code, CURLE_OK);
    EXPECT_INT(g.status, 200);
    EXPECT_INT(g.body_len, CM_HTTPC_BODY_MAX);
    EXPECT_INT(g.body_strlen, CM_HTTPC_BODY_MAX);
    env_finish(&e);
    rx_stop(&rx);
}

static void test_invalid_arguments(void)
{
    struct env e;
    struct got g = {0};
    struct cm_httpc_xfer *x = (struct cm_httpc_xfer *)&g;
    const char *crlf[] = {"X-A: b\r\nX-Injected: 1", NULL};
    const char *to[] = {"a@example.org", NULL};
    const char *bad_to[] = {"a@example.org>\r\nDATA", NULL};
    const char *none[] = {NULL};

    env_init(&e);
    struct cm_httpc_req reqs[] = {
        {.url = NULL},
        {.url = "ftp://127.0.0.1/"},
        {.url = "file:///etc/passwd"},
        {.url = "smtp://127.0.0.1/"},
        {.url = "127.0.0.1/no-scheme"},
        {.url = "http://127.0.0.1/\r\nHost: x"},
        {.url = "http://127.0.0.1/", .headers = crlf},
        {.url = "http://127.0.0.1/", .body = "x", .body_len = 1, .content_type = "a\nb"},
        {.url = "http://127.0.0.1/", .body = NULL, .body_len = 3},
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        x = (struct cm_httpc_xfer *)&g;
        expect_int(cm_httpc_request(e.h, &reqs[i], on_result, &g, &x), -EINVAL, "request", i);
        CU_ASSERT(x == NULL);
    }
    struct cm_httpc_req fine = {.url = "HTTPS://127.0.0.1:1/"};
    EXPECT_INT(cm_httpc_request(e.h, &fine, NULL, &g, NULL), -EINVAL);
    EXPECT_INT(cm_httpc_request(e.h, NULL, on_result, &g, NULL), -EINVAL);

    struct cm_httpc_mail mails[] = {
        {.url = "http://127.0.0.1/", .from = "a@b", .to = to, .message = "m"},
        {.url = "smtp://127.0.0.1/", .from = NULL, .to = to, .message = "m"},
        {.url = "smtp://127.0.0.1/", .from = "a@b", .to = NULL, .message = "m"},
        {.url = "smtp://127.0.0.1/", .from = "a@b", .to = none, .message = "m"},
        {.url = "smtp://127.0.0.1/", .from = "a@b", .to = to, .message = NULL},
        {.url = "smtp://127.0.0.1/", .from = "a@b\r\nRSET", .to = to, .message = "m"},
        {.url = "smtp://127.0.0.1/", .from = "a@b", .to = bad_to, .message = "m"},
        {.url = "smtp://127.0.0.1/",
         .from = "a@b",
         .to = to,
         .message = "m",
         .username = "u",
         .password = "p\r\nQUIT"},
    };
    for (size_t i = 0; i < sizeof(mails) / sizeof(mails[0]); i++)
        expect_int(cm_httpc_mail(e.h, &mails[i], on_result, &g, NULL), -EINVAL, "mail", i);
    EXPECT_INT(cm_httpc_active(e.h), 0);
    run_for(&e.loop, 50);
    EXPECT_INT(g.n, 0);
    env_finish(&e);
}

/* ---- SMTP ---- */

static const char message[] = "From: certmon <certmon@example.org>\r\n"
                              "To: ops@example.org, oncall@example.org\r\n"
                              "Subject: [certmon] cert.expiring on web\r\n"
                              "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
                              "Message-ID: <1@certmon.example.org>\r\n"
                              "\r\n"
                              "Certificate expires in 5 days.\r\n"
                              ".a line that starts with a dot\r\n";

static const char *const two_rcpts[] = {"ops@example.org", "oncall@example.org", NULL};

static void send_mail(struct env *e, const struct cm_httpc_mail *m, struct got *g)
{
    EXPECT_INT(cm_httpc_mail(e->h, m, on_result, g, NULL), 0);
    EXPECT_INT(g->n, 0);
    CU_ASSERT(run_until(&e->loop, &g->n, 1, 10000));
}

static void test_mail_plain(void)
{
    struct env e;
    struct rx rx;
    struct got g = {0};
    char url[128];
    json_t *log, *rc;

    CU_ASSERT_FATAL(rx_start(&rx, "smtp_receiver.py", NULL));
    env_init(&e);
    url_of(url, sizeof(url), "smtp", "127.0.0.1", rx.port, "");
    struct cm_httpc_mail m = {.url = url,
                              .from = "certmon@example.org",
                              .to = two_rcpts,
                              .message = message,
                              .timeout_ms = 10000};
    send_mail(&e, &m, &g);
    EXPECT_INT(g.curl_code, CURLE_OK);
    EXPECT_INT(g.status, 250);
    EXPECT_STR(g.error, "");
    env_finish(&e);

    log = rx_log(&rx);
    EXPECT_INT(json_array_size(log), 1);
    EXPECT_STR(cm_json_str(log, "0.mail_from"), "certmon@example.org");
    rc = cm_json_get(log, "0.rcpt_tos");
    EXPECT_INT(json_array_size(rc), 2);
    EXPECT_STR(cm_json_str(log, "0.rcpt_tos.0"), "ops@example.org");
    EXPECT_STR(cm_json_str(log, "0.rcpt_tos.1"), "oncall@example.org");
    EXPECT_STR(cm_json_str(log, "0.data"), message);
    CU_ASSERT(json_is_false(cm_json_get(log, "0.tls")));
    json_decref(log);
    rx_stop(&rx);
}

static void test_mail_starttls_auth(void)
{
    struct env e;
    struct rx tls, plain;
    struct got ok = {0}, badpw = {0}, untrusted = {0}, notls = {0};
    char url[128], purl[128];
    json_t *log;

    CU_ASSERT_FATAL(rx_start(&tls, "smtp_receiver.py", "--mode", "starttls", "--require-starttls",
                             "--cert", cm_th_pki("valid.chain.pem"), "--key", cm_th_pki("leaf.key"),
                             "--auth", "alerts:s3cret", NULL));
    CU_ASSERT_FATAL(rx_start(&plain, "smtp_receiver.py", NULL));
    env_init(&e);
    url_of(url, sizeof(url), "smtp", "localhost", tls.port, "");
    url_of(purl, sizeof(purl), "smtp", "127.0.0.1", plain.port, "");
    struct cm_httpc_mail m = {.url = url,
                              .starttls = 1,
                              .username = "alerts",
                              .password = "s3cret",
                              .from = "certmon@example.org",
                              .to = two_rcpts,
                              .message = message,
                              .ca_file = cm_th_pki("root.pem"),
                              .timeout_ms = 10000};
    send_mail(&e, &m, &ok);
    EXPECT_INT(ok.curl_code, CURLE_OK);
    EXPECT_INT(ok.status, 250);

    m.password = "wrong";
    send_mail(&e, &m, &badpw);
    EXPECT_INT(badpw.curl_code, CURLE_LOGIN_DENIED);
    EXPECT_INT(badpw.status, 535);

    m.password = "s3cret";
    m.ca_file = NULL;
    send_mail(&e, &m, &untrusted);
    EXPECT_INT(untrusted.curl_code, CURLE_PEER_FAILED_VERIFICATION);

    /* STARTTLS required but not offered: nothing is sent in the clear. */
    m.url = purl;
    m.ca_file = cm_th_pki("root.pem");
    send_mail(&e, &m, &notls);
    EXPECT_INT(notls.curl_code, CURLE_USE_SSL_FAILED);
    env_finish(&e);

    log = rx_log(&tls);
    EXPECT_INT(json_array_size(log), 1);
    CU_ASSERT(json_is_true(cm_json_get(log, "0.tls")));
    EXPECT_STR(cm_json_str(log, "0.auth_login"), "alerts");
    EXPECT_INT(json_array_size(cm_json_get(log, "0.rcpt_tos")), 2);
    EXPECT_STR(cm_json_str(log, "0.data"), message);
    json_decref(log);
    log = rx_log(&plain);
    EXPECT_INT(json_array_size(log), 0);
    json_decref(log);
    rx_stop(&tls);
    rx_stop(&plain);
}

static void test_mail_smtps(void)
{
    struct env e;
    struct rx rx;
    struct got g = {0};
    char url[128];
    json_t *log;

    CU_ASSERT_FATAL(rx_start(&rx, "smtp_receiver.py", "--mode", "smtps", "--cert",
                             cm_th_pki("valid.chain.pem"), "--key", cm_th_pki("leaf.key"), NULL));
    env_init(&e);
    url_of(url, sizeof(url), "smtps", "localhost", rx.port, "");
    struct cm_httpc_mail m = {.url = url,
                              .from = "certmon@example.org",
                              .to = two_rcpts,
                              .message = message,
                              .ca_file = cm_th_pki("root.pem"),
                              .timeout_ms = 10000};
    send_mail(&e, &m, &g);
    EXPECT_INT(g.curl_code, CURLE_OK);
    EXPECT_INT(g.status, 250);
    env_finish(&e);

    log = rx_log(&rx);
    EXPECT_INT(json_array_size(log), 1);
    CU_ASSERT(json_is_true(cm_json_get(log, "0.tls")));
    EXPECT_STR(cm_json_str(log, "0.data"), message);
    json_decref(log);
    rx_stop(&rx);
}

static void test_mail_rejected_recipient(void)
{
    struct env e;
    struct rx rx;
    struct got g = {0};
    char url[128];
    const char *to[] = {"ops@example.org", "nobody@example.org", NULL};
    json_t *log;

    CU_ASSERT_FATAL(rx_start(&rx, "smtp_receiver.py", "--reject-rcpt", "nobody@example.org", NULL));
    env_init(&e);
    url_of(url, sizeof(url), "smtp", "127.0.0.1", rx.port, "");
    struct cm_httpc_mail m = {.url = url,
                              .from = "certmon@example.org",
                              .to = to,
                              .message = message,
                              .timeout_ms = 10000};
    send_mail(&e, &m, &g);
    CU_ASSERT(g.curl_code != CURLE_OK);
    EXPECT_INT(g.status, 550);
    CU_ASSERT(g.error[0] != '\0');
    env_finish(&e);

    log = rx_log(&rx);
    EXPECT_INT(json_array_size(log), 0);
    json_decref(log);
    rx_stop(&rx);
}

/* ---- Redaction ---- */

static void test_redact(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"https://example.org/hook", "https://example.org/hook"},
        {"https://user:pa55@example.org:8443/x", "https://***@example.org:8443/x"},
        {"https://user@example.org/", "https://***@example.org/"},
        {"smtp://alerts:s3cret@mail.example.org:587", "smtp://***@mail.example.org:587"},
        {"https://example.org/api?token=abc&x=1", "https://example.org/api?***"},
        {"https://example.org/a#frag", "https://example.org/a#***"},
        {"https://example.org?key=1", "https://example.org?***"},
        {"https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX",
         "https://hooks.slack.com/services/***"},
        {"https://HOOKS.SLACK.COM:443/services/T1/B2/abc",
         "https://HOOKS.SLACK.COM:443/services/***"},
        {"https://hooks.slack.com/other/path", "https://hooks.slack.com/other/path"},
        {"https://discord.com/api/webhooks/123456789012345678/aBcD3fGh1jKlMn0pQrStUvWxYz_-12",
         "https://discord.com/api/webhooks/123456789012345678/***"},
        {"http://alertmanager:9093/api/v2/alerts", "http://alertmanager:9093/api/v2/alerts"},
        {"https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage",
         "https://api.telegram.org/***/sendMessage"},
        {"http://[::1]:8080/x?y", "http://[::1]:8080/x?***"},
        {"u:p@host/path", "***@host/path"},
        {"https://a:b@c@example.org/", "https://***@example.org/"},
        {"https://example.org/p@th", "https://example.org/p@th"},
        {"", ""},
    };
    char buf[256], small[16];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cm_httpc_redact(cases[i].in, buf, sizeof(buf));
        expect_str(buf, cases[i].want, cases[i].in, __LINE__);
    }
    cm_httpc_redact("https://user:pw@example.org/", small, sizeof(small));
    EXPECT_STR(small, "https://***@exa");
    cm_httpc_redact(NULL, buf, sizeof(buf));
    EXPECT_STR(buf, "");
    buf[0] = 'z';
    cm_httpc_redact("http://x/", buf, 0);
    CU_ASSERT(buf[0] == 'z');
    cm_httpc_redact("http://x/", buf, 1);
    EXPECT_STR(buf, "");
}

static void test_new_and_close_idle(void)
{
    struct env e;

    env_init(&e);
    EXPECT_INT(cm_httpc_active(e.h), 0);
    EXPECT_INT(cm_httpc_active(NULL), 0);
    cm_httpc_close(NULL);
    struct cm_httpc *none = (struct cm_httpc *)&e;
    EXPECT_INT(cm_httpc_new(NULL, &none, NULL, 0), -EINVAL);
    CU_ASSERT(none == NULL);
    env_finish(&e);
}

/* ---- Suite ---- */

static void remove_tmpdir(void)
{
    char cmd[128];

    if (tmpdir[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", tmpdir);
    }
}

static int suite_init(void)
{
    /* The receivers are on loopback: no proxy from the environment may come between. */
    static const char *const proxies[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
                                          "ALL_PROXY"};
    for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++)
        unsetenv(proxies[i]);
    setenv("no_proxy", "127.0.0.1,localhost", 1);
    signal(SIGPIPE, SIG_IGN);
    /* Process-wide state that opens descriptors once (libuv's signal lock pipe, GnuTLS)
     * comes first, so that the tests can count descriptors. */
    uv_loop_t warm;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || uv_loop_init(&warm) != 0 ||
        uv_loop_close(&warm) != 0)
        return 1;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/certmon-httpc.XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    atexit(remove_tmpdir);
    return cm_th_pki_dir() ? 0 : 1;
}

static CU_TestInfo tests[] = {
    {"redact", test_redact},
    {"new and close idle", test_new_and_close_idle},
    {"invalid arguments", test_invalid_arguments},
    {"POST JSON", test_post_json},
    {"content type and binary body", test_content_type_and_binary_body},
    {"GET", test_get},
    {"500 then 200", test_status_sequence},
    {"Retry-After", test_retry_after},
    {"timeout does not block others", test_timeout_does_not_block_others},
    {"connection refused", test_connection_refused},
    {"name resolution", test_resolver},
    {"empty reply", test_empty_reply},
    {"HTTPS", test_https},
    {"cancel", test_cancel},
    {"callbacks re-enter", test_callbacks_reenter},
    {"close in flight", test_close_in_flight},
    {"close from a callback", test_close_from_callback},
    {"50 concurrent", test_many_concurrent},
    {"body cap", test_body_cap},
    {"mail plain", test_mail_plain},
    {"mail STARTTLS and AUTH", test_mail_starttls_auth},
    {"mail SMTPS", test_mail_smtps},
    {"mail rejected recipient", test_mail_rejected_recipient},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("httpc", tests, suite_init, NULL);
}
