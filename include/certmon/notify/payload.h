/* What notifiers send, rendered from alert notices. Pure: no I/O, time is a parameter.
 * Formats: Slack incoming-webhook JSON (Block Kit blocks plus a plain `text` fallback), the
 * generic webhook's versioned JSON body (docs/alerts.md) with an optional HMAC-SHA256
 * signature, an RFC 5322 email (plain text, CRLF), the Alertmanager API v2 alert list, a
 * PagerDuty Events API v2 event, a Microsoft Teams (Workflows) Adaptive Card message, a
 * Telegram Bot API sendMessage request and an ntfy publish (headers and text). */
#ifndef CERTMON_PAYLOAD_H
#define CERTMON_PAYLOAD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "certmon/notify/alert.h"
#include "certmon/config/config.h"

/* One alert event as a notifier keeps it (and the delivery queue persists it): owned
 * copies of everything, plus the target's configured labels. */
struct cm_notice {
    enum cm_alert_kind kind;
    char *target;
    const char *id; /* catalogue id (static) */
    int position;
    enum cm_severity severity, previous;
    char *message;
    int64_t started_at, fired_at, at;
    struct cm_labels labels;
};

/* Copies an event (and labels, which may be NULL) into a new notice. NULL on ENOMEM or when
 * ev is NULL. A NULL target or message becomes "". An id found in the catalogue is stored as
 * the catalogue's pointer; another one is kept as given (alert.h promises it is static). */
struct cm_notice *cm_notice_new(const struct cm_alert_event *ev, const struct cm_labels *labels);
void cm_notice_free(struct cm_notice *n);

/* The notice as JSON and back (for the persisted queue). from_json returns NULL for a
 * malformed object or an unknown finding id. The object: {"kind": "firing"|"changed"|
 * "repeat"|"resolved", "target", "id", "position" (-1: none), "severity", "previous"
 * ("ok"|"info"|"warning"|"critical"), "message", "started_at", "fired_at", "at" (Unix
 * seconds), "labels": {name: value}}; from_json ignores members it does not know, takes a
 * missing "labels" as none, and sorts the labels by name. to_json returns NULL when n is NULL
 * or on ENOMEM. */
json_t *cm_notice_to_json(const struct cm_notice *n);
struct cm_notice *cm_notice_from_json(json_t *j);

/* Payloads for a group of notices (n >= 1) that leave together. Each returns a malloc'd,
 * NUL-terminated text, or NULL when out of memory or when an argument is unusable (items or
 * one of them NULL, n == 0; for email also from NULL, to NULL or empty). now is the sending
 * time. Text taken from notices is made valid UTF-8 (a bad byte becomes U+FFFD); the
 * human-readable formats (Slack, email) also turn control characters into spaces (the email
 * body keeps line breaks of messages); Slack cuts very long values to fit its limits. */

/* Slack: {"text": fallback, "blocks": [...]}: a header saying what and how bad, one section
 * per notice (target, finding, message, since), a context line. Text in mrkdwn and in the
 * fallback has &, <, > escaped as &amp; &lt; &gt; (so no notice can mention @channel or
 * forge a link); the plain_text header is not escaped. At most CM_PAYLOAD_SLACK_SECTIONS
 * sections, then one saying how many more there are (Slack takes 50 blocks). */
#define CM_PAYLOAD_SLACK_SECTIONS 45
char *cm_payload_slack(const struct cm_notice *const *items, size_t n, time_t now);

/* The webhook body, version 1: {"version": "1", "sender": "certmon", "sent_at": RFC 3339,
 * "alerts": [{"status": "firing"|"resolved", "event": "firing"|"changed"|"repeat"|"resolved",
 * "target", "finding", "summary", "position", "severity", "previous_severity", "message",
 * "started_at", "fired_at", "event_at", "labels": {...}}]}. "summary" is the catalogue's
 * one-line description of the finding, "event_at" the time of this event (for "resolved":
 * when it resolved); "position" is null when the finding concerns no chain position; times
 * are RFC 3339 UTC (null when unknown, i.e. <= 0); previous_severity equals severity except
 * for "changed". Compact JSON, keys in this order. */
char *cm_payload_webhook(const struct cm_notice *const *items, size_t n, time_t now);

/* The signature header value for body under secret: "sha256=" + lowercase hex HMAC-SHA256
 * (GnuTLS), into out (at least 72 bytes). Returns 0 or CM_ETLS, or CM_EBADARG when secret or
 * out is NULL, outlen is too small, or body is NULL with len > 0. */
#define CM_PAYLOAD_SIG_LEN 72
#define CM_PAYLOAD_SIG_HEADER "X-Certmon-Signature"
int cm_payload_hmac(const char *secret, const char *body, size_t len, char *out, size_t outlen);

/* An email: headers (From, To, Subject, Date, Message-ID, MIME-Version, Content-Type
 * text/plain; charset=utf-8, Content-Transfer-Encoding 8bit), a blank line and a readable
 * body, CRLF line ends, lines of the body that start with "." doubled (SMTP). The subject
 * says what and how bad: "[certmon] CRITICAL: cert.expired on www.example.com:443" for one
 * notice, "[certmon] 3 alerts (1 critical, 2 warning) on 2 targets" for several, "RESOLVED"
 * when all are resolutions. to is NULL-terminated.
 * Also: a Message-ID unique per call (<time.counter.random@certmon>), a Date in RFC 5322 form,
 * "Auto-Submitted: auto-generated" (RFC 3834: no vacation replies). No header value holds a
 * CR or LF from the input (control characters become spaces, so a target cannot add
 * headers); a subject with non-ASCII text is RFC 2047 encoded (=?UTF-8?B?...?= words, folded
 * to lines of at most 76 characters). Body lines longer than 998 bytes are broken. */
char *cm_payload_email(const struct cm_notice *const *items, size_t n, const char *from,
                       const char *const *to, time_t now);

/* The same message without the dot-stuffing, for a sender that stuffs by itself: libcurl's
 * SMTP upload (CURLOPT_UPLOAD on smtp:// or smtps://) doubles every dot that starts a line,
 * so a libcurl sender must hand it this text, or the recipient sees two dots. */
char *cm_payload_email_unstuffed(const struct cm_notice *const *items, size_t n, const char *from,
                                 const char *const *to, time_t now);

/* Alertmanager API v2 body: a JSON array of {labels: {alertname: "CertmonFinding",
 * finding, target, severity, position (when >= 0), plus the target's labels},
 * annotations: {summary, description}, startsAt, endsAt (resolved: the event time; firing:
 * absent, or now + resend horizon when given), generatorURL}. endsat_horizon_s > 0 sets
 * endsAt = now + horizon on active alerts (so that Alertmanager resolves them by itself if
 * certmon stops re-sending).
 * Also: generatorURL is left out when NULL or empty; startsAt is left out when started_at is
 * unknown (<= 0). A target label whose name is not a valid Prometheus label name, starts with
 * "__", is one of certmon's own (alertname, finding, target, severity, position) or has an
 * empty value is left out. Alertmanager tells alerts apart by their labels, severity
 * included: for a "changed" notice the array also holds the alert under its previous
 * severity with endsAt = the event time, so that the old one resolves at once instead of
 * lingering until its own endsAt. */
char *cm_payload_alertmanager(const struct cm_notice *const *items, size_t n, time_t now,
                              const char *generator_url, int64_t endsat_horizon_s);

/* ---- PagerDuty Events API v2 ----
 * PagerDuty takes one event per request, so its payload is for one notice. */

/* Characters PagerDuty accepts in payload.summary. */
#define CM_PAYLOAD_PD_SUMMARY_MAX 1024
/* Room for a dedup key with its NUL: "certmon-" and 32 lowercase hex digits. */
#define CM_PAYLOAD_PD_DEDUP_LEN 41

/* The alert's dedup_key: "certmon-" + the first 16 bytes, in hex, of HMAC-SHA256 under a fixed
 * label of the target name, the finding id and the chain position. The same alert gets the
 * same key in every process (a restart resolves what an earlier run triggered); the key shows
 * nothing of the target. Returns 0, CM_EBADARG (x or out NULL, outlen below
 * CM_PAYLOAD_PD_DEDUP_LEN) or CM_ETLS. */
int cm_payload_pagerduty_dedup_key(const struct cm_notice *x, char *out, size_t outlen);

/* The event for x: {"routing_key", "event_action": "trigger"|"resolve", "dedup_key", and for a
 * trigger "payload": {"summary" (headline and message on one line, at most
 * CM_PAYLOAD_PD_SUMMARY_MAX characters, cut with an ellipsis), "source" (the target, at most
 * 255 bytes), "severity" (critical, warning or info: certmon has no "error"), "timestamp"
 * (RFC 3339, the event's time), "class" (the finding id), "custom_details": {target,
 * finding, summary, message, severity, previous_severity, event, position, started_at,
 * fired_at, labels}}, "client": "certmon" and "client_url" (only when client_url is neither
 * NULL nor empty)}. A CHANGED or REPEAT notice is a trigger too (PagerDuty adds it to the open
 * alert of the same dedup_key). The text holds routing_key, a secret: never log it. NULL when
 * out of memory or when x or routing_key is NULL. */
char *cm_payload_pagerduty(const struct cm_notice *x, const char *routing_key,
                           const char *client_url, time_t now);

/* ---- Microsoft Teams (Workflows webhook) ---- */

/* Notices shown one by one on a card; the rest are counted (Teams refuses large cards). */
#define CM_PAYLOAD_TEAMS_ITEMS 10

/* {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
 * "contentUrl": null, "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
 * "type": "AdaptiveCard", "version": "1.4", "body": [a header TextBlock; per notice a headline
 * TextBlock, a message TextBlock and a FactSet (Target, Finding, Severity, Since, Resolved,
 * Position, Labels); a line counting the notices not shown; a footer]}}]}. Card text is
 * Markdown to Teams: text from notices has \ * _ [ ] ~ ` backslash-escaped (no link or
 * emphasis can be forged), control characters become spaces, long values are cut. */
char *cm_payload_teams(const struct cm_notice *const *items, size_t n, time_t now);

/* ---- Telegram Bot API sendMessage ---- */

/* sendMessage takes 1-4096 characters of text after entity parsing (UTF-16 code units). */
#define CM_PAYLOAD_TELEGRAM_MAX 4096

/* {"chat_id", "text", "parse_mode": "HTML" (only when html), "link_preview_options":
 * {"is_disabled": true}}. With html, text from notices has & < > written as &amp; &lt; &gt;
 * and the only markup is certmon's own (<b>, <code>, <i>); without, the text is plain. Each
 * field is cut (with an ellipsis) at its own cap and notices that no longer fit are counted
 * ("... and 3 more alerts"), so that the visible text stays within CM_PAYLOAD_TELEGRAM_MAX.
 * NULL when out of memory or an argument is unusable (chat_id NULL or empty too). */
char *cm_payload_telegram(const struct cm_notice *const *items, size_t n, const char *chat_id,
                          int html, time_t now);

/* Visible length of a Telegram text in UTF-16 code units: with html, tags are not counted and
 * an entity (&lt;) counts as one. */
size_t cm_payload_telegram_length(const char *text, int html);

/* ---- ntfy ---- */

/* ntfy's default message size limit (longer messages become attachments). */
#define CM_PAYLOAD_NTFY_BODY_MAX 4096

/* An ntfy publish: the message (the request body) and the Title, Priority and Tags headers. */
struct cm_payload_ntfy {
    char *title;   /* one line of printable ASCII; non-ASCII text as one RFC 2047
                    * =?UTF-8?B?...?= word (ntfy decodes it) */
    char *body;    /* plain text, at most CM_PAYLOAD_NTFY_BODY_MAX bytes, valid UTF-8 */
    int priority;  /* 5 critical, 4 warning, 3 info (the worst firing one); 2 when every
                    * notice is a resolution */
    char tags[96]; /* an emoji name by severity ("rotating_light", "warning",
                    * "information_source"; "white_check_mark" when all resolved), "certmon",
                    * and the finding id when there is one notice; comma-separated */
};

/* Fills out (zeroed first). Returns 0, CM_EBADARG (an unusable argument) or -ENOMEM (out then
 * holds nothing to free). Free with cm_payload_ntfy_clear (NULL-safe). */
int cm_payload_ntfy(const struct cm_notice *const *items, size_t n, time_t now,
                    struct cm_payload_ntfy *out);
void cm_payload_ntfy_clear(struct cm_payload_ntfy *p);

/* ---- Receivers' answers ---- */

/* What a receiver said, for one log line: PagerDuty's "message" and "errors" ("Event object
 * is invalid: Length of 'routing_key' is incorrect"), Telegram's "description", or else the
 * body itself; escaped as cm_text_escape does, with '"' written as \x22 too (a peer cannot
 * forge a log field), cut to fit out (outlen > 0; always NUL-terminated). Returns a Telegram
 * answer's parameters.retry_after in seconds, or -1. */
int64_t cm_payload_answer(const char *body, size_t len, char *out, size_t outlen);

#endif
