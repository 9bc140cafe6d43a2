/* test_redis_bus.c: bus_redis (src/cluster/bus_redis.c), two "nodes" (two
 * buses on one loop) sharing a channel through a real redis-server:
 * ordered exactly-once delivery of both nodes' publishes, the catch-up
 * after the pub/sub connection was lost, refusals while Redis is down. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/bus_redis.h"
#include "cluster/redis_conn.h"
#include "redis_harness.h"

#define MAXN 2000

typedef struct node {
  sw_bus_t *bus;
  bool up, ready;
  int64_t ready_seq;
  int64_t expect; /* next seq expected */
  int delivered;
  bool in_order;
  char last_blob[32];
  bool seen[MAXN];
  int64_t unsub_at, close_at; /* seq at which deliver() unsubscribes / closes the bus; -1 never */
} node_t;

typedef struct fx {
  uv_loop_t loop;
  rh_server_t srv;
  node_t n[2];
} fx_t;

/* The bus numbers a channel's messages from 1 (core/'s numbering; the log's
 * are from 0): these tests count from 0, so they take 1 from what the bus
 * hands out and add 1 to the bounds they give it. */
static void on_deliver(void *ud, const char *app, const char *ch, int64_t seq1, int64_t ts, const uint8_t *blob,
                       size_t len) {
  node_t *n = ud;
  int64_t seq = seq1 - 1;
  (void)ts;
  if (strcmp(app, "app") || strcmp(ch, "room")) n->in_order = false;
  if (seq != n->expect) n->in_order = false;
  if (seq >= 0 && seq < MAXN) {
    if (n->seen[seq]) n->in_order = false; /* a duplicate */
    n->seen[seq] = true;
  }
  n->expect = seq + 1;
  n->delivered++;
  snprintf(n->last_blob, sizeof n->last_blob, "%.*s", (int)len, (const char *)blob);
  if (seq == n->unsub_at) bus_unsubscribe(n->bus, app, ch);
  if (seq == n->close_at) {
    bus_close(n->bus);
    n->bus = NULL;
  }
}

static void on_ready(void *ud, const char *app, const char *ch, int64_t last) {
  node_t *n = ud;
  (void)app;
  (void)ch;
  n->ready = true;
  n->ready_seq = last - 1;
  n->expect = last;
}

static void on_state(void *ud, bool up) {
  ((node_t *)ud)->up = up;
}

static void open_node(fx_t *f, node_t *n) {
  memset(n, 0, sizeof *n);
  n->in_order = true;
  n->unsub_at = n->close_at = -1;
  sw_bus_redis_opts_t o = {.backoff_min_ms = 50, .backoff_max_ms = 300};
  char url[128];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", f->srv.port);
  assert_int_equal(redis_url_parse(url, strlen(url), &o.url, NULL), 0);
  sw_bus_handlers_t h = {.deliver = on_deliver, .ready = on_ready, .state = on_state, .ud = n};
  assert_int_equal(bus_redis_open(&f->loop, &o, &h, &n->bus), 0);
  assert_true(rh_run_until(&f->loop, &n->up, 10000));
  assert_true(bus_is_up(n->bus));
}

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  uv_loop_init(&f->loop);
  rh_start(&f->srv);
  open_node(f, &f->n[0]);
  open_node(f, &f->n[1]);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  for (int i = 0; i < 2; i++)
    if (f->n[i].bus) bus_close(f->n[i].bus);
  rh_loop_drain(&f->loop);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  rh_stop(&f->srv);
  free(f);
  return 0;
}

typedef struct pub {
  bool done;
  sw_error_t err;
  int64_t first;
} pub_t;

static void on_done(void *ud, const sw_error_t *err, const sw_bus_seq_t *seqs, size_t n) {
  int64_t first = seqs ? seqs[0].seq - 1 : -1;
  pub_t *p = ud;
  (void)n;
  p->done = true;
  if (err) p->err = *err;
  p->first = first;
}

static int publish(node_t *n, int i, pub_t *p, sw_error_t *err) {
  static char text[MAXN][16];
  snprintf(text[i % MAXN], sizeof text[0], "m%d", i);
  sw_bus_msg_t m = {.timestamp = 1000 + i, .blob = (const uint8_t *)text[i % MAXN], .len = strlen(text[i % MAXN])};
  memset(p, 0, sizeof *p);
  return bus_publish(n->bus, "app", "room", &m, 1, NULL, on_done, p, err);
}

static void wait_delivered(fx_t *f, node_t *n, int count) {
  for (int i = 0; i < 20000 && n->delivered < count; i++) rh_run_for(&f->loop, 1);
  (void)f;
  assert_int_equal(n->delivered, count);
}

/* Both nodes subscribe and both publish, interleaved: each node gets all
 * of them, in seq order, once, its own included; acks carry the serials. */
static void two_nodes_deliver_everything_in_order_once(void **state) {
  fx_t *f = *state;
  assert_int_equal(bus_subscribe(f->n[0].bus, "app", "room"), 0);
  assert_int_equal(bus_subscribe(f->n[1].bus, "app", "room"), 0);
  assert_int_equal(bus_subscribe(f->n[1].bus, "app", "room"), 0); /* a second attachment: one subscription */
  assert_true(rh_run_until(&f->loop, &f->n[0].ready, 10000));
  assert_true(rh_run_until(&f->loop, &f->n[1].ready, 10000));
  assert_int_equal(f->n[0].ready_seq, -1);
  static pub_t p[400];
  sw_error_t err;
  for (int i = 0; i < 400; i++) {
    assert_int_equal(publish(&f->n[i % 2], i, &p[i], &err), 0);
    if (i % 20 == 0) uv_run(&f->loop, UV_RUN_NOWAIT);
  }
  assert_true(rh_run_until(&f->loop, &p[399].done, 20000));
  static bool firsts[400];
  for (int i = 0; i < 400; i++) {
    assert_true(p[i].done);
    assert_int_equal(p[i].err.code, 0);
    assert_true(p[i].first >= 0 && p[i].first < 400 && !firsts[p[i].first]);
    firsts[p[i].first] = true;
  }
  wait_delivered(f, &f->n[0], 400);
  wait_delivered(f, &f->n[1], 400);
  assert_true(f->n[0].in_order);
  assert_true(f->n[1].in_order);
  sw_bus_redis_stats_t st;
  bus_redis_stats(f->n[1].bus, &st);
  assert_int_equal(st.channels, 1);
  assert_int_equal(st.catchup_reads, 0); /* nothing was missed */

  /* The last reference goes: nothing more is delivered to that node. */
  bus_unsubscribe(f->n[1].bus, "app", "room");
  bus_unsubscribe(f->n[1].bus, "app", "room");
  rh_run_for(&f->loop, 100);
  pub_t q;
  assert_int_equal(publish(&f->n[0], 400, &q, &err), 0);
  assert_true(rh_run_until(&f->loop, &q.done, 10000));
  wait_delivered(f, &f->n[0], 401);
  rh_run_for(&f->loop, 100);
  assert_int_equal(f->n[1].delivered, 400);
}

/* A node that subscribes late starts after the channel's serial (ready),
 * and reads what came before through bus_read. */
typedef struct rd {
  bool done;
  sw_error_t err;
  size_t n;
  int64_t first_seq;
} rd_t;

static void on_read(void *ud, const sw_error_t *err, sw_store_rows_t *rows, int64_t cursor, bool more) {
  rd_t *r = ud;
  (void)cursor;
  (void)more;
  r->done = true;
  if (err) r->err = *err;
  r->n = rows->n;
  r->first_seq = rows->n ? rows->rows[0].seq - 1 : -1;
  store_rows_free(rows);
}

static void late_subscriber_starts_after_ready(void **state) {
  fx_t *f = *state;
  pub_t p;
  sw_error_t err;
  for (int i = 0; i < 5; i++) {
    assert_int_equal(publish(&f->n[0], i, &p, &err), 0);
    assert_true(rh_run_until(&f->loop, &p.done, 10000));
  }
  assert_int_equal(bus_subscribe(f->n[1].bus, "app", "room"), 0);
  assert_true(rh_run_until(&f->loop, &f->n[1].ready, 10000));
  assert_int_equal(f->n[1].ready_seq, 4);
  assert_int_equal(publish(&f->n[0], 5, &p, &err), 0);
  wait_delivered(f, &f->n[1], 1);
  assert_string_equal(f->n[1].last_blob, "m5");
  rd_t r = {0};
  sw_bus_range_t q = {.app_id = "app", .channel = "room", .after_seq = -1, .before_seq = 5 + 1, .forwards = true,
                      .limit = 100, .now = 0};
  assert_int_equal(bus_read(f->n[1].bus, &q, on_read, &r, &err), 0);
  assert_true(rh_run_until(&f->loop, &r.done, 10000));
  assert_int_equal(r.err.code, 0);
  assert_int_equal(r.n, 5);
  assert_int_equal(r.first_seq, 0);
}

/* The pub/sub connection of node 1 is killed by Redis while node 0 keeps
 * publishing: node 1 resubscribes, reads the gap from the log and goes on,
 * with every message once and in order. */
typedef struct plain {
  bool done;
  long long n;
} plain_t;

static void killer_reply(void *ud, const redisReply *r, int err) {
  plain_t *p = ud;
  p->done = true;
  p->n = (!err && r && r->type == REDIS_REPLY_INTEGER) ? r->integer : -1;
}

static void catch_up_after_pubsub_connection_lost(void **state) {
  fx_t *f = *state;
  assert_int_equal(bus_subscribe(f->n[1].bus, "app", "room"), 0);
  assert_true(rh_run_until(&f->loop, &f->n[1].ready, 10000));
  char url[128];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", f->srv.port);
  sw_redis_conn_opts_t o = {.name = "killer"};
  assert_int_equal(redis_url_parse(url, strlen(url), &o.url, NULL), 0);
  sw_redis_conn_t *killer;
  assert_int_equal(redis_conn_open(&f->loop, &o, &killer), 0);
  for (int i = 0; i < 10000 && !redis_conn_is_up(killer); i++) rh_run_for(&f->loop, 1);
  static pub_t p[300];
  sw_error_t err;
  for (int i = 0; i < 300; i++) {
    assert_int_equal(publish(&f->n[0], i, &p[i], &err), 0);
    if (i == 100) {
      plain_t k = {0};
      const char *argv[] = {"CLIENT", "KILL", "TYPE", "pubsub"};
      size_t lens[] = {6, 4, 4, 6};
      assert_int_equal(redis_conn_command(killer, killer_reply, &k, 4, argv, lens), 0);
      assert_true(rh_run_until(&f->loop, &k.done, 10000));
      assert_true(k.n >= 1);
    }
    if (i % 10 == 0) uv_run(&f->loop, UV_RUN_NOWAIT);
  }
  assert_true(rh_run_until(&f->loop, &p[299].done, 20000));
  wait_delivered(f, &f->n[1], 300);
  assert_true(f->n[1].in_order);
  sw_bus_redis_stats_t st;
  bus_redis_stats(f->n[1].bus, &st);
  assert_true(st.catchup_reads >= 1);
  redis_conn_close(killer);
}

/* Redis down: publishes refused at once with 50004 (no callback), the
 * node reports down; after a restart it comes back up and publishes. */
static void refused_while_down_then_back(void **state) {
  fx_t *f = *state;
  rh_kill(&f->srv, SIGKILL);
  for (int i = 0; i < 10000 && f->n[0].up; i++) rh_run_for(&f->loop, 1);
  assert_false(f->n[0].up);
  assert_false(bus_is_up(f->n[0].bus));
  pub_t p;
  sw_error_t err = {0};
  assert_int_equal(publish(&f->n[0], 0, &p, &err), -1);
  assert_int_equal(err.code, SW_BUS_E_UNAVAILABLE);
  assert_int_equal(err.status, 500);
  rh_run_for(&f->loop, 20);
  assert_false(p.done);
  rh_start(&f->srv);
  assert_true(rh_run_until(&f->loop, &f->n[0].up, 15000));
  assert_int_equal(publish(&f->n[0], 0, &p, &err), 0);
  assert_true(rh_run_until(&f->loop, &p.done, 10000));
  assert_int_equal(p.err.code, 0);
  assert_int_equal(p.first, 0);
}

/* deliver() may unsubscribe, or close the whole bus, in the middle of a
 * batch: the rest of the batch is not delivered and nothing is used after
 * it is freed (run under ASan). */
static void unsubscribe_or_close_inside_deliver(void **state) {
  fx_t *f = *state;
  assert_int_equal(bus_subscribe(f->n[0].bus, "app", "room"), 0);
  assert_int_equal(bus_subscribe(f->n[1].bus, "app", "room"), 0);
  assert_true(rh_run_until(&f->loop, &f->n[0].ready, 10000));
  assert_true(rh_run_until(&f->loop, &f->n[1].ready, 10000));
  f->n[0].unsub_at = 1;
  f->n[1].close_at = 2;
  sw_bus_msg_t m[5];
  for (int i = 0; i < 5; i++) m[i] = (sw_bus_msg_t){.timestamp = 1, .blob = (const uint8_t *)"x", .len = 1};
  pub_t p;
  sw_error_t err;
  memset(&p, 0, sizeof p);
  assert_int_equal(bus_publish(f->n[0].bus, "app", "room", m, 5, NULL, on_done, &p, &err), 0);
  assert_true(rh_run_until(&f->loop, &p.done, 10000));
  assert_int_equal(p.first, 0);
  for (int i = 0; i < 2000 && (f->n[0].delivered < 2 || f->n[1].bus); i++) rh_run_for(&f->loop, 1);
  rh_run_for(&f->loop, 100);
  assert_int_equal(f->n[0].delivered, 2); /* 0 and 1, then unsubscribed */
  assert_int_equal(f->n[1].delivered, 3); /* 0, 1 and 2, then closed */
  assert_null(f->n[1].bus);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(two_nodes_deliver_everything_in_order_once, setup, teardown),
      cmocka_unit_test_setup_teardown(late_subscriber_starts_after_ready, setup, teardown),
      cmocka_unit_test_setup_teardown(catch_up_after_pubsub_connection_lost, setup, teardown),
      cmocka_unit_test_setup_teardown(refused_while_down_then_back, setup, teardown),
      cmocka_unit_test_setup_teardown(unsubscribe_or_close_inside_deliver, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
