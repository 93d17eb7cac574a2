/* Revocation checking without staples: CRLs (RFC 5280) fetched from each certificate's CRL
 * distribution points through httpc, verified against the issuer, indexed compactly and cached
 * by URL until their nextUpdate.
 *
 * Two parts. The CRL index (cm_crl_*) is pure: DER (or PEM) in, a verified, sorted index of
 * revoked serials out; it runs on libuv's thread pool. The checker (cm_revctx, cm_rev_*) is
 * an I/O stage on the loop: it fills a probe result's `revocation` from the cache and from
 * fetches it shares between every certificate and target that names the same URL. The
 * analyser reads the outcome from the result (analyze.c); it never fetches. */
#ifndef CERTMON_REVOCATION_H
#define CERTMON_REVOCATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "certmon/probe/result.h"
#include "certmon/probe/x509.h"

/* ---- CRL index (pure) ---- */

/* Largest CRL accepted, on the wire (public CAs publish tens of MB at most). */
#define CM_CRL_MAX_BYTES (64u * 1024 * 1024)

struct cm_crl;

/* Parses a CRL of len bytes (DER, or PEM "X509 CRL"), checks that issuer (its DER must be
 * present) issued it (issuer name, cRLSign key usage where the issuer has a key usage, and the
 * signature), and builds the sorted index of its revoked serials. Keeps nothing of der.
 * Returns 0, CM_EBADARG with the reason in err ("signature does not verify", "not DER: ..."),
 * or -ENOMEM. Cost: one pass over the entries, one sort, one signature check. */
int cm_crl_parse(const void *der, size_t len, const struct cm_cert *issuer, struct cm_crl **out,
                 char *err, size_t errlen);
void cm_crl_free(struct cm_crl *crl);

int64_t cm_crl_this_update(const struct cm_crl *crl);
int64_t cm_crl_next_update(const struct cm_crl *crl); /* 0 when the CRL has none */
size_t cm_crl_count(const struct cm_crl *crl);        /* revoked entries */
size_t cm_crl_memory(const struct cm_crl *crl);       /* bytes the index holds */

/* True when cert (by its serial) is listed; then *when and *reason (static name, or NULL when
 * the entry gives none) describe the entry. False too when the CRL's scope (issuing
 * distribution point: only user or only CA certificates) excludes cert: *excluded is then
 * true. O(log n). */
bool cm_crl_lookup(const struct cm_crl *crl, const struct cm_cert *cert, int64_t *when,
                   const char **reason, bool *excluded);

/* The RFC 5280 name of a CRL or OCSP reason code ("keyCompromise"), or NULL. */
const char *cm_crl_reason_name(int code);

/* ---- OCSP (pure) ---- */

#define CM_OCSP_NONCE_MAX 64

/* Builds a DER OCSP request for cert (issued by issuer; both with DER) with a random nonce,
 * copied into nonce (CM_OCSP_NONCE_MAX bytes) and *nonce_len. *der is the caller's (free).
 * Returns 0, CM_EBADCERT or -ENOMEM. */
int cm_ocsp_request(const struct cm_cert *cert, const struct cm_cert *issuer, unsigned char **der,
                    size_t *len, unsigned char *nonce, size_t *nonce_len);

struct cm_ocsp_answer {
    enum cm_rev_status status; /* GOOD or REVOKED */
    int64_t this_update, next_update, revoked_at;
    const char *reason; /* static, or NULL */
};

/* Checks an OCSP response for cert: successful, signed by issuer or by a responder certificate
 * issued by issuer with the OCSP signing purpose, about cert, carrying the request's nonce
 * when it carries one, and a good or revoked status (dates are the caller's to judge).
 * Returns 0, CM_EBADARG with the reason in err, or -ENOMEM. */
int cm_ocsp_check(const void *der, size_t len, const struct cm_cert *cert,
                  const struct cm_cert *issuer, const unsigned char *nonce, size_t nonce_len,
                  struct cm_ocsp_answer *out, char *err, size_t errlen);

/* ---- Checker (loop) ---- */

struct cm_httpc;
struct cm_revctx;
struct cm_rev_job;

/* CRL cache figures, for /metrics. */
struct cm_rev_stats {
    size_t crls;                /* CRLs held */
    size_t bytes;               /* memory of their indexes */
    size_t entries;             /* revoked serials held */
    int64_t oldest_this_update; /* oldest thisUpdate among them, 0 when none */
    uint64_t fetches;           /* fetches started, conditional ones included */
    uint64_t not_modified;      /* fetches answered 304 */
    size_t ocsp_answers;        /* OCSP answers held */
};

/* Creates a checker on loop that fetches through httpc (both borrowed; they outlive it).
 * Returns 0 or -ENOMEM. */
int cm_revctx_new(uv_loop_t *loop, struct cm_httpc *httpc, struct cm_revctx **out);

/* Cancels every job (their callbacks run before this returns; sources still outstanding count
 * as "cancelled") and frees the checker once its pool work has finished: run the loop
 * afterwards. NULL is a no-op. */
void cm_revctx_close(struct cm_revctx *ctx);

void cm_revctx_stats(const struct cm_revctx *ctx, int64_t now, struct cm_rev_stats *out);

/* A cached source (a CRL, an OCSP answer, a failure) no check asked for in this long is
 * dropped: in a daemon that runs for months, the CRLs of CAs no target uses any more and the
 * answers about certificates since renewed must not pile up. */
#define CM_REV_IDLE_S (2 * 24 * 3600)

/* Drops the cached sources no check asked for since now - idle_s (none in use is touched).
 * cm_rev_check does it itself at most once an hour, with CM_REV_IDLE_S. Returns how many were
 * dropped. */
size_t cm_revctx_prune(struct cm_revctx *ctx, int64_t now, int64_t idle_s);

/* The shortest time between two fetches of one source that failed, or whose CRL is past its
 * nextUpdate (and the time an OCSP answer without nextUpdate is kept): 60 s unless set.
 * Tests shorten it to see a re-fetch without waiting a minute. */
void cm_revctx_set_refetch(struct cm_revctx *ctx, unsigned seconds);

/* Runs exactly once per started job, from a loop callback; res->revocation is then set. */
typedef void (*cm_rev_cb)(struct cm_probe_result *res, void *arg);

/* Checks the revocation of every certificate of res->tls.chain except self-signed ones:
 * the leaf's verified staple when it says good or revoked (nothing is fetched for the leaf
 * then), else each CRL distribution point (http, https, file) and the OCSP responder (http,
 * https: a POSTed request with a nonce). A source is not fetched again while the cache holds
 * it, current, for the same issuer key (and serial, for OCSP); fetches of one URL in flight
 * are shared. Borrows res until cb; cb runs within timeout_ms
 * (sources still outstanding then count as "timed out": their fetch goes on for the cache).
 * Returns 0 (cb will run, never inside this call) or -ENOMEM / -ECANCELED (cb will not run).
 * out may be NULL. */
int cm_rev_check(struct cm_revctx *ctx, struct cm_probe_result *res, uint64_t timeout_ms,
                 cm_rev_cb cb, void *arg, struct cm_rev_job **out);

/* Ends a job whose callback has not run: it runs now, before this returns, with what is known
 * (sources still outstanding count as "cancelled"; their fetches go on for the cache). The
 * job handle is invalid once its callback has run. NULL is a no-op. */
void cm_rev_cancel(struct cm_rev_job *job);

#endif
