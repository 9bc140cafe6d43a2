#include "proto/errors.h"

#include <stdarg.h>
#include <stdio.h>

int errors_status(int code) {
  /* Codes whose status is not their first three digits. */
  switch (code) {
  case 50003: return 504;
  case 80000: case 80003: case 80002: return 503;
  case 80008: case 80013: case 80017: case 80018: return 400;
  case 80022: return 404;
  default: break;
  }
  if (code >= 40000 && code < 60000) return code / 100;
  if (code >= 90000 && code < 100000) return 400;
  return 500;
}

int errors_set(sw_error_t *e, int code, const char *fmt, ...) {
  e->code = code;
  e->status = errors_status(code);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  va_end(ap);
  return -code;
}

void errors_href(int code, char *out, size_t outlen) {
  snprintf(out, outlen, "https://help.ably.io/error/%d", code);
}
