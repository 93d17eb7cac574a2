#include "certmon/probe/keystore.h"
#include "certmon/base/error.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/pkcs12.h>
#include <gnutls/x509.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes the reason into err and returns CM_EBADCERT. */
static int failf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return CM_EBADCERT;
}

/* Appends c to chain (taking what c holds), or clears c. Returns 0 or -ENOMEM. */
static int chain_push(struct cm_chain *chain, struct cm_cert *c)
{
    struct cm_cert *n = realloc(chain->certs, (chain->count + 1) * sizeof(*n));

    if (!n) {
        cm_cert_clear(c);
        return -ENOMEM;
    }
    chain->certs = n;
    chain->certs[chain->count++] = *c;
    return 0;
}

/* Parses one DER certificate onto chain. Returns 0, -ENOMEM, or CM_EBADCERT (c unusable). */
static int push_der(struct cm_chain *chain, const void *der, size_t len)
{
    struct cm_cert c;
    int rc;

    if (chain->count >= CM_KEYSTORE_MAX_CERTS)
        return CM_EBADCERT;
    if ((rc = cm_cert_from_der(der, len, &c)) < 0)
        return rc == -ENOMEM ? rc : CM_EBADCERT;
    return chain_push(chain, &c);
}

/* ---- PKCS#12 ---- */

bool cm_p12_sniff(const unsigned char *buf, size_t len)
{
    size_t hdr;

    if (len < 8 || buf[0] != 0x30)
        return false;
    if (buf[1] < 0x80)
        hdr = 2;
    else if (buf[1] >= 0x81 && buf[1] <= 0x84)
        hdr = 2 + (size_t)(buf[1] & 0x7f);
    else
        return false;
    /* version INTEGER 3, then the authSafe ContentInfo (a SEQUENCE). */
    return len >= hdr + 4 && buf[hdr] == 0x02 && buf[hdr + 1] == 0x01 && buf[hdr + 2] == 0x03 &&
           buf[hdr + 3] == 0x30;
}

/* The local key ids of the key bags seen, to put their certificates first. */
#define P12_MAX_KEYS 16

struct p12_walk {
    struct cm_chain *chain;
    unsigned char *cert_ids; /* 1 when chain->certs[i] has a key bag's local key id */
    gnutls_datum_t key_ids[P12_MAX_KEYS];
    size_t nkeys;
    gnutls_datum_t *cert_kids; /* per certificate, copies */
    size_t kid_cap;
};

static void walk_free(struct p12_walk *w)
{
    for (size_t i = 0; i < w->nkeys; i++)
        free(w->key_ids[i].data);
    for (size_t i = 0; w->cert_kids && i < w->chain->count; i++)
        free(w->cert_kids[i].data);
    free(w->cert_kids);
}

static int dup_datum(gnutls_datum_t *dst, const gnutls_datum_t *src)
{
    dst->size = 0;
    dst->data = NULL;
    if (!src->size)
        return 0;
    if (!(dst->data = malloc(src->size)))
        return -ENOMEM;
    memcpy(dst->data, src->data, src->size);
    dst->size = src->size;
    return 0;
}

/* Takes the certificates and key ids of one (decrypted) bag. */
static int walk_bag(struct p12_walk *w, gnutls_pkcs12_bag_t bag, char *err, size_t errlen)
{
    int n = gnutls_pkcs12_bag_get_count(bag);

    for (int j = 0; j < n; j++) {
        int type = gnutls_pkcs12_bag_get_type(bag, (unsigned)j);
        gnutls_datum_t data, kid = {NULL, 0};
        int rc;

        if (gnutls_pkcs12_bag_get_key_id(bag, (unsigned)j, &kid) < 0)
            kid.size = 0;
        if (type == GNUTLS_BAG_PKCS8_KEY || type == GNUTLS_BAG_PKCS8_ENCRYPTED_KEY) {
            if (w->nkeys < P12_MAX_KEYS && kid.size && dup_datum(&w->key_ids[w->nkeys++], &kid) < 0)
                return -ENOMEM;
            continue;
        }
        if (type != GNUTLS_BAG_CERTIFICATE)
            continue; /* CRLs, secrets */
        if (gnutls_pkcs12_bag_get_data(bag, (unsigned)j, &data) < 0)
            return failf(err, errlen, "cannot read P12: a certificate bag is damaged");
        if (w->chain->count >= w->kid_cap) {
            size_t cap = w->kid_cap ? w->kid_cap * 2 : 4;
            gnutls_datum_t *k = realloc(w->cert_kids, cap * sizeof(*k));
            if (!k)
                return -ENOMEM;
            w->cert_kids = k;
            w->kid_cap = cap;
        }
        if ((rc = push_der(w->chain, data.data, data.size)) == -ENOMEM)
            return rc;
        if (rc < 0)
            return failf(err, errlen, "cannot read P12: certificate %zu does not parse",
                         w->chain->count + 1);
        if (dup_datum(&w->cert_kids[w->chain->count - 1], &kid) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* Moves the certificates whose local key id is a key bag's to the front, keeping order. */
static int leaf_first(struct p12_walk *w)
{
    struct cm_chain *c = w->chain;
    struct cm_cert *sorted;
    size_t k = 0;

    if (!w->nkeys || c->count < 2)
        return 0;
    if (!(sorted = malloc(c->count * sizeof(*sorted))))
        return -ENOMEM;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < c->count; i++) {
            bool keyed = false;
            for (size_t j = 0; j < w->nkeys && !keyed; j++)
                keyed = w->cert_kids[i].size == w->key_ids[j].size &&
                        !memcmp(w->cert_kids[i].data, w->key_ids[j].data, w->key_ids[j].size);
            if (keyed == (pass == 0))
                sorted[k++] = c->certs[i];
        }
    free(c->certs);
    c->certs = sorted;
    return 0;
}

/* The reason for a decryption (or MAC) failure, by whether a password was given. */
static int wrong_password(const char *password, char *err, size_t errlen)
{
    if (!password)
        return failf(err, errlen,
                     "cannot decrypt P12: it is protected by a password, and none is given "
                     "(set password or password_file)");
    return failf(err, errlen, "cannot decrypt P12: wrong password");
}

static int p12_walk(gnutls_pkcs12_t p12, const char *pw, const char *password, struct p12_walk *w,
                    char *err, size_t errlen)
{
    for (unsigned i = 0;; i++) {
        gnutls_pkcs12_bag_t bag;
        int rc;

        if (i >= CM_KEYSTORE_MAX_CERTS)
            return failf(err, errlen, "cannot read P12: more than %d bags", CM_KEYSTORE_MAX_CERTS);
        if (gnutls_pkcs12_bag_init(&bag) < 0)
            return -ENOMEM;
        rc = gnutls_pkcs12_get_bag(p12, (int)i, bag);
        if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
            gnutls_pkcs12_bag_deinit(bag);
            return 0;
        }
        if (rc < 0) {
            gnutls_pkcs12_bag_deinit(bag);
            return failf(err, errlen, "cannot read P12: bag %u is damaged (%s)", i + 1,
                         gnutls_strerror(rc));
        }
        if (gnutls_pkcs12_bag_get_type(bag, 0) == GNUTLS_BAG_ENCRYPTED &&
            (rc = gnutls_pkcs12_bag_decrypt(bag, pw)) < 0) {
            gnutls_pkcs12_bag_deinit(bag);
            if (rc == GNUTLS_E_MEMORY_ERROR)
                return -ENOMEM;
            if (rc == GNUTLS_E_DECRYPTION_FAILED)
                return wrong_password(password, err, errlen);
            /* An algorithm GnuTLS does not have, for instance. */
            return failf(err, errlen, "cannot decrypt P12: %s", gnutls_strerror(rc));
        }
        rc = walk_bag(w, bag, err, errlen);
        gnutls_pkcs12_bag_deinit(bag);
        if (rc < 0)
            return rc;
    }
}

int cm_p12_read(const unsigned char *buf, size_t len, const char *password, struct cm_chain *chain,
                enum cm_integrity *integrity, char *err, size_t errlen)
{
    gnutls_datum_t in = {(unsigned char *)(uintptr_t)buf, (unsigned)len};
    /* GnuTLS tells NULL (no password at all) from "": OpenSSL's `-passout pass:` and Java
     * write the empty one. */
    const char *pw = password ? password : "";
    struct p12_walk w = {.chain = chain};
    gnutls_pkcs12_t p12;
    int rc;

    *integrity = CM_INTEGRITY_NONE;
    if (len > UINT32_MAX)
        return failf(err, errlen, "cannot read P12: too large");
    if (gnutls_pkcs12_init(&p12) < 0)
        return -ENOMEM;
    if ((rc = gnutls_pkcs12_import(p12, &in, GNUTLS_X509_FMT_DER, 0)) < 0) {
        gnutls_pkcs12_deinit(p12);
        if (rc == GNUTLS_E_MEMORY_ERROR)
            return -ENOMEM;
        return failf(err, errlen, "cannot read P12: not a valid PKCS#12 file (%s)",
                     gnutls_strerror(rc));
    }
    /* Not gnutls_pkcs12_mac_info: in GnuTLS 3.7.9 it leaks the MAC's OID on some damaged
     * files (found by fuzz_keystore). verify_mac tells a missing MAC by the missing element. */
    rc = gnutls_pkcs12_verify_mac(p12, pw);
    if (rc < 0 && password == NULL && gnutls_pkcs12_verify_mac(p12, NULL) == 0)
        rc = 0;
    if (rc == GNUTLS_E_ASN1_ELEMENT_NOT_FOUND) {
        *integrity = CM_INTEGRITY_ABSENT; /* openssl pkcs12 -nomac */
    } else if (rc < 0) {
        gnutls_pkcs12_deinit(p12);
        if (rc == GNUTLS_E_MEMORY_ERROR)
            return -ENOMEM;
        if (rc == GNUTLS_E_MAC_VERIFY_FAILED)
            return wrong_password(password, err, errlen);
        return failf(err, errlen, "cannot verify P12: %s", gnutls_strerror(rc));
    } else {
        *integrity = CM_INTEGRITY_VERIFIED;
    }
    rc = p12_walk(p12, pw, password, &w, err, errlen);
    gnutls_pkcs12_deinit(p12);
    if (rc == 0 && chain->count == 0)
        rc = failf(err, errlen, "no certificate in the P12 file");
    if (rc == 0)
        rc = leaf_first(&w);
    walk_free(&w);
    if (rc < 0) {
        cm_chain_clear(chain);
        *integrity = CM_INTEGRITY_NONE;
    }
    return rc;
}

/* ---- Java KeyStore ---- */

#define JKS_MAGIC 0xFEEDFEEDu
#define JCEKS_MAGIC 0xCECECECEu
#define JKS_DIGEST_LEN 20

bool cm_jks_sniff(const unsigned char *buf, size_t len)
{
    uint32_t m;

    if (len < 4)
        return false;
    m = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
    return m == JKS_MAGIC || m == JCEKS_MAGIC;
}

/* A bounded reader: every read checks what is left. */
struct rd {
    const unsigned char *p;
    size_t len, pos;
};

static bool rd_u32(struct rd *r, uint32_t *v)
{
    if (r->len - r->pos < 4)
        return false;
    *v = (uint32_t)r->p[r->pos] << 24 | (uint32_t)r->p[r->pos + 1] << 16 |
         (uint32_t)r->p[r->pos + 2] << 8 | r->p[r->pos + 3];
    r->pos += 4;
    return true;
}

static bool rd_skip(struct rd *r, size_t n)
{
    if (r->len - r->pos < n)
        return false;
    r->pos += n;
    return true;
}

/* Java's DataInput.readUTF: a 16-bit length and that many bytes; *s points at them. */
static bool rd_utf(struct rd *r, const unsigned char **s, size_t *n)
{
    if (r->len - r->pos < 2)
        return false;
    *n = (size_t)r->p[r->pos] << 8 | r->p[r->pos + 1];
    r->pos += 2;
    *s = r->p + r->pos;
    return rd_skip(r, *n);
}

/* One certificate of an entry: in version 2 its type ("X.509") comes first. */
static int jks_cert(struct rd *r, uint32_t version, struct cm_chain *chain, uint32_t entry,
                    char *err, size_t errlen)
{
    const unsigned char *type;
    size_t tlen, at;
    uint32_t n;
    int rc;

    if (version == 2) {
        at = r->pos;
        if (!rd_utf(r, &type, &tlen))
            return failf(err, errlen, "cannot read JKS: entry %u is cut short at byte %zu", entry,
                         at);
        if (tlen != 5 || memcmp(type, "X.509", 5) != 0)
            return failf(err, errlen,
                         "cannot read JKS: entry %u holds a certificate that is not X.509 "
                         "(byte %zu)",
                         entry, at);
    }
    at = r->pos;
    if (!rd_u32(r, &n) || n > r->len - r->pos)
        return failf(err, errlen, "cannot read JKS: entry %u is cut short at byte %zu", entry, at);
    if (chain->count >= CM_KEYSTORE_MAX_CERTS)
        return failf(err, errlen, "cannot read JKS: more than %d certificates",
                     CM_KEYSTORE_MAX_CERTS);
    rc = push_der(chain, r->p + r->pos, n);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0)
        return failf(err, errlen,
                     "cannot read JKS: the certificate of entry %u (byte %zu) does not parse",
                     entry, at);
    r->pos += n;
    return 0;
}

/* One entry: tag, alias, date, then a private key's encrypted key and certificate chain, or
 * a trusted certificate. */
static int jks_entry(struct rd *r, uint32_t version, bool jceks, uint32_t entry,
                     struct cm_chain *chain, char *err, size_t errlen)
{
    const unsigned char *alias;
    size_t alen, at = r->pos;
    uint32_t tag, n;
    int rc;

    if (!rd_u32(r, &tag) || !rd_utf(r, &alias, &alen) || !rd_skip(r, 8))
        return failf(err, errlen, "cannot read JKS: entry %u is cut short at byte %zu", entry, at);
    if (tag == 2)
        return jks_cert(r, version, chain, entry, err, errlen);
    if (tag == 3 && jceks)
        /* A sealed Java object: its length is known only to Java's deserializer. */
        return failf(err, errlen,
                     "cannot read JCEKS: entry %u is a secret key, which certmon cannot skip "
                     "(convert the store to PKCS#12 with keytool -importkeystore)",
                     entry);
    if (tag != 1)
        return failf(err, errlen, "cannot read JKS: entry %u (byte %zu) has unknown tag %u", entry,
                     at, tag);
    at = r->pos;
    if (!rd_u32(r, &n) || !rd_skip(r, n)) /* the protected key: never decrypted */
        return failf(err, errlen, "cannot read JKS: entry %u is cut short at byte %zu", entry, at);
    at = r->pos;
    if (!rd_u32(r, &n))
        return failf(err, errlen, "cannot read JKS: entry %u is cut short at byte %zu", entry, at);
    if (n > CM_JKS_MAX_CHAIN)
        return failf(err, errlen,
                     "cannot read JKS: entry %u claims a chain of %u certificates (at most %d)",
                     entry, n, CM_JKS_MAX_CHAIN);
    for (uint32_t i = 0; i < n; i++)
        if ((rc = jks_cert(r, version, chain, entry, err, errlen)) < 0)
            return rc;
    return 0;
}

/* The password as Java's JKS digest takes it: each UTF-16 code unit, big-endian. Invalid
 * UTF-8 becomes U+FFFD, as Java's decoder makes it. Returns the bytes written (out holds
 * 2 * strlen(pw) bytes: never more UTF-16 units than UTF-8 bytes). */
static size_t java_chars(const char *pw, unsigned char *out)
{
    const unsigned char *s = (const unsigned char *)pw;
    size_t o = 0;

    while (*s) {
        uint32_t cp;
        size_t n;
        if (*s < 0x80) {
            cp = *s;
            n = 1;
        } else if ((*s & 0xe0) == 0xc0 && (s[1] & 0xc0) == 0x80) {
            cp = (uint32_t)(*s & 0x1f) << 6 | (s[1] & 0x3f);
            n = 2;
        } else if ((*s & 0xf0) == 0xe0 && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80) {
            cp = (uint32_t)(*s & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
            n = 3;
        } else if ((*s & 0xf8) == 0xf0 && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80 &&
                   (s[3] & 0xc0) == 0x80) {
            cp = (uint32_t)(*s & 0x07) << 18 | (uint32_t)(s[1] & 0x3f) << 12 |
                 (uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
            n = 4;
        } else {
            cp = 0xfffd;
            n = 1;
        }
        s += n;
        if (cp >= 0x10000) {
            uint32_t v = cp - 0x10000, hi = 0xd800 | v >> 10, lo = 0xdc00 | (v & 0x3ff);
            out[o++] = (unsigned char)(hi >> 8);
            out[o++] = (unsigned char)hi;
            out[o++] = (unsigned char)(lo >> 8);
            out[o++] = (unsigned char)lo;
        } else {
            out[o++] = (unsigned char)(cp >> 8);
            out[o++] = (unsigned char)cp;
        }
    }
    return o;
}

/* SHA-1(password chars, "Mighty Aphrodite", the store up to the digest) == the digest. */
static int jks_verify(const unsigned char *buf, size_t body, const char *password, bool *ok)
{
    static const char whitener[] = "Mighty Aphrodite";
    size_t plen = strlen(password);
    unsigned char md[JKS_DIGEST_LEN], *chars = malloc(2 * plen + 1);
    gnutls_hash_hd_t h;
    size_t n;

    if (!chars)
        return -ENOMEM;
    n = java_chars(password, chars);
    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA1) < 0) {
        gnutls_memset(chars, 0, 2 * plen + 1);
        free(chars);
        return CM_ETLS;
    }
    gnutls_hash(h, chars, n);
    gnutls_hash(h, whitener, sizeof(whitener) - 1);
    gnutls_hash(h, buf, body);
    gnutls_hash_deinit(h, md);
    gnutls_memset(chars, 0, 2 * plen + 1);
    free(chars);
    *ok = memcmp(md, buf + body, JKS_DIGEST_LEN) == 0;
    return 0;
}

int cm_jks_read(const unsigned char *buf, size_t len, const char *password, struct cm_chain *chain,
                enum cm_integrity *integrity, char *err, size_t errlen)
{
    struct rd r = {buf, len, 0};
    uint32_t magic, version, count;
    bool jceks, ok = false;
    int rc = 0;

    *integrity = CM_INTEGRITY_NONE;
    if (!rd_u32(&r, &magic) || !rd_u32(&r, &version) || !rd_u32(&r, &count))
        return failf(err, errlen, "cannot read JKS: the header is cut short");
    jceks = magic == JCEKS_MAGIC;
    if (magic != JKS_MAGIC && !jceks)
        return failf(err, errlen, "cannot read JKS: no JKS magic number");
    if (version != 1 && version != 2)
        return failf(err, errlen, "cannot read JKS: unknown version %u", version);
    if (count > CM_JKS_MAX_ENTRIES)
        return failf(err, errlen, "cannot read JKS: %u entries (at most %d)", count,
                     CM_JKS_MAX_ENTRIES);
    for (uint32_t i = 0; i < count && rc == 0; i++)
        rc = jks_entry(&r, version, jceks, i + 1, chain, err, errlen);
    if (rc == 0 && r.len - r.pos < JKS_DIGEST_LEN)
        rc = failf(err, errlen, "cannot read JKS: the integrity digest is missing (cut short)");
    if (rc == 0 && chain->count == 0)
        rc = failf(err, errlen, "no certificate in the %s file (%u entries)",
                   jceks ? "JCEKS" : "JKS", count);
    if (rc == 0 && password && (rc = jks_verify(buf, r.pos, password, &ok)) == 0)
        *integrity = ok ? CM_INTEGRITY_VERIFIED : CM_INTEGRITY_FAILED;
    else if (rc == 0)
        *integrity = CM_INTEGRITY_UNVERIFIED;
    if (rc < 0) {
        cm_chain_clear(chain);
        *integrity = CM_INTEGRITY_NONE;
    }
    return rc;
}

/* ---- Private keys ---- */

bool cm_key_pem_label(const char *label)
{
    static const char *const labels[] = {"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY",
                                         "ENCRYPTED PRIVATE KEY", "DSA PRIVATE KEY"};

    for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++)
        if (!strcmp(label, labels[i]))
            return true;
    return false;
}

static int unreadable(struct cm_key_check *out, const char *why)
{
    out->status = CM_KEY_UNREADABLE;
    free(out->error);
    return (out->error = strdup(why)) ? 0 : -ENOMEM;
}

int cm_key_compare(const unsigned char *buf, size_t len, const char *password,
                   const struct cm_cert *cert, struct cm_key_check *out)
{
    gnutls_datum_t in = {(unsigned char *)(uintptr_t)buf, (unsigned)len};
    bool pem = len > 11 && memmem(buf, len, "-----BEGIN ", 11) != NULL;
    bool encrypted = pem && (memmem(buf, len, "ENCRYPTED", 9) != NULL);
    unsigned char id[32];
    size_t idlen = sizeof(id);
    gnutls_x509_privkey_t key;
    char hex[65];
    int rc, pk;

    out->type = NULL;
    if (len > UINT32_MAX)
        return unreadable(out, "the key file is too large");
    if (gnutls_x509_privkey_init(&key) < 0)
        return -ENOMEM;
    rc = gnutls_x509_privkey_import2(key, &in, pem ? GNUTLS_X509_FMT_PEM : GNUTLS_X509_FMT_DER,
                                     password, 0);
    if (rc == 0)
        rc = gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, id, &idlen);
    pk = rc == 0 ? gnutls_x509_privkey_get_pk_algorithm2(key, NULL) : 0;
    /* Frees the key's numbers, which GnuTLS clears first: the key lived for this function. */
    gnutls_x509_privkey_deinit(key);
    if (rc == GNUTLS_E_MEMORY_ERROR)
        return -ENOMEM;
    if (rc == GNUTLS_E_DECRYPTION_FAILED && !password)
        return unreadable(out, "the key is encrypted and no password is given (set password "
                               "or password_file)");
    if (rc == GNUTLS_E_DECRYPTION_FAILED || (rc < 0 && encrypted && password))
        return unreadable(out, "cannot decrypt the key: wrong password");
    if (rc < 0) {
        char why[160];
        snprintf(why, sizeof(why), "not a private key GnuTLS can read (%s)", gnutls_strerror(rc));
        return unreadable(out, why);
    }
    if (idlen != 32)
        return unreadable(out, "cannot compute the key's public key identity");
    for (size_t i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", id[i]);
    free(out->spki_sha256);
    if (!(out->spki_sha256 = strdup(hex)))
        return -ENOMEM;
    out->type = cm__key_type_name(pk);
    out->status =
        cert->spki_sha256 && !strcmp(cert->spki_sha256, hex) ? CM_KEY_MATCH : CM_KEY_MISMATCH;
    return 0;
}
