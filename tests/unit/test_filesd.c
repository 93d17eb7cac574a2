/* unit.filesd: the file_sd parser (src/config/filesd.c), pure: bytes -> groups, or an error
 * naming the problem and, where the format gives one, its line. Both formats are fed the
 * documents Prometheus's own file_sd documentation shows, and each kind of mistake. */
#include "cmtest.h"

#include "certmon/base/error.h"
#include "certmon/config/filesd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    {CM_SD_JSON, "[{\"targets\": \"a:443\"}]", "group 0: targets: expected an array of strings, "
                                                "found a string",
     0},
    {CM_SD_JSON, "[{}, {\"targets\": [\"a\", 443]}]", "group 1: targets[1]: expected a string, "
                                                     "found a number",
     0},
    {CM_SD_JSON, "[{\"labels\": {\"a\": 1}}]", "group 0: labels.a: expected a string, found a "
                                              "number",
     0},
    {CM_SD_JSON, "[{\"labels\": [\"a\"]}]", "group 0: labels: expected an object", 0},
    {CM_SD_JSON, "[{\"target\": [\"a\"]}]", "group 0: unknown key 'target'", 0},
    {CM_SD_JSON, "[{\"labels\": {\"a\": \"1\", \"a\": \"2\"}}]", "duplicate", -1},
    {CM_SD_YAML, "- targets: [a:1\n- x\n", "not valid YAML", -1},
    {CM_SD_YAML, "targets: [a]\n", "expected a list of groups", 1},
    {CM_SD_YAML, "- targets: a:443\n", "group 0: targets: expected a list of strings, found a "
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
    EXPECT_INT(cm_sd_parse(big, (size_t)CM_SD_MAX_BYTES + 1, CM_SD_YAML, &doc, err, sizeof(err),
                           &line),
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

static CU_TestInfo tests[] = {
    {"JSON document", test_json_ok},
    {"YAML document with lines", test_yaml_ok},
    {"empty documents", test_empty},
    {"each mistake named, with its line", test_errors},
    {"bounds", test_bounds},
    {"format from the file name", test_format_of},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("filesd", tests, NULL, NULL);
}
