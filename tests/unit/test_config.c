/* The configuration loader: durations, defaults, every class of error with its FILE:LINE:
 * SETTING prefix, per-target policy, paths, spec hashes, scale, credentials, and the shipped
 * example file. Configuration files are written at test time into a mkdtemp directory. */
#include "cmtest.h"

#include "certmon/config/config.h"
#include "certmon/base/error.h"
#include "certmon/base/text.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[PATH_MAX];

/* dir/name, in a static rotating buffer. */
static const char *in_dir(const char *name)
{
    static char bufs[8][PATH_MAX + 64];
    static unsigned n;
    char *b = bufs[n++ % 8];

    snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
    return b;
}

static const char *write_file(const char *name, const char *text)
{
    const char *p = in_dir(name);
    FILE *f = fopen(p, "w");

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static void dump(const struct cm_config_errors *e)
{
    for (size_t i = 0; i < e->count; i++)
        fprintf(stderr, "    | %s\n", e->msgs[i]);
}

static void fail_at(unsigned line, const char *what)
{
    CU_assertImplementation(CU_FALSE, line, what, __FILE__, "", CU_FALSE);
}

/* Loads text as dir/c.conf and expects it to be valid. */
static struct cm_config *load_ok_at(const char *text, unsigned line)
{
    struct cm_config_errors e = {0};
    struct cm_config *cfg = NULL;
    int rc = cm_config_load(write_file("c.conf", text), &cfg, &e);

    expect_int(rc, 0, "cm_config_load", line);
    expect_int(e.count, 0, "error count", line);
    if (rc != 0 || e.count)
        dump(&e);
    cm_config_errors_clear(&e);
    return cfg;
}
#define load_ok(text) load_ok_at((text), __LINE__)

/* Loads text as dir/c.conf and returns every message (the load must fail). */
static void load_bad_at(const char *text, struct cm_config_errors *e, unsigned line)
{
    struct cm_config *cfg = (struct cm_config *)&cfg;
    int rc = cm_config_load(write_file("c.conf", text), &cfg, e);

    expect_int(rc, CM_ECONFIG, "cm_config_load", line);
    if (cfg)
        fail_at(line, "config not NULL after a failed load");
    if (rc == 0)
        cm_config_free(cfg);
}

/* Expects, among the messages, one starting "DIR/c.conf:LINE: SETTING: " (or
 * "DIR/c.conf:LINE: SETTING" when setting ends in '!': no colon after it) that contains every
 * word given (NULL-terminated). */
static void expect_msg(const struct cm_config_errors *e, const char *file, int line,
                       const char *setting, unsigned at, va_list ap)
{
    char prefix[PATH_MAX + 256];
    const char *hit = NULL;
    const char *w;

    snprintf(prefix, sizeof(prefix), "%s:%d: %s: ", file, line, setting);
    for (size_t i = 0; i < e->count && !hit; i++)
        if (!strncmp(e->msgs[i], prefix, strlen(prefix)))
            hit = e->msgs[i];
    if (!hit) {
        fprintf(stderr, "\n  line %u: no message starting '%s' among:\n", at, prefix);
        dump(e);
        fail_at(at, "message with the expected FILE:LINE: SETTING prefix");
        return;
    }
    while ((w = va_arg(ap, const char *))) {
        if (!strstr(hit, w)) {
            fprintf(stderr, "\n  line %u: '%s' lacks '%s'\n", at, hit, w);
            fail_at(at, "message contains the expected words");
        }
    }
}

static void expect_error(const char *text, int line, const char *setting, unsigned at, ...)
{
    struct cm_config_errors e = {0};
    va_list ap;

    load_bad_at(text, &e, at);
    va_start(ap, at);
    expect_msg(&e, in_dir("c.conf"), line, setting, at, ap);
    va_end(ap);
    cm_config_errors_clear(&e);
}
#define EXPECT_ERROR(text, line, setting, ...)                                                     \
    expect_error((text), (line), (setting), __LINE__, __VA_ARGS__, (const char *)NULL)

static void has_msg(const struct cm_config_errors *e, const char *file, int line,
                    const char *setting, unsigned at, ...)
{
    va_list ap;

    va_start(ap, at);
    expect_msg(e, file, line, setting, at, ap);
    va_end(ap);
}
#define EXPECT_MSG(e, file, line, setting, ...)                                                    \
    has_msg((e), (file), (line), (setting), __LINE__, __VA_ARGS__, (const char *)NULL)

/* ---- Durations ---- */

static void test_duration_parse(void)
{
    static const struct {
        const char *s;
        uint64_t ms;
    } good[] = {
        {"90s", 90000},
        {"5m", 300000},
        {"6h", 21600000},
        {"2d", 172800000},
        {"1w", 604800000},
        {"250ms", 250},
        {"1h30m", 5400000},
        {"300", 300000},
        {"0", 0},
        {"0s", 0},
        {"1d2h3m4s5ms", 93784005},
        {"1w1d", 691200000},
        {"36500d", CM_DURATION_MAX_MS},
    };
    static const struct {
        const char *s;
        const char *why;
    } bad[] = {
        {"5x", "unknown unit 'x'"},
        {"-1", "negative"},
        {"", "empty"},
        {"99999999999d", "too long"},
        {"99999999999999999999999", "too long"},
        {"36501d", "too long"},
        {"1h30", "missing unit"},
        {"30m1h", "largest to the smallest"},
        {"5m5m", "largest to the smallest"},
        {"1.5h", "unexpected '.'"},
        {"h", "expected a number"},
        {" 5s", "expected a number"},
        {"5 s", "unexpected ' '"},
        {"5S", "unknown unit 'S'"},
    };
    char err[512];
    uint64_t ms;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ms = 12345;
        err[0] = '\0';
        EXPECT_INT(cm_duration_parse(good[i].s, &ms, err, sizeof(err)), 0);
        EXPECT_INT(ms, good[i].ms);
        if (ms != good[i].ms)
            fprintf(stderr, "  '%s' -> %llu (%s)\n", good[i].s, (unsigned long long)ms, err);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ms = 12345;
        err[0] = '\0';
        EXPECT_INT(cm_duration_parse(bad[i].s, &ms, err, sizeof(err)), CM_EBADARG);
        EXPECT_INT(ms, 12345);
        if (!strstr(err, bad[i].why) || !strstr(err, "ms, s, m, h, d, w")) {
            fprintf(stderr, "  '%s': '%s' lacks '%s' or the accepted forms\n", bad[i].s, err,
                    bad[i].why);
            CU_FAIL("duration error names the problem and the accepted forms");
        }
    }
    EXPECT_INT(cm_duration_parse(NULL, &ms, err, sizeof(err)), CM_EBADARG);
    EXPECT_INT(cm_duration_parse("5x", &ms, NULL, 0), CM_EBADARG);
}

static void test_duration_format(void)
{
    static const struct {
        uint64_t ms;
        const char *s;
    } cases[] = {
        {0, "0s"},          {250, "250ms"},
        {1000, "1s"},       {1500, "1s500ms"},
        {90000, "1m30s"},   {300000, "5m"},
        {5400000, "1h30m"}, {86400000, "1d"},
        {604800000, "7d"},  {93784005, "1d2h3m4s5ms"},
    };
    char buf[64];
    uint64_t back;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cm_duration_format(cases[i].ms, buf, sizeof(buf));
        EXPECT_STR(buf, cases[i].s);
        EXPECT_INT(cm_duration_parse(buf, &back, NULL, 0), 0);
        EXPECT_INT(back, cases[i].ms);
    }
    cm_duration_format(93784005, buf, 5); /* truncated, still a C string */
    CU_ASSERT(strlen(buf) < 5);
}

/* ---- Valid files ---- */

static void test_defaults(void)
{
    struct cm_config *cfg = load_ok("targets = ( { host = \"example.com\"; } );\n");
    const struct cm_config_target *t;

    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_STR(cfg->path, in_dir("c.conf"));
    EXPECT_STR(cfg->dir, dir);
    EXPECT_INT(cfg->file_count, 1);
    EXPECT_STR(cfg->files[0], in_dir("c.conf"));
    EXPECT_INT(cfg->interval_ms, 3600000);
    EXPECT_INT(cfg->timeout_ms, 10000);
    EXPECT_INT(cfg->posture_interval_ms, 86400000);
    EXPECT_INT(cfg->startup_spread_ms, 300000);
    EXPECT_INT(cfg->retry_min_ms, 30000);
    EXPECT_INT(cfg->concurrency, 64);
    CU_ASSERT_PTR_NULL(cfg->state_file);
    EXPECT_INT(cfg->policy.warn_days, 30);
    EXPECT_INT(cfg->policy.crit_days, 7);
    EXPECT_INT(cfg->policy.warn_lifetime_pct, 33);
    EXPECT_INT(cfg->policy.crit_lifetime_pct, 10);
    EXPECT_INT(cfg->policy.max_lifetime_days, 0);
    EXPECT_INT(cfg->policy.min_rsa_bits, 2048);
    EXPECT_INT(cfg->policy.min_ec_bits, 256);
    CU_ASSERT_FALSE(cfg->policy.allow_self_signed);
    EXPECT_INT(cfg->policy.rule_count, 0);
    EXPECT_INT(cfg->log_level, CM_LOG_INFO);
    CU_ASSERT_FALSE(cfg->log_syslog);
    EXPECT_INT(cfg->listen_count, 1);
    EXPECT_STR(cfg->listen[0], "127.0.0.1:9799");
    CU_ASSERT_PTR_NULL(cfg->tls_cert);
    CU_ASSERT_PTR_NULL(cfg->tls_key);
    CU_ASSERT_PTR_NULL(cfg->client_ca);
    CU_ASSERT_FALSE(cfg->allow_any_target);
    EXPECT_INT(cfg->head_timeout_ms, 10000);
    EXPECT_INT(cfg->max_connections, 64);
    EXPECT_INT(cfg->max_per_client, 0);
    EXPECT_INT(cfg->notifier_count, 0);
    EXPECT_INT(cfg->target_count, 1);

    t = &cfg->targets[0];
    EXPECT_INT(t->kind, CM_TARGET_ENDPOINT);
    EXPECT_STR(t->name, "example.com:443");
    EXPECT_STR(t->ep.host, "example.com");
    EXPECT_INT(t->ep.port, 443);
    EXPECT_STR(t->ep.sni, "example.com");
    EXPECT_INT(t->ep.starttls, CM_STARTTLS_NONE);
    CU_ASSERT_PTR_NULL(t->ep.ca_file);
    CU_ASSERT_PTR_NULL(t->ep.connect_address);
    CU_ASSERT_PTR_NULL(t->opt->path);
    EXPECT_INT(t->labels.count, 0);
    EXPECT_INT(t->interval_ms, 3600000);
    EXPECT_INT(t->timeout_ms, 10000);
    EXPECT_INT(t->posture_interval_ms, 86400000);
    EXPECT_INT(t->policy->warn_days, 30);
    EXPECT_STR(t->file, in_dir("c.conf"));
    CU_ASSERT(t->file == cfg->files[0]);
    EXPECT_INT(t->line, 1);
    EXPECT_INT(t->index, 0);
    CU_ASSERT(cm_config_find(cfg, "example.com:443") == t);
    CU_ASSERT_PTR_NULL(cm_config_find(cfg, "example.com:444"));
    cm_config_free(cfg);

    /* An empty file is a valid configuration with nothing to do. */
    cfg = load_ok("# nothing\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_INT(cfg->target_count, 0);
    EXPECT_INT(cfg->listen_count, 1);
    cm_config_free(cfg);
}

static void test_all_values(void)
{
    struct cm_config *cfg;
    const struct cm_config_target *t;

    mkdir(in_dir("state"), 0700);
    write_file("tls.crt", "x\n");
    write_file("tls.key", "x\n");
    write_file("scrapers.pem", "x\n");
    cfg = load_ok("global = { interval = \"2h\"; timeout = 30; concurrency = 10000;\n"
                  "  state_file = \"state/s.json\"; posture_interval = \"off\";\n"
                  "  startup_spread = 0; retry_interval = \"1m30s\"; warn_days = 40;\n"
                  "  crit_days = 40; min_rsa_bits = 3072; min_ec_bits = 384;\n"
                  "  allow_self_signed = true; };\n"
                  "log = { level = \"debug\"; syslog = true; };\n"
                  "metrics = { listen = [ \"127.0.0.1:1\", \"[::1]:65535\", \"localhost:9799\" ];\n"
                  "  tls_cert = \"tls.crt\"; tls_key = \"tls.key\"; client_ca = \"scrapers.pem\";\n"
                  "  allow_any_target = true; head_timeout = \"3s\"; max_connections = 200;"
                  "  max_connections_per_client = 8; };\n"
                  "targets = [];\n"
                  "files = ();\n"
                  "notifiers = ( { name = \"ops\"; type = \"slack\"; url = \"https://x\";\n"
                  "                min_severity = \"critical\"; group_wait = \"5s\"; },\n"
                  "              { name = \"am\"; type = \"alertmanager\"; url = \"http://a:9093\"; } );\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_INT(cfg->interval_ms, 7200000);
    EXPECT_INT(cfg->timeout_ms, 30000);
    EXPECT_INT(cfg->concurrency, 10000);
    EXPECT_STR(cfg->state_file, in_dir("state/s.json"));
    EXPECT_INT(cfg->posture_interval_ms, 0);
    EXPECT_INT(cfg->startup_spread_ms, 0);
    EXPECT_INT(cfg->retry_min_ms, 90000);
    EXPECT_INT(cfg->policy.warn_days, 40);
    EXPECT_INT(cfg->policy.crit_days, 40);
    EXPECT_INT(cfg->policy.min_rsa_bits, 3072);
    EXPECT_INT(cfg->policy.min_ec_bits, 384);
    CU_ASSERT_TRUE(cfg->policy.allow_self_signed);
    EXPECT_INT(cfg->log_level, CM_LOG_DEBUG);
    CU_ASSERT_TRUE(cfg->log_syslog);
    EXPECT_INT(cfg->listen_count, 3);
    EXPECT_STR(cfg->listen[1], "[::1]:65535");
    EXPECT_STR(cfg->listen[2], "localhost:9799");
    EXPECT_STR(cfg->tls_cert, in_dir("tls.crt"));
    EXPECT_STR(cfg->tls_key, in_dir("tls.key"));
    EXPECT_STR(cfg->client_ca, in_dir("scrapers.pem"));
    EXPECT_INT(cfg->tls_cert_at.line, 8);
    EXPECT_INT(cfg->client_ca_at.line, 8);
    CU_ASSERT_TRUE(cfg->allow_any_target);
    EXPECT_INT(cfg->head_timeout_ms, 3000);
    EXPECT_INT(cfg->max_connections, 200);
    EXPECT_INT(cfg->max_per_client, 8);
    EXPECT_INT(cfg->target_count, 0);
    EXPECT_INT(cfg->notifier_count, 2);
    EXPECT_STR(cfg->notifiers[0].name, "ops");
    EXPECT_STR(cfg->notifiers[0].type, "slack");
    EXPECT_INT(cfg->notifiers[0].line, 12);
    EXPECT_STR(cfg->notifiers[0].file, in_dir("c.conf"));
    EXPECT_STR(cfg->notifiers[1].type, "alertmanager");
    EXPECT_INT(cfg->notifiers[1].line, 14);
    EXPECT_INT(cfg->notifiers[0].min_severity, CM_SEV_CRITICAL);
    EXPECT_INT(cfg->notifiers[0].group_wait_ms, 5000);
    EXPECT_INT(cfg->notifiers[0].repeat_ms, 24 * 3600 * 1000LL);
    EXPECT_INT(cfg->notifiers[1].kind, CM_NOTIFIER_ALERTMANAGER);
    EXPECT_INT(cfg->notifiers[1].url_count, 1);
    EXPECT_STR(cfg->notifiers[1].urls[0], "http://a:9093");
    EXPECT_INT(cfg->notifiers[1].min_severity, CM_SEV_WARNING);
    cm_config_free(cfg);

    /* Target keys: STARTTLS by port, explicit none, SNI naming, connect_address, posture. */
    cfg = load_ok(
        "global = { posture_interval = \"12h\"; };\n"
        "targets = (\n"
        "  { host = \"mail.example.com\"; port = 587; interval = \"5m\";\n"
        "    labels = { team = \"mail\"; a_first = \"1\"; }; },\n"
        "  { host = \"mail.example.com\"; port = 25; starttls = \"none\"; },\n"
        "  { host = \"10.0.0.5\"; port = 8443; sni = \"api.internal\"; timeout = \"250ms\";\n"
        "    posture = false; },\n"
        "  { host = \"www.example.org\"; connect_address = \"2001:db8::1\"; name = \"node1\";\n"
        "    posture_interval = \"1h\"; starttls = \"IMAP\"; },\n"
        "  { host = \"[2001:db8::2]\"; port = 0x1BB; posture = true; }\n"
        ");\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_INT(cfg->target_count, 5);
    t = &cfg->targets[0];
    EXPECT_STR(t->name, "mail.example.com:587");
    EXPECT_INT(t->ep.starttls, CM_STARTTLS_SMTP);
    EXPECT_INT(t->interval_ms, 300000);
    EXPECT_INT(t->posture_interval_ms, 43200000);
    EXPECT_INT(t->labels.count, 2);
    EXPECT_STR(t->labels.keys[0], "a_first"); /* sorted by key */
    EXPECT_STR(t->labels.values[0], "1");
    EXPECT_STR(t->labels.keys[1], "team");
    EXPECT_STR(t->labels.values[1], "mail");
    EXPECT_INT(t->line, 3);
    t = &cfg->targets[1];
    EXPECT_INT(t->ep.starttls, CM_STARTTLS_NONE);
    t = &cfg->targets[2];
    EXPECT_STR(t->name, "api.internal@10.0.0.5:8443");
    EXPECT_STR(t->ep.sni, "api.internal");
    EXPECT_STR(t->ep.verify_name, "api.internal");
    EXPECT_INT(t->timeout_ms, 250);
    EXPECT_INT(t->posture_interval_ms, 0);
    t = &cfg->targets[3];
    EXPECT_STR(t->name, "node1");
    EXPECT_STR(t->opt->connect_address, "2001:db8::1");
    CU_ASSERT(t->ep.connect_address == t->opt->connect_address);
    EXPECT_INT(t->posture_interval_ms, 3600000);
    EXPECT_INT(t->ep.starttls, CM_STARTTLS_IMAP);
    t = &cfg->targets[4];
    EXPECT_STR(t->name, "[2001:db8::2]:443");
    EXPECT_INT(t->posture_interval_ms, 43200000);
    CU_ASSERT(cm_config_find(cfg, "node1") == &cfg->targets[3]);
    CU_ASSERT(cm_config_find(cfg, "api.internal@10.0.0.5:8443") == &cfg->targets[2]);
    cm_config_free(cfg);
}

static void test_policy_override(void)
{
    struct cm_config *cfg = load_ok(
        "global = { warn_days = 20; crit_days = 5; min_rsa_bits = 3072;\n"
        "           ignore = [ \"cert.wildcard\" ]; };\n"
        "targets = (\n"
        "  { host = \"a.example\"; warn_days = 10; allow_self_signed = true;\n"
        "    severity = ( \"chain.order=critical\", \"cert.wildcard=warning\" ); },\n"
        "  { host = \"b.example\"; }\n"
        ");\n"
        "files = ( { path = \"/srv/certs\"; crit_days = 2; ignore = [ \"key.weak\" ]; } );\n");
    const struct cm_config_target *a, *b, *f;

    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_INT(cfg->target_count, 3);
    a = &cfg->targets[0];
    b = &cfg->targets[1];
    f = &cfg->targets[2];
    EXPECT_INT(cfg->policy.rule_count, 1);
    EXPECT_INT(a->policy->warn_days, 10);
    EXPECT_INT(a->policy->crit_days, 5);
    EXPECT_INT(a->policy->min_rsa_bits, 3072);
    CU_ASSERT_TRUE(a->policy->allow_self_signed);
    EXPECT_INT(a->policy->rule_count, 3);
    if (a->policy->rule_count == 3) {
        /* Global rules first, then the target's: later rules win. */
        EXPECT_STR(a->policy->rules[0].id, "cert.wildcard");
        CU_ASSERT_TRUE(a->policy->rules[0].ignore);
        EXPECT_STR(a->policy->rules[1].id, "chain.order");
        CU_ASSERT_FALSE(a->policy->rules[1].ignore);
        EXPECT_INT(a->policy->rules[1].severity, CM_SEV_CRITICAL);
        EXPECT_STR(a->policy->rules[2].id, "cert.wildcard");
        EXPECT_INT(a->policy->rules[2].severity, CM_SEV_WARNING);
    }
    EXPECT_INT(b->policy->warn_days, 20);
    EXPECT_INT(b->policy->crit_days, 5);
    CU_ASSERT_FALSE(b->policy->allow_self_signed);
    EXPECT_INT(b->policy->rule_count, 1);
    /* A target that sets no policy key shares the global policy (100,000 copies otherwise). */
    CU_ASSERT_PTR_EQUAL(b->policy, &cfg->policy);
    CU_ASSERT(a->policy != &cfg->policy && f->policy != &cfg->policy);
    EXPECT_INT(f->kind, CM_TARGET_FILE);
    EXPECT_STR(f->name, "file:/srv/certs");
    EXPECT_STR(f->opt->path, "/srv/certs");
    EXPECT_INT(f->policy->warn_days, 20);
    EXPECT_INT(f->policy->crit_days, 2);
    EXPECT_INT(f->policy->rule_count, 2);
    EXPECT_INT(f->posture_interval_ms, 0);
    cm_config_free(cfg);

    /* Inherited values still meet the cross-check. */
    EXPECT_ERROR("global = { crit_days = 5; };\n"
                 "targets = ( { host = \"a.example\";\n"
                 "  warn_days = 3; } );\n",
                 3, "targets[0].warn_days", "crit_days (5, from global)",
                 "must not exceed warn_days (3)");
}

/* warn_lifetime_pct, crit_lifetime_pct and max_lifetime_days: global, per target, per file
 * entry; bad values named with FILE:LINE. */
static void test_lifetime_keys(void)
{
    struct cm_config *cfg = load_ok(
        "global = { warn_lifetime_pct = 50; crit_lifetime_pct = 20; max_lifetime_days = 825; };\n"
        "targets = (\n"
        "  { host = \"a.example\"; warn_lifetime_pct = 25; max_lifetime_days = 0; },\n"
        "  { host = \"b.example\"; crit_lifetime_pct = 50; }\n"
        ");\n"
        "files = ( { path = \"/srv/certs\"; crit_lifetime_pct = 1; max_lifetime_days = 36500; } "
        ");\n");
    const struct cm_config_target *a, *b, *f;

    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_INT(cfg->target_count, 3);
    a = &cfg->targets[0];
    b = &cfg->targets[1];
    f = &cfg->targets[2];
    EXPECT_INT(cfg->policy.warn_lifetime_pct, 50);
    EXPECT_INT(cfg->policy.crit_lifetime_pct, 20);
    EXPECT_INT(cfg->policy.max_lifetime_days, 825);
    EXPECT_INT(a->policy->warn_lifetime_pct, 25);
    EXPECT_INT(a->policy->crit_lifetime_pct, 20);
    EXPECT_INT(a->policy->max_lifetime_days, 0); /* back to the CA/B schedule */
    EXPECT_INT(b->policy->warn_lifetime_pct, 50);
    EXPECT_INT(b->policy->crit_lifetime_pct, 50); /* equal to warn is fine */
    EXPECT_INT(b->policy->max_lifetime_days, 825);
    EXPECT_INT(f->kind, CM_TARGET_FILE);
    EXPECT_INT(f->policy->warn_lifetime_pct, 50);
    EXPECT_INT(f->policy->crit_lifetime_pct, 1);
    EXPECT_INT(f->policy->max_lifetime_days, 36500);
    /* A changed threshold changes how the target is judged: a new spec. */
    CU_ASSERT(a->spec_hash != b->spec_hash);
    cm_config_free(cfg);

    /* Ranges: 0 < pct <= 100, 0 <= max_lifetime_days <= 36500, integers only. */
    EXPECT_ERROR("global = { warn_lifetime_pct = 0; };\n", 1, "global.warn_lifetime_pct",
                 "must be an integer from 1 to 100, not 0");
    EXPECT_ERROR("global = {\n  crit_lifetime_pct = 101; };\n", 2, "global.crit_lifetime_pct",
                 "from 1 to 100, not 101");
    EXPECT_ERROR("targets = ( { host = \"a.example\";\n  warn_lifetime_pct = -5; } );\n", 2,
                 "targets[0].warn_lifetime_pct", "from 1 to 100, not -5");
    EXPECT_ERROR("global = { warn_lifetime_pct = 33.3; };\n", 1, "global.warn_lifetime_pct",
                 "expected an integer, found");
    EXPECT_ERROR("global = { warn_lifetime_pct = \"33%\"; };\n", 1, "global.warn_lifetime_pct",
                 "expected an integer, found");
    EXPECT_ERROR("files = ( { path = \"/srv\";\n\n  max_lifetime_days = -1; } );\n", 3,
                 "files[0].max_lifetime_days", "from 0 to 36500, not -1");
    EXPECT_ERROR("global = { max_lifetime_days = 36501; };\n", 1, "global.max_lifetime_days",
                 "from 0 to 36500, not 36501");
    /* crit must not exceed warn, inherited values included. */
    EXPECT_ERROR("global = { warn_lifetime_pct = 20;\n  crit_lifetime_pct = 30; };\n", 2,
                 "global.crit_lifetime_pct", "crit_lifetime_pct (30)",
                 "must not exceed warn_lifetime_pct (20)");
    EXPECT_ERROR("global = { crit_lifetime_pct = 25; };\n"
                 "targets = ( { host = \"a.example\";\n"
                 "  warn_lifetime_pct = 20; } );\n",
                 3, "targets[0].warn_lifetime_pct", "crit_lifetime_pct (25, from global)",
                 "must not exceed warn_lifetime_pct (20)");
    EXPECT_ERROR("files = ( { path = \"/srv\"; crit_lifetime_pct = 40; } );\n", 1,
                 "files[0].crit_lifetime_pct", "crit_lifetime_pct (40)",
                 "must not exceed warn_lifetime_pct (33, from global)");
    /* A misspelt key gets a suggestion. */
    EXPECT_ERROR("global = { warn_lifetime_pc = 20; };\n", 1, "global.warn_lifetime_pc",
                 "warn_lifetime_pct");
}

/* revocation and revocation_timeout: global, per target, per file entry; defaults auto and
 * 10 s; a bad mode is named with FILE:LINE and the nearest mode. */
static void test_revocation_keys(void)
{
    struct cm_config *cfg =
        load_ok("global = { revocation = \"staple-only\"; revocation_timeout = "
                "\"3s\"; };\n"
                "targets = (\n"
                "  { host = \"a.example\"; revocation = \"auto\"; },\n"
                "  { host = \"b.example\"; revocation_timeout = 250; }\n"
                ");\n"
                "files = ( { path = \"/srv/certs\"; revocation = \"off\"; } );\n");
    const struct cm_config_target *a, *b, *f;

    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_INT(cfg->target_count, 3);
    a = &cfg->targets[0];
    b = &cfg->targets[1];
    f = &cfg->targets[2];
    EXPECT_INT(cfg->policy.revocation, CM_REVOCATION_STAPLE_ONLY);
    EXPECT_INT(cfg->policy.revocation_timeout_ms, 3000);
    EXPECT_INT(a->policy->revocation, CM_REVOCATION_AUTO);
    EXPECT_INT(a->policy->revocation_timeout_ms, 3000);
    EXPECT_INT(b->policy->revocation, CM_REVOCATION_STAPLE_ONLY);
    EXPECT_INT(b->policy->revocation_timeout_ms, 250000); /* a plain number is seconds */
    EXPECT_INT(f->policy->revocation, CM_REVOCATION_OFF);
    EXPECT_INT(f->policy->revocation_timeout_ms, 3000);
    CU_ASSERT(a->spec_hash != b->spec_hash);
    cm_config_free(cfg);

    cfg = load_ok("targets = ( { host = \"a.example\"; } );\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_INT(cfg->targets[0].policy->revocation, CM_REVOCATION_AUTO);
    EXPECT_INT(cfg->targets[0].policy->revocation_timeout_ms, 10000);
    cm_config_free(cfg);

    EXPECT_ERROR("global = {\n  revocation = \"stapel-only\"; };\n", 2, "global.revocation",
                 "must be auto, staple-only or off, not 'stapel-only'",
                 "did you mean 'staple-only'?");
    EXPECT_ERROR("targets = ( { host = \"a.example\";\n  revocation = \"of\"; } );\n", 2,
                 "targets[0].revocation", "not 'of'", "did you mean 'off'?");
    EXPECT_ERROR("files = ( { path = \"/srv\"; revocation = \"never\"; } );\n", 1,
                 "files[0].revocation", "must be auto, staple-only or off, not 'never'");
    EXPECT_ERROR("global = { revocation = false; };\n", 1, "global.revocation",
                 "expected a string");
    EXPECT_ERROR("global = { revocation_timeout = \"50ms\"; };\n", 1, "global.revocation_timeout",
                 "50ms");
    EXPECT_ERROR("files = ( { path = \"/srv\";\n  revocation_timeout = \"11m\"; } );\n", 2,
                 "files[0].revocation_timeout", "11m");
    EXPECT_ERROR("global = { revocation_timout = \"5s\"; };\n", 1, "global.revocation_timout",
                 "did you mean 'revocation_timeout'?");
}

static void test_relative_paths(void)
{
    struct cm_config *cfg;
    const struct cm_config_target *t;
    char cwd[PATH_MAX];
    struct cm_config_errors e = {0};

    mkdir(in_dir("certs"), 0700);
    mkdir(in_dir("state"), 0700);
    write_file("certs/ca.pem", "x\n");
    write_file("certs/me.crt", "x\n");
    write_file("certs/me.key", "x\n");
    cfg = load_ok(
        "global = { state_file = \"./state//s.json\"; };\n"
        "targets = ( { host = \"a.example\"; ca_file = \"certs/ca.pem\";\n"
        "              client_cert = \"certs/me.crt\"; client_key = \"certs/me.key\"; } );\n"
        "files = ( { path = \"certs/*.pem\"; }, { path = \"/etc/ssl/certs/\"; } );\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_STR(cfg->state_file, in_dir("state/s.json"));
    t = &cfg->targets[0];
    EXPECT_STR(t->opt->ca_file, in_dir("certs/ca.pem"));
    EXPECT_STR(t->opt->client_cert, in_dir("certs/me.crt"));
    EXPECT_STR(t->opt->client_key, in_dir("certs/me.key"));
    CU_ASSERT(t->ep.ca_file == t->opt->ca_file);
    CU_ASSERT(t->ep.client_cert == t->opt->client_cert);
    CU_ASSERT(t->ep.client_key == t->opt->client_key);
    EXPECT_INT(t->opt->ca_file_at.line, 2);
    EXPECT_INT(t->opt->client_cert_at.line, 3);
    EXPECT_STR(cfg->targets[1].opt->path, in_dir("certs/*.pem"));
    {
        char want[PATH_MAX + 16];
        snprintf(want, sizeof(want), "file:%s", in_dir("certs/*.pem"));
        EXPECT_STR(cfg->targets[1].name, want);
    }
    EXPECT_STR(cfg->targets[2].opt->path, "/etc/ssl/certs");
    cm_config_free(cfg);

    /* A relative configuration path is made absolute against the working directory. */
    CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof(cwd)));
    CU_ASSERT_EQUAL_FATAL(chdir(dir), 0);
    EXPECT_INT(cm_config_load("./c.conf", &cfg, &e), 0);
    CU_ASSERT_EQUAL(chdir(cwd), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_STR(cfg->path, in_dir("c.conf"));
    EXPECT_STR(cfg->targets[0].opt->ca_file, in_dir("certs/ca.pem"));
    cm_config_free(cfg);
    cm_config_errors_clear(&e);
}

static void test_include(void)
{
    struct cm_config_errors e = {0};
    struct cm_config *cfg;

    mkdir(in_dir("more"), 0700);
    write_file("more/targets.inc", "targets = ( { host = \"a.example\"; },\n"
                                   "            { host = \"b.example\"; } );\n");
    cfg = load_ok("global = { interval = \"1h\"; };\n@include \"more/targets.inc\"\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_INT(cfg->file_count, 2);
    if (cfg->file_count == 2)
        EXPECT_STR(cfg->files[1], in_dir("more/targets.inc"));
    EXPECT_INT(cfg->target_count, 2);
    EXPECT_STR(cfg->targets[1].file, in_dir("more/targets.inc"));
    EXPECT_INT(cfg->targets[1].line, 2);
    cm_config_free(cfg);

    /* Problems inside an included file name that file. */
    write_file("more/targets.inc", "targets = ( { host = \"a.example\"; },\n"
                                   "            { host = \"b.example\"; prot = 1; } );\n");
    load_bad_at("@include \"more/targets.inc\"\n", &e, __LINE__);
    EXPECT_MSG(&e, in_dir("more/targets.inc"), 2, "targets[1].prot", "did you mean 'port'?");
    cm_config_errors_clear(&e);

    EXPECT_ERROR("@include \"missing.inc\"\n", 1, "@include \"missing.inc\"", "cannot read",
                 in_dir("missing.inc"), "No such file", "relative to");

    /* Lines after an include keep their own numbers; an absolute include path works; an
     * include inside a comment or a string is text, as libconfig reads it. */
    write_file("more/targets.inc", "targets = ( { host = \"a.example\"; } );");
    load_bad_at("# first\n@include \"more/targets.inc\"\n/*\n@include \"nothing.inc\"\n*/\n"
                "global = { intervl = \"1h\"; };\n",
                &e, __LINE__);
    EXPECT_INT(e.count, 1);
    EXPECT_MSG(&e, in_dir("c.conf"), 6, "global.intervl", "did you mean 'interval'?");
    cm_config_errors_clear(&e);
    char text[PATH_MAX + 128];
    snprintf(text, sizeof(text), "@include \"%s\" global = { intervl = \"1h\"; };\n",
             in_dir("more/targets.inc"));
    load_bad_at(text, &e, __LINE__);
    EXPECT_INT(e.count, 1);
    EXPECT_MSG(&e, in_dir("c.conf"), 1, "global.intervl", "did you mean 'interval'?");
    cm_config_errors_clear(&e);
    cfg = load_ok("metrics = { listen = \"127.0.0.1:1\"; };\n"
                  "global = { state_file = \"x\n@include \\\"nothing.inc\\\"\"; };\n");
    CU_ASSERT_PTR_NOT_NULL(cfg);
    cm_config_free(cfg);
}

/* ---- Hostile files ---- */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Loads path, expects a failure within max_s seconds and one message containing want. */
static void expect_load_fails_at(const char *path, const char *want, double max_s, unsigned at)
{
    struct cm_config_errors e = {0};
    struct cm_config *cfg = NULL;
    double t0 = now_s();
    int rc = cm_config_load(path, &cfg, &e);
    double took = now_s() - t0;
    bool hit = false;

    expect_int(rc, CM_ECONFIG, "cm_config_load", at);
    CU_ASSERT_PTR_NULL(cfg);
    for (size_t i = 0; i < e.count; i++)
        hit = hit || strstr(e.msgs[i], want);
    if (!hit) {
        fprintf(stderr, "\n  line %u: no message containing '%s' among:\n", at, want);
        dump(&e);
        fail_at(at, "message names the problem");
    }
    if (took > max_s) {
        fprintf(stderr, "\n  line %u: took %.2f s (at most %.1f)\n", at, took, max_s);
        fail_at(at, "load finishes in time");
    }
    cm_config_errors_clear(&e);
}
#define EXPECT_LOAD_FAILS(path, want, max_s) expect_load_fails_at((path), (want), (max_s), __LINE__)

/* Writes a file of n bytes: prefix, then fill up to n - strlen(suffix), then suffix. */
static const char *write_big(const char *name, const char *prefix, char fill, size_t n,
                             const char *suffix)
{
    const char *p = in_dir(name);
    FILE *f = fopen(p, "w");
    size_t body = n - strlen(prefix) - strlen(suffix);
    char chunk[65536];

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    memset(chunk, fill, sizeof(chunk));
    fputs(prefix, f);
    for (size_t done = 0; done < body;) {
        size_t k = body - done < sizeof(chunk) ? body - done : sizeof(chunk);
        fwrite(chunk, 1, k, f);
        done += k;
    }
    fputs(suffix, f);
    fclose(f);
    return p;
}

static void test_hostile_files(void)
{
    char want[PATH_MAX + 128], text[PATH_MAX + 128];
    struct cm_config_errors e = {0};
    struct cm_config *cfg = NULL;
    double t0;

    /* Whatever goes wrong, this test must not hang: SIGALRM's default action ends it. */
    alarm(60);

    /* A FIFO with no writer, as the configuration and as an include: no wait. */
    unlink(in_dir("fifo"));
    CU_ASSERT_EQUAL_FATAL(mkfifo(in_dir("fifo"), 0600), 0);
    snprintf(want, sizeof(want), "%s: not a regular file", in_dir("fifo"));
    EXPECT_LOAD_FAILS(in_dir("fifo"), want, 2.0);
    write_file("inc-fifo.conf", "global = { interval = \"1h\"; };\n@include \"fifo\"\n");
    snprintf(want, sizeof(want), "%s:2: @include \"fifo\": %s: not a regular file",
             in_dir("inc-fifo.conf"), in_dir("fifo"));
    EXPECT_LOAD_FAILS(in_dir("inc-fifo.conf"), want, 2.0);

    /* /dev/zero would feed a reader for ever. */
    EXPECT_LOAD_FAILS("/dev/zero", "/dev/zero: not a regular file", 2.0);
    write_file("inc-zero.conf", "@include \"/dev/zero\"\n");
    EXPECT_LOAD_FAILS(in_dir("inc-zero.conf"), "/dev/zero: not a regular file", 2.0);

    /* Too large: refused before it is parsed (one byte over the limit). */
    write_big("big.conf", "# ", '#', CM_CONFIG_MAX_BYTES + 1, "\n");
    snprintf(want, sizeof(want), "%s: larger than 4 MiB", in_dir("big.conf"));
    EXPECT_LOAD_FAILS(in_dir("big.conf"), want, 2.0);
    write_file("inc-big.conf", "@include \"big.conf\"\n");
    EXPECT_LOAD_FAILS(in_dir("inc-big.conf"), want, 2.0);

    /* A 10 MB string: a clear error at once (libconfig reads such a token from a file in
     * quadratic time: minutes). */
    write_big("string10m.conf", "global = { state_file = \"", 'x', 10 * 1000 * 1000, "\"; };\n");
    snprintf(want, sizeof(want), "%s: larger than 4 MiB", in_dir("string10m.conf"));
    EXPECT_LOAD_FAILS(in_dir("string10m.conf"), want, 2.0);
    /* Just under the limit, the string is parsed (from memory: linear) quickly. */
    write_big("string4m.conf", "targets = ( { host = \"a.example\"; name = \"", 'x',
              CM_CONFIG_MAX_BYTES - 64, "\"; } );\n");
    t0 = now_s();
    EXPECT_INT(cm_config_load(in_dir("string4m.conf"), &cfg, &e), 0);
    if (cfg)
        CU_ASSERT(strlen(cfg->targets[0].name) > CM_CONFIG_MAX_BYTES - 128);
    cm_config_free(cfg);
    cm_config_errors_clear(&e);
    cfg = NULL;
    CU_ASSERT(now_s() - t0 < 5.0);

    /* Files that each fit but together do not, and a small file included over and over. */
    write_big("half1.inc", "# ", '#', 3 * 1024 * 1024, "\n");
    write_big("half2.inc", "# ", '#', 3 * 1024 * 1024, "\n");
    write_file("halves.conf", "@include \"half1.inc\"\n@include \"half2.inc\"\n");
    EXPECT_LOAD_FAILS(in_dir("halves.conf"), "the configuration files together are larger", 2.0);
    write_big("mb.inc", "# ", '#', 1024 * 1024, "\n");
    write_file("again.conf", "@include \"mb.inc\"\n@include \"mb.inc\"\n@include \"mb.inc\"\n"
                             "@include \"mb.inc\"\n@include \"mb.inc\"\n");
    EXPECT_LOAD_FAILS(in_dir("again.conf"), "with its includes in place is larger than 4 MiB",
                      2.0);

    /* An include cycle ends at the depth limit, naming the line. */
    write_file("self.inc", "\n@include \"self.inc\"\n");
    snprintf(want, sizeof(want), "%s:2: @include \"self.inc\": includes nested more than 10 deep",
             in_dir("self.inc"));
    EXPECT_LOAD_FAILS(in_dir("self.inc"), want, 2.0);

    /* A NUL byte is an error at its line, not the silent end of the file. */
    {
        FILE *f = fopen(in_dir("nul.conf"), "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        fwrite("global = { interval = \"1h\"; };\n# x\0y\ntargets = ();\n", 1, 50, f);
        fclose(f);
    }
    snprintf(want, sizeof(want), "%s:2: a NUL byte", in_dir("nul.conf"));
    EXPECT_LOAD_FAILS(in_dir("nul.conf"), want, 2.0);

    /* From memory (the fuzzers' entry point): messages name the given path. */
    snprintf(text, sizeof(text), "global = {\n  intervl = \"1h\"; };\n");
    EXPECT_INT(cm_config_load_string(text, strlen(text), in_dir("mem.conf"), &cfg, &e),
               CM_ECONFIG);
    CU_ASSERT_PTR_NULL(cfg);
    EXPECT_MSG(&e, in_dir("mem.conf"), 2, "global.intervl", "did you mean 'interval'?");
    cm_config_errors_clear(&e);
    EXPECT_INT(cm_config_load_string("a = 1;\0b = 2;\n", 14, in_dir("mem.conf"), &cfg, &e),
               CM_ECONFIG);
    EXPECT_MSG(&e, in_dir("mem.conf"), 1, "a NUL byte", "not a text file");
    cm_config_errors_clear(&e);
    snprintf(text, sizeof(text), "targets = ( { host = \"a.example\"; } );\n");
    EXPECT_INT(cm_config_load_string(text, strlen(text), in_dir("mem.conf"), &cfg, &e), 0);
    if (cfg)
        EXPECT_STR(cfg->targets[0].name, "a.example:443");
    cm_config_free(cfg);
    alarm(0);
}

/* ---- Each class of error ---- */

static void test_syntax_error(void)
{
    struct cm_config_errors e = {0};
    struct cm_config *cfg = NULL;

    EXPECT_ERROR("global = { interval = \"1h\"; };\n"
                 "targets = ( { host = ; } );\n",
                 2, "syntax error", "host = ;");
    EXPECT_ERROR("global = { interval = \"1h\"; };\nglobal = { timeout = \"1s\"; };\n", 2,
                 "syntax error", "duplicate setting name");
    EXPECT_ERROR("global = { interval = \"1h; };\n", 2, "syntax error", "end of the file");

    /* I/O: no line, the reason from errno. */
    EXPECT_INT(cm_config_load(in_dir("nonexistent.conf"), &cfg, &e), CM_ECONFIG);
    CU_ASSERT_PTR_NULL(cfg);
    EXPECT_INT(e.count, 1);
    if (e.count == 1) {
        char want[PATH_MAX + 64];
        snprintf(want, sizeof(want), "cannot read %s: %s", in_dir("nonexistent.conf"),
                 strerror(ENOENT));
        EXPECT_STR(e.msgs[0], want);
    }
    cm_config_errors_clear(&e);
    EXPECT_INT(cm_config_load(dir, &cfg, &e), CM_ECONFIG);
    EXPECT_INT(e.count, 1);
    if (e.count == 1)
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msgs[0], strerror(EISDIR)));
    cm_config_errors_clear(&e);
}

static void test_unknown_keys(void)
{
    EXPECT_ERROR("global = { interval = \"1h\"; };\ntargts = ( );\n", 2, "targts",
                 "unknown setting", "did you mean 'targets'?");
    EXPECT_ERROR("targets = (\n  { host = \"example.com\";\n    prot = 443; } );\n", 3,
                 "targets[0].prot", "unknown setting", "did you mean 'port'?");
    EXPECT_ERROR("global = { intervall = \"1h\"; };\n", 1, "global.intervall",
                 "did you mean 'interval'?");
    EXPECT_ERROR("global = { host = \"x\"; };\n", 1, "global.host", "not a setting of global",
                 "belongs in a target");
    EXPECT_ERROR("targets = ( { host = \"a.example\"; concurrency = 5; } );\n", 1,
                 "targets[0].concurrency", "belongs in global");
    EXPECT_ERROR("interval = \"1h\";\n", 1, "interval", "did you mean global.interval?");
    EXPECT_ERROR("frobnicate = 1;\n", 1, "frobnicate", "unknown setting",
                 "global, log, metrics, targets, files, notifiers and discovery");
    EXPECT_ERROR("files = ( { path = \"/x\"; name = \"x\"; } );\n", 1, "files[0].name",
                 "\"file:\" + their path");
    EXPECT_ERROR("log = { levle = \"info\"; };\n", 1, "log.levle", "did you mean 'level'?");
}

static void test_wrong_type(void)
{
    EXPECT_ERROR("global = { concurrency = \"64\"; };\n", 1, "global.concurrency",
                 "expected an integer, found a string");
    EXPECT_ERROR("global = { interval = 1.5; };\n", 1, "global.interval", "expected a duration",
                 "found a floating-point number");
    EXPECT_ERROR("log = { syslog = \"yes\"; };\n", 1, "log.syslog",
                 "expected true or false, found a string");
    EXPECT_ERROR("global = 5;\n", 1, "global", "expected a group", "found an integer");
    EXPECT_ERROR("targets = { host = \"a\"; };\n", 1, "targets", "expected a list of groups",
                 "found a group");
    EXPECT_ERROR("targets = ( \"example.com\" );\n", 1, "targets[0]", "expected a group",
                 "found a string");
    EXPECT_ERROR("targets = ( { host = 5; } );\n", 1, "targets[0].host",
                 "expected a string, found an integer");
    EXPECT_ERROR("global = { ignore = \"cert.wildcard\"; };\n", 1, "global.ignore",
                 "expected an array or list of strings, found a string");
    EXPECT_ERROR("global = { ignore = ( \"cert.wildcard\", 5 ); };\n", 1, "global.ignore[1]",
                 "expected a string, found an integer");
    EXPECT_ERROR("targets = ( { host = \"a.example\"; labels = [ \"x\" ]; } );\n", 1,
                 "targets[0].labels", "expected a group of strings");
    EXPECT_ERROR("metrics = { listen = 9799; };\n", 1, "metrics.listen",
                 "expected a string or an array of strings, found an integer");
}

static void test_out_of_range(void)
{
    EXPECT_ERROR("metrics = { head_timeout = \"10m\"; };\n", 1, "metrics.head_timeout", "");
    EXPECT_ERROR("metrics = { max_connections = 1; };\n", 1, "metrics.max_connections",
                 "from 2 to 10000");
    EXPECT_ERROR("metrics = { max_connections_per_client = 0; };\n", 1,
                 "metrics.max_connections_per_client", "from 1 to 10000");
    EXPECT_ERROR("targets = ( { host = \"example.com\"; port = 70000; } );\n", 1, "targets[0].port",
                 "from 1 to 65535", "70000");
    EXPECT_ERROR("global = { concurrency = 0; };\n", 1, "global.concurrency",
                 "must be an integer from 1 to 10000, not 0");
    /* libconfig 1.5 wraps this to 443 without a word. */
    EXPECT_ERROR("targets = ( { host = \"example.com\"; port = 4294967739; } );\n", 1,
                 "targets[0].port", "from 1 to 65535", "not 4294967739");
    EXPECT_ERROR("targets = ( { host = \"example.com\"; port = 99999999999999999999L; } );\n", 1,
                 "targets[0].port", "from 1 to 65535");
    EXPECT_ERROR("global = { warn_days = 3651; };\n", 1, "global.warn_days",
                 "from 0 to 3650, not 3651");
    EXPECT_ERROR("global = { min_rsa_bits = 256; };\n", 1, "global.min_rsa_bits",
                 "from 512 to 16384");
    EXPECT_ERROR("global = { min_ec_bits = 1024; };\n", 1, "global.min_ec_bits", "from 160 to 571");
    EXPECT_ERROR("global = { timeout = \"20m\"; };\n", 1, "global.timeout",
                 "must be from 100ms to 10m, not 20m");
    EXPECT_ERROR("global = { timeout = \"50ms\"; };\n", 1, "global.timeout", "from 100ms to 10m");
    EXPECT_ERROR("global = { interval = 0; };\n", 1, "global.interval",
                 "must be at least 1s, not 0s");
    EXPECT_ERROR("global = { posture_interval = \"30s\"; };\n", 1, "global.posture_interval",
                 "at least 1m", "\"off\"");
    EXPECT_ERROR("global = { retry_interval = \"500ms\"; };\n", 1, "global.retry_interval",
                 "at least 1s");
}

static void test_bad_durations(void)
{
    EXPECT_ERROR("global = { interval = \"5x\"; };\n", 1, "global.interval", "unknown unit 'x'",
                 "\"1h30m\"");
    EXPECT_ERROR("global = {\n  interval = \"-1\"; };\n", 2, "global.interval", "negative",
                 "number of seconds");
    EXPECT_ERROR("global = { interval = -1; };\n", 1, "global.interval", "-1");
    EXPECT_ERROR("global = { interval = \"\"; };\n", 1, "global.interval", "empty duration");
    EXPECT_ERROR("global = { interval = \"99999999999d\"; };\n", 1, "global.interval", "too long");
    EXPECT_ERROR("targets = ( { host = \"a.example\"; interval = \"1h30\"; } );\n", 1,
                 "targets[0].interval", "missing unit");
    EXPECT_ERROR("files = ( { path = \"/x\"; interval = \"1 h\"; } );\n", 1, "files[0].interval",
                 "unexpected ' '");
}

static void test_targets(void)
{
    EXPECT_ERROR("targets = (\n  { port = 443; }\n);\n", 2, "targets[0]",
                 "missing required setting 'host'");
    EXPECT_ERROR("targets = ( { host = \"exa mple.com\"; } );\n", 1, "targets[0].host",
                 "'exa mple.com'", "not a valid host name");
    EXPECT_ERROR("targets = ( { host = \"\"; } );\n", 1, "targets[0].host", "must not be empty");
    EXPECT_ERROR("targets = ( { host = \"example.com:8443\"; } );\n", 1, "targets[0].host",
                 "give the port in `port`");
    EXPECT_ERROR("targets = ( { host = \"example.com\"; sni = \"bad name\"; } );\n", 1,
                 "targets[0].sni", "not a valid server name");
    EXPECT_ERROR("targets = ( { host = \"example.com\"; starttls = \"smtps\"; } );\n", 1,
                 "targets[0].starttls", "smtp, imap, pop3, ftp, ldap, postgres, mysql, xmpp",
                 "not 'smtps'", "did you mean 'smtp'?");
    EXPECT_ERROR("targets = ( { host = \"example.com\"; connect_address = \"host.example\"; } );\n",
                 1, "targets[0].connect_address", "IP address literal");
    EXPECT_ERROR("targets = ( { host = \"example.com\"; connect_address = \"[::1]\"; } );\n", 1,
                 "targets[0].connect_address", "IP address literal");
    EXPECT_ERROR("targets = ( { host = \"example.com\"; name = \"a\\nb\"; } );\n", 1,
                 "targets[0].name", "control characters");
    EXPECT_ERROR("targets = ( { host = \"example.com\"; name = \"\"; } );\n", 1, "targets[0].name",
                 "must not be empty");
    EXPECT_ERROR("targets = ( { host = \"example.com\"; posture = false;\n"
                 "  posture_interval = \"1h\"; } );\n",
                 1, "targets[0].posture", "contradicts posture_interval");
    EXPECT_ERROR("files = ( { path = \"\"; } );\n", 1, "files[0].path", "must not be empty");
    EXPECT_ERROR("files = ( { labels = { a = \"b\"; }; } );\n", 1, "files[0]",
                 "missing required setting 'path'");
}

/* ACME renewal information: an http(s) URL in ari_url or acme_directory, not both. */
static void test_ari(void)
{
    struct cm_config *cfg =
        load_ok("targets = (\n"
                "  { host = \"a.example\"; ari_url = \"https://acme.example/renewal-info\"; },\n"
                "  { host = \"b.example\"; acme_directory = \"http://127.0.0.1:14000/dir\"; },\n"
                "  { host = \"c.example\"; }\n"
                ");\n");

    if (cfg) {
        EXPECT_INT(cfg->target_count, 3);
        EXPECT_STR(cfg->targets[0].opt->ari_url, "https://acme.example/renewal-info");
        CU_ASSERT_PTR_NULL(cfg->targets[0].opt->acme_directory);
        EXPECT_STR(cfg->targets[1].opt->acme_directory, "http://127.0.0.1:14000/dir");
        CU_ASSERT_PTR_NULL(cfg->targets[1].opt->ari_url);
        CU_ASSERT_PTR_NULL(cfg->targets[2].opt->ari_url);
        CU_ASSERT_PTR_NULL(cfg->targets[2].opt->acme_directory);
        /* The source is part of how the target is judged: a reload that changes it is a
         * change. */
        CU_ASSERT(cfg->targets[0].spec_hash != cfg->targets[2].spec_hash);
        cm_config_free(cfg);
    }
    EXPECT_ERROR("targets = ( { host = \"a.example\"; ari_url = \"ftp://acme.example/ri\"; } );\n",
                 1, "targets[0].ari_url", "must start with http:// or https://");
    EXPECT_ERROR("targets = ( { host = \"a.example\";\n  acme_directory = \"https://a b/\"; } );\n",
                 2, "targets[0].acme_directory", "must not contain spaces");
    EXPECT_ERROR("targets = ( { host = \"a.example\"; ari_url = \"\"; } );\n", 1,
                 "targets[0].ari_url", "must not be empty");
    EXPECT_ERROR("targets = ( { host = \"a.example\"; ari_url = \"https://a.example/ri\";\n"
                 "  acme_directory = \"https://a.example/dir\"; } );\n",
                 2, "targets[0].acme_directory", "exclude each other");
    EXPECT_ERROR("targets = ( { host = \"a.example\"; ari_url = 5; } );\n", 1,
                 "targets[0].ari_url", "string");
}

/* pin_sha256: 64 hex digits each (colons allowed), kept lowercase, in the policy. */
static void test_pins(void)
{
    struct cm_config *cfg =
        load_ok("global = { history_days = 30; change_window = \"2h\"; notify_renewals = true; };\n"
                "targets = (\n"
                "  { host = \"a.example\"; pin_sha256 = [ "
                "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", "
                "\"AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:"
                "AB:AB:AB:AB:AB:AB\" ]; },\n"
                "  { host = \"b.example\"; pin = \"tofu\"; notify_renewals = false; }\n"
                ");\n");

    if (cfg) {
        CU_ASSERT(!cfg->targets[0].pin_tofu);
        CU_ASSERT(cfg->targets[1].pin_tofu);
        CU_ASSERT(cfg->notify_renewals);
        CU_ASSERT(cfg->targets[0].notify_renewals); /* from global */
        CU_ASSERT(!cfg->targets[1].notify_renewals);
        EXPECT_INT(cfg->history_days, 30);
        EXPECT_INT(cfg->change_window_ms, 2 * 3600 * 1000);
        EXPECT_STR(cfg->targets[0].opt->pins, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa abababababababababababababababababababababababababababababababab");
        CU_ASSERT_PTR_EQUAL(cfg->targets[0].policy->pins, cfg->targets[0].opt->pins);
        CU_ASSERT_PTR_NULL(cfg->targets[1].opt->pins);
        CU_ASSERT_PTR_NULL(cfg->targets[1].policy->pins);
        cm_config_free(cfg);
    }
    cfg = load_ok("targets = ( { host = \"a.example\"; } );\n");
    if (cfg) {
        CU_ASSERT(!cfg->notify_renewals);
        CU_ASSERT(!cfg->targets[0].notify_renewals);
        EXPECT_INT(cfg->history_days, 400);
        EXPECT_INT(cfg->change_window_ms, 24 * 3600 * 1000);
        cm_config_free(cfg);
    }
    EXPECT_ERROR("targets = ( { host = \"a.example\"; pin_sha256 = [ \"abc\" ]; } );\n", 1,
                 "targets[0].pin_sha256[0]", "not a SHA-256");
    EXPECT_ERROR("targets = ( { host = \"a.example\"; pin_sha256 = [ ]; } );\n", 1,
                 "targets[0].pin_sha256", "empty list");
    EXPECT_ERROR("targets = ( { host = \"a.example\"; pin = \"first\"; } );\n", 1, "targets[0].pin",
                 "must be \"tofu\"");
    EXPECT_ERROR("targets = ( { host = \"a.example\"; pin = \"tofu\";\n"
                 "  pin_sha256 = [ "
                 "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" ]; } );\n",
                 1, "targets[0].pin", "exclude each other");
    EXPECT_ERROR("targets = ( { host = \"a.example\"; deploy_grace = \"2h\"; } );\n", 1,
                 "targets[0].deploy_grace", "needs expect_file");
    cfg = load_ok(
        "targets = ( { host = \"a.example\"; expect_file = \"/nonexistent/a.pem\"; },\n"
        "  { host = \"b.example\"; expect_file = \"b.pem\"; deploy_grace = \"10m\"; } );\n");
    if (cfg) {
        EXPECT_STR(cfg->targets[0].opt->expect_file, "/nonexistent/a.pem"); /* a finding, later */
        EXPECT_INT(cfg->targets[0].opt->deploy_grace_ms, 3600 * 1000);
        CU_ASSERT(cfg->targets[1].opt->expect_file && cfg->targets[1].opt->expect_file[0] == '/');
        EXPECT_INT(cfg->targets[1].opt->deploy_grace_ms, 600 * 1000);
        cm_config_free(cfg);
    }
    EXPECT_ERROR("global = { history_days = 0; };\n", 1, "global.history_days", "1");
    EXPECT_ERROR("global = { change_window = \"1s\"; };\n", 1, "global.change_window", "1m");
}

static void test_labels(void)
{
    EXPECT_ERROR("targets = ( { host = \"a.example\";\n  labels = { bad-name = \"x\"; }; } );\n", 2,
                 "targets[0].labels.bad-name", "not a valid label name");
    EXPECT_ERROR("targets = ( { host = \"a.example\"; labels = { target = \"x\"; }; } );\n", 1,
                 "targets[0].labels.target", "reserved");
    EXPECT_ERROR("targets = ( { host = \"a.example\"; labels = { severity = \"x\"; }; } );\n", 1,
                 "targets[0].labels.severity", "reserved");
    EXPECT_ERROR("files = ( { path = \"/x\"; labels = { team = 5; }; } );\n", 1,
                 "files[0].labels.team", "expected a string, found an integer");
    EXPECT_ERROR("files = ( { path = \"/x\"; labels = { team = \"\"; }; } );\n", 1,
                 "files[0].labels.team", "must not be empty");
    EXPECT_ERROR("files = ( { path = \"/x\"; labels = { *x = \"y\"; }; } );\n", 1,
                 "files[0].labels.*x", "not a valid label name");
}

static void test_duplicates(void)
{
    char first[PATH_MAX + 64];

    snprintf(first, sizeof(first), "(first defined at %s:2)", in_dir("c.conf"));
    EXPECT_ERROR("targets = (\n"
                 "  { host = \"example.com\"; },\n"
                 "  { host = \"other.example\"; },\n"
                 "  { host = \"example.com\"; port = 443; }\n"
                 ");\n",
                 4, "targets[2]", "duplicate target 'example.com:443'", first,
                 "give one a distinct `name`");
    EXPECT_ERROR("targets = (\n"
                 "  { host = \"a.example\"; name = \"web\"; },\n"
                 "  { host = \"b.example\";\n"
                 "    name = \"web\"; }\n"
                 ");\n",
                 4, "targets[1].name", "duplicate target 'web'", first);
    EXPECT_ERROR("files = (\n"
                 "  { path = \"/etc/ssl/certs/*.pem\"; },\n"
                 "  { path = \"/etc/ssl//certs/./*.pem\"; }\n"
                 ");\n",
                 3, "files[1]", "duplicate target 'file:/etc/ssl/certs/*.pem'", first);
    /* A target with a bad port is not compared: its name would be a guess. */
    struct cm_config_errors e = {0};
    load_bad_at("targets = ( { host = \"example.com\"; port = 70000; },\n"
                "            { host = \"example.com\"; } );\n",
                &e, __LINE__);
    EXPECT_INT(e.count, 1);
    cm_config_errors_clear(&e);
    /* Same host, different SNI: two targets. */
    struct cm_config *cfg = load_ok("targets = ( { host = \"10.0.0.1\"; sni = \"a.example\"; },\n"
                                    "            { host = \"10.0.0.1\"; sni = \"b.example\"; },\n"
                                    "            { host = \"10.0.0.1\"; } );\n");
    CU_ASSERT_PTR_NOT_NULL(cfg);
    cm_config_free(cfg);
}

/* ---- interception_roots_file ---- */

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static void test_interception_roots(void)
{
    struct cm_config *cfg, *again;
    char name[CM_SPKI_NAME_MAX + 1];
    const struct cm_config_target *a, *b, *f;
    uint64_t hash_a;

    mkdir(in_dir("roots"), 0700);
    write_file("roots/site.txt", "# site list\n\n" HASH_A " Site proxy\n");
    write_file("other.txt", HASH_B " Branch office proxy\n");
    cfg =
        load_ok("global = { interception_roots_file = \"roots/site.txt\"; };\n"
                "targets = ( { host = \"a.example\"; },\n"
                "            { host = \"b.example\"; interception_roots_file = \"other.txt\"; },\n"
                "            { host = \"c.example\"; interception_roots_file = \"./other.txt\"; }"
                " );\n"
                "files = ( { path = \"/srv/certs\"; } );\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    a = cm_config_find(cfg, "a.example:443");
    b = cm_config_find(cfg, "b.example:443");
    f = cm_config_find(cfg, "file:/srv/certs");
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    /* One copy per distinct file (the same file by two spellings is read once). */
    EXPECT_INT(cfg->roots_count, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg->policy.interception_roots);
    CU_ASSERT(cm_spki_list_find(cfg->policy.interception_roots, HASH_A, name, sizeof(name)));
    EXPECT_STR(name, "Site proxy");
    /* Targets and file entries inherit the global list; a target's own replaces it. */
    CU_ASSERT_PTR_EQUAL(a->policy->interception_roots, cfg->policy.interception_roots);
    CU_ASSERT_PTR_EQUAL(f->policy->interception_roots, cfg->policy.interception_roots);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b->policy->interception_roots);
    CU_ASSERT(cm_spki_list_find(b->policy->interception_roots, HASH_B, name, sizeof(name)));
    EXPECT_STR(name, "Branch office proxy");
    CU_ASSERT_FALSE(cm_spki_list_find(b->policy->interception_roots, HASH_A, name, sizeof(name)));
    CU_ASSERT_PTR_EQUAL(cm_config_find(cfg, "c.example:443")->policy->interception_roots,
                        b->policy->interception_roots);
    hash_a = a->spec_hash;

    /* An edited list is a changed spec (the target is judged anew on reload); an unchanged
     * one is not. */
    again = load_ok("global = { interception_roots_file = \"roots/site.txt\"; };\n"
                    "targets = ( { host = \"a.example\"; } );\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(again);
    EXPECT_INT(again->targets[0].spec_hash, hash_a);
    cm_config_free(again);
    write_file("roots/site.txt", HASH_A " Site proxy\n" HASH_B " Another\n");
    again = load_ok("global = { interception_roots_file = \"roots/site.txt\"; };\n"
                    "targets = ( { host = \"a.example\"; } );\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(again);
    CU_ASSERT(again->targets[0].spec_hash != hash_a);
    CU_ASSERT(
        cm_spki_list_find(again->targets[0].policy->interception_roots, HASH_B, name, sizeof(name)));
    cm_config_free(again);
    cm_config_free(cfg);
}

static void test_interception_roots_errors(void)
{
    char want[PATH_MAX + 64];

    alarm(60); /* a FIFO that blocked would end the test here, not hang it */

    /* A bad line: the setting's FILE:LINE, then the list's own FILE:LINE and the problem. */
    write_file("bad-roots.txt", "# ok\n" HASH_A " fine\n0123 too short\n");
    snprintf(want, sizeof(want), "%s:3: ", in_dir("bad-roots.txt"));
    EXPECT_ERROR("global = { interval = \"1h\";\n"
                 "  interception_roots_file = \"bad-roots.txt\"; };\n",
                 2, "global.interception_roots_file", want,
                 "an entry starts with the 64 hex digits of a SHA-256 hash");
    write_file("noname-roots.txt", HASH_A "\n");
    snprintf(want, sizeof(want), "%s:1: the hash has no name after it", in_dir("noname-roots.txt"));
    EXPECT_ERROR("targets = ( { host = \"a.example\";\n"
                 "  interception_roots_file = \"noname-roots.txt\"; } );\n",
                 2, "targets[0].interception_roots_file", want);

    /* Missing. */
    EXPECT_ERROR("global = { interception_roots_file = \"no-such-roots.txt\"; };\n", 1,
                 "global.interception_roots_file", in_dir("no-such-roots.txt"), strerror(ENOENT));

    /* A FIFO without a writer, and /dev/zero: refused at once, nothing read. */
    unlink(in_dir("roots-fifo"));
    CU_ASSERT_EQUAL_FATAL(mkfifo(in_dir("roots-fifo"), 0600), 0);
    snprintf(want, sizeof(want), "%s: not a regular file", in_dir("roots-fifo"));
    EXPECT_ERROR("files = ( { path = \"/srv/certs\";\n"
                 "  interception_roots_file = \"roots-fifo\"; } );\n",
                 2, "files[0].interception_roots_file", want);
    EXPECT_ERROR("global = { interception_roots_file = \"/dev/zero\"; };\n", 1,
                 "global.interception_roots_file", "/dev/zero: not a regular file");
    EXPECT_ERROR("global = { interception_roots_file = \".\"; };\n", 1,
                 "global.interception_roots_file", strerror(EISDIR));

    /* Larger than the cap; a NUL byte; a wrong type. */
    write_big("big-roots.txt", "# ", '#', CM_CONFIG_ROOTS_MAX_BYTES + 1, "\n");
    snprintf(want, sizeof(want), "%s: larger than 1 MiB", in_dir("big-roots.txt"));
    EXPECT_ERROR("global = { interception_roots_file = \"big-roots.txt\"; };\n", 1,
                 "global.interception_roots_file", want);
    {
        FILE *fp = fopen(in_dir("nul-roots.txt"), "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
        fwrite("# a\0b\n", 1, 6, fp);
        fclose(fp);
    }
    EXPECT_ERROR("global = { interception_roots_file = \"nul-roots.txt\"; };\n", 1,
                 "global.interception_roots_file", "holds a NUL byte");
    EXPECT_ERROR("global = { interception_roots_file = 5; };\n", 1,
                 "global.interception_roots_file", "expected a string");
    alarm(0);
}

static void test_files_readable(void)
{
    EXPECT_ERROR("targets = ( { host = \"a.example\";\n  ca_file = \"missing-ca.pem\"; } );\n", 2,
                 "targets[0].ca_file", in_dir("missing-ca.pem"), strerror(ENOENT));
    EXPECT_ERROR("targets = ( { host = \"a.example\"; ca_file = \".\"; } );\n", 1,
                 "targets[0].ca_file", strerror(EISDIR));
    EXPECT_ERROR("metrics = { tls_cert = \"nope.crt\"; tls_key = \"nope.key\"; };\n", 1,
                 "metrics.tls_cert", "cannot read");

    write_file("locked.pem", "x\n");
    chmod(in_dir("locked.pem"), 0);
    if (geteuid() == 0) {
        fprintf(stderr, "\n  (skipping the chmod 000 check: root reads any file) ");
    } else {
        EXPECT_ERROR("targets = ( { host = \"a.example\"; ca_file = \"locked.pem\"; } );\n", 1,
                     "targets[0].ca_file", in_dir("locked.pem"), strerror(EACCES));
    }

    write_file("me.crt", "x\n");
    write_file("me.key", "x\n");
    EXPECT_ERROR("targets = ( { host = \"a.example\"; client_cert = \"me.crt\"; } );\n", 1,
                 "targets[0].client_cert", "needs client_key");
    EXPECT_ERROR("targets = ( { host = \"a.example\"; client_key = \"me.key\"; } );\n", 1,
                 "targets[0].client_key", "needs client_cert");
    EXPECT_ERROR("metrics = { tls_cert = \"me.crt\"; };\n", 1, "metrics.tls_cert",
                 "give both or neither");
    EXPECT_ERROR("metrics = { client_ca = \"me.crt\"; };\n", 1, "metrics.client_ca",
                 "needs tls_cert");
    EXPECT_ERROR("global = { state_file = \"no-such-dir/state.json\"; };\n", 1, "global.state_file",
                 in_dir("no-such-dir"), strerror(ENOENT));
    EXPECT_ERROR("global = { state_file = \".\"; };\n", 1, "global.state_file",
                 "not a regular file");
}

static void test_policy_errors(void)
{
    EXPECT_ERROR("global = { warn_days = 5;\n  crit_days = 10; };\n", 2, "global.crit_days",
                 "crit_days (10) must not exceed warn_days (5)");
    EXPECT_ERROR("global = { warn_days = 5; };\n", 1, "global.warn_days",
                 "crit_days (7, from the default) must not exceed warn_days (5)");
    EXPECT_ERROR("targets = ( { host = \"a.example\"; crit_days = 31; } );\n", 1,
                 "targets[0].crit_days", "warn_days (30, from global)");
    EXPECT_ERROR("global = { ignore = [ \"cert.expird\" ]; };\n", 1, "global.ignore[0]",
                 "'cert.expird' is not a finding id", "did you mean 'cert.expired'?");
    EXPECT_ERROR("targets = ( { host = \"a.example\";\n"
                 "  ignore = ( \"cert.wildcard\",\n"
                 "             \"chain.incomplet\" ); } );\n",
                 3, "targets[0].ignore[1]", "did you mean 'chain.incomplete'?");
    EXPECT_ERROR("global = { severity = [ \"chain.order\" ]; };\n", 1, "global.severity[0]",
                 "takes ID=LEVEL (info|warning|critical), not 'chain.order'");
    EXPECT_ERROR("global = { severity = [ \"chain.order=loud\" ]; };\n", 1, "global.severity[0]",
                 "level must be info, warning or critical, not 'loud'");
    EXPECT_ERROR("global = { severity = [ \"chain.ordr=info\" ]; };\n", 1, "global.severity[0]",
                 "not a finding id", "did you mean 'chain.order'?");
}

static void test_metrics_and_log(void)
{
    EXPECT_ERROR("metrics = { listen = \"127.0.0.1:99999\"; };\n", 1, "metrics.listen",
                 "1 to 65535", "IPV4:PORT, [IPV6]:PORT or HOSTNAME:PORT");
    EXPECT_ERROR("metrics = { listen = [ \"127.0.0.1:9799\", \"::1:9799\" ]; };\n", 1,
                 "metrics.listen[1]", "[ADDRESS]:PORT");
    EXPECT_ERROR("metrics = { listen = [ \"127.0.0.1\" ]; };\n", 1, "metrics.listen[0]",
                 "missing :PORT");
    EXPECT_ERROR("metrics = { listen = \"[10.0.0.1]:80\"; };\n", 1, "metrics.listen",
                 "not an IPv6 address");
    EXPECT_ERROR("metrics = { listen = \"bad host:80\"; };\n", 1, "metrics.listen",
                 "not a valid address or host name");
    EXPECT_ERROR("metrics = { listen = \":80\"; };\n", 1, "metrics.listen", "missing address");
    EXPECT_ERROR("metrics = { listen = [ \"a.example:1\", \"a.example:1\" ]; };\n", 1,
                 "metrics.listen[1]", "listed twice");
    EXPECT_ERROR("metrics = { listen = [ ]; };\n", 1, "metrics.listen", "at least one");
    EXPECT_ERROR("log = { level = \"warn\"; };\n", 1, "log.level",
                 "must be debug, info, warning or error, not 'warn'", "did you mean 'warning'?");
}

static void test_notifiers(void)
{
    char first[PATH_MAX + 64];

    snprintf(first, sizeof(first), "(first defined at %s:2)", in_dir("c.conf"));
    EXPECT_ERROR("notifiers = (\n"
                 "  { name = \"ops\"; type = \"slack\"; url = \"https://x\"; },\n"
                 "  { name = \"ops\"; type = \"webhook\"; url = \"https://y\"; }\n"
                 ");\n",
                 3, "notifiers[1].name", "duplicate notifier 'ops'", first);
    /* Keys by type, required keys, values. */
    EXPECT_ERROR("notifiers = ( { name = \"s\"; type = \"slack\"; } );\n", 1, "notifiers[0]",
                 "missing required setting 'url'");
    EXPECT_ERROR("notifiers = ( { name = \"s\"; type = \"slack\"; url = \"https://x\";\n"
                 "  secret = \"k\"; } );\n",
                 2, "notifiers[0].secret", "is not a setting of a slack notifier");
    EXPECT_ERROR("notifiers = ( { name = \"w\"; type = \"webhook\"; url = \"ftp://x\"; } );\n", 1,
                 "notifiers[0].url", "must start with http:// or https://");
    EXPECT_ERROR("notifiers = ( { name = \"w\"; type = \"webhook\"; url = \"https://x\";\n"
                 "  headers = [ \"no colon\" ]; } );\n",
                 2, "notifiers[0].headers", "is not a header line");
    EXPECT_ERROR("notifiers = ( { name = \"w\"; type = \"webhook\"; url = \"https://x\";\n"
                 "  findings = [ \"cert.expird\" ]; } );\n",
                 2, "notifiers[0].findings[0]", "did you mean 'cert.expired'?");
    EXPECT_ERROR("notifiers = ( { name = \"w\"; type = \"webhook\"; url = \"https://x\";\n"
                 "  min_severity = \"high\"; } );\n",
                 2, "notifiers[0].min_severity", "info, warning or critical");
    EXPECT_ERROR("notifiers = ( { name = \"m\"; type = \"email\"; url = \"smtp://h:25\";\n"
                 "  from = \"a@b\"; } );\n",
                 1, "notifiers[0]", "missing required setting 'to'");
    EXPECT_ERROR("notifiers = ( { name = \"m\"; type = \"email\"; url = \"https://h\";\n"
                 "  from = \"a@b\"; to = [ \"c@d\" ]; } );\n",
                 1, "notifiers[0].url", "smtp:// or smtps://");
    EXPECT_ERROR("notifiers = ( { name = \"m\"; type = \"email\"; url = \"smtp://h\";\n"
                 "  from = \"a@b\"; to = [ \"nobody\" ]; } );\n",
                 2, "notifiers[0].to", "not a mail address");
    EXPECT_ERROR("notifiers = ( { name = \"a\"; type = \"alertmanager\"; } );\n", 1,
                 "notifiers[0]", "missing required setting 'urls'");
    EXPECT_ERROR("notifiers = ( { name = \"a\"; type = \"alertmanager\"; urls = [ \"http://a\" ];\n"
                 "  group_wait = \"2h\"; } );\n",
                 2, "notifiers[0].group_wait", "");
    EXPECT_ERROR("notifiers = ( { name = \"ops\"; type = \"slak\"; } );\n", 1, "notifiers[0].type",
                 "slack, webhook, email, alertmanager, pagerduty, teams, telegram or ntfy",
                 "did you mean 'slack'?");
    EXPECT_ERROR("notifiers = ( { type = \"slack\"; } );\n", 1, "notifiers[0]",
                 "missing required setting 'name'");
    EXPECT_ERROR("notifiers = ( { name = \"x\"; } );\n", 1, "notifiers[0]",
                 "missing required setting 'type'");
}

/* pagerduty, teams, telegram, ntfy: defaults, secrets from files (one trailing newline
 * dropped), the checks of each key; no message shows a secret. */
static void test_service_notifiers(void)
{
    struct cm_config_errors e = {0};
    struct cm_config *cfg;

    write_file("pd.key", "0123456789abcdef0123456789abcdef\n");
    write_file("tg.token", "123456:AAH-secret_Token\r\n");
    write_file("empty.key", "\n");
    cfg = load_ok(
        "notifiers = (\n"
        "  { name = \"pd\"; type = \"pagerduty\"; routing_key_file = \"pd.key\";\n"
        "    client_url = \"https://certmon.example/\"; },\n"
        "  { name = \"pd2\"; type = \"pagerduty\"; routing_key = \"R1\";\n"
        "    url = \"http://127.0.0.1:1/v2/enqueue\"; },\n"
        "  { name = \"teams\"; type = \"teams\"; url = \"https://x.example/wf\"; },\n"
        "  { name = \"tg\"; type = \"telegram\"; bot_token_file = \"tg.token\";\n"
        "    chat_id = \"-1001234567890\"; },\n"
        "  { name = \"tg2\"; type = \"telegram\"; bot_token = \"1:a\"; chat_id = \"@ops_1\";\n"
        "    parse_mode = \"text\"; url = \"http://127.0.0.1:2\"; },\n"
        "  { name = \"n\"; type = \"ntfy\"; url = \"https://ntfy.example/certmon\"; },\n"
        "  { name = \"n2\"; type = \"ntfy\"; url = \"https://ntfy.example/c\";\n"
        "    token = \"tk_abc\"; } );\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_INT(cfg->notifier_count, 7);
    EXPECT_INT(cfg->notifiers[0].kind, CM_NOTIFIER_PAGERDUTY);
    EXPECT_STR(cfg->notifiers[0].type, "pagerduty");
    EXPECT_STR(cfg->notifiers[0].token, "0123456789abcdef0123456789abcdef");
    EXPECT_STR(cfg->notifiers[0].url, "https://events.pagerduty.com/v2/enqueue");
    EXPECT_STR(cfg->notifiers[0].client_url, "https://certmon.example/");
    EXPECT_STR(cfg->notifiers[1].token, "R1");
    EXPECT_STR(cfg->notifiers[1].url, "http://127.0.0.1:1/v2/enqueue");
    EXPECT_INT(cfg->notifiers[2].kind, CM_NOTIFIER_TEAMS);
    CU_ASSERT_PTR_NULL(cfg->notifiers[2].token);
    EXPECT_INT(cfg->notifiers[3].kind, CM_NOTIFIER_TELEGRAM);
    EXPECT_STR(cfg->notifiers[3].token, "123456:AAH-secret_Token");
    EXPECT_STR(cfg->notifiers[3].url, "https://api.telegram.org");
    EXPECT_STR(cfg->notifiers[3].chat_id, "-1001234567890");
    CU_ASSERT(cfg->notifiers[3].html);
    CU_ASSERT(!cfg->notifiers[4].html);
    EXPECT_STR(cfg->notifiers[4].chat_id, "@ops_1");
    EXPECT_INT(cfg->notifiers[5].kind, CM_NOTIFIER_NTFY);
    CU_ASSERT_PTR_NULL(cfg->notifiers[5].token);
    EXPECT_STR(cfg->notifiers[6].token, "tk_abc");
    cm_config_free(cfg);

    EXPECT_ERROR("notifiers = ( { name = \"p\"; type = \"pagerduty\"; } );\n", 1, "notifiers[0]",
                 "missing required setting 'routing_key' (or 'routing_key_file')");
    EXPECT_ERROR("notifiers = ( { name = \"p\"; type = \"pagerduty\"; routing_key = \"a\";\n"
                 "  routing_key_file = \"pd.key\"; } );\n",
                 2, "notifiers[0].routing_key", "not both");
    EXPECT_ERROR("notifiers = ( { name = \"p\"; type = \"pagerduty\";\n"
                 "  routing_key_file = \"nope.key\"; } );\n",
                 2, "notifiers[0].routing_key_file", "cannot read", "nope.key");
    EXPECT_ERROR("notifiers = ( { name = \"p\"; type = \"pagerduty\";\n"
                 "  routing_key_file = \"empty.key\"; } );\n",
                 2, "notifiers[0].routing_key_file", "one line", "not empty");
    EXPECT_ERROR("notifiers = ( { name = \"p\"; type = \"pagerduty\"; routing_key = \"k\";\n"
                 "  client_url = \"ftp://x\"; } );\n",
                 2, "notifiers[0].client_url", "http:// or https://");
    EXPECT_ERROR("notifiers = ( { name = \"t\"; type = \"teams\"; } );\n", 1, "notifiers[0]",
                 "missing required setting 'url'");
    EXPECT_ERROR("notifiers = ( { name = \"t\"; type = \"teams\"; url = \"https://x\";\n"
                 "  routing_key = \"k\"; } );\n",
                 2, "notifiers[0].routing_key", "is not a setting of a teams notifier");
    EXPECT_ERROR("notifiers = ( { name = \"g\"; type = \"telegram\"; chat_id = \"1\"; } );\n", 1,
                 "notifiers[0]", "missing required setting 'bot_token' (or 'bot_token_file')");
    EXPECT_ERROR("notifiers = ( { name = \"g\"; type = \"telegram\"; bot_token = \"1:a\"; } );\n",
                 1, "notifiers[0]", "missing required setting 'chat_id'");
    EXPECT_ERROR("notifiers = ( { name = \"g\"; type = \"telegram\"; chat_id = \"1\";\n"
                 "  bot_token = \"1:a/../x?y\"; } );\n",
                 2, "notifiers[0]", "bot_token: not a Telegram bot token");
    EXPECT_ERROR("notifiers = ( { name = \"g\"; type = \"telegram\"; bot_token = \"1:a\";\n"
                 "  chat_id = \"ops\"; } );\n",
                 2, "notifiers[0].chat_id", "'ops' is not a chat id");
    EXPECT_ERROR("notifiers = ( { name = \"g\"; type = \"telegram\"; bot_token = \"1:a\";\n"
                 "  chat_id = \"1\"; parse_mode = \"MarkdownV2\"; } );\n",
                 2, "notifiers[0].parse_mode", "must be HTML or text");
    EXPECT_ERROR("notifiers = ( { name = \"n\"; type = \"ntfy\"; url = \"https://x/t\";\n"
                 "  token = \"a b\"; } );\n",
                 2, "notifiers[0].token", "one line without spaces");
    EXPECT_ERROR("notifiers = ( { name = \"n\"; type = \"ntfy\"; url = \"https://x/t\";\n"
                 "  bot_token = \"1:a\"; } );\n",
                 2, "notifiers[0].bot_token", "is not a setting of a ntfy notifier");
    /* A secret never appears in a message, even when it is wrong. */
    load_bad_at("notifiers = ( { name = \"g\"; type = \"telegram\"; chat_id = \"1\";\n"
                "  bot_token = \"9:SECRETsecret/x\"; } );\n",
                &e, __LINE__);
    for (size_t i = 0; i < e.count; i++)
        CU_ASSERT_PTR_NULL(strstr(e.msgs[i], "SECRET"));
    CU_ASSERT(e.count > 0);
    cm_config_errors_clear(&e);
}

/* Regression: the "did you mean" of an unknown key in a notifier wrote past a stack array
 * sized for a target's keys (a notifier has more). Every valid key is present as well. */
static void test_unknown_notifier_key(void)
{
    struct cm_config_errors e = {0};

    load_bad_at("notifiers = ( { name = \"w\"; type = \"webhook\"; url = \"https://x\";\n"
                "  urls = [ \"http://a\" ]; min_severity = \"warning\"; findings = [];\n"
                "  match = { env = \"prod\"; }; for = \"0s\"; group_wait = \"30s\";\n"
                "  repeat_interval = \"1d\"; timeout = \"10s\"; max_age = \"1d\";\n"
                "  resend_interval = \"1m\"; ca_file = \"ca.pem\"; headers = [];\n"
                "  secret = \"k\"; from = \"a@b\"; to = [ \"c@d\" ]; starttls = true;\n"
                "  username = \"u\"; password = \"p\"; generator_url = \"http://g\";\n"
                "  generatr_url = \"http://g\"; zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
                "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz = 1; } );\n",
                &e, __LINE__);
    EXPECT_MSG(&e, in_dir("c.conf"), 8, "notifiers[0].generatr_url", "unknown setting",
               "did you mean 'generator_url'?");
    cm_config_errors_clear(&e);
}

/* The shared edit distance: bounded for any length, case rules, the loader's hint rules. */
static void test_edit_distance(void)
{
    char longw[200];
    struct cm_suggest sg;

    memset(longw, 'a', sizeof(longw) - 1);
    longw[sizeof(longw) - 1] = '\0';
    EXPECT_INT(cm_edit_distance("kitten", "sitting", false), 3);
    EXPECT_INT(cm_edit_distance("Port", "port", true), 0);
    EXPECT_INT(cm_edit_distance("Port", "port", false), 1);
    EXPECT_INT(cm_edit_distance("", "abc", false), 3);
    CU_ASSERT_EQUAL(cm_edit_distance(longw, "a", false), SIZE_MAX);
    CU_ASSERT_EQUAL(cm_edit_distance("a", longw, false), SIZE_MAX);
    longw[CM_EDIT_WORD_MAX] = '\0';
    EXPECT_INT(cm_edit_distance(longw, longw, false), 0);
    CU_ASSERT_EQUAL(cm_edit_distance(NULL, "a", false), SIZE_MAX);

    cm_suggest_init(&sg, "prot", 2, true);
    cm_suggest_add(&sg, "host"); /* 3 edits: too far */
    cm_suggest_add(&sg, "port");
    cm_suggest_add(&sg, NULL);
    EXPECT_STR(sg.best, "port");
    cm_suggest_init(&sg, "hst", 2, true);
    cm_suggest_add(&sg, "host");
    cm_suggest_add(&sg, "hist");
    EXPECT_STR(sg.best, "host"); /* equally near: the first wins */
    cm_suggest_init(&sg, "ab", 2, true);
    sg.shorter = true;
    cm_suggest_add(&sg, "cd");
    CU_ASSERT_PTR_NULL(sg.best);
    cm_suggest_init(&sg, "warn", 2, true);
    sg.prefix = true;
    cm_suggest_add(&sg, "error");
    cm_suggest_add(&sg, "warning");
    EXPECT_STR(sg.best, "warning");
}

static void test_many_errors(void)
{
    struct cm_config_errors e = {0};
    const char *f = in_dir("c.conf");

    load_bad_at("global = {\n"
                "  concurrency = 0;\n"   /* 2 */
                "  interval = \"5x\";\n" /* 3 */
                "};\n"
                "targts = ();\n" /* 5 */
                "targets = (\n"
                "  { host = \"a.example\"; port = 70000; },\n" /* 7 */
                "  { host = \"b.example\"; prot = 1; },\n"     /* 8 */
                "  { port = 1; }\n"                            /* 9 */
                ");\n"
                "notifiers = ( { name = \"n\"; type = \"sms\"; } );\n", /* 11 */
                &e, __LINE__);
    EXPECT_INT(e.count, 7);
    /* In file order, whatever order the checks ran in. */
    EXPECT_MSG(&e, f, 2, "global.concurrency", "0");
    EXPECT_MSG(&e, f, 3, "global.interval", "unknown unit");
    EXPECT_MSG(&e, f, 5, "targts", "did you mean 'targets'?");
    EXPECT_MSG(&e, f, 7, "targets[0].port", "70000");
    EXPECT_MSG(&e, f, 8, "targets[1].prot", "'port'");
    EXPECT_MSG(&e, f, 9, "targets[2]", "host");
    EXPECT_MSG(&e, f, 11, "notifiers[0].type", "sms");
    for (size_t i = 1; i < e.count; i++) {
        int a = atoi(e.msgs[i - 1] + strlen(f) + 1), b = atoi(e.msgs[i] + strlen(f) + 1);
        CU_ASSERT(a <= b);
    }
    cm_config_errors_clear(&e);

    /* Messages are appended to what errs already holds. */
    load_bad_at("targts = ();\n", &e, __LINE__);
    load_bad_at("targts = ();\n", &e, __LINE__);
    EXPECT_INT(e.count, 2);
    cm_config_errors_clear(&e);
    EXPECT_INT(e.count, 0);
    CU_ASSERT_PTR_NULL(e.msgs);
}

static uint64_t hash_of(const char *text, size_t i)
{
    struct cm_config *cfg = load_ok(text);
    uint64_t h = 0;

    if (cfg && i < cfg->target_count)
        h = cfg->targets[i].spec_hash;
    cm_config_free(cfg);
    return h;
}

static void test_spec_hash(void)
{
    uint64_t base = hash_of("targets = ( { host = \"a.example\"; port = 8443;\n"
                            "  labels = { team = \"x\"; }; } );\n",
                            0);
    struct cm_config *cfg;

    CU_ASSERT(base != 0);
    EXPECT_INT(hash_of("targets = ( { host = \"a.example\"; port = 8443;\n"
                       "  labels = { team = \"y\"; env = \"prod\"; }; } );\n",
                       0),
               base);
    EXPECT_INT(hash_of("targets = ( { host = \"a.example\"; port = 8443; } );\n", 0), base);
    CU_ASSERT(hash_of("targets = ( { host = \"a.example\"; port = 8444; } );\n", 0) != base);
    CU_ASSERT(
        hash_of("targets = ( { host = \"a.example\"; port = 8443; sni = \"b.example\"; } );\n",
                0) != base);
    CU_ASSERT(hash_of("targets = ( { host = \"a.example\"; port = 8443; interval = \"5m\"; } );\n",
                      0) != base);
    CU_ASSERT(hash_of("targets = ( { host = \"a.example\"; port = 8443; warn_days = 29; } );\n",
                      0) != base);
    CU_ASSERT(hash_of("targets = ( { host = \"a.example\"; port = 8443;\n"
                      "  ignore = [ \"cert.wildcard\" ]; } );\n",
                      0) != base);
    CU_ASSERT(hash_of("global = { severity = [ \"chain.order=info\" ]; };\n"
                      "targets = ( { host = \"a.example\"; port = 8443; } );\n",
                      0) != base);
    CU_ASSERT(
        hash_of("targets = ( { host = \"a.example\"; port = 8443; starttls = \"smtp\"; } );\n",
                0) != base);

    /* Identical specs under different names hash alike; a file entry differs. */
    cfg = load_ok(
        "targets = ( { host = \"a.example\"; name = \"one\"; },\n"
        "            { host = \"a.example\"; name = \"two\"; labels = { x = \"y\"; }; } );\n"
        "files = ( { path = \"/a\"; }, { path = \"/b\"; } );\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_INT(cfg->targets[0].spec_hash, cfg->targets[1].spec_hash);
    CU_ASSERT(cfg->targets[2].spec_hash != cfg->targets[3].spec_hash);
    cm_config_free(cfg);
}

static void test_ten_thousand(void)
{
    enum { N = 10000 };
    const char *p = in_dir("big.conf");
    FILE *f = fopen(p, "w");
    struct cm_config_errors e = {0};
    struct cm_config *cfg = NULL;
    struct timespec a, b;
    char name[64];

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    write_file("big-ca.pem", "x\n");
    fputs("global = { interval = \"1h\"; };\ntargets = (\n", f);
    for (int i = 0; i < N; i++)
        fprintf(f,
                "  { host = \"h%d.example.com\"; port = %d; ca_file = \"big-ca.pem\";\n"
                "    labels = { team = \"t%d\"; }; }%s\n",
                i, 443 + i % 3, i % 10, i + 1 < N ? "," : "");
    fputs(");\nfiles = ( { path = \"/etc/ssl/certs/*.pem\"; } );\n", f);
    fclose(f);

    clock_gettime(CLOCK_MONOTONIC, &a);
    EXPECT_INT(cm_config_load(p, &cfg, &e), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    dump(&e);
    cm_config_errors_clear(&e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_INT(cfg->target_count, N + 1);
    /* Informational only: the time depends on the machine and on sanitizers. */
    fprintf(stderr, "\n  (10,000 targets loaded in %.0f ms) ",
            (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6);
    snprintf(name, sizeof(name), "h%d.example.com:%d", 4321, 443 + 4321 % 3);
    CU_ASSERT(cm_config_find(cfg, name) == &cfg->targets[4321]);
    EXPECT_INT(cfg->targets[N - 1].line, 2 + 2 * (N - 1) + 1);
    cm_config_free(cfg);
}

static void test_check_credentials(void)
{
    struct cm_config_errors e = {0};
    struct cm_config *cfg;
    const char *f = in_dir("c.conf");

    write_file("garbage.pem", "not a certificate\n");
    cfg = load_ok("targets = (\n"
                  "  { host = \"a.example\"; port = 1; ca_file = \"garbage.pem\"; },\n"
                  "  { host = \"b.example\";\n"
                  "    ca_file = \"garbage.pem\"; },\n"
                  "  { host = \"c.example\"; ca_file = \"garbage.pem\";\n"
                  "    client_cert = \"garbage.pem\"; client_key = \"garbage.pem\"; }\n"
                  ");\n"
                  "files = ( { path = \"garbage.pem\"; } );\n"
                  "metrics = { tls_cert = \"garbage.pem\"; tls_key = \"garbage.pem\";\n"
                  "            client_ca = \"garbage.pem\"; };\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_INT(cm_config_check_credentials(cfg, NULL, &e), CM_ECONFIG);
    /* One message per distinct profile (the first two share theirs), then the listener. */
    EXPECT_INT(e.count, 4);
    EXPECT_MSG(&e, f, 2, "targets[0].ca_file", in_dir("garbage.pem"));
    EXPECT_MSG(&e, f, 5, "targets[2].ca_file", in_dir("garbage.pem"));
    EXPECT_MSG(&e, f, 9, "metrics.tls_cert", "no PEM certificate or private key");
    EXPECT_MSG(&e, f, 10, "metrics.client_ca", "no CA certificates found");
    if (e.count != 4)
        dump(&e);
    cm_config_errors_clear(&e);
    cm_config_free(cfg);

    /* A file entry's ca_file (where revocation checks look up issuers) is checked the same
     * way; it shares a target's profile when it names the same file. */
    write_file("garbage2.pem", "not a certificate either\n");
    cfg = load_ok("targets = ( { host = \"a.example\"; ca_file = \"garbage.pem\"; } );\n"
                  "files = ( { path = \"/srv/a\"; ca_file = \"garbage.pem\"; },\n"
                  "  { path = \"/srv/b\";\n"
                  "    ca_file = \"garbage2.pem\"; } );\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_STR(cfg->targets[2].opt->ca_file, in_dir("garbage2.pem"));
    EXPECT_INT(cm_config_check_credentials(cfg, NULL, &e), CM_ECONFIG);
    EXPECT_INT(e.count, 2);
    EXPECT_MSG(&e, in_dir("c.conf"), 1, "targets[0].ca_file", "garbage.pem");
    EXPECT_MSG(&e, in_dir("c.conf"), 4, "files[1].ca_file", "garbage2.pem");
    if (e.count != 2)
        dump(&e);
    cm_config_errors_clear(&e);
    cm_config_free(cfg);
    EXPECT_ERROR("files = ( { path = \"/srv\"; ca_file = \"missing.pem\"; } );\n", 1,
                 "files[0].ca_file", "missing.pem");

    /* Files that parse: a real trust store. No targets of the system store here: it may be
     * missing on a build machine. */
    if (access("/etc/ssl/certs/ca-certificates.crt", R_OK) == 0) {
        cfg = load_ok("targets = ( { host = \"a.example\";\n"
                      "  ca_file = \"/etc/ssl/certs/ca-certificates.crt\"; } );\n");
        CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
        EXPECT_INT(cm_config_check_credentials(cfg, NULL, &e), 0);
        EXPECT_INT(e.count, 0);
        cm_config_errors_clear(&e);
        cm_config_free(cfg);
    }
}

/* Checks what config/certmon.conf holds, loaded from path (its directory holds the state). */
static void check_shipped(const char *path)
{
    struct cm_config_errors e = {0};
    struct cm_config *cfg = NULL;
    const struct cm_config_target *t;
    char state[PATH_MAX + 32];

    EXPECT_INT(cm_config_load(path, &cfg, &e), 0);
    EXPECT_INT(e.count, 0);
    dump(&e);
    cm_config_errors_clear(&e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_INT(cfg->interval_ms, 3600000);
    EXPECT_INT(cfg->timeout_ms, 10000);
    EXPECT_INT(cfg->posture_interval_ms, 86400000);
    EXPECT_INT(cfg->log_level, CM_LOG_INFO);
    EXPECT_INT(cfg->listen_count, 1);
    EXPECT_STR(cfg->listen[0], "127.0.0.1:9799");
    snprintf(state, sizeof(state), "%s/certmon.db", cfg->dir);
    EXPECT_STR(cfg->state_file, state);
    EXPECT_INT(cfg->target_count, 3);
    EXPECT_INT(cfg->notifier_count, 0);
    t = cm_config_find(cfg, "www.debian.org:443");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    EXPECT_INT(t->kind, CM_TARGET_ENDPOINT);
    EXPECT_INT(t->labels.count, 1);
    EXPECT_STR(t->labels.keys[0], "team");
    EXPECT_STR(t->labels.values[0], "web");
    t = cm_config_find(cfg, "example.com:443");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    EXPECT_INT(t->labels.count, 0);
    t = cm_config_find(cfg, "file:/etc/ssl/certs/ca-certificates.crt");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    EXPECT_INT(t->kind, CM_TARGET_FILE);
    EXPECT_INT(t->labels.count, 1);
    EXPECT_STR(t->labels.keys[0], "kind");
    EXPECT_STR(t->labels.values[0], "trust-store");
    cm_config_free(cfg);
}

static void test_shipped_config(void)
{
    char src[PATH_MAX], path[PATH_MAX + 64], real[PATH_MAX], cmd[3 * PATH_MAX];
    struct cm_config_errors e = {0};
    struct cm_config *cfg = NULL;
    char *slash;

    /* Tests are compiled with absolute source paths: tests/unit/test_config.c. */
    snprintf(src, sizeof(src), "%s", __FILE__);
    CU_ASSERT_EQUAL_FATAL(src[0], '/');
    slash = strrchr(src, '/');
    *slash = '\0';
    snprintf(path, sizeof(path), "%s/../../config/certmon.conf", src);
    CU_ASSERT_PTR_NOT_NULL_FATAL(realpath(path, real));

    /* The example keeps its state beside itself, which a fresh clone's owner can write. In a
     * checkout this user cannot write (read-only CI, another owner), that must be the only
     * problem, and a copy in the test directory must load cleanly. */
    slash = strrchr(real, '/');
    *slash = '\0';
    if (access(real, W_OK) == 0) {
        *slash = '/';
        check_shipped(real);
        return;
    }
    *slash = '/';
    fprintf(stderr, "\n  (config/ is not writable here: loading a copy too) ");
    EXPECT_INT(cm_config_load(real, &cfg, &e), CM_ECONFIG);
    EXPECT_INT(e.count, 1);
    if (e.count == 1)
        CU_ASSERT_PTR_NOT_NULL(strstr(e.msgs[0], "global.state_file: directory"));
    cm_config_errors_clear(&e);
    mkdir(in_dir("shipped"), 0700);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", real, in_dir("shipped/certmon.conf"));
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
    check_shipped(in_dir("shipped/certmon.conf"));
}

/* ---- Suite ---- */

static int suite_init(void)
{
    snprintf(dir, sizeof(dir), "%s/cm-config-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    /* The checks compare paths as the loader writes them: no symbolic links in the way. */
    char real[PATH_MAX];
    if (!realpath(dir, real))
        return -1;
    snprintf(dir, sizeof(dir), "%s", real);
    return 0;
}

static int suite_cleanup(void)
{
    char cmd[PATH_MAX + 32];

    chmod(in_dir("locked.pem"), 0600);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- Keystore passwords (files entries) ---- */

/* Loads text with stderr (the log) captured into *log (malloc'd); returns the config. */
static struct cm_config *load_logged(const char *text, char **log, unsigned line)
{
    const char *path = in_dir("stderr.log");
    int saved = cm_th_stderr_begin(path);
    struct cm_config *cfg;

    CU_ASSERT_FATAL(saved >= 0);
    cfg = load_ok_at(text, line);
    *log = cm_th_stderr_end(saved, path);
    return cfg;
}

static void test_file_passwords(void)
{
    struct cm_config *cfg;
    const char *pf;
    char conf[PATH_MAX + 200], *log = NULL;

    cfg = load_ok("files = ( { path = \"/srv/a.p12\"; password = \"s3cret pass\"; },\n"
                  "          { path = \"/srv/b.p12\"; } );\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_STR(cfg->targets[0].opt->password, "s3cret pass");
    CU_ASSERT_PTR_NULL(cfg->targets[1].opt->password);
    CU_ASSERT_NOT_EQUAL(cfg->targets[0].spec_hash, cfg->targets[1].spec_hash);
    cm_config_free(cfg);

    /* One trailing newline is not part of the password (echo writes one); CRLF neither. */
    pf = write_file("p12.pass", "fr0m file\n");
    chmod(pf, 0600);
    snprintf(conf, sizeof(conf),
             "files = ( { path = \"/srv/a.p12\"; password_file = \"%s\"; } );\n", pf);
    cfg = load_logged(conf, &log, __LINE__);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_STR(cfg->targets[0].opt->password, "fr0m file");
    EXPECT_STR(log, ""); /* mode 0600: no warning */
    cm_config_free(cfg);
    free(log);
    write_file("crlf.pass", "dos pass\r\n");
    chmod(in_dir("crlf.pass"), 0600);
    cfg = load_ok("files = ( { path = \"/srv/a.p12\"; password_file = \"crlf.pass\"; } );\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_STR(cfg->targets[0].opt->password, "dos pass");
    cm_config_free(cfg);
    /* Only one newline goes: a password may end in a newline of its own. */
    write_file("two.pass", "pass\n\n");
    cfg = load_ok("files = ( { path = \"/srv/a.p12\"; password_file = \"two.pass\"; } );\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_STR(cfg->targets[0].opt->password, "pass\n");
    cm_config_free(cfg);

    /* Readable by every user: a warning that names the file, never the password. */
    chmod(pf, 0644);
    cfg = load_logged(conf, &log, __LINE__);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    cm_config_free(cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(log);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "level=warning sub=config"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "setting=files[0].password_file"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "is readable by every user (chmod o-r)"));
    CU_ASSERT_PTR_NULL(strstr(log, "fr0m file"));
    free(log);

    EXPECT_ERROR("files = ( { path = \"/srv/a.p12\";\n password = \"x\";\n"
                 " password_file = \"p12.pass\"; } );\n",
                 3, "files[0].password_file", "exclude each other");
    EXPECT_ERROR("files = ( { path = \"/srv/a.p12\"; password_file = \"missing.pass\"; } );\n", 1,
                 "files[0].password_file", "cannot read", "missing.pass",
                 "No such file or directory");
    write_file("empty.pass", "\n");
    EXPECT_ERROR("files = ( { path = \"/srv/a.p12\"; password_file = \"empty.pass\"; } );\n", 1,
                 "files[0].password_file", "is empty");
    EXPECT_ERROR("files = ( { path = \"/srv/a.p12\"; password_file = \"/dev/null\"; } );\n", 1,
                 "files[0].password_file", "not a regular file");
    EXPECT_ERROR("files = ( { path = \"/srv/a.p12\"; password = \"\"; } );\n", 1,
                 "files[0].password", "must not be empty");
    /* Not a key of endpoints. */
    EXPECT_ERROR("targets = ( { host = \"a.example\"; password = \"x\"; } );\n", 1,
                 "targets[0].password", "unknown setting");
}

static CU_TestInfo tests[] = {
    {"duration_parse", test_duration_parse},
    {"file_passwords", test_file_passwords},
    {"duration_format", test_duration_format},
    {"defaults", test_defaults},
    {"all_values", test_all_values},
    {"policy_override", test_policy_override},
    {"lifetime keys", test_lifetime_keys},
    {"revocation keys", test_revocation_keys},
    {"relative_paths", test_relative_paths},
    {"include", test_include},
    {"hostile_files", test_hostile_files},
    {"syntax_error", test_syntax_error},
    {"unknown_keys", test_unknown_keys},
    {"wrong_type", test_wrong_type},
    {"out_of_range", test_out_of_range},
    {"bad_durations", test_bad_durations},
    {"targets", test_targets},
    {"ari_url and acme_directory", test_ari},
    {"pin_sha256, pin = tofu, notify_renewals, history_days, change_window", test_pins},
    {"labels", test_labels},
    {"duplicates", test_duplicates},
    {"files_readable", test_files_readable},
    {"interception_roots", test_interception_roots},
    {"interception_roots_errors", test_interception_roots_errors},
    {"policy_errors", test_policy_errors},
    {"metrics_and_log", test_metrics_and_log},
    {"notifiers", test_notifiers},
    {"service_notifiers", test_service_notifiers},
    {"unknown_notifier_key", test_unknown_notifier_key},
    {"edit_distance", test_edit_distance},
    {"many_errors", test_many_errors},
    {"spec_hash", test_spec_hash},
    {"ten_thousand", test_ten_thousand},
    {"check_credentials", test_check_credentials},
    {"shipped_config", test_shipped_config},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("config", tests, suite_init, suite_cleanup);
}
