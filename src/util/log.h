/* log.h: leveled logging to stderr, as plain text (default) or one JSON
 * object a line (--log-format json).
 *
 * Never log secrets: no key secret, token, JWT, connectionKey, cookie or
 * Authorization value, and no client-supplied error message that may quote
 * one. A credential failure is logged by its Ably error code only. */
#ifndef SW_UTIL_LOG_H
#define SW_UTIL_LOG_H

enum { SW_LOG_ERROR = 0, SW_LOG_WARN = 1, SW_LOG_INFO = 2, SW_LOG_DEBUG = 3 };
enum { SW_LOG_TEXT = 0, SW_LOG_JSON = 1 };

/* What a structured line carries beside its message. Every field is
 * optional (NULL / 0 = absent); `event` is a stable dotted name for
 * machines (e.g. "conn.refused"), the message is for people. */
typedef struct sw_log_fields {
  const char *event;
  const char *conn_id; /* Ably connectionId */
  const char *app_id;
  int code;            /* Ably error code */
} sw_log_fields_t;

/* Process-wide level and format, set once at start-up from the command line
 * before any thread starts; read-only afterwards. */
void log_set_level(int level);
void log_set_format(int format);
/* "text" or "json" to SW_LOG_TEXT / SW_LOG_JSON; -1 for anything else. */
int log_format_parse(const char *name);
/* Whether a line at this level would be written (to skip costly arguments). */
int log_enabled(int level);

void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_event(int level, const sw_log_fields_t *f, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A message is cut at SW_LOG_MSG_MAX bytes, any other field at
 * SW_LOG_FIELD_MAX; as JSON a byte takes at most six (\u00XX), so a whole
 * line always fits in SW_LOG_LINE_MAX. */
#define SW_LOG_MSG_MAX 1024
#define SW_LOG_FIELD_MAX 256
#define SW_LOG_LINE_MAX (6 * (SW_LOG_MSG_MAX + 4 * SW_LOG_FIELD_MAX) + 256)

/* Formats one line (no newline) into out (cap >= SW_LOG_LINE_MAX for a
 * complete line), as log_event writes it; for the unit test. `now_ms` is
 * the Unix time in ms. Returns the length. */
int log_format_line(char *out, int cap, int format, long long now_ms, int level, const sw_log_fields_t *f,
                    const char *msg);

#define log_error(...) log_write(SW_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_write(SW_LOG_WARN, __VA_ARGS__)
#define log_info(...) log_write(SW_LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_write(SW_LOG_DEBUG, __VA_ARGS__)

/* log_ev(SW_LOG_DEBUG, "conn.resumed", c->id, c->app->id, 0, "connection resumed") */
#define log_ev(level, event_, conn_, app_, code_, ...)                                                    \
  log_event((level), &(const sw_log_fields_t){.event = (event_), .conn_id = (conn_), .app_id = (app_), \
                                              .code = (code_)},                                          \
            __VA_ARGS__)

#endif
