/* libFuzzer harness: the HTTP listener (src/http/httpd.c over libmicrohttpd) and the daemon's
 * endpoints behind it (src/daemon/web.c: /metrics, /probe, /api/v1/targets, /healthz), fed raw
 * bytes over a real loopback connection.
 *
 * Set up once: the endpoints (web.h) over a generation, state and resolver of the harness's own,
 * with a configuration of one
 * endpoint target (127.0.0.1 port 9: an on-demand probe of it is refused at once, and
 * allow_any_target is off, so no request can make the harness connect anywhere else), a state
 * of a few real reports, and the listener on a free loopback port. For each input: connect,
 * send the input as it is, half-close, and run the loop until the server has closed the
 * connection or gone quiet, and every on-demand probe has finished. The server must answer
 * with HTTP or nothing, and finish within a bound: an exchange still going is a hang. */
#include "fuzz_util.h"

#include "certmon/daemon/gen.h"
#include "certmon/daemon/state.h"
#include "certmon/daemon/web.h"
#include "certmon/probe/resolve.h"

#include "certmon/base/error.h"
#include "certmon/probe/tlsio.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

/* libmicrohttpd 0.9.75 in epoll mode misses a FIN that arrives together with the request bytes
 * (it stops reading once a read returns less than its buffer, and the edge is gone): it closes
 * such a connection only at the idle timeout. So an exchange is over when the server closes,
 * or when it has been quiet this long with no on-demand probe in flight; the harness then
 * resets the connection, which MHD does notice. */
#define QUIET_MS 15
/* Bound on one exchange: a server still sending or holding probes after this is a hang. */
#define EXCHANGE_MS 10000

static uv_loop_t loop;
static uv_timer_t tick; /* keeps UV_RUN_ONCE from sleeping for long */
static struct cm_gen *g;
static struct cm_state *state;
static struct cm_resolver *resolver;
static struct cm_web *web;
static int port;

/* Two entries in the line layout the daemon writes: reports as `check --json` makes them. */
static const char state_text[] =
    "{\"version\":1,\"saved_at\":1796083200,\"targets\":[\n"
    "{\"name\":\"local\",\"owner\":\"local\",\"last_probe\":1796083100,\"last_success\":"
    "1796083100,\"status_since\":1796000000,\"failures\":0,\"status\":\"warning\",\"seen\":"
    "[[\"cert.expiring\",0,1796000000]],\"report\":{\"target\":\"local\",\"host\":\"127.0.0.1\","
    "\"port\":9,\"sni\":null,\"address\":\"127.0.0.1\",\"status\":\"warning\",\"error\":null,"
    "\"timing_ms\":{\"dns\":0,\"connect\":0.2,\"handshake\":3.1,\"total\":3.5},\"tls\":{"
    "\"version\":\"TLS1.3\",\"cipher\":\"TLS_AES_256_GCM_SHA384\",\"group\":\"X25519\"},"
    "\"verification\":{\"trusted\":true,\"hostname_match\":true,\"errors\":[]},\"chain\":[{"
    "\"position\":0,\"subject\":\"CN=local\",\"issuer\":\"CN=Test CA\",\"serial\":\"01\","
    "\"not_before\":\"2026-01-01T00:00:00Z\",\"not_after\":\"2026-12-20T00:00:00Z\","
    "\"days_left\":18,\"key\":{\"type\":\"EC\",\"bits\":256},\"signature\":\"ECDSA-SHA256\","
    "\"sha256\":\"00\",\"sans\":[\"local\"],\"is_ca\":false,\"self_signed\":false}],"
    "\"findings\":[{\"id\":\"cert.expiring\",\"severity\":\"warning\",\"message\":\"expires in "
    "18 days\",\"position\":0,\"first_seen\":1796000000}],\"labels\":{\"team\":\"web\"},"
    "\"last_probe\":1796083100,\"last_success\":1796083100,\"failures\":0,\"status_since\":"
    "1796000000}},\n"
    "{\"name\":\"file:/etc/x.pem\",\"owner\":\"files\",\"last_probe\":1796083100,"
    "\"last_success\":0,\"status_since\":1796083100,\"failures\":3,\"status\":\"critical\","
    "\"seen\":[],\"report\":{\"target\":\"file:/etc/x.pem\",\"status\":\"critical\",\"error\":{"
    "\"kind\":\"io\",\"message\":\"cannot read /etc/x.pem\"},\"chain\":[],\"findings\":[]}}\n"
    "]}\n";

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* The harness's "daemon": one generation, its state, no notifiers. */
static void web_status(void *arg, struct cm_web_status *out)
{
    (void)arg;
    out->gen = g;
    out->state = state;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct cm_config_errors errs = {0};
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t slen = sizeof(sa);
    char path[4200], conf[512], err[512];
    int fd;

    (void)argc;
    (void)argv;
    fz_init("http");
    signal(SIGPIPE, SIG_IGN);

    /* A free loopback port: the kernel picks one, the listener binds it right after. */
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 || bind(fd, (void *)&sa, sizeof(sa)) < 0 ||
        getsockname(fd, (void *)&sa, &slen) < 0) {
        perror("fuzz_http: free port");
        exit(1);
    }
    port = ntohs(sa.sin_port);
    close(fd);

    snprintf(conf, sizeof(conf),
             "metrics = { listen = \"127.0.0.1:%d\"; };\n"
             "targets = ( { name = \"local\"; host = \"127.0.0.1\"; port = 9; timeout = \"2s\";\n"
             "              labels = { team = \"web\"; }; } );\n",
             port);
    fz_write(fz_path(path, sizeof(path), "certmon.conf"), conf, strlen(conf));
    fz_write(fz_path(path, sizeof(path), "state.json"), state_text, sizeof(state_text) - 1);

    if (!(g = calloc(1, sizeof(*g))) || uv_loop_init(&loop) < 0) {
        fprintf(stderr, "fuzz_http: out of memory\n");
        exit(1);
    }
    g->refs = 1;
    if (cm_config_load(fz_path(path, sizeof(path), "certmon.conf"), &g->cfg, &errs) < 0 ||
        cm_tls_ctx_new(&g->tls) < 0 || cm_state_new(&state) < 0 ||
        cm_resolver_new(&loop, &resolver, err, sizeof(err)) < 0 ||
        cm_web_new(&loop, resolver, web_status, NULL, &web) < 0) {
        fprintf(stderr, "fuzz_http: setup failed: %s\n", errs.count ? errs.msgs[0] : err);
        exit(1);
    }
    cm_state_set_view_hooks(state, &cm_web_view_hooks);
    if (cm_state_load(state, fz_path(path, sizeof(path), "state.json"), err, sizeof(err)) < 0 ||
        cm_web_start(web, g->cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_http: setup failed: %s\n", err);
        exit(1);
    }
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    return 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    struct linger rst = {1, 0};
    char buf[65536], first[8] = "";
    size_t sent = 0, got = 0;
    bool closed = false, shut = false;
    uint64_t start = now_ms(), last = start;
    unsigned probes = 0, scrapes = 0;
    int fd;

    /* /metrics renders are paced across requests; each input starts unpaced. */
    cm_web_unpace(web);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return 0;
    /* Loopback: the kernel completes the connection before the listener accepts it. */
    if (connect(fd, (void *)&sa, sizeof(sa)) < 0) {
        perror("fuzz_http: connect");
        abort();
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    while (!closed) {
        uint64_t now;
        if (sent < size) {
            ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
            if (n > 0) {
                sent += (size_t)n;
                last = now_ms();
            } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                sent = size; /* the server closed early: nothing more to send */
            }
        }
        if (sent == size && !shut) {
            shutdown(fd, SHUT_WR);
            shut = true;
        }
        uv_run(&loop, UV_RUN_ONCE);
        for (;;) {
            ssize_t n = recv(fd, buf, sizeof(buf), 0);
            if (n > 0) {
                if (got < sizeof(first) - 1) {
                    size_t k = sizeof(first) - 1 - got;
                    memcpy(first + got, buf, (size_t)n < k ? (size_t)n : k);
                }
                got += (size_t)n;
                last = now_ms();
                continue;
            }
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                closed = true;
            break;
        }
        now = now_ms();
        cm_web_pending(web, &probes, &scrapes);
        if (!closed && shut && probes == 0 && scrapes == 0 && now - last > QUIET_MS)
            break;
        if (!closed && now - start > EXCHANGE_MS) {
            fprintf(stderr,
                    "fuzz_http: exchange still going after %d ms (sent %zu of %zu bytes, "
                    "received %zu, %u probes in flight)\n",
                    EXCHANGE_MS, sent, size, got, probes);
            abort();
        }
    }
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
    close(fd);
    /* Whatever came back is HTTP. */
    FZ_CHECK(got == 0 || !strncmp(first, "HTTP/1.", got < 7 ? got : 7));
    /* Let the listener see the reset and release the connection. */
    for (int i = 0; i < 3; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    /* On-demand probes end by themselves (refused at once, 2 s deadline at worst). */
    for (cm_web_pending(web, &probes, NULL); probes > 0; cm_web_pending(web, &probes, NULL)) {
        uv_run(&loop, UV_RUN_ONCE);
        FZ_CHECK(now_ms() - start < EXCHANGE_MS);
    }
    return 0;
}
