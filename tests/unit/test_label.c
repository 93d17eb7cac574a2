/* unit.label: the one label rule (src/base/label.c) and the base text helpers it stands on;
 * and the promise the rule exists for: every label that the configuration loader (what
 * `certmon config-check` runs) accepts reaches /metrics and the Alertmanager payload
 * unchanged, while every label it refuses is one the rule refuses. Each candidate label is
 * written into a configuration file of its own at test time, loaded, and, when accepted, put
 * through the daemon's path: the state records a result with the target's labels and builds
 * the metrics view the web endpoints render; the notifier's notice carries them into the
 * Alertmanager body. */
#include "cmtest.h"

#include "certmon/analysis/analyze.h"
#include "certmon/analysis/metrics.h"
#include "certmon/base/error.h"
#include "certmon/base/label.h"
#include "certmon/base/text.h"
#include "certmon/config/config.h"
#include "certmon/daemon/state.h"
#include "certmon/daemon/web.h"
#include "certmon/notify/payload.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOW 1796000000

static char dir[PATH_MAX];

static int suite_init(void)
{
    snprintf(dir, sizeof(dir), "/tmp/certmon-label.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int suite_clean(void)
{
    char path[PATH_MAX + 16];

    snprintf(path, sizeof(path), "%s/c.conf", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}

/* ---- The rule ---- */

static void test_names(void)
{
    static const struct {
        const char *name;
        enum cm_label_problem want;
    } cases[] = {
        {"team", CM_LABEL_OK},           {"_x", CM_LABEL_OK},
        {"Env_2", CM_LABEL_OK},          {"a", CM_LABEL_OK},
        {"", CM_LABEL_BAD_NAME},         {"2x", CM_LABEL_BAD_NAME},
        {"bad-name", CM_LABEL_BAD_NAME}, {"a.b", CM_LABEL_BAD_NAME},
        {"\xc3\xa9", CM_LABEL_BAD_NAME}, {"__x", CM_LABEL_DUNDER},
        {"__", CM_LABEL_DUNDER},         {"target", CM_LABEL_RESERVED},
        {"job", CM_LABEL_RESERVED},      {"alertname", CM_LABEL_RESERVED},
        {"finding", CM_LABEL_RESERVED},  {"Target", CM_LABEL_OK},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_int(cm_label_check_name(cases[i].name), cases[i].want, cases[i].name, __LINE__);
    EXPECT_INT(cm_label_check_name(NULL), CM_LABEL_BAD_NAME);
}

static void test_values(void)
{
    EXPECT_INT(cm_label_check_value("prod", 4), CM_LABEL_OK);
    EXPECT_INT(cm_label_check_value("Z\xc3\xbcrich \xe2\x98\x83", 11), CM_LABEL_OK);
    EXPECT_INT(cm_label_check_value("", 0), CM_LABEL_EMPTY_VALUE);
    EXPECT_INT(cm_label_check_value(NULL, 0), CM_LABEL_EMPTY_VALUE);
    EXPECT_INT(cm_label_check_value("\x80x", 2), CM_LABEL_BAD_VALUE);
    EXPECT_INT(cm_label_check_value("\xed\xa0\x80", 3), CM_LABEL_BAD_VALUE); /* a surrogate */
    EXPECT_INT(cm_label_check_value("\xc0\xaf", 2), CM_LABEL_BAD_VALUE);     /* overlong '/' */
    EXPECT_INT(cm_label_check_value("a\0b", 3), CM_LABEL_BAD_VALUE);
    CU_ASSERT_TRUE(cm_label_ok("team", "mail"));
    CU_ASSERT_FALSE(cm_label_ok("team", ""));
    CU_ASSERT_FALSE(cm_label_ok("severity", "x"));
}

/* The reserved list as the configuration's message and docs/configuration.md show it. */
static void test_reserved_text(void)
{
    EXPECT_STR(cm_label_reserved_text(),
               "target, position, phase, id, severity, status, version, cipher, subject, issuer, "
               "serial, sha256, key, signature, result, gnutls, libuv, libcurl, notifier, "
               "instance, job, alertname, finding");
}

static void test_labels_copy(void)
{
    char *keys[] = {"env", "team"}, *values[] = {"prod", "mail"};
    struct cm_labels src = {keys, values, 2}, dst;

    EXPECT_INT(cm_labels_copy(&dst, &src), 0);
    EXPECT_INT(dst.count, 2);
    EXPECT_STR(dst.keys[1], "team");
    EXPECT_STR(dst.values[0], "prod");
    CU_ASSERT(dst.keys[0] != keys[0]);
    cm_labels_clear(&dst);
    EXPECT_INT(dst.count, 0);
    CU_ASSERT_PTR_NULL(dst.keys);
    EXPECT_INT(cm_labels_copy(&dst, NULL), 0);
    EXPECT_INT(dst.count, 0);
}

/* The base helpers the rule and its neighbours share. */
static void test_text_helpers(void)
{
    /* FNV-1a 64 test vectors (Fowler, Noll, Vo). */
    CU_ASSERT_EQUAL(cm_fnv1a_str(""), 0xcbf29ce484222325ULL);
    CU_ASSERT_EQUAL(cm_fnv1a_str("a"), 0xaf63dc4c8601ec8cULL);
    CU_ASSERT_EQUAL(cm_fnv1a_str("foobar"), 0x85944171f73967e8ULL);
    CU_ASSERT_EQUAL(cm_fnv1a(cm_fnv1a(CM_FNV1A_INIT, "foo", 3), "bar", 3), cm_fnv1a_str("foobar"));
    EXPECT_INT(cm_utf8_seq((const unsigned char *)"\xf4\x8f\xbf\xbf", 4), 4); /* U+10FFFF */
    EXPECT_INT(cm_utf8_seq((const unsigned char *)"\xf4\x90\x80\x80", 4), 0); /* past it */
    EXPECT_INT(cm_utf8_seq((const unsigned char *)"\xe2\x98\x83", 2), 0);     /* cut short */
    EXPECT_INT(cm_utf8_seq((const unsigned char *)"\xe0\x9f\xbf", 3), 0);     /* overlong */
    CU_ASSERT_TRUE(cm_utf8_valid("", 0));
    CU_ASSERT_FALSE(cm_utf8_valid("\xff", 1));
    char ts[32];
    cm_time_rfc3339(NOW, ts, sizeof(ts));
    EXPECT_STR(ts, "2026-11-30T00:53:20Z");
}

/* ---- Configuration -> /metrics and Alertmanager ---- */

/* value as a libconfig string literal body: \ " and control bytes escaped (\n, \xHH). */
static void conf_escape(const char *v, char *out, size_t len)
{
    size_t o = 0;

    for (const unsigned char *p = (const unsigned char *)v; *p && o + 5 < len; p++) {
        if (*p == '\\' || *p == '"') {
            out[o++] = '\\';
            out[o++] = (char)*p;
        } else if (*p == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (*p < 0x20 || *p >= 0x80) {
            o += (size_t)snprintf(out + o, len - o, "\\x%02x", *p);
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o] = '\0';
}

/* Loads a configuration with one target carrying the label name = value. Returns it, or NULL
 * when the loader refused it (then *msg holds its first message). */
static struct cm_config *load_label(const char *name, const char *value, char *msg, size_t len)
{
    char path[PATH_MAX + 16], esc[512];
    struct cm_config_errors e = {0};
    struct cm_config *cfg = NULL;
    FILE *f;

    snprintf(path, sizeof(path), "%s/c.conf", dir);
    conf_escape(value, esc, sizeof(esc));
    f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "targets = ( { host = \"127.0.0.1\"; port = 9; labels = { %s = \"%s\"; }; } );\n",
            name, esc);
    fclose(f);
    msg[0] = '\0';
    if (cm_config_load(path, &cfg, &e) < 0) {
        snprintf(msg, len, "%s", e.count ? e.msgs[0] : "(no message)");
        cfg = NULL;
    }
    cm_config_errors_clear(&e);
    return cfg;
}

/* The value of label name in the first series line of text that carries it, unescaped as
 * the exposition format says (\\ \" \n), into out; false when no line carries it. Every other
 * line that carries it must have the same value (*consistent). */
static bool metrics_label(const char *text, const char *name, char *out, size_t len,
                          bool *consistent)
{
    char key[96], first[512] = "";
    bool found = false;

    snprintf(key, sizeof(key), "%s=\"", name);
    *consistent = true;
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        const char *brace = strchr(l, '{'), *eol = strchr(l, '\n'), *p;
        char val[512];
        size_t o = 0;
        if (*l == '#' || !brace || (eol && brace > eol))
            continue;
        /* Label names start after '{' or ','. */
        for (p = brace + 1; (p = strstr(p, key)) && (!eol || p < eol); p++)
            if (p[-1] == '{' || p[-1] == ',')
                break;
        if (!p || (eol && p >= eol))
            continue;
        for (p += strlen(key); *p && *p != '"' && o + 1 < sizeof(val); p++) {
            if (*p == '\\' && p[1]) {
                p++;
                val[o++] = *p == 'n' ? '\n' : *p;
            } else {
                val[o++] = *p;
            }
        }
        val[o] = '\0';
        if (!found) {
            snprintf(first, sizeof(first), "%s", val);
            found = true;
        } else if (strcmp(first, val) != 0) {
            *consistent = false;
        }
    }
    snprintf(out, len, "%s", first);
    return found;
}

/* What /metrics shows of cfg's only target: a result recorded in a state whose view hooks are
 * the web endpoints', rendered. Caller frees. */
static char *metrics_of(const struct cm_config *cfg)
{
    const struct cm_config_target *ct = &cfg->targets[0];
    struct cm_probe_result *res = calloc(1, sizeof(*res));
    struct cm_findings f = {0};
    struct cm_metrics_buf b = {0};
    struct cm_state *s = NULL;
    struct cm_state_entry *e;
    const struct cm_metrics_view *v;
    enum cm_status old;
    bool changed;

    CU_ASSERT_PTR_NOT_NULL_FATAL(res);
    res->target = strdup(ct->name);
    res->host = strdup("127.0.0.1");
    res->port = 9;
    res->error_kind = CM_ERRK_CONNECT;
    res->error_message = strdup("connection refused");
    res->dns_ms = res->connect_ms = res->starttls_ms = res->handshake_ms = res->total_ms = -1;
    res->finished_at = NOW;
    EXPECT_INT(cm_state_new(&s), 0);
    cm_state_set_view_hooks(s, &cm_web_view_hooks);
    e = cm_state_put(s, ct->name, ct->name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    EXPECT_INT(cm_analyze(res, ct->policy, NOW, &f), 0);
    EXPECT_INT(cm_state_record(e, res, &f, &ct->labels, NOW, &changed, &old), 0);
    v = cm_web_view_metrics(e->view);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    EXPECT_INT(cm_metrics_render(&v, 1, NULL, NULL, &b), 0);
    cm_findings_clear(&f);
    cm_probe_result_free(res);
    cm_state_free(s);
    return b.data;
}

/* What Alertmanager receives for a finding of cfg's only target. */
static json_t *alertmanager_labels_of(const struct cm_config *cfg)
{
    const struct cm_config_target *ct = &cfg->targets[0];
    struct cm_alert_event ev = {
        .kind = CM_ALERT_FIRING,
        .target = ct->name,
        .id = "cert.expired",
        .position = 0,
        .severity = CM_SEV_CRITICAL,
        .previous = CM_SEV_CRITICAL,
        .message = "certificate expired",
        .started_at = NOW - 60,
        .fired_at = NOW - 60,
        .at = NOW - 60,
    };
    struct cm_notice *n = cm_notice_new(&ev, &ct->labels);
    const struct cm_notice *items[1] = {n};
    char *body;
    json_t *j, *labels;

    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    body = cm_payload_alertmanager(items, 1, NOW, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    j = json_loads(body, 0, NULL);
    free(body);
    cm_notice_free(n);
    CU_ASSERT_FATAL(json_is_array(j) && json_array_size(j) == 1);
    labels = json_incref(json_object_get(json_array_get(j, 0), "labels"));
    json_decref(j);
    CU_ASSERT_FATAL(json_is_object(labels));
    return labels;
}

static void test_config_labels_reach_metrics_and_alertmanager(void)
{
    /* Names libconfig can spell (a setting name starts with a letter or '*'): valid ones, every
     * reserved one, and invalid ones. Values: plain, with every character the exposition
     * format escapes, non-ASCII, and ones the rule refuses (empty, not UTF-8). */
    static const char *const names[] = {"team",   "env",       "Team2",   "a_b_c",     "x",
                                        "target", "position",  "phase",   "id",        "severity",
                                        "status", "version",   "cipher",  "subject",   "issuer",
                                        "serial", "sha256",    "key",     "signature", "result",
                                        "gnutls", "libuv",     "libcurl", "notifier",  "instance",
                                        "job",    "alertname", "finding", "bad-name",  "*x"};
    static const char *const values[] = {
        "mail",        "prod west",  "quo\"te",
        "back\\slash", "two\nlines", "Z\xc3\xbcrich \xe2\x98\x83",
        "{a=\"b\"}",   "",           "\x80\x81",
        "caf\xe9",
    };
    unsigned accepted = 0, refused = 0;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        for (size_t k = 0; k < sizeof(values) / sizeof(values[0]); k++) {
            const char *name = names[i], *value = values[k];
            char msg[1024], got[512], what[1600];
            struct cm_config *cfg = load_label(name, value, msg, sizeof(msg));
            bool consistent;
            char *text;
            json_t *am;

            snprintf(what, sizeof(what), "label %s=\"%s\" (%s)", name, value,
                     cfg ? "accepted" : msg);
            /* The loader and the rule agree. */
            expect_int(cfg != NULL, cm_label_ok(name, value), what, __LINE__);
            if (!cfg) {
                refused++;
                /* Refused with FILE:LINE and the setting named. */
                CU_ASSERT(strstr(msg, "c.conf:1:") != NULL);
                CU_ASSERT(strstr(msg, "targets[0].labels.") != NULL);
                continue;
            }
            accepted++;
            EXPECT_INT(cfg->targets[0].labels.count, 1);
            EXPECT_STR(cfg->targets[0].labels.values[0], value);

            text = metrics_of(cfg);
            CU_ASSERT_PTR_NOT_NULL_FATAL(text);
            if (!metrics_label(text, name, got, sizeof(got), &consistent))
                expect_str(NULL, value, what, __LINE__); /* the label vanished from /metrics */
            else
                expect_str(got, value, what, __LINE__);
            expect_int(consistent, 1, what, __LINE__);
            free(text);

            am = alertmanager_labels_of(cfg);
            expect_str(json_string_value(json_object_get(am, name)), value, what, __LINE__);
            json_decref(am);
            cm_config_free(cfg);
        }
    }
    /* 5 valid names x 7 good values; the rest refused. */
    EXPECT_INT(accepted, 35);
    EXPECT_INT(refused, sizeof(names) / sizeof(names[0]) * sizeof(values) / sizeof(values[0]) - 35);
}

/* The new refusal names the problem. */
static void test_config_value_not_utf8(void)
{
    char msg[1024];

    CU_ASSERT_PTR_NULL(load_label("team", "caf\xe9", msg, sizeof(msg)));
    CU_ASSERT(strstr(msg, "targets[0].labels.team: must be UTF-8 text") != NULL);
    if (!strstr(msg, "must be UTF-8 text"))
        fprintf(stderr, "    | %s\n", msg);
}

static CU_TestInfo tests[] = {
    {"names", test_names},
    {"values", test_values},
    {"reserved list text", test_reserved_text},
    {"labels copy and clear", test_labels_copy},
    {"base text helpers (FNV-1a, UTF-8, RFC 3339)", test_text_helpers},
    {"config labels reach /metrics and Alertmanager unchanged",
     test_config_labels_reach_metrics_and_alertmanager},
    {"a label value that is not UTF-8 is refused", test_config_value_not_utf8},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("label", tests, suite_init, suite_clean);
}
