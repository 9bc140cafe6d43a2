/* codec.h: the Ably wire formats, JSON (jansson) and msgpack (read by our
 * own one-pass reader, codec_msgpack.c; written with msgpack-c's packer).
 *
 * Decoders are pure: they read (bytes, len), do no I/O, and either fill *out
 * (which the caller then owns and releases with pmsg_free()/msg_clear()/
 * json_decref()) or return -1 with *err set to the Ably error to report
 * (40000 for a malformed body, 40013 for unusable data, ...) and nothing
 * allocated. Unknown fields are ignored (forward compatibility, RSF1).
 *
 * Encoders append to an sw_buf_t and return 0 or -ENOMEM. Absent fields
 * (NULL strings, has_* false, timestamp 0, action -1 in messages) are not
 * written. */
#ifndef SW_PROTO_CODEC_H
#define SW_PROTO_CODEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/pmsg.h"
#include "util/buf.h"

typedef enum { SW_FMT_JSON = 0, SW_FMT_MSGPACK = 1 } sw_format_t;

/* Limits the decoders enforce before allocating (nesting depth of JSON and
 * msgpack values, number of messages in one ProtocolMessage). */
#define SW_CODEC_MAX_DEPTH 32
#define SW_CODEC_MAX_MESSAGES 1000

/* One ProtocolMessage (a WebSocket text or binary frame). */
int codec_decode_pmsg(sw_format_t f, const uint8_t *p, size_t n, sw_pmsg_t *out, sw_error_t *err);
int codec_encode_pmsg(sw_format_t f, const sw_pmsg_t *m, sw_buf_t *out);
/* The msgpack ProtocolMessage m with, as its messages, the one message
 * whose storage blob (codec_msg_to_blob) is raw: a message is stored in
 * the msgpack wire form, so its blob is spliced in rather than encoded
 * again. */
int codec_encode_pmsg_msgpack_raw(const sw_pmsg_t *m, const uint8_t *raw, size_t raw_len, sw_buf_t *out);
/* The msgpack ACK of one publish with one serial, {action, count: 1,
 * msgSerial, res: [{serials: [serial]}]}, written into out (at least
 * SW_CODEC_ACK_MAX bytes) in the bytes codec_encode_pmsg writes for it,
 * without its writer: an AI stream ACKs every append. Returns the length,
 * or 0 when it does not apply (a negative msgSerial, a serial of 32 bytes
 * or more): then encode the pmsg. */
#define SW_CODEC_ACK_MAX 96
size_t codec_ack_msgpack(uint8_t *out, int action, int64_t msg_serial, const char *serial);

/* A REST publish body: one Message object or an array of them.
 * *out is a malloc'd array of *count messages (free each with msg_clear,
 * then free the array). */
int codec_decode_msgs(sw_format_t f, const uint8_t *p, size_t n, sw_msg_t **out, size_t *count,
                      sw_error_t *err);
/* A batch publish body (RSC22, BSP2): one BatchPublishSpec object or an
 * array of them, each {channels: a name or an array of names, messages: a
 * Message or an array of them}. At most SW_CODEC_MAX_MESSAGES specs,
 * channels per spec and messages per spec; the caller bounds the total.
 * *out is a malloc'd array of *count specs (free with
 * codec_batch_specs_free). 40000 for a spec without channels or messages. */
typedef struct sw_batch_spec {
  char **channels;
  size_t n_channels;
  sw_msg_t *msgs;
  size_t n_msgs;
} sw_batch_spec_t;
int codec_decode_batch(sw_format_t f, const uint8_t *p, size_t n, sw_batch_spec_t **out, size_t *count,
                       sw_error_t *err);
void codec_batch_specs_free(sw_batch_spec_t *specs, size_t n);
/* One Message as an object, or an array of Messages. */
int codec_encode_msg(sw_format_t f, const sw_msg_t *m, sw_buf_t *out);
int codec_encode_msgs(sw_format_t f, const sw_msg_t *msgs, size_t n, sw_buf_t *out);
/* Presence messages as an array (REST presence, presence history). */
int codec_encode_presence_array(sw_format_t f, const sw_presence_t *p, size_t n, sw_buf_t *out);

/* The storage form of a Message: msgpack, independent of client formats. */
int codec_msg_to_blob(const sw_msg_t *m, sw_buf_t *out);
int codec_msg_from_blob(const uint8_t *p, size_t n, sw_msg_t *out);
/* As codec_msg_to_blob, and *data_off is where m's data bytes start in the
 * blob written (0 when m has no data). */
int codec_msg_to_blob_at(const sw_msg_t *m, sw_buf_t *out, size_t *data_off);
/* Only the action (-1: absent) and data of a stored message, for a caller
 * that needs nothing else: nothing is allocated, *data points into p
 * (SW_DATA_NONE: no data). 0, or -1 if p is not a stored message. */
int codec_blob_data(const uint8_t *p, size_t n, int *action, sw_data_kind_t *kind, const uint8_t **data,
                    size_t *len);

/* Generic bodies (admin API, /time, channel status, publish results):
 * a json_t tree written as JSON or as the equivalent msgpack value, and a
 * JSON or msgpack body read into a json_t tree (msgpack bin becomes a
 * base64 string). decode returns NULL with *err set on failure. */
int codec_encode_value(sw_format_t f, const json_t *v, sw_buf_t *out);
json_t *codec_decode_value(sw_format_t f, const uint8_t *p, size_t n, sw_error_t *err);

/* {"error":{"code","statusCode","message","href"}} (the REST error body). */
int codec_encode_error_body(sw_format_t f, const sw_error_t *e, sw_buf_t *out);

#endif
