/* GnuTLS's crypto primitives behind plain C types (include/certmon/base/crypto.h). */
#include "certmon/base/crypto.h"
#include "certmon/base/error.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <unistd.h>

int cm_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                   unsigned char mac[CM_SHA256_LEN])
{
    return gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, keylen, data, len, mac) < 0 ? CM_ETLS : 0;
}

void cm_unique_tag(char buf[CM_UNIQUE_TAG_MAX])
{
    unsigned char rnd[8];

    if (gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof(rnd)) == 0) {
        for (size_t i = 0; i < sizeof(rnd); i++)
            snprintf(buf + 2 * i, CM_UNIQUE_TAG_MAX - 2 * i, "%02x", rnd[i]);
    } else {
        snprintf(buf, CM_UNIQUE_TAG_MAX, "p%ld", (long)getpid());
    }
}
