/* log.h: leveled logging to stderr. Never log secrets (keys, tokens, secrets). */
#ifndef SW_UTIL_LOG_H
#define SW_UTIL_LOG_H

enum { SW_LOG_ERROR = 0, SW_LOG_WARN = 1, SW_LOG_INFO = 2, SW_LOG_DEBUG = 3 };

/* Process-wide level, set once at start-up from the command line before any
 * thread starts; read-only afterwards. */
void log_set_level(int level);
void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_write(SW_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_write(SW_LOG_WARN, __VA_ARGS__)
#define log_info(...) log_write(SW_LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_write(SW_LOG_DEBUG, __VA_ARGS__)

#endif
