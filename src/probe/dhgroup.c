#include "certmon/probe/dhgroup.h"

#include <gmp.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

/* The well-known groups, by the SHA-256 of their prime (big-endian, no leading zeros), all
 * with generator 2 and safe primes by construction. Computed from OpenSSL 3's named groups
 * (`openssl genpkey -genparam -algorithm DH -pkeyopt group:NAME`); unit.dhgroup checks the
 * RFC 7919 ones against GnuTLS's own copies. */
static const struct {
    unsigned bits;
    const char *sha256;
} known[] = {
    {2048, "9cd3b7f336872f46c09428d1bbc19877a4d440512cda8d1c1cf0cd6e33698966"}, /* ffdhe2048 */
    {3072, "0eaf67db3a839156d5013494a5318a772b5697d270d721f37f092efc69ea5a17"}, /* ffdhe3072 */
    {4096, "4648414224ac881b3d0dc59b466f96d06a558278776807797ecf1f66ff397b3e"}, /* ffdhe4096 */
    {6144, "227ac9066b3ddd9e193670cda2388fa884f65ba0cf98b742d1fe77a6687c79c7"}, /* ffdhe6144 */
    {8192, "770b14efaf6f049929c523113b3fa99a8d11dab1b18af3609590122075d19833"}, /* ffdhe8192 */
    {1536, "64fcc83ec403930bf18393dbc883ccaa1fbb08ac876f77f7aa99748ca945019b"}, /* RFC 3526 */
    {2048, "d66436f79bbd6b2e38c0ffbd079be904d2641415e2e67140e09448be9a60890e"}, /* RFC 3526 */
    {3072, "48cf8b092fbce4359d9871abf74f98e25b6163379eaa15cd9087e800c6d1c55c"}, /* RFC 3526 */
    {4096, "4ee95187682bcb230ad26a95205f6920e84708f6251b3894329b09ec23919e33"}, /* RFC 3526 */
    {6144, "d1bfe6d0925ce7e4da262b62861514a7755e35831e429f343e7b864848657efd"}, /* RFC 3526 */
    {8192, "39ab4feab950a3128fb71accb9fc3965d857012e081998a85996e3ea8b3c3bcf"}, /* RFC 3526 */
};

/* Verdicts of other groups, keyed by the SHA-256 of p and g: a small table replaced round
 * robin. A fleet behind one TLS terminator sends one group; a few dozen distinct groups is a
 * lot. */
#define CACHE_SLOTS 64

static struct {
    uint8_t key[32];
    enum cm_dh_group verdict;
} cache[CACHE_SLOTS];
static unsigned cache_used, cache_next;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

/* GMP 6.2 runs Baillie-PSW, then reps - 24 Miller-Rabin rounds with random bases: no BPSW
 * pseudoprime is known, and one round more guards against a crafted one. Each round costs a
 * modular exponentiation (about 1 ms at 2048 bits, 8 ms at 4096). */
#define PRIME_REPS 25

/* Primes under this bound the smooth part of p - 1 when the prime is not safe. */
#define SMOOTH_BOUND 65536

static void strip(const uint8_t **d, size_t *len)
{
    while (*len > 0 && (*d)[0] == 0) {
        (*d)++;
        (*len)--;
    }
}

static void hex(const uint8_t *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static bool is_known(const uint8_t *p, size_t plen, const uint8_t *g, size_t glen)
{
    uint8_t h[32];
    char hx[65];

    if (glen != 1 || g[0] != 2)
        return false;
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, p, plen, h) < 0)
        return false;
    hex(h, sizeof(h), hx);
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (known[i].bits == plen * 8 && strcmp(known[i].sha256, hx) == 0)
            return true;
    return false;
}

/* Not a safe prime: is g's order made of small primes only? Its order divides p - 1; if it
 * divides the SMOOTH_BOUND-smooth part s of p - 1, then g^s = 1 and Pohlig-Hellman finds
 * discrete logarithms in it at once. */
static bool smooth_order(const mpz_t p, const mpz_t g)
{
    static const unsigned bound = SMOOTH_BOUND;
    unsigned char sieve[SMOOTH_BOUND / 2]; /* sieve[i]: 2i+1 is composite */
    mpz_t rest, s, t;
    bool smooth;

    mpz_inits(rest, s, t, NULL);
    mpz_sub_ui(rest, p, 1);
    mpz_set_ui(s, 1);
    while (mpz_even_p(rest)) {
        mpz_mul_ui(s, s, 2);
        mpz_fdiv_q_2exp(rest, rest, 1);
    }
    memset(sieve, 0, sizeof(sieve));
    for (unsigned r = 3; r < bound; r += 2) {
        if (sieve[r / 2])
            continue;
        for (unsigned long m = (unsigned long)r * r; m < bound; m += 2UL * r)
            sieve[m / 2] = 1;
        while (mpz_divisible_ui_p(rest, r)) {
            mpz_mul_ui(s, s, r);
            mpz_divexact_ui(rest, rest, r);
        }
    }
    mpz_powm(t, g, s, p);
    smooth = mpz_cmp_ui(t, 1) == 0;
    mpz_clears(rest, s, t, NULL);
    return smooth;
}

static enum cm_dh_group judge(const uint8_t *pd, size_t plen, const uint8_t *gd, size_t glen)
{
    mpz_t p, g, q;
    enum cm_dh_group v;

    mpz_inits(p, g, q, NULL);
    mpz_import(p, plen, 1, 1, 1, 0, pd);
    mpz_import(g, glen, 1, 1, 1, 0, gd);
    mpz_sub_ui(q, p, 1); /* p - 1, then (p - 1) / 2 */
    if (mpz_cmp_ui(g, 2) < 0 || mpz_cmp(g, q) >= 0)
        v = CM_DH_GROUP_SMALL_ORDER; /* 0, 1, p - 1 and beyond: order 1 or 2, or no group */
    else if (mpz_probab_prime_p(p, PRIME_REPS) == 0)
        v = CM_DH_GROUP_COMPOSITE;
    else {
        mpz_fdiv_q_2exp(q, q, 1);
        /* A safe prime: every g in [2, p - 2] has order q or 2q. */
        if (mpz_probab_prime_p(q, PRIME_REPS) != 0)
            v = CM_DH_GROUP_GOOD;
        else
            v = smooth_order(p, g) ? CM_DH_GROUP_SMALL_ORDER : CM_DH_GROUP_NOT_SAFE;
    }
    mpz_clears(p, g, q, NULL);
    return v;
}

static bool cache_key(const uint8_t *p, size_t plen, const uint8_t *g, size_t glen, uint8_t key[32])
{
    gnutls_hash_hd_t h;

    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
        return false;
    /* The length of p first: no (p, g) pair can collide with another split of the bytes. */
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)((uint64_t)plen >> (56 - 8 * i));
    if (gnutls_hash(h, len, sizeof(len)) < 0 || gnutls_hash(h, p, plen) < 0 ||
        gnutls_hash(h, g, glen) < 0) {
        gnutls_hash_deinit(h, NULL);
        return false;
    }
    gnutls_hash_deinit(h, key);
    return true;
}

enum cm_dh_group cm_dh_group_check(const uint8_t *p, size_t plen, const uint8_t *g, size_t glen)
{
    uint8_t key[32];
    bool keyed;
    enum cm_dh_group v = CM_DH_GROUP_NONE;

    if (!p || !g)
        return CM_DH_GROUP_NONE;
    strip(&p, &plen);
    strip(&g, &glen);
    if (plen == 0)
        return CM_DH_GROUP_COMPOSITE; /* a zero modulus: no group at all */
    if (is_known(p, plen, g, glen))
        return CM_DH_GROUP_GOOD;
    if (plen * 8 > CM_DH_CHECK_MAX_BITS)
        return CM_DH_GROUP_UNCHECKED;
    keyed = cache_key(p, plen, g, glen, key);
    if (keyed) {
        pthread_mutex_lock(&cache_lock);
        for (unsigned i = 0; i < cache_used; i++)
            if (memcmp(cache[i].key, key, sizeof(key)) == 0) {
                v = cache[i].verdict;
                break;
            }
        pthread_mutex_unlock(&cache_lock);
        if (v != CM_DH_GROUP_NONE)
            return v;
    }
    /* Outside the lock: two threads may judge the same new group once each, which is
     * cheaper than holding every other handshake's description up behind one test. */
    v = judge(p, plen, g, glen);
    if (keyed) {
        pthread_mutex_lock(&cache_lock);
        unsigned slot = cache_used < CACHE_SLOTS ? cache_used++ : cache_next++ % CACHE_SLOTS;
        memcpy(cache[slot].key, key, sizeof(key));
        cache[slot].verdict = v;
        pthread_mutex_unlock(&cache_lock);
    }
    return v;
}

const char *cm_dh_group_name(enum cm_dh_group v)
{
    switch (v) {
    case CM_DH_GROUP_UNCHECKED:
        return "unchecked";
    case CM_DH_GROUP_GOOD:
        return "good";
    case CM_DH_GROUP_NOT_SAFE:
        return "not_safe_prime";
    case CM_DH_GROUP_SMALL_ORDER:
        return "small_subgroup";
    case CM_DH_GROUP_COMPOSITE:
        return "composite";
    default:
        return NULL;
    }
}

const char *cm_dh_group_reason(enum cm_dh_group v)
{
    switch (v) {
    case CM_DH_GROUP_NOT_SAFE:
        return "its modulus p is prime but not a safe prime ((p-1)/2 is not prime), so it has "
               "small subgroups a key can be confined to";
    case CM_DH_GROUP_SMALL_ORDER:
        return "its generator has small order (it is out of range, or its order has only "
               "small prime factors), so discrete logarithms in it are easy";
    case CM_DH_GROUP_COMPOSITE:
        return "its modulus is not a prime, so it is no Diffie-Hellman group and its "
               "discrete logarithms can be split along the factors";
    default:
        return "";
    }
}
