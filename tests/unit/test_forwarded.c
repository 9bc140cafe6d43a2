/* test_forwarded.c: trusted proxy lists and the X-Forwarded-For/-Proto
 * reading of net/forwarded.c (issue 14 item 3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "net/forwarded.h"
#include "net/http_parse.h"

static sw_cidr_t cidr(const char *s) {
  sw_cidr_t c;
  assert_int_equal(cidr_parse(s, strlen(s), &c), 0);
  return c;
}

static void addr(const char *s, uint8_t out[16]) { assert_int_equal(addr_parse(s, strlen(s), out), 0); }

static void test_cidr_parse(void **state) {
  (void)state;
  sw_cidr_t c;
  assert_int_equal(cidr("10.0.0.0/8").bits, 104);
  assert_int_equal(cidr("192.0.2.7").bits, 128);
  assert_int_equal(cidr("2001:db8::/32").bits, 32);
  assert_int_equal(cidr("::1").bits, 128);
  assert_int_equal(cidr("0.0.0.0/0").bits, 96);
  const char *bad[] = {"", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.1/8", "2001:db8::1/32", "10.0.0.0/8x",
                       "10.0.0.0/-1", "proxy.example", "10.0.0.0/0008", "10.0.0.0/8/8"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_int_equal(cidr_parse(bad[i], strlen(bad[i]), &c), -1);
}

static void test_addr_parse(void **state) {
  (void)state;
  uint8_t a[16], b[16];
  char text[46];
  addr("192.0.2.7", a);
  addr("192.0.2.7:8080", b);
  assert_memory_equal(a, b, 16);
  addr_format(a, text);
  assert_string_equal(text, "192.0.2.7");
  addr("2001:db8::1", a);
  addr("[2001:db8::1]:443", b);
  assert_memory_equal(a, b, 16);
  addr("[2001:db8::1]", b);
  assert_memory_equal(a, b, 16);
  addr_format(a, text);
  assert_string_equal(text, "2001:db8::1");
  const char *bad[] = {"", "unknown", "[192.0.2.7]", "[2001:db8::1", "[2001:db8::1]x", "192.0.2.7:80:80", "_hidden"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) assert_int_equal(addr_parse(bad[i], strlen(bad[i]), a), -1);
  addr("127.1.2.3", a);
  assert_true(addr_is_loopback(a));
  addr("::1", a);
  assert_true(addr_is_loopback(a));
  addr("::ffff:127.0.0.1", a); /* an IPv4-mapped loopback is the IPv4 one */
  assert_true(addr_is_loopback(a));
  assert_true(addr_is_v4(a));
  addr("128.0.0.1", a);
  assert_false(addr_is_loopback(a));
}

static void test_cidr_match(void **state) {
  (void)state;
  sw_cidr_t list[] = {cidr("10.0.0.0/8"), cidr("192.0.2.7"), cidr("2001:db8::/33"), cidr("172.16.0.0/12")};
  const size_t n = sizeof list / sizeof *list;
  uint8_t a[16];
  const char *in[] = {"10.1.2.3", "10.255.255.255", "192.0.2.7", "2001:db8:7fff::1", "172.31.0.1", "::ffff:10.0.0.1"};
  const char *out[] = {"11.0.0.0", "192.0.2.8", "2001:db8:8000::1", "172.32.0.1", "::a00:1", "2001:db9::"};
  for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
    addr(in[i], a);
    assert_true(cidr_match(list, n, a));
  }
  for (size_t i = 0; i < sizeof out / sizeof *out; i++) {
    addr(out[i], a);
    assert_false(cidr_match(list, n, a));
  }
  assert_false(cidr_match(NULL, 0, a));
}

/* A request with the given head lines. */
static void parse(const char *head_lines, char *buf, size_t cap, sw_http_req_t *req) {
  snprintf(buf, cap, "GET / HTTP/1.1\r\nHost: x\r\n%s\r\n", head_lines);
  assert_true(http_req_parse((const uint8_t *)buf, strlen(buf), NULL, req) > 0);
}

/* The client forwarded_for finds, as text, or "-" for none. */
static const char *client(const char *head_lines, const sw_cidr_t *trusted, size_t n, char out[46]) {
  char buf[1024];
  sw_http_req_t req;
  uint8_t a[16];
  parse(head_lines, buf, sizeof buf, &req);
  if (!forwarded_for(&req, trusted, n, a)) return "-";
  addr_format(a, out);
  return out;
}

static void test_forwarded_for(void **state) {
  (void)state;
  sw_cidr_t trusted[] = {cidr("10.0.0.0/8"), cidr("::1")};
  const size_t n = 2;
  char t[46];
  assert_string_equal(client("", trusted, n, t), "-");
  assert_string_equal(client("X-Forwarded-For: 203.0.113.5\r\n", trusted, n, t), "203.0.113.5");
  /* The rightmost address that is not a trusted proxy. */
  assert_string_equal(client("X-Forwarded-For: 198.51.100.1, 203.0.113.5, 10.0.0.2\r\n", trusted, n, t), "203.0.113.5");
  assert_string_equal(client("X-Forwarded-For: 127.0.0.1, 203.0.113.5\r\n", trusted, n, t), "203.0.113.5");
  /* All trusted: the leftmost. */
  assert_string_equal(client("X-Forwarded-For: 10.0.0.9 ,10.0.0.2\r\n", trusted, n, t), "10.0.0.9");
  /* Several headers are one list, in order. */
  assert_string_equal(client("X-Forwarded-For: 203.0.113.5\r\nX-Forwarded-For: 10.0.0.2\r\n", trusted, n, t),
                      "203.0.113.5");
  assert_string_equal(client("X-Forwarded-For: 10.0.0.2\r\nX-Forwarded-For: 203.0.113.5, ::1\r\n", trusted, n, t),
                      "203.0.113.5");
  /* Not an address: the walk stops at the last good one, or finds none. */
  assert_string_equal(client("X-Forwarded-For: 203.0.113.5, unknown, 10.0.0.2\r\n", trusted, n, t), "10.0.0.2");
  assert_string_equal(client("X-Forwarded-For: unknown\r\n", trusted, n, t), "-");
  assert_string_equal(client("X-Forwarded-For: \r\n", trusted, n, t), "-");
  assert_string_equal(client("X-Forwarded-For: ,, 203.0.113.5 ,\r\n", trusted, n, t), "203.0.113.5");
  assert_string_equal(client("x-forwarded-for: [2001:db8::5]:443\r\n", trusted, n, t), "2001:db8::5");
}

static bool https(const char *head_lines) {
  char buf[1024];
  sw_http_req_t req;
  parse(head_lines, buf, sizeof buf, &req);
  return forwarded_https(&req);
}

static void test_forwarded_https(void **state) {
  (void)state;
  assert_false(https(""));
  assert_true(https("X-Forwarded-Proto: https\r\n"));
  assert_true(https("X-Forwarded-Proto: HTTPS\r\n"));
  assert_false(https("X-Forwarded-Proto: http\r\n"));
  /* What the nearest proxy wrote counts: the last value of the last header. */
  assert_false(https("X-Forwarded-Proto: https, http\r\n"));
  assert_true(https("X-Forwarded-Proto: http, https\r\n"));
  assert_false(https("X-Forwarded-Proto: https\r\nX-Forwarded-Proto: http\r\n"));
  assert_false(https("X-Forwarded-Proto: httpsx\r\n"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cidr_parse),     cmocka_unit_test(test_addr_parse),   cmocka_unit_test(test_cidr_match),
      cmocka_unit_test(test_forwarded_for),  cmocka_unit_test(test_forwarded_https),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
