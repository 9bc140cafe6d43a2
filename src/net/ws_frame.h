/* ws_frame.h: RFC 6455 framing, hand-written and pure.
 *
 * We do not use wslay: the server encodes a message once and writes the same
 * bytes to many subscribers, so it needs the header codec on its own.
 * Nothing here does I/O or keeps global state; the parsers read only the
 * bytes they are given and never allocate (the message assembler allocates
 * into its own sw_buf_t, after checking its size limit). No extensions are
 * negotiated, so RSV bits are always an error. */
#ifndef SW_NET_WS_FRAME_H
#define SW_NET_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* The largest frame header: 2 + 8 (64-bit length) + 4 (mask). */
#define SW_WS_MAX_HEADER 14
/* Control frames carry at most this much payload (RFC 6455 §5.5). */
#define SW_WS_MAX_CONTROL_PAYLOAD 125

typedef struct sw_ws_frame {
  bool fin;
  uint8_t opcode;   /* SW_WS_OP_* */
  bool masked;
  uint8_t mask[4];  /* valid when masked */
  uint64_t payload_len;
  size_t header_len; /* the payload starts this many bytes into the frame */
} sw_ws_frame_t;

enum {
  SW_WS_OP_CONT = 0,
  SW_WS_OP_TEXT = 1,
  SW_WS_OP_BINARY = 2,
  SW_WS_OP_CLOSE = 8,
  SW_WS_OP_PING = 9,
  SW_WS_OP_PONG = 10,
};

enum { SW_WS_NEED_MORE = 0, SW_WS_MALFORMED = -1, SW_WS_TOO_LARGE = -2 };

/* Parses the frame header at p[0..n).
 *   require_mask: true on the server, where client frames must be masked.
 *   max_payload:  largest payload_len accepted (UINT64_MAX for no limit).
 *   f:            written only when the return is > 0.
 * Returns the header length (2..14; the payload follows it), or
 *   SW_WS_NEED_MORE  n is too short for the whole header;
 *   SW_WS_MALFORMED  RSV bit set, unknown opcode, control frame that is
 *                    fragmented or has payload > 125, 64-bit length with the
 *                    top bit set, or unmasked frame when require_mask
 *                    (reported as soon as the offending byte is present);
 *   SW_WS_TOO_LARGE  payload_len > max_payload.
 * Non-minimal length encodings are accepted. */
int ws_frame_parse(const uint8_t *p, size_t n, bool require_mask, uint64_t max_payload,
                   sw_ws_frame_t *f);

/* XORs buf[0..n) in place with mask. offset is the position of buf[0] within
 * the frame's payload, so a payload can be unmasked piecewise as it arrives. */
void ws_unmask(uint8_t *buf, size_t n, const uint8_t mask[4], uint64_t offset);

/* Writes an unmasked (server-to-client) frame header into out (at least 10
 * bytes; RSV bits clear; opcode taken modulo 16) using the shortest length
 * encoding. Returns the header length (2, 4 or 10). payload_len must be
 * < 2^63 (higher values are clamped to 2^63 - 1). */
size_t ws_frame_header(uint8_t out[10], bool fin, uint8_t opcode, uint64_t payload_len);

/* Reassembles fragmented data messages. Zero-initialise it and set max_msg
 * (the largest message, in bytes, it will buffer; 0 allows only empty ones).
 * The owner calls ws_msg_asm_free() when done. */
typedef struct sw_ws_msg_asm {
  sw_buf_t buf;     /* the message so far; the whole message after a 1 */
  uint8_t opcode;   /* SW_WS_OP_TEXT or SW_WS_OP_BINARY while active */
  bool active;      /* a fragmented message is in progress */
  uint64_t max_msg;
} sw_ws_msg_asm_t;

/* Adds one whole data frame: f is its parsed header and payload[0..n) its
 * (already unmasked) payload, so n must equal f->payload_len. Control frames
 * must be handled by the caller and are refused here.
 * Returns 1 when a complete message is in a->buf (its opcode in *opcode; the
 * bytes stay valid until the next add/reset/free), 0 when more fragments are
 * needed, SW_WS_MALFORMED for a continuation with nothing to continue, a new
 * TEXT/BINARY frame while a message is active, a control frame, or n !=
 * f->payload_len, SW_WS_TOO_LARGE when the message would exceed max_msg, or
 * -ENOMEM. After any negative return, reset before reusing. Text messages are
 * not UTF-8-checked here: run utf8_valid() on the completed message. */
int ws_msg_asm_add(sw_ws_msg_asm_t *a, const sw_ws_frame_t *f, const uint8_t *payload,
                   size_t n, uint8_t *opcode);

/* Forgets any partial message (keeps the buffer's storage and max_msg). */
void ws_msg_asm_reset(sw_ws_msg_asm_t *a);

/* Releases the buffer's storage and resets; max_msg is kept. */
void ws_msg_asm_free(sw_ws_msg_asm_t *a);

/* Validates a close frame's payload p[0..n) (RFC 6455 §5.5.1, §7.4).
 * Returns the close code: 1005 for an empty payload, otherwise a code in
 * 1000-1003, 1007-1014 or 3000-4999; or -1 if n is 1, n > 125, the code is
 * outside those ranges (e.g. 1004-1006, 1015, < 1000, >= 5000), or the reason
 * is not valid UTF-8. */
int ws_close_payload_parse(const uint8_t *p, size_t n);

/* True if p[0..n) is well-formed UTF-8 (RFC 3629: shortest form only, no
 * surrogates, nothing above U+10FFFF). Empty input is valid. */
bool utf8_valid(const uint8_t *p, size_t n);

#endif
