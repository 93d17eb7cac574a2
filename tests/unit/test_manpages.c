/* The man pages built from docs/man/ (scdoc) against the program: every long option of `check`
 * (its getopt table), every command and option the other commands' --help lists, and every
 * key of the configuration loader's tables must be documented, each in its own section; no
 * option is documented that `check` does not accept; `man -l` renders both pages without a
 * warning. */
#include "cmtest.h"
#include "certmon/check.h"
#include "certmon/config/config.h"

#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *page1, *page5;

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    char *buf = NULL;
    size_t cap = 0;

    if (!fp)
        return NULL;
    ssize_t n = getdelim(&buf, &cap, '\0', fp);
    fclose(fp);
    if (n <= 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* The text of section ".SH TITLE" up to the next section, malloc'd; NULL when absent. */
static char *section(const char *page, const char *title)
{
    char head[128];
    const char *s, *e;

    snprintf(head, sizeof(head), "\n.SH %s\n", title);
    if (!(s = strstr(page, head)))
        return NULL;
    s += strlen(head);
    e = strstr(s, "\n.SH ");
    return strndup(s, e ? (size_t)(e - s) : strlen(s));
}

/* True when bold (the way scdoc writes *word*) is in text. at_line_start: only as the
 * first thing on a line, where a definition list puts the term it defines. */
static bool has_bold(const char *text, const char *word, bool at_line_start)
{
    char want[200];
    size_t n = (size_t)snprintf(want, sizeof(want), "\\fB%s\\fR", word);

    for (const char *p = text; (p = strstr(p, want)) != NULL; p += n) {
        if (!at_line_start || p == text || p[-1] == '\n')
            return true;
    }
    return false;
}

static int suite_init(void)
{
    page1 = slurp(CERTMON_MAN_DIR "/certmon.1");
    page5 = slurp(CERTMON_MAN_DIR "/certmon.conf.5");
    if (!page1 || !page5)
        fprintf(stderr, "man pages not built in %s\n", CERTMON_MAN_DIR);
    return page1 && page5 ? 0 : -1;
}

static int suite_cleanup(void)
{
    free(page1);
    free(page5);
    return 0;
}

static void test_check_flags(void)
{
    char *sec = section(page1, "CHECK OPTIONS");
    const struct option *o = cm_check_long_options();
    unsigned n = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(sec);
    for (; o->name; o++, n++) {
        char flag[80];
        snprintf(flag, sizeof(flag), "--%s", o->name);
        if (!has_bold(sec, flag, false)) {
            fprintf(stderr, "\n  certmon(1) CHECK OPTIONS does not document %s", flag);
            CU_FAIL("a check option is missing from certmon(1)");
        }
    }
    CU_ASSERT(n >= 25);

    /* The other way: a documented option that check does not accept is stale. */
    for (const char *p = sec; (p = strstr(p, "\\fB--")) != NULL;) {
        p += 5;
        size_t len = strcspn(p, "\\");
        bool known = false;
        for (o = cm_check_long_options(); o->name && !known; o++)
            known = strlen(o->name) == len && !strncmp(o->name, p, len);
        if (!known) {
            fprintf(stderr, "\n  certmon(1) documents --%.*s, which check does not accept",
                    (int)len, p);
            CU_FAIL("certmon(1) documents an option check does not have");
        }
    }
    free(sec);
}

/* Runs certmon with args, stdout and stderr together. Not inlined: gcc 12 -O2 then takes the
 * returned buffer for the address of the local `out` and warns of a dangling pointer. */
__attribute__((noinline)) static char *certmon_out(const char *args)
{
    char cmd[512], *out = NULL;

    snprintf(cmd, sizeof(cmd), "'%s' %s 2>&1", cm_th_certmon(), args);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    cm_th_run(argv, &out, 30, NULL);
    return out;
}

static void test_commands(void)
{
    char *help = certmon_out("help"), *sec = section(page1, "COMMANDS");
    const char *p;
    unsigned n = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(sec);
    CU_ASSERT_PTR_NOT_NULL_FATAL(help);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p = strstr(help, "commands:\n"));
    /* "  check TARGET...   probe ..." : the first word of each indented line. */
    for (p += strlen("commands:\n"); p[0] == ' ' && p[1] == ' ';) {
        char word[64];
        size_t len = strcspn(p + 2, " \n");
        snprintf(word, sizeof(word), "%.*s", (int)(len < 63 ? len : 63), p + 2);
        if (!has_bold(sec, word, true)) {
            fprintf(stderr, "\n  certmon(1) COMMANDS does not document '%s'", word);
            CU_FAIL("a command is missing from certmon(1)");
        }
        n++;
        p = strchr(p, '\n');
        if (!p)
            break;
        p++;
    }
    EXPECT_INT(n, 8);
    free(sec);
    free(help);
}

static void test_other_command_flags(void)
{
    static const char *const cmds[] = {"run --help", "config-check --help", "notify-test --help",
                                       "history --help"};
    char *sec = section(page1, "RUN, CONFIG-CHECK, NOTIFY-TEST AND STATE OPTIONS");
    unsigned n = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(sec);
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char *help = certmon_out(cmds[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(help);
        CU_ASSERT_PTR_NOT_NULL(strstr(help, "usage: certmon "));
        for (const char *p = help; (p = strstr(p, "--")) != NULL;) {
            char flag[64];
            size_t len = 2 + strspn(p + 2, "abcdefghijklmnopqrstuvwxyz-");
            snprintf(flag, sizeof(flag), "%.*s", (int)(len < 63 ? len : 63), p);
            p += len;
            if (len <= 2)
                continue;
            n++;
            if (!has_bold(sec, flag, false)) {
                fprintf(stderr, "\n  certmon(1) does not document %s of certmon %s", flag, cmds[i]);
                CU_FAIL("an option of run, config-check or notify-test is missing");
            }
        }
        free(help);
    }
    CU_ASSERT(n >= 4);
    free(sec);
}

struct key_check {
    unsigned keys, groups;
};

static void check_key(const char *group, const char *key, void *arg)
{
    struct key_check *kc = arg;
    char title[64];
    size_t i;

    for (i = 0; group[i] && i < sizeof(title) - 1; i++)
        title[i] = (char)toupper((unsigned char)group[i]);
    title[i] = '\0';
    char *sec = section(page5, title);
    if (!sec) {
        fprintf(stderr, "\n  certmon.conf(5) has no section %s", title);
        CU_FAIL("a configuration group has no section in certmon.conf(5)");
        return;
    }
    if (!key) {
        kc->groups++;
    } else {
        kc->keys++;
        if (!has_bold(sec, key, true)) {
            fprintf(stderr, "\n  certmon.conf(5) section %s does not document '%s'", title, key);
            CU_FAIL("a configuration key is missing from certmon.conf(5)");
        }
    }
    free(sec);
}

static void test_config_keys(void)
{
    struct key_check kc = {0};

    cm_config_keys_foreach(check_key, &kc);
    EXPECT_INT(kc.groups, 7);
    CU_ASSERT(kc.keys >= 60);
    fprintf(stderr, "(%u keys in %u groups) ", kc.keys, kc.groups);
}

static void test_exit_status(void)
{
    char *sec = section(page1, "EXIT STATUS");

    CU_ASSERT_PTR_NOT_NULL_FATAL(sec);
    for (int code = 0; code <= 3; code++) {
        char c[4];
        snprintf(c, sizeof(c), "%d", code);
        CU_ASSERT(has_bold(sec, c, true));
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(sec, "UNKNOWN"));
    free(sec);
    sec = section(page1, "EXAMPLES");
    CU_ASSERT(sec && strstr(sec, "certmon check "));
    free(sec);
}

/* man -l with groff's warnings on: nothing on stderr, and the page's text on stdout. */
static void render(const char *page, const char *expect)
{
    char cmd[600], *out = NULL;

    snprintf(cmd, sizeof(cmd),
             "MANWIDTH=80 man --warnings -l -Tutf8 '%s/%s' 2>'%s/%s.err' | col -b; "
             "cat '%s/%s.err'",
             CERTMON_MAN_DIR, page, CERTMON_MAN_DIR, page, CERTMON_MAN_DIR, page);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    EXPECT_INT(cm_th_run(argv, &out, 30, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, expect));
    snprintf(cmd, sizeof(cmd), "%s/%s.err", CERTMON_MAN_DIR, page);
    char *err = slurp(cmd);
    if (err) {
        fprintf(stderr, "\n  man -l %s warned:\n%s", page, err);
        CU_FAIL("man -l warns");
    }
    free(err);
    free(out);
}

static void test_render(void)
{
    render("certmon.1", "monitor TLS certificates and endpoints");
    render("certmon.conf.5", "configuration of the certmon daemon");
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"every check option is in certmon(1), and only those", test_check_flags},
        {"every command is in certmon(1)", test_commands},
        {"every option of run, config-check, notify-test is in certmon(1)",
         test_other_command_flags},
        {"every configuration key is in certmon.conf(5), in its group's section", test_config_keys},
        {"exit status and examples", test_exit_status},
        {"man -l renders both without warnings", test_render},
        CU_TEST_INFO_NULL,
    };
    return cm_test_main("unit.manpages", tests, suite_init, suite_cleanup);
}
