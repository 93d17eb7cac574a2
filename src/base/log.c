#include "certmon/base/log.h"
#include "certmon/base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

enum cm_log_level cm_log_threshold = CM_LOG_WARNING;

static const char *const level_names[] = {"error", "warning", "info", "debug"};

static bool use_syslog;

int cm_log_level_parse(const char *name, enum cm_log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum cm_log_level)i;
            return 0;
        }
    }
    return CM_EBADARG;
}

int cm_log_set_level(const char *name)
{
    return cm_log_level_parse(name, &cm_log_threshold);
}

const char *cm_log_level_name(enum cm_log_level level)
{
    return (unsigned)level < sizeof(level_names) / sizeof(level_names[0]) ? level_names[level]
                                                                           : "unknown";
}

void cm_log_use_syslog(bool on)
{
    if (on && !use_syslog)
        openlog("certmon", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    else if (!on && use_syslog)
        closelog();
    use_syslog = on;
}

void cm__log(enum cm_log_level level, const char *sub, const char *fmt, ...)
{
    char line[1024];
    char stamp[32];
    struct timespec ts;
    struct tm tm;
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* One event per line: a newline inside a message would forge a second event. */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    if (use_syslog) {
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
        syslog(prio[level], "level=%s sub=%s %s", level_names[level], sub, line);
        return;
    }
    fprintf(stderr, "%s.%03ldZ level=%s sub=%s %s\n", stamp, ts.tv_nsec / 1000000L,
            level_names[level], sub, line);
}
