/* Plaintext STARTTLS preambles as pure state machines: SMTP, IMAP, POP3, FTP, LDAP,
 * PostgreSQL, MySQL and XMPP.
 *
 * This module does no I/O, keeps no clock and never calls back. The caller (probe) owns the
 * socket: it sends what cm_starttls_output() holds, reports what was written with
 * cm_starttls_sent(), feeds what it reads to cm_starttls_input(), and starts the TLS handshake
 * on the same socket once the machine says DONE and its output is fully sent. Deadlines are
 * the caller's too.
 *
 * Every machine is strict in the way RFC 3207 section 4 asks: the server's go-ahead must be
 * the last thing it sends in plaintext. Bytes after it (in the same read or a later one) are
 * an error, because a client that kept them would treat injected plaintext as if it had come
 * over TLS. The same holds between steps: a server reply followed by more bytes before the
 * client's next message fails the preamble. Everything the server sends is bounded (see the
 * limits below) and every message built from server text is sanitised: printable ASCII only,
 * at most CM_STARTTLS_SHOWN characters of it. */
#ifndef CERTMON_STARTTLS_H
#define CERTMON_STARTTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cm_starttls_proto {
    CM_STARTTLS_NONE = 0,
    CM_STARTTLS_SMTP,     /* RFC 3207: EHLO, STARTTLS */
    CM_STARTTLS_IMAP,     /* RFC 3501 section 6.2.1: a001 STARTTLS */
    CM_STARTTLS_POP3,     /* RFC 2595 section 4: STLS */
    CM_STARTTLS_FTP,      /* RFC 4217 section 4: AUTH TLS */
    CM_STARTTLS_LDAP,     /* RFC 4511 section 4.14: StartTLS extended operation */
    CM_STARTTLS_POSTGRES, /* PostgreSQL frontend/backend protocol: SSLRequest */
    CM_STARTTLS_MYSQL,    /* MySQL client/server protocol: SSLRequest */
    CM_STARTTLS_XMPP,     /* RFC 6120 section 5: <starttls/> on a client-to-server stream */
};

/* What cm_starttls_input() returns besides negative error codes. */
enum {
    CM_STARTTLS_MORE = 0, /* keep going: send the output if any, then read */
    CM_STARTTLS_DONE = 1, /* the server agreed: start TLS once the output is fully sent */
};

/* Total bytes a server may send during one preamble (every step counted together). */
#define CM_STARTTLS_MAX_INPUT 16384
/* Longest line, terminator included, that the line-based protocols accept. */
#define CM_STARTTLS_MAX_LINE 4096
/* Most characters of server text quoted in an error message ("..." marks a cut). */
#define CM_STARTTLS_SHOWN 120
/* The name the client gives in SMTP EHLO: a reserved name (RFC 2606) that claims nothing. */
#define CM_STARTTLS_CLIENT_NAME "certmon.invalid"

/* Returns the protocol's name as configuration spells it ("smtp", "imap", "pop3", "ftp",
 * "ldap", "postgres", "mysql", "xmpp"; the names openssl s_client -starttls uses), or NULL
 * for CM_STARTTLS_NONE and values outside the enum. */
const char *cm_starttls_name(enum cm_starttls_proto p);

/* Parses a protocol name, case-insensitively: one of the names above or "none". Returns 0
 * with *out set, or CM_EBADARG (name NULL or unknown) leaving *out untouched. */
int cm_starttls_parse(const char *name, enum cm_starttls_proto *out);

/* The protocol a port conventionally speaks with STARTTLS: 25 and 587 SMTP, 143 IMAP, 110 POP3,
 * 21 FTP, 389 LDAP, 5432 PostgreSQL, 3306 MySQL, 5222 XMPP; CM_STARTTLS_NONE for any other
 * port (implicit-TLS ports such as 465, 993, 995 and 636 included). */
enum cm_starttls_proto cm_starttls_for_port(uint16_t port);

/* One preamble on one connection. */
struct cm_starttls;

/* Creates a machine for protocol p. host is used by XMPP only, as the 'to' domain of the
 * stream header (XML-escaped; at most 255 bytes, no control characters); the other protocols
 * ignore it and accept NULL. SMTP's EHLO always names CM_STARTTLS_CLIENT_NAME. For protocols
 * where the client speaks first (LDAP, PostgreSQL, XMPP) the first message is queued at once:
 * send it before reading. Returns 0 with *out set (free with cm_starttls_free), CM_EBADARG (p
 * is NONE or unknown, XMPP without a usable host, out NULL) or -ENOMEM. */
int cm_starttls_new(enum cm_starttls_proto p, const char *host, struct cm_starttls **out);

/* Frees the machine. NULL is a no-op. */
void cm_starttls_free(struct cm_starttls *st);

/* Bytes the machine wants sent now, and their number in *len; NULL with *len 0 when there are
 * none (always so after a failure). The pointer is valid until the next call on st. */
const unsigned char *cm_starttls_output(struct cm_starttls *st, size_t *len);

/* Records that the first n bytes of the output were written; the rest stays pending. n larger
 * than what is pending counts as all of it. */
void cm_starttls_sent(struct cm_starttls *st, size_t n);

/* Feeds len bytes received from the server (data may be NULL when len is 0, which changes
 * nothing and returns the current state). Returns CM_STARTTLS_MORE, CM_STARTTLS_DONE, or a
 * negative code with a message from cm_starttls_error() that names the protocol, the step and
 * what the server said:
 *   CM_ESTARTTLS_REFUSED  the server understood and declined, or cannot do TLS: a refusing
 *                         greeting or reply, no STARTTLS capability, PostgreSQL 'N', MySQL
 *                         without CLIENT_SSL, an LDAP resultCode other than success, an XMPP
 *                         <failure/> or stream error;
 *   CM_ESTARTTLS_PROTO    the answer does not fit the protocol: garbage, another protocol
 *                         (TLS records get a hint about implicit-TLS ports), malformed
 *                         encodings, more than the limits allow, data after a complete reply
 *                         (in particular after the go-ahead), or data received while output
 *                         was still pending (the caller must send, then read).
 * CM_EBADARG when st is NULL or data is NULL with len > 0. A failure is final: later calls
 * return the same code and change nothing. Input after DONE is the "data after the answer"
 * failure. */
int cm_starttls_input(struct cm_starttls *st, const void *data, size_t len);

/* Reports that the server closed the connection (a read returned end of file). Returns
 * CM_ESTARTTLS with a message naming the step and what the server had sent of its unfinished
 * reply, or the earlier failure's code when the machine had already failed. After DONE the
 * close is a failure too: TLS can no longer start. */
int cm_starttls_eof(struct cm_starttls *st);

/* True once the server's go-ahead was accepted (DONE), output possibly still pending; false
 * before and after a failure. For MySQL, where TLS starts right after the client's SSLRequest
 * with no server answer, DONE comes with the input that carried the server's handshake and
 * the SSLRequest is the pending output. */
bool cm_starttls_done(const struct cm_starttls *st);

/* The failure's message ("SMTP EHLO: server does not offer STARTTLS (...)"), or NULL while
 * the machine has not failed. Owned by st, valid until cm_starttls_free. */
const char *cm_starttls_error(const struct cm_starttls *st);

#endif
