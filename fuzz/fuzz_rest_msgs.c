/* fuzz_rest_msgs.c: libFuzzer target for codec_decode_msgs, the REST
 * publish body (one Message or an array of them). The first input byte
 * picks the format (odd: msgpack), the rest is the body.
 * Invariants: see codec_invariants.h; in addition the decoded messages
 * re-encode as an array that decodes to the same messages. */
#include <stdint.h>

#include "codec_invariants.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  sw_format_t f = (data[0] & 1) ? SW_FMT_MSGPACK : SW_FMT_JSON;
  data++;
  size--;
  sw_msg_t *msgs = (sw_msg_t *)1;
  size_t n = 7;
  sw_error_t err = {0};
  if (codec_decode_msgs(f, data, size, &msgs, &n, &err) != 0) {
    CHECK(msgs == NULL && n == 0);
    check_failure(&err, &n, 0);
    return 0;
  }
  CHECK(n <= SW_CODEC_MAX_MESSAGES && (n == 0) == (msgs == NULL));
  /* Messages travel inside a ProtocolMessage too: reuse its checks. */
  sw_pmsg_t p = {.action = SW_ACTION_MESSAGE, .messages = msgs, .n_messages = n};
  check_pmsg(&p);
  for (size_t i = 0; i < n; i++) check_blob(&msgs[i]);
  for (int g = SW_FMT_JSON; g <= SW_FMT_MSGPACK; g++) {
    sw_buf_t a = {0}, b = {0};
    sw_msg_t *back;
    size_t nb;
    CHECK(codec_encode_msgs((sw_format_t)g, msgs, n, &a) == 0);
    CHECK(codec_decode_msgs((sw_format_t)g, a.data, a.len, &back, &nb, &err) == 0);
    CHECK(nb == n);
    CHECK(codec_encode_msgs((sw_format_t)g, back, nb, &b) == 0);
    CHECK(buf_eq(&a, &b));
    for (size_t i = 0; i < nb; i++) msg_clear(&back[i]);
    free(back);
    buf_free(&a);
    buf_free(&b);
  }
  pmsg_free(&p); /* frees msgs too */
  return 0;
}
