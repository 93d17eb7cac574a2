/* OCSP queries without a staple (RFC 6960): the request, with a nonce, and the checks on the
 * response. Pure: DER in, DER or a verdict out; the checker (revocation.c) does the I/O. */
#include "certmon/base/error.h"
#include "certmon/probe/revocation.h"
#include "certmon/base/text.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/ocsp.h>
#include <gnutls/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int import(const struct cm_cert *c, gnutls_x509_crt_t *out)
{
    gnutls_datum_t d = {c->der, (unsigned)c->der_len};

    *out = NULL;
    if (!c->der || gnutls_x509_crt_init(out) < 0)
        return -1;
    if (gnutls_x509_crt_import(*out, &d, GNUTLS_X509_FMT_DER) < 0) {
        gnutls_x509_crt_deinit(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

int cm_ocsp_request(const struct cm_cert *cert, const struct cm_cert *issuer, unsigned char **der,
                    size_t *len, unsigned char *nonce, size_t *nonce_len)
{
    gnutls_x509_crt_t c = NULL, i = NULL;
    gnutls_ocsp_req_t req = NULL;
    gnutls_datum_t out = {NULL, 0}, n = {NULL, 0};
    int rc = CM_EBADCERT;

    *der = NULL;
    *len = 0;
    if (import(cert, &c) < 0 || import(issuer, &i) < 0)
        goto out;
    rc = -ENOMEM;
    if (gnutls_ocsp_req_init(&req) < 0 ||
        gnutls_ocsp_req_add_cert(req, GNUTLS_DIG_SHA1, i, c) < 0 ||
        gnutls_ocsp_req_randomize_nonce(req) < 0 || gnutls_ocsp_req_export(req, &out) < 0 ||
        gnutls_ocsp_req_get_nonce(req, NULL, &n) < 0)
        goto out;
    if (n.size > CM_OCSP_NONCE_MAX)
        goto out;
    memcpy(nonce, n.data, n.size);
    *nonce_len = n.size;
    if (!(*der = malloc(out.size)))
        goto out;
    memcpy(*der, out.data, out.size);
    *len = out.size;
    rc = 0;
out:
    gnutls_free(out.data);
    gnutls_free(n.data);
    gnutls_ocsp_req_deinit(req);
    gnutls_x509_crt_deinit(c);
    gnutls_x509_crt_deinit(i);
    return rc;
}

int cm_ocsp_check(const void *der, size_t len, const struct cm_cert *cert,
                  const struct cm_cert *issuer, const unsigned char *nonce, size_t nonce_len,
                  struct cm_ocsp_answer *out, char *err, size_t errlen)
{
    gnutls_x509_crt_t c = NULL, i = NULL;
    gnutls_ocsp_resp_t resp = NULL;
    gnutls_datum_t d = {(unsigned char *)der, (unsigned)len}, rn = {NULL, 0};
    unsigned verify = 0, cstatus = 0, reason = 0;
    int rc = CM_EBADARG;
    time_t this_update, next_update, revoked;

    memset(out, 0, sizeof(*out));
    if (err && errlen)
        err[0] = '\0';
    if (import(cert, &c) < 0 || import(issuer, &i) < 0) {
        cm_errf(err, errlen, "the certificate or its issuer cannot be used");
        goto out;
    }
    if (gnutls_ocsp_resp_init(&resp) < 0) {
        rc = -ENOMEM;
        goto out;
    }
    if (gnutls_ocsp_resp_import(resp, &d) < 0) {
        cm_errf(err, errlen, "not a DER-encoded OCSP response");
        goto out;
    }
    int st = gnutls_ocsp_resp_get_status(resp);
    if (st != GNUTLS_OCSP_RESP_SUCCESSFUL) {
        cm_errf(err, errlen, "the responder answered with error status %d", st);
        goto out;
    }
    /* The signer is the issuer, or a responder certificate the issuer signed for OCSP
     * signing (GnuTLS checks the delegation and the EKU). */
    if (gnutls_ocsp_resp_verify_direct(resp, i, &verify, 0) < 0 || verify != 0) {
        cm_errf(err, errlen,
                "the response's signature does not verify with the issuer or a "
                "responder it delegated to");
        goto out;
    }
    if (gnutls_ocsp_resp_check_crt(resp, 0, c) < 0) {
        cm_errf(err, errlen, "the response is about another certificate");
        goto out;
    }
    if (gnutls_ocsp_resp_get_nonce(resp, NULL, &rn) == 0) {
        bool same = rn.size == nonce_len && memcmp(rn.data, nonce, nonce_len) == 0;
        gnutls_free(rn.data);
        if (!same) {
            cm_errf(err, errlen, "the response's nonce is not the request's (a replay?)");
            goto out;
        }
    }
    if (gnutls_ocsp_resp_get_single(resp, 0, NULL, NULL, NULL, NULL, &cstatus, &this_update,
                                    &next_update, &revoked, &reason) < 0) {
        cm_errf(err, errlen, "the response holds no status");
        goto out;
    }
    out->this_update = this_update == (time_t)-1 ? 0 : (int64_t)this_update;
    out->next_update = next_update == (time_t)-1 ? 0 : (int64_t)next_update;
    if (cstatus == GNUTLS_OCSP_CERT_REVOKED) {
        out->status = CM_REV_REVOKED;
        out->revoked_at = revoked == (time_t)-1 ? 0 : (int64_t)revoked;
        /* GnuTLS gives 0 (unspecified) when the response names no reason. */
        out->reason = reason ? cm_crl_reason_name((int)reason) : NULL;
    } else if (cstatus == GNUTLS_OCSP_CERT_GOOD) {
        out->status = CM_REV_GOOD;
    } else {
        cm_errf(err, errlen, "the responder does not know the certificate (status unknown)");
        goto out;
    }
    rc = 0;
out:
    gnutls_ocsp_resp_deinit(resp);
    gnutls_x509_crt_deinit(c);
    gnutls_x509_crt_deinit(i);
    return rc;
}
