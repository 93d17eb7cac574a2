/* Unit tests for the DH group judge (src/probe/dhgroup.c): the known groups by hash (checked against
 * GnuTLS's own RFC 7919 copies and the RFC 3526 2048-bit prime), an unknown safe prime, a
 * DSA-style prime (not safe), generators of small order (out of range, smooth order), a
 * composite modulus built from two primes, and the size bound for unknown groups. */
#include "cmtest.h"

#include <gnutls/gnutls.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "certmon/probe/dhgroup.h"

/* RFC 3526 section 3, the 2048-bit MODP group's prime. */
static const char MODP2048[] =
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E34"
    "04DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6"
    "F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A6916"
    "3FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C"
    "32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA95"
    "6AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF";

/* A 512-bit safe prime made by `openssl dhparam 512` (not a known group). */
static const char SAFE512[] = "8E33213A99C93BDCAFD00E0AF2154FFD3B6387397BDA73BA3F93324554BDB15C"
                              "5447252D2F2214B1779E1A822FB50B8FEC2D815E6E11773969B195652726CC5F";

/* A 1024-bit DSA-style group made by `certtool --generate-dh-params`: p is prime, (p-1)/2 is
 * not (p - 1 = 102 * (a 1018-bit number)), g has a large prime order. */
static const char DSA_P[] =
    "D9FA4BEC54CF84472058C5710839427E690630F3784990FB6853CDC2E4FC834CAAFECD4878723775E00A3DB1A56D"
    "FE6EBB1A01EBCC65ECBA4CF11CF69BFB46F2274CA187399AEC515065FC43CC13A08E3091D776BF45A23CF6D6FECC"
    "EE2E38118BA89E751AB59CFE8B70CEE4938E5ADEEF16FE927621D6BF346AB0B9C7A506BF";
static const char DSA_G[] =
    "83A54375A4722C66AAEB4AD04AF3597B483D7B761E85255A7F23474DC94F8E658419931F566152A0B9877EE45AD5"
    "1FFB73201B2099ED73D9A9CA679673F9B3A0CC7D921466FF4419E0A9FB726C8AA3EF802AF8AD0B2A6CE1F01D9CA8"
    "F3BA0CB5E43038019936DAE1C3B6DB05D622D9EF53C52D715BAAB4AEF19B87A6B294A574";
/* In the same group, an element of order dividing 102 = 2 * 3 * 17: 2^((p-1)/102) mod p. */
static const char DSA_SMOOTH_G[] =
    "160F66C511CFCDDE8FD8499E8FBBC6F2E79DFE3BEF7FCBCCD1864922EFE6CE3C9BF2C051BD5866EEC5818B9A4042"
    "229C6565FB5EF525E965FCE51050E8853C8EAE684661AEDE5B267798E72A8336949CA8046E66CA12BE82806E8EF8"
    "789DE7B1AAB05BD09E20145084B7163220DC7458A0B30C4E1EA2E93CEACC9815AD1F4942";

/* Hex to bytes into buf (at most cap); returns the length. */
static size_t unhex(const char *h, uint8_t *buf, size_t cap)
{
    size_t n = strlen(h) / 2;

    CU_ASSERT_FATAL(n <= cap);
    for (size_t i = 0; i < n; i++) {
        char two[3] = {h[2 * i], h[2 * i + 1], '\0'};
        buf[i] = (uint8_t)strtoul(two, NULL, 16);
    }
    return n;
}

static enum cm_dh_group check_hex(const char *p, const char *g)
{
    uint8_t pb[1100], gb[1100];
    size_t pn = unhex(p, pb, sizeof(pb)), gn = unhex(g, gb, sizeof(gb));

    return cm_dh_group_check(pb, pn, gb, gn);
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void test_known_groups(void)
{
    const gnutls_datum_t *primes[] = {
        &gnutls_ffdhe_2048_group_prime, &gnutls_ffdhe_3072_group_prime,
        &gnutls_ffdhe_4096_group_prime, &gnutls_ffdhe_6144_group_prime,
        &gnutls_ffdhe_8192_group_prime};
    const gnutls_datum_t *gens[] = {
        &gnutls_ffdhe_2048_group_generator, &gnutls_ffdhe_3072_group_generator,
        &gnutls_ffdhe_4096_group_generator, &gnutls_ffdhe_6144_group_generator,
        &gnutls_ffdhe_8192_group_generator};

    /* 6144 and 8192 bits are beyond the test bound: only recognition can call them good. */
    for (size_t i = 0; i < sizeof(primes) / sizeof(primes[0]); i++)
        EXPECT_INT(
            cm_dh_group_check(primes[i]->data, primes[i]->size, gens[i]->data, gens[i]->size),
            CM_DH_GROUP_GOOD);
    EXPECT_INT(check_hex(MODP2048, "02"), CM_DH_GROUP_GOOD);
    /* With a leading zero byte, as a DER integer has it. */
    uint8_t pb[300], g = 2;
    pb[0] = 0;
    size_t n = unhex(MODP2048, pb + 1, sizeof(pb) - 1);
    EXPECT_INT(cm_dh_group_check(pb, n + 1, &g, 1), CM_DH_GROUP_GOOD);
    /* A known prime with a generator of order 2 is not good. */
    pb[n] -= 1; /* p - 1 (p ends in ...FF) */
    EXPECT_INT(cm_dh_group_check(pb + 1, n, pb + 1, n), CM_DH_GROUP_SMALL_ORDER);
}

static void test_unknown_safe_prime(void)
{
    double t0 = now_ms(), first, second;

    EXPECT_INT(check_hex(SAFE512, "02"), CM_DH_GROUP_GOOD);
    first = now_ms() - t0;
    t0 = now_ms();
    EXPECT_INT(check_hex(SAFE512, "05"), CM_DH_GROUP_GOOD); /* any g in [2, p-2] */
    EXPECT_INT(check_hex(SAFE512, "02"), CM_DH_GROUP_GOOD); /* cached */
    second = now_ms() - t0;
    fprintf(stderr, "  512-bit safe prime judged in %.2f ms, then %.2f ms for two more\n", first,
            second);
}

static void test_not_safe(void)
{
    double t0 = now_ms();

    EXPECT_INT(check_hex(DSA_P, DSA_G), CM_DH_GROUP_NOT_SAFE);
    fprintf(stderr, "  1024-bit DSA-style group judged in %.2f ms\n", now_ms() - t0);
    EXPECT_INT(check_hex(DSA_P, DSA_SMOOTH_G), CM_DH_GROUP_SMALL_ORDER);
}

static void test_generator_out_of_range(void)
{
    char pm1[sizeof(SAFE512)];

    EXPECT_INT(check_hex(SAFE512, "00"), CM_DH_GROUP_SMALL_ORDER);
    EXPECT_INT(check_hex(SAFE512, "01"), CM_DH_GROUP_SMALL_ORDER);
    EXPECT_INT(check_hex(SAFE512, SAFE512), CM_DH_GROUP_SMALL_ORDER); /* g = p */
    memcpy(pm1, SAFE512, sizeof(pm1));
    pm1[sizeof(pm1) - 2] = 'E'; /* ...5F -> ...5E: g = p - 1, order 2 */
    EXPECT_INT(check_hex(SAFE512, pm1), CM_DH_GROUP_SMALL_ORDER);
}

static void test_composite(void)
{
    uint8_t p[200], g = 2;
    size_t n;

    /* 2^256 - 1 has small factors; the safe prime squared has none that trial division finds. */
    n = unhex("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", p, sizeof(p));
    EXPECT_INT(cm_dh_group_check(p, n, &g, 1), CM_DH_GROUP_COMPOSITE);
    /* SAFE512 squared (computed with Python): its only factor is 512 bits long. */
    EXPECT_INT(check_hex("4EFCC3134444ADA699F90989E3838561AC6C857E35EFF0E2834C6E5A76B05AA2"
                         "5323EE68141500AD168B2A92BF499B886CE0FAC4E7F0CC4BF69AFC38CFC6D328"
                         "04A0721FA52B6249F23ACC5FB9FB427E224137DBA5C73D43DBE991CE1D2B5A74"
                         "84714AA8380C1EDC5C3112F8F3F2836EF68C17BB311233259DDEB11C415B8B41",
                         "02"),
               CM_DH_GROUP_COMPOSITE);
    EXPECT_INT(cm_dh_group_check(p, 0, &g, 1), CM_DH_GROUP_COMPOSITE); /* empty modulus */
}

static void test_too_large(void)
{
    uint8_t p[CM_DH_CHECK_MAX_BITS / 8 + 1], g = 2;

    memset(p, 0xA5, sizeof(p));
    EXPECT_INT(cm_dh_group_check(p, sizeof(p), &g, 1), CM_DH_GROUP_UNCHECKED);
    EXPECT_INT(cm_dh_group_check(NULL, 0, &g, 1), CM_DH_GROUP_NONE);
}

static void test_names(void)
{
    CU_ASSERT_PTR_NULL(cm_dh_group_name(CM_DH_GROUP_NONE));
    EXPECT_STR(cm_dh_group_name(CM_DH_GROUP_GOOD), "good");
    EXPECT_STR(cm_dh_group_name(CM_DH_GROUP_UNCHECKED), "unchecked");
    EXPECT_STR(cm_dh_group_name(CM_DH_GROUP_NOT_SAFE), "not_safe_prime");
    EXPECT_STR(cm_dh_group_name(CM_DH_GROUP_SMALL_ORDER), "small_subgroup");
    EXPECT_STR(cm_dh_group_name(CM_DH_GROUP_COMPOSITE), "composite");
    EXPECT_STR(cm_dh_group_reason(CM_DH_GROUP_GOOD), "");
    CU_ASSERT(strstr(cm_dh_group_reason(CM_DH_GROUP_COMPOSITE), "not a prime") != NULL);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"known groups (RFC 7919, RFC 3526)", test_known_groups},
        {"unknown safe prime, cached", test_unknown_safe_prime},
        {"DSA-style prime: not safe; smooth-order generator", test_not_safe},
        {"generator out of range", test_generator_out_of_range},
        {"composite modulus", test_composite},
        {"unknown group over the bound", test_too_large},
        {"names and reasons", test_names},
        CU_TEST_INFO_NULL,
    };
    return cm_test_main("unit.dhgroup", tests, NULL, NULL);
}
