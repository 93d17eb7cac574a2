#include "certmon/probe/posture.h"
#include "certmon/base/log.h"
#include "certmon/probe/resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- The GnuTLS handshakes ----
 *
 * Every priority string was checked against GnuTLS 3.7.9 with `gnutls-cli --priority S
 * --list`. %PROFILE_VERY_WEAK (with the DH minimum of 512 bits that tlsio sets on every session)
 * makes GnuTLS accept the weak parameters a server may pick, so that the handshake shows them
 * rather than failing. +SHA256:+SHA384 add the CBC-SHA256/384 suites NORMAL lacks, for servers that
 * offer nothing else. */
/* MAC-ALL leaves MD5 out: +MD5 for RC4-MD5 and NULL-MD5. */
#define WEAK_BASE "NONE:+VERS-TLS1.2:+VERS-TLS1.1:+VERS-TLS1.0:+MAC-ALL:+MD5:+COMP-NULL:+SIGN-ALL:"
#define CERT_KX "+RSA:+ECDHE-RSA:+ECDHE-ECDSA:+DHE-RSA:+DHE-DSS:+GROUP-ALL:%COMPAT:"

enum check {
    C_TLS13,
    C_TLS12,
    C_TLS11,
    C_TLS10,
    C_RC4,
    C_3DES,
    C_NULL,
    C_ANON,
    C_DHE,  /* DHE only, and no named FFDHE group offered: the server's own group */
    C_FS,   /* ECDHE and DHE only: the second wave, when the first shows no forward secrecy */
    C_AEAD, /* TLS 1.2 AEAD suites only: the second wave, when no handshake had one */
    C_COUNT
};

static const char *const check_names[C_COUNT] = {
    "tls1.3", "tls1.2", "tls1.1", "tls1.0", "rc4", "3des", "null", "anon", "dhe", "fs", "aead",
};

/* The version checks offer everything the GnuTLS client can speak at that version, so that a
 * server that offers only RC4-MD5, NULL or anonymous suites still counts for its versions
 * (and is not called "no TLS 1.2"). The anonymous suites come last, as every other addition. */
#define ALL_WEAK "+3DES-CBC:+ARCFOUR-128:+MD5:+NULL:+ANON-ECDH:+ANON-DH:"

/* Every AEAD cipher GnuTLS 3.7.9 speaks in TLS 1.2, with any key exchange (anonymous too:
 * the question is only whether the server has an AEAD suite at all). */
#define AEAD_CIPHERS                                                                               \
    "-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM:+AES-256-CCM:"          \
    "+AES-128-CCM-8:+AES-256-CCM-8:+CAMELLIA-128-GCM:+CAMELLIA-256-GCM:"

static const char *const priorities[C_COUNT] = {
    [C_TLS13] = "NORMAL:%COMPAT:-VERS-ALL:+VERS-TLS1.3:%PROFILE_VERY_WEAK",
    [C_TLS12] =
        "NORMAL:%COMPAT:-VERS-ALL:+VERS-TLS1.2:+SHA256:+SHA384:" ALL_WEAK "%PROFILE_VERY_WEAK",
    [C_TLS11] = "NORMAL:%COMPAT:-VERS-ALL:+VERS-TLS1.1:" ALL_WEAK "%PROFILE_VERY_WEAK",
    [C_TLS10] = "NORMAL:%COMPAT:-VERS-ALL:+VERS-TLS1.0:" ALL_WEAK "%PROFILE_VERY_WEAK",
    [C_RC4] = WEAK_BASE "+ARCFOUR-128:" CERT_KX "%PROFILE_VERY_WEAK",
    [C_3DES] = WEAK_BASE "+3DES-CBC:" CERT_KX "%PROFILE_VERY_WEAK",
    [C_NULL] = WEAK_BASE "+NULL:" CERT_KX "%PROFILE_VERY_WEAK",
    /* tlsio gives a session anonymous credentials when its priority names ANON. */
    [C_ANON] = WEAK_BASE "+CIPHER-ALL:+ARCFOUR-128:+3DES-CBC:+ANON-ECDH:+ANON-DH:+GROUP-ALL:"
                         "%COMPAT:%PROFILE_VERY_WEAK",
    [C_DHE] = "NORMAL:%COMPAT:-VERS-TLS1.3:-KX-ALL:+DHE-RSA:+DHE-DSS:+SHA256:+SHA384:+3DES-CBC:"
              "-GROUP-DH-ALL:%PROFILE_VERY_WEAK",
    [C_FS] = "NORMAL:%COMPAT:-VERS-TLS1.3:-KX-ALL:+ECDHE-RSA:+ECDHE-ECDSA:+DHE-RSA:+DHE-DSS:"
             "+SHA256:+SHA384:+3DES-CBC:%PROFILE_VERY_WEAK",
    [C_AEAD] = "NORMAL:%COMPAT:-VERS-ALL:+VERS-TLS1.2:" AEAD_CIPHERS
               "+DHE-DSS:+ANON-ECDH:+ANON-DH:%PROFILE_VERY_WEAK",
};

/* ---- Hand-built hellos ----
 *
 * GnuTLS has no SSL 3.0 and no export suites, so these two checks send a ClientHello built
 * here over a plain socket and read only the server's first answer: a ServerHello (which
 * version and suite it chose) or an alert. Nothing else of the handshake happens; the
 * connection is closed once the answer is in.
 *
 * The bytes of a hello (RFC 6101 section 5.6.1.2, RFC 2246 section 7.4.1.2):
 *   16                  record type: handshake
 *   03 00 | 03 01       record version: SSL 3.0 (SSL 3.0 hello), TLS 1.0 (export hello)
 *   LL LL               record length
 *   01                  handshake type: client_hello
 *   LL LL LL            handshake length
 *   03 00 | 03 01       client_version: the highest version we offer
 *   32 bytes            random
 *   00                  session_id: empty (no resumption)
 *   LL LL  suites...    cipher_suites: the lists below, two bytes each
 *   01 00               compression_methods: null only
 *   [LL LL  00 00 LL LL LL LL 00 LL LL name]
 *                       extensions, only when there is a name: server_name (RFC 6066), so
 *                       that name-based virtual hosts and proxies route us. SSL 3.0 servers
 *                       ignore data after the compression methods (RFC 6101 section 5.6.1.2).
 */
static const uint16_t ssl3_suites[] = {
    0x0039, 0x0038, 0x0035, 0x0033, 0x0032, 0x002f, /* AES-CBC (DHE-RSA, DHE-DSS, RSA) */
    0x0016, 0x0013, 0x000a,                         /* 3DES (DHE-RSA, DHE-DSS, RSA) */
    0x0005, 0x0004,                                 /* RC4 (RSA SHA, MD5) */
    0x0015, 0x0012, 0x0009,                         /* single DES */
    0x0014, 0x0011, 0x0008, 0x0006, 0x0003,         /* export */
    0x003a, 0x0034, 0x001b, 0x0018,                 /* anonymous DH */
    0x0002, 0x0001,                                 /* NULL encryption */
};

/* RFC 2246 appendix A.5 (40-bit) and the 56-bit EXPORT1024 suites of
 * draft-ietf-tls-56-bit-ciphersuites. */
static const uint16_t export_suites[] = {
    0x0003, 0x0006, 0x0008, 0x000b, 0x000e, 0x0011, 0x0014, 0x0017,
    0x0019, 0x0060, 0x0061, 0x0062, 0x0063, 0x0064, 0x0065,
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const struct {
    uint16_t suite;
    enum cm_weak weak;
} suite_classes[] = {
    {0x0001, CM_WEAK_NULL},   {0x0002, CM_WEAK_NULL},   {0x003b, CM_WEAK_NULL},
    {0x0003, CM_WEAK_EXPORT}, {0x0006, CM_WEAK_EXPORT}, {0x0008, CM_WEAK_EXPORT},
    {0x000b, CM_WEAK_EXPORT}, {0x000e, CM_WEAK_EXPORT}, {0x0011, CM_WEAK_EXPORT},
    {0x0014, CM_WEAK_EXPORT}, {0x0017, CM_WEAK_EXPORT}, {0x0019, CM_WEAK_EXPORT},
    {0x0060, CM_WEAK_EXPORT}, {0x0061, CM_WEAK_EXPORT}, {0x0062, CM_WEAK_EXPORT},
    {0x0063, CM_WEAK_EXPORT}, {0x0064, CM_WEAK_EXPORT}, {0x0065, CM_WEAK_EXPORT},
    {0x0004, CM_WEAK_RC4},    {0x0005, CM_WEAK_RC4},    {0x0018, CM_WEAK_ANON},
    {0x000a, CM_WEAK_3DES},   {0x000d, CM_WEAK_3DES},   {0x0010, CM_WEAK_3DES},
    {0x0013, CM_WEAK_3DES},   {0x0016, CM_WEAK_3DES},   {0x001b, CM_WEAK_ANON},
    {0x0034, CM_WEAK_ANON},   {0x003a, CM_WEAK_ANON},   {0x006c, CM_WEAK_ANON},
    {0x006d, CM_WEAK_ANON},   {0x00a6, CM_WEAK_ANON},   {0x00a7, CM_WEAK_ANON},
};

int cm_suite_weak_class(uint16_t suite)
{
    for (size_t i = 0; i < ARRAY_LEN(suite_classes); i++)
        if (suite_classes[i].suite == suite)
            return (int)suite_classes[i].weak;
    return -1;
}

bool cm_hello_offers(enum cm_hello_kind kind, uint16_t suite)
{
    const uint16_t *s = kind == CM_HELLO_SSL3 ? ssl3_suites : export_suites;
    size_t n = kind == CM_HELLO_SSL3 ? ARRAY_LEN(ssl3_suites) : ARRAY_LEN(export_suites);

    for (size_t i = 0; i < n; i++)
        if (s[i] == suite)
            return true;
    return false;
}

static uint8_t *put16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

size_t cm_hello_build(enum cm_hello_kind kind, const char *sni, const uint8_t random[32],
                      uint8_t *buf, size_t cap)
{
    const uint16_t *suites = kind == CM_HELLO_SSL3 ? ssl3_suites : export_suites;
    size_t nsuites = kind == CM_HELLO_SSL3 ? ARRAY_LEN(ssl3_suites) : ARRAY_LEN(export_suites);
    uint8_t minor = kind == CM_HELLO_SSL3 ? 0x00 : 0x01;
    size_t name_len = sni ? strlen(sni) : 0;
    size_t ext_len = sni ? 2 + 2 + 2 + 2 + 1 + 2 + name_len : 0; /* with its own length */
    size_t body = 2 + 32 + 1 + 2 + 2 * nsuites + 2 + ext_len;
    size_t total = 5 + 4 + body;
    uint8_t *p = buf;

    if (total > cap || name_len > 255 || (sni && name_len == 0))
        return 0;
    *p++ = 0x16;
    *p++ = 0x03;
    *p++ = minor;
    p = put16(p, 4 + body);
    *p++ = 0x01;
    *p++ = (uint8_t)(body >> 16);
    p = put16(p, body & 0xffff);
    *p++ = 0x03;
    *p++ = minor;
    memcpy(p, random, 32);
    p += 32;
    *p++ = 0x00;
    p = put16(p, 2 * nsuites);
    for (size_t i = 0; i < nsuites; i++)
        p = put16(p, suites[i]);
    *p++ = 0x01;
    *p++ = 0x00;
    if (sni) {
        p = put16(p, ext_len - 2);  /* extensions */
        p = put16(p, 0x0000);       /* server_name */
        p = put16(p, name_len + 5); /* extension_data */
        p = put16(p, name_len + 3); /* server_name_list */
        *p++ = 0x00;                /* host_name */
        p = put16(p, name_len);
        memcpy(p, sni, name_len);
        p += name_len;
    }
    return (size_t)(p - buf);
}

/* Bytes of a ServerHello body needed: version, random, session_id (up to 32), suite. */
#define HELLO_NEED (2 + 32 + 1 + 32 + 2)

int cm_server_reply_parse(const uint8_t *buf, size_t len, struct cm_server_reply *out)
{
    uint8_t hs[4 + HELLO_NEED];
    size_t have = 0, off = 0;

    memset(out, 0, sizeof(*out));
    while (off < len) {
        size_t rec_len, avail;
        uint8_t type;

        if (len - off < 5)
            break;
        type = buf[off];
        /* An SSLv2 answer has the top bit of its first byte set; text is not 20..23. */
        if (type < 20 || type > 23 || buf[off + 1] != 0x03)
            return CM_REPLY_BAD;
        rec_len = (size_t)buf[off + 3] << 8 | buf[off + 4];
        if (rec_len == 0 || rec_len > 16384 + 2048)
            return CM_REPLY_BAD;
        avail = len - off - 5 < rec_len ? len - off - 5 : rec_len;
        if (type == 21 && have == 0) {
            if (avail < 2)
                return CM_REPLY_MORE;
            out->alert = true;
            out->level = buf[off + 5];
            out->desc = buf[off + 6];
            return CM_REPLY_DONE;
        }
        if (type != 22)
            return CM_REPLY_BAD; /* anything but the handshake before the ServerHello */
        for (size_t i = 0; i < avail && have < sizeof(hs); i++)
            hs[have++] = buf[off + 5 + i];
        if (avail < rec_len)
            break; /* the rest of this record is still to come */
        off += 5 + rec_len;
    }
    if (have >= 1 && hs[0] != 0x02)
        return CM_REPLY_BAD; /* the server's first handshake message must be ServerHello */
    if (have < 4 + 2 + 32 + 1)
        return CM_REPLY_MORE;
    size_t msg_len = (size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3];
    size_t sid = hs[4 + 34];
    if (sid > 32 || msg_len < 2 + 32 + 1 + sid + 2 + 1)
        return CM_REPLY_BAD;
    if (have < 4 + 2 + 32 + 1 + sid + 2)
        return CM_REPLY_MORE;
    out->version = (uint16_t)(hs[4] << 8 | hs[5]);
    out->suite = (uint16_t)(hs[4 + 35 + sid] << 8 | hs[4 + 36 + sid]);
    return CM_REPLY_DONE;
}

/* ---- The pass ---- */

struct sub {
    struct cm_posture_pass *pass;
    enum check id;
    struct cm_target t;     /* shallow copy of the target: borrows its strings */
    struct cm_probe *probe; /* while its handshake runs */
};

struct raw {
    struct cm_posture_pass *pass;
    enum cm_hello_kind kind;
    int fd;
    uv_poll_t poll;
    bool poll_open, connected, done;
    uint8_t out[512];
    size_t out_len, out_off;
    uint8_t in[4096];
    size_t in_len;
};

struct cm_posture_pass {
    uv_loop_t *loop;
    struct cm_probe_env env;
    const struct cm_target *t;
    char address[INET6_ADDRSTRLEN];
    cm_posture_cb cb;
    void *arg;
    uint64_t timeout_ms, t_start;

    /* Lifetime: freed when refs reaches zero. The timer, each open poll and each GnuTLS
     * handshake not yet reported hold one reference. */
    int refs;
    unsigned pending; /* checks still running */
    bool delivered, second_wave, kicked, cancelled;
    uv_timer_t timer; /* a zero-delay kick, then the deadline of the hand-built hellos */
    struct sub subs[C_COUNT];
    struct raw raws[2];

    struct cm_posture *res;
    bool keep_chain;              /* cm_posture_keep_chain: describe chains until one arrives */
    struct cm_tls_info chain_tls; /* the first handshake that received a chain; owned */
    enum cm_tri fs_probe;         /* the C_FS handshake */
    enum cm_tri aead_probe;       /* the C_AEAD handshake */
    bool aead_seen;               /* some handshake negotiated an AEAD suite (or TLS 1.3) */
    bool fs_seen;                 /* some handshake had TLS 1.3 or an (EC)DHE key exchange */
    bool static_seen;             /* some handshake had a static-RSA key exchange */
    bool renego_ok_seen;          /* a handshake showed RFC 5746 (or was TLS 1.3) */
    bool renego_missing;          /* a TLS 1.2-or-older handshake did not */
};

static void pass_unref(struct cm_posture_pass *ps)
{
    if (--ps->refs > 0)
        return;
    cm_tls_info_clear(&ps->chain_tls);
    free(ps->res); /* only when never delivered */
    free(ps);
}

static void on_timer_closed(uv_handle_t *h)
{
    pass_unref(h->data);
}

/* YES wins over NO, and NO over UNKNOWN: one accepting answer is proof. */
static void merge(enum cm_tri *into, enum cm_tri v)
{
    if (v > *into)
        *into = v;
}

static bool any_legacy_accepted(const struct cm_posture *r)
{
    return r->version[CM_PV_TLS12] == CM_TRI_YES || r->version[CM_PV_TLS11] == CM_TRI_YES ||
           r->version[CM_PV_TLS10] == CM_TRI_YES;
}

static void start_sub(struct cm_posture_pass *ps, enum check id);

static void deliver(struct cm_posture_pass *ps)
{
    struct cm_posture *r = ps->res;

    /* NO means "only static RSA": a server that authenticates with no certificate at all
     * (anonymous suites only) has no key exchange to call static. */
    if (ps->fs_seen)
        r->forward_secrecy = CM_TRI_YES;
    else if (ps->fs_probe == CM_TRI_NO && ps->static_seen)
        r->forward_secrecy = CM_TRI_NO;
    /* NO needs proof twice over: the AEAD-only TLS 1.2 handshake was refused and TLS 1.3
     * (AEAD only by design) was too. */
    if (ps->aead_seen || r->version[CM_PV_TLS13] == CM_TRI_YES)
        r->aead = CM_TRI_YES;
    else if (ps->aead_probe == CM_TRI_NO && r->version[CM_PV_TLS13] == CM_TRI_NO)
        r->aead = CM_TRI_NO;
    if (ps->renego_missing)
        r->secure_renegotiation = CM_TRI_NO;
    else if (ps->renego_ok_seen)
        r->secure_renegotiation = CM_TRI_YES;
    r->elapsed_ms = (double)(uv_hrtime() - ps->t_start) / 1e6;
    cm_log_debug("posture", "target=%s address=%s handshakes=%u elapsed_ms=%.1f", ps->t->name,
                 ps->address, r->handshakes, r->elapsed_ms);
    ps->delivered = true;
    ps->res = NULL;
    uv_timer_stop(&ps->timer);
    uv_close((uv_handle_t *)&ps->timer, on_timer_closed);
    ps->cb(r, ps->arg);
}

/* Called whenever a check ends: delivers once the last one has, unless forward secrecy or
 * AEAD support is still open, in which case one more handshake each (ECDHE and DHE only;
 * AEAD suites only) settles it. A modern server (TLS 1.3, ECDHE) needs neither. */
static void check_done(struct cm_posture_pass *ps)
{
    if (--ps->pending > 0 || ps->delivered)
        return;
    if (!ps->second_wave && !ps->cancelled && any_legacy_accepted(ps->res)) {
        ps->second_wave = true;
        ps->pending++; /* so that a check ending at once cannot deliver in between */
        if (!ps->fs_seen)
            start_sub(ps, C_FS);
        if (!ps->aead_seen && ps->res->version[CM_PV_TLS13] != CM_TRI_YES)
            start_sub(ps, C_AEAD);
        if (--ps->pending > 0)
            return;
    }
    deliver(ps);
}

/* ---- GnuTLS handshakes ---- */

/* Refusals: the server answered the hello with an alert, chose nothing we offered, or
 * dropped the connection during the handshake. Anything else (no connection, a timeout, a failed
 * STARTTLS preamble, our own failure) says nothing about what the server accepts. */
static enum cm_tri outcome(const struct cm_probe_result *res)
{
    switch (res->error_kind) {
    case CM_ERRK_NONE:
        return CM_TRI_YES;
    case CM_ERRK_TLS:
        return CM_TRI_NO;
    case CM_ERRK_IO:
        /* A connection dropped in the plaintext preamble says nothing about TLS. */
        return res->error_phase == CM_PHASE_HANDSHAKE ? CM_TRI_NO : CM_TRI_UNKNOWN;
    default:
        return CM_TRI_UNKNOWN;
    }
}

static void note_handshake(struct cm_posture_pass *ps, enum check id,
                           const struct cm_probe_result *res)
{
    struct cm_posture *r = ps->res;
    const struct cm_tls_info *tls = &res->tls;
    bool tls13 = tls->version && !strcmp(tls->version, "TLS1.3");
    bool anon = id == C_ANON || (tls->cipher && strstr(tls->cipher, "_anon_"));
    enum cm_pv v;

    /* Whatever a check offered, the version the server completed a handshake at is accepted:
     * a server whose only DHE group is too small for the version checks' named groups still
     * speaks TLS 1.2 with the DHE check. */
    if ((v = cm_pv_from_name(tls->version)) != CM_PV_COUNT)
        merge(&r->version[v], CM_TRI_YES);
    cm_posture_note_suite(r, tls->cipher);
    if (tls13 || cm_suite_is_aead(tls->cipher))
        ps->aead_seen = true;
    if (tls->dh_group > r->dh_group)
        r->dh_group = tls->dh_group;
    /* Anonymous DH is ephemeral but authenticates nobody: no evidence of forward secrecy. */
    if (!anon && (tls13 || tls->group))
        ps->fs_seen = true;
    else if (!anon)
        ps->static_seen = true;
    if (tls13 || tls->safe_renegotiation)
        ps->renego_ok_seen = true;
    else
        ps->renego_missing = true;
    if (tls->dh_bits > 0 && (r->dh_bits == 0 || tls->dh_bits < r->dh_bits))
        r->dh_bits = tls->dh_bits;
}

static void on_sub_result(struct cm_probe_result *res, void *arg)
{
    struct sub *s = arg;
    struct cm_posture_pass *ps = s->pass;
    struct cm_posture *r = ps->res;
    enum cm_tri v = outcome(res);

    s->probe = NULL;
    if (res->connect_ms >= 0)
        r->handshakes++;
    cm_log_debug("posture", "target=%s address=%s check=%s result=%s version=%s cipher=%s",
                 ps->t->name, ps->address, check_names[s->id],
                 res->error_kind == CM_ERRK_NONE ? "accepted" : cm_err_kind_name(res->error_kind),
                 res->tls.version ? res->tls.version : "-",
                 res->tls.cipher ? res->tls.cipher : "-");
    switch (s->id) {
    case C_TLS13:
    case C_TLS12:
    case C_TLS11:
    case C_TLS10:
        merge(&r->version[CM_PV_TLS13 + (s->id - C_TLS13)], v);
        break;
    case C_RC4:
        merge(&r->weak[CM_WEAK_RC4], v);
        break;
    case C_3DES:
        merge(&r->weak[CM_WEAK_3DES], v);
        break;
    case C_NULL:
        merge(&r->weak[CM_WEAK_NULL], v);
        break;
    case C_ANON:
        merge(&r->weak[CM_WEAK_ANON], v);
        break;
    case C_DHE:
        merge(&r->dhe, v);
        break;
    case C_FS:
        ps->fs_probe = v;
        break;
    case C_AEAD:
        ps->aead_probe = v;
        break;
    default:
        break;
    }
    if (v == CM_TRI_YES)
        note_handshake(ps, s->id, res);
    else if (res->tls.dh_group > CM_DH_GROUP_GOOD) {
        /* Refused on the server's DH group (GnuTLS rejects a public value of order 2): the
         * group is still the server's, and bad. */
        if (res->tls.dh_group > r->dh_group)
            r->dh_group = res->tls.dh_group;
        if (res->tls.dh_bits > 0 && (r->dh_bits == 0 || res->tls.dh_bits < r->dh_bits))
            r->dh_bits = res->tls.dh_bits;
    }
    if (ps->keep_chain && ps->chain_tls.chain.count == 0 && res->tls.chain.count > 0) {
        ps->chain_tls = res->tls;
        memset(&res->tls, 0, sizeof(res->tls));
    }
    cm_probe_result_free(res);
    check_done(ps);
    pass_unref(ps);
}

static void start_sub(struct cm_posture_pass *ps, enum check id)
{
    struct sub *s = &ps->subs[id];
    uint64_t spent = (uv_hrtime() - ps->t_start) / 1000000;

    s->pass = ps;
    s->id = id;
    s->t = *ps->t;
    s->t.connect_address = ps->address;
    s->t.tls_priority = priorities[id];
    /* Only a pass asked to keep a chain describes one (and pays for its verification). */
    s->t.handshake_only = !ps->keep_chain;
    if (cm_probe_start(&ps->env, &s->t, ps->timeout_ms > spent ? ps->timeout_ms - spent : 0,
                       on_sub_result, s, &s->probe) < 0)
        return; /* out of memory: the check stays UNKNOWN */
    ps->pending++;
    ps->refs++;
}

/* ---- Hand-built hellos on the loop ---- */

static void on_raw_poll_closed(uv_handle_t *h)
{
    struct raw *w = h->data;
    struct cm_posture_pass *ps = w->pass;

    close(w->fd);
    w->fd = -1;
    pass_unref(ps);
}

/* Ends a hand-built hello: v says whether the server accepted what it offered, reply (when
 * not NULL) is what it answered. */
static void raw_finish(struct raw *w, enum cm_tri v, const struct cm_server_reply *reply)
{
    struct cm_posture_pass *ps = w->pass;
    struct cm_posture *r = ps->res;

    if (w->done)
        return;
    w->done = true;
    if (w->poll_open) {
        w->poll_open = false;
        uv_close((uv_handle_t *)&w->poll, on_raw_poll_closed);
    }
    if (v == CM_TRI_YES) {
        int cls = cm_suite_weak_class(reply->suite);
        if (reply->version == 0x0300)
            merge(&r->version[CM_PV_SSL30], CM_TRI_YES);
        if (cls >= 0)
            merge(&r->weak[cls], CM_TRI_YES);
    }
    merge(w->kind == CM_HELLO_SSL3 ? &r->version[CM_PV_SSL30] : &r->weak[CM_WEAK_EXPORT], v);
    cm_log_debug("posture",
                 "target=%s address=%s check=%s result=%s alert=%d version=%04x suite=%04x",
                 ps->t->name, ps->address, w->kind == CM_HELLO_SSL3 ? "ssl3-hello" : "export-hello",
                 v == CM_TRI_YES  ? "accepted"
                 : v == CM_TRI_NO ? "refused"
                                  : "unknown",
                 reply && reply->alert ? reply->desc : -1, reply ? reply->version : 0,
                 reply ? reply->suite : 0);
    check_done(ps);
}

/* Judges a complete answer: the ServerHello must pick what we offered, at a version we
 * offered (SSL 3.0 hello: exactly SSL 3.0; export hello: SSL 3.0 or TLS 1.0). */
static void raw_judge(struct raw *w, const struct cm_server_reply *reply)
{
    bool ok =
        !reply->alert && cm_hello_offers(w->kind, reply->suite) &&
        (reply->version == 0x0300 || (w->kind == CM_HELLO_EXPORT && reply->version == 0x0301));

    raw_finish(w, ok ? CM_TRI_YES : CM_TRI_NO, reply);
}

static void on_raw_io(uv_poll_t *h, int status, int events);

static void raw_read(struct raw *w)
{
    struct cm_server_reply reply;

    for (;;) {
        ssize_t n = recv(w->fd, w->in + w->in_len, sizeof(w->in) - w->in_len, 0);
        int rc;

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return; /* the poll stays on UV_READABLE */
        if (n <= 0) {
            /* Closed or reset after our hello without an answer: a refusal. */
            raw_finish(w, CM_TRI_NO, NULL);
            return;
        }
        w->in_len += (size_t)n;
        rc = cm_server_reply_parse(w->in, w->in_len, &reply);
        if (rc == CM_REPLY_DONE) {
            raw_judge(w, &reply);
            return;
        }
        if (rc == CM_REPLY_BAD || w->in_len == sizeof(w->in)) {
            raw_finish(w, CM_TRI_NO, NULL); /* does not speak SSL 3.0/TLS to us */
            return;
        }
    }
}

static void raw_write(struct raw *w)
{
    while (w->out_off < w->out_len) {
        ssize_t n = send(w->fd, w->out + w->out_off, w->out_len - w->out_off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            uv_poll_start(&w->poll, UV_WRITABLE, on_raw_io);
            return;
        }
        if (n < 0) {
            raw_finish(w, CM_TRI_NO, NULL);
            return;
        }
        w->out_off += (size_t)n;
    }
    uv_poll_start(&w->poll, UV_READABLE, on_raw_io);
}

static void on_raw_io(uv_poll_t *h, int status, int events)
{
    struct raw *w = h->data;
    int soerr = 0;
    socklen_t len = sizeof(soerr);

    (void)events;
    if (!w->connected) {
        if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr || status < 0) {
            raw_finish(w, CM_TRI_UNKNOWN, NULL); /* no connection: nothing learnt */
            return;
        }
        w->connected = true;
        w->pass->res->handshakes++;
        raw_write(w);
        return;
    }
    if (status < 0) {
        raw_finish(w, CM_TRI_NO, NULL);
        return;
    }
    if (w->out_off < w->out_len)
        raw_write(w);
    else
        raw_read(w);
}

static void start_raw(struct cm_posture_pass *ps, struct raw *w, enum cm_hello_kind kind)
{
    uint8_t random[32];
    struct cm_addr_list *a;
    const struct sockaddr_storage *sa;
    int one = 1;

    w->pass = ps;
    w->kind = kind;
    w->fd = -1;
    w->done = true; /* until it is running */
    /* The hello must be the first thing on the connection: no STARTTLS preamble here. */
    if (ps->t->starttls != CM_STARTTLS_NONE)
        return;
    if (gnutls_rnd(GNUTLS_RND_NONCE, random, sizeof(random)) < 0)
        return;
    w->out_len = cm_hello_build(kind, ps->t->sni, random, w->out, sizeof(w->out));
    if (w->out_len == 0 || !(a = cm_addr_list_literal(ps->address, ps->t->port)))
        return;
    sa = &a->addrs[0];
    w->fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (w->fd < 0) {
        free(a);
        return;
    }
    setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if ((connect(w->fd, (const struct sockaddr *)sa,
                 sa->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                          : sizeof(struct sockaddr_in6)) < 0 &&
         errno != EINPROGRESS) ||
        uv_poll_init_socket(ps->loop, &w->poll, w->fd) < 0) {
        free(a);
        close(w->fd);
        w->fd = -1;
        return;
    }
    free(a);
    w->poll.data = w;
    w->poll_open = true;
    w->done = false;
    ps->refs++;
    ps->pending++;
    uv_poll_start(&w->poll, UV_WRITABLE, on_raw_io);
}

static void on_deadline(uv_timer_t *timer)
{
    struct cm_posture_pass *ps = timer->data;

    /* Only the hand-built hellos wait on this timer; each handshake has its own deadline. A
     * server that has not answered by now tells nothing. */
    for (size_t i = 0; i < ARRAY_LEN(ps->raws); i++)
        if (!ps->raws[i].done)
            raw_finish(&ps->raws[i], CM_TRI_UNKNOWN, NULL);
}

static void on_kick(uv_timer_t *timer)
{
    struct cm_posture_pass *ps = timer->data;
    uint64_t spent = (uv_hrtime() - ps->t_start) / 1000000;

    ps->kicked = true;
    if (ps->cancelled) {
        deliver(ps);
        return;
    }
    uv_timer_start(&ps->timer, on_deadline, ps->timeout_ms > spent ? ps->timeout_ms - spent : 0, 0);
    /* One count for this function, so that checks ending inside it cannot deliver early. */
    ps->pending++;
    for (enum check c = C_TLS13; c < C_FS; c++) /* C_FS and C_AEAD: the second wave */
        start_sub(ps, c);
    start_raw(ps, &ps->raws[0], CM_HELLO_SSL3);
    start_raw(ps, &ps->raws[1], CM_HELLO_EXPORT);
    check_done(ps);
}

int cm_posture_start(const struct cm_probe_env *env, const struct cm_target *t, const char *address,
                     uint64_t timeout_ms, cm_posture_cb cb, void *arg, struct cm_posture_pass **out)
{
    struct cm_posture_pass *ps;

    if (out)
        *out = NULL;
    if (!address || !cm_host_is_ip(address) || strlen(address) >= INET6_ADDRSTRLEN)
        return -EINVAL;
    if (!(ps = calloc(1, sizeof(*ps))))
        return -ENOMEM;
    if (!(ps->res = calloc(1, sizeof(*ps->res)))) {
        free(ps);
        return -ENOMEM;
    }
    ps->loop = env->loop;
    ps->env = *env;
    ps->t = t;
    memcpy(ps->address, address, strlen(address) + 1);
    ps->cb = cb;
    ps->arg = arg;
    ps->timeout_ms = timeout_ms;
    ps->t_start = uv_hrtime();
    uv_timer_init(ps->loop, &ps->timer);
    ps->timer.data = ps;
    ps->refs = 1;
    /* Start from a loop callback so that cb never runs inside this function. */
    uv_timer_start(&ps->timer, on_kick, 0, 0);
    if (out)
        *out = ps;
    return 0;
}

void cm_posture_keep_chain(struct cm_posture_pass *ps)
{
    if (ps && !ps->kicked)
        ps->keep_chain = true;
}

void cm_posture_adopt_chain(struct cm_posture_pass *ps, struct cm_probe_result *res)
{
    struct cm_tls_info *from = ps ? &ps->chain_tls : NULL;

    if (!from || res->tls.chain.count > 0 || from->chain.count == 0)
        return;
    /* Only what the certificate says: the negotiated parameters stay those of the main
     * handshake, which failed. */
    cm_chain_clear(&res->tls.chain);
    res->tls.chain = from->chain;
    res->tls.verify = from->verify;
    res->tls.ocsp = from->ocsp;
    memset(&from->chain, 0, sizeof(from->chain));
}

void cm_posture_cancel(struct cm_posture_pass *ps)
{
    if (!ps || ps->delivered || ps->cancelled)
        return;
    ps->cancelled = true;
    if (!ps->kicked)
        return; /* on_kick delivers at once */
    /* The timer holds a reference until its close callback, so ps outlives these calls even
     * when the last check delivers inside one of them. One count keeps check_done from
     * delivering before every check has been cancelled. */
    ps->pending++;
    for (size_t i = 0; i < ARRAY_LEN(ps->subs); i++)
        if (ps->subs[i].probe)
            cm_probe_cancel(ps->subs[i].probe);
    for (size_t i = 0; i < ARRAY_LEN(ps->raws); i++)
        if (!ps->raws[i].done)
            raw_finish(&ps->raws[i], CM_TRI_UNKNOWN, NULL);
    check_done(ps);
}
