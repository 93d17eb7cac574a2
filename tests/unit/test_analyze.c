/* Unit tests for findings (src/analysis/analyze.c): hand-built probe results judged at a fixed time. */
#include "cmfixture.h"
#include "cmtest.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certmon/analysis/analyze.h"
#include "certmon/analysis/change.h"
#include "certmon/probe/revocation.h"
#include "certmon/base/error.h"
#include "certmon/base/intern.h"
#include "certmon/base/text.h"
#include "certmon/probe/posture.h"
#include "certmon/probe/probe.h"

#define DAY 86400
#define NOW ((time_t)1800000000) /* 2027-01-15T08:00:00Z */

/* What a completed handshake without an OCSP staple always gets (info: the status stays ok). */
#define NOT_STAPLED "the server staples no OCSP response"

/* A successful probe of example.com:443 that saw a healthy two-certificate chain: the leaf
 * valid for 90 more days, the intermediate for 1825, trusted, matching the name. The server
 * staples nothing. */
static struct cm_probe_result *healthy(void)
{
    struct cm_probe_result *r = cm_tf_endpoint(NOW);

    cm_tf_fill_cert(&r->tls.chain.certs[0], "CN=example.com", "CN=Example CA", NOW - DAY, NOW + 90 * DAY,
              false);
    cm_tf_fill_cert(&r->tls.chain.certs[1], "CN=Example CA", "CN=Example Root", NOW - 100 * DAY,
              NOW + 1825LL * DAY, true);
    return r;
}

/* The server staples a good OCSP response that GnuTLS verified. */
static void staple_good(struct cm_probe_result *r)
{
    r->tls.ocsp = (struct cm_ocsp){
        .status = CM_OCSP_GOOD,
        .verified = true,
        .this_update = NOW - 3600,
        .next_update = NOW + 7 * DAY,
    };
}

/* healthy() with a verified good staple: no finding at all, so a test sees only its own. */
static struct cm_probe_result *quiet(void)
{
    struct cm_probe_result *r = healthy();

    staple_good(r);
    return r;
}

/* Appends a CA certificate valid from NOW - 100 days for 1825 days more; returns it. */
static struct cm_cert *push_ca(struct cm_probe_result *r, const char *subject, const char *issuer)
{
    struct cm_chain *ch = &r->tls.chain;
    struct cm_cert *n = realloc(ch->certs, (ch->count + 1) * sizeof(*n));

    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    ch->certs = n;
    cm_tf_fill_cert(&n[ch->count], subject, issuer, NOW - 100 * DAY, NOW + 1825LL * DAY, true);
    return &n[ch->count++];
}

/* Appends the self-signed root that issued the intermediate of healthy(). */
static struct cm_cert *push_root(struct cm_probe_result *r)
{
    return push_ca(r, "CN=Example Root", "CN=Example Root");
}

static void swap_certs(struct cm_probe_result *r, size_t a, size_t b)
{
    struct cm_cert t = r->tls.chain.certs[a];

    r->tls.chain.certs[a] = r->tls.chain.certs[b];
    r->tls.chain.certs[b] = t;
}

/* Replaces the key identifiers of c (NULL leaves one absent). */
static void set_key_ids(struct cm_cert *c, const char *ski, const char *aki)
{
    free(c->ski);
    free(c->aki);
    c->ski = ski ? cm_tf_strdup(ski) : NULL;
    c->aki = aki ? cm_tf_strdup(aki) : NULL;
}

/* Replaces the subjectAltNames of c with the n names given. */
static void set_sans(struct cm_cert *c, const char *const *names, size_t n)
{
    for (size_t i = 0; i < c->san_count; i++)
        free(c->sans[i]);
    free(c->sans);
    c->sans = NULL;
    c->san_count = 0;
    if (!n)
        return;
    c->sans = calloc(n, sizeof(*c->sans));
    CU_ASSERT_PTR_NOT_NULL_FATAL(c->sans);
    for (size_t i = 0; i < n; i++)
        c->sans[i] = cm_tf_strdup(names[i]);
    c->san_count = n;
}

static void set_signature(struct cm_cert *c, const char *signature, const char *hash)
{
    free(c->signature);
    c->signature = cm_tf_strdup(signature);
    c->sig_hash = hash;
}

/* Drops the chain down to its first n certificates. */
static void truncate_chain(struct cm_probe_result *r, size_t n)
{
    for (size_t i = n; i < r->tls.chain.count; i++)
        cm_cert_clear(&r->tls.chain.certs[i]);
    r->tls.chain.count = n;
}

/* Analyses r into *f (which it zeroes first). Also checks what holds for every finding: its
 * id is in the catalogue, and, under a policy without rules, its severity is the catalogue's
 * except where the catalogue says it varies (key.weak, cert.expiring,
 * mtls.client_cert_expiring, protocol.legacy, dh.weak). */
static void run(const struct cm_probe_result *r, const struct cm_policy *p, struct cm_findings *f)
{
    memset(f, 0, sizeof(*f));
    CU_ASSERT_EQUAL_FATAL(cm_analyze(r, p, NOW, f), 0);
    for (size_t i = 0; i < f->count; i++) {
        const struct cm_finding *it = &f->items[i];
        const struct cm_finding_def *def = cm_finding_lookup(it->id);
        char msg[160];

        snprintf(msg, sizeof(msg), "finding %zu (%s) is in the catalogue", i, it->id);
        CU_assertImplementation(def != NULL, __LINE__, msg, __FILE__, "", CU_FALSE);
        CU_ASSERT_PTR_NOT_NULL(it->message);
        if (!def || p->rule_count || !strcmp(it->id, "key.weak") ||
            !strcmp(it->id, "cert.expiring") || !strcmp(it->id, "mtls.client_cert_expiring") ||
            !strcmp(it->id, "protocol.legacy") || !strcmp(it->id, "dh.weak") ||
            !strcmp(it->id, "cert.purpose"))
            continue;
        snprintf(msg, sizeof(msg), "finding %zu (%s) has its default severity", i, it->id);
        CU_assertImplementation(it->severity == def->severity, __LINE__, msg, __FILE__, "",
                                CU_FALSE);
    }
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

#define EXPECT_NOT_STAPLED(f, i)                                                                   \
    expect_finding((f), (i), "ocsp.not_stapled", CM_SEV_INFO, 0, NOT_STAPLED, __LINE__)

/* The ids of all the findings, in order, separated by spaces ("" for none). */
static void expect_ids(const struct cm_findings *f, const char *want, unsigned line)
{
    char got[1024] = "";
    size_t used = 0;

    for (size_t i = 0; i < f->count && used < sizeof(got); i++)
        used +=
            (size_t)snprintf(got + used, sizeof(got) - used, "%s%s", i ? " " : "", f->items[i].id);
    expect_str(got, want, "finding ids", line);
}

#define EXPECT_IDS(f, want) expect_ids((f), (want), __LINE__)

/* No finding is a warning or worse. */
static void expect_only_info(const struct cm_findings *f, unsigned line)
{
    for (size_t i = 0; i < f->count; i++) {
        char msg[160];
        snprintf(msg, sizeof(msg), "finding %zu (%s) is info, not %s", i, f->items[i].id,
                 cm_severity_name(f->items[i].severity));
        CU_assertImplementation(f->items[i].severity <= CM_SEV_INFO, line, msg, __FILE__, "",
                                CU_FALSE);
    }
}

#define EXPECT_ONLY_INFO(f) expect_only_info((f), __LINE__)

/* Item i of the findings, or NULL when there are not that many (a failed test goes on). */
static const struct cm_finding *at(const struct cm_findings *f, size_t i)
{
    return i < f->count ? &f->items[i] : NULL;
}

/* The severity of item i, or -1 when there is no such item. */
static int sev_at(const struct cm_findings *f, size_t i)
{
    return i < f->count ? (int)f->items[i].severity : -1;
}

#define ANY_POS (-2)

/* The first finding with that id (at that position unless ANY_POS), or NULL. */
static const struct cm_finding *find(const struct cm_findings *f, const char *id, int pos)
{
    for (size_t i = 0; i < f->count; i++)
        if (!strcmp(f->items[i].id, id) && (pos == ANY_POS || f->items[i].position == pos))
            return &f->items[i];
    return NULL;
}

/* The evidence of a finding: days_left (when has_days), key type and bits, algorithm. */
static void expect_evidence(const struct cm_finding *it, bool has_days, int64_t days,
                            const char *key_type, unsigned key_bits, const char *algorithm,
                            unsigned line)
{
    CU_assertImplementation(it != NULL, line, "the finding exists", __FILE__, "", CU_FALSE);
    if (!it)
        return;
    expect_int(it->has_days_left, has_days, "has_days_left", line);
    if (has_days)
        expect_int(it->days_left, days, "days_left", line);
    expect_str(it->key_type, key_type, "key_type", line);
    expect_int(it->key_bits, key_bits, "key_bits", line);
    expect_str(it->algorithm, algorithm, "algorithm", line);
}

#define EXPECT_NO_EVIDENCE(it) expect_evidence((it), false, 0, NULL, 0, NULL, __LINE__)

static const struct cm_policy def = CM_POLICY_DEFAULT;

static void test_policy_default(void)
{
    EXPECT_INT(def.warn_days, 30);
    EXPECT_INT(def.crit_days, 7);
    EXPECT_INT(def.min_rsa_bits, 2048);
    EXPECT_INT(def.min_ec_bits, 256);
    CU_ASSERT_FALSE(def.allow_self_signed);
    CU_ASSERT_PTR_NULL(def.rules);
    EXPECT_INT(def.rule_count, 0);
}

static void test_healthy(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f;

    /* Nothing stapled: one info finding, which leaves the status OK. */
    run(r, &def, &f);
    EXPECT_IDS(&f, "ocsp.not_stapled");
    EXPECT_NOT_STAPLED(&f, 0);
    EXPECT_NO_EVIDENCE(at(&f, 0));
    EXPECT_ONLY_INFO(&f);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_OK);
    EXPECT_INT(cm_result_status(r, &f), CM_STATUS_OK);
    cm_findings_clear(&f);
    EXPECT_INT(f.count, 0);
    CU_ASSERT_PTR_NULL(f.items);

    /* With a verified good staple there is nothing at all. */
    staple_good(r);
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

    /* A 110-day lifetime: 33% of it (36 days) is longer than warn_days, so the day rule is
     * the one that fires. */
    r->tls.chain.certs[0].not_before = NOW - 80 * DAY;
    r->tls.chain.certs[0].not_after = NOW + 30 * DAY - 1;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.expiring ocsp.not_stapled");
    expect_finding(&f, 0, "cert.expiring", CM_SEV_WARNING, 0,
                   "leaf certificate 0 (CN=example.com) expires in 29 days, on "
                   "2027-02-14T07:59:59Z; under the 30-day warning threshold",
                   __LINE__);
    EXPECT_NOT_STAPLED(&f, 1);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_WARNING);
    cm_findings_clear(&f);
    EXPECT_INT(f.count, 0);
    CU_ASSERT_PTR_NULL(f.items);

    /* Exactly warn_days left is not yet a warning. */
    r->tls.chain.certs[0].not_after = NOW + 30 * DAY;
    run(r, &def, &f);
    EXPECT_IDS(&f, "ocsp.not_stapled");
    EXPECT_ONLY_INFO(&f);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_expiring_critical(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f;

    /* A lifetime of 87 days and more: 10% of it is longer than crit_days. */
    r->tls.chain.certs[0].not_before = NOW - 80 * DAY;
    r->tls.chain.certs[0].not_after = NOW + 7 * DAY - 1;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.expiring ocsp.not_stapled");
    expect_finding(&f, 0, "cert.expiring", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expires in 6 days, on "
                   "2027-01-22T07:59:59Z; under the 7-day critical threshold",
                   __LINE__);
    EXPECT_NOT_STAPLED(&f, 1);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    cm_findings_clear(&f);

    /* Exactly crit_days left: only a warning. */
    r->tls.chain.certs[0].not_after = NOW + 7 * DAY;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.expiring ocsp.not_stapled");
    expect_finding(&f, 0, "cert.expiring", CM_SEV_WARNING, 0,
                   "leaf certificate 0 (CN=example.com) expires in 7 days, on "
                   "2027-01-22T08:00:00Z; under 33% of its 87-day lifetime",
                   __LINE__);
    cm_findings_clear(&f);

    /* One day and a bit: singular. */
    r->tls.chain.certs[0].not_after = NOW + DAY + 5;
    run(r, &def, &f);
    expect_finding(&f, 0, "cert.expiring", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expires in 1 day, on "
                   "2027-01-16T08:00:05Z; under the 7-day critical threshold",
                   __LINE__);
    cm_findings_clear(&f);

    /* Expiring this very second: not expired yet, 0 days left. */
    r->tls.chain.certs[0].not_after = NOW;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.expiring ocsp.not_stapled");
    expect_finding(&f, 0, "cert.expiring", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expires in 0 days, on "
                   "2027-01-15T08:00:00Z; under the 7-day critical threshold",
                   __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_intermediate_expiring(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f;

    /* The intermediate lives 110 days and the leaf 83: the day rules fire for both. */
    r->tls.chain.certs[0].not_before = NOW - 80 * DAY;
    r->tls.chain.certs[1].not_after = NOW + 10 * DAY;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.expiring ocsp.not_stapled");
    expect_finding(&f, 0, "cert.expiring", CM_SEV_WARNING, 1,
                   "chain certificate 1 (CN=Example CA) expires in 10 days, on "
                   "2027-01-25T08:00:00Z; under the 30-day warning threshold",
                   __LINE__);
    cm_findings_clear(&f);

    /* Both expiring: one finding each, in chain order. */
    r->tls.chain.certs[0].not_after = NOW + 3 * DAY;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.expiring cert.expiring ocsp.not_stapled");
    expect_finding(&f, 0, "cert.expiring", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expires in 3 days, on "
                   "2027-01-18T08:00:00Z; under the 7-day critical threshold",
                   __LINE__);
    expect_finding(&f, 1, "cert.expiring", CM_SEV_WARNING, 1,
                   "chain certificate 1 (CN=Example CA) expires in 10 days, on "
                   "2027-01-25T08:00:00Z; under the 30-day warning threshold",
                   __LINE__);
    EXPECT_NOT_STAPLED(&f, 2);
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
    EXPECT_IDS(&f, "ocsp.not_stapled");
    cm_findings_clear(&f);

    r->tls.chain.certs[0].not_after = NOW + 90 * DAY;
    run(r, &wide, &f);
    EXPECT_IDS(&f, "cert.expiring ocsp.not_stapled");
    expect_finding(&f, 0, "cert.expiring", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expires in 90 days, on "
                   "2027-04-15T08:00:00Z; under the 91-day critical threshold",
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
    EXPECT_IDS(&f, "cert.expired ocsp.not_stapled");
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
    EXPECT_IDS(&f, "cert.expired ocsp.not_stapled");
    expect_finding(&f, 0, "cert.expired", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expired 3 days ago, on "
                   "2027-01-12T07:59:55Z",
                   __LINE__);
    cm_findings_clear(&f);

    /* An expired intermediate. */
    r->tls.chain.certs[0].not_after = NOW + 90 * DAY;
    r->tls.chain.certs[1].not_after = NOW - 10;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.expired ocsp.not_stapled");
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
    EXPECT_IDS(&f, "cert.not_yet_valid ocsp.not_stapled");
    expect_finding(&f, 0, "cert.not_yet_valid", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) is not valid before "
                   "2027-01-15T08:00:01Z",
                   __LINE__);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    cm_findings_clear(&f);

    /* Valid from exactly now is valid. */
    r->tls.chain.certs[0].not_before = NOW;
    run(r, &def, &f);
    EXPECT_IDS(&f, "ocsp.not_stapled");
    cm_findings_clear(&f);

    /* GnuTLS reports NOT_ACTIVATED as an INVALID chain: no chain.untrusted on top. */
    r->tls.chain.certs[0].not_before = NOW + 10 * DAY;
    r->tls.verify.trusted = false;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_NOT_ACTIVATED;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.not_yet_valid ocsp.not_stapled");
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

    /* Leaf and intermediate sent; nobody has the intermediate's issuer: the finding names the
     * last certificate of the path, the intermediate. */
    r->tls.verify.trusted = false;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_SIGNER_NOT_FOUND;
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.untrusted ocsp.not_stapled");
    expect_finding(&f, 0, "chain.untrusted", CM_SEV_CRITICAL, 1,
                   "the chain does not verify (signer_not_found): the issuer of certificate 1 "
                   "(CN=Example Root) is neither sent nor trusted",
                   __LINE__);
    EXPECT_NO_EVIDENCE(at(&f, 0));
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    cm_findings_clear(&f);

    /* Several reasons, listed in a stable order; expiry is left to cert.expired. */
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_INSECURE_ALGORITHM |
                           CM_VERIFY_SIGNER_NOT_FOUND | CM_VERIFY_EXPIRED;
    r->tls.chain.certs[1].not_after = NOW - 1;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.expired chain.untrusted ocsp.not_stapled");
    expect_finding(&f, 0, "cert.expired", CM_SEV_CRITICAL, 1,
                   "chain certificate 1 (CN=Example CA) expired on 2027-01-15T07:59:59Z", __LINE__);
    expect_finding(&f, 1, "chain.untrusted", CM_SEV_CRITICAL, 1,
                   "the chain does not verify (signer_not_found, insecure_algorithm): the issuer "
                   "of certificate 1 (CN=Example Root) is neither sent nor trusted",
                   __LINE__);
    cm_findings_clear(&f);

    /* A reason other than a missing issuer: no position, the reasons listed. */
    r->tls.chain.certs[1].not_after = NOW + 1825LL * DAY;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_SIGNATURE_FAILURE;
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.untrusted ocsp.not_stapled");
    expect_finding(&f, 0, "chain.untrusted", CM_SEV_CRITICAL, -1,
                   "the chain does not verify against the trust store: signature_failure",
                   __LINE__);
    cm_findings_clear(&f);

    /* A self-signed leaf sent with other certificates is just untrusted. */
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_SIGNER_NOT_FOUND;
    r->tls.chain.certs[0].self_signed = true;
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.untrusted ocsp.not_stapled");
    expect_finding(&f, 0, "chain.untrusted", CM_SEV_CRITICAL, -1,
                   "the chain does not verify against the trust store: signer_not_found", __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);

    /* The whole path up to a root was sent, but the root is not trusted: no position. */
    r = healthy();
    push_root(r);
    r->tls.verify.trusted = false;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_SIGNER_NOT_FOUND;
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.untrusted chain.root_sent ocsp.not_stapled");
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
    cm_tf_fill_cert(&r->tls.chain.certs[0], "CN=localhost", "CN=localhost", NOW - DAY, NOW + 90 * DAY,
              false);
    CU_ASSERT_TRUE_FATAL(r->tls.chain.certs[0].self_signed);
    r->tls.verify.trusted = false;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_SIGNER_NOT_FOUND;
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.self_signed ocsp.not_stapled");
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
    EXPECT_IDS(&f, "chain.self_signed host.mismatch ocsp.not_stapled");
    expect_finding(&f, 0, "chain.self_signed", CM_SEV_CRITICAL, 0,
                   "the leaf certificate (CN=localhost) is self-signed and not in the trust "
                   "store",
                   __LINE__);
    expect_finding(&f, 1, "host.mismatch", CM_SEV_CRITICAL, 0,
                   "the leaf certificate (CN=localhost) is not valid for example.com", __LINE__);
    cm_findings_clear(&f);

    /* A single leaf that is not self-signed: its issuer (an intermediate) was not sent. */
    r->tls.verify.hostname_match = true;
    r->tls.chain.certs[0].self_signed = false;
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.incomplete ocsp.not_stapled");
    expect_finding(&f, 0, "chain.incomplete", CM_SEV_CRITICAL, 0,
                   "the server does not send the intermediate that issued the leaf (CN=localhost), "
                   "and it is not in the trust store",
                   __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_expired_not_untrusted(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f;

    r->tls.chain.certs[0].not_after = NOW - 2 * DAY - 30;
    r->tls.verify.trusted = false;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_EXPIRED;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.expired ocsp.not_stapled");
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
    r->tls.verify.status = CM_VERIFY_SIGNER_NOT_FOUND;
    run(r, &def, &f);
    EXPECT_IDS(&f, "ocsp.not_stapled");
    EXPECT_ONLY_INFO(&f);
    cm_findings_clear(&f);

    /* ...and without verification there is nothing to judge trust or name by. */
    r->tls.verify.done = false;
    r->tls.verify.trusted = false;
    r->tls.verify.hostname_match = false;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_SIGNER_NOT_FOUND;
    run(r, &def, &f);
    EXPECT_IDS(&f, "ocsp.not_stapled");
    EXPECT_ONLY_INFO(&f);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_host_mismatch(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_findings f;

    r->tls.verify.hostname_match = false;
    free(r->verify_name);
    r->verify_name = cm_tf_strdup("api.example.net");
    run(r, &def, &f);
    EXPECT_IDS(&f, "host.mismatch ocsp.not_stapled");
    expect_finding(&f, 0, "host.mismatch", CM_SEV_CRITICAL, 0,
                   "the leaf certificate (CN=example.com) is not valid for api.example.net",
                   __LINE__);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    cm_findings_clear(&f);

    /* Untrusted and mismatched: both, chain first. */
    r->tls.verify.trusted = false;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_SIGNER_NOT_FOUND;
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.untrusted host.mismatch ocsp.not_stapled");
    expect_finding(&f, 0, "chain.untrusted", CM_SEV_CRITICAL, 1,
                   "the chain does not verify (signer_not_found): the issuer of certificate 1 "
                   "(CN=Example Root) is neither sent nor trusted",
                   __LINE__);
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
    r->error_message = cm_tf_strdup("192.0.2.1: connection refused");
    run(r, &def, &f);
    EXPECT_IDS(&f, "probe.failed");
    expect_finding(&f, 0, "probe.failed", CM_SEV_CRITICAL, -1, "192.0.2.1: connection refused",
                   __LINE__);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    /* The alerts keep what such a result cannot judge: all but the failure findings. */
    CU_ASSERT(cm_finding_is_failure(f.items[0].id));
    CU_ASSERT(cm_finding_is_failure("mtls.client_cert_required"));
    CU_ASSERT(cm_finding_is_failure("mtls.client_cert_rejected"));
    CU_ASSERT(!cm_finding_is_failure("cert.expired"));
    CU_ASSERT(!cm_finding_is_failure("mtls.client_cert_expiring"));
    CU_ASSERT(!cm_finding_is_failure(NULL));
    /* Our own client certificate is judged by every result: from the configured file. */
    CU_ASSERT(cm_finding_judged_without_cert("probe.failed"));
    CU_ASSERT(cm_finding_judged_without_cert("mtls.client_cert_expiring"));
    CU_ASSERT(cm_finding_judged_without_cert("mtls.client_cert_expired"));
    CU_ASSERT(!cm_finding_judged_without_cert("cert.expiring"));
    CU_ASSERT(!cm_finding_judged_without_cert(NULL));
    cm_findings_clear(&f);

    r->error_kind = CM_ERRK_TIMEOUT;
    free(r->error_message);
    r->error_message = NULL;
    run(r, &def, &f);
    EXPECT_IDS(&f, "probe.failed");
    /* Without a message the finding still says something. */
    expect_finding(&f, 0, "probe.failed", CM_SEV_CRITICAL, -1, "probe failed", __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);

    /* A handshake that failed after the certificate arrived: the failure comes first, then
     * what the chain shows. */
    r = healthy();
    r->error_kind = CM_ERRK_TLS;
    r->error_phase = CM_PHASE_HANDSHAKE;
    r->error_message = cm_tf_strdup("received fatal alert");
    r->tls.chain.certs[0].not_after = NOW - 1;
    r->tls.verify.trusted = false;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_EXPIRED;
    run(r, &def, &f);
    EXPECT_IDS(&f, "probe.failed cert.expired ocsp.not_stapled");
    expect_finding(&f, 0, "probe.failed", CM_SEV_CRITICAL, -1, "received fatal alert", __LINE__);
    expect_finding(&f, 1, "cert.expired", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expired on 2027-01-15T07:59:59Z", __LINE__);
    EXPECT_NOT_STAPLED(&f, 2);
    cm_findings_clear(&f);

    /* No version negotiated (the handshake stopped early): no OCSP finding either. */
    free(r->tls.version);
    r->tls.version = NULL;
    run(r, &def, &f);
    EXPECT_IDS(&f, "probe.failed cert.expired");
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
    EXPECT_IDS(&f, "host.mismatch ocsp.not_stapled host.mismatch ocsp.not_stapled");
    expect_finding(&f, 0, "host.mismatch", CM_SEV_CRITICAL, 0,
                   "the leaf certificate (CN=example.com) is not valid for example.com", __LINE__);
    EXPECT_NOT_STAPLED(&f, 1);
    expect_finding(&f, 2, "host.mismatch", CM_SEV_CRITICAL, 0,
                   "the leaf certificate (CN=example.com) is not valid for example.com", __LINE__);
    EXPECT_NOT_STAPLED(&f, 3);
    cm_findings_clear(&f);
    cm_findings_clear(&f);
    cm_findings_clear(NULL);
    cm_probe_result_free(r);
    cm_probe_result_free(NULL);
}

static void test_status(void)
{
    struct cm_finding items[3] = {
        {.id = "x.info", .severity = CM_SEV_INFO, .position = -1},
        {.id = "x.ok", .severity = CM_SEV_OK, .position = 0},
        {.id = "x.info2", .severity = CM_SEV_INFO, .position = 1},
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

/* ---- key.weak ---- */

static void test_key_weak(void)
{
    static const struct {
        const char *type;
        unsigned bits;
        enum cm_severity sev; /* CM_SEV_OK: no finding */
    } cases[] = {
        {"RSA", 2047, CM_SEV_CRITICAL},     {"RSA", 2048, CM_SEV_OK},
        {"RSA", 1024, CM_SEV_CRITICAL},     {"RSA", 4096, CM_SEV_OK},
        {"RSA-PSS", 2047, CM_SEV_CRITICAL}, {"RSA-PSS", 2048, CM_SEV_OK},
        {"DSA", 1024, CM_SEV_CRITICAL},     {"DSA", 2048, CM_SEV_OK},
        {"EC", 255, CM_SEV_WARNING},        {"EC", 256, CM_SEV_OK},
        {"EC", 224, CM_SEV_WARNING},        {"EC", 384, CM_SEV_OK},
        {"Ed25519", 256, CM_SEV_OK},        {"Ed448", 456, CM_SEV_OK},
        {"Ed25519", 0, CM_SEV_OK}, /* only RSA, RSA-PSS, DSA and EC are measured */
    };
    struct cm_probe_result *r = quiet();
    struct cm_cert *leaf = &r->tls.chain.certs[0];
    struct cm_findings f;
    char msg[200];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool ec = !strcmp(cases[i].type, "EC");

        leaf->key_type = cases[i].type;
        leaf->key_bits = cases[i].bits;
        run(r, &def, &f);
        if (cases[i].sev == CM_SEV_OK) {
            EXPECT_IDS(&f, "");
            cm_findings_clear(&f);
            continue;
        }
        EXPECT_IDS(&f, "key.weak");
        snprintf(msg, sizeof(msg),
                 "leaf certificate 0 (CN=example.com) has a %u-bit %s key; the policy asks for "
                 "at least %u bits",
                 cases[i].bits, cases[i].type, ec ? 256u : 2048u);
        expect_finding(&f, 0, "key.weak", cases[i].sev, 0, msg, __LINE__);
        expect_evidence(at(&f, 0), false, 0, cases[i].type, cases[i].bits, NULL, __LINE__);
        EXPECT_INT(cm_findings_status(&f), ec ? CM_STATUS_WARNING : CM_STATUS_CRITICAL);
        cm_findings_clear(&f);
    }
    cm_probe_result_free(r);

    /* A weak intermediate is reported at its position. */
    r = quiet();
    r->tls.chain.certs[1].key_bits = 1024;
    run(r, &def, &f);
    EXPECT_IDS(&f, "key.weak");
    expect_finding(&f, 0, "key.weak", CM_SEV_CRITICAL, 1,
                   "chain certificate 1 (CN=Example CA) has a 1024-bit RSA key; the policy asks "
                   "for at least 2048 bits",
                   __LINE__);
    expect_evidence(at(&f, 0), false, 0, "RSA", 1024, NULL, __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_key_weak_policy(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_cert *leaf = &r->tls.chain.certs[0];
    struct cm_policy p = CM_POLICY_DEFAULT;
    struct cm_findings f;

    /* Above the RSA-2048 of both certificates: both are weak. */
    p.min_rsa_bits = 3072;
    run(r, &p, &f);
    EXPECT_IDS(&f, "key.weak key.weak");
    expect_finding(&f, 0, "key.weak", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) has a 2048-bit RSA key; the policy asks "
                   "for at least 3072 bits",
                   __LINE__);
    expect_finding(&f, 1, "key.weak", CM_SEV_CRITICAL, 1,
                   "chain certificate 1 (CN=Example CA) has a 2048-bit RSA key; the policy asks "
                   "for at least 3072 bits",
                   __LINE__);
    cm_findings_clear(&f);

    /* Lowered: DSA-1024 passes, one bit less does not. The EC floor is separate. */
    p.min_rsa_bits = 1024;
    leaf->key_type = "DSA";
    leaf->key_bits = 1024;
    run(r, &p, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    leaf->key_type = "RSA";
    leaf->key_bits = 1023;
    run(r, &p, &f);
    EXPECT_IDS(&f, "key.weak");
    expect_evidence(find(&f, "key.weak", 0), false, 0, "RSA", 1023, NULL, __LINE__);
    cm_findings_clear(&f);
    leaf->key_type = "EC";
    leaf->key_bits = 255;
    run(r, &p, &f);
    EXPECT_IDS(&f, "key.weak");
    cm_findings_clear(&f);

    /* A stricter EC floor: P-256 becomes a warning, P-384 passes. */
    p.min_ec_bits = 384;
    leaf->key_bits = 256;
    run(r, &p, &f);
    EXPECT_IDS(&f, "key.weak");
    expect_finding(&f, 0, "key.weak", CM_SEV_WARNING, 0,
                   "leaf certificate 0 (CN=example.com) has a 256-bit EC key; the policy asks "
                   "for at least 384 bits",
                   __LINE__);
    cm_findings_clear(&f);
    leaf->key_bits = 384;
    run(r, &p, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);

    /* Zero turns the check off. */
    p.min_rsa_bits = 0;
    p.min_ec_bits = 0;
    leaf->key_bits = 160;
    r->tls.chain.certs[1].key_bits = 512;
    run(r, &p, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_key_weak_root_sent(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_cert *root = push_root(r);
    struct cm_findings f;

    /* A weak, SHA-1 root sent at position 2: clients use their own copy, so it is ignored. */
    root->key_bits = 1024;
    set_signature(root, "RSA-SHA1", "SHA1");
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.root_sent");
    cm_findings_clear(&f);

    /* Not a root without the CA flag: then it is judged like any certificate. */
    r->tls.chain.certs[2].is_ca = false;
    run(r, &def, &f);
    EXPECT_IDS(&f, "key.weak signature.weak");
    expect_finding(&f, 0, "key.weak", CM_SEV_CRITICAL, 2,
                   "chain certificate 2 (CN=Example Root) has a 1024-bit RSA key; the policy "
                   "asks for at least 2048 bits",
                   __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);

    /* A self-signed CA sent alone, at position 0, is judged too. */
    r = quiet();
    truncate_chain(r, 1);
    cm_cert_clear(&r->tls.chain.certs[0]);
    cm_tf_fill_cert(&r->tls.chain.certs[0], "CN=Example Root", "CN=Example Root", NOW - DAY,
              NOW + 90 * DAY, true);
    r->tls.chain.certs[0].key_bits = 1024;
    run(r, &def, &f);
    EXPECT_IDS(&f, "key.weak cert.no_san");
    expect_finding(&f, 0, "key.weak", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=Example Root) has a 1024-bit RSA key; the policy asks "
                   "for at least 2048 bits",
                   __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* ---- signature.weak ---- */

static void test_signature_weak(void)
{
    static const struct {
        const char *signature, *hash;
    } weak[] = {{"RSA-SHA1", "SHA1"}, {"RSA-MD5", "MD5"}, {"DSA-SHA1", "SHA1"}};
    struct cm_probe_result *r = quiet();
    struct cm_cert *leaf = &r->tls.chain.certs[0];
    struct cm_findings f;
    char msg[200];

    for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
        set_signature(leaf, weak[i].signature, weak[i].hash);
        run(r, &def, &f);
        EXPECT_IDS(&f, "signature.weak");
        snprintf(msg, sizeof(msg),
                 "leaf certificate 0 (CN=example.com) is signed with %s, which can be forged; "
                 "reissue it with SHA-256",
                 weak[i].signature);
        expect_finding(&f, 0, "signature.weak", CM_SEV_CRITICAL, 0, msg, __LINE__);
        /* The evidence is the signature algorithm, not the digest name. */
        expect_evidence(at(&f, 0), false, 0, NULL, 0, weak[i].signature, __LINE__);
        EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
        cm_findings_clear(&f);
    }

    /* Sound digests, an unknown one and a certificate built without one. */
    set_signature(leaf, "RSA-SHA256", "SHA256");
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    set_signature(leaf, "ECDSA-SHA384", "SHA384");
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    set_signature(leaf, "unknown", "");
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    set_signature(leaf, "unknown", NULL);
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);

    /* An intermediate signed with SHA-1, at its position. */
    set_signature(&r->tls.chain.certs[1], "RSA-SHA1", "SHA1");
    run(r, &def, &f);
    EXPECT_IDS(&f, "signature.weak");
    expect_finding(&f, 0, "signature.weak", CM_SEV_CRITICAL, 1,
                   "chain certificate 1 (CN=Example CA) is signed with RSA-SHA1, which can be "
                   "forged; reissue it with SHA-256",
                   __LINE__);
    cm_findings_clear(&f);

    /* Weak key and weak signature on one certificate: key first. */
    set_signature(&r->tls.chain.certs[1], "RSA-SHA256", "SHA256");
    set_signature(leaf, "RSA-SHA1", "SHA1");
    leaf->key_bits = 1024;
    run(r, &def, &f);
    EXPECT_IDS(&f, "key.weak signature.weak");
    expect_evidence(at(&f, 0), false, 0, "RSA", 1024, NULL, __LINE__);
    expect_evidence(at(&f, 1), false, 0, NULL, 0, "RSA-SHA1", __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_signature_weak_self_signed(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_findings f;

    /* A SHA-1 root sent at position 2: nobody checks a root's own signature. */
    set_signature(push_root(r), "RSA-SHA1", "SHA1");
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.root_sent");
    cm_findings_clear(&f);
    cm_probe_result_free(r);

    /* A self-signed leaf (trusted here, as with --ca) is judged like any leaf. */
    r = quiet();
    truncate_chain(r, 1);
    cm_cert_clear(&r->tls.chain.certs[0]);
    cm_tf_fill_cert(&r->tls.chain.certs[0], "CN=localhost", "CN=localhost", NOW - DAY, NOW + 90 * DAY,
              false);
    set_signature(&r->tls.chain.certs[0], "RSA-SHA1", "SHA1");
    run(r, &def, &f);
    EXPECT_IDS(&f, "signature.weak");
    expect_finding(&f, 0, "signature.weak", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=localhost) is signed with RSA-SHA1, which can be "
                   "forged; reissue it with SHA-256",
                   __LINE__);
    cm_findings_clear(&f);

    /* So is a self-signed CA certificate served as the leaf. */
    r->tls.chain.certs[0].is_ca = true;
    run(r, &def, &f);
    EXPECT_IDS(&f, "signature.weak");
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* ---- chain.incomplete, chain.untrusted, chain.self_signed ---- */

static void test_chain_incomplete(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_findings f;

    /* Only the leaf, whose issuer nobody has: the intermediate is missing. */
    truncate_chain(r, 1);
    r->tls.verify.trusted = false;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_SIGNER_NOT_FOUND;
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.incomplete");
    expect_finding(
        &f, 0, "chain.incomplete", CM_SEV_CRITICAL, 0,
        "the server does not send the intermediate that issued the leaf (CN=Example CA), "
        "and it is not in the trust store",
        __LINE__);
    EXPECT_NO_EVIDENCE(at(&f, 0));
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    cm_findings_clear(&f);

    /* The leaf alone, and expired as well: both, each once. */
    r->tls.chain.certs[0].not_after = NOW - 1;
    r->tls.verify.status |= CM_VERIFY_EXPIRED;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.expired chain.incomplete");
    cm_findings_clear(&f);

    /* The leaf alone, but the reason is not a missing issuer: plain untrusted. */
    r->tls.chain.certs[0].not_after = NOW + 90 * DAY;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_SIGNATURE_FAILURE;
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.untrusted");
    expect_finding(&f, 0, "chain.untrusted", CM_SEV_CRITICAL, -1,
                   "the chain does not verify against the trust store: signature_failure",
                   __LINE__);
    cm_findings_clear(&f);

    /* A CA certificate sent alone is not a leaf missing its intermediate. It is a CA
     * certificate where the server's own belongs, which chain.ca_as_leaf says too (new with
     * that finding). */
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_SIGNER_NOT_FOUND;
    r->tls.chain.certs[0].is_ca = true;
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.untrusted chain.ca_as_leaf");
    expect_finding(&f, 0, "chain.untrusted", CM_SEV_CRITICAL, 0,
                   "the chain does not verify (signer_not_found): the issuer of certificate 0 "
                   "(CN=Example CA) is neither sent nor trusted",
                   __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);

    /* Leaf and intermediate sent, the intermediate's issuer missing: untrusted, at the
     * intermediate. */
    r = quiet();
    r->tls.verify.trusted = false;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_SIGNER_NOT_FOUND;
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.untrusted");
    expect_finding(&f, 0, "chain.untrusted", CM_SEV_CRITICAL, 1,
                   "the chain does not verify (signer_not_found): the issuer of certificate 1 "
                   "(CN=Example Root) is neither sent nor trusted",
                   __LINE__);
    cm_findings_clear(&f);

    /* The path is followed as sent, in any order: intermediates sent out of order still lead
     * to the top of the path (and chain.order says they are out of order). */
    push_ca(r, "CN=Example Root", "CN=Example Top");
    swap_certs(r, 1, 2); /* leaf, Example Root (by Top), Example CA */
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.untrusted chain.order");
    expect_finding(&f, 0, "chain.untrusted", CM_SEV_CRITICAL, 1,
                   "the chain does not verify (signer_not_found): the issuer of certificate 1 "
                   "(CN=Example Top) is neither sent nor trusted",
                   __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_allow_self_signed(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_policy p = CM_POLICY_DEFAULT;
    struct cm_findings f;

    truncate_chain(r, 1);
    cm_cert_clear(&r->tls.chain.certs[0]);
    cm_tf_fill_cert(&r->tls.chain.certs[0], "CN=localhost", "CN=localhost", NOW - DAY, NOW + 90 * DAY,
              false);
    r->tls.verify.trusted = false;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_SIGNER_NOT_FOUND;
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.self_signed");
    cm_findings_clear(&f);

    p.allow_self_signed = true;
    run(r, &p, &f);
    EXPECT_IDS(&f, "");
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_OK);
    cm_findings_clear(&f);

    /* It allows the certificate, not a wrong name. */
    r->tls.verify.hostname_match = false;
    run(r, &p, &f);
    EXPECT_IDS(&f, "host.mismatch");
    cm_findings_clear(&f);
    cm_probe_result_free(r);

    /* Nor a self-signed leaf sent with other certificates. */
    r = quiet();
    r->tls.chain.certs[0].self_signed = true;
    r->tls.verify.trusted = false;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_SIGNER_NOT_FOUND;
    run(r, &p, &f);
    EXPECT_IDS(&f, "chain.untrusted");
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* Verification reasons that a specific finding explains do not also make the chain
 * "untrusted": the SHA-1 signature (signature.weak), the missing staple of a must-staple leaf
 * (ocsp.must_staple_missing), a revoked staple (cert.revoked), a bad staple (ocsp.invalid). */
static void test_untrusted_explained(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_cert *leaf = &r->tls.chain.certs[0];
    struct cm_policy p = CM_POLICY_DEFAULT;
    struct cm_findings f;

    r->tls.verify.trusted = false;
    set_signature(leaf, "RSA-SHA1", "SHA1");
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_INSECURE_ALGORITHM;
    run(r, &def, &f);
    EXPECT_IDS(&f, "signature.weak");
    cm_findings_clear(&f);

    /* Explained whether or not the policy shows the specific finding. */
    EXPECT_INT(cm_policy_ignore(&p, "signature.weak"), 0);
    run(r, &p, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    cm_policy_clear(&p);

    /* A reason it does not explain is still reported, without the explained one. */
    r->tls.verify.status |= CM_VERIFY_SIGNER_NOT_FOUND;
    run(r, &def, &f);
    EXPECT_IDS(&f, "signature.weak chain.untrusted");
    expect_finding(&f, 1, "chain.untrusted", CM_SEV_CRITICAL, 1,
                   "the chain does not verify (signer_not_found): the issuer of certificate 1 "
                   "(CN=Example Root) is neither sent nor trusted",
                   __LINE__);
    cm_findings_clear(&f);

    /* Without a weak signature in sight, insecure_algorithm is GnuTLS's word alone. */
    set_signature(leaf, "RSA-SHA256", "SHA256");
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_INSECURE_ALGORITHM;
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.untrusted");
    expect_finding(&f, 0, "chain.untrusted", CM_SEV_CRITICAL, -1,
                   "the chain does not verify against the trust store: insecure_algorithm",
                   __LINE__);
    cm_findings_clear(&f);

    /* Must-staple leaf, nothing stapled. */
    leaf->must_staple = true;
    r->tls.ocsp.status = CM_OCSP_NONE;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_MISSING_OCSP_STATUS;
    run(r, &def, &f);
    EXPECT_IDS(&f, "ocsp.must_staple_missing");
    cm_findings_clear(&f);
    leaf->must_staple = false;

    /* Revoked staple. */
    r->tls.ocsp = (struct cm_ocsp){.status = CM_OCSP_REVOKED, .verified = true};
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_REVOKED;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.revoked");
    cm_findings_clear(&f);

    /* A staple that does not verify. */
    r->tls.ocsp = (struct cm_ocsp){.status = CM_OCSP_GOOD, .verified = false};
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_INVALID_OCSP_STATUS;
    run(r, &def, &f);
    EXPECT_IDS(&f, "ocsp.invalid");
    cm_findings_clear(&f);

    /* The same bits with nothing to explain them: untrusted. */
    staple_good(r);
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.untrusted");
    expect_finding(&f, 0, "chain.untrusted", CM_SEV_CRITICAL, -1,
                   "the chain does not verify against the trust store: invalid_ocsp_status",
                   __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* ---- chain.order, chain.root_sent ---- */

static void test_chain_order(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_findings f;

    /* Sent as leaf, root, intermediate: reported at the leaf, the first certificate not
     * followed by its issuer; the root is still noted. */
    push_root(r);
    swap_certs(r, 1, 2);
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.order chain.root_sent");
    expect_finding(&f, 0, "chain.order", CM_SEV_WARNING, 0,
                   "certificate 0 (CN=example.com) is followed by CN=Example Root instead of its "
                   "issuer, which was sent at position 2; send the chain in issuing order",
                   __LINE__);
    EXPECT_NO_EVIDENCE(at(&f, 0));
    expect_finding(&f, 1, "chain.root_sent", CM_SEV_INFO, 1,
                   "the server also sends the root certificate (CN=Example Root) at position 1; "
                   "clients use their own copy, so it only costs bytes",
                   __LINE__);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_WARNING);
    cm_findings_clear(&f);

    /* In issuing order: leaf, intermediate, root. Only the root is worth a note. */
    swap_certs(r, 1, 2);
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.root_sent");
    expect_finding(&f, 0, "chain.root_sent", CM_SEV_INFO, 2,
                   "the server also sends the root certificate (CN=Example Root) at position 2; "
                   "clients use their own copy, so it only costs bytes",
                   __LINE__);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_OK);
    cm_findings_clear(&f);
    cm_probe_result_free(r);

    /* Deeper: leaf, CA, root, policy CA (which issued CA): reported at the CA. */
    r = quiet();
    free(r->tls.chain.certs[1].issuer);
    r->tls.chain.certs[1].issuer = cm_tf_strdup("CN=Example Policy CA");
    push_root(r);
    push_ca(r, "CN=Example Policy CA", "CN=Example Root");
    run(r, &def, &f);
    expect_finding(&f, 0, "chain.order", CM_SEV_WARNING, 1,
                   "certificate 1 (CN=Example CA) is followed by CN=Example Root instead of its "
                   "issuer, which was sent at position 3; send the chain in issuing order",
                   __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);

    /* An unrelated extra certificate is not a matter of order. */
    r = quiet();
    push_ca(r, "CN=Other CA", "CN=Other Root");
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_chain_order_key_ids(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_cert *leaf = &r->tls.chain.certs[0];
    struct cm_findings f;

    /* leaf, root, then a certificate named like the leaf's issuer. */
    push_root(r);
    swap_certs(r, 1, 2);
    leaf = &r->tls.chain.certs[0];

    /* Same name, different key: not the issuer (an old CA key, say), so the leaf is not out
     * of order. The CA certificate at the end comes after the root that issued it, which is
     * out of order since chain.order judges the last position too (the old loop stopped
     * before it). */
    set_key_ids(leaf, "1111", "aa01");
    set_key_ids(&r->tls.chain.certs[2], "bb02", "cc03");
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.order chain.root_sent");
    expect_finding(&f, 0, "chain.order", CM_SEV_WARNING, 2,
                   "certificate 2 (CN=Example CA) comes last, after its issuer, which was sent at "
                   "position 1; send the chain in issuing order, the server's certificate first",
                   __LINE__);
    expect_finding(&f, 1, "chain.root_sent", CM_SEV_INFO, 1,
                   "the server also sends the root certificate (CN=Example Root) at position 1; "
                   "clients use their own copy, so it only costs bytes",
                   __LINE__);
    cm_findings_clear(&f);

    /* Same name and same key: the issuer, sent in the wrong place. */
    set_key_ids(&r->tls.chain.certs[2], "aa01", "cc03");
    run(r, &def, &f);
    CU_ASSERT_PTR_NOT_NULL(find(&f, "chain.order", 0));
    cm_findings_clear(&f);

    /* A key identifier missing on either side (absent or empty): the names decide. */
    set_key_ids(&r->tls.chain.certs[2], "", "cc03");
    run(r, &def, &f);
    CU_ASSERT_PTR_NOT_NULL(find(&f, "chain.order", 0));
    cm_findings_clear(&f);
    set_key_ids(&r->tls.chain.certs[2], "bb02", "cc03");
    set_key_ids(leaf, "1111", NULL);
    run(r, &def, &f);
    CU_ASSERT_PTR_NOT_NULL(find(&f, "chain.order", 0));
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_root_sent(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_findings f;

    /* A leaf issued by the root directly, sent with it. */
    truncate_chain(r, 1);
    free(r->tls.chain.certs[0].issuer);
    r->tls.chain.certs[0].issuer = cm_tf_strdup("CN=Example Root");
    push_root(r);
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.root_sent");
    expect_finding(&f, 0, "chain.root_sent", CM_SEV_INFO, 1,
                   "the server also sends the root certificate (CN=Example Root) at position 1; "
                   "clients use their own copy, so it only costs bytes",
                   __LINE__);
    EXPECT_NO_EVIDENCE(at(&f, 0));
    cm_findings_clear(&f);

    /* Self-signed but not a CA: not a root. */
    r->tls.chain.certs[1].is_ca = false;
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    cm_probe_result_free(r);

    /* A root served as the leaf is not "also sent". */
    r = quiet();
    truncate_chain(r, 1);
    cm_cert_clear(&r->tls.chain.certs[0]);
    cm_tf_fill_cert(&r->tls.chain.certs[0], "CN=Example Root", "CN=Example Root", NOW - DAY,
              NOW + 90 * DAY, true);
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.no_san");
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* ---- leaf hygiene: cert.no_san, cert.lifetime_long, cert.wildcard ---- */

static void test_no_san(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_findings f;

    set_sans(&r->tls.chain.certs[0], NULL, 0);
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.no_san");
    expect_finding(&f, 0, "cert.no_san", CM_SEV_WARNING, 0,
                   "the leaf certificate (CN=example.com) has no subjectAltName; browsers and "
                   "modern TLS clients ignore the CN, so reissue it with the host names as SANs",
                   __LINE__);
    EXPECT_NO_EVIDENCE(at(&f, 0));
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_WARNING);
    cm_findings_clear(&f);

    /* Only the leaf counts: the intermediate of quiet() has no SAN either. */
    CU_ASSERT_EQUAL(r->tls.chain.certs[1].san_count, 0);
    cm_probe_result_free(r);
}

/* 2026-03-15T00:00:00Z, 2027-03-15 and 2029-03-15: where the CA/B schedule steps down. */
#define CABF_200 ((int64_t)1773532800)
#define CABF_100 ((int64_t)1805068800)
#define CABF_47 ((int64_t)1868227200)

/* The cert.lifetime_long finding of r judged a day after its leaf was issued (the rule looks at
 * the issuance date, not at the time of the check), or NULL. Other findings at that time (the
 * intermediate not valid yet, say) are not this test's business. */
static const struct cm_finding *lifetime_finding(const struct cm_probe_result *r,
                                                 const struct cm_policy *p, struct cm_findings *f)
{
    memset(f, 0, sizeof(*f));
    CU_ASSERT_EQUAL_FATAL(cm_analyze(r, p, (time_t)(r->tls.chain.certs[0].not_before + DAY), f), 0);
    return find(f, "cert.lifetime_long", 0);
}

static void expect_lifetime(const struct cm_probe_result *r, const char *msg, unsigned line)
{
    struct cm_findings f;
    const struct cm_finding *it = lifetime_finding(r, &def, &f);

    if (!msg) {
        CU_assertImplementation(it == NULL, line, "no cert.lifetime_long", __FILE__, "", CU_FALSE);
    } else {
        CU_assertImplementation(it != NULL, line, "cert.lifetime_long", __FILE__, "", CU_FALSE);
        if (it) {
            expect_str(it->message, msg, "message", line);
            CU_assertImplementation(it->severity == CM_SEV_INFO && it->position == 0, line,
                                    "info, at position 0", __FILE__, "", CU_FALSE);
            EXPECT_NO_EVIDENCE(it);
        }
    }
    cm_findings_clear(&f);
}
#define EXPECT_LIFETIME(r, msg) expect_lifetime((r), (msg), __LINE__)

static void test_lifetime_long(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_cert *leaf = &r->tls.chain.certs[0];
    struct cm_findings f;

    /* 398 days issued the day before 2026-03-15: the old rule, fine. */
    leaf->not_before = CABF_200 - DAY;
    leaf->not_after = leaf->not_before + 398 * DAY;
    EXPECT_LIFETIME(r, NULL);
    /* ... one second more is too long. */
    leaf->not_after++;
    EXPECT_LIFETIME(r, "leaf certificate 0 (CN=example.com) was issued 2026-03-14, valid 398 "
                       "days; certificates issued before 2026-03-15 may be valid at most 398 days");

    /* The same 398 days issued on 2026-03-15 at midnight: at most 200. */
    leaf->not_before = CABF_200;
    leaf->not_after = leaf->not_before + 398 * DAY;
    EXPECT_LIFETIME(r, "leaf certificate 0 (CN=example.com) was issued 2026-03-15, valid 398 "
                       "days; certificates issued from 2026-03-15 may be valid at most 200 days");

    /* The judging criterion of the issue: 300 days issued 2026-05-01 is too long. */
    leaf->not_before = CABF_200 + 47 * DAY; /* 2026-05-01 */
    leaf->not_after = leaf->not_before + 300 * DAY + 5 * 3600;
    EXPECT_LIFETIME(r, "leaf certificate 0 (CN=example.com) was issued 2026-05-01, valid 300 "
                       "days and 5 hours; certificates issued from 2026-03-15 may be valid at "
                       "most 200 days");
    /* 200 days exactly is fine. */
    leaf->not_after = leaf->not_before + 200 * DAY;
    EXPECT_LIFETIME(r, NULL);

    /* From 2027-03-15: 100 days. A second before it, 200 still apply. */
    leaf->not_before = CABF_100 - 1;
    leaf->not_after = leaf->not_before + 150 * DAY;
    EXPECT_LIFETIME(r, NULL);
    leaf->not_before = CABF_100;
    leaf->not_after = leaf->not_before + 100 * DAY;
    EXPECT_LIFETIME(r, NULL);
    leaf->not_after++;
    EXPECT_LIFETIME(r, "leaf certificate 0 (CN=example.com) was issued 2027-03-15, valid 100 "
                       "days; certificates issued from 2027-03-15 may be valid at most 100 days");

    /* From 2029-03-15: 47 days; a second before, 100 still apply. */
    leaf->not_before = CABF_47;
    leaf->not_after = leaf->not_before + 47 * DAY;
    EXPECT_LIFETIME(r, NULL);
    leaf->not_after = leaf->not_before + 48 * DAY;
    EXPECT_LIFETIME(r, "leaf certificate 0 (CN=example.com) was issued 2029-03-15, valid 48 "
                       "days; certificates issued from 2029-03-15 may be valid at most 47 days");
    leaf->not_before = CABF_47 - 1;
    leaf->not_after = leaf->not_before + 90 * DAY;
    EXPECT_LIFETIME(r, NULL);

    /* At NOW with the healthy chain, nothing else is found beside it. */
    leaf->not_before = NOW - DAY;
    leaf->not_after = leaf->not_before + 399 * DAY;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.lifetime_long");
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_OK);
    cm_findings_clear(&f);

    /* A CA certificate served as the leaf may live long: not cert.lifetime_long (it is
     * chain.ca_as_leaf, new with that finding). */
    leaf->not_after = leaf->not_before + 3650 * DAY;
    leaf->is_ca = true;
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.ca_as_leaf");
    cm_findings_clear(&f);

    /* Only the leaf is measured: the intermediate of quiet() lives 1925 days. */
    leaf->is_ca = false;
    leaf->not_after = leaf->not_before + 90 * DAY;
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* max_lifetime_days replaces the schedule: a private PKI's own rule, longer or shorter. */
static void test_lifetime_policy(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_cert *leaf = &r->tls.chain.certs[0];
    struct cm_policy p = CM_POLICY_DEFAULT;
    struct cm_findings f;

    leaf->not_before = NOW - DAY;
    leaf->not_after = leaf->not_before + 825 * DAY;
    p.max_lifetime_days = 825;
    run(r, &p, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    leaf->not_after += 3600;
    run(r, &p, &f);
    expect_finding(&f, 0, "cert.lifetime_long", CM_SEV_INFO, 0,
                   "leaf certificate 0 (CN=example.com) was issued 2027-01-14, valid 825 days "
                   "and 1 hour; the policy (max_lifetime_days) allows at most 825 days",
                   __LINE__);
    cm_findings_clear(&f);

    /* Shorter than the schedule: 30 days for 90-day certificates. */
    leaf->not_after = leaf->not_before + 90 * DAY;
    p.max_lifetime_days = 30;
    run(r, &p, &f);
    expect_finding(&f, 0, "cert.lifetime_long", CM_SEV_INFO, 0,
                   "leaf certificate 0 (CN=example.com) was issued 2027-01-14, valid 90 days; "
                   "the policy (max_lifetime_days) allows at most 30 days",
                   __LINE__);
    cm_findings_clear(&f);
    /* 1 day: singular. */
    p.max_lifetime_days = 1;
    run(r, &p, &f);
    expect_finding(&f, 0, "cert.lifetime_long", CM_SEV_INFO, 0,
                   "leaf certificate 0 (CN=example.com) was issued 2027-01-14, valid 90 days; "
                   "the policy (max_lifetime_days) allows at most 1 day",
                   __LINE__);
    cm_findings_clear(&f);

    /* 0 is the schedule again (2027-01-14: 200 days), and ignore turns it off. */
    p.max_lifetime_days = 0;
    run(r, &p, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    leaf->not_after = leaf->not_before + 201 * DAY;
    run(r, &p, &f);
    EXPECT_IDS(&f, "cert.lifetime_long");
    cm_findings_clear(&f);
    EXPECT_INT(cm_policy_ignore(&p, "cert.lifetime_long"), 0);
    run(r, &p, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    cm_policy_clear(&p);
    cm_probe_result_free(r);
}

static void test_lifetime_limit_days(void)
{
    int64_t since = 0;

    EXPECT_INT(cm_lifetime_limit_days(0, &since), 398);
    CU_ASSERT(since == INT64_MIN);
    EXPECT_INT(cm_lifetime_limit_days(CABF_200 - 1, NULL), 398);
    EXPECT_INT(cm_lifetime_limit_days(CABF_200, &since), 200);
    EXPECT_INT(since, CABF_200);
    EXPECT_INT(cm_lifetime_limit_days(CABF_100 - 1, NULL), 200);
    EXPECT_INT(cm_lifetime_limit_days(CABF_100, &since), 100);
    EXPECT_INT(since, CABF_100);
    EXPECT_INT(cm_lifetime_limit_days(CABF_47 - 1, NULL), 100);
    EXPECT_INT(cm_lifetime_limit_days(CABF_47, &since), 47);
    EXPECT_INT(since, CABF_47);
    EXPECT_INT(cm_lifetime_limit_days(INT64_MAX, NULL), 47);
    EXPECT_INT(cm_lifetime_limit_days(INT64_MIN, NULL), 398);
}

/* ---- expiry thresholds that scale with the lifetime ---- */

/* A leaf of `lifetime` seconds with `left` seconds left at NOW. */
static void set_life(struct cm_cert *c, int64_t lifetime, int64_t left)
{
    c->not_after = NOW + left;
    c->not_before = c->not_after - lifetime;
}

static void test_expiring_lifetime(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_cert *leaf = &r->tls.chain.certs[0];
    struct cm_findings f;

    /* A 6-day certificate with 4 days left is fine: 33% of 6 days is 1.98 days. */
    set_life(leaf, 6 * DAY, 4 * DAY);
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    /* ... with 2 days left too (2 > 1.98), and with 1.98 days exactly. */
    set_life(leaf, 6 * DAY, 2 * DAY);
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    set_life(leaf, 6 * DAY, 6 * DAY * 33 / 100);
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    /* One second less is a warning, by the lifetime rule. */
    set_life(leaf, 6 * DAY, 6 * DAY * 33 / 100 - 1);
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.expiring");
    expect_finding(&f, 0, "cert.expiring", CM_SEV_WARNING, 0,
                   "leaf certificate 0 (CN=example.com) expires in 1 day, on "
                   "2027-01-17T07:31:11Z; under 33% of its 6-day lifetime",
                   __LINE__);
    expect_evidence(at(&f, 0), true, 1, NULL, 0, NULL, __LINE__);
    cm_findings_clear(&f);
    /* Half a day left is critical: under 10% (14.4 hours). */
    set_life(leaf, 6 * DAY, DAY / 2);
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.expiring");
    expect_finding(&f, 0, "cert.expiring", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expires in 0 days, on "
                   "2027-01-15T20:00:00Z; under 10% of its 6-day lifetime",
                   __LINE__);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    cm_findings_clear(&f);
    /* 15 hours left: above 14.4 hours, a warning. */
    set_life(leaf, 6 * DAY, 15 * 3600);
    run(r, &def, &f);
    EXPECT_INT(sev_at(&f, 0), CM_SEV_WARNING);
    cm_findings_clear(&f);

    /* A 90-day certificate with 25 days left warns: 33% of 90 days is 29.7, under 30. */
    set_life(leaf, 90 * DAY, 25 * DAY);
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.expiring");
    expect_finding(&f, 0, "cert.expiring", CM_SEV_WARNING, 0,
                   "leaf certificate 0 (CN=example.com) expires in 25 days, on "
                   "2027-02-09T08:00:00Z; under 33% of its 90-day lifetime",
                   __LINE__);
    cm_findings_clear(&f);
    /* ... and with 29.8 days left it does not (29.7 is the threshold, not 30). */
    set_life(leaf, 90 * DAY, 29 * DAY + DAY * 8 / 10);
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    /* 8 days left of 90: critical by the lifetime rule (9 days < 7? no: min(7, 9) = 7), so
     * a warning; 6 days left is critical by the day rule. */
    set_life(leaf, 90 * DAY, 8 * DAY);
    run(r, &def, &f);
    EXPECT_INT(sev_at(&f, 0), CM_SEV_WARNING);
    cm_findings_clear(&f);
    set_life(leaf, 90 * DAY, 6 * DAY);
    run(r, &def, &f);
    expect_finding(&f, 0, "cert.expiring", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expires in 6 days, on "
                   "2027-01-21T08:00:00Z; under the 7-day critical threshold",
                   __LINE__);
    cm_findings_clear(&f);

    /* A 1-day certificate (lifetimes under two days read in hours). */
    set_life(leaf, DAY, 2 * 3600);
    run(r, &def, &f);
    expect_finding(&f, 0, "cert.expiring", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expires in 0 days, on "
                   "2027-01-15T10:00:00Z; under 10% of its 24-hour lifetime",
                   __LINE__);
    cm_findings_clear(&f);

    /* A broken certificate whose not_after precedes its not_before has no lifetime: no
     * threshold (it is judged expired or not yet valid where that applies). */
    leaf->not_before = NOW + 10 * DAY;
    leaf->not_after = NOW + DAY;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.not_yet_valid");
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* The percentages are policy: 100 leaves the day rule, a smaller one warns later. */
static void test_expiring_lifetime_policy(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_cert *leaf = &r->tls.chain.certs[0];
    struct cm_policy p = CM_POLICY_DEFAULT;
    struct cm_findings f;
    int64_t warn_s, crit_s;
    enum cm_expiry_rule wr, cr;

    /* 100%: the day rule alone; a 6-day certificate warns its whole life. */
    p.warn_lifetime_pct = 100;
    p.crit_lifetime_pct = 100;
    set_life(leaf, 6 * DAY, 5 * DAY);
    run(r, &p, &f);
    expect_finding(&f, 0, "cert.expiring", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expires in 5 days, on "
                   "2027-01-20T08:00:00Z; under the 7-day critical threshold",
                   __LINE__);
    cm_findings_clear(&f);

    /* 20% / 5%: a 90-day certificate warns at 18 days, critical at 4.5. */
    p.warn_lifetime_pct = 20;
    p.crit_lifetime_pct = 5;
    set_life(leaf, 90 * DAY, 19 * DAY);
    run(r, &p, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    set_life(leaf, 90 * DAY, 17 * DAY);
    run(r, &p, &f);
    expect_finding(&f, 0, "cert.expiring", CM_SEV_WARNING, 0,
                   "leaf certificate 0 (CN=example.com) expires in 17 days, on "
                   "2027-02-01T08:00:00Z; under 20% of its 90-day lifetime",
                   __LINE__);
    cm_findings_clear(&f);
    set_life(leaf, 90 * DAY, 4 * DAY);
    run(r, &p, &f);
    expect_finding(&f, 0, "cert.expiring", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) expires in 4 days, on "
                   "2027-01-19T08:00:00Z; under 5% of its 90-day lifetime",
                   __LINE__);
    cm_findings_clear(&f);

    /* The thresholds themselves, and which rule set them. */
    cm_expiry_thresholds(leaf, &p, &warn_s, &crit_s, &wr, &cr);
    EXPECT_INT(warn_s, 18 * DAY);
    EXPECT_INT(crit_s, 90 * DAY * 5 / 100);
    EXPECT_INT(wr, CM_EXPIRY_LIFETIME);
    EXPECT_INT(cr, CM_EXPIRY_LIFETIME);
    cm_expiry_thresholds(leaf, &def, &warn_s, &crit_s, &wr, &cr);
    EXPECT_INT(warn_s, 90 * DAY * 33 / 100);
    EXPECT_INT(crit_s, 7 * DAY);
    EXPECT_INT(wr, CM_EXPIRY_LIFETIME);
    EXPECT_INT(cr, CM_EXPIRY_DAYS);
    /* warn_days = 0 keeps the level off whatever the lifetime. */
    p.warn_days = 0;
    cm_expiry_thresholds(leaf, &p, &warn_s, &crit_s, NULL, NULL);
    EXPECT_INT(warn_s, 0);
    cm_policy_clear(&p);
    cm_probe_result_free(r);
}

/* Our client certificate follows the same rule. */
static void test_client_cert_lifetime(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_findings f;
    struct cm_cert *c;

    r->client_chain.certs = calloc(1, sizeof(*r->client_chain.certs));
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->client_chain.certs);
    r->client_chain.count = 1;
    c = &r->client_chain.certs[0];
    cm_tf_fill_cert(c, "CN=certmon client", "CN=Example CA", 0, 0, false);
    set_life(c, 6 * DAY, 4 * DAY);
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    set_life(c, 90 * DAY, 25 * DAY);
    run(r, &def, &f);
    EXPECT_IDS(&f, "mtls.client_cert_expiring");
    expect_finding(&f, 0, "mtls.client_cert_expiring", CM_SEV_WARNING, -1,
                   "our client certificate (CN=certmon client) expires in 25 days, on "
                   "2027-02-09T08:00:00Z; under 33% of its 90-day lifetime",
                   __LINE__);
    cm_findings_clear(&f);
    set_life(c, 6 * DAY, DAY / 2);
    run(r, &def, &f);
    expect_finding(&f, 0, "mtls.client_cert_expiring", CM_SEV_CRITICAL, -1,
                   "our client certificate (CN=certmon client) expires in 0 days, on "
                   "2027-01-15T20:00:00Z; under 10% of its 6-day lifetime",
                   __LINE__);
    cm_findings_clear(&f);
    set_life(c, 365 * DAY, 20 * DAY);
    run(r, &def, &f);
    expect_finding(&f, 0, "mtls.client_cert_expiring", CM_SEV_WARNING, -1,
                   "our client certificate (CN=certmon client) expires in 20 days, on "
                   "2027-02-04T08:00:00Z; under the 30-day warning threshold",
                   __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_wildcard(void)
{
    static const char *const wild[] = {"example.com", "*.example.com", "*.example.net"};
    static const char *const tame[] = {"example.com", "a*.example.com", "x.*.example.com", "*"};
    struct cm_probe_result *r = quiet();
    struct cm_findings f;

    /* One finding, naming the first wildcard. */
    set_sans(&r->tls.chain.certs[0], wild, 3);
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.wildcard");
    expect_finding(&f, 0, "cert.wildcard", CM_SEV_INFO, 0,
                   "the leaf certificate is a wildcard (*.example.com): its key serves every host "
                   "it covers",
                   __LINE__);
    EXPECT_NO_EVIDENCE(at(&f, 0));
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_OK);
    cm_findings_clear(&f);

    /* Only a leading "*." label is a wildcard. */
    set_sans(&r->tls.chain.certs[0], tame, 4);
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);

    /* The three hygiene findings together, in this order. */
    set_sans(&r->tls.chain.certs[0], wild, 3);
    r->tls.chain.certs[0].not_after = r->tls.chain.certs[0].not_before + 500 * DAY;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.lifetime_long cert.wildcard");
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* ---- OCSP ---- */

static void test_ocsp(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_ocsp *o = &r->tls.ocsp;
    struct cm_findings f;

    /* Nothing stapled: info only. */
    run(r, &def, &f);
    EXPECT_IDS(&f, "ocsp.not_stapled");
    EXPECT_NOT_STAPLED(&f, 0);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_OK);
    cm_findings_clear(&f);

    /* Nothing stapled for a must-staple leaf: critical, instead of ocsp.not_stapled. */
    r->tls.chain.certs[0].must_staple = true;
    run(r, &def, &f);
    EXPECT_IDS(&f, "ocsp.must_staple_missing");
    expect_finding(&f, 0, "ocsp.must_staple_missing", CM_SEV_CRITICAL, 0,
                   "the leaf certificate requires OCSP stapling (must-staple) but the server "
                   "sends no staple: clients that honour it refuse the connection",
                   __LINE__);
    EXPECT_NO_EVIDENCE(at(&f, 0));
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    cm_findings_clear(&f);

    /* Must-staple on an intermediate does not count. */
    r->tls.chain.certs[0].must_staple = false;
    r->tls.chain.certs[1].must_staple = true;
    run(r, &def, &f);
    EXPECT_IDS(&f, "ocsp.not_stapled");
    cm_findings_clear(&f);
    r->tls.chain.certs[1].must_staple = false;

    /* A good, verified staple: nothing, must-staple or not. */
    staple_good(r);
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    r->tls.chain.certs[0].must_staple = true;
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    r->tls.chain.certs[0].must_staple = false;

    /* Good but not verified. */
    o->verified = false;
    run(r, &def, &f);
    EXPECT_IDS(&f, "ocsp.invalid");
    expect_finding(&f, 0, "ocsp.invalid", CM_SEV_WARNING, 0,
                   "the stapled OCSP response (good) does not verify: wrong signer, wrong "
                   "certificate or out of date",
                   __LINE__);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_WARNING);
    cm_findings_clear(&f);

    /* "unknown" from the responder: invalid when it does not verify, else nothing. */
    o->status = CM_OCSP_UNKNOWN;
    run(r, &def, &f);
    EXPECT_IDS(&f, "ocsp.invalid");
    expect_finding(&f, 0, "ocsp.invalid", CM_SEV_WARNING, 0,
                   "the stapled OCSP response (unknown) does not verify: wrong signer, wrong "
                   "certificate or out of date",
                   __LINE__);
    cm_findings_clear(&f);
    o->verified = true;
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);

    /* A staple that cannot be parsed. */
    *o = (struct cm_ocsp){.status = CM_OCSP_BAD};
    run(r, &def, &f);
    EXPECT_IDS(&f, "ocsp.invalid");
    expect_finding(&f, 0, "ocsp.invalid", CM_SEV_WARNING, 0,
                   "the stapled OCSP response cannot be parsed", __LINE__);
    cm_findings_clear(&f);

    /* Revoked, with and without a revocation time; verified or not. */
    *o = (struct cm_ocsp){.status = CM_OCSP_REVOKED,
                          .verified = true,
                          .this_update = NOW - 3600,
                          .revoked_at = NOW - 2 * DAY};
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.revoked");
    expect_finding(&f, 0, "cert.revoked", CM_SEV_CRITICAL, 0,
                   "the stapled OCSP response says the leaf certificate was revoked on "
                   "2027-01-13T08:00:00Z",
                   __LINE__);
    EXPECT_NO_EVIDENCE(at(&f, 0));
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    cm_findings_clear(&f);
    o->revoked_at = 0;
    o->verified = false;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.revoked");
    expect_finding(&f, 0, "cert.revoked", CM_SEV_CRITICAL, 0,
                   "the stapled OCSP response says the leaf certificate was revoked", __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* Revocation data as the checker (revocation.h) leaves it in a result. */
static struct cm_revocation *rev_new(struct cm_probe_result *r)
{
    struct cm_revocation *rv = calloc(1, sizeof(*rv));

    CU_ASSERT_PTR_NOT_NULL_FATAL(rv);
    rv->certs = calloc(r->tls.chain.count, sizeof(*rv->certs));
    CU_ASSERT_PTR_NOT_NULL_FATAL(rv->certs);
    rv->count = r->tls.chain.count;
    r->revocation = rv;
    return rv;
}

static void test_revocation_findings(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_revocation *rv = rev_new(r);
    struct cm_policy p = CM_POLICY_DEFAULT;
    struct cm_findings f;

    /* The intermediate listed in its issuer's CRL; the leaf good by its staple. */
    rv->certs[0] = (struct cm_rev_cert){.status = CM_REV_GOOD, .source = CM_REV_SRC_STAPLE};
    rv->certs[1] = (struct cm_rev_cert){.status = CM_REV_REVOKED,
                                        .source = CM_REV_SRC_CRL,
                                        .revoked_at = NOW - 2 * DAY,
                                        .reason = "cACompromise"};
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.revoked");
    expect_finding(&f, 0, "cert.revoked", CM_SEV_CRITICAL, 1,
                   "chain certificate 1 (CN=Example CA) is revoked since 2027-01-13T08:00:00Z: "
                   "cACompromise, says its CRL",
                   __LINE__);
    CU_ASSERT_STRING_EQUAL(at(&f, 0)->rev_source, "crl");
    CU_ASSERT_STRING_EQUAL(at(&f, 0)->rev_reason, "cACompromise");
    EXPECT_INT(at(&f, 0)->revoked_at, NOW - 2 * DAY);
    cm_findings_clear(&f);

    /* The old id still silences it. */
    CU_ASSERT_EQUAL_FATAL(cm_policy_ignore(&p, "ocsp.revoked"), 0);
    run(r, &p, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    cm_policy_clear(&p);

    /* Every source failed, with reasons; a stale CRL; nothing published. */
    rv->certs[0] = (struct cm_rev_cert){.status = CM_REV_UNAVAILABLE};
    rv->certs[0].errors[0] = cm_tf_strdup("http://127.0.0.1:1/ca.crl: cannot fetch the CRL: refused");
    rv->certs[0].errors[1] = cm_tf_strdup("http://x/ca.crl: signature does not verify");
    rv->certs[0].error_count = 2;
    rv->certs[1] = (struct cm_rev_cert){
        .status = CM_REV_UNAVAILABLE, .crl_stale = true, .next_update = NOW - DAY};
    run(r, &def, &f);
    EXPECT_IDS(&f, "revocation.unavailable revocation.crl_stale");
    expect_finding(&f, 0, "revocation.unavailable", CM_SEV_WARNING, 0,
                   "the revocation status of leaf certificate 0 (CN=example.com) cannot be "
                   "checked: http://127.0.0.1:1/ca.crl: cannot fetch the CRL: refused; "
                   "http://x/ca.crl: signature does not verify",
                   __LINE__);
    expect_finding(&f, 1, "revocation.crl_stale", CM_SEV_WARNING, 1,
                   "the only CRL available for chain certificate 1 (CN=Example CA) is out of "
                   "date (nextUpdate 2027-01-14T08:00:00Z): its revocation status is unknown",
                   __LINE__);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_WARNING);
    cm_findings_clear(&f);
    cm_revocation_free(r->revocation);
    rv = rev_new(r);
    rv->certs[0].status = CM_REV_NONE;
    rv->certs[1].status = CM_REV_UNCHECKED;
    run(r, &def, &f);
    EXPECT_IDS(&f, "revocation.none");
    expect_finding(&f, 0, "revocation.none", CM_SEV_INFO, 0,
                   "leaf certificate 0 (CN=example.com) publishes neither a CRL nor an OCSP "
                   "responder",
                   __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* revocation = "off" drops every revocation finding, a revoked staple's too; "staple-only"
 * keeps the staple's and ignores fetched evidence. Staple health findings stay. */
static void test_revocation_modes(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_revocation *rv = rev_new(r);
    struct cm_policy off = CM_POLICY_DEFAULT, staple = CM_POLICY_DEFAULT;
    struct cm_findings f;

    off.revocation = CM_REVOCATION_OFF;
    staple.revocation = CM_REVOCATION_STAPLE_ONLY;
    r->tls.ocsp = (struct cm_ocsp){.status = CM_OCSP_REVOKED, .verified = true};
    rv->certs[0] = (struct cm_rev_cert){.status = CM_REV_REVOKED, .source = CM_REV_SRC_STAPLE};
    rv->certs[1] = (struct cm_rev_cert){.status = CM_REV_REVOKED, .source = CM_REV_SRC_CRL};
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.revoked cert.revoked");
    cm_findings_clear(&f);
    run(r, &staple, &f);
    EXPECT_IDS(&f, "cert.revoked");
    EXPECT_INT(at(&f, 0)->position, 0);
    CU_ASSERT_STRING_EQUAL(at(&f, 0)->rev_source, "staple");
    cm_findings_clear(&f);
    run(r, &off, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);

    rv->certs[1] = (struct cm_rev_cert){.status = CM_REV_UNAVAILABLE};
    r->tls.ocsp = (struct cm_ocsp){.status = CM_OCSP_BAD};
    run(r, &off, &f);
    EXPECT_IDS(&f, "ocsp.invalid");
    cm_findings_clear(&f);
    run(r, &staple, &f);
    EXPECT_IDS(&f, "ocsp.invalid");
    cm_findings_clear(&f);
    run(r, &def, &f);
    EXPECT_IDS(&f, "ocsp.invalid revocation.unavailable");
    cm_findings_clear(&f);

    EXPECT_INT(cm_revocation_mode_parse("staple-only", &off.revocation), 0);
    EXPECT_INT(off.revocation, CM_REVOCATION_STAPLE_ONLY);
    EXPECT_INT(cm_revocation_mode_parse("Off", &off.revocation), CM_EBADARG);
    CU_ASSERT_STRING_EQUAL(cm_revocation_mode_name(CM_REVOCATION_OFF), "off");
    cm_probe_result_free(r);
}

static void test_ocsp_needs_handshake(void)
{
    static const enum cm_ocsp_status statuses[] = {CM_OCSP_NONE, CM_OCSP_GOOD, CM_OCSP_REVOKED,
                                                   CM_OCSP_UNKNOWN, CM_OCSP_BAD};
    struct cm_probe_result *r = healthy();
    struct cm_findings f;

    /* No version: the handshake did not complete, so no staple could be seen. */
    free(r->tls.version);
    r->tls.version = NULL;
    r->tls.chain.certs[0].must_staple = true;
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        r->tls.ocsp = (struct cm_ocsp){.status = statuses[i]};
        run(r, &def, &f);
        EXPECT_IDS(&f, "");
        cm_findings_clear(&f);
    }
    cm_probe_result_free(r);
}

/* ---- evidence ---- */

static void test_days_left_evidence(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_cert *leaf = &r->tls.chain.certs[0];
    struct cm_findings f;

    leaf->not_before = NOW - 80 * DAY; /* long enough for the day rule */
    leaf->not_after = NOW + 30 * DAY - 1;
    run(r, &def, &f);
    expect_evidence(find(&f, "cert.expiring", 0), true, 29, NULL, 0, NULL, __LINE__);
    cm_findings_clear(&f);

    /* 0 days left is evidence too, not its absence. */
    leaf->not_after = NOW;
    run(r, &def, &f);
    expect_evidence(find(&f, "cert.expiring", 0), true, 0, NULL, 0, NULL, __LINE__);
    cm_findings_clear(&f);

    /* Expired: negative, rounded down like the chain entry's days_left. */
    leaf->not_after = NOW - 1;
    run(r, &def, &f);
    expect_evidence(find(&f, "cert.expired", 0), true, -1, NULL, 0, NULL, __LINE__);
    if (f.count)
        EXPECT_INT(f.items[0].days_left, cm_cert_days_left(leaf, NOW));
    cm_findings_clear(&f);
    leaf->not_after = NOW - 3 * DAY - 5;
    run(r, &def, &f);
    expect_evidence(find(&f, "cert.expired", 0), true, -4, NULL, 0, NULL, __LINE__);
    cm_findings_clear(&f);

    /* Not yet valid: the days left until not_after, as everywhere else. */
    leaf->not_before = NOW + DAY;
    leaf->not_after = NOW + 90 * DAY;
    run(r, &def, &f);
    expect_evidence(find(&f, "cert.not_yet_valid", 0), true, 90, NULL, 0, NULL, __LINE__);
    cm_findings_clear(&f);

    /* On an intermediate. */
    leaf->not_before = NOW - DAY;
    r->tls.chain.certs[1].not_after = NOW + 10 * DAY + 5;
    run(r, &def, &f);
    expect_evidence(find(&f, "cert.expiring", 1), true, 10, NULL, 0, NULL, __LINE__);
    cm_findings_clear(&f);

    /* Findings without evidence say so. */
    r->tls.chain.certs[1].not_after = NOW + 1825LL * DAY;
    r->tls.verify.hostname_match = false;
    run(r, &def, &f);
    EXPECT_IDS(&f, "host.mismatch");
    EXPECT_NO_EVIDENCE(find(&f, "host.mismatch", 0));
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* ---- policy rules ---- */

static void test_policy_ignore(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_policy p = CM_POLICY_DEFAULT;
    struct cm_findings f;
    char id[32];

    /* The id may live in a buffer: the rule keeps the catalogue's copy. */
    snprintf(id, sizeof(id), "ocsp.not_stapled");
    EXPECT_INT(cm_policy_ignore(&p, id), 0);
    memset(id, 'x', sizeof(id) - 1);
    EXPECT_INT(p.rule_count, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p.rules);
    CU_ASSERT_PTR_EQUAL(p.rules[0].id, cm_finding_lookup("ocsp.not_stapled")->id);
    CU_ASSERT_TRUE(p.rules[0].ignore);
    run(r, &p, &f);
    EXPECT_IDS(&f, "");
    CU_ASSERT_PTR_NULL(f.items);
    cm_findings_clear(&f);

    /* Ignoring one id leaves the others. */
    r->tls.chain.certs[0].not_after = NOW + 3 * DAY;
    r->tls.verify.hostname_match = false;
    EXPECT_INT(cm_policy_ignore(&p, "cert.expiring"), 0);
    run(r, &p, &f);
    EXPECT_IDS(&f, "host.mismatch");
    cm_findings_clear(&f);

    /* Findings that carry evidence can be ignored too. */
    r->tls.verify.hostname_match = true;
    r->tls.chain.certs[0].not_after = NOW - DAY;
    r->tls.chain.certs[0].key_bits = 1024;
    set_signature(&r->tls.chain.certs[0], "RSA-SHA1", "SHA1");
    EXPECT_INT(cm_policy_ignore(&p, "cert.expired"), 0);
    EXPECT_INT(cm_policy_ignore(&p, "key.weak"), 0);
    EXPECT_INT(cm_policy_ignore(&p, "signature.weak"), 0);
    run(r, &p, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);

    /* Ignoring the same id twice is harmless. */
    EXPECT_INT(cm_policy_ignore(&p, "key.weak"), 0);
    EXPECT_INT(p.rule_count, 6);
    run(r, &p, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);

    cm_policy_clear(&p);
    CU_ASSERT_PTR_NULL(p.rules);
    EXPECT_INT(p.rule_count, 0);
    /* Clearing keeps the plain values. */
    EXPECT_INT(p.warn_days, 30);
    EXPECT_INT(p.min_rsa_bits, 2048);
    run(r, &p, &f);
    EXPECT_IDS(&f, "cert.expired key.weak signature.weak ocsp.not_stapled");
    cm_findings_clear(&f);
    cm_policy_clear(&p);
    cm_policy_clear(NULL);
    cm_probe_result_free(r);
}

static void test_policy_severity(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_policy p = CM_POLICY_DEFAULT;
    struct cm_findings f;

    r->tls.chain.certs[0].not_before = NOW - 80 * DAY;
    r->tls.chain.certs[0].not_after = NOW + 20 * DAY; /* cert.expiring, warning */
    EXPECT_INT(cm_policy_set_severity(&p, "cert.expiring", CM_SEV_CRITICAL), 0);
    EXPECT_INT(p.rule_count, 1);
    CU_ASSERT_FALSE(p.rules[0].ignore);
    EXPECT_INT(p.rules[0].severity, CM_SEV_CRITICAL);
    run(r, &p, &f);
    EXPECT_IDS(&f, "cert.expiring");
    EXPECT_INT(sev_at(&f, 0), CM_SEV_CRITICAL);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    /* The evidence stays. */
    expect_evidence(at(&f, 0), true, 20, NULL, 0, NULL, __LINE__);
    cm_findings_clear(&f);

    /* A later rule for the same id wins. */
    EXPECT_INT(cm_policy_set_severity(&p, "cert.expiring", CM_SEV_INFO), 0);
    run(r, &p, &f);
    EXPECT_IDS(&f, "cert.expiring");
    EXPECT_INT(sev_at(&f, 0), CM_SEV_INFO);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_OK);
    cm_findings_clear(&f);
    EXPECT_INT(cm_policy_ignore(&p, "cert.expiring"), 0);
    run(r, &p, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    cm_policy_clear(&p);

    /* An override replaces the severity whatever the case: EC and RSA alike. */
    r->tls.chain.certs[0].not_after = NOW + 90 * DAY;
    r->tls.chain.certs[0].key_type = "EC";
    r->tls.chain.certs[0].key_bits = 224;
    r->tls.chain.certs[1].key_bits = 1024;
    EXPECT_INT(cm_policy_set_severity(&p, "key.weak", CM_SEV_WARNING), 0);
    run(r, &p, &f);
    EXPECT_IDS(&f, "key.weak key.weak");
    EXPECT_INT(sev_at(&f, 0), CM_SEV_WARNING);
    EXPECT_INT(sev_at(&f, 1), CM_SEV_WARNING);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_WARNING);
    cm_findings_clear(&f);

    /* Rules for other ids change nothing here. */
    cm_policy_clear(&p);
    EXPECT_INT(cm_policy_set_severity(&p, "ocsp.not_stapled", CM_SEV_CRITICAL), 0);
    run(r, &p, &f);
    EXPECT_IDS(&f, "key.weak key.weak");
    EXPECT_INT(sev_at(&f, 0), CM_SEV_WARNING);
    EXPECT_INT(sev_at(&f, 1), CM_SEV_CRITICAL);
    cm_findings_clear(&f);
    cm_policy_clear(&p);

    /* Raising an info finding changes the status. */
    r->tls.chain.certs[0].key_bits = 256;
    r->tls.chain.certs[1].key_bits = 2048;
    r->tls.ocsp.status = CM_OCSP_NONE;
    EXPECT_INT(cm_policy_set_severity(&p, "ocsp.not_stapled", CM_SEV_WARNING), 0);
    run(r, &p, &f);
    EXPECT_IDS(&f, "ocsp.not_stapled");
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_WARNING);
    cm_findings_clear(&f);
    cm_policy_clear(&p);
    cm_probe_result_free(r);
}

static void test_policy_bad_rules(void)
{
    struct cm_policy p = CM_POLICY_DEFAULT;

    EXPECT_INT(cm_policy_ignore(&p, "cert.expird"), CM_EBADARG);
    EXPECT_INT(cm_policy_ignore(&p, "Cert.Expired"), CM_EBADARG);
    EXPECT_INT(cm_policy_ignore(&p, ""), CM_EBADARG);
    EXPECT_INT(cm_policy_ignore(&p, NULL), CM_EBADARG);
    EXPECT_INT(cm_policy_set_severity(&p, "no.such", CM_SEV_WARNING), CM_EBADARG);
    /* Only info, warning and critical are severities a rule can give. */
    EXPECT_INT(cm_policy_set_severity(&p, "key.weak", CM_SEV_OK), CM_EBADARG);
    EXPECT_INT(cm_policy_set_severity(&p, "key.weak", (enum cm_severity)4), CM_EBADARG);
    EXPECT_INT(p.rule_count, 0);
    CU_ASSERT_PTR_NULL(p.rules);
    /* A bad rule after good ones leaves them alone. */
    EXPECT_INT(cm_policy_set_severity(&p, "key.weak", CM_SEV_INFO), 0);
    EXPECT_INT(cm_policy_ignore(&p, "key.wea"), CM_EBADARG);
    EXPECT_INT(p.rule_count, 1);
    EXPECT_STR(p.rules[0].id, "key.weak");
    cm_policy_clear(&p);
}

static void test_severity_parse(void)
{
    static const char *const bad[] = {"ok",   "Warning",  "CRITICAL",   "",
                                      "crit", "warning ", "information"};
    enum cm_severity s = CM_SEV_OK;

    EXPECT_INT(cm_severity_parse("info", &s), 0);
    EXPECT_INT(s, CM_SEV_INFO);
    EXPECT_INT(cm_severity_parse("warning", &s), 0);
    EXPECT_INT(s, CM_SEV_WARNING);
    EXPECT_INT(cm_severity_parse("critical", &s), 0);
    EXPECT_INT(s, CM_SEV_CRITICAL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s = CM_SEV_WARNING;
        EXPECT_INT(cm_severity_parse(bad[i], &s), CM_EBADARG);
        EXPECT_INT(s, CM_SEV_WARNING); /* untouched */
    }
    /* Names and parsing agree. */
    for (int i = CM_SEV_INFO; i <= CM_SEV_CRITICAL; i++) {
        EXPECT_INT(cm_severity_parse(cm_severity_name((enum cm_severity)i), &s), 0);
        EXPECT_INT(s, i);
    }
}

/* ---- the catalogue ---- */

static bool id_shaped(const char *id)
{
    const char *dot = strchr(id, '.');

    if (!dot || dot == id || !(dot[1] >= 'a' && dot[1] <= 'z') || strchr(dot + 1, '.'))
        return false;
    for (const char *p = id; *p; p++)
        if (p != dot &&
            !((*p >= 'a' && *p <= 'z') || (p > dot && (*p == '_' || (*p >= '0' && *p <= '9')))))
            return false;
    return true;
}

static void test_catalogue(void)
{
    static const struct {
        const char *id;
        enum cm_severity sev;
    } want[] = {
        {"probe.failed", CM_SEV_CRITICAL},
        {"cert.expired", CM_SEV_CRITICAL},
        {"cert.expiring", CM_SEV_WARNING},
        {"cert.not_yet_valid", CM_SEV_CRITICAL},
        {"chain.untrusted", CM_SEV_CRITICAL},
        {"chain.self_signed", CM_SEV_CRITICAL},
        {"chain.incomplete", CM_SEV_CRITICAL},
        {"chain.order", CM_SEV_WARNING},
        {"chain.root_sent", CM_SEV_INFO},
        {"host.mismatch", CM_SEV_CRITICAL},
        {"key.weak", CM_SEV_CRITICAL},
        {"signature.weak", CM_SEV_CRITICAL},
        {"cert.no_san", CM_SEV_WARNING},
        {"cert.lifetime_long", CM_SEV_INFO},
        {"cert.wildcard", CM_SEV_INFO},
        {"cert.revoked", CM_SEV_CRITICAL},
        {"revocation.unavailable", CM_SEV_WARNING},
        {"revocation.crl_stale", CM_SEV_WARNING},
        {"revocation.none", CM_SEV_INFO},
        {"ocsp.must_staple_missing", CM_SEV_CRITICAL},
        {"ocsp.not_stapled", CM_SEV_INFO},
        {"ocsp.invalid", CM_SEV_WARNING},
        {"protocol.legacy", CM_SEV_WARNING},
        {"protocol.no_modern", CM_SEV_CRITICAL},
        {"protocol.no_tls13", CM_SEV_INFO},
        {"cipher.weak", CM_SEV_CRITICAL},
        {"cipher.no_forward_secrecy", CM_SEV_WARNING},
        {"cipher.no_aead", CM_SEV_WARNING},
        {"dh.weak", CM_SEV_WARNING},
        {"renegotiation.insecure", CM_SEV_WARNING},
        {"endpoint.inconsistent", CM_SEV_WARNING},
        {"mtls.client_cert_required", CM_SEV_CRITICAL},
        {"mtls.client_cert_rejected", CM_SEV_CRITICAL},
        {"mtls.client_cert_expiring", CM_SEV_WARNING},
        {"mtls.client_cert_expired", CM_SEV_CRITICAL},
        {"chain.ca_as_leaf", CM_SEV_CRITICAL},
        {"chain.interception_root", CM_SEV_CRITICAL},
        {"cert.purpose", CM_SEV_CRITICAL},
        {"cert.renewal_window_passed", CM_SEV_WARNING},
        {"cert.renewal_window_open", CM_SEV_INFO},
        {"ari.unavailable", CM_SEV_INFO},
        {"cert.pin_mismatch", CM_SEV_CRITICAL},
        {"cert.changed", CM_SEV_WARNING},
        {"key.mismatch", CM_SEV_CRITICAL},
        {"key.unreadable", CM_SEV_WARNING},
        {"keystore.integrity_failed", CM_SEV_CRITICAL},
        {"keystore.unverified", CM_SEV_INFO},
        {"deploy.stale", CM_SEV_WARNING},
        {"deploy.file_unreadable", CM_SEV_WARNING},
        {"cert.renewed", CM_SEV_INFO},
    };

    EXPECT_INT(cm_finding_catalogue_len, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const struct cm_finding_def *d = cm_finding_lookup(want[i].id);

        CU_ASSERT_PTR_NOT_NULL(d);
        if (!d)
            continue;
        EXPECT_STR(d->id, want[i].id);
        EXPECT_INT(d->severity, want[i].sev);
    }
    for (size_t i = 0; i < cm_finding_catalogue_len; i++) {
        const struct cm_finding_def *d = &cm_finding_catalogue[i];

        CU_ASSERT_PTR_EQUAL(cm_finding_lookup(d->id), d); /* so ids are unique, too */
        CU_ASSERT(id_shaped(d->id));
        CU_ASSERT(d->summary && d->summary[0]);
        CU_ASSERT(d->severity >= CM_SEV_INFO && d->severity <= CM_SEV_CRITICAL);
    }
    CU_ASSERT_PTR_NULL(cm_finding_lookup("no.such"));
    CU_ASSERT_PTR_NULL(cm_finding_lookup("KEY.WEAK"));
    CU_ASSERT_PTR_NULL(cm_finding_lookup("key.weak "));
    CU_ASSERT_PTR_NULL(cm_finding_lookup(""));
    CU_ASSERT_PTR_NULL(cm_finding_lookup(NULL));
}

static void test_suggest(void)
{
    char longid[200];

    EXPECT_STR(cm_finding_suggest("key.weka"), "key.weak");
    EXPECT_STR(cm_finding_suggest("zzzzzzzz"), NULL);
    EXPECT_STR(cm_finding_suggest("cert.expird"), "cert.expired");
    EXPECT_STR(cm_finding_suggest("ocsp.not_staple"), "ocsp.not_stapled");
    EXPECT_STR(cm_finding_suggest("chain.selfsigned"), "chain.self_signed");
    EXPECT_STR(cm_finding_suggest("host.mismatch"), "host.mismatch");
    EXPECT_STR(cm_finding_suggest(""), NULL);
    EXPECT_STR(cm_finding_suggest(NULL), NULL);
    memset(longid, 'k', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    EXPECT_STR(cm_finding_suggest(longid), NULL);
}

/* "later rules for the same id win" (analyze.h): an ignore followed by a severity shows
 * the finding at that severity. */
static void test_later_rule_wins(void)
{
    struct cm_probe_result *r = healthy();
    struct cm_policy p = CM_POLICY_DEFAULT;
    struct cm_findings f;

    EXPECT_INT(cm_policy_ignore(&p, "ocsp.not_stapled"), 0);
    EXPECT_INT(cm_policy_set_severity(&p, "ocsp.not_stapled", CM_SEV_WARNING), 0);
    run(r, &p, &f);
    EXPECT_IDS(&f, "ocsp.not_stapled");
    if (f.count)
        EXPECT_INT(sev_at(&f, 0), CM_SEV_WARNING);
    cm_findings_clear(&f);
    EXPECT_INT(cm_policy_ignore(&p, "ocsp.not_stapled"), 0);
    run(r, &p, &f);
    EXPECT_INT(f.count, 0);
    cm_findings_clear(&f);
    cm_policy_clear(&p);
    cm_probe_result_free(r);
}

/* A leaf sent with a certificate that did not issue it: the intermediate is still missing,
 * and the message says what was sent instead. */
static void test_incomplete_with_other_cert(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_findings f;
    const struct cm_finding *inc;

    free(r->tls.chain.certs[1].subject);
    r->tls.chain.certs[1].subject = cm_tf_strdup("CN=Other CA");
    r->tls.verify.trusted = false;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_SIGNER_NOT_FOUND;
    run(r, &def, &f);
    inc = find(&f, "chain.incomplete", 0);
    CU_ASSERT_PTR_NOT_NULL(inc);
    if (inc)
        CU_ASSERT(strstr(inc->message, "other certificates sent did not issue it") != NULL);
    CU_ASSERT_PTR_NULL(find(&f, "chain.untrusted", ANY_POS));
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* --all-addresses: results of one name are compared by their leaf's SHA-256. */
static void test_consistency(void)
{
    struct cm_probe_result *a = healthy(), *b = healthy(), *c = healthy();
    const struct cm_probe_result *group[3] = {a, b, c};
    struct cm_findings f = {0};

    snprintf(a->address, sizeof(a->address), "192.0.2.1");
    snprintf(b->address, sizeof(b->address), "192.0.2.2");
    /* All the same: nothing. */
    EXPECT_INT(cm_analyze_consistency(a, group, 3, &def, &f), 0);
    EXPECT_INT(f.count, 0);
    /* b serves another leaf: a and b both say so; c's chain is missing and not compared. */
    free(b->tls.chain.certs[0].sha256);
    b->tls.chain.certs[0].sha256 = cm_tf_strdup("00112233445566778899aabbccddeeff");
    cm_chain_clear(&c->tls.chain);
    EXPECT_INT(cm_analyze_consistency(a, group, 3, &def, &f), 0);
    EXPECT_INT(f.count, 1);
    if (f.count) {
        EXPECT_STR(f.items[0].id, "endpoint.inconsistent");
        EXPECT_INT(f.items[0].severity, CM_SEV_WARNING);
        EXPECT_INT(f.items[0].position, 0);
        CU_ASSERT(strstr(f.items[0].message, "192.0.2.2 presents 0011223344556677") != NULL);
    }
    cm_findings_clear(&f);
    EXPECT_INT(cm_analyze_consistency(b, group, 3, &def, &f), 0);
    EXPECT_INT(f.count, 1);
    cm_findings_clear(&f);
    EXPECT_INT(cm_analyze_consistency(c, group, 3, &def, &f), 0);
    EXPECT_INT(f.count, 0);
    cm_probe_result_free(a);
    cm_probe_result_free(b);
    cm_probe_result_free(c);
}

/* ---- the posture pass ---- */

/* What a modern endpoint shows: TLS 1.3 and 1.2 only, no weak class, forward secrecy, a
 * 2048-bit DH group, secure renegotiation; every check ran. quiet() plus this has no finding. */
static struct cm_posture *modern_posture(void)
{
    struct cm_posture *p = calloc(1, sizeof(*p));

    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    for (int v = 0; v < CM_PV_COUNT; v++)
        p->version[v] = v <= CM_PV_TLS12 ? CM_TRI_YES : CM_TRI_NO;
    for (int w = 0; w < CM_WEAK_COUNT; w++)
        p->weak[w] = CM_TRI_NO;
    p->forward_secrecy = CM_TRI_YES;
    p->dhe = CM_TRI_YES;
    p->dh_bits = 2048;
    p->secure_renegotiation = CM_TRI_YES;
    p->handshakes = 11;
    return p;
}

/* quiet() with a posture pass that found p (owned by the result from here on). */
static struct cm_probe_result *with_posture(struct cm_posture *p)
{
    struct cm_probe_result *r = quiet();

    r->posture = p;
    return r;
}

static void test_posture_modern(void)
{
    struct cm_probe_result *r = with_posture(modern_posture());
    struct cm_findings f;

    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    /* Not run at all: nothing either. */
    cm_posture_free(r->posture);
    r->posture = NULL;
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_protocol_legacy(void)
{
    struct cm_posture *p = modern_posture();
    struct cm_probe_result *r = with_posture(p);
    struct cm_findings f;

    p->version[CM_PV_TLS11] = CM_TRI_YES;
    p->version[CM_PV_TLS10] = CM_TRI_YES;
    p->version[CM_PV_SSL30] = CM_TRI_YES;
    run(r, &def, &f);
    /* Worst first, one finding per version, none about a chain position. */
    EXPECT_IDS(&f, "protocol.legacy protocol.legacy protocol.legacy");
    EXPECT_INT(sev_at(&f, 0), CM_SEV_CRITICAL);
    EXPECT_INT(sev_at(&f, 1), CM_SEV_WARNING);
    EXPECT_INT(sev_at(&f, 2), CM_SEV_WARNING);
    if (f.count == 3) {
        EXPECT_STR(f.items[0].version, "SSL3.0");
        EXPECT_STR(f.items[1].version, "TLS1.0");
        EXPECT_STR(f.items[2].version, "TLS1.1");
        EXPECT_INT(f.items[0].position, -1);
        CU_ASSERT(strstr(f.items[0].message, "SSL3.0") != NULL);
        CU_ASSERT(strstr(f.items[1].message, "RFC 8996") != NULL);
    }
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    cm_findings_clear(&f);

    /* TLS 1.1 alone: a warning. A check that could not run is no finding. */
    p->version[CM_PV_TLS10] = CM_TRI_UNKNOWN;
    p->version[CM_PV_SSL30] = CM_TRI_UNKNOWN;
    run(r, &def, &f);
    EXPECT_IDS(&f, "protocol.legacy");
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_WARNING);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_protocol_modern(void)
{
    struct cm_posture *p = modern_posture();
    struct cm_probe_result *r = with_posture(p);
    struct cm_findings f;

    /* TLS 1.0 only. */
    p->version[CM_PV_TLS13] = CM_TRI_NO;
    p->version[CM_PV_TLS12] = CM_TRI_NO;
    p->version[CM_PV_TLS10] = CM_TRI_YES;
    run(r, &def, &f);
    EXPECT_IDS(&f, "protocol.legacy protocol.no_modern");
    EXPECT_INT(sev_at(&f, 1), CM_SEV_CRITICAL);
    EXPECT_INT(at(&f, 1) ? at(&f, 1)->position : 0, -1);
    cm_findings_clear(&f);

    /* The TLS 1.2 check could not run: no claim that the server lacks it. */
    p->version[CM_PV_TLS12] = CM_TRI_UNKNOWN;
    run(r, &def, &f);
    EXPECT_IDS(&f, "protocol.legacy");
    cm_findings_clear(&f);

    /* TLS 1.2 without 1.3: informational only. */
    p->version[CM_PV_TLS12] = CM_TRI_YES;
    p->version[CM_PV_TLS10] = CM_TRI_NO;
    run(r, &def, &f);
    EXPECT_IDS(&f, "protocol.no_tls13");
    EXPECT_INT(sev_at(&f, 0), CM_SEV_INFO);
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_OK);
    cm_findings_clear(&f);

    /* TLS 1.3 unknown: nothing. TLS 1.3 only: nothing (1.2 is not required). */
    p->version[CM_PV_TLS13] = CM_TRI_UNKNOWN;
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    p->version[CM_PV_TLS13] = CM_TRI_YES;
    p->version[CM_PV_TLS12] = CM_TRI_NO;
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_cipher_weak(void)
{
    static const char *const classes[] = {"RC4", "3DES", "NULL", "EXPORT", "ANON"};
    struct cm_posture *p = modern_posture();
    struct cm_probe_result *r = with_posture(p);
    struct cm_findings f;

    for (int w = 0; w < CM_WEAK_COUNT; w++)
        p->weak[w] = CM_TRI_YES;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cipher.weak cipher.weak cipher.weak cipher.weak cipher.weak");
    for (size_t i = 0; i < f.count && i < 5; i++) {
        EXPECT_INT(f.items[i].severity, CM_SEV_CRITICAL);
        EXPECT_INT(f.items[i].position, -1);
        EXPECT_STR(f.items[i].cipher_class, classes[i]);
    }
    CU_ASSERT(f.count > 0 && strstr(f.items[0].message, "RC4") != NULL);
    CU_ASSERT(f.count > 1 && strstr(f.items[1].message, "Sweet32") != NULL);
    cm_findings_clear(&f);

    /* Not run is not accepted. */
    for (int w = 0; w < CM_WEAK_COUNT; w++)
        p->weak[w] = CM_TRI_UNKNOWN;
    p->weak[CM_WEAK_3DES] = CM_TRI_YES;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cipher.weak");
    EXPECT_STR(at(&f, 0) ? at(&f, 0)->cipher_class : NULL, "3DES");
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_forward_secrecy(void)
{
    struct cm_posture *p = modern_posture();
    struct cm_probe_result *r = with_posture(p);
    struct cm_findings f;

    p->version[CM_PV_TLS13] = CM_TRI_NO;
    p->forward_secrecy = CM_TRI_NO;
    p->dhe = CM_TRI_NO;
    p->dh_bits = 0;
    run(r, &def, &f);
    EXPECT_IDS(&f, "protocol.no_tls13 cipher.no_forward_secrecy");
    EXPECT_INT(sev_at(&f, 1), CM_SEV_WARNING);
    cm_findings_clear(&f);
    p->forward_secrecy = CM_TRI_UNKNOWN;
    run(r, &def, &f);
    EXPECT_IDS(&f, "protocol.no_tls13");
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* dh.weak: a warning under 2048 bits, critical under 1024; evidence dh_bits. */
static void test_dh_weak(void)
{
    static const struct {
        unsigned bits;
        int sev; /* -1: no finding */
    } cases[] = {
        {0, -1},
        {4096, -1},
        {2048, -1},
        {2047, CM_SEV_WARNING},
        {1536, CM_SEV_WARNING},
        {1024, CM_SEV_WARNING},
        {1023, CM_SEV_CRITICAL},
        {768, CM_SEV_CRITICAL},
        {512, CM_SEV_CRITICAL},
    };
    struct cm_posture *p = modern_posture();
    struct cm_probe_result *r = with_posture(p);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cm_findings f;
        char want[64];

        p->dh_bits = cases[i].bits;
        run(r, &def, &f);
        EXPECT_IDS(&f, cases[i].sev < 0 ? "" : "dh.weak");
        if (cases[i].sev >= 0 && f.count == 1) {
            EXPECT_INT(f.items[0].severity, cases[i].sev);
            EXPECT_INT(f.items[0].dh_bits, cases[i].bits);
            EXPECT_INT(f.items[0].position, -1);
            snprintf(want, sizeof(want), "has %u bits", cases[i].bits);
            CU_ASSERT(strstr(f.items[0].message, want) != NULL);
        }
        cm_findings_clear(&f);
    }
    cm_probe_result_free(r);
}

/* dh.weak for a group that is not a safe prime group: critical at any size, with the reason;
 * one finding even when the group is small too. */
static void test_dh_bad_group(void)
{
    static const struct {
        enum cm_dh_group g;
        const char *reason; /* NULL: no dh.weak at 2048 bits */
    } cases[] = {
        {CM_DH_GROUP_NONE, NULL},
        {CM_DH_GROUP_UNCHECKED, NULL},
        {CM_DH_GROUP_GOOD, NULL},
        {CM_DH_GROUP_NOT_SAFE, "not a safe prime"},
        {CM_DH_GROUP_SMALL_ORDER, "generator has small order"},
        {CM_DH_GROUP_COMPOSITE, "modulus is not a prime"},
    };
    struct cm_posture *p = modern_posture();
    struct cm_probe_result *r = with_posture(p);
    struct cm_findings f;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        p->dh_group = cases[i].g;
        run(r, &def, &f);
        EXPECT_IDS(&f, cases[i].reason ? "dh.weak" : "");
        if (cases[i].reason && f.count == 1) {
            EXPECT_INT(f.items[0].severity, CM_SEV_CRITICAL);
            EXPECT_INT(f.items[0].dh_bits, 2048);
            CU_ASSERT(strstr(f.items[0].message, cases[i].reason) != NULL);
            CU_ASSERT(strstr(f.items[0].message, "(2048 bits)") != NULL);
        }
        cm_findings_clear(&f);
    }
    p->dh_bits = 512;
    p->dh_group = CM_DH_GROUP_COMPOSITE;
    run(r, &def, &f);
    EXPECT_IDS(&f, "dh.weak");
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* cipher.no_aead only when the AEAD-only handshake and TLS 1.3 were both refused. */
static void test_no_aead(void)
{
    struct cm_posture *p = modern_posture();
    struct cm_probe_result *r = with_posture(p);
    struct cm_findings f;

    p->aead = CM_TRI_YES;
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    p->aead = CM_TRI_UNKNOWN;
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    p->version[CM_PV_TLS13] = CM_TRI_NO;
    p->aead = CM_TRI_NO;
    run(r, &def, &f);
    EXPECT_IDS(&f, "protocol.no_tls13 cipher.no_aead");
    if (f.count == 2) {
        EXPECT_INT(f.items[1].severity, CM_SEV_WARNING);
        EXPECT_INT(f.items[1].position, -1);
        CU_ASSERT(strstr(f.items[1].message, "no AEAD cipher suite") != NULL);
    }
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* A refused main handshake with a posture pass: probe.failed says what the server accepts,
 * and the posture findings follow; a pass that found nothing claims nothing. */
static void test_refused_with_posture(void)
{
    struct cm_posture *p = modern_posture();
    struct cm_probe_result *r = with_posture(p);
    struct cm_findings f;

    free(r->tls.version);
    r->tls.version = NULL;
    r->error_kind = CM_ERRK_TLS;
    r->error_phase = CM_PHASE_HANDSHAKE;
    r->error_message = cm_tf_strdup("server sent fatal alert handshake_failure (40)");
    r->tls_refused = true;
    p->version[CM_PV_TLS13] = CM_TRI_NO;
    p->weak[CM_WEAK_ANON] = CM_TRI_YES;
    p->forward_secrecy = CM_TRI_UNKNOWN;
    p->dh_bits = 1024;
    run(r, &def, &f);
    EXPECT_IDS(&f, "probe.failed protocol.no_tls13 cipher.weak dh.weak");
    if (f.count >= 1)
        EXPECT_STR(f.items[0].message,
                   "server sent fatal alert handshake_failure (40); the server refuses every "
                   "protocol version and cipher suite a current client offers: it accepts only "
                   "anonymous cipher suites (TLS1.2), with a 1024-bit DH group (see the findings "
                   "below)");
    cm_findings_clear(&f);

    /* Only SSL 3.0 (the hand-built hello). */
    memset(p, 0, sizeof(*p));
    for (int v = 0; v < CM_PV_COUNT; v++)
        p->version[v] = CM_TRI_NO;
    p->version[CM_PV_SSL30] = CM_TRI_YES;
    run(r, &def, &f);
    EXPECT_IDS(&f, "probe.failed protocol.legacy protocol.no_modern");
    if (f.count >= 1)
        CU_ASSERT(strstr(f.items[0].message, "it accepts only SSL3.0 (see") != NULL);
    cm_findings_clear(&f);

    /* Every handshake refused on the server's DH group (a generator of small order): the
     * group is reported, nothing is claimed about versions. */
    p->version[CM_PV_SSL30] = CM_TRI_NO;
    p->dh_group = CM_DH_GROUP_SMALL_ORDER;
    p->dh_bits = 2048;
    run(r, &def, &f);
    EXPECT_IDS(&f, "probe.failed dh.weak");
    if (f.count >= 1)
        CU_ASSERT(strstr(f.items[0].message,
                         "it accepts only DHE with a bad group (a generator of small order)") !=
                  NULL);
    cm_findings_clear(&f);
    p->dh_group = CM_DH_GROUP_NONE;
    p->dh_bits = 0;

    /* Nothing accepted at all: no posture finding (not even protocol.no_modern). */
    run(r, &def, &f);
    EXPECT_IDS(&f, "probe.failed");
    if (f.count >= 1)
        CU_ASSERT(strstr(f.items[0].message, "found nothing weaker it accepts") != NULL);
    cm_findings_clear(&f);

    /* Not a refusal (e.g. a timeout): the message is the error alone. */
    r->tls_refused = false;
    run(r, &def, &f);
    EXPECT_IDS(&f, "probe.failed");
    if (f.count >= 1)
        EXPECT_STR(f.items[0].message, "server sent fatal alert handshake_failure (40)");
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_renegotiation(void)
{
    struct cm_posture *p = modern_posture();
    struct cm_probe_result *r = with_posture(p);
    struct cm_findings f;

    p->secure_renegotiation = CM_TRI_NO;
    run(r, &def, &f);
    EXPECT_IDS(&f, "renegotiation.insecure");
    EXPECT_INT(sev_at(&f, 0), CM_SEV_WARNING);
    cm_findings_clear(&f);
    p->secure_renegotiation = CM_TRI_UNKNOWN;
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* Posture findings come after the certificate ones, in a fixed order, and obey the policy. */
static void test_posture_order_and_policy(void)
{
    struct cm_posture *p = modern_posture();
    struct cm_probe_result *r = healthy(); /* no staple: ocsp.not_stapled */
    struct cm_policy pol = CM_POLICY_DEFAULT;
    struct cm_findings f;

    r->posture = p;
    p->version[CM_PV_TLS13] = CM_TRI_NO;
    p->version[CM_PV_TLS10] = CM_TRI_YES;
    p->weak[CM_WEAK_RC4] = CM_TRI_YES;
    p->forward_secrecy = CM_TRI_NO;
    p->dh_bits = 1024;
    p->secure_renegotiation = CM_TRI_NO;
    run(r, &def, &f);
    EXPECT_IDS(&f, "ocsp.not_stapled protocol.legacy protocol.no_tls13 cipher.weak "
                   "cipher.no_forward_secrecy dh.weak renegotiation.insecure");
    cm_findings_clear(&f);

    CU_ASSERT_EQUAL(cm_policy_ignore(&pol, "cipher.weak"), 0);
    CU_ASSERT_EQUAL(cm_policy_set_severity(&pol, "protocol.no_tls13", CM_SEV_WARNING), 0);
    CU_ASSERT_EQUAL(cm_policy_set_severity(&pol, "dh.weak", CM_SEV_CRITICAL), 0);
    run(r, &pol, &f);
    EXPECT_IDS(&f, "ocsp.not_stapled protocol.legacy protocol.no_tls13 "
                   "cipher.no_forward_secrecy dh.weak renegotiation.insecure");
    EXPECT_INT(sev_at(&f, 2), CM_SEV_WARNING);
    EXPECT_INT(sev_at(&f, 4), CM_SEV_CRITICAL);
    /* The evidence survives a severity override. */
    EXPECT_INT(at(&f, 4) ? at(&f, 4)->dh_bits : 0, 1024);
    cm_findings_clear(&f);
    cm_policy_clear(&pol);

    /* A result without a chain (nothing to judge there) still gets its posture findings. */
    truncate_chain(r, 0);
    run(r, &def, &f);
    EXPECT_IDS(&f, "protocol.legacy protocol.no_tls13 cipher.weak cipher.no_forward_secrecy "
                   "dh.weak renegotiation.insecure");
    cm_findings_clear(&f);
    cm_probe_result_free(r); /* frees the posture too */
}

/* ---- File targets (filecert.h) ---- */

/* What cm_file_scan makes of a PEM bundle holding the chain of healthy(): a path, no
 * endpoint, no handshake, no verification, the certificates in file order. */
static struct cm_probe_result *file_result(void)
{
    struct cm_probe_result *r = healthy();

    cm_tf_to_file(r, "/etc/ssl/bundle.pem");
    return r;
}

static void test_file_sound(void)
{
    struct cm_probe_result *r = file_result();
    struct cm_findings f;

    /* No staple, no verification, a root in the file: none of that is a finding. */
    push_root(r);
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);

    /* Even a verification result left on it is not judged, nor a host name, nor leaf hygiene
     * (no SAN, wildcard), nor a must-staple leaf without staple. Only the lifetime of the
     * first certificate is (test_file_lifetime); 800 days is too long. */
    r->tls.verify.done = true;
    r->tls.verify.trusted = false;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_SIGNER_NOT_FOUND;
    r->tls.verify.hostname_match = false;
    r->tls.chain.certs[0].not_before = NOW - 800 * DAY;
    r->tls.chain.certs[0].must_staple = true;
    set_sans(&r->tls.chain.certs[0], NULL, 0);
    swap_certs(r, 1, 2);
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.lifetime_long");
    cm_findings_clear(&f);

    /* A lone self-signed certificate is no chain.self_signed either. */
    truncate_chain(r, 1);
    cm_cert_clear(&r->tls.chain.certs[0]);
    cm_tf_fill_cert(&r->tls.chain.certs[0], "CN=localhost", "CN=localhost", NOW - DAY, NOW + 90 * DAY,
              false);
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_file_validity(void)
{
    struct cm_probe_result *r = file_result();
    struct cm_findings f;

    /* Positions and names in a bundle. */
    push_root(r);
    r->tls.chain.certs[0].not_before = NOW - 100 * DAY; /* 110 days: the day rule */
    r->tls.chain.certs[0].not_after = NOW + 10 * DAY;
    r->tls.chain.certs[1].not_after = NOW - 3 * DAY;
    r->tls.chain.certs[2].not_before = NOW + DAY;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.expiring cert.expired cert.not_yet_valid");
    expect_finding(&f, 0, "cert.expiring", CM_SEV_WARNING, 0,
                   "bundle certificate 0 (CN=example.com) expires in 10 days, on "
                   "2027-01-25T08:00:00Z; under the 30-day warning threshold",
                   __LINE__);
    expect_finding(&f, 1, "cert.expired", CM_SEV_CRITICAL, 1,
                   "bundle certificate 1 (CN=Example CA) expired 3 days ago, on "
                   "2027-01-12T08:00:00Z",
                   __LINE__);
    expect_finding(&f, 2, "cert.not_yet_valid", CM_SEV_CRITICAL, 2,
                   "bundle certificate 2 (CN=Example Root) is not valid before "
                   "2027-01-16T08:00:00Z",
                   __LINE__);
    expect_evidence(at(&f, 1), true, -3, NULL, 0, NULL, __LINE__);
    cm_findings_clear(&f);

    /* A file of one certificate names it without a position. */
    truncate_chain(r, 1);
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.expiring");
    expect_finding(&f, 0, "cert.expiring", CM_SEV_WARNING, 0,
                   "the certificate (CN=example.com) expires in 10 days, on 2027-01-25T08:00:00Z; "
                   "under the 30-day warning threshold",
                   __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* A file's first certificate gets cert.lifetime_long too, under its entry's policy. */
static void test_file_lifetime(void)
{
    struct cm_probe_result *r = file_result();
    struct cm_policy p = CM_POLICY_DEFAULT;
    struct cm_findings f;

    r->tls.chain.certs[0].not_before = NOW - DAY;
    r->tls.chain.certs[0].not_after = NOW + 300 * DAY;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.lifetime_long");
    expect_finding(&f, 0, "cert.lifetime_long", CM_SEV_INFO, 0,
                   "bundle certificate 0 (CN=example.com) was issued 2027-01-14, valid 301 days; "
                   "certificates issued from 2026-03-15 may be valid at most 200 days",
                   __LINE__);
    cm_findings_clear(&f);
    p.max_lifetime_days = 365;
    run(r, &p, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    /* A CA bundle: its first certificate is a CA and may live long. */
    r->tls.chain.certs[0].is_ca = true;
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_file_strength(void)
{
    struct cm_probe_result *r = file_result();
    struct cm_cert *root = push_root(r);
    struct cm_policy p = CM_POLICY_DEFAULT;
    struct cm_findings f;

    /* A weak SHA-1 root in a file: its key is judged (it is the copy its user trusts), its
     * own signature is not (nobody checks it). A server sending it would get neither. */
    root->key_bits = 1024;
    set_signature(root, "RSA-SHA1", "SHA1");
    set_signature(&r->tls.chain.certs[1], "RSA-SHA1", "SHA1");
    run(r, &def, &f);
    EXPECT_IDS(&f, "signature.weak key.weak");
    expect_finding(&f, 0, "signature.weak", CM_SEV_CRITICAL, 1,
                   "bundle certificate 1 (CN=Example CA) is signed with RSA-SHA1, which can be "
                   "forged; reissue it with SHA-256",
                   __LINE__);
    expect_finding(&f, 1, "key.weak", CM_SEV_CRITICAL, 2,
                   "bundle certificate 2 (CN=Example Root) has a 1024-bit RSA key; the policy "
                   "asks for at least 2048 bits",
                   __LINE__);
    expect_evidence(at(&f, 1), false, 0, "RSA", 1024, NULL, __LINE__);
    cm_findings_clear(&f);

    /* Self-signed without the CA flag: the same. */
    root->is_ca = false;
    run(r, &def, &f);
    EXPECT_IDS(&f, "signature.weak key.weak");
    cm_findings_clear(&f);

    /* The policy applies as for endpoints. */
    CU_ASSERT_EQUAL(cm_policy_ignore(&p, "key.weak"), 0);
    run(r, &p, &f);
    EXPECT_IDS(&f, "signature.weak");
    cm_findings_clear(&f);
    cm_policy_clear(&p);

    /* A lone self-signed SHA-1 certificate: nothing (an endpoint serving it gets
     * signature.weak, see test_signature_weak_self_signed). */
    truncate_chain(r, 1);
    cm_cert_clear(&r->tls.chain.certs[0]);
    cm_tf_fill_cert(&r->tls.chain.certs[0], "CN=localhost", "CN=localhost", NOW - DAY, NOW + 90 * DAY,
              false);
    set_signature(&r->tls.chain.certs[0], "RSA-SHA1", "SHA1");
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    r->tls.chain.certs[0].key_bits = 1024;
    run(r, &def, &f);
    EXPECT_IDS(&f, "key.weak");
    expect_finding(&f, 0, "key.weak", CM_SEV_CRITICAL, 0,
                   "the certificate (CN=localhost) has a 1024-bit RSA key; the policy asks for "
                   "at least 2048 bits",
                   __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_file_failed(void)
{
    struct cm_probe_result *r = file_result();
    struct cm_findings f;

    truncate_chain(r, 0);
    r->error_kind = CM_ERRK_FILE;
    r->error_message = cm_tf_strdup("cannot read /etc/ssl/bundle.pem: Permission denied");
    run(r, &def, &f);
    EXPECT_IDS(&f, "probe.failed");
    expect_finding(&f, 0, "probe.failed", CM_SEV_CRITICAL, -1,
                   "cannot read /etc/ssl/bundle.pem: Permission denied", __LINE__);
    EXPECT_INT(cm_result_status(r, &f), CM_STATUS_CRITICAL);
    cm_findings_clear(&f);

    free(r->error_message);
    r->error_message = NULL;
    run(r, &def, &f);
    expect_finding(&f, 0, "probe.failed", CM_SEV_CRITICAL, -1, "the file cannot be read", __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* ---- purpose, CA as leaf, anchors, interception roots ---- */

static void set_eku(struct cm_cert *c, const char *list, bool server, bool any)
{
    free(c->eku);
    c->eku = cm_tf_strdup(list);
    c->has_eku = true;
    c->eku_server = server;
    c->eku_any = any;
}

static void set_ku(struct cm_cert *c, unsigned ku)
{
    c->has_key_usage = true;
    c->key_usage = ku;
}

static void set_cipher(struct cm_probe_result *r, const char *version, const char *cipher)
{
    free(r->tls.version);
    free(r->tls.cipher);
    r->tls.version = cm_tf_strdup(version);
    r->tls.cipher = cm_tf_strdup(cipher);
}

static void test_purpose_eku(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_cert *leaf = &r->tls.chain.certs[0];
    struct cm_findings f;

    /* serverAuth among others, or anyExtendedKeyUsage: fit. */
    set_eku(leaf, "clientAuth, serverAuth", true, false);
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    set_eku(leaf, "anyExtendedKeyUsage", false, true);
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);

    /* clientAuth only, as GnuTLS's verification also says: cert.purpose explains the bit. */
    set_eku(leaf, "clientAuth", false, false);
    r->tls.verify.trusted = false;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_PURPOSE_MISMATCH;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.purpose");
    expect_finding(&f, 0, "cert.purpose", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) is not for TLS servers: its extended key "
                   "usage allows only clientAuth, not serverAuth, so clients refuse it; reissue "
                   "it with serverAuth",
                   __LINE__);
    cm_findings_clear(&f);

    /* Ignored by the policy, the bit is still explained: no chain.untrusted instead. */
    {
        struct cm_policy p = CM_POLICY_DEFAULT;
        CU_ASSERT_EQUAL(cm_policy_ignore(&p, "cert.purpose"), 0);
        run(r, &p, &f);
        EXPECT_IDS(&f, "");
        cm_findings_clear(&f);
        cm_policy_clear(&p);
    }

    /* The bit without anything the extracted data shows: still cert.purpose, generic. */
    leaf->has_eku = false;
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.purpose");
    CU_ASSERT_PTR_NOT_NULL(find(&f, "cert.purpose", 0));
    cm_findings_clear(&f);

    /* An intermediate that restricts its EKU without serverAuth constrains the leaf. */
    r->tls.verify.status = 0;
    r->tls.verify.trusted = true;
    set_eku(&r->tls.chain.certs[1], "emailProtection", false, false);
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.purpose");
    expect_finding(&f, 0, "cert.purpose", CM_SEV_CRITICAL, 1,
                   "chain certificate 1 (CN=Example CA) restricts the extended key usage of "
                   "every certificate under it to emailProtection, without serverAuth: clients "
                   "refuse the leaf for a TLS server",
                   __LINE__);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_purpose_key_usage(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_cert *leaf = &r->tls.chain.certs[0];
    struct cm_findings f;

    /* An EC key only signs: keyAgreement alone is unfit, digitalSignature fit. */
    leaf->key_type = "EC";
    leaf->key_bits = 256;
    set_ku(leaf, CM_KU_KEY_AGREEMENT);
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.purpose");
    expect_finding(&f, 0, "cert.purpose", CM_SEV_CRITICAL, 0,
                   "leaf certificate 0 (CN=example.com) has a key usage (keyAgreement) without "
                   "digitalSignature, which its EC key needs to sign the TLS handshake; clients "
                   "that check key usage refuse it",
                   __LINE__);
    cm_findings_clear(&f);
    set_ku(leaf, CM_KU_DIGITAL_SIGNATURE);
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);

    /* RSA with keyEncipherment only: fit for static RSA alone. Under TLS 1.3 the server
     * signed with it anyway: critical. */
    leaf->key_type = "RSA";
    leaf->key_bits = 2048;
    set_ku(leaf, CM_KU_KEY_ENCIPHERMENT);
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.purpose");
    EXPECT_INT(sev_at(&f, 0), CM_SEV_CRITICAL);
    CU_ASSERT(at(&f, 0) && strstr(at(&f, 0)->message, "signs the handshake (TLS_AES_128_GCM"));
    cm_findings_clear(&f);
    /* Static RSA negotiated: it works, but only that way: a warning. */
    set_cipher(r, "TLS1.2", "TLS_RSA_WITH_AES_128_GCM_SHA256");
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.purpose");
    EXPECT_INT(sev_at(&f, 0), CM_SEV_WARNING);
    CU_ASSERT(at(&f, 0) && strstr(at(&f, 0)->message, "serves only static-RSA key exchange"));
    cm_findings_clear(&f);

    /* digitalSignature without keyEncipherment: fine for ECDHE, not for static RSA. */
    set_ku(leaf, CM_KU_DIGITAL_SIGNATURE);
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.purpose");
    EXPECT_INT(sev_at(&f, 0), CM_SEV_CRITICAL);
    CU_ASSERT(at(&f, 0) && strstr(at(&f, 0)->message, "without keyEncipherment"));
    cm_findings_clear(&f);
    set_cipher(r, "TLS1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);

    /* Neither: no key exchange may use the key. */
    set_ku(leaf, CM_KU_KEY_CERT_SIGN);
    run(r, &def, &f);
    EXPECT_IDS(&f, "cert.purpose");
    CU_ASSERT(at(&f, 0) && strstr(at(&f, 0)->message, "(keyCertSign) that allows neither"));
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_ca_as_leaf(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_findings f;

    /* Sent in reverse: the intermediate first, then the leaf it issued. The CA names no host,
     * has no SAN and a CA key usage: none of that is reported beside chain.ca_as_leaf. */
    swap_certs(r, 0, 1);
    set_ku(&r->tls.chain.certs[0], CM_KU_KEY_CERT_SIGN | CM_KU_CRL_SIGN);
    r->tls.verify.hostname_match = false;
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.ca_as_leaf chain.order");
    expect_finding(&f, 0, "chain.ca_as_leaf", CM_SEV_CRITICAL, 0,
                   "the server sends a CA certificate (CN=Example CA, basicConstraints CA:TRUE) "
                   "first, where its own certificate belongs; the certificate it issued "
                   "(CN=example.com) comes at position 1: the chain is sent in reverse, send the "
                   "server's certificate first",
                   __LINE__);
    expect_finding(&f, 1, "chain.order", CM_SEV_WARNING, 1,
                   "certificate 1 (CN=example.com) comes last, after its issuer, which was sent "
                   "at position 0; send the chain in issuing order, the server's certificate "
                   "first",
                   __LINE__);
    cm_findings_clear(&f);

    /* The intermediate served alone. */
    truncate_chain(r, 1);
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.ca_as_leaf");
    CU_ASSERT(at(&f, 0) && strstr(at(&f, 0)->message, "as its own certificate"));
    cm_findings_clear(&f);
    cm_probe_result_free(r);

    /* A lone self-signed CA:TRUE certificate is chain.self_signed, not a CA as the leaf. */
    r = quiet();
    truncate_chain(r, 1);
    free(r->tls.chain.certs[0].issuer);
    r->tls.chain.certs[0].issuer = cm_tf_strdup("CN=example.com");
    r->tls.chain.certs[0].self_signed = true;
    r->tls.chain.certs[0].is_ca = true;
    r->tls.verify.trusted = false;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_SIGNER_NOT_FOUND;
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.self_signed");
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* Sets the trust anchor of r: a copy of a root named subject with a bits-bit RSA key. */
static struct cm_cert *set_anchor(struct cm_probe_result *r, const char *subject, unsigned bits)
{
    cm_chain_clear(&r->tls.anchor);
    r->tls.anchor.certs = calloc(1, sizeof(struct cm_cert));
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->tls.anchor.certs);
    cm_tf_fill_cert(&r->tls.anchor.certs[0], subject, subject, NOW - 1000 * DAY, NOW + 3000LL * DAY,
              true);
    free(r->tls.anchor.certs[0].sha256);
    r->tls.anchor.certs[0].sha256 = cm_tf_strdup("a0a0");
    r->tls.anchor.certs[0].key_bits = bits;
    r->tls.anchor.count = 1;
    return &r->tls.anchor.certs[0];
}

static void test_weak_anchor(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_findings f;
    struct cm_cert *a;

    /* A good anchor is no finding. */
    set_anchor(r, "CN=Example Root", 4096);
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);

    /* A 1024-bit anchor only the store holds: at the chain length, named as the anchor. Its
     * INSECURE_ALGORITHM is explained. */
    set_anchor(r, "CN=Example Root", 1024);
    r->tls.verify.trusted = false;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_INSECURE_ALGORITHM;
    run(r, &def, &f);
    EXPECT_IDS(&f, "key.weak");
    expect_finding(&f, 0, "key.weak", CM_SEV_CRITICAL, 2,
                   "the trust anchor (CN=Example Root) from the trust store has a 1024-bit RSA "
                   "key; the policy asks for at least 2048 bits",
                   __LINE__);
    cm_findings_clear(&f);

    /* Sent too (same encoding) as a root: judged once, at the position sent. */
    a = push_root(r);
    a->key_bits = 1024;
    free(a->sha256);
    a->sha256 = cm_tf_strdup("a0a0");
    run(r, &def, &f);
    EXPECT_IDS(&f, "key.weak chain.root_sent");
    CU_ASSERT_PTR_NOT_NULL(find(&f, "key.weak", 2));
    CU_ASSERT(at(&f, 0) && strstr(at(&f, 0)->message, "chain certificate 2 (CN=Example Root), "
                                                      "the trust anchor, has a 1024-bit RSA key"));
    cm_findings_clear(&f);
    cm_probe_result_free(r);

    /* A weak leaf key explains INSECURE_ALGORITHM too (it used to be chain.untrusted). */
    r = quiet();
    r->tls.chain.certs[0].key_bits = 768;
    r->tls.verify.trusted = false;
    r->tls.verify.status = CM_VERIFY_INVALID | CM_VERIFY_INSECURE_ALGORITHM;
    run(r, &def, &f);
    EXPECT_IDS(&f, "key.weak");
    cm_findings_clear(&f);
    /* Allowed by the policy, the key no longer explains it: clients still refuse it. */
    {
        struct cm_policy p = CM_POLICY_DEFAULT;
        p.min_rsa_bits = 512;
        run(r, &p, &f);
        EXPECT_IDS(&f, "chain.untrusted");
        cm_findings_clear(&f);
    }
    cm_probe_result_free(r);
}

static void test_interception_root(void)
{
    /* Superfish's key, as data/interception-roots.txt lists it. */
    static const char superfish[] =
        "4bb8f35ba1e126f8dde1b0c420625ed86dce61a7bddadbdea9aba578ff13145e";
    struct cm_probe_result *r = quiet();
    struct cm_findings f;
    struct cm_cert *root, *a;
    struct cm_policy p = CM_POLICY_DEFAULT;

    /* Sent and trusted (the anchor is the same certificate). */
    root = push_root(r);
    root->spki_sha256 = cm_tf_strdup(superfish);
    free(root->sha256);
    root->sha256 = cm_tf_strdup("b1b1");
    a = set_anchor(r, "CN=Example Root", 2048);
    free(a->sha256);
    a->sha256 = cm_tf_strdup("b1b1");
    a->spki_sha256 = cm_tf_strdup(superfish);
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.root_sent chain.interception_root");
    expect_finding(&f, 1, "chain.interception_root", CM_SEV_CRITICAL, 2,
                   "the server sends a certificate of a known TLS interception root at position "
                   "2: Superfish (Lenovo) (CN=Example Root); the trust store trusts it: whoever "
                   "holds its key can read and alter the traffic; remove it from the trust store",
                   __LINE__);
    cm_findings_clear(&f);

    /* Only in the store: at the chain length. Upper-case hex matches too. */
    truncate_chain(r, 2);
    free(a->spki_sha256);
    a->spki_sha256 = cm_tf_strdup("4BB8F35BA1E126F8DDE1B0C420625ED86DCE61A7BDDADBDEA9ABA578FF13145E");
    run(r, &def, &f);
    EXPECT_IDS(&f, "chain.interception_root");
    expect_finding(&f, 0, "chain.interception_root", CM_SEV_CRITICAL, 2,
                   "the chain ends in a known TLS interception root from the trust store: "
                   "Superfish (Lenovo) (CN=Example Root); whoever holds its key can read and "
                   "alter the traffic: remove it from the trust store",
                   __LINE__);
    cm_findings_clear(&f);

    /* A key in no list; then the same key in the policy's list. */
    free(a->spki_sha256);
    a->spki_sha256 = cm_tf_strdup("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    run(r, &def, &f);
    EXPECT_IDS(&f, "");
    cm_findings_clear(&f);
    p.interception_roots = "# local\n"
                           "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff  "
                           "Corporate proxy  \n";
    run(r, &p, &f);
    EXPECT_IDS(&f, "chain.interception_root");
    CU_ASSERT(at(&f, 0) && strstr(at(&f, 0)->message, "root from the trust store: Corporate "
                                                      "proxy (CN=Example Root)"));
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

static void test_spki_list(void)
{
    static const char good[] = "# comment\n\n  \t\n"
                               "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff "
                               "A name\r\n"
                               "FFEEDDCCBBAA99887766554433221100FFEEDDCCBBAA99887766554433221100\t"
                               "Other";
    static const struct {
        const char *text, *err;
    } bad[] = {
        {"0011 short\n", "line 1: an entry starts with the 64 hex digits of a SHA-256 hash, "
                         "then a space"},
        {"# x\n00112233445566778899aabbccddeeff00112233445566778899aabbccddeeffAB name\n",
         "line 2: an entry starts with the 64 hex digits of a SHA-256 hash, then a space"},
        {"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
         "line 1: the hash has no name after it"},
        {"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff   \n",
         "line 1: the hash has no name after it"},
        {"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff a\033[31m\n",
         "line 1: the name holds a control character"},
        {"zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff x\n",
         "line 1: an entry starts with the 64 hex digits of a SHA-256 hash, then a space"},
    };
    char err[160], name[CM_SPKI_NAME_MAX + 1], longname[400];

    EXPECT_INT(cm_spki_list_check(good, strlen(good), err, sizeof(err)), 0);
    CU_ASSERT(cm_spki_list_find(good,
                                "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100",
                                name, sizeof(name)));
    EXPECT_STR(name, "Other");
    CU_ASSERT(cm_spki_list_find(good,
                                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                                name, sizeof(name)));
    EXPECT_STR(name, "A name");
    CU_ASSERT(!cm_spki_list_find(good, "0011", name, sizeof(name)));
    CU_ASSERT(!cm_spki_list_find(good, "", name, sizeof(name)));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        EXPECT_INT(cm_spki_list_check(bad[i].text, strlen(bad[i].text), err, sizeof(err)),
                   CM_EBADARG);
        EXPECT_STR(err, bad[i].err);
    }
    /* A NUL inside: not text. */
    EXPECT_INT(cm_spki_list_check("ab\0cd", 5, err, sizeof(err)), CM_EBADARG);
    EXPECT_STR(err, "the list holds a NUL byte (not a text file?)");
    /* A name of 201 bytes. */
    snprintf(longname, sizeof(longname), "%064d %0201d\n", 0, 0);
    EXPECT_INT(cm_spki_list_check(longname, strlen(longname), err, sizeof(err)), CM_EBADARG);
    EXPECT_STR(err, "line 1: the name is longer than 200 bytes");
    /* The built-in list is well-formed and holds what the data file says. */
    EXPECT_INT(cm_spki_list_check(cm_interception_roots_builtin,
                                  strlen(cm_interception_roots_builtin), err, sizeof(err)),
               0);
    CU_ASSERT(cm_spki_list_find(cm_interception_roots_builtin,
                                "130ad4e0633521290531b6651f5759b0bc7bc656709ff8f365c2143b0389b6f6",
                                name, sizeof(name)));
    EXPECT_STR(name, "Dell eDellRoot or DSDTestProvider");
}

/* ---- Change tracking (change.c) and cert.changed ---- */

/* A SHA-256 in hex made of the hex digits of part repeated ("aa": "aaaa...aa"), into out. */
static const char *sha_of(const char *part, char out[CM_SHA256_HEX])
{
    for (size_t i = 0; i + 1 < CM_SHA256_HEX; i++)
        out[i] = part[i % strlen(part)];
    out[CM_SHA256_HEX - 1] = '\0';
    return out;
}

/* A leaf summary built as the daemon builds it, from a certificate whose fingerprint is sha
 * repeated (sha_of; spki likewise: the SPKI hash, NULL: not known). */
static void summary_key(struct cm_leaf_summary *out, const char *sha, const char *subject,
                        const char *issuer, const char *sans_csv, const char *key_type,
                        unsigned bits, int64_t not_after, const char *spki)
{
    struct cm_cert c;
    char *list = cm_tf_strdup(sans_csv), *save = NULL, hex[CM_SHA256_HEX];
    char *v[8];
    size_t n = 0;

    cm_tf_fill_cert(&c, subject, issuer, NOW - DAY, not_after, false);
    for (char *tok = strtok_r(list, ",", &save); tok && n < 8; tok = strtok_r(NULL, ",", &save))
        v[n++] = tok;
    free(c.sha256);
    c.sha256 = cm_tf_strdup(sha_of(sha, hex));
    free(c.sans[0]);
    free(c.sans);
    c.sans = v;
    c.san_count = c.san_total = n;
    c.key_type = key_type;
    c.key_bits = bits;
    if (spki) {
        free(c.spki_sha256);
        c.spki_sha256 = cm_tf_strdup(sha_of(spki, hex));
    }
    EXPECT_INT(cm_leaf_summary_of(&c, out), 0);
    c.sans = NULL;
    c.san_count = 0;
    cm_cert_clear(&c);
    free(list);
}

static void summary(struct cm_leaf_summary *out, const char *sha, const char *subject,
                    const char *issuer, const char *sans_csv, const char *key_type,
                    unsigned bits, int64_t not_after)
{
    summary_key(out, sha, subject, issuer, sans_csv, key_type, bits, not_after, NULL);
}

static void test_change_classify(void)
{
    struct cm_leaf_summary old, same, renewed, reordered, bigger, sans, issuer, keytype, smaller,
        earlier;
    char what[512];
    size_t shared = cm_intern_count();

    summary(&old, "aa", "CN=a.example", "CN=CA 1", "a.example,b.example", "RSA", 2048,
            NOW + 30 * DAY);
    summary(&same, "aa", "CN=a.example", "CN=CA 1", "a.example,b.example", "RSA", 2048,
            NOW + 30 * DAY);
    summary(&renewed, "bb", "CN=a.example", "CN=CA 1", "a.example,b.example", "RSA", 2048,
            NOW + 90 * DAY);
    summary(&reordered, "bb", "CN=a.example", "CN=CA 1", "b.example,a.example", "RSA", 2048,
            NOW + 90 * DAY);
    summary(&bigger, "bb", "CN=a.example", "CN=CA 1", "a.example,b.example", "RSA", 4096,
            NOW + 90 * DAY);
    summary(&sans, "bb", "CN=a.example", "CN=CA 1", "a.example,c.example", "RSA", 2048,
            NOW + 90 * DAY);
    summary(&issuer, "bb", "CN=a.example", "CN=Other CA", "a.example,b.example", "RSA", 2048,
            NOW + 90 * DAY);
    summary(&keytype, "bb", "CN=a.example", "CN=CA 1", "a.example,b.example", "EC", 256,
            NOW + 90 * DAY);
    summary(&smaller, "bb", "CN=a.example", "CN=CA 1", "a.example,b.example", "RSA", 1024,
            NOW + 90 * DAY);
    summary(&earlier, "bb", "CN=a.example", "CN=CA 1", "a.example,b.example", "RSA", 2048,
            NOW + 10 * DAY);

    EXPECT_INT(cm_change_classify(&old, &same, what, sizeof(what)), CM_CHANGE_NONE);
    EXPECT_INT(cm_change_classify(&old, &renewed, what, sizeof(what)), CM_CHANGE_RENEWAL);
    EXPECT_STR(what, "");
    /* SAN order does not count; a larger key is still a renewal. */
    EXPECT_INT(cm_change_classify(&old, &reordered, what, sizeof(what)), CM_CHANGE_RENEWAL);
    EXPECT_INT(cm_change_classify(&old, &bigger, what, sizeof(what)), CM_CHANGE_RENEWAL);
    EXPECT_INT(cm_change_classify(&old, &sans, what, sizeof(what)), CM_CHANGE_MATERIAL);
    EXPECT_STR(what, "SANs added: c.example; SANs removed: b.example");
    EXPECT_INT(cm_change_classify(&old, &issuer, what, sizeof(what)), CM_CHANGE_MATERIAL);
    EXPECT_STR(what, "issuer: CN=CA 1 -> CN=Other CA");
    EXPECT_INT(cm_change_classify(&old, &keytype, what, sizeof(what)), CM_CHANGE_MATERIAL);
    EXPECT_STR(what, "key: RSA-2048 -> EC-256");
    EXPECT_INT(cm_change_classify(&old, &smaller, what, sizeof(what)), CM_CHANGE_MATERIAL);
    EXPECT_STR(what, "key: RSA-2048 -> RSA-1024");
    EXPECT_INT(cm_change_classify(&old, &earlier, what, sizeof(what)), CM_CHANGE_MATERIAL);
    EXPECT_STR(what, "not_after not later than before");
    /* A tiny buffer cuts the text, never the verdict. */
    EXPECT_INT(cm_change_classify(&old, &sans, what, 1), CM_CHANGE_MATERIAL);
    EXPECT_STR(what, "");
    /* From a stored row (SANs in another order): alike. */
    {
        struct cm_leaf_summary stored;
        char hex[CM_SHA256_HEX];
        EXPECT_INT(cm_leaf_summary_from(sha_of("cc", hex), "CN=a.example", "CN=CA 1", "b.example, a.example",
                                        "RSA", 2048, NOW + 30 * DAY, &stored),
                   0);
        EXPECT_STR(stored.sans, "a.example, b.example");
        EXPECT_INT(cm_change_classify(&stored, &renewed, what, sizeof(what)), CM_CHANGE_RENEWAL);
        /* The fingerprint is kept as bytes: it names the leaf in either case of hex, and
         * renders back as the lowercase hex it came from. */
        CU_ASSERT(cm_leaf_summary_is(&stored, hex));
        CU_ASSERT(cm_leaf_summary_is(&stored, sha_of("CC", hex)));
        CU_ASSERT(!cm_leaf_summary_is(&stored, sha_of("cd", hex)));
        CU_ASSERT(!cm_leaf_summary_is(&stored, "cc"));
        cm_hex_encode(stored.sha256, CM_SHA256_LEN, hex);
        EXPECT_STR(hex, "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
        cm_leaf_summary_clear(&stored);
        /* A fingerprint that is not a SHA-256 in hex is refused, the summary left empty. */
        EXPECT_INT(cm_leaf_summary_from("cc", "CN=a", "CN=CA 1", "a", "RSA", 2048, NOW, &stored),
                   -EINVAL);
        CU_ASSERT_PTR_NULL(stored.subject);
        EXPECT_INT(cm_leaf_summary_from(sha_of("xy", hex), "CN=a", "CN=CA 1", "a", "RSA", 2048,
                                        NOW, &stored),
                   -EINVAL);
    }
    /* Summaries share their issuer and key type: two texts for ten summaries here. */
    CU_ASSERT_PTR_EQUAL(old.issuer, renewed.issuer);
    CU_ASSERT_PTR_EQUAL(old.key_type, bigger.key_type);
    CU_ASSERT_PTR_NOT_EQUAL(old.issuer, issuer.issuer);
    /* Trust: public to private (or untrusted) and back is material; private to untrusted,
     * or an unknown side, is not a flip. */
    {
        enum cm_leaf_trust was = old.trust, now = renewed.trust;
        old.trust = CM_TRUST_PUBLIC;
        renewed.trust = CM_TRUST_PRIVATE;
        EXPECT_INT(cm_change_classify(&old, &renewed, what, sizeof(what)), CM_CHANGE_MATERIAL);
        EXPECT_STR(what, "trust: public -> private");
        renewed.trust = CM_TRUST_UNTRUSTED;
        EXPECT_INT(cm_change_classify(&old, &renewed, what, sizeof(what)), CM_CHANGE_MATERIAL);
        EXPECT_STR(what, "trust: public -> untrusted");
        EXPECT_INT(cm_change_classify(&renewed, &old, what, sizeof(what)), CM_CHANGE_MATERIAL);
        old.trust = CM_TRUST_PRIVATE;
        renewed.trust = CM_TRUST_PUBLIC;
        EXPECT_INT(cm_change_classify(&old, &renewed, what, sizeof(what)), CM_CHANGE_MATERIAL);
        EXPECT_STR(what, "trust: private -> public");
        EXPECT_INT(cm_change_classify(&old, &issuer, what, sizeof(what)), CM_CHANGE_MATERIAL);
        renewed.trust = CM_TRUST_UNTRUSTED;
        EXPECT_INT(cm_change_classify(&old, &renewed, what, sizeof(what)), CM_CHANGE_RENEWAL);
        renewed.trust = CM_TRUST_PUBLIC;
        old.trust = CM_TRUST_UNKNOWN;
        EXPECT_INT(cm_change_classify(&old, &renewed, what, sizeof(what)), CM_CHANGE_RENEWAL);
        old.trust = was;
        renewed.trust = now;
    }
    EXPECT_INT(cm_leaf_trust_parse("public"), CM_TRUST_PUBLIC);
    EXPECT_INT(cm_leaf_trust_parse("private"), CM_TRUST_PRIVATE);
    EXPECT_INT(cm_leaf_trust_parse("untrusted"), CM_TRUST_UNTRUSTED);
    EXPECT_INT(cm_leaf_trust_parse("unknown"), CM_TRUST_UNKNOWN);
    EXPECT_INT(cm_leaf_trust_parse(NULL), CM_TRUST_UNKNOWN);
    EXPECT_STR(cm_change_kind_name(CM_CHANGE_RENEWAL), "renewal");
    EXPECT_STR(cm_change_kind_name(CM_CHANGE_MATERIAL), "change");

    cm_leaf_summary_clear(&old);
    cm_leaf_summary_clear(&same);
    cm_leaf_summary_clear(&renewed);
    cm_leaf_summary_clear(&reordered);
    cm_leaf_summary_clear(&bigger);
    cm_leaf_summary_clear(&sans);
    cm_leaf_summary_clear(&issuer);
    cm_leaf_summary_clear(&keytype);
    cm_leaf_summary_clear(&smaller);
    cm_leaf_summary_clear(&earlier);
    /* The last holders gave the shared texts back. */
    EXPECT_INT(cm_intern_count(), shared);
}

/* Heap bytes a leaf summary's texts hold (malloc's chunk overhead included), as the daemon
 * restores one per target from the history at start: printed, glibc decides the rounding
 * (issue 14). The copy is measured too: a pin is one. Both must come out alike. */
static void test_summary_memory(void)
{
    enum { N = 10000 };
    struct cm_leaf_summary *v = calloc(2 * N, sizeof(*v));
    size_t before;
    char subject[64], sans[128];

    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    before = cm_th_heap_used();
    for (int i = 0; i < N; i++) {
        snprintf(subject, sizeof(subject), "CN=host-%05d.example.com", i);
        snprintf(sans, sizeof(sans), "www.host-%05d.example.com, host-%05d.example.com", i, i);
        EXPECT_INT(cm_leaf_summary_from(
                       "5f1c9e2a0d7b43e8a6c1f0b9d2e7a4c3b8f6e1d0c9a7b5e3f2d1c0b9a8e7f6d5", subject,
                       "CN=R11,O=Let's Encrypt,C=US", sans, "EC", 256, NOW + 30 * DAY, &v[i]),
                   0);
    }
    cm_th_print_heap("a restored leaf summary's texts", before, N);
    before = cm_th_heap_used();
    for (int i = 0; i < N; i++)
        EXPECT_INT(cm_leaf_summary_copy(&v[i], &v[N + i]), 0);
    cm_th_print_heap("a copy of one (a pin)", before, N);
    /* What the daemon keeps per target: the struct with its texts. */
    {
        struct cm_leaf_summary **kept = calloc(N, sizeof(*kept));
        CU_ASSERT_PTR_NOT_NULL_FATAL(kept);
        before = cm_th_heap_used();
        for (int i = 0; i < N; i++)
            CU_ASSERT_PTR_NOT_NULL_FATAL(kept[i] = cm_leaf_summary_new(&v[i]));
        cm_th_print_heap("a kept summary (cm_leaf_summary_new)", before, N);
        EXPECT_STR(kept[N - 1]->sans, "host-09999.example.com, www.host-09999.example.com");
        CU_ASSERT_PTR_EQUAL(kept[N - 1]->issuer, v[0].issuer);
        for (int i = 0; i < N; i++)
            cm_leaf_summary_free(kept[i]);
        free(kept);
    }
    EXPECT_STR(v[N - 1].sans, "host-09999.example.com, www.host-09999.example.com");
    EXPECT_STR(v[2 * N - 1].sans, "host-09999.example.com, www.host-09999.example.com");
    EXPECT_STR(v[2 * N - 1].subject, "CN=host-09999.example.com");
    EXPECT_STR(v[2 * N - 1].issuer, "CN=R11,O=Let's Encrypt,C=US");
    EXPECT_STR(v[2 * N - 1].key_type, "EC");
    CU_ASSERT(!v[2 * N - 1].has_spki);
    for (int i = 0; i < 2 * N; i++)
        cm_leaf_summary_clear(&v[i]);
    free(v);
}

/* pin = "tofu": the pinned leaf stays, the same key or a renewal by the same issuer moves the
 * pin, anything else is a mismatch (also a renewal-looking leaf of another issuer). */
static void test_pin_judge(void)
{
    struct cm_leaf_summary pin, same, rekeyed, renewed, reissued, other, copy;
    char hex[CM_SHA256_HEX], want[CM_SHA256_HEX];

    summary_key(&pin, "aa", "CN=a.example", "CN=CA 1", "a.example", "EC", 256, NOW + 30 * DAY,
                "1111");
    summary(&same, "aa", "CN=a.example", "CN=CA 1", "a.example", "EC", 256, NOW + 30 * DAY);
    /* Another CA and other names, but the pinned key. */
    summary_key(&rekeyed, "bb", "CN=b.example", "CN=CA 2", "b.example", "EC", 256, NOW + 10 * DAY,
                "1111");
    summary_key(&renewed, "cc", "CN=a.example", "CN=CA 1", "a.example", "EC", 256, NOW + 90 * DAY,
                "2222");
    summary_key(&reissued, "dd", "CN=a.example", "CN=CA 2", "a.example", "EC", 256, NOW + 90 * DAY,
                "3333");
    summary(&other, "ee", "CN=a.example", "CN=CA 1", "a.example", "EC", 256, NOW + 10 * DAY);

    EXPECT_INT(cm_pin_judge(&pin, &same), CM_PIN_SAME);
    EXPECT_INT(cm_pin_judge(&pin, &rekeyed), CM_PIN_MOVE_KEY);
    EXPECT_INT(cm_pin_judge(&pin, &renewed), CM_PIN_MOVE_RENEWAL);
    EXPECT_INT(cm_pin_judge(&pin, &reissued), CM_PIN_MISMATCH);
    /* Not later: not a renewal; its key is unknown, so no key continuity either. */
    EXPECT_INT(cm_pin_judge(&pin, &other), CM_PIN_MISMATCH);
    /* Unknown keys on both sides are not "the same key". */
    pin.has_spki = false;
    EXPECT_INT(cm_pin_judge(&pin, &other), CM_PIN_MISMATCH);
    /* A copy is alike, and its own; its issuer and key type are the shared texts. */
    EXPECT_INT(cm_leaf_summary_copy(&renewed, &copy), 0);
    cm_hex_encode(copy.spki_sha256, CM_SHA256_LEN, hex);
    EXPECT_STR(hex, sha_of("22", want));
    CU_ASSERT(copy.has_spki);
    CU_ASSERT_PTR_EQUAL(copy.issuer, renewed.issuer);
    CU_ASSERT_PTR_EQUAL(copy.key_type, renewed.key_type);
    EXPECT_INT(cm_pin_judge(&copy, &renewed), CM_PIN_SAME);
    cm_leaf_summary_clear(&copy);

    cm_leaf_summary_clear(&pin);
    cm_leaf_summary_clear(&same);
    cm_leaf_summary_clear(&rekeyed);
    cm_leaf_summary_clear(&renewed);
    cm_leaf_summary_clear(&reissued);
    cm_leaf_summary_clear(&other);
}

/* The pin the daemon attaches raises cert.pin_mismatch with both fingerprints and the date. */
static void test_tofu_mismatch(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_policy p = CM_POLICY_DEFAULT;
    struct cm_findings f = {0};
    const struct cm_finding *g;
    struct cm_pin_miss *m = calloc(1, sizeof(*m));

    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    EXPECT_INT(cm_analyze(r, &p, NOW, &f), 0);
    CU_ASSERT_PTR_NULL(find(&f, "cert.pin_mismatch", ANY_POS));
    cm_findings_clear(&f);
    m->pinned_at = 1767225600; /* 2026-01-01 */
    m->sha256 = cm_tf_strdup("aa11");
    m->spki_sha256 = cm_tf_strdup("");
    r->pin_miss = m;
    EXPECT_INT(cm_analyze(r, &p, NOW, &f), 0);
    g = find(&f, "cert.pin_mismatch", 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    EXPECT_INT(g->severity, CM_SEV_CRITICAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(g->message, r->tls.chain.certs[0].sha256));
    CU_ASSERT_PTR_NOT_NULL(strstr(g->message, "pinned on first use on 2026-01-01T00:00:00Z "
                                              "(sha256 aa11, public key sha256 unknown)"));
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* expect_file: newer means another certificate, a shared name (any case), a later notAfter;
 * deploy.stale only once the grace has passed; an unusable file is its own finding. */
static void test_deploy(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_policy p = CM_POLICY_DEFAULT;
    struct cm_findings f = {0};
    const struct cm_finding *g;
    struct cm_deploy *d = calloc(1, sizeof(*d));
    struct cm_cert *leaf = &r->tls.chain.certs[0];

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    cm_tf_fill_cert(&d->cert, "CN=example.com", "CN=CA", NOW - DAY, leaf->not_after + 60 * DAY,
                    false);
    free(d->cert.sha256);
    d->cert.sha256 = cm_tf_strdup("ffff");
    free(d->cert.sans[0]);
    d->cert.sans[0] = cm_tf_strdup("EXAMPLE.com");
    CU_ASSERT(cm_deploy_newer(leaf, &d->cert));
    CU_ASSERT(!cm_deploy_newer(&d->cert, leaf)); /* older */
    CU_ASSERT(!cm_deploy_newer(leaf, leaf));     /* the same */
    free(d->cert.sans[0]);
    d->cert.sans[0] = cm_tf_strdup("other.example");
    CU_ASSERT(!cm_deploy_newer(leaf, &d->cert)); /* other names */

    d->path = cm_tf_strdup("/etc/ssl/example.pem");
    d->grace_s = 3600;
    d->newer_since = NOW - 3599;
    r->deploy = d;
    EXPECT_INT(cm_analyze(r, &p, NOW, &f), 0);
    CU_ASSERT_PTR_NULL(find(&f, "deploy.stale", ANY_POS));
    cm_findings_clear(&f);
    d->newer_since = NOW - 3600;
    EXPECT_INT(cm_analyze(r, &p, NOW, &f), 0);
    g = find(&f, "deploy.stale", 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    EXPECT_INT(g->severity, CM_SEV_WARNING);
    CU_ASSERT_PTR_NOT_NULL(strstr(g->message, "renewed on disk on "));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(g->message, "(/etc/ssl/example.pem holds sha256 ffff, valid until"));
    CU_ASSERT_PTR_NOT_NULL(strstr(g->message, leaf->sha256));
    cm_findings_clear(&f);
    d->error = cm_tf_strdup("No such file\nor directory");
    EXPECT_INT(cm_analyze(r, &p, NOW, &f), 0);
    CU_ASSERT_PTR_NULL(find(&f, "deploy.stale", ANY_POS));
    g = find(&f, "deploy.file_unreadable", 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_PTR_NULL(strchr(g->message, '\n')); /* escaped */
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* pin_sha256: the leaf's own SHA-256 or any sent key's SHA-256 satisfies it. */
static void test_pin_mismatch(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_policy p = CM_POLICY_DEFAULT;
    struct cm_findings f = {0};
    const struct cm_finding *g;
    char pins[200];

    free(r->tls.chain.certs[0].spki_sha256);
    r->tls.chain.certs[0].spki_sha256 = cm_tf_strdup(
        "1111111111111111111111111111111111111111111111111111111111111111");
    free(r->tls.chain.certs[1].spki_sha256);
    r->tls.chain.certs[1].spki_sha256 = cm_tf_strdup(
        "2222222222222222222222222222222222222222222222222222222222222222");
    /* No pins: nothing. */
    EXPECT_INT(cm_analyze(r, &p, NOW, &f), 0);
    CU_ASSERT_PTR_NULL(find(&f, "cert.pin_mismatch", ANY_POS));
    cm_findings_clear(&f);
    /* The leaf itself, the leaf's key, the intermediate's key: pinned. */
    snprintf(pins, sizeof(pins), "%s", r->tls.chain.certs[0].sha256);
    p.pins = pins;
    EXPECT_INT(cm_analyze(r, &p, NOW, &f), 0);
    CU_ASSERT_PTR_NULL(find(&f, "cert.pin_mismatch", ANY_POS));
    cm_findings_clear(&f);
    p.pins = "3333333333333333333333333333333333333333333333333333333333333333 "
             "2222222222222222222222222222222222222222222222222222222222222222";
    EXPECT_INT(cm_analyze(r, &p, NOW, &f), 0);
    CU_ASSERT_PTR_NULL(find(&f, "cert.pin_mismatch", ANY_POS));
    cm_findings_clear(&f);
    /* A prefix of a pin is not a pin; nothing matches: critical. */
    p.pins = "3333333333333333333333333333333333333333333333333333333333333333 "
             "22222222222222222222222222222222222222222222222222222222222222220";
    EXPECT_INT(cm_analyze(r, &p, NOW, &f), 0);
    g = find(&f, "cert.pin_mismatch", 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    EXPECT_INT(g->severity, CM_SEV_CRITICAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(g->message, "matches none of the 2 pins"));
    CU_ASSERT_PTR_NOT_NULL(strstr(g->message, r->tls.chain.certs[0].sha256));
    EXPECT_INT(cm_findings_status(&f), CM_STATUS_CRITICAL);
    cm_findings_clear(&f);
    cm_probe_result_free(r);
}

/* The change record the daemon attaches raises cert.changed until its window ends; the text
 * from the certificates is escaped. */
static void test_cert_changed(void)
{
    struct cm_probe_result *r = quiet();
    struct cm_policy p = CM_POLICY_DEFAULT;
    struct cm_findings f = {0};
    const struct cm_finding *g;
    struct cm_change *c = calloc(1, sizeof(*c));

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    c->at = NOW - 3600;
    c->until = NOW + 3600;
    c->what = cm_tf_strdup("SANs added: evil\nexample");
    c->old_sha256 = cm_tf_strdup("aa11");
    c->new_sha256 = cm_tf_strdup("bb22");
    r->change = c;
    EXPECT_INT(cm_analyze(r, &p, NOW, &f), 0);
    g = find(&f, "cert.changed", 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    EXPECT_INT(g->severity, CM_SEV_WARNING);
    CU_ASSERT_PTR_NOT_NULL(strstr(g->message, "SANs added: evil\\x0aexample"));
    CU_ASSERT_PTR_NOT_NULL(strstr(g->message, "old sha256 aa11, new sha256 bb22"));
    CU_ASSERT_PTR_NULL(strchr(g->message, '\n'));
    cm_findings_clear(&f);
    /* The window has ended. */
    EXPECT_INT(cm_analyze(r, &p, NOW + 3600, &f), 0);
    CU_ASSERT_PTR_NULL(find(&f, "cert.changed", 0));
    cm_findings_clear(&f);
    cm_probe_result_free(r);
    cm_policy_clear(&p);
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
    {"key.weak", test_key_weak},
    {"key.weak: policy", test_key_weak_policy},
    {"key.weak: root sent", test_key_weak_root_sent},
    {"signature.weak", test_signature_weak},
    {"signature.weak: self-signed", test_signature_weak_self_signed},
    {"chain.incomplete vs chain.untrusted", test_chain_incomplete},
    {"allow self-signed", test_allow_self_signed},
    {"chain.untrusted: explained reasons", test_untrusted_explained},
    {"chain.order", test_chain_order},
    {"chain.order: key identifiers", test_chain_order_key_ids},
    {"chain.root_sent", test_root_sent},
    {"cert.no_san", test_no_san},
    {"cert.lifetime_long", test_lifetime_long},
    {"cert.lifetime_long: max_lifetime_days", test_lifetime_policy},
    {"CA/B lifetime schedule", test_lifetime_limit_days},
    {"expiring: share of the lifetime", test_expiring_lifetime},
    {"expiring: lifetime percentages", test_expiring_lifetime_policy},
    {"mtls: client certificate, share of the lifetime", test_client_cert_lifetime},
    {"cert.wildcard", test_wildcard},
    {"ocsp findings", test_ocsp},
    {"ocsp needs a handshake", test_ocsp_needs_handshake},
    {"revocation: cert.revoked (CRL), unavailable, crl_stale, none; the ocsp.revoked alias",
     test_revocation_findings},
    {"revocation modes: off drops every revocation finding, staple-only keeps the staple's",
     test_revocation_modes},
    {"evidence: days_left", test_days_left_evidence},
    {"policy: ignore", test_policy_ignore},
    {"policy: severity", test_policy_severity},
    {"policy: bad rules", test_policy_bad_rules},
    {"severity parse", test_severity_parse},
    {"catalogue", test_catalogue},
    {"change: renewal or material change", test_change_classify},
    {"cert.changed", test_cert_changed},
    {"cert.pin_mismatch", test_pin_mismatch},
    {"change: a leaf summary's memory (printed)", test_summary_memory},
    {"pin = tofu: the pin's steps", test_pin_judge},
    {"pin = tofu: cert.pin_mismatch", test_tofu_mismatch},
    {"expect_file: deploy.stale, deploy.file_unreadable", test_deploy},
    {"cert.purpose: extended key usage", test_purpose_eku},
    {"cert.purpose: key usage", test_purpose_key_usage},
    {"chain.ca_as_leaf", test_ca_as_leaf},
    {"key.weak: trust anchor", test_weak_anchor},
    {"chain.interception_root", test_interception_root},
    {"public-key lists", test_spki_list},
    {"suggest", test_suggest},
    {"later policy rule wins", test_later_rule_wins},
    {"consistency across addresses", test_consistency},
    {"incomplete with another cert", test_incomplete_with_other_cert},
    {"posture: modern endpoint", test_posture_modern},
    {"posture: protocol.legacy", test_protocol_legacy},
    {"posture: protocol.no_modern, protocol.no_tls13", test_protocol_modern},
    {"posture: cipher.weak", test_cipher_weak},
    {"posture: cipher.no_forward_secrecy", test_forward_secrecy},
    {"posture: dh.weak", test_dh_weak},
    {"posture: dh.weak for a bad group", test_dh_bad_group},
    {"posture: cipher.no_aead", test_no_aead},
    {"refused handshake: the pass's verdict", test_refused_with_posture},
    {"posture: renegotiation.insecure", test_renegotiation},
    {"posture: order and policy", test_posture_order_and_policy},
    {"file: sound files", test_file_sound},
    {"file: lifetime", test_file_lifetime},
    {"file: validity", test_file_validity},
    {"file: key and signature", test_file_strength},
    {"file: failed", test_file_failed},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("analyze", tests, NULL, NULL);
}
