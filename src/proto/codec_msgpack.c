/* codec_msgpack.c: the msgpack format (msgpack-c) behind the wire.h
 * interfaces: a structural pre-check, msgpack_unpack into a zone seen as
 * wire_val_t views, and a packer writing straight into an sw_buf_t. */
#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "proto/textenc.h"
#include "proto/wire.h"

/* ---- pre-check ---- */

static int mp_bad(sw_error_t *err, const char *why) {
  errors_set(err, SW_E_BAD_REQUEST, "malformed msgpack: %s", why);
  return -1;
}

static uint64_t be_read(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v = v << 8 | p[i];
  return v;
}

/* The shape of a msgpack value, from its type byte. */
typedef struct mp_head {
  uint8_t len_bytes; /* big-endian length/count that follows the type byte */
  uint8_t fixed;     /* payload bytes implied by the type (ext: + type byte) */
  uint8_t per_item;  /* containers: 1 array, 2 map; 0 otherwise */
  bool str;
  uint32_t count; /* fixmap/fixarray item count, fixstr length */
} mp_head_t;

static bool mp_head(uint8_t b, mp_head_t *h) {
  *h = (mp_head_t){0};
  if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return true;
  if (b <= 0x8f) return h->per_item = 2, h->count = b & 0x0f, true;
  if (b <= 0x9f) return h->per_item = 1, h->count = b & 0x0f, true;
  if (b <= 0xbf) return h->str = true, h->fixed = b & 0x1f, true;
  static const uint8_t pow2[] = {1, 2, 4, 8, 16};
  if (b >= 0xc4 && b <= 0xc6) return h->len_bytes = pow2[b - 0xc4], true;                /* bin */
  if (b >= 0xc7 && b <= 0xc9) return h->len_bytes = pow2[b - 0xc7], h->fixed = 1, true;  /* ext */
  if (b == 0xca || b == 0xcb) return h->fixed = pow2[b - 0xc8], true;                     /* float */
  if (b >= 0xcc && b <= 0xcf) return h->fixed = pow2[b - 0xcc], true;                     /* uint */
  if (b >= 0xd0 && b <= 0xd3) return h->fixed = pow2[b - 0xd0], true;                     /* int */
  if (b >= 0xd4 && b <= 0xd8) return h->fixed = (uint8_t)(1 + pow2[b - 0xd4]), true;     /* fixext */
  if (b >= 0xd9 && b <= 0xdb) return h->len_bytes = pow2[b - 0xd9], h->str = true, true; /* str */
  if (b == 0xdc || b == 0xdd) return h->len_bytes = pow2[b - 0xdb], h->per_item = 1, true;
  if (b == 0xde || b == 0xdf) return h->len_bytes = pow2[b - 0xdd], h->per_item = 2, true;
  return false; /* 0xc1 is never used */
}

/* Walks one value without allocating and checks what msgpack_unpack would
 * not check before allocating: at most SW_CODEC_MAX_DEPTH nested
 * containers, no container claiming more items than there are bytes left (a
 * 5-byte input could otherwise make it allocate gigabytes), valid UTF-8 in
 * every str (unless utf8 is false), and nothing after the value. */
static int mp_check(const uint8_t *p, size_t n, bool utf8, sw_error_t *err) {
  size_t left[SW_CODEC_MAX_DEPTH + 1]; /* items still due at each open level */
  int top = 0;
  left[0] = 1;
  size_t i = 0;
  for (;;) {
    while (top >= 0 && left[top] == 0) top--;
    if (top < 0) break;
    left[top]--;
    mp_head_t h;
    if (i >= n) return mp_bad(err, "truncated");
    if (!mp_head(p[i++], &h)) return mp_bad(err, "invalid type byte");
    if (n - i < h.len_bytes) return mp_bad(err, "truncated");
    uint64_t len = h.len_bytes ? be_read(p + i, h.len_bytes) : h.count;
    i += h.len_bytes;
    if (h.per_item) {
      if (top + 1 > SW_CODEC_MAX_DEPTH) return mp_bad(err, "nested too deeply");
      /* Every item takes at least one byte. */
      if (len * h.per_item > n - i) return mp_bad(err, "truncated");
      if (len) left[++top] = (size_t)(len * h.per_item);
      continue;
    }
    uint64_t body = (h.len_bytes ? len : 0) + h.fixed;
    if (body > n - i) return mp_bad(err, "truncated");
    if (utf8 && h.str && !textenc_utf8_valid(p + i, (size_t)body)) return mp_bad(err, "str is not UTF-8");
    i += (size_t)body;
  }
  if (i != n) return mp_bad(err, "trailing bytes after the value");
  return 0;
}

/* ---- reading ---- */

static const wire_reader_ops_t mr_ops;

/* msgpack-c leaves the pointer of an empty str/bin NULL. */
static const char *mr_ptr(const char *p) { return p ? p : ""; }

static void mr_view(const msgpack_object *o, wire_val_t *v) {
  v->ops = &mr_ops;
  v->node = o;
  switch (o->type) {
  case MSGPACK_OBJECT_NIL: v->kind = WIRE_NIL; break;
  case MSGPACK_OBJECT_BOOLEAN:
    v->kind = WIRE_BOOL;
    v->b = o->via.boolean;
    break;
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
    if (o->via.u64 > INT64_MAX) {
      v->kind = WIRE_REAL;
      v->d = (double)o->via.u64;
    } else {
      v->kind = WIRE_INT;
      v->i = (int64_t)o->via.u64;
    }
    break;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    v->kind = WIRE_INT;
    v->i = o->via.i64;
    break;
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64:
    v->kind = WIRE_REAL;
    v->d = o->via.f64;
    break;
  case MSGPACK_OBJECT_STR:
    v->kind = WIRE_STR;
    v->s.p = mr_ptr(o->via.str.ptr);
    v->s.len = o->via.str.size;
    break;
  case MSGPACK_OBJECT_BIN:
    v->kind = WIRE_BIN;
    v->s.p = mr_ptr(o->via.bin.ptr);
    v->s.len = o->via.bin.size;
    break;
  case MSGPACK_OBJECT_ARRAY:
    v->kind = WIRE_ARRAY;
    v->n = o->via.array.size;
    break;
  case MSGPACK_OBJECT_MAP:
    v->kind = WIRE_MAP;
    v->n = o->via.map.size;
    break;
  default: v->kind = WIRE_OTHER; break;
  }
}

static void mr_item(const wire_val_t *arr, size_t i, wire_val_t *out) {
  const msgpack_object *o = arr->node;
  mr_view(&o->via.array.ptr[i], out);
}

static int mr_each(const wire_val_t *map, wire_field_cb cb, void *ctx, sw_error_t *err) {
  const msgpack_object *o = map->node;
  for (uint32_t i = 0; i < o->via.map.size; i++) {
    const msgpack_object_kv *kv = &o->via.map.ptr[i];
    if (kv->key.type != MSGPACK_OBJECT_STR) return mp_bad(err, "map key is not a string");
    wire_val_t v;
    mr_view(&kv->val, &v);
    if (cb(ctx, mr_ptr(kv->key.via.str.ptr), kv->key.via.str.size, &v, err)) return -1;
  }
  return 0;
}

static json_t *mr_json(const msgpack_object *o, sw_error_t *err);

static json_t *mr_json_map(const msgpack_object *o, sw_error_t *err) {
  json_t *obj = json_object();
  if (!obj) goto nomem;
  for (uint32_t i = 0; i < o->via.map.size; i++) {
    const msgpack_object_kv *kv = &o->via.map.ptr[i];
    /* jansson's JSON parser refuses NUL in keys; refuse it here too so that
     * both formats accept the same values. */
    if (kv->key.type != MSGPACK_OBJECT_STR ||
        memchr(mr_ptr(kv->key.via.str.ptr), '\0', kv->key.via.str.size)) {
      json_decref(obj);
      mp_bad(err, "map key is not a string without NUL");
      return NULL;
    }
    json_t *val = mr_json(&kv->val, err);
    if (!val) {
      json_decref(obj);
      return NULL;
    }
    /* _nocheck here and for strs below: mp_check validated every str as
     * UTF-8 (a stored blob's strs were validated when they came in), and
     * jansson's own scan of each key and string was a second pass. */
    if (json_object_setn_new_nocheck(obj, mr_ptr(kv->key.via.str.ptr), kv->key.via.str.size, val)) {
      json_decref(obj);
      goto nomem;
    }
  }
  return obj;
nomem:
  errors_set(err, SW_E_INTERNAL, "out of memory decoding msgpack");
  return NULL;
}

static json_t *mr_json_array(const msgpack_object *o, sw_error_t *err) {
  json_t *arr = json_array();
  if (!arr) goto nomem;
  for (uint32_t i = 0; i < o->via.array.size; i++) {
    json_t *val = mr_json(&o->via.array.ptr[i], err);
    if (!val) {
      json_decref(arr);
      return NULL;
    }
    if (json_array_append_new(arr, val)) {
      json_decref(arr);
      goto nomem;
    }
  }
  return arr;
nomem:
  errors_set(err, SW_E_INTERNAL, "out of memory decoding msgpack");
  return NULL;
}

/* Recursion is bounded by mp_check's depth limit. */
static json_t *mr_json(const msgpack_object *o, sw_error_t *err) {
  json_t *j = NULL;
  switch (o->type) {
  case MSGPACK_OBJECT_NIL: j = json_null(); break;
  case MSGPACK_OBJECT_BOOLEAN: j = json_boolean(o->via.boolean); break;
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
    j = o->via.u64 > INT64_MAX ? json_real((double)o->via.u64)
                               : json_integer((json_int_t)o->via.u64);
    break;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER: j = json_integer(o->via.i64); break;
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64:
    if (!isfinite(o->via.f64)) {
      mp_bad(err, "number is not finite");
      return NULL;
    }
    j = json_real(o->via.f64);
    break;
  case MSGPACK_OBJECT_STR: j = json_stringn_nocheck(mr_ptr(o->via.str.ptr), o->via.str.size); break;
  case MSGPACK_OBJECT_BIN: {
    sw_buf_t b64 = {0};
    if (textenc_base64_append(&b64, (const uint8_t *)o->via.bin.ptr, o->via.bin.size) == 0)
      j = json_stringn_nocheck(b64.data ? (const char *)b64.data : "", b64.len); /* base64: ASCII */
    buf_free(&b64);
    break;
  }
  case MSGPACK_OBJECT_ARRAY: return mr_json_array(o, err);
  case MSGPACK_OBJECT_MAP: return mr_json_map(o, err);
  default: mp_bad(err, "ext values are not supported"); return NULL;
  }
  if (!j) errors_set(err, SW_E_INTERNAL, "out of memory decoding msgpack");
  return j;
}

static json_t *mr_to_json(const wire_val_t *v, sw_error_t *err) { return mr_json(v->node, err); }

static const wire_reader_ops_t mr_ops = {
    .item = mr_item,
    .each = mr_each,
    .to_json = mr_to_json,
};

#define ZONE_FIRST_CHUNK (1024 - sizeof(void *))

static int read_checked(const uint8_t *p, size_t n, bool utf8, wire_root_fn fn, void *arg, sw_error_t *err);

int codec_msgpack_read(const uint8_t *p, size_t n, wire_root_fn fn, void *arg, sw_error_t *err) {
  return read_checked(p, n, true, fn, arg, err);
}

int codec_msgpack_read_stored(const uint8_t *p, size_t n, wire_root_fn fn, void *arg, sw_error_t *err) {
  return read_checked(p, n, false, fn, arg, err);
}

/* One zone per thread, kept between reads and cleared after each (back to
 * its first chunk): a read then costs no malloc and free of the zone (an
 * AI append's frame was two, ~240 instructions, more when glibc took a slow
 * path). A read inside a read (a stored blob decoded while a frame is)
 * finds the thread's zone busy and uses one of its own. The key's
 * destructor frees a thread's zone when the thread ends. */
typedef struct zone_slot {
  msgpack_zone z;
  bool busy;
} zone_slot_t;

static pthread_key_t zone_key;
static pthread_once_t zone_once = PTHREAD_ONCE_INIT;
static bool zone_key_ok;

static void zone_slot_free(void *p) {
  zone_slot_t *s = p;
  msgpack_zone_destroy(&s->z);
  free(s);
}

static void zone_key_init(void) { zone_key_ok = pthread_key_create(&zone_key, zone_slot_free) == 0; }

/* The thread's zone, marked busy, or NULL (busy, or no memory). */
static zone_slot_t *zone_take(void) {
  if (pthread_once(&zone_once, zone_key_init) || !zone_key_ok) return NULL;
  zone_slot_t *s = pthread_getspecific(zone_key);
  if (!s) {
    if (!(s = malloc(sizeof *s))) return NULL;
    if (!msgpack_zone_init(&s->z, ZONE_FIRST_CHUNK)) {
      free(s);
      return NULL;
    }
    s->busy = false;
    if (pthread_setspecific(zone_key, s)) {
      zone_slot_free(s);
      return NULL;
    }
  }
  if (s->busy) return NULL;
  s->busy = true;
  return s;
}

static int read_checked(const uint8_t *p, size_t n, bool utf8, wire_root_fn fn, void *arg, sw_error_t *err) {
  if (mp_check(p, n, utf8, err)) return -1;
  zone_slot_t *slot = zone_take();
  msgpack_zone own, *zp = slot ? &slot->z : &own;
  /* A first chunk glibc serves from its per-thread cache (<= 1032 bytes),
   * enough for a typical message's object tree; the zone grows if not.
   * The default (8 KiB) went through malloc's slow paths on every frame
   * (measured: 6 % of the loop thread under the AI benchmark). */
  if (!slot && !msgpack_zone_init(&own, ZONE_FIRST_CHUNK)) {
    errors_set(err, SW_E_INTERNAL, "out of memory decoding msgpack");
    return -1;
  }
  /* str/bin objects point into p, which outlives the zone. */
  msgpack_object root;
  size_t off = 0;
  msgpack_unpack_return r = msgpack_unpack((const char *)p, n, &off, zp, &root);
  int rc;
  if (r == MSGPACK_UNPACK_SUCCESS) {
    wire_val_t v;
    mr_view(&root, &v);
    rc = fn(&v, arg, err);
  } else if (r == MSGPACK_UNPACK_NOMEM_ERROR) {
    rc = -1;
    errors_set(err, SW_E_INTERNAL, "out of memory decoding msgpack");
  } else {
    rc = mp_bad(err, "unpack failed");
  }
  if (slot) {
    msgpack_zone_clear(&slot->z);
    slot->busy = false;
  } else {
    msgpack_zone_destroy(&own);
  }
  return rc;
}

/* ---- writing ---- */

static int mw_write(void *data, const char *buf, size_t len) { return buf_append(data, buf, len); }

static msgpack_packer mw_packer(wire_writer_t *w) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, w->out, mw_write);
  return pk;
}

/* The writer packs straight into the buffer, in the same bytes as
 * msgpack-c's packer (the smallest form of each header): the packer's
 * callback per header and per body, two calls through a pointer for every
 * key and string, was a tenth of an AI append's instructions (measured). */

/* Room for n more bytes at the end of b, or NULL. */
static inline uint8_t *mp_room(sw_buf_t *b, size_t n) { return buf_reserve(b, n) ? NULL : b->data + b->len; }

/* Writes tag and the low n bytes of v big-endian at p; returns the length. */
static inline size_t mp_be(uint8_t *p, uint8_t tag, uint64_t v, size_t n) {
  p[0] = tag;
  for (size_t i = 0; i < n; i++) p[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
  return 1 + n;
}

/* A str or bin: header then body. fix: the fixstr base (0 for bin, which
 * has none); tag8/16/32 the longer forms. */
static int mp_raw(sw_buf_t *b, uint8_t fix, uint8_t tag8, uint8_t tag16, uint8_t tag32, const void *body,
                  size_t n) {
  if (n > UINT32_MAX) return -EINVAL;
  uint8_t *p = mp_room(b, 5 + n);
  if (!p) return -ENOMEM;
  size_t hn = fix && n < 32 ? (p[0] = (uint8_t)(fix | n), 1)
              : n < 256     ? mp_be(p, tag8, n, 1)
              : n < 65536   ? mp_be(p, tag16, n, 2)
                            : mp_be(p, tag32, n, 4);
  if (n) memcpy(p + hn, body, n);
  b->len += hn + n;
  return 0;
}

/* Keys and most strings are short: the fixstr path is kept small. */
static inline int mp_str(sw_buf_t *b, const char *s, size_t n) {
  if (n >= 32) return mp_raw(b, 0xa0, 0xd9, 0xda, 0xdb, s, n);
  uint8_t *p = mp_room(b, 1 + n);
  if (!p) return -ENOMEM;
  p[0] = (uint8_t)(0xa0 | n);
  memcpy(p + 1, s, n);
  b->len += 1 + n;
  return 0;
}

/* A map or array header: fix base, 16- and 32-bit tags. */
static int mp_count(sw_buf_t *b, uint8_t fix, uint8_t tag16, uint8_t tag32, size_t n) {
  if (n > UINT32_MAX) return -EINVAL;
  uint8_t *p = mp_room(b, 5);
  if (!p) return -ENOMEM;
  b->len += n < 16 ? (p[0] = (uint8_t)(fix | n), 1) : n < 65536 ? mp_be(p, tag16, n, 2) : mp_be(p, tag32, n, 4);
  return 0;
}

static int mp_i64(sw_buf_t *b, int64_t d) {
  uint8_t *p = mp_room(b, 9);
  if (!p) return -ENOMEM;
  uint64_t u = (uint64_t)d;
  size_t n;
  if (d >= -32 && d < 128)
    p[0] = (uint8_t)d, n = 1;
  else if (d < 0)
    n = d >= -128      ? mp_be(p, 0xd0, u, 1)
        : d >= -32768  ? mp_be(p, 0xd1, u, 2)
        : d >= INT32_MIN ? mp_be(p, 0xd2, u, 4)
                         : mp_be(p, 0xd3, u, 8);
  else
    n = d < 256           ? mp_be(p, 0xcc, u, 1)
        : d < 65536       ? mp_be(p, 0xcd, u, 2)
        : d <= UINT32_MAX ? mp_be(p, 0xce, u, 4)
                          : mp_be(p, 0xcf, u, 8);
  b->len += n;
  return 0;
}

/* See codec.h. Keys in encode_pmsg's order (wire_encode.c), each header
 * in its smallest form, as mp_i64 and mp_str write them. */
size_t codec_ack_msgpack(uint8_t *out, int action, int64_t msg_serial, const char *serial) {
  size_t slen = serial ? strlen(serial) : 32;
  if (msg_serial < 0 || slen >= 32 || action < 0 || action >= 128) return 0;
  static const uint8_t head[] = {0x84, 0xa6, 'a', 'c', 't', 'i', 'o', 'n'};
  static const uint8_t mid[] = {0xa5, 'c', 'o', 'u', 'n', 't', 0x01, 0xa9, 'm', 's', 'g', 'S', 'e', 'r', 'i', 'a', 'l'};
  static const uint8_t res[] = {0xa3, 'r', 'e', 's', 0x91, 0x81, 0xa7, 's', 'e', 'r', 'i', 'a', 'l', 's', 0x91};
  uint8_t *p = out;
  memcpy(p, head, sizeof head), p += sizeof head;
  *p++ = (uint8_t)action;
  memcpy(p, mid, sizeof mid), p += sizeof mid;
  uint64_t u = (uint64_t)msg_serial;
  p += u < 128 ? (*p = (uint8_t)u, 1)
       : u < 256 ? mp_be(p, 0xcc, u, 1)
       : u < 65536 ? mp_be(p, 0xcd, u, 2)
       : u <= UINT32_MAX ? mp_be(p, 0xce, u, 4)
                         : mp_be(p, 0xcf, u, 8);
  memcpy(p, res, sizeof res), p += sizeof res;
  *p++ = (uint8_t)(0xa0 | slen);
  memcpy(p, serial, slen), p += slen;
  return (size_t)(p - out);
}

static int mp_byte(sw_buf_t *b, uint8_t c) { return buf_append_byte(b, c); }

/* The entry count is known only at close: reserve a fixmap byte and widen
 * it to map16 in the (never seen in practice) case of more than 15. */
static int mw_map_open(wire_writer_t *w, size_t *mark) {
  *mark = w->out->len;
  return buf_append_byte(w->out, 0x80);
}

static int mw_map_close(wire_writer_t *w, size_t mark, size_t n) {
  sw_buf_t *b = w->out;
  if (n <= 15) {
    b->data[mark] = (uint8_t)(0x80 | n);
    return 0;
  }
  if (n > 0xffff) return -EINVAL;
  if (buf_reserve(b, 2)) return -ENOMEM;
  memmove(b->data + mark + 3, b->data + mark + 1, b->len - mark - 1);
  b->data[mark] = 0xde;
  b->data[mark + 1] = (uint8_t)(n >> 8);
  b->data[mark + 2] = (uint8_t)n;
  b->len += 2;
  return 0;
}

static int mw_array_open(wire_writer_t *w, size_t n) { return mp_count(w->out, 0x90, 0xdc, 0xdd, n); }

static int mw_array_close(wire_writer_t *w) {
  (void)w;
  return 0;
}

static int mw_str(wire_writer_t *w, const char *s, size_t n) { return mp_str(w->out, s, n); }

static int mw_bin(wire_writer_t *w, const uint8_t *p, size_t n) { return mp_raw(w->out, 0, 0xc4, 0xc5, 0xc6, p, n); }

static int mw_i64(wire_writer_t *w, int64_t v) { return mp_i64(w->out, v); }

static int mw_nil(wire_writer_t *w) { return mp_byte(w->out, 0xc0); }

/* Callers' trees may be arbitrary; this only stops a cyclic one. */
#define MW_MAX_DEPTH 256

static int mw_value(wire_writer_t *w, const json_t *j, int depth) {
  if (depth > MW_MAX_DEPTH) return -EINVAL;
  sw_buf_t *b = w->out;
  switch (json_typeof(j)) {
  case JSON_OBJECT: {
    const char *key;
    size_t klen;
    json_t *val;
    if (mp_count(b, 0x80, 0xde, 0xdf, json_object_size(j))) return -ENOMEM;
    json_object_keylen_foreach((json_t *)j, key, klen, val) {
      if (mp_str(b, key, klen)) return -ENOMEM;
      int rc = mw_value(w, val, depth + 1);
      if (rc) return rc;
    }
    return 0;
  }
  case JSON_ARRAY:
    if (mp_count(b, 0x90, 0xdc, 0xdd, json_array_size(j))) return -ENOMEM;
    for (size_t i = 0; i < json_array_size(j); i++) {
      int rc = mw_value(w, json_array_get(j, i), depth + 1);
      if (rc) return rc;
    }
    return 0;
  case JSON_STRING: return mp_str(b, json_string_value(j), json_string_length(j)) ? -ENOMEM : 0;
  case JSON_INTEGER: return mp_i64(b, json_integer_value(j)) ? -ENOMEM : 0;
  case JSON_REAL: {
    msgpack_packer pk = mw_packer(w);
    return msgpack_pack_double(&pk, json_real_value(j)) ? -ENOMEM : 0;
  }
  case JSON_TRUE: return mp_byte(b, 0xc3) ? -ENOMEM : 0;
  case JSON_FALSE: return mp_byte(b, 0xc2) ? -ENOMEM : 0;
  default: return mp_byte(b, 0xc0) ? -ENOMEM : 0;
  }
}

static int mw_json(wire_writer_t *w, const json_t *v) { return mw_value(w, v, 0); }

static const wire_writer_ops_t mw_ops = {
    .map_open = mw_map_open,
    .map_close = mw_map_close,
    .array_open = mw_array_open,
    .array_close = mw_array_close,
    .key = mw_str,
    .str = mw_str,
    .bin = mw_bin,
    .i64 = mw_i64,
    .nil = mw_nil,
    .json = mw_json,
};

void codec_msgpack_writer_init(wire_writer_t *w, sw_buf_t *out) {
  *w = (wire_writer_t){.ops = &mw_ops, .out = out};
}
