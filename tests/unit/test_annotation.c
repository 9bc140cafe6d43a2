/* Unit tests for core/annotation: the summaries of annotation types
 * (docs "Message annotations": total, flag, distinct, unique, multiple;
 * TM7 summary shapes), deletes, refusals and the size bound (clipping). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/annotation.h"

#define BIG ((size_t)1 << 20)

/* Applies one annotation; returns annotation_summarise's result. */
static int ann(json_t *sum, int action, const char *type, const char *name, const char *client, int count,
               size_t max, sw_error_t *err) {
  sw_msg_t a = {.action = action, .type = (char *)type, .name = (char *)name, .client_id = (char *)client,
                .message_serial = (char *)"0000000000000001", .count = count, .has_count = count != 0};
  sw_error_t e = {0};
  int rc = annotation_summarise(sum, &a, max, err ? err : &e);
  return rc;
}

#define C(...) ann(sum, SW_ANN_CREATE, __VA_ARGS__, 0, BIG, NULL)
#define D(...) ann(sum, SW_ANN_DELETE, __VA_ARGS__, 0, BIG, NULL)

static void expect(json_t *sum, const char *want) {
  json_error_t jerr;
  json_t *w = json_loads(want, 0, &jerr);
  if (!w) fail_msg("bad expectation %s: %s", want, jerr.text);
  if (!json_equal(sum, w)) {
    char *got = json_dumps(sum, JSON_COMPACT | JSON_SORT_KEYS);
    char *exp = json_dumps(w, JSON_COMPACT | JSON_SORT_KEYS);
    fail_msg("summary\n got  %s\n want %s", got, exp);
  }
  json_decref(w);
}

static void test_total(void **state) {
  (void)state;
  json_t *sum = json_object();
  assert_int_equal(C("m:total.v1", NULL, NULL), 1); /* unidentified clients count too */
  assert_int_equal(C("m:total.v1", NULL, "a"), 1);
  assert_int_equal(C("m:total.v1", NULL, "a"), 1); /* twice by the same client: twice */
  expect(sum, "{\"m:total.v1\":{\"total\":3}}");
  assert_int_equal(D("m:total.v1", NULL, "a"), 1);
  expect(sum, "{\"m:total.v1\":{\"total\":2}}");
  assert_int_equal(D("m:total.v1", NULL, "a"), 1);
  assert_int_equal(D("m:total.v1", NULL, "b"), 1);
  expect(sum, "{}");
  assert_int_equal(D("m:total.v1", NULL, "b"), 0); /* nothing left to delete */
  json_decref(sum);
}

static void test_flag(void **state) {
  (void)state;
  json_t *sum = json_object();
  assert_int_equal(C("r:flag.v1", "x", "a"), 1);
  assert_int_equal(C("r:flag.v1", NULL, "b"), 1);
  assert_int_equal(C("r:flag.v1", NULL, "a"), 0); /* once per client */
  expect(sum, "{\"r:flag.v1\":{\"total\":2,\"clientIds\":[\"a\",\"b\"],\"clipped\":false}}");
  assert_int_equal(D("r:flag.v1", NULL, "a"), 1);
  expect(sum, "{\"r:flag.v1\":{\"total\":1,\"clientIds\":[\"b\"],\"clipped\":false}}");
  assert_int_equal(D("r:flag.v1", NULL, "a"), 0);
  assert_int_equal(D("r:flag.v1", NULL, "b"), 1);
  expect(sum, "{}");
  sw_error_t err = {0};
  assert_int_equal(ann(sum, SW_ANN_CREATE, "r:flag.v1", NULL, NULL, 0, BIG, &err), -1);
  assert_int_equal(err.code, 40161);
  assert_int_equal(ann(sum, SW_ANN_CREATE, "r:flag.v1", NULL, "*", 0, BIG, &err), -1);
  expect(sum, "{}");
  json_decref(sum);
}

static void test_distinct(void **state) {
  (void)state;
  json_t *sum = json_object();
  assert_int_equal(C("reaction:distinct.v1", "like", "a"), 1);
  assert_int_equal(C("reaction:distinct.v1", "like", "b"), 1);
  assert_int_equal(C("reaction:distinct.v1", "like", "a"), 0);
  assert_int_equal(C("reaction:distinct.v1", "love", "a"), 1); /* other names too */
  expect(sum, "{\"reaction:distinct.v1\":{"
              "\"like\":{\"total\":2,\"clientIds\":[\"a\",\"b\"],\"clipped\":false},"
              "\"love\":{\"total\":1,\"clientIds\":[\"a\"],\"clipped\":false}}}");
  assert_int_equal(D("reaction:distinct.v1", "like", "a"), 1);
  assert_int_equal(D("reaction:distinct.v1", "love", "a"), 1);
  expect(sum, "{\"reaction:distinct.v1\":{\"like\":{\"total\":1,\"clientIds\":[\"b\"],\"clipped\":false}}}");
  assert_int_equal(D("reaction:distinct.v1", NULL, "b"), 1); /* no name: every name */
  expect(sum, "{}");
  sw_error_t err = {0};
  assert_int_equal(ann(sum, SW_ANN_CREATE, "reaction:distinct.v1", NULL, "a", 0, BIG, &err), -1);
  assert_int_equal(err.code, 40003);
  assert_int_equal(ann(sum, SW_ANN_CREATE, "reaction:distinct.v1", "x", NULL, 0, BIG, &err), -1);
  assert_int_equal(err.code, 40161);
  json_decref(sum);
}

static void test_unique(void **state) {
  (void)state;
  json_t *sum = json_object();
  assert_int_equal(C("s:unique.v1", "like", "a"), 1);
  assert_int_equal(C("s:unique.v1", "like", "b"), 1);
  assert_int_equal(C("s:unique.v1", "love", "a"), 1); /* a moves from like to love */
  expect(sum, "{\"s:unique.v1\":{"
              "\"like\":{\"total\":1,\"clientIds\":[\"b\"],\"clipped\":false},"
              "\"love\":{\"total\":1,\"clientIds\":[\"a\"],\"clipped\":false}}}");
  assert_int_equal(C("s:unique.v1", "love", "a"), 0);
  assert_int_equal(D("s:unique.v1", NULL, "a"), 1); /* Chat deletes unique without a name */
  expect(sum, "{\"s:unique.v1\":{\"like\":{\"total\":1,\"clientIds\":[\"b\"],\"clipped\":false}}}");
  assert_int_equal(D("s:unique.v1", "love", "b"), 0);
  json_decref(sum);
}

static void test_multiple(void **state) {
  (void)state;
  json_t *sum = json_object();
  assert_int_equal(ann(sum, SW_ANN_CREATE, "v:multiple.v1", "up", "a", 3, BIG, NULL), 1);
  assert_int_equal(C("v:multiple.v1", "up", "a"), 1); /* count defaults to 1 */
  assert_int_equal(ann(sum, SW_ANN_CREATE, "v:multiple.v1", "up", "b", 2, BIG, NULL), 1);
  assert_int_equal(ann(sum, SW_ANN_CREATE, "v:multiple.v1", "up", NULL, 2, BIG, NULL), 1);
  expect(sum, "{\"v:multiple.v1\":{\"up\":{\"total\":8,\"clientIds\":{\"a\":4,\"b\":2},"
              "\"totalUnidentified\":2,\"clipped\":false,\"totalClientIds\":2}}}");
  assert_int_equal(D("v:multiple.v1", "up", "a"), 1); /* all of a's contributions */
  expect(sum, "{\"v:multiple.v1\":{\"up\":{\"total\":4,\"clientIds\":{\"b\":2},"
              "\"totalUnidentified\":2,\"clipped\":false,\"totalClientIds\":1}}}");
  assert_int_equal(D("v:multiple.v1", "up", NULL), 0); /* unidentified: nothing to tell apart */
  sw_error_t err = {0};
  assert_int_equal(ann(sum, SW_ANN_CREATE, "v:multiple.v1", "up", "a", -1, BIG, &err), -1);
  assert_int_equal(err.code, 40003);
  json_decref(sum);
}

static void test_unknown_type(void **state) {
  (void)state;
  json_t *sum = json_object();
  assert_int_equal(C("comment:text.v1", "x", "a"), 0); /* stored, not summarised */
  assert_int_equal(C("nocolon", "x", "a"), 0);
  expect(sum, "{}");
  json_decref(sum);
}

/* Past the bound a client is counted but not listed (clipped); a new entry
 * that cannot fit is refused with 40009 and leaves the summary as it was. */
static void test_bound(void **state) {
  (void)state;
  json_t *sum = json_object();
  size_t max = 85;
  sw_error_t err = {0};
  assert_int_equal(ann(sum, SW_ANN_CREATE, "r:distinct.v1", "x", "client-1", 0, max, &err), 1);
  assert_int_equal(ann(sum, SW_ANN_CREATE, "r:distinct.v1", "x", "client-2", 0, max, &err), 1);
  assert_int_equal(ann(sum, SW_ANN_CREATE, "r:distinct.v1", "x", "client-3", 0, max, &err), 1);
  assert_true(json_dumpb(sum, NULL, 0, JSON_COMPACT) <= max);
  json_t *e = json_object_get(json_object_get(sum, "r:distinct.v1"), "x");
  assert_int_equal(json_integer_value(json_object_get(e, "total")), 3);
  assert_true(json_is_true(json_object_get(e, "clipped")));
  assert_true(json_array_size(json_object_get(e, "clientIds")) < 3);
  char *before = json_dumps(sum, JSON_COMPACT);
  assert_int_equal(ann(sum, SW_ANN_CREATE, "r:distinct.v1", "a-rather-long-new-name", "client-4", 0, max, &err), -1);
  assert_int_equal(err.code, 40009);
  char *after = json_dumps(sum, JSON_COMPACT);
  assert_string_equal(before, after);
  /* A delete of a client the clipped list does not show still uncounts. */
  assert_int_equal(ann(sum, SW_ANN_DELETE, "r:distinct.v1", "x", "client-3", 0, max, &err), 1);
  e = json_object_get(json_object_get(sum, "r:distinct.v1"), "x"); /* the summary was replaced */
  assert_int_equal(json_integer_value(json_object_get(e, "total")), 2);
  free(before);
  free(after);
  json_decref(sum);
}

static void test_head_version(void **state) {
  (void)state;
  sw_msg_t m = {0};
  assert_int_equal(annotation_head_version(&m, 5), 5);
  m.version = json_pack("{s:s}", "serial", "0000000000000009");
  assert_int_equal(annotation_head_version(&m, 5), 9);
  json_decref(m.version);
  m.version = json_pack("{s:s}", "serial", "junk");
  assert_int_equal(annotation_head_version(&m, 5), 5);
  json_decref(m.version);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_total),   cmocka_unit_test(test_flag),         cmocka_unit_test(test_distinct),
      cmocka_unit_test(test_unique),  cmocka_unit_test(test_multiple),     cmocka_unit_test(test_unknown_type),
      cmocka_unit_test(test_bound),   cmocka_unit_test(test_head_version),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
