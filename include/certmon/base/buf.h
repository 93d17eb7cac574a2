/* Growth of a caller's byte buffer: the one copy of "double the capacity until it fits, with a
 * hard cap on the size", for the renderers that build their output in one growing block
 * (analysis/page, analysis/metrics). The caller keeps its own struct (pointer, length,
 * capacity) and its own rule for a failure; this only moves the capacity.
 *
 * Pure (no I/O, no time); safe on any thread for distinct buffers. */
#ifndef CERTMON_BUF_H
#define CERTMON_BUF_H

#include <stddef.h>

/* Makes room for need more bytes after the len bytes used of *data, whose capacity is *cap:
 * when there is less, the capacity doubles (from first when it is 0) until there is enough,
 * and *data is reallocated (the len bytes kept). limit is the most that len + need may come
 * to, so that the caller's sizes and offsets never overflow (the capacity may double past
 * it). Returns 0; -EOVERFLOW when len + need would pass limit; -ENOMEM when realloc fails.
 * On an error *data and *cap are as they were. */
int cm_buf_reserve(char **data, size_t *cap, size_t len, size_t need, size_t first, size_t limit);

#endif
