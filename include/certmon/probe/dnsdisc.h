/* DNS discovery: the targets a SRV or MX record set names, looked up on the loop through the
 * c-ares resolver (resolve.h). The records are attacker-controlled data: names that are not
 * valid host names are left out (and reported escaped), and an answer is bounded to
 * CM_DNSDISC_MAX_RECORDS targets. */
#ifndef CERTMON_DNSDISC_H
#define CERTMON_DNSDISC_H

#include <stddef.h>
#include <stdint.h>

#include "certmon/probe/resolve.h"

/* At most this many targets are taken from one answer (a 64 KiB answer can carry about
 * 3,000 SRV records); the rest are counted in dropped. */
#define CM_DNSDISC_MAX_RECORDS 1000

enum cm_dnsdisc_kind {
    CM_DNSDISC_SRV = 1, /* RFC 2782: each record names target host and port */
    CM_DNSDISC_MX = 2,  /* RFC 5321: each record names a mail exchange, probed on port 25 */
};

/* One discovered endpoint. */
struct cm_dnsdisc_target {
    char *host;        /* a valid host name (cm_host_is_valid_name), lower case, no trailing dot */
    uint16_t port;     /* SRV: the record's port; MX: 25 */
    uint16_t priority; /* SRV priority or MX preference: lower is preferred */
    uint16_t weight;   /* SRV weight; 0 for MX */
};

/* The targets of one answer, distinct by host and port (a repeat keeps its most preferred
 * record), sorted by priority, then weight (heavier first), then host and port. An empty
 * list is a valid answer: the service is explicitly unavailable (a SRV target of "." or a
 * null MX, RFC 7505). Plain data, owned by whoever receives it (cm_dnsdisc_list_free). */
struct cm_dnsdisc_list {
    uint32_t ttl;    /* smallest TTL (seconds) of the records taken, "." included; 0 when none */
    size_t rejected; /* records left out because their name is not a valid host name */
    size_t dropped;  /* records left out beyond CM_DNSDISC_MAX_RECORDS */
    size_t count;
    struct cm_dnsdisc_target targets[];
};

/* Frees the list and its names. NULL is a no-op. */
void cm_dnsdisc_list_free(struct cm_dnsdisc_list *l);

/* Pure: reads the records of the kind from a DNS response message (alen bytes at abuf), as
 * cm_dnsdisc_start does with the answer it gets. Records of other types or classes (a CNAME
 * on the way) are skipped. Returns 0 with *out set (the caller's), or -ENOMEM,
 * CM_EDNS_NODATA (no record of the kind) or CM_EDNS_BADANSWER (a truncated or malformed
 * message, or every record rejected) with a reason in err, which also notes rejected and
 * dropped records on success ("" when nothing to note). Names from the message appear in err
 * escaped (cm_text_escape). */
int cm_dnsdisc_parse(enum cm_dnsdisc_kind kind, const unsigned char *abuf, size_t alen,
                     struct cm_dnsdisc_list **out, char *err, size_t errlen);

struct cm_dnsdisc_req;

/* status is 0 with a list (the callee's; possibly empty, see above), or a negative code with
 * list NULL: CM_EDNS_NXDOMAIN, CM_EDNS_NODATA, CM_EDNS_SERVFAIL, CM_EDNS_REFUSED,
 * CM_EDNS_TIMEOUT (no answer within the deadline or c-ares's retries), CM_EDNS_BADANSWER
 * (malformed, or every record rejected), -ENOMEM, -ECANCELED (the resolver closed first).
 * message says why for a human; on success it notes rejected or dropped records ("" when
 * none). Text from the answer in message is escaped. */
typedef void (*cm_dnsdisc_cb)(int status, const char *message, struct cm_dnsdisc_list *list,
                              void *arg);

/* Looks up the SRV or MX records of name (a valid host name; "_https._tcp.example.com" for
 * SRV) through resolver r, within timeout_ms (> 0). Borrows r, which must outlive the
 * request or close first (then cb gets -ECANCELED). cb runs exactly once, from a later loop
 * callback, unless the request is cancelled first. Returns 0, or CM_EBADARG (name is not a
 * valid host name, timeout_ms 0) or -ENOMEM, and then cb never runs. *out may be NULL. */
int cm_dnsdisc_start(struct cm_resolver *r, enum cm_dnsdisc_kind kind, const char *name,
                     uint64_t timeout_ms, cm_dnsdisc_cb cb, void *arg, struct cm_dnsdisc_req **out);

/* Cancels a request whose callback has not run: the callback never runs; the memory goes
 * once the loop has run the request's timer close callback. NULL is a no-op. */
void cm_dnsdisc_cancel(struct cm_dnsdisc_req *req);

/* "SRV" or "MX". */
const char *cm_dnsdisc_kind_name(enum cm_dnsdisc_kind kind);

#endif
