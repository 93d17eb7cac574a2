/* One endpoint to probe: where to connect, what name to present and verify, whom to trust. */
#ifndef CERTMON_TARGET_H
#define CERTMON_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "certmon/probe/starttls.h"

#define CM_DEFAULT_PORT 443

struct cm_target {
    /* name, host, sni and verify_name are one allocation, owned through name (cm_target_clear
     * frees it): set them only through cm_target_parse / cm_target_copy. Equal texts share
     * memory (verify_name may be host, sni may be verify_name): never write into them. */
    char *name; /* canonical display form: "host:port" or "[v6]:port" */
    char *host; /* DNS name or IP literal, without brackets */
    char *sni;         /* server name sent in the ClientHello; NULL for none (IP literals) */
    char *verify_name; /* name the leaf must match: sni, or the host itself */
    const char *ca_file; /* trust anchors instead of the system store; NULL: system; borrowed */
    const char *connect_address;     /* connect only to this address literal (the name is still
                                      * sent and verified), or NULL to resolve host; borrowed */
    const char *tls_priority;        /* GnuTLS priority string instead of the default; borrowed */
    const char *client_cert;         /* mTLS: certificate to present, or NULL; borrowed */
    const char *client_key;          /* its key; borrowed */
    /* (The small fields last: no padding between the pointers.) */
    enum cm_starttls_proto starttls; /* plaintext preamble before TLS, or NONE */
    uint16_t port;
    bool handshake_only;             /* report the negotiated parameters only: no chain, no
                                      * verification (posture handshakes) */
};

/* Parses "host", "host:port", "[v6]", "[v6]:port" or a bare IPv6 literal into *out, with port
 * defaulting to default_port. sni, when not NULL, overrides the name sent and verified.
 * Returns 0, or CM_EBADTARGET / CM_EBADPORT / -ENOMEM with a reason written to err. On error
 * *out is left empty (nothing to free). */
int cm_target_parse(const char *spec, uint16_t default_port, const char *sni, struct cm_target *out,
                    char *err, size_t errlen);

/* Copies src into dst: the owned strings are duplicated, the borrowed ones shared. Returns 0
 * or -ENOMEM (dst then empty). */
int cm_target_copy(struct cm_target *dst, const struct cm_target *src);

/* Frees what cm_target_parse allocated. NULL and an empty target are no-ops. */
void cm_target_clear(struct cm_target *t);

/* True when s is an IPv4 or IPv6 address literal (no brackets). */
bool cm_host_is_ip(const char *s);

/* True when s is a syntactically valid DNS host name (LDH labels, underscores tolerated, at
 * most 253 characters, labels at most 63, optional trailing dot). */
bool cm_host_is_valid_name(const char *s);

#endif
