/* test_mpread.c: white-box tests of the client's msgpack reader
 * (client/mpread.c, swc_mp_read), which replaced codec_msgpack_read
 * (msgpack-c) on the receive path.
 *
 * Differential, as fuzz/fuzz_client_mpread.c: for every input both readers
 * must accept or refuse alike and, when they accept, give the same views
 * and JSON (tests/client/mp_compare.h). The inputs are every type byte
 * family, the refusals (truncation, 0xc1, trailing bytes, depth, UTF-8, a
 * container claiming more items than there are bytes), a real MESSAGE frame,
 * one too big for the tree's room to be reserved up front, and a few
 * thousand random and mutated ones. Then the values themselves,
 * the bound on the tree's memory, and scratch reuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mp_compare.h"

static void same(const uint8_t *p, size_t n) {
  char *mine = mpc_describe(true, p, n), *ref = mpc_describe(false, p, n);
  if (strcmp(mine, ref) != 0) {
    fprintf(stderr, "input of %zu bytes:", n);
    for (size_t i = 0; i < n && i < 64; i++) fprintf(stderr, " %02x", p[i]);
    fprintf(stderr, "\n  mine %s\n  ref  %s\n", mine, ref);
  }
  assert_string_equal(mine, ref);
  free(mine);
  free(ref);
}

static void refused(const uint8_t *p, size_t n) {
  same(p, n);
  char *mine = mpc_describe(true, p, n);
  assert_string_equal(mine, "refused 40000");
  free(mine);
}

#define SAME(...)                                                                                  \
  do {                                                                                             \
    const uint8_t in_[] = {__VA_ARGS__};                                                           \
    same(in_, sizeof in_);                                                                         \
  } while (0)
#define REFUSED(...)                                                                               \
  do {                                                                                             \
    const uint8_t in_[] = {__VA_ARGS__};                                                           \
    refused(in_, sizeof in_);                                                                      \
  } while (0)

static void test_every_type(void **state) {
  (void)state;
  SAME(0xc0);
  SAME(0xc2);
  SAME(0xc3);
  SAME(0x00);
  SAME(0x7f);
  SAME(0xe0);
  SAME(0xff);
  SAME(0xcc, 0xff);
  SAME(0xcd, 0x12, 0x34);
  SAME(0xce, 0xff, 0xff, 0xff, 0xff);
  SAME(0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
  SAME(0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff); /* above INT64_MAX: a real */
  SAME(0xd0, 0x80);
  SAME(0xd0, 0x05);
  SAME(0xd1, 0x80, 0x00);
  SAME(0xd2, 0x80, 0x00, 0x00, 0x00);
  SAME(0xd3, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);
  SAME(0xd3, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07);
  SAME(0xca, 0x3f, 0xc0, 0x00, 0x00);                         /* 1.5f */
  SAME(0xca, 0x7f, 0xc0, 0x00, 0x00);                         /* NaN: to_json refuses */
  SAME(0xcb, 0x40, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00); /* 2.25 */
  SAME(0xcb, 0x7f, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00); /* inf */
  SAME(0xa0);
  SAME(0xa3, 'a', 'b', 'c');
  SAME(0xa2, 0xc3, 0xa9); /* é */
  SAME(0xd9, 0x01, 'x');
  SAME(0xda, 0x00, 0x01, 'x');
  SAME(0xdb, 0x00, 0x00, 0x00, 0x01, 'x');
  SAME(0xc4, 0x00);
  SAME(0xc4, 0x02, 0x00, 0xff);
  SAME(0xc5, 0x00, 0x01, 0x00);
  SAME(0xc6, 0x00, 0x00, 0x00, 0x01, 0x00);
  SAME(0xd4, 0x01, 0x02);
  SAME(0xd8, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
  SAME(0xc7, 0x01, 0x05, 0x09);
  SAME(0xc8, 0x00, 0x00, 0x05);
  SAME(0xc9, 0x00, 0x00, 0x00, 0x00, 0x05);
  SAME(0x90);
  SAME(0x80);
  SAME(0x93, 0x01, 0xa1, 'a', 0xc0);
  SAME(0xdc, 0x00, 0x02, 0x01, 0x02);
  SAME(0xdd, 0x00, 0x00, 0x00, 0x01, 0x01);
  SAME(0x82, 0xa1, 'a', 0x01, 0xa1, 'b', 0x92, 0x01, 0x80);
  SAME(0xde, 0x00, 0x01, 0xa1, 'k', 0xa0);
  SAME(0xdf, 0x00, 0x00, 0x00, 0x01, 0xa1, 'k', 0xa0);
  SAME(0x82, 0xa1, 'a', 0x01, 0xa1, 'a', 0x02);     /* a repeated key: each gives both, JSON the last */
  SAME(0x81, 0x01, 0x02);                           /* non-string key: each and to_json refuse */
  SAME(0x81, 0xa2, 'a', 0x00, 0x01);                /* NUL in a key: to_json refuses */
  SAME(0x92, 0xd4, 0x01, 0x02, 0xc4, 0x01, 0x41);   /* ext in an array: to_json refuses */
}

static void test_refusals(void **state) {
  (void)state;
  REFUSED(0xc1);                   /* never used */
  REFUSED(0xa3, 'a', 'b');         /* str truncated */
  REFUSED(0xcd, 0x12);             /* uint16 truncated */
  REFUSED(0xd9);                   /* length missing */
  REFUSED(0xc7, 0x02, 0x05, 0x01); /* ext truncated */
  REFUSED(0xd8, 0x01, 1, 2);       /* fixext truncated */
  REFUSED(0x92, 0x01);             /* item missing */
  REFUSED(0x81, 0xa1, 'a');        /* value missing */
  REFUSED(0xc0, 0xc0);             /* trailing bytes */
  REFUSED(0xa2, 0xc3, 0x28);       /* invalid UTF-8 */
  REFUSED(0xa1, 0xff);
  REFUSED(0xdd, 0xff, 0xff, 0xff, 0xff);             /* claims 4G items */
  REFUSED(0xdf, 0xff, 0xff, 0xff, 0xff, 0x01);       /* claims 4G entries */
  REFUSED(0x92, 0xdc, 0x00, 0x03, 0x01, 0x01, 0x01); /* items due outnumber the bytes left */
  uint8_t empty[1] = {0};
  refused(empty, 0);
  /* 32 nested containers are allowed, 33 are not, even when empty. */
  uint8_t deep[40];
  memset(deep, 0x91, sizeof deep);
  deep[32] = 0xc0;
  same(deep, 33);
  char *d = mpc_describe(true, deep, 33);
  assert_string_not_equal(d, "refused 40000");
  free(d);
  deep[32] = 0x90;
  refused(deep, 33);
  deep[32] = 0x80;
  refused(deep, 33);
}

/* What the server sends a subscriber: the receive path's common frame. */
static void test_message_frame(void **state) {
  (void)state;
  const char *js = "{\"action\":15,\"id\":\"Hk3_aB9xQz:17\",\"channel\":\"fanout-bench\",\"channelSerial\":\"01:0\","
                   "\"connectionId\":\"Hk3_aB9xQz\",\"timestamp\":1700000000000,\"messages\":[{\"name\":\"m\","
                   "\"data\":\"payload \\u00e9\",\"serial\":\"01:0\",\"extras\":{\"headers\":{\"a\":[1,2.5,null]}}},"
                   "{\"data\":{\"k\":true}}]}";
  sw_pmsg_t pm;
  sw_error_t err;
  assert_int_equal(codec_decode_pmsg(SW_FMT_JSON, (const uint8_t *)js, strlen(js), &pm, &err), 0);
  sw_buf_t b = {0};
  assert_int_equal(codec_encode_pmsg(SW_FMT_MSGPACK, &pm, &b), 0);
  pmsg_free(&pm);
  same(b.data, b.len);
  /* Every prefix is truncated; every single-byte change is read alike. */
  for (size_t n = 0; n < b.len; n++) refused(b.data, n);
  for (size_t i = 0; i < b.len; i++) {
    uint8_t keep = b.data[i];
    for (int v = 0; v < 256; v += 37) {
      b.data[i] = (uint8_t)v;
      same(b.data, b.len);
    }
    b.data[i] = keep;
  }
  buf_free(&b);
}

/* A frame too big for the tree's room to be reserved up front (the tree
 * grows, and indexes become pointers at the end) reads the same. */
static void test_large_frame(void **state) {
  (void)state;
  sw_buf_t js = {0};
  buf_append_str(&js, "{\"action\":15,\"channel\":\"c\",\"messages\":[");
  for (int m = 0; m < 40; m++)
    buf_printf(&js, "%s{\"name\":\"n%d\",\"data\":\"%0200d\",\"extras\":{\"a\":[[%d,[true,null]],{\"k\":\"v\"}]}}",
               m ? "," : "", m, m, m);
  buf_append_str(&js, "]}");
  sw_pmsg_t pm;
  sw_error_t err;
  assert_int_equal(codec_decode_pmsg(SW_FMT_JSON, js.data, js.len, &pm, &err), 0);
  sw_buf_t b = {0};
  assert_int_equal(codec_encode_pmsg(SW_FMT_MSGPACK, &pm, &b), 0);
  pmsg_free(&pm);
  assert_true(b.len > 65536 / sizeof(wire_val_t));
  same(b.data, b.len);
  for (size_t i = 0; i < b.len; i += 97) {
    uint8_t keep = b.data[i];
    b.data[i] = 0x93;
    same(b.data, b.len);
    b.data[i] = keep;
  }
  buf_free(&b);
  buf_free(&js);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Random bytes biased toward type bytes that open containers and strings,
 * so that many inputs are valid or nearly so. */
static void test_random(void **state) {
  (void)state;
  static const uint8_t common[] = {0x81, 0x82, 0x91, 0x92, 0x93, 0xa1, 0xa2, 0xc0, 0xc3, 0x01, 0x61,
                                   0xcc, 0xd0, 0xd4, 0xdc, 0x00, 0xc4, 0xca, 0xcb, 0xe0, 0xc3, 0xa9};
  uint8_t buf[48];
  for (int k = 0; k < 20000; k++) {
    size_t n = 1 + rnd() % sizeof buf;
    for (size_t i = 0; i < n; i++) buf[i] = rnd() % 4 ? common[rnd() % sizeof common] : (uint8_t)rnd();
    same(buf, n);
  }
}

/* The tree holds at most one view per input byte, plus the root, however
 * much the input's containers claim. */
static void test_memory_bound(void **state) {
  (void)state;
  uint8_t in[4096];
  /* Nested arrays, each claiming every byte left: refused, and the views
   * reserved stay within the bound. */
  size_t n = 0;
  while (n + 3 <= sizeof in) {
    in[n++] = 0xdc;
    size_t left = sizeof in - n - 2;
    in[n++] = (uint8_t)(left >> 8);
    in[n++] = (uint8_t)left;
    if (n > 30 * 3) break;
  }
  memset(in + n, 0x01, sizeof in - n);
  sw_buf_t scratch = {0};
  sw_error_t err;
  sw_buf_t out = {0};
  assert_int_equal(swc_mp_read(&scratch, in, sizeof in, mpc_root, &out, &err), -1);
  assert_int_equal(err.code, 40000);
  assert_true(scratch.len <= (sizeof in + 1) * sizeof(wire_val_t));
  buf_free(&out);
  /* A valid array of as many items as bytes: exactly n + 1 views. */
  in[0] = 0xdc;
  in[1] = (uint8_t)((sizeof in - 3) >> 8);
  in[2] = (uint8_t)(sizeof in - 3);
  memset(in + 3, 0xc0, sizeof in - 3);
  assert_int_equal(swc_mp_read(&scratch, in, sizeof in, mpc_root, &out, &err), 0);
  assert_int_equal(scratch.len, (sizeof in - 3 + 1) * sizeof(wire_val_t));
  buf_free(&out);
  buf_free(&scratch);
}

/* A scratch reused after a bigger frame, and after a refused one, reads the
 * next frame as a fresh one does. */
static void test_scratch_reuse(void **state) {
  (void)state;
  const uint8_t big[] = {0x93, 0x82, 0xa1, 'a', 0x92, 0x01, 0x02, 0xa1, 'b', 0xc3, 0xa3, 'x', 'y', 'z', 0x90};
  const uint8_t bad[] = {0x92, 0x01};
  const uint8_t small[] = {0x81, 0xa1, 'q', 0x91, 0x07};
  sw_buf_t scratch = {0}, out = {0};
  sw_error_t err;
  assert_int_equal(swc_mp_read(&scratch, big, sizeof big, mpc_root, &out, &err), 0);
  assert_int_equal(swc_mp_read(&scratch, bad, sizeof bad, mpc_root, &out, &err), -1);
  out.len = 0;
  assert_int_equal(swc_mp_read(&scratch, small, sizeof small, mpc_root, &out, &err), 0);
  buf_append_byte(&out, 0);
  char *fresh = mpc_describe(true, small, sizeof small);
  assert_string_equal((const char *)out.data, fresh);
  assert_string_equal(fresh, "{1 k1:71=[1 i7 ] } json {\"q\":[7]}");
  free(fresh);
  buf_free(&out);
  buf_free(&scratch);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_type),   cmocka_unit_test(test_refusals),     cmocka_unit_test(test_message_frame),
      cmocka_unit_test(test_random),       cmocka_unit_test(test_memory_bound), cmocka_unit_test(test_scratch_reuse),
      cmocka_unit_test(test_large_frame),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
