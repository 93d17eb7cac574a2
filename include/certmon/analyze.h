/* Findings: what is wrong with what a probe saw, judged under a policy at a given time.
 * Pure: no I/O, time is a parameter. Used by `check`, and later by metrics and alerts. */
#ifndef CERTMON_ANALYZE_H
#define CERTMON_ANALYZE_H

#include <stddef.h>
#include <time.h>

#include "certmon/probe.h"

enum cm_severity { CM_SEV_OK = 0, CM_SEV_INFO, CM_SEV_WARNING, CM_SEV_CRITICAL };

/* Target status as the monitoring-plugins guidelines number it (also the exit code). */
enum cm_status {
    CM_STATUS_OK = 0,
    CM_STATUS_WARNING = 1,
    CM_STATUS_CRITICAL = 2,
    CM_STATUS_UNKNOWN = 3
};

struct cm_policy {
    int warn_days; /* a certificate expiring within this many days is a warning */
    int crit_days; /* ... within this many days is critical */
};

#define CM_POLICY_DEFAULT                                                                          \
    {                                                                                              \
        .warn_days = 30, .crit_days = 7                                                            \
    }

struct cm_finding {
    const char *id; /* stable dotted id, static ("cert.expired") */
    enum cm_severity severity;
    char *message; /* one line a human can act on; owned */
    int position;  /* chain position concerned, or -1 */
};

struct cm_findings {
    struct cm_finding *items;
    size_t count;
};

/* Appends the findings for res under policy at time now to *out (which starts empty or
 * zeroed). Returns 0 or -ENOMEM (out then holds what was added so far). */
int cm_analyze(const struct cm_probe_result *res, const struct cm_policy *policy, time_t now,
               struct cm_findings *out);

void cm_findings_clear(struct cm_findings *f);

/* Worst severity among the findings, as a status (info counts as OK). */
enum cm_status cm_findings_status(const struct cm_findings *f);

/* A target's status: UNKNOWN when certmon itself failed to probe it (CM_ERRK_INTERNAL),
 * else the worst of its findings. */
enum cm_status cm_result_status(const struct cm_probe_result *res, const struct cm_findings *f);

const char *cm_severity_name(enum cm_severity s); /* "info", "warning", "critical" */
const char *cm_status_name(enum cm_status s);     /* "ok", "warning", "critical", "unknown" */

#endif
