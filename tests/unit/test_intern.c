/* unit.intern: shared, reference-counted blocks (src/base/intern.c): one copy per distinct
 * value, found by its bytes, in the process-wide table of texts and in tables of a caller's
 * own (the metrics views' words and certificates): the length and zero bytes kept after a
 * block, who made it, the last holder freeing it, the tables apart, growth, and several
 * threads at once. */
#include "cmtest.h"

#include "certmon/base/intern.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct cm_intern_table padded = CM_INTERN_TABLE(16);
static struct cm_intern_table plain = CM_INTERN_TABLE(0);

static void test_blocks(void)
{
    static const unsigned char zeros[16];
    const unsigned char *a, *b, *c, *d;
    bool added;

    EXPECT_INT(cm_intern_table_count(&padded), 0);
    a = cm_intern_bytes(&padded, "abc", 3, &added);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT(added);
    EXPECT_INT(cm_intern_len(a), 3);
    CU_ASSERT(memcmp(a, "abc", 3) == 0);
    /* The table's zero bytes follow, readable; the block is 8-byte aligned. */
    CU_ASSERT(memcmp(a + 3, zeros, 16) == 0);
    EXPECT_INT((uintptr_t)a % 8, 0);
    /* The same bytes: the same block, not made again. */
    b = cm_intern_bytes(&padded, "abc", 3, &added);
    CU_ASSERT_PTR_EQUAL(b, a);
    CU_ASSERT(!added);
    /* A prefix, and bytes with a NUL inside, are blocks of their own. */
    c = cm_intern_bytes(&padded, "ab", 2, NULL);
    d = cm_intern_bytes(&padded, "a\0c", 3, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT(c != a && d != a && c != d);
    EXPECT_INT(cm_intern_len(d), 3);
    EXPECT_INT(cm_intern_table_count(&padded), 3);
    /* Another table knows none of them; the texts' table is a third. */
    EXPECT_INT(cm_intern_table_count(&plain), 0);
    CU_ASSERT_PTR_NULL(cm_intern_bytes(&plain, "x", (size_t)INT32_MAX + 1, NULL));
    EXPECT_INT(cm_intern_table_count(&plain), 0);
    /* The last holder frees it, and says so. */
    CU_ASSERT(!cm_intern_bytes_release(&padded, a));
    EXPECT_INT(cm_intern_table_count(&padded), 3);
    CU_ASSERT(cm_intern_bytes_release(&padded, b));
    CU_ASSERT(cm_intern_bytes_release(&padded, c));
    CU_ASSERT(cm_intern_bytes_release(&padded, d));
    CU_ASSERT(!cm_intern_bytes_release(&padded, NULL));
    EXPECT_INT(cm_intern_table_count(&padded), 0);
}

/* Texts: NUL-terminated, compared whole. */
static void test_texts(void)
{
    size_t c0 = cm_intern_count();
    const char *a = cm_intern("CN=R11,O=Let's Encrypt,C=US"), *b, *e;
    char copy[64];

    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    snprintf(copy, sizeof(copy), "%s", a);
    b = cm_intern(copy);
    CU_ASSERT_PTR_EQUAL(a, b);
    CU_ASSERT(a != copy);
    EXPECT_INT(cm_intern_len(a), strlen(copy) + 1); /* the NUL is part of the text */
    e = cm_intern("");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    EXPECT_STR(e, "");
    CU_ASSERT_PTR_NULL(cm_intern(NULL));
    EXPECT_INT(cm_intern_count(), c0 + 2);
    cm_intern_release(a);
    cm_intern_release(b);
    cm_intern_release(e);
    cm_intern_release(NULL);
    EXPECT_INT(cm_intern_count(), c0);
}

/* Past the first buckets and back: every block found again by its bytes. */
static void test_growth(void)
{
    enum { N = 5000 };
    const void **v = calloc(N, sizeof(*v));
    char key[32];
    bool added;

    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof(key), "block-%d", i);
        CU_ASSERT_PTR_NOT_NULL_FATAL(v[i] = cm_intern_bytes(&plain, key, (size_t)n, &added));
        CU_ASSERT(added);
    }
    EXPECT_INT(cm_intern_table_count(&plain), N);
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof(key), "block-%d", i);
        CU_ASSERT_PTR_EQUAL(cm_intern_bytes(&plain, key, (size_t)n, &added), v[i]);
        CU_ASSERT(!added);
        CU_ASSERT(!cm_intern_bytes_release(&plain, v[i]));
    }
    for (int i = 0; i < N; i++)
        CU_ASSERT(cm_intern_bytes_release(&plain, v[i]));
    EXPECT_INT(cm_intern_table_count(&plain), 0);
    free(v);
}

/* Four threads take and give back the same few blocks: the counts stay right. */
enum { THREADS = 4, ROUNDS = 20000 };

struct churn {
    int id, failures;
};

static void *churn(void *arg)
{
    struct churn *c = arg;
    char key[16];

    for (int i = 0; i < ROUNDS; i++) {
        int n = snprintf(key, sizeof(key), "w%d", (i + c->id) % 7);
        const void *b = cm_intern_bytes(&padded, key, (size_t)n, NULL);
        if (!b || cm_intern_len(b) != (size_t)n || memcmp(b, key, (size_t)n))
            c->failures++;
        cm_intern_bytes_release(&padded, b);
    }
    return NULL;
}

static void test_threads(void)
{
    pthread_t th[THREADS];
    struct churn c[THREADS];

    for (int i = 0; i < THREADS; i++) {
        c[i] = (struct churn){i, 0};
        CU_ASSERT_FATAL(pthread_create(&th[i], NULL, churn, &c[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        EXPECT_INT(c[i].failures, 0);
    }
    EXPECT_INT(cm_intern_table_count(&padded), 0);
}

static CU_TestInfo tests[] = {
    {"blocks: length, zero bytes after, made once, freed by the last", test_blocks},
    {"texts", test_texts},
    {"growth past the first buckets", test_growth},
    {"several threads", test_threads},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("intern", tests, NULL, NULL);
}
