/* The daemon's HTTP endpoints (/metrics, /probe, /api/v1/targets, /healthz, the status page) on the httpd
 * listener. The web owns its listener, its pacing of /metrics and its on-demand probes; what it
 * shows of the daemon (the current generation, the state, the notifiers, counters) it asks for
 * through the status callback it was handed, so it never reaches into the daemon's struct. */
#ifndef CERTMON_WEB_H
#define CERTMON_WEB_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "certmon/analysis/metrics.h"
#include "certmon/config/config.h"
#include "certmon/daemon/state.h"

struct cm_discovery;
struct cm_gen;
struct cm_notify;
struct cm_resolver;
struct cm_revctx;
struct cm_web;

/* What the daemon shows now. Everything is borrowed for the current loop callback only. */
struct cm_web_status {
    struct cm_gen *gen;       /* the current generation (never NULL); /probe takes a
                               * reference for the probe it starts */
    struct cm_state *state;   /* per-target reports and metrics views */
    struct cm_notify *notify; /* the notifiers, or NULL once closed */
    struct cm_revctx *rev;    /* the revocation cache, or NULL (stopping, or it could not be
                               * made) */
    struct cm_discovery *discovery; /* the discovery sources, or NULL (stopping) */
    uint64_t probes_ok, probes_failed;
    bool reload_ok;    /* the last reload succeeded (or none was asked for) */
    int64_t reload_at; /* Unix seconds of the last successful load */
};

/* Fills *out (zeroed beforehand). Called from loop callbacks only, whenever a request needs it. */
typedef void (*cm_web_status_fn)(void *arg, struct cm_web_status *out);

/* Creates the endpoints on loop (not listening yet). Borrows loop and resolver (they outlive
 * the web). Returns 0 or -ENOMEM. */
int cm_web_new(uv_loop_t *loop, struct cm_resolver *resolver, cm_web_status_fn status, void *arg,
               struct cm_web **out);

/* Starts listening as cfg says (nothing when cfg lists no address). Returns 0, or a negative
 * code with the reason in err. */
int cm_web_start(struct cm_web *web, const struct cm_config *cfg, char *err, size_t errlen);

/* Stops listening; pending requests are abandoned (their on-demand probes cancelled). The web
 * can start again. NULL-safe only through cm_web_close. */
void cm_web_stop(struct cm_web *web);

/* cm_web_stop, then frees the web once its timer has closed and on-demand probes that were
 * past cancelling have reported: run the loop afterwards. NULL is a no-op. */
void cm_web_close(struct cm_web *web);

/* True when a and b configure the listener identically (a reload then keeps it). */
bool cm_web_same(const struct cm_config *a, const struct cm_config *b);

/* For tests and the fuzz harness: on-demand probes in flight and /metrics requests waiting for
 * their turn (either pointer may be NULL). */
void cm_web_pending(const struct cm_web *web, unsigned *probes, unsigned *scrapes);

/* For tests and the fuzz harness: the next /metrics render may start at once, unpaced. */
void cm_web_unpace(struct cm_web *web);

/* The view hooks the state uses to keep each target's metrics view (metrics.h). */
extern const struct cm_state_view_hooks cm_web_view_hooks;

/* The metrics view inside a view those hooks built (state entry's view), or NULL. */
struct cm_metrics_view *cm_web_view_metrics(void *view);

#endif
