/* wire.h: the format-neutral layer shared by the JSON and msgpack codecs.
 *
 * Decoding: each format parses its input into its own tree (json_t or
 * msgpack_object) and exposes nodes as wire_val_t views; wire_decode.c maps
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
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* wire_decode.c: root callbacks for the codec.h decoders. */
typedef struct wire_msgs_out {
  sw_msg_t *msgs;
  size_t n;
} wire_msgs_out_t;
int wire_decode_pmsg(const wire_val_t *root, void *pmsg, sw_error_t *err);
int wire_decode_msgs(const wire_val_t *root, void *msgs_out, sw_error_t *err);
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
};

void codec_json_writer_init(wire_writer_t *w, sw_buf_t *out);
void codec_msgpack_writer_init(wire_writer_t *w, sw_buf_t *out);

/* wire_encode.c: structs to writer calls; 0 or -ENOMEM (-EINVAL for a
 * json_t nested absurdly deep, i.e. cyclic). */
int wire_encode_pmsg(wire_writer_t *w, const sw_pmsg_t *m);
int wire_encode_msg(wire_writer_t *w, const sw_msg_t *m);
int wire_encode_msgs(wire_writer_t *w, const sw_msg_t *m, size_t n);
int wire_encode_presence_array(wire_writer_t *w, const sw_presence_t *p, size_t n);
int wire_encode_error_body(wire_writer_t *w, const sw_error_t *e);

#endif
