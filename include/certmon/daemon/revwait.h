/* One run's revocation wait: every result of a run checked through the daemon's one
 * revocation checker (cm_revctx, kept for the daemon's whole life so that one CRL is fetched
 * once per nextUpdate however many targets share it), and one callback when every check has
 * ended, each within the target's revocation_timeout.
 *
 * The daemon gives its scheduler slot back while a run waits here (a slow CA never delays
 * other probes); why it waits rather than judging with the cache and refreshing behind, as
 * the renewal information does: the first run of a target would otherwise always be judged
 * without revocation data and every CRL change would take one more interval to show. */
#ifndef CERTMON_REVWAIT_H
#define CERTMON_REVWAIT_H

#include <stddef.h>
#include <stdint.h>

#include "certmon/probe/result.h"

struct cm_revctx;
struct cm_tls_ctx;
struct cm_revwait;

/* Runs exactly once per started wait, from a loop callback (or from inside cm_revwait_cancel);
 * the results then carry their revocation. The wait is freed when it returns. */
typedef void (*cm_revwait_cb)(void *arg);

/* Checks the revocation of res[0..n) (borrowed until cb; results without certificates are
 * skipped) through rev, each within timeout_ms; name is for the log (copied as needed).
 * For a file's result (res->path set) whose last certificate was issued by none of the file,
 * the issuer is looked up for the check in tls's trust store (ca_file's, or the system store
 * when ca_file is NULL; both may be NULL: no lookup) and dropped again before cb: a file's
 * report names no trust anchor, since nothing was verified.
 * Returns 0 when cb will run (*out then holds the wait until cb runs), 1 when there is nothing
 * to check, or a negative code (out of memory): cb will not run. */
int cm_revwait_start(struct cm_revctx *rev, struct cm_tls_ctx *tls, const char *ca_file,
                     struct cm_probe_result *const *res, size_t n, uint64_t timeout_ms,
                     const char *name, cm_revwait_cb cb, void *arg, struct cm_revwait **out);

/* Ends the wait now: cb runs before this returns (sources still outstanding count as
 * "cancelled"). NULL is a no-op. */
void cm_revwait_cancel(struct cm_revwait *w);

#endif
