/* test_url.c: percent-decoding/encoding and query-string access. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "net/url.h"

static ssize_t dec(const char *s, char *out, size_t cap, bool plus) {
  return url_decode(s, strlen(s), out, cap, plus);
}

static void test_decode_basic(void **state) {
  (void)state;
  char out[64];
  assert_int_equal(dec("", out, sizeof out, true), 0);
  assert_string_equal(out, "");
  assert_int_equal(dec("abc", out, sizeof out, true), 3);
  assert_string_equal(out, "abc");
  assert_int_equal(dec("%41%62%2f%2F", out, sizeof out, true), 4);
  assert_string_equal(out, "Ab//");
  assert_int_equal(dec("a+b%20c", out, sizeof out, true), 5);
  assert_string_equal(out, "a b c");
  assert_int_equal(dec("a+b%2B", out, sizeof out, false), 4);
  assert_string_equal(out, "a+b+");
  assert_int_equal(dec("caf%C3%A9", out, sizeof out, true), 5);
  assert_string_equal(out, "caf\xc3\xa9");
  assert_int_equal(dec("%25%32%35", out, sizeof out, true), 3); /* decoded once only */
  assert_string_equal(out, "%25");
  assert_int_equal(dec("%ff", out, sizeof out, true), 1);
  assert_int_equal((unsigned char)out[0], 0xff);
  /* Only the first n bytes are read. */
  assert_int_equal(url_decode("abc%4", 3, out, sizeof out, true), 3);
  assert_string_equal(out, "abc");
}

static void test_decode_malformed(void **state) {
  (void)state;
  static const char *bad[] = {"%", "%4", "a%", "a%4", "%zz", "%4g", "%g4", "% 1", "%00", "x%00y"};
  char out[64];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    strcpy(out, "junk");
    if (dec(bad[i], out, sizeof out, true) != -1) fail_msg("bad[%zu] = %s decoded", i, bad[i]);
    assert_string_equal(out, "");
  }
  /* A raw NUL inside the counted input. */
  assert_int_equal(url_decode("a\0b", 3, out, sizeof out, true), -1);
}

static void test_decode_capacity(void **state) {
  (void)state;
  char out[4];
  assert_int_equal(dec("abc", out, 4, true), 3); /* exactly fits with the NUL */
  assert_string_equal(out, "abc");
  assert_int_equal(dec("abcd", out, 4, true), -1);
  assert_int_equal(dec("%41%42%43", out, 4, true), 3); /* capacity counts decoded bytes */
  assert_int_equal(dec("%41%42%43%44", out, 4, true), -1);
  assert_int_equal(dec("", out, 1, true), 0);
  assert_int_equal(dec("a", out, 1, true), -1);
  assert_int_equal(dec("", out, 0, true), -1);
}

static sw_slice_t sl(const char *s) { return (sw_slice_t){s, strlen(s)}; }

static void test_query_get(void **state) {
  (void)state;
  char out[32];
  sw_slice_t q = sl("key=abc.def%3Aghi&clientId=bob+smith&flag&empty=&key=second&eq=a=b");
  assert_int_equal(url_query_get(q, "key", out, sizeof out), 11);
  assert_string_equal(out, "abc.def:ghi"); /* the first of two */
  assert_int_equal(url_query_get(q, "clientId", out, sizeof out), 9);
  assert_string_equal(out, "bob smith");
  assert_int_equal(url_query_get(q, "flag", out, sizeof out), 0);
  assert_string_equal(out, "");
  assert_int_equal(url_query_get(q, "empty", out, sizeof out), 0);
  assert_int_equal(url_query_get(q, "eq", out, sizeof out), 3);
  assert_string_equal(out, "a=b");
  assert_int_equal(url_query_get(q, "missing", out, sizeof out), -1);
  assert_int_equal(url_query_get(q, "ke", out, sizeof out), -1);  /* no prefix matches */
  assert_int_equal(url_query_get(q, "keys", out, sizeof out), -1);
  assert_int_equal(url_query_get(q, "clientid", out, sizeof out), -1); /* case-sensitive */
  assert_int_equal(url_query_get(sl(""), "key", out, sizeof out), -1);
  assert_int_equal(url_query_get((sw_slice_t){NULL, 0}, "key", out, sizeof out), -1);

  /* Names are compared decoded. */
  assert_int_equal(url_query_get(sl("client%49d=x"), "clientId", out, sizeof out), 1);
  assert_int_equal(url_query_get(sl("a+b=1"), "a b", out, sizeof out), 1);
  /* A malformed name is skipped, not fatal. */
  assert_int_equal(url_query_get(sl("k%zz=1&k=2"), "k", out, sizeof out), 1);
  assert_string_equal(out, "2");
  /* Malformed or oversized values are -2. */
  assert_int_equal(url_query_get(sl("k=%zz"), "k", out, sizeof out), -2);
  assert_int_equal(url_query_get(sl("k=%00"), "k", out, sizeof out), -2);
  assert_int_equal(url_query_get(sl("k=0123456789"), "k", out, 10), -2);
  assert_int_equal(url_query_get(sl("k=012345678"), "k", out, 10), 9);
  /* The slice length bounds the search, not a NUL. */
  assert_int_equal(url_query_get((sw_slice_t){"a=1&b=2", 3}, "b", out, sizeof out), -1);
  assert_int_equal(url_query_get((sw_slice_t){"a=1&b=2", 3}, "a", out, sizeof out), 1);
}

static void test_query_next(void **state) {
  (void)state;
  sw_slice_t q = sl("&a=1&&b&c=3=4&=5&");
  size_t pos = 0;
  sw_slice_t k, v;
  static const char *want[][2] = {{"a", "1"}, {"b", ""}, {"c", "3=4"}, {"", "5"}};
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(url_query_next(q, &pos, &k, &v), 1);
    assert_int_equal(k.n, strlen(want[i][0]));
    assert_memory_equal(k.p, want[i][0], k.n);
    assert_int_equal(v.n, strlen(want[i][1]));
    assert_memory_equal(v.p, want[i][1], v.n);
  }
  assert_int_equal(url_query_next(q, &pos, &k, &v), 0);
  assert_int_equal(url_query_next(q, &pos, &k, &v), 0); /* stays at the end */
  pos = 0;
  assert_int_equal(url_query_next(sl(""), &pos, &k, &v), 0);
  pos = 0;
  assert_int_equal(url_query_next(sl("&&&"), &pos, &k, &v), 0);
}

static void test_encode(void **state) {
  (void)state;
  sw_buf_t b = {0};
  const char *in = "AZaz09-._~ /?#&=+%\xc3\xa9";
  assert_int_equal(url_encode(&b, in, strlen(in)), 0);
  const char *want = "AZaz09-._~%20%2F%3F%23%26%3D%2B%25%C3%A9";
  assert_int_equal(b.len, strlen(want));
  assert_memory_equal(b.data, want, b.len);
  /* Appends; empty input adds nothing. */
  assert_int_equal(url_encode(&b, "", 0), 0);
  assert_int_equal(b.len, strlen(want));
  assert_int_equal(url_encode(&b, "\0x", 2), 0);
  assert_memory_equal(b.data + strlen(want), "%00x", 4);
  buf_free(&b);

  /* Round trip for every non-NUL byte. */
  char all[255], back[256];
  for (int i = 0; i < 255; i++) all[i] = (char)(i + 1);
  assert_int_equal(url_encode(&b, all, sizeof all), 0);
  assert_int_equal(url_decode((const char *)b.data, b.len, back, sizeof back, false), 255);
  assert_memory_equal(back, all, sizeof all);
  buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decode_basic),  cmocka_unit_test(test_decode_malformed),
      cmocka_unit_test(test_decode_capacity), cmocka_unit_test(test_query_get),
      cmocka_unit_test(test_query_next),    cmocka_unit_test(test_encode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
