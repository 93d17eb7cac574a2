/* Packed report texts (see pack.h). */
#include "certmon/base/pack.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define HEADER 5

/* The preset dictionary of CM_PACK_V1: a report of a probe that failed, with posture and ARI
 * objects, then one of a chain of two certificates, values blanked; finding ids and common
 * algorithm names first. DEFLATE finds the nearest match first, so what every report repeats
 * stands last. NEVER EDIT: packed texts in databases depend on every byte. */
/* clang-format off */
static const char DICT[] =
#include "pack_dict.inc"
    ;
/* clang-format on */

/* One compressor per thread, kept (with its output buffer): deflateInit2 allocates about
 * 270 KB, which would cost more than packing a report. */
static _Thread_local z_stream deflater;
static _Thread_local bool deflater_ready;
static _Thread_local unsigned char *scratch; /* deflate's output, before the exact copy */
static _Thread_local uLong scratch_cap;

bool cm_is_packed(const void *data, size_t len)
{
    return len >= HEADER && ((const unsigned char *)data)[0] == CM_PACK_V1;
}

int cm_pack(const char *text, size_t len, unsigned char **out, size_t *outlen)
{
    z_stream *z = &deflater;
    unsigned char *buf;
    uLong cap;

    if (len > CM_PACK_MAX)
        return -EINVAL;
    if (!deflater_ready) {
        memset(z, 0, sizeof(*z));
        if (deflateInit2(z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return -ENOMEM;
        deflater_ready = true;
    } else if (deflateReset(z) != Z_OK) {
        return -ENOMEM;
    }
    if (deflateSetDictionary(z, (const Bytef *)DICT, sizeof(DICT) - 1) != Z_OK)
        return -ENOMEM;
    cap = deflateBound(z, (uLong)len);
    if (cap > scratch_cap) {
        unsigned char *n = realloc(scratch, cap);
        if (!n)
            return -ENOMEM;
        scratch = n;
        scratch_cap = cap;
    }
    z->next_in = (Bytef *)(uintptr_t)text;
    z->avail_in = (uInt)len;
    z->next_out = scratch;
    z->avail_out = (uInt)cap;
    if (deflate(z, Z_FINISH) != Z_STREAM_END)
        return -ENOMEM;
    /* The bound is generous; a report is kept for long, so it gets its own size. */
    *outlen = HEADER + (cap - z->avail_out);
    if (!(buf = malloc(*outlen)))
        return -ENOMEM;
    buf[0] = CM_PACK_V1;
    for (int i = 0; i < 4; i++)
        buf[1 + i] = (unsigned char)(len >> (8 * i));
    memcpy(buf + HEADER, scratch, *outlen - HEADER);
    *out = buf;
    return 0;
}

int cm_unpack(const unsigned char *data, size_t len, char **out, size_t *outlen)
{
    z_stream z = {0};
    size_t n = 0;
    char *buf;
    int rc;

    if (!cm_is_packed(data, len))
        return -EINVAL;
    for (int i = 0; i < 4; i++)
        n |= (size_t)data[1 + i] << (8 * i);
    if (n > CM_PACK_MAX)
        return -EINVAL;
    if (!(buf = malloc(n + 1)))
        return -ENOMEM;
    if (inflateInit2(&z, -15) != Z_OK) {
        free(buf);
        return -ENOMEM;
    }
    rc = inflateSetDictionary(&z, (const Bytef *)DICT, sizeof(DICT) - 1);
    z.next_in = (Bytef *)(uintptr_t)(data + HEADER);
    z.avail_in = (uInt)(len - HEADER);
    z.next_out = (Bytef *)buf;
    /* One byte of room past the promised length: a stream that is longer is caught. */
    z.avail_out = (uInt)n + 1;
    if (rc == Z_OK)
        rc = inflate(&z, Z_FINISH);
    inflateEnd(&z);
    if (rc != Z_STREAM_END || z.avail_in != 0 || z.total_out != n) {
        free(buf);
        return rc == Z_MEM_ERROR ? -ENOMEM : -EINVAL;
    }
    buf[n] = '\0';
    *out = buf;
    *outlen = n;
    return 0;
}
