/* mpread.c: the receive path's msgpack reader: a frame's bytes to wire.h
 * views (wire_val_t) in one pass, with no allocation per frame.
 *
 * Why not msgpack-c? It walked the frame three times (a structural
 * pre-check, msgpack_unpack into a zone malloc'd per frame, then the
 * views), and in the fan-out benchmark, where one load process
 * receives every delivery of 1,000 subscribers, that was 40 % of the load
 * process's CPU (perf, docs/c-sdk.md "Receive path"). Here the check and the
 * tree are one pass, and the tree is an array of ready-made views kept in
 * the caller's scratch buffer from frame to frame: an array's item is an
 * index, a map's entries are its key and value views side by side.
 *
 * It accepts exactly what the server's codec_msgpack_read accepts (a
 * reader of the same design, which the client does not link; the server's
 * is compared with msgpack-c by fuzz/fuzz_msgpack_read.c) and gives the
 * same views and JSON (fuzz/fuzz_client_mpread.c compares the two on every
 * input): at most SW_CODEC_MAX_DEPTH nested containers, valid UTF-8 in
 * every str, nothing after the value, 0xc1 refused, uint64 above INT64_MAX
 * as a real, ext as WIRE_OTHER. A refusal is 40000, as there; its message
 * may name another of the input's faults (a container claiming more items
 * than bytes are left is found before what lies between).
 *
 * Memory: a container's item slots are reserved when its header is read,
 * and only while every item still due, its own included, has a byte left
 * to be in, so the tree never has more views than the frame has bytes,
 * plus one. */
#include <math.h>
#include <string.h>

#include "internal.h"
#include "proto/textenc.h"
#include "proto/wire.h"

static int mp_bad(sw_error_t *err, const char *why) {
  errors_set(err, SW_E_BAD_REQUEST, "malformed msgpack: %s", why);
  return -1;
}

static uint64_t be(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v = v << 8 | p[i];
  return v;
}

static const wire_reader_ops_t mv_ops;

/* Frames shorter than this many bytes have room for their largest possible
 * tree (one view per byte, plus the root) reserved up front: at most 64 KiB
 * of views, what rx.c keeps between frames (RX_KEEP). */
#define TREE_FIXED (65536 / sizeof(wire_val_t))

/* Most strs (ids, names, serials, JSON text) are ASCII: one OR over 8-byte
 * words, the last one overlapping, then a single test; only a str with a
 * high bit goes to the full UTF-8 check. Calling textenc_utf8_valid on
 * every str was a sixth of a frame's decoding. */
__attribute__((always_inline)) static inline bool str_valid(const uint8_t *p, size_t n) {
  uint64_t acc = 0, w;
  if (n >= 8) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      memcpy(&w, p + i, 8);
      acc |= w;
    }
    memcpy(&w, p + n - 8, 8);
    acc |= w;
  } else if (n >= 4) { /* two 4-byte loads, overlapping */
    uint32_t a, b;
    memcpy(&a, p, 4);
    memcpy(&b, p + n - 4, 4);
    acc = a | b;
  } else if (n) {
    acc = (uint64_t)p[0] | p[n / 2] | p[n - 1];
  }
  return (acc & 0x8080808080808080ull) == 0 || textenc_utf8_valid(p, n);
}

/* A container's items start at node index first; node holds the index
 * while the tree grows (it may move) and the pointer once it is complete. */
static void mv_item(const wire_val_t *arr, size_t i, wire_val_t *out) {
  *out = ((const wire_val_t *)arr->node)[i];
}

static int mv_each(const wire_val_t *map, wire_field_cb cb, void *ctx, sw_error_t *err) {
  const wire_val_t *kv = map->node;
  for (size_t i = 0; i < map->n; i++, kv += 2) {
    if (kv[0].kind != WIRE_STR) return mp_bad(err, "map key is not a string");
    if (cb(ctx, kv[0].s.p, kv[0].s.len, &kv[1], err)) return -1;
  }
  return 0;
}

static int nomem_rc(sw_error_t *err) {
  errors_set(err, SW_E_INTERNAL, "out of memory decoding msgpack");
  return -1;
}

static json_t *nomem(sw_error_t *err) {
  nomem_rc(err);
  return NULL;
}

/* As codec_msgpack.c's mr_json, value for value. Recursion is bounded by
 * the depth limit. */
static json_t *mv_json(const wire_val_t *v, sw_error_t *err) {
  json_t *j = NULL;
  switch (v->kind) {
  case WIRE_NIL: j = json_null(); break;
  case WIRE_BOOL: j = json_boolean(v->b); break;
  case WIRE_INT: j = json_integer((json_int_t)v->i); break;
  case WIRE_REAL:
    if (!isfinite(v->d)) {
      mp_bad(err, "number is not finite");
      return NULL;
    }
    j = json_real(v->d);
    break;
  case WIRE_STR: j = json_stringn_nocheck(v->s.p, v->s.len); break; /* UTF-8 checked when read */
  case WIRE_BIN: {
    sw_buf_t b64 = {0};
    if (textenc_base64_append(&b64, (const uint8_t *)v->s.p, v->s.len) == 0)
      j = json_stringn_nocheck(b64.data ? (const char *)b64.data : "", b64.len);
    buf_free(&b64);
    break;
  }
  case WIRE_ARRAY: {
    json_t *arr = json_array();
    if (!arr) return nomem(err);
    const wire_val_t *it = v->node;
    for (size_t i = 0; i < v->n; i++) {
      json_t *x = mv_json(&it[i], err);
      if (!x) {
        json_decref(arr);
        return NULL;
      }
      if (json_array_append_new(arr, x)) {
        json_decref(arr);
        return nomem(err);
      }
    }
    return arr;
  }
  case WIRE_MAP: {
    json_t *obj = json_object();
    if (!obj) return nomem(err);
    const wire_val_t *kv = v->node;
    for (size_t i = 0; i < v->n; i++, kv += 2) {
      /* jansson's JSON parser refuses NUL in keys; so does codec_msgpack.c. */
      if (kv[0].kind != WIRE_STR || memchr(kv[0].s.p, '\0', kv[0].s.len)) {
        json_decref(obj);
        mp_bad(err, "map key is not a string without NUL");
        return NULL;
      }
      json_t *x = mv_json(&kv[1], err);
      if (!x) {
        json_decref(obj);
        return NULL;
      }
      if (json_object_setn_new_nocheck(obj, kv[0].s.p, kv[0].s.len, x)) {
        json_decref(obj);
        return nomem(err);
      }
    }
    return obj;
  }
  default: mp_bad(err, "ext values are not supported"); return NULL;
  }
  if (!j) return nomem(err);
  return j;
}

static const wire_reader_ops_t mv_ops = {.item = mv_item, .each = mv_each, .to_json = mv_json};

/* Reads the value at p[*i..n) into *v; a container gets its slots reserved
 * in t (v->node = their first index) and *items their number. due is the
 * number of items reserved and not yet read; deep: no further container
 * may open. The checks come in the order codec_msgpack.c's reader makes them. */
static int read_one(const uint8_t *p, size_t n, size_t *i, sw_buf_t *t, size_t slot, size_t due, bool deep,
                    bool fixed, size_t *items, size_t *first, sw_error_t *err) {
  static const char empty[1] = "";
  /* Written in place, field by field: a view built on the stack and then
   * copied was read back before its stores had landed (a store-forwarding
   * stall on every value, half of this function's time). A container's
   * reservation may move t, so its view is found again after it. */
  wire_val_t *v = (wire_val_t *)t->data + slot;
  *items = 0;
  v->kind = WIRE_NIL;
  v->ops = &mv_ops; /* node is set for containers, the only views ops read it of */
  uint8_t b = p[(*i)++];
  size_t left = n - *i;
  const uint8_t *q = p + *i;
  uint64_t len;
  size_t lb = 0; /* length bytes after the type byte */
  int per = 0;   /* container: 1 array, 2 map */
  bool str = false;
  if (b <= 0x7f) {
    v->kind = WIRE_INT;
    v->i = b;
    return 0;
  }
  if (b >= 0xe0) {
    v->kind = WIRE_INT;
    v->i = (int8_t)b;
    return 0;
  }
  if (b <= 0x8f) {
    per = 2, len = b & 0x0f;
  } else if (b <= 0x9f) {
    per = 1, len = b & 0x0f;
  } else if (b <= 0xbf) {
    str = true, len = b & 0x1f;
  } else {
    switch (b) {
    case 0xc0: return 0;
    case 0xc2:
    case 0xc3:
      v->kind = WIRE_BOOL;
      v->b = b == 0xc3;
      return 0;
    case 0xc4: case 0xc5: case 0xc6: lb = (size_t)1 << (b - 0xc4); break;
    case 0xd9: case 0xda: case 0xdb: str = true, lb = (size_t)1 << (b - 0xd9); break;
    case 0xdc: case 0xdd: per = 1, lb = (size_t)2 << (b - 0xdc); break;
    case 0xde: case 0xdf: per = 2, lb = (size_t)2 << (b - 0xde); break;
    case 0xc7: case 0xc8: case 0xc9: { /* ext: length, type, data */
      lb = (size_t)1 << (b - 0xc7);
      if (left < lb) return mp_bad(err, "truncated");
      uint64_t body = be(q, lb) + 1;
      if (body > left - lb) return mp_bad(err, "truncated");
      *i += lb + (size_t)body;
      v->kind = WIRE_OTHER;
      return 0;
    }
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: { /* fixext: type, data */
      size_t body = 1 + ((size_t)1 << (b - 0xd4));
      if (body > left) return mp_bad(err, "truncated");
      *i += body;
      v->kind = WIRE_OTHER;
      return 0;
    }
    case 0xca: case 0xcb: case 0xcc: case 0xcd: case 0xce: case 0xcf:
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
      size_t w = b <= 0xcb ? (size_t)4 << (b - 0xca) : (size_t)1 << ((b - 0xcc) & 3);
      if (w > left) return mp_bad(err, "truncated");
      uint64_t x = be(q, w);
      *i += w;
      if (b == 0xca) {
        uint32_t u = (uint32_t)x;
        float f;
        memcpy(&f, &u, sizeof f);
        v->kind = WIRE_REAL, v->d = f;
      } else if (b == 0xcb) {
        double d;
        memcpy(&d, &x, sizeof d);
        v->kind = WIRE_REAL, v->d = d;
      } else if (b <= 0xcf) {
        if (x > INT64_MAX) v->kind = WIRE_REAL, v->d = (double)x;
        else v->kind = WIRE_INT, v->i = (int64_t)x;
      } else { /* signed: sign-extend from w bytes */
        unsigned shift = (unsigned)(64 - 8 * w);
        v->kind = WIRE_INT;
        v->i = (int64_t)(x << shift) >> shift;
      }
      return 0;
    }
    default: return mp_bad(err, "invalid type byte"); /* 0xc1 */
    }
    if (left < lb) return mp_bad(err, "truncated");
    len = be(q, lb);
    *i += lb;
    left -= lb;
  }
  if (per) {
    /* Every item due, these included, takes at least one byte. */
    if (deep) return mp_bad(err, "nested too deeply");
    if (due + len * (uint64_t)per > left) return mp_bad(err, "truncated");
    size_t k = (size_t)len * (size_t)per;
    if (fixed) {
      /* Room was reserved for n + 1 views, and the check above keeps every
       * view reserved to one byte of the frame: this cannot fail. Were it
       * to, growing would move the tree under the pointers already made. */
      if (k > (t->cap - t->len) / sizeof(wire_val_t)) return mp_bad(err, "truncated");
    } else if (buf_reserve(t, k * sizeof(wire_val_t))) {
      return nomem_rc(err);
    }
    v = (wire_val_t *)t->data + slot;
    v->kind = per == 1 ? WIRE_ARRAY : WIRE_MAP;
    v->n = (size_t)len;
    *first = t->len / sizeof(wire_val_t);
    v->node = fixed ? (const void *)((wire_val_t *)t->data + *first) : (const void *)(uintptr_t)*first;
    t->len += k * sizeof(wire_val_t);
    *items = k;
    return 0;
  }
  if (len > left) return mp_bad(err, "truncated");
  const char *s = len ? (const char *)p + *i : empty;
  if (str && !str_valid(p + *i, (size_t)len)) return mp_bad(err, "str is not UTF-8");
  *i += (size_t)len;
  v->kind = str ? WIRE_STR : WIRE_BIN;
  v->s.p = s;
  v->s.len = (size_t)len;
  return 0;
}

int swc_mp_read(sw_buf_t *scratch, const uint8_t *p, size_t n, swc_mp_root_fn fn, void *arg, sw_error_t *err) {
  /* levels[d]: the next slot to fill at depth d and how many are left. */
  struct {
    size_t next, left;
  } lv[SW_CODEC_MAX_DEPTH + 1];
  sw_buf_t *t = scratch;
  /* A frame shorter than TREE_FIXED gets room for its largest possible tree
   * at once, so the tree never moves and a container's view points at its
   * items from the start (turning indexes into pointers afterwards was a
   * tenth of the reading); a larger one grows as it goes, with indexes
   * turned into pointers at the end. */
  bool fixed = n < TREE_FIXED;
  t->len = 0;
  if (buf_reserve(t, (fixed ? n + 1 : 1) * sizeof(wire_val_t))) return nomem_rc(err);
  t->len = sizeof(wire_val_t);
  int top = 0;
  lv[0].next = 0;
  lv[0].left = 1;
  size_t i = 0, due = 1;
  for (;;) {
    while (top >= 0 && lv[top].left == 0) top--;
    if (top < 0) break;
    if (i >= n) return mp_bad(err, "truncated");
    size_t slot = lv[top].next++;
    lv[top].left--;
    due--;
    uint8_t b0 = p[i];
    if ((b0 & 0xe0) == 0xa0) {
      /* fixstr, most of a frame's values and every key: inline, the same
       * checks as read_one's, in its order. */
      size_t len = b0 & 0x1f;
      if (len > n - i - 1) return mp_bad(err, "truncated");
      if (!str_valid(p + i + 1, len)) return mp_bad(err, "str is not UTF-8");
      wire_val_t *v = (wire_val_t *)t->data + slot;
      v->kind = WIRE_STR;
      v->ops = &mv_ops;
      v->s.p = len ? (const char *)p + i + 1 : "";
      v->s.len = len;
      i += 1 + len;
      continue;
    }
    size_t items, first;
    if (read_one(p, n, &i, t, slot, due, top + 1 > SW_CODEC_MAX_DEPTH, fixed, &items, &first, err)) return -1;
    if (items) {
      top++;
      lv[top].next = first;
      lv[top].left = items;
      due += items;
    }
  }
  if (i != n) return mp_bad(err, "trailing bytes after the value");
  /* The tree is complete and stays where it is: indexes become pointers. */
  wire_val_t *nodes = (wire_val_t *)t->data;
  size_t count = t->len / sizeof(wire_val_t);
  for (size_t k = 0; !fixed && k < count; k++)
    if (nodes[k].kind == WIRE_ARRAY || nodes[k].kind == WIRE_MAP)
      nodes[k].node = nodes + (size_t)(uintptr_t)nodes[k].node;
  return fn(&nodes[0], arg, err);
}
