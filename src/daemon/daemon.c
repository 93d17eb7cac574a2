/* The daemon. Ownership, in one place:
 * - struct cm_gen (config + TLS context) is reference-counted: the daemon holds the current one,
 *   and every run in flight holds the one it started under, because its probe borrows that
 *   config's target and that context. A reload swaps the daemon's reference only.
 * - struct dtarget is one configured target. It lives while configured, and past a reload that
 *   removed it only until its run in flight reports (then it frees itself).
 * - The state store belongs to the daemon; runs write into it when they end. */
#include "certmon/daemon/daemon.h"
#include "certmon/analysis/analyze.h"
#include "certmon/daemon/discovery.h"
#include "certmon/daemon/gen.h"
#include "certmon/daemon/web.h"
#include "certmon/http/httpc.h"
#include "certmon/notify/notify.h"
#include "certmon/probe/ari.h"
#include "certmon/daemon/process.h"
#include "certmon/daemon/revwait.h"
#include "certmon/daemon/sdnotify.h"
#include "certmon/probe/revocation.h"
#include "certmon/config/config.h"
#include "certmon/base/error.h"
#include "certmon/probe/filecert.h"
#include "certmon/base/log.h"
#include "certmon/base/text.h"
#include "certmon/probe/posture.h"
#include "certmon/probe/probe.h"
#include "certmon/probe/resolve.h"
#include "certmon/daemon/scheduler.h"
#include "certmon/daemon/state.h"
#include "certmon/daemon/store.h"
#include "certmon/probe/tlsio.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define DEFAULT_CONFIG "/etc/certmon/certmon.conf"

struct daemon;
struct dtarget;

/* What a target's run waits on (struct dtarget's op). */
enum dop { DOP_NONE = 0, DOP_PROBE, DOP_PASS, DOP_SCAN, DOP_REVWAIT };

/* A file target's run: what only a scan in flight and its recording need. Allocated when the
 * run starts and freed when it ends (end_run), so that the 100,000 endpoint targets of a large
 * configuration do not each carry it. */
struct dscan {
    /* The finished scan whose results are being recorded (see on_scan_batch); owned. */
    struct cm_file_scan_result res;
    size_t pos;           /* the next of res.items to record */
    uint64_t id;          /* marks the state entries this scan found */
    struct dtarget *next; /* d->scan_head's queue */
    bool failed;          /* a recorded result failed */
};

/* One configured target. At 100,000 targets each byte here is 100 kB of the daemon's memory:
 * what only a run in flight needs is a struct drun of its own, and a file scan's part a
 * struct dscan. */
/* A run in flight: the generation and target it started with, and what it waits on. Made
 * when the run starts and freed when it ends (64 runs at once, not 100,000). */
struct drun {
    struct cm_gen *gen;
    const struct cm_config_target *ct;
    /* What the run waits on, as op_kind says (none between its steps). They follow one
     * another, never two at once: probe, posture pass, revocation checks; or scan, revocation
     * checks. */
    union {
        struct cm_probe *probe;
        struct cm_posture_pass *pass;
        struct cm_file_scan_job *scan;
        struct cm_revwait *revwait;
    } op;
    /* The run's endpoint result while it waits for its posture pass (pass) or for its
     * revocation checks (revwait; NULL there for a scan, whose results are in fs). */
    struct cm_probe_result *res;
    struct dscan *fs;      /* a file target's run; NULL for endpoints */
    unsigned char op_kind; /* enum dop: which member of op is live */
};

struct dtarget {
    struct cm_sched_job job;
    struct daemon *d;
    const struct cm_config_target *ct; /* in gen */
    struct cm_gen *gen; /* the generation ct belongs to (not a reference: the daemon's or a
                         * reload's keeps it alive while it is this target's) */
    struct drun *run;   /* the run in flight, or NULL */
    unsigned char mark; /* while installing: 1 new, 2 changed */
    bool rerun_soon;    /* changed by a reload while running: run again shortly */
    bool removed;       /* dropped by a reload while running */
};

/* What the state file remembers of a target at start (restore_targets): when it last ran,
 * and how many runs in a row had failed. Kept only while the targets are installed. */
struct restored_sched {
    int64_t last;
    unsigned failures;
};

/* t's run waits on kind now: its callee writes op's member (set before the start call, which
 * may fail: then op_done). */
static void op_begin(struct dtarget *t, enum dop kind)
{
    t->run->op_kind = (unsigned char)kind;
    t->run->op.probe = NULL;
}

/* t's run waits on nothing (its wait has reported). */
static void op_done(struct dtarget *t)
{
    t->run->op_kind = DOP_NONE;
    t->run->op.probe = NULL;
}

struct daemon {
    uv_loop_t *loop;
    const char *config_path;
    struct cm_gen *gen;
    struct cm_resolver *resolver;
    struct cm_sched *sched;
    struct cm_state *state;
    struct dtarget **targets; /* the current config's, sorted by name */
    size_t ntargets;
    unsigned runs; /* runs in flight */
    uv_signal_t sig_hup, sig_term, sig_int;
    uv_timer_t stop_timer;
    uv_timer_t drop_timer;  /* drop_durable while reports wait for their commit */
    bool stopping, finished;
    char *state_path;       /* where the state is written (the current config's) */
    struct cm_store *store; /* its database's writer, or NULL (no state_file, or it failed) */
    bool log_level_forced;  /* --log-level or CERTMON_LOG_LEVEL: the config does not change it */
    int64_t reload_at;
    bool reload_ok;
    bool reloading;    /* a configuration load is on the thread pool */
    bool reload_again; /* SIGHUP came during it: load once more when it ends */
    uint64_t probes_ok, probes_failed;
    time_t pruned_at; /* when the history was last pruned; 0: not yet */
    bool pins_ready;  /* the pins of pin = "tofu" targets are known (read from the database at
                       * start): until then no first leaf is pinned */
    bool leaves_ready; /* the last leaves are restored from the history: until then a target's
                        * first leaf is not taken (a change across the restart would be lost) */
    struct cm_httpc *http;     /* outgoing HTTP and SMTP (notifiers, renewal information) */
    struct cm_ari_client *ari; /* renewal information, cached per certificate */
    struct cm_revctx *rev;     /* CRLs and OCSP answers, cached for the daemon's whole life
                                * (kept across reloads); NULL once stopping */
    struct cm_notify *notify;  /* the notifiers (their rows go to the store as they change:
                                * notify_hooks); NULL once closed */
    struct cm_web *web;        /* the HTTP endpoints (web.h); NULL once closed */
    uint64_t scan_seq;         /* numbers file scans, to mark the entries each one found */
    uv_idle_t scan_idle;       /* records scan results in batches */
    uv_idle_t check_idle;      /* checks restored reports in slices after the start */
    struct dtarget *scan_head; /* scans whose results wait to be recorded, in order */
    struct cm_sdnotify sd; /* systemd notifications ($NOTIFY_SOCKET); disabled without */
    uv_timer_t watchdog;   /* WATCHDOG=1 every half $WATCHDOG_USEC, from the loop */
    bool watchdog_init;    /* the timer was initialised (and must be closed) */
    bool sd_reloading;     /* RELOADING=1 sent, READY=1 not yet */
    /* Targets from discovery files (discovery.h): d->gen is the union it composed over the
     * loaded configuration. NULL once stopping. */
    struct cm_discovery *disc;
    /* Reports queued to the store, oldest first: each is let go from memory once its put is
     * durable (the database then serves it), so that 100,000 targets do not keep ~45 MB of
     * reports that only the API reads. */
    struct pending_drop {
        char *name;
        char *report; /* a reference: the pointer stays unique while it is compared */
        uint64_t mark;
    } *drops;
    size_t ndrops, drop_head, drop_cap;
};

static void apply_logging(struct daemon *d, const struct cm_config *cfg)
{
    if (!d->log_level_forced)
        cm_log_threshold = cfg->log_level;
    cm_log_use_syslog(cfg->log_syslog);
}

/* ---- State persistence ---- */

static void maybe_finish(struct daemon *d);
static void notify_write_all(struct daemon *d);

static void on_drop_timer(uv_timer_t *t);

/* Lets go of the reports whose puts are durable, oldest first. */
static void drop_durable(struct daemon *d)
{
    while (d->drop_head < d->ndrops) {
        struct pending_drop *p = &d->drops[d->drop_head];
        struct cm_state_entry *e;
        if (d->store && !cm_store_durable(d->store, p->mark))
            break;
        if (d->store && (e = cm_state_get(d->state, p->name)))
            cm_state_drop_report(e, p->report);
        cm_state_report_unref(p->report);
        free(p->name);
        d->drop_head++;
    }
    if (d->drop_head == d->ndrops)
        d->drop_head = d->ndrops = 0;
    else if (!d->stopping && !uv_is_active((uv_handle_t *)&d->drop_timer))
        /* Results come in bursts (a round, a file scan): the reports of the last one are let
         * go once their commit is through, not at the next burst (which replaces them). */
        uv_timer_start(&d->drop_timer, on_drop_timer, 2 * CM_STORE_COMMIT_MS, 0);
}

static void on_drop_timer(uv_timer_t *t)
{
    drop_durable(t->data);
}

/* Forgets the pending drops (their reports stay in memory): the store they wait for closes. */
static void drops_clear(struct daemon *d)
{
    for (size_t i = d->drop_head; i < d->ndrops; i++) {
        cm_state_report_unref(d->drops[i].report);
        free(d->drops[i].name);
    }
    d->drop_head = d->ndrops = 0;
}

/* Hands an entry's new fields to the store's writer thread (one row upsert, committed within
 * CM_STORE_COMMIT_MS), and notes its report to be let go once that is durable. */
static void persist(struct daemon *d, const struct cm_state_entry *e)
{
    struct pending_drop p;

    if (!d->store)
        return;
    if (cm_store_put(d->store, e) < 0) {
        cm_log_error("state", "target=%s out of memory queueing its write", e->name);
        return;
    }
    drop_durable(d);
    if (!e->report)
        return;
    if (d->ndrops == d->drop_cap) {
        /* Compact first: the live part is what the last commit interval queued. */
        if (d->drop_head > 0) {
            memmove(d->drops, d->drops + d->drop_head,
                    (d->ndrops - d->drop_head) * sizeof(*d->drops));
            d->ndrops -= d->drop_head;
            d->drop_head = 0;
        }
        if (d->ndrops == d->drop_cap) {
            size_t cap = d->drop_cap ? 2 * d->drop_cap : 256;
            struct pending_drop *v = realloc(d->drops, cap * sizeof(*v));
            if (!v)
                return; /* the report just stays in memory */
            d->drops = v;
            d->drop_cap = cap;
        }
    }
    if (!(p.name = strdup(e->name)))
        return;
    p.report = cm_state_report_ref(e);
    p.mark = cm_store_mark(d->store);
    d->drops[d->ndrops++] = p;
    if (!d->stopping && !uv_is_active((uv_handle_t *)&d->drop_timer))
        uv_timer_start(&d->drop_timer, on_drop_timer, 2 * CM_STORE_COMMIT_MS, 0);
}

/* Removes an entry from the state and its row from the store. */
static void forget_entry(struct daemon *d, struct cm_state_entry *e)
{
    if (d->store && cm_store_delete(d->store, e->name) < 0)
        cm_log_error("state", "target=%s out of memory queueing its removal", e->name);
    if (d->store && e->pin && cm_store_unpin(d->store, e->name) < 0)
        cm_log_error("state", "target=%s out of memory queueing its unpinning", e->name);
    cm_state_remove(d->state, e);
}

/* At exit: commit what the store has queued (the state's rows and the notifiers'), nothing
 * serialised whole. */
static void flush_state_now(struct daemon *d)
{
    if (d->store) {
        struct cm_store_stats stats;
        size_t n, on_disk = 0;
        struct cm_state_entry *const *es = cm_state_entries(d->state, &n);
        cm_store_get_stats(d->store, &stats);
        for (size_t i = 0; i < n; i++)
            on_disk += es[i]->report_on_disk;
        if (cm_store_close(d->store) == 0)
            cm_log_info("state",
                        "file=%s entries=%zu reports_on_disk=%zu rows_written=%llu commits=%llu "
                        "folds=%llu closed",
                        d->state_path, n, on_disk, (unsigned long long)stats.rows_written,
                        (unsigned long long)stats.commits, (unsigned long long)stats.folds);
        d->store = NULL;
    }
}

/* ---- Runs ---- */

static void end_run(struct dtarget *t, bool failed)
{
    struct daemon *d = t->d;

    if (t->run) {
        cm_gen_unref(t->run->gen);
        free(t->run->fs); /* its results are cleared by now */
        free(t->run);
        t->run = NULL;
    }
    d->runs--;
    if (t->removed) {
        if (!d->stopping)
            cm_sched_detach(d->sched, &t->job);
        free(t);
    } else if (!d->stopping) {
        cm_sched_done(d->sched, &t->job, failed);
        if (t->rerun_soon)
            cm_sched_reschedule(d->sched, &t->job, 1000);
        t->rerun_soon = false;
    }
    if (d->stopping)
        maybe_finish(d);
}

static void findings_list(const struct cm_findings *f, char *buf, size_t len)
{
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < f->count && off + 1 < len; i++) {
        int n = snprintf(buf + off, len - off, "%s%s", i ? "," : "", f->items[i].id);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    if (off >= len && len > 4)
        memcpy(buf + len - 4, "...", 4);
    if (!buf[0])
        snprintf(buf, len, "none");
}

/* How often a leaf served again moves its history row's last_seen: a result a minute would
 * otherwise write a row a minute per target. */
#define HISTORY_REFRESH_S 3600

/* How often the history is pruned of rows older than history_days. */
#define HISTORY_PRUNE_S 3600

/* Whom the result's chain was trusted by: the system store (public), only the target's own
 * ca_file (private), or neither; unknown without a verification. */
static enum cm_leaf_trust trust_of(const struct cm_probe_result *res)
{
    if (!res->tls.verify.done)
        return CM_TRUST_UNKNOWN;
    if (res->tls.verify.public_chain)
        return CM_TRUST_PUBLIC;
    return res->tls.verify.trusted ? CM_TRUST_PRIVATE : CM_TRUST_UNTRUSTED;
}

/* Follows the served leaf of entry e: a new leaf is compared with the previous one (a renewal
 * is logged and counted; a material change too, and remembered for change_window so that the
 * analysis raises cert.changed), and written to the history; the same leaf moves last_seen at
 * most once per HISTORY_REFRESH_S. The material change in the window is attached to res.
 * Returns what the leaf's step was (CM_CHANGE_NONE for the same leaf or a first one). */
static enum cm_change_kind track_leaf(struct daemon *d, struct cm_state_entry *e,
                                      struct cm_probe_result *res, time_t now)
{
    enum cm_change_kind k = CM_CHANGE_NONE;
    const struct cm_config *cfg = d->gen->cfg;
    const struct cm_cert *leaf;
    struct cm_leaf_summary cur, *keep;
    char what[1024], old_hex[CM_SHA256_HEX], new_hex[CM_SHA256_HEX];
    bool write = false;

    /* A file whose first certificate is a CA's is a bundle of anchors, not a served leaf. */
    if (res->tls.chain.count == 0 || !res->tls.chain.certs[0].sha256 ||
        (res->path && res->tls.chain.certs[0].is_ca) || (!e->leaf && !d->leaves_ready))
        goto attach;
    leaf = &res->tls.chain.certs[0];
    if (!e->leaf || !cm_leaf_summary_is(e->leaf, leaf->sha256)) {
        int rc = cm_leaf_summary_of(leaf, &cur);
        if (rc < 0) {
            cm_log_error("state", "target=%s %s", e->name,
                         rc == -EINVAL ? "leaf without a SHA-256 fingerprint: not followed"
                                       : "out of memory following its leaf");
            goto attach;
        }
        cur.trust = trust_of(res);
        if (!(keep = cm_leaf_summary_new(&cur))) {
            cm_leaf_summary_clear(&cur);
            cm_log_error("state", "target=%s out of memory following its leaf", e->name);
            goto attach;
        }
        if (e->leaf) {
            k = cm_change_classify(e->leaf, &cur, what, sizeof(what));
            cm_hex_encode(e->leaf->sha256, CM_SHA256_LEN, old_hex);
            cm_hex_encode(cur.sha256, CM_SHA256_LEN, new_hex);
        }
        if (k == CM_CHANGE_RENEWAL) {
            char until[32];
            cm_time_rfc3339(cur.not_after, until, sizeof(until));
            e->renewals++;
            cm_log_info("target", "target=%s certificate renewed, now valid until %s old=%s new=%s",
                        e->name, until, old_hex, new_hex);
        } else if (k == CM_CHANGE_MATERIAL) {
            struct cm_change *c = calloc(1, sizeof(*c));
            e->changes++;
            cm_log_warn("target", "target=%s certificate changed: %s old=%s new=%s", e->name, what,
                        old_hex, new_hex);
            if (c && (c->what = strdup(what)) && (c->old_sha256 = strdup(old_hex)) &&
                (c->new_sha256 = strdup(new_hex))) {
                c->at = now;
                c->until = now + (int64_t)(cfg->change_window_ms / 1000);
                cm_change_free(e->change);
                e->change = c;
            } else {
                cm_change_free(c);
                cm_log_error("state", "target=%s out of memory noting its change", e->name);
            }
        }
        cm_leaf_summary_free(e->leaf);
        cm_leaf_summary_clear(&cur);
        e->leaf = keep;
        write = true;
    } else if (now - e->leaf_written >= HISTORY_REFRESH_S || now < e->leaf_written) {
        write = true;
    }
    if (write && d->store) {
        if (cm_store_seen_as(d->store, e->name, &res->tls.chain, trust_of(res), now) < 0)
            cm_log_error("state", "target=%s out of memory queueing its history", e->name);
        else
            e->leaf_written = now;
    }
attach:
    if (e->change && now >= e->change->until) {
        cm_change_free(e->change);
        e->change = NULL;
    }
    if (e->change && !res->change && !(res->change = cm_change_copy(e->change)))
        cm_log_error("state", "target=%s out of memory attaching its change", e->name);
    return k;
}

/* Hands the findings to the notifiers. After a renewal the expiry alerts it resolves say
 * "renewed, now valid until ...", and with notify_renewals the renewal itself is sent (an
 * info notice, cert.renewed). A result without a certificate (refused, timed out, a handshake
 * that failed before it) leaves the certificate's alerts as they are: its absence says nothing
 * about them, and resolving them would also lose what a renewal after the outage resolves. */
static void notify_result(struct daemon *d, const struct cm_config_target *ct, const char *name,
                          const struct cm_state_entry *e, const struct cm_findings *f,
                          enum cm_change_kind step, bool without_cert, time_t now)
{
    /* The state merged the first-seen times; it keeps them in the findings' order. */
    int64_t *fs = f->count ? calloc(f->count, sizeof(*fs)) : NULL;
    char until[32], note[64], msg[512];

    for (size_t i = 0; fs && i < f->count && i < e->seen_count; i++)
        fs[i] = e->seen[i].first_seen;
    if (without_cert) {
        cm_notify_observe_without_cert(d->notify, name, &ct->labels, f, fs, (int64_t)now);
        free(fs);
        return;
    }
    if (step != CM_CHANGE_RENEWAL || !e->leaf) {
        cm_notify_observe(d->notify, name, &ct->labels, f, fs, (int64_t)now);
        free(fs);
        return;
    }
    cm_time_rfc3339(e->leaf->not_after, until, sizeof(until));
    snprintf(note, sizeof(note), "renewed, now valid until %s", until);
    cm_notify_observe_renewed(d->notify, name, &ct->labels, f, fs, (int64_t)now, note);
    free(fs);
    if (ct->notify_renewals) {
        char hex[CM_SHA256_HEX];
        cm_hex_encode(e->leaf->sha256, CM_SHA256_LEN, hex);
        snprintf(msg, sizeof(msg), "certificate of %s renewed: valid until %s, fingerprint %s",
                 name, until, hex);
        cm_notify_event(d->notify, name, &ct->labels, "cert.renewed", msg, (int64_t)now);
    }
}

static void restore_pins(struct daemon *d, bool at_start);

/* Sets e's pin to cur (taken) at now, and queues its row. */
static void set_pin(struct daemon *d, struct cm_state_entry *e, struct cm_leaf_summary *cur,
                    time_t now)
{
    if (e->pin)
        cm_leaf_summary_clear(e->pin);
    free(e->pin);
    e->pin = cur;
    e->pinned_at = now;
    if (d->store && cm_store_pin(d->store, e->name, cur, now) < 0)
        cm_log_error("state", "target=%s out of memory queueing its pin", e->name);
}

/* pin = "tofu": the first leaf seen (once the stored pins are known) is pinned; a leaf with
 * the pinned key, or a renewal of the pinned leaf by the same issuer, moves the pin; anything
 * else is attached to res for cert.pin_mismatch, and the pin stays. A target that no longer
 * pins forgets its pin. */
static void track_pin(struct daemon *d, const struct cm_config_target *ct, struct cm_state_entry *e,
                      struct cm_probe_result *res, time_t now)
{
    const struct cm_cert *leaf;
    struct cm_leaf_summary *cur;
    enum cm_pin_step step;
    char pin_hex[CM_SHA256_HEX], cur_hex[CM_SHA256_HEX], spki_hex[CM_SHA256_HEX];

    if (!ct->pin_tofu) {
        if (e->pin) {
            cm_log_info("target", "target=%s pin on first use removed (pin is no longer set)",
                        e->name);
            cm_leaf_summary_clear(e->pin);
            free(e->pin);
            e->pin = NULL;
            if (d->store && cm_store_unpin(d->store, e->name) < 0)
                cm_log_error("state", "target=%s out of memory queueing its unpinning", e->name);
        }
        return;
    }
    if (res->path || res->tls.chain.count == 0 || !res->tls.chain.certs[0].sha256 ||
        (!e->pin && !d->pins_ready))
        return;
    leaf = &res->tls.chain.certs[0];
    if (!(cur = malloc(sizeof(*cur))) || cm_leaf_summary_of(leaf, cur) < 0) {
        free(cur);
        cm_log_error("state", "target=%s out of memory following its pin", e->name);
        return;
    }
    cm_hex_encode(cur->sha256, CM_SHA256_LEN, cur_hex);
    if (!e->pin) {
        if (cur->has_spki)
            cm_hex_encode(cur->spki_sha256, CM_SHA256_LEN, spki_hex);
        cm_log_info("target", "target=%s pinned on first use: sha256=%s spki=%s", e->name,
                    cur_hex, cur->has_spki ? spki_hex : "unknown");
        set_pin(d, e, cur, now);
        return;
    }
    step = cm_pin_judge(e->pin, cur);
    cm_hex_encode(e->pin->sha256, CM_SHA256_LEN, pin_hex);
    if (step == CM_PIN_MOVE_KEY || step == CM_PIN_MOVE_RENEWAL) {
        cm_log_info("target", "target=%s pin moved (%s): old=%s new=%s", e->name,
                    step == CM_PIN_MOVE_KEY ? "same key" : "renewal by the same issuer",
                    pin_hex, cur_hex);
        set_pin(d, e, cur, now);
        return;
    }
    cm_leaf_summary_clear(cur);
    free(cur);
    if (step == CM_PIN_MISMATCH && !res->pin_miss) {
        struct cm_pin_miss *m = calloc(1, sizeof(*m));
        spki_hex[0] = '\0';
        if (e->pin->has_spki)
            cm_hex_encode(e->pin->spki_sha256, CM_SHA256_LEN, spki_hex);
        if (!m || !(m->sha256 = strdup(pin_hex)) || !(m->spki_sha256 = strdup(spki_hex))) {
            cm_pin_miss_free(m);
            cm_log_error("state", "target=%s out of memory attaching its pin", e->name);
            return;
        }
        m->pinned_at = e->pinned_at;
        res->pin_miss = m;
    }
}

/* One read of an expect_file on the thread pool (filecert's scan), for the entry name. */
struct deploy_read {
    struct daemon *d;
    char *name;
    char *path;
};

/* The first certificate of the read file, or why there is none, into a new record that keeps
 * the previous record's newer_since (the server has been stale since the first newer file). */
static struct cm_deploy *deploy_of(const struct deploy_read *dr, int status,
                                   const struct cm_file_scan_result *r, const struct cm_deploy *old)
{
    const struct cm_probe_result *item = status == 0 && r->count ? r->items[0] : NULL;
    struct cm_deploy *nd = calloc(1, sizeof(*nd));
    const char *why = NULL;

    if (!nd || !(nd->path = strdup(dr->path))) {
        free(nd);
        return NULL;
    }
    if (!item)
        why = status == UV_ECANCELED ? "the read was cancelled" : "out of memory reading it";
    else if (item->error_kind != CM_ERRK_NONE)
        why = item->error_message ? item->error_message : "it cannot be read";
    else if (item->tls.chain.count == 0 || !item->tls.chain.certs[0].sha256)
        why = "it holds no certificate";
    if (why ? !(nd->error = strdup(why)) : cm_cert_copy(&nd->cert, &item->tls.chain.certs[0]) < 0) {
        cm_deploy_free(nd);
        return NULL;
    }
    /* Only names, dates and fingerprints are compared: the encoding is not kept. */
    free(nd->cert.der);
    nd->cert.der = NULL;
    nd->cert.der_len = 0;
    nd->newer_since = old && !old->error && !why ? old->newer_since : 0;
    return nd;
}

static void on_deploy_read(int status, struct cm_file_scan_result *r, void *arg)
{
    struct deploy_read *dr = arg;
    struct daemon *d = dr->d;
    struct cm_state_entry *e = d->stopping ? NULL : cm_state_get(d->state, dr->name);

    if (e) {
        struct cm_deploy *nd = deploy_of(dr, status, r, e->deploy);
        e->deploy_reading = false;
        if (!nd) {
            cm_log_error("state", "target=%s out of memory keeping its expect_file", e->name);
        } else {
            if (nd->error && (!e->deploy || !e->deploy->error))
                cm_log_warn("target", "target=%s expect_file=%s cannot be used: %s", e->name,
                            dr->path, nd->error);
            cm_deploy_free(e->deploy);
            e->deploy = nd;
        }
    }
    cm_file_scan_result_clear(r);
    free(dr->name);
    free(dr->path);
    free(dr);
}

/* expect_file: starts a read of the file (one at a time per target: at each result, so at
 * most once per interval), and compares the served leaf with the last read: since when the
 * file has held a newer certificate for the leaf's names is attached to res for deploy.stale.
 * The first result of a target has no read yet. */
static void track_deploy(struct daemon *d, const struct cm_config_target *ct,
                         struct cm_state_entry *e, struct cm_probe_result *res, time_t now)
{
    struct deploy_read *dr;

    if (!ct->opt->expect_file || (e->deploy && strcmp(e->deploy->path, ct->opt->expect_file) != 0)) {
        cm_deploy_free(e->deploy); /* none, or another file since a reload */
        e->deploy = NULL;
        if (!ct->opt->expect_file)
            return;
    }
    if (!e->deploy_reading && !d->stopping) {
        if (!(dr = calloc(1, sizeof(*dr))) || !(dr->d = d) || !(dr->name = strdup(e->name)) ||
            !(dr->path = strdup(ct->opt->expect_file)) ||
            cm_file_scan_start(d->loop, ct->opt->expect_file, NULL, on_deploy_read, dr, NULL) < 0) {
            if (dr) {
                free(dr->name);
                free(dr->path);
            }
            free(dr);
            cm_log_error("state", "target=%s expect_file cannot be read: out of memory", e->name);
        } else {
            e->deploy_reading = true;
        }
    }
    if (!e->deploy || res->path || res->tls.chain.count == 0 || !res->tls.chain.certs[0].sha256)
        return;
    e->deploy->grace_s = (int64_t)(ct->opt->deploy_grace_ms / 1000);
    if (e->deploy->error || !cm_deploy_newer(&res->tls.chain.certs[0], &e->deploy->cert))
        e->deploy->newer_since = 0;
    else if (!e->deploy->newer_since)
        e->deploy->newer_since = now;
    if (!(res->deploy = cm_deploy_copy(e->deploy)))
        cm_log_error("state", "target=%s out of memory attaching its expect_file", e->name);
}

/* Prunes the history of rows last seen more than history_days ago, once per HISTORY_PRUNE_S
 * (the first result after the start prunes at once). */
static void maybe_prune(struct daemon *d, time_t now)
{
    if (!d->store || (d->pruned_at && now - d->pruned_at < HISTORY_PRUNE_S && now >= d->pruned_at))
        return;
    d->pruned_at = now;
    if (cm_store_prune(d->store, now - (time_t)d->gen->cfg->history_days * 86400) < 0)
        cm_log_error("state", "out of memory queueing the history's pruning");
}

/* Judges one result, records it under name and logs a change of status. Returns the entry,
 * or NULL when it could not be recorded (out of memory). */
static struct cm_state_entry *record(struct daemon *d, const struct cm_config_target *ct, const char *name,
                   struct cm_probe_result *res, time_t now)
{
    struct cm_findings f = {0};
    struct cm_state_entry *e = cm_state_put(d->state, name, ct->name);
    enum cm_status old = CM_STATUS_OK, st;
    bool changed = false, had = e && e->has_status;
    char ids[512];
    enum cm_change_kind step = CM_CHANGE_NONE;

    if (res->error_kind == CM_ERRK_NONE)
        d->probes_ok++;
    else
        d->probes_failed++;
    if (e) {
        step = track_leaf(d, e, res, now);
        track_pin(d, ct, e, res, now);
        track_deploy(d, ct, e, res, now);
        maybe_prune(d, now);
    }
    if (!e || cm_analyze(res, ct->policy, now, &f) < 0 ||
        cm_state_record(e, res, &f, &ct->labels, now, &changed, &old) < 0) {
        cm_log_error("state", "target=%s out of memory recording a result", name);
        cm_findings_clear(&f);
        return NULL;
    }
    st = e->status;
    if (d->notify)
        notify_result(d, ct, name, e, &f, step, res->tls.chain.count == 0, now);
    findings_list(&f, ids, sizeof(ids));
    /* last_probe is the time the result carries (a file scan's: when the scan began, which
     * for a large directory is seconds before this line), as the database row will. */
    if (CM_LOG_DEBUG <= cm_log_threshold) {
        char at[32];
        cm_time_rfc3339(e->last_probe, at, sizeof(at));
        cm_log_debug("probe",
                     "target=%s status=%s last_probe=%s error=%s total_ms=%.1f findings=%s", name,
                     cm_status_name(st), at, res->error_message ? res->error_message : "none",
                     res->total_ms, ids);
    }
    if (changed) {
        /* One line per change of status: worse is a warning, better (or a first clean
         * result) is info. */
        if (st == CM_STATUS_OK)
            cm_log_info("target", "target=%s status=ok was=%s", name,
                        had ? cm_status_name(old) : "new");
        else
            cm_log_warn("target", "target=%s status=%s was=%s findings=%s%s%s", name,
                        cm_status_name(st), had ? cm_status_name(old) : "new", ids,
                        res->error_message ? " error=" : "",
                        res->error_message ? res->error_message : "");
    }
    cm_findings_clear(&f);
    persist(d, e);
    return e;
}

static int cmp_name_dtarget(const void *key, const void *elem)
{
    return strcmp(key, (*(struct dtarget *const *)elem)->ct->name);
}

/* True when two answers judge a certificate alike (the same window, or both without one). */
static bool ari_alike(const struct cm_ari *a, const struct cm_ari *b)
{
    if (!a || !b)
        return !a && !b;
    if (a->has_window != b->has_window)
        return false;
    if (!a->has_window)
        return true;
    return a->window_start == b->window_start && a->window_end == b->window_end &&
           !a->explanation_url == !b->explanation_url &&
           (!a->explanation_url || !strcmp(a->explanation_url, b->explanation_url));
}

/* A renewal information request a run started; the run itself has ended. */
struct ari_refresh {
    struct daemon *d;
    char *name;       /* the target's */
    struct cm_ari *old; /* what the run was judged with, or NULL */
};

/* When the answer changes the judgement, the target runs again at once to be judged with it
 * (from the cache): a new window shows within a moment, not an interval later. */
static void on_ari_refresh(struct cm_ari *a, void *arg)
{
    struct ari_refresh *r = arg;
    struct daemon *d = r->d;
    struct dtarget **tp;

    if (!d->stopping && a && !ari_alike(r->old, a) &&
        (tp = bsearch(r->name, d->targets, d->ntargets, sizeof(*d->targets), cmp_name_dtarget))) {
        if ((*tp)->run)
            (*tp)->rerun_soon = true;
        else
            cm_sched_reschedule(d->sched, &(*tp)->job, 0);
    }
    cm_ari_free(a);
    cm_ari_free(r->old);
    free(r->name);
    free(r);
}

/* Gives res the renewal information its target asks for. The run never waits for the CA:
 * it is judged with the last answer the cache holds, and when that is missing or due, a
 * request (bounded by the target's timeout) refreshes it behind (on_ari_refresh). An answer
 * known at once (a leaf without an id, a directory that failed a moment ago) is used at
 * once. */
static void attach_ari(struct daemon *d, const struct cm_config_target *ct,
                       struct cm_probe_result *res)
{
    struct cm_ari_source src = {ct->opt->ari_url, ct->opt->acme_directory, NULL};
    const struct cm_cert *leaf;
    struct ari_refresh *r;
    struct cm_ari *a = NULL;
    bool due = false;
    int rc;

    if (!d->ari || (!src.ari_url && !src.directory) || res->tls.chain.count == 0)
        return;
    leaf = &res->tls.chain.certs[0];
    if (cm_ari_peek(d->ari, &src, leaf, &res->ari, &due) < 0 || !due)
        return;
    if (!(r = calloc(1, sizeof(*r))) || !(r->name = strdup(ct->name)) ||
        (res->ari && !(r->old = cm_ari_copy(res->ari)))) {
        if (r)
            free(r->name);
        free(r);
        cm_log_error("ari", "target=%s out of memory", ct->name);
        return;
    }
    r->d = d;
    rc = cm_ari_lookup(d->ari, &src, leaf, ct->timeout_ms, on_ari_refresh, r, &a);
    if (rc == 0)
        return;
    if (rc < 0)
        cm_log_error("ari", "target=%s lookup cannot start: %s", ct->name, cm_strerror(rc));
    if (a) {
        cm_ari_free(res->ari);
        res->ari = a;
    }
    cm_ari_free(r->old);
    free(r->name);
    free(r);
}

/* The run's result, with its revocation checked (or not to be): recorded, and the run ends. */
static void complete_checked(struct dtarget *t, struct cm_probe_result *const *res, size_t n,
                             bool drop)
{
    struct cm_probe_result *r = res[0];
    bool failed = r->error_kind != CM_ERRK_NONE;

    (void)n;
    if (!drop)
        record(t->d, t->run->ct, t->run->ct->name, r, (time_t)r->finished_at);
    cm_probe_result_free(r);
    end_run(t, !drop && failed);
}

static void scan_checked(struct dtarget *t, struct cm_probe_result *const *res, size_t n,
                         bool drop);

/* The run's revocation checks have ended (or were cancelled): its results go on. */
static void on_revwait(void *arg)
{
    struct dtarget *t = arg;
    struct cm_probe_result *r = t->run->res;
    bool drop = t->d->stopping || t->removed;

    op_done(t);
    t->run->res = NULL;
    /* Both may end the run, and a removed target's run frees the target: t is not touched
     * after them. */
    if (r)
        complete_checked(t, &r, 1, drop);
    else
        scan_checked(t, t->run->fs->res.items, t->run->fs->res.count, drop);
}

/* Starts the revocation wait of t's run on res[0..n) when its policy says "auto", and gives
 * back the run's scheduler slot: from here it only waits on CAs. False when there is nothing
 * to wait for (the caller goes on at once). */
static bool revwait_start(struct dtarget *t, struct cm_probe_result *const *res, size_t n)
{
    struct daemon *d = t->d;
    const struct cm_config_target *ct = t->run->ct;

    if (!d->rev || d->stopping || ct->policy->revocation != CM_REVOCATION_AUTO)
        return false;
    op_begin(t, DOP_REVWAIT);
    if (cm_revwait_start(d->rev, t->run->gen->tls, ct->opt->ca_file, res, n,
                         ct->policy->revocation_timeout_ms, ct->name, on_revwait, t,
                         &t->run->op.revwait) != 0) {
        op_done(t);
        return false;
    }
    if (d->sched)
        cm_sched_release(d->sched, &t->job);
    return true;
}

static void complete(struct dtarget *t, struct cm_probe_result *res)
{
    attach_ari(t->d, t->run->ct, res);
    t->run->res = res;
    if (revwait_start(t, &res, 1))
        return;
    t->run->res = NULL;
    complete_checked(t, &res, 1, false);
}

static void on_posture(struct cm_posture *p, void *arg)
{
    struct dtarget *t = arg;
    struct cm_probe_result *res = t->run->res;
    struct cm_state_entry *e;

    t->run->res = NULL;
    if (t->d->stopping || t->removed) {
        op_done(t);
        cm_posture_free(p);
        cm_probe_result_free(res);
        end_run(t, false);
        return;
    }
    /* After a refused main handshake, the pass may have received the chain. */
    cm_posture_adopt_chain(t->run->op.pass, res);
    op_done(t);
    /* The state keeps the pass as it ran; the result gets a copy with its own handshake
     * folded in, exactly as `check` reports it. */
    if ((e = cm_state_put(t->d->state, t->run->ct->name, t->run->ct->name)) &&
        (res->posture = cm_posture_fold(p, &res->tls))) {
        cm_state_set_posture(e, p, res->finished_at);
    } else {
        cm_posture_free(p);
    }
    complete(t, res);
}

static void on_probe(struct cm_probe_result *res, void *arg)
{
    struct dtarget *t = arg;
    struct daemon *d = t->d;
    const struct cm_config_target *ct = t->run->ct;
    struct cm_state_entry *e;
    uint64_t spent = res->total_ms > 0 ? (uint64_t)ceil(res->total_ms) : 0;

    op_done(t);
    if (d->stopping || t->removed || res->error_kind == CM_ERRK_CANCELLED) {
        cm_probe_result_free(res);
        end_run(t, false);
        return;
    }
    e = cm_state_get(d->state, ct->name);
    if (res->error_kind == CM_ERRK_NONE && ct->posture_interval_ms > 0 && res->address[0]) {
        bool due = !e || !e->posture ||
                   (uint64_t)(res->finished_at - e->posture_at) * 1000 >= ct->posture_interval_ms;
        if (due && ct->timeout_ms > spent) {
            t->run->res = res;
            op_begin(t, DOP_PASS);
            if (cm_posture_start(&(struct cm_probe_env){d->loop, t->run->gen->tls, d->resolver},
                                 &ct->ep, res->address, ct->timeout_ms - spent, on_posture, t,
                                 &t->run->op.pass) == 0)
                return;
            op_done(t);
            t->run->res = NULL;
        }
        /* Between passes the latest one stands, with this handshake folded in. */
        if (e && e->posture)
            res->posture = cm_posture_fold(e->posture, &res->tls);
    } else if (res->tls_refused && ct->posture_interval_ms > 0 && res->address[0] &&
               ct->timeout_ms > spent) {
        /* A server that refused everything a current client offers may still accept
         * something weak: a pass on every such probe says what, and keeps the chain one of
         * its handshakes receives (the main handshake got none). */
        t->run->res = res;
        op_begin(t, DOP_PASS);
        if (cm_posture_start(&(struct cm_probe_env){d->loop, t->run->gen->tls, d->resolver}, &ct->ep,
                             res->address, ct->timeout_ms - spent, on_posture, t,
                             &t->run->op.pass) == 0) {
            if (res->tls.chain.count == 0)
                cm_posture_keep_chain(t->run->op.pass);
            return;
        }
        op_done(t);
        t->run->res = NULL;
    }
    complete(t, res);
}

/* A scan's results are recorded a batch per loop iteration: a directory of ten thousand
 * certificates must not hold up the loop for a second. */
#define SCAN_BATCH 128

static void scan_finish(struct dtarget *t, bool recorded)
{
    struct daemon *d = t->d;
    const struct cm_config_target *ct = t->run->ct;
    bool failed = t->run->fs->failed;

    if (recorded) {
        /* Files that are gone (or no longer match) leave the state: this target's entries
         * that the scan did not mark. */
        struct cm_state_entry *const *es;
        size_t n;
        es = cm_state_entries(d->state, &n);
        for (size_t i = n; i-- > 0;) {
            struct cm_state_entry *e = es[i];
            if (e->mark == t->run->fs->id || strcmp(e->owner, ct->name) != 0)
                continue;
            cm_log_info("target", "target=%s removed: no longer found by %s", e->name,
                        ct->name);
            if (d->notify)
                cm_notify_forget(d->notify, e->name, (int64_t)time(NULL));
            forget_entry(d, e);
            es = cm_state_entries(d->state, &n);
        }
    }
    cm_file_scan_result_clear(&t->run->fs->res);
    end_run(t, recorded && failed);
}

static void on_scan_batch(uv_idle_t *h)
{
    struct daemon *d = h->data;
    size_t budget = SCAN_BATCH;

    while (d->scan_head && budget > 0) {
        struct dtarget *t = d->scan_head;
        struct dscan *fs = t->run->fs;
        bool drop = d->stopping || t->removed;
        for (; !drop && fs->pos < fs->res.count && budget > 0; fs->pos++, budget--) {
            struct cm_probe_result *res = fs->res.items[fs->pos];
            struct cm_state_entry *e =
                record(d, t->run->ct, res->target, res, (time_t)res->finished_at);
            if (e)
                e->mark = fs->id;
            fs->failed |= res->error_kind != CM_ERRK_NONE;
        }
        if (!drop && fs->pos < fs->res.count)
            break;
        d->scan_head = fs->next;
        fs->next = NULL;
        scan_finish(t, !drop);
    }
    if (!d->scan_head)
        uv_idle_stop(h);
}

static void on_scan(int status, struct cm_file_scan_result *r, void *arg)
{
    struct dtarget *t = arg;
    struct daemon *d = t->d;

    op_done(t);
    if (status < 0 || d->stopping || t->removed) {
        cm_file_scan_result_clear(r);
        end_run(t, false);
        return;
    }
    t->run->fs->res = *r; /* r belongs to the scan job, which ends with this callback */
    if (revwait_start(t, t->run->fs->res.items, t->run->fs->res.count))
        return;
    scan_checked(t, NULL, 0, false);
}

/* A scan's results, with their revocation checked (or not to be), wait for on_scan_batch. */
static void scan_checked(struct dtarget *t, struct cm_probe_result *const *res, size_t n, bool drop)
{
    struct daemon *d = t->d;
    struct dtarget **pp;

    (void)res;
    (void)n;
    if (drop) {
        cm_file_scan_result_clear(&t->run->fs->res);
        end_run(t, false);
        return;
    }
    t->run->fs->pos = 0;
    t->run->fs->failed = false;
    t->run->fs->id = ++d->scan_seq;
    for (pp = &d->scan_head; *pp; pp = &(*pp)->run->fs->next)
        ;
    *pp = t;
    uv_idle_start(&d->scan_idle, on_scan_batch);
}

/* At shutdown: scans waiting to be recorded end unrecorded. */
static void drop_scans(struct daemon *d)
{
    while (d->scan_head) {
        struct dtarget *t = d->scan_head;
        d->scan_head = t->run->fs->next;
        t->run->fs->next = NULL;
        scan_finish(t, false);
    }
    uv_idle_stop(&d->scan_idle);
}

static void on_run(struct cm_sched_job *job, void *arg)
{
    struct daemon *d = arg;
    struct dtarget *t = (struct dtarget *)job;
    int rc;

    d->runs++;
    if (!(t->run = calloc(1, sizeof(*t->run)))) {
        cm_log_error("probe", "target=%s cannot start: %s", t->ct->name, cm_strerror(-ENOMEM));
        end_run(t, true);
        return;
    }
    t->run->gen = cm_gen_ref(t->gen);
    t->run->ct = t->ct;
    op_begin(t, t->ct->kind == CM_TARGET_FILE ? DOP_SCAN : DOP_PROBE);
    if (t->ct->kind == CM_TARGET_FILE)
        rc = !(t->run->fs = calloc(1, sizeof(*t->run->fs)))
                 ? -ENOMEM
                 : cm_file_scan_start(d->loop, t->ct->opt->path, &(struct cm_file_opts){t->ct->opt->password},
                                      on_scan, t, &t->run->op.scan);
    else
        rc = cm_probe_start(&(struct cm_probe_env){d->loop, t->gen->tls, d->resolver}, &t->ct->ep,
                            t->ct->timeout_ms, on_probe, t, &t->run->op.probe);
    if (rc < 0) {
        op_done(t);
        cm_log_error("probe", "target=%s cannot start: %s", t->ct->name, cm_strerror(rc));
        end_run(t, true);
    }
}

/* Cancels whatever t's run is doing; its callback then ends the run. */
static void cancel_run(struct dtarget *t)
{
    if (!t->run)
        return;
    switch ((enum dop)t->run->op_kind) {
    case DOP_PROBE:
        cm_probe_cancel(t->run->op.probe);
        break;
    case DOP_PASS:
        cm_posture_cancel(t->run->op.pass);
        break;
    case DOP_SCAN:
        cm_file_scan_cancel(t->run->op.scan);
        break;
    case DOP_REVWAIT:
        cm_revwait_cancel(t->run->op.revwait);
        break;
    case DOP_NONE:
        break;
    }
}

/* ---- Targets and reloads ---- */

static int cmp_dtarget(const void *a, const void *b)
{
    return strcmp((*(struct dtarget *const *)a)->ct->name, (*(struct dtarget *const *)b)->ct->name);
}

static void set_job_params(struct dtarget *t, const struct cm_config *cfg)
{
    t->job.interval_ms = t->ct->interval_ms;
    t->job.retry_min_ms = cfg->retry_min_ms < t->ct->interval_ms ? cfg->retry_min_ms
                                                                 : t->ct->interval_ms;
}

/* First delay of a target: continue the schedule the state file remembers, or spread the n new
 * targets evenly over min(interval, startup_spread, n x 100 ms) so that they do not all start
 * at once. */
static uint64_t first_delay(const struct dtarget *t, const struct restored_sched *r,
                            const struct cm_config *cfg, size_t k, size_t n, time_t now)
{
    uint64_t spread = t->ct->interval_ms < cfg->startup_spread_ms ? t->ct->interval_ms
                                                                  : cfg->startup_spread_ms;

    /* Small configurations start at once: the herd to avoid is one of thousands. */
    if (spread > (uint64_t)n * CM_SPREAD_MS_PER_TARGET)
        spread = (uint64_t)n * CM_SPREAD_MS_PER_TARGET;

    if (r->last > 0 && r->last <= (int64_t)now) {
        struct cm_sched_job j = t->job;
        j.failures = r->failures;
        uint64_t next = cm_sched_next_delay(&j, r->failures > 0);
        uint64_t since = (uint64_t)(now - r->last) * 1000;
        if (since < next)
            return next - since;
    }
    return n > 1 ? spread * k / n : 0;
}

static size_t find_index(struct dtarget **v, size_t n, const char *name)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(v[mid]->ct->name, name);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SIZE_MAX;
}

/* Drops the state entries the targets named in owners (sorted) produced: their own, or their
 * files'. One pass over the state, whatever the number of owners. */
static void forget_state(struct daemon *d, const char **owners, size_t n)
{
    struct cm_state_entry *const *es;
    size_t ne;

    if (n == 0)
        return;
    es = cm_state_entries(d->state, &ne);
    for (size_t i = ne; i-- > 0;) {
        if (bsearch(&es[i]->owner, owners, n, sizeof(*owners), cm_cmp_strp)) {
            if (d->notify)
                cm_notify_forget(d->notify, es[i]->name, (int64_t)time(NULL));
            forget_entry(d, es[i]);
            es = cm_state_entries(d->state, &ne);
        }
    }
}

/* For each target of cfg, the old target of the same name (from[i], its index in old) or a
 * new one (from[i] SIZE_MAX) into v. Returns 0, or -ENOMEM with nothing allocated left. */
static int match_targets(const struct cm_config *cfg, struct dtarget **old, size_t nold,
                         struct dtarget **v, size_t *from)
{
    for (size_t i = 0; i < cfg->target_count; i++) {
        from[i] = find_index(old, nold, cfg->targets[i].name);
        if (from[i] != SIZE_MAX) {
            v[i] = old[from[i]];
        } else if (!(v[i] = calloc(1, sizeof(*v[i])))) {
            for (size_t j = 0; j < i; j++)
                if (from[j] == SIZE_MAX)
                    free(v[j]);
            return -ENOMEM;
        }
    }
    return 0;
}

/* Points every target of v at generation g before any run can start under it, marking each
 * new (1) or changed (2); kept[] flags the old targets reused. Counts new and changed ones. */
static void bind_targets(struct daemon *d, struct cm_gen *g, struct dtarget **v, const size_t *from,
                         bool *kept, size_t *nnew, size_t *nchanged)
{
    const struct cm_config *cfg = g->cfg;

    for (size_t i = 0; i < cfg->target_count; i++) {
        const struct cm_config_target *ct = &cfg->targets[i];
        struct dtarget *t = v[i];
        if (from[i] != SIZE_MAX) {
            kept[from[i]] = true;
            t->mark = t->ct->spec_hash != ct->spec_hash ? 2 : 0;
            *nchanged += t->mark == 2;
        } else {
            t->d = d;
            t->mark = 1;
            (*nnew)++;
        }
        t->ct = ct;
        t->gen = g;
        set_job_params(t, cfg);
    }
}

/* Drops the old targets not kept, with their state: a running one is cancelled and frees
 * itself when its run ends. gone has room for nold names. */
static void drop_targets(struct daemon *d, struct dtarget **old, size_t nold, const bool *kept,
                         const char **gone)
{
    size_t ngone = 0;

    for (size_t i = 0; i < nold; i++)
        if (!kept[i])
            gone[ngone++] = old[i]->ct->name; /* the old generation outlives this call */
    qsort(gone, ngone, sizeof(*gone), cm_cmp_strp);
    forget_state(d, gone, ngone);
    for (size_t i = 0; i < nold; i++) {
        struct dtarget *t = old[i];
        if (kept[i])
            continue;
        cm_log_info("config", "target=%s removed", t->ct->name);
        if (t->job.state == CM_JOB_RUNNING) {
            t->removed = true;
            cancel_run(t);
        } else {
            cm_sched_detach(d->sched, &t->job);
            free(t);
        }
    }
}

/* At start, what the state file remembers schedules the targets it knows (v sorted by name;
 * into rs[], parallel to v), and entries of targets no longer configured are forgotten. */
static void restore_targets(struct daemon *d, struct dtarget **v, size_t n,
                            struct restored_sched *rs)
{
    struct cm_state_entry *const *es;
    size_t ne;

    es = cm_state_entries(d->state, &ne);
    for (size_t i = ne; i-- > 0;) {
        struct cm_state_entry *e = es[i];
        size_t j = find_index(v, n, e->owner);
        if (j == SIZE_MAX) {
            cm_log_info("state", "target=%s dropped: no longer configured", e->name);
            if (d->notify)
                cm_notify_forget(d->notify, e->name, (int64_t)time(NULL));
            forget_entry(d, e);
            es = cm_state_entries(d->state, &ne);
            continue;
        }
        if (e->last_probe > rs[j].last) {
            rs[j].last = e->last_probe;
            rs[j].failures = e->failures;
        }
    }
}

/* Schedules the targets bind_targets marked: new ones spread over the start, changed ones
 * soon (a reload touching every target is no herd). reload: a reload, not the start. */
static void schedule_marked(struct daemon *d, const struct cm_config *cfg, struct dtarget **v,
                            const struct restored_sched *rs, size_t n, size_t nnew, size_t nchanged,
                            bool reload, time_t now)
{
    size_t knew = 0, kchanged = 0;

    for (size_t i = 0; i < n; i++) {
        struct dtarget *t = v[i];
        if (t->mark == 1) {
            t->job.failures = rs[i].failures;
            if (cm_sched_add(d->sched, &t->job, first_delay(t, &rs[i], cfg, knew++, nnew, now)) < 0)
                cm_log_error("sched", "target=%s out of memory scheduling it", t->ct->name);
            if (reload)
                cm_log_info("config", "target=%s added", t->ct->name);
        } else if (t->mark == 2) {
            /* Soon, spread a little so that a reload touching every target is no herd; one
             * running now goes again shortly after it ends. */
            if (t->job.state == CM_JOB_RUNNING)
                t->rerun_soon = true;
            else
                cm_sched_reschedule(d->sched, &t->job, 1000 * kchanged / (nchanged ? nchanged : 1));
            kchanged++;
            cm_log_info("config", "target=%s changed", t->ct->name);
        }
        t->mark = 0;
    }
}

/* Builds the target list for generation g, reusing the target of the old list (sorted by
 * name) with the same name: its state and schedule stay; a changed spec brings its next run
 * forward. Old targets not in g are dropped with their state (a running one is cancelled and
 * frees itself when its run ends). Nothing changes unless everything could be allocated. */
static int install_targets(struct daemon *d, struct cm_gen *g, struct dtarget **old, size_t nold)
{
    const struct cm_config *cfg = g->cfg;
    size_t n = cfg->target_count;
    struct dtarget **v = calloc(n ? n : 1, sizeof(*v));
    size_t *from = calloc(n ? n : 1, sizeof(*from));
    bool *kept = calloc(nold ? nold : 1, sizeof(*kept));
    const char **gone = calloc(nold ? nold : 1, sizeof(*gone));
    struct restored_sched *rs = calloc(n ? n : 1, sizeof(*rs)); /* all zero after a reload */
    size_t nnew = 0, nchanged = 0;
    int rc = -ENOMEM;

    /* Allocation first: on failure nothing has been touched. */
    if (v && from && kept && gone && rs && match_targets(cfg, old, nold, v, from) == 0) {
        bind_targets(d, g, v, from, kept, &nnew, &nchanged);
        drop_targets(d, old, nold, kept, gone);
        qsort(v, n, sizeof(*v), cmp_dtarget);
        if (nold == 0)
            restore_targets(d, v, n, rs);
        schedule_marked(d, cfg, v, rs, n, nnew, nchanged, nold > 0, time(NULL));
        free(d->targets);
        d->targets = v;
        d->ntargets = n;
        v = NULL;
        rc = 0;
    }
    free(v);
    free(from);
    free(kept);
    free(gone);
    free(rs);
    return rc;
}

static void set_state_path(struct daemon *d, const struct cm_config *cfg)
{
    free(d->state_path);
    d->state_path = cfg->state_file ? strdup(cfg->state_file) : NULL;
}

/* Reads every report the entries left in the database at path back into memory (blocking). */
static void reports_back(struct daemon *d, const char *path)
{
    size_t n, k = 0;
    struct cm_state_entry *const *es = cm_state_entries(d->state, &n);
    struct cm_state_entry **on = calloc(n ? n : 1, sizeof(*on));
    const char **names = calloc(n ? n : 1, sizeof(*names));
    char **refs = calloc(n ? n : 1, sizeof(*refs));
    char err[600];

    if (!on || !names || !refs) {
        cm_log_error("state", "out of memory reading the reports back from %s", path);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (!es[i]->report && es[i]->report_on_disk) {
            on[k] = es[i];
            names[k++] = es[i]->name;
        }
    if (k && cm_store_reports(path, names, k, refs, err, sizeof(err)) < 0) {
        cm_log_error("state", "%s: the reports it holds are not taken along", err);
        goto out;
    }
    for (size_t i = 0; i < k; i++)
        cm_state_take_report(on[i], refs[i]);
out:
    free(on);
    free(names);
    free(refs);
}

/* A reload named another state_file: the old database gets what is queued and is closed, the
 * new one (opened, or made, here) takes the whole state. Both block the loop once, for an
 * operator's change of a path. */
static void switch_store(struct daemon *d, const struct cm_config *cfg)
{
    struct cm_state_entry *const *es;
    char err[600];
    size_t n;

    drops_clear(d);
    if (d->store && cm_store_close(d->store) < 0)
        cm_log_error("state", "file=%s last write failed", d->state_path);
    d->store = NULL;
    /* The new database takes every report: those only the old one holds are read back. */
    if (d->state_path)
        reports_back(d, d->state_path);
    set_state_path(d, cfg);
    if (!d->state_path) {
        cm_log_warn("state", "no global.state_file: state is not persisted across restarts");
        return;
    }
    if (cm_store_open(d->loop, d->state_path, NULL, time(NULL), &d->store, err, sizeof(err)) < 0) {
        cm_log_error("state", "%s", err);
        cm_log_error("state", "file=%s cannot be used: state is not persisted", d->state_path);
        return;
    }
    es = cm_state_entries(d->state, &n);
    if (cm_store_delete_all(d->store) < 0)
        cm_log_error("state", "file=%s out of memory replacing its rows", d->state_path);
    for (size_t i = 0; i < n; i++) {
        persist(d, es[i]);
        if (es[i]->pin && cm_store_pin(d->store, es[i]->name, es[i]->pin, es[i]->pinned_at) < 0)
            cm_log_error("state", "target=%s out of memory queueing its pin", es[i]->name);
    }
    notify_write_all(d);
    cm_log_info("state", "file=%s entries=%zu written: the state moved there", d->state_path, n);
}

/* A reload loads the new configuration on the thread pool: reading and checking files may
 * take long (a slow disk, ten thousand targets, a credentials file on a dead mount), and the
 * loop goes on probing and answering /healthz with the old configuration meanwhile. */
struct reload_job {
    uv_work_t req;
    struct daemon *d;
    char *path;
    struct cm_gen *g; /* the result, or NULL */
    struct cm_config_errors errs;
    int rc;
};

static void on_reload_work(uv_work_t *req)
{
    struct reload_job *j = req->data;

    j->g = cm_gen_build(j->path, &j->errs, &j->rc);
}

/* Discovery changed its targets: the union it composed (g, a reference taken over) replaces
 * the current generation, installed as a reload's would be. */
static void on_discovered(void *arg, struct cm_gen *g)
{
    struct daemon *d = arg;
    struct dtarget **old = d->targets;
    size_t nold = d->ntargets;

    if (d->stopping) {
        cm_gen_unref(g);
        return;
    }
    d->targets = NULL;
    if (install_targets(d, g, old, nold) < 0) {
        d->targets = old;
        cm_gen_unref(g);
        cm_log_error("discovery", "out of memory applying discovered targets; the previous "
                                  "ones stay");
        return;
    }
    free(old);
    cm_gen_unref(d->gen);
    d->gen = g;
    cm_log_info("discovery", "targets=%zu applied", g->cfg->target_count);
}

/* The discovery of a newly loaded generation g (a reference taken over): the files of the
 * previous one keep their last good content under it. Returns the union to install (a
 * reference) with *out the new discovery, or NULL (out of memory). */
static struct cm_gen *discovery_for(struct daemon *d, struct cm_gen *g, struct cm_discovery **out)
{
    struct cm_gen *u = NULL;

    if (cm_discovery_new(d->loop, g, d->disc, on_discovered, d, out) == 0 &&
        !(u = cm_discovery_gen(*out))) {
        cm_discovery_close(*out);
        *out = NULL;
    }
    cm_gen_unref(g);
    return u;
}

/* Installs a loaded generation (on the loop). */
static void reload_apply(struct daemon *d, struct cm_gen *g)
{
    struct dtarget **old = d->targets;
    size_t nold = d->ntargets;
    struct cm_discovery *disc = NULL;
    bool reread_pins = false;

    if (!(g = discovery_for(d, g, &disc))) {
        d->reload_ok = false;
        cm_log_error("config", "file=%s reload failed: out of memory", d->config_path);
        return;
    }
    d->targets = NULL;
    if (install_targets(d, g, old, nold) < 0) {
        d->targets = old;
        d->reload_ok = false;
        cm_gen_unref(g);
        cm_discovery_close(disc);
        cm_log_error("config", "file=%s reload failed: out of memory", d->config_path);
        return;
    }
    free(old);
    cm_discovery_close(d->disc);
    d->disc = disc;
    cm_discovery_start(disc);
    malloc_trim(0);
    apply_logging(d, g->cfg);
    cm_sched_set_concurrency(d->sched,
                             (unsigned)cm_fd_limit_fit((long)g->cfg->concurrency,
                                                       CM_POSTURE_MAX_HANDSHAKES, "certmon run"));
    if (!d->state_path || !g->cfg->state_file || strcmp(d->state_path, g->cfg->state_file) != 0)
        switch_store(d, g->cfg);
    else
        reread_pins = true;
    if (d->notify && cm_notify_reconfigure(d->notify, g->cfg) < 0)
        cm_log_error("notify", "out of memory applying the notifiers of the reload; the "
                               "previous notifiers stay");
    bool relisten = !cm_web_same(d->gen->cfg, g->cfg) || g->cfg->tls_cert != NULL;
    cm_gen_unref(d->gen);
    d->gen = g;
    d->reload_ok = true;
    if (relisten) {
        /* New addresses, or TLS files that may have been renewed: listen afresh. */
        char werr[512];
        cm_web_stop(d->web);
        if (cm_web_start(d->web, g->cfg, werr, sizeof(werr)) < 0) {
            cm_log_error("web", "cannot listen after the reload: %s", werr);
            d->reload_ok = false;
        }
    }
    cm_log_info("config", "file=%s reloaded targets=%zu", d->config_path, g->cfg->target_count);
    if (reread_pins)
        restore_pins(d, false);
}

static void reload(struct daemon *d);

/* READY=1 to systemd (sdnotify.h), with the configuration in force as the status line. */
static void sd_ready(struct daemon *d)
{
    d->sd_reloading = false;
    cm_sdnotify_sendf(&d->sd, "READY=1\nSTATUS=%s; %zu targets from %s",
                      d->reload_ok ? "running" : "running; the last reload failed",
                      d->gen->cfg->target_count, d->config_path);
}

static void on_watchdog(uv_timer_t *timer)
{
    struct daemon *d = timer->data;

    cm_sdnotify_send(&d->sd, "WATCHDOG=1");
}

static void on_reload_done(uv_work_t *req, int status)
{
    struct reload_job *j = req->data;
    struct daemon *d = j->d;

    d->reloading = false;
    if (d->stopping || status == UV_ECANCELED) {
        cm_gen_unref(j->g);
    } else if (!j->g) {
        d->reload_ok = false;
        cm_gen_report(d->config_path, j->rc, &j->errs, true);
        cm_log_error("config", "file=%s reload failed; the previous configuration stays in force",
                     d->config_path);
    } else {
        reload_apply(d, j->g);
    }
    cm_config_errors_clear(&j->errs);
    free(j->path);
    free(j);
    if (d->stopping) {
        maybe_finish(d);
    } else if (d->reload_again) {
        d->reload_again = false;
        reload(d);
    }
    /* The reload systemd was told of ends when no load follows it, applied or not. */
    if (!d->stopping && !d->reloading && d->sd_reloading)
        sd_ready(d);
}

static void reload(struct daemon *d)
{
    struct reload_job *j;
    int rc;

    if (d->stopping)
        return;
    if (d->reloading) {
        /* The file may have changed again since the load under way read it: one more load
         * follows it (however many signals came meanwhile). */
        d->reload_again = true;
        cm_log_info("config", "file=%s reload under way; another follows it", d->config_path);
        return;
    }
    cm_log_info("config", "file=%s reloading", d->config_path);
    d->reload_at = time(NULL);
    if (!(j = calloc(1, sizeof(*j))) || !(j->path = strdup(d->config_path))) {
        free(j);
        d->reload_ok = false;
        cm_log_error("config", "file=%s reload failed: out of memory", d->config_path);
        return;
    }
    j->d = d;
    j->req.data = j;
    if ((rc = uv_queue_work(d->loop, &j->req, on_reload_work, on_reload_done)) < 0) {
        free(j->path);
        free(j);
        d->reload_ok = false;
        cm_log_error("config", "file=%s reload failed: %s", d->config_path, uv_strerror(rc));
        return;
    }
    d->reloading = true;
    if (d->sd.enabled && !d->sd_reloading) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        /* MONOTONIC_USEC lets a newer systemd (253+) tell this reload from an older one. */
        cm_sdnotify_sendf(
            &d->sd, "RELOADING=1\nSTATUS=reloading %s\nMONOTONIC_USEC=%llu", d->config_path,
            (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
        d->sd_reloading = true;
    }
}

/* ---- Shutdown ---- */

static void on_closed_free_nothing(uv_handle_t *h)
{
    (void)h;
}

static void finish(struct daemon *d)
{
    if (d->finished)
        return;
    d->finished = true;
    flush_state_now(d);
    uv_timer_stop(&d->stop_timer);
    uv_close((uv_handle_t *)&d->stop_timer, on_closed_free_nothing);
    uv_close((uv_handle_t *)&d->drop_timer, on_closed_free_nothing);
    uv_close((uv_handle_t *)&d->scan_idle, on_closed_free_nothing);
    if (d->watchdog_init)
        uv_close((uv_handle_t *)&d->watchdog, on_closed_free_nothing);
    uv_close((uv_handle_t *)&d->check_idle, on_closed_free_nothing);
    cm_resolver_close(d->resolver);
    d->resolver = NULL;
    uv_stop(d->loop);
}

/* Shutdown ends once no run is in flight and no reload is under way. */
static void maybe_finish(struct daemon *d)
{
    if (d->stopping && d->runs == 0 && !d->reloading)
        finish(d);
}

static void on_stop_timer(uv_timer_t *timer)
{
    struct daemon *d = timer->data;

    cm_log_warn("daemon", "runs=%u still in flight %d ms after the stop; leaving without them",
                d->runs, CM_SHUTDOWN_GRACE_MS);
    /* Whatever hangs this long (a file scan on a dead NFS mount, a write) would hold up the
     * loop's last run as well, and exit() too (libuv joins its threads at exit): write what
     * we have, unless a write of our own is the thing that hangs, and leave now. */
    if (d->store && cm_store_sync(d->store, 1000) < 0)
        cm_log_error("state", "file=%s the last results could not be committed in time",
                     d->state_path);
    d->store = NULL; /* committed; closing would wait for the thread */
    fflush(stderr);
    _exit(0);
}

static void stop(struct daemon *d, const char *why)
{
    if (d->stopping)
        return;
    cm_log_info("daemon", "signal=%s stopping runs=%u", why, d->runs);
    d->stopping = true;
    /* The watchdog keeps pinging until the loop ends: shutdown is bounded by its own timer
     * (CM_SHUTDOWN_GRACE_MS). */
    cm_sdnotify_send(&d->sd, "STOPPING=1\nSTATUS=stopping");
    cm_web_close(d->web);
    d->web = NULL;
    /* Undelivered messages stay queued: their rows are in the store's queue already (written
     * as they changed), committed by its close. */
    if (d->notify) {
        cm_notify_close(d->notify);
        d->notify = NULL;
    }
    /* Renewal information requests in flight end now ("cancelled"). */
    cm_ari_client_free(d->ari);
    d->ari = NULL;
    /* Revocation checks in flight end now ("cancelled"): their runs are dropped. Before the
     * transfers close under the checker. */
    cm_revctx_close(d->rev);
    d->rev = NULL;
    cm_httpc_close(d->http);
    d->http = NULL;
    uv_close((uv_handle_t *)&d->sig_hup, on_closed_free_nothing);
    uv_close((uv_handle_t *)&d->sig_term, on_closed_free_nothing);
    uv_close((uv_handle_t *)&d->sig_int, on_closed_free_nothing);
    cm_discovery_close(d->disc);
    d->disc = NULL;
    uv_timer_stop(&d->drop_timer);
    uv_idle_stop(&d->check_idle);
    cm_sched_close(d->sched);
    d->sched = NULL;
    uv_timer_start(&d->stop_timer, on_stop_timer, CM_SHUTDOWN_GRACE_MS, 0);
    for (size_t i = 0; i < d->ntargets; i++)
        cancel_run(d->targets[i]);
    drop_scans(d);
    /* Removed targets still running are not in the list: their runs were cancelled when
     * they were removed. */
    maybe_finish(d);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;

    if (signum == SIGHUP)
        reload(d);
    else
        stop(d, signum == SIGTERM ? "TERM" : "INT");
}

/* ---- Commands ---- */

static void run_usage(FILE *fp)
{
    fputs("usage: certmon run [-c FILE] [--log-level LEVEL]\n"
          "  -c, --config FILE   configuration (default " DEFAULT_CONFIG ")\n"
          "  --log-level LEVEL   error|warning|info|debug, overriding log.level\n"
          "Runs in the foreground and logs to stderr (or syslog with log.syslog = true).\n"
          "SIGHUP reloads the configuration; SIGTERM or SIGINT stops.\n",
          fp);
}

static int parse_common(int argc, char **argv, const char **config, const char **level,
                        void (*usage)(FILE *))
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            *config = optarg;
            break;
        case 'l':
            if (!level || cm_log_set_level(optarg) < 0) {
                fprintf(stderr, "certmon %s: --log-level must be error, warning, info or debug\n",
                        argv[0]);
                return 1;
            }
            *level = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "certmon %s: %s needs an argument\n", argv[0], argv[optind - 1]);
            usage(stderr);
            return 1;
        default:
            fprintf(stderr, "certmon %s: unknown option '%s'\n", argv[0], argv[optind - 1]);
            usage(stderr);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "certmon %s: unexpected argument '%s'\n", argv[0], argv[optind]);
        usage(stderr);
        return 1;
    }
    return -1;
}

/* Checks the reports restored at start a slice at a time (a few milliseconds each), so that
 * the start itself does not parse them all. */
static void on_check_idle(uv_idle_t *h)
{
    struct daemon *d = h->data;

    if (cm_state_check_reports(d->state, 1000)) {
        uv_idle_stop(h);
        /* Every restored report has been parsed once: the JSON trees are gone, and the
         * free memory between the views goes back to the system. */
        malloc_trim(0);
    }
}

/* Each target's newest history row, read at start on the thread pool (at 100,000 targets
 * the read takes a few hundred milliseconds, which the start must not wait for): the leaf its
 * next result is compared with. */
struct leaf_restore {
    uv_work_t work;
    struct daemon *d;
    char *path;
    struct restored *v;
    size_t n, cap;
    int rc;
    char err[600];
};

struct restored {
    char *target;
    struct cm_leaf_summary leaf;
    int64_t last_seen;
};

static void collect_leaf(void *arg, const char *target, const struct cm_history_row *r)
{
    struct leaf_restore *lr = arg;
    struct restored *x;

    if (lr->n == lr->cap) {
        size_t ncap = lr->cap ? lr->cap * 2 : 256;
        struct restored *nv = realloc(lr->v, ncap * sizeof(*nv));
        if (!nv)
            return;
        lr->v = nv;
        lr->cap = ncap;
    }
    x = &lr->v[lr->n];
    if (!(x->target = strdup(target)))
        return;
    if (cm_leaf_summary_from(r->sha256, r->subject, r->issuer, r->sans, r->key_type,
                             r->key_bits, r->not_after, &x->leaf) < 0) {
        free(x->target);
        return;
    }
    x->leaf.trust = r->trust;
    x->last_seen = r->last_seen;
    lr->n++;
}

static void restore_work(uv_work_t *w)
{
    struct leaf_restore *lr = w->data;

    lr->rc = cm_store_latest(lr->path, collect_leaf, lr, lr->err, sizeof(lr->err));
}

/* On the loop: a target that has had a result since the start already knows its leaf. */
static void restore_done(uv_work_t *w, int status)
{
    struct leaf_restore *lr = w->data;
    struct daemon *d = lr->d;
    size_t used = 0;

    (void)status;
    if (lr->rc < 0)
        cm_log_warn("state", "%s: leaf changes are told from the next leaf on", lr->err);
    for (size_t i = 0; i < lr->n; i++) {
        struct restored *x = &lr->v[i];
        struct cm_state_entry *e = d->stopping ? NULL : cm_state_get(d->state, x->target);
        /* Made here, on the loop's heap: what the pool thread made goes back whole (the
         * summaries kept among its scratch would pin that arena's pages). Their shared texts
         * (issuer, key type: base/intern) were interned on the pool thread: a few per CA,
         * not per target. */
        if (e && !e->leaf && (e->leaf = cm_leaf_summary_new(&x->leaf))) {
            e->leaf_written = x->last_seen;
            used++;
        }
        cm_leaf_summary_clear(&x->leaf);
        free(x->target);
    }
    d->leaves_ready = true;
    cm_log_debug("state", "file=%s leaves=%zu restored from the history", lr->path, used);
    free(lr->v);
    free(lr->path);
    free(lr);
    /* The pool thread's arena is free again: back to the system. */
    malloc_trim(0);
}

static void restore_leaves(struct daemon *d)
{
    struct leaf_restore *lr = calloc(1, sizeof(*lr));

    if (!lr || !(lr->path = strdup(d->state_path))) {
        free(lr);
        cm_log_error("state", "out of memory restoring the last leaves");
        return;
    }
    lr->d = d;
    lr->work.data = lr;
    d->leaves_ready = false;
    if (uv_queue_work(d->loop, &lr->work, restore_work, restore_done) < 0) {
        free(lr->path);
        free(lr);
        d->leaves_ready = true;
    }
}

/* The pins of the database (pin = "tofu"), read on the thread pool at start and at each reload
 * (an operator may have deleted a row to re-pin a target). */
struct pin_restore {
    uv_work_t work;
    struct daemon *d;
    char *path;
    int64_t started; /* Unix seconds when the read was queued */
    struct restored_pin {
        char *target;
        struct cm_leaf_summary pin;
        int64_t pinned_at;
    } * v;
    size_t n, cap;
    int rc;
    char err[600];
};

static void collect_pin(void *arg, const char *target, const struct cm_leaf_summary *p,
                        int64_t pinned_at)
{
    struct pin_restore *pr = arg;
    struct restored_pin *x;

    if (pr->n == pr->cap) {
        size_t ncap = pr->cap ? pr->cap * 2 : 64;
        struct restored_pin *nv = realloc(pr->v, ncap * sizeof(*nv));
        if (!nv)
            return;
        pr->v = nv;
        pr->cap = ncap;
    }
    x = &pr->v[pr->n];
    if (!(x->target = strdup(target)))
        return;
    if (cm_leaf_summary_copy(p, &x->pin) < 0) {
        free(x->target);
        return;
    }
    x->pinned_at = pinned_at;
    pr->n++;
}

static void pin_restore_work(uv_work_t *w)
{
    struct pin_restore *pr = w->data;

    pr->rc = cm_store_pins(pr->path, collect_pin, pr, pr->err, sizeof(pr->err));
}

static int cmp_restored_pin(const void *a, const void *b)
{
    return strcmp(((const struct restored_pin *)a)->target,
                  ((const struct restored_pin *)b)->target);
}

/* On the loop: each pinning target takes its pin from the database, unless its pin moved
 * since the read was queued (the write may not have been committed when it ran); a pin whose
 * row is gone is dropped, so that the next leaf is pinned anew. */
static void pin_restore_done(uv_work_t *w, int status)
{
    struct pin_restore *pr = w->data;
    struct daemon *d = pr->d;
    size_t used = 0, dropped = 0;

    (void)status;
    if (pr->rc < 0)
        cm_log_warn("state", "%s: pins are kept as they are", pr->err);
    if (pr->n)
        qsort(pr->v, pr->n, sizeof(*pr->v), cmp_restored_pin);
    for (size_t i = 0; !d->stopping && pr->rc == 0 && d->gen && i < d->gen->cfg->target_count;
         i++) {
        const struct cm_config_target *ct = &d->gen->cfg->targets[i];
        struct restored_pin key = {.target = ct->name}, *x;
        struct cm_state_entry *e;
        struct cm_leaf_summary *p;
        if (!ct->pin_tofu || !ct->name)
            continue;
        x = pr->n ? bsearch(&key, pr->v, pr->n, sizeof(*pr->v), cmp_restored_pin) : NULL;
        e = cm_state_get(d->state, ct->name);
        if (e && e->pin && e->pinned_at >= pr->started - 2)
            continue;
        if (!x) {
            if (e && e->pin) {
                cm_leaf_summary_clear(e->pin);
                free(e->pin);
                e->pin = NULL;
                dropped++;
                cm_log_info("target",
                            "target=%s pin removed from the database: the next leaf "
                            "seen is pinned",
                            ct->name);
            }
            continue;
        }
        if ((!e && !(e = cm_state_put(d->state, ct->name, ct->name))) ||
            !(p = malloc(sizeof(*p)))) {
            cm_log_error("state", "target=%s out of memory restoring its pin", ct->name);
            continue;
        }
        if (e->pin)
            cm_leaf_summary_clear(e->pin);
        free(e->pin);
        *p = x->pin;
        memset(&x->pin, 0, sizeof(x->pin));
        e->pin = p;
        e->pinned_at = x->pinned_at;
        used++;
    }
    for (size_t i = 0; i < pr->n; i++) {
        if (pr->v[i].pin.subject)
            cm_leaf_summary_clear(&pr->v[i].pin);
        free(pr->v[i].target);
    }
    if (!d->stopping)
        d->pins_ready = true;
    cm_log_debug("state", "file=%s pins=%zu restored dropped=%zu", pr->path, used, dropped);
    free(pr->v);
    free(pr->path);
    free(pr);
}

/* Reads the pins of the database (at start: first leaves wait for them; at a reload they do
 * not, the pins in memory are current but for an operator's deletion). */
static void restore_pins(struct daemon *d, bool at_start)
{
    struct pin_restore *pr;

    if (!d->store || !d->state_path)
        return;
    if (!(pr = calloc(1, sizeof(*pr))) || !(pr->path = strdup(d->state_path))) {
        free(pr);
        cm_log_error("state", "out of memory restoring the pins");
        return;
    }
    if (at_start)
        d->pins_ready = false;
    pr->d = d;
    pr->started = (int64_t)time(NULL);
    pr->work.data = pr;
    if (uv_queue_work(d->loop, &pr->work, pin_restore_work, pin_restore_done) < 0) {
        free(pr->path);
        free(pr);
        d->pins_ready = true;
    }
}

/* Opens the state database (importing a JSON state of earlier versions, moving a corrupt
 * one aside) and loads it. Without it the daemon runs on, keeping nothing across restarts. */
static void load_state(struct daemon *d)
{
    char err[600];
    size_t n;

    d->pins_ready = true; /* until a database has pins (and leaves) to read */
    d->leaves_ready = true;
    if (!d->state_path) {
        cm_log_warn("state", "no global.state_file: state is not persisted across restarts");
        return;
    }
    if (cm_store_open(d->loop, d->state_path, d->state, time(NULL), &d->store, err, sizeof(err)) <
        0) {
        cm_log_error("state", "%s", err);
        cm_log_error("state", "file=%s cannot be used: state is not persisted", d->state_path);
        return;
    }
    /* Every restored report is in the database: once its view is built it is let go. */
    cm_state_set_drop_checked(d->state, true);
    restore_leaves(d);
    restore_pins(d, true);
    cm_state_entries(d->state, &n);
    cm_log_info("state", "file=%s entries=%zu loaded", d->state_path, n);
}

/* ---- The notifiers' rows (store.h, schema 6): each change queued to the writer ---- */

static void nh_alert(void *arg, const char *notifier, const struct cm_alert_row *row, bool removed)
{
    struct daemon *d = arg;

    if (d->store && cm_store_alert(d->store, notifier, row, removed) < 0)
        cm_log_error("notify",
                     "notifier=%s target=%s finding=%s out of memory queueing its alert "
                     "row",
                     notifier, row->target, row->id);
}

static void nh_msg_put(void *arg, const char *notifier, const struct cm_notify_msg_row *m)
{
    struct daemon *d = arg;

    if (d->store && cm_store_outbox_put(d->store, notifier, m) < 0)
        cm_log_error("notify", "notifier=%s out of memory queueing a message's row", notifier);
}

static void nh_msg_tried(void *arg, const char *notifier, uint64_t seq, unsigned attempts)
{
    struct daemon *d = arg;

    if (d->store && cm_store_outbox_tried(d->store, notifier, seq, attempts) < 0)
        cm_log_error("notify", "notifier=%s out of memory queueing a message's attempts", notifier);
}

static void nh_msg_gone(void *arg, const char *notifier, uint64_t seq)
{
    struct daemon *d = arg;

    if (d->store && cm_store_outbox_delete(d->store, notifier, seq) < 0)
        cm_log_error("notify", "notifier=%s out of memory queueing a message's removal", notifier);
}

/* notifier NULL: the rows of every notifier. */
static void nh_dropped(void *arg, const char *notifier)
{
    struct daemon *d = arg;

    if (d->store && cm_store_notifier_drop(d->store, notifier) < 0)
        cm_log_error("notify", "notifier=%s out of memory queueing the removal of its rows",
                     notifier ? notifier : "*");
}

static const struct cm_notify_persist notify_hooks = {
    .alert = nh_alert,
    .msg_put = nh_msg_put,
    .msg_tried = nh_msg_tried,
    .msg_gone = nh_msg_gone,
    .dropped = nh_dropped,
};

/* Every row of the notifiers into the store, replacing what it had: after an import, and when
 * a reload moves the state to another database. */
static void notify_write_all(struct daemon *d)
{
    if (!d->store || !d->notify)
        return;
    if (cm_store_notifier_drop(d->store, NULL) < 0 || cm_notify_persist_all(d->notify) < 0)
        cm_log_error("notify", "file=%s out of memory writing the alert tables and queues",
                     d->state_path);
}

/* The rows of notifiers that are not configured (any more) go, as a reload would drop them. */
static void notify_drop_unknown(struct daemon *d, json_t *j)
{
    struct cm_notify_stats st[64];
    size_t n = cm_notify_stats(d->notify, st, 64);
    const char *name;
    json_t *v;

    json_object_foreach(j, name, v)
    {
        bool known = false;
        for (size_t i = 0; i < n && i < 64 && !known; i++)
            known = strcmp(st[i].name, name) == 0;
        if (!known && n <= 64) {
            cm_log_info("notify", "notifier=%s not configured: its alerts and messages dropped",
                        name);
            nh_dropped(d, name);
        }
    }
}

/* A notifiers' file of earlier versions (STATE_FILE.notify.json), imported once: loaded, its
 * rows written to the database and committed, the file kept as *.imported. Returns true when
 * there was one (imported, or moved aside when unusable). */
static bool import_notify_json(struct daemon *d)
{
    char path[4200], kept[4220], moved[4300];
    json_error_t je;
    json_t *j;
    int rc;

    snprintf(path, sizeof(path), "%s.notify.json", d->state_path);
    if (access(path, F_OK) < 0)
        return false;
    if (!(j = json_load_file(path, 0, &je)) || (rc = cm_notify_load_json(d->notify, j)) < 0) {
        cm_log_error("notify", "file=%s cannot be used: %s", path,
                     j ? "not a certmon notifier state" : je.text);
        if (cm_state_move_aside(path, time(NULL), moved, sizeof(moved)) == 0)
            cm_log_warn("notify", "file=%s moved aside to %s", path, moved);
        json_decref(j);
        return true;
    }
    json_decref(j);
    cm_notify_set_persist(d->notify, &notify_hooks, d);
    notify_write_all(d);
    snprintf(kept, sizeof(kept), "%s.imported", path);
    /* Renamed only once the rows are committed: a failure imports it again next time. */
    if ((rc = cm_store_sync(d->store, 10000)) < 0)
        cm_log_error("notify",
                     "file=%s import not committed: %s; it is imported again at the "
                     "next start",
                     path, cm_strerror(rc));
    else if (rename(path, kept) < 0)
        cm_log_error("notify", "file=%s cannot be renamed to %s: %s", path, kept, strerror(errno));
    else
        cm_log_info("notify", "file=%s imported into %s; it is kept as %s", path, d->state_path,
                    kept);
    return true;
}

/* The alert rows read at start, one at a time into their notifiers' tables. */
struct alert_load {
    struct daemon *d;
    size_t loaded, bad;
    char unknown[256]; /* the last notifier found not configured (rows come by notifier) */
};

static void on_alert_loaded(void *arg, const char *notifier, const struct cm_alert_row *r)
{
    struct alert_load *l = arg;
    int rc = notifier ? cm_notify_load_alert(l->d->notify, notifier, r) : CM_ESTATE;

    if (rc == 0) {
        l->loaded++;
    } else if (rc == -ENOENT) {
        if (strcmp(l->unknown, notifier) != 0) {
            snprintf(l->unknown, sizeof(l->unknown), "%s", notifier);
            cm_log_info("notify", "notifier=%s not configured: its alerts and messages dropped",
                        notifier);
            nh_dropped(l->d, notifier);
        }
    } else if (l->bad++ == 0) {
        cm_log_warn("notify", "notifier=%s target=%s finding=%s alert row skipped: %s",
                    notifier ? notifier : "", r->target ? r->target : "", r->id ? r->id : "",
                    cm_strerror(rc));
    }
}

/* The notifiers' alert tables and undelivered messages: read from the state database (tables
 * alerts and outbox), or imported from the file of earlier versions beside it; from then on
 * every change is a row queued to the store (notify_hooks). */
static void load_notify(struct daemon *d)
{
    char err[600];
    uint64_t t0 = uv_hrtime();
    struct alert_load al = {.d = d};
    size_t msgs = 0;
    const char *name;
    json_t *j = NULL, *v;
    int rc;

    if (!d->notify)
        return;
    if (!d->state_path || !d->store) /* a reload may bring a database: the hooks check */
        goto hooks;
    if (import_notify_json(d))
        goto hooks;
    if ((rc = cm_store_notify_read(d->state_path, &j, on_alert_loaded, &al, err, sizeof(err))) <
        0) {
        cm_log_error("notify", "%s; the alert tables and queues start as far as they were read",
                     err);
        cm_notify_set_persist(d->notify, &notify_hooks, d);
        notify_write_all(d); /* the database holds what memory holds */
        return;
    }
    if (al.bad)
        cm_log_warn("notify", "file=%s alert rows skipped: %zu", d->state_path, al.bad);
    json_object_foreach(j, name, v)
    {
        msgs += json_array_size(json_object_get(v, "queue"));
    }
    if ((rc = cm_notify_load_json(d->notify, j)) < 0) {
        cm_log_error("notify",
                     "file=%s its delivery queues cannot be used (%s): they start empty",
                     d->state_path, cm_strerror(rc));
        json_decref(j);
        cm_notify_set_persist(d->notify, &notify_hooks, d);
        notify_write_all(d); /* the database holds what memory holds */
        return;
    }
    cm_notify_set_persist(d->notify, &notify_hooks, d);
    notify_drop_unknown(d, j);
    json_decref(j);
    if (al.loaded || msgs)
        cm_log_info("notify", "file=%s alerts=%zu messages=%zu loaded in %.3f s", d->state_path,
                    al.loaded, msgs, (double)(uv_hrtime() - t0) / 1e9);
    return;
hooks:
    cm_notify_set_persist(d->notify, &notify_hooks, d);
}

/* What the web endpoints show (web.h): asked for on each request. */
static void web_status(void *arg, struct cm_web_status *out)
{
    struct daemon *d = arg;

    out->gen = d->gen;
    out->state = d->state;
    out->notify = d->notify;
    out->rev = d->rev;
    out->probes_ok = d->probes_ok;
    out->probes_failed = d->probes_failed;
    out->discovery = d->disc;
    out->reload_ok = d->reload_ok;
    out->reload_at = d->reload_at;
}

/* The daemon's own handles: the state flush and stop timers, the scan idle, and the signals
 * (first: a SIGTERM while the state loads must stop the daemon cleanly, not kill it; they are
 * handled once the loop runs). */
static void run_handles_init(struct daemon *d)
{
    uv_timer_init(d->loop, &d->drop_timer);
    d->drop_timer.data = d;
    uv_timer_init(d->loop, &d->stop_timer);
    d->stop_timer.data = d;
    uv_idle_init(d->loop, &d->scan_idle);
    d->scan_idle.data = d;
    uv_idle_init(d->loop, &d->check_idle);
    d->check_idle.data = d;
    uv_signal_init(d->loop, &d->sig_hup);
    uv_signal_init(d->loop, &d->sig_term);
    uv_signal_init(d->loop, &d->sig_int);
    d->sig_hup.data = d->sig_term.data = d->sig_int.data = d;
    uv_signal_start(&d->sig_hup, on_signal, SIGHUP);
    uv_signal_start(&d->sig_term, on_signal, SIGTERM);
    uv_signal_start(&d->sig_int, on_signal, SIGINT);
}

/* Closes what run_handles_init opened, when a failed start leaves before stop() did. */
static void run_handles_close(struct daemon *d)
{
    if (d->finished)
        return;
    uv_close((uv_handle_t *)&d->drop_timer, on_closed_free_nothing);
    uv_close((uv_handle_t *)&d->stop_timer, on_closed_free_nothing);
    uv_close((uv_handle_t *)&d->scan_idle, on_closed_free_nothing);
    uv_close((uv_handle_t *)&d->check_idle, on_closed_free_nothing);
    uv_close((uv_handle_t *)&d->sig_hup, on_closed_free_nothing);
    uv_close((uv_handle_t *)&d->sig_term, on_closed_free_nothing);
    uv_close((uv_handle_t *)&d->sig_int, on_closed_free_nothing);
    if (d->watchdog_init)
        uv_close((uv_handle_t *)&d->watchdog, on_closed_free_nothing);
}

/* Outgoing HTTP, the notifiers, renewal information and the web endpoints (not listening
 * yet). Returns 0, or -1 with the reason on stderr. */
static int run_services_start(struct daemon *d)
{
    char err[300];

    if (cm_httpc_new(d->loop, &d->http, err, sizeof(err)) < 0 ||
        cm_notify_new(d->loop, d->http, d->gen->cfg, &d->notify) < 0 ||
        cm_ari_client_new(d->http, 0, &d->ari) < 0 || cm_revctx_new(d->loop, d->http, &d->rev) < 0 ||
        cm_web_new(d->loop, d->resolver, web_status, d, &d->web) < 0) {
        fprintf(stderr, "certmon run: cannot start the notifiers: %s\n",
                d->http ? "out of memory" : err);
        return -1;
    }
    return 0;
}

/* Closes everything left, runs the loop dry (close callbacks, cancelled work, runs that end)
 * and frees what they used. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#define FREE_AT_EXIT 1
#else
#define FREE_AT_EXIT 0
#endif

static void run_teardown(struct daemon *d)
{
    cm_discovery_close(d->disc);
    d->disc = NULL;
    cm_web_close(d->web);
    cm_notify_close(d->notify);
    cm_ari_client_free(d->ari);
    cm_revctx_close(d->rev);
    cm_httpc_close(d->http);
    cm_sched_close(d->sched);
    cm_resolver_close(d->resolver);
    drops_clear(d);
    free(d->drops);
    cm_store_close(d->store); /* startup failed after the state loaded */
    d->store = NULL;
    /* Let close callbacks (and cancelled work) run before freeing what they use. */
    uv_run(d->loop, UV_RUN_DEFAULT);
    /* Every run has ended: the loop ran dry, and runs hold handles until they report. The
     * state, the targets and the configuration are left to the exit (the kernel takes them
     * back at once; glibc's free takes seconds over 100,000 entries, views and targets, which
     * is most of SIGTERM's budget), except under the sanitizers, whose leak check must see
     * everything freed. */
    if (FREE_AT_EXIT) {
        for (size_t i = 0; i < d->ntargets; i++)
            free(d->targets[i]);
        free(d->targets);
        cm_state_free(d->state);
    }
    free(d->state_path);
    if (FREE_AT_EXIT)
        cm_gen_unref(d->gen);
    if (uv_loop_close(d->loop) != 0)
        cm_log_warn("daemon", "event loop closed with handles still open");
    cm_sdnotify_close(&d->sd);
}

/* Under systemd with a watchdog: WATCHDOG=1 from a timer on this loop, so a loop that stops
 * turning stops the pings. */
static void watchdog_start(struct daemon *d)
{
    uint64_t wd_usec = d->sd.enabled ? cm_sdnotify_watchdog_usec() : 0;
    uint64_t every;

    if (wd_usec == 0)
        return;
    uv_timer_init(d->loop, &d->watchdog);
    d->watchdog.data = d;
    d->watchdog_init = true;
    every = wd_usec / 2000 > 0 ? wd_usec / 2000 : 1;
    uv_timer_start(&d->watchdog, on_watchdog, every, every);
    cm_log_info("daemon", "watchdog_usec=%llu ping_ms=%llu", (unsigned long long)wd_usec,
                (unsigned long long)every);
}

static void log_started(const struct daemon *d, long conc)
{
    const struct cm_config *cfg = d->gen->cfg;
    size_t nfiles = 0;

    for (size_t i = 0; i < cfg->target_count; i++)
        nfiles += cfg->targets[i].kind == CM_TARGET_FILE;
    cm_log_info("daemon",
                "version=%s config=%s endpoints=%zu files=%zu concurrency=%ld state=%s "
                "started",
                CERTMON_VERSION, d->config_path, cfg->target_count - nfiles, nfiles, conc,
                d->state_path ? d->state_path : "none");
}

int cm_run_main(int argc, char **argv)
{
    struct daemon d = {0};
    const char *config = DEFAULT_CONFIG, *level = NULL;
    uv_loop_t loop;
    char err[300], werr[512];
    int rc;

    if ((rc = parse_common(argc, argv, &config, &level, run_usage)) >= 0)
        return rc;
    d.log_level_forced = level != NULL || getenv("CERTMON_LOG_LEVEL") != NULL;
    d.config_path = config;
    signal(SIGPIPE, SIG_IGN);
    if (!(d.gen = cm_gen_load(config, false)))
        return 1;
    apply_logging(&d, d.gen->cfg);
    if (cm_sdnotify_open(&d.sd, err, sizeof(err)) < 0)
        cm_log_warn("daemon", "systemd notifications off: %s", err);
    long conc =
        cm_fd_limit_fit((long)d.gen->cfg->concurrency, CM_POSTURE_MAX_HANDSHAKES, "certmon run");
    if (uv_loop_init(&loop) < 0) {
        fprintf(stderr, "certmon run: cannot create event loop\n");
        cm_gen_unref(d.gen);
        cm_sdnotify_close(&d.sd);
        return 1;
    }
    d.loop = &loop;
    rc = 1;
    if (cm_state_new(&d.state) < 0 || cm_resolver_new(&loop, &d.resolver, err, sizeof(err)) < 0 ||
        cm_sched_new(&loop, (unsigned)conc, on_run, &d, &d.sched) < 0) {
        fprintf(stderr, "certmon run: cannot start: %s\n", d.state ? err : "out of memory");
        goto out;
    }
    set_state_path(&d, d.gen->cfg);
    run_handles_init(&d);
    cm_state_set_view_hooks(d.state, &cm_web_view_hooks);
    if (run_services_start(&d) < 0)
        goto out_handles;
    load_state(&d);
    uv_idle_start(&d.check_idle, on_check_idle);
    load_notify(&d);
    /* Discovered targets are read now, before the first install, so that the state of the
     * ones it had keeps them. */
    if (!(d.gen = discovery_for(&d, d.gen, &d.disc))) {
        fprintf(stderr, "certmon run: out of memory\n");
        goto out_handles;
    }
    cm_discovery_read_now(d.disc);
    {
        struct cm_gen *u = cm_discovery_gen(d.disc);
        if (!u) {
            fprintf(stderr, "certmon run: out of memory\n");
            goto out_handles;
        }
        cm_gen_unref(d.gen);
        d.gen = u;
    }
    /* (No malloc_trim here: what the parse trees of the configuration and the state gave back
     * is reused at once by the targets installed next, and giving it to the kernel would make
     * them fault it in again, zeroed; on_check_idle trims once the restored reports are
     * parsed.) */
    if (install_targets(&d, d.gen, NULL, 0) < 0) {
        fprintf(stderr, "certmon run: out of memory\n");
        goto out_handles;
    }
    d.reload_ok = true;
    d.reload_at = time(NULL);
    if (cm_web_start(d.web, d.gen->cfg, werr, sizeof(werr)) < 0) {
        fprintf(stderr, "certmon run: metrics listener: %s\n", werr);
        cm_log_error("web", "cannot listen: %s", werr);
        d.stopping = true; /* nothing runs yet: close what was opened and leave */
        cm_web_close(d.web);
        d.web = NULL;
        cm_sched_close(d.sched);
        d.sched = NULL;
        goto out_handles;
    }
    cm_discovery_start(d.disc);
    log_started(&d, conc);
    watchdog_start(&d);
    sd_ready(&d);
    uv_run(&loop, UV_RUN_DEFAULT);
    cm_log_info("daemon", "probes_ok=%llu probes_failed=%llu stopped",
                (unsigned long long)d.probes_ok, (unsigned long long)d.probes_failed);
    rc = 0;
out_handles:
    run_handles_close(&d);
out:
    run_teardown(&d);
    return rc;
}

static void check_usage(FILE *fp)
{
    fputs("usage: certmon config-check [-c FILE]\n"
          "  -c, --config FILE   configuration to check (default " DEFAULT_CONFIG ")\n"
          "Prints every problem as FILE:LINE: SETTING: problem and exits 1, or exits 0.\n",
          fp);
}

int cm_config_check_main(int argc, char **argv)
{
    const char *config = DEFAULT_CONFIG;
    struct cm_config_errors errs = {0};
    struct cm_config *cfg = NULL;
    struct cm_tls_ctx *tls = NULL;
    int rc;
    size_t nfiles = 0;

    if ((rc = parse_common(argc, argv, &config, NULL, check_usage)) >= 0)
        return rc;
    rc = cm_config_load(config, &cfg, &errs);
    if (rc == 0 && (rc = cm_tls_ctx_new(&tls)) == 0)
        rc = cm_config_check_credentials(cfg, tls, &errs);
    for (size_t i = 0; i < errs.count; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    if (rc < 0 && errs.count == 0)
        fprintf(stderr, "%s: %s\n", config, cm_strerror(rc));
    if (rc == 0) {
        for (size_t i = 0; i < cfg->target_count; i++)
            nfiles += cfg->targets[i].kind == CM_TARGET_FILE;
        printf("%s: OK: %zu endpoint targets, %zu file targets, %zu notifiers\n", config,
               cfg->target_count - nfiles, nfiles, cfg->notifier_count);
    } else if (errs.count) {
        fprintf(stderr, "%s: %zu problem%s\n", config, errs.count, errs.count == 1 ? "" : "s");
    }
    cm_config_errors_clear(&errs);
    cm_tls_ctx_free(tls);
    cm_config_free(cfg);
    return rc == 0 ? 0 : 1;
}

/* ---- certmon notify-test ---- */

struct ntest {
    int expected, done, failures;
};

static void on_ntest(const char *name, const char *type, const struct cm_httpc_result *r,
                     void *arg)
{
    struct ntest *t = arg;
    bool ok = r->curl_code == 0 && (r->status == 0 || (r->status >= 200 && r->status < 300) ||
                                    !strcmp(type, "email"));
    char body[201];
    size_t n = r->body_len < sizeof(body) - 1 ? r->body_len : sizeof(body) - 1;

    memcpy(body, r->body ? r->body : "", n);
    body[n] = '\0';
    for (char *p = body; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    if (ok)
        printf("%s (%s): OK: the receiver answered %ld%s%s (%.2f s)\n", name, type, r->status,
               n ? ": " : "", body, r->elapsed_s);
    else if (r->curl_code)
        printf("%s (%s): FAILED: %s\n", name, type, r->error && *r->error ? r->error : "error");
    else
        printf("%s (%s): FAILED: the receiver answered %ld%s%s\n", name, type, r->status,
               n ? ": " : "", body);
    t->failures += !ok;
    t->done++;
}

static void notify_test_usage(FILE *fp)
{
    fputs("usage: certmon notify-test [-c FILE] [--notifier NAME]\n"
          "  -c, --config FILE   configuration (default " DEFAULT_CONFIG ")\n"
          "  --notifier NAME     only this notifier\n"
          "Sends a test message through each configured notifier and prints what each receiver\n"
          "answered. Exit 0 when every receiver accepted it, 1 otherwise.\n",
          fp);
}

int cm_notify_test_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"notifier", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = DEFAULT_CONFIG, *only = NULL;
    struct cm_gen *g;
    uv_loop_t loop;
    struct cm_httpc *http = NULL;
    struct cm_notify *notify = NULL;
    struct ntest t = {0};
    char err[300];
    int c, rc = 1;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'n':
            only = optarg;
            break;
        case 'h':
            notify_test_usage(stdout);
            return 0;
        default:
            fprintf(stderr, "certmon notify-test: bad option '%s'\n", argv[optind - 1]);
            notify_test_usage(stderr);
            return 1;
        }
    }
    if (optind < argc) {
        notify_test_usage(stderr);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (!(g = cm_gen_load(config, false)))
        return 1;
    if (g->cfg->notifier_count == 0) {
        fprintf(stderr, "certmon notify-test: %s configures no notifiers\n", config);
        cm_gen_unref(g);
        return 1;
    }
    if (uv_loop_init(&loop) < 0) {
        cm_gen_unref(g);
        return 1;
    }
    if (cm_httpc_new(&loop, &http, err, sizeof(err)) < 0 ||
        cm_notify_new(&loop, http, g->cfg, &notify) < 0) {
        fprintf(stderr, "certmon notify-test: %s\n", http ? "out of memory" : err);
        goto out;
    }
    t.expected = cm_notify_test(notify, only, on_ntest, &t);
    if (t.expected == -ENOENT) {
        fprintf(stderr, "certmon notify-test: no notifier named '%s'\n", only);
        goto out;
    }
    while (t.expected > 0 && t.done < t.expected && uv_run(&loop, UV_RUN_ONCE))
        ;
    rc = t.expected > 0 && t.done == t.expected && t.failures == 0 ? 0 : 1;
out:
    cm_notify_close(notify);
    cm_httpc_close(http);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        cm_log_warn("notify", "event loop closed with handles still open");
    cm_gen_unref(g);
    return rc;
}
