#include "certmon/tlsio.h"
#include "certmon/error.h"

#include <ctype.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Probes see as much of the server as possible: everything NORMAL allows plus the
 * compatibility workarounds for old servers. Judging what is weak is the analyser's job. */
#define CM_TLS_PRIORITY                                                                            \
    "NORMAL:%COMPAT:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:"                   \
    "+GROUP-SECP521R1:+GROUP-X448:+GROUP-FFDHE2048:+GROUP-FFDHE3072:+GROUP-FFDHE4096:"             \
    "+GROUP-FFDHE6144:+GROUP-FFDHE8192"

struct cred_entry {
    struct cred_entry *next;
    char *ca_file; /* NULL: system store */
    gnutls_certificate_credentials_t cred;
};

struct cm_tls_ctx {
    gnutls_priority_t prio;
    struct cred_entry *creds;
    struct cm_cert_cache *certs;
};

struct cm_tls_conn {
    struct cm_tls_ctx *ctx;
    gnutls_session_t session;
    bool completed;
};

int cm_tls_ctx_new(struct cm_tls_ctx **out)
{
    struct cm_tls_ctx *ctx = calloc(1, sizeof(*ctx));

    *out = NULL;
    if (!ctx)
        return -ENOMEM;
    if (cm_cert_cache_new(1024, &ctx->certs) < 0) {
        free(ctx);
        return -ENOMEM;
    }
    if (gnutls_priority_init2(&ctx->prio, CM_TLS_PRIORITY, NULL, 0) < 0) {
        cm_cert_cache_free(ctx->certs);
        free(ctx);
        return CM_ETLS;
    }
    *out = ctx;
    return 0;
}

void cm_tls_ctx_free(struct cm_tls_ctx *ctx)
{
    if (!ctx)
        return;
    for (struct cred_entry *e = ctx->creds, *next; e; e = next) {
        next = e->next;
        gnutls_certificate_free_credentials(e->cred);
        free(e->ca_file);
        free(e);
    }
    gnutls_priority_deinit(ctx->prio);
    cm_cert_cache_free(ctx->certs);
    free(ctx);
}

static struct cred_entry *cred_find(struct cm_tls_ctx *ctx, const char *ca_file)
{
    for (struct cred_entry *e = ctx->creds; e; e = e->next)
        if ((!ca_file && !e->ca_file) || (ca_file && e->ca_file && !strcmp(ca_file, e->ca_file)))
            return e;
    return NULL;
}

int cm_tls_ctx_load_ca(struct cm_tls_ctx *ctx, const char *ca_file, char *err, size_t errlen)
{
    struct cred_entry *e;
    int rc;

    if (cred_find(ctx, ca_file))
        return 0;
    e = calloc(1, sizeof(*e));
    if (!e || (ca_file && !(e->ca_file = strdup(ca_file))) ||
        gnutls_certificate_allocate_credentials(&e->cred) < 0) {
        if (e)
            free(e->ca_file);
        free(e);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (ca_file)
        rc = gnutls_certificate_set_x509_trust_file(e->cred, ca_file, GNUTLS_X509_FMT_PEM);
    else
        rc = gnutls_certificate_set_x509_system_trust(e->cred);
    if (rc <= 0) {
        if (rc == 0)
            snprintf(err, errlen, "%s: no CA certificates found",
                     ca_file ? ca_file : "system trust store");
        else
            snprintf(err, errlen, "%s: %s", ca_file ? ca_file : "system trust store",
                     rc == GNUTLS_E_FILE_ERROR ? "cannot read file" : gnutls_strerror(rc));
        gnutls_certificate_free_credentials(e->cred);
        free(e->ca_file);
        free(e);
        return CM_ECAFILE;
    }
    e->next = ctx->creds;
    ctx->creds = e;
    return 0;
}

/* GnuTLS only calls this when a timeout is armed; answer without waiting, so that nothing
 * inside GnuTLS can ever block the loop. The probe's uv_timer enforces the deadline. */
static int pull_timeout_nowait(gnutls_transport_ptr_t ptr, unsigned int ms)
{
    struct pollfd pfd = {.fd = (int)(intptr_t)ptr, .events = POLLIN};

    (void)ms;
    return poll(&pfd, 1, 0);
}

int cm_tls_conn_new(struct cm_tls_ctx *ctx, int fd, const char *sni, const char *ca_file,
                    struct cm_tls_conn **out)
{
    struct cm_tls_conn *c;
    struct cred_entry *e;
    char err[256];
    int rc;

    *out = NULL;
    if (!(e = cred_find(ctx, ca_file))) {
        if ((rc = cm_tls_ctx_load_ca(ctx, ca_file, err, sizeof(err))) < 0)
            return rc;
        e = cred_find(ctx, ca_file);
    }
    if (!(c = calloc(1, sizeof(*c))))
        return -ENOMEM;
    c->ctx = ctx;
    /* A fresh session with no resumption data: every probe is a full handshake and sees the
     * whole chain. No tickets: nothing to resume, and the server need not mint one. */
    rc = gnutls_init(&c->session,
                     GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL | GNUTLS_NO_TICKETS);
    if (rc < 0) {
        free(c);
        return rc == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : CM_ETLS;
    }
    if ((rc = gnutls_priority_set(c->session, ctx->prio)) < 0 ||
        (rc = gnutls_credentials_set(c->session, GNUTLS_CRD_CERTIFICATE, e->cred)) < 0 ||
        (sni && (rc = gnutls_server_name_set(c->session, GNUTLS_NAME_DNS, sni, strlen(sni))) < 0)) {
        gnutls_deinit(c->session);
        free(c);
        return rc == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : CM_ETLS;
    }
    gnutls_handshake_set_timeout(c->session, 0);
    gnutls_transport_set_int(c->session, fd);
    gnutls_transport_set_pull_timeout_function(c->session, pull_timeout_nowait);
    *out = c;
    return 0;
}

void cm_tls_conn_free(struct cm_tls_conn *c)
{
    if (!c)
        return;
    gnutls_deinit(c->session);
    free(c);
}

int cm_tls_conn_handshake(struct cm_tls_conn *c, bool *want_write)
{
    /* Warning alerts (e.g. unrecognized_name) do not end a handshake; a server cannot send
     * more than a few before the socket would block, but bound the loop all the same. */
    for (int i = 0; i < 16; i++) {
        int rc = gnutls_handshake(c->session);

        if (rc == 0) {
            c->completed = true;
            return 0;
        }
        if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
            *want_write = gnutls_record_get_direction(c->session) == 1;
            return 1;
        }
        if (rc != GNUTLS_E_WARNING_ALERT_RECEIVED)
            return rc;
    }
    return GNUTLS_E_UNEXPECTED_PACKET;
}

bool cm_tls_conn_client_cert_requested(struct cm_tls_conn *c)
{
    return gnutls_certificate_client_get_request_status(c->session) != 0;
}

bool cm_tls_conn_needs_post_read(struct cm_tls_conn *c)
{
    return c->completed && gnutls_protocol_get_version(c->session) == GNUTLS_TLS1_3 &&
           cm_tls_conn_client_cert_requested(c);
}

int cm_tls_conn_post_read(struct cm_tls_conn *c)
{
    char buf[512];

    /* Bounded: each call returns at the first empty read; the socket buffer is finite. */
    for (int i = 0; i < 64; i++) {
        ssize_t n = gnutls_record_recv(c->session, buf, sizeof(buf));
        if (n > 0 || n == 0)
            return 1;
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
            return 0;
        if (n == GNUTLS_E_WARNING_ALERT_RECEIVED)
            continue;
        return (int)n;
    }
    return 1;
}

void cm_tls_conn_detach(struct cm_tls_conn *c)
{
    if (c)
        gnutls_transport_set_int(c->session, -1);
}

void cm_tls_conn_bye(struct cm_tls_conn *c)
{
    if (c && c->completed)
        (void)gnutls_bye(c->session, GNUTLS_SHUT_WR);
}

static char *group_name(gnutls_session_t s)
{
    gnutls_group_t g = gnutls_group_get(s);
    const char *name = g ? gnutls_group_get_name(g) : NULL;
    char buf[32];

    if (name)
        return strdup(name);
    /* TLS 1.2 DHE with a server-chosen (unnamed) group. */
    gnutls_kx_algorithm_t kx = gnutls_kx_get(s);
    if (kx == GNUTLS_KX_DHE_RSA || kx == GNUTLS_KX_DHE_DSS) {
        snprintf(buf, sizeof(buf), "DH%d", gnutls_dh_get_prime_bits(s));
        return strdup(buf);
    }
    return NULL;
}

int cm_tls_conn_describe(struct cm_tls_conn *c, const char *verify_name, struct cm_tls_info *info)
{
    gnutls_session_t s = c->session;
    int rc;

    memset(info, 0, sizeof(*info));
    if (c->completed) {
        const char *v = gnutls_protocol_get_name(gnutls_protocol_get_version(s));
        const char *cs = gnutls_ciphersuite_get(s);
        info->version = v ? strdup(v) : NULL;
        info->cipher = cs ? strdup(cs) : NULL;
        info->group = group_name(s);
        if ((v && !info->version) || (cs && !info->cipher))
            goto nomem;
    }
    unsigned n = 0;
    const gnutls_datum_t *peers = gnutls_certificate_get_peers(s, &n);
    if (peers && n > 0) {
        struct cm_der der[16], *list = der;
        unsigned status = 0;
        bool match = false;

        if (n > sizeof(der) / sizeof(der[0]) && !(list = calloc(n, sizeof(*list))))
            goto nomem;
        for (unsigned i = 0; i < n; i++) {
            list[i].data = peers[i].data;
            list[i].len = peers[i].size;
        }
        rc = cm_chain_from_der_list(c->ctx->certs, list, n, verify_name, &info->chain, &match);
        if (list != der)
            free(list);
        if (rc < 0)
            goto nomem;
        rc = gnutls_certificate_verify_peers2(s, &status);
        /* Verification could not run at all (e.g. a certificate GnuTLS cannot parse):
         * not trusted, for no more specific reason. */
        if (rc < 0)
            status |= GNUTLS_CERT_INVALID;
        info->verify.done = true;
        info->verify.status = status;
        info->verify.trusted = status == 0;
        info->verify.hostname_match = match;
    }
    return 0;
nomem:
    cm_tls_info_clear(info);
    return -ENOMEM;
}

void cm_tls_info_clear(struct cm_tls_info *info)
{
    if (!info)
        return;
    free(info->version);
    free(info->cipher);
    free(info->group);
    cm_chain_clear(&info->chain);
    memset(info, 0, sizeof(*info));
}

void cm_tls_error_describe(struct cm_tls_conn *c, int rc, char *buf, size_t len, bool *is_io)
{
    *is_io = false;
    switch (rc) {
    case GNUTLS_E_FATAL_ALERT_RECEIVED: {
        gnutls_alert_description_t a = gnutls_alert_get(c->session);
        const char *sym = gnutls_alert_get_strname(a);
        const char *text = gnutls_alert_get_name(a);
        char name[64] = "unknown";

        /* "GNUTLS_A_HANDSHAKE_FAILURE" -> "handshake_failure", the RFC 8446 name. */
        if (sym) {
            size_t n = 0;
            if (!strncmp(sym, "GNUTLS_A_", 9))
                sym += 9;
            for (; sym[n] && n + 1 < sizeof(name); n++)
                name[n] = (char)tolower((unsigned char)sym[n]);
            name[n] = '\0';
        }
        snprintf(buf, len, "server sent fatal alert %s (%d): %s%s", name, (int)a,
                 text ? text : "unknown alert",
                 cm_tls_conn_client_cert_requested(c)
                     ? " (the server asked for a client certificate and none was sent)"
                     : "");
        return;
    }
    case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
    case GNUTLS_E_UNEXPECTED_PACKET:
    case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
    case GNUTLS_E_RECORD_OVERFLOW:
        snprintf(buf, len, "%s (peer does not seem to speak TLS on this port)",
                 gnutls_strerror(rc));
        return;
    case GNUTLS_E_PREMATURE_TERMINATION:
        *is_io = true;
        snprintf(buf, len, "connection closed by peer during TLS handshake");
        return;
    case GNUTLS_E_PUSH_ERROR:
    case GNUTLS_E_PULL_ERROR:
        *is_io = true;
        snprintf(buf, len, "socket error during TLS handshake: %s", gnutls_strerror(rc));
        return;
    default:
        snprintf(buf, len, "TLS handshake failed: %s (%s)", gnutls_strerror(rc),
                 gnutls_strerror_name(rc) ? gnutls_strerror_name(rc) : "?");
        return;
    }
}

void cm_verify_status_foreach(unsigned status, void (*fn)(const char *name, void *arg), void *arg)
{
    static const struct {
        unsigned bit;
        const char *name;
    } bits[] = {
        {GNUTLS_CERT_REVOKED, "revoked"},
        {GNUTLS_CERT_SIGNER_NOT_FOUND, "signer_not_found"},
        {GNUTLS_CERT_SIGNER_NOT_CA, "signer_not_ca"},
        {GNUTLS_CERT_INSECURE_ALGORITHM, "insecure_algorithm"},
        {GNUTLS_CERT_NOT_ACTIVATED, "not_activated"},
        {GNUTLS_CERT_EXPIRED, "expired"},
        {GNUTLS_CERT_SIGNATURE_FAILURE, "signature_failure"},
        {GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED, "revocation_data_superseded"},
        {GNUTLS_CERT_UNEXPECTED_OWNER, "unexpected_owner"},
        {GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE, "revocation_data_issued_in_future"},
        {GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE, "signer_constraints_failure"},
        {GNUTLS_CERT_MISMATCH, "mismatch"},
        {GNUTLS_CERT_PURPOSE_MISMATCH, "purpose_mismatch"},
        {GNUTLS_CERT_MISSING_OCSP_STATUS, "missing_ocsp_status"},
        {GNUTLS_CERT_INVALID_OCSP_STATUS, "invalid_ocsp_status"},
        {GNUTLS_CERT_UNKNOWN_CRIT_EXTENSIONS, "unknown_critical_extensions"},
    };
    unsigned named = 0;

    for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
        if (status & bits[i].bit) {
            fn(bits[i].name, arg);
            named |= bits[i].bit;
        }
    }
    /* INVALID alone means "not trusted" with no more specific reason. */
    if ((status & GNUTLS_CERT_INVALID) && !named)
        fn("invalid", arg);
}
