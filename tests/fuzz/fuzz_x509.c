/* libFuzzer harness: describing certificates from hostile bytes (src/probe/x509.c), and what is
 * built from that description downstream (analysis and the JSON report).
 *
 * The same input goes through every door a peer or a file opens: one DER certificate
 * (cm_cert_from_der), a peer's chain of one (cm_chain_from_der_list, with host name matching
 * against a fixed name and against the certificate's own first SAN) and a PEM bundle or DER
 * file (cm_chain_append_data, as file targets read them). The resulting chain is analysed as
 * a file target's would be and rendered as `check --json` and text. */
#include "fuzz_util.h"

#include "certmon/analysis/analyze.h"
#include "certmon/base/error.h"
#include "certmon/probe/probe.h"
#include "certmon/analysis/report.h"
#include "certmon/probe/tlsio.h"
#include "certmon/probe/x509.h"

#include <jansson.h>

/* 2026-12-01T00:00:00Z: a fixed "now" keeps runs reproducible. */
#define NOW ((time_t)1796083200)

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    cm_log_threshold = CM_LOG_ERROR;
    devnull = fopen("/dev/null", "we");
    return 0;
}

static void check_cert(const struct cm_cert *c)
{
    char t[64];

    FZ_CHECK(c->subject && c->issuer && c->serial && c->signature && c->sha256 && c->key_type);
    FZ_CHECK(c->sig_hash && c->ski && c->aki);
    FZ_CHECK(c->san_count == 0 || c->sans);
    for (size_t i = 0; i < c->san_count; i++)
        FZ_CHECK(c->sans[i]);
    cm_time_rfc3339(c->not_before, t, sizeof(t));
    cm_time_rfc3339(c->not_after, t, sizeof(t));
    (void)cm_cert_days_left(c, NOW);
}

/* Analyses res under the default policy and renders it as `check --json` and as text. */
static void analyse(struct cm_probe_result *res)
{
    struct cm_policy policy = CM_POLICY_DEFAULT;
    struct cm_findings f = {0};
    json_t *j;

    res->dns_ms = res->connect_ms = res->starttls_ms = res->handshake_ms = res->total_ms = -1;
    res->finished_at = NOW;
    if (cm_analyze(res, &policy, NOW, &f) == 0) {
        if ((j = cm_report_json(res, &f, NOW))) {
            char *s = json_dumps(j, JSON_COMPACT);
            FZ_CHECK(s != NULL);
            free(s);
            json_decref(j);
        }
        if (devnull)
            cm_report_text(devnull, res, &f, NOW, true);
    }
    cm_findings_clear(&f);
}

/* chain as a file target's certificates, and as what a TLS 1.2 server sent (verified, not
 * trusted, with the given name match and an unparseable OCSP staple). */
static void describe(const struct cm_chain *chain, bool name_match)
{
    static char file_target[] = "file:/fuzz/cert.pem", file_path[] = "/fuzz/cert.pem";
    static char ep_target[] = "www.example.org:443", host[] = "www.example.org";
    static char version[] = "TLS1.2", cipher[] = "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA";
    struct cm_probe_result file = {0}, ep = {0};

    file.target = file_target;
    file.path = file_path;
    file.tls.chain = *chain;
    analyse(&file);

    ep.target = ep_target;
    ep.host = ep.verify_name = host;
    ep.port = 443;
    strcpy(ep.address, "192.0.2.1");
    ep.tls.version = version;
    ep.tls.cipher = cipher;
    ep.tls.dh_bits = 1024;
    ep.tls.verify.done = true;
    ep.tls.verify.hostname_match = name_match;
    ep.tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_SIGNER_NOT_FOUND;
    ep.tls.ocsp.status = CM_OCSP_BAD;
    ep.tls.chain = *chain;
    analyse(&ep);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cm_cert c = {0}, copy = {0};
    struct cm_chain chain = {0};
    struct cm_der der = {data, size};
    bool match;
    int rc;

    rc = cm_cert_from_der(data, size, &c);
    FZ_CHECK(rc == 0 || rc == CM_EBADCERT || rc == -ENOMEM);
    if (rc == 0) {
        check_cert(&c);
        if (cm_cert_copy(&copy, &c) == 0) {
            FZ_CHECK(!strcmp(copy.subject, c.subject) && copy.san_count == c.san_count);
            cm_cert_clear(&copy);
        }
    }

    /* As a peer's chain: a certificate that does not parse keeps its place. */
    if (cm_chain_from_der_list(NULL, &der, 1, "www.example.org", &chain, &match) == 0) {
        FZ_CHECK(chain.count == 1);
        check_cert(&chain.certs[0]);
        describe(&chain, match);
        cm_chain_clear(&chain);
    }
    if (rc == 0 && c.san_count > 0 &&
        cm_chain_from_der_list(NULL, &der, 1, c.sans[0], &chain, &match) == 0) {
        cm_chain_clear(&chain);
    }
    if (cm_chain_from_der_list(NULL, &der, 1, "192.0.2.1", &chain, &match) == 0)
        cm_chain_clear(&chain);
    cm_cert_clear(&c);

    /* As a file: PEM bundle or one DER certificate. */
    rc = cm_chain_append_data(&chain, data, size);
    FZ_CHECK(rc > 0 || rc == CM_ENOCERT || rc == CM_EBADCERT || rc == -ENOMEM);
    FZ_CHECK(rc <= 0 || chain.count == (size_t)rc);
    for (size_t i = 0; i < chain.count; i++)
        check_cert(&chain.certs[i]);
    (void)cm_chain_earliest_expiry(&chain);
    describe(&chain, false);
    cm_chain_clear(&chain);
    return 0;
}
