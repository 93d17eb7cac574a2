#include "certmon/probe/tlsio.h"
#include "certmon/base/error.h"

#include <ctype.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/ocsp.h>
#include <gnutls/x509.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Probes see as much of the server as possible: everything NORMAL allows plus the
 * compatibility workarounds for old servers, the CBC suites with SHA-256/384 MACs that NORMAL
 * leaves out, 3DES and RC4 (with SHA-1 and MD5 MACs: RC4-MD5 is the one suite some old servers
 * still offer), so that a server that offers only those is still probed and its posture
 * judged. Judging what is weak is the analyser's job. GnuTLS orders the suites by key
 * exchange, then cipher, and puts 3DES and RC4 after every other cipher of their key exchange,
 * so a server that also offers anything better still negotiates that (checked with
 * `gnutls-cli --priority ... --list`). Two things stay out, and the posture pass finds them
 * when a server offers nothing else: NULL encryption (GnuTLS 3.7 turns TLS 1.3 off in any
 * priority that enables the NULL cipher) and anonymous suites (a server that chose one would
 * send no certificate). */
#define CM_TLS_PRIORITY                                                                            \
    "NORMAL:%COMPAT:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:"                   \
    "+GROUP-SECP521R1:+GROUP-X448:+GROUP-FFDHE2048:+GROUP-FFDHE3072:+GROUP-FFDHE4096:"             \
    "+GROUP-FFDHE6144:+GROUP-FFDHE8192:+SHA256:+SHA384:+3DES-CBC:+ARCFOUR-128:+MD5"

/* The smallest finite-field DH prime any handshake accepts. GnuTLS refuses primes under the
 * priority's security level (1008 bits for NORMAL, 768 for %PROFILE_VERY_WEAK); a monitor
 * must see a weak group and report it (dh.weak), not fail on it. */
#define CM_DH_MIN_BITS 512

/* Trust-anchor lookups of one set of credentials, by the SHA-256 of the certificate whose
 * issuer was looked up: the trust list never changes once loaded, and a monitor probes the
 * same chains again and again, while a lookup costs more than the rest of the description
 * (gnutls_x509_trust_list_get_issuer alone is some 200,000 instructions). Direct-mapped;
 * a miss only costs the lookup. */
#define ANCHOR_SLOTS 256

struct anchor_slot {
    char key[65];        /* hex SHA-256 of the top sent certificate; "" when unused */
    bool found;          /* the store holds its issuer */
    struct cm_cert cert; /* that issuer, when found */
};

struct cred_entry {
    struct cred_entry *next;
    pthread_mutex_t anchors_lock; /* chains are described on thread-pool threads */
    struct anchor_slot *anchors;  /* ANCHOR_SLOTS, made with the entry */
    char *ca_file;                /* NULL: system store */
    char *client_cert;            /* NULL: none */
    char *client_key;
    struct cm_chain client_chain; /* our certificate as data, for its own findings */
    gnutls_certificate_credentials_t cred;
};

static void cred_free(struct cred_entry *e);

/* Priority strings other than the default, compiled once (posture handshakes). */
struct prio_entry {
    struct prio_entry *next;
    char *text;
    gnutls_priority_t prio;
};

struct cm_tls_ctx {
    gnutls_priority_t prio;
    struct prio_entry *prios;
    struct cred_entry *creds;
    struct cm_cert_cache *certs;
    gnutls_anon_client_credentials_t anon; /* for ANON priorities; made on first use */
};

struct cm_tls_conn {
    struct cm_tls_ctx *ctx;
    struct cred_entry *cred; /* the profile's, borrowed from ctx */
    gnutls_session_t session;
    bool completed;
    /* The Certificate message was refused before GnuTLS parsed it (names_hook): the
     * certificate at names_pos lists names_count names. */
    bool names_refused;
    unsigned names_pos;
    size_t names_count;
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
        cred_free(e);
    }
    gnutls_priority_deinit(ctx->prio);
    if (ctx->anon)
        gnutls_anon_free_client_credentials(ctx->anon);
    for (struct prio_entry *e = ctx->prios, *next; e; e = next) {
        next = e->next;
        gnutls_priority_deinit(e->prio);
        free(e->text);
        free(e);
    }
    cm_cert_cache_free(ctx->certs);
    free(ctx);
}

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static struct cred_entry *cred_find(struct cm_tls_ctx *ctx, const struct cm_tls_profile *prof)
{
    for (struct cred_entry *e = ctx->creds; e; e = e->next)
        if (same(prof->ca_file, e->ca_file) && same(prof->client_cert, e->client_cert) &&
            same(prof->client_key, e->client_key))
            return e;
    return NULL;
}

static void cred_free(struct cred_entry *e)
{
    if (!e)
        return;
    if (e->cred)
        gnutls_certificate_free_credentials(e->cred);
    if (e->anchors) {
        for (size_t i = 0; i < ANCHOR_SLOTS; i++)
            cm_cert_clear(&e->anchors[i].cert);
        free(e->anchors);
        pthread_mutex_destroy(&e->anchors_lock);
    }
    cm_chain_clear(&e->client_chain);
    free(e->ca_file);
    free(e->client_cert);
    free(e->client_key);
    free(e);
}

static char *dup_or_null(const char *s, bool *failed)
{
    char *d = s ? strdup(s) : NULL;

    if (s && !d)
        *failed = true;
    return d;
}

/* Reads our client certificate file into e->client_chain, for its expiry findings. */
static int load_client_chain(struct cred_entry *e, char *err, size_t errlen)
{
    gnutls_datum_t d = {NULL, 0};
    int rc = gnutls_load_file(e->client_cert, &d);

    if (rc < 0) {
        snprintf(err, errlen, "--client-cert %s: cannot read file", e->client_cert);
        return CM_ECLIENTCERT;
    }
    rc = cm_chain_append_data(&e->client_chain, d.data, d.size);
    gnutls_free(d.data);
    if (rc == -ENOMEM) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    if (rc < 0) {
        snprintf(err, errlen, "--client-cert %s: %s", e->client_cert, cm_strerror(rc));
        return CM_ECLIENTCERT;
    }
    return 0;
}

int cm_tls_ctx_load(struct cm_tls_ctx *ctx, const struct cm_tls_profile *prof, char *err,
                    size_t errlen)
{
    const char *ca = prof->ca_file;
    struct cred_entry *e;
    bool nomem = false;
    int rc;

    if (cred_find(ctx, prof))
        return 0;
    if (!prof->client_cert != !prof->client_key) {
        snprintf(err, errlen, "a client certificate needs its key, and a key its certificate");
        return CM_ECLIENTCERT;
    }
    e = calloc(1, sizeof(*e));
    if (e) {
        e->ca_file = dup_or_null(ca, &nomem);
        e->client_cert = dup_or_null(prof->client_cert, &nomem);
        e->client_key = dup_or_null(prof->client_key, &nomem);
    }
    if (e && !nomem && (e->anchors = calloc(ANCHOR_SLOTS, sizeof(*e->anchors))) &&
        pthread_mutex_init(&e->anchors_lock, NULL) != 0) {
        free(e->anchors);
        e->anchors = NULL;
    }
    if (!e || nomem || !e->anchors || gnutls_certificate_allocate_credentials(&e->cred) < 0) {
        cred_free(e);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (ca)
        rc = gnutls_certificate_set_x509_trust_file(e->cred, ca, GNUTLS_X509_FMT_PEM);
    else
        rc = gnutls_certificate_set_x509_system_trust(e->cred);
    if (rc <= 0) {
        if (rc == 0)
            snprintf(err, errlen, "%s: no CA certificates found", ca ? ca : "system trust store");
        else
            snprintf(err, errlen, "%s: %s", ca ? ca : "system trust store",
                     rc == GNUTLS_E_FILE_ERROR ? "cannot read file" : gnutls_strerror(rc));
        cred_free(e);
        return CM_ECAFILE;
    }
    if (e->client_cert) {
        rc = gnutls_certificate_set_x509_key_file(e->cred, e->client_cert, e->client_key,
                                                  GNUTLS_X509_FMT_PEM);
        if (rc < 0) {
            snprintf(err, errlen, "--client-cert %s / --client-key %s: %s", e->client_cert,
                     e->client_key,
                     rc == GNUTLS_E_FILE_ERROR ? "cannot read the files"
                     : rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH
                         ? "the key does not belong to the certificate"
                         : gnutls_strerror(rc));
            cred_free(e);
            return CM_ECLIENTCERT;
        }
        if ((rc = load_client_chain(e, err, errlen)) < 0) {
            cred_free(e);
            return rc;
        }
    }
    e->next = ctx->creds;
    ctx->creds = e;
    return 0;
}

const struct cm_chain *cm_tls_ctx_client_chain(struct cm_tls_ctx *ctx,
                                               const struct cm_tls_profile *prof)
{
    struct cred_entry *e = cred_find(ctx, prof);

    return e && e->client_chain.count ? &e->client_chain : NULL;
}

/* GnuTLS only calls this when a timeout is armed; answer without waiting, so that nothing
 * inside GnuTLS can ever block the loop. The probe's uv_timer enforces the deadline. */
static int pull_timeout_nowait(gnutls_transport_ptr_t ptr, unsigned int ms)
{
    struct pollfd pfd = {.fd = (int)(intptr_t)ptr, .events = POLLIN};

    (void)ms;
    return poll(&pfd, 1, 0);
}

/* The compiled priority for text (NULL: the default), compiling it on first use. */
static int priority_for(struct cm_tls_ctx *ctx, const char *text, gnutls_priority_t *out)
{
    struct prio_entry *e;

    if (!text) {
        *out = ctx->prio;
        return 0;
    }
    for (e = ctx->prios; e; e = e->next)
        if (!strcmp(e->text, text)) {
            *out = e->prio;
            return 0;
        }
    if (!(e = calloc(1, sizeof(*e))) || !(e->text = strdup(text))) {
        free(e);
        return -ENOMEM;
    }
    if (gnutls_priority_init2(&e->prio, text, NULL, 0) < 0) {
        free(e->text);
        free(e);
        return CM_ETLS;
    }
    e->next = ctx->prios;
    ctx->prios = e;
    *out = e->prio;
    return 0;
}

/* What a priority asks beyond the priority itself: anonymous credentials for the anonymous
 * key exchanges (without them GnuTLS does not offer those suites), and for every session a
 * DH minimum of CM_DH_MIN_BITS, so that a server's weak group is seen rather than refused. */
static int set_session_options(struct cm_tls_ctx *ctx, gnutls_session_t s, const char *priority)
{
    gnutls_dh_set_prime_bits(s, CM_DH_MIN_BITS);
    if (!priority)
        return 0;
    if (strstr(priority, "ANON")) {
        if (!ctx->anon && gnutls_anon_allocate_client_credentials(&ctx->anon) < 0) {
            ctx->anon = NULL;
            return -ENOMEM;
        }
        if (gnutls_credentials_set(s, GNUTLS_CRD_ANON, ctx->anon) < 0)
            return CM_ETLS;
    }
    return 0;
}

/* ---- Certificates with too many names ----
 *
 * GnuTLS 3.7 parses a certificate's subjectAltName extension on import by growing its array
 * one name at a time (a realloc per name) and reading each name by its index from the start
 * of the decoded list: the cost is quadratic in the number of names. 9,000 names take 80 ms
 * per import in a normal build and over 10 s under AddressSanitizer (whose realloc always
 * copies), and the handshake does the first import on the loop, where no deadline can
 * interrupt it. So the names are counted in the raw Certificate message, before GnuTLS sees
 * it, with a linear walk over the DER, and a certificate with more than
 * CM_TLS_MAX_CERT_NAMES ends the handshake with a named error. */

/* Reads one DER TLV at *p (before end): tag into *tag, content into *body / *blen, and moves
 * *p past it. Returns false when the encoding is broken (GnuTLS then says why). */
static bool der_next(const unsigned char **p, const unsigned char *end, unsigned *tag,
                     const unsigned char **body, size_t *blen)
{
    const unsigned char *q = *p;
    size_t len = 0;

    if (end - q < 2 || (q[0] & 0x1f) == 0x1f)
        return false; /* high tag numbers do not occur where we look */
    *tag = q[0];
    if (q[1] < 0x80) {
        len = q[1];
        q += 2;
    } else {
        size_t n = q[1] & 0x7f;
        if (n == 0 || n > 4 || (size_t)(end - q) < 2 + n)
            return false;
        for (size_t k = 0; k < n; k++)
            len = len << 8 | q[2 + k];
        q += 2 + n;
    }
    if ((size_t)(end - q) < len)
        return false;
    *body = q;
    *blen = len;
    *p = q + len;
    return true;
}

/* The number of GeneralNames in the subjectAltName extension of one DER certificate; 0 when
 * it has none or cannot be walked. Linear in the certificate's size. */
static size_t der_count_names(const unsigned char *der, size_t len)
{
    static const unsigned char san_oid[] = {0x55, 0x1d, 0x11}; /* 2.5.29.17 */
    const unsigned char *p = der, *end = der + len, *b, *e, *eend;
    unsigned tag;
    size_t blen, n = 0;

    /* Certificate SEQUENCE -> TBSCertificate SEQUENCE -> its fields, up to [3] extensions. */
    if (!der_next(&p, end, &tag, &b, &blen) || tag != 0x30)
        return 0;
    p = b;
    end = b + blen;
    if (!der_next(&p, end, &tag, &b, &blen) || tag != 0x30)
        return 0;
    p = b;
    end = b + blen;
    while (p < end) {
        if (!der_next(&p, end, &tag, &b, &blen))
            return 0;
        if (tag != 0xa3)
            continue;
        /* Extensions ::= SEQUENCE OF Extension { extnID, critical DEFAULT FALSE, extnValue } */
        e = b;
        eend = b + blen;
        if (!der_next(&e, eend, &tag, &b, &blen) || tag != 0x30)
            return 0;
        e = b;
        eend = b + blen;
        while (e < eend) {
            const unsigned char *x, *xend, *v;
            size_t vlen;
            if (!der_next(&e, eend, &tag, &b, &blen) || tag != 0x30)
                return 0;
            x = b;
            xend = b + blen;
            if (!der_next(&x, xend, &tag, &v, &vlen) || tag != 0x06 || vlen != sizeof(san_oid) ||
                memcmp(v, san_oid, sizeof(san_oid)) != 0)
                continue;
            if (!der_next(&x, xend, &tag, &v, &vlen))
                return 0;
            if (tag == 0x01 && !der_next(&x, xend, &tag, &v, &vlen))
                return 0;
            if (tag != 0x04)
                return 0;
            /* extnValue holds GeneralNames ::= SEQUENCE OF GeneralName. */
            x = v;
            xend = v + vlen;
            if (!der_next(&x, xend, &tag, &v, &vlen) || tag != 0x30)
                return 0;
            x = v;
            xend = v + vlen;
            while (x < xend && der_next(&x, xend, &tag, &v, &vlen))
                n++;
            return n;
        }
        return 0;
    }
    return 0;
}

static unsigned get24(const unsigned char *p)
{
    return (unsigned)p[0] << 16 | (unsigned)p[1] << 8 | p[2];
}

/* Runs on every Certificate message the server sends, before GnuTLS parses it. */
static int names_hook(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
                      const gnutls_datum_t *msg)
{
    struct cm_tls_conn *c = gnutls_session_get_ptr(s);
    const unsigned char *p = msg->data, *end = msg->data + msg->size;
    bool tls13 = gnutls_protocol_get_version(s) == GNUTLS_TLS1_3;

    (void)when;
    if (!incoming || htype != GNUTLS_HANDSHAKE_CERTIFICATE_PKT || !c)
        return 0;
    /* TLS 1.3 puts a request context before the list and extensions after each entry. */
    if (tls13) {
        if (end - p < 1 || end - p - 1 < p[0])
            return 0;
        p += 1 + p[0];
    }
    if (end - p < 3)
        return 0;
    p += 3;
    for (unsigned pos = 0; end - p >= 3; pos++) {
        unsigned len = get24(p);
        size_t names;
        p += 3;
        if ((size_t)(end - p) < len)
            return 0;
        names = der_count_names(p, len);
        if (names > CM_TLS_MAX_CERT_NAMES) {
            c->names_refused = true;
            c->names_pos = pos;
            c->names_count = names;
            return GNUTLS_E_CERTIFICATE_ERROR;
        }
        p += len;
        if (tls13) {
            if (end - p < 2 || (size_t)(end - p - 2) < ((size_t)p[0] << 8 | p[1]))
                return 0;
            p += 2 + ((size_t)p[0] << 8 | p[1]);
        }
    }
    return 0;
}

int cm_tls_conn_new(struct cm_tls_ctx *ctx, int fd, const char *sni,
                    const struct cm_tls_profile *prof, const char *priority,
                    struct cm_tls_conn **out)
{
    struct cm_tls_conn *c;
    struct cred_entry *e;
    char err[256];
    int rc;

    *out = NULL;
    if (!(e = cred_find(ctx, prof))) {
        if ((rc = cm_tls_ctx_load(ctx, prof, err, sizeof(err))) < 0)
            return rc;
        e = cred_find(ctx, prof);
    }
    if (!(c = calloc(1, sizeof(*c))))
        return -ENOMEM;
    c->ctx = ctx;
    c->cred = e;
    /* A fresh session with no resumption data: every probe is a full handshake and sees the
     * whole chain. No tickets: nothing to resume, and the server need not mint one. */
    rc = gnutls_init(&c->session,
                     GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL | GNUTLS_NO_TICKETS);
    if (rc < 0) {
        free(c);
        return rc == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : CM_ETLS;
    }
    gnutls_priority_t prio;
    if ((rc = priority_for(ctx, priority, &prio)) < 0) {
        gnutls_deinit(c->session);
        free(c);
        return rc;
    }
    if ((rc = gnutls_priority_set(c->session, prio)) < 0 ||
        (rc = gnutls_credentials_set(c->session, GNUTLS_CRD_CERTIFICATE, e->cred)) < 0 ||
        (sni && (rc = gnutls_server_name_set(c->session, GNUTLS_NAME_DNS, sni, strlen(sni))) < 0)) {
        gnutls_deinit(c->session);
        free(c);
        return rc == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : CM_ETLS;
    }
    if ((rc = set_session_options(ctx, c->session, priority)) < 0) {
        gnutls_deinit(c->session);
        free(c);
        return rc;
    }
    gnutls_handshake_set_timeout(c->session, 0);
    gnutls_session_set_ptr(c->session, c);
    gnutls_handshake_set_hook_function(c->session, GNUTLS_HANDSHAKE_CERTIFICATE_PKT,
                                       GNUTLS_HOOK_PRE, names_hook);
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

/* Reads the stapled OCSP response, if any. Call after verification, which checks it. */
static void describe_ocsp(gnutls_session_t s, struct cm_ocsp *o)
{
    gnutls_datum_t d = {NULL, 0};
    gnutls_ocsp_resp_t resp;
    unsigned cert_status = 0;
    time_t this_update = 0, next_update = 0, revoked = 0;

    memset(o, 0, sizeof(*o));
    if (gnutls_ocsp_status_request_get2(s, 0, &d) < 0 || d.size == 0)
        return;
    o->status = CM_OCSP_BAD;
    o->verified = gnutls_ocsp_status_request_is_checked(s, 0) != 0;
    if (gnutls_ocsp_resp_init(&resp) < 0)
        return;
    if (gnutls_ocsp_resp_import(resp, &d) == 0 &&
        gnutls_ocsp_resp_get_single(resp, 0, NULL, NULL, NULL, NULL, &cert_status, &this_update,
                                    &next_update, &revoked, NULL) == 0) {
        o->status = cert_status == GNUTLS_OCSP_CERT_GOOD      ? CM_OCSP_GOOD
                    : cert_status == GNUTLS_OCSP_CERT_REVOKED ? CM_OCSP_REVOKED
                                                              : CM_OCSP_UNKNOWN;
        o->this_update = this_update > 0 ? (int64_t)this_update : 0;
        o->next_update = next_update > 0 ? (int64_t)next_update : 0;
        o->revoked_at = o->status == CM_OCSP_REVOKED && revoked > 0 ? (int64_t)revoked : 0;
    }
    gnutls_ocsp_resp_deinit(resp);
}

/* Looks up the trust-store issuer of der in the credentials' trust list into *out (0 or 1
 * certificate). Returns 0 or -ENOMEM. */
static int lookup_anchor(struct cm_tls_ctx *ctx, struct cred_entry *e, const gnutls_datum_t *der,
                         struct cm_chain *out)
{
    gnutls_x509_trust_list_t tl = NULL;
    gnutls_x509_crt_t crt, issuer = NULL;
    gnutls_datum_t enc = {NULL, 0};
    struct cm_der d;
    bool unused;
    int rc;

    gnutls_certificate_get_trust_list(e->cred, &tl);
    if (!tl)
        return 0;
    if (gnutls_x509_crt_init(&crt) < 0)
        return -ENOMEM;
    rc = gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER);
    if (rc >= 0)
        rc = gnutls_x509_trust_list_get_issuer(tl, crt, &issuer, GNUTLS_TL_GET_COPY);
    gnutls_x509_crt_deinit(crt);
    if (rc < 0)
        return 0;
    rc = gnutls_x509_crt_export2(issuer, GNUTLS_X509_FMT_DER, &enc);
    gnutls_x509_crt_deinit(issuer);
    if (rc < 0)
        return rc == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : 0;
    d.data = enc.data;
    d.len = enc.size;
    rc = cm_chain_from_der_list(ctx->certs, &d, 1, NULL, out, &unused);
    gnutls_free(enc.data);
    return rc;
}

/* The trust anchor behind the sent chain: the trust-store issuer of the top of the issuing
 * path that starts at position 0 (cm_chain_path_top over the extracted chain; a root sent and
 * trusted is its own issuer). GnuTLS's verification does not say which anchor it used, and a
 * weak or hostile anchor lives in the store, not in what the server sent, so it is looked up
 * here, through the credentials' cache. Nothing found (an untrusted chain) leaves *out empty.
 * Returns 0 or -ENOMEM. */
static int find_anchor(struct cm_tls_ctx *ctx, struct cred_entry *e, const gnutls_datum_t *peers,
                       const struct cm_chain *chain, struct cm_chain *out)
{
    size_t top = cm_chain_path_top(chain);
    const char *key = chain->count ? chain->certs[top].sha256 : NULL;
    struct anchor_slot *slot;
    unsigned long h = 5381;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!key || strlen(key) != 64)
        return chain->count ? lookup_anchor(ctx, e, &peers[top], out) : 0;
    for (const char *p = key; *p; p++)
        h = h * 33 + (unsigned char)*p;
    slot = &e->anchors[h % ANCHOR_SLOTS];
    pthread_mutex_lock(&e->anchors_lock);
    if (!strcmp(slot->key, key)) {
        rc = 0;
        if (slot->found && (out->certs = calloc(1, sizeof(*out->certs)))) {
            rc = cm_cert_copy(&out->certs[0], &slot->cert);
            out->count = rc == 0;
        } else if (slot->found) {
            rc = -ENOMEM;
        }
        pthread_mutex_unlock(&e->anchors_lock);
        if (rc < 0)
            cm_chain_clear(out);
        return rc;
    }
    pthread_mutex_unlock(&e->anchors_lock);

    /* Look up outside the lock; another thread may fill the slot meanwhile, last one wins. */
    if ((rc = lookup_anchor(ctx, e, &peers[top], out)) < 0)
        return rc;
    pthread_mutex_lock(&e->anchors_lock);
    cm_cert_clear(&slot->cert);
    slot->key[0] = '\0';
    slot->found = out->count > 0;
    if (!slot->found || cm_cert_copy(&slot->cert, &out->certs[0]) == 0)
        memcpy(slot->key, key, sizeof(slot->key));
    else
        slot->found = false; /* a failed copy just leaves the slot empty */
    pthread_mutex_unlock(&e->anchors_lock);
    return 0;
}

int cm_tls_ctx_find_anchor(struct cm_tls_ctx *ctx, const struct cm_tls_profile *profile,
                           const struct cm_chain *chain, struct cm_chain *out)
{
    struct cred_entry *e = cred_find(ctx, profile);
    size_t top = cm_chain_path_top(chain);
    gnutls_datum_t *peers;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!e)
        return -ENOENT;
    if (!chain->count || !chain->certs[top].der)
        return 0;
    /* find_anchor reads the top's encoding at its position only. */
    if (!(peers = calloc(chain->count, sizeof(*peers))))
        return -ENOMEM;
    peers[top].data = chain->certs[top].der;
    peers[top].size = (unsigned)chain->certs[top].der_len;
    rc = find_anchor(ctx, e, peers, chain, out);
    free(peers);
    return rc;
}

/* The finite-field DH group the server sent, if any: its size, and what it is worth, judged
 * here on the thread pool (GMP, cached per group). */
static void describe_dh(gnutls_session_t s, struct cm_tls_info *info)
{
    gnutls_datum_t gen = {NULL, 0}, prime = {NULL, 0};

    if (gnutls_dh_get_group(s, &gen, &prime) == 0 && prime.size > 0) {
        int bits = gnutls_dh_get_prime_bits(s);
        info->dh_bits = bits > 0 ? (unsigned)bits : 0;
        info->dh_group = cm_dh_group_check(prime.data, prime.size, gen.data, gen.size);
    }
    gnutls_free(gen.data);
    gnutls_free(prime.data);
}

/* GnuTLS's certificate status bits as certmon's own (result.h), so that nothing above this
 * adapter sees a GnuTLS type. A bit certmon has no name for still makes the chain untrusted. */
/* Whether the peer's chain leads to the system trust store (time aside: only "whom" counts
 * here): with the system store's credentials that is the handshake's own verification; with
 * a ca_file, the chain is verified once more against the system store's trust list, when the
 * context has it loaded (the daemon loads it for that), else it is not known and counts as
 * not public. */
static bool chains_to_system(struct cm_tls_ctx *ctx, const struct cred_entry *e,
                             const gnutls_datum_t *peers, unsigned n, unsigned status)
{
    const unsigned timing = GNUTLS_CERT_INVALID | GNUTLS_CERT_EXPIRED | GNUTLS_CERT_NOT_ACTIVATED;
    const struct cm_tls_profile system_store = {NULL, NULL, NULL};
    const struct cred_entry *sys;
    gnutls_x509_trust_list_t tl = NULL;
    gnutls_x509_crt_t crts[16];
    unsigned k = 0, vstatus = 0;
    int rc = -1;

    if (!e->ca_file)
        return (status & ~timing) == 0;
    if (!(sys = cred_find(ctx, &system_store)))
        return false;
    gnutls_certificate_get_trust_list(sys->cred, &tl);
    if (!tl)
        return false;
    for (; k < n && k < sizeof(crts) / sizeof(crts[0]); k++) {
        if (gnutls_x509_crt_init(&crts[k]) < 0)
            break;
        if (gnutls_x509_crt_import(crts[k], &peers[k], GNUTLS_X509_FMT_DER) < 0) {
            gnutls_x509_crt_deinit(crts[k]);
            break;
        }
    }
    if (k == n || k == sizeof(crts) / sizeof(crts[0]))
        rc = gnutls_x509_trust_list_verify_crt2(tl, crts, k, NULL, 0,
                                                GNUTLS_VERIFY_DISABLE_TIME_CHECKS |
                                                    GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS,
                                                &vstatus, NULL);
    while (k > 0)
        gnutls_x509_crt_deinit(crts[--k]);
    return rc >= 0 && vstatus == 0;
}

static unsigned verify_flags(unsigned status)
{
    static const struct {
        unsigned gnutls, cm;
    } map[] = {
        {GNUTLS_CERT_INVALID, CM_VERIFY_INVALID},
        {GNUTLS_CERT_REVOKED, CM_VERIFY_REVOKED},
        {GNUTLS_CERT_SIGNER_NOT_FOUND, CM_VERIFY_SIGNER_NOT_FOUND},
        {GNUTLS_CERT_SIGNER_NOT_CA, CM_VERIFY_SIGNER_NOT_CA},
        {GNUTLS_CERT_INSECURE_ALGORITHM, CM_VERIFY_INSECURE_ALGORITHM},
        {GNUTLS_CERT_NOT_ACTIVATED, CM_VERIFY_NOT_ACTIVATED},
        {GNUTLS_CERT_EXPIRED, CM_VERIFY_EXPIRED},
        {GNUTLS_CERT_SIGNATURE_FAILURE, CM_VERIFY_SIGNATURE_FAILURE},
        {GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED, CM_VERIFY_REVOCATION_DATA_SUPERSEDED},
        {GNUTLS_CERT_UNEXPECTED_OWNER, CM_VERIFY_UNEXPECTED_OWNER},
        {GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE, CM_VERIFY_REVOCATION_DATA_ISSUED_IN_FUTURE},
        {GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE, CM_VERIFY_SIGNER_CONSTRAINTS_FAILURE},
        {GNUTLS_CERT_MISMATCH, CM_VERIFY_MISMATCH},
        {GNUTLS_CERT_PURPOSE_MISMATCH, CM_VERIFY_PURPOSE_MISMATCH},
        {GNUTLS_CERT_MISSING_OCSP_STATUS, CM_VERIFY_MISSING_OCSP_STATUS},
        {GNUTLS_CERT_INVALID_OCSP_STATUS, CM_VERIFY_INVALID_OCSP_STATUS},
        {GNUTLS_CERT_UNKNOWN_CRIT_EXTENSIONS, CM_VERIFY_UNKNOWN_CRIT_EXTENSIONS},
    };
    unsigned out = 0, known = 0;

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        known |= map[i].gnutls;
        if (status & map[i].gnutls)
            out |= map[i].cm;
    }
    if (status & ~known)
        out |= CM_VERIFY_INVALID;
    return out;
}

int cm_tls_conn_describe(struct cm_tls_conn *c, const char *verify_name, bool chain,
                         struct cm_tls_info *info)
{
    gnutls_session_t s = c->session;
    int rc;

    memset(info, 0, sizeof(*info));
    if (c->completed) {
        gnutls_kx_algorithm_t kx = gnutls_kx_get(s);
        if (kx == GNUTLS_KX_DHE_RSA || kx == GNUTLS_KX_DHE_DSS || kx == GNUTLS_KX_ANON_DH)
            describe_dh(s, info);
        info->safe_renegotiation = gnutls_protocol_get_version(s) == GNUTLS_TLS1_3 ||
                                   gnutls_safe_renegotiation_status(s) != 0;
        const char *v = gnutls_protocol_get_name(gnutls_protocol_get_version(s));
        const char *cs = gnutls_ciphersuite_get(s);
        info->version = v ? strdup(v) : NULL;
        info->cipher = cs ? strdup(cs) : NULL;
        info->group = group_name(s);
        if ((v && !info->version) || (cs && !info->cipher))
            goto nomem;
    } else {
        /* A handshake that failed on the server's DH parameters (a generator of order 2 makes
         * GnuTLS refuse the server's public value) still shows the group: judge it too. */
        describe_dh(s, info);
    }
    info->client_cert_requested = cm_tls_conn_client_cert_requested(c);
    info->client_cert_sent = gnutls_certificate_get_ours(s) != NULL;
    if (!chain)
        return 0;
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
        /* Verified for what a TLS server certificate is for: a path whose extended key
         * usage excludes serverAuth is not fit for it (PURPOSE_MISMATCH). The host name stays
         * out: it is judged on its own (hostname_match), and "trusted" is about the chain
         * (docs/check.md), so a certificate for another name is not also "untrusted". */
        gnutls_typed_vdata_st purpose = {GNUTLS_DT_KEY_PURPOSE_OID,
                                         (unsigned char *)GNUTLS_KP_TLS_WWW_SERVER, 0};
        rc = gnutls_certificate_verify_peers(s, &purpose, 1, &status);
        /* Verification could not run at all (e.g. a certificate GnuTLS cannot parse):
         * not trusted, for no more specific reason. */
        if (rc < 0)
            status |= GNUTLS_CERT_INVALID;
        if (find_anchor(c->ctx, c->cred, peers, &info->chain, &info->anchor) < 0)
            goto nomem;
        describe_ocsp(s, &info->ocsp);
        info->verify.done = true;
        info->verify.status = verify_flags(status);
        info->verify.trusted = status == 0;
        info->verify.public_chain = chains_to_system(c->ctx, c->cred, peers, n, status);
        info->verify.hostname_match = match;
    }
    return 0;
nomem:
    cm_tls_info_clear(info);
    return -ENOMEM;
}

void cm_tls_error_describe(struct cm_tls_conn *c, int rc, char *buf, size_t len, bool *is_io)
{
    *is_io = false;
    if (c && c->names_refused && rc == GNUTLS_E_CERTIFICATE_ERROR) {
        snprintf(buf, len,
                 "the certificate at position %u lists %zu subject alternative names; certmon "
                 "refuses more than %d (parsing them costs time quadratic in their number)",
                 c->names_pos, c->names_count, CM_TLS_MAX_CERT_NAMES);
        return;
    }
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

bool cm_tls_error_is_refusal(struct cm_tls_conn *c, int rc)
{
    switch (rc) {
    case GNUTLS_E_FATAL_ALERT_RECEIVED:
        /* Not when the server asked for a client certificate: that refusal has findings of
         * its own (mtls.*), and no cipher or version would change it. */
        if (cm_tls_conn_client_cert_requested(c))
            return false;
        switch (gnutls_alert_get(c->session)) {
        case GNUTLS_A_HANDSHAKE_FAILURE:
        case GNUTLS_A_PROTOCOL_VERSION:
        case GNUTLS_A_INSUFFICIENT_SECURITY:
            return true;
        default:
            return false;
        }
    /* The server chose what we did not offer or cannot accept: a suite, a version (an SSL 3.0
     * ServerHello), a DH prime under even our floor, a key share. */
    case GNUTLS_E_UNKNOWN_CIPHER_SUITE:
    case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
    case GNUTLS_E_DH_PRIME_UNACCEPTABLE:
    case GNUTLS_E_NO_COMMON_KEY_SHARE:
    case GNUTLS_E_INSUFFICIENT_SECURITY:
    case GNUTLS_E_UNKNOWN_COMPRESSION_ALGORITHM:
    case GNUTLS_E_UNWANTED_ALGORITHM:
        return true;
    case GNUTLS_E_RECEIVED_ILLEGAL_PARAMETER: {
        /* Refused because of the server's DH group (a generator of small order): a group this
         * client cannot use, whose verdict the posture pass gives. */
        gnutls_datum_t gen = {NULL, 0}, prime = {NULL, 0};
        bool dh = gnutls_dh_get_group(c->session, &gen, &prime) == 0 && prime.size > 0;
        gnutls_free(gen.data);
        gnutls_free(prime.data);
        return dh;
    }
    default:
        return false;
    }
}
