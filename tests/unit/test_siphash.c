/* util/siphash.h against the SipHash paper's test vector (key 00..0f,
 * message 00..0e: a129ca6149be45e5) and the reference code's first one
 * (the empty message: 726fdb47dd0e0e31), fed whole and a byte at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/siphash.h"

static uint64_t hash(const uint8_t *key, const uint8_t *m, size_t n, size_t step) {
  sw_siphash_t s;
  siphash_init(&s, key);
  for (size_t i = 0; i < n; i += step) siphash_update(&s, m + i, n - i < step ? n - i : step);
  return siphash_final(&s);
}

static void test_vectors(void **state) {
  (void)state;
  uint8_t key[16], m[15];
  for (int i = 0; i < 16; i++) key[i] = (uint8_t)i;
  for (int i = 0; i < 15; i++) m[i] = (uint8_t)i;
  assert_true(hash(key, m, 15, 15) == 0xa129ca6149be45e5ull);
  assert_true(hash(key, m, 15, 1) == 0xa129ca6149be45e5ull);
  assert_true(hash(key, m, 15, 4) == 0xa129ca6149be45e5ull);
  assert_true(hash(key, m, 0, 1) == 0x726fdb47dd0e0e31ull);
  /* Another key, another hash. */
  key[0] ^= 1;
  assert_true(hash(key, m, 15, 15) != 0xa129ca6149be45e5ull);
}

/* A key given in parts of any size hashes as the whole: the parts that
 * leave a word partly filled, then carry whole words (the channel map's
 * "<app id>\0" then name). */
static void test_split_updates(void **state) {
  (void)state;
  uint8_t key[16], m[63];
  for (int i = 0; i < 16; i++) key[i] = (uint8_t)(i * 7);
  for (int i = 0; i < 63; i++) m[i] = (uint8_t)(i * 13 + 1);
  for (size_t n = 0; n <= sizeof m; n++) {
    uint64_t whole = hash(key, m, n, sizeof m);
    for (size_t step = 1; step <= 17; step++) assert_true(hash(key, m, n, step) == whole);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_vectors), cmocka_unit_test(test_split_updates)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
