/* test_http_parse.c: http_req_parse, header lookup, slices, response heads. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/http_parse.h"
#include "net/http_response.h"

static int parse_str(const char *s, const sw_http_limits_t *lim, sw_http_req_t *r) {
  return http_req_parse((const uint8_t *)s, strlen(s), lim, r);
}

static void assert_slice(sw_slice_t s, const char *want) {
  if (!slice_eq(s, want)) fail_msg("slice [%.*s] != [%s]", (int)s.n, s.p ? s.p : "", want);
}

static const char get_req[] = "GET /channels/foo/messages?limit=10&direction=backwards HTTP/1.1\r\n"
                              "Host: localhost:8080\r\n"
                              "Accept: application/json\r\n"
                              "X-Ably-Version: 2\r\n"
                              "\r\n";

static void test_complete_get(void **state) {
  (void)state;
  sw_http_req_t r;
  int n = parse_str(get_req, NULL, &r);
  assert_int_equal(n, (int)strlen(get_req));
  assert_int_equal(r.method, HTTP_GET);
  assert_int_equal(r.http_major, 1);
  assert_int_equal(r.http_minor, 1);
  assert_slice(r.target, "/channels/foo/messages?limit=10&direction=backwards");
  assert_slice(r.path, "/channels/foo/messages");
  assert_slice(r.query, "limit=10&direction=backwards");
  assert_int_equal(r.n_headers, 3);
  assert_slice(r.hname[0], "Host");
  assert_slice(r.hval[0], "localhost:8080");
  assert_slice(r.hname[2], "X-Ably-Version");
  assert_slice(r.hval[2], "2");
  assert_true(r.keep_alive);
  assert_false(r.upgrade);
  assert_int_equal(r.head_len, strlen(get_req));
  assert_int_equal(r.body.n, 0);
  /* Slices point into the caller's buffer, not copies. */
  assert_ptr_equal(r.target.p, get_req + 4);
}

static const char post_req[] = "POST /channels/c/messages HTTP/1.1\r\n"
                               "Host: x\r\n"
                               "Content-Type: application/json\r\n"
                               "Content-Length: 13\r\n"
                               "\r\n"
                               "{\"name\":\"hi\"}";

static void test_post_body(void **state) {
  (void)state;
  sw_http_req_t r;
  size_t len = strlen(post_req);
  int n = parse_str(post_req, NULL, &r);
  assert_int_equal(n, (int)len);
  assert_int_equal(r.method, HTTP_POST);
  assert_int_equal(r.head_len, len - 13);
  assert_int_equal(r.body.n, 13);
  assert_ptr_equal(r.body.p, post_req + r.head_len);
  assert_slice(r.body, "{\"name\":\"hi\"}");
  assert_slice(r.query, "");
  assert_slice(r.path, "/channels/c/messages");
}

static void check_all_prefixes(const char *req) {
  size_t len = strlen(req);
  /* Copy each prefix into its own allocation so ASan catches over-reads. */
  for (size_t i = 0; i < len; i++) {
    uint8_t *b = malloc(i ? i : 1);
    memcpy(b, req, i);
    sw_http_req_t r;
    int rc = http_req_parse(b, i, NULL, &r);
    if (rc != SW_HTTP_NEED_MORE) fail_msg("prefix %zu of %zu: rc %d", i, len, rc);
    free(b);
  }
  sw_http_req_t r;
  assert_int_equal(http_req_parse((const uint8_t *)req, len, NULL, &r), (int)len);
}

static void test_every_prefix_needs_more(void **state) {
  (void)state;
  check_all_prefixes(get_req);
  check_all_prefixes(post_req);
}

static void test_pipelined(void **state) {
  (void)state;
  char buf[1024];
  snprintf(buf, sizeof buf, "%s%s%s", post_req, get_req, "GET /x HT");
  size_t len = strlen(buf);
  sw_http_req_t r;
  int n1 = http_req_parse((const uint8_t *)buf, len, NULL, &r);
  assert_int_equal(n1, (int)strlen(post_req));
  assert_int_equal(r.method, HTTP_POST);
  assert_slice(r.body, "{\"name\":\"hi\"}");
  int n2 = http_req_parse((const uint8_t *)buf + n1, len - (size_t)n1, NULL, &r);
  assert_int_equal(n2, (int)strlen(get_req));
  assert_int_equal(r.method, HTTP_GET);
  assert_slice(r.query, "limit=10&direction=backwards");
  int n3 = http_req_parse((const uint8_t *)buf + n1 + n2, len - (size_t)(n1 + n2), NULL, &r);
  assert_int_equal(n3, SW_HTTP_NEED_MORE);
}

static void test_head_limit(void **state) {
  (void)state;
  size_t hl = strlen(get_req);
  sw_http_req_t r;
  sw_http_limits_t lim = {.max_head = hl, .max_body = 100};
  assert_int_equal(parse_str(get_req, &lim, &r), (int)hl); /* exactly at the limit */
  lim.max_head = hl - 1;
  assert_int_equal(parse_str(get_req, &lim, &r), SW_HTTP_HEAD_TOO_LARGE);

  /* An unterminated head is refused once it passes max_head, not before. */
  char big[4096];
  memset(big, 'a', sizeof big);
  memcpy(big, "GET / HTTP/1.1\r\nX-Long: ", 24);
  lim.max_head = 1000;
  assert_int_equal(http_req_parse((const uint8_t *)big, 1000, &lim, &r), SW_HTTP_NEED_MORE);
  assert_int_equal(http_req_parse((const uint8_t *)big, 1001, &lim, &r), SW_HTTP_HEAD_TOO_LARGE);
  assert_int_equal(http_req_parse((const uint8_t *)big, sizeof big, &lim, &r),
                   SW_HTTP_HEAD_TOO_LARGE);
  lim.max_head = 0;
  assert_int_equal(http_req_parse((const uint8_t *)big, 1, &lim, &r), SW_HTTP_HEAD_TOO_LARGE);
}

static void test_body_limit(void **state) {
  (void)state;
  sw_http_req_t r;
  sw_http_limits_t lim = {.max_head = 1024, .max_body = 12};
  /* Refused from the head alone, before any body byte. */
  char head[256];
  size_t hl = strlen(post_req) - 13;
  memcpy(head, post_req, hl);
  assert_int_equal(http_req_parse((const uint8_t *)head, hl, &lim, &r), SW_HTTP_BODY_TOO_LARGE);
  lim.max_body = 13;
  assert_int_equal(http_req_parse((const uint8_t *)head, hl, &lim, &r), SW_HTTP_NEED_MORE);
  /* The head is published while the body is outstanding. */
  assert_int_equal(r.head_len, hl);
  assert_int_equal(r.method, HTTP_POST);
  assert_slice(r.path, "/channels/c/messages");
  assert_slice(*http_req_header(&r, "content-type"), "application/json");
  assert_int_equal(r.body.n, 0);
  assert_int_equal(http_req_parse((const uint8_t *)post_req, hl + 4, &lim, &r), SW_HTTP_NEED_MORE);
  assert_int_equal(r.head_len, hl);
  assert_slice(r.body, "{\"na");
  assert_int_equal(http_req_parse((const uint8_t *)post_req, hl - 1, &lim, &r), SW_HTTP_NEED_MORE);
  assert_int_equal(r.head_len, 0);
  assert_int_equal(parse_str(post_req, &lim, &r), (int)strlen(post_req));
  assert_int_equal(parse_str("POST / HTTP/1.1\r\nContent-Length: 99999999999999999\r\n\r\n",
                             NULL, &r),
                   SW_HTTP_BODY_TOO_LARGE);
}

/* The head is fed in two pieces (max_head first); the body may straddle them. */
static void test_body_across_feed_boundary(void **state) {
  (void)state;
  size_t hl = strlen(post_req) - 13;
  sw_http_req_t r;
  for (size_t extra = 0; extra <= 13; extra++) {
    sw_http_limits_t lim = {.max_head = hl + extra, .max_body = 100};
    assert_int_equal(parse_str(post_req, &lim, &r), (int)strlen(post_req));
    assert_int_equal(r.head_len, hl);
    assert_slice(r.body, "{\"name\":\"hi\"}");
  }
}

static void test_chunked_refused(void **state) {
  (void)state;
  sw_http_req_t r;
  assert_int_equal(
      parse_str("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                NULL, &r),
      SW_HTTP_LENGTH_REQUIRED);
  /* Known as soon as the head is complete. */
  assert_int_equal(parse_str("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", NULL, &r),
                   SW_HTTP_LENGTH_REQUIRED);
}

static void test_header_count(void **state) {
  (void)state;
  char buf[8192];
  sw_http_req_t r;
  for (int count = SW_HTTP_MAX_HEADERS; count <= SW_HTTP_MAX_HEADERS + 1; count++) {
    size_t o = (size_t)snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < count; i++)
      o += (size_t)snprintf(buf + o, sizeof buf - o, "X-H%d: %d\r\n", i, i);
    o += (size_t)snprintf(buf + o, sizeof buf - o, "\r\n");
    int rc = http_req_parse((const uint8_t *)buf, o, NULL, &r);
    if (count <= SW_HTTP_MAX_HEADERS) {
      assert_int_equal(rc, (int)o);
      assert_int_equal(r.n_headers, (size_t)count);
      assert_slice(r.hname[count - 1], "X-H63");
      assert_slice(r.hval[count - 1], "63");
    } else {
      assert_int_equal(rc, SW_HTTP_MALFORMED);
    }
  }
}

static void test_upgrade(void **state) {
  (void)state;
  const char *ws = "GET /?key=abc HTTP/1.1\r\n"
                   "Host: x\r\n"
                   "Connection: keep-alive, Upgrade\r\n"
                   "Upgrade: websocket\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "\r\n";
  char buf[512];
  size_t hl = strlen(ws);
  memcpy(buf, ws, hl);
  memcpy(buf + hl, "\x81\x85\x37\xfa\x21\x3d", 6); /* a frame follows at once */
  sw_http_req_t r;
  int n = http_req_parse((const uint8_t *)buf, hl + 6, NULL, &r);
  assert_int_equal(n, (int)hl);
  assert_int_equal(r.head_len, hl);
  assert_true(r.upgrade);
  assert_slice(r.query, "key=abc");

  /* An Upgrade header alone only announces support. */
  assert_int_equal(parse_str("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", NULL, &r), 38);
  assert_false(r.upgrade);
  assert_int_equal(parse_str("GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n", NULL, &r), 39);
  assert_false(r.upgrade);
}

static void test_keep_alive(void **state) {
  (void)state;
  sw_http_req_t r;
  assert_true(parse_str("GET / HTTP/1.0\r\n\r\n", NULL, &r) > 0);
  assert_false(r.keep_alive);
  assert_int_equal(r.http_minor, 0);
  assert_true(parse_str("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", NULL, &r) > 0);
  assert_true(r.keep_alive);
  assert_true(parse_str("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", NULL, &r) > 0);
  assert_false(r.keep_alive);
}

static void test_methods(void **state) {
  (void)state;
  sw_http_req_t r;
  static const struct {
    const char *req;
    int method;
  } cases[] = {
      {"OPTIONS /x HTTP/1.1\r\n\r\n", HTTP_OPTIONS}, {"DELETE /x HTTP/1.1\r\n\r\n", HTTP_DELETE},
      {"PATCH /x HTTP/1.1\r\n\r\n", HTTP_PATCH},     {"PUT /x HTTP/1.1\r\n\r\n", HTTP_PUT},
      {"HEAD /x HTTP/1.1\r\n\r\n", HTTP_HEAD},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(parse_str(cases[i].req, NULL, &r), (int)strlen(cases[i].req));
    assert_int_equal(r.method, cases[i].method);
  }
}

static void test_malformed(void **state) {
  (void)state;
  static const char *bad[] = {
      "FOO / HTTP/1.1\r\n\r\n",
      "GET /\r\n\r\n",
      "GET / HTTP/2.0\r\n\r\n",
      "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello",
      "GET / HTTP/1.1\r\n: x\r\n\r\n",
      "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
      "GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
      "GET / HTTP/1.1\r\nX: a\001b\r\n\r\n",
      "GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc",
      "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
      "GET / HTTP/1.1\rX: y\r\n\r\n",
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* a TLS ClientHello */
      "GET /a b HTTP/1.1\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    sw_http_req_t r;
    int rc = parse_str(bad[i], NULL, &r);
    if (rc != SW_HTTP_MALFORMED) fail_msg("case %zu: rc %d, want MALFORMED", i, rc);
  }
  /* An embedded NUL in a header value. */
  static const char nul[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
  sw_http_req_t r;
  assert_int_equal(http_req_parse((const uint8_t *)nul, sizeof nul - 1, NULL, &r),
                   SW_HTTP_MALFORMED);
}

static void test_header_values(void **state) {
  (void)state;
  const char *req = "GET / HTTP/1.1\r\n"
                    "Empty:\r\n"
                    "Spaces:    \r\n"
                    "Padded: \t value with  inner  spaces \t \r\n"
                    "authorization: Basic abc\r\n"
                    "\r\n";
  sw_http_req_t r;
  assert_int_equal(parse_str(req, NULL, &r), (int)strlen(req));
  assert_int_equal(r.n_headers, 4);
  assert_slice(r.hname[0], "Empty");
  assert_slice(r.hval[0], "");
  assert_non_null(r.hval[0].p);
  assert_slice(r.hval[1], "");
  assert_slice(r.hval[2], "value with  inner  spaces");
  const sw_slice_t *a = http_req_header(&r, "Authorization");
  assert_non_null(a);
  assert_slice(*a, "Basic abc");
  assert_non_null(http_req_header(&r, "PADDED"));
  assert_null(http_req_header(&r, "Missing"));
  assert_null(http_req_header(&r, "Pad"));
}

static void test_targets(void **state) {
  (void)state;
  sw_http_req_t r;
  assert_true(parse_str("GET /p?q=1#frag HTTP/1.1\r\n\r\n", NULL, &r) > 0);
  assert_slice(r.path, "/p");
  assert_slice(r.query, "q=1");
  assert_true(parse_str("GET /p#f?x HTTP/1.1\r\n\r\n", NULL, &r) > 0);
  assert_slice(r.path, "/p");
  assert_slice(r.query, "");
  assert_true(parse_str("GET /p? HTTP/1.1\r\n\r\n", NULL, &r) > 0);
  assert_slice(r.path, "/p");
  assert_slice(r.query, "");
  assert_true(parse_str("GET http://example.com:80/a/b?c=d HTTP/1.1\r\n\r\n", NULL, &r) > 0);
  assert_slice(r.path, "/a/b");
  assert_slice(r.query, "c=d");
  assert_true(parse_str("OPTIONS * HTTP/1.1\r\n\r\n", NULL, &r) > 0);
  assert_slice(r.path, "*");
  assert_slice(r.query, "");
}

static void test_leading_crlf_and_bare_lf(void **state) {
  (void)state;
  sw_http_req_t r;
  /* RFC 9112 §2.2: ignore empty lines before the request line. */
  assert_int_equal(parse_str("\r\nGET / HTTP/1.1\r\n\r\n", NULL, &r), 20);
  assert_int_equal(r.method, HTTP_GET);
  assert_int_equal(parse_str("GET / HTTP/1.1\nHost: a\n\n", NULL, &r), 24);
  assert_slice(*http_req_header(&r, "host"), "a");
}

static void test_empty_input(void **state) {
  (void)state;
  sw_http_req_t r;
  assert_int_equal(http_req_parse((const uint8_t *)"", 0, NULL, &r), SW_HTTP_NEED_MORE);
}

static void test_slices(void **state) {
  (void)state;
  sw_slice_t s = {"Hello", 5};
  assert_true(slice_eq(s, "Hello"));
  assert_false(slice_eq(s, "hello"));
  assert_false(slice_eq(s, "Hell"));
  assert_false(slice_eq(s, "Hello!"));
  assert_true(slice_ieq(s, "hELLO"));
  assert_false(slice_ieq(s, "hELL"));
  sw_slice_t e = {NULL, 0};
  assert_true(slice_eq(e, ""));
  assert_true(slice_ieq(e, ""));
  assert_false(slice_eq(e, "x"));
  /* Only ASCII letters fold: '@' (0x40) and '`' (0x60) differ. */
  assert_false(slice_ieq((sw_slice_t){"@", 1}, "`"));
}

/* A singleton header twice is refused (RFC 9112 §3.2 for Host); lists may
 * repeat. */
static void test_duplicate_headers(void **state) {
  (void)state;
  sw_http_req_t r;
  assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", NULL, &r), SW_HTTP_MALFORMED);
  assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", NULL, &r), SW_HTTP_MALFORMED);
  assert_int_equal(parse_str("GET / HTTP/1.1\r\nAuthorization: Basic a\r\nAUTHORIZATION: Basic b\r\n\r\n", NULL, &r),
                   SW_HTTP_MALFORMED);
  assert_int_equal(parse_str("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", NULL, &r),
                   SW_HTTP_MALFORMED);
  const char *ok = "GET / HTTP/1.1\r\nHost: a\r\nAccept: a\r\nAccept: b\r\nConnection: x\r\nConnection: y\r\n\r\n";
  assert_int_equal(parse_str(ok, NULL, &r), (int)strlen(ok));
  assert_int_equal(http_req_header_count(&r, "accept"), 2);
  assert_int_equal(http_req_header_count(&r, "HOST"), 1);
  assert_int_equal(http_req_header_count(&r, "Origin"), 0);
}

static void test_error_response(void **state) {
  (void)state;
  sw_buf_t b = {0};
  sw_error_t e;
  errors_set(&e, 40009, "too big\r\nX-Evil: 1 \xc3\xa9");
  e.status = 413;
  assert_int_equal(http_error_response(&b, SW_FMT_JSON, &e, "X-Ably-ServerId: s\r\n", false), 0);
  buf_append_byte(&b, 0);
  const char *t = (const char *)b.data;
  assert_non_null(strstr(t, "HTTP/1.1 413 Content Too Large\r\n"));
  assert_non_null(strstr(t, "Content-Type: application/json\r\n"));
  assert_non_null(strstr(t, "Connection: close\r\n"));
  assert_non_null(strstr(t, "\r\nX-Ably-ErrorCode: 40009\r\n"));
  /* CR, LF and non-ASCII bytes become spaces in the header. */
  assert_non_null(strstr(t, "\r\nX-Ably-ErrorMessage: too big  X-Evil: 1   \r\n"));
  assert_non_null(strstr(t, "\r\nX-Ably-ServerId: s\r\n"));
  const char *body = strstr(t, "\r\n\r\n") + 4;
  assert_non_null(strstr(body, "\"code\":40009"));
  assert_non_null(strstr(body, "\"statusCode\":413"));
  assert_non_null(strstr(body, "\"href\":\"https://help.ably.io/error/40009\""));
  char cl[64];
  snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", strlen(body));
  assert_non_null(strstr(t, cl));

  /* msgpack: the same error as a map. */
  buf_reset(&b);
  assert_int_equal(http_error_response(&b, SW_FMT_MSGPACK, &e, NULL, true), 0);
  assert_true(memmem(b.data, b.len, "application/x-msgpack", 21) != NULL);
  assert_true(memmem(b.data, b.len, "Connection: keep-alive", 22) != NULL);

  /* A bad status or extra header leaves out as it was. */
  size_t before = b.len;
  e.status = 99;
  assert_int_equal(http_error_response(&b, SW_FMT_JSON, &e, NULL, true), -EINVAL);
  e.status = 400;
  assert_int_equal(http_error_response(&b, SW_FMT_JSON, &e, "X: y", true), -EINVAL);
  assert_int_equal(b.len, before);
  buf_free(&b);
}

static void test_response_head(void **state) {
  (void)state;
  sw_buf_t b = {0};
  assert_int_equal(http_response_head(&b, 200, "application/json", 42, NULL, true), 0);
  const char *want = "HTTP/1.1 200 OK\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: 42\r\n"
                     "Connection: keep-alive\r\n"
                     "\r\n";
  assert_int_equal(b.len, strlen(want));
  assert_memory_equal(b.data, want, b.len);

  buf_reset(&b);
  assert_int_equal(http_response_head(&b, 404, NULL, 0, "X-Ably-ErrorCode: 40400\r\n", false), 0);
  want = "HTTP/1.1 404 Not Found\r\n"
         "Content-Length: 0\r\n"
         "Connection: close\r\n"
         "X-Ably-ErrorCode: 40400\r\n"
         "\r\n";
  assert_int_equal(b.len, strlen(want));
  assert_memory_equal(b.data, want, b.len);

  buf_reset(&b);
  assert_int_equal(http_response_head(&b, 204, "text/plain", 0, NULL, true), 0);
  want = "HTTP/1.1 204 No Content\r\n"
         "Content-Type: text/plain\r\n"
         "Connection: keep-alive\r\n"
         "\r\n";
  assert_int_equal(b.len, strlen(want));
  assert_memory_equal(b.data, want, b.len);

  /* Rejections leave the buffer untouched. */
  size_t before = b.len;
  assert_int_equal(http_response_head(&b, 99, NULL, 0, NULL, true), -EINVAL);
  assert_int_equal(http_response_head(&b, 600, NULL, 0, NULL, true), -EINVAL);
  assert_int_equal(http_response_head(&b, 200, "text/plain\r\nX: y", 0, NULL, true), -EINVAL);
  assert_int_equal(http_response_head(&b, 200, NULL, 0, "X: y", true), -EINVAL);
  assert_int_equal(http_response_head(&b, 200, NULL, 0, "\n", true), -EINVAL);
  assert_int_equal(b.len, before);
  buf_free(&b);
}

static void test_reasons(void **state) {
  (void)state;
  assert_string_equal(http_reason(101), "Switching Protocols");
  assert_string_equal(http_reason(200), "OK");
  assert_string_equal(http_reason(400), "Bad Request");
  assert_string_equal(http_reason(401), "Unauthorized");
  assert_string_equal(http_reason(411), "Length Required");
  assert_string_equal(http_reason(413), "Content Too Large");
  assert_string_equal(http_reason(429), "Too Many Requests");
  assert_string_equal(http_reason(431), "Request Header Fields Too Large");
  assert_string_equal(http_reason(500), "Internal Server Error");
  assert_string_equal(http_reason(599), "Unknown");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_complete_get),
      cmocka_unit_test(test_post_body),
      cmocka_unit_test(test_every_prefix_needs_more),
      cmocka_unit_test(test_pipelined),
      cmocka_unit_test(test_head_limit),
      cmocka_unit_test(test_body_limit),
      cmocka_unit_test(test_body_across_feed_boundary),
      cmocka_unit_test(test_chunked_refused),
      cmocka_unit_test(test_header_count),
      cmocka_unit_test(test_upgrade),
      cmocka_unit_test(test_keep_alive),
      cmocka_unit_test(test_methods),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_header_values),
      cmocka_unit_test(test_targets),
      cmocka_unit_test(test_leading_crlf_and_bare_lf),
      cmocka_unit_test(test_empty_input),
      cmocka_unit_test(test_slices),
      cmocka_unit_test(test_duplicate_headers),
      cmocka_unit_test(test_error_response),
      cmocka_unit_test(test_response_head),
      cmocka_unit_test(test_reasons),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
