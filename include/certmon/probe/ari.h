/* ACME Renewal Information (RFC 9773): when the CA suggests renewing a certificate.
 *
 * A target may name its CA's renewalInfo URL (ari_url) or its ACME directory, whose
 * "renewalInfo" field gives that URL. For the leaf a probe saw, the client GETs
 * {renewalInfo}/{certificate id} through cm_httpc (libcurl on the loop: nothing blocks) and
 * keeps the answer per certificate until the server's Retry-After says it may ask again.
 * The result is plain data (struct cm_ari) that the probe result carries to the pure
 * analyser, which raises cert.renewal_window_passed / cert.renewal_window_open. */
#ifndef CERTMON_ARI_H
#define CERTMON_ARI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "certmon/probe/result.h"
#include "certmon/probe/x509.h"

struct cm_httpc;

/* Room for the longest certificate id: base64url of a 64-byte key identifier, ".", and of a
 * 64-byte serial, with the NUL (x509.c keeps at most 64 bytes of either; RFC 5280 allows 20
 * octets of serial). */
#define CM_ARI_ID_MAX 176

/* The RFC 9773 section 4.1 certificate id of leaf: base64url(AKI keyIdentifier) "."
 * base64url(serial as DER-encoded, a leading zero byte kept), both without padding, into
 * buf (at least CM_ARI_ID_MAX bytes). Returns 0, or CM_EBADARG with the reason in err (no
 * authority key identifier, no serial). Pure. */
int cm_ari_cert_id(const struct cm_cert *leaf, char *buf, size_t len, char *err, size_t errlen);

/* Parses a renewalInfo response body: {"suggestedWindow": {"start": RFC 3339, "end":
 * RFC 3339}, "explanationURL": "..." (optional)}. Sets a->has_window, the window and
 * a->explanation_url (owned by a). Returns 0, CM_EBADARG with the problem in err (not JSON,
 * no window, a time that is not RFC 3339, start after end), or -ENOMEM. Pure. */
int cm_ari_parse(const char *body, size_t len, struct cm_ari *a, char *err, size_t errlen);

/* Parses the "renewalInfo" URL out of an ACME directory document into a new string.
 * Returns 0, CM_EBADARG with err (not JSON, no renewalInfo, not http(s)), or -ENOMEM. */
int cm_ari_directory_parse(const char *body, size_t len, char **url, char *err, size_t errlen);

/* Where a target's renewal information lives: exactly one of the two is set. */
struct cm_ari_source {
    const char *ari_url;   /* the renewalInfo base URL */
    const char *directory; /* an ACME directory URL, fetched once per client and cached */
    const char *ca_file;   /* trust for https (NULL: the system store) */
};

/* A cache of renewal information over one cm_httpc, on its loop. */
struct cm_ari_client;

/* Creates a client over http (borrowed: it outlives the client) that keeps at most
 * max_entries certificates (0: 4096; the least recently fetched one goes first). Returns 0,
 * -EINVAL or -ENOMEM. */
int cm_ari_client_new(struct cm_httpc *http, size_t max_entries, struct cm_ari_client **out);

/* Called exactly once per lookup that returned 0, from a loop callback. a is the callee's
 * (free with cm_ari_free); it is never NULL unless memory ran out. */
typedef void (*cm_ari_cb)(struct cm_ari *a, void *arg);

/* Renewal information for leaf from src. When the cache holds an answer for this
 * certificate that may not be asked for again yet, *out gets a copy and 1 is returned (cb
 * never runs). Otherwise the directory (once) and the renewal information are fetched, each
 * within timeout_ms, and 0 is returned: cb runs once with the answer or the error. Lookups of
 * one certificate in flight together share one request. A certificate without an id
 * (no AKI) gives 1 with an ARI record that holds the error. Returns -EINVAL (no source, no
 * callback) or -ENOMEM; cb then never runs. */
int cm_ari_lookup(struct cm_ari_client *c, const struct cm_ari_source *src,
                  const struct cm_cert *leaf, uint64_t timeout_ms, cm_ari_cb cb, void *arg,
                  struct cm_ari **out);

/* The cached answer for leaf from src, whether or not it is due to be asked again, into *out
 * (a copy): 1, or 0 when there is none (nothing asked yet, the directory not fetched yet, a
 * leaf without an id), or -ENOMEM. *due tells whether a cm_ari_lookup now would ask the
 * server (no answer, or its next_poll has come). Never starts a request. For callers that
 * must not wait (the daemon judges with the last answer and refreshes behind). */
int cm_ari_peek(struct cm_ari_client *c, const struct cm_ari_source *src,
                const struct cm_cert *leaf, struct cm_ari **out, bool *due);

/* Certificates cached and HTTP requests made so far (for tests and metrics). */
void cm_ari_client_stats(const struct cm_ari_client *c, size_t *entries, size_t *requests);

/* Frees the client. Lookups still in flight get their callback now (before this returns)
 * with the error "cancelled". NULL is a no-op. Close the cm_httpc afterwards, not before. */
void cm_ari_client_free(struct cm_ari_client *c);

#endif
