/* fuzz_vcdiff.c: libFuzzer target for vcdiff_encode (proto/vcdiff.c).
 * The input is split in two at a point given by its first two bytes:
 * source and target. Invariants: with room for twice the target plus 64
 * bytes the encoding succeeds and decodes (tests/unit/vcdiff_decode.h,
 * an independent RFC 3284 decoder) to exactly the target; with a smaller
 * cap (taken from the input) it either gives the same delta or refuses
 * TOO_BIG, and never writes past the cap. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tests/unit/vcdiff_decode.h"
#include "check.h"
#include "proto/vcdiff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4) return 0;
  size_t split = ((size_t)data[0] << 8 | data[1]) % (size - 3);
  size_t small_cap = data[2] | (size_t)data[3] << 8;
  const uint8_t *src = data + 4, *tgt = data + 4 + split;
  size_t slen = split, tlen = size - 4 - split;

  size_t cap = 2 * tlen + 64, n = 0, back = 0;
  uint8_t *d = malloc(cap + 1), *o = malloc(tlen + 1), *g = malloc(small_cap + 16);
  CHECK(d && o && g);
  CHECK(vcdiff_encode(slen ? src : NULL, slen, tlen ? tgt : NULL, tlen, d, cap, &n) == SW_VCDIFF_OK);
  CHECK(n > 0 && n <= cap);
  CHECK(vcdiff_decode(src, slen, d, n, o, tlen, &back) == 0);
  CHECK(back == tlen);
  CHECK(tlen == 0 || memcmp(o, tgt, tlen) == 0);

  memset(g, 0xEE, small_cap + 16);
  size_t m = 0;
  sw_vcdiff_rc_t rc = vcdiff_encode(slen ? src : NULL, slen, tlen ? tgt : NULL, tlen, g, small_cap, &m);
  for (size_t k = small_cap; k < small_cap + 16; k++) CHECK(g[k] == 0xEE);
  if (small_cap >= n) {
    CHECK(rc == SW_VCDIFF_OK && m == n && memcmp(g, d, n) == 0);
  } else {
    CHECK(rc == SW_VCDIFF_TOO_BIG);
  }
  free(d);
  free(o);
  free(g);
  return 0;
}
