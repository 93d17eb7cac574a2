/* bench_leaf_bytes: what the daemon keeps in memory per distinct leaf (issue 14's budget at
 * 100,000 targets, each with a leaf of its own under one shared CA, as
 * `scale_bench.sh --leaves distinct` runs it), measured at unit level without a daemon:
 *   - the /metrics view of each target's report (the leaf's shared certificate labels
 *     included; the intermediate and root are shared by all),
 *   - the leaf summary kept for change tracking (cm_leaf_summary_new of a certificate with an
 *     SPKI hash, as a probed leaf has),
 * as heap bytes per target (glibc's mallinfo2: malloc's chunk overhead included), and the
 * time to render /metrics over the views (reusing one buffer: min and median of RUNS).
 *
 * usage: bench_leaf_bytes [TARGETS [RUNS]]    (defaults 100000 and 15)
 * Built with the tests (build/tests/bench_leaf_bytes); run the Release build for numbers. */
#include "certmon/analysis/change.h"
#include "certmon/analysis/metrics.h"
#include "certmon/probe/x509.h"

#include <jansson.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static size_t heap(void)
{
    return mallinfo2().uordblks;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Target i's leaf: "CN=host-NNNNNN.example.com", a serial and a fingerprint of its own. */
static void leaf_texts(size_t i, char subject[64], char serial[64], char sha[72], char spki[72])
{
    snprintf(subject, 64, "CN=host-%06zu.example.com", i);
    snprintf(serial, 64, "04a1f3c6d1e2b7a9f0c3d5e7f9a1b3c5%06zx", i);
    snprintf(sha, 72, "9e5167c53a9677b31bcc9d2d74ea3c046274eb127085e0cbf4b6a29d5c%06x",
             (unsigned)(i & 0xffffff));
    snprintf(spki, 72, "5a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6%06x",
             (unsigned)(i & 0xffffff));
}

static json_t *cert(const char *subject, const char *issuer, const char *serial, const char *sha,
                    const char *key, int bits, const char *not_after)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:i}, s:s, s:s}", "subject", subject,
                     "issuer", issuer, "serial", serial, "sha256", sha, "signature", "RSA-SHA256",
                     "key", "type", key, "bits", bits, "not_before", "2026-10-01T06:12:44Z",
                     "not_after", not_after);
}

/* The report of target i (what the state keeps), chain leaf, R11, ISRG Root X1. */
static json_t *report(size_t i)
{
    char name[64], subject[64], serial[64], sha[72], spki[72];
    json_t *r;

    leaf_texts(i, subject, serial, sha, spki);
    snprintf(name, sizeof(name), "host-%06zu.example.com:443", i);
    r = json_pack("{s:s, s:s, s:n, s:{s:f, s:f, s:f, s:f}, s:{s:s, s:s}, s:{s:b, s:b},"
                  " s:[o, o, o], s:[{s:s, s:s, s:s, s:i}], s:{s:s}, s:s, s:s}",
                  "target", name, "status", "warning", "error", "timing_ms", "dns", 0.4, "connect",
                  1.2, "handshake", 6.9, "total", 8.5, "tls", "version", "TLS1.3", "cipher",
                  "TLS_AES_256_GCM_SHA384", "verification", "trusted", 1, "hostname_match", 1,
                  "chain",
                  cert(subject, "CN=R11,O=Let's Encrypt,C=US", serial, sha, "EC", 256,
                       "2026-12-30T06:12:43Z"),
                  cert("CN=R11,O=Let's Encrypt,C=US",
                       "CN=ISRG Root X1,O=Internet Security Research Group,C=US",
                       "8a7d3e13d62f30ef2386bd29076b34f8",
                       "591e9ce6c863d3a079e9fabe1478c7339a26b21269dde795211361024ae31a44", "RSA",
                       2048, "2027-03-12T23:59:59Z"),
                  cert("CN=ISRG Root X1,O=Internet Security Research Group,C=US",
                       "CN=ISRG Root X1,O=Internet Security Research Group,C=US",
                       "4001772137d4e942b8ee76aa3c640ab7",
                       "6d99fb265eb1c5b3744765fcbc648f3cd8e1bffafdc4c2f99b9d47cf7ff1c24f", "RSA",
                       4096, "2035-06-04T11:04:38Z"),
                  "findings", "id", "cert.expiring", "severity", "warning", "message", "33 days",
                  "position", 0, "labels", "team", "web", "last_probe", "2026-11-27T08:00:00Z",
                  "last_success", "2026-11-27T08:00:00Z");
    return r;
}

/* Views of n distinct-leaf reports: heap bytes per view, then render times. */
static int bench_views(size_t n, int runs)
{
    struct cm_metrics_view **v = calloc(n, sizeof(*v));
    struct cm_metrics_buf b = {0};
    double *t = calloc((size_t)runs, sizeof(*t));
    size_t before, after;

    if (!v || !t)
        return -1;
    before = heap();
    for (size_t i = 0; i < n; i++) {
        json_t *r = report(i);
        v[i] = r ? cm_metrics_view_new(r) : NULL;
        json_decref(r);
        if (!v[i]) {
            fprintf(stderr, "bench_leaf_bytes: view %zu not built\n", i);
            return -1;
        }
    }
    after = heap();
    printf("metrics views: %zu targets, %.1f heap bytes per view (%.1f MB), %zu shared "
           "certificate texts\n",
           n, (double)(after - before) / (double)n, (double)(after - before) / 1e6,
           cm_metrics_shared_certs());
    for (int k = 0; k < runs; k++) {
        double t0 = now_ms();
        b.len = 0;
        if (cm_metrics_render((const struct cm_metrics_view *const *)v, n, NULL, NULL, &b) < 0)
            return -1;
        t[k] = now_ms() - t0;
    }
    qsort(t, (size_t)runs, sizeof(*t), cmp_double);
    printf("metrics render: %zu bytes, min %.2f ms, median %.2f ms (%d runs, one buffer)\n", b.len,
           t[0], t[runs / 2], runs);
    cm_metrics_buf_free(&b);
    for (size_t i = 0; i < n; i++)
        cm_metrics_view_free(v[i]);
    free(v);
    free(t);
    return 0;
}

/* Leaf summaries as the daemon keeps them: heap bytes per summary. */
static int bench_summaries(size_t n)
{
    struct cm_leaf_summary **kept = calloc(n, sizeof(*kept)), cur;
    char subject[64], serial[64], sha[72], spki[72], san1[64], san2[64];
    char *sans[2] = {san1, san2};
    size_t before, after;

    if (!kept)
        return -1;
    before = heap();
    for (size_t i = 0; i < n; i++) {
        struct cm_cert c;
        memset(&c, 0, sizeof(c));
        leaf_texts(i, subject, serial, sha, spki);
        snprintf(san1, sizeof(san1), "host-%06zu.example.com", i);
        snprintf(san2, sizeof(san2), "www.host-%06zu.example.com", i);
        c.subject = subject;
        c.issuer = (char *)"CN=R11,O=Let's Encrypt,C=US";
        c.serial = serial;
        c.sha256 = sha;
        c.spki_sha256 = spki;
        c.key_type = "EC";
        c.key_bits = 256;
        c.not_after = 1798611163;
        c.sans = sans;
        c.san_count = c.san_total = 2;
        if (cm_leaf_summary_of(&c, &cur) < 0 || !(kept[i] = cm_leaf_summary_new(&cur))) {
            fprintf(stderr, "bench_leaf_bytes: summary %zu not built\n", i);
            return -1;
        }
        cm_leaf_summary_clear(&cur);
    }
    after = heap();
    printf("leaf summaries: %.1f heap bytes per kept summary (%.1f MB)\n",
           (double)(after - before) / (double)n, (double)(after - before) / 1e6);
    for (size_t i = 0; i < n; i++)
        cm_leaf_summary_free(kept[i]);
    free(kept);
    return 0;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    int runs = argc > 2 ? atoi(argv[2]) : 15;

    if (!n || runs < 1) {
        fprintf(stderr, "usage: bench_leaf_bytes [TARGETS [RUNS]]\n");
        return 2;
    }
    return bench_summaries(n) < 0 || bench_views(n, runs) < 0;
}
