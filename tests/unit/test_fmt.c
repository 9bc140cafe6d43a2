/* util/fmt.h: integers and ids without printf, checked against snprintf. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#include "util/fmt.h"

static void test_integers(void **state) {
  (void)state;
  const int64_t v[] = {0, 1, 9, 10, 99, 100, 12345, -1, -10, INT64_MAX, INT64_MIN, 1000000000000LL};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    char want[32], got[32];
    snprintf(want, sizeof want, "%" PRId64, v[i]);
    got[fmt_i64(got, v[i])] = '\0';
    assert_string_equal(got, want);
  }
  char got[32];
  got[fmt_u64(got, UINT64_MAX)] = '\0';
  assert_string_equal(got, "18446744073709551615");
}

static void test_ids(void **state) {
  (void)state;
  char out[64], want[64];
  assert_int_equal(fmt_id(out, sizeof out, "abc-DEF_123", 42), strlen("abc-DEF_123:42"));
  assert_string_equal(out, "abc-DEF_123:42");
  fmt_id(out, sizeof out, "", -7);
  assert_string_equal(out, ":-7");
  /* Cut exactly as snprintf cuts, at every capacity. */
  for (size_t cap = 1; cap <= 20; cap++) {
    size_t n = fmt_id(out, cap, "conn123456", 98765);
    snprintf(want, cap, "%s:%d", "conn123456", 98765);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_integers), cmocka_unit_test(test_ids)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
