#include "certmon/analysis/analyze.h"
#include "certmon/base/error.h"
#include "certmon/base/text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The CA/Browser Forum baseline's maximum lifetime of a TLS server certificate, by issuance
 * date (ballot SC-081): from each date (00:00 UTC) on, at most that many days. */
static const struct {
    int64_t from; /* Unix seconds */
    int days;
} lifetime_schedule[] = {
    {1868227200, 47},  /* 2029-03-15 */
    {1805068800, 100}, /* 2027-03-15 */
    {1773532800, 200}, /* 2026-03-15 */
};
#define LIFETIME_BEFORE_SCHEDULE 398 /* issued before 2026-03-15 */

const struct cm_finding_def cm_finding_catalogue[] = {
    {"probe.failed", CM_SEV_CRITICAL, "the endpoint could not be probed, or the file read"},
    {"cert.expired", CM_SEV_CRITICAL, "a certificate of the chain has expired"},
    {"cert.expiring", CM_SEV_WARNING, "a certificate of the chain expires soon"},
    {"cert.not_yet_valid", CM_SEV_CRITICAL, "a certificate of the chain is not valid yet"},
    {"chain.untrusted", CM_SEV_CRITICAL, "the chain does not lead to a trusted root"},
    {"chain.self_signed", CM_SEV_CRITICAL, "the server sent a lone self-signed certificate"},
    {"chain.incomplete", CM_SEV_CRITICAL, "the server does not send its intermediate"},
    {"chain.order", CM_SEV_WARNING, "the certificates are not sent in issuing order"},
    {"chain.root_sent", CM_SEV_INFO, "the server sends its root certificate too"},
    {"chain.ca_as_leaf", CM_SEV_CRITICAL,
     "the server's first certificate is a CA certificate, not its own"},
    {"chain.interception_root", CM_SEV_CRITICAL, "the chain ends in a known interception root"},
    {"cert.purpose", CM_SEV_CRITICAL,
     "a certificate's key usage or extended key usage does not allow a TLS server"},
    {"host.mismatch", CM_SEV_CRITICAL, "the leaf is not valid for the name checked"},
    {"key.weak", CM_SEV_CRITICAL, "a key is shorter than the policy allows"},
    {"signature.weak", CM_SEV_CRITICAL, "a certificate is signed with MD5 or SHA-1"},
    {"cert.no_san", CM_SEV_WARNING, "the leaf names its host only in the CN"},
    {"cert.lifetime_long", CM_SEV_INFO,
     "the leaf is valid longer than allowed for its issuance date (CA/B: 398, 200, 100 or 47 "
     "days) or than max_lifetime_days"},
    {"cert.wildcard", CM_SEV_INFO, "the leaf is a wildcard certificate"},
    {"cert.revoked", CM_SEV_CRITICAL,
     "a certificate of the chain is revoked (stapled OCSP, OCSP responder or CRL)"},
    {"revocation.unavailable", CM_SEV_WARNING,
     "no revocation source of a certificate could be used"},
    {"revocation.crl_stale", CM_SEV_WARNING, "the only CRL available is past its nextUpdate"},
    {"revocation.none", CM_SEV_INFO, "a certificate publishes neither a CRL nor an OCSP responder"},
    {"ocsp.must_staple_missing", CM_SEV_CRITICAL, "a must-staple leaf is served without staple"},
    {"ocsp.not_stapled", CM_SEV_INFO, "the server staples no OCSP response"},
    {"ocsp.invalid", CM_SEV_WARNING, "the stapled OCSP response does not verify"},
    {"protocol.legacy", CM_SEV_WARNING, "the server accepts TLS 1.1, TLS 1.0 or SSL 3.0"},
    {"protocol.no_modern", CM_SEV_CRITICAL, "the server accepts neither TLS 1.2 nor TLS 1.3"},
    {"protocol.no_tls13", CM_SEV_INFO, "the server does not accept TLS 1.3"},
    {"cipher.weak", CM_SEV_CRITICAL,
     "the server accepts RC4, 3DES, NULL, export or anonymous cipher suites"},
    {"cipher.no_forward_secrecy", CM_SEV_WARNING, "the server offers only static-RSA key exchange"},
    {"cipher.no_aead", CM_SEV_WARNING,
     "the server offers no AEAD cipher suite (CBC or stream ciphers only)"},
    {"dh.weak", CM_SEV_WARNING,
     "the server's finite-field DH group is under 2048 bits, or not a safe prime group"},
    {"renegotiation.insecure", CM_SEV_WARNING, "the server lacks secure renegotiation"},
    {"endpoint.inconsistent", CM_SEV_WARNING,
     "addresses behind one name present different leaf certificates"},
    {"mtls.client_cert_required", CM_SEV_CRITICAL,
     "the server requires a client certificate and none is configured"},
    {"mtls.client_cert_rejected", CM_SEV_CRITICAL, "the server refused our client certificate"},
    {"mtls.client_cert_expiring", CM_SEV_WARNING, "our client certificate expires soon"},
    {"mtls.client_cert_expired", CM_SEV_CRITICAL, "our client certificate has expired"},
    {"cert.renewal_window_passed", CM_SEV_WARNING,
     "the CA's suggested renewal window (ACME ARI) has ended and the certificate is still served"},
    {"cert.renewal_window_open", CM_SEV_INFO,
     "the CA's suggested renewal window (ACME ARI) for the served certificate is open"},
    {"ari.unavailable", CM_SEV_INFO, "the CA's renewal information (ACME ARI) could not be read"},
    {"cert.pin_mismatch", CM_SEV_CRITICAL,
     "neither the leaf nor any key the server sent matches the target's pin_sha256, or the leaf "
     "is not the one pinned on first use (pin = \"tofu\") nor a renewal of it"},
    {"cert.changed", CM_SEV_WARNING,
     "the served leaf changed materially (names, issuer or key), not as a renewal"},
    {"key.mismatch", CM_SEV_CRITICAL,
     "a file target's private key does not belong to its certificate"},
    {"key.unreadable", CM_SEV_WARNING,
     "the private key paired with a file target's certificate cannot be read or decrypted"},
    {"keystore.integrity_failed", CM_SEV_CRITICAL,
     "a Java KeyStore's integrity digest does not match: wrong password or altered file"},
    {"keystore.unverified", CM_SEV_INFO,
     "a keystore's integrity was not verified (JKS without a password, PKCS#12 without a MAC)"},
    {"deploy.stale", CM_SEV_WARNING,
     "the target's expect_file holds a newer certificate for its names than it serves, past "
     "deploy_grace"},
    {"deploy.file_unreadable", CM_SEV_WARNING,
     "the target's expect_file is missing, unreadable or holds no certificate"},
    {"cert.renewed", CM_SEV_INFO,
     "the served leaf was renewed (an event notified with notify_renewals, not a finding of a "
     "report)"},
};
const size_t cm_finding_catalogue_len =
    sizeof(cm_finding_catalogue) / sizeof(cm_finding_catalogue[0]);

/* Ids that were renamed: settings written for the old name keep working. */
static const struct {
    const char *old, *now;
} finding_aliases[] = {
    {"ocsp.revoked", "cert.revoked"}, /* a staple is one source of revocation among three */
};

const struct cm_finding_def *cm_finding_lookup(const char *id)
{
    for (size_t i = 0; id && i < sizeof(finding_aliases) / sizeof(finding_aliases[0]); i++)
        if (strcmp(finding_aliases[i].old, id) == 0)
            id = finding_aliases[i].now;
    for (size_t i = 0; id && i < cm_finding_catalogue_len; i++)
        if (strcmp(cm_finding_catalogue[i].id, id) == 0)
            return &cm_finding_catalogue[i];
    return NULL;
}

const char *cm_finding_suggest(const char *id)
{
    struct cm_suggest sg;

    cm_suggest_init(&sg, id, 3, false); /* farther than 3 edits is no suggestion */
    for (size_t i = 0; id && i < cm_finding_catalogue_len; i++)
        cm_suggest_add(&sg, cm_finding_catalogue[i].id);
    return sg.best;
}

/* One line of a public-key list: [line, end). Sets *hex and *name (name_len bytes, trimmed)
 * for an entry; returns 0 for an entry, 1 for a blank or comment line, or -1 with the reason
 * in *why. */
static int spki_line(const char *line, const char *end, const char **hex, const char **name,
                     size_t *name_len, const char **why)
{
    const char *p = line;

    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p == end || *p == '#' || (*p == '\r' && p + 1 == end))
        return 1;
    *hex = p;
    while (p < end &&
           ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F')))
        p++;
    if (p - *hex != 64 || (p < end && *p != ' ' && *p != '\t')) {
        *why = "an entry starts with the 64 hex digits of a SHA-256 hash, then a space";
        return -1;
    }
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    if (p == end) {
        *why = "the hash has no name after it";
        return -1;
    }
    if ((size_t)(end - p) > CM_SPKI_NAME_MAX) {
        *why = "the name is longer than 200 bytes";
        return -1;
    }
    for (const char *q = p; q < end; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f) {
            *why = "the name holds a control character";
            return -1;
        }
    *name = p;
    *name_len = (size_t)(end - p);
    return 0;
}

int cm_spki_list_validate(const char *text, size_t len, size_t *line, char *why, size_t whylen)
{
    const char *p = text, *end = text + len;
    size_t lineno = 1;

    *line = 0;
    if (memchr(text, '\0', len)) {
        snprintf(why, whylen, "the list holds a NUL byte (not a text file?)");
        return CM_EBADARG;
    }
    for (; p < end; lineno++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        const char *hex, *name, *what = "";
        size_t name_len;

        if (spki_line(p, eol, &hex, &name, &name_len, &what) < 0) {
            *line = lineno;
            snprintf(why, whylen, "%s", what);
            return CM_EBADARG;
        }
        p = nl ? nl + 1 : end;
    }
    return 0;
}

int cm_spki_list_check(const char *text, size_t len, char *err, size_t errlen)
{
    char why[160];
    size_t line;
    int rc = cm_spki_list_validate(text, len, &line, why, sizeof(why));

    if (rc == 0)
        return 0;
    if (line)
        snprintf(err, errlen, "line %zu: %s", line, why);
    else
        snprintf(err, errlen, "%s", why);
    return rc;
}

bool cm_spki_list_find(const char *text, const char *spki_sha256, char *name, size_t namelen)
{
    const char *p = text, *end = text + strlen(text);

    if (strlen(spki_sha256) != 64)
        return false;
    /* Called for every certificate of every analysis: skip comments and other keys on the
     * first bytes, and parse only the line that matches. */
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        const char *hex, *n, *why;
        size_t n_len;

        while (p < eol && (*p == ' ' || *p == '\t'))
            p++;
        if (eol - p > 64 && *p != '#' && strncasecmp(p, spki_sha256, 64) == 0 &&
            spki_line(p, eol, &hex, &n, &n_len, &why) == 0) {
            snprintf(name, namelen, "%.*s", (int)n_len, n);
            return true;
        }
        p = nl ? nl + 1 : end;
    }
    return false;
}

static int add_rule(struct cm_policy *p, const char *id, bool ignore, enum cm_severity sev)
{
    const struct cm_finding_def *def = cm_finding_lookup(id);
    struct cm_policy_rule *n;

    if (!def)
        return CM_EBADARG;
    if (!(n = realloc(p->rules, (p->rule_count + 1) * sizeof(*n))))
        return -ENOMEM;
    p->rules = n;
    n[p->rule_count++] = (struct cm_policy_rule){def->id, ignore, sev};
    return 0;
}

static const char *const revocation_modes[] = {"auto", "staple-only", "off"};

const char *cm_revocation_mode_name(enum cm_revocation_mode m)
{
    return (unsigned)m < 3 ? revocation_modes[m] : "auto";
}

int cm_revocation_mode_parse(const char *s, enum cm_revocation_mode *out)
{
    for (unsigned i = 0; s && i < 3; i++)
        if (!strcmp(s, revocation_modes[i])) {
            *out = (enum cm_revocation_mode)i;
            return 0;
        }
    return CM_EBADARG;
}

int cm_policy_ignore(struct cm_policy *p, const char *id)
{
    return add_rule(p, id, true, CM_SEV_OK);
}

int cm_policy_set_severity(struct cm_policy *p, const char *id, enum cm_severity sev)
{
    if (sev < CM_SEV_INFO || sev > CM_SEV_CRITICAL)
        return CM_EBADARG;
    return add_rule(p, id, false, sev);
}

void cm_policy_clear(struct cm_policy *p)
{
    if (!p)
        return;
    free(p->rules);
    p->rules = NULL;
    p->rule_count = 0;
}

/* One analysis in progress. */
struct ctx {
    const struct cm_probe_result *res;
    const struct cm_policy *policy;
    time_t now;
    struct cm_findings *out;
};

/* Adds a finding unless the policy ignores its id; applies severity overrides. *made (when
 * not NULL) gets the finding, or NULL when it was ignored. Returns 0 or -ENOMEM. */
static int add(struct ctx *x, struct cm_finding **made, const char *id, enum cm_severity sev,
               int position, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int add(struct ctx *x, struct cm_finding **made, const char *id, enum cm_severity sev,
               int position, const char *fmt, ...)
{
    struct cm_findings *out = x->out;
    struct cm_finding *n;
    char msg[512];
    va_list ap;

    const struct cm_policy_rule *rule = NULL;

    if (made)
        *made = NULL;
    for (size_t i = 0; i < x->policy->rule_count; i++)
        if (strcmp(x->policy->rules[i].id, id) == 0)
            rule = &x->policy->rules[i]; /* the last rule for the id wins */
    if (rule && rule->ignore)
        return 0;
    if (rule)
        sev = rule->severity;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    n = realloc(out->items, (out->count + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    out->items = n;
    n = &out->items[out->count];
    memset(n, 0, sizeof(*n));
    n->id = id;
    n->severity = sev;
    n->position = position;
    if (!(n->message = strdup(msg)))
        return -ENOMEM;
    out->count++;
    if (made)
        *made = n;
    return 0;
}

/* How a message names the certificate at pos: "leaf certificate 0 (SUBJECT)" or "chain
 * certificate 2 (SUBJECT)" as a server sent them, "the trust anchor (SUBJECT) from the trust
 * store" at pos == chain length (the anchor convention, see anchor_position); from a file
 * (filecert.h), "the certificate (SUBJECT)" when it holds one, "bundle certificate 2 (SUBJECT)"
 * when it holds several. */
static const char *cert_name(const struct ctx *x, const struct cm_cert *c, size_t pos, char *buf,
                             size_t len)
{
    const char *subject = c->subject ? c->subject : "";

    if (!x->res->path && pos >= x->res->tls.chain.count)
        snprintf(buf, len, "the trust anchor (%s) from the trust store", subject);
    else if (!x->res->path)
        snprintf(buf, len, "%s %zu (%s)", pos == 0 ? "leaf certificate" : "chain certificate", pos,
                 subject);
    else if (x->res->tls.chain.count == 1)
        snprintf(buf, len, "the certificate (%s)", subject);
    else
        snprintf(buf, len, "bundle certificate %zu (%s)", pos, subject);
    return buf;
}

static void plural_days(int64_t d, char *buf, size_t len)
{
    snprintf(buf, len, "%lld day%s", (long long)d, d == 1 ? "" : "s");
}

/* Certificates built by hand (tests, file targets) may leave optional strings NULL. */
static const char *str0(const char *s)
{
    return s ? s : "";
}

/* A self-signed CA certificate: a root, which clients take from their own trust store. */
static bool is_root(const struct cm_cert *c)
{
    return c->self_signed && c->is_ca;
}

int cm_lifetime_limit_days(int64_t issued, int64_t *since)
{
    for (size_t i = 0; i < sizeof(lifetime_schedule) / sizeof(lifetime_schedule[0]); i++)
        if (issued >= lifetime_schedule[i].from) {
            if (since)
                *since = lifetime_schedule[i].from;
            return lifetime_schedule[i].days;
        }
    if (since)
        *since = INT64_MIN;
    return LIFETIME_BEFORE_SCHEDULE;
}

/* min(days, pct% of lifetime) in seconds, and which of the two it is. pct 100 (and 0, in a
 * policy built by hand without it) leaves the day rule alone: the time left never exceeds the
 * lifetime, so 100% would only rename the rule for certificates shorter than the days. */
static int64_t threshold(int days, unsigned pct, int64_t lifetime, enum cm_expiry_rule *rule)
{
    int64_t by_days = days > 0 ? (int64_t)days * 86400 : 0;
    int64_t by_life;

    *rule = CM_EXPIRY_DAYS;
    if (by_days == 0 || pct == 0 || pct >= 100)
        return by_days;
    if (lifetime <= 0)
        return 0;
    /* Lifetimes fit in 36 bits (X.509 dates end in year 9999): no overflow at pct < 100. */
    by_life = lifetime * (int64_t)pct / 100;
    if (by_life < by_days) {
        *rule = CM_EXPIRY_LIFETIME;
        return by_life;
    }
    return by_days;
}

void cm_expiry_thresholds(const struct cm_cert *c, const struct cm_policy *policy, int64_t *warn_s,
                          int64_t *crit_s, enum cm_expiry_rule *warn_rule,
                          enum cm_expiry_rule *crit_rule)
{
    int64_t lifetime = c->not_after - c->not_before;
    enum cm_expiry_rule wr, cr;

    *warn_s = threshold(policy->warn_days, policy->warn_lifetime_pct, lifetime, &wr);
    *crit_s = threshold(policy->crit_days, policy->crit_lifetime_pct, lifetime, &cr);
    if (warn_rule)
        *warn_rule = wr;
    if (crit_rule)
        *crit_rule = cr;
}

/* A lifetime as an adjective: "90-day", or "14-hour" under two days. */
static void lifetime_adj(int64_t s, char *buf, size_t len)
{
    if (s < 2 * 86400)
        snprintf(buf, len, "%lld-hour", (long long)(s / 3600));
    else
        snprintf(buf, len, "%lld-day", (long long)(s / 86400));
}

/* Whether c, with left seconds to live, expires soon under the policy: the severity
 * (CM_SEV_OK when not) and, in why, the rule that fired: "under the 30-day warning threshold"
 * or "under 33% of its 90-day lifetime". */
static enum cm_severity expiry_level(const struct cm_policy *policy, const struct cm_cert *c,
                                     int64_t left, char *why, size_t len)
{
    int64_t warn_s, crit_s, lifetime = c->not_after - c->not_before;
    enum cm_expiry_rule wr, cr, rule;
    enum cm_severity sev;
    char life[32];

    cm_expiry_thresholds(c, policy, &warn_s, &crit_s, &wr, &cr);
    if (left < crit_s) {
        sev = CM_SEV_CRITICAL;
        rule = cr;
    } else if (left < warn_s) {
        sev = CM_SEV_WARNING;
        rule = wr;
    } else {
        return CM_SEV_OK;
    }
    if (rule == CM_EXPIRY_LIFETIME) {
        lifetime_adj(lifetime, life, sizeof(life));
        snprintf(why, len, "under %u%% of its %s lifetime",
                 sev == CM_SEV_CRITICAL ? policy->crit_lifetime_pct : policy->warn_lifetime_pct,
                 life);
    } else {
        snprintf(why, len, "under the %d-day %s threshold",
                 sev == CM_SEV_CRITICAL ? policy->crit_days : policy->warn_days,
                 sev == CM_SEV_CRITICAL ? "critical" : "warning");
    }
    return sev;
}

static int check_validity(struct ctx *x, const struct cm_cert *c, size_t pos)
{
    const struct cm_policy *policy = x->policy;
    char when[32], days[32], who[300], why[96];
    int64_t left = c->not_after - (int64_t)x->now;
    int64_t d = cm_cert_days_left(c, x->now);
    enum cm_severity sev;
    struct cm_finding *f;
    int rc;

    if (left < 0) {
        int64_t ago = (-left) / 86400;
        cm_time_rfc3339(c->not_after, when, sizeof(when));
        plural_days(ago, days, sizeof(days));
        if (ago > 0)
            rc = add(x, &f, "cert.expired", CM_SEV_CRITICAL, (int)pos, "%s expired %s ago, on %s",
                     cert_name(x, c, pos, who, sizeof(who)), days, when);
        else
            rc = add(x, &f, "cert.expired", CM_SEV_CRITICAL, (int)pos, "%s expired on %s",
                     cert_name(x, c, pos, who, sizeof(who)), when);
    } else if (c->not_before > (int64_t)x->now) {
        cm_time_rfc3339(c->not_before, when, sizeof(when));
        rc = add(x, &f, "cert.not_yet_valid", CM_SEV_CRITICAL, (int)pos,
                 "%s is not valid before %s", cert_name(x, c, pos, who, sizeof(who)), when);
    } else if ((sev = expiry_level(policy, c, left, why, sizeof(why))) != CM_SEV_OK) {
        cm_time_rfc3339(c->not_after, when, sizeof(when));
        plural_days(d, days, sizeof(days));
        rc = add(x, &f, "cert.expiring", sev, (int)pos, "%s expires in %s, on %s; %s",
                 cert_name(x, c, pos, who, sizeof(who)), days, when, why);
    } else {
        return 0;
    }
    if (rc == 0 && f) {
        f->has_days_left = true;
        f->days_left = d;
    }
    return rc;
}

static bool weak_hash(const struct cm_cert *c)
{
    const char *h = str0(c->sig_hash);

    return !strcmp(h, "SHA1") || !strcmp(h, "MD5") || !strcmp(h, "MD2");
}

static bool rsa_like_key(const struct cm_cert *c)
{
    const char *kt = str0(c->key_type);

    return !strcmp(kt, "RSA") || !strcmp(kt, "RSA-PSS") || !strcmp(kt, "DSA");
}

/* True when c's key is shorter than the policy allows (key.weak). */
static bool key_weak(const struct cm_policy *policy, const struct cm_cert *c)
{
    if (rsa_like_key(c))
        return c->key_bits < policy->min_rsa_bits;
    return !strcmp(str0(c->key_type), "EC") && c->key_bits < policy->min_ec_bits;
}

/* key.weak for c at pos, when its key is weak. role (may be "") follows the certificate's
 * name in the message. */
static int check_key(struct ctx *x, const struct cm_cert *c, size_t pos, const char *role)
{
    const struct cm_policy *policy = x->policy;
    bool rsa_like = rsa_like_key(c);
    struct cm_finding *f;
    char who[300];
    int rc;

    if (!key_weak(policy, c))
        return 0;
    rc = add(x, &f, "key.weak", rsa_like ? CM_SEV_CRITICAL : CM_SEV_WARNING, (int)pos,
             "%s%s has a %u-bit %s key; the policy asks for at least %u bits",
             cert_name(x, c, pos, who, sizeof(who)), role, c->key_bits, c->key_type,
             rsa_like ? policy->min_rsa_bits : policy->min_ec_bits);
    if (rc == 0 && f) {
        f->key_type = c->key_type;
        f->key_bits = c->key_bits;
    }
    return rc;
}

static int check_strength(struct ctx *x, const struct cm_cert *c, size_t pos)
{
    bool file = x->res->path != NULL;
    struct cm_finding *f;
    char who[300];
    int rc;

    /* A root the server sends along is not used by clients: its own trust store decides (and
     * when that store trusts it, check_anchor judges it as the anchor). A file has no such
     * copies: what it holds is what its user trusts or serves. */
    if (!file && pos > 0 && is_root(c))
        return 0;
    if ((rc = check_key(x, c, pos, "")) < 0)
        return rc;
    /* In a file, a self-signed certificate is a trust anchor (or is pinned as one): nobody
     * checks its own signature, so its digest does not matter, as for the roots above. */
    if (weak_hash(c) && !(file && c->self_signed)) {
        rc = add(x, &f, "signature.weak", CM_SEV_CRITICAL, (int)pos,
                 "%s is signed with %s, which can be forged; reissue it with SHA-256",
                 cert_name(x, c, pos, who, sizeof(who)), str0(c->signature));
        if (rc < 0)
            return rc;
        if (f && !(f->algorithm = strdup(str0(c->signature))))
            return -ENOMEM;
    }
    return 0;
}

/* Verification bits that a missing or unknown issuer sets. Expiry and activation are
 * reported per certificate by cert.expired / cert.not_yet_valid and must not double as
 * "untrusted"; GnuTLS sets INVALID beside any other reason, so it counts as distrust only
 * when it stands alone. */
#define TIME_BITS (CM_VERIFY_EXPIRED | CM_VERIFY_NOT_ACTIVATED)

static bool distrusted(unsigned status)
{
    unsigned rest = status & ~(unsigned)TIME_BITS;

    return (rest & ~(unsigned)CM_VERIFY_INVALID) != 0 ||
           (rest == CM_VERIFY_INVALID && !(status & TIME_BITS));
}

struct names {
    char buf[256];
};

static void collect(const char *name, void *arg)
{
    struct names *n = arg;
    size_t used = strlen(n->buf);

    snprintf(n->buf + used, sizeof(n->buf) - used, "%s%s", used ? ", " : "", name);
}

/* A CA certificate at position 0: the server sends an issuer where its own certificate
 * belongs (typically a chain sent in reverse). A lone self-signed CA certificate is not one:
 * tools make self-signed server certificates with CA:TRUE, and chain.self_signed says what
 * matters about those. */
static bool ca_as_leaf(const struct cm_chain *chain)
{
    return chain->count > 0 && chain->certs[0].is_ca &&
           !(chain->certs[0].self_signed && chain->count == 1);
}

/* The trust anchor the verification used (res->tls.anchor), or NULL. */
static const struct cm_cert *anchor_of(const struct cm_probe_result *res)
{
    return res->tls.anchor.count > 0 ? &res->tls.anchor.certs[0] : NULL;
}

/* Where the anchor is reported: its position in the sent chain when the server sent it too
 * (same encoding), else the chain length, one past the last sent certificate: the place it
 * takes on the issuing path. */
static size_t anchor_position(const struct cm_probe_result *res, const struct cm_cert *a)
{
    return cm_chain_position(&res->tls.chain, a);
}

/* Whether check_anchor judges the anchor's key: when check_strength does not already, i.e.
 * the anchor was not sent, or was sent as a root (which check_strength leaves to the store). */
static bool anchor_judged(const struct cm_probe_result *res, const struct cm_cert *a, size_t *pos)
{
    *pos = anchor_position(res, a);
    return *pos == res->tls.chain.count || (*pos > 0 && is_root(a));
}

/* Key usage bits as RFC 5280 names them, into buf. */
static const char *ku_names(unsigned ku, char *buf, size_t len)
{
    const struct cm_ku_name *names = cm_key_usage_names;
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < CM_KU_COUNT; i++) {
        if (!(ku & names[i].bit))
            continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", names[i].name);
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
    if (!used)
        snprintf(buf, len, "nothing TLS uses");
    return buf;
}

/* Why the certificate at pos is unfit for a TLS server, into why; the severity in *sev.
 * Returns false when it is fit.
 *
 * What a TLS server needs of its certificate (RFC 5280 4.2.1.3 and 4.2.1.12; RFC 5246 7.4.2;
 * RFC 8446 4.4.2.4): an extended key usage, when present, must list serverAuth (or
 * anyExtendedKeyUsage, which GnuTLS and OpenSSL accept); a key usage, when present, must allow
 * what the key does in the handshake. Every key other than RSA only signs (ECDHE, TLS 1.3):
 * digitalSignature. An RSA key signs too, except in static-RSA key exchange (TLS_RSA_WITH_*),
 * where the client encrypts the premaster secret to it: keyEncipherment. So an RSA key without
 * digitalSignature serves only static RSA (no forward secrecy, no TLS 1.3): a warning when
 * that is what the server negotiated, critical when it signed with it anyway. An intermediate
 * whose extended key usage excludes serverAuth constrains everything under it (CA/Browser
 * Forum; GnuTLS and browsers enforce it), so it is judged too. The leaf's own CA flag is
 * chain.ca_as_leaf, not this. */
static bool purpose_problem(const struct cm_probe_result *res, size_t pos, char *why, size_t len,
                            enum cm_severity *sev)
{
    const struct cm_cert *c = &res->tls.chain.certs[pos];
    const char *cipher = str0(res->tls.cipher);
    bool static_rsa = !strncmp(cipher, "TLS_RSA_", 8);
    bool ds = c->key_usage & CM_KU_DIGITAL_SIGNATURE, ke = c->key_usage & CM_KU_KEY_ENCIPHERMENT;
    char ku[128];

    *sev = CM_SEV_CRITICAL;
    if (pos > 0) {
        if (!c->is_ca || is_root(c) || !c->has_eku || c->eku_server || c->eku_any)
            return false;
        snprintf(why, len,
                 "restricts the extended key usage of every certificate under it to %s, without "
                 "serverAuth: clients refuse the leaf for a TLS server",
                 str0(c->eku));
        return true;
    }
    if (c->is_ca)
        return false; /* chain.ca_as_leaf */
    if (c->has_eku && !c->eku_server && !c->eku_any) {
        snprintf(why, len,
                 "is not for TLS servers: its extended key usage allows only %s, not serverAuth, "
                 "so clients refuse it; reissue it with serverAuth",
                 str0(c->eku));
        return true;
    }
    if (!c->has_key_usage)
        return false;
    ku_names(c->key_usage, ku, sizeof(ku));
    if (strcmp(str0(c->key_type), "RSA") != 0) {
        if (ds)
            return false;
        snprintf(why, len,
                 "has a key usage (%s) without digitalSignature, which its %s key needs to sign "
                 "the TLS handshake; clients that check key usage refuse it",
                 ku, str0(c->key_type));
        return true;
    }
    if (!ds && !ke) {
        snprintf(why, len,
                 "has a key usage (%s) that allows neither digitalSignature nor keyEncipherment: "
                 "no TLS key exchange may use its key",
                 ku);
        return true;
    }
    if (!ds && static_rsa) {
        *sev = CM_SEV_WARNING;
        snprintf(why, len,
                 "has a key usage (%s) without digitalSignature: it serves only static-RSA key "
                 "exchange (no forward secrecy, no TLS 1.3); add digitalSignature",
                 ku);
        return true;
    }
    if (!ds) {
        snprintf(why, len,
                 "has a key usage (%s) without digitalSignature, yet the server signs the "
                 "handshake (%s) with it: clients that check key usage refuse the connection",
                 ku, res->tls.cipher ? cipher : "signed key exchange");
        return true;
    }
    if (!ke && static_rsa) {
        snprintf(why, len,
                 "has a key usage (%s) without keyEncipherment, yet the server uses it for "
                 "static-RSA key exchange (%s): clients that check key usage refuse the connection",
                 ku, cipher);
        return true;
    }
    return false;
}

/* Verification bits that a more specific finding already explains (whether or not the
 * policy shows that finding): they must not also make the chain "untrusted". */
static unsigned explained_bits(const struct ctx *x)
{
    const struct cm_probe_result *res = x->res;
    const struct cm_chain *chain = &res->tls.chain;
    const struct cm_ocsp *o = &res->tls.ocsp;
    const struct cm_cert *anchor = anchor_of(res);
    unsigned bits = 0;

    for (size_t i = 0; i < chain->count; i++) {
        if (weak_hash(&chain->certs[i]) && !(i > 0 && is_root(&chain->certs[i])))
            bits |= CM_VERIFY_INSECURE_ALGORITHM; /* signature.weak */
        /* GnuTLS blames a short key with the same bit as a weak digest. */
        if (key_weak(x->policy, &chain->certs[i]))
            bits |= CM_VERIFY_INSECURE_ALGORITHM; /* key.weak */
    }
    if (anchor && key_weak(x->policy, anchor))
        bits |= CM_VERIFY_INSECURE_ALGORITHM; /* key.weak of the anchor */
    /* cert.purpose reports every purpose mismatch (check_purpose), chain.ca_as_leaf the CA. */
    bits |= CM_VERIFY_PURPOSE_MISMATCH;
    if (o->status == CM_OCSP_REVOKED)
        bits |= CM_VERIFY_REVOKED; /* cert.revoked (staple) */
    if (o->status == CM_OCSP_NONE && chain->count > 0 && chain->certs[0].must_staple)
        bits |= CM_VERIFY_MISSING_OCSP_STATUS; /* ocsp.must_staple_missing */
    if (o->status == CM_OCSP_BAD || (o->status != CM_OCSP_NONE && !o->verified))
        bits |= CM_VERIFY_INVALID_OCSP_STATUS; /* ocsp.invalid */
    return bits;
}

/* cert.purpose: the leaf, and intermediates that constrain it, judged by purpose_problem;
 * and a purpose mismatch that GnuTLS found but the extracted data does not explain. */
static int check_purpose(struct ctx *x)
{
    const struct cm_chain *chain = &x->res->tls.chain;
    bool reported = false;
    enum cm_severity sev;
    char why[400], who[300];
    int rc;

    for (size_t i = 0; i < chain->count; i++) {
        if (!purpose_problem(x->res, i, why, sizeof(why), &sev))
            continue;
        rc = add(x, NULL, "cert.purpose", sev, (int)i, "%s %s",
                 cert_name(x, &chain->certs[i], i, who, sizeof(who)), why);
        if (rc < 0)
            return rc;
        reported = true;
    }
    if (!reported && !ca_as_leaf(chain) && (x->res->tls.verify.status & CM_VERIFY_PURPOSE_MISMATCH))
        return add(x, NULL, "cert.purpose", CM_SEV_CRITICAL, 0,
                   "the chain does not verify for a TLS server (purpose mismatch): a certificate "
                   "of the path restricts its extended key usage without serverAuth");
    return 0;
}

/* chain.ca_as_leaf. The follow-on findings it explains are left out by the callers:
 * host.mismatch and cert.no_san (a CA certificate names no host: that it is a CA is the
 * problem, not its names) and cert.purpose at position 0 (a CA key usage is for signing
 * certificates). chain.order still reports the order, which is a separate fact. */
static int check_ca_as_leaf(struct ctx *x)
{
    const struct cm_chain *chain = &x->res->tls.chain;
    const struct cm_cert *leaf = &chain->certs[0];

    if (!ca_as_leaf(chain))
        return 0;
    for (size_t j = 1; j < chain->count; j++)
        if (!chain->certs[j].is_ca && cm_cert_issued_by(&chain->certs[j], leaf))
            return add(x, NULL, "chain.ca_as_leaf", CM_SEV_CRITICAL, 0,
                       "the server sends a CA certificate (%s, basicConstraints CA:TRUE) first, "
                       "where its own certificate belongs; the certificate it issued (%s) "
                       "comes at position %zu: the chain is sent in reverse, send the server's "
                       "certificate first",
                       str0(leaf->subject), str0(chain->certs[j].subject), j);
    return add(x, NULL, "chain.ca_as_leaf", CM_SEV_CRITICAL, 0,
               "the server sends a CA certificate (%s, basicConstraints CA:TRUE) as its own "
               "certificate: a CA certificate names no server and clients refuse it; configure "
               "the server's certificate, then its intermediates",
               str0(leaf->subject));
}

/* key.weak for the trust anchor from the store (position: anchor_position). Its signature is
 * nobody's concern: an anchor is trusted as it is, not verified. */
static int check_anchor(struct ctx *x)
{
    const struct cm_cert *a = anchor_of(x->res);
    size_t pos;

    if (!a || !anchor_judged(x->res, a, &pos))
        return 0;
    /* A sent copy is named by its position; say that the store trusts it. */
    return check_key(x, a, pos, pos < x->res->tls.chain.count ? ", the trust anchor," : "");
}

/* chain.interception_root: a sent certificate or the trust anchor whose public key is a known
 * interception root's (the built-in list, then the policy's). Reported once. */
static int check_interception(struct ctx *x)
{
    const struct cm_chain *chain = &x->res->tls.chain;
    const struct cm_cert *anchor = anchor_of(x->res);
    char name[CM_SPKI_NAME_MAX + 1];

    for (size_t i = 0; i <= chain->count; i++) {
        const struct cm_cert *c = i < chain->count ? &chain->certs[i] : anchor;
        const char *spki = c ? str0(c->spki_sha256) : "";
        bool trusted;

        if (!spki[0] ||
            (!cm_spki_list_find(cm_interception_roots_builtin, spki, name, sizeof(name)) &&
             !(x->policy->interception_roots &&
               cm_spki_list_find(x->policy->interception_roots, spki, name, sizeof(name)))))
            continue;
        if (i == chain->count)
            return add(x, NULL, "chain.interception_root", CM_SEV_CRITICAL, (int)i,
                       "the chain ends in a known TLS interception root from the trust store: "
                       "%s (%s); whoever holds its key can read and alter the traffic: remove "
                       "it from the trust store",
                       name, str0(c->subject));
        /* Trusted when the anchor has the same key (a copy, or the root re-issued). */
        trusted = anchor && !strcasecmp(str0(anchor->spki_sha256), spki);
        return add(x, NULL, "chain.interception_root", CM_SEV_CRITICAL, (int)i,
                   "the server sends a certificate of a known TLS interception root at position "
                   "%zu: %s (%s); %s",
                   i, name, str0(c->subject),
                   trusted ? "the trust store trusts it: whoever holds its key can read and "
                             "alter the traffic; remove it from the trust store"
                           : "something between certmon and the server intercepts the "
                             "connection");
    }
    return 0;
}

static int check_trust(struct ctx *x)
{
    const struct cm_chain *chain = &x->res->tls.chain;
    const struct cm_verify *v = &x->res->tls.verify;
    const struct cm_cert *leaf = &chain->certs[0];
    unsigned explained = v->status & explained_bits(x);
    /* INVALID goes with every reason; once a reason is explained it goes with it. */
    unsigned status = v->status & ~explained & ~(explained ? CM_VERIFY_INVALID : 0u);
    struct names reasons = {""};
    size_t top;

    if (!v->done || v->trusted || !distrusted(status))
        return 0;
    if (leaf->self_signed && chain->count == 1) {
        if (x->policy->allow_self_signed)
            return 0;
        return add(x, NULL, "chain.self_signed", CM_SEV_CRITICAL, 0,
                   "the leaf certificate (%s) is self-signed and not in the trust store",
                   leaf->subject);
    }
    cm_verify_status_foreach(status & ~(unsigned)TIME_BITS, collect, &reasons);
    top = cm_chain_path_top(chain);
    /* Nothing sent issued the leaf, and its issuer is not trusted either: the server leaves
     * out the intermediate that clients need (most clients cannot fetch it). */
    if ((status & CM_VERIFY_SIGNER_NOT_FOUND) && top == 0 && !leaf->self_signed && !leaf->is_ca)
        return add(x, NULL, "chain.incomplete", CM_SEV_CRITICAL, 0,
                   "the server does not send the intermediate that issued the leaf (%s), and "
                   "it is not in the trust store%s",
                   str0(leaf->issuer),
                   chain->count > 1 ? "; the other certificates sent did not issue it" : "");
    if ((status & CM_VERIFY_SIGNER_NOT_FOUND) && !chain->certs[top].self_signed)
        return add(x, NULL, "chain.untrusted", CM_SEV_CRITICAL, (int)top,
                   "the chain does not verify (%s): the issuer of certificate %zu (%s) is "
                   "neither sent nor trusted",
                   reasons.buf, top, chain->certs[top].issuer);
    return add(x, NULL, "chain.untrusted", CM_SEV_CRITICAL, -1,
               "the chain does not verify against the trust store: %s", reasons.buf);
}

static int check_order(struct ctx *x)
{
    const struct cm_chain *chain = &x->res->tls.chain;
    int rc;

    /* Out of order: a certificate whose issuer was sent, but not right after it. Every
     * position counts, the last one included: a last certificate whose issuer was sent before
     * it (a reversed chain) is out of order too. Reported once, at the first such
     * certificate. */
    for (size_t i = 0; i < chain->count; i++) {
        const struct cm_cert *c = &chain->certs[i];
        const struct cm_cert *next = i + 1 < chain->count ? &chain->certs[i + 1] : NULL;
        size_t j;

        if (c->self_signed || (next && cm_cert_issued_by(c, next)))
            continue;
        for (j = 0; j < chain->count; j++)
            if (j != i && j != i + 1 && cm_cert_issued_by(c, &chain->certs[j]))
                break;
        if (j == chain->count)
            continue;
        if (next)
            rc = add(x, NULL, "chain.order", CM_SEV_WARNING, (int)i,
                     "certificate %zu (%s) is followed by %s instead of its issuer, which was "
                     "sent at position %zu; send the chain in issuing order",
                     i, str0(c->subject), str0(next->subject), j);
        else
            rc = add(x, NULL, "chain.order", CM_SEV_WARNING, (int)i,
                     "certificate %zu (%s) comes last, after its issuer, which was sent at "
                     "position %zu; send the chain in issuing order, the server's certificate "
                     "first",
                     i, str0(c->subject), j);
        if (rc < 0)
            return rc;
        break;
    }
    for (size_t i = 1; i < chain->count; i++) {
        if (!is_root(&chain->certs[i]))
            continue;
        rc = add(x, NULL, "chain.root_sent", CM_SEV_INFO, (int)i,
                 "the server also sends the root certificate (%s) at position %zu; clients "
                 "use their own copy, so it only costs bytes",
                 chain->certs[i].subject, i);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* cert.lifetime_long for the leaf c: valid longer than max_lifetime_days, or by default than
 * the CA/Browser Forum allows for its issuance date (a monitor cannot always tell a public
 * root from a private one, so every chain gets the public rule unless told otherwise). A CA
 * certificate may live long. */
static int check_lifetime(struct ctx *x, const struct cm_cert *c, size_t pos)
{
    int64_t lifetime = c->not_after - c->not_before, since;
    int64_t hours = (lifetime % 86400) / 3600;
    char issued[32], valid[48], rule[96], who[300];
    int max;

    if (c->is_ca)
        return 0;
    if (x->policy->max_lifetime_days > 0) {
        max = x->policy->max_lifetime_days;
        snprintf(rule, sizeof(rule), "the policy (max_lifetime_days) allows at most %d day%s", max,
                 max == 1 ? "" : "s");
    } else {
        max = cm_lifetime_limit_days(c->not_before, &since);
        if (since == INT64_MIN) {
            snprintf(rule, sizeof(rule),
                     "certificates issued before 2026-03-15 may be valid at most %d days", max);
        } else {
            cm_time_rfc3339(since, issued, sizeof(issued));
            snprintf(rule, sizeof(rule),
                     "certificates issued from %.10s may be valid at most %d days", issued, max);
        }
    }
    /* notAfter - notBefore, ignoring RFC 5280's inclusive last second: `-days 398` is 398. */
    if (lifetime <= (int64_t)max * 86400)
        return 0;
    cm_time_rfc3339(c->not_before, issued, sizeof(issued));
    if (hours)
        snprintf(valid, sizeof(valid), "%lld days and %lld hour%s", (long long)(lifetime / 86400),
                 (long long)hours, hours == 1 ? "" : "s");
    else
        snprintf(valid, sizeof(valid), "%lld days", (long long)(lifetime / 86400));
    return add(x, NULL, "cert.lifetime_long", CM_SEV_INFO, (int)pos,
               "%s was issued %.10s, valid %s; %s", cert_name(x, c, pos, who, sizeof(who)), issued,
               valid, rule);
}

static int check_leaf_hygiene(struct ctx *x)
{
    const struct cm_cert *leaf = &x->res->tls.chain.certs[0];
    int rc;

    /* A CA certificate as the leaf names no host: chain.ca_as_leaf says what is wrong. */
    if (leaf->san_count == 0 && !ca_as_leaf(&x->res->tls.chain) &&
        (rc = add(x, NULL, "cert.no_san", CM_SEV_WARNING, 0,
                  "the leaf certificate (%s) has no subjectAltName; browsers and modern TLS "
                  "clients ignore the CN, so reissue it with the host names as SANs",
                  leaf->subject)) < 0)
        return rc;
    if ((rc = check_lifetime(x, leaf, 0)) < 0)
        return rc;
    for (size_t i = 0; i < leaf->san_count; i++) {
        if (strncmp(leaf->sans[i], "*.", 2) != 0)
            continue;
        return add(x, NULL, "cert.wildcard", CM_SEV_INFO, 0,
                   "the leaf certificate is a wildcard (%s): its key serves every host it "
                   "covers",
                   leaf->sans[i]);
    }
    return 0;
}

static int check_ocsp(struct ctx *x)
{
    const struct cm_ocsp *o = &x->res->tls.ocsp;
    const struct cm_cert *leaf = &x->res->tls.chain.certs[0];
    char when[32];

    /* A staple is only seen in a completed handshake. */
    if (!x->res->tls.version)
        return 0;
    switch (o->status) {
    case CM_OCSP_REVOKED: {
        struct cm_finding *f;
        int rc;
        /* With revocation off, a revoked staple is no finding either; the staple's own
         * health (missing, invalid) still is: it is how the server is configured. */
        if (x->policy->revocation == CM_REVOCATION_OFF)
            return 0;
        cm_time_rfc3339(o->revoked_at, when, sizeof(when));
        rc = add(x, &f, "cert.revoked", CM_SEV_CRITICAL, 0,
                 "the stapled OCSP response says the leaf certificate was revoked%s%s",
                 o->revoked_at ? " on " : "", o->revoked_at ? when : "");
        if (f) {
            f->rev_source = "staple";
            f->revoked_at = o->revoked_at;
        }
        return rc;
    }
    case CM_OCSP_NONE:
        if (leaf->must_staple)
            return add(x, NULL, "ocsp.must_staple_missing", CM_SEV_CRITICAL, 0,
                       "the leaf certificate requires OCSP stapling (must-staple) but the "
                       "server sends no staple: clients that honour it refuse the connection");
        return add(x, NULL, "ocsp.not_stapled", CM_SEV_INFO, 0,
                   "the server staples no OCSP response");
    case CM_OCSP_BAD:
        return add(x, NULL, "ocsp.invalid", CM_SEV_WARNING, 0,
                   "the stapled OCSP response cannot be parsed");
    default:
        if (!o->verified)
            return add(x, NULL, "ocsp.invalid", CM_SEV_WARNING, 0,
                       "the stapled OCSP response (%s) does not verify: wrong signer, wrong "
                       "certificate or out of date",
                       cm_ocsp_status_name(o->status));
        return 0;
    }
}

static void append(char *buf, size_t len, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* cert.revoked, revocation.unavailable, revocation.crl_stale and revocation.none from what
 * the revocation checker recorded in the result (revocation.h); nothing when it did not run.
 * A revoked staple is check_ocsp's. */
static int check_revocation(struct ctx *x)
{
    const struct cm_revocation *rv = x->res->revocation;
    const struct cm_chain *chain = &x->res->tls.chain;
    char name[400], when[32], why[1200];
    int rc = 0;

    /* Only AUTO looks at fetched evidence; a result judged under another mode (a target whose
     * mode changed by a reload) may still carry some. */
    if (x->policy->revocation != CM_REVOCATION_AUTO)
        return 0;
    for (size_t i = 0; rv && i < rv->count && i < chain->count && rc == 0; i++) {
        const struct cm_rev_cert *c = &rv->certs[i];
        struct cm_finding *f;
        size_t used = 0;

        cert_name(x, &chain->certs[i], i, name, sizeof(name));
        why[0] = '\0';
        for (size_t k = 0; k < c->error_count; k++)
            append(why, sizeof(why), &used, "%s%s", k ? "; " : "", c->errors[k]);
        switch (c->status) {
        case CM_REV_REVOKED:
            if (c->source == CM_REV_SRC_STAPLE)
                break;
            cm_time_rfc3339(c->revoked_at, when, sizeof(when));
            rc = add(x, &f, "cert.revoked", CM_SEV_CRITICAL, (int)i,
                     "%s is revoked%s%s%s%s, says its %s", name, c->revoked_at ? " since " : "",
                     c->revoked_at ? when : "", c->reason ? ": " : "", c->reason ? c->reason : "",
                     c->source == CM_REV_SRC_CRL ? "CRL" : "OCSP responder");
            if (f) {
                f->rev_source = cm_rev_source_name(c->source);
                f->revoked_at = c->revoked_at;
                f->rev_reason = c->reason;
            }
            break;
        case CM_REV_UNAVAILABLE:
            if (c->crl_stale) {
                cm_time_rfc3339(c->next_update, when, sizeof(when));
                rc = add(x, NULL, "revocation.crl_stale", CM_SEV_WARNING, (int)i,
                         "the only CRL available for %s is out of date (nextUpdate %s): its "
                         "revocation status is unknown%s%s%s",
                         name, when, why[0] ? " (" : "", why, why[0] ? ")" : "");
            } else {
                rc = add(x, NULL, "revocation.unavailable", CM_SEV_WARNING, (int)i,
                         "the revocation status of %s cannot be checked: %s", name,
                         why[0] ? why : "no source answered");
            }
            break;
        case CM_REV_NONE:
            rc = add(x, NULL, "revocation.none", CM_SEV_INFO, (int)i,
                     "%s publishes neither a CRL nor an OCSP responder", name);
            break;
        default:
            break;
        }
    }
    return rc;
}

static bool any_version(const struct cm_posture *p)
{
    for (int v = 0; v < CM_PV_COUNT; v++)
        if (p->version[v] == CM_TRI_YES)
            return true;
    return false;
}

/* True when the posture pass completed any handshake or got any accepting answer, or saw a
 * bad DH group (which a client may be refused on). */
static bool posture_accepts_any(const struct cm_posture *p)
{
    if (any_version(p))
        return true;
    for (int w = 0; w < CM_WEAK_COUNT; w++)
        if (p->weak[w] == CM_TRI_YES)
            return true;
    return p->dhe == CM_TRI_YES || p->dh_group > CM_DH_GROUP_GOOD;
}

/* Appends to buf (used bytes in *used) what fmt says; output that does not fit is cut. */
static void append(char *buf, size_t len, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void append(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*used >= len)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf + *used, len - *used, fmt, ap);
    va_end(ap);
    *used = n < 0 ? *used : *used + (size_t)n >= len ? len - 1 : *used + (size_t)n;
}

/* Below this many bits a DH group is dh.weak, a warning; below DH_CRIT_BITS critical. */
#define DH_WARN_BITS 2048
#define DH_CRIT_BITS 1024

/* What a posture pass run after a refused main handshake found the server does accept:
 * "anonymous cipher suites (TLS1.2, TLS1.0)", "SSL3.0", "DHE with a 512-bit group (TLS1.2)".
 * The weak things are the reason a current client is refused. */
static void accepted_summary(const struct cm_posture *p, char *buf, size_t len)
{
    static const char *const what[CM_WEAK_COUNT] = {
        [CM_WEAK_RC4] = "RC4",        [CM_WEAK_3DES] = "3DES",
        [CM_WEAK_NULL] = "NULL",      [CM_WEAK_EXPORT] = "export-grade",
        [CM_WEAK_ANON] = "anonymous",
    };
    size_t used = 0, nweak = 0, nvers = 0;
    bool described;

    buf[0] = '\0';
    for (int w = 0; w < CM_WEAK_COUNT; w++)
        if (p->weak[w] == CM_TRI_YES)
            append(buf, len, &used, "%s%s", nweak++ ? "/" : "", what[w]);
    if (nweak)
        append(buf, len, &used, " cipher suites");
    else if (p->dh_bits > 0 && p->dh_bits < DH_WARN_BITS)
        append(buf, len, &used, "DHE with a %u-bit group", p->dh_bits);
    else if (p->dh_group > CM_DH_GROUP_GOOD)
        append(buf, len, &used, "DHE with a bad group (%s)",
               p->dh_group == CM_DH_GROUP_COMPOSITE     ? "a modulus that is not prime"
               : p->dh_group == CM_DH_GROUP_SMALL_ORDER ? "a generator of small order"
                                                        : "a modulus that is not a safe prime");
    /* The versions: in parentheses after what was described, alone otherwise ("SSL3.0"). */
    described = used > 0;
    for (int v = 0; v < CM_PV_COUNT; v++)
        if (p->version[v] == CM_TRI_YES)
            append(buf, len, &used, "%s%s",
                   nvers++     ? ", "
                   : described ? " ("
                               : "",
                   cm_pv_name((enum cm_pv)v));
    if (nvers && described)
        append(buf, len, &used, ")");
    /* The group of anonymous or weak suites, when it is weak too. */
    if (nweak && p->dh_bits > 0 && p->dh_bits < DH_WARN_BITS)
        append(buf, len, &used, ", with a %u-bit DH group", p->dh_bits);
}

/* The ids check_failure makes (cm_finding_is_failure): keep the two in step. */
static const char *const failure_ids[] = {"probe.failed", "mtls.client_cert_required",
                                          "mtls.client_cert_rejected"};

bool cm_finding_is_failure(const char *id)
{
    for (size_t i = 0; id && i < sizeof(failure_ids) / sizeof(failure_ids[0]); i++)
        if (!strcmp(id, failure_ids[i]))
            return true;
    return false;
}

/* The ids check_client_cert makes: keep the two in step. */
static const char *const client_cert_ids[] = {"mtls.client_cert_expiring",
                                              "mtls.client_cert_expired"};

bool cm_finding_judged_without_cert(const char *id)
{
    for (size_t i = 0; id && i < sizeof(client_cert_ids) / sizeof(client_cert_ids[0]); i++)
        if (!strcmp(id, client_cert_ids[i]))
            return true;
    return cm_finding_is_failure(id);
}

/* A failed probe is probe.failed, unless the failure is the server refusing us for want of
 * a (good) client certificate: that has findings of its own, which say what to do. When the
 * server refused every version and suite a current client offers and the posture pass found
 * what it does accept, the message says so: the posture findings carry the verdict. */
static int check_failure(struct ctx *x)
{
    const struct cm_probe_result *res = x->res;
    const char *msg = res->error_message ? res->error_message
                      : res->path        ? "the file cannot be read"
                                         : "probe failed";
    char accepted[256];

    if (res->error_kind == CM_ERRK_NONE)
        return 0;
    if ((res->error_kind == CM_ERRK_TLS || res->error_kind == CM_ERRK_IO) &&
        res->tls.client_cert_requested) {
        if (res->client_chain.count == 0)
            return add(x, NULL, "mtls.client_cert_required", CM_SEV_CRITICAL, -1,
                       "the server requires a client certificate (mTLS) and none is "
                       "configured: %s",
                       msg);
        /* GnuTLS presents our certificate only when its issuer is among the CAs the server
         * names; otherwise it sends none, and the server refuses that. */
        if (!res->tls.client_cert_sent)
            return add(x, NULL, "mtls.client_cert_rejected", CM_SEV_CRITICAL, -1,
                       "the server requires a client certificate from a CA it names, and ours "
                       "(%s, issued by %s) is not from one of them, so none was sent: %s",
                       str0(res->client_chain.certs[0].subject),
                       str0(res->client_chain.certs[0].issuer), msg);
        return add(x, NULL, "mtls.client_cert_rejected", CM_SEV_CRITICAL, -1,
                   "the server refused our client certificate (%s): %s",
                   str0(res->client_chain.certs[0].subject), msg);
    }
    if (res->tls_refused && res->posture) {
        if (!posture_accepts_any(res->posture))
            return add(x, NULL, "probe.failed", CM_SEV_CRITICAL, -1,
                       "%s; the server refuses every protocol version and cipher suite a "
                       "current client offers, and the posture pass found nothing weaker it "
                       "accepts",
                       msg);
        accepted_summary(res->posture, accepted, sizeof(accepted));
        return add(x, NULL, "probe.failed", CM_SEV_CRITICAL, -1,
                   "%s; the server refuses every protocol version and cipher suite a current "
                   "client offers: it accepts only %s (see the findings below)",
                   msg, accepted[0] ? accepted : "what the posture findings list");
    }
    return add(x, NULL, "probe.failed", CM_SEV_CRITICAL, -1, "%s", msg);
}

/* Our own client certificate: it must stay valid for the server to keep accepting us. */
static int check_client_cert(struct ctx *x)
{
    const struct cm_chain *ours = &x->res->client_chain;
    char when[32], days[32], why[96];
    enum cm_severity sev;
    struct cm_finding *f;
    int rc;

    for (size_t i = 0; i < ours->count; i++) {
        const struct cm_cert *c = &ours->certs[i];
        int64_t left = c->not_after - (int64_t)x->now;
        int64_t d = cm_cert_days_left(c, x->now);

        cm_time_rfc3339(c->not_after, when, sizeof(when));
        if (left < 0) {
            rc = add(x, &f, "mtls.client_cert_expired", CM_SEV_CRITICAL, -1,
                     "our client certificate%s (%s) expired on %s", i ? " chain" : "",
                     str0(c->subject), when);
        } else if ((sev = expiry_level(x->policy, c, left, why, sizeof(why))) != CM_SEV_OK) {
            plural_days(d, days, sizeof(days));
            rc = add(x, &f, "mtls.client_cert_expiring", sev, -1,
                     "our client certificate%s (%s) expires in %s, on %s; %s", i ? " chain" : "",
                     str0(c->subject), days, when, why);
        } else {
            continue;
        }
        if (rc < 0)
            return rc;
        if (f) {
            f->has_days_left = true;
            f->days_left = d;
        }
    }
    return 0;
}

static int check_versions(struct ctx *x, const struct cm_posture *p)
{
    static const struct {
        enum cm_pv v;
        enum cm_severity sev;
        const char *why;
    } legacy[] = {
        {CM_PV_SSL30, CM_SEV_CRITICAL,
         "broken since POODLE (2014) and prohibited by RFC 7568; turn it off"},
        {CM_PV_TLS10, CM_SEV_WARNING,
         "deprecated by RFC 8996; turn it off once no client needs it"},
        {CM_PV_TLS11, CM_SEV_WARNING,
         "deprecated by RFC 8996; turn it off once no client needs it"},
    };
    struct cm_finding *f;
    int rc;

    for (size_t i = 0; i < sizeof(legacy) / sizeof(legacy[0]); i++) {
        if (p->version[legacy[i].v] != CM_TRI_YES)
            continue;
        rc = add(x, &f, "protocol.legacy", legacy[i].sev, -1, "the server accepts %s, %s",
                 cm_pv_name(legacy[i].v), legacy[i].why);
        if (rc < 0)
            return rc;
        if (f)
            f->version = cm_pv_name(legacy[i].v);
    }
    /* Only when both checks ran and both were refused: a check that could not run proves
     * nothing. */
    if (p->version[CM_PV_TLS12] == CM_TRI_NO && p->version[CM_PV_TLS13] == CM_TRI_NO)
        return add(x, NULL, "protocol.no_modern", CM_SEV_CRITICAL, -1,
                   "the server accepts neither TLS 1.2 nor TLS 1.3: current browsers and TLS "
                   "libraries refuse to connect; enable TLS 1.2 and 1.3");
    if (p->version[CM_PV_TLS13] == CM_TRI_NO && p->version[CM_PV_TLS12] == CM_TRI_YES)
        return add(x, NULL, "protocol.no_tls13", CM_SEV_INFO, -1,
                   "the server does not accept TLS 1.3 (TLS 1.2 only); enabling it gives "
                   "faster, simpler handshakes");
    return 0;
}

static int check_ciphers(struct ctx *x, const struct cm_posture *p)
{
    static const char *const why[CM_WEAK_COUNT] = {
        [CM_WEAK_RC4] = "RC4 cipher suites (biased keystream; prohibited by RFC 7465)",
        [CM_WEAK_3DES] = "3DES cipher suites (64-bit blocks: Sweet32)",
        [CM_WEAK_NULL] = "NULL cipher suites, which do not encrypt at all",
        [CM_WEAK_EXPORT] = "export-grade cipher suites (40 and 56 bits: FREAK, Logjam)",
        [CM_WEAK_ANON] = "anonymous key exchange, which authenticates no server: anyone in the "
                         "middle can pose as it",
    };
    struct cm_finding *f;
    int rc;

    for (int w = 0; w < CM_WEAK_COUNT; w++) {
        if (p->weak[w] != CM_TRI_YES)
            continue;
        rc = add(x, &f, "cipher.weak", CM_SEV_CRITICAL, -1,
                 "the server accepts %s; remove them from its cipher list", why[w]);
        if (rc < 0)
            return rc;
        if (f)
            f->cipher_class = cm_weak_name((enum cm_weak)w);
    }
    if (p->forward_secrecy == CM_TRI_NO &&
        (rc = add(x, NULL, "cipher.no_forward_secrecy", CM_SEV_WARNING, -1,
                  "the server offers only static-RSA key exchange: whoever gets its private key "
                  "can decrypt recorded traffic; enable ECDHE cipher suites (and TLS 1.3)")) < 0)
        return rc;
    if (p->aead == CM_TRI_NO &&
        (rc = add(x, NULL, "cipher.no_aead", CM_SEV_WARNING, -1,
                  "the server offers no AEAD cipher suite (AES-GCM, ChaCha20-Poly1305) and no TLS "
                  "1.3: only CBC suites (padding oracles such as Lucky13) or stream ciphers; "
                  "enable ECDHE with AES-GCM and TLS 1.3")) < 0)
        return rc;
    return 0;
}

/* The posture pass: protocol versions, cipher classes, DH group, renegotiation. */
static int check_posture(struct ctx *x)
{
    const struct cm_posture *p = x->res->posture;
    struct cm_finding *f;
    int rc;

    /* After a failed handshake the pass only explains the failure: a pass that found nothing
     * the server accepts (a peer that does not speak TLS to us at all) claims nothing. */
    if (!p || (x->res->error_kind != CM_ERRK_NONE && !posture_accepts_any(p)))
        return 0;
    /* After a refused handshake in which no version was accepted either (every handshake
     * failed on a bad DH group), nothing is known about the versions. */
    if (x->res->error_kind == CM_ERRK_NONE || any_version(p))
        if ((rc = check_versions(x, p)) < 0)
            return rc;
    if ((rc = check_ciphers(x, p)) < 0)
        return rc;
    if (p->dh_group > CM_DH_GROUP_GOOD) {
        /* A broken group is broken at any size: one critical finding that says why. */
        rc = add(x, &f, "dh.weak", CM_SEV_CRITICAL, -1,
                 "the server's finite-field Diffie-Hellman group%s%.0u%s is unsafe: %s; use a "
                 "standard group (RFC 7919 ffdhe2048 or larger) or ECDHE only",
                 p->dh_bits ? " (" : "", p->dh_bits, p->dh_bits ? " bits)" : "",
                 cm_dh_group_reason(p->dh_group));
        if (rc < 0)
            return rc;
        if (f)
            f->dh_bits = p->dh_bits;
    } else if (p->dh_bits > 0 && p->dh_bits < DH_WARN_BITS) {
        rc = add(x, &f, "dh.weak", p->dh_bits < DH_CRIT_BITS ? CM_SEV_CRITICAL : CM_SEV_WARNING, -1,
                 "the server's finite-field Diffie-Hellman group has %u bits, under %d "
                 "(Logjam); use a 2048-bit or larger group (RFC 7919 ffdhe2048) or ECDHE only",
                 p->dh_bits, DH_WARN_BITS);
        if (rc < 0)
            return rc;
        if (f)
            f->dh_bits = p->dh_bits;
    }
    if (p->secure_renegotiation == CM_TRI_NO)
        return add(x, NULL, "renegotiation.insecure", CM_SEV_WARNING, -1,
                   "the server does not support secure renegotiation (RFC 5746), which leaves "
                   "it open to renegotiation injection; update its TLS library");
    return 0;
}

/* A file target's keystore integrity and paired private key (filecert.h's pairing rules). */
static int check_keys(struct ctx *x)
{
    const struct cm_file_info *fi = &x->res->file;
    const struct cm_key_check *k = &fi->key;
    const char *kind = fi->format == CM_FILE_JKS ? "Java KeyStore" : "PKCS#12 file";
    char path[300], why[300];
    int rc;

    if (fi->integrity == CM_INTEGRITY_FAILED &&
        (rc = add(x, NULL, "keystore.integrity_failed", CM_SEV_CRITICAL, -1,
                  "the %s's integrity digest does not match: the password is wrong, or the file "
                  "was altered after it was written",
                  kind)) < 0)
        return rc;
    if ((fi->integrity == CM_INTEGRITY_UNVERIFIED || fi->integrity == CM_INTEGRITY_ABSENT) &&
        (rc = add(x, NULL, "keystore.unverified", CM_SEV_INFO, -1, "%s",
                  fi->integrity == CM_INTEGRITY_ABSENT
                      ? "the PKCS#12 file has no MAC, so its integrity cannot be verified"
                      : "the Java KeyStore's integrity digest was not verified: it needs the "
                        "store password (set password or password_file)")) < 0)
        return rc;
    if (k->status == CM_KEY_NONE || x->res->tls.chain.count == 0)
        return 0;
    cm_text_escape(k->path ? k->path : "", path, sizeof(path));
    if (k->status == CM_KEY_MISMATCH)
        return add(x, NULL, "key.mismatch", CM_SEV_CRITICAL, 0,
                   "the private key in %s (%s, public key sha256 %s) does not belong to the "
                   "certificate %s (public key sha256 %s)",
                   path, str0(k->type), str0(k->spki_sha256),
                   str0(x->res->tls.chain.certs[0].subject),
                   str0(x->res->tls.chain.certs[0].spki_sha256));
    if (k->status == CM_KEY_UNREADABLE) {
        cm_text_escape(k->error ? k->error : "", why, sizeof(why));
        return add(x, NULL, "key.unreadable", CM_SEV_WARNING, 0,
                   "the private key %s paired with the certificate cannot be used: %s", path, why);
    }
    return 0;
}
static int check_change(struct ctx *x);

/* A file target (res->path): the failure, if any, then each certificate on its own, and the
 * lifetime of the first. A file was not served, verified or stapled, so no trust, order,
 * host, other leaf, OCSP, mTLS or posture check applies. */
static int analyze_file(struct ctx *x)
{
    const struct cm_chain *chain = &x->res->tls.chain;
    int rc;

    if ((rc = check_failure(x)) < 0)
        return rc;
    for (size_t i = 0; i < chain->count; i++)
        if ((rc = check_validity(x, &chain->certs[i], i)) < 0 ||
            (rc = check_strength(x, &chain->certs[i], i)) < 0)
            return rc;
    /* The first certificate of a file is a server's own when it is no CA (cert.pem,
     * fullchain.pem); check_lifetime skips a CA bundle's. */
    if (chain->count && (rc = check_lifetime(x, &chain->certs[0], 0)) < 0)
        return rc;
    if ((rc = check_keys(x)) < 0)
        return rc;
    /* The daemon follows a file's first certificate like an endpoint's leaf. */
    if ((rc = check_change(x)) < 0)
        return rc;
    return check_revocation(x);
}

/* ACME renewal information (RFC 9773) for the leaf, as the caller fetched it into res->ari.
 * The window only counts for the certificate it was asked about: a leaf served since (a
 * renewal) is judged on its own next lookup. */
static int check_ari(struct ctx *x)
{
    const struct cm_ari *a = x->res->ari;
    const struct cm_cert *leaf = &x->res->tls.chain.certs[0];
    char start[32], end[32], expl[300] = "";
    int64_t now = (int64_t)x->now;

    if (!a)
        return 0;
    if (!a->has_window) {
        char why[600];
        cm_text_escape(a->error ? a->error : "no suggested window", why, sizeof(why));
        return add(x, NULL, "ari.unavailable", CM_SEV_INFO, 0, "%s", why);
    }
    if (!a->cert_sha256 || !leaf->sha256 || strcmp(a->cert_sha256, leaf->sha256) != 0)
        return 0;
    cm_time_rfc3339(a->window_start, start, sizeof(start));
    cm_time_rfc3339(a->window_end, end, sizeof(end));
    if (a->explanation_url) {
        char esc[260];
        bool whole = cm_text_escape(a->explanation_url, esc, sizeof(esc));
        snprintf(expl, sizeof(expl), "; explanation: %s%s", esc, whole ? "" : "...");
    }
    if (now > a->window_end)
        return add(x, NULL, "cert.renewal_window_passed", CM_SEV_WARNING, 0,
                   "the CA suggested renewing the leaf certificate between %s and %s; that "
                   "window ended %lld hour%s ago and the same certificate is still served%s",
                   start, end, (long long)((now - a->window_end) / 3600),
                   (now - a->window_end) / 3600 == 1 ? "" : "s", expl);
    if (now >= a->window_start)
        return add(x, NULL, "cert.renewal_window_open", CM_SEV_INFO, 0,
                   "the CA suggests renewing the leaf certificate now: its renewal window runs "
                   "from %s to %s%s",
                   start, end, expl);
    return 0;
}

/* Whether the space-separated list holds hex (64 characters). */
static bool pinned(const char *pins, const char *hex)
{
    size_t l = hex ? strlen(hex) : 0;

    if (l != 64)
        return false;
    for (const char *p = pins; (p = strstr(p, hex)); p += l)
        if ((p == pins || p[-1] == ' ') && (p[l] == ' ' || p[l] == '\0'))
            return true;
    return false;
}

/* pin_sha256: the leaf certificate, or any public key the server sent, must be pinned (the
 * way HPKP pinned keys: pinning an intermediate's key survives the leaf's renewals). */
static int check_pins(struct ctx *x)
{
    const struct cm_chain *chain = &x->res->tls.chain;
    const struct cm_cert *leaf = &chain->certs[0];
    size_t n = 1;

    if (!x->policy->pins || chain->count == 0 || pinned(x->policy->pins, leaf->sha256))
        return 0;
    for (size_t i = 0; i < chain->count; i++)
        if (pinned(x->policy->pins, chain->certs[i].spki_sha256))
            return 0;
    for (const char *p = x->policy->pins; (p = strchr(p, ' ')); p++)
        n++;
    return add(x, NULL, "cert.pin_mismatch", CM_SEV_CRITICAL, 0,
               "the leaf certificate (sha256 %s, public key sha256 %s) matches none of the %zu "
               "pin%s of pin_sha256, and no key the server sent does",
               str0(leaf->sha256), str0(leaf->spki_sha256), n, n == 1 ? "" : "s");
}

/* pin = "tofu": the daemon compared the served leaf with the one pinned on first use and
 * attached the pin when they differ (res->pin_miss). */
static int check_tofu(struct ctx *x)
{
    const struct cm_pin_miss *p = x->res->pin_miss;
    const struct cm_cert *leaf = &x->res->tls.chain.certs[0];
    char at[32];

    if (!p)
        return 0;
    cm_time_rfc3339(p->pinned_at, at, sizeof(at));
    return add(x, NULL, "cert.pin_mismatch", CM_SEV_CRITICAL, 0,
               "the leaf certificate (sha256 %s, public key sha256 %s) is not the one pinned on "
               "first use on %s (sha256 %s, public key sha256 %s), nor a renewal of it with the "
               "same key or by the same issuer",
               str0(leaf->sha256), str0(leaf->spki_sha256), at, str0(p->sha256),
               p->spki_sha256 && *p->spki_sha256 ? p->spki_sha256 : "unknown");
}

/* expect_file: the daemon read the file that should be served and watched since when it has
 * held a newer certificate than the one served (res->deploy). */
static int check_deploy(struct ctx *x)
{
    const struct cm_deploy *d = x->res->deploy;
    const struct cm_cert *leaf = &x->res->tls.chain.certs[0];
    char path[1100], why[1100], on[32], file_until[32], until[32];

    if (!d)
        return 0;
    cm_text_escape(d->path ? d->path : "", path, sizeof(path));
    if (d->error) {
        cm_text_escape(d->error, why, sizeof(why));
        return add(x, NULL, "deploy.file_unreadable", CM_SEV_WARNING, 0,
                   "expect_file %s cannot be compared with the served certificate: %s", path, why);
    }
    if (!d->newer_since || (int64_t)x->now - d->newer_since < d->grace_s)
        return 0;
    cm_time_rfc3339(d->cert.not_before, on, sizeof(on));
    cm_time_rfc3339(d->cert.not_after, file_until, sizeof(file_until));
    cm_time_rfc3339(leaf->not_after, until, sizeof(until));
    return add(x, NULL, "deploy.stale", CM_SEV_WARNING, 0,
               "renewed on disk on %s (%s holds sha256 %s, valid until %s) but the server still "
               "serves sha256 %s, valid until %s; the new certificate has waited longer than "
               "deploy_grace: reload or restart the server",
               on, path, str0(d->cert.sha256), file_until, str0(leaf->sha256), until);
}

/* A material change of the served leaf within the change window: the daemon compared it with
 * the leaf served before and attached what it found (res->change). */
static int check_change(struct ctx *x)
{
    const struct cm_change *c = x->res->change;
    char what[1100], at[32];

    if (!c || (int64_t)x->now >= c->until)
        return 0;
    cm_text_escape(c->what ? c->what : "", what, sizeof(what));
    cm_time_rfc3339(c->at, at, sizeof(at));
    return add(x, NULL, "cert.changed", CM_SEV_WARNING, 0,
               "the served leaf certificate changed on %s, and not as a renewal: %s; old "
               "sha256 %s, new sha256 %s",
               at, what, str0(c->old_sha256), str0(c->new_sha256));
}

int cm_analyze(const struct cm_probe_result *res, const struct cm_policy *policy, time_t now,
               struct cm_findings *out)
{
    struct ctx x = {res, policy, now, out};
    const struct cm_chain *chain = &res->tls.chain;
    int rc;

    if (res->path)
        return analyze_file(&x);

    if ((rc = check_failure(&x)) < 0 || (rc = check_client_cert(&x)) < 0)
        return rc;
    for (size_t i = 0; i < chain->count; i++) {
        if ((rc = check_validity(&x, &chain->certs[i], i)) < 0 ||
            (rc = check_strength(&x, &chain->certs[i], i)) < 0)
            return rc;
    }
    if (chain->count == 0)
        return check_posture(&x);
    if ((rc = check_anchor(&x)) < 0 || (rc = check_trust(&x)) < 0 ||
        (rc = check_ca_as_leaf(&x)) < 0 || (rc = check_order(&x)) < 0 ||
        (rc = check_interception(&x)) < 0 || (rc = check_purpose(&x)) < 0)
        return rc;
    /* A CA certificate as the leaf matches no host; chain.ca_as_leaf explains it. */
    if (res->tls.verify.done && !res->tls.verify.hostname_match && !ca_as_leaf(chain) &&
        (rc = add(&x, NULL, "host.mismatch", CM_SEV_CRITICAL, 0,
                  "the leaf certificate (%s) is not valid for %s", str0(chain->certs[0].subject),
                  str0(res->verify_name))) < 0)
        return rc;
    if ((rc = check_leaf_hygiene(&x)) < 0 || (rc = check_ocsp(&x)) < 0 ||
        (rc = check_revocation(&x)) < 0)
        return rc;
    if ((rc = check_ari(&x)) < 0 || (rc = check_change(&x)) < 0 || (rc = check_pins(&x)) < 0 ||
        (rc = check_tofu(&x)) < 0 || (rc = check_deploy(&x)) < 0)
        return rc;
    return check_posture(&x);
}

int cm_analyze_consistency(const struct cm_probe_result *res,
                           const struct cm_probe_result *const *group, size_t n,
                           const struct cm_policy *policy, struct cm_findings *out)
{
    struct ctx x = {res, policy, 0, out};
    const char *mine, *other = NULL, *other_addr = NULL;
    size_t distinct = 1;

    if (res->tls.chain.count == 0 || !res->tls.chain.certs[0].sha256)
        return 0;
    mine = res->tls.chain.certs[0].sha256;
    for (size_t i = 0; i < n; i++) {
        const struct cm_probe_result *r = group[i];
        const char *leaf;
        if (!r || r == res || r->tls.chain.count == 0 || !(leaf = r->tls.chain.certs[0].sha256))
            continue;
        if (strcmp(leaf, mine) != 0) {
            distinct++;
            if (!other) {
                other = leaf;
                other_addr = r->address;
            }
        }
    }
    if (!other)
        return 0;
    return add(&x, NULL, "endpoint.inconsistent", CM_SEV_WARNING, 0,
               "the addresses behind %s do not all present the same leaf certificate: %s "
               "presents %.16s..., %s presents %.16s...; a stale node may be serving an old "
               "certificate",
               str0(res->host), res->address[0] ? res->address : "this address", mine,
               str0(other_addr), other);
}

void cm_findings_clear(struct cm_findings *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->count; i++) {
        free(f->items[i].message);
        free(f->items[i].algorithm);
    }
    free(f->items);
    f->items = NULL;
    f->count = 0;
}

enum cm_status cm_findings_status(const struct cm_findings *f)
{
    enum cm_status st = CM_STATUS_OK;

    for (size_t i = 0; i < f->count; i++) {
        if (f->items[i].severity == CM_SEV_CRITICAL)
            return CM_STATUS_CRITICAL;
        if (f->items[i].severity == CM_SEV_WARNING)
            st = CM_STATUS_WARNING;
    }
    return st;
}

enum cm_status cm_result_status(const struct cm_probe_result *res, const struct cm_findings *f)
{
    return res->error_kind == CM_ERRK_INTERNAL ? CM_STATUS_UNKNOWN : cm_findings_status(f);
}

static const char *const severity_names[] = {"ok", "info", "warning", "critical"};

const char *cm_severity_name(enum cm_severity s)
{
    return (unsigned)s < 4 ? severity_names[s] : "ok";
}

int cm_severity_parse(const char *name, enum cm_severity *out)
{
    for (int i = CM_SEV_INFO; i <= CM_SEV_CRITICAL; i++) {
        if (strcmp(name, severity_names[i]) == 0) {
            *out = (enum cm_severity)i;
            return 0;
        }
    }
    return CM_EBADARG;
}

const char *cm_status_name(enum cm_status s)
{
    switch (s) {
    case CM_STATUS_OK:
        return "ok";
    case CM_STATUS_WARNING:
        return "warning";
    case CM_STATUS_CRITICAL:
        return "critical";
    default:
        return "unknown";
    }
}
