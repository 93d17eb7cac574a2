#include "certmon/analyze.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int add(struct cm_findings *out, const char *id, enum cm_severity sev, int position,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int add(struct cm_findings *out, const char *id, enum cm_severity sev, int position,
               const char *fmt, ...)
{
    struct cm_finding *n;
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    n = realloc(out->items, (out->count + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    out->items = n;
    n[out->count].id = id;
    n[out->count].severity = sev;
    n[out->count].position = position;
    n[out->count].message = strdup(msg);
    if (!n[out->count].message)
        return -ENOMEM;
    out->count++;
    return 0;
}

static const char *cert_label(size_t i)
{
    return i == 0 ? "leaf certificate" : "chain certificate";
}

static void plural_days(int64_t d, char *buf, size_t len)
{
    snprintf(buf, len, "%lld day%s", (long long)d, d == 1 ? "" : "s");
}

static int analyze_cert(const struct cm_cert *c, size_t pos, const struct cm_policy *policy,
                        time_t now, struct cm_findings *out)
{
    char when[32], days[32];
    int64_t left = c->not_after - (int64_t)now;
    int64_t d = cm_cert_days_left(c, now);

    if (left < 0) {
        int64_t ago = (-left) / 86400;
        cm_time_rfc3339(c->not_after, when, sizeof(when));
        plural_days(ago, days, sizeof(days));
        if (ago > 0)
            return add(out, "cert.expired", CM_SEV_CRITICAL, (int)pos,
                       "%s %zu (%s) expired %s ago, on %s", cert_label(pos), pos, c->subject, days,
                       when);
        return add(out, "cert.expired", CM_SEV_CRITICAL, (int)pos, "%s %zu (%s) expired on %s",
                   cert_label(pos), pos, c->subject, when);
    }
    if (c->not_before > (int64_t)now) {
        cm_time_rfc3339(c->not_before, when, sizeof(when));
        return add(out, "cert.not_yet_valid", CM_SEV_CRITICAL, (int)pos,
                   "%s %zu (%s) is not valid before %s", cert_label(pos), pos, c->subject, when);
    }
    if (left < (int64_t)policy->crit_days * 86400 || left < (int64_t)policy->warn_days * 86400) {
        enum cm_severity sev =
            left < (int64_t)policy->crit_days * 86400 ? CM_SEV_CRITICAL : CM_SEV_WARNING;
        cm_time_rfc3339(c->not_after, when, sizeof(when));
        plural_days(d, days, sizeof(days));
        return add(out, "cert.expiring", sev, (int)pos, "%s %zu (%s) expires in %s, on %s",
                   cert_label(pos), pos, c->subject, days, when);
    }
    return 0;
}

/* Expiry and activation are reported per certificate by cert.expired / cert.not_yet_valid
 * and must not double as "untrusted". GnuTLS sets INVALID beside any other reason, so it
 * counts as distrust only when it stands alone. */
#define TIME_BITS (GNUTLS_CERT_EXPIRED | GNUTLS_CERT_NOT_ACTIVATED)

static bool distrusted(unsigned status)
{
    unsigned rest = status & ~(unsigned)TIME_BITS;

    return (rest & ~(unsigned)GNUTLS_CERT_INVALID) != 0 ||
           (rest == GNUTLS_CERT_INVALID && !(status & TIME_BITS));
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

int cm_analyze(const struct cm_probe_result *res, const struct cm_policy *policy, time_t now,
               struct cm_findings *out)
{
    const struct cm_chain *chain = &res->tls.chain;
    const struct cm_verify *v = &res->tls.verify;
    int rc;

    if (res->error_kind != CM_ERRK_NONE &&
        (rc = add(out, "probe.failed", CM_SEV_CRITICAL, -1, "%s",
                  res->error_message ? res->error_message : "probe failed")) < 0)
        return rc;

    for (size_t i = 0; i < chain->count; i++)
        if ((rc = analyze_cert(&chain->certs[i], i, policy, now, out)) < 0)
            return rc;

    if (chain->count > 0 && v->done && !v->trusted && distrusted(v->status)) {
        const struct cm_cert *leaf = &chain->certs[0];
        struct names n = {""};
        cm_verify_status_foreach(v->status & ~(unsigned)TIME_BITS, collect, &n);
        if (leaf->self_signed && chain->count == 1)
            rc = add(out, "chain.self_signed", CM_SEV_CRITICAL, 0,
                     "the leaf certificate (%s) is self-signed and not in the trust store",
                     leaf->subject);
        else
            rc = add(out, "chain.untrusted", CM_SEV_CRITICAL, -1,
                     "the chain does not verify against the trust store: %s", n.buf);
        if (rc < 0)
            return rc;
    }
    if (chain->count > 0 && v->done && !v->hostname_match &&
        (rc = add(out, "host.mismatch", CM_SEV_CRITICAL, 0,
                  "the leaf certificate (%s) is not valid for %s", chain->certs[0].subject,
                  res->verify_name)) < 0)
        return rc;
    return 0;
}

void cm_findings_clear(struct cm_findings *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->count; i++)
        free(f->items[i].message);
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

const char *cm_severity_name(enum cm_severity s)
{
    switch (s) {
    case CM_SEV_INFO:
        return "info";
    case CM_SEV_WARNING:
        return "warning";
    case CM_SEV_CRITICAL:
        return "critical";
    default:
        return "ok";
    }
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
