/* unit.pack: packed report texts (src/base/pack.c). A real report (the one `check --json`
 * and the daemon write, with a chain of two certificates) packs to a small fraction of its
 * size and back byte for byte; every damaged packed text is refused with -EINVAL, never
 * read past its end, never a crash. */
#include "cmtest.h"

#include "certmon/base/pack.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A report as the daemon stores one (keys in cm_report_json order). */
static const char REPORT[] =
    "{\"target\":\"www.example.org\",\"host\":\"www.example.org\",\"port\":443,\"sni\":null,"
    "\"address\":\"192.0.2.7\",\"starttls\":null,\"status\":\"ok\",\"error\":null,\"timing_ms\":"
    "{\"dns\":1.204,\"connect\":11.533,\"starttls\":null,\"handshake\":30.461,\"total\":43.198},"
    "\"tls\":{\"version\":\"TLS1.3\",\"cipher\":\"TLS_AES_256_GCM_SHA384\",\"group\":\"X25519\"},"
    "\"verification\":{\"trusted\":true,\"hostname_match\":true,\"errors\":[]},\"ocsp\":"
    "{\"stapled\":false,\"status\":null,\"verified\":false,\"this_update\":null,\"next_update\":"
    "null},\"mtls\":{\"client_cert_requested\":false,\"client_cert_sent\":false,\"client_cert\":"
    "null},\"chain\":[{\"position\":0,\"subject\":\"CN=www.example.org\",\"issuer\":\"CN=R11,"
    "O=Let's Encrypt,C=US\",\"serial\":\"04a1b2c3d4e5f60718293a4b5c6d7e8f9012\",\"not_before\":"
    "\"2026-11-02T08:11:09Z\",\"not_after\":\"2027-01-31T08:11:08Z\",\"days_left\":55,\"key\":"
    "{\"type\":\"ECDSA\",\"bits\":256},\"signature\":\"RSA-SHA256\",\"sha256\":"
    "\"5f1c0e7a9b3d2f4e6a8c0b1d3f5e7a9c2b4d6f8e0a1c3e5f7b9d2c4e6a8f0b1d\",\"sans\":"
    "[\"www.example.org\",\"example.org\"],\"san_count\":2,\"sans_truncated\":false,\"is_ca\":"
    "false,\"self_signed\":false,\"must_staple\":false,\"spki_sha256\":"
    "\"8d2e4f6a0b1c3d5e7f9a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d1e\",\"key_usage\":"
    "[\"digitalSignature\"],\"extended_key_usage\":[\"serverAuth\"],\"revocation\":{\"status\":"
    "\"good\",\"source\":\"crl\",\"revoked_at\":null,\"reason\":null,\"this_update\":"
    "\"2026-12-05T00:00:00Z\",\"next_update\":\"2026-12-12T00:00:00Z\",\"crl_stale\":false,"
    "\"errors\":[]},\"revocation_urls\":{\"crl\":[\"http://r11.c.lencr.org/58.crl\"],\"ocsp\":"
    "null}},{\"position\":1,\"subject\":\"CN=R11,O=Let's Encrypt,C=US\",\"issuer\":\"CN=ISRG "
    "Root X1,O=Internet Security Research Group,C=US\",\"serial\":"
    "\"8a7d3e13d62f30ef2386bd29076b34f8\",\"not_before\":\"2024-03-13T00:00:00Z\",\"not_after\":"
    "\"2027-03-12T23:59:59Z\",\"days_left\":95,\"key\":{\"type\":\"RSA\",\"bits\":2048},"
    "\"signature\":\"RSA-SHA256\",\"sha256\":"
    "\"591e9ce6c863d3a079e9fabe1478c7339a26b21269dde795211361024ae31a44\",\"sans\":[],"
    "\"san_count\":0,\"sans_truncated\":false,\"is_ca\":true,\"self_signed\":false,"
    "\"must_staple\":false,\"spki_sha256\":"
    "\"1f2e3d4c5b6a79880716253443526170897a6b5c4d3e2f10a9b8c7d6e5f40312\",\"key_usage\":"
    "[\"digitalSignature\",\"keyCertSign\",\"cRLSign\"],\"extended_key_usage\":[\"serverAuth\","
    "\"clientAuth\"],\"revocation\":{\"status\":\"good\",\"source\":\"crl\",\"revoked_at\":null,"
    "\"reason\":null,\"this_update\":\"2026-12-01T00:00:00Z\",\"next_update\":"
    "\"2027-01-01T00:00:00Z\",\"crl_stale\":false,\"errors\":[]},\"revocation_urls\":{\"crl\":"
    "[\"http://x1.c.lencr.org/\"],\"ocsp\":null}}],\"trust_anchor\":\"CN=ISRG Root X1,"
    "O=Internet Security Research Group,C=US\",\"findings\":[{\"id\":\"ocsp.not_stapled\","
    "\"severity\":\"info\",\"message\":\"the server staples no OCSP response\",\"position\":0,"
    "\"first_seen\":\"2026-12-01T10:00:00Z\"}],\"posture\":null,\"ari\":null,\"labels\":"
    "{\"team\":\"web\"},\"last_probe\":\"2026-12-06T10:00:00Z\",\"last_success\":"
    "\"2026-12-06T10:00:00Z\",\"failures\":0,\"status_since\":\"2026-12-01T10:00:00Z\"}";

static void roundtrip(const char *text, size_t len, size_t *packed_len)
{
    unsigned char *p = NULL;
    char *back = NULL;
    size_t plen = 0, blen = 0;

    CU_ASSERT_EQUAL_FATAL(cm_pack(text, len, &p, &plen), 0);
    CU_ASSERT(cm_is_packed(p, plen));
    CU_ASSERT_EQUAL(p[0], CM_PACK_V1);
    CU_ASSERT_EQUAL_FATAL(cm_unpack(p, plen, &back, &blen), 0);
    CU_ASSERT_EQUAL(blen, len);
    CU_ASSERT(memcmp(back, text, len) == 0);
    CU_ASSERT_EQUAL(back[len], '\0');
    *packed_len = plen;
    free(p);
    free(back);
}

/* The dictionary is what makes a report small: well under a fifth of its size (plain
 * DEFLATE gives about two fifths). */
static void test_report_roundtrip(void)
{
    size_t plen;

    roundtrip(REPORT, strlen(REPORT), &plen);
    CU_ASSERT(plen < strlen(REPORT) / 5);
    printf("\n    report %zu bytes -> packed %zu bytes\n", strlen(REPORT), plen);
}

/* Empty, tiny, binary and large texts pack and come back unchanged; packing again after a
 * large text (the compressor is reused) still gives the same bytes. */
static void test_other_texts(void)
{
    static const char bin[] = {0, 1, 2, '{', (char)0xff, 0};
    size_t big = 1 << 20, plen, a_len, b_len;
    char *t = malloc(big);
    unsigned char *a = NULL, *b = NULL;

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    roundtrip("", 0, &plen);
    roundtrip("{}", 2, &plen);
    roundtrip(bin, sizeof(bin), &plen);
    for (size_t i = 0; i < big; i++)
        t[i] = (char)("0123456789abcdef"[(i * 7919u) % 16]);
    roundtrip(t, big, &plen);
    CU_ASSERT_EQUAL(cm_pack(REPORT, strlen(REPORT), &a, &a_len), 0);
    CU_ASSERT_EQUAL(cm_pack(t, big, &b, &b_len), 0);
    free(b);
    CU_ASSERT_EQUAL(cm_pack(REPORT, strlen(REPORT), &b, &b_len), 0);
    CU_ASSERT_EQUAL(a_len, b_len);
    CU_ASSERT(a && b && memcmp(a, b, a_len) == 0);
    CU_ASSERT_EQUAL(cm_pack(t, (size_t)CM_PACK_MAX + 1, &b, &b_len), -EINVAL);
    free(a);
    free(b);
    free(t);
}

static int unpack_rc(const unsigned char *p, size_t len)
{
    char *out = NULL;
    size_t olen;
    int rc = cm_unpack(p, len, &out, &olen);

    free(out);
    return rc;
}

/* A damaged packed text is refused: JSON text, an unknown format byte, a length over the
 * limit, a length that does not match, every truncation, flipped bytes, trailing bytes. */
static void test_damaged(void)
{
    unsigned char *p = NULL, *c;
    size_t plen;
    int bad = 0;

    CU_ASSERT_EQUAL(unpack_rc((const unsigned char *)"{\"a\":1}", 7), -EINVAL);
    CU_ASSERT_FALSE(cm_is_packed("{\"a\":1}", 7));
    CU_ASSERT_EQUAL(unpack_rc((const unsigned char *)"", 0), -EINVAL);
    CU_ASSERT_EQUAL_FATAL(cm_pack(REPORT, strlen(REPORT), &p, &plen), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c = malloc(plen + 1));
    memcpy(c, p, plen);
    c[0] = 0x02;
    CU_ASSERT_EQUAL(unpack_rc(c, plen), -EINVAL);
    memcpy(c, p, plen);
    c[4] = 0x7f; /* 2 GB */
    CU_ASSERT_EQUAL(unpack_rc(c, plen), -EINVAL);
    memcpy(c, p, plen);
    c[1] ^= 1; /* one byte more or less than the stream holds */
    CU_ASSERT_EQUAL(unpack_rc(c, plen), -EINVAL);
    for (size_t n = 0; n < plen; n++)
        bad += unpack_rc(p, n) == -EINVAL;
    CU_ASSERT_EQUAL(bad, (int)plen);
    memcpy(c, p, plen);
    c[plen] = 0;
    CU_ASSERT_EQUAL(unpack_rc(c, plen + 1), -EINVAL);
    /* Flipped bits inside the stream: refused or, when DEFLATE cannot tell, a text of the
     * promised length (the store then finds it is not JSON); never more. */
    for (size_t i = 5; i < plen; i++) {
        char *out = NULL;
        size_t olen = 0;
        memcpy(c, p, plen);
        c[i] ^= 0x10;
        int rc = cm_unpack(c, plen, &out, &olen);
        CU_ASSERT(rc == -EINVAL || (rc == 0 && olen == strlen(REPORT)));
        free(out);
    }
    free(c);
    free(p);
}

static CU_TestInfo tests[] = {
    {"a report packs small and comes back", test_report_roundtrip},
    {"other texts, compressor reuse, the size limit", test_other_texts},
    {"damaged packed texts are refused", test_damaged},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("pack", tests, NULL, NULL);
}
