/* A fixed PKI for the revocation harnesses (fuzz_crl, fuzz_ocsp), made once with openssl:
 * "fuzz CA" (P-256, keyCertSign and cRLSign, serial 01), the leaf "leaf.example" it issued
 * with serial 1a2b3c (revoked, keyCompromise, in the seed CRLs and OCSP responses) and the
 * same key's leaf with serial 77 (good). The seeds in tests/fuzz/corpus/{crl,ocsp}/ are signed
 * by this CA, so their names and signatures match what the harnesses check against. The CA's
 * key is here so that fuzz_crl can sign mutated tbsCertLists itself (a test key, nothing
 * else trusts it). */
#ifndef CERTMON_FUZZ_PKI_H
#define CERTMON_FUZZ_PKI_H

#include <gnutls/gnutls.h>

#include "certmon/probe/x509.h"

static const char CA_PEM[] = "-----BEGIN CERTIFICATE-----\n"
                             "MIIBdzCCAR6gAwIBAgIBATAKBggqhkjOPQQDAjASMRAwDgYDVQQDDAdmdXp6IENB\n"
                             "MCAXDTI2MTIwNjA1NDk1M1oYDzIxMjYxMTEyMDU0OTUzWjASMRAwDgYDVQQDDAdm\n"
                             "dXp6IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE/raEjI3X7YApm/e1D3X1\n"
                             "+jza8yn3v/wYQZ5lWXpyHDFVlYq+4ooOnAecFUrUB7Wu+HG+LLXdDfaK90vgpTth\n"
                             "/6NjMGEwHQYDVR0OBBYEFD8g6vh1K3jnUIJqLnLgexbWOLzYMB8GA1UdIwQYMBaA\n"
                             "FD8g6vh1K3jnUIJqLnLgexbWOLzYMA4GA1UdDwEB/wQEAwIBBjAPBgNVHRMBAf8E\n"
                             "BTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIAmRqiCg01lJi9JEWCr6c2lOitgxY8Eq\n"
                             "qP33v/AxmvelAiAFlk2y9YJJ0bZgDnzMLFm3F7Ll1hUiKAJAC8aI6Mcliw==\n"
                             "-----END CERTIFICATE-----\n";
static const char CA_KEY_PEM[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgrP7bRZROWC5Pf1da\n"
    "Q7AtInhA381b34EsOWaKNZ9wZ/ehRANCAAT+toSMjdftgCmb97UPdfX6PNrzKfe/\n"
    "/BhBnmVZenIcMVWVir7iig6cB5wVStQHta74cb4std0N9or3S+ClO2H/\n"
    "-----END PRIVATE KEY-----\n";
static const char LEAF_PEM[] = "-----BEGIN CERTIFICATE-----\n"
                               "MIIBXjCCAQSgAwIBAgIDGis8MAoGCCqGSM49BAMCMBIxEDAOBgNVBAMMB2Z1enog\n"
                               "Q0EwIBcNMjYxMjA2MDU0OTUzWhgPMjEyNjExMTIwNTQ5NTNaMBcxFTATBgNVBAMM\n"
                               "DGxlYWYuZXhhbXBsZTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABF37yqkzlAHB\n"
                               "yBGNrLQEGfC7nJZdsFH8YqeQYWbhTVSzV9iN4jsPsMC7QJ4iOvvoR5UcFE/QMAkF\n"
                               "OgTq5LsoT2ujQjBAMB0GA1UdDgQWBBQzMKRUAWyV+30K4VvmEaAdjkaTHjAfBgNV\n"
                               "HSMEGDAWgBQ/IOr4dSt451CCai5y4HsW1ji82DAKBggqhkjOPQQDAgNIADBFAiEA\n"
                               "yyfJX7IxI8R1WhsBf7+Oo6bZTljkglOxl/Bqox+BI/cCIAd+H/gjvZw8g68C6vHy\n"
                               "ogetLAeu6YZ003wTAVP4PevL\n"
                               "-----END CERTIFICATE-----\n";
static const char GOOD_PEM[] = "-----BEGIN CERTIFICATE-----\n"
                               "MIIBETCBuQIBdzAKBggqhkjOPQQDAjASMRAwDgYDVQQDDAdmdXp6IENBMCAXDTI2\n"
                               "MTIwNjA1NDk1OFoYDzIxMjYxMTEyMDU0OTU4WjAXMRUwEwYDVQQDDAxsZWFmLmV4\n"
                               "YW1wbGUwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARd+8qpM5QBwcgRjay0BBnw\n"
                               "u5yWXbBR/GKnkGFm4U1Us1fYjeI7D7DAu0CeIjr76EeVHBRP0DAJBToE6uS7KE9r\n"
                               "MAoGCCqGSM49BAMCA0cAMEQCIGhYceNzpDS6Yi9sNPNjPeKuhZ2OoNZ1o8zz/c8W\n"
                               "c6RwAiBhjAXFSGh2pxPay9n2LgARcukBdJ+gx3OAvQTHvb78Jw==\n"
                               "-----END CERTIFICATE-----\n";

/* The certificate of pem into *out (with its DER). Exits on failure: the harness would
 * otherwise fuzz nothing but the "no issuer" path. */
__attribute__((unused)) static void fz_pki_cert(const char *pem, struct cm_cert *out)
{
    gnutls_datum_t in = {(unsigned char *)pem, (unsigned)strlen(pem)}, der = {NULL, 0};

    if (gnutls_pem_base64_decode2("CERTIFICATE", &in, &der) < 0 ||
        cm_cert_from_der(der.data, der.size, out) != 0 || !out->der) {
        fprintf(stderr, "fuzz: the embedded test certificate does not load\n");
        exit(1);
    }
    gnutls_free(der.data);
}

#endif
