#include "certmon/analysis/report.h"

#include <string.h>

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *ms_or_null(double ms)
{
    /* Microsecond precision is plenty and keeps the numbers readable. */
    return ms < 0 ? json_null() : json_real((double)(long long)(ms * 1000.0 + 0.5) / 1000.0);
}

/* Sets key to v (stolen, NULL counts as failure). Returns non-zero on failure. */
static int set(json_t *o, const char *key, json_t *v)
{
    return v ? json_object_set_new(o, key, v) != 0 : 1;
}

static void add_verify_error(const char *name, void *arg)
{
    json_array_append_new(arg, json_string(name));
}

/* The key usage bits as RFC 5280 names them, or null when the extension is absent. */
static json_t *key_usage_json(const struct cm_cert *c)
{
    const struct cm_ku_name *names = cm_key_usage_names;
    json_t *a;

    if (!c->has_key_usage)
        return json_null();
    if (!(a = json_array()))
        return NULL;
    for (size_t i = 0; i < CM_KU_COUNT; i++)
        if ((c->key_usage & names[i].bit) && json_array_append_new(a, json_string(names[i].name)))
            goto fail;
    return a;
fail:
    json_decref(a);
    return NULL;
}

/* The extended key usage purposes (names, or OIDs for others), or null when absent. */
static json_t *eku_json(const struct cm_cert *c)
{
    const char *p = c->eku ? c->eku : "";
    json_t *a;

    if (!c->has_eku)
        return json_null();
    if (!(a = json_array()))
        return NULL;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (json_array_append_new(a, json_stringn(p, n))) {
            json_decref(a);
            return NULL;
        }
        p += n;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return a;
}

static json_t *cert_json(const struct cm_cert *c, size_t pos, time_t now)
{
    char nb[32], na[32];
    json_t *sans = json_array();
    /* Certificates built by hand (tests) may set san_count alone. */
    size_t total = c->san_total > c->san_count ? c->san_total : c->san_count;
    json_t *o;

    cm_time_rfc3339(c->not_before, nb, sizeof(nb));
    cm_time_rfc3339(c->not_after, na, sizeof(na));
    for (size_t i = 0; sans && i < c->san_count; i++)
        json_array_append_new(sans, json_string(c->sans[i]));
    o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:{s:s, s:I}, s:s, s:s, s:o*, "
                  "s:I, s:b, s:b, s:b, s:b}",
                  "position", (json_int_t)pos, "subject", c->subject, "issuer", c->issuer, "serial",
                  c->serial, "not_before", nb, "not_after", na, "days_left",
                  (json_int_t)cm_cert_days_left(c, now), "key", "type", c->key_type, "bits",
                  (json_int_t)c->key_bits, "signature", c->signature, "sha256", c->sha256, "sans",
                  sans, "san_count", (json_int_t)total, "sans_truncated", total > c->san_count,
                  "is_ca", c->is_ca, "self_signed", c->self_signed, "must_staple", c->must_staple);
    if (o &&
        (set(o, "spki_sha256", json_string(c->spki_sha256 ? c->spki_sha256 : "")) ||
         set(o, "key_usage", key_usage_json(c)) || set(o, "extended_key_usage", eku_json(c)))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The trust anchor behind the chain (tlsio.h), at its position (findings.md: the sent copy's,
 * or the chain length), or null. */
static json_t *anchor_json(const struct cm_tls_info *tls, time_t now)
{
    const struct cm_cert *a = tls->anchor.count ? &tls->anchor.certs[0] : NULL;

    return a ? cert_json(a, cm_chain_position(&tls->chain, a), now) : json_null();
}

static json_t *time_or_null(int64_t t)
{
    char buf[32];

    if (t <= 0)
        return json_null();
    cm_time_rfc3339(t, buf, sizeof(buf));
    return json_string(buf);
}

/* chain[i].revocation: null when revocation was not checked, or not for this certificate (a
 * self-signed one). */
static json_t *revocation_json(const struct cm_probe_result *res, size_t i)
{
    const struct cm_rev_cert *c;
    json_t *errors, *o;

    if (!res->revocation || i >= res->revocation->count)
        return json_null();
    c = &res->revocation->certs[i];
    if (c->status == CM_REV_UNCHECKED)
        return json_null();
    if (!(errors = json_array()))
        return NULL;
    for (size_t k = 0; k < c->error_count; k++)
        if (json_array_append_new(errors, json_string(c->errors[k])) < 0) {
            json_decref(errors);
            return NULL;
        }
    o = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:b, s:o}", "status",
                  cm_rev_status_name(c->status), "source",
                  str_or_null(cm_rev_source_name(c->source)), "revoked_at",
                  time_or_null(c->status == CM_REV_REVOKED ? c->revoked_at : 0), "reason",
                  str_or_null(c->status == CM_REV_REVOKED ? c->reason : NULL), "this_update",
                  time_or_null(c->this_update), "next_update", time_or_null(c->next_update),
                  "crl_stale", c->crl_stale, "errors", errors);
    return o;
}

/* Where the certificate publishes revocation: {crl: [URL...], ocsp: URL or null}. */
static json_t *rev_urls_json(const struct cm_cert *c)
{
    json_t *crl = json_array();

    for (size_t i = 0; crl && i < c->crl_url_count; i++)
        if (json_array_append_new(crl, json_string(c->crl_urls[i])) < 0) {
            json_decref(crl);
            return NULL;
        }
    return json_pack("{s:o*, s:o}", "crl", crl, "ocsp",
                     str_or_null(c->ocsp_url && c->ocsp_url[0] ? c->ocsp_url : NULL));
}

static json_t *ocsp_json(const struct cm_tls_info *tls)
{
    const struct cm_ocsp *o = &tls->ocsp;
    const char *st = cm_ocsp_status_name(o->status);

    return json_pack("{s:b, s:o, s:b, s:o, s:o}", "stapled", o->status != CM_OCSP_NONE, "status",
                     str_or_null(st), "verified", o->verified, "this_update",
                     time_or_null(o->this_update), "next_update", time_or_null(o->next_update));
}

static json_t *mtls_json(const struct cm_probe_result *res, time_t now)
{
    const struct cm_tls_info *tls = &res->tls;
    json_t *ours = json_null();

    if (res->client_chain.count > 0) {
        const struct cm_cert *c = &res->client_chain.certs[0];
        char na[32];
        cm_time_rfc3339(c->not_after, na, sizeof(na));
        ours = json_pack("{s:s, s:s, s:s, s:I}", "subject", c->subject, "issuer", c->issuer,
                         "not_after", na, "days_left", (json_int_t)cm_cert_days_left(c, now));
    }
    return json_pack("{s:b, s:b, s:o}", "client_cert_requested", tls->client_cert_requested,
                     "client_cert_sent", tls->client_cert_sent, "client_cert", ours);
}

static json_t *finding_json(const struct cm_finding *f)
{
    json_t *fo = json_pack("{s:s, s:s, s:s, s:o}", "id", f->id, "severity",
                           cm_severity_name(f->severity), "message", f->message, "position",
                           f->position < 0 ? json_null() : json_integer(f->position));

    if (!fo)
        return NULL;
    if ((f->has_days_left &&
         json_object_set_new(fo, "days_left", json_integer(f->days_left)) < 0) ||
        (f->key_type && (json_object_set_new(fo, "key_type", json_string(f->key_type)) < 0 ||
                         json_object_set_new(fo, "key_bits", json_integer(f->key_bits)) < 0)) ||
        (f->algorithm && json_object_set_new(fo, "algorithm", json_string(f->algorithm)) < 0) ||
        (f->version && json_object_set_new(fo, "version", json_string(f->version)) < 0) ||
        (f->cipher_class && json_object_set_new(fo, "class", json_string(f->cipher_class)) < 0) ||
        (f->dh_bits && json_object_set_new(fo, "dh_bits", json_integer(f->dh_bits)) < 0) ||
        (f->rev_source && (json_object_set_new(fo, "source", json_string(f->rev_source)) < 0 ||
                           json_object_set_new(fo, "revoked_at", time_or_null(f->revoked_at)) < 0 ||
                           json_object_set_new(fo, "reason", str_or_null(f->rev_reason)) < 0))) {
        json_decref(fo);
        return NULL;
    }
    return fo;
}

static json_t *tri_json(enum cm_tri v)
{
    return v == CM_TRI_UNKNOWN ? json_null() : json_boolean(v == CM_TRI_YES);
}

static json_t *ari_time(bool has, int64_t t)
{
    char buf[32];

    if (!has)
        return json_null();
    cm_time_rfc3339(t, buf, sizeof(buf));
    return json_string(buf);
}

/* The ari object of docs/check.md (ACME renewal information), or JSON null when not asked.
 * Strings from the CA go out as JSON strings: jansson escapes them. */
static json_t *ari_json(const struct cm_ari *a)
{
    if (!a)
        return json_null();
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "url", str_or_null(a->url),
                     "cert_id", str_or_null(a->cert_id), "window_start",
                     ari_time(a->has_window, a->window_start), "window_end",
                     ari_time(a->has_window, a->window_end), "explanation_url",
                     str_or_null(a->explanation_url), "retry_after",
                     a->retry_after >= 0 ? json_integer(a->retry_after) : json_null(), "next_poll",
                     ari_time(a->next_poll > 0, a->next_poll), "error", str_or_null(a->error));
}

/* The posture object of docs/check.md, or JSON null when the pass did not run. */
static json_t *posture_json(const struct cm_posture *p)
{
    json_t *versions, *weak, *not_tested;

    if (!p)
        return json_null();
    versions = json_array();
    weak = json_array();
    not_tested = json_array();
    for (int v = 0; v < CM_PV_COUNT; v++) {
        if (p->version[v] == CM_TRI_YES)
            json_array_append_new(versions, json_string(cm_pv_name((enum cm_pv)v)));
        else if (p->version[v] == CM_TRI_UNKNOWN)
            json_array_append_new(not_tested, json_string(cm_pv_name((enum cm_pv)v)));
    }
    for (int w = 0; w < CM_WEAK_COUNT; w++) {
        if (p->weak[w] == CM_TRI_YES)
            json_array_append_new(weak, json_string(cm_weak_name((enum cm_weak)w)));
        else if (p->weak[w] == CM_TRI_UNKNOWN)
            json_array_append_new(not_tested, json_string(cm_weak_name((enum cm_weak)w)));
    }
    if (p->dhe == CM_TRI_UNKNOWN)
        json_array_append_new(not_tested, json_string("DHE"));
    const char *group = cm_dh_group_name(p->dh_group);
    return json_pack("{s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:o, s:I, s:o}", "versions_accepted",
                     versions, "weak_ciphers_accepted", weak, "forward_secrecy",
                     tri_json(p->forward_secrecy), "aead", tri_json(p->aead), "dh_bits",
                     (json_int_t)p->dh_bits, "dh_group", group ? json_string(group) : json_null(),
                     "secure_renegotiation", tri_json(p->secure_renegotiation), "not_tested",
                     not_tested, "handshakes", (json_int_t)p->handshakes, "elapsed_ms",
                     ms_or_null(p->elapsed_ms));
}

/* A file target's format and keystore integrity (docs/check.md). */
static json_t *keystore_json(const struct cm_file_info *fi)
{
    const char *integrity = cm_integrity_name(fi->integrity);

    return json_pack("{s:s, s:o}", "format", cm_file_format_name(fi->format), "integrity",
                     integrity ? json_string(integrity) : json_null());
}

/* The private key paired with a file target's certificate, or null. The key itself never
 * leaves filecert: only its file, type and public key hash. */
static json_t *key_json(const struct cm_key_check *k)
{
    if (k->status == CM_KEY_NONE)
        return json_null();
    return json_pack("{s:s, s:s?, s:o, s:o, s:o}", "status", cm_key_status_name(k->status), "path",
                     k->path, "type", str_or_null(k->type), "spki_sha256",
                     str_or_null(k->spki_sha256), "error", str_or_null(k->error));
}

/* The object of a file target: the same keys as an endpoint's, with "path" after "target",
 * and null for everything that concerns a connection. Takes every reference it is given. */
static json_t *file_json(json_t *o, const struct cm_probe_result *res,
                         const struct cm_findings *findings, json_t *err, json_t *chain, json_t *fs,
                         json_t *errors)
{
    bool ok;

    json_decref(errors); /* nothing is verified */
    /* Held across the sets, so that those not reached on a failure are freed too. */
    json_incref(err);
    json_incref(chain);
    json_incref(fs);
    ok = o && !set(o, "target", json_string(res->target)) &&
         !set(o, "path", json_string(res->path)) && !set(o, "host", json_null()) &&
         !set(o, "port", json_null()) && !set(o, "sni", json_null()) &&
         !set(o, "address", json_null()) && !set(o, "starttls", json_null()) &&
         !set(o, "status", json_string(cm_status_name(cm_result_status(res, findings)))) &&
         !set(o, "error", err) &&
         !set(o, "timing_ms",
              json_pack("{s:n, s:n, s:n, s:n, s:o}", "dns", "connect", "starttls", "handshake",
                        "total", ms_or_null(res->total_ms))) &&
         !set(o, "tls", json_null()) && !set(o, "verification", json_null()) &&
         !set(o, "ocsp", json_null()) && !set(o, "mtls", json_null()) && !set(o, "chain", chain) &&
         !set(o, "trust_anchor", json_null()) && !set(o, "findings", fs) &&
         !set(o, "posture", json_null()) && !set(o, "ari", json_null()) &&
         !set(o, "keystore", keystore_json(&res->file)) && !set(o, "key", key_json(&res->file.key));
    json_decref(err);
    json_decref(chain);
    json_decref(fs);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *cm_report_json(const struct cm_probe_result *res, const struct cm_findings *findings,
                       time_t now)
{
    const struct cm_tls_info *tls = &res->tls;
    json_t *o, *chain, *errors, *fs, *err;

    chain = json_array();
    errors = json_array();
    fs = json_array();
    if (!chain || !errors || !fs)
        goto fail;
    for (size_t i = 0; i < tls->chain.count; i++) {
        json_t *c = cert_json(&tls->chain.certs[i], i, now);
        if (json_array_append_new(chain, c) < 0 || set(c, "revocation", revocation_json(res, i)) ||
            set(c, "revocation_urls", rev_urls_json(&tls->chain.certs[i])))
            goto fail;
    }
    if (tls->verify.done) {
        cm_verify_status_foreach(tls->verify.status, add_verify_error, errors);
        if (!tls->verify.hostname_match)
            json_array_append_new(errors, json_string("hostname_mismatch"));
    }
    for (size_t i = 0; i < findings->count; i++) {
        const struct cm_finding *f = &findings->items[i];
        if (json_array_append_new(fs, finding_json(f)) < 0)
            goto fail;
    }
    if (res->error_kind == CM_ERRK_NONE)
        err = json_null();
    else if (res->error_kind == CM_ERRK_TIMEOUT)
        err = json_pack("{s:s, s:s, s:s}", "kind", "timeout", "phase",
                        cm_phase_name(res->error_phase), "message",
                        res->error_message ? res->error_message : "");
    else
        err = json_pack("{s:s, s:s}", "kind", cm_err_kind_name(res->error_kind), "message",
                        res->error_message ? res->error_message : "");

    /* Built key by key, in the documented order (docs/check.md). */
    o = json_object();
    if (res->path)
        return file_json(o, res, findings, err, chain, fs, errors);
    if (!o || set(o, "target", json_string(res->target)) ||
        set(o, "host", json_string(res->host)) || set(o, "port", json_integer(res->port)) ||
        set(o, "sni", str_or_null(res->sni)) ||
        set(o, "address", res->address[0] ? json_string(res->address) : json_null()) ||
        set(o, "starttls", str_or_null(cm_starttls_name(res->starttls))) ||
        set(o, "status", json_string(cm_status_name(cm_result_status(res, findings)))) ||
        set(o, "error", err) ||
        set(o, "timing_ms",
            json_pack("{s:o, s:o, s:o, s:o, s:o}", "dns", ms_or_null(res->dns_ms), "connect",
                      ms_or_null(res->connect_ms), "starttls", ms_or_null(res->starttls_ms),
                      "handshake", ms_or_null(res->handshake_ms), "total",
                      ms_or_null(res->total_ms))) ||
        set(o, "tls",
            json_pack("{s:o, s:o, s:o}", "version", str_or_null(tls->version), "cipher",
                      str_or_null(tls->cipher), "group", str_or_null(tls->group))) ||
        set(o, "verification",
            json_pack("{s:b, s:b, s:o}", "trusted", tls->verify.trusted, "hostname_match",
                      tls->verify.hostname_match, "errors", errors)) ||
        set(o, "ocsp", ocsp_json(tls)) || set(o, "mtls", mtls_json(res, now)) ||
        set(o, "chain", chain) || set(o, "trust_anchor", anchor_json(tls, now)) ||
        set(o, "findings", fs) || set(o, "posture", posture_json(res->posture)) ||
        set(o, "ari", ari_json(res->ari))) {
        json_decref(o);
        return NULL;
    }
    return o;
fail:
    json_decref(chain);
    json_decref(errors);
    json_decref(fs);
    return NULL;
}

#define C_RESET "\033[0m"
#define C_BOLD "\033[1m"
#define C_DIM "\033[2m"
#define C_RED "\033[1;31m"
#define C_YELLOW "\033[1;33m"
#define C_GREEN "\033[1;32m"
#define C_CYAN "\033[36m"

static const char *status_colour(enum cm_status st)
{
    switch (st) {
    case CM_STATUS_OK:
        return C_GREEN;
    case CM_STATUS_WARNING:
        return C_YELLOW;
    default:
        return C_RED;
    }
}

static const char *sev_colour(enum cm_severity s)
{
    return s == CM_SEV_CRITICAL ? C_RED : s == CM_SEV_WARNING ? C_YELLOW : C_CYAN;
}

/* Shortest useful name for a certificate in one line: its CN, else the whole subject. */
static void short_name(const char *dn, char *buf, size_t len)
{
    const char *cn = strstr(dn, "CN=");

    if (cn && (cn == dn || cn[-1] == ',')) {
        size_t n = strcspn(cn + 3, ",");
        snprintf(buf, len, "%.*s", (int)n, cn + 3);
    } else {
        snprintf(buf, len, "%s", dn[0] ? dn : "(empty subject)");
    }
}

static const char *tri_word(enum cm_tri v)
{
    return v == CM_TRI_YES ? "yes" : v == CM_TRI_NO ? "no" : "unknown";
}

/* One line: "posture: TLS1.3 TLS1.2; weak ciphers: none; forward secrecy: yes; ...". */
static void posture_text(FILE *fp, const struct cm_posture *p)
{
    bool any = false;

    fputs("         posture:", fp);
    for (int v = 0; v < CM_PV_COUNT; v++)
        if (p->version[v] == CM_TRI_YES) {
            fprintf(fp, " %s", cm_pv_name((enum cm_pv)v));
            any = true;
        }
    fprintf(fp, "%s; weak ciphers:", any ? "" : " no version accepted");
    any = false;
    for (int w = 0; w < CM_WEAK_COUNT; w++)
        if (p->weak[w] == CM_TRI_YES) {
            fprintf(fp, " %s", cm_weak_name((enum cm_weak)w));
            any = true;
        }
    fprintf(fp, "%s; forward secrecy: %s; ", any ? "" : " none", tri_word(p->forward_secrecy));
    if (p->aead == CM_TRI_NO)
        fprintf(fp, "no AEAD suite; ");
    if (p->dh_bits)
        fprintf(fp, "DH %u bits%s%s; ", p->dh_bits, p->dh_group > CM_DH_GROUP_GOOD ? ", " : "",
                p->dh_group > CM_DH_GROUP_GOOD ? cm_dh_group_name(p->dh_group) : "");
    fprintf(fp, "secure renegotiation: %s (%u handshakes, %.0f ms)\n",
            tri_word(p->secure_renegotiation), p->handshakes, p->elapsed_ms);
}

void cm_report_text(FILE *fp, const struct cm_probe_result *res, const struct cm_findings *findings,
                    time_t now, bool colour)
{
    const struct cm_tls_info *tls = &res->tls;
    enum cm_status st = cm_result_status(res, findings);
    char word[16], when[32], name[128], issuer[128];
    int first = cm_chain_earliest_expiry(&tls->chain);
    const char *on = colour ? status_colour(st) : "";
    const char *off = colour ? C_RESET : "";
    const char *dim = colour ? C_DIM : "";

    snprintf(word, sizeof(word), "%s", cm_status_name(st));
    for (char *p = word; *p; p++)
        *p = (char)(*p - 32 * (*p >= 'a' && *p <= 'z'));
    fprintf(fp, "%s%-8s%s %s%s%s", on, word, off, colour ? C_BOLD : "", res->target, off);
    if (res->address[0])
        fprintf(fp, " %s(%s)%s", dim, res->address, off);
    if (first >= 0) {
        const struct cm_cert *c = &tls->chain.certs[first];
        int64_t d = cm_cert_days_left(c, now);
        cm_time_rfc3339(c->not_after, when, sizeof(when));
        if (c->not_after < (int64_t)now)
            fprintf(fp, "  expired %s", when);
        else
            fprintf(fp, "  %lld day%s left (%s)", (long long)d, d == 1 ? "" : "s", when);
    }
    fputc('\n', fp);

    if (tls->version)
        fprintf(fp, "         %s %s%s%s, handshake %.0f ms%s%s\n", tls->version,
                tls->cipher ? tls->cipher : "", tls->group ? " " : "", tls->group ? tls->group : "",
                res->handshake_ms, res->starttls ? ", after STARTTLS " : "",
                res->starttls ? cm_starttls_name(res->starttls) : "");
    if (res->path && tls->chain.count > 0)
        fprintf(fp, "         %zu certificate%s in %s%s%s%s\n", tls->chain.count,
                tls->chain.count == 1 ? "" : "s", res->path,
                res->file.format != CM_FILE_CERTS ? " (" : "",
                res->file.format != CM_FILE_CERTS ? cm_file_format_name(res->file.format) : "",
                res->file.format != CM_FILE_CERTS ? ")" : "");
    else if (tls->chain.count > 0)
        fprintf(fp, "         chain: %zu certificate%s, %s, %s\n", tls->chain.count,
                tls->chain.count == 1 ? "" : "s", tls->verify.trusted ? "trusted" : "not trusted",
                tls->verify.hostname_match ? "hostname matches" : "hostname does not match");
    for (size_t i = 0; i < tls->chain.count; i++) {
        const struct cm_cert *c = &tls->chain.certs[i];
        cm_time_rfc3339(c->not_after, when, sizeof(when));
        short_name(c->subject, name, sizeof(name));
        short_name(c->issuer, issuer, sizeof(issuer));
        fprintf(fp, "         %s%zu%s %s <- %s  %s %u  %s  %s\n", dim, i, off, name, issuer,
                c->key_type, c->key_bits, c->signature, when);
    }
    if (res->posture)
        posture_text(fp, res->posture);
    for (size_t i = 0; i < findings->count; i++) {
        const struct cm_finding *f = &findings->items[i];
        fprintf(fp, "         %s%-8s%s %s: %s\n", colour ? sev_colour(f->severity) : "",
                cm_severity_name(f->severity), off, f->id, f->message);
    }
}
