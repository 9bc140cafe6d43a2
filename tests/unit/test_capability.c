/* Unit tests for auth/capability and auth/channel_name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "auth/capability.h"
#include "auth/channel_name.h"
#include "proto/pmsg.h"

/* ---- allocation counting, to check that matching never allocates ----
 * glibc lets a program replace malloc; these forward to glibc's own heap.
 * Sanitizer builds keep their interceptors, and the check is skipped. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define SW_TEST_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define SW_TEST_SANITIZED 1
#endif

#if !defined(SW_TEST_SANITIZED) && defined(__GLIBC__)
#define SW_TEST_COUNT_ALLOCS 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
static size_t alloc_count;
void *malloc(size_t n) {
  alloc_count++;
  return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
  alloc_count++;
  return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
  alloc_count++;
  return __libc_realloc(p, n);
}
void free(void *p) { __libc_free(p); }
#endif

/* ---- helpers ---- */

#define S SW_OP_BIT(SW_OP_SUBSCRIBE)
#define P SW_OP_BIT(SW_OP_PUBLISH)
#define PR SW_OP_BIT(SW_OP_PRESENCE)
#define H SW_OP_BIT(SW_OP_HISTORY)
#define PS SW_OP_BIT(SW_OP_PUSH_SUBSCRIBE)
#define PA SW_OP_BIT(SW_OP_PUSH_ADMIN)
#define ST SW_OP_BIT(SW_OP_STATS)
#define CM SW_OP_BIT(SW_OP_CHANNEL_METADATA)
#define ALL SW_OPS_ALL

/* The capabilities of keys[1..5] in tests/fixtures/app-setup.json, the app
 * the integration tests create (key 4 has none: it gets the default
 * {"*":["*"]}). test_app_setup_file keeps the two in step. */
static const char *const KEY1 =
    "{ \"readers:*\":[\"subscribe\"], \"writers:*\":[\"publish\"], "
    "\"writers:lobby\":[\"presence\",\"publish\"], "
    "\"devices:*\":[\"publish\",\"subscribe\",\"push-subscribe\"], "
    "\"devices:admin:*\":[\"publish\",\"subscribe\",\"push-admin\"] }";
static const char *const KEY2 =
    "{ \"pub-1\":[\"publish\"], \"pub-2\":[\"publish\"], \"pub-sub\":[\"publish\", \"subscribe\"], "
    "\"sub-only\":[\"subscribe\"], \"members\":[\"presence\", \"publish\", \"subscribe\"], "
    "\"presence-only\":[\"presence\"], \"all-ops\":[\"*\"] }";
static const char *const KEY3 = "{ \"*\":[\"subscribe\"] }";
static const char *const KEY4 = "{\"*\":[\"*\"]}";
static const char *const KEY5 = "{ \"[*]*\":[\"*\"] }";

static sw_cap_t *parse_ok(const char *json) {
  sw_error_t err = {0};
  sw_cap_t *c = cap_parse(json, strlen(json), &err);
  if (c == NULL) fail_msg("cap_parse(%s) failed: %d %s", json, err.code, err.message);
  return c;
}

static void assert_canonical(const sw_cap_t *c, const char *want) {
  char *got = cap_canonical(c);
  assert_non_null(got);
  assert_string_equal(got, want);
  free(got);
}

/* ---- matching ---- */

typedef struct match_case {
  const char *cap;
  const char *channel;
  uint32_t ops;
} match_case_t;

static const match_case_t match_cases[] = {
    /* Ably docs "Resource names and wildcards". */
    {"{\"*\":[\"subscribe\"]}", "anything", S},
    {"{\"*\":[\"subscribe\"]}", "a:b:c", S},
    {"{\"*\":[\"subscribe\"]}", "[meta]log", 0},
    {"{\"*\":[\"subscribe\"]}", "[queue]app-q", 0},
    {"{\"namespace:*\":[\"publish\"]}", "namespace:channel", P},
    {"{\"namespace:*\":[\"publish\"]}", "namespace:channel:other", P},
    {"{\"namespace:*\":[\"publish\"]}", "namespace", 0},
    {"{\"namespace:*\":[\"publish\"]}", "namespacex:a", 0},
    {"{\"namespace:*\":[\"publish\"]}", "other:namespace:a", 0},
    {"{\"foo:*:baz\":[\"publish\"]}", "foo:bar:baz", P},
    {"{\"foo:*:baz\":[\"publish\"]}", "foo:bar:bam:baz", 0},
    {"{\"foo:*:baz\":[\"publish\"]}", "foo:baz", 0},
    {"{\"foo:*:baz\":[\"publish\"]}", "foo:bar:baz:x", 0},
    {"{\"foo:*\":[\"publish\"]}", "foo:bar", P},
    {"{\"foo:*\":[\"publish\"]}", "foo:bar:bam", P},
    {"{\"foo:*\":[\"publish\"]}", "foo:bar:bam:baz", P},
    {"{\"foo*\":[\"publish\"]}", "foo*", P},
    {"{\"foo*\":[\"publish\"]}", "foo", 0},
    {"{\"foo*\":[\"publish\"]}", "foobar", 0},
    {"{\"foo*\":[\"publish\"]}", "foo:bar", 0},
    {"{\"*:b\":[\"publish\"]}", "a:b", P},
    {"{\"*:b\":[\"publish\"]}", "a:x:b", 0},
    {"{\"*:*\":[\"publish\"]}", "a", 0},
    {"{\"*:*\":[\"publish\"]}", "a:b:c", P},
    {"{\"exact\":[\"history\"]}", "exact", H},
    {"{\"exact\":[\"history\"]}", "exact:sub", 0},
    {"{\"exact\":[\"history\"]}", "Exact", 0}, /* names are case sensitive */
    /* Empty segments are ordinary segments. */
    {"{\"room:*\":[\"publish\"]}", "room::x", P},
    {"{\"room::*\":[\"publish\"]}", "room::x", P},
    /* Ably matches a name without its "::$..." suffix: a token for the room
     * "room" works on Ably Chat's channel "room::$chat". */
    {"{\"room\":[\"publish\"]}", "room::$chat", P},
    {"{\"room\":[\"publish\"]}", "room::$chat::$chatMessages", P},
    {"{\"dms:*\":[\"publish\"]}", "dms:abc::$chat", P},
    {"{\"*\":[\"publish\"]}", "room::$chat", P},
    {"{\"room\":[\"publish\"]}", "roomx::$chat", 0},
    {"{\"room\":[\"publish\"]}", "room:$chat", 0},
    {"{\"room:*\":[\"publish\"]}", "room::$chat", 0},
    {"{\"room::$chat\":[\"publish\"]}", "room::$chat", 0},
    {"{\"[meta]room\":[\"subscribe\"]}", "[meta]room::$x", S},
    {"{\"room\":[\"subscribe\"]}", "[?rewind=1]room::$chat", S},
    /* Qualifiers. */
    {"{\"[queue]*\":[\"subscribe\"]}", "[queue]appid-queuename", S},
    {"{\"[queue]*\":[\"subscribe\"]}", "appid-queuename", 0},
    {"{\"[meta]*\":[\"subscribe\"]}", "[meta]channel.lifecycle", S},
    {"{\"[meta]*\":[\"subscribe\"]}", "[meta]clientEvents:connections", S},
    {"{\"[meta]*\":[\"subscribe\"]}", "channel.lifecycle", 0},
    {"{\"[meta]*\":[\"subscribe\"]}", "[queue]x", 0},
    {"{\"[meta]log\":[\"subscribe\"]}", "[meta]log", S},
    {"{\"[meta]log\":[\"subscribe\"]}", "[meta]log:push", 0},
    {"{\"[meta]log:*\":[\"subscribe\"]}", "[meta]log:push", S},
    {"{\"[*]*\":[\"subscribe\"]}", "plain", S},
    {"{\"[*]*\":[\"subscribe\"]}", "[meta]log", S},
    {"{\"[*]*\":[\"subscribe\"]}", "[queue]q", S},
    {"{\"[*]foo:*\":[\"subscribe\"]}", "[meta]foo:x", S},
    {"{\"[*]foo:*\":[\"subscribe\"]}", "foo:x", S},
    {"{\"[*]foo:*\":[\"subscribe\"]}", "bar:x", 0},
    /* Channel params and filters check the base channel. */
    {"{\"ch\":[\"subscribe\"]}", "[?rewind=1]ch", S},
    {"{\"ch\":[\"subscribe\"]}", "[filter=bmFtZQ==]ch", S},
    {"{\"ch\":[\"subscribe\"]}", "[filter=bmFtZQ==?rewind=1]ch", S},
    {"{\"[meta]*\":[\"subscribe\"]}", "[meta?rewind=1]log", S},
    {"{\"*\":[\"subscribe\"]}", "[meta?rewind=1]log", 0},
    /* Invalid names get nothing. */
    {"{\"[*]*\":[\"*\"]}", "[meta", 0},
    /* Several matching resources: the union of their operations. */
    {"{\"*\":[\"subscribe\"],\"foo\":[\"publish\"]}", "foo", S | P},
    {"{\"*\":[\"subscribe\"],\"foo\":[\"publish\"]}", "bar", S},
    {"{\"a:*\":[\"subscribe\"],\"a:b:*\":[\"publish\"],\"a:b:c\":[\"history\"]}", "a:b:c", S | P | H},
    {"{\"a:*\":[\"subscribe\"],\"a:b:*\":[\"publish\"],\"a:b:c\":[\"history\"]}", "a:b", S},
    /* Fixture key 1 ("namespaced"). */
    {NULL, "readers:x", S},
    {NULL, "readers:x:y", S},
    {NULL, "readers", 0},
    {NULL, "writers:check", P},
    {NULL, "writers:lobby", P | PR},
    {NULL, "devices:foo", P | S | PS},
    {NULL, "devices:admin", P | S | PS},
    {NULL, "devices:admin:x", P | S | PS | PA},
    {NULL, "other", 0},
    {NULL, "[meta]readers:x", 0},
};

/* Entries with cap == NULL use the capability of the preceding block:
 * here key 1 for all of them. */
static void test_match_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof match_cases / sizeof match_cases[0]; i++) {
    const match_case_t *t = &match_cases[i];
    sw_cap_t *c = parse_ok(t->cap != NULL ? t->cap : KEY1);
    uint32_t got = cap_ops_for_channel(c, t->channel);
    if (got != t->ops)
      fail_msg("case %zu: %s on \"%s\": got 0x%x want 0x%x", i, t->cap ? t->cap : "KEY1", t->channel, got,
               t->ops);
    for (int op = 0; op < SW_OP_COUNT; op++)
      assert_int_equal(cap_allows(c, t->channel, op), (t->ops & SW_OP_BIT(op)) != 0);
    cap_free(c);
  }
}

typedef struct key_case {
  int key;
  const char *channel;
  uint32_t ops;
} key_case_t;

static const char *key_cap(int k) {
  switch (k) {
  case 1: return KEY1;
  case 2: return KEY2;
  case 3: return KEY3;
  case 4: return KEY4;
  default: return KEY5;
  }
}

static const key_case_t key_cases[] = {
    {2, "pub-1", P},
    {2, "pub-2", P},
    {2, "pub-sub", P | S},
    {2, "sub-only", S},
    {2, "members", PR | P | S},
    {2, "presence-only", PR},
    {2, "all-ops", ALL},
    {2, "unlisted", 0},
    {2, "all-ops:x", 0},
    {2, "[meta]all-ops", 0},
    {3, "anything", S},
    {3, "readers", S},
    {3, "a:b:c", S},
    {3, "[meta]log", 0},
    {4, "anything", ALL},
    {4, "ns:a:b", ALL},
    {4, "[meta]log", 0},
    {5, "anything", ALL},
    {5, "[meta]log", ALL},
    {5, "[queue]q", ALL},
};

static void test_match_test_app_keys(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof key_cases / sizeof key_cases[0]; i++) {
    const key_case_t *t = &key_cases[i];
    sw_cap_t *c = parse_ok(key_cap(t->key));
    uint32_t got = cap_ops_for_channel(c, t->channel);
    if (got != t->ops) fail_msg("key %d on \"%s\": got 0x%x want 0x%x", t->key, t->channel, got, t->ops);
    cap_free(c);
  }
  sw_cap_t *d = cap_all();
  assert_non_null(d);
  assert_int_equal(cap_ops_for_channel(d, "x"), ALL);
  assert_int_equal(cap_ops_for_channel(d, "[meta]x"), 0);
  assert_canonical(d, "{\"*\":[\"*\"]}");
  cap_free(d);
  d = cap_all_qualified();
  assert_int_equal(cap_ops_for_channel(d, "[meta]x"), ALL);
  assert_canonical(d, "{\"[*]*\":[\"*\"]}");
  cap_free(d);
}

/* The copies above must be what tests/fixtures/app-setup.json says. */
static void test_app_setup_file(void **state) {
  (void)state;
  char path[4096];
  snprintf(path, sizeof path, "%s/app-setup.json", SW_FIXTURES_DIR);
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);
  if (root == NULL) fail_msg("cannot load %s: %s", path, jerr.text);
  json_t *keys = json_object_get(root, "keys");
  assert_true(json_array_size(keys) >= 6);
  for (int k = 1; k <= 5; k++) {
    /* A capability may be written as a JSON string (Ably's wire form) or an object. */
    json_t *cap = json_object_get(json_array_get(keys, (size_t)k), "capability");
    char *text = cap == NULL ? strdup(KEY4) /* key 4 has none */
                 : json_is_string(cap) ? strdup(json_string_value(cap))
                                       : json_dumps(cap, JSON_COMPACT);
    assert_non_null(text);
    sw_cap_t *a = parse_ok(text), *b = parse_ok(key_cap(k));
    free(text);
    char *ca = cap_canonical(a), *cb = cap_canonical(b);
    assert_string_equal(ca, cb);
    free(ca);
    free(cb);
    cap_free(a);
    cap_free(b);
  }
  json_decref(root);
}

static void test_match_does_not_allocate(void **state) {
  (void)state;
#ifdef SW_TEST_COUNT_ALLOCS
  sw_cap_t *c = parse_ok(KEY1);
  size_t before = alloc_count;
  uint32_t ops = cap_ops_for_channel(c, "devices:admin:x") | cap_ops_for_channel(c, "[meta?a=1]x") |
                 cap_app_ops(c) | (cap_allows(c, "writers:x", SW_OP_PUBLISH) ? 1u : 0u);
  assert_int_equal(alloc_count, before);
  assert_true(ops != 0);
  /* The counter works: a parse does allocate. */
  sw_cap_t *d = parse_ok(KEY2);
  assert_true(alloc_count > before);
  cap_free(d);
  cap_free(c);
#else
  skip();
#endif
}

static void test_null_and_range(void **state) {
  (void)state;
  sw_cap_t *c = parse_ok(KEY4);
  assert_int_equal(cap_ops_for_channel(NULL, "x"), 0);
  assert_int_equal(cap_ops_for_channel(c, NULL), 0);
  assert_false(cap_allows(c, "x", -1));
  assert_false(cap_allows(c, "x", SW_OP_COUNT));
  assert_true(cap_allows(c, "x", SW_OP_PRIVILEGED_HEADERS));
  assert_int_equal(cap_ops_for_channel_n(c, "x\0y", 3), ALL);
  assert_int_equal(cap_count(c), 1);
  assert_int_equal(cap_count(NULL), 0);
  assert_null(cap_canonical(NULL));
  cap_free(NULL);
  cap_free(c);
}

static void test_app_ops(void **state) {
  (void)state;
  static const struct {
    const char *cap;
    uint32_t ops;
  } t[] = {
      {"{\"*\":[\"stats\"]}", ST},
      {"{\"[*]*\":[\"stats\",\"channel-metadata\"]}", ST | CM},
      {"{\"foo\":[\"stats\"]}", 0},
      {"{\"*:*\":[\"stats\"]}", 0},
      {"{\"[meta]*\":[\"stats\"]}", 0},
      {"{\"[*]foo\":[\"stats\"]}", 0},
      {"{\"*\":[\"subscribe\"],\"foo\":[\"stats\"]}", S},
      {"{\"*\":[\"*\"]}", ALL},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    sw_cap_t *c = parse_ok(t[i].cap);
    assert_int_equal(cap_app_ops(c), t[i].ops);
    cap_free(c);
  }
  assert_int_equal(cap_app_ops(NULL), 0);
}

/* ---- operation names and modes ---- */

static void test_op_names(void **state) {
  (void)state;
  for (int op = 0; op < SW_OP_COUNT; op++) {
    const char *n = cap_op_name(op);
    assert_non_null(n);
    assert_int_equal(cap_op_from_name(n, strlen(n)), op);
  }
  assert_null(cap_op_name(-1));
  assert_null(cap_op_name(SW_OP_COUNT));
  assert_int_equal(cap_op_from_name("*", 1), -1);
  assert_int_equal(cap_op_from_name("publis", 6), -1);
  assert_int_equal(cap_op_from_name("publish_", 8), -1);
  assert_int_equal(cap_op_from_name(NULL, 0), -1);
  assert_int_equal(cap_op_from_name("Publish", 7), -1);
}

static void test_modes(void **state) {
  (void)state;
  assert_int_equal(cap_modes_for_ops(0), 0);
  assert_int_equal(cap_modes_for_ops(S), SW_MODE_SUBSCRIBE | SW_MODE_PRESENCE_SUBSCRIBE | SW_MODE_OBJECT_SUBSCRIBE);
  assert_int_equal(cap_modes_for_ops(P), SW_MODE_PUBLISH);
  assert_int_equal(cap_modes_for_ops(PR), SW_MODE_PRESENCE);
  assert_int_equal(cap_modes_for_ops(SW_OP_BIT(SW_OP_OBJECT_SUBSCRIBE)), SW_MODE_OBJECT_SUBSCRIBE);
  assert_int_equal(cap_modes_for_ops(SW_OP_BIT(SW_OP_OBJECT_PUBLISH)), SW_MODE_OBJECT_PUBLISH);
  assert_int_equal(cap_modes_for_ops(SW_OP_BIT(SW_OP_ANNOTATION_SUBSCRIBE)), SW_MODE_ANNOTATION_SUBSCRIBE);
  assert_int_equal(cap_modes_for_ops(SW_OP_BIT(SW_OP_ANNOTATION_PUBLISH)), SW_MODE_ANNOTATION_PUBLISH);
  assert_int_equal(cap_modes_for_ops(H | ST | CM | PS | PA), 0);
  assert_int_equal(cap_modes_for_ops(ALL), SW_MODE_ALL);
  /* The ATTACH default (SUBSCRIBE, PUBLISH, PRESENCE_SUBSCRIBE, PRESENCE,
   * ANNOTATION_PUBLISH) against a subscribe-only key. */
  uint32_t requested = SW_MODE_SUBSCRIBE | SW_MODE_PUBLISH | SW_MODE_PRESENCE_SUBSCRIBE | SW_MODE_PRESENCE |
                       SW_MODE_ANNOTATION_PUBLISH;
  assert_int_equal(requested & cap_modes_for_ops(S), SW_MODE_SUBSCRIBE | SW_MODE_PRESENCE_SUBSCRIBE);
}

/* ---- canonical form ---- */

static void test_canonical(void **state) {
  (void)state;
  static const struct {
    const char *in, *out;
  } t[] = {
      {"{ \"b\" : [\"subscribe\", \"publish\"], \"a\":[\"publish\"] }",
       "{\"a\":[\"publish\"],\"b\":[\"publish\",\"subscribe\"]}"},
      {"{\"a\":[\"publish\",\"publish\"]}", "{\"a\":[\"publish\"]}"},
      {"{\"a\":[\"*\"]}", "{\"a\":[\"*\"]}"},
      {"{\"private\":[\"subscribe\",\"publish\",\"presence\"],\"*\":[\"subscribe\"]}",
       "{\"*\":[\"subscribe\"],\"private\":[\"presence\",\"publish\",\"subscribe\"]}"},
      /* Byte order: '*' (0x2a) < ':' < 'A' < '[' < 'a'; a prefix first. */
      {"{\"a\":[\"publish\"],\"[*]*\":[\"publish\"],\"A\":[\"publish\"],\"a:*\":[\"publish\"],\"*\":[\"publish\"]}",
       "{\"*\":[\"publish\"],\"A\":[\"publish\"],\"[*]*\":[\"publish\"],\"a\":[\"publish\"],\"a:*\":[\"publish\"]}"},
      /* JSON escapes; non-ASCII stays UTF-8 and sorts after ASCII. */
      {"{\"\\u00e9:x\":[\"subscribe\"],\"a\\\"b\\\\c\":[\"publish\"]}",
       "{\"a\\\"b\\\\c\":[\"publish\"],\"\xc3\xa9:x\":[\"subscribe\"]}"},
      {KEY1,
       "{\"devices:*\":[\"publish\",\"push-subscribe\",\"subscribe\"],"
       "\"devices:admin:*\":[\"publish\",\"push-admin\",\"subscribe\"],\"readers:*\":[\"subscribe\"],"
       "\"writers:*\":[\"publish\"],\"writers:lobby\":[\"presence\",\"publish\"]}"},
      {KEY2,
       "{\"all-ops\":[\"*\"],\"members\":[\"presence\",\"publish\",\"subscribe\"],"
       "\"presence-only\":[\"presence\"],\"pub-1\":[\"publish\"],\"pub-2\":[\"publish\"],"
       "\"pub-sub\":[\"publish\",\"subscribe\"],\"sub-only\":[\"subscribe\"]}"},
      {KEY5, "{\"[*]*\":[\"*\"]}"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    sw_cap_t *c = parse_ok(t[i].in);
    assert_canonical(c, t[i].out);
    cap_free(c);
    c = parse_ok(t[i].out); /* canonical text is a fixed point */
    assert_canonical(c, t[i].out);
    cap_free(c);
  }
}

/* Every operation listed explicitly comes out sorted and stays explicit. */
static void test_canonical_all_ops_sorted(void **state) {
  (void)state;
  char in[1024] = "{\"x\":[";
  for (int op = SW_OP_COUNT - 1; op >= 0; op--) {
    strcat(in, "\"");
    strcat(in, cap_op_name(op));
    strcat(in, op > 0 ? "\"," : "\"");
  }
  strcat(in, "]}");
  sw_cap_t *c = parse_ok(in);
  assert_int_equal(cap_ops_for_channel(c, "x"), ALL);
  char *out = cap_canonical(c);
  json_t *j = json_loads(out, 0, NULL);
  json_t *arr = json_object_get(j, "x");
  assert_int_equal(json_array_size(arr), SW_OP_COUNT);
  for (size_t i = 1; i < json_array_size(arr); i++)
    assert_true(strcmp(json_string_value(json_array_get(arr, i - 1)), json_string_value(json_array_get(arr, i))) <
                0);
  json_decref(j);
  free(out);
  cap_free(c);
}

/* ---- parse errors ---- */

static void expect_parse_error(const char *json, size_t len, const char *needle) {
  sw_error_t err = {0};
  sw_cap_t *c = cap_parse(json, len, &err);
  if (c != NULL) fail_msg("cap_parse accepted %.80s", json);
  assert_int_equal(err.code, 40000);
  assert_int_equal(err.status, 400);
  if (strstr(err.message, needle) == NULL) fail_msg("message \"%s\" lacks \"%s\"", err.message, needle);
  assert_null(cap_parse(json, len, NULL)); /* err is optional */
}

#define PARSE_ERR(json, needle) expect_parse_error(json, strlen(json), needle)

static void test_parse_errors(void **state) {
  (void)state;
  PARSE_ERR("{\"a\":[\"publish\"]", "malformed JSON");
  PARSE_ERR("not json", "malformed JSON");
  PARSE_ERR("", "malformed JSON");
  PARSE_ERR("{\"a\":[\"publish\"]} x", "malformed JSON");
  PARSE_ERR("{\"a\":[\"publish\"],\"a\":[\"subscribe\"]}", "malformed JSON"); /* duplicate key */
  PARSE_ERR("{\"a\\u0000b\":[\"publish\"]}", "malformed JSON");
  PARSE_ERR("[\"publish\"]", "not a JSON object");
  PARSE_ERR("\"x\"", "not a JSON object");
  PARSE_ERR("42", "not a JSON object");
  PARSE_ERR("null", "not a JSON object");
  PARSE_ERR("{}", "no resources");
  /* ably-js rest/capability "Invalid capabilities 1-3". */
  PARSE_ERR("{\"pub-1\":[\"publish_\"]}", "unknown operation \"publish_\"");
  PARSE_ERR("{\"pub-1\":[\"*\",\"publish\"]}", "'*' mixed");
  PARSE_ERR("{\"pub-1\":[\"publish\",\"*\"]}", "'*' mixed");
  PARSE_ERR("{\"pub-1\":[]}", "empty operation list");
  PARSE_ERR("{\"pub-1\":\"publish\"}", "not an array");
  PARSE_ERR("{\"pub-1\":{\"publish\":true}}", "not an array");
  PARSE_ERR("{\"pub-1\":[1]}", "not a string");
  PARSE_ERR("{\"pub-1\":[null]}", "not a string");
  PARSE_ERR("{\"pub-1\":[\"\"]}", "unknown operation");
  PARSE_ERR("{\"pub-1\":[\"Publish\"]}", "unknown operation");
  /* Invalid resources. */
  PARSE_ERR("{\"\":[\"publish\"]}", "invalid resource");
  PARSE_ERR("{\"[meta\":[\"publish\"]}", "invalid resource (resource \"[meta\")");
  PARSE_ERR("{\"[]x\":[\"publish\"]}", "invalid resource");
  PARSE_ERR("{\"[meta]\":[\"publish\"]}", "invalid resource");
  PARSE_ERR("{\"[*]\":[\"publish\"]}", "invalid resource");
  PARSE_ERR("{\"[me ta]x\":[\"publish\"]}", "invalid resource");
  PARSE_ERR("{\"[**]x\":[\"publish\"]}", "invalid resource");
  PARSE_ERR("{\"[?rewind=1]x\":[\"publish\"]}", "invalid resource");
  PARSE_ERR("{\"[*][meta]x\":[\"publish\"]}", "invalid resource");
  PARSE_ERR("{\"[*][x:y\":[\"publish\"]}", "invalid resource");
  PARSE_ERR("{\"a\\nb\":[\"publish\"]}", "invalid resource");
  PARSE_ERR("{\"a\\u007fb\":[\"publish\"]}", "invalid resource");
  PARSE_ERR("{\"ok\":[\"publish\"],\"bad\":[\"nope\"]}", "unknown operation \"nope\" (resource \"bad\")");
}

static void test_parse_limits(void **state) {
  (void)state;
  /* Input length. */
  size_t big = SW_CAP_MAX_INPUT + 1;
  char *s = malloc(big + 1);
  memset(s, ' ', big);
  memcpy(s, "{\"a\":[\"publish\"]}", 17);
  s[big] = '\0';
  expect_parse_error(s, big, "longer than");
  sw_cap_t *c = cap_parse(s, big - 1, NULL); /* the limit itself is fine */
  assert_non_null(c);
  cap_free(c);
  free(s);

  /* Resource count: 1000 accepted, 1001 refused. */
  s = malloc(SW_CAP_MAX_INPUT);
  for (int n = 1000; n <= 1001; n++) {
    size_t o = 0;
    s[o++] = '{';
    for (int i = 0; i < n; i++) o += (size_t)sprintf(s + o, "%s\"r%d\":[\"publish\"]", i ? "," : "", i);
    s[o++] = '}';
    s[o] = '\0';
    if (n == 1000) {
      c = parse_ok(s);
      assert_int_equal(cap_count(c), 1000);
      assert_int_equal(cap_ops_for_channel(c, "r999"), P);
      cap_free(c);
    } else {
      expect_parse_error(s, o, "more than 1000");
    }
  }

  /* Resource length: 8192 accepted, 8193 refused. */
  for (size_t n = SW_CAP_MAX_RESOURCE_LEN; n <= SW_CAP_MAX_RESOURCE_LEN + 1; n++) {
    size_t o = 0;
    s[o++] = '{';
    s[o++] = '"';
    memset(s + o, 'x', n);
    o += n;
    o += (size_t)sprintf(s + o, "\":[\"publish\"]}");
    if (n == SW_CAP_MAX_RESOURCE_LEN) {
      c = parse_ok(s);
      cap_free(c);
    } else {
      expect_parse_error(s, o, "resource too long");
    }
  }
  free(s);
}

/* Messages quote resources without cutting a UTF-8 sequence. */
static void test_parse_error_message_utf8(void **state) {
  (void)state;
  char in[512] = "{\"[";
  for (int i = 0; i < 40; i++) strcat(in, "\xc3\xa9"); /* 80 bytes of é */
  strcat(in, "\":[\"publish\"]}");
  sw_error_t err = {0};
  assert_null(cap_parse(in, strlen(in), &err));
  json_t *j = json_string(err.message); /* NULL if not valid UTF-8 */
  assert_non_null(j);
  json_decref(j);
  /* jansson's own error text quotes the input near the error. */
  static const char bad[] = "\"\\\xdf\x85";
  memset(&err, 0, sizeof err);
  assert_null(cap_parse(bad, sizeof bad - 1, &err));
  assert_int_equal(err.code, 40000);
  j = json_string(err.message);
  assert_non_null(j);
  json_decref(j);
}

/* ---- intersection ---- */

static void expect_intersection(const char *req, const char *key, const char *want) {
  sw_cap_t *r = parse_ok(req), *k = parse_ok(key);
  sw_error_t err = {0};
  sw_cap_t *x = cap_intersect(r, k, &err);
  if (x == NULL) fail_msg("%s ∩ %s: error %d %s", req, key, err.code, err.message);
  assert_canonical(x, want);
  cap_free(x);
  cap_free(r);
  cap_free(k);
}

static void expect_empty_intersection(const char *req, const char *key) {
  sw_cap_t *r = parse_ok(req), *k = parse_ok(key);
  sw_error_t err = {0};
  sw_cap_t *x = cap_intersect(r, k, &err);
  if (x != NULL) {
    char *s = cap_canonical(x);
    fail_msg("%s ∩ %s: expected 40160, got %s", req, key, s);
  }
  assert_int_equal(err.code, 40160);
  assert_int_equal(err.status, 401);
  assert_null(cap_intersect(r, k, NULL));
  cap_free(r);
  cap_free(k);
}

static void test_intersect_checklist(void **state) {
  (void)state;
  /* The intersection cases of Ably's auth checklist (section 5), on the fixture keys. */
  expect_intersection("{\"pub-sub\":[\"*\"]}", KEY2, "{\"pub-sub\":[\"publish\",\"subscribe\"]}");
  expect_intersection("{\"readers\":[\"subscribe\"]}", KEY3, "{\"readers\":[\"subscribe\"]}");
  expect_intersection("{\"writers:check\":[\"publish\"]}", KEY1, "{\"writers:check\":[\"publish\"]}");
  expect_intersection("{\"readers:*\":[\"subscribe\"]}", KEY3, "{\"readers:*\":[\"subscribe\"]}");
  expect_intersection("{\"pub-sub\":[\"presence\",\"subscribe\"]}", KEY2, "{\"pub-sub\":[\"subscribe\"]}");
  expect_intersection("{\"pub-sub\":[\"presence\",\"subscribe\"],\"unlisted\":[\"presence\",\"subscribe\"]}", KEY2,
                      "{\"pub-sub\":[\"subscribe\"]}");
  expect_intersection("{\"all-ops\":[\"publish\",\"subscribe\"]}", KEY2, "{\"all-ops\":[\"publish\",\"subscribe\"]}");
  expect_empty_intersection("{\"writers:test\":[\"subscribe\"]}", KEY1);
  expect_empty_intersection("{\"unlisted\":[\"publish\"]}", KEY2);
  expect_empty_intersection("{\"testchannel\":[\"subscribe\"]}", KEY1);
}

static void test_intersect_blanket_and_equal(void **state) {
  (void)state;
  const char *keys[] = {KEY1, KEY2, KEY3, KEY4, KEY5};
  for (size_t i = 0; i < 5; i++) {
    sw_cap_t *k = parse_ok(keys[i]);
    char *want = cap_canonical(k);
    /* No requested capability means {"[*]*":["*"]}: the key's own. */
    expect_intersection("{\"[*]*\":[\"*\"]}", keys[i], want);
    /* Requesting exactly the key's capability gives it back. */
    expect_intersection(keys[i], keys[i], want);
    free(want);
    cap_free(k);
  }
}

static void test_intersect_docs_examples(void **state) {
  (void)state;
  /* docs auth/capabilities "Ably Token with intersection of capabilities". */
  expect_intersection("{\"your-namespace:user-123\":[\"subscribe\"],\"notifications\":[\"*\"],"
                      "\"private\":[\"publish\",\"subscribe\"]}",
                      "{\"your-namespace:*\":[\"publish\",\"subscribe\",\"presence\"],"
                      "\"notifications\":[\"subscribe\",\"history\"],\"alerts\":[\"subscribe\"]}",
                      "{\"notifications\":[\"history\",\"subscribe\"],\"your-namespace:user-123\":[\"subscribe\"]}");
  /* "Ably Token with incompatible capabilities". */
  expect_empty_intersection("{\"other-namespace\":[\"*\"]}", "{\"your-namespace\":[\"*\"]}");
  /* token-request-spec unsigned example, against an all-powerful key. */
  expect_intersection("{\"private\":[\"subscribe\",\"publish\",\"presence\"],\"*\":[\"subscribe\"]}", KEY4,
                      "{\"*\":[\"subscribe\"],\"private\":[\"presence\",\"publish\",\"subscribe\"]}");
}

static void test_intersect_patterns(void **state) {
  (void)state;
  /* Narrower of two nested resources, either way round. */
  expect_intersection("{\"ns:a\":[\"*\"]}", "{\"ns:*\":[\"publish\"]}", "{\"ns:a\":[\"publish\"]}");
  expect_intersection("{\"ns:*\":[\"publish\"]}", "{\"ns:a\":[\"*\"]}", "{\"ns:a\":[\"publish\"]}");
  expect_intersection("{\"*\":[\"subscribe\"]}", "{\"a:b:*\":[\"*\"]}", "{\"a:b:*\":[\"subscribe\"]}");
  /* Partial overlaps give the exact common set. */
  expect_intersection("{\"a:*:c\":[\"publish\"]}", "{\"a:b:*\":[\"publish\",\"subscribe\"]}",
                      "{\"a:b:c\":[\"publish\"]}");
  expect_intersection("{\"a:*\":[\"*\"]}", "{\"*:b:*\":[\"subscribe\"]}", "{\"a:b:*\":[\"subscribe\"]}");
  expect_intersection("{\"*:x\":[\"*\"]}", "{\"y:*\":[\"history\"]}", "{\"y:x\":[\"history\"]}");
  expect_intersection("{\"a:b:c\":[\"*\"]}", "{\"a:b:*\":[\"history\"]}", "{\"a:b:c\":[\"history\"]}");
  expect_empty_intersection("{\"a:b\":[\"*\"]}", "{\"a:b:*\":[\"history\"]}");
  expect_empty_intersection("{\"ns\":[\"*\"]}", "{\"ns:*\":[\"*\"]}");
  expect_empty_intersection("{\"a:*:c\":[\"*\"]}", "{\"a:*:d\":[\"*\"]}");
  expect_empty_intersection("{\"a:*:c\":[\"*\"]}", "{\"a:*:c:d\":[\"*\"]}");
  expect_empty_intersection("{\"foo*\":[\"*\"]}", "{\"foo\":[\"*\"]}");
  expect_intersection("{\"foo*\":[\"*\"]}", "{\"*\":[\"publish\"]}", "{\"foo*\":[\"publish\"]}");
  /* Empty segments. */
  expect_intersection("{\"room:*\":[\"*\"]}", "{\"*::$chat\":[\"publish\"]}", "{\"room::$chat\":[\"publish\"]}");
  /* Qualifiers. */
  expect_empty_intersection("{\"[meta]*\":[\"subscribe\"]}", KEY4);
  expect_intersection("{\"[meta]*\":[\"subscribe\"]}", KEY5, "{\"[meta]*\":[\"subscribe\"]}");
  expect_intersection("{\"[*]*\":[\"*\"]}", "{\"[*]foo:*\":[\"publish\"]}", "{\"[*]foo:*\":[\"publish\"]}");
  expect_intersection("{\"[*]*\":[\"subscribe\"]}", "{\"*\":[\"*\"]}", "{\"*\":[\"subscribe\"]}");
  expect_intersection("{\"[*]a:*\":[\"*\"]}", "{\"[meta]*:b\":[\"publish\"]}", "{\"[meta]a:b\":[\"publish\"]}");
  expect_empty_intersection("{\"[meta]x\":[\"subscribe\"]}", "{\"[queue]x\":[\"subscribe\"]}");
  expect_empty_intersection("{\"[meta]x\":[\"subscribe\"]}", "{\"x\":[\"subscribe\"]}");
  /* Operation lists. */
  expect_intersection("{\"x\":[\"*\"]}", "{\"x\":[\"*\"]}", "{\"x\":[\"*\"]}");
  expect_intersection("{\"x\":[\"*\"]}", "{\"*\":[\"*\"],\"x\":[\"publish\"]}", "{\"x\":[\"*\"]}");
  expect_empty_intersection("{\"x\":[\"publish\"]}", "{\"x\":[\"subscribe\"]}");
  /* Several pairs producing one resource merge their operations. */
  expect_intersection("{\"a:*\":[\"publish\"],\"*:b\":[\"subscribe\"]}", "{\"a:b\":[\"*\"]}",
                      "{\"a:b\":[\"publish\",\"subscribe\"]}");
  /* NULL arguments. */
  sw_error_t err = {0};
  assert_null(cap_intersect(NULL, NULL, &err));
  assert_int_equal(err.code, 40160);
}

/* Whatever the capabilities, an intersection grants on each channel exactly
 * what both grant. */
static void test_intersect_semantics(void **state) {
  (void)state;
  static const char *const caps[] = {
      KEY1, KEY2, KEY3, KEY4, KEY5,
      "{\"a:*:c\":[\"publish\"],\"a:b:*\":[\"subscribe\",\"history\"]}",
      "{\"*:b\":[\"*\"],\"[meta]*\":[\"subscribe\"],\"foo*\":[\"presence\"]}",
      "{\"[*]a:*\":[\"publish\"],\"a\":[\"subscribe\"],\"a::b\":[\"history\"]}",
      "{\"writers:*:x\":[\"*\"],\"devices:admin\":[\"push-admin\"]}",
  };
  static const char *const channels[] = {
      "a",        "a:b",          "a:b:c",          "a:x:c",      "a:b:c:d",      "x:b",
      "a::b",     "[meta]a:b",    "[meta]x",        "[queue]a:b", "foo*",         "foo",
      "pub-sub", "all-ops",     "writers:check", "writers:lobby",   "writers:q:x",
      "readers:z", "devices:admin", "devices:admin:1", "[meta]log", "",
      "a::$chat", "a:b::$chat", "a::b::$x", "[meta]x::$y", "::$chat",
  };
  size_t nc = sizeof caps / sizeof caps[0], nch = sizeof channels / sizeof channels[0];
  for (size_t i = 0; i < nc; i++) {
    for (size_t j = 0; j < nc; j++) {
      sw_cap_t *a = parse_ok(caps[i]), *b = parse_ok(caps[j]);
      sw_cap_t *x = cap_intersect(a, b, NULL);
      for (size_t k = 0; k < nch; k++) {
        uint32_t want = cap_ops_for_channel(a, channels[k]) & cap_ops_for_channel(b, channels[k]);
        uint32_t got = cap_ops_for_channel(x, channels[k]);
        if (want != got)
          fail_msg("%s ∩ %s on \"%s\": got 0x%x want 0x%x", caps[i], caps[j], channels[k], got, want);
      }
      cap_free(x);
      cap_free(a);
      cap_free(b);
    }
  }
}

static void test_intersect_limits(void **state) {
  (void)state;
  /* 40 x 40 distinct partial overlaps give 1600 resources: refused. */
  char *r = malloc(8192), *k = malloc(8192);
  size_t o = 0, p = 0;
  r[o++] = '{';
  k[p++] = '{';
  for (int i = 0; i < 40; i++) {
    o += (size_t)sprintf(r + o, "%s\"a%d:*\":[\"publish\"]", i ? "," : "", i);
    p += (size_t)sprintf(k + p, "%s\"*:b%d\":[\"publish\"]", i ? "," : "", i);
  }
  r[o++] = '}';
  r[o] = '\0';
  k[p++] = '}';
  k[p] = '\0';
  sw_cap_t *a = parse_ok(r), *b = parse_ok(k);
  sw_error_t err = {0};
  assert_null(cap_intersect(a, b, &err));
  assert_int_equal(err.code, 40000);
  cap_free(a);
  cap_free(b);
  free(r);
  free(k);
}

/* ---- channel names ---- */

typedef struct name_case {
  const char *name;
  sw_chan_kind_t kind;
  size_t name_off;
} name_case_t;

static void test_channel_names_valid(void **state) {
  (void)state;
  static const name_case_t t[] = {
      {"a", SW_CHAN_PLAIN, 0},
      {"conversations:user-1", SW_CHAN_PLAIN, 0},
      {"foo*", SW_CHAN_PLAIN, 0},
      {"a::b", SW_CHAN_PLAIN, 0},
      {"room::$chat", SW_CHAN_PLAIN, 0},
      {"a]b", SW_CHAN_PLAIN, 0},
      {"a[b", SW_CHAN_PLAIN, 0},
      {"with space", SW_CHAN_PLAIN, 0},
      {"\xc3\xbc" "n" "\xc3\xaf" "c" "\xc3\xb6" "d" "\xc3\xa9", SW_CHAN_PLAIN, 0},
      {"emoji \xf0\x9f\x98\x80", SW_CHAN_PLAIN, 0},
      {"[meta]foo", SW_CHAN_META, 6},
      {"[meta]channel.lifecycle", SW_CHAN_META, 6},
      {"[meta]clientEvents:connections", SW_CHAN_META, 6},
      {"[?rewind=1]ch", SW_CHAN_PLAIN, 11},
      {"[?rewind=1&delta=vcdiff]ch", SW_CHAN_PLAIN, 24},
      {"[?rewind=]ch", SW_CHAN_PLAIN, 10},
      {"[meta?rewind=1]log", SW_CHAN_META, 15},
      {"[filter=bmFtZSA9PSBgImZvbyJg]ch", SW_CHAN_FILTER, 29},
      {"[filter=abc?rewind=1]ch", SW_CHAN_FILTER, 21},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    sw_channel_name_t out;
    sw_error_t err = {0};
    int rc = channel_name_validate(t[i].name, strlen(t[i].name), &out, &err);
    if (rc != 0) fail_msg("\"%s\" refused: %s", t[i].name, err.message);
    assert_int_equal(err.code, 0);
    assert_int_equal(out.kind, t[i].kind);
    assert_int_equal(out.name_off, t[i].name_off);
    assert_int_equal(channel_name_validate(t[i].name, strlen(t[i].name), NULL, NULL), 0);
  }
  sw_channel_name_t out;
  const char *n = "[filter=abc?rewind=1&x=2]ch";
  assert_int_equal(channel_name_validate(n, strlen(n), &out, NULL), 0);
  assert_int_equal(out.filter_len, 3);
  assert_memory_equal(n + out.filter_off, "abc", 3);
  assert_int_equal(out.params_len, 12);
  assert_memory_equal(n + out.params_off, "rewind=1&x=2", 12);
  n = "[meta]x";
  assert_int_equal(channel_name_validate(n, strlen(n), &out, NULL), 0);
  assert_int_equal(out.params_len, 0);
  assert_int_equal(out.filter_len, 0);

  /* Exactly the limit. */
  char *big = malloc(SW_CHANNEL_NAME_MAX);
  memset(big, 'x', SW_CHANNEL_NAME_MAX);
  assert_int_equal(channel_name_validate(big, SW_CHANNEL_NAME_MAX, NULL, NULL), 0);
  free(big);
}

typedef struct bad_name {
  const char *name;
  size_t len; /* 0: strlen */
  const char *needle;
} bad_name_t;

static void test_channel_names_invalid(void **state) {
  (void)state;
  static const bad_name_t t[] = {
      {"", 0, "empty"},
      {":foo", 0, "starts with ':'"},
      {"[foo]x", 0, "unknown"},
      {"[queue]x", 0, "unknown"},
      {"[META]x", 0, "unknown"},
      {"[meta", 0, "unterminated"},
      {"[", 0, "unterminated"},
      {"[]x", 0, "empty '[]'"},
      {"[meta]", 0, "nothing after"},
      {"[?rewind=1]", 0, "nothing after"},
      {"[meta][meta]x", 0, "more than one"},
      {"[meta]:x", 0, "starts with ':'"},
      {"[?]x", 0, "params"},
      {"[?=1]x", 0, "params"},
      {"[?a]x", 0, "params"},
      {"[?a=1&]x", 0, "params"},
      {"[?a=1&&b=2]x", 0, "params"},
      {"[?a b=1]x", 0, "params"},
      {"[meta?]x", 0, "params"},
      {"[filter=]x", 0, "unknown"},
      {"[filter=a b]x", 0, "base64"},
      {"a\nb", 0, "control"},
      {"a\rb", 0, "control"},
      {"a\tb", 0, "control"},
      {"a\x7f", 0, "control"},
      {"a\0b", 3, "control"},
      {"\xc3\x28", 0, "UTF-8"},
      {"\xc0\xaf", 0, "UTF-8"},             /* overlong '/' */
      {"\xe0\x80\xaf", 0, "UTF-8"},         /* overlong */
      {"\xed\xa0\x80", 0, "UTF-8"},         /* surrogate */
      {"\xf4\x90\x80\x80", 0, "UTF-8"},     /* above U+10FFFF */
      {"\xe2\x82", 0, "UTF-8"},             /* truncated */
      {"\x80", 0, "UTF-8"},                 /* lone continuation */
      {"\xff", 0, "UTF-8"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    size_t len = t[i].len ? t[i].len : strlen(t[i].name);
    sw_error_t err = {0};
    int rc = channel_name_validate(t[i].name, len, NULL, &err);
    if (rc == 0) fail_msg("case %zu accepted", i);
    assert_int_equal(rc, -40010);
    assert_int_equal(err.code, 40010);
    assert_int_equal(err.status, 400);
    if (strstr(err.message, t[i].needle) == NULL)
      fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err.message, t[i].needle);
    assert_int_equal(channel_name_validate(t[i].name, len, NULL, NULL), -40010);
  }
  assert_int_equal(channel_name_validate(NULL, 3, NULL, NULL), -40010);
  char *big = malloc(SW_CHANNEL_NAME_MAX + 1);
  memset(big, 'x', SW_CHANNEL_NAME_MAX + 1);
  sw_error_t err = {0};
  assert_int_equal(channel_name_validate(big, SW_CHANNEL_NAME_MAX + 1, NULL, &err), -40010);
  assert_non_null(strstr(err.message, "longer"));
  free(big);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_match_table),
      cmocka_unit_test(test_match_test_app_keys),
      cmocka_unit_test(test_app_setup_file),
      cmocka_unit_test(test_match_does_not_allocate),
      cmocka_unit_test(test_null_and_range),
      cmocka_unit_test(test_app_ops),
      cmocka_unit_test(test_op_names),
      cmocka_unit_test(test_modes),
      cmocka_unit_test(test_canonical),
      cmocka_unit_test(test_canonical_all_ops_sorted),
      cmocka_unit_test(test_parse_errors),
      cmocka_unit_test(test_parse_limits),
      cmocka_unit_test(test_parse_error_message_utf8),
      cmocka_unit_test(test_intersect_checklist),
      cmocka_unit_test(test_intersect_blanket_and_equal),
      cmocka_unit_test(test_intersect_docs_examples),
      cmocka_unit_test(test_intersect_patterns),
      cmocka_unit_test(test_intersect_semantics),
      cmocka_unit_test(test_intersect_limits),
      cmocka_unit_test(test_channel_names_valid),
      cmocka_unit_test(test_channel_names_invalid),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
