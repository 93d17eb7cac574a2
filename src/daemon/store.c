/* The state database (see store.h). The loop only ever takes the queue's mutex, for the time
 * of an append; the connection belongs to the writer thread once cm_store_open returns. */
#include "certmon/daemon/store.h"
#include "certmon/base/error.h"
#include "certmon/base/log.h"
#include "certmon/base/text.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* PRAGMA application_id: "cmdb". A SQLite file of some other program is never touched. */
#define APP_ID 0x636d6462

enum kind { K_NONE, K_SQLITE, K_OTHER };
static enum kind sniff(const char *path, int *err);

enum op_kind {
    OP_PUT,
    OP_DELETE,
    OP_DELETE_ALL,
    OP_SEEN,
    OP_PRUNE,
    OP_PIN,
    OP_UNPIN,
    OP_ALERT_PUT,    /* schema 6: one alert row of a notifier, whole */
    OP_ALERT_DEL,    /* its removal */
    OP_OUTBOX_PUT,   /* one queued message (or grouped notice) of a notifier, whole */
    OP_OUTBOX_TRIED, /* its attempts only */
    OP_OUTBOX_DEL,   /* its removal */
    OP_NOTIFIER_DROP /* every alert and message of a notifier (name NULL: of all) */
};

/* One queued change: a copy of an entry's fields (strings owned; report a shared reference). */
struct op {
    enum op_kind kind;
    char *name;
    char *owner;
    const char *status; /* static, or NULL */
    int64_t last_probe, last_success, status_since, posture_at, failures;
    char *seen;
    char *posture;
    char *report; /* cm_state_report_ref */
    /* OP_SEEN: the leaf's summary (name is the target; last_probe is when); OP_PRUNE: the
     * cutoff in last_probe. */
    char *sha256, *subject, *issuer, *sans, *chain;
    const char *key_type; /* static (x509.h) */
    unsigned key_bits;
    int64_t not_before, not_after;
    const char *trust; /* OP_SEEN: cm_leaf_trust_name, or NULL when unknown (static) */
    /* OP_PIN: the pin's own strings (name is the target, last_probe when it was pinned). */
    char *spki_sha256, *pin_key_type;
    /* The notifiers' ops (schema 6): name is the notifier. Alerts: target, finding, position,
     * severity, message, started_at, fired_at and notified_at (both 0 and stored NULL while
     * pending: fired false), seq; the outbox: seq, url (NULL: a notice being grouped),
     * created_at (in started_at), attempts, notices (JSON text). */
    char *target, *message, *url, *notices;
    const char *finding, *severity; /* static */
    int position;
    bool fired;
    int64_t started_at, fired_at, notified_at, seq;
    unsigned attempts;
};

struct queue {
    struct op *v;
    size_t n, cap;
};

/* The fold of the results log into `targets` (see SCHEMA5), a step with each commit, so that
 * no transaction grows with the fleet: a kill -9 still loses at most a commit's worth. Owned
 * by the writer thread. */
enum fold_phase { FOLD_IDLE, FOLD_SCANNING, FOLD_APPLYING, FOLD_EMPTYING };

struct fold_item {
    int64_t id;  /* the target's row: the order of the copies */
    int64_t seq; /* the log row to copy */
};

struct fold {
    enum fold_phase phase;
    int active;          /* the log table results are appended to (LOG_TABLE) */
    int64_t last_seq;    /* the newest seq given out (the log's and the targets' rows') */
    int64_t log_rows;    /* rows in the active table */
    int64_t target_rows; /* rows in targets */
    unsigned fold_min;   /* a fold starts once the active table holds this many rows and twice
                          * as many as `targets` */
    int64_t pos;         /* scanning: done up to this seq */
    struct fold_item *v; /* applying: sorted by id, one per target */
    size_t n, cap, next;
    uint64_t folds; /* completed */
};

struct cm_store {
    char *path;
    sqlite3 *db; /* the writer thread's once started */
    sqlite3_stmt *put_new, *del, *del_all, *seen, *prune;
    sqlite3_stmt *pin, *unpin; /* of the pins table (schema 3) */
    /* Of the notifiers' tables (schema 6). */
    sqlite3_stmt *alert_put, *drop_alert_log, *outbox_put, *outbox_tried, *outbox_del;
    sqlite3_stmt *drop_alerts, *drop_outbox, *drop_all_alerts, *drop_all_outbox;
    int64_t alert_rows, alert_log_rows; /* the writer's counts, pacing the alert log's fold */
    /* Per log table (LOG_TABLE). */
    sqlite3_stmt *append[2], *fold_scan[2], *fold_apply[2], *fold_empty[2];
    struct fold fold; /* the writer thread's */
    uv_thread_t thread;
    bool started;
    uv_async_t async; /* the writer's reports back to the loop */
    bool has_async;

    uv_mutex_t mu; /* guards everything below */
    uv_cond_t cond;
    struct queue q;
    uint64_t first_at;          /* uv_hrtime of the oldest queued change */
    uint64_t queued, committed; /* changes queued and handled (in order) so far */
    uint64_t failed_upto;       /* `committed` after the last failed transaction; 0: none */
    bool closing, sync_req;
    int last_rc;        /* of the latest transaction */
    char last_err[512]; /* its reason, for the loop to log */
    bool err_pending;
    struct cm_store_stats stats;
};

static int failf(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int failf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

static void op_clear(struct op *o)
{
    free(o->name);
    free(o->owner);
    free(o->seen);
    free(o->posture);
    free(o->sha256);
    free(o->subject);
    free(o->issuer);
    free(o->sans);
    free(o->chain);
    free(o->spki_sha256);
    free(o->pin_key_type);
    free(o->target);
    free(o->message);
    free(o->url);
    free(o->notices);
    cm_state_report_unref(o->report);
    memset(o, 0, sizeof(*o));
}

static void queue_clear(struct queue *q)
{
    for (size_t i = 0; i < q->n; i++)
        op_clear(&q->v[i]);
    free(q->v);
    memset(q, 0, sizeof(*q));
}

/* ---- SQL ---- */

/* Schema 3: the leaves pinned on first use (pin = "tofu"), one row per target. */
#define PINS_SCHEMA                                                                                \
    "CREATE TABLE IF NOT EXISTS pins ("                                                            \
    " target TEXT PRIMARY KEY,"                                                                    \
    " sha256 TEXT NOT NULL,"                                                                       \
    " spki_sha256 TEXT NOT NULL,"                                                                  \
    " subject TEXT NOT NULL,"                                                                      \
    " sans TEXT NOT NULL,"                                                                         \
    " issuer TEXT NOT NULL,"                                                                       \
    " key_type TEXT NOT NULL,"                                                                     \
    " key_bits INTEGER NOT NULL,"                                                                  \
    " not_after INTEGER NOT NULL,"                                                                 \
    " pinned_at INTEGER NOT NULL);"

static const char PIN_UPSERT[] =
    "INSERT INTO pins (target, sha256, spki_sha256, subject, sans, issuer, key_type, key_bits,"
    " not_after, pinned_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (target)"
    " DO UPDATE SET sha256 = excluded.sha256, spki_sha256 = excluded.spki_sha256, subject ="
    " excluded.subject, sans = excluded.sans, issuer = excluded.issuer, key_type ="
    " excluded.key_type, key_bits = excluded.key_bits, not_after = excluded.not_after,"
    " pinned_at = excluded.pinned_at";

/* The columns of a target's row after its name (the key), in `targets` and in both log
 * tables, in this order: X(column, declared type, how it is bound from struct op's field of
 * the same name). Every statement that writes, appends or copies a row, and the view
 * `current`, is spelled from this list, so that a column added here is in all of them (and
 * unit.state checks that every column survives a fold). A new column also needs its schema
 * version: ALTER TABLE ... ADD COLUMN on `targets` and both log tables of an older file, and
 * the view dropped and made again; and its field in struct op, op_of_entry and load_rows.
 * report has no declared type: a packed report is a BLOB, an imported one JSON text (files
 * made before this list declare it TEXT in `targets`, which stores both as they are too). */
#define ROW_COLUMNS(X)                                                                             \
    X(owner, "TEXT NOT NULL", text)                                                                \
    X(status, "TEXT", text)                                                                        \
    X(last_probe, "INTEGER NOT NULL DEFAULT 0", int64)                                             \
    X(last_success, "INTEGER NOT NULL DEFAULT 0", int64)                                           \
    X(status_since, "INTEGER NOT NULL DEFAULT 0", int64)                                           \
    X(failures, "INTEGER NOT NULL DEFAULT 0", int64)                                               \
    X(seen, "TEXT", text)                                                                          \
    X(posture_at, "INTEGER NOT NULL DEFAULT 0", int64)                                             \
    X(posture, "TEXT", text)                                                                       \
    X(report, "", report)

/* Pieces of SQL text, one per column, each with its leading comma. */
#define COL_DECL(c, type, bind) ", " #c " " type
#define COL_NAME(c, type, bind) ", " #c
#define COL_PARAM(c, type, bind) ", ?"
/* The view's rule for one column: the newest log row's value when there is one (a, else b:
 * only the table holding the newest seq joins), else the row's own. */
#define COL_CURRENT(c, type, bind)                                                                 \
    ", CASE WHEN a.seq IS NOT NULL THEN a." #c " WHEN b.seq IS NOT NULL THEN b." #c " ELSE t." #c  \
    " END AS " #c
#define ROW_DECLS ROW_COLUMNS(COL_DECL)
#define ROW_NAMES ROW_COLUMNS(COL_NAME)
#define ROW_PARAMS ROW_COLUMNS(COL_PARAM)
#define ROW_CURRENT ROW_COLUMNS(COL_CURRENT)

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS targets ("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE" ROW_DECLS ");"
    "CREATE TABLE IF NOT EXISTS history ("
    " target TEXT NOT NULL,"
    " sha256 TEXT NOT NULL,"
    " first_seen INTEGER NOT NULL,"
    " last_seen INTEGER NOT NULL,"
    " subject TEXT NOT NULL,"
    " sans TEXT NOT NULL,"
    " issuer TEXT NOT NULL,"
    " key_type TEXT NOT NULL,"
    " key_bits INTEGER NOT NULL,"
    " not_before INTEGER NOT NULL,"
    " not_after INTEGER NOT NULL,"
    " chain TEXT NOT NULL,"
    " trust TEXT,"
    " PRIMARY KEY (target, sha256));"
    "CREATE INDEX IF NOT EXISTS history_last_seen ON history (last_seen);" PINS_SCHEMA;

/* A leaf seen again only moves last_seen (never back: a late write of an older result). */
static const char SEEN[] =
    "INSERT INTO history (target, sha256, first_seen, last_seen, subject, sans, issuer,"
    " key_type, key_bits, not_before, not_after, chain, trust) VALUES (?1, ?2, ?3, ?3, ?4, ?5,"
    " ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (target, sha256) DO UPDATE SET last_seen ="
    " max(last_seen, excluded.last_seen)";

/* %s: "trust", or "NULL" for a database of a schema before 4 (read before its upgrade). Newest
 * first; leaves first seen within the same second in the order they were inserted. */
static const char SELECT_HISTORY[] =
    "SELECT sha256, first_seen, last_seen, subject, sans, issuer, key_type, key_bits,"
    " not_before, not_after, chain, %s FROM history WHERE target = ?1"
    " ORDER BY first_seen DESC, rowid DESC";

/* Schema 5: the results log, two tables taking turns. A put appends one row to the active
 * one (consecutive results share pages whatever targets they are about, where updating each
 * target's row in place dirtied one 4 KiB page per result, twice with the checkpoint). When it
 * has grown enough, the other one becomes active, and the fold (fold_step) copies the newest
 * row of each target of the full one into `targets`, in the order of the targets' rows (each
 * page of `targets` is written once per fold for all the rows it holds), then empties it whole
 * (SQLite frees the pages of a table emptied without a WHERE without writing them; a range
 * delete would write each page once more). A row of `targets` is current up to its seq: a
 * newer log row of the same name overrides it. The view `current` is that rule, for readers
 * (the daemon's start, `state export`, sqlite3). New targets go to `targets` directly. */
/* One log table (%s: LOG_TABLE). */
static const char LOG_SCHEMA[] = "CREATE TABLE IF NOT EXISTS %s (seq INTEGER PRIMARY KEY,"
                                 " name TEXT NOT NULL" ROW_DECLS ");";

/* The rest of schema 5, after both log tables. */
static const char SCHEMA5[] =
    "ALTER TABLE targets ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;"
    "CREATE VIEW IF NOT EXISTS current AS"
    " WITH latest AS (SELECT name AS lname, max(seq) AS lseq FROM (SELECT name, seq FROM"
    " results_a UNION ALL SELECT name, seq FROM results_b) GROUP BY name)"
    " SELECT t.name AS name" ROW_CURRENT ","
    " max(t.seq, coalesce(lseq, 0)) AS seq"
    " FROM targets t LEFT JOIN latest ON lname = t.name"
    " LEFT JOIN results_a a ON a.seq = lseq AND lseq > t.seq"
    " LEFT JOIN results_b b ON b.seq = lseq AND lseq > t.seq;";

/* A target's first row goes to `targets` (current from then: seq is the newest given out so
 * far); for a known target it does nothing, and the result is appended to the log instead. */
static const char PUT_NEW[] = "INSERT INTO targets (name" ROW_NAMES ", seq) VALUES (?" ROW_PARAMS
                              ", ?) ON CONFLICT (name) DO NOTHING";

/* Per log table (%s: results_a, results_b). The parameters of both: name, the columns, seq
 * (bind_row). */
static const char APPEND[] = "INSERT INTO %s (name" ROW_NAMES ", seq) VALUES (?" ROW_PARAMS ", ?)";

/* The fold of the full table, in three phases (fold_step): which of its rows (seq above ?1,
 * a chunk at a time) are newer than their target's row, with the target's place in the
 * table; copying each target's newest into its row; emptying the table. */
static const char FOLD_SCAN[] = "SELECT t.id, r.seq FROM %s r JOIN targets t ON t.name = r.name"
                                " WHERE r.seq > ?1 AND r.seq > t.seq ORDER BY r.seq LIMIT ?2";

/* name is not in the SET (the key, never changed): its UNIQUE index is left alone. */
static const char FOLD_APPLY[] =
    "UPDATE targets SET (seq" ROW_NAMES ") = (SELECT seq" ROW_NAMES
    " FROM %s WHERE seq = ?1) WHERE name = (SELECT name FROM %s WHERE seq ="
    " ?1) AND seq < ?1";

static const char FOLD_EMPTY[] = "DELETE FROM %s";

static const char *const LOG_TABLE[2] = {"results_a", "results_b"};

static const char SELECT_CURRENT[] =
    "SELECT name, owner, status, last_probe, last_success, status_since, failures, seen,"
    " posture_at, posture, report, seq FROM current";

/* A database of schema 2 opened read-only (never upgraded): its rows as they are. */
static const char SELECT_V2[] =
    "SELECT name, owner, status, last_probe, last_success, status_since, failures, seen,"
    " posture_at, posture, report, 0 FROM targets ORDER BY id";

/* Schema 6: the notifiers' alert tables and delivery queues, a row per alert and per message,
 * written as they change (the daemon's notifier hooks), so that a change costs the same
 * whatever the number of alerts. An alert's change is appended to `alert_log` (the alert's
 * whole row, or a removal): updating the alert's own row in place would dirty one page of
 * `alerts` per change at a random place, twice with the checkpoint (12 KiB per change at
 * 100,000 alerts, 7 at 1,000), where appends share their pages. Once the log holds twice as
 * many rows as `alerts` (and at least ALERT_FOLD_MIN), the writer folds it into `alerts` with a
 * commit (each page of `alerts` written once for all its changes) and empties it. The view
 * `current_alerts` is the rule: an alert's newest log row when it has one (none when that is a
 * removal), else its row of `alerts`. The outbox is appended to and deleted from in seq order:
 * its changes share pages as they are. WITHOUT ROWID: the key is the only B-tree. */
/* An alert's columns, the same in `alerts` and its log (the statements below name them in this
 * order: ALERT_NAMES). */
#define ALERT_COLUMNS                                                                              \
    " notifier TEXT NOT NULL, target TEXT NOT NULL, finding TEXT NOT NULL,"                       \
    " position INTEGER NOT NULL, severity TEXT NOT NULL, message TEXT NOT NULL,"                   \
    " started_at INTEGER NOT NULL, fired_at INTEGER, notified_at INTEGER, seq INTEGER NOT NULL,"
#define ALERT_NAMES                                                                                \
    "notifier, target, finding, position, severity, message, started_at, fired_at, notified_at, seq"
static const char SCHEMA6[] =
    "CREATE TABLE IF NOT EXISTS alerts (" ALERT_COLUMNS
    " PRIMARY KEY (notifier, target, finding, position)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS alert_log ( lseq INTEGER PRIMARY KEY," ALERT_COLUMNS
    " removed INTEGER NOT NULL DEFAULT 0);"
    "CREATE VIEW IF NOT EXISTS current_alerts AS"
    " WITH latest AS (SELECT notifier AS ln, target AS lt, finding AS lf, position AS lp,"
    " max(lseq) AS lm FROM alert_log GROUP BY notifier, target, finding, position)"
    " SELECT a.notifier, a.target, a.finding, a.position, a.severity, a.message, a.started_at,"
    " a.fired_at, a.notified_at, a.seq FROM alerts a LEFT JOIN latest ON ln = a.notifier AND"
    " lt = a.target AND lf = a.finding AND lp = a.position WHERE lm IS NULL"
    " UNION ALL"
    " SELECT l.notifier, l.target, l.finding, l.position, l.severity, l.message, l.started_at,"
    " l.fired_at, l.notified_at, l.seq FROM alert_log l JOIN latest ON lm = l.lseq"
    " WHERE l.removed = 0;"
    "CREATE TABLE IF NOT EXISTS outbox ("
    " notifier TEXT NOT NULL,"
    " seq INTEGER NOT NULL,"
    " url TEXT,"
    " created_at INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " notices TEXT NOT NULL,"
    " PRIMARY KEY (notifier, seq)) WITHOUT ROWID;";

/* An alert's change, appended (?11: 1 for a removal, its other columns then empty). */
static const char ALERT_PUT[] =
    "INSERT INTO alert_log (" ALERT_NAMES ", removed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
    " ?10, ?11)";

/* The fold: each changed alert's newest log row replaces its row, or removes it. */
#define ALERT_LATEST                                                                               \
    " FROM alert_log WHERE lseq IN (SELECT max(lseq) FROM alert_log GROUP BY notifier, target,"    \
    " finding, position)"
static const char ALERT_FOLD[] =
    "INSERT OR REPLACE INTO alerts (" ALERT_NAMES ") SELECT " ALERT_NAMES ALERT_LATEST
    " AND removed = 0;"
    "DELETE FROM alerts WHERE (notifier, target, finding, position) IN (SELECT notifier, target,"
    " finding, position" ALERT_LATEST " AND removed = 1);"
    "DELETE FROM alert_log;";

/* A fold starts once the log holds this many rows and twice as many as `alerts`. */
#define ALERT_FOLD_MIN 1000

static const char OUTBOX_PUT[] =
    "INSERT OR REPLACE INTO outbox (notifier, seq, url, created_at, attempts, notices) VALUES"
    " (?1, ?2, ?3, ?4, ?5, ?6)";

static int exec(sqlite3 *db, const char *sql, char *err, size_t errlen, const char *path)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK)
        failf(err, errlen, 0, "%s: %s", path, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return rc;
}

static int64_t pragma_int(sqlite3 *db, const char *sql, int *rc)
{
    sqlite3_stmt *st = NULL;
    int64_t v = 0;

    if ((*rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL)) == SQLITE_OK) {
        if ((*rc = sqlite3_step(st)) == SQLITE_ROW) {
            v = sqlite3_column_int64(st, 0);
            *rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return v;
}

/* What went wrong with a database: the file is unusable (moved aside) or the trouble is
 * elsewhere (permissions, a full disk: the file is left alone). */
static bool is_corrupt(int rc)
{
    rc &= 0xff;
    return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB;
}

/* Brings a database of schema ver (0: new) to CM_STORE_SCHEMA in one transaction (the rows
 * of `targets` stay, their reports JSON text until their target's next result). */
static char *with_table(const char *sql, const char *t);

static int upgrade(sqlite3 *db, int64_t ver, const char *path, char *err, size_t errlen)
{
    char *sql = NULL, *log_a = with_table(LOG_SCHEMA, LOG_TABLE[0]),
         *log_b = with_table(LOG_SCHEMA, LOG_TABLE[1]);
    int rc;

    /* Version 0 (new) gets every table; 1 the history, the pins and the log; 2 the pins, the
     * history's trust column and the log; 3 that column and the log; 4 the log; each of them
     * and 5 the notifiers' tables. */
    if (ver > 0)
        cm_log_info("state", "file=%s schema %lld upgraded to %d (%s)", path, (long long)ver,
                    CM_STORE_SCHEMA,
                    ver < 2   ? "certificate history, pins, results log, alert tables"
                    : ver < 3 ? "pins, trust in the history, results log, alert tables"
                    : ver < 4 ? "trust in the history, results log, alert tables"
                    : ver < 5 ? "results log, alert tables"
                              : "alert tables and queues");
    if (!log_a || !log_b ||
        asprintf(&sql,
                 "BEGIN; %s %s %s %s %s %s PRAGMA application_id = %d; PRAGMA user_version = %d;"
                 " COMMIT;",
                 ver == 2 || ver == 3 ? "ALTER TABLE history ADD COLUMN trust TEXT;" : "", SCHEMA,
                 ver < 5 ? log_a : "", ver < 5 ? log_b : "", ver < 5 ? SCHEMA5 : "",
                 ver < 6 ? SCHEMA6 : "", APP_ID, CM_STORE_SCHEMA) < 0) {
        free(log_a);
        free(log_b);
        return SQLITE_NOMEM;
    }
    free(log_a);
    free(log_b);
    rc = exec(db, sql, err, errlen, path);
    free(sql);
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* Opens (creating) the database at path, sets WAL mode and the schema. Returns SQLITE_OK or
 * the SQLite code with a reason in err; *db is NULL on failure. */
static int open_db(const char *path, bool readonly, sqlite3 **db, char *err, size_t errlen)
{
    int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc;
    int64_t app, ver;

    *db = NULL;
    if ((rc = sqlite3_open_v2(path, db, flags, NULL)) != SQLITE_OK) {
        failf(err, errlen, 0, "cannot open %s: %s", path,
              *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(*db, 1);
    /* The daemon's writes wait for a reader's lock (sqlite3 on the file) rather than fail. */
    sqlite3_busy_timeout(*db, 5000);
    app = pragma_int(*db, "PRAGMA application_id", &rc);
    if (rc != SQLITE_OK) {
        failf(err, errlen, 0, "%s: %s", path, sqlite3_errmsg(*db));
        goto fail;
    }
    ver = pragma_int(*db, "PRAGMA user_version", &rc);
    if (rc != SQLITE_OK) {
        failf(err, errlen, 0, "%s: %s", path, sqlite3_errmsg(*db));
        goto fail;
    }
    if (app != 0 && app != APP_ID) {
        failf(err, errlen, 0, "%s is a SQLite database of another program (application_id %lld)",
              path, (long long)app);
        rc = SQLITE_MISMATCH;
        goto fail;
    }
    if (ver > CM_STORE_SCHEMA) {
        failf(err, errlen, 0, "%s has schema version %lld; this certmon reads version %d", path,
              (long long)ver, CM_STORE_SCHEMA);
        rc = SQLITE_MISMATCH;
        goto fail;
    }
    if (readonly)
        return SQLITE_OK;
    /* WAL: readers (sqlite3, `state export`) never block the writer, and a commit appends to
     * the log instead of rewriting pages in place. NORMAL syncs at checkpoints only: a crash
     * of the process loses nothing committed, a power loss at most the last commits. */
    if ((rc = exec(*db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;", err, errlen,
                   path)) != SQLITE_OK)
        goto fail;
    if (ver < CM_STORE_SCHEMA && (rc = upgrade(*db, ver, path, err, errlen)) != SQLITE_OK)
        goto fail;
    /* Deleted pages are not zeroed (Debian builds SQLite with secure_delete on) where that
     * costs a write: the log frees its head at every fold. Reports are no secret. The fold's
     * savepoint journals every page it changes, and the start's view sorts the log: in memory
     * (a few MB at most), not in temporary files, which cost as many bytes written as the
     * state itself. */
    if ((rc = exec(*db, "PRAGMA secure_delete = FAST; PRAGMA temp_store = MEMORY;", err, errlen,
                   path)) != SQLITE_OK)
        goto fail;
    return SQLITE_OK;
fail:
    sqlite3_close(*db);
    *db = NULL;
    return rc == SQLITE_OK ? SQLITE_ERROR : rc;
}

/* Loads every row into s. Returns SQLITE_OK, or the SQLite code with a reason in err (s then
 * empty); a row that does not make an entry is skipped with a warning. */
static int load_rows(sqlite3 *db, const char *path, struct cm_state *s, int64_t *max_seq, char *err,
                     size_t errlen)
{
    sqlite3_stmt *st = NULL;
    size_t idx = 0;
    int rc;
    int64_t ver = pragma_int(db, "PRAGMA user_version", &rc);

    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, ver >= 5 ? SELECT_CURRENT : SELECT_V2, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        failf(err, errlen, 0, "%s: %s", path, sqlite3_errmsg(db));
        return rc;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct cm_state_row row = {
            .name = (const char *)sqlite3_column_text(st, 0),
            .owner = (const char *)sqlite3_column_text(st, 1),
            .status = (const char *)sqlite3_column_text(st, 2),
            .last_probe = sqlite3_column_int64(st, 3),
            .last_success = sqlite3_column_int64(st, 4),
            .status_since = sqlite3_column_int64(st, 5),
            .failures = sqlite3_column_int64(st, 6),
            .seen = (const char *)sqlite3_column_text(st, 7),
            .posture_at = sqlite3_column_int64(st, 8),
            .posture = (const char *)sqlite3_column_text(st, 9),
        };
        if (sqlite3_column_type(st, 10) == SQLITE_BLOB) {
            row.report = sqlite3_column_blob(st, 10);
            row.report_len = (size_t)sqlite3_column_bytes(st, 10);
            row.report_packed = true;
        } else {
            row.report = (const char *)sqlite3_column_text(st, 10);
        }
        char why[512];
        int r;
        if (max_seq && sqlite3_column_int64(st, 11) > *max_seq)
            *max_seq = sqlite3_column_int64(st, 11);
        r = cm_state_restore(s, &row, idx++, why, sizeof(why));
        if (r == -ENOMEM) {
            rc = SQLITE_NOMEM;
            failf(err, errlen, 0, "out of memory loading %s", path);
            break;
        }
        if (r < 0)
            cm_log_warn("state", "file=%s %s: row skipped", path, why);
    }
    if (rc == SQLITE_DONE)
        rc = SQLITE_OK;
    else if (rc != SQLITE_NOMEM)
        failf(err, errlen, 0, "cannot read %s: %s", path, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        cm_state_clear(s);
    return rc;
}

static int bind_text(sqlite3_stmt *s, int i, const char *t);

static int prepare_pins(struct cm_store *st)
{
    int rc = sqlite3_prepare_v3(st->db, PIN_UPSERT, -1, SQLITE_PREPARE_PERSISTENT, &st->pin, NULL);

    return rc ? rc
              : sqlite3_prepare_v3(st->db, "DELETE FROM pins WHERE target = ?1", -1,
                                   SQLITE_PREPARE_PERSISTENT, &st->unpin, NULL);
}

/* The statement of a pins op, bound. Returns SQLITE_OK or the binding's error. */
static int bind_pin_op(struct cm_store *st, const struct op *o, sqlite3_stmt **out)
{
    sqlite3_stmt *s = o->kind == OP_PIN ? st->pin : st->unpin;
    int rc;

    *out = s;
    if ((rc = bind_text(s, 1, o->name)) || o->kind == OP_UNPIN)
        return rc;
    if ((rc = bind_text(s, 2, o->sha256)) || (rc = bind_text(s, 3, o->spki_sha256)) ||
        (rc = bind_text(s, 4, o->subject)) || (rc = bind_text(s, 5, o->sans)) ||
        (rc = bind_text(s, 6, o->issuer)) || (rc = bind_text(s, 7, o->pin_key_type)) ||
        (rc = sqlite3_bind_int64(s, 8, o->key_bits)) ||
        (rc = sqlite3_bind_int64(s, 9, o->not_after)) ||
        (rc = sqlite3_bind_int64(s, 10, o->last_probe)))
        return rc;
    return SQLITE_OK;
}

/* sql with each "%s" replaced by the log table t (malloc'd), or NULL when out of memory. The
 * tables' names are fixed (LOG_TABLE): no quoting is needed. */
static char *with_table(const char *sql, const char *t)
{
    size_t tl = strlen(t), n = 1, off = 0;
    char *out;

    for (const char *p = sql; *p; p++)
        n += p[0] == '%' && p[1] == 's' ? tl : 1;
    if (!(out = malloc(n)))
        return NULL;
    for (const char *p = sql; *p; p++) {
        if (p[0] == '%' && p[1] == 's') {
            memcpy(out + off, t, tl);
            off += tl;
            p++;
        } else {
            out[off++] = *p;
        }
    }
    out[off] = '\0';
    return out;
}

/* Prepares sql, its "%s" the log table t (when t is not NULL). */
static int prepare_for(struct cm_store *st, const char *sql, const char *t, sqlite3_stmt **out)
{
    char *q = NULL;
    int rc;

    if (t && !(q = with_table(sql, t)))
        return SQLITE_NOMEM;
    rc = sqlite3_prepare_v3(st->db, q ? q : sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
    free(q);
    return rc;
}

static int prepare_notify(struct cm_store *st)
{
    int rc;

    if ((rc = prepare_for(st, ALERT_PUT, NULL, &st->alert_put)) ||
        (rc = prepare_for(st, OUTBOX_PUT, NULL, &st->outbox_put)) ||
        (rc = prepare_for(st, "UPDATE outbox SET attempts = ?3 WHERE notifier = ?1 AND seq = ?2",
                          NULL, &st->outbox_tried)) ||
        (rc = prepare_for(st, "DELETE FROM outbox WHERE notifier = ?1 AND seq = ?2", NULL,
                          &st->outbox_del)) ||
        (rc = prepare_for(st,
                          "DELETE FROM alerts WHERE notifier = ?1;", NULL, &st->drop_alerts)) ||
        (rc = prepare_for(st, "DELETE FROM alert_log WHERE notifier = ?1", NULL,
                          &st->drop_alert_log)) ||
        (rc = prepare_for(st, "DELETE FROM outbox WHERE notifier = ?1", NULL, &st->drop_outbox)) ||
        (rc = prepare_for(st, "DELETE FROM alerts", NULL, &st->drop_all_alerts)))
        return rc;
    return prepare_for(st, "DELETE FROM outbox", NULL, &st->drop_all_outbox);
}

static int prepare_writes(struct cm_store *st, char *err, size_t errlen)
{
    int rc = SQLITE_OK;

    if ((rc = prepare_for(st, PUT_NEW, NULL, &st->put_new)) ||
        (rc = prepare_for(st, "DELETE FROM targets WHERE name = ?1", NULL, &st->del)) ||
        (rc = prepare_for(st, "DELETE FROM targets", NULL, &st->del_all)) ||
        (rc = prepare_for(st, SEEN, NULL, &st->seen)) ||
        (rc = prepare_for(st, "DELETE FROM history WHERE last_seen < ?1", NULL, &st->prune)) ||
        (rc = prepare_pins(st)) || (rc = prepare_notify(st)))
        goto fail;
    for (int i = 0; i < 2; i++)
        if ((rc = prepare_for(st, APPEND, LOG_TABLE[i], &st->append[i])) ||
            (rc = prepare_for(st, FOLD_SCAN, LOG_TABLE[i], &st->fold_scan[i])) ||
            (rc = prepare_for(st, FOLD_APPLY, LOG_TABLE[i], &st->fold_apply[i])) ||
            (rc = prepare_for(st, FOLD_EMPTY, LOG_TABLE[i], &st->fold_empty[i])))
            goto fail;
    return 0;
fail:
    if (rc == SQLITE_NOMEM)
        return failf(err, errlen, -ENOMEM, "out of memory");
    return failf(err, errlen, CM_ESTATE, "%s: %s", st->path, sqlite3_errmsg(st->db));
}

static int64_t query_int(sqlite3 *db, const char *sql, const char *t, int *rc)
{
    char *q = with_table(sql, t);
    int64_t v;

    if (!q) {
        *rc = SQLITE_NOMEM;
        return 0;
    }
    v = pragma_int(db, q, rc);
    free(q);
    return v;
}

/* Which log table is active, the newest seq given out, and the sizes, before the writer
 * starts (last_seq may already hold the newest seq the load saw in `targets`; without a load,
 * targets is read for it). The active table is the one holding the newest row; a fold that
 * was cut short (the other table not empty too) starts again at the first commit. */
static int fold_init(struct cm_store *st, bool loaded, char *err, size_t errlen)
{
    struct fold *f = &st->fold;
    int64_t max[2], rows[2];
    int rc = SQLITE_OK;

    for (int i = 0; i < 2 && rc == SQLITE_OK; i++) {
        max[i] = query_int(st->db, "SELECT coalesce(max(seq), 0) FROM %s", LOG_TABLE[i], &rc);
        if (rc == SQLITE_OK)
            rows[i] = query_int(st->db, "SELECT count(*) FROM %s", LOG_TABLE[i], &rc);
    }
    if (rc == SQLITE_OK && !loaded)
        f->last_seq = pragma_int(st->db, "SELECT coalesce(max(seq), 0) FROM targets", &rc);
    if (rc == SQLITE_OK)
        f->target_rows = pragma_int(st->db, "SELECT count(*) FROM targets", &rc);
    if (rc != SQLITE_OK)
        return failf(err, errlen, CM_ESTATE, "%s: %s", st->path, sqlite3_errmsg(st->db));
    f->active = max[1] > max[0];
    for (int i = 0; i < 2; i++)
        f->last_seq = max[i] > f->last_seq ? max[i] : f->last_seq;
    f->log_rows = rows[f->active];
    if (rows[!f->active] > 0) {
        f->phase = FOLD_SCANNING;
        f->pos = 0;
    }
    if (!f->fold_min)
        f->fold_min = CM_STORE_FOLD_MIN;
    return 0;
}

static int bind_text(sqlite3_stmt *s, int i, const char *t)
{
    return t ? sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}

/* A packed report is a BLOB, a JSON text (imported, or kept from an older database) TEXT. */
static int bind_report(sqlite3_stmt *s, int i, const char *report)
{
    size_t len;
    bool packed;
    const void *data;

    if (!report)
        return sqlite3_bind_null(s, i);
    data = cm_state_report_data(report, &len, &packed);
    return packed ? sqlite3_bind_blob64(s, i, data, len, SQLITE_STATIC)
                  : sqlite3_bind_text64(s, i, data, len, SQLITE_STATIC, SQLITE_UTF8);
}

static int step_done(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);

    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int bind_int64(sqlite3_stmt *s, int i, int64_t v)
{
    return sqlite3_bind_int64(s, i, v);
}

/* The parameters of PUT_NEW and APPEND, in ROW_COLUMNS' order. */
#define BIND_COL(c, type, bind) || (rc = bind_##bind(s, i++, o->c))

static int bind_row(sqlite3_stmt *s, const struct op *o, int64_t seq)
{
    int rc, i = 1;

    if ((rc = bind_text(s, i++, o->name)) ROW_COLUMNS(BIND_COL) ||
        (rc = sqlite3_bind_int64(s, i, seq)))
        sqlite3_clear_bindings(s);
    return rc;
}

/* A target's first row is inserted into `targets`, current from the newest seq given out so
 * far; every later result is appended to the log with the next seq. (A failed transaction
 * leaves a gap in the seqs: only their order counts.) */
static int put_row(struct cm_store *st, const struct op *o)
{
    struct fold *f = &st->fold;
    int rc;

    if ((rc = bind_row(st->put_new, o, f->last_seq)) || (rc = step_done(st->put_new)))
        return rc;
    if (sqlite3_changes(st->db) > 0) {
        f->target_rows++;
        return SQLITE_OK;
    }
    if ((rc = bind_row(st->append[f->active], o, f->last_seq + 1)) ||
        (rc = step_done(st->append[f->active])))
        return rc;
    f->last_seq++;
    f->log_rows++;
    return SQLITE_OK;
}

/* The notifiers' ops (schema 6), each one statement, or two for a drop. */
static int apply_notify_op(struct cm_store *st, const struct op *o)
{
    sqlite3_stmt *s;
    int rc = SQLITE_OK;

    switch (o->kind) {
    case OP_ALERT_PUT:
    case OP_ALERT_DEL:
        s = st->alert_put;
        if ((rc = bind_text(s, 1, o->name)) || (rc = bind_text(s, 2, o->target)) ||
            (rc = bind_text(s, 3, o->finding)) || (rc = sqlite3_bind_int(s, 4, o->position)) ||
            (rc = bind_text(s, 5, o->severity)) ||
            (rc = bind_text(s, 6, o->message ? o->message : "")) ||
            (rc = sqlite3_bind_int64(s, 7, o->started_at)) ||
            (rc = o->fired ? sqlite3_bind_int64(s, 8, o->fired_at) : sqlite3_bind_null(s, 8)) ||
            (rc = o->fired ? sqlite3_bind_int64(s, 9, o->notified_at) : sqlite3_bind_null(s, 9)) ||
            (rc = sqlite3_bind_int64(s, 10, o->seq)) ||
            (rc = sqlite3_bind_int(s, 11, o->kind == OP_ALERT_DEL)))
            break;
        st->alert_log_rows++;
        return step_done(s);
    case OP_OUTBOX_PUT:
        s = st->outbox_put;
        if ((rc = bind_text(s, 1, o->name)) || (rc = sqlite3_bind_int64(s, 2, o->seq)) ||
            (rc = bind_text(s, 3, o->url)) || (rc = sqlite3_bind_int64(s, 4, o->started_at)) ||
            (rc = sqlite3_bind_int64(s, 5, o->attempts)) || (rc = bind_text(s, 6, o->notices)))
            break;
        return step_done(s);
    case OP_OUTBOX_TRIED:
    case OP_OUTBOX_DEL:
        s = o->kind == OP_OUTBOX_DEL ? st->outbox_del : st->outbox_tried;
        if ((rc = bind_text(s, 1, o->name)) || (rc = sqlite3_bind_int64(s, 2, o->seq)) ||
            (o->kind == OP_OUTBOX_TRIED && (rc = sqlite3_bind_int64(s, 3, o->attempts))))
            break;
        return step_done(s);
    default: /* OP_NOTIFIER_DROP */
        if (!o->name) {
            st->alert_rows = st->alert_log_rows = 0;
            if ((rc = step_done(st->drop_all_alerts)) ||
                (rc = sqlite3_exec(st->db, "DELETE FROM alert_log", NULL, NULL, NULL)))
                return rc;
            return step_done(st->drop_all_outbox);
        }
        if ((rc = bind_text(st->drop_alerts, 1, o->name)) || (rc = step_done(st->drop_alerts)) ||
            (rc = bind_text(st->drop_alert_log, 1, o->name)) ||
            (rc = step_done(st->drop_alert_log)))
            return rc;
        if ((rc = bind_text(st->drop_outbox, 1, o->name)))
            return rc;
        return step_done(st->drop_outbox);
    }
    sqlite3_clear_bindings(s);
    return rc;
}

static int apply_op(struct cm_store *st, const struct op *o)
{
    sqlite3_stmt *s;
    int rc;

    if (o->kind >= OP_ALERT_PUT)
        return apply_notify_op(st, o);
    switch (o->kind) {
    case OP_PUT:
        return put_row(st, o);
    case OP_DELETE:
        s = st->del;
        if ((rc = bind_text(s, 1, o->name)))
            return rc;
        break;
    case OP_SEEN:
        s = st->seen;
        if ((rc = bind_text(s, 1, o->name)) || (rc = bind_text(s, 2, o->sha256)) ||
            (rc = sqlite3_bind_int64(s, 3, o->last_probe)) || (rc = bind_text(s, 4, o->subject)) ||
            (rc = bind_text(s, 5, o->sans)) || (rc = bind_text(s, 6, o->issuer)) ||
            (rc = bind_text(s, 7, o->key_type)) || (rc = sqlite3_bind_int64(s, 8, o->key_bits)) ||
            (rc = sqlite3_bind_int64(s, 9, o->not_before)) ||
            (rc = sqlite3_bind_int64(s, 10, o->not_after)) || (rc = bind_text(s, 11, o->chain)) ||
            (rc = bind_text(s, 12, o->trust)))
            return rc;
        break;
    case OP_PRUNE:
        s = st->prune;
        if ((rc = sqlite3_bind_int64(s, 1, o->last_probe)))
            return rc;
        break;
    case OP_PIN:
    case OP_UNPIN:
        if ((rc = bind_pin_op(st, o, &s)))
            return rc;
        break;
    default:
        /* The fold in progress goes too (its rows are gone); seqs go on from last_seq. */
        for (int i = 0; i < 2; i++)
            if ((rc = step_done(st->fold_empty[i])) != SQLITE_OK)
                return rc;
        st->fold.log_rows = st->fold.target_rows = 0;
        st->fold.phase = FOLD_IDLE;
        st->fold.n = st->fold.next = 0;
        s = st->del_all;
        break;
    }
    if (o->kind == OP_DELETE)
        st->fold.target_rows--; /* a guess (the row may be missing): only paces the fold */
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void fold_step(struct cm_store *st);
static void fold_restore(struct fold *f, const struct fold *saved);

/* Folds the alert log into `alerts` when it has grown enough (see SCHEMA6), within the
 * batch's transaction: a crash before its commit leaves the log as it was. */
static int alert_fold(struct cm_store *st)
{
    int rc;

    if (st->alert_log_rows < ALERT_FOLD_MIN || st->alert_log_rows < 2 * st->alert_rows)
        return SQLITE_OK;
    if ((rc = sqlite3_exec(st->db, ALERT_FOLD, NULL, NULL, NULL)) != SQLITE_OK)
        return rc;
    st->alert_rows = pragma_int(st->db, "SELECT count(*) FROM alerts", &rc);
    st->alert_log_rows = 0;
    return rc;
}

/* The counts that pace the alert log's fold, before the writer starts. */
static int alert_fold_init(struct cm_store *st)
{
    int rc;

    st->alert_rows = pragma_int(st->db, "SELECT count(*) FROM alerts", &rc);
    if (rc == SQLITE_OK)
        st->alert_log_rows = pragma_int(st->db, "SELECT count(*) FROM alert_log", &rc);
    return rc;
}

/* One transaction for a batch. Returns SQLITE_OK or the failing code with a reason in err;
 * a failed batch is rolled back whole. */
static int apply_batch(struct cm_store *st, const struct queue *q, char *err, size_t errlen)
{
    struct fold saved = st->fold;
    int64_t alert_rows = st->alert_rows, alert_log_rows = st->alert_log_rows;
    int rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);

    for (size_t i = 0; rc == SQLITE_OK && i < q->n; i++)
        rc = apply_op(st, &q->v[i]);
    if (rc == SQLITE_OK)
        rc = alert_fold(st);
    if (rc == SQLITE_OK) {
        fold_step(st);
        rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        failf(err, errlen, 0, "file=%s write failed: %s", st->path, sqlite3_errmsg(st->db));
        if (!sqlite3_get_autocommit(st->db))
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        fold_restore(&st->fold, &saved);
        st->alert_rows = alert_rows;
        st->alert_log_rows = alert_log_rows;
    }
    return rc;
}

static void close_db(struct cm_store *st)
{
    sqlite3_stmt **all[] = {
        &st->put_new,     &st->del,         &st->del_all,         &st->seen,
        &st->prune,       &st->pin,         &st->unpin,           &st->alert_put,
        &st->drop_alert_log,   &st->outbox_put,  &st->outbox_tried,    &st->outbox_del,
        &st->drop_alerts, &st->drop_outbox, &st->drop_all_alerts, &st->drop_all_outbox};

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        sqlite3_finalize(*all[i]);
        *all[i] = NULL;
    }
    for (int i = 0; i < 2; i++) {
        sqlite3_finalize(st->append[i]);
        sqlite3_finalize(st->fold_scan[i]);
        sqlite3_finalize(st->fold_apply[i]);
        sqlite3_finalize(st->fold_empty[i]);
        st->append[i] = st->fold_scan[i] = st->fold_apply[i] = st->fold_empty[i] = NULL;
    }
    free(st->fold.v);
    st->fold.v = NULL;
    st->fold.n = st->fold.cap = st->fold.next = 0;
    st->fold.phase = FOLD_IDLE;
    /* The last connection's close checkpoints the WAL into the file and removes it. */
    sqlite3_close(st->db);
    st->db = NULL;
}

/* ---- The fold ---- */

/* Small steps: each rides in a batch's transaction, and a long one would hold the batch's
 * commit back (a kill -9 then loses more than the last second). A fold of 100,000 targets
 * still ends within about three minutes at 4 commits a second, long before the next is due
 * (2 x 100,000 results later). */
#define FOLD_SCAN_ROWS 1000 /* log rows read per step */
#define FOLD_APPLY_ROWS 250 /* target rows rewritten per step: about 40 pages */

static int cmp_fold_item(const void *a, const void *b)
{
    const struct fold_item *x = a, *y = b;

    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sorted by target row, the newest log row of each target only. */
static void fold_sort(struct fold *f)
{
    size_t k = 0;

    /* Nothing to sort is normal: a fold resumed after a kill -9 that came between its last
     * copy and its emptying finds no row left to copy, and f->v was never allocated. qsort's
     * base must not be NULL even for 0 elements (UBSan aborts there, at every start). */
    if (f->n < 2)
        return;
    qsort(f->v, f->n, sizeof(*f->v), cmp_fold_item);
    for (size_t i = 0; i < f->n; i++) {
        if (k > 0 && f->v[k - 1].id == f->v[i].id)
            k--;
        f->v[k++] = f->v[i];
    }
    f->n = k;
}

/* Reads the next chunk of the full table: the rows newer than their target's row. */
static int fold_scan(struct cm_store *st)
{
    struct fold *f = &st->fold;
    sqlite3_stmt *s = st->fold_scan[!f->active];
    size_t n0 = f->n;
    int64_t pos = f->pos;
    int rc, rows = 0;

    if ((rc = sqlite3_bind_int64(s, 1, f->pos)) || (rc = sqlite3_bind_int(s, 2, FOLD_SCAN_ROWS)))
        return rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (f->n == f->cap) {
            size_t ncap = f->cap ? f->cap * 2 : 1024;
            struct fold_item *v = realloc(f->v, ncap * sizeof(*v));
            if (!v) {
                rc = SQLITE_NOMEM;
                break;
            }
            f->v = v;
            f->cap = ncap;
        }
        f->v[f->n].id = sqlite3_column_int64(s, 0);
        f->v[f->n].seq = pos = sqlite3_column_int64(s, 1);
        f->n++;
        rows++;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE) {
        f->n = n0; /* this step again */
        return rc;
    }
    f->pos = pos;
    if (rows < FOLD_SCAN_ROWS) {
        fold_sort(f);
        f->next = 0;
        f->phase = FOLD_APPLYING;
    }
    return SQLITE_OK;
}

/* Copies the next rows: consecutive target rows, so each page of `targets` is written about
 * once per fold. */
static int fold_apply(struct cm_store *st)
{
    struct fold *f = &st->fold;
    sqlite3_stmt *s = st->fold_apply[!f->active];
    size_t end = f->next + FOLD_APPLY_ROWS < f->n ? f->next + FOLD_APPLY_ROWS : f->n;
    int rc = SQLITE_OK;

    for (size_t i = f->next; rc == SQLITE_OK && i < end; i++)
        if ((rc = sqlite3_bind_int64(s, 1, f->v[i].seq)) == SQLITE_OK)
            rc = step_done(s);
    if (rc != SQLITE_OK)
        return rc;
    f->next = end;
    if (end == f->n)
        f->phase = FOLD_EMPTYING;
    return SQLITE_OK;
}

/* Empties the folded table whole: its pages go to the free list unwritten. */
static int fold_empty(struct cm_store *st)
{
    struct fold *f = &st->fold;
    int rc = step_done(st->fold_empty[!f->active]);

    if (rc != SQLITE_OK)
        return rc;
    f->phase = FOLD_IDLE;
    f->n = f->next = 0;
    f->folds++;
    return SQLITE_OK;
}

/* The fold's state as it was: a transaction that failed took its steps back. The buffer
 * stays (its contents up to n are what they were). */
static void fold_restore(struct fold *f, const struct fold *saved)
{
    struct fold_item *v = f->v;
    size_t cap = f->cap;

    *f = *saved;
    f->v = v;
    f->cap = cap;
}

/* One step of the fold, in the transaction of a batch of results (so the fold goes at their
 * pace and adds no commit), under a savepoint: a step that fails is taken back alone, the
 * results commit, and the step is tried again with the next batch (the log still holds
 * every row). */
static void fold_step(struct cm_store *st)
{
    struct fold *f = &st->fold, saved = *f;
    int rc = SQLITE_OK;

    if (f->phase == FOLD_IDLE &&
        (f->log_rows < (int64_t)f->fold_min || f->log_rows < 2 * f->target_rows))
        return;
    if ((rc = sqlite3_exec(st->db, "SAVEPOINT fold", NULL, NULL, NULL)) != SQLITE_OK)
        goto fail;
    switch (f->phase) {
    case FOLD_IDLE:
        /* The other table (empty) takes the results from now on; this one is folded. */
        f->active = !f->active;
        f->log_rows = 0;
        f->pos = 0;
        f->n = f->next = 0;
        f->phase = FOLD_SCANNING;
        /* fall through */
    case FOLD_SCANNING:
        rc = fold_scan(st);
        break;
    case FOLD_APPLYING:
        rc = fold_apply(st);
        break;
    case FOLD_EMPTYING:
        rc = fold_empty(st);
        break;
    }
    if (rc == SQLITE_OK &&
        (rc = sqlite3_exec(st->db, "RELEASE fold", NULL, NULL, NULL)) == SQLITE_OK)
        return;
    sqlite3_exec(st->db, "ROLLBACK TO fold", NULL, NULL, NULL);
    sqlite3_exec(st->db, "RELEASE fold", NULL, NULL, NULL);
fail:
    cm_log_warn("state", "file=%s fold step failed: %s; tried again with the next commit", st->path,
                sqlite3_errstr(rc));
    fold_restore(f, &saved);
}

/* ---- The writer thread ---- */

static void writer(void *arg)
{
    struct cm_store *st = arg;
    struct queue batch;
    char err[512];

    /* Named, so that top -H and the benchmark can tell its CPU from the loop's. */
    pthread_setname_np(pthread_self(), "certmon-store");
    uv_mutex_lock(&st->mu);
    for (;;) {
        while (st->q.n == 0 && !st->closing)
            uv_cond_wait(&st->cond, &st->mu);
        if (st->q.n == 0 && st->closing)
            break;
        /* Let a batch gather: one transaction per CM_STORE_COMMIT_MS at most. */
        while (!st->closing && !st->sync_req) {
            uint64_t now = uv_hrtime(), due = st->first_at + CM_STORE_COMMIT_MS * 1000000ull;
            if (now >= due)
                break;
            uv_cond_timedwait(&st->cond, &st->mu, due - now);
        }
        batch = st->q;
        memset(&st->q, 0, sizeof(st->q));
        uint64_t upto = st->queued;
        st->sync_req = false;
        uv_mutex_unlock(&st->mu);

        int rc = apply_batch(st, &batch, err, sizeof(err));
        size_t puts = 0, seen = 0;
        for (size_t i = 0; i < batch.n; i++) {
            puts += batch.v[i].kind == OP_PUT;
            seen += batch.v[i].kind == OP_SEEN;
        }
        queue_clear(&batch);

        uv_mutex_lock(&st->mu);
        st->committed = upto;
        if (rc != SQLITE_OK)
            st->failed_upto = upto;
        st->last_rc = rc;
        st->stats.folds = st->fold.folds;
        if (rc == SQLITE_OK) {
            st->stats.commits++;
            st->stats.rows_written += puts;
            st->stats.history_written += seen;
        } else {
            st->stats.failures++;
            memcpy(st->last_err, err, sizeof(st->last_err));
            st->err_pending = true;
        }
        uv_cond_broadcast(&st->cond);
        if (rc != SQLITE_OK && st->has_async)
            uv_async_send(&st->async);
    }
    uv_mutex_unlock(&st->mu);
    close_db(st);
}

/* Failures are logged on the loop. The changes of a failed transaction are lost; every put
 * carries the whole row, so each target's row is whole again at its next result. */
static void on_async(uv_async_t *a)
{
    struct cm_store *st = a->data;
    char err[512];
    bool pending;

    uv_mutex_lock(&st->mu);
    pending = st->err_pending;
    st->err_pending = false;
    memcpy(err, st->last_err, sizeof(err));
    uv_mutex_unlock(&st->mu);
    if (pending)
        cm_log_error("state",
                     "%s; the changes of that transaction are lost until the next "
                     "result of each target",
                     err);
}

static int enqueue(struct cm_store *st, struct op *o)
{
    uv_mutex_lock(&st->mu);
    if (st->q.n == st->q.cap) {
        size_t ncap = st->q.cap ? st->q.cap * 2 : 64;
        struct op *v = realloc(st->q.v, ncap * sizeof(*v));
        if (!v) {
            uv_mutex_unlock(&st->mu);
            op_clear(o);
            return -ENOMEM;
        }
        st->q.v = v;
        st->q.cap = ncap;
    }
    if (st->q.n == 0) {
        st->first_at = uv_hrtime();
        uv_cond_broadcast(&st->cond);
    }
    st->q.v[st->q.n++] = *o;
    st->queued++;
    uv_mutex_unlock(&st->mu);
    return 0;
}

static int op_of_entry(const struct cm_state_entry *e, struct op *o)
{
    memset(o, 0, sizeof(*o));
    o->kind = OP_PUT;
    o->status = e->has_status ? cm_status_name(e->status) : NULL;
    o->last_probe = e->last_probe;
    o->last_success = e->last_success;
    o->status_since = e->status_since;
    o->posture_at = e->posture_at;
    o->failures = e->failures;
    if (!(o->name = strdup(e->name)) || !(o->owner = strdup(e->owner)) ||
        !(o->seen = cm_state_seen_text(e)) ||
        (e->posture && !(o->posture = cm_state_posture_text(e)))) {
        op_clear(o);
        return -ENOMEM;
    }
    o->report = cm_state_report_ref(e);
    return 0;
}

int cm_store_put(struct cm_store *st, const struct cm_state_entry *e)
{
    struct op o;

    if (op_of_entry(e, &o) < 0)
        return -ENOMEM;
    return enqueue(st, &o);
}

/* Queues an operation that names only a target (OP_DELETE, OP_UNPIN). */
static int enqueue_named(struct cm_store *st, enum op_kind kind, const char *name)
{
    struct op o = {.kind = kind, .name = strdup(name)};

    if (!o.name)
        return -ENOMEM;
    return enqueue(st, &o);
}

int cm_store_delete(struct cm_store *st, const char *name)
{
    return enqueue_named(st, OP_DELETE, name);
}

int cm_store_delete_all(struct cm_store *st)
{
    struct op o = {.kind = OP_DELETE_ALL};

    return enqueue(st, &o);
}

int cm_store_sync(struct cm_store *st, uint64_t timeout_ms)
{
    uint64_t end = uv_hrtime() + timeout_ms * 1000000ull, upto;
    int rc = 0;

    uv_mutex_lock(&st->mu);
    upto = st->queued;
    st->sync_req = true;
    uv_cond_broadcast(&st->cond);
    while (st->committed < upto) {
        uint64_t now = uv_hrtime();
        if (now >= end || uv_cond_timedwait(&st->cond, &st->mu, end - now) == UV_ETIMEDOUT) {
            if (st->committed < upto) {
                rc = -ETIMEDOUT;
                break;
            }
        }
    }
    if (rc == 0 && st->last_rc != SQLITE_OK)
        rc = CM_ESTATE;
    uv_mutex_unlock(&st->mu);
    return rc;
}

/* Joins n strings with sep; NULL on ENOMEM. */
static char *join(char *const *v, size_t n, const char *sep)
{
    size_t len = 1, sl = strlen(sep), off = 0;
    char *out;

    for (size_t i = 0; i < n; i++)
        len += strlen(v[i]) + sl;
    if (!(out = malloc(len)))
        return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(v[i]);
        if (i) {
            memcpy(out + off, sep, sl);
            off += sl;
        }
        memcpy(out + off, v[i], l);
        off += l;
    }
    out[off] = '\0';
    return out;
}

int cm_store_seen(struct cm_store *st, const char *name, const struct cm_chain *chain,
                  time_t now)
{
    return cm_store_seen_as(st, name, chain, CM_TRUST_UNKNOWN, now);
}

int cm_store_seen_as(struct cm_store *st, const char *name, const struct cm_chain *chain,
                     enum cm_leaf_trust trust, time_t now)
{
    const struct cm_cert *leaf;
    struct op o = {.kind = OP_SEEN, .last_probe = now};
    char **shas;

    if (!chain || chain->count == 0 || !chain->certs[0].sha256)
        return 0;
    if (trust != CM_TRUST_UNKNOWN)
        o.trust = cm_leaf_trust_name(trust);
    leaf = &chain->certs[0];
    if (!(shas = calloc(chain->count, sizeof(*shas))))
        return -ENOMEM;
    for (size_t i = 0; i < chain->count; i++)
        shas[i] = chain->certs[i].sha256 ? chain->certs[i].sha256 : (char *)"";
    o.chain = join(shas, chain->count, " ");
    free(shas);
    o.key_type = leaf->key_type ? leaf->key_type : "";
    o.key_bits = leaf->key_bits;
    o.not_before = leaf->not_before;
    o.not_after = leaf->not_after;
    if (!o.chain || !(o.name = strdup(name)) || !(o.sha256 = strdup(leaf->sha256)) ||
        !(o.subject = strdup(leaf->subject ? leaf->subject : "")) ||
        !(o.issuer = strdup(leaf->issuer ? leaf->issuer : "")) ||
        !(o.sans = join(leaf->sans, leaf->san_count, ", "))) {
        op_clear(&o);
        return -ENOMEM;
    }
    return enqueue(st, &o);
}

int cm_store_pin(struct cm_store *st, const char *name, const struct cm_leaf_summary *pin,
                 time_t at)
{
    struct op o = {
        .kind = OP_PIN, .last_probe = at, .key_bits = pin->key_bits, .not_after = pin->not_after};
    char sha[CM_SHA256_HEX], spki[CM_SHA256_HEX] = "";

    cm_hex_encode(pin->sha256, CM_SHA256_LEN, sha);
    if (pin->has_spki)
        cm_hex_encode(pin->spki_sha256, CM_SHA256_LEN, spki);
    if (!(o.name = strdup(name)) || !(o.sha256 = strdup(sha)) || !(o.spki_sha256 = strdup(spki)) ||
        !(o.subject = strdup(pin->subject)) || !(o.sans = strdup(pin->sans)) ||
        !(o.issuer = strdup(pin->issuer)) || !(o.pin_key_type = strdup(pin->key_type))) {
        op_clear(&o);
        return -ENOMEM;
    }
    return enqueue(st, &o);
}

int cm_store_unpin(struct cm_store *st, const char *name)
{
    return enqueue_named(st, OP_UNPIN, name);
}

/* The start of every reader: opens the database at path read-only and reads its schema
 * version into *ver, -1 when that fails (the reason is then sqlite3_errmsg(*db): nothing else
 * has touched *db). Returns 0 with *db open for the caller to close, or -ENOMEM / CM_ESTATE
 * with the reason in err. */
static int open_reader(const char *path, sqlite3 **db, int64_t *ver, char *err, size_t errlen)
{
    int rc;

    if ((rc = open_db(path, true, db, err, errlen)) != SQLITE_OK)
        return (rc & 0xff) == SQLITE_NOMEM ? -ENOMEM : CM_ESTATE;
    *ver = pragma_int(*db, "PRAGMA user_version", &rc);
    if (rc != SQLITE_OK)
        *ver = -1;
    return 0;
}

int cm_store_pins(const char *path,
                  void (*fn)(void *arg, const char *target, const struct cm_leaf_summary *pin,
                             int64_t pinned_at),
                  void *arg, char *err, size_t errlen)
{
    static const char SQL[] = "SELECT target, sha256, spki_sha256, subject, sans, issuer,"
                              " key_type, key_bits, not_after, pinned_at FROM pins";
    sqlite3_stmt *s = NULL;
    sqlite3 *db;
    int serr, rc;
    int64_t ver;

    if (sniff(path, &serr) != K_SQLITE)
        return 0;
    if ((rc = open_reader(path, &db, &ver, err, errlen)) < 0)
        return rc;
    if (ver < 3 || sqlite3_prepare_v2(db, SQL, -1, &s, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return 0; /* no pins before schema 3 */
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(s, 0);
        const char *sha = (const char *)sqlite3_column_text(s, 1);
        const char *spki = (const char *)sqlite3_column_text(s, 2);
        struct cm_leaf_summary p = {
            .subject = (char *)sqlite3_column_text(s, 3),
            .sans = (char *)sqlite3_column_text(s, 4),
            .issuer = (char *)sqlite3_column_text(s, 5),
            .key_type = (char *)sqlite3_column_text(s, 6),
            .key_bits = (unsigned)sqlite3_column_int64(s, 7),
            .not_after = sqlite3_column_int64(s, 8),
        };
        /* A row whose fingerprint is not one (edited by hand) is no pin: the next leaf is
         * pinned anew, and the daemon logs that. */
        if (t && sha && cm_hex_decode(sha, p.sha256, CM_SHA256_LEN) == CM_SHA256_LEN &&
            p.subject && p.sans && p.issuer && p.key_type) {
            p.has_spki = spki && cm_hex_decode(spki, p.spki_sha256, CM_SHA256_LEN) == CM_SHA256_LEN;
            fn(arg, t, &p, sqlite3_column_int64(s, 9));
        }
    }
    if (rc != SQLITE_DONE)
        failf(err, errlen, 0, "cannot read the pins of %s: %s", path, sqlite3_errmsg(db));
    sqlite3_finalize(s);
    sqlite3_close(db);
    return rc == SQLITE_DONE ? 0 : CM_ESTATE;
}

int cm_store_prune(struct cm_store *st, time_t cutoff)
{
    struct op o = {.kind = OP_PRUNE, .last_probe = cutoff};

    return enqueue(st, &o);
}

/* ---- The notifiers' rows (schema 6) ---- */

int cm_store_alert(struct cm_store *st, const char *notifier, const struct cm_alert_row *r,
                   bool removed)
{
    struct op o = {.kind = removed ? OP_ALERT_DEL : OP_ALERT_PUT,
                   .finding = r->id,
                   .position = r->position,
                   .severity = cm_severity_name(r->severity),
                   .fired = r->fired,
                   .started_at = r->started_at,
                   .fired_at = r->fired_at,
                   .notified_at = r->notified_at,
                   .seq = (int64_t)r->seq};

    if (!(o.name = strdup(notifier)) || !(o.target = strdup(r->target)) ||
        (!removed && !(o.message = strdup(r->message ? r->message : "")))) {
        op_clear(&o);
        return -ENOMEM;
    }
    return enqueue(st, &o);
}

int cm_store_outbox_put(struct cm_store *st, const char *notifier,
                        const struct cm_notify_msg_row *m)
{
    struct op o = {.kind = OP_OUTBOX_PUT,
                   .seq = (int64_t)m->seq,
                   .started_at = m->created_at,
                   .attempts = m->attempts};

    if (!(o.name = strdup(notifier)) || (m->url && !(o.url = strdup(m->url))) ||
        !(o.notices = strdup(m->notices ? m->notices : "[]"))) {
        op_clear(&o);
        return -ENOMEM;
    }
    return enqueue(st, &o);
}

int cm_store_outbox_tried(struct cm_store *st, const char *notifier, uint64_t seq,
                          unsigned attempts)
{
    struct op o = {.kind = OP_OUTBOX_TRIED, .seq = (int64_t)seq, .attempts = attempts};

    if (!(o.name = strdup(notifier)))
        return -ENOMEM;
    return enqueue(st, &o);
}

int cm_store_outbox_delete(struct cm_store *st, const char *notifier, uint64_t seq)
{
    struct op o = {.kind = OP_OUTBOX_DEL, .seq = (int64_t)seq};

    if (!(o.name = strdup(notifier)))
        return -ENOMEM;
    return enqueue(st, &o);
}

int cm_store_notifier_drop(struct cm_store *st, const char *notifier)
{
    struct op o = {.kind = OP_NOTIFIER_DROP};

    if (notifier && !(o.name = strdup(notifier)))
        return -ENOMEM;
    return enqueue(st, &o);
}

/* The notifier's object of root ({"alerts": [], "queue": []}), made when new; NULL on ENOMEM. */
static json_t *notifier_obj(json_t *root, const char *name)
{
    json_t *o = json_object_get(root, name);

    if (o)
        return o;
    if (!(o = json_pack("{s:[], s:[]}", "alerts", "queue")) || json_object_set_new(root, name, o))
        return NULL;
    return o;
}

/* A column as a JSON string, or JSON null for SQL NULL. */
static json_t *col_json(sqlite3_stmt *s, int i)
{
    const char *t = (const char *)sqlite3_column_text(s, i);

    return t ? json_stringn_nocheck(t, (size_t)sqlite3_column_bytes(s, i)) : json_null();
}

static json_t *col_int_or_null(sqlite3_stmt *s, int i)
{
    return sqlite3_column_type(s, i) == SQLITE_NULL ? json_null()
                                                    : json_integer(sqlite3_column_int64(s, i));
}

/* Hands every alert row of db to fn, or (fn NULL) appends it to root. Returns SQLITE_OK or
 * the failing code. */
static int read_alerts(sqlite3 *db, json_t *root, cm_store_alert_fn fn, void *arg)
{
    static const char SQL[] = "SELECT " ALERT_NAMES " FROM current_alerts ORDER BY notifier, seq";
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, SQL, -1, &s, NULL);

    while (fn && rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *sev = (const char *)sqlite3_column_text(s, 4);
        struct cm_alert_row r = {
            .target = (const char *)sqlite3_column_text(s, 1),
            .id = (const char *)sqlite3_column_text(s, 2),
            .position = sqlite3_column_int(s, 3),
            .severity = (enum cm_severity)-1,
            .message = (const char *)sqlite3_column_text(s, 5),
            .started_at = sqlite3_column_int64(s, 6),
            .fired = sqlite3_column_type(s, 7) != SQLITE_NULL,
            .fired_at = sqlite3_column_int64(s, 7),
            .notified_at = sqlite3_column_int64(s, 8),
            .seq = (uint64_t)sqlite3_column_int64(s, 9),
        };
        for (int v = CM_SEV_OK; sev && v <= CM_SEV_CRITICAL; v++)
            if (!strcmp(sev, cm_severity_name((enum cm_severity)v)))
                r.severity = (enum cm_severity)v;
        /* A row that is not sound (severity unknown, NULLs) is the loader's to refuse. */
        fn(arg, (const char *)sqlite3_column_text(s, 0), &r);
        rc = SQLITE_OK;
    }
    while (rc == SQLITE_OK && !fn && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        json_t *nt = notifier_obj(root, (const char *)sqlite3_column_text(s, 0));
        json_t *a = json_pack(
            "{s:o, s:o, s:I, s:o, s:o, s:I, s:o, s:o, s:I}", "target", col_json(s, 1), "id",
            col_json(s, 2), "position", (json_int_t)sqlite3_column_int64(s, 3), "severity",
            col_json(s, 4), "message", col_json(s, 5), "started_at",
            (json_int_t)sqlite3_column_int64(s, 6), "fired_at", col_int_or_null(s, 7),
            "notified_at", col_int_or_null(s, 8), "seq", (json_int_t)sqlite3_column_int64(s, 9));
        if (!nt || !a || json_array_append_new(json_object_get(nt, "alerts"), a))
            rc = SQLITE_NOMEM;
        else
            rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Appends every outbox row of db to root: a message {"seq", "url", "created_at", "attempts",
 * "notices"}, or a notice being grouped {"seq", "grouping": true, ...}. A row whose notices
 * are not JSON is a malformed document (CM_ESTATE from cm_notify_load_json). */
static int read_outbox(sqlite3 *db, json_t *root)
{
    static const char SQL[] = "SELECT notifier, seq, url, created_at, attempts, notices FROM"
                              " outbox ORDER BY notifier, seq";
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, SQL, -1, &s, NULL);

    while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        json_t *nt = notifier_obj(root, (const char *)sqlite3_column_text(s, 0));
        const char *text = (const char *)sqlite3_column_text(s, 5);
        json_t *notices = text ? json_loads(text, 0, NULL) : NULL;
        json_t *m = json_pack("{s:I, s:I, s:I, s:o}", "seq", (json_int_t)sqlite3_column_int64(s, 1),
                              "created_at", (json_int_t)sqlite3_column_int64(s, 3), "attempts",
                              (json_int_t)sqlite3_column_int64(s, 4), "notices",
                              notices ? notices : json_null());
        rc = SQLITE_NOMEM;
        if (!nt || !m)
            json_decref(m);
        else if (sqlite3_column_type(s, 2) == SQLITE_NULL
                     ? json_object_set_new(m, "grouping", json_true())
                     : json_object_set_new(m, "url", col_json(s, 2)))
            json_decref(m);
        else if (json_array_append_new(json_object_get(nt, "queue"), m) == 0)
            rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The notifiers' rows of db (schema ver) into root, as cm_store_notify_read describes them
 * (nothing before schema 6). Returns 0, or -ENOMEM / CM_ESTATE with a reason in err. */
static int read_notify(sqlite3 *db, int64_t ver, const char *path, json_t *root,
                       cm_store_alert_fn alert, void *arg, char *err, size_t errlen)
{
    int rc;

    if (ver < 6)
        return 0;
    if ((rc = read_alerts(db, root, alert, arg)) == SQLITE_OK &&
        (rc = read_outbox(db, root)) == SQLITE_OK) {
        const char *name;
        json_t *v;
        /* The alerts went to alert: no "alerts" member, which would replace them. */
        if (alert)
            json_object_foreach(root, name, v)
            {
                json_object_del(v, "alerts");
            }
        return 0;
    }
    if (rc == SQLITE_NOMEM)
        return failf(err, errlen, -ENOMEM, "out of memory reading the alerts of %s", path);
    return failf(err, errlen, CM_ESTATE, "cannot read the alerts of %s: %s", path,
                 sqlite3_errmsg(db));
}

int cm_store_notify_read(const char *path, json_t **out, cm_store_alert_fn alert, void *arg,
                         char *err, size_t errlen)
{
    sqlite3 *db;
    int serr, rc;
    int64_t ver;
    json_t *root;

    *out = NULL;
    if (!(root = json_object()))
        return failf(err, errlen, -ENOMEM, "out of memory");
    if (sniff(path, &serr) != K_SQLITE) {
        *out = root;
        return 0;
    }
    if ((rc = open_reader(path, &db, &ver, err, errlen)) < 0) {
        json_decref(root);
        return rc;
    }
    rc = read_notify(db, ver, path, root, alert, arg, err, errlen);
    sqlite3_close(db);
    if (rc < 0) {
        json_decref(root);
        return rc;
    }
    *out = root;
    return 0;
}

static json_t *str_json(const char *t);

/* Splits text at sep into a JSON array of strings ("" gives []). */
static json_t *split_json(const char *text, const char *sep)
{
    json_t *a = json_array();
    size_t sl = strlen(sep);
    const char *p = text;

    while (a && *p) {
        const char *e = strstr(p, sep);
        size_t l = e ? (size_t)(e - p) : strlen(p);
        char *piece = strndup(p, l);
        json_t *j = piece ? str_json(piece) : NULL;
        free(piece);
        if (json_array_append_new(a, j) < 0) {
            json_decref(a);
            return NULL;
        }
        if (!e)
            break;
        p = e + sl;
    }
    return a;
}

/* Text from a certificate, as a JSON string: escaped (cm_text_escape) when it is not valid
 * UTF-8, which JSON cannot carry. */
static json_t *str_json(const char *t)
{
    json_t *j = json_string(t);
    char *esc;
    size_t len;

    if (j)
        return j;
    len = strlen(t) * 4 + 1;
    if (!(esc = malloc(len)))
        return NULL;
    cm_text_escape(t, esc, len);
    j = json_string(esc);
    free(esc);
    return j;
}

static json_t *time_json(int64_t t)
{
    char buf[32];

    cm_time_rfc3339(t, buf, sizeof(buf));
    return json_string(buf);
}

json_t *cm_history_json(const struct cm_history_row *rows, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < n; i++) {
        const struct cm_history_row *r = &rows[i];
        json_t *o = json_pack(
            "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:o, s:o}", "sha256",
            str_json(r->sha256), "first_seen", time_json(r->first_seen), "last_seen",
            time_json(r->last_seen), "subject", str_json(r->subject), "issuer", str_json(r->issuer),
            "sans", split_json(r->sans, ", "), "key_type", str_json(r->key_type), "key_bits",
            (json_int_t)r->key_bits, "not_before", time_json(r->not_before), "not_after",
            time_json(r->not_after), "chain", split_json(r->chain, " "), "trust",
            r->trust == CM_TRUST_UNKNOWN ? json_null() : json_string(cm_leaf_trust_name(r->trust)));
        if (!o || json_array_append_new(a, o) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

int cm_store_latest(const char *path,
                    void (*fn)(void *arg, const char *target, const struct cm_history_row *row),
                    void *arg, char *err, size_t errlen)
{
    /* Per target the row first seen last; first_seen counts whole seconds, so a leaf
     * replaced within the second of its own first sight ties with its successor: the row
     * inserted later (a higher rowid; an upsert keeps a row's rowid) is the newer. */
    static const char SQL[] = "SELECT target, sha256, subject, sans, issuer, key_type, key_bits,"
                              " not_before, not_after, chain, last_seen, first_seen, %s FROM"
                              " (SELECT *, row_number() OVER (PARTITION BY target ORDER BY"
                              " first_seen DESC, rowid DESC) AS rn FROM history) WHERE rn = 1";
    sqlite3_stmt *s = NULL;
    sqlite3 *db;
    int serr, rc;
    int64_t ver;
    char sql[sizeof(SQL) + 8];

    if (sniff(path, &serr) != K_SQLITE)
        return 0;
    if ((rc = open_reader(path, &db, &ver, err, errlen)) < 0)
        return rc;
    snprintf(sql, sizeof(sql), SQL, ver < 4 ? "NULL" : "trust");
    if (ver < 2 || sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return 0;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(s, 0);
        struct cm_history_row r = {
            .sha256 = (char *)sqlite3_column_text(s, 1),
            .subject = (char *)sqlite3_column_text(s, 2),
            .sans = (char *)sqlite3_column_text(s, 3),
            .issuer = (char *)sqlite3_column_text(s, 4),
            .key_type = (char *)sqlite3_column_text(s, 5),
            .key_bits = (unsigned)sqlite3_column_int64(s, 6),
            .not_before = sqlite3_column_int64(s, 7),
            .not_after = sqlite3_column_int64(s, 8),
            .chain = (char *)sqlite3_column_text(s, 9),
            .last_seen = sqlite3_column_int64(s, 10),
            .first_seen = sqlite3_column_int64(s, 11),
            .trust = cm_leaf_trust_parse((const char *)sqlite3_column_text(s, 12)),
        };
        if (t && r.sha256 && r.subject && r.sans && r.issuer && r.key_type && r.chain)
            fn(arg, t, &r);
    }
    if (rc != SQLITE_DONE)
        failf(err, errlen, 0, "cannot read the history of %s: %s", path, sqlite3_errmsg(db));
    sqlite3_finalize(s);
    sqlite3_close(db);
    return rc == SQLITE_DONE ? 0 : CM_ESTATE;
}

void cm_history_free(struct cm_history_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].sha256);
        free(rows[i].subject);
        free(rows[i].issuer);
        free(rows[i].sans);
        free(rows[i].key_type);
        free(rows[i].chain);
    }
    free(rows);
}

static char *col_dup(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);

    return strdup(t ? (const char *)t : "");
}

int cm_store_history(const char *path, const char *name, struct cm_history_row **rows,
                     size_t *n, char *err, size_t errlen)
{
    struct cm_history_row *v = NULL;
    size_t cnt = 0, cap = 0;
    sqlite3_stmt *s = NULL;
    sqlite3 *db;
    int serr, rc;
    int64_t ver;
    char sql[sizeof(SELECT_HISTORY) + 8];

    *rows = NULL;
    *n = 0;
    switch (sniff(path, &serr)) {
    case K_NONE:
        return failf(err, errlen, -ENOENT, "%s does not exist", path);
    case K_OTHER:
        if (serr)
            return failf(err, errlen, -serr, "cannot read %s: %s", path, strerror(serr));
        return failf(err, errlen, CM_ESTATE,
                     "%s is a JSON state of an earlier version: it has no certificate history",
                     path);
    default:
        break;
    }
    if ((rc = open_reader(path, &db, &ver, err, errlen)) < 0)
        return rc;
    if (ver >= 0 && ver < 2) {
        sqlite3_close(db);
        return 0; /* schema 1: no history yet */
    }
    snprintf(sql, sizeof(sql), SELECT_HISTORY, ver < 4 ? "NULL" : "trust");
    if (ver < 0 || (rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL)) ||
        (rc = sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC))) {
        failf(err, errlen, 0, "%s: %s", path, sqlite3_errmsg(db));
        goto fail;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct cm_history_row *r;
        if (cnt == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct cm_history_row *nv = realloc(v, ncap * sizeof(*nv));
            if (!nv)
                goto nomem;
            v = nv;
            cap = ncap;
        }
        r = &v[cnt];
        memset(r, 0, sizeof(*r));
        cnt++;
        r->first_seen = sqlite3_column_int64(s, 1);
        r->last_seen = sqlite3_column_int64(s, 2);
        r->key_bits = (unsigned)sqlite3_column_int64(s, 7);
        r->not_before = sqlite3_column_int64(s, 8);
        r->not_after = sqlite3_column_int64(s, 9);
        r->trust = cm_leaf_trust_parse((const char *)sqlite3_column_text(s, 11));
        if (!(r->sha256 = col_dup(s, 0)) || !(r->subject = col_dup(s, 3)) ||
            !(r->sans = col_dup(s, 4)) || !(r->issuer = col_dup(s, 5)) ||
            !(r->key_type = col_dup(s, 6)) || !(r->chain = col_dup(s, 10)))
            goto nomem;
    }
    if (rc != SQLITE_DONE) {
        failf(err, errlen, 0, "cannot read %s: %s", path, sqlite3_errmsg(db));
        goto fail;
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    *rows = v;
    *n = cnt;
    return 0;
nomem:
    sqlite3_finalize(s);
    sqlite3_close(db);
    cm_history_free(v, cnt);
    return failf(err, errlen, -ENOMEM, "out of memory reading %s", path);
fail:
    sqlite3_finalize(s);
    sqlite3_close(db);
    cm_history_free(v, cnt);
    return CM_ESTATE;
}

void cm_store_set_fold_min(struct cm_store *st, unsigned rows)
{
    uv_mutex_lock(&st->mu);
    st->fold.fold_min = rows ? rows : 1;
    uv_mutex_unlock(&st->mu);
}

void cm_store_get_stats(struct cm_store *st, struct cm_store_stats *out)
{
    uv_mutex_lock(&st->mu);
    *out = st->stats;
    uv_mutex_unlock(&st->mu);
}

static void on_async_closed(uv_handle_t *h)
{
    free(h->data);
}

static void store_free(struct cm_store *st)
{
    queue_clear(&st->q);
    free(st->path);
    uv_cond_destroy(&st->cond);
    uv_mutex_destroy(&st->mu);
    if (st->has_async)
        uv_close((uv_handle_t *)&st->async, on_async_closed);
    else
        free(st);
}

int cm_store_close(struct cm_store *st)
{
    int rc;

    if (!st)
        return 0;
    uv_mutex_lock(&st->mu);
    st->closing = true;
    uv_cond_broadcast(&st->cond);
    uv_mutex_unlock(&st->mu);
    if (st->started)
        uv_thread_join(&st->thread);
    else
        close_db(st);
    rc = st->last_rc == SQLITE_OK ? 0 : CM_ESTATE;
    if (st->has_async)
        on_async(&st->async); /* a failure of the last commit */
    store_free(st);
    return rc;
}

/* ---- Opening: sniffing, importing, moving aside ---- */

/* What path holds, by its first 16 bytes. They are read through SQLite's own file layer, not
 * with open() and close(): POSIX locks belong to the process, and closing any descriptor of a
 * file drops every lock the process holds on it. The readers that sniff run beside the writer
 * (the pins and the last leaves at start, the history endpoint); a close() of theirs would
 * drop the writer's shared lock, and then another process closing a read-write connection to
 * the file (`sqlite3 FILE`, read-write by default) takes itself for its last user: it
 * checkpoints and deletes the WAL under the writer, whose commits from then on go to the
 * deleted file, seen by nobody and lost at a kill -9. (Read-only connections, like those of
 * `certmon state export`, do not checkpoint at close.) SQLite's close keeps the descriptor of
 * a file its connections hold locks on open until they are released (and reuses it at the
 * next open). */
static enum kind sniff(const char *path, int *err)
{
    sqlite3_vfs *vfs = sqlite3_vfs_find(NULL);
    sqlite3_file *f = NULL;
    struct stat sb;
    char head[16];
    int flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_MAIN_DB, rc;
    enum kind k = K_OTHER;

    *err = 0;
    if (stat(path, &sb) < 0) {
        *err = errno;
        return errno == ENOENT ? K_NONE : K_OTHER;
    }
    /* Not opened at all: a FIFO would block the open. */
    if (!S_ISREG(sb.st_mode)) {
        *err = S_ISDIR(sb.st_mode) ? EISDIR : EINVAL;
        return K_OTHER;
    }
    /* An empty file is an empty database to SQLite. */
    if (sb.st_size == 0)
        return K_SQLITE;
    if (sb.st_size < (off_t)sizeof(head))
        return K_OTHER;
    if (!vfs || !(f = calloc(1, (size_t)vfs->szOsFile))) {
        *err = ENOMEM;
        return K_OTHER;
    }
    errno = 0;
    if ((rc = vfs->xOpen(vfs, path, f, flags, &flags)) != SQLITE_OK) {
        *err = errno ? errno : EACCES;
    } else if ((rc = f->pMethods->xRead(f, head, sizeof(head), 0)) != SQLITE_OK) {
        /* Short (shrunk since the stat): not a database header either. */
        *err = (rc & 0xff) == SQLITE_IOERR && rc != SQLITE_IOERR_SHORT_READ ? EIO : 0;
    } else if (!memcmp(head, "SQLite format 3", 16)) {
        k = K_SQLITE;
    }
    /* A file whose open failed may still have methods to close (the VFS contract). */
    if (f->pMethods)
        f->pMethods->xClose(f);
    free(f);
    return k;
}

/* Unlinks path + suffix. */
static void unlink_with(const char *path, const char *suffix)
{
    char *p;

    if (asprintf(&p, "%s%s", path, suffix) >= 0) {
        unlink(p);
        free(p);
    }
}

static void remove_sidecars(const char *path)
{
    unlink_with(path, "-wal");
    unlink_with(path, "-shm");
}

/* Moves an unusable database (and its WAL, which belongs to it) aside. */
static void move_aside(const char *path, time_t now)
{
    char moved[4200], *a = NULL, *b = NULL;

    if (cm_state_move_aside(path, now, moved, sizeof(moved)) < 0) {
        cm_log_warn("state", "file=%s cannot be moved aside: %s; starting with an empty state",
                    path, strerror(errno));
        return;
    }
    /* asprintf leaves its pointer undefined on failure. */
    if (asprintf(&a, "%s-wal", path) < 0)
        a = NULL;
    if (asprintf(&b, "%s-wal", moved) < 0)
        b = NULL;
    if (a && b)
        rename(a, b);
    free(a);
    free(b);
    unlink_with(path, "-shm");
    cm_log_warn("state", "file=%s moved aside to %s; starting with an empty state", path, moved);
}

/* Writes every entry of s into db in one transaction. */
static int write_all(struct cm_store *st, const struct cm_state *s, char *err, size_t errlen)
{
    struct cm_state_entry *const *es;
    struct queue q = {0};
    size_t n;
    int rc = 0;

    es = cm_state_entries(s, &n);
    if (!(q.v = calloc(n ? n : 1, sizeof(*q.v))))
        return -ENOMEM;
    q.cap = n;
    for (size_t i = 0; i < n && rc == 0; i++)
        if ((rc = op_of_entry(es[i], &q.v[i])) == 0)
            q.n++;
    if (rc == 0 && apply_batch(st, &q, err, errlen) != SQLITE_OK)
        rc = CM_ESTATE;
    queue_clear(&q);
    return rc;
}

/* A JSON state of earlier versions at path: loaded into s, written to a new database beside
 * it, which then takes its place; the JSON file stays as PATH.imported. */
static int import_json(struct cm_store *st, struct cm_state *s, time_t now, char *err,
                       size_t errlen)
{
    char tmp[4200], kept[4200], why[600];
    int rc;
    size_t n;

    if ((rc = cm_state_load(s, st->path, why, sizeof(why))) < 0) {
        if (rc == -ENOMEM)
            return failf(err, errlen, -ENOMEM, "out of memory importing %s", st->path);
        cm_log_error("state", "%s", why);
        move_aside(st->path, now);
        return 1; /* a fresh database at path */
    }
    snprintf(tmp, sizeof(tmp), "%s.importing", st->path);
    snprintf(kept, sizeof(kept), "%s.imported", st->path);
    unlink(tmp);
    remove_sidecars(tmp);
    if (open_db(tmp, false, &st->db, err, errlen) != SQLITE_OK) {
        cm_state_clear(s);
        return CM_ESTATE;
    }
    if ((rc = prepare_writes(st, err, errlen)) < 0 || (rc = write_all(st, s, err, errlen)) < 0) {
        close_db(st);
        unlink(tmp);
        remove_sidecars(tmp);
        cm_state_clear(s);
        return rc;
    }
    close_db(st);
    if (rename(st->path, kept) < 0 || rename(tmp, st->path) < 0) {
        rc = -errno;
        cm_state_clear(s);
        return failf(err, errlen, rc, "cannot replace %s by the imported database: %s", st->path,
                     strerror(-rc));
    }
    cm_state_entries(s, &n);
    cm_log_info("state", "file=%s entries=%zu imported from the JSON state; it is kept as %s",
                st->path, n, kept);
    return 0;
}

/* Opens the database at st->path and loads it into s (when not NULL), moving a corrupt file
 * aside. */
static int open_and_load(struct cm_store *st, struct cm_state *s, time_t now, char *err,
                         size_t errlen)
{
    int serr, rc;
    enum kind k = sniff(st->path, &serr);
    bool imported = false;

    if (k == K_OTHER && serr != 0)
        return failf(err, errlen, -serr, "cannot read %s: %s", st->path, strerror(serr));
    if (k == K_OTHER) {
        struct cm_state *tmp = NULL;
        if (!s && cm_state_new(&tmp) < 0)
            return -ENOMEM;
        rc = import_json(st, s ? s : tmp, now, err, errlen);
        cm_state_free(tmp);
        if (rc < 0)
            return rc;
        imported = rc == 0; /* s holds what the new database holds */
    }
    if ((rc = open_db(st->path, false, &st->db, err, errlen)) == SQLITE_OK && s && !imported &&
        (rc = load_rows(st->db, st->path, s, &st->fold.last_seq, err, errlen)) == SQLITE_OK)
        return 0;
    if (rc == SQLITE_OK)
        return 0;
    if (!is_corrupt(rc))
        return (rc & 0xff) == SQLITE_NOMEM ? -ENOMEM : CM_ESTATE;
    /* Unusable: logged, kept for a look, and replaced by an empty database. */
    cm_log_error("state", "%s", err);
    sqlite3_close(st->db);
    st->db = NULL;
    move_aside(st->path, now);
    remove_sidecars(st->path);
    return open_db(st->path, false, &st->db, err, errlen) == SQLITE_OK ? 0 : CM_ESTATE;
}

int cm_store_open(uv_loop_t *loop, const char *path, struct cm_state *s, time_t now,
                  struct cm_store **out, char *err, size_t errlen)
{
    struct cm_store *st = calloc(1, sizeof(*st));
    int rc;

    if (!st || !(st->path = strdup(path))) {
        free(st);
        return failf(err, errlen, -ENOMEM, "out of memory");
    }
    st->fold.fold_min = CM_STORE_FOLD_MIN;
    if (uv_mutex_init(&st->mu) < 0) {
        free(st->path);
        free(st);
        return failf(err, errlen, -ENOMEM, "cannot create a mutex");
    }
    if (uv_cond_init(&st->cond) < 0) {
        uv_mutex_destroy(&st->mu);
        free(st->path);
        free(st);
        return failf(err, errlen, -ENOMEM, "cannot create a condition variable");
    }
    if ((rc = open_and_load(st, s, now, err, errlen)) < 0 ||
        (rc = prepare_writes(st, err, errlen)) < 0 ||
        (rc = fold_init(st, s != NULL, err, errlen)) < 0)
        goto fail;
    if (alert_fold_init(st) != SQLITE_OK) {
        rc = failf(err, errlen, CM_ESTATE, "%s: %s", st->path, sqlite3_errmsg(st->db));
        goto fail;
    }
    if ((rc = uv_async_init(loop, &st->async, on_async)) < 0) {
        failf(err, errlen, rc, "cannot create the writer's wakeup: %s", uv_strerror(rc));
        goto fail;
    }
    st->async.data = st;
    st->has_async = true;
    if ((rc = uv_thread_create(&st->thread, writer, st)) < 0) {
        failf(err, errlen, rc, "cannot start the writer thread: %s", uv_strerror(rc));
        goto fail;
    }
    st->started = true;
    *out = st;
    return 0;
fail:
    close_db(st);
    if (s)
        cm_state_clear(s);
    store_free(st);
    return rc;
}

int cm_store_read(const char *path, struct cm_state *s, char *err, size_t errlen)
{
    return cm_store_read_all(path, s, NULL, NULL, NULL, err, errlen);
}

int cm_store_read_all(const char *path, struct cm_state *s, json_t **notify,
                      cm_store_alert_fn alert, void *arg, char *err, size_t errlen)
{
    int serr, rc;
    int64_t ver;
    sqlite3 *db;
    json_t *root = NULL;

    if (notify && !(root = *notify = json_object()))
        return failf(err, errlen, -ENOMEM, "out of memory");
    switch (sniff(path, &serr)) {
    case K_NONE:
        rc = failf(err, errlen, -ENOENT, "%s does not exist", path);
        goto out;
    case K_OTHER:
        /* A JSON state document: no alerts in it (they were in STATE_FILE.notify.json). */
        if (serr)
            rc = failf(err, errlen, -serr, "cannot read %s: %s", path, strerror(serr));
        else
            rc = cm_state_load(s, path, err, errlen);
        goto out;
    default:
        break;
    }
    if ((rc = open_reader(path, &db, &ver, err, errlen)) < 0)
        goto out;
    /* One read transaction (WAL: a snapshot of one commit) for the targets and the alerts, so
     * that they agree with each other while the daemon goes on writing. */
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        rc = failf(err, errlen, CM_ESTATE, "cannot read %s: %s", path, sqlite3_errmsg(db));
    } else if ((rc = load_rows(db, path, s, NULL, err, errlen)) != SQLITE_OK) {
        rc = (rc & 0xff) == SQLITE_NOMEM ? -ENOMEM : CM_ESTATE;
    } else if (root && (rc = read_notify(db, ver, path, root, alert, arg, err, errlen)) < 0) {
        cm_state_clear(s);
    }
    sqlite3_close(db); /* ends the read transaction */
    if (rc == 0)
        cm_state_check_reports(s, SIZE_MAX);
out:
    if (rc < 0 && root) {
        json_decref(root);
        *notify = NULL;
    }
    return rc;
}

uint64_t cm_store_mark(struct cm_store *st)
{
    uint64_t m;

    uv_mutex_lock(&st->mu);
    m = st->queued;
    uv_mutex_unlock(&st->mu);
    return m;
}

bool cm_store_durable(struct cm_store *st, uint64_t mark)
{
    bool ok;

    uv_mutex_lock(&st->mu);
    /* A failed transaction makes every mark up to it doubtful: those stay in memory (until
     * their entry's next result), which is safe and rare. */
    ok = st->committed >= mark && mark > st->failed_upto;
    uv_mutex_unlock(&st->mu);
    return ok;
}

int cm_store_reports(const char *path, const char *const *names, size_t n, char **out, char *err,
                     size_t errlen)
{
    sqlite3_stmt *s = NULL;
    sqlite3 *db;
    int64_t ver;
    int rc, serr;

    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    if (sniff(path, &serr) != K_SQLITE)
        return failf(err, errlen, serr ? -serr : CM_ESTATE, "%s is not a certmon database", path);
    if ((rc = open_reader(path, &db, &ver, err, errlen)) < 0)
        return rc;
    /* One read transaction: every answer from the same state of the file. */
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           ver >= 5 ? "SELECT report FROM current WHERE name = ?1"
                                    : "SELECT report FROM targets WHERE name = ?1",
                           -1, &s, NULL) != SQLITE_OK) {
        failf(err, errlen, CM_ESTATE, "cannot read %s: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return CM_ESTATE;
    }
    rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        int step;
        sqlite3_reset(s);
        if (sqlite3_bind_text(s, 1, names[i], -1, SQLITE_STATIC) != SQLITE_OK) {
            rc = -ENOMEM;
            break;
        }
        step = sqlite3_step(s);
        if (step == SQLITE_DONE || (step == SQLITE_ROW && sqlite3_column_type(s, 0) == SQLITE_NULL))
            continue;
        if (step != SQLITE_ROW) {
            rc = failf(err, errlen, CM_ESTATE, "cannot read %s: %s", path, sqlite3_errmsg(db));
            break;
        }
        {
            bool packed = sqlite3_column_type(s, 0) == SQLITE_BLOB;
            const void *data = packed ? sqlite3_column_blob(s, 0) : sqlite3_column_text(s, 0);
            size_t len = (size_t)sqlite3_column_bytes(s, 0);
            if (data && !(out[i] = cm_state_report_from(data, len, packed)))
                rc = -ENOMEM;
        }
    }
    sqlite3_finalize(s);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
    if (rc < 0)
        for (size_t i = 0; i < n; i++) {
            cm_state_report_unref(out[i]);
            out[i] = NULL;
        }
    return rc;
}
