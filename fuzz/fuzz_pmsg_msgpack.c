/* fuzz_pmsg_msgpack.c: libFuzzer target for codec_decode_pmsg in the msgpack
 * format (a WebSocket binary frame), plus the generic value decoder.
 * Invariants: see codec_invariants.h. */
#include <stdint.h>

#include "codec_invariants.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sw_pmsg_t p;
  sw_error_t err = {0};
  if (codec_decode_pmsg(SW_FMT_MSGPACK, data, size, &p, &err) != 0) {
    check_failure(&err, &p, sizeof p);
  } else {
    check_pmsg(&p);
    for (size_t i = 0; i < p.n_messages; i++) check_blob(&p.messages[i]);
    pmsg_free(&p);
  }
  check_value(SW_FMT_MSGPACK, data, size);
  return 0;
}
