/* Findings: what is wrong with what a probe saw, judged under a policy at a given time.
 * Pure: no I/O, time is a parameter. Shared by `check`, the metrics and the alerts. The
 * catalogue of finding ids is documented in docs/findings.md; ids are never renamed. */
#ifndef CERTMON_ANALYZE_H
#define CERTMON_ANALYZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "certmon/probe/result.h"

enum cm_severity { CM_SEV_OK = 0, CM_SEV_INFO, CM_SEV_WARNING, CM_SEV_CRITICAL };

/* Target status as the monitoring-plugins guidelines number it (also the exit code). */
enum cm_status {
    CM_STATUS_OK = 0,
    CM_STATUS_WARNING = 1,
    CM_STATUS_CRITICAL = 2,
    CM_STATUS_UNKNOWN = 3
};

/* One entry of the catalogue: every id the analyser can emit. */
struct cm_finding_def {
    const char *id;
    enum cm_severity severity; /* default; key.weak and cert.expiring vary with the case */
    const char *summary;
};

extern const struct cm_finding_def cm_finding_catalogue[];
extern const size_t cm_finding_catalogue_len;

/* The catalogue entry for id (or for the id it was renamed to: "ocsp.revoked" is
 * "cert.revoked"), or NULL. */
const struct cm_finding_def *cm_finding_lookup(const char *id);

/* The catalogue id closest to a misspelt one (for "did you mean"), or NULL. */
const char *cm_finding_suggest(const char *id);

/* Whether id says how a probe failed: probe.failed, and the mTLS refusals that replace it
 * (mtls.client_cert_required, mtls.client_cert_rejected). These are the findings a result
 * without a certificate always judges; it says nothing about the others (the certificate's,
 * the chain's, the endpoint's), which the alerts keep through such a result
 * (cm_alerts_observe_without_cert). */
bool cm_finding_is_failure(const char *id);

/* Whether every result judges id, with a certificate from the server or without: the failure
 * findings (cm_finding_is_failure) and those of our own client certificate
 * (mtls.client_cert_expiring, mtls.client_cert_expired), which the configuration's file
 * decides. A result without a certificate resolves the alerts of these only. */
bool cm_finding_judged_without_cert(const char *id);

/* A per-id adjustment: drop the finding, or give it another severity. */
struct cm_policy_rule {
    const char *id; /* catalogue id (static) */
    bool ignore;
    enum cm_severity severity; /* when !ignore */
};

/* Which revocation evidence a target is judged on (config key `revocation`). */
enum cm_revocation_mode {
    CM_REVOCATION_AUTO = 0,    /* the staple, else the OCSP responder and the CRLs (fetched) */
    CM_REVOCATION_STAPLE_ONLY, /* the stapled OCSP response only: nothing is fetched */
    CM_REVOCATION_OFF,         /* none: no cert.revoked and no revocation.* finding */
};

struct cm_policy {
    /* A certificate is expiring (warning) when its time left is under the smaller of
     * warn_days and warn_lifetime_pct percent of its lifetime (not_after - not_before), and
     * critical under the smaller of crit_days and crit_lifetime_pct percent: a fixed number of
     * days would call a 6-day certificate "expiring" all its life. 0 days turns a level off. */
    int warn_days;              /* 0..3650 */
    int crit_days;              /* 0..3650 */
    unsigned warn_lifetime_pct; /* 1..100; 100 (or 0, by hand): the day rule alone */
    unsigned crit_lifetime_pct; /* 1..100, the same */
    /* cert.lifetime_long: a leaf valid longer than this many days; 0 follows the CA/Browser
     * Forum schedule by issuance date (cm_lifetime_limit_days). */
    int max_lifetime_days;
    unsigned min_rsa_bits;        /* RSA and DSA keys below this are key.weak, critical */
    unsigned min_ec_bits;         /* EC keys below this are key.weak, warning */
    bool allow_self_signed;       /* a self-signed leaf is not a finding */
    /* Revocation: the analyser reads the mode (findings of revocation data the result holds
     * count only under AUTO; a revoked staple under AUTO and STAPLE_ONLY). The timeout is
     * not judged: it is the daemon's budget for one target's revocation fetches, kept here
     * because it is set where the mode is (global, per target, per file entry). */
    enum cm_revocation_mode revocation;
    uint64_t revocation_timeout_ms; /* 100 ms .. 10 min; default 10 s */
    struct cm_policy_rule *rules; /* owned; later rules for the same id win */
    size_t rule_count;
    const char *interception_roots; /* borrowed: more known interception roots, a list in the
                                     * format of data/interception-roots.txt that
                                     * cm_spki_list_check accepted; NULL: the built-in ones
                                     * only. It outlives every analysis under the policy. */
    const char *pins; /* borrowed: pin_sha256, SHA-256 values (lowercase hex, space-separated)
                       * of the leaf or of any key sent; NULL: no pinning (cert.pin_mismatch) */
};

#define CM_POLICY_DEFAULT                                                                          \
    {                                                                                              \
        .warn_days = 30, .crit_days = 7, .warn_lifetime_pct = 33, .crit_lifetime_pct = 10,         \
        .max_lifetime_days = 0, .min_rsa_bits = 2048, .min_ec_bits = 256,                          \
        .allow_self_signed = false, .revocation = CM_REVOCATION_AUTO,                              \
        .revocation_timeout_ms = 10000, .rules = NULL, .rule_count = 0, .interception_roots = NULL, \
        .pins = NULL                                                                              \
    }

/* Which rule set an expiry threshold: the fixed number of days, or the share of the
 * certificate's lifetime (the smaller one wins; days on a tie). */
enum cm_expiry_rule { CM_EXPIRY_DAYS = 0, CM_EXPIRY_LIFETIME };

/* The time-left thresholds of c under policy, in seconds: warning below *warn_s, critical
 * below *crit_s (0: that level is off). The rule that set each goes to *warn_rule and
 * *crit_rule (either may be NULL). A certificate whose not_after is not after its not_before
 * has no lifetime: a lifetime rule in force makes its threshold 0. */
void cm_expiry_thresholds(const struct cm_cert *c, const struct cm_policy *policy, int64_t *warn_s,
                          int64_t *crit_s, enum cm_expiry_rule *warn_rule,
                          enum cm_expiry_rule *crit_rule);

/* The longest lifetime, in days, that the CA/Browser Forum baseline allows a TLS server
 * certificate issued (not_before) at time issued: 398 before 2026-03-15, 200 from then, 100
 * from 2027-03-15, 47 from 2029-03-15 (all 00:00 UTC). *since gets the start of that period
 * (INT64_MIN for the first one). */
int cm_lifetime_limit_days(int64_t issued, int64_t *since);

/* The built-in list of known interception roots: data/interception-roots.txt, embedded at
 * build time (NUL-terminated). */
extern const char cm_interception_roots_builtin[];

/* Longest name an entry of a public-key list may have. */
#define CM_SPKI_NAME_MAX 200

/* Checks a public-key list of len bytes: one "HEX64 NAME" entry per line (the SHA-256 of a
 * DER SubjectPublicKeyInfo in hex, then a name of printable text up to CM_SPKI_NAME_MAX
 * bytes), '#' comment lines and blank lines. Returns 0, or CM_EBADARG with "line N: what is
 * wrong" in err. A list that passes holds no NUL byte, so it can be used as a string. */
int cm_spki_list_check(const char *text, size_t len, char *err, size_t errlen);

/* As cm_spki_list_check, for callers that name the line themselves ("FILE:LINE: why"): on
 * CM_EBADARG *line is the 1-based line at fault (0 when the whole list is: a NUL byte) and
 * why holds the problem without a line number. */
int cm_spki_list_validate(const char *text, size_t len, size_t *line, char *why, size_t whylen);

/* Looks up spki_sha256 (64 hex digits, any case) in a checked list. On a hit copies the
 * entry's name into name (at least CM_SPKI_NAME_MAX + 1 bytes) and returns true. */
bool cm_spki_list_find(const char *text, const char *spki_sha256, char *name, size_t namelen);

/* "auto", "staple-only", "off"; and back (0, or CM_EBADARG for another word). */
const char *cm_revocation_mode_name(enum cm_revocation_mode m);
int cm_revocation_mode_parse(const char *s, enum cm_revocation_mode *out);

/* Adds a rule: ignore id, or set its severity. Returns 0, CM_EBADARG for an id not in the
 * catalogue, or -ENOMEM. */
int cm_policy_ignore(struct cm_policy *p, const char *id);
int cm_policy_set_severity(struct cm_policy *p, const char *id, enum cm_severity sev);

/* Frees the rules; the rest of the policy is plain values. */
void cm_policy_clear(struct cm_policy *p);

struct cm_finding {
    const char *id; /* catalogue id, static */
    enum cm_severity severity;
    char *message; /* one line a human can act on; owned */
    int position;  /* chain position concerned, or -1 */
    /* Evidence, where the finding has it. */
    bool has_days_left;
    int64_t days_left;        /* cert.expired, cert.expiring, cert.not_yet_valid */
    const char *key_type;     /* key.weak (static), else NULL */
    unsigned key_bits;        /* key.weak */
    char *algorithm;          /* signature.weak: the signature algorithm; owned, else NULL */
    const char *version;      /* protocol.legacy: "TLS1.1", "TLS1.0", "SSL3.0" (static) */
    const char *cipher_class; /* cipher.weak: "RC4", "3DES", "NULL", "EXPORT", "ANON" (static) */
    unsigned dh_bits;         /* dh.weak: the DH prime size, else 0 */
    const char *rev_source;   /* cert.revoked: "staple", "ocsp" or "crl" (static), else NULL */
    int64_t revoked_at;       /* cert.revoked: Unix seconds, 0 when not given */
    const char *rev_reason;   /* cert.revoked: RFC 5280 reason name (static), or NULL */
};

struct cm_findings {
    struct cm_finding *items;
    size_t count;
};

/* Appends the findings for res under policy at time now to *out (which starts empty or
 * zeroed), those of its posture pass (res->posture) included. Returns 0 or -ENOMEM (out then
 * holds what was added so far). */
int cm_analyze(const struct cm_probe_result *res, const struct cm_policy *policy, time_t now,
               struct cm_findings *out);

/* Appends endpoint.inconsistent to *out when res (one address behind a name) presents a
 * different leaf certificate than another result of group (every address of that name; res
 * itself may be among them). Results without a chain are not compared. Returns 0 or
 * -ENOMEM. */
int cm_analyze_consistency(const struct cm_probe_result *res,
                           const struct cm_probe_result *const *group, size_t n,
                           const struct cm_policy *policy, struct cm_findings *out);

void cm_findings_clear(struct cm_findings *f);

/* Worst severity among the findings, as a status (info counts as OK). */
enum cm_status cm_findings_status(const struct cm_findings *f);

/* A target's status: UNKNOWN when certmon itself failed to probe it (CM_ERRK_INTERNAL),
 * else the worst of its findings. */
enum cm_status cm_result_status(const struct cm_probe_result *res, const struct cm_findings *f);

const char *cm_severity_name(enum cm_severity s); /* "info", "warning", "critical" */
const char *cm_status_name(enum cm_status s);     /* "ok", "warning", "critical", "unknown" */

/* Parses "info", "warning" or "critical". Returns 0 or CM_EBADARG. */
int cm_severity_parse(const char *name, enum cm_severity *out);

#endif
