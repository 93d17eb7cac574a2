/* STARTTLS preambles as pure state machines (contract in include/certmon/probe/starttls.h).
 *
 * Every byte the server sends stays in st->in (at most CM_STARTTLS_MAX_INPUT in all), so no
 * parser ever copies or compacts: st->start is where the reply being read began, st->pos how
 * far it has been consumed. A reply is acted on only when it is complete; any byte after it
 * is then an error (see trailing()), which is what keeps pipelined or injected plaintext out
 * of the TLS session. */
#include "certmon/probe/starttls.h"
#include "certmon/base/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longest XMPP host accepted: a DNS name's limit. Escaped (6 bytes per character at worst)
 * inside the stream header it stays well below OUT_MAX. */
#define XMPP_HOST_MAX 255
#define OUT_MAX 2048
/* A sanitised quote: CM_STARTTLS_SHOWN characters, "..." and the terminator. */
#define TEXT_SIZE (CM_STARTTLS_SHOWN + 4)
#define ERR_SIZE 640

#define XMPP_TLS_NS "urn:ietf:params:xml:ns:xmpp-tls"
#define XMPP_HEADER_START "<?xml version='1.0'?><stream:stream to='"
#define XMPP_HEADER_END                                                                            \
    "' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"

enum step {
    S_SMTP_GREETING,
    S_SMTP_EHLO,
    S_SMTP_STARTTLS,
    S_IMAP_GREETING,
    S_IMAP_STARTTLS,
    S_POP3_GREETING,
    S_POP3_STLS,
    S_FTP_GREETING,
    S_FTP_AUTH,
    S_LDAP_STARTTLS,
    S_PG_SSLREQUEST,
    S_MYSQL_HANDSHAKE,
    S_XMPP_FEATURES,
    S_XMPP_PROCEED,
};

struct cm_starttls {
    enum cm_starttls_proto proto;
    enum step step;
    int status;              /* CM_STARTTLS_MORE, CM_STARTTLS_DONE or the failure's code */
    size_t out_off, out_len; /* out[out_off, out_len) is pending */
    size_t in_len;           /* bytes received so far, all kept in in[] */
    size_t start;            /* where the reply being read began */
    size_t pos;              /* how far it has been consumed (whole lines, for line protocols) */
    int code;                /* SMTP, FTP: code of the multi-line reply being read */
    unsigned lines;          /* lines of the reply being read */
    bool offered;            /* SMTP: the EHLO reply listed STARTTLS */
    char first[TEXT_SIZE];   /* sanitised first line of the reply being read */
    char caps[TEXT_SIZE];    /* SMTP: the EHLO keywords, for "does not offer STARTTLS" */
    char err[ERR_SIZE];
    unsigned char out[OUT_MAX];
    unsigned char in[CM_STARTTLS_MAX_INPUT];
};

/* RFC 4511 section 4.14.1: the StartTLS ExtendedRequest as messageID 1, without controls.
 *   30 1d     LDAPMessage: SEQUENCE, 29 octets
 *   02 01 01    messageID: INTEGER 1
 *   77 18       protocolOp: [APPLICATION 23] ExtendedRequest (constructed), 24 octets
 *   80 16         requestName: [0] LDAPOID (primitive), 22 octets: "1.3.6.1.4.1.1466.20037"
 * requestValue ([1]) is absent, as section 4.14.1 requires, and so are controls. These are the
 * 31 bytes openssl s_client -starttls ldap sends. */
static const unsigned char ldap_starttls[] = {
    0x30, 0x1d, 0x02, 0x01, 0x01, 0x77, 0x18, 0x80, 0x16, '1', '.', '3', '.', '6', '.', '1',
    '.',  '4',  '.',  '1',  '.',  '1',  '4',  '6',  '6',  '.', '2', '0', '0', '3', '7',
};

/* PostgreSQL SSLRequest: Int32 length 8, then Int32 80877103 (1234 << 16 | 5679), big-endian. */
static const unsigned char pg_sslrequest[] = {0x00, 0x00, 0x00, 0x08, 0x04, 0xd2, 0x16, 0x2f};

/* MySQL capability flags (include/mysql_com.h). */
#define MYSQL_CLIENT_PROTOCOL_41 0x00000200u
#define MYSQL_CLIENT_SSL 0x00000800u
#define MYSQL_CLIENT_SECURE_CONNECTION 0x00008000u
#define MYSQL_HANDSHAKE_V10 10
#define MYSQL_ERR_PACKET 0xff
#define MYSQL_CHARSET_UTF8 0x21 /* utf8_general_ci */
#define MYSQL_MAX_PACKET 0x01000000u

static const char *label(enum cm_starttls_proto p)
{
    switch (p) {
    case CM_STARTTLS_SMTP:
        return "SMTP";
    case CM_STARTTLS_IMAP:
        return "IMAP";
    case CM_STARTTLS_POP3:
        return "POP3";
    case CM_STARTTLS_FTP:
        return "FTP";
    case CM_STARTTLS_LDAP:
        return "LDAP";
    case CM_STARTTLS_POSTGRES:
        return "PostgreSQL";
    case CM_STARTTLS_MYSQL:
        return "MySQL";
    case CM_STARTTLS_XMPP:
        return "XMPP";
    case CM_STARTTLS_NONE:
        break;
    }
    return "?";
}

static const char *step_name(enum step s)
{
    switch (s) {
    case S_SMTP_GREETING:
    case S_IMAP_GREETING:
    case S_POP3_GREETING:
    case S_FTP_GREETING:
        return "greeting";
    case S_SMTP_EHLO:
        return "EHLO";
    case S_SMTP_STARTTLS:
    case S_IMAP_STARTTLS:
        return "STARTTLS";
    case S_POP3_STLS:
        return "STLS";
    case S_FTP_AUTH:
        return "AUTH TLS";
    case S_LDAP_STARTTLS:
        return "StartTLS";
    case S_PG_SSLREQUEST:
        return "SSLRequest";
    case S_MYSQL_HANDSHAKE:
        return "handshake";
    case S_XMPP_FEATURES:
        return "stream features";
    case S_XMPP_PROCEED:
        return "starttls";
    }
    return "?";
}

/* ---- Names and ports ---- */

static const char *const names[] = {
    [CM_STARTTLS_SMTP] = "smtp",   [CM_STARTTLS_IMAP] = "imap", [CM_STARTTLS_POP3] = "pop3",
    [CM_STARTTLS_FTP] = "ftp",     [CM_STARTTLS_LDAP] = "ldap", [CM_STARTTLS_POSTGRES] = "postgres",
    [CM_STARTTLS_MYSQL] = "mysql", [CM_STARTTLS_XMPP] = "xmpp",
};

const char *cm_starttls_name(enum cm_starttls_proto p)
{
    if ((unsigned)p >= sizeof(names) / sizeof(names[0]))
        return NULL;
    return names[p]; /* NULL for CM_STARTTLS_NONE */
}

int cm_starttls_parse(const char *name, enum cm_starttls_proto *out)
{
    if (name == NULL || out == NULL)
        return CM_EBADARG;
    if (strcasecmp(name, "none") == 0) {
        *out = CM_STARTTLS_NONE;
        return 0;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (names[i] && strcasecmp(name, names[i]) == 0) {
            *out = (enum cm_starttls_proto)i;
            return 0;
        }
    }
    return CM_EBADARG;
}

enum cm_starttls_proto cm_starttls_for_port(uint16_t port)
{
    switch (port) {
    case 25:
    case 587:
        return CM_STARTTLS_SMTP;
    case 143:
        return CM_STARTTLS_IMAP;
    case 110:
        return CM_STARTTLS_POP3;
    case 21:
        return CM_STARTTLS_FTP;
    case 389:
        return CM_STARTTLS_LDAP;
    case 5432:
        return CM_STARTTLS_POSTGRES;
    case 3306:
        return CM_STARTTLS_MYSQL;
    case 5222:
        return CM_STARTTLS_XMPP;
    default:
        return CM_STARTTLS_NONE;
    }
}

/* ---- Helpers ---- */

/* Writes len bytes as printable ASCII into dst (TEXT_SIZE bytes): backslash escapes for quotes,
 * backslashes, CR, LF, tab and every other byte outside 0x20-0x7e; at most CM_STARTTLS_SHOWN
 * characters, then "..." when something was left out. */
static void show(char dst[TEXT_SIZE], const void *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = data;
    size_t o = 0, i;

    for (i = 0; i < len; i++) {
        char piece[4];
        size_t n = 2;
        unsigned char c = p[i];

        piece[0] = '\\';
        if (c == '\\' || c == '"') {
            piece[1] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            piece[0] = (char)c;
            n = 1;
        } else if (c == '\r') {
            piece[1] = 'r';
        } else if (c == '\n') {
            piece[1] = 'n';
        } else if (c == '\t') {
            piece[1] = 't';
        } else {
            piece[1] = 'x';
            piece[2] = hex[c >> 4];
            piece[3] = hex[c & 15];
            n = 4;
        }
        if (o + n > CM_STARTTLS_SHOWN)
            break;
        memcpy(dst + o, piece, n);
        o += n;
    }
    if (i < len) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
}

static int fail(struct cm_starttls *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Makes the machine fail for good: the message gets the "PROTO step: " prefix, pending output
 * is dropped (nothing more may be sent) and every later call returns code. */
static int fail(struct cm_starttls *st, int code, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(st->err, sizeof(st->err), "%s %s: ", label(st->proto), step_name(st->step));

    va_start(ap, fmt);
    vsnprintf(st->err + n, sizeof(st->err) - (size_t)n, fmt, ap);
    va_end(ap);
    st->status = code;
    st->out_off = st->out_len = 0;
    return code;
}

static bool is_tls_record(const unsigned char *p, size_t len)
{
    /* Alert (21) or handshake (22) record, major version 3: a server that wants TLS at once. */
    return len >= 2 && (p[0] == 0x15 || p[0] == 0x16) && p[1] == 0x03;
}

/* The server sent something this step cannot make sense of, starting at p and running to the
 * end of what was received. */
static int unexpected(struct cm_starttls *st, const unsigned char *p)
{
    char text[TEXT_SIZE];
    size_t len = (size_t)(st->in + st->in_len - p);

    show(text, p, len);
    return fail(st, CM_ESTARTTLS_PROTO, "unexpected answer \"%s\"%s", text,
                is_tls_record(p, len)
                    ? " (a TLS record: does this port expect TLS from the first byte?)"
                    : "");
}

static void queue(struct cm_starttls *st, const void *data, size_t len)
{
    /* Callers queue only between replies, when nothing is pending (input while output is
     * pending fails), and every message fits OUT_MAX by construction. */
    memcpy(st->out + st->out_len, data, len);
    st->out_len += len;
}

/* The reply to the current step is complete and consumed: moves to step next and queues the
 * client's next message. */
static void advance(struct cm_starttls *st, enum step next, const char *msg)
{
    st->step = next;
    st->start = st->pos;
    st->lines = 0;
    st->code = 0;
    queue(st, msg, strlen(msg));
}

/* Called once a reply is complete. Bytes after it arrived before the client said anything
 * more, so no honest server sent them in answer to us: after the go-ahead they would be
 * taken for data protected by TLS (RFC 3207 section 4), before it they are a pipelined
 * answer to a question not yet asked. Returns true when it failed the machine. */
static bool trailing(struct cm_starttls *st)
{
    char text[TEXT_SIZE];

    if (st->pos == st->in_len)
        return false;
    show(text, st->in + st->pos, st->in_len - st->pos);
    if (st->status == CM_STARTTLS_DONE)
        fail(st, CM_ESTARTTLS_PROTO,
             "server sent data after its STARTTLS answer (possible injection): \"%s\"", text);
    else
        fail(st, CM_ESTARTTLS_PROTO,
             "server sent more than its reply before the client's next message: \"%s\"", text);
    return true;
}

static int done(struct cm_starttls *st)
{
    st->status = CM_STARTTLS_DONE;
    trailing(st);
    return st->status;
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* ASCII case-insensitive comparison of n bytes; p may hold NULs. */
static bool same_ci(const unsigned char *p, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower(p[i]) != lower((unsigned char)s[i]))
            return false;
    return true;
}

/* True when the line is word alone or word followed by a space (case-insensitive). */
static bool word_at(const unsigned char *line, size_t len, const char *word)
{
    size_t n = strlen(word);

    return len >= n && same_ci(line, word, n) && (len == n || line[n] == ' ');
}

/* True when the len bytes received of an unfinished line could still begin with s. */
static bool could_be(const unsigned char *p, size_t len, const char *s)
{
    size_t n = strlen(s);

    return same_ci(p, s, len < n ? len : n);
}

static bool digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Parses an SMTP or FTP reply line: "DDD", "DDD text" (last line) or "DDD-text". */
static bool reply_code(const unsigned char *p, size_t len, int *code, bool *last)
{
    if (len < 3 || p[0] < '1' || p[0] > '5' || !digit(p[1]) || !digit(p[2]))
        return false;
    if (len > 3 && p[3] != ' ' && p[3] != '-')
        return false;
    *code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    *last = len == 3 || p[3] == ' ';
    return true;
}

/* True when an unfinished line could still become a reply line. */
static bool could_be_reply(const unsigned char *p, size_t len)
{
    if (len >= 1 && (p[0] < '1' || p[0] > '5'))
        return false;
    for (size_t i = 1; i < 3 && i < len; i++)
        if (!digit(p[i]))
            return false;
    return len < 4 || p[3] == ' ' || p[3] == '-' || p[3] == '\r';
}

/* ---- Line-based protocols: SMTP, IMAP, POP3, FTP ---- */

/* Handles one complete line (without its CRLF or LF); returns the machine's status. */
typedef int (*line_fn)(struct cm_starttls *st, const unsigned char *line, size_t len);
/* True when an unfinished line (len >= 1) could still be acceptable. */
typedef bool (*partial_fn)(const struct cm_starttls *st, const unsigned char *p, size_t len);

static int too_long(struct cm_starttls *st, const unsigned char *p, size_t len)
{
    char text[TEXT_SIZE];

    show(text, p, len);
    return fail(st, CM_ESTARTTLS_PROTO, "server sent a line longer than %d bytes: \"%s\"",
                CM_STARTTLS_MAX_LINE, text);
}

static int feed_lines(struct cm_starttls *st, line_fn on_line, partial_fn plausible)
{
    while (st->status == CM_STARTTLS_MORE && st->pos < st->in_len) {
        const unsigned char *p = st->in + st->pos;
        size_t avail = st->in_len - st->pos;
        const unsigned char *nl = memchr(p, '\n', avail);
        size_t n, len;

        if (nl == NULL) {
            if (avail >= CM_STARTTLS_MAX_LINE)
                return too_long(st, p, avail);
            /* Failing on the first impossible byte, rather than waiting for a newline that
             * binary garbage may never contain, turns a timeout into a clear error. */
            if (!plausible(st, p, avail))
                return unexpected(st, p);
            return CM_STARTTLS_MORE;
        }
        n = (size_t)(nl - p) + 1;
        if (n > CM_STARTTLS_MAX_LINE)
            return too_long(st, p, n);
        len = n - 1;
        if (len > 0 && p[len - 1] == '\r')
            len--;
        st->pos += n;
        on_line(st, p, len);
    }
    return st->status;
}

/* Records one EHLO keyword (RFC 5321 section 4.1.1.1: the first word of each line after the
 * first). */
static void smtp_keyword(struct cm_starttls *st, const unsigned char *text, size_t len)
{
    char word[TEXT_SIZE];
    size_t n = 0, have = strlen(st->caps), wlen;

    while (n < len && text[n] != ' ')
        n++;
    if (n == 0)
        return;
    if (n == 8 && same_ci(text, "STARTTLS", 8))
        st->offered = true;
    show(word, text, n);
    wlen = strlen(word);
    if (have >= 3 && strcmp(st->caps + have - 3, "...") == 0)
        return;
    if (have + (have ? 1 : 0) + wlen > CM_STARTTLS_SHOWN) {
        memcpy(st->caps + have, "...", 4);
        return;
    }
    if (have)
        st->caps[have++] = ' ';
    memcpy(st->caps + have, word, wlen + 1);
}

static int smtp_line(struct cm_starttls *st, const unsigned char *line, size_t len)
{
    int code;
    bool last;

    if (!reply_code(line, len, &code, &last))
        return unexpected(st, line);
    if (st->lines == 0) {
        st->code = code;
        show(st->first, line, len);
    } else if (code != st->code) {
        /* RFC 5321 section 4.2.1: every line of a reply carries the same code. */
        return unexpected(st, line);
    }
    if (st->step == S_SMTP_EHLO && st->lines > 0 && len > 4)
        smtp_keyword(st, line + 4, len - 4);
    st->lines++;
    if (!last)
        return CM_STARTTLS_MORE;

    switch (st->step) {
    case S_SMTP_GREETING:
        if (code != 220)
            return fail(st, CM_ESTARTTLS_REFUSED, "server refused the session: \"%s\"", st->first);
        if (!trailing(st))
            advance(st, S_SMTP_EHLO, "EHLO " CM_STARTTLS_CLIENT_NAME "\r\n");
        return st->status;
    case S_SMTP_EHLO:
        if (code != 250)
            return fail(st, CM_ESTARTTLS_REFUSED, "server rejected EHLO: \"%s\"", st->first);
        if (!st->offered)
            return fail(st, CM_ESTARTTLS_REFUSED,
                        "server does not offer STARTTLS (EHLO keywords: %s)",
                        st->caps[0] ? st->caps : "none");
        if (!trailing(st))
            advance(st, S_SMTP_STARTTLS, "STARTTLS\r\n");
        return st->status;
    default:
        if (code != 220)
            return fail(st, CM_ESTARTTLS_REFUSED, "server refused STARTTLS: \"%s\"", st->first);
        return done(st);
    }
}

static bool smtp_partial(const struct cm_starttls *st, const unsigned char *p, size_t len)
{
    return could_be_reply(p, len);
}

static int imap_line(struct cm_starttls *st, const unsigned char *line, size_t len)
{
    char text[TEXT_SIZE];

    show(text, line, len);
    if (st->step == S_IMAP_GREETING) {
        /* RFC 3501 section 7.1: OK, PREAUTH or BYE. STARTTLS is valid only before
         * authentication (section 6.2.1), yet PREAUTH goes on too: a conforming server then
         * answers BAD, and the refusal quotes its own words. */
        if (word_at(line, len, "* OK") || word_at(line, len, "* PREAUTH")) {
            if (!trailing(st))
                advance(st, S_IMAP_STARTTLS, "a001 STARTTLS\r\n");
            return st->status;
        }
        if (word_at(line, len, "* BYE"))
            return fail(st, CM_ESTARTTLS_REFUSED, "server refused the session: \"%s\"", text);
        return unexpected(st, line);
    }
    if (word_at(line, len, "a001 OK"))
        return done(st);
    if (word_at(line, len, "a001 NO") || word_at(line, len, "a001 BAD"))
        return fail(st, CM_ESTARTTLS_REFUSED, "server refused STARTTLS: \"%s\"", text);
    if (word_at(line, len, "* BYE"))
        return fail(st, CM_ESTARTTLS_REFUSED, "server closed the session: \"%s\"", text);
    if (len >= 2 && line[0] == '*' && line[1] == ' ')
        return CM_STARTTLS_MORE; /* untagged data (a CAPABILITY, say) before the tagged reply */
    return unexpected(st, line);
}

static bool imap_partial(const struct cm_starttls *st, const unsigned char *p, size_t len)
{
    return could_be(p, len, "* ") || (st->step == S_IMAP_STARTTLS && could_be(p, len, "a001 "));
}

static int pop3_line(struct cm_starttls *st, const unsigned char *line, size_t len)
{
    char text[TEXT_SIZE];
    bool ok = word_at(line, len, "+OK");

    show(text, line, len);
    if (!ok && !word_at(line, len, "-ERR"))
        return unexpected(st, line);
    if (st->step == S_POP3_GREETING) {
        if (!ok)
            return fail(st, CM_ESTARTTLS_REFUSED, "server refused the session: \"%s\"", text);
        if (!trailing(st))
            advance(st, S_POP3_STLS, "STLS\r\n");
        return st->status;
    }
    if (!ok)
        return fail(st, CM_ESTARTTLS_REFUSED, "server refused STLS: \"%s\"", text);
    return done(st);
}

static bool pop3_partial(const struct cm_starttls *st, const unsigned char *p, size_t len)
{
    return could_be(p, len, "+OK") || could_be(p, len, "-ERR");
}

static int ftp_line(struct cm_starttls *st, const unsigned char *line, size_t len)
{
    int code;
    bool last;

    if (st->lines > 0) {
        /* RFC 959 section 4.2: the lines inside a multi-line reply are free text; the reply
         * ends with a line that starts with the same code followed by a space. */
        st->lines++;
        if (!reply_code(line, len, &code, &last) || code != st->code || !last)
            return CM_STARTTLS_MORE;
    } else {
        if (!reply_code(line, len, &code, &last))
            return unexpected(st, line);
        st->code = code;
        show(st->first, line, len);
        if (!last) {
            st->lines = 1;
            return CM_STARTTLS_MORE;
        }
    }
    code = st->code;
    st->lines = 0;
    st->code = 0;

    if (st->step == S_FTP_GREETING) {
        if (code == 120) {
            /* "Service ready in nnn minutes": the 220 follows (RFC 959 section 5.4). */
            st->start = st->pos;
            return CM_STARTTLS_MORE;
        }
        if (code != 220)
            return fail(st, CM_ESTARTTLS_REFUSED, "server refused the session: \"%s\"", st->first);
        if (!trailing(st))
            advance(st, S_FTP_AUTH, "AUTH TLS\r\n");
        return st->status;
    }
    if (code != 234)
        return fail(st, CM_ESTARTTLS_REFUSED, "server refused AUTH TLS: \"%s\"", st->first);
    return done(st);
}

static bool ftp_partial(const struct cm_starttls *st, const unsigned char *p, size_t len)
{
    return st->lines > 0 || could_be_reply(p, len);
}

/* ---- LDAP ---- */

struct ber {
    const unsigned char *p;
    size_t len;
};

/* Reads one element from b into tag and content and moves b past it. Only what LDAP uses
 * (RFC 4511 section 5.1): one-octet tags and definite lengths, in short form or in long form
 * with at most four octets (Active Directory always writes 84 xx xx xx xx). */
static bool ber_next(struct ber *b, unsigned *tag, struct ber *content)
{
    size_t len, hdr = 2;

    if (b->len < 2 || (b->p[0] & 0x1f) == 0x1f)
        return false;
    *tag = b->p[0];
    len = b->p[1];
    if (len & 0x80) {
        size_t n = len & 0x7f;

        if (n == 0 || n > 4 || b->len - 2 < n)
            return false;
        len = 0;
        for (size_t i = 0; i < n; i++)
            len = len << 8 | b->p[2 + i];
        hdr += n;
    }
    if (len > b->len - hdr)
        return false;
    content->p = b->p + hdr;
    content->len = len;
    b->p += hdr + len;
    b->len -= hdr + len;
    return true;
}

/* An INTEGER or ENUMERATED of one to four octets that is not negative. */
static bool ber_uint(const struct ber *c, uint32_t *out)
{
    uint32_t v = 0;

    if (c->len < 1 || c->len > 4 || (c->p[0] & 0x80))
        return false;
    for (size_t i = 0; i < c->len; i++)
        v = v << 8 | c->p[i];
    *out = v;
    return true;
}

static const char *ldap_result_name(uint32_t code)
{
    switch (code) {
    case 0:
        return "success";
    case 1:
        return "operationsError";
    case 2:
        return "protocolError";
    case 3:
        return "timeLimitExceeded";
    case 7:
        return "authMethodNotSupported";
    case 8:
        return "strongerAuthRequired";
    case 10:
        return "referral";
    case 12:
        return "unavailableCriticalExtension";
    case 13:
        return "confidentialityRequired";
    case 50:
        return "insufficientAccessRights";
    case 51:
        return "busy";
    case 52:
        return "unavailable";
    case 53:
        return "unwillingToPerform";
    case 80:
        return "other";
    default:
        return "unknown";
    }
}

static int ldap_malformed(struct cm_starttls *st, const unsigned char *msg, size_t len,
                          const char *what)
{
    char text[TEXT_SIZE];

    show(text, msg, len);
    return fail(st, CM_ESTARTTLS_PROTO, "malformed LDAP response (%s): \"%s\"", what, text);
}

/* Interprets one complete LDAPMessage (msg, len: the whole element; body: its contents). */
static int ldap_message(struct cm_starttls *st, const unsigned char *msg, size_t len,
                        struct ber body)
{
    struct ber id, op, code, dn, diag;
    unsigned tag;
    uint32_t msgid, rc;
    char text[TEXT_SIZE], why[TEXT_SIZE + 8] = "";

    if (!ber_next(&body, &tag, &id) || tag != 0x02 || !ber_uint(&id, &msgid))
        return ldap_malformed(st, msg, len, "messageID");
    if (!ber_next(&body, &tag, &op))
        return ldap_malformed(st, msg, len, "protocolOp");
    if (tag != 0x78) /* [APPLICATION 24] ExtendedResponse, constructed */
        return fail(st, CM_ESTARTTLS_PROTO,
                    "server answered with LDAP operation 0x%02x (messageID %u), not an "
                    "ExtendedResponse",
                    tag, (unsigned)msgid);
    /* COMPONENTS OF LDAPResult (section 4.1.9): resultCode, matchedDN, diagnosticMessage.
     * What may follow (referral, responseName, responseValue, controls) decides nothing. */
    if (!ber_next(&op, &tag, &code) || tag != 0x0a || !ber_uint(&code, &rc))
        return ldap_malformed(st, msg, len, "resultCode");
    if (!ber_next(&op, &tag, &dn) || tag != 0x04)
        return ldap_malformed(st, msg, len, "matchedDN");
    if (!ber_next(&op, &tag, &diag) || tag != 0x04)
        return ldap_malformed(st, msg, len, "diagnosticMessage");
    if (diag.len > 0) {
        show(text, diag.p, diag.len);
        snprintf(why, sizeof(why), ": \"%s\"", text);
    }
    if (msgid == 0) /* section 4.4.1: Notice of Disconnection */
        return fail(st, CM_ESTARTTLS_REFUSED,
                    "server sent a notice of disconnection: resultCode %u (%s)%s", (unsigned)rc,
                    ldap_result_name(rc), why);
    if (msgid != 1)
        return fail(st, CM_ESTARTTLS_PROTO, "server answered messageID %u; the request was 1",
                    (unsigned)msgid);
    if (rc != 0)
        return fail(st, CM_ESTARTTLS_REFUSED, "server refused StartTLS: resultCode %u (%s)%s",
                    (unsigned)rc, ldap_result_name(rc), why);
    return done(st);
}

static int feed_ldap(struct cm_starttls *st)
{
    const unsigned char *p = st->in + st->pos;
    size_t avail = st->in_len - st->pos, len, hdr = 2;

    if (avail == 0)
        return CM_STARTTLS_MORE;
    if (p[0] != 0x30) /* LDAPMessage is a SEQUENCE */
        return unexpected(st, p);
    if (avail < 2)
        return CM_STARTTLS_MORE;
    len = p[1];
    if (len & 0x80) {
        size_t n = len & 0x7f;

        if (n == 0 || n > 4)
            return ldap_malformed(st, p, avail, "length");
        if (avail < 2 + n)
            return CM_STARTTLS_MORE;
        len = 0;
        for (size_t i = 0; i < n; i++)
            len = len << 8 | p[2 + i];
        hdr += n;
    }
    if (len > CM_STARTTLS_MAX_INPUT - hdr)
        return fail(st, CM_ESTARTTLS_PROTO,
                    "server announced a %zu-byte LDAP message; at most %d bytes are accepted", len,
                    CM_STARTTLS_MAX_INPUT);
    if (avail - hdr < len)
        return CM_STARTTLS_MORE;
    st->pos += hdr + len;
    return ldap_message(st, p, hdr + len, (struct ber){p + hdr, len});
}

/* ---- PostgreSQL ---- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* 'E' instead of 'S' or 'N': an ErrorResponse, which only servers from before SSL support
 * (or something that is not PostgreSQL) send here. Waits for the whole message to quote it. */
static int pg_error(struct cm_starttls *st, const unsigned char *p, size_t avail)
{
    char sev[TEXT_SIZE] = "", msg[TEXT_SIZE] = "";

    if (avail < 2)
        return CM_STARTTLS_MORE;
    if (p[1] == 0) {
        /* Protocol 3: Int32 length (counting itself), then fields of one type byte and a C
         * string each, ended by a zero byte. */
        uint32_t len;
        const unsigned char *q, *end;

        if (avail < 5)
            return CM_STARTTLS_MORE;
        len = be32(p + 1);
        if (len < 4 || len > CM_STARTTLS_MAX_INPUT - 1)
            return unexpected(st, p);
        if (avail - 1 < len)
            return CM_STARTTLS_MORE;
        q = p + 5;
        end = p + 1 + len;
        while (q < end && *q != 0) {
            unsigned char type = *q++;
            const unsigned char *nul = memchr(q, 0, (size_t)(end - q));

            if (nul == NULL)
                break;
            if (type == 'S')
                show(sev, q, (size_t)(nul - q));
            else if (type == 'M')
                show(msg, q, (size_t)(nul - q));
            q = nul + 1;
        }
        if (msg[0] == '\0')
            return unexpected(st, p);
    } else {
        /* Protocol 2: a C string. */
        const unsigned char *nul = memchr(p + 1, 0, avail - 1);

        if (nul == NULL)
            return avail > CM_STARTTLS_MAX_LINE ? too_long(st, p, avail) : CM_STARTTLS_MORE;
        show(msg, p + 1, (size_t)(nul - p - 1));
    }
    return fail(st, CM_ESTARTTLS_PROTO,
                "server answered with an error instead of 'S' or 'N' (too old?): \"%s%s%s\"", sev,
                sev[0] ? ": " : "", msg);
}

static int feed_pg(struct cm_starttls *st)
{
    const unsigned char *p = st->in + st->pos;
    size_t avail = st->in_len - st->pos;

    if (avail == 0)
        return CM_STARTTLS_MORE;
    switch (p[0]) {
    case 'S':
        /* The bytes after 'S' are exactly what CVE-2021-23214 and CVE-2021-23222 were about. */
        st->pos++;
        return done(st);
    case 'N':
        return fail(st, CM_ESTARTTLS_REFUSED, "server has SSL off (it answered 'N')");
    case 'E':
        return pg_error(st, p, avail);
    default:
        return unexpected(st, p);
    }
}

/* ---- MySQL ---- */

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static int mysql_error(struct cm_starttls *st, const unsigned char *pl, size_t len,
                       const unsigned char *packet, size_t plen)
{
    char text[TEXT_SIZE], state[TEXT_SIZE] = "";
    size_t skip = 3;

    if (len < 3) {
        show(text, packet, plen);
        return fail(st, CM_ESTARTTLS_PROTO, "malformed error packet: \"%s\"", text);
    }
    /* ERR_Packet: 0xff, error_code (int<2>), then "#" and a 5-character SQL state when the
     * server uses protocol 4.1 for it (not usually before the client announced it), then
     * the message. */
    if (len >= 9 && pl[3] == '#') {
        show(state, pl + 4, 5);
        skip = 9;
    }
    show(text, pl + skip, len - skip);
    return fail(st, CM_ESTARTTLS_REFUSED, "server refused the connection: error %u%s%s%s: \"%s\"",
                (unsigned)(pl[1] | pl[2] << 8), state[0] ? " (" : "", state, state[0] ? ")" : "",
                text);
}

static int feed_mysql(struct cm_starttls *st)
{
    const unsigned char *p = st->in + st->pos, *pl, *q, *end, *nul;
    size_t avail = st->in_len - st->pos, len;
    uint32_t caps;
    unsigned char req[36] = {0};
    char version[TEXT_SIZE];

    if (avail < 4)
        return CM_STARTTLS_MORE;
    /* Packet header: payload length (int<3>), sequence id (int<1>). A length beyond the
     * limit is more likely text than a real handshake (which is under 200 bytes). */
    len = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16;
    if (len == 0 || len > CM_STARTTLS_MAX_INPUT - 4)
        return unexpected(st, p);
    if (avail - 4 < len)
        return CM_STARTTLS_MORE;
    st->pos += 4 + len;
    pl = p + 4;
    end = pl + len;
    if (pl[0] == MYSQL_ERR_PACKET)
        return mysql_error(st, pl, len, p, 4 + len);
    if (pl[0] != MYSQL_HANDSHAKE_V10) {
        show(version, p, 4 + len);
        return fail(st, CM_ESTARTTLS_PROTO, "unexpected handshake (protocol version %u): \"%s\"",
                    pl[0], version);
    }
    /* Protocol::HandshakeV10: server version (NUL-terminated), thread id (4), first 8 bytes
     * of the scramble, a filler byte, capability flags (lower 2 bytes); then, optionally,
     * character set (1), status flags (2) and the upper 2 bytes of the capability flags. */
    q = pl + 1;
    nul = memchr(q, 0, (size_t)(end - q));
    if (nul == NULL || end - (nul + 1) < 4 + 8 + 1 + 2) {
        show(version, p, 4 + len);
        return fail(st, CM_ESTARTTLS_PROTO, "truncated handshake: \"%s\"", version);
    }
    show(version, q, (size_t)(nul - q));
    q = nul + 1 + 4 + 8 + 1;
    caps = (uint32_t)q[0] | (uint32_t)q[1] << 8;
    q += 2;
    if (end - q >= 5)
        caps |= ((uint32_t)q[3] | (uint32_t)q[4] << 8) << 16;
    if (!(caps & MYSQL_CLIENT_SSL))
        return fail(st, CM_ESTARTTLS_REFUSED,
                    "server does not support TLS (no CLIENT_SSL in its capabilities; version "
                    "\"%s\")",
                    version);
    if (!(caps & MYSQL_CLIENT_PROTOCOL_41))
        return fail(st, CM_ESTARTTLS_REFUSED, "server does not speak protocol 4.1 (version \"%s\")",
                    version);

    /* Protocol::SSLRequest: header (payload length 32, sequence id one past the server's),
     * then capability flags (int<4>), max packet size (int<4>), character set (int<1>) and 23
     * zero bytes. The server starts TLS on it without answering. */
    req[0] = 32;
    req[3] = (unsigned char)(p[3] + 1);
    put_le32(req + 4, MYSQL_CLIENT_SSL | MYSQL_CLIENT_PROTOCOL_41 | MYSQL_CLIENT_SECURE_CONNECTION);
    put_le32(req + 8, MYSQL_MAX_PACKET);
    req[12] = MYSQL_CHARSET_UTF8;
    queue(st, req, sizeof(req));
    return done(st);
}

/* ---- XMPP ---- */

enum { TAG_NO, TAG_PARTIAL, TAG_YES };

/* Whether p starts with the element name (with its '<'), followed by a delimiter; PARTIAL when
 * the n bytes so far could still become it. */
static int tag_at(const char *p, size_t n, const char *name)
{
    size_t k = strlen(name);

    if (n <= k)
        return memcmp(p, name, n) == 0 ? TAG_PARTIAL : TAG_NO;
    if (memcmp(p, name, k) != 0)
        return TAG_NO;
    return p[k] != '\0' && strchr(" \t\r\n/>", p[k]) ? TAG_YES : TAG_NO;
}

/* The first complete occurrence of the element name in p[0, n), or NULL. */
static const char *find_tag(const char *p, size_t n, const char *name)
{
    const char *end = p + n;

    while (p < end) {
        const char *hit = memmem(p, (size_t)(end - p), name, strlen(name));

        if (hit == NULL)
            return NULL;
        if (tag_at(hit, (size_t)(end - hit), name) == TAG_YES)
            return hit;
        p = hit + 1;
    }
    return NULL;
}

static const char *find(const char *p, const char *end, const char *s)
{
    return p < end ? memmem(p, (size_t)(end - p), s, strlen(s)) : NULL;
}

static size_t skip_space(const char *p, size_t n, size_t i)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    return i;
}

/* A <stream:error> (RFC 6120 section 4.9) starting at e: waits for its end, then fails with
 * the condition's name and the <text/>, if any. */
static int xmpp_stream_error(struct cm_starttls *st, const char *e, const char *end)
{
    const char *close = find(e, end, "</stream:error>"), *body, *name, *t, *tend;
    char cond[TEXT_SIZE], text[TEXT_SIZE] = "";
    size_t n = 0;

    if (close == NULL)
        return CM_STARTTLS_MORE;
    body = memchr(e, '>', (size_t)(close - e));
    body = body ? body + 1 : close;
    name = body + skip_space(body, (size_t)(close - body), 0);
    if (name < close && *name == '<') {
        name++;
        while (name + n < close && !strchr(" \t\r\n/>", name[n]))
            n++;
    }
    show(cond, name, n);
    t = find_tag(body, (size_t)(close - body), "<text");
    if (t && (t = memchr(t, '>', (size_t)(close - t))) != NULL && t[-1] != '/' &&
        (tend = find(t + 1, close, "</text>")) != NULL)
        show(text, t + 1, (size_t)(tend - t - 1));
    if (n == 0)
        show(cond, body, (size_t)(close - body));
    return fail(st, CM_ESTARTTLS_REFUSED, "server sent a stream error: %s%s%s%s", cond,
                text[0] ? " (\"" : "", text, text[0] ? "\")" : "");
}

static int xmpp_features(struct cm_starttls *st)
{
    const char *p = (const char *)st->in + st->pos, *end = (const char *)st->in + st->in_len;
    const char *e, *hdr, *gt, *feat, *fend, *tls;
    size_t n = (size_t)(end - p), i;
    int t;
    char text[TEXT_SIZE];

    if ((e = find_tag(p, n, "<stream:error")) != NULL)
        return xmpp_stream_error(st, e, end);

    /* The response stream header (section 4.2): an optional XML declaration, then the
     * <stream:stream> start tag. Checking its first bytes catches other protocols early. */
    i = skip_space(p, n, 0);
    if (i == n)
        return CM_STARTTLS_MORE;
    if (n - i >= 2 && p[i] == '<' && p[i + 1] == '?') {
        const char *decl = find(p + i, end, "?>");

        if (decl == NULL)
            return CM_STARTTLS_MORE;
        i = skip_space(p, n, (size_t)(decl + 2 - p));
        if (i == n)
            return CM_STARTTLS_MORE;
    } else if (p[i] != '<' || (n - i == 1)) {
        return p[i] == '<' ? CM_STARTTLS_MORE : unexpected(st, (const unsigned char *)p + i);
    }
    t = tag_at(p + i, n - i, "<stream:stream");
    if (t == TAG_NO)
        return unexpected(st, (const unsigned char *)p + i);
    hdr = p + i;
    gt = t == TAG_YES ? memchr(hdr, '>', (size_t)(end - hdr)) : NULL;
    if (gt == NULL)
        return CM_STARTTLS_MORE;
    if (memmem(hdr, (size_t)(gt - hdr), "version=", 8) == NULL) {
        show(text, hdr, (size_t)(gt + 1 - hdr));
        return fail(st, CM_ESTARTTLS_REFUSED,
                    "server does not speak XMPP 1.0 (no version in its stream header \"%s\")",
                    text);
    }

    feat = find_tag(gt + 1, (size_t)(end - gt - 1), "<stream:features");
    fend = NULL;
    if (feat) {
        const char *fgt = memchr(feat, '>', (size_t)(end - feat));

        if (fgt && fgt[-1] == '/')
            fend = fgt + 1;
        else if (fgt && (fend = find(fgt + 1, end, "</stream:features>")) != NULL)
            fend += strlen("</stream:features>");
    }
    if (fend == NULL) {
        if (find(gt + 1, end, "</stream:stream>"))
            return fail(st, CM_ESTARTTLS_REFUSED, "server closed the stream before its features");
        return CM_STARTTLS_MORE;
    }

    /* Section 5.3.1: <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>, either quote. */
    for (tls = feat; (tls = find_tag(tls, (size_t)(fend - tls), "<starttls")) != NULL; tls++) {
        const char *tgt = memchr(tls, '>', (size_t)(fend - tls));

        if (tgt && memmem(tls, (size_t)(tgt - tls), XMPP_TLS_NS, strlen(XMPP_TLS_NS)))
            break;
    }
    if (tls == NULL) {
        show(text, feat, (size_t)(fend - feat));
        return fail(st, CM_ESTARTTLS_REFUSED, "server does not offer STARTTLS (features: \"%s\")",
                    text);
    }
    st->pos = (size_t)(fend - (const char *)st->in);
    if (!trailing(st))
        advance(st, S_XMPP_PROCEED, "<starttls xmlns='" XMPP_TLS_NS "'/>");
    return st->status;
}

static int xmpp_proceed(struct cm_starttls *st)
{
    const char *p = (const char *)st->in + st->pos, *end = (const char *)st->in + st->in_len;
    size_t n = (size_t)(end - p), i = skip_space(p, n, 0);
    char text[TEXT_SIZE];
    int proceed, failure, error, close;

    /* Section 5.4.2.3: <proceed/> or <failure/>; a stream error or the end of the stream
     * may come instead. Whitespace between elements is allowed. */
    if (i == n)
        return CM_STARTTLS_MORE;
    proceed = tag_at(p + i, n - i, "<proceed");
    failure = tag_at(p + i, n - i, "<failure");
    error = tag_at(p + i, n - i, "<stream:error");
    close = tag_at(p + i, n - i, "</stream:stream");
    if (proceed == TAG_YES) {
        const char *gt = memchr(p + i, '>', n - i), *stop = NULL;

        if (gt && gt[-1] == '/')
            stop = gt + 1;
        else if (gt && (stop = find(gt + 1, end, "</proceed>")) != NULL)
            stop += strlen("</proceed>");
        if (stop == NULL)
            return CM_STARTTLS_MORE;
        st->pos = (size_t)(stop - (const char *)st->in);
        return done(st);
    }
    if (failure == TAG_YES) {
        show(text, p + i, n - i);
        return fail(st, CM_ESTARTTLS_REFUSED, "server refused STARTTLS: \"%s\"", text);
    }
    if (error == TAG_YES)
        return xmpp_stream_error(st, p + i, end);
    if (close == TAG_YES)
        return fail(st, CM_ESTARTTLS_REFUSED, "server closed the stream");
    if (proceed == TAG_PARTIAL || failure == TAG_PARTIAL || error == TAG_PARTIAL ||
        close == TAG_PARTIAL)
        return CM_STARTTLS_MORE;
    return unexpected(st, (const unsigned char *)p + i);
}

/* ---- The machine ---- */

static size_t xml_escape(char *dst, const char *s)
{
    size_t o = 0;

    for (; *s; s++) {
        const char *rep = NULL;

        switch (*s) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        case '"':
            rep = "&quot;";
            break;
        default:
            dst[o++] = *s;
            continue;
        }
        memcpy(dst + o, rep, strlen(rep));
        o += strlen(rep);
    }
    return o;
}

static bool xmpp_host_ok(const char *host)
{
    size_t len;

    if (host == NULL || (len = strlen(host)) == 0 || len > XMPP_HOST_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)host[i];

        /* XML 1.0 allows no control characters in attribute values; tabs and newlines would
         * be normalised away. Bytes from 0x80 up (UTF-8) pass as they are. */
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

int cm_starttls_new(enum cm_starttls_proto p, const char *host, struct cm_starttls **out)
{
    struct cm_starttls *st;

    if (out == NULL)
        return CM_EBADARG;
    *out = NULL;
    if (cm_starttls_name(p) == NULL || (p == CM_STARTTLS_XMPP && !xmpp_host_ok(host)))
        return CM_EBADARG;
    st = calloc(1, sizeof(*st));
    if (st == NULL)
        return -ENOMEM;
    st->proto = p;
    switch (p) {
    case CM_STARTTLS_SMTP:
        st->step = S_SMTP_GREETING;
        break;
    case CM_STARTTLS_IMAP:
        st->step = S_IMAP_GREETING;
        break;
    case CM_STARTTLS_POP3:
        st->step = S_POP3_GREETING;
        break;
    case CM_STARTTLS_FTP:
        st->step = S_FTP_GREETING;
        break;
    case CM_STARTTLS_LDAP:
        st->step = S_LDAP_STARTTLS;
        queue(st, ldap_starttls, sizeof(ldap_starttls));
        break;
    case CM_STARTTLS_POSTGRES:
        st->step = S_PG_SSLREQUEST;
        queue(st, pg_sslrequest, sizeof(pg_sslrequest));
        break;
    case CM_STARTTLS_MYSQL:
        st->step = S_MYSQL_HANDSHAKE;
        break;
    case CM_STARTTLS_XMPP:
        /* RFC 6120 section 4.2: the initial stream header, 'to' the service domain. */
        st->step = S_XMPP_FEATURES;
        queue(st, XMPP_HEADER_START, strlen(XMPP_HEADER_START));
        st->out_len += xml_escape((char *)st->out + st->out_len, host);
        queue(st, XMPP_HEADER_END, strlen(XMPP_HEADER_END));
        break;
    case CM_STARTTLS_NONE:
        break;
    }
    *out = st;
    return 0;
}

void cm_starttls_free(struct cm_starttls *st)
{
    free(st);
}

const unsigned char *cm_starttls_output(struct cm_starttls *st, size_t *len)
{
    if (st == NULL || st->out_off == st->out_len) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = st->out_len - st->out_off;
    return st->out + st->out_off;
}

void cm_starttls_sent(struct cm_starttls *st, size_t n)
{
    if (st == NULL)
        return;
    st->out_off += n < st->out_len - st->out_off ? n : st->out_len - st->out_off;
    if (st->out_off == st->out_len)
        st->out_off = st->out_len = 0;
}

int cm_starttls_input(struct cm_starttls *st, const void *data, size_t len)
{
    char text[TEXT_SIZE];

    if (st == NULL || (data == NULL && len > 0))
        return CM_EBADARG;
    if (st->status < 0 || len == 0)
        return st->status;
    if (st->status == CM_STARTTLS_DONE) {
        show(text, data, len);
        return fail(st, CM_ESTARTTLS_PROTO,
                    "server sent data after its STARTTLS answer (possible injection): \"%s\"",
                    text);
    }
    if (st->out_off < st->out_len) {
        /* The caller sends before it reads, so this is an answer to a request the server
         * had not fully received. */
        show(text, data, len);
        return fail(st, CM_ESTARTTLS_PROTO,
                    "server sent data before the client's request was fully sent: \"%s\"", text);
    }
    if (len > CM_STARTTLS_MAX_INPUT - st->in_len)
        return fail(st, CM_ESTARTTLS_PROTO, "server sent more than %d bytes",
                    CM_STARTTLS_MAX_INPUT);
    memcpy(st->in + st->in_len, data, len);
    st->in_len += len;

    switch (st->proto) {
    case CM_STARTTLS_SMTP:
        return feed_lines(st, smtp_line, smtp_partial);
    case CM_STARTTLS_IMAP:
        return feed_lines(st, imap_line, imap_partial);
    case CM_STARTTLS_POP3:
        return feed_lines(st, pop3_line, pop3_partial);
    case CM_STARTTLS_FTP:
        return feed_lines(st, ftp_line, ftp_partial);
    case CM_STARTTLS_LDAP:
        return feed_ldap(st);
    case CM_STARTTLS_POSTGRES:
        return feed_pg(st);
    case CM_STARTTLS_MYSQL:
        return feed_mysql(st);
    case CM_STARTTLS_XMPP:
        return st->step == S_XMPP_FEATURES ? xmpp_features(st) : xmpp_proceed(st);
    case CM_STARTTLS_NONE:
        break;
    }
    return st->status;
}

int cm_starttls_eof(struct cm_starttls *st)
{
    char text[TEXT_SIZE];

    if (st == NULL)
        return CM_EBADARG;
    if (st->status < 0)
        return st->status;
    if (st->status == CM_STARTTLS_DONE)
        return fail(st, CM_ESTARTTLS, "server closed the connection after its STARTTLS answer");
    if (st->start == st->in_len)
        return fail(st, CM_ESTARTTLS, "server closed the connection without answering");
    show(text, st->in + st->start, st->in_len - st->start);
    return fail(st, CM_ESTARTTLS, "server closed the connection in the middle of its reply \"%s\"",
                text);
}

bool cm_starttls_done(const struct cm_starttls *st)
{
    return st != NULL && st->status == CM_STARTTLS_DONE;
}

const char *cm_starttls_error(const struct cm_starttls *st)
{
    return st != NULL && st->status < 0 ? st->err : NULL;
}
