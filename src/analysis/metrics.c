/* Prometheus text exposition. The work is split so that /metrics stays cheap with ten thousand
 * targets: a view is built once per report (JSON read, timestamps parsed, every label value
 * escaped, the target's label text joined), and rendering only copies bytes and formats
 * integers. A view is one allocation holding its own label text and a few arrays, found from
 * their counts. A certificate's label text (subject, issuer, serial, fingerprint, key,
 * signature) is not in the view: it is a block shared by every view whose chain has that
 * certificate, since thousands of targets present the same intermediates and roots (and often
 * the same leaf), and it was most of a view's memory; the TLS version, cipher and finding ids
 * are shared words the same way. Within a certificate's block, what the certificates of one CA
 * have in common (issuer, key, signature) is a shared word too, and the serial and fingerprint
 * are bytes, written as hex at render (struct mv_cert_info). */
#include "certmon/analysis/metrics.h"
#include "certmon/base/buf.h"
#include "certmon/base/intern.h"
#include "certmon/base/label.h"
#include "certmon/base/text.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* ---- Views ---- */

#define NO_TIME INT64_MIN /* a timestamp the report does not have */
#define PAD 16            /* readable bytes after a text (see copy16) */
#define ABSENT 2          /* a 0/1 fact the report does not have */

/* What every view that has it renders the same way is shared (base/intern, in tables of
 * metrics' own below): found by its bytes, and freed with the last view that holds it.
 * Immutable once in its table, so a render reads it without the table's lock. Two kinds:
 * - a word (const char *, its length cm_intern_len, PAD zero bytes after it): a word of a
 *   small vocabulary (TLS version, cipher, finding id), escaped: thousands of views say
 *   "TLS1.3" or "cert.expiring", and a copy in each was most of what a view held besides its
 *   labels. A report may bring any id, but a word lives only as long as a view holds it, so
 *   the table never holds more than the live views bring. Also the labels a certificate
 *   shares with the others of its CA (below).
 * - a certificate's labels, `,subject="S",issuer="I",serial="R",sha256="H",key="K",
 *   signature="G"`, with its validity times: struct mv_cert_info, the whole struct the block.
 *   Issue 14: with a leaf per target these were a text of their own per target (279 bytes at
 *   100,000), though only S, R and H differ between the leaves of one CA. So the rest is a
 *   shared word, ca: `",issuer="I",serial="` (cut bytes), then `",key="K",signature="G"`; and
 *   R and H, lowercase hex in every report certmon writes, are kept as their bytes (half the
 *   size) and written as hex when rendered. A serial or fingerprint that is not lowercase hex
 *   of even length (a state file written by hand) is kept as its escaped text. The output is
 *   the same bytes either way. */
struct mv_cert_info {
    int64_t not_before, not_after; /* NO_TIME when missing or unparseable */
    const char *ca;                /* a word held (in the table ca_parts) */
    uint32_t cut;                  /* ca[0..cut) goes before R, the rest after H */
    uint32_t subject_len;          /* S, escaped, at data[0] */
    uint32_t serial_len;           /* R after S: bytes (RAW set) or escaped text */
    uint32_t sha256_len;           /* H after R, likewise */
    /* S, R, H, then zero bytes as far as copy16 may read past a text (see cert_get). */
    unsigned char data[];
};
/* The block is compared byte for byte: no padding whose bytes could differ. */
_Static_assert(sizeof(struct mv_cert_info) == 40, "cert info without padding");
#define RAW 0x80000000u /* in serial_len, sha256_len: bytes of lowercase hex */
#define RAW_LEN(n) ((n) & ~RAW)

/* A chain position of a view: what is per report stays here. */
struct mv_cert {
    const struct mv_cert_info *cert; /* a block held (in the table certtexts) */
    uint32_t position;               /* index in the report's chain */
    uint8_t rev; /* index into rev_statuses[], or ABSENT_REV: revocation not checked */
};

/* certmon_finding{id,severity}: one per distinct (id, severity). id is a shared word (equal
 * ids are the same pointer), a reference the view holds. */
struct mv_finding {
    const char *id;
    uint32_t severity; /* index into severities[] */
};

/* certmon_finding_first_seen_timestamp_seconds{id}: the earliest first_seen per id. id points
 * at a finding's word (the reference is the finding's). */
struct mv_first {
    int64_t t;
    const char *id;
};

enum { PH_DNS, PH_CONNECT, PH_STARTTLS, PH_HANDSHAKE, PH_TOTAL, PH_COUNT };
static const char *const phases[PH_COUNT] = {"dns", "connect", "starttls", "handshake", "total"};

enum { ST_OK, ST_WARNING, ST_CRITICAL, ST_UNKNOWN, ST_COUNT };
static const char *const statuses[ST_COUNT] = {"ok", "warning", "critical", "unknown"};

#define PV_COUNT 5
static const char *const versions[PV_COUNT] = {"TLS1.3", "TLS1.2", "TLS1.1", "TLS1.0", "SSL3.0"};

/* chain[i].revocation.status; in certmon_cert_revocation_status order. */
enum { RV_GOOD, RV_REVOKED, RV_UNAVAILABLE, RV_NONE, RV_COUNT };
static const char *const rev_statuses[RV_COUNT] = {"good", "revoked", "unavailable", "none"};
#define ABSENT_REV 0xff

#define SEV_COUNT 3
static const char *const severities[SEV_COUNT] = {"info", "warning", "critical"};

/* The timestamps of a view (the chain's expiry is the earliest not_after of its texts). */
enum { T_LAST_PROBE, T_LAST_SUCCESS, T_ARI_START, T_ARI_END, T_COUNT };

/* A view's times and durations at full width, for a report whose values do not fit the narrow
 * fields (a date before 1970 or after 2106, a phase over 35 minutes: a state file written by
 * hand, or a hostile one). Rare, so it costs its 72 bytes only where it is used. */
struct mv_wide {
    int64_t times[T_COUNT];        /* NO_TIME: absent */
    int64_t duration_us[PH_COUNT]; /* < 0: phase not reached */
};

/* One block, laid out in this order so that every part is found from the counts without a
 * pointer of its own:
 *   the view | the prefix, zero bytes to a multiple of 8 | struct mv_wide, when wide |
 *   certs[ncerts] | firsts[nfirsts] | findings[nfindings] | zero bytes, when fewer than PAD
 *   bytes follow the prefix (copy16 reads up to 15 past it).
 * The prefix is the label text every series starts with: target="...",label="...". */
struct cm_metrics_view {
    uint32_t ncerts, nfirsts, nfindings;
    uint32_t prefixlen;
    const char *version, *cipher; /* shared words, references held; NULL: absent */
    /* Unless wide: Unix seconds + 1 (0: absent), which covers 1970 to 2106, and durations in
     * microseconds (-1: phase not reached). Rendering prints both exactly as the int64 it
     * parsed, so the narrow form changes no byte of the output. */
    uint32_t times[T_COUNT];
    int32_t duration_us[PH_COUNT];
    uint32_t rendered; /* bytes of its samples in all per-target families */
    uint32_t refs;     /* holders: the state entry, and renders streaming it (loop thread) */
    uint8_t success, status, verify, proto[PV_COUNT]; /* verify, proto: ABSENT */
    bool wide;                                        /* times and durations in a struct mv_wide */
};

/* The layout above needs every part to keep the next one 8-byte aligned. */
_Static_assert(sizeof(struct cm_metrics_view) % 8 == 0, "view size");
_Static_assert(sizeof(struct mv_wide) % 8 == 0, "wide size");
_Static_assert(sizeof(struct mv_cert) % 8 == 0, "cert size");
_Static_assert(sizeof(struct mv_first) % 8 == 0, "first size");

static inline const char *view_prefix(const struct cm_metrics_view *v)
{
    return (const char *)(v + 1);
}

static inline const struct mv_wide *view_wide(const struct cm_metrics_view *v)
{
    return (const struct mv_wide *)(const void *)(view_prefix(v) + ((v->prefixlen + 7) & ~7u));
}

static inline const struct mv_cert *view_certs(const struct cm_metrics_view *v)
{
    return (const struct mv_cert *)(const void *)((const char *)view_wide(v) +
                                                  (v->wide ? sizeof(struct mv_wide) : 0));
}

static inline const struct mv_first *view_firsts(const struct cm_metrics_view *v)
{
    return (const struct mv_first *)(const void *)(view_certs(v) + v->ncerts);
}

static inline const struct mv_finding *view_findings(const struct cm_metrics_view *v)
{
    return (const struct mv_finding *)(const void *)(view_firsts(v) + v->nfirsts);
}

static inline int64_t view_time(const struct cm_metrics_view *v, unsigned i)
{
    if (v->wide)
        return view_wide(v)->times[i];
    return v->times[i] ? (int64_t)v->times[i] - 1 : NO_TIME;
}

static inline int64_t view_duration(const struct cm_metrics_view *v, unsigned i)
{
    return v->wide ? view_wide(v)->duration_us[i] : v->duration_us[i];
}

static int view_measure(struct cm_metrics_view *v);

/* Growable scratch for one view while it is built; copied into one block at the end. */
struct builder {
    char *arena;
    size_t alen, acap;
    bool failed;
};

/* Offsets and lengths are 31-bit. */
static bool arena_grow(struct builder *b, size_t n)
{
    if (!b->failed && cm_buf_reserve(&b->arena, &b->acap, b->alen, n, 512, INT32_MAX) < 0)
        b->failed = true;
    return !b->failed;
}

static void arena_put(struct builder *b, const char *s, size_t n)
{
    if (arena_grow(b, n)) {
        memcpy(b->arena + b->alen, s, n);
        b->alen += n;
    }
}

/* Appends s escaped as a label value: backslash, double quote and newline. */
static void arena_escaped(struct builder *b, const char *s)
{
    for (const char *run = s;; s++) {
        char c = *s;
        if (c == '\\' || c == '"' || c == '\n' || !c) {
            arena_put(b, run, (size_t)(s - run));
            if (!c)
                return;
            arena_put(b, c == '\n' ? "\\n" : c == '"' ? "\\\"" : "\\\\", 2);
            run = s + 1;
        }
    }
}

static int64_t time_of(json_t *o, const char *key)
{
    int64_t t;

    return cm_rfc3339_parse(json_string_value(json_object_get(o, key)), &t) ? t : NO_TIME;
}

/* The label text every series of the target starts with: target first, then the configured
 * labels sorted by name. */
static void build_prefix(struct builder *b, const char *target, json_t *labels)
{
    size_t n = 0;
    const char **names = NULL;
    const char *k;
    json_t *val;

    arena_put(b, "target=\"", 8);
    arena_escaped(b, target);
    arena_put(b, "\"", 1);
    if (json_is_object(labels) && json_object_size(labels) > 0) {
        names = malloc(json_object_size(labels) * sizeof(*names));
        if (!names) {
            b->failed = true;
            return;
        }
        json_object_foreach (labels, k, val)
            /* The configuration refuses what this leaves out (base/label.c): it guards against
             * a state file written by hand or by another version. */
            if (json_is_string(val) && cm_label_ok(k, json_string_value(val)))
                names[n++] = k;
        qsort(names, n, sizeof(*names), cm_cmp_strp);
        for (size_t i = 0; i < n; i++) {
            arena_put(b, ",", 1);
            arena_put(b, names[i], strlen(names[i]));
            arena_put(b, "=\"", 2);
            arena_escaped(b, json_string_value(json_object_get(labels, names[i])));
            arena_put(b, "\"", 1);
        }
        free(names);
    }
}

/* ---- Shared certificate texts ---- */

/* The shared blocks of every live view in the process, whichever state or caller built the
 * view (each table has its lock: building and freeing views on different threads is safe; the
 * daemon does both on its loop, where the locks are never contended). */
/* Certificates (struct mv_cert_info): what cm_metrics_shared_certs counts. Each block carries
 * its own zero bytes for copy16 (cert_get), often none. */
static struct cm_intern_table certtexts = CM_INTERN_TABLE(0);
/* The words (version, cipher, finding id) of every live view: a table of their own, so that
 * cm_metrics_shared_words counts them alone. */
static struct cm_intern_table words = CM_INTERN_TABLE(PAD);
/* The CA parts of the certificates (mv_cert_info's ca), held by the certificates. */
static struct cm_intern_table ca_parts = CM_INTERN_TABLE(PAD);

/* A text of n bytes in the output: hex when RAW. */
static size_t shown_len(uint32_t n)
{
    return n & RAW ? 2 * (size_t)RAW_LEN(n) : n;
}

/* The bytes of certificate c's labels in the output (see f_cert_info). */
static size_t cert_shown(const struct mv_cert_info *c)
{
    return 10 + c->subject_len + cm_intern_len(c->ca) + shown_len(c->serial_len) + 10 +
           shown_len(c->sha256_len);
}

/* How far into data copy16 may read for a text of n bytes at off (RAW: none). */
static size_t copy16_end(size_t off, uint32_t n)
{
    return n & RAW ? off : off + ((n + 15) & ~(size_t)15);
}

/* The shared certificate of k (its fixed part filled, ca a reference of the caller's) with S,
 * R and H at subject, one after the other, with a reference added for the caller: the one in
 * the table, or a new one. Either way the caller's reference of k->ca is taken (the new
 * certificate's own, or given back). NULL when out of memory (k->ca given back too). */
static const struct mv_cert_info *cert_get(const struct mv_cert_info *k, const char *subject)
{
    size_t ser = RAW_LEN(k->serial_len), sha = RAW_LEN(k->sha256_len);
    size_t size = (size_t)k->subject_len + ser + sha, end;
    unsigned char local[512], *blk = local;
    const struct mv_cert_info *c = NULL;
    bool added = false;

    /* copy16 reads whole 16-byte blocks of each text it copies: zero bytes past the last one
     * as far as that reaches (none when the bytes of R and H follow S). */
    end = copy16_end(0, k->subject_len);
    if (copy16_end(k->subject_len, k->serial_len) > end)
        end = copy16_end(k->subject_len, k->serial_len);
    if (copy16_end(k->subject_len + ser, k->sha256_len) > end)
        end = copy16_end(k->subject_len + ser, k->sha256_len);
    if (end < size)
        end = size;
    if (cert_shown(k) <= INT32_MAX && size <= INT32_MAX &&
        (sizeof(*k) + end <= sizeof(local) || (blk = malloc(sizeof(*k) + end)))) {
        memcpy(blk, k, sizeof(*k));
        memcpy(blk + sizeof(*k), subject, size);
        memset(blk + sizeof(*k) + size, 0, end - size);
        c = cm_intern_bytes(&certtexts, blk, sizeof(*k) + end, &added);
        if (blk != local)
            free(blk);
    }
    /* A certificate already in the table holds its own reference of the part. */
    if (!added)
        cm_intern_bytes_release(&ca_parts, k->ca);
    return c;
}

/* Drops the references of certs[0..n) (entries without a text are skipped), freeing the
 * certificates no view holds any more, and their parts no certificate holds. */
static void certtexts_put(const struct mv_cert *certs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct mv_cert_info *c = certs[i].cert;
        const char *ca = c ? c->ca : NULL;
        if (cm_intern_bytes_release(&certtexts, c))
            cm_intern_bytes_release(&ca_parts, ca);
    }
}

/* Drops the words a view holds: version, cipher and the ids of fs[0..n). */
static void words_put(const char *version, const char *cipher, const struct mv_finding *fs,
                      size_t n)
{
    cm_intern_bytes_release(&words, version);
    cm_intern_bytes_release(&words, cipher);
    for (size_t i = 0; i < n; i++)
        cm_intern_bytes_release(&words, fs[i].id);
}

/* The shared word of s escaped as a label value, with a reference for the caller; scratch is
 * emptied first. NULL when out of memory. */
static const char *word_get(struct builder *scratch, const char *s)
{
    scratch->alen = 0;
    arena_escaped(scratch, s);
    return scratch->failed ? NULL : cm_intern_bytes(&words, scratch->arena, scratch->alen, NULL);
}

size_t cm_metrics_shared_words(void)
{
    return cm_intern_table_count(&words);
}

size_t cm_metrics_shared_certs(void)
{
    return cm_intern_table_count(&certtexts);
}

/* Appends `,name="value"` (lead is `,name="`), value escaped; NULL renders as empty. */
static void arena_label(struct builder *b, const char *lead, const char *value)
{
    arena_put(b, lead, strlen(lead));
    arena_escaped(b, value ? value : "");
    arena_put(b, "\"", 1);
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

/* The value of a lowercase hex digit; -1 for anything else (uppercase too: it would not
 * render back the same). */
static int lower_hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Appends a serial or a fingerprint s (NULL: "") to scratch: its bytes when it is lowercase
 * hex of even length (what reports have), else escaped. Returns its length for cert_key,
 * with RAW for bytes. */
static uint32_t arena_hex(struct builder *b, const char *s)
{
    size_t n = s ? strlen(s) : 0, start = b->alen, i;

    for (i = 0; i < n && lower_hex(s[i]) >= 0; i++)
        ;
    if (!n || i < n || n % 2) {
        arena_escaped(b, or_empty(s));
        return (uint32_t)(b->alen - start);
    }
    if (arena_grow(b, n / 2)) {
        for (i = 0; i < n; i += 2)
            b->arena[b->alen++] = (char)(lower_hex(s[i]) << 4 | lower_hex(s[i + 1]));
    }
    return RAW | (uint32_t)(b->alen - start);
}

/* Chain entry c of a report: its own labels built in scratch (emptied first), its CA part
 * shared through ca_parts and the whole through certtexts. Returns 0 or -ENOMEM (out->cert
 * is then NULL). */
static int build_cert(struct builder *scratch, json_t *c, struct mv_cert *out)
{
    json_t *key = json_object_get(c, "key");
    const char *type = json_string_value(json_object_get(key, "type"));
    json_t *bits = json_object_get(key, "bits");
    struct mv_cert_info k;
    size_t subject;
    const char *st;

    /* Zeroed whole: the block is compared byte for byte. */
    memset(&k, 0, sizeof(k));
    k.not_before = time_of(c, "not_before");
    k.not_after = time_of(c, "not_after");
    out->cert = NULL;
    scratch->alen = 0;
    /* The CA part: `",issuer="I",serial="`, cut, `",key="K",signature="G"`. */
    arena_put(scratch, "\",issuer=\"", 10);
    arena_escaped(scratch, or_empty(json_string_value(json_object_get(c, "issuer"))));
    arena_put(scratch, "\",serial=\"", 10);
    k.cut = (uint32_t)scratch->alen;
    /* "RSA 2048", "EC 256", "Ed25519 256". */
    arena_put(scratch, "\",key=\"", 7);
    arena_escaped(scratch, type ? type : "");
    if (json_is_integer(bits) && json_integer_value(bits) > 0) {
        char num[32];
        int n = snprintf(num, sizeof(num), "%s%lld", type ? " " : "",
                         (long long)json_integer_value(bits));
        arena_put(scratch, num, (size_t)n);
    }
    arena_put(scratch, "\"", 1);
    arena_label(scratch, ",signature=\"", json_string_value(json_object_get(c, "signature")));
    if (scratch->failed ||
        !(k.ca = cm_intern_bytes(&ca_parts, scratch->arena, scratch->alen, NULL)))
        return -ENOMEM;
    /* Its own: S, R and H, one after the other. */
    subject = scratch->alen;
    arena_escaped(scratch, or_empty(json_string_value(json_object_get(c, "subject"))));
    k.subject_len = (uint32_t)(scratch->alen - subject);
    k.serial_len = arena_hex(scratch, json_string_value(json_object_get(c, "serial")));
    k.sha256_len = arena_hex(scratch, json_string_value(json_object_get(c, "sha256")));
    if (scratch->failed) {
        cm_intern_bytes_release(&ca_parts, k.ca);
        return -ENOMEM;
    }
    if (!(out->cert = cert_get(&k, scratch->arena + subject)))
        return -ENOMEM;
    st = json_string_value(json_object_get(json_object_get(c, "revocation"), "status"));
    out->rev = ABSENT_REV;
    for (unsigned i = 0; st && i < RV_COUNT; i++)
        if (!strcmp(st, rev_statuses[i]))
            out->rev = (uint8_t)i;
    return 0;
}

static unsigned severity_index(const char *s)
{
    for (unsigned i = 0; s && i < SEV_COUNT; i++)
        if (!strcmp(s, severities[i]))
            return i;
    return SEV_COUNT;
}

static bool in_array(json_t *arr, const char *s)
{
    size_t i;
    json_t *e;

    json_array_foreach (arr, i, e)
        if (json_is_string(e) && !strcmp(json_string_value(e), s))
            return true;
    return false;
}


struct cm_metrics_view *cm_metrics_view_new(json_t *report)
{
    const char *target = json_string_value(json_object_get(report, "target"));
    json_t *chain, *findings, *timing, *verification, *tls, *posture, *err;
    struct builder b = {0}, scratch = {0};
    struct mv_cert *certs = NULL;
    struct mv_finding *fs = NULL;
    struct mv_first *firsts = NULL;
    struct cm_metrics_view v = {0}, *out = NULL;
    struct mv_wide w;
    size_t nchain, nfind, i, size, plen, arrays;
    const char *st;
    json_t *e;
    char *mem;

    if (!json_is_object(report) || !target)
        return NULL;
    chain = json_object_get(report, "chain");
    findings = json_object_get(report, "findings");
    nchain = json_is_array(chain) ? json_array_size(chain) : 0;
    nfind = json_is_array(findings) ? json_array_size(findings) : 0;
    if (nchain > UINT32_MAX || nfind > UINT32_MAX)
        return NULL;
    if ((nchain && !(certs = calloc(nchain, sizeof(*certs)))) ||
        (nfind &&
         (!(fs = calloc(nfind, sizeof(*fs))) || !(firsts = calloc(nfind, sizeof(*firsts))))))
        goto done;

    build_prefix(&b, target, json_object_get(report, "labels"));

    err = json_object_get(report, "error");
    v.success = !err || json_is_null(err);
    timing = json_object_get(report, "timing_ms");
    for (i = 0; i < PH_COUNT; i++) {
        json_t *ms = json_object_get(timing, phases[i]);
        double us = json_is_number(ms) ? json_number_value(ms) * 1000.0 : -1.0;
        w.duration_us[i] = us >= 0 && us < 9e15 ? (int64_t)llround(us) : -1;
        v.wide |= w.duration_us[i] > INT32_MAX;
    }
    w.times[T_LAST_PROBE] = time_of(report, "last_probe");
    w.times[T_LAST_SUCCESS] = time_of(report, "last_success");
    w.times[T_ARI_START] = time_of(json_object_get(report, "ari"), "window_start");
    w.times[T_ARI_END] = time_of(json_object_get(report, "ari"), "window_end");
    for (i = 0; i < T_COUNT; i++)
        v.wide |= w.times[i] != NO_TIME && (w.times[i] < 0 || w.times[i] >= UINT32_MAX);
    for (i = 0; i < PH_COUNT && !v.wide; i++)
        v.duration_us[i] = (int32_t)w.duration_us[i];
    for (i = 0; i < T_COUNT && !v.wide; i++)
        v.times[i] = w.times[i] == NO_TIME ? 0 : (uint32_t)(w.times[i] + 1);
    st = json_string_value(json_object_get(report, "status"));
    v.status = ST_UNKNOWN;
    for (i = 0; st && i < ST_COUNT; i++)
        if (!strcmp(st, statuses[i]))
            v.status = (uint8_t)i;

    json_array_foreach (chain, i, e) {
        struct mv_cert *c = &certs[v.ncerts];
        if (!json_is_object(e))
            continue;
        if (build_cert(&scratch, e, c) < 0)
            goto done;
        c->position = (uint32_t)i;
        v.ncerts++;
    }

    /* Nothing was verified when no certificate came (a refused connection still has a
     * verification object, all false): 0 there would read as "untrusted". */
    verification = json_object_get(report, "verification");
    v.verify = ABSENT;
    if (json_is_object(verification) && v.ncerts > 0)
        v.verify = json_is_true(json_object_get(verification, "trusted")) &&
                   json_is_true(json_object_get(verification, "hostname_match"));

    tls = json_object_get(report, "tls");
    /* Neither can be empty in a report; an empty one is left out as before. */
    st = json_string_value(json_object_get(tls, "version"));
    if (st && *st && !(v.version = word_get(&scratch, st)))
        goto done;
    st = json_string_value(json_object_get(tls, "cipher"));
    if (st && *st && !(v.cipher = word_get(&scratch, st)))
        goto done;

    posture = json_object_get(report, "posture");
    for (i = 0; i < PV_COUNT; i++) {
        json_t *not_tested = json_object_get(posture, "not_tested");
        if (!json_is_object(posture) || in_array(not_tested, versions[i]))
            v.proto[i] = ABSENT;
        else
            v.proto[i] = in_array(json_object_get(posture, "versions_accepted"), versions[i]);
    }

    json_array_foreach (findings, i, e) {
        const char *id = json_string_value(json_object_get(e, "id"));
        unsigned sev = severity_index(json_string_value(json_object_get(e, "severity")));
        int64_t seen = time_of(e, "first_seen");
        const char *ids;
        size_t j;

        if (!id || sev == SEV_COUNT)
            continue;
        if (!(ids = word_get(&scratch, id)))
            goto done;
        /* Equal ids are the same word. The reference moves to a new finding; a repeated one
         * gives it back. */
        for (j = 0; j < v.nfindings; j++)
            if (fs[j].id == ids && fs[j].severity == sev)
                break;
        if (j == v.nfindings)
            fs[v.nfindings++] = (struct mv_finding){ids, sev};
        else
            words_put(ids, NULL, NULL, 0);
        if (seen == NO_TIME)
            continue;
        for (j = 0; j < v.nfirsts; j++)
            if (firsts[j].id == ids)
                break;
        if (j == v.nfirsts)
            firsts[v.nfirsts++] = (struct mv_first){seen, ids};
        else if (seen < firsts[j].t)
            firsts[j].t = seen;
    }
    if (b.failed)
        goto done;

    /* One block (see struct cm_metrics_view). The arrays' entries are multiples of 8 bytes,
     * so each starts aligned after the one before. */
    plen = (b.alen + 7) & ~(size_t)7;
    arrays = (v.wide ? sizeof(w) : 0) + v.ncerts * sizeof(*certs) + v.nfirsts * sizeof(*firsts) +
             v.nfindings * sizeof(*fs);
    size = sizeof(v) + plen + arrays + (plen - b.alen + arrays < PAD ? PAD : 0);
    if (b.alen > INT32_MAX || !(mem = calloc(1, size)))
        goto done;
    out = (struct cm_metrics_view *)(void *)mem;
    v.prefixlen = (uint32_t)b.alen;
    v.refs = 1;
    *out = v;
    if (b.alen)
        memcpy(mem + sizeof(v), b.arena, b.alen);
    if (v.wide)
        memcpy((void *)view_wide(out), &w, sizeof(w));
    if (v.ncerts)
        memcpy((void *)view_certs(out), certs, v.ncerts * sizeof(*certs));
    if (v.nfirsts)
        memcpy((void *)view_firsts(out), firsts, v.nfirsts * sizeof(*firsts));
    if (v.nfindings)
        memcpy((void *)view_findings(out), fs, v.nfindings * sizeof(*fs));
    if (view_measure(out) < 0) {
        free(out);
        out = NULL;
    }
done:
    /* The view holds the texts now; without a view they go back. */
    if (!out) {
        certtexts_put(certs, v.ncerts);
        words_put(v.version, v.cipher, fs, v.nfindings);
    }
    free(certs);
    free(fs);
    free(firsts);
    free(b.arena);
    free(scratch.arena);
    return out;
}

struct cm_metrics_view *cm_metrics_view_ref(struct cm_metrics_view *v)
{
    if (v)
        v->refs++;
    return v;
}

void cm_metrics_view_free(struct cm_metrics_view *v)
{
    if (v && --v->refs == 0) {
        certtexts_put(view_certs(v), v->ncerts);
        words_put(v->version, v->cipher, view_findings(v), v->nfindings);
        free(v);
    }
}

/* ---- Output ---- */

void cm_metrics_buf_free(struct cm_metrics_buf *b)
{
    if (!b)
        return;
    free(b->data);
    *b = (struct cm_metrics_buf){0};
}

#define HUGE_PAGE ((uintptr_t)2 << 20)
#define HUGE_ADVICE_MIN ((size_t)8 << 20)

/* reserve() when the buffer is full. Grows geometrically, so that rendering costs O(output)
 * copying in all. */
static bool grow(struct cm_metrics_buf *b, size_t n)
{
    size_t cap;
    char *p;

    if (b->failed)
        return false;
    if (b->cap - b->len > n)
        return true;
    if (n >= SIZE_MAX / 4 - b->len) {
        b->failed = true;
        return false;
    }
    /* Double, or take exactly what is asked when that is more (the up-front reservation). */
    cap = b->cap > 2048 ? 2 * b->cap : 4096;
    if (cap <= b->len + n)
        cap = b->len + n + 1;
    if (!(p = realloc(b->data, cap))) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
#ifdef MADV_HUGEPAGE
    /* Ten thousand targets make tens of megabytes, and a fresh buffer is faulted in page by
     * page: on a VM that costs more than the rendering (120 ms against 15 ms for 45 MB
     * measured). Transparent huge pages, where the system allows them on request, fault it
     * in 2 MiB at a time. Advice only: failure changes nothing. */
    if (cap >= HUGE_ADVICE_MIN) {
        uintptr_t lo = ((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
        uintptr_t hi = ((uintptr_t)p + cap) & ~(uintptr_t)(HUGE_PAGE - 1);
        if (hi > lo)
            (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
    }
#endif
    return true;
}

/* Makes room for n more bytes and a NUL after them (len <= cap always holds). */
static inline bool reserve(struct cm_metrics_buf *b, size_t n)
{
    return (b->cap - b->len > n && !b->failed) || grow(b, n);
}

static inline __attribute__((always_inline)) char *put(char *p, const void *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* Copies n bytes 16 at a time: fixed-size copies compile to a couple of vector moves, where a
 * memcpy call of a few dozen bytes costs more than the copying. It reads and writes up to 15
 * bytes past n: every source is padded for that (family names are arrays, shared texts end in
 * PAD zero bytes, a view's prefix has PAD bytes of its block after it) and every line reserves
 * LINE_SLACK, more than that, past what it writes. */
static inline __attribute__((always_inline)) char *copy16(char *p, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i += 16)
        memcpy(p + i, s + i, 16);
    return p + n;
}

#define PUTS(p, lit) put((p), (lit), sizeof(lit) - 1)

static const char digit_pairs[] = "00010203040506070809"
                                  "10111213141516171819"
                                  "20212223242526272829"
                                  "30313233343536373839"
                                  "40414243444546474849"
                                  "50515253545556575859"
                                  "60616263646566676869"
                                  "70717273747576777879"
                                  "80818283848586878889"
                                  "90919293949596979899";

/* Decimal digits, written in place from the last two at a time. */
static inline char *put_u64(char *p, uint64_t v)
{
    static const uint64_t pow10[20] = {1ull,
                                       10ull,
                                       100ull,
                                       1000ull,
                                       10000ull,
                                       100000ull,
                                       1000000ull,
                                       10000000ull,
                                       100000000ull,
                                       1000000000ull,
                                       10000000000ull,
                                       100000000000ull,
                                       1000000000000ull,
                                       10000000000000ull,
                                       100000000000000ull,
                                       1000000000000000ull,
                                       10000000000000000ull,
                                       100000000000000000ull,
                                       1000000000000000000ull,
                                       10000000000000000000ull};
    /* The digit count from the bit length (log10(2) ~ 1233/4096) and one comparison. */
    size_t t = ((size_t)(64 - __builtin_clzll(v | 1)) * 1233) >> 12;
    size_t n = t + (v >= pow10[t]);
    char *q;

    n += !n;
    q = p + n;
    while (v >= 100) {
        q -= 2;
        memcpy(q, digit_pairs + 2 * (v % 100), 2);
        v /= 100;
    }
    if (v >= 10)
        memcpy(q - 2, digit_pairs + 2 * v, 2);
    else
        q[-1] = (char)('0' + v);
    return p + n;
}

static inline char *put_i64(char *p, int64_t v)
{
    if (v < 0) {
        *p++ = '-';
        return put_u64(p, 0 - (uint64_t)v);
    }
    return put_u64(p, (uint64_t)v);
}

/* Microseconds as seconds, exactly: "0.003044", "12", "1.5". */
static char *put_us(char *p, int64_t us)
{
    uint64_t frac = (uint64_t)us % 1000000;
    char f[6];
    int n = 6;

    p = put_u64(p, (uint64_t)us / 1000000);
    if (!frac)
        return p;
    for (int i = 5; i >= 0; i--, frac /= 10)
        f[i] = (char)('0' + frac % 10);
    while (f[n - 1] == '0')
        n--;
    *p++ = '.';
    return put(p, f, (size_t)n);
}

/* At most 32 bytes: an integer when the value is one, else the shortest of %.15g and %.17g
 * that reads back the same. */
static char *put_double(char *p, double v)
{
    char tmp[40];
    int n;

    if (isnan(v))
        return PUTS(p, "NaN");
    if (isinf(v))
        return v > 0 ? PUTS(p, "+Inf") : PUTS(p, "-Inf");
    if (v == trunc(v) && fabs(v) < 9e15)
        return put_i64(p, (int64_t)v);
    n = snprintf(tmp, sizeof(tmp), "%.15g", v);
    if (strtod(tmp, NULL) != v)
        n = snprintf(tmp, sizeof(tmp), "%.17g", v);
    return put(p, tmp, (size_t)n);
}

/* Room for "{", "} ", a value, "\n" beyond the labels a line carries, and for copy16 going
 * past the end. */
#define LINE_SLACK 48

/* A constant piece of label text, padded for copy16. */
struct label {
    char s[32];
    size_t n;
};
/* clang-format off */
#define LABEL(text) {text, sizeof(text) - 1}
/* clang-format on */

struct family;
typedef void (*family_fn)(struct cm_metrics_buf *b, const struct family *f, const void *ctx);

enum family_kind { PER_TARGET, SELF, PROCESS };

struct family {
    char name[64];    /* the name and "{", zero-padded (see copy16) */
    size_t namelen;   /* without the "{" */
    const char *head; /* its HELP and TYPE lines */
    size_t headlen;
    enum family_kind kind;
    family_fn fn;
};

/* Starts a sample line of view v, `name{target="...",labels`, with room for extra more
 * bytes of labels (plus LINE_SLACK); NULL when out of memory. */
static char *open_line(struct cm_metrics_buf *b, const struct family *f,
                       const struct cm_metrics_view *v, size_t extra)
{
    char *p;

    if (!reserve(b, f->namelen + v->prefixlen + extra + LINE_SLACK))
        return NULL;
    p = copy16(b->data + b->len, f->name, f->namelen + 1);
    return copy16(p, view_prefix(v), v->prefixlen);
}

static void close_i64(struct cm_metrics_buf *b, char *p, int64_t value)
{
    p = PUTS(p, "} ");
    p = put_i64(p, value);
    *p++ = '\n';
    b->len = (size_t)(p - b->data);
}

static inline char *put_word(char *p, const char *w)
{
    return copy16(p, w, cm_intern_len(w));
}

/* "000102...feff": the two hex digits of every byte value. */
#define HEX_ROW(h)                                                                                 \
    h "0" h "1" h "2" h "3" h "4" h "5" h "6" h "7" h "8" h "9" h "a" h "b" h "c" h "d" h "e" h "f"
static const char hex_pairs[] = HEX_ROW("0") HEX_ROW("1") HEX_ROW("2") HEX_ROW("3") HEX_ROW("4")
    HEX_ROW("5") HEX_ROW("6") HEX_ROW("7") HEX_ROW("8") HEX_ROW("9") HEX_ROW("a") HEX_ROW("b")
        HEX_ROW("c") HEX_ROW("d") HEX_ROW("e") HEX_ROW("f");

/* (Nested: a compiler without __has_builtin cannot parse the call in the same #if.) */
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define HEX_VECTOR 1
#endif
#endif
#ifdef HEX_VECTOR
typedef uint8_t hex_vec __attribute__((vector_size(16)));

/* 16 bytes at d as 32 hex digits at p, 16 bytes at a time: a byte at a time through
 * hex_pairs doubled the time of certmon_cert_info (every certificate's serial and fingerprint
 * go through here). GCC's and clang's vector extensions (__builtin_shufflevector: GCC 12,
 * clang): SSE2 on x86-64, NEON on arm64, plain code elsewhere. */
static inline void hex16(char *p, const unsigned char *d)
{
    hex_vec x, hi, lo, a, b;

    memcpy(&x, d, 16);
    hi = x >> 4;
    lo = x & 15;
    a = __builtin_shufflevector(hi, lo, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    b = __builtin_shufflevector(hi, lo, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15,
                                31);
    /* '0' + n, and 'a' - 10 + n past 9. */
    a += '0' + ((hex_vec)(a > 9) & 39);
    b += '0' + ((hex_vec)(b > 9) & 39);
    memcpy(p, &a, 16);
    memcpy(p + 16, &b, 16);
}
#else
static inline void hex16(char *p, const unsigned char *d)
{
    for (int i = 0; i < 16; i++)
        memcpy(p + 2 * i, hex_pairs + 2 * d[i], 2);
}
#endif

/* A certificate's serial or fingerprint of n bytes at d (see struct mv_cert_info): hex from
 * bytes, or the text as it is. */
static inline char *put_own(char *p, const unsigned char *d, uint32_t n)
{
    uint32_t i = 0;

    if (!(n & RAW))
        return copy16(p, (const char *)d, n);
    for (; i + 16 <= RAW_LEN(n); i += 16)
        hex16(p + 2 * i, d + i);
    for (; i < RAW_LEN(n); i++)
        memcpy(p + 2 * i, hex_pairs + 2 * d[i], 2);
    return p + 2 * (size_t)RAW_LEN(n);
}

/* A family with one sample per target and no labels of its own. */
static void plain(struct cm_metrics_buf *b, const struct family *f, const struct cm_metrics_view *v,
                  int64_t value)
{
    char *p = open_line(b, f, v, 0);

    if (p)
        close_i64(b, p, value);
}

static void f_success(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_view *v = ctx;

    plain(b, f, v, v->success);
}

static void f_duration(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_view *v = ctx;
    char *p;

    static const struct label phase_label[PH_COUNT] = {
        LABEL(",phase=\"dns\"} "),      LABEL(",phase=\"connect\"} "),
        LABEL(",phase=\"starttls\"} "), LABEL(",phase=\"handshake\"} "),
        LABEL(",phase=\"total\"} "),
    };

    for (int i = 0; i < PH_COUNT; i++) {
        int64_t us = view_duration(v, (unsigned)i);
        if (us < 0 || !(p = open_line(b, f, v, 32)))
            continue;
        p = copy16(p, phase_label[i].s, phase_label[i].n);
        p = put_us(p, us);
        *p++ = '\n';
        b->len = (size_t)(p - b->data);
    }
}

#define TIME_FAMILY(fname, index)                                                                  \
    static void fname(struct cm_metrics_buf *b, const struct family *f, const void *ctx)           \
    {                                                                                              \
        const struct cm_metrics_view *v = ctx;                                                     \
        int64_t t = view_time(v, (index));                                                         \
        if (t != NO_TIME)                                                                          \
            plain(b, f, v, t);                                                                     \
    }
TIME_FAMILY(f_last_probe, T_LAST_PROBE)
TIME_FAMILY(f_last_success, T_LAST_SUCCESS)
TIME_FAMILY(f_ari_start, T_ARI_START)
TIME_FAMILY(f_ari_end, T_ARI_END)

/* The earliest not_after of the chain: found here rather than stored, a few certificates per
 * view against a field in every one. */
static void f_chain_expiry(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_view *v = ctx;
    const struct mv_cert *certs = view_certs(v);
    int64_t t = NO_TIME;

    for (uint32_t i = 0; i < v->ncerts; i++)
        if (certs[i].cert->not_after != NO_TIME && (t == NO_TIME || certs[i].cert->not_after < t))
            t = certs[i].cert->not_after;
    if (t != NO_TIME)
        plain(b, f, v, t);
}

static void f_status(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_view *v = ctx;
    char *p;

    static const struct label status_label[ST_COUNT] = {
        LABEL(",status=\"ok\"} "),
        LABEL(",status=\"warning\"} "),
        LABEL(",status=\"critical\"} "),
        LABEL(",status=\"unknown\"} "),
    };

    for (int i = 0; i < ST_COUNT; i++) {
        if (!(p = open_line(b, f, v, 32)))
            return;
        p = copy16(p, status_label[i].s, status_label[i].n);
        *p++ = v->status == i ? '1' : '0';
        *p++ = '\n';
        b->len = (size_t)(p - b->data);
    }
}

static char *put_position(char *p, uint32_t i)
{
    p = PUTS(p, ",position=\"");
    p = put_u64(p, i);
    return PUTS(p, "\"");
}

static void cert_times(struct cm_metrics_buf *b, const struct family *f,
                       const struct cm_metrics_view *v, bool after)
{
    const struct mv_cert *certs = view_certs(v);
    char *p;

    for (uint32_t i = 0; i < v->ncerts; i++) {
        int64_t t = after ? certs[i].cert->not_after : certs[i].cert->not_before;
        if (t == NO_TIME || !(p = open_line(b, f, v, 24)))
            continue;
        close_i64(b, put_position(p, certs[i].position), t);
    }
}

static void f_not_after(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    cert_times(b, f, ctx, true);
}

static void f_not_before(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    cert_times(b, f, ctx, false);
}

static void f_cert_info(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_view *v = ctx;
    char *p;

    for (uint32_t i = 0; i < v->ncerts; i++) {
        const struct mv_cert *c = &view_certs(v)[i];
        const struct mv_cert_info *ci = c->cert;
        const unsigned char *own = ci->data + ci->subject_len;
        /* The position (24 bytes at most), then the certificate's labels in the order of
         * struct mv_cert_info. */
        if (!(p = open_line(b, f, v, 24 + cert_shown(ci))))
            return;
        p = put_position(p, c->position);
        p = PUTS(p, ",subject=\"");
        p = copy16(p, (const char *)ci->data, ci->subject_len);
        p = copy16(p, ci->ca, ci->cut);
        p = put_own(p, own, ci->serial_len);
        p = PUTS(p, "\",sha256=\"");
        p = put_own(p, own + RAW_LEN(ci->serial_len), ci->sha256_len);
        p = copy16(p, ci->ca + ci->cut, cm_intern_len(ci->ca) - ci->cut);
        close_i64(b, p, 1);
    }
}

/* One series per status and checked position, 1 for the current status: a status that
 * changes moves a 1, it does not leave a stale series. */
static void f_cert_revocation(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_view *v = ctx;
    char *p;

    static const struct label status_label[RV_COUNT] = {
        LABEL(",status=\"good\"} "),
        LABEL(",status=\"revoked\"} "),
        LABEL(",status=\"unavailable\"} "),
        LABEL(",status=\"none\"} "),
    };

    for (uint32_t i = 0; i < v->ncerts; i++) {
        const struct mv_cert *c = &view_certs(v)[i];
        if (c->rev == ABSENT_REV)
            continue;
        for (int k = 0; k < RV_COUNT; k++) {
            if (!(p = open_line(b, f, v, 64)))
                return;
            p = put_position(p, c->position);
            p = copy16(p, status_label[k].s, status_label[k].n);
            *p++ = c->rev == k ? '1' : '0';
            *p++ = '\n';
            b->len = (size_t)(p - b->data);
        }
    }
}

static void f_verify(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_view *v = ctx;

    if (v->verify != ABSENT)
        plain(b, f, v, v->verify);
}

/* A `_info` family with one label of the view's. */
static void info1(struct cm_metrics_buf *b, const struct family *f, const struct cm_metrics_view *v,
                  const char *label, size_t labellen, const char *w)
{
    char *p;

    if (!w || !(p = open_line(b, f, v, labellen + cm_intern_len(w) + 4)))
        return;
    *p++ = ',';
    p = put(p, label, labellen);
    p = PUTS(p, "=\"");
    p = put_word(p, w);
    p = PUTS(p, "\"");
    close_i64(b, p, 1);
}

static void f_tls_version(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_view *v = ctx;

    info1(b, f, v, "version", 7, v->version);
}

static void f_tls_cipher(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_view *v = ctx;

    info1(b, f, v, "cipher", 6, v->cipher);
}

static void f_protocol(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_view *v = ctx;
    char *p;

    static const struct label version_label[PV_COUNT] = {
        LABEL(",version=\"TLS1.3\"} "), LABEL(",version=\"TLS1.2\"} "),
        LABEL(",version=\"TLS1.1\"} "), LABEL(",version=\"TLS1.0\"} "),
        LABEL(",version=\"SSL3.0\"} "),
    };

    for (int i = 0; i < PV_COUNT; i++) {
        if (v->proto[i] == ABSENT || !(p = open_line(b, f, v, 32)))
            continue;
        p = copy16(p, version_label[i].s, version_label[i].n);
        *p++ = v->proto[i] ? '1' : '0';
        *p++ = '\n';
        b->len = (size_t)(p - b->data);
    }
}

static void f_finding(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_view *v = ctx;
    char *p;

    static const struct label severity_label[SEV_COUNT] = {
        LABEL("\",severity=\"info\"} 1\n"),
        LABEL("\",severity=\"warning\"} 1\n"),
        LABEL("\",severity=\"critical\"} 1\n"),
    };

    for (uint32_t i = 0; i < v->nfindings; i++) {
        const struct mv_finding *fd = &view_findings(v)[i];
        if (!(p = open_line(b, f, v, 32 + cm_intern_len(fd->id))))
            return;
        p = PUTS(p, ",id=\"");
        p = put_word(p, fd->id);
        p = copy16(p, severity_label[fd->severity].s, severity_label[fd->severity].n);
        b->len = (size_t)(p - b->data);
    }
}

static void f_first_seen(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_view *v = ctx;
    char *p;

    for (uint32_t i = 0; i < v->nfirsts; i++) {
        const struct mv_first *first = &view_firsts(v)[i];
        if (!(p = open_line(b, f, v, 8 + cm_intern_len(first->id))))
            return;
        p = PUTS(p, ",id=\"");
        p = put_word(p, first->id);
        p = PUTS(p, "\"");
        close_i64(b, p, first->t);
    }
}

/* ---- The daemon's own families ---- */

/* Writes `name` + text + " " + value "\n"; text holds the labels with braces, or nothing. */
static void self_line(struct cm_metrics_buf *b, const struct family *f, const char *text,
                      size_t textlen, uint64_t value)
{
    char *p;

    if (!reserve(b, f->namelen + textlen + LINE_SLACK))
        return;
    p = put(b->data + b->len, f->name, f->namelen);
    p = put(p, text, textlen);
    *p++ = ' ';
    p = put_u64(p, value);
    *p++ = '\n';
    b->len = (size_t)(p - b->data);
}

static void f_probes_total(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_self *s = ctx;

    self_line(b, f, "{result=\"success\"}", 18, s->probes_success);
    self_line(b, f, "{result=\"failure\"}", 18, s->probes_failure);
}

static void f_http_evicted(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_http *h = ((const struct cm_metrics_self *)ctx)->http;

    /* Every reason from the start, at 0: a rate over a series that appears only with its first
     * eviction would miss that first one. */
    if (!h)
        return;
    self_line(b, f, "{reason=\"head_timeout\"}", 23, h->evicted_head_timeout);
    self_line(b, f, "{reason=\"per_client\"}", 21, h->evicted_per_client);
    self_line(b, f, "{reason=\"full\"}", 15, h->evicted_full);
}

static void f_http_refused(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_http *h = ((const struct cm_metrics_self *)ctx)->http;

    if (h)
        self_line(b, f, "{reason=\"per_client\"}", 21, h->refused_per_client);
}

static void f_reload_success(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_self *s = ctx;

    self_line(b, f, "", 0, s->reload_success);
}

static void f_reload_time(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_self *s = ctx;
    char *p;

    if (!reserve(b, f->namelen + LINE_SLACK))
        return;
    p = put(b->data + b->len, f->name, f->namelen);
    *p++ = ' ';
    p = put_i64(p, s->reload_time);
    *p++ = '\n';
    b->len = (size_t)(p - b->data);
}

#define REV_FAMILY(fname, expr)                                                                    \
    static void fname(struct cm_metrics_buf *b, const struct family *f, const void *ctx)           \
    {                                                                                              \
        const struct cm_metrics_revocation *r = ((const struct cm_metrics_self *)ctx)->revocation; \
        if (r)                                                                                     \
            self_line(b, f, "", 0, (expr));                                                        \
    }
REV_FAMILY(f_crl_crls, r->crls)
REV_FAMILY(f_crl_bytes, r->bytes)
REV_FAMILY(f_crl_entries, r->entries)
REV_FAMILY(f_ocsp_answers, r->ocsp_answers)
REV_FAMILY(f_rev_fetches, r->fetches)
REV_FAMILY(f_rev_not_modified, r->not_modified)

/* Absent while no CRL is held: an age of 0 would read as "fresh". */
static void f_crl_oldest_age(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_revocation *r = ((const struct cm_metrics_self *)ctx)->revocation;

    if (r && r->crls)
        self_line(b, f, "", 0, r->oldest_age > 0 ? (uint64_t)r->oldest_age : 0);
}

static void f_targets(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_self *s = ctx;

    self_line(b, f, "", 0, s->targets);
}

static void f_build_info(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_self *s = ctx;
    struct builder lb = {0};
    const char *names[4] = {"version", "gnutls", "libuv", "libcurl"};
    const char *vals[4] = {s->version, s->gnutls, s->libuv, s->libcurl};

    /* Once per scrape: escaping here costs nothing that matters. */
    arena_put(&lb, "{", 1);
    for (int i = 0; i < 4; i++) {
        if (i)
            arena_put(&lb, ",", 1);
        arena_put(&lb, names[i], strlen(names[i]));
        arena_put(&lb, "=\"", 2);
        arena_escaped(&lb, vals[i] ? vals[i] : "");
        arena_put(&lb, "\"", 1);
    }
    arena_put(&lb, "}", 1);
    if (lb.failed)
        b->failed = true;
    else
        self_line(b, f, lb.arena, lb.alen, 1);
    free(lb.arena);
}

/* One self line with one or two labels, values escaped: {k1="v1"[,k2="v2"]} (k2 NULL: one). */
static void labelled_line(struct cm_metrics_buf *b, const struct family *f, const char *k1,
                          const char *v1, const char *k2, const char *v2, uint64_t value)
{
    struct builder lb = {0};

    arena_put(&lb, "{", 1);
    arena_put(&lb, k1, strlen(k1));
    arena_put(&lb, "=\"", 2);
    arena_escaped(&lb, v1 ? v1 : "");
    if (k2) {
        arena_put(&lb, "\",", 2);
        arena_put(&lb, k2, strlen(k2));
        arena_put(&lb, "=\"", 2);
        arena_escaped(&lb, v2 ? v2 : "");
    }
    arena_put(&lb, "\"}", 2);
    if (lb.failed)
        b->failed = true;
    else
        self_line(b, f, lb.arena, lb.alen, value);
    free(lb.arena);
}

/* One self line per notifier: {notifier="NAME"[,result="WHAT"]}. */
static void notifier_line(struct cm_metrics_buf *b, const struct family *f, const char *name,
                          const char *result, uint64_t value)
{
    labelled_line(b, f, "notifier", name, result ? "result" : NULL, result, value);
}

static void f_notifications(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_self *s = ctx;

    for (size_t i = 0; i < s->notifier_count; i++) {
        const struct cm_metrics_notifier *n = &s->notifiers[i];
        notifier_line(b, f, n->name, "sent", n->sent);
        notifier_line(b, f, n->name, "failed", n->failed);
        notifier_line(b, f, n->name, "dropped", n->dropped);
    }
}

static void f_cert_changes(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_self *s = ctx;

    for (size_t i = 0; i < s->change_count; i++) {
        const struct cm_metrics_change *c = &s->changes[i];
        labelled_line(b, f, "target", c->target, "kind", "renewal", c->renewals);
        labelled_line(b, f, "target", c->target, "kind", "change", c->changes);
    }
}

static void f_queue_length(struct cm_metrics_buf *b, const struct family *f, const void *ctx)
{
    const struct cm_metrics_self *s = ctx;

    for (size_t i = 0; i < s->notifier_count; i++)
        notifier_line(b, f, s->notifiers[i].name, NULL, s->notifiers[i].queued);
}

/* {source="S"} or {source="S",file="F"}. */
static void discovery_line(struct cm_metrics_buf *b, const struct family *f,
                           const struct cm_metrics_discovery *r, uint64_t value)
{
    labelled_line(b, f, "source", r->source, r->file ? "file" : NULL, r->file, value);
}

#define DISCOVERY_FAMILY(fname, rows, cond, expr)                                                  \
    static void fname(struct cm_metrics_buf *b, const struct family *f, const void *ctx)           \
    {                                                                                              \
        const struct cm_metrics_self *s = ctx;                                                     \
        for (size_t i = 0; i < s->discovery_count; i++) {                                          \
            const struct cm_metrics_discovery *r = &s->discovery[i];                               \
            if ((rows) && (cond))                                                                  \
                discovery_line(b, f, r, (expr));                                                   \
        }                                                                                          \
    }
DISCOVERY_FAMILY(f_disc_files, !r->file, true, r->files)
DISCOVERY_FAMILY(f_disc_targets, !r->file, true, r->targets)
DISCOVERY_FAMILY(f_disc_errors, r->file != NULL, true, r->errors)
DISCOVERY_FAMILY(f_disc_valid, r->file != NULL, true, r->valid)
DISCOVERY_FAMILY(f_disc_success, r->file != NULL, r->last_success > 0, (uint64_t)r->last_success)

static void proc_line(struct cm_metrics_buf *b, const struct family *f, double value)
{
    char *p;

    if (!reserve(b, f->namelen + LINE_SLACK))
        return;
    p = put(b->data + b->len, f->name, f->namelen);
    *p++ = ' ';
    p = put_double(p, value);
    *p++ = '\n';
    b->len = (size_t)(p - b->data);
}

#define PROC_FAMILY(fname, field)                                                                  \
    static void fname(struct cm_metrics_buf *b, const struct family *f, const void *ctx)           \
    {                                                                                              \
        proc_line(b, f, ((const struct cm_metrics_process *)ctx)->field);                          \
    }
PROC_FAMILY(f_cpu, cpu_seconds)
PROC_FAMILY(f_rss, resident_bytes)
PROC_FAMILY(f_vsize, virtual_bytes)
PROC_FAMILY(f_start, start_time)
PROC_FAMILY(f_fds, open_fds)
PROC_FAMILY(f_max_fds, max_fds)

#define FAMILY(name, type, help, kind, fn)                                                         \
    {                                                                                              \
        name "{", sizeof(name) - 1, "# HELP " name " " help "\n# TYPE " name " " type "\n",        \
            sizeof("# HELP " name " " help "\n# TYPE " name " " type "\n") - 1, kind, fn           \
    }

/* In output order. Keep docs/metrics.md in step. */
static const struct family families[] = {
    FAMILY("certmon_probe_success", "gauge",
           "1 when the latest probe of the target succeeded (no error), 0 when it failed.",
           PER_TARGET, f_success),
    FAMILY("certmon_probe_duration_seconds", "gauge",
           "Duration of each phase of the latest probe (phases not reached are absent).",
           PER_TARGET, f_duration),
    FAMILY("certmon_last_probe_timestamp_seconds", "gauge",
           "When the latest probe of the target finished, in Unix seconds.", PER_TARGET,
           f_last_probe),
    FAMILY("certmon_last_success_timestamp_seconds", "gauge",
           "When a probe of the target last succeeded, in Unix seconds (absent: never).",
           PER_TARGET, f_last_success),
    FAMILY("certmon_status", "gauge",
           "The target's status (its worst finding): 1 for the current one, 0 for the others.",
           PER_TARGET, f_status),
    FAMILY("certmon_cert_not_after_timestamp_seconds", "gauge",
           "Expiry (notAfter) of the certificate at each chain position, in Unix seconds.",
           PER_TARGET, f_not_after),
    FAMILY("certmon_cert_not_before_timestamp_seconds", "gauge",
           "Start of validity (notBefore) of the certificate at each chain position, in Unix "
           "seconds.",
           PER_TARGET, f_not_before),
    FAMILY("certmon_cert_info", "gauge",
           "Facts about the certificate at each chain position; the value is always 1.", PER_TARGET,
           f_cert_info),
    FAMILY("certmon_cert_revocation_status", "gauge",
           "Revocation status of the certificate at each chain position (good, revoked, "
           "unavailable, none): 1 for the current one, 0 for the others (absent: not checked).",
           PER_TARGET, f_cert_revocation),
    FAMILY("certmon_chain_expiry_timestamp_seconds", "gauge",
           "Earliest expiry (notAfter) among the certificates presented, in Unix seconds.",
           PER_TARGET, f_chain_expiry),
    FAMILY("certmon_ari_window_start_timestamp_seconds", "gauge",
           "Start of the renewal window the CA suggests for the leaf (ACME renewal "
           "information), in Unix seconds.",
           PER_TARGET, f_ari_start),
    FAMILY("certmon_ari_window_end_timestamp_seconds", "gauge",
           "End of the renewal window the CA suggests for the leaf (ACME renewal information), "
           "in Unix seconds.",
           PER_TARGET, f_ari_end),
    FAMILY("certmon_verify_ok", "gauge",
           "1 when the chain is trusted and matches the host name, 0 when not (absent when "
           "nothing was verified).",
           PER_TARGET, f_verify),
    FAMILY("certmon_tls_version_info", "gauge",
           "TLS version negotiated by the latest probe; the value is always 1.", PER_TARGET,
           f_tls_version),
    FAMILY("certmon_tls_cipher_info", "gauge",
           "Cipher suite (IANA name) negotiated by the latest probe; the value is always 1.",
           PER_TARGET, f_tls_cipher),
    FAMILY("certmon_protocol_accepted", "gauge",
           "Posture pass: 1 when the endpoint accepts the protocol version, 0 when it refused "
           "it (absent: not tested).",
           PER_TARGET, f_protocol),
    FAMILY("certmon_finding", "gauge",
           "Findings of the latest probe, one series per id and severity; the value is always "
           "1.",
           PER_TARGET, f_finding),
    FAMILY("certmon_finding_first_seen_timestamp_seconds", "gauge",
           "When each current finding was first seen in an unbroken run of results, in Unix "
           "seconds.",
           PER_TARGET, f_first_seen),
    FAMILY("certmon_probes_total", "counter", "Probes finished since the daemon started.", SELF,
           f_probes_total),
    FAMILY("certmon_config_last_reload_success", "gauge",
           "1 when the latest configuration load or reload succeeded, 0 when it failed.", SELF,
           f_reload_success),
    FAMILY("certmon_config_last_reload_timestamp_seconds", "gauge",
           "When the configuration was last loaded or reloaded (successfully or not), in Unix "
           "seconds.",
           SELF, f_reload_time),
    FAMILY("certmon_build_info", "gauge",
           "Version of certmon and of the libraries it runs with; the value is always 1.", SELF,
           f_build_info),
    FAMILY("certmon_targets", "gauge", "Configured targets.", SELF, f_targets),
    FAMILY("certmon_crl_cache_crls", "gauge", "CRLs held in the revocation cache.", SELF,
           f_crl_crls),
    FAMILY("certmon_crl_cache_bytes", "gauge",
           "Memory of the CRL indexes held in the revocation cache, in bytes.", SELF, f_crl_bytes),
    FAMILY("certmon_crl_cache_entries", "gauge",
           "Revoked serial numbers held in the revocation cache, all CRLs together.", SELF,
           f_crl_entries),
    FAMILY("certmon_crl_cache_oldest_age_seconds", "gauge",
           "Seconds since the thisUpdate of the oldest CRL held (absent when none is held).", SELF,
           f_crl_oldest_age),
    FAMILY("certmon_ocsp_cache_answers", "gauge", "OCSP responses held in the revocation cache.",
           SELF, f_ocsp_answers),
    FAMILY("certmon_revocation_fetches_total", "counter",
           "CRL downloads and OCSP queries started since the daemon started, conditional "
           "re-fetches included.",
           SELF, f_rev_fetches),
    FAMILY("certmon_revocation_not_modified_total", "counter",
           "CRL re-fetches the server answered 304 Not Modified (the cached CRL was kept).", SELF,
           f_rev_not_modified),
    FAMILY("certmon_notifications_total", "counter",
           "Notification messages by outcome: sent (the receiver accepted it), failed (an "
           "attempt failed; each retry counts), dropped (given up: too old, or refused for good).",
           SELF, f_notifications),
    FAMILY("certmon_cert_changes_total", "counter",
           "Changes of the served leaf certificate since the daemon started: renewal (same "
           "names, issuer and key type, later expiry) or change (anything else: cert.changed).",
           SELF, f_cert_changes),
    FAMILY("certmon_notification_queue_length", "gauge",
           "Notification messages waiting to be sent (grouping or delivery), per notifier.", SELF,
           f_queue_length),
    FAMILY("certmon_http_connections_evicted_total", "counter",
           "Connections the HTTP listener closed to keep room for requests: head_timeout (the "
           "request head was not complete in time), per_client (its address was at its limit "
           "and opened another), full (every slot was taken and another client connected).",
           SELF, f_http_evicted),
    FAMILY("certmon_http_connections_refused_total", "counter",
           "Connections the HTTP listener refused: per_client (the address was at its limit with "
           "every connection busy).",
           SELF, f_http_refused),
    FAMILY("certmon_discovery_files", "gauge",
           "Files the patterns of a discovery source match now.", SELF, f_disc_files),
    FAMILY("certmon_discovery_targets", "gauge",
           "Targets a discovery source adds (names a configured or an earlier target has are "
           "left out).",
           SELF, f_disc_targets),
    FAMILY("certmon_discovery_errors_total", "counter",
           "Reads of a discovery file that failed (unreadable, not parsed, a bad entry); the "
           "file's previous targets stayed.",
           SELF, f_disc_errors),
    FAMILY("certmon_discovery_file_valid", "gauge",
           "1 when the last read of a discovery file was good, 0 when its previous targets are "
           "kept because it failed.",
           SELF, f_disc_valid),
    FAMILY("certmon_discovery_last_success_timestamp_seconds", "gauge",
           "When a discovery file was last read and applied successfully, in Unix seconds "
           "(absent: never).",
           SELF, f_disc_success),
    FAMILY("process_cpu_seconds_total", "counter",
           "Total user and system CPU time spent in seconds.", PROCESS, f_cpu),
    FAMILY("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", PROCESS,
           f_rss),
    FAMILY("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", PROCESS,
           f_vsize),
    FAMILY("process_start_time_seconds", "gauge",
           "Start time of the process since unix epoch in seconds.", PROCESS, f_start),
    FAMILY("process_open_fds", "gauge", "Number of open file descriptors.", PROCESS, f_fds),
    FAMILY("process_max_fds", "gauge", "Maximum number of open file descriptors.", PROCESS,
           f_max_fds),
};

#define FAMILY_COUNT (sizeof(families) / sizeof(families[0]))

/* What the view renders, measured by rendering it once: lets a render allocate its whole
 * output at once (see reserve) without a second copy of the formatting rules. */
static int view_measure(struct cm_metrics_view *v)
{
    struct cm_metrics_buf b = {0};

    for (size_t i = 0; i < FAMILY_COUNT; i++)
        if (families[i].kind == PER_TARGET)
            families[i].fn(&b, &families[i], v);
    free(b.data);
    if (b.failed || b.len > UINT32_MAX)
        return -ENOMEM;
    v->rendered = (uint32_t)b.len;
    return 0;
}

/* An upper bound of the output still to come, headers included (self and process lines are
 * short; what they need beyond this is found as they go). */
static size_t render_estimate(const struct cm_metrics_view *const *views, size_t n,
                              const struct cm_metrics_self *self,
                              const struct cm_metrics_process *proc)
{
    size_t total = 4096;

    for (size_t i = 0; i < n; i++)
        if (views[i])
            total += views[i]->rendered;
    for (size_t i = 0; i < FAMILY_COUNT; i++)
        total += families[i].headlen;
    if (self) {
        const char *s[] = {self->version, self->gnutls, self->libuv, self->libcurl};
        for (size_t i = 0; i < 4; i++)
            total += s[i] ? 2 * strlen(s[i]) : 0;
    }
    (void)proc;
    return total;
}

int cm_metrics_render_some(const struct cm_metrics_view *const *views, size_t n,
                           const struct cm_metrics_self *self,
                           const struct cm_metrics_process *proc, struct cm_metrics_cursor *cur,
                           size_t limit, struct cm_metrics_buf *out)
{
    /* A whole render from the start gets its memory in one piece: growing a buffer of tens
     * of megabytes by doubling costs copies and faults on memory touched twice. */
    if (cur->family == 0 && cur->next == 0 && !out->failed) {
        size_t est = render_estimate(views, n, self, proc);
        if (!reserve(out, est < limit ? est : limit))
            return -ENOMEM;
    }
    while (cur->family < FAMILY_COUNT) {
        const struct family *f = &families[cur->family];
        size_t count = f->kind == PER_TARGET ? n : f->kind == SELF ? self != NULL : proc != NULL;

        while (cur->next < count) {
            const void *ctx = f->kind == PER_TARGET ? (const void *)views[cur->next]
                              : f->kind == SELF     ? (const void *)self
                                                    : (const void *)proc;
            size_t at = out->len;

            cur->next++;
            if (!ctx)
                continue;
            f->fn(out, f, ctx);
            if (out->failed)
                return -ENOMEM;
            /* A family's HELP and TYPE go before its first sample, and only when it has one:
             * put them in front of what was just written (a few lines at most). */
            if (out->len != at && !cur->open) {
                if (!reserve(out, f->headlen))
                    return -ENOMEM;
                memmove(out->data + at + f->headlen, out->data + at, out->len - at);
                memcpy(out->data + at, f->head, f->headlen);
                out->len += f->headlen;
                cur->open = true;
            }
            if (out->len >= limit) {
                out->data[out->len] = '\0';
                return 1;
            }
        }
        cur->family++;
        cur->next = 0;
        cur->open = false;
    }
    if (!reserve(out, 0))
        return -ENOMEM;
    out->data[out->len] = '\0';
    return 0;
}

int cm_metrics_render(const struct cm_metrics_view *const *views, size_t n,
                      const struct cm_metrics_self *self, const struct cm_metrics_process *proc,
                      struct cm_metrics_buf *out)
{
    struct cm_metrics_cursor cur = CM_METRICS_CURSOR_INIT;

    return cm_metrics_render_some(views, n, self, proc, &cur, SIZE_MAX, out);
}
