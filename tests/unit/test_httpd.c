/* unit.httpd: the HTTP listener on a real libuv loop (this thread) against real clients in a
 * second thread: libcurl (GnuTLS flavour, in process), raw sockets for what curl will not
 * send, and the curl command line (OpenSSL) where a second TLS stack matters. Every wait is
 * bounded: clients carry their own timeouts and the loop runs under a guard timer. */
#include "cmtest.h"

#include "certmon/base/error.h"
#include "certmon/http/httpd.h"
#include "certmon/base/log.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

/* ---- The server side: a loop, a listener and a handler with a few routes ---- */

struct srv {
    uv_loop_t loop;
    struct cm_httpd *h;
    int calls;   /* handler calls */
    int cancels; /* cancel callbacks run */
    char path[256], peer[64];
    struct cm_httpd_req *held_cancel; /* /hang: pending, with a cancel callback */
    struct cm_httpd_req *held_plain;  /* /hang-plain: pending, without one */
    int bad_status_rc;
};

struct slow {
    uv_timer_t timer;
    struct cm_httpd_req *req;
    struct srv *s;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_slow_closed(uv_handle_t *hd)
{
    free(hd->data);
}

static void on_slow_timer(uv_timer_t *t)
{
    struct slow *sl = t->data;

    CU_ASSERT_EQUAL(cm_httpd_respond(sl->req, 200, "text/plain", "slow\n", 5, 0), 0);
    uv_close((uv_handle_t *)&sl->timer, on_slow_closed);
}

static void on_slow_cancel(struct cm_httpd_req *req, void *arg)
{
    struct slow *sl = arg;

    sl->s->cancels++;
    uv_close((uv_handle_t *)&sl->timer, on_slow_closed);
}

static void on_hang_cancel(struct cm_httpd_req *req, void *arg)
{
    struct srv *s = arg;

    CU_ASSERT_PTR_EQUAL(req, s->held_cancel);
    s->cancels++;
    s->held_cancel = NULL;
}

/* Every query parameter as name=value lines, stopping at one named "stop". */
static int on_each_param(void *arg, const char *name, const char *value)
{
    char *body = arg;
    size_t len = strlen(body);

    snprintf(body + len, 512 - len, "%s=%s\n", name, value);
    return strcmp(name, "stop") ? 0 : 7;
}

static const char *const extra_headers[] = {"X-Test-Extra", "yes", NULL};
static const char *const bad_headers[] = {"X-Test-Extra", "a\r\nSet-Cookie: x=1", NULL};

static void handler(struct cm_httpd_req *req, const char *path, void *arg)
{
    struct srv *s = arg;

    s->calls++;
    snprintf(s->path, sizeof(s->path), "%s", path);
    snprintf(s->peer, sizeof(s->peer), "%s", cm_httpd_peer(req));
    if (!strcmp(path, "/hello")) {
        cm_httpd_respond(req, 200, "text/plain; charset=utf-8", "hello\n", 6, 0);
    } else if (!strcmp(path, "/query")) {
        const char *v = cm_httpd_query(req, "name");
        char *body = strdup(v ? v : "(none)");
        CU_ASSERT_PTR_NOT_NULL_FATAL(body);
        EXPECT_INT(cm_httpd_respond(req, 200, "text/plain", body, strlen(body), 1), 0);
    } else if (!strcmp(path, "/each")) {
        char *body = calloc(1, 512);
        CU_ASSERT_PTR_NOT_NULL_FATAL(body);
        int rc = cm_httpd_query_each(req, on_each_param, body);
        snprintf(body + strlen(body), 512 - strlen(body), "rc=%d\n", rc);
        cm_httpd_set_headers(req, extra_headers);
        EXPECT_INT(cm_httpd_respond(req, 200, "text/plain", body, strlen(body), 1), 0);
    } else if (!strcmp(path, "/bad-header")) {
        cm_httpd_set_headers(req, bad_headers);
        s->bad_status_rc = cm_httpd_respond(req, 200, "text/plain", "x", 1, 0);
    } else if (!strcmp(path, "/empty")) {
        cm_httpd_respond(req, 200, NULL, NULL, 0, 0);
    } else if (!strcmp(path, "/bad-status")) {
        s->bad_status_rc = cm_httpd_respond(req, 42, "text/plain", "x", 1, 0);
    } else if (!strcmp(path, "/slow")) {
        struct slow *sl = calloc(1, sizeof(*sl));
        CU_ASSERT_PTR_NOT_NULL_FATAL(sl);
        sl->req = req;
        sl->s = s;
        uv_timer_init(&s->loop, &sl->timer);
        sl->timer.data = sl;
        uv_timer_start(&sl->timer, on_slow_timer, 200, 0);
        cm_httpd_on_cancel(req, on_slow_cancel, sl);
    } else if (!strcmp(path, "/hang")) {
        s->held_cancel = req;
        cm_httpd_on_cancel(req, on_hang_cancel, s);
    } else if (!strcmp(path, "/hang-plain")) {
        s->held_plain = req;
    } else if (!strcmp(path, "/close")) {
        /* Closing from inside a handler takes effect once MHD_run has returned. */
        EXPECT_INT(cm_httpd_respond(req, 200, "text/plain", "bye\n", 4, 0), 0);
        cm_httpd_close(s->h);
        s->h = NULL;
    } else {
        cm_httpd_respond(req, 404, "text/plain", "not found\n", 10, 0);
    }
}

static struct cm_httpd_opts plain_opts(const char **listen, size_t n)
{
    struct cm_httpd_opts o = {.listen = listen, .listen_count = n};

    return o;
}

static int srv_start(struct srv *s, const struct cm_httpd_opts *o, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    CU_ASSERT_FATAL(uv_loop_init(&s->loop) == 0);
    return cm_httpd_start(&s->loop, o, handler, s, &s->h, err, errlen);
}

static void on_walk_report(uv_handle_t *hd, void *arg)
{
    fprintf(stderr, "handle left open: type=%s active=%d closing=%d\n",
            uv_handle_type_name(uv_handle_get_type(hd)), uv_is_active(hd), uv_is_closing(hd));
}

/* Closes the listener (if still open) and checks that the loop ends with nothing left. */
static void srv_finish(struct srv *s)
{
    int rc;

    cm_httpd_close(s->h);
    s->h = NULL;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&s->loop);
    if (rc != 0)
        uv_walk(&s->loop, on_walk_report, NULL);
    EXPECT_INT(rc, 0);
}

/* ---- Running the loop while a client works in another thread ---- */

struct resp {
    CURLcode cc;
    long status;
    char body[2048];
    size_t len;
    char ctype[128];
    char allow[64];
    char cache[64];
    char extra[64]; /* X-Test-Extra */
    double secs;
};

struct job {
    struct srv *s;
    void (*fn)(struct job *);
    int port, port2;
    struct resp r[10];
    long v[10];
    double d[10];
    char text[4][64];
    atomic_bool done;
    uv_async_t async;
};

static void *job_main(void *p)
{
    struct job *j = p;

    j->fn(j);
    atomic_store(&j->done, true);
    uv_async_send(&j->async);
    return NULL;
}

static void on_async(uv_async_t *a)
{
}

static void on_guard(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static void on_counted_close(uv_handle_t *hd)
{
    (*(int *)hd->loop->data)--;
}

/* Closes stack handles and runs the loop until their close callbacks ran. */
static void close_now(uv_loop_t *loop, uv_handle_t *a, uv_handle_t *b)
{
    int pending = 0;
    void *saved = loop->data;

    loop->data = &pending;
    if (a) {
        pending++;
        uv_close(a, on_counted_close);
    }
    if (b) {
        pending++;
        uv_close(b, on_counted_close);
    }
    while (pending > 0)
        uv_run(loop, UV_RUN_NOWAIT);
    loop->data = saved;
}

/* Runs fn in a thread while the loop runs here; the client must finish within max_ms. */
static void run_job(struct srv *s, struct job *j, void (*fn)(struct job *), unsigned max_ms)
{
    pthread_t th;
    uv_timer_t guard;
    bool expired = false;

    j->s = s;
    j->fn = fn;
    atomic_init(&j->done, false);
    CU_ASSERT_FATAL(uv_async_init(&s->loop, &j->async, on_async) == 0);
    uv_timer_init(&s->loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, on_guard, max_ms, 0);
    CU_ASSERT_FATAL(pthread_create(&th, NULL, job_main, j) == 0);
    while (!atomic_load(&j->done))
        uv_run(&s->loop, UV_RUN_ONCE);
    pthread_join(th, NULL);
    CU_ASSERT_FALSE(expired);
    close_now(&s->loop, (uv_handle_t *)&j->async, (uv_handle_t *)&guard);
}

/* Runs the loop until pred holds or max_ms passed. Returns whether it holds. */
static bool spin_until(struct srv *s, bool (*pred)(struct srv *), unsigned max_ms)
{
    uv_timer_t guard;
    bool expired = false;

    uv_timer_init(&s->loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, on_guard, max_ms, 0);
    while (!(pred && pred(s)) && !expired)
        uv_run(&s->loop, UV_RUN_ONCE);
    close_now(&s->loop, (uv_handle_t *)&guard, NULL);
    return pred ? pred(s) : true;
}

/* ---- Client helpers (run in the job thread) ---- */

struct ro {
    const char *method; /* NULL: GET; "HEAD"; "POST"; "GETBODY" (GET with a body); other */
    long timeout_ms;
    const char *cacert, *cert, *key;
    struct curl_slist *hdrs;
};

static size_t on_body(char *p, size_t sz, size_t n, void *u)
{
    struct resp *r = u;
    size_t k = sz * n, room = sizeof(r->body) - 1 - r->len;

    memcpy(r->body + r->len, p, k < room ? k : room);
    r->len += k < room ? k : room;
    r->body[r->len] = '\0';
    return k;
}

static void header_value(const char *p, size_t k, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);

    if (k > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
        const char *v = p + nl + 1;
        size_t vl = k - nl - 1;
        while (vl && (*v == ' '))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
            vl--;
        snprintf(out, outlen, "%.*s", (int)vl, v);
    }
}

static size_t on_header(char *p, size_t sz, size_t n, void *u)
{
    struct resp *r = u;

    header_value(p, sz * n, "Allow", r->allow, sizeof(r->allow));
    header_value(p, sz * n, "Cache-Control", r->cache, sizeof(r->cache));
    header_value(p, sz * n, "X-Test-Extra", r->extra, sizeof(r->extra));
    return sz * n;
}

/* One request with libcurl. reuse (may be NULL) keeps its connection between calls. */
static void fetch(CURL *reuse, const char *url, const struct ro *o, struct resp *r)
{
    static const struct ro none;
    CURL *c = reuse ? reuse : curl_easy_init();
    double t0 = now_s();
    char *ct = NULL;

    if (!o)
        o = &none;
    memset(r, 0, sizeof(*r));
    if (!c) {
        r->cc = CURLE_FAILED_INIT;
        return;
    }
    if (reuse)
        curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms ? o->timeout_ms : 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (o->hdrs)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, o->hdrs);
    if (o->method && !strcmp(o->method, "HEAD")) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (o->method && !strcmp(o->method, "POST")) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "a=1&b=2");
    } else if (o->method && !strcmp(o->method, "GETBODY")) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "GET");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "a body on a GET");
    } else if (o->method) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, o->method);
    }
    if (o->cacert)
        curl_easy_setopt(c, CURLOPT_CAINFO, o->cacert);
    if (o->cert)
        curl_easy_setopt(c, CURLOPT_SSLCERT, o->cert);
    if (o->key)
        curl_easy_setopt(c, CURLOPT_SSLKEY, o->key);
    r->cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
        snprintf(r->ctype, sizeof(r->ctype), "%s", ct);
    r->secs = now_s() - t0;
    if (!reuse)
        curl_easy_cleanup(c);
}

static void url_of(char *buf, size_t len, const char *scheme, const char *host, int port,
                   const char *path)
{
    snprintf(buf, len, "%s://%s:%d%s", scheme, host, port, path);
}

/* A blocking TCP connection to the loopback (IPv4 or IPv6) with 5 s send/receive limits. */
static int raw_connect(int family, int port)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    struct timeval tv = {5, 0};
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        a->sin6_addr = in6addr_loopback;
        len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*a);
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A TCP connection to 127.0.0.1:port from the loopback address src (any of 127.0.0.0/8, so
 * that a test can be several clients). Blocking with 5 s timeouts; -1 on failure. */
static int raw_connect_from(const char *src, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct sockaddr_in b = {.sin_family = AF_INET};
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    inet_pton(AF_INET, src, &b.sin_addr);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (bind(fd, (struct sockaddr *)&b, sizeof(b)) < 0 ||
        connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool raw_send(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* Reads until EOF, an error, cap bytes or timeout_ms. *how: 0 EOF, else the errno
 * (EAGAIN: the time ran out). Returns the bytes read (NUL-terminated in buf). */
static size_t raw_read(int fd, char *buf, size_t cap, int timeout_ms, int *how)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    size_t got = 0;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    *how = 0;
    while (got + 1 < cap) {
        ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            *how = errno == EWOULDBLOCK ? EAGAIN : errno;
            break;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    return got;
}

static long status_of(const char *buf)
{
    int code = 0;

    return sscanf(buf, "HTTP/1.%*d %d", &code) == 1 ? code : 0;
}

/* A stable path inside the test PKI (cm_th_pki's buffers rotate): interned, kept to the end. */
static const char *pki(const char *name)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static char *paths[64];
    static size_t n;
    const char *dir = cm_th_pki_dir();
    size_t dl = strlen(dir);
    char *p = NULL;

    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < n && !p; i++)
        if (!strcmp(paths[i] + dl + 1, name))
            p = paths[i];
    if (!p && n < 64 && (p = malloc(dl + strlen(name) + 2))) {
        sprintf(p, "%s/%s", dir, name);
        paths[n++] = p;
    }
    pthread_mutex_unlock(&mu);
    return p;
}

/* ---- Tests ---- */

static void get_basic_client(struct job *j)
{
    char url[128];
    CURL *c = curl_easy_init();
    struct ro head = {.method = "HEAD"};

    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/hello");
    fetch(c, url, NULL, &j->r[0]);
    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/no/such/page");
    fetch(c, url, NULL, &j->r[1]);
    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/hello");
    fetch(c, url, &head, &j->r[2]);
    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/empty");
    fetch(c, url, NULL, &j->r[3]);
    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/bad-status");
    fetch(c, url, NULL, &j->r[4]);
    curl_easy_cleanup(c);
}

static void test_get_basic(void)
{
    char listen[64], err[256];
    const char *ls[] = {listen};
    struct cm_httpd_opts o = plain_opts(ls, 1);
    struct srv s;
    struct job j = {0};

    j.port = cm_th_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", j.port);
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);
    run_job(&s, &j, get_basic_client, 20000);

    EXPECT_INT(j.r[0].cc, CURLE_OK);
    EXPECT_INT(j.r[0].status, 200);
    EXPECT_STR(j.r[0].body, "hello\n");
    EXPECT_STR(j.r[0].ctype, "text/plain; charset=utf-8");
    EXPECT_STR(j.r[0].cache, "no-store");
    EXPECT_INT(j.r[1].status, 404);
    EXPECT_STR(j.r[1].body, "not found\n");
    /* HEAD: the handler runs, MHD sends the headers only. */
    EXPECT_INT(j.r[2].cc, CURLE_OK);
    EXPECT_INT(j.r[2].status, 200);
    EXPECT_INT(j.r[2].len, 0);
    EXPECT_INT(j.r[3].status, 200);
    EXPECT_INT(j.r[3].len, 0);
    /* An invalid status is refused: the client gets a 500, the handler -EINVAL. */
    EXPECT_INT(j.r[4].status, 500);
    EXPECT_INT(s.bad_status_rc, -EINVAL);
    EXPECT_INT(s.calls, 5);
    EXPECT_STR(s.peer, "127.0.0.1");
    srv_finish(&s);
}

static void query_client(struct job *j)
{
    char url[160];

    url_of(url, sizeof(url), "http", "127.0.0.1", j->port,
           "/query?x=1&name=a%20b%26c%3D%C3%A9&y=2");
    fetch(NULL, url, NULL, &j->r[0]);
    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/query");
    fetch(NULL, url, NULL, &j->r[1]);
    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/query?name=plus+sign");
    fetch(NULL, url, NULL, &j->r[2]);
    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/hel%6co?name=1");
    fetch(NULL, url, NULL, &j->r[3]);
    url_of(url, sizeof(url), "http", "127.0.0.1", j->port,
           "/each?status=ok&status=warning&q=a+b%3C&flag&stop=1&after=2");
    fetch(NULL, url, NULL, &j->r[4]);
    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/hello");
    fetch(NULL, url, NULL, &j->r[5]); /* headers are per response: none here */
    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/bad-header");
    fetch(NULL, url, NULL, &j->r[6]);
}

static void test_query(void)
{
    char listen[64], err[256];
    const char *ls[] = {listen};
    struct cm_httpd_opts o = plain_opts(ls, 1);
    struct srv s;
    struct job j = {0};

    j.port = cm_th_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", j.port);
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);
    run_job(&s, &j, query_client, 20000);
    EXPECT_INT(j.r[0].status, 200);
    EXPECT_STR(j.r[0].body, "a b&c=\xc3\xa9");
    EXPECT_STR(j.r[1].body, "(none)");
    EXPECT_STR(j.r[2].body, "plus sign");
    /* The path reaches the handler percent-decoded and without its query. */
    EXPECT_INT(j.r[3].status, 200);
    EXPECT_STR(j.r[3].body, "hello\n");
    /* Every parameter in order, repeated names each time, until the callback stops. */
    EXPECT_INT(j.r[4].status, 200);
    EXPECT_STR(j.r[4].body, "status=ok\nstatus=warning\nq=a b<\nflag=\nstop=1\nrc=7\n");
    EXPECT_STR(j.r[4].extra, "yes");
    EXPECT_STR(j.r[4].cache, "no-store");
    EXPECT_STR(j.r[5].extra, "");
    /* A header value that would split the response is refused: a 500, not an injection. */
    EXPECT_INT(j.r[6].status, 500);
    EXPECT_STR(j.r[6].extra, "");
    EXPECT_INT(s.bad_status_rc, -EINVAL);
    EXPECT_STR(s.path, "/bad-header");
    srv_finish(&s);
}

static void methods_client(struct job *j)
{
    char url[128];
    struct ro post = {.method = "POST"}, getbody = {.method = "GETBODY"};
    struct ro del = {.method = "DELETE"}, options = {.method = "OPTIONS"};
    struct ro zero = {0};
    CURL *c = curl_easy_init();

    zero.hdrs = curl_slist_append(NULL, "Content-Length: 0");
    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/hello");
    fetch(NULL, url, &post, &j->r[0]);
    fetch(NULL, url, &getbody, &j->r[1]);
    fetch(NULL, url, &del, &j->r[2]);
    fetch(NULL, url, &options, &j->r[3]);
    fetch(NULL, url, &zero, &j->r[4]); /* an empty body is no body */
    /* A rejection closes its connection; a reused handle just reconnects. */
    fetch(c, url, &post, &j->r[5]);
    fetch(c, url, NULL, &j->r[6]);
    curl_slist_free_all(zero.hdrs);
    curl_easy_cleanup(c);
}

static void test_methods(void)
{
    char listen[64], err[256];
    const char *ls[] = {listen};
    struct cm_httpd_opts o = plain_opts(ls, 1);
    struct srv s;
    struct job j = {0};

    j.port = cm_th_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", j.port);
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);
    run_job(&s, &j, methods_client, 20000);
    EXPECT_INT(j.r[0].status, 405);
    EXPECT_STR(j.r[0].allow, "GET, HEAD");
    EXPECT_INT(j.r[1].status, 413);
    EXPECT_INT(j.r[2].status, 405);
    EXPECT_INT(j.r[3].status, 405);
    EXPECT_INT(j.r[4].status, 200);
    EXPECT_INT(j.r[5].status, 405);
    EXPECT_INT(j.r[6].status, 200);
    EXPECT_STR(j.r[6].body, "hello\n");
    EXPECT_INT(s.calls, 2);
    srv_finish(&s);
}

static bool one_cancel(struct srv *s)
{
    return s->cancels >= 1;
}

static void deferred_client(struct job *j)
{
    char url[128], buf[1024];
    struct resp quick;
    int fd, how;
    const char *hang = "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *slow = "GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    CURL *c = curl_easy_init();

    /* A request pending with the handler does not hold up another connection. (No CUnit
     * calls here: this is not the test's thread; results go to j.) */
    fd = raw_connect(AF_INET, j->port);
    if (fd >= 0 && raw_send(fd, hang, strlen(hang))) {
        url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/hello");
        fetch(NULL, url, NULL, &quick);
        j->v[0] = quick.status;
    }
    if (fd >= 0)
        close(fd);

    fd = raw_connect(AF_INET, j->port);
    if (fd >= 0 && raw_send(fd, slow, strlen(slow))) {
        raw_read(fd, buf, sizeof(buf), 3000, &how);
        j->v[1] = status_of(buf);
        j->v[2] = strstr(buf, "\r\n\r\nslow\n") != NULL;
    }
    if (fd >= 0)
        close(fd);

    /* Deferred, then another request on the same kept-alive connection. */
    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/slow");
    fetch(c, url, NULL, &j->r[0]);
    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/hello");
    fetch(c, url, NULL, &j->r[1]);
    curl_easy_cleanup(c);
}

static void test_deferred(void)
{
    char listen[64], err[256];
    const char *ls[] = {listen};
    struct cm_httpd_opts o = plain_opts(ls, 1);
    struct srv s;
    struct job j = {0};

    j.port = cm_th_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", j.port);
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);
    run_job(&s, &j, deferred_client, 20000);
    EXPECT_INT(j.v[0], 200);
    EXPECT_INT(j.v[1], 200);
    EXPECT_INT(j.v[2], 1);
    EXPECT_INT(j.r[0].status, 200);
    EXPECT_STR(j.r[0].body, "slow\n");
    CU_ASSERT(j.r[0].secs >= 0.18);
    EXPECT_INT(j.r[1].status, 200);
    /* The /hang client closed its connection: its cancel callback ran. */
    CU_ASSERT(spin_until(&s, one_cancel, 3000));
    EXPECT_INT(s.cancels, 1);
    srv_finish(&s);
}

static void gone_client(struct job *j)
{
    char url[128];
    struct ro quick = {.timeout_ms = j->v[8] ? j->v[8] : 300};

    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, j->text[0]);
    fetch(NULL, url, &quick, &j->r[0]);
}

static void hello_client(struct job *j)
{
    char url[128];

    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/hello");
    fetch(NULL, url, NULL, &j->r[0]);
}

static bool two_cancels(struct srv *s)
{
    return s->cancels >= 2;
}

static void test_client_gone(void)
{
    char listen[64], err[256];
    const char *ls[] = {listen};
    struct cm_httpd_opts o = plain_opts(ls, 1);
    struct srv s;
    struct job j = {0}, j2 = {0}, j3 = {0}, j4 = {0};
    char *late = strdup("too late\n");

    j.port = j2.port = j3.port = j4.port = cm_th_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", j.port);
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);

    /* With a cancel callback: it runs once the client has gone. */
    snprintf(j.text[0], sizeof(j.text[0]), "/hang");
    run_job(&s, &j, gone_client, 10000);
    EXPECT_INT(j.r[0].cc, CURLE_OPERATION_TIMEDOUT);
    CU_ASSERT(spin_until(&s, one_cancel, 3000));
    CU_ASSERT_PTR_NULL(s.held_cancel);

    /* The deferred answer of /slow (200 ms) is stopped by its cancel callback: the client
     * leaves after 80 ms. */
    snprintf(j2.text[0], sizeof(j2.text[0]), "/slow");
    j2.v[8] = 80;
    run_job(&s, &j2, gone_client, 10000);
    EXPECT_INT(j2.r[0].cc, CURLE_OPERATION_TIMEDOUT);
    CU_ASSERT(spin_until(&s, two_cancels, 3000));

    /* Without a cancel callback: the late answer is dropped, safely. */
    snprintf(j3.text[0], sizeof(j3.text[0]), "/hang-plain");
    run_job(&s, &j3, gone_client, 10000);
    EXPECT_INT(j3.r[0].cc, CURLE_OPERATION_TIMEDOUT);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.held_plain);
    spin_until(&s, NULL, 300);
    EXPECT_INT(cm_httpd_respond(s.held_plain, 200, "text/plain", late, strlen(late), 1), 0);
    s.held_plain = NULL;

    /* And the listener still serves. */
    run_job(&s, &j4, hello_client, 10000);
    EXPECT_INT(j4.r[0].status, 200);
    EXPECT_INT(s.cancels, 2);
    srv_finish(&s);
}

static void big_header_client(struct job *j)
{
    char url[128];
    size_t sizes[] = {64 * 1024, 20 * 1024, 8 * 1024};

    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/hello");
    for (int i = 0; i < 3; i++) {
        size_t n = sizes[i];
        char *h = malloc(n + 16);
        struct curl_slist *l;
        struct ro o = {0};

        memcpy(h, "X-Big: ", 7);
        memset(h + 7, 'a', n - 7);
        h[n] = '\0';
        l = curl_slist_append(NULL, h);
        o.hdrs = l;
        fetch(NULL, url, &o, &j->r[i]);
        curl_slist_free_all(l);
        free(h);
    }
    /* A 64 KiB request line, sent raw: curl may refuse to send it. */
    {
        size_t n = 64 * 1024;
        char *req = malloc(n + 64), buf[1024];
        int fd = raw_connect(AF_INET, j->port), how;

        memcpy(req, "GET /", 5);
        memset(req + 5, 'a', n);
        strcpy(req + 5 + n, " HTTP/1.1\r\nHost: x\r\n\r\n");
        if (fd >= 0) {
            raw_send(fd, req, strlen(req));
            raw_read(fd, buf, sizeof(buf), 3000, &how);
            j->v[0] = status_of(buf);
            close(fd);
        }
        free(req);
    }
    fetch(NULL, url, NULL, &j->r[3]);
}

static void test_oversized(void)
{
    char listen[64], err[256];
    const char *ls[] = {listen};
    struct cm_httpd_opts o = plain_opts(ls, 1);
    struct srv s;
    struct job j = {0};

    j.port = cm_th_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", j.port);
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);
    run_job(&s, &j, big_header_client, 30000);
    fprintf(stderr,
            "\n  oversized: 64K header -> %ld (curl %d), 20K header -> %ld, "
            "8K header -> %ld, 64K URI -> %ld\n",
            j.r[0].status, (int)j.r[0].cc, j.r[1].status, j.r[2].status, j.v[0]);
    EXPECT_INT(j.r[0].status, 431);
    EXPECT_INT(j.r[1].status, 431);
    EXPECT_INT(j.r[2].status, 200);
    CU_ASSERT(j.v[0] == 414 || j.v[0] == 431);
    EXPECT_INT(j.r[3].status, 200);
    EXPECT_INT(s.calls, 2);
    srv_finish(&s);
}

/* A raw request of exactly total bytes (request line, headers, blank line) for /hello. */
static long sized_request(int port, size_t total)
{
    const char *head = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: ";
    size_t hl = strlen(head), pad = total - hl - 4;
    char *req = malloc(total + 1), buf[512];
    int fd = raw_connect(AF_INET, port), how;
    long st = -1;

    memcpy(req, head, hl);
    memset(req + hl, 'p', pad);
    memcpy(req + hl + pad, "\r\n\r\n", 5);
    if (fd >= 0) {
        raw_send(fd, req, total);
        raw_read(fd, buf, sizeof(buf), 3000, &how);
        st = status_of(buf);
        close(fd);
    }
    free(req);
    return st;
}

static void boundary_client(struct job *j)
{
    j->v[0] = sized_request(j->port, 4096);
    j->v[1] = sized_request(j->port, 4097);
    j->v[2] = sized_request(j->port, 100);
}

static void test_request_size_limit(void)
{
    char listen[64], err[256];
    const char *ls[] = {listen};
    struct cm_httpd_opts o = plain_opts(ls, 1);
    struct srv s;
    struct job j = {0};

    o.max_request_bytes = 4096;
    j.port = cm_th_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", j.port);
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);
    run_job(&s, &j, boundary_client, 20000);
    fprintf(stderr, "\n  max_request_bytes=4096: 4096 bytes -> %ld, 4097 bytes -> %ld\n", j.v[0],
            j.v[1]);
    EXPECT_INT(j.v[0], 200);
    EXPECT_INT(j.v[1], 431);
    EXPECT_INT(j.v[2], 200);
    EXPECT_INT(s.calls, 2);
    srv_finish(&s);
}

static void garbage_client(struct job *j)
{
    static const char *const inputs[] = {
        "GARBAGE\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        "GET /hello\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    };
    char buf[1024];
    char url[128];

    for (int i = 0; i < 5; i++) {
        int fd = raw_connect(AF_INET, j->port), how;
        if (fd < 0)
            continue;
        j->d[i] = now_s();
        raw_send(fd, inputs[i], strlen(inputs[i]));
        raw_read(fd, buf, sizeof(buf), 2000, &how);
        j->d[i] = now_s() - j->d[i];
        j->v[i] = status_of(buf);
        j->v[5 + i] = how;
        close(fd);
    }
    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/hello");
    fetch(NULL, url, NULL, &j->r[0]);
}

static const char *how_name(long how)
{
    return how == 0 ? "closed" : how == EAGAIN ? "still open" : strerror((int)how);
}

static void test_malformed(void)
{
    static const char *const names[] = {"GARBAGE", "HTTP/9.9", "bad header line", "no HTTP version",
                                        "TLS bytes on the plain port"};
    char listen[64], err[256];
    const char *ls[] = {listen};
    struct cm_httpd_opts o = plain_opts(ls, 1);
    struct srv s;
    struct job j = {0};

    j.port = cm_th_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", j.port);
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);
    run_job(&s, &j, garbage_client, 30000);
    fprintf(stderr, "\n");
    for (int i = 0; i < 5; i++)
        fprintf(stderr, "  malformed: %s -> status %ld, %s after %.2f s\n", names[i], j.v[i],
                how_name(j.v[5 + i]), j.d[i]);
    /* MHD 0.9.75 closes at once, without a response, on a request line without a space. */
    CU_ASSERT(j.v[0] == 400 || (j.v[0] == 0 && j.v[5] == 0 && j.d[0] < 1.0));
    EXPECT_INT(j.v[1], 505);
    EXPECT_INT(j.v[2], 400);
    EXPECT_INT(j.v[3], 400);
    /* Binary junk: nothing is answered and the idle timeout ends it. */
    EXPECT_INT(j.v[4], 0);
    EXPECT_INT(j.r[0].status, 200);
    EXPECT_INT(s.calls, 1);
    srv_finish(&s);
}

static double cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* Every slot (two) held by idle connections: a newcomer replaces the oldest one, which is
 * told 408 and closed; the other stays. */
static void limit_client(struct job *j)
{
    const char *req = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char buf[1024];
    int a = raw_connect(AF_INET, j->port);
    int b, c, how;

    usleep(100 * 1000); /* a is the oldest */
    b = raw_connect(AF_INET, j->port);
    usleep(200 * 1000); /* let the listener accept both */
    c = raw_connect(AF_INET, j->port);
    j->v[0] = a >= 0 && b >= 0;
    if (c >= 0) {
        raw_send(c, req, strlen(req));
        j->d[0] = now_s();
        raw_read(c, buf, sizeof(buf), 2000, &how);
        j->d[0] = now_s() - j->d[0];
        j->v[1] = status_of(buf);
        close(c);
    }
    if (a >= 0) {
        raw_read(a, buf, sizeof(buf), 2000, &how);
        j->v[2] = status_of(buf);
        j->v[3] = how;
        close(a);
    }
    if (b >= 0) {
        raw_read(b, buf, sizeof(buf), 300, &how);
        j->v[4] = how; /* EAGAIN: still open */
        close(b);
    }
}

/* Both slots (one, and the guard's spare) busy with pending requests: a newcomer waits
 * (nothing to replace) without the listener spinning, and is served once a slot frees. */
static void limit_busy_client(struct job *j)
{
    const char *hang = "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *plain = "GET /hang-plain HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *req = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char buf[1024];
    int a = raw_connect(AF_INET, j->port), b, c = -1, how;
    double cpu0;

    if (a >= 0)
        raw_send(a, hang, strlen(hang));
    usleep(100 * 1000);
    b = raw_connect_from("127.0.0.2", j->port); /* other clients: no per-address limit */
    if (b >= 0)
        raw_send(b, plain, strlen(plain));
    usleep(200 * 1000);
    c = raw_connect_from("127.0.0.3", j->port);
    j->v[0] = a >= 0 && b >= 0;
    if (c >= 0) {
        raw_send(c, req, strlen(req));
        cpu0 = cpu_s();
        j->d[0] = now_s();
        raw_read(c, buf, sizeof(buf), 1000, &how);
        j->d[0] = now_s() - j->d[0];
        j->d[1] = cpu_s() - cpu0;
        j->v[1] = status_of(buf); /* 0: not served */
        j->v[2] = how;
    }
    if (a >= 0)
        close(a);
    if (c >= 0) {
        raw_read(c, buf, sizeof(buf), 3000, &how);
        j->v[3] = status_of(buf);
        close(c);
    }
    if (b >= 0)
        close(b);
}

static void test_connection_limit(void)
{
    char listen[64], err[256];
    const char *ls[] = {listen};
    struct cm_httpd_opts o = plain_opts(ls, 1);
    struct srv s;
    struct job j = {0};

    o.max_connections = 2;
    o.max_per_client = 2;
    j.port = cm_th_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", j.port);
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);
    run_job(&s, &j, limit_client, 20000);
    fprintf(stderr,
            "\n  limit: third connection while two idle -> %ld after %.2f s; oldest idle -> %ld "
            "(%s); the other %s\n",
            j.v[1], j.d[0], j.v[2], j.v[3] ? strerror((int)j.v[3]) : "EOF",
            j.v[4] == EAGAIN ? "stays open" : "closed");
    EXPECT_INT(j.v[0], 1);
    EXPECT_INT(j.v[1], 200);
    CU_ASSERT(j.d[0] < 1.0);
    EXPECT_INT(j.v[2], 408);
    EXPECT_INT(j.v[3], 0);
    EXPECT_INT(j.v[4], EAGAIN);
    srv_finish(&s);

    memset(&j, 0, sizeof(j));
    o.max_connections = 1;
    j.port = cm_th_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", j.port);
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);
    run_job(&s, &j, limit_busy_client, 20000);
    CU_ASSERT_PTR_NOT_NULL(s.held_plain);
    if (s.held_plain) /* its client left: the answer is dropped */
        EXPECT_INT(cm_httpd_respond(s.held_plain, 200, "text/plain", "late\n", 5, 0), 0);
    s.held_plain = NULL;
    fprintf(stderr,
            "  limit: third connection while two are pending -> status %ld (%s) after %.2f s, "
            "cpu %.3f s; after it left -> %ld\n",
            j.v[1],
            j.v[2] == EAGAIN ? "timed out"
            : j.v[2]         ? strerror((int)j.v[2])
                             : "EOF",
            j.d[0], j.d[1], j.v[3]);
    EXPECT_INT(j.v[0], 1);
    EXPECT_INT(j.v[1], 0);
    CU_ASSERT(j.d[1] < 0.5); /* the listener does not spin while at its limit */
    EXPECT_INT(j.v[3], 200);
    srv_finish(&s);
}

/* One case of each thing the guard does, in turn: a refusal (the address at its limit of one
 * with its only connection pending), a replacement at the per-address limit, a head timeout,
 * and a replacement when every slot is taken. v[0..3]: what each victim saw (1: closed). */
static void guard_client(struct job *j)
{
    const char *hang = "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[256];
    int a = raw_connect_from("127.0.0.1", j->port), b, c, d, e[3], f, how;

    if (a >= 0)
        raw_send(a, hang, strlen(hang));
    usleep(200 * 1000);
    /* 127.0.0.1 holds its one connection, busy: refused. */
    b = raw_connect_from("127.0.0.1", j->port);
    if (b >= 0) {
        raw_read(b, buf, sizeof(buf), 2000, &how);
        j->v[0] = how != EAGAIN; /* closed (EOF or reset), not left waiting */
        close(b);
    }
    /* 127.0.0.2 at its limit, its connection waiting for a head: the newer one replaces it. */
    c = raw_connect_from("127.0.0.2", j->port);
    usleep(200 * 1000);
    d = raw_connect_from("127.0.0.2", j->port);
    if (c >= 0) {
        raw_read(c, buf, sizeof(buf), 2000, &how);
        j->v[1] = status_of(buf) == 408;
        close(c);
    }
    /* d says nothing: closed at the head deadline (1 s). */
    if (d >= 0) {
        raw_read(d, buf, sizeof(buf), 3000, &how);
        j->v[2] = status_of(buf) == 408;
        close(d);
    }
    /* a (pending) and three idle ones fill the four slots; a fifth replaces the oldest idle. */
    for (int i = 0; i < 3; i++) {
        char src[32];
        snprintf(src, sizeof(src), "127.0.0.%d", 3 + i);
        e[i] = raw_connect_from(src, j->port);
        usleep(50 * 1000);
    }
    usleep(100 * 1000);
    f = raw_connect_from("127.0.0.9", j->port);
    if (e[0] >= 0) {
        raw_read(e[0], buf, sizeof(buf), 900, &how);
        j->v[3] = status_of(buf) == 408;
    }
    for (int i = 0; i < 3; i++)
        if (e[i] >= 0)
            close(e[i]);
    if (f >= 0)
        close(f);
    if (a >= 0)
        close(a);
}

static void test_guard_counters(void)
{
    char listen[64], err[256];
    const char *ls[] = {listen};
    struct cm_httpd_opts o = plain_opts(ls, 1);
    struct cm_httpd_counters c = {0};
    struct srv s;
    struct job j = {0};

    o.max_connections = 4;
    o.max_per_client = 1;
    o.head_timeout_ms = 1000;
    o.counters = &c;
    j.port = cm_th_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", j.port);
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);
    run_job(&s, &j, guard_client, 20000);
    srv_finish(&s);
    fprintf(stderr,
            "\n  guard: refused %llu per client; evicted %llu per client, %llu head timeout, "
            "%llu full\n",
            (unsigned long long)c.refused_per_client, (unsigned long long)c.evicted_per_client,
            (unsigned long long)c.evicted_head_timeout, (unsigned long long)c.evicted_full);
    EXPECT_INT(j.v[0], 1);
    EXPECT_INT(j.v[1], 1);
    EXPECT_INT(j.v[2], 1);
    EXPECT_INT(j.v[3], 1);
    EXPECT_INT(c.refused_per_client, 1);
    EXPECT_INT(c.evicted_per_client, 1);
    EXPECT_INT(c.evicted_head_timeout, 1);
    EXPECT_INT(c.evicted_full, 1);
}

static void idle_client(struct job *j)
{
    char buf[64];
    int fd = raw_connect(AF_INET, j->port), how = -1;

    j->d[0] = now_s();
    if (fd >= 0) {
        j->v[0] = (long)raw_read(fd, buf, sizeof(buf), 6000, &how);
        close(fd);
    }
    j->d[0] = now_s() - j->d[0];
    j->v[1] = how;
}

static void test_idle_timeout(void)
{
    char listen[64], err[256];
    const char *ls[] = {listen};
    struct cm_httpd_opts o = plain_opts(ls, 1);
    struct srv s;
    struct job j = {0};

    o.idle_timeout_s = 1;
    j.port = cm_th_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", j.port);
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);
    run_job(&s, &j, idle_client, 20000);
    fprintf(stderr, "\n  idle: closed after %.2f s (%s)\n", j.d[0],
            j.v[1] == 0 ? "EOF" : strerror((int)j.v[1]));
    EXPECT_INT(j.v[0], 0);
    EXPECT_INT(j.v[1], 0);
    CU_ASSERT(j.d[0] >= 0.5 && j.d[0] < 3.5);
    srv_finish(&s);
}

/* ---- Hostile clients: slow heads, floods of idle connections ---- */

#define SLOW_N 64
#define FLOOD_N 2000
static const char slow_head[] = "GET /hello HTTP/1.1\r\nHost: x\r\nUser-Agent: drip\r\n\r\n";

/* 0 while fd is open and silent; 1 once the server closed it (EOF, reset, or a 408 first). */
static int server_closed(int fd, long *status)
{
    char buf[512];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

    if (n > 0) {
        buf[n] = '\0';
        if (status && !*status)
            *status = status_of(buf);
        return 1;
    }
    if (n == 0)
        return 1;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : 1;
}

/* GET /hello from src; status (0: none) and seconds taken. */
static long quick_get(int port, const char *src, double *took)
{
    const char *req = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    double t0 = now_s();
    char buf[1024];
    long st = 0;
    int fd = raw_connect_from(src, port), how;

    if (fd >= 0) {
        raw_send(fd, req, strlen(req));
        raw_read(fd, buf, sizeof(buf), 5000, &how);
        st = status_of(buf);
        close(fd);
    }
    *took = now_s() - t0;
    return st;
}

struct dripper {
    int fd[SLOW_N];
    double opened[SLOW_N], closed[SLOW_N];
    long status[SLOW_N];
    size_t sent[SLOW_N];
};

/* 64 connections from 8 addresses (127.0.0.2-9) that each send one header byte a second. */
static void drip_open(struct dripper *d, int port)
{
    char src[32];

    for (int i = 0; i < SLOW_N; i++) {
        snprintf(src, sizeof(src), "127.0.0.%d", 2 + i % 8);
        d->fd[i] = raw_connect_from(src, port);
        d->opened[i] = now_s();
        d->closed[i] = 0;
        d->status[i] = 0;
        d->sent[i] = 0;
    }
}

/* One round: notes the connections the server closed, sends the next byte on the others.
 * Returns how many are still open. */
static int drip_round(struct dripper *d)
{
    int open_n = 0;

    for (int i = 0; i < SLOW_N; i++) {
        if (d->fd[i] < 0 || d->closed[i] > 0)
            continue;
        if (server_closed(d->fd[i], &d->status[i])) {
            d->closed[i] = now_s();
            continue;
        }
        if (d->sent[i] < sizeof(slow_head) - 1 &&
            send(d->fd[i], slow_head + d->sent[i], 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
            d->sent[i]++;
        open_n++;
    }
    return open_n;
}

static void drip_close(struct dripper *d)
{
    for (int i = 0; i < SLOW_N; i++)
        if (d->fd[i] >= 0)
            close(d->fd[i]);
}

/* Phase 1: slow heads alone (room for all of them): each is cut by the head deadline (3 s
 * here), told 408, while others are served at once. */
static void slowloris_client(struct job *j)
{
    struct dripper *d = calloc(1, sizeof(*d));
    double end, worst = 0, took;
    int served = 0, tries = 0;

    if (!d)
        return;
    drip_open(d, j->port);
    end = now_s() + 8.0;
    while (now_s() < end && drip_round(d) > 0) {
        long st = quick_get(j->port, tries % 2 ? "127.0.0.1" : "127.0.0.2", &took);
        tries++;
        served += st == 200;
        if (took > worst)
            worst = took;
        usleep(1000 * 1000);
    }
    drip_round(d);
    j->v[0] = 0;   /* connected */
    j->v[1] = 0;   /* closed by the server */
    j->v[2] = 0;   /* told 408 */
    j->d[0] = 1e9; /* earliest close after connecting */
    j->d[1] = 0;   /* latest */
    for (int i = 0; i < SLOW_N; i++) {
        if (d->fd[i] < 0)
            continue;
        j->v[0]++;
        if (d->closed[i] > 0) {
            double life = d->closed[i] - d->opened[i];
            j->v[1]++;
            j->v[2] += d->status[i] == 408;
            if (life < j->d[0])
                j->d[0] = life;
            if (life > j->d[1])
                j->d[1] = life;
        }
    }
    j->v[3] = served;
    j->v[4] = tries;
    j->d[2] = worst;
    drip_close(d);
    free(d);
}

/* Phase 2, with the default limits: 64 slow heads from 8 addresses, then 2,000 idle
 * connections from 127.0.0.1; requests from 127.0.0.1 itself and from another address are
 * still answered quickly, and 127.0.0.1 holds no more than its share. */
static void flood_client(struct job *j)
{
    struct dripper *d = calloc(1, sizeof(*d));
    int *idle = calloc(FLOOD_N, sizeof(*idle));
    int opened = 0, still_open = 0, served = 0, tries = 0;
    double worst = 0, took, t0;

    if (!d || !idle) {
        free(d);
        free(idle);
        return;
    }
    drip_open(d, j->port);
    drip_round(d);
    t0 = now_s();
    for (int i = 0; i < FLOOD_N; i++) {
        idle[i] = raw_connect_from("127.0.0.1", j->port);
        opened += idle[i] >= 0;
    }
    j->d[0] = now_s() - t0;
    for (int round = 0; round < 4; round++) {
        drip_round(d);
        for (int k = 0; k < 3; k++) {
            static const char *const from[] = {"127.0.0.1", "127.0.0.2", "127.0.0.77"};
            long st = quick_get(j->port, from[k], &took);
            tries++;
            served += st == 200;
            if (took > worst)
                worst = took;
        }
        usleep(700 * 1000);
    }
    for (int i = 0; i < FLOOD_N; i++)
        if (idle[i] >= 0 && !server_closed(idle[i], NULL))
            still_open++;
    j->v[0] = opened;
    j->v[1] = still_open;
    j->v[2] = served;
    j->v[3] = tries;
    j->d[1] = worst;
    for (int i = 0; i < FLOOD_N; i++)
        if (idle[i] >= 0)
            close(idle[i]);
    drip_close(d);
    free(idle);
    free(d);
}

static void test_hostile_clients(void)
{
    char listen[64], err[256];
    const char *ls[] = {listen};
    struct cm_httpd_opts o = plain_opts(ls, 1);
    struct rlimit rl;
    struct srv s;
    struct job j = {0};

    /* Both ends of every connection live in this process: 2,000 + 64 clients and the
     * server's 65. */
    CU_ASSERT_FATAL(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_cur < 4 * FLOOD_N) {
        rl.rlim_cur = rl.rlim_max < 4 * FLOOD_N ? rl.rlim_max : 4 * FLOOD_N;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    CU_ASSERT_FATAL(rl.rlim_cur >= FLOOD_N + SLOW_N + 200);

    o.max_connections = 128; /* room for every slow connection: only the deadline cuts */
    o.head_timeout_ms = 3000;
    j.port = cm_th_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", j.port);
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);
    run_job(&s, &j, slowloris_client, 30000);
    fprintf(stderr,
            "\n  slow heads: %ld connected, %ld closed (%ld with 408) after %.2f-%.2f s; "
            "meanwhile %ld/%ld requests served, slowest %.3f s\n",
            j.v[0], j.v[1], j.v[2], j.d[0], j.d[1], j.v[3], j.v[4], j.d[2]);
    EXPECT_INT(j.v[0], SLOW_N);
    EXPECT_INT(j.v[1], SLOW_N);
    EXPECT_INT(j.v[2], SLOW_N);
    CU_ASSERT(j.d[0] >= 2.5);                          /* not before the deadline */
    CU_ASSERT(j.d[1] <= 3.0 + 2.0 * CERTMON_SLOWDOWN); /* and soon after it */
    EXPECT_INT(j.v[3], j.v[4]);
    CU_ASSERT(j.d[2] < 1.0 * CERTMON_SLOWDOWN);
    srv_finish(&s);

    memset(&j, 0, sizeof(j));
    o = plain_opts(ls, 1); /* the defaults: 64 connections, 16 per address, 10 s heads */
    j.port = cm_th_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", j.port);
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);
    run_job(&s, &j, flood_client, 60000);
    fprintf(stderr,
            "  flood: %ld idle connections from 127.0.0.1 in %.2f s (+64 slow heads), %ld left "
            "open by the server; %ld/%ld requests served, slowest %.3f s\n",
            j.v[0], j.d[0], j.v[1], j.v[2], j.v[3], j.d[1]);
    EXPECT_INT(j.v[0], FLOOD_N);
    CU_ASSERT(j.v[1] <= 16); /* one address's share */
    EXPECT_INT(j.v[2], j.v[3]);
    CU_ASSERT(j.d[1] < 1.0 * CERTMON_SLOWDOWN);
    srv_finish(&s);
}

static void tls_client(struct job *j)
{
    char url[128];
    struct ro o = {.cacert = pki("root.pem")};

    url_of(url, sizeof(url), "https", "127.0.0.1", j->port, "/hello");
    fetch(NULL, url, &o, &j->r[0]);
    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/hello");
    fetch(NULL, url, NULL, &j->r[1]);
    url_of(url, sizeof(url), "https", "localhost", j->port, "/hello");
    fetch(NULL, url, &o, &j->r[2]);
    /* Deferred over TLS, and a client that leaves while its request is pending. */
    url_of(url, sizeof(url), "https", "127.0.0.1", j->port, "/slow");
    fetch(NULL, url, &o, &j->r[3]);
    /* Long enough for the handshake and the request to reach the handler on a loaded
     * machine under sanitizers (500 ms was not, there). */
    o.timeout_ms = 2000;
    url_of(url, sizeof(url), "https", "127.0.0.1", j->port, "/hang");
    fetch(NULL, url, &o, &j->r[4]);
}

static void test_tls(void)
{
    char listen[64], err[256];
    const char *ls[] = {listen};
    struct cm_httpd_opts o = plain_opts(ls, 1);
    struct srv s;
    struct job j = {0};
    const char *cert = pki("valid.chain.pem"), *key = pki("leaf.key");

    o.tls_cert = cert;
    o.tls_key = key;
    j.port = cm_th_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", j.port);
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);
    run_job(&s, &j, tls_client, 20000);
    EXPECT_INT(j.r[0].cc, CURLE_OK);
    EXPECT_INT(j.r[0].status, 200);
    EXPECT_STR(j.r[0].body, "hello\n");
    CU_ASSERT_NOT_EQUAL(j.r[1].status, 200); /* plain HTTP on the TLS port */
    EXPECT_INT(j.r[2].status, 200);          /* localhost resolves to 127.0.0.1 here */
    EXPECT_INT(j.r[3].status, 200);
    EXPECT_STR(j.r[3].body, "slow\n");
    EXPECT_INT(j.r[4].cc, CURLE_OPERATION_TIMEDOUT);
    CU_ASSERT(spin_until(&s, one_cancel, 3000));
    EXPECT_INT(s.calls, 4);
    srv_finish(&s);
}

/* The curl command line (OpenSSL): sends its certificate whatever CA the server names. */
static long curl_cli(const char *url, const char *cert, const char *key)
{
    char *argv[20], *out = NULL;
    int n = 0;
    long code = -1;

    argv[n++] = "curl";
    argv[n++] = "-s";
    argv[n++] = "--noproxy";
    argv[n++] = "*";
    argv[n++] = "-o";
    argv[n++] = "/dev/null";
    argv[n++] = "-w";
    argv[n++] = "%{http_code}";
    argv[n++] = "--max-time";
    argv[n++] = "5";
    argv[n++] = "--cacert";
    argv[n++] = (char *)pki("root.pem");
    if (cert) {
        argv[n++] = "--cert";
        argv[n++] = (char *)cert;
        argv[n++] = "--key";
        argv[n++] = (char *)key;
    }
    argv[n++] = (char *)url;
    argv[n] = NULL;
    cm_th_run(argv, &out, 10, NULL);
    if (out)
        code = strtol(out, NULL, 10);
    free(out);
    return code;
}

static void mtls_client(struct job *j)
{
    char url[128];
    struct ro ok = {.cacert = pki("root.pem"), .cert = pki("client.pem"), .key = pki("client.key")};
    struct ro none = {.cacert = pki("root.pem")};
    struct ro foreign = {
        .cacert = pki("root.pem"), .cert = pki("foreign_client.pem"), .key = pki("client.key")};
    struct ro expired = {
        .cacert = pki("root.pem"), .cert = pki("client_expired.pem"), .key = pki("client.key")};
    struct ro server_cert = {
        .cacert = pki("root.pem"), .cert = pki("valid.pem"), .key = pki("leaf.key")};

    url_of(url, sizeof(url), "https", "127.0.0.1", j->port, "/hello");
    fetch(NULL, url, &ok, &j->r[0]);
    fetch(NULL, url, &none, &j->r[1]);
    fetch(NULL, url, &foreign, &j->r[2]);
    fetch(NULL, url, &expired, &j->r[3]);
    fetch(NULL, url, &server_cert, &j->r[4]);
    j->v[0] = curl_cli(url, pki("client.pem"), pki("client.key"));
    j->v[1] = curl_cli(url, NULL, NULL);
    j->v[2] = curl_cli(url, pki("foreign_client.pem"), pki("client.key"));
    j->v[3] = curl_cli(url, pki("client_expired.pem"), pki("client.key"));
}

static void test_mtls(void)
{
    char listen[64], err[256];
    const char *ls[] = {listen};
    struct cm_httpd_opts o = plain_opts(ls, 1);
    struct srv s;
    struct job j = {0};

    o.tls_cert = pki("valid.chain.pem");
    o.tls_key = pki("leaf.key");
    o.client_ca = pki("inter.pem"); /* it signed client.pem */
    j.port = cm_th_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", j.port);
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);
    run_job(&s, &j, mtls_client, 40000);
    fprintf(stderr,
            "\n  mtls (libcurl/GnuTLS): client -> %ld, none -> %ld (curl %d), foreign -> %ld "
            "(curl %d), expired -> %ld, server cert as client -> %ld\n"
            "  mtls (curl CLI/OpenSSL): client -> %ld, none -> %ld, foreign -> %ld, "
            "expired -> %ld\n",
            j.r[0].status, j.r[1].status, (int)j.r[1].cc, j.r[2].status, (int)j.r[2].cc,
            j.r[3].status, j.r[4].status, j.v[0], j.v[1], j.v[2], j.v[3]);
    EXPECT_INT(j.r[0].status, 200);
    EXPECT_STR(j.r[0].body, "hello\n");
    EXPECT_INT(j.r[1].status, 403);
    CU_ASSERT(j.r[2].status != 200);
    CU_ASSERT(j.r[3].status != 200);
    CU_ASSERT(j.r[4].status != 200);
    EXPECT_INT(j.v[0], 200);
    EXPECT_INT(j.v[1], 403);
    EXPECT_INT(j.v[2], 403);
    EXPECT_INT(j.v[3], 403);
    /* Only the two requests with the right certificate reached the handler. */
    EXPECT_INT(s.calls, 2);
    srv_finish(&s);
}

static bool have_ipv6_loopback(void)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

    if (fd >= 0)
        close(fd);
    return ok;
}

static void two_client(struct job *j)
{
    char url[128];

    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/hello");
    fetch(NULL, url, NULL, &j->r[0]);
    if (j->v[9])
        url_of(url, sizeof(url), "http", "[::1]", j->port2, "/hello");
    else
        url_of(url, sizeof(url), "http", "127.0.0.1", j->port2, "/hello");
    fetch(NULL, url, NULL, &j->r[1]);
}

static void test_two_listeners(void)
{
    char l1[64], l2[64], err[256];
    const char *ls[] = {l1, l2};
    struct cm_httpd_opts o = plain_opts(ls, 2);
    struct srv s;
    struct job j = {0};
    bool v6 = have_ipv6_loopback();

    j.port = cm_th_free_port();
    j.port2 = cm_th_free_port();
    j.v[9] = v6;
    snprintf(l1, sizeof(l1), "127.0.0.1:%d", j.port);
    if (v6)
        snprintf(l2, sizeof(l2), "[::1]:%d", j.port2);
    else
        snprintf(l2, sizeof(l2), "127.0.0.1:%d", j.port2);
    if (!v6)
        fprintf(stderr, "\n  no IPv6 loopback: second listener on IPv4\n");
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);
    run_job(&s, &j, two_client, 20000);
    EXPECT_INT(j.r[0].status, 200);
    EXPECT_INT(j.r[1].status, 200);
    EXPECT_STR(s.peer, v6 ? "::1" : "127.0.0.1");
    EXPECT_INT(s.calls, 2);
    srv_finish(&s);
}

static void localhost_client(struct job *j)
{
    char url[128];

    url_of(url, sizeof(url), "http", "localhost", j->port, "/hello");
    fetch(NULL, url, NULL, &j->r[0]);
}

static void test_hostname_listen(void)
{
    char listen[64], err[256];
    const char *ls[] = {listen};
    struct cm_httpd_opts o = plain_opts(ls, 1);
    struct srv s;
    struct job j = {0};

    j.port = cm_th_free_port();
    snprintf(listen, sizeof(listen), "localhost:%d", j.port);
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);
    /* The first address localhost resolves to is bound; curl tries both families. */
    run_job(&s, &j, localhost_client, 20000);
    EXPECT_INT(j.r[0].status, 200);
    fprintf(stderr, "\n  localhost listener bound for peer %s\n", s.peer);
    srv_finish(&s);
}

static void expect_start_error(const struct cm_httpd_opts *o, int want_rc, const char *needle,
                               unsigned line)
{
    char err[512] = "";
    struct srv s;
    int rc = srv_start(&s, o, err, sizeof(err));

    expect_int(rc, want_rc, "cm_httpd_start", line);
    CU_ASSERT_PTR_NULL(s.h);
    if (needle && !strstr(err, needle)) {
        char msg[768];
        snprintf(msg, sizeof(msg), "error \"%s\" does not name \"%s\"", err, needle);
        CU_assertImplementation(CU_FALSE, line, msg, __FILE__, "", CU_FALSE);
    }
    srv_finish(&s);
}

static void test_start_errors(void)
{
    char listen[64], missing[300];
    const char *ls[] = {listen};
    struct cm_httpd_opts o = plain_opts(ls, 1);
    const char *junk = pki("root.tmpl");

    snprintf(listen, sizeof(listen), "127.0.0.1:%d", cm_th_free_port());
    snprintf(missing, sizeof(missing), "%s/no-such-cert.pem", cm_th_pki_dir());

    o.tls_cert = missing;
    o.tls_key = pki("leaf.key");
    expect_start_error(&o, -ENOENT, missing, __LINE__);
    o.tls_cert = junk;
    expect_start_error(&o, CM_ETLS, junk, __LINE__);
    o.tls_cert = pki("valid.chain.pem");
    o.tls_key = junk;
    expect_start_error(&o, CM_ETLS, junk, __LINE__);
    o.tls_key = pki("client.key"); /* a key, but not this certificate's */
    expect_start_error(&o, CM_ETLS, "client.key", __LINE__);
    o.tls_key = pki("leaf.key");
    o.client_ca = junk;
    expect_start_error(&o, CM_ETLS, junk, __LINE__);
    o.client_ca = pki("revoked.ocsp.der"); /* binary */
    expect_start_error(&o, CM_ETLS, "revoked.ocsp.der", __LINE__);
    o.client_ca = cm_th_pki_dir(); /* a directory */
    expect_start_error(&o, -EINVAL, cm_th_pki_dir(), __LINE__);
    /* A FIFO without a writer: refused at once, not waited on (alarm: a hang ends the test). */
    char fifo[300];
    snprintf(fifo, sizeof(fifo), "%s/httpd-test-%d.fifo", cm_th_pki_dir(), (int)getpid());
    unlink(fifo);
    CU_ASSERT_FATAL(mkfifo(fifo, 0600) == 0);
    alarm(20);
    o.client_ca = fifo;
    expect_start_error(&o, -EINVAL, "not a regular file", __LINE__);
    o.client_ca = NULL;
    o.tls_cert = fifo;
    expect_start_error(&o, -EINVAL, fifo, __LINE__);
    o.tls_cert = pki("valid.chain.pem");
    alarm(0);
    unlink(fifo);

    o = plain_opts(ls, 1);
    o.tls_cert = pki("valid.chain.pem");
    expect_start_error(&o, -EINVAL, "tls_key", __LINE__);
    o = plain_opts(ls, 1);
    o.client_ca = pki("inter.pem");
    expect_start_error(&o, -EINVAL, "client_ca", __LINE__);

    o = plain_opts(ls, 1);
    snprintf(listen, sizeof(listen), "no-port");
    expect_start_error(&o, -EINVAL, "no-port", __LINE__);
    snprintf(listen, sizeof(listen), "127.0.0.1:0");
    expect_start_error(&o, -EINVAL, "127.0.0.1:0", __LINE__);
    snprintf(listen, sizeof(listen), "[::1]9799");
    expect_start_error(&o, -EINVAL, "[::1]9799", __LINE__);
    snprintf(listen, sizeof(listen), "::1:9799");
    expect_start_error(&o, -EINVAL, "::1:9799", __LINE__);
    snprintf(listen, sizeof(listen), "[127.0.0.1]:9799");
    expect_start_error(&o, -EINVAL, "[127.0.0.1]:9799", __LINE__);
    snprintf(listen, sizeof(listen), "no-such-host.invalid:9799");
    expect_start_error(&o, -EINVAL, "no-such-host.invalid:9799", __LINE__);
}

static void test_address_in_use(void)
{
    char l1[64], l2[64];
    const char *ls[] = {l1, l2};
    struct cm_httpd_opts o = plain_opts(ls, 2);
    int p1 = cm_th_free_port(), p2 = cm_th_free_port();
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p2)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct srv s;
    char err[256];

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(fd, 4) == 0);
    snprintf(l1, sizeof(l1), "127.0.0.1:%d", p1);
    snprintf(l2, sizeof(l2), "127.0.0.1:%d", p2);
    /* The second address is taken: the first listener, already started, is undone. */
    expect_start_error(&o, -EADDRINUSE, l2, __LINE__);
    close(fd);
    /* Both ports are free again. */
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    srv_finish(&s);
}

static bool both_held(struct srv *s)
{
    return s->held_cancel && s->held_plain;
}

static void close_pending_client(struct job *j)
{
    const char *r1 = "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *r2 = "GET /hang-plain HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[256];
    int a = raw_connect(AF_INET, j->port), b = raw_connect(AF_INET, j->port), how;

    if (a >= 0 && b >= 0) {
        raw_send(a, r1, strlen(r1));
        raw_send(b, r2, strlen(r2));
        /* The listener closes both connections when it is closed. */
        j->d[0] = now_s();
        j->v[0] = (long)raw_read(a, buf, sizeof(buf), 5000, &how);
        j->v[1] = how;
        j->v[2] = (long)raw_read(b, buf, sizeof(buf), 5000, &how);
        j->v[3] = how;
        j->d[0] = now_s() - j->d[0];
    }
    if (a >= 0)
        close(a);
    if (b >= 0)
        close(b);
}

static void test_close_pending(void)
{
    char listen[64], err[256];
    const char *ls[] = {listen};
    struct cm_httpd_opts o = plain_opts(ls, 1);
    struct srv s;
    struct job j = {0};
    pthread_t th;
    uv_timer_t guard;
    bool expired = false;
    char *late = strdup("late\n");

    j.port = cm_th_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", j.port);
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);

    /* The client thread runs while this thread closes the listener mid-request. */
    j.s = &s;
    j.fn = close_pending_client;
    atomic_init(&j.done, false);
    uv_async_init(&s.loop, &j.async, on_async);
    CU_ASSERT_FATAL(pthread_create(&th, NULL, job_main, &j) == 0);
    CU_ASSERT(spin_until(&s, both_held, 5000));
    cm_httpd_close(s.h);
    s.h = NULL;
    EXPECT_INT(s.cancels, 1);
    CU_ASSERT_PTR_NULL(s.held_cancel);
    uv_timer_init(&s.loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, on_guard, 10000, 0);
    while (!atomic_load(&j.done))
        uv_run(&s.loop, UV_RUN_ONCE);
    pthread_join(th, NULL);
    CU_ASSERT_FALSE(expired);
    close_now(&s.loop, (uv_handle_t *)&j.async, (uv_handle_t *)&guard);
    EXPECT_INT(j.v[0], 0); /* closed without a response */
    EXPECT_INT(j.v[2], 0);
    CU_ASSERT(j.d[0] < 2.0);
    /* The request without a cancel callback outlives the listener until it is answered. */
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.held_plain);
    EXPECT_INT(cm_httpd_respond(s.held_plain, 200, "text/plain", late, strlen(late), 1), 0);
    srv_finish(&s);
}

static bool plain_held(struct srv *s)
{
    return s->held_plain != NULL;
}

static void one_pending_client(struct job *j)
{
    const char *r = "GET /hang-plain HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[512];
    int fd = raw_connect(AF_INET, j->port), how;

    if (fd >= 0) {
        raw_send(fd, r, strlen(r));
        raw_read(fd, buf, sizeof(buf), 5000, &how);
        j->v[0] = status_of(buf);
        j->v[1] = how;
        close(fd);
    }
}

/* Answered, then closed in the same loop callback: the answer is still waiting for its resume
 * when the listener stops. */
static void test_respond_then_close(void)
{
    char listen[64], err[256];
    const char *ls[] = {listen};
    struct cm_httpd_opts o = plain_opts(ls, 1);
    struct srv s;
    struct job j = {0};
    pthread_t th;
    char *body = strdup("answer\n");

    j.port = cm_th_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", j.port);
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);
    j.s = &s;
    j.fn = one_pending_client;
    atomic_init(&j.done, false);
    uv_async_init(&s.loop, &j.async, on_async);
    CU_ASSERT_FATAL(pthread_create(&th, NULL, job_main, &j) == 0);
    CU_ASSERT(spin_until(&s, plain_held, 5000));
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.held_plain);
    EXPECT_INT(cm_httpd_respond(s.held_plain, 200, "text/plain", body, strlen(body), 1), 0);
    cm_httpd_close(s.h);
    s.h = NULL;
    while (!atomic_load(&j.done))
        uv_run(&s.loop, UV_RUN_ONCE);
    pthread_join(th, NULL);
    close_now(&s.loop, (uv_handle_t *)&j.async, NULL);
    /* Either the answer made it out during the shutdown or the connection was closed. */
    CU_ASSERT(j.v[0] == 200 || (j.v[0] == 0 && j.v[1] != EAGAIN));
    fprintf(stderr, "\n  answered then closed: status %ld (%s)\n", j.v[0], how_name(j.v[1]));
    srv_finish(&s);
}

static void close_route_client(struct job *j)
{
    char url[128];

    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/close");
    fetch(NULL, url, NULL, &j->r[0]);
    url_of(url, sizeof(url), "http", "127.0.0.1", j->port, "/hello");
    fetch(NULL, url, NULL, &j->r[1]);
}

static void test_close_from_handler(void)
{
    char listen[64], err[256];
    const char *ls[] = {listen};
    struct cm_httpd_opts o = plain_opts(ls, 1);
    struct srv s;
    struct job j = {0};

    j.port = cm_th_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", j.port);
    EXPECT_INT(srv_start(&s, &o, err, sizeof(err)), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.h);
    run_job(&s, &j, close_route_client, 20000);
    CU_ASSERT_PTR_NULL(s.h);
    fprintf(stderr, "\n  close from a handler: its own answer -> %ld (curl %d), next -> curl %d\n",
            j.r[0].status, (int)j.r[0].cc, (int)j.r[1].cc);
    CU_ASSERT(j.r[0].status == 200 || j.r[0].cc != CURLE_OK);
    /* The listener is gone: refused, or reset when the connection had reached the backlog
     * before the listening socket closed. */
    CU_ASSERT(j.r[1].cc == CURLE_COULDNT_CONNECT || j.r[1].cc == CURLE_RECV_ERROR ||
              j.r[1].cc == CURLE_GOT_NOTHING || j.r[1].cc == CURLE_SEND_ERROR);
    EXPECT_INT(s.calls, 1);
    srv_finish(&s);
}

static void test_close_null(void)
{
    cm_httpd_close(NULL);
    EXPECT_INT(cm_httpd_respond(NULL, 200, NULL, NULL, 0, 0), -EINVAL);
    CU_ASSERT_PTR_NULL(cm_httpd_query(NULL, "x"));
}

static int suite_init(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* CERTMON_TEST_DEBUG=1 shows the listener's debug log (and MHD's messages). */
    cm_log_threshold = getenv("CERTMON_TEST_DEBUG") ? CM_LOG_DEBUG : CM_LOG_ERROR;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    return cm_th_pki_dir() ? 0 : 1;
}

static int suite_cleanup(void)
{
    curl_global_cleanup();
    return 0;
}

static CU_TestInfo tests[] = {
    {"GET, 404, HEAD, empty body, bad status", test_get_basic},
    {"query parameters are decoded", test_query},
    {"other methods 405, bodies 413", test_methods},
    {"deferred response", test_deferred},
    {"client leaves while deferred", test_client_gone},
    {"oversized request header", test_oversized},
    {"max_request_bytes is exact", test_request_size_limit},
    {"malformed requests", test_malformed},
    {"connection limit", test_connection_limit},
    {"guard counters", test_guard_counters},
    {"idle timeout", test_idle_timeout},
    {"slow heads and connection floods", test_hostile_clients},
    {"TLS", test_tls},
    {"client certificates (mTLS)", test_mtls},
    {"two listen addresses (IPv4, IPv6)", test_two_listeners},
    {"host name listen address", test_hostname_listen},
    {"start errors name the file or address", test_start_errors},
    {"address in use", test_address_in_use},
    {"close with pending requests", test_close_pending},
    {"answer, then close at once", test_respond_then_close},
    {"close from inside a handler", test_close_from_handler},
    {"NULL arguments", test_close_null},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("httpd", tests, suite_init, suite_cleanup);
}
