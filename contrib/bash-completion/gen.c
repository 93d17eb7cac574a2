/* Writes the bash completion of certmon from its template, filling in the program's own
 * tables: the long options of `check` (cm_check_long_options), which of them take a file and
 * which another value, and the finding ids of the analyser's catalogue. A build tool: run as
 * gen TEMPLATE OUTPUT by the build (CMakeLists.txt). */
#include "certmon/analysis/analyze.h"
#include "certmon/check.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The options of check whose value is a file (completed with file names). */
static const char *const file_opts[] = {"targets", "ca", "client-cert", "client-key",
                                        "interception-roots"};

static bool takes_file(const char *name)
{
    for (size_t i = 0; i < sizeof(file_opts) / sizeof(file_opts[0]); i++)
        if (!strcmp(file_opts[i], name))
            return true;
    return false;
}

static void put_options(FILE *out, int which)
{
    const char *sep = "";

    for (const struct option *o = cm_check_long_options(); o->name; o++) {
        bool file = o->has_arg == required_argument && takes_file(o->name);
        bool value = o->has_arg == required_argument && !file;
        if (which == 0 || (which == 1 && file) || (which == 2 && value)) {
            fprintf(out, "%s--%s", sep, o->name);
            sep = " ";
        }
    }
}

int main(int argc, char **argv)
{
    FILE *in, *out;
    char *line = NULL;
    size_t cap = 0;

    if (argc != 3) {
        fprintf(stderr, "usage: %s TEMPLATE OUTPUT\n", argv[0]);
        return 2;
    }
    if (!(in = fopen(argv[1], "r")) || !(out = fopen(argv[2], "w"))) {
        perror(argv[in ? 2 : 1]);
        return 1;
    }
    while (getline(&line, &cap, in) > 0) {
        for (const char *p = line; *p;) {
            const char *at = strchr(p, '@');
            if (!at) {
                fputs(p, out);
                break;
            }
            fwrite(p, 1, (size_t)(at - p), out);
            if (!strncmp(at, "@CHECK_OPTIONS@", 15)) {
                put_options(out, 0);
                p = at + 15;
            } else if (!strncmp(at, "@CHECK_FILE_OPTIONS@", 20)) {
                put_options(out, 1);
                p = at + 20;
            } else if (!strncmp(at, "@CHECK_VALUE_OPTIONS@", 21)) {
                put_options(out, 2);
                p = at + 21;
            } else if (!strncmp(at, "@FINDING_IDS@", 13)) {
                for (size_t i = 0; i < cm_finding_catalogue_len; i++)
                    fprintf(out, "%s%s", i ? " " : "", cm_finding_catalogue[i].id);
                p = at + 13;
            } else {
                fputc('@', out);
                p = at + 1;
            }
        }
    }
    free(line);
    fclose(in);
    if (fclose(out) != 0) {
        perror(argv[2]);
        return 1;
    }
    return 0;
}
