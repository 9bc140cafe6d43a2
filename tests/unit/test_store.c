/* test_store.c: the message store against both backends (SQLite in a mkdtemp
 * directory, and memory). Every test runs once per backend; the SQLite-only
 * parts (restart, schema) are skipped for memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

#define MAXS 2048
#define WAIT_MS 20000

typedef struct tracker tracker_t;

typedef struct slot {
  tracker_t *t;
  int calls;
  int status;
  int order;
} slot_t;

struct tracker {
  int done;
  int next_order;
  slot_t slots[MAXS];
};

typedef struct fx {
  uv_loop_t loop;
  sw_store_t *s;
  bool sqlite;
  char dir[64];
  char path[128];
  sw_store_opts_t opts;
  tracker_t t;
} fx_t;

static void on_done(void *ud, int status) {
  slot_t *sl = ud;
  sl->calls++;
  sl->status = status;
  sl->order = sl->t->next_order++;
  sl->t->done++;
}

static void on_timeout(uv_timer_t *h) { *(bool *)h->data = true; }

/* Runs the loop until *counter reaches target; fails the test on timeout. */
static void wait_for(fx_t *fx, const int *counter, int target) {
  bool timed_out = false;
  uv_timer_t timer;
  uv_timer_init(&fx->loop, &timer);
  timer.data = &timed_out;
  uv_timer_start(&timer, on_timeout, WAIT_MS, 0);
  while (*counter < target && !timed_out) uv_run(&fx->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(&fx->loop, UV_RUN_NOWAIT); /* completes the close before the frame goes */
  assert_false(timed_out);
}

static void fx_open(fx_t *fx) {
  assert_int_equal(store_open(&fx->loop, &fx->opts, &fx->s), 0);
  assert_non_null(fx->s);
}

static void fx_close(fx_t *fx) {
  if (!fx->s) return;
  store_close(fx->s);
  fx->s = NULL;
  uv_run(&fx->loop, UV_RUN_DEFAULT); /* runs the close callback that frees the store */
}

static void fx_reopen(fx_t *fx) {
  fx_close(fx);
  fx_open(fx);
}

static int setup_common(void **state, bool sqlite, size_t max_batch) {
  fx_t *fx = calloc(1, sizeof *fx);
  if (!fx || uv_loop_init(&fx->loop)) return -1;
  fx->sqlite = sqlite;
  fx->opts.max_batch = max_batch;
  if (sqlite) {
    strcpy(fx->dir, "/tmp/sw_store_XXXXXX");
    if (!mkdtemp(fx->dir)) return -1;
    snprintf(fx->path, sizeof fx->path, "%s/store.db", fx->dir);
    fx->opts.path = fx->path;
  }
  if (store_open(&fx->loop, &fx->opts, &fx->s)) return -1;
  *state = fx;
  return 0;
}

static int setup_sqlite(void **state) { return setup_common(state, true, 0); }
static int setup_memory(void **state) { return setup_common(state, false, 0); }
static int setup_sqlite_b10(void **state) { return setup_common(state, true, 10); }
static int setup_memory_b10(void **state) { return setup_common(state, false, 10); }

static int teardown(void **state) {
  fx_t *fx = *state;
  fx_close(fx);
  int rc = uv_loop_close(&fx->loop);
  if (fx->sqlite) {
    char p[160];
    const char *sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
      snprintf(p, sizeof p, "%s%s", fx->path, sfx[i]);
      unlink(p);
    }
    rmdir(fx->dir);
  }
  free(fx);
  return rc == 0 ? 0 : -1; /* a leaked handle fails the test */
}

/* ------------------------------------------------------------- helpers */

typedef struct recspec {
  const char *app, *ch;
  int64_t seq, ts;
  const char *id;
  int64_t expires, keep;
} recspec_t;

/* Builds a record whose blob is "<app>/<ch>#<seq>" (in bufs[i]). */
static void mkrecs(const recspec_t *sp, size_t n, sw_store_rec_t *out, char (*bufs)[64]) {
  for (size_t i = 0; i < n; i++) {
    int l = snprintf(bufs[i], 64, "%s/%s#%lld", sp[i].app, sp[i].ch, (long long)sp[i].seq);
    out[i] = (sw_store_rec_t){.app_id = sp[i].app,
                              .channel = sp[i].ch,
                              .seq = sp[i].seq,
                              .timestamp = sp[i].ts,
                              .msg_id = sp[i].id,
                              .blob = (const uint8_t *)bufs[i],
                              .blob_len = (size_t)l,
                              .expires_at = sp[i].expires,
                              .keep_count = sp[i].keep};
  }
}

/* Submits one call of n specs and returns the callback status. */
static int submit_wait(fx_t *fx, const recspec_t *sp, size_t n) {
  sw_store_rec_t recs[64];
  char bufs[64][64];
  assert_true(n <= 64);
  mkrecs(sp, n, recs, bufs);
  slot_t sl = {.t = &fx->t};
  int before = fx->t.done;
  assert_int_equal(store_submit(fx->s, recs, n, on_done, &sl), 0);
  wait_for(fx, &fx->t.done, before + 1);
  assert_int_equal(sl.calls, 1);
  return sl.status;
}

/* Submits seqs [from, to] of one channel, one record per submission. */
static void fill(fx_t *fx, const char *app, const char *ch, int64_t from, int64_t to,
                 int64_t expires, int64_t keep) {
  for (int64_t q = from; q <= to; q++) {
    recspec_t sp = {app, ch, q, 1000 + q, NULL, expires, keep};
    assert_int_equal(submit_wait(fx, &sp, 1), 0);
  }
}

/* Waits until everything queued before (prunes included) has run. */
static void barrier(fx_t *fx) {
  slot_t sl = {.t = &fx->t};
  int before = fx->t.done;
  assert_int_equal(store_submit(fx->s, NULL, 0, on_done, &sl), 0);
  wait_for(fx, &fx->t.done, before + 1);
  assert_int_equal(sl.status, 0);
}

static sw_history_q_t q_all(const char *app, const char *ch) {
  return (sw_history_q_t){.app_id = app,
                          .channel = ch,
                          .after_seq = -1,
                          .before_seq = INT64_MAX,
                          .start = 0,
                          .end = INT64_MAX,
                          .forwards = true,
                          .limit = 1000,
                          .now = 0};
}

/* Runs q and checks the seqs (and that each blob matches its seq). */
static void expect_seqs(fx_t *fx, const sw_history_q_t *q, const int64_t *want, size_t n) {
  sw_store_rows_t rows;
  assert_int_equal(store_history(fx->s, q, &rows), 0);
  assert_int_equal(rows.n, n);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(rows.rows[i].seq, want[i]);
    assert_int_equal(rows.rows[i].timestamp, 1000 + want[i]);
    char b[64];
    int l = snprintf(b, sizeof b, "%s/%s#%lld", q->app_id, q->channel, (long long)want[i]);
    assert_int_equal(rows.rows[i].blob_len, (size_t)l);
    assert_memory_equal(rows.rows[i].blob, b, (size_t)l);
  }
  store_rows_free(&rows);
  assert_null(rows.rows);
}

#define SEQS(...) (const int64_t[]){__VA_ARGS__}, sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)

static int64_t last_seq(fx_t *fx, const char *app, const char *ch) {
  int64_t v = -2;
  assert_int_equal(store_last_seq(fx->s, app, ch, &v), 0);
  return v;
}

/* --------------------------------------------------------------- tests */

static void test_history_order_and_limit(void **state) {
  fx_t *fx = *state;
  fill(fx, "a1", "c", 1, 10, 0, 0);
  fill(fx, "a1", "other", 1, 3, 0, 0);
  fill(fx, "a2", "c", 1, 2, 0, 0);
  sw_history_q_t q = q_all("a1", "c");
  expect_seqs(fx, &q, SEQS(1, 2, 3, 4, 5, 6, 7, 8, 9, 10));
  q.forwards = false;
  expect_seqs(fx, &q, SEQS(10, 9, 8, 7, 6, 5, 4, 3, 2, 1));
  q.limit = 3;
  expect_seqs(fx, &q, SEQS(10, 9, 8));
  q.forwards = true;
  expect_seqs(fx, &q, SEQS(1, 2, 3));
  q.limit = 0;
  expect_seqs(fx, &q, NULL, 0);
  sw_history_q_t q2 = q_all("a2", "c");
  expect_seqs(fx, &q2, SEQS(1, 2));
  sw_history_q_t q3 = q_all("a3", "c");
  expect_seqs(fx, &q3, NULL, 0);
}

static void test_history_bounds(void **state) {
  fx_t *fx = *state;
  fill(fx, "a", "c", 1, 10, 0, 0); /* ts = 1000 + seq */
  sw_history_q_t q = q_all("a", "c");
  q.after_seq = 3;
  q.before_seq = 7;
  expect_seqs(fx, &q, SEQS(4, 5, 6));
  q.forwards = false;
  expect_seqs(fx, &q, SEQS(6, 5, 4));
  q = q_all("a", "c");
  q.start = 1002; /* inclusive */
  q.end = 1005;   /* inclusive */
  expect_seqs(fx, &q, SEQS(2, 3, 4, 5));
  q.forwards = false;
  q.limit = 2;
  expect_seqs(fx, &q, SEQS(5, 4));
  q = q_all("a", "c");
  q.after_seq = 8;
  q.start = 1002;
  expect_seqs(fx, &q, SEQS(9, 10));
  q.after_seq = 5;
  q.before_seq = 5;
  expect_seqs(fx, &q, NULL, 0);
}

static void test_expiry_and_prune(void **state) {
  fx_t *fx = *state;
  fill(fx, "a", "c", 1, 3, 0, 0);       /* never expire */
  fill(fx, "a", "c", 4, 6, 5000, 0);    /* expire at 5000 */
  fill(fx, "a", "c", 7, 8, 9000, 0);    /* expire at 9000 */
  fill(fx, "a", "d", 1, 2, 5000, 0);    /* a whole channel expiring */
  sw_history_q_t q = q_all("a", "c");
  q.now = 4999;
  expect_seqs(fx, &q, SEQS(1, 2, 3, 4, 5, 6, 7, 8));
  q.now = 5000; /* expires_at <= now is invisible */
  expect_seqs(fx, &q, SEQS(1, 2, 3, 7, 8));
  q.now = 9000;
  q.forwards = false;
  expect_seqs(fx, &q, SEQS(3, 2, 1));

  store_prune(fx->s, 5000);
  barrier(fx); /* jobs run in order: the prune is done */
  sw_store_stats_t st;
  store_stats(fx->s, &st);
  assert_int_equal(st.pruned, 5);
  q = q_all("a", "c"); /* now = 0: only pruning can hide rows */
  expect_seqs(fx, &q, SEQS(1, 2, 3, 7, 8));
  sw_history_q_t qd = q_all("a", "d");
  expect_seqs(fx, &qd, NULL, 0);
  /* Serials survive the deletion of the rows. */
  assert_int_equal(last_seq(fx, "a", "c"), 8);
  assert_int_equal(last_seq(fx, "a", "d"), 2);
  store_prune(fx->s, 100000);
  barrier(fx);
  expect_seqs(fx, &q, SEQS(1, 2, 3));
  assert_int_equal(last_seq(fx, "a", "c"), 8);
}

static void test_prune_many_chunks(void **state) {
  fx_t *fx = *state;
  /* More than one prune chunk (2000 rows), submitted in big calls. */
  enum { N = 4500, PER = 500 };
  sw_store_rec_t *recs = calloc(PER, sizeof *recs);
  assert_non_null(recs);
  slot_t sl[N / PER];
  for (int k = 0; k < N / PER; k++) {
    for (int i = 0; i < PER; i++)
      recs[i] = (sw_store_rec_t){.app_id = "a", .channel = "c", .seq = k * PER + i + 1,
                                 .timestamp = 1, .blob = (const uint8_t *)"x", .blob_len = 1,
                                 .expires_at = (i % 3) ? 10 : 0};
    sl[k] = (slot_t){.t = &fx->t};
    assert_int_equal(store_submit(fx->s, recs, PER, on_done, &sl[k]), 0);
  }
  free(recs);
  wait_for(fx, &fx->t.done, N / PER);
  for (int k = 0; k < N / PER; k++) assert_int_equal(sl[k].status, 0);
  const uint64_t expiring = (N / PER) * (PER - (PER + 2) / 3); /* i % 3 != 0 */
  store_prune(fx->s, 10);
  /* A chunked prune requeues itself behind later submissions, so one
   * barrier is not enough; each barrier lets at least one more chunk run. */
  sw_store_stats_t st = {0};
  for (int k = 0; k < 10 && st.pruned < expiring; k++) {
    barrier(fx);
    store_stats(fx->s, &st);
  }
  assert_int_equal(st.pruned, expiring);
  sw_history_q_t q = q_all("a", "c");
  q.limit = N;
  sw_store_rows_t rows;
  assert_int_equal(store_history(fx->s, &q, &rows), 0);
  assert_int_equal(rows.n, N - expiring);
  for (size_t i = 0; i < rows.n; i++) assert_int_equal((rows.rows[i].seq - 1) % PER % 3, 0);
  store_rows_free(&rows);
}

static void test_count_retention(void **state) {
  fx_t *fx = *state;
  fill(fx, "a", "c", 1, 12, 0, 5);
  sw_history_q_t q = q_all("a", "c");
  expect_seqs(fx, &q, SEQS(8, 9, 10, 11, 12));
  /* Within one batch, and interleaved with another channel. */
  recspec_t sp[24];
  for (int i = 0; i < 24; i++)
    sp[i] = (recspec_t){"a", (i % 2) ? "c" : "e", 13 + i, 1000 + 13 + i, NULL, 0, 3};
  assert_int_equal(submit_wait(fx, sp, 24), 0);
  expect_seqs(fx, &q, SEQS(34, 36)); /* c: 14..36 step 2, kept seq > 36 - 3 */
  sw_history_q_t qe = q_all("a", "e");
  expect_seqs(fx, &qe, SEQS(33, 35)); /* e: kept seq > 35 - 3 */
  assert_int_equal(last_seq(fx, "a", "c"), 36);
  /* keep_count 0: unlimited, nothing more deleted. */
  fill(fx, "a", "c", 37, 38, 0, 0);
  expect_seqs(fx, &q, SEQS(34, 36, 37, 38));
}

static void test_last_seq_monotonic(void **state) {
  fx_t *fx = *state;
  assert_int_equal(last_seq(fx, "a", "c"), -1);
  fill(fx, "a", "c", 0, 4, 100, 0);
  assert_int_equal(last_seq(fx, "a", "c"), 4);
  store_prune(fx->s, 1000); /* every row goes */
  barrier(fx);
  sw_history_q_t q = q_all("a", "c");
  expect_seqs(fx, &q, NULL, 0);
  assert_int_equal(last_seq(fx, "a", "c"), 4);
  fill(fx, "a", "c", 5, 6, 0, 1); /* count retention deletes too */
  assert_int_equal(last_seq(fx, "a", "c"), 6);
  expect_seqs(fx, &q, SEQS(6));
  /* A lower seq than stored ones must not pull the serial back. */
  recspec_t low = {"a", "c", 2, 1002, NULL, 0, 0};
  assert_int_equal(submit_wait(fx, &low, 1), 0);
  assert_int_equal(last_seq(fx, "a", "c"), 6);
  if (!fx->sqlite) return;
  fx_reopen(fx);
  assert_int_equal(last_seq(fx, "a", "c"), 6);
  expect_seqs(fx, &q, SEQS(2, 6));
  store_prune(fx->s, 1000);
  barrier(fx);
  fx_reopen(fx);
  assert_int_equal(last_seq(fx, "a", "c"), 6);
}

static void test_find_by_id(void **state) {
  fx_t *fx = *state;
  recspec_t sp[] = {
      {"a", "c", 1, 1001, "m1", 0, 0},
      {"a", "c", 2, 1002, NULL, 0, 0},
      {"a", "c", 3, 1003, "m3", 0, 0},
      {"a", "c", 4, 1004, "m1", 0, 0}, /* same id again: newest wins */
      {"a", "d", 1, 1001, "md", 0, 0},
  };
  assert_int_equal(submit_wait(fx, sp, 5), 0);
  sw_store_row_t row = {0};
  assert_int_equal(store_find_by_id(fx->s, "a", "c", "m3", &row), 1);
  assert_int_equal(row.seq, 3);
  assert_int_equal(row.timestamp, 1003);
  assert_int_equal(row.blob_len, strlen("a/c#3"));
  assert_memory_equal(row.blob, "a/c#3", row.blob_len);
  free(row.blob);
  assert_int_equal(store_find_by_id(fx->s, "a", "c", "m1", &row), 1);
  assert_int_equal(row.seq, 4);
  free(row.blob);
  assert_int_equal(store_find_by_id(fx->s, "a", "c", "md", &row), 0);
  assert_int_equal(store_find_by_id(fx->s, "a", "c", "nope", &row), 0);
  assert_int_equal(store_find_by_id(fx->s, "b", "c", "m3", &row), 0);
  assert_int_equal(store_find_by_id(fx->s, "a", "d", "md", &row), 1);
  free(row.blob);
  if (!fx->sqlite) return;
  fx_reopen(fx); /* idempotent publish across restarts */
  assert_int_equal(store_find_by_id(fx->s, "a", "c", "m3", &row), 1);
  assert_int_equal(row.seq, 3);
  free(row.blob);
}

static void test_delete_app(void **state) {
  fx_t *fx = *state;
  fill(fx, "a1", "c", 1, 3, 0, 0);
  fill(fx, "a1", "d", 1, 2, 0, 0);
  fill(fx, "a2", "c", 1, 2, 0, 0);
  fill(fx, "a10", "c", 1, 1, 0, 0); /* prefix of nothing, but close */
  assert_int_equal(store_delete_app(fx->s, "a1"), 0);
  sw_history_q_t q = q_all("a1", "c");
  expect_seqs(fx, &q, NULL, 0);
  q = q_all("a1", "d");
  expect_seqs(fx, &q, NULL, 0);
  assert_int_equal(last_seq(fx, "a1", "c"), -1);
  q = q_all("a2", "c");
  expect_seqs(fx, &q, SEQS(1, 2));
  q = q_all("a10", "c");
  expect_seqs(fx, &q, SEQS(1));
  assert_int_equal(store_delete_app(fx->s, "missing"), 0);
  assert_int_equal(store_delete_app(fx->s, NULL), -EINVAL);
}

typedef struct kvacc {
  char out[512];
  sw_store_t *s;
  bool delete_each;
} kvacc_t;

static void kv_each(void *ud, const char *key, const char *value) {
  kvacc_t *a = ud;
  size_t l = strlen(a->out);
  snprintf(a->out + l, sizeof a->out - l, "%s=%s;", key, value);
  /* The listing is a snapshot, so writing from inside it is allowed. */
  if (a->delete_each) assert_int_equal(store_kv_put(a->s, "ns1", key, NULL), 0);
}

static void kv_expect(fx_t *fx, const char *ns, const char *want) {
  kvacc_t a = {.s = fx->s};
  assert_int_equal(store_kv_list(fx->s, ns, kv_each, &a), 0);
  assert_string_equal(a.out, want);
}

static void test_kv(void **state) {
  fx_t *fx = *state;
  kv_expect(fx, "ns1", "");
  assert_int_equal(store_kv_put(fx->s, "ns1", "b", "2"), 0);
  assert_int_equal(store_kv_put(fx->s, "ns1", "a", "1"), 0);
  assert_int_equal(store_kv_put(fx->s, "ns1", "c", "{\"x\":3}"), 0);
  assert_int_equal(store_kv_put(fx->s, "ns2", "a", "other"), 0);
  assert_int_equal(store_kv_put(fx->s, "ns", "z", "prefix ns"), 0);
  kv_expect(fx, "ns1", "a=1;b=2;c={\"x\":3};");
  kv_expect(fx, "ns2", "a=other;");
  assert_int_equal(store_kv_put(fx->s, "ns1", "b", "two"), 0); /* update */
  assert_int_equal(store_kv_put(fx->s, "ns1", "a", NULL), 0);  /* delete */
  assert_int_equal(store_kv_put(fx->s, "ns1", "zz", NULL), 0); /* delete missing */
  assert_int_equal(store_kv_put(fx->s, "ns1", "e", ""), 0);    /* empty value */
  kv_expect(fx, "ns1", "b=two;c={\"x\":3};e=;");
  assert_int_equal(store_kv_put(fx->s, NULL, "a", "1"), -EINVAL);
  if (fx->sqlite) {
    fx_reopen(fx);
    kv_expect(fx, "ns1", "b=two;c={\"x\":3};e=;");
  }
  kvacc_t a = {.s = fx->s, .delete_each = true};
  assert_int_equal(store_kv_list(fx->s, "ns1", kv_each, &a), 0);
  assert_string_equal(a.out, "b=two;c={\"x\":3};e=;");
  kv_expect(fx, "ns1", "");
  kv_expect(fx, "ns2", "a=other;");
}

/* Held thread, many submissions, one release: they must share transactions. */
static void test_group_commit(void **state) {
  fx_t *fx = *state;
  enum { N = 300 };
  store_debug_hold(fx->s, true);
  char bufs[1][64];
  for (int i = 0; i < N; i++) {
    recspec_t sp = {"a", (i % 2) ? "odd" : "even", i, 1000 + i, NULL, 0, 0};
    sw_store_rec_t r;
    mkrecs(&sp, 1, &r, bufs);
    fx->t.slots[i].t = &fx->t;
    assert_int_equal(store_submit(fx->s, &r, 1, on_done, &fx->t.slots[i]), 0);
  }
  uv_run(&fx->loop, UV_RUN_NOWAIT);
  assert_int_equal(fx->t.done, 0); /* held: nothing committed yet */
  store_debug_hold(fx->s, false);
  wait_for(fx, &fx->t.done, N);
  for (int i = 0; i < N; i++) {
    assert_int_equal(fx->t.slots[i].calls, 1);
    assert_int_equal(fx->t.slots[i].status, 0);
    assert_int_equal(fx->t.slots[i].order, i); /* callbacks in submission order */
  }
  sw_store_stats_t st;
  store_stats(fx->s, &st);
  assert_int_equal(st.records, N);
  assert_int_equal(st.submissions, N);
  assert_int_equal(st.failures, 0);
  assert_true(st.batches < N);
  assert_int_equal(st.batches, 1); /* N <= default max_batch */
  assert_int_equal(last_seq(fx, "a", "odd"), N - 1);
  assert_int_equal(last_seq(fx, "a", "even"), N - 2);
}

/* max_batch = 10 (fixture). */
static void test_max_batch(void **state) {
  fx_t *fx = *state;
  store_debug_hold(fx->s, true);
  int nsub = 0;
  /* 100 single-record calls: exactly 10 transactions of 10. */
  for (int i = 0; i < 100; i++) {
    recspec_t sp = {"a", "c", i, 1000 + i, NULL, 0, 0};
    sw_store_rec_t r;
    char b[1][64];
    mkrecs(&sp, 1, &r, b);
    fx->t.slots[nsub].t = &fx->t;
    assert_int_equal(store_submit(fx->s, &r, 1, on_done, &fx->t.slots[nsub++]), 0);
  }
  /* Then 3, 15 (more than max: alone, not split), 3, 3 records. */
  int sizes[] = {3, 15, 3, 3};
  int64_t seq = 100;
  for (int k = 0; k < 4; k++) {
    recspec_t sp[15];
    for (int i = 0; i < sizes[k]; i++, seq++) sp[i] = (recspec_t){"a", "c", seq, 1000 + seq, NULL, 0, 0};
    sw_store_rec_t r[15];
    char b[15][64];
    mkrecs(sp, (size_t)sizes[k], r, b);
    fx->t.slots[nsub].t = &fx->t;
    assert_int_equal(store_submit(fx->s, r, (size_t)sizes[k], on_done, &fx->t.slots[nsub++]), 0);
  }
  store_debug_hold(fx->s, false);
  wait_for(fx, &fx->t.done, nsub);
  for (int i = 0; i < nsub; i++) assert_int_equal(fx->t.slots[i].status, 0);
  sw_store_stats_t st;
  store_stats(fx->s, &st);
  assert_int_equal(st.records, 124);
  assert_int_equal(st.batches, 10 + 3); /* {3} {15} {3,3} */
  assert_int_equal(last_seq(fx, "a", "c"), 123);
}

/* A bad submission fails alone; the good ones batched with it commit. */
static void test_failure_isolated(void **state) {
  fx_t *fx = *state;
  fill(fx, "a", "c", 1, 3, 0, 0);
  store_debug_hold(fx->s, true);
  const recspec_t subs[][2] = {
      {{"a", "c", 4, 1004, NULL, 0, 0}},
      {{"a", "c", 2, 1002, NULL, 0, 0}}, /* duplicate */
      {{"a", "c", 5, 1005, NULL, 0, 0}},
      {{"a", "c", 6, 1006, NULL, 0, 0}, {"a", "c", 3, 1003, NULL, 0, 0}}, /* atomic: 6 not kept */
      {{"a", "c", 7, 1007, NULL, 0, 0}, {"a", "c", 7, 1007, NULL, 0, 0}}, /* dup inside one call */
  };
  size_t lens[] = {1, 1, 1, 2, 2};
  for (int k = 0; k < 5; k++) {
    sw_store_rec_t r[2];
    char b[2][64];
    mkrecs(subs[k], lens[k], r, b);
    fx->t.slots[k].t = &fx->t;
    assert_int_equal(store_submit(fx->s, r, lens[k], on_done, &fx->t.slots[k]), 0);
  }
  store_debug_hold(fx->s, false);
  wait_for(fx, &fx->t.done, 5);
  assert_int_equal(fx->t.slots[0].status, 0);
  assert_int_equal(fx->t.slots[1].status, -EEXIST);
  assert_int_equal(fx->t.slots[2].status, 0);
  assert_int_equal(fx->t.slots[3].status, -EEXIST);
  assert_int_equal(fx->t.slots[4].status, -EEXIST);
  sw_history_q_t q = q_all("a", "c");
  expect_seqs(fx, &q, SEQS(1, 2, 3, 4, 5));
  assert_int_equal(last_seq(fx, "a", "c"), 5); /* failed rows did not raise it */
  sw_store_stats_t st;
  store_stats(fx->s, &st);
  assert_int_equal(st.failures, 3);
}

typedef struct close_ud {
  slot_t *sl;
  sw_store_t *s;
  int resubmit_rc;
} close_ud_t;

static void on_done_resubmit(void *ud, int status) {
  close_ud_t *c = ud;
  on_done(c->sl, status);
  sw_store_rec_t r = {.app_id = "a", .channel = "c", .seq = 999};
  c->resubmit_rc = store_submit(c->s, &r, 1, on_done, c->sl); /* must not be accepted */
}

static void test_close_with_pending(void **state) {
  fx_t *fx = *state;
  enum { N = 50 };
  store_debug_hold(fx->s, true);
  for (int i = 0; i < N; i++) {
    recspec_t sp = {"a", "c", i, 1000 + i, NULL, 0, 0};
    sw_store_rec_t r;
    char b[1][64];
    mkrecs(&sp, 1, &r, b);
    fx->t.slots[i].t = &fx->t;
    assert_int_equal(store_submit(fx->s, &r, 1, on_done, &fx->t.slots[i]), 0);
  }
  close_ud_t cu = {.sl = &fx->t.slots[N], .s = fx->s, .resubmit_rc = 1};
  fx->t.slots[N].t = &fx->t;
  assert_int_equal(store_submit(fx->s, NULL, 0, on_done_resubmit, &cu), 0);
  assert_int_equal(fx->t.done, 0);
  store_close(fx->s); /* flushes the held queue and calls back before returning */
  assert_int_equal(fx->t.done, N + 1);
  for (int i = 0; i <= N; i++) {
    assert_int_equal(fx->t.slots[i].calls, 1);
    assert_int_equal(fx->t.slots[i].status, 0);
  }
  assert_int_equal(cu.resubmit_rc, -ESHUTDOWN);
  fx->s = NULL;
  uv_run(&fx->loop, UV_RUN_DEFAULT);
  assert_int_equal(fx->t.done, N + 1); /* exactly once */
  fx_open(fx);
  if (fx->sqlite) { /* what was acknowledged is on disk */
    sw_history_q_t q = q_all("a", "c");
    sw_store_rows_t rows;
    assert_int_equal(store_history(fx->s, &q, &rows), 0);
    assert_int_equal(rows.n, N);
    store_rows_free(&rows);
    assert_int_equal(last_seq(fx, "a", "c"), N - 1);
  }
}

/* Read-your-acks while the commit thread is writing: every callback checks
 * that its own record is already visible. */
typedef struct ack_ud {
  fx_t *fx;
  int64_t seq;
  int *done;
  int *bad;
} ack_ud_t;

static void on_ack_check(void *ud, int status) {
  ack_ud_t *a = ud;
  int64_t last = -1;
  if (status != 0 || store_last_seq(a->fx->s, "a", "c", &last) != 0 || last < a->seq) (*a->bad)++;
  sw_history_q_t q = q_all("a", "c");
  q.forwards = false;
  q.limit = 1;
  sw_store_rows_t rows;
  if (store_history(a->fx->s, &q, &rows) != 0 || rows.n != 1 || rows.rows[0].seq < a->seq)
    (*a->bad)++;
  store_rows_free(&rows);
  (*a->done)++;
}

static void test_reads_beside_writes(void **state) {
  fx_t *fx = *state;
  enum { N = 1000 };
  ack_ud_t *acks = calloc(N, sizeof *acks);
  assert_non_null(acks);
  int done = 0, bad = 0;
  for (int i = 0; i < N; i++) {
    acks[i] = (ack_ud_t){fx, i, &done, &bad};
    char blob[32];
    int l = snprintf(blob, sizeof blob, "payload %d", i);
    sw_store_rec_t r = {.app_id = "a", .channel = "c", .seq = i, .timestamp = i,
                        .blob = (const uint8_t *)blob, .blob_len = (size_t)l};
    assert_int_equal(store_submit(fx->s, &r, 1, on_ack_check, &acks[i]), 0);
    if (i % 50 == 0) uv_run(&fx->loop, UV_RUN_NOWAIT); /* deliver acks as we go */
  }
  wait_for(fx, &done, N);
  assert_int_equal(bad, 0);
  free(acks);
}

static void test_edge_cases(void **state) {
  fx_t *fx = *state;
  sw_store_rec_t r = {.app_id = "a", .channel = "c", .seq = 1, .timestamp = 1001};
  /* Empty blob round-trips as an empty blob. */
  slot_t sl = {.t = &fx->t};
  assert_int_equal(store_submit(fx->s, &r, 1, on_done, &sl), 0);
  wait_for(fx, &fx->t.done, 1);
  assert_int_equal(sl.status, 0);
  sw_history_q_t q = q_all("a", "c");
  sw_store_rows_t rows;
  assert_int_equal(store_history(fx->s, &q, &rows), 0);
  assert_int_equal(rows.n, 1);
  assert_int_equal(rows.rows[0].blob_len, 0);
  store_rows_free(&rows);
  store_rows_free(&rows); /* idempotent */
  /* Invalid arguments are refused and never call back. */
  sw_store_rec_t bad = {.app_id = NULL, .channel = "c"};
  assert_int_equal(store_submit(fx->s, &bad, 1, on_done, &sl), -EINVAL);
  bad = (sw_store_rec_t){.app_id = "a", .channel = "c", .blob = NULL, .blob_len = 3};
  assert_int_equal(store_submit(fx->s, &bad, 1, on_done, &sl), -EINVAL);
  assert_int_equal(store_submit(fx->s, NULL, 2, on_done, &sl), -EINVAL);
  q.channel = NULL;
  assert_int_equal(store_history(fx->s, &q, &rows), -EINVAL);
  int64_t v;
  assert_int_equal(store_last_seq(fx->s, "a", NULL, &v), -EINVAL);
  /* The submitted memory is copied: overwriting it after submit is harmless. */
  char app[8] = "a", ch[8] = "c", id[8] = "id", blob[8] = "abc";
  sw_store_rec_t r2 = {.app_id = app, .channel = ch, .seq = 2, .timestamp = 1002, .msg_id = id,
                       .blob = (const uint8_t *)blob, .blob_len = 3};
  assert_int_equal(store_submit(fx->s, &r2, 1, on_done, &sl), 0);
  memset(app, 'x', 7);
  memset(ch, 'x', 7);
  memset(id, 'x', 7);
  memset(blob, 'x', 7);
  wait_for(fx, &fx->t.done, 2);
  assert_int_equal(sl.status, 0);
  sw_store_row_t row;
  assert_int_equal(store_find_by_id(fx->s, "a", "c", "id", &row), 1);
  assert_int_equal(row.blob_len, 3);
  assert_memory_equal(row.blob, "abc", 3);
  free(row.blob);
  assert_int_equal(fx->t.done, 2);
}

static void test_sqlite_schema(void **state) {
  fx_t *fx = *state;
  if (!fx->sqlite) {
    skip();
    return;
  }
  fx_close(fx);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(st, 0), 1);
  sqlite3_finalize(st);
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);
  /* History is a range scan of the primary key, not a table scan. */
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "EXPLAIN QUERY PLAN SELECT seq FROM messages WHERE app='a' "
                                      "AND channel='c' AND seq>1 AND seq<9 ORDER BY seq DESC",
                                      -1, &st, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_non_null(strstr((const char *)sqlite3_column_text(st, 3), "PRIMARY KEY"));
  sqlite3_finalize(st);
  /* A newer schema is refused rather than misread. */
  assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  sw_store_t *s = NULL;
  assert_int_equal(store_open(&fx->loop, &fx->opts, &s), -ENOTSUP);
  assert_null(s);
  /* A path in a missing directory fails cleanly. */
  sw_store_opts_t o = {.path = "/nonexistent-dir/x/store.db"};
  assert_true(store_open(&fx->loop, &o, &s) < 0);
  assert_null(s);
}

#define BOTH(t)                                                   \
  cmocka_unit_test_setup_teardown(t, setup_sqlite, teardown),     \
      cmocka_unit_test_setup_teardown(t, setup_memory, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      BOTH(test_history_order_and_limit),
      BOTH(test_history_bounds),
      BOTH(test_expiry_and_prune),
      BOTH(test_prune_many_chunks),
      BOTH(test_count_retention),
      BOTH(test_last_seq_monotonic),
      BOTH(test_find_by_id),
      BOTH(test_delete_app),
      BOTH(test_kv),
      BOTH(test_group_commit),
      cmocka_unit_test_setup_teardown(test_max_batch, setup_sqlite_b10, teardown),
      cmocka_unit_test_setup_teardown(test_max_batch, setup_memory_b10, teardown),
      BOTH(test_failure_isolated),
      BOTH(test_close_with_pending),
      BOTH(test_reads_beside_writes),
      BOTH(test_edge_cases),
      cmocka_unit_test_setup_teardown(test_sqlite_schema, setup_sqlite, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
