/* Asynchronous name resolution on the loop, with c-ares: no thread, no blocking call, so a
 * slow or dead DNS server costs each lookup its own deadline and delays no other. Honours
 * /etc/hosts and /etc/resolv.conf. */
#ifndef CERTMON_RESOLVE_H
#define CERTMON_RESOLVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

/* At most this many addresses of one name are kept (and tried, or probed with
 * --all-addresses): a hostile or broken zone can answer with thousands. */
#define CM_RESOLVE_MAX_ADDRS 64

/* Addresses of one name, in the order to try them: distinct (a repeated answer is kept
 * once, at its first place) and at most CM_RESOLVE_MAX_ADDRS. Plain data, owned by whoever
 * receives it (free with free()). */
struct cm_addr_list {
    size_t count;
    size_t dropped; /* answer records left out once the list was full (0: nothing cut) */
    struct sockaddr_storage addrs[];
};

struct cm_resolver;
struct cm_resolve_req;

/* status is 0 with a non-empty list (the callee's), or a negative code with list NULL:
 * UV_EAI_NONAME (no such name or no addresses), UV_EAI_AGAIN (server failure or timeout),
 * -ENOMEM, UV_EAI_FAIL (anything else). message names the reason for a human. */
typedef void (*cm_resolve_cb)(int status, const char *message, struct cm_addr_list *list,
                              void *arg);

/* Creates a resolver on loop, reading the system's resolver configuration. Returns 0, or
 * -ENOMEM / UV_EAI_FAIL with a reason in err. */
int cm_resolver_new(uv_loop_t *loop, struct cm_resolver **out, char *err, size_t errlen);

/* The loop r runs on (for callers that keep timers beside their lookups). */
uv_loop_t *cm_resolver_loop(const struct cm_resolver *r);

/* Cancels every pending address lookup (their callbacks do not run; raw queries get theirs
 * with -ECANCELED, see cm_resolve_query) and closes the resolver's
 * handles; the memory is released once the loop has run their close callbacks. NULL is a
 * no-op. */
void cm_resolver_close(struct cm_resolver *r);

/* Resolves host (a DNS name; address literals need no resolver) for a TCP connection to
 * port. cb runs exactly once, from a later loop callback, unless the request is cancelled
 * first. Returns 0 or -ENOMEM (cb never runs). *out may be NULL. */
int cm_resolve_start(struct cm_resolver *r, const char *host, uint16_t port, cm_resolve_cb cb,
                     void *arg, struct cm_resolve_req **out);

/* The answer to one raw query: status 0 with the whole DNS response message (abuf, alen
 * bytes, borrowed for the call: copy what you keep), or a negative code with abuf NULL:
 * CM_EDNS_NXDOMAIN (no such name), CM_EDNS_NODATA (the name has no record of the type),
 * CM_EDNS_SERVFAIL (every server failed, refused or could not be reached: c-ares 1.18 fails
 * over on SERVFAIL and REFUSED and then cannot tell which), CM_EDNS_REFUSED (refused or not
 * implemented, from c-ares versions that say so), CM_EDNS_TIMEOUT (no server answered in
 * c-ares's retries), CM_EBADARG (a name DNS cannot
 * carry), -ENOMEM, -ECANCELED (the resolver closed first), CM_EDNS_BADANSWER (anything
 * else). message names the reason for a human ("" on success). */
typedef void (*cm_resolve_query_cb)(int status, const char *message, const unsigned char *abuf,
                                    size_t alen, void *arg);

/* Sends one query of class IN and the given type (33 SRV, 15 MX, ...) for name, taken as a
 * whole name (resolv.conf's search domains are never appended). c-ares retransmits and falls
 * back to TCP for a truncated answer, so answers up to 64 KiB arrive whole; it has no deadline
 * of its own beyond its retries (resolv.conf "timeout"/"attempts"): callers that need one
 * keep a timer and cancel. cb runs exactly once, from a later loop callback, unless the
 * request is cancelled first; when the resolver closes first it runs from inside
 * cm_resolver_close with -ECANCELED. Returns 0, -ENOMEM or -ECANCELED (resolver closing;
 * cb never runs). *out may be NULL. */
int cm_resolve_query(struct cm_resolver *r, const char *name, int type, cm_resolve_query_cb cb,
                     void *arg, struct cm_resolve_req **out);

/* Cancels a lookup or query whose callback has not run: the callback never runs. NULL is a
 * no-op. */
void cm_resolve_cancel(struct cm_resolve_req *req);

/* Builds the list for an address literal (IPv4 or IPv6) without any lookup. Returns NULL
 * when host is not a literal or memory runs out. */
struct cm_addr_list *cm_addr_list_literal(const char *host, uint16_t port);

#endif
