/* Unit tests for findings (src/analyze.c): hand-built probe results judged at a fixed time. */
#include "cmtest.h"

#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certmon/analyze.h"
#include "certmon/probe.h"

#define DAY 86400
#define NOW ((time_t)1800000000) /* 2027-01-15T08:00:00Z */

static char *xstrdup(const char *s)
{
    char *d = strdup(s);

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    return d;
}

/* Fills c the way x509.c would, with heap strings cm_cert_clear can free. */
static void fill_cert(struct cm_cert *c, const char *subject, const char *issuer,
                      int64_t not_before, int64_t not_after, bool is_ca)
{
    memset(c, 0, sizeof(*c));
    c->subject = xstrdup(subject);
    c->issuer = xstrdup(issuer);
    c->serial = xstrdup("0123abcd");
    c->signature = xstrdup("RSA-SHA256");
    c->sha256 = xstrdup("5f1c9e2a0d7b43e8a6c1f0b9d2e7a4c3b8f6e1d0c9a7b5e3f2d1c0b9a8e7f6d5");
    c->key_type = "RSA";
    c->key_bits = 2048;
    c->not_before = not_before;
    c->not_after = not_after;
    c->is_ca = is_ca;
    c->self_signed = strcmp(subject, issuer) == 0;
    if (!is_ca) {
        c->sans = calloc(1, sizeof(*c->sans));
        CU_ASSERT_PTR_NOT_NULL_FATAL(c->sans);
        c->sans[0] = xstrdup("example.com");
        c->san_count = 1;
    }
}

/* A successful probe of example.com:443 that saw a healthy two-certificate chain: the leaf
 * valid for 90 more days, the intermediate for 1825, trusted, matching the name. */
static struct cm_probe_result *healthy(void)
{
    struct cm_probe_result *r = calloc(1, sizeof(*r));

    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    r->target = xstrdup("example.com:443");
    r->host = xstrdup("example.com");
    r->port = 443;
    r->sni = xstrdup("example.com");
    r->verify_name = xstrdup("example.com");
    strcpy(r->address, "192.0.2.1");
    r->error_kind = CM_ERRK_NONE;
    r->error_phase = CM_PHASE_DONE;
    r->dns_ms = 1.5;
    r->connect_ms = 2.5;
    r->handshake_ms = 10.25;
    r->total_ms = 14.25;
    r->tls.version = xstrdup("TLS1.3");
    r->tls.cipher = xstrdup("TLS_AES_128_GCM_SHA256");
    r->tls.group = xstrdup("X25519");
    r->tls.verify.done = true;
    r->tls.verify.trusted = true;
    r->tls.verify.hostname_match = true;
    r->tls.verify.status = 0;
    r->tls.chain.certs = calloc(2, sizeof(struct cm_cert));
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->tls.chain.certs);
    r->tls.chain.count = 2;
    fill_cert(&r->tls.chain.certs[0], "CN=example.com", "CN=Example CA", NOW - DAY, NOW + 90 * DAY,
              false);
    fill_cert(&r->tls.chain.certs[1], "CN=Example CA", "CN=Example Root", NOW - 100 * DAY,
              NOW + 1825LL * DAY, true);
    r->finished_at = NOW;
    return r;
}

/* Drops the chain down to its first n certificates. */
static void truncate_chain(struct cm_probe_result *r, size_t n)
{
    for (size_t i = n; i < r->tls.chain.count; i++)
        cm_cert_clear(&r->tls.chain.certs[i]);
    r->tls.chain.count = n;
}

static void run(const struct cm_probe_result *r, const struct cm_policy *p, struct cm_findings *f)
{
    memset(f, 0, sizeof(*f));
    CU_ASSERT_EQUAL_FATAL(cm_analyze(r, p, NOW, f), 0);
}

static void expect_finding(const struct cm_findings *f, size_t i, const char *id,
                           enum cm_severity sev, int pos, const char *msg, unsigned line)
{
    char what[64];

    snprintf(what, sizeof(what), "findings has item %zu", i);
    CU_assertImplementation(i < f->count, line, what, __FILE__, "", CU_FALSE);
    if (i >= f->count)
        return;
    expect_str(f->items[i].id, id, "id", line);
    expect_int(f->items[i].severity, sev, "severity", line);
    expect_int(f->items[i].position, pos, "position", line);
    expect_str(f->items[i].message, msg, "message", line);
}

static const struct cm_policy def = CM_POLICY_DEFAULT;

static void test_policy_default(void)
{
    EXPECT_INT(def.warn_days, 30);
    EXPECT_INT(def.crit_days, 7);
}

static void test_healthy(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f;

    run(r, &def, &f);
    EXPECT_INT(f.count, 0);
    CU_ASSERT_PTR_NULL(f.items);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_OK);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_expiring_warning(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f;

    r->tls.chain.certs[0].not_after = NOW + 30 * DAY - 1;
    run(r, &def, &f);
    EXPECT_INT(f.count, 1);
    expect_finding(&f, 0, "cert.expiring", CM_SEV_WARNING, 0,
                   "leaf certificate 0 (CN=example.com) expires in 29 days, on "
                   "2027-02-14T07:59:59Z",
                   __LINE__);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_WARNING);
    cm_findings_clear(&f);
    EXPECT_INT(f.count, 0);
    CU_ASSERT_PTR_NULL(f.items);

    /* Exactly warn_days left is not yet a warning. */
    r->tls.chain.certs[0].not_after = NOW + 30 * DAY;
    run(r, &def, &f);
    EXPECT_INT(f.count, 0);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_expiring_critical(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f;

    r->tls.chain.certs[0].not_after = NOW + 7 * DAY - 1;
    run(r, &def, &f);
    EXPECT_INT(f.count, 1);
    expect_finding(&f, 0, "cert.expiring", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expires in 6 days, on "
                   "2027-01-22T07:59:59Z",
                   __LINE__);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    cm_findings_clear(&f);

    /* Exactly crit_days left: only a warning. */
    r->tls.chain.certs[0].not_after = NOW + 7 * DAY;
    run(r, &def, &f);
    EXPECT_INT(f.count, 1);
    expect_finding(&f, 0, "cert.expiring", CM_SEV_WARNING, 0,
                   "leaf certificate 0 (CN=example.com) expires in 7 days, on "
                   "2027-01-22T08:00:00Z",
                   __LINE__);
    cm_findings_clear(&f);

    /* One day and a bit: singular. */
    r->tls.chain.certs[0].not_after = NOW + DAY + 5;
    run(r, &def, &f);
    expect_finding(&f, 0, "cert.expiring", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expires in 1 day, on "
                   "2027-01-16T08:00:05Z",
                   __LINE__);
    cm_findings_clear(&f);

    /* Expiring this very second: not expired yet, 0 days left. */
    r->tls.chain.certs[0].not_after = NOW;
    run(r, &def, &f);
    EXPECT_INT(f.count, 1);
    expect_finding(&f, 0, "cert.expiring", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expires in 0 days, on "
                   "2027-01-15T08:00:00Z",
                   __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_intermediate_expiring(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f;

    r->tls.chain.certs[1].not_after = NOW + 10 * DAY;
    run(r, &def, &f);
    EXPECT_INT(f.count, 1);
    expect_finding(&f, 0, "cert.expiring", CM_SEV_WARNING, 1,
                   "chain certificate 1 (CN=Example CA) expires in 10 days, on "
                   "2027-01-25T08:00:00Z",
                   __LINE__);
    cm_findings_clear(&f);

    /* Both expiring: one finding each, in chain order. */
    r->tls.chain.certs[0].not_after = NOW + 3 * DAY;
    run(r, &def, &f);
    EXPECT_INT(f.count, 2);
    expect_finding(&f, 0, "cert.expiring", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expires in 3 days, on "
                   "2027-01-18T08:00:00Z",
                   __LINE__);
    expect_finding(&f, 1, "cert.expiring", CM_SEV_WARNING, 1,
                   "chain certificate 1 (CN=Example CA) expires in 10 days, on "
                   "2027-01-25T08:00:00Z",
                   __LINE__);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_custom_policy(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f;
    const struct cm_policy off = {.warn_days = 0, .crit_days = 0};
    const struct cm_policy wide = {.warn_days = 120, .crit_days = 91};

    r->tls.chain.certs[0].not_after = NOW + 1;
    run(r, &off, &f);
    EXPECT_INT(f.count, 0);
    cm_findings_clear(&f);

    r->tls.chain.certs[0].not_after = NOW + 90 * DAY;
    run(r, &wide, &f);
    EXPECT_INT(f.count, 1);
    expect_finding(&f, 0, "cert.expiring", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expires in 90 days, on "
                   "2027-04-15T08:00:00Z",
                   __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_expired(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f;

    r->tls.chain.certs[0].not_after = NOW - 1;
    run(r, &def, &f);
    EXPECT_INT(f.count, 1);
    expect_finding(&f, 0, "cert.expired", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expired on 2027-01-15T07:59:59Z", __LINE__);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    cm_findings_clear(&f);

    r->tls.chain.certs[0].not_after = NOW - DAY - 1;
    run(r, &def, &f);
    expect_finding(&f, 0, "cert.expired", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expired 1 day ago, on "
                   "2027-01-14T07:59:59Z",
                   __LINE__);
    cm_findings_clear(&f);

    r->tls.chain.certs[0].not_after = NOW - 3 * DAY - 5;
    run(r, &def, &f);
    EXPECT_INT(f.count, 1);
    expect_finding(&f, 0, "cert.expired", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expired 3 days ago, on "
                   "2027-01-12T07:59:55Z",
                   __LINE__);
    cm_findings_clear(&f);

    /* An expired intermediate. */
    r->tls.chain.certs[0].not_after = NOW + 90 * DAY;
    r->tls.chain.certs[1].not_after = NOW - 10;
    run(r, &def, &f);
    EXPECT_INT(f.count, 1);
    expect_finding(&f, 0, "cert.expired", CM_SEV_CRITICAL, 1,
                   "chain certificate 1 (CN=Example CA) expired on 2027-01-15T07:59:50Z", __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_not_yet_valid(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f;

    r->tls.chain.certs[0].not_before = NOW + 1;
    run(r, &def, &f);
    EXPECT_INT(f.count, 1);
    expect_finding(&f, 0, "cert.not_yet_valid", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) is not valid before "
                   "2027-01-15T08:00:01Z",
                   __LINE__);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    cm_findings_clear(&f);

    /* Valid from exactly now is valid. */
    r->tls.chain.certs[0].not_before = NOW;
    run(r, &def, &f);
    EXPECT_INT(f.count, 0);
    cm_findings_clear(&f);

    /* GnuTLS reports NOT_ACTIVATED as an INVALID chain: no chain.untrusted on top. */
    r->tls.chain.certs[0].not_before = NOW + 10 * DAY;
    r->tls.verify.trusted = false;
    r->tls.verify.status = GNUTLS_CERT_INVALID | GNUTLS_CERT_NOT_ACTIVATED;
    run(r, &def, &f);
    EXPECT_INT(f.count, 1);
    expect_finding(&f, 0, "cert.not_yet_valid", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) is not valid before "
                   "2027-01-25T08:00:00Z",
                   __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_untrusted(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f;

    r->tls.verify.trusted = false;
    r->tls.verify.status = GNUTLS_CERT_INVALID | GNUTLS_CERT_SIGNER_NOT_FOUND;
    run(r, &def, &f);
    EXPECT_INT(f.count, 1);
    expect_finding(&f, 0, "chain.untrusted", CM_SEV_CRITICAL, -1,
                   "the chain does not verify against the trust store: signer_not_found", __LINE__);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    cm_findings_clear(&f);

    /* Several reasons, listed in a stable order; expiry is left to cert.expired. */
    r->tls.verify.status = GNUTLS_CERT_INVALID | GNUTLS_CERT_INSECURE_ALGORITHM |
                           GNUTLS_CERT_SIGNER_NOT_FOUND | GNUTLS_CERT_EXPIRED;
    r->tls.chain.certs[1].not_after = NOW - 1;
    run(r, &def, &f);
    EXPECT_INT(f.count, 2);
    expect_finding(&f, 0, "cert.expired", CM_SEV_CRITICAL, 1,
                   "chain certificate 1 (CN=Example CA) expired on 2027-01-15T07:59:59Z", __LINE__);
    expect_finding(&f, 1, "chain.untrusted", CM_SEV_CRITICAL, -1,
                   "the chain does not verify against the trust store: signer_not_found, "
                   "insecure_algorithm",
                   __LINE__);
    cm_findings_clear(&f);

    /* A self-signed leaf sent with other certificates is just untrusted. */
    r->tls.chain.certs[1].not_after = NOW + 1825LL * DAY;
    r->tls.verify.status = GNUTLS_CERT_INVALID | GNUTLS_CERT_SIGNER_NOT_FOUND;
    r->tls.chain.certs[0].self_signed = true;
    run(r, &def, &f);
    EXPECT_INT(f.count, 1);
    expect_finding(&f, 0, "chain.untrusted", CM_SEV_CRITICAL, -1,
                   "the chain does not verify against the trust store: signer_not_found", __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_self_signed(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f;

    truncate_chain(r, 1);
    cm_cert_clear(&r->tls.chain.certs[0]);
    fill_cert(&r->tls.chain.certs[0], "CN=localhost", "CN=localhost", NOW - DAY, NOW + 90 * DAY,
              false);
    CU_ASSERT_TRUE_FATAL(r->tls.chain.certs[0].self_signed);
    r->tls.verify.trusted = false;
    r->tls.verify.status = GNUTLS_CERT_INVALID | GNUTLS_CERT_SIGNER_NOT_FOUND;
    run(r, &def, &f);
    EXPECT_INT(f.count, 1);
    expect_finding(&f, 0, "chain.self_signed", CM_SEV_CRITICAL, 0,
                   "the leaf certificate (CN=localhost) is self-signed and not in the trust "
                   "store",
                   __LINE__);
    for (size_t i = 0; i < f.count; i++)
        CU_ASSERT_STRING_NOT_EQUAL(f.items[i].id, "chain.untrusted");
    cm_findings_clear(&f);

    /* And it does not match example.com either. */
    r->tls.verify.hostname_match = false;
    run(r, &def, &f);
    EXPECT_INT(f.count, 2);
    expect_finding(&f, 0, "chain.self_signed", CM_SEV_CRITICAL, 0,
                   "the leaf certificate (CN=localhost) is self-signed and not in the trust "
                   "store",
                   __LINE__);
    expect_finding(&f, 1, "host.mismatch", CM_SEV_CRITICAL, 0,
                   "the leaf certificate (CN=localhost) is not valid for example.com", __LINE__);
    cm_findings_clear(&f);

    /* A single leaf that is not self-signed: untrusted. */
    r->tls.verify.hostname_match = true;
    r->tls.chain.certs[0].self_signed = false;
    run(r, &def, &f);
    EXPECT_INT(f.count, 1);
    expect_finding(&f, 0, "chain.untrusted", CM_SEV_CRITICAL, -1,
                   "the chain does not verify against the trust store: signer_not_found", __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_expired_not_untrusted(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f;

    r->tls.chain.certs[0].not_after = NOW - 2 * DAY - 30;
    r->tls.verify.trusted = false;
    r->tls.verify.status = GNUTLS_CERT_INVALID | GNUTLS_CERT_EXPIRED;
    run(r, &def, &f);
    EXPECT_INT(f.count, 1);
    expect_finding(&f, 0, "cert.expired", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expired 2 days ago, on "
                   "2027-01-13T07:59:30Z",
                   __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_trusted_flag_only(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f;

    /* A trusted chain reports nothing even if stray bits are set... */
    r->tls.verify.status = GNUTLS_CERT_SIGNER_NOT_FOUND;
    run(r, &def, &f);
    EXPECT_INT(f.count, 0);
    cm_findings_clear(&f);

    /* ...and without verification there is nothing to judge trust or name by. */
    r->tls.verify.done = false;
    r->tls.verify.trusted = false;
    r->tls.verify.hostname_match = false;
    r->tls.verify.status = GNUTLS_CERT_INVALID | GNUTLS_CERT_SIGNER_NOT_FOUND;
    run(r, &def, &f);
    EXPECT_INT(f.count, 0);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_host_mismatch(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f;

    r->tls.verify.hostname_match = false;
    free(r->verify_name);
    r->verify_name = xstrdup("api.example.net");
    run(r, &def, &f);
    EXPECT_INT(f.count, 1);
    expect_finding(&f, 0, "host.mismatch", CM_SEV_CRITICAL, 0,
                   "the leaf certificate (CN=example.com) is not valid for api.example.net",
                   __LINE__);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    cm_findings_clear(&f);

    /* Untrusted and mismatched: both, chain first. */
    r->tls.verify.trusted = false;
    r->tls.verify.status = GNUTLS_CERT_INVALID | GNUTLS_CERT_SIGNER_NOT_FOUND;
    run(r, &def, &f);
    EXPECT_INT(f.count, 2);
    expect_finding(&f, 0, "chain.untrusted", CM_SEV_CRITICAL, -1,
                   "the chain does not verify against the trust store: signer_not_found", __LINE__);
    expect_finding(&f, 1, "host.mismatch", CM_SEV_CRITICAL, 0,
                   "the leaf certificate (CN=example.com) is not valid for api.example.net",
                   __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_probe_failed(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f;

    truncate_chain(r, 0);
    r->tls.verify.done = false;
    r->tls.verify.trusted = false;
    r->tls.verify.hostname_match = false;
    r->error_kind = CM_ERRK_CONNECT;
    r->error_phase = CM_PHASE_CONNECT;
    r->error_message = xstrdup("192.0.2.1: connection refused");
    run(r, &def, &f);
    EXPECT_INT(f.count, 1);
    expect_finding(&f, 0, "probe.failed", CM_SEV_CRITICAL, -1, "192.0.2.1: connection refused",
                   __LINE__);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    cm_findings_clear(&f);

    r->error_kind = CM_ERRK_TIMEOUT;
    free(r->error_message);
    r->error_message = NULL;
    run(r, &def, &f);
    EXPECT_INT(f.count, 1);
    /* Without a message the finding still says something. */
    expect_finding(&f, 0, "probe.failed", CM_SEV_CRITICAL, -1, "probe failed", __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);

    /* A handshake that failed after the certificate arrived: the failure comes first, then
     * what the chain shows. */
    r = healthy();
    r->error_kind = CM_ERRK_TLS;
    r->error_phase = CM_PHASE_HANDSHAKE;
    r->error_message = xstrdup("received fatal alert");
    r->tls.chain.certs[0].not_after = NOW - 1;
    r->tls.verify.trusted = false;
    r->tls.verify.status = GNUTLS_CERT_INVALID | GNUTLS_CERT_EXPIRED;
    run(r, &def, &f);
    EXPECT_INT(f.count, 2);
    expect_finding(&f, 0, "probe.failed", CM_SEV_CRITICAL, -1, "received fatal alert", __LINE__);
    expect_finding(&f, 1, "cert.expired", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expired on 2027-01-15T07:59:59Z", __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_appends(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f = {0};

    r->tls.verify.hostname_match = false;
    CU_ASSERT_EQUAL(cm_analyze(r, &def, NOW, &f), 0);
    CU_ASSERT_EQUAL(cm_analyze(r, &def, NOW, &f), 0);
    EXPECT_INT(f.count, 2);
    expect_finding(&f, 0, "host.mismatch", CM_SEV_CRITICAL, 0,
                   "the leaf certificate (CN=example.com) is not valid for example.com", __LINE__);
    expect_finding(&f, 1, "host.mismatch", CM_SEV_CRITICAL, 0,
                   "the leaf certificate (CN=example.com) is not valid for example.com", __LINE__);
    cm_findings_clear(&f);
    cm_findings_clear(&f);
    cm_findings_clear(NULL);
    cm_probe_result_free(r);
    cm_probe_result_free(NULL);
}

static void test_status(void)
{
    struct cm_finding items[3] = {
        {"x.info", CM_SEV_INFO, NULL, -1},
        {"x.ok", CM_SEV_OK, NULL, 0},
        {"x.info2", CM_SEV_INFO, NULL, 1},
    };
    struct cm_findings f = {items, 0};

    EXPECT_INT(cm_findings_status(&f), CM_STATUS_OK);
    f.count = 3;
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_OK);
    items[1].severity = CM_SEV_WARNING;
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_WARNING);
    items[0].severity = CM_SEV_CRITICAL;
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    items[0].severity = CM_SEV_INFO;
    items[2].severity = CM_SEV_CRITICAL;
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    /* The status doubles as the monitoring-plugin exit code. */
    EXPECT_INT(CM_STATUS_OK, 0);
    EXPECT_INT(CM_STATUS_WARNING, 1);
    EXPECT_INT(CM_STATUS_CRITICAL, 2);
    EXPECT_INT(CM_STATUS_UNKNOWN, 3);
}

static void test_names(void)
{
    EXPECT_STR(cm_status_name(CM_STATUS_OK), "ok");
    EXPECT_STR(cm_status_name(CM_STATUS_WARNING), "warning");
    EXPECT_STR(cm_status_name(CM_STATUS_CRITICAL), "critical");
    EXPECT_STR(cm_status_name(CM_STATUS_UNKNOWN), "unknown");
    EXPECT_STR(cm_status_name((enum cm_status)42), "unknown");
    EXPECT_STR(cm_severity_name(CM_SEV_OK), "ok");
    EXPECT_STR(cm_severity_name(CM_SEV_INFO), "info");
    EXPECT_STR(cm_severity_name(CM_SEV_WARNING), "warning");
    EXPECT_STR(cm_severity_name(CM_SEV_CRITICAL), "critical");
    EXPECT_STR(cm_err_kind_name(CM_ERRK_NONE), NULL);
    EXPECT_STR(cm_err_kind_name(CM_ERRK_DNS), "dns");
    EXPECT_STR(cm_err_kind_name(CM_ERRK_CONNECT), "connect");
    EXPECT_STR(cm_err_kind_name(CM_ERRK_TIMEOUT), "timeout");
    EXPECT_STR(cm_err_kind_name(CM_ERRK_STARTTLS), "starttls");
    EXPECT_STR(cm_err_kind_name(CM_ERRK_TLS), "tls");
    EXPECT_STR(cm_err_kind_name(CM_ERRK_IO), "io");
    EXPECT_STR(cm_err_kind_name(CM_ERRK_CANCELLED), "cancelled");
    EXPECT_STR(cm_phase_name(CM_PHASE_DNS), "dns");
    EXPECT_STR(cm_phase_name(CM_PHASE_CONNECT), "connect");
    EXPECT_STR(cm_phase_name(CM_PHASE_HANDSHAKE), "handshake");
    EXPECT_STR(cm_phase_name(CM_PHASE_DONE), "done");
}

static CU_TestInfo tests[] = {
    {"default policy", test_policy_default},
    {"healthy chain", test_healthy},
    {"expiring: warning", test_expiring_warning},
    {"expiring: critical", test_expiring_critical},
    {"expiring intermediate", test_intermediate_expiring},
    {"custom policy", test_custom_policy},
    {"expired", test_expired},
    {"not yet valid", test_not_yet_valid},
    {"untrusted chain", test_untrusted},
    {"self-signed leaf", test_self_signed},
    {"expired is not untrusted", test_expired_not_untrusted},
    {"trust needs verification", test_trusted_flag_only},
    {"host name mismatch", test_host_mismatch},
    {"probe failure", test_probe_failed},
    {"findings are appended", test_appends},
    {"findings status", test_status},
    {"names", test_names},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("analyze", tests, NULL, NULL);
}
