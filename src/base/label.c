/* The label rule and the reserved list (include/certmon/base/label.h). */
#include "certmon/base/label.h"
#include "certmon/base/text.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Every label some certmon family sets itself (docs/metrics.md), the ones Alertmanager alerts
 * carry (docs/alerts.md) and Prometheus's own at scrape time. The order is the one
 * docs/configuration.md and the configuration's error message show. */
static const char *const reserved[] = {
    "target",  "position", "phase",    "id",       "severity", "status",    "version", "cipher",
    "subject", "issuer",   "serial",   "sha256",   "key",      "signature", "result",  "gnutls",
    "libuv",   "libcurl",  "notifier", "instance", "job",      "alertname", "finding",
};

/* ASCII only, whatever the locale (isalpha would follow LC_CTYPE). */
static bool name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

bool cm_label_reserved(const char *name)
{
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (!strcmp(name, reserved[i]))
            return true;
    return false;
}

const char *cm_label_reserved_text(void)
{
    static char text[512];

    /* Built once from the table (the table is constant, so racing builders write the same
     * bytes); 23 names fit well within the buffer. */
    if (!text[0]) {
        char buf[sizeof(text)];
        size_t off = 0;
        for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
            size_t l = strlen(reserved[i]);
            if (off + l + 3 > sizeof(buf))
                break;
            if (i) {
                memcpy(buf + off, ", ", 2);
                off += 2;
            }
            memcpy(buf + off, reserved[i], l);
            off += l;
        }
        buf[off] = '\0';
        memcpy(text, buf, off + 1);
    }
    return text;
}

enum cm_label_problem cm_label_check_name(const char *name)
{
    if (!name || !name_start(name[0]))
        return CM_LABEL_BAD_NAME;
    for (const char *p = name + 1; *p; p++)
        if (!name_char(*p))
            return CM_LABEL_BAD_NAME;
    if (name[0] == '_' && name[1] == '_')
        return CM_LABEL_DUNDER;
    if (cm_label_reserved(name))
        return CM_LABEL_RESERVED;
    return CM_LABEL_OK;
}

enum cm_label_problem cm_label_check_value(const char *value, size_t len)
{
    if (!value || len == 0)
        return CM_LABEL_EMPTY_VALUE;
    return cm_utf8_valid(value, len) ? CM_LABEL_OK : CM_LABEL_BAD_VALUE;
}

bool cm_label_ok(const char *name, const char *value)
{
    return cm_label_check_name(name) == CM_LABEL_OK &&
           cm_label_check_value(value, value ? strlen(value) : 0) == CM_LABEL_OK;
}

void cm_labels_clear(struct cm_labels *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->keys[i]);
        free(l->values[i]);
    }
    free(l->keys);
    free(l->values);
    memset(l, 0, sizeof(*l));
}

int cm_labels_copy(struct cm_labels *dst, const struct cm_labels *src)
{
    memset(dst, 0, sizeof(*dst));
    if (!src || src->count == 0)
        return 0;
    dst->keys = calloc(src->count, sizeof(char *));
    dst->values = calloc(src->count, sizeof(char *));
    if (!dst->keys || !dst->values)
        goto fail;
    for (size_t i = 0; i < src->count; i++) {
        dst->keys[i] = strdup(src->keys[i] ? src->keys[i] : "");
        dst->values[i] = strdup(src->values[i] ? src->values[i] : "");
        dst->count = i + 1;
        if (!dst->keys[i] || !dst->values[i])
            goto fail;
    }
    return 0;
fail:
    cm_labels_clear(dst);
    return -ENOMEM;
}
