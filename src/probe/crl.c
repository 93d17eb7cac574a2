/* The CRL index: a small DER reader over the CertificateList (RFC 5280 section 5) that keeps
 * only what a lookup needs. GnuTLS's own CRL parser builds a libtasn1 tree of the whole list
 * (several nodes per entry: tens of times the wire size for a public CA's CRL) and reads the
 * n-th entry in O(n); here one pass fills a packed array that is then sorted, and GnuTLS only
 * checks the signature over the raw tbsCertList. */
#include "certmon/base/error.h"
#include "certmon/probe/revocation.h"
#include "certmon/base/text.h"

#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Serial numbers are at most 20 octets (RFC 5280 4.1.2.2). A longer one (non-conforming CAs)
 * is kept by its length and first 20 octets. */
#define SERIAL_MAX 20
#define NO_REASON 0xff

struct crl_entry {
    int64_t when;
    uint8_t len; /* serial length in octets, leading zero octets removed (capped at 255) */
    uint8_t reason;
    uint8_t serial[SERIAL_MAX];
};

struct cm_crl {
    int64_t this_update, next_update;
    bool only_user, only_ca; /* issuing distribution point scope */
    size_t count;
    struct crl_entry *entries; /* sorted by (len, serial) */
};

/* ---- DER ---- */

struct tlv {
    unsigned tag;
    const uint8_t *val; /* contents */
    size_t len;
    const uint8_t *start; /* the whole TLV */
    size_t total;
};

/* Reads one TLV at *p (< end) and advances *p past it. Single-byte tags only (all that a CRL
 * uses); definite lengths only (DER). Returns 0 or -1. */
static int der_next(const uint8_t **p, const uint8_t *end, struct tlv *t)
{
    const uint8_t *q = *p;
    size_t len;

    if (end - q < 2 || (q[0] & 0x1f) == 0x1f)
        return -1;
    t->start = q;
    t->tag = q[0];
    len = q[1];
    q += 2;
    if (len & 0x80) {
        size_t n = len & 0x7f;
        if (n == 0 || n > 4 || (size_t)(end - q) < n)
            return -1;
        len = 0;
        for (size_t i = 0; i < n; i++)
            len = (len << 8) | q[i];
        q += n;
    }
    if ((size_t)(end - q) < len)
        return -1;
    t->val = q;
    t->len = len;
    t->total = (size_t)(q + len - t->start);
    *p = q + len;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const uint8_t *p, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    *out = v;
    return true;
}

/* UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ) as Unix seconds. */
static int der_time(const struct tlv *t, int64_t *out)
{
    const uint8_t *p = t->val;
    unsigned y, mo, d, h, mi, s;
    size_t yl;

    if (t->tag == 0x17 && t->len == 13)
        yl = 2;
    else if (t->tag == 0x18 && t->len == 15)
        yl = 4;
    else
        return -1;
    if (p[t->len - 1] != 'Z' || !digits(p, yl, &y) || !digits(p + yl, 2, &mo) ||
        !digits(p + yl + 2, 2, &d) || !digits(p + yl + 4, 2, &h) || !digits(p + yl + 6, 2, &mi) ||
        !digits(p + yl + 8, 2, &s))
        return -1;
    if (yl == 2)
        y += y < 50 ? 2000 : 1900; /* RFC 5280 4.1.2.5.1 */
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
        return -1;
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    return 0;
}

static bool is_time(unsigned tag)
{
    return tag == 0x17 || tag == 0x18;
}

static bool oid_is(const struct tlv *t, const uint8_t *oid, size_t n)
{
    return t->tag == 0x06 && t->len == n && memcmp(t->val, oid, n) == 0;
}

static const uint8_t OID_REASON[] = {0x55, 0x1d, 0x15};   /* 2.5.29.21 reasonCode */
static const uint8_t OID_CERT_ISS[] = {0x55, 0x1d, 0x1d}; /* 2.5.29.29 certificateIssuer */
static const uint8_t OID_IDP[] = {0x55, 0x1d, 0x1c};      /* 2.5.29.28 issuingDistributionPoint */
static const uint8_t OID_DELTA[] = {0x55, 0x1d, 0x1b};    /* 2.5.29.27 deltaCRLIndicator */
static const uint8_t OID_NUMBER[] = {0x55, 0x1d, 0x14};   /* 2.5.29.20 cRLNumber */
static const uint8_t OID_AKI[] = {0x55, 0x1d, 0x23};      /* 2.5.29.35 authorityKeyIdentifier */
static const uint8_t OID_FRESHEST[] = {0x55, 0x1d, 0x2e}; /* 2.5.29.46 freshestCRL */
static const uint8_t OID_AIA[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01};

/* One extension: its OID, whether it is critical, and its value (the OCTET STRING's
 * contents). */
struct ext {
    struct tlv oid;
    bool critical;
    struct tlv value;
};

static int ext_next(const uint8_t **p, const uint8_t *end, struct ext *e)
{
    struct tlv seq, t;
    const uint8_t *q;

    if (der_next(p, end, &seq) < 0 || seq.tag != 0x30)
        return -1;
    q = seq.val;
    const uint8_t *qe = seq.val + seq.len;
    if (der_next(&q, qe, &e->oid) < 0 || e->oid.tag != 0x06 || der_next(&q, qe, &t) < 0)
        return -1;
    e->critical = false;
    if (t.tag == 0x01) {
        e->critical = t.len == 1 && t.val[0] != 0;
        if (der_next(&q, qe, &t) < 0)
            return -1;
    }
    if (t.tag != 0x04 || q != qe)
        return -1;
    e->value = t;
    return 0;
}

static const char *const reason_names[] = {
    "unspecified",   "keyCompromise",        "cACompromise",    "affiliationChanged",
    "superseded",    "cessationOfOperation", "certificateHold", NULL /* 7 is unused */,
    "removeFromCRL", "privilegeWithdrawn",   "aACompromise",
};

static const char *reason_name(uint8_t r)
{
    return r < sizeof(reason_names) / sizeof(reason_names[0]) ? reason_names[r] : NULL;
}

const char *cm_crl_reason_name(int code)
{
    return code >= 0 && code < 256 ? reason_name((uint8_t)code) : NULL;
}

/* ---- Parsing ---- */

/* Serial octets with leading zero octets removed (an INTEGER's sign octet, mostly). */
static void norm_serial(const uint8_t *p, size_t n, struct crl_entry *e)
{
    while (n > 1 && p[0] == 0) {
        p++;
        n--;
    }
    e->len = n > 255 ? 255 : (uint8_t)n;
    memset(e->serial, 0, sizeof(e->serial));
    memcpy(e->serial, p, n < SERIAL_MAX ? n : SERIAL_MAX);
}

static int entry_cmp(const void *a, const void *b)
{
    const struct crl_entry *x = a, *y = b;

    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->serial, y->serial, SERIAL_MAX);
}

/* One revokedCertificates entry into *e. Returns 0, or -1 (malformed), -2 (an indirect CRL
 * entry, certificateIssuer: not supported). */
static int parse_entry(const struct tlv *seq, struct crl_entry *e)
{
    const uint8_t *q = seq->val, *qe = seq->val + seq->len;
    struct tlv serial, when, exts;

    if (seq->tag != 0x30 || der_next(&q, qe, &serial) < 0 || serial.tag != 0x02 ||
        serial.len == 0 || der_next(&q, qe, &when) < 0 || der_time(&when, &e->when) < 0)
        return -1;
    norm_serial(serial.val, serial.len, e);
    e->reason = NO_REASON;
    if (q == qe)
        return 0;
    if (der_next(&q, qe, &exts) < 0 || exts.tag != 0x30 || q != qe)
        return -1;
    for (const uint8_t *x = exts.val, *xe = exts.val + exts.len; x < xe;) {
        struct ext ext;
        if (ext_next(&x, xe, &ext) < 0)
            return -1;
        if (oid_is(&ext.oid, OID_REASON, sizeof(OID_REASON))) {
            const uint8_t *v = ext.value.val;
            struct tlv en;
            if (der_next(&v, v + ext.value.len, &en) < 0 || en.tag != 0x0a || en.len != 1)
                return -1;
            e->reason = en.val[0];
        } else if (oid_is(&ext.oid, OID_CERT_ISS, sizeof(OID_CERT_ISS))) {
            return -2;
        }
    }
    return 0;
}

/* The CRL's own extensions: scope (issuing distribution point) and what makes it unusable
 * for a complete check. Returns 0, or -1 with err set. */
static int parse_crl_exts(const struct tlv *wrapped, struct cm_crl *crl, char *err, size_t errlen)
{
    const uint8_t *q = wrapped->val, *qe = wrapped->val + wrapped->len;
    struct tlv exts;

    if (der_next(&q, qe, &exts) < 0 || exts.tag != 0x30 || q != qe) {
        cm_errf(err, errlen, "malformed CRL extensions");
        return -1;
    }
    for (const uint8_t *x = exts.val, *xe = exts.val + exts.len; x < xe;) {
        struct ext ext;
        if (ext_next(&x, xe, &ext) < 0) {
            cm_errf(err, errlen, "malformed CRL extension");
            return -1;
        }
        if (oid_is(&ext.oid, OID_DELTA, sizeof(OID_DELTA))) {
            cm_errf(err, errlen, "a delta CRL, not a complete one");
            return -1;
        }
        if (oid_is(&ext.oid, OID_IDP, sizeof(OID_IDP))) {
            const uint8_t *v = ext.value.val, *ve = v + ext.value.len;
            struct tlv seq, f;
            if (der_next(&v, ve, &seq) < 0 || seq.tag != 0x30) {
                cm_errf(err, errlen, "malformed issuing distribution point");
                return -1;
            }
            for (const uint8_t *s = seq.val, *se = seq.val + seq.len; s < se;) {
                if (der_next(&s, se, &f) < 0) {
                    cm_errf(err, errlen, "malformed issuing distribution point");
                    return -1;
                }
                bool on = f.len == 1 && f.val[0] != 0;
                if (f.tag == 0x81)
                    crl->only_user = on;
                else if (f.tag == 0x82)
                    crl->only_ca = on;
                else if ((f.tag == 0x83) || (f.tag == 0x84 && on) || (f.tag == 0x85 && on)) {
                    cm_errf(err, errlen, "%s",
                            f.tag == 0x83   ? "a CRL partitioned by reason (not supported)"
                            : f.tag == 0x84 ? "an indirect CRL (not supported)"
                                            : "a CRL of attribute certificates");
                    return -1;
                }
            }
            continue;
        }
        if (ext.critical && !oid_is(&ext.oid, OID_NUMBER, sizeof(OID_NUMBER)) &&
            !oid_is(&ext.oid, OID_AKI, sizeof(OID_AKI)) &&
            !oid_is(&ext.oid, OID_FRESHEST, sizeof(OID_FRESHEST)) &&
            !oid_is(&ext.oid, OID_AIA, sizeof(OID_AIA))) {
            cm_errf(err, errlen, "an unknown critical CRL extension");
            return -1;
        }
    }
    return 0;
}

/* Dotted text of a DER OID's contents ("1.2.840.113549.1.1.11"). */
static int oid_text(const struct tlv *t, char *buf, size_t len)
{
    size_t used = 0;
    uint64_t v = 0;

    if (t->len == 0 || t->len > 64)
        return -1;
    for (size_t i = 0; i < t->len; i++) {
        if (v > (UINT64_MAX >> 7))
            return -1;
        v = (v << 7) | (t->val[i] & 0x7f);
        if (t->val[i] & 0x80)
            continue;
        int n;
        if (used == 0) {
            unsigned first = v < 80 ? (unsigned)(v / 40) : 2;
            n = snprintf(buf, len, "%u.%llu", first, (unsigned long long)(v - first * 40));
        } else {
            n = snprintf(buf + used, len - used, ".%llu", (unsigned long long)v);
        }
        if (n < 0 || (size_t)n >= len - used)
            return -1;
        used += (size_t)n;
        v = 0;
    }
    return (t->val[t->len - 1] & 0x80) ? -1 : 0;
}

/* Checks that issuer issued the CRL: its name, its key usage, the signature over tbs. */
static int verify(const struct cm_cert *issuer, const struct tlv *crl_issuer, const struct tlv *tbs,
                  const struct tlv *sigalg, const struct tlv *sig, char *err, size_t errlen)
{
    gnutls_x509_crt_t crt = NULL;
    gnutls_pubkey_t pk = NULL;
    gnutls_datum_t d = {issuer->der, (unsigned)issuer->der_len}, dn = {NULL, 0};
    struct tlv oid;
    const uint8_t *q = sigalg->val;
    char text[160];
    int rc = -1;

    if (!issuer->der) {
        cm_errf(err, errlen, "the issuer certificate is not available");
        return -1;
    }
    if (issuer->has_key_usage && !(issuer->key_usage & CM_KU_CRL_SIGN)) {
        cm_errf(err, errlen, "the issuer's key usage does not allow signing CRLs");
        return -1;
    }
    if (der_next(&q, sigalg->val + sigalg->len, &oid) < 0 || oid_text(&oid, text, sizeof(text))) {
        cm_errf(err, errlen, "malformed signature algorithm");
        return -1;
    }
    gnutls_sign_algorithm_t algo = gnutls_oid_to_sign(text);
    if (algo == GNUTLS_SIGN_UNKNOWN) {
        cm_errf(err, errlen, "unsupported signature algorithm %s", text);
        return -1;
    }
    if (gnutls_x509_crt_init(&crt) < 0 || gnutls_pubkey_init(&pk) < 0) {
        rc = -ENOMEM;
        goto out;
    }
    if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0 ||
        gnutls_x509_crt_get_raw_dn(crt, &dn) < 0 || gnutls_pubkey_import_x509(pk, crt, 0) < 0) {
        cm_errf(err, errlen, "the issuer certificate cannot be used");
        goto out;
    }
    if (dn.size != crl_issuer->total || memcmp(dn.data, crl_issuer->start, dn.size) != 0) {
        cm_errf(err, errlen, "issued by another name than the certificate's issuer");
        goto out;
    }
    gnutls_datum_t t = {(unsigned char *)tbs->start, (unsigned)tbs->total};
    gnutls_datum_t s = {(unsigned char *)sig->val + 1, (unsigned)sig->len - 1};
    int v = gnutls_pubkey_verify_data2(pk, algo, GNUTLS_VERIFY_ALLOW_SIGN_WITH_SHA1, &t, &s);
    if (v < 0) {
        cm_errf(err, errlen, "signature does not verify with the issuer's key (%s)",
                v == GNUTLS_E_PK_SIG_VERIFY_FAILED ? "wrong key or altered" : gnutls_strerror(v));
        goto out;
    }
    rc = 0;
out:
    gnutls_free(dn.data);
    gnutls_pubkey_deinit(pk);
    gnutls_x509_crt_deinit(crt);
    return rc;
}

static int parse_der(const uint8_t *der, size_t len, const struct cm_cert *issuer,
                     struct cm_crl *crl, char *err, size_t errlen)
{
    const uint8_t *p = der, *end = der + len, *q, *qe;
    struct tlv outer, tbs, sigalg, sig, t, issuer_name, revoked = {0};
    size_t n = 0;
    int rc;

    if (der_next(&p, end, &outer) < 0 || outer.tag != 0x30 || p != end) {
        cm_errf(err, errlen, "not a DER-encoded CRL");
        return -1;
    }
    q = outer.val;
    qe = outer.val + outer.len;
    if (der_next(&q, qe, &tbs) < 0 || tbs.tag != 0x30 || der_next(&q, qe, &sigalg) < 0 ||
        sigalg.tag != 0x30 || der_next(&q, qe, &sig) < 0 || sig.tag != 0x03 || sig.len < 2 ||
        sig.val[0] != 0 || q != qe) {
        cm_errf(err, errlen, "not a DER-encoded CRL");
        return -1;
    }
    q = tbs.val;
    qe = tbs.val + tbs.len;
    if (der_next(&q, qe, &t) < 0)
        goto bad;
    if (t.tag == 0x02 && der_next(&q, qe, &t) < 0) /* version */
        goto bad;
    if (t.tag != 0x30 || der_next(&q, qe, &issuer_name) < 0 || issuer_name.tag != 0x30 ||
        der_next(&q, qe, &t) < 0 || der_time(&t, &crl->this_update) < 0)
        goto bad;
    while (q < qe) {
        if (der_next(&q, qe, &t) < 0)
            goto bad;
        if (is_time(t.tag) && !revoked.start && crl->next_update == 0) {
            if (der_time(&t, &crl->next_update) < 0)
                goto bad;
        } else if (t.tag == 0x30 && !revoked.start) {
            revoked = t;
        } else if (t.tag == 0xa0 && q == qe) {
            if (parse_crl_exts(&t, crl, err, errlen) < 0)
                return -1;
        } else {
            goto bad;
        }
    }
    if ((rc = verify(issuer, &issuer_name, &tbs, &sigalg, &sig, err, errlen)) < 0)
        return rc;

    /* A CRL without revokedCertificates lists nothing: an empty range inside tbs stands for
     * it (arithmetic on the absent list's NULL is undefined, even adding 0; fuzz_crl). */
    if (!revoked.start)
        revoked.val = qe;

    /* Count, then fill an array of exactly that size: the index is all that stays. */
    for (const uint8_t *r = revoked.val, *re = revoked.val + revoked.len; r < re; n++)
        if (der_next(&r, re, &t) < 0)
            goto bad;
    if (n && !(crl->entries = malloc(n * sizeof(*crl->entries))))
        return -ENOMEM;
    const uint8_t *r = revoked.val, *re = revoked.val + revoked.len;
    for (size_t i = 0; i < n; i++) {
        der_next(&r, re, &t);
        if ((rc = parse_entry(&t, &crl->entries[i])) < 0) {
            cm_errf(err, errlen, "%s",
                    rc == -2 ? "an indirect CRL (not supported)" : "malformed revoked entry");
            return -1;
        }
    }
    crl->count = n;
    if (n > 1)
        qsort(crl->entries, n, sizeof(*crl->entries), entry_cmp);
    return 0;
bad:
    cm_errf(err, errlen, "malformed tbsCertList");
    return -1;
}

int cm_crl_parse(const void *data, size_t len, const struct cm_cert *issuer, struct cm_crl **out,
                 char *err, size_t errlen)
{
    static const char pem[] = "-----BEGIN X509 CRL-----";
    gnutls_datum_t decoded = {NULL, 0};
    struct cm_crl *crl;
    int rc;

    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (len > CM_CRL_MAX_BYTES) {
        cm_errf(err, errlen, "larger than %u bytes", CM_CRL_MAX_BYTES);
        return CM_EBADARG;
    }
    if (len >= sizeof(pem) - 1 && memmem(data, len < 4096 ? len : 4096, pem, sizeof(pem) - 1)) {
        gnutls_datum_t in = {(unsigned char *)data, (unsigned)len};
        if (gnutls_pem_base64_decode2("X509 CRL", &in, &decoded) < 0) {
            cm_errf(err, errlen, "bad PEM");
            return CM_EBADARG;
        }
        data = decoded.data;
        len = decoded.size;
    }
    if (!(crl = calloc(1, sizeof(*crl)))) {
        gnutls_free(decoded.data);
        return -ENOMEM;
    }
    rc = parse_der(data, len, issuer, crl, err, errlen);
    gnutls_free(decoded.data);
    if (rc < 0) {
        cm_crl_free(crl);
        return rc == -ENOMEM ? -ENOMEM : CM_EBADARG;
    }
    *out = crl;
    return 0;
}

void cm_crl_free(struct cm_crl *crl)
{
    if (!crl)
        return;
    free(crl->entries);
    free(crl);
}

int64_t cm_crl_this_update(const struct cm_crl *crl)
{
    return crl->this_update;
}

int64_t cm_crl_next_update(const struct cm_crl *crl)
{
    return crl->next_update;
}

size_t cm_crl_count(const struct cm_crl *crl)
{
    return crl->count;
}

size_t cm_crl_memory(const struct cm_crl *crl)
{
    return sizeof(*crl) + crl->count * sizeof(*crl->entries);
}

bool cm_crl_lookup(const struct cm_crl *crl, const struct cm_cert *cert, int64_t *when,
                   const char **reason, bool *excluded)
{
    uint8_t raw[256];
    struct crl_entry key;
    long n;

    *excluded = (crl->only_user && cert->is_ca) || (crl->only_ca && !cert->is_ca);
    /* An empty, odd, non-hex or over-long serial matches nothing. */
    if (*excluded || !cert->serial || (n = cm_hex_decode(cert->serial, raw, sizeof(raw))) <= 0)
        return false;
    norm_serial(raw, (size_t)n, &key);
    const struct crl_entry *e =
        crl->count ? bsearch(&key, crl->entries, crl->count, sizeof(key), entry_cmp) : NULL;
    if (!e)
        return false;
    *when = e->when;
    *reason = e->reason == NO_REASON ? NULL : reason_name(e->reason);
    return true;
}
