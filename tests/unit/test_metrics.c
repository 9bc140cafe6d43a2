/* test_metrics.c: the Prometheus text writer (metrics/prom.c), the latency
 * histogram (metrics/hist.c) and the counter registry (metrics/metrics.c).
 * The integration test (tests/integration/metrics.test.mjs) parses a real
 * scrape; here each piece's exact output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "metrics/hist.h"
#include "metrics/metrics.h"
#include "metrics/prom.h"

static const char *text(sw_buf_t *b) {
  buf_append_byte(b, 0);
  b->len--;
  return (const char *)b->data;
}

static void test_names(void **state) {
  assert_true(prom_valid_metric_name("switchboard_x_total"));
  assert_true(prom_valid_metric_name("a:b_c9"));
  assert_true(prom_valid_metric_name("_x"));
  assert_false(prom_valid_metric_name(""));
  assert_false(prom_valid_metric_name("9x"));
  assert_false(prom_valid_metric_name("a-b"));
  assert_false(prom_valid_metric_name("a b"));
  assert_false(prom_valid_metric_name(NULL));
  assert_true(prom_valid_label_name("code"));
  assert_true(prom_valid_label_name("_le"));
  assert_false(prom_valid_label_name("__name"));
  assert_false(prom_valid_label_name("a:b"));
  assert_false(prom_valid_label_name("1a"));
}

static void test_family_and_samples(void **state) {
  sw_buf_t b = {0};
  assert_int_equal(prom_family(&b, "x_total", "counter", "Help with \\ and\nnewline and \"quotes\"."), 0);
  assert_string_equal(text(&b), "# HELP x_total Help with \\\\ and\\nnewline and \"quotes\".\n"
                                "# TYPE x_total counter\n");
  buf_reset(&b);
  sw_prom_label_t l[2] = {{"state", "a\"b\\c\nd"}, {"code", "40101"}};
  assert_int_equal(prom_sample(&b, "x_total", l, 2, 18446744073709551615ull), 0);
  assert_string_equal(text(&b), "x_total{state=\"a\\\"b\\\\c\\nd\",code=\"40101\"} 18446744073709551615\n");
  buf_reset(&b);
  assert_int_equal(prom_sample(&b, "g", NULL, 0, 0), 0);
  assert_int_equal(prom_sample_fixed(&b, "s", NULL, 0, 1500000001, 9), 0);
  assert_int_equal(prom_sample_fixed(&b, "t", NULL, 0, 42, 3), 0);
  assert_string_equal(text(&b), "g 0\ns 1.500000001\nt 0.042\n");
  /* Refusals leave the buffer as it was. */
  size_t len = b.len;
  sw_prom_label_t bad = {"__x", "v"};
  assert_int_equal(prom_sample(&b, "ok", &bad, 1, 1), -EINVAL);
  assert_int_equal(prom_sample(&b, "not ok", NULL, 0, 1), -EINVAL);
  assert_int_equal(prom_family(&b, "x", "summary", "h"), -EINVAL);
  assert_int_equal(prom_sample_fixed(&b, "x", NULL, 0, 1, 19), -EINVAL);
  assert_int_equal(b.len, len);
  buf_free(&b);
}

static void test_scalars(void **state) {
  (void)state;
  sw_buf_t b = {0};
  const sw_prom_scalar_t m[] = {{"a_total", "counter", "A.", 7}, {"b", "gauge", "B.", 0}};
  assert_int_equal(prom_scalars(&b, m, 2), 0);
  assert_string_equal(text(&b), "# HELP a_total A.\n# TYPE a_total counter\na_total 7\n"
                                "# HELP b B.\n# TYPE b gauge\nb 0\n");
  /* A bad family stops the run: the ones before it stay whole. */
  buf_reset(&b);
  const sw_prom_scalar_t bad[] = {{"ok", "gauge", "", 1}, {"bad name", "gauge", "", 2}, {"c", "gauge", "", 3}};
  assert_int_equal(prom_scalars(&b, bad, 3), -EINVAL);
  assert_string_equal(text(&b), "# HELP ok \n# TYPE ok gauge\nok 1\n");
  buf_free(&b);
}

static void test_hist_buckets(void **state) {
  sw_hist_t h = {0};
  sw_hist_observe(&h, 0);                     /* first bucket */
  sw_hist_observe(&h, sw_hist_bound_ns[0]);   /* a bound is inclusive */
  sw_hist_observe(&h, sw_hist_bound_ns[0] + 1);
  sw_hist_observe(&h, sw_hist_bound_ns[SW_HIST_BOUNDS - 1] + 1); /* +Inf only */
  assert_int_equal(h.count, 4);
  assert_int_equal(h.bucket[0], 2);
  assert_int_equal(h.bucket[1], 1);
  assert_int_equal(h.bucket[SW_HIST_BOUNDS], 1);
  sw_hist_t m = {0};
  sw_hist_merge(&m, &h);
  sw_hist_merge(&m, &h);
  assert_int_equal(m.count, 8);
  assert_int_equal(m.sum_ns, 2 * h.sum_ns);
  assert_int_equal(m.bucket[0], 4);
  /* The label text and the nanosecond bounds agree, ascending. */
  for (unsigned i = 0; i < SW_HIST_BOUNDS; i++) {
    double le;
    assert_int_equal(sscanf(sw_hist_bound_le[i], "%lf", &le), 1);
    assert_true(le * 1e9 > (double)sw_hist_bound_ns[i] * 0.999999 && le * 1e9 < (double)sw_hist_bound_ns[i] * 1.000001);
    if (i) assert_true(sw_hist_bound_ns[i] > sw_hist_bound_ns[i - 1]);
  }
}

static void test_hist_text(void **state) {
  sw_hist_t h = {0};
  sw_hist_observe(&h, 70000);      /* 70 us: le 0.0001 */
  sw_hist_observe(&h, 3000000);    /* 3 ms: le 0.005 */
  sw_hist_observe(&h, 3000000);
  sw_hist_observe(&h, 20000000000ull); /* 20 s: +Inf */
  sw_buf_t b = {0};
  assert_int_equal(prom_histogram(&b, "c_seconds", "Commit time.", &h), 0);
  const char *t = text(&b);
  assert_non_null(strstr(t, "# HELP c_seconds Commit time.\n# TYPE c_seconds histogram\n"));
  assert_non_null(strstr(t, "c_seconds_bucket{le=\"0.00005\"} 0\n"));
  assert_non_null(strstr(t, "c_seconds_bucket{le=\"0.0001\"} 1\n"));
  assert_non_null(strstr(t, "c_seconds_bucket{le=\"0.0025\"} 1\n"));
  assert_non_null(strstr(t, "c_seconds_bucket{le=\"0.005\"} 3\n"));
  assert_non_null(strstr(t, "c_seconds_bucket{le=\"10\"} 3\n"));
  assert_non_null(strstr(t, "c_seconds_bucket{le=\"+Inf\"} 4\n"));
  assert_non_null(strstr(t, "c_seconds_sum 20.006070000\n"));
  assert_non_null(strstr(t, "c_seconds_count 4\n"));
  /* Buckets appear in ascending order, once each. */
  const char *prev = t;
  for (unsigned i = 0; i < SW_HIST_BOUNDS; i++) {
    char want[64];
    snprintf(want, sizeof want, "c_seconds_bucket{le=\"%s\"}", sw_hist_bound_le[i]);
    const char *at = strstr(t, want);
    assert_non_null(at);
    assert_true(at >= prev);
    prev = at;
  }
  buf_free(&b);
}

static void test_counters(void **state) {
  sw_metrics_t m = {0};
  m.counter[SW_M_MESSAGES_IN] = 7;
  metrics_auth_failure_in(&m, 40101);
  metrics_auth_failure_in(&m, 40101);
  metrics_auth_failure_in(&m, 40160);
  metrics_auth_failure_in(&m, 40300);
  /* Not authentication failures: ignored. */
  metrics_auth_failure_in(&m, 0);
  metrics_auth_failure_in(&m, 40000);
  metrics_auth_failure_in(&m, 40099);
  metrics_auth_failure_in(&m, 40200);
  metrics_auth_failure_in(&m, 40400);
  metrics_auth_failure_in(&m, 42916);
  metrics_auth_failure_in(&m, -40101);
  sw_buf_t b = {0};
  assert_int_equal(metrics_write_counters(&b, &m), 0);
  const char *t = text(&b);
  assert_non_null(strstr(t, "# TYPE switchboard_messages_in_total counter\nswitchboard_messages_in_total 7\n"));
  assert_non_null(strstr(t, "switchboard_messages_out_total 0\n"));
  assert_non_null(strstr(t, "# TYPE switchboard_auth_failures_total counter\n"
                            "switchboard_auth_failures_total{code=\"40101\"} 2\n"
                            "switchboard_auth_failures_total{code=\"40160\"} 1\n"
                            "switchboard_auth_failures_total{code=\"40300\"} 1\n"));
  int lines = 0;
  for (const char *p = t; (p = strstr(p, "switchboard_auth_failures_total{")); p++) lines++;
  assert_int_equal(lines, 3);
  buf_free(&b);
  /* The process registry starts at zero and the inline helpers move it. */
  uint64_t before = sw_metrics.counter[SW_M_BYTES_SENT];
  metrics_add(SW_M_BYTES_SENT, 5);
  metrics_inc(SW_M_BYTES_SENT);
  assert_int_equal(sw_metrics.counter[SW_M_BYTES_SENT], before + 6);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),        cmocka_unit_test(test_family_and_samples),
      cmocka_unit_test(test_hist_buckets), cmocka_unit_test(test_hist_text),
      cmocka_unit_test(test_counters),     cmocka_unit_test(test_scalars),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
