/* test_redis_conn.c: the Redis connection of the cluster layer
 * (src/cluster/redis_conn.c) against a real redis-server on loopback:
 * AUTH and SELECT on connect, a Unix socket, fail-fast while down,
 * reconnection with backoff after a restart, bounded pending commands,
 * command timeouts, pub/sub. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/redis_conn.h"
#include "redis_harness.h"

typedef struct fx {
  uv_loop_t loop;
  rh_server_t srv;
  sw_redis_conn_t *c;
  bool up, down_seen;
  int ups, downs;
} fx_t;

static void on_state(void *ud, bool up, const char *why) {
  fx_t *f = ud;
  (void)why;
  f->up = up;
  if (up) f->ups++;
  else {
    f->downs++;
    f->down_seen = true;
  }
}

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  uv_loop_init(&f->loop);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  if (f->c) redis_conn_close(f->c);
  rh_loop_drain(&f->loop);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  rh_stop(&f->srv);
  free(f);
  return 0;
}

static sw_redis_conn_opts_t opts_for(fx_t *f, const char *url) {
  sw_redis_conn_opts_t o = {.name = "test", .on_state = on_state, .ud = f, .backoff_min_ms = 50,
                            .backoff_max_ms = 400, .connect_timeout_ms = 2000, .command_timeout_ms = 5000};
  const char *why = NULL;
  if (redis_url_parse(url, strlen(url), &o.url, &why)) fail_msg("bad url %s: %s", url, why);
  return o;
}

typedef struct reply {
  bool done;
  int err;
  int type;
  long long integer;
  char str[256];
} reply_t;

static void on_reply(void *ud, const redisReply *r, int err) {
  reply_t *rp = ud;
  rp->done = true;
  rp->err = err;
  if (r) {
    rp->type = r->type;
    rp->integer = r->integer;
    if (r->str) snprintf(rp->str, sizeof rp->str, "%.*s", (int)r->len, r->str);
  }
}

static int cmd(sw_redis_conn_t *c, reply_t *rp, int argc, const char **argv) {
  size_t lens[16];
  for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
  memset(rp, 0, sizeof *rp);
  return redis_conn_command(c, on_reply, rp, argc, argv, lens);
}

/* Sends argv and waits for the reply. */
static reply_t call(fx_t *f, int argc, const char **argv) {
  reply_t rp;
  assert_int_equal(cmd(f->c, &rp, argc, argv), 0);
  assert_true(rh_run_until(&f->loop, &rp.done, 10000));
  return rp;
}

static void auth_and_select_on_connect(void **state) {
  fx_t *f = *state;
  snprintf(f->srv.password, sizeof f->srv.password, "pa:ss@word");
  rh_start(&f->srv);
  char url[256];
  snprintf(url, sizeof url, "redis://:pa%%3Ass%%40word@127.0.0.1:%d/3", f->srv.port);
  sw_redis_conn_opts_t o = opts_for(f, url);
  assert_int_equal(redis_conn_open(&f->loop, &o, &f->c), 0);
  assert_true(rh_run_until(&f->loop, &f->up, 10000));
  const char *info[] = {"CLIENT", "INFO"};
  reply_t r = call(f, 2, info);
  assert_int_equal(r.err, 0);
  assert_non_null(strstr(r.str, " db=3 "));
  const char *set[] = {"SET", "k", "v"};
  r = call(f, 3, set);
  assert_string_equal(r.str, "OK");
}

static void wrong_password_never_up(void **state) {
  fx_t *f = *state;
  snprintf(f->srv.password, sizeof f->srv.password, "right");
  rh_start(&f->srv);
  char url[256];
  snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d", f->srv.port);
  sw_redis_conn_opts_t o = opts_for(f, url);
  assert_int_equal(redis_conn_open(&f->loop, &o, &f->c), 0);
  sw_redis_conn_stats_t st;
  for (int i = 0; i < 10000; i++) { /* it keeps retrying, never up */
    redis_conn_stats(f->c, &st);
    if (st.failures >= 3) break;
    rh_run_for(&f->loop, 1);
  }
  assert_true(st.failures >= 3);
  assert_false(f->up);
  assert_int_equal(f->ups, 0);
  reply_t rp;
  const char *ping[] = {"PING"};
  assert_int_equal(cmd(f->c, &rp, 1, ping), -ENOTCONN);
}

static void unix_socket(void **state) {
  fx_t *f = *state;
  rh_start(&f->srv);
  char url[256];
  snprintf(url, sizeof url, "unix://%s?db=2", f->srv.sock);
  sw_redis_conn_opts_t o = opts_for(f, url);
  assert_int_equal(redis_conn_open(&f->loop, &o, &f->c), 0);
  assert_true(rh_run_until(&f->loop, &f->up, 10000));
  const char *info[] = {"CLIENT", "INFO"};
  reply_t r = call(f, 2, info);
  assert_non_null(strstr(r.str, " db=2 "));
}

/* Redis killed: pending commands fail, new ones fail at once (no queue),
 * the state goes down; after a restart the connection comes back by
 * itself (backoff) and commands work again. */
static void down_fails_fast_and_reconnects(void **state) {
  fx_t *f = *state;
  rh_start(&f->srv);
  char url[256];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", f->srv.port);
  sw_redis_conn_opts_t o = opts_for(f, url);
  o.connect_timeout_ms = 30000; /* longer than the test waits: a refused connect must not wait for it */
  assert_int_equal(redis_conn_open(&f->loop, &o, &f->c), 0);
  assert_true(rh_run_until(&f->loop, &f->up, 10000));

  /* A command in flight when Redis dies: BLPOP holds it there. */
  reply_t held;
  const char *blpop[] = {"BLPOP", "nothing", "30"};
  assert_int_equal(cmd(f->c, &held, 3, blpop), 0);
  rh_run_for(&f->loop, 50);
  rh_kill(&f->srv, SIGKILL);
  assert_true(rh_run_until(&f->loop, &f->down_seen, 10000));
  assert_true(held.done);
  assert_int_equal(held.err, -ECONNRESET);
  assert_false(redis_conn_is_up(f->c));

  reply_t rp;
  const char *ping[] = {"PING"};
  for (int i = 0; i < 1000; i++) assert_int_equal(cmd(f->c, &rp, 1, ping), -ENOTCONN);
  rh_run_for(&f->loop, 10);
  assert_false(rp.done); /* refused at once: no callback, ever */

  /* Failed attempts while it is down (a refused connect is seen at once,
   * not at the connect deadline), with delays within the backoff's bounds. */
  sw_redis_conn_stats_t st;
  for (int i = 0; i < 10000; i++) {
    redis_conn_stats(f->c, &st);
    if (st.failures >= 4) break;
    rh_run_for(&f->loop, 1);
  }
  if (st.failures < 4) fail_msg("failures %llu delay %u", (unsigned long long)st.failures, st.next_delay_ms);
  assert_true(st.next_delay_ms >= 25 && st.next_delay_ms <= 400);

  rh_start(&f->srv); /* same port */
  assert_true(rh_run_until(&f->loop, &f->up, 10000));
  assert_int_equal(f->ups, 2);
  reply_t r = call(f, 1, ping);
  assert_int_equal(r.err, 0);
  assert_string_equal(r.str, "PONG");
}

static void pending_is_bounded(void **state) {
  fx_t *f = *state;
  rh_start(&f->srv);
  char url[256];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", f->srv.port);
  sw_redis_conn_opts_t o = opts_for(f, url);
  o.max_pending = 4;
  assert_int_equal(redis_conn_open(&f->loop, &o, &f->c), 0);
  assert_true(rh_run_until(&f->loop, &f->up, 10000));
  reply_t rp[5];
  const char *ping[] = {"PING"};
  for (int i = 0; i < 4; i++) assert_int_equal(cmd(f->c, &rp[i], 1, ping), 0);
  assert_int_equal(cmd(f->c, &rp[4], 1, ping), -ENOBUFS);
  assert_true(rh_run_until(&f->loop, &rp[3].done, 10000));
  for (int i = 0; i < 4; i++) assert_string_equal(rp[i].str, "PONG");
  assert_int_equal(cmd(f->c, &rp[4], 1, ping), 0); /* room again */
  assert_true(rh_run_until(&f->loop, &rp[4].done, 10000));
}

/* A command unanswered past command_timeout_ms fails with -ETIMEDOUT and
 * the connection is replaced. */
static void command_timeout_drops_the_connection(void **state) {
  fx_t *f = *state;
  rh_start(&f->srv);
  char url[256];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", f->srv.port);
  sw_redis_conn_opts_t o = opts_for(f, url);
  o.command_timeout_ms = 300;
  assert_int_equal(redis_conn_open(&f->loop, &o, &f->c), 0);
  assert_true(rh_run_until(&f->loop, &f->up, 10000));
  reply_t held;
  const char *blpop[] = {"BLPOP", "nothing", "30"};
  assert_int_equal(cmd(f->c, &held, 3, blpop), 0);
  assert_true(rh_run_until(&f->loop, &held.done, 10000));
  assert_int_equal(held.err, -ETIMEDOUT);
  assert_true(f->down_seen);
  f->up = false;
  assert_true(rh_run_until(&f->loop, &f->up, 10000));
  sw_redis_conn_stats_t st;
  redis_conn_stats(f->c, &st);
  assert_int_equal(st.timeouts, 1);
}

/* Pub/sub: a subscriber connection receives, in order, what a second
 * connection publishes, and subscribes again after a reconnect. */
typedef struct subfx {
  int n;
  char last[64];
  bool confirmed;
  int confirms;
  bool order_ok;
} subfx_t;

static subfx_t g_sub;

static void on_message(void *ud, const char *ch, size_t cl, const char *p, size_t n) {
  (void)ud;
  (void)ch;
  (void)cl;
  char want[32];
  snprintf(want, sizeof want, "m%d", g_sub.n);
  if (n != strlen(want) || memcmp(p, want, n) != 0) g_sub.order_ok = false;
  g_sub.n++;
}

static void on_subscribed(void *ud, const char *ch, size_t cl) {
  (void)ud;
  (void)ch;
  (void)cl;
  g_sub.confirmed = true;
  g_sub.confirms++;
}

static void pubsub_in_order_and_after_reconnect(void **state) {
  fx_t *f = *state;
  rh_start(&f->srv);
  char url[256];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", f->srv.port);
  sw_redis_conn_opts_t o = opts_for(f, url);
  assert_int_equal(redis_conn_open(&f->loop, &o, &f->c), 0);
  memset(&g_sub, 0, sizeof g_sub);
  g_sub.order_ok = true;
  sw_redis_conn_opts_t so = opts_for(f, url);
  so.on_state = NULL;
  so.on_message = on_message;
  so.on_subscribed = on_subscribed;
  sw_redis_conn_t *sub;
  assert_int_equal(redis_conn_open(&f->loop, &so, &sub), 0);
  assert_int_equal(redis_conn_subscribe(sub, "{a:b}:bus", 9), 0);
  assert_true(rh_run_until(&f->loop, &g_sub.confirmed, 10000));
  assert_true(f->up);
  assert_true(redis_conn_subscribed(sub, "{a:b}:bus", 9));
  reply_t rp[100];
  for (int i = 0; i < 100; i++) {
    char m[16];
    snprintf(m, sizeof m, "m%d", i);
    const char *pub[] = {"PUBLISH", "{a:b}:bus", m};
    assert_int_equal(cmd(f->c, &rp[i], 3, pub), 0);
  }
  bool got = false;
  for (int i = 0; i < 10000 && g_sub.n < 100; i++) rh_run_for(&f->loop, 1);
  got = g_sub.n == 100;
  assert_true(got);
  assert_true(g_sub.order_ok);
  assert_int_equal(rp[99].integer, 1); /* one subscriber */

  /* Kill the pub/sub client from Redis's side: it comes back subscribed. */
  g_sub.confirmed = false;
  const char *kill_[] = {"CLIENT", "KILL", "TYPE", "pubsub"};
  reply_t r = call(f, 4, kill_);
  assert_int_equal(r.integer, 1);
  assert_true(rh_run_until(&f->loop, &g_sub.confirmed, 10000));
  assert_int_equal(g_sub.confirms, 2);

  /* Unsubscribed: nothing more arrives, and the server counts no one. */
  assert_int_equal(redis_conn_unsubscribe(sub, "{a:b}:bus", 9), 0);
  rh_run_for(&f->loop, 100);
  const char *pub[] = {"PUBLISH", "{a:b}:bus", "late"};
  r = call(f, 3, pub);
  assert_int_equal(r.integer, 0);
  /* Subscribe, unsubscribe, subscribe again without running the loop. */
  assert_int_equal(redis_conn_subscribe(sub, "{a:b}:bus", 9), 0);
  rh_run_for(&f->loop, 100);
  assert_int_equal(redis_conn_unsubscribe(sub, "{a:b}:bus", 9), 0);
  assert_int_equal(redis_conn_subscribe(sub, "{a:b}:bus", 9), 0);
  rh_run_for(&f->loop, 200);
  assert_true(redis_conn_subscribed(sub, "{a:b}:bus", 9));
  r = call(f, 3, pub);
  assert_int_equal(r.integer, 1);
  redis_conn_close(sub);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(auth_and_select_on_connect, setup, teardown),
      cmocka_unit_test_setup_teardown(wrong_password_never_up, setup, teardown),
      cmocka_unit_test_setup_teardown(unix_socket, setup, teardown),
      cmocka_unit_test_setup_teardown(down_fails_fast_and_reconnects, setup, teardown),
      cmocka_unit_test_setup_teardown(pending_is_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(command_timeout_drops_the_connection, setup, teardown),
      cmocka_unit_test_setup_teardown(pubsub_in_order_and_after_reconnect, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
