/* What changed when a target's served leaf changed: a renewal (an event) or a material change
 * (cert.changed). Pure: the daemon keeps the previous leaf's summary in memory and hands both
 * summaries in; nothing here reads a clock or a file. */
#ifndef CERTMON_CHANGE_H
#define CERTMON_CHANGE_H

#include <stddef.h>
#include <stdint.h>

#include "certmon/probe/x509.h"

/* The parts of a leaf that tell a renewal from a material change; strings owned. */
struct cm_leaf_summary {
    char *sha256;
    char *subject;
    char *issuer;
    char *sans;           /* the SANs sorted and joined with ", " (order does not count) */
    char *key_type;
    unsigned key_bits;
    int64_t not_after;
};

/* Fills *out from a certificate (which needs sha256). Returns 0, or -ENOMEM / -EINVAL (no
 * sha256) with *out empty. */
int cm_leaf_summary_of(const struct cm_cert *c, struct cm_leaf_summary *out);
void cm_leaf_summary_clear(struct cm_leaf_summary *s);

/* The same from stored parts (a history row: sans ", "-separated in any order). Returns 0 or
 * -ENOMEM with *out empty. */
int cm_leaf_summary_from(const char *sha256, const char *subject, const char *issuer,
                         const char *sans, const char *key_type, unsigned key_bits,
                         int64_t not_after, struct cm_leaf_summary *out);

enum cm_change_kind {
    CM_CHANGE_NONE,     /* the same leaf */
    CM_CHANGE_RENEWAL,  /* same subject, SANs, issuer name and key type, a key not smaller,
                         * a later not_after */
    CM_CHANGE_MATERIAL, /* anything else */
};

/* Classifies the step from old to cur. For a material change, what gets a short description
 * of every difference ("SANs added: b.example; issuer: CN=A -> CN=B"), cut to len; for a
 * renewal it is empty. The text holds certificate names: escape it where it is shown. */
enum cm_change_kind cm_change_classify(const struct cm_leaf_summary *old,
                                       const struct cm_leaf_summary *cur, char *what,
                                       size_t len);

/* "renewal" / "change" (the metrics' kind label) or "none". */
const char *cm_change_kind_name(enum cm_change_kind k);

#endif
