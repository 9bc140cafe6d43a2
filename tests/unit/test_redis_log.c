/* test_redis_log.c: the channel log in Redis (src/cluster/redis_log.c)
 * against a real redis-server: serials assigned atomically under two
 * interleaving publishers, retention by count and age, range reads both
 * ways, the bus payload, the NOSCRIPT fallback, and nothing acknowledged
 * lost across a kill -9 of redis-server with appendonly + appendfsync
 * always. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/redis_conn.h"
#include "cluster/redis_log.h"
#include "redis_harness.h"
#include "util/clock.h"

typedef struct fx {
  uv_loop_t loop;
  rh_server_t srv;
  sw_redis_conn_t *a, *b;
  int ups;
} fx_t;

static void on_state(void *ud, bool up, const char *why) {
  fx_t *f = ud;
  (void)why;
  if (up) f->ups++;
}

static sw_redis_conn_t *connect_one(fx_t *f) {
  char url[128];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", f->srv.port);
  static const char *scripts[1];
  scripts[0] = redis_log_script();
  sw_redis_conn_opts_t o = {.name = "log", .on_state = on_state, .ud = f, .backoff_min_ms = 50,
                            .backoff_max_ms = 300, .scripts = scripts, .n_scripts = 1};
  assert_int_equal(redis_url_parse(url, strlen(url), &o.url, NULL), 0);
  sw_redis_conn_t *c;
  assert_int_equal(redis_conn_open(&f->loop, &o, &c), 0);
  int want = f->ups + 1;
  for (int i = 0; i < 10000 && f->ups < want; i++) rh_run_for(&f->loop, 1);
  assert_true(redis_conn_is_up(c));
  return c;
}

static int setup_with(void **state, bool aof) {
  fx_t *f = calloc(1, sizeof *f);
  uv_loop_init(&f->loop);
  f->srv.aof = aof;
  rh_start(&f->srv);
  f->a = connect_one(f);
  f->b = connect_one(f);
  *state = f;
  return 0;
}
static int setup(void **state) {
  return setup_with(state, false);
}
static int setup_aof(void **state) {
  return setup_with(state, true);
}

static int teardown(void **state) {
  fx_t *f = *state;
  redis_conn_close(f->a);
  redis_conn_close(f->b);
  rh_loop_drain(&f->loop);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  rh_stop(&f->srv);
  free(f);
  return 0;
}

/* ---- helpers: one append, one read, waiting on the loop */

typedef struct app_res {
  bool done;
  int err;
  int64_t first;
  int64_t res[16];
  size_t n; /* messages appended (res[0..n)) */
  char why[128];
} app_res_t;

static void on_append(void *ud, int err, int64_t first, const int64_t *res, const char *why) {
  app_res_t *r = ud;
  r->done = true;
  r->err = err;
  r->first = first;
  for (size_t i = 0; res && i < r->n; i++) r->res[i] = res[i];
  snprintf(r->why, sizeof r->why, "%s", why ? why : "");
}

static int append_n(sw_redis_conn_t *c, const char *channel, const char *prefix, int from, int n, int64_t ts,
                    int64_t keep, int64_t age, app_res_t *res) {
  sw_log_msg_t m[16];
  char text[16][32];
  for (int i = 0; i < n; i++) {
    snprintf(text[i], sizeof text[i], "%s%d", prefix, from + i);
    m[i] = (sw_log_msg_t){ts, (const uint8_t *)text[i], strlen(text[i]), NULL};
  }
  sw_log_append_t req = {.app_id = "app", .channel = channel, .msgs = m, .n = (size_t)n, .keep_count = keep,
                         .max_age_ms = age, .now = clock_now_ms()};
  memset(res, 0, sizeof *res);
  return redis_log_append(c, &req, on_append, res);
}

static int64_t append_wait(fx_t *f, const char *channel, const char *text, int64_t ts, int64_t keep, int64_t age) {
  app_res_t r;
  sw_log_msg_t m = {ts, (const uint8_t *)text, strlen(text), NULL};
  sw_log_append_t req = {.app_id = "app", .channel = channel, .msgs = &m, .n = 1, .keep_count = keep,
                         .max_age_ms = age, .now = clock_now_ms()};
  memset(&r, 0, sizeof r);
  assert_int_equal(redis_log_append(f->a, &req, on_append, &r), 0);
  assert_true(rh_run_until(&f->loop, &r.done, 10000));
  if (r.err) fail_msg("append failed: %d %s", r.err, r.why);
  return r.first;
}

typedef struct read_res {
  bool done;
  int err;
  sw_log_page_t page;
} read_res_t;

static void on_read(void *ud, int err, sw_log_page_t *page) {
  read_res_t *r = ud;
  r->done = true;
  r->err = err;
  if (page) r->page = *page;
}

static read_res_t read_wait(fx_t *f, const char *channel, int64_t after, int64_t before, bool fwd, size_t limit) {
  read_res_t r;
  memset(&r, 0, sizeof r);
  sw_log_range_t q = {.app_id = "app", .channel = channel, .after_seq = after, .before_seq = before,
                      .forwards = fwd, .limit = limit, .now = clock_now_ms()};
  assert_int_equal(redis_log_read(f->a, &q, on_read, &r), 0);
  assert_true(rh_run_until(&f->loop, &r.done, 10000));
  assert_int_equal(r.err, 0);
  return r;
}

static bool row_is(const sw_store_row_t *row, int64_t seq, const char *text) {
  return row->seq == seq && row->vseq == seq && row->blob_len == strlen(text) &&
         memcmp(row->blob, text, row->blob_len) == 0;
}

/* ---- tests */

static void serials_start_at_zero_and_batches_are_consecutive(void **state) {
  fx_t *f = *state;
  app_res_t r;
  assert_int_equal(append_n(f->a, "c", "m", 0, 3, 1000, 0, 0, &r), 0);
  assert_true(rh_run_until(&f->loop, &r.done, 10000));
  assert_int_equal(r.err, 0);
  assert_int_equal(r.first, 0);
  assert_int_equal(append_wait(f, "c", "m3", 1001, 0, 0), 3);
  /* Another channel has its own serial; the key layout is hash-tagged. */
  assert_int_equal(append_wait(f, "other", "x", 1002, 0, 0), 0);
  read_res_t rd = read_wait(f, "c", -1, INT64_MAX, true, 100);
  assert_int_equal(rd.page.rows.n, 4);
  assert_true(row_is(&rd.page.rows.rows[0], 0, "m0"));
  assert_true(row_is(&rd.page.rows.rows[3], 3, "m3"));
  assert_int_equal(rd.page.rows.rows[0].timestamp, 1000);
  store_rows_free(&rd.page.rows);
  sw_buf_t k = {0};
  assert_int_equal(redis_log_key(&k, "app", "ns:room", ":log"), 0);
  assert_int_equal(k.len, strlen("{app:ns:room}:log"));
  assert_memory_equal(k.data, "{app:ns:room}:log", k.len);
  buf_free(&k);
}

/* Two connections (two nodes) publishing to one channel without waiting:
 * every message gets a distinct serial, together 0..N-1, and the log
 * holds each at its serial, each node's in its own order. */
#define CONC 200
static void concurrent_publishers_get_consecutive_serials(void **state) {
  fx_t *f = *state;
  static app_res_t ra[CONC], rb[CONC];
  for (int i = 0; i < CONC; i++) {
    assert_int_equal(append_n(f->a, "race", "a", i, 1, 1, 0, 0, &ra[i]), 0);
    assert_int_equal(append_n(f->b, "race", "b", i, 1, 1, 0, 0, &rb[i]), 0);
    if (i % 16 == 0) uv_run(&f->loop, UV_RUN_NOWAIT); /* let both sockets interleave */
  }
  assert_true(rh_run_until(&f->loop, &ra[CONC - 1].done, 20000));
  assert_true(rh_run_until(&f->loop, &rb[CONC - 1].done, 20000));
  static bool seen[2 * CONC];
  memset(seen, 0, sizeof seen);
  int64_t last_a = -1, last_b = -1;
  for (int i = 0; i < CONC; i++) {
    assert_int_equal(ra[i].err, 0);
    assert_int_equal(rb[i].err, 0);
    assert_true(ra[i].first >= 0 && ra[i].first < 2 * CONC && !seen[ra[i].first]);
    seen[ra[i].first] = true;
    assert_true(rb[i].first >= 0 && rb[i].first < 2 * CONC && !seen[rb[i].first]);
    seen[rb[i].first] = true;
    assert_true(ra[i].first > last_a && rb[i].first > last_b); /* each node's order kept */
    last_a = ra[i].first;
    last_b = rb[i].first;
  }
  /* Read it all back in two pages: each row is the message of its serial. */
  read_res_t p1 = read_wait(f, "race", -1, INT64_MAX, true, 250);
  assert_int_equal(p1.page.rows.n, 250);
  assert_true(p1.page.more);
  read_res_t p2 = read_wait(f, "race", p1.page.cursor, INT64_MAX, true, 250);
  assert_int_equal(p2.page.rows.n, 2 * CONC - 250);
  assert_false(p2.page.more);
  for (int i = 0; i < CONC; i++) {
    char t[16];
    snprintf(t, sizeof t, "a%d", i);
    int64_t s = ra[i].first;
    const sw_store_row_t *row = s < 250 ? &p1.page.rows.rows[s] : &p2.page.rows.rows[s - 250];
    assert_true(row_is(row, s, t));
    snprintf(t, sizeof t, "b%d", i);
    s = rb[i].first;
    row = s < 250 ? &p1.page.rows.rows[s] : &p2.page.rows.rows[s - 250];
    assert_true(row_is(row, s, t));
  }
  store_rows_free(&p1.page.rows);
  store_rows_free(&p2.page.rows);
}

static void retention_by_count(void **state) {
  fx_t *f = *state;
  for (int i = 0; i < 25; i++) {
    char t[16];
    snprintf(t, sizeof t, "m%d", i);
    assert_int_equal(append_wait(f, "kept", t, 1, 10, 0), i);
  }
  read_res_t rd = read_wait(f, "kept", -1, INT64_MAX, true, 100);
  assert_int_equal(rd.page.rows.n, 10);
  assert_true(row_is(&rd.page.rows.rows[0], 15, "m15"));
  assert_true(row_is(&rd.page.rows.rows[9], 24, "m24"));
  store_rows_free(&rd.page.rows);
  /* The serial goes on after retention. */
  assert_int_equal(append_wait(f, "kept", "m25", 1, 10, 0), 25);
}

typedef struct seq_res {
  bool done;
  int err;
  int64_t last;
} seq_res_t;

static void on_seq(void *ud, int err, int64_t last) {
  seq_res_t *r = ud;
  r->done = true;
  r->err = err;
  r->last = last;
}

static void retention_by_age(void **state) {
  fx_t *f = *state;
  int64_t now = clock_now_ms();
  /* Messages already older than the 1 s age limit: each append trims the
   * expired head of the log, itself included. */
  for (int i = 0; i < 5; i++) append_wait(f, "aged", "old", now - 5000, 0, 1000);
  read_res_t rd = read_wait(f, "aged", -1, INT64_MAX, true, 100);
  assert_int_equal(rd.page.rows.n, 0);
  assert_int_equal(rd.page.cursor, -1);
  /* Messages that expire while in the log: invisible to reads at once,
   * trimmed by the next append. */
  append_wait(f, "aged", "soon", now - 1000 + 150, 0, 1000);
  rh_sleep_ms(300);
  rd = read_wait(f, "aged", -1, INT64_MAX, true, 100);
  assert_int_equal(rd.page.rows.n, 0);
  assert_int_equal(rd.page.cursor, 5); /* looked at, left out */
  append_wait(f, "aged", "new", now, 0, 1000);
  rd = read_wait(f, "aged", -1, INT64_MAX, true, 100);
  assert_int_equal(rd.page.rows.n, 1);
  assert_true(row_is(&rd.page.rows.rows[0], 6, "new"));
  assert_int_equal(rd.page.cursor, 6); /* the expired one is gone from the stream */
  store_rows_free(&rd.page.rows);
  seq_res_t s = {0};
  assert_int_equal(redis_log_last_seq(f->a, "app", "aged", on_seq, &s), 0);
  assert_true(rh_run_until(&f->loop, &s.done, 10000));
  assert_int_equal(s.last, 6);
  memset(&s, 0, sizeof s);
  assert_int_equal(redis_log_last_seq(f->a, "app", "never", on_seq, &s), 0);
  assert_true(rh_run_until(&f->loop, &s.done, 10000));
  assert_int_equal(s.err, 0);
  assert_int_equal(s.last, -1);
}

static void range_reads_both_ways(void **state) {
  fx_t *f = *state;
  for (int i = 0; i < 10; i++) {
    char t[16];
    snprintf(t, sizeof t, "m%d", i);
    append_wait(f, "r", t, 100 + i, 0, 0);
  }
  read_res_t rd = read_wait(f, "r", 2, 7, true, 100); /* (2, 7) */
  assert_int_equal(rd.page.rows.n, 4);
  assert_true(row_is(&rd.page.rows.rows[0], 3, "m3"));
  assert_true(row_is(&rd.page.rows.rows[3], 6, "m6"));
  assert_false(rd.page.more);
  store_rows_free(&rd.page.rows);
  rd = read_wait(f, "r", -1, INT64_MAX, false, 3); /* the newest three, newest first */
  assert_int_equal(rd.page.rows.n, 3);
  assert_true(row_is(&rd.page.rows.rows[0], 9, "m9"));
  assert_true(row_is(&rd.page.rows.rows[2], 7, "m7"));
  assert_true(rd.page.more);
  assert_int_equal(rd.page.cursor, 7);
  store_rows_free(&rd.page.rows);
  rd = read_wait(f, "r", -1, 7, false, 100); /* backwards from before 7 */
  assert_int_equal(rd.page.rows.n, 7);
  assert_true(row_is(&rd.page.rows.rows[0], 6, "m6"));
  assert_true(row_is(&rd.page.rows.rows[6], 0, "m0"));
  store_rows_free(&rd.page.rows);
  rd = read_wait(f, "r", 4, 5, true, 10); /* empty range */
  assert_int_equal(rd.page.rows.n, 0);
  rd = read_wait(f, "r", -1, 0, false, 10); /* before the first */
  assert_int_equal(rd.page.rows.n, 0);
  sw_log_range_t bad = {.app_id = "app", .channel = "r", .after_seq = -1, .before_seq = INT64_MAX, .limit = 0};
  assert_int_equal(redis_log_read(f->a, &bad, on_read, NULL), -EINVAL);
  bad.limit = SW_REDIS_LOG_MAX_PAGE + 1;
  assert_int_equal(redis_log_read(f->a, &bad, on_read, NULL), -EINVAL);
}

/* The append publishes the batch on {app:channel}:bus: a subscriber
 * connection gets every batch, in serial order, decodable. */
typedef struct bus_rx {
  int64_t next;
  int n;
  bool ok;
  bool confirmed;
} bus_rx_t;

static int each_msg(void *ud, int64_t seq, int64_t ts, const uint8_t *blob, size_t len) {
  bus_rx_t *rx = ud;
  char want[16];
  snprintf(want, sizeof want, "p%lld", (long long)seq);
  if (seq != rx->next || ts != 7 || len != strlen(want) || memcmp(blob, want, len)) rx->ok = false;
  rx->next = seq + 1;
  rx->n++;
  return 0;
}

static void on_bus(void *ud, const char *ch, size_t cl, const char *p, size_t n) {
  (void)ch;
  (void)cl;
  if (redis_log_decode_bus(p, n, each_msg, ud) != 0) ((bus_rx_t *)ud)->ok = false;
}

static void on_conf(void *ud, const char *ch, size_t cl) {
  (void)ch;
  (void)cl;
  ((bus_rx_t *)ud)->confirmed = true;
}

static void publishes_on_the_bus_in_order(void **state) {
  fx_t *f = *state;
  bus_rx_t rx = {.next = 0, .ok = true};
  char url[128];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", f->srv.port);
  sw_redis_conn_opts_t o = {.name = "sub", .on_message = on_bus, .on_subscribed = on_conf, .ud = &rx};
  assert_int_equal(redis_url_parse(url, strlen(url), &o.url, NULL), 0);
  sw_redis_conn_t *sub;
  assert_int_equal(redis_conn_open(&f->loop, &o, &sub), 0);
  assert_int_equal(redis_conn_subscribe(sub, "{app:p}:bus", 11), 0);
  assert_true(rh_run_until(&f->loop, &rx.confirmed, 10000));
  static app_res_t r[60];
  /* The payload names each message by its serial, which the sender only
   * learns from the reply: publish one at a time, each "p<seq>". */
  for (int i = 0; i < 60; i++) {
    char t[16];
    snprintf(t, sizeof t, "p%d", i);
    sw_log_msg_t m = {7, (const uint8_t *)t, strlen(t), NULL};
    sw_log_append_t req = {.app_id = "app", .channel = "p", .msgs = &m, .n = 1, .now = clock_now_ms()};
    assert_int_equal(redis_log_append(i % 2 ? f->b : f->a, &req, on_append, &r[i]), 0);
    assert_true(rh_run_until(&f->loop, &r[i].done, 10000));
    assert_int_equal(r[i].first, i);
  }
  for (int i = 0; i < 10000 && rx.n < 60; i++) rh_run_for(&f->loop, 1);
  assert_int_equal(rx.n, 60);
  assert_true(rx.ok);
  redis_conn_close(sub);
  /* Malformed payloads are refused. */
  assert_int_equal(redis_log_decode_bus("\x93\x00\x01", 3, each_msg, &rx), -EINVAL);
  assert_int_equal(redis_log_decode_bus("", 0, each_msg, &rx), -EINVAL);
  assert_int_equal(redis_log_decode_bus("\x92\x00\x01", 3, each_msg, &rx), -EINVAL);
}

/* SCRIPT FLUSH (or a Redis that lost its script cache): the append still
 * works, through EVAL. */
typedef struct plain {
  bool done;
} plain_t;
static void on_plain(void *ud, const redisReply *r, int err) {
  (void)r;
  (void)err;
  ((plain_t *)ud)->done = true;
}

static void noscript_falls_back_to_eval(void **state) {
  fx_t *f = *state;
  append_wait(f, "ns", "one", 1, 0, 0);
  plain_t p = {0};
  const char *argv[] = {"SCRIPT", "FLUSH"};
  size_t lens[] = {6, 5};
  assert_int_equal(redis_conn_command(f->a, on_plain, &p, 2, argv, lens), 0);
  assert_true(rh_run_until(&f->loop, &p.done, 10000));
  assert_int_equal(append_wait(f, "ns", "two", 1, 0, 0), 1);
  assert_int_equal(append_wait(f, "ns", "three", 1, 0, 0), 2);
}

/* The counter is read, not the log's tail, on every append; a counter that
 * is gone (deleted by hand) is raised to the tail first: serials go on. */
static void serial_goes_on_after_counter_deleted(void **state) {
  fx_t *f = *state;
  for (int i = 0; i < 3; i++) assert_int_equal(append_wait(f, "gone", "m", 1, 0, 0), i);
  plain_t p = {0};
  const char *argv[] = {"DEL", "{app:gone}:seq"};
  size_t lens[] = {3, strlen(argv[1])};
  assert_int_equal(redis_conn_command(f->a, on_plain, &p, 2, argv, lens), 0);
  assert_true(rh_run_until(&f->loop, &p.done, 10000));
  assert_int_equal(append_wait(f, "gone", "after", 1, 0, 0), 3);
  assert_int_equal(append_wait(f, "gone", "again", 1, 0, 0), 4);
}

/* Redis down: an append is refused at once (no callback); a reconnected
 * connection appends again with the serial going on. */
static void append_refused_while_down(void **state) {
  fx_t *f = *state;
  append_wait(f, "d", "one", 1, 0, 0);
  rh_kill(&f->srv, SIGKILL);
  for (int i = 0; i < 10000 && (redis_conn_is_up(f->a) || redis_conn_is_up(f->b)); i++) rh_run_for(&f->loop, 1);
  app_res_t r;
  assert_int_equal(append_n(f->a, "d", "x", 0, 1, 1, 0, 0, &r), -ENOTCONN);
  rh_run_for(&f->loop, 20);
  assert_false(r.done);
}

/* appendonly yes + appendfsync always: every acknowledged append survives
 * kill -9 of redis-server. */
#define DURABLE_N 300
static void acknowledged_appends_survive_kill9(void **state) {
  fx_t *f = *state;
  static app_res_t r[DURABLE_N];
  int acked = 0;
  for (int i = 0; i < DURABLE_N; i++) {
    assert_int_equal(append_n(f->a, "dur", "d", i, 1, 1, 0, 0, &r[i]), 0);
    if (i % 10 == 9) {
      assert_true(rh_run_until(&f->loop, &r[i].done, 10000));
    }
  }
  assert_true(rh_run_until(&f->loop, &r[DURABLE_N - 1].done, 10000));
  for (int i = 0; i < DURABLE_N; i++) {
    assert_int_equal(r[i].err, 0);
    assert_int_equal(r[i].first, i);
    acked++;
  }
  rh_kill(&f->srv, SIGKILL);
  rh_start(&f->srv); /* same directory: it loads its AOF */
  int want = f->ups + 2;
  for (int i = 0; i < 10000 && f->ups < want; i++) rh_run_for(&f->loop, 1);
  assert_true(redis_conn_is_up(f->a));
  read_res_t p = read_wait(f, "dur", -1, INT64_MAX, true, 1000);
  assert_int_equal(p.page.rows.n, acked);
  for (int i = 0; i < acked; i++) {
    char t[16];
    snprintf(t, sizeof t, "d%d", i);
    assert_true(row_is(&p.page.rows.rows[i], i, t));
  }
  store_rows_free(&p.page.rows);
  /* And the serial goes on from there. */
  assert_int_equal(append_wait(f, "dur", "after", 1, 0, 0), DURABLE_N);
}

/* RSL1k in the script: an id kept within the window is not stored again,
 * whichever connection (node) sends it; a repeat within a batch neither;
 * the result of a duplicate is -2 - the first one's seq; a batch of
 * duplicates stores nothing and publishes nothing. */
static void idempotent_ids_are_stored_once(void **state) {
  fx_t *f = *state;
  const char *ids[4] = {"id-a", "id-b", "id-a", NULL};
  const char *texts[4] = {"a", "b", "a-again", "plain"};
  sw_log_msg_t m[4];
  for (int i = 0; i < 4; i++) m[i] = (sw_log_msg_t){1000 + i, (const uint8_t *)texts[i], strlen(texts[i]), ids[i]};
  app_res_t r;
  memset(&r, 0, sizeof r);
  r.n = 4;
  sw_log_append_t req = {.app_id = "app", .channel = "idem", .msgs = m, .n = 4, .now = clock_now_ms()};
  assert_int_equal(redis_log_append(f->a, &req, on_append, &r), 0);
  assert_true(rh_run_until(&f->loop, &r.done, 10000));
  assert_int_equal(r.err, 0);
  assert_int_equal(r.first, 0);
  assert_int_equal(r.res[0], 0);
  assert_int_equal(r.res[1], 1);
  assert_int_equal(r.res[2], -2 - 0); /* the repeat of id-a in the batch */
  assert_int_equal(r.res[3], 2);
  /* The same ids again, through the other connection: nothing stored. */
  memset(&r, 0, sizeof r);
  r.n = 2;
  req.msgs = m;
  req.n = 2;
  assert_int_equal(redis_log_append(f->b, &req, on_append, &r), 0);
  assert_true(rh_run_until(&f->loop, &r.done, 10000));
  assert_int_equal(r.err, 0);
  assert_int_equal(r.first, -1);
  assert_int_equal(r.res[0], -2 - 0);
  assert_int_equal(r.res[1], -2 - 1);
  /* The log holds the three stored messages, and the next serial is 3. */
  read_res_t rd = read_wait(f, "idem", -1, INT64_MAX, true, 10);
  assert_int_equal(rd.page.rows.n, 3);
  assert_true(row_is(&rd.page.rows.rows[2], 2, "plain"));
  store_rows_free(&rd.page.rows);
  assert_int_equal(append_wait(f, "idem", "next", 1, 0, 0), 3);
}

/* A full id window refuses the append (-EDQUOT: 42913 for the client) and stores nothing. */
static void a_full_id_window_refuses(void **state) {
  fx_t *f = *state;
  sw_log_msg_t m[2] = {{1, (const uint8_t *)"x", 1, "w1"}, {1, (const uint8_t *)"y", 1, "w2"}};
  app_res_t r;
  memset(&r, 0, sizeof r);
  r.n = 2;
  sw_log_append_t req = {.app_id = "app", .channel = "full", .msgs = m, .n = 2, .now = clock_now_ms(), .max_ids = 1};
  assert_int_equal(redis_log_append(f->a, &req, on_append, &r), 0);
  assert_true(rh_run_until(&f->loop, &r.done, 10000));
  assert_int_equal(r.err, -EDQUOT);
  assert_int_equal(append_wait(f, "full", "first", 1, 0, 0), 0);
}

/* ---- message versions */

typedef struct ver_res {
  bool done;
  int err;
  int64_t vseq;
} ver_res_t;

static void on_ver(void *ud, int err, int64_t vseq, const char *why) {
  ver_res_t *r = ud;
  (void)why;
  r->done = true;
  r->err = err;
  r->vseq = vseq;
}

#define PH "PpPpPpPpPpPpPpPp"

static ver_res_t version_wait(fx_t *f, int64_t seq, int64_t expect, const char *event, const char *head) {
  ver_res_t r = {0};
  sw_log_version_t v = {.app_id = "app", .channel = "v", .seq = seq, .expect_vseq = expect, .timestamp = 5000,
                        .event = (const uint8_t *)event, .event_len = strlen(event), .head = (const uint8_t *)head,
                        .head_len = strlen(head), .placeholder = PH};
  assert_int_equal(redis_log_version(f->a, &v, on_ver, &r), 0);
  assert_true(rh_run_until(&f->loop, &r.done, 10000));
  return r;
}

static read_res_t read_q(fx_t *f, sw_log_range_t q) {
  read_res_t r;
  memset(&r, 0, sizeof r);
  q.app_id = "app";
  q.channel = "v";
  q.now = clock_now_ms();
  assert_int_equal(redis_log_read(f->a, &q, on_read, &r), 0);
  assert_true(rh_run_until(&f->loop, &r.done, 10000));
  assert_int_equal(r.err, 0);
  return r;
}

static bool row_has(const sw_store_row_t *row, int64_t seq, int64_t vseq, const char *text) {
  return row->seq == seq && row->vseq == vseq && row->blob_len == strlen(text) &&
         memcmp(row->blob, text, row->blob_len) == 0;
}

/* The version script: a compare-and-set on the head, the serial put where
 * the placeholder was, the record in the log; the heads read (by seq and
 * by latest version) and the versions read. */
static void versions_compare_and_set_and_heads_reads(void **state) {
  fx_t *f = *state;
  assert_int_equal(append_wait(f, "v", "m0", 1000, 0, 0), 0);
  assert_int_equal(append_wait(f, "v", "m1", 1001, 0, 0), 1);
  ver_res_t r = version_wait(f, 0, -1, "ev:" PH, "head:" PH);
  assert_int_equal(r.err, 0);
  assert_int_equal(r.vseq, 2);
  /* Read at "never changed" again: another version came in between. */
  assert_int_equal(version_wait(f, 0, -1, "x", "y").err, -EAGAIN);
  r = version_wait(f, 0, 2, "ev2:" PH, "head2:" PH);
  assert_int_equal(r.err, 0);
  assert_int_equal(r.vseq, 3);
  assert_int_equal(version_wait(f, 9, -1, "x", "y").err, -ENOENT);

  /* Raw (catch-up): every entry; a version is its record. */
  read_res_t raw = read_wait(f, "v", -1, INT64_MAX, true, 10);
  assert_int_equal(raw.page.rows.n, 4);
  int64_t mseq;
  const uint8_t *ev, *hd;
  size_t el, hl;
  const sw_store_row_t *rec = &raw.page.rows.rows[2];
  assert_int_equal(redis_log_parse_record(rec->blob, rec->blob_len, &mseq, &ev, &el, &hd, &hl), 0);
  assert_int_equal(mseq, 0);
  assert_int_equal(el, strlen("ev:0000000000000003"));
  assert_memory_equal(ev, "ev:0000000000000003", el); /* core/'s serial of log seq 2 */
  assert_int_equal(hl, 0);                             /* the log keeps no head */
  assert_int_not_equal(redis_log_parse_record((const uint8_t *)"m0", 2, &mseq, &ev, &el, &hd, &hl), 0);
  store_rows_free(&raw.page.rows);

  /* Heads by seq: the changed message as its head, versions left out. */
  read_res_t h = read_q(f, (sw_log_range_t){.after_seq = -1, .before_seq = INT64_MAX, .forwards = true,
                                            .limit = 10, .heads = true});
  assert_int_equal(h.page.rows.n, 2);
  assert_true(row_has(&h.page.rows.rows[0], 0, 3, "head2:0000000000000004"));
  assert_true(row_has(&h.page.rows.rows[1], 1, 1, "m1"));
  assert_false(h.page.more);
  assert_int_equal(h.page.cursor, 3);
  store_rows_free(&h.page.rows);
  /* Backwards, one row: reads on past the two versions to find it. */
  h = read_q(f, (sw_log_range_t){.after_seq = -1, .before_seq = INT64_MAX, .forwards = false, .limit = 1,
                                 .heads = true});
  assert_int_equal(h.page.rows.n, 1);
  assert_true(row_has(&h.page.rows.rows[0], 1, 1, "m1"));
  assert_true(h.page.more);
  assert_int_equal(h.page.cursor, 1);
  store_rows_free(&h.page.rows);
  /* By latest version: a head where its latest version is. */
  h = read_q(f, (sw_log_range_t){.after_seq = -1, .before_seq = INT64_MAX, .forwards = true, .limit = 10,
                                 .heads = true, .by_vseq = true});
  assert_int_equal(h.page.rows.n, 2);
  assert_true(row_has(&h.page.rows.rows[0], 1, 1, "m1"));
  assert_true(row_has(&h.page.rows.rows[1], 0, 3, "head2:0000000000000004"));
  store_rows_free(&h.page.rows);
  h = read_q(f, (sw_log_range_t){.after_seq = 1, .before_seq = INT64_MAX, .forwards = true, .limit = 10,
                                 .heads = true, .by_vseq = true});
  assert_int_equal(h.page.rows.n, 1);
  assert_true(row_has(&h.page.rows.rows[0], 0, 3, "head2:0000000000000004"));
  store_rows_free(&h.page.rows);

  /* Versions (RSL14): the create, then each event, paged. */
  h = read_q(f, (sw_log_range_t){.after_seq = -1, .before_seq = INT64_MAX, .forwards = true, .limit = 10,
                                 .versions = true, .versions_seq = 0});
  assert_int_equal(h.page.rows.n, 3);
  assert_true(row_has(&h.page.rows.rows[0], 0, 0, "m0"));
  assert_true(row_has(&h.page.rows.rows[1], 0, 2, "ev:0000000000000003"));
  assert_true(row_has(&h.page.rows.rows[2], 0, 3, "ev2:0000000000000004"));
  store_rows_free(&h.page.rows);
  h = read_q(f, (sw_log_range_t){.after_seq = -1, .before_seq = 3, .forwards = false, .limit = 1,
                                 .versions = true, .versions_seq = 0});
  assert_int_equal(h.page.rows.n, 1);
  assert_true(row_has(&h.page.rows.rows[0], 0, 2, "ev:0000000000000003"));
  assert_true(h.page.more);
  store_rows_free(&h.page.rows);

  /* An annotation without a new summary (empty head): the head stays at
   * version 3, so a change read there still applies; listed apart. */
  ver_res_t a = {0};
  sw_log_version_t av = {.app_id = "app", .channel = "v", .seq = 0, .expect_vseq = 3, .timestamp = 6000,
                         .event = (const uint8_t *)"ann:" PH, .event_len = strlen("ann:" PH),
                         .head = (const uint8_t *)"", .head_len = 0, .placeholder = PH, .annotation = true};
  assert_int_equal(redis_log_version(f->a, &av, on_ver, &a), 0);
  assert_true(rh_run_until(&f->loop, &a.done, 10000));
  assert_int_equal(a.err, 0);
  assert_int_equal(a.vseq, 4);
  assert_int_equal(version_wait(f, 0, 3, "ev3:" PH, "head3:" PH).vseq, 5);
  raw = read_wait(f, "v", 3, INT64_MAX, true, 10);
  assert_int_equal(raw.page.rows.n, 2);
  assert_true(redis_log_record_is_annotation(raw.page.rows.rows[0].blob, raw.page.rows.rows[0].blob_len));
  assert_false(redis_log_record_is_annotation(raw.page.rows.rows[1].blob, raw.page.rows.rows[1].blob_len));
  store_rows_free(&raw.page.rows);
  h = read_q(f, (sw_log_range_t){.after_seq = -1, .before_seq = INT64_MAX, .forwards = true, .limit = 10,
                                 .versions = true, .versions_seq = 0, .annotations = true});
  assert_int_equal(h.page.rows.n, 1);
  assert_true(row_has(&h.page.rows.rows[0], 0, 4, "ann:0000000000000005"));
  store_rows_free(&h.page.rows);
  h = read_q(f, (sw_log_range_t){.after_seq = -1, .before_seq = INT64_MAX, .forwards = true, .limit = 10,
                                 .versions = true, .versions_seq = 0});
  assert_int_equal(h.page.rows.n, 4); /* the create and three versions: not the annotation */
  store_rows_free(&h.page.rows);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(serials_start_at_zero_and_batches_are_consecutive, setup, teardown),
      cmocka_unit_test_setup_teardown(concurrent_publishers_get_consecutive_serials, setup, teardown),
      cmocka_unit_test_setup_teardown(idempotent_ids_are_stored_once, setup, teardown),
      cmocka_unit_test_setup_teardown(a_full_id_window_refuses, setup, teardown),
      cmocka_unit_test_setup_teardown(retention_by_count, setup, teardown),
      cmocka_unit_test_setup_teardown(retention_by_age, setup, teardown),
      cmocka_unit_test_setup_teardown(serial_goes_on_after_counter_deleted, setup, teardown),
      cmocka_unit_test_setup_teardown(range_reads_both_ways, setup, teardown),
      cmocka_unit_test_setup_teardown(publishes_on_the_bus_in_order, setup, teardown),
      cmocka_unit_test_setup_teardown(noscript_falls_back_to_eval, setup, teardown),
      cmocka_unit_test_setup_teardown(versions_compare_and_set_and_heads_reads, setup, teardown),
      cmocka_unit_test_setup_teardown(append_refused_while_down, setup, teardown),
      cmocka_unit_test_setup_teardown(acknowledged_appends_survive_kill9, setup_aof, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
