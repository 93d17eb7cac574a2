#include "certmon/probe/filecert.h"
#include "certmon/base/error.h"
#include "certmon/probe/keystore.h"
#include "certmon/probe/x509.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <gnutls/gnutls.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* One file the pattern names, before it is read. */
struct cand {
    char *path;
    dev_t dev;
    ino_t ino;
    bool link; /* reached through a symbolic link */
    bool skip; /* a second name of a file read under another name */
};

/* Why files of a directory or glob were left out, for the message of an empty outcome. */
struct skipped {
    size_t hash_links, duplicates, not_regular, other_pem;
};

struct scan {
    const char *pattern;
    const char *password; /* keystores and encrypted keys; NULL: none given */
    int64_t now;
    struct cm_file_scan_result *out;
    size_t out_cap; /* room in out->items */
    struct cand *cands;
    size_t count, cap;
    struct skipped skipped;
    char **keys; /* listed key files, for the lone-key rule (pair_lone_keys) */
    size_t key_count, key_cap;
};

/* Makes room for one more element in *v (of n, with room for *cap), doubling: a directory of
 * thousands of files must not cost a copy per file. Returns 0 or -ENOMEM. */
static int grow(void **v, size_t size, size_t n, size_t *cap)
{
    size_t want = *cap ? *cap * 2 : 16;
    void *p;

    if (n < *cap)
        return 0;
    if (!(p = realloc(*v, want * size)))
        return -ENOMEM;
    *v = p;
    *cap = want;
    return 0;
}

/* strerror is not thread-safe, and scans run on the thread pool. With _GNU_SOURCE (set for
 * the whole build) strerror_r returns the message, which may or may not be buf. */
static const char *errstr(int err, char *buf, size_t len)
{
    return strerror_r(err, buf, len);
}

static char *vfmt(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static char *vfmt(const char *fmt, va_list ap)
{
    char *s = NULL;

    return vasprintf(&s, fmt, ap) < 0 ? NULL : s;
}

/* A new result for path (the file, or the pattern when nothing was found), stamped the way
 * filecert.h describes. Returns NULL when out of memory. */
static struct cm_probe_result *result_new(const char *path, int64_t now)
{
    struct cm_probe_result *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->path = strdup(path);
    if (!r->path || asprintf(&r->target, "file:%s", path) < 0) {
        r->target = NULL;
        cm_probe_result_free(r);
        return NULL;
    }
    r->error_phase = CM_PHASE_DONE;
    r->dns_ms = r->connect_ms = r->starttls_ms = r->handshake_ms = -1;
    r->total_ms = -1;
    r->finished_at = now;
    return r;
}

static int fail(struct cm_probe_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Marks r failed with a formatted message. Returns 0 or -ENOMEM. */
static int fail(struct cm_probe_result *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    free(r->error_message);
    r->error_message = vfmt(fmt, ap);
    va_end(ap);
    r->error_kind = CM_ERRK_FILE;
    cm_chain_clear(&r->tls.chain);
    return r->error_message ? 0 : -ENOMEM;
}

/* Appends r to the scan's results (taking it), or frees it. Returns 0 or -ENOMEM. */
static int push(struct scan *s, struct cm_probe_result *r)
{
    struct cm_file_scan_result *out = s->out;
    void *items = out->items;

    if (!r)
        return -ENOMEM;
    if (grow(&items, sizeof(*out->items), out->count, &s->out_cap) < 0) {
        cm_probe_result_free(r);
        return -ENOMEM;
    }
    out->items = items;
    out->items[out->count++] = r;
    return 0;
}

static int push_failed(struct scan *s, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends a failed result for path. Returns 0 or -ENOMEM. */
static int push_failed(struct scan *s, const char *path, const char *fmt, ...)
{
    struct cm_probe_result *r = result_new(path, s->now);
    va_list ap;

    if (!r)
        return -ENOMEM;
    va_start(ap, fmt);
    r->error_message = vfmt(fmt, ap);
    va_end(ap);
    r->error_kind = CM_ERRK_FILE;
    if (!r->error_message) {
        cm_probe_result_free(r);
        return -ENOMEM;
    }
    return push(s, r);
}

/* ---- PEM blocks ---- */

/* One "-----BEGIN LABEL-----" ... "-----END LABEL-----" block of a file. */
struct pem_block {
    char label[48];
    size_t begin, end; /* offsets of the BEGIN line and past the END line (0: no END) */
    unsigned line;     /* 1-based line of the BEGIN line */
};

static bool is_cert_label(const char *label)
{
    /* The labels GnuTLS reads certificates from. */
    return !strcmp(label, "CERTIFICATE") || !strcmp(label, "X509 CERTIFICATE");
}

/* Where a walk over the PEM blocks of a buffer is: lines are counted as it goes, so a walk
 * over a large bundle stays linear. */
struct pem_cursor {
    size_t pos;     /* where the search for the next block starts */
    size_t counted; /* lines are counted up to here */
    unsigned line;  /* 1-based line of offset counted */
};

/* Finds the next PEM block of buf from the cursor. Returns false when there is none. Each
 * search is bounded (a label by its size, an END line by the next BEGIN line), so that a
 * hostile file of unterminated blocks costs linear time, not quadratic. */
static bool pem_next(const char *buf, size_t len, struct pem_cursor *cur, struct pem_block *b)
{
    static const char begin[] = "-----BEGIN ";
    const char *p, *e, *end_at, *next, *limit;
    char marker[80];
    size_t n;

    if (cur->line == 0)
        cur->line = 1;
    while (cur->pos < len &&
           (p = memmem(buf + cur->pos, len - cur->pos, begin, sizeof(begin) - 1))) {
        const char *lab = p + sizeof(begin) - 1;
        size_t room = len - (size_t)(lab - buf);

        if (room > sizeof(b->label) + 5)
            room = sizeof(b->label) + 5;
        cur->pos = (size_t)(lab - buf);
        e = memmem(lab, room, "-----", 5);
        n = e ? (size_t)(e - lab) : 0;
        /* A label is one short line of text. */
        if (!e || n == 0 || n >= sizeof(b->label) || memchr(lab, '\n', n))
            continue;
        memcpy(b->label, lab, n);
        b->label[n] = '\0';
        b->begin = (size_t)(p - buf);
        for (const char *q = buf + cur->counted; (q = memchr(q, '\n', (size_t)(p - q))); q++)
            cur->line++;
        cur->counted = b->begin;
        b->line = cur->line;
        snprintf(marker, sizeof(marker), "-----END %s-----", b->label);
        next = memmem(e + 5, len - (size_t)(e + 5 - buf), begin, sizeof(begin) - 1);
        limit = next ? next : buf + len;
        end_at = memmem(e + 5, (size_t)(limit - (e + 5)), marker, strlen(marker));
        b->end = end_at ? (size_t)(end_at - buf) + strlen(marker) : 0;
        cur->pos = b->end ? b->end : (size_t)(e + 5 - buf);
        return true;
    }
    cur->pos = len;
    return false;
}

/* Parses the certificate block b of buf into *c. *why gets NULL, or why the block is
 * unusable (c then empty). Returns 0 or -ENOMEM. */
static int block_parse(const char *buf, const struct pem_block *b, struct cm_cert *c,
                       const char **why)
{
    gnutls_datum_t in, der = {NULL, 0};
    int rc;

    memset(c, 0, sizeof(*c));
    *why = NULL;
    if (!b->end) {
        *why = "it has no END line (is the file cut short?)";
        return 0;
    }
    in.data = (unsigned char *)(uintptr_t)(buf + b->begin);
    in.size = (unsigned)(b->end - b->begin);
    rc = gnutls_pem_base64_decode2(b->label, &in, &der);
    if (rc == GNUTLS_E_MEMORY_ERROR)
        return -ENOMEM;
    if (rc < 0) {
        *why = "its base64 text is damaged";
        return 0;
    }
    rc = cm_cert_from_der(der.data, der.size, c);
    gnutls_free(der.data);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0)
        *why = "it decodes, but not to an X.509 certificate";
    return 0;
}

/* What a file's PEM blocks are. */
struct pem_census {
    size_t blocks, certs;
    char others[128]; /* the other labels, ", "-separated, each once */
};

static void pem_count(const char *buf, size_t len, struct pem_census *pc)
{
    struct pem_cursor cur = {0, 0, 0};
    struct pem_block b;

    memset(pc, 0, sizeof(*pc));
    while (pem_next(buf, len, &cur, &b)) {
        pc->blocks++;
        if (is_cert_label(b.label)) {
            pc->certs++;
        } else {
            size_t used = strlen(pc->others);
            char *hit = strstr(pc->others, b.label);
            size_t bl = strlen(b.label);
            /* Each label once: a whole entry, not a part of a longer one. */
            if (hit && (hit == pc->others || hit[-1] == ' ') && (hit[bl] == ',' || !hit[bl]))
                continue;
            snprintf(pc->others + used, sizeof(pc->others) - used, "%s%s", used ? ", " : "",
                     b.label);
        }
    }
}

/* A PEM file whose certificates GnuTLS refused as a whole (CM_EBADCERT): it gives up on the
 * first block it cannot parse, and takes some blocks that are no certificate for one (an
 * OpenSSL CSR's "CERTIFICATE REQUEST"). Block by block, either every certificate block
 * parses, and r gets them in file order, or r fails naming the first that does not, where it
 * is and why. Returns 0 or -ENOMEM. */
static int parse_blocks(struct cm_probe_result *r, const char *buf, size_t len,
                        const struct pem_census *pc)
{
    struct cm_chain *chain = &r->tls.chain;
    struct pem_cursor cur = {0, 0, 0};
    struct pem_block b;
    size_t k = 0;

    while (pem_next(buf, len, &cur, &b)) {
        struct cm_cert c, *n;
        const char *why;
        if (!is_cert_label(b.label))
            continue;
        k++;
        if (block_parse(buf, &b, &c, &why) < 0)
            return -ENOMEM;
        if (why && pc->certs == 1)
            return fail(r, "cannot parse %s: its %s block (line %u) is unusable: %s", r->path,
                        b.label, b.line, why);
        if (why)
            return fail(r, "cannot parse %s: %s block %zu of %zu (line %u) is unusable: %s",
                        r->path, b.label, k, pc->certs, b.line, why);
        if (!(n = realloc(chain->certs, (chain->count + 1) * sizeof(*n)))) {
            cm_cert_clear(&c);
            return -ENOMEM;
        }
        chain->certs = n;
        chain->certs[chain->count++] = c;
    }
    return 0;
}

/* ---- Reading one file ---- */

/* Reads all of fd, at most CM_FILECERT_MAX_BYTES + 1 bytes (one more tells "too big").
 * Returns the bytes read, or -errno; *out is malloc'd. */
static ssize_t read_all(int fd, size_t hint, char **out)
{
    size_t cap = hint < CM_FILECERT_MAX_BYTES ? hint + 1 : CM_FILECERT_MAX_BYTES + 1;
    size_t len = 0;
    char *buf = malloc(cap), *n;

    *out = NULL;
    if (!buf)
        return -ENOMEM;
    for (;;) {
        ssize_t got;
        if (len == cap) {
            if (cap > CM_FILECERT_MAX_BYTES)
                break; /* already one byte too many */
            cap = cap * 2 > CM_FILECERT_MAX_BYTES + 1 ? CM_FILECERT_MAX_BYTES + 1 : cap * 2;
            if (!(n = realloc(buf, cap))) {
                free(buf);
                return -ENOMEM;
            }
            buf = n;
        }
        got = read(fd, buf + len, cap - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            free(buf);
            return -e;
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    *out = buf;
    return (ssize_t)len;
}

/* Fails r as too big: size is the file's, or -1 when it grew past the limit as it was read. */
static int fail_too_big(struct cm_probe_result *r, long long size)
{
    if (size > (long long)CM_FILECERT_MAX_BYTES)
        return fail(r, "%s: file is %lld bytes; at most 4 MiB is read", r->path, size);
    return fail(r, "%s: file is over 4 MiB; at most 4 MiB is read", r->path);
}

/* An ASN.1 SEQUENCE whose length fits the data: DER, though not a certificate (a key, a
 * PKCS#7 or PKCS#12 file), when it did not parse as one. */
static bool looks_der(const unsigned char *p, size_t len)
{
    size_t n, body = 0;

    if (len < 2 || p[0] != 0x30)
        return false;
    if (p[1] < 0x80)
        return (size_t)p[1] + 2 <= len;
    n = p[1] & 0x7f;
    if (n == 0 || n > 4 || len < 2 + n)
        return false;
    for (size_t i = 0; i < n; i++)
        body = body << 8 | p[2 + i];
    return body <= len - 2 - n;
}

/* What a file turned out to be. */
enum file_kind {
    KIND_CERT,  /* r holds its outcome: certificates, or why there are none */
    KIND_KEY,   /* (listed files only) private keys only, or a key-named file that cannot be
                 * read: a candidate for pairing, no result of its own */
    KIND_OTHER, /* (listed files only) other PEM blocks only: skipped */
};

/* Frees a file's bytes after clearing them: the file may hold a private key. */
static void wipe_free(char *buf, size_t len)
{
    if (buf)
        explicit_bzero(buf, len);
    free(buf);
}

/* Opens and reads path (a regular file, at most CM_FILECERT_MAX_BYTES). On success *buf holds
 * *len bytes, not NUL-terminated (free with wipe_free). Otherwise returns the errno value (EISDIR,
 * EINVAL: not a regular file, EFBIG: too big, with *size the size or -1) or -ENOMEM. */
static int load_file(const char *path, char **buf, size_t *len, long long *size)
{
    struct stat st;
    ssize_t got;
    int fd, e;

    *buf = NULL;
    *size = -1;
    /* O_NONBLOCK: a FIFO put in place of the file must not hang the scan in open(). */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return errno;
    if (fstat(fd, &st) < 0) {
        e = errno;
        close(fd);
        return e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    }
    if ((unsigned long long)st.st_size > CM_FILECERT_MAX_BYTES) {
        close(fd);
        *size = (long long)st.st_size;
        return EFBIG;
    }
    got = read_all(fd, (size_t)st.st_size, buf);
    close(fd);
    if (got == -ENOMEM)
        return -ENOMEM;
    if (got < 0)
        return (int)-got;
    if ((size_t)got > CM_FILECERT_MAX_BYTES) {
        /* It grew between fstat and read. */
        wipe_free(*buf, (size_t)got);
        *buf = NULL;
        return EFBIG;
    }
    *len = (size_t)got;
    return 0;
}

/* The first private key block of a PEM buffer, or false. */
static bool key_block(const char *buf, size_t len, struct pem_block *b)
{
    struct pem_cursor cur = {0, 0, 0};

    while (pem_next(buf, len, &cur, b))
        if (cm_key_pem_label(b->label) && b->end)
            return true;
    return false;
}

/* Compares the key in buf (a PEM file's first key block, or DER) with r's first certificate,
 * recording the outcome and key_path in r->file.key. Returns 0 or -ENOMEM. */
static int key_check_buf(const struct scan *s, struct cm_probe_result *r, const char *key_path,
                         const char *buf, size_t len)
{
    struct cm_key_check *k = &r->file.key;
    struct pem_block b;
    const char *from = buf;
    size_t n = len;

    if (!(k->path = strdup(key_path)))
        return -ENOMEM;
    if (memmem(buf, len, "-----BEGIN ", 11)) {
        if (!key_block(buf, len, &b)) {
            k->status = CM_KEY_UNREADABLE;
            return (k->error = strdup("it holds no private key block")) ? 0 : -ENOMEM;
        }
        from = buf + b.begin;
        n = b.end - b.begin;
    }
    return cm_key_compare((const unsigned char *)from, n, s->password, &r->tls.chain.certs[0], k);
}

/* Reads key_path and compares its key with r's first certificate. A key file that cannot be
 * read is CM_KEY_UNREADABLE, with the reason. Returns 0 or -ENOMEM. */
static int key_check_file(const struct scan *s, struct cm_probe_result *r, const char *key_path)
{
    char ebuf[128], *buf;
    long long size;
    size_t len = 0;
    int e = load_file(key_path, &buf, &len, &size);

    if (e == -ENOMEM)
        return e;
    if (e) {
        struct cm_key_check *k = &r->file.key;
        k->status = CM_KEY_UNREADABLE;
        if (!(k->path = strdup(key_path)) ||
            asprintf(&k->error, "cannot read it: %s",
                     e == EFBIG    ? "it is over 4 MiB"
                     : e == EINVAL ? "it is not a regular file"
                                   : errstr(e, ebuf, sizeof(ebuf))) < 0) {
            k->error = NULL;
            return -ENOMEM;
        }
        return 0;
    }
    e = key_check_buf(s, r, key_path, buf, len);
    wipe_free(buf, len);
    return e;
}

/* The name a key for cert_path has by the same-stem rule ("DIR/example.key" for
 * "DIR/example.pem" or "DIR/example.crt"), or NULL (no extension, a ".key" file itself, or
 * out of memory: *nomem then). */
static char *stem_key(const char *cert_path, bool *nomem)
{
    const char *base = strrchr(cert_path, '/'), *dot;
    char *k;

    base = base ? base + 1 : cert_path;
    dot = strrchr(base, '.');
    *nomem = false;
    if (!dot || dot == base || !strcmp(dot, ".key"))
        return NULL;
    if (asprintf(&k, "%.*s.key", (int)(dot - cert_path), cert_path) < 0) {
        *nomem = true;
        return NULL;
    }
    return k;
}

/* Pairs r (certificates read, no key of its own) with STEM.key when that exists. */
static int pair_stem(const struct scan *s, struct cm_probe_result *r)
{
    struct stat st;
    bool nomem;
    char *k;
    int rc = 0;

    if (r->error_kind != CM_ERRK_NONE || r->file.format != CM_FILE_CERTS ||
        r->file.key.status != CM_KEY_NONE || r->tls.chain.count == 0)
        return 0;
    if (!(k = stem_key(r->path, &nomem)))
        return nomem ? -ENOMEM : 0;
    /* lstat: a dangling link is a key that cannot be read, reported as such. */
    if (lstat(k, &st) == 0)
        rc = key_check_file(s, r, k);
    free(k);
    return rc;
}

/* A file named like a private key: "*.key", or a stem ending in "key" ("privkey.pem",
 * "key.pem", "server-key.pem"). Used only for files that cannot be read. */
static bool key_name(const char *path)
{
    const char *base = strrchr(path, '/'), *dot;
    size_t n;

    base = base ? base + 1 : path;
    dot = strrchr(base, '.');
    if (dot && !strcmp(dot, ".key"))
        return true;
    n = dot ? (size_t)(dot - base) : strlen(base);
    return n >= 3 && !strncasecmp(base + n - 3, "key", 3);
}

/* Reads a keystore (JKS or PKCS#12) in buf into r. Returns 0 or -ENOMEM. */
static int read_keystore(const struct scan *s, struct cm_probe_result *r, const char *buf,
                         size_t len, bool jks)
{
    const unsigned char *u = (const unsigned char *)buf;
    char err[300];
    int rc;

    r->file.format = jks ? CM_FILE_JKS : CM_FILE_PKCS12;
    rc =
        jks ? cm_jks_read(u, len, s->password, &r->tls.chain, &r->file.integrity, err, sizeof(err))
            : cm_p12_read(u, len, s->password, &r->tls.chain, &r->file.integrity, err, sizeof(err));
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0)
        return fail(r, "%s: %s", r->path, err);
    return 0;
}

/* Parses buf, the contents of r->path, into r. */
static int parse_cert_file(const struct scan *s, struct cm_probe_result *r, const char *buf,
                           size_t len, bool listed, enum file_kind *kind)
{
    struct pem_census pc;
    struct pem_block kb;
    int rc;

    if (cm_jks_sniff((const unsigned char *)buf, len))
        return read_keystore(s, r, buf, len, true);
    if (cm_p12_sniff((const unsigned char *)buf, len))
        return read_keystore(s, r, buf, len, false);
    rc = cm_chain_append_data(&r->tls.chain, buf, len);
    if (rc > 0) {
        /* A server's combined file: the key next to the certificates. */
        if (key_block(buf, len, &kb))
            return key_check_buf(s, r, r->path, buf, len);
        return 0;
    }
    cm_chain_clear(&r->tls.chain);
    if (rc == -ENOMEM)
        return rc;
    pem_count(buf, len, &pc);
    if (pc.certs > 0) {
        if ((rc = parse_blocks(r, buf, len, &pc)) < 0 || r->error_kind != CM_ERRK_NONE)
            return rc;
        return key_block(buf, len, &kb) ? key_check_buf(s, r, r->path, buf, len) : 0;
    }
    if (pc.blocks > 0 && listed) {
        *kind = key_block(buf, len, &kb) ? KIND_KEY : KIND_OTHER;
        return 0;
    }
    if (pc.blocks > 0)
        return fail(r, "no certificate found in %s (it holds only other PEM blocks: %s)", r->path,
                    pc.others);
    if (looks_der((const unsigned char *)buf, len))
        return fail(r, "no certificate found in %s (DER data, but not an X.509 certificate)",
                    r->path);
    return fail(r, "no certificate found in %s (not PEM or DER)", r->path);
}

/* Reads and parses path into r. listed: the file came from a directory or a glob, where a
 * file of other PEM blocks is skipped, and a key file kept for pairing (*kind says which; r
 * then unused). Returns 0 or -ENOMEM; a file that cannot be used is a failed r, not an
 * error. */
static int read_cert_file(const struct scan *s, struct cm_probe_result *r, bool listed,
                          enum file_kind *kind)
{
    char ebuf[128], *buf = NULL;
    long long size;
    size_t len = 0;
    int e, rc;

    *kind = KIND_CERT;
    e = load_file(r->path, &buf, &len, &size);
    if (e == -ENOMEM)
        return e;
    if (e && listed && key_name(r->path)) {
        /* privkey.pem readable by root only: the pairing reports it, as key.unreadable. */
        *kind = KIND_KEY;
        return 0;
    }
    if (e == EFBIG)
        return fail_too_big(r, size);
    if (e)
        return fail(r, "cannot read %s: %s", r->path,
                    e == EISDIR   ? "it is a directory"
                    : e == EINVAL ? "it is not a regular file"
                                  : errstr(e, ebuf, sizeof(ebuf)));
    if (len == 0) {
        free(buf);
        return fail(r, "no certificate found in %s (the file is empty)", r->path);
    }
    rc = parse_cert_file(s, r, buf, len, listed, kind);
    wipe_free(buf, len);
    if (rc == 0 && *kind == KIND_CERT)
        rc = pair_stem(s, r);
    return rc;
}

/* ---- Expanding the pattern ---- */

/* c_rehash's names: 8 lowercase hex digits, ".", an optional "r" (CRLs), digits. */
static bool hash_link_name(const char *path)
{
    const char *name = strrchr(path, '/');
    size_t i;

    name = name ? name + 1 : path;
    for (i = 0; i < 8; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
            return false;
    if (name[i++] != '.')
        return false;
    if (name[i] == 'r')
        i++;
    if (!(name[i] >= '0' && name[i] <= '9'))
        return false;
    while (name[i] >= '0' && name[i] <= '9')
        i++;
    return name[i] == '\0';
}

/* Takes path (owned) as a candidate when it is a regular file (through symbolic links); hash
 * links and other entries are counted as skipped. A dangling link or an entry that cannot be
 * examined stays a candidate, so that reading it reports why. Returns 0 or -ENOMEM. */
static int add_listed(struct scan *s, char *path)
{
    struct stat lst, st;
    void *cands = s->cands;
    bool link = false;

    if (lstat(path, &lst) == 0) {
        link = S_ISLNK(lst.st_mode);
        if (link && hash_link_name(path)) {
            s->skipped.hash_links++;
            free(path);
            return 0;
        }
        if (stat(path, &st) == 0) {
            if (!S_ISREG(st.st_mode)) {
                s->skipped.not_regular++;
                free(path);
                return 0;
            }
        } else {
            memset(&st, 0, sizeof(st));
        }
    } else {
        memset(&st, 0, sizeof(st));
    }
    if (grow(&cands, sizeof(*s->cands), s->count, &s->cap) < 0) {
        free(path);
        return -ENOMEM;
    }
    s->cands = cands;
    s->cands[s->count++] = (struct cand){path, st.st_dev, st.st_ino, link, false};
    return 0;
}

struct glob_err {
    int err;
    char path[256];
};

/* glob(3) calls back without a context argument; one scan per thread at a time. */
static _Thread_local struct glob_err *glob_err;

static int on_glob_error(const char *path, int err)
{
    if (glob_err && !glob_err->err) {
        glob_err->err = err;
        snprintf(glob_err->path, sizeof(glob_err->path), "%s", path);
    }
    return 0; /* keep going: one unreadable directory does not hide the others */
}

/* Collects the matches of a glob. *nomatch tells that nothing matched; *ge holds the first
 * directory that could not be read on the way. Returns 0 or -ENOMEM. */
static int expand_glob(struct scan *s, struct glob_err *ge, bool *nomatch)
{
    glob_t g;
    int rc;

    memset(&g, 0, sizeof(g));
    memset(ge, 0, sizeof(*ge));
    glob_err = ge;
    rc = glob(s->pattern, 0, on_glob_error, &g);
    glob_err = NULL;
    *nomatch = rc == GLOB_NOMATCH;
    if (rc == GLOB_NOSPACE) {
        globfree(&g);
        return -ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < g.gl_pathc; i++) {
        char *p = strdup(g.gl_pathv[i]);
        if (!p || add_listed(s, p) < 0) {
            globfree(&g);
            return -ENOMEM;
        }
    }
    globfree(&g);
    return 0;
}

/* Collects the entries of a directory, dot files excepted (as a "DIR/x" glob would).
 * *err gets errno when the directory cannot be read. Returns 0 or -ENOMEM. */
static int expand_dir(struct scan *s, int *err, size_t *entries)
{
    size_t dl = strlen(s->pattern);
    bool slash = dl > 0 && s->pattern[dl - 1] == '/';
    struct dirent *de;
    DIR *d;

    *err = 0;
    *entries = 0;
    if (!(d = opendir(s->pattern))) {
        *err = errno;
        return 0;
    }
    for (;;) {
        char *p;
        errno = 0;
        if (!(de = readdir(d))) {
            *err = errno;
            break;
        }
        if (de->d_name[0] == '.')
            continue;
        (*entries)++;
        if (asprintf(&p, "%s%s%s", s->pattern, slash ? "" : "/", de->d_name) < 0 ||
            add_listed(s, p) < 0) {
            closedir(d);
            return -ENOMEM;
        }
    }
    closedir(d);
    return 0;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const struct cand *)a)->path, ((const struct cand *)b)->path);
}

/* Orders by file identity; within one file, the name that is not a link first, then by
 * path: that name is the one read. */
static int by_identity(const void *a, const void *b)
{
    const struct cand *x = *(const struct cand *const *)a, *y = *(const struct cand *const *)b;

    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    if (x->link != y->link)
        return x->link ? 1 : -1;
    return strcmp(x->path, y->path);
}

/* Marks the second and later names of one file as skipped. Candidates whose identity is
 * unknown (stat failed: inode 0) are never merged. Returns 0 or -ENOMEM. */
static int dedupe(struct scan *s)
{
    struct cand **v;

    if (s->count < 2)
        return 0;
    if (!(v = malloc(s->count * sizeof(*v))))
        return -ENOMEM;
    for (size_t i = 0; i < s->count; i++)
        v[i] = &s->cands[i];
    qsort(v, s->count, sizeof(*v), by_identity);
    for (size_t i = 1; i < s->count; i++)
        if (v[i]->ino != 0 && v[i]->dev == v[i - 1]->dev && v[i]->ino == v[i - 1]->ino) {
            v[i]->skip = true;
            s->skipped.duplicates++;
        }
    free(v);
    return 0;
}

/* Appends "N what" to buf when n is not zero. */
static void count_word(char *buf, size_t len, size_t n, const char *one, const char *many)
{
    size_t used = strlen(buf);

    if (n)
        snprintf(buf + used, len - used, "%s%zu %s", used ? ", " : "", n, n == 1 ? one : many);
}

/* The one failed result for a directory or glob that yielded no certificate file. */
static int push_nothing(struct scan *s, bool dir, bool nomatch, const struct glob_err *ge,
                        size_t entries)
{
    char why[256] = "", ebuf[128];

    if (dir && entries == 0)
        return push_failed(s, s->pattern, "no certificate found: directory %s is empty",
                           s->pattern);
    if (!dir && nomatch && ge->err)
        return push_failed(s, s->pattern, "no file matches %s (cannot read %s: %s)", s->pattern,
                           ge->path, errstr(ge->err, ebuf, sizeof(ebuf)));
    if (!dir && nomatch)
        return push_failed(s, s->pattern, "no file matches %s", s->pattern);
    count_word(why, sizeof(why), s->skipped.other_pem, "file with only keys, CSRs or CRLs",
               "files with only keys, CSRs or CRLs");
    count_word(why, sizeof(why), s->skipped.hash_links, "OpenSSL hash link", "OpenSSL hash links");
    count_word(why, sizeof(why), s->skipped.duplicates, "second name of a file",
               "second names of files");
    count_word(why, sizeof(why), s->skipped.not_regular, "entry that is not a regular file",
               "entries that are not regular files");
    if (!why[0])
        return push_failed(s, s->pattern, "no certificate found for %s", s->pattern);
    return push_failed(s, s->pattern, "no certificate found in %s %s (skipped: %s)",
                       dir ? "directory" : "the files matching", s->pattern, why);
}

/* The length of path's directory part ("DIR/" included), for grouping by directory. */
static size_t dir_len(const char *path)
{
    const char *slash = strrchr(path, '/');

    return slash ? (size_t)(slash - path) + 1 : 0;
}

static bool same_dir(const char *a, const char *b)
{
    size_t n = dir_len(a);

    return n == dir_len(b) && !strncmp(a, b, n);
}

/* The lone-key rule: a directory whose only key file was not taken by a certificate of the
 * same stem pairs it with its certificate files that start with an end-entity certificate,
 * when they all start with the same one (cert.pem + key.pem as ACME clients write them;
 * certbot's cert.pem and fullchain.pem with privkey.pem, chain.pem starting with a CA and so
 * left out). Costs O(keys x results): a directory of keys is not a certificate store. */
static int pair_lone_keys(struct scan *s)
{
    struct cm_file_scan_result *out = s->out;
    int rc;

    for (size_t i = 0; i < s->key_count; i++) {
        const char *key = s->keys[i], *leaf = NULL;
        bool ok = true, any = false;

        for (size_t j = 0; j < s->key_count && ok; j++)
            ok = j == i || !same_dir(key, s->keys[j]);
        for (size_t j = 0; j < out->count && ok; j++) {
            const struct cm_probe_result *r = out->items[j];
            if (!same_dir(key, r->path))
                continue;
            if (r->file.key.path && !strcmp(r->file.key.path, key))
                ok = false; /* taken by the same-stem rule */
            if (r->error_kind != CM_ERRK_NONE || r->file.format != CM_FILE_CERTS ||
                r->file.key.status != CM_KEY_NONE || !r->tls.chain.count ||
                r->tls.chain.certs[0].is_ca)
                continue;
            if (leaf && strcmp(leaf, r->tls.chain.certs[0].sha256))
                ok = false;
            leaf = r->tls.chain.certs[0].sha256;
            any = true;
        }
        for (size_t j = 0; j < out->count && ok && any; j++) {
            struct cm_probe_result *r = out->items[j];
            if (same_dir(key, r->path) && r->error_kind == CM_ERRK_NONE &&
                r->file.format == CM_FILE_CERTS && r->file.key.status == CM_KEY_NONE &&
                r->tls.chain.count && !r->tls.chain.certs[0].is_ca &&
                (rc = key_check_file(s, r, key)) < 0)
                return rc;
        }
    }
    return 0;
}

/* Keeps a listed key file's path for pair_lone_keys. Returns 0 or -ENOMEM. */
static int add_key(struct scan *s, const char *path)
{
    void *keys = s->keys;
    char *k;

    if (grow(&keys, sizeof(*s->keys), s->key_count, &s->key_cap) < 0)
        return -ENOMEM;
    s->keys = keys;
    if (!(k = strdup(path)))
        return -ENOMEM;
    s->keys[s->key_count++] = k;
    return 0;
}

/* Reads the candidates (sorted, deduplicated) into results. */
static int read_cands(struct scan *s, bool listed)
{
    size_t read_n = 0, total = 0;
    int rc;

    for (size_t i = 0; i < s->count; i++)
        total += !s->cands[i].skip;
    for (size_t i = 0; i < s->count && read_n < CM_FILECERT_MAX_FILES; i++) {
        struct cm_probe_result *r;
        uint64_t t0 = uv_hrtime();
        enum file_kind kind;

        if (s->cands[i].skip)
            continue;
        read_n++;
        if (!(r = result_new(s->cands[i].path, s->now)))
            return -ENOMEM;
        if ((rc = read_cert_file(s, r, listed, &kind)) < 0) {
            cm_probe_result_free(r);
            return rc;
        }
        if (kind != KIND_CERT) {
            s->skipped.other_pem++;
            rc = kind == KIND_KEY ? add_key(s, r->path) : 0;
            cm_probe_result_free(r);
            if (rc < 0)
                return rc;
            continue;
        }
        r->total_ms = (double)(uv_hrtime() - t0) / 1e6;
        if ((rc = push(s, r)) < 0)
            return rc;
    }
    if ((rc = pair_lone_keys(s)) < 0)
        return rc;
    if (total > CM_FILECERT_MAX_FILES)
        return push_failed(s, s->pattern,
                           "%s names %zu files; only the first %d (in path order) were read",
                           s->pattern, total, CM_FILECERT_MAX_FILES);
    return 0;
}

static int scan(struct scan *s)
{
    struct glob_err ge = {0};
    bool nomatch = false, dir = false;
    size_t entries = 0;
    char ebuf[128];
    struct stat st;
    int rc, err;

    if (strpbrk(s->pattern, "*?[")) {
        if ((rc = expand_glob(s, &ge, &nomatch)) < 0)
            return rc;
    } else if (stat(s->pattern, &st) == 0 && S_ISDIR(st.st_mode)) {
        dir = true;
        if ((rc = expand_dir(s, &err, &entries)) < 0)
            return rc;
        if (err && s->count == 0)
            return push_failed(s, s->pattern, "cannot read directory %s: %s", s->pattern,
                               errstr(err, ebuf, sizeof(ebuf)));
    } else {
        /* One file named: whatever it is, reading it says what is wrong with it. */
        struct cm_probe_result *r = result_new(s->pattern, s->now);
        uint64_t t0 = uv_hrtime();
        enum file_kind kind;

        if (!r)
            return -ENOMEM;
        if ((rc = read_cert_file(s, r, false, &kind)) < 0) {
            cm_probe_result_free(r);
            return rc;
        }
        r->total_ms = (double)(uv_hrtime() - t0) / 1e6;
        return push(s, r);
    }
    if (s->count > 1) /* qsort wants a valid array even for none */
        qsort(s->cands, s->count, sizeof(*s->cands), by_path);
    if ((rc = dedupe(s)) < 0 || (rc = read_cands(s, true)) < 0)
        return rc;
    if (s->out->count == 0)
        return push_nothing(s, dir, nomatch, &ge, entries);
    return 0;
}

int cm_file_scan(const char *pattern, const struct cm_file_opts *opts, int64_t now,
                 struct cm_file_scan_result *out)
{
    struct scan s = {.pattern = pattern, .now = now, .out = out};
    int rc;

    s.password = opts ? opts->password : NULL;
    out->items = NULL;
    out->count = 0;
    rc = scan(&s);
    for (size_t i = 0; i < s.count; i++)
        free(s.cands[i].path);
    free(s.cands);
    for (size_t i = 0; i < s.key_count; i++)
        free(s.keys[i]);
    free(s.keys);
    if (rc < 0)
        cm_file_scan_result_clear(out);
    return rc;
}

void cm_file_scan_result_clear(struct cm_file_scan_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->count; i++)
        cm_probe_result_free(r->items[i]);
    free(r->items);
    r->items = NULL;
    r->count = 0;
}

/* ---- On the loop ---- */

struct cm_file_scan_job {
    uv_work_t req; /* first: the request's address is the job's */
    char *pattern;
    char *password; /* a copy, cleared before it is freed */
    cm_file_scan_cb cb;
    void *arg;
    int rc;
    struct cm_file_scan_result result;
};

static void scan_work(uv_work_t *req)
{
    struct cm_file_scan_job *job = (struct cm_file_scan_job *)req;

    /* Stamped when the reading starts, not when it was queued. */
    struct cm_file_opts opts = {job->password};

    job->rc = cm_file_scan(job->pattern, &opts, (int64_t)time(NULL), &job->result);
}

static void job_free(struct cm_file_scan_job *job)
{
    if (job->password)
        explicit_bzero(job->password, strlen(job->password));
    free(job->password);
    free(job->pattern);
    free(job);
}

static void scan_done(uv_work_t *req, int status)
{
    struct cm_file_scan_job *job = (struct cm_file_scan_job *)req;

    if (status == 0 && job->rc < 0)
        status = job->rc;
    job->cb(status, &job->result, job->arg);
    job_free(job);
}

int cm_file_scan_start(uv_loop_t *loop, const char *pattern, const struct cm_file_opts *opts,
                       cm_file_scan_cb cb, void *arg, struct cm_file_scan_job **out)
{
    struct cm_file_scan_job *job;
    int rc;

    if (out)
        *out = NULL;
    if (!loop || !pattern || !cb)
        return -EINVAL;
    if (!(job = calloc(1, sizeof(*job))))
        return -ENOMEM;
    if (!(job->pattern = strdup(pattern)) ||
        (opts && opts->password && !(job->password = strdup(opts->password)))) {
        job_free(job);
        return -ENOMEM;
    }
    job->cb = cb;
    job->arg = arg;
    if ((rc = uv_queue_work(loop, &job->req, scan_work, scan_done)) < 0) {
        job_free(job);
        return rc;
    }
    if (out)
        *out = job;
    return 0;
}

void cm_file_scan_cancel(struct cm_file_scan_job *job)
{
    if (job)
        uv_cancel((uv_req_t *)&job->req); /* fails harmlessly once the work has begun */
}
