/* Unit tests for auth/claim_template: expansion, and that no claim value
 * can widen a capability resource. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/claim_template.h"

static json_t *claims(void) {
  return json_loads("{\"sub\":\"user_2abc\",\"org_id\":\"org-7\",\"email\":\"a.b@example.com\",\"num\":42,"
                    "\"https://example.com/org\":\"acme\",\"empty\":\"\",\"obj\":{\"sub\":\"x\"},"
                    "\"pipe\":\"auth0|123\"}",
                    0, NULL);
}

static void expands_to(const char *tmpl, const char *want) {
  json_t *c = claims();
  sw_error_t err = {0};
  assert_int_equal(tmpl_check(tmpl, &err), 0);
  char *got = tmpl_expand(tmpl, c, &err);
  if (!got) print_message("%s: %s\n", tmpl, err.message);
  assert_non_null(got);
  assert_string_equal(got, want);
  free(got);
  json_decref(c);
}

static void refused(const char *tmpl, int code) {
  json_t *c = claims();
  sw_error_t err = {0};
  char *got = tmpl_expand(tmpl, c, &err);
  assert_null(got);
  assert_int_equal(err.code, code);
  json_decref(c);
}

static void test_expand(void **state) {
  expands_to("{sub}", "user_2abc");
  expands_to("conversations:{sub}:*", "conversations:user_2abc:*");
  expands_to("org:{org_id}:{sub}", "org:org-7:user_2abc");
  expands_to("{email}", "a.b@example.com");
  expands_to("{pipe}", "auth0|123");
  expands_to("t:{https://example.com/org}", "t:acme");
  expands_to("no placeholders", "no placeholders");
  expands_to("{{literal}}", "{literal}");
  expands_to("", "");
  char *sample = tmpl_sample("org:{org_id}:{{x}}:{sub}");
  assert_string_equal(sample, "org:x:{x}:x");
  free(sample);
  assert_null(tmpl_sample("a:{sub"));
  assert_true(tmpl_has_placeholder("a:{sub}"));
  assert_false(tmpl_has_placeholder("a:{{sub}}"));
}

static void test_bad_values(void **state) {
  refused("{missing}", 40101);
  refused("{num}", 40101);
  refused("{obj}", 40101);
  refused("{empty}", 40101);
  json_t *c = json_object();
  static const char *const bad[] = {"*", "a:*", "[x]", "a:b", "a b", "a*", "[*]", "{x}", "a\nb", "ä", "a/b", "a,b"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    json_object_set_new(c, "sub", json_string(bad[i]));
    sw_error_t err = {0};
    char *got = tmpl_expand("conversations:{sub}:*", c, &err);
    assert_null(got);
    assert_int_equal(err.code, 40101);
    assert_null(strstr(err.message, bad[i][0] == '*' ? "**" : bad[i])); /* the value is not echoed */
  }
  /* Embedded NUL. */
  json_object_set_new(c, "sub", json_stringn("a\0b", 3));
  sw_error_t err = {0};
  assert_null(tmpl_expand("{sub}", c, &err));
  /* Too long a value. */
  char v[SW_TMPL_MAX_VALUE + 2];
  memset(v, 'a', sizeof v - 1);
  v[sizeof v - 1] = '\0';
  json_object_set_new(c, "sub", json_string(v));
  assert_null(tmpl_expand("{sub}", c, &err));
  v[SW_TMPL_MAX_VALUE] = '\0';
  json_object_set_new(c, "sub", json_string(v));
  char *ok = tmpl_expand("{sub}", c, &err);
  assert_non_null(ok);
  free(ok);
  /* Expansion over the total limit. */
  char t[64 * 5 + 1] = "";
  for (int i = 0; i < 64; i++) strcat(t, "{sub}");
  assert_null(tmpl_expand(t, c, &err));
  assert_int_equal(err.code, 40101);
  json_decref(c);
}

static void test_syntax(void **state) {
  static const char *const bad[] = {"{", "}", "{sub", "sub}", "{}", "a{b{c}}", "{a}}", "x}y"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    sw_error_t err = {0};
    print_message("%s\n", bad[i]);
    assert_int_equal(tmpl_check(bad[i], &err), -1);
    assert_int_equal(err.code, 40000);
  }
  char big[SW_TMPL_MAX_LEN + 2];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  sw_error_t err = {0};
  assert_int_equal(tmpl_check(big, &err), -1);
}

static void test_value_charset(void **state) {
  for (int c = 1; c < 256; c++) {
    char s[2] = {(char)c, 0};
    bool want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("_.@|-", c);
    assert_int_equal(tmpl_value_ok(s, 1), want);
  }
  assert_false(tmpl_value_ok("", 0));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_expand),
      cmocka_unit_test(test_bad_values),
      cmocka_unit_test(test_syntax),
      cmocka_unit_test(test_value_charset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
