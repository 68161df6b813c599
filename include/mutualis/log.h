/* Structured logging: one line per event, message then key=value pairs, to stderr.
 * Only api/, ops/ and the programs' main loops log above debug (style.md). */
#ifndef MU_LOG_H
#define MU_LOG_H

#include "mutualis/util.h"

enum mu_log_level { MU_LOG_ERROR = 0, MU_LOG_WARN = 1, MU_LOG_INFO = 2, MU_LOG_DEBUG = 3 };

void mu_log_set_level(enum mu_log_level level);
/* Parses "error|warn|info|debug"; -1 if unknown. */
int mu_log_level_parse(const char *s);
void mu_log(enum mu_log_level level, const char *fmt, ...) MU_PRINTF(2, 3);

#define mu_log_error(...) mu_log(MU_LOG_ERROR, __VA_ARGS__)
#define mu_log_warn(...)  mu_log(MU_LOG_WARN, __VA_ARGS__)
#define mu_log_info(...)  mu_log(MU_LOG_INFO, __VA_ARGS__)
#define mu_log_debug(...) mu_log(MU_LOG_DEBUG, __VA_ARGS__)

#endif
