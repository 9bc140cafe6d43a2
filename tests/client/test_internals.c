/* test_internals.c: white-box tests of the client's pure parts, linked
 * against the library's objects: masked client frames (RFC 6455 §5.3,
 * checked with the server's own parser in require_mask mode), the RTB1
 * backoff, key parsing, JWT expiry reading, message import, URL encoding,
 * and the minted JWT / TokenRequest checked with the server's verifiers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth/jwt.h"
#include "auth/token_request.h"
#include "internal.h"
#include "net/ws_frame.h"

#define KEY "app1.key1:the-secret-value"

static void check_masked(size_t n) {
  uint8_t *payload = malloc(n ? n : 1);
  for (size_t i = 0; i < n; i++) payload[i] = (uint8_t)(i * 31 + 7);
  const uint8_t mask[4] = {0xde, 0xad, 0xbe, 0xef};
  sw_buf_t b = {0};
  assert_int_equal(swc_ws_frame_masked(&b, SW_WS_OP_BINARY, payload, n, mask), 0);
  sw_ws_frame_t f;
  int hl = ws_frame_parse(b.data, b.len, true, UINT64_MAX, &f); /* the server insists on a mask */
  assert_true(hl > 0);
  assert_true(f.fin);
  assert_true(f.masked);
  assert_int_equal(f.opcode, SW_WS_OP_BINARY);
  assert_int_equal(f.payload_len, n);
  assert_memory_equal(f.mask, mask, 4);
  assert_int_equal(b.len, (size_t)hl + n);
  if (n >= 4) assert_memory_not_equal(b.data + hl, payload, 4); /* really masked */
  ws_unmask(b.data + hl, n, f.mask, 0);
  if (n) assert_memory_equal(b.data + hl, payload, n);
  buf_free(&b);
  free(payload);
}

static void test_masked_frames(void **state) {
  (void)state;
  /* Every length encoding: 7-bit, 16-bit, 64-bit. */
  size_t sizes[] = {0, 1, 5, 125, 126, 127, 1000, 65535, 65536, 70000};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) check_masked(sizes[i]);
}

static void test_backoff(void **state) {
  (void)state;
  /* RTB1: base * min((n+2)/3, 2) * jitter in [0.8, 1]. */
  double coeff[] = {1, 4.0 / 3, 5.0 / 3, 2, 2, 2};
  for (int n = 1; n <= 6; n++) {
    for (int k = 0; k < 50; k++) {
      uint64_t ms = swc_backoff_ms(15000, n);
      assert_true(ms >= (uint64_t)(15000 * coeff[n - 1] * 0.8) - 1);
      assert_true(ms <= (uint64_t)(15000 * coeff[n - 1]));
    }
  }
}

static void test_keys_and_tokens(void **state) {
  (void)state;
  char *name, *secret;
  assert_int_equal(swc_parse_key(KEY, &name, &secret), 0);
  assert_string_equal(name, "app1.key1");
  assert_string_equal(secret, "the-secret-value");
  free(name);
  free(secret);
  const char *bad[] = {"", "nocolon", ":secret", "app1.key1:", "nodot:secret", ".key:s", "app.:s"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) assert_int_equal(swc_parse_key(bad[i], &name, &secret), -1);

  /* A minted JWT verifies with the server's verifier; its times are read back. */
  sw_token_params_t p = {.client_id = "zoe", .capability = "{\"a:*\":[\"subscribe\"]}", .ttl_ms = 90500,
                         .revocation_key = "rk", .timestamp_ms = 1700000000123};
  char *jwt = NULL;
  assert_int_equal(sw_jwt_create(KEY, &p, &jwt, NULL), 0);
  int64_t iat = 0, exp = 0;
  swc_token_times(jwt, &iat, &exp);
  assert_int_equal(iat, 1700000000000);
  assert_int_equal(exp, 1700000091000); /* ttl rounded up to whole seconds */
  free(jwt);

  /* A TokenRequest's mac checks out with the server's code. */
  char *tr = NULL;
  p.revocation_key = NULL;
  p.timestamp_ms = 0;
  assert_int_equal(sw_token_request_create(KEY, &p, &tr, NULL), 0);
  sw_token_request_t parsed;
  sw_error_t err;
  assert_int_equal(token_request_parse((const uint8_t *)tr, strlen(tr), 0, &parsed, &err), 0);
  assert_string_equal(parsed.key_name, "app1.key1");
  assert_string_equal(parsed.client_id, "zoe");
  assert_string_equal(parsed.ttl, "90500");
  assert_string_equal(parsed.capability, "{\"a:*\":[\"subscribe\"]}");
  assert_int_equal(strlen(parsed.nonce), 24);
  assert_int_equal(token_request_check_mac(&parsed, "the-secret-value", 16, &err), 0);
  assert_int_equal(token_request_check_mac(&parsed, "another-secret!!", 16, &err), -1);
  int64_t ttl, ts;
  assert_int_equal(token_request_validate(&parsed, swc_now_ms(), false, &ttl, &ts, &err), 0);
  assert_int_equal(ttl, 90500);
  token_request_clear(&parsed);
  free(tr);

  /* Not a JWT: nothing read. */
  iat = exp = 7;
  swc_token_times("appid.opaque-token", &iat, &exp);
  assert_int_equal(iat, 7);
  assert_int_equal(exp, 7);
}

static void test_message_import(void **state) {
  (void)state;
  sw_msg_t m;
  sw_message_t in = {.name = "n", .data = "abc", .data_type = SW_PAYLOAD_STRING, .extras = "{\"x\":1}"};
  assert_int_equal(swc_message_import(&in, &m), 0);
  assert_int_equal(m.data.kind, SW_DATA_STRING);
  assert_int_equal(m.data.len, 3);
  assert_true(json_is_object(m.extras));
  assert_int_equal(m.action, -1);
  msg_clear(&m);
  in.extras = "[1]";
  assert_int_equal(swc_message_import(&in, &m), SW_EINVAL);
  in.extras = "{not json";
  assert_int_equal(swc_message_import(&in, &m), SW_EINVAL);
  in.extras = NULL;
  in.data_type = 9;
  assert_int_equal(swc_message_import(&in, &m), SW_EINVAL);
  const uint8_t zeros[3] = {0, 0, 0};
  sw_message_t bin = {.data = zeros, .data_len = 3, .data_type = SW_PAYLOAD_BINARY};
  assert_int_equal(swc_message_import(&bin, &m), 0);
  assert_int_equal(m.data.kind, SW_DATA_BINARY);
  assert_int_equal(m.data.len, 3);
  msg_clear(&m);

  /* A view fills id, connectionId and timestamp from the ProtocolMessage (TM2a). */
  sw_msg_t raw = {.action = -1};
  sw_pmsg_t pm = {.id = "conn:5", .connection_id = "conn", .timestamp = 42};
  sw_message_t v;
  char *extras, idbuf[64];
  swc_message_view(&raw, &pm, 2, &v, &extras, idbuf, sizeof idbuf);
  assert_string_equal(v.id, "conn:5:2");
  assert_string_equal(v.connection_id, "conn");
  assert_int_equal(v.timestamp, 42);
  assert_int_equal(v.data_type, SW_PAYLOAD_NONE);
  assert_null(extras);
}

/* swc_random serves small requests from a per-thread pool: bytes are not
 * handed out twice, and a forked child does not get the bytes its parent
 * gets next (the pool is emptied in the child). */
static void test_random_pool(void **state) {
  (void)state;
  uint8_t a[16], b[16], big[2048];
  assert_int_equal(swc_random(a, sizeof a), 0);
  assert_int_equal(swc_random(b, sizeof b), 0);
  assert_memory_not_equal(a, b, sizeof a);
  assert_int_equal(swc_random(big, sizeof big), 0); /* past the pool */
  for (int i = 0; i < 1000; i++) assert_int_equal(swc_random(a, 7), 0); /* across refills */
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    uint8_t c[16];
    int ok = swc_random(c, sizeof c) == 0 && write(fds[1], c, sizeof c) == (ssize_t)sizeof c;
    _exit(ok ? 0 : 1);
  }
  uint8_t mine[16], child[16];
  assert_int_equal(swc_random(mine, sizeof mine), 0);
  assert_int_equal(read(fds[0], child, sizeof child), (ssize_t)sizeof child);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  close(fds[0]);
  close(fds[1]);
  assert_memory_not_equal(mine, child, sizeof mine);
}

static void test_url_encode(void **state) {
  (void)state;
  sw_buf_t b = {0};
  assert_int_equal(swc_url_encode(&b, "a b/c:d?e=f&g~h_i.j-k\xc3\xa9"), 0);
  buf_append_byte(&b, 0);
  assert_string_equal((char *)b.data, "a%20b%2Fc%3Ad%3Fe%3Df%26g~h_i.j-k%C3%A9");
  buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_masked_frames),  cmocka_unit_test(test_backoff),   cmocka_unit_test(test_keys_and_tokens),
      cmocka_unit_test(test_message_import), cmocka_unit_test(test_url_encode), cmocka_unit_test(test_random_pool),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
