#include "certmon/probe/x509.h"
#include "certmon/base/error.h"
#include "certmon/base/text.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct cm_ku_name cm_key_usage_names[CM_KU_COUNT] = {
    {CM_KU_DIGITAL_SIGNATURE, "digitalSignature"},
    {CM_KU_KEY_ENCIPHERMENT, "keyEncipherment"},
    {CM_KU_KEY_AGREEMENT, "keyAgreement"},
    {CM_KU_KEY_CERT_SIGN, "keyCertSign"},
    {CM_KU_CRL_SIGN, "cRLSign"},
};

static char *hex(const unsigned char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char *s = malloc(n * 2 + 1);

    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = digits[p[i] >> 4];
        s[2 * i + 1] = digits[p[i] & 15];
    }
    s[n * 2] = '\0';
    return s;
}

/* Characters that are valid but must not reach a terminal as they are: C0 and C1 controls,
 * DEL, and the bidirectional overrides and isolates (U+202A-202E, U+2066-2069) that can make
 * a name read as another. */
static bool is_unsafe(const unsigned char *p, size_t len)
{
    if (len == 1)
        return p[0] < 0x20 || p[0] == 0x7F;
    if (len == 2)
        return p[0] == 0xC2 && p[1] < 0xA0;
    if (len == 3 && p[0] == 0xE2 && p[1] == 0x80)
        return p[2] >= 0xAA && p[2] <= 0xAE;
    if (len == 3 && p[0] == 0xE2 && p[1] == 0x81)
        return p[2] >= 0xA6 && p[2] <= 0xA9;
    return false;
}

/* Copies n bytes of certificate text, escaping what must not reach a terminal or a JSON
 * encoder as it is: unsafe characters and bytes that are not well-formed UTF-8 become "\XX"
 * (RFC 4514 hex escapes, one per byte), so a hostile certificate can neither inject terminal
 * escape sequences nor make the report unencodable. escape_backslash also escapes '\'
 * itself, for text (SANs) that has no escaping of its own; GnuTLS already escapes DNs. */
static char *safe_text(const unsigned char *p, size_t n, bool escape_backslash)
{
    static const char digits[] = "0123456789ABCDEF";
    char *out = malloc(n * 3 + 1), *o = out;
    size_t i = 0;

    if (!out)
        return NULL;
    while (i < n) {
        size_t len = cm_utf8_seq(p + i, n - i);

        if (len > 0 && !is_unsafe(p + i, len) && !(escape_backslash && p[i] == '\\')) {
            memcpy(o, p + i, len);
            o += len;
            i += len;
            continue;
        }
        /* Escape the whole sequence when it is well-formed but unsafe, else one byte. */
        for (size_t k = 0; k < (len ? len : 1); k++, i++) {
            *o++ = '\\';
            *o++ = digits[p[i] >> 4];
            *o++ = digits[p[i] & 15];
        }
    }
    *o = '\0';
    return out;
}

static char *dn_string(gnutls_x509_crt_t crt, bool issuer)
{
    gnutls_datum_t d = {NULL, 0};
    char *s;
    int rc =
        issuer ? gnutls_x509_crt_get_issuer_dn3(crt, &d, 0) : gnutls_x509_crt_get_dn3(crt, &d, 0);

    /* An empty DN is legal (subject-less certificates carry names in SANs only). */
    if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
        return strdup("");
    if (rc < 0)
        return NULL;
    s = safe_text(d.data, d.size, false);
    gnutls_free(d.data);
    return s;
}

const char *cm__key_type_name(int pk)
{
    switch (pk) {
    case GNUTLS_PK_RSA:
        return "RSA";
    case GNUTLS_PK_RSA_PSS:
        return "RSA-PSS";
    case GNUTLS_PK_DSA:
        return "DSA";
    case GNUTLS_PK_ECDSA:
        return "EC";
    case GNUTLS_PK_EDDSA_ED25519:
        return "Ed25519";
    case GNUTLS_PK_EDDSA_ED448:
        return "Ed448";
    case GNUTLS_PK_GOST_01:
    case GNUTLS_PK_GOST_12_256:
    case GNUTLS_PK_GOST_12_512:
        return "GOST";
    default:
        return "unknown";
    }
}

static int add_san(struct cm_cert *c, size_t *cap, char *s)
{
    char **n;

    if (!s)
        return -ENOMEM;
    if (c->san_count == *cap) {
        /* Doubling: growing by one would copy the array once per name. */
        size_t ncap = *cap ? *cap * 2 : 8;
        if (ncap > CM_X509_MAX_SANS)
            ncap = CM_X509_MAX_SANS;
        if (!(n = realloc(c->sans, ncap * sizeof(*n)))) {
            free(s);
            return -ENOMEM;
        }
        c->sans = n;
        *cap = ncap;
    }
    c->sans[c->san_count++] = s;
    return 0;
}

/* Keeps the first CM_X509_MAX_SANS DNS names and IP addresses and counts all of them. GnuTLS
 * parsed the extension once on import, so each name costs one lookup by index. */
static int extract_sans(gnutls_x509_crt_t crt, struct cm_cert *c)
{
    size_t cap = 0;

    for (unsigned i = 0;; i++) {
        unsigned char buf[1024];
        size_t size = sizeof(buf) - 1;
        unsigned critical;
        int type = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &size, &critical);
        char ip[INET6_ADDRSTRLEN];
        bool ipaddr = type == GNUTLS_SAN_IPADDRESS && (size == 4 || size == 16);
        int rc = 0;

        if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            return 0;
        if (type == GNUTLS_E_SHORT_MEMORY_BUFFER)
            continue; /* absurdly long name: skip it rather than fail the chain */
        if (type < 0)
            return 0;
        if (type != GNUTLS_SAN_DNSNAME && !ipaddr)
            continue;
        if (c->san_total++ >= CM_X509_MAX_SANS)
            continue;
        if (type == GNUTLS_SAN_DNSNAME) {
            rc = add_san(c, &cap, safe_text(buf, size, true));
        } else {
            inet_ntop(size == 4 ? AF_INET : AF_INET6, buf, ip, sizeof(ip));
            rc = add_san(c, &cap, strdup(ip));
        }
        if (rc < 0)
            return rc;
    }
}

/* True when the certificate's TLS feature extension (RFC 7633) lists status_request (5):
 * "must staple". */
static bool has_must_staple(gnutls_x509_crt_t crt)
{
    gnutls_x509_tlsfeatures_t feats;
    unsigned feature;
    bool found = false;

    if (gnutls_x509_tlsfeatures_init(&feats) < 0)
        return false;
    if (gnutls_x509_crt_get_tlsfeatures(crt, feats, 0, NULL) == 0)
        for (unsigned i = 0; !found && gnutls_x509_tlsfeatures_get(feats, i, &feature) == 0; i++)
            found = feature == 5;
    gnutls_x509_tlsfeatures_deinit(feats);
    return found;
}

/* A readable name for an extended key usage OID, or the OID itself. */
static const char *purpose_name(const char *oid)
{
    static const struct {
        const char *oid, *name;
    } names[] = {
        {GNUTLS_KP_TLS_WWW_SERVER, "serverAuth"},  {GNUTLS_KP_TLS_WWW_CLIENT, "clientAuth"},
        {GNUTLS_KP_CODE_SIGNING, "codeSigning"},   {GNUTLS_KP_EMAIL_PROTECTION, "emailProtection"},
        {GNUTLS_KP_TIME_STAMPING, "timeStamping"}, {GNUTLS_KP_OCSP_SIGNING, "OCSPSigning"},
        {GNUTLS_KP_ANY, "anyExtendedKeyUsage"},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(oid, names[i].oid))
            return names[i].name;
    return oid;
}

/* Reads the key usage and extended key usage extensions into *c. Returns 0 or -ENOMEM. The
 * purposes string is bounded: a hostile certificate may list thousands of OIDs, and past a
 * few the list says nothing more to a reader (the flags still see every one). */
static int extract_usage(gnutls_x509_crt_t crt, struct cm_cert *c)
{
    static const struct {
        unsigned gnutls, ours;
    } ku_bits[] = {
        {GNUTLS_KEY_DIGITAL_SIGNATURE, CM_KU_DIGITAL_SIGNATURE},
        {GNUTLS_KEY_KEY_ENCIPHERMENT, CM_KU_KEY_ENCIPHERMENT},
        {GNUTLS_KEY_KEY_AGREEMENT, CM_KU_KEY_AGREEMENT},
        {GNUTLS_KEY_KEY_CERT_SIGN, CM_KU_KEY_CERT_SIGN},
        {GNUTLS_KEY_CRL_SIGN, CM_KU_CRL_SIGN},
    };
    char list[256] = "";
    size_t used = 0;
    unsigned ku = 0;

    if (gnutls_x509_crt_get_key_usage(crt, &ku, NULL) >= 0) {
        c->has_key_usage = true;
        for (size_t i = 0; i < sizeof(ku_bits) / sizeof(ku_bits[0]); i++)
            if (ku & ku_bits[i].gnutls)
                c->key_usage |= ku_bits[i].ours;
    }
    /* Bounded like the SAN loop: 4096 purposes is far past any real certificate. */
    for (unsigned i = 0; i < 4096; i++) {
        char oid[128];
        size_t size = sizeof(oid);
        int rc = gnutls_x509_crt_get_key_purpose_oid(crt, i, oid, &size, NULL);

        if (rc == GNUTLS_E_SHORT_MEMORY_BUFFER)
            continue; /* an absurd OID: it is neither serverAuth nor any */
        if (rc < 0)
            break;
        c->has_eku = true;
        if (!strcmp(oid, GNUTLS_KP_TLS_WWW_SERVER))
            c->eku_server = true;
        else if (!strcmp(oid, GNUTLS_KP_ANY))
            c->eku_any = true;
        if (used + 1 < sizeof(list)) {
            int n = snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "",
                             purpose_name(oid));
            used = n < 0 ? sizeof(list) : used + (size_t)n;
        }
    }
    /* OIDs come from GnuTLS's decoder as digits and dots; escape all the same. */
    c->eku = safe_text((const unsigned char *)list, strlen(list), true);
    return c->eku ? 0 : -ENOMEM;
}

/* The SHA-256 of the certificate's DER SubjectPublicKeyInfo (GnuTLS's SHA-256 key id is
 * exactly that), lowercase hex; "" when GnuTLS cannot encode the key. */
static char *spki_hash(gnutls_x509_crt_t crt)
{
    unsigned char buf[32];
    size_t size = sizeof(buf);

    if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, buf, &size) < 0 || size != 32)
        return strdup("");
    return hex(buf, size);
}

/* Appends the URIs of the CRL distribution points (at most CM_X509_MAX_CRL_URLS) to c. Text
 * from the certificate: anything that is not one printable line is skipped, since it is
 * shown and fetched. Returns 0 or -ENOMEM. */
static bool url_ok(const unsigned char *p, size_t n)
{
    if (n == 0 || n > 2048)
        return false;
    for (size_t i = 0; i < n; i++)
        if (p[i] <= 0x20 || p[i] >= 0x7f)
            return false;
    return true;
}

static int extract_crl_urls(gnutls_x509_crt_t crt, struct cm_cert *c)
{
    for (unsigned i = 0; c->crl_url_count < CM_X509_MAX_CRL_URLS && i < 64; i++) {
        unsigned char buf[2049];
        size_t size = sizeof(buf) - 1;
        unsigned reasons = 0;
        int rc = gnutls_x509_crt_get_crl_dist_points(crt, i, buf, &size, &reasons, NULL);

        if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (rc == GNUTLS_E_SHORT_MEMORY_BUFFER)
            continue;
        if (rc < 0)
            break;
        if (rc != GNUTLS_SAN_URI || !url_ok(buf, size))
            continue;
        if (!c->crl_urls && !(c->crl_urls = calloc(CM_X509_MAX_CRL_URLS, sizeof(char *))))
            return -ENOMEM;
        if (!(c->crl_urls[c->crl_url_count] = strndup((const char *)buf, size)))
            return -ENOMEM;
        c->crl_url_count++;
    }
    return 0;
}

/* The first OCSP URI of the authority information access extension, or "". */
static char *extract_ocsp_url(gnutls_x509_crt_t crt)
{
    for (unsigned seq = 0; seq < 16; seq++) {
        gnutls_datum_t d = {NULL, 0};
        int rc = gnutls_x509_crt_get_authority_info_access(crt, seq, GNUTLS_IA_OCSP_URI, &d, NULL);

        if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (rc < 0)
            continue; /* another access method (caIssuers) */
        char *s = url_ok(d.data, d.size) ? strndup((const char *)d.data, d.size) : NULL;
        bool ok = url_ok(d.data, d.size);
        gnutls_free(d.data);
        if (ok)
            return s;
    }
    return strdup("");
}

/* Fills *c from crt. der, when not NULL, is crt's encoding: hashing it directly spares
 * GnuTLS re-encoding the certificate for the fingerprint. */
static int extract(gnutls_x509_crt_t crt, const gnutls_datum_t *der, struct cm_cert *c)
{
    unsigned char buf[64];
    size_t size;
    unsigned bits = 0;
    int pk, sig;

    memset(c, 0, sizeof(*c));
    c->subject = dn_string(crt, false);
    c->issuer = dn_string(crt, true);

    size = sizeof(buf);
    if (gnutls_x509_crt_get_serial(crt, buf, &size) == 0)
        c->serial = hex(buf, size);
    else
        c->serial = strdup("");

    size = sizeof(buf);
    if (der) {
        if (gnutls_hash_fast(GNUTLS_DIG_SHA256, der->data, der->size, buf) < 0)
            goto bad;
        size = 32;
    } else if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, buf, &size) < 0) {
        goto bad;
    }
    c->sha256 = hex(buf, size);

    sig = gnutls_x509_crt_get_signature_algorithm(crt);
    const char *sname = sig > 0 ? gnutls_sign_get_name((gnutls_sign_algorithm_t)sig) : NULL;
    c->signature = strdup(sname ? sname : "unknown");

    pk = gnutls_x509_crt_get_pk_algorithm(crt, &bits);
    c->key_type = cm__key_type_name(pk);
    c->key_bits = bits;

    c->not_before = (int64_t)gnutls_x509_crt_get_activation_time(crt);
    c->not_after = (int64_t)gnutls_x509_crt_get_expiration_time(crt);
    c->is_ca = gnutls_x509_crt_get_ca_status(crt, NULL) > 0;
    /* Self-issued: subject equals issuer and, where both are present, the authority key
     * identifier matches the subject key identifier. Verifying the self-signature would cost
     * a public-key operation per certificate for no practical gain. */
    c->self_signed = gnutls_x509_crt_check_issuer(crt, crt) != 0;

    c->sig_hash = "";
    if (sig > 0) {
        gnutls_digest_algorithm_t dig = gnutls_sign_get_hash_algorithm(sig);
        const char *dname = dig != GNUTLS_DIG_UNKNOWN ? gnutls_digest_get_name(dig) : NULL;
        c->sig_hash = dname ? dname : "";
    }
    c->must_staple = has_must_staple(crt);

    size = sizeof(buf);
    if (gnutls_x509_crt_get_subject_key_id(crt, buf, &size, NULL) == 0)
        c->ski = hex(buf, size);
    else
        c->ski = strdup("");
    size = sizeof(buf);
    if (gnutls_x509_crt_get_authority_key_id(crt, buf, &size, NULL) == 0)
        c->aki = hex(buf, size);
    else
        c->aki = strdup("");

    c->spki_sha256 = spki_hash(crt);
    c->ocsp_url = extract_ocsp_url(crt);
    if (der) {
        if ((c->der = malloc(der->size)))
            memcpy(c->der, der->data, der->size);
        c->der_len = der->size;
    } else {
        gnutls_datum_t d = {NULL, 0};
        if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &d) < 0)
            goto bad;
        if ((c->der = malloc(d.size)))
            memcpy(c->der, d.data, d.size);
        c->der_len = d.size;
        gnutls_free(d.data);
    }

    if (!c->subject || !c->issuer || !c->serial || !c->sha256 || !c->signature || !c->ski ||
        !c->aki || !c->spki_sha256 || !c->ocsp_url || !c->der)
        goto nomem;
    if (extract_crl_urls(crt, c) < 0)
        goto nomem;
    if (extract_usage(crt, c) < 0)
        goto nomem;
    if (extract_sans(crt, c) < 0)
        goto nomem;
    return 0;
nomem:
    cm_cert_clear(c);
    return -ENOMEM;
bad:
    cm_cert_clear(c);
    return CM_EBADCERT;
}

int cm_cert_from_der(const void *der, size_t len, struct cm_cert *out)
{
    gnutls_x509_crt_t crt;
    gnutls_datum_t d = {(unsigned char *)der, (unsigned)len};
    int rc;

    memset(out, 0, sizeof(*out));
    if (gnutls_x509_crt_init(&crt) < 0)
        return -ENOMEM;
    if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0)
        rc = CM_EBADCERT;
    else
        rc = extract(crt, &d, out);
    gnutls_x509_crt_deinit(crt);
    return rc;
}

static int chain_push(struct cm_chain *chain, gnutls_x509_crt_t crt)
{
    struct cm_cert *n = realloc(chain->certs, (chain->count + 1) * sizeof(*n));
    int rc;

    if (!n)
        return -ENOMEM;
    chain->certs = n;
    rc = extract(crt, NULL, &chain->certs[chain->count]);
    if (rc == 0)
        chain->count++;
    return rc;
}

int cm_chain_append_data(struct cm_chain *chain, const void *buf, size_t len)
{
    gnutls_datum_t d = {(unsigned char *)buf, (unsigned)len};
    gnutls_x509_crt_t *list = NULL;
    unsigned n = 0;
    int rc;

    if (len == 0)
        return CM_ENOCERT;
    if (memmem(buf, len, "-----BEGIN", 10)) {
        rc = gnutls_x509_crt_list_import2(&list, &n, &d, GNUTLS_X509_FMT_PEM, 0);
        if (rc == GNUTLS_E_NO_CERTIFICATE_FOUND || (rc >= 0 && n == 0))
            return CM_ENOCERT;
        if (rc < 0)
            return rc == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : CM_EBADCERT;
    } else {
        rc = gnutls_x509_crt_list_import2(&list, &n, &d, GNUTLS_X509_FMT_DER, 0);
        if (rc < 0 || n == 0)
            return CM_EBADCERT;
    }
    rc = 0;
    for (unsigned i = 0; i < n; i++) {
        if (rc == 0)
            rc = chain_push(chain, list[i]);
        gnutls_x509_crt_deinit(list[i]);
    }
    gnutls_free(list);
    return rc < 0 ? rc : (int)n;
}

/* Gives an unparseable certificate a placeholder so that it keeps its position. */
static int placeholder(struct cm_cert *c)
{
    memset(c, 0, sizeof(*c));
    c->subject = strdup("(unparseable certificate)");
    c->issuer = strdup("");
    c->serial = strdup("");
    c->signature = strdup("unknown");
    c->sha256 = strdup("");
    c->ski = strdup("");
    c->aki = strdup("");
    c->spki_sha256 = strdup("");
    c->eku = strdup("");
    c->ocsp_url = strdup("");
    c->sig_hash = "";
    c->key_type = "unknown";
    if (!c->subject || !c->issuer || !c->serial || !c->signature || !c->sha256 || !c->ski ||
        !c->aki || !c->spki_sha256 || !c->eku || !c->ocsp_url) {
        cm_cert_clear(c);
        return -ENOMEM;
    }
    return 0;
}

int cm_cert_copy(struct cm_cert *dst, const struct cm_cert *src)
{
    *dst = *src;
    /* A cleared certificate has NULL strings; its copy has empty ones. */
    dst->subject = strdup(src->subject ? src->subject : "");
    dst->issuer = strdup(src->issuer ? src->issuer : "");
    dst->serial = strdup(src->serial ? src->serial : "");
    dst->signature = strdup(src->signature ? src->signature : "");
    dst->sha256 = strdup(src->sha256 ? src->sha256 : "");
    dst->ski = strdup(src->ski ? src->ski : "");
    dst->aki = strdup(src->aki ? src->aki : "");
    dst->spki_sha256 = strdup(src->spki_sha256 ? src->spki_sha256 : "");
    dst->eku = strdup(src->eku ? src->eku : "");
    dst->ocsp_url = strdup(src->ocsp_url ? src->ocsp_url : "");
    dst->sig_hash = src->sig_hash ? src->sig_hash : "";
    dst->sans = src->san_count ? calloc(src->san_count, sizeof(*dst->sans)) : NULL;
    dst->san_count = 0;
    dst->crl_urls = src->crl_url_count ? calloc(CM_X509_MAX_CRL_URLS, sizeof(char *)) : NULL;
    dst->crl_url_count = 0;
    dst->der = src->der ? malloc(src->der_len) : NULL;
    if (!dst->subject || !dst->issuer || !dst->serial || !dst->signature || !dst->sha256 ||
        !dst->ski || !dst->aki || !dst->spki_sha256 || !dst->eku || !dst->ocsp_url ||
        (src->san_count && !dst->sans) || (src->crl_url_count && !dst->crl_urls) ||
        (src->der && !dst->der))
        goto nomem;
    if (src->der)
        memcpy(dst->der, src->der, src->der_len);
    for (size_t i = 0; i < src->crl_url_count; i++) {
        if (!(dst->crl_urls[i] = strdup(src->crl_urls[i])))
            goto nomem;
        dst->crl_url_count++;
    }
    for (size_t i = 0; i < src->san_count; i++) {
        if (!(dst->sans[i] = strdup(src->sans[i])))
            goto nomem;
        dst->san_count++;
    }
    return 0;
nomem:
    cm_cert_clear(dst);
    return -ENOMEM;
}

/* A direct-mapped cache of extracted certificates keyed by the SHA-256 of their encoding.
 * Extraction is a pure function of the DER bytes, so a hit is exact; the leaf's host-name
 * verdict is kept for the last name asked. Monitoring sees the same certificates again and
 * again (every interval, and intermediates shared by many endpoints), and parsing is a good
 * part of a probe's CPU. */
struct cache_entry {
    unsigned char key[32];
    bool used;
    struct cm_cert cert;
    char *name;
    bool name_match;
};

struct cm_cert_cache {
    pthread_mutex_t lock; /* chains are described on thread-pool threads */
    size_t mask;
    size_t hits, misses;
    struct cache_entry entries[];
};

int cm_cert_cache_new(size_t slots, struct cm_cert_cache **out)
{
    size_t n = 1;
    struct cm_cert_cache *c;

    while (n < slots)
        n <<= 1;
    *out = NULL;
    if (!(c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]))))
        return -ENOMEM;
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        return -ENOMEM;
    }
    c->mask = n - 1;
    *out = c;
    return 0;
}

void cm_cert_cache_free(struct cm_cert_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i <= c->mask; i++) {
        cm_cert_clear(&c->entries[i].cert);
        free(c->entries[i].name);
    }
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void cm_cert_cache_stats(struct cm_cert_cache *c, size_t *hits, size_t *misses)
{
    *hits = *misses = 0;
    if (c) {
        pthread_mutex_lock(&c->lock);
        *hits = c->hits;
        *misses = c->misses;
        pthread_mutex_unlock(&c->lock);
    }
}

/* Extracts one certificate (and, for the leaf, its host-name verdict) without the cache. */
static int extract_der(const struct cm_der *der, const char *name, struct cm_cert *c,
                       bool *name_match)
{
    gnutls_datum_t d = {(unsigned char *)der->data, (unsigned)der->len};
    gnutls_x509_crt_t crt;
    int rc;

    if (gnutls_x509_crt_init(&crt) < 0)
        return -ENOMEM;
    if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0) {
        rc = placeholder(c);
    } else {
        rc = extract(crt, &d, c);
        if (rc == CM_EBADCERT)
            rc = placeholder(c);
        if (rc == 0 && name)
            *name_match = gnutls_x509_crt_check_hostname2(crt, name, 0) != 0;
    }
    gnutls_x509_crt_deinit(crt);
    return rc;
}

static int extract_cached(struct cm_cert_cache *cache, const struct cm_der *der, const char *name,
                          struct cm_cert *c, bool *name_match)
{
    unsigned char key[32];
    struct cache_entry *e;
    size_t slot;
    int rc;

    if (!cache || gnutls_hash_fast(GNUTLS_DIG_SHA256, der->data, der->len, key) < 0)
        return extract_der(der, name, c, name_match);
    memcpy(&slot, key, sizeof(slot));
    e = &cache->entries[slot & cache->mask];
    pthread_mutex_lock(&cache->lock);
    if (e->used && memcmp(e->key, key, sizeof(key)) == 0 &&
        (!name || (e->name && strcmp(e->name, name) == 0))) {
        cache->hits++;
        if (name)
            *name_match = e->name_match;
        rc = cm_cert_copy(c, &e->cert);
        pthread_mutex_unlock(&cache->lock);
        return rc;
    }
    cache->misses++;
    pthread_mutex_unlock(&cache->lock);

    /* Parse outside the lock; other threads may fill the slot meanwhile, last one wins. */
    if ((rc = extract_der(der, name, c, name_match)) < 0)
        return rc;
    pthread_mutex_lock(&cache->lock);
    cm_cert_clear(&e->cert);
    free(e->name);
    e->name = NULL;
    e->used = false;
    if (cm_cert_copy(&e->cert, c) == 0 && (!name || (e->name = strdup(name)))) {
        memcpy(e->key, key, sizeof(key));
        e->name_match = name ? *name_match : false;
        e->used = true;
    } else {
        cm_cert_clear(&e->cert); /* a failed copy just leaves the slot empty */
    }
    pthread_mutex_unlock(&cache->lock);
    return 0;
}

int cm_chain_from_der_list(struct cm_cert_cache *cache, const struct cm_der *list, size_t n,
                           const char *name, struct cm_chain *chain, bool *name_match)
{
    int rc = 0;

    memset(chain, 0, sizeof(*chain));
    *name_match = false;
    if (n == 0)
        return 0;
    if (!(chain->certs = calloc(n, sizeof(*chain->certs))))
        return -ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = extract_cached(cache, &list[i], i == 0 ? name : NULL, &chain->certs[i], name_match);
        if (rc == 0)
            chain->count++;
    }
    if (rc < 0)
        cm_chain_clear(chain);
    return rc;
}

void cm_cert_clear(struct cm_cert *c)
{
    if (!c)
        return;
    free(c->subject);
    free(c->issuer);
    free(c->serial);
    free(c->signature);
    free(c->sha256);
    free(c->ski);
    free(c->aki);
    free(c->spki_sha256);
    free(c->eku);
    free(c->ocsp_url);
    free(c->der);
    for (size_t i = 0; i < c->san_count; i++)
        free(c->sans[i]);
    free(c->sans);
    for (size_t i = 0; i < c->crl_url_count; i++)
        free(c->crl_urls[i]);
    free(c->crl_urls);
    memset(c, 0, sizeof(*c));
}

void cm_chain_drop_der(struct cm_chain *chain)
{
    for (size_t i = 0; chain && i < chain->count; i++) {
        free(chain->certs[i].der);
        chain->certs[i].der = NULL;
        chain->certs[i].der_len = 0;
    }
}

void cm_chain_clear(struct cm_chain *chain)
{
    if (!chain)
        return;
    for (size_t i = 0; i < chain->count; i++)
        cm_cert_clear(&chain->certs[i]);
    free(chain->certs);
    chain->certs = NULL;
    chain->count = 0;
}

int64_t cm_cert_days_left(const struct cm_cert *c, time_t now)
{
    int64_t d = c->not_after - (int64_t)now;

    /* Floor division: a certificate that expired an hour ago has -1 days left, not 0. */
    return d >= 0 ? d / 86400 : -((-d + 86399) / 86400);
}

int cm_chain_earliest_expiry(const struct cm_chain *chain)
{
    int best = -1;

    for (size_t i = 0; i < chain->count; i++)
        if (best < 0 || chain->certs[i].not_after < chain->certs[best].not_after)
            best = (int)i;
    return best;
}

size_t cm_chain_position(const struct cm_chain *chain, const struct cm_cert *c)
{
    for (size_t i = 0; c->sha256 && c->sha256[0] && i < chain->count; i++)
        if (chain->certs[i].sha256 && !strcmp(chain->certs[i].sha256, c->sha256))
            return i;
    return chain->count;
}

bool cm_cert_issued_by(const struct cm_cert *a, const struct cm_cert *b)
{
    if (strcmp(a->issuer ? a->issuer : "", b->subject ? b->subject : "") != 0)
        return false;
    return !a->aki || !b->ski || !a->aki[0] || !b->ski[0] || strcmp(a->aki, b->ski) == 0;
}

size_t cm_chain_path_top(const struct cm_chain *chain)
{
    size_t top = 0;

    /* At most count steps: a loop of mutual issuers ends there. */
    for (size_t steps = 0; steps < chain->count; steps++) {
        const struct cm_cert *c = &chain->certs[top];
        size_t next = chain->count;
        if (c->self_signed)
            break;
        for (size_t j = 0; j < chain->count; j++)
            if (j != top && cm_cert_issued_by(c, &chain->certs[j])) {
                next = j;
                break;
            }
        if (next == chain->count)
            break;
        top = next;
    }
    return top;
}
