/* The state database: one SQLite file in WAL mode with a row per state entry (table
 * `targets`: name, owner, status, last_probe, last_success, status_since, failures, seen,
 * posture_at, posture, report; the JSON columns as cm_state_row describes them). `sqlite3`
 * on the file is a supported way to look; certmon's own readers are cm_store_read and
 * `certmon state export`.
 *
 * One connection, owned by one writer thread: the loop hands it copies of entries
 * (cm_store_put, cm_store_delete) and never waits for the disk. The thread commits what has
 * queued up at most CM_STORE_COMMIT_MS after the first of it arrived, one transaction per
 * batch, so that a crash (kill -9) loses at most that much and never corrupts the file
 * (synchronous=NORMAL: a power loss may lose the last commits too, never the file). Each put
 * is one small upsert of one row: the cost of a result does not grow with the fleet. */
#ifndef CERTMON_STORE_H
#define CERTMON_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "certmon/daemon/state.h"

/* Longest time a queued change waits for its commit. */
#define CM_STORE_COMMIT_MS 250

/* The schema version kept in PRAGMA user_version. */
#define CM_STORE_SCHEMA 1

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

/* Queues the entry's current fields, copied (the report text by reference): the entry may
 * change or go right after. Returns 0 or -ENOMEM (nothing queued). */
int cm_store_put(struct cm_store *st, const struct cm_state_entry *e);

/* Queues the removal of the row of name. Returns 0 or -ENOMEM. */
int cm_store_delete(struct cm_store *st, const char *name);

/* Queues the removal of every row, for a store that is to take another state whole (the
 * puts that follow). Returns 0 or -ENOMEM. */
int cm_store_delete_all(struct cm_store *st);

/* Commits everything queued so far and waits up to timeout_ms for it. Returns 0, -ETIMEDOUT,
 * or a negative errno when the commit failed (the reason is logged). */
int cm_store_sync(struct cm_store *st, uint64_t timeout_ms);

/* Commits what is queued, closes the database (checkpointing the WAL into the file) and ends
 * the writer thread, waiting for it (at exit, when nothing else runs). The loop handle it
 * used is closed: run the loop once more before closing it. NULL is a no-op. Returns 0 or
 * the error of the last commit. */
int cm_store_close(struct cm_store *st);

/* Counters for logs and benchmarks (read on the loop). */
struct cm_store_stats {
    uint64_t rows_written; /* upserts committed */
    uint64_t commits;
    uint64_t failures; /* transactions that failed (their changes are lost) */
};
void cm_store_get_stats(struct cm_store *st, struct cm_store_stats *out);

/* Reads the database at path into s (empty), read-only, without a writer: for `certmon state
 * export` and tests, also while a daemon writes it. Every report is checked
 * (cm_state_check_reports). A JSON state document at path is read as
 * such. Returns 0, or CM_ESTATE / a negative errno with a reason in err (s then empty). A
 * missing file is -ENOENT. */
int cm_store_read(const char *path, struct cm_state *s, char *err, size_t errlen);

#endif
