/* The state database: one SQLite file in WAL mode with a row per state entry (table
 * `targets`: name, owner, status, last_probe, last_success, status_since, failures, seen,
 * posture_at, posture, report, seq; the JSON columns as cm_state_row describes them, the
 * report packed: base/pack.h). `sqlite3` on the file is a supported way to look (the view
 * `current`); certmon's own readers are cm_store_read and `certmon state export`
 * (cm_store_read_all).
 *
 * One connection, owned by one writer thread: the loop hands it copies of entries
 * (cm_store_put, cm_store_delete) and never waits for the disk. The thread commits what has
 * queued up at most CM_STORE_COMMIT_MS after the first of it arrived, one transaction per
 * batch, so that a crash (kill -9) loses at most that much and never corrupts the file
 * (synchronous=NORMAL: a power loss may lose the last commits too, never the file).
 *
 * Schema 5: a put of a known entry appends a row to the results log (tables `results_a` and
 * `results_b`, taking turns; the same columns, seq its position) instead of rewriting the
 * entry's row in place, so that consecutive results share pages. Once the active table holds
 * twice as many rows as `targets` (and at least CM_STORE_FOLD_MIN), the other one takes the
 * results and the thread folds the full one into `targets` in small steps with its commits,
 * in the order of the rows, then empties it. A row of `targets` is current up to its seq; a
 * newer log row of the same name overrides it (the view `current`). The cost of a result
 * stays flat in the number of entries (about 2.5 KiB written, WAL and checkpoint included).
 *
 * Schema 2 adds the certificate history (table `history`): one row per distinct leaf a target
 * has served, keyed by (target, sha256), with first_seen, last_seen and the leaf's summary
 * (subject, sans, issuer, key_type, key_bits, not_before, not_after, chain: the SHA-256 of
 * every certificate the peer sent, leaf first, space-separated). Schema 3 adds the pins of
 * targets that pin on first use (table `pins`: target, sha256, spki_sha256, subject, sans,
 * issuer, key_type, key_bits, not_after, pinned_at). Schema 4 adds the history's column
 * trust (cm_leaf_trust_name: public, private, untrusted; NULL when not known). Schema 5 adds the
 * results log (above). Schema 6 adds the notifiers' alert tables and delivery queues (tables
 * `alerts`: notifier, target, finding, position, severity, message, started_at, fired_at,
 * notified_at, seq, keyed by (notifier, target, finding, position), with its log `alert_log`
 * (the same columns, lseq its position, removed), folded into it like the results log, and
 * the view `current_alerts`; `outbox`: notifier, seq, url, created_at, attempts, notices,
 * keyed by (notifier, seq)), a row written per change (cm_store_alert, cm_store_outbox_*),
 * read back at start (cm_store_notify_read). An older file
 * is upgraded in place when the daemon opens it. */
#ifndef CERTMON_STORE_H
#define CERTMON_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "certmon/daemon/state.h"
#include "certmon/notify/alert.h"
#include "certmon/notify/notify.h"

/* Longest time a queued change waits for its commit. */
#define CM_STORE_COMMIT_MS 250

/* The schema version kept in PRAGMA user_version. */
#define CM_STORE_SCHEMA 6

struct cm_store;

/* Opens the database at path and loads its entries into s (empty; NULL: load nothing), on the
 * calling thread (it blocks: call it before the loop runs), then starts the writer thread,
 * which reports back to loop. What path holds decides, by its first bytes:
 * - nothing (no file): a new database;
 * - a SQLite database: used (an older schema is upgraded; a newer one is an error);
 * - anything else is taken for a JSON state document of earlier versions: it is loaded
 *   (cm_state_load), written into a new database, and kept as PATH.imported;
 * - a file that cannot be used (a corrupt database, JSON that does not load): logged as an
 *   error and moved aside to PATH.corrupt-<now> (with its -wal file), and a new empty
 *   database takes its place; s is then empty.
 * Returns 0, or a negative errno / CM_ESTATE with a reason in err when no database can be
 * made at path at all (a missing directory, no permission): nothing is started and s is
 * empty. */
int cm_store_open(uv_loop_t *loop, const char *path, struct cm_state *s, time_t now,
                  struct cm_store **out, char *err, size_t errlen);

/* Queues the entry's current fields, copied (the report by reference): the entry may change or
 * go right after. The first put of a name inserts its row; later ones append to the log.
 * Returns 0 or -ENOMEM (nothing queued). */
int cm_store_put(struct cm_store *st, const struct cm_state_entry *e);

/* Queues the removal of the row of name. Returns 0 or -ENOMEM. */
int cm_store_delete(struct cm_store *st, const char *name);

/* Queues the removal of every row, for a store that is to take another state whole (the
 * puts that follow). Returns 0 or -ENOMEM. */
int cm_store_delete_all(struct cm_store *st);

/* Commits everything queued so far and waits up to timeout_ms for it. Returns 0, -ETIMEDOUT,
 * or a negative errno when the commit failed (the reason is logged). */
int cm_store_sync(struct cm_store *st, uint64_t timeout_ms);

/* A mark of everything queued so far (take it right after a cm_store_put), and whether all of
 * it is durable: committed, with no failed transaction up to it. Any thread. The daemon lets
 * go of a report in memory once the put that carried it is durable (cm_state_drop_report). */
uint64_t cm_store_mark(struct cm_store *st);
bool cm_store_durable(struct cm_store *st, uint64_t mark);

/* Reads the stored reports of names[0..n) from the database at path (the view `current`),
 * read-only, in one read transaction, on the calling thread (it blocks: the daemon calls it on
 * the thread pool): out[i] a report reference (cm_state_report_unref), or NULL when the name
 * has no row or no report. Returns 0, or CM_ESTATE / a negative errno with a reason in err
 * (every out[i] NULL). */
int cm_store_reports(const char *path, const char *const *names, size_t n, char **out, char *err,
                     size_t errlen);

/* Commits what is queued, closes the database (checkpointing the WAL into the file) and ends
 * the writer thread, waiting for it (at exit, when nothing else runs). The loop handle it
 * used is closed: run the loop once more before closing it. NULL is a no-op. Returns 0 or
 * the error of the last commit. */
int cm_store_close(struct cm_store *st);

/* Queues "target name served this chain at now" for the history: a new row for a new leaf,
 * else last_seen moves to now. The caller decides how often (the daemon: at a new leaf, and at
 * most once an hour per target otherwise), so that bytes per result stay flat. A chain without
 * certificates is ignored. Returns 0 or -ENOMEM. */
int cm_store_seen(struct cm_store *st, const char *name, const struct cm_chain *chain, time_t now);

/* The same, noting how the chain was trusted (CM_TRUST_UNKNOWN: NULL) in a new row. */
int cm_store_seen_as(struct cm_store *st, const char *name, const struct cm_chain *chain,
                     enum cm_leaf_trust trust, time_t now);

/* Queues the removal of every history row last seen before cutoff (Unix seconds). Returns 0 or
 * -ENOMEM. */
int cm_store_prune(struct cm_store *st, time_t cutoff);

/* Queues "the pin of target name is now pin, since at" (pin = "tofu"): one upsert of its
 * pins row. Returns 0 or -ENOMEM. */
int cm_store_pin(struct cm_store *st, const char *name, const struct cm_leaf_summary *pin,
                 time_t at);

/* Queues the removal of the pin of target name. Returns 0 or -ENOMEM. */
int cm_store_unpin(struct cm_store *st, const char *name);

/* Calls fn with every pin of the database at path, read-only, on the calling thread (it
 * blocks: the daemon calls it on the thread pool). The summary (its trust unknown, has_spki
 * false when the key is not known; its texts borrowed) is valid during the call; a row whose
 * sha256 is not 64 hex digits is passed over. Returns 0 (also for a database
 * without pins, or no database), or CM_ESTATE / a negative errno with a reason in err. */
int cm_store_pins(const char *path,
                  void (*fn)(void *arg, const char *target, const struct cm_leaf_summary *pin,
                             int64_t pinned_at),
                  void *arg, char *err, size_t errlen);

/* One history row as read back; strings owned (cm_history_free). */
struct cm_history_row {
    char *sha256;
    int64_t first_seen, last_seen;
    char *subject, *issuer;
    char *sans; /* ", "-separated, in certificate order */
    char *key_type;
    unsigned key_bits;
    int64_t not_before, not_after;
    char *chain;              /* SHA-256 of each certificate sent, leaf first, space-separated */
    enum cm_leaf_trust trust; /* as first seen; CM_TRUST_UNKNOWN for rows of schema < 4 */
};

/* Reads the history of target name from the database at path, read-only (also while a daemon
 * writes it), newest first (by first_seen, then last_seen). A database of schema 1 has no
 * history: 0 rows. Returns 0 with *rows (NULL when *n is 0) and *n, or CM_ESTATE / a negative
 * errno with a reason in err (-ENOENT: no file). */
int cm_store_history(const char *path, const char *name, struct cm_history_row **rows, size_t *n,
                     char *err, size_t errlen);

void cm_history_free(struct cm_history_row *rows, size_t n);

/* Calls fn with the newest row (by first_seen) of every target in the history of the
 * database at path, read-only, on the calling thread (it blocks: at start, before the loop
 * runs): the daemon's memory of each target's last leaf, so that a change across a restart is
 * still told. The row is valid during the call. Returns 0 (also for a database without a
 * history), or CM_ESTATE / a negative errno with a reason in err. */
int cm_store_latest(const char *path,
                    void (*fn)(void *arg, const char *target, const struct cm_history_row *row),
                    void *arg, char *err, size_t errlen);

/* The rows as a JSON array, in their order: objects with sha256, first_seen, last_seen,
 * subject, issuer, sans (array), key_type, key_bits, not_before, not_after (times RFC 3339,
 * UTC), chain (array of SHA-256) and trust ("public", "private", "untrusted" or null). NULL
 * when out of memory. */
json_t *cm_history_json(const struct cm_history_row *rows, size_t n);

/* Queues the write of one alert row of notifier (removed: its deletion, by its key). The
 * strings are copied. Returns 0 or -ENOMEM. */
int cm_store_alert(struct cm_store *st, const char *notifier, const struct cm_alert_row *r,
                   bool removed);

/* Queues the write of one outbox row of notifier (a message of a queue, or with url NULL a
 * notice being grouped), whole; its attempts only; its removal. Return 0 or -ENOMEM. */
int cm_store_outbox_put(struct cm_store *st, const char *notifier,
                        const struct cm_notify_msg_row *m);
int cm_store_outbox_tried(struct cm_store *st, const char *notifier, uint64_t seq,
                          unsigned attempts);
int cm_store_outbox_delete(struct cm_store *st, const char *notifier, uint64_t seq);

/* Queues the removal of every alert and outbox row of notifier (NULL: of every notifier).
 * Returns 0 or -ENOMEM. */
int cm_store_notifier_drop(struct cm_store *st, const char *notifier);

/* Reads the notifiers' rows of the database at path, read-only, into *out: the document
 * cm_notify_load_json takes ({"NAME": {"alerts": [...], "queue": [...]}}), each alert and
 * message with its "seq", each notice being grouped as {"seq", "grouping": true, "created_at",
 * "notices": [one]}, in seq order. With alert not NULL, the alert rows (current_alerts, by
 * notifier and seq) go to it instead, one call each (the row valid during the call; its
 * severity -1 when the column is not a severity name), and the document has no "alerts": a
 * load without a JSON object per alert (100,000 alerts: 0.45 s instead of 1.2-1.45). A database
 * before schema 6, or no file: {}. Returns 0, or CM_ESTATE / -ENOMEM with a reason in err
 * (*out NULL). Blocks (at start, before the loop runs). */
typedef void (*cm_store_alert_fn)(void *arg, const char *notifier, const struct cm_alert_row *r);
int cm_store_notify_read(const char *path, json_t **out, cm_store_alert_fn alert, void *arg,
                         char *err, size_t errlen);

/* A fold of the results log into `targets` starts once the active log table holds at least
 * this many rows and at least twice as many as `targets` has. */
#define CM_STORE_FOLD_MIN 1000

/* Sets that threshold (tests: to fold a small state). Call before the first put. */
void cm_store_set_fold_min(struct cm_store *st, unsigned rows);

/* Counters for logs and benchmarks (read on the loop). */
struct cm_store_stats {
    uint64_t rows_written; /* upserts committed */
    uint64_t commits;
    uint64_t failures;        /* transactions that failed (their changes are lost) */
    uint64_t history_written; /* history upserts committed */
    uint64_t folds;           /* folds of the results log completed */
};
void cm_store_get_stats(struct cm_store *st, struct cm_store_stats *out);

/* Reads the database at path into s (empty), read-only, without a writer: for `certmon state
 * export` and tests, also while a daemon writes it. Every report is checked
 * (cm_state_check_reports). A JSON state document at path is read as
 * such. Returns 0, or CM_ESTATE / a negative errno with a reason in err (s then empty). A
 * missing file is -ENOENT. */
int cm_store_read(const char *path, struct cm_state *s, char *err, size_t errlen);

/* cm_store_read, and with notify not NULL the notifiers' rows as well: *notify gets the
 * document cm_store_notify_read makes with alert and arg (with alert NULL its alerts from the
 * view current_alerts are in it; else they go to alert, which may be called for some rows
 * before an error), read in the same read transaction as the targets, so that both show one
 * commit of a database that a daemon is writing. A JSON state document, or a database before
 * schema 6, has no alerts: {}. Returns as cm_store_read; on error *notify is NULL. */
int cm_store_read_all(const char *path, struct cm_state *s, json_t **notify,
                      cm_store_alert_fn alert, void *arg, char *err, size_t errlen);

#endif
