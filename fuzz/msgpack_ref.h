/* msgpack_ref.h: the reference the server's msgpack reader
 * (src/proto/codec_msgpack.c, codec_msgpack_read) is compared with, and a
 * description of a reader's result as text to compare them by
 * (fuzz/fuzz_msgpack_read.c, tests/unit/test_codec.c).
 *
 * The reference is the reader the server had before its own: a structural
 * pre-check (depth, counts bounded by the bytes left, UTF-8 of every str
 * unless stored, nothing after the value), then msgpack-c's msgpack_unpack
 * into a zone, seen as wire_val_t views. Test code only. */
#ifndef SW_FUZZ_MSGPACK_REF_H
#define SW_FUZZ_MSGPACK_REF_H

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/textenc.h"
#include "proto/wire.h"

static int ref_bad(sw_error_t *err, const char *why) {
  errors_set(err, SW_E_BAD_REQUEST, "malformed msgpack: %s", why);
  return -1;
}

typedef struct ref_head {
  uint8_t len_bytes, fixed, per_item;
  bool str;
  uint32_t count;
} ref_head_t;

static bool ref_head(uint8_t b, ref_head_t *h) {
  *h = (ref_head_t){0};
  if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return true;
  if (b <= 0x8f) return h->per_item = 2, h->count = b & 0x0f, true;
  if (b <= 0x9f) return h->per_item = 1, h->count = b & 0x0f, true;
  if (b <= 0xbf) return h->str = true, h->fixed = b & 0x1f, true;
  static const uint8_t pow2[] = {1, 2, 4, 8, 16};
  if (b >= 0xc4 && b <= 0xc6) return h->len_bytes = pow2[b - 0xc4], true;
  if (b >= 0xc7 && b <= 0xc9) return h->len_bytes = pow2[b - 0xc7], h->fixed = 1, true;
  if (b == 0xca || b == 0xcb) return h->fixed = pow2[b - 0xc8], true;
  if (b >= 0xcc && b <= 0xcf) return h->fixed = pow2[b - 0xcc], true;
  if (b >= 0xd0 && b <= 0xd3) return h->fixed = pow2[b - 0xd0], true;
  if (b >= 0xd4 && b <= 0xd8) return h->fixed = (uint8_t)(1 + pow2[b - 0xd4]), true;
  if (b >= 0xd9 && b <= 0xdb) return h->len_bytes = pow2[b - 0xd9], h->str = true, true;
  if (b == 0xdc || b == 0xdd) return h->len_bytes = pow2[b - 0xdb], h->per_item = 1, true;
  if (b == 0xde || b == 0xdf) return h->len_bytes = pow2[b - 0xdd], h->per_item = 2, true;
  return false;
}

static int ref_check(const uint8_t *p, size_t n, bool utf8, sw_error_t *err) {
  size_t left[SW_CODEC_MAX_DEPTH + 1];
  int top = 0;
  left[0] = 1;
  size_t i = 0;
  for (;;) {
    while (top >= 0 && left[top] == 0) top--;
    if (top < 0) break;
    left[top]--;
    ref_head_t h;
    if (i >= n) return ref_bad(err, "truncated");
    if (!ref_head(p[i++], &h)) return ref_bad(err, "invalid type byte");
    if (n - i < h.len_bytes) return ref_bad(err, "truncated");
    uint64_t len = 0;
    for (size_t k = 0; k < h.len_bytes; k++) len = len << 8 | p[i + k];
    if (!h.len_bytes) len = h.count;
    i += h.len_bytes;
    if (h.per_item) {
      if (top + 1 > SW_CODEC_MAX_DEPTH) return ref_bad(err, "nested too deeply");
      if (len * h.per_item > n - i) return ref_bad(err, "truncated");
      if (len) left[++top] = (size_t)(len * h.per_item);
      continue;
    }
    uint64_t body = (h.len_bytes ? len : 0) + h.fixed;
    if (body > n - i) return ref_bad(err, "truncated");
    if (utf8 && h.str && !textenc_utf8_valid(p + i, (size_t)body)) return ref_bad(err, "str is not UTF-8");
    i += (size_t)body;
  }
  if (i != n) return ref_bad(err, "trailing bytes after the value");
  return 0;
}

static const wire_reader_ops_t ref_ops;

static const char *ref_ptr(const char *p) { return p ? p : ""; }

static void ref_view(const msgpack_object *o, wire_val_t *v) {
  v->ops = &ref_ops;
  v->node = o;
  switch (o->type) {
  case MSGPACK_OBJECT_NIL: v->kind = WIRE_NIL; break;
  case MSGPACK_OBJECT_BOOLEAN: v->kind = WIRE_BOOL, v->b = o->via.boolean; break;
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
    if (o->via.u64 > INT64_MAX) v->kind = WIRE_REAL, v->d = (double)o->via.u64;
    else v->kind = WIRE_INT, v->i = (int64_t)o->via.u64;
    break;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER: v->kind = WIRE_INT, v->i = o->via.i64; break;
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64: v->kind = WIRE_REAL, v->d = o->via.f64; break;
  case MSGPACK_OBJECT_STR:
    v->kind = WIRE_STR, v->s.p = ref_ptr(o->via.str.ptr), v->s.len = o->via.str.size;
    break;
  case MSGPACK_OBJECT_BIN:
    v->kind = WIRE_BIN, v->s.p = ref_ptr(o->via.bin.ptr), v->s.len = o->via.bin.size;
    break;
  case MSGPACK_OBJECT_ARRAY: v->kind = WIRE_ARRAY, v->n = o->via.array.size; break;
  case MSGPACK_OBJECT_MAP: v->kind = WIRE_MAP, v->n = o->via.map.size; break;
  default: v->kind = WIRE_OTHER; break;
  }
}

static void ref_item(const wire_val_t *arr, size_t i, wire_val_t *out) {
  const msgpack_object *o = arr->node;
  ref_view(&o->via.array.ptr[i], out);
}

static int ref_each(const wire_val_t *map, wire_field_cb cb, void *ctx, sw_error_t *err) {
  const msgpack_object *o = map->node;
  for (uint32_t i = 0; i < o->via.map.size; i++) {
    const msgpack_object_kv *kv = &o->via.map.ptr[i];
    if (kv->key.type != MSGPACK_OBJECT_STR) return ref_bad(err, "map key is not a string");
    wire_val_t v;
    ref_view(&kv->val, &v);
    if (cb(ctx, ref_ptr(kv->key.via.str.ptr), kv->key.via.str.size, &v, err)) return -1;
  }
  return 0;
}

static json_t *ref_json_nomem(sw_error_t *err) {
  errors_set(err, SW_E_INTERNAL, "out of memory decoding msgpack");
  return NULL;
}

static json_t *ref_json(const msgpack_object *o, sw_error_t *err) {
  json_t *j = NULL;
  switch (o->type) {
  case MSGPACK_OBJECT_NIL: j = json_null(); break;
  case MSGPACK_OBJECT_BOOLEAN: j = json_boolean(o->via.boolean); break;
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
    j = o->via.u64 > INT64_MAX ? json_real((double)o->via.u64) : json_integer((json_int_t)o->via.u64);
    break;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER: j = json_integer(o->via.i64); break;
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64:
    if (!isfinite(o->via.f64)) {
      ref_bad(err, "number is not finite");
      return NULL;
    }
    j = json_real(o->via.f64);
    break;
  case MSGPACK_OBJECT_STR: j = json_stringn_nocheck(ref_ptr(o->via.str.ptr), o->via.str.size); break;
  case MSGPACK_OBJECT_BIN: {
    sw_buf_t b64 = {0};
    if (textenc_base64_append(&b64, (const uint8_t *)o->via.bin.ptr, o->via.bin.size) == 0)
      j = json_stringn_nocheck(b64.data ? (const char *)b64.data : "", b64.len);
    buf_free(&b64);
    break;
  }
  case MSGPACK_OBJECT_ARRAY: {
    json_t *arr = json_array();
    if (!arr) return ref_json_nomem(err);
    for (uint32_t i = 0; i < o->via.array.size; i++) {
      json_t *x = ref_json(&o->via.array.ptr[i], err);
      if (!x || json_array_append_new(arr, x)) {
        json_decref(arr);
        return x ? ref_json_nomem(err) : NULL;
      }
    }
    return arr;
  }
  case MSGPACK_OBJECT_MAP: {
    json_t *obj = json_object();
    if (!obj) return ref_json_nomem(err);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
      const msgpack_object_kv *kv = &o->via.map.ptr[i];
      if (kv->key.type != MSGPACK_OBJECT_STR || memchr(ref_ptr(kv->key.via.str.ptr), '\0', kv->key.via.str.size)) {
        json_decref(obj);
        ref_bad(err, "map key is not a string without NUL");
        return NULL;
      }
      json_t *x = ref_json(&kv->val, err);
      if (!x || json_object_setn_new_nocheck(obj, ref_ptr(kv->key.via.str.ptr), kv->key.via.str.size, x)) {
        json_decref(obj);
        return x ? ref_json_nomem(err) : NULL;
      }
    }
    return obj;
  }
  default: ref_bad(err, "ext values are not supported"); return NULL;
  }
  if (!j) return ref_json_nomem(err);
  return j;
}

static json_t *ref_to_json(const wire_val_t *v, sw_error_t *err) { return ref_json(v->node, err); }

static const wire_reader_ops_t ref_ops = {.item = ref_item, .each = ref_each, .to_json = ref_to_json};

/* The reference's codec_msgpack_read (utf8) or codec_msgpack_read_stored. */
static int ref_msgpack_read(const uint8_t *p, size_t n, bool utf8, wire_root_fn fn, void *arg, sw_error_t *err) {
  if (ref_check(p, n, utf8, err)) return -1;
  msgpack_zone z;
  if (!msgpack_zone_init(&z, 1024)) return ref_bad(err, "no memory");
  msgpack_object root;
  size_t off = 0;
  int rc;
  if (msgpack_unpack((const char *)p, n, &off, &z, &root) == MSGPACK_UNPACK_SUCCESS) {
    wire_val_t v;
    ref_view(&root, &v);
    rc = fn(&v, arg, err);
  } else {
    rc = ref_bad(err, "unpack failed");
  }
  msgpack_zone_destroy(&z);
  return rc;
}

/* ---- a reader's result as text ----
 * The views walked through their ops (item, each: a non-string key's
 * refusal is part of the text) and the root's to_json (JSON text, or the
 * refusal's code). A refused input is "refused <code>". */

static void mpd_bytes(sw_buf_t *b, const char *p, size_t n) {
  buf_printf(b, "%zu:", n);
  for (size_t i = 0; i < n; i++) buf_printf(b, "%02x", (unsigned char)p[i]);
}

static void mpd_val(sw_buf_t *b, const wire_val_t *v);

static int mpd_field(void *ctx, const char *k, size_t kl, const wire_val_t *v, sw_error_t *err) {
  (void)err;
  sw_buf_t *b = ctx;
  buf_append(b, "k", 1);
  mpd_bytes(b, k, kl);
  buf_append(b, "=", 1);
  mpd_val(b, v);
  return 0;
}

static void mpd_val(sw_buf_t *b, const wire_val_t *v) {
  switch (v->kind) {
  case WIRE_NIL: buf_append(b, "nil ", 4); break;
  case WIRE_BOOL: buf_printf(b, "b%d ", v->b ? 1 : 0); break;
  case WIRE_INT: buf_printf(b, "i%" PRId64 " ", v->i); break;
  case WIRE_REAL: {
    uint64_t bits;
    memcpy(&bits, &v->d, sizeof bits);
    buf_printf(b, "r%016" PRIx64 " ", bits);
    break;
  }
  case WIRE_STR:
  case WIRE_BIN:
    buf_append(b, v->kind == WIRE_STR ? "s" : "x", 1);
    mpd_bytes(b, v->s.p, v->s.len);
    buf_append(b, " ", 1);
    break;
  case WIRE_ARRAY:
    buf_printf(b, "[%zu ", v->n);
    for (size_t i = 0; i < v->n; i++) {
      wire_val_t it;
      v->ops->item(v, i, &it);
      mpd_val(b, &it);
    }
    buf_append(b, "] ", 2);
    break;
  case WIRE_MAP: {
    buf_printf(b, "{%zu ", v->n);
    sw_error_t e2 = {0};
    if (v->ops->each(v, mpd_field, b, &e2)) buf_printf(b, "each-refused %d ", e2.code);
    buf_append(b, "} ", 2);
    break;
  }
  default: buf_append(b, "other ", 6); break;
  }
}

static int mpd_root(const wire_val_t *root, void *arg, sw_error_t *err) {
  (void)err;
  sw_buf_t *b = arg;
  mpd_val(b, root);
  sw_error_t e2 = {0};
  json_t *j = root->ops->to_json(root, &e2);
  if (j) {
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    buf_printf(b, "json %s", s ? s : "(dump failed)");
    free(s);
    json_decref(j);
  } else {
    buf_printf(b, "json-refused %d", e2.code);
  }
  return 0;
}

/* The description of p[0..n) read by the reference (ref) or the server's
 * reader, checking UTF-8 (utf8: codec_msgpack_read) or not
 * (codec_msgpack_read_stored). The caller frees it. */
static char *mpd_describe(bool ref, bool utf8, const uint8_t *p, size_t n) {
  sw_buf_t b = {0};
  sw_error_t err = {0};
  int rc = ref ? ref_msgpack_read(p, n, utf8, mpd_root, &b, &err)
           : utf8 ? codec_msgpack_read(p, n, mpd_root, &b, &err)
                  : codec_msgpack_read_stored(p, n, mpd_root, &b, &err);
  if (rc) {
    b.len = 0;
    buf_printf(&b, "refused %d", err.code);
  }
  buf_append_byte(&b, 0);
  return (char *)buf_steal(&b, NULL);
}

#endif
