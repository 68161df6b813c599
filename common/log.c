/* Structured logging to stderr: "ts level message key=value ...", one line per event,
 * written with a single write so that lines from several threads never interleave. */
#include "mutualis/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static enum mu_log_level log_level = MU_LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void mu_log_set_level(enum mu_log_level level)
{
    log_level = level;
}

int mu_log_level_parse(const char *s)
{
    for (size_t i = 0; s && i < MU_ARRAY_LEN(level_names); i++)
        if (strcmp(s, level_names[i]) == 0)
            return (int)i;
    return -1;
}

void mu_log(enum mu_log_level level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    char line[4096];
    char ts[32];
    mu_format_time(mu_now_ms(), ts, sizeof ts);
    int n = snprintf(line, sizeof line, "%s %s ", ts, level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
