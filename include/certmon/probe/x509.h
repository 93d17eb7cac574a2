/* X.509 certificates and chains as plain data: no GnuTLS types escape this module. */
#ifndef CERTMON_X509_H
#define CERTMON_X509_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "certmon/base/text.h" /* cm_time_rfc3339, which callers of this header use */

/* At most this many subject alternative names are kept per certificate (the rest are
 * counted in san_total): a certificate may list tens of thousands, and every copy, report and
 * state entry would carry them all. Public CAs issue at most a few hundred. */
#define CM_X509_MAX_SANS 1000

struct cm_cert {
    char *subject;        /* RFC 4514 distinguished name */
    char *issuer;         /* RFC 4514 distinguished name */
    char *serial;         /* lowercase hex, no separators */
    char *signature;      /* GnuTLS name, e.g. "RSA-SHA256", "ECDSA-SHA384" */
    char *sha256;         /* SHA-256 of the DER encoding, lowercase hex */
    const char *key_type; /* static: "RSA", "RSA-PSS", "DSA", "EC", "Ed25519", "Ed448", ... */
    unsigned key_bits;    /* modulus size for RSA/DSA, curve size for EC */
    int64_t not_before;   /* Unix seconds */
    int64_t not_after;    /* Unix seconds */
    char **sans;          /* DNS names and IP address strings, in certificate order: the
                           * first CM_X509_MAX_SANS of them */
    size_t san_count;     /* entries in sans */
    size_t san_total;     /* DNS names and IP addresses the certificate lists; more than
                           * san_count when the list was cut */
    bool is_ca;
    bool self_signed;     /* self-issued: subject equals issuer and the key identifiers agree */
    bool must_staple;     /* TLS feature extension (RFC 7633) asks for status_request */
    const char *sig_hash; /* static: digest of the signature ("SHA256", "SHA1", "MD5"), or "" */
    char *ski;            /* subject key identifier, lowercase hex, "" when absent */
    char *aki;            /* authority key identifier (key id), lowercase hex, "" when absent */
    char *spki_sha256;    /* SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex ("" for a
                           * placeholder): the key's identity, as public blocklists list it */
    /* What the key may be used for (RFC 5280 4.2.1.3 and 4.2.1.12). An absent extension
     * restricts nothing. */
    bool has_key_usage;
    unsigned key_usage; /* CM_KU_* bits, when has_key_usage */
    bool has_eku;
    bool eku_server; /* the extended key usage lists serverAuth */
    bool eku_any;    /* ... or anyExtendedKeyUsage */
    char *eku;       /* the purposes listed, "clientAuth, emailProtection, 1.2.3.4";
                      * "" when has_eku is false */
    /* Where revocation is published (revocation.h reads these). */
    char **crl_urls;      /* CRL distribution point URIs, in certificate order: the first
                           * CM_X509_MAX_CRL_URLS of them; NULL when none */
    size_t crl_url_count; /* entries in crl_urls */
    char *ocsp_url;       /* the first OCSP responder URI of the AIA extension; "" when none */
    /* The certificate's own encoding: revocation checking verifies CRL and OCSP signatures
     * against the issuer's key and builds OCSP requests from it. NULL for a placeholder, and
     * after cm_chain_drop_der (a daemon keeps many results and does not need it later). */
    unsigned char *der;
    size_t der_len;
};

/* At most this many CRL distribution points are kept per certificate. */
#define CM_X509_MAX_CRL_URLS 8

/* Key usage bits of struct cm_cert (our own numbering, not the DER bit order). */
#define CM_KU_DIGITAL_SIGNATURE 0x01u
#define CM_KU_KEY_ENCIPHERMENT 0x02u
#define CM_KU_KEY_AGREEMENT 0x04u
#define CM_KU_KEY_CERT_SIGN 0x08u
#define CM_KU_CRL_SIGN 0x10u

/* Each CM_KU_* bit with its RFC 5280 name, in the order above: CM_KU_COUNT entries. */
struct cm_ku_name {
    unsigned bit;
    const char *name;
};
#define CM_KU_COUNT 5
extern const struct cm_ku_name cm_key_usage_names[CM_KU_COUNT];

struct cm_chain {
    struct cm_cert *certs; /* in the order the peer sent them (or the file holds them) */
    size_t count;
};

/* Extracts one certificate from its DER encoding into *out (which the caller clears with
 * cm_cert_clear). Returns 0, CM_EBADCERT or -ENOMEM; on error *out is empty. */
int cm_cert_from_der(const void *der, size_t len, struct cm_cert *out);

/* The key type name cm_cert.key_type uses ("RSA", "EC", "Ed25519", ... "unknown") for a
 * GnuTLS gnutls_pk_algorithm_t value: internal to the probe layer (keystore.c names private
 * keys the same way). */
const char *cm__key_type_name(int pk);

/* Appends every certificate of a PEM bundle or a single DER certificate in buf to *chain.
 * Returns the number added (> 0), CM_ENOCERT, CM_EBADCERT or -ENOMEM. */
int cm_chain_append_data(struct cm_chain *chain, const void *buf, size_t len);

/* One DER-encoded certificate, borrowed. */
struct cm_der {
    const unsigned char *data;
    size_t len;
};

/* A bounded cache of extracted certificates, keyed by the SHA-256 of their encoding. */
struct cm_cert_cache;

/* Creates a cache of at least slots entries (rounded up to a power of two, at most 2^20).
 * Returns 0, -EINVAL or -ENOMEM. */
int cm_cert_cache_new(size_t slots, struct cm_cert_cache **out);
void cm_cert_cache_free(struct cm_cert_cache *cache);
void cm_cert_cache_stats(struct cm_cert_cache *cache, size_t *hits, size_t *misses);

/* Extracts a chain as a peer sent it (DER list, leaf first) into *chain, through cache
 * (NULL: parse everything). One certificate that cannot be parsed keeps its position with
 * the subject "(unparseable certificate)". When name is not NULL, *name_match tells whether
 * the leaf is valid for that host name or IP address. Returns 0 or -ENOMEM (chain then
 * empty). */
int cm_chain_from_der_list(struct cm_cert_cache *cache, const struct cm_der *list, size_t n,
                           const char *name, struct cm_chain *chain, bool *name_match);

/* Deep copy. Returns 0 or -ENOMEM (dst then empty). */
int cm_cert_copy(struct cm_cert *dst, const struct cm_cert *src);

/* Frees what the cert holds; leaves it zeroed. */
void cm_cert_clear(struct cm_cert *c);
void cm_chain_clear(struct cm_chain *chain);

/* Frees the DER encodings of chain's certificates (der NULL afterwards); the rest stays. */
void cm_chain_drop_der(struct cm_chain *chain);

/* Whole days left until not_after at time now, rounded down: 0 in the last day, -1 in the
 * first day after expiry. */
int64_t cm_cert_days_left(const struct cm_cert *c, time_t now);


/* True when b issued a: a's issuer name equals b's subject name and, where both are present,
 * a's authority key identifier equals b's subject key identifier (docs/findings.md, "Issuer
 * matching"). Strings left NULL count as empty (hand-built certificates). */
bool cm_cert_issued_by(const struct cm_cert *a, const struct cm_cert *b);

/* Position of the last certificate on the issuing path that starts at position 0 and follows
 * the certificates of chain as sent (in any order, each at most once); 0 for an empty chain. */
size_t cm_chain_path_top(const struct cm_chain *chain);

/* The position in chain of a certificate with the same encoding (SHA-256) as c, or
 * chain->count when there is none. */
size_t cm_chain_position(const struct cm_chain *chain, const struct cm_cert *c);

/* The position of the certificate that expires first, or -1 for an empty chain. */
int cm_chain_earliest_expiry(const struct cm_chain *chain);

#endif
