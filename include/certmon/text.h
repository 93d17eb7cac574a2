/* Text helpers of the base layer that more than one module needs: the edit distance behind
 * every "did you mean". One copy, so that each suggestion follows the same rule. */
#ifndef CERTMON_TEXT_H
#define CERTMON_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Longest word (in bytes) the edit distance compares; longer words are "far" (SIZE_MAX). The
 * work is one row of CM_EDIT_WORD_MAX + 1 counters on the stack, whatever the input. */
#define CM_EDIT_WORD_MAX 64

/* Levenshtein distance between a and b (insert, delete, substitute one byte: cost 1),
 * ASCII-case-insensitive when nocase. SIZE_MAX when either is longer than CM_EDIT_WORD_MAX
 * or NULL. */
size_t cm_edit_distance(const char *a, const char *b, bool nocase);

/* The nearest of a stream of candidates to one word, fed one at a time, so that no caller
 * needs an array sized for its largest table. Plain data: fill with cm_suggest_init. */
struct cm_suggest {
    const char *word; /* borrowed */
    size_t max;       /* farthest distance that still counts as a near miss */
    bool nocase;
    bool prefix;  /* a candidate the word begins (3 bytes or more) counts as distance 1 */
    bool shorter; /* the distance must also be less than the word's length ("ab" is no "cd") */
    /* read-only */
    const char *best; /* borrowed from the candidate given; NULL: none near enough yet */
    size_t best_d;
};

/* Starts a search for word (borrowed until the last cm_suggest_add). */
void cm_suggest_init(struct cm_suggest *s, const char *word, size_t max, bool nocase);

/* Considers cand (borrowed: s->best may point at it). The first of equally near candidates
 * wins. NULL is ignored. */
void cm_suggest_add(struct cm_suggest *s, const char *cand);

#endif
