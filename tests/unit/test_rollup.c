/* Unit tests for the appendRollupWindow transport param (core/rollup.c)
 * and its configured default (limits.appendRollupWindow). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/rollup.h"

/* Whole milliseconds 0 to 500; more is the maximum; anything else (absent,
 * empty, signed, with a unit, not a number) is the server's default
 * (Ably's 40 unless configured). */
static void window_param(void **state) {
  (void)state;
  assert_int_equal(rollup_window_param(NULL, SW_ROLLUP_DEFAULT_MS), SW_ROLLUP_DEFAULT_MS);
  assert_int_equal(SW_ROLLUP_DEFAULT_MS, 40);
  assert_int_equal(rollup_window_param("0", SW_ROLLUP_DEFAULT_MS), 0);
  assert_int_equal(rollup_window_param("20", SW_ROLLUP_DEFAULT_MS), 20);
  assert_int_equal(rollup_window_param("40", SW_ROLLUP_DEFAULT_MS), 40);
  assert_int_equal(rollup_window_param("100", SW_ROLLUP_DEFAULT_MS), 100);
  assert_int_equal(rollup_window_param("500", SW_ROLLUP_DEFAULT_MS), 500);
  assert_int_equal(rollup_window_param("0040", SW_ROLLUP_DEFAULT_MS), 40);
  assert_int_equal(rollup_window_param("501", SW_ROLLUP_DEFAULT_MS), SW_ROLLUP_MAX_MS);
  assert_int_equal(rollup_window_param("99999999999999999999999", SW_ROLLUP_DEFAULT_MS), SW_ROLLUP_MAX_MS);
  assert_int_equal(rollup_window_param("", SW_ROLLUP_DEFAULT_MS), SW_ROLLUP_DEFAULT_MS);
  assert_int_equal(rollup_window_param("-5", SW_ROLLUP_DEFAULT_MS), SW_ROLLUP_DEFAULT_MS);
  assert_int_equal(rollup_window_param("+5", SW_ROLLUP_DEFAULT_MS), SW_ROLLUP_DEFAULT_MS);
  assert_int_equal(rollup_window_param("40ms", SW_ROLLUP_DEFAULT_MS), SW_ROLLUP_DEFAULT_MS);
  assert_int_equal(rollup_window_param("1.5", SW_ROLLUP_DEFAULT_MS), SW_ROLLUP_DEFAULT_MS);
  assert_int_equal(rollup_window_param("abc", SW_ROLLUP_DEFAULT_MS), SW_ROLLUP_DEFAULT_MS);
  /* The server's configured default stands in for a missing or bad value only. */
  assert_int_equal(rollup_window_param(NULL, 0), 0);
  assert_int_equal(rollup_window_param("x", 100), 100);
  assert_int_equal(rollup_window_param("20", 0), 20);
}

static int load(sw_config_t *c, const char *json) {
  char path[] = "/tmp/sw-test-rollup-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
  close(fd);
  char err[256];
  int rc = config_load_file(c, path, err, sizeof err);
  unlink(path);
  return rc;
}

/* limits.appendRollupWindow: the window of connections that give none;
 * Ably's 40 by default, 0 allowed (no rollup), more than 500 is 500,
 * negative or not an integer ignored. */
static void config_default(void **state) {
  (void)state;
  sw_config_t c;
  config_defaults(&c);
  assert_int_equal(c.limits.append_rollup_window, SW_ROLLUP_DEFAULT_MS);
  assert_int_equal(load(&c, "{\"limits\":{\"appendRollupWindow\":0}}"), 0);
  assert_int_equal(c.limits.append_rollup_window, 0);
  assert_int_equal(load(&c, "{\"limits\":{\"appendRollupWindow\":100}}"), 0);
  assert_int_equal(c.limits.append_rollup_window, 100);
  assert_int_equal(load(&c, "{\"limits\":{\"appendRollupWindow\":5000}}"), 0);
  assert_int_equal(c.limits.append_rollup_window, SW_ROLLUP_MAX_MS);
  assert_int_equal(load(&c, "{\"limits\":{\"appendRollupWindow\":-1}}"), 0);
  assert_int_equal(c.limits.append_rollup_window, SW_ROLLUP_MAX_MS);
  assert_int_equal(load(&c, "{\"limits\":{\"appendRollupWindow\":\"20\"}}"), 0);
  assert_int_equal(c.limits.append_rollup_window, SW_ROLLUP_MAX_MS);
  config_free(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(window_param),
      cmocka_unit_test(config_default),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
