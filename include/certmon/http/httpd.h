/* The HTTP listener: libmicrohttpd running inside our libuv loop (MHD_USE_EPOLL without an
 * internal thread: its epoll fd is uv_poll'ed, MHD_run runs when it is readable and when
 * MHD_get_timeout says so). One MHD daemon per listen address (IPv4 or IPv6). Optional TLS,
 * and optional client-certificate authentication: with a client CA, a request whose
 * connection did not present a certificate that verifies against it is answered 403 before
 * the handler sees it. Connections, request size and idle time are bounded.
 *
 * Handlers run on the loop. A handler answers at once (cm_httpd_respond) or later: it may
 * keep the request and respond from any later loop callback (the connection is suspended
 * meanwhile); a request whose client went away is reported through the cancel callback.
 *
 * What clients get without a handler call: 403 (client certificate missing or not verified
 * against client_ca, or without the TLS web client purpose when it has an extended key
 * usage), 405 with "Allow: GET, HEAD" (other methods), 413 (a request body: Content-Length
 * above 0 or any Transfer-Encoding), 431 (request line and headers above max_request_bytes).
 * These close the connection. A connection that does not complete its request head within
 * head_timeout_ms is closed (408 on plain HTTP). MHD itself answers 400, 414, 431 or 505 to
 * malformed or oversized requests, and closes without an answer on a request line it cannot split.
 * Responses carry "Cache-Control: no-store". TLS is 1.2 or 1.3. */
#ifndef CERTMON_HTTPD_H
#define CERTMON_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

struct cm_httpd;
struct cm_httpd_req;

/* What the connection guard did, over every address of a listener (and over every listener
 * that was handed the same counters: they survive a restart of the listener on reload). Only
 * incremented, on the loop. */
struct cm_httpd_counters {
    uint64_t evicted_head_timeout; /* closed: request head not complete within head_timeout_ms
                                    * (also a kept-alive connection silent that long) */
    uint64_t evicted_per_client;   /* closed: its address was at max_per_client and a newer
                                    * connection from that address took its place */
    uint64_t evicted_full;         /* closed: every slot was taken and a newer connection took
                                    * its place */
    uint64_t refused_per_client;   /* not accepted: its address was at max_per_client with
                                    * every one of its connections busy answering */
};

struct cm_httpd_opts {
    const char *const *listen; /* "127.0.0.1:9799", "[::1]:9799", "localhost:9799" */
    size_t listen_count;
    const char *tls_cert; /* PEM file paths; both or neither */
    const char *tls_key;
    const char *client_ca;    /* PEM file: require client certificates signed by it (TLS only) */
    unsigned max_connections; /* per listener; 0: 64. Pending (deferred) requests count.
                               * When every one is taken, a new connection replaces the
                               * oldest one still waiting for its request head; when none
                               * is waiting (all busy answering), one more is let in (the
                               * spare slot through which newcomers are seen) and further
                               * ones wait in the kernel's listen backlog until one closes. */
    unsigned idle_timeout_s;  /* 0: 30. A connection silent that long is closed (not while
                               * its request is pending with the handler). */
    unsigned max_per_client;  /* 0: a quarter of max_connections (at least 1). Connections
                               * one client address (IPv4 address, IPv6 /64) may hold; at
                               * the limit a new one replaces that address's oldest one
                               * waiting for its head, or is refused when none is. */
    uint64_t head_timeout_ms; /* 0: 10 s. The request line and headers must be complete
                               * this long after the accept (or after the previous response
                               * on a kept-alive connection), however steadily bytes come;
                               * else the connection is closed (with a 408 on plain HTTP
                               * when nothing was answered on it yet). */
    size_t max_request_bytes; /* request line + headers, exact; 0: 16 KiB */
    struct cm_httpd_counters *counters; /* borrowed, may be NULL: the guard counts into it.
                                         * It must outlive the listener (until its handles
                                         * have closed). */
};

/* Called for each GET (or HEAD) request. path is without the query string. The handler must
 * eventually call cm_httpd_respond exactly once for req, now or from a later loop callback,
 * unless the cancel callback runs first. Other methods get 405 without a handler call. */
typedef void (*cm_httpd_handler)(struct cm_httpd_req *req, const char *path, void *arg);

/* Starts listening on every address. Returns 0, or a negative errno / CM_ETLS with a reason
 * in err (which address, which file); nothing is left running on error (handles already
 * initialised are closed: run the loop to let their close callbacks free the memory).
 * Errors: -EINVAL (bad listen string or option combination: tls_cert without tls_key,
 * client_ca without TLS), the errno of socket/bind/listen (-EADDRINUSE, -EACCES ...), the
 * errno of reading a TLS file, CM_ETLS (a TLS file that does not parse, or a key that does
 * not fit the certificate), -ENOMEM. A host name is resolved here with getaddrinfo, which
 * blocks (start only), and only its first address is bound. An IPv6 listener is IPv6-only. */
int cm_httpd_start(uv_loop_t *loop, const struct cm_httpd_opts *opts, cm_httpd_handler handler,
                   void *arg, struct cm_httpd **out, char *err, size_t errlen);

/* The value of query parameter name, URL-decoded, or NULL. Valid until the response.
 * NULL as well once the client has gone. */
const char *cm_httpd_query(struct cm_httpd_req *req, const char *name);

/* The peer's address as text ("127.0.0.1", "::1"), for logs. Valid as long as req. */
/* Calls cb(arg, name, value) for every query parameter, URL-decoded, in the order sent
 * (repeated names once each time; a parameter without '=' has value ""), until cb returns
 * nonzero. Returns cb's last return value (0 when it never stopped). */
int cm_httpd_query_each(struct cm_httpd_req *req,
                        int (*cb)(void *arg, const char *name, const char *value), void *arg);

/* Extra headers for the response the next cm_httpd_respond* builds: headers is name, value,
 * name, value, ..., NULL, borrowed until that call returns (static tables in practice). A
 * name or value with control characters makes that answer a 500. */
void cm_httpd_set_headers(struct cm_httpd_req *req, const char *const *headers);

const char *cm_httpd_peer(struct cm_httpd_req *req);

/* Sets what runs if the client goes away before a deferred response, or the listener is
 * closed with the request pending (req is then invalid once cb returns; do not respond to
 * it). Set it from the handler. Without a cancel callback a request whose client left stays
 * valid until cm_httpd_respond, which then drops the answer (and frees a taken body). */
void cm_httpd_on_cancel(struct cm_httpd_req *req, void (*cb)(struct cm_httpd_req *, void *),
                        void *arg);

/* Responds with status, content type and body (copied, or taken when take is nonzero: then
 * body must be malloc'd and is freed by the httpd, also on error). content_type may be NULL.
 * Returns 0 or -ENOMEM (a 500 is sent); -EINVAL for a status outside 200..599 or a content
 * type with control characters (a 500 is sent), or for a second answer to the same request
 * while its handler runs (ignored). Answering a pending request queues the response; it is
 * sent from the next loop iteration. */
int cm_httpd_respond(struct cm_httpd_req *req, unsigned status, const char *content_type,
                     const char *body, size_t len, int take);

/* Produces the next piece of a streamed body into buf (at most max bytes): returns the
 * number of bytes (> 0), 0 at the end, or -1 on failure (the connection is then cut). Runs
 * on the loop, from the listener's processing. */
typedef ssize_t (*cm_httpd_reader)(void *arg, char *buf, size_t max);

/* Responds like cm_httpd_respond with a body produced piece by piece (chunked transfer
 * encoding), so that a large body never exists whole. done(arg) runs exactly once when the
 * body is no longer needed: sent, the client gone, or on error (also when this fails). */
int cm_httpd_respond_stream(struct cm_httpd_req *req, unsigned status, const char *content_type,
                            cm_httpd_reader read, void (*done)(void *arg), void *arg);

/* Stops listening, abandons pending requests (their cancel callbacks run), closes every
 * connection, and frees the listener once its handles have closed. NULL is a no-op. Called
 * from a handler, it takes effect when the current MHD run returns (before the next loop
 * callback). */
void cm_httpd_close(struct cm_httpd *h);

#endif
