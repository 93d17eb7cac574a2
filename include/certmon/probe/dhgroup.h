/* Judging a finite-field Diffie-Hellman group a server sent (TLS 1.2 and older DHE): is its
 * modulus a safe prime, and does its generator have large order? A composite modulus, a prime
 * p whose (p-1)/2 is not prime (so that subgroups of small order exist), or a generator whose
 * order has only small factors, lets an attacker compute the discrete logarithm (or confine
 * the key to a small subgroup) and read the traffic.
 *
 * Pure and thread-safe: called from the thread pool, where handshakes are described. */
#ifndef CERTMON_DHGROUP_H
#define CERTMON_DHGROUP_H

#include <stddef.h>
#include <stdint.h>

/* Ordered from nothing known to worst, so that the worst of several handshakes is the
 * largest value. */
enum cm_dh_group {
    CM_DH_GROUP_NONE = 0,    /* no finite-field DHE handshake */
    CM_DH_GROUP_UNCHECKED,   /* larger than CM_DH_CHECK_MAX_BITS and not a known group */
    CM_DH_GROUP_GOOD,        /* a known group (RFC 7919, RFC 3526), or a safe prime with a
                              * generator of order (p-1)/2 or p-1 */
    CM_DH_GROUP_NOT_SAFE,    /* p is prime but (p-1)/2 is not: small subgroups exist, and the
                              * generator's order is not known to be large */
    CM_DH_GROUP_SMALL_ORDER, /* the generator is out of range (0, 1, p-1, >= p) or its order
                              * has only prime factors under 2^16 */
    CM_DH_GROUP_COMPOSITE,   /* the modulus is not prime */
};

/* Unknown groups larger than this are not tested (8192 bits would cost over a second); the
 * known ones are recognised at any size. */
#define CM_DH_CHECK_MAX_BITS 4096

/* Judges the group with prime p and generator g, unsigned big-endian (leading zero bytes
 * allowed), as GnuTLS's gnutls_dh_get_group gives them. Known groups are recognised by the
 * SHA-256 of their prime; the verdicts of other groups are cached per (p, g) for the
 * process, since a server sends the same group to every probe. An unknown safe prime costs
 * two primality tests: about 1 ms at 512 bits, 25 ms at 2048, 160 ms at 4096 (measured on a
 * loaded 2-core machine); anything composite is refused after one. */
enum cm_dh_group cm_dh_group_check(const uint8_t *p, size_t plen, const uint8_t *g, size_t glen);

/* "good", "unchecked", "not_safe_prime", "small_subgroup", "composite"; NULL for NONE. */
const char *cm_dh_group_name(enum cm_dh_group v);

/* Why a bad group is bad, for a finding's message ("its modulus is not a prime"); "" for
 * the others. */
const char *cm_dh_group_reason(enum cm_dh_group v);

#endif
