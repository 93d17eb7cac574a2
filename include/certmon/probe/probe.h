/* One TLS probe of one target on a libuv loop: resolve, connect (each address in turn),
 * handshake, describe. Nothing blocks the loop; one uv_timer enforces the whole deadline.
 * A probe delivers exactly one result. */
#ifndef CERTMON_PROBE_H
#define CERTMON_PROBE_H

#include <stdint.h>
#include <uv.h>

#include "certmon/probe/result.h"
#include "certmon/probe/target.h"
#include "certmon/probe/tlsio.h"

/* Called exactly once per started probe. res is the callee's (free with
 * cm_probe_result_free). The probe handle is no longer valid once this runs. */
typedef void (*cm_probe_cb)(struct cm_probe_result *res, void *arg);

struct cm_probe;
struct cm_resolver;

/* What probes share: the loop, the TLS context and the resolver (all on that loop). */
struct cm_probe_env {
    uv_loop_t *loop;
    struct cm_tls_ctx *tls;
    struct cm_resolver *resolver;
};

/* Starts a probe. Borrows env's members and the target (all outlive the probe).
 * timeout_ms bounds the whole probe, from this call to the result (describing the chain
 * gets at least 200 ms, even past the deadline): a chain that takes too long to describe
 * after the handshake ends the probe with a timeout in phase "describe" (the work finishes
 * on its pool thread, unseen; see cm_probe_orphans). On success
 * cb runs exactly once, always from a later loop callback; on error (-ENOMEM) cb never
 * runs. *out may be NULL. */
int cm_probe_start(const struct cm_probe_env *env, const struct cm_target *t, uint64_t timeout_ms,
                   cm_probe_cb cb, void *arg, struct cm_probe **out);

/* Cancels a probe whose callback has not run yet: cb runs at once with error kind
 * "cancelled". A probe whose handshake has already ended is past cancelling: its real
 * result follows shortly. Resources are released through the loop afterwards. NULL is a
 * no-op. */
void cm_probe_cancel(struct cm_probe *p);

/* The number of probes whose result went out at their deadline while their chain was still
 * being described on the thread pool: that work runs to its end unseen, holding the
 * probe's loop (a request) and a pool thread. A command that is done before they are
 * leaves with _exit after flushing its output: exit() would join the pool and wait. Loop
 * thread only. */
size_t cm_probe_orphans(void);

#endif
