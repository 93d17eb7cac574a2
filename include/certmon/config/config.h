/* The daemon's configuration: a libconfig file turned into a validated, immutable cm_config.
 *
 * Reading is table-driven: every group (global, log, metrics, each target, each file entry,
 * each notifier) has one table of known keys with their type and bounds. Unknown keys are
 * errors (with a "did you mean" for a near miss), as are wrong types, out-of-range values,
 * bad durations, duplicate targets and unreadable files. Every message names file:line and
 * the setting. Loading never stops at the first problem: it reports all of them.
 *
 * Relative paths in the file (state_file, ca_file, client_cert, client_key, file targets,
 * TLS files of the listener) are relative to the directory of the configuration file. */
#ifndef CERTMON_CONFIG_H
#define CERTMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "certmon/analysis/analyze.h"
#include "certmon/base/label.h"
#include "certmon/base/log.h"
#include "certmon/config/filesd.h"
#include "certmon/probe/target.h"

/* Every problem found while loading, one message each ("FILE:LINE: SETTING: problem"). */
struct cm_config_errors {
    char **msgs;
    size_t count;
};


/* Where a setting was written: a file of cm_config.files and a line in it. */
struct cm_config_origin {
    const char *file; /* owned by the config; NULL when the setting is absent */
    int line;
};

enum cm_target_kind {
    CM_TARGET_ENDPOINT = 0, /* a TLS endpoint: targets = ( ... ) */
    CM_TARGET_FILE,         /* certificate files: files = ( ... ) */
};

/* The settings of a target that most targets leave unset, apart: a fleet of 100,000
 * endpoints that set none of them shares one empty block (cm_config_target.opt) instead of
 * carrying 130 bytes of NULLs each. Every string is owned by the block. */
struct cm_config_target_opt {
    /* File: the path, glob or directory, absolute. NULL for endpoints. */
    char *path;
    char *ca_file, *client_cert, *client_key, *connect_address; /* absolute paths; or NULL */
    /* File: password or the contents of password_file (one trailing newline dropped), for
     * keystores and encrypted keys; NULL: none. A secret: never logged or shown, cleared from
     * memory when the config is freed. */
    char *password;
    /* ACME renewal information (RFC 9773, ari.h): the renewalInfo URL, or the ACME directory
     * that names it; at most one is set (http:// or https://); both NULL: not asked. */
    char *ari_url, *acme_directory;
    /* pin_sha256: the accepted SHA-256 values (lowercase hex, space-separated) of the leaf
     * certificate or of a public key (SPKI) the server sends; NULL: no pinning. The policy's
     * pins point here. */
    char *pins;
    /* expect_file: the certificate file the endpoint should serve (absolute), or NULL;
     * deploy.stale once it has held a newer certificate for longer than deploy_grace_ms. */
    char *expect_file;
    uint64_t deploy_grace_ms; /* default 1h */
    struct cm_config_origin ca_file_at, client_cert_at; /* where those were set */
    /* A discovered target (cm_config_discover): the discovery file it came from, absolute, and
     * the target's `file` points here; NULL for a configured one. */
    char *origin;
    /* Targets holding the block: the discovered targets of one file that set nothing else
     * share one (for origin); 0 in the shared empty block. */
    unsigned refs;
};

struct cm_config_target {
    /* Unique among the config's targets and stable across reloads: the state key and the
     * `target` label. Endpoints: the `name` setting, else "host:port", else "sni@host:port"
     * when an SNI other than the host is set. Files: "file:" + path (as written, made
     * absolute). "host:port" is ep.name itself. */
    char *name;
    /* Endpoint: the target as the probe wants it. Its borrowed strings (ca_file, client_cert,
     * client_key, connect_address) point into opt's copies. */
    struct cm_target ep;
    /* The rarely set settings: never NULL in a loaded config; a target that sets none of them
     * points to one shared empty block (never written). Read only. */
    const struct cm_config_target_opt *opt;
    /* The global policy with this target's keys applied. A target without policy keys of its
     * own (and without pins) points to its config's policy, which outlives it (a discovered
     * target's list never outlives the configuration it was read under); one with keys owns a
     * copy (own_policy). Never NULL in a loaded config. */
    const struct cm_policy *policy;
    struct cm_labels labels;
    uint64_t interval_ms;         /* between probes */
    uint64_t timeout_ms;          /* whole-probe deadline (endpoints) */
    uint64_t posture_interval_ms; /* between posture passes; 0: posture off for this target */
    const char *file;             /* configuration file it came from (owned by the config) */
    int line;                     /* line of its group in that file */
    unsigned index;               /* position in its list: targets[index] or files[index] */
    /* Hash of everything that changes how it is probed or judged (not labels): a reload keeps
     * the state and schedule of a target whose name and spec_hash are unchanged. */
    uint64_t spec_hash;
    enum cm_target_kind kind; /* (the small fields together: no padding, 100,000 of these) */
    bool pin_tofu;        /* pin = "tofu": the daemon pins the first leaf it sees (never with pins) */
    bool notify_renewals; /* a renewal of the leaf is sent to the notifiers (cert.renewed) */
    bool own_policy;      /* policy is this target's own copy */
};

enum cm_discovery_kind {
    CM_DISCOVERY_FILES = 0, /* files = [ "GLOB", ... ]: Prometheus file_sd documents */
    CM_DISCOVERY_SRV,       /* srv = "_service._proto.NAME": the targets of its SRV records */
    CM_DISCOVERY_MX,        /* mx = "DOMAIN": its mail exchanges, probed with SMTP STARTTLS */
};

/* discovery = ( { ... } ): one source of targets besides the configuration file. Its target
 * keys are the defaults of every target it discovers (docs/discovery.md). */
struct cm_config_discovery {
    enum cm_discovery_kind kind;
    char *name;        /* `name`, else "discovery[N]": the `source` label of its metrics */
    char **files;      /* glob(3) patterns, absolute; each names .json, .yml or .yaml files */
    size_t file_count;
    uint64_t refresh_ms; /* every source is read again this often (default 30s), besides the
                          * file system's change events; srv and mx: looked up again this often
                          * (default 5m), or after the answer's TTL when that is longer */
    char *dns_name;      /* srv and mx: the name looked up (a valid host name); NULL: files */
    unsigned port;       /* mx: the port its exchanges are probed on (default 25); 0 otherwise */
    /* Defaults of its targets: global's, with what the block sets applied. */
    uint64_t interval_ms, timeout_ms, posture_interval_ms;
    struct cm_policy policy;
    char *starttls;                         /* as written, checked; NULL: by port */
    char *ca_file, *client_cert, *client_key; /* absolute paths, checked readable; or NULL */
    struct cm_labels labels;                /* under the labels of each discovered group */
    const char *file; /* configuration file of the block (owned by the config) */
    int line;
    unsigned index; /* discovery[index] */
};

enum cm_notifier_kind {
    CM_NOTIFIER_SLACK = 0,
    CM_NOTIFIER_WEBHOOK,
    CM_NOTIFIER_EMAIL,
    CM_NOTIFIER_ALERTMANAGER,
    CM_NOTIFIER_PAGERDUTY,
    CM_NOTIFIER_TEAMS,
    CM_NOTIFIER_TELEGRAM,
    CM_NOTIFIER_NTFY,
};

/* notifiers = ( { name; type; ... } ): where alerts go and which ones. Keys per type are in
 * docs/configuration.md; a key of another type is an error. */
struct cm_config_notifier {
    char *name;
    char *type; /* "slack", "webhook", "email", "alertmanager", "pagerduty", "teams",
                 * "telegram", "ntfy" */
    const char *file;
    int line;
    enum cm_notifier_kind kind;

    /* Which alerts: at least min_severity (default warning), of these finding ids (none: all),
     * of targets whose labels include every pair of match. */
    enum cm_severity min_severity;
    const char **findings; /* static catalogue ids */
    size_t finding_count;
    struct cm_labels match;

    uint64_t for_ms;       /* a finding must last this long before it fires (default 0) */
    uint64_t group_wait_ms; /* alerts firing within this window leave as one message (30s) */
    uint64_t repeat_ms;    /* reminder interval while an alert lasts; 0 "off" (default 24h) */
    uint64_t timeout_ms;   /* one delivery attempt (default 10s) */
    uint64_t max_age_ms;   /* undelivered notifications older than this are dropped (24h) */
    uint64_t resend_ms;    /* alertmanager: re-send active alerts this often (default 1m) */

    char *url;      /* slack, webhook, email (smtp:// or smtps://), teams, ntfy (the topic);
                     * alertmanager: urls[0]; pagerduty: the enqueue endpoint (default
                     * https://events.pagerduty.com/v2/enqueue); telegram: the Bot API base
                     * (default https://api.telegram.org) */
    char **urls;    /* alertmanager: every Alertmanager of an HA cluster */
    size_t url_count;
    char *ca_file;  /* trust for https/smtps/STARTTLS instead of the system store */
    char **headers; /* webhook: extra "Name: value" headers */
    size_t header_count;
    char *secret;   /* webhook: HMAC-SHA256 key for the signature header; never logged */
    char *from;     /* email: envelope and header sender */
    char **to;      /* email: recipients */
    size_t to_count;
    bool starttls;  /* email over smtp://: require STARTTLS (default true) */
    char *username, *password; /* email: SMTP AUTH; the password is never logged */
    char *generator_url;       /* alertmanager: generatorURL of the alerts */
    /* pagerduty: routing_key; telegram: bot_token; ntfy: token (Bearer). From the setting or
     * its *_file (one trailing newline dropped); NULL when none. Never logged. */
    char *token;
    char *chat_id;    /* telegram: "-1001234567890" or "@channel" */
    bool html;        /* telegram: parse_mode "HTML" (default) or "text" */
    char *client_url; /* pagerduty: client_url of the events (a link to this certmon) */
};

struct cm_config {
    char *path; /* the file given to cm_config_load, made absolute */
    char *dir;  /* its directory (base of relative paths) */

    /* global = { ... } */
    uint64_t interval_ms;         /* default 1h */
    uint64_t timeout_ms;          /* default 10s */
    uint64_t posture_interval_ms; /* default 24h; 0 ("off") disables posture passes */
    uint64_t startup_spread_ms;   /* first probes spread over min(interval, this); default 5m */
    uint64_t retry_min_ms;        /* first retry after a failed probe; doubles; default 30s */
    unsigned concurrency;         /* probes in flight at once; default 64 */
    char *state_file;             /* absolute; NULL: state is not persisted */
    unsigned history_days;        /* certificate history rows kept this long; default 400 */
    uint64_t change_window_ms;    /* cert.changed stays this long after a change; default 24h */
    bool notify_renewals;         /* default of the targets' notify_renewals; default false */
    struct cm_policy policy;      /* warn_days, crit_days, min_rsa_bits, min_ec_bits,
                                   * allow_self_signed, ignore, severity */

    /* log = { ... } */
    enum cm_log_level log_level; /* default info */
    bool log_syslog;             /* default false: stderr */

    /* metrics = { ... } */
    char **listen; /* "127.0.0.1:9799", "[::1]:9799"; default one: 127.0.0.1:9799 */
    size_t listen_count;
    char *tls_cert, *tls_key, *client_ca; /* absolute paths, or NULL */
    bool allow_any_target;
    uint64_t head_timeout_ms; /* a request head must be complete within this; default 10s */
    unsigned max_connections; /* per listen address; default 64 */
    unsigned max_per_client;  /* per client address (IPv4, IPv6 /64); 0 (default): a quarter
                               * of max_connections */
    unsigned page_size;       /* status page rows per page; default 500 */
    struct cm_config_origin tls_cert_at, client_ca_at; /* where those were set */

    struct cm_config_target *targets; /* endpoints first, in file order, then file entries */
    size_t target_count;
    struct cm_config_notifier *notifiers;
    size_t notifier_count;

    char **files; /* every file the configuration was read from (main file, @include) */
    size_t file_count;

    /* Lists of more interception roots (interception_roots_file), one per distinct file, read
     * and checked at load: the policies of this config borrow their text. */
    struct cm_config_roots {
        char *path;    /* absolute */
        char *text;    /* NUL-terminated; passed cm_spki_list_check */
        uint64_t hash; /* of text: a target whose list changed is judged anew on reload */
    } * roots;
    size_t roots_count;

    struct cm_config_discovery *discovery; /* discovery = ( ... ), in file order */
    size_t discovery_count;

    size_t *by_name; /* target indices sorted by name (for cm_config_find); internal */
    /* private: a composed config (cm_config_compose) borrows everything of base but its
     * targets array and by_name, and owns none of the targets in it. */
    const struct cm_config *base;
};

/* The largest configuration file, and the most all files of one configuration (the main file
 * and its @include files) may hold together, with every include in place. */
#define CM_CONFIG_MAX_BYTES (4u * 1024 * 1024)

/* The largest list of interception roots (interception_roots_file): a few lines per root, so
 * thousands of roots. */
#define CM_CONFIG_ROOTS_MAX_BYTES (1u * 1024 * 1024)

/* Loads and validates path. Every file (path and each @include) is opened without blocking and
 * must be a regular file of at most CM_CONFIG_MAX_BYTES ("FILE: not a regular file", "FILE:
 * larger than 4 MiB" otherwise), holding no NUL byte; includes nest at most 10 deep. Include
 * paths are relative to the directory of path (absolute ones are taken as they are). On success returns 0 and a new config in *out (free with
 * cm_config_free). On failure returns CM_ECONFIG (or -ENOMEM), *out is NULL and errs holds
 * every problem found (errs starts empty or zeroed; clear it with cm_config_errors_clear).
 * Also checks that every CA, client certificate and key file named can be read; their
 * contents are checked by cm_config_check_credentials. */
int cm_config_load(const char *path, struct cm_config **out, struct cm_config_errors *errs);

/* Loads a configuration from memory (text, len bytes; NULs are an error) as if it were the
 * file path: messages name path, relative paths and @include files are resolved against its
 * directory (includes are read from disk). Otherwise as cm_config_load. The fuzzers' entry
 * point: it touches the file system only for includes and for the files settings name. */
int cm_config_load_string(const char *text, size_t len, const char *path, struct cm_config **out,
                          struct cm_config_errors *errs);

/* Loads the trust anchors and client certificates every endpoint target names into ctx (one
 * load per distinct combination), so that a file that does not parse is a config error
 * naming the target's file:line. Also parses the metrics listener's tls_cert/tls_key and
 * client_ca into a throwaway credentials object. ctx may be NULL: a throwaway context is
 * used. Returns 0, CM_ECONFIG with errs filled, or -ENOMEM. */
struct cm_tls_ctx;
int cm_config_check_credentials(const struct cm_config *cfg, struct cm_tls_ctx *ctx,
                                struct cm_config_errors *errs);

void cm_config_free(struct cm_config *cfg);
void cm_config_errors_clear(struct cm_config_errors *errs);

/* Turns the groups of one discovery file (doc, parsed from file: an absolute path) into targets
 * of discovery source cfg->discovery[source]: each "host:port" of a group is read as a target of
 * `targets = ( ... )` would be, by the same code and rules, with the source's keys as defaults,
 * the group's labels over the source's labels, and each `__certmon_KEY` label as the target key
 * KEY (docs/discovery.md lists them; other labels starting with "__" are dropped, as Prometheus
 * does). A target's name is __certmon_name, else as for configured targets ("host:port",
 * "sni@host:port"). Pure but for checking that the source's files (ca_file ...) are readable;
 * safe on the thread pool while cfg lives.
 * Returns 0 with *out (free with cm_config_targets_free) and *count; CM_ECONFIG with every
 * problem in errs ("FILE:LINE: group G target 'SPEC': ...": LINE when the format gives one),
 * *out NULL: one bad entry refuses the whole file; or -ENOMEM. A name given twice in the file is
 * a problem; names already used elsewhere are not checked here (see cm_config_compose). */
int cm_config_discover(const struct cm_config *cfg, size_t source, const char *file,
                       const struct cm_sd_doc *doc, struct cm_config_target **out, size_t *count,
                       struct cm_config_errors *errs);

/* Frees n targets made by cm_config_discover, and the array. NULL is a no-op. */
void cm_config_targets_free(struct cm_config_target *v, size_t n);

/* A configuration that is base with n more targets after its own: a new cm_config whose every
 * setting is base's (shared, not copied) and whose targets are shallow copies of base's and of
 * extra[] (their strings stay owned where they were: by base, and by whoever made extra). Free
 * it with cm_config_free before base and before extra's owners. Names must be unique over base
 * and extra (CM_EBADARG otherwise). Returns 0 or -ENOMEM / CM_EBADARG with *out NULL. */
int cm_config_compose(const struct cm_config *base, const struct cm_config_target *const *extra,
                      size_t n, struct cm_config **out);

/* The target named name, or NULL. */
const struct cm_config_target *cm_config_find(const struct cm_config *cfg, const char *name);

/* Longest duration accepted (100 years): far beyond any useful interval, and small enough
 * that adding it to a clock in milliseconds cannot overflow. */
#define CM_DURATION_MAX_MS (36500ULL * 86400000ULL)

/* Parses a duration: "90s", "5m", "6h", "2d", "1w", combinations ("1h30m"), or a plain
 * number of seconds ("300"). "ms" is accepted too. In a combination the units go from the
 * largest to the smallest, each at most once. Returns 0 with the value in milliseconds, or
 * CM_EBADARG with a reason in err (negative, empty, unknown unit, more than
 * CM_DURATION_MAX_MS). */
int cm_duration_parse(const char *s, uint64_t *out_ms, char *err, size_t errlen);

/* Formats ms compactly into buf, largest unit first, units d h m s ms: 5400000 -> "1h30m",
 * 90000 -> "1m30s", 250 -> "250ms", 0 -> "0s". cm_duration_parse reads it back. */
void cm_duration_format(uint64_t ms, char *buf, size_t len);

/* Every key the loader accepts, from its tables: cb(group, key, arg) once per pair, in table
 * order. group is a top-level name ("global", "log", "metrics", "targets", "files",
 * "notifiers", "discovery"), or "policy" for the policy keys that global, targets and files all accept;
 * key is NULL once per top-level group, before its keys. For the man page test
 * (unit.manpages): a key added to a table must be documented. */
void cm_config_keys_foreach(void (*cb)(const char *group, const char *key, void *arg), void *arg);

#endif
