#include "util/log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The process state: written before threads start, then only read. */
static int g_level = SW_LOG_INFO;
static int g_format = SW_LOG_TEXT;

#define MSG_MAX SW_LOG_MSG_MAX
#define FIELD_MAX SW_LOG_FIELD_MAX

void log_set_level(int level) { g_level = level; }
void log_set_format(int format) { g_format = format; }
int log_enabled(int level) { return level <= g_level; }

int log_format_parse(const char *name) {
  if (strcmp(name, "text") == 0) return SW_LOG_TEXT;
  if (strcmp(name, "json") == 0) return SW_LOG_JSON;
  return -1;
}

/* A bounded writer: everything past cap - 1 is dropped, never overrun. */
typedef struct out {
  char *p;
  int n, cap;
} out_t;

static void put(out_t *o, const char *s, size_t n) {
  if (o->n >= o->cap - 1) return;
  size_t room = (size_t)(o->cap - 1 - o->n);
  if (n > room) n = room;
  memcpy(o->p + o->n, s, n);
  o->n += (int)n;
  o->p[o->n] = '\0';
}

static void puts_(out_t *o, const char *s) { put(o, s, strlen(s)); }

static void putf(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(out_t *o, const char *fmt, ...) {
  char tmp[64];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0) put(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs,
 * no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n) {
  unsigned char c = p[0];
  if (c < 0x80) return 1;
  size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (!len || len > n) return 0;
  for (size_t i = 1; i < len; i++)
    if ((p[i] & 0xc0) != 0x80) return 0;
  if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) || (c == 0xf0 && p[1] < 0x90) ||
      (c == 0xf4 && p[1] > 0x8f))
    return 0;
  return len;
}

/* A JSON string: quotes, backslashes and control characters escaped, bytes
 * that are not UTF-8 replaced by U+FFFD, so every line parses. */
static void put_json_str(out_t *o, const char *s, size_t max) {
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strnlen(s, max);
  put(o, "\"", 1);
  for (size_t i = 0; i < n;) {
    unsigned char c = p[i];
    size_t len = utf8_seq(p + i, n - i);
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      put(o, e, 2);
    } else if (c == '\n') {
      puts_(o, "\\n");
    } else if (c < 0x20 || c == 0x7f) {
      putf(o, "\\u%04x", c);
    } else if (!len) {
      puts_(o, "\\ufffd");
      len = 1;
    } else {
      put(o, s + i, len);
    }
    i += len ? len : 1;
  }
  put(o, "\"", 1);
}

/* The text form keeps a field value on one line and free of spaces. */
static void put_text_val(out_t *o, const char *s) {
  for (const char *end = s + strnlen(s, FIELD_MAX); s < end; s++) {
    unsigned char c = (unsigned char)*s;
    put(o, c <= 0x20 || c == 0x7f ? "?" : s, 1);
  }
}

static void put_json_field(out_t *o, const char *name, const char *v, size_t max) {
  if (!v) return;
  putf(o, ",\"%s\":", name);
  put_json_str(o, v, max);
}

int log_format_line(char *buf, int cap, int format, long long now_ms, int level, const sw_log_fields_t *f,
                    const char *msg) {
  static const char *names[] = {"error", "warn", "info", "debug"};
  static const sw_log_fields_t none = {0};
  if (!f) f = &none;
  out_t o = {buf, 0, cap};
  if (cap > 0) buf[0] = '\0';
  time_t secs = (time_t)(now_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char ts[40];
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  if (format == SW_LOG_JSON) {
    putf(&o, "{\"time\":\"%s.%03dZ\",\"level\":\"%s\"", ts, (int)(now_ms % 1000), names[level]);
    put_json_field(&o, "event", f->event ? f->event : "log", FIELD_MAX);
    put_json_field(&o, "connectionId", f->conn_id, FIELD_MAX);
    put_json_field(&o, "app", f->app_id, FIELD_MAX);
    if (f->code) putf(&o, ",\"code\":%d", f->code);
    put_json_field(&o, "msg", msg, MSG_MAX);
    put(&o, "}", 1);
    return o.n;
  }
  putf(&o, "%sZ %s ", ts, names[level]);
  puts_(&o, msg);
  if (f->conn_id) puts_(&o, " conn="), put_text_val(&o, f->conn_id);
  if (f->app_id) puts_(&o, " app="), put_text_val(&o, f->app_id);
  if (f->code) putf(&o, " code=%d", f->code);
  return o.n;
}

static void emit(int level, const sw_log_fields_t *f, const char *fmt, va_list ap) {
  char msg[MSG_MAX];
  vsnprintf(msg, sizeof msg, fmt, ap);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  long long now_ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
  char line[SW_LOG_LINE_MAX + 1];
  int n = log_format_line(line, SW_LOG_LINE_MAX, g_format, now_ms, level, f, msg);
  line[n++] = '\n';
  /* One write a line, so lines from the loop and storage threads never
   * interleave. A failed write to stderr has nowhere to be reported. */
  ssize_t w = write(STDERR_FILENO, line, (size_t)n);
  (void)w;
}

void log_write(int level, const char *fmt, ...) {
  if (level > g_level) return;
  va_list ap;
  va_start(ap, fmt);
  emit(level, NULL, fmt, ap);
  va_end(ap);
}

void log_event(int level, const sw_log_fields_t *f, const char *fmt, ...) {
  if (level > g_level) return;
  va_list ap;
  va_start(ap, fmt);
  emit(level, f, fmt, ap);
  va_end(ap);
}
