/* codec.c: the codec.h API: picks the format's reader or writer and hands
 * it the shared struct mapping of wire_decode.c / wire_encode.c. */
#include "proto/codec.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "proto/mp_write.h"
#include "proto/wire.h"
#include "util/buf.h"

static int read_root(sw_format_t f, const uint8_t *p, size_t n, wire_root_fn fn, void *arg,
                     sw_error_t *err) {
  return f == SW_FMT_MSGPACK ? codec_msgpack_read(p, n, fn, arg, err)
                             : codec_json_read(p, n, fn, arg, err);
}

/* Returns where the output starts, for finish(). */
static size_t writer_init(sw_format_t f, wire_writer_t *w, sw_buf_t *out) {
  if (f == SW_FMT_MSGPACK)
    codec_msgpack_writer_init(w, out);
  else
    codec_json_writer_init(w, out);
  return out->len;
}

/* Encoders leave out as it was when they fail. */
static int finish(sw_buf_t *out, size_t start, int rc) {
  if (rc) out->len = start;
  return rc;
}

int codec_decode_pmsg(sw_format_t f, const uint8_t *p, size_t n, sw_pmsg_t *out, sw_error_t *err) {
  memset(out, 0, sizeof *out);
  return read_root(f, p, n, wire_decode_pmsg, out, err) ? -1 : 0;
}

int codec_encode_pmsg(sw_format_t f, const sw_pmsg_t *m, sw_buf_t *out) {
  wire_writer_t w;
  size_t start = writer_init(f, &w, out);
  return finish(out, start, wire_encode_pmsg(&w, m));
}

int codec_encode_pmsg_msgpack_raw(const sw_pmsg_t *m, const uint8_t *raw, size_t raw_len, sw_buf_t *out) {
  wire_writer_t w;
  size_t start = writer_init(SW_FMT_MSGPACK, &w, out);
  return finish(out, start, wire_encode_pmsg_raw(&w, m, raw, raw_len));
}

int codec_decode_msgs(sw_format_t f, const uint8_t *p, size_t n, sw_msg_t **out, size_t *count,
                      sw_error_t *err) {
  wire_msgs_out_t o = {0};
  int rc = read_root(f, p, n, wire_decode_msgs, &o, err);
  *out = o.msgs;
  *count = o.n;
  return rc ? -1 : 0;
}

int codec_decode_batch(sw_format_t f, const uint8_t *p, size_t n, sw_batch_spec_t **out, size_t *count,
                       sw_error_t *err) {
  wire_batch_out_t o = {0};
  int rc = read_root(f, p, n, wire_decode_batch, &o, err);
  *out = o.specs;
  *count = o.n;
  return rc ? -1 : 0;
}

void codec_batch_specs_free(sw_batch_spec_t *specs, size_t n) {
  for (size_t i = 0; specs && i < n; i++) {
    for (size_t j = 0; j < specs[i].n_channels; j++) free(specs[i].channels[j]);
    free(specs[i].channels);
    for (size_t j = 0; j < specs[i].n_msgs; j++) msg_clear(&specs[i].msgs[j]);
    free(specs[i].msgs);
  }
  free(specs);
}

int codec_encode_msg(sw_format_t f, const sw_msg_t *m, sw_buf_t *out) {
  wire_writer_t w;
  size_t start = writer_init(f, &w, out);
  return finish(out, start, wire_encode_msg(&w, m));
}

int codec_encode_msgs(sw_format_t f, const sw_msg_t *msgs, size_t n, sw_buf_t *out) {
  wire_writer_t w;
  size_t start = writer_init(f, &w, out);
  return finish(out, start, wire_encode_msgs(&w, msgs, n));
}

int codec_encode_presence_array(sw_format_t f, const sw_presence_t *p, size_t n, sw_buf_t *out) {
  wire_writer_t w;
  size_t start = writer_init(f, &w, out);
  return finish(out, start, wire_encode_presence_array(&w, p, n));
}

int codec_msg_to_blob(const sw_msg_t *m, sw_buf_t *out) {
  size_t data_off;
  return codec_msg_to_blob_at(m, out, &data_off);
}

/* ---- The storage form, written directly ----
 *
 * The blob is the msgpack of wire_encode_msg (the stored rows must not
 * change): the same fields in the same order, each header in its smallest
 * form, as codec_msgpack.c's writer puts them (test_codec checks the bytes
 * against codec_encode_msg). Written here without the writer's call
 * through a pointer per key and per value, and with the keys' headers
 * known at compile time: the generic path was ~1,100 instructions of a
 * durable publish's ~15,000. JSON values (extras, version, annotations)
 * still go through the writer. */

/* A key: its fixstr header byte and text, compile-time constants (room
 * reserved by the caller). */
#define BLOB_KEY(b, lit) blob_put(b, (uint8_t)(0xa0 | (sizeof lit - 1)), lit, sizeof lit - 1)

static inline void blob_put(sw_buf_t *b, uint8_t head, const char *p, size_t n) {
  b->data[b->len] = head;
  memcpy(b->data + b->len + 1, p, n);
  b->len += 1 + n;
}

/* Ids, serials and names: NUL-terminated. */
static inline int blob_str(sw_buf_t *b, const char *s) { return mp_str(b, s, strlen(s)); }

/* Room for the longest key (messageSerial: 14 bytes) with its header. */
#define KEY_ROOM 16

/* A field: its key, then its value; rc sticks at the first failure. */
#define BLOB_FIELD(lit, write)                               \
  do {                                                       \
    if (rc == 0 && (rc = buf_reserve(out, KEY_ROOM)) == 0) { \
      BLOB_KEY(out, lit);                                    \
      n++;                                                   \
      rc = (write);                                          \
    }                                                        \
  } while (0)

/* 0, a negative errno, or 1: more than 15 fields (a map16 header), left to
 * the writer's path (never seen in practice). */
static int msg_blob(const sw_msg_t *m, sw_buf_t *out, size_t *data_end) {
  wire_writer_t w;
  codec_msgpack_writer_init(&w, out);
  size_t mark = out->len, n = 0;
  int rc = buf_append_byte(out, 0x80);
  if (m->id) BLOB_FIELD("id", blob_str(out, m->id));
  if (m->client_id) BLOB_FIELD("clientId", blob_str(out, m->client_id));
  if (m->connection_id) BLOB_FIELD("connectionId", blob_str(out, m->connection_id));
  if (m->connection_key) BLOB_FIELD("connectionKey", blob_str(out, m->connection_key));
  if (m->name) BLOB_FIELD("name", blob_str(out, m->name));
  if (m->data.kind != SW_DATA_NONE) {
    bool bin = m->data.kind == SW_DATA_BINARY;
    BLOB_FIELD("data", bin ? mp_raw(out, 0, 0xc4, 0xc5, 0xc6, m->data.bytes, m->data.len)
                            : mp_raw(out, 0xa0, 0xd9, 0xda, 0xdb, m->data.bytes, m->data.len));
    *data_end = out->len;
  }
  if (m->encoding) BLOB_FIELD("encoding", blob_str(out, m->encoding));
  if (m->extras) BLOB_FIELD("extras", w.ops->json(&w, m->extras));
  if (m->timestamp != 0) BLOB_FIELD("timestamp", mp_i64(out, m->timestamp));
  if (m->serial) BLOB_FIELD("serial", blob_str(out, m->serial));
  if (m->action >= 0) BLOB_FIELD("action", mp_i64(out, m->action));
  if (m->version) BLOB_FIELD("version", w.ops->json(&w, m->version));
  if (m->annotations) BLOB_FIELD("annotations", w.ops->json(&w, m->annotations));
  if (m->message_serial) BLOB_FIELD("messageSerial", blob_str(out, m->message_serial));
  if (m->type) BLOB_FIELD("type", blob_str(out, m->type));
  if (m->has_count) BLOB_FIELD("count", mp_i64(out, m->count));
  if (rc) return rc;
  if (n > 15) return 1;
  out->data[mark] = (uint8_t)(0x80 | n);
  return 0;
}

int codec_msg_to_blob_at(const sw_msg_t *m, sw_buf_t *out, size_t *data_off) {
  /* One allocation for a typical blob: grown from empty by doubling, an
   * append's blob took three reallocs (measured). */
  if (m->data.len < SIZE_MAX - 512 && buf_reserve(out, m->data.len + 512)) return -ENOMEM;
  size_t start = out->len, data_end = 0;
  int rc = msg_blob(m, out, &data_end);
  if (rc > 0) {
    out->len = start;
    wire_writer_t w;
    codec_msgpack_writer_init(&w, out);
    rc = wire_encode_msg(&w, m);
    data_end = w.data_end;
  }
  rc = finish(out, start, rc);
  /* msgpack writes the bytes as they are, so they end the str/bin value. */
  *data_off = rc == 0 && data_end ? data_end - m->data.len - start : 0;
  return rc;
}

int codec_msg_from_blob(const uint8_t *p, size_t n, sw_msg_t *out) {
  sw_error_t err;
  memset(out, 0, sizeof *out);
  out->action = -1;
  return codec_msgpack_read_stored(p, n, wire_decode_blob, out, &err) ? -1 : 0;
}

int codec_blob_data(const uint8_t *p, size_t n, int *action, sw_data_kind_t *kind, const uint8_t **data,
                    size_t *len) {
  sw_error_t err;
  wire_blob_data_t d;
  if (codec_msgpack_read_stored(p, n, wire_decode_blob_data, &d, &err)) return -1;
  *action = d.action >= INT32_MIN && d.action <= INT32_MAX ? (int)d.action : -1;
  *kind = d.kind;
  *data = d.p;
  *len = d.len;
  return 0;
}

int codec_encode_value(sw_format_t f, const json_t *v, sw_buf_t *out) {
  wire_writer_t w;
  size_t start = writer_init(f, &w, out);
  return finish(out, start, w.ops->json(&w, v));
}

json_t *codec_decode_value(sw_format_t f, const uint8_t *p, size_t n, sw_error_t *err) {
  json_t *j = NULL;
  read_root(f, p, n, wire_decode_json, &j, err);
  return j;
}

int codec_encode_error_body(sw_format_t f, const sw_error_t *e, sw_buf_t *out) {
  wire_writer_t w;
  size_t start = writer_init(f, &w, out);
  return finish(out, start, wire_encode_error_body(&w, e));
}
