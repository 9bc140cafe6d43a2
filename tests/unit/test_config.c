/* test_config.c: the socket deadlines and budgets under "limits" (issue 11):
 * their defaults and their config-file names; "tls" and "trustedProxies"
 * (issue 14). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"

static int load(sw_config_t *c, const char *json) {
  char path[] = "/tmp/sw-test-config-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
  close(fd);
  char err[256];
  int rc = config_load_file(c, path, err, sizeof err);
  unlink(path);
  return rc;
}

static void test_defaults(void **state) {
  (void)state;
  sw_config_t c;
  config_defaults(&c);
  const sw_limits_t *l = &c.limits;
  assert_int_equal(l->http_head_timeout, 10000);
  assert_int_equal(l->http_body_timeout, 30000);
  assert_int_equal(l->http_idle_timeout, 30000);
  assert_int_equal(l->close_timeout, 30000);
  assert_int_equal(l->linger_timeout, 2000);
  assert_int_equal(l->linger_bytes, 4u << 20);
  assert_int_equal(l->max_pending_sockets, 10000);
  assert_int_equal(l->max_pending_per_ip, 1024);
  assert_int_equal(l->tls_handshake_timeout, 10000);
  assert_null(c.tls_cert);
  assert_int_equal(c.n_trusted_proxies, 0);
  config_free(&c);
}

static void test_tls_and_proxies(void **state) {
  (void)state;
  sw_config_t c;
  char err[256];
  config_defaults(&c);
  assert_int_equal(load(&c, "{\"tls\":{\"cert\":\"/c.pem\",\"key\":\"/k.pem\"},\"limits\":{\"tlsHandshakeTimeout\":5},"
                            "\"trustedProxies\":[\"10.0.0.0/8\",\"::1\"]}"),
                   0);
  assert_string_equal(c.tls_cert, "/c.pem");
  assert_string_equal(c.tls_key, "/k.pem");
  assert_int_equal(c.limits.tls_handshake_timeout, 5);
  assert_int_equal(c.n_trusted_proxies, 2);
  assert_int_equal(c.trusted_proxies[0].bits, 96 + 8);
  assert_int_equal(c.trusted_proxies[1].bits, 128);
  assert_int_equal(config_check(&c, err, sizeof err), 0);
  /* Flags override the file, one at a time. */
  config_set_tls(&c, "/flag.pem", NULL);
  assert_string_equal(c.tls_cert, "/flag.pem");
  assert_string_equal(c.tls_key, "/k.pem");
  config_free(&c);

  config_defaults(&c);
  config_set_tls(&c, "/c.pem", NULL); /* a certificate without a key */
  assert_int_equal(config_check(&c, err, sizeof err), -1);
  assert_non_null(strstr(err, "both"));
  config_free(&c);

  config_defaults(&c);
  assert_int_equal(load(&c, "{\"tls\":{\"cert\":\"/c.pem\"}}"), -1);
  assert_int_equal(load(&c, "{\"trustedProxies\":\"10.0.0.1\"}"), -1);
  assert_int_equal(load(&c, "{\"trustedProxies\":[\"10.0.0.1/33\"]}"), -1);
  assert_int_equal(load(&c, "{\"trustedProxies\":[\"proxy.example\"]}"), -1);
  assert_int_equal(load(&c, "{\"trustedProxies\":[7]}"), -1);
  assert_int_equal(c.n_trusted_proxies, 0);
  config_free(&c);
}

static void test_names(void **state) {
  (void)state;
  sw_config_t c;
  config_defaults(&c);
  assert_int_equal(load(&c, "{\"limits\":{\"httpHeadTimeout\":1,\"httpBodyTimeout\":2,\"httpIdleTimeout\":3,"
                            "\"closeTimeout\":4,\"lingerTimeout\":5,\"lingerBytes\":6,"
                            "\"maxPendingSockets\":7,\"maxPendingPerIp\":0}}"),
                   0);
  const sw_limits_t *l = &c.limits;
  assert_int_equal(l->http_head_timeout, 1);
  assert_int_equal(l->http_body_timeout, 2);
  assert_int_equal(l->http_idle_timeout, 3);
  assert_int_equal(l->close_timeout, 4);
  assert_int_equal(l->linger_timeout, 5);
  assert_int_equal(l->linger_bytes, 6);
  assert_int_equal(l->max_pending_sockets, 7);
  assert_int_equal(l->max_pending_per_ip, 0); /* 0 turns the per-address cap off */
  /* Zero or negative deadlines and budgets are ignored: defaults stay. */
  assert_int_equal(load(&c, "{\"limits\":{\"httpHeadTimeout\":0,\"maxPendingSockets\":0,\"maxPendingPerIp\":-1}}"),
                   0);
  assert_int_equal(l->http_head_timeout, 1);
  assert_int_equal(l->max_pending_sockets, 7);
  assert_int_equal(l->max_pending_per_ip, 0);
  config_free(&c);
}

/* "redis": the URL of the cluster's Redis (issue 12); anything but a
 * string is refused rather than ignored (a node must not run alone when
 * its file asked for a cluster). */
static void test_redis(void **state) {
  (void)state;
  sw_config_t c;
  config_defaults(&c);
  assert_null(c.redis_url);
  assert_int_equal(load(&c, "{\"redis\":\"redis://10.0.0.5:6380/2\"}"), 0);
  assert_string_equal(c.redis_url, "redis://10.0.0.5:6380/2");
  /* The object form (docs/cluster.md); never a silent single node on a bad shape. */
  assert_int_equal(load(&c, "{\"redis\":{\"url\":\"redis://h\"}}"), 0);
  assert_string_equal(c.redis_url, "redis://h");
  assert_int_equal(load(&c, "{\"redis\":{\"url\":\"redis://h\",\"tls\":true}}"), -1);
  assert_int_equal(load(&c, "{\"redis\":{\"host\":\"h\",\"socket\":\"/s\"}}"), -1);
  assert_int_equal(load(&c, "{\"redis\":6379}"), -1);
  config_free(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_tls_and_proxies),
      cmocka_unit_test(test_redis),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
