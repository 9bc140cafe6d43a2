/* wire.h: the format-neutral layer shared by the JSON and msgpack codecs.
 *
 * Decoding: each format parses its input into its own tree (json_t, or
 * codec_msgpack.c's array of views) and exposes nodes as wire_val_t views; wire_decode.c maps
 * such a tree onto the pmsg.h structs once for both formats. A view borrows
 * from the tree and is valid only while the format's read function runs.
 *
 * Encoding: wire_encode.c walks the structs once and drives a
 * wire_writer_t whose ops emit JSON text or msgpack into an sw_buf_t.
 *
 * Internal to src/proto; the public API is codec.h. */
#ifndef SW_PROTO_WIRE_H
#define SW_PROTO_WIRE_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/codec.h"
#include "proto/errors.h"
#include "proto/pmsg.h"
#include "util/buf.h"

/* ---- reading ---- */

typedef enum {
  WIRE_NIL,
  WIRE_BOOL,
  WIRE_INT,
  WIRE_REAL, /* also msgpack uint64 above INT64_MAX */
  WIRE_STR,  /* valid UTF-8, may contain NUL */
  WIRE_BIN,  /* msgpack only */
  WIRE_ARRAY,
  WIRE_MAP,
  WIRE_OTHER, /* msgpack ext */
} wire_kind_t;

typedef struct wire_reader_ops wire_reader_ops_t;

typedef struct wire_val {
  wire_kind_t kind;
  const wire_reader_ops_t *ops;
  const void *node; /* the format's node, for ops */
  union {
    bool b;
    int64_t i;
    double d;
    struct {
      const char *p; /* not NUL-terminated */
      size_t len;
    } s;
    size_t n; /* ARRAY/MAP: number of items/entries */
  };
} wire_val_t;

/* Called for each map entry; returns 0 to go on or -1 with *err set. */
typedef int (*wire_field_cb)(void *ctx, const char *key, size_t klen, const wire_val_t *v,
                             sw_error_t *err);

struct wire_reader_ops {
  /* Item i (< arr->n) of an array. */
  void (*item)(const wire_val_t *arr, size_t i, wire_val_t *out);
  /* Calls cb for every entry of a map, stopping at the first failure. A
   * non-string key is malformed (40000). */
  int (*each)(const wire_val_t *map, wire_field_cb cb, void *ctx, sw_error_t *err);
  /* A new json_t reference for v (bin becomes a base64 string), or NULL with
   * *err set (40000) when v has no JSON equivalent. */
  json_t *(*to_json)(const wire_val_t *v, sw_error_t *err);
};

/* Parses one complete value of the format (depth checked before allocating),
 * then calls fn with its root view; returns fn's result, or -1 with *err set
 * (40000) if the input is malformed. */
typedef int (*wire_root_fn)(const wire_val_t *root, void *arg, sw_error_t *err);
int codec_json_read(const uint8_t *p, size_t n, wire_root_fn fn, void *arg, sw_error_t *err);
int codec_msgpack_read(const uint8_t *p, size_t n, wire_root_fn fn, void *arg, sw_error_t *err);
/* The same for the storage form, which only codec_msg_to_blob writes, from
 * messages whose strings were checked when they came in: every bound is
 * still checked, but strs are not checked again for UTF-8. That check ran
 * over a whole head on every fold of an append (its cost grew with the
 * message: most of the store thread's time per append, measured). */
int codec_msgpack_read_stored(const uint8_t *p, size_t n, wire_root_fn fn, void *arg, sw_error_t *err);

/* ---- field checks ----
 * Shared by wire_decode.c and the C client's receive path (client/rx.c),
 * which reads MESSAGE and ACK from the tree itself and must accept and
 * refuse exactly what wire_decode.c does. Each returns 0, or -1 with *err
 * set (40000). */

#define WIRE_KEY_IS(k, kl, lit) ((kl) == sizeof(lit) - 1 && memcmp((k), (lit), sizeof(lit) - 1) == 0)

static inline int wire_bad_field(sw_error_t *err, const char *field, const char *why) {
  errors_set(err, SW_E_BAD_REQUEST, "invalid '%s': %s", field, why);
  return -1;
}

static inline int wire_no_memory(sw_error_t *err) {
  errors_set(err, SW_E_INTERNAL, "out of memory decoding message");
  return -1;
}

/* Ids, names and the like: null is absent; else a string without NUL, and
 * not given already (a repeated msgpack key). */
static inline int wire_check_str(const wire_val_t *v, const char *field, bool given, sw_error_t *err) {
  if (v->kind == WIRE_NIL) return 0;
  if (v->kind != WIRE_STR) return wire_bad_field(err, field, "expected a string");
  if (memchr(v->s.p, '\0', v->s.len)) return wire_bad_field(err, field, "contains NUL");
  if (given) return wire_bad_field(err, field, "given twice");
  return 0;
}

/* Integers, or reals with an integral value (JSON clients and some msgpack
 * encoders write large integers as doubles); null is absent. */
static inline int wire_take_i64(const wire_val_t *v, const char *field, int64_t *dst, bool *has, sw_error_t *err) {
  switch (v->kind) {
  case WIRE_NIL: return 0;
  case WIRE_INT: *dst = v->i; break;
  case WIRE_REAL:
    /* 2^63 is exact as a double; the comparison also rejects NaN. */
    if (!(v->d >= -9223372036854775808.0 && v->d < 9223372036854775808.0) || (double)(int64_t)v->d != v->d)
      return wire_bad_field(err, field, "expected an integer");
    *dst = (int64_t)v->d;
    break;
  default: return wire_bad_field(err, field, "expected an integer");
  }
  if (has) *has = true;
  return 0;
}

static inline int wire_take_int(const wire_val_t *v, const char *field, int *dst, bool *has, sw_error_t *err) {
  int64_t x = 0;
  bool got = false;
  if (wire_take_i64(v, field, &x, &got, err)) return -1;
  if (!got) return 0;
  if (x < INT_MIN || x > INT_MAX) return wire_bad_field(err, field, "out of range");
  *dst = (int)x;
  if (has) *has = true;
  return 0;
}

/* An object field (extras, version...): null is absent; given once. */
static inline int wire_check_object(const wire_val_t *v, const char *field, bool given, sw_error_t *err) {
  if (v->kind == WIRE_NIL) return 0;
  if (v->kind != WIRE_MAP) return wire_bad_field(err, field, "expected an object");
  if (given) return wire_bad_field(err, field, "given twice");
  return 0;
}

/* An array field and its size: *n is 0 for null; at most
 * SW_CODEC_MAX_MESSAGES entries. Whether it was given already (a non-empty
 * one, null included after it, is refused) is the caller's next check. */
static inline int wire_want_array(const wire_val_t *v, const char *field, size_t *n, sw_error_t *err) {
  *n = 0;
  if (v->kind == WIRE_NIL) return 0;
  if (v->kind != WIRE_ARRAY) return wire_bad_field(err, field, "expected an array");
  if (v->n > SW_CODEC_MAX_MESSAGES) return wire_bad_field(err, field, "too many entries");
  *n = v->n;
  return 0;
}

/* wire_decode.c: root callbacks for the codec.h decoders. */
typedef struct wire_msgs_out {
  sw_msg_t *msgs;
  size_t n;
} wire_msgs_out_t;
int wire_decode_pmsg(const wire_val_t *root, void *pmsg, sw_error_t *err);
int wire_decode_msgs(const wire_val_t *root, void *msgs_out, sw_error_t *err);
typedef struct wire_batch_out {
  sw_batch_spec_t *specs;
  size_t n;
} wire_batch_out_t;
int wire_decode_batch(const wire_val_t *root, void *batch_out, sw_error_t *err);
/* A single stored message: data kept exactly as stored (no base64 step). */
int wire_decode_blob(const wire_val_t *root, void *msg, sw_error_t *err);
/* A stored message's data and action only, borrowed from the input (see
 * codec_blob_data). */
typedef struct wire_blob_data {
  sw_data_kind_t kind;
  const uint8_t *p;
  size_t len;
  int64_t action;
} wire_blob_data_t;
int wire_decode_blob_data(const wire_val_t *root, void *data_out, sw_error_t *err);
int wire_decode_json(const wire_val_t *root, void *json_out, sw_error_t *err);

/* ---- writing ---- */

typedef struct wire_writer wire_writer_t;

typedef struct wire_writer_ops {
  /* A map whose entry count is given at close: open returns a mark. */
  int (*map_open)(wire_writer_t *w, size_t *mark);
  int (*map_close)(wire_writer_t *w, size_t mark, size_t n);
  int (*array_open)(wire_writer_t *w, size_t n);
  int (*array_close)(wire_writer_t *w);
  int (*key)(wire_writer_t *w, const char *k, size_t n);
  int (*str)(wire_writer_t *w, const char *s, size_t n);
  int (*bin)(wire_writer_t *w, const uint8_t *p, size_t n); /* JSON: base64 text */
  int (*i64)(wire_writer_t *w, int64_t v);
  int (*nil)(wire_writer_t *w);
  int (*json)(wire_writer_t *w, const json_t *v);
} wire_writer_ops_t;

struct wire_writer {
  const wire_writer_ops_t *ops;
  sw_buf_t *out;
  bool text;       /* JSON: bytes travel as base64 + "base64" step (RSL4d1) */
  bool need_comma; /* JSON: a value was just written at this level */
  size_t data_end; /* msgpack: out->len just after the last message data written (0: none) */
};

void codec_json_writer_init(wire_writer_t *w, sw_buf_t *out);
void codec_msgpack_writer_init(wire_writer_t *w, sw_buf_t *out);

/* wire_encode.c: structs to writer calls; 0 or -ENOMEM (-EINVAL for a
 * json_t nested absurdly deep, i.e. cyclic). */
int wire_encode_pmsg(wire_writer_t *w, const sw_pmsg_t *m);
/* The same, msgpack only, with m->messages replaced by the one message
 * whose msgpack encoding is raw (its storage blob: the same writer, so the
 * same bytes as encoding it here). */
int wire_encode_pmsg_raw(wire_writer_t *w, const sw_pmsg_t *m, const uint8_t *raw, size_t raw_len);
int wire_encode_msg(wire_writer_t *w, const sw_msg_t *m);
int wire_encode_msgs(wire_writer_t *w, const sw_msg_t *m, size_t n);
int wire_encode_presence_array(wire_writer_t *w, const sw_presence_t *p, size_t n);
int wire_encode_error_body(wire_writer_t *w, const sw_error_t *e);

#endif
