/* Outgoing HTTP(S) and SMTP through libcurl's multi interface, driven by the daemon's libuv
 * loop (the shape of curl's docs/examples/multi-uv.c: the socket callback keeps one uv_poll
 * per socket, the timer callback one uv_timer; curl_multi_info_read is drained after every
 * curl_multi_socket_action). Nothing here blocks the loop; name resolution is asynchronous
 * (CURL_VERSION_ASYNCHDNS is checked at start). One transfer = one attempt: retries and
 * backoff belong to the caller (the notification queue).
 *
 * Policy for every transfer: only http/https (requests) or smtp/smtps (mail), redirects are
 * never followed (a 3xx is reported as the status), certificates and host names are always
 * verified. Proxies come from the environment as with the curl tool (http_proxy, https_proxy,
 * all_proxy, no_proxy; libcurl ignores upper-case HTTP_PROXY), so operators behind a proxy
 * need no certmon setting; set no_proxy for receivers that must be reached directly. */
#ifndef CERTMON_HTTPC_H
#define CERTMON_HTTPC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct cm_httpc;
struct cm_httpc_xfer;

/* Response bytes kept in a result; the rest is read and discarded (the status still counts). */
#define CM_HTTPC_BODY_MAX (64 * 1024)

/* The outcome of one transfer. */
struct cm_httpc_result {
    int curl_code;     /* CURLcode; 0 when the exchange completed */
    long status;       /* HTTP status (0 when none), or the last SMTP reply code */
    const char *error; /* curl's error text when curl_code != 0, else "" */
    const char *body;  /* response body (at most CM_HTTPC_BODY_MAX kept), NUL-terminated;
                          "" for cancelled transfers */
    size_t body_len;
    int64_t retry_after_s;     /* a 429/503 Retry-After header in seconds (delta or date), or -1 */
    int64_t retry_after_hdr_s; /* the Retry-After header of the response whatever its status
                                * (ACME renewal information sends it with a 200), or -1 */
    double elapsed_s;
    const char *etag;          /* the response's ETag header value, or "" */
    const char *last_modified; /* its Last-Modified header value, or "" */
    /* private */
    struct cm_httpc_xfer *xfer;
};

/* Takes the response body out of r during the callback, so a large one (a CRL) is not
 * copied: the caller owns the returned buffer (NUL-terminated, *len bytes before the NUL;
 * free it) and r->body must not be read afterwards. Returns NULL when there is no body (or
 * it was taken already). */
char *cm_httpc_take_body(const struct cm_httpc_result *r, size_t *len);

/* Runs exactly once per started transfer, from a loop callback (never inside the start
 * call). The result is valid during the callback only. */
typedef void (*cm_httpc_cb)(const struct cm_httpc_result *r, void *arg);

/* Creates the client on loop (borrowed; it outlives the client). Returns 0, or -ENOTSUP when
 * libcurl lacks asynchronous name resolution (err says so), -ENOMEM, or -EINVAL (no loop or
 * out). err may be NULL. */
int cm_httpc_new(uv_loop_t *loop, struct cm_httpc **out, char *err, size_t errlen);

struct cm_httpc_req {
    const char *url;            /* http:// or https:// */
    const char *const *headers; /* "Name: value" lines, NULL-terminated; may be NULL. They
                                   replace libcurl's own of the same name (User-Agent is
                                   certmon/VERSION unless given) */
    const char *body;           /* POSTed as is (copied, body_len bytes); NULL: GET */
    size_t body_len;
    const char *content_type; /* for the body; default application/json; ignored when
                                 headers carry a Content-Type */
    uint64_t timeout_ms;      /* whole transfer; 0: 30 s */
    const char *ca_file;      /* trust for https (NULL: system store) */
    size_t body_max;          /* 0: keep the first CM_HTTPC_BODY_MAX bytes of the response and
                                 discard the rest; else keep up to body_max bytes, and a longer
                                 body fails the transfer (CURLE_WRITE_ERROR, error "response
                                 body larger than N bytes"): a cut CRL is worth nothing */
    int allow_file;           /* also accept file:// URLs (a GET of a local file: libcurl reads
                                 it on the loop, so keep it to local disks) */
};

/* Starts one HTTP request. Strings are copied. Returns 0 (cb will run) or, and cb will not
 * run: -EINVAL (no URL or callback, a scheme other than http/https (or file with allow_file), CR or
 * LF in the URL, a header or the content type), -ECANCELED (the client is closing), -ENOTSUP
 * (libcurl lacks a needed protocol), -ENOMEM. out may be NULL; *out can cancel the transfer until
 * cb runs. */
int cm_httpc_request(struct cm_httpc *h, const struct cm_httpc_req *req, cm_httpc_cb cb, void *arg,
                     struct cm_httpc_xfer **out);

struct cm_httpc_mail {
    const char *url;                 /* smtp://host:port (STARTTLS when starttls) or smtps:// */
    int starttls;                    /* require STARTTLS on smtp:// (CURLUSESSL_ALL) */
    const char *username, *password; /* optional AUTH; never logged */
    const char *from;                /* envelope sender */
    const char *const *to;           /* recipients, NULL-terminated */
    const char *message;             /* the whole RFC 5322 message, CRLF line ends */
    uint64_t timeout_ms;             /* 0: 60 s */
    const char *ca_file;             /* trust for TLS (NULL: system store) */
};

/* Sends one mail. As cm_httpc_request; -EINVAL also for a scheme other than smtp/smtps, no
 * sender, no recipient, no message, or CR/LF in sender, recipients or credentials. A rejected
 * recipient fails the transfer (status is the server's reply, e.g. 550). Each mail opens its
 * own connection (never reused, never kept). */
int cm_httpc_mail(struct cm_httpc *h, const struct cm_httpc_mail *m, cm_httpc_cb cb, void *arg,
                  struct cm_httpc_xfer **out);

/* Cancels a transfer whose callback has not run: it runs at once (before this returns) with
 * curl_code CURLE_ABORTED_BY_CALLBACK, error "transfer cancelled", status 0 and no body. The
 * connection is dropped from a later loop callback. NULL is a no-op. */
void cm_httpc_cancel(struct cm_httpc_xfer *x);

/* Transfers started whose callback has not run yet. 0 for NULL. */
size_t cm_httpc_active(const struct cm_httpc *h);

/* Cancels every transfer (their callbacks run, before this returns), then frees the client
 * once its handles have closed: run the loop afterwards. May be called from a callback; the
 * teardown then waits until the callback has returned. New requests fail with -ECANCELED.
 * NULL is a no-op. */
void cm_httpc_close(struct cm_httpc *h);

/* A URL with its secrets hidden, for logs: user:password@, query strings (and fragments),
 * everything after /services/ on hooks.slack.com, and path segments that look like tokens
 * (20 or more token characters, letters and digits both; Telegram's "bot123:AAH..." is one)
 * become "***".
 * Writes into buf, always NUL-terminated when len > 0 (shortened when it does not fit). */
void cm_httpc_redact(const char *url, char *buf, size_t len);

#endif
