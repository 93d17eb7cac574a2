/* Hand-built probe results that several unit suites judge, render or store (analyze, report,
 * state): one copy, so that a field added to struct cm_probe_result is filled in one place.
 * Strings are heap copies that cm_probe_result_free and cm_cert_clear free; allocation
 * failures fail the test (CUnit fatal assertions). */
#ifndef CERTMON_CMFIXTURE_H
#define CERTMON_CMFIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "certmon/probe/result.h"

/* strdup that fails the test when out of memory. */
char *cm_tf_strdup(const char *s);

/* Fills c the way x509.c would: serial 0123abcd, RSA 2048 with SHA-256, a fixed SHA-256
 * fingerprint; a leaf (not is_ca) gets the one SAN example.com. Key identifiers stay NULL (as
 * for a certificate without them): names alone decide who issued whom. */
void cm_tf_fill_cert(struct cm_cert *c, const char *subject, const char *issuer, int64_t not_before,
                     int64_t not_after, bool is_ca);

/* A successful probe of example.com:443 (SNI and verified name example.com, address
 * 192.0.2.1) finished at now: TLS 1.3, TLS_AES_128_GCM_SHA256, X25519, trusted and matching,
 * no staple; timings dns 1.5, connect 2.5, no STARTTLS (-1), handshake 10.25, total 14.25 ms.
 * The chain has two zeroed certificates for the caller to fill (cm_tf_fill_cert). */
struct cm_probe_result *cm_tf_endpoint(int64_t now);

/* Turns r into what cm_file_scan makes of a PEM bundle at path holding r's chain: a path, no
 * endpoint, no handshake, no verification, the certificates in file order, total 0.25 ms. */
void cm_tf_to_file(struct cm_probe_result *r, const char *path);

#endif
