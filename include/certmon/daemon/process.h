/* The process's own resources: how many probes fit the open-file limit, and the process_*
 * figures that /metrics shows (read from /proc). The metrics renderer is pure: it gets these
 * figures as data (struct cm_metrics_process, metrics.h). */
#ifndef CERTMON_PROCESS_H
#define CERTMON_PROCESS_H

#include "certmon/analysis/metrics.h"

/* Each probe holds per_probe sockets at most (one, or those of its posture pass). Raises the
 * soft limit on open files to fit the concurrency (the default 1024 is below sensible caps)
 * and returns the concurrency that fits, keeping 64 descriptors for everything else; says so
 * on stderr, prefixed with who, when it had to lower it. */
long cm_fd_limit_fit(long want, long per_probe, const char *who);

/* Reads the process metrics of this process from /proc. Returns 0, or a negative errno
 * (fields then 0). */
int cm_process_read(struct cm_metrics_process *out);

#endif
