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

/* Protocol versions, newest first (the order of the JSON list). */
enum cm_pv { CM_PV_TLS13 = 0, CM_PV_TLS12, CM_PV_TLS11, CM_PV_TLS10, CM_PV_SSL30, CM_PV_COUNT };

/* Weak cipher classes. */
enum cm_weak {
    CM_WEAK_RC4 = 0, /* RC4 stream cipher */
    CM_WEAK_3DES,    /* triple DES (64-bit blocks: Sweet32) */
    CM_WEAK_NULL,    /* no encryption at all */
    CM_WEAK_EXPORT,  /* 40- and 56-bit export suites (FREAK, Logjam) */
    CM_WEAK_ANON,    /* anonymous (EC)DH: no server authentication */
    CM_WEAK_COUNT
};

/* The outcome of one check. A check that could not run (connection refused or timed out,
 * STARTTLS preamble failed, out of memory) is UNKNOWN, never NO. */
enum cm_tri { CM_TRI_UNKNOWN = 0, CM_TRI_NO, CM_TRI_YES };

/* What the posture pass found. Plain data; whoever receives it owns it (free with
 * cm_posture_free, or free()). */
struct cm_posture {
    enum cm_tri version[CM_PV_COUNT]; /* YES: the server completed a handshake at that version
                                       * (SSL 3.0: answered our SSL 3.0 ClientHello) */
    enum cm_tri weak[CM_WEAK_COUNT];  /* YES: the server chose a suite of that class */
    enum cm_tri forward_secrecy;      /* YES: TLS 1.3 or an (EC)DHE key exchange was accepted;
                                       * NO: only static-RSA key exchange */
    enum cm_tri dhe;                  /* a DHE-only handshake (TLS 1.2 and older) succeeded */
    unsigned dh_bits;                 /* the server's finite-field DH prime in that handshake,
                                       * when the client offers no named group; 0 if none */
    enum cm_dh_group dh_group;        /* the worst DH group of any handshake (dhgroup.h) */
    enum cm_tri aead;                 /* YES: a handshake negotiated an AEAD suite (TLS 1.3
                                       * always does); NO: an AEAD-only TLS 1.2 handshake was
                                       * refused and TLS 1.3 too */
    enum cm_tri secure_renegotiation; /* NO: a TLS 1.2-or-older handshake lacked RFC 5746 */
    unsigned handshakes;              /* connections made */
    double elapsed_ms;                /* from cm_posture_start to the result */
};

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

/* Folds into p what another completed handshake with the same endpoint showed (the main
 * probe's): its version counts as accepted, and its key exchange, DH group and renegotiation
 * support count like those of the pass's own handshakes, so that the posture never
 * contradicts the main handshake. tls without a version (no handshake) changes nothing. */
void cm_posture_add_handshake(struct cm_posture *p, const struct cm_tls_info *tls);

/* Frees a result (a probe result owns its posture and frees it too). NULL is a no-op. */
void cm_posture_free(struct cm_posture *p);

/* "TLS1.3", "TLS1.2", "TLS1.1", "TLS1.0", "SSL3.0". */
const char *cm_pv_name(enum cm_pv v);

/* "RC4", "3DES", "NULL", "EXPORT", "ANON". */
const char *cm_weak_name(enum cm_weak w);

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
