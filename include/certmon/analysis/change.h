/* What changed when a target's served leaf changed: a renewal (an event) or a material change
 * (cert.changed). Pure: the daemon keeps the previous leaf's summary in memory and hands both
 * summaries in; nothing here reads a clock or a file. */
#ifndef CERTMON_CHANGE_H
#define CERTMON_CHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "certmon/probe/x509.h"

/* Whom a leaf's chain was trusted by, as far as the probe could tell. */
enum cm_leaf_trust {
    CM_TRUST_UNKNOWN = 0, /* not known (a history row of an earlier version, a file) */
    CM_TRUST_PUBLIC,      /* the chain verifies against the system trust store */
    CM_TRUST_PRIVATE,     /* only against the target's own ca_file */
    CM_TRUST_UNTRUSTED,   /* against neither */
};

/* Bytes of a SHA-256 value, and of its text (lowercase hex) with the NUL. */
#define CM_SHA256_LEN 32
#define CM_SHA256_HEX (2 * CM_SHA256_LEN + 1)

/* The parts of a leaf that tell a renewal from a material change. The daemon keeps one per
 * target for the whole run (issue 14: at 100,000 distinct leaves each byte here is 100 kB), so
 * the two hashes are raw bytes (cm_hex_encode of base/text.h where they are shown or stored),
 * and the issuer and key type, which a fleet repeats, are shared texts (base/intern.h).
 * Who owns what, in a summary made by cm_leaf_summary_of, _from or _copy: subject and sans
 * live in one block the summary owns, subject its start; issuer and key_type are references
 * to shared texts the summary holds. cm_leaf_summary_clear frees that block and gives the two
 * references back: never free, release or replace one of the four texts alone. A summary
 * built by hand, its texts borrowed (to be copied with _copy or _new, which take texts of
 * their own), is never cleared. */
struct cm_leaf_summary {
    unsigned char sha256[CM_SHA256_LEN];      /* SHA-256 of the DER certificate */
    unsigned char spki_sha256[CM_SHA256_LEN]; /* of the public key (SPKI); only if has_spki */
    const char *subject;
    const char *sans; /* the SANs sorted and joined with ", " (order does not count) */
    const char *issuer;
    const char *key_type;
    int64_t not_after;
    unsigned key_bits;
    enum cm_leaf_trust trust; /* set by the caller, who knows how the chain verified */
    bool has_spki;            /* spki_sha256 is known */
};

/* Fills *out from a certificate, which needs a sha256 of 64 hex digits; its spki_sha256 is
 * taken when it is one too (has_spki), trust CM_TRUST_UNKNOWN. Returns 0, or -ENOMEM /
 * -EINVAL (no such sha256) with *out empty. */
int cm_leaf_summary_of(const struct cm_cert *c, struct cm_leaf_summary *out);
void cm_leaf_summary_clear(struct cm_leaf_summary *s);

/* The same from stored parts (a history row: sha256 as 64 hex digits, sans ", "-separated in
 * any order), without an SPKI and with trust CM_TRUST_UNKNOWN (the caller sets them when it
 * has them). Returns 0, or -EINVAL (sha256 not 64 hex digits) / -ENOMEM with *out empty. */
int cm_leaf_summary_from(const char *sha256, const char *subject, const char *issuer,
                         const char *sans, const char *key_type, unsigned key_bits,
                         int64_t not_after, struct cm_leaf_summary *out);

/* Whether sha256 (hex digits, either case: a certificate's) is the summary's leaf. */
bool cm_leaf_summary_is(const struct cm_leaf_summary *s, const char *sha256);

enum cm_change_kind {
    CM_CHANGE_NONE,     /* the same leaf */
    CM_CHANGE_RENEWAL,  /* same subject, SANs, issuer name and key type, a key not smaller,
                         * a later not_after, and publicly trusted as before (or not) when
                         * both trusts are known */
    CM_CHANGE_MATERIAL, /* anything else */
};

/* Classifies the step from old to cur. For a material change, what gets a short description
 * of every difference ("SANs added: b.example; issuer: CN=A -> CN=B; trust: public ->
 * private"), cut to len; for a
 * renewal it is empty. The text holds certificate names: escape it where it is shown. */
enum cm_change_kind cm_change_classify(const struct cm_leaf_summary *old,
                                       const struct cm_leaf_summary *cur, char *what,
                                       size_t len);

/* "renewal" / "change" (the metrics' kind label) or "none". */
const char *cm_change_kind_name(enum cm_change_kind k);

/* "public", "private", "untrusted" or "unknown". */
const char *cm_leaf_trust_name(enum cm_leaf_trust t);

/* The trust a name of cm_leaf_trust_name stands for; CM_TRUST_UNKNOWN for NULL or any other
 * text. */
enum cm_leaf_trust cm_leaf_trust_parse(const char *name);

/* pin = "tofu": what a served leaf does to the pin (the leaf pinned on first use). */
enum cm_pin_step {
    CM_PIN_SAME,         /* the pinned leaf itself */
    CM_PIN_MOVE_KEY,     /* another leaf with the pinned public key: the pin moves to it */
    CM_PIN_MOVE_RENEWAL, /* a renewal by the same issuer (cm_change_classify's rule): moves */
    CM_PIN_MISMATCH,     /* anything else: cert.pin_mismatch, the pin stays */
};

/* Judges the served leaf cur against the pinned leaf pin. A key counts as the same only when
 * both SPKI hashes are known. */
enum cm_pin_step cm_pin_judge(const struct cm_leaf_summary *pin, const struct cm_leaf_summary *cur);

/* expect_file: whether the file's certificate file is newer than the served leaf for the same
 * names: another certificate, sharing at least one SAN with it, with a later not_after. */
bool cm_deploy_newer(const struct cm_cert *served, const struct cm_cert *file);

/* A copy of src on the heap, the struct, subject and sans in one allocation (a summary kept
 * per target for the whole run: one chunk, not two), issuer and key_type shared texts it holds
 * (src's may be borrowed ones). Free it with cm_leaf_summary_free, never
 * cm_leaf_summary_clear. NULL when out of memory. */
struct cm_leaf_summary *cm_leaf_summary_new(const struct cm_leaf_summary *src);
void cm_leaf_summary_free(struct cm_leaf_summary *s);

/* A copy of src into *out with texts of its own (src's may be borrowed). Returns 0 or -ENOMEM
 * with *out empty. */
int cm_leaf_summary_copy(const struct cm_leaf_summary *src, struct cm_leaf_summary *out);

#endif
