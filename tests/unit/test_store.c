/* test_store.c: the message store against both backends (SQLite in a mkdtemp
 * directory, and memory). Every test runs once per backend; the SQLite-only
 * parts (restart, schema) are skipped for memory. */
#include <setjmp.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/cloud_sqlite.h"
#include "store/store.h"
#include "util/buf.h"

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

/* The fold of SW_STORE_APPEND for these tests: the head's bytes followed
 * by each event's ("a/c#1" + "|2" + "|3" = "a/c#1|2|3"); an event starting
 * with '!' cannot be folded. The hints it was given are kept in
 * fold_hints_seen (the last 8, in order). */
static uint64_t fold_hints_seen[8];
static size_t n_fold_hints_seen;

static int test_fold(const uint8_t *head, size_t head_len, const sw_store_event_t *events, size_t n,
                     sw_buf_t *out) {
  if (buf_append(out, head, head_len)) return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (events[i].len && events[i].blob[0] == '!') return -EINVAL;
    if (buf_append(out, events[i].blob, events[i].len)) return -ENOMEM;
    fold_hints_seen[n_fold_hints_seen++ % 8] = events[i].hint;
  }
  return 0;
}

static int setup_common(void **state, bool sqlite, size_t max_batch) {
  fx_t *fx = calloc(1, sizeof *fx);
  if (!fx || uv_loop_init(&fx->loop)) return -1;
  fx->sqlite = sqlite;
  fx->opts.max_batch = max_batch;
  fx->opts.fold = test_fold;
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
    const char *sfx[] = {"", "-wal", "-shm", "-journal", ".lock"};
    for (size_t i = 0; i < 5; i++) {
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

/* ---------------------------------------------------- versions helpers */

/* A version of message `seq` with serial vseq: its head blob is
 * "<app>/<ch>#<seq>@<vseq>", the event blob "ev <app>/<ch>#<seq>@<vseq>",
 * the event timestamp 5000 + vseq. A head never updated keeps its INSERT
 * blob "<app>/<ch>#<seq>" (see mkrecs), and every head the INSERT timestamp
 * 1000 + seq. */
typedef struct vbufs {
  char head[64], ev[64];
} vbufs_t;

static sw_store_rec_t ver_rec(const char *app, const char *ch, int64_t seq, int64_t vseq,
                              int64_t keep, vbufs_t *vb) {
  int hl = snprintf(vb->head, sizeof vb->head, "%s/%s#%lld@%lld", app, ch, (long long)seq,
                    (long long)vseq);
  int el = snprintf(vb->ev, sizeof vb->ev, "ev %s/%s#%lld@%lld", app, ch, (long long)seq,
                    (long long)vseq);
  return (sw_store_rec_t){.app_id = app,
                          .channel = ch,
                          .op = SW_STORE_VERSION,
                          .seq = seq,
                          .vseq = vseq,
                          .timestamp = 5000 + vseq,
                          .blob = (const uint8_t *)vb->head,
                          .blob_len = (size_t)hl,
                          .version_blob = (const uint8_t *)vb->ev,
                          .version_blob_len = (size_t)el,
                          .keep_count = keep};
}

static int submit_recs_wait(fx_t *fx, const sw_store_rec_t *recs, size_t n) {
  slot_t sl = {.t = &fx->t};
  int before = fx->t.done;
  assert_int_equal(store_submit(fx->s, recs, n, on_done, &sl), 0);
  wait_for(fx, &fx->t.done, before + 1);
  assert_int_equal(sl.calls, 1);
  return sl.status;
}

/* Submits one VERSION and returns its callback status. */
static int version_wait(fx_t *fx, const char *app, const char *ch, int64_t seq, int64_t vseq,
                        int64_t keep) {
  vbufs_t vb;
  sw_store_rec_t r = ver_rec(app, ch, seq, vseq, keep, &vb);
  return submit_recs_wait(fx, &r, 1);
}

/* Checks one head: seq, vseq, the INSERT's timestamp and the head blob. */
static void check_head(const sw_store_row_t *r, const char *app, const char *ch, int64_t seq,
                       int64_t vseq) {
  char b[64];
  int l = vseq == seq ? snprintf(b, sizeof b, "%s/%s#%lld", app, ch, (long long)seq)
                      : snprintf(b, sizeof b, "%s/%s#%lld@%lld", app, ch, (long long)seq,
                                 (long long)vseq);
  assert_int_equal(r->seq, seq);
  assert_int_equal(r->vseq, vseq);
  assert_int_equal(r->timestamp, 1000 + seq);
  assert_int_equal(r->blob_len, (size_t)l);
  assert_memory_equal(r->blob, b, (size_t)l);
}

/* Runs q and checks the heads, given as (seq, vseq) pairs. */
static void expect_heads(fx_t *fx, const sw_history_q_t *q, const int64_t *sv, size_t n) {
  assert_int_equal(n % 2, 0);
  sw_store_rows_t rows;
  assert_int_equal(store_history(fx->s, q, &rows), 0);
  assert_int_equal(rows.n, n / 2);
  for (size_t i = 0; i < n / 2; i++)
    check_head(&rows.rows[i], q->app_id, q->channel, sv[2 * i], sv[2 * i + 1]);
  store_rows_free(&rows);
}

#define HEADS(...) SEQS(__VA_ARGS__)

/* Runs store_versions and checks the event vseqs (and each row's seq, event
 * timestamp and event blob). */
static void expect_versions(fx_t *fx, const char *app, const char *ch, int64_t seq, bool fwd,
                            size_t limit, int64_t after, const int64_t *want, size_t n) {
  sw_store_rows_t rows;
  assert_int_equal(store_versions(fx->s, app, ch, seq, fwd, limit, after, &rows), 0);
  assert_int_equal(rows.n, n);
  for (size_t i = 0; i < n; i++) {
    char b[64];
    int l = snprintf(b, sizeof b, "ev %s/%s#%lld@%lld", app, ch, (long long)seq,
                     (long long)want[i]);
    assert_int_equal(rows.rows[i].seq, seq);
    assert_int_equal(rows.rows[i].vseq, want[i]);
    assert_int_equal(rows.rows[i].timestamp, 5000 + want[i]);
    assert_int_equal(rows.rows[i].blob_len, (size_t)l);
    assert_memory_equal(rows.rows[i].blob, b, (size_t)l);
  }
  store_rows_free(&rows);
}

#define NOVERS NULL, 0

/* store_get: 1 and the head, or 0 (then vseq < 0 is passed). */
static void expect_get(fx_t *fx, const char *app, const char *ch, int64_t seq, int64_t vseq) {
  sw_store_row_t row = {0};
  int rc = store_get(fx->s, app, ch, seq, &row);
  if (vseq < 0) {
    assert_int_equal(rc, 0);
    return;
  }
  assert_int_equal(rc, 1);
  check_head(&row, app, ch, seq, vseq);
  free(row.blob);
}

/* A single count from the SQLite file, read on a connection of its own;
 * ?1 in sql is bound to arg when it is not NULL. */
static int64_t sqlite_count(const char *path, const char *sql, const char *arg) {
  sqlite3 *db;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  if (arg) sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

/* Rows of the SQLite versions table for app (orphans would show here). */
static int64_t sqlite_versions_count(fx_t *fx, const char *app) {
  return sqlite_count(fx->path, "SELECT count(*) FROM versions WHERE app = ?1", app);
}

/* --------------------------------------------------------------- tests */

/* store_submit_ud: the caller's state lives in the submission's own
 * allocation, filled after the call, handed to the callback intact, and
 * freed by the store after it (ASan checks the lifetime). */
typedef struct ud_state {
  slot_t *sl;
  unsigned char pattern[100];
} ud_state_t;

static void on_done_ud(void *ud, int status) {
  ud_state_t *u = ud;
  assert_int_equal((uintptr_t)u % alignof(max_align_t), 0);
  for (size_t i = 0; i < sizeof u->pattern; i++) assert_int_equal(u->pattern[i], (unsigned char)i);
  on_done(u->sl, status);
}

static void test_submit_ud(void **state) {
  fx_t *fx = *state;
  recspec_t sp[3] = {{"a1", "c", 1, 1001, "id-1", 0, 0}, {"a1", "c", 2, 1002, NULL, 0, 0},
                     {"a1", "c", 3, 1003, NULL, 0, 0}};
  sw_store_rec_t recs[3];
  char bufs[3][64];
  mkrecs(sp, 3, recs, bufs);
  slot_t sl[2] = {{.t = &fx->t}, {.t = &fx->t}};
  void *mem = NULL;
  assert_int_equal(store_submit_ud(fx->s, recs, 3, on_done_ud, sizeof(ud_state_t), &mem), 0);
  assert_non_null(mem);
  ud_state_t *u = mem;
  u->sl = &sl[0];
  for (size_t i = 0; i < sizeof u->pattern; i++) u->pattern[i] = (unsigned char)i;
  /* A barrier of no records, with the state only. */
  assert_int_equal(store_submit_ud(fx->s, NULL, 0, on_done_ud, sizeof(ud_state_t), &mem), 0);
  u = mem;
  u->sl = &sl[1];
  for (size_t i = 0; i < sizeof u->pattern; i++) u->pattern[i] = (unsigned char)i;
  wait_for(fx, &fx->t.done, 2);
  assert_int_equal(sl[0].calls, 1);
  assert_int_equal(sl[0].status, 0);
  assert_int_equal(sl[1].calls, 1);
  assert_true(sl[0].order < sl[1].order);
  sw_history_q_t q = q_all("a1", "c");
  expect_seqs(fx, &q, SEQS(1, 2, 3));
  assert_int_equal(store_submit_ud(fx->s, recs, 3, on_done_ud, 16, NULL), -EINVAL);
}

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
  wait_for(fx, &fx->t.done, N / PER);
  for (int k = 0; k < N / PER; k++) assert_int_equal(sl[k].status, 0);
  /* Versions of every 9th message, expiring or not: the chunks take the
   * versions of exactly the messages they delete. */
  int nv = 0, kept_v = 0;
  for (int q = 1; q <= N; q += 9, nv++) {
    assert_true(nv < PER);
    recs[nv] = (sw_store_rec_t){.app_id = "a", .channel = "c", .op = SW_STORE_VERSION, .seq = q,
                                .vseq = N + q, .timestamp = 2, .blob = (const uint8_t *)"y",
                                .blob_len = 1, .version_blob = (const uint8_t *)"v",
                                .version_blob_len = 1};
    if ((q - 1) % PER % 3 == 0) kept_v++;
  }
  assert_int_equal(submit_recs_wait(fx, recs, (size_t)nv), 0);
  free(recs);
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
  /* The updated survivors, replayed by vseq, are exactly the kept versions. */
  q.by_vseq = true;
  q.after_seq = N;
  assert_int_equal(store_history(fx->s, &q, &rows), 0);
  assert_int_equal(rows.n, kept_v);
  for (size_t i = 0; i < rows.n; i++) {
    assert_int_equal(rows.rows[i].vseq, N + rows.rows[i].seq);
    assert_int_equal(rows.rows[i].blob_len, 1);
    assert_memory_equal(rows.rows[i].blob, "y", 1);
  }
  store_rows_free(&rows);
  if (fx->sqlite) assert_int_equal(sqlite_versions_count(fx, "a"), kept_v);
  /* 505 = 1 + 9 * 56 had a version and expired: (505 - 1) % 500 % 3 != 0. */
  expect_get(fx, "a", "c", 505, -1);
  expect_versions(fx, "a", "c", 505, true, 10, -1, NOVERS);
}

/* Pruning is exact whatever order expiries come in: the SQLite backend
 * finds expired messages per channel from marks (v7: a sorted channel is
 * swept from its oldest expiring message up to the first not expired), so
 * a channel whose retention went down (a later message expiring first), a
 * message inserted below stored ones, decreasing expiries within one
 * batch, never-expiring messages in between and marks left stale by count
 * retention must all still prune exactly the expired messages. */
static uint64_t pruned_after(fx_t *fx, int64_t now) {
  store_prune(fx->s, now);
  barrier(fx);
  sw_store_stats_t st;
  store_stats(fx->s, &st);
  return st.pruned;
}

/* SQLite writes a channel's channel_seq row only when more than its serial
 * and exp_max change (store_sqlite.c, CHANNEL_SEQ_LAG): a batch of INSERTs
 * in order leaves the row behind, and the serial comes from the messages.
 * Once every message expired and was pruned, the serial must still be the
 * last one, after a reopen too (else the next publish reuses a serial). */
static void test_serial_after_all_pruned(void **state) {
  fx_t *fx = *state;
  fill(fx, "a", "e", 1, 5, 5000, 0); /* the row is written by the first only */
  assert_int_equal(last_seq(fx, "a", "e"), 5);
  if (fx->sqlite) fx_reopen(fx); /* the serial from the messages */
  assert_int_equal(last_seq(fx, "a", "e"), 5);
  fill(fx, "a", "e", 6, 8, 5000, 0);
  fill(fx, "a", "p", 1, 4, 5000, 0);
  if (fx->sqlite) fx_reopen(fx); /* "a/p" is next touched by the prune */
  assert_int_equal(pruned_after(fx, 5000), 12);
  assert_int_equal(last_seq(fx, "a", "p"), 4);
  sw_history_q_t q = q_all("a", "e");
  expect_seqs(fx, &q, NULL, 0);
  assert_int_equal(last_seq(fx, "a", "e"), 8);
  if (fx->sqlite) fx_reopen(fx);
  assert_int_equal(last_seq(fx, "a", "e"), 8);
  fill(fx, "a", "e", 9, 9, 0, 0);
  assert_int_equal(last_seq(fx, "a", "e"), 9);
  /* Count retention deletes below the newest message: the serial stays. */
  fill(fx, "a", "k", 1, 6, 0, 2);
  if (fx->sqlite) fx_reopen(fx);
  assert_int_equal(last_seq(fx, "a", "k"), 6);
  sw_history_q_t qk = q_all("a", "k");
  expect_seqs(fx, &qk, SEQS(5, 6));
}

/* The exp_max a batch raised without writing the row (CHANNEL_SEQ_LAG) is
 * derived again after a reopen: a later message expiring before it makes
 * the channel unsorted, and a prune then deletes every expired message,
 * not only those before the first one kept. */
static void test_expiry_order_after_reopen(void **state) {
  fx_t *fx = *state;
  fill(fx, "a", "s", 1, 1, 1000, 0);
  fill(fx, "a", "s", 2, 2, 5000, 0); /* sorted: exp_max 5000 */
  if (fx->sqlite) fx_reopen(fx);
  fill(fx, "a", "s", 3, 3, 2000, 0); /* before 5000: no longer sorted */
  assert_int_equal(pruned_after(fx, 3000), 2);
  sw_history_q_t q = q_all("a", "s");
  expect_seqs(fx, &q, SEQS(2));
  sw_store_row_t row;
  assert_int_equal(store_get(fx->s, "a", "s", 3, &row), 0); /* pruned, not just hidden */
  assert_int_equal(last_seq(fx, "a", "s"), 3);
  /* A message below the channel's serial (a caller may insert there)
   * makes it unsorted even when its expiry is the latest: the serial
   * it is compared with is the messages' after a reopen too. */
  fill(fx, "a", "b", 1, 1, 1000, 0);
  fill(fx, "a", "b", 5, 5, 3000, 0);
  if (fx->sqlite) fx_reopen(fx);
  fill(fx, "a", "b", 3, 3, 4000, 0);
  uint64_t before = pruned_after(fx, 0);
  assert_int_equal(pruned_after(fx, 3500) - before, 2);
  sw_history_q_t qb = q_all("a", "b");
  expect_seqs(fx, &qb, SEQS(3));
}

/* A process killed after batches that left channel_seq behind: the
 * reopened store has every serial (from the messages) and the expiry
 * marks still prune exactly the expired messages. */
static void test_sqlite_serial_after_crash(void **state) {
  fx_t *fx = *state;
  fx_close(fx);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    fx_t c = {.opts = fx->opts};
    if (uv_loop_init(&c.loop) || store_open(&c.loop, &c.opts, &c.s)) _exit(2);
    fill(&c, "a", "x", 1, 10, 5000, 0);
    fill(&c, "a", "y", 1, 3, 0, 0);
    _exit(0); /* no close: what is committed is all there is */
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  fx_open(fx);
  assert_int_equal(last_seq(fx, "a", "x"), 10);
  assert_int_equal(last_seq(fx, "a", "y"), 3);
  fill(fx, "a", "x", 11, 11, 4000, 0); /* before 5000: unsorted */
  assert_int_equal(pruned_after(fx, 5000), 11);
  sw_history_q_t q = q_all("a", "x");
  expect_seqs(fx, &q, NULL, 0);
  fx_reopen(fx);
  assert_int_equal(last_seq(fx, "a", "x"), 11);
}

static void test_expiry_out_of_order(void **state) {
  fx_t *fx = *state;
  fill(fx, "a", "u", 1, 3, 9000, 0);
  fill(fx, "a", "u", 4, 6, 5000, 0); /* retention went down */
  fill(fx, "a", "u", 7, 7, 0, 0);
  fill(fx, "a", "u", 8, 8, 7000, 0);
  sw_history_q_t q = q_all("a", "u");
  assert_int_equal(pruned_after(fx, 4999), 0);
  expect_seqs(fx, &q, SEQS(1, 2, 3, 4, 5, 6, 7, 8));
  assert_int_equal(pruned_after(fx, 5000), 3);
  expect_seqs(fx, &q, SEQS(1, 2, 3, 7, 8));
  assert_int_equal(pruned_after(fx, 7000), 4);
  expect_seqs(fx, &q, SEQS(1, 2, 3, 7));
  if (fx->sqlite) fx_reopen(fx); /* the marks are in the file */
  assert_int_equal(pruned_after(fx, 8999), fx->sqlite ? 0 : 4);
  uint64_t base = fx->sqlite ? 0 : 4;
  assert_int_equal(pruned_after(fx, 9000), base + 3);
  expect_seqs(fx, &q, SEQS(7));
  /* Only a never-expiring message is left; new ones expire before
   * everything the channel ever had, one below it in seq. */
  fill(fx, "a", "u", 9, 10, 100, 0);
  fill(fx, "a", "u", 0, 0, 50, 0);
  expect_seqs(fx, &q, SEQS(0, 7, 9, 10));
  assert_int_equal(pruned_after(fx, 50), base + 4);
  expect_seqs(fx, &q, SEQS(7, 9, 10));
  assert_int_equal(pruned_after(fx, 100), base + 6);
  expect_seqs(fx, &q, SEQS(7));
  /* Decreasing expiries within one batch. */
  recspec_t sp[3] = {{"a", "w", 1, 1001, NULL, 300, 0}, {"a", "w", 2, 1002, NULL, 200, 0},
                     {"a", "w", 3, 1003, NULL, 100, 0}};
  assert_int_equal(submit_wait(fx, sp, 3), 0);
  sw_history_q_t qw = q_all("a", "w");
  assert_int_equal(pruned_after(fx, 100), base + 7);
  expect_seqs(fx, &qw, SEQS(1, 2));
  assert_int_equal(pruned_after(fx, 200), base + 8);
  expect_seqs(fx, &qw, SEQS(1));
  assert_int_equal(pruned_after(fx, 300), base + 9);
  expect_seqs(fx, &qw, NULL, 0);
  /* Count retention deletes the channel's first expiring messages: the
   * sweep still finds the next ones. */
  fill(fx, "a", "k", 1, 5, 1000, 0);
  fill(fx, "a", "k", 6, 8, 2000, 2);
  sw_history_q_t qk = q_all("a", "k");
  expect_seqs(fx, &qk, SEQS(7, 8));
  assert_int_equal(pruned_after(fx, 1500), base + 9);
  expect_seqs(fx, &qk, SEQS(7, 8));
  assert_int_equal(pruned_after(fx, 2000), base + 11);
  expect_seqs(fx, &qk, NULL, 0);
  /* The serials outlive it all. */
  assert_int_equal(last_seq(fx, "a", "u"), 10);
  assert_int_equal(last_seq(fx, "a", "k"), 8);
}

/* More channels due than one prune transaction takes (2000 messages, and
 * a channel counts at least one): the prune goes on in further
 * transactions until every one is swept. */
/* A message stored after others (its own batch) whose expiry is not after
 * theirs, though it comes after the channel's earliest (so the merge keeps
 * exp_next and exp_from): the channel is no longer sorted, and a prune
 * deletes it when due although an earlier one is kept. m1: by expiry (its
 * seq is the highest); m2: by seq (below the highest stored). */
static void test_expiry_marks_merge(void **state) {
  fx_t *fx = *state;
  fill(fx, "a", "m1", 1, 1, 1000, 0);
  fill(fx, "a", "m1", 2, 2, 5000, 0);
  fill(fx, "a", "m1", 3, 3, 3000, 0);
  fill(fx, "a", "m2", 1, 1, 1000, 0);
  fill(fx, "a", "m2", 3, 3, 2000, 0);
  fill(fx, "a", "m2", 2, 2, 3000, 0);
  uint64_t base = pruned_after(fx, 0);
  assert_int_equal(pruned_after(fx, 2000), base + 3); /* m1 1; m2 1, 3 */
  sw_history_q_t q = q_all("a", "m2");
  expect_seqs(fx, &q, SEQS(2));
  assert_int_equal(pruned_after(fx, 3000), base + 5); /* m1 3; m2 2 */
  expect_seqs(fx, &q, NULL, 0);
  q = q_all("a", "m1");
  expect_seqs(fx, &q, SEQS(2));
}

static void test_prune_many_channels(void **state) {
  fx_t *fx = *state;
  enum { NCH = 2100, PER = 64 };
  static char names[NCH][16];
  recspec_t sp[PER];
  for (int k = 0; k < NCH; k += PER) {
    int n = NCH - k < PER ? NCH - k : PER;
    for (int i = 0; i < n; i++) {
      snprintf(names[k + i], sizeof names[k + i], "ch%d", k + i);
      sp[i] = (recspec_t){"a", names[k + i], 1, 1001, NULL, 10, 0};
    }
    assert_int_equal(submit_wait(fx, sp, (size_t)n), 0);
  }
  fill(fx, "a", names[7], 2, 2, 0, 0);
  store_prune(fx->s, 10);
  sw_store_stats_t st = {0};
  for (int k = 0; k < 10 && st.pruned < NCH; k++) {
    barrier(fx);
    store_stats(fx->s, &st);
  }
  assert_int_equal(st.pruned, NCH);
  sw_history_q_t q = q_all("a", names[NCH - 1]);
  expect_seqs(fx, &q, NULL, 0);
  q = q_all("a", names[7]);
  expect_seqs(fx, &q, SEQS(2));
  assert_int_equal(last_seq(fx, "a", names[NCH - 1]), 1);
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

/* Expects id to hold value (expiring at expires), or to be absent (value NULL). */
static void exp_expect(fx_t *fx, const char *id, const char *value, int64_t expires) {
  char *v = NULL;
  int64_t e = 0;
  int rc = store_expiring_get(fx->s, id, &v, &e);
  if (!value) {
    assert_int_equal(rc, 0);
    assert_null(v);
    return;
  }
  assert_int_equal(rc, 1);
  assert_string_equal(v, value);
  assert_int_equal(e, expires);
  free(v);
}

/* Values with an expiry (large Ably tokens): stored durably, refused past
 * the count and byte bounds, expired ones pruned before the bounds are
 * checked and by store_prune; the bounds hold across a restart. */
static void test_expiring(void **state) {
  fx_t *fx = *state;
  exp_expect(fx, "a", NULL, 0);
  assert_int_equal(store_expiring_put(fx->s, "a", "value-a", 2000, 1000, 3, 100), 0);
  assert_int_equal(store_expiring_put(fx->s, "b", "value-b", 5000, 1000, 3, 100), 0);
  assert_int_equal(store_expiring_put(fx->s, "a", "again", 5000, 1000, 3, 100), -EEXIST);
  exp_expect(fx, "a", "value-a", 2000);
  exp_expect(fx, "b", "value-b", 5000);
  /* Count bound: two stored, at most two. */
  assert_int_equal(store_expiring_put(fx->s, "c", "value-c", 5000, 1000, 2, 100), -EDQUOT);
  exp_expect(fx, "c", NULL, 0);
  /* Once "a" has expired it is pruned first, which makes room. An expired
   * value is still read until it is pruned (the caller checks expiry). */
  exp_expect(fx, "a", "value-a", 2000);
  assert_int_equal(store_expiring_put(fx->s, "c", "value-c", 5000, 2000, 2, 100), 0);
  exp_expect(fx, "a", NULL, 0);
  /* Byte bound: 14 bytes stored; 4 more fit in 18, 5 do not. */
  assert_int_equal(store_expiring_put(fx->s, "d", "12345", 5000, 2000, 10, 18), -EDQUOT);
  assert_int_equal(store_expiring_put(fx->s, "d", "1234", 5000, 2000, 10, 18), 0);
  assert_int_equal(store_expiring_put(fx->s, "e", "x", 5000, 2000, 10, 18), -EDQUOT);
  assert_int_equal(store_expiring_put(fx->s, "e", "x", 5000, 2000, 10, 1000000), 0);
  assert_int_equal(store_expiring_put(fx->s, NULL, "x", 5000, 2000, 10, 18), -EINVAL);
  if (fx->sqlite) {
    /* Durable, and the totals are counted again at open. */
    fx_reopen(fx);
    exp_expect(fx, "d", "1234", 5000);
    assert_int_equal(store_expiring_put(fx->s, "f", "y", 5000, 2000, 4, 1000), -EDQUOT);
    assert_int_equal(store_expiring_put(fx->s, "f", "y", 5000, 2000, 10, 19), -EDQUOT);
    assert_int_equal(store_expiring_put(fx->s, "f", "y", 5000, 2000, 10, 20), 0);
  }
  /* store_prune drops the expired ones too. */
  exp_expect(fx, "b", "value-b", 5000);
  store_prune(fx->s, 5000);
  barrier(fx);
  exp_expect(fx, "b", NULL, 0);
  exp_expect(fx, "e", NULL, 0);
  assert_int_equal(store_expiring_put(fx->s, "g", "z", 9000, 5000, 1, 1), 0);
  exp_expect(fx, "g", "z", 9000);
  if (fx->sqlite) assert_int_equal(sqlite_count(fx->path, "SELECT count(*) FROM expiring", NULL), 1);
}

/* store_kv_put_async: queued in order with submissions (its callback
 * between theirs), durable when its callback says 0, not counted as a
 * submission; what /readyz writes. */
static void test_kv_async(void **state) {
  fx_t *fx = *state;
  store_debug_hold(fx->s, true);
  char bufs[1][64];
  sw_store_rec_t r;
  recspec_t a = {"a", "c", 1, 1000, NULL, 0, 0}, b = {"a", "c", 2, 1001, NULL, 0, 0};
  slot_t *sl = fx->t.slots;
  for (int i = 0; i < 3; i++) sl[i] = (slot_t){.t = &fx->t};
  mkrecs(&a, 1, &r, bufs);
  assert_int_equal(store_submit(fx->s, &r, 1, on_done, &sl[0]), 0);
  assert_int_equal(store_kv_put_async(fx->s, "ns1", "probe", "123", on_done, &sl[1]), 0);
  mkrecs(&b, 1, &r, bufs);
  assert_int_equal(store_submit(fx->s, &r, 1, on_done, &sl[2]), 0);
  store_debug_hold(fx->s, false);
  wait_for(fx, &fx->t.done, 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(sl[i].calls, 1);
    assert_int_equal(sl[i].status, 0);
    assert_int_equal(sl[i].order, i);
  }
  kv_expect(fx, "ns1", "probe=123;");
  sw_store_stats_t st;
  store_stats(fx->s, &st);
  assert_int_equal(st.submissions, 2);
  /* A NULL value deletes; the strings were copied at the call. */
  char key[8] = "probe";
  slot_t del = {.t = &fx->t};
  assert_int_equal(store_kv_put_async(fx->s, "ns1", key, NULL, on_done, &del), 0);
  key[0] = 'X';
  wait_for(fx, &fx->t.done, 4);
  assert_int_equal(del.status, 0);
  kv_expect(fx, "ns1", "");
  assert_int_equal(store_kv_put_async(fx->s, NULL, "k", "v", on_done, &del), -EINVAL);
  assert_int_equal(store_kv_put_async(fx->s, "ns", NULL, "v", on_done, &del), -EINVAL);
  if (fx->sqlite) {
    fx_reopen(fx);
    kv_expect(fx, "ns1", "");
  }
}

/* SQLite: another process holding the write lock makes the write fail with
 * -EBUSY after the busy timeout (the /readyz 503), without blocking the
 * loop thread meanwhile. */
static void test_kv_async_busy(void **state) {
  fx_t *fx = *state;
  sqlite3 *db;
  assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  slot_t sl = {.t = &fx->t};
  assert_int_equal(store_kv_put_async(fx->s, "ns1", "probe", "1", on_done, &sl), 0);
  uv_run(&fx->loop, UV_RUN_NOWAIT);
  assert_int_equal(sl.calls, 0); /* the loop is free while the thread waits */
  wait_for(fx, &fx->t.done, 1);
  assert_int_equal(sl.status, -EBUSY);
  assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  slot_t again = {.t = &fx->t};
  assert_int_equal(store_kv_put_async(fx->s, "ns1", "probe", "2", on_done, &again), 0);
  wait_for(fx, &fx->t.done, 2);
  assert_int_equal(again.status, 0);
  kv_expect(fx, "ns1", "probe=2;");
}

/* The commit latency histogram: one observation per committed message
 * transaction (batches), none for empty barriers, kv writes or failures. */
static void test_commit_latency(void **state) {
  fx_t *fx = *state;
  fill(fx, "a", "c", 1, 5, 0, 0); /* five transactions, one at a time */
  barrier(fx);                    /* no records: no transaction */
  assert_int_equal(store_kv_put(fx->s, "ns1", "k", "v"), 0);
  recspec_t dup = {"a", "c", 3, 1, NULL, 0, 0}; /* seq 3 is stored: -EEXIST */
  assert_int_equal(submit_wait(fx, &dup, 1), -EEXIST);
  sw_store_stats_t st;
  store_stats(fx->s, &st);
  assert_int_equal(st.batches, 5);
  assert_int_equal(st.commit_latency.count, 5);
  uint64_t n = 0;
  for (unsigned i = 0; i <= SW_HIST_BOUNDS; i++) n += st.commit_latency.bucket[i];
  assert_int_equal(n, 5);
  assert_true(st.commit_latency.sum_ns > 0);
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

/* Checks that the plan of sql searches through index `idx`. */
static void expect_plan(sqlite3 *db, const char *sql, const char *idx) {
  char q[1024];
  snprintf(q, sizeof q, "EXPLAIN QUERY PLAN %s", sql);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
  bool found = false;
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *d = (const char *)sqlite3_column_text(st, 3);
    if (d && strstr(d, "SEARCH") && strstr(d, idx)) found = true;
    if (d) assert_null(strstr(d, "TEMP B-TREE")); /* no sort step */
  }
  sqlite3_finalize(st);
  assert_true(found);
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
  assert_int_equal(sqlite3_column_int(st, 0), 9);
  sqlite3_finalize(st);
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);
  /* History is a range scan of messages_seq (v8), not a table scan; the
   * channel's id is one probe of channels (store_sqlite.c's CID). */
#define CID_T "(SELECT id FROM channels WHERE app = ?1 AND channel = ?2)"
  expect_plan(db, "SELECT seq FROM messages WHERE cid = " CID_T " AND seq>1 AND seq<9 ORDER BY seq DESC",
              "messages_seq");
  expect_plan(db, "SELECT seq FROM messages WHERE cid = " CID_T " AND seq>1 AND seq<9 ORDER BY seq DESC",
              "sqlite_autoindex_channels_1");
  /* Replay by vseq and a message's versions are index range scans too (the
   * statements of store_sqlite.c). */
  const char *by_vseq =
      "SELECT seq, ts, blob, vseq, seq AS k FROM messages WHERE cid = " CID_T " AND "
      "seq > ?3 AND seq < ?4 AND vseq = seq AND ts >= ?5 AND ts <= ?6 AND (expires_at = 0 OR "
      "expires_at > ?7) UNION ALL SELECT seq, ts, blob, vseq, vseq AS k FROM messages WHERE "
      "cid = " CID_T " AND vseq > ?3 AND vseq < ?4 AND vseq != seq AND ts >= ?5 AND "
      "ts <= ?6 AND (expires_at = 0 OR expires_at > ?7) ORDER BY 5 DESC LIMIT ?8";
  expect_plan(db, by_vseq, "messages_vseq");
  expect_plan(db, by_vseq, "messages_seq");
  expect_plan(db,
              "SELECT seq, ts, blob, vseq FROM versions INDEXED BY versions_seq WHERE app = ?1 "
              "AND channel = ?2 AND seq = ?3 AND vseq > ?4 AND vseq < ?5 ORDER BY vseq LIMIT ?6",
              "versions_seq");
  /* So does count retention of versions. Pruning finds the channels due in
   * channel_seq_expiry's order (no sort) and walks each one's messages_seq. */
  expect_plan(db, "DELETE FROM versions WHERE app = 'a' AND channel = 'c' AND seq <= 3",
              "versions_seq");
  expect_plan(db,
              "SELECT app, channel, exp_from, exp_unsorted FROM channel_seq "
              "WHERE exp_next != 0 AND exp_next <= 5 ORDER BY exp_next LIMIT 10",
              "channel_seq_expiry");
  expect_plan(db, "SELECT seq, expires_at FROM messages WHERE cid = " CID_T " AND seq >= 3 ORDER BY seq",
              "messages_seq");
  /* A channel's serial and exp_max derived from its newest messages
   * (store_sqlite.c's CHANNEL_SEQ_LAG): probes of messages_seq from the
   * top, no scan or sort (the statements of store_sqlite.c). */
  const char *derive_last =
      "SELECT max(last_seq, coalesce((SELECT max(seq) FROM messages WHERE cid = " CID_T "), last_seq)) "
      "FROM channel_seq WHERE app = ?1 AND channel = ?2";
  expect_plan(db, derive_last, "messages_seq (cid=?)");
  expect_plan(db, derive_last, "channel_seq USING PRIMARY KEY");
  const char *derive_row =
      "SELECT s.last_seq, s.exp_next, s.exp_from, s.exp_max, s.exp_unsorted, "
      "(SELECT max(seq) FROM messages WHERE cid = " CID_T "), "
      "CASE WHEN s.exp_unsorted = 0 AND s.exp_next != 0 THEN (SELECT expires_at FROM messages "
      "  WHERE cid = " CID_T " AND seq > s.last_seq AND expires_at != 0 ORDER BY seq DESC LIMIT 1) END "
      "FROM channel_seq s WHERE s.app = ?1 AND s.channel = ?2";
  expect_plan(db, derive_row, "messages_seq (cid=? AND seq>?)");
  expect_plan(db, derive_row, "messages_seq (cid=?)");
#undef CID_T
  /* A message is in its rowid table and messages_seq only, unless a
   * version changed it (v7, v8). */
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT group_concat(name) FROM (SELECT name FROM sqlite_schema "
                                          "WHERE type = 'index' AND tbl_name = 'messages' ORDER BY name)",
                                      -1, &st, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "messages_seq,messages_vseq");
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

/* ------------------------------------------------------ versions tests */

/* Versions replace the head; history shows each message once, as its latest
 * head with its vseq; serials follow the versions, also after a restart. */
static void test_versions_head(void **state) {
  fx_t *fx = *state;
  fill(fx, "a", "c", 1, 3, 0, 0);
  fill(fx, "a", "d", 1, 1, 0, 0);
  assert_int_equal(version_wait(fx, "a", "c", 2, 4, 0), 0);
  assert_int_equal(version_wait(fx, "a", "c", 2, 5, 0), 0);
  assert_int_equal(version_wait(fx, "a", "c", 1, 6, 0), 0);
  sw_history_q_t q = q_all("a", "c");
  expect_heads(fx, &q, HEADS(1, 6, 2, 5, 3, 3));
  q.forwards = false;
  expect_heads(fx, &q, HEADS(3, 3, 2, 5, 1, 6));
  /* Timestamp bounds are on the message's (INSERT's) timestamp. */
  q = q_all("a", "c");
  q.start = q.end = 1002;
  expect_heads(fx, &q, HEADS(2, 5));
  assert_int_equal(last_seq(fx, "a", "c"), 6);
  assert_int_equal(last_seq(fx, "a", "d"), 1); /* per channel */
  sw_history_q_t qd = q_all("a", "d");
  expect_heads(fx, &qd, HEADS(1, 1));
  /* An INSERT and versions of it in one call, interleaved with another
   * channel; the serial is the max of every seq and vseq. */
  vbufs_t vb[3];
  char bufs[1][64];
  recspec_t sp = {"a", "c", 7, 1007, "id7", 0, 0};
  sw_store_rec_t recs[4];
  mkrecs(&sp, 1, &recs[0], bufs);
  recs[1] = ver_rec("a", "c", 7, 8, 0, &vb[0]);
  recs[2] = ver_rec("a", "d", 1, 2, 0, &vb[1]);
  recs[3] = ver_rec("a", "c", 7, 10, 0, &vb[2]);
  assert_int_equal(submit_recs_wait(fx, recs, 4), 0);
  q = q_all("a", "c");
  expect_heads(fx, &q, HEADS(1, 6, 2, 5, 3, 3, 7, 10));
  expect_heads(fx, &qd, HEADS(1, 2));
  assert_int_equal(last_seq(fx, "a", "c"), 10);
  assert_int_equal(last_seq(fx, "a", "d"), 2);
  /* find_by_id gives the head. */
  sw_store_row_t row;
  assert_int_equal(store_find_by_id(fx->s, "a", "c", "id7", &row), 1);
  check_head(&row, "a", "c", 7, 10);
  free(row.blob);
  sw_store_stats_t st;
  store_stats(fx->s, &st);
  assert_int_equal(st.records, 3 + 1 + 3 + 4);
  if (!fx->sqlite) return;
  fx_reopen(fx);
  assert_int_equal(last_seq(fx, "a", "c"), 10);
  assert_int_equal(last_seq(fx, "a", "d"), 2);
  expect_heads(fx, &q, HEADS(1, 6, 2, 5, 3, 3, 7, 10));
  expect_versions(fx, "a", "c", 2, true, 10, -1, SEQS(4, 5));
  /* The clash checks know the reopened file has versions: 10 is message
   * 7's head vseq. */
  recspec_t clash = {"a", "c", 10, 1010, NULL, 0, 0};
  assert_int_equal(submit_wait(fx, &clash, 1), -EEXIST);
  assert_int_equal(version_wait(fx, "a", "c", 3, 11, 0), 0);
  expect_heads(fx, &q, HEADS(1, 6, 2, 5, 3, 11, 7, 10));
}

/* by_vseq: bounds and order on the heads' vseq (the replay of "every message
 * whose head changed after serial S"), with paging. */
static void test_versions_by_vseq(void **state) {
  fx_t *fx = *state;
  fill(fx, "a", "c", 1, 6, 0, 0);
  assert_int_equal(version_wait(fx, "a", "c", 2, 7, 0), 0);
  assert_int_equal(version_wait(fx, "a", "c", 4, 8, 0), 0);
  assert_int_equal(version_wait(fx, "a", "c", 2, 9, 0), 0); /* supersedes 7 */
  assert_int_equal(version_wait(fx, "a", "c", 5, 10, 0), 0);
  fill(fx, "a", "c", 11, 11, 0, 0);
  /* Heads: 1@1 2@9 3@3 4@8 5@10 6@6 11@11. */
  sw_history_q_t q = q_all("a", "c");
  q.by_vseq = true;
  expect_heads(fx, &q, HEADS(1, 1, 3, 3, 6, 6, 4, 8, 2, 9, 5, 10, 11, 11));
  q.forwards = false;
  expect_heads(fx, &q, HEADS(11, 11, 5, 10, 2, 9, 4, 8, 6, 6, 3, 3, 1, 1));
  /* Resume after serial 6: heads changed since, oldest change first. */
  q = q_all("a", "c");
  q.by_vseq = true;
  q.after_seq = 6;
  expect_heads(fx, &q, HEADS(4, 8, 2, 9, 5, 10, 11, 11));
  q.after_seq = 7; /* 7 was superseded: message 2 is at 9 now */
  expect_heads(fx, &q, HEADS(4, 8, 2, 9, 5, 10, 11, 11));
  q.after_seq = 6;
  q.before_seq = 10;
  expect_heads(fx, &q, HEADS(4, 8, 2, 9));
  q.forwards = false;
  expect_heads(fx, &q, HEADS(2, 9, 4, 8));
  q.before_seq = 9;
  q.after_seq = 2;
  q.limit = 2;
  expect_heads(fx, &q, HEADS(4, 8, 6, 6));
  q.after_seq = 8;
  q.before_seq = 9;
  expect_heads(fx, &q, NULL, 0);
  q.after_seq = 9;
  expect_heads(fx, &q, NULL, 0);
  /* Paging forwards by 2 from serial 5. */
  q = q_all("a", "c");
  q.by_vseq = true;
  q.after_seq = 5;
  q.limit = 2;
  expect_heads(fx, &q, HEADS(6, 6, 4, 8));
  q.after_seq = 8;
  expect_heads(fx, &q, HEADS(2, 9, 5, 10));
  q.after_seq = 10;
  expect_heads(fx, &q, HEADS(11, 11));
  q.after_seq = 11;
  expect_heads(fx, &q, NULL, 0);
  /* The other filters still apply: timestamps (the INSERT's), expiry. */
  q = q_all("a", "c");
  q.by_vseq = true;
  q.start = 1004;
  expect_heads(fx, &q, HEADS(6, 6, 4, 8, 5, 10, 11, 11));
  fill(fx, "a", "c", 12, 12, 7000, 0);
  assert_int_equal(version_wait(fx, "a", "c", 12, 13, 0), 0);
  assert_int_equal(version_wait(fx, "a", "c", 3, 14, 0), 0);
  q = q_all("a", "c");
  q.by_vseq = true;
  q.after_seq = 10;
  q.now = 6999;
  expect_heads(fx, &q, HEADS(11, 11, 12, 13, 3, 14));
  q.now = 7000; /* a version does not extend the message's life */
  expect_heads(fx, &q, HEADS(11, 11, 3, 14));
  /* Default mode: bounds and order on seq, one row per message. */
  q = q_all("a", "c");
  q.after_seq = 6;
  expect_heads(fx, &q, HEADS(11, 11, 12, 13));
  /* 7 is the serial of a superseded version (of message 2): not reusable. */
  assert_int_equal(version_wait(fx, "a", "c", 6, 7, 0), -EEXIST);
  expect_get(fx, "a", "c", 6, 6);
}

static void test_store_get(void **state) {
  fx_t *fx = *state;
  fill(fx, "a", "c", 1, 3, 0, 0);
  expect_get(fx, "a", "c", 2, 2);
  assert_int_equal(version_wait(fx, "a", "c", 2, 4, 0), 0);
  expect_get(fx, "a", "c", 2, 4);
  expect_get(fx, "a", "c", 1, 1);
  expect_get(fx, "a", "c", 4, -1); /* a version's serial is not a message */
  expect_get(fx, "a", "c", 9, -1);
  expect_get(fx, "a", "d", 2, -1);
  expect_get(fx, "b", "c", 2, -1);
  /* An empty head round-trips as an empty blob (e.g. a delete). */
  sw_store_rec_t r = {.app_id = "a", .channel = "c", .op = SW_STORE_VERSION, .seq = 3,
                      .vseq = 5, .timestamp = 5005};
  assert_int_equal(submit_recs_wait(fx, &r, 1), 0);
  sw_store_row_t row = {0};
  assert_int_equal(store_get(fx->s, "a", "c", 3, &row), 1);
  assert_int_equal(row.vseq, 5);
  assert_int_equal(row.timestamp, 1003);
  assert_int_equal(row.blob_len, 0);
  assert_null(row.blob);
  sw_store_rows_t rows;
  assert_int_equal(store_versions(fx->s, "a", "c", 3, true, 10, -1, &rows), 0);
  assert_int_equal(rows.n, 1);
  assert_int_equal(rows.rows[0].vseq, 5);
  assert_int_equal(rows.rows[0].blob_len, 0);
  store_rows_free(&rows);
  assert_int_equal(store_get(fx->s, NULL, "c", 3, &row), -EINVAL);
  assert_int_equal(store_get(fx->s, "a", "c", 3, NULL), -EINVAL);
  if (!fx->sqlite) return;
  fx_reopen(fx);
  expect_get(fx, "a", "c", 2, 4);
}

/* store_versions: one message's events in vseq order, paged both ways. */
static void test_versions_list(void **state) {
  fx_t *fx = *state;
  fill(fx, "a", "c", 1, 2, 0, 0);
  const int64_t evs[][2] = {{1, 3}, {2, 4}, {1, 5}, {1, 7}, {2, 8}, {1, 9}};
  for (size_t i = 0; i < 6; i++)
    assert_int_equal(version_wait(fx, "a", "c", evs[i][0], evs[i][1], 0), 0);
  fill(fx, "a", "c", 10, 10, 0, 0);
  expect_versions(fx, "a", "c", 1, true, 10, -1, SEQS(3, 5, 7, 9));
  expect_versions(fx, "a", "c", 2, true, 10, -1, SEQS(4, 8));
  expect_versions(fx, "a", "c", 1, false, 10, -1, SEQS(9, 7, 5, 3));
  /* Forwards pages: after_vseq is exclusive. */
  expect_versions(fx, "a", "c", 1, true, 2, -1, SEQS(3, 5));
  expect_versions(fx, "a", "c", 1, true, 2, 5, SEQS(7, 9));
  expect_versions(fx, "a", "c", 1, true, 2, 9, NOVERS);
  expect_versions(fx, "a", "c", 1, true, 10, 4, SEQS(5, 7, 9)); /* a bound between events */
  /* Backwards pages: after_vseq is "before_vseq", exclusive. */
  expect_versions(fx, "a", "c", 1, false, 3, -1, SEQS(9, 7, 5));
  expect_versions(fx, "a", "c", 1, false, 3, 5, SEQS(3));
  expect_versions(fx, "a", "c", 1, false, 3, 3, NOVERS);
  expect_versions(fx, "a", "c", 1, false, 10, 8, SEQS(7, 5, 3));
  expect_versions(fx, "a", "c", 1, false, 10, 0, NOVERS); /* before 0: nothing */
  expect_versions(fx, "a", "c", 1, true, 0, -1, NOVERS);  /* limit 0 */
  expect_versions(fx, "a", "c", 10, true, 10, -1, NOVERS); /* no versions */
  expect_versions(fx, "a", "c", 99, true, 10, -1, NOVERS); /* no message */
  expect_versions(fx, "a", "d", 1, true, 10, -1, NOVERS);
  sw_store_rows_t rows;
  assert_int_equal(store_versions(fx->s, "a", NULL, 1, true, 10, -1, &rows), -EINVAL);
  assert_int_equal(store_versions(fx->s, "a", "c", 1, true, 10, -1, NULL), -EINVAL);
}

/* A VERSION of a missing message fails its submission alone (-ENOENT), as
 * do versions whose serial clashes (-EEXIST); nothing of a failed
 * submission is kept, nor raises the serial. */
static void test_versions_failures(void **state) {
  fx_t *fx = *state;
  fill(fx, "a", "c", 1, 3, 0, 0);
  store_debug_hold(fx->s, true);
  vbufs_t vb[16];
  char bufs[4][64];
  sw_store_rec_t subs[13][2];
  size_t lens[13];
  int want[13];
  int k = 0, v = 0;
  recspec_t ins4 = {"a", "c", 4, 1004, NULL, 0, 0}, ins7 = {"a", "c", 7, 1007, NULL, 0, 0},
            ins9 = {"a", "c", 9, 1009, NULL, 0, 0}, ins10 = {"a", "c", 10, 1010, NULL, 0, 0};
  mkrecs(&ins4, 1, &subs[k][0], &bufs[0]);
  lens[k] = 1, want[k++] = 0;
  subs[k][0] = ver_rec("a", "c", 0, 5, 0, &vb[v++]); /* never existed */
  lens[k] = 1, want[k++] = -ENOENT;
  subs[k][0] = ver_rec("a", "c", 1, 6, 0, &vb[v++]);
  lens[k] = 1, want[k++] = 0;
  mkrecs(&ins7, 1, &subs[k][0], &bufs[1]); /* atomic: 7 is not kept */
  subs[k][1] = ver_rec("a", "c", 6, 8, 0, &vb[v++]); /* 6: not a message */
  lens[k] = 2, want[k++] = -ENOENT;
  subs[k][0] = ver_rec("a", "c", 1, 6, 0, &vb[v++]); /* replayed: not newer than the head */
  lens[k] = 1, want[k++] = -EEXIST;
  subs[k][0] = ver_rec("a", "c", 2, 4, 0, &vb[v++]); /* 4 is message 4's serial */
  lens[k] = 1, want[k++] = -EEXIST;
  subs[k][0] = ver_rec("a", "c", 2, 9, 0, &vb[v++]);
  lens[k] = 1, want[k++] = 0;
  subs[k][0] = ver_rec("a", "c", 3, 6, 0, &vb[v++]); /* 6 is a version of message 1 */
  lens[k] = 1, want[k++] = -EEXIST;
  subs[k][0] = ver_rec("a", "c", 2, 8, 0, &vb[v++]); /* unused, but older than the head (9) */
  lens[k] = 1, want[k++] = -EEXIST;
  subs[k][0] = ver_rec("a", "c", 3, 12, 0, &vb[v++]); /* applied, then rolled back */
  subs[k][1] = ver_rec("a", "c", 0, 13, 0, &vb[v++]);
  lens[k] = 2, want[k++] = -ENOENT;
  mkrecs(&ins9, 1, &subs[k][0], &bufs[2]); /* 9 is message 2's head vseq */
  lens[k] = 1, want[k++] = -EEXIST;
  mkrecs(&ins10, 1, &subs[k][0], &bufs[3]);
  subs[k][1] = ver_rec("a", "c", 10, 11, 0, &vb[v++]);
  lens[k] = 2, want[k++] = 0;
  subs[k][0] = ver_rec("a", "c", 0, 50, 0, &vb[v++]);
  lens[k] = 1, want[k++] = -ENOENT;
  for (int i = 0; i < k; i++) {
    fx->t.slots[i].t = &fx->t;
    assert_int_equal(store_submit(fx->s, subs[i], lens[i], on_done, &fx->t.slots[i]), 0);
  }
  store_debug_hold(fx->s, false);
  wait_for(fx, &fx->t.done, k);
  for (int i = 0; i < k; i++) {
    assert_int_equal(fx->t.slots[i].calls, 1);
    assert_int_equal(fx->t.slots[i].status, want[i]);
  }
  sw_history_q_t q = q_all("a", "c");
  expect_heads(fx, &q, HEADS(1, 6, 2, 9, 3, 3, 4, 4, 10, 11));
  expect_versions(fx, "a", "c", 1, true, 10, -1, SEQS(6));
  expect_versions(fx, "a", "c", 2, true, 10, -1, SEQS(9));
  expect_versions(fx, "a", "c", 3, true, 10, -1, NOVERS);
  expect_versions(fx, "a", "c", 10, true, 10, -1, SEQS(11));
  assert_int_equal(last_seq(fx, "a", "c"), 11); /* not 50 */
  sw_store_stats_t st;
  store_stats(fx->s, &st);
  assert_int_equal(st.failures, 9);
  /* Refused before queueing (no callback): unknown op, vseq <= seq, a NULL
   * version blob with a length. */
  slot_t sl = {.t = &fx->t};
  sw_store_rec_t bad = ver_rec("a", "c", 1, 20, 0, &vb[v++]);
  bad.op = (sw_store_op_t)2;
  assert_int_equal(store_submit(fx->s, &bad, 1, on_done, &sl), -EINVAL);
  bad = ver_rec("a", "c", 5, 5, 0, &vb[v++]);
  assert_int_equal(store_submit(fx->s, &bad, 1, on_done, &sl), -EINVAL);
  bad = ver_rec("a", "c", 1, 20, 0, &vb[v++]);
  bad.version_blob = NULL;
  assert_int_equal(store_submit(fx->s, &bad, 1, on_done, &sl), -EINVAL);
  assert_int_equal(sl.calls, 0);
  /* An INSERT ignores the version fields. */
  char ib[1][64];
  recspec_t ins12 = {"a", "c", 12, 1012, NULL, 0, 0};
  sw_store_rec_t r;
  mkrecs(&ins12, 1, &r, ib);
  r.vseq = 999;
  r.version_blob = (const uint8_t *)"junk";
  r.version_blob_len = 4;
  assert_int_equal(submit_recs_wait(fx, &r, 1), 0);
  expect_get(fx, "a", "c", 12, 12);
  expect_versions(fx, "a", "c", 12, true, 10, -1, NOVERS);
  assert_int_equal(last_seq(fx, "a", "c"), 12);
}

/* Age and count retention and delete_app take the versions with their
 * message; a version neither extends a message's life nor counts as one. */
static void test_versions_retention(void **state) {
  fx_t *fx = *state;
  /* Age. */
  fill(fx, "a", "c", 1, 1, 5000, 0);
  fill(fx, "a", "c", 2, 2, 0, 0);
  assert_int_equal(version_wait(fx, "a", "c", 1, 3, 0), 0);
  assert_int_equal(version_wait(fx, "a", "c", 2, 4, 0), 0);
  assert_int_equal(version_wait(fx, "a", "c", 1, 5, 0), 0);
  sw_history_q_t q = q_all("a", "c");
  q.now = 5000;
  expect_heads(fx, &q, HEADS(2, 4));
  q.by_vseq = true;
  expect_heads(fx, &q, HEADS(2, 4));
  if (fx->sqlite) assert_int_equal(sqlite_versions_count(fx, "a"), 3);
  store_prune(fx->s, 5000);
  barrier(fx);
  sw_store_stats_t st;
  store_stats(fx->s, &st);
  assert_int_equal(st.pruned, 1); /* messages, not versions */
  expect_get(fx, "a", "c", 1, -1);
  expect_versions(fx, "a", "c", 1, true, 10, -1, NOVERS);
  expect_versions(fx, "a", "c", 2, true, 10, -1, SEQS(4));
  if (fx->sqlite) assert_int_equal(sqlite_versions_count(fx, "a"), 1);
  assert_int_equal(version_wait(fx, "a", "c", 1, 6, 0), -ENOENT); /* pruned */
  assert_int_equal(last_seq(fx, "a", "c"), 5);
  /* The pruned versions' serials are free again in the index (the caller
   * never reuses serials, but the store must not keep stale entries). */
  fill(fx, "a", "c", 3, 3, 0, 0);
  expect_get(fx, "a", "c", 3, 3);
  assert_int_equal(version_wait(fx, "a", "c", 2, 5, 0), 0);
  expect_versions(fx, "a", "c", 2, true, 10, -1, SEQS(4, 5));

  /* Count: updates alone push no message out, not even with serials far
   * beyond keep_count; a new message does, with its versions. */
  fill(fx, "a", "k", 1, 3, 0, 0);
  assert_int_equal(version_wait(fx, "a", "k", 1, 4, 0), 0);
  assert_int_equal(version_wait(fx, "a", "k", 2, 5, 0), 0);
  assert_int_equal(version_wait(fx, "a", "k", 3, 6, 0), 0);
  for (int64_t vs = 7; vs <= 20; vs++) assert_int_equal(version_wait(fx, "a", "k", 3, vs, 3), 0);
  sw_history_q_t qk = q_all("a", "k");
  expect_heads(fx, &qk, HEADS(1, 4, 2, 5, 3, 20));
  assert_int_equal(version_wait(fx, "a", "k", 2, 21, 2), 0); /* keep 2: seq <= 3 - 2 goes */
  expect_heads(fx, &qk, HEADS(2, 21, 3, 20));
  expect_versions(fx, "a", "k", 1, true, 100, -1, NOVERS);
  expect_versions(fx, "a", "k", 2, true, 100, -1, SEQS(5, 21));
  fill(fx, "a", "k", 22, 22, 0, 2); /* seq <= 22 - 2 goes */
  expect_heads(fx, &qk, HEADS(22, 22));
  expect_versions(fx, "a", "k", 2, true, 100, -1, NOVERS);
  expect_versions(fx, "a", "k", 3, true, 100, -1, NOVERS);
  qk.by_vseq = true;
  expect_heads(fx, &qk, HEADS(22, 22));
  /* Nothing of the deleted versions lingers: a message stored again under
   * seq 2 (below the serial, as the store allows) can take the serial of a
   * deleted version of the old message 2. */
  fill(fx, "a", "k", 2, 2, 0, 0);
  assert_int_equal(version_wait(fx, "a", "k", 2, 21, 0), 0);
  qk.by_vseq = false;
  expect_heads(fx, &qk, HEADS(2, 21, 22, 22));
  expect_versions(fx, "a", "k", 2, true, 100, -1, SEQS(21));
  fill(fx, "a", "k", 23, 23, 0, 1);
  expect_heads(fx, &qk, HEADS(23, 23));
  assert_int_equal(last_seq(fx, "a", "k"), 23);
  if (fx->sqlite) assert_int_equal(sqlite_versions_count(fx, "a"), 2); /* message 2 of "c" */

  /* delete_app: versions go too; a recreated app starts afresh. */
  fill(fx, "b", "c", 1, 1, 0, 0);
  assert_int_equal(version_wait(fx, "b", "c", 1, 2, 0), 0);
  assert_int_equal(store_delete_app(fx->s, "a"), 0);
  if (fx->sqlite) {
    assert_int_equal(sqlite_versions_count(fx, "a"), 0);
    assert_int_equal(sqlite_versions_count(fx, "b"), 1);
  }
  expect_versions(fx, "a", "c", 2, true, 10, -1, NOVERS);
  expect_get(fx, "a", "c", 2, -1);
  expect_versions(fx, "b", "c", 1, true, 10, -1, SEQS(2));
  assert_int_equal(last_seq(fx, "a", "c"), -1);
  fill(fx, "a", "c", 1, 2, 0, 0);
  assert_int_equal(version_wait(fx, "a", "c", 2, 4, 0), 0);
  assert_int_equal(version_wait(fx, "a", "c", 1, 5, 0), 0); /* 5 was used before the delete */
  q = q_all("a", "c");
  expect_heads(fx, &q, HEADS(1, 5, 2, 4));
}

/* Read-your-acks with versions while the commit thread writes: every
 * callback sees its own version as the head, first in a by_vseq replay. */
typedef struct vack_ud {
  fx_t *fx;
  int64_t vseq;
  int *done;
  int *bad;
} vack_ud_t;

static void on_vack_check(void *ud, int status) {
  vack_ud_t *a = ud;
  sw_store_row_t row = {0};
  if (status != 0 || store_get(a->fx->s, "a", "c", 0, &row) != 1 || row.vseq < a->vseq)
    (*a->bad)++;
  free(row.blob);
  sw_history_q_t q = q_all("a", "c");
  q.by_vseq = true;
  q.forwards = false;
  q.limit = 1;
  sw_store_rows_t rows;
  if (store_history(a->fx->s, &q, &rows) != 0 || rows.n != 1 || rows.rows[0].vseq < a->vseq)
    (*a->bad)++;
  store_rows_free(&rows);
  (*a->done)++;
}

static void test_versions_beside_writes(void **state) {
  fx_t *fx = *state;
  enum { N = 500 };
  fill(fx, "a", "c", 0, 0, 0, 0);
  vack_ud_t *acks = calloc(N, sizeof *acks);
  assert_non_null(acks);
  int done = 0, bad = 0;
  for (int i = 0; i < N; i++) {
    /* Each call: a new message 2i+1, then an update of message 0. */
    int64_t seq = 2 * i + 1;
    acks[i] = (vack_ud_t){fx, seq + 1, &done, &bad};
    vbufs_t vb;
    sw_store_rec_t r[2] = {{.app_id = "a", .channel = "c", .seq = seq, .timestamp = 1000 + seq,
                            .blob = (const uint8_t *)"m", .blob_len = 1},
                           ver_rec("a", "c", 0, seq + 1, 0, &vb)};
    assert_int_equal(store_submit(fx->s, r, 2, on_vack_check, &acks[i]), 0);
    if (i % 50 == 0) uv_run(&fx->loop, UV_RUN_NOWAIT);
  }
  wait_for(fx, &done, N);
  assert_int_equal(bad, 0);
  free(acks);
  sw_history_q_t q = q_all("a", "c");
  sw_store_rows_t rows;
  assert_int_equal(store_history(fx->s, &q, &rows), 0);
  assert_int_equal(rows.n, N + 1);
  assert_int_equal(rows.rows[0].seq, 0);
  assert_int_equal(rows.rows[0].vseq, 2 * N);
  store_rows_free(&rows);
  expect_versions(fx, "a", "c", 0, false, 2, -1, SEQS(2 * N, 2 * N - 2));
}

/* The schema as shipped in version 1 (store_sqlite.c before versions). */
static const char SCHEMA_V1_TEST[] =
    "CREATE TABLE messages("
    "  app TEXT NOT NULL, channel TEXT NOT NULL, seq INTEGER NOT NULL,"
    "  ts INTEGER NOT NULL, msg_id TEXT, expires_at INTEGER NOT NULL DEFAULT 0,"
    "  blob BLOB NOT NULL,"
    "  PRIMARY KEY(app, channel, seq)) WITHOUT ROWID;"
    "CREATE INDEX messages_msg_id ON messages(app, channel, msg_id) WHERE msg_id IS NOT NULL;"
    "CREATE INDEX messages_expiry ON messages(expires_at) WHERE expires_at != 0;"
    "CREATE TABLE channel_seq("
    "  app TEXT NOT NULL, channel TEXT NOT NULL, last_seq INTEGER NOT NULL,"
    "  PRIMARY KEY(app, channel)) WITHOUT ROWID;"
    "CREATE TABLE kv("
    "  ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
    "  PRIMARY KEY(ns, key)) WITHOUT ROWID;"
    "PRAGMA user_version = 1;";

/* The schema objects of a file, one string (to compare two files). */
static void schema_dump(const char *path, char *out, size_t cap) {
  sqlite3 *db;
  assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "SELECT type || ' ' || name || ' ' || ifnull(sql, '') "
                                      "FROM sqlite_schema ORDER BY type, name",
                                      -1, &st, NULL),
                   SQLITE_OK);
  out[0] = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    size_t l = strlen(out);
    snprintf(out + l, cap - l, "%s\n", (const char *)sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  assert_true(strlen(out) + 1 < cap);
}

/* Replaces fx's file (closed) with one made by running steps (old
 * schema SQL, NULL-terminated) and then data. */
static void old_db_create(fx_t *fx, const char *const *steps, const char *data) {
  fx_close(fx);
  char p[160];
  const char *sfx[] = {"", "-wal", "-shm"};
  for (size_t i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s%s", fx->path, sfx[i]);
    unlink(p);
  }
  sqlite3 *db;
  assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL), SQLITE_OK);
  for (size_t i = 0; steps[i]; i++) assert_int_equal(sqlite3_exec(db, steps[i], NULL, NULL, NULL), SQLITE_OK);
  char *err = NULL;
  int rc = sqlite3_exec(db, data, NULL, NULL, &err);
  if (rc != SQLITE_OK) fprintf(stderr, "old_db_create: %s\n", err ? err : "?");
  sqlite3_free(err);
  assert_int_equal(rc, SQLITE_OK);
  sqlite3_close(db);
}

/* With fx closed: the file is at the current schema version and intact,
 * and its schema is a fresh file's, dumped into a (for more checks);
 * fx is open again after. */
static void expect_upgraded(fx_t *fx, char *a, size_t cap) {
  sqlite3 *db;
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(st, 0), 9);
  sqlite3_finalize(st);
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
  sqlite3_finalize(st);
  sqlite3_close(db);

  char fresh[160], p[160];
  snprintf(fresh, sizeof fresh, "%s/fresh.db", fx->dir);
  sw_store_opts_t o = {.path = fresh};
  sw_store_t *s2 = NULL;
  assert_int_equal(store_open(&fx->loop, &o, &s2), 0);
  store_close(s2);
  uv_run(&fx->loop, UV_RUN_DEFAULT);
  static char b[16384];
  schema_dump(fx->path, a, cap);
  schema_dump(fresh, b, sizeof b);
  assert_string_equal(a, b);
  const char *sfx[] = {"", "-wal", "-shm", ".lock"};
  for (size_t i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s%s", fresh, sfx[i]);
    unlink(p);
  }
  fx_open(fx); /* teardown closes it */
}

/* A version 1 file (written with the old schema SQL) opens as version 2:
 * its messages get vseq = seq, serials and kv survive, versions work, and
 * the upgraded schema is identical to a fresh one. */
static void test_sqlite_upgrade_v1(void **state) {
  fx_t *fx = *state;
  if (!fx->sqlite) {
    skip();
    return;
  }
  const char *const steps[] = {SCHEMA_V1_TEST, NULL};
  old_db_create(fx, steps,
                "INSERT INTO messages VALUES('a','c',1,1001,'m1',0,CAST('a/c#1' AS BLOB));"
                "INSERT INTO messages VALUES('a','c',2,1002,NULL,0,CAST('a/c#2' AS BLOB));"
                "INSERT INTO messages VALUES('a','c',5,1005,NULL,9000,CAST('a/c#5' AS BLOB));"
                "INSERT INTO messages VALUES('a','d',1,1001,NULL,0,CAST('a/d#1' AS BLOB));"
                "INSERT INTO channel_seq VALUES('a','c',7);"
                "INSERT INTO channel_seq VALUES('a','d',1);"
                "INSERT INTO kv VALUES('ns1','k','v');");

  fx_open(fx);
  sw_history_q_t q = q_all("a", "c");
  expect_heads(fx, &q, HEADS(1, 1, 2, 2, 5, 5));
  assert_int_equal(last_seq(fx, "a", "c"), 7);
  kv_expect(fx, "ns1", "k=v;");
  sw_store_row_t row;
  assert_int_equal(store_find_by_id(fx->s, "a", "c", "m1", &row), 1);
  check_head(&row, "a", "c", 1, 1);
  free(row.blob);
  assert_int_equal(version_wait(fx, "a", "c", 1, 8, 0), 0);
  assert_int_equal(version_wait(fx, "a", "c", 9, 10, 0), -ENOENT);
  assert_int_equal(version_wait(fx, "a", "c", 2, 5, 0), -EEXIST); /* message 5's serial */
  q.by_vseq = true;
  q.after_seq = 2;
  expect_heads(fx, &q, HEADS(5, 5, 1, 8));
  expect_versions(fx, "a", "c", 1, true, 10, -1, SEQS(8));
  assert_int_equal(last_seq(fx, "a", "c"), 8);
  store_prune(fx->s, 9000); /* the upgraded expiry marks work */
  barrier(fx);
  expect_get(fx, "a", "c", 5, -1);
  fx_close(fx);
  static char a[16384];
  expect_upgraded(fx, a, sizeof a);
  assert_non_null(strstr(a, "messages_vseq"));
  assert_non_null(strstr(a, "versions_seq"));
  assert_non_null(strstr(a, "cloud_messages_id"));
}

static void expect_annotations(fx_t *fx, int64_t seq, bool fwd, size_t limit, int64_t after, const int64_t *want,
                               size_t n);

/* Schema steps 2 to 6 as shipped (store_sqlite.c's MIGRATE_V2..V6; the
 * Assistant Cloud tables of v5 are store/cloud_sqlite.c's). */
static const char MIGRATE_V2_TEST[] =
    "ALTER TABLE messages ADD COLUMN vseq INTEGER NOT NULL DEFAULT -1;"
    "UPDATE messages SET vseq = seq;"
    "CREATE UNIQUE INDEX messages_vseq ON messages(app, channel, vseq) WHERE vseq != seq;"
    "CREATE TABLE versions("
    "  app TEXT NOT NULL, channel TEXT NOT NULL, vseq INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL, ts INTEGER NOT NULL, blob BLOB NOT NULL,"
    "  PRIMARY KEY(app, channel, vseq)) WITHOUT ROWID;"
    "CREATE INDEX versions_seq ON versions(app, channel, seq, vseq);"
    "PRAGMA user_version = 2;";
static const char MIGRATE_V3_V4_TEST[] =
    "CREATE TABLE append_log("
    "  id INTEGER PRIMARY KEY, app TEXT NOT NULL, channel TEXT NOT NULL,"
    "  seq INTEGER NOT NULL, vseq INTEGER NOT NULL, ts INTEGER NOT NULL, blob BLOB NOT NULL);"
    "ALTER TABLE versions ADD COLUMN last_vseq INTEGER;"
    "PRAGMA user_version = 3;"
    "CREATE TABLE expiring("
    "  id TEXT PRIMARY KEY, expires INTEGER NOT NULL, size INTEGER NOT NULL, value TEXT NOT NULL);"
    "CREATE INDEX expiring_expires ON expiring(expires, size);"
    "PRAGMA user_version = 4;";
static const char MIGRATE_V6_TEST[] =
    "ALTER TABLE versions ADD COLUMN kind INTEGER;"
    "PRAGMA user_version = 6;";

/* A version 6 file with data opens as version 7 (no per-message index;
 * expiry marks in channel_seq computed from the messages): its history,
 * ids, versions, annotations, logged appends and serials survive, expiry
 * still hides and prunes exactly the expired messages (with their
 * versions), in channels whose expiries are in order or not, and the
 * schema is the one a new file gets. */
static void test_sqlite_upgrade_v6(void **state) {
  fx_t *fx = *state;
  if (!fx->sqlite) {
    skip();
    return;
  }
  /* c: never, 5000, 9000 in seq order, message 4 updated (vseq 9) and
   * annotated (10); d: all at 5000; e: out of order (9000, 5000, never);
   * f: an append logged and not folded (a crash). */
  const char *const steps[] = {SCHEMA_V1_TEST,          MIGRATE_V2_TEST, MIGRATE_V3_V4_TEST,
                               SQ_CLOUD_MIGRATE_V5,     MIGRATE_V6_TEST, NULL};
  old_db_create(fx, steps,
                   "INSERT INTO messages(app, channel, seq, ts, msg_id, expires_at, blob, vseq) VALUES"
                   " ('a','c',1,1001,'m1',0,CAST('a/c#1' AS BLOB),1),"
                   " ('a','c',2,1002,'m2',0,CAST('a/c#2' AS BLOB),2),"
                   " ('a','c',4,1004,'m4',5000,CAST('a/c#4@9' AS BLOB),9),"
                   " ('a','c',5,1005,'m5',5000,CAST('a/c#5' AS BLOB),5),"
                   " ('a','c',7,1007,'m7',9000,CAST('a/c#7' AS BLOB),7),"
                   " ('a','c',8,1008,NULL,9000,CAST('a/c#8' AS BLOB),8),"
                   " ('a','d',1,1001,'d1',5000,CAST('a/d#1' AS BLOB),1),"
                   " ('a','d',2,1002,'d2',5000,CAST('a/d#2' AS BLOB),2),"
                   " ('a','e',1,1001,NULL,9000,CAST('a/e#1' AS BLOB),1),"
                   " ('a','e',2,1002,NULL,5000,CAST('a/e#2' AS BLOB),2),"
                   " ('a','e',3,1003,NULL,0,CAST('a/e#3' AS BLOB),3),"
                   " ('a','f',1,1001,NULL,0,CAST('a/f#1' AS BLOB),1);"
                   "INSERT INTO versions(app, channel, vseq, seq, ts, blob, last_vseq, kind) VALUES"
                   " ('a','c',9,4,5009,CAST('ev a/c#4@9' AS BLOB),NULL,NULL),"
                   " ('a','c',10,4,5010,CAST('ann 10' AS BLOB),NULL,1);"
                   "INSERT INTO append_log(app, channel, seq, vseq, ts, blob) VALUES"
                   " ('a','f',1,2,5002,CAST('|2' AS BLOB));"
                   "INSERT INTO channel_seq VALUES('a','c',10),('a','d',2),('a','e',3),('a','f',1);"
                   "INSERT INTO kv VALUES('ns1','k','v');");

  fx_open(fx);
  sw_history_q_t q = q_all("a", "c");
  expect_heads(fx, &q, HEADS(1, 1, 2, 2, 4, 9, 5, 5, 7, 7, 8, 8));
  q.now = 5000;
  expect_heads(fx, &q, HEADS(1, 1, 2, 2, 7, 7, 8, 8));
  assert_int_equal(last_seq(fx, "a", "c"), 10);
  assert_int_equal(last_seq(fx, "a", "f"), 2);
  kv_expect(fx, "ns1", "k=v;");
  sw_store_row_t row;
  assert_int_equal(store_find_by_id(fx->s, "a", "c", "m4", &row), 1);
  check_head(&row, "a", "c", 4, 9);
  free(row.blob);
  assert_int_equal(store_find_by_id(fx->s, "a", "d", "m4", &row), 0);
  expect_versions(fx, "a", "c", 4, true, 10, -1, SEQS(9));
  expect_annotations(fx, 4, true, 10, -1, SEQS(10));
  sw_store_row_t f = {0};
  assert_int_equal(store_get(fx->s, "a", "f", 1, &f), 1);
  assert_int_equal(f.vseq, 2);
  assert_int_equal(f.blob_len, 7);
  assert_memory_equal(f.blob, "a/f#1|2", 7);
  free(f.blob);
  /* New messages of c, after the upgraded ones. */
  fill(fx, "a", "c", 11, 11, 9000, 0);
  assert_int_equal(pruned_after(fx, 4999), 0);
  assert_int_equal(pruned_after(fx, 5000), 5); /* c 4, 5; d 1, 2; e 2 */
  q.now = 0;
  expect_heads(fx, &q, HEADS(1, 1, 2, 2, 7, 7, 8, 8, 11, 11));
  expect_get(fx, "a", "c", 4, -1);
  expect_versions(fx, "a", "c", 4, true, 10, -1, NOVERS);
  expect_annotations(fx, 4, true, 10, -1, NOVERS);
  assert_int_equal(sqlite_count(fx->path, "SELECT count(*) FROM versions WHERE channel = ?1", "c"), 0);
  sw_history_q_t qd = q_all("a", "d"), qe = q_all("a", "e");
  expect_seqs(fx, &qd, NULL, 0);
  expect_seqs(fx, &qe, SEQS(1, 3));
  assert_int_equal(pruned_after(fx, 9000), 9); /* c 7, 8, 11; e 1 */
  expect_heads(fx, &q, HEADS(1, 1, 2, 2));
  expect_seqs(fx, &qe, SEQS(3));
  assert_int_equal(last_seq(fx, "a", "d"), 2);
  fx_close(fx);
  static char a[16384];
  expect_upgraded(fx, a, sizeof a);
  assert_null(strstr(a, "messages_expiry"));
  assert_null(strstr(a, "messages_msg_id"));
  assert_non_null(strstr(a, "channel_seq_expiry"));
}

static void expect_get_blob(fx_t *fx, const char *app, const char *ch, int64_t seq, int64_t vseq, const char *blob);

/* Schema step 7 as shipped (store_sqlite.c's MIGRATE_V7). */
static const char MIGRATE_V7_TEST[] =
    "DROP INDEX messages_expiry;"
    "DROP INDEX messages_msg_id;"
    "ALTER TABLE channel_seq ADD COLUMN exp_next INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE channel_seq ADD COLUMN exp_from INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE channel_seq ADD COLUMN exp_max INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE channel_seq ADD COLUMN exp_unsorted INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX channel_seq_expiry ON channel_seq(exp_next) WHERE exp_next != 0;"
    "PRAGMA user_version = 7;";

/* A version 7 file (messages WITHOUT ROWID on (app, channel, seq)) opens
 * as version 8 (a rowid table keyed by interned channel ids): history by
 * serial and by vseq, ids, versions, annotations, logged appends, expiry
 * marks and serials survive; new messages continue the serials (a stored
 * seq or an updated head's vseq still clash); count retention, expiry
 * and delete_app work on the copied rows; two apps' channels of one name
 * stay apart; the schema is a new file's. */
static void test_sqlite_upgrade_v7(void **state) {
  fx_t *fx = *state;
  if (!fx->sqlite) {
    skip();
    return;
  }
  const char *const steps[] = {SCHEMA_V1_TEST,  MIGRATE_V2_TEST, MIGRATE_V3_V4_TEST, SQ_CLOUD_MIGRATE_V5,
                               MIGRATE_V6_TEST, MIGRATE_V7_TEST, NULL};
  /* a/c: 4 updated (vseq 9) and annotated (10), 4 and 5 expire at 5000;
   * a/d: never expire, an append to 3 logged and not folded; b/c: another
   * app's channel of the same name. channel_seq with v7's marks. */
  old_db_create(fx, steps,
                "INSERT INTO messages(app, channel, seq, ts, msg_id, expires_at, blob, vseq) VALUES"
                " ('a','c',1,1001,'m1',0,CAST('a/c#1' AS BLOB),1),"
                " ('a','c',2,1002,'m2',0,CAST('a/c#2' AS BLOB),2),"
                " ('a','c',4,1004,'m4',5000,CAST('a/c#4@9' AS BLOB),9),"
                " ('a','c',5,1005,'m5',5000,CAST('a/c#5' AS BLOB),5),"
                " ('a','d',1,1001,NULL,0,CAST('a/d#1' AS BLOB),1),"
                " ('a','d',2,1002,NULL,0,CAST('a/d#2' AS BLOB),2),"
                " ('a','d',3,1003,NULL,0,CAST('a/d#3' AS BLOB),3),"
                " ('b','c',1,1001,'m1',0,CAST('b/c#1' AS BLOB),1),"
                " ('b','c',2,1002,NULL,0,CAST('b/c#2' AS BLOB),2);"
                "INSERT INTO versions(app, channel, vseq, seq, ts, blob, last_vseq, kind) VALUES"
                " ('a','c',9,4,5009,CAST('ev a/c#4@9' AS BLOB),NULL,NULL),"
                " ('a','c',10,4,5010,CAST('ann 10' AS BLOB),NULL,1);"
                "INSERT INTO append_log(app, channel, seq, vseq, ts, blob) VALUES"
                " ('a','d',3,4,5004,CAST('|4' AS BLOB));"
                "INSERT INTO channel_seq VALUES('a','c',10,5000,4,5000,0),('a','d',3,0,0,0,0),"
                " ('b','c',2,0,0,0,0);"
                "INSERT INTO kv VALUES('ns1','k','v');");

  fx_open(fx);
  sw_history_q_t q = q_all("a", "c");
  expect_heads(fx, &q, HEADS(1, 1, 2, 2, 4, 9, 5, 5));
  q.forwards = false;
  q.limit = 2;
  expect_heads(fx, &q, HEADS(5, 5, 4, 9));
  q = q_all("a", "c");
  q.now = 5000;
  expect_heads(fx, &q, HEADS(1, 1, 2, 2));
  assert_int_equal(last_seq(fx, "a", "c"), 10);
  assert_int_equal(last_seq(fx, "a", "d"), 4);
  assert_int_equal(last_seq(fx, "b", "c"), 2);
  kv_expect(fx, "ns1", "k=v;");
  sw_store_row_t row;
  assert_int_equal(store_find_by_id(fx->s, "a", "c", "m4", &row), 1);
  check_head(&row, "a", "c", 4, 9);
  free(row.blob);
  assert_int_equal(store_find_by_id(fx->s, "b", "c", "m1", &row), 1);
  assert_memory_equal(row.blob, "b/c#1", 5);
  free(row.blob);
  expect_versions(fx, "a", "c", 4, true, 10, -1, SEQS(9));
  expect_annotations(fx, 4, true, 10, -1, SEQS(10));
  expect_get_blob(fx, "a", "d", 3, 4, "a/d#3|4");
  sw_history_q_t qb = q_all("b", "c");
  expect_seqs(fx, &qb, SEQS(1, 2));

  /* The serials continue; a stored seq and an updated head's vseq clash. */
  fill(fx, "a", "c", 11, 12, 0, 0);
  recspec_t dup = {"a", "c", 5, 1005, NULL, 0, 0}, clash = {"a", "c", 9, 1009, NULL, 0, 0};
  assert_int_equal(submit_wait(fx, &dup, 1), -EEXIST);
  assert_int_equal(submit_wait(fx, &clash, 1), -EEXIST);
  assert_int_equal(version_wait(fx, "a", "c", 2, 13, 0), 0);
  assert_int_equal(last_seq(fx, "a", "c"), 13);
  q.now = 0;
  q.by_vseq = true;
  q.after_seq = 5;
  expect_heads(fx, &q, HEADS(4, 9, 11, 11, 12, 12, 2, 13));
  fill(fx, "b", "c", 3, 3, 0, 0);
  expect_seqs(fx, &qb, SEQS(1, 2, 3));

  /* Expiry from the copied marks (with the versions), count retention. */
  assert_int_equal(pruned_after(fx, 5000), 2);
  q = q_all("a", "c");
  expect_heads(fx, &q, HEADS(1, 1, 2, 13, 11, 11, 12, 12));
  expect_versions(fx, "a", "c", 4, true, 10, -1, NOVERS);
  expect_annotations(fx, 4, true, 10, -1, NOVERS);
  fill(fx, "a", "d", 5, 5, 0, 2);
  sw_history_q_t qd = q_all("a", "d");
  sw_store_rows_t rows;
  assert_int_equal(store_history(fx->s, &qd, &rows), 0);
  assert_int_equal(rows.n, 1);
  assert_int_equal(rows.rows[0].seq, 5);
  store_rows_free(&rows);

  /* delete_app: b's rows go, a's stay; b/c starts again. */
  assert_int_equal(store_delete_app(fx->s, "b"), 0);
  expect_seqs(fx, &qb, NULL, 0);
  fill(fx, "b", "c", 1, 1, 0, 0);
  expect_seqs(fx, &qb, SEQS(1));
  expect_heads(fx, &q, HEADS(1, 1, 2, 13, 11, 11, 12, 12));
  fx_close(fx);
  static char a[16384];
  expect_upgraded(fx, a, sizeof a);
  assert_non_null(strstr(a, "messages_seq"));
  assert_null(strstr(a, "messages8"));
  expect_heads(fx, &q, HEADS(1, 1, 2, 13, 11, 11, 12, 12));
}

/* One store per SQLite file: a second open, in this process or in a child,
 * is refused with -EBUSY while the first is open (two servers on one data
 * directory would assign the same serials); the lock goes with the close
 * or with the process. */
static void test_sqlite_lock(void **state) {
  fx_t *fx = *state;
  sw_store_t *s2 = NULL;
  assert_int_equal(store_open(&fx->loop, &fx->opts, &s2), -EBUSY);
  assert_null(s2);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    uv_loop_t loop;
    sw_store_t *s3 = NULL;
    if (uv_loop_init(&loop)) _exit(2);
    _exit(store_open(&loop, &fx->opts, &s3) == -EBUSY && !s3 ? 0 : 1);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  /* The data is untouched by the refused opens. */
  fill(fx, "a", "c", 1, 3, 0, 0);
  fx_close(fx);
  /* Free again once closed, and again held by the new owner. */
  fx_open(fx);
  assert_int_equal(store_open(&fx->loop, &fx->opts, &s2), -EBUSY);
  assert_int_equal(last_seq(fx, "a", "c"), 3);
}

/* ------------------------------------------------------------- appends */

/* An append of message seq with serial vseq: the event blob "|<vseq>",
 * timestamp 5000 + vseq, fold hint 0x100 + vseq. */
static sw_store_rec_t app_rec(const char *app, const char *ch, int64_t seq, int64_t vseq, char *buf) {
  int l = snprintf(buf, 32, "|%lld", (long long)vseq);
  return (sw_store_rec_t){.app_id = app,
                          .channel = ch,
                          .op = SW_STORE_APPEND,
                          .seq = seq,
                          .vseq = vseq,
                          .timestamp = 5000 + vseq,
                          .version_blob = (const uint8_t *)buf,
                          .version_blob_len = (size_t)l,
                          .fold_hint = 0x100 + (uint64_t)vseq};
}

static int append_wait(fx_t *fx, const char *app, const char *ch, int64_t seq, int64_t vseq) {
  char buf[32];
  sw_store_rec_t r = app_rec(app, ch, seq, vseq, buf);
  return submit_recs_wait(fx, &r, 1);
}

static void check_row(const sw_store_row_t *r, int64_t seq, int64_t vseq, const char *blob) {
  assert_int_equal(r->seq, seq);
  assert_int_equal(r->vseq, vseq);
  assert_int_equal(r->blob_len, strlen(blob));
  assert_memory_equal(r->blob, blob, r->blob_len);
}

static void expect_get_blob(fx_t *fx, const char *app, const char *ch, int64_t seq, int64_t vseq, const char *blob) {
  sw_store_row_t row = {0};
  assert_int_equal(store_get(fx->s, app, ch, seq, &row), 1);
  check_row(&row, seq, vseq, blob);
  assert_int_equal(row.timestamp, 1000 + seq);
  free(row.blob);
}

/* store_versions of message seq: the serials, each event's blob "|<vseq>"
 * (or a VERSION's "ev ..." blob) and timestamp 5000 + vseq. */
static void expect_append_versions(fx_t *fx, int64_t seq, bool fwd, size_t limit, int64_t after, const int64_t *want,
                                   size_t n) {
  sw_store_rows_t rows;
  assert_int_equal(store_versions(fx->s, "a", "c", seq, fwd, limit, after, &rows), 0);
  assert_int_equal(rows.n, n);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(rows.rows[i].vseq, want[i]);
    assert_int_equal(rows.rows[i].timestamp, 5000 + want[i]);
    char b[64];
    int l = snprintf(b, sizeof b, "|%lld", (long long)want[i]);
    if (rows.rows[i].blob_len != (size_t)l || memcmp(rows.rows[i].blob, b, (size_t)l))
      l = snprintf(b, sizeof b, "ev a/c#%lld@%lld", (long long)seq, (long long)want[i]);
    assert_int_equal(rows.rows[i].blob_len, (size_t)l);
    assert_memory_equal(rows.rows[i].blob, b, (size_t)l);
  }
  store_rows_free(&rows);
}

/* Pages through the heads changed after `after` (by vseq), limit at a time,
 * and checks the (seq, vseq) sequence. */
static void expect_vseq_pages(fx_t *fx, int64_t after, size_t limit, const int64_t *sv, size_t n) {
  size_t got = 0;
  for (;;) {
    sw_history_q_t q = q_all("a", "c");
    q.by_vseq = true;
    q.after_seq = after;
    q.limit = limit;
    sw_store_rows_t rows;
    assert_int_equal(store_history(fx->s, &q, &rows), 0);
    for (size_t i = 0; i < rows.n; i++, got++) {
      assert_true(2 * got + 1 < n);
      assert_int_equal(rows.rows[i].seq, sv[2 * got]);
      assert_int_equal(rows.rows[i].vseq, sv[2 * got + 1]);
      after = rows.rows[i].vseq;
    }
    size_t page = rows.n;
    store_rows_free(&rows);
    if (page < limit) break;
  }
  assert_int_equal(2 * got, n);
}

/* The reads every append test checks: message 1 appended at 2, 3, 5,
 * messages 4 and 6 plain. */
static void check_appended(fx_t *fx) {
  expect_get_blob(fx, "a", "c", 1, 5, "a/c#1|2|3|5");
  sw_history_q_t q = q_all("a", "c");
  sw_store_rows_t rows;
  assert_int_equal(store_history(fx->s, &q, &rows), 0);
  assert_int_equal(rows.n, 3);
  check_row(&rows.rows[0], 1, 5, "a/c#1|2|3|5");
  check_row(&rows.rows[1], 4, 4, "a/c#4");
  check_row(&rows.rows[2], 6, 6, "a/c#6");
  store_rows_free(&rows);
  /* By vseq the appended message sits at its last append, whatever the
   * page size (RTL15b resume order). */
  for (size_t limit = 1; limit <= 4; limit++) expect_vseq_pages(fx, 0, limit, HEADS(4, 4, 1, 5, 6, 6));
  expect_vseq_pages(fx, 4, 1, HEADS(1, 5, 6, 6));
  expect_vseq_pages(fx, 5, 2, HEADS(6, 6));
  expect_append_versions(fx, 1, true, 10, -1, SEQS(2, 3, 5));
  expect_append_versions(fx, 1, false, 10, -1, SEQS(5, 3, 2));
  expect_append_versions(fx, 1, true, 2, -1, SEQS(2, 3));
  expect_append_versions(fx, 1, true, 2, 3, SEQS(5));
  expect_append_versions(fx, 1, false, 2, 5, SEQS(3, 2));
}

static void test_appends(void **state) {
  fx_t *fx = *state;
  fill(fx, "a", "c", 1, 1, 0, 0);
  assert_int_equal(append_wait(fx, "a", "c", 1, 2), 0);
  assert_int_equal(append_wait(fx, "a", "c", 1, 3), 0);
  fill(fx, "a", "c", 4, 4, 0, 0);
  assert_int_equal(append_wait(fx, "a", "c", 1, 5), 0);
  fill(fx, "a", "c", 6, 6, 0, 0);
  check_appended(fx);
  assert_int_equal(last_seq(fx, "a", "c"), 6);
  /* The same rules as VERSION. */
  assert_int_equal(append_wait(fx, "a", "c", 9, 10), -ENOENT);
  assert_int_equal(append_wait(fx, "a", "c", 1, 5), -EEXIST);
  assert_int_equal(append_wait(fx, "a", "c", 1, 4), -EEXIST);
  char buf[32];
  sw_store_rec_t bad = app_rec("a", "c", 1, 7, buf);
  bad.blob = (const uint8_t *)"x";
  bad.blob_len = 1;
  assert_int_equal(store_submit(fx->s, &bad, 1, on_done, NULL), -EINVAL);
  check_appended(fx);
  /* Clean close and reopen: the log is folded into the heads. */
  if (fx->sqlite) fx_reopen(fx);
  check_appended(fx);
  /* An update takes over the appended head; appends continue from it. */
  assert_int_equal(version_wait(fx, "a", "c", 1, 7, 0), 0);
  assert_int_equal(append_wait(fx, "a", "c", 1, 8), 0);
  expect_get_blob(fx, "a", "c", 1, 8, "a/c#1@7|8");
  expect_append_versions(fx, 1, true, 10, -1, SEQS(2, 3, 5, 7, 8));
  expect_vseq_pages(fx, 0, 1, HEADS(4, 4, 6, 6, 1, 8));
  if (fx->sqlite) fx_reopen(fx);
  expect_get_blob(fx, "a", "c", 1, 8, "a/c#1@7|8");
  expect_append_versions(fx, 1, false, 10, -1, SEQS(8, 7, 5, 3, 2));
  assert_int_equal(last_seq(fx, "a", "c"), 8);
}

/* Appends and an update of one message in one submission. */
static void test_appends_batched(void **state) {
  fx_t *fx = *state;
  fill(fx, "a", "c", 1, 1, 0, 0);
  char b[4][32];
  vbufs_t vb;
  sw_store_rec_t r[4] = {app_rec("a", "c", 1, 2, b[0]), app_rec("a", "c", 1, 3, b[1]),
                         ver_rec("a", "c", 1, 4, 0, &vb), app_rec("a", "c", 1, 5, b[3])};
  assert_int_equal(submit_recs_wait(fx, r, 4), 0);
  expect_get_blob(fx, "a", "c", 1, 5, "a/c#1@4|5");
  expect_append_versions(fx, 1, true, 10, -1, SEQS(2, 3, 4, 5));
  /* A failing record rolls the whole submission back, appends included. */
  sw_store_rec_t f[2] = {app_rec("a", "c", 1, 6, b[0]), app_rec("a", "c", 9, 10, b[1])};
  assert_int_equal(submit_recs_wait(fx, f, 2), -ENOENT);
  expect_get_blob(fx, "a", "c", 1, 5, "a/c#1@4|5");
  if (fx->sqlite) fx_reopen(fx);
  expect_get_blob(fx, "a", "c", 1, 5, "a/c#1@4|5");
  expect_append_versions(fx, 1, true, 10, -1, SEQS(2, 3, 4, 5));
  /* An append's serial is the channel's at once, folded or not. */
  assert_int_equal(append_wait(fx, "a", "c", 1, 6), 0);
  assert_int_equal(last_seq(fx, "a", "c"), 6);
  if (fx->sqlite) fx_reopen(fx);
  assert_int_equal(last_seq(fx, "a", "c"), 6);
}


/* The fold gets each append's fold_hint with its event. */
static void test_append_fold_hints(void **state) {
  fx_t *fx = *state;
  fill(fx, "a", "c", 1, 1, 0, 0);
  n_fold_hints_seen = 0;
  assert_int_equal(append_wait(fx, "a", "c", 1, 2), 0);
  assert_int_equal(append_wait(fx, "a", "c", 1, 3), 0);
  expect_get_blob(fx, "a", "c", 1, 3, "a/c#1|2|3");
  assert_true(n_fold_hints_seen >= 2);
  assert_int_equal(fold_hints_seen[0], 0x102);
  assert_int_equal(fold_hints_seen[1], 0x103);
}

/* A process that dies with appends only in the log: the next open folds
 * them into the heads and empties the log. */
static void test_appends_crash_recovery(void **state) {
  fx_t *fx = *state;
  if (!fx->sqlite) {
    skip();
    return;
  }
  fx_close(fx);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* The child: its own loop and store; exits without closing either. */
    fx_t c = *fx;
    if (uv_loop_init(&c.loop) || store_open(&c.loop, &c.opts, &c.s)) _exit(2);
    fx = &c;
    fill(fx, "a", "c", 1, 1, 0, 0);
    assert_int_equal(append_wait(fx, "a", "c", 1, 2), 0);
    assert_int_equal(append_wait(fx, "a", "c", 1, 3), 0);
    fill(fx, "a", "c", 4, 4, 0, 0);
    assert_int_equal(append_wait(fx, "a", "c", 1, 5), 0);
    fill(fx, "a", "c", 6, 6, 0, 0);
    _exit(0);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_int_equal(sqlite_count(fx->path, "SELECT count(*) FROM append_log", NULL), 3);
  n_fold_hints_seen = 0;
  fx_open(fx);
  check_appended(fx);
  /* Hints live in memory only: events read back from the log have none. */
  assert_true(n_fold_hints_seen > 0);
  for (size_t i = 0; i < n_fold_hints_seen && i < 8; i++) assert_int_equal(fold_hints_seen[i], 0);
  assert_int_equal(last_seq(fx, "a", "c"), 6);
  fx_close(fx);
  assert_int_equal(sqlite_count(fx->path, "SELECT count(*) FROM append_log", NULL), 0);
  /* One bundle row holds the three. */
  assert_int_equal(sqlite_count(fx->path, "SELECT count(*) FROM versions", NULL), 1);
  fx_open(fx);
  check_appended(fx);
}

/* Appends of several messages in one batch go in multi-row log statements;
 * the log ids each event gets from it decide which log rows a fold may
 * delete. A process dies after one message (2, 261 appends) was folded
 * and the log truncated up to the first row still needed (its rows before
 * message 1's first append), with message 1's appends only in the log
 * (unless it fell quiet for 300 ms meanwhile and was folded too): the
 * next open has every append of both. */
/* A process killed after retention deleted a message whose appends were
 * not folded yet: their serials were only in the log (the fold would have
 * raised the channel's serial to them), and the reopened store must still
 * count them, so the next publish does not reuse one. */
static void test_appends_crash_after_message_pruned(void **state) {
  fx_t *fx = *state;
  if (!fx->sqlite) {
    skip();
    return;
  }
  fx_close(fx);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    fx_t c = *fx;
    if (uv_loop_init(&c.loop) || store_open(&c.loop, &c.opts, &c.s)) _exit(2);
    fx = &c;
    fill(fx, "a", "g", 1, 1, 5000, 0);
    if (append_wait(fx, "a", "g", 1, 2) || append_wait(fx, "a", "g", 1, 3)) _exit(3);
    store_prune(fx->s, 5000); /* message 1 goes, its appends are not folded */
    barrier(fx);
    _exit(0);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_int_equal(sqlite_count(fx->path, "SELECT count(*) FROM messages", NULL), 0);
  /* 2: the case under test. 0 only if the child stalled past the fold's
   * 300 ms quiet time (a loaded machine) and the fold ran first: the
   * serial must be 3 then too, so that is not a failure. */
  int64_t logged = sqlite_count(fx->path, "SELECT count(*) FROM append_log", NULL);
  assert_true(logged == 2 || logged == 0);
  if (logged == 0) fprintf(stderr, "note: the appends were folded before the kill; the crash case was not reached\n");
  fx_open(fx);
  assert_int_equal(last_seq(fx, "a", "g"), 3);
  fx_reopen(fx);
  assert_int_equal(last_seq(fx, "a", "g"), 3);
}

static void test_appends_crash_after_partial_fold(void **state) {
  fx_t *fx = *state;
  if (!fx->sqlite) {
    skip();
    return;
  }
  enum { N = 264 };
  static const int ones[] = {40, 41, 100, 230}; /* positions of message 1's appends */
  fx_close(fx);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    fx_t c = *fx;
    if (uv_loop_init(&c.loop) || store_open(&c.loop, &c.opts, &c.s)) _exit(2);
    fx = &c;
    fill(fx, "a", "c", 1, 2, 0, 0);
    static char bufs[N][32];
    static sw_store_rec_t r[N];
    for (int k = 0; k < N; k++) {
      bool one = k == ones[0] || k == ones[1] || k == ones[2] || k == ones[3];
      r[k] = app_rec("a", "c", one ? 1 : 2, 3 + k, bufs[k]);
    }
    assert_int_equal(submit_recs_wait(fx, r, N), 0);
    /* One more append makes message 2 (256 events or more) due: folded in
     * that batch, and the log truncated up to message 1's first row. */
    assert_int_equal(append_wait(fx, "a", "c", 2, 3 + N), 0);
    _exit(0);
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  fx_open(fx);
  char want1[64], want2[4096];
  int l1 = snprintf(want1, sizeof want1, "a/c#1"), l2 = snprintf(want2, sizeof want2, "a/c#2");
  for (int k = 0; k <= N; k++) {
    bool one = k < N && (k == ones[0] || k == ones[1] || k == ones[2] || k == ones[3]);
    if (one)
      l1 += snprintf(want1 + l1, sizeof want1 - (size_t)l1, "|%d", 3 + k);
    else
      l2 += snprintf(want2 + l2, sizeof want2 - (size_t)l2, "|%d", 3 + k);
  }
  sw_store_row_t row = {0};
  assert_int_equal(store_get(fx->s, "a", "c", 1, &row), 1);
  check_row(&row, 1, 3 + ones[3], want1);
  free(row.blob);
  assert_int_equal(store_get(fx->s, "a", "c", 2, &row), 1);
  check_row(&row, 2, 3 + N, want2);
  free(row.blob);
  assert_int_equal(last_seq(fx, "a", "c"), 3 + N);
}

static void on_tick(uv_timer_t *h) { (*(int *)h->data)++; }

/* Runs the loop until the append log is empty, or for max_ticks periods. */
static void wait_log_empty(fx_t *fx, uint64_t period_ms, int max_ticks) {
  int ticks = 0;
  uv_timer_t t;
  uv_timer_init(&fx->loop, &t);
  t.data = &ticks;
  uv_timer_start(&t, on_tick, period_ms, period_ms);
  while (ticks < max_ticks && sqlite_count(fx->path, "SELECT count(*) FROM append_log", NULL) > 0)
    uv_run(&fx->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&fx->loop, UV_RUN_NOWAIT);
}

/* Left running, the store folds a message's appends once enough of them
 * wait, or once they are old enough, and truncates the log. */
static void test_appends_folded_in_background(void **state) {
  fx_t *fx = *state;
  if (!fx->sqlite) {
    skip();
    return;
  }
  fill(fx, "a", "c", 1, 1, 0, 0);
  enum { N = 300 };
  static char bufs[N][32];
  static sw_store_rec_t r[N];
  for (int i = 0; i < N; i++) r[i] = app_rec("a", "c", 1, 2 + i, bufs[i]);
  assert_int_equal(submit_recs_wait(fx, r, N), 0);
  wait_log_empty(fx, 100, 50);
  assert_int_equal(sqlite_count(fx->path, "SELECT count(*) FROM append_log", NULL), 0);
  assert_int_equal(sqlite_count(fx->path, "SELECT count(*) FROM versions", NULL), 1);
  /* Listed one by one, from inside the bundle too. */
  sw_store_rows_t vr;
  assert_int_equal(store_versions(fx->s, "a", "c", 1, true, 1000, -1, &vr), 0);
  assert_int_equal(vr.n, N);
  for (size_t i = 0; i < vr.n; i++) assert_int_equal(vr.rows[i].vseq, 2 + (int64_t)i);
  store_rows_free(&vr);
  expect_append_versions(fx, 1, true, 3, 50, SEQS(51, 52, 53));
  expect_append_versions(fx, 1, false, 3, 100, SEQS(99, 98, 97));
  expect_append_versions(fx, 1, false, 2, -1, SEQS(N + 1, N));
  assert_int_equal(sqlite_count(fx->path, "SELECT vseq FROM messages WHERE seq = 1", NULL), N + 1);
  sw_store_row_t row = {0};
  assert_int_equal(store_get(fx->s, "a", "c", 1, &row), 1);
  assert_int_equal(row.vseq, N + 1);
  char want[8];
  snprintf(want, sizeof want, "|%d", N + 1);
  assert_true(row.blob_len > strlen(want));
  assert_memory_equal(row.blob + row.blob_len - strlen(want), want, strlen(want));
  free(row.blob);
  /* A few appends: folded once the message has been quiet a moment. */
  assert_int_equal(append_wait(fx, "a", "c", 1, N + 2), 0);
  assert_int_equal(append_wait(fx, "a", "c", 1, N + 3), 0);
  assert_int_equal(sqlite_count(fx->path, "SELECT count(*) FROM append_log", NULL), 2);
  uint64_t t0 = uv_hrtime();
  wait_log_empty(fx, 50, 100);
  assert_int_equal(sqlite_count(fx->path, "SELECT count(*) FROM append_log", NULL), 0);
  assert_true(uv_hrtime() - t0 >= 200 * 1000000ull); /* not folded at once */
  assert_int_equal(sqlite_count(fx->path, "SELECT vseq FROM messages WHERE seq = 1", NULL), N + 3);
}

/* Interleaved streams of appends, more than one round deletes from the
 * log: the log is emptied in chunks over several rounds, and every head
 * ends with its last append. */
static void test_appends_log_truncated_in_chunks(void **state) {
  fx_t *fx = *state;
  if (!fx->sqlite) {
    skip();
    return;
  }
  fill(fx, "a", "c", 1, 4, 0, 0);
  enum { N = 1600, PER = 100 };
  static char bufs[N][32];
  static sw_store_rec_t r[N];
  for (int i = 0; i < N; i++) r[i] = app_rec("a", "c", 1 + i % 4, 5 + i, bufs[i]);
  for (int i = 0; i < N; i += PER) assert_int_equal(submit_recs_wait(fx, r + i, PER), 0);
  wait_log_empty(fx, 100, 150);
  assert_int_equal(sqlite_count(fx->path, "SELECT count(*) FROM append_log", NULL), 0);
  for (int k = 0; k < 4; k++) {
    char q[96];
    snprintf(q, sizeof q, "SELECT vseq FROM messages WHERE seq = %d", 1 + k);
    assert_int_equal(sqlite_count(fx->path, q, NULL), 5 + N - 4 + k);
  }
}

#define BOTH(t)                                                   \
  cmocka_unit_test_setup_teardown(t, setup_sqlite, teardown),     \
      cmocka_unit_test_setup_teardown(t, setup_memory, teardown)

/* ------------------------------------------------------------ annotations */

/* An annotation of message seq with serial vseq: the event "ann <vseq>",
 * timestamp 5000 + vseq, and with_head the new head "app/ch#seq@vseq" (as
 * when its summary changed), else none. */
static sw_store_rec_t ann_rec(const char *app, const char *ch, int64_t seq, int64_t vseq, bool with_head,
                              vbufs_t *vb) {
  sw_store_rec_t r = ver_rec(app, ch, seq, vseq, 0, vb);
  r.op = SW_STORE_ANNOTATION;
  r.version_blob_len = (size_t)snprintf(vb->ev, sizeof vb->ev, "ann %lld", (long long)vseq);
  if (!with_head) {
    r.blob = NULL;
    r.blob_len = 0;
  }
  return r;
}

static int ann_wait(fx_t *fx, int64_t seq, int64_t vseq, bool with_head) {
  vbufs_t vb;
  sw_store_rec_t r = ann_rec("a", "c", seq, vseq, with_head, &vb);
  return submit_recs_wait(fx, &r, 1);
}

static void expect_annotations(fx_t *fx, int64_t seq, bool fwd, size_t limit, int64_t after, const int64_t *want,
                               size_t n) {
  sw_store_rows_t rows;
  assert_int_equal(store_annotations(fx->s, "a", "c", seq, fwd, limit, after, &rows), 0);
  assert_int_equal(rows.n, n);
  for (size_t i = 0; i < n; i++) {
    char b[64];
    int l = snprintf(b, sizeof b, "ann %lld", (long long)want[i]);
    assert_int_equal(rows.rows[i].seq, seq);
    assert_int_equal(rows.rows[i].vseq, want[i]);
    assert_int_equal(rows.rows[i].timestamp, 5000 + want[i]);
    assert_int_equal(rows.rows[i].blob_len, (size_t)l);
    assert_memory_equal(rows.rows[i].blob, b, (size_t)l);
  }
  store_rows_free(&rows);
}

/* SW_STORE_ANNOTATION: kept with their message, listed apart from its
 * versions, replacing the head only when they bring one (a resume then
 * finds the message by the annotation's serial), refused for a message not
 * stored or a stale serial, atomic in a batch, persistent, and deleted with
 * their message. */
static void test_annotations(void **state) {
  fx_t *fx = *state;
  fill(fx, "a", "c", 1, 3, 0, 0);
  assert_int_equal(ann_wait(fx, 1, 4, false), 0);
  expect_get(fx, "a", "c", 1, 1); /* no head: unchanged */
  assert_int_equal(ann_wait(fx, 1, 5, true), 0);
  expect_get(fx, "a", "c", 1, 5);
  assert_int_equal(version_wait(fx, "a", "c", 1, 6, 0), 0);
  assert_int_equal(ann_wait(fx, 2, 7, false), 0);
  assert_int_equal(ann_wait(fx, 1, 8, true), 0);
  expect_get(fx, "a", "c", 1, 8);
  expect_get(fx, "a", "c", 2, 2);
  expect_annotations(fx, 1, true, 10, -1, SEQS(4, 5, 8));
  expect_annotations(fx, 1, false, 10, -1, SEQS(8, 5, 4));
  expect_annotations(fx, 1, true, 1, 4, SEQS(5));
  expect_annotations(fx, 1, false, 10, 8, SEQS(5, 4));
  expect_annotations(fx, 2, true, 10, -1, SEQS(7));
  expect_annotations(fx, 3, true, 10, -1, NOVERS);
  expect_versions(fx, "a", "c", 1, true, 10, -1, SEQS(6)); /* versions only */
  sw_history_q_t q = q_all("a", "c");
  q.by_vseq = true;
  q.after_seq = 3;
  expect_heads(fx, &q, HEADS(1, 8));
  assert_int_equal(last_seq(fx, "a", "c"), 8);
  /* Refusals. */
  assert_int_equal(ann_wait(fx, 9, 10, false), -ENOENT);
  assert_int_equal(ann_wait(fx, 9, 10, true), -ENOENT);
  assert_int_equal(ann_wait(fx, 1, 7, false), -EEXIST); /* not above the head's 8 */
  assert_int_equal(ann_wait(fx, 1, 7, true), -EEXIST);
  assert_int_equal(ann_wait(fx, 3, 8, false), -EEXIST); /* message 1's annotation */
  /* A failing batch leaves nothing behind. */
  vbufs_t vb[2];
  sw_store_rec_t recs[2] = {ann_rec("a", "c", 3, 9, true, &vb[0]), ann_rec("a", "c", 9, 10, false, &vb[1])};
  assert_int_equal(submit_recs_wait(fx, recs, 2), -ENOENT);
  expect_get(fx, "a", "c", 3, 3);
  expect_annotations(fx, 3, true, 10, -1, NOVERS);
  if (fx->sqlite) {
    fx_reopen(fx);
    expect_annotations(fx, 1, true, 10, -1, SEQS(4, 5, 8));
    expect_versions(fx, "a", "c", 1, true, 10, -1, SEQS(6));
    expect_get(fx, "a", "c", 1, 8);
  }
  /* Count retention takes a message's annotations with it. */
  fill(fx, "a", "c", 11, 11, 0, 1);
  expect_annotations(fx, 1, true, 10, -1, NOVERS);
  expect_annotations(fx, 2, true, 10, -1, NOVERS);
  expect_get(fx, "a", "c", 1, -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      BOTH(test_history_order_and_limit),
      BOTH(test_history_bounds),
      BOTH(test_expiry_and_prune),
      BOTH(test_prune_many_chunks),
      BOTH(test_expiry_out_of_order),
      BOTH(test_serial_after_all_pruned),
      BOTH(test_expiry_order_after_reopen),
      cmocka_unit_test_setup_teardown(test_sqlite_serial_after_crash, setup_sqlite, teardown),
      BOTH(test_expiry_marks_merge),
      BOTH(test_prune_many_channels),
      BOTH(test_count_retention),
      BOTH(test_last_seq_monotonic),
      BOTH(test_find_by_id),
      BOTH(test_delete_app),
      BOTH(test_kv),
      BOTH(test_expiring),
      BOTH(test_kv_async),
      cmocka_unit_test_setup_teardown(test_kv_async_busy, setup_sqlite, teardown),
      BOTH(test_commit_latency),
      BOTH(test_group_commit),
      BOTH(test_submit_ud),
      cmocka_unit_test_setup_teardown(test_max_batch, setup_sqlite_b10, teardown),
      cmocka_unit_test_setup_teardown(test_max_batch, setup_memory_b10, teardown),
      BOTH(test_failure_isolated),
      BOTH(test_close_with_pending),
      BOTH(test_reads_beside_writes),
      BOTH(test_edge_cases),
      cmocka_unit_test_setup_teardown(test_sqlite_schema, setup_sqlite, teardown),
      BOTH(test_versions_head),
      BOTH(test_versions_by_vseq),
      BOTH(test_store_get),
      BOTH(test_versions_list),
      BOTH(test_versions_failures),
      BOTH(test_versions_retention),
      BOTH(test_versions_beside_writes),
      cmocka_unit_test_setup_teardown(test_sqlite_upgrade_v1, setup_sqlite, teardown),
      cmocka_unit_test_setup_teardown(test_sqlite_upgrade_v6, setup_sqlite, teardown),
      cmocka_unit_test_setup_teardown(test_sqlite_upgrade_v7, setup_sqlite, teardown),
      cmocka_unit_test_setup_teardown(test_sqlite_lock, setup_sqlite, teardown),
      BOTH(test_annotations),
      BOTH(test_appends),
      BOTH(test_appends_batched),
      BOTH(test_append_fold_hints),
      cmocka_unit_test_setup_teardown(test_appends_crash_recovery, setup_sqlite, teardown),
      cmocka_unit_test_setup_teardown(test_appends_crash_after_message_pruned, setup_sqlite, teardown),
      cmocka_unit_test_setup_teardown(test_appends_crash_after_partial_fold, setup_sqlite, teardown),
      cmocka_unit_test_setup_teardown(test_appends_folded_in_background, setup_sqlite, teardown),
      cmocka_unit_test_setup_teardown(test_appends_log_truncated_in_chunks, setup_sqlite, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
