/* Unit tests for channel serials (core/serial.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/serial.h"

static void round_trip(void **state) {
  const int64_t values[] = {0, 1, 15, 16, 255, 4096, 1700000000000LL, INT64_MAX};
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    char s[SW_SERIAL_LEN + 1];
    serial_format(values[i], s);
    assert_int_equal(strlen(s), SW_SERIAL_LEN);
    int64_t back = -1;
    assert_int_equal(serial_parse(s, strlen(s), &back), 0);
    assert_true(back == values[i]);
  }
}

/* The exact text: sixteen lowercase hex digits, zero-padded (as "%016llx"). */
static void exact_text(void **state) {
  (void)state;
  char s[SW_SERIAL_LEN + 1];
  serial_format(0, s);
  assert_string_equal(s, "0000000000000000");
  serial_format(0x1a2b3c, s);
  assert_string_equal(s, "00000000001a2b3c");
  serial_format(INT64_MAX, s);
  assert_string_equal(s, "7fffffffffffffff");
}

/* Serials of one channel must sort as strings the way their seqs sort (TM2r). */
static void sorts_as_strings(void **state) {
  char a[SW_SERIAL_LEN + 1], b[SW_SERIAL_LEN + 1];
  for (int64_t x = 0; x < 5000; x += 7) {
    serial_format(x, a);
    serial_format(x + 1, b);
    assert_true(strcmp(a, b) < 0);
  }
  serial_format(9, a);
  serial_format(10, b);
  assert_true(strcmp(a, b) < 0);
}

static void rejects_malformed(void **state) {
  int64_t v;
  const char *bad[] = {"", "0", "000000000000000", "00000000000000000", "000000000000000g",
                       "000000000000000A", "-00000000000001", "8000000000000000", "ffffffffffffffff",
                       " 000000000000001"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(serial_parse(bad[i], strlen(bad[i]), &v), -1);
  assert_int_equal(serial_parse(NULL, 16, &v), -1);
  assert_int_equal(serial_parse("7fffffffffffffff", 16, &v), 0);
  assert_true(v == INT64_MAX);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(round_trip),
      cmocka_unit_test(exact_text),
      cmocka_unit_test(sorts_as_strings),
      cmocka_unit_test(rejects_malformed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
