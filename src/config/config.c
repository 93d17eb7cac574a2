/* The configuration file: libconfig parses, one table per group checks (type, bounds,
 * default, where the value goes, as redis's config.c does), then cross-field checks.
 *
 * Every problem becomes one message and loading goes on, so that one run of config-check
 * shows all of them. Messages are collected with their file and line and sorted at the end:
 * checks that run late (duplicates) still come out in file order. */
#include "certmon/config/config.h"
#include "certmon/base/error.h"
#include "certmon/probe/starttls.h"
#include "certmon/base/text.h"
#include "certmon/probe/tlsio.h"
#include "certmon/base/log.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MS_SEC 1000ULL
#define MS_MIN (60 * MS_SEC)
#define MS_HOUR (60 * MS_MIN)
#define MS_DAY (24 * MS_HOUR)
#define NPOS ((size_t)-1)

/* ---- Durations ---- */

static const struct {
    const char *name;
    uint64_t ms;
} duration_units[] = {
    {"w", 7 * MS_DAY}, {"d", MS_DAY}, {"h", MS_HOUR}, {"m", MS_MIN}, {"s", MS_SEC}, {"ms", 1},
};
#define N_UNITS (sizeof(duration_units) / sizeof(duration_units[0]))

#define DURATION_FORMS                                                                             \
    "a duration is a number of seconds, or numbers with units (ms, s, m, h, d, w) from the "       \
    "largest to the smallest, e.g. \"250ms\", \"90s\", \"5m\", \"1h30m\", \"2d\""

static int duration_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int duration_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    if (!err || !errlen)
        return CM_EBADARG;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    n = strlen(err);
    snprintf(err + n, errlen - n, " (%s)", DURATION_FORMS);
    return CM_EBADARG;
}

int cm_duration_parse(const char *s, uint64_t *out_ms, char *err, size_t errlen)
{
    uint64_t total = 0;
    size_t last_unit = 0; /* index + 1 of the previous unit: units must go downwards */
    const char *p = s;

    if (!s || !*s)
        return duration_fail(err, errlen, "empty duration");
    if (*s == '-')
        return duration_fail(err, errlen, "'%s': a duration cannot be negative", s);
    while (*p) {
        const char *num = p, *unit;
        unsigned long long v;
        size_t ulen, u;

        if (!isdigit((unsigned char)*p))
            return duration_fail(err, errlen, "'%s': expected a number at '%s'", s, p);
        while (isdigit((unsigned char)*p))
            p++;
        unit = p;
        while (isalpha((unsigned char)*p))
            p++;
        ulen = (size_t)(p - unit);
        errno = 0;
        v = strtoull(num, NULL, 10);
        if (errno == ERANGE)
            return duration_fail(err, errlen, "'%s' is too long: at most 100 years", s);
        if (ulen == 0) {
            if (num == s && *p == '\0') { /* a plain number of seconds */
                if (v > CM_DURATION_MAX_MS / MS_SEC)
                    return duration_fail(err, errlen, "'%s' is too long: at most 100 years", s);
                *out_ms = v * MS_SEC;
                return 0;
            }
            if (*p == '\0')
                return duration_fail(err, errlen, "'%s': missing unit after %.*s", s,
                                     (int)(p - num), num);
            return duration_fail(err, errlen, "'%s': unexpected '%c'", s, *p);
        }
        for (u = 0; u < N_UNITS; u++)
            if (strlen(duration_units[u].name) == ulen &&
                !strncmp(unit, duration_units[u].name, ulen))
                break;
        if (u == N_UNITS)
            return duration_fail(err, errlen, "'%s': unknown unit '%.*s'", s, (int)ulen, unit);
        if (u + 1 <= last_unit)
            return duration_fail(err, errlen,
                                 "'%s': units must go from the largest to the smallest, each "
                                 "at most once",
                                 s);
        last_unit = u + 1;
        if (v > CM_DURATION_MAX_MS / duration_units[u].ms ||
            total + v * duration_units[u].ms > CM_DURATION_MAX_MS)
            return duration_fail(err, errlen, "'%s' is too long: at most 100 years", s);
        total += v * duration_units[u].ms;
    }
    *out_ms = total;
    return 0;
}

void cm_duration_format(uint64_t ms, char *buf, size_t len)
{
    /* Weeks are left out on purpose: "30d" reads better than "4w2d". */
    size_t n = 0;

    if (!buf || !len)
        return;
    buf[0] = '\0';
    if (ms == 0) {
        snprintf(buf, len, "0s");
        return;
    }
    for (size_t u = 1; u < N_UNITS && ms; u++) {
        uint64_t q = ms / duration_units[u].ms;
        if (!q)
            continue;
        ms -= q * duration_units[u].ms;
        int w = snprintf(buf + n, len - n, "%llu%s", (unsigned long long)q, duration_units[u].name);
        if (w < 0 || (size_t)w >= len - n)
            return;
        n += (size_t)w;
    }
}

/* ---- Small helpers ---- */

/* The candidate closest to word within an edit distance of 2 (and less than the word's
 * length, so that "ab" does not suggest "cd"), or NULL. A candidate the word begins
 * ("warn" for "warning") counts as distance 1. */
/* Starts a "did you mean" search with the loader's rule. */
static void suggest_init(struct cm_suggest *sg, const char *word)
{
    cm_suggest_init(sg, word, 2, true);
    sg->prefix = true;
    sg->shorter = true;
}

static const char *closest(const char *word, const char *const *cands, size_t n)
{
    struct cm_suggest sg;

    suggest_init(&sg, word);
    for (size_t i = 0; i < n; i++)
        cm_suggest_add(&sg, cands[i]);
    return sg.best;
}

/* Joins dir and p (unless p is absolute) and drops "." components and repeated slashes.
 * ".." is kept: through a symbolic link it does not mean the directory written before it. */
static char *path_clean(const char *dir, const char *p)
{
    size_t n = (dir ? strlen(dir) : 0) + strlen(p) + 3, o = 0;
    char *raw = malloc(n), *out = malloc(n);
    const char *s;

    if (!raw || !out) {
        free(raw);
        free(out);
        return NULL;
    }
    snprintf(raw, n, p[0] == '/' || !dir ? "%s%s" : "%s/%s", p[0] == '/' || !dir ? "" : dir, p);
    for (s = raw; *s;) {
        size_t len;
        while (*s == '/')
            s++;
        len = strcspn(s, "/");
        if (len == 0)
            break;
        if (!(len == 1 && s[0] == '.')) {
            out[o++] = '/';
            memcpy(out + o, s, len);
            o += len;
        }
        s += len;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    free(raw);
    return out;
}

static char *path_dir(const char *abs)
{
    const char *slash = strrchr(abs, '/');

    return slash == abs ? strdup("/") : strndup(abs, (size_t)(slash - abs));
}

/* A set of strings with an int each (open addressing, grows at half full). */
struct smap {
    char **keys;
    int *vals;
    size_t cap, n;
};

static size_t smap_slot(const struct smap *m, const char *k)
{
    size_t i = (size_t)cm_fnv1a(CM_FNV1A_INIT, k, strlen(k)) & (m->cap - 1);

    while (m->keys[i] && strcmp(m->keys[i], k))
        i = (i + 1) & (m->cap - 1);
    return i;
}

static int *smap_get(const struct smap *m, const char *k)
{
    size_t i;

    if (!m->cap)
        return NULL;
    i = smap_slot(m, k);
    return m->keys[i] ? &m->vals[i] : NULL;
}

static int smap_put(struct smap *m, const char *k, int v)
{
    size_t i;

    if ((m->n + 1) * 2 > m->cap) {
        struct smap g = {NULL, NULL, m->cap ? m->cap * 2 : 64, 0};
        g.keys = calloc(g.cap, sizeof(*g.keys));
        g.vals = calloc(g.cap, sizeof(*g.vals));
        if (!g.keys || !g.vals) {
            free(g.keys);
            free(g.vals);
            return -ENOMEM;
        }
        for (size_t j = 0; j < m->cap; j++) {
            if (m->keys[j]) {
                size_t s = smap_slot(&g, m->keys[j]);
                g.keys[s] = m->keys[j];
                g.vals[s] = m->vals[j];
                g.n++;
            }
        }
        free(m->keys);
        free(m->vals);
        *m = g;
    }
    i = smap_slot(m, k);
    if (!m->keys[i]) {
        if (!(m->keys[i] = strdup(k)))
            return -ENOMEM;
        m->n++;
    }
    m->vals[i] = v;
    return 0;
}

static void smap_free(struct smap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* ---- The loader ---- */

/* One file of the configuration (the main file or an @include), read whole by the loader
 * itself: libconfig only ever sees the text with every include already in place. */
struct srcfile {
    const char *abs; /* entry of cfg->files */
    char *raw;       /* the file's bytes, NUL-terminated (it holds no other NUL) */
    size_t len;
    bool split;
    char *text;   /* copy of raw with '\n' replaced by '\0', made when a line is needed */
    char **lines; /* into text */
    size_t nlines;
};

/* A run of lines of the text given to libconfig that come from one file: line `first` of the
 * whole text is line `src_first` of srcs[src], and so on until the next segment. */
struct segment {
    int first;
    size_t src;
    int src_first;
};

struct problem {
    size_t rank; /* of its file in cfg->files */
    int line;
    size_t seq;
    char *msg;
};

struct loader {
    struct cm_config *cfg;
    config_t lc;
    struct problem *probs;
    size_t nprobs, capprobs;
    struct srcfile *srcs;
    size_t nsrcs;
    struct segment *segs; /* by first line, ascending */
    size_t nsegs, capsegs;
    size_t bytes_read;    /* over every file, against CM_CONFIG_MAX_BYTES */
    struct smap readable; /* path -> errno of opening it (0: readable) */
    bool nomem;
    struct cm_config_origin *name_at; /* per cfg->targets entry: its `name` setting, if any */
    /* The policy a target starts from and shares when it sets no policy key: cfg's; a
     * discovery source's for the targets it finds. NULL: cfg->policy. */
    const struct cm_policy *policy;
};

static char *ldup(struct loader *L, const char *s)
{
    char *p;

    if (!s)
        return NULL;
    if (!(p = strdup(s)))
        L->nomem = true;
    return p;
}

static const char *file_entry(struct loader *L, const char *abs)
{
    struct cm_config *cfg = L->cfg;
    char **n;

    for (size_t i = 0; i < cfg->file_count; i++)
        if (!strcmp(cfg->files[i], abs))
            return cfg->files[i];
    if (!(n = realloc(cfg->files, (cfg->file_count + 1) * sizeof(*n)))) {
        L->nomem = true;
        return NULL;
    }
    cfg->files = n;
    if (!(n[cfg->file_count] = strdup(abs))) {
        L->nomem = true;
        return NULL;
    }
    return n[cfg->file_count++];
}

/* The file and line that line `line` of the text libconfig parsed comes from. */
static struct srcfile *locate(struct loader *L, int line, int *src_line_out)
{
    static struct srcfile unknown = {.abs = "?", .split = true};
    size_t lo = 0, hi = L->nsegs;

    /* The last segment starting at or before line (segments are sorted by first line; an
     * empty include leaves two with the same first line, and the later one holds). */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (L->segs[mid].first <= line)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) {
        *src_line_out = line;
        return L->nsrcs ? &L->srcs[0] : &unknown;
    }
    *src_line_out = L->segs[lo - 1].src_first + (line - L->segs[lo - 1].first);
    return &L->srcs[L->segs[lo - 1].src];
}

static size_t file_rank(const struct loader *L, const char *file)
{
    for (size_t i = 0; i < L->cfg->file_count; i++)
        if (L->cfg->files[i] == file)
            return i;
    return L->cfg->file_count;
}

/* Line n (from 1) of the file, or NULL when it has no such line. */
static const char *src_line(struct srcfile *sf, int n)
{
    if (!sf->split) {
        size_t lines = 1;

        sf->split = true;
        if (!sf->raw || !(sf->text = malloc(sf->len + 1)))
            return NULL;
        memcpy(sf->text, sf->raw, sf->len + 1);
        for (size_t i = 0; i < sf->len; i++)
            lines += sf->text[i] == '\n';
        if (!(sf->lines = malloc(lines * sizeof(*sf->lines))))
            return NULL;
        sf->lines[sf->nlines++] = sf->text;
        for (size_t i = 0; i < sf->len; i++) {
            if (sf->text[i] == '\n') {
                sf->text[i] = '\0';
                if (i + 1 < sf->len)
                    sf->lines[sf->nlines++] = sf->text + i + 1;
            }
        }
    }
    if (!sf->lines || n < 1 || (size_t)n > sf->nlines)
        return NULL;
    return sf->lines[n - 1];
}

static void add_problem(struct loader *L, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records "FILE:LINE: ..." (file is an entry of cfg->files; line 0 leaves ":LINE" out; no
 * file leaves both out). */
static void add_problem(struct loader *L, const char *file, int line, const char *fmt, ...)
{
    char body[1536];
    char *msg;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    if (!file)
        msg = strdup(body);
    else if (line > 0 ? asprintf(&msg, "%s:%d: %s", file, line, body) < 0
                      : asprintf(&msg, "%s: %s", file, body) < 0)
        msg = NULL;
    if (!msg) {
        L->nomem = true;
        return;
    }
    if (L->nprobs == L->capprobs) {
        size_t cap = L->capprobs ? L->capprobs * 2 : 16;
        struct problem *n = realloc(L->probs, cap * sizeof(*n));
        if (!n) {
            free(msg);
            L->nomem = true;
            return;
        }
        L->probs = n;
        L->capprobs = cap;
    }
    L->probs[L->nprobs] = (struct problem){file_rank(L, file), line, L->nprobs, msg};
    L->nprobs++;
}

static void err_at(struct loader *L, const config_setting_t *s, const char *path, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

/* Records "FILE:LINE: PATH: problem" for setting s. */
static void err_at(struct loader *L, const config_setting_t *s, const char *path, const char *fmt,
                   ...)
{
    int line;
    struct srcfile *sf = locate(L, (int)config_setting_source_line(s), &line);
    char body[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    add_problem(L, sf->abs, line, "%s: %s", path, body);
}

static struct cm_config_origin origin_of(struct loader *L, const config_setting_t *s)
{
    struct srcfile *sf;
    int line;

    if (!s)
        return (struct cm_config_origin){NULL, 0};
    sf = locate(L, (int)config_setting_source_line(s), &line);
    return (struct cm_config_origin){sf->abs, line};
}

/* 0 when path can be opened for reading and is a regular file, else an errno value (EINVAL:
 * not a regular file). Cached: ten thousand targets usually share a handful of CA files. */
static int readable(struct loader *L, const char *path)
{
    int *hit = smap_get(&L->readable, path);
    struct stat st;
    int fd, e = 0;

    if (hit)
        return *hit;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        e = errno;
    else if (fstat(fd, &st) < 0)
        e = errno;
    else if (S_ISDIR(st.st_mode))
        e = EISDIR;
    else if (!S_ISREG(st.st_mode))
        e = EINVAL;
    if (fd >= 0)
        close(fd);
    if (smap_put(&L->readable, path, e) < 0)
        L->nomem = true;
    return e;
}

static const char *type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a floating-point number";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a boolean";
    case CONFIG_TYPE_GROUP:
        return "a group { ... }";
    case CONFIG_TYPE_ARRAY:
        return "an array [ ... ]";
    case CONFIG_TYPE_LIST:
        return "a list ( ... )";
    default:
        return "nothing";
    }
}

/* libconfig 1.5 reads an integer literal with atoi(): one outside the range of int wraps
 * silently (3000000000 reads as -1294967296, 4294967739 as 443). The setting's line is read
 * again to catch that. Returns false, with the literal in lit, when the line holds a literal
 * for this setting and none of them is the value read. */
static bool int_matches_source(struct loader *L, const config_setting_t *s, long long value,
                               char *lit, size_t litlen)
{
    const char *name = config_setting_name(s);
    int at;
    struct srcfile *sf = locate(L, (int)config_setting_source_line(s), &at);
    const char *line = src_line(sf, at);
    size_t nlen;
    bool mismatch = false;

    if (!name || !line)
        return true;
    nlen = strlen(name);
    for (const char *p = line; (p = strstr(p, name)); p += nlen) {
        const char *q = p + nlen, *start, *digits;
        int base = 10;
        char buf[64];
        long long v;

        if (p > line && (isalnum((unsigned char)p[-1]) || strchr("_-*", p[-1])))
            continue;
        q += strspn(q, " \t");
        if (*q != '=' && *q != ':')
            continue;
        q++;
        q += strspn(q, " \t");
        start = q;
        if (*q == '-' || *q == '+')
            q++;
        if (q[0] == '0' && (q[1] == 'x' || q[1] == 'X')) {
            base = 16;
            q += 2;
        }
        digits = q;
        while (base == 16 ? isxdigit((unsigned char)*q) : isdigit((unsigned char)*q))
            q++;
        if (q == digits || isalnum((unsigned char)*q) || *q == '.' || *q == '_')
            continue; /* not a plain int literal: 64-bit, float, or something else */
        snprintf(buf, sizeof(buf), "%.*s", (int)(q - start), start);
        errno = 0;
        v = strtoll(buf, NULL, base);
        if (errno == 0 && (size_t)(q - start) < sizeof(buf) - 1 && v == value)
            return true;
        mismatch = true;
        snprintf(lit, litlen, "%.*s", (int)(q - start > 40 ? 40 : q - start), start);
    }
    return !mismatch;
}

/* ---- Tables ---- */

enum ktype {
    KT_INT,          /* integer in [min, max] */
    KT_BOOL,         /* true or false */
    KT_STRING,       /* non-empty string */
    KT_PATH,         /* non-empty string: a path, made absolute against the config dir */
    KT_DURATION,     /* duration in [min, max] ms */
    KT_DURATION_OFF, /* the same, or "off" (stored as 0) */
    KT_STRINGS,      /* array or list of strings */
    KT_LISTEN,       /* a string, or an array or list of strings */
    KT_LABELS,       /* a group of strings */
};

enum kstore { S_NONE, S_U64, S_INT, S_UINT, S_BOOL, S_STR };

#define F_READABLE 1u /* KT_PATH: the file must be readable now */
/* Targets and file entries: the value goes into the target's own cm_config_target_opt (made on
 * the first such key), base being the cm_config_target. */
#define F_OPT 2u

struct key {
    const char *name;
    enum ktype type;
    enum kstore store; /* where the checked value goes: at base + off */
    size_t off;
    long long min, max; /* integers: bounds; durations: bounds in ms */
    long long dflt;     /* default, for the global groups (targets inherit from global) */
    unsigned flags;
};

#define DMAX ((long long)CM_DURATION_MAX_MS)

enum {
    GK_INTERVAL,
    GK_TIMEOUT,
    GK_CONCURRENCY,
    GK_STATE_FILE,
    GK_POSTURE_INTERVAL,
    GK_STARTUP_SPREAD,
    GK_RETRY_INTERVAL,
    GK_HISTORY_DAYS,
    GK_CHANGE_WINDOW,
    GK_NOTIFY_RENEWALS,
    GK_N
};
static const struct key global_keys[GK_N] = {
    [GK_INTERVAL] = {"interval", KT_DURATION, S_U64, offsetof(struct cm_config, interval_ms),
                     MS_SEC, DMAX, MS_HOUR, 0},
    [GK_TIMEOUT] = {"timeout", KT_DURATION, S_U64, offsetof(struct cm_config, timeout_ms), 100,
                    10 * MS_MIN, 10 * MS_SEC, 0},
    [GK_CONCURRENCY] = {"concurrency", KT_INT, S_UINT, offsetof(struct cm_config, concurrency), 1,
                        10000, 64, 0},
    [GK_STATE_FILE] = {"state_file", KT_PATH, S_STR, offsetof(struct cm_config, state_file), 0, 0,
                       0, 0},
    [GK_POSTURE_INTERVAL] = {"posture_interval", KT_DURATION_OFF, S_U64,
                             offsetof(struct cm_config, posture_interval_ms), MS_MIN, DMAX, MS_DAY,
                             0},
    [GK_STARTUP_SPREAD] = {"startup_spread", KT_DURATION, S_U64,
                           offsetof(struct cm_config, startup_spread_ms), 0, DMAX, 5 * MS_MIN, 0},
    [GK_RETRY_INTERVAL] = {"retry_interval", KT_DURATION, S_U64,
                           offsetof(struct cm_config, retry_min_ms), MS_SEC, DMAX, 30 * MS_SEC, 0},
    [GK_HISTORY_DAYS] = {"history_days", KT_INT, S_UINT, offsetof(struct cm_config, history_days),
                         1, 36500, 400, 0},
    [GK_CHANGE_WINDOW] = {"change_window", KT_DURATION, S_U64,
                          offsetof(struct cm_config, change_window_ms), MS_MIN, DMAX, MS_DAY, 0},
    [GK_NOTIFY_RENEWALS] = {"notify_renewals", KT_BOOL, S_BOOL,
                            offsetof(struct cm_config, notify_renewals), 0, 0, 0, 0},
};

/* Policy keys: in global and in every target and file entry; base is a struct cm_policy. */
enum {
    PK_WARN_DAYS,
    PK_CRIT_DAYS,
    PK_WARN_LIFETIME_PCT,
    PK_CRIT_LIFETIME_PCT,
    PK_MAX_LIFETIME_DAYS,
    PK_MIN_RSA_BITS,
    PK_MIN_EC_BITS,
    PK_ALLOW_SELF_SIGNED,
    PK_IGNORE,
    PK_SEVERITY,
    PK_INTERCEPTION_ROOTS_FILE,
    PK_REVOCATION,
    PK_REVOCATION_TIMEOUT,
    PK_N
};
static const struct key policy_keys[PK_N] = {
    [PK_WARN_DAYS] = {"warn_days", KT_INT, S_INT, offsetof(struct cm_policy, warn_days), 0, 3650,
                      30, 0},
    [PK_CRIT_DAYS] = {"crit_days", KT_INT, S_INT, offsetof(struct cm_policy, crit_days), 0, 3650, 7,
                      0},
    /* 0 % would turn the level off behind the user's back: warn_days = 0 says that. */
    [PK_WARN_LIFETIME_PCT] = {"warn_lifetime_pct", KT_INT, S_UINT,
                              offsetof(struct cm_policy, warn_lifetime_pct), 1, 100, 33, 0},
    [PK_CRIT_LIFETIME_PCT] = {"crit_lifetime_pct", KT_INT, S_UINT,
                              offsetof(struct cm_policy, crit_lifetime_pct), 1, 100, 10, 0},
    /* 0: the CA/Browser Forum schedule by issuance date (so a target can return to it). */
    [PK_MAX_LIFETIME_DAYS] = {"max_lifetime_days", KT_INT, S_INT,
                              offsetof(struct cm_policy, max_lifetime_days), 0, 36500, 0, 0},
    [PK_MIN_RSA_BITS] = {"min_rsa_bits", KT_INT, S_UINT, offsetof(struct cm_policy, min_rsa_bits),
                         512, 16384, 2048, 0},
    [PK_MIN_EC_BITS] = {"min_ec_bits", KT_INT, S_UINT, offsetof(struct cm_policy, min_ec_bits), 160,
                        571, 256, 0},
    [PK_ALLOW_SELF_SIGNED] = {"allow_self_signed", KT_BOOL, S_BOOL,
                              offsetof(struct cm_policy, allow_self_signed), 0, 0, 0, 0},
    [PK_IGNORE] = {"ignore", KT_STRINGS, S_NONE, 0, 0, 0, 0, 0},
    [PK_SEVERITY] = {"severity", KT_STRINGS, S_NONE, 0, 0, 0, 0, 0},
    /* Read by read_roots: the policy borrows the list's text from the config. */
    [PK_INTERCEPTION_ROOTS_FILE] = {"interception_roots_file", KT_PATH, S_NONE, 0, 0, 0, 0, 0},
    /* Read by read_revocation: "auto", "staple-only" or "off". */
    [PK_REVOCATION] = {"revocation", KT_STRING, S_NONE, 0, 0, 0, 0, 0},
    /* The bounds and default of the probe's own timeout. */
    [PK_REVOCATION_TIMEOUT] = {"revocation_timeout", KT_DURATION, S_U64,
                               offsetof(struct cm_policy, revocation_timeout_ms), 100, 10 * MS_MIN,
                               10 * MS_SEC, 0},
};

enum { LK_LEVEL, LK_SYSLOG, LK_N };
static const struct key log_keys[LK_N] = {
    [LK_LEVEL] = {"level", KT_STRING, S_NONE, 0, 0, 0, 0, 0},
    [LK_SYSLOG] = {"syslog", KT_BOOL, S_BOOL, offsetof(struct cm_config, log_syslog), 0, 0, 0, 0},
};

enum {
    MK_LISTEN,
    MK_TLS_CERT,
    MK_TLS_KEY,
    MK_CLIENT_CA,
    MK_ALLOW_ANY_TARGET,
    MK_HEAD_TIMEOUT,
    MK_MAX_CONNECTIONS,
    MK_MAX_PER_CLIENT,
    MK_PAGE_SIZE,
    MK_N
};
static const struct key metrics_keys[MK_N] = {
    [MK_LISTEN] = {"listen", KT_LISTEN, S_NONE, 0, 0, 0, 0, 0},
    [MK_TLS_CERT] = {"tls_cert", KT_PATH, S_STR, offsetof(struct cm_config, tls_cert), 0, 0, 0,
                     F_READABLE},
    [MK_TLS_KEY] = {"tls_key", KT_PATH, S_STR, offsetof(struct cm_config, tls_key), 0, 0, 0,
                    F_READABLE},
    [MK_CLIENT_CA] = {"client_ca", KT_PATH, S_STR, offsetof(struct cm_config, client_ca), 0, 0, 0,
                      F_READABLE},
    [MK_ALLOW_ANY_TARGET] = {"allow_any_target", KT_BOOL, S_BOOL,
                             offsetof(struct cm_config, allow_any_target), 0, 0, 0, 0},
    [MK_HEAD_TIMEOUT] = {"head_timeout", KT_DURATION, S_U64,
                         offsetof(struct cm_config, head_timeout_ms), 100, 5 * MS_MIN, 10 * MS_SEC,
                         0},
    [MK_MAX_CONNECTIONS] = {"max_connections", KT_INT, S_UINT,
                            offsetof(struct cm_config, max_connections), 2, 10000, 64, 0},
    [MK_MAX_PER_CLIENT] = {"max_connections_per_client", KT_INT, S_UINT,
                           offsetof(struct cm_config, max_per_client), 1, 10000, 0, 0},
    [MK_PAGE_SIZE] = {"page_size", KT_INT, S_UINT, offsetof(struct cm_config, page_size), 10,
                      10000, 500, 0},
};

/* Targets: defaults come from global, not from the table. */
enum {
    TK_HOST,
    TK_PORT,
    TK_NAME,
    TK_SNI,
    TK_STARTTLS,
    TK_CONNECT_ADDRESS,
    TK_CA_FILE,
    TK_CLIENT_CERT,
    TK_CLIENT_KEY,
    TK_LABELS,
    TK_INTERVAL,
    TK_TIMEOUT,
    TK_POSTURE_INTERVAL,
    TK_POSTURE,
    TK_ARI_URL,
    TK_ACME_DIRECTORY,
    TK_PIN_SHA256,
    TK_PIN,
    TK_NOTIFY_RENEWALS,
    TK_EXPECT_FILE,
    TK_DEPLOY_GRACE,
    TK_N
};
static const struct key target_keys[TK_N] = {
    [TK_HOST] = {"host", KT_STRING, S_NONE, 0, 0, 0, 0, 0},
    [TK_PORT] = {"port", KT_INT, S_NONE, 0, 1, 65535, CM_DEFAULT_PORT, 0},
    [TK_NAME] = {"name", KT_STRING, S_NONE, 0, 0, 0, 0, 0},
    [TK_SNI] = {"sni", KT_STRING, S_NONE, 0, 0, 0, 0, 0},
    [TK_STARTTLS] = {"starttls", KT_STRING, S_NONE, 0, 0, 0, 0, 0},
    [TK_CONNECT_ADDRESS] = {"connect_address", KT_STRING, S_NONE, 0, 0, 0, 0, 0},
    [TK_CA_FILE] = {"ca_file", KT_PATH, S_STR, offsetof(struct cm_config_target_opt, ca_file), 0, 0, 0,
                    F_READABLE | F_OPT},
    [TK_CLIENT_CERT] = {"client_cert", KT_PATH, S_STR,
                        offsetof(struct cm_config_target_opt, client_cert), 0, 0, 0,
                        F_READABLE | F_OPT},
    [TK_CLIENT_KEY] = {"client_key", KT_PATH, S_STR, offsetof(struct cm_config_target_opt, client_key),
                       0, 0, 0, F_READABLE | F_OPT},
    [TK_LABELS] = {"labels", KT_LABELS, S_NONE, 0, 0, 0, 0, 0},
    [TK_INTERVAL] = {"interval", KT_DURATION, S_U64, offsetof(struct cm_config_target, interval_ms),
                     MS_SEC, DMAX, 0, 0},
    [TK_TIMEOUT] = {"timeout", KT_DURATION, S_U64, offsetof(struct cm_config_target, timeout_ms),
                    100, 10 * MS_MIN, 0, 0},
    [TK_POSTURE_INTERVAL] = {"posture_interval", KT_DURATION_OFF, S_U64,
                             offsetof(struct cm_config_target, posture_interval_ms), MS_MIN, DMAX,
                             0, 0},
    [TK_POSTURE] = {"posture", KT_BOOL, S_NONE, 0, 0, 0, 0, 0},
    [TK_ARI_URL] = {"ari_url", KT_STRING, S_STR, offsetof(struct cm_config_target_opt, ari_url), 0,
                    0, 0, F_OPT},
    [TK_ACME_DIRECTORY] = {"acme_directory", KT_STRING, S_STR,
                           offsetof(struct cm_config_target_opt, acme_directory), 0, 0, 0, F_OPT},
    [TK_PIN_SHA256] = {"pin_sha256", KT_STRINGS, S_NONE, 0, 0, 0, 0, 0},
    /* Read by read_pin_mode: "tofu". */
    [TK_PIN] = {"pin", KT_STRING, S_NONE, 0, 0, 0, 0, 0},
    [TK_NOTIFY_RENEWALS] = {"notify_renewals", KT_BOOL, S_BOOL,
                            offsetof(struct cm_config_target, notify_renewals), 0, 0, 0, 0},
    /* Not F_READABLE: a file that is missing for a while is a finding, not a config error. */
    [TK_EXPECT_FILE] = {"expect_file", KT_PATH, S_STR,
                        offsetof(struct cm_config_target_opt, expect_file), 0, 0, 0, F_OPT},
    [TK_DEPLOY_GRACE] = {"deploy_grace", KT_DURATION, S_U64,
                         offsetof(struct cm_config_target_opt, deploy_grace_ms), 0, DMAX, 0,
                         F_OPT},
};

enum { FK_PATH, FK_LABELS, FK_INTERVAL, FK_CA_FILE, FK_PASSWORD, FK_PASSWORD_FILE, FK_N };
static const struct key file_keys[FK_N] = {
    [FK_PATH] = {"path", KT_PATH, S_STR, offsetof(struct cm_config_target_opt, path), 0, 0, 0,
                 F_OPT},
    /* Where the issuer of a file's last certificate is looked up for revocation checks. */
    [FK_CA_FILE] = {"ca_file", KT_PATH, S_STR, offsetof(struct cm_config_target_opt, ca_file), 0, 0,
                    0, F_READABLE | F_OPT},
    [FK_LABELS] = {"labels", KT_LABELS, S_NONE, 0, 0, 0, 0, 0},
    [FK_INTERVAL] = {"interval", KT_DURATION, S_U64, offsetof(struct cm_config_target, interval_ms),
                     MS_SEC, DMAX, 0, 0},
    /* Keystores and encrypted keys; read by read_password (a secret: never logged). */
    [FK_PASSWORD] = {"password", KT_STRING, S_NONE, 0, 0, 0, 0, 0},
    [FK_PASSWORD_FILE] = {"password_file", KT_PATH, S_NONE, 0, 0, 0, 0, 0},
};

/* discovery = ( { ... } ): where targets come from (files), and defaults for them. */
enum {
    DK_NAME,
    DK_FILES,
    DK_REFRESH,
    DK_LABELS,
    DK_INTERVAL,
    DK_TIMEOUT,
    DK_POSTURE_INTERVAL,
    DK_POSTURE,
    DK_STARTTLS,
    DK_CA_FILE,
    DK_CLIENT_CERT,
    DK_CLIENT_KEY,
    DK_SRV,
    DK_MX,
    DK_PORT,
    DK_N
};
#define DISC_OFF(f) offsetof(struct cm_config_discovery, f)
static const struct key discovery_keys[DK_N] = {
    [DK_NAME] = {"name", KT_STRING, S_NONE, 0, 0, 0, 0, 0},
    [DK_FILES] = {"files", KT_STRINGS, S_NONE, 0, 0, 0, 0, 0},
    [DK_REFRESH] = {"refresh", KT_DURATION, S_U64, DISC_OFF(refresh_ms), MS_SEC, DMAX,
                    30 * MS_SEC, 0},
    [DK_LABELS] = {"labels", KT_LABELS, S_NONE, 0, 0, 0, 0, 0},
    [DK_INTERVAL] = {"interval", KT_DURATION, S_U64, DISC_OFF(interval_ms), MS_SEC, DMAX, 0, 0},
    [DK_TIMEOUT] = {"timeout", KT_DURATION, S_U64, DISC_OFF(timeout_ms), 100, 10 * MS_MIN, 0, 0},
    [DK_POSTURE_INTERVAL] = {"posture_interval", KT_DURATION_OFF, S_U64,
                             DISC_OFF(posture_interval_ms), MS_MIN, DMAX, 0, 0},
    [DK_POSTURE] = {"posture", KT_BOOL, S_NONE, 0, 0, 0, 0, 0},
    [DK_STARTTLS] = {"starttls", KT_STRING, S_STR, DISC_OFF(starttls), 0, 0, 0, 0},
    [DK_CA_FILE] = {"ca_file", KT_PATH, S_STR, DISC_OFF(ca_file), 0, 0, 0, F_READABLE},
    [DK_CLIENT_CERT] = {"client_cert", KT_PATH, S_STR, DISC_OFF(client_cert), 0, 0, 0,
                        F_READABLE},
    [DK_CLIENT_KEY] = {"client_key", KT_PATH, S_STR, DISC_OFF(client_key), 0, 0, 0, F_READABLE},
    [DK_SRV] = {"srv", KT_STRING, S_NONE, 0, 0, 0, 0, 0},
    [DK_MX] = {"mx", KT_STRING, S_NONE, 0, 0, 0, 0, 0},
    [DK_PORT] = {"port", KT_INT, S_UINT, DISC_OFF(port), 1, 65535, 0, 0},
};

enum {
    NK_NAME,
    NK_TYPE,
    NK_URL,
    NK_URLS,
    NK_MIN_SEVERITY,
    NK_FINDINGS,
    NK_MATCH,
    NK_FOR,
    NK_GROUP_WAIT,
    NK_REPEAT,
    NK_TIMEOUT,
    NK_MAX_AGE,
    NK_RESEND,
    NK_CA_FILE,
    NK_HEADERS,
    NK_SECRET,
    NK_FROM,
    NK_TO,
    NK_STARTTLS,
    NK_USERNAME,
    NK_PASSWORD,
    NK_GENERATOR_URL,
    NK_ROUTING_KEY,
    NK_ROUTING_KEY_FILE,
    NK_CLIENT_URL,
    NK_BOT_TOKEN,
    NK_BOT_TOKEN_FILE,
    NK_CHAT_ID,
    NK_PARSE_MODE,
    NK_TOKEN,
    NK_TOKEN_FILE,
    NK_N
};
#define NOTIFIER_OFF(f) offsetof(struct cm_config_notifier, f)
static const struct key notifier_keys[NK_N] = {
    [NK_NAME] = {"name", KT_STRING, S_NONE, 0, 0, 0, 0, 0},
    [NK_TYPE] = {"type", KT_STRING, S_NONE, 0, 0, 0, 0, 0},
    [NK_URL] = {"url", KT_STRING, S_STR, NOTIFIER_OFF(url), 0, 0, 0, 0},
    [NK_URLS] = {"urls", KT_STRINGS, S_NONE, 0, 0, 0, 0, 0},
    [NK_MIN_SEVERITY] = {"min_severity", KT_STRING, S_NONE, 0, 0, 0, 0, 0},
    [NK_FINDINGS] = {"findings", KT_STRINGS, S_NONE, 0, 0, 0, 0, 0},
    [NK_MATCH] = {"match", KT_LABELS, S_NONE, 0, 0, 0, 0, 0},
    [NK_FOR] = {"for", KT_DURATION, S_U64, NOTIFIER_OFF(for_ms), 0, DMAX, 0, 0},
    [NK_GROUP_WAIT] = {"group_wait", KT_DURATION, S_U64, NOTIFIER_OFF(group_wait_ms), 0,
                       MS_HOUR, 30 * MS_SEC, 0},
    [NK_REPEAT] = {"repeat_interval", KT_DURATION_OFF, S_U64, NOTIFIER_OFF(repeat_ms), MS_MIN,
                   DMAX, MS_DAY, 0},
    [NK_TIMEOUT] = {"timeout", KT_DURATION, S_U64, NOTIFIER_OFF(timeout_ms), 100, 5 * MS_MIN,
                    10 * MS_SEC, 0},
    [NK_MAX_AGE] = {"max_age", KT_DURATION, S_U64, NOTIFIER_OFF(max_age_ms), MS_MIN, 30 * MS_DAY,
                    MS_DAY, 0},
    [NK_RESEND] = {"resend_interval", KT_DURATION, S_U64, NOTIFIER_OFF(resend_ms), 10 * MS_SEC,
                   MS_HOUR, MS_MIN, 0},
    [NK_CA_FILE] = {"ca_file", KT_PATH, S_STR, NOTIFIER_OFF(ca_file), 0, 0, 0, F_READABLE},
    [NK_HEADERS] = {"headers", KT_STRINGS, S_NONE, 0, 0, 0, 0, 0},
    [NK_SECRET] = {"secret", KT_STRING, S_STR, NOTIFIER_OFF(secret), 0, 0, 0, 0},
    [NK_FROM] = {"from", KT_STRING, S_STR, NOTIFIER_OFF(from), 0, 0, 0, 0},
    [NK_TO] = {"to", KT_STRINGS, S_NONE, 0, 0, 0, 0, 0},
    [NK_STARTTLS] = {"starttls", KT_BOOL, S_BOOL, NOTIFIER_OFF(starttls), 0, 0, 1, 0},
    [NK_USERNAME] = {"username", KT_STRING, S_STR, NOTIFIER_OFF(username), 0, 0, 0, 0},
    [NK_PASSWORD] = {"password", KT_STRING, S_STR, NOTIFIER_OFF(password), 0, 0, 0, 0},
    [NK_GENERATOR_URL] = {"generator_url", KT_STRING, S_STR, NOTIFIER_OFF(generator_url), 0, 0,
                          0, 0},
    /* Secrets: read by read_secret (the value or a file holding it), never logged. */
    [NK_ROUTING_KEY] = {"routing_key", KT_STRING, S_NONE, 0, 0, 0, 0, 0},
    [NK_ROUTING_KEY_FILE] = {"routing_key_file", KT_PATH, S_NONE, 0, 0, 0, 0, 0},
    [NK_CLIENT_URL] = {"client_url", KT_STRING, S_STR, NOTIFIER_OFF(client_url), 0, 0, 0, 0},
    [NK_BOT_TOKEN] = {"bot_token", KT_STRING, S_NONE, 0, 0, 0, 0, 0},
    [NK_BOT_TOKEN_FILE] = {"bot_token_file", KT_PATH, S_NONE, 0, 0, 0, 0, 0},
    [NK_CHAT_ID] = {"chat_id", KT_STRING, S_STR, NOTIFIER_OFF(chat_id), 0, 0, 0, 0},
    [NK_PARSE_MODE] = {"parse_mode", KT_STRING, S_NONE, 0, 0, 0, 0, 0},
    [NK_TOKEN] = {"token", KT_STRING, S_NONE, 0, 0, 0, 0, 0},
    [NK_TOKEN_FILE] = {"token_file", KT_PATH, S_NONE, 0, 0, 0, 0, 0},
};

/* Which notifier types take each key (bit 1 << enum cm_notifier_kind). */
#define NT_SLACK (1u << CM_NOTIFIER_SLACK)
#define NT_WEBHOOK (1u << CM_NOTIFIER_WEBHOOK)
#define NT_EMAIL (1u << CM_NOTIFIER_EMAIL)
#define NT_AM (1u << CM_NOTIFIER_ALERTMANAGER)
#define NT_PD (1u << CM_NOTIFIER_PAGERDUTY)
#define NT_TEAMS (1u << CM_NOTIFIER_TEAMS)
#define NT_TG (1u << CM_NOTIFIER_TELEGRAM)
#define NT_NTFY (1u << CM_NOTIFIER_NTFY)
#define NT_ALL (NT_SLACK | NT_WEBHOOK | NT_EMAIL | NT_AM | NT_PD | NT_TEAMS | NT_TG | NT_NTFY)
static const unsigned notifier_key_types[NK_N] = {
    [NK_NAME] = NT_ALL,          [NK_TYPE] = NT_ALL,
    [NK_URL] = NT_ALL,           [NK_URLS] = NT_AM,
    [NK_MIN_SEVERITY] = NT_ALL,  [NK_FINDINGS] = NT_ALL,
    [NK_MATCH] = NT_ALL,         [NK_FOR] = NT_ALL,
    [NK_GROUP_WAIT] = NT_ALL,    [NK_REPEAT] = NT_ALL,
    [NK_TIMEOUT] = NT_ALL,       [NK_MAX_AGE] = NT_ALL,
    [NK_RESEND] = NT_AM,         [NK_CA_FILE] = NT_ALL,
    [NK_HEADERS] = NT_WEBHOOK,   [NK_SECRET] = NT_WEBHOOK,
    [NK_FROM] = NT_EMAIL,        [NK_TO] = NT_EMAIL,
    [NK_STARTTLS] = NT_EMAIL,    [NK_USERNAME] = NT_EMAIL,
    [NK_PASSWORD] = NT_EMAIL,    [NK_GENERATOR_URL] = NT_AM,
    [NK_ROUTING_KEY] = NT_PD,    [NK_ROUTING_KEY_FILE] = NT_PD,
    [NK_CLIENT_URL] = NT_PD,     [NK_BOT_TOKEN] = NT_TG,
    [NK_BOT_TOKEN_FILE] = NT_TG, [NK_CHAT_ID] = NT_TG,
    [NK_PARSE_MODE] = NT_TG,     [NK_TOKEN] = NT_NTFY,
    [NK_TOKEN_FILE] = NT_NTFY,
};

struct group_def {
    const char *name; /* top-level name */
    bool is_list;     /* a list of groups rather than one group */
    const struct key *keys;
    size_t nkeys;
    bool policy;        /* the policy keys are allowed too */
    bool open;          /* other keys are accepted (notifiers, until delivery exists) */
    const char *entity; /* "a target": for "is not a setting of ..." */
};

enum { G_GLOBAL, G_LOG, G_METRICS, G_TARGETS, G_FILES, G_NOTIFIERS, G_DISCOVERY, G_N };
static const struct group_def groups[G_N] = {
    [G_GLOBAL] = {"global", false, global_keys, GK_N, true, false, "global"},
    [G_LOG] = {"log", false, log_keys, LK_N, false, false, "log"},
    [G_METRICS] = {"metrics", false, metrics_keys, MK_N, false, false, "metrics"},
    [G_TARGETS] = {"targets", true, target_keys, TK_N, true, false, "a target"},
    [G_FILES] = {"files", true, file_keys, FK_N, true, false, "a file entry"},
    [G_NOTIFIERS] = {"notifiers", true, notifier_keys, NK_N, false, false, "a notifier"},
    [G_DISCOVERY] = {"discovery", true, discovery_keys, DK_N, true, false,
                     "a discovery source"},
};

static size_t find_key(const struct key *keys, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(keys[i].name, name))
            return i;
    return NPOS;
}

/* ---- Reading one setting against its table row ---- */

static const char *expected(enum ktype t)
{
    switch (t) {
    case KT_INT:
        return "an integer";
    case KT_BOOL:
        return "true or false";
    case KT_STRING:
    case KT_PATH:
        return "a string";
    case KT_DURATION:
        return "a duration (a string such as \"90s\" or \"1h30m\", or an integer number of "
               "seconds)";
    case KT_DURATION_OFF:
        return "a duration (a string such as \"90s\" or \"1h30m\", or an integer number of "
               "seconds) or \"off\"";
    case KT_STRINGS:
        return "an array or list of strings";
    case KT_LISTEN:
        return "a string or an array of strings";
    case KT_LABELS:
        return "a group of strings { name = \"value\"; ... }";
    }
    return "?";
}

static bool type_error(struct loader *L, const config_setting_t *s, const char *path, enum ktype t)
{
    err_at(L, s, path, "expected %s, found %s", expected(t), type_name(config_setting_type(s)));
    return false;
}

/* Reads an integer setting (type already checked) into *v; false after reporting a value
 * libconfig could not hold, or one outside [min, max]. */
static bool read_int(struct loader *L, const config_setting_t *s, const char *path, long long min,
                     long long max, const char *what, long long *v)
{
    char lit[48];

    if (config_setting_type(s) == CONFIG_TYPE_INT64) {
        long long x = config_setting_get_int64(s);
        /* An out-of-range 64-bit literal reads as 0 (or saturates): the value is unknown. */
        if (x == 0 || x == LLONG_MAX || x == LLONG_MIN)
            err_at(L, s, path, "must be %s from %lld to %lld, not a number this large", what, min,
                   max);
        else
            err_at(L, s, path, "must be %s from %lld to %lld, not %lld", what, min, max, x);
        return false;
    }
    *v = config_setting_get_int(s);
    if (!int_matches_source(L, s, *v, lit, sizeof(lit))) {
        err_at(L, s, path, "must be %s from %lld to %lld, not %s", what, min, max, lit);
        return false;
    }
    if (*v < min || *v > max) {
        err_at(L, s, path, "must be %s from %lld to %lld, not %lld", what, min, max, *v);
        return false;
    }
    return true;
}

static bool read_duration(struct loader *L, const config_setting_t *s, const char *path,
                          const struct key *k, uint64_t *ms)
{
    char err[400], a[32], b[32], c[32];
    long long v;

    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        if (!read_int(L, s, path, 0, DMAX / (long long)MS_SEC, "a number of seconds", &v))
            return false;
        *ms = (uint64_t)v * MS_SEC;
        break;
    case CONFIG_TYPE_STRING: {
        const char *str = config_setting_get_string(s);
        if (k->type == KT_DURATION_OFF && !strcmp(str, "off")) {
            *ms = 0;
            return true;
        }
        if (cm_duration_parse(str, ms, err, sizeof(err)) < 0) {
            err_at(L, s, path, "%s", err);
            return false;
        }
        break;
    }
    default:
        return type_error(L, s, path, k->type);
    }
    cm_duration_format((uint64_t)k->min, a, sizeof(a));
    cm_duration_format((uint64_t)k->max, b, sizeof(b));
    cm_duration_format(*ms, c, sizeof(c));
    if (k->type == KT_DURATION_OFF && *ms < (uint64_t)k->min) {
        err_at(L, s, path, "must be at least %s, or \"off\" to disable, not %s", a, c);
        return false;
    }
    if (*ms < (uint64_t)k->min || *ms > (uint64_t)k->max) {
        if (k->max == DMAX)
            err_at(L, s, path, "must be at least %s, not %s", a, c);
        else
            err_at(L, s, path, "must be from %s to %s, not %s", a, b, c);
        return false;
    }
    return true;
}

/* Stores a number or flag at at, in the type store names: u64 for S_U64, i for S_INT and
 * S_UINT, b for S_BOOL. S_NONE and S_STR store nothing here. */
static void store_scalar(enum kstore store, char *at, uint64_t u64, long long i, bool b)
{
    switch (store) {
    case S_U64:
        *(uint64_t *)(void *)at = u64;
        break;
    case S_INT:
        *(int *)(void *)at = (int)i;
        break;
    case S_UINT:
        *(unsigned *)(void *)at = (unsigned)i;
        break;
    case S_BOOL:
        *(bool *)(void *)at = b;
        break;
    case S_NONE:
    case S_STR:
        break;
    }
}

/* Checks s against row k and stores the value at base + k->off. Returns false after
 * reporting a problem. */
static bool read_value(struct loader *L, const config_setting_t *s, const char *path,
                       const struct key *k, void *base)
{
    int type = config_setting_type(s);
    char *at = (char *)base + k->off;
    long long iv = 0;
    uint64_t ms = 0;
    bool bv = false;
    char *str = NULL;

    switch (k->type) {
    case KT_INT:
        if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
            return type_error(L, s, path, k->type);
        if (!read_int(L, s, path, k->min, k->max, "an integer", &iv))
            return false;
        break;
    case KT_BOOL:
        if (type != CONFIG_TYPE_BOOL)
            return type_error(L, s, path, k->type);
        bv = config_setting_get_bool(s);
        break;
    case KT_STRING:
    case KT_PATH: {
        const char *v;
        if (type != CONFIG_TYPE_STRING)
            return type_error(L, s, path, k->type);
        v = config_setting_get_string(s);
        if (!*v) {
            err_at(L, s, path, "must not be empty");
            return false;
        }
        if (k->type == KT_PATH) {
            if (!(str = path_clean(L->cfg->dir, v))) {
                L->nomem = true;
                return false;
            }
            if (k->flags & F_READABLE) {
                int e = readable(L, str);
                if (e) {
                    err_at(L, s, path, "cannot read '%s': %s", str,
                           e == EINVAL ? "not a regular file" : strerror(e));
                    free(str);
                    return false;
                }
            }
        } else if (k->store == S_STR && !(str = ldup(L, v))) {
            return false;
        }
        break;
    }
    case KT_DURATION:
    case KT_DURATION_OFF:
        if (!read_duration(L, s, path, k, &ms))
            return false;
        break;
    case KT_STRINGS:
        if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
            return type_error(L, s, path, k->type);
        break;
    case KT_LISTEN:
        if (type != CONFIG_TYPE_STRING && type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
            return type_error(L, s, path, k->type);
        break;
    case KT_LABELS:
        if (type != CONFIG_TYPE_GROUP)
            return type_error(L, s, path, k->type);
        break;
    }
    if (k->store == S_STR) {
        free(*(char **)(void *)at);
        *(char **)(void *)at = str;
    } else {
        free(str);
        store_scalar(k->store, at, ms, iv, bv);
    }
    return true;
}

/* Elements of an array or list that must all be strings; reports the others. */
static const char *string_elem(struct loader *L, const config_setting_t *list, unsigned i,
                               const char *path, char *epath, size_t eplen)
{
    const config_setting_t *e = config_setting_get_elem(list, i);

    snprintf(epath, eplen, "%s[%u]", path, i);
    if (config_setting_type(e) != CONFIG_TYPE_STRING) {
        err_at(L, e, epath, "expected a string, found %s", type_name(config_setting_type(e)));
        return NULL;
    }
    return config_setting_get_string(e);
}

/* ignore = [ "ID", ... ] or severity = [ "ID=LEVEL", ... ], appended to p in order. */
static void read_rules(struct loader *L, const config_setting_t *s, const char *path,
                       struct cm_policy *p, bool severity)
{
    unsigned n = (unsigned)config_setting_length(s);

    for (unsigned i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, i);
        char epath[600], id[64];
        const char *v = string_elem(L, s, i, path, epath, sizeof(epath)), *hint;
        enum cm_severity sev = CM_SEV_OK;
        int rc;

        if (!v)
            continue;
        if (severity) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || (size_t)(eq - v) >= sizeof(id)) {
                err_at(L, e, epath, "takes ID=LEVEL (info|warning|critical), not '%s'", v);
                continue;
            }
            memcpy(id, v, (size_t)(eq - v));
            id[eq - v] = '\0';
            if (cm_severity_parse(eq + 1, &sev) < 0) {
                err_at(L, e, epath, "%s: level must be info, warning or critical, not '%s'", id,
                       eq + 1);
                continue;
            }
            rc = cm_policy_set_severity(p, id, sev);
        } else {
            snprintf(id, sizeof(id), "%s", v);
            rc = strlen(v) < sizeof(id) ? cm_policy_ignore(p, id) : CM_EBADARG;
        }
        if (rc == CM_EBADARG) {
            hint = cm_finding_suggest(id);
            err_at(L, e, epath, "'%s' is not a finding id%s%s%s (see docs/findings.md)", id,
                   hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
        } else if (rc < 0) {
            L->nomem = true;
        }
    }
}

static int read_source(const char *path, size_t max, size_t total_left, char **out, size_t *len,
                       char *msg, size_t msglen);

/* interception_roots_file = "PATH": reads the list (once per distinct file of this load: ten
 * thousand targets may name one file), checks every line, and points the policy at it. A
 * problem names the setting's FILE:LINE and the list's own PATH:LINE. */
static void read_roots(struct loader *L, const config_setting_t *s, const char *path,
                       struct cm_policy *p)
{
    struct cm_config *cfg = L->cfg;
    char *abs = path_clean(cfg->dir, config_setting_get_string(s));
    char msg[PATH_MAX + 200], why[160];
    struct cm_config_roots *n;
    size_t len, line;
    char *text;
    int e;

    if (!abs) {
        L->nomem = true;
        return;
    }
    for (size_t i = 0; i < cfg->roots_count; i++)
        if (!strcmp(cfg->roots[i].path, abs)) {
            p->interception_roots = cfg->roots[i].text;
            free(abs);
            return;
        }
    e = read_source(abs, CM_CONFIG_ROOTS_MAX_BYTES, CM_CONFIG_ROOTS_MAX_BYTES, &text, &len, msg,
                    sizeof(msg));
    if (e) {
        if (e == ENOMEM)
            L->nomem = true;
        else
            err_at(L, s, path, "%s", msg);
        free(abs);
        return;
    }
    if (cm_spki_list_validate(text, len, &line, why, sizeof(why)) < 0) {
        if (line)
            err_at(L, s, path, "%s:%zu: %s", abs, line, why);
        else
            err_at(L, s, path, "%s: %s", abs, why);
        free(text);
        free(abs);
        return;
    }
    if (!(n = realloc(cfg->roots, (cfg->roots_count + 1) * sizeof(*n)))) {
        L->nomem = true;
        free(text);
        free(abs);
        return;
    }
    cfg->roots = n;
    n[cfg->roots_count++] =
        (struct cm_config_roots){.path = abs, .text = text, .hash = cm_fnv1a(CM_FNV1A_INIT, text, len)};
    p->interception_roots = text;
}

/* revocation = "auto" | "staple-only" | "off". */
static void read_revocation(struct loader *L, const config_setting_t *s, const char *path,
                            struct cm_policy *p)
{
    static const char *const names[] = {"auto", "staple-only", "off"};
    const char *v = config_setting_get_string(s), *hint;

    if (cm_revocation_mode_parse(v, &p->revocation) == 0)
        return;
    hint = closest(v, names, sizeof(names) / sizeof(names[0]));
    err_at(L, s, path, "must be auto, staple-only or off, not '%s'%s%s%s", v,
           hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
}

/* Reports an unknown key, with the nearest known name, or the group it belongs to. */
static void unknown_key(struct loader *L, const config_setting_t *m, const char *path,
                        const struct group_def *def)
{
    const char *name = config_setting_name(m);
    struct cm_suggest sg;
    const char *hint;

    /* Candidates are fed one by one: no array to size for the largest table (a notifier has
     * more keys than a target and the policy together, which once overflowed one). */
    suggest_init(&sg, name);
    for (size_t i = 0; i < def->nkeys; i++)
        cm_suggest_add(&sg, def->keys[i].name);
    for (size_t i = 0; def->policy && i < PK_N; i++)
        cm_suggest_add(&sg, policy_keys[i].name);
    if ((hint = sg.best)) {
        err_at(L, m, path, "unknown setting; did you mean '%s'?", hint);
        return;
    }
    if (def == &groups[G_FILES] && !strcmp(name, "name")) {
        err_at(L, m, path, "file entries have no name: they are named \"file:\" + their path");
        return;
    }
    for (size_t g = 0; g < G_N; g++) {
        if (&groups[g] == def)
            continue;
        if (find_key(groups[g].keys, groups[g].nkeys, name) != NPOS ||
            (groups[g].policy && !def->policy && find_key(policy_keys, PK_N, name) != NPOS)) {
            err_at(L, m, path, "unknown setting: '%s' is not a setting of %s (it belongs in %s)",
                   name, def->entity, groups[g].is_list ? groups[g].entity : groups[g].name);
            return;
        }
    }
    err_at(L, m, path, "unknown setting (see docs/configuration.md)");
}

/* Which settings of one group were read successfully: by row of its table, and of the
 * policy table. */
#define KEYS_MAX 32 /* rows of the largest table */
_Static_assert(TK_N <= KEYS_MAX && NK_N <= KEYS_MAX && GK_N <= KEYS_MAX && MK_N <= KEYS_MAX &&
                   LK_N <= KEYS_MAX && FK_N <= KEYS_MAX && DK_N <= KEYS_MAX,
               "struct seen too small");
struct seen {
    const config_setting_t *k[KEYS_MAX];
    const config_setting_t *p[PK_N];
};

/* The optional settings of a target that sets none: shared, never written. */
static const struct cm_config_target_opt opt_none = {.deploy_grace_ms = MS_HOUR};

/* t's own block of optional settings, made from opt_none on the first write. NULL (and
 * L->nomem) when out of memory. */
static struct cm_config_target_opt *opt_mut(struct loader *L, struct cm_config_target *t)
{
    struct cm_config_target_opt *o;

    if (t->opt && t->opt != &opt_none)
        return (struct cm_config_target_opt *)t->opt; /* its own: writable while loading */
    if (!(o = malloc(sizeof(*o)))) {
        L->nomem = true;
        return NULL;
    }
    *o = opt_none;
    o->refs = 1;
    t->opt = o;
    return o;
}

static void opt_free(const struct cm_config_target_opt *co)
{
    struct cm_config_target_opt *o = (struct cm_config_target_opt *)co; /* owned */

    if (!o || o == &opt_none || --o->refs > 0)
        return;
    free(o->path);
    free(o->ca_file);
    free(o->client_cert);
    free(o->client_key);
    free(o->connect_address);
    free(o->ari_url);
    free(o->expect_file);
    free(o->pins);
    free(o->acme_directory);
    free(o->origin);
    if (o->password)
        explicit_bzero(o->password, strlen(o->password));
    free(o->password);
    free(o);
}

static void read_group(struct loader *L, const config_setting_t *g, const char *prefix,
                       const struct group_def *def, void *base, struct cm_policy *policy,
                       struct seen *seen)
{
    unsigned n = (unsigned)config_setting_length(g);

    memset(seen, 0, sizeof(*seen));
    for (unsigned i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(g, i);
        const char *name = config_setting_name(m);
        char path[512];
        size_t j;

        snprintf(path, sizeof(path), "%s.%s", prefix, name);
        if ((j = find_key(def->keys, def->nkeys, name)) != NPOS) {
            void *at = def->keys[j].flags & F_OPT ? (void *)opt_mut(L, base) : base;
            if (at && read_value(L, m, path, &def->keys[j], at))
                seen->k[j] = m;
        } else if (def->policy && (j = find_key(policy_keys, PK_N, name)) != NPOS) {
            if (read_value(L, m, path, &policy_keys[j], policy)) {
                seen->p[j] = m;
                if (j == PK_IGNORE || j == PK_SEVERITY)
                    read_rules(L, m, path, policy, j == PK_SEVERITY);
                else if (j == PK_INTERCEPTION_ROOTS_FILE)
                    read_roots(L, m, path, policy);
                else if (j == PK_REVOCATION)
                    read_revocation(L, m, path, policy);
            }
        } else if (!def->open) {
            unknown_key(L, m, path, def);
        }
    }
}

static void apply_defaults(const struct key *keys, size_t n, void *base)
{
    for (size_t i = 0; i < n; i++)
        store_scalar(keys[i].store, (char *)base + keys[i].off, (uint64_t)keys[i].dflt,
                     keys[i].dflt, keys[i].dflt != 0);
}

/* A critical threshold must not exceed its warning one (crit_days and warn_days,
 * crit_lifetime_pct and warn_lifetime_pct), where the policy comes from. inherited names where
 * values not set here come from ("the default", "global"). */
static void check_pair(struct loader *L, const char *prefix, const struct seen *seen,
                       const char *inherited, size_t crit_key, long long crit, size_t warn_key,
                       long long warn)
{
    const config_setting_t *at = seen->p[crit_key] ? seen->p[crit_key] : seen->p[warn_key];
    char path[512];

    if (crit <= warn || !at)
        return;
    snprintf(path, sizeof(path), "%s.%s", prefix, config_setting_name(at));
    err_at(L, at, path, "%s (%lld%s%s) must not exceed %s (%lld%s%s)", policy_keys[crit_key].name,
           crit, seen->p[crit_key] ? "" : ", from ", seen->p[crit_key] ? "" : inherited,
           policy_keys[warn_key].name, warn, seen->p[warn_key] ? "" : ", from ",
           seen->p[warn_key] ? "" : inherited);
}

static void check_days(struct loader *L, const char *prefix, const struct cm_policy *p,
                       const struct seen *seen, const char *inherited)
{
    check_pair(L, prefix, seen, inherited, PK_CRIT_DAYS, p->crit_days, PK_WARN_DAYS, p->warn_days);
    check_pair(L, prefix, seen, inherited, PK_CRIT_LIFETIME_PCT, p->crit_lifetime_pct,
               PK_WARN_LIFETIME_PCT, p->warn_lifetime_pct);
}

static int policy_copy(struct cm_policy *dst, const struct cm_policy *src)
{
    *dst = *src;
    dst->rules = NULL;
    if (src->rule_count) {
        if (!(dst->rules = malloc(src->rule_count * sizeof(*dst->rules)))) {
            dst->rule_count = 0;
            return -ENOMEM;
        }
        memcpy(dst->rules, src->rules, src->rule_count * sizeof(*dst->rules));
    }
    return 0;
}

/* A target's policy while its keys are read: a copy of the global one, owned by t (so that a
 * target given up half-read frees it), with t->opt set to the shared empty block. NULL (and
 * L->nomem) when out of memory. */
static struct cm_policy *policy_begin(struct loader *L, struct cm_config_target *t)
{
    struct cm_policy *p = malloc(sizeof(*p));

    t->opt = &opt_none;
    t->policy = L->policy ? L->policy : &L->cfg->policy; /* (never NULL, even out of memory) */
    if (!p || policy_copy(p, t->policy) < 0) {
        free(p);
        L->nomem = true;
        return NULL;
    }
    t->policy = p;
    t->own_policy = true;
    return p;
}

/* After the target's keys: a policy no key of the target changed is the global one, shared
 * (100,000 targets would carry 100,000 copies of it, each with its rules). */
static void policy_settle(struct loader *L, struct cm_config_target *t, struct cm_policy *p,
                          const struct seen *seen)
{
    for (size_t i = 0; i < PK_N; i++)
        if (seen->p[i])
            return;
    if (p->pins)
        return;
    cm_policy_clear(p);
    free(p);
    t->policy = L->policy ? L->policy : &L->cfg->policy;
    t->own_policy = false;
}

/* ---- Groups ---- */

static void read_global(struct loader *L, const config_setting_t *g)
{
    struct cm_config *cfg = L->cfg;
    struct seen seen;

    read_group(L, g, "global", &groups[G_GLOBAL], cfg, &cfg->policy, &seen);
    if (seen.k[GK_STATE_FILE]) {
        struct stat st;
        char *dir = path_dir(cfg->state_file);
        const config_setting_t *s = seen.k[GK_STATE_FILE];

        if (!dir)
            L->nomem = true;
        else if (stat(dir, &st) < 0)
            err_at(L, s, "global.state_file", "directory '%s': %s", dir, strerror(errno));
        else if (!S_ISDIR(st.st_mode))
            err_at(L, s, "global.state_file", "'%s' is not a directory", dir);
        else if (access(dir, W_OK | X_OK) < 0)
            err_at(L, s, "global.state_file", "directory '%s' is not writable: %s", dir,
                   strerror(errno));
        else if (stat(cfg->state_file, &st) == 0 && !S_ISREG(st.st_mode))
            err_at(L, s, "global.state_file", "'%s' exists and is not a regular file",
                   cfg->state_file);
        free(dir);
    }
    check_days(L, "global", &cfg->policy, &seen, "the default");
}

static void read_log(struct loader *L, const config_setting_t *g)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    struct seen seen;

    read_group(L, g, "log", &groups[G_LOG], L->cfg, NULL, &seen);
    if (seen.k[LK_LEVEL]) {
        const char *v = config_setting_get_string(seen.k[LK_LEVEL]), *hint;
        size_t i;

        for (i = 0; i < 4 && strcmp(v, names[i]); i++)
            ;
        if (i < 4) {
            L->cfg->log_level = (enum cm_log_level)i;
        } else {
            hint = closest(v, names, 4);
            err_at(L, seen.k[LK_LEVEL], "log.level",
                   "must be debug, info, warning or error, not '%s'%s%s%s", v,
                   hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
        }
    }
}

/* NULL when s is "IPv4:port", "[IPv6]:port" or "hostname:port", else why not. */
static const char *listen_problem(const char *s)
{
    char host[256];
    const char *port;
    char *end;
    size_t hlen;
    long v;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return "an IPv6 address is written [ADDRESS]:PORT";
        hlen = (size_t)(close - s - 1);
        if (hlen == 0 || hlen >= sizeof(host))
            return "not an IPv6 address in brackets";
        memcpy(host, s + 1, hlen);
        host[hlen] = '\0';
        if (!strchr(host, ':') || !cm_host_is_ip(host))
            return "not an IPv6 address in brackets";
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon)
            return "missing :PORT";
        hlen = (size_t)(colon - s);
        if (memchr(s, ':', hlen))
            return "an IPv6 address is written [ADDRESS]:PORT";
        if (hlen == 0)
            return "missing address (0.0.0.0 or [::] listen on every interface)";
        if (hlen >= sizeof(host))
            return "host name too long";
        memcpy(host, s, hlen);
        host[hlen] = '\0';
        if (!cm_host_is_ip(host) && !cm_host_is_valid_name(host))
            return "not a valid address or host name";
        port = colon + 1;
    }
    errno = 0;
    v = isdigit((unsigned char)*port) ? strtol(port, &end, 10) : 0;
    if (!isdigit((unsigned char)*port) || errno || *end || v < 1 || v > 65535)
        return "the port must be a number from 1 to 65535";
    return NULL;
}

static void add_listen(struct loader *L, const config_setting_t *s, const char *path, const char *v)
{
    struct cm_config *cfg = L->cfg;
    const char *why = listen_problem(v);
    char **n;

    if (why) {
        err_at(L, s, path, "'%s': %s (write IPV4:PORT, [IPV6]:PORT or HOSTNAME:PORT)", v, why);
        return;
    }
    for (size_t i = 0; i < cfg->listen_count; i++) {
        if (!strcmp(cfg->listen[i], v)) {
            err_at(L, s, path, "'%s' is listed twice", v);
            return;
        }
    }
    if (!(n = realloc(cfg->listen, (cfg->listen_count + 1) * sizeof(*n))) ||
        !(n[cfg->listen_count] = strdup(v))) {
        if (n)
            cfg->listen = n;
        L->nomem = true;
        return;
    }
    cfg->listen = n;
    cfg->listen_count++;
}

static void read_metrics(struct loader *L, const config_setting_t *g)
{
    struct cm_config *cfg = L->cfg;
    const config_setting_t *s;
    struct seen seen;

    read_group(L, g, "metrics", &groups[G_METRICS], cfg, NULL, &seen);
    if ((s = seen.k[MK_LISTEN])) {
        /* Replaces the default. */
        for (size_t i = 0; i < cfg->listen_count; i++)
            free(cfg->listen[i]);
        cfg->listen_count = 0;
        if (config_setting_type(s) == CONFIG_TYPE_STRING) {
            add_listen(L, s, "metrics.listen", config_setting_get_string(s));
        } else if (config_setting_length(s) == 0) {
            err_at(L, s, "metrics.listen", "must name at least one address");
        } else {
            for (unsigned i = 0; i < (unsigned)config_setting_length(s); i++) {
                char epath[64];
                const char *v = string_elem(L, s, i, "metrics.listen", epath, sizeof(epath));
                if (v)
                    add_listen(L, config_setting_get_elem(s, i), epath, v);
            }
        }
    }
    cfg->tls_cert_at = origin_of(L, seen.k[MK_TLS_CERT]);
    cfg->client_ca_at = origin_of(L, seen.k[MK_CLIENT_CA]);
    const config_setting_t *cert = config_setting_get_member(g, "tls_cert");
    const config_setting_t *key = config_setting_get_member(g, "tls_key");
    if (!cert != !key)
        err_at(L, cert ? cert : key, cert ? "metrics.tls_cert" : "metrics.tls_key",
               "tls_cert and tls_key go together: give both or neither");
    if ((s = config_setting_get_member(g, "client_ca")) && !cert)
        err_at(L, s, "metrics.client_ca", "client_ca needs tls_cert and tls_key (HTTPS)");
}

static int label_cmp(const void *a, const void *b)
{
    return strcmp(config_setting_name(*(const config_setting_t *const *)a),
                  config_setting_name(*(const config_setting_t *const *)b));
}

/* What is wrong with a label name, as the configuration and discovery files say it; false
 * when nothing is (the rule is base/label.c's, the one /metrics and Alertmanager apply). */
static bool label_name_msg(const char *name, char *buf, size_t len)
{
    switch (cm_label_check_name(name)) {
    case CM_LABEL_OK:
        return false;
    case CM_LABEL_DUNDER:
        snprintf(buf, len, "label names starting with __ are reserved by Prometheus");
        break;
    case CM_LABEL_RESERVED:
        snprintf(buf, len, "'%s' is a label certmon or Prometheus sets itself (reserved: %s)",
                 name, cm_label_reserved_text());
        break;
    default:
        snprintf(buf, len,
                 "'%.200s' is not a valid label name (letters, digits and _, not starting with a "
                 "digit)",
                 name);
        break;
    }
    return true;
}

static bool label_value_msg(const char *v, char *buf, size_t len)
{
    switch (cm_label_check_value(v, strlen(v))) {
    case CM_LABEL_OK:
        return false;
    case CM_LABEL_EMPTY_VALUE:
        snprintf(buf, len, "must not be empty (Prometheus drops empty labels)");
        break;
    default:
        snprintf(buf, len, "must be UTF-8 text (metrics and alerts carry nothing else)");
        break;
    }
    return true;
}

/* labels = { name = "value"; ... } into out, sorted by name. */
static void read_labels(struct loader *L, const config_setting_t *g, const char *prefix,
                        struct cm_labels *out)
{
    unsigned n = (unsigned)config_setting_length(g), k = 0;
    const config_setting_t **ok = calloc(n ? n : 1, sizeof(*ok));

    if (!ok) {
        L->nomem = true;
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(g, i);
        const char *name = config_setting_name(m);
        char path[600], msg[700];
        bool bad = false;

        snprintf(path, sizeof(path), "%s.labels.%s", prefix, name);
        if (label_name_msg(name, msg, sizeof(msg))) {
            err_at(L, m, path, "%s", msg);
            bad = true;
        }
        if (config_setting_type(m) != CONFIG_TYPE_STRING) {
            err_at(L, m, path, "expected a string, found %s", type_name(config_setting_type(m)));
            bad = true;
        } else if (label_value_msg(config_setting_get_string(m), msg, sizeof(msg))) {
            err_at(L, m, path, "%s", msg);
            bad = true;
        }
        if (!bad)
            ok[k++] = m;
    }
    qsort(ok, k, sizeof(*ok), label_cmp);
    out->keys = calloc(k ? k : 1, sizeof(char *));
    out->values = calloc(k ? k : 1, sizeof(char *));
    if (!out->keys || !out->values) {
        L->nomem = true;
        free(ok);
        return;
    }
    for (unsigned i = 0; i < k; i++) {
        out->keys[i] = ldup(L, config_setting_name(ok[i]));
        out->values[i] = ldup(L, config_setting_get_string(ok[i]));
        out->count = i + 1;
    }
    free(ok);
}

static void read_pins(struct loader *L, const config_setting_t *s, const char *prefix,
                      struct cm_config_target *t, struct cm_policy *policy);
static void read_pin_mode(struct loader *L, const struct seen *seen, const char *prefix,
                          struct cm_config_target *t);
static void read_ari(struct loader *L, const struct seen *seen, const char *prefix,
                     struct cm_config_target *t);

/* host (with port and sni) into t->ep: the address literal or name, the SNI and the name to
 * verify (cm_target_parse). A port inside host is an error: it goes in `port`. */
static void read_endpoint(struct loader *L, const config_setting_t *g, const struct seen *seen,
                          const char *prefix, uint16_t port, const char *sni,
                          struct cm_config_target *t)
{
    const config_setting_t *s;
    char err[400];
    const char *host;
    int rc;

    if (!config_setting_get_member(g, "host"))
        err_at(L, g, prefix, "missing required setting 'host'");
    if (!(s = seen->k[TK_HOST]))
        return;
    host = config_setting_get_string(s);
    rc = cm_target_parse(host, port, sni, &t->ep, err, sizeof(err));
    if (rc == CM_EBADARG && sni) {
        char path[80];
        snprintf(path, sizeof(path), "%s.sni", prefix);
        err_at(L, seen->k[TK_SNI], path, "%s", err);
    } else if (rc == -ENOMEM) {
        L->nomem = true;
    } else if (rc < 0) {
        char path[80];
        snprintf(path, sizeof(path), "%s.host", prefix);
        err_at(L, s, path, "%s", err);
    } else {
        size_t hl = strlen(t->ep.host);
        bool same = !strcmp(host, t->ep.host) ||
                    (host[0] == '[' && !strncmp(host + 1, t->ep.host, hl) &&
                     !strcmp(host + 1 + hl, "]"));
        if (!same) {
            char path[80];
            snprintf(path, sizeof(path), "%s.host", prefix);
            err_at(L, s, path, "'%s': give the port in `port`, not in host", host);
            cm_target_clear(&t->ep);
        }
    }
}

/* starttls: the configured preamble, else the one the port implies. */
static void read_starttls(struct loader *L, const struct seen *seen, const char *prefix,
                          uint16_t port, struct cm_config_target *t)
{
    static const char *const names[] = {"smtp",     "imap",  "pop3", "ftp", "ldap",
                                        "postgres", "mysql", "xmpp", "none"};
    const config_setting_t *s;
    const char *v, *hint;
    enum cm_starttls_proto proto;
    char path[80];

    t->ep.starttls = cm_starttls_for_port(port);
    if (!(s = seen->k[TK_STARTTLS]))
        return;
    v = config_setting_get_string(s);
    if (cm_starttls_parse(v, &proto) == 0) {
        t->ep.starttls = proto;
        return;
    }
    hint = closest(v, names, sizeof(names) / sizeof(names[0]));
    snprintf(path, sizeof(path), "%s.starttls", prefix);
    err_at(L, s, path,
           "must be one of smtp, imap, pop3, ftp, ldap, postgres, mysql, xmpp or none, "
           "not '%s'%s%s%s",
           v, hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
}

/* How to connect and whom to be: connect_address, the client certificate and key (both or
 * neither), the trust file; t->ep borrows the strings t owns. */
static void read_transport(struct loader *L, const config_setting_t *g, const struct seen *seen,
                           const char *prefix, struct cm_config_target *t)
{
    const config_setting_t *s;
    const config_setting_t *cc = config_setting_get_member(g, "client_cert");
    const config_setting_t *ck = config_setting_get_member(g, "client_key");
    struct cm_config_target_opt *o;

    if ((s = seen->k[TK_CONNECT_ADDRESS])) {
        const char *v = config_setting_get_string(s);
        if (!cm_host_is_ip(v)) {
            char path[80];
            snprintf(path, sizeof(path), "%s.connect_address", prefix);
            err_at(L, s, path, "must be an IP address literal (no brackets, no port), not '%s'", v);
        } else if ((o = opt_mut(L, t))) {
            o->connect_address = ldup(L, v);
        }
    }
    if (!cc != !ck) {
        char path[80];
        snprintf(path, sizeof(path), "%s.%s", prefix, cc ? "client_cert" : "client_key");
        err_at(L, cc ? cc : ck, path,
               cc ? "client_cert needs client_key too (give both or neither)"
                  : "client_key needs client_cert too (give both or neither)");
    }
    if (seen->k[TK_CA_FILE] && (o = opt_mut(L, t)))
        o->ca_file_at = origin_of(L, seen->k[TK_CA_FILE]);
    if (seen->k[TK_CLIENT_CERT] && (o = opt_mut(L, t)))
        o->client_cert_at = origin_of(L, seen->k[TK_CLIENT_CERT]);
    t->ep.ca_file = t->opt->ca_file;
    t->ep.client_cert = t->opt->client_cert;
    t->ep.client_key = t->opt->client_key;
    t->ep.connect_address = t->opt->connect_address;
}

/* The target's name: `name`, else "host:port" (with "sni@" in front when the SNI differs from
 * the host). */
static void read_target_name(struct loader *L, const struct seen *seen, const char *prefix,
                             const char *sni, struct cm_config_target *t,
                             struct cm_config_origin *name_at)
{
    const config_setting_t *s;

    if ((s = seen->k[TK_NAME])) {
        const char *v = config_setting_get_string(s);
        if (has_control(v)) {
            char path[80];
            snprintf(path, sizeof(path), "%s.name", prefix);
            err_at(L, s, path, "must not contain control characters");
        } else {
            t->name = ldup(L, v);
            *name_at = origin_of(L, s);
        }
    } else if (t->ep.name) {
        if (sni && strcasecmp(sni, t->ep.host) != 0) {
            if (asprintf(&t->name, "%s@%s", sni, t->ep.name) < 0) {
                t->name = NULL;
                L->nomem = true;
            }
        } else {
            t->name = t->ep.name; /* the same text: borrowed (target_clear knows) */
        }
    }
}

/* One element of targets: the table-driven keys (read_group), then what needs more than one
 * key or more than a range check, each in a function of its own. */
static void read_target_at(struct loader *L, const config_setting_t *g, const char *prefix,
                           unsigned index, struct cm_config_target *t,
                           struct cm_config_origin *name_at)
{
    struct cm_config *cfg = L->cfg;
    const config_setting_t *s;
    struct seen seen;
    uint16_t port = CM_DEFAULT_PORT;
    const char *sni = NULL;
    struct cm_policy *policy;

    t->kind = CM_TARGET_ENDPOINT;
    t->index = index;
    t->notify_renewals = cfg->notify_renewals;
    t->interval_ms = cfg->interval_ms;
    t->timeout_ms = cfg->timeout_ms;
    t->posture_interval_ms = cfg->posture_interval_ms;
    if (!(policy = policy_begin(L, t)))
        return;
    read_group(L, g, prefix, &groups[G_TARGETS], t, policy, &seen);
    check_days(L, prefix, policy, &seen, "global");

    if ((s = seen.k[TK_PORT]))
        port = (uint16_t)config_setting_get_int(s);
    if ((s = seen.k[TK_SNI]))
        sni = config_setting_get_string(s);
    read_endpoint(L, g, &seen, prefix, port, sni, t);
    read_starttls(L, &seen, prefix, port, t);
    read_transport(L, g, &seen, prefix, t);

    if ((s = seen.k[TK_POSTURE]) && !config_setting_get_bool(s)) {
        if (config_setting_get_member(g, "posture_interval")) {
            char path[80];
            snprintf(path, sizeof(path), "%s.posture", prefix);
            err_at(L, s, path, "posture = false contradicts posture_interval: give one of them");
        }
        t->posture_interval_ms = 0;
    }
    if ((s = seen.k[TK_LABELS]))
        read_labels(L, s, prefix, &t->labels);
    read_ari(L, &seen, prefix, t);
    if ((s = seen.k[TK_PIN_SHA256]))
        read_pins(L, s, prefix, t, policy);
    read_pin_mode(L, &seen, prefix, t);
    policy_settle(L, t, policy, &seen);
    if (seen.k[TK_DEPLOY_GRACE] && !config_setting_get_member(g, "expect_file")) {
        char path[80];
        snprintf(path, sizeof(path), "%s.deploy_grace", prefix);
        err_at(L, seen.k[TK_DEPLOY_GRACE], path,
               "deploy_grace needs expect_file (the certificate file that should be served)");
    }

    /* With a bad port or sni the name would be a guess: no name, no duplicate reports. */
    if ((config_setting_get_member(g, "port") && !seen.k[TK_PORT]) ||
        (config_setting_get_member(g, "sni") && !seen.k[TK_SNI]))
        return;
    read_target_name(L, &seen, prefix, sni, t, name_at);
}

static void read_target(struct loader *L, const config_setting_t *g, unsigned index,
                        struct cm_config_target *t, struct cm_config_origin *name_at)
{
    char prefix[64];

    snprintf(prefix, sizeof(prefix), "targets[%u]", index);
    read_target_at(L, g, prefix, index, t, name_at);
}

/* The most a password_file may hold. */
#define PASSWORD_FILE_MAX 4096

/* Reads password_file into t->password: a regular file of at most PASSWORD_FILE_MAX bytes,
 * without NUL bytes, one trailing newline ("\n" or "\r\n") dropped. Warns (once per load
 * of the file) when every user may read it. */
static void read_password_file(struct loader *L, const config_setting_t *s, const char *path,
                               struct cm_config_target *t)
{
    char *file = path_clean(L->cfg->dir, config_setting_get_string(s));
    char buf[PASSWORD_FILE_MAX + 1];
    struct stat st;
    ssize_t n = -1;
    size_t len;
    int fd = -1, e = 0;
    struct cm_config_target_opt *o;

    if (!file) {
        L->nomem = true;
        return;
    }
    if ((fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0 || fstat(fd, &st) < 0)
        e = errno;
    else if (!S_ISREG(st.st_mode))
        e = EINVAL;
    else if ((n = read(fd, buf, sizeof(buf))) < 0)
        e = errno;
    if (fd >= 0)
        close(fd);
    if (e) {
        err_at(L, s, path, "cannot read '%s': %s", file,
               e == EINVAL ? "not a regular file" : strerror(e));
    } else if ((size_t)n > PASSWORD_FILE_MAX) {
        err_at(L, s, path, "'%s' is larger than %d bytes (is it a password?)", file,
               PASSWORD_FILE_MAX);
    } else {
        len = (size_t)n;
        if (len && buf[len - 1] == '\n')
            len--;
        if (len && buf[len - 1] == '\r')
            len--;
        if (memchr(buf, '\0', len))
            err_at(L, s, path, "'%s' holds a NUL byte", file);
        else if (len == 0)
            err_at(L, s, path, "'%s' is empty", file);
        else if ((o = opt_mut(L, t)) && !(o->password = strndup(buf, len)))
            L->nomem = true;
        if (st.st_mode & S_IROTH)
            cm_log_warn("config",
                        "file=%s line=%d setting=%s password file %s is readable by every user "
                        "(chmod o-r)",
                        origin_of(L, s).file, origin_of(L, s).line, path, file);
    }
    explicit_bzero(buf, sizeof(buf));
    free(file);
}

/* password or password_file (one of them): the secret of a keystore or an encrypted key. */
static void read_password(struct loader *L, const struct seen *seen, const char *prefix,
                          struct cm_config_target *t)
{
    const config_setting_t *pw = seen->k[FK_PASSWORD], *pf = seen->k[FK_PASSWORD_FILE];
    char path[80];

    if (pw && pf) {
        snprintf(path, sizeof(path), "%s.password_file", prefix);
        err_at(L, pf, path, "password and password_file exclude each other: give one of them");
    } else if (pw) {
        struct cm_config_target_opt *o = opt_mut(L, t);
        if (o && !(o->password = strdup(config_setting_get_string(pw))))
            L->nomem = true;
    } else if (pf) {
        snprintf(path, sizeof(path), "%s.password_file", prefix);
        read_password_file(L, pf, path, t);
    }
}

static void read_file_entry(struct loader *L, const config_setting_t *g, unsigned index,
                            struct cm_config_target *t)
{
    struct cm_config *cfg = L->cfg;
    char prefix[64];
    struct seen seen;
    struct cm_policy *policy;
    struct cm_config_target_opt *o;

    snprintf(prefix, sizeof(prefix), "files[%u]", index);
    t->kind = CM_TARGET_FILE;
    t->index = index;
    t->interval_ms = cfg->interval_ms;
    t->timeout_ms = cfg->timeout_ms;
    t->posture_interval_ms = 0;
    if (!(policy = policy_begin(L, t)))
        return;
    read_group(L, g, prefix, &groups[G_FILES], t, policy, &seen);
    check_days(L, prefix, policy, &seen, "global");
    policy_settle(L, t, policy, &seen);
    if (!config_setting_get_member(g, "path"))
        err_at(L, g, prefix, "missing required setting 'path'");
    if (t->opt->path && asprintf(&t->name, "file:%s", t->opt->path) < 0) {
        t->name = NULL;
        L->nomem = true;
    }
    if (seen.k[FK_LABELS])
        read_labels(L, seen.k[FK_LABELS], prefix, &t->labels);
    if (seen.k[FK_CA_FILE] && (o = opt_mut(L, t)))
        o->ca_file_at = origin_of(L, seen.k[FK_CA_FILE]);
    read_password(L, &seen, prefix, t);
}

static void read_strs(struct loader *L, const config_setting_t *s, const char *path, char ***out,
                      size_t *count);

/* The DNS kinds of a discovery block: srv = "NAME" or mx = "NAME" (one of them, and not with
 * files), the port of mx, and their defaults (refresh 5m, mx: port 25 and STARTTLS smtp, which
 * the port alone would not say once it is changed). Returns whether the block is one. */
static bool read_discovery_dns(struct loader *L, const config_setting_t *g, const char *prefix,
                               const struct seen *seen, struct cm_config_discovery *d)
{
    const config_setting_t *srv = seen->k[DK_SRV], *mx = seen->k[DK_MX], *s = srv ? srv : mx;
    char path[96];

    if (seen->k[DK_PORT] && !mx) {
        snprintf(path, sizeof(path), "%s.port", prefix);
        err_at(L, seen->k[DK_PORT], path,
               "only an mx source takes a port (SRV records name their own ports)");
    }
    if (!s)
        return false;
    snprintf(path, sizeof(path), "%s.%s", prefix, srv ? "srv" : "mx");
    if (srv && mx)
        err_at(L, mx, path, "give one of srv and mx: a source looks up one name");
    else if (config_setting_get_member(g, "files"))
        err_at(L, s, path, "give files or %s, not both: a source reads one kind of thing",
               srv ? "srv" : "mx");
    const char *name = config_setting_get_string(s);
    if (!cm_host_is_valid_name(name) || cm_host_is_ip(name))
        err_at(L, s, path, "'%s' is not a DNS name%s", name,
               srv ? " (a SRV name looks like _https._tcp.example.com)" : "");
    else
        d->dns_name = ldup(L, name);
    d->kind = srv ? CM_DISCOVERY_SRV : CM_DISCOVERY_MX;
    if (!seen->k[DK_REFRESH])
        d->refresh_ms = 5 * MS_MIN;
    if (mx && !seen->k[DK_PORT])
        d->port = 25;
    if (mx && !d->starttls)
        d->starttls = ldup(L, "smtp");
    return true;
}

/* One element of discovery: what to read (files), how often, and the defaults of the targets
 * found there, checked like a target's own keys. */
static void read_discovery(struct loader *L, const config_setting_t *g, unsigned index,
                           struct cm_config_discovery *d)
{
    static const char *const starttls_names = "smtp, imap, pop3, ftp, ldap, postgres, mysql, "
                                              "xmpp or none";
    struct cm_config *cfg = L->cfg;
    const config_setting_t *s;
    enum cm_starttls_proto proto;
    char prefix[64], path[96];
    struct seen seen;

    snprintf(prefix, sizeof(prefix), "discovery[%u]", index);
    d->index = index;
    d->kind = CM_DISCOVERY_FILES;
    d->interval_ms = cfg->interval_ms;
    d->timeout_ms = cfg->timeout_ms;
    d->posture_interval_ms = cfg->posture_interval_ms;
    apply_defaults(&discovery_keys[DK_REFRESH], 1, d);
    if (policy_copy(&d->policy, &cfg->policy) < 0)
        L->nomem = true;
    read_group(L, g, prefix, &groups[G_DISCOVERY], d, &d->policy, &seen);
    check_days(L, prefix, &d->policy, &seen, "global");

    if ((s = seen.k[DK_NAME])) {
        const char *v = config_setting_get_string(s);
        snprintf(path, sizeof(path), "%s.name", prefix);
        if (has_control(v))
            err_at(L, s, path, "must not contain control characters");
        else
            d->name = ldup(L, v);
    } else if (asprintf(&d->name, "discovery[%u]", index) < 0) {
        d->name = NULL;
        L->nomem = true;
    }
    if (!read_discovery_dns(L, g, prefix, &seen, d) && !config_setting_get_member(g, "files"))
        err_at(L, g, prefix, "missing required setting 'files' (a list of .json or .yml "
                             "files, globs allowed), 'srv' or 'mx'");
    if ((s = seen.k[DK_FILES])) {
        char **pats = NULL;
        size_t n = 0;
        snprintf(path, sizeof(path), "%s.files", prefix);
        read_strs(L, s, path, &pats, &n);
        d->files = calloc(n ? n : 1, sizeof(*d->files));
        if (!d->files)
            L->nomem = true;
        for (size_t i = 0; i < n; i++) {
            enum cm_sd_format f;
            char epath[128];
            snprintf(epath, sizeof(epath), "%s[%zu]", path, i);
            if (!*pats[i] || cm_sd_format_of(pats[i], &f) < 0)
                err_at(L, config_setting_get_elem(s, (unsigned)i), epath,
                       "'%s' must name .json, .yml or .yaml files (the format goes by the "
                       "name)",
                       pats[i]);
            else if (d->files && !(d->files[d->file_count++] = path_clean(cfg->dir, pats[i])))
                L->nomem = true;
            free(pats[i]);
        }
        free(pats);
        if (n == 0)
            err_at(L, s, path, "must name at least one file or pattern");
    }
    if ((s = seen.k[DK_STARTTLS]) && cm_starttls_parse(d->starttls, &proto) < 0) {
        snprintf(path, sizeof(path), "%s.starttls", prefix);
        err_at(L, s, path, "must be one of %s, not '%s'", starttls_names, d->starttls);
    }
    {
        const config_setting_t *cc = config_setting_get_member(g, "client_cert");
        const config_setting_t *ck = config_setting_get_member(g, "client_key");
        if (!cc != !ck) {
            snprintf(path, sizeof(path), "%s.%s", prefix, cc ? "client_cert" : "client_key");
            err_at(L, cc ? cc : ck, path,
                   cc ? "client_cert needs client_key too (give both or neither)"
                      : "client_key needs client_cert too (give both or neither)");
        }
    }
    if ((s = seen.k[DK_POSTURE]) && !config_setting_get_bool(s)) {
        if (config_setting_get_member(g, "posture_interval")) {
            snprintf(path, sizeof(path), "%s.posture", prefix);
            err_at(L, s, path, "posture = false contradicts posture_interval: give one of them");
        }
        d->posture_interval_ms = 0;
    }
    if ((s = seen.k[DK_LABELS]))
        read_labels(L, s, prefix, &d->labels);
}

/* A list of strings into a new array of copies. */
static void read_strs(struct loader *L, const config_setting_t *s, const char *path, char ***out,
                      size_t *count)
{
    unsigned n = (unsigned)config_setting_length(s);
    char epath[600];

    *out = calloc(n ? n : 1, sizeof(**out));
    *count = 0;
    if (!*out) {
        L->nomem = true;
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        const char *v = string_elem(L, s, i, path, epath, sizeof(epath));
        if (!v)
            continue;
        if (!*v || has_control(v)) {
            err_at(L, config_setting_get_elem(s, i), epath,
                   "must be a non-empty string without control characters");
            continue;
        }
        if (((*out)[*count] = ldup(L, v)))
            (*count)++;
    }
}

static bool has_scheme(const char *url, const char *const *schemes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(schemes[i]);
        if (!strncasecmp(url, schemes[i], l) && url[l])
            return true;
    }
    return false;
}

static void check_url(struct loader *L, const config_setting_t *s, const char *path,
                      const char *url, bool mail)
{
    static const char *const web[] = {"http://", "https://"};
    static const char *const smtp[] = {"smtp://", "smtps://"};

    if (has_control(url) || strchr(url, ' '))
        err_at(L, s, path, "must not contain spaces or control characters");
    else if (!has_scheme(url, mail ? smtp : web, 2))
        err_at(L, s, path, "must start with %s", mail ? "smtp:// or smtps://" : "http:// or https://");
}

/* pin_sha256 = [ "HEX", ... ]: 64 hex digits each (colons, as openssl prints fingerprints,
 * are allowed), kept lowercase and space-separated. */
static void read_pins(struct loader *L, const config_setting_t *s, const char *prefix,
                      struct cm_config_target *t, struct cm_policy *policy)
{
    unsigned n = (unsigned)config_setting_length(s);
    char path[80], epath[96];
    size_t off = 0;
    struct cm_config_target_opt *o;
    char *pins;

    snprintf(path, sizeof(path), "%s.pin_sha256", prefix);
    if (n == 0) {
        err_at(L, s, path, "an empty list pins nothing: give at least one SHA-256, or no key");
        return;
    }
    if (!(o = opt_mut(L, t)) || !(o->pins = pins = malloc((size_t)n * 65 + 1))) {
        L->nomem = true;
        return;
    }
    pins[0] = '\0';
    for (unsigned i = 0; i < n; i++) {
        const char *v = string_elem(L, s, i, path, epath, sizeof(epath));
        char hex[65];
        size_t k = 0;
        bool bad = false;
        if (!v)
            continue;
        for (const char *p = v; *p && !bad; p++) {
            if (*p == ':')
                continue;
            if (!isxdigit((unsigned char)*p) || k == 64)
                bad = true;
            else
                hex[k++] = (char)tolower((unsigned char)*p);
        }
        if (bad || k != 64) {
            err_at(L, config_setting_get_elem(s, i), epath,
                   "not a SHA-256: give 64 hex digits (the certificate's or its public key's "
                   "SHA-256)");
            continue;
        }
        hex[64] = '\0';
        off += (size_t)sprintf(pins + off, "%s%s", off ? " " : "", hex);
    }
    policy->pins = pins;
}

/* pin = "tofu": the first leaf seen is pinned (the daemon keeps the pin). It excludes
 * pin_sha256, which names the pins itself. */
static void read_pin_mode(struct loader *L, const struct seen *seen, const char *prefix,
                          struct cm_config_target *t)
{
    const config_setting_t *s = seen->k[TK_PIN];
    const char *v;
    char path[80];

    if (!s)
        return;
    v = config_setting_get_string(s);
    snprintf(path, sizeof(path), "%s.pin", prefix);
    if (strcmp(v, "tofu") != 0) {
        err_at(L, s, path,
               "must be \"tofu\" (pin the first certificate seen), not '%s'; to pin given "
               "certificates or keys use pin_sha256",
               v);
        return;
    }
    if (seen->k[TK_PIN_SHA256]) {
        err_at(L, s, path, "pin = \"tofu\" and pin_sha256 exclude each other: give one of them");
        return;
    }
    t->pin_tofu = true;
}

/* ari_url or acme_directory: an http(s) URL, one of the two. */
static void read_ari(struct loader *L, const struct seen *seen, const char *prefix,
                     struct cm_config_target *t)
{
    const config_setting_t *u = seen->k[TK_ARI_URL], *d = seen->k[TK_ACME_DIRECTORY];
    char path[80];

    if (u && t->opt->ari_url) {
        snprintf(path, sizeof(path), "%s.ari_url", prefix);
        check_url(L, u, path, t->opt->ari_url, false);
    }
    if (d && t->opt->acme_directory) {
        snprintf(path, sizeof(path), "%s.acme_directory", prefix);
        check_url(L, d, path, t->opt->acme_directory, false);
    }
    if (u && d) {
        snprintf(path, sizeof(path), "%s.acme_directory", prefix);
        err_at(L, d, path, "acme_directory and ari_url exclude each other: give one of them");
    }
}

static const char *const notifier_types[] = {"slack",     "webhook", "email",    "alertmanager",
                                             "pagerduty", "teams",   "telegram", "ntfy"};
#define NOTIFIER_TYPES (sizeof(notifier_types) / sizeof(notifier_types[0]))
#define NOTIFIER_TYPE_LIST "slack, webhook, email, alertmanager, pagerduty, teams, telegram or ntfy"

/* name and type. Returns true when the type is known (then n->kind is set). */
static bool read_notifier_identity(struct loader *L, const config_setting_t *g,
                                   const struct seen *seen, const char *prefix,
                                   struct cm_config_notifier *n)
{
    const config_setting_t *s;
    char path[128];

    if (!config_setting_get_member(g, "name"))
        err_at(L, g, prefix, "missing required setting 'name'");
    if (!config_setting_get_member(g, "type"))
        err_at(L, g, prefix, "missing required setting 'type' (" NOTIFIER_TYPE_LIST ")");
    if ((s = seen->k[NK_NAME])) {
        if (has_control(config_setting_get_string(s))) {
            snprintf(path, sizeof(path), "%s.name", prefix);
            err_at(L, s, path, "must not contain control characters");
        } else {
            n->name = ldup(L, config_setting_get_string(s));
        }
    }
    if ((s = seen->k[NK_TYPE])) {
        const char *v = config_setting_get_string(s), *hint;
        size_t i;
        for (i = 0; i < NOTIFIER_TYPES && strcmp(v, notifier_types[i]); i++)
            ;
        if (i < NOTIFIER_TYPES) {
            n->type = ldup(L, v);
            n->kind = (enum cm_notifier_kind)i;
            return true;
        }
        hint = closest(v, notifier_types, NOTIFIER_TYPES);
        snprintf(path, sizeof(path), "%s.type", prefix);
        err_at(L, s, path, "must be one of " NOTIFIER_TYPE_LIST ", not '%s'%s%s%s", v,
               hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
    }
    return false;
}

/* Which alerts the notifier takes: min_severity, findings, match. */
static void read_notifier_filters(struct loader *L, const struct seen *seen, const char *prefix,
                                  struct cm_config_notifier *n)
{
    const config_setting_t *s;
    char path[128];

    if ((s = seen->k[NK_MIN_SEVERITY])) {
        snprintf(path, sizeof(path), "%s.min_severity", prefix);
        if (cm_severity_parse(config_setting_get_string(s), &n->min_severity) < 0)
            err_at(L, s, path, "must be info, warning or critical, not '%s'",
                   config_setting_get_string(s));
    }
    if ((s = seen->k[NK_FINDINGS])) {
        unsigned cnt = (unsigned)config_setting_length(s);
        char epath[600];
        snprintf(path, sizeof(path), "%s.findings", prefix);
        if (!(n->findings = calloc(cnt ? cnt : 1, sizeof(*n->findings)))) {
            L->nomem = true;
        } else {
            for (unsigned i = 0; i < cnt; i++) {
                const char *v = string_elem(L, s, i, path, epath, sizeof(epath)), *hint;
                const struct cm_finding_def *d = v ? cm_finding_lookup(v) : NULL;
                if (d) {
                    n->findings[n->finding_count++] = d->id;
                } else if (v) {
                    hint = cm_finding_suggest(v);
                    err_at(L, config_setting_get_elem(s, i), epath,
                           "unknown finding id '%s'%s%s%s (see docs/findings.md)", v,
                           hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
                }
            }
        }
    }
    if ((s = seen->k[NK_MATCH]))
        read_labels(L, s, prefix, &n->match);
}

/* Where it delivers: url, or urls for Alertmanager (url is the one-Alertmanager spelling). */
static void read_notifier_urls(struct loader *L, const config_setting_t *g,
                               const struct seen *seen, const char *prefix,
                               struct cm_config_notifier *n)
{
    const config_setting_t *s;
    char path[128];

    if ((s = seen->k[NK_URLS])) {
        snprintf(path, sizeof(path), "%s.urls", prefix);
        read_strs(L, s, path, &n->urls, &n->url_count);
        for (size_t i = 0; i < n->url_count; i++)
            check_url(L, config_setting_get_elem(s, (unsigned)i), path, n->urls[i], false);
        if (n->url_count == 0 && config_setting_length(s) == 0)
            err_at(L, s, path, "must list at least one Alertmanager URL");
    }
    if ((s = seen->k[NK_URL])) {
        snprintf(path, sizeof(path), "%s.url", prefix);
        check_url(L, s, path, n->url, n->kind == CM_NOTIFIER_EMAIL);
        if (n->kind == CM_NOTIFIER_ALERTMANAGER && !seen->k[NK_URLS] && n->url) {
            /* url = "..." is the one-Alertmanager spelling of urls = [ "..." ]. */
            if ((n->urls = calloc(1, sizeof(*n->urls))) && (n->urls[0] = ldup(L, n->url)))
                n->url_count = 1;
            else
                L->nomem = true;
        }
    }
    if (n->kind == CM_NOTIFIER_ALERTMANAGER && seen->k[NK_URL] && seen->k[NK_URLS])
        err_at(L, seen->k[NK_URL], prefix, "give either 'url' or 'urls', not both");
    /* PagerDuty and Telegram have public endpoints: their readers fill in the default. */
    if (!seen->k[NK_URL] && !(n->kind == CM_NOTIFIER_ALERTMANAGER && seen->k[NK_URLS]) &&
        n->kind != CM_NOTIFIER_PAGERDUTY && n->kind != CM_NOTIFIER_TELEGRAM)
        err_at(L, g, prefix, "missing required setting '%s'",
               n->kind == CM_NOTIFIER_ALERTMANAGER ? "urls" : "url");
}

/* HTTP headers: "Name: value" lines. */
static void read_notifier_headers(struct loader *L, const struct seen *seen, const char *prefix,
                                  struct cm_config_notifier *n)
{
    const config_setting_t *s;
    char path[128];

    if (!(s = seen->k[NK_HEADERS]))
        return;
    snprintf(path, sizeof(path), "%s.headers", prefix);
    read_strs(L, s, path, &n->headers, &n->header_count);
    for (size_t i = 0; i < n->header_count; i++) {
        const char *h = n->headers[i], *colon = strchr(h, ':');
        size_t nl = colon ? (size_t)(colon - h) : 0;
        bool ok = nl > 0 && strspn(h, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                      "0123456789-_") == nl;
        if (!ok)
            err_at(L, config_setting_get_elem(s, (unsigned)i), path,
                   "'%s' is not a header line 'Name: value'", h);
    }
}

/* Mail: recipients (to), and for email notifiers the sender and the credentials pair. */
static void read_notifier_mail(struct loader *L, const config_setting_t *g,
                               const struct seen *seen, const char *prefix,
                               struct cm_config_notifier *n)
{
    const config_setting_t *s;
    char path[128];

    if ((s = seen->k[NK_TO])) {
        snprintf(path, sizeof(path), "%s.to", prefix);
        read_strs(L, s, path, &n->to, &n->to_count);
        for (size_t i = 0; i < n->to_count; i++)
            if (!strchr(n->to[i], '@') || strpbrk(n->to[i], " <>,;"))
                err_at(L, config_setting_get_elem(s, (unsigned)i), path,
                       "'%s' is not a mail address (user@domain)", n->to[i]);
        if (config_setting_length(s) == 0)
            err_at(L, s, path, "must list at least one recipient");
    }
    if (n->kind != CM_NOTIFIER_EMAIL)
        return;
    if (!seen->k[NK_FROM])
        err_at(L, g, prefix, "missing required setting 'from' (the sender's address)");
    else if (!strchr(n->from, '@') || strpbrk(n->from, " <>,;\r\n"))
        err_at(L, seen->k[NK_FROM], prefix, "from: '%s' is not a mail address", n->from);
    if (!seen->k[NK_TO])
        err_at(L, g, prefix, "missing required setting 'to' (a list of recipients)");
    if (!seen->k[NK_USERNAME] != !seen->k[NK_PASSWORD])
        err_at(L, seen->k[NK_USERNAME] ? seen->k[NK_USERNAME] : seen->k[NK_PASSWORD], prefix,
               "username and password go together");
}

/* Largest secret file (routing_key_file, bot_token_file, token_file): a token is short. */
#define SECRET_FILE_MAX 4096

/* A secret given as KEY = "value" or KEY_file = "PATH" (the row after KEY's in
 * notifier_keys; relative to the configuration's
 * directory; one trailing newline, as `echo` writes it, is not part of the secret). Exactly
 * one of them when required. Messages never show the secret. */
static void read_secret(struct loader *L, const config_setting_t *g, const struct seen *seen,
                        const char *prefix, size_t key, bool required, char **out)
{
    const config_setting_t *v = seen->k[key], *f = seen->k[key + 1];
    const char *name = notifier_keys[key].name;
    char path[128], msg[PATH_MAX + 200], *abs, *text = NULL;
    size_t len;
    int e;

    snprintf(path, sizeof(path), "%s.%s", prefix, f && !v ? notifier_keys[key + 1].name : name);
    if (v && f) {
        err_at(L, f, path, "give either '%s' or '%s_file', not both", name, name);
        return;
    }
    if (!v && !f) {
        if (required)
            err_at(L, g, prefix, "missing required setting '%s' (or '%s_file')", name, name);
        return;
    }
    if (v) {
        text = ldup(L, config_setting_get_string(v));
    } else {
        if (!(abs = path_clean(L->cfg->dir, config_setting_get_string(f)))) {
            L->nomem = true;
            return;
        }
        e = read_source(abs, SECRET_FILE_MAX, SECRET_FILE_MAX, &text, &len, msg, sizeof(msg));
        free(abs);
        if (e) {
            if (e == ENOMEM)
                L->nomem = true;
            else
                err_at(L, f, path, "%s", msg);
            return;
        }
        if (strlen(text) != len) {
            err_at(L, f, path, "the file holds a NUL byte");
            free(text);
            return;
        }
        if (len > 0 && text[len - 1] == '\n')
            text[--len] = '\0';
        if (len > 0 && text[len - 1] == '\r')
            text[--len] = '\0';
    }
    if (!text)
        return;
    if (!*text || has_control(text) || strchr(text, ' ')) {
        err_at(L, v ? v : f, path, "%s: the %s must be one line without spaces, and not empty",
               v ? "the value" : "the file", name);
        free(text);
        return;
    }
    *out = text;
}

/* pagerduty: the routing key (required), the Events API URL (default the public one). */
static void read_notifier_pagerduty(struct loader *L, const config_setting_t *g,
                                    const struct seen *seen, const char *prefix,
                                    struct cm_config_notifier *n)
{
    const config_setting_t *s;
    char path[128];

    read_secret(L, g, seen, prefix, NK_ROUTING_KEY, true, &n->token);
    if (!n->url && !seen->k[NK_URL] &&
        !(n->url = ldup(L, "https://events.pagerduty.com/v2/enqueue")))
        return;
    if ((s = seen->k[NK_CLIENT_URL])) {
        snprintf(path, sizeof(path), "%s.client_url", prefix);
        check_url(L, s, path, n->client_url, false);
    }
}

/* telegram: the bot token (it goes into the URL's path, so only its own characters), the
 * chat, the parse mode, the Bot API base URL (default the public one). */
static void read_notifier_telegram(struct loader *L, const config_setting_t *g,
                                   const struct seen *seen, const char *prefix,
                                   struct cm_config_notifier *n)
{
    static const char tok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:_-";
    const config_setting_t *s;
    char path[128];

    n->html = true;
    read_secret(L, g, seen, prefix, NK_BOT_TOKEN, true, &n->token);
    if (n->token && n->token[strspn(n->token, tok)] != '\0') {
        s = seen->k[NK_BOT_TOKEN] ? seen->k[NK_BOT_TOKEN] : seen->k[NK_BOT_TOKEN_FILE];
        err_at(L, s, prefix,
               "bot_token: not a Telegram bot token (digits ':' letters, digits, "
               "'_' and '-'; as @BotFather gives it)");
    }
    if (!(s = seen->k[NK_CHAT_ID])) {
        err_at(L, g, prefix, "missing required setting 'chat_id'");
    } else if (n->chat_id) {
        const char *c = n->chat_id, *d = c + (c[0] == '-');
        /* A numeric id (groups and channels are negative), or a public @channelname. */
        bool ok = c[0] == '@'
                      ? c[1] && !c[1 + strspn(c + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                     "abcdefghijklmnopqrstuvwxyz0123456789_")]
                      : d[0] && !d[strspn(d, "0123456789")];
        snprintf(path, sizeof(path), "%s.chat_id", prefix);
        if (!ok)
            err_at(L, s, path,
                   "'%s' is not a chat id (a number such as -1001234567890, or "
                   "@channelname)",
                   c);
    }
    if ((s = seen->k[NK_PARSE_MODE])) {
        const char *v = config_setting_get_string(s);
        snprintf(path, sizeof(path), "%s.parse_mode", prefix);
        if (!strcmp(v, "HTML") || !strcmp(v, "html"))
            n->html = true;
        else if (!strcmp(v, "text"))
            n->html = false;
        else
            err_at(L, s, path, "must be HTML or text, not '%s'", v);
    }
    if (!n->url && !seen->k[NK_URL])
        n->url = ldup(L, "https://api.telegram.org");
}

/* ntfy: an optional access token (Authorization: Bearer). */
static void read_notifier_ntfy(struct loader *L, const config_setting_t *g, const struct seen *seen,
                               const char *prefix, struct cm_config_notifier *n)
{
    read_secret(L, g, seen, prefix, NK_TOKEN, false, &n->token);
}

/* One element of notifiers: the table-driven keys (read_group), the name and type, then the
 * settings of that type, each group read by a function of its own. */
static void read_notifier(struct loader *L, const config_setting_t *g, unsigned index,
                          struct cm_config_notifier *n)
{
    char prefix[64], path[128];
    struct seen seen;
    const config_setting_t *s;
    struct cm_config_origin o = origin_of(L, g);

    snprintf(prefix, sizeof(prefix), "notifiers[%u]", index);
    n->file = o.file;
    n->line = o.line;
    n->min_severity = CM_SEV_WARNING;
    apply_defaults(notifier_keys, NK_N, n);
    read_group(L, g, prefix, &groups[G_NOTIFIERS], n, NULL, &seen);
    if (!read_notifier_identity(L, g, &seen, prefix, n))
        return; /* which keys belong is unknown: the type's error says enough */
    for (size_t k = 0; k < NK_N; k++) {
        if (seen.k[k] && !(notifier_key_types[k] & (1u << n->kind))) {
            snprintf(path, sizeof(path), "%s.%s", prefix, notifier_keys[k].name);
            err_at(L, seen.k[k], path, "is not a setting of a %s notifier",
                   notifier_types[n->kind]);
        }
    }
    read_notifier_filters(L, &seen, prefix, n);
    read_notifier_urls(L, g, &seen, prefix, n);
    read_notifier_headers(L, &seen, prefix, n);
    read_notifier_mail(L, g, &seen, prefix, n);
    if (n->kind == CM_NOTIFIER_PAGERDUTY)
        read_notifier_pagerduty(L, g, &seen, prefix, n);
    else if (n->kind == CM_NOTIFIER_TELEGRAM)
        read_notifier_telegram(L, g, &seen, prefix, n);
    else if (n->kind == CM_NOTIFIER_NTFY)
        read_notifier_ntfy(L, g, &seen, prefix, n);
    if ((s = seen.k[NK_GENERATOR_URL])) {
        snprintf(path, sizeof(path), "%s.generator_url", prefix);
        check_url(L, s, path, n->generator_url, false);
    }
}

/* ---- Whole file ---- */

static const config_setting_t *top_member(struct loader *L, const char *name, int want)
{
    const config_setting_t *s = config_lookup(&L->lc, name);
    const char *want_s =
        want == CONFIG_TYPE_GROUP ? "a group { ... }" : "a list of groups ( { ... }, ... )";

    if (!s)
        return NULL;
    if (want == CONFIG_TYPE_LIST && config_setting_type(s) == CONFIG_TYPE_ARRAY &&
        config_setting_length(s) == 0)
        return s; /* [] : an empty list */
    if (config_setting_type(s) != want) {
        err_at(L, s, name, "expected %s, found %s", want_s, type_name(config_setting_type(s)));
        return NULL;
    }
    return s;
}

static void check_top(struct loader *L)
{
    const config_setting_t *root = config_root_setting(&L->lc);
    const char *names[G_N];

    for (size_t g = 0; g < G_N; g++)
        names[g] = groups[g].name;
    for (unsigned i = 0; i < (unsigned)config_setting_length(root); i++) {
        const config_setting_t *m = config_setting_get_elem(root, i);
        const char *name = config_setting_name(m), *hint;
        size_t g;

        for (g = 0; g < G_N && strcmp(name, names[g]); g++)
            ;
        if (g < G_N)
            continue;
        if ((hint = closest(name, names, G_N))) {
            err_at(L, m, name, "unknown setting; did you mean '%s'?", hint);
            continue;
        }
        for (g = 0; g < G_N; g++) {
            if (!groups[g].is_list &&
                (find_key(groups[g].keys, groups[g].nkeys, name) != NPOS ||
                 (groups[g].policy && find_key(policy_keys, PK_N, name) != NPOS)))
                break;
        }
        if (g < G_N)
            err_at(L, m, name,
                   "unknown top-level setting; did you mean %s.%s? (it goes inside %s = "
                   "{ ... })",
                   groups[g].name, name, groups[g].name);
        else
            err_at(L, m, name,
                   "unknown setting (the top level has global, log, metrics, targets, files, "
                   "notifiers and discovery)");
    }
}

static int name_cmp(const void *a, const void *b, void *arg)
{
    const struct cm_config_target *t = arg;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(t[i].name, t[j].name);

    return c ? c : (i > j) - (i < j);
}

/* Sorts target indices by name and reports every name defined twice. */
static void check_duplicates(struct loader *L)
{
    struct cm_config *cfg = L->cfg;
    size_t *idx = malloc((cfg->target_count ? cfg->target_count : 1) * sizeof(*idx)), n = 0;

    if (!idx) {
        L->nomem = true;
        return;
    }
    for (size_t i = 0; i < cfg->target_count; i++)
        if (cfg->targets[i].name)
            idx[n++] = i;
    qsort_r(idx, n, sizeof(*idx), name_cmp, cfg->targets);
    for (size_t i = 1, first = 0; i < n; i++) {
        const struct cm_config_target *a = &cfg->targets[idx[first]], *b = &cfg->targets[idx[i]];
        if (strcmp(a->name, b->name)) {
            first = i;
            continue;
        }
        const struct cm_config_origin *o = &L->name_at[idx[i]];
        add_problem(L, o->file ? o->file : b->file, o->file ? o->line : b->line,
                    "%s[%u]%s: duplicate target '%s' (first defined at %s:%d); %s",
                    b->kind == CM_TARGET_FILE ? "files" : "targets", b->index,
                    o->file ? ".name" : "", b->name, a->file, a->line,
                    b->kind == CM_TARGET_FILE ? "list each path once"
                                              : "give one a distinct `name`");
    }
    if (n == cfg->target_count)
        cfg->by_name = idx;
    else
        free(idx);
}

static void check_notifier_names(struct loader *L)
{
    struct cm_config *cfg = L->cfg;
    struct smap seen = {0};

    for (size_t i = 0; i < cfg->notifier_count; i++) {
        const struct cm_config_notifier *n = &cfg->notifiers[i];
        int *first;
        if (!n->name)
            continue;
        if ((first = smap_get(&seen, n->name))) {
            const struct cm_config_notifier *a = &cfg->notifiers[*first];
            add_problem(L, n->file, n->line,
                        "notifiers[%zu].name: duplicate notifier '%s' (first defined at %s:%d)", i,
                        n->name, a->file, a->line);
        } else if (smap_put(&seen, n->name, (int)i) < 0) {
            L->nomem = true;
        }
    }
    smap_free(&seen);
}

static uint64_t hash_str(uint64_t h, const char *s)
{
    /* A tag byte keeps NULL, "" and adjacent strings apart. */
    h = cm_fnv1a(h, s ? "S" : "N", 1);
    return s ? cm_fnv1a(h, s, strlen(s) + 1) : h;
}

static uint64_t hash_u64(uint64_t h, uint64_t v)
{
    unsigned char b[8];

    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    return cm_fnv1a(h, b, sizeof(b));
}

static uint64_t spec_hash(const struct cm_config *cfg, const struct cm_config_target *t)
{
    uint64_t h = CM_FNV1A_INIT;

    h = hash_u64(h, (uint64_t)t->kind);
    h = hash_str(h, t->ep.host);
    h = hash_u64(h, t->ep.port);
    h = hash_str(h, t->ep.sni);
    h = hash_str(h, t->ep.verify_name);
    h = hash_u64(h, (uint64_t)t->ep.starttls);
    h = hash_str(h, t->opt->connect_address);
    h = hash_str(h, t->opt->ca_file);
    h = hash_str(h, t->opt->client_cert);
    h = hash_str(h, t->opt->client_key);
    h = hash_str(h, t->opt->path);
    h = hash_str(h, t->opt->password); /* a new password reads the keystore anew */
    h = hash_u64(h, t->interval_ms);
    h = hash_u64(h, t->timeout_ms);
    h = hash_u64(h, t->posture_interval_ms);
    h = hash_str(h, t->opt->ari_url);
    h = hash_str(h, t->opt->acme_directory);
    h = hash_str(h, t->opt->pins);
    h = hash_u64(h, t->pin_tofu);
    h = hash_u64(h, (uint64_t)(int64_t)t->policy->warn_days);
    h = hash_u64(h, (uint64_t)(int64_t)t->policy->crit_days);
    h = hash_u64(h, t->policy->warn_lifetime_pct);
    h = hash_u64(h, t->policy->crit_lifetime_pct);
    h = hash_u64(h, (uint64_t)(int64_t)t->policy->max_lifetime_days);
    h = hash_u64(h, t->policy->min_rsa_bits);
    h = hash_u64(h, t->policy->min_ec_bits);
    h = hash_u64(h, t->policy->allow_self_signed);
    h = hash_u64(h, (uint64_t)t->policy->revocation);
    h = hash_u64(h, t->policy->revocation_timeout_ms);
    h = hash_u64(h, t->policy->rule_count);
    for (size_t i = 0; i < t->policy->rule_count; i++) {
        h = hash_str(h, t->policy->rules[i].id);
        h = hash_u64(h, t->policy->rules[i].ignore);
        h = hash_u64(h, (uint64_t)t->policy->rules[i].severity);
    }
    /* The list's content, not its path: an edited file changes how the target is judged. */
    for (size_t i = 0; i < cfg->roots_count; i++)
        if (cfg->roots[i].text == t->policy->interception_roots)
            h = hash_u64(h, cfg->roots[i].hash);
    return h;
}

/* A one-line excerpt of a source line for a syntax error: printable, at most 80 bytes. */
static void excerpt(const char *line, char *buf, size_t len)
{
    size_t o = 0;

    line += strspn(line, " \t");
    for (; *line && o + 4 < len && o < 80; line++)
        buf[o++] = (unsigned char)*line < 0x20 || *line == 0x7f ? ' ' : *line;
    while (o > 0 && buf[o - 1] == ' ')
        o--;
    if (*line && o + 4 < len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
}

static void syntax_error(struct loader *L)
{
    int line;
    struct srcfile *sf = locate(L, config_error_line(&L->lc), &line);
    const char *text = config_error_text(&L->lc) ? config_error_text(&L->lc) : "syntax error";
    const char *src = src_line(sf, line);
    char ex[100];

    if (!src) {
        add_problem(L, sf->abs, line,
                    "syntax error: %s at the end of the file (an unclosed string, group or "
                    "list?)",
                    strcmp(text, "syntax error") ? text : "unexpected end");
        return;
    }
    excerpt(src, ex, sizeof(ex));
    if (!strcmp(text, "syntax error"))
        add_problem(L, sf->abs, line, "syntax error: in `%s`", ex);
    else if (strstr(text, "include"))
        add_problem(L, sf->abs, line, "syntax error: %s: `%s` (include paths are relative to %s)",
                    text, ex, L->cfg->dir);
    else
        add_problem(L, sf->abs, line, "syntax error: %s: `%s`", text, ex);
}

static int problem_cmp(const void *a, const void *b)
{
    const struct problem *x = a, *y = b;

    if (x->rank != y->rank)
        return x->rank < y->rank ? -1 : 1;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Moves the problems, in file order, to errs. */
static int flush_problems(struct loader *L, struct cm_config_errors *errs)
{
    char **n;

    if (L->nprobs)
        qsort(L->probs, L->nprobs, sizeof(*L->probs), problem_cmp);
    if (L->nprobs && errs) {
        if (!(n = realloc(errs->msgs, (errs->count + L->nprobs) * sizeof(*n))))
            return -ENOMEM;
        errs->msgs = n;
        for (size_t i = 0; i < L->nprobs; i++) {
            errs->msgs[errs->count++] = L->probs[i].msg;
            L->probs[i].msg = NULL;
        }
    }
    return 0;
}

static void loader_free(struct loader *L)
{
    for (size_t i = 0; i < L->nprobs; i++)
        free(L->probs[i].msg);
    free(L->probs);
    for (size_t i = 0; i < L->nsrcs; i++) {
        free(L->srcs[i].raw);
        free(L->srcs[i].text);
        free(L->srcs[i].lines);
    }
    free(L->srcs);
    free(L->segs);
    free(L->name_at);
    smap_free(&L->readable);
    config_destroy(&L->lc);
}

/* ---- Reading the files ----
 *
 * The loader reads every file itself and hands libconfig one text with each @include already
 * in place, because libconfig 1.5 opens files with a blocking fopen (a FIFO stalls it for
 * ever, /dev/zero feeds it without end), has no include hook, and scans a long string token
 * from a FILE in quadratic time (flex rescans the token on every buffer refill; from memory it
 * is linear). A map of line runs (struct segment) turns a line of that text back into
 * FILE:LINE for every message. */

#define INCLUDE_DEPTH_MAX 10 /* as libconfig's own limit; also stops an include cycle */

/* Opens path without waiting (O_NONBLOCK: opening a FIFO does not wait for a writer), requires
 * a regular file, and reads at most max bytes of it. Returns 0 with a NUL-terminated copy in
 * *out, or an errno value with the reason for the user in msg (it names the file). total_left
 * is what remains of the budget of all configuration files together (max when the file is
 * not one of them). */
static int read_source(const char *path, size_t max, size_t total_left, char **out, size_t *len,
                       char *msg, size_t msglen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    size_t cap = total_left < max ? total_left : max;
    size_t got = 0, alloc = 0;
    struct stat st = {0};
    char *buf = NULL;
    int e = 0;

    if (fd < 0) {
        e = errno;
        snprintf(msg, msglen, "cannot read %s: %s", path, strerror(e));
        return e;
    }
    if (fstat(fd, &st) < 0) {
        e = errno;
        snprintf(msg, msglen, "cannot read %s: %s", path, strerror(e));
    } else if (S_ISDIR(st.st_mode)) {
        e = EISDIR;
        snprintf(msg, msglen, "cannot read %s: %s", path, strerror(e));
    } else if (!S_ISREG(st.st_mode)) {
        e = EINVAL;
        snprintf(msg, msglen, "%s: not a regular file", path);
    } else if ((uint64_t)st.st_size > cap) {
        e = EFBIG;
    } else if (!(buf = malloc((alloc = (size_t)st.st_size + 1)))) {
        e = ENOMEM;
    }
    /* The size is checked again while reading: a file may grow, and some regular files
     * (under /proc) report 0. */
    while (!e) {
        ssize_t n;
        if (got + 1 == alloc) {
            char *nb;
            if (got > cap) {
                e = EFBIG;
                break;
            }
            alloc = alloc * 2 > cap + 2 ? cap + 2 : alloc * 2 + 4096;
            if (!(nb = realloc(buf, alloc))) {
                e = ENOMEM;
                break;
            }
            buf = nb;
        }
        n = read(fd, buf + got, alloc - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            e = errno;
            snprintf(msg, msglen, "cannot read %s: %s", path, strerror(e));
        } else if (n == 0) {
            break;
        } else {
            got += (size_t)n;
        }
    }
    close(fd);
    if (!e && got > cap)
        e = EFBIG;
    if (e == EFBIG) {
        if (cap < max && (uint64_t)st.st_size <= max)
            snprintf(msg, msglen, "%s: the configuration files together are larger than %u MiB",
                     path, CM_CONFIG_MAX_BYTES >> 20);
        else
            snprintf(msg, msglen, "%s: larger than %zu MiB", path, max >> 20);
    }
    if (e == ENOMEM)
        snprintf(msg, msglen, "%s: out of memory", path);
    if (e) {
        free(buf);
        return e;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

/* Adds a file whose text is read (raw is taken). Returns its index, or NPOS (no memory). */
static size_t add_src(struct loader *L, const char *abs, char *raw, size_t len)
{
    const char *entry = file_entry(L, abs);
    struct srcfile *n;

    if (!entry || !(n = realloc(L->srcs, (L->nsrcs + 1) * sizeof(*n)))) {
        free(raw);
        L->nomem = true;
        return NPOS;
    }
    L->srcs = n;
    n[L->nsrcs] = (struct srcfile){.abs = entry, .raw = raw, .len = len};
    L->bytes_read += len;
    return L->nsrcs++;
}

/* A NUL byte would end the text early without a word: it is an error at its line. */
static bool check_nul(struct loader *L, size_t si)
{
    const struct srcfile *sf = &L->srcs[si];
    const char *z = memchr(sf->raw, '\0', sf->len);
    int line = 1;

    if (!z)
        return true;
    for (const char *p = sf->raw; p < z; p++)
        line += *p == '\n';
    add_problem(L, sf->abs, line, "a NUL byte: this is not a text file");
    return false;
}

static void push_segment(struct loader *L, int first, size_t src, int src_first)
{
    struct segment *n;

    if (L->nsegs == L->capsegs) {
        size_t cap = L->capsegs ? L->capsegs * 2 : 8;
        if (!(n = realloc(L->segs, cap * sizeof(*n)))) {
            L->nomem = true;
            return;
        }
        L->segs = n;
        L->capsegs = cap;
    }
    L->segs[L->nsegs++] = (struct segment){first, src, src_first};
}

/* The text libconfig will parse, bounded like the files themselves. */
struct tbuf {
    char *p;
    size_t len, cap;
    int line; /* current line (from 1) */
};

/* Appends n bytes. Returns 0, -ENOMEM, or CM_ECONFIG when the whole text would exceed
 * CM_CONFIG_MAX_BYTES (a file included many times over), with the problem recorded. */
static int tbuf_put(struct loader *L, struct tbuf *b, const char *s, size_t n)
{
    if (n > CM_CONFIG_MAX_BYTES - b->len) {
        add_problem(L, L->cfg->path, 0,
                    "the configuration with its includes in place is larger than %u MiB",
                    CM_CONFIG_MAX_BYTES >> 20);
        return CM_ECONFIG;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *np;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (!(np = realloc(b->p, cap))) {
            L->nomem = true;
            return -ENOMEM;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

/* A name for a message: control characters become '?', at most 200 bytes. */
static void printable(const char *s, char *out, size_t outlen)
{
    size_t o = 0;

    for (; *s && o + 1 < outlen && o < 200; s++)
        out[o++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
    out[o] = '\0';
}

static int expand(struct loader *L, size_t si, unsigned depth, struct tbuf *out);

/* Reads the file an @include at parent:line names (or reuses it) and expands it into out. */
static int include_file(struct loader *L, size_t parent, int line, const char *name, unsigned depth,
                        struct tbuf *out)
{
    char shown[256], msg[PATH_MAX + 128];
    size_t si = NPOS;
    char *abs, *raw;
    size_t len;
    int e;

    printable(name, shown, sizeof(shown));
    if (!*name) {
        add_problem(L, L->srcs[parent].abs, line, "@include \"\": an empty file name");
        return CM_ECONFIG;
    }
    if (depth + 1 > INCLUDE_DEPTH_MAX) {
        add_problem(L, L->srcs[parent].abs, line,
                    "@include \"%s\": includes nested more than %d deep (does a file include "
                    "itself?)",
                    shown, INCLUDE_DEPTH_MAX);
        return CM_ECONFIG;
    }
    if (!(abs = path_clean(L->cfg->dir, name))) {
        L->nomem = true;
        return -ENOMEM;
    }
    for (size_t k = 0; k < L->nsrcs && si == NPOS; k++)
        if (!strcmp(L->srcs[k].abs, abs))
            si = k;
    if (si == NPOS) {
        e = read_source(abs, CM_CONFIG_MAX_BYTES, CM_CONFIG_MAX_BYTES - L->bytes_read, &raw, &len,
                        msg, sizeof(msg));
        if (e) {
            add_problem(L, L->srcs[parent].abs, line, "@include \"%s\": %s%s%s%s", shown, msg,
                        e == ENOENT ? " (include paths are relative to " : "",
                        e == ENOENT ? L->cfg->dir : "", e == ENOENT ? ")" : "");
            free(abs);
            return e == ENOMEM ? -ENOMEM : CM_ECONFIG;
        }
        si = add_src(L, abs, raw, len);
        if (si != NPOS && !check_nul(L, si)) {
            free(abs);
            return CM_ECONFIG;
        }
    }
    free(abs);
    if (si == NPOS)
        return -ENOMEM;
    return expand(L, si, depth + 1, out);
}

/* Copies file si into out with its @include directives replaced by the files they name,
 * recording where each run of lines comes from. The directive is recognised where
 * libconfig's scanner recognises it: at the start of a line (after blanks), outside strings
 * and comments. */
static int expand(struct loader *L, size_t si, unsigned depth, struct tbuf *out)
{
    enum { CODE, STR, BLOCK, LINE } st = CODE;
    size_t i = 0, run = 0, len = L->srcs[si].len;
    int line = 1;
    bool bol = true;
    int rc;

    push_segment(L, out->line, si, 1);
    while (i < len && !L->nomem) {
        /* Re-read: an include may have moved L->srcs. */
        const char *t = L->srcs[si].raw;
        char c = t[i];

        if (st == CODE && bol) {
            size_t j = i + strspn(t + i, " \t");
            if (!strncmp(t + j, "@include", 8) && (t[j + 8] == ' ' || t[j + 8] == '\t')) {
                size_t k = j + 8 + strspn(t + j + 8, " \t");
                if (t[k] == '"') {
                    int at = line;
                    char *name = malloc(len - k + 1);
                    size_t n = 0;

                    if (!name) {
                        L->nomem = true;
                        return -ENOMEM;
                    }
                    /* As libconfig: \\ and \" are escapes, any other byte is itself. */
                    for (k++; k < len && t[k] != '"'; k++) {
                        if (t[k] == '\\' && k + 1 < len && (t[k + 1] == '\\' || t[k + 1] == '"'))
                            k++;
                        else if (t[k] == '\n')
                            line++;
                        name[n++] = t[k];
                    }
                    name[n] = '\0';
                    if (k >= len) {
                        add_problem(L, L->srcs[si].abs, at,
                                    "syntax error: @include without its closing quote");
                        free(name);
                        return CM_ECONFIG;
                    }
                    if ((rc = tbuf_put(L, out, t + run, i - run))) {
                        free(name);
                        return rc;
                    }
                    rc = include_file(L, si, at, name, depth, out);
                    free(name);
                    if (rc)
                        return rc;
                    /* The rest of the directive's line follows the included text. */
                    push_segment(L, out->line, si, line);
                    i = run = k + 1;
                    bol = false;
                    continue;
                }
            }
        }
        switch (st) {
        case CODE:
            if (c == '"') {
                st = STR;
            } else if (c == '#' || (c == '/' && i + 1 < len && t[i + 1] == '/')) {
                st = LINE;
            } else if (c == '/' && i + 1 < len && t[i + 1] == '*') {
                st = BLOCK;
                i += 2;
                bol = false;
                continue;
            }
            break;
        case STR:
            if (c == '\\' && i + 1 < len) {
                if (t[i + 1] == '\n') {
                    line++;
                    out->line++;
                }
                i += 2;
                bol = false;
                continue;
            }
            if (c == '"')
                st = CODE;
            break;
        case BLOCK:
            if (c == '*' && i + 1 < len && t[i + 1] == '/') {
                st = CODE;
                i += 2;
                bol = false;
                continue;
            }
            break;
        case LINE:
            if (c == '\n')
                st = CODE;
            break;
        }
        if (c == '\n') {
            line++;
            out->line++;
        }
        bol = c == '\n';
        i++;
    }
    if (L->nomem)
        return -ENOMEM;
    if ((rc = tbuf_put(L, out, L->srcs[si].raw + run, len - run)))
        return rc;
    /* An included file that ends without a newline: the rest of the directive's line must
     * not join its last line. */
    if (depth > 0 && len > 0 && L->srcs[si].raw[len - 1] != '\n') {
        if ((rc = tbuf_put(L, out, "\n", 1)))
            return rc;
        out->line++;
    }
    return 0;
}

static void read_discoveries(struct loader *L);

static void read_all(struct loader *L)
{
    struct cm_config *cfg = L->cfg;
    const config_setting_t *s;
    unsigned nt = 0, nf = 0, nn = 0;

    check_top(L);
    if ((s = top_member(L, "global", CONFIG_TYPE_GROUP)))
        read_global(L, s);
    if ((s = top_member(L, "log", CONFIG_TYPE_GROUP)))
        read_log(L, s);
    if ((s = top_member(L, "metrics", CONFIG_TYPE_GROUP)))
        read_metrics(L, s);

    const config_setting_t *targets = top_member(L, "targets", CONFIG_TYPE_LIST);
    const config_setting_t *files = top_member(L, "files", CONFIG_TYPE_LIST);
    const config_setting_t *notifiers = top_member(L, "notifiers", CONFIG_TYPE_LIST);
    nt = targets ? (unsigned)config_setting_length(targets) : 0;
    nf = files ? (unsigned)config_setting_length(files) : 0;
    nn = notifiers ? (unsigned)config_setting_length(notifiers) : 0;

    cfg->targets = calloc(nt + nf ? nt + nf : 1, sizeof(*cfg->targets));
    L->name_at = calloc(nt + nf ? nt + nf : 1, sizeof(*L->name_at));
    cfg->notifiers = calloc(nn ? nn : 1, sizeof(*cfg->notifiers));
    if (!cfg->targets || !L->name_at || !cfg->notifiers) {
        L->nomem = true;
        return;
    }
    /* Endpoints first, then files: the order the header promises. */
    for (unsigned pass = 0; pass < 2; pass++) {
        const config_setting_t *list = pass ? files : targets;
        unsigned n = pass ? nf : nt;
        for (unsigned i = 0; i < n && !L->nomem; i++) {
            const config_setting_t *g = config_setting_get_elem(list, i);
            struct cm_config_target *t = &cfg->targets[cfg->target_count];
            struct cm_config_origin o = origin_of(L, g);
            char prefix[64];

            snprintf(prefix, sizeof(prefix), "%s[%u]", pass ? "files" : "targets", i);
            if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
                err_at(L, g, prefix, "expected a group { ... }, found %s",
                       type_name(config_setting_type(g)));
                continue;
            }
            t->file = o.file;
            t->line = o.line;
            if (pass)
                read_file_entry(L, g, i, t);
            else
                read_target(L, g, i, t, &L->name_at[cfg->target_count]);
            cfg->target_count++;
        }
    }
    read_discoveries(L);
    for (unsigned i = 0; i < nn && !L->nomem; i++) {
        const config_setting_t *g = config_setting_get_elem(notifiers, i);
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "notifiers[%u]", i);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
            err_at(L, g, prefix, "expected a group { ... }, found %s",
                   type_name(config_setting_type(g)));
            continue;
        }
        read_notifier(L, g, i, &cfg->notifiers[cfg->notifier_count++]);
    }
    check_duplicates(L);
    check_notifier_names(L);
    for (size_t i = 0; i < cfg->target_count; i++)
        cfg->targets[i].spec_hash = spec_hash(cfg, &cfg->targets[i]);
}

/* discovery = ( ... ): each block, and names unique among them (they label the metrics). */
static void read_discoveries(struct loader *L)
{
    struct cm_config *cfg = L->cfg;
    const config_setting_t *list = top_member(L, "discovery", CONFIG_TYPE_LIST);
    unsigned n = list ? (unsigned)config_setting_length(list) : 0;

    if (!n)
        return;
    if (!(cfg->discovery = calloc(n, sizeof(*cfg->discovery)))) {
        L->nomem = true;
        return;
    }
    for (unsigned i = 0; i < n && !L->nomem; i++) {
        const config_setting_t *g = config_setting_get_elem(list, i);
        struct cm_config_discovery *d = &cfg->discovery[cfg->discovery_count];
        struct cm_config_origin o = origin_of(L, g);
        char prefix[64];

        snprintf(prefix, sizeof(prefix), "discovery[%u]", i);
        if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
            err_at(L, g, prefix, "expected a group { ... }, found %s",
                   type_name(config_setting_type(g)));
            continue;
        }
        d->file = o.file;
        d->line = o.line;
        read_discovery(L, g, i, d);
        cfg->discovery_count++;
        for (size_t k = 0; k + 1 < cfg->discovery_count && d->name; k++)
            if (cfg->discovery[k].name && !strcmp(cfg->discovery[k].name, d->name))
                add_problem(L, d->file, d->line,
                            "%s.name: duplicate discovery source '%s' (first defined at %s:%d)",
                            prefix, d->name, cfg->discovery[k].file, cfg->discovery[k].line);
    }
}

/* Makes cfg->path (absolute) and cfg->dir from path, and sets the defaults. Returns 0,
 * CM_ECONFIG (problem recorded) or -ENOMEM. */
static int load_begin(struct loader *L, const char *path)
{
    struct cm_config *cfg = L->cfg;

    if (!path || !*path) {
        add_problem(L, NULL, 0, "no configuration file given");
        return CM_ECONFIG;
    }
    if (path[0] == '/') {
        cfg->path = path_clean(NULL, path);
    } else {
        char *cwd = getcwd(NULL, 0);
        if (!cwd) {
            add_problem(L, NULL, 0, "cannot read %s: cannot tell the current directory: %s", path,
                        strerror(errno));
            return CM_ECONFIG;
        }
        cfg->path = path_clean(cwd, path);
        free(cwd);
    }
    if (!cfg->path || !(cfg->dir = path_dir(cfg->path)))
        return -ENOMEM;

    /* Defaults first: the groups then overwrite what they set. */
    apply_defaults(global_keys, GK_N, cfg);
    apply_defaults(policy_keys, PK_N, &cfg->policy);
    apply_defaults(log_keys, LK_N, cfg);
    apply_defaults(metrics_keys, MK_N, cfg);
    cfg->log_level = CM_LOG_INFO;
    if (!(cfg->listen = calloc(1, sizeof(*cfg->listen))) ||
        !(cfg->listen[0] = strdup("127.0.0.1:9799")))
        return -ENOMEM;
    cfg->listen_count = 1;
    return 0;
}

/* Parses the main file (srcs[0], already read) with its includes, then reads every group. */
static int load_parse(struct loader *L)
{
    struct tbuf text = {.line = 1};
    int rc;

    if (!check_nul(L, 0))
        return CM_ECONFIG;
    if ((rc = expand(L, 0, 0, &text)) != 0) {
        free(text.p);
        return L->nomem ? -ENOMEM : rc;
    }
    /* Every include is in place. Should libconfig still find one (a case its scanner reads
     * differently from ours), it must not open anything: under a directory that cannot exist
     * ("/dev/null" is not a directory) every include fails with a message. */
    config_set_include_dir(&L->lc, "/dev/null");
    if (!config_read_string(&L->lc, text.p ? text.p : "")) {
        free(text.p);
        syntax_error(L);
        return CM_ECONFIG;
    }
    free(text.p);
    read_all(L);
    return L->nomem ? -ENOMEM : L->nprobs ? CM_ECONFIG : 0;
}

/* Hands the result over: the config in *out on success, the problems to errs. */
static int load_end(struct loader *L, int rc, struct cm_config **out, struct cm_config_errors *errs)
{
    if (L->nomem && rc == 0)
        rc = -ENOMEM;
    if (rc == 0 && L->nprobs)
        rc = CM_ECONFIG;
    if (flush_problems(L, errs) < 0)
        rc = -ENOMEM;
    loader_free(L);
    if (rc < 0) {
        cm_config_free(L->cfg);
        return rc;
    }
    *out = L->cfg;
    return 0;
}

int cm_config_load(const char *path, struct cm_config **out, struct cm_config_errors *errs)
{
    struct loader L = {0};
    char msg[PATH_MAX + 128];
    char *raw;
    size_t len;
    int rc, e;

    *out = NULL;
    if (!(L.cfg = calloc(1, sizeof(*L.cfg))))
        return -ENOMEM;
    config_init(&L.lc);
    if ((rc = load_begin(&L, path)))
        return load_end(&L, rc, out, errs);
    if ((e = read_source(L.cfg->path, CM_CONFIG_MAX_BYTES, CM_CONFIG_MAX_BYTES, &raw, &len, msg,
                         sizeof(msg)))) {
        if (e == ENOMEM)
            return load_end(&L, -ENOMEM, out, errs);
        add_problem(&L, NULL, 0, "%s", msg);
        return load_end(&L, CM_ECONFIG, out, errs);
    }
    if (add_src(&L, L.cfg->path, raw, len) == NPOS)
        return load_end(&L, -ENOMEM, out, errs);
    return load_end(&L, load_parse(&L), out, errs);
}

int cm_config_load_string(const char *text, size_t len, const char *path, struct cm_config **out,
                          struct cm_config_errors *errs)
{
    struct loader L = {0};
    char *raw;
    int rc;

    *out = NULL;
    if (!(L.cfg = calloc(1, sizeof(*L.cfg))))
        return -ENOMEM;
    config_init(&L.lc);
    if ((rc = load_begin(&L, path)))
        return load_end(&L, rc, out, errs);
    if (!text)
        len = 0;
    if (len > CM_CONFIG_MAX_BYTES) {
        add_problem(&L, NULL, 0, "%s: larger than %u MiB", L.cfg->path, CM_CONFIG_MAX_BYTES >> 20);
        return load_end(&L, CM_ECONFIG, out, errs);
    }
    if (!(raw = malloc(len + 1)))
        return load_end(&L, -ENOMEM, out, errs);
    if (len)
        memcpy(raw, text, len);
    raw[len] = '\0';
    if (add_src(&L, L.cfg->path, raw, len) == NPOS)
        return load_end(&L, -ENOMEM, out, errs);
    return load_end(&L, load_parse(&L), out, errs);
}

/* ---- Credentials ---- */

int cm_config_check_credentials(const struct cm_config *cfg, struct cm_tls_ctx *ctx,
                                struct cm_config_errors *errs)
{
    struct loader L = {0};
    struct cm_tls_ctx *own = NULL;
    struct smap done = {0};
    char err[512];
    int rc;

    /* The loader only collects and sorts messages here; its cfg gives file ranks. */
    L.cfg = (struct cm_config *)cfg;
    config_init(&L.lc);
    if (!ctx) {
        if ((rc = cm_tls_ctx_new(&own)) < 0) {
            config_destroy(&L.lc);
            return rc;
        }
        ctx = own;
    }
    for (size_t i = 0; i < cfg->target_count && !L.nomem; i++) {
        const struct cm_config_target *t = &cfg->targets[i];
        struct cm_tls_profile prof = {t->opt->ca_file, t->opt->client_cert, t->opt->client_key};
        char *key;

        /* A file entry's ca_file is a trust store too (revocation: the issuer of a file's last
         * certificate); it has no client certificate. */
        if (t->kind != CM_TARGET_ENDPOINT && !t->opt->ca_file)
            continue;
        if (asprintf(&key, "%s\x01%s\x01%s", t->opt->ca_file ? t->opt->ca_file : "",
                     t->opt->client_cert ? t->opt->client_cert : "",
                     t->opt->client_key ? t->opt->client_key : "") < 0) {
            L.nomem = true;
            break;
        }
        if (smap_get(&done, key)) {
            free(key);
            continue;
        }
        if (smap_put(&done, key, 1) < 0)
            L.nomem = true;
        free(key);
        err[0] = '\0';
        rc = cm_tls_ctx_load(ctx, &prof, err, sizeof(err));
        if (rc == -ENOMEM) {
            L.nomem = true;
        } else if (rc < 0) {
            bool cert = rc == CM_ECLIENTCERT && t->opt->client_cert;
            bool ca = !cert && t->opt->ca_file;
            const struct cm_config_origin *o = cert ? &t->opt->client_cert_at : &t->opt->ca_file_at;
            add_problem(&L, o->file ? o->file : t->file, o->file ? o->line : t->line,
                        "%s[%u]%s: %s", t->kind == CM_TARGET_FILE ? "files" : "targets", t->index,
                        cert ? ".client_cert"
                        : ca ? ".ca_file"
                             : "",
                        err);
        }
    }
    /* The credentials a discovery source gives its targets, loaded now like a target's: its
     * targets come later, and a file that does not parse is the configuration's error. */
    for (size_t i = 0; i < cfg->discovery_count && !L.nomem; i++) {
        const struct cm_config_discovery *dd = &cfg->discovery[i];
        struct cm_tls_profile prof = {dd->ca_file, dd->client_cert, dd->client_key};
        err[0] = '\0';
        rc = cm_tls_ctx_load(ctx, &prof, err, sizeof(err));
        if (rc == -ENOMEM)
            L.nomem = true;
        else if (rc < 0)
            add_problem(&L, dd->file, dd->line, "discovery[%u]: %s", dd->index, err);
    }
    if (cfg->tls_cert || cfg->client_ca) {
        gnutls_certificate_credentials_t cred;
        if (gnutls_certificate_allocate_credentials(&cred) < 0) {
            L.nomem = true;
        } else {
            if (cfg->tls_cert && cfg->tls_key &&
                (rc = gnutls_certificate_set_x509_key_file(cred, cfg->tls_cert, cfg->tls_key,
                                                           GNUTLS_X509_FMT_PEM)) < 0)
                add_problem(&L, cfg->tls_cert_at.file ? cfg->tls_cert_at.file : cfg->path,
                            cfg->tls_cert_at.line, "metrics.tls_cert: %s / %s: %s", cfg->tls_cert,
                            cfg->tls_key,
                            rc == GNUTLS_E_FILE_ERROR ? "cannot read the files"
                            : rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH
                                ? "the key does not belong to the certificate"
                            : rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE ||
                                    rc == GNUTLS_E_BASE64_DECODING_ERROR
                                ? "no PEM certificate or private key found"
                                : gnutls_strerror(rc));
            if (cfg->client_ca && (rc = gnutls_certificate_set_x509_trust_file(
                                       cred, cfg->client_ca, GNUTLS_X509_FMT_PEM)) <= 0)
                add_problem(&L, cfg->client_ca_at.file ? cfg->client_ca_at.file : cfg->path,
                            cfg->client_ca_at.line, "metrics.client_ca: %s: %s", cfg->client_ca,
                            rc == 0                     ? "no CA certificates found"
                            : rc == GNUTLS_E_FILE_ERROR ? "cannot read file"
                                                        : gnutls_strerror(rc));
            gnutls_certificate_free_credentials(cred);
        }
    }
    smap_free(&done);
    cm_tls_ctx_free(own);
    rc = L.nomem ? -ENOMEM : L.nprobs ? CM_ECONFIG : 0;
    if (flush_problems(&L, errs) < 0)
        rc = -ENOMEM;
    L.cfg = NULL;
    loader_free(&L);
    return rc;
}

/* ---- Lifetime and lookup ---- */

static void target_clear(struct cm_config_target *t)
{
    if (t->name != t->ep.name)
        free(t->name);
    cm_target_clear(&t->ep);
    opt_free(t->opt);
    cm_labels_clear(&t->labels);
    if (t->own_policy) {
        cm_policy_clear((struct cm_policy *)t->policy);
        free((void *)t->policy);
    }
}

void cm_config_targets_free(struct cm_config_target *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        target_clear(&v[i]);
    free(v);
}

void cm_config_free(struct cm_config *cfg)
{
    if (!cfg)
        return;
    if (cfg->base) {
        /* Composed: the targets are borrowed, the rest is base's. */
        free(cfg->targets);
        free(cfg->by_name);
        free(cfg);
        return;
    }
    for (size_t i = 0; i < cfg->discovery_count; i++) {
        struct cm_config_discovery *d = &cfg->discovery[i];
        free(d->name);
        free(d->dns_name);
        for (size_t k = 0; k < d->file_count; k++)
            free(d->files[k]);
        free(d->files);
        cm_policy_clear(&d->policy);
        free(d->starttls);
        free(d->ca_file);
        free(d->client_cert);
        free(d->client_key);
        cm_labels_clear(&d->labels);
    }
    free(cfg->discovery);
    for (size_t i = 0; i < cfg->target_count; i++)
        target_clear(&cfg->targets[i]);
    free(cfg->targets);
    for (size_t i = 0; i < cfg->notifier_count; i++) {
        struct cm_config_notifier *n = &cfg->notifiers[i];
        free(n->name);
        free(n->type);
        free(n->findings);
        cm_labels_clear(&n->match);
        free(n->url);
        for (size_t k = 0; k < n->url_count; k++)
            free(n->urls[k]);
        free(n->urls);
        free(n->ca_file);
        for (size_t k = 0; k < n->header_count; k++)
            free(n->headers[k]);
        free(n->headers);
        free(n->secret);
        free(n->from);
        for (size_t k = 0; k < n->to_count; k++)
            free(n->to[k]);
        free(n->to);
        free(n->username);
        free(n->password);
        free(n->generator_url);
        free(n->token);
        free(n->chat_id);
        free(n->client_url);
    }
    free(cfg->notifiers);
    for (size_t i = 0; i < cfg->listen_count; i++)
        free(cfg->listen[i]);
    free(cfg->listen);
    for (size_t i = 0; i < cfg->file_count; i++)
        free(cfg->files[i]);
    free(cfg->files);
    for (size_t i = 0; i < cfg->roots_count; i++) {
        free(cfg->roots[i].path);
        free(cfg->roots[i].text);
    }
    free(cfg->roots);
    cm_policy_clear(&cfg->policy);
    free(cfg->state_file);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->client_ca);
    free(cfg->by_name);
    free(cfg->path);
    free(cfg->dir);
    free(cfg);
}

void cm_config_errors_clear(struct cm_config_errors *errs)
{
    if (!errs)
        return;
    for (size_t i = 0; i < errs->count; i++)
        free(errs->msgs[i]);
    free(errs->msgs);
    errs->msgs = NULL;
    errs->count = 0;
}

const struct cm_config_target *cm_config_find(const struct cm_config *cfg, const char *name)
{
    size_t lo = 0, hi;

    if (!cfg || !name)
        return NULL;
    if (!cfg->by_name) {
        for (size_t i = 0; i < cfg->target_count; i++)
            if (cfg->targets[i].name && !strcmp(cfg->targets[i].name, name))
                return &cfg->targets[i];
        return NULL;
    }
    hi = cfg->target_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct cm_config_target *t = &cfg->targets[cfg->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

void cm_config_keys_foreach(void (*cb)(const char *group, const char *key, void *arg), void *arg)
{
    for (size_t g = 0; g < G_N; g++) {
        cb(groups[g].name, NULL, arg);
        for (size_t k = 0; k < groups[g].nkeys; k++)
            cb(groups[g].name, groups[g].keys[k].name, arg);
    }
    for (size_t k = 0; k < PK_N; k++)
        cb("policy", policy_keys[k].name, arg);
}

/* ---- Discovered targets ----
 *
 * A discovered target is read by the code that reads `targets = ( ... )`: each one is written
 * as a libconfig group on a line of its own, its source's keys and its __certmon_* labels as
 * settings, and read_target_at checks it, with the source's defaults standing in for global's.
 * One segment per line turns a problem back into the discovery file's line. Labels do not go
 * through libconfig (a setting name is not a label name): they are checked here by the same
 * rule (label_name_msg, label_value_msg). */

/* The key __certmon_KEY sets, or NULL. Paths are left out: a file another system writes must
 * not make the daemon read files the operator did not name (ca_file, client_cert, client_key
 * and interception_roots_file go on the discovery block); host and port come from the target,
 * labels from the group. */
static const struct key *label_key(const char *key)
{
    size_t j;

    if ((j = find_key(target_keys, TK_N, key)) != NPOS)
        return j == TK_HOST || j == TK_PORT || j == TK_LABELS || target_keys[j].type == KT_PATH
                   ? NULL
                   : &target_keys[j];
    if ((j = find_key(policy_keys, PK_N, key)) != NPOS)
        return policy_keys[j].type == KT_PATH ? NULL : &policy_keys[j];
    return NULL;
}

#define SD_PREFIX "__certmon_"
#define SD_PREFIX_LEN (sizeof(SD_PREFIX) - 1)

/* A libconfig string literal: quotes, backslashes and control bytes escaped. */
static void put_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* KEY = VALUE; for __certmon_KEY = v, typed as KEY's row says. false with a reason in why when
 * v cannot be that type. */
static bool put_label_setting(FILE *f, const struct key *k, const char *v, char *why, size_t wl)
{
    switch (k->type) {
    case KT_INT: {
        /* At most nine digits: libconfig reads an int literal with atoi (PITFALLS). */
        size_t d = strspn(v + (*v == '-'), "0123456789");
        if (!d || d > 9 || v[(*v == '-') + d]) {
            snprintf(why, wl, "expected an integer, not '%.64s'", v);
            return false;
        }
        fprintf(f, "%s = %s; ", k->name, v);
        return true;
    }
    case KT_BOOL:
        if (strcmp(v, "true") && strcmp(v, "false")) {
            snprintf(why, wl, "expected true or false, not '%.64s'", v);
            return false;
        }
        fprintf(f, "%s = %s; ", k->name, v);
        return true;
    case KT_STRINGS: {
        /* A list in one label: items separated by commas or spaces. */
        char *copy = strdup(v), *save = NULL, *item;
        bool first = true;
        if (!copy) {
            snprintf(why, wl, "out of memory");
            return false;
        }
        fprintf(f, "%s = [", k->name);
        for (item = strtok_r(copy, ", \t", &save); item; item = strtok_r(NULL, ", \t", &save)) {
            fputs(first ? "" : ", ", f);
            put_quoted(f, item);
            first = false;
        }
        fputs("]; ", f);
        free(copy);
        return true;
    }
    default:
        fprintf(f, "%s = ", k->name);
        put_quoted(f, v);
        fputs("; ", f);
        return true;
    }
}

/* Per group: its labels over the source's (sorted, checked) and its __certmon_ settings. */
struct sd_group {
    struct cm_labels labels;
    char *settings; /* "KEY = VALUE; ..." */
    bool starttls;  /* settings set starttls */
    bool bad;
};

static int label_pair_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads the labels of group gi into sg: the source's labels under the group's own, __certmon_
 * labels as settings, other __ labels dropped. Problems go to L at the group's line. */
static void sd_group_read(struct loader *L, const struct cm_config_discovery *d, const char *file,
                          const struct cm_sd_group *g, size_t gi, struct sd_group *sg)
{
    size_t n = d->labels.count + g->label_count, k = 0;
    char **pairs = calloc(n ? 2 * n : 1, sizeof(*pairs)); /* name, value, ... */
    char *buf = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&buf, &blen);
    char msg[700], pname[64];

    if (!pairs || !f) {
        L->nomem = true;
        goto out;
    }
    for (size_t i = 0; i < g->label_count; i++) {
        const char *name = g->labels[i].name, *v = g->labels[i].value;
        printable(name, pname, sizeof(pname));
        if (!strncmp(name, SD_PREFIX, SD_PREFIX_LEN)) {
            const struct key *key = label_key(name + SD_PREFIX_LEN);
            if (!key) {
                add_problem(L, file, g->line, "group %zu: labels.%s: not a key certmon takes "
                            "from a discovery file (docs/discovery.md lists them)", gi, pname);
                sg->bad = true;
            } else if (!put_label_setting(f, key, v, msg, sizeof(msg))) {
                add_problem(L, file, g->line, "group %zu: labels.%s: %s", gi, pname, msg);
                sg->bad = true;
            }
            sg->starttls |= key == &target_keys[TK_STARTTLS];
            continue;
        }
        if (!strncmp(name, "__", 2))
            continue; /* Prometheus's meta labels: dropped, as Prometheus drops them */
        if (label_name_msg(name, msg, sizeof(msg)) || label_value_msg(v, msg, sizeof(msg))) {
            add_problem(L, file, g->line, "group %zu: labels.%s: %s", gi, pname, msg);
            sg->bad = true;
            continue;
        }
        pairs[2 * k] = (char *)name;
        pairs[2 * k + 1] = (char *)v;
        k++;
    }
    /* The source's labels where the group does not set the name. */
    for (size_t i = 0; i < d->labels.count; i++) {
        bool set = false;
        for (size_t j = 0; j < k && !set; j++)
            set = !strcmp(pairs[2 * j], d->labels.keys[i]);
        if (!set) {
            pairs[2 * k] = d->labels.keys[i];
            pairs[2 * k + 1] = d->labels.values[i];
            k++;
        }
    }
    qsort(pairs, k, 2 * sizeof(*pairs), label_pair_cmp);
    sg->labels.keys = calloc(k ? k : 1, sizeof(char *));
    sg->labels.values = calloc(k ? k : 1, sizeof(char *));
    if (!sg->labels.keys || !sg->labels.values) {
        L->nomem = true;
        goto out;
    }
    for (size_t i = 0; i < k; i++) {
        sg->labels.keys[i] = ldup(L, pairs[2 * i]);
        sg->labels.values[i] = ldup(L, pairs[2 * i + 1]);
        sg->labels.count = i + 1;
    }
out:
    if (f && fclose(f) == 0)
        sg->settings = buf;
    else
        free(buf);
    if (!sg->settings)
        L->nomem = true;
    free(pairs);
}

/* "@K.KEY: ..." of read_target_at's messages (K: the target's number in the file) into
 * "group G, target 'SPEC': __certmon_KEY: ..." (or the source's key, when the group did not
 * set it). Returns a new message, or NULL (out of memory: the old one stays). */
static char *sd_rewrite(const char *msg, const struct cm_config_discovery *d,
                        const struct cm_sd_doc *doc, const size_t *group_of,
                        const size_t *target_of, size_t ntargets)
{
    const char *at = strstr(msg, ": @"), *p, *rest;
    char key[64] = "", spec[256], *out;
    unsigned long k;
    bool labelled = false;

    if (!at)
        return NULL;
    k = strtoul(at + 3, (char **)&p, 10);
    if (p == at + 3 || k >= ntargets)
        return NULL;
    rest = p;
    if (*p == '.') {
        size_t kl = strcspn(p + 1, ":");
        snprintf(key, sizeof(key), "%.*s", (int)(kl < sizeof(key) ? kl : sizeof(key) - 1), p + 1);
        rest = p + 1 + kl;
    }
    const struct cm_sd_group *g = &doc->groups[group_of[k]];
    printable(g->targets[target_of[k]], spec, sizeof(spec));
    for (size_t i = 0; key[0] && i < g->label_count; i++)
        labelled |= !strncmp(g->labels[i].name, SD_PREFIX, SD_PREFIX_LEN) &&
                    !strcmp(g->labels[i].name + SD_PREFIX_LEN, key);
    if (!key[0] || !strcmp(key, "host") || !strcmp(key, "port")) {
        if (asprintf(&out, "%.*s: group %zu, target '%s'%s", (int)(at - msg), msg, group_of[k],
                     spec, rest) < 0)
            return NULL;
    } else if (asprintf(&out, "%.*s: group %zu, target '%s': %s%s%s", (int)(at - msg), msg,
                        group_of[k], spec, labelled ? SD_PREFIX : d->name,
                        labelled ? "" : ".", key) < 0 ||
               !out) {
        return NULL;
    } else {
        char *full;
        if (asprintf(&full, "%s%s", out, rest) < 0) {
            free(out);
            return NULL;
        }
        free(out);
        out = full;
    }
    return out;
}

/* Reports every name given to two targets of the file. v sorted by name afterwards is not
 * needed: the order stays the file's. */
static void sd_check_names(struct loader *L, const char *file, struct cm_config_target *v,
                           size_t n)
{
    size_t *idx = malloc((n ? n : 1) * sizeof(*idx));

    if (!idx) {
        L->nomem = true;
        return;
    }
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    qsort_r(idx, n, sizeof(*idx), name_cmp, v);
    for (size_t i = 1; i < n; i++) {
        const struct cm_config_target *a = &v[idx[i - 1]], *b = &v[idx[i]];
        char pname[256];
        if (strcmp(a->name, b->name))
            continue;
        printable(b->name, pname, sizeof(pname));
        add_problem(L, file, b->line,
                    "target name '%s' given twice in this file (also at line %d); give one a "
                    "distinct __certmon_name",
                    pname, a->line);
    }
    free(idx);
}

int cm_config_discover(const struct cm_config *cfg, size_t source, const char *file,
                       const struct cm_sd_doc *doc, struct cm_config_target **out, size_t *count,
                       struct cm_config_errors *errs)
{
    const struct cm_config_discovery *d = &cfg->discovery[source];
    struct cm_config scratch = {0};
    struct loader L = {0};
    struct sd_group *groups_rd = NULL;
    struct cm_config_target *v = NULL;
    struct cm_config_target_opt *shared = NULL;
    size_t *group_of = NULL, *target_of = NULL, n = 0, nerr0 = errs ? errs->count : 0;
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = NULL;
    int rc;

    *out = NULL;
    *count = 0;
    /* The source's defaults stand in for global's: read_target_at starts every target from
     * cfg's interval, timeout, posture interval and policy. */
    scratch.path = cfg->path;
    scratch.dir = cfg->dir;
    scratch.interval_ms = d->interval_ms;
    scratch.timeout_ms = d->timeout_ms;
    scratch.posture_interval_ms = d->posture_interval_ms;
    scratch.policy = d->policy;
    L.cfg = &scratch;
    L.policy = &d->policy; /* (scratch is gone when the targets are used) */
    config_init(&L.lc);
    /* The source's files were found readable when the configuration loaded. */
    const char *checked[] = {d->ca_file, d->client_cert, d->client_key};
    for (size_t i = 0; i < 3; i++)
        if (checked[i] && smap_put(&L.readable, checked[i], 0) < 0)
            L.nomem = true;

    groups_rd = calloc(doc->count ? doc->count : 1, sizeof(*groups_rd));
    v = calloc(doc->targets ? doc->targets : 1, sizeof(*v));
    group_of = calloc(doc->targets ? doc->targets : 1, sizeof(*group_of));
    target_of = calloc(doc->targets ? doc->targets : 1, sizeof(*target_of));
    L.srcs = calloc(1, sizeof(*L.srcs));
    L.segs = calloc(doc->targets ? doc->targets : 1, sizeof(*L.segs));
    L.name_at = NULL;
    if (!groups_rd || !v || !group_of || !target_of || !L.srcs || !L.segs ||
        !(f = open_memstream(&text, &tlen))) {
        L.nomem = true;
        goto done;
    }
    /* No source text: a line of the generated text is never read back (its integers are
     * written here, nine digits at most, so int_matches_source has nothing to catch). */
    L.srcs[0] = (struct srcfile){.abs = file, .split = true};
    L.nsrcs = 1;
    L.capsegs = doc->targets;

    for (size_t gi = 0; gi < doc->count && !L.nomem; gi++) {
        const struct cm_sd_group *g = &doc->groups[gi];
        sd_group_read(&L, d, file, g, gi, &groups_rd[gi]);
        if (groups_rd[gi].bad)
            continue;
        for (size_t ti = 0; ti < g->target_count; ti++) {
            struct cm_target ep = {0};
            char err[300], pspec[256];
            int line = g->target_lines[ti] ? g->target_lines[ti] : g->line;

            printable(g->targets[ti], pspec, sizeof(pspec));
            rc = cm_target_parse(g->targets[ti], CM_DEFAULT_PORT, NULL, &ep, err, sizeof(err));
            if (rc == -ENOMEM) {
                L.nomem = true;
                break;
            }
            if (rc < 0) {
                add_problem(&L, file, line, "group %zu, target '%s': %s", gi, pspec, err);
                continue;
            }
            group_of[n] = gi;
            target_of[n] = ti;
            v[n].line = line;
            L.segs[L.nsegs++] = (struct segment){(int)n + 1, 0, line};
            /* One list, one element per line: the elements of a list have no names, which
             * libconfig would compare with every earlier one (quadratic in the targets). */
            fputs(n ? ", { host = " : "t = ( { host = ", f);
            put_quoted(f, ep.host);
            fprintf(f, "; port = %u; %s", (unsigned)ep.port, groups_rd[gi].settings);
            /* The source's own keys, where the group did not set them. */
            if (d->starttls && !groups_rd[gi].starttls) {
                fputs("starttls = ", f);
                put_quoted(f, d->starttls);
                fputs("; ", f);
            }
            const char *paths[] = {"ca_file", d->ca_file, "client_cert", d->client_cert,
                                   "client_key", d->client_key};
            for (size_t i = 0; i < 6; i += 2) {
                if (paths[i + 1]) {
                    fprintf(f, "%s = ", paths[i]);
                    put_quoted(f, paths[i + 1]);
                    fputs("; ", f);
                }
            }
            fputs("}\n", f);
            cm_target_clear(&ep);
            n++;
        }
    }
    if (n)
        fputs(");\n", f);
    if (fclose(f) != 0) {
        f = NULL;
        L.nomem = true;
        goto done;
    }
    f = NULL;
    if (L.nomem || L.nprobs)
        goto done;
    config_set_include_dir(&L.lc, "/dev/null");
    if (!config_read_string(&L.lc, text ? text : "")) {
        /* Everything was escaped above: a failure here is certmon's. */
        add_problem(&L, file, 0, "internal error: generated text did not parse: %s (line %d)",
                    config_error_text(&L.lc), config_error_line(&L.lc));
        goto done;
    }
    const config_setting_t *list = config_lookup(&L.lc, "t");
    for (size_t k = 0; k < n && list && !L.nomem; k++) {
        char prefix[32];
        struct cm_config_origin name_at = {0};
        const config_setting_t *g;

        snprintf(prefix, sizeof(prefix), "@%zu", k);
        if (!(g = config_setting_get_elem(list, (unsigned)k)))
            continue;
        v[k].file = file;
        read_target_at(&L, g, prefix, (unsigned)k, &v[k], &name_at);
        if (cm_labels_copy(&v[k].labels, &groups_rd[group_of[k]].labels) < 0)
            L.nomem = true;
        if (!v[k].name && !L.nprobs)
            L.nomem = true;
    }
    if (!L.nomem && !L.nprobs)
        sd_check_names(&L, file, v, n);
    /* The file's name: in the block of a target that has one, else in one block the file's
     * other targets share (a file of 100,000 targets that set nothing else has one). */
    for (size_t k = 0; k < n && !L.nomem && !L.nprobs; k++) {
        struct cm_config_target_opt *o;
        if (v[k].opt == &opt_none && shared) {
            v[k].opt = shared;
            shared->refs++;
        } else {
            bool none = v[k].opt == &opt_none;
            if (!(o = opt_mut(&L, &v[k])) || !(o->origin = strdup(file))) {
                L.nomem = true;
                break;
            }
            if (none)
                shared = o;
        }
        v[k].file = v[k].opt->origin;
        v[k].spec_hash = spec_hash(cfg, &v[k]);
    }

done:
    if (f)
        fclose(f);
    free(text);
    rc = L.nomem ? -ENOMEM : L.nprobs ? CM_ECONFIG : 0;
    if (flush_problems(&L, errs) < 0)
        rc = -ENOMEM;
    for (size_t i = nerr0; errs && i < errs->count; i++) {
        char *m = sd_rewrite(errs->msgs[i], d, doc, group_of, target_of, n);
        if (m) {
            free(errs->msgs[i]);
            errs->msgs[i] = m;
        }
    }
    for (size_t gi = 0; groups_rd && gi < doc->count; gi++) {
        cm_labels_clear(&groups_rd[gi].labels);
        free(groups_rd[gi].settings);
    }
    free(groups_rd);
    free(group_of);
    free(target_of);
    L.cfg = NULL;
    loader_free(&L);
    if (rc < 0) {
        cm_config_targets_free(v, n);
        return rc;
    }
    *out = v;
    *count = n;
    return 0;
}

int cm_config_compose(const struct cm_config *base, const struct cm_config_target *const *extra,
                      size_t n, struct cm_config **out)
{
    struct cm_config *c = malloc(sizeof(*c));
    size_t total = base->target_count + n;

    *out = NULL;
    if (!c)
        return -ENOMEM;
    *c = *base;
    c->base = base;
    c->targets = malloc((total ? total : 1) * sizeof(*c->targets));
    c->by_name = malloc((total ? total : 1) * sizeof(*c->by_name));
    if (!c->targets || !c->by_name) {
        free(c->targets);
        free(c->by_name);
        free(c);
        return -ENOMEM;
    }
    memcpy(c->targets, base->targets, base->target_count * sizeof(*c->targets));
    for (size_t i = 0; i < n; i++)
        c->targets[base->target_count + i] = *extra[i];
    c->target_count = total;
    for (size_t i = 0; i < total; i++)
        c->by_name[i] = i;
    qsort_r(c->by_name, total, sizeof(*c->by_name), name_cmp, c->targets);
    for (size_t i = 1; i < total; i++) {
        if (!strcmp(c->targets[c->by_name[i - 1]].name, c->targets[c->by_name[i]].name)) {
            free(c->targets);
            free(c->by_name);
            free(c);
            return CM_EBADARG;
        }
    }
    *out = c;
    return 0;
}
