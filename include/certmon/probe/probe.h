/* One TLS probe of one target on a libuv loop: resolve, connect (each address in turn),
 * handshake, describe. Nothing blocks the loop; one uv_timer enforces the whole deadline.
 * A probe delivers exactly one result. */
#ifndef CERTMON_PROBE_H
#define CERTMON_PROBE_H

#include <netinet/in.h>
#include <stdint.h>
#include <uv.h>

#include "certmon/probe/starttls.h"
#include "certmon/probe/target.h"
#include "certmon/probe/tlsio.h"

enum cm_err_kind {
    CM_ERRK_NONE = 0,
    CM_ERRK_DNS,       /* name resolution failed */
    CM_ERRK_CONNECT,   /* every address refused or was unreachable */
    CM_ERRK_TIMEOUT,   /* the deadline passed; error_phase says during what */
    CM_ERRK_STARTTLS,  /* plaintext preamble failed (reserved for STARTTLS) */
    CM_ERRK_TLS,       /* the handshake failed: alert, protocol error, no common ground */
    CM_ERRK_IO,        /* the connection broke: reset, closed, socket error */
    CM_ERRK_CANCELLED, /* cm_probe_cancel */
    CM_ERRK_INTERNAL,  /* certmon itself failed (out of memory, out of file descriptors) */
    CM_ERRK_FILE,      /* file target: the file cannot be read or holds no certificate */
};

enum cm_phase {
    CM_PHASE_DNS = 0,
    CM_PHASE_CONNECT,
    CM_PHASE_STARTTLS,
    CM_PHASE_HANDSHAKE,
    CM_PHASE_DONE,
    CM_PHASE_DESCRIBE, /* parsing and verifying the chain after the handshake */
};

struct cm_posture;
struct cm_ari;
struct cm_revocation;

/* Everything one probe saw. Plain data; whoever receives it owns it. */
struct cm_probe_result {
    char *target; /* display name, "host:port" */
    char *host;
    uint16_t port;
    char *sni;                      /* name sent, or NULL */
    char *verify_name;              /* name the leaf was checked against */
    char address[INET6_ADDRSTRLEN]; /* address of the last connection attempt, or "" */

    enum cm_err_kind error_kind;
    enum cm_phase error_phase; /* phase in which the error happened */
    char *error_message;       /* NULL when error_kind is NONE */
    bool tls_refused;          /* error_kind TLS, and the server refused every version or suite
                                * offered (cm_tls_error_is_refusal): what it does accept is
                                * for the posture pass to find */

    enum cm_starttls_proto starttls; /* preamble used, or CM_STARTTLS_NONE */

    /* Milliseconds spent in each phase; negative when the phase was not reached. */
    double dns_ms, connect_ms, starttls_ms, handshake_ms, total_ms;

    struct cm_tls_info tls;       /* negotiated parameters, chain and verification */
    struct cm_chain client_chain; /* our mTLS certificate (empty without one) */
    int64_t finished_at;          /* Unix seconds when the result was produced */
    struct cm_posture *posture;   /* the posture pass (posture.h), owned; NULL when not run.
                                   * The probe never sets it: whoever runs the pass does. */
    struct cm_ari *ari;           /* ACME renewal information for the leaf (ari.h), owned;
                                   * NULL when not asked. Set, like posture, by the caller. */
    char *path;                   /* file targets (filecert.h): the file read, owned; NULL for
                                   * endpoints. Such a result has host NULL, port 0, no TLS
                                   * parameters and no verification: tls.chain holds the
                                   * certificates in file order, analysed one by one. */
    struct cm_revocation *revocation; /* revocation.h, owned; NULL when not checked. The
                                       * probe never sets it: the revocation checker does. */
};

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

void cm_probe_result_free(struct cm_probe_result *res);

/* The number of probes whose result went out at their deadline while their chain was still
 * being described on the thread pool: that work runs to its end unseen, holding the
 * probe's loop (a request) and a pool thread. A command that is done before they are
 * leaves with _exit after flushing its output: exit() would join the pool and wait. Loop
 * thread only. */
size_t cm_probe_orphans(void);

/* "dns", "connect", "timeout", "starttls", "tls", "io", "cancelled", "internal"; NULL for
 * NONE. */
const char *cm_err_kind_name(enum cm_err_kind k);

/* "dns", "connect", "starttls", "handshake", "done", "describe". */
const char *cm_phase_name(enum cm_phase p);

#endif
