/* Alert state machine. Three indexes over one set of alert records:
 *
 * - targets: a chained hash table by name; each target keeps its alerts in a doubly linked
 *   list (oldest first), so observe() and forget() touch that target's alerts only;
 * - alerts: a chained hash table by (target, finding id, position), so observe() finds the
 *   alert of a finding in O(1);
 * - two binary min-heaps: pending alerts by started_at, fired alerts by notified_at (the time
 *   of their last notification). The heaps hold base times, not due times, because for_s and
 *   repeat_s come with each call (a reload may change them): within one call every pending
 *   alert is due at started_at + for_s and every fired one at notified_at + repeat_s, so the
 *   order by base time is the order by due time whatever the options. Ties are broken by
 *   creation order (seq) so that events come out in a reproducible order.
 *
 * Chained tables stay correct without growing: a failed resize only lengthens chains. Both
 * heaps always have room for every alert (reserved before alerts are added), so moving an
 * alert from one heap to the other never allocates and never fails. */
#include "certmon/notify/alert.h"
#include "certmon/base/error.h"
#include "certmon/base/text.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

struct cm__alert;

struct cm__target {
    struct cm__target *hnext; /* bucket chain */
    uint64_t hash;
    struct cm__alert *head, *tail; /* this target's alerts, oldest first */
    size_t count;
    char name[]; /* owned copy, allocated with the record */
};

struct cm__alert {
    struct cm__alert *hnext;         /* bucket chain */
    struct cm__alert *tprev, *tnext; /* the target's list */
    struct cm__target *t;
    const char *id; /* catalogue id, static */
    uint64_t hash;
    uint64_t seq;   /* creation order: heap tie-break and JSON order */
    uint64_t epoch; /* the observe() round that last saw the finding */
    int position;
    enum cm_severity severity;
    bool fired;
    bool fresh; /* created in the current observe() round and not set up yet */
    char *message;
    int64_t started_at;
    int64_t fired_at;    /* when fired */
    int64_t notified_at; /* when fired: time of the last FIRING, CHANGED or REPEAT */
    size_t heap_pos;     /* index in the heap the alert is in */
    /* Scratch of one observe() round: the findings that map to this alert, merged. */
    enum cm_severity obs_sev;
    int64_t obs_first;
    size_t obs_idx; /* the first of them */
    size_t obs_n;
};

struct cm__heap {
    struct cm__alert **v;
    size_t n, cap;
    bool by_notified; /* key: notified_at (fired alerts), else started_at (pending) */
};

struct cm_alerts {
    struct cm__target **tb; /* target buckets; tb_len is 0 or a power of two */
    size_t tb_len, tcount;
    struct cm__alert **ab; /* alert buckets; ab_len is 0 or a power of two */
    size_t ab_len, count;
    struct cm__heap pending, firing;
    uint64_t seq, epoch;
    cm_alert_change on_change; /* told of every change of a row (persistence), or NULL */
    void *change_arg;
};

/* ---- Time arithmetic: saturating, so that huge options cannot overflow ---- */

static int64_t sat_add(int64_t t, int64_t d)
{
    if (d > 0 && t > INT64_MAX - d)
        return INT64_MAX;
    if (d < 0 && t < INT64_MIN - d)
        return INT64_MIN;
    return t + d;
}

static void opts_get(const struct cm_alert_opts *o, int64_t *for_s, int64_t *repeat_s)
{
    *for_s = o && o->for_s > 0 ? o->for_s : 0;
    *repeat_s = o && o->repeat_s > 0 ? o->repeat_s : 0;
}

/* ---- Hashing ---- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t hash_str(const char *s)
{
    return mix64(cm_fnv1a_str(s));
}

static uint64_t hash_alert(const struct cm__target *t, const char *id, int position)
{
    return mix64(t->hash ^ mix64(hash_str(id) + (uint64_t)(int64_t)position));
}

/* Ids are static catalogue strings, so the pointers usually match; equal text is enough. */
static bool same_id(const char *x, const char *y)
{
    return x == y || strcmp(x, y) == 0;
}

/* Bucket arrays double when the load passes 1. A failed resize is not an error. */
static void targets_grow(struct cm_alerts *a)
{
    size_t n = a->tb_len ? a->tb_len * 2 : 64;
    struct cm__target **nb;

    if (a->tcount < a->tb_len || !(nb = calloc(n, sizeof(*nb))))
        return;
    for (size_t i = 0; i < a->tb_len; i++) {
        for (struct cm__target *t = a->tb[i], *next; t; t = next) {
            next = t->hnext;
            t->hnext = nb[t->hash & (n - 1)];
            nb[t->hash & (n - 1)] = t;
        }
    }
    free(a->tb);
    a->tb = nb;
    a->tb_len = n;
}

static void alerts_grow(struct cm_alerts *a)
{
    size_t n = a->ab_len ? a->ab_len * 2 : 64;
    struct cm__alert **nb;

    if (a->count < a->ab_len || !(nb = calloc(n, sizeof(*nb))))
        return;
    for (size_t i = 0; i < a->ab_len; i++) {
        for (struct cm__alert *al = a->ab[i], *next; al; al = next) {
            next = al->hnext;
            al->hnext = nb[al->hash & (n - 1)];
            nb[al->hash & (n - 1)] = al;
        }
    }
    free(a->ab);
    a->ab = nb;
    a->ab_len = n;
}

/* ---- Targets ---- */

static struct cm__target *target_find(const struct cm_alerts *a, const char *name, uint64_t h)
{
    if (!a->tb_len)
        return NULL;
    for (struct cm__target *t = a->tb[h & (a->tb_len - 1)]; t; t = t->hnext)
        if (t->hash == h && strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

static struct cm__target *target_add(struct cm_alerts *a, const char *name, uint64_t h)
{
    size_t len = strlen(name);
    struct cm__target *t;

    targets_grow(a);
    if (!a->tb_len || !(t = calloc(1, sizeof(*t) + len + 1)))
        return NULL;
    memcpy(t->name, name, len + 1);
    t->hash = h;
    t->hnext = a->tb[h & (a->tb_len - 1)];
    a->tb[h & (a->tb_len - 1)] = t;
    a->tcount++;
    return t;
}

/* Frees an empty target record. */
static void target_remove(struct cm_alerts *a, struct cm__target *t)
{
    struct cm__target **pp = &a->tb[t->hash & (a->tb_len - 1)];

    while (*pp != t)
        pp = &(*pp)->hnext;
    *pp = t->hnext;
    a->tcount--;
    free(t);
}

/* ---- Heaps ---- */

static bool heap_less(const struct cm__heap *h, const struct cm__alert *x,
                      const struct cm__alert *y)
{
    int64_t kx = h->by_notified ? x->notified_at : x->started_at;
    int64_t ky = h->by_notified ? y->notified_at : y->started_at;

    return kx < ky || (kx == ky && x->seq < y->seq);
}

static void heap_set(struct cm__heap *h, size_t i, struct cm__alert *al)
{
    h->v[i] = al;
    al->heap_pos = i;
}

static void heap_up(struct cm__heap *h, size_t i)
{
    struct cm__alert *al = h->v[i];

    while (i > 0 && heap_less(h, al, h->v[(i - 1) / 2])) {
        heap_set(h, i, h->v[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(h, i, al);
}

static void heap_down(struct cm__heap *h, size_t i)
{
    struct cm__alert *al = h->v[i];

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= h->n)
            break;
        if (c + 1 < h->n && heap_less(h, h->v[c + 1], h->v[c]))
            c++;
        if (!heap_less(h, h->v[c], al))
            break;
        heap_set(h, i, h->v[c]);
        i = c;
    }
    heap_set(h, i, al);
}

/* Room for n alerts in all. */
static int heap_reserve(struct cm__heap *h, size_t n)
{
    struct cm__alert **v;
    size_t cap = h->cap ? h->cap : 64;

    if (n <= h->cap)
        return 0;
    if (n > SIZE_MAX / 2 / sizeof(*v))
        return -ENOMEM;
    while (cap < n)
        cap *= 2;
    if (!(v = realloc(h->v, cap * sizeof(*v))))
        return -ENOMEM;
    h->v = v;
    h->cap = cap;
    return 0;
}

/* Never fails: callers reserved room for every alert. */
static void heap_push(struct cm__heap *h, struct cm__alert *al)
{
    heap_set(h, h->n++, al);
    heap_up(h, h->n - 1);
}

static void heap_remove(struct cm__heap *h, struct cm__alert *al)
{
    size_t i = al->heap_pos;

    if (i != --h->n) {
        struct cm__alert *moved = h->v[h->n];

        heap_set(h, i, moved);
        heap_up(h, i);
        heap_down(h, moved->heap_pos);
    }
}

/* The key of al (in h) grew. */
static void heap_later(struct cm__heap *h, struct cm__alert *al)
{
    heap_down(h, al->heap_pos);
}

static int reserve(struct cm_alerts *a, size_t more)
{
    if (more > SIZE_MAX - a->count)
        return -ENOMEM;
    if (heap_reserve(&a->pending, a->count + more) < 0 ||
        heap_reserve(&a->firing, a->count + more) < 0)
        return -ENOMEM;
    return 0;
}

/* ---- Alerts ---- */

static struct cm__alert *alert_find(const struct cm_alerts *a, const struct cm__target *t,
                                    const char *id, int position, uint64_t h)
{
    if (!a->ab_len)
        return NULL;
    for (struct cm__alert *al = a->ab[h & (a->ab_len - 1)]; al; al = al->hnext)
        if (al->hash == h && al->t == t && al->position == position && same_id(al->id, id))
            return al;
    return NULL;
}

/* A new record in the hash table and at the end of t's list, in no heap yet. */
static struct cm__alert *alert_add(struct cm_alerts *a, struct cm__target *t, const char *id,
                                   int position, uint64_t h)
{
    struct cm__alert *al;

    alerts_grow(a);
    if (!a->ab_len || !(al = calloc(1, sizeof(*al))))
        return NULL;
    al->t = t;
    al->id = id;
    al->position = position;
    al->hash = h;
    al->seq = a->seq++;
    al->hnext = a->ab[h & (a->ab_len - 1)];
    a->ab[h & (a->ab_len - 1)] = al;
    al->tprev = t->tail;
    if (t->tail)
        t->tail->tnext = al;
    else
        t->head = al;
    t->tail = al;
    t->count++;
    a->count++;
    return al;
}

/* Unlinks and frees al; in_heap says whether it was put in a heap yet. */
static void alert_remove(struct cm_alerts *a, struct cm__alert *al, bool in_heap)
{
    struct cm__alert **pp = &a->ab[al->hash & (a->ab_len - 1)];
    struct cm__target *t = al->t;

    while (*pp != al)
        pp = &(*pp)->hnext;
    *pp = al->hnext;
    if (al->tprev)
        al->tprev->tnext = al->tnext;
    else
        t->head = al->tnext;
    if (al->tnext)
        al->tnext->tprev = al->tprev;
    else
        t->tail = al->tprev;
    t->count--;
    a->count--;
    if (in_heap)
        heap_remove(al->fired ? &a->firing : &a->pending, al);
    free(al->message);
    free(al);
}

static void emit_event(const struct cm__alert *al, enum cm_alert_kind kind,
                       enum cm_severity previous, int64_t now, cm_alert_emit emit, void *arg)
{
    struct cm_alert_event ev = {
        .kind = kind,
        .target = al->t->name,
        .id = al->id,
        .position = al->position,
        .severity = al->severity,
        .previous = previous,
        .message = al->message ? al->message : "",
        .started_at = al->started_at,
        .fired_at = al->fired_at,
        .at = now,
    };

    if (emit)
        emit(&ev, arg);
}

static void alert_row(const struct cm__alert *al, struct cm_alert_row *r)
{
    r->target = al->t->name;
    r->id = al->id;
    r->position = al->position;
    r->severity = al->severity;
    r->message = al->message ? al->message : "";
    r->started_at = al->started_at;
    r->fired = al->fired;
    r->fired_at = al->fired ? al->fired_at : 0;
    r->notified_at = al->fired ? al->notified_at : 0;
    r->seq = al->seq;
}

/* Tells the change hook that al changed (or, removed, is about to go). */
static void changed(const struct cm_alerts *a, const struct cm__alert *al, bool removed)
{
    struct cm_alert_row r;

    if (!a->on_change)
        return;
    alert_row(al, &r);
    a->on_change(&r, removed, a->change_arg);
}

/* A pending alert (in the pending heap, or in none when fresh) fires at now. The caller
 * reports the change. */
static void alert_fire(struct cm_alerts *a, struct cm__alert *al, bool in_heap, int64_t now,
                       cm_alert_emit emit, void *arg)
{
    if (in_heap)
        heap_remove(&a->pending, al);
    al->fired = true;
    al->fired_at = al->notified_at = now;
    heap_push(&a->firing, al);
    emit_event(al, CM_ALERT_FIRING, al->severity, now, emit, arg);
}

/* ---- Public functions ---- */

int cm_alerts_new(struct cm_alerts **out)
{
    struct cm_alerts *a = calloc(1, sizeof(*a));

    *out = NULL;
    if (!a)
        return -ENOMEM;
    a->firing.by_notified = true;
    *out = a;
    return 0;
}

static void clear_all(struct cm_alerts *a)
{
    for (size_t i = 0; i < a->tb_len; i++) {
        for (struct cm__target *t = a->tb[i], *tn; t; t = tn) {
            tn = t->hnext;
            for (struct cm__alert *al = t->head, *an; al; al = an) {
                an = al->tnext;
                free(al->message);
                free(al);
            }
            free(t);
        }
        a->tb[i] = NULL;
    }
    if (a->ab_len)
        memset(a->ab, 0, a->ab_len * sizeof(*a->ab));
    a->tcount = a->count = 0;
    a->pending.n = a->firing.n = 0;
}

void cm_alerts_on_change(struct cm_alerts *a, cm_alert_change cb, void *arg)
{
    if (!a)
        return;
    a->on_change = cb;
    a->change_arg = arg;
}

void cm_alerts_free(struct cm_alerts *a)
{
    if (!a)
        return;
    clear_all(a);
    free(a->tb);
    free(a->ab);
    free(a->pending.v);
    free(a->firing.v);
    free(a);
}

size_t cm_alerts_count(const struct cm_alerts *a)
{
    return a ? a->count : 0;
}

const char *cm_alert_kind_name(enum cm_alert_kind k)
{
    switch (k) {
    case CM_ALERT_FIRING:
        return "firing";
    case CM_ALERT_CHANGED:
        return "changed";
    case CM_ALERT_REPEAT:
        return "repeat";
    case CM_ALERT_RESOLVED:
        return "resolved";
    }
    return "unknown";
}

/* The message for the findings mapped to al (indexes from al->obs_idx on): the finding's own
 * when there is one, else all of them joined with "; ". *owned gets a malloc'd text or NULL
 * when the result is borrowed from f; NULL is returned only when joining ran out of memory. */
static const char *merged_message(const struct cm_findings *f, struct cm__alert *const *map,
                                  const struct cm__alert *al, char **owned)
{
    size_t len = 0, seen = 0;
    char *buf, *p;

    *owned = NULL;
    if (al->obs_n == 1) {
        const char *m = f->items[al->obs_idx].message;

        return m ? m : "";
    }
    for (size_t i = al->obs_idx; i < f->count && seen < al->obs_n; i++) {
        if (map[i] != al)
            continue;
        len += (f->items[i].message ? strlen(f->items[i].message) : 0) + 2;
        seen++;
    }
    if (!(buf = malloc(len + 1)))
        return NULL;
    p = buf;
    seen = 0;
    for (size_t i = al->obs_idx; i < f->count && seen < al->obs_n; i++) {
        const char *m = f->items[i].message ? f->items[i].message : "";
        size_t ml = strlen(m);

        if (map[i] != al)
            continue;
        if (seen++) {
            memcpy(p, "; ", 2);
            p += 2;
        }
        memcpy(p, m, ml);
        p += ml;
    }
    *p = '\0';
    *owned = buf;
    return buf;
}

/* Sets al's message to m (copied unless owned, which is taken). Returns 1 when it changed, 0
 * when it was m already, or -ENOMEM, the old message kept. */
static int set_message(struct cm__alert *al, const char *m, char *owned)
{
    char *copy;

    if (al->message && strcmp(al->message, m) == 0) {
        free(owned);
        return 0;
    }
    if (!(copy = owned ? owned : strdup(m)))
        return -ENOMEM;
    free(al->message);
    al->message = copy;
    return 1;
}

/* cm_alerts_observe, or with without_cert cm_alerts_observe_without_cert: then only the
 * alerts of failure findings may resolve. */
static int observe(struct cm_alerts *a, const char *target, const struct cm_findings *f,
                   const int64_t *first_seen, const struct cm_alert_opts *o, int64_t now,
                   bool without_cert, cm_alert_emit emit, void *arg)
{
    static const struct cm_findings none = {NULL, 0};
    struct cm__alert *stack_map[32], **map = stack_map;
    struct cm__target *t;
    int64_t for_s, repeat_s;
    uint64_t th, epoch;
    int rc = 0;

    if (!a || !target)
        return -EINVAL;
    if (!f)
        f = &none;
    opts_get(o, &for_s, &repeat_s);
    th = hash_str(target);
    t = target_find(a, target, th);
    if (!t && !f->count)
        return 0;
    if (reserve(a, f->count) < 0)
        return -ENOMEM;
    if (f->count > sizeof(stack_map) / sizeof(stack_map[0]) &&
        !(map = malloc(f->count * sizeof(*map))))
        return -ENOMEM;
    if (!t && !(t = target_add(a, target, th))) {
        rc = -ENOMEM;
        goto out;
    }
    epoch = ++a->epoch;

    /* Map each finding to its alert, made when new; findings with the same id and position
     * (e.g. protocol.legacy for TLS 1.0 and SSL 3.0) merge into one. */
    for (size_t i = 0; i < f->count; i++) {
        const struct cm_finding *fi = &f->items[i];
        int64_t fs = first_seen ? first_seen[i] : now;
        struct cm__alert *al;
        uint64_t h;

        map[i] = NULL;
        if (!fi->id)
            continue;
        h = hash_alert(t, fi->id, fi->position);
        if (!(al = alert_find(a, t, fi->id, fi->position, h))) {
            if (!(al = alert_add(a, t, fi->id, fi->position, h))) {
                rc = -ENOMEM;
                continue;
            }
            al->fresh = true;
        }
        if (al->epoch != epoch) {
            al->epoch = epoch;
            al->obs_sev = fi->severity;
            al->obs_first = fs;
            al->obs_idx = i;
            al->obs_n = 1;
        } else {
            if (fi->severity > al->obs_sev)
                al->obs_sev = fi->severity;
            if (fs < al->obs_first)
                al->obs_first = fs;
            al->obs_n++;
        }
        map[i] = al;
    }

    /* FIRING and CHANGED, in the order of the findings. */
    for (size_t i = 0; i < f->count; i++) {
        struct cm__alert *al = map[i];
        const char *m;
        char *owned;

        if (!al || al->obs_idx != i)
            continue;
        if (!(m = merged_message(f, map, al, &owned))) {
            rc = -ENOMEM;
            m = f->items[i].message ? f->items[i].message : "";
        }
        if (al->fresh) {
            if (set_message(al, m, owned) < 0) {
                for (size_t j = i; j < f->count; j++)
                    if (map[j] == al)
                        map[j] = NULL;
                alert_remove(a, al, false);
                rc = -ENOMEM;
                continue;
            }
            al->fresh = false;
            al->severity = al->obs_sev;
            al->started_at = al->obs_first;
            if (for_s == 0)
                alert_fire(a, al, false, now, emit, arg);
            else
                heap_push(&a->pending, al);
            changed(a, al, false);
            continue;
        }
        int mrc = set_message(al, m, owned);
        bool dirty = mrc > 0;
        if (mrc < 0)
            rc = -ENOMEM;
        if (!al->fired) {
            dirty = dirty || al->severity != al->obs_sev;
            al->severity = al->obs_sev;
            if (for_s == 0) {
                alert_fire(a, al, true, now, emit, arg);
                dirty = true;
            }
        } else if (al->obs_sev != al->severity) {
            enum cm_severity prev = al->severity;

            al->severity = al->obs_sev;
            al->notified_at = now;
            heap_later(&a->firing, al);
            emit_event(al, CM_ALERT_CHANGED, prev, now, emit, arg);
            dirty = true;
        }
        if (dirty)
            changed(a, al, false);
    }

    /* RESOLVED for what went away, oldest alert first. A result without a certificate cannot
     * tell that the certificate's problems went away: those alerts stay, untouched. */
    for (struct cm__alert *al = t->head, *next; al; al = next) {
        next = al->tnext;
        if (al->epoch == epoch || (without_cert && !cm_finding_judged_without_cert(al->id)))
            continue;
        if (al->fired)
            emit_event(al, CM_ALERT_RESOLVED, al->severity, now, emit, arg);
        changed(a, al, true);
        alert_remove(a, al, true);
    }
out:
    if (t && !t->count)
        target_remove(a, t);
    if (map != stack_map)
        free(map);
    return rc;
}

int cm_alerts_observe(struct cm_alerts *a, const char *target, const struct cm_findings *f,
                      const int64_t *first_seen, const struct cm_alert_opts *o, int64_t now,
                      cm_alert_emit emit, void *arg)
{
    return observe(a, target, f, first_seen, o, now, false, emit, arg);
}

int cm_alerts_observe_without_cert(struct cm_alerts *a, const char *target,
                                   const struct cm_findings *f, const int64_t *first_seen,
                                   const struct cm_alert_opts *o, int64_t now, cm_alert_emit emit,
                                   void *arg)
{
    return observe(a, target, f, first_seen, o, now, true, emit, arg);
}

/* The due times of the first pending and the first fired alert (INT64_MAX: none). */
static void due_times(const struct cm_alerts *a, int64_t for_s, int64_t repeat_s,
                      int64_t *due_pending, int64_t *due_repeat)
{
    *due_pending = INT64_MAX;
    *due_repeat = INT64_MAX;
    if (a->pending.n)
        *due_pending = for_s ? sat_add(a->pending.v[0]->started_at, for_s) : INT64_MIN;
    if (a->firing.n && repeat_s)
        *due_repeat = sat_add(a->firing.v[0]->notified_at, repeat_s);
}

int64_t cm_alerts_next(const struct cm_alerts *a, const struct cm_alert_opts *o)
{
    int64_t for_s, repeat_s, dp, dr;

    if (!a)
        return INT64_MAX;
    opts_get(o, &for_s, &repeat_s);
    due_times(a, for_s, repeat_s, &dp, &dr);
    return dp < dr ? dp : dr;
}

int64_t cm_alerts_tick(struct cm_alerts *a, const struct cm_alert_opts *o, int64_t now,
                       cm_alert_emit emit, void *arg)
{
    int64_t for_s, repeat_s, dp, dr;

    if (!a)
        return INT64_MAX;
    opts_get(o, &for_s, &repeat_s);
    /* Earliest due first, so a late tick still tells things in the order they fell due. A
     * reminder goes out at most once per tick (notified_at < now): a tick called late sends
     * one REPEAT, and the next one falls repeat_s after it. */
    for (;;) {
        struct cm__alert *p = a->pending.n ? a->pending.v[0] : NULL;
        struct cm__alert *r = a->firing.n ? a->firing.v[0] : NULL;

        bool p_due, r_due;

        due_times(a, for_s, repeat_s, &dp, &dr);
        p_due = p && dp <= now;
        r_due = r && dr <= now && r->notified_at < now;
        if (p_due && (!r_due || dp <= dr)) {
            alert_fire(a, p, true, now, emit, arg);
            changed(a, p, false);
        } else if (r_due) {
            r->notified_at = now;
            heap_later(&a->firing, r);
            emit_event(r, CM_ALERT_REPEAT, r->severity, now, emit, arg);
            changed(a, r, false);
        } else {
            break;
        }
    }
    return cm_alerts_next(a, o);
}

void cm_alerts_forget(struct cm_alerts *a, const char *target, int64_t now, cm_alert_emit emit,
                      void *arg)
{
    struct cm__target *t;

    if (!a || !target || !(t = target_find(a, target, hash_str(target))))
        return;
    for (struct cm__alert *al = t->head, *next; al; al = next) {
        next = al->tnext;
        if (al->fired)
            emit_event(al, CM_ALERT_RESOLVED, al->severity, now, emit, arg);
        changed(a, al, true);
        alert_remove(a, al, true);
    }
    target_remove(a, t);
}

/* ---- JSON ---- */

static int by_seq(const void *x, const void *y)
{
    const struct cm__alert *ax = *(struct cm__alert *const *)x;
    const struct cm__alert *ay = *(struct cm__alert *const *)y;

    return ax->seq < ay->seq ? -1 : ax->seq > ay->seq;
}

/* A JSON string of s. Jansson refuses text that is not UTF-8, and one such name or message
 * must not make the whole table unsavable: bytes that are not UTF-8 become U+FFFD. */
static json_t *text_json(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s), i = 0, n, bad = 0;
    char *fixed, *q;
    json_t *j;

    for (i = 0; i < len; i += n ? n : 1)
        if (!(n = cm_utf8_seq(p + i, len - i)))
            bad++;
    if (!bad)
        return json_stringn_nocheck(s, len);
    if (!(fixed = malloc(len + 2 * bad + 1)))
        return NULL;
    q = fixed;
    for (i = 0; i < len; i += n ? n : 1) {
        if ((n = cm_utf8_seq(p + i, len - i))) {
            memcpy(q, s + i, n);
            q += n;
        } else {
            memcpy(q, "\xEF\xBF\xBD", 3);
            q += 3;
        }
    }
    j = json_stringn_nocheck(fixed, (size_t)(q - fixed));
    free(fixed);
    return j;
}

static int set_member(json_t *o, const char *key, json_t *v)
{
    return v ? json_object_set_new_nocheck(o, key, v) : -1;
}

static json_t *alert_json(const struct cm__alert *al)
{
    json_t *o = json_object();

    if (!o || set_member(o, "target", text_json(al->t->name)) ||
        set_member(o, "id", text_json(al->id)) ||
        set_member(o, "position", json_integer(al->position)) ||
        set_member(o, "severity", json_string_nocheck(cm_severity_name(al->severity))) ||
        set_member(o, "message", text_json(al->message ? al->message : "")) ||
        set_member(o, "started_at", json_integer(al->started_at)) ||
        set_member(o, "fired_at", al->fired ? json_integer(al->fired_at) : json_null()) ||
        set_member(o, "notified_at", al->fired ? json_integer(al->notified_at) : json_null())) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Every alert in creation order: stable across restarts (from_json creates in array order, or
 * by "seq"), so the file does not reshuffle with the hash table and ties keep breaking the
 * same way. Returns 0 with *out (NULL when the table is empty) or -ENOMEM. */
static int sorted(const struct cm_alerts *a, struct cm__alert ***out)
{
    struct cm__alert **all;
    size_t n = 0;

    *out = NULL;
    if (!a->count)
        return 0;
    if (!(all = malloc(a->count * sizeof(*all))))
        return -ENOMEM;
    for (size_t i = 0; i < a->tb_len; i++)
        for (const struct cm__target *t = a->tb[i]; t; t = t->hnext)
            for (struct cm__alert *al = t->head; al; al = al->tnext)
                all[n++] = al;
    qsort(all, n, sizeof(*all), by_seq);
    *out = all;
    return 0;
}

int cm_alerts_foreach(const struct cm_alerts *a,
                      void (*fn)(const struct cm_alert_row *row, void *arg), void *arg)
{
    struct cm__alert **all;
    struct cm_alert_row r;

    if (!a || !fn)
        return 0;
    if (sorted(a, &all) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < a->count; i++) {
        alert_row(all[i], &r);
        fn(&r, arg);
    }
    free(all);
    return 0;
}

json_t *cm_alerts_to_json(const struct cm_alerts *a)
{
    struct cm__alert **all = NULL;
    json_t *arr = json_array(), *o;
    size_t n;

    if (!arr || !a)
        return arr;
    if (sorted(a, &all) < 0)
        goto fail;
    n = a->count;
    for (size_t i = 0; i < n; i++)
        if (!(o = alert_json(all[i])) || json_array_append_new(arr, o))
            goto fail;
    free(all);
    return arr;
fail:
    free(all);
    json_decref(arr);
    return NULL;
}

static int severity_from(const char *s, enum cm_severity *out)
{
    for (int i = CM_SEV_OK; i <= CM_SEV_CRITICAL; i++) {
        if (strcmp(s, cm_severity_name((enum cm_severity)i)) == 0) {
            *out = (enum cm_severity)i;
            return 0;
        }
    }
    return CM_ESTATE;
}

/* A string member without embedded NUL bytes, or NULL. */
static const char *plain_string(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    const char *s = json_string_value(v);

    return s && strlen(s) == json_string_length(v) ? s : NULL;
}

int cm_alerts_add(struct cm_alerts *a, const struct cm_alert_row *r)
{
    const struct cm_finding_def *def;
    struct cm__target *t;
    struct cm__alert *al;
    uint64_t th, h;

    if (!a || !r || !r->target || !r->id || !r->message || r->position < -1 ||
        r->severity < CM_SEV_OK || r->severity > CM_SEV_CRITICAL ||
        (r->fired && r->notified_at < r->fired_at))
        return CM_ESTATE;
    if (!(def = cm_finding_lookup(r->id)))
        return 0; /* an id this version does not know: dropped */
    if (reserve(a, 1) < 0)
        return -ENOMEM;
    th = hash_str(r->target);
    if (!(t = target_find(a, r->target, th)) && !(t = target_add(a, r->target, th)))
        return -ENOMEM;
    h = hash_alert(t, def->id, r->position);
    if (alert_find(a, t, def->id, r->position, h))
        return CM_ESTATE; /* the same alert twice */
    if (!(al = alert_add(a, t, def->id, r->position, h)))
        return -ENOMEM;
    if (!(al->message = strdup(r->message))) {
        alert_remove(a, al, false);
        return -ENOMEM;
    }
    al->severity = r->severity;
    al->started_at = r->started_at;
    al->seq = r->seq;
    if (al->seq >= a->seq)
        a->seq = al->seq + 1;
    if (!r->fired) {
        heap_push(&a->pending, al);
    } else {
        al->fired = true;
        al->fired_at = r->fired_at;
        al->notified_at = r->notified_at;
        heap_push(&a->firing, al);
    }
    return 0;
}

static int load_one(struct cm_alerts *a, json_t *o)
{
    const char *sev = plain_string(o, "severity");
    json_t *pos = json_object_get(o, "position"), *started = json_object_get(o, "started_at");
    json_t *fired = json_object_get(o, "fired_at"), *notified = json_object_get(o, "notified_at");
    json_t *seq = json_object_get(o, "seq");
    struct cm_alert_row r = {.target = plain_string(o, "target"),
                             .id = plain_string(o, "id"),
                             .message = plain_string(o, "message"),
                             .seq = seq ? (uint64_t)json_integer_value(seq) : a->seq};

    if (!json_is_object(o) || !sev || !json_is_integer(pos) || json_integer_value(pos) < -1 ||
        json_integer_value(pos) > INT_MAX || !json_is_integer(started) ||
        severity_from(sev, &r.severity) < 0 ||
        (seq && (!json_is_integer(seq) || json_integer_value(seq) < 0)))
        return CM_ESTATE;
    /* Pending (both null) or fired (both times, the last notification not before the
     * first). */
    if (json_is_null(fired) != json_is_null(notified))
        return CM_ESTATE;
    if (!json_is_null(fired) && (!json_is_integer(fired) || !json_is_integer(notified)))
        return CM_ESTATE;
    r.position = (int)json_integer_value(pos);
    r.started_at = json_integer_value(started);
    r.fired = !json_is_null(fired);
    r.fired_at = r.fired ? json_integer_value(fired) : 0;
    r.notified_at = r.fired ? json_integer_value(notified) : 0;
    return cm_alerts_add(a, &r);
}

int cm_alerts_from_json(struct cm_alerts *a, json_t *j)
{
    size_t i;
    json_t *o;
    int rc;

    if (!a)
        return -EINVAL;
    if (a->count)
        return CM_EBADARG;
    if (!json_is_array(j))
        return CM_ESTATE;
    if (reserve(a, json_array_size(j)) < 0)
        return -ENOMEM;
    json_array_foreach(j, i, o)
    {
        if ((rc = load_one(a, o)) < 0) {
            clear_all(a);
            return rc;
        }
    }
    return 0;
}
