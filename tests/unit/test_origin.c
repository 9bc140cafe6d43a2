/* Unit tests for the same-origin check guarding cookie credentials (net/origin.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "net/origin.h"

static sw_slice_t S(const char *s) { return (sw_slice_t){s, strlen(s)}; }

static void matches(void **state) {
  assert_true(origin_matches_host(S("http://localhost:8080"), S("localhost:8080")));
  assert_true(origin_matches_host(S("https://Chat.Example.com"), S("chat.example.com")));
  assert_true(origin_matches_host(S("http://127.0.0.1:3000"), S("127.0.0.1:3000")));
}

static void refuses(void **state) {
  assert_false(origin_matches_host(S("http://evil.example"), S("chat.example.com")));
  assert_false(origin_matches_host(S("http://localhost:8081"), S("localhost:8080")));
  assert_false(origin_matches_host(S("http://chat.example.com.evil.example"), S("chat.example.com")));
  assert_false(origin_matches_host(S("null"), S("chat.example.com")));
  assert_false(origin_matches_host(S("http://"), S("")));
  assert_false(origin_matches_host(S(""), S("")));
}

static void requests(void **state) {
  const char *same = "GET / HTTP/1.1\r\nHost: a.test:80\r\nOrigin: http://a.test:80\r\n\r\n";
  const char *cross = "GET / HTTP/1.1\r\nHost: a.test:80\r\nOrigin: http://b.test\r\n\r\n";
  const char *none = "GET / HTTP/1.1\r\nHost: a.test:80\r\n\r\n";
  sw_http_req_t req;
  assert_true(http_req_parse((const uint8_t *)same, strlen(same), NULL, &req) > 0);
  assert_true(origin_same_site(&req));
  assert_true(http_req_parse((const uint8_t *)cross, strlen(cross), NULL, &req) > 0);
  assert_false(origin_same_site(&req));
  assert_true(http_req_parse((const uint8_t *)none, strlen(none), NULL, &req) > 0);
  assert_true(origin_same_site(&req));
}

static ssize_t cookie(const char *head, const char *name, char *out, size_t cap) {
  sw_http_req_t req;
  assert_true(http_req_parse((const uint8_t *)head, strlen(head), NULL, &req) > 0);
  return origin_cookie_get(&req, name, out, cap);
}

static void cookies(void **state) {
  char v[16];
  assert_int_equal(cookie("GET / HTTP/1.1\r\nHost: a\r\nCookie: x=1; tok=ab%2Ecd; y=2\r\n\r\n", "tok", v, sizeof v), 5);
  assert_string_equal(v, "ab.cd");
  /* A longer name that starts with the wanted one is another cookie. */
  assert_int_equal(cookie("GET / HTTP/1.1\r\nHost: a\r\nCookie: tokx=1\r\n\r\n", "tok", v, sizeof v), -1);
  assert_int_equal(cookie("GET / HTTP/1.1\r\nHost: a\r\n\r\n", "tok", v, sizeof v), -1);
  /* Cross-site requests do not get to use the cookie. */
  assert_int_equal(cookie("GET / HTTP/1.1\r\nHost: a\r\nOrigin: http://b\r\nCookie: tok=1\r\n\r\n", "tok", v, sizeof v), -1);
  assert_int_equal(cookie("GET / HTTP/1.1\r\nHost: a\r\nCookie: tok=%zz\r\n\r\n", "tok", v, sizeof v), -2);
  assert_int_equal(cookie("GET / HTTP/1.1\r\nHost: a\r\nCookie: tok=0123456789abcdefXYZ\r\n\r\n", "tok", v, sizeof v), -2);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(matches), cmocka_unit_test(refuses), cmocka_unit_test(requests),
                                     cmocka_unit_test(cookies)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
