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

struct cm_gen {
    /* read-only */
    struct cm_config *cfg;  /* owned */
    struct cm_tls_ctx *tls; /* owned; credentials of every target loaded */
    /* private */
    int refs;
};

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
