/* Growth of a caller's byte buffer (see buf.h). */
#include "certmon/base/buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

int cm_buf_reserve(char **data, size_t *cap, size_t len, size_t need, size_t first, size_t limit)
{
    size_t c = *cap ? *cap : first ? first : 1;
    char *p;

    if (*cap >= len && *cap - len >= need)
        return 0;
    if (len > limit || need > limit - len)
        return -EOVERFLOW;
    /* Doubling keeps the copies linear in the final size; a capacity that would wrap takes
     * just what is needed instead. */
    while (c < len || c - len < need)
        c = c > SIZE_MAX / 2 ? len + need : c * 2;
    if (!(p = realloc(*data, c)))
        return -ENOMEM;
    *data = p;
    *cap = c;
    return 0;
}
