/* Discovery: targets from sources besides the configuration file, applied while the daemon
 * runs, within seconds of a change and without a reload (docs/discovery.md).
 *
 * The machinery, the same for every kind of source:
 * - A source (struct cm_disc_source) is one `discovery` block of the loaded configuration: its
 *   kind, its current entry list (the targets it adds, as cm_gen_targets lists: one per file
 *   for the files kind) and its last error.
 * - cm_disc_source_update() is the one function that changes what is discovered: it takes a
 *   source's new list and applies the union of the configured targets and of every source's
 *   list. A configured target keeps its name (the discovered one is left out, and logged);
 *   then sources in configuration order, lists in order, the first of a name wins. The union
 *   is a composed generation (gen.h: the loaded configuration plus the discovered targets)
 *   that the daemon's apply callback installs with the same install_targets a SIGHUP reload
 *   uses: added targets are spread in, removed ones dropped with their state, unchanged ones
 *   (same name and spec_hash) keep their state and schedule.
 * - A kind brings only how it finds entries, and turns them into targets with
 *   cm_config_discover ("host:port" strings with labels: struct cm_sd_doc, whose reserved
 *   `__certmon_KEY` labels carry target keys). Files (discovery.c): glob(3) patterns whose
 *   directories are watched with uv_fs_event, and read again every `refresh` as a fallback;
 *   globbing, reading, parsing and cm_config_discover run on the thread pool. A file that
 *   cannot be read or parsed, or that holds a bad entry, keeps its previous targets and is
 *   reported (log, certmon_discovery_* metrics); a file that is gone takes its targets along.
 *   DNS discovery (probe/dnsdisc.h) is to resolve its names with c-ares on the loop and hand
 *   its list to cm_disc_source_update the same way.
 *
 * Loop thread only, unless a function says otherwise. */
#ifndef CERTMON_DISCOVERY_H
#define CERTMON_DISCOVERY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "certmon/analysis/metrics.h"
#include "certmon/config/config.h"
#include "certmon/daemon/gen.h"

/* The most files the patterns of one source may match: beyond it the source keeps what it had
 * and reports the error. */
#define CM_DISC_MAX_FILES 10000u

/* A change event starts a read this long after it (events come in bursts: an editor's write,
 * a rename over the old file); a change is applied well within a second. */
#define CM_DISC_DEBOUNCE_MS 100

struct cm_discovery;

struct cm_disc_source {
    /* read-only */
    enum cm_discovery_kind kind;
    size_t index;                  /* its block: loaded configuration's discovery[index] */
    const char *name;              /* the block's name (owned by the configuration) */
    struct cm_gen_targets **lists; /* the current entry list (each referenced) */
    size_t nlists;
    char *last_error; /* the latest problem; NULL after a read that found none */
    size_t applied;   /* its targets in the last union (names taken earlier left out) */
    /* private */
    struct cm_discovery *dm;
    void *impl; /* the kind's own state */
};

/* Installs a new union: g is a reference the callee takes over. */
typedef void (*cm_discovery_apply_fn)(void *arg, struct cm_gen *g);

/* Makes the sources of loaded->cfg->discovery (taking a reference on loaded). prev, when not
 * NULL, is the discovery of the previous configuration (a reload): the files of its sources
 * keep their last good content for the source of the same name, which turns that content into
 * targets under the new configuration here, on the calling thread (CPU only: nothing is read;
 * the first read after cm_discovery_start picks up what changed meanwhile). prev is left with
 * nothing to apply: close it. Nothing runs and apply is not called before cm_discovery_start.
 * Returns 0 or -ENOMEM. */
int cm_discovery_new(uv_loop_t *loop, struct cm_gen *loaded, struct cm_discovery *prev,
                     cm_discovery_apply_fn apply, void *arg, struct cm_discovery **out);

/* Reads every source once on the calling thread, blocking: for the start, before the loop
 * runs, so that the first install already holds the discovered targets. Problems are logged
 * as in a read on the loop. */
void cm_discovery_read_now(struct cm_discovery *dm);

/* The current union as a generation: a new reference (the loaded generation itself while
 * nothing is discovered), or NULL when out of memory. */
struct cm_gen *cm_discovery_gen(struct cm_discovery *dm);

/* Watches and re-reads from now on; every change then reaches apply. Starts with a read of
 * every source. Returns 0 (a directory that cannot be watched is logged: its changes are seen
 * every refresh). */
int cm_discovery_start(struct cm_discovery *dm);

/* The source of loaded->cfg->discovery[i], or NULL: for a kind that feeds it from elsewhere. */
struct cm_disc_source *cm_discovery_source(struct cm_discovery *dm, size_t i);

/* Replaces src's entry list with lists[0..n) (each gets a reference of src's; src drops its
 * old ones) and its last error with error (copied; NULL: none), then applies the union: before
 * cm_discovery_start it is only kept for cm_discovery_gen, afterwards it goes to apply.
 * Returns 0, or -ENOMEM with src unchanged and nothing applied. */
int cm_disc_source_update(struct cm_disc_source *src, struct cm_gen_targets *const *lists, size_t n,
                          const char *error);

/* One row per source and one per file read, for /metrics: a new array with its own copies of
 * every string (free with cm_discovery_stats_free). Returns 0 or -ENOMEM. */
int cm_discovery_stats(const struct cm_discovery *dm, struct cm_metrics_discovery **out, size_t *n);
void cm_discovery_stats_free(struct cm_metrics_discovery *v, size_t n);

/* Stops watching and reading; reads in flight are cancelled or their results dropped. Frees
 * itself once its handles have closed and its work has ended: run the loop afterwards. apply
 * is not called any more. NULL is a no-op. */
void cm_discovery_close(struct cm_discovery *dm);

/* ---- private: the DNS kinds (discdns.c), one row of discovery.c's operations for srv and
 * mx sources; src->impl is the kind's own state. ---- */

/* Makes src's state for block cd. Returns 0 or -ENOMEM. */
int cm__discdns_init(struct cm_disc_source *src, const struct cm_config_discovery *cd);
/* The last good answer of psrc (the source of the same kind and name in the previous
 * discovery) turned into src's targets under the new configuration, when it asked the same
 * question. */
void cm__discdns_take_over(struct cm_disc_source *src, struct cm_disc_source *psrc);
/* Makes its resolver and looks up at once, then every refresh (or TTL). Its timer counts as
 * one of the discovery's handles (cm__disc_handle_open / cm__disc_handle_closed). */
void cm__discdns_start(struct cm_disc_source *src, const struct cm_config_discovery *cd);
/* Cancels the lookup in flight and closes the timer and the resolver. */
void cm__discdns_close(struct cm_disc_source *src);
void cm__discdns_free(struct cm_disc_source *src);
/* Its /metrics rows: the source's, then one for its question (`file` "srv:NAME" or
 * "mx:NAME": errors, last_success, valid), appended at v[*k]. Returns 0 or -ENOMEM. */
size_t cm__discdns_nrows(const struct cm_disc_source *src);
int cm__discdns_rows(const struct cm_disc_source *src, struct cm_metrics_discovery *v, size_t *k);

/* discovery.c's side for a kind in another file: the loop and the loaded configuration of
 * src's discovery; a handle of src's was opened; its close callback (h->data = src). */
uv_loop_t *cm__disc_loop(const struct cm_disc_source *src);
const struct cm_config *cm__disc_config(const struct cm_disc_source *src);
void cm__disc_handle_open(struct cm_disc_source *src);
void cm__disc_handle_closed(uv_handle_t *h);

#endif
