/* Shared texts (intern.h): a chained hash table of entries that carry their text, doubled
 * when it holds as many entries as buckets. */
#include "certmon/base/intern.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct word {
    struct word *next;
    uint64_t hash;
    size_t refs;
    char s[];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct word **buckets;
static size_t nbuckets, count;

static uint64_t hash_of(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Doubles the table (from 256 buckets). Out of memory leaves it as it is: longer chains. */
static void grow(void)
{
    size_t n = nbuckets ? 2 * nbuckets : 256;
    struct word **b = calloc(n, sizeof(*b));

    if (!b)
        return;
    for (size_t i = 0; i < nbuckets; i++)
        for (struct word *w = buckets[i], *next; w; w = next) {
            next = w->next;
            w->next = b[w->hash & (n - 1)];
            b[w->hash & (n - 1)] = w;
        }
    free(buckets);
    buckets = b;
    nbuckets = n;
}

const char *cm_intern(const char *s)
{
    uint64_t h;
    struct word *w;
    size_t len;

    if (!s)
        return NULL;
    h = hash_of(s);
    pthread_mutex_lock(&mu);
    if (count >= nbuckets)
        grow();
    if (!nbuckets) {
        pthread_mutex_unlock(&mu);
        return NULL;
    }
    for (w = buckets[h & (nbuckets - 1)]; w; w = w->next)
        if (w->hash == h && !strcmp(w->s, s)) {
            w->refs++;
            pthread_mutex_unlock(&mu);
            return w->s;
        }
    len = strlen(s);
    if ((w = malloc(sizeof(*w) + len + 1))) {
        w->hash = h;
        w->refs = 1;
        memcpy(w->s, s, len + 1);
        w->next = buckets[h & (nbuckets - 1)];
        buckets[h & (nbuckets - 1)] = w;
        count++;
    }
    pthread_mutex_unlock(&mu);
    return w ? w->s : NULL;
}

void cm_intern_release(const char *s)
{
    struct word *w, **p;

    if (!s)
        return;
    w = (struct word *)(void *)(s - offsetof(struct word, s));
    pthread_mutex_lock(&mu);
    if (--w->refs == 0) {
        for (p = &buckets[w->hash & (nbuckets - 1)]; *p != w; p = &(*p)->next)
            ;
        *p = w->next;
        free(w);
        /* The last text gone: so is the table (a leak check sees nothing left). */
        if (--count == 0) {
            free(buckets);
            buckets = NULL;
            nbuckets = 0;
        }
    }
    pthread_mutex_unlock(&mu);
}

size_t cm_intern_count(void)
{
    size_t n;

    pthread_mutex_lock(&mu);
    n = count;
    pthread_mutex_unlock(&mu);
    return n;
}
