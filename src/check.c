#include "certmon/check.h"
#include "certmon/daemon/process.h"
#include "certmon/analysis/analyze.h"
#include "certmon/base/error.h"
#include "certmon/base/log.h"
#include "certmon/http/httpc.h"
#include "certmon/probe/posture.h"
#include "certmon/probe/ari.h"
#include "certmon/probe/probe.h"
#include "certmon/analysis/report.h"
#include "certmon/probe/resolve.h"
#include "certmon/probe/revocation.h"
#include "certmon/probe/target.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

struct check_opts {
    const char *sni;
    const char *ca_file;
    const char *client_cert, *client_key;
    const char *starttls; /* protocol name, "none", or NULL: chosen from the port */
    bool all_addresses;
    const char *targets_file;
    double timeout_s;
    long concurrency;
    struct cm_policy policy; /* owned: rules freed at the end */
    bool json;
    bool quick;                    /* no posture pass */
    bool no_revocation;            /* --no-revocation: no CRL fetch */
    const char *interception_file; /* --interception-roots */
    char *interception_text;       /* its checked content, owned; the policy borrows it */
    const char *ari_url;           /* --ari-url: ACME renewalInfo base URL */
    const char *acme_directory;    /* --acme-directory: where to read it from */
};

struct check_run;

struct slot {
    struct check_run *run;
    size_t index;
    struct cm_posture_pass *fallback; /* the pass after a refused handshake, until it reports */
    uint64_t started;                 /* loop time (ms) the probe started: its deadline's base */
    bool ari_asked;                   /* the renewal information lookup has run or is running */
    unsigned parts; /* work still out for the target: its posture path, its revocation check */
};

/* One posture pass shared by every target of a run that resolves to the same endpoint
 * (address, port, server name, STARTTLS, client certificate): an endpoint's posture does not
 * change within a run, and a list of 200 names on one load balancer should cost one sweep,
 * not 200. */
struct posture_share {
    struct posture_share *next;
    char *key;
    struct check_run *run;
    uint64_t deadline; /* loop time (ms) by which the sweep ends */
    bool done;
    struct cm_posture base; /* the sweep's result, before each target's own handshake */
    size_t *waiters;        /* target indices waiting for it (the first started it) */
    size_t nwaiters;
};

struct check_run {
    uv_loop_t *loop;
    struct posture_share *postures;
    struct cm_probe_env env;
    struct cm_tls_ctx *tls;
    struct cm_target *targets;
    struct slot *slots;
    struct cm_probe_result **results;
    bool *settled; /* result in, or the probe could not start */
    /* --all-addresses: the targets of one name are contiguous; group_len[i] is the size of
     * the group that starts at i (NULL: every target is a group of one). */
    size_t *group_len;
    size_t count, next, inflight, done;
    /* JSON is written in target order as soon as each result and all before it are in,
     * and each result is freed once written: memory stays bounded by what is in flight. */
    const struct check_opts *opts;
    struct cm_policy policy;
    size_t emitted;
    enum cm_status worst;
    size_t concurrency;
    uint64_t timeout_ms;
    bool internal_error;
    bool progress;
    bool progress_shown;
    uv_timer_t progress_timer;
    struct cm_httpc *http; /* only with --ari-url or --acme-directory */
    struct cm_ari_client *ari;
    struct cm_httpc *httpc;   /* revocation fetches; NULL with --no-revocation */
    struct cm_revctx *revctx; /* CRL cache shared by every target of the run */
};

static void usage(FILE *fp)
{
    fputs("usage: certmon check [options] TARGET...\n"
          "  TARGET            host[:port] or [ipv6]:port; port defaults to 443\n"
          "  --targets FILE    read targets from FILE, one per line, '#' comments\n"
          "  --sni NAME        server name to send and verify (default: the host)\n"
          "  --ca FILE         trust these CA certificates instead of the system store\n"
          "  --starttls PROTO  smtp|imap|pop3|ftp|ldap|postgres|mysql|xmpp|none (default: by\n"
          "                    port: 25/587 smtp, 143 imap, 110 pop3, 21 ftp, 389 ldap,\n"
          "                    5432 postgres, 3306 mysql, 5222 xmpp)\n"
          "  --all-addresses   probe every IPv4/IPv6 address of each name, one result each\n"
          "  --client-cert FILE, --client-key FILE\n"
          "                    present this certificate when a server asks (mTLS)\n"
          "  --timeout SECONDS per-probe deadline (default 10)\n"
          "  --concurrency N   probes in flight at once (default 64)\n"
          "  --warn-days N     warn when a certificate expires within N days (default 30)\n"
          "  --crit-days N     critical within N days (default 7)\n"
          "  --warn-lifetime-pct P\n"
          "                    ... or within P% of the certificate's lifetime, whichever is\n"
          "                    shorter (1-100, default 33: a 6-day certificate warns at 2 days)\n"
          "  --crit-lifetime-pct P\n"
          "                    critical within P% of the lifetime, if shorter (default 10)\n"
          "  --max-lifetime-days N\n"
          "                    a leaf valid longer than N days is cert.lifetime_long (default\n"
          "                    0: the CA/Browser Forum limit for its issuance date)\n"
          "  --min-rsa-bits N  RSA/DSA keys below N bits are key.weak, critical (default 2048)\n"
          "  --min-ec-bits N   EC keys below N bits are key.weak, warning (default 256)\n"
          "  --allow-self-signed  a self-signed leaf is not a finding\n"
          "  --ignore ID       drop finding ID (repeatable; ids in docs/findings.md)\n"
          "  --severity ID=LEVEL  report finding ID as info|warning|critical (repeatable)\n"
          "  --interception-roots FILE\n"
          "                    more known interception roots (format of\n"
          "                    data/interception-roots.txt), beside the built-in ones\n"
          "  --quick           skip the posture pass (protocol versions, weak ciphers)\n"
          "  --ari-url URL     ask this ACME renewalInfo URL (RFC 9773) when to renew the leaf\n"
          "  --acme-directory URL\n"
          "                    ... or the renewalInfo URL this ACME directory names\n"
          "  --no-revocation   do not fetch CRLs (a stapled OCSP response still counts)\n"
          "  --json            print a JSON array, one object per target\n"
          "  -h, --help        show this help\n"
          "exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN\n",
          fp);
}

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int bad_usage(const char *fmt, ...)
{
    va_list ap;

    fputs("certmon check: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\ntry 'certmon check --help' for usage\n", stderr);
    return CM_STATUS_UNKNOWN;
}

static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    /* Digits only, with an optional minus: strtol would also take spaces and '+'. */
    if (!isdigit((unsigned char)s[0]) && !(s[0] == '-' && isdigit((unsigned char)s[1])))
        return false;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static int add_target(struct cm_target **list, size_t *count, size_t *cap, const char *spec,
                      const struct check_opts *o, char *err, size_t errlen)
{
    struct cm_target t;
    int rc = cm_target_parse(spec, CM_DEFAULT_PORT, o->sni, &t, err, errlen);

    if (rc < 0)
        return rc;
    t.ca_file = o->ca_file;
    if (o->starttls)
        cm_starttls_parse(o->starttls, &t.starttls); /* validated with the options */
    else
        t.starttls = cm_starttls_for_port(t.port);
    t.client_cert = o->client_cert;
    t.client_key = o->client_key;
    if (*count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        struct cm_target *n = realloc(*list, ncap * sizeof(*n));
        if (!n) {
            cm_target_clear(&t);
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        *list = n;
        *cap = ncap;
    }
    (*list)[(*count)++] = t;
    return 0;
}

/* Longest line a --targets file may have. A target is a host name (at most 253 bytes), a
 * port and options' worth of text: a longer line is not a target list (a binary file, a
 * device such as /dev/zero), and reading it whole would cost memory without bound. */
#define TARGETS_LINE_MAX 4096

/* Reads one line of fp into buf (TARGETS_LINE_MAX + 1 bytes), newline dropped, NUL bytes
 * kept (len tells where the line ends). Returns the length, -1 at the end of the file, or -2
 * when the line is longer than TARGETS_LINE_MAX (the rest of it is left unread). */
static long read_line(FILE *fp, char *buf)
{
    long n = 0;
    int c;

    while ((c = getc(fp)) != EOF && c != '\n') {
        if (n == TARGETS_LINE_MAX)
            return -2;
        buf[n++] = (char)c;
    }
    buf[n] = '\0';
    return c == EOF && n == 0 ? -1 : n;
}

/* Checks the bytes of a line: a NUL (which would silently cut the line short) anywhere, and
 * control characters or non-ASCII bytes in the target part (host names are ASCII; IDNs are
 * written in their xn-- form). Writes the problem into err and returns -1, or returns 0. */
static int check_line_bytes(const char *line, long len, char *err, size_t errlen)
{
    const char *nul = memchr(line, '\0', (size_t)len);
    const char *end = memchr(line, '#', (size_t)len);

    if (nul) {
        snprintf(err, errlen, "a NUL byte at column %ld (is this a text file?)",
                 (long)(nul - line) + 1);
        return -1;
    }
    if (!end)
        end = line + len;
    for (const char *p = line; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c < 0x20 && c != '\t' && !(c == '\r' && p + 1 == end)) || c == 0x7f) {
            snprintf(err, errlen, "control character 0x%02x at column %ld", c,
                     (long)(p - line) + 1);
            return -1;
        }
        if (c >= 0x80) {
            snprintf(err, errlen,
                     "non-ASCII byte 0x%02x at column %ld (write internationalised names in "
                     "their xn-- form)",
                     c, (long)(p - line) + 1);
            return -1;
        }
    }
    return 0;
}

/* A list of interception roots is a few lines per root: 1 MiB is thousands of roots. */
#define INTERCEPTION_FILE_MAX (1024 * 1024)

/* Reads and checks --interception-roots FILE into o->interception_text, for the policy.
 * Only a regular file of bounded size is read (a FIFO or /dev/zero would block or never
 * end). Returns 0, or -1 after saying what is wrong. */
static int read_interception_file(struct check_opts *o)
{
    const char *path = o->interception_file;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    char err[160], *buf = NULL;
    struct stat st;
    size_t got = 0;

    if (fd < 0) {
        fprintf(stderr, "certmon check: --interception-roots %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > INTERCEPTION_FILE_MAX) {
        int e = errno;
        fprintf(stderr, "certmon check: --interception-roots %s: %s\n", path,
                fstat(fd, &st) < 0     ? strerror(e)
                : !S_ISREG(st.st_mode) ? "not a regular file"
                                       : "larger than 1 MiB");
        close(fd);
        return -1;
    }
    if (!(buf = malloc((size_t)st.st_size + 1))) {
        close(fd);
        fprintf(stderr, "certmon check: out of memory\n");
        return -1;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* the file shrank: check what was read */
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    if (cm_spki_list_check(buf, got, err, sizeof(err)) < 0) {
        fprintf(stderr, "certmon check: --interception-roots %s: %s\n", path, err);
        free(buf);
        return -1;
    }
    o->interception_text = buf;
    o->policy.interception_roots = buf;
    return 0;
}

static int read_targets_file(const char *path, struct cm_target **list, size_t *count, size_t *cap,
                             const struct check_opts *o)
{
    FILE *fp = fopen(path, "r");
    char *line = malloc(TARGETS_LINE_MAX + 1);
    unsigned lineno = 0;
    long len;
    int rc = 0;

    if (!fp || !line) {
        fprintf(stderr, "certmon check: --targets %s: %s\n", path,
                fp ? "out of memory" : strerror(errno));
        free(line);
        if (fp)
            fclose(fp);
        return -1;
    }
    while ((len = read_line(fp, line)) != -1) {
        char err[320];
        char *s = line, *e;
        lineno++;
        if (len == -2) {
            fprintf(stderr,
                    "certmon check: %s:%u: line longer than %d bytes (not a target list?)\n", path,
                    lineno, TARGETS_LINE_MAX);
            rc = -1;
            break;
        }
        if (check_line_bytes(line, len, err, sizeof(err)) < 0) {
            fprintf(stderr, "certmon check: %s:%u: %s\n", path, lineno, err);
            rc = -1;
            break;
        }
        if ((e = strchr(s, '#')))
            *e = '\0';
        while (*s == ' ' || *s == '\t')
            s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            *--e = '\0';
        if (*s == '\0')
            continue;
        if (add_target(list, count, cap, s, o, err, sizeof(err)) < 0) {
            fprintf(stderr, "certmon check: %s:%u: %s\n", path, lineno, err);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(fp)) {
        fprintf(stderr, "certmon check: --targets %s: read error: %s\n", path, strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(fp);
    return rc;
}

static void launch(struct check_run *run);

/* --all-addresses: every name is resolved first (all at once, under the probe timeout), then
 * replaced by one target per address, pinned with connect_address. */
struct lookup {
    struct expansion *ex;
    struct cm_addr_list *list;
    struct cm_resolve_req *req;
    bool pending;
};

struct expansion {
    uv_loop_t *loop;
    uv_timer_t timer;
    struct lookup *lk;
    size_t count, pending;
};

static void on_lookup(int status, const char *message, struct cm_addr_list *list, void *arg)
{
    struct lookup *l = arg;

    (void)status;
    (void)message; /* a name that does not resolve is probed as it is: its probe says why */
    l->list = list;
    l->pending = false;
    l->req = NULL;
    if (--l->ex->pending == 0)
        uv_stop(l->ex->loop);
}

static void on_lookup_deadline(uv_timer_t *t)
{
    struct expansion *ex = t->data;

    /* Names still unresolved are probed as they are, under their own deadline. */
    for (size_t i = 0; i < ex->count; i++)
        if (ex->lk[i].pending) {
            cm_resolve_cancel(ex->lk[i].req);
            ex->lk[i].pending = false;
        }
    ex->pending = 0;
    uv_stop(ex->loop);
}

/* Replaces *targets with the expanded list; group_len gets each group's size at its first
 * index; *addrs collects the address strings the new targets borrow (freed by the caller).
 * Returns 0 or -ENOMEM (nothing changed). */
static int expand_targets(uv_loop_t *loop, struct cm_resolver *r, uint64_t timeout_ms,
                          struct cm_target **targets, size_t *count, size_t **group_len,
                          char ***addrs, size_t *naddrs)
{
    struct expansion ex = {.loop = loop, .count = *count};
    struct cm_target *out = NULL;
    size_t n = 0, total = 0, na = 0, *glen = NULL;
    char **strs = NULL;
    int rc = -ENOMEM;

    if (!(ex.lk = calloc(*count, sizeof(*ex.lk))))
        return -ENOMEM;
    for (size_t i = 0; i < *count; i++) {
        const struct cm_target *t = &(*targets)[i];
        ex.lk[i].ex = &ex;
        if (cm_host_is_ip(t->host))
            continue;
        ex.lk[i].pending = true;
        ex.pending++;
        if (cm_resolve_start(r, t->host, t->port, on_lookup, &ex.lk[i], &ex.lk[i].req) < 0) {
            ex.lk[i].pending = false;
            ex.pending--;
        }
    }
    if (ex.pending > 0) {
        uv_timer_init(loop, &ex.timer);
        ex.timer.data = &ex;
        uv_timer_start(&ex.timer, on_lookup_deadline, timeout_ms, 0);
        uv_run(loop, UV_RUN_DEFAULT);
        uv_close((uv_handle_t *)&ex.timer, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
    }
    for (size_t i = 0; i < *count; i++)
        total += ex.lk[i].list && ex.lk[i].list->count ? ex.lk[i].list->count : 1;
    if (!(out = calloc(total, sizeof(*out))) || !(glen = calloc(total, sizeof(*glen))) ||
        !(strs = calloc(total, sizeof(*strs))))
        goto done;
    for (size_t i = 0; i < *count; i++) {
        const struct cm_target *t = &(*targets)[i];
        struct cm_addr_list *l = ex.lk[i].list;
        size_t members = l && l->count ? l->count : 1;

        glen[n] = members;
        if (l && l->dropped)
            fprintf(stderr,
                    "certmon check: %s has more than %d addresses; probing the first %d "
                    "(%zu more answers left out)\n",
                    t->host, CM_RESOLVE_MAX_ADDRS, CM_RESOLVE_MAX_ADDRS, l->dropped);
        for (size_t k = 0; k < members; k++, n++) {
            if (cm_target_copy(&out[n], t) < 0)
                goto done;
            if (!l || !l->count)
                continue;
            char a[INET6_ADDRSTRLEN];
            const struct sockaddr_storage *sa = &l->addrs[k];
            inet_ntop(sa->ss_family,
                      sa->ss_family == AF_INET
                          ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                          : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr,
                      a, sizeof(a));
            if (!(strs[na] = strdup(a)))
                goto done;
            out[n].connect_address = strs[na++];
        }
    }
    for (size_t i = 0; i < *count; i++)
        cm_target_clear(&(*targets)[i]);
    free(*targets);
    *targets = out;
    *count = total;
    *group_len = glen;
    *addrs = strs;
    *naddrs = na;
    out = NULL;
    glen = NULL;
    strs = NULL;
    rc = 0;
done:
    for (size_t i = 0; out && i < n; i++)
        cm_target_clear(&out[i]);
    free(out);
    free(glen);
    for (size_t i = 0; strs && i < na; i++)
        free(strs[i]);
    free(strs);
    for (size_t i = 0; i < ex.count; i++)
        free(ex.lk[i].list);
    free(ex.lk);
    return rc;
}

/* Writes s with every line after the first indented by two spaces (an array element). */
static void put_indented(const char *s)
{
    for (; *s; s++) {
        putchar(*s);
        if (*s == '\n')
            fputs("  ", stdout);
    }
}

/* Analyses result i, which belongs to the group [g, g + n). */
static int analyze_one(struct check_run *run, size_t i, size_t g, size_t n, time_t now,
                       struct cm_findings *fs)
{
    const struct cm_probe_result *res = run->results[i];
    int rc = cm_analyze(res, &run->policy, now, fs);

    if (rc == 0 && n > 1)
        rc = cm_analyze_consistency(res, (const struct cm_probe_result *const *)&run->results[g], n,
                                    &run->policy, fs);
    return rc;
}

static void emit_json_one(struct check_run *run, size_t i, size_t g, size_t n, time_t now)
{
    struct cm_findings fs = {0};
    struct cm_probe_result *res = run->results[i];
    enum cm_status st = CM_STATUS_UNKNOWN;
    json_t *obj = NULL;
    char *text;

    if (res && analyze_one(run, i, g, n, now, &fs) == 0) {
        st = cm_result_status(res, &fs);
        obj = cm_report_json(res, &fs, now);
    }
    if (!obj) {
        st = CM_STATUS_UNKNOWN;
        obj = json_pack("{s:s, s:s, s:{s:s, s:s}}", "target", run->targets[i].name, "status",
                        "unknown", "error", "kind", "internal", "message", "out of memory");
    }
    if (st > run->worst)
        run->worst = st;
    text = obj ? json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10))
               : NULL;
    fputs(i == 0 ? "[\n  " : ",\n  ", stdout);
    if (text)
        put_indented(text);
    else
        fputs("null", stdout);
    if (!text)
        run->worst = CM_STATUS_UNKNOWN;
    free(text);
    json_decref(obj);
    cm_findings_clear(&fs);
}

static void emit_json_ready(struct check_run *run)
{
    time_t now = time(NULL);

    while (run->emitted < run->count) {
        size_t g = run->emitted, n = run->group_len ? run->group_len[g] : 1;

        /* A group is written when all of it is in: its results are compared. */
        for (size_t k = g; k < g + n; k++)
            if (!run->settled[k])
                return;
        for (size_t k = g; k < g + n; k++)
            emit_json_one(run, k, g, n, now);
        for (size_t k = g; k < g + n; k++) {
            cm_probe_result_free(run->results[k]);
            run->results[k] = NULL;
        }
        run->emitted += n;
    }
    if (run->emitted == run->count) {
        fputs(run->count ? "\n]\n" : "[]\n", stdout);
        run->emitted++; /* closed */
    }
}

static void settle_now(struct check_run *run, size_t i);

/* One part of target i's work is done (the posture path, or the revocation check that runs
 * beside it under the same deadline); the last one settles the target. */
static void settle(struct check_run *run, size_t i)
{
    struct slot *s = &run->slots[i];

    if (s->parts > 1) {
        s->parts--;
        return;
    }
    s->parts = 0;
    settle_now(run, i);
}

static void on_revoked(struct cm_probe_result *res, void *arg)
{
    struct slot *s = arg;

    (void)res;
    settle(s->run, s->index);
}

static void on_ari(struct cm_ari *a, void *arg)
{
    struct slot *s = arg;

    s->run->results[s->index]->ari = a; /* NULL (out of memory): reported without */
    settle_now(s->run, s->index);
}

/* Asks for the renewal information of target i's leaf, within what is left of its deadline.
 * Returns 0 when on_ari will settle the target, -1 when it is settled now. */
static int ari_start(struct check_run *run, size_t i)
{
    struct slot *s = &run->slots[i];
    struct cm_probe_result *res = run->results[i];
    struct cm_ari_source src = {run->opts->ari_url, run->opts->acme_directory, NULL};
    uint64_t now = uv_now(run->loop), end = s->started + run->timeout_ms;
    struct cm_ari *a = NULL;
    int rc;

    s->ari_asked = true;
    if (!res || res->tls.chain.count == 0)
        return -1;
    /* With the deadline gone the lookup still gets a millisecond: its error says why. */
    rc = cm_ari_lookup(run->ari, &src, &res->tls.chain.certs[0], end > now ? end - now : 1, on_ari,
                       s, &a);
    if (rc == 0)
        return 0;
    res->ari = a;
    return -1;
}

/* Target i is complete: its slot goes to the next target. */
static void settle_now(struct check_run *run, size_t i)
{
    /* The renewal information comes last, once the posture path and the revocation check are
     * in: it needs the leaf, and the probe's deadline bounds it too. */
    if (run->ari && !run->slots[i].ari_asked && ari_start(run, i) == 0)
        return;
    run->settled[i] = true;
    run->inflight--;
    run->done++;
    if (run->opts->json)
        emit_json_ready(run);
    launch(run);
}

/* Gives target i its own copy of the shared result, with its main handshake added. */
static void posture_deliver(struct check_run *run, struct posture_share *sh, size_t i)
{
    struct cm_probe_result *res = run->results[i];

    /* Out of memory: posture stays null, the target is still reported. */
    res->posture = cm_posture_fold(&sh->base, &res->tls);
    settle(run, i);
}

static void on_posture(struct cm_posture *p, void *arg)
{
    struct posture_share *sh = arg;
    size_t n = sh->nwaiters;

    sh->base = *p;
    sh->done = true;
    cm_posture_free(p);
    /* settle() may start probes whose results join this share's waiters: deliver only to
     * those waiting now; later ones see done and are served at once. */
    for (size_t k = 0; k < n; k++)
        posture_deliver(sh->run, sh, sh->waiters[k]);
    sh->nwaiters = 0;
}

/* Joins or starts the posture pass for target i's endpoint. Returns 0 when the target will
 * be settled by the pass, -1 when it must be settled now (no pass). */
static int posture_join(struct check_run *run, size_t i, uint64_t timeout_ms)
{
    const struct cm_target *t = &run->targets[i];
    const struct cm_probe_result *res = run->results[i];
    uint64_t deadline = uv_now(run->loop) + timeout_ms;
    struct posture_share *sh = NULL;
    size_t *w;
    char key[1024];
    int n = snprintf(key, sizeof(key), "%s|%u|%s|%d|%s", res->address, (unsigned)t->port,
                     t->sni ? t->sni : "", (int)t->starttls, t->client_cert ? t->client_cert : "");

    /* A key cut short could merge two endpoints: such a target gets a sweep of its own. */
    for (sh = n > 0 && (size_t)n < sizeof(key) ? run->postures : NULL; sh; sh = sh->next)
        if (!strcmp(sh->key, key))
            break;
    if (sh && sh->done) {
        posture_deliver(run, sh, i);
        return 0;
    }
    /* A sweep still running past this target's own deadline is not waited for: the target
     * gets a sweep of its own, so that it is reported on time. */
    if (sh && sh->deadline > deadline)
        sh = NULL;
    if (!sh) {
        if (!(sh = calloc(1, sizeof(*sh))) || !(sh->key = strdup(key))) {
            free(sh);
            return -1;
        }
        sh->run = run;
        sh->deadline = deadline;
        if (cm_posture_start(&run->env, t, res->address, timeout_ms, on_posture, sh, NULL) < 0) {
            free(sh->key);
            free(sh);
            return -1;
        }
        sh->next = run->postures;
        run->postures = sh;
    }
    if (!(w = realloc(sh->waiters, (sh->nwaiters + 1) * sizeof(*w))))
        return -1; /* this target goes without posture; the pass serves the others */
    sh->waiters = w;
    sh->waiters[sh->nwaiters++] = i;
    return 0;
}

/* The pass run after a refused main handshake has reported: its result and any chain one
 * of its handshakes received are the target's. Such a pass is never shared: it keeps a chain
 * verified for this target's name. */
static void on_fallback_posture(struct cm_posture *p, void *arg)
{
    struct slot *s = arg;
    struct cm_probe_result *res = s->run->results[s->index];

    res->posture = p;
    cm_posture_adopt_chain(s->fallback, res);
    s->fallback = NULL;
    settle(s->run, s->index);
}

/* A server that refused everything a current client offers may still accept something
 * weak: the posture pass says what (SSL 3.0, export, anonymous suites, ...), and keeps the
 * chain one of its handshakes receives. Returns 0 when the pass will settle target i. */
static int fallback_start(struct check_run *run, struct slot *s, uint64_t timeout_ms)
{
    const struct cm_probe_result *res = run->results[s->index];

    if (cm_posture_start(&run->env, &run->targets[s->index], res->address, timeout_ms,
                         on_fallback_posture, s, &s->fallback) < 0)
        return -1;
    if (res->tls.chain.count == 0)
        cm_posture_keep_chain(s->fallback);
    return 0;
}

static void on_result(struct cm_probe_result *res, void *arg)
{
    struct slot *s = arg;
    struct check_run *run = s->run;
    uint64_t spent = res->total_ms > 0 ? (uint64_t)ceil(res->total_ms) : 0;

    run->results[s->index] = res;
    s->parts = 1;
    /* Revocation runs beside the posture pass, with what is left of the target's deadline.
     * Not after a refused handshake: the fallback pass may still replace the chain. */
    if (run->revctx && res->tls.chain.count > 0 && !res->tls_refused &&
        cm_rev_check(run->revctx, res, run->timeout_ms > spent ? run->timeout_ms - spent : 1,
                     on_revoked, s, NULL) == 0)
        s->parts++;
    /* After a successful handshake, the posture pass runs against the address that answered,
     * with what is left of the target's deadline; the target keeps its slot until the pass
     * reports. A pass that cannot start (out of memory) leaves posture null. */
    if (res->error_kind == CM_ERRK_NONE && !run->opts->quick && res->address[0] &&
        posture_join(run, s->index, run->timeout_ms > spent ? run->timeout_ms - spent : 0) == 0)
        return;
    if (res->tls_refused && !run->opts->quick && res->address[0] && run->timeout_ms > spent &&
        fallback_start(run, s, run->timeout_ms - spent) == 0)
        return;
    settle(run, s->index);
}

static void launch(struct check_run *run)
{
    while (run->inflight < run->concurrency && run->next < run->count) {
        size_t i = run->next++;
        run->slots[i].run = run;
        run->slots[i].index = i;
        run->slots[i].started = uv_now(run->loop);
        if (cm_probe_start(&run->env, &run->targets[i], run->timeout_ms, on_result, &run->slots[i],
                           NULL) < 0) {
            /* Out of memory: an internal failure, so the target is UNKNOWN, not CRITICAL. */
            run->internal_error = true;
            run->settled[i] = true;
            run->done++;
            continue;
        }
        run->inflight++;
    }
    if (run->done == run->count) {
        /* Every result is in. Stop now rather than when the loop runs dry: a resolver
         * thread stuck past a probe's deadline must not hold up the report. */
        uv_stop(run->loop);
        if (run->progress) {
            uv_timer_stop(&run->progress_timer);
            if (run->progress_shown)
                fputs("\r\033[K", stderr);
        }
    }
}

static void on_progress(uv_timer_t *t)
{
    struct check_run *run = t->data;

    run->progress_shown = true;
    fprintf(stderr, "\r\033[Kcertmon: %zu/%zu done, %zu in flight", run->done, run->count,
            run->inflight);
}

/* A threshold of s seconds in days for perfdata: "30", or "1.98" when not whole. */
static void perf_days(int64_t s, char *buf, size_t len)
{
    if (s % 86400 == 0)
        snprintf(buf, len, "%lld", (long long)(s / 86400));
    else
        snprintf(buf, len, "%.2f", (double)s / 86400.0);
}

static void print_summary(const struct check_run *run, const enum cm_status *st,
                          enum cm_status worst, time_t now)
{
    static const char *const words[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};
    size_t n[4] = {0};

    for (size_t i = 0; i < run->count; i++)
        n[st[i]]++;
    printf("CERTMON %s: %zu target%s: %zu ok, %zu warning, %zu critical, %zu unknown |",
           words[worst], run->count, run->count == 1 ? "" : "s", n[0], n[1], n[2], n[3]);
    /* Perfdata: days until the first certificate of each chain expires. */
    for (size_t i = 0; i < run->count; i++) {
        const struct cm_probe_result *r = run->results[i];
        int first = r ? cm_chain_earliest_expiry(&r->tls.chain) : -1;
        char warn[32], crit[32];
        int64_t warn_s, crit_s;
        if (first < 0)
            continue;
        /* The thresholds that certificate is judged by: a share of its lifetime when that is
         * shorter than --warn-days or --crit-days. */
        cm_expiry_thresholds(&r->tls.chain.certs[first], &run->policy, &warn_s, &crit_s, NULL,
                             NULL);
        perf_days(warn_s, warn, sizeof(warn));
        perf_days(crit_s, crit, sizeof(crit));
        /* "N:" is the plugin range for "alert below N". */
        /* With --all-addresses one name has several results: the address tells them apart. */
        printf(" '%s%s%s_days'=%lld;%s:;%s:;;", r->target,
               run->targets[i].connect_address ? "@" : "",
               run->targets[i].connect_address ? run->targets[i].connect_address : "",
               (long long)cm_cert_days_left(&r->tls.chain.certs[first], now), warn, crit);
    }
    putchar('\n');
}

static int finish_output(int worst)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "certmon check: cannot write output: %s\n", strerror(errno));
        return CM_STATUS_UNKNOWN;
    }
    return worst;
}

/* Human output: the summary line comes first, so it waits for every result. */
static int render_text(struct check_run *run)
{
    enum cm_status worst = CM_STATUS_OK;
    time_t now = time(NULL);
    bool colour = isatty(STDOUT_FILENO) && !getenv("NO_COLOR") &&
                  !(getenv("TERM") && !strcmp(getenv("TERM"), "dumb"));
    enum cm_status *st = calloc(run->count ? run->count : 1, sizeof(*st));
    struct cm_findings *fs = calloc(run->count ? run->count : 1, sizeof(*fs));

    if (!st || !fs) {
        fprintf(stderr, "certmon check: out of memory\n");
        free(st);
        free(fs);
        return CM_STATUS_UNKNOWN;
    }
    for (size_t i = 0, g = 0; i < run->count; i++) {
        size_t n = run->group_len ? run->group_len[g] : 1;
        if (i >= g + n) {
            g = i;
            n = run->group_len ? run->group_len[g] : 1;
        }
        if (!run->results[i] || analyze_one(run, i, g, n, now, &fs[i]) < 0)
            st[i] = CM_STATUS_UNKNOWN;
        else
            st[i] = cm_result_status(run->results[i], &fs[i]);
        if (st[i] > worst)
            worst = st[i];
    }
    print_summary(run, st, worst, now);
    for (size_t i = 0; i < run->count; i++) {
        putchar('\n');
        if (st[i] == CM_STATUS_UNKNOWN)
            printf("UNKNOWN  %s  internal error: out of memory\n", run->targets[i].name);
        else
            cm_report_text(stdout, run->results[i], &fs[i], now, colour);
    }
    for (size_t i = 0; i < run->count; i++)
        cm_findings_clear(&fs[i]);
    free(fs);
    free(st);
    return finish_output(worst);
}

/* Adds --ignore ID or --severity ID=LEVEL to the policy. Returns 0, or prints why not and
 * returns -1. */
static int policy_option(struct cm_policy *p, const char *opt, const char *arg)
{
    char id[64];
    const char *eq = strchr(arg, '=');
    enum cm_severity sev = CM_SEV_OK;
    const char *hint;
    int rc;

    if (!strcmp(opt, "--severity")) {
        if (!eq || (size_t)(eq - arg) >= sizeof(id)) {
            bad_usage("--severity takes ID=LEVEL (info|warning|critical), not '%s'", arg);
            return -1;
        }
        memcpy(id, arg, (size_t)(eq - arg));
        id[eq - arg] = '\0';
        if (cm_severity_parse(eq + 1, &sev) < 0) {
            bad_usage("--severity %s: level must be info, warning or critical, not '%s'", id,
                      eq + 1);
            return -1;
        }
    } else {
        snprintf(id, sizeof(id), "%s", arg);
    }
    rc = !strcmp(opt, "--severity") ? cm_policy_set_severity(p, id, sev) : cm_policy_ignore(p, id);
    if (rc == CM_EBADARG) {
        hint = cm_finding_suggest(id);
        bad_usage("%s: '%s' is not a finding id%s%s%s (see docs/findings.md)", opt, id,
                  hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
        return -1;
    }
    if (rc < 0) {
        fprintf(stderr, "certmon check: out of memory\n");
        return -1;
    }
    return 0;
}

/* Long options without a short letter. */
#define OPT_NO_REVOCATION 0x301

/* Every option `check` accepts: the man page test (unit.manpages) and the bash completion
 * check against this table. */
static const struct option longopts[] = {
    {"targets", required_argument, NULL, 't'},
    {"sni", required_argument, NULL, 's'},
    {"ca", required_argument, NULL, 'c'},
    {"client-cert", required_argument, NULL, 'P'},
    {"starttls", required_argument, NULL, 'L'},
    {"all-addresses", no_argument, NULL, 'A'},
    {"client-key", required_argument, NULL, 'K'},
    {"timeout", required_argument, NULL, 'T'},
    {"concurrency", required_argument, NULL, 'n'},
    {"warn-days", required_argument, NULL, 'w'},
    {"crit-days", required_argument, NULL, 'C'},
    {"warn-lifetime-pct", required_argument, NULL, 'W'},
    {"crit-lifetime-pct", required_argument, NULL, 'X'},
    {"max-lifetime-days", required_argument, NULL, 'M'},
    {"min-rsa-bits", required_argument, NULL, 'R'},
    {"min-ec-bits", required_argument, NULL, 'E'},
    {"allow-self-signed", no_argument, NULL, 'S'},
    {"ignore", required_argument, NULL, 'i'},
    {"severity", required_argument, NULL, 'v'},
    {"json", no_argument, NULL, 'j'},
    {"quick", no_argument, NULL, 'Q'},
    {"no-revocation", no_argument, NULL, OPT_NO_REVOCATION},
    {"interception-roots", required_argument, NULL, 'I'},
    {"ari-url", required_argument, NULL, 'a'},
    {"acme-directory", required_argument, NULL, 'D'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

const struct option *cm_check_long_options(void)
{
    return longopts;
}

/* Parses the options into *o. Returns -1 to go on, or the exit status to end with: 0 after
 * printing the help, CM_STATUS_UNKNOWN after printing what is wrong. */
static int parse_options(int argc, char **argv, struct check_opts *o)
{
    char *end;
    long v;
    int c;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            o->targets_file = optarg;
            break;
        case 's':
            o->sni = optarg;
            break;
        case 'c':
            o->ca_file = optarg;
            break;
        case 'P':
            o->client_cert = optarg;
            break;
        case 'A':
            o->all_addresses = true;
            break;
        case 'L': {
            enum cm_starttls_proto proto;
            if (cm_starttls_parse(optarg, &proto) < 0)
                return bad_usage("--starttls must be one of smtp, imap, pop3, ftp, ldap, "
                                 "postgres, mysql, xmpp or none, not '%s'",
                                 optarg);
            o->starttls = optarg;
            break;
        }
        case 'K':
            o->client_key = optarg;
            break;
        case 'T':
            errno = 0;
            o->timeout_s = strtod(optarg, &end);
            if (errno || end == optarg || *end || !isfinite(o->timeout_s) || o->timeout_s < 0.001 ||
                o->timeout_s > 3600)
                return bad_usage("--timeout must be a number of seconds from 0.001 to 3600, "
                                 "not '%s'",
                                 optarg);
            break;
        case 'n':
            if (!parse_long(optarg, 1, 100000, &o->concurrency))
                return bad_usage("--concurrency must be an integer from 1 to 100000, not '%s'",
                                 optarg);
            break;
        case 'w':
        case 'C':
            if (!parse_long(optarg, 0, 36500, &v))
                return bad_usage("--%s must be an integer from 0 to 36500, not '%s'",
                                 c == 'w' ? "warn-days" : "crit-days", optarg);
            *(c == 'w' ? &o->policy.warn_days : &o->policy.crit_days) = (int)v;
            break;
        case 'W':
        case 'X':
            if (!parse_long(optarg, 1, 100, &v))
                return bad_usage("--%s must be an integer from 1 to 100, not '%s'",
                                 c == 'W' ? "warn-lifetime-pct" : "crit-lifetime-pct", optarg);
            *(c == 'W' ? &o->policy.warn_lifetime_pct : &o->policy.crit_lifetime_pct) = (unsigned)v;
            break;
        case 'M':
            if (!parse_long(optarg, 0, 36500, &v))
                return bad_usage("--max-lifetime-days must be an integer from 0 to 36500 (0: the "
                                 "CA/Browser Forum schedule), not '%s'",
                                 optarg);
            o->policy.max_lifetime_days = (int)v;
            break;
        case 'R':
        case 'E':
            if (!parse_long(optarg, 0, 16384, &v))
                return bad_usage("--%s must be an integer from 0 to 16384, not '%s'",
                                 c == 'R' ? "min-rsa-bits" : "min-ec-bits", optarg);
            *(c == 'R' ? &o->policy.min_rsa_bits : &o->policy.min_ec_bits) = (unsigned)v;
            break;
        case 'S':
            o->policy.allow_self_signed = true;
            break;
        case 'i':
        case 'v':
            if (policy_option(&o->policy, c == 'i' ? "--ignore" : "--severity", optarg) < 0)
                return CM_STATUS_UNKNOWN;
            break;
        case 'j':
            o->json = true;
            break;
        case 'Q':
            o->quick = true;
            break;
        case OPT_NO_REVOCATION:
            o->no_revocation = true;
            o->policy.revocation = CM_REVOCATION_STAPLE_ONLY; /* the daemon's "staple-only" */
            break;
        case 'I':
            o->interception_file = optarg;
            break;
        case 'a':
        case 'D':
            if ((strncasecmp(optarg, "http://", 7) && strncasecmp(optarg, "https://", 8)) ||
                strpbrk(optarg, " \t\r\n"))
                return bad_usage("--%s must be an http:// or https:// URL, not '%s'",
                                 c == 'a' ? "ari-url" : "acme-directory", optarg);
            *(c == 'a' ? &o->ari_url : &o->acme_directory) = optarg;
            break;
        case 'h':
            usage(stdout);
            return CM_STATUS_OK;
        case ':':
            return bad_usage("option '%s' needs a value", argv[optind - 1]);
        default:
            if (optopt)
                return bad_usage("unknown option '-%c'", optopt);
            return bad_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (o->policy.crit_days > o->policy.warn_days)
        return bad_usage("--crit-days must not exceed --warn-days");
    if (o->policy.crit_lifetime_pct > o->policy.warn_lifetime_pct)
        return bad_usage("--crit-lifetime-pct (%u) must not exceed --warn-lifetime-pct (%u)",
                         o->policy.crit_lifetime_pct, o->policy.warn_lifetime_pct);
    if (!o->client_cert != !o->client_key)
        return bad_usage("--client-cert and --client-key go together");
    if (o->ari_url && o->acme_directory)
        return bad_usage("--ari-url and --acme-directory exclude each other");
    return -1;
}

int cm_check_main(int argc, char **argv)
{
    struct check_opts o = {.timeout_s = 10, .concurrency = 64, .policy = CM_POLICY_DEFAULT};
    struct check_run run = {0};
    struct cm_target *targets = NULL;
    size_t count = 0, cap = 0;
    uv_loop_t loop;
    char err[320];
    int rc = CM_STATUS_UNKNOWN;
    char **addrs = NULL; /* --all-addresses: the address strings targets borrow */
    size_t naddrs = 0;

    if ((rc = parse_options(argc, argv, &o)) >= 0)
        goto out;
    rc = CM_STATUS_UNKNOWN;

    for (int i = optind; i < argc; i++) {
        if (add_target(&targets, &count, &cap, argv[i], &o, err, sizeof(err)) < 0) {
            rc = bad_usage("%s", err);
            goto out;
        }
    }
    if (o.targets_file && read_targets_file(o.targets_file, &targets, &count, &cap, &o) < 0)
        goto out;
    if (o.interception_file && read_interception_file(&o) < 0)
        goto out;
    if (count == 0) {
        rc = bad_usage("no targets given");
        goto out;
    }

    signal(SIGPIPE, SIG_IGN);
    o.concurrency = cm_fd_limit_fit(o.concurrency, o.quick ? 1 : CM_POSTURE_MAX_HANDSHAKES,
                                    "certmon check");
    if (uv_loop_init(&loop) < 0) {
        fprintf(stderr, "certmon check: cannot create event loop\n");
        goto out;
    }
    run.loop = &loop;
    if (cm_tls_ctx_new(&run.tls) < 0) {
        fprintf(stderr, "certmon check: cannot initialise GnuTLS\n");
        goto out_loop;
    }
    /* Load trust anchors before probing: a bad --ca is the user's error (UNKNOWN), not the
     * endpoint's, and loading once keeps it off every probe's path. */
    struct cm_tls_profile prof = {o.ca_file, o.client_cert, o.client_key};
    int lrc = cm_tls_ctx_load(run.tls, &prof, err, sizeof(err));
    if (lrc < 0) {
        fprintf(stderr, "certmon check: %s%s\n", lrc == CM_ECAFILE ? "--ca " : "", err);
        goto out_tls;
    }
    if (cm_resolver_new(&loop, &run.env.resolver, err, sizeof(err)) < 0) {
        fprintf(stderr, "certmon check: %s\n", err);
        goto out_tls;
    }
    run.env.loop = &loop;
    run.env.tls = run.tls;
    if (!o.no_revocation) {
        err[0] = '\0';
        /* Without a fetcher the run goes on, and says that revocation was not checked. */
        if (cm_httpc_new(&loop, &run.httpc, err, sizeof(err)) < 0 ||
            cm_revctx_new(&loop, run.httpc, &run.revctx) < 0)
            fprintf(stderr, "certmon check: revocation not checked: %s\n",
                    err[0] ? err : "out of memory");
    }
    if (o.all_addresses &&
        expand_targets(&loop, run.env.resolver, (uint64_t)llround(o.timeout_s * 1000.0), &targets,
                       &count, &run.group_len, &addrs, &naddrs) < 0) {
        fprintf(stderr, "certmon check: out of memory\n");
        goto out_tls;
    }
    run.targets = targets;
    run.count = count;
    run.concurrency = (size_t)o.concurrency;
    run.timeout_ms = (uint64_t)llround(o.timeout_s * 1000.0);
    run.opts = &o;
    run.policy = o.policy;
    run.slots = calloc(count, sizeof(*run.slots));
    run.results = calloc(count, sizeof(*run.results));
    run.settled = calloc(count, sizeof(*run.settled));
    if (!run.slots || !run.results || !run.settled) {
        fprintf(stderr, "certmon check: out of memory\n");
        goto out_tls;
    }
    err[0] = '\0';
    if ((o.ari_url || o.acme_directory) && (cm_httpc_new(&loop, &run.http, err, sizeof(err)) < 0 ||
                                            cm_ari_client_new(run.http, 0, &run.ari) < 0)) {
        fprintf(stderr, "certmon check: renewal information: %s\n", err[0] ? err : "out of memory");
        goto out_tls;
    }
    run.progress = isatty(STDERR_FILENO);
    if (run.progress) {
        uv_timer_init(&loop, &run.progress_timer);
        run.progress_timer.data = &run;
        uv_timer_start(&run.progress_timer, on_progress, 1000, 250);
    }
    launch(&run);
    if (run.done < run.count)
        uv_run(&loop, UV_RUN_DEFAULT);
    if (run.progress)
        uv_close((uv_handle_t *)&run.progress_timer, NULL);

    if (o.json) {
        emit_json_ready(&run); /* closes the array; also covers probes that never started */
        rc = finish_output(run.worst);
    } else {
        rc = render_text(&run);
    }
    if (run.internal_error)
        rc = CM_STATUS_UNKNOWN;

out_tls:
    /* Close what is left (resolver sockets, closing probe handles) and let the loop run
     * dry before freeing what those handles might still use. */
    cm_resolver_close(run.env.resolver);
    cm_ari_client_free(run.ari);
    cm_httpc_close(run.http);
    cm_revctx_close(run.revctx);
    cm_httpc_close(run.httpc);
    if (cm_probe_orphans() > 0) {
        /* A chain still being described past its deadline (the report already says
         * "timeout"): waiting for it would break the deadline, and exit() would join the
         * thread pool. */
        fflush(stdout);
        fflush(stderr);
        _exit(rc);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (run.results)
        for (size_t i = 0; i < count; i++)
            cm_probe_result_free(run.results[i]);
    free(run.results);
    free(run.settled);
    free(run.slots);
    free(run.group_len);
    for (struct posture_share *sh = run.postures, *next; sh; sh = next) {
        next = sh->next;
        free(sh->key);
        free(sh->waiters);
        free(sh);
    }
    for (size_t i = 0; i < naddrs; i++)
        free(addrs[i]);
    free(addrs);
    cm_tls_ctx_free(run.tls);
out_loop:
    if (uv_loop_close(&loop) != 0)
        cm_log_error("check", "event loop closed with handles still open");
out:
    for (size_t i = 0; i < count; i++)
        cm_target_clear(&targets[i]);
    free(targets);
    cm_policy_clear(&o.policy);
    free(o.interception_text);
    return rc;
}
