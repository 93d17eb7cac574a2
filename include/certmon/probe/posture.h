/* The posture pass: which protocol versions and weak cipher classes one endpoint accepts,
 * whether it offers forward secrecy, how large its finite-field DH group is and whether it
 * supports secure renegotiation. A handful of short extra handshakes against one address, all
 * at once on the loop under one deadline: GnuTLS handshakes (through the probe, with a
 * priority string each and handshake_only) for what GnuTLS can speak, and hand-built
 * ClientHellos on a non-blocking socket for SSL 3.0 and the export suites, which it cannot.
 * The result is plain data and says, for every check, whether it could run at all. */
#ifndef CERTMON_POSTURE_H
#define CERTMON_POSTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "certmon/probe/probe.h"
#include "certmon/probe/target.h"

/* At most this many connections per pass: 11 at once, then one more (ECDHE and DHE only) when
 * those 11 show no forward secrecy, to tell "only static RSA" from "prefers static RSA", and
 * one more (AEAD suites only) when none negotiated an AEAD suite and TLS 1.3 was refused, to
 * tell "no AEAD suite" from "prefers CBC". */
#define CM_POSTURE_MAX_HANDSHAKES 13

/* Called exactly once per started pass, from a loop callback; p belongs to the callee. */
typedef void (*cm_posture_cb)(struct cm_posture *p, void *arg);

/* A running pass. It has no operations: it ends by itself, at the latest at its deadline. */
struct cm_posture_pass;

/* Starts the posture pass against address (an IPv4 or IPv6 literal, copied) for target t
 * (borrowed, with env's members; all outlive the pass): t's port, SNI, STARTTLS preamble and
 * client certificate are used; its priority and handshake_only are not. Every connection of
 * the pass ends within timeout_ms of this call. On success cb runs exactly once, always from
 * a later loop callback; on error (-ENOMEM, -EINVAL for an address that is not a literal) cb
 * never runs. *out may be NULL. The SSL 3.0 and export checks need a direct TLS connection:
 * for a STARTTLS target they are UNKNOWN. */
int cm_posture_start(const struct cm_probe_env *env, const struct cm_target *t, const char *address,
                     uint64_t timeout_ms, cm_posture_cb cb, void *arg,
                     struct cm_posture_pass **out);

/* Cancels a pass that has not delivered: its connections are abandoned and cb still runs
 * exactly once (possibly before this returns), with what was learnt so far. NULL, or a pass
 * that has delivered, is a no-op: keep the handle only until cb runs. */
void cm_posture_cancel(struct cm_posture_pass *ps);

/* Asks a pass that has just started (before its first loop callback) to keep the first
 * certificate chain one of its handshakes receives, verified against the target's
 * verify_name as the main probe does: for an endpoint whose main handshake failed, so that
 * its chain is still reported. Each handshake then describes its chain (on the thread pool).
 * NULL, or a pass already running, is a no-op. */
void cm_posture_keep_chain(struct cm_posture_pass *ps);

/* From inside the pass's cb only: when res has no chain and the pass kept one, moves that
 * chain with its verification and OCSP staple into res->tls (version, cipher and the rest
 * stay res's own). Otherwise (or for a NULL ps) changes nothing. */
void cm_posture_adopt_chain(struct cm_posture_pass *ps, struct cm_probe_result *res);

/* ---- Hand-built hellos (pure; exposed for tests) ---- */

enum cm_hello_kind {
    CM_HELLO_SSL3,   /* client_version SSL 3.0, every SSL 3.0 suite (export ones included) */
    CM_HELLO_EXPORT, /* client_version TLS 1.0, export suites only */
};

/* Writes the ClientHello record of that kind into buf (cap bytes), with the 32 bytes of
 * random given and, when sni is not NULL, a server_name extension. Returns the length, or 0
 * when buf is too small or sni too long. */
size_t cm_hello_build(enum cm_hello_kind kind, const char *sni, const uint8_t random[32],
                      uint8_t *buf, size_t cap);

/* True when suite is among those the hello of that kind offers. */
bool cm_hello_offers(enum cm_hello_kind kind, uint16_t suite);

/* The weak class of a cipher suite number, or -1 for none (or unknown). */
int cm_suite_weak_class(uint16_t suite);

struct cm_server_reply {
    bool alert;       /* the server answered with an alert (refusal) */
    uint8_t level;    /* alert level, when alert */
    uint8_t desc;     /* alert description, when alert */
    uint16_t version; /* ServerHello server_version, when !alert */
    uint16_t suite;   /* ServerHello cipher_suite, when !alert */
};

enum {
    CM_REPLY_MORE = 0, /* not enough bytes yet */
    CM_REPLY_DONE = 1, /* *out holds the ServerHello or the alert */
    CM_REPLY_BAD = -1, /* not an SSL 3.0/TLS answer: SSLv2, plain text, garbage */
};

/* Parses the first bytes a server sent in answer to a hand-built hello (the ServerHello may
 * span records, and only its first fields are needed). Returns CM_REPLY_MORE, CM_REPLY_DONE or
 * CM_REPLY_BAD. */
int cm_server_reply_parse(const uint8_t *buf, size_t len, struct cm_server_reply *out);

#endif
