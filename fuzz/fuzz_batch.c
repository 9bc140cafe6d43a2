/* fuzz_batch.c: libFuzzer target for codec_decode_batch, the REST batch
 * publish body (RSC22: one BatchPublishSpec or an array of them). The first
 * input byte picks the format (odd: msgpack), the rest is the body.
 * Invariants: see codec_invariants.h for failures; a decoded batch has at
 * least one spec, each with 1 to SW_CODEC_MAX_MESSAGES channels (non-NULL
 * strings) and messages, and its messages pass the ProtocolMessage checks. */
#include <stdint.h>

#include "codec_invariants.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  sw_format_t f = (data[0] & 1) ? SW_FMT_MSGPACK : SW_FMT_JSON;
  data++;
  size--;
  sw_batch_spec_t *specs = (sw_batch_spec_t *)1;
  size_t n = 7;
  sw_error_t err = {0};
  if (codec_decode_batch(f, data, size, &specs, &n, &err) != 0) {
    CHECK(specs == NULL && n == 0);
    check_failure(&err, &n, 0);
    return 0;
  }
  CHECK(specs != NULL && n >= 1 && n <= SW_CODEC_MAX_MESSAGES);
  for (size_t i = 0; i < n; i++) {
    CHECK(specs[i].n_channels >= 1 && specs[i].n_channels <= SW_CODEC_MAX_MESSAGES);
    for (size_t j = 0; j < specs[i].n_channels; j++) CHECK(specs[i].channels[j] != NULL);
    CHECK(specs[i].n_msgs >= 1 && specs[i].n_msgs <= SW_CODEC_MAX_MESSAGES);
    sw_pmsg_t p = {.action = SW_ACTION_MESSAGE, .messages = specs[i].msgs, .n_messages = specs[i].n_msgs};
    check_pmsg(&p);
  }
  codec_batch_specs_free(specs, n);
  return 0;
}
