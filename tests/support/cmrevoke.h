/* The revocation PKI of the integration suites (test_revocation: `certmon check`,
 * test_daemon_revocation: `certmon run`), set up once here: tests/integration/mkrevoke.sh makes
 * it in a temporary directory, its certificates name CRL distribution points and OCSP
 * responders on 127.0.0.1 ports chosen here, and the servers behind those URLs are started
 * and stopped by PID. */
#ifndef CERTMON_CMREVOKE_H
#define CERTMON_CMREVOKE_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

struct cm_th_revpki {
    /* read-only, once started */
    char dir[64];      /* the PKI: root.pem, inter.pem, leaf.key, good.pem, ..., www/ (CRLs) */
    int crl_port;      /* crl_server.py serving dir/www: ETag, 304, one JSON line a request */
    int ocsp_port;     /* openssl ocsp behind ocsp_responder.py, signed by the delegated
                        * responder (responder.pem) */
    int down_port;     /* named by some certificates' URLs; nothing listens */
    int tarpit_port;   /* tarpit.py: accepts and never answers */
    int forged_port;   /* named by ocspforged.pem: an impostor responder (the intermediate's
                        * name, another key, no delegation) when started with forged */
    char crl_log[300]; /* the CRL server's requests (cm_th_crl_requests) */
    char ocsp_log[300];
    /* private */
    pid_t crl_pid, ocsp_pid, tarpit_pid, forged_pid;
};

/* Makes the PKI in a new directory /tmp/PREFIX-XXXXXX (prefix: a few characters), starts the
 * CRL server, the OCSP responder, the tarpit and, when forged, the impostor responder, and
 * waits until each accepts (10 s at most). Returns 0, or -1 with the reason on stderr after
 * stopping what it started and removing the directory. p is zeroed first. */
int cm_th_revpki_start(struct cm_th_revpki *p, const char *prefix, bool forged);

/* Stops the servers by PID and removes the directory. A zeroed or stopped p is a no-op. */
void cm_th_revpki_stop(struct cm_th_revpki *p);

/* Starts openssl s_server on a free port of 127.0.0.1 serving the PKI's cert with leaf.key and
 * chain (file names in p->dir) and waits until it accepts. Returns its PID with *port set, or
 * -1 with the reason on stderr. Stop it with cm_th_stop. */
pid_t cm_th_revpki_s_server(const struct cm_th_revpki *p, const char *cert, const char *chain,
                            int *port);

/* The requests the CRL server logged for path ("/inter.crl"), in order, as its JSON objects
 * {path, if_none_match, if_modified_since, status, etag} (caller decrefs; empty when none). */
json_t *cm_th_crl_requests(const struct cm_th_revpki *p, const char *path);

/* How many requests the CRL server logged for path. */
size_t cm_th_crl_gets(const struct cm_th_revpki *p, const char *path);

#endif
