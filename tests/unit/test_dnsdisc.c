/* dnsdisc: srv and mx discovery blocks of the configuration; SRV and MX answers read by the
 * pure parser from messages built here (bounds, malformed and hostile data); lookups on the
 * loop through the c-ares resolver against a real DNS server, Debian's dnsmasq, started on
 * 127.0.0.1 (cm_th_dnsmasq): several records, an answer that needs TCP, MX, NXDOMAIN, NODATA,
 * REFUSED, SERVFAIL relayed from an upstream, "." and the null MX, a server that never answers
 * (the deadline), cancel, and a resolver closed under a pending lookup. Every loop test ends
 * with uv_loop_close() == 0. */
#include "cmtest.h"
#include "certmon/base/error.h"
#include "certmon/config/config.h"
#include "certmon/probe/dnsdisc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

/* ---- DNS messages built by hand ---- */

struct msg {
    unsigned char b[65535];
    size_t n;
    size_t ancount_at; /* where the answer count sits */
    unsigned ancount;
};

static void put8(struct msg *m, unsigned v)
{
    CU_ASSERT_FATAL(m->n < sizeof(m->b));
    m->b[m->n++] = (unsigned char)v;
}

static void put16(struct msg *m, unsigned v)
{
    put8(m, v >> 8 & 0xff);
    put8(m, v & 0xff);
}

static void put32(struct msg *m, uint32_t v)
{
    put16(m, v >> 16);
    put16(m, v & 0xffff);
}

/* A dotted name as labels (any bytes but '.'); "" is the root. */
static void put_name(struct msg *m, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t len = dot ? (size_t)(dot - name) : strlen(name);
        put8(m, (unsigned)len);
        for (size_t i = 0; i < len; i++)
            put8(m, (unsigned char)name[i]);
        name += len + (dot ? 1 : 0);
    }
    put8(m, 0);
}

/* Header and one question for qname/qtype; answers follow. */
static void msg_init(struct msg *m, const char *qname, unsigned qtype)
{
    m->n = 0;
    m->ancount = 0;
    put16(m, 0x1234);
    put16(m, 0x8180);
    put16(m, 1);
    m->ancount_at = m->n;
    put16(m, 0);
    put16(m, 0);
    put16(m, 0);
    put_name(m, qname);
    put16(m, qtype);
    put16(m, 1);
}

/* Starts an answer record owned by the question name (pointer to offset 12). Returns where
 * its RDLENGTH goes. */
static size_t rr_begin(struct msg *m, unsigned type, uint32_t ttl)
{
    size_t at;

    put16(m, 0xc00c);
    put16(m, type);
    put16(m, 1);
    put32(m, ttl);
    at = m->n;
    put16(m, 0);
    m->ancount++;
    m->b[m->ancount_at] = (unsigned char)(m->ancount >> 8);
    m->b[m->ancount_at + 1] = (unsigned char)m->ancount;
    return at;
}

static void rr_end(struct msg *m, size_t at)
{
    size_t len = m->n - at - 2;
    m->b[at] = (unsigned char)(len >> 8);
    m->b[at + 1] = (unsigned char)len;
}

static void add_srv(struct msg *m, uint32_t ttl, unsigned prio, unsigned weight, unsigned port,
                    const char *target)
{
    size_t at = rr_begin(m, 33, ttl);
    put16(m, prio);
    put16(m, weight);
    put16(m, port);
    put_name(m, target);
    rr_end(m, at);
}

static void add_mx(struct msg *m, uint32_t ttl, unsigned pref, const char *exchange)
{
    size_t at = rr_begin(m, 15, ttl);
    put16(m, pref);
    put_name(m, exchange);
    rr_end(m, at);
}

static void add_cname(struct msg *m, const char *target)
{
    size_t at = rr_begin(m, 5, 30);
    put_name(m, target);
    rr_end(m, at);
}

static int parse(enum cm_dnsdisc_kind kind, const struct msg *m, struct cm_dnsdisc_list **l,
                 char *err, size_t errlen)
{
    return cm_dnsdisc_parse(kind, m->b, m->n, l, err, errlen);
}

#define EXPECT_TARGET(l, i, want_host, want_port, want_prio, want_weight)                          \
    do {                                                                                           \
        EXPECT_STR((l)->targets[i].host, want_host);                                               \
        EXPECT_INT((l)->targets[i].port, want_port);                                               \
        EXPECT_INT((l)->targets[i].priority, want_prio);                                           \
        EXPECT_INT((l)->targets[i].weight, want_weight);                                           \
    } while (0)

static struct msg m; /* 64 KiB: not on the stack */

/* Sorted by priority then weight; a repeated endpoint keeps its preferred record; names in
 * lower case; the smallest TTL; a CNAME on the way is skipped. */
static void test_parse_srv(void)
{
    struct cm_dnsdisc_list *l = NULL;
    char err[256];

    msg_init(&m, "_https._tcp.example.test", 33);
    add_cname(&m, "alias.example.test");
    add_srv(&m, 300, 20, 1, 4434, "B.Example.TEST");
    add_srv(&m, 60, 10, 5, 4433, "a.example.test");
    add_srv(&m, 120, 10, 9, 4435, "c.example.test");
    add_srv(&m, 900, 5, 0, 4434, "b.example.test"); /* same endpoint, preferred */
    CU_ASSERT_FATAL(parse(CM_DNSDISC_SRV, &m, &l, err, sizeof(err)) == 0);
    EXPECT_STR(err, "");
    EXPECT_INT(l->count, 3);
    EXPECT_INT(l->ttl, 60);
    EXPECT_INT(l->rejected, 0);
    EXPECT_INT(l->dropped, 0);
    EXPECT_TARGET(l, 0, "b.example.test", 4434, 5, 0);
    EXPECT_TARGET(l, 1, "c.example.test", 4435, 10, 9);
    EXPECT_TARGET(l, 2, "a.example.test", 4433, 10, 5);
    cm_dnsdisc_list_free(l);

    /* The same message asked for MX holds no MX record. */
    EXPECT_INT(parse(CM_DNSDISC_MX, &m, &l, err, sizeof(err)), CM_EDNS_NODATA);
    CU_ASSERT_PTR_NULL(l);
    EXPECT_STR(err, "the answer holds no MX record");
}

static void test_parse_mx(void)
{
    struct cm_dnsdisc_list *l = NULL;
    char err[256];

    msg_init(&m, "example.test", 15);
    add_mx(&m, 3600, 20, "mx2.example.test");
    add_mx(&m, 3600, 10, "mx1.example.test");
    CU_ASSERT_FATAL(parse(CM_DNSDISC_MX, &m, &l, err, sizeof(err)) == 0);
    EXPECT_INT(l->count, 2);
    EXPECT_INT(l->ttl, 3600);
    EXPECT_TARGET(l, 0, "mx1.example.test", 25, 10, 0);
    EXPECT_TARGET(l, 1, "mx2.example.test", 25, 20, 0);
    cm_dnsdisc_list_free(l);

    /* RFC 7505 null MX: the domain takes no mail; an empty list, not an error. */
    msg_init(&m, "example.test", 15);
    add_mx(&m, 600, 0, "");
    CU_ASSERT_FATAL(parse(CM_DNSDISC_MX, &m, &l, err, sizeof(err)) == 0);
    EXPECT_INT(l->count, 0);
    EXPECT_INT(l->ttl, 600);
    cm_dnsdisc_list_free(l);

    /* A TTL with the top bit set counts as 0 (RFC 2181 section 8). */
    msg_init(&m, "example.test", 15);
    add_mx(&m, 0x80000000u, 10, "mx1.example.test");
    CU_ASSERT_FATAL(parse(CM_DNSDISC_MX, &m, &l, err, sizeof(err)) == 0);
    EXPECT_INT(l->ttl, 0);
    cm_dnsdisc_list_free(l);
}

/* Names that are not host names are left out and shown escaped; an answer of nothing else is
 * an error (the caller keeps what it had); an address as a target is not a name either. */
static void test_parse_rejects(void)
{
    struct cm_dnsdisc_list *l = NULL;
    char err[256];

    msg_init(&m, "_https._tcp.example.test", 33);
    add_srv(&m, 60, 10, 0, 443, "evil\x1b[31m.example.test");
    add_srv(&m, 60, 10, 0, 443, "ok.example.test");
    add_srv(&m, 60, 10, 0, 443, "has space.example.test");
    add_srv(&m, 60, 10, 0, 443, "127.0.0.1");
    CU_ASSERT_FATAL(parse(CM_DNSDISC_SRV, &m, &l, err, sizeof(err)) == 0);
    EXPECT_INT(l->count, 1);
    EXPECT_INT(l->rejected, 3);
    EXPECT_TARGET(l, 0, "ok.example.test", 443, 10, 0);
    /* c-ares writes the ESC byte as "\027"; the message escapes the backslash again. */
    EXPECT_STR(err,
               "3 records with an invalid host left out (first: 'evil\\\\027[31m.example.test')");
    for (const char *c = err; *c; c++)
        CU_ASSERT((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f);
    cm_dnsdisc_list_free(l);

    msg_init(&m, "_https._tcp.example.test", 33);
    add_srv(&m, 60, 10, 0, 443, "-bad.example.test");
    EXPECT_INT(parse(CM_DNSDISC_SRV, &m, &l, err, sizeof(err)), CM_EDNS_BADANSWER);
    CU_ASSERT_PTR_NULL(l);
    EXPECT_STR(err, "all 1 SRV records name an invalid host (first: '-bad.example.test')");

    /* "." beside real targets is skipped; alone it means "not offered". */
    msg_init(&m, "_https._tcp.example.test", 33);
    add_srv(&m, 60, 0, 0, 0, "");
    add_srv(&m, 30, 10, 0, 443, "ok.example.test");
    CU_ASSERT_FATAL(parse(CM_DNSDISC_SRV, &m, &l, err, sizeof(err)) == 0);
    EXPECT_INT(l->count, 1);
    EXPECT_INT(l->ttl, 30);
    cm_dnsdisc_list_free(l);
}

/* At most CM_DNSDISC_MAX_RECORDS targets; the rest counted and said. */
static void test_parse_bound(void)
{
    struct cm_dnsdisc_list *l = NULL;
    char err[256], host[64];

    msg_init(&m, "_https._tcp.example.test", 33);
    for (int i = 0; i < 1200; i++) {
        snprintf(host, sizeof(host), "t%04d.example.test", i);
        add_srv(&m, 60, 10, 0, 443, host);
    }
    CU_ASSERT_FATAL(parse(CM_DNSDISC_SRV, &m, &l, err, sizeof(err)) == 0);
    EXPECT_INT(l->count, CM_DNSDISC_MAX_RECORDS);
    EXPECT_INT(l->dropped, 200);
    EXPECT_STR(l->targets[0].host, "t0000.example.test");
    EXPECT_STR(l->targets[999].host, "t0999.example.test");
    EXPECT_STR(err, "200 records beyond the first 1000 left out");
    cm_dnsdisc_list_free(l);
}

/* Every cut of a valid message, a record running past the end, a compression loop and a
 * header alone are errors, never a read out of bounds (ASan) or a list. */
static void test_parse_malformed(void)
{
    struct cm_dnsdisc_list *l = NULL;
    char err[256];
    size_t full;

    msg_init(&m, "_https._tcp.example.test", 33);
    add_srv(&m, 60, 10, 0, 443, "a.example.test");
    add_srv(&m, 60, 20, 0, 443, "b.example.test");
    full = m.n;
    for (size_t cut = 0; cut < full; cut++) {
        /* A fresh copy of exactly cut bytes, so that ASan sees any read past it. */
        unsigned char *copy = malloc(cut ? cut : 1);
        CU_ASSERT_FATAL(copy != NULL);
        memcpy(copy, m.b, cut);
        int rc = cm_dnsdisc_parse(CM_DNSDISC_SRV, copy, cut, &l, err, sizeof(err));
        if (rc != CM_EDNS_BADANSWER)
            fprintf(stderr, "cut at %zu: rc %d\n", cut, rc);
        CU_ASSERT(rc == CM_EDNS_BADANSWER);
        CU_ASSERT_PTR_NULL(l);
        free(copy);
    }
    EXPECT_INT(cm_dnsdisc_parse(CM_DNSDISC_SRV, m.b, 5, &l, err, sizeof(err)), CM_EDNS_BADANSWER);
    EXPECT_STR(err, "answer of 5 bytes is not a DNS message");

    /* A SRV target that points at itself. */
    msg_init(&m, "_https._tcp.example.test", 33);
    size_t at = rr_begin(&m, 33, 60);
    put16(&m, 1);
    put16(&m, 1);
    put16(&m, 443);
    put16(&m, 0xc000 | (unsigned)m.n);
    rr_end(&m, at);
    EXPECT_INT(parse(CM_DNSDISC_SRV, &m, &l, err, sizeof(err)), CM_EDNS_BADANSWER);
    EXPECT_STR(err, "malformed DNS answer (62 bytes)");

    /* RDLENGTH shorter than the name inside it. */
    msg_init(&m, "_https._tcp.example.test", 33);
    add_srv(&m, 60, 10, 0, 443, "a.example.test");
    m.b[m.n - 24] = 0; /* RDLENGTH: 6 fixed bytes and 16 of name, said to be 8 */
    m.b[m.n - 23] = 8;
    EXPECT_INT(parse(CM_DNSDISC_SRV, &m, &l, err, sizeof(err)), CM_EDNS_BADANSWER);
}

/* ---- Configuration: srv and mx discovery blocks ---- */

static struct cm_config *load_conf(const char *text, struct cm_config_errors *errs)
{
    struct cm_config *cfg = NULL;

    cm_config_load_string(text, strlen(text), "/etc/certmon/c.conf", &cfg, errs);
    return cfg;
}

static void test_config_blocks(void)
{
    struct cm_config_errors errs = {0};
    struct cm_config *cfg =
        load_conf("discovery = ( { srv = \"_https._tcp.Example.test\"; },\n"
                  "  { name = \"mail\"; mx = \"example.test\"; port = 2525; },\n"
                  "  { mx = \"example.org\"; refresh = \"10s\";\n"
                  "    starttls = \"none\"; } );\n",
                  &errs);

    for (size_t i = 0; i < errs.count; i++)
        fprintf(stderr, "\n    | %s", errs.msgs[i]);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_INT(cfg->discovery_count, 3);
    EXPECT_INT(cfg->discovery[0].kind, CM_DISCOVERY_SRV);
    EXPECT_STR(cfg->discovery[0].dns_name, "_https._tcp.Example.test");
    EXPECT_INT(cfg->discovery[0].refresh_ms, 300000);
    EXPECT_INT(cfg->discovery[0].port, 0);
    CU_ASSERT_PTR_NULL(cfg->discovery[0].starttls);
    EXPECT_INT(cfg->discovery[0].file_count, 0);
    EXPECT_INT(cfg->discovery[1].kind, CM_DISCOVERY_MX);
    EXPECT_INT(cfg->discovery[1].port, 2525);
    EXPECT_STR(cfg->discovery[1].starttls, "smtp");
    EXPECT_INT(cfg->discovery[2].port, 25);
    EXPECT_INT(cfg->discovery[2].refresh_ms, 10000);
    EXPECT_STR(cfg->discovery[2].starttls, "none");
    cm_config_free(cfg);
}

/* Each mistake named at FILE:LINE with the setting. */
static void test_config_errors(void)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"discovery = ( { srv = \"_a._tcp.x.test\"; mx = \"x.test\"; } );",
         "c.conf:1: discovery[0].srv: give one of srv and mx: a source looks up one name"},
        {"discovery = ( { files = [\"/x/a.json\"];\n srv = \"_a._tcp.x.test\"; } );",
         "c.conf:2: discovery[0].srv: give files or srv, not both"},
        {"discovery = ( { srv = \"bad name\"; } );",
         "discovery[0].srv: 'bad name' is not a DNS name (a SRV name looks like "
         "_https._tcp.example.com)"},
        {"discovery = ( { mx = \"192.0.2.25\"; } );",
         "discovery[0].mx: '192.0.2.25' is not a DNS name"},
        {"discovery = ( { srv = \"_a._tcp.x.test\"; port = 25; } );",
         "discovery[0].port: only an mx source takes a port (SRV records name their own ports)"},
        {"discovery = ( { mx = \"x.test\"; port = 0; } );", "discovery[0].port: "},
        {"discovery = ( { refresh = \"1m\"; } );",
         "discovery[0]: missing required setting 'files' (a list of .json or .yml files, globs "
         "allowed), 'srv' or 'mx'"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cm_config_errors errs = {0};
        struct cm_config *cfg = load_conf(cases[i].text, &errs);

        CU_ASSERT_PTR_NULL(cfg);
        cm_config_free(cfg);
        CU_ASSERT(cm_th_config_error(&errs, cases[i].want, i));
        cm_config_errors_clear(&errs);
    }
}

/* ---- Lookups against dnsmasq ---- */

static char tmpdir[64];
static int dns_port, silent_port, upstream_port;
static pid_t dnsmasq_pid = -1;

static char records[160000];

static int suite_init(void)
{
    size_t n = 0;

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/certmon-dnsdisc-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    dns_port = cm_th_free_dns_port();
    silent_port = cm_th_free_dns_port();
    upstream_port = cm_th_free_dns_port();
    n += (size_t)snprintf(records + n, sizeof(records) - n,
                          "local=/example.test/\n"
                          "srv-host=_https._tcp.example.test,a.example.test,4433,10,5\n"
                          "srv-host=_https._tcp.example.test,b.example.test,4434,20,1\n"
                          "srv-host=_https._tcp.example.test,c.example.test,4435,10,9\n"
                          "srv-host=_none._tcp.example.test\n"
                          "mx-host=example.test,mx1.example.test,10\n"
                          "mx-host=example.test,mx2.example.test,20\n"
                          "mx-host=nullmx.example.test,.,0\n"
                          "host-record=a.example.test,127.0.0.1\n"
                          "server=/fail.test/127.0.0.1#%d\n",
                          upstream_port);
    /* 40 records do not fit a 512-byte UDP answer: c-ares must retry over TCP. 1,100 go past
     * the bound. */
    for (int i = 0; i < 40 && n < sizeof(records); i++)
        n += (size_t)snprintf(records + n, sizeof(records) - n,
                              "srv-host=_many._tcp.example.test,m%02d.example.test,443,1,0\n", i);
    for (int i = 0; i < 1100 && n < sizeof(records); i++)
        n += (size_t)snprintf(records + n, sizeof(records) - n,
                              "srv-host=_huge._tcp.example.test,h%04d.example.test,443,1,0\n", i);
    if (n >= sizeof(records))
        return 1;
    dnsmasq_pid = cm_th_dnsmasq(tmpdir, dns_port, 60, records);
    if (dnsmasq_pid < 0)
        fprintf(stderr, "dnsmasq did not start (see %s)\n", tmpdir);
    return dnsmasq_pid < 0;
}

static int suite_cleanup(void)
{
    char cmd[128];

    cm_th_stop(dnsmasq_pid);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) != 0;
}

struct got {
    int n;
    int status;
    char message[256];
    struct cm_dnsdisc_list *list;
    double elapsed_s;
    double started;
};

static void on_done(int status, const char *message, struct cm_dnsdisc_list *list, void *arg)
{
    struct got *g = arg;

    g->n++;
    g->status = status;
    snprintf(g->message, sizeof(g->message), "%s", message);
    g->list = list;
    g->elapsed_s = cm_th_now() - g->started;
}

struct env {
    uv_loop_t loop;
    struct cm_resolver *r;
};

/* A loop and a resolver that asks the DNS server on 127.0.0.1:port alone. */
static void env_init(struct env *e, int port)
{
    char servers[64], err[256] = "";

    snprintf(servers, sizeof(servers), "127.0.0.1:%d", port);
    setenv("CERTMON_DNS_SERVERS", servers, 1);
    CU_ASSERT_FATAL(uv_loop_init(&e->loop) == 0);
    EXPECT_INT(cm_resolver_new(&e->loop, &e->r, err, sizeof(err)), 0);
    EXPECT_STR(err, "");
    CU_ASSERT_FATAL(e->r != NULL);
}

static void env_done(struct env *e)
{
    cm_resolver_close(e->r);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    EXPECT_INT(uv_loop_close(&e->loop), 0);
}

/* Looks name up and waits for the answer (at most 5 s). */
static void lookup(struct env *e, enum cm_dnsdisc_kind kind, const char *name, uint64_t timeout_ms,
                   struct got *g)
{
    memset(g, 0, sizeof(*g));
    g->started = cm_th_now();
    EXPECT_INT(cm_dnsdisc_start(e->r, kind, name, timeout_ms, on_done, g, NULL), 0);
    CU_ASSERT(cm_th_loop_until(&e->loop, &g->n, 1, (int)(5000 * CERTMON_SLOWDOWN)));
    EXPECT_INT(g->n, 1);
}

static void test_srv(void)
{
    struct env e;
    struct got g;

    env_init(&e, dns_port);
    lookup(&e, CM_DNSDISC_SRV, "_https._tcp.example.test", 3000, &g);
    EXPECT_INT(g.status, 0);
    EXPECT_STR(g.message, "");
    CU_ASSERT_FATAL(g.list != NULL);
    EXPECT_INT(g.list->count, 3);
    EXPECT_INT(g.list->ttl, 60);
    EXPECT_TARGET(g.list, 0, "c.example.test", 4435, 10, 9);
    EXPECT_TARGET(g.list, 1, "a.example.test", 4433, 10, 5);
    EXPECT_TARGET(g.list, 2, "b.example.test", 4434, 20, 1);
    cm_dnsdisc_list_free(g.list);

    /* Over 512 bytes: truncated over UDP, whole over TCP. */
    lookup(&e, CM_DNSDISC_SRV, "_many._tcp.example.test", 3000, &g);
    EXPECT_INT(g.status, 0);
    CU_ASSERT_FATAL(g.list != NULL);
    EXPECT_INT(g.list->count, 40);
    EXPECT_STR(g.list->targets[39].host, "m39.example.test");
    cm_dnsdisc_list_free(g.list);

    lookup(&e, CM_DNSDISC_SRV, "_huge._tcp.example.test", 3000, &g);
    EXPECT_INT(g.status, 0);
    CU_ASSERT_FATAL(g.list != NULL);
    EXPECT_INT(g.list->count, CM_DNSDISC_MAX_RECORDS);
    EXPECT_INT(g.list->dropped, 100);
    EXPECT_STR(g.message, "100 records beyond the first 1000 left out");
    cm_dnsdisc_list_free(g.list);
    env_done(&e);
}

static void test_mx(void)
{
    struct env e;
    struct got g;

    env_init(&e, dns_port);
    lookup(&e, CM_DNSDISC_MX, "example.test", 3000, &g);
    EXPECT_INT(g.status, 0);
    CU_ASSERT_FATAL(g.list != NULL);
    EXPECT_INT(g.list->count, 2);
    EXPECT_TARGET(g.list, 0, "mx1.example.test", 25, 10, 0);
    EXPECT_TARGET(g.list, 1, "mx2.example.test", 25, 20, 0);
    cm_dnsdisc_list_free(g.list);

    lookup(&e, CM_DNSDISC_MX, "nullmx.example.test", 3000, &g);
    EXPECT_INT(g.status, 0);
    CU_ASSERT_FATAL(g.list != NULL);
    EXPECT_INT(g.list->count, 0);
    cm_dnsdisc_list_free(g.list);
    env_done(&e);
}

/* "." as the target: the service is not offered; an empty list, not an error. */
static void test_srv_dot(void)
{
    struct env e;
    struct got g;

    env_init(&e, dns_port);
    lookup(&e, CM_DNSDISC_SRV, "_none._tcp.example.test", 3000, &g);
    EXPECT_INT(g.status, 0);
    CU_ASSERT_FATAL(g.list != NULL);
    EXPECT_INT(g.list->count, 0);
    EXPECT_INT(g.list->ttl, 60);
    cm_dnsdisc_list_free(g.list);
    env_done(&e);
}

/* The failures are told apart, each with its code and a reason. */
static void test_errors(void)
{
    struct env e;
    struct got g;

    env_init(&e, dns_port);
    lookup(&e, CM_DNSDISC_SRV, "_nope._tcp.example.test", 3000, &g);
    EXPECT_INT(g.status, CM_EDNS_NXDOMAIN);
    CU_ASSERT_PTR_NULL(g.list);
    EXPECT_STR(g.message, "Domain name not found");

    /* The name exists (an A record) but has no SRV record. */
    lookup(&e, CM_DNSDISC_SRV, "a.example.test", 3000, &g);
    EXPECT_INT(g.status, CM_EDNS_NODATA);
    EXPECT_STR(g.message, "DNS server returned answer with no data");

    /* Outside the zones dnsmasq serves, with nothing to forward to: REFUSED, which c-ares
     * 1.18 reports together with SERVFAIL (see cm_resolve_query). */
    lookup(&e, CM_DNSDISC_SRV, "_https._tcp.example.org", 3000, &g);
    EXPECT_INT(g.status, CM_EDNS_SERVFAIL);
    EXPECT_STR(g.message, "no DNS server answered the query (SERVFAIL, REFUSED or unreachable)");

    EXPECT_INT(cm_dnsdisc_start(e.r, CM_DNSDISC_SRV, "bad name", 1000, on_done, &g, NULL),
               CM_EBADARG);
    EXPECT_INT(cm_dnsdisc_start(e.r, CM_DNSDISC_SRV, "", 1000, on_done, &g, NULL), CM_EBADARG);
    EXPECT_INT(cm_dnsdisc_start(e.r, CM_DNSDISC_SRV, "ok.test", 0, on_done, &g, NULL), CM_EBADARG);
    env_done(&e);
}

/* An upstream that answers SERVFAIL to everything, on the test's loop: dnsmasq forwards
 * fail.test there and relays the failure. */
struct upstream {
    uv_udp_t udp;
    unsigned char buf[512];
    int queries;
};

static void up_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct upstream *u = h->data;

    (void)suggested;
    *buf = uv_buf_init((char *)u->buf, sizeof(u->buf));
}

static void up_read(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *from,
                    unsigned flags)
{
    struct upstream *u = h->data;

    (void)flags;
    if (n < 12 || !from)
        return;
    u->queries++;
    buf->base[2] = (char)0x81; /* QR, RD */
    buf->base[3] = (char)0x82; /* RA, rcode 2: SERVFAIL */
    uv_buf_t out = uv_buf_init(buf->base, (unsigned)n);
    uv_udp_try_send(h, &out, 1, from);
}

static void test_servfail(void)
{
    struct sockaddr_in sa;
    struct upstream u = {.queries = 0};
    struct env e;
    struct got g;

    env_init(&e, dns_port);
    uv_ip4_addr("127.0.0.1", upstream_port, &sa);
    CU_ASSERT_FATAL(uv_udp_init(&e.loop, &u.udp) == 0);
    u.udp.data = &u;
    EXPECT_INT(uv_udp_bind(&u.udp, (const struct sockaddr *)&sa, 0), 0);
    EXPECT_INT(uv_udp_recv_start(&u.udp, up_alloc, up_read), 0);
    lookup(&e, CM_DNSDISC_SRV, "_https._tcp.x.fail.test", 3000, &g);
    EXPECT_INT(g.status, CM_EDNS_SERVFAIL);
    CU_ASSERT_PTR_NULL(g.list);
    EXPECT_STR(g.message, "no DNS server answered the query (SERVFAIL, REFUSED or unreachable)");
    CU_ASSERT(u.queries >= 1);
    uv_close((uv_handle_t *)&u.udp, NULL);
    env_done(&e);
}

/* A UDP socket that is bound but never read: queries go in, nothing comes back. */
static int silent_socket(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)silent_port)};
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    CU_ASSERT_FATAL(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    return fd;
}

/* The deadline bounds a lookup whatever c-ares's own retries would take (resolv.conf's
 * defaults: 5 s and more). */
static void test_timeout(void)
{
    int fd = silent_socket();
    struct env e;
    struct got g;

    env_init(&e, silent_port);
    lookup(&e, CM_DNSDISC_SRV, "_https._tcp.example.test", 300, &g);
    EXPECT_INT(g.status, CM_EDNS_TIMEOUT);
    EXPECT_STR(g.message, "no answer within the deadline");
    CU_ASSERT_PTR_NULL(g.list);
    CU_ASSERT(g.elapsed_s >= 0.29);
    CU_ASSERT(g.elapsed_s < 0.3 + 0.5 * CERTMON_SLOWDOWN);
    env_done(&e);
    close(fd);
}

/* Cancelled: the callback never runs, whether the answer would have come or not; nothing
 * leaks (ASan) and no handle stays (uv_loop_close). */
static void test_cancel(void)
{
    struct cm_dnsdisc_req *req;
    int fd = silent_socket(), never = 0;
    struct env e, live;
    struct got g = {0}, h = {0};

    env_init(&e, silent_port);
    EXPECT_INT(
        cm_dnsdisc_start(e.r, CM_DNSDISC_SRV, "_https._tcp.example.test", 200, on_done, &g, &req),
        0);
    CU_ASSERT_FATAL(req != NULL);
    cm_dnsdisc_cancel(req);
    cm_th_loop_until(&e.loop, &never, 1, 400);
    EXPECT_INT(g.n, 0);
    env_done(&e);
    close(fd);

    env_init(&live, dns_port);
    EXPECT_INT(cm_dnsdisc_start(live.r, CM_DNSDISC_MX, "example.test", 2000, on_done, &h, &req), 0);
    cm_dnsdisc_cancel(req);
    cm_dnsdisc_cancel(NULL);
    cm_th_loop_until(&live.loop, &never, 1, 300);
    EXPECT_INT(h.n, 0);
    env_done(&live);
}

/* The resolver closes under a pending lookup: its callback runs once with -ECANCELED. */
static void test_resolver_closed(void)
{
    int fd = silent_socket();
    struct env e;
    struct got g = {0};

    env_init(&e, silent_port);
    EXPECT_INT(
        cm_dnsdisc_start(e.r, CM_DNSDISC_SRV, "_https._tcp.example.test", 5000, on_done, &g, NULL),
        0);
    env_done(&e);
    EXPECT_INT(g.n, 1);
    EXPECT_INT(g.status, -ECANCELED);
    CU_ASSERT_PTR_NULL(g.list);
    close(fd);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"parse_srv", test_parse_srv},
        {"parse_mx", test_parse_mx},
        {"parse_rejects", test_parse_rejects},
        {"parse_bound", test_parse_bound},
        {"parse_malformed", test_parse_malformed},
        {"config_blocks", test_config_blocks},
        {"config_errors", test_config_errors},
        {"srv", test_srv},
        {"mx", test_mx},
        {"srv_dot", test_srv_dot},
        {"errors", test_errors},
        {"servfail", test_servfail},
        {"timeout", test_timeout},
        {"cancel", test_cancel},
        {"resolver_closed", test_resolver_closed},
        CU_TEST_INFO_NULL,
    };
    return cm_test_main("dnsdisc", tests, suite_init, suite_cleanup);
}
