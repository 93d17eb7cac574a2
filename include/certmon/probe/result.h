/* The plain data the probe layer produces and the layers above read: a probe result with
 * its negotiated parameters, verification outcome, posture, revocation outcome and renewal
 * information, plus their free functions and names. No libuv, GnuTLS or libcurl type appears
 * here: the pure stages (analyze, report, metrics, alert, payload) include this header and
 * x509.h's certificate data, never the I/O modules' headers (.ci/check-layers checks it).
 *
 * Who fills what: probe.c and filecert.c build the result, posture.c the posture, revocation.c
 * the revocation outcome, ari.c the renewal information; every part is freed here, so no
 * module frees a struct that another builds. */
#ifndef CERTMON_RESULT_H
#define CERTMON_RESULT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "certmon/probe/dhgroup.h"
#include "certmon/probe/starttls.h"
#include "certmon/probe/x509.h"

/* ---- Handshake and verification ---- */

/* Why verification failed: certmon's own bits, one per GnuTLS certificate status bit that
 * certmon names (tlsio translates; a GnuTLS bit without a counterpart here becomes
 * CM_VERIFY_INVALID). The pure stages read these, never GnuTLS's. */
enum cm_verify_flag {
    CM_VERIFY_INVALID = 1u << 0, /* not trusted; alone: for no more specific reason */
    CM_VERIFY_REVOKED = 1u << 1,
    CM_VERIFY_SIGNER_NOT_FOUND = 1u << 2,
    CM_VERIFY_SIGNER_NOT_CA = 1u << 3,
    CM_VERIFY_INSECURE_ALGORITHM = 1u << 4,
    CM_VERIFY_NOT_ACTIVATED = 1u << 5,
    CM_VERIFY_EXPIRED = 1u << 6,
    CM_VERIFY_SIGNATURE_FAILURE = 1u << 7,
    CM_VERIFY_REVOCATION_DATA_SUPERSEDED = 1u << 8,
    CM_VERIFY_UNEXPECTED_OWNER = 1u << 9,
    CM_VERIFY_REVOCATION_DATA_ISSUED_IN_FUTURE = 1u << 10,
    CM_VERIFY_SIGNER_CONSTRAINTS_FAILURE = 1u << 11,
    CM_VERIFY_MISMATCH = 1u << 12,
    CM_VERIFY_PURPOSE_MISMATCH = 1u << 13,
    CM_VERIFY_MISSING_OCSP_STATUS = 1u << 14,
    CM_VERIFY_INVALID_OCSP_STATUS = 1u << 15,
    CM_VERIFY_UNKNOWN_CRIT_EXTENSIONS = 1u << 16,
};

/* What verification found, independent of the handshake outcome. */
struct cm_verify {
    bool done;           /* a certificate was received and verified */
    bool trusted;        /* chain leads to a trust anchor and every certificate is valid */
    bool hostname_match; /* the leaf matches the verified name */
    bool public_chain;   /* the chain leads to the system trust store, time aside (with a
                          * ca_file: when the context has the system store loaded too) */
    unsigned status;     /* CM_VERIFY_* bits (tlsio translates GnuTLS's status into them) */
};

/* What the server stapled (RFC 6066 status_request), as far as the response says. */
enum cm_ocsp_status {
    CM_OCSP_NONE = 0, /* nothing stapled */
    CM_OCSP_GOOD,
    CM_OCSP_REVOKED,
    CM_OCSP_UNKNOWN, /* the responder does not know the certificate */
    CM_OCSP_BAD,     /* a staple that cannot be parsed */
};

struct cm_ocsp {
    enum cm_ocsp_status status;
    bool verified;       /* GnuTLS checked the staple's signature and that it is for the leaf */
    int64_t this_update; /* Unix seconds; 0 when absent */
    int64_t next_update; /* Unix seconds; 0 when absent */
    int64_t revoked_at;  /* Unix seconds; 0 unless revoked */
};

/* What the handshake negotiated and showed; strings are owned by the struct. */
struct cm_tls_info {
    char *version; /* "TLS1.3"; NULL before negotiation */
    char *cipher;  /* IANA suite name, "TLS_AES_128_GCM_SHA256" */
    char *group;   /* key exchange group, "X25519"; NULL when none was used */
    struct cm_verify verify;
    struct cm_ocsp ocsp;
    unsigned dh_bits;           /* finite-field DH prime size, when DHE was negotiated */
    enum cm_dh_group dh_group;  /* and what its prime and generator are worth */
    bool safe_renegotiation;    /* RFC 5746 (always true under TLS 1.3) */
    bool client_cert_requested; /* the server asked for a client certificate */
    bool client_cert_sent;      /* and we presented one */
    struct cm_chain chain;      /* as the peer sent it */
    struct cm_chain anchor;     /* the trust anchor: the trust-store certificate that issued
                                 * the top of the issuing path from position 0 through the
                                 * sent certificates (cm_chain_path_top); 0 or 1 certificate,
                                 * possibly a copy of a sent root */
};

/* Frees what info holds and zeroes it. NULL is a no-op. */
void cm_tls_info_clear(struct cm_tls_info *info);
/* "good", "revoked", "unknown", "unparseable"; NULL for CM_OCSP_NONE. */
const char *cm_ocsp_status_name(enum cm_ocsp_status s);

/* Calls fn for the stable name of each verification problem in status ("expired",
 * "signer_not_found", ...). */
void cm_verify_status_foreach(unsigned status, void (*fn)(const char *name, void *arg), void *arg);

/* ---- Posture ---- */

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
 * cm_posture_free). */
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

/* Folds into p what another completed handshake with the same endpoint showed (the main
 * probe's): its version counts as accepted, and its key exchange, DH group and renegotiation
 * support count like those of the pass's own handshakes, so that the posture never
 * contradicts the main handshake. tls without a version (no handshake) changes nothing. */
void cm_posture_add_handshake(struct cm_posture *p, const struct cm_tls_info *tls);

/* Marks in p the weak classes (RC4, 3DES, NULL, EXPORT, anonymous) of the suite a completed
 * handshake negotiated, cipher being its IANA name ("TLS_RSA_WITH_RC4_128_MD5"): a completed
 * handshake is proof the server accepts it. NULL cipher changes nothing. */
void cm_posture_note_suite(struct cm_posture *p, const char *cipher);

/* True for the IANA name of an AEAD suite (GCM, CCM, ChaCha20-Poly1305). */
bool cm_suite_is_aead(const char *cipher);

/* The version named version ("TLS1.2"; TLS 1.0 to 1.3, the names cm_pv_name gives), or
 * CM_PV_COUNT for NULL or any other name. */
enum cm_pv cm_pv_from_name(const char *version);

/* A copy of pass (the posture pass as it ran) with the main handshake tls folded in
 * (cm_posture_add_handshake): what a target's result carries, so that `check` and the daemon
 * report a posture the same way. Returns NULL when out of memory (the caller reports the
 * target without a posture). The caller owns the copy (cm_posture_free). */
struct cm_posture *cm_posture_fold(const struct cm_posture *pass, const struct cm_tls_info *tls);

/* Frees a posture (a probe result owns its posture and frees it too). NULL is a no-op. */
void cm_posture_free(struct cm_posture *p);

/* "TLS1.3", "TLS1.2", "TLS1.1", "TLS1.0", "SSL3.0". */
const char *cm_pv_name(enum cm_pv v);

/* "RC4", "3DES", "NULL", "EXPORT", "ANON". */
const char *cm_weak_name(enum cm_weak w);

/* ---- Revocation ---- */

enum cm_rev_status {
    CM_REV_UNCHECKED = 0, /* not judged: a self-signed certificate (a trust anchor) */
    CM_REV_GOOD,          /* a valid, current source says not revoked */
    CM_REV_REVOKED,
    CM_REV_UNAVAILABLE, /* every source failed; errors say why */
    CM_REV_NONE,        /* the certificate publishes neither CRL nor OCSP */
};

enum cm_rev_source { CM_REV_SRC_NONE = 0, CM_REV_SRC_STAPLE, CM_REV_SRC_OCSP, CM_REV_SRC_CRL };

/* Reasons kept per certificate at most (one per source tried). */
#define CM_REV_MAX_ERRORS 8

struct cm_rev_cert {
    enum cm_rev_status status;
    enum cm_rev_source source;       /* what decided GOOD or REVOKED, else NONE */
    int64_t revoked_at;              /* Unix seconds, when REVOKED (0 when unknown) */
    const char *reason;              /* static RFC 5280 reason name ("keyCompromise"), or NULL */
    int64_t this_update;             /* of the deciding source (or of the stale CRL); 0 when none */
    int64_t next_update;             /* 0 when none */
    bool crl_stale;                  /* UNAVAILABLE and a verified CRL was available, but past its
                                      * nextUpdate */
    char *errors[CM_REV_MAX_ERRORS]; /* owned, one line each ("http://x/ca.crl: ...") */
    size_t error_count;
};

/* Revocation of a result's chain: certs[i] is about tls.chain.certs[i]. */
struct cm_revocation {
    struct cm_rev_cert *certs;
    size_t count;
};

void cm_revocation_free(struct cm_revocation *r);

/* "good", "revoked", "unavailable", "none"; NULL for UNCHECKED. */
const char *cm_rev_status_name(enum cm_rev_status s);
/* "staple", "ocsp", "crl"; NULL for NONE. */
const char *cm_rev_source_name(enum cm_rev_source s);

/* ---- ACME renewal information ---- */

/* What the renewal information said about one certificate. Plain data; free with
 * cm_ari_free. */
struct cm_ari {
    char *url;         /* where it was asked: {renewalInfo}/{cert_id}, or the configured
                        * source (ari_url or directory) when no such URL could be formed */
    char *cert_id;     /* the RFC 9773 certificate id, or NULL when it could not be formed */
    char *cert_sha256; /* SHA-256 (hex) of the leaf it belongs to, "" when unknown */
    bool has_window;   /* window_start/window_end are valid (then error is NULL) */
    int64_t window_start, window_end; /* suggestedWindow, Unix seconds, start <= end */
    char *explanation_url;            /* explanationURL as sent (attacker-controlled), or NULL */
    int64_t fetched_at;               /* Unix seconds of the answer (a cached one keeps its own) */
    int64_t next_poll;   /* Unix seconds before which the server is not asked again for this
                          * certificate (its Retry-After, bounded; see docs/configuration.md) */
    int64_t retry_after; /* the Retry-After the server sent, in seconds, or -1 */
    char *error;         /* why there is no window (HTTP error, bad JSON, ...), or NULL */
};

/* A deep copy of src (NULL gives NULL). Returns NULL when out of memory. */
struct cm_ari *cm_ari_copy(const struct cm_ari *src);

/* Frees an ARI record and what it holds. NULL is a no-op. */
void cm_ari_free(struct cm_ari *a);

/* ---- Keystores and key pairs (file targets, filecert.h) ---- */

/* What a file target's file is. */
enum cm_file_format {
    CM_FILE_CERTS = 0, /* PEM or DER certificates (and an endpoint: no file at all) */
    CM_FILE_PKCS12,    /* a PKCS#12 (.p12, .pfx) keystore */
    CM_FILE_JKS,       /* a Java KeyStore */
};

/* Whether a keystore's integrity (PKCS#12 MAC, JKS digest) was checked. */
enum cm_integrity {
    CM_INTEGRITY_NONE = 0,   /* not a keystore */
    CM_INTEGRITY_VERIFIED,   /* checked with the password, and it holds */
    CM_INTEGRITY_UNVERIFIED, /* JKS without a password: the digest needs it */
    CM_INTEGRITY_ABSENT,     /* a PKCS#12 file without a MAC */
    CM_INTEGRITY_FAILED,     /* JKS: the digest does not match (wrong password or altered) */
};

/* The private key paired with a file's first certificate, when there is one. */
enum cm_key_status {
    CM_KEY_NONE = 0,   /* no key paired */
    CM_KEY_MATCH,      /* the key's public key is the certificate's */
    CM_KEY_MISMATCH,   /* it is not */
    CM_KEY_UNREADABLE, /* the key could not be read or decrypted (error says why) */
};

struct cm_key_check {
    enum cm_key_status status;
    char *path;        /* the key's file (the result's own for a combined file); owned */
    const char *type;  /* static key type ("RSA", "EC", "Ed25519"), NULL unless read */
    char *spki_sha256; /* SHA-256 of the key's public key (hex), NULL unless read; owned */
    char *error;       /* CM_KEY_UNREADABLE: why, one line; owned */
};

/* What a file target's file held besides certificates; all zero for endpoints. */
struct cm_file_info {
    enum cm_file_format format;
    enum cm_integrity integrity;
    struct cm_key_check key;
};

/* Frees what info holds and zeroes it. */
void cm_file_info_clear(struct cm_file_info *info);

/* "certificates", "pkcs12", "jks". */
const char *cm_file_format_name(enum cm_file_format f);
/* "verified", "unverified", "absent", "failed"; NULL for NONE. */
const char *cm_integrity_name(enum cm_integrity i);
/* "match", "mismatch", "unreadable"; NULL for NONE. */
const char *cm_key_status_name(enum cm_key_status s);

/* ---- The result ---- */

enum cm_err_kind {
    CM_ERRK_NONE = 0,
    CM_ERRK_DNS,       /* name resolution failed */
    CM_ERRK_CONNECT,   /* every address refused or was unreachable */
    CM_ERRK_TIMEOUT,   /* the deadline passed; error_phase says during what */
    CM_ERRK_STARTTLS,  /* plaintext preamble failed (reserved for STARTTLS) */
    CM_ERRK_TLS,       /* the handshake failed: alert, protocol error, no common ground */
    CM_ERRK_IO,        /* the connection broke: reset, closed, socket error */
    CM_ERRK_CANCELLED, /* cm_probe_cancel */
    CM_ERRK_INTERNAL,  /* certmon itself failed (out of memory, out of file descriptors) */
    CM_ERRK_FILE,      /* file target: the file cannot be read or holds no certificate */
};

enum cm_phase {
    CM_PHASE_DNS = 0,
    CM_PHASE_CONNECT,
    CM_PHASE_STARTTLS,
    CM_PHASE_HANDSHAKE,
    CM_PHASE_DONE,
    CM_PHASE_DESCRIBE, /* parsing and verifying the chain after the handshake */
};

/* Everything one probe saw. Plain data; whoever receives it owns it. */
struct cm_probe_result {
    char *target; /* display name, "host:port" */
    char *host;
    uint16_t port;
    char *sni;                      /* name sent, or NULL */
    char *verify_name;              /* name the leaf was checked against */
    char address[INET6_ADDRSTRLEN]; /* address of the last connection attempt, or "" */

    enum cm_err_kind error_kind;
    enum cm_phase error_phase; /* phase in which the error happened */
    char *error_message;       /* NULL when error_kind is NONE */
    bool tls_refused;          /* error_kind TLS, and the server refused every version or suite
                                * offered (cm_tls_error_is_refusal): what it does accept is
                                * for the posture pass to find */

    enum cm_starttls_proto starttls; /* preamble used, or CM_STARTTLS_NONE */

    /* Milliseconds spent in each phase; negative when the phase was not reached. */
    double dns_ms, connect_ms, starttls_ms, handshake_ms, total_ms;

    struct cm_tls_info tls;           /* negotiated parameters, chain and verification */
    struct cm_chain client_chain;     /* our mTLS certificate (empty without one) */
    int64_t finished_at;              /* Unix seconds when the result was produced */
    struct cm_posture *posture;       /* the posture pass (below), owned; NULL when not run.
                                       * The probe never sets it: whoever runs the pass does. */
    struct cm_ari *ari;               /* ACME renewal information for the leaf (below), owned;
                                       * NULL when not asked. Set, like posture, by the caller. */
    char *path;                       /* file targets (filecert.h): the file read, owned; NULL for
                                       * endpoints. Such a result has host NULL, port 0, no TLS
                                       * parameters and no verification: tls.chain holds the
                                       * certificates in file order, analysed one by one. */
    struct cm_revocation *revocation; /* below, owned; NULL when not checked. The
                                       * probe never sets it: the revocation checker does. */
    struct cm_change *change;         /* below, owned; NULL unless the served leaf changed
                                       * materially within the change window. Set by the
                                       * daemon, which remembers the previous leaf. */
    struct cm_file_info file;         /* file targets: keystore format and integrity, and
                                       * the paired key (above); zero for endpoints */
    struct cm_deploy *deploy;         /* below, owned; NULL unless the target names an
                                       * expect_file and the daemon has read it. Set by the
                                       * daemon. */
    struct cm_pin_miss *pin_miss;     /* below, owned; NULL unless the target pins on first use
                                       * (pin = "tofu") and the served leaf is neither the
                                       * pinned one nor a renewal of it. Set by the daemon,
                                       * which holds the pin. */
};

/* pin = "tofu": the leaf pinned on first use that the served leaf does not match, for the
 * analyser (cert.pin_mismatch). Plain data; strings owned. */
struct cm_pin_miss {
    int64_t pinned_at; /* when it was pinned (or the pin last moved), Unix seconds */
    char *sha256;      /* the pinned leaf's SHA-256 */
    char *spki_sha256; /* its public key's SHA-256, or "" when not known */
};

/* Frees a pin record. NULL is a no-op. */
void cm_pin_miss_free(struct cm_pin_miss *p);

/* expect_file: what the certificate file that should be served holds, for the analyser
 * (deploy.stale, deploy.file_unreadable). Plain data; strings owned. */
struct cm_deploy {
    char *path;          /* the expect_file */
    char *error;         /* why it cannot be used (missing, unreadable, no certificate), or
                          * NULL; then cert is empty */
    struct cm_cert cert; /* its first certificate (without its encoding) */
    int64_t newer_since; /* since when (Unix seconds) the file has held a newer certificate for
                          * the served leaf's names than the served leaf (the daemon watches
                          * it, cm_deploy_newer); 0: it does not */
    int64_t grace_s;     /* deploy_grace: deploy.stale once newer_since is this old */
};

/* Frees a deploy record. NULL is a no-op. */
void cm_deploy_free(struct cm_deploy *d);

/* A deep copy of d, or NULL (out of memory). */
struct cm_deploy *cm_deploy_copy(const struct cm_deploy *d);

/* A material change of the served leaf, for the analyser (cert.changed): plain data, so
 * that the analysis needs no memory of earlier results. Strings owned. */
struct cm_change {
    int64_t at;       /* when the new leaf was first seen (Unix seconds) */
    int64_t until;    /* cert.changed is raised while now < until */
    char *what;       /* what changed (change.h's description) */
    char *old_sha256; /* the leaf served before */
    char *new_sha256; /* the leaf served since */
};

/* Frees a change record. NULL is a no-op. */
void cm_change_free(struct cm_change *c);

/* A copy of c, or NULL (out of memory). */
struct cm_change *cm_change_copy(const struct cm_change *c);

/* Frees a result and everything it owns (posture, revocation, renewal information). NULL is a
 * no-op. */
void cm_probe_result_free(struct cm_probe_result *res);

/* "dns", "connect", "timeout", "starttls", "tls", "io", "cancelled", "internal"; NULL for
 * NONE. */
const char *cm_err_kind_name(enum cm_err_kind k);

/* "dns", "connect", "starttls", "handshake", "done", "describe". */
const char *cm_phase_name(enum cm_phase p);

#endif
