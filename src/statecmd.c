/* `certmon state export` and `certmon history`. */
#include "certmon/statecmd.h"
#include "certmon/base/error.h"
#include "certmon/base/text.h"
#include "certmon/config/config.h"
#include "certmon/daemon/state.h"
#include "certmon/daemon/store.h"
#include "certmon/http/httpc.h"
#include "certmon/probe/x509.h"

#include <errno.h>
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
          "                      of earlier versions; a daemon imports it from its state_file),\n"
          "                      with the notifiers' alerts and queued messages (\"alerts\",\n"
          "                      \"outbox\")\n"
          "Without --json: one line per entry: name, status, last probe, last success,\n"
          "consecutive failures and the ids of its findings; then the notifiers' alerts\n"
          "(pending or firing) and the messages waiting for delivery.\n",
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

/* ---- The notifiers' alerts and outbox (schema 6) ---- */

/* A JSON string of t, which the database held (anyone who can write the file can put anything
 * there): escaped (cm_text_escape) when it is not UTF-8, which a JSON document cannot carry;
 * JSON null for NULL. NULL when out of memory. */
static json_t *db_string(const char *t)
{
    char esc[4096];

    if (!t)
        return json_null();
    if (cm_utf8_valid(t, strlen(t)))
        return json_string(t);
    cm_text_escape(t, esc, sizeof(esc));
    return json_string(esc);
}

/* Member k of o, JSON null when absent (json_pack's "O" takes no NULL). */
static json_t *member(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);

    return v ? v : json_null();
}

/* The notifier names of the document cm_store_read_all made, sorted (its order is that of the
 * rows read, alerts first). NULL when out of memory; *n 0 gives a valid pointer too. */
static const char **notifier_names(json_t *doc, size_t *n)
{
    const char **v = malloc((json_object_size(doc) + 1) * sizeof(*v));
    const char *name;
    json_t *o;

    *n = 0;
    if (!v)
        return NULL;
    json_object_foreach(doc, name, o)
    {
        v[(*n)++] = name;
    }
    qsort(v, *n, sizeof(*v), cm_cmp_strp);
    return v;
}

/* The alert rows of the read (current_alerts, by notifier and seq), copied as they come and
 * made into JSON one at a time when printed: an export of 100,000 alerts takes 35 MB and
 * 0.9 s so, 326 MB and 2.1 s with a JSON object per alert held. */
struct alert_copy {
    char *notifier, *target, *id, *message; /* one allocation, at notifier */
    int position;
    int severity; /* enum cm_severity, -1 when the column is not a severity name */
    bool fired;
    int64_t started_at, fired_at, notified_at;
};

struct alert_list {
    struct alert_copy *v;
    size_t n, cap;
    bool oom;
};

static void alert_list_free(struct alert_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].notifier);
    free(l->v);
}

/* cm_store_alert_fn: appends a copy of the row (the strings are valid during the call only). */
static void collect_alert(void *arg, const char *notifier, const struct cm_alert_row *r)
{
    struct alert_list *l = arg;
    const char *src[4] = {notifier, r->target, r->id, r->message};
    size_t len[4], total = 0;
    struct alert_copy *c;
    char *p;

    if (l->oom)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        struct alert_copy *v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            l->oom = true;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    for (int i = 0; i < 4; i++)
        total += (len[i] = strlen(src[i] ? src[i] : "")) + 1;
    if (!(p = malloc(total))) {
        l->oom = true;
        return;
    }
    c = &l->v[l->n++];
    *c = (struct alert_copy){.position = r->position,
                             .severity = (int)r->severity,
                             .fired = r->fired,
                             .started_at = r->started_at,
                             .fired_at = r->fired_at,
                             .notified_at = r->notified_at};
    for (int i = 0; i < 4; i++) {
        char **dst[4] = {&c->notifier, &c->target, &c->id, &c->message};
        *dst[i] = p;
        memcpy(p, src[i] ? src[i] : "", len[i] + 1);
        p += len[i] + 1;
    }
}

/* A time as JSON: Unix seconds, or null when not set. */
static json_t *time_or_null(bool set, int64_t t)
{
    return set ? json_integer(t) : json_null();
}

/* One alert as the export shows it: pending until it fires, then firing; a resolved alert has
 * no row (its RESOLVED notice may still wait in the outbox). NULL when out of memory. */
static json_t *alert_json(const struct alert_copy *a)
{
    const char *sev = a->severity >= CM_SEV_OK && a->severity <= CM_SEV_CRITICAL
                          ? cm_severity_name((enum cm_severity)a->severity)
                          : NULL;

    return json_pack(
        "{s:o, s:o, s:o, s:i, s:s, s:o, s:o, s:I, s:o, s:o}", "notifier", db_string(a->notifier),
        "target", db_string(a->target), "finding", db_string(a->id), "position", a->position,
        "state", a->fired ? "firing" : "pending", "severity", sev ? json_string(sev) : json_null(),
        "message", db_string(a->message), "started_at", (json_int_t)a->started_at, "fired_at",
        time_or_null(a->fired, a->fired_at), "notified_at", time_or_null(a->fired, a->notified_at));
}

/* The notices of a queued message, without their messages and labels (the payload is rebuilt
 * from them at each attempt: what matters here is what is waiting). */
static json_t *notices_json(const json_t *notices)
{
    json_t *out = json_array(), *n;
    size_t i;

    if (!out)
        return NULL;
    json_array_foreach(notices, i, n)
    {
        json_t *o = json_pack("{s:o, s:o, s:o, s:O, s:o}", "kind",
                              db_string(json_string_value(json_object_get(n, "kind"))), "target",
                              db_string(json_string_value(json_object_get(n, "target"))), "finding",
                              db_string(json_string_value(json_object_get(n, "id"))), "position",
                              member(n, "position"), "severity",
                              db_string(json_string_value(json_object_get(n, "severity"))));
        if (json_array_append_new(out, o) < 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* One outbox row of notifier (read_outbox's object) as the export shows it: its destination
 * redacted (webhook URLs carry their tokens), and when the daemon gives it up: created_at +
 * the notifier's max_age (null when the configuration has no such notifier). The next attempt
 * is not stored: the daemon keeps its backoff in memory and tries again at once after a
 * restart. */
static json_t *outbox_json(const char *notifier, const json_t *m, const struct cm_config *cfg)
{
    const char *url = json_string_value(json_object_get(m, "url"));
    json_t *created = member(m, "created_at"), *expires = json_null();
    char red[1024];

    for (size_t i = 0; i < cfg->notifier_count; i++)
        if (!strcmp(cfg->notifiers[i].name, notifier) && cfg->notifiers[i].max_age_ms > 0 &&
            json_is_integer(created))
            expires = json_integer(json_integer_value(created) +
                                   (json_int_t)(cfg->notifiers[i].max_age_ms / 1000));
    if (url)
        cm_httpc_redact(url, red, sizeof(red));
    return json_pack("{s:o, s:O, s:o, s:b, s:O, s:O, s:o, s:o}", "notifier", db_string(notifier),
                     "seq", member(m, "seq"), "url", url ? db_string(red) : json_null(), "grouping",
                     json_is_true(json_object_get(m, "grouping")), "created_at", created,
                     "attempts", member(m, "attempts"), "expires_at", expires, "notices",
                     notices_json(json_object_get(m, "notices")));
}

/* The export's "outbox" array from the notifiers' document, by notifier, then in their order
 * of creation (as the alerts come). Returns 0 or -ENOMEM (*outbox NULL). */
static int outbox_array(json_t *doc, const struct cm_config *cfg, json_t **outbox)
{
    size_t n, i;
    const char **names = notifier_names(doc, &n);
    json_t *v;

    *outbox = json_array();
    for (size_t k = 0; names && *outbox && k < n; k++) {
        json_array_foreach(json_object_get(json_object_get(doc, names[k]), "queue"), i, v)
        {
            if (json_array_append_new(*outbox, outbox_json(names[k], v, cfg)) < 0)
                goto fail;
        }
    }
    if (names && *outbox) {
        free(names);
        return 0;
    }
fail:
    free(names);
    json_decref(*outbox);
    *outbox = NULL;
    return -ENOMEM;
}

/* A time member as the table shows it: RFC 3339, "-" for null. */
static void member_time(const json_t *o, const char *k, char *buf, size_t len)
{
    json_t *v = json_object_get(o, k);

    if (json_is_integer(v))
        cm_time_rfc3339(json_integer_value(v), buf, len);
    else
        snprintf(buf, len, "-");
}

/* A string member escaped for the terminal ("-" for null). */
static void member_text(const json_t *o, const char *k, char *buf, size_t len)
{
    const char *t = json_string_value(json_object_get(o, k));

    cm_text_escape(t ? t : "-", buf, len);
}

/* The alerts' section, each row made into its JSON object and printed from that, one at a
 * time. Returns 0 or -ENOMEM. */
static int print_alerts(const struct alert_list *l)
{
    printf("\nALERTS (%zu)\n", l->n);
    if (l->n == 0) {
        printf("none\n");
        return 0;
    }
    printf("%-16s %-40s %-24s %4s %-7s %-8s %-20s %-20s %s\n", "NOTIFIER", "TARGET", "FINDING",
           "POS", "STATE", "SEVERITY", "STARTED", "FIRED", "LAST NOTIFIED");
    for (size_t i = 0; i < l->n; i++) {
        char nt[256], target[1024], id[256], sev[64], msg[2048], started[32], fired[32],
            notified[32];
        json_t *a = alert_json(&l->v[i]);
        int pos = l->v[i].position;
        if (!a)
            return -ENOMEM;
        member_text(a, "notifier", nt, sizeof(nt));
        member_text(a, "target", target, sizeof(target));
        member_text(a, "finding", id, sizeof(id));
        member_text(a, "severity", sev, sizeof(sev));
        member_text(a, "message", msg, sizeof(msg));
        member_time(a, "started_at", started, sizeof(started));
        member_time(a, "fired_at", fired, sizeof(fired));
        member_time(a, "notified_at", notified, sizeof(notified));
        if (pos >= 0)
            printf("%-16s %-40s %-24s %4d ", nt, target, id, pos);
        else
            printf("%-16s %-40s %-24s %4s ", nt, target, id, "-");
        printf("%-7s %-8s %-20s %-20s %s\n", json_string_value(json_object_get(a, "state")), sev,
               started, fired, notified);
        printf("%-16s message: %s\n", "", msg);
        json_decref(a);
    }
    return 0;
}

static void print_outbox(const json_t *outbox)
{
    size_t i, j;
    json_t *m, *n;

    printf("\nOUTBOX (%zu)\n", json_array_size(outbox));
    if (json_array_size(outbox) == 0) {
        printf("none\n");
        return;
    }
    printf("%-16s %8s %-48s %-20s %8s  %s\n", "NOTIFIER", "SEQ", "URL", "CREATED", "ATTEMPTS",
           "GIVEN UP AT");
    json_array_foreach(outbox, i, m)
    {
        char nt[256], url[1024], created[32], expires[32];
        member_text(m, "notifier", nt, sizeof(nt));
        member_text(m, "url", url, sizeof(url));
        member_time(m, "created_at", created, sizeof(created));
        member_time(m, "expires_at", expires, sizeof(expires));
        printf("%-16s %8lld %-48s %-20s %8lld  %s\n", nt,
               (long long)json_integer_value(json_object_get(m, "seq")),
               json_is_true(json_object_get(m, "grouping")) ? "(grouping: joins the next message)"
                                                            : url,
               created, (long long)json_integer_value(json_object_get(m, "attempts")), expires);
        json_array_foreach(json_object_get(m, "notices"), j, n)
        {
            char kind[64], target[1024], id[256], sev[64];
            json_int_t pos = json_integer_value(json_object_get(n, "position"));
            member_text(n, "kind", kind, sizeof(kind));
            member_text(n, "target", target, sizeof(target));
            member_text(n, "finding", id, sizeof(id));
            member_text(n, "severity", sev, sizeof(sev));
            if (pos >= 0)
                printf("%-16s %8s %-8s %s %s #%lld %s\n", "", "", kind, target, id, (long long)pos,
                       sev);
            else
                printf("%-16s %8s %-8s %s %s %s\n", "", "", kind, target, id, sev);
        }
    }
}

/* Writes the state document (cm_state_serialize's text, which ends with the targets' "]}\n")
 * with the members "alerts" and "outbox" after "targets", one item per line as the targets
 * are. Returns 0 or -1 (the document does not end as expected, or out of memory). */
static int write_json(const char *text, size_t len, const struct alert_list *alerts,
                      const json_t *outbox)
{
    size_t i;
    json_t *v;

    if (len < 4 || memcmp(text + len - 4, "\n]}\n", 4) != 0)
        return -1;
    fwrite(text, 1, len - 2, stdout);
    fputs(",\"alerts\":[\n", stdout);
    for (i = 0; i < alerts->n; i++) {
        int rc = (v = alert_json(&alerts->v[i])) ? 0 : -1;
        if (rc == 0 && i)
            rc = fputs(",\n", stdout) < 0 ? -1 : 0;
        if (rc == 0)
            rc = json_dumpf(v, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(v);
        if (rc < 0)
            return -1;
    }
    printf("%s],\"outbox\":[\n", i ? "\n" : "");
    json_array_foreach(outbox, i, v)
    {
        if ((i && fputs(",\n", stdout) < 0) ||
            json_dumpf(v, stdout, JSON_COMPACT | JSON_ENSURE_ASCII) < 0)
            return -1;
    }
    printf("%s]", i ? "\n" : "");
    return fputs("}\n", stdout) < 0 ? -1 : 0;
}

static int export(const char *config, bool as_json)
{
    struct cm_config *cfg = NULL;
    struct cm_config_errors errs = {0};
    struct cm_state *s = NULL;
    json_t *notify = NULL, *outbox = NULL;
    struct alert_list alerts = {0};
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
    if (cm_state_new(&s) < 0 || (rc = cm_store_read_all(cfg->state_file, s, &notify, collect_alert,
                                                        &alerts, err, sizeof(err))) < 0) {
        fprintf(stderr, "certmon state export: %s\n", s ? err : "out of memory");
        alert_list_free(&alerts);
        cm_state_free(s);
        cm_config_free(cfg);
        return 1;
    }
    if (alerts.oom || outbox_array(notify, cfg, &outbox) < 0) {
        fprintf(stderr, "certmon state export: out of memory\n");
        rc = -1;
    } else if (as_json) {
        char *text;
        size_t len;
        if (cm_state_serialize(s, time(NULL), &text, &len) < 0) {
            fprintf(stderr, "certmon state export: out of memory\n");
            rc = -1;
        } else {
            if ((rc = write_json(text, len, &alerts, outbox)) < 0)
                fprintf(stderr, "certmon state export: cannot write the JSON document\n");
            free(text);
        }
    } else if ((rc = print_table(s) ? -1 : 0) == 0) {
        if ((rc = print_alerts(&alerts)) < 0)
            fprintf(stderr, "certmon state export: out of memory\n");
        else
            print_outbox(outbox);
    }
    alert_list_free(&alerts);
    json_decref(outbox);
    json_decref(notify);
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
        if (!j || json_dumpf(j, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII) < 0) {
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
