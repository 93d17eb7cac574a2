/* The notifiers of one configuration, on the daemon's loop: routing of findings to the
 * notifiers that want them, one alert table per notifier (alert.h: its own `for` and repeat
 * interval), grouping (alerts that fire within group_wait leave as one message), and a
 * delivery queue per notifier with retries (exponential backoff with jitter, 429/503
 * Retry-After honoured, at most max_age), sent through httpc (HTTP and SMTP). A receiver that
 * is down or slow delays only its own queue. The alert tables and the undelivered messages
 * are persisted by the caller, so that a restart loses none and re-sends nothing that was
 * delivered: row by row through the persistence hooks (cm_notify_set_persist: each change
 * costs one row, whatever the number of alerts), loaded back with load_json; or whole
 * (to_json). Secrets (webhook secrets, SMTP passwords, tokens in
 * URLs, PagerDuty routing keys, Telegram bot tokens, ntfy tokens) are never logged: a
 * notifier's token is also hidden in libcurl's error texts and receivers' answers. A
 * PagerDuty notifier sends one event per notice (a group leaves as one request per alert). */
#ifndef CERTMON_NOTIFY_H
#define CERTMON_NOTIFY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "certmon/analysis/analyze.h"
#include "certmon/config/config.h"
#include "certmon/http/httpc.h"

struct cm_notify;

/* Counters of one notifier, for certmon_notifications_total{notifier,result} and
 * certmon_notification_queue_length{notifier}. */
struct cm_notify_stats {
    const char *name; /* valid until the next reconfigure or close */
    uint64_t sent;    /* messages the receiver accepted */
    uint64_t failed;  /* attempts that failed (each retry counts) */
    uint64_t dropped; /* messages given up: older than max_age, or refused for good (4xx) */
    size_t queued;    /* messages waiting (grouping or delivery) */
};

/* Creates the notifiers of cfg (cfg must outlive them, or be replaced through
 * cm_notify_reconfigure). http is borrowed. Returns 0 or -ENOMEM. */
int cm_notify_new(uv_loop_t *loop, struct cm_httpc *http, const struct cm_config *cfg,
                  struct cm_notify **out);

/* Feeds the latest findings of one target at time now (Unix seconds), with each finding's
 * first-seen time (same order as f->items; NULL: now) and the target's labels (may be NULL).
 * Each notifier filters them (min_severity, findings, match) and updates its alert table;
 * the events it emits are grouped and queued. */
void cm_notify_observe(struct cm_notify *n, const char *target, const struct cm_labels *labels,
                       const struct cm_findings *f, const int64_t *first_seen, int64_t now);

/* As cm_notify_observe, for a result that carries no certificate (a probe refused, timed out
 * or failed before the server's certificate; a file that could not be read): each notifier
 * observes it with cm_alerts_observe_without_cert, so that the alerts of the certificate
 * (cert.expiring, chain.*, ...) stay as they were, neither resolved nor fired again when the
 * certificate is back, while the failure's own alert (probe.failed) fires. */
void cm_notify_observe_without_cert(struct cm_notify *n, const char *target,
                                    const struct cm_labels *labels, const struct cm_findings *f,
                                    const int64_t *first_seen, int64_t now);

/* As cm_notify_observe, for a result whose leaf is a renewal of the leaf served before: the
 * alerts of the leaf's expiry it resolves (cert.expired, cert.expiring*) say so, their
 * message being "NOTE; was: LAST MESSAGE" (note: "renewed, now valid until ..."). note is
 * borrowed for the call. */
void cm_notify_observe_renewed(struct cm_notify *n, const char *target,
                               const struct cm_labels *labels, const struct cm_findings *f,
                               const int64_t *first_seen, int64_t now, const char *note);

/* An event rather than a problem (a renewal, with notify_renewals): one info notice (FIRING,
 * position 0, kept in no alert table, so never repeated nor resolved) of id, which must be a
 * catalogue id (the persisted queue keeps only those), to every notifier whose match, and
 * findings list when it has one, let it through; min_severity does not apply, since the
 * caller's option asked for it. Grouped, queued, retried and persisted like the alerts. */
void cm_notify_event(struct cm_notify *n, const char *target, const struct cm_labels *labels,
                     const char *id, const char *message, int64_t now);

/* A target no longer configured: its fired alerts resolve. */
void cm_notify_forget(struct cm_notify *n, const char *target, int64_t now);

/* Applies a new configuration (after a reload): notifiers kept by name keep their alert tables
 * and queues (with the new settings), new ones start empty, removed ones are dropped with
 * their queues (logged). Returns 0 or -ENOMEM (nothing changed). */
int cm_notify_reconfigure(struct cm_notify *n, const struct cm_config *cfg);

/* Persistence: {"NAME": {"alerts": [...], "queue": [...]}, ...}. load_json restores the
 * notifiers that exist by name and ignores the others; call it before the first observe.
 * A queue entry may carry its "seq" (cm_notify_msg_row's, kept; else a new one is given), and
 * "grouping": true for a notice that was being grouped (it goes back to the group, which
 * leaves group_wait after the load); alerts may carry their "seq" (alert.h).
 * Returns 0, CM_ESTATE for a malformed document (nothing restored), or -ENOMEM. */
json_t *cm_notify_to_json(const struct cm_notify *n);
int cm_notify_load_json(struct cm_notify *n, json_t *j);

/* One persisted message of a notifier's delivery queue, or one notice still being grouped
 * (url NULL: it becomes part of the next message of every queue). Strings are valid during
 * the call only. */
struct cm_notify_msg_row {
    uint64_t seq;        /* unique among the notifiers of one cm_notify, increasing */
    const char *url;     /* the queue's destination, or NULL (a notice being grouped) */
    int64_t created_at;  /* Unix seconds */
    unsigned attempts;   /* failed attempts so far */
    const char *notices; /* JSON array text of the notices (cm_notice_to_json each) */
};

struct cm_alert_row;

/* Persistence row by row, called on the loop as the rows change, in the order of the changes
 * (a caller that applies them in order holds what to_json would show). notifier is the
 * notifier's name; everything is valid during the call only.
 * - alert: a row of the notifier's alert table changed (alert.h, cm_alerts_on_change), or went;
 * - msg_put: a message was queued (url: its queue's destination) or a notice started being
 *   grouped (url NULL; it leaves with the group); written whole, also after a split;
 * - msg_tried: the message's failed attempts are now attempts;
 * - msg_gone: the message (or grouped notice) left: delivered, dropped, refused, or its
 *   notices moved into a message (a group that left, a message split);
 * - dropped: the notifier is gone (a reload removed it) with every row. */
struct cm_notify_persist {
    void (*alert)(void *arg, const char *notifier, const struct cm_alert_row *row, bool removed);
    void (*msg_put)(void *arg, const char *notifier, const struct cm_notify_msg_row *m);
    void (*msg_tried)(void *arg, const char *notifier, uint64_t seq, unsigned attempts);
    void (*msg_gone)(void *arg, const char *notifier, uint64_t seq);
    void (*dropped)(void *arg, const char *notifier);
};

/* Adds one persisted alert row to the table of notifier (cm_alerts_add), before the first
 * observe; a load_json document without "alerts" for it keeps what was added. Returns 0,
 * -ENOENT (no such notifier), CM_ESTATE (the row is not sound, or already there) or -ENOMEM. */
int cm_notify_load_alert(struct cm_notify *n, const char *notifier, const struct cm_alert_row *r);

/* Installs the hooks (copied; NULL: none). Call after load_json, which reports nothing. */
void cm_notify_set_persist(struct cm_notify *n, const struct cm_notify_persist *p, void *arg);

/* Calls the hooks with every row as it is now (alert and msg_put): after an import, or for a
 * new database. Returns 0 or -ENOMEM (some rows not reported; logged). */
int cm_notify_persist_all(struct cm_notify *n);

/* Called (on the loop) whenever what to_json would return has changed, so that the caller
 * can schedule a write. */
void cm_notify_on_change(struct cm_notify *n, void (*cb)(void *arg), void *arg);

/* Fills out with up to max notifiers' counters; returns how many notifiers there are. */
size_t cm_notify_stats(const struct cm_notify *n, struct cm_notify_stats *out, size_t max);

/* The test message's one notice: a FIRING notice of severity info, without labels. Its
 * finding id is not in the catalogue, so that no receiver rule for a real finding matches. */
#define CM_NOTIFY_TEST_TARGET "certmon-test"
#define CM_NOTIFY_TEST_FINDING "certmon.test"
#define CM_NOTIFY_TEST_MESSAGE "certmon notify-test: this is a test message"

/* `certmon notify-test`: sends a test message through every notifier (only == NULL) or the
 * one named only, bypassing filters, grouping and the queue (one attempt each), and calls
 * cb once per message sent with what the receiver answered: once per notifier, and for an
 * Alertmanager notifier once per URL of urls (every Alertmanager is asked). cb runs from a
 * loop callback, or from cm_notify_close (cancelled: curl_code CURLE_ABORTED_BY_CALLBACK).
 * Returns the number of messages sent (a message that could not be started is logged and
 * not counted; cb does not run for it), or -ENOENT when no notifier is named only. */
int cm_notify_test(struct cm_notify *n, const char *only,
                   void (*cb)(const char *name, const char *type, const struct cm_httpc_result *r,
                              void *arg),
                   void *arg);

/* Stops: transfers in flight are cancelled (their messages stay queued, so a to_json after
 * this still holds them), timers closed; freed once its handles have closed. NULL is a
 * no-op. */
void cm_notify_close(struct cm_notify *n);

#endif
