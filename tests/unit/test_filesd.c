/* unit.filesd: the file_sd parser (src/config/filesd.c), pure: bytes -> groups, or an error
 * naming the problem and, where the format gives one, its line. Both formats are fed the
 * documents Prometheus's own file_sd documentation shows, and each kind of mistake. */
#include "cmtest.h"

#include "certmon/base/error.h"
#include "certmon/config/config.h"
#include "certmon/config/filesd.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[PATH_MAX];

static int suite_init(void)
{
    snprintf(dir, sizeof(dir), "/tmp/certmon-filesd.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int suite_clean(void)
{
    unlink(cm_th_path(dir, "c.conf"));
    return rmdir(dir);
}

static int parse(const char *text, enum cm_sd_format fmt, struct cm_sd_doc *doc, char *err,
                 size_t errlen, int *line)
{
    err[0] = '\0';
    return cm_sd_parse(text, strlen(text), fmt, doc, err, errlen, line);
}

/* The document shown in Prometheus's file_sd guide, JSON. */
static void test_json_ok(void)
{
    const char *text = "[\n"
                       "  {\"targets\": [\"a.example:443\", \"[::1]:8443\"],\n"
                       "   \"labels\": {\"env\": \"prod\", \"__certmon_sni\": \"www.example\"}},\n"
                       "  {\"targets\": [\"b.example\"]},\n"
                       "  {\"labels\": {\"x\": \"y\"}}\n"
                       "]\n";
    struct cm_sd_doc doc;
    char err[256];
    int line = -1;

    EXPECT_INT(parse(text, CM_SD_JSON, &doc, err, sizeof(err), &line), 0);
    EXPECT_STR(err, "");
    EXPECT_INT(doc.count, 3);
    EXPECT_INT(doc.targets, 3);
    if (doc.count == 3) {
        EXPECT_INT(doc.groups[0].target_count, 2);
        EXPECT_STR(doc.groups[0].targets[0], "a.example:443");
        EXPECT_STR(doc.groups[0].targets[1], "[::1]:8443");
        EXPECT_INT(doc.groups[0].label_count, 2);
        EXPECT_STR(doc.groups[0].labels[0].name, "env");
        EXPECT_STR(doc.groups[0].labels[0].value, "prod");
        EXPECT_STR(doc.groups[0].labels[1].name, "__certmon_sni");
        EXPECT_STR(doc.groups[0].labels[1].value, "www.example");
        EXPECT_INT(doc.groups[1].label_count, 0);
        EXPECT_INT(doc.groups[2].target_count, 0);
    }
    cm_sd_doc_clear(&doc);
    EXPECT_INT(doc.count, 0);
}

static void test_yaml_ok(void)
{
    const char *text = "# comment\n"
                       "- targets:\n"
                       "    - a.example:443\n"
                       "    - \"b.example:8443\"\n"
                       "  labels:\n"
                       "    env: prod\n"
                       "    port: 443\n"
                       "- targets: [c.example]\n"
                       "  labels: {team: web}\n";
    struct cm_sd_doc doc;
    char err[256];
    int line = -1;

    EXPECT_INT(parse(text, CM_SD_YAML, &doc, err, sizeof(err), &line), 0);
    EXPECT_STR(err, "");
    EXPECT_INT(doc.count, 2);
    EXPECT_INT(doc.targets, 3);
    if (doc.count == 2) {
        EXPECT_INT(doc.groups[0].line, 2);
        EXPECT_STR(doc.groups[0].targets[1], "b.example:8443");
        EXPECT_INT(doc.groups[0].target_lines[0], 3);
        EXPECT_INT(doc.groups[0].target_lines[1], 4);
        EXPECT_INT(doc.groups[0].label_count, 2);
        /* A plain scalar is its text: 443 is the label value "443". */
        EXPECT_STR(doc.groups[0].labels[1].value, "443");
        EXPECT_INT(doc.groups[1].line, 8);
        EXPECT_STR(doc.groups[1].targets[0], "c.example");
        EXPECT_STR(doc.groups[1].labels[0].name, "team");
    }
    cm_sd_doc_clear(&doc);
}

/* Empty files are empty lists in YAML ("" or null); JSON needs []. */
static void test_empty(void)
{
    struct cm_sd_doc doc;
    char err[256];
    int line;

    EXPECT_INT(parse("", CM_SD_YAML, &doc, err, sizeof(err), &line), 0);
    EXPECT_INT(doc.count, 0);
    EXPECT_INT(parse("# nothing yet\n", CM_SD_YAML, &doc, err, sizeof(err), &line), 0);
    EXPECT_INT(parse("~\n", CM_SD_YAML, &doc, err, sizeof(err), &line), 0);
    EXPECT_INT(parse("[]", CM_SD_JSON, &doc, err, sizeof(err), &line), 0);
    EXPECT_INT(doc.count, 0);
    EXPECT_INT(parse("", CM_SD_JSON, &doc, err, sizeof(err), &line), CM_EBADARG);
    CU_ASSERT(strstr(err, "not valid JSON") != NULL);
}

struct bad {
    enum cm_sd_format fmt;
    const char *text;
    const char *want; /* a part of the message */
    int line;         /* -1: any */
};

static const struct bad bads[] = {
    {CM_SD_JSON, "[{\"targets\": [\"a:1\"]},\n {\"targets\": [\"b:1\"]\n]", "not valid JSON", 3},
    {CM_SD_JSON, "{\"targets\": []}", "expected an array of groups", 1},
    {CM_SD_JSON, "[\"a:443\"]", "group 0: expected an object", 0},
    {CM_SD_JSON, "[{\"targets\": \"a:443\"}]",
     "group 0: targets: expected an array of strings, "
     "found a string",
     0},
    {CM_SD_JSON, "[{}, {\"targets\": [\"a\", 443]}]",
     "group 1: targets[1]: expected a string, "
     "found a number",
     0},
    {CM_SD_JSON, "[{\"labels\": {\"a\": 1}}]",
     "group 0: labels.a: expected a string, found a "
     "number",
     0},
    {CM_SD_JSON, "[{\"labels\": [\"a\"]}]", "group 0: labels: expected an object", 0},
    {CM_SD_JSON, "[{\"target\": [\"a\"]}]", "group 0: unknown key 'target'", 0},
    {CM_SD_JSON, "[{\"labels\": {\"a\": \"1\", \"a\": \"2\"}}]", "duplicate", -1},
    {CM_SD_YAML, "- targets: [a:1\n- x\n", "not valid YAML", -1},
    {CM_SD_YAML, "targets: [a]\n", "expected a list of groups", 1},
    {CM_SD_YAML, "- targets: a:443\n",
     "group 0: targets: expected a list of strings, found a "
     "scalar",
     1},
    {CM_SD_YAML, "- targets:\n  - a\n  - [b]\n", "group 0: targets[1]: expected a string", 3},
    {CM_SD_YAML, "- labels:\n    a: [1]\n", "group 0: labels.a: expected a string", 2},
    {CM_SD_YAML, "- labels: [a]\n", "group 0: labels: expected a mapping", 1},
    {CM_SD_YAML, "- labels:\n    a: x\n    a: y\n", "label 'a' given twice", 3},
    {CM_SD_YAML, "- targets: [a]\n  targets: [b]\n", "'targets' given twice", 2},
    {CM_SD_YAML, "- x: 1\n", "unknown key 'x'", 1},
    {CM_SD_YAML, "- 3\n", "group 0: expected a mapping", 1},
    {CM_SD_YAML, "- targets: &t [a]\n- targets: *t\n", "aliases", 2},
    {CM_SD_YAML, "- targets: [a]\n---\n- targets: [b]\n", "more than one YAML document", 2},
    {CM_SD_YAML, "- targets: [a]\n\0- targets: [b]\n", "NUL", 2},
};

static void test_errors(void)
{
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        const struct bad *b = &bads[i];
        size_t len = strlen(b->text);
        struct cm_sd_doc doc;
        char err[512];
        int line = -7, rc;

        /* The NUL case: the text goes on past its first NUL. */
        if (strstr(b->want, "NUL"))
            len += 1 + strlen(b->text + len + 1);
        err[0] = '\0';
        rc = cm_sd_parse(b->text, len, b->fmt, &doc, err, sizeof(err), &line);
        expect_int(rc, CM_EBADARG, b->text, __LINE__);
        if (!strstr(err, b->want))
            fprintf(stderr, "\n    case %zu: want '%s' in '%s'\n", i, b->want, err);
        CU_ASSERT(strstr(err, b->want) != NULL);
        if (b->line >= 0)
            expect_int(line, b->line, b->text, __LINE__);
        EXPECT_INT(doc.count, 0);
        CU_ASSERT_PTR_NULL(doc.groups);
    }
}

/* Every bound is an error naming it, never a truncation. */
static void test_bounds(void)
{
    struct cm_sd_doc doc;
    char err[256];
    size_t n = CM_SD_MAX_TARGETS + 1, cap = n * 8 + 64, len = 0;
    char *big = malloc(cap);
    int line;

    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    len += (size_t)snprintf(big + len, cap - len, "[{\"targets\": [");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(big + len, cap - len, "%s\"h:1\"", i ? "," : "");
    len += (size_t)snprintf(big + len, cap - len, "]}]");
    EXPECT_INT(cm_sd_parse(big, len, CM_SD_JSON, &doc, err, sizeof(err), &line), CM_EBADARG);
    CU_ASSERT(strstr(err, "more than 100000 targets in one file") != NULL);

    /* A string longer than CM_SD_MAX_STRING. */
    len = (size_t)snprintf(big, cap, "- targets: [");
    memset(big + len, 'a', CM_SD_MAX_STRING + 1);
    len += CM_SD_MAX_STRING + 1;
    len += (size_t)snprintf(big + len, cap - len, "]\n");
    EXPECT_INT(cm_sd_parse(big, len, CM_SD_YAML, &doc, err, sizeof(err), &line), CM_EBADARG);
    CU_ASSERT(strstr(err, "longer than 4096 bytes") != NULL);
    EXPECT_INT(line, 1);

    /* Too many labels in a group. */
    len = (size_t)snprintf(big, cap, "- labels:\n");
    for (unsigned i = 0; i <= CM_SD_MAX_LABELS; i++)
        len += (size_t)snprintf(big + len, cap - len, "    l%u: v\n", i);
    EXPECT_INT(cm_sd_parse(big, len, CM_SD_YAML, &doc, err, sizeof(err), &line), CM_EBADARG);
    CU_ASSERT(strstr(err, "more than 64 labels") != NULL);
    EXPECT_INT(line, (int)CM_SD_MAX_LABELS + 2);

    /* The size bound is checked before anything is read. */
    EXPECT_INT(
        cm_sd_parse(big, (size_t)CM_SD_MAX_BYTES + 1, CM_SD_YAML, &doc, err, sizeof(err), &line),
        CM_EBADARG);
    CU_ASSERT(strstr(err, "larger than 16 MiB") != NULL);
    free(big);
}

static void test_format_of(void)
{
    enum cm_sd_format f = CM_SD_YAML;

    EXPECT_INT(cm_sd_format_of("/x/a.json", &f), 0);
    EXPECT_INT(f, CM_SD_JSON);
    EXPECT_INT(cm_sd_format_of("/x/a.YML", &f), 0);
    EXPECT_INT(f, CM_SD_YAML);
    EXPECT_INT(cm_sd_format_of("a.yaml", &f), 0);
    EXPECT_INT(cm_sd_format_of("/x/a.json.tmp", &f), -1);
    EXPECT_INT(cm_sd_format_of("/x.json/a", &f), -1);
    EXPECT_INT(cm_sd_format_of("/x/a", &f), -1);
}

/* A configuration with one discovery source, loaded from the suite's directory. */
static struct cm_config *load(const char *text)
{
    struct cm_config_errors errs = {0};
    struct cm_config *cfg = NULL;
    FILE *f = fopen(cm_th_path(dir, "c.conf"), "w");

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
    if (cm_config_load(cm_th_path(dir, "c.conf"), &cfg, &errs) < 0)
        for (size_t i = 0; i < errs.count; i++)
            fprintf(stderr, "\n    | %s", errs.msgs[i]);
    cm_config_errors_clear(&errs);
    return cfg;
}

/* Parse + cm_config_discover of text as file "/sd/x.yml" (or .json). */
static int discover(const struct cm_config *cfg, const char *text, enum cm_sd_format fmt,
                    struct cm_config_target **v, size_t *n, char *msgs, size_t mlen)
{
    struct cm_config_errors errs = {0};
    struct cm_sd_doc doc;
    char err[256];
    int line, rc;

    msgs[0] = '\0';
    if ((rc = cm_sd_parse(text, strlen(text), fmt, &doc, err, sizeof(err), &line)) < 0) {
        snprintf(msgs, mlen, "parse: %s", err);
        return rc;
    }
    rc = cm_config_discover(cfg, 0, fmt == CM_SD_JSON ? "/sd/x.json" : "/sd/x.yml", &doc, v, n,
                            &errs);
    for (size_t i = 0, o = 0; i < errs.count && o < mlen; i++)
        o += (size_t)snprintf(msgs + o, mlen - o, "%s\n", errs.msgs[i]);
    cm_config_errors_clear(&errs);
    cm_sd_doc_clear(&doc);
    return rc;
}

/* Discovered entries become targets as configured ones would: the source's defaults, the
 * group's labels over the source's, __certmon_ keys typed by the target table. */
static void test_discover_targets(void)
{
    struct cm_config *cfg = load("global = { interval = \"1h\"; warn_days = 20; };\n"
                                 "discovery = ( { files = [\"sd/*.yml\"]; interval = \"10m\";\n"
                                 "  labels = { team = \"web\"; env = \"base\"; }; } );\n");
    struct cm_config_target *v = NULL;
    size_t n = 0;
    char msgs[2048];

    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_INT(cfg->discovery_count, 1);
    EXPECT_STR(cfg->discovery[0].name, "discovery[0]");
    EXPECT_INT(cfg->discovery[0].refresh_ms, 30000);
    EXPECT_INT(cfg->discovery[0].file_count, 1);
    CU_ASSERT(strstr(cfg->discovery[0].files[0], "/sd/*.yml") != NULL);
    EXPECT_INT(discover(cfg,
                        "- targets: [a.example:8443, \"[::1]:9443\"]\n"
                        "  labels: {env: prod, __meta_x: dropped, __certmon_sni: www.example,\n"
                        "           __certmon_interval: 5m, __certmon_warn_days: \"10\"}\n"
                        "- targets: [mail.example:25]\n"
                        "  labels: {__certmon_name: mx1, __certmon_posture: \"false\"}\n",
                        CM_SD_YAML, &v, &n, msgs, sizeof(msgs)),
               0);
    EXPECT_STR(msgs, "");
    EXPECT_INT(n, 3);
    if (n == 3) {
        EXPECT_STR(v[0].name, "www.example@a.example:8443");
        EXPECT_STR(v[0].ep.sni, "www.example");
        EXPECT_INT(v[0].ep.port, 8443);
        EXPECT_INT(v[0].interval_ms, 300000);
        EXPECT_INT(v[0].policy->warn_days, 10);
        EXPECT_INT(v[0].labels.count, 2);
        EXPECT_STR(v[0].labels.keys[0], "env");
        EXPECT_STR(v[0].labels.values[0], "prod");
        EXPECT_STR(v[0].labels.keys[1], "team");
        EXPECT_STR(v[0].opt->origin, "/sd/x.yml");
        EXPECT_INT(v[0].line, 1);
        EXPECT_STR(v[1].ep.host, "::1");
        EXPECT_INT(v[1].interval_ms, 300000);
        EXPECT_STR(v[2].name, "mx1");
        EXPECT_INT(v[2].ep.starttls, CM_STARTTLS_SMTP); /* by port */
        EXPECT_INT(v[2].interval_ms, 600000);           /* the source's */
        EXPECT_INT(v[2].policy->warn_days, 20);          /* global's */
        EXPECT_INT(v[2].posture_interval_ms, 0);
        EXPECT_STR(v[2].labels.values[0], "base");
        EXPECT_INT(v[2].line, 4);
        CU_ASSERT(v[0].spec_hash != v[1].spec_hash);
        /* Memory at 100,000 targets: a target without policy keys of its own shares the
         * source's policy, and the targets that set nothing else share one block holding the
         * file's name. */
        CU_ASSERT(v[0].policy != &cfg->discovery[0].policy);
        CU_ASSERT_PTR_EQUAL(v[2].policy, &cfg->discovery[0].policy);
        CU_ASSERT_PTR_EQUAL(v[1].opt, v[0].opt);
        CU_ASSERT_PTR_EQUAL(v[2].opt, v[0].opt);
        CU_ASSERT_PTR_EQUAL(v[2].file, v[2].opt->origin);
    }
    cm_config_targets_free(v, n);
    cm_config_free(cfg);
}

struct bad_entry {
    const char *text;
    const char *want;
};

/* A bad entry refuses the whole file, and the message names file, line, group and key. */
static const struct bad_entry bad_entries[] = {
    {"- targets: [a.example:99999]\n", "/sd/x.yml:1: group 0, target 'a.example:99999': "},
    {"- targets: [a.example]\n  labels: {__certmon_interval: soon}\n",
     "/sd/x.yml:1: group 0, target 'a.example': __certmon_interval: "},
    {"- targets: [a.example]\n- targets: [b.example]\n  labels: {__certmon_starttls: smtpx}\n",
     "/sd/x.yml:2: group 1, target 'b.example': __certmon_starttls: must be one of"},
    {"- targets: [a.example]\n  labels: {__certmon_warn_days: ten}\n",
     "/sd/x.yml:1: group 0: labels.__certmon_warn_days: expected an integer, not 'ten'"},
    {"- targets: [a.example]\n  labels: {__certmon_ca_file: /etc/shadow}\n",
     "group 0: labels.__certmon_ca_file: not a key certmon takes"},
    {"- targets: [a.example]\n  labels: {target: x}\n", "'target' is a label certmon"},
    {"- targets: [a.example]\n  labels: {bad-name: x}\n", "not a valid label name"},
    {"- targets: [a.example]\n  labels: {team: \"\"}\n", "must not be empty"},
    {"- targets: [a.example, b.example]\n  labels: {__certmon_name: same}\n",
     "target name 'same' given twice in this file"},
    {"- targets: [a.example]\n  labels: {__certmon_crit_days: \"40\"}\n",
     "crit_days (40) must not exceed warn_days (30"},
};

static void test_discover_errors(void)
{
    struct cm_config *cfg = load("discovery = ( { files = [\"/sd/*.yml\"]; } );\n");

    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    for (size_t i = 0; i < sizeof(bad_entries) / sizeof(bad_entries[0]); i++) {
        struct cm_config_target *v = (void *)1;
        size_t n = 7;
        char msgs[2048];
        int rc = discover(cfg, bad_entries[i].text, CM_SD_YAML, &v, &n, msgs, sizeof(msgs));
        expect_int(rc, CM_ECONFIG, bad_entries[i].text, __LINE__);
        CU_ASSERT_PTR_NULL(v);
        EXPECT_INT(n, 0);
        if (!strstr(msgs, bad_entries[i].want))
            fprintf(stderr, "\n    case %zu: want '%s' in '%s'", i, bad_entries[i].want, msgs);
        CU_ASSERT(strstr(msgs, bad_entries[i].want) != NULL);
    }
    cm_config_free(cfg);
}

/* The block itself is checked at load, with FILE:LINE. */
static void test_discovery_block_errors(void)
{
    static const struct bad_entry cases[] = {
        {"discovery = ( { refresh = \"1m\"; } );\n", "c.conf:1: discovery[0]: missing required "
                                                     "setting 'files'"},
        {"discovery = ( { files = [\"/x/*.txt\"]; } );\n",
         "c.conf:1: discovery[0].files[0]: '/x/*.txt' must name .json, .yml or .yaml files"},
        {"discovery = ( { files = [\"/x/a.json\"]; refresh = \"0s\"; } );\n",
         "discovery[0].refresh: must be at least 1s"},
        {"discovery = ( { files = [\"/x/a.json\"]; frequency = 3; } );\n",
         "discovery[0].frequency: "},
        {"discovery = ( { files = [\"/x/a.json\"]; name = \"a\"; },\n"
         "              { files = [\"/x/b.json\"]; name = \"a\"; } );\n",
         "duplicate discovery source 'a'"},
        {"discovery = ( { files = [\"/x/a.json\"]; starttls = \"smtpx\"; } );\n",
         "discovery[0].starttls: must be one of"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cm_config_errors errs = {0};
        struct cm_config *cfg = NULL;
        FILE *f = fopen(cm_th_path(dir, "c.conf"), "w");

        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        fputs(cases[i].text, f);
        fclose(f);
        EXPECT_INT(cm_config_load(cm_th_path(dir, "c.conf"), &cfg, &errs), CM_ECONFIG);
        CU_ASSERT(cm_th_config_error(&errs, cases[i].want, i));
        cm_config_errors_clear(&errs);
    }
}

/* A composed config: base's settings and targets, then the extra ones; lookups see both. */
static void test_compose(void)
{
    struct cm_config *cfg = load("targets = ( { host = \"a.example\"; } );\n"
                                 "discovery = ( { files = [\"/sd/*.json\"]; } );\n");
    struct cm_config_target *v = NULL;
    const struct cm_config_target *extra[2];
    struct cm_config *c = NULL;
    size_t n = 0;
    char msgs[1024];

    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    EXPECT_INT(discover(cfg, "[{\"targets\": [\"b.example\", \"a.example\"]}]", CM_SD_JSON, &v, &n,
                        msgs, sizeof(msgs)),
               0);
    CU_ASSERT_FATAL(n == 2);
    extra[0] = &v[0];
    EXPECT_INT(cm_config_compose(cfg, extra, 1, &c), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    EXPECT_INT(c->target_count, 2);
    CU_ASSERT_PTR_NOT_NULL(cm_config_find(c, "a.example:443"));
    CU_ASSERT_PTR_NOT_NULL(cm_config_find(c, "b.example:443"));
    CU_ASSERT_PTR_NULL(cm_config_find(cfg, "b.example:443"));
    CU_ASSERT(c->interval_ms == cfg->interval_ms && c->listen == cfg->listen);
    cm_config_free(c);
    /* A name twice is refused: the caller leaves such targets out. */
    extra[1] = &v[1];
    EXPECT_INT(cm_config_compose(cfg, extra, 2, &c), CM_EBADARG);
    CU_ASSERT_PTR_NULL(c);
    cm_config_targets_free(v, n);
    cm_config_free(cfg);
}

struct keys_doc {
    const struct cm_config *cfg;
    const char *doc;
    unsigned accepted, refused;
};

/* Every target and policy key: a __certmon_ label of it is either taken (and then listed in
 * docs/discovery.md's table) or refused as "not a key certmon takes" (and not listed). */
static void check_label_key(const char *group, const char *key, void *arg)
{
    struct keys_doc *kd = arg;
    struct cm_config_target *v = NULL;
    size_t n = 0;
    char text[256], msgs[2048], row[128];
    bool refused, listed;

    if (!key || (strcmp(group, "targets") && strcmp(group, "policy")))
        return;
    snprintf(text, sizeof(text), "- targets: [a.example]\n  labels: {__certmon_%s: \"1\"}\n", key);
    (void)discover(kd->cfg, text, CM_SD_YAML, &v, &n, msgs, sizeof(msgs));
    cm_config_targets_free(v, n);
    refused = strstr(msgs, "not a key certmon takes") != NULL;
    snprintf(row, sizeof(row), "| `__certmon_%s` |", key);
    listed = strstr(kd->doc, row) != NULL;
    if (refused == listed)
        fprintf(stderr, "\n    __certmon_%s: %s, but %s in docs/discovery.md", key,
                refused ? "refused" : "taken", listed ? "listed" : "not listed");
    CU_ASSERT(refused != listed);
    kd->accepted += !refused;
    kd->refused += refused;
}

static void test_label_keys_documented(void)
{
    struct keys_doc kd = {0};
    char *doc = cm_th_read_text(CERTMON_DISCOVERY_MD);

    CU_ASSERT_FATAL(doc && *doc);
    kd.doc = doc;
    kd.cfg = load("discovery = ( { files = [\"/sd/*.yml\"]; } );\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(kd.cfg);
    cm_config_keys_foreach(check_label_key, &kd);
    fprintf(stderr, "(%u keys taken, %u refused) ", kd.accepted, kd.refused);
    CU_ASSERT(kd.accepted >= 20);
    /* host, port, labels and the five paths (ca_file, client_cert, client_key,
     * interception_roots_file, expect_file). */
    EXPECT_INT(kd.refused, 8);
    cm_config_free((struct cm_config *)kd.cfg);
    free(doc);
}

static CU_TestInfo tests[] = {
    {"JSON document", test_json_ok},
    {"YAML document with lines", test_yaml_ok},
    {"empty documents", test_empty},
    {"each mistake named, with its line", test_errors},
    {"bounds", test_bounds},
    {"format from the file name", test_format_of},
    {"discovered entries become targets", test_discover_targets},
    {"a bad entry refuses the file, naming file:line, group and key", test_discover_errors},
    {"discovery blocks are checked at load", test_discovery_block_errors},
    {"composed configuration", test_compose},
    {"every __certmon_ key taken is in docs/discovery.md, and only those",
     test_label_keys_documented},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("filesd", tests, suite_init, suite_clean);
}
