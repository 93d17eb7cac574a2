/* Prometheus file_sd documents: bytes of a discovery file -> a list of target groups.
 *
 * The format is Prometheus's (https://prometheus.io/docs/guides/file-sd/): a JSON array, or a
 * YAML sequence, of groups `{"targets": ["host:port", ...], "labels": {"name": "value"}}`.
 * Both keys may be absent; any other key is an error (Prometheus reads the file strictly too).
 * This module only reads the structure: it checks types and sizes, not what the strings mean
 * (host syntax, label rules and the reserved `__certmon_*` keys are the configuration's, see
 * cm_config_discover). Pure: no I/O, no clock; safe on any thread.
 *
 * YAML aliases are refused (an alias bomb costs nothing to write and everything to expand), as
 * is a second document; scalars are taken as the text written (tags are not interpreted). */
#ifndef CERTMON_FILESD_H
#define CERTMON_FILESD_H

#include <stddef.h>

/* Bounds of one discovery file: anything beyond them is an error naming the bound. */
#define CM_SD_MAX_BYTES (16u * 1024 * 1024) /* the file */
#define CM_SD_MAX_TARGETS 100000u           /* targets of all its groups together */
#define CM_SD_MAX_LABELS 64u                /* labels of one group */
#define CM_SD_MAX_STRING 4096u              /* one target, label name or label value, bytes */

enum cm_sd_format {
    CM_SD_JSON = 0,
    CM_SD_YAML,
};

struct cm_sd_label {
    char *name;  /* as written (not yet checked against the label rule); owned */
    char *value; /* as written; owned */
};

/* One element of the document. */
struct cm_sd_group {
    char **targets; /* as written ("host:port"); owned */
    int *target_lines; /* line of each target (from 1), or 0 when the format gives none (JSON) */
    size_t target_count;
    struct cm_sd_label *labels; /* in the order written; names unique */
    size_t label_count;
    int line; /* of the group (from 1), or 0 when the format gives none */
};

/* A parsed document: plain data, owned by whoever holds it (cm_sd_doc_clear). */
struct cm_sd_doc {
    struct cm_sd_group *groups;
    size_t count;
    size_t targets; /* over all groups */
};

/* The format a discovery file's name implies: ".json" -> JSON, ".yml" or ".yaml" -> YAML (any
 * case). Returns 0 with *out set, or -1 for any other name. */
int cm_sd_format_of(const char *path, enum cm_sd_format *out);

/* Parses len bytes of buf (no NUL needed; a NUL byte inside is an error) as fmt. Returns 0 with
 * the groups in *out (zeroed or cleared beforehand), CM_EBADARG with a reason in err and the
 * line it concerns in *line (0 when not known; line may be NULL) and *out empty, or -ENOMEM
 * (*out empty). An empty YAML document or an empty JSON array is an empty list (count 0). */
int cm_sd_parse(const char *buf, size_t len, enum cm_sd_format fmt, struct cm_sd_doc *out,
                char *err, size_t errlen, int *line);

/* Frees what doc holds and zeroes it. NULL is a no-op. */
void cm_sd_doc_clear(struct cm_sd_doc *doc);

#endif
