/* Packed report texts: the JSON of a report, compressed for memory and the state database.
 *
 * A packed text is raw DEFLATE (zlib) with a preset dictionary of the report's own vocabulary
 * (its keys, finding ids, the shape of a chain): a 3 KB report packs to about 350 bytes, where
 * plain DEFLATE gives 1.2 KB, because most of a report is the same keys in the same order.
 * Layout: one format byte (CM_PACK_V1; a JSON text starts with '{', so a packed text is never
 * taken for one), the text's length as 4 bytes little-endian, then the DEFLATE stream. The
 * dictionary belongs to the format: it never changes under CM_PACK_V1 (another dictionary is
 * another format byte), or stored texts would no longer unpack.
 *
 * Pure (no I/O, no time); safe on any thread (each thread keeps its own compressor). */
#ifndef CERTMON_PACK_H
#define CERTMON_PACK_H

#include <stdbool.h>
#include <stddef.h>

#define CM_PACK_V1 0x01

/* The longest text packed or unpacked: a report is a few KB; more is an error, so that a
 * damaged length cannot make unpacking allocate gigabytes. */
#define CM_PACK_MAX (16u << 20)

/* Packs len bytes of text. On success *out (malloc'd, the caller frees) holds *outlen bytes.
 * Returns 0, -ENOMEM, or -EINVAL when len exceeds CM_PACK_MAX. */
int cm_pack(const char *text, size_t len, unsigned char **out, size_t *outlen);

/* Unpacks a packed text into *out (malloc'd, NUL-terminated; *outlen without the NUL; the
 * caller frees). Returns 0, -ENOMEM, or -EINVAL for anything that is not a whole packed text
 * of this format (unknown format byte, a length over CM_PACK_MAX, a damaged or truncated
 * stream, trailing bytes, a stream longer or shorter than its length says). */
int cm_unpack(const unsigned char *data, size_t len, char **out, size_t *outlen);

/* Whether data starts like a packed text (its format byte); unpacking still checks the rest. */
bool cm_is_packed(const void *data, size_t len);

#endif
