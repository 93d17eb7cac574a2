/* Text helpers of the base layer that more than one module needs: the edit distance behind
 * every "did you mean", hex and base64url codecs. One copy, so that each follows one rule. */
#ifndef CERTMON_TEXT_H
#define CERTMON_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* Bytes base64url (RFC 4648 section 5) needs for n input bytes, without padding, plus the
 * NUL. */
#define CM_B64URL_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0) + 1)

/* Encodes n bytes of in as base64url without padding into out (at least CM_B64URL_LEN(n)
 * bytes), NUL-terminated. Returns the length written (without the NUL), or -1 when out is
 * too small (out then holds ""; nothing is written when outlen is 0). */
long cm_base64url_encode(const void *in, size_t n, char *out, size_t outlen);

/* Formats a reason into err (errlen bytes), the way parsers that report "why" do; err NULL or
 * errlen 0: nothing is written. */
void cm_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Decodes a string of hex digit pairs (either case, no separators) into out. Returns the
 * number of bytes, or -1 for an odd length, a non-hex character or an out too small. */
long cm_hex_decode(const char *hex, unsigned char *out, size_t outlen);

/* Writes n bytes of in as lowercase hex digit pairs into out (at least 2n + 1 bytes),
 * NUL-terminated: the form fingerprints and serials have wherever certmon shows them. */
void cm_hex_encode(const void *in, size_t n, char *out);

/* qsort/bsearch comparator of two `const char *` elements, by strcmp. */
int cm_cmp_strp(const void *a, const void *b);

/* Copies in to out (outlen > 0), always NUL-terminated, with everything but printable ASCII
 * escaped: a backslash becomes "\\", control characters, DEL and bytes above 0x7e become
 * "\xHH". For text from peers (URLs, names) put into messages. Cut short (at a whole
 * escape) when out is too small; returns true when all of in fit. */
bool cm_text_escape(const char *in, char *out, size_t outlen);

/* Bytes cm_html_escape may write for len input bytes, with the NUL. */
#define CM_HTML_ESCAPE_MAX(len) ((len) * 6 + 1)

/* HTML-escapes len bytes of in into out (at least CM_HTML_ESCAPE_MAX(len) bytes), NUL-
 * terminated, for element text and for attribute values in double or single quotes alike:
 * & < > " ' become entities; control characters (tab and newline kept), DEL, NUL and bytes
 * that are not well-formed UTF-8 (cm_utf8_seq) become U+FFFD. Text from certificates and
 * peers goes through here before it reaches a page. Returns the length written. */
size_t cm_html_escape(const char *in, size_t len, char *out);

/* Bytes cm_url_encode may write for len input bytes, with the NUL. */
#define CM_URL_ENCODE_MAX(len) ((len) * 3 + 1)

/* Percent-encodes len bytes of in for a URL path segment or query value (RFC 3986: all but
 * ALPHA DIGIT - . _ ~ become %HH) into out (at least CM_URL_ENCODE_MAX(len) bytes),
 * NUL-terminated. Returns the length written. */
size_t cm_url_encode(const char *in, size_t len, char *out);

/* Unix seconds t as RFC 3339 UTC ("2027-01-27T23:59:59Z") into buf (len bytes; 21 suffice),
 * "invalid" when gmtime cannot represent t. */
void cm_time_rfc3339(int64_t t, char *buf, size_t len);

/* Length of the well-formed UTF-8 sequence at p (at most avail bytes, avail > 0), or 0 when
 * there is none: no overlong forms, no surrogates, nothing above U+10FFFF. The one UTF-8 rule
 * of certmon: every module that sanitises, escapes or validates text steps with it. */
size_t cm_utf8_seq(const unsigned char *p, size_t avail);

/* True when the len bytes at s are well-formed UTF-8 (cm_utf8_seq) with no NUL. */
bool cm_utf8_valid(const char *s, size_t len);

/* 64-bit FNV-1a: folds n bytes of p into h (start with CM_FNV1A_INIT). For in-memory hash
 * tables and change detection only, never for anything an attacker could aim at with
 * collisions that matter beyond a longer chain. */
#define CM_FNV1A_INIT 0xcbf29ce484222325ULL
uint64_t cm_fnv1a(uint64_t h, const void *p, size_t n);

/* cm_fnv1a of the NUL-terminated s, from CM_FNV1A_INIT. */
uint64_t cm_fnv1a_str(const char *s);

/* RFC 3339 ("2027-01-27T23:59:59Z", also with a fraction, which is dropped, or a numeric
 * offset) to Unix seconds in *out. Returns false for NULL or anything else. */
bool cm_rfc3339_parse(const char *s, int64_t *out);

#endif
