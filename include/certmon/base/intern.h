/* Shared, reference-counted copies of what many long-lived objects repeat: one copy per
 * distinct value, found through a hash table, freed when its last holder lets go.
 * - Texts (cm_intern): at 100,000 targets the status page's rows and the leaf summaries hold
 *   the same issuer, key type, TLS version, finding id and message again and again; one
 *   process-wide table.
 * - Byte blocks (cm_intern_bytes) in a table of the caller's own: the metrics views' words and
 *   certificate blocks, which need zero bytes readable past each block (their 16-byte copies)
 *   and a count of their own.
 *
 * Pure (no I/O, no time); safe on any thread (one mutex per table). */
#ifndef CERTMON_INTERN_H
#define CERTMON_INTERN_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A table of shared byte blocks. Plain data: a static one made with CM_INTERN_TABLE; it holds
 * memory only while it holds blocks (empty, it has none: nothing to tear down). */
struct cm_intern_entry;
struct cm_intern_table {
    /* private */
    pthread_mutex_t mu;
    struct cm_intern_entry **buckets; /* nbuckets of them, a power of two; NULL while empty */
    size_t nbuckets, count;
    size_t pad; /* zero bytes kept after each block */
};
#define CM_INTERN_TABLE(pad)                                                                       \
    {                                                                                              \
        PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, (pad)                                               \
    }

/* The shared copy of the len bytes at p in t (equal bytes, equal block), its count of holders
 * one more; *added (when not NULL) tells whether this call made it. The copy is 8-byte
 * aligned, immutable, and followed by t's pad zero bytes. NULL when out of memory or len >
 * INT32_MAX. Give each one back with cm_intern_bytes_release. */
const void *cm_intern_bytes(struct cm_intern_table *t, const void *p, size_t len, bool *added);

/* Gives back a block cm_intern_bytes(t, ...) returned (NULL: nothing). Returns true when that
 * was its last holder: it is freed (read what it holds before). */
bool cm_intern_bytes_release(struct cm_intern_table *t, const void *b);

/* The length of a block cm_intern_bytes returned (the len it was given): stored just before
 * it, read here without the lock (the block is immutable), for renderers that copy it. */
static inline size_t cm_intern_len(const void *b)
{
    return ((const uint32_t *)b)[-1];
}

/* How many distinct blocks t holds now (tests: 0 once every holder has let go). */
size_t cm_intern_table_count(struct cm_intern_table *t);

/* The shared copy of s (NUL-terminated) in the process-wide table of texts, its count of
 * holders one more; NULL for s NULL, or when out of memory. Give each one back with
 * cm_intern_release. */
const char *cm_intern(const char *s);

/* Gives back a text cm_intern returned (NULL: nothing); the last holder frees it. */
void cm_intern_release(const char *s);

/* How many distinct texts the process-wide table holds now (tests: 0 once every holder has
 * let go). */
size_t cm_intern_count(void);

#endif
