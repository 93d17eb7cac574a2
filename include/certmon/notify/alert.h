/* Alert state machine: findings over time -> notifications. Pure: no I/O, time is a
 * parameter, so restarts, delays and repeats are tested without waiting.
 *
 * One alert per (target, finding id, chain position). When a finding appears the alert is
 * pending; after `for_s` (0: at once) it fires (one FIRING event). While it stays, a change
 * of severity is one CHANGED event, and every `repeat_s` a REPEAT event. When the finding
 * goes away (the certificate was renewed, the server fixed), one RESOLVED event follows, if
 * the alert had fired; a pending alert that goes away is dropped silently. The table
 * survives restarts, so that a restart neither re-sends what was firing nor forgets it: whole
 * (cm_alerts_to_json / cm_alerts_from_json), or alert by alert (cm_alerts_on_change reports
 * every change of a row, cm_alerts_foreach lists them, from_json takes them back).
 *
 * Options come with each call (a reload may change them) and apply to every alert; negative
 * values count as 0 and a NULL opts as {0, 0}. Events go to emit (NULL: dropped), which must
 * not call back into the same table.
 *
 * Cost, with N alerts in the table: observe() of a target with F findings and A alerts is
 * O((F + A) log N) (hash lookups, heap updates); forget() O(A log N); tick() O((E + 1) log N)
 * for E events; cm_alerts_next() O(1); to_json O(N log N); from_json O(N log N). */
#ifndef CERTMON_ALERT_H
#define CERTMON_ALERT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "certmon/analysis/analyze.h"

enum cm_alert_kind {
    CM_ALERT_FIRING = 0, /* first notification of a problem */
    CM_ALERT_CHANGED,    /* still there, another severity */
    CM_ALERT_REPEAT,     /* still there: reminder after repeat_s */
    CM_ALERT_RESOLVED,   /* gone */
};

/* What a notifier is told. Strings are valid during the emit callback only. */
struct cm_alert_event {
    enum cm_alert_kind kind;
    const char *target;        /* state name of the target */
    const char *id;            /* finding id (static) */
    int position;              /* chain position, or -1 */
    enum cm_severity severity; /* now (for RESOLVED: the last one) */
    enum cm_severity previous; /* CHANGED: before; else as severity */
    const char *message;       /* the finding's message (last one for RESOLVED) */
    int64_t started_at;        /* when the finding was first seen */
    int64_t fired_at;          /* when FIRING was emitted (this event's time for FIRING) */
    int64_t at;                /* this event's time */
};

typedef void (*cm_alert_emit)(const struct cm_alert_event *ev, void *arg);

struct cm_alert_opts {
    int64_t for_s;    /* a finding must last this long before it fires (0: at once) */
    int64_t repeat_s; /* reminder interval while it lasts (0: never) */
};

struct cm_alerts;

/* An empty table. Returns 0 or -ENOMEM (*out then NULL). Free with cm_alerts_free (no
 * events; NULL is a no-op). */
int cm_alerts_new(struct cm_alerts **out);
void cm_alerts_free(struct cm_alerts *a);

/* Feeds the current findings of one target at time now (f may be empty or NULL: everything of
 * that target resolves). first_seen, when not NULL, gives each finding's first-seen time (same
 * order as f->items), else now is used for new ones. Emits FIRING (when for_s is 0),
 * CHANGED and RESOLVED events, in that order per alert; FIRING and CHANGED in the order of
 * the findings, then RESOLVED oldest alert first. Findings of f with the same id and position
 * (protocol.legacy for TLS 1.0 and SSL 3.0, cipher.weak per class) are one alert: the worst
 * severity, the messages joined with "; ", the earliest first-seen time. A new message alone
 * emits nothing; the latest one goes with the alert's next event. Copies target and messages.
 * Returns 0, -EINVAL (a or target NULL) or -ENOMEM (the table stays consistent: what could
 * not be recorded is retried by the next observe). */
int cm_alerts_observe(struct cm_alerts *a, const char *target, const struct cm_findings *f,
                      const int64_t *first_seen, const struct cm_alert_opts *o, int64_t now,
                      cm_alert_emit emit, void *arg);

/* As cm_alerts_observe, for the findings of a result that carries no certificate: a probe
 * refused, unreachable, timed out or failed before the server sent its certificate, a file
 * that could not be read. Such a result tells how the probe failed and nothing about the
 * certificate, the chain or the endpoint's protocols, so of the target's alerts that f does
 * not hold only those of findings every result judges (cm_finding_judged_without_cert:
 * probe.failed, the mTLS refusals that replace it, our own client certificate's expiry)
 * resolve; every other one stays as it is, unreported: a fired
 * alert is neither resolved nor fired again later, its reminders stay due, a pending one
 * keeps counting its `for` from when it was first seen, until a result that carries a
 * certificate judges it. The findings of f are observed as cm_alerts_observe does. Same
 * returns. */
int cm_alerts_observe_without_cert(struct cm_alerts *a, const char *target,
                                   const struct cm_findings *f, const int64_t *first_seen,
                                   const struct cm_alert_opts *o, int64_t now, cm_alert_emit emit,
                                   void *arg);

/* Emits what is due at now: pending alerts whose `for` has passed (FIRING) and reminders
 * (REPEAT), earliest due first, all with time now. A reminder is due repeat_s after the
 * alert's last notification (FIRING, CHANGED or REPEAT); a late tick sends one REPEAT per
 * alert, not one per missed interval. Returns the next time something will be due, or
 * INT64_MAX when nothing will. */
int64_t cm_alerts_tick(struct cm_alerts *a, const struct cm_alert_opts *o, int64_t now,
                       cm_alert_emit emit, void *arg);

/* A target no longer configured: its fired alerts resolve (RESOLVED events), the rest is
 * dropped. */
void cm_alerts_forget(struct cm_alerts *a, const char *target, int64_t now, cm_alert_emit emit,
                      void *arg);

/* When cm_alerts_tick has something to do next under o, without doing it: INT64_MAX when
 * nothing will be due; a past time (possibly INT64_MIN) when something already is. For arming
 * a timer after cm_alerts_observe, which can add pending alerts. */
int64_t cm_alerts_next(const struct cm_alerts *a, const struct cm_alert_opts *o);

/* Alerts in the table (pending and firing). */
size_t cm_alerts_count(const struct cm_alerts *a);

/* The table as JSON (an array of objects), and back into an empty table. Unknown finding ids
 * are dropped on load. from_json returns 0, CM_ESTATE for a malformed document, or -ENOMEM.
 * One object per alert, in creation order: {"target", "id", "position" (-1: none),
 * "severity" ("info"...), "message", "started_at", "fired_at" and "notified_at" (Unix
 * seconds; both null while pending; notified_at is the last FIRING, CHANGED or REPEAT)}.
 * from_json also takes an optional "seq" (an integer >= 0: the alert's creation order, as
 * cm_alert_row has it; without it the array's order counts). Other members are ignored. On any
 * error from_json leaves the table empty; a table that is not empty is refused with CM_EBADARG,
 * untouched. to_json returns NULL when out of memory. */
json_t *cm_alerts_to_json(const struct cm_alerts *a);
int cm_alerts_from_json(struct cm_alerts *a, json_t *j);

/* One alert as persisted: its key (target, id, position) and every field a restart needs.
 * Strings are valid during the callback only. */
struct cm_alert_row {
    const char *target;
    const char *id;
    int position;
    enum cm_severity severity;
    const char *message;
    int64_t started_at;
    bool fired;
    int64_t fired_at;    /* when fired */
    int64_t notified_at; /* when fired: the last FIRING, CHANGED or REPEAT */
    uint64_t seq;        /* creation order (kept across restarts: "seq" in from_json) */
};

/* removed: the alert is gone (row holds its key and last fields); else row is its new
 * state. Must not call back into the table. */
typedef void (*cm_alert_change)(const struct cm_alert_row *row, bool removed, void *arg);

/* Calls cb (NULL: nobody) after every change of an alert that a restart would need: created
 * (pending or fired), fired, severity or message changed, reminded, resolved or dropped; at
 * most once per alert per observe() or tick() step, and never for what from_json loads. One
 * call costs O(1): the caller persists the one row, not the table. */
void cm_alerts_on_change(struct cm_alerts *a, cm_alert_change cb, void *arg);

/* Adds one alert as persisted (a row of cm_alerts_on_change; its seq kept), reporting
 * nothing: a load row by row, before the first observe. An id this version does not know is
 * dropped (0). Returns 0, CM_ESTATE (a row that is not sound, or an alert already there), or
 * -ENOMEM. O(log N). */
int cm_alerts_add(struct cm_alerts *a, const struct cm_alert_row *r);

/* Calls fn with every alert, in creation order (O(N log N)). Returns 0, or -ENOMEM (fn not
 * called). */
int cm_alerts_foreach(const struct cm_alerts *a,
                      void (*fn)(const struct cm_alert_row *row, void *arg), void *arg);

const char *
cm_alert_kind_name(enum cm_alert_kind k); /* "firing", "changed", "repeat", "resolved" */

#endif
