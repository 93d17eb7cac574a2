/* libFuzzer harness: the CRL index (src/probe/crl.c), a hand-written DER reader over CRLs fetched
 * from URLs that certificates name (so: from anyone who can issue or serve one).
 *
 * cm_crl_parse checks the signature before it reads the revoked entries, so random bytes
 * never reach the entry parser, sort and lookups. The harness therefore has two modes,
 * chosen by the low bit of byte 0:
 *   0: the rest goes to cm_crl_parse as it is (outer DER, PEM, the signature check);
 *   1: the rest is a tbsCertList (the whole TLV) that the harness signs with the fixed test
 *      CA's key (fuzz_pki.h) and wraps into a CertificateList, so every mutation that keeps
 *      the CA's issuer name passes the check and reaches the entries and the CRL extensions.
 * A CRL that parses is then asked about the fixed leaves, serials that the seeds list, odd
 * serial strings, and a serial taken from the input, as a CA and as an end entity. */
#include "fuzz_util.h"
#include "fuzz_pki.h"

#include "certmon/base/error.h"
#include "certmon/probe/revocation.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

static struct cm_cert ca, leaf, good;
static gnutls_privkey_t ca_key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    gnutls_datum_t k = {(unsigned char *)CA_KEY_PEM, (unsigned)strlen(CA_KEY_PEM)};

    (void)argc;
    (void)argv;
    cm_log_threshold = CM_LOG_ERROR;
    fz_pki_cert(CA_PEM, &ca);
    fz_pki_cert(LEAF_PEM, &leaf);
    fz_pki_cert(GOOD_PEM, &good);
    if (gnutls_privkey_init(&ca_key) < 0 ||
        gnutls_privkey_import_x509_raw(ca_key, &k, GNUTLS_X509_FMT_PEM, NULL, 0) < 0) {
        fprintf(stderr, "fuzz_crl: the embedded CA key does not load\n");
        exit(1);
    }
    return 0;
}

/* A DER length header for n into p; returns its size. */
static size_t der_len(uint8_t *p, size_t n)
{
    if (n < 0x80) {
        p[0] = (uint8_t)n;
        return 1;
    }
    size_t k = 0;
    for (size_t v = n; v; v >>= 8)
        k++;
    p[0] = (uint8_t)(0x80 | k);
    for (size_t i = 0; i < k; i++)
        p[1 + i] = (uint8_t)(n >> (8 * (k - 1 - i)));
    return 1 + k;
}

/* SEQUENCE { tbs, ecdsa-with-SHA256, BIT STRING signature-by-the-CA } into a new buffer. */
static uint8_t *sign_wrap(const uint8_t *tbs, size_t len, size_t *out_len)
{
    static const uint8_t alg[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                  0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
    gnutls_datum_t d = {(unsigned char *)tbs, (unsigned)len}, sig = {NULL, 0};
    uint8_t hdr[8], bhdr[8];
    size_t hl, bl, body;
    uint8_t *out, *p;

    if (gnutls_privkey_sign_data2(ca_key, GNUTLS_SIGN_ECDSA_SHA256, 0, &d, &sig) < 0)
        return NULL;
    bl = der_len(bhdr, sig.size + 1);
    body = len + sizeof(alg) + 1 + bl + 1 + sig.size;
    hl = der_len(hdr, body);
    if (!(out = malloc(1 + hl + body))) {
        gnutls_free(sig.data);
        return NULL;
    }
    p = out;
    *p++ = 0x30;
    memcpy(p, hdr, hl), p += hl;
    memcpy(p, tbs, len), p += len;
    memcpy(p, alg, sizeof(alg)), p += sizeof(alg);
    *p++ = 0x03;
    memcpy(p, bhdr, bl), p += bl;
    *p++ = 0x00;
    memcpy(p, sig.data, sig.size), p += sig.size;
    *out_len = (size_t)(p - out);
    gnutls_free(sig.data);
    return out;
}

/* Looks serial up as an end entity's and as a CA's; the answers must be self-consistent. */
static void lookup(const struct cm_crl *crl, const struct cm_cert *base, const char *serial)
{
    struct cm_cert c = *base;

    c.serial = (char *)serial;
    for (int ca_bit = 0; ca_bit < 2; ca_bit++) {
        int64_t when = -1;
        const char *reason = (const char *)1;
        bool excluded = false;

        c.is_ca = ca_bit;
        bool hit = cm_crl_lookup(crl, &c, &when, &reason, &excluded);
        FZ_CHECK(!(hit && excluded));
        if (hit) {
            FZ_CHECK(reason == NULL || strlen(reason) > 0);
            FZ_CHECK(cm_crl_count(crl) > 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    struct cm_crl *crl = NULL;
    uint8_t *signed_crl = NULL;
    char err[256], serial[2 * 24 + 1];
    int rc;

    if (size < 1)
        return 0;
    if (data[0] & 1) {
        size_t n = 0;
        if (!(signed_crl = sign_wrap(data + 1, size - 1, &n)))
            return 0;
        rc = cm_crl_parse(signed_crl, n, &ca, &crl, err, sizeof(err));
    } else {
        rc = cm_crl_parse(data + 1, size - 1, &ca, &crl, err, sizeof(err));
    }
    FZ_CHECK(rc == 0 || rc == CM_EBADARG || rc == -ENOMEM);
    FZ_CHECK(rc == 0 ? crl != NULL : crl == NULL);
    /* A refusal names its reason. */
    FZ_CHECK(rc != CM_EBADARG || err[0] != '\0');
    if (rc == 0) {
        FZ_CHECK(cm_crl_memory(crl) >= cm_crl_count(crl));
        (void)cm_crl_this_update(crl);
        (void)cm_crl_next_update(crl);
        lookup(crl, &leaf, leaf.serial);
        lookup(crl, &good, good.serial);
        lookup(crl, &leaf, "0a");
        lookup(crl, &leaf, "0b0c");
        lookup(crl, &leaf, "00ff01");
        lookup(crl, &leaf, "00");
        lookup(crl, &leaf, "");
        lookup(crl, &leaf, "abc");
        lookup(crl, &leaf, "zz");
        /* The input's last bytes as a serial (up to 24 octets: longer than RFC 5280's 20). */
        size_t n = size - 1 < 24 ? size - 1 : 24;
        for (size_t i = 0; i < n; i++) {
            serial[2 * i] = hex[data[size - n + i] >> 4];
            serial[2 * i + 1] = hex[data[size - n + i] & 15];
        }
        serial[2 * n] = '\0';
        lookup(crl, &leaf, serial);
        cm_crl_free(crl);
    }
    free(signed_crl);
    return 0;
}
