/* textenc.h: the byte-level text encodings the codecs need: base64 (data
 * travelling through the JSON protocol) and UTF-8 validation (msgpack str
 * values are forwarded to JSON clients, so they must be valid UTF-8).
 *
 * Pure functions; the caller owns every buffer. */
#ifndef SW_PROTO_TEXTENC_H
#define SW_PROTO_TEXTENC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Appends the padded base64 form of p[0..n) to out; 0 or -ENOMEM. */
int textenc_base64_append(sw_buf_t *out, const uint8_t *p, size_t n);

/* Decodes strict padded base64 (RFC 4648 alphabet, no whitespace) into a
 * malloc'd, NUL-terminated buffer the caller frees. Returns 0, -EINVAL for
 * invalid base64, -ENOMEM. */
int textenc_base64_decode(const char *s, size_t n, uint8_t **out, size_t *outlen);

/* Length (1..4) of the valid UTF-8 sequence at p[0..n), or 0 if the bytes
 * there are not one (overlong forms, surrogates and > U+10FFFF are invalid). */
size_t textenc_utf8_seq(const uint8_t *p, size_t n);

bool textenc_utf8_valid(const uint8_t *p, size_t n);

#endif
