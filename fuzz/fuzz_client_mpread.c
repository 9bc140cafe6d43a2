/* fuzz_client_mpread.c: libFuzzer target for the C client's msgpack reader
 * (client/mpread.c, swc_mp_read), which reads every binary frame the server
 * sends. The input is the frame.
 *
 * Invariants (abort() on violation):
 *   - it accepts exactly the inputs codec_msgpack_read (the server's reader,
 *     which fuzz_msgpack_read compares with msgpack-c) accepts, and a
 *     refusal is 40000;
 *   - what it accepts reads the same through the views (kinds, values,
 *     array items, map entries in order, a non-string key refused by each)
 *     and converts to the same JSON, or is refused by to_json with the same
 *     code (tests/client/mp_compare.h);
 *   - a scratch buffer reused across inputs gives the same result as a
 *     fresh one (the tree does not keep anything of the previous frame). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mp_compare.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sw_buf_t reused; /* kept across inputs on purpose */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *mine = mpc_describe(true, data, size);
  char *ref = mpc_describe(false, data, size);
  if (strcmp(mine, ref) != 0) {
    fprintf(stderr, "mpread and codec_msgpack_read disagree:\n  mine %s\n  ref  %s\n", mine, ref);
    abort();
  }
  if (strncmp(mine, "refused", 7) == 0) CHECK(strcmp(mine, "refused 40000") == 0);
  sw_buf_t b = {0};
  sw_error_t err = {0};
  int rc = swc_mp_read(&reused, data, size, mpc_root, &b, &err);
  buf_append_byte(&b, 0);
  CHECK((rc == 0) == (strncmp(mine, "refused", 7) != 0));
  if (rc == 0) CHECK(strcmp((const char *)b.data, mine) == 0);
  if (reused.cap > 1 << 20) buf_free(&reused);
  buf_free(&b);
  free(mine);
  free(ref);
  return 0;
}
