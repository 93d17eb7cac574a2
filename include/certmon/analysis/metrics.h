/* Prometheus exposition (text format 0.0.4) of what the daemon knows. Pure: no I/O, no clock.
 *
 * Each state entry gets a view when its report changes (or is loaded): the numbers and
 * strings /metrics shows, parsed out of the report once, with the entry's label text
 * (`target="...",team="..."`) escaped and ready. Rendering walks the views family by family,
 * so that every family is one contiguous block with one HELP and one TYPE line, and never
 * parses JSON. The families and labels are listed in docs/metrics.md. */
#ifndef CERTMON_METRICS_H
#define CERTMON_METRICS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What /metrics shows of one target. Opaque; immutable once built. */
struct cm_metrics_view;

/* Builds the view of one target from its report: the JSON object the state keeps (the
 * `check --json` object plus "labels", "last_probe" ...; see state.h). The `target` label is
 * the report's "target", the other labels its "labels" object (string values only; a name
 * that is not a valid Prometheus label name, starts with "__", or is one certmon sets itself
 * is left out). Fields that are missing or malformed leave their samples out. Returns NULL
 * when out of memory or when report is not an object with a string "target". The view does
 * not refer to report afterwards. */
struct cm_metrics_view *cm_metrics_view_new(json_t *report);
/* Views are reference-counted (on one thread) so that a render streamed over several loop
 * iterations keeps the views it started with while the state replaces them: _ref adds a
 * holder, _free drops one and frees the view with the last. NULL is a no-op for both. */
struct cm_metrics_view *cm_metrics_view_ref(struct cm_metrics_view *v);
void cm_metrics_view_free(struct cm_metrics_view *v);

/* A certificate's label text (subject, issuer, serial, sha256, key, signature) is kept once
 * for the whole process, shared by every view whose chain has it and freed with the last one
 * (its issuer, key and signature in turn shared by the certificates of one CA, its serial and
 * sha256 kept as bytes when they are lowercase hex); building and freeing views is safe from
 * any thread (the tables have locks). This is the number of certificates alive now, for tests
 * and diagnostics: 0 once every view is freed. */
size_t cm_metrics_shared_certs(void);
/* Likewise the words of a small vocabulary a view shows (TLS version, cipher, finding ids),
 * escaped: kept once for the process, freed with the last view that holds them. The number
 * alive now: 0 once every view is freed. */
size_t cm_metrics_shared_words(void);

/* One notifier's counters (see notify.h). */
/* Changes of a target's served leaf since the daemon started (certmon_cert_changes_total). */
struct cm_metrics_change {
    const char *target;
    uint64_t renewals, changes; /* kind="renewal", kind="change" */
};

struct cm_metrics_notifier {
    const char *name;
    uint64_t sent, failed, dropped;
    size_t queued;
};

/* The HTTP listener's connection guard: connections it closed or refused, since the daemon
 * started (see cm_httpd_counters). */
struct cm_metrics_http {
    uint64_t evicted_head_timeout, evicted_per_client, evicted_full; /* evicted_total{reason} */
    uint64_t refused_per_client;                                     /* refused_total{reason} */
};

/* The revocation checker's cache (see cm_rev_stats in revocation.h). */
struct cm_metrics_revocation {
    size_t crls, bytes, entries; /* certmon_crl_cache_{crls,bytes,entries} */
    int64_t oldest_age;          /* certmon_crl_cache_oldest_age_seconds: seconds since the
                                  * oldest thisUpdate (the caller's clock); absent when crls 0 */
    size_t ocsp_answers;         /* certmon_ocsp_cache_answers */
    uint64_t fetches;            /* certmon_revocation_fetches_total */
    uint64_t not_modified;       /* certmon_revocation_not_modified_total */
};

/* One discovery source (file NULL) or one file it read (docs/discovery.md). */
struct cm_metrics_discovery {
    const char *source; /* the source's name */
    const char *file;   /* NULL: the source's own row */
    size_t files;       /* source row: files its patterns match (certmon_discovery_files) */
    size_t targets;     /* source row: targets it adds (certmon_discovery_targets) */
    uint64_t errors;    /* file row: reads that failed (certmon_discovery_errors_total) */
    int64_t last_success; /* file row: last good read, Unix seconds; 0: none yet */
    bool valid;           /* file row: the last read was good (certmon_discovery_file_valid) */
};

/* The daemon's own numbers. */
struct cm_metrics_self {
    uint64_t probes_success, probes_failure; /* certmon_probes_total{result} */
    bool reload_success;                     /* certmon_config_last_reload_success */
    int64_t reload_time;                     /* certmon_config_last_reload_timestamp_seconds */
    const char *version, *gnutls, *libuv, *libcurl; /* certmon_build_info */
    size_t targets;                          /* certmon_targets: configured targets */
    const struct cm_metrics_notifier *notifiers; /* certmon_notifications_total{notifier,result},
                                                  * certmon_notification_queue_length{notifier} */
    size_t notifier_count;
    const struct cm_metrics_http *http; /* certmon_http_connections_{evicted,refused}_total;
                                         * NULL: no listener, families left out */
    const struct cm_metrics_revocation *revocation; /* NULL: no checker, families left out */
    const struct cm_metrics_change *changes; /* certmon_cert_changes_total{target,kind}: the
                                              * targets whose leaf changed, sorted by name */
    size_t change_count;
    const struct cm_metrics_discovery *discovery; /* certmon_discovery_*: sources and files */
    size_t discovery_count;
};

/* The process_* metrics of the Prometheus client conventions (read by cm_process_read,
 * daemon/process.h: rendering does no I/O). */
struct cm_metrics_process {
    double cpu_seconds;     /* process_cpu_seconds_total (user + system) */
    double resident_bytes;  /* process_resident_memory_bytes */
    double virtual_bytes;   /* process_virtual_memory_bytes */
    double start_time;      /* process_start_time_seconds (Unix) */
    double open_fds;        /* process_open_fds */
    double max_fds;         /* process_max_fds */
};

/* A growable output buffer. Rendering appends to it; on allocation failure it stops growing
 * and failed is set. After a render that did not fail, data[len] is a NUL (not in len).
 * Start zeroed; to reuse the memory for the next scrape, set len = 0 and keep the rest. */
struct cm_metrics_buf {
    char *data;
    size_t len, cap;
    bool failed;
};

void cm_metrics_buf_free(struct cm_metrics_buf *b);

/* Renders every per-target family over views[0..n) (NULL entries skipped), then, when not
 * NULL, the self metrics and the process metrics, into out. A family without samples is left
 * out entirely (no HELP or TYPE). The views must have distinct targets: two views of the same
 * target would make duplicate series. Returns 0 or -ENOMEM. */
int cm_metrics_render(const struct cm_metrics_view *const *views, size_t n,
                      const struct cm_metrics_self *self, const struct cm_metrics_process *proc,
                      struct cm_metrics_buf *out);

/* Where an incremental render stands. Start from CM_METRICS_CURSOR_INIT. */
struct cm_metrics_cursor {
    unsigned family; /* internal */
    size_t next;     /* internal */
    bool open;       /* internal: the current family's HELP and TYPE are out */
};
#define CM_METRICS_CURSOR_INIT {0, 0, false}

/* The same output as cm_metrics_render, in pieces, for a response streamed with bounded
 * memory: renders from *cur on, and stops once out->len reaches limit (checked after each
 * view's samples of a family, so a piece ends on a line boundary and may pass limit by one
 * view's lines) or when everything is out. The caller may drain out (len = 0) between calls.
 * views, n, self and proc must be the same, and the views alive, across the calls of one
 * render. Returns 1 when it stopped at limit (call again: the next call may add nothing and
 * return 0), 0 when everything is out, or -ENOMEM. */
int cm_metrics_render_some(const struct cm_metrics_view *const *views, size_t n,
                           const struct cm_metrics_self *self,
                           const struct cm_metrics_process *proc, struct cm_metrics_cursor *cur,
                           size_t limit, struct cm_metrics_buf *out);

/* The Content-Type of the output. */
#define CM_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
