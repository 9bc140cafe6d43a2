#include "auth/channel_name.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static int fail(sw_error_t *err, const char *why) {
  if (err != NULL) return errors_set(err, SW_E_INVALID_CHANNEL, "Invalid channel name: %s", why);
  return -SW_E_INVALID_CHANNEL;
}

/* Length of the well-formed UTF-8 sequence at s[0..n), 0 if malformed
 * (overlong forms, surrogates and code points above U+10FFFF included). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t need;
  uint32_t cp, min;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 2; cp = c & 0x1Fu; min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3; cp = c & 0x0Fu; min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4; cp = c & 0x07u; min = 0x10000;
  } else {
    return 0;
  }
  if (n < need) return 0;
  for (size_t i = 1; i < need; i++) {
    if ((s[i] & 0xC0u) != 0x80u) return 0;
    cp = (cp << 6) | (s[i] & 0x3Fu);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return need;
}

static bool is_key_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

/* Standard and URL-safe base64 alphabets, with padding. */
static bool is_b64_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/' || c == '-' || c == '_' || c == '=';
}

/* "k=v&k2=v2": every param has a non-empty key of key characters and "=". */
static bool params_valid(const char *p, size_t n) {
  if (n == 0) return false;
  size_t i = 0;
  while (i <= n) {
    size_t start = i;
    while (i < n && p[i] != '&') i++;
    const char *eq = memchr(p + start, '=', i - start);
    if (eq == NULL || eq == p + start) return false;
    for (const char *k = p + start; k < eq; k++)
      if (!is_key_char((unsigned char)*k)) return false;
    i++; /* past '&', or past the end to stop */
  }
  return true;
}

int channel_name_validate(const char *name, size_t len, sw_channel_name_t *out, sw_error_t *err) {
  sw_channel_name_t tmp;
  if (out == NULL) out = &tmp;
  memset(out, 0, sizeof *out);
  if (name == NULL || len == 0) return fail(err, "empty");
  if (len > SW_CHANNEL_NAME_MAX) return fail(err, "longer than 8192 bytes");

  const unsigned char *s = (const unsigned char *)name;
  for (size_t i = 0; i < len;) {
    if (s[i] < 0x20 || s[i] == 0x7F) return fail(err, "contains a control character");
    size_t n = utf8_seq(s + i, len - i);
    if (n == 0) return fail(err, "not valid UTF-8");
    i += n;
  }

  size_t off = 0;
  if (name[0] == '[') {
    const char *close = memchr(name, ']', len);
    if (close == NULL) return fail(err, "unterminated '[' qualifier");
    const char *inner = name + 1;
    size_t inner_len = (size_t)(close - inner);
    const char *q = memchr(inner, '?', inner_len);
    size_t qual_len = q != NULL ? (size_t)(q - inner) : inner_len;

    if (q != NULL) {
      out->params_off = (size_t)(q + 1 - name);
      out->params_len = inner_len - qual_len - 1;
      if (!params_valid(q + 1, out->params_len)) return fail(err, "malformed channel params in '[...]'");
    }
    if (qual_len == 0) {
      if (q == NULL) return fail(err, "empty '[]' qualifier");
      out->kind = SW_CHAN_PLAIN;
    } else if (qual_len == 4 && memcmp(inner, "meta", 4) == 0) {
      out->kind = SW_CHAN_META;
    } else if (qual_len > 7 && memcmp(inner, "filter=", 7) == 0) {
      for (size_t i = 7; i < qual_len; i++)
        if (!is_b64_char((unsigned char)inner[i])) return fail(err, "filter expression is not base64");
      out->kind = SW_CHAN_FILTER;
      out->filter_off = 1 + 7;
      out->filter_len = qual_len - 7;
    } else {
      return fail(err, "unknown '[...]' qualifier");
    }
    off = (size_t)(close + 1 - name);
    if (off == len) return fail(err, "nothing after the '[...]' qualifier");
    if (name[off] == '[') return fail(err, "more than one '[...]' qualifier");
  }
  if (name[off] == ':') return fail(err, "starts with ':'");
  out->name_off = off;
  return 0;
}
