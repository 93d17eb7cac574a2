/* Leveled logging, one event per line, key=value pairs.
 *
 * Levels: error (something failed and certmon could not do what it was asked), warning
 * (something is wrong but certmon carries on), info (state changes an operator wants in the
 * log), debug (per-probe detail for diagnosis). The level is checked before formatting.
 * Secrets are never passed to these functions. */
#ifndef CERTMON_LOG_H
#define CERTMON_LOG_H

#include <stdbool.h>

enum cm_log_level { CM_LOG_ERROR = 0, CM_LOG_WARNING, CM_LOG_INFO, CM_LOG_DEBUG };

/* Current threshold; messages above it are dropped without being formatted. */
extern enum cm_log_level cm_log_threshold;

/* Sets the threshold from its name (error|warning|info|debug). Returns 0 or CM_EBADARG. */
int cm_log_set_level(const char *name);

/* Sends events to syslog (ident "certmon", facility daemon) instead of stderr, or back. */
void cm_log_use_syslog(bool on);

/* Name of a level ("error", "warning", "info", "debug"). */
const char *cm_log_level_name(enum cm_log_level level);

/* Parses a level name. Returns 0 or CM_EBADARG. */
int cm_log_level_parse(const char *name, enum cm_log_level *out);

/* Writes one event for subsystem sub (e.g. "probe"). Use the macros below. */
void cm__log(enum cm_log_level level, const char *sub, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define cm_log(level, sub, ...)                                                                    \
    do {                                                                                           \
        if ((level) <= cm_log_threshold)                                                           \
            cm__log((level), (sub), __VA_ARGS__);                                                  \
    } while (0)
#define cm_log_error(sub, ...) cm_log(CM_LOG_ERROR, sub, __VA_ARGS__)
#define cm_log_warn(sub, ...) cm_log(CM_LOG_WARNING, sub, __VA_ARGS__)
#define cm_log_info(sub, ...) cm_log(CM_LOG_INFO, sub, __VA_ARGS__)
#define cm_log_debug(sub, ...) cm_log(CM_LOG_DEBUG, sub, __VA_ARGS__)

#endif
