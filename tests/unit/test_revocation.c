/* Unit tests for the CRL index (src/probe/crl.c) and the revocation checker's cache
 * (src/probe/revocation.c) over file:// URLs. CRLs are encoded here by hand (a few lines of DER) and
 * signed with GnuTLS, so each case controls exactly one property: who signed, which name,
 * which dates, which entries and extensions. */
#include "cmtest.h"

#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "certmon/base/error.h"
#include "certmon/http/httpc.h"
#include "certmon/probe/revocation.h"
#include "certmon/probe/x509.h"

/* ---- A growable DER buffer ---- */

struct buf {
    uint8_t *p;
    size_t n, cap;
};

static void put(struct buf *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b->p);
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void put_len(struct buf *b, size_t n)
{
    uint8_t h[5];
    if (n < 128) {
        h[0] = (uint8_t)n;
        put(b, h, 1);
    } else if (n < 256) {
        h[0] = 0x81, h[1] = (uint8_t)n;
        put(b, h, 2);
    } else if (n < 65536) {
        h[0] = 0x82, h[1] = (uint8_t)(n >> 8), h[2] = (uint8_t)n;
        put(b, h, 3);
    } else {
        h[0] = 0x83, h[1] = (uint8_t)(n >> 16), h[2] = (uint8_t)(n >> 8), h[3] = (uint8_t)n;
        put(b, h, 4);
    }
}

/* Appends tag + length + the content of c (and frees c). */
static void wrap(struct buf *out, uint8_t tag, struct buf *c)
{
    put(out, &tag, 1);
    put_len(out, c->n);
    put(out, c->p, c->n);
    free(c->p);
    memset(c, 0, sizeof(*c));
}

static void put_tlv(struct buf *out, uint8_t tag, const void *v, size_t n)
{
    put(out, &tag, 1);
    put_len(out, n);
    put(out, v, n);
}

static void put_time(struct buf *out, time_t t)
{
    struct tm tm;
    char s[64];
    gmtime_r(&t, &tm);
    snprintf(s, sizeof(s), "%02d%02d%02d%02d%02d%02dZ", tm.tm_year % 100, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
    put_tlv(out, 0x17, s, 13);
}

static const uint8_t ECDSA_SHA256[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                       0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};

/* ---- Keys and certificates ---- */

struct ca {
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t crt;
    struct cm_cert cert; /* extracted, with DER */
    gnutls_datum_t dn;   /* raw subject */
};

/* Runs before any test (no CUnit assertion may run there): -1 on failure. */
#define OK(x)                                                                                      \
    do {                                                                                           \
        if ((x) < 0)                                                                               \
            return -1;                                                                             \
    } while (0)

static int ca_make(struct ca *ca, const char *cn, bool crl_sign)
{
    gnutls_datum_t der;

    memset(ca, 0, sizeof(*ca));
    OK(gnutls_x509_privkey_init(&ca->key));
    OK(gnutls_x509_privkey_generate(ca->key, GNUTLS_PK_ECDSA,
                                    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0));
    OK(gnutls_x509_crt_init(&ca->crt));
    gnutls_x509_crt_set_version(ca->crt, 3);
    gnutls_x509_crt_set_dn_by_oid(ca->crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn));
    gnutls_x509_crt_set_issuer_dn_by_oid(ca->crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn));
    gnutls_x509_crt_set_serial(ca->crt, "\x01", 1);
    gnutls_x509_crt_set_activation_time(ca->crt, time(NULL) - 86400);
    gnutls_x509_crt_set_expiration_time(ca->crt, time(NULL) + 86400 * 30);
    gnutls_x509_crt_set_basic_constraints(ca->crt, 1, -1);
    gnutls_x509_crt_set_key_usage(ca->crt,
                                  GNUTLS_KEY_KEY_CERT_SIGN | (crl_sign ? GNUTLS_KEY_CRL_SIGN : 0));
    gnutls_x509_crt_set_key(ca->crt, ca->key);
    OK(gnutls_x509_crt_sign2(ca->crt, ca->crt, ca->key, GNUTLS_DIG_SHA256, 0));
    OK(gnutls_x509_crt_export2(ca->crt, GNUTLS_X509_FMT_DER, &der));
    OK(cm_cert_from_der(der.data, der.size, &ca->cert));
    gnutls_free(der.data);
    OK(gnutls_x509_crt_get_raw_dn(ca->crt, &ca->dn));
    return 0;
}

static void ca_free(struct ca *ca)
{
    gnutls_x509_privkey_deinit(ca->key);
    gnutls_x509_crt_deinit(ca->crt);
    cm_cert_clear(&ca->cert);
    gnutls_free(ca->dn.data);
}

/* A leaf-like certificate to look up: only serial and is_ca matter. */
static struct cm_cert leaf_with(const char *serial_hex, bool is_ca)
{
    struct cm_cert c = {0};
    c.serial = (char *)serial_hex;
    c.is_ca = is_ca;
    return c;
}

/* ---- CRLs ---- */

struct crl_spec {
    const struct ca *issuer; /* name */
    const struct ca *signer; /* key */
    time_t this_update, next_update;
    size_t n;            /* entries: serial i+1 (as 8 bytes, with a leading zero for i=0) */
    int reason;          /* reason code of every entry, or -1 */
    const uint8_t *exts; /* crlExtensions' inner SEQUENCE content, or NULL */
    size_t exts_len;
};

static void build_crl(const struct crl_spec *sp, struct buf *out)
{
    struct buf tbs = {0}, entries = {0}, all = {0}, tmp = {0};
    uint8_t one = 1;

    put_tlv(&tbs, 0x02, &one, 1); /* v2 */
    put(&tbs, ECDSA_SHA256, sizeof(ECDSA_SHA256));
    put(&tbs, sp->issuer->dn.data, sp->issuer->dn.size);
    put_time(&tbs, sp->this_update);
    if (sp->next_update)
        put_time(&tbs, sp->next_update);
    for (size_t i = 0; i < sp->n; i++) {
        struct buf e = {0};
        uint8_t s[9] = {0};
        uint64_t v = i + 1;
        for (int k = 8; k >= 1; k--, v >>= 8)
            s[k] = (uint8_t)v;
        /* A 9-octet INTEGER with leading zeros: the index must normalise them. */
        put_tlv(&e, 0x02, s, 9);
        put_time(&e, sp->this_update - 3600);
        if (sp->reason >= 0) {
            uint8_t ext[] = {0x30, 0x0a, 0x06, 0x03, 0x55, 0x1d,
                             0x15, 0x04, 0x03, 0x0a, 0x01, (uint8_t)sp->reason};
            put_tlv(&e, 0x30, ext, sizeof(ext));
        }
        wrap(&entries, 0x30, &e);
    }
    if (sp->n)
        wrap(&tbs, 0x30, &entries);
    if (sp->exts) {
        put_tlv(&tmp, 0x30, sp->exts, sp->exts_len);
        wrap(&tbs, 0xa0, &tmp);
    }
    struct buf tbs_seq = {0};
    wrap(&tbs_seq, 0x30, &tbs);

    gnutls_privkey_t pk;
    gnutls_datum_t data = {tbs_seq.p, (unsigned)tbs_seq.n}, sig;
    CU_ASSERT_EQUAL_FATAL(gnutls_privkey_init(&pk), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_privkey_import_x509(pk, sp->signer->key, 0), 0);
    CU_ASSERT_EQUAL_FATAL(gnutls_privkey_sign_data(pk, GNUTLS_DIG_SHA256, 0, &data, &sig), 0);
    gnutls_privkey_deinit(pk);

    put(&all, tbs_seq.p, tbs_seq.n);
    free(tbs_seq.p);
    put(&all, ECDSA_SHA256, sizeof(ECDSA_SHA256));
    uint8_t zero = 0;
    put(&tmp, &zero, 1);
    put(&tmp, sig.data, sig.size);
    gnutls_free(sig.data);
    wrap(&all, 0x03, &tmp);
    memset(out, 0, sizeof(*out));
    wrap(out, 0x30, &all);
}

static struct ca ca1, ca2, ca_nosign;

static int suite_init(void)
{
    if (ca_make(&ca1, "Test CA one", true) < 0 || ca_make(&ca2, "Test CA two", true) < 0 ||
        ca_make(&ca_nosign, "Test CA no CRL", false) < 0)
        return -1;
    return 0;
}

static int suite_cleanup(void)
{
    ca_free(&ca1);
    ca_free(&ca2);
    ca_free(&ca_nosign);
    return 0;
}

static void test_parse_lookup(void)
{
    time_t now = time(NULL);
    struct crl_spec sp = {&ca1, &ca1, now - 60, now + 86400, 5, 1, NULL, 0};
    struct buf b;
    struct cm_crl *crl = NULL;
    char err[256];
    int64_t when = 0;
    const char *reason = NULL;
    bool excl = true;

    build_crl(&sp, &b);
    CU_ASSERT_EQUAL_FATAL(cm_crl_parse(b.p, b.n, &ca1.cert, &crl, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(cm_crl_count(crl), 5);
    CU_ASSERT_EQUAL(cm_crl_this_update(crl), (int64_t)(now - 60));
    CU_ASSERT_EQUAL(cm_crl_next_update(crl), (int64_t)(now + 86400));

    struct cm_cert c = leaf_with("0003", false); /* leading zero octet, as GnuTLS gives it */
    CU_ASSERT_TRUE(cm_crl_lookup(crl, &c, &when, &reason, &excl));
    CU_ASSERT_EQUAL(when, (int64_t)(now - 60 - 3600));
    CU_ASSERT_STRING_EQUAL(reason, "keyCompromise");
    CU_ASSERT_FALSE(excl);
    c = leaf_with("05", false);
    CU_ASSERT_TRUE(cm_crl_lookup(crl, &c, &when, &reason, &excl));
    c = leaf_with("06", false);
    CU_ASSERT_FALSE(cm_crl_lookup(crl, &c, &when, &reason, &excl));
    c = leaf_with("0103", false); /* a different serial that ends the same way */
    CU_ASSERT_FALSE(cm_crl_lookup(crl, &c, &when, &reason, &excl));
    c = leaf_with("zz", false);
    CU_ASSERT_FALSE(cm_crl_lookup(crl, &c, &when, &reason, &excl));
    cm_crl_free(crl);
    free(b.p);

    /* No entries, no reason, no nextUpdate. */
    struct crl_spec empty = {&ca1, &ca1, now - 60, 0, 0, -1, NULL, 0};
    build_crl(&empty, &b);
    CU_ASSERT_EQUAL_FATAL(cm_crl_parse(b.p, b.n, &ca1.cert, &crl, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(cm_crl_count(crl), 0);
    CU_ASSERT_EQUAL(cm_crl_next_update(crl), 0);
    c = leaf_with("01", false);
    CU_ASSERT_FALSE(cm_crl_lookup(crl, &c, &when, &reason, &excl));
    cm_crl_free(crl);
    free(b.p);
}

static void expect_reject(const struct buf *b, const struct cm_cert *issuer, const char *why)
{
    struct cm_crl *crl = (struct cm_crl *)1;
    char err[256] = "";

    CU_ASSERT_EQUAL(cm_crl_parse(b->p, b->n, issuer, &crl, err, sizeof(err)), CM_EBADARG);
    CU_ASSERT_PTR_NULL(crl);
    if (!strstr(err, why))
        fprintf(stderr, "\nerror \"%s\" lacks \"%s\"\n", err, why);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, why));
}

static void test_forged(void)
{
    time_t now = time(NULL);
    struct buf b;

    /* Named after CA one, signed by CA two's key. */
    struct crl_spec wrong_key = {&ca1, &ca2, now - 60, now + 3600, 2, -1, NULL, 0};
    build_crl(&wrong_key, &b);
    expect_reject(&b, &ca1.cert, "signature does not verify");
    free(b.p);

    /* CA two's own CRL offered as CA one's. */
    struct crl_spec other = {&ca2, &ca2, now - 60, now + 3600, 2, -1, NULL, 0};
    build_crl(&other, &b);
    expect_reject(&b, &ca1.cert, "another name");
    /* A flipped bit in the signed part. */
    b.p[b.n / 2] ^= 0x01;
    expect_reject(&b, &ca2.cert, "");
    free(b.p);

    /* An issuer whose key usage does not include cRLSign. */
    struct crl_spec nosign = {&ca_nosign, &ca_nosign, now - 60, now + 3600, 1, -1, NULL, 0};
    build_crl(&nosign, &b);
    expect_reject(&b, &ca_nosign.cert, "key usage");
    /* No issuer encoding at all. */
    struct cm_cert bare = {0};
    expect_reject(&b, &bare, "not available");
    free(b.p);
}

/* Every truncation and a sweep of single-byte changes: a clear error or a parse, never a
 * crash (ASan watches the reads). */
static void test_malformed(void)
{
    time_t now = time(NULL);
    struct crl_spec sp = {&ca1, &ca1, now - 60, now + 3600, 3, 4, NULL, 0};
    struct buf b;
    struct cm_crl *crl;
    char err[256];

    build_crl(&sp, &b);
    for (size_t n = 0; n < b.n; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b.p, n);
        CU_ASSERT_EQUAL(cm_crl_parse(copy, n, &ca1.cert, &crl, err, sizeof(err)), CM_EBADARG);
        CU_ASSERT(err[0] != '\0');
        free(copy);
    }
    for (size_t i = 0; i < b.n; i++) {
        uint8_t *copy = malloc(b.n);
        memcpy(copy, b.p, b.n);
        copy[i] ^= 0x80;
        int rc = cm_crl_parse(copy, b.n, &ca1.cert, &crl, err, sizeof(err));
        CU_ASSERT(rc == 0 || rc == CM_EBADARG);
        if (rc == 0)
            cm_crl_free(crl);
        free(copy);
    }
    const char junk[] = "<html>not found</html>";
    CU_ASSERT_EQUAL(cm_crl_parse(junk, sizeof(junk), &ca1.cert, &crl, err, sizeof(err)),
                    CM_EBADARG);
    CU_ASSERT_STRING_EQUAL(err, "not a DER-encoded CRL");
    free(b.p);
}

static void test_pem(void)
{
    time_t now = time(NULL);
    struct crl_spec sp = {&ca1, &ca1, now - 60, now + 3600, 3, -1, NULL, 0};
    struct buf b;
    gnutls_datum_t in, pem;
    struct cm_crl *crl;
    char err[256];

    build_crl(&sp, &b);
    in.data = b.p;
    in.size = (unsigned)b.n;
    CU_ASSERT_EQUAL_FATAL(gnutls_pem_base64_encode2("X509 CRL", &in, &pem), 0);
    CU_ASSERT_EQUAL_FATAL(cm_crl_parse(pem.data, pem.size, &ca1.cert, &crl, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(cm_crl_count(crl), 3);
    cm_crl_free(crl);
    gnutls_free(pem.data);
    free(b.p);
}

static void test_extensions(void)
{
    time_t now = time(NULL);
    struct buf b;
    struct cm_crl *crl;
    char err[256];
    int64_t when;
    const char *reason;
    bool excl;

    /* A delta CRL is not a complete list. */
    static const uint8_t delta[] = {0x30, 0x0d, 0x06, 0x03, 0x55, 0x1d, 0x1b, 0x01,
                                    0x01, 0xff, 0x04, 0x03, 0x02, 0x01, 0x05};
    struct crl_spec d = {&ca1, &ca1, now - 60, now + 3600, 1, -1, delta, sizeof(delta)};
    build_crl(&d, &b);
    expect_reject(&b, &ca1.cert, "delta CRL");
    free(b.p);

    /* An issuing distribution point for CA certificates only: a leaf is out of its scope. */
    static const uint8_t idp[] = {0x30, 0x0f, 0x06, 0x03, 0x55, 0x1d, 0x1c, 0x01, 0x01,
                                  0xff, 0x04, 0x05, 0x30, 0x03, 0x82, 0x01, 0xff};
    struct crl_spec i = {&ca1, &ca1, now - 60, now + 3600, 1, -1, idp, sizeof(idp)};
    build_crl(&i, &b);
    CU_ASSERT_EQUAL_FATAL(cm_crl_parse(b.p, b.n, &ca1.cert, &crl, err, sizeof(err)), 0);
    struct cm_cert leaf = leaf_with("01", false), inter = leaf_with("01", true);
    CU_ASSERT_FALSE(cm_crl_lookup(crl, &leaf, &when, &reason, &excl));
    CU_ASSERT_TRUE(excl);
    CU_ASSERT_TRUE(cm_crl_lookup(crl, &inter, &when, &reason, &excl));
    CU_ASSERT_PTR_NULL(reason);
    cm_crl_free(crl);
    free(b.p);

    /* An unknown critical extension makes the CRL unusable. */
    static const uint8_t unknown[] = {0x30, 0x0c, 0x06, 0x03, 0x2a, 0x03, 0x04,
                                      0x01, 0x01, 0xff, 0x04, 0x02, 0x05, 0x00};
    struct crl_spec u = {&ca1, &ca1, now - 60, now + 3600, 1, -1, unknown, sizeof(unknown)};
    build_crl(&u, &b);
    expect_reject(&b, &ca1.cert, "unknown critical");
    free(b.p);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The budget: 100,000 entries parsed and indexed in under 200 ms (benchmarks.md has the
 * measured figure); here with slack for sanitizers and a loaded machine. The index stays
 * under the wire size. */
static void test_large(void)
{
    time_t now = time(NULL);
    struct crl_spec sp = {&ca1, &ca1, now - 60, now + 3600, 100000, 1, NULL, 0};
    struct buf b;
    struct cm_crl *crl;
    char err[256];
    int64_t when;
    const char *reason;
    bool excl;

    build_crl(&sp, &b);
    double t0 = now_s();
    CU_ASSERT_EQUAL_FATAL(cm_crl_parse(b.p, b.n, &ca1.cert, &crl, err, sizeof(err)), 0);
    double parse = now_s() - t0;
    CU_ASSERT_EQUAL(cm_crl_count(crl), 100000);
    char s[32];
    t0 = now_s();
    size_t hits = 0;
    for (unsigned k = 1; k <= 100000; k++) {
        snprintf(s, sizeof(s), "%02x%02x%02x", (k >> 16) & 0xff, (k >> 8) & 0xff, k & 0xff);
        struct cm_cert c = leaf_with(s, false);
        hits += cm_crl_lookup(crl, &c, &when, &reason, &excl);
    }
    double lookups = now_s() - t0;
    CU_ASSERT_EQUAL(hits, 100000);
    fprintf(stderr,
            "\n  100000-entry CRL: %zu bytes on the wire, parsed+indexed in %.1f ms, "
            "index %zu bytes, 100000 lookups in %.1f ms\n",
            b.n, parse * 1000, cm_crl_memory(crl), lookups * 1000);
    CU_ASSERT(parse < 2.0);
    CU_ASSERT(cm_crl_memory(crl) < b.n);
    cm_crl_free(crl);
    free(b.p);
}

/* OCSP: a request needs both encodings; a response that is not one is named as such. */
static void test_ocsp_pure(void)
{
    struct cm_cert bare = {0};
    unsigned char *der = (unsigned char *)1, nonce[CM_OCSP_NONCE_MAX];
    size_t len = 1, nlen = 0;
    struct cm_ocsp_answer a;
    char err[256];

    CU_ASSERT_EQUAL(cm_ocsp_request(&bare, &ca1.cert, &der, &len, nonce, &nlen), CM_EBADCERT);
    CU_ASSERT_PTR_NULL(der);
    CU_ASSERT_EQUAL(len, 0);
    /* A request about the CA itself (self-issued): a valid DER request with a nonce. */
    CU_ASSERT_EQUAL_FATAL(cm_ocsp_request(&ca1.cert, &ca1.cert, &der, &len, nonce, &nlen), 0);
    CU_ASSERT(len > 20 && der[0] == 0x30);
    CU_ASSERT(nlen > 0);
    /* Its own request is no response. */
    CU_ASSERT_EQUAL(
        cm_ocsp_check(der, len, &ca1.cert, &ca1.cert, nonce, nlen, &a, err, sizeof(err)),
        CM_EBADARG);
    CU_ASSERT_STRING_EQUAL(err, "not a DER-encoded OCSP response");
    free(der);
    CU_ASSERT_EQUAL(
        cm_ocsp_check("junk", 4, &ca1.cert, &ca1.cert, nonce, nlen, &a, err, sizeof(err)),
        CM_EBADARG);
    CU_ASSERT_STRING_EQUAL(cm_crl_reason_name(1), "keyCompromise");
    CU_ASSERT_PTR_NULL(cm_crl_reason_name(7));
    CU_ASSERT_PTR_NULL(cm_crl_reason_name(-1));
}

/* ---- The checker over file:// URLs ---- */

struct done {
    int calls;
};

static void on_done(struct cm_probe_result *res, void *arg)
{
    (void)res;
    ((struct done *)arg)->calls++;
}

/* A result whose leaf (issued by CA one) names url as its CRL distribution point. */
static struct cm_probe_result *result_for(const char *url, const char *serial)
{
    struct cm_probe_result *r = calloc(1, sizeof(*r));
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    r->tls.chain.certs = calloc(2, sizeof(struct cm_cert));
    r->tls.chain.count = 2;
    struct cm_cert *leaf = &r->tls.chain.certs[0];
    leaf->subject = strdup("CN=leaf");
    leaf->issuer = strdup("CN=Test CA one");
    leaf->serial = strdup(serial);
    leaf->aki = strdup("");
    leaf->der = malloc(1); /* present: the checker only needs the issuer's */
    leaf->der_len = 1;
    leaf->crl_urls = calloc(CM_X509_MAX_CRL_URLS, sizeof(char *));
    leaf->crl_urls[0] = strdup(url);
    leaf->crl_url_count = 1;
    leaf->ocsp_url = strdup("");
    CU_ASSERT_EQUAL_FATAL(cm_cert_copy(&r->tls.chain.certs[1], &ca1.cert), 0);
    return r;
}

static void test_checker_file(void)
{
    char dir[] = "/tmp/cmrevXXXXXX", path[300], url[320];
    time_t now = time(NULL);
    struct crl_spec sp = {&ca1, &ca1, now - 60, now + 3600, 4, 1, NULL, 0};
    struct buf b;
    uv_loop_t loop;
    struct cm_httpc *h;
    struct cm_revctx *ctx;
    struct done d = {0};

    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/ca.crl", dir);
    snprintf(url, sizeof(url), "file://%s", path);
    build_crl(&sp, &b);
    FILE *fp = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fwrite(b.p, 1, b.n, fp);
    fclose(fp);
    free(b.p);

    CU_ASSERT_EQUAL_FATAL(uv_loop_init(&loop), 0);
    CU_ASSERT_EQUAL_FATAL(cm_httpc_new(&loop, &h, NULL, 0), 0);
    CU_ASSERT_EQUAL_FATAL(cm_revctx_new(&loop, h, &ctx), 0);
    struct cm_probe_result *revoked = result_for(url, "02");
    struct cm_probe_result *good = result_for(url, "0100");
    struct cm_probe_result *missing = result_for("file:///nonexistent/ca.crl", "02");
    struct cm_probe_result *ldap = result_for("ldap://ldap.example/cn=x", "02");
    CU_ASSERT_EQUAL_FATAL(cm_rev_check(ctx, revoked, 5000, on_done, &d, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(cm_rev_check(ctx, good, 5000, on_done, &d, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(cm_rev_check(ctx, missing, 5000, on_done, &d, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(cm_rev_check(ctx, ldap, 5000, on_done, &d, NULL), 0);
    CU_ASSERT_EQUAL(d.calls, 0); /* never inside the call */
    for (int i = 0; i < 500 && d.calls < 4; i++)
        uv_run(&loop, UV_RUN_ONCE);
    CU_ASSERT_EQUAL_FATAL(d.calls, 4);

    struct cm_rev_stats st;
    cm_revctx_stats(ctx, (int64_t)now, &st);
    CU_ASSERT_EQUAL(st.fetches, 2); /* one per URL, two certificates shared the first */
    CU_ASSERT_EQUAL(st.crls, 1);
    CU_ASSERT_EQUAL(st.entries, 4);

    struct cm_rev_cert *c = &revoked->revocation->certs[0];
    CU_ASSERT_EQUAL(c->status, CM_REV_REVOKED);
    CU_ASSERT_EQUAL(c->source, CM_REV_SRC_CRL);
    CU_ASSERT_STRING_EQUAL(c->reason, "keyCompromise");
    CU_ASSERT_EQUAL(revoked->revocation->certs[1].status, CM_REV_UNCHECKED); /* the root */
    c = &good->revocation->certs[0];
    CU_ASSERT_EQUAL(c->status, CM_REV_GOOD);
    CU_ASSERT_EQUAL(c->next_update, (int64_t)(now + 3600));
    CU_ASSERT_EQUAL(c->error_count, 0);
    c = &missing->revocation->certs[0];
    CU_ASSERT_EQUAL(c->status, CM_REV_UNAVAILABLE);
    CU_ASSERT_FATAL(c->error_count == 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(c->errors[0], "cannot fetch the CRL"));
    c = &ldap->revocation->certs[0];
    CU_ASSERT_EQUAL(c->status, CM_REV_UNAVAILABLE);
    CU_ASSERT_FATAL(c->error_count == 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(c->errors[0], "scheme not supported"));

    /* A second check is served from the cache: no new fetch. */
    d.calls = 0;
    cm_revocation_free(good->revocation);
    good->revocation = NULL;
    CU_ASSERT_EQUAL_FATAL(cm_rev_check(ctx, good, 5000, on_done, &d, NULL), 0);
    for (int i = 0; i < 100 && d.calls < 1; i++)
        uv_run(&loop, UV_RUN_ONCE);
    CU_ASSERT_EQUAL(d.calls, 1);
    cm_revctx_stats(ctx, (int64_t)now, &st);
    CU_ASSERT_EQUAL(st.fetches, 2);
    CU_ASSERT_EQUAL(good->revocation->certs[0].status, CM_REV_GOOD);

    /* Two days without a check asking: the CRL and the failure are dropped (not before). */
    CU_ASSERT_EQUAL(cm_revctx_prune(ctx, (int64_t)now + 3600, CM_REV_IDLE_S), 0);
    CU_ASSERT_EQUAL(cm_revctx_prune(ctx, (int64_t)now + CM_REV_IDLE_S + 60, CM_REV_IDLE_S), 2);
    cm_revctx_stats(ctx, (int64_t)now, &st);
    CU_ASSERT_EQUAL(st.crls, 0);
    CU_ASSERT_EQUAL(st.entries, 0);
    /* Asked again: fetched again. */
    d.calls = 0;
    CU_ASSERT_EQUAL_FATAL(cm_rev_check(ctx, good, 5000, on_done, &d, NULL), 0);
    for (int i = 0; i < 100 && d.calls < 1; i++)
        uv_run(&loop, UV_RUN_ONCE);
    CU_ASSERT_EQUAL(d.calls, 1);
    cm_revctx_stats(ctx, (int64_t)now, &st);
    CU_ASSERT_EQUAL(st.fetches, 3);
    CU_ASSERT_EQUAL(st.crls, 1);
    CU_ASSERT_EQUAL(good->revocation->certs[0].status, CM_REV_GOOD);

    cm_revctx_close(ctx);
    cm_httpc_close(h);
    uv_run(&loop, UV_RUN_DEFAULT);
    CU_ASSERT_EQUAL(uv_loop_close(&loop), 0);
    cm_probe_result_free(revoked);
    cm_probe_result_free(good);
    cm_probe_result_free(missing);
    cm_probe_result_free(ldap);
    unlink(path);
    rmdir(dir);
}

/* Many cached sources: OCSP slots, one per certificate, found again through the index after it
 * grew, and pruned out of it. The responder is never asked: the leaves have no encoding, so
 * each query fails to start and the failure is what the slot caches. */
static void test_checker_many(void)
{
    enum { N = 1000 };
    static struct cm_probe_result *rs[N];
    time_t now = time(NULL);
    uv_loop_t loop;
    struct cm_httpc *h;
    struct cm_revctx *ctx;
    struct done d = {0};
    char serial[32];

    CU_ASSERT_EQUAL_FATAL(uv_loop_init(&loop), 0);
    CU_ASSERT_EQUAL_FATAL(cm_httpc_new(&loop, &h, NULL, 0), 0);
    CU_ASSERT_EQUAL_FATAL(cm_revctx_new(&loop, h, &ctx), 0);
    for (int i = 0; i < N; i++) {
        snprintf(serial, sizeof(serial), "%08x%08x", (unsigned)i * 2654435761u, (unsigned)i);
        rs[i] = result_for("file:///nonexistent/unused.crl", serial);
        struct cm_cert *leaf = &rs[i]->tls.chain.certs[0];
        /* Its one byte of "encoding" makes it checked, and no OCSP request can be built. */
        free(leaf->crl_urls[0]);
        leaf->crl_urls[0] = NULL;
        leaf->crl_url_count = 0;
        free(leaf->ocsp_url);
        leaf->ocsp_url = strdup("http://127.0.0.1:1/ocsp");
    }
    for (int round = 0; round < 2; round++) {
        d.calls = 0;
        for (int i = 0; i < N; i++)
            CU_ASSERT_EQUAL_FATAL(cm_rev_check(ctx, rs[i], 5000, on_done, &d, NULL), 0);
        for (int i = 0; i < 1000 && d.calls < N; i++)
            uv_run(&loop, UV_RUN_ONCE);
        CU_ASSERT_EQUAL(d.calls, N);
    }
    for (int i = 0; i < N; i++) {
        struct cm_rev_cert *c = &rs[i]->revocation->certs[0];
        CU_ASSERT_EQUAL(c->status, CM_REV_UNAVAILABLE);
        CU_ASSERT_FATAL(c->error_count == 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(c->errors[0], "http://127.0.0.1:1/ocsp: OCSP:"));
    }
    struct cm_rev_stats st;
    cm_revctx_stats(ctx, (int64_t)now, &st);
    CU_ASSERT_EQUAL(st.fetches, 0);
    /* The second round found every slot of the first: N slots, not 2N. */
    CU_ASSERT_EQUAL(cm_revctx_prune(ctx, (int64_t)now + 60, CM_REV_IDLE_S), 0);
    CU_ASSERT_EQUAL(cm_revctx_prune(ctx, (int64_t)now + CM_REV_IDLE_S + 60, CM_REV_IDLE_S), N);
    CU_ASSERT_EQUAL(cm_revctx_prune(ctx, (int64_t)now + CM_REV_IDLE_S + 60, CM_REV_IDLE_S), 0);
    /* Pruned out of the index too: asked again, each gets a new slot (and no stale one). */
    d.calls = 0;
    for (int i = 0; i < N; i += 10)
        CU_ASSERT_EQUAL_FATAL(cm_rev_check(ctx, rs[i], 5000, on_done, &d, NULL), 0);
    for (int i = 0; i < 1000 && d.calls < N / 10; i++)
        uv_run(&loop, UV_RUN_ONCE);
    CU_ASSERT_EQUAL(d.calls, N / 10);
    CU_ASSERT_EQUAL(cm_revctx_prune(ctx, (int64_t)now + CM_REV_IDLE_S + 60, CM_REV_IDLE_S), N / 10);

    cm_revctx_close(ctx);
    cm_httpc_close(h);
    uv_run(&loop, UV_RUN_DEFAULT);
    CU_ASSERT_EQUAL(uv_loop_close(&loop), 0);
    for (int i = 0; i < N; i++)
        cm_probe_result_free(rs[i]);
}

static CU_TestInfo tests[] = {
    {"CRL parsed, serials looked up (leading zeros, reasons, dates)", test_parse_lookup},
    {"forged CRLs: wrong key, wrong name, altered, no cRLSign, no issuer", test_forged},
    {"malformed CRLs: every truncation and bit flips", test_malformed},
    {"PEM CRL", test_pem},
    {"CRL extensions: delta, issuing distribution point, unknown critical", test_extensions},
    {"100,000 entries: parse time, lookups, index size", test_large},
    {"OCSP request and bad responses", test_ocsp_pure},
    {"checker over file://: shared fetch, cache, unreachable, unsupported scheme, pruning",
     test_checker_file},
    {"checker with a thousand cached OCSP failures: index growth, lookups, pruning",
     test_checker_many},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("revocation", tests, suite_init, suite_cleanup);
}
