/* fmt.h: decimal integers and "prefix:number" ids written without printf.
 *
 * Message ids (TM2a: "<connectionId>:<msgSerial>:<index>") are made for
 * every published message; snprintf's format interpretation was ~15 % of
 * the loop thread's instructions per durable publish (callgrind,
 * docs/benchmarks.md). */
#ifndef SW_UTIL_FMT_H
#define SW_UTIL_FMT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Writes v in decimal at out (at most 20 bytes, no NUL); returns the length. */
static inline size_t fmt_u64(char *out, uint64_t v) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  return n;
}

/* Writes v in decimal, with a '-' if negative (at most 20 bytes, no NUL). */
static inline size_t fmt_i64(char *out, int64_t v) {
  if (v >= 0) return fmt_u64(out, (uint64_t)v);
  out[0] = '-';
  return 1 + fmt_u64(out + 1, (uint64_t)0 - (uint64_t)v);
}

/* out = prefix ":" v, NUL-terminated, cut to cap - 1 bytes as snprintf
 * would (cap >= 1); returns the length written. */
static inline size_t fmt_id(char *out, size_t cap, const char *prefix, int64_t v) {
  char num[21];
  size_t pn = strlen(prefix), nn = fmt_i64(num, v), len = 0;
  size_t take = pn < cap - 1 ? pn : cap - 1;
  memcpy(out, prefix, take);
  len = take;
  if (len < cap - 1) out[len++] = ':';
  take = nn < cap - 1 - len ? nn : cap - 1 - len;
  memcpy(out + len, num, take);
  len += take;
  out[len] = '\0';
  return len;
}

#endif
