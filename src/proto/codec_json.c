/* codec_json.c: the JSON format (jansson) behind the wire.h interfaces:
 * reading a body into a json_t tree seen as wire_val_t views, and writing
 * JSON text straight into an sw_buf_t (no intermediate json_t tree, since
 * the encoder runs once per published message). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/textenc.h"
#include "proto/wire.h"

/* ---- reading ---- */

static const wire_reader_ops_t jr_ops;

static void jr_view(const json_t *j, wire_val_t *v) {
  v->ops = &jr_ops;
  v->node = j;
  switch (json_typeof(j)) {
  case JSON_OBJECT:
    v->kind = WIRE_MAP;
    v->n = json_object_size(j);
    break;
  case JSON_ARRAY:
    v->kind = WIRE_ARRAY;
    v->n = json_array_size(j);
    break;
  case JSON_STRING:
    v->kind = WIRE_STR;
    v->s.p = json_string_value(j);
    v->s.len = json_string_length(j);
    break;
  case JSON_INTEGER:
    v->kind = WIRE_INT;
    v->i = json_integer_value(j);
    break;
  case JSON_REAL:
    v->kind = WIRE_REAL;
    v->d = json_real_value(j);
    break;
  case JSON_TRUE:
  case JSON_FALSE:
    v->kind = WIRE_BOOL;
    v->b = json_is_true(j);
    break;
  default: v->kind = WIRE_NIL; break;
  }
}

static void jr_item(const wire_val_t *arr, size_t i, wire_val_t *out) {
  jr_view(json_array_get(arr->node, i), out);
}

static int jr_each(const wire_val_t *map, wire_field_cb cb, void *ctx, sw_error_t *err) {
  /* jansson's iteration API takes a non-const object but does not modify it. */
  json_t *obj = (json_t *)map->node;
  const char *key;
  size_t klen;
  json_t *val;
  json_object_keylen_foreach(obj, key, klen, val) {
    wire_val_t v;
    jr_view(val, &v);
    if (cb(ctx, key, klen, &v, err)) return -1;
  }
  return 0;
}

static json_t *jr_to_json(const wire_val_t *v, sw_error_t *err) {
  (void)err;
  return json_incref((json_t *)v->node);
}

static const wire_reader_ops_t jr_ops = {
    .item = jr_item,
    .each = jr_each,
    .to_json = jr_to_json,
};

/* jansson would accept 2048 levels; check our limit on the raw text so that
 * an over-deep body is refused before jansson builds anything. */
static bool jr_depth_ok(const uint8_t *p, size_t n) {
  int depth = 0;
  bool in_str = false;
  for (size_t i = 0; i < n; i++) {
    uint8_t c = p[i];
    if (in_str) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '{' || c == '[') {
      if (++depth > SW_CODEC_MAX_DEPTH) return false;
    } else if (c == '}' || c == ']') {
      depth--;
    }
  }
  return true;
}

int codec_json_read(const uint8_t *p, size_t n, wire_root_fn fn, void *arg, sw_error_t *err) {
  if (!jr_depth_ok(p, n)) {
    errors_set(err, SW_E_BAD_REQUEST, "malformed JSON: nested deeper than %d", SW_CODEC_MAX_DEPTH);
    return -1;
  }
  json_error_t jerr;
  json_t *root = json_loadb((const char *)p, n,
                            JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
  if (!root) {
    errors_set(err, SW_E_BAD_REQUEST, "malformed JSON: %s", jerr.text);
    return -1;
  }
  wire_val_t v;
  jr_view(root, &v);
  int rc = fn(&v, arg, err);
  json_decref(root);
  return rc;
}

/* ---- writing ---- */

/* JSON-escaped contents of s (no quotes) appended to out; invalid UTF-8
 * becomes U+FFFD so the output is always valid JSON. */
static int jt_escape(sw_buf_t *out, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  if (n == 0) return 0; /* s may then be NULL */
  const uint8_t *p = (const uint8_t *)s;
  size_t run = 0, i = 0;
  while (i < n) {
    uint8_t c = p[i];
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      i++;
      continue;
    }
    if (c >= 0x80) {
      size_t l = textenc_utf8_seq(p + i, n - i);
      if (l) {
        i += l;
        continue;
      }
    }
    if (buf_append(out, p + run, i - run)) return -ENOMEM;
    char esc[7] = {'\\', 0};
    size_t elen = 2;
    switch (c) {
    case '"': esc[1] = '"'; break;
    case '\\': esc[1] = '\\'; break;
    case '\n': esc[1] = 'n'; break;
    case '\r': esc[1] = 'r'; break;
    case '\t': esc[1] = 't'; break;
    case '\b': esc[1] = 'b'; break;
    case '\f': esc[1] = 'f'; break;
    default:
      if (c >= 0x80) { /* not UTF-8: keep the output valid JSON */
        memcpy(esc, "\\ufffd", 6);
      } else {
        memcpy(esc, "\\u00", 4);
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 15];
      }
      elen = 6;
    }
    if (buf_append(out, esc, elen)) return -ENOMEM;
    run = ++i;
  }
  return buf_append(out, p + run, n - run);
}

static int jt_quoted(sw_buf_t *out, const char *s, size_t n) {
  if (buf_append_byte(out, '"') || jt_escape(out, s, n) || buf_append_byte(out, '"'))
    return -ENOMEM;
  return 0;
}

static int jt_i64(sw_buf_t *out, int64_t v) {
  char tmp[24];
  int len = snprintf(tmp, sizeof tmp, "%" PRId64, v);
  return buf_append(out, tmp, (size_t)len);
}

/* The shortest text that reads back as the same double, so 1.2 stays
 * "1.2" (jansson would print 1.2 as 1.1999999999999999), and always
 * recognisable as a real. */
static int jt_real(sw_buf_t *out, double d) {
  if (!isfinite(d)) return buf_append_str(out, "null");
  char tmp[40];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*g", prec, d);
    if (strtod(tmp, NULL) == d) break;
  }
  if (!strpbrk(tmp, ".eE")) strcat(tmp, ".0");
  return buf_append_str(out, tmp);
}

/* Trees built by our decoders are at most SW_CODEC_MAX_DEPTH deep; the
 * guard only protects against a caller's cyclic tree. */
#define DUMP_MAX_DEPTH 256

static int jt_value(sw_buf_t *out, const json_t *j, int depth) {
  if (depth > DUMP_MAX_DEPTH) return -EINVAL;
  switch (json_typeof(j)) {
  case JSON_OBJECT: {
    const char *key;
    size_t klen;
    json_t *val;
    bool first = true;
    if (buf_append_byte(out, '{')) return -ENOMEM;
    json_object_keylen_foreach((json_t *)j, key, klen, val) {
      if ((!first && buf_append_byte(out, ',')) || jt_quoted(out, key, klen) ||
          buf_append_byte(out, ':'))
        return -ENOMEM;
      int rc = jt_value(out, val, depth + 1);
      if (rc) return rc;
      first = false;
    }
    return buf_append_byte(out, '}');
  }
  case JSON_ARRAY: {
    if (buf_append_byte(out, '[')) return -ENOMEM;
    for (size_t i = 0; i < json_array_size(j); i++) {
      if (i && buf_append_byte(out, ',')) return -ENOMEM;
      int rc = jt_value(out, json_array_get(j, i), depth + 1);
      if (rc) return rc;
    }
    return buf_append_byte(out, ']');
  }
  case JSON_STRING: return jt_quoted(out, json_string_value(j), json_string_length(j));
  case JSON_INTEGER: return jt_i64(out, json_integer_value(j));
  case JSON_REAL: return jt_real(out, json_real_value(j));
  case JSON_TRUE: return buf_append_str(out, "true");
  case JSON_FALSE: return buf_append_str(out, "false");
  default: return buf_append_str(out, "null");
  }
}

/* Every value first writes the comma that separates it from its left
 * sibling; need_comma alone suffices because a closed container is itself
 * a value of its parent. */
static int jw_sep(wire_writer_t *w) {
  if (!w->need_comma) return 0;
  w->need_comma = false;
  return buf_append_byte(w->out, ',');
}

static int jw_open(wire_writer_t *w, char c) {
  if (jw_sep(w) || buf_append_byte(w->out, (uint8_t)c)) return -ENOMEM;
  w->need_comma = false;
  return 0;
}

static int jw_close(wire_writer_t *w, char c) {
  w->need_comma = true;
  return buf_append_byte(w->out, (uint8_t)c);
}

static int jw_map_open(wire_writer_t *w, size_t *mark) {
  *mark = 0;
  return jw_open(w, '{');
}

static int jw_map_close(wire_writer_t *w, size_t mark, size_t n) {
  (void)mark;
  (void)n;
  return jw_close(w, '}');
}

static int jw_array_open(wire_writer_t *w, size_t n) {
  (void)n;
  return jw_open(w, '[');
}

static int jw_array_close(wire_writer_t *w) { return jw_close(w, ']'); }

static int jw_key(wire_writer_t *w, const char *k, size_t n) {
  if (jw_sep(w) || jt_quoted(w->out, k, n) || buf_append_byte(w->out, ':')) return -ENOMEM;
  w->need_comma = false;
  return 0;
}

/* A value was written (rc 0) or failed; its right sibling needs a comma. */
static int jw_done(wire_writer_t *w, int rc) {
  w->need_comma = true;
  return rc;
}

static int jw_str(wire_writer_t *w, const char *s, size_t n) {
  return jw_sep(w) ? -ENOMEM : jw_done(w, jt_quoted(w->out, s, n));
}

static int jw_bin(wire_writer_t *w, const uint8_t *p, size_t n) {
  if (jw_sep(w) || buf_append_byte(w->out, '"') || textenc_base64_append(w->out, p, n) ||
      buf_append_byte(w->out, '"'))
    return -ENOMEM;
  return jw_done(w, 0);
}

static int jw_i64(wire_writer_t *w, int64_t v) {
  return jw_sep(w) ? -ENOMEM : jw_done(w, jt_i64(w->out, v));
}

static int jw_nil(wire_writer_t *w) {
  return jw_sep(w) ? -ENOMEM : jw_done(w, buf_append_str(w->out, "null"));
}

static int jw_json(wire_writer_t *w, const json_t *v) {
  return jw_sep(w) ? -ENOMEM : jw_done(w, jt_value(w->out, v, 0));
}

static const wire_writer_ops_t jw_ops = {
    .map_open = jw_map_open,
    .map_close = jw_map_close,
    .array_open = jw_array_open,
    .array_close = jw_array_close,
    .key = jw_key,
    .str = jw_str,
    .bin = jw_bin,
    .i64 = jw_i64,
    .nil = jw_nil,
    .json = jw_json,
};

void codec_json_writer_init(wire_writer_t *w, sw_buf_t *out) {
  *w = (wire_writer_t){.ops = &jw_ops, .out = out, .text = true};
}
