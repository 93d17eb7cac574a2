/* The state store: entries in a dense array (iteration) indexed by a hash of their names
 * (lookup), reports kept as compact JSON text, and the state file written atomically. */
#include "certmon/daemon/state.h"
#include "certmon/base/error.h"
#include "certmon/base/log.h"
#include "certmon/base/pack.h"
#include "certmon/analysis/report.h"
#include "certmon/probe/x509.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Report texts are shared with snapshots being written on the thread pool and with the
 * store's queue: a reference count sits in a header just before the bytes, so that entries
 * keep a plain char pointer. The bytes are a packed text (base/pack.h: what the daemon
 * records, and what the database holds since schema 3) or a JSON text with its NUL (loaded
 * from a JSON state or an older database, kept as it came so that a start never repacks). */
struct rtext {
    int refs; /* atomic */
    bool packed;
    size_t len; /* bytes in s, without a JSON text's NUL */
    char s[];
};

static char *rtext_bytes(const void *data, size_t len, bool packed)
{
    struct rtext *r = malloc(sizeof(*r) + len + 1);

    if (!r)
        return NULL;
    r->refs = 1;
    r->packed = packed;
    r->len = len;
    memcpy(r->s, data, len);
    r->s[len] = '\0';
    return r->s;
}

static char *rtext_new(const char *text)
{
    return rtext_bytes(text, strlen(text), false);
}

static struct rtext *rtext_of(char *s)
{
    return (struct rtext *)(void *)(s - offsetof(struct rtext, s));
}

static char *rtext_ref(char *s)
{
    if (s)
        __atomic_add_fetch(&rtext_of(s)->refs, 1, __ATOMIC_RELAXED);
    return s;
}

static void rtext_unref(char *s)
{
    if (s && __atomic_sub_fetch(&rtext_of(s)->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(rtext_of(s));
}

struct cm_state {
    struct cm_state_entry **entries;
    size_t count, cap;
    size_t *buckets; /* open addressing: entry index + 1, 0 = empty */
    size_t nbuckets; /* power of two, at least twice count */
    struct cm_state_view_hooks hooks;
    size_t check_from; /* entries below this index have their reports checked */
    bool drop_checked; /* cm_state_set_drop_checked */
};

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

int cm_state_new(struct cm_state **out)
{
    struct cm_state *s = calloc(1, sizeof(*s));

    if (!s)
        return -ENOMEM;
    *out = s;
    return 0;
}

static void set_view(struct cm_state_entry *e, json_t *report)
{
    void *v = e->hooks && e->hooks->build && report
                  ? e->hooks->build(report, e->name, e->hooks->arg)
                  : NULL;

    if (e->view && e->hooks && e->hooks->free)
        e->hooks->free(e->view);
    e->view = v;
}

void cm_state_set_view_hooks(struct cm_state *s, const struct cm_state_view_hooks *hooks)
{
    s->hooks = *hooks;
}

static void entry_free(struct cm_state_entry *e)
{
    if (!e)
        return;
    set_view(e, NULL);
    rtext_unref(e->report); /* name and owner live in e's own block */
    free(e->seen);
    cm_posture_free(e->posture);
    cm_leaf_summary_free(e->leaf);
    cm_change_free(e->change);
    if (e->pin)
        cm_leaf_summary_clear(e->pin);
    free(e->pin);
    cm_deploy_free(e->deploy);
    free(e);
}

void cm_state_free(struct cm_state *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->count; i++)
        entry_free(s->entries[i]);
    free(s->entries);
    free(s->buckets);
    free(s);
}

static size_t *bucket_for(const struct cm_state *s, const char *name)
{
    size_t mask = s->nbuckets - 1;

    for (size_t i = hash_name(name) & mask;; i = (i + 1) & mask) {
        size_t v = s->buckets[i];
        if (v == 0 || !strcmp(s->entries[v - 1]->name, name))
            return &s->buckets[i];
    }
}

static int rehash(struct cm_state *s, size_t nbuckets)
{
    size_t *b = calloc(nbuckets, sizeof(*b));

    if (!b)
        return -ENOMEM;
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = nbuckets;
    for (size_t i = 0; i < s->count; i++)
        *bucket_for(s, s->entries[i]->name) = i + 1;
    return 0;
}

struct cm_state_entry *cm_state_get(struct cm_state *s, const char *name)
{
    size_t v;

    if (s->nbuckets == 0)
        return NULL;
    v = *bucket_for(s, name);
    return v ? s->entries[v - 1] : NULL;
}

/* An empty entry with its name, and its owner when that is another text, in the same block
 * (issue 14: at 100,000 targets, two strdups of the same text per endpoint cost more in malloc
 * chunks than the text itself); an endpoint's owner is its name's memory. NULL when out of
 * memory. */
static struct cm_state_entry *entry_new(const char *name, const char *owner)
{
    size_t nlen = strlen(name) + 1, olen = owner && strcmp(owner, name) ? strlen(owner) + 1 : 0;
    struct cm_state_entry *e = calloc(1, sizeof(*e) + nlen + olen);
    char *text;

    if (!e)
        return NULL;
    text = (char *)(e + 1);
    e->name = memcpy(text, name, nlen);
    e->owner = olen ? memcpy(text + nlen, owner, olen) : e->name;
    return e;
}

struct cm_state_entry *cm_state_put(struct cm_state *s, const char *name, const char *owner)
{
    struct cm_state_entry *e = cm_state_get(s, name);

    if (e)
        return e;
    if (s->count == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        struct cm_state_entry **n = realloc(s->entries, ncap * sizeof(*n));
        if (!n)
            return NULL;
        s->entries = n;
        s->cap = ncap;
    }
    if ((s->count + 1) * 2 > s->nbuckets && rehash(s, s->nbuckets ? s->nbuckets * 2 : 128) < 0)
        return NULL;
    if (!(e = entry_new(name, owner)))
        return NULL;
    e->slot = s->count;
    e->hooks = &s->hooks;
    s->entries[s->count++] = e;
    *bucket_for(s, name) = s->count;
    return e;
}

void cm_state_remove(struct cm_state *s, struct cm_state_entry *e)
{
    size_t mask = s->nbuckets - 1, i, j, idx = e->slot;

    /* Backward-shift deletion keeps every probe sequence unbroken without tombstones. */
    i = (size_t)(bucket_for(s, e->name) - s->buckets);
    s->buckets[i] = 0;
    for (j = (i + 1) & mask; s->buckets[j] != 0; j = (j + 1) & mask) {
        size_t k = hash_name(s->entries[s->buckets[j] - 1]->name) & mask;
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            s->buckets[i] = s->buckets[j];
            s->buckets[j] = 0;
            i = j;
        }
    }
    /* Swap-remove from the dense array and repoint the moved entry's bucket. */
    s->count--;
    if (idx != s->count) {
        s->entries[idx] = s->entries[s->count];
        s->entries[idx]->slot = idx;
        *bucket_for(s, s->entries[idx]->name) = idx + 1;
        /* An unchecked entry moved below the check's position: check from there again. */
        if (s->entries[idx]->unchecked && idx < s->check_from)
            s->check_from = idx;
    }
    entry_free(e);
}

struct cm_state_entry *const *cm_state_entries(const struct cm_state *s, size_t *count)
{
    *count = s->count;
    return s->entries;
}

/* ---- Recording results ---- */

static int64_t seen_lookup(const struct cm_state_entry *e, const char *id, int position)
{
    for (size_t i = 0; i < e->seen_count; i++)
        if (e->seen[i].position == position && !strcmp(e->seen[i].id, id))
            return e->seen[i].first_seen;
    return 0;
}

static json_t *time_json(int64_t t)
{
    char buf[32];

    if (t <= 0)
        return json_null();
    cm_time_rfc3339(t, buf, sizeof(buf));
    return json_string(buf);
}

int cm_state_record(struct cm_state_entry *e, const struct cm_probe_result *res,
                    const struct cm_findings *f, const struct cm_labels *labels, time_t now,
                    bool *changed, enum cm_status *old_status)
{
    struct cm_seen *seen = f->count ? calloc(f->count, sizeof(*seen)) : NULL;
    json_t *o = NULL, *fs, *lab;
    enum cm_status st = cm_result_status(res, f);
    bool failed = res->error_kind != CM_ERRK_NONE;
    int64_t last_success = failed ? e->last_success : (int64_t)now;
    int64_t since = e->has_status && e->status == st ? e->status_since : (int64_t)now;
    char *text = NULL;

    if (f->count && !seen)
        return -ENOMEM;
    for (size_t i = 0; i < f->count; i++) {
        int64_t t = seen_lookup(e, f->items[i].id, f->items[i].position);
        seen[i].id = f->items[i].id;
        seen[i].position = f->items[i].position;
        seen[i].first_seen = t ? t : (int64_t)now;
    }
    if (!(o = cm_report_json(res, f, now)))
        goto fail;
    /* The state's name is the target's identity (a configured `name`, "file:PATH"). */
    if (json_object_set_new(o, "target", json_string(e->name)))
        goto fail;
    fs = json_object_get(o, "findings");
    for (size_t i = 0; i < json_array_size(fs) && i < f->count; i++)
        if (json_object_set_new(json_array_get(fs, i), "first_seen", time_json(seen[i].first_seen)))
            goto fail;
    if (!(lab = json_object()) || json_object_set_new(o, "labels", lab))
        goto fail;
    for (size_t i = 0; labels && i < labels->count; i++)
        if (json_object_set_new(lab, labels->keys[i], json_string(labels->values[i])))
            goto fail;
    if (json_object_set_new(o, "last_probe", time_json(now)) ||
        json_object_set_new(o, "last_success", time_json(last_success)) ||
        json_object_set_new(o, "failures", json_integer(failed ? e->failures + 1 : 0)) ||
        json_object_set_new(o, "status_since", time_json(since)))
        goto fail;
    {
        char *t = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        unsigned char *p = NULL;
        size_t plen;
        /* Packed: a report is read far less often than it is kept (docs/benchmarks.md). */
        text = t && cm_pack(t, strlen(t), &p, &plen) == 0 ? rtext_bytes(p, plen, true) : NULL;
        free(p);
        free(t);
    }
    if (!text)
        goto fail;
    set_view(e, o);
    json_decref(o);
    e->unchecked = false;

    *changed = !e->has_status || e->status != st;
    *old_status = e->status;
    rtext_unref(e->report);
    e->report = text;
    e->report_on_disk = false;
    free(e->seen);
    e->seen = seen;
    e->seen_count = f->count;
    e->last_probe = now;
    e->last_success = last_success;
    e->failures = failed ? e->failures + 1 : 0;
    e->status = st;
    e->status_since = since;
    e->has_status = true;
    return 0;
fail:
    json_decref(o);
    free(seen);
    return -ENOMEM;
}

void cm_state_set_posture(struct cm_state_entry *e, struct cm_posture *p, int64_t at)
{
    cm_posture_free(e->posture);
    e->posture = p;
    e->posture_at = p ? at : 0;
}

/* ---- Posture in the state file ---- */

static json_t *tri_array(const enum cm_tri *v, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_integer(v[i]));
    return a;
}

json_t *cm_posture_to_state_json(const struct cm_posture *p)
{
    return json_pack("{s:o, s:o, s:i, s:i, s:I, s:i, s:i, s:i, s:I, s:f}", "version",
                     tri_array(p->version, CM_PV_COUNT), "weak", tri_array(p->weak, CM_WEAK_COUNT),
                     "forward_secrecy", (int)p->forward_secrecy, "dhe", (int)p->dhe, "dh_bits",
                     (json_int_t)p->dh_bits, "dh_group", (int)p->dh_group, "aead", (int)p->aead,
                     "secure_renegotiation", (int)p->secure_renegotiation, "handshakes",
                     (json_int_t)p->handshakes, "elapsed_ms", p->elapsed_ms);
}

static int tri_from(json_t *j, enum cm_tri *out)
{
    json_int_t v;

    if (!json_is_integer(j) || (v = json_integer_value(j)) < CM_TRI_UNKNOWN || v > CM_TRI_YES)
        return -1;
    *out = (enum cm_tri)v;
    return 0;
}

int cm_posture_from_state_json(json_t *j, struct cm_posture *out)
{
    json_t *ver = json_object_get(j, "version"), *weak = json_object_get(j, "weak");
    json_t *bits = json_object_get(j, "dh_bits"), *hs = json_object_get(j, "handshakes");

    memset(out, 0, sizeof(*out));
    if (!json_is_object(j) || json_array_size(ver) != CM_PV_COUNT ||
        json_array_size(weak) != CM_WEAK_COUNT || !json_is_integer(bits) || !json_is_integer(hs))
        return CM_ESTATE;
    for (size_t i = 0; i < CM_PV_COUNT; i++)
        if (tri_from(json_array_get(ver, i), &out->version[i]) < 0)
            return CM_ESTATE;
    for (size_t i = 0; i < CM_WEAK_COUNT; i++)
        if (tri_from(json_array_get(weak, i), &out->weak[i]) < 0)
            return CM_ESTATE;
    if (tri_from(json_object_get(j, "forward_secrecy"), &out->forward_secrecy) < 0 ||
        tri_from(json_object_get(j, "dhe"), &out->dhe) < 0 ||
        tri_from(json_object_get(j, "secure_renegotiation"), &out->secure_renegotiation) < 0)
        return CM_ESTATE;
    /* dh_group and aead came later: a state file written before them lacks them (unknown). */
    json_t *group = json_object_get(j, "dh_group"), *aead = json_object_get(j, "aead");
    if (group && (!json_is_integer(group) || json_integer_value(group) < CM_DH_GROUP_NONE ||
                  json_integer_value(group) > CM_DH_GROUP_COMPOSITE))
        return CM_ESTATE;
    if (aead && tri_from(aead, &out->aead) < 0)
        return CM_ESTATE;
    out->dh_group = group ? (enum cm_dh_group)json_integer_value(group) : CM_DH_GROUP_NONE;
    out->dh_bits = (unsigned)json_integer_value(bits);
    out->handshakes = (unsigned)json_integer_value(hs);
    out->elapsed_ms = json_number_value(json_object_get(j, "elapsed_ms"));
    return 0;
}

/* ---- Serialising ---- */

/* The entry's fields as a JSON object text without its closing brace, so that the report
 * text, which is already JSON, can follow without being parsed again. */
static json_t *entry_meta(const struct cm_state_entry *e)
{
    json_t *seen = json_array(), *o;

    for (size_t i = 0; seen && i < e->seen_count; i++)
        json_array_append_new(seen, json_pack("[s, i, I]", e->seen[i].id, e->seen[i].position,
                                              (json_int_t)e->seen[i].first_seen));
    o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:i, s:s?, s:I, s:o}", "name", e->name, "owner",
                  e->owner, "last_probe", (json_int_t)e->last_probe, "last_success",
                  (json_int_t)e->last_success, "status_since", (json_int_t)e->status_since,
                  "failures", (int)e->failures, "status",
                  e->has_status ? cm_status_name(e->status) : NULL, "posture_at",
                  (json_int_t)e->posture_at, "seen", seen);
    if (o && e->posture)
        json_object_set_new(o, "posture", cm_posture_to_state_json(e->posture));
    return o;
}

/* The fields' text without the closing brace, shared (an rtext), or NULL on failure. */
static char *meta_text(const struct cm_state_entry *e)
{
    json_t *m = entry_meta(e);
    char *t = m ? json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    char *r = NULL;

    json_decref(m);
    if (t) {
        t[strlen(t) - 1] = '\0'; /* the closing brace: the report follows */
        r = rtext_new(t);
    }
    free(t);
    return r;
}

/* Writes path atomically with what emit writes into fp: a temporary file beside it, fsync,
 * rename, fsync of the directory. */
static int write_atomic(const char *path, int (*emit)(FILE *fp, const void *arg), const void *arg,
                        char *err, size_t errlen)
{
    char tmp[4096], dir[4096];
    const char *slash = strrchr(path, '/');
    FILE *fp;
    int fd, rc = 0;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
        snprintf(err, errlen, "state file path too long");
        return -ENAMETOOLONG;
    }
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return rc;
    }
    if (!(fp = fdopen(fd, "w"))) {
        rc = -errno;
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return rc;
    }
    setvbuf(fp, NULL, _IOFBF, 1 << 16);
    if (emit(fp, arg) < 0 || fflush(fp) != 0) {
        rc = errno ? -errno : -EIO;
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    }
    if (rc == 0 && fsync(fd) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot sync %s: %s", tmp, strerror(errno));
    }
    if (fclose(fp) != 0 && rc == 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot close %s: %s", tmp, strerror(errno));
    }
    if (rc == 0 && rename(tmp, path) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    }
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    /* The rename is durable only once the directory is synced. */
    if (slash) {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        if (n < sizeof(dir)) {
            memcpy(dir, path, n);
            dir[n] = '\0';
            if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
                fsync(fd);
                close(fd);
            }
        }
    }
    return 0;
}

struct plain {
    const char *buf;
    size_t len;
};

static int emit_plain(FILE *fp, const void *arg)
{
    const struct plain *p = arg;

    if (p->len && fwrite(p->buf, 1, p->len, fp) != p->len)
        return errno ? -errno : -EIO;
    return 0;
}

int cm_state_write_file(const char *path, const char *buf, size_t len, char *err, size_t errlen)
{
    struct plain p = {buf, len};

    errno = 0;
    return write_atomic(path, emit_plain, &p, err, errlen);
}

/* ---- Snapshots ---- */

struct snap_item {
    char *meta;   /* the entry's fields as JSON without the closing brace */
    char *report; /* shared report text (a reference), or NULL */
};

struct cm_state_snapshot {
    time_t now;
    size_t count;
    struct snap_item *items;
};

void cm_state_snapshot_free(struct cm_state_snapshot *snap)
{
    if (!snap)
        return;
    for (size_t i = 0; i < snap->count; i++) {
        rtext_unref(snap->items[i].meta);
        rtext_unref(snap->items[i].report);
    }
    free(snap->items);
    free(snap);
}

int cm_state_snapshot(const struct cm_state *s, time_t now, struct cm_state_snapshot **out)
{
    struct cm_state_snapshot *snap = calloc(1, sizeof(*snap));

    if (!snap || !(snap->items = calloc(s->count ? s->count : 1, sizeof(*snap->items)))) {
        free(snap);
        return -ENOMEM;
    }
    snap->now = now;
    for (size_t i = 0; i < s->count; i++) {
        char *t = meta_text(s->entries[i]);
        if (!t) {
            cm_state_snapshot_free(snap);
            return -ENOMEM;
        }
        snap->items[i].meta = t;
        snap->items[i].report = rtext_ref(s->entries[i]->report);
        snap->count++;
    }
    *out = snap;
    return 0;
}

static int emit_snapshot(FILE *fp, const void *arg)
{
    const struct cm_state_snapshot *snap = arg;

    if (fprintf(fp, "{\"version\":%d,\"saved_at\":%lld,\"targets\":[\n", CM_STATE_VERSION,
                (long long)snap->now) < 0)
        return -1;
    for (size_t i = 0; i < snap->count; i++) {
        const struct snap_item *it = &snap->items[i];
        char *text = NULL;
        size_t len;
        if (it->report && cm_state_report_text(it->report, &text, &len) < 0)
            return -1;
        if (fputs(i ? ",\n" : "", fp) < 0 || fputs(it->meta, fp) < 0 ||
            (text && (fputs(",\"report\":", fp) < 0 || fputs(text, fp) < 0)) ||
            fputc('}', fp) == EOF) {
            free(text);
            return -1;
        }
        free(text);
    }
    return fputs("\n]}\n", fp) < 0 ? -1 : 0;
}

int cm_state_snapshot_write(const struct cm_state_snapshot *snap, const char *path, char *err,
                            size_t errlen)
{
    errno = 0;
    return write_atomic(path, emit_snapshot, snap, err, errlen);
}

int cm_state_serialize(const struct cm_state *s, time_t now, char **out, size_t *len)
{
    struct cm_state_snapshot *snap;
    char *buf = NULL;
    size_t n = 0;
    FILE *fp;
    int rc;

    if ((rc = cm_state_snapshot(s, now, &snap)) < 0)
        return rc;
    if (!(fp = open_memstream(&buf, &n))) {
        cm_state_snapshot_free(snap);
        return -ENOMEM;
    }
    rc = emit_snapshot(fp, snap);
    if (fclose(fp) != 0 || rc < 0) {
        free(buf);
        rc = -ENOMEM;
    } else {
        *out = buf;
        *len = n;
    }
    cm_state_snapshot_free(snap);
    return rc;
}

/* ---- Loading ---- */

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return CM_ESTATE;
}

static const char *json_type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* A member of entry name that is present but of the wrong type (or out of range) is ignored,
 * and said so: a hand edit gone wrong must not silently become 0 or "never probed" without
 * a trace. The rest of the entry still loads. */
static void ignore_field(const char *name, const char *field, const json_t *v, const char *want)
{
    cm_log_warn("state", "target=%s field=%s: %s, not %s: ignored", name, field,
                json_type_name(v), want);
}

/* Integer member field of entry t when it is an integer within [min, max]; 0 when it is
 * absent, and 0 with a warning (ignore_field) otherwise. */
static json_int_t int_field(const char *name, json_t *t, const char *field, json_int_t min,
                            json_int_t max)
{
    json_t *v = json_object_get(t, field);

    if (!v)
        return 0;
    if (!json_is_integer(v)) {
        ignore_field(name, field, v, "an integer");
        return 0;
    }
    if (json_integer_value(v) < min || json_integer_value(v) > max) {
        cm_log_warn("state", "target=%s field=%s: %lld is out of range [%lld, %lld]: ignored",
                    name, field, (long long)json_integer_value(v), (long long)min,
                    (long long)max);
        return 0;
    }
    return json_integer_value(v);
}

/* The string member field of entry t, or NULL when absent or (with a warning) not a string. */
static const char *str_field(const char *name, json_t *t, const char *field)
{
    json_t *v = json_object_get(t, field);

    /* null is how the state file writes "none" (a status before a first result). */
    if (v && !json_is_string(v) && !json_is_null(v))
        ignore_field(name, field, v, "a string");
    return json_string_value(v);
}

/* raw, when not NULL, is the report's own text as the file has it (the line layout puts it
 * last): kept as it is, which spares dumping the parsed report again. */
static int load_entry(struct cm_state *s, json_t *t, const char *raw, size_t idx, char *err,
                      size_t errlen)
{
    const char *name = json_string_value(json_object_get(t, "name"));
    const char *owner, *status;
    json_t *report = json_object_get(t, "report"), *seen = json_object_get(t, "seen");
    json_t *posture = json_object_get(t, "posture");
    struct cm_state_entry *e;
    size_t i;
    json_t *v;

    if (!json_is_object(t) || !name || !*name || !json_is_array(seen))
        return fail(err, errlen, "targets[%zu] is not a state entry", idx);
    owner = str_field(name, t, "owner");
    status = str_field(name, t, "status");
    if (report && !json_is_object(report)) {
        ignore_field(name, "report", report, "an object");
        report = NULL;
    }
    if (cm_state_get(s, name))
        return fail(err, errlen, "targets[%zu]: '%s' appears twice", idx, name);
    if (!(e = cm_state_put(s, name, owner)))
        return -ENOMEM;
    e->last_probe = int_field(name, t, "last_probe", 0, INT64_MAX);
    e->last_success = int_field(name, t, "last_success", 0, INT64_MAX);
    e->status_since = int_field(name, t, "status_since", 0, INT64_MAX);
    e->failures = (unsigned)int_field(name, t, "failures", 0, UINT_MAX);
    e->posture_at = int_field(name, t, "posture_at", 0, INT64_MAX);
    if (status) {
        for (int st = CM_STATUS_OK; st <= CM_STATUS_UNKNOWN; st++)
            if (!strcmp(status, cm_status_name((enum cm_status)st))) {
                e->status = (enum cm_status)st;
                e->has_status = true;
            }
        if (!e->has_status)
            return fail(err, errlen, "targets[%zu]: unknown status '%s'", idx, status);
    }
    if (json_is_object(report) && raw) {
        if (!(e->report = rtext_new(raw)))
            return -ENOMEM;
    } else if (json_is_object(report)) {
        char *txt = json_dumps(report, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        e->report = txt ? rtext_new(txt) : NULL;
        free(txt);
        if (!e->report)
            return -ENOMEM;
    }
    if (json_array_size(seen) && !(e->seen = calloc(json_array_size(seen), sizeof(*e->seen))))
        return -ENOMEM;
    json_array_foreach(seen, i, v)
    {
        const struct cm_finding_def *d = cm_finding_lookup(json_string_value(json_array_get(v, 0)));
        if (!json_is_array(v) || !json_is_string(json_array_get(v, 0)) ||
            !json_is_integer(json_array_get(v, 1)) || !json_is_integer(json_array_get(v, 2))) {
            cm_log_warn("state", "target=%s field=seen[%zu]: not [id, position, first_seen]: "
                        "ignored", name, i);
            continue;
        }
        if (!d)
            continue; /* an id this version no longer knows: forget it */
        e->seen[e->seen_count].id = d->id;
        e->seen[e->seen_count].position = (int)json_integer_value(json_array_get(v, 1));
        e->seen[e->seen_count].first_seen = json_integer_value(json_array_get(v, 2));
        e->seen_count++;
    }
    if (posture) {
        struct cm_posture *p = calloc(1, sizeof(*p));
        if (!p)
            return -ENOMEM;
        if (cm_posture_from_state_json(posture, p) < 0) {
            free(p);
            return fail(err, errlen, "targets[%zu]: malformed posture", idx);
        }
        cm_state_set_posture(e, p, e->posture_at);
    }
    if (json_is_object(report))
        set_view(e, report);
    return 0;
}

static void empty(struct cm_state *s)
{
    struct cm_state_entry *const *es;
    size_t n;

    while ((es = cm_state_entries(s, &n)), n > 0)
        cm_state_remove(s, es[n - 1]);
}

/* The whole document as one tree: for a state file not in the layout certmon writes (edited
 * by hand, pretty-printed). Costs about ten times the file's size in memory while it runs. */
static int load_tree(struct cm_state *s, const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root, *targets, *t;
    size_t i;
    int rc = 0;

    if (!(root = json_load_file(path, 0, &je))) {
        if (je.line < 0)
            return fail(err, errlen, "cannot read %s: %s", path, je.text);
        return fail(err, errlen, "%s:%d: not valid JSON: %s", path, je.line, je.text);
    }
    targets = json_object_get(root, "targets");
    if (!json_is_object(root) || !json_is_array(targets))
        rc = fail(err, errlen, "%s is not a certmon state file", path);
    else if (json_integer_value(json_object_get(root, "version")) != CM_STATE_VERSION)
        rc = fail(err, errlen, "%s has state version %lld; this certmon reads version %d", path,
                  (long long)json_integer_value(json_object_get(root, "version")),
                  CM_STATE_VERSION);
    json_array_foreach(targets, i, t)
    {
        if (rc < 0)
            break;
        rc = load_entry(s, t, NULL, i, err, errlen);
    }
    json_decref(root);
    return rc;
}

/* Where the value of the entry's last member begins in line (len bytes: one entry object,
 * compact, as the line layout writes it) when that member is "report", or NULL. The JSON
 * structure is followed, not searched: the same characters may occur earlier in the line, as a
 * key inside another member's value, or as a duplicate key (jansson keeps the last value).
 * NULL as well for a line with a NUL byte, which jansson 2.14 lets pass after a number but
 * which would cut the text short. */
static char *report_text(char *line, size_t len)
{
    char *found = NULL;
    int depth = 0;

    for (size_t i = 0; i < len; i++) {
        switch (line[i]) {
        case '"':
            if (depth == 1 && i > 0 && line[i - 1] == ',' &&
                !strncmp(line + i, "\"report\":", strlen("\"report\":")))
                found = line + i + strlen("\"report\":");
            /* Skip the string: a backslash escapes the next character. */
            for (i++; i < len && line[i] != '"'; i++)
                if (line[i] == '\\')
                    i++;
            break;
        case ',':
            if (depth == 1)
                found = NULL; /* another member follows */
            break;
        case '{':
        case '[':
            depth++;
            break;
        case '}':
        case ']':
            depth--;
            break;
        case '\0':
            return NULL;
        }
    }
    return depth == 0 ? found : NULL;
}

/* Whether the last member of object t is "report" (jansson keeps members in order). */
static bool report_last(json_t *t)
{
    const char *last = NULL;

    for (void *it = json_object_iter(t); it; it = json_object_iter_next(t, it))
        last = json_object_iter_key(it);
    return last && !strcmp(last, "report");
}

/* The layout cm_state_serialize writes: a header line, one entry per line (each followed by a
 * comma but the last), and a closing line ("]}", or "]," when members follow the targets, as
 * in `certmon state export --json`). Each entry is parsed on its own, so that loading
 * ten thousand entries never holds them all as one tree. Returns 1 when the file is not in
 * that layout (nothing loaded), else as cm_state_load. */
static int load_lines(struct cm_state *s, FILE *fp, const char *path, char *err, size_t errlen)
{
    char *line = NULL;
    size_t cap = 0, idx = 0, lineno = 1;
    ssize_t len;
    int version = 0, consumed = 0, rc = 1;
    long long saved = 0;
    bool closed = false, comma = false; /* comma: the entry line before ended with one */
    bool more = false; /* the targets ended with "],": members after them, not read */

    if ((len = getline(&line, &cap, fp)) <= 0 ||
        sscanf(line, "{\"version\":%d,\"saved_at\":%lld,\"targets\":[%n", &version, &saved,
               &consumed) != 2 ||
        consumed == 0 || (line[consumed] != '\n' && line[consumed] != '\0')) {
        free(line);
        return 1;
    }
    if (version != CM_STATE_VERSION) {
        free(line);
        return fail(err, errlen, "%s has state version %d; this certmon reads version %d", path,
                    version, CM_STATE_VERSION);
    }
    rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, fp)) >= 0) {
        json_error_t je;
        json_t *t;
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (closed) {
            if (len > 0 && !more)
                rc = fail(err, errlen, "%s:%zu: text after the end of the state", path, lineno);
            continue;
        }
        if (len == 0)
            continue;
        /* Lines that are not one entry each, or commas out of place, may still be JSON (an
         * entry split by a hand edit) or not: the whole-tree parse tells. */
        /* "]," ends the targets of a document with more members (`certmon state export
         * --json` adds the alerts and the outbox, which a state does not take): the rest is
         * not read, so that importing an export is read line by line too. */
        if (!strcmp(line, "]}") || !strncmp(line, "],", 2)) {
            if (comma) {
                rc = 1;
                break;
            }
            closed = true;
            more = line[1] == ',';
            continue;
        }
        if (idx > 0 && !comma) {
            rc = 1;
            break;
        }
        if ((comma = line[len - 1] == ','))
            line[--len] = '\0';
        if (!(t = json_loadb(line, (size_t)len, 0, &je))) {
            rc = 1;
            break;
        }
        /* The report is the entry's last member: its text runs from after the key to the
         * entry's closing brace. */
        char *raw = line[len - 1] == '}' && report_last(t) ? report_text(line, (size_t)len) : NULL;
        if (raw)
            line[len - 1] = '\0';
        rc = load_entry(s, t, raw, idx++, err, errlen);
        json_decref(t);
    }
    if (rc == 0 && ferror(fp))
        rc = fail(err, errlen, "cannot read %s: %s", path, strerror(errno));
    else if (rc == 0 && !closed)
        rc = fail(err, errlen, "%s:%zu: the state ends early (a write cut short?)", path, lineno);
    if (rc == 1)
        empty(s);
    free(line);
    return rc;
}

int cm_state_load(struct cm_state *s, const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "re");
    int rc;

    if (!fp) {
        if (errno == ENOENT)
            return 0;
        return fail(err, errlen, "cannot read %s: %s", path, strerror(errno));
    }
    rc = load_lines(s, fp, path, err, errlen);
    fclose(fp);
    if (rc == 1)
        rc = load_tree(s, path, err, errlen);
    if (rc < 0) {
        /* All or nothing: a half-loaded state would mix history with guesses. */
        empty(s);
        if (rc == -ENOMEM)
            snprintf(err, errlen, "out of memory loading %s", path);
    }
    return rc;
}

int cm_state_move_aside(const char *path, time_t now, char *moved, size_t movedlen)
{
    if (snprintf(moved, movedlen, "%s.corrupt-%lld", path, (long long)now) >= (int)movedlen)
        return -ENAMETOOLONG;
    return rename(path, moved) < 0 ? -errno : 0;
}

/* ---- The store's rows ---- */

void cm_state_set_drop_checked(struct cm_state *s, bool on)
{
    s->drop_checked = on;
}

bool cm_state_drop_report(struct cm_state_entry *e, const char *report)
{
    if (!report || e->report != report)
        return false;
    rtext_unref(e->report);
    e->report = NULL;
    e->report_on_disk = true;
    return true;
}

void cm_state_take_report(struct cm_state_entry *e, char *report)
{
    if (!report)
        return;
    if (e->report) {
        rtext_unref(report);
        return;
    }
    e->report = report;
    e->report_on_disk = false;
}

bool cm_state_has_report(const struct cm_state_entry *e)
{
    return e->report || e->report_on_disk;
}

char *cm_state_report_from(const void *data, size_t len, bool packed)
{
    return rtext_bytes(data, len, packed);
}

char *cm_state_report_ref(const struct cm_state_entry *e)
{
    return rtext_ref(e->report);
}

void cm_state_report_unref(char *report)
{
    rtext_unref(report);
}

const void *cm_state_report_data(const char *report, size_t *len, bool *packed)
{
    struct rtext *r = rtext_of((char *)(uintptr_t)report);

    *len = r->len;
    *packed = r->packed;
    return r->s;
}

int cm_state_report_text(const char *report, char **out, size_t *len)
{
    struct rtext *r;
    int rc;

    *out = NULL;
    *len = 0;
    if (!report)
        return 0;
    r = rtext_of((char *)(uintptr_t)report);
    if (!r->packed) {
        if (!(*out = strdup(r->s)))
            return -ENOMEM;
        *len = r->len;
        return 0;
    }
    rc = cm_unpack((const unsigned char *)r->s, r->len, out, len);
    /* JSON never holds a NUL: a packed text that does is as damaged as one that fails. */
    if (rc == 0 && strlen(*out) != *len) {
        free(*out);
        *out = NULL;
        rc = -EINVAL;
    }
    return rc;
}

char *cm_state_seen_text(const struct cm_state_entry *e)
{
    json_t *seen = json_array();
    char *t;

    for (size_t i = 0; seen && i < e->seen_count; i++)
        if (json_array_append_new(seen, json_pack("[s, i, I]", e->seen[i].id, e->seen[i].position,
                                                  (json_int_t)e->seen[i].first_seen)) < 0) {
            json_decref(seen);
            return NULL;
        }
    t = seen ? json_dumps(seen, JSON_COMPACT) : NULL;
    json_decref(seen);
    return t;
}

char *cm_state_posture_text(const struct cm_state_entry *e)
{
    json_t *p = e->posture ? cm_posture_to_state_json(e->posture) : NULL;
    char *t = p ? json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

    json_decref(p);
    return t;
}

/* Parses the JSON text field of a row; NULL (with a warning) when it is not what want says. */
static json_t *row_json(const char *name, const char *field, const char *text, bool array)
{
    json_error_t je;
    json_t *j = text ? json_loads(text, 0, &je) : NULL;

    if (text && (!j || (array ? !json_is_array(j) : !json_is_object(j)))) {
        cm_log_warn("state", "target=%s field=%s: not a JSON %s: ignored", name, field,
                    array ? "array" : "object");
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Parses a first-seen list in the form certmon writes it (cm_state_seen_text: compact, ids
 * without escapes) into a new array; ids this version no longer knows are dropped, as the
 * general loader drops them. Returns the count, or -1 for anything else (the general loader
 * then reads the row, with its warnings) and -2 when out of memory. */
static long parse_seen_fast(const char *p, struct cm_seen **out)
{
    struct cm_seen *v = NULL;
    size_t n = 0, cap = 0;

    *out = NULL;
    if (*p++ != '[')
        return -1;
    if (*p == ']' && !p[1])
        return 0;
    for (;;) {
        char id[128];
        size_t l = 0;
        long long pos, first;
        char *end;
        if (p[0] != '[' || p[1] != '"')
            goto bad;
        for (p += 2; *p && *p != '"' && *p != '\\' && l < sizeof(id) - 1; p++)
            id[l++] = *p;
        id[l] = '\0';
        if (*p++ != '"' || *p++ != ',')
            goto bad;
        errno = 0;
        pos = strtoll(p, &end, 10);
        if (end == p || *end != ',' || errno || pos < INT_MIN || pos > INT_MAX)
            goto bad;
        p = end + 1;
        first = strtoll(p, &end, 10);
        if (end == p || *end != ']' || errno)
            goto bad;
        p = end + 1;
        const struct cm_finding_def *d = cm_finding_lookup(id);
        if (d) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 4;
                struct cm_seen *nv = realloc(v, ncap * sizeof(*nv));
                if (!nv) {
                    free(v);
                    return -2;
                }
                v = nv;
                cap = ncap;
            }
            v[n].id = d->id;
            v[n].position = (int)pos;
            v[n].first_seen = first;
            n++;
        }
        if (*p == ']' && !p[1])
            break;
        if (*p++ != ',')
            goto bad;
    }
    *out = v;
    return (long)n;
bad:
    free(v);
    return -1;
}

/* The common row, restored without building a JSON entry: plain columns in range, a known
 * status, a first-seen list as certmon writes it, a posture that loads. Returns 0, -ENOMEM,
 * or 1 when the row needs the general loader (which says what is wrong with it). */
static int restore_fast(struct cm_state *s, const struct cm_state_row *row)
{
    struct cm_state_entry *e;
    struct cm_seen *seen = NULL;
    struct cm_posture *p = NULL;
    enum cm_status status = CM_STATUS_OK;
    bool has_status = false;
    long nseen = 0;

    if (row->last_probe < 0 || row->last_success < 0 || row->status_since < 0 ||
        row->posture_at < 0 || row->failures < 0 || row->failures > UINT_MAX)
        return 1;
    if (row->status) {
        for (int st = CM_STATUS_OK; st <= CM_STATUS_UNKNOWN && !has_status; st++)
            if (!strcmp(row->status, cm_status_name((enum cm_status)st))) {
                status = (enum cm_status)st;
                has_status = true;
            }
        if (!has_status)
            return 1;
    }
    if (row->seen && (nseen = parse_seen_fast(row->seen, &seen)) < 0)
        return nseen == -2 ? -ENOMEM : 1;
    if (row->posture) {
        json_t *j = json_loads(row->posture, 0, NULL);
        if (!(p = calloc(1, sizeof(*p))) || !j || cm_posture_from_state_json(j, p) < 0) {
            bool nomem = !p;
            json_decref(j);
            free(p);
            free(seen);
            return nomem ? -ENOMEM : 1;
        }
        json_decref(j);
    }
    if (!(e = cm_state_put(s, row->name, row->owner))) {
        free(seen);
        free(p);
        return -ENOMEM;
    }
    e->last_probe = row->last_probe;
    e->last_success = row->last_success;
    e->status_since = row->status_since;
    e->failures = (unsigned)row->failures;
    e->status = status;
    e->has_status = has_status;
    e->seen = seen;
    e->seen_count = (size_t)nseen;
    if (p)
        cm_state_set_posture(e, p, row->posture_at);
    e->posture_at = row->posture_at;
    return 0;
}

int cm_state_restore(struct cm_state *s, const struct cm_state_row *row, size_t idx, char *err,
                     size_t errlen)
{
    json_t *t, *seen, *posture;
    struct cm_state_entry *e;
    int rc;

    if (!row->name || !*row->name)
        return fail(err, errlen, "row %zu has no name", idx);
    if (cm_state_get(s, row->name))
        return fail(err, errlen, "row %zu: '%s' appears twice", idx, row->name);
    /* A hundred thousand rows at start: the common row takes the short way (a JSON entry per
     * row and a parse of each list cost most of a second). */
    if ((rc = restore_fast(s, row)) < 0)
        return rc;
    if (rc == 0) {
        e = cm_state_get(s, row->name);
        goto report;
    }
    seen = row_json(row->name, "seen", row->seen, true);
    posture = row_json(row->name, "posture", row->posture, false);
    /* The entry as the state file has it, so that one loader checks both; the report apart. */
    t = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:o}", "name", row->name, "last_probe",
                  (json_int_t)row->last_probe, "last_success", (json_int_t)row->last_success,
                  "status_since", (json_int_t)row->status_since, "failures",
                  (json_int_t)row->failures, "posture_at", (json_int_t)row->posture_at, "seen",
                  seen ? seen : json_array());
    if (!t || (row->owner && json_object_set_new(t, "owner", json_string(row->owner)) < 0) ||
        (row->status && json_object_set_new(t, "status", json_string(row->status)) < 0) ||
        (posture && json_object_set_new(t, "posture", posture) < 0)) {
        json_decref(t);
        return -ENOMEM;
    }
    rc = load_entry(s, t, NULL, idx, err, errlen);
    json_decref(t);
    e = cm_state_get(s, row->name);
report:
    if (rc == 0 && row->report && row->report_packed &&
        !(e->report = rtext_bytes(row->report, row->report_len, true)))
        rc = -ENOMEM;
    else if (rc == 0 && row->report && !row->report_packed && !(e->report = rtext_new(row->report)))
        rc = -ENOMEM;
    if (rc < 0) {
        /* This row only: the entry it began goes. */
        if (e)
            cm_state_remove(s, e);
        return rc;
    }
    e->unchecked = e->report != NULL;
    return 0;
}

/* A report kept as JSON text (from a JSON state or a database of schema 2) is packed once it
 * is known to parse: memory holds packed reports only, whatever the start read. Out of
 * memory leaves the text. */
static void repack(struct cm_state_entry *e)
{
    struct rtext *r = rtext_of(e->report);
    unsigned char *p = NULL;
    size_t plen;
    char *packed;

    if (r->packed || cm_pack(r->s, r->len, &p, &plen) < 0)
        return;
    if ((packed = rtext_bytes(p, plen, true))) {
        rtext_unref(e->report);
        e->report = packed;
    }
    free(p);
}

/* The parsed report of a reference; NULL when it does not unpack or parse. */
static json_t *report_json(const char *ref)
{
    char *text;
    size_t len;
    json_t *j;

    if (cm_state_report_text(ref, &text, &len) < 0 || !text)
        return NULL;
    j = json_loadb(text, len, 0, NULL);
    free(text);
    return j;
}

bool cm_state_check_reports(struct cm_state *s, size_t max)
{
    size_t done = 0;

    for (; s->check_from < s->count && done < max; s->check_from++) {
        struct cm_state_entry *e = s->entries[s->check_from];
        json_t *r;
        if (!e->unchecked)
            continue;
        done++;
        e->unchecked = false;
        r = report_json(e->report);
        if (!json_is_object(r)) {
            cm_log_warn("state", "target=%s field=report: not a JSON object: ignored", e->name);
            rtext_unref(e->report);
            e->report = NULL;
        } else if (s->drop_checked) {
            set_view(e, r);
            rtext_unref(e->report);
            e->report = NULL;
            e->report_on_disk = true;
        } else {
            set_view(e, r);
            repack(e);
        }
        json_decref(r);
    }
    return s->check_from >= s->count;
}

void cm_state_clear(struct cm_state *s)
{
    empty(s);
}
