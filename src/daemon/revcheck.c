/* The daemon's revocation checks: after a run's handshake (and posture pass) or file scan, the
 * run gives back its scheduler slot and waits, within its target's revocation_timeout, for
 * the revocation of every certificate it saw, from the one checker (cm_revctx) the daemon
 * keeps for its whole life. The cache is the checker's; this file only ties runs to it.
 *
 * Why wait rather than judge with the cache and refresh behind (as the renewal information
 * does): the first run of a target would otherwise always be judged without revocation data
 * and every CRL change would take one more interval to show; with the slot given back, the
 * wait costs other targets nothing. See docs/daemon.md "Revocation". */
#include "daemon_int.h"

#include "certmon/base/error.h"
#include "certmon/base/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* One revocation check of one result of the run. */
struct item {
    struct cm__revwait *w;
    struct cm_rev_job *job; /* NULL once its callback has run */
    bool lent_anchor;       /* the result's tls.anchor was filled for the check only */
};

struct cm__revwait {
    struct dtarget *t;
    cm__revwait_cb cb;
    struct cm_probe_result **res; /* the run's results (borrowed), in the caller's order */
    size_t n;
    struct item *items;
    size_t nitems;
    size_t outstanding; /* checks whose callback has not run */
};

static void wait_free(struct cm__revwait *w)
{
    free(w->res);
    free(w->items);
    free(w);
}

static void on_checked(struct cm_probe_result *res, void *arg)
{
    struct item *it = arg;
    struct cm__revwait *w = it->w;
    struct dtarget *t = w->t;
    struct daemon *d = t->d;
    bool drop;

    it->job = NULL;
    /* A file's report names no trust anchor (nothing was verified): the one found for the
     * check goes again. */
    if (it->lent_anchor)
        cm_chain_clear(&res->tls.anchor);
    if (--w->outstanding > 0)
        return;
    t->revwait = NULL;
    drop = d->stopping || t->removed;
    /* cb may end the run, and a removed target's run frees the target: t is not touched
     * after it. */
    w->cb(t, w->res, w->n, drop);
    wait_free(w);
}

/* Whether res has certificates whose revocation can be looked at. The chain is final here:
 * a posture pass that adopts one has reported before the run gets this far. */
static bool checkable(const struct cm_probe_result *res)
{
    return res && res->tls.chain.count > 0;
}

void cm__revwait_prepare(struct gen *g)
{
    const struct cm_tls_profile system_store = {NULL, NULL, NULL};
    char err[300];

    /* A file entry's own ca_file was loaded with the other credentials. */
    for (size_t i = 0; i < g->cfg->target_count; i++) {
        const struct cm_config_target *ct = &g->cfg->targets[i];
        if (ct->kind != CM_TARGET_FILE || ct->ca_file ||
            ct->policy.revocation != CM_REVOCATION_AUTO)
            continue;
        if (cm_tls_ctx_load(g->tls, &system_store, err, sizeof(err)) < 0)
            cm_log_info("revocation", "file targets: no system trust store: %s", err);
        return;
    }
}

/* For a file: the trust-store certificate (of the entry's ca_file, else the system store) that
 * issued the file's last certificate, when no certificate of the file did (a chain file ends
 * with an intermediate). */
static bool lend_anchor(struct gen *g, const struct cm_config_target *ct,
                        struct cm_probe_result *res)
{
    const struct cm_tls_profile store = {ct->ca_file, NULL, NULL};

    if (!res->path || res->tls.anchor.count)
        return false;
    if (cm_tls_ctx_find_anchor(g->tls, &store, &res->tls.chain, &res->tls.anchor) < 0) {
        cm_chain_clear(&res->tls.anchor);
        return false;
    }
    return res->tls.anchor.count > 0;
}

int cm__revwait_start(struct dtarget *t, struct cm_probe_result *const *res, size_t n,
                      cm__revwait_cb cb)
{
    struct daemon *d = t->d;
    const struct cm_config_target *ct = t->run_ct;
    struct cm__revwait *w;
    size_t want = 0;

    if (!d->rev || d->stopping || ct->policy.revocation != CM_REVOCATION_AUTO)
        return 1;
    for (size_t i = 0; i < n; i++)
        want += checkable(res[i]);
    if (!want)
        return 1;
    if (!(w = calloc(1, sizeof(*w))) || !(w->res = malloc(n * sizeof(*w->res))) ||
        !(w->items = calloc(want, sizeof(*w->items)))) {
        if (w)
            free(w->res);
        free(w);
        cm_log_error("revocation", "target=%s out of memory: judged without revocation data",
                     ct->name);
        return -ENOMEM;
    }
    memcpy(w->res, res, n * sizeof(*w->res));
    w->n = n;
    w->t = t;
    w->cb = cb;
    for (size_t i = 0; i < n; i++) {
        struct item *it = &w->items[w->nitems];
        int rc;
        if (!checkable(res[i]))
            continue;
        it->w = w;
        it->lent_anchor = lend_anchor(t->run_gen, ct, res[i]);
        /* cm_rev_check never runs its callback inside the call: outstanding cannot reach 0
         * before the loop ends. */
        rc = cm_rev_check(d->rev, res[i], ct->policy.revocation_timeout_ms, on_checked, it,
                          &it->job);
        if (rc < 0) {
            cm_log_error("revocation", "target=%s check of %s cannot start: %s", ct->name,
                         res[i]->target ? res[i]->target : ct->name, cm_strerror(rc));
            if (it->lent_anchor)
                cm_chain_clear(&res[i]->tls.anchor);
            it->lent_anchor = false;
            continue;
        }
        w->nitems++;
        w->outstanding++;
    }
    if (w->outstanding == 0) {
        wait_free(w);
        return -ENOMEM;
    }
    t->revwait = w;
    cm_log_debug("revocation", "target=%s checks=%zu waiting timeout_ms=%llu slot released",
                 ct->name, w->nitems, (unsigned long long)ct->policy.revocation_timeout_ms);
    /* From here the run only waits on CAs: the next due target may take its slot. */
    if (d->sched)
        cm_sched_release(d->sched, &t->job);
    return 0;
}

void cm__revwait_cancel(struct dtarget *t)
{
    struct cm__revwait *w = t->revwait;

    if (!w)
        return;
    /* Each cancel runs one check's callback at once; the last one ends the wait (and may free
     * t and w): stop there. */
    for (size_t k = 0; k < w->nitems; k++) {
        struct cm_rev_job *j = w->items[k].job;
        bool last = j && w->outstanding == 1;
        cm_rev_cancel(j);
        if (last)
            return;
    }
}
