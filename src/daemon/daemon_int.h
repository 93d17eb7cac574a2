/* Internal to the daemon (src/daemon/daemon.c) and its HTTP endpoints (src/daemon/web.c). */
#ifndef CERTMON_DAEMON_INT_H
#define CERTMON_DAEMON_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "certmon/probe/ari.h"
#include "certmon/config/config.h"
#include "certmon/probe/filecert.h"
#include "certmon/http/httpc.h"
#include "certmon/http/httpd.h"
#include "certmon/notify/notify.h"
#include "certmon/probe/probe.h"
#include "certmon/probe/resolve.h"
#include "certmon/probe/revocation.h"
#include "certmon/daemon/scheduler.h"
#include "certmon/daemon/state.h"
#include "certmon/probe/tlsio.h"

struct gen {
    struct cm_config *cfg;
    struct cm_tls_ctx *tls;
    int refs;
};

struct daemon;
struct cm__revwait;
struct webprobe;
struct scrape_wait;

struct dtarget {
    struct cm_sched_job job;
    struct daemon *d;
    const struct cm_config_target *ct; /* in gen */
    /* The run in flight: the generation and target it started with. */
    struct gen *run_gen;
    const struct cm_config_target *run_ct;
    struct cm_probe *probe;
    struct cm_posture_pass *pass;
    struct cm_file_scan_job *scan;
    struct cm_probe_result *pending; /* waiting for its posture pass */
    bool removed;                    /* dropped by a reload while running */
    /* From the state file at start: when it last ran, and whether that failed. */
    int64_t restored_last;
    unsigned restored_failures;
    unsigned char mark; /* while installing: 1 new, 2 changed */
    bool rerun_soon;    /* changed by a reload while running: run again shortly */
    /* A finished file scan whose results are being recorded (see on_scan_batch). */
    struct cm_file_scan_result scan_res;
    size_t scan_pos;
    uint64_t scan_id;
    bool scan_failed;
    struct dtarget *scan_next;
    struct cm__revwait *revwait; /* the revocation checks the run waits for (revcheck.c) */
    struct gen *gen;    /* the generation ct belongs to (not a reference: the daemon's or a
                         * reload's keeps it alive while it is this target's) */
};

struct daemon {
    uv_loop_t *loop;
    const char *config_path;
    struct gen *gen;
    struct cm_resolver *resolver;
    struct cm_sched *sched;
    struct cm_state *state;
    struct dtarget **targets; /* the current config's, sorted by name */
    size_t ntargets;
    unsigned runs; /* runs in flight */
    uv_signal_t sig_hup, sig_term, sig_int;
    uv_timer_t flush_timer, stop_timer;
    bool dirty, writing, stopping, finished;
    char *state_path; /* where the state is written (the current config's) */
    uv_work_t write_req;
    struct cm_state_snapshot *write_snap;
    char *write_path;
    int write_rc;
    char write_err[512];
    bool log_level_forced; /* --log-level or CERTMON_LOG_LEVEL: the config does not change it */
    int64_t reload_at;
    bool reload_ok;
    bool reloading;    /* a configuration load is on the thread pool */
    bool reload_again; /* SIGHUP came during it: load once more when it ends */
    uint64_t probes_ok, probes_failed;
    struct cm_httpd *httpd;       /* the metrics listener, or NULL */
    struct cm_httpd_counters http_counters; /* the listener's guard; kept across restarts */
    struct cm_httpc *http;        /* outgoing HTTP and SMTP (notifiers, renewal information) */
    struct cm_ari_client *ari;    /* renewal information, cached per certificate */
    struct cm_revctx *rev;        /* CRLs and OCSP answers, cached for the daemon's whole life
                                   * (kept across reloads); NULL once stopping */
    struct cm_notify *notify;     /* the notifiers; NULL once closed */
    bool notify_dirty;            /* alert tables or queues changed since the last write */
    char *notify_text;            /* their JSON, serialised for the write in flight */
    char *notify_path;            /* STATE_FILE.notify.json, or NULL */
    char *notify_final;           /* their JSON when stopping, for the last write */
    struct webprobe *webprobes;   /* on-demand probes of /probe in flight */
    unsigned nwebprobes;
    uv_timer_t scrape_timer;       /* paces /metrics renders (src/daemon/web.c) */
    bool scrape_timer_init;
    uint64_t scrape_next;          /* loop time from which the next render may start */
    struct scrape_wait *scrape_queue;
    unsigned scrape_queued;
    uint64_t scan_seq; /* numbers file scans, to mark the entries each one found */
    uv_idle_t scan_idle;             /* records scan results in batches */
    struct dtarget *scan_head;       /* scans whose results wait to be recorded, in order */
    double snap_ms;    /* the last snapshot's time on the loop */
    uint64_t write_t0;
};

/* Releases one reference to a generation (freed at zero). */
void cm__gen_unref(struct gen *g);

/* The HTTP endpoints (src/daemon/web.c). Start listening as cfg->metrics says; returns 0 or a
 * negative code with a reason in err. */
int cm__web_start(struct daemon *d, const struct cm_config *cfg, char *err, size_t errlen);
/* Stops listening; pending requests are abandoned (their on-demand probes cancelled). */
void cm__web_stop(struct daemon *d);
/* cm__web_stop, and closes the web's own handles: at shutdown. */
void cm__web_close(struct daemon *d);
/* True when a and b configure the listener identically (a reload then keeps it). */
bool cm__web_same(const struct cm_config *a, const struct cm_config *b);
/* The view hooks the state uses to keep each target's metrics view. */
extern const struct cm_state_view_hooks cm__web_view_hooks;

/* The revocation checks of a run (src/daemon/revcheck.c). */
typedef void (*cm__revwait_cb)(struct dtarget *t, struct cm_probe_result *const *res, size_t n,
                               bool drop);

/* Checks the revocation of the results of t's run (res[0..n), borrowed until cb; a result
 * without certificates is skipped) when its target's policy says "auto": gives back t's
 * scheduler slot, and calls cb exactly once, from a loop callback, when every check has ended
 * (each within the target's revocation_timeout); the results then carry their revocation.
 * drop is true when the daemon is stopping or t was removed meanwhile: the results are not
 * to be recorded. cb receives a copy of res that lives until it returns. Returns 0 when cb
 * will run; 1 when there is nothing to check (revocation off or staple-only, no
 * certificate, stopping) or a negative code (out of memory): cb will not run and the caller
 * goes on at once. */
int cm__revwait_start(struct dtarget *t, struct cm_probe_result *const *res, size_t n,
                      cm__revwait_cb cb);

/* Makes a generation ready for the revocation checks of its file targets: loads the system
 * trust store into g->tls when a file target checks revocation, so that the issuer of the
 * last certificate of a file (a chain file's intermediate) can be found there. Blocking file
 * I/O: called where the generation is built (at start, or on the thread pool for a reload).
 * A store that cannot be loaded only means such issuers are not found. */
void cm__revwait_prepare(struct gen *g);

/* Ends t's wait now, if it has one: cb runs before this returns (sources still outstanding
 * count as "cancelled"). */
void cm__revwait_cancel(struct dtarget *t);

#endif
