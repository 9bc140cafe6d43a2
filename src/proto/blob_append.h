/* blob_append.h: a stored message (codec_msg_to_blob's msgpack form) changed
 * by copying its bytes, not by decoding and encoding it again.
 *
 * The store folds every append into its message's head (the memory backend
 * at once, for each append): decoding the head, strings and JSON objects
 * allocated, and encoding it again was nearly all of the store thread's
 * work per append. A blob codec_msg_to_blob wrote is a fixed point of
 * decode + encode, so its fields' bytes can be copied as they are; the
 * scan below accepts a blob only when every byte is what that writer
 * writes for what the decoder reads (else the caller decodes), so the
 * spliced result is byte for byte the one a decode and encode would give.
 *
 * Pure functions over caller-owned bytes; nothing is allocated but out. */
#ifndef SW_PROTO_BLOB_APPEND_H
#define SW_PROTO_BLOB_APPEND_H

#include <stddef.h>
#include <stdint.h>

#include "proto/pmsg.h"
#include "util/buf.h"

/* A stored message's fields, in the order wire_encode_msg writes them. */
enum {
  BLOB_F_ID,
  BLOB_F_CLIENT_ID,
  BLOB_F_CONNECTION_ID,
  BLOB_F_CONNECTION_KEY,
  BLOB_F_NAME,
  BLOB_F_DATA,
  BLOB_F_ENCODING,
  BLOB_F_EXTRAS,
  BLOB_F_TIMESTAMP,
  BLOB_F_SERIAL,
  BLOB_F_ACTION,
  BLOB_F_VERSION,
  BLOB_F_ANNOTATIONS,
  BLOB_F_MESSAGE_SERIAL,
  BLOB_F_TYPE,
  BLOB_F_COUNT,
  BLOB_NFIELDS
};

/* Bytes of a blob (p NULL: none). */
typedef struct blob_span {
  const uint8_t *p;
  size_t len;
} blob_span_t;

typedef struct blob_fields {
  blob_span_t val[BLOB_NFIELDS]; /* each field's value, its header included */
  sw_data_kind_t kind;           /* the data: NONE, or its bytes, header excluded */
  blob_span_t data;
  int action; /* -1: absent */
} blob_fields_t;

/* Splits blob p[0..n) into its fields. 0 when it is exactly what
 * codec_msg_to_blob writes for the message codec_msg_from_blob reads from
 * it: keys in the writer's order, every header and integer in its smallest
 * form, strings without NUL, no encoding, JSON values as the writer writes
 * a jansson tree (string keys without NUL and none twice, finite float64
 * numbers, no bin or ext, no map with more than 16 keys, nesting well
 * within the decoder's limit). -1 otherwise: the caller decodes. */
int blob_scan(const uint8_t *p, size_t n, blob_fields_t *f);

/* Writes to out the message h with its data followed by the n fragments
 * (of kind kind, which is h's when h has data; SW_DATA_NONE: the data is
 * h's, unchanged) and, for each field i whose repl[i].p is set, repl[i]'s
 * bytes as its value (a whole msgpack value: another scanned blob's field,
 * or a literal). 0, -EINVAL (data of 4 GiB or more), -ENOMEM. */
int blob_write(const blob_fields_t *h, sw_data_kind_t kind, const sw_data_t *frags, size_t n,
               const blob_span_t repl[BLOB_NFIELDS], sw_buf_t *out);

#endif
