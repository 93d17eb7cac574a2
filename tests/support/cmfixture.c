/* Shared probe-result fixtures (cmfixture.h). */
#include "cmfixture.h"
#include "cmtest.h"

#include <stdlib.h>
#include <string.h>

char *cm_tf_strdup(const char *s)
{
    char *d = strdup(s);

    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    return d;
}

void cm_tf_fill_cert(struct cm_cert *c, const char *subject, const char *issuer, int64_t not_before,
                     int64_t not_after, bool is_ca)
{
    memset(c, 0, sizeof(*c));
    c->subject = cm_tf_strdup(subject);
    c->issuer = cm_tf_strdup(issuer);
    c->serial = cm_tf_strdup("0123abcd");
    c->signature = cm_tf_strdup("RSA-SHA256");
    c->sig_hash = "SHA256";
    c->sha256 = cm_tf_strdup("5f1c9e2a0d7b43e8a6c1f0b9d2e7a4c3b8f6e1d0c9a7b5e3f2d1c0b9a8e7f6d5");
    c->key_type = "RSA";
    c->key_bits = 2048;
    c->not_before = not_before;
    c->not_after = not_after;
    c->is_ca = is_ca;
    c->self_signed = strcmp(subject, issuer) == 0;
    if (!is_ca) {
        c->sans = calloc(1, sizeof(*c->sans));
        CU_ASSERT_PTR_NOT_NULL_FATAL(c->sans);
        c->sans[0] = cm_tf_strdup("example.com");
        c->san_count = 1;
    }
}

struct cm_probe_result *cm_tf_endpoint(int64_t now)
{
    struct cm_probe_result *r = calloc(1, sizeof(*r));

    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    r->target = cm_tf_strdup("example.com:443");
    r->host = cm_tf_strdup("example.com");
    r->port = 443;
    r->sni = cm_tf_strdup("example.com");
    r->verify_name = cm_tf_strdup("example.com");
    strcpy(r->address, "192.0.2.1");
    r->error_kind = CM_ERRK_NONE;
    r->error_phase = CM_PHASE_DONE;
    r->dns_ms = 1.5;
    r->connect_ms = 2.5;
    r->starttls_ms = -1;
    r->handshake_ms = 10.25;
    r->total_ms = 14.25;
    r->tls.version = cm_tf_strdup("TLS1.3");
    r->tls.cipher = cm_tf_strdup("TLS_AES_128_GCM_SHA256");
    r->tls.group = cm_tf_strdup("X25519");
    r->tls.verify.done = true;
    r->tls.verify.trusted = true;
    r->tls.verify.hostname_match = true;
    r->tls.verify.status = 0;
    r->tls.chain.certs = calloc(2, sizeof(struct cm_cert));
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->tls.chain.certs);
    r->tls.chain.count = 2;
    r->finished_at = now;
    return r;
}

void cm_tf_to_file(struct cm_probe_result *r, const char *path)
{
    size_t len = strlen(path);
    char *target = malloc(len + 6);

    CU_ASSERT_PTR_NOT_NULL_FATAL(target);
    memcpy(target, "file:", 5);
    memcpy(target + 5, path, len + 1);
    free(r->target);
    free(r->host);
    free(r->sni);
    free(r->verify_name);
    free(r->tls.version);
    free(r->tls.cipher);
    free(r->tls.group);
    r->host = r->sni = r->verify_name = NULL;
    r->tls.version = r->tls.cipher = r->tls.group = NULL;
    r->target = target;
    r->path = cm_tf_strdup(path);
    r->port = 0;
    r->address[0] = '\0';
    r->tls.verify = (struct cm_verify){0};
    r->dns_ms = r->connect_ms = r->handshake_ms = -1;
    r->total_ms = 0.25;
}
