/* url.c: percent-decoding/encoding and query-string access. */
#include "net/url.h"

#include <errno.h>
#include <string.h>

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes the byte starting at s[*i], advancing *i. Returns it, or -1 for a
 * malformed escape or a NUL (which would truncate C strings downstream). */
static int decode_one(const char *s, size_t n, size_t *i, bool plus_is_space) {
  char c = s[*i];
  if (c == '%') {
    if (n - *i < 3) return -1;
    int h = hexval(s[*i + 1]), l = hexval(s[*i + 2]);
    if (h < 0 || l < 0) return -1;
    *i += 3;
    int v = h * 16 + l;
    return v == 0 ? -1 : v;
  }
  (*i)++;
  if (c == '\0') return -1;
  if (c == '+' && plus_is_space) return ' ';
  return (unsigned char)c;
}

ssize_t url_decode(const char *s, size_t n, char *out, size_t outcap, bool plus_is_space) {
  if (outcap == 0) return -1;
  size_t o = 0, i = 0;
  while (i < n) {
    /* A run of plain bytes is copied as it is: a query's long values
     * (a JWT) have no escapes. */
    size_t run = i;
    while (run < n && s[run] != '%' && s[run] != '+' && s[run] != '\0') run++;
    if (run > i) {
      if (run - i >= outcap - o) {
        out[0] = '\0';
        return -1;
      }
      memcpy(out + o, s + i, run - i);
      o += run - i;
      i = run;
      continue;
    }
    int v = decode_one(s, n, &i, plus_is_space);
    if (v < 0 || o + 1 >= outcap) {
      out[0] = '\0';
      return -1;
    }
    out[o++] = (char)v;
  }
  out[o] = '\0';
  return (ssize_t)o;
}

int url_query_next(sw_slice_t query, size_t *pos, sw_slice_t *name, sw_slice_t *value) {
  size_t i = *pos;
  while (i < query.n && query.p[i] == '&') i++; /* empty parameters */
  if (i >= query.n) {
    *pos = query.n;
    return 0;
  }
  size_t start = i;
  /* memchr: values can be long (a JWT), and each url_query_get walks the
   * whole query. */
  const char *amp = memchr(query.p + start, '&', query.n - start);
  size_t end = amp ? (size_t)(amp - query.p) : query.n;
  const char *eq = memchr(query.p + start, '=', end - start);
  if (eq) {
    *name = (sw_slice_t){query.p + start, (size_t)(eq - (query.p + start))};
    *value = (sw_slice_t){eq + 1, (size_t)(query.p + end - (eq + 1))};
  } else {
    *name = (sw_slice_t){query.p + start, end - start};
    *value = (sw_slice_t){query.p + end, 0};
  }
  *pos = end < query.n ? end + 1 : end;
  return 1;
}

/* True if raw (still encoded) decodes to exactly name; no buffer needed. */
static bool name_matches(sw_slice_t raw, const char *name) {
  /* Without escapes a name decodes to itself: compare lengths, then bytes. */
  if (!memchr(raw.p, '%', raw.n) && !memchr(raw.p, '+', raw.n))
    return strlen(name) == raw.n && memcmp(raw.p, name, raw.n) == 0 && !memchr(raw.p, '\0', raw.n);
  size_t i = 0, k = 0;
  while (i < raw.n) {
    int v = decode_one(raw.p, raw.n, &i, true);
    if (v < 0 || name[k] == '\0' || (unsigned char)name[k] != v) return false;
    k++;
  }
  return name[k] == '\0';
}

ssize_t url_query_get(sw_slice_t query, const char *name, char *out, size_t outcap) {
  size_t pos = 0;
  sw_slice_t k, v;
  while (url_query_next(query, &pos, &k, &v)) {
    if (!name_matches(k, name)) continue;
    ssize_t r = url_decode(v.p, v.n, out, outcap, true);
    return r < 0 ? -2 : r;
  }
  if (outcap > 0) out[0] = '\0';
  return -1;
}

static bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

int url_encode(sw_buf_t *out, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  size_t need = 0;
  for (size_t i = 0; i < n; i++) need += unreserved((unsigned char)s[i]) ? 1 : 3;
  if (need == 0) return 0; /* an empty buffer may have data == NULL */
  if (buf_reserve(out, need)) return -ENOMEM; /* after this nothing can fail */
  uint8_t *w = out->data + out->len;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (unreserved(c)) {
      *w++ = c;
    } else {
      *w++ = '%';
      *w++ = (uint8_t)hex[c >> 4];
      *w++ = (uint8_t)hex[c & 15];
    }
  }
  out->len += need;
  return 0;
}
