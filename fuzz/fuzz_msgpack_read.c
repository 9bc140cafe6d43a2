/* fuzz_msgpack_read.c: libFuzzer differential target for the server's
 * msgpack reader (src/proto/codec_msgpack.c: codec_msgpack_read, every
 * binary frame and msgpack REST body; codec_msgpack_read_stored, every
 * stored message) against msgpack-c behind the structural pre-check the
 * server used before (fuzz/msgpack_ref.h). The input is the bytes.
 *
 * Invariants (abort() on violation), for both the checked and the stored
 * variant:
 *   - the reader accepts exactly what the reference accepts, and a refusal
 *     is 40000;
 *   - what it accepts reads the same through the views (kinds, values,
 *     array items, map entries in order, a non-string key refused by each)
 *     and converts to the same JSON, or is refused by to_json with the
 *     same code;
 *   - the stored variant accepts everything the checked one does, the
 *     same way.
 * The reader keeps its tree per thread between inputs, so each input also
 * checks that nothing of the previous one is left in it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "msgpack_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void compare(bool utf8, const uint8_t *data, size_t size, char **mine_out) {
  char *mine = mpd_describe(false, utf8, data, size);
  char *ref = mpd_describe(true, utf8, data, size);
  if (strcmp(mine, ref) != 0) {
    fprintf(stderr, "reader and msgpack-c disagree (%s):\n  mine %s\n  ref  %s\n", utf8 ? "checked" : "stored",
            mine, ref);
    abort();
  }
  if (strncmp(mine, "refused", 7) == 0) CHECK(strcmp(mine, "refused 40000") == 0);
  free(ref);
  *mine_out = mine;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *checked, *stored;
  compare(true, data, size, &checked);
  compare(false, data, size, &stored);
  if (strncmp(checked, "refused", 7) != 0) CHECK(strcmp(checked, stored) == 0);
  free(checked);
  free(stored);
  return 0;
}
