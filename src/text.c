#include "certmon/text.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

size_t cm_edit_distance(const char *a, const char *b, bool nocase)
{
    /* One row of the dynamic-programming table, sized by the bound checked just below: the
     * row can never be indexed past its end, whatever the callers pass. */
    size_t row[CM_EDIT_WORD_MAX + 1];
    size_t la, lb;

    if (!a || !b)
        return SIZE_MAX;
    la = strnlen(a, CM_EDIT_WORD_MAX + 1);
    lb = strnlen(b, CM_EDIT_WORD_MAX + 1);
    if (la > CM_EDIT_WORD_MAX || lb > CM_EDIT_WORD_MAX)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        unsigned char ca = (unsigned char)a[i - 1];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned char cb = (unsigned char)b[j - 1];
            size_t up = row[j];
            size_t v = diag + (nocase ? tolower(ca) != tolower(cb) : ca != cb);
            if (up + 1 < v)
                v = up + 1;
            if (row[j - 1] + 1 < v)
                v = row[j - 1] + 1;
            row[j] = v;
            diag = up;
        }
    }
    return row[lb];
}

void cm_suggest_init(struct cm_suggest *s, const char *word, size_t max, bool nocase)
{
    *s = (struct cm_suggest){.word = word, .max = max, .nocase = nocase, .best_d = SIZE_MAX};
}

void cm_suggest_add(struct cm_suggest *s, const char *cand)
{
    size_t wl, d;

    if (!cand || !s->word)
        return;
    wl = strlen(s->word);
    if (s->prefix && wl >= 3 &&
        !(s->nocase ? strncasecmp(cand, s->word, wl) : strncmp(cand, s->word, wl)))
        d = 1;
    else
        d = cm_edit_distance(s->word, cand, s->nocase);
    if (d > s->max || (s->shorter && d >= wl) || d >= s->best_d)
        return;
    s->best = cand;
    s->best_d = d;
}
