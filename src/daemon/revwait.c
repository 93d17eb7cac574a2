/* One run's revocation wait (revwait.h): a count of checks outstanding and one callback. The
 * cache and the fetches are the checker's (probe/revocation.c); this file only ties the checks
 * of one run together. */
#include "certmon/daemon/revwait.h"
#include "certmon/base/error.h"
#include "certmon/base/log.h"
#include "certmon/probe/revocation.h"
#include "certmon/probe/tlsio.h"

#include <errno.h>
#include <stdlib.h>

/* One revocation check of one result of the run. */
struct item {
    struct cm_revwait *w;
    struct cm_rev_job *job; /* NULL once its callback has run */
    bool lent_anchor;       /* the result's tls.anchor was filled for the check only */
};

struct cm_revwait {
    cm_revwait_cb cb;
    void *arg;
    struct item *items;
    size_t nitems;
    size_t outstanding; /* checks whose callback has not run */
};

static void on_checked(struct cm_probe_result *res, void *arg)
{
    struct item *it = arg;
    struct cm_revwait *w = it->w;

    it->job = NULL;
    /* A file's report names no trust anchor (nothing was verified): the one found for the
     * check goes again. */
    if (it->lent_anchor)
        cm_chain_clear(&res->tls.anchor);
    if (--w->outstanding > 0)
        return;
    /* cb may free what arg points to; w is not touched by anyone else after it. */
    w->cb(w->arg);
    free(w->items);
    free(w);
}

/* Whether res has certificates whose revocation can be looked at. The chain is final here:
 * a posture pass that adopts one has reported before the run gets this far. */
static bool checkable(const struct cm_probe_result *res)
{
    return res && res->tls.chain.count > 0;
}

/* For a file: the trust-store certificate (of ca_file, else the system store) that issued the
 * file's last certificate, when no certificate of the file did (a chain file ends with an
 * intermediate). */
static bool lend_anchor(struct cm_tls_ctx *tls, const char *ca_file, struct cm_probe_result *res)
{
    const struct cm_tls_profile store = {ca_file, NULL, NULL};

    if (!tls || !res->path || res->tls.anchor.count)
        return false;
    if (cm_tls_ctx_find_anchor(tls, &store, &res->tls.chain, &res->tls.anchor) < 0) {
        cm_chain_clear(&res->tls.anchor);
        return false;
    }
    return res->tls.anchor.count > 0;
}

int cm_revwait_start(struct cm_revctx *rev, struct cm_tls_ctx *tls, const char *ca_file,
                     struct cm_probe_result *const *res, size_t n, uint64_t timeout_ms,
                     const char *name, cm_revwait_cb cb, void *arg, struct cm_revwait **out)
{
    struct cm_revwait *w;
    size_t want = 0;

    for (size_t i = 0; i < n; i++)
        want += checkable(res[i]);
    if (!rev || !want)
        return 1;
    if (!(w = calloc(1, sizeof(*w))) || !(w->items = calloc(want, sizeof(*w->items)))) {
        free(w);
        cm_log_error("revocation", "target=%s out of memory: judged without revocation data",
                     name);
        return -ENOMEM;
    }
    w->cb = cb;
    w->arg = arg;
    for (size_t i = 0; i < n; i++) {
        struct item *it = &w->items[w->nitems];
        int rc;
        if (!checkable(res[i]))
            continue;
        it->w = w;
        it->lent_anchor = lend_anchor(tls, ca_file, res[i]);
        /* cm_rev_check never runs its callback inside the call: outstanding cannot reach 0
         * before the loop ends. */
        rc = cm_rev_check(rev, res[i], timeout_ms, on_checked, it, &it->job);
        if (rc < 0) {
            cm_log_error("revocation", "target=%s check of %s cannot start: %s", name,
                         res[i]->target ? res[i]->target : name, cm_strerror(rc));
            if (it->lent_anchor)
                cm_chain_clear(&res[i]->tls.anchor);
            it->lent_anchor = false;
            continue;
        }
        w->nitems++;
        w->outstanding++;
    }
    if (w->outstanding == 0) {
        free(w->items);
        free(w);
        return -ENOMEM;
    }
    cm_log_debug("revocation", "target=%s checks=%zu waiting timeout_ms=%llu", name, w->nitems,
                 (unsigned long long)timeout_ms);
    *out = w;
    return 0;
}

void cm_revwait_cancel(struct cm_revwait *w)
{
    if (!w)
        return;
    /* Each cancel runs one check's callback at once; the last one ends the wait (and frees
     * w): stop there. */
    for (size_t k = 0; k < w->nitems; k++) {
        struct cm_rev_job *j = w->items[k].job;
        bool last = j && w->outstanding == 1;
        cm_rev_cancel(j);
        if (last)
            return;
    }
}
