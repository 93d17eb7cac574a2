/* GnuTLS over a non-blocking socket: shared client contexts, per-connection sessions,
 * non-blocking handshake steps, and extraction of what a handshake showed.
 *
 * This module never waits: every call returns at once, and tells the caller which socket
 * event (readable or writable) to wait for before calling again. The caller (probe) owns the
 * socket, the uv_poll handle and the deadline. */
#ifndef CERTMON_TLSIO_H
#define CERTMON_TLSIO_H

#include <stdbool.h>
#include <stddef.h>

#include "certmon/probe/result.h"
#include "certmon/probe/x509.h"

struct cm_tls_ctx;
struct cm_tls_conn;

/* A server certificate listing more subject alternative names than this ends the handshake
 * before GnuTLS parses it (cm_tls_error_describe says so): GnuTLS's parsing of the names is
 * quadratic in their number and runs on the loop. Public CAs issue at most a few hundred. */
#define CM_TLS_MAX_CERT_NAMES 2048

/* Creates the context shared by all connections of a run: priorities and a cache of
 * credentials per CA file (NULL = system trust store, loaded once). Returns 0 or -ENOMEM /
 * CM_ETLS. */
int cm_tls_ctx_new(struct cm_tls_ctx **out);
void cm_tls_ctx_free(struct cm_tls_ctx *ctx);

/* Whom to trust and what to present: one set of GnuTLS credentials. Strings borrowed. */
struct cm_tls_profile {
    const char *ca_file;     /* trust anchors; NULL: the system store */
    const char *client_cert; /* PEM certificate (chain) to present for mTLS, or NULL */
    const char *client_key;  /* its PEM private key; set exactly when client_cert is */
};

/* Loads (once) the credentials for profile. Calling this before any probe runs moves the
 * cost (file reads) and the errors out of the probe path. Returns 0, or CM_ECAFILE /
 * CM_ECLIENTCERT with a reason naming the file in err. */
int cm_tls_ctx_load(struct cm_tls_ctx *ctx, const struct cm_tls_profile *profile, char *err,
                    size_t errlen);

/* The trust anchor of a loaded profile's store that issued the top of chain's issuing path
 * (cm_chain_path_top; its DER must be present), as a probe fills tls.anchor and through the
 * same cache, for chains that came from elsewhere (certificate files). *out gets 0 or 1
 * certificate (clear it). Thread-safe; costs one trust-list lookup on a cache miss. Returns
 * 0, -ENOENT when the profile was not loaded (cm_tls_ctx_load), or -ENOMEM. */
int cm_tls_ctx_find_anchor(struct cm_tls_ctx *ctx, const struct cm_tls_profile *profile,
                           const struct cm_chain *chain, struct cm_chain *out);

/* Our client certificate chain of a loaded profile, or NULL when it has none. */
const struct cm_chain *cm_tls_ctx_client_chain(struct cm_tls_ctx *ctx,
                                               const struct cm_tls_profile *profile);

/* Starts a client connection over connected, non-blocking fd (borrowed: the caller closes
 * it after cm_tls_conn_free). sni may be NULL. priority is a GnuTLS priority string for
 * this connection (compiled once per context), or NULL for certmon's default. A priority
 * that names ANON also gets anonymous client credentials (shared by the context). Every
 * session accepts DH primes down to 512 bits: a probe must see weak parameters, not refuse
 * them. Returns 0, -ENOMEM, CM_ECAFILE, CM_ECLIENTCERT or
 * CM_ETLS. */
int cm_tls_conn_new(struct cm_tls_ctx *ctx, int fd, const char *sni,
                    const struct cm_tls_profile *profile, const char *priority,
                    struct cm_tls_conn **out);
void cm_tls_conn_free(struct cm_tls_conn *c);

/* Advances the handshake. Returns 0 when it is complete, 1 when it must be called again
 * once fd is readable (*want_write false) or writable (*want_write true), or a negative
 * GnuTLS error code. */
int cm_tls_conn_handshake(struct cm_tls_conn *c, bool *want_write);

/* True when the server asked for a client certificate during the handshake. */
bool cm_tls_conn_client_cert_requested(struct cm_tls_conn *c);

/* True when the handshake needs a read after it to be judged: under TLS 1.3 a server that
 * asked for a client certificate rejects it only after the client's Finished, so the
 * handshake call succeeds and the alert comes with the first record. */
bool cm_tls_conn_needs_post_read(struct cm_tls_conn *c);

/* Reads whatever the server sent after the handshake (tickets, data, an alert) without
 * blocking. Returns 0 when nothing (more) is waiting, 1 when the server sent data or closed
 * the connection cleanly, or a negative GnuTLS error (GNUTLS_E_FATAL_ALERT_RECEIVED when the
 * server rejected us). */
int cm_tls_conn_post_read(struct cm_tls_conn *c);

/* Stops the session from using its socket: after this, describing it does no I/O and the
 * caller may close the fd. */
void cm_tls_conn_detach(struct cm_tls_conn *c);

/* Sends close_notify without waiting for the peer; best effort. */
void cm_tls_conn_bye(struct cm_tls_conn *c);

/* Fills *info from the session: negotiated parameters (if any) and, when chain is true, the
 * peer chain (whatever was received, even after a failed handshake), verification against
 * the trust anchors, verify_name and the TLS server purpose (extended key usage serverAuth),
 * and the trust anchor the chain leads to. Returns 0 or -ENOMEM. */
int cm_tls_conn_describe(struct cm_tls_conn *c, const char *verify_name, bool chain,
                         struct cm_tls_info *info);

/* Describes a GnuTLS handshake error for a human ("received alert: handshake failure (40)",
 * "peer does not speak TLS ..."), into buf. Also reports whether it is a transport-level
 * error (reset, closed) rather than a TLS protocol failure. */
void cm_tls_error_describe(struct cm_tls_conn *c, int gnutls_rc, char *buf, size_t len,
                           bool *is_io);

/* True when handshake error gnutls_rc means that the server and our client have no common
 * ground (a handshake_failure, protocol_version or insufficient_security alert, or a
 * ServerHello choosing a suite, version or group we did not offer or cannot accept), as
 * opposed to a broken connection, a peer that does not speak TLS or a refused client
 * certificate. Such a server may still accept something weaker (the posture pass says what). */
bool cm_tls_error_is_refusal(struct cm_tls_conn *c, int gnutls_rc);

#endif
