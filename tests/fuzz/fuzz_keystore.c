/* libFuzzer harness: the keystore readers (src/probe/keystore.c) on bytes from a file a user
 * points certmon at: the Java KeyStore parser (cm_jks_read, certmon's own bounded reader) and
 * PKCS#12 through GnuTLS (cm_p12_read), each with and without a password. Byte 0, low bit:
 * give the password "changeit" (the seeds were written with it, so the digest and MAC checks
 * pass on them); the rest is the file. What comes back must be what the contracts promise. */
#include "fuzz_util.h"

#include "certmon/base/error.h"
#include "certmon/probe/keystore.h"

static void check(int rc, const struct cm_chain *chain, enum cm_integrity integ, const char *err,
                  bool jks, const char *pw)
{
    FZ_CHECK(rc == 0 || rc == CM_EBADCERT || rc == -ENOMEM);
    if (rc < 0) {
        FZ_CHECK(chain->count == 0 && chain->certs == NULL);
        FZ_CHECK(integ == CM_INTEGRITY_NONE);
        FZ_CHECK(rc == -ENOMEM || err[0] != '\0');
        return;
    }
    FZ_CHECK(chain->count > 0 && chain->count <= CM_KEYSTORE_MAX_CERTS);
    for (size_t i = 0; i < chain->count; i++)
        FZ_CHECK(chain->certs[i].sha256 && chain->certs[i].spki_sha256);
    if (jks)
        FZ_CHECK(pw ? integ == CM_INTEGRITY_VERIFIED || integ == CM_INTEGRITY_FAILED
                    : integ == CM_INTEGRITY_UNVERIFIED);
    else
        FZ_CHECK(integ == CM_INTEGRITY_VERIFIED || integ == CM_INTEGRITY_ABSENT);
}

FZ_QUIET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *pw;
    struct cm_chain chain = {0};
    enum cm_integrity integ;
    char err[300];
    int rc;

    if (size < 1)
        return 0;
    pw = data[0] & 1 ? "changeit" : NULL;
    data++;
    size--;

    err[0] = '\0';
    rc = cm_jks_read(data, size, pw, &chain, &integ, err, sizeof(err));
    FZ_CHECK(rc != 0 || cm_jks_sniff(data, size));
    check(rc, &chain, integ, err, true, pw);
    cm_chain_clear(&chain);

    /* GnuTLS's PKCS#12 decoder is slow on large inputs: only what looks like a PFX. */
    if (cm_p12_sniff(data, size)) {
        err[0] = '\0';
        rc = cm_p12_read(data, size, pw, &chain, &integ, err, sizeof(err));
        check(rc, &chain, integ, err, false, pw);
        cm_chain_clear(&chain);
    }
    return 0;
}
