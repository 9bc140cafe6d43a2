/* Unit tests for the appendRollupWindow transport param (core/rollup.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/rollup.h"

/* Whole milliseconds 0 to 500; more is the maximum; anything else (absent,
 * empty, signed, with a unit, not a number) is Ably's default, 40. */
static void window_param(void **state) {
  (void)state;
  assert_int_equal(rollup_window_param(NULL), SW_ROLLUP_DEFAULT_MS);
  assert_int_equal(SW_ROLLUP_DEFAULT_MS, 40);
  assert_int_equal(rollup_window_param("0"), 0);
  assert_int_equal(rollup_window_param("20"), 20);
  assert_int_equal(rollup_window_param("40"), 40);
  assert_int_equal(rollup_window_param("100"), 100);
  assert_int_equal(rollup_window_param("500"), 500);
  assert_int_equal(rollup_window_param("0040"), 40);
  assert_int_equal(rollup_window_param("501"), SW_ROLLUP_MAX_MS);
  assert_int_equal(rollup_window_param("99999999999999999999999"), SW_ROLLUP_MAX_MS);
  assert_int_equal(rollup_window_param(""), SW_ROLLUP_DEFAULT_MS);
  assert_int_equal(rollup_window_param("-5"), SW_ROLLUP_DEFAULT_MS);
  assert_int_equal(rollup_window_param("+5"), SW_ROLLUP_DEFAULT_MS);
  assert_int_equal(rollup_window_param("40ms"), SW_ROLLUP_DEFAULT_MS);
  assert_int_equal(rollup_window_param("1.5"), SW_ROLLUP_DEFAULT_MS);
  assert_int_equal(rollup_window_param("abc"), SW_ROLLUP_DEFAULT_MS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(window_param),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
