/* Shared blocks (intern.h): chained hash tables of entries that carry their bytes, doubled
 * when one holds as many entries as buckets. */
#include "certmon/base/intern.h"
#include "certmon/base/text.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct cm_intern_entry {
    struct cm_intern_entry *next;
    uint64_t hash;
    uint32_t refs;
    uint32_t len; /* read by cm_intern_len, just before data */
    unsigned char data[];
};

_Static_assert(offsetof(struct cm_intern_entry, data) ==
                   offsetof(struct cm_intern_entry, len) + sizeof(uint32_t),
               "cm_intern_len reads the length just before the block");
_Static_assert(offsetof(struct cm_intern_entry, data) % 8 == 0, "blocks are 8-byte aligned");

#define BUCKETS_MIN 256

/* The texts of cm_intern. */
static struct cm_intern_table texts = CM_INTERN_TABLE(0);

static struct cm_intern_entry *entry_of(const void *b)
{
    return (struct cm_intern_entry *)(void *)((unsigned char *)(uintptr_t)b -
                                              offsetof(struct cm_intern_entry, data));
}

/* Doubles t's buckets (from BUCKETS_MIN). Out of memory leaves them as they are: longer
 * chains, slower, not wrong. Under t->mu. */
static void grow(struct cm_intern_table *t)
{
    size_t n = t->nbuckets ? 2 * t->nbuckets : BUCKETS_MIN;
    struct cm_intern_entry **b;

    if (n > SIZE_MAX / sizeof(*b) || !(b = calloc(n, sizeof(*b))))
        return;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (struct cm_intern_entry *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

/* The last block gone: so is the table (a leak check sees nothing left). Under t->mu. */
static void release_empty(struct cm_intern_table *t)
{
    if (t->count == 0) {
        free(t->buckets);
        t->buckets = NULL;
        t->nbuckets = 0;
    }
}

const void *cm_intern_bytes(struct cm_intern_table *t, const void *p, size_t len, bool *added)
{
    struct cm_intern_entry **bucket, *e = NULL;
    uint64_t h;

    if (added)
        *added = false;
    if (len > INT32_MAX)
        return NULL;
    h = cm_fnv1a(CM_FNV1A_INIT, p, len);
    pthread_mutex_lock(&t->mu);
    if (t->count >= t->nbuckets)
        grow(t);
    if (!t->nbuckets)
        goto out;
    bucket = &t->buckets[h & (t->nbuckets - 1)];
    /* A block held UINT32_MAX times is passed over: the next holder gets a copy of its own. */
    for (e = *bucket; e; e = e->next)
        if (e->hash == h && e->len == len && e->refs < UINT32_MAX && !memcmp(e->data, p, len)) {
            e->refs++;
            goto out;
        }
    if ((e = malloc(sizeof(*e) + len + t->pad))) {
        e->hash = h;
        e->refs = 1;
        e->len = (uint32_t)len;
        memcpy(e->data, p, len);
        memset(e->data + len, 0, t->pad);
        e->next = *bucket;
        *bucket = e;
        t->count++;
        if (added)
            *added = true;
    }
out:
    release_empty(t);
    pthread_mutex_unlock(&t->mu);
    return e ? e->data : NULL;
}

bool cm_intern_bytes_release(struct cm_intern_table *t, const void *b)
{
    struct cm_intern_entry *e, **p;
    bool last;

    if (!b)
        return false;
    e = entry_of(b);
    pthread_mutex_lock(&t->mu);
    if ((last = --e->refs == 0)) {
        for (p = &t->buckets[e->hash & (t->nbuckets - 1)]; *p != e; p = &(*p)->next)
            ;
        *p = e->next;
        free(e);
        t->count--;
        release_empty(t);
    }
    pthread_mutex_unlock(&t->mu);
    return last;
}

size_t cm_intern_table_count(struct cm_intern_table *t)
{
    size_t n;

    pthread_mutex_lock(&t->mu);
    n = t->count;
    pthread_mutex_unlock(&t->mu);
    return n;
}

const char *cm_intern(const char *s)
{
    return s ? cm_intern_bytes(&texts, s, strlen(s) + 1, NULL) : NULL;
}

void cm_intern_release(const char *s)
{
    cm_intern_bytes_release(&texts, s);
}

size_t cm_intern_count(void)
{
    return cm_intern_table_count(&texts);
}
