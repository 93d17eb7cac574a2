/* A configuration generation: one loaded, validated configuration and the TLS context whose
 * credentials it was checked against. Whoever starts something that borrows the config's
 * targets or the context (a run, an on-demand probe) holds a reference until it ends; a reload
 * builds a new generation and the daemon swaps its own reference only. Loop thread only, except
 * cm_gen_build, which runs on the thread pool for a reload. */
#ifndef CERTMON_GEN_H
#define CERTMON_GEN_H

#include <stdbool.h>

#include "certmon/config/config.h"
#include "certmon/probe/tlsio.h"

/* Targets found by discovery (cm_config_discover), shared by reference between the source
 * that found them and every composed generation whose config borrows them. Loop thread only
 * once handed over. */
struct cm_gen_targets {
    /* read-only */
    struct cm_config_target *v; /* owned */
    size_t n;
    /* private */
    int refs;
};

struct cm_gen {
    /* read-only */
    struct cm_config *cfg;  /* owned */
    struct cm_tls_ctx *tls; /* owned (borrowed from base when composed); credentials of every
                             * target and discovery source loaded */
    /* A composed generation (cm_gen_compose): the loaded one whose settings and TLS context it
     * shares (referenced), and the target lists its config borrows (each referenced). NULL and
     * 0 for a loaded one. */
    struct cm_gen *base;
    struct cm_gen_targets **lists;
    size_t nlists;
    /* private */
    int refs;
};

/* Takes over v (n targets of cm_config_discover) in a list holding one reference. Returns
 * NULL when out of memory (v is freed then). */
struct cm_gen_targets *cm_gen_targets_new(struct cm_config_target *v, size_t n);
struct cm_gen_targets *cm_gen_targets_ref(struct cm_gen_targets *l);
/* The last reference frees the targets. NULL is a no-op. */
void cm_gen_targets_unref(struct cm_gen_targets *l);

/* A generation that is base (a loaded one) with the targets extra[] after its own: the
 * configuration is cm_config_compose's (names must be unique: the caller leaves out the ones a
 * configured target or an earlier list already has), the TLS context base's. extra[i] must
 * point into one of lists[]; the new generation references base and each list, and holds one
 * reference for the caller. Returns NULL with *rc (-ENOMEM, CM_EBADARG) on failure. */
struct cm_gen *cm_gen_compose(struct cm_gen *base, const struct cm_config_target *const *extra,
                              size_t n, struct cm_gen_targets *const *lists, size_t nlists,
                              int *rc);

/* Loads and fully validates the configuration at path, credentials included, without logging
 * (safe on the thread pool). Returns a generation holding one reference, or NULL with *rc (a
 * negative code) and errs set. */
struct cm_gen *cm_gen_build(const char *path, struct cm_config_errors *errs, int *rc);

/* Reports why cm_gen_build failed (rc, errs): to the log when to_log, else to stderr. */
void cm_gen_report(const char *path, int rc, struct cm_config_errors *errs, bool to_log);

/* cm_gen_build and, on failure, cm_gen_report: for the start, on the calling thread. */
struct cm_gen *cm_gen_load(const char *path, bool to_log);

/* Takes a reference; returns g. */
struct cm_gen *cm_gen_ref(struct cm_gen *g);

/* Releases one reference; the last frees the config and the TLS context. NULL is a no-op. */
void cm_gen_unref(struct cm_gen *g);

#endif
