/* The few cryptographic primitives the pure stages need (a webhook's HMAC, a Message-ID's
 * randomness), behind plain C types: GnuTLS's crypto API stays inside src/base/crypto.c, so
 * payload rendering includes no library header. */
#ifndef CERTMON_CRYPTO_H
#define CERTMON_CRYPTO_H

#include <stddef.h>

#define CM_SHA256_LEN 32

/* HMAC-SHA256 of data (len bytes) under key (keylen bytes) into mac. Returns 0, or CM_ETLS
 * when the library fails. */
int cm_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                   unsigned char mac[CM_SHA256_LEN]);

/* Room for cm_unique_tag's text with its NUL. */
#define CM_UNIQUE_TAG_MAX 24

/* A tag that differs between processes: 16 hex digits of nonce-quality randomness, or
 * "p" and the process id when the generator fails. buf holds CM_UNIQUE_TAG_MAX bytes. */
void cm_unique_tag(char buf[CM_UNIQUE_TAG_MAX]);

#endif
