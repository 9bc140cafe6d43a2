/* Unit tests for subscription filter expressions (proto/filter.c): the
 * JMESPath subset, its semantics on name and headers, and its refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/filter.h"

static bool match(const char *expr, const char *name, const char *headers_json) {
  sw_error_t err = {0};
  sw_filter_t *f = filter_compile(expr, strlen(expr), &err);
  if (!f) fail_msg("compile %s: %d %s", expr, err.code, err.message);
  json_t *h = headers_json ? json_loads(headers_json, 0, NULL) : NULL;
  bool r = filter_match(f, name, h);
  json_decref(h);
  filter_free(f);
  return r;
}

/* The expression of ably-js's "subscribes to filtered channel". */
static void ablyjs_example(void **state) {
  (void)state;
  const char *e = "name == `\"filtered\"` && headers.number == `26095`";
  assert_true(match(e, "filtered", "{\"name\":\"Lorem Choo\",\"number\":26095,\"bool\":true}"));
  assert_true(match(e, "filtered", "{\"name\":\"John Bull\",\"number\":26095,\"bool\":false}"));
  assert_false(match(e, "filtered", NULL));
  assert_false(match(e, "filtered", "{\"number\":12345}"));
  assert_false(match(e, "end", "{\"number\":26095}"));
  assert_false(match(e, NULL, "{\"number\":26095}"));
}

static void operators(void **state) {
  (void)state;
  const char *h = "{\"flavor\":\"strawberry\",\"cost\":35,\"temp\":3,\"ok\":true,\"empty\":\"\"}";
  assert_true(match("headers.cost > `30`", "x", h));
  assert_false(match("headers.cost < `30`", "x", h));
  assert_true(match("headers.cost >= `35` && headers.cost <= `35`", "x", h));
  assert_true(match("headers.flavor == 'strawberry'", "x", h));
  assert_true(match("headers.flavor != 'vanilla'", "x", h));
  assert_true(match("headers.ok", "x", h));
  assert_false(match("headers.empty", "x", h));
  assert_true(match("!headers.empty", "x", h));
  assert_true(match("!(headers.temp > `5`) || name == 'no'", "x", h));
  assert_true(match("headers.missing == `null`", "x", h));
  assert_false(match("headers.missing", "x", h));
  assert_true(match("headers.\"flavor\" == 'strawberry'", "x", h));
  /* Ordering of non-numbers is null, so false. */
  assert_false(match("headers.flavor > 'a'", "x", h));
  assert_true(match("!(headers.flavor > 'a')", "x", h));
  /* && and || return operands (JMESPath), the message passes on a true value. */
  assert_true(match("headers.flavor || headers.missing", "x", h));
  assert_false(match("headers.missing && headers.flavor", "x", h));
  /* Fields of what is not an object are null; unknown roots too. */
  assert_true(match("headers.cost.x == `null` && clientId == `null`", "x", h));
  /* Precedence: ! binds tighter than ==, && tighter than ||. */
  assert_true(match("name == 'a' || name == 'x' && headers.ok", "x", h));
  assert_false(match("(name == 'a' || name == 'x') && headers.empty", "x", h));
  assert_true(match("`true`", NULL, NULL));
  assert_false(match("`[]`", NULL, NULL));
  assert_true(match("'it\\'s' == `\"it's\"`", NULL, NULL));
  assert_true(match("`\"a\\`b\"` == 'a`b'", NULL, NULL));
}

static void refusals(void **state) {
  (void)state;
  const char *bad[] = {
      "", "name ==", "(name", "name)", "`{`", "'open", "name == `1` extra", "foo[0]", "length(name)",
      "name | headers", "*.x", "headers.", "\"a\\u0000b\" == `1`", "@", "name =", "name & name",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    sw_error_t err = {0};
    sw_filter_t *f = filter_compile(bad[i], strlen(bad[i]), &err);
    if (f) fail_msg("compiled %s", bad[i]);
    assert_int_equal(err.code, 40010);
    assert_int_equal(err.status, 400);
  }
}

static void bounds(void **state) {
  (void)state;
  char deep[200];
  memset(deep, '(', 100);
  memcpy(deep + 100, "name", 5);
  sw_error_t err = {0};
  assert_null(filter_compile(deep, strlen(deep), &err));
  assert_int_equal(err.code, 40010);
  char nots[100];
  memset(nots, '!', 60);
  memcpy(nots + 60, "name", 5);
  assert_null(filter_compile(nots, strlen(nots), &err));
  char big[SW_FILTER_MAX_LEN + 2];
  memset(big, ' ', sizeof big);
  memcpy(big, "name", 4);
  assert_null(filter_compile(big, sizeof big, &err));
  /* Many operands: over the node bound, refused rather than grown. */
  char many[SW_FILTER_MAX_LEN];
  size_t n = 0;
  while (n + 8 < sizeof many) n += (size_t)snprintf(many + n, sizeof many - n, "a||");
  memcpy(many + n, "a", 2);
  assert_null(filter_compile(many, strlen(many), &err));
  assert_int_equal(err.code, 40010);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(ablyjs_example),
      cmocka_unit_test(operators),
      cmocka_unit_test(refusals),
      cmocka_unit_test(bounds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
