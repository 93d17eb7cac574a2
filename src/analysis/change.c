/* Renewal or material change (see change.h). */
#include "certmon/analysis/change.h"
#include "certmon/base/intern.h"
#include "certmon/base/text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The texts of a summary, borrowed while it is built (NULL: absent). */
struct summary_texts {
    const char *subject, *issuer, *key_type;
};

/* Copies s (NULL: NULL) to *at and moves *at past it. */
static const char *place(char **at, const char *s)
{
    size_t n;
    char *d = *at;

    if (!s)
        return NULL;
    n = strlen(s) + 1;
    memcpy(d, s, n);
    *at += n;
    return d;
}

static size_t text_size(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

/* Whether hex is a SHA-256 in hex digits; its bytes into out. */
static bool sha256_of(const char *hex, unsigned char *out)
{
    return hex && cm_hex_decode(hex, out, CM_SHA256_LEN) == CM_SHA256_LEN;
}

/* Takes shared copies of issuer and key_type into s ("" for NULL). Returns 0 or -ENOMEM
 * (neither held then). */
static int hold_shared(struct cm_leaf_summary *s, const char *issuer, const char *key_type)
{
    s->issuer = cm_intern(issuer ? issuer : "");
    s->key_type = cm_intern(key_type ? key_type : "");
    if (s->issuer && s->key_type)
        return 0;
    cm_intern_release(s->issuer);
    cm_intern_release(s->key_type);
    s->issuer = s->key_type = NULL;
    return -ENOMEM;
}

/* Fills out's texts (issue 14: a summary per target is kept for the whole run; several small
 * allocations cost more in malloc's chunk overhead than in text): subject and the SAN names
 * (count of them, borrowed) in one block, subject first so that it is the block
 * cm_leaf_summary_clear frees, the names sorted and joined with ", " so that two certificates
 * that list the same names in another order are alike; issuer and key type shared. Only the
 * text fields of out are written. Returns 0 or -ENOMEM (out's text fields NULL). */
static int summary_fill(struct cm_leaf_summary *out, const struct summary_texts *t,
                        const char *const *names, size_t count)
{
    const char **v = NULL;
    size_t len = 1;
    char *at;

    out->subject = out->issuer = out->sans = out->key_type = NULL;
    if (count && !(v = malloc(count * sizeof(*v))))
        return -ENOMEM;
    for (size_t i = 0; i < count; i++) {
        v[i] = names[i];
        len += strlen(v[i]) + 2;
    }
    if (count)
        qsort(v, count, sizeof(*v), cm_cmp_strp);
    len += text_size(t->subject ? t->subject : "");
    if (!(at = malloc(len)) || hold_shared(out, t->issuer, t->key_type) < 0) {
        free(at);
        free(v);
        return -ENOMEM;
    }
    out->subject = place(&at, t->subject ? t->subject : "");
    out->sans = at;
    for (size_t i = 0; i < count; i++) {
        size_t l = strlen(v[i]);
        if (i) {
            memcpy(at, ", ", 2);
            at += 2;
        }
        memcpy(at, v[i], l);
        at += l;
    }
    *at = '\0';
    free(v);
    return 0;
}

int cm_leaf_summary_of(const struct cm_cert *c, struct cm_leaf_summary *out)
{
    struct summary_texts t = {c->subject, c->issuer, c->key_type};

    memset(out, 0, sizeof(*out));
    if (!sha256_of(c->sha256, out->sha256)) {
        memset(out, 0, sizeof(*out));
        return -EINVAL;
    }
    out->has_spki = sha256_of(c->spki_sha256, out->spki_sha256);
    out->key_bits = c->key_bits;
    out->not_after = c->not_after;
    if (summary_fill(out, &t, (const char *const *)c->sans, c->san_count) < 0) {
        memset(out, 0, sizeof(*out));
        return -ENOMEM;
    }
    return 0;
}

int cm_leaf_summary_from(const char *sha256, const char *subject, const char *issuer,
                         const char *sans, const char *key_type, unsigned key_bits,
                         int64_t not_after, struct cm_leaf_summary *out)
{
    struct summary_texts t = {subject, issuer, key_type};
    char *copy, *p;
    const char **v = NULL;
    size_t n = 0, cap = 1;
    int rc = -ENOMEM;

    memset(out, 0, sizeof(*out));
    if (!sha256_of(sha256, out->sha256)) {
        memset(out, 0, sizeof(*out));
        return -EINVAL;
    }
    if (!(copy = strdup(sans))) {
        memset(out, 0, sizeof(*out));
        return -ENOMEM;
    }
    for (p = copy; (p = strstr(p, ", ")); p += 2)
        cap++;
    if (!(v = malloc(cap * sizeof(*v))))
        goto out;
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
    rc = summary_fill(out, &t, v, n);
out:
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    free(v);
    free(copy);
    return rc;
}

bool cm_leaf_summary_is(const struct cm_leaf_summary *s, const char *sha256)
{
    unsigned char h[CM_SHA256_LEN];

    return sha256_of(sha256, h) && !memcmp(h, s->sha256, sizeof(h));
}

void cm_leaf_summary_clear(struct cm_leaf_summary *s)
{
    free((char *)s->subject); /* the block of subject and sans (summary_fill) */
    cm_intern_release(s->issuer);
    cm_intern_release(s->key_type);
    memset(s, 0, sizeof(*s));
}

struct cm_leaf_summary *cm_leaf_summary_new(const struct cm_leaf_summary *src)
{
    struct cm_leaf_summary *s =
        malloc(sizeof(*src) + text_size(src->subject) + text_size(src->sans));
    char *at;

    if (!s)
        return NULL;
    *s = *src;
    if (hold_shared(s, src->issuer, src->key_type) < 0) {
        free(s);
        return NULL;
    }
    at = (char *)(s + 1);
    s->subject = place(&at, src->subject);
    s->sans = place(&at, src->sans);
    return s;
}

void cm_leaf_summary_free(struct cm_leaf_summary *s)
{
    if (!s)
        return;
    cm_intern_release(s->issuer);
    cm_intern_release(s->key_type);
    free(s); /* the struct, subject and sans (cm_leaf_summary_new) */
}

int cm_leaf_summary_copy(const struct cm_leaf_summary *src, struct cm_leaf_summary *out)
{
    struct summary_texts t = {src->subject, src->issuer, src->key_type};

    *out = *src;
    /* src->sans is already sorted and joined: as the one name, it is copied as it is. */
    if (summary_fill(out, &t, &src->sans, 1) < 0) {
        memset(out, 0, sizeof(*out));
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
    if (!memcmp(old->sha256, cur->sha256, CM_SHA256_LEN))
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

    if (!memcmp(pin->sha256, cur->sha256, CM_SHA256_LEN))
        return CM_PIN_SAME;
    /* The holder of the pinned key made the new certificate: whatever else changed is for
     * cert.changed to tell, the pin holds. */
    if (pin->has_spki && cur->has_spki &&
        !memcmp(pin->spki_sha256, cur->spki_sha256, CM_SHA256_LEN))
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
