/* libFuzzer harness: the posture pass's parser of a server's answer to a hand-built SSL 3.0 or
 * export ClientHello (cm_server_reply_parse in src/probe/posture.c), and the builder of those hellos.
 *
 * Input: byte 0 is the read size (0: one read), the rest is what the server sends. The parser
 * is called as raw_read calls it: after each read, on everything received so far, in a 4096-byte
 * buffer, until it answers DONE or BAD. Each call sees a heap copy of exactly the bytes received,
 * so that AddressSanitizer catches a read past them. The same bytes, cut at the first NUL, are
 * also the SNI of both hellos, built into buffers of several sizes. */
#include "fuzz_util.h"

#include "certmon/probe/posture.h"

FZ_QUIET_INIT

static void parse_stream(const uint8_t *data, size_t size, size_t chunk)
{
    size_t have = 0;

    if (size > 4096) /* raw_read's buffer */
        size = 4096;
    while (have < size) {
        struct cm_server_reply r;
        uint8_t *copy;
        int rc;

        have += chunk == 0 || chunk > size - have ? size - have : chunk;
        if (!(copy = malloc(have)))
            return;
        memcpy(copy, data, have);
        rc = cm_server_reply_parse(copy, have, &r);
        free(copy);
        FZ_CHECK(rc == CM_REPLY_MORE || rc == CM_REPLY_DONE || rc == CM_REPLY_BAD);
        if (rc == CM_REPLY_DONE) {
            if (!r.alert) {
                int w = cm_suite_weak_class(r.suite);
                FZ_CHECK(w >= -1 && w < CM_WEAK_COUNT);
                (void)cm_hello_offers(CM_HELLO_SSL3, r.suite);
                (void)cm_hello_offers(CM_HELLO_EXPORT, r.suite);
            }
            return;
        }
        if (rc == CM_REPLY_BAD)
            return;
    }
}

static void build_hellos(const uint8_t *data, size_t size)
{
    static const uint8_t random[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    static const enum cm_hello_kind kinds[] = {CM_HELLO_SSL3, CM_HELLO_EXPORT};
    char sni[1024];
    size_t n = size < sizeof(sni) - 1 ? size : sizeof(sni) - 1;

    memcpy(sni, data, n);
    sni[n] = '\0';
    for (size_t k = 0; k < 2; k++) {
        uint8_t buf[1400];
        size_t len = cm_hello_build(kinds[k], sni, random, buf, 512); /* raw's buffer */
        FZ_CHECK(len <= 512);
        if (len == 0)
            continue;
        /* The record header holds the length of what follows it. */
        FZ_CHECK(len >= 5 && (size_t)(buf[3] << 8 | buf[4]) == len - 5);
        /* One byte less does not fit: 0, and nothing written past the end. */
        uint8_t *exact = malloc(len - 1);
        if (exact) {
            FZ_CHECK(cm_hello_build(kinds[k], sni, random, exact, len - 1) == 0);
            free(exact);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    parse_stream(data + 1, size - 1, data[0]);
    build_hellos(data + 1, size - 1);
    return 0;
}
