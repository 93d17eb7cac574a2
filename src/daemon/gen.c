/* Configuration generations (include/certmon/daemon/gen.h): a loaded configuration and the
 * TLS context its credentials were checked with, shared by reference between the daemon, the
 * runs in flight and the web endpoints' on-demand probes. */
#include "certmon/daemon/gen.h"
#include "certmon/base/error.h"
#include "certmon/base/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

struct cm_gen *cm_gen_ref(struct cm_gen *g)
{
    g->refs++;
    return g;
}

void cm_gen_unref(struct cm_gen *g)
{
    if (!g || --g->refs > 0)
        return;
    if (g->base) {
        /* Composed: its config borrows the base's and the lists' strings; free it first. */
        cm_config_free(g->cfg);
        for (size_t i = 0; i < g->nlists; i++)
            cm_gen_targets_unref(g->lists[i]);
        free(g->lists);
        cm_gen_unref(g->base);
        free(g);
        return;
    }
    cm_tls_ctx_free(g->tls);
    cm_config_free(g->cfg);
    free(g);
}

struct cm_gen_targets *cm_gen_targets_new(struct cm_config_target *v, size_t n)
{
    struct cm_gen_targets *l = malloc(sizeof(*l));

    if (!l) {
        cm_config_targets_free(v, n);
        return NULL;
    }
    *l = (struct cm_gen_targets){.v = v, .n = n, .refs = 1};
    return l;
}

struct cm_gen_targets *cm_gen_targets_ref(struct cm_gen_targets *l)
{
    l->refs++;
    return l;
}

void cm_gen_targets_unref(struct cm_gen_targets *l)
{
    if (!l || --l->refs > 0)
        return;
    cm_config_targets_free(l->v, l->n);
    free(l);
}

struct cm_gen *cm_gen_compose(struct cm_gen *base, const struct cm_config_target *const *extra,
                              size_t n, struct cm_gen_targets *const *lists, size_t nlists,
                              int *rc)
{
    struct cm_gen *g = calloc(1, sizeof(*g));

    *rc = -ENOMEM;
    if (!g || !(g->lists = calloc(nlists ? nlists : 1, sizeof(*g->lists)))) {
        free(g);
        return NULL;
    }
    if ((*rc = cm_config_compose(base->cfg, extra, n, &g->cfg)) < 0) {
        free(g->lists);
        free(g);
        return NULL;
    }
    g->tls = base->tls;
    g->base = cm_gen_ref(base);
    for (size_t i = 0; i < nlists; i++)
        g->lists[i] = cm_gen_targets_ref(lists[i]);
    g->nlists = nlists;
    g->refs = 1;
    return g;
}

static void log_errors(const struct cm_config_errors *errs, bool to_log)
{
    for (size_t i = 0; i < errs->count; i++) {
        if (to_log)
            cm_log_error("config", "%s", errs->msgs[i]);
        else
            fprintf(stderr, "certmon: %s\n", errs->msgs[i]);
    }
}

/* Makes a generation ready for the revocation checks of its file targets: loads the system
 * trust store into g->tls when a file target without a ca_file of its own checks revocation,
 * so that the issuer of the last certificate of a file (a chain file's intermediate) can be
 * found there (revwait.h). Blocking file I/O, like the rest of the build. A store that cannot
 * be loaded only means such issuers are not found. */
static void prepare_file_anchors(struct cm_gen *g)
{
    const struct cm_tls_profile system_store = {NULL, NULL, NULL};
    char err[300];

    /* A file entry's own ca_file was loaded with the other credentials. */
    for (size_t i = 0; i < g->cfg->target_count; i++) {
        const struct cm_config_target *ct = &g->cfg->targets[i];
        if (ct->kind != CM_TARGET_FILE || ct->opt->ca_file ||
            ct->policy->revocation != CM_REVOCATION_AUTO)
            continue;
        if (cm_tls_ctx_load(g->tls, &system_store, err, sizeof(err)) < 0)
            cm_log_info("revocation", "file targets: no system trust store: %s", err);
        return;
    }
}

/* Loads the system trust store into g->tls when an endpoint target has a ca_file of its own,
 * so that the probe can tell whether its chain also leads to the system store (the public /
 * private trust flip of cert.changed). Without it such chains count as not public. */
static void prepare_public_check(struct cm_gen *g)
{
    const struct cm_tls_profile system_store = {NULL, NULL, NULL};
    char err[300];

    for (size_t i = 0; i < g->cfg->target_count; i++) {
        const struct cm_config_target *ct = &g->cfg->targets[i];
        if (ct->kind != CM_TARGET_ENDPOINT || !ct->opt->ca_file)
            continue;
        if (cm_tls_ctx_load(g->tls, &system_store, err, sizeof(err)) < 0)
            cm_log_info("config",
                        "no system trust store: chains of targets with a ca_file "
                        "count as private: %s",
                        err);
        return;
    }
}

struct cm_gen *cm_gen_build(const char *path, struct cm_config_errors *errs, int *rc)
{
    struct cm_gen *g = calloc(1, sizeof(*g));

    *rc = -ENOMEM;
    if (!g)
        return NULL;
    g->refs = 1;
    if ((*rc = cm_config_load(path, &g->cfg, errs)) < 0 || (*rc = cm_tls_ctx_new(&g->tls)) < 0 ||
        (*rc = cm_config_check_credentials(g->cfg, g->tls, errs)) < 0) {
        cm_gen_unref(g);
        return NULL;
    }
    prepare_file_anchors(g);
    prepare_public_check(g);
    return g;
}

void cm_gen_report(const char *path, int rc, struct cm_config_errors *errs, bool to_log)
{
    if (errs->count == 0) {
        char msg[300];
        snprintf(msg, sizeof(msg), "cannot load %s: %s", path, cm_strerror(rc));
        if (to_log)
            cm_log_error("config", "%s", msg);
        else
            fprintf(stderr, "certmon: %s\n", msg);
    }
    log_errors(errs, to_log);
    if (to_log && errs->count)
        cm_log_error("config", "file=%s errors=%zu", path, errs->count);
}

struct cm_gen *cm_gen_load(const char *path, bool to_log)
{
    struct cm_config_errors errs = {0};
    int rc;
    struct cm_gen *g = cm_gen_build(path, &errs, &rc);

    if (!g)
        cm_gen_report(path, rc, &errs, to_log);
    cm_config_errors_clear(&errs);
    return g;
}
