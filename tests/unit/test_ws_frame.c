/* test_ws_frame.c: frame headers, masking, reassembly, close payloads,
 * UTF-8, and the opening handshake. */
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
#include "net/ws_frame.h"
#include "net/ws_handshake.h"

/* RFC 6455 §5.7 examples. */
static const uint8_t hello_unmasked[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
static const uint8_t hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                       0x7f, 0x9f, 0x4d, 0x51, 0x58};

static void test_rfc_examples(void **state) {
  (void)state;
  sw_ws_frame_t f;
  assert_int_equal(ws_frame_parse(hello_unmasked, sizeof hello_unmasked, false, 1000, &f), 2);
  assert_true(f.fin);
  assert_int_equal(f.opcode, SW_WS_OP_TEXT);
  assert_false(f.masked);
  assert_int_equal(f.payload_len, 5);
  assert_int_equal(f.header_len, 2);

  assert_int_equal(ws_frame_parse(hello_masked, sizeof hello_masked, true, 1000, &f), 6);
  assert_true(f.masked);
  assert_memory_equal(f.mask, "\x37\xfa\x21\x3d", 4);
  assert_int_equal(f.payload_len, 5);
  uint8_t pl[5];
  memcpy(pl, hello_masked + 6, 5);
  ws_unmask(pl, 5, f.mask, 0);
  assert_memory_equal(pl, "Hello", 5);

  /* 256-byte binary: 16-bit length; 64 KiB: 64-bit length. */
  const uint8_t b256[] = {0x82, 0x7E, 0x01, 0x00};
  assert_int_equal(ws_frame_parse(b256, 4, false, UINT64_MAX, &f), 4);
  assert_int_equal(f.opcode, SW_WS_OP_BINARY);
  assert_int_equal(f.payload_len, 256);
  const uint8_t b64k[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0};
  assert_int_equal(ws_frame_parse(b64k, 10, false, UINT64_MAX, &f), 10);
  assert_int_equal(f.payload_len, 65536);
}

static void test_length_classes_roundtrip(void **state) {
  (void)state;
  static const struct {
    uint64_t len;
    size_t hlen;
  } cases[] = {{0, 2},      {1, 2},       {125, 2},          {126, 4},
               {127, 4},    {65535, 4},   {65536, 10},       {UINT64_C(1) << 32, 10},
               {INT64_MAX, 10}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t h[SW_WS_MAX_HEADER];
    size_t hl = ws_frame_header(h, true, SW_WS_OP_BINARY, cases[i].len);
    assert_int_equal(hl, cases[i].hlen);
    sw_ws_frame_t f;
    assert_int_equal(ws_frame_parse(h, hl, false, UINT64_MAX, &f), (int)hl);
    assert_int_equal(f.payload_len, cases[i].len);
    assert_true(f.fin);
    assert_int_equal(f.opcode, SW_WS_OP_BINARY);
    /* Every shorter prefix needs more. */
    for (size_t k = 0; k < hl; k++)
      assert_int_equal(ws_frame_parse(h, k, false, UINT64_MAX, &f), SW_WS_NEED_MORE);

    /* The same lengths masked (as a client would send them). */
    uint8_t m[SW_WS_MAX_HEADER];
    memcpy(m, h, hl);
    m[1] |= 0x80;
    memcpy(m + hl, "\x01\x02\x03\x04", 4);
    assert_int_equal(ws_frame_parse(m, hl + 4, true, UINT64_MAX, &f), (int)hl + 4);
    assert_int_equal(f.header_len, hl + 4);
    assert_int_equal(f.payload_len, cases[i].len);
    assert_memory_equal(f.mask, "\x01\x02\x03\x04", 4);
    for (size_t k = 0; k < hl + 4; k++)
      assert_int_equal(ws_frame_parse(m, k, true, UINT64_MAX, &f), SW_WS_NEED_MORE);
  }
  uint8_t h[10];
  assert_int_equal(ws_frame_header(h, false, SW_WS_OP_TEXT, 3), 2);
  assert_int_equal(h[0], 0x01);
  assert_int_equal(h[1], 3);
  assert_int_equal(ws_frame_header(h, true, SW_WS_OP_PING, 0), 2);
  assert_int_equal(h[0], 0x89);
  assert_int_equal(ws_frame_header(h, true, SW_WS_OP_BINARY, 300), 4);
  assert_memory_equal(h, "\x82\x7e\x01\x2c", 4);
  /* The 64-bit length's top bit is never set. */
  assert_int_equal(ws_frame_header(h, true, SW_WS_OP_BINARY, UINT64_MAX), 10);
  assert_int_equal(h[2] & 0x80, 0);
}

static void test_non_minimal_lengths_accepted(void **state) {
  (void)state;
  sw_ws_frame_t f;
  const uint8_t l16[] = {0x82, 0x7E, 0x00, 0x05};
  assert_int_equal(ws_frame_parse(l16, 4, false, 100, &f), 4);
  assert_int_equal(f.payload_len, 5);
  const uint8_t l64[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 5};
  assert_int_equal(ws_frame_parse(l64, 10, false, 100, &f), 10);
  assert_int_equal(f.payload_len, 5);
}

static void test_header_errors(void **state) {
  (void)state;
  sw_ws_frame_t f;
  uint8_t b[14] = {0};
  /* RSV1..3, each detectable from the first byte alone. */
  for (int rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
    b[0] = (uint8_t)(0x81 | rsv);
    b[1] = 0x80;
    assert_int_equal(ws_frame_parse(b, 1, true, 100, &f), SW_WS_MALFORMED);
    assert_int_equal(ws_frame_parse(b, 6, true, 100, &f), SW_WS_MALFORMED);
  }
  /* Reserved opcodes. */
  for (int op = 0; op < 16; op++) {
    b[0] = (uint8_t)(0x80 | op);
    b[1] = 0x80;
    int rc = ws_frame_parse(b, 6, true, 100, &f);
    bool known = op <= 2 || (op >= 8 && op <= 10);
    if (known != (rc == 6)) fail_msg("opcode %d: rc %d", op, rc);
    if (!known) assert_int_equal(rc, SW_WS_MALFORMED);
  }
  /* Fragmented control frames. */
  for (int op = 8; op <= 10; op++) {
    b[0] = (uint8_t)op;
    b[1] = 0x80;
    assert_int_equal(ws_frame_parse(b, 6, true, 100, &f), SW_WS_MALFORMED);
  }
  /* Control payload: 125 ok, 126/127 length forms never. */
  b[0] = 0x89;
  b[1] = 0x80 | 125;
  assert_int_equal(ws_frame_parse(b, 6, true, 1000, &f), 6);
  b[1] = 0x80 | 126;
  assert_int_equal(ws_frame_parse(b, 8, true, 1000, &f), SW_WS_MALFORMED);
  b[1] = 0x80 | 127;
  assert_int_equal(ws_frame_parse(b, 14, true, 1000, &f), SW_WS_MALFORMED);
  /* 64-bit length with the top bit set, seen as soon as that byte is. */
  memcpy(b, "\x82\xff\x80\0\0\0\0\0\0\x01", 10);
  assert_int_equal(ws_frame_parse(b, 3, true, UINT64_MAX, &f), SW_WS_MALFORMED);
  assert_int_equal(ws_frame_parse(b, 14, true, UINT64_MAX, &f), SW_WS_MALFORMED);
  /* Unmasked from a client. */
  assert_int_equal(ws_frame_parse(hello_unmasked, 2, true, 100, &f), SW_WS_MALFORMED);
  /* Too large, decided from the header. */
  const uint8_t big[] = {0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4};
  assert_int_equal(ws_frame_parse(big, sizeof big, true, 255, &f), SW_WS_TOO_LARGE);
  assert_int_equal(ws_frame_parse(big, sizeof big, true, 256, &f), 8);
  assert_int_equal(ws_frame_parse(hello_masked, 6, true, 0, &f), SW_WS_TOO_LARGE);
}

static void naive_unmask(uint8_t *b, size_t n, const uint8_t m[4], uint64_t off) {
  for (size_t i = 0; i < n; i++) b[i] ^= m[(off + i) % 4];
}

static void test_unmask_pieces(void **state) {
  (void)state;
  const uint8_t mask[4] = {0xA1, 0x02, 0xF3, 0x44};
  uint8_t orig[301], want[301], got[301];
  for (size_t i = 0; i < sizeof orig; i++) orig[i] = (uint8_t)(i * 7 + 3);
  for (size_t len = 0; len <= sizeof orig; len += 37) {
    memcpy(want, orig, len);
    naive_unmask(want, len, mask, 0);
    /* Whole, and split at every point (partial unmasking with offsets). */
    for (size_t cut = 0; cut <= len; cut++) {
      memcpy(got, orig, len);
      ws_unmask(got, cut, mask, 0);
      ws_unmask(got + cut, len - cut, mask, cut);
      assert_memory_equal(got, want, len);
    }
  }
  /* Large offsets wrap modulo 4. */
  memcpy(got, orig, 20);
  memcpy(want, orig, 20);
  naive_unmask(want, 20, mask, (UINT64_C(1) << 40) + 3);
  ws_unmask(got, 20, mask, (UINT64_C(1) << 40) + 3);
  assert_memory_equal(got, want, 20);
}

static sw_ws_frame_t data_frame(bool fin, uint8_t op, size_t n) {
  return (sw_ws_frame_t){.fin = fin, .opcode = op, .payload_len = n};
}

static void test_assembler(void **state) {
  (void)state;
  sw_ws_msg_asm_t a = {.max_msg = 16};
  uint8_t op = 0xff;
  sw_ws_frame_t f;

  /* An unfragmented message. */
  f = data_frame(true, SW_WS_OP_BINARY, 3);
  assert_int_equal(ws_msg_asm_add(&a, &f, (const uint8_t *)"abc", 3, &op), 1);
  assert_int_equal(op, SW_WS_OP_BINARY);
  assert_int_equal(a.buf.len, 3);
  assert_memory_equal(a.buf.data, "abc", 3);

  /* Three fragments, including an empty one. */
  f = data_frame(false, SW_WS_OP_TEXT, 5);
  assert_int_equal(ws_msg_asm_add(&a, &f, (const uint8_t *)"Hello", 5, &op), 0);
  assert_true(a.active);
  f = data_frame(false, SW_WS_OP_CONT, 0);
  assert_int_equal(ws_msg_asm_add(&a, &f, NULL, 0, &op), 0);
  /* A new data frame while one is active. */
  sw_ws_frame_t g = data_frame(true, SW_WS_OP_TEXT, 1);
  assert_int_equal(ws_msg_asm_add(&a, &g, (const uint8_t *)"x", 1, &op), SW_WS_MALFORMED);
  f = data_frame(true, SW_WS_OP_CONT, 6);
  assert_int_equal(ws_msg_asm_add(&a, &f, (const uint8_t *)" world", 6, &op), 1);
  assert_int_equal(op, SW_WS_OP_TEXT);
  assert_int_equal(a.buf.len, 11);
  assert_memory_equal(a.buf.data, "Hello world", 11);
  assert_false(a.active);

  /* Continuation with nothing to continue. */
  f = data_frame(true, SW_WS_OP_CONT, 1);
  assert_int_equal(ws_msg_asm_add(&a, &f, (const uint8_t *)"x", 1, &op), SW_WS_MALFORMED);

  /* Control frames and length mismatches are refused. */
  f = data_frame(true, SW_WS_OP_PING, 0);
  assert_int_equal(ws_msg_asm_add(&a, &f, NULL, 0, &op), SW_WS_MALFORMED);
  f = data_frame(true, SW_WS_OP_TEXT, 4);
  assert_int_equal(ws_msg_asm_add(&a, &f, (const uint8_t *)"abc", 3, &op), SW_WS_MALFORMED);

  /* The limit covers the whole message: 16 fits, 17 does not. */
  ws_msg_asm_reset(&a);
  f = data_frame(false, SW_WS_OP_BINARY, 10);
  assert_int_equal(ws_msg_asm_add(&a, &f, (const uint8_t *)"0123456789", 10, &op), 0);
  f = data_frame(true, SW_WS_OP_CONT, 6);
  assert_int_equal(ws_msg_asm_add(&a, &f, (const uint8_t *)"abcdef", 6, &op), 1);
  f = data_frame(false, SW_WS_OP_BINARY, 10);
  assert_int_equal(ws_msg_asm_add(&a, &f, (const uint8_t *)"0123456789", 10, &op), 0);
  f = data_frame(true, SW_WS_OP_CONT, 7);
  assert_int_equal(ws_msg_asm_add(&a, &f, (const uint8_t *)"abcdefg", 7, &op), SW_WS_TOO_LARGE);
  assert_true(a.buf.len <= 16);

  ws_msg_asm_reset(&a);
  assert_false(a.active);
  assert_int_equal(a.buf.len, 0);
  f = data_frame(true, SW_WS_OP_CONT, 0);
  assert_int_equal(ws_msg_asm_add(&a, &f, NULL, 0, &op), SW_WS_MALFORMED);
  ws_msg_asm_free(&a);
  assert_null(a.buf.data);
  assert_int_equal(a.max_msg, 16);
}

static void test_close_payloads(void **state) {
  (void)state;
  assert_int_equal(ws_close_payload_parse(NULL, 0), 1005);
  assert_int_equal(ws_close_payload_parse((const uint8_t *)"\x03", 1), -1);
  static const int valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                              1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
    uint8_t p[2] = {(uint8_t)(valid[i] >> 8), (uint8_t)valid[i]};
    assert_int_equal(ws_close_payload_parse(p, 2), valid[i]);
  }
  static const int invalid[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    uint8_t p[2] = {(uint8_t)(invalid[i] >> 8), (uint8_t)invalid[i]};
    if (ws_close_payload_parse(p, 2) != -1) fail_msg("code %d accepted", invalid[i]);
  }
  assert_int_equal(ws_close_payload_parse((const uint8_t *)"\x03\xe8" "bye \xc3\xa9", 8), 1000);
  assert_int_equal(ws_close_payload_parse((const uint8_t *)"\x03\xe8" "bad \xc3", 7), -1);
  assert_int_equal(ws_close_payload_parse((const uint8_t *)"\x03\xe8\xed\xa0\x80", 5), -1);
  uint8_t longp[126];
  memset(longp, 'a', sizeof longp);
  longp[0] = 0x03, longp[1] = 0xe8;
  assert_int_equal(ws_close_payload_parse(longp, 125), 1000);
  assert_int_equal(ws_close_payload_parse(longp, 126), -1);
}

static bool u8(const char *s) { return utf8_valid((const uint8_t *)s, strlen(s)); }

static void test_utf8(void **state) {
  (void)state;
  assert_true(utf8_valid(NULL, 0));
  assert_true(u8("plain ascii, long enough to use the word-at-a-time path"));
  assert_true(u8("\x7f"));
  assert_true(u8("\xc2\x80"));         /* U+0080 */
  assert_true(u8("\xdf\xbf"));         /* U+07FF */
  assert_true(u8("\xe0\xa0\x80"));     /* U+0800 */
  assert_true(u8("\xed\x9f\xbf"));     /* U+D7FF */
  assert_true(u8("\xee\x80\x80"));     /* U+E000 */
  assert_true(u8("\xef\xbf\xbf"));     /* U+FFFF */
  assert_true(u8("\xf0\x90\x80\x80")); /* U+10000 */
  assert_true(u8("\xf4\x8f\xbf\xbf")); /* U+10FFFF */
  assert_true(u8("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")); /* κόσμε */

  static const char *bad[] = {
      "\x80", "\xbf", "\xc0\x80", "\xc1\xbf",           /* stray continuation, overlong 2 */
      "\xe0\x80\x80", "\xe0\x9f\xbf",                   /* overlong 3 */
      "\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf",           /* overlong 4 */
      "\xed\xa0\x80", "\xed\xbf\xbf",                   /* surrogates */
      "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf8\x88\x80\x80\x80", "\xfe", "\xff",
      "\xc2", "\xe0\xa0", "\xf0\x90\x80",               /* truncated at the end */
      "\xc2" "A", "\xe0\xa0" "A", "\xf0\x90\x80" "A",   /* truncated mid-string */
      "\xe1\x80\xc0",                                   /* bad third byte */
      "\xf1\x80\x80\x7f",                               /* bad fourth byte */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (u8(bad[i])) fail_msg("bad[%zu] accepted", i);

  /* One bad byte anywhere in a long ASCII run is found. */
  char buf[64];
  for (size_t pos = 0; pos < sizeof buf; pos++) {
    memset(buf, 'a', sizeof buf);
    buf[pos] = (char)0x80;
    assert_false(utf8_valid((const uint8_t *)buf, sizeof buf));
    buf[pos] = 'b';
    assert_true(utf8_valid((const uint8_t *)buf, sizeof buf));
  }
  /* A multibyte sequence straddling the 8-byte word boundaries. */
  for (size_t pos = 0; pos + 4 <= sizeof buf; pos++) {
    memset(buf, 'a', sizeof buf);
    memcpy(buf + pos, "\xf0\x9f\x98\x80", 4);
    assert_true(utf8_valid((const uint8_t *)buf, sizeof buf));
    assert_false(utf8_valid((const uint8_t *)buf, pos + 3));
  }
}

/* ---- handshake ---- */

static const char ws_req[] = "GET /?key=x HTTP/1.1\r\n"
                             "Host: server.example.com\r\n"
                             "Upgrade: websocket\r\n"
                             "Connection: Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             "Sec-WebSocket-Version: 13\r\n"
                             "\r\n";

static int check_req(const char *raw, char accept[29], sw_error_t *err) {
  sw_http_req_t r;
  int n = http_req_parse((const uint8_t *)raw, strlen(raw), NULL, &r);
  if (n <= 0) fail_msg("request did not parse: %d", n);
  return ws_handshake_check(&r, accept, err);
}

static void test_handshake_rfc_example(void **state) {
  (void)state;
  char accept[29];
  sw_error_t err = {0};
  assert_int_equal(check_req(ws_req, accept, &err), 0);
  /* RFC 6455 §1.3 (also `openssl dgst -sha1 -binary | base64`). */
  assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  assert_int_equal(err.code, 0);

  /* Browsers send token lists in either header, in any case. */
  const char *ff = "GET / HTTP/1.1\r\n"
                   "Upgrade: h2c, WebSocket\r\n"
                   "Connection: keep-alive, Upgrade\r\n"
                   "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "\r\n";
  assert_int_equal(check_req(ff, accept, &err), 0);
  assert_int_equal(strlen(accept), SW_WS_ACCEPT_LEN);
  const char *split = "GET / HTTP/1.1\r\n"
                      "Connection: keep-alive\r\n"
                      "Connection: upgrade\r\n"
                      "upgrade: websocket\r\n"
                      "sec-websocket-key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"
                      "sec-websocket-version: 13\r\n"
                      "\r\n";
  assert_int_equal(check_req(split, accept, &err), 0);
}

static void expect_reject(const char *from, const char *to) {
  char raw[1024];
  const char *at = strstr(ws_req, from);
  if (!at) fail_msg("no [%s] in request", from);
  snprintf(raw, sizeof raw, "%.*s%s%s", (int)(at - ws_req), ws_req, to, at + strlen(from));
  char accept[29] = "junk";
  sw_error_t err = {0};
  if (check_req(raw, accept, &err) != -1) fail_msg("accepted with [%s] -> [%s]", from, to);
  assert_int_equal(err.code, 40000);
  assert_int_equal(err.status, 400);
  assert_true(strlen(err.message) > 0);
  assert_string_equal(accept, "");
  /* err may be NULL. */
  assert_int_equal(check_req(raw, accept, NULL), -1);
}

static void test_handshake_rejections(void **state) {
  (void)state;
  expect_reject("GET", "POST");
  expect_reject("HTTP/1.1\r\nHost", "HTTP/1.0\r\nHost");
  expect_reject("Upgrade: websocket\r\n", "");
  expect_reject("Upgrade: websocket", "Upgrade: websockets");
  expect_reject("Upgrade: websocket", "Upgrade: h2c");
  expect_reject("Connection: Upgrade\r\n", "");
  expect_reject("Connection: Upgrade", "Connection: keep-alive");
  expect_reject("Connection: Upgrade", "Connection: upgraded");
  expect_reject("Sec-WebSocket-Version: 13\r\n", "");
  expect_reject("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
  expect_reject("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 13, 8");
  expect_reject("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
  expect_reject("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ");   /* unpadded */
  expect_reject("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ=");  /* 23 chars */
  expect_reject("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25j");     /* 15 bytes */
  expect_reject("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ==AA");
  expect_reject("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub2 jZQ==");
  expect_reject("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZ===");
  expect_reject("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25j*Q==");
  /* RFC 6455 §11.3.1, §11.3.5: at most once each, even with equal values. */
  expect_reject("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
  expect_reject("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n");
  expect_reject("Sec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13\r\n");
}

static void test_handshake_response(void **state) {
  (void)state;
  sw_buf_t b = {0};
  assert_int_equal(ws_handshake_response(&b, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", NULL), 0);
  const char *want = "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                     "\r\n";
  assert_int_equal(b.len, strlen(want));
  assert_memory_equal(b.data, want, b.len);
  buf_reset(&b);
  assert_int_equal(ws_handshake_response(&b, "abc", "Sec-WebSocket-Protocol: x\r\n"), 0);
  assert_non_null(memmem(b.data, b.len, "Sec-WebSocket-Accept: abc\r\nSec-WebSocket-Protocol: x\r\n\r\n", 55));
  size_t before = b.len;
  assert_int_equal(ws_handshake_response(&b, "a\r\nX: y", NULL), -EINVAL);
  assert_int_equal(ws_handshake_response(&b, "abc", "X: y"), -EINVAL);
  assert_int_equal(b.len, before);
  buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc_examples),
      cmocka_unit_test(test_length_classes_roundtrip),
      cmocka_unit_test(test_non_minimal_lengths_accepted),
      cmocka_unit_test(test_header_errors),
      cmocka_unit_test(test_unmask_pieces),
      cmocka_unit_test(test_assembler),
      cmocka_unit_test(test_close_payloads),
      cmocka_unit_test(test_utf8),
      cmocka_unit_test(test_handshake_rfc_example),
      cmocka_unit_test(test_handshake_rejections),
      cmocka_unit_test(test_handshake_response),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
