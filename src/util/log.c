#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

/* The one piece of process state: written before threads start, then only read. */
static int g_level = SW_LOG_INFO;

void log_set_level(int level) { g_level = level; }

void log_write(int level, const char *fmt, ...) {
  if (level > g_level) return;
  static const char *names[] = {"error", "warn", "info", "debug"};
  char ts[32];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s %s %s\n", ts, names[level], line);
}
