/* `certmon state export` and `certmon history`. */
#include "certmon/statecmd.h"
#include "certmon/base/error.h"
#include "certmon/base/text.h"
#include "certmon/config/config.h"
#include "certmon/daemon/state.h"
#include "certmon/daemon/store.h"
#include "certmon/probe/x509.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_CONFIG "/etc/certmon/certmon.conf"

static void usage(FILE *fp)
{
    fputs("usage: certmon state export [-c FILE] [--json]\n"
          "  -c, --config FILE   configuration whose state_file to read (default " DEFAULT_CONFIG
          ")\n"
          "  --json              the whole state as one JSON document (the state file format\n"
          "                      of earlier versions; a daemon imports it from its state_file)\n"
          "Without --json: one line per entry: name, status, last probe, last success,\n"
          "consecutive failures and the ids of its findings.\n",
          fp);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp((*(struct cm_state_entry *const *)a)->name,
                  (*(struct cm_state_entry *const *)b)->name);
}

static void time_text(int64_t t, char *buf, size_t len)
{
    if (t <= 0)
        snprintf(buf, len, "never");
    else
        cm_time_rfc3339(t, buf, len);
}

/* The finding ids of the entry's report, comma-separated (escaped: the report is stored
 * text, and whoever could write the database could put anything there). */
static void finding_ids(const struct cm_state_entry *e, char *buf, size_t len)
{
    char *text = NULL;
    size_t i, off = 0, tlen;
    json_t *r = NULL, *f;

    if (cm_state_report_text(e->report, &text, &tlen) == 0 && text)
        r = json_loadb(text, tlen, 0, NULL);
    free(text);

    buf[0] = '\0';
    json_array_foreach(json_object_get(r, "findings"), i, f)
    {
        char esc[128];
        const char *id = json_string_value(json_object_get(f, "id"));
        cm_text_escape(id ? id : "?", esc, sizeof(esc));
        int n = snprintf(buf + off, len - off, "%s%s", off ? "," : "", esc);
        if (n < 0 || (size_t)n >= len - off)
            break;
        off += (size_t)n;
    }
    json_decref(r);
    if (!buf[0])
        snprintf(buf, len, "-");
}

static int print_table(struct cm_state *s)
{
    size_t n;
    struct cm_state_entry *const *es = cm_state_entries(s, &n);
    struct cm_state_entry **v = malloc((n ? n : 1) * sizeof(*v));

    if (!v) {
        fprintf(stderr, "certmon state export: out of memory\n");
        return 1;
    }
    memcpy(v, es, n * sizeof(*v));
    qsort(v, n, sizeof(*v), cmp_entry);
    printf("%-40s %-8s %-20s %-20s %8s  %s\n", "NAME", "STATUS", "LAST PROBE", "LAST SUCCESS",
           "FAILURES", "FINDINGS");
    for (size_t i = 0; i < n; i++) {
        char name[1024], probe[32], ok[32], ids[1024];
        cm_text_escape(v[i]->name, name, sizeof(name));
        time_text(v[i]->last_probe, probe, sizeof(probe));
        time_text(v[i]->last_success, ok, sizeof(ok));
        finding_ids(v[i], ids, sizeof(ids));
        printf("%-40s %-8s %-20s %-20s %8u  %s\n", name,
               v[i]->has_status ? cm_status_name(v[i]->status) : "-", probe, ok, v[i]->failures,
               ids);
    }
    free(v);
    return 0;
}

static int export(const char *config, bool as_json)
{
    struct cm_config *cfg = NULL;
    struct cm_config_errors errs = {0};
    struct cm_state *s = NULL;
    char err[600];
    int rc;

    if ((rc = cm_config_load(config, &cfg, &errs)) < 0) {
        for (size_t i = 0; i < errs.count; i++)
            fprintf(stderr, "certmon: %s\n", errs.msgs[i]);
        if (errs.count == 0)
            fprintf(stderr, "certmon: cannot load %s: %s\n", config, cm_strerror(rc));
        cm_config_errors_clear(&errs);
        return 1;
    }
    cm_config_errors_clear(&errs);
    if (!cfg->state_file) {
        fprintf(stderr, "certmon state export: %s sets no global.state_file: there is no state\n",
                config);
        cm_config_free(cfg);
        return 1;
    }
    if (cm_state_new(&s) < 0 || (rc = cm_store_read(cfg->state_file, s, err, sizeof(err))) < 0) {
        fprintf(stderr, "certmon state export: %s\n", s ? err : "out of memory");
        cm_state_free(s);
        cm_config_free(cfg);
        return 1;
    }
    if (as_json) {
        char *text;
        size_t len;
        if (cm_state_serialize(s, time(NULL), &text, &len) < 0) {
            fprintf(stderr, "certmon state export: out of memory\n");
            rc = -1;
        } else {
            fwrite(text, 1, len, stdout);
            free(text);
        }
    } else {
        rc = print_table(s) ? -1 : 0;
    }
    cm_state_free(s);
    cm_config_free(cfg);
    if (fflush(stdout) != 0)
        rc = -1;
    return rc < 0 ? 1 : 0;
}

static void history_usage(FILE *fp)
{
    fputs("usage: certmon history [-c FILE] [--json] TARGET\n"
          "  -c, --config FILE   configuration whose state_file to read (default " DEFAULT_CONFIG
          ")\n"
          "  --json              the rows as a JSON array (as /api/v1/targets/NAME/history)\n"
          "Every distinct leaf certificate the target has served, newest first.\n",
          fp);
}

static bool configured(const struct cm_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->target_count; i++)
        if (!strcmp(cfg->targets[i].name, name))
            return true;
    return false;
}

static void print_history(const struct cm_history_row *rows, size_t n)
{
    printf("%-20s %-20s %-20s %-9s %-16s  %s\n", "FIRST SEEN", "LAST SEEN", "NOT AFTER", "KEY",
           "SHA-256", "SUBJECT / SANS / ISSUER");
    for (size_t i = 0; i < n; i++) {
        const struct cm_history_row *r = &rows[i];
        char first[32], last[32], na[32], key[48], sha[17], subj[1024], sans[2048], iss[1024];
        cm_time_rfc3339(r->first_seen, first, sizeof(first));
        cm_time_rfc3339(r->last_seen, last, sizeof(last));
        cm_time_rfc3339(r->not_after, na, sizeof(na));
        cm_text_escape(r->key_type, key, 24);
        snprintf(key + strlen(key), sizeof(key) - strlen(key), "-%u", r->key_bits);
        cm_text_escape(r->sha256, sha, sizeof(sha));
        cm_text_escape(r->subject, subj, sizeof(subj));
        cm_text_escape(r->sans, sans, sizeof(sans));
        cm_text_escape(r->issuer, iss, sizeof(iss));
        printf("%-20s %-20s %-20s %-9s %-16s  %s\n", first, last, na, key, sha, subj);
        printf("%-90s  sans: %s\n%-90s  issuer: %s\n", "", sans[0] ? sans : "-", "", iss);
        if (r->trust != CM_TRUST_UNKNOWN)
            printf("%-90s  trust: %s\n", "", cm_leaf_trust_name(r->trust));
    }
}

static int history(const char *config, const char *target, bool as_json)
{
    struct cm_config *cfg = NULL;
    struct cm_config_errors errs = {0};
    struct cm_history_row *rows = NULL;
    size_t n = 0;
    char err[600];
    int rc;

    if ((rc = cm_config_load(config, &cfg, &errs)) < 0) {
        for (size_t i = 0; i < errs.count; i++)
            fprintf(stderr, "certmon: %s\n", errs.msgs[i]);
        if (errs.count == 0)
            fprintf(stderr, "certmon: cannot load %s: %s\n", config, cm_strerror(rc));
        cm_config_errors_clear(&errs);
        return 1;
    }
    cm_config_errors_clear(&errs);
    if (!cfg->state_file) {
        fprintf(stderr, "certmon history: %s sets no global.state_file: there is no history\n",
                config);
        cm_config_free(cfg);
        return 1;
    }
    if ((rc = cm_store_history(cfg->state_file, target, &rows, &n, err, sizeof(err))) < 0 &&
        configured(cfg, target)) {
        fprintf(stderr, "certmon history: %s\n", err);
        cm_config_free(cfg);
        return 1;
    }
    /* A file that a file entry's glob or directory found is no configured name of its own:
     * its rows say it is known. */
    if (!configured(cfg, target) && n == 0) {
        char esc[512];
        cm_text_escape(target, esc, sizeof(esc));
        fprintf(stderr,
                "certmon history: %s configures no target named '%s', and the history has no "
                "rows of that name\n",
                config, esc);
        cm_config_free(cfg);
        return 1;
    }
    rc = 0;
    if (as_json) {
        json_t *j = cm_history_json(rows, n);
        if (!j || json_dumpf(j, stdout, JSON_INDENT(2)) < 0) {
            fprintf(stderr, "certmon history: out of memory\n");
            rc = -1;
        }
        putchar('\n');
        json_decref(j);
    } else {
        print_history(rows, n);
    }
    cm_history_free(rows, n);
    cm_config_free(cfg);
    if (fflush(stdout) != 0)
        rc = -1;
    return rc < 0 ? 1 : 0;
}

/* The options `history` and `state export` share (-c FILE, --json, --help), parsed with
 * getopt from argv[0] on. Returns -1 to go on (*config and *as_json set, optind at the first
 * operand), else the exit code (0 for --help, 2 for a bad option, usage printed). */
static int parse_options(int argc, char **argv, const char *who, void (*usage_fn)(FILE *),
                         const char **config, bool *as_json)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    *config = DEFAULT_CONFIG;
    *as_json = false;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            *config = optarg;
            break;
        case 'j':
            *as_json = true;
            break;
        case 'h':
            usage_fn(stdout);
            return 0;
        case ':':
            fprintf(stderr, "%s: %s needs an argument\n", who, argv[optind - 1]);
            usage_fn(stderr);
            return 2;
        default:
            fprintf(stderr, "%s: unknown option '%s'\n", who, argv[optind - 1]);
            usage_fn(stderr);
            return 2;
        }
    }
    return -1;
}

int cm_history_main(int argc, char **argv)
{
    const char *config;
    bool as_json;
    int rc = parse_options(argc, argv, "certmon history", history_usage, &config, &as_json);

    if (rc >= 0)
        return rc;
    if (optind != argc - 1) {
        fprintf(stderr, optind >= argc ? "certmon history: name a target\n"
                                       : "certmon history: name one target\n");
        history_usage(stderr);
        return 2;
    }
    return history(config, argv[optind], as_json);
}

int cm_state_main(int argc, char **argv)
{
    const char *config;
    bool as_json;
    int rc;

    if (argc < 2 || strcmp(argv[1], "export") != 0) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            usage(stdout);
            return 0;
        }
        if (argc >= 2)
            fprintf(stderr, "certmon state: unknown subcommand '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    rc = parse_options(argc - 1, argv + 1, "certmon state export", usage, &config, &as_json);
    if (rc >= 0)
        return rc;
    if (optind < argc - 1) {
        fprintf(stderr, "certmon state export: unexpected argument '%s'\n", argv[1 + optind]);
        usage(stderr);
        return 2;
    }
    return export(config, as_json);
}
