/* Target labels: the one rule for which label names and values certmon accepts, and the one
 * list of names it reserves. The configuration refuses what this rule refuses (with FILE:LINE),
 * and /metrics and the Alertmanager payload apply the same rule to what they are handed, so a
 * label that `certmon config-check` accepts reaches both unchanged (tests/unit/test_label.c).
 *
 * Names follow Prometheus: [A-Za-z_][A-Za-z0-9_]*, not starting with "__" (Prometheus keeps
 * those). Reserved: every label some certmon metric family or Alertmanager alert sets itself,
 * and the two Prometheus adds at scrape time (instance, job). Values: non-empty, well-formed
 * UTF-8 (cm_utf8_valid): the exposition format and JSON carry nothing else. */
#ifndef CERTMON_LABEL_H
#define CERTMON_LABEL_H

#include <stdbool.h>
#include <stddef.h>

/* Target labels (Prometheus label names and values), sorted by key, keys unique. Plain data;
 * strings owned (cm_labels_clear). */
struct cm_labels {
    char **keys;
    char **values;
    size_t count;
};

/* What is wrong with a label, if anything. */
enum cm_label_problem {
    CM_LABEL_OK = 0,
    CM_LABEL_BAD_NAME,    /* not [A-Za-z_][A-Za-z0-9_]* */
    CM_LABEL_DUNDER,      /* starts with "__": Prometheus's */
    CM_LABEL_RESERVED,    /* a name certmon, Alertmanager's alerts or Prometheus set */
    CM_LABEL_EMPTY_VALUE, /* Prometheus drops empty labels */
    CM_LABEL_BAD_VALUE,   /* not well-formed UTF-8, or holds a NUL */
};

/* The problem with name (NULL: BAD_NAME), in the order above: the first that applies. */
enum cm_label_problem cm_label_check_name(const char *name);

/* The problem with value (len bytes; NULL: EMPTY_VALUE). */
enum cm_label_problem cm_label_check_value(const char *value, size_t len);

/* True when the label name = value (NUL-terminated) passes both checks: what /metrics and the
 * Alertmanager payload keep. */
bool cm_label_ok(const char *name, const char *value);

/* True when name is on the reserved list. */
bool cm_label_reserved(const char *name);

/* The reserved names, comma-separated ("target, position, ..."), static; for messages. */
const char *cm_label_reserved_text(void);

/* Frees what l holds and zeroes it. */
void cm_labels_clear(struct cm_labels *l);

/* A deep copy of src (NULL or empty gives an empty dst). Returns 0 or -ENOMEM (dst then
 * empty). */
int cm_labels_copy(struct cm_labels *dst, const struct cm_labels *src);

#endif
