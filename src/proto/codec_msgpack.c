/* codec_msgpack.c: the msgpack format behind the wire.h interfaces: a
 * one-pass reader of its own making wire_val_t views (msgpack-c's reader
 * is only the fuzzers' reference now), and a packer writing straight into
 * an sw_buf_t (msgpack-c packs doubles). */
#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mp_write.h"
#include "proto/textenc.h"
#include "proto/wire.h"

/* ---- reading ----
 *
 * One pass over the bytes: the checks and the tree together, with no
 * allocation per read. msgpack-c needed three walks (a structural
 * pre-check bounding counts before msgpack_unpack could allocate for
 * them, msgpack_unpack into a zone, then views of its objects); on a
 * durable publish they were ~2.4k of the loop thread's ~19k instructions
 * per message (callgrind). The design follows the C client's reader
 * (client/mpread.c), which the server does not link.
 *
 * What is accepted is what msgpack-c behind that pre-check accepted
 * (fuzz/fuzz_msgpack_read.c compares the two on every input): one value
 * and nothing after it, at most SW_CODEC_MAX_DEPTH nested containers,
 * valid UTF-8 in every str (unless stored: see codec_msgpack_read_stored),
 * 0xc1 refused, uint64 above INT64_MAX as a real, ext as WIRE_OTHER. A
 * refusal is 40000; its message may name another of the input's faults
 * than msgpack-c's did (a container claiming more items than bytes are
 * left is found before what lies between).
 *
 * The tree is an array of ready-made views: an array's items side by
 * side, a map's entries as key and value views side by side, so item()
 * is an index and each() a walk. A container's slots are reserved when
 * its header is read, and only while every item still due, its own
 * included, has a byte left to be in: the tree never has more views than
 * the input has bytes, plus one. */

static const wire_reader_ops_t mr_ops;

static int mp_bad(sw_error_t *err, const char *why) {
  errors_set(err, SW_E_BAD_REQUEST, "malformed msgpack: %s", why);
  return -1;
}

static int mr_nomem(sw_error_t *err) {
  errors_set(err, SW_E_INTERNAL, "out of memory decoding msgpack");
  return -1;
}

static uint64_t be_read(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v = v << 8 | p[i];
  return v;
}

/* Most strs (keys, ids, names, serials, JSON text) are ASCII: one OR over
 * 8-byte words, the last one overlapping, then a single test; only a str
 * with a high bit goes to the full UTF-8 check. */
static inline bool str_valid(const uint8_t *p, size_t n) {
  uint64_t acc = 0, w;
  if (n >= 8) {
    for (size_t i = 0; i + 8 <= n; i += 8) {
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

/* A container's view points at its first item (node). */
static void mr_item(const wire_val_t *arr, size_t i, wire_val_t *out) { *out = ((const wire_val_t *)arr->node)[i]; }

static int mr_each(const wire_val_t *map, wire_field_cb cb, void *ctx, sw_error_t *err) {
  const wire_val_t *kv = map->node;
  for (size_t i = 0; i < map->n; i++, kv += 2) {
    if (kv[0].kind != WIRE_STR) return mp_bad(err, "map key is not a string");
    if (cb(ctx, kv[0].s.p, kv[0].s.len, &kv[1], err)) return -1;
  }
  return 0;
}

static json_t *mr_json_nomem(sw_error_t *err) {
  mr_nomem(err);
  return NULL;
}

/* Recursion is bounded by the depth limit. */
static json_t *mr_json(const wire_val_t *v, sw_error_t *err) {
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
  /* _nocheck here and for keys below: every str was validated as UTF-8
   * when read (a stored blob's strs when they came in), and jansson's own
   * scan of each key and string was a second pass. */
  case WIRE_STR: j = json_stringn_nocheck(v->s.p, v->s.len); break;
  case WIRE_BIN: {
    sw_buf_t b64 = {0};
    if (textenc_base64_append(&b64, (const uint8_t *)v->s.p, v->s.len) == 0)
      j = json_stringn_nocheck(b64.data ? (const char *)b64.data : "", b64.len); /* base64: ASCII */
    buf_free(&b64);
    break;
  }
  case WIRE_ARRAY: {
    json_t *arr = json_array();
    if (!arr) return mr_json_nomem(err);
    const wire_val_t *it = v->node;
    for (size_t i = 0; i < v->n; i++) {
      json_t *x = mr_json(&it[i], err);
      if (!x) {
        json_decref(arr);
        return NULL;
      }
      if (json_array_append_new(arr, x)) {
        json_decref(arr);
        return mr_json_nomem(err);
      }
    }
    return arr;
  }
  case WIRE_MAP: {
    json_t *obj = json_object();
    if (!obj) return mr_json_nomem(err);
    const wire_val_t *kv = v->node;
    for (size_t i = 0; i < v->n; i++, kv += 2) {
      /* jansson's JSON parser refuses NUL in keys; refuse it here too so
       * that both formats accept the same values. */
      if (kv[0].kind != WIRE_STR || memchr(kv[0].s.p, '\0', kv[0].s.len)) {
        json_decref(obj);
        mp_bad(err, "map key is not a string without NUL");
        return NULL;
      }
      json_t *x = mr_json(&kv[1], err);
      if (!x) {
        json_decref(obj);
        return NULL;
      }
      if (json_object_setn_new_nocheck(obj, kv[0].s.p, kv[0].s.len, x)) {
        json_decref(obj);
        return mr_json_nomem(err);
      }
    }
    return obj;
  }
  default: mp_bad(err, "ext values are not supported"); return NULL;
  }
  if (!j) return mr_json_nomem(err);
  return j;
}

static const wire_reader_ops_t mr_ops = {.item = mr_item, .each = mr_each, .to_json = mr_json};

/* Inputs shorter than this many bytes get room for their largest possible
 * tree (one view per byte, plus the root) reserved up front, at most
 * 64 KiB of views: the tree never moves, so a container's view points at
 * its items from the start. A longer input's tree grows as it is read,
 * containers holding their first item's index until the end. */
#define TREE_FIXED (65536 / sizeof(wire_val_t))
/* A thread keeps at most this much tree memory between reads. */
#define TREE_KEEP ((size_t)65536)

typedef struct mr_reader {
  const uint8_t *p;
  size_t n, i;
  sw_buf_t *t;
  size_t due; /* items reserved and not read yet */
  bool fixed, utf8;
} mr_reader_t;

/* Reads the value at r->p[r->i..) into view slot of the tree. deep: no
 * container may open here. A container gets its items' slots reserved:
 * *items their number (0 for anything else), *first the first's index. */
static int read_one(mr_reader_t *r, size_t slot, bool deep, size_t *items, size_t *first, sw_error_t *err) {
  static const char empty[1] = "";
  sw_buf_t *t = r->t;
  /* Written in place, field by field: a view built on the stack and then
   * copied is read back before its stores land (the client's reader
   * measured a store-forwarding stall there). A container's reservation
   * may move t, so its view is found again after it. */
  wire_val_t *v = (wire_val_t *)t->data + slot;
  *items = 0;
  v->kind = WIRE_NIL;
  v->ops = &mr_ops; /* node is set for containers, the only views ops read it of */
  uint8_t b = r->p[r->i++];
  size_t left = r->n - r->i;
  const uint8_t *q = r->p + r->i;
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
      uint64_t body = be_read(q, lb) + 1;
      if (body > left - lb) return mp_bad(err, "truncated");
      r->i += lb + (size_t)body;
      v->kind = WIRE_OTHER;
      return 0;
    }
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: { /* fixext: type, data */
      size_t body = 1 + ((size_t)1 << (b - 0xd4));
      if (body > left) return mp_bad(err, "truncated");
      r->i += body;
      v->kind = WIRE_OTHER;
      return 0;
    }
    case 0xca: case 0xcb: case 0xcc: case 0xcd: case 0xce: case 0xcf:
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
      size_t w = b <= 0xcb ? (size_t)4 << (b - 0xca) : (size_t)1 << ((b - 0xcc) & 3);
      if (w > left) return mp_bad(err, "truncated");
      uint64_t x = be_read(q, w);
      r->i += w;
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
    len = be_read(q, lb);
    r->i += lb;
    left -= lb;
  }
  if (per) {
    if (deep) return mp_bad(err, "nested too deeply");
    /* Every item due, these included, takes at least one byte: checked
     * before anything is reserved for them. */
    if (r->due + len * (uint64_t)per > left) return mp_bad(err, "truncated");
    size_t k = (size_t)len * (size_t)per;
    if (r->fixed) {
      /* Room was reserved for n + 1 views and the check above keeps every
       * view reserved to one byte of the input: this cannot fail. Were it
       * to, growing would move the tree under the pointers already made. */
      if (k > (t->cap - t->len) / sizeof(wire_val_t)) return mp_bad(err, "truncated");
    } else if (buf_reserve(t, k * sizeof(wire_val_t))) {
      return mr_nomem(err);
    }
    v = (wire_val_t *)t->data + slot;
    v->kind = per == 1 ? WIRE_ARRAY : WIRE_MAP;
    v->n = (size_t)len;
    *first = t->len / sizeof(wire_val_t);
    v->node = r->fixed ? (const void *)((wire_val_t *)t->data + *first) : (const void *)(uintptr_t)*first;
    t->len += k * sizeof(wire_val_t);
    *items = k;
    return 0;
  }
  if (len > left) return mp_bad(err, "truncated");
  const uint8_t *s = r->p + r->i;
  if (str && r->utf8 && !str_valid(s, (size_t)len)) return mp_bad(err, "str is not UTF-8");
  r->i += (size_t)len;
  v->kind = str ? WIRE_STR : WIRE_BIN;
  v->s.p = len ? (const char *)s : empty;
  v->s.len = (size_t)len;
  return 0;
}

/* Parses p[0..n) into the tree t (emptied first); *root is its root view. */
static int mr_parse(sw_buf_t *t, const uint8_t *p, size_t n, bool utf8, const wire_val_t **root, sw_error_t *err) {
  /* lv[d]: the next slot to fill at depth d and how many are left. */
  struct {
    size_t next, left;
  } lv[SW_CODEC_MAX_DEPTH + 1];
  mr_reader_t r = {.p = p, .n = n, .t = t, .due = 1, .fixed = n < TREE_FIXED, .utf8 = utf8};
  t->len = 0;
  if (buf_reserve(t, (r.fixed ? n + 1 : 1) * sizeof(wire_val_t))) return mr_nomem(err);
  t->len = sizeof(wire_val_t);
  int top = 0;
  lv[0].next = 0;
  lv[0].left = 1;
  for (;;) {
    while (top >= 0 && lv[top].left == 0) top--;
    if (top < 0) break;
    if (r.i >= n) return mp_bad(err, "truncated");
    size_t slot = lv[top].next++;
    lv[top].left--;
    r.due--;
    uint8_t b0 = p[r.i];
    if ((b0 & 0xe0) == 0xa0) {
      /* fixstr, every key and most values: inline, read_one's checks in
       * its order. */
      size_t len = b0 & 0x1f;
      if (len > n - r.i - 1) return mp_bad(err, "truncated");
      if (utf8 && !str_valid(p + r.i + 1, len)) return mp_bad(err, "str is not UTF-8");
      wire_val_t *v = (wire_val_t *)t->data + slot;
      v->kind = WIRE_STR;
      v->ops = &mr_ops;
      v->s.p = len ? (const char *)p + r.i + 1 : "";
      v->s.len = len;
      r.i += 1 + len;
      continue;
    }
    size_t items, first;
    if (read_one(&r, slot, top + 1 > SW_CODEC_MAX_DEPTH, &items, &first, err)) return -1;
    if (items) {
      top++;
      lv[top].next = first;
      lv[top].left = items;
      r.due += items;
    }
  }
  if (r.i != n) return mp_bad(err, "trailing bytes after the value");
  /* The tree is complete and stays where it is: indexes become pointers. */
  wire_val_t *nodes = (wire_val_t *)t->data;
  size_t count = t->len / sizeof(wire_val_t);
  for (size_t k = 0; !r.fixed && k < count; k++)
    if (nodes[k].kind == WIRE_ARRAY || nodes[k].kind == WIRE_MAP)
      nodes[k].node = nodes + (size_t)(uintptr_t)nodes[k].node;
  *root = nodes;
  return 0;
}

/* One tree per thread, kept between reads (up to TREE_KEEP bytes): a read
 * then costs no malloc and free. A read inside a read (a stored blob
 * decoded while a frame is) finds the thread's tree busy and uses one of
 * its own. The key's destructor frees a thread's tree when it ends. */
typedef struct tree_slot {
  sw_buf_t t;
  bool busy;
} tree_slot_t;

static pthread_key_t tree_key;
static pthread_once_t tree_once = PTHREAD_ONCE_INIT;
static bool tree_key_ok;

static void tree_slot_free(void *p) {
  tree_slot_t *s = p;
  buf_free(&s->t);
  free(s);
}

static void tree_key_init(void) { tree_key_ok = pthread_key_create(&tree_key, tree_slot_free) == 0; }

/* The thread's tree slot, marked busy, or NULL (busy, or no memory). */
static tree_slot_t *tree_take(void) {
  if (pthread_once(&tree_once, tree_key_init) || !tree_key_ok) return NULL;
  tree_slot_t *s = pthread_getspecific(tree_key);
  if (!s) {
    if (!(s = malloc(sizeof *s))) return NULL;
    *s = (tree_slot_t){0};
    if (pthread_setspecific(tree_key, s)) {
      free(s);
      return NULL;
    }
  }
  if (s->busy) return NULL;
  s->busy = true;
  return s;
}

static int read_tree(const uint8_t *p, size_t n, bool utf8, wire_root_fn fn, void *arg, sw_error_t *err) {
  tree_slot_t *slot = tree_take();
  sw_buf_t own = {0}, *t = slot ? &slot->t : &own;
  const wire_val_t *root;
  int rc = mr_parse(t, p, n, utf8, &root, err);
  if (rc == 0) rc = fn(root, arg, err);
  if (!slot || t->cap > TREE_KEEP) buf_free(t);
  if (slot) slot->busy = false;
  return rc;
}

int codec_msgpack_read(const uint8_t *p, size_t n, wire_root_fn fn, void *arg, sw_error_t *err) {
  return read_tree(p, n, true, fn, arg, err);
}

int codec_msgpack_read_stored(const uint8_t *p, size_t n, wire_root_fn fn, void *arg, sw_error_t *err) {
  return read_tree(p, n, false, fn, arg, err);
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
