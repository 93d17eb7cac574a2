/* Prometheus file_sd documents (include/certmon/config/filesd.h). JSON through jansson, YAML
 * through libyaml's event parser: the events arrive in document order with their marks, so a
 * problem names its line, and the fixed shape of the format is a small state machine that
 * stops at the first event out of place (no tree of an unknown depth is ever built). */
#include "certmon/config/filesd.h"
#include "certmon/base/error.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

int cm_sd_format_of(const char *path, enum cm_sd_format *out)
{
    const char *dot = path ? strrchr(path, '.') : NULL;

    if (!dot || strchr(dot, '/'))
        return -1;
    if (!strcasecmp(dot, ".json")) {
        *out = CM_SD_JSON;
        return 0;
    }
    if (!strcasecmp(dot, ".yml") || !strcasecmp(dot, ".yaml")) {
        *out = CM_SD_YAML;
        return 0;
    }
    return -1;
}

void cm_sd_doc_clear(struct cm_sd_doc *doc)
{
    if (!doc)
        return;
    for (size_t i = 0; i < doc->count; i++) {
        struct cm_sd_group *g = &doc->groups[i];
        for (size_t k = 0; k < g->target_count; k++)
            free(g->targets[k]);
        free(g->targets);
        free(g->target_lines);
        for (size_t k = 0; k < g->label_count; k++) {
            free(g->labels[k].name);
            free(g->labels[k].value);
        }
        free(g->labels);
    }
    free(doc->groups);
    memset(doc, 0, sizeof(*doc));
}

/* ---- Building the document, with its bounds ---- */

struct sdb {
    struct cm_sd_doc *doc;
    size_t capgroups, captargets; /* of doc->groups, of the current group's targets */
    char *err;
    size_t errlen;
    int *line;
};

static int fail(struct sdb *b, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(struct sdb *b, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(b->err, b->errlen, fmt, ap);
    va_end(ap);
    if (b->line)
        *b->line = line;
    return CM_EBADARG;
}

static int add_group(struct sdb *b, int line)
{
    struct cm_sd_doc *d = b->doc;

    if (d->count == b->capgroups) {
        size_t cap = b->capgroups ? 2 * b->capgroups : 8;
        struct cm_sd_group *n = realloc(d->groups, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        d->groups = n;
        b->capgroups = cap;
    }
    d->groups[d->count++] = (struct cm_sd_group){.line = line};
    b->captargets = 0;
    return 0;
}

/* A string of the document: at most CM_SD_MAX_STRING bytes and no NUL (what a C string holds). */
static int check_string(struct sdb *b, const char *s, size_t len, int line, const char *what,
                        size_t gi)
{
    if (len > CM_SD_MAX_STRING)
        return fail(b, line, "group %zu: %s longer than %u bytes", gi, what, CM_SD_MAX_STRING);
    if (memchr(s, '\0', len))
        return fail(b, line, "group %zu: %s holds a NUL character", gi, what);
    return 0;
}

static int add_target(struct sdb *b, const char *s, size_t len, int line)
{
    struct cm_sd_doc *d = b->doc;
    struct cm_sd_group *g = &d->groups[d->count - 1];
    int rc;

    if ((rc = check_string(b, s, len, line, "a target", d->count - 1)) < 0)
        return rc;
    if (d->targets >= CM_SD_MAX_TARGETS)
        return fail(b, line, "more than %u targets in one file", CM_SD_MAX_TARGETS);
    if (g->target_count == b->captargets) {
        size_t cap = b->captargets ? 2 * b->captargets : 4;
        char **n = realloc(g->targets, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        g->targets = n;
        int *l = realloc(g->target_lines, cap * sizeof(*l));
        if (!l)
            return -ENOMEM;
        g->target_lines = l;
        b->captargets = cap;
    }
    if (!(g->targets[g->target_count] = strndup(s, len)))
        return -ENOMEM;
    g->target_lines[g->target_count++] = line;
    d->targets++;
    return 0;
}

static int add_label(struct sdb *b, const char *name, size_t nlen, const char *value, size_t vlen,
                     int line)
{
    struct cm_sd_doc *d = b->doc;
    struct cm_sd_group *g = &d->groups[d->count - 1];
    struct cm_sd_label *n;
    int rc;

    if ((rc = check_string(b, name, nlen, line, "a label name", d->count - 1)) < 0 ||
        (rc = check_string(b, value, vlen, line, "a label value", d->count - 1)) < 0)
        return rc;
    for (size_t i = 0; i < g->label_count; i++)
        if (strlen(g->labels[i].name) == nlen && !memcmp(g->labels[i].name, name, nlen))
            return fail(b, line, "group %zu: label '%.*s' given twice", d->count - 1,
                        (int)(nlen > 64 ? 64 : nlen), name);
    if (g->label_count >= CM_SD_MAX_LABELS)
        return fail(b, line, "group %zu: more than %u labels", d->count - 1, CM_SD_MAX_LABELS);
    /* At most CM_SD_MAX_LABELS: growing one by one costs nothing that matters. */
    if (!(n = realloc(g->labels, (g->label_count + 1) * sizeof(*n))))
        return -ENOMEM;
    g->labels = n;
    n = &g->labels[g->label_count];
    n->name = strndup(name, nlen);
    n->value = strndup(value, vlen);
    if (!n->name || !n->value) {
        free(n->name);
        free(n->value);
        return -ENOMEM;
    }
    g->label_count++;
    return 0;
}

/* ---- JSON ---- */

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

static int json_group(struct sdb *b, json_t *o, size_t gi)
{
    const char *key;
    json_t *v;
    int rc;

    if (!json_is_object(o))
        return fail(b, 0, "group %zu: expected an object {\"targets\": [...], \"labels\": {...}}, "
                          "found %s",
                    gi, json_kind(o));
    if ((rc = add_group(b, 0)) < 0)
        return rc;
    json_object_foreach(o, key, v)
    {
        if (!strcmp(key, "targets")) {
            size_t i;
            json_t *t;
            if (json_is_null(v))
                continue;
            if (!json_is_array(v))
                return fail(b, 0, "group %zu: targets: expected an array of strings, found %s",
                            gi, json_kind(v));
            json_array_foreach(v, i, t)
            {
                if (!json_is_string(t))
                    return fail(b, 0, "group %zu: targets[%zu]: expected a string, found %s", gi,
                                i, json_kind(t));
                if ((rc = add_target(b, json_string_value(t), json_string_length(t), 0)) < 0)
                    return rc;
            }
        } else if (!strcmp(key, "labels")) {
            const char *lk;
            json_t *lv;
            if (json_is_null(v))
                continue;
            if (!json_is_object(v))
                return fail(b, 0, "group %zu: labels: expected an object of strings, found %s",
                            gi, json_kind(v));
            json_object_foreach(v, lk, lv)
            {
                if (!json_is_string(lv))
                    return fail(b, 0, "group %zu: labels.%.64s: expected a string, found %s", gi,
                                lk, json_kind(lv));
                if ((rc = add_label(b, lk, strlen(lk), json_string_value(lv),
                                    json_string_length(lv), 0)) < 0)
                    return rc;
            }
        } else {
            return fail(b, 0, "group %zu: unknown key '%.64s' (a group has targets and labels)",
                        gi, key);
        }
    }
    return 0;
}

static int parse_json(struct sdb *b, const char *buf, size_t len)
{
    json_error_t je;
    json_t *root, *g;
    size_t i;
    int rc = 0;

    /* Duplicate keys are refused: which of two "labels" objects counts would be a guess. */
    if (!(root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je))) {
        if (json_error_code(&je) == json_error_out_of_memory)
            return -ENOMEM;
        return fail(b, je.line > 0 ? je.line : 0, "not valid JSON: %s", je.text);
    }
    if (!json_is_array(root)) {
        rc = fail(b, 1, "expected an array of groups [{\"targets\": [...]}, ...], found %s",
                  json_kind(root));
    } else {
        json_array_foreach(root, i, g)
        {
            if ((rc = json_group(b, g, i)) < 0)
                break;
        }
    }
    json_decref(root);
    return rc;
}

/* ---- YAML ---- */

struct yparse {
    struct sdb *b;
    yaml_parser_t p;
    yaml_event_t ev;
    bool have; /* ev holds an event to delete */
};

static int yline(const yaml_event_t *ev)
{
    return (int)ev->start_mark.line + 1;
}

static const char *yaml_kind(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return "a scalar";
    case YAML_SEQUENCE_START_EVENT:
        return "a list";
    case YAML_MAPPING_START_EVENT:
        return "a mapping";
    case YAML_ALIAS_EVENT:
        return "an alias";
    default:
        return "the end of a list or mapping";
    }
}

/* The next event into y->ev. Aliases are refused here, once for every place. */
static int ynext(struct yparse *y)
{
    if (y->have) {
        yaml_event_delete(&y->ev);
        y->have = false;
    }
    if (!yaml_parser_parse(&y->p, &y->ev)) {
        if (y->p.error == YAML_MEMORY_ERROR)
            return -ENOMEM;
        return fail(y->b, (int)y->p.problem_mark.line + 1, "not valid YAML: %s%s%s",
                    y->p.problem ? y->p.problem : "syntax error", y->p.context ? " " : "",
                    y->p.context ? y->p.context : "");
    }
    y->have = true;
    if (y->ev.type == YAML_ALIAS_EVENT)
        return fail(y->b, yline(&y->ev), "YAML aliases (*name) are not supported");
    return 0;
}

/* A plain scalar that YAML reads as null: an absent value. */
static bool ynull(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;

    if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
           !strcmp(v, "NULL");
}

static int yaml_targets(struct yparse *y, size_t gi)
{
    int rc;

    if ((rc = ynext(y)) < 0)
        return rc;
    if (ynull(&y->ev))
        return 0;
    if (y->ev.type != YAML_SEQUENCE_START_EVENT)
        return fail(y->b, yline(&y->ev), "group %zu: targets: expected a list of strings, found %s",
                    gi, yaml_kind(&y->ev));
    for (size_t i = 0;; i++) {
        if ((rc = ynext(y)) < 0)
            return rc;
        if (y->ev.type == YAML_SEQUENCE_END_EVENT)
            return 0;
        if (y->ev.type != YAML_SCALAR_EVENT)
            return fail(y->b, yline(&y->ev), "group %zu: targets[%zu]: expected a string, found %s",
                        gi, i, yaml_kind(&y->ev));
        if ((rc = add_target(y->b, (const char *)y->ev.data.scalar.value, y->ev.data.scalar.length,
                             yline(&y->ev))) < 0)
            return rc;
    }
}

static int yaml_labels(struct yparse *y, size_t gi)
{
    char *name = NULL;
    size_t nlen = 0;
    int line, rc;

    if ((rc = ynext(y)) < 0)
        return rc;
    if (ynull(&y->ev))
        return 0;
    if (y->ev.type != YAML_MAPPING_START_EVENT)
        return fail(y->b, yline(&y->ev), "group %zu: labels: expected a mapping of strings, found %s",
                    gi, yaml_kind(&y->ev));
    for (;;) {
        if ((rc = ynext(y)) < 0)
            return rc;
        if (y->ev.type == YAML_MAPPING_END_EVENT)
            return 0;
        if (y->ev.type != YAML_SCALAR_EVENT)
            return fail(y->b, yline(&y->ev), "group %zu: labels: a label name must be a string, "
                                             "found %s",
                        gi, yaml_kind(&y->ev));
        nlen = y->ev.data.scalar.length;
        line = yline(&y->ev);
        if (!(name = malloc(nlen + 1)))
            return -ENOMEM;
        memcpy(name, y->ev.data.scalar.value, nlen + 1);
        if ((rc = ynext(y)) < 0) {
            free(name);
            return rc;
        }
        if (y->ev.type != YAML_SCALAR_EVENT) {
            rc = fail(y->b, yline(&y->ev), "group %zu: labels.%.64s: expected a string, found %s",
                      gi, name, yaml_kind(&y->ev));
            free(name);
            return rc;
        }
        /* A null value is an empty one: the label rule then says why it cannot be. */
        rc = add_label(y->b, name, nlen, ynull(&y->ev) ? "" : (const char *)y->ev.data.scalar.value,
                       ynull(&y->ev) ? 0 : y->ev.data.scalar.length, line);
        free(name);
        if (rc < 0)
            return rc;
    }
}

static int yaml_group(struct yparse *y, size_t gi)
{
    bool seen_t = false, seen_l = false;
    int rc;

    if (y->ev.type != YAML_MAPPING_START_EVENT)
        return fail(y->b, yline(&y->ev),
                    "group %zu: expected a mapping {targets: [...], labels: {...}}, found %s", gi,
                    yaml_kind(&y->ev));
    if ((rc = add_group(y->b, yline(&y->ev))) < 0)
        return rc;
    for (;;) {
        const char *key;
        if ((rc = ynext(y)) < 0)
            return rc;
        if (y->ev.type == YAML_MAPPING_END_EVENT)
            return 0;
        if (y->ev.type != YAML_SCALAR_EVENT)
            return fail(y->b, yline(&y->ev), "group %zu: a key must be a string, found %s", gi,
                        yaml_kind(&y->ev));
        key = (const char *)y->ev.data.scalar.value;
        if (!strcmp(key, "targets") && !seen_t) {
            seen_t = true;
            rc = yaml_targets(y, gi);
        } else if (!strcmp(key, "labels") && !seen_l) {
            seen_l = true;
            rc = yaml_labels(y, gi);
        } else if (!strcmp(key, "targets") || !strcmp(key, "labels")) {
            rc = fail(y->b, yline(&y->ev), "group %zu: '%s' given twice", gi, key);
        } else {
            rc = fail(y->b, yline(&y->ev),
                      "group %zu: unknown key '%.64s' (a group has targets and labels)", gi, key);
        }
        if (rc < 0)
            return rc;
    }
}

/* stream-start, [document-start, root, document-end], stream-end: the root a list of groups
 * or null (an empty file). */
static int yaml_doc(struct yparse *y)
{
    int rc;

    if ((rc = ynext(y)) < 0) /* stream start */
        return rc;
    if ((rc = ynext(y)) < 0)
        return rc;
    if (y->ev.type == YAML_STREAM_END_EVENT)
        return 0;
    if ((rc = ynext(y)) < 0) /* past document start: the root */
        return rc;
    if (ynull(&y->ev)) {
        /* null: no groups */
    } else if (y->ev.type != YAML_SEQUENCE_START_EVENT) {
        return fail(y->b, yline(&y->ev),
                    "expected a list of groups (- targets: [...]), found %s", yaml_kind(&y->ev));
    } else {
        for (size_t gi = 0;; gi++) {
            if ((rc = ynext(y)) < 0)
                return rc;
            if (y->ev.type == YAML_SEQUENCE_END_EVENT)
                break;
            if ((rc = yaml_group(y, gi)) < 0)
                return rc;
        }
    }
    if ((rc = ynext(y)) < 0) /* document end */
        return rc;
    if ((rc = ynext(y)) < 0)
        return rc;
    if (y->ev.type != YAML_STREAM_END_EVENT)
        return fail(y->b, yline(&y->ev), "more than one YAML document (---): give one list");
    return 0;
}

static int parse_yaml(struct sdb *b, const char *buf, size_t len)
{
    struct yparse y = {.b = b};
    int rc;

    if (!yaml_parser_initialize(&y.p))
        return -ENOMEM;
    yaml_parser_set_input_string(&y.p, (const unsigned char *)buf, len);
    rc = yaml_doc(&y);
    if (y.have)
        yaml_event_delete(&y.ev);
    yaml_parser_delete(&y.p);
    return rc;
}

int cm_sd_parse(const char *buf, size_t len, enum cm_sd_format fmt, struct cm_sd_doc *out,
                char *err, size_t errlen, int *line)
{
    struct sdb b = {.doc = out, .err = err, .errlen = errlen, .line = line};
    const char *nul;
    int rc;

    memset(out, 0, sizeof(*out));
    if (line)
        *line = 0;
    if (len > CM_SD_MAX_BYTES)
        return fail(&b, 0, "larger than %u MiB", CM_SD_MAX_BYTES / (1024 * 1024));
    if ((nul = memchr(buf, '\0', len))) {
        int l = 1;
        for (const char *p = buf; p < nul; p++)
            l += *p == '\n';
        return fail(&b, l, "holds a NUL byte");
    }
    rc = fmt == CM_SD_JSON ? parse_json(&b, buf, len) : parse_yaml(&b, buf, len);
    if (rc < 0)
        cm_sd_doc_clear(out);
    return rc;
}
