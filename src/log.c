#include "certmon/log.h"
#include "certmon/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum cm_log_level cm_log_threshold = CM_LOG_WARNING;

static const char *const level_names[] = {"error", "warning", "info", "debug"};

int cm_log_set_level(const char *name)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            cm_log_threshold = (enum cm_log_level)i;
            return 0;
        }
    }
    return CM_EBADARG;
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
    fprintf(stderr, "%s.%03ldZ level=%s sub=%s %s\n", stamp, ts.tv_nsec / 1000000L,
            level_names[level], sub, line);
}
