/* test_cloud.c: the pure helpers of the Assistant Cloud API (src/cloud/):
 * ISO times in the client's canonical form and back, and workspace ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cloud/cloud_int.h"

static int64_t parse(const char *s) {
  json_t *v = json_string(s);
  int64_t ms = -2;
  int rc = cloud_parse_time(v, &ms);
  json_decref(v);
  return rc ? -1 : ms;
}

/* Date#toISOString() is what the client sends and insists on reading back. */
static void test_iso_round_trip(void **state) {
  (void)state;
  char out[25];
  cloud_iso_time(0, out);
  assert_string_equal(out, "1970-01-01T00:00:00.000Z");
  cloud_iso_time(1784205000123LL, out);
  assert_string_equal(out, "2026-07-16T12:30:00.123Z");
  assert_int_equal(parse("2026-07-16T12:30:00.123Z"), 1784205000123LL);
  assert_int_equal(parse("2026-07-16T12:30:00Z"), 1784205000000LL);
  assert_int_equal(parse("2026-07-16T12:30:00.1Z"), 1784205000100LL);
  assert_int_equal(parse("2026-07-16T12:30:00.123456Z"), 1784205000123LL);
  assert_int_equal(parse("2026-07-16T14:30:00.123+02:00"), 1784205000123LL);
  assert_int_equal(parse("2026-07-16T10:00:00.000-02:30"), 1784205000000LL);
  json_t *n = json_integer(42);
  int64_t ms;
  assert_int_equal(cloud_parse_time(n, &ms), 0);
  assert_int_equal(ms, 42);
  json_decref(n);
}

static void test_iso_refused(void **state) {
  (void)state;
  const char *bad[] = {"",
                       "2026-07-16",
                       "2026-07-16T12:30:00",      /* no zone */
                       "2026-07-16T12:30:00.Z",    /* empty fraction */
                       "2026-13-16T12:30:00Z",     /* month */
                       "2026-07-16T25:30:00Z",     /* hour */
                       "2026-07-16T12:30:00Zjunk", /* trailing */
                       "2026-07-16T12:30:00+0200", /* offset without ':' */
                       "1960-01-01T00:00:00Z",     /* before the epoch */
                       "20x6-07-16T12:30:00Z",
                       "2026-07-16T12:30:00.000000000000000000000000000000000000000Z"}; /* too long */
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_int_equal(parse(bad[i]), -1);
  json_t *v = json_true();
  int64_t ms;
  assert_int_equal(cloud_parse_time(v, &ms), -1);
  json_decref(v);
  v = json_integer(-1);
  assert_int_equal(cloud_parse_time(v, &ms), -1);
  json_decref(v);
}

/* A workspace id: printable ASCII without ':' or '*', 1..128 bytes, so a
 * capability "cloud:{id}:*" names exactly one workspace. */
static void test_workspace_ids(void **state) {
  (void)state;
  assert_true(cloud_workspace_valid("team-1", 6));
  assert_true(cloud_workspace_valid("auth0|abc@x.com", 15));
  assert_false(cloud_workspace_valid("", 0));
  assert_false(cloud_workspace_valid("a:b", 3));
  assert_false(cloud_workspace_valid("*", 1));
  assert_false(cloud_workspace_valid("a b", 3));
  assert_false(cloud_workspace_valid("caf\xc3\xa9", 5));
  char big[CLOUD_WORKSPACE_MAX + 2];
  memset(big, 'a', sizeof big);
  assert_true(cloud_workspace_valid(big, CLOUD_WORKSPACE_MAX));
  assert_false(cloud_workspace_valid(big, CLOUD_WORKSPACE_MAX + 1));
  char ch[64];
  cloud_channel("team-1", "thread_x", ch, sizeof ch);
  assert_string_equal(ch, "cloud:team-1:thread_x");
  cloud_channel("team-1", NULL, ch, sizeof ch);
  assert_string_equal(ch, "cloud:team-1:*");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_iso_round_trip),
      cmocka_unit_test(test_iso_refused),
      cmocka_unit_test(test_workspace_ids),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
