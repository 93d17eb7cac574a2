/* docs/findings.md against the catalogue of src/analysis/analyze.c, so that neither drifts from the
 * other: every catalogue id is documented, in the summary table and in a section of its own
 * whose severity line starts with the id's default severity; and every id-shaped name in
 * backticks on the page is in the catalogue. */
#include "cmtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certmon/analysis/analyze.h"

#ifndef CERTMON_FINDINGS_MD
#error "CERTMON_FINDINGS_MD must name docs/findings.md"
#endif

static char *doc;

static int suite_init(void)
{
    FILE *fp = fopen(CERTMON_FINDINGS_MD, "rb");
    size_t len = 0, cap = 0;

    if (!fp) {
        perror(CERTMON_FINDINGS_MD);
        return -1;
    }
    for (;;) {
        if (len + 4096 + 1 > cap) {
            char *n = realloc(doc, cap = cap ? cap * 2 : 65536);
            if (!n) {
                fclose(fp);
                return -1;
            }
            doc = n;
        }
        size_t got = fread(doc + len, 1, cap - len - 1, fp);
        len += got;
        if (got == 0)
            break;
    }
    doc[len] = '\0';
    fclose(fp);
    return len > 0 ? 0 : -1;
}

static int suite_cleanup(void)
{
    free(doc);
    doc = NULL;
    return 0;
}

static bool is_lower(char c)
{
    return c >= 'a' && c <= 'z';
}

/* Looks like a finding id: a lowercase word, a dot, a lowercase word with underscores and
 * digits (protocol.no_tls13) that starts with a letter. */
static bool id_shaped(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n && is_lower(s[i]))
        i++;
    if (i == 0 || i >= n || s[i] != '.')
        return false;
    if (++i >= n || !is_lower(s[i]))
        return false;
    for (; i < n; i++)
        if (!is_lower(s[i]) && s[i] != '_' && !(s[i] >= '0' && s[i] <= '9'))
            return false;
    return true;
}

static void fail(const char *msg, unsigned line)
{
    CU_assertImplementation(CU_FALSE, line, msg, __FILE__, "", CU_FALSE);
}

static void test_every_id_documented(void)
{
    char want[96], msg[160];

    CU_ASSERT_FATAL(cm_finding_catalogue_len > 0);
    for (size_t i = 0; i < cm_finding_catalogue_len; i++) {
        snprintf(want, sizeof(want), "`%s`", cm_finding_catalogue[i].id);
        if (!strstr(doc, want)) {
            snprintf(msg, sizeof(msg), "docs/findings.md mentions %s", want);
            fail(msg, __LINE__);
        }
    }
}

/* Calls check for each run of [a-z0-9_.] characters inside a `code span` of the page. */
static void each_code_word(void (*check)(const char *word, size_t n, int line))
{
    int line = 1;

    for (const char *p = doc; *p; p++) {
        if (*p == '\n')
            line++;
        if (*p != '`')
            continue;
        const char *end = strchr(p + 1, '`');
        const char *eol = strchr(p + 1, '\n');
        if (!end || (eol && eol < end))
            continue; /* a lone backtick */
        for (const char *w = p + 1; w < end;) {
            size_t n = strspn(w, "abcdefghijklmnopqrstuvwxyz0123456789_.");
            if (n > (size_t)(end - w))
                n = (size_t)(end - w);
            if (n)
                check(w, n, line);
            w += n ? n : 1;
        }
        p = end;
    }
}

static size_t id_words;

static void check_known(const char *word, size_t n, int line)
{
    char id[96], msg[200];

    if (!id_shaped(word, n))
        return;
    id_words++;
    snprintf(id, sizeof(id), "%.*s", (int)n, word);
    if (!cm_finding_lookup(id)) {
        snprintf(msg, sizeof(msg), "docs/findings.md:%d: `%s` is not a catalogue id", line, id);
        fail(msg, __LINE__);
    }
}

static void test_every_documented_id_exists(void)
{
    id_words = 0;
    each_code_word(check_known);
    /* The scan itself works: at least every catalogue id was seen. */
    CU_ASSERT(id_words >= cm_finding_catalogue_len);
}

/* The text after the first occurrence of the line start `prefix`, or NULL. */
static const char *after_line_start(const char *from, const char *prefix)
{
    size_t n = strlen(prefix);

    for (const char *p = from; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, prefix, n))
            return p + n;
    return NULL;
}

/* s starts with the word w (not followed by a letter). */
static bool starts_with_word(const char *s, const char *w)
{
    size_t n = strlen(w);

    return !strncmp(s, w, n) && !is_lower(s[n]);
}

static void test_summary_rows(void)
{
    char row[128], msg[200];

    for (size_t i = 0; i < cm_finding_catalogue_len; i++) {
        const struct cm_finding_def *d = &cm_finding_catalogue[i];
        const char *sev = cm_severity_name(d->severity);
        const char *cell;

        snprintf(row, sizeof(row), "| `%s` | ", d->id);
        cell = after_line_start(doc, row);
        if (!cell || !starts_with_word(cell, sev)) {
            snprintf(msg, sizeof(msg), "summary row for %s gives default severity %s", d->id, sev);
            fail(msg, __LINE__);
        }
    }
}

static void test_sections(void)
{
    static const char *const fields[] = {"- **Triggered when:** ", "- **Position:** ",
                                         "- **Evidence:** ", "- **Fix:** "};
    char heading[128], msg[200];

    for (size_t i = 0; i < cm_finding_catalogue_len; i++) {
        const struct cm_finding_def *d = &cm_finding_catalogue[i];
        const char *sev = cm_severity_name(d->severity);
        const char *body, *next, *line;
        bool ok = false;

        snprintf(heading, sizeof(heading), "### `%s`\n", d->id);
        body = after_line_start(doc, heading);
        if (!body) {
            snprintf(msg, sizeof(msg), "a section \"### `%s`\"", d->id);
            fail(msg, __LINE__);
            continue;
        }
        if (after_line_start(body, heading)) {
            snprintf(msg, sizeof(msg), "only one section for %s", d->id);
            fail(msg, __LINE__);
        }
        next = after_line_start(body, "#");
        line = after_line_start(body, "- **Severity:** ");
        ok = line && (!next || line < next) && starts_with_word(line, sev);
        if (!ok) {
            snprintf(msg, sizeof(msg), "section %s has \"- **Severity:** %s...\"", d->id, sev);
            fail(msg, __LINE__);
        }
        for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++) {
            const char *at = after_line_start(body, fields[k]);
            if (!at || (next && at > next)) {
                snprintf(msg, sizeof(msg), "section %s has \"%s\"", d->id, fields[k]);
                fail(msg, __LINE__);
            }
        }
    }
}

static void test_id_shape(void)
{
    CU_ASSERT(id_shaped("key.weak", 8));
    CU_ASSERT(id_shaped("ocsp.must_staple_missing", 24));
    CU_ASSERT(!id_shaped("key.", 4));
    CU_ASSERT(!id_shaped(".weak", 5));
    CU_ASSERT(!id_shaped("key_x.weak", 10));
    CU_ASSERT(id_shaped("protocol.no_tls13", 17));
    CU_ASSERT(!id_shaped("key.2weak", 9));
    CU_ASSERT(!id_shaped("tls1.3", 6));
    CU_ASSERT(!id_shaped("a.b.c", 5));
    CU_ASSERT(!id_shaped("keyweak", 7));
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"id shape", test_id_shape},
        {"every catalogue id is documented", test_every_id_documented},
        {"every documented id is in the catalogue", test_every_documented_id_exists},
        {"summary rows give the default severity", test_summary_rows},
        {"one section per id, with every field", test_sections},
        CU_TEST_INFO_NULL,
    };

    return cm_test_main("findings_doc", tests, suite_init, suite_cleanup);
}
