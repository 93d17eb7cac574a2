/* unit.buf: the growth of a caller's byte buffer (src/base/buf.c), which the status page and
 * the metrics views build their output in: doubling from the first capacity, the bytes kept,
 * nothing moved while there is room, the size limit refused without touching the buffer, and
 * a capacity that would wrap. */
#include "cmtest.h"

#include "certmon/base/buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_doubling(void)
{
    char *data = NULL, *before;
    size_t cap = 0, len = 0;

    /* Nothing needed: nothing allocated. */
    EXPECT_INT(cm_buf_reserve(&data, &cap, len, 0, 16, 1000), 0);
    CU_ASSERT_PTR_NULL(data);
    EXPECT_INT(cap, 0);
    EXPECT_INT(cm_buf_reserve(&data, &cap, len, 10, 16, 1000), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    EXPECT_INT(cap, 16);
    memcpy(data, "0123456789", 10);
    len = 10;
    /* Room left: the same block. */
    before = data;
    EXPECT_INT(cm_buf_reserve(&data, &cap, len, 6, 16, 1000), 0);
    CU_ASSERT(data == before);
    EXPECT_INT(cap, 16);
    /* 16 -> 32 -> 64 -> 128: the first that holds 10 + 100; the bytes kept. */
    EXPECT_INT(cm_buf_reserve(&data, &cap, len, 100, 16, 1000), 0);
    EXPECT_INT(cap, 128);
    CU_ASSERT(memcmp(data, "0123456789", 10) == 0);
    /* Up to the limit exactly: allowed, and the capacity may pass it (a doubling). */
    EXPECT_INT(cm_buf_reserve(&data, &cap, len, 990, 16, 1000), 0);
    EXPECT_INT(cap, 1024);
    CU_ASSERT(memcmp(data, "0123456789", 10) == 0);
    free(data);

    /* A first capacity of 0 is taken as 1 (doubling from 0 would never end). */
    data = NULL;
    cap = 0;
    EXPECT_INT(cm_buf_reserve(&data, &cap, 0, 3, 0, 1000), 0);
    EXPECT_INT(cap, 4);
    free(data);
}

static void test_limit(void)
{
    char *data = NULL, *before;
    size_t cap = 0;

    EXPECT_INT(cm_buf_reserve(&data, &cap, 0, 8, 8, 100), 0);
    memcpy(data, "abcdefgh", 8);
    before = data;
    /* One byte past the limit: refused, the buffer as it was. */
    EXPECT_INT(cm_buf_reserve(&data, &cap, 8, 93, 8, 100), -EOVERFLOW);
    CU_ASSERT(data == before);
    EXPECT_INT(cap, 8);
    CU_ASSERT(memcmp(data, "abcdefgh", 8) == 0);
    /* A length that would wrap len + need. */
    EXPECT_INT(cm_buf_reserve(&data, &cap, 8, SIZE_MAX, 8, SIZE_MAX), -EOVERFLOW);
    EXPECT_INT(cap, 8);
    free(data);
}

#ifndef __SANITIZE_ADDRESS__
/* A size doubling cannot reach without wrapping takes what is needed, and realloc's failure
 * comes back as -ENOMEM with the buffer as it was. */
static void test_out_of_memory(void)
{
    char *data = NULL, *before;
    size_t cap = 0;

    EXPECT_INT(cm_buf_reserve(&data, &cap, 0, 4, 16, SIZE_MAX), 0);
    memcpy(data, "kept", 4);
    before = data;
    EXPECT_INT(cm_buf_reserve(&data, &cap, 4, SIZE_MAX / 2, 16, SIZE_MAX), -ENOMEM);
    CU_ASSERT(data == before);
    EXPECT_INT(cap, 16);
    CU_ASSERT(memcmp(data, "kept", 4) == 0);
    free(data);
}
#else
static void test_out_of_memory(void)
{
    /* AddressSanitizer aborts on an allocation of that size instead of failing it. */
    printf("\n    skipped: the sanitizer owns malloc ");
}
#endif

static CU_TestInfo tests[] = {
    {"doubling from the first capacity, bytes kept", test_doubling},
    {"the limit refused, the buffer untouched", test_limit},
    {"a size past doubling; realloc failing", test_out_of_memory},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("buf", tests, NULL, NULL);
}
