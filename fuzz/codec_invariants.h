/* codec_invariants.h: checks shared by the codec fuzz targets (included by
 * fuzz_pmsg_json.c, fuzz_pmsg_msgpack.c, fuzz_rest_msgs.c and fuzz_batch.c only).
 *
 * Invariants (abort() on violation):
 *   - a failed decode reports 40000 or 40013 (50000 only for lack of memory)
 *     with a message, and leaves its output zeroed;
 *   - whatever decodes re-encodes, in both formats, to bytes that decode
 *     again; encoding is a fixed point (encode(decode(encode(x))) ==
 *     encode(x)) and the two formats agree (a msgpack round trip gives the
 *     same JSON text);
 *   - every message survives the storage blob unchanged;
 *   - a generic value survives both formats (json_equal). */
#ifndef SW_FUZZ_CODEC_INVARIANTS_H
#define SW_FUZZ_CODEC_INVARIANTS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/codec.h"

#include "check.h"

static inline void check_failure(const sw_error_t *err, const void *out, size_t size) {
  CHECK(err->code == SW_E_BAD_REQUEST || err->code == SW_E_INVALID_MESSAGE_DATA ||
        err->code == SW_E_INTERNAL);
  CHECK(err->message[0] != '\0');
  const uint8_t *b = out;
  for (size_t i = 0; i < size; i++) CHECK(b[i] == 0); /* zeroed: nothing leaked or dangling */
}

static inline bool buf_eq(const sw_buf_t *a, const sw_buf_t *b) {
  return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Encodes p in both formats and checks the fixed point and the agreement. */
static inline void check_pmsg(const sw_pmsg_t *p) {
  sw_buf_t js = {0}, mp = {0}, again = {0};
  sw_pmsg_t q;
  sw_error_t err;
  CHECK(codec_encode_pmsg(SW_FMT_JSON, p, &js) == 0);
  CHECK(codec_encode_pmsg(SW_FMT_MSGPACK, p, &mp) == 0);
  for (int f = SW_FMT_JSON; f <= SW_FMT_MSGPACK; f++) {
    const sw_buf_t *enc = f == SW_FMT_JSON ? &js : &mp;
    if (codec_decode_pmsg((sw_format_t)f, enc->data, enc->len, &q, &err) != 0) {
      fprintf(stderr, "re-decode (%d) failed: %d %s\n", f, err.code, err.message);
      abort();
    }
    buf_reset(&again);
    CHECK(codec_encode_pmsg(SW_FMT_JSON, &q, &again) == 0);
    CHECK(buf_eq(&again, &js));
    if (f == SW_FMT_MSGPACK) {
      buf_reset(&again);
      CHECK(codec_encode_pmsg(SW_FMT_MSGPACK, &q, &again) == 0);
      CHECK(buf_eq(&again, &mp));
    }
    pmsg_free(&q);
  }
  buf_free(&js);
  buf_free(&mp);
  buf_free(&again);
}

static inline void check_blob(const sw_msg_t *m) {
  sw_buf_t blob = {0}, a = {0}, b = {0};
  sw_msg_t back;
  CHECK(codec_msg_to_blob(m, &blob) == 0);
  CHECK(codec_msg_from_blob(blob.data, blob.len, &back) == 0);
  CHECK(codec_encode_msg(SW_FMT_MSGPACK, m, &a) == 0);
  CHECK(codec_encode_msg(SW_FMT_MSGPACK, &back, &b) == 0);
  CHECK(buf_eq(&a, &b));
  CHECK(msg_size(&back) == msg_size(m));
  sw_msg_t copy;
  CHECK(msg_copy(&copy, m) == 0);
  buf_reset(&b);
  CHECK(codec_encode_msg(SW_FMT_MSGPACK, &copy, &b) == 0);
  CHECK(buf_eq(&a, &b));
  msg_clear(&copy);
  msg_clear(&back);
  buf_free(&blob);
  buf_free(&a);
  buf_free(&b);
}

static inline void check_value(sw_format_t f, const uint8_t *data, size_t size) {
  sw_error_t err;
  json_t *v = codec_decode_value(f, data, size, &err);
  if (!v) {
    CHECK(err.code == SW_E_BAD_REQUEST || err.code == SW_E_INTERNAL);
    return;
  }
  for (int g = SW_FMT_JSON; g <= SW_FMT_MSGPACK; g++) {
    sw_buf_t b = {0};
    CHECK(codec_encode_value((sw_format_t)g, v, &b) == 0);
    json_t *back = codec_decode_value((sw_format_t)g, b.data, b.len, &err);
    CHECK(back && json_equal(v, back));
    json_decref(back);
    buf_free(&b);
  }
  json_decref(v);
}

#endif
