/* What the daemon knows about each target: its latest report (the `check --json` object,
 * plus when each finding was first seen), when it was last probed and last succeeded, its
 * consecutive failures and its last posture pass. Kept per state name: an endpoint target's
 * name, or "file:PATH" for each file a file entry found.
 *
 * The latest report is held packed (base/pack.h: compact JSON text, DEFLATE with a preset
 * dictionary, about a ninth of the text; a parsed tree would cost ten times the text), which is
 * also what the database keeps; the API unpacks it to serve it. This module is the in-memory view;
 * persistence is the store's (certmon/daemon/store.h: one SQLite row per entry, written by its
 * own thread). The JSON state document of earlier versions is still read here
 * (cm_state_load: the store imports it once) and written (cm_state_serialize: `certmon state
 * export --json`). */
#ifndef CERTMON_STATE_H
#define CERTMON_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "certmon/analysis/change.h"
#include "certmon/analysis/analyze.h"
#include "certmon/config/config.h"
#include "certmon/probe/result.h"

#define CM_STATE_VERSION 1

/* When a finding (id at a chain position) was first seen in an unbroken run of results. */
struct cm_seen {
    const char *id; /* catalogue id, static */
    int position;
    int64_t first_seen;
};

struct cm_state_entry {
    const char *name;     /* state key; read-only, in the entry's own allocation */
    const char *owner;    /* name of the config target that produces it (for an endpoint, itself:
                           * then the same memory as name); read-only, in the same allocation */
    int64_t last_probe;   /* Unix seconds of the latest result; 0: never */
    int64_t last_success; /* of the latest result without a probe error; 0: never */
    int64_t status_since; /* when status last changed */
    unsigned failures;    /* consecutive results with a probe error */
    enum cm_status status;
    bool has_status;      /* false until a first result (or a loaded one) */
    /* The latest report is in the database only: e->report was let go once the store had
     * committed it (cm_state_drop_report), or a restored one once its view was built
     * (cm_state_set_drop_checked). Read it back with cm_store_reports. */
    bool report_on_disk;
    bool unchecked;      /* internal: a restored report not parsed yet (cm_state_check_reports) */
    bool deploy_reading; /* expect_file: a read of the file is under way (deploy, below) */
    /* (The flags side by side: 100,000 entries, no padding between them.) */
    char *report;         /* the latest report, packed, or NULL (cm_state_report_text) */
    struct cm_seen *seen;
    size_t seen_count;
    struct cm_posture *posture; /* latest posture pass, or NULL */
    int64_t posture_at;         /* when it ran */
    size_t slot;                /* index in the state's entry array (internal) */
    uint64_t mark;              /* the caller's scratch (the daemon marks what a scan found) */
    void *view;                 /* built by the view hooks from the latest report, or NULL */
    const struct cm_state_view_hooks *hooks; /* internal */
    /* The daemon's memory of the served leaf (not persisted here: the history table holds
     * it): its summary (one block of cm_leaf_summary_new, freed with cm_leaf_summary_free;
     * NULL until a leaf was seen), when its history row was last written, and the latest
     * material change (NULL: none). Owned by the entry. */
    struct cm_leaf_summary *leaf;
    int64_t leaf_written;
    struct cm_change *change;
    unsigned renewals, changes; /* leaf changes seen since the daemon started, by kind */
    /* pin = "tofu": the pinned leaf (NULL: none yet) and when it was pinned or last moved.
     * Owned by the entry; the store's pins table keeps it across restarts. */
    struct cm_leaf_summary *pin;
    int64_t pinned_at;
    /* expect_file: the latest read of the file (NULL: none yet; deploy_reading says whether a
     * read is under way). Owned by the entry. */
    struct cm_deploy *deploy;
};

struct cm_state;

/* Derived data kept beside each report (the daemon keeps its metrics views there): build runs
 * with the report's parsed JSON whenever an entry gets a new report (recorded or loaded) and
 * may return NULL; free releases what build returned. name is the entry's name: the view may
 * point at it, since free runs before the entry goes and an entry's name never changes. */
struct cm_state_view_hooks {
    void *(*build)(json_t *report, const char *name, void *arg);
    void (*free)(void *view);
    void *arg;
};

int cm_state_new(struct cm_state **out);

/* Sets the view hooks (copied). Call before the first entry is created. */
void cm_state_set_view_hooks(struct cm_state *s, const struct cm_state_view_hooks *hooks);
void cm_state_free(struct cm_state *s);

/* The entry for name, or NULL. */
struct cm_state_entry *cm_state_get(struct cm_state *s, const char *name);

/* The entry for name, created empty (with owner) when missing. NULL on allocation failure. */
struct cm_state_entry *cm_state_put(struct cm_state *s, const char *name, const char *owner);

/* Removes and frees an entry. */
void cm_state_remove(struct cm_state *s, struct cm_state_entry *e);

/* Every entry, in no particular order; the array is valid until the next put or remove. */
struct cm_state_entry *const *cm_state_entries(const struct cm_state *s, size_t *count);

/* Records a result and its findings (analysed under the target's policy) at time now: merges
 * first-seen times (a finding keeps its time while it stays; one that went away and comes back
 * starts again), renders the report (cm_report_json plus `first_seen` on each finding,
 * `labels`, `last_probe`, `last_success`, `failures`, `status_since`) and updates the
 * counters. *changed tells whether the status changed (a first result counts as a change).
 * Returns 0 or -ENOMEM (the entry then keeps its previous report). */
int cm_state_record(struct cm_state_entry *e, const struct cm_probe_result *res,
                    const struct cm_findings *f, const struct cm_labels *labels, time_t now,
                    bool *changed, enum cm_status *old_status);

/* Replaces the entry's posture (taking ownership of p; NULL clears it) ran at time at. */
void cm_state_set_posture(struct cm_state_entry *e, struct cm_posture *p, int64_t at);

/* The whole state as the state file's JSON text (malloc'd, NUL-terminated, *len without the
 * NUL). Returns 0 or -ENOMEM. */
int cm_state_serialize(const struct cm_state *s, time_t now, char **out, size_t *len);

/* Writes buf to path atomically: a temporary file beside it, fsync, rename, fsync of the
 * directory. Blocking. Returns 0 or a negative errno with a reason in err. */
int cm_state_write_file(const char *path, const char *buf, size_t len, char *err, size_t errlen);

/* A consistent copy of the state for writing it elsewhere (the thread pool) while the loop
 * goes on changing the state: the entries' fields copied, their report texts shared by
 * reference. Made on the loop; written and freed on any thread. Returns 0 or -ENOMEM. */
struct cm_state_snapshot;
int cm_state_snapshot(const struct cm_state *s, time_t now, struct cm_state_snapshot **out);

/* Writes a snapshot to path atomically, as cm_state_write_file writes a buffer (the same text
 * cm_state_serialize makes), without holding the whole document in memory. Blocking. */
int cm_state_snapshot_write(const struct cm_state_snapshot *snap, const char *path, char *err,
                            size_t errlen);

void cm_state_snapshot_free(struct cm_state_snapshot *snap);

/* Loads a state file into s (which should be empty). Returns 0 (also when the file does not
 * exist: a first start), or CM_ESTATE when it cannot be read or is not a state document, with
 * a reason in err; s then holds nothing from it. */
int cm_state_load(struct cm_state *s, const char *path, char *err, size_t errlen);

/* Moves a corrupt state file aside to PATH.corrupt-<unix time>; the new name goes to moved.
 * Returns 0 or a negative errno. */
int cm_state_move_aside(const char *path, time_t now, char *moved, size_t movedlen);

/* The posture as the state file stores it, and back (exposed for tests). */
json_t *cm_posture_to_state_json(const struct cm_posture *p);
int cm_posture_from_state_json(json_t *j, struct cm_posture *out);

/* One entry as the store keeps it: plain values and JSON texts (seen: [[id, position,
 * first_seen], ...]; posture: cm_posture_to_state_json; report: the report object). Strings
 * are borrowed for the call. */
struct cm_state_row {
    const char *name;
    const char *owner;  /* NULL: the name */
    const char *status; /* cm_status_name, or NULL before a first result */
    int64_t last_probe, last_success, status_since, posture_at;
    int64_t failures;
    const char *seen;    /* NULL: none */
    const char *posture; /* NULL: none */
    const char *report;  /* NULL: none; JSON text, or report_len packed bytes */
    size_t report_len;   /* when report_packed */
    bool report_packed;  /* report is a packed text (base/pack.h), not JSON */
};

/* Adds the entry a row describes to s, checked as cm_state_load checks a state file's entry
 * (idx names the row in messages): a field of the wrong type is ignored with a warning; a
 * missing name, a duplicate or an unknown status is CM_ESTATE with a reason in err. The
 * report text is kept as given and not parsed yet: parsing a hundred thousand reports (and
 * building their views) would take seconds at start; cm_state_check_reports does it later.
 * Returns 0, CM_ESTATE or -ENOMEM. */
int cm_state_restore(struct cm_state *s, const struct cm_state_row *row, size_t idx, char *err,
                     size_t errlen);

/* Parses up to max restored reports not parsed yet: one that is not a JSON object (or a packed
 * text that does not unpack) is dropped with a warning, the others get their views, and one
 * restored as JSON text (a database of schema 2) is packed.
 * Returns true when no report is left unchecked. Call it in slices after a start, and with
 * SIZE_MAX before serving reports or views. */
bool cm_state_check_reports(struct cm_state *s, size_t max);

/* With on (the daemon, whose database holds every restored row), a restored report is let go
 * as soon as cm_state_check_reports has built its view: at 100,000 targets the packed reports
 * are ~45 MB that only the API reads. */
void cm_state_set_drop_checked(struct cm_state *s, bool on);

/* Lets go of the entry's report when it is still report (a reference taken when it was
 * queued to the store, whose commit has since made it durable): e->report becomes NULL and
 * e->report_on_disk true. A newer report stays. Returns true when it was let go. */
bool cm_state_drop_report(struct cm_state_entry *e, const char *report);

/* Gives the entry report (a reference, taken over; NULL: nothing) when it has none in memory:
 * report_on_disk becomes false. One it has already is kept and report released. */
void cm_state_take_report(struct cm_state_entry *e, char *report);

/* True when the entry has a report, in memory or in the database. */
bool cm_state_has_report(const struct cm_state_entry *e);

/* A report reference made from bytes read back from the database (packed: base/pack.h, else
 * JSON text), as cm_state_report_ref returns; NULL when out of memory. */
char *cm_state_report_from(const void *data, size_t len, bool packed);

/* A reference to the entry's report (NULL when it has none), valid on any thread until
 * cm_state_report_unref: the entry may get a new report meanwhile. */
char *cm_state_report_ref(const struct cm_state_entry *e);
void cm_state_report_unref(char *report);

/* The bytes of a report (an entry's `report` or a reference): a packed text (base/pack.h) when
 * *packed, else JSON text (NUL-terminated; *len without the NUL). Any thread. */
const void *cm_state_report_data(const char *report, size_t *len, bool *packed);

/* The report's JSON text, unpacked when packed, into *out (malloc'd, NUL-terminated; *len
 * without the NUL): *out NULL when report is NULL. Any thread. Returns 0, -ENOMEM, or -EINVAL
 * for a packed text that does not unpack. */
int cm_state_report_text(const char *report, char **out, size_t *len);

/* The entry's first-seen list and posture as the row's JSON texts (malloc'd; posture NULL
 * when the entry has none). NULL on allocation failure. */
char *cm_state_seen_text(const struct cm_state_entry *e);
char *cm_state_posture_text(const struct cm_state_entry *e);

/* Removes every entry. */
void cm_state_clear(struct cm_state *s);

#endif
