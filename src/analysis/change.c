/* Renewal or material change (see change.h). */
#include "certmon/analysis/change.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names sorted and joined: two certificates that list the same names in another order
 * are alike. */
static char *sorted_join(char *const *names, size_t count)
{
    char **v = NULL;
    size_t len = 1, off = 0;
    char *out;

    if (count && !(v = malloc(count * sizeof(*v))))
        return NULL;
    for (size_t i = 0; i < count; i++) {
        v[i] = names[i];
        len += strlen(v[i]) + 2;
    }
    if (count)
        qsort(v, count, sizeof(*v), cmp_str);
    if ((out = malloc(len))) {
        for (size_t i = 0; i < count; i++) {
            size_t l = strlen(v[i]);
            if (i) {
                memcpy(out + off, ", ", 2);
                off += 2;
            }
            memcpy(out + off, v[i], l);
            off += l;
        }
        out[off] = '\0';
    }
    free(v);
    return out;
}

int cm_leaf_summary_of(const struct cm_cert *c, struct cm_leaf_summary *out)
{
    memset(out, 0, sizeof(*out));
    if (!c->sha256)
        return -EINVAL;
    out->key_bits = c->key_bits;
    out->not_after = c->not_after;
    if (!(out->sha256 = strdup(c->sha256)) ||
        !(out->subject = strdup(c->subject ? c->subject : "")) ||
        !(out->issuer = strdup(c->issuer ? c->issuer : "")) ||
        !(out->key_type = strdup(c->key_type ? c->key_type : "")) ||
        !(out->sans = sorted_join(c->sans, c->san_count)) ||
        (c->spki_sha256 && *c->spki_sha256 && !(out->spki_sha256 = strdup(c->spki_sha256)))) {
        cm_leaf_summary_clear(out);
        return -ENOMEM;
    }
    return 0;
}

int cm_leaf_summary_from(const char *sha256, const char *subject, const char *issuer,
                         const char *sans, const char *key_type, unsigned key_bits,
                         int64_t not_after, struct cm_leaf_summary *out)
{
    char *copy = strdup(sans), **v = NULL, *p;
    size_t n = 0, cap = 1;

    memset(out, 0, sizeof(*out));
    if (!copy)
        return -ENOMEM;
    for (p = copy; (p = strstr(p, ", ")); p += 2)
        cap++;
    if (!(v = malloc(cap * sizeof(*v)))) {
        free(copy);
        return -ENOMEM;
    }
    for (p = copy; *p;) {
        char *e = strstr(p, ", ");
        v[n++] = p;
        if (!e)
            break;
        *e = '\0';
        p = e + 2;
    }
    out->key_bits = key_bits;
    out->not_after = not_after;
    if (!(out->sha256 = strdup(sha256)) || !(out->subject = strdup(subject)) ||
        !(out->issuer = strdup(issuer)) || !(out->key_type = strdup(key_type)) ||
        !(out->sans = sorted_join(v, n))) {
        cm_leaf_summary_clear(out);
        free(v);
        free(copy);
        return -ENOMEM;
    }
    free(v);
    free(copy);
    return 0;
}

void cm_leaf_summary_clear(struct cm_leaf_summary *s)
{
    free(s->sha256);
    free(s->subject);
    free(s->issuer);
    free(s->sans);
    free(s->key_type);
    free(s->spki_sha256);
    memset(s, 0, sizeof(*s));
}

int cm_leaf_summary_copy(const struct cm_leaf_summary *src, struct cm_leaf_summary *out)
{
    *out = *src;
    out->sha256 = out->subject = out->issuer = out->sans = out->key_type = out->spki_sha256 = NULL;
    if (!(out->sha256 = strdup(src->sha256)) || !(out->subject = strdup(src->subject)) ||
        !(out->issuer = strdup(src->issuer)) || !(out->sans = strdup(src->sans)) ||
        !(out->key_type = strdup(src->key_type)) ||
        (src->spki_sha256 && !(out->spki_sha256 = strdup(src->spki_sha256)))) {
        cm_leaf_summary_clear(out);
        return -ENOMEM;
    }
    return 0;
}

/* Appends "; "-separated text to what (cut at len). */
static void add(char *what, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void add(char *what, size_t len, const char *fmt, ...)
{
    size_t off = strlen(what);
    va_list ap;

    if (off && off + 2 < len) {
        memcpy(what + off, "; ", 3);
        off += 2;
    }
    if (off + 1 >= len)
        return;
    va_start(ap, fmt);
    vsnprintf(what + off, len - off, fmt, ap);
    va_end(ap);
}

/* Whether name is in the ", "-joined list. */
static bool in_list(const char *list, const char *name, size_t nlen)
{
    const char *p = list;

    while (*p) {
        const char *e = strstr(p, ", ");
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == nlen && !memcmp(p, name, l))
            return true;
        if (!e)
            break;
        p = e + 2;
    }
    return false;
}

/* Appends "LABEL: a, b" for the names of a missing from b. */
static void add_missing(char *what, size_t len, const char *label, const char *a, const char *b)
{
    char buf[512] = "";
    size_t off = 0;
    const char *p = a;

    while (*p) {
        const char *e = strstr(p, ", ");
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (!in_list(b, p, l)) {
            int n = snprintf(buf + off, sizeof(buf) - off, "%s%.*s", off ? ", " : "", (int)l, p);
            if (n < 0 || (size_t)n >= sizeof(buf) - off)
                break;
            off += (size_t)n;
        }
        if (!e)
            break;
        p = e + 2;
    }
    if (off)
        add(what, len, "%s: %s", label, buf);
}

/* From publicly trusted to private or untrusted, or back; an unknown side tells nothing. */
static bool trust_flip(const struct cm_leaf_summary *old, const struct cm_leaf_summary *cur)
{
    return old->trust != CM_TRUST_UNKNOWN && cur->trust != CM_TRUST_UNKNOWN &&
           (old->trust == CM_TRUST_PUBLIC) != (cur->trust == CM_TRUST_PUBLIC);
}

enum cm_change_kind cm_change_classify(const struct cm_leaf_summary *old,
                                       const struct cm_leaf_summary *cur, char *what,
                                       size_t len)
{
    if (len)
        what[0] = '\0';
    if (!strcmp(old->sha256, cur->sha256))
        return CM_CHANGE_NONE;
    if (strcmp(old->sans, cur->sans)) {
        add_missing(what, len, "SANs added", cur->sans, old->sans);
        add_missing(what, len, "SANs removed", old->sans, cur->sans);
    }
    if (strcmp(old->subject, cur->subject))
        add(what, len, "subject: %s -> %s", old->subject, cur->subject);
    if (strcmp(old->issuer, cur->issuer))
        add(what, len, "issuer: %s -> %s", old->issuer, cur->issuer);
    if (strcmp(old->key_type, cur->key_type) || cur->key_bits < old->key_bits)
        add(what, len, "key: %s-%u -> %s-%u", old->key_type, old->key_bits, cur->key_type,
            cur->key_bits);
    if (cur->not_after <= old->not_after)
        add(what, len, "not_after not later than before");
    if (trust_flip(old, cur))
        add(what, len, "trust: %s -> %s", cm_leaf_trust_name(old->trust),
            cm_leaf_trust_name(cur->trust));
    if (strcmp(old->sans, cur->sans) || strcmp(old->subject, cur->subject) ||
        strcmp(old->issuer, cur->issuer) || strcmp(old->key_type, cur->key_type) ||
        cur->key_bits < old->key_bits || cur->not_after <= old->not_after || trust_flip(old, cur))
        return CM_CHANGE_MATERIAL;
    return CM_CHANGE_RENEWAL;
}

enum cm_pin_step cm_pin_judge(const struct cm_leaf_summary *pin, const struct cm_leaf_summary *cur)
{
    char what[8];

    if (!strcmp(pin->sha256, cur->sha256))
        return CM_PIN_SAME;
    /* The holder of the pinned key made the new certificate: whatever else changed is for
     * cert.changed to tell, the pin holds. */
    if (pin->spki_sha256 && cur->spki_sha256 && *pin->spki_sha256 &&
        !strcmp(pin->spki_sha256, cur->spki_sha256))
        return CM_PIN_MOVE_KEY;
    if (cm_change_classify(pin, cur, what, sizeof(what)) == CM_CHANGE_RENEWAL)
        return CM_PIN_MOVE_RENEWAL;
    return CM_PIN_MISMATCH;
}

bool cm_deploy_newer(const struct cm_cert *served, const struct cm_cert *file)
{
    if (!served->sha256 || !file->sha256 || !strcmp(served->sha256, file->sha256) ||
        file->not_after <= served->not_after)
        return false;
    for (size_t i = 0; i < served->san_count; i++)
        for (size_t k = 0; k < file->san_count; k++)
            if (!strcasecmp(served->sans[i], file->sans[k]))
                return true;
    return false;
}

const char *cm_leaf_trust_name(enum cm_leaf_trust t)
{
    switch (t) {
    case CM_TRUST_PUBLIC:
        return "public";
    case CM_TRUST_PRIVATE:
        return "private";
    case CM_TRUST_UNTRUSTED:
        return "untrusted";
    default:
        return "unknown";
    }
}

enum cm_leaf_trust cm_leaf_trust_parse(const char *name)
{
    for (int t = CM_TRUST_PUBLIC; name && t <= CM_TRUST_UNTRUSTED; t++)
        if (!strcmp(name, cm_leaf_trust_name((enum cm_leaf_trust)t)))
            return (enum cm_leaf_trust)t;
    return CM_TRUST_UNKNOWN;
}

const char *cm_change_kind_name(enum cm_change_kind k)
{
    switch (k) {
    case CM_CHANGE_RENEWAL:
        return "renewal";
    case CM_CHANGE_MATERIAL:
        return "change";
    default:
        return "none";
    }
}
