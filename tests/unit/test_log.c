/* Unit tests for util/log: the text and JSON line formats. Every JSON line
 * must parse (jansson) whatever bytes a message holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "util/log.h"

/* 2024-01-02T03:04:05.678Z */
#define T_MS 1704164645678LL

static json_t *json_line(const sw_log_fields_t *f, int level, const char *msg) {
  static char line[SW_LOG_LINE_MAX];
  int n = log_format_line(line, sizeof line, SW_LOG_JSON, T_MS, level, f, msg);
  assert_int_equal(n, (int)strlen(line));
  assert_null(memchr(line, '\n', (size_t)n));
  json_error_t je;
  json_t *v = json_loads(line, 0, &je);
  if (!v) fail_msg("not JSON (%s): %s", je.text, line);
  assert_true(json_is_object(v));
  return v;
}

static void test_json_fields(void **state) {
  sw_log_fields_t f = {.event = "conn.refused", .conn_id = "abc123", .app_id = "myapp", .code = 40101};
  json_t *v = json_line(&f, SW_LOG_INFO, "connection refused");
  assert_string_equal(json_string_value(json_object_get(v, "time")), "2024-01-02T03:04:05.678Z");
  assert_string_equal(json_string_value(json_object_get(v, "level")), "info");
  assert_string_equal(json_string_value(json_object_get(v, "event")), "conn.refused");
  assert_string_equal(json_string_value(json_object_get(v, "connectionId")), "abc123");
  assert_string_equal(json_string_value(json_object_get(v, "app")), "myapp");
  assert_int_equal(json_integer_value(json_object_get(v, "code")), 40101);
  assert_string_equal(json_string_value(json_object_get(v, "msg")), "connection refused");
  json_decref(v);
}

/* A plain log_warn(...) line: event "log", no absent field. */
static void test_json_without_fields(void **state) {
  json_t *v = json_line(NULL, SW_LOG_WARN, "accept: too many open files");
  assert_string_equal(json_string_value(json_object_get(v, "event")), "log");
  assert_string_equal(json_string_value(json_object_get(v, "level")), "warn");
  assert_null(json_object_get(v, "connectionId"));
  assert_null(json_object_get(v, "app"));
  assert_null(json_object_get(v, "code"));
  json_decref(v);
}

static void test_json_escapes(void **state) {
  /* quotes, backslash, newline, tab, DEL, valid UTF-8, a lone continuation
   * byte, a truncated sequence, an overlong '/', a surrogate */
  const char *msg = "a\"b\\c\nd\te\x7f \xc3\xa9\xe2\x82\xac \x80 \xe2\x82 \xc0\xaf \xed\xa0\x80 end";
  sw_log_fields_t f = {.app_id = "app\"with\nodd\x01name"};
  json_t *v = json_line(&f, SW_LOG_ERROR, msg);
  assert_string_equal(json_string_value(json_object_get(v, "msg")),
                      "a\"b\\c\nd\te\x7f \xc3\xa9\xe2\x82\xac \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd "
                      "\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end");
  assert_string_equal(json_string_value(json_object_get(v, "app")), "app\"with\nodd\x01name");
  json_decref(v);
}

/* The longest message of control bytes and the longest fields still make
 * one complete object. */
static void test_json_worst_case_fits(void **state) {
  char msg[SW_LOG_MSG_MAX + 100], id[SW_LOG_FIELD_MAX + 100];
  memset(msg, 0x01, sizeof msg - 1), msg[sizeof msg - 1] = '\0';
  memset(id, 0x02, sizeof id - 1), id[sizeof id - 1] = '\0';
  sw_log_fields_t f = {.event = id, .conn_id = id, .app_id = id, .code = -2147483647};
  json_t *v = json_line(&f, SW_LOG_DEBUG, msg);
  assert_int_equal(strlen(json_string_value(json_object_get(v, "msg"))), SW_LOG_MSG_MAX);
  assert_int_equal(strlen(json_string_value(json_object_get(v, "app"))), SW_LOG_FIELD_MAX);
  json_decref(v);
}

static void test_text(void **state) {
  char line[SW_LOG_LINE_MAX];
  log_format_line(line, sizeof line, SW_LOG_TEXT, T_MS, SW_LOG_INFO, NULL, "signal 15: shutting down");
  assert_string_equal(line, "2024-01-02T03:04:05Z info signal 15: shutting down");
  sw_log_fields_t f = {.event = "conn.failed", .conn_id = "c1", .app_id = "my app", .code = 40142};
  log_format_line(line, sizeof line, SW_LOG_TEXT, T_MS, SW_LOG_DEBUG, &f, "connection failed");
  assert_string_equal(line, "2024-01-02T03:04:05Z debug connection failed conn=c1 app=my?app code=40142");
}

static void test_format_names(void **state) {
  assert_int_equal(log_format_parse("text"), SW_LOG_TEXT);
  assert_int_equal(log_format_parse("json"), SW_LOG_JSON);
  assert_int_equal(log_format_parse("JSON"), -1);
  assert_int_equal(log_format_parse(""), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_json_fields),         cmocka_unit_test(test_json_without_fields),
      cmocka_unit_test(test_json_escapes),        cmocka_unit_test(test_json_worst_case_fits),
      cmocka_unit_test(test_text),                cmocka_unit_test(test_format_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
