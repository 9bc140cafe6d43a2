#include "auth/jws_json.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Strings with escapes are decoded into a buffer: at most this many bytes
 * of escaped text for a value, and for a name (kept on the stack of its
 * object while the value is parsed); longer ones go to jansson. */
#define VALUE_UNESCAPE_MAX 1024u
#define NAME_UNESCAPE_MAX 256u

typedef struct parser {
  const char *p;
  size_t n, i;
  char buf[VALUE_UNESCAPE_MAX];
} parser_t;

static void skip_ws(parser_t *ps) {
  while (ps->i < ps->n) {
    char c = ps->p[ps->i];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
    ps->i++;
  }
}

/* Is the next byte c? Then step over it. */
static bool eat(parser_t *ps, char c) {
  if (ps->i >= ps->n || ps->p[ps->i] != c) return false;
  ps->i++;
  return true;
}

/* The length of the valid UTF-8 sequence at s (avail bytes left), whose
 * first byte is >= 0x80, or 0. jansson's rules (utf.c): no overlong forms,
 * no surrogates, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t avail) {
  unsigned char u = s[0];
  size_t len;
  uint32_t v;
  if (u >= 0xC2 && u <= 0xDF) len = 2, v = u & 0x1Fu;
  else if (u >= 0xE0 && u <= 0xEF) len = 3, v = u & 0x0Fu;
  else if (u >= 0xF0 && u <= 0xF4) len = 4, v = u & 0x07u;
  else return 0; /* a continuation byte, 0xC0/0xC1 (overlong ASCII), 0xF5 and up */
  if (len > avail) return 0;
  for (size_t k = 1; k < len; k++) {
    if (s[k] < 0x80 || s[k] > 0xBF) return 0;
    v = v << 6 | (s[k] & 0x3Fu);
  }
  if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || (len == 3 && v < 0x800) || (len == 4 && v < 0x10000)) return 0;
  return len;
}

static bool simple_escape(char e) {
  return e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't';
}

/* The string whose opening quote was just read: *s and *len are its text,
 * in place when it has no escapes, else decoded into buf (cap bytes).
 * Returns 0, or 1 (jansson decides). */
static int string(parser_t *ps, char *buf, size_t cap, const char **s, size_t *len) {
  const unsigned char *p = (const unsigned char *)ps->p;
  size_t i = ps->i, start = i;
  bool escaped = false;
  for (;;) {
    if (i >= ps->n) return 1;
    unsigned char c = p[i];
    if (c == '"') break;
    if (c == '\\') {
      if (i + 1 >= ps->n || !simple_escape((char)p[i + 1])) return 1; /* \u and bad escapes */
      escaped = true;
      i += 2;
    } else if (c < 0x20) {
      return 1; /* a control byte: an error for jansson too */
    } else if (c < 0x80) {
      i++;
    } else {
      size_t l = utf8_len(p + i, ps->n - i);
      if (!l) return 1;
      i += l;
    }
  }
  ps->i = i + 1;
  if (!escaped) {
    *s = ps->p + start;
    *len = i - start;
    return 0;
  }
  if (i - start > cap) return 1;
  size_t w = 0;
  for (size_t k = start; k < i; k++) {
    char c = ps->p[k];
    if (c == '\\') {
      c = ps->p[++k];
      c = c == 'b' ? '\b' : c == 'f' ? '\f' : c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
    }
    buf[w++] = c;
  }
  *s = buf;
  *len = w;
  return 0;
}

/* An integer of 1 to 18 digits (never out of json_int_t's range), no
 * leading zero; a fraction or exponent goes to jansson. What follows is
 * the caller's to check. */
static int number(parser_t *ps, json_t **out) {
  const char *p = ps->p;
  size_t i = ps->i;
  bool neg = p[i] == '-';
  if (neg) i++;
  size_t d0 = i;
  json_int_t v = 0;
  for (; i < ps->n && p[i] >= '0' && p[i] <= '9'; i++)
    if (i - d0 < 18) v = v * 10 + (p[i] - '0');
  size_t digits = i - d0;
  if (digits == 0 || digits > 18 || (digits > 1 && p[d0] == '0')) return 1;
  if (i < ps->n && (p[i] == '.' || p[i] == 'e' || p[i] == 'E')) return 1;
  ps->i = i;
  *out = json_integer(neg ? -v : v);
  return *out ? 0 : 1;
}

static int literal(parser_t *ps, const char *lit, json_t *v, json_t **out) {
  size_t n = strlen(lit);
  if (ps->n - ps->i < n || memcmp(ps->p + ps->i, lit, n) != 0) return 1;
  ps->i += n;
  *out = v;
  return 0;
}

static int value(parser_t *ps, int depth, json_t **out);

static int object(parser_t *ps, int depth, json_t **out) {
  if (depth > JWS_JSON_FAST_DEPTH) return 1;
  json_t *o = json_object();
  if (!o) return 1;
  ps->i++; /* '{' */
  skip_ws(ps);
  if (eat(ps, '}')) goto done;
  for (;;) {
    char kbuf[NAME_UNESCAPE_MAX];
    const char *k;
    size_t klen;
    json_t *v;
    if (!eat(ps, '"') || string(ps, kbuf, sizeof kbuf, &k, &klen)) goto fail;
    if (json_object_getn(o, k, klen)) goto fail; /* a duplicate name: jansson refuses it */
    skip_ws(ps);
    if (!eat(ps, ':')) goto fail;
    skip_ws(ps);
    if (value(ps, depth, &v)) goto fail;
    if (json_object_setn_new_nocheck(o, k, klen, v)) goto fail; /* consumes v either way */
    skip_ws(ps);
    if (eat(ps, '}')) break;
    if (!eat(ps, ',')) goto fail;
    skip_ws(ps);
  }
done:
  *out = o;
  return 0;
fail:
  json_decref(o);
  return 1;
}

static int array(parser_t *ps, int depth, json_t **out) {
  if (depth > JWS_JSON_FAST_DEPTH) return 1;
  json_t *a = json_array();
  if (!a) return 1;
  ps->i++; /* '[' */
  skip_ws(ps);
  if (eat(ps, ']')) goto done;
  for (;;) {
    json_t *v;
    if (value(ps, depth, &v) || json_array_append_new(a, v)) goto fail; /* append_new consumes v */
    skip_ws(ps);
    if (eat(ps, ']')) break;
    if (!eat(ps, ',')) goto fail;
    skip_ws(ps);
  }
done:
  *out = a;
  return 0;
fail:
  json_decref(a);
  return 1;
}

static int value(parser_t *ps, int depth, json_t **out) {
  if (ps->i >= ps->n) return 1;
  char c = ps->p[ps->i];
  switch (c) {
  case '{': return object(ps, depth + 1, out);
  case '[': return array(ps, depth + 1, out);
  case 't': return literal(ps, "true", json_true(), out);
  case 'f': return literal(ps, "false", json_false(), out);
  case 'n': return literal(ps, "null", json_null(), out);
  case '"': {
    ps->i++;
    const char *s;
    size_t len;
    if (string(ps, ps->buf, sizeof ps->buf, &s, &len)) return 1;
    /* No NUL can be in s (no \u, control bytes refused): as jansson makes it. */
    *out = json_stringn_nocheck(s, len);
    return *out ? 0 : 1;
  }
  default: return c == '-' || (c >= '0' && c <= '9') ? number(ps, out) : 1;
  }
}

int jws_json_fast(const char *p, size_t n, json_t **out) {
  parser_t ps = {.p = p, .n = n};
  *out = NULL;
  skip_ws(&ps);
  if (ps.i >= n || p[ps.i] != '{') return 1;
  json_t *o;
  if (object(&ps, 1, &o)) return 1;
  skip_ws(&ps);
  if (ps.i != n) {
    json_decref(o);
    return 1;
  }
  *out = o;
  return 0;
}

json_t *jws_json_object(const char *p, size_t n) {
  json_t *o;
  if (jws_json_fast(p, n, &o) == 0) return o;
  /* Duplicate names are refused: two "alg" or "exp" could be read
   * differently by another parser on the way. */
  o = json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL);
  if (o && !json_is_object(o)) {
    json_decref(o);
    o = NULL;
  }
  return o;
}
