#include "certmon/base/text.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>

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

long cm_base64url_encode(const void *in, size_t n, char *out, size_t outlen)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = in;
    size_t o = 0;

    if (outlen == 0)
        return -1;
    if (outlen < CM_B64URL_LEN(n)) {
        out[0] = '\0';
        return -1;
    }
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        size_t left = n - i;
        if (left > 1)
            v |= (uint32_t)p[i + 1] << 8;
        if (left > 2)
            v |= p[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        if (left > 1)
            out[o++] = alphabet[(v >> 6) & 63];
        if (left > 2)
            out[o++] = alphabet[v & 63];
    }
    out[o] = '\0';
    return (long)o;
}

void cm_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long cm_hex_decode(const char *hex, unsigned char *out, size_t outlen)
{
    size_t n = strlen(hex);

    if (n % 2 || n / 2 > outlen)
        return -1;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hex_value(hex[i]), lo = hex_value(hex[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i / 2] = (unsigned char)(hi << 4 | lo);
    }
    return (long)(n / 2);
}

int cm_cmp_strp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void cm_hex_encode(const void *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = in;

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bool cm_rfc3339_parse(const char *s, int64_t *out)
{
    struct tm tm = {0};
    int y, mo, d, h, mi, sec, oh, om, off = 0;
    const char *p;
    time_t t;

    if (!s || strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &sec))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return false;
    p = s + 19;
    if (*p == '.') {
        if (p[1] < '0' || p[1] > '9')
            return false;
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && digits(p + 1, 2, &oh) && p[3] == ':' &&
               digits(p + 4, 2, &om) && oh < 24 && om < 60) {
        off = (*p == '-' ? -1 : 1) * (oh * 3600 + om * 60);
        p += 6;
    } else {
        return false;
    }
    if (*p)
        return false;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    *out = (int64_t)t - off;
    return true;
}

bool cm_text_escape(const char *in, char *out, size_t outlen)
{
    static const char hexd[] = "0123456789abcdef";
    size_t o = 0;

    for (; *in; in++) {
        unsigned char ch = (unsigned char)*in;
        char esc[4];
        size_t n;
        if (ch == '\\') {
            esc[0] = esc[1] = '\\';
            n = 2;
        } else if (ch < 0x20 || ch > 0x7e) {
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hexd[ch >> 4];
            esc[3] = hexd[ch & 15];
            n = 4;
        } else {
            esc[0] = (char)ch;
            n = 1;
        }
        if (o + n >= outlen) {
            out[o] = '\0';
            return false;
        }
        memcpy(out + o, esc, n);
        o += n;
    }
    out[o] = '\0';
    return true;
}

void cm_time_rfc3339(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (!gmtime_r(&tt, &tm)) {
        snprintf(buf, len, "invalid");
        return;
    }
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

size_t cm_utf8_seq(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;
    size_t len;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4;
    else
        return 0;
    if (avail < len)
        return 0;
    /* The second byte's range excludes overlong forms, surrogates and code points past
     * U+10FFFF. */
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if ((p[k] & 0xC0) != 0x80)
            return 0;
    return len;
}

bool cm_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0, n; i < len; i += n)
        if (p[i] == 0 || !(n = cm_utf8_seq(p + i, len - i)))
            return false;
    return true;
}

uint64_t cm_fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t cm_fnv1a_str(const char *s)
{
    return cm_fnv1a(CM_FNV1A_INIT, s, strlen(s));
}

size_t cm_html_escape(const char *in, size_t len, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < len;) {
        unsigned char ch = (unsigned char)in[i];
        const char *ent = NULL;
        size_t n;
        switch (ch) {
        case '&':
            ent = "&amp;";
            break;
        case '<':
            ent = "&lt;";
            break;
        case '>':
            ent = "&gt;";
            break;
        case '"':
            ent = "&quot;";
            break;
        case '\'':
            ent = "&#39;";
            break;
        default:
            break;
        }
        if (!ent && ch >= 0x20 && ch < 0x7f) { /* the common case, without a call per byte */
            out[o++] = (char)ch;
            i++;
            continue;
        }
        if (ent) {
            n = strlen(ent);
            memcpy(out + o, ent, n);
            o += n;
            i++;
            continue;
        }
        if ((ch < 0x20 && ch != '\t' && ch != '\n') || ch == 0x7f ||
            !(n = cm_utf8_seq((const unsigned char *)in + i, len - i))) {
            /* One replacement character per bad byte: the reader sees where text was lost. */
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
            continue;
        }
        memcpy(out + o, in + i, n);
        o += n;
        i += n;
    }
    out[o] = '\0';
    return o;
}

size_t cm_url_encode(const char *in, size_t len, char *out)
{
    static const char hexd[] = "0123456789ABCDEF";
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hexd[ch >> 4];
            out[o++] = hexd[ch & 15];
        }
    }
    out[o] = '\0';
    return o;
}
