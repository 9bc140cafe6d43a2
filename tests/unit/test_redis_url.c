/* test_redis_url.c: the --redis URL parser (src/cluster/redis_url.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/redis_url.h"

static int parse(const char *s, sw_redis_url_t *u) {
  const char *why = NULL;
  int r = redis_url_parse(s, strlen(s), u, &why);
  if (r) assert_non_null(why);
  return r;
}

static void tcp_forms(void **state) {
  (void)state;
  sw_redis_url_t u;
  assert_int_equal(parse("redis://127.0.0.1", &u), 0);
  assert_false(u.unix_socket);
  assert_string_equal(u.host, "127.0.0.1");
  assert_int_equal(u.port, 6379);
  assert_int_equal(u.db, 0);
  assert_false(u.has_password);

  assert_int_equal(parse("redis://redis.internal:6380/2", &u), 0);
  assert_string_equal(u.host, "redis.internal");
  assert_int_equal(u.port, 6380);
  assert_int_equal(u.db, 2);

  assert_int_equal(parse("REDIS://:s3cr%40t@h:1/", &u), 0);
  assert_true(u.has_password);
  assert_string_equal(u.user, "");
  assert_string_equal(u.password, "s3cr@t");
  assert_int_equal(u.port, 1);
  assert_int_equal(u.db, 0);

  assert_int_equal(parse("redis://app:p:w@[::1]:7000/15", &u), 0);
  assert_string_equal(u.user, "app");
  assert_string_equal(u.password, "p:w");
  assert_string_equal(u.host, "::1");
  assert_int_equal(u.port, 7000);
  assert_int_equal(u.db, 15);

  /* A raw '@' in the password: the last '@' ends the credentials. */
  assert_int_equal(parse("redis://:a@b@h", &u), 0);
  assert_string_equal(u.password, "a@b");
  assert_string_equal(u.host, "h");
}

static void unix_forms(void **state) {
  (void)state;
  sw_redis_url_t u;
  assert_int_equal(parse("unix:///run/redis/redis-server.sock", &u), 0);
  assert_true(u.unix_socket);
  assert_string_equal(u.path, "/run/redis/redis-server.sock");
  assert_int_equal(u.port, 0);
  assert_int_equal(parse("unix://:pw@/tmp/r.sock?db=3", &u), 0);
  assert_string_equal(u.password, "pw");
  assert_string_equal(u.path, "/tmp/r.sock");
  assert_int_equal(u.db, 3);
}

static void refused(void **state) {
  (void)state;
  sw_redis_url_t u;
  const char *bad[] = {
      "",                        /* no scheme */
      "http://h",                /* another scheme */
      "redis://",                /* no host */
      "redis://h:0",             /* port 0 */
      "redis://h:65536",         /* port too large */
      "redis://h:12a",           /* port not a number */
      "redis://h/x",             /* db not a number */
      "redis://h/123456789",     /* db too large */
      "redis://pw@h",            /* credentials without ':' */
      "redis://h?db=1",          /* query on TCP */
      "redis://[::1",            /* unterminated bracket */
      "redis://[zz]:1",          /* not an IPv6 literal */
      "redis://h h",             /* space in host */
      "redis://:%4@h",           /* bad escape */
      "redis://:%00@h",          /* NUL by escape */
      "unix://relative.sock",    /* not absolute */
      "unix:///tmp/s?x=1",       /* unknown query */
      "unix:///tmp/s?db=-1",     /* bad db */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int r = parse(bad[i], &u);
    if (r != -EINVAL) fail_msg("accepted or wrong error for \"%s\": %d", bad[i], r);
    assert_int_equal(u.port, 0);
    assert_string_equal(u.host, "");
  }
  assert_int_equal(parse("rediss://h:6379", &u), -ENOTSUP);
  /* An embedded NUL, and a URL over the limit. */
  assert_int_equal(redis_url_parse("redis://h\0x", 11, &u, NULL), -EINVAL);
  static char big[SW_REDIS_URL_MAX + 2];
  memset(big, 'a', sizeof big - 1);
  memcpy(big, "redis://", 8);
  assert_int_equal(redis_url_parse(big, sizeof big - 1, &u, NULL), -EINVAL);
  /* A socket path longer than sun_path. */
  char longpath[200] = "unix:///";
  memset(longpath + 8, 'p', 150);
  assert_int_equal(parse(longpath, &u), -EINVAL);
}

static void format_round_trip_and_redaction(void **state) {
  (void)state;
  sw_redis_url_t u, back;
  char out[512];
  assert_int_equal(parse("redis://us%20er:p%2Fw@[fe80::1]:7001/4", &u), 0);
  assert_true(redis_url_format(&u, false, out, sizeof out) > 0);
  assert_int_equal(parse(out, &back), 0);
  assert_string_equal(back.user, "us er");
  assert_string_equal(back.password, "p/w");
  assert_string_equal(back.host, "fe80::1");
  assert_int_equal(back.port, 7001);
  assert_int_equal(back.db, 4);
  assert_true(redis_url_format(&u, true, out, sizeof out) > 0);
  assert_string_equal(out, "redis://us%20er:***@[fe80::1]:7001/4");
  assert_null(strstr(out, "p%2Fw"));
  char tiny[10];
  assert_int_equal(redis_url_format(&u, false, tiny, sizeof tiny), -1);
  assert_string_equal(tiny, "");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(tcp_forms),
      cmocka_unit_test(unix_forms),
      cmocka_unit_test(refused),
      cmocka_unit_test(format_round_trip_and_redaction),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
