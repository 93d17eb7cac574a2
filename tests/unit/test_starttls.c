/* Unit tests for the STARTTLS state machines (src/probe/starttls.c).
 *
 * Transcripts are what real servers send: Postfix, Exim, Dovecot, vsftpd, ProFTPD, Pure-FTPd,
 * OpenLDAP slapd, Active Directory-style long-form BER, PostgreSQL, MySQL 8.0 and 5.5,
 * Prosody-style and Openfire XMPP streams. Each is played in several chunkings (whole
 * replies, byte by byte, halves, 7-byte pieces), checking the exact bytes the machine wants
 * sent before every server reply. */
#include "cmtest.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certmon/base/error.h"
#include "certmon/probe/starttls.h"

/* ---- Harness ---- */

struct bytes {
    const char *p;
    size_t len;
};

#define S(lit)                                                                                     \
    {                                                                                              \
        (lit), sizeof(lit) - 1                                                                     \
    }
#define NONE_B                                                                                     \
    {                                                                                              \
        NULL, 0                                                                                    \
    }

/* One exchange: what the machine must want sent, then what the server answers. */
struct step {
    struct bytes client;
    struct bytes server;
};

struct script {
    enum cm_starttls_proto proto;
    const char *host;
    const struct step *steps;
    size_t nsteps;
    struct bytes final_out; /* output pending at DONE (MySQL's SSLRequest) */
    int want;               /* result of the last server byte */
};

enum chunking { WHOLE, BYTES, HALVES, SEVENS };
static const char *const chunking_name[] = {"whole", "bytes", "halves", "sevens"};

/* Renders bytes as escaped text, for comparisons and readable failures. */
static void esc(char *dst, size_t size, const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t o = 0;

    for (size_t i = 0; i < len && o + 5 < size; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
            dst[o++] = (char)p[i];
        else
            o += (size_t)snprintf(dst + o, size - o, "\\x%02x", p[i]);
    }
    dst[o] = '\0';
}

static void expect_output(struct cm_starttls *st, struct bytes want, const char *what,
                          unsigned line)
{
    static char got_s[20000], want_s[20000];
    size_t len = 12345;
    const unsigned char *p = cm_starttls_output(st, &len);

    esc(got_s, sizeof(got_s), p, len);
    esc(want_s, sizeof(want_s), want.p, want.len);
    expect_str(got_s, want_s, what, line);
    if (want.len == 0)
        CU_assertImplementation(p == NULL && len == 0, line, "no output means NULL and 0", __FILE__,
                                "", CU_FALSE);
}

static size_t chunk_len(enum chunking how, size_t total, size_t off)
{
    size_t left = total - off;

    switch (how) {
    case BYTES:
        return 1;
    case HALVES:
        return off == 0 && total > 1 ? total / 2 : left;
    case SEVENS:
        return left < 7 ? left : 7;
    case WHOLE:
        break;
    }
    return left;
}

/* Plays sc against a new machine, chunked as how: before each server reply the machine's
 * output must be exactly the step's client bytes (sent in two parts, to exercise
 * cm_starttls_sent), every chunk but the reply's last must return MORE without output, and
 * the last byte of the last reply must return sc->want. A failure may come earlier in the
 * last reply (garbage is rejected at its first impossible byte). Returns the machine. */
static struct cm_starttls *play(const struct script *sc, enum chunking how, unsigned line)
{
    struct cm_starttls *st = NULL;
    char what[200];
    int rc = CM_STARTTLS_MORE;

    snprintf(what, sizeof(what), "%s/%s: cm_starttls_new", cm_starttls_name(sc->proto),
             chunking_name[how]);
    expect_int(cm_starttls_new(sc->proto, sc->host, &st), 0, what, line);
    if (st == NULL)
        return NULL;
    for (size_t i = 0; i < sc->nsteps; i++) {
        const struct step *s = &sc->steps[i];
        bool last_step = i + 1 == sc->nsteps;

        snprintf(what, sizeof(what), "%s/%s step %zu: client output", cm_starttls_name(sc->proto),
                 chunking_name[how], i);
        expect_output(st, s->client, what, line);
        if (s->client.len > 1) {
            cm_starttls_sent(st, 1);
            expect_output(st, (struct bytes){s->client.p + 1, s->client.len - 1}, what, line);
            cm_starttls_sent(st, s->client.len - 1);
        } else {
            cm_starttls_sent(st, s->client.len);
        }
        for (size_t off = 0; off < s->server.len;) {
            size_t n = chunk_len(how, s->server.len, off);
            bool last = last_step && off + n == s->server.len;

            rc = cm_starttls_input(st, s->server.p + off, n);
            off += n;
            snprintf(what, sizeof(what), "%s/%s step %zu at byte %zu: input (error: %s)",
                     cm_starttls_name(sc->proto), chunking_name[how], i, off,
                     cm_starttls_error(st) ? cm_starttls_error(st) : "none");
            if (rc < 0 && last_step && sc->want < 0) {
                expect_int(rc, sc->want, what, line);
                return st;
            }
            expect_int(rc, last ? sc->want : CM_STARTTLS_MORE, what, line);
            if (rc != (last ? sc->want : CM_STARTTLS_MORE))
                return st;
            if (off < s->server.len && sc->want >= 0) {
                snprintf(what, sizeof(what), "%s/%s step %zu: output mid-reply",
                         cm_starttls_name(sc->proto), chunking_name[how], i);
                expect_output(st, (struct bytes)NONE_B, what, line);
            }
        }
    }
    snprintf(what, sizeof(what), "%s/%s: done()", cm_starttls_name(sc->proto), chunking_name[how]);
    expect_int(cm_starttls_done(st), sc->want == CM_STARTTLS_DONE, what, line);
    if (sc->want == CM_STARTTLS_DONE) {
        snprintf(what, sizeof(what), "%s/%s: output at DONE", cm_starttls_name(sc->proto),
                 chunking_name[how]);
        expect_output(st, sc->final_out, what, line);
        cm_starttls_sent(st, sc->final_out.len);
        expect_output(st, (struct bytes)NONE_B, what, line);
        CU_assertImplementation(cm_starttls_error(st) == NULL, line, "no error at DONE", __FILE__,
                                "", CU_FALSE);
        CU_assertImplementation(cm_starttls_done(st), line, "still DONE once sent", __FILE__, "",
                                CU_FALSE);
    }
    return st;
}

/* Plays sc in every chunking. */
static void play_all(const struct script *sc, unsigned line)
{
    for (int how = WHOLE; how <= SEVENS; how++)
        cm_starttls_free(play(sc, (enum chunking)how, line));
}

/* Plays sc whole and checks the failure's code and exact message. */
static void play_fail(const struct script *sc, const char *message, unsigned line)
{
    struct cm_starttls *st = play(sc, WHOLE, line);
    const char *err = cm_starttls_error(st);
    size_t len = 99;

    if (st == NULL)
        return;
    expect_str(err, message, "cm_starttls_error", line);
    expect_int(cm_starttls_done(st), 0, "done() after a failure", line);
    CU_assertImplementation(cm_starttls_output(st, &len) == NULL && len == 0, line,
                            "no output after a failure", __FILE__, "", CU_FALSE);
    /* Failures are final. */
    expect_int(cm_starttls_input(st, "x", 1), sc->want, "input after the failure", line);
    expect_int(cm_starttls_eof(st), sc->want, "eof after the failure", line);
    expect_str(cm_starttls_error(st), message, "error after more calls", line);
    cm_starttls_free(st);
}

#define SCRIPT(proto, host, steps, want)                                                           \
    (struct script)                                                                                \
    {                                                                                              \
        (proto), (host), (steps), sizeof(steps) / sizeof((steps)[0]), NONE_B, (want)               \
    }

/* Plays a failing script in every chunking (each must fail with the same code), then whole
 * with the exact message. */
#define FAILS(proto, host, steps, want, message)                                                   \
    do {                                                                                           \
        struct script sc_ = SCRIPT(proto, host, steps, want);                                      \
        play_all(&sc_, __LINE__);                                                                  \
        play_fail(&sc_, (message), __LINE__);                                                      \
    } while (0)

#define SUCCEEDS(proto, host, steps)                                                               \
    do {                                                                                           \
        struct script sc_ = SCRIPT(proto, host, steps, CM_STARTTLS_DONE);                          \
        play_all(&sc_, __LINE__);                                                                  \
    } while (0)

/* ---- Transcripts ---- */

#define EHLO "EHLO certmon.invalid\r\n"

/* Postfix 3.x (Debian) with smtpd_tls_security_level = may: the greeting is $smtpd_banner,
 * the EHLO keywords are Postfix's usual list. */
#define POSTFIX_GREETING "220 mail.example.org ESMTP Postfix (Debian/GNU)\r\n"
#define POSTFIX_EHLO_HEAD                                                                          \
    "250-mail.example.org\r\n"                                                                     \
    "250-PIPELINING\r\n"                                                                           \
    "250-SIZE 10240000\r\n"                                                                        \
    "250-VRFY\r\n"                                                                                 \
    "250-ETRN\r\n"
#define POSTFIX_EHLO_TAIL                                                                          \
    "250-ENHANCEDSTATUSCODES\r\n"                                                                  \
    "250-8BITMIME\r\n"                                                                             \
    "250-DSN\r\n"                                                                                  \
    "250-SMTPUTF8\r\n"                                                                             \
    "250 CHUNKING\r\n"
#define POSTFIX_EHLO POSTFIX_EHLO_HEAD "250-STARTTLS\r\n" POSTFIX_EHLO_TAIL
#define POSTFIX_READY "220 2.0.0 Ready to start TLS\r\n"

static const struct step smtp_postfix[] = {
    {NONE_B, S(POSTFIX_GREETING)},
    {S(EHLO), S(POSTFIX_EHLO)},
    {S("STARTTLS\r\n"), S(POSTFIX_READY)},
};

/* Exim 4 as cPanel configures it: a three-line greeting, then Exim's EHLO answer and go-ahead. */
static const struct step smtp_exim[] = {
    {NONE_B, S("220-host.example.org ESMTP Exim 4.96.2 #2 Tue, 05 Mar 2024 10:00:00 +0000 \r\n"
               "220-We do not authorize the use of this system to transport unsolicited, \r\n"
               "220 and/or bulk e-mail.\r\n")},
    {S(EHLO), S("250-host.example.org Hello certmon.invalid [192.0.2.10]\r\n"
                "250-SIZE 52428800\r\n"
                "250-8BITMIME\r\n"
                "250-PIPELINING\r\n"
                "250-AUTH PLAIN LOGIN\r\n"
                "250-CHUNKING\r\n"
                "250-STARTTLS\r\n"
                "250 HELP\r\n")},
    {S("STARTTLS\r\n"), S("220 TLS go ahead\r\n")},
};

/* The Postfix transcript with bare LF line ends, a lowercase keyword and a bare "220". */
static const struct step smtp_lf[] = {
    {NONE_B, S("220 mail.example.org ESMTP\n")},
    {S(EHLO), S("250-mail.example.org\n250-starttls\n250 8BITMIME\n")},
    {S("STARTTLS\r\n"), S("220\n")},
};

static void test_smtp(void)
{
    SUCCEEDS(CM_STARTTLS_SMTP, NULL, smtp_postfix);
    SUCCEEDS(CM_STARTTLS_SMTP, NULL, smtp_exim);
    SUCCEEDS(CM_STARTTLS_SMTP, NULL, smtp_lf);
}

static void test_smtp_refused(void)
{
    /* Postfix with smtpd_tls_security_level = none. */
    static const struct step no_starttls[] = {
        {NONE_B, S(POSTFIX_GREETING)},
        {S(EHLO), S(POSTFIX_EHLO_HEAD POSTFIX_EHLO_TAIL)},
    };
    /* Postfix when its TLS setup is broken (missing key, say). */
    static const struct step tls_broken[] = {
        {NONE_B, S(POSTFIX_GREETING)},
        {S(EHLO), S(POSTFIX_EHLO)},
        {S("STARTTLS\r\n"), S("454 4.7.0 TLS not available due to local problem\r\n")},
    };
    static const struct step greeting_554[] = {
        {NONE_B, S("554-mx.example.org No SMTP service here\r\n554 Go away\r\n")},
    };
    /* A server without ESMTP answers EHLO as an unknown command (Postfix's wording). */
    static const struct step no_ehlo[] = {
        {NONE_B, S("220 old.example.org SMTP\r\n")},
        {S(EHLO), S("502 5.5.2 Error: command not recognized\r\n")},
    };

    FAILS(CM_STARTTLS_SMTP, NULL, no_starttls, CM_ESTARTTLS_REFUSED,
          "SMTP EHLO: server does not offer STARTTLS (EHLO keywords: PIPELINING SIZE VRFY ETRN "
          "ENHANCEDSTATUSCODES 8BITMIME DSN SMTPUTF8 CHUNKING)");
    FAILS(CM_STARTTLS_SMTP, NULL, tls_broken, CM_ESTARTTLS_REFUSED,
          "SMTP STARTTLS: server refused STARTTLS: \"454 4.7.0 TLS not available due to local "
          "problem\"");
    FAILS(CM_STARTTLS_SMTP, NULL, greeting_554, CM_ESTARTTLS_REFUSED,
          "SMTP greeting: server refused the session: \"554-mx.example.org No SMTP service "
          "here\"");
    FAILS(CM_STARTTLS_SMTP, NULL, no_ehlo, CM_ESTARTTLS_REFUSED,
          "SMTP EHLO: server rejected EHLO: \"502 5.5.2 Error: command not recognized\"");
}

static void test_smtp_malformed(void)
{
    /* RFC 5321 section 4.2.1: one code for all lines of a reply. */
    static const struct step mixed[] = {
        {NONE_B, S("220-mx.example.org\r\n250 oops\r\n")},
    };
    static const struct step empty_line[] = {
        {NONE_B, S("\r\n")},
    };
    static const struct step ehlo_keywords_cut[] = {
        {NONE_B, S("220 mx\r\n")},
        {S(EHLO),
         S("250-mx\r\n250-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n"
           "250-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\r\n"
           "250-C\r\n250 D\r\n")},
    };

    FAILS(CM_STARTTLS_SMTP, NULL, mixed, CM_ESTARTTLS_PROTO,
          "SMTP greeting: unexpected answer \"250 oops\\r\\n\"");
    FAILS(CM_STARTTLS_SMTP, NULL, empty_line, CM_ESTARTTLS_PROTO,
          "SMTP greeting: unexpected answer \"\\r\\n\"");
    FAILS(CM_STARTTLS_SMTP, NULL, ehlo_keywords_cut, CM_ESTARTTLS_REFUSED,
          "SMTP EHLO: server does not offer STARTTLS (EHLO keywords: "
          "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA...)");
}

/* Dovecot 2.3 imap-login, as Debian configures it. */
#define DOVECOT_IMAP_GREETING                                                                      \
    "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS "         \
    "LOGINDISABLED] Dovecot (Debian) ready.\r\n"
#define STARTTLS_A001 "a001 STARTTLS\r\n"

static void test_imap(void)
{
    static const struct step dovecot[] = {
        {NONE_B, S(DOVECOT_IMAP_GREETING)},
        {S(STARTTLS_A001), S("a001 OK Begin TLS negotiation now.\r\n")},
    };
    /* Untagged data before the tagged answer is skipped. */
    static const struct step untagged[] = {
        {NONE_B, S("* OK IMAP4rev1 server ready\r\n")},
        {S(STARTTLS_A001), S("* CAPABILITY IMAP4rev1 STARTTLS\r\n* OK still here\r\n"
                             "a001 OK Begin TLS negotiation now.\r\n")},
    };
    /* After PREAUTH the tagged answer decides (STARTTLS is not valid there; a server that
     * says OK anyway gets its TLS session). */
    static const struct step preauth[] = {
        {NONE_B, S("* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] Logged in as joe\n")},
        {S(STARTTLS_A001), S("A001 ok done\n")},
    };

    SUCCEEDS(CM_STARTTLS_IMAP, NULL, dovecot);
    SUCCEEDS(CM_STARTTLS_IMAP, NULL, untagged);
    SUCCEEDS(CM_STARTTLS_IMAP, NULL, preauth);
}

static void test_imap_refused(void)
{
    /* Dovecot with ssl = no (src/login-common/client-common.c). */
    static const struct step dovecot_no_ssl[] = {
        {NONE_B,
         S("* OK [CAPABILITY IMAP4rev1 LOGIN-REFERRALS ID ENABLE IDLE] Dovecot ready.\r\n")},
        {S(STARTTLS_A001), S("a001 BAD TLS support isn't enabled.\r\n")},
    };
    static const struct step no[] = {
        {NONE_B, S("* OK ready\r\n")},
        {S(STARTTLS_A001), S("a001 NO TLS is not available now\r\n")},
    };
    static const struct step bye[] = {
        {NONE_B, S("* BYE Too many connections from your IP\r\n")},
    };
    static const struct step bye_later[] = {
        {NONE_B, S("* OK ready\r\n")},
        {S(STARTTLS_A001), S("* BYE Server shutting down\r\n")},
    };
    static const struct step wrong_tag[] = {
        {NONE_B, S("* OK ready\r\n")},
        {S(STARTTLS_A001), S("a002 OK what?\r\n")},
    };

    FAILS(CM_STARTTLS_IMAP, NULL, dovecot_no_ssl, CM_ESTARTTLS_REFUSED,
          "IMAP STARTTLS: server refused STARTTLS: \"a001 BAD TLS support isn't enabled.\"");
    FAILS(CM_STARTTLS_IMAP, NULL, no, CM_ESTARTTLS_REFUSED,
          "IMAP STARTTLS: server refused STARTTLS: \"a001 NO TLS is not available now\"");
    FAILS(CM_STARTTLS_IMAP, NULL, bye, CM_ESTARTTLS_REFUSED,
          "IMAP greeting: server refused the session: \"* BYE Too many connections from your "
          "IP\"");
    FAILS(CM_STARTTLS_IMAP, NULL, bye_later, CM_ESTARTTLS_REFUSED,
          "IMAP STARTTLS: server closed the session: \"* BYE Server shutting down\"");
    FAILS(CM_STARTTLS_IMAP, NULL, wrong_tag, CM_ESTARTTLS_PROTO,
          "IMAP STARTTLS: unexpected answer \"a002 OK what?\\r\\n\"");
}

static void test_pop3(void)
{
    /* Dovecot 2.3 pop3-login. */
    static const struct step dovecot[] = {
        {NONE_B, S("+OK Dovecot (Debian) ready.\r\n")},
        {S("STLS\r\n"), S("+OK Begin TLS negotiation now.\r\n")},
    };
    static const struct step bare[] = {
        {NONE_B, S("+OK\n")},
        {S("STLS\r\n"), S("+OK\n")},
    };
    static const struct step dovecot_no_ssl[] = {
        {NONE_B, S("+OK Dovecot ready.\r\n")},
        {S("STLS\r\n"), S("-ERR TLS support isn't enabled.\r\n")},
    };
    static const struct step greeting_err[] = {
        {NONE_B, S("-ERR [SYS/TEMP] Too many connections\r\n")},
    };
    static const struct step okay[] = {
        {NONE_B, S("+OKAY\r\n")},
    };

    SUCCEEDS(CM_STARTTLS_POP3, NULL, dovecot);
    SUCCEEDS(CM_STARTTLS_POP3, NULL, bare);
    FAILS(CM_STARTTLS_POP3, NULL, dovecot_no_ssl, CM_ESTARTTLS_REFUSED,
          "POP3 STLS: server refused STLS: \"-ERR TLS support isn't enabled.\"");
    FAILS(CM_STARTTLS_POP3, NULL, greeting_err, CM_ESTARTTLS_REFUSED,
          "POP3 greeting: server refused the session: \"-ERR [SYS/TEMP] Too many connections\"");
    FAILS(CM_STARTTLS_POP3, NULL, okay, CM_ESTARTTLS_PROTO,
          "POP3 greeting: unexpected answer \"+OKAY\\r\\n\"");
}

#define AUTH_TLS "AUTH TLS\r\n"

static void test_ftp(void)
{
    static const struct step vsftpd[] = {
        {NONE_B, S("220 (vsFTPd 3.0.3)\r\n")},
        {S(AUTH_TLS), S("234 Proceed with negotiation.\r\n")},
    };
    static const struct step proftpd[] = {
        {NONE_B, S("220 ProFTPD Server (Debian) [::ffff:192.0.2.10]\r\n")},
        {S(AUTH_TLS), S("234 AUTH TLS successful\r\n")},
    };
    /* Pure-FTPd's banner: a multi-line 220 whose first line is "220-" plus dashes. */
    static const struct step pureftpd[] = {
        {NONE_B, S("220---------- Welcome to Pure-FTPd [privsep] [TLS] ----------\r\n"
                   "220-You are user number 1 of 50 allowed.\r\n"
                   "220-Local time is now 10:00. Server port: 21.\r\n"
                   "220-This is a private system - No anonymous login\r\n"
                   "220-IPv6 connections are also welcome on this server.\r\n"
                   "220 You will be disconnected after 15 minutes of inactivity.\r\n")},
        {S(AUTH_TLS), S("234 AUTH TLS OK.\r\n")},
    };
    /* RFC 959 section 4.2: free text inside a multi-line reply, even lines that look like
     * other codes; a 120 announces the 220. */
    static const struct step rfc959[] = {
        {NONE_B, S("120 Service ready in 1 minute.\r\n220-First line\r\n  free text\r\n"
                   "234 not the end\r\n220-still not\r\n220 End\r\n")},
        {S(AUTH_TLS), S("234-Multi\n234 line\n")},
    };

    SUCCEEDS(CM_STARTTLS_FTP, NULL, vsftpd);
    SUCCEEDS(CM_STARTTLS_FTP, NULL, proftpd);
    SUCCEEDS(CM_STARTTLS_FTP, NULL, pureftpd);
    SUCCEEDS(CM_STARTTLS_FTP, NULL, rfc959);
}

static void test_ftp_refused(void)
{
    /* RFC 2228 section 5's text for 534. */
    static const struct step policy[] = {
        {NONE_B, S("220 (vsFTPd 3.0.3)\r\n")},
        {S(AUTH_TLS), S("534 Request denied for policy reason.\r\n")},
    };
    /* vsftpd with ssl_enable=NO does not know AUTH before login. */
    static const struct step vsftpd_no_ssl[] = {
        {NONE_B, S("220 (vsFTPd 3.0.3)\r\n")},
        {S(AUTH_TLS), S("530 Please login with USER and PASS.\r\n")},
    };
    static const struct step busy[] = {
        {NONE_B, S("421 Too many users are connected, please try again later.\r\n")},
    };

    FAILS(CM_STARTTLS_FTP, NULL, policy, CM_ESTARTTLS_REFUSED,
          "FTP AUTH TLS: server refused AUTH TLS: \"534 Request denied for policy reason.\"");
    FAILS(CM_STARTTLS_FTP, NULL, vsftpd_no_ssl, CM_ESTARTTLS_REFUSED,
          "FTP AUTH TLS: server refused AUTH TLS: \"530 Please login with USER and PASS.\"");
    FAILS(CM_STARTTLS_FTP, NULL, busy, CM_ESTARTTLS_REFUSED,
          "FTP greeting: server refused the session: \"421 Too many users are connected, please "
          "try again later.\"");
}

/* The request every LDAP machine sends: see src/probe/starttls.c for the byte-by-byte reading. */
#define LDAP_REQUEST                                                                               \
    "\x30\x1d\x02\x01\x01\x77\x18\x80\x16"                                                         \
    "1.3.6.1.4.1.1466.20037"

static void test_ldap(void)
{
    /* OpenLDAP slapd: starttls_extop sets no response OID, so the ExtendedResponse is the bare
     * LDAPResult: success, empty matchedDN and diagnosticMessage. */
    static const struct step slapd[] = {
        {S(LDAP_REQUEST), S("\x30\x0c\x02\x01\x01\x78\x07\x0a\x01\x00\x04\x00\x04\x00")},
    };
    /* Four-octet long-form lengths as Active Directory writes them, with the optional
     * responseName [10] (ldaptive's decoder test fixture). */
    static const struct step long_form[] = {
        {S(LDAP_REQUEST), S("\x30\x84\x00\x00\x00\x28\x02\x01\x01\x78\x84\x00\x00\x00\x1f\x0a"
                            "\x01\x00\x04\x00\x04\x00\x8a\x16"
                            "1.3.6.1.4.1.1466.20037")},
    };
    /* Controls after the protocolOp, and a two-octet messageID with a leading zero. */
    static const struct step controls[] = {
        {S(LDAP_REQUEST), S("\x30\x15\x02\x02\x00\x01\x78\x07\x0a\x01\x00\x04\x00\x04\x00"
                            "\xa0\x06\x30\x04\x04\x02xy")},
    };

    SUCCEEDS(CM_STARTTLS_LDAP, NULL, slapd);
    SUCCEEDS(CM_STARTTLS_LDAP, NULL, long_form);
    SUCCEEDS(CM_STARTTLS_LDAP, NULL, controls);
}

static void test_ldap_refused(void)
{
    /* slapd without TLS support compiled in: extended.c answers unknown operations so. */
    static const struct step unsupported[] = {
        {S(LDAP_REQUEST), S("\x30\x2a\x02\x01\x01\x78\x25\x0a\x01\x02\x04\x00\x04\x1e"
                            "unsupported extended operation")},
    };
    /* slapd with TLS compiled in but no certificate configured (starttls.c). */
    static const struct step unavailable[] = {
        {S(LDAP_REQUEST), S("\x30\x24\x02\x01\x01\x78\x1f\x0a\x01\x34\x04\x00\x04\x18"
                            "Could not initialize TLS")},
    };
    /* RFC 4511 section 4.4.1: Notice of Disconnection, messageID 0. */
    static const struct step notice[] = {
        {S(LDAP_REQUEST), S("\x30\x2b\x02\x01\x00\x78\x26\x0a\x01\x34\x04\x00\x04\x07"
                            "go away"
                            "\x8a\x16"
                            "1.3.6.1.4.1.1466.20036")},
    };

    FAILS(CM_STARTTLS_LDAP, NULL, unsupported, CM_ESTARTTLS_REFUSED,
          "LDAP StartTLS: server refused StartTLS: resultCode 2 (protocolError): \"unsupported "
          "extended operation\"");
    FAILS(CM_STARTTLS_LDAP, NULL, unavailable, CM_ESTARTTLS_REFUSED,
          "LDAP StartTLS: server refused StartTLS: resultCode 52 (unavailable): \"Could not "
          "initialize TLS\"");
    FAILS(CM_STARTTLS_LDAP, NULL, notice, CM_ESTARTTLS_REFUSED,
          "LDAP StartTLS: server sent a notice of disconnection: resultCode 52 (unavailable): "
          "\"go away\"");
}

static void test_ldap_malformed(void)
{
    static const struct step indefinite[] = {
        {S(LDAP_REQUEST), S("\x30\x80\x02\x01\x01\x00\x00")},
    };
    static const struct step huge[] = {
        {S(LDAP_REQUEST), S("\x30\x84\x00\x01\x00\x00\x02\x01\x01")},
    };
    /* A BindResponse, not an ExtendedResponse. */
    static const struct step bind[] = {
        {S(LDAP_REQUEST), S("\x30\x0c\x02\x01\x01\x61\x07\x0a\x01\x00\x04\x00\x04\x00")},
    };
    static const struct step other_id[] = {
        {S(LDAP_REQUEST), S("\x30\x0c\x02\x01\x07\x78\x07\x0a\x01\x00\x04\x00\x04\x00")},
    };
    /* The inner length claims more than the message holds. */
    static const struct step inner_overrun[] = {
        {S(LDAP_REQUEST), S("\x30\x0c\x02\x01\x01\x78\x09\x0a\x01\x00\x04\x00\x04\x00")},
    };
    static const struct step no_diag[] = {
        {S(LDAP_REQUEST), S("\x30\x0a\x02\x01\x01\x78\x05\x0a\x01\x00\x04\x00")},
    };
    static const struct step negative_code[] = {
        {S(LDAP_REQUEST), S("\x30\x0c\x02\x01\x01\x78\x07\x0a\x01\xff\x04\x00\x04\x00")},
    };
    /* A TLS alert: what an LDAPS port answers to plaintext. */
    static const struct step tls_alert[] = {
        {S(LDAP_REQUEST), S("\x15\x03\x03\x00\x02\x02\x46")},
    };

    FAILS(CM_STARTTLS_LDAP, NULL, indefinite, CM_ESTARTTLS_PROTO,
          "LDAP StartTLS: malformed LDAP response (length): \"0\\x80\\x02\\x01\\x01\\x00\\x00\"");
    FAILS(CM_STARTTLS_LDAP, NULL, huge, CM_ESTARTTLS_PROTO,
          "LDAP StartTLS: server announced a 65536-byte LDAP message; at most 16384 bytes are "
          "accepted");
    FAILS(CM_STARTTLS_LDAP, NULL, bind, CM_ESTARTTLS_PROTO,
          "LDAP StartTLS: server answered with LDAP operation 0x61 (messageID 1), not an "
          "ExtendedResponse");
    FAILS(CM_STARTTLS_LDAP, NULL, other_id, CM_ESTARTTLS_PROTO,
          "LDAP StartTLS: server answered messageID 7; the request was 1");
    FAILS(CM_STARTTLS_LDAP, NULL, inner_overrun, CM_ESTARTTLS_PROTO,
          "LDAP StartTLS: malformed LDAP response (protocolOp): "
          "\"0\\x0c\\x02\\x01\\x01x\\t\\n\\x01\\x00\\x04\\x00\\x04\\x00\"");
    FAILS(CM_STARTTLS_LDAP, NULL, no_diag, CM_ESTARTTLS_PROTO,
          "LDAP StartTLS: malformed LDAP response (diagnosticMessage): "
          "\"0\\n\\x02\\x01\\x01x\\x05\\n\\x01\\x00\\x04\\x00\"");
    FAILS(CM_STARTTLS_LDAP, NULL, negative_code, CM_ESTARTTLS_PROTO,
          "LDAP StartTLS: malformed LDAP response (resultCode): "
          "\"0\\x0c\\x02\\x01\\x01x\\x07\\n\\x01\\xff\\x04\\x00\\x04\\x00\"");
    FAILS(CM_STARTTLS_LDAP, NULL, tls_alert, CM_ESTARTTLS_PROTO,
          "LDAP StartTLS: unexpected answer \"\\x15\\x03\\x03\\x00\\x02\\x02F\" (a TLS record: "
          "does this port expect TLS from the first byte?)");
}

#define PG_SSLREQUEST "\x00\x00\x00\x08\x04\xd2\x16\x2f"

static void test_postgres(void)
{
    static const struct step yes[] = {{S(PG_SSLREQUEST), S("S")}};
    static const struct step no[] = {{S(PG_SSLREQUEST), S("N")}};
    /* An ErrorResponse (protocol 3) instead of S or N, fields S, V, C, M, R. */
    static const struct step error_v3[] = {
        {S(PG_SSLREQUEST), S("E\x00\x00\x00\x75"
                             "SFATAL\x00"
                             "VFATAL\x00"
                             "C0A000\x00"
                             "Munsupported frontend protocol 1234.5679: server supports 3.0 "
                             "to 3.0\x00"
                             "RProcessStartupPacket\x00\x00")},
    };
    /* Protocol 2 ErrorResponse: a bare C string. */
    static const struct step error_v2[] = {
        {S(PG_SSLREQUEST), S("EFATAL:  unsupported frontend protocol\n\x00")},
    };
    static const struct step http[] = {
        {S(PG_SSLREQUEST), S("HTTP/1.1 400 Bad Request\r\n\r\n")},
    };
    /* An ErrorResponse whose length cannot be, and one without an M field. */
    static const struct step bad_length[] = {{S(PG_SSLREQUEST), S("E\x00\x00\x00\x03")}};
    static const struct step no_message[] = {
        {S(PG_SSLREQUEST), S("E\x00\x00\x00\x0c"
                             "SFATAL\x00\x00")},
    };

    SUCCEEDS(CM_STARTTLS_POSTGRES, NULL, yes);
    FAILS(CM_STARTTLS_POSTGRES, NULL, no, CM_ESTARTTLS_REFUSED,
          "PostgreSQL SSLRequest: server has SSL off (it answered 'N')");
    FAILS(CM_STARTTLS_POSTGRES, NULL, error_v3, CM_ESTARTTLS_PROTO,
          "PostgreSQL SSLRequest: server answered with an error instead of 'S' or 'N' (too "
          "old?): \"FATAL: unsupported frontend protocol 1234.5679: server supports 3.0 to "
          "3.0\"");
    FAILS(CM_STARTTLS_POSTGRES, NULL, error_v2, CM_ESTARTTLS_PROTO,
          "PostgreSQL SSLRequest: server answered with an error instead of 'S' or 'N' (too "
          "old?): \"FATAL:  unsupported frontend protocol\\n\"");
    FAILS(CM_STARTTLS_POSTGRES, NULL, http, CM_ESTARTTLS_PROTO,
          "PostgreSQL SSLRequest: unexpected answer \"HTTP/1.1 400 Bad Request\\r\\n\\r\\n\"");
    FAILS(CM_STARTTLS_POSTGRES, NULL, bad_length, CM_ESTARTTLS_PROTO,
          "PostgreSQL SSLRequest: unexpected answer \"E\\x00\\x00\\x00\\x03\"");
    FAILS(CM_STARTTLS_POSTGRES, NULL, no_message, CM_ESTARTTLS_PROTO,
          "PostgreSQL SSLRequest: unexpected answer \"E\\x00\\x00\\x00\\x0cSFATAL\\x00\\x00\"");
}

/* MySQL 8.0.32's Protocol::HandshakeV10 as dissected byte by byte in "Exploring the MySQL
 * protocol" (KarboniteKream, 2024): capabilities 0xdfffffff, CLIENT_SSL among them. */
#define MYSQL8_PAYLOAD                                                                             \
    "\x0a"                                                                                         \
    "8.0.32\x00"                                                                                   \
    "\x08\x00\x00\x00"                                                                             \
    "\x1c\x46\x19\x46\x59\x76\x40\x4b"                                                             \
    "\x00"                                                                                         \
    "\xff\xff"                                                                                     \
    "\xff"                                                                                         \
    "\x02\x00"                                                                                     \
    "\xff\xdf"                                                                                     \
    "\x15"                                                                                         \
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"                                                     \
    "\x3f\x71\x34\x71\x53\x45\x5e\x5d\x22\x7a\x32\x3d\x00"                                         \
    "caching_sha2_password\x00"
#define MYSQL8_HANDSHAKE "\x4a\x00\x00\x00" MYSQL8_PAYLOAD

/* Protocol::SSLRequest: length 32, sequence 1; CLIENT_SSL | CLIENT_PROTOCOL_41 |
 * CLIENT_SECURE_CONNECTION; max packet 16 MiB; utf8_general_ci; 23 zero bytes. */
#define MYSQL_SSLREQUEST(seq)                                                                      \
    "\x20\x00\x00" seq "\x00\x8a\x00\x00"                                                          \
    "\x00\x00\x00\x01"                                                                             \
    "\x21"                                                                                         \
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"

/* MySQL 5.5.46 (Ubuntu 14.04) without SSL: capabilities 0x800ff7ff, no CLIENT_SSL. Captured
 * in TraceBundy/MySQL-Protocol-Analysis. */
#define MYSQL55_NO_SSL                                                                             \
    "\x5b\x00\x00\x00"                                                                             \
    "\x0a"                                                                                         \
    "5.5.46-0ubuntu0.14.04.2\x00"                                                                  \
    "\x5f\x00\x00\x00"                                                                             \
    "lb*Fc@Te\x00"                                                                                 \
    "\xff\xf7"                                                                                     \
    "\x08"                                                                                         \
    "\x02\x00"                                                                                     \
    "\x0f\x80"                                                                                     \
    "\x15"                                                                                         \
    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"                                                     \
    "~m&p(p~K7s_a\x00"                                                                             \
    "mysql_native_password\x00"

static void test_mysql(void)
{
    struct script sc = {CM_STARTTLS_MYSQL,
                        NULL,
                        (const struct step[]){{NONE_B, S(MYSQL8_HANDSHAKE)}},
                        1,
                        S(MYSQL_SSLREQUEST("\x01")),
                        CM_STARTTLS_DONE};
    /* The SSLRequest's sequence id follows the server's. */
    struct script seq = {CM_STARTTLS_MYSQL,
                         NULL,
                         (const struct step[]){{NONE_B, S("\x4a\x00\x00\x07" MYSQL8_PAYLOAD)}},
                         1,
                         S(MYSQL_SSLREQUEST("\x08")),
                         CM_STARTTLS_DONE};
    struct cm_starttls *st;

    play_all(&sc, __LINE__);
    play_all(&seq, __LINE__);

    /* DONE comes with the handshake; the SSLRequest is what is left to send. */
    cm_starttls_new(CM_STARTTLS_MYSQL, NULL, &st);
    EXPECT_INT(cm_starttls_done(st), 0);
    EXPECT_INT(cm_starttls_input(st, MYSQL8_HANDSHAKE, sizeof(MYSQL8_HANDSHAKE) - 1),
               CM_STARTTLS_DONE);
    EXPECT_INT(cm_starttls_done(st), 1);
    cm_starttls_sent(st, 10);
    EXPECT_INT(cm_starttls_done(st), 1);
    /* Nothing may come before TLS, not even while the SSLRequest is being sent. */
    EXPECT_INT(cm_starttls_input(st, "\x00", 1), CM_ESTARTTLS_PROTO);
    EXPECT_STR(cm_starttls_error(st), "MySQL handshake: server sent data after its STARTTLS "
                                      "answer (possible injection): \"\\x00\"");
    cm_starttls_free(st);
}

/* Builds a MySQL packet with sequence id 0 around payload. */
static size_t mysql_packet(char *out, const char *payload, size_t len)
{
    out[0] = (char)(len & 0xff);
    out[1] = (char)(len >> 8 & 0xff);
    out[2] = (char)(len >> 16 & 0xff);
    out[3] = 0;
    memcpy(out + 4, payload, len);
    return len + 4;
}

static void mysql_fails(const char *payload, size_t len, int want, const char *message,
                        unsigned line)
{
    char packet[600];
    struct step steps[1] = {{NONE_B, {packet, mysql_packet(packet, payload, len)}}};
    struct script sc = {CM_STARTTLS_MYSQL, NULL, steps, 1, NONE_B, want};

    for (int how = WHOLE; how <= SEVENS; how++)
        cm_starttls_free(play(&sc, (enum chunking)how, line));
    play_fail(&sc, message, line);
}

#define MYSQL_FAILS(payload, want, message)                                                        \
    mysql_fails((payload), sizeof(payload) - 1, (want), (message), __LINE__)

static void test_mysql_refused(void)
{
    static const struct step no_ssl[] = {{NONE_B, S(MYSQL55_NO_SSL)}};

    FAILS(CM_STARTTLS_MYSQL, NULL, no_ssl, CM_ESTARTTLS_REFUSED,
          "MySQL handshake: server does not support TLS (no CLIENT_SSL in its capabilities; "
          "version \"5.5.46-0ubuntu0.14.04.2\")");
    /* ER_HOST_NOT_PRIVILEGED, sent instead of the handshake, without an SQL state. */
    MYSQL_FAILS("\xff\x6a\x04Host '192.0.2.10' is not allowed to connect to this MySQL server",
                CM_ESTARTTLS_REFUSED,
                "MySQL handshake: server refused the connection: error 1130: \"Host "
                "'192.0.2.10' is not allowed to connect to this MySQL server\"");
    /* ER_CON_COUNT_ERROR with its SQL state. */
    MYSQL_FAILS("\xff\x10\x04#08004Too many connections", CM_ESTARTTLS_REFUSED,
                "MySQL handshake: server refused the connection: error 1040 (08004): \"Too many "
                "connections\"");
    /* Protocol version 9 predates MySQL 3.21. */
    MYSQL_FAILS("\x09"
                "3.20.32\x00",
                CM_ESTARTTLS_PROTO,
                "MySQL handshake: unexpected handshake (protocol version 9): "
                "\"\\t\\x00\\x00\\x00\\t3.20.32\\x00\"");
    MYSQL_FAILS("\x0a"
                "8.0.32\x00\x08\x00\x00\x00\x1c\x46",
                CM_ESTARTTLS_PROTO,
                "MySQL handshake: truncated handshake: "
                "\"\\x0e\\x00\\x00\\x00\\n8.0.32\\x00\\x08\\x00\\x00\\x00\\x1cF\"");
    MYSQL_FAILS("\xff\x10", CM_ESTARTTLS_PROTO,
                "MySQL handshake: malformed error packet: \"\\x02\\x00\\x00\\x00\\xff\\x10\"");
    /* Capabilities with CLIENT_SSL but without CLIENT_PROTOCOL_41 (only the lower half). */
    MYSQL_FAILS("\x0a"
                "4.0\x00\x01\x00\x00\x00"
                "abcdefgh\x00\x00\x08",
                CM_ESTARTTLS_REFUSED,
                "MySQL handshake: server does not speak protocol 4.1 (version \"4.0\")");
}

#define XMPP_HEADER                                                                                \
    "<?xml version='1.0'?><stream:stream to='example.org' xmlns='jabber:client' "                  \
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
#define XMPP_STARTTLS "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
/* A Prosody-style answer: single quotes, UUID stream id, <required/> inside <starttls>. */
#define PROSODY_HEADER                                                                             \
    "<?xml version='1.0'?><stream:stream xml:lang='en' "                                           \
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xmlns='jabber:client' "         \
    "from='example.org' id='78150744-1f58-4b91-acf7-b46aabeacd80'>"
#define PROSODY_FEATURES                                                                           \
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"    \
    "</stream:features>"

static void test_xmpp(void)
{
    static const struct step prosody[] = {
        {S(XMPP_HEADER), S(PROSODY_HEADER PROSODY_FEATURES)},
        {S(XMPP_STARTTLS), S("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")},
    };
    /* Openfire: double quotes, an encoding in the declaration, an empty <starttls></starttls>,
     * SASL mechanisms and legacy auth after it. */
    static const struct step openfire[] = {
        {S(XMPP_HEADER),
         S("<?xml version='1.0' encoding='UTF-8'?><stream:stream "
           "xmlns:stream=\"http://etherx.jabber.org/streams\" xmlns=\"jabber:client\" "
           "from=\"example.org\" id=\"260d2859\" xml:lang=\"en\" version=\"1.0\">"
           "<stream:features><starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"></starttls>"
           "<mechanisms xmlns=\"urn:ietf:params:xml:ns:xmpp-sasl\"><mechanism>DIGEST-MD5"
           "</mechanism></mechanisms><auth xmlns=\"http://jabber.org/features/iq-auth\"/>"
           "</stream:features>")},
        {S(XMPP_STARTTLS), S("<proceed xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"/>")},
    };
    /* No declaration, whitespace between elements, a long-form <proceed></proceed>. */
    static const struct step spaced[] = {
        {S(XMPP_HEADER), S("\n<stream:stream version='1.0' from='example.org' id='x'>\n"
                           "  <stream:features>\n"
                           "    <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n"
                           "  </stream:features>")},
        {S(XMPP_STARTTLS), S("\n <proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'></proceed>")},
    };

    SUCCEEDS(CM_STARTTLS_XMPP, "example.org", prosody);
    SUCCEEDS(CM_STARTTLS_XMPP, "example.org", openfire);
    SUCCEEDS(CM_STARTTLS_XMPP, "example.org", spaced);
}

static void test_xmpp_refused(void)
{
    static const struct step failure[] = {
        {S(XMPP_HEADER), S(PROSODY_HEADER PROSODY_FEATURES)},
        {S(XMPP_STARTTLS), S("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>")},
    };
    static const struct step host_unknown[] = {
        {S(XMPP_HEADER),
         S(PROSODY_HEADER "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'"
                          "/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>This server does "
                          "not serve example.org</text></stream:error></stream:stream>")},
    };
    static const struct step error_later[] = {
        {S(XMPP_HEADER), S(PROSODY_HEADER PROSODY_FEATURES)},
        {S(XMPP_STARTTLS), S("<stream:error><policy-violation "
                             "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>")},
    };
    /* After TLS is switched off: SASL only. */
    static const struct step no_starttls[] = {
        {S(XMPP_HEADER),
         S(PROSODY_HEADER "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                          "<mechanism>PLAIN</mechanism></mechanisms></stream:features>")},
    };
    /* A <starttls> in another namespace is not the one. */
    static const struct step wrong_ns[] = {
        {S(XMPP_HEADER), S(PROSODY_HEADER "<stream:features><starttls xmlns='urn:example:tls'/>"
                                          "</stream:features>")},
    };
    static const struct step empty_features[] = {
        {S(XMPP_HEADER), S(PROSODY_HEADER "<stream:features/>")},
    };
    static const struct step pre_1_0[] = {
        {S(XMPP_HEADER), S("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                           "xmlns:stream='http://etherx.jabber.org/streams' id='1' "
                           "from='example.org'>")},
    };
    static const struct step closed[] = {
        {S(XMPP_HEADER), S(PROSODY_HEADER "</stream:stream>")},
    };
    static const struct step closed_later[] = {
        {S(XMPP_HEADER), S(PROSODY_HEADER PROSODY_FEATURES)},
        {S(XMPP_STARTTLS), S("</stream:stream>")},
    };

    FAILS(CM_STARTTLS_XMPP, "example.org", failure, CM_ESTARTTLS_REFUSED,
          "XMPP starttls: server refused STARTTLS: \"<failure "
          "xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>\"");
    FAILS(CM_STARTTLS_XMPP, "example.org", host_unknown, CM_ESTARTTLS_REFUSED,
          "XMPP stream features: server sent a stream error: host-unknown (\"This server does "
          "not serve example.org\")");
    FAILS(CM_STARTTLS_XMPP, "example.org", error_later, CM_ESTARTTLS_REFUSED,
          "XMPP starttls: server sent a stream error: policy-violation");
    FAILS(CM_STARTTLS_XMPP, "example.org", no_starttls, CM_ESTARTTLS_REFUSED,
          "XMPP stream features: server does not offer STARTTLS (features: "
          "\"<stream:features><mechanisms "
          "xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></"
          "mechanisms></stream:...\")");
    FAILS(CM_STARTTLS_XMPP, "example.org", wrong_ns, CM_ESTARTTLS_REFUSED,
          "XMPP stream features: server does not offer STARTTLS (features: "
          "\"<stream:features><starttls xmlns='urn:example:tls'/></stream:features>\")");
    FAILS(CM_STARTTLS_XMPP, "example.org", empty_features, CM_ESTARTTLS_REFUSED,
          "XMPP stream features: server does not offer STARTTLS (features: "
          "\"<stream:features/>\")");
    FAILS(CM_STARTTLS_XMPP, "example.org", pre_1_0, CM_ESTARTTLS_REFUSED,
          "XMPP stream features: server does not speak XMPP 1.0 (no version in its stream "
          "header \"<stream:stream xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' id='1' from='example.org'>\")");
    FAILS(CM_STARTTLS_XMPP, "example.org", closed, CM_ESTARTTLS_REFUSED,
          "XMPP stream features: server closed the stream before its features");
    FAILS(CM_STARTTLS_XMPP, "example.org", closed_later, CM_ESTARTTLS_REFUSED,
          "XMPP starttls: server closed the stream");
}

static void test_xmpp_host(void)
{
    struct cm_starttls *st = NULL;
    char host[300];
    static const char want[] =
        "<?xml version='1.0'?><stream:stream to='a&apos;b&amp;c&lt;d&gt;&quot;\xc3\xa9' "
        "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

    EXPECT_INT(cm_starttls_new(CM_STARTTLS_XMPP, "a'b&c<d>\"\xc3\xa9", &st), 0);
    expect_output(st, (struct bytes)S(want), "escaped header", __LINE__);
    cm_starttls_free(st);

    /* The worst case for the output buffer: 255 characters that each need an entity. */
    memset(host, '\'', 255);
    host[255] = '\0';
    EXPECT_INT(cm_starttls_new(CM_STARTTLS_XMPP, host, &st), 0);
    if (st) {
        size_t len = 0;

        cm_starttls_output(st, &len);
        EXPECT_INT(len, sizeof(want) - 1 - strlen("a&apos;b&amp;c&lt;d&gt;&quot;\xc3\xa9") +
                            255 * strlen("&apos;"));
        cm_starttls_free(st);
    }
    host[256] = '\0';
    host[255] = 'x';
    st = (struct cm_starttls *)host;
    EXPECT_INT(cm_starttls_new(CM_STARTTLS_XMPP, host, &st), CM_EBADARG);
    CU_ASSERT_PTR_NULL(st);
    EXPECT_INT(cm_starttls_new(CM_STARTTLS_XMPP, NULL, &st), CM_EBADARG);
    EXPECT_INT(cm_starttls_new(CM_STARTTLS_XMPP, "", &st), CM_EBADARG);
    EXPECT_INT(cm_starttls_new(CM_STARTTLS_XMPP, "a\nb", &st), CM_EBADARG);
    EXPECT_INT(cm_starttls_new(CM_STARTTLS_XMPP, "a\x7f", &st), CM_EBADARG);
}

/* ---- Cases shared by all protocols ---- */

/* The happy transcript of each protocol, for the cross-protocol tests below. */
static struct script happy(enum cm_starttls_proto p)
{
    static const struct step pop3[] = {
        {NONE_B, S("+OK ready\r\n")},
        {S("STLS\r\n"), S("+OK Begin TLS negotiation now.\r\n")},
    };
    static const struct step imap[] = {
        {NONE_B, S(DOVECOT_IMAP_GREETING)},
        {S(STARTTLS_A001), S("a001 OK Begin TLS negotiation now.\r\n")},
    };
    static const struct step ftp[] = {
        {NONE_B, S("220 (vsFTPd 3.0.3)\r\n")},
        {S(AUTH_TLS), S("234 Proceed with negotiation.\r\n")},
    };
    static const struct step ldap[] = {
        {S(LDAP_REQUEST), S("\x30\x0c\x02\x01\x01\x78\x07\x0a\x01\x00\x04\x00\x04\x00")},
    };
    static const struct step pg[] = {{S(PG_SSLREQUEST), S("S")}};
    static const struct step mysql[] = {{NONE_B, S(MYSQL8_HANDSHAKE)}};
    static const struct step xmpp[] = {
        {S(XMPP_HEADER), S(PROSODY_HEADER PROSODY_FEATURES)},
        {S(XMPP_STARTTLS), S("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")},
    };
    struct script sc = SCRIPT(CM_STARTTLS_SMTP, NULL, smtp_postfix, CM_STARTTLS_DONE);

    switch (p) {
    case CM_STARTTLS_IMAP:
        sc = SCRIPT(p, NULL, imap, CM_STARTTLS_DONE);
        break;
    case CM_STARTTLS_POP3:
        sc = SCRIPT(p, NULL, pop3, CM_STARTTLS_DONE);
        break;
    case CM_STARTTLS_FTP:
        sc = SCRIPT(p, NULL, ftp, CM_STARTTLS_DONE);
        break;
    case CM_STARTTLS_LDAP:
        sc = SCRIPT(p, NULL, ldap, CM_STARTTLS_DONE);
        break;
    case CM_STARTTLS_POSTGRES:
        sc = SCRIPT(p, NULL, pg, CM_STARTTLS_DONE);
        break;
    case CM_STARTTLS_MYSQL:
        sc = SCRIPT(p, NULL, mysql, CM_STARTTLS_DONE);
        sc.final_out = (struct bytes)S(MYSQL_SSLREQUEST("\x01"));
        break;
    case CM_STARTTLS_XMPP:
        sc = SCRIPT(p, "example.org", xmpp, CM_STARTTLS_DONE);
        break;
    default:
        break;
    }
    return sc;
}

static const char *const final_step[] = {
    [CM_STARTTLS_SMTP] = "SMTP STARTTLS",    [CM_STARTTLS_IMAP] = "IMAP STARTTLS",
    [CM_STARTTLS_POP3] = "POP3 STLS",        [CM_STARTTLS_FTP] = "FTP AUTH TLS",
    [CM_STARTTLS_LDAP] = "LDAP StartTLS",    [CM_STARTTLS_POSTGRES] = "PostgreSQL SSLRequest",
    [CM_STARTTLS_MYSQL] = "MySQL handshake", [CM_STARTTLS_XMPP] = "XMPP starttls",
};

/* RFC 3207 section 4: nothing after the go-ahead, whether it comes in the same read as the
 * answer or in a later one. */
static void test_data_after_answer(void)
{
    for (int p = CM_STARTTLS_SMTP; p <= CM_STARTTLS_XMPP; p++) {
        struct script sc = happy((enum cm_starttls_proto)p);
        struct step steps[4];
        const struct step *last = &sc.steps[sc.nsteps - 1];
        char reply[1024], want[400];

        /* The injected command of the STARTTLS-injection attacks, in the same read. */
        memcpy(steps, sc.steps, sc.nsteps * sizeof(steps[0]));
        memcpy(reply, last->server.p, last->server.len);
        memcpy(reply + last->server.len, "MAIL FROM:<a@b>\r\n", 17);
        steps[sc.nsteps - 1].server = (struct bytes){reply, last->server.len + 17};
        sc.steps = steps;
        sc.want = CM_ESTARTTLS_PROTO;
        snprintf(want, sizeof(want),
                 "%s: server sent data after its STARTTLS answer (possible injection): "
                 "\"MAIL FROM:<a@b>\\r\\n\"",
                 final_step[p]);
        play_fail(&sc, want, __LINE__);

        /* In a later read, also after the go-ahead's output (MySQL's) was sent. */
        sc = happy((enum cm_starttls_proto)p);
        {
            struct cm_starttls *st = play(&sc, SEVENS, __LINE__);

            EXPECT_INT(cm_starttls_input(st, NULL, 0), CM_STARTTLS_DONE);
            EXPECT_INT(cm_starttls_input(st, "\r\n", 2), CM_ESTARTTLS_PROTO);
            snprintf(want, sizeof(want),
                     "%s: server sent data after its STARTTLS answer (possible injection): "
                     "\"\\r\\n\"",
                     final_step[p]);
            EXPECT_STR(cm_starttls_error(st), want);
            EXPECT_INT(cm_starttls_done(st), 0);
            cm_starttls_free(st);
        }
    }
}

/* A reply followed at once by an answer to the command the client has not sent yet. */
static void test_pipelined_answers(void)
{
    static const struct step smtp[] = {
        {NONE_B, S(POSTFIX_GREETING POSTFIX_EHLO)},
    };
    static const struct step imap[] = {
        {NONE_B, S("* OK ready\r\na001 OK Begin TLS negotiation now.\r\n")},
    };
    static const struct step xmpp[] = {
        {S(XMPP_HEADER),
         S(PROSODY_HEADER PROSODY_FEATURES "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")},
    };
    static const struct step ftp[] = {
        {NONE_B, S("220 (vsFTPd 3.0.3)\r\n234 Proceed with negotiation.\r\n")},
    };

    FAILS(CM_STARTTLS_SMTP, NULL, smtp, CM_ESTARTTLS_PROTO,
          "SMTP greeting: server sent more than its reply before the client's next message: "
          "\"250-mail.example.org\\r\\n250-PIPELINING\\r\\n250-SIZE 10240000\\r\\n250-VRFY\\r\\n"
          "250-ETRN\\r\\n250-STARTTLS\\r\\n250-ENHANCEDSTATU...\"");
    FAILS(CM_STARTTLS_IMAP, NULL, imap, CM_ESTARTTLS_PROTO,
          "IMAP greeting: server sent more than its reply before the client's next message: "
          "\"a001 OK Begin TLS negotiation now.\\r\\n\"");
    FAILS(CM_STARTTLS_XMPP, "example.org", xmpp, CM_ESTARTTLS_PROTO,
          "XMPP stream features: server sent more than its reply before the client's next "
          "message: \"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\"");
    FAILS(CM_STARTTLS_FTP, NULL, ftp, CM_ESTARTTLS_PROTO,
          "FTP greeting: server sent more than its reply before the client's next message: "
          "\"234 Proceed with negotiation.\\r\\n\"");
}

/* Input while the client's message is still pending breaks the caller's contract (send, then
 * read), or the server answered what it had not received. */
static void test_input_while_output_pending(void)
{
    struct cm_starttls *st;

    cm_starttls_new(CM_STARTTLS_POSTGRES, NULL, &st);
    cm_starttls_sent(st, 7);
    EXPECT_INT(cm_starttls_input(st, "S", 1), CM_ESTARTTLS_PROTO);
    EXPECT_STR(cm_starttls_error(st), "PostgreSQL SSLRequest: server sent data before the "
                                      "client's request was fully sent: \"S\"");
    cm_starttls_free(st);

    cm_starttls_new(CM_STARTTLS_SMTP, NULL, &st);
    EXPECT_INT(cm_starttls_input(st, POSTFIX_GREETING, strlen(POSTFIX_GREETING)), CM_STARTTLS_MORE);
    EXPECT_INT(cm_starttls_input(st, "250 ", 4), CM_ESTARTTLS_PROTO);
    EXPECT_STR(cm_starttls_error(st), "SMTP EHLO: server sent data before the client's request "
                                      "was fully sent: \"250 \"");
    cm_starttls_free(st);
}

/* Garbage: an HTTP server's answer, an SSH banner, binary, a TLS alert. */
static void test_garbage(void)
{
    static const char http[] = "HTTP/1.1 400 Bad Request\r\nServer: nginx\r\n\r\n";
    static const char ssh[] = "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n";
    static const char binary[] = "\x00\xff\x13\x37\x80\x01\x02";
    static const char alert[] = "\x15\x03\x01\x00\x02\x02\x32";
    const char *inputs[] = {http, ssh, binary, alert};
    const size_t lens[] = {sizeof(http) - 1, sizeof(ssh) - 1, sizeof(binary) - 1,
                           sizeof(alert) - 1};

    for (int p = CM_STARTTLS_SMTP; p <= CM_STARTTLS_XMPP; p++) {
        for (size_t i = 0; i < 4; i++) {
            for (int how = WHOLE; how <= BYTES; how++) {
                /* A lone 'S' is PostgreSQL's go-ahead: "SSH-" is data after it there. */
                if (p == CM_STARTTLS_POSTGRES && inputs[i] == ssh)
                    continue;
                struct script sc = happy((enum cm_starttls_proto)p);
                struct step first = sc.steps[0];
                struct cm_starttls *st;
                char what[200];

                first.server = (struct bytes){inputs[i], lens[i]};
                sc.steps = &first;
                sc.nsteps = 1;
                sc.want = CM_ESTARTTLS_PROTO;
                sc.final_out = (struct bytes)NONE_B;
                st = play(&sc, (enum chunking)how, __LINE__);
                snprintf(what, sizeof(what), "%s input %zu %s: message", cm_starttls_name(p), i,
                         chunking_name[how]);
                CU_assertImplementation(cm_starttls_error(st) &&
                                            strstr(cm_starttls_error(st), "unexpected answer"),
                                        __LINE__, what, __FILE__, "", CU_FALSE);
                /* Whole reads of a TLS record get the hint. */
                if (inputs[i] == alert && how == WHOLE)
                    CU_assertImplementation(strstr(cm_starttls_error(st), "a TLS record") != NULL,
                                            __LINE__, what, __FILE__, "", CU_FALSE);
                cm_starttls_free(st);
            }
        }
    }
}

static void test_limits(void)
{
    static char big[CM_STARTTLS_MAX_INPUT + 2000];
    struct cm_starttls *st;
    size_t n;

    /* A line of exactly CM_STARTTLS_MAX_LINE bytes with its CRLF passes; one more fails. */
    memset(big, 'x', sizeof(big));
    memcpy(big, "220 ", 4);
    memcpy(big + CM_STARTTLS_MAX_LINE - 2, "\r\n", 2);
    cm_starttls_new(CM_STARTTLS_SMTP, NULL, &st);
    EXPECT_INT(cm_starttls_input(st, big, CM_STARTTLS_MAX_LINE), CM_STARTTLS_MORE);
    expect_output(st, (struct bytes)S(EHLO), "EHLO after a long greeting", __LINE__);
    cm_starttls_free(st);

    memcpy(big + CM_STARTTLS_MAX_LINE - 2, "x\r\n", 3);
    cm_starttls_new(CM_STARTTLS_SMTP, NULL, &st);
    EXPECT_INT(cm_starttls_input(st, big, CM_STARTTLS_MAX_LINE + 1), CM_ESTARTTLS_PROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(cm_starttls_error(st),
                                  "SMTP greeting: server sent a line longer than 4096 bytes: "
                                  "\"220 xxxxxxx"));
    cm_starttls_free(st);

    /* Without a newline the line fails as soon as it cannot end in time, fed in pieces. */
    cm_starttls_new(CM_STARTTLS_IMAP, NULL, &st);
    memset(big, 'x', sizeof(big));
    memcpy(big, "* OK ", 5);
    for (n = 0; n < CM_STARTTLS_MAX_LINE - 1000; n += 1000)
        EXPECT_INT(cm_starttls_input(st, big + n, 1000), CM_STARTTLS_MORE);
    EXPECT_INT(cm_starttls_input(st, big + n, 1000), CM_ESTARTTLS_PROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(cm_starttls_error(st),
                                  "IMAP greeting: server sent a line longer than 4096 bytes: "
                                  "\"* OK xxxxx"));
    cm_starttls_free(st);

    /* 16 KiB in all: a multi-line greeting of 1000-byte lines never ends in time. */
    for (n = 0; n + 1000 <= sizeof(big); n += 1000) {
        memset(big + n, 'y', 1000);
        memcpy(big + n, "220-", 4);
        memcpy(big + n + 998, "\r\n", 2);
    }
    cm_starttls_new(CM_STARTTLS_SMTP, NULL, &st);
    for (n = 0; n + 1000 <= CM_STARTTLS_MAX_INPUT; n += 1000)
        EXPECT_INT(cm_starttls_input(st, big + n, 1000), CM_STARTTLS_MORE);
    EXPECT_INT(cm_starttls_input(st, big + n, 1000), CM_ESTARTTLS_PROTO);
    EXPECT_STR(cm_starttls_error(st), "SMTP greeting: server sent more than 16384 bytes");
    cm_starttls_free(st);

    /* The limit counts every step: a big EHLO reply after the greeting. */
    cm_starttls_new(CM_STARTTLS_SMTP, NULL, &st);
    cm_starttls_input(st, POSTFIX_GREETING, strlen(POSTFIX_GREETING));
    cm_starttls_sent(st, strlen(EHLO));
    for (n = 0; n < sizeof(big); n += 1000)
        memcpy(big + n, "250-", 4);
    for (n = 0; n + 1000 + strlen(POSTFIX_GREETING) <= CM_STARTTLS_MAX_INPUT; n += 1000)
        EXPECT_INT(cm_starttls_input(st, big + n, 1000), CM_STARTTLS_MORE);
    EXPECT_INT(cm_starttls_input(st, big + n, 1000), CM_ESTARTTLS_PROTO);
    EXPECT_STR(cm_starttls_error(st), "SMTP EHLO: server sent more than 16384 bytes");
    cm_starttls_free(st);

    /* XMPP features that never end. */
    cm_starttls_new(CM_STARTTLS_XMPP, "example.org", &st);
    cm_starttls_sent(st, sizeof(XMPP_HEADER) - 1);
    EXPECT_INT(cm_starttls_input(st, PROSODY_HEADER "<stream:features>",
                                 strlen(PROSODY_HEADER "<stream:features>")),
               CM_STARTTLS_MORE);
    memset(big, ' ', sizeof(big));
    for (n = 0; n < CM_STARTTLS_MAX_INPUT - 2000; n += 1000)
        EXPECT_INT(cm_starttls_input(st, big, 1000), CM_STARTTLS_MORE);
    EXPECT_INT(cm_starttls_input(st, big, 2000), CM_ESTARTTLS_PROTO);
    EXPECT_STR(cm_starttls_error(st), "XMPP stream features: server sent more than 16384 bytes");
    cm_starttls_free(st);

    /* MySQL's length field beyond the limit reads as garbage. */
    cm_starttls_new(CM_STARTTLS_MYSQL, NULL, &st);
    EXPECT_INT(cm_starttls_input(st, "\xff\xff\x00\x00\x0a", 5), CM_ESTARTTLS_PROTO);
    EXPECT_STR(cm_starttls_error(st),
               "MySQL handshake: unexpected answer \"\\xff\\xff\\x00\\x00\\n\"");
    cm_starttls_free(st);
}

/* Server text in messages is printable ASCII, quoted and cut. */
static void test_sanitised_messages(void)
{
    static const char reply[] =
        "454 \x1b[31mred\x1b[0m caf\xc3\xa9 \"quoted\" back\\slash tab\t"
        "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234"
        "56789\r\n";
    static const struct step steps[] = {
        {NONE_B, S(POSTFIX_GREETING)},
        {S(EHLO), S(POSTFIX_EHLO)},
        {S("STARTTLS\r\n"), S(reply)},
    };
    struct script sc = SCRIPT(CM_STARTTLS_SMTP, NULL, steps, CM_ESTARTTLS_REFUSED);
    struct cm_starttls *st = play(&sc, WHOLE, __LINE__);
    const char *err = cm_starttls_error(st);

    EXPECT_STR(err, "SMTP STARTTLS: server refused STARTTLS: \"454 \\x1b[31mred\\x1b[0m "
                    "caf\\xc3\\xa9 \\\"quoted\\\" back\\\\slash "
                    "tab\\t012345678901234567890123456789012345678901234567890123456...\"");
    for (const char *c = err; c && *c; c++)
        CU_ASSERT(*c >= 0x20 && *c < 0x7f);
    cm_starttls_free(st);
}

static void test_eof(void)
{
    struct cm_starttls *st;

    cm_starttls_new(CM_STARTTLS_IMAP, NULL, &st);
    EXPECT_INT(cm_starttls_eof(st), CM_ESTARTTLS);
    EXPECT_STR(cm_starttls_error(st), "IMAP greeting: server closed the connection without "
                                      "answering");
    cm_starttls_free(st);

    /* Mid-reply: the message quotes the unfinished reply from its first line. */
    cm_starttls_new(CM_STARTTLS_SMTP, NULL, &st);
    cm_starttls_input(st, POSTFIX_GREETING, strlen(POSTFIX_GREETING));
    cm_starttls_sent(st, 100);
    cm_starttls_input(st, "250-mail.example.org\r\n250-PIPE", 30);
    EXPECT_INT(cm_starttls_eof(st), CM_ESTARTTLS);
    EXPECT_STR(cm_starttls_error(st), "SMTP EHLO: server closed the connection in the middle of "
                                      "its reply \"250-mail.example.org\\r\\n250-PIPE\"");
    cm_starttls_free(st);

    /* After the go-ahead the close still fails: TLS cannot start any more. */
    cm_starttls_new(CM_STARTTLS_POSTGRES, NULL, &st);
    cm_starttls_sent(st, 8);
    EXPECT_INT(cm_starttls_input(st, "S", 1), CM_STARTTLS_DONE);
    EXPECT_INT(cm_starttls_eof(st), CM_ESTARTTLS);
    EXPECT_STR(cm_starttls_error(st), "PostgreSQL SSLRequest: server closed the connection after "
                                      "its STARTTLS answer");
    cm_starttls_free(st);

    /* After a failure the failure stands. */
    cm_starttls_new(CM_STARTTLS_POSTGRES, NULL, &st);
    cm_starttls_sent(st, 8);
    EXPECT_INT(cm_starttls_input(st, "N", 1), CM_ESTARTTLS_REFUSED);
    EXPECT_INT(cm_starttls_eof(st), CM_ESTARTTLS_REFUSED);
    cm_starttls_free(st);
}

static void test_api_arguments(void)
{
    struct cm_starttls *st = NULL;
    size_t len = 5;

    EXPECT_INT(cm_starttls_new(CM_STARTTLS_NONE, "x", &st), CM_EBADARG);
    EXPECT_INT(cm_starttls_new((enum cm_starttls_proto)99, "x", &st), CM_EBADARG);
    EXPECT_INT(cm_starttls_new((enum cm_starttls_proto) - 1, "x", &st), CM_EBADARG);
    EXPECT_INT(cm_starttls_new(CM_STARTTLS_SMTP, NULL, NULL), CM_EBADARG);
    CU_ASSERT_PTR_NULL(st);
    cm_starttls_free(NULL);
    EXPECT_INT(cm_starttls_input(NULL, "x", 1), CM_EBADARG);
    EXPECT_INT(cm_starttls_eof(NULL), CM_EBADARG);
    CU_ASSERT_PTR_NULL(cm_starttls_error(NULL));
    EXPECT_INT(cm_starttls_done(NULL), 0);
    CU_ASSERT_PTR_NULL(cm_starttls_output(NULL, &len));
    EXPECT_INT(len, 0);
    cm_starttls_sent(NULL, 1);

    /* Server-first protocols start with nothing to send; host is ignored. */
    EXPECT_INT(cm_starttls_new(CM_STARTTLS_FTP, "ignored", &st), 0);
    CU_ASSERT_PTR_NULL(cm_starttls_output(st, &len));
    EXPECT_INT(len, 0);
    EXPECT_INT(cm_starttls_input(st, NULL, 1), CM_EBADARG);
    EXPECT_INT(cm_starttls_input(st, NULL, 0), CM_STARTTLS_MORE);
    CU_ASSERT_PTR_NULL(cm_starttls_error(st));
    cm_starttls_free(st);

    /* Partial sends; sending more than pending counts as all of it. */
    EXPECT_INT(cm_starttls_new(CM_STARTTLS_LDAP, NULL, &st), 0);
    cm_starttls_sent(st, 30);
    expect_output(st, (struct bytes)S("7"), "last byte of the LDAP request", __LINE__);
    cm_starttls_sent(st, 1000);
    expect_output(st, (struct bytes)NONE_B, "all sent", __LINE__);
    cm_starttls_sent(st, 1);
    expect_output(st, (struct bytes)NONE_B, "sent with nothing pending", __LINE__);
    cm_starttls_free(st);

    EXPECT_STR(cm_strerror(CM_ESTARTTLS), "STARTTLS negotiation failed");
    EXPECT_STR(cm_strerror(CM_ESTARTTLS_REFUSED), "server refused STARTTLS");
    EXPECT_STR(cm_strerror(CM_ESTARTTLS_PROTO), "server answered something unexpected");
    EXPECT_STR(cm_err_name(CM_ESTARTTLS_PROTO), "ESTARTTLS_PROTO");
}

static void test_names(void)
{
    static const char *const all[] = {"smtp", "imap",     "pop3",  "ftp",
                                      "ldap", "postgres", "mysql", "xmpp"};
    enum cm_starttls_proto p = CM_STARTTLS_SMTP;

    for (int i = CM_STARTTLS_SMTP; i <= CM_STARTTLS_XMPP; i++) {
        EXPECT_STR(cm_starttls_name((enum cm_starttls_proto)i), all[i - 1]);
        EXPECT_INT(cm_starttls_parse(all[i - 1], &p), 0);
        EXPECT_INT(p, i);
    }
    CU_ASSERT_PTR_NULL(cm_starttls_name(CM_STARTTLS_NONE));
    CU_ASSERT_PTR_NULL(cm_starttls_name((enum cm_starttls_proto)9));
    CU_ASSERT_PTR_NULL(cm_starttls_name((enum cm_starttls_proto) - 3));
    EXPECT_INT(cm_starttls_parse("none", &p), 0);
    EXPECT_INT(p, CM_STARTTLS_NONE);
    EXPECT_INT(cm_starttls_parse("XMPP", &p), 0);
    EXPECT_INT(p, CM_STARTTLS_XMPP);
    EXPECT_INT(cm_starttls_parse("NoNe", &p), 0);
    EXPECT_INT(p, CM_STARTTLS_NONE);
    p = CM_STARTTLS_FTP;
    EXPECT_INT(cm_starttls_parse("postgresql", &p), CM_EBADARG);
    EXPECT_INT(cm_starttls_parse("", &p), CM_EBADARG);
    EXPECT_INT(cm_starttls_parse("smtp ", &p), CM_EBADARG);
    EXPECT_INT(cm_starttls_parse(NULL, &p), CM_EBADARG);
    EXPECT_INT(p, CM_STARTTLS_FTP);
}

static void test_for_port(void)
{
    static const struct {
        uint16_t port;
        enum cm_starttls_proto proto;
    } table[] = {
        {25, CM_STARTTLS_SMTP},       {587, CM_STARTTLS_SMTP},   {143, CM_STARTTLS_IMAP},
        {110, CM_STARTTLS_POP3},      {21, CM_STARTTLS_FTP},     {389, CM_STARTTLS_LDAP},
        {5432, CM_STARTTLS_POSTGRES}, {3306, CM_STARTTLS_MYSQL}, {5222, CM_STARTTLS_XMPP},
        {443, CM_STARTTLS_NONE},      {465, CM_STARTTLS_NONE},   {993, CM_STARTTLS_NONE},
        {995, CM_STARTTLS_NONE},      {636, CM_STARTTLS_NONE},   {5223, CM_STARTTLS_NONE},
        {0, CM_STARTTLS_NONE},        {65535, CM_STARTTLS_NONE}, {2525, CM_STARTTLS_NONE},
    };

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        char what[64];

        snprintf(what, sizeof(what), "cm_starttls_for_port(%u)", table[i].port);
        expect_int(cm_starttls_for_port(table[i].port), table[i].proto, what, __LINE__);
    }
}

/* ---- Fuzz ---- */

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

/* Fragments of every protocol, so that random concatenations reach the later states. */
static const char *const tokens[] = {
    "220",
    "220-",
    "220 ",
    "250-",
    "250 ",
    "STARTTLS",
    "starttls",
    "234 ",
    "\r\n",
    "\n",
    "* OK ",
    "* PREAUTH",
    "a001 OK",
    "a001 NO",
    "+OK",
    "-ERR",
    "<",
    ">",
    "/>",
    "<?xml ?>",
    "<stream:stream version='1.0'>",
    "<stream:features>",
    "</stream:features>",
    "<stream:features/>",
    "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    "<proceed/>",
    "<proceed>",
    "</proceed>",
    "<failure/>",
    "<stream:error>",
    "</stream:error>",
    "<text>",
    "</text>",
    "</stream:stream>",
    "0",
    "\x84",
    "\x0a\x01\x00",
    "\x04\x00",
    "\x02\x01\x01",
    "\x78",
    "\x8a",
    "S",
    "N",
    "E",
    "\x00",
    "\xff",
    "\x0a",
    "#",
    "\x15\x03\x03",
};

/* Checks one result of a machine under fuzz. */
static void fuzz_check(struct cm_starttls *st, int rc)
{
    const char *err = cm_starttls_error(st);
    size_t len = 1;

    if (rc == CM_STARTTLS_MORE || rc == CM_STARTTLS_DONE) {
        CU_ASSERT(err == NULL);
        CU_ASSERT(cm_starttls_done(st) == (rc == CM_STARTTLS_DONE));
        return;
    }
    CU_ASSERT(rc == CM_ESTARTTLS_PROTO || rc == CM_ESTARTTLS_REFUSED || rc == CM_ESTARTTLS);
    CU_ASSERT(err != NULL && strlen(err) > 0 && strlen(err) < 600);
    for (const char *c = err; c && *c; c++)
        if (*c < 0x20 || *c >= 0x7f)
            CU_FAIL("non-printable byte in an error message");
    CU_ASSERT(cm_starttls_output(st, &len) == NULL && len == 0);
    CU_ASSERT(!cm_starttls_done(st));
}

/* Feeds buf in random pieces, sending whatever the machine wants before each one. */
static int fuzz_feed(struct cm_starttls *st, const unsigned char *buf, size_t len)
{
    int rc = CM_STARTTLS_MORE;

    for (size_t off = 0; off < len && rc >= 0;) {
        size_t n = 1 + rnd() % (len - off), pending;

        if (rnd() % 4 == 0)
            n = 1;
        cm_starttls_output(st, &pending);
        cm_starttls_sent(st, pending);
        rc = cm_starttls_input(st, buf + off, n);
        fuzz_check(st, rc);
        off += n;
    }
    return rc;
}

static void test_fuzz(void)
{
    static unsigned char buf[4096];
    unsigned long outcomes[8][3] = {{0}};

    for (int p = CM_STARTTLS_SMTP; p <= CM_STARTTLS_XMPP; p++) {
        for (int iter = 0; iter < 2000; iter++) {
            struct cm_starttls *st = NULL;
            int rc = CM_STARTTLS_MORE;
            size_t len = 0;

            if (cm_starttls_new((enum cm_starttls_proto)p, "example.org", &st) != 0) {
                CU_FAIL("cm_starttls_new");
                continue;
            }
            switch (iter % 3) {
            case 0: /* random bytes */
                len = rnd() % 600;
                for (size_t i = 0; i < len; i++)
                    buf[i] = (unsigned char)rnd();
                rc = fuzz_feed(st, buf, len);
                break;
            case 1: /* random tokens */
                for (int t = rnd() % 60; t > 0; t--) {
                    const char *tok = tokens[rnd() % (sizeof(tokens) / sizeof(tokens[0]))];
                    size_t n = strlen(tok) ? strlen(tok) : 1; /* "\x00" counts one byte */

                    if (len + n > sizeof(buf))
                        break;
                    memcpy(buf + len, tok, n);
                    len += n;
                }
                rc = fuzz_feed(st, buf, len);
                break;
            default: { /* the happy transcript, each reply mutated a little */
                struct script sc = happy((enum cm_starttls_proto)p);

                for (size_t s = 0; s < sc.nsteps && rc >= 0; s++) {
                    len = sc.steps[s].server.len;
                    memcpy(buf, sc.steps[s].server.p, len);
                    for (int m = rnd() % 3; m > 0 && len > 0; m--) {
                        size_t at = rnd() % len;

                        switch (rnd() % 3) {
                        case 0:
                            buf[at] = (unsigned char)rnd();
                            break;
                        case 1:
                            len = at + 1; /* truncate */
                            break;
                        default:
                            memmove(buf + at + 1, buf + at, len - at); /* duplicate a byte */
                            len++;
                            break;
                        }
                    }
                    rc = fuzz_feed(st, buf, len);
                }
                break;
            }
            }
            if (rc >= 0 && rnd() % 2) {
                rc = cm_starttls_eof(st);
                fuzz_check(st, rc);
            }
            outcomes[p - 1][rc == CM_STARTTLS_MORE ? 0 : rc == CM_STARTTLS_DONE ? 1 : 2]++;
            cm_starttls_free(st);
        }
    }
    /* The mutated transcripts reach DONE often enough to show the later states were run. */
    for (int p = 0; p < 8; p++)
        CU_ASSERT(outcomes[p][1] > 0 && outcomes[p][2] > 0);
}

static CU_TestInfo tests[] = {
    {"names and parse round trips", test_names},
    {"ports", test_for_port},
    {"API arguments and partial sends", test_api_arguments},
    {"SMTP: Postfix, Exim, LF", test_smtp},
    {"SMTP: refusals", test_smtp_refused},
    {"SMTP: malformed replies", test_smtp_malformed},
    {"IMAP: Dovecot, untagged, PREAUTH", test_imap},
    {"IMAP: refusals", test_imap_refused},
    {"POP3: Dovecot", test_pop3},
    {"FTP: vsftpd, ProFTPD, Pure-FTPd, RFC 959", test_ftp},
    {"FTP: refusals", test_ftp_refused},
    {"LDAP: slapd, long form, controls", test_ldap},
    {"LDAP: refusals", test_ldap_refused},
    {"LDAP: malformed", test_ldap_malformed},
    {"PostgreSQL", test_postgres},
    {"MySQL: 8.0 handshake", test_mysql},
    {"MySQL: refusals", test_mysql_refused},
    {"XMPP: Prosody, Openfire, whitespace", test_xmpp},
    {"XMPP: refusals", test_xmpp_refused},
    {"XMPP: host escaping", test_xmpp_host},
    {"all: data after the go-ahead", test_data_after_answer},
    {"all: pipelined answers", test_pipelined_answers},
    {"all: input while output pending", test_input_while_output_pending},
    {"all: garbage", test_garbage},
    {"limits", test_limits},
    {"sanitised messages", test_sanitised_messages},
    {"end of file", test_eof},
    {"fuzz", test_fuzz},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("starttls", tests, NULL, NULL);
}
