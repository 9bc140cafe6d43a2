/* Unit tests for the VCDIFF encoder (proto/vcdiff.c), checked with the
 * test-only decoder (vcdiff_decode.h): round trips on edge cases, the exact
 * bytes of a small delta, and the output bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/vcdiff.h"
#include "vcdiff_decode.h"

static uint32_t rng = 12345;
static uint8_t rnd(void) {
  rng = rng * 1103515245u + 12345u;
  return (uint8_t)(rng >> 16);
}

/* Encodes with room to spare, decodes, compares; returns the delta's length. */
static size_t round_trip(const uint8_t *s, size_t slen, const uint8_t *t, size_t tlen) {
  size_t cap = 2 * tlen + 64, n = 0, back = 0;
  uint8_t *d = malloc(cap);
  uint8_t *o = malloc(tlen + 1);
  assert_non_null(d);
  assert_non_null(o);
  assert_int_equal(vcdiff_encode(s, slen, t, tlen, d, cap, &n), SW_VCDIFF_OK);
  assert_true(n <= cap);
  assert_int_equal(vcdiff_decode(s, slen, d, n, o, tlen, &back), 0);
  assert_int_equal(back, tlen);
  if (tlen) assert_memory_equal(o, t, tlen);
  free(d);
  free(o);
  return n;
}

static void empty_inputs(void **state) {
  (void)state;
  const uint8_t x[] = "some target bytes";
  round_trip(NULL, 0, NULL, 0);
  round_trip(NULL, 0, x, sizeof x - 1);
  round_trip(x, sizeof x - 1, NULL, 0);
  round_trip(x, 3, x, 3); /* shorter than a block: added, not copied */
}

/* The exact delta of "abcdefgh" -> "abcdefghXY": one window with the
 * source as its segment, COPY 8 from address 0 (mode VCD_SELF, opcode
 * 19 + 8 - 3), ADD 2 (opcode 1 + 2). */
static void exact_bytes(void **state) {
  (void)state;
  const uint8_t want[] = {0xD6, 0xC3, 0xC4, 0x00, 0x00, /* header */
                          0x01, 0x08, 0x00,             /* VCD_SOURCE, segment 8 at 0 */
                          0x0A,                         /* delta encoding length */
                          0x0A, 0x00, 0x02, 0x02, 0x01, /* target 10, indicator, section lengths */
                          'X',  'Y',  24,   3,    0x00};
  uint8_t d[64];
  size_t n = 0;
  assert_int_equal(vcdiff_encode((const uint8_t *)"abcdefgh", 8, (const uint8_t *)"abcdefghXY", 10, d, sizeof d, &n),
                   SW_VCDIFF_OK);
  assert_int_equal(n, sizeof want);
  assert_memory_equal(d, want, sizeof want);
}

static void identical_is_small(void **state) {
  (void)state;
  size_t len = 100000;
  uint8_t *s = malloc(len);
  assert_non_null(s);
  for (size_t i = 0; i < len; i++) s[i] = rnd();
  assert_true(round_trip(s, len, s, len) < 32);
  free(s);
}

/* Unrelated bytes: the delta is not smaller, and a cap below the target's
 * length refuses it (the caller then sends the message whole). */
static void fully_different(void **state) {
  (void)state;
  uint8_t s[4096], t[4096], d[4096];
  for (size_t i = 0; i < sizeof s; i++) s[i] = rnd(), t[i] = rnd();
  assert_true(round_trip(s, sizeof s, t, sizeof t) >= sizeof t);
  size_t n = 0;
  assert_int_equal(vcdiff_encode(s, sizeof s, t, sizeof t, d, sizeof t - 1, &n), SW_VCDIFF_TOO_BIG);
}

/* A large target with scattered edits, insertions and deletions: long
 * copies (sizes written after the opcode), long adds, VCD_HERE addresses. */
static void large_edits(void **state) {
  (void)state;
  size_t slen = 1 << 20, tlen = 0;
  uint8_t *s = malloc(slen), *t = malloc(slen + 65536);
  assert_non_null(s);
  assert_non_null(t);
  for (size_t i = 0; i < slen; i++) s[i] = rnd();
  for (size_t i = 0; i < slen;) {
    size_t run = 1 + rnd() * 64u;
    if (run > slen - i) run = slen - i;
    memcpy(t + tlen, s + i, run);
    tlen += run;
    i += run;
    switch (rnd() % 4) {
    case 0: /* insert */
      for (int k = rnd() % 40; k > 0; k--) t[tlen++] = rnd();
      break;
    case 1: /* delete */
      i += rnd() % 40;
      break;
    case 2: /* replace one byte */
      if (tlen) t[tlen - 1] ^= 0x5a;
      break;
    default:
      break;
    }
  }
  size_t n = round_trip(s, slen, t, tlen);
  assert_true(n < tlen / 4);
  /* The target as a source of itself reversed in halves: copies backwards. */
  round_trip(t + tlen / 2, tlen - tlen / 2, t, tlen / 2);
  free(s);
  free(t);
}

/* Text like JSON messages, as the server sees them. */
static void json_like(void **state) {
  (void)state;
  const char *a = "{\"foo\":\"bar\",\"count\":2,\"status\":\"active\"}";
  const char *b = "{\"foo\":\"bar\",\"count\":2,\"status\":\"inactive\"}";
  round_trip((const uint8_t *)a, strlen(a), (const uint8_t *)b, strlen(b));
  round_trip((const uint8_t *)b, strlen(b), (const uint8_t *)a, strlen(a));
}

/* For every cap from 0 to the delta's length: never a byte written past
 * it, and TOO_BIG exactly below the length. */
static void output_bounded(void **state) {
  (void)state;
  uint8_t s[600], t[700];
  for (int round = 0; round < 20; round++) {
    for (size_t i = 0; i < sizeof s; i++) s[i] = rnd() % 4;
    for (size_t i = 0; i < sizeof t; i++) t[i] = (rnd() % 8) ? s[(i * 7 + round) % sizeof s] : rnd();
    size_t full = 0;
    uint8_t big[2048];
    assert_int_equal(vcdiff_encode(s, sizeof s, t, sizeof t, big, sizeof big, &full), SW_VCDIFF_OK);
    for (size_t cap = 0; cap <= full; cap++) {
      uint8_t out[2048 + 16];
      memset(out, 0xEE, sizeof out);
      size_t n = 0;
      sw_vcdiff_rc_t rc = vcdiff_encode(s, sizeof s, t, sizeof t, out, cap, &n);
      for (size_t k = cap; k < sizeof out; k++) assert_int_equal(out[k], 0xEE);
      if (cap < full) {
        assert_int_equal(rc, SW_VCDIFF_TOO_BIG);
      } else {
        assert_int_equal(rc, SW_VCDIFF_OK);
        assert_int_equal(n, full);
        assert_memory_equal(out, big, full);
      }
    }
  }
}

static void invalid_arguments(void **state) {
  (void)state;
  uint8_t d[64];
  size_t n = 0;
  assert_int_equal(vcdiff_encode(NULL, 4, (const uint8_t *)"x", 1, d, sizeof d, &n), SW_VCDIFF_INVALID);
  assert_int_equal(vcdiff_encode((const uint8_t *)"x", 1, NULL, 4, d, sizeof d, &n), SW_VCDIFF_INVALID);
  assert_int_equal(vcdiff_encode((const uint8_t *)"x", 1, (const uint8_t *)"x", 1, NULL, 8, &n), SW_VCDIFF_INVALID);
  assert_int_equal(vcdiff_encode((const uint8_t *)"x", SW_VCDIFF_MAX_INPUT + 1, (const uint8_t *)"x", 1, d, sizeof d, &n),
                   SW_VCDIFF_INVALID);
}

/* The test decoder refuses what is not a whole, well-formed delta, so the
 * round trips above mean something. */
static void decoder_refuses_damage(void **state) {
  (void)state;
  uint8_t d[64], o[64];
  size_t n = 0, back = 0;
  assert_int_equal(vcdiff_encode((const uint8_t *)"abcdefgh", 8, (const uint8_t *)"abcdefghXY", 10, d, sizeof d, &n),
                   SW_VCDIFF_OK);
  for (size_t cut = 0; cut < n; cut++)
    assert_int_equal(vcdiff_decode((const uint8_t *)"abcdefgh", 8, d, cut, o, sizeof o, &back), cut == 5 ? 0 : -1);
  assert_int_equal(vcdiff_decode((const uint8_t *)"abcdefgh", 8, d, n, o, 9, &back), -1); /* target over cap */
  assert_int_equal(vcdiff_decode((const uint8_t *)"abcdefgh", 7, d, n, o, sizeof o, &back), -1); /* short source */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(empty_inputs),     cmocka_unit_test(exact_bytes),     cmocka_unit_test(identical_is_small),
      cmocka_unit_test(fully_different),  cmocka_unit_test(large_edits),     cmocka_unit_test(json_like),
      cmocka_unit_test(output_bounded),   cmocka_unit_test(invalid_arguments), cmocka_unit_test(decoder_refuses_damage),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
