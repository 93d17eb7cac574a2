/* Plain data of the probe layer: the free functions and names of everything a probe result
 * holds (include/certmon/probe/result.h). No I/O, no library but libc: the modules that build
 * the parts (probe, posture, revocation, ari, filecert) and the pure stages that read them
 * both link this. */
#include "certmon/probe/result.h"

#include <stdlib.h>
#include <string.h>

/* ---- The result ---- */

static const char *const kind_names[] = {NULL,  "dns", "connect",   "timeout",  "starttls",
                                         "tls", "io",  "cancelled", "internal", "file"};
static const char *const phase_names[] = {"dns",       "connect", "starttls",
                                          "handshake", "done",    "describe"};

const char *cm_err_kind_name(enum cm_err_kind k)
{
    return (unsigned)k < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[k] : "unknown";
}

const char *cm_phase_name(enum cm_phase p)
{
    return (unsigned)p < sizeof(phase_names) / sizeof(phase_names[0]) ? phase_names[p] : "unknown";
}

void cm_probe_result_free(struct cm_probe_result *res)
{
    if (!res)
        return;
    free(res->target);
    free(res->host);
    free(res->sni);
    free(res->verify_name);
    free(res->error_message);
    free(res->path);
    cm_tls_info_clear(&res->tls);
    cm_chain_clear(&res->client_chain);
    cm_posture_free(res->posture);
    cm_ari_free(res->ari);
    cm_revocation_free(res->revocation);
    cm_change_free(res->change);
    cm_file_info_clear(&res->file);
    cm_pin_miss_free(res->pin_miss);
    cm_deploy_free(res->deploy);
    free(res);
}

void cm_file_info_clear(struct cm_file_info *info)
{
    free(info->key.path);
    free(info->key.spki_sha256);
    free(info->key.error);
    memset(info, 0, sizeof(*info));
}

const char *cm_file_format_name(enum cm_file_format f)
{
    switch (f) {
    case CM_FILE_PKCS12:
        return "pkcs12";
    case CM_FILE_JKS:
        return "jks";
    default:
        return "certificates";
    }
}

const char *cm_integrity_name(enum cm_integrity i)
{
    static const char *const names[] = {NULL, "verified", "unverified", "absent", "failed"};

    return (unsigned)i < sizeof(names) / sizeof(names[0]) ? names[i] : NULL;
}

const char *cm_key_status_name(enum cm_key_status s)
{
    static const char *const names[] = {NULL, "match", "mismatch", "unreadable"};

    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : NULL;
}

void cm_deploy_free(struct cm_deploy *d)
{
    if (!d)
        return;
    free(d->path);
    free(d->error);
    cm_cert_clear(&d->cert);
    free(d);
}

struct cm_deploy *cm_deploy_copy(const struct cm_deploy *d)
{
    struct cm_deploy *n = calloc(1, sizeof(*n));

    if (!n)
        return NULL;
    n->newer_since = d->newer_since;
    n->grace_s = d->grace_s;
    if (!(n->path = strdup(d->path)) || (d->error && !(n->error = strdup(d->error))) ||
        (!d->error && cm_cert_copy(&n->cert, &d->cert) < 0)) {
        cm_deploy_free(n);
        return NULL;
    }
    return n;
}

void cm_pin_miss_free(struct cm_pin_miss *p)
{
    if (!p)
        return;
    free(p->sha256);
    free(p->spki_sha256);
    free(p);
}

void cm_change_free(struct cm_change *c)
{
    if (!c)
        return;
    free(c->what);
    free(c->old_sha256);
    free(c->new_sha256);
    free(c);
}

struct cm_change *cm_change_copy(const struct cm_change *c)
{
    struct cm_change *n = calloc(1, sizeof(*n));

    if (!n)
        return NULL;
    n->at = c->at;
    n->until = c->until;
    if (!(n->what = strdup(c->what)) || !(n->old_sha256 = strdup(c->old_sha256)) ||
        !(n->new_sha256 = strdup(c->new_sha256))) {
        cm_change_free(n);
        return NULL;
    }
    return n;
}

void cm_tls_info_clear(struct cm_tls_info *info)
{
    if (!info)
        return;
    free(info->version);
    free(info->cipher);
    free(info->group);
    cm_chain_clear(&info->chain);
    cm_chain_clear(&info->anchor);
    memset(info, 0, sizeof(*info));
}

const char *cm_ocsp_status_name(enum cm_ocsp_status st)
{
    switch (st) {
    case CM_OCSP_GOOD:
        return "good";
    case CM_OCSP_REVOKED:
        return "revoked";
    case CM_OCSP_UNKNOWN:
        return "unknown";
    case CM_OCSP_BAD:
        return "unparseable";
    default:
        return NULL;
    }
}

void cm_verify_status_foreach(unsigned status, void (*fn)(const char *name, void *arg), void *arg)
{
    static const struct {
        unsigned bit;
        const char *name;
    } bits[] = {
        {CM_VERIFY_REVOKED, "revoked"},
        {CM_VERIFY_SIGNER_NOT_FOUND, "signer_not_found"},
        {CM_VERIFY_SIGNER_NOT_CA, "signer_not_ca"},
        {CM_VERIFY_INSECURE_ALGORITHM, "insecure_algorithm"},
        {CM_VERIFY_NOT_ACTIVATED, "not_activated"},
        {CM_VERIFY_EXPIRED, "expired"},
        {CM_VERIFY_SIGNATURE_FAILURE, "signature_failure"},
        {CM_VERIFY_REVOCATION_DATA_SUPERSEDED, "revocation_data_superseded"},
        {CM_VERIFY_UNEXPECTED_OWNER, "unexpected_owner"},
        {CM_VERIFY_REVOCATION_DATA_ISSUED_IN_FUTURE, "revocation_data_issued_in_future"},
        {CM_VERIFY_SIGNER_CONSTRAINTS_FAILURE, "signer_constraints_failure"},
        {CM_VERIFY_MISMATCH, "mismatch"},
        {CM_VERIFY_PURPOSE_MISMATCH, "purpose_mismatch"},
        {CM_VERIFY_MISSING_OCSP_STATUS, "missing_ocsp_status"},
        {CM_VERIFY_INVALID_OCSP_STATUS, "invalid_ocsp_status"},
        {CM_VERIFY_UNKNOWN_CRIT_EXTENSIONS, "unknown_critical_extensions"},
    };
    unsigned named = 0;

    for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
        if (status & bits[i].bit) {
            fn(bits[i].name, arg);
            named |= bits[i].bit;
        }
    }
    /* INVALID alone means "not trusted" with no more specific reason. */
    if ((status & CM_VERIFY_INVALID) && !named)
        fn("invalid", arg);
}

static const char *const pv_names[CM_PV_COUNT] = {"TLS1.3", "TLS1.2", "TLS1.1", "TLS1.0", "SSL3.0"};
static const char *const weak_names[CM_WEAK_COUNT] = {"RC4", "3DES", "NULL", "EXPORT", "ANON"};

const char *cm_pv_name(enum cm_pv v)
{
    return (unsigned)v < CM_PV_COUNT ? pv_names[v] : "unknown";
}

const char *cm_weak_name(enum cm_weak w)
{
    return (unsigned)w < CM_WEAK_COUNT ? weak_names[w] : "unknown";
}

enum cm_pv cm_pv_from_name(const char *version)
{
    /* SSL 3.0 is never a negotiated version here: GnuTLS cannot speak it. */
    for (int v = CM_PV_TLS13; version && v <= CM_PV_TLS10; v++)
        if (strcmp(version, pv_names[v]) == 0)
            return (enum cm_pv)v;
    return CM_PV_COUNT;
}

void cm_posture_free(struct cm_posture *p)
{
    free(p);
}

/* Marks in p the weak classes of the suite a handshake negotiated (an IANA name such as
 * "TLS_RSA_WITH_RC4_128_MD5"): a completed handshake is proof the server accepts it. */
void cm_posture_note_suite(struct cm_posture *p, const char *cipher)
{
    static const struct {
        const char *part;
        enum cm_weak weak;
    } parts[] = {
        {"_RC4_", CM_WEAK_RC4},     {"_3DES_", CM_WEAK_3DES}, {"_WITH_NULL_", CM_WEAK_NULL},
        {"EXPORT", CM_WEAK_EXPORT}, {"_anon_", CM_WEAK_ANON},
    };

    for (size_t i = 0; cipher && i < sizeof(parts) / sizeof(parts[0]); i++)
        if (strstr(cipher, parts[i].part))
            p->weak[parts[i].weak] = CM_TRI_YES;
}

/* True for the IANA name of an AEAD suite (GCM, CCM, ChaCha20-Poly1305). */
bool cm_suite_is_aead(const char *cipher)
{
    return cipher && (strstr(cipher, "_GCM_") || strstr(cipher, "_CCM") ||
                      strstr(cipher, "_CHACHA20_POLY1305"));
}

void cm_posture_add_handshake(struct cm_posture *p, const struct cm_tls_info *tls)
{
    enum cm_pv v;
    bool tls13;

    if (!p || !tls->version)
        return;
    tls13 = strcmp(tls->version, "TLS1.3") == 0;
    if ((v = cm_pv_from_name(tls->version)) != CM_PV_COUNT)
        p->version[v] = CM_TRI_YES;
    cm_posture_note_suite(p, tls->cipher);
    if (tls13 || cm_suite_is_aead(tls->cipher))
        p->aead = CM_TRI_YES;
    if (tls->dh_group > p->dh_group)
        p->dh_group = tls->dh_group;
    if (tls13 || tls->group)
        p->forward_secrecy = CM_TRI_YES;
    if (!tls13 && !tls->safe_renegotiation)
        p->secure_renegotiation = CM_TRI_NO;
    else if (p->secure_renegotiation == CM_TRI_UNKNOWN)
        p->secure_renegotiation = CM_TRI_YES;
    if (tls->dh_bits > 0 && (p->dh_bits == 0 || tls->dh_bits < p->dh_bits))
        p->dh_bits = tls->dh_bits;
}

/* ---- Revocation ---- */

void cm_revocation_free(struct cm_revocation *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->count; i++)
        for (size_t k = 0; k < r->certs[i].error_count; k++)
            free(r->certs[i].errors[k]);
    free(r->certs);
    free(r);
}

const char *cm_rev_status_name(enum cm_rev_status s)
{
    switch (s) {
    case CM_REV_GOOD:
        return "good";
    case CM_REV_REVOKED:
        return "revoked";
    case CM_REV_UNAVAILABLE:
        return "unavailable";
    case CM_REV_NONE:
        return "none";
    default:
        return NULL;
    }
}

const char *cm_rev_source_name(enum cm_rev_source s)
{
    switch (s) {
    case CM_REV_SRC_STAPLE:
        return "staple";
    case CM_REV_SRC_OCSP:
        return "ocsp";
    case CM_REV_SRC_CRL:
        return "crl";
    default:
        return NULL;
    }
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

struct cm_ari *cm_ari_copy(const struct cm_ari *src)
{
    struct cm_ari *a;

    if (!src || !(a = calloc(1, sizeof(*a))))
        return NULL;
    *a = *src;
    a->url = dup_or_null(src->url);
    a->cert_id = dup_or_null(src->cert_id);
    a->cert_sha256 = dup_or_null(src->cert_sha256);
    a->explanation_url = dup_or_null(src->explanation_url);
    a->error = dup_or_null(src->error);
    if ((src->url && !a->url) || (src->cert_id && !a->cert_id) ||
        (src->cert_sha256 && !a->cert_sha256) || (src->explanation_url && !a->explanation_url) ||
        (src->error && !a->error)) {
        cm_ari_free(a);
        return NULL;
    }
    return a;
}

void cm_ari_free(struct cm_ari *a)
{
    if (!a)
        return;
    free(a->url);
    free(a->cert_id);
    free(a->cert_sha256);
    free(a->explanation_url);
    free(a->error);
    free(a);
}

struct cm_posture *cm_posture_fold(const struct cm_posture *pass, const struct cm_tls_info *tls)
{
    struct cm_posture *p = malloc(sizeof(*p));

    if (p) {
        *p = *pass;
        cm_posture_add_handshake(p, tls);
    }
    return p;
}
