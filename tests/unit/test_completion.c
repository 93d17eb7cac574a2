/* The bash completion built for certmon, run in bash with Debian's bash-completion loaded, as
 * an interactive shell would: COMP_WORDS split the way readline splits them ('=' is a word
 * of its own), then _certmon, then COMPREPLY compared with what the program accepts (its
 * commands, check's getopt table, the finding catalogue, the STARTTLS protocols, files). */
#include "cmtest.h"
#include "certmon/analysis/analyze.h"
#include "certmon/check.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BASH_COMPLETION "/usr/share/bash-completion/bash_completion"

static char dir[256];

/* The words bash offers for the command line `line` (the cursor at its end), sorted, one per
 * line, in a malloc'd string; NULL when bash failed. */
static char *complete(const char *line)
{
    char script[4096], *out = NULL;

    /* Readline breaks words at blanks and at '=' (COMP_WORDBREAKS), each '=' being a word. */
    snprintf(script, sizeof(script),
             "set -e; cd '%s'; . " BASH_COMPLETION "; . '%s'\n"
             "COMP_LINE=\"$1\"; COMP_POINT=${#COMP_LINE}; COMP_WORDS=()\n"
             "for w in $COMP_LINE; do\n"
             "  while [[ $w == *=* ]]; do\n"
             "    [[ -n ${w%%%%=*} ]] && COMP_WORDS+=(\"${w%%%%=*}\")\n"
             "    COMP_WORDS+=(=); w=${w#*=}\n"
             "  done\n"
             "  [[ -n $w ]] && COMP_WORDS+=(\"$w\")\n"
             "done\n"
             "[[ $COMP_LINE == *' ' || $COMP_LINE == *= ]] && COMP_WORDS+=('')\n"
             "COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))\n"
             "set +e; _certmon certmon \"${COMP_WORDS[COMP_CWORD]}\" "
             "\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
             "printf '%%s\\n' \"${COMPREPLY[@]}\" | LC_ALL=C sort\n",
             dir, CERTMON_COMPLETION);
    char *argv[] = {"/bin/bash", "-c", script, "complete", (char *)line, NULL};
    if (cm_th_run(argv, &out, 30, NULL) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* True when the newline-separated list has word as one of its lines. */
static bool has_word(const char *list, const char *word)
{
    size_t n = strlen(word);

    for (const char *p = list; (p = strstr(p, word)) != NULL; p += n) {
        if ((p == list || p[-1] == '\n') && p[n] == '\n')
            return true;
    }
    return false;
}

static size_t count_lines(const char *list)
{
    size_t n = 0;

    for (const char *p = list; *p; p++)
        n += *p == '\n' && p > list && p[-1] != '\n';
    return n;
}

static int suite_init(void)
{
    snprintf(dir, sizeof(dir), "/tmp/certmon-completion-XXXXXX");
    if (!mkdtemp(dir) || access(BASH_COMPLETION, R_OK) != 0) {
        fprintf(stderr, "need %s (bash-completion) and a temporary directory\n", BASH_COMPLETION);
        return -1;
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/root.pem", dir);
    FILE *fp = fopen(path, "w");
    if (fp)
        fclose(fp);
    snprintf(path, sizeof(path), "%s/certs", dir);
    mkdir(path, 0755);
    return fp ? 0 : -1;
}

static int suite_cleanup(void)
{
    char *argv[] = {"rm", "-rf", dir, NULL}, *out = NULL;

    cm_th_run(argv, &out, 30, NULL);
    free(out);
    return 0;
}

static void test_commands(void)
{
    char *r = complete("certmon ");

    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    EXPECT_STR(r, "--help\n--version\ncheck\nconfig-check\nhelp\nhistory\nnotify-test\nrun\nstate\nversion\n");
    free(r);
    r = complete("certmon con");
    EXPECT_STR(r, "config-check\n");
    free(r);
}

static void test_check_options(void)
{
    char *r = complete("certmon check --");
    size_t n = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    for (const struct option *o = cm_check_long_options(); o->name; o++, n++) {
        char flag[80];
        snprintf(flag, sizeof(flag), "--%s", o->name);
        if (!has_word(r, flag)) {
            fprintf(stderr, "\n  no completion for %s", flag);
            CU_FAIL("a check option is not completed");
        }
    }
    EXPECT_INT(count_lines(r), n);
    free(r);
    r = complete("certmon check example.com --warn-");
    EXPECT_STR(r, "--warn-days\n--warn-lifetime-pct\n");
    free(r);
}

static void test_finding_ids(void)
{
    char *r = complete("certmon check --ignore ");

    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    for (size_t i = 0; i < cm_finding_catalogue_len; i++)
        CU_ASSERT(has_word(r, cm_finding_catalogue[i].id));
    EXPECT_INT(count_lines(r), cm_finding_catalogue_len);
    free(r);

    r = complete("certmon check --ignore=cert.exp");
    EXPECT_STR(r, "cert.expired\ncert.expiring\n");
    free(r);

    /* --severity ID=LEVEL: the id with '=' (no space after), then the level. */
    r = complete("certmon check --severity cert.expi");
    EXPECT_STR(r, "cert.expired=\ncert.expiring=\n");
    free(r);
    r = complete("certmon check --severity cert.expired=");
    EXPECT_STR(r, "critical\ninfo\nwarning\n");
    free(r);
    r = complete("certmon check --severity cert.expired=w");
    EXPECT_STR(r, "warning\n");
    free(r);
}

static void test_values_and_files(void)
{
    char *r = complete("certmon check --starttls ");

    EXPECT_STR(r, "ftp\nimap\nldap\nmysql\nnone\npop3\npostgres\nsmtp\nxmpp\n");
    free(r);
    r = complete("certmon check --starttls=po");
    EXPECT_STR(r, "pop3\npostgres\n");
    free(r);
    /* Files (in the test's directory, the working directory of the shell). */
    r = complete("certmon check --ca ro");
    EXPECT_STR(r, "root.pem\n");
    free(r);
    r = complete("certmon run -c ce");
    EXPECT_STR(r, "certs\n");
    free(r);
    /* A number: nothing to offer. */
    r = complete("certmon check --timeout ");
    EXPECT_STR(r, "\n");
    free(r);
    r = complete("certmon run --log-level d");
    EXPECT_STR(r, "debug\n");
    free(r);
    r = complete("certmon notify-test --");
    EXPECT_STR(r, "--config\n--help\n--notifier\n");
    free(r);
    r = complete("certmon state ");
    EXPECT_STR(r, "export\n");
    free(r);
    r = complete("certmon state export --");
    EXPECT_STR(r, "--config\n--help\n--json\n");
    free(r);
    r = complete("certmon history --");
    EXPECT_STR(r, "--config\n--help\n--json\n");
    free(r);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"commands", test_commands},
        {"every check option, from the getopt table", test_check_options},
        {"finding ids for --ignore and --severity ID=LEVEL", test_finding_ids},
        {"starttls values, files, levels, no guesses for numbers", test_values_and_files},
        CU_TEST_INFO_NULL,
    };
    return cm_test_main("unit.completion", tests, suite_init, suite_cleanup);
}
