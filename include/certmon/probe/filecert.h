/* File targets: certificates in PEM or DER files, PEM bundles, globs and directories, read off
 * the loop (libuv's thread pool) and turned into probe results that the analyser judges like
 * an endpoint's chain (expiry, weak key, weak signature), certificate by certificate.
 *
 * One scan expands the pattern (glob(3) when it has wildcards; every regular file in it when
 * it is a directory, not recursing, and leaving out dot files as a glob of its entries would;
 * else the file itself) and reads each file found. Each file becomes one result named
 * "file:PATH". A file that cannot be read, is too large, or holds nothing that parses as a
 * certificate gives a result with error kind CM_ERRK_FILE and a message that says which and
 * why (the analyser turns it into probe.failed); so does a PEM bundle with a certificate block
 * that does not parse (the message names the block and its line; the result then holds no
 * certificate). Inside a directory or a glob, a file that holds only other PEM blocks (private
 * keys, CSRs, CRLs) is skipped rather than reported, and so are OpenSSL hash links (symbolic
 * links named like c_rehash's "1a2b3c4d.0") and a second name for a file already read (the
 * name that is not a symbolic link is kept); a pattern that yields nothing is itself one
 * failed result.
 *
 * Files are recognised by content: PKCS#12 and Java KeyStore files (keystore.h) give their
 * certificates, with the result's file.format and file.integrity set; a wrong or missing
 * password fails the result ("PATH: cannot decrypt P12: wrong password"). A certificate
 * file is paired with a private key, compared with its first certificate into file.key: a
 * key PEM block in the file itself; else STEM.key beside it (example.key for example.pem or
 * example.crt); else, in a directory or glob, the directory's only key file (one of private
 * key PEM blocks only, or a key-named file that cannot be read) when no certificate took it
 * by stem, paired with every certificate file there that starts with an end-entity
 * certificate, if they all start with the same one (certbot's cert.pem and fullchain.pem
 * with privkey.pem). Key files are no results of their own. File bytes are cleared before
 * they are freed; keys live only while compared. */
#ifndef CERTMON_FILECERT_H
#define CERTMON_FILECERT_H

#include <stddef.h>
#include <uv.h>

#include "certmon/probe/probe.h"

/* Files larger than this are not read (a failed result says so). */
#define CM_FILECERT_MAX_BYTES (4u << 20)
/* A scan reads at most this many files; the rest are reported as one failed result. */
#define CM_FILECERT_MAX_FILES 10000

/* What one scan found: one result per file, sorted by path (byte order). When the pattern
 * names more than CM_FILECERT_MAX_FILES files, the first ones in path order are read and one
 * failed result named after the pattern comes last. A result has path set (see probe.h), and
 * target "file:PATH"; one about the pattern as a whole has the pattern as its path. */
struct cm_file_scan_result {
    struct cm_probe_result **items; /* owned, each freed with cm_probe_result_free */
    size_t count;
};

/* How to read what a scan finds. */
struct cm_file_opts {
    const char *password; /* PKCS#12 and JKS files, encrypted private keys; NULL: none given.
                           * A secret: it never appears in a result or a message. */
};

/* Scans pattern synchronously (blocking file I/O: call it off the loop; thread-safe). opts
 * may be NULL (no password). now is the time stamped on the results (finished_at). Returns 0
 * or -ENOMEM (out then empty). */
int cm_file_scan(const char *pattern, const struct cm_file_opts *opts, int64_t now,
                 struct cm_file_scan_result *out);

void cm_file_scan_result_clear(struct cm_file_scan_result *r);

/* Called exactly once per started scan, from a loop callback, with a result the callee owns
 * (clear it with cm_file_scan_result_clear). status is 0, UV_ECANCELED when the scan was
 * cancelled before it began, or UV_ENOMEM when it ran out of memory (r then empty). *r itself
 * lives in the job, which is freed when cb returns: copy the struct to keep the items. The
 * job handle is no longer valid once cb runs. */
typedef void (*cm_file_scan_cb)(int status, struct cm_file_scan_result *r, void *arg);

struct cm_file_scan_job;

/* Starts a scan of pattern (copied, as is opts' password, which is cleared from memory when
 * the job ends; opts may be NULL) on loop's thread pool; the results are stamped with the
 * time the scan begins. On success cb runs exactly once, always from a later loop callback;
 * on error (-ENOMEM, or -EINVAL for a NULL loop, pattern or cb) it never runs. *out may be
 * NULL. */
int cm_file_scan_start(uv_loop_t *loop, const char *pattern, const struct cm_file_opts *opts,
                       cm_file_scan_cb cb, void *arg, struct cm_file_scan_job **out);

/* Cancels a scan that has not begun (cb then runs with UV_ECANCELED); one already reading
 * finishes normally. NULL is a no-op. */
void cm_file_scan_cancel(struct cm_file_scan_job *job);

#endif
