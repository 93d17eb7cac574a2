/* libFuzzer harness: checking an OCSP response (cm_ocsp_check, src/probe/ocsp.c), which the
 * revocation checker does with whatever a responder named in a certificate sends back.
 *
 * Input: byte 0: which certificate was asked about (low bit: 0 the revoked leaf 1a2b3c, 1 the
 * good leaf 77 of fuzz_pki.h); byte 1: the request's nonce length (modulo 33; 0: no nonce);
 * then that many nonce bytes; then the response. Every check but GnuTLS's own parser sits
 * behind the signature, so only the seeds (real responses of `openssl ocsp` signed by the
 * test CA) and what keeps their signed part reach the status and nonce paths. */
#include "fuzz_util.h"
#include "fuzz_pki.h"

#include "certmon/base/error.h"
#include "certmon/probe/revocation.h"

static struct cm_cert ca, leaf, good;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    cm_log_threshold = CM_LOG_ERROR;
    fz_pki_cert(CA_PEM, &ca);
    fz_pki_cert(LEAF_PEM, &leaf);
    fz_pki_cert(GOOD_PEM, &good);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cm_ocsp_answer ans;
    char err[256];
    size_t nl;

    if (size < 2)
        return 0;
    nl = data[1] % 33;
    if (size - 2 < nl)
        return 0;
    const struct cm_cert *cert = (data[0] & 1) ? &good : &leaf;
    const uint8_t *nonce = data + 2, *resp = data + 2 + nl;
    int rc = cm_ocsp_check(resp, size - 2 - nl, cert, &ca, nl ? nonce : NULL, nl, &ans, err,
                           sizeof(err));
    FZ_CHECK(rc == 0 || rc == CM_EBADARG || rc == -ENOMEM);
    FZ_CHECK(rc != CM_EBADARG || err[0] != '\0');
    if (rc == 0) {
        FZ_CHECK(ans.status == CM_REV_GOOD || ans.status == CM_REV_REVOKED);
        FZ_CHECK(ans.status == CM_REV_REVOKED || (ans.revoked_at == 0 && ans.reason == NULL));
    }
    /* The same response for the other certificate and for the issuer itself. */
    rc = cm_ocsp_check(resp, size - 2 - nl, cert == &good ? &leaf : &good, &ca, NULL, 0, &ans, err,
                       sizeof(err));
    FZ_CHECK(rc == 0 || rc == CM_EBADARG || rc == -ENOMEM);
    return 0;
}
