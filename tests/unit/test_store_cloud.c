/* test_store_cloud.c: the store's Assistant Cloud threads and messages
 * (store.h, "Assistant Cloud") against both backends: SQLite in a mkdtemp
 * directory and memory. Durability across a reopen is SQLite only. */
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

#define WAIT_MS 20000

typedef struct fx {
  uv_loop_t loop;
  sw_store_t *s;
  bool sqlite;
  char dir[64];
  char path[128];
  sw_store_opts_t opts;
} fx_t;

static int setup_common(void **state, bool sqlite) {
  fx_t *fx = calloc(1, sizeof *fx);
  if (!fx || uv_loop_init(&fx->loop)) return -1;
  fx->sqlite = sqlite;
  if (sqlite) {
    strcpy(fx->dir, "/tmp/sw_cloud_XXXXXX");
    if (!mkdtemp(fx->dir)) return -1;
    snprintf(fx->path, sizeof fx->path, "%s/store.db", fx->dir);
    fx->opts.path = fx->path;
  }
  if (store_open(&fx->loop, &fx->opts, &fx->s)) return -1;
  *state = fx;
  return 0;
}

static int setup_sqlite(void **state) { return setup_common(state, true); }
static int setup_memory(void **state) { return setup_common(state, false); }

static void fx_close(fx_t *fx) {
  if (!fx->s) return;
  store_close(fx->s);
  fx->s = NULL;
  uv_run(&fx->loop, UV_RUN_DEFAULT);
}

static int teardown(void **state) {
  fx_t *fx = *state;
  fx_close(fx);
  int rc = uv_loop_close(&fx->loop);
  if (fx->sqlite) {
    char p[160];
    const char *sfx[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
      snprintf(p, sizeof p, "%s%s", fx->path, sfx[i]);
      unlink(p);
    }
    rmdir(fx->dir);
  }
  free(fx);
  return rc == 0 ? 0 : -1;
}

/* ------------------------------------------------------------- helpers */

typedef struct wait {
  int calls, status;
  sw_cloud_result_t res;
} wait_t;

static void on_done(void *ud, int status, const sw_cloud_result_t *res) {
  wait_t *w = ud;
  w->calls++;
  w->status = status;
  w->res = *res;
}

static void on_timeout(uv_timer_t *h) { *(bool *)h->data = true; }

/* Runs one write and returns its status (the result in *res if given). */
static int write_wait(fx_t *fx, const sw_cloud_op_t *op, sw_cloud_result_t *res) {
  wait_t w = {0};
  assert_int_equal(store_cloud_write(fx->s, op, on_done, &w), 0);
  bool timed_out = false;
  uv_timer_t timer;
  uv_timer_init(&fx->loop, &timer);
  timer.data = &timed_out;
  uv_timer_start(&timer, on_timeout, WAIT_MS, 0);
  while (!w.calls && !timed_out) uv_run(&fx->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(&fx->loop, UV_RUN_NOWAIT);
  assert_false(timed_out);
  assert_int_equal(w.calls, 1);
  if (res) *res = w.res;
  return w.status;
}

static int64_t clock_ms = 1000;

static int create_thread(fx_t *fx, const char *ws, const char *id, const char *ext, bool upsert,
                         sw_cloud_result_t *res) {
  sw_cloud_op_t op = {.kind = SW_CLOUD_THREAD_CREATE, .app_id = "a", .workspace = ws, .thread_id = id,
                      .external_id = ext, .upsert = upsert, .title = "t", .metadata = "{\"k\":1}",
                      .last_message_at = -1, .now = clock_ms++};
  return write_wait(fx, &op, res);
}

static int create_msg(fx_t *fx, const char *ws, const char *thread, const char *id, const char *parent,
                      const char *ext, sw_cloud_result_t *res) {
  sw_cloud_op_t op = {.kind = SW_CLOUD_MSG_CREATE, .app_id = "a", .workspace = ws, .thread_id = thread,
                      .id = id, .parent_id = parent, .external_id = ext, .format = "aui/v0",
                      .content = "{\"text\":\"hi\"}", .now = clock_ms++};
  return write_wait(fx, &op, res);
}

static sw_cloud_thread_q_t tq(const char *ws) {
  return (sw_cloud_thread_q_t){.app_id = "a", .workspace = ws, .archived = -1, .limit = 100};
}

/* The ids of a thread list, "," separated, into buf. */
static const char *thread_ids(fx_t *fx, const sw_cloud_thread_q_t *q, char *buf, size_t cap) {
  sw_cloud_threads_t l;
  assert_int_equal(store_cloud_threads(fx->s, q, &l), 0);
  buf[0] = '\0';
  for (size_t i = 0; i < l.n; i++) {
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, "%s%s", i ? "," : "", l.v[i].id);
  }
  store_cloud_threads_free(&l);
  return buf;
}

static const char *msg_ids(fx_t *fx, const sw_cloud_msg_q_t *q, char *buf, size_t cap) {
  sw_cloud_msgs_t l;
  assert_int_equal(store_cloud_messages(fx->s, q, &l), 0);
  buf[0] = '\0';
  for (size_t i = 0; i < l.n; i++) {
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, "%s%s", i ? "," : "", l.v[i].id);
  }
  store_cloud_msgs_free(&l);
  return buf;
}

/* --------------------------------------------------------------- tests */

/* Create, read, update, delete a thread; upsert by external_id. */
static void test_thread_crud(void **state) {
  fx_t *fx = *state;
  sw_cloud_result_t res;
  assert_int_equal(create_thread(fx, "w1", "t1", "ext-1", false, &res), 0);
  assert_string_equal(res.id, "t1");
  assert_false(res.existed);
  /* The same external id: refused without upsert, the existing id with it. */
  assert_int_equal(create_thread(fx, "w1", "t2", "ext-1", false, NULL), -EEXIST);
  assert_int_equal(create_thread(fx, "w1", "t2", "ext-1", true, &res), 0);
  assert_string_equal(res.id, "t1");
  assert_true(res.existed);
  /* Another workspace may use it. */
  assert_int_equal(create_thread(fx, "w2", "t2", "ext-1", false, &res), 0);

  sw_cloud_thread_q_t q = tq("w1");
  q.id = "t1";
  sw_cloud_threads_t l;
  assert_int_equal(store_cloud_threads(fx->s, &q, &l), 0);
  assert_int_equal(l.n, 1);
  assert_string_equal(l.v[0].title, "t");
  assert_string_equal(l.v[0].metadata, "{\"k\":1}");
  assert_string_equal(l.v[0].external_id, "ext-1");
  assert_false(l.v[0].is_archived);
  int64_t created = l.v[0].created_at;
  assert_int_equal(l.v[0].last_message_at, created);
  store_cloud_threads_free(&l);

  sw_cloud_op_t up = {.kind = SW_CLOUD_THREAD_UPDATE, .app_id = "a", .workspace = "w1", .thread_id = "t1",
                      .title = "renamed", .last_message_at = 5, .is_archived = 1, .now = 9999};
  assert_int_equal(write_wait(fx, &up, NULL), 0);
  assert_int_equal(store_cloud_threads(fx->s, &q, &l), 0);
  assert_int_equal(l.n, 1);
  assert_string_equal(l.v[0].title, "renamed");
  assert_string_equal(l.v[0].metadata, "{\"k\":1}"); /* unchanged */
  assert_int_equal(l.v[0].last_message_at, 5);
  assert_int_equal(l.v[0].updated_at, 9999);
  assert_int_equal(l.v[0].created_at, created);
  assert_true(l.v[0].is_archived);
  store_cloud_threads_free(&l);

  sw_cloud_op_t del = {.kind = SW_CLOUD_THREAD_DELETE, .app_id = "a", .workspace = "w1", .thread_id = "t1"};
  assert_int_equal(write_wait(fx, &del, NULL), 0);
  assert_int_equal(store_cloud_threads(fx->s, &q, &l), 0);
  assert_int_equal(l.n, 0);
  assert_int_equal(write_wait(fx, &del, NULL), -ENOENT);
  assert_int_equal(write_wait(fx, &up, NULL), -ENOENT);
}

/* Nothing of one workspace is reachable from another: reads see no rows,
 * writes fail with -ENOENT and change nothing. */
static void test_workspace_isolation(void **state) {
  fx_t *fx = *state;
  assert_int_equal(create_thread(fx, "w1", "t1", NULL, false, NULL), 0);
  assert_int_equal(create_msg(fx, "w1", "t1", "m1", NULL, NULL, NULL), 0);
  char buf[256];
  sw_cloud_thread_q_t q = tq("w2");
  assert_string_equal(thread_ids(fx, &q, buf, sizeof buf), "");
  q.id = "t1";
  assert_string_equal(thread_ids(fx, &q, buf, sizeof buf), "");
  sw_cloud_msg_q_t mq = {.app_id = "a", .workspace = "w2", .thread_id = "t1", .limit = 100};
  assert_string_equal(msg_ids(fx, &mq, buf, sizeof buf), "");
  /* The same names in another app are another workspace too. */
  sw_cloud_thread_q_t qa = {.app_id = "b", .workspace = "w1", .archived = -1, .limit = 100};
  assert_string_equal(thread_ids(fx, &qa, buf, sizeof buf), "");

  sw_cloud_op_t ops[] = {
      {.kind = SW_CLOUD_THREAD_UPDATE, .title = "x", .last_message_at = -1, .is_archived = -1},
      {.kind = SW_CLOUD_THREAD_DELETE},
      {.kind = SW_CLOUD_MSG_CREATE, .id = "m2", .format = "f", .content = "{}"},
      {.kind = SW_CLOUD_MSG_UPDATE, .id = "m1", .content = "{}"},
      {.kind = SW_CLOUD_MSG_DELETE, .ids = (const char *[]){"m1"}, .n_ids = 1},
      {.kind = SW_CLOUD_FEEDBACK, .id = "m1", .feedback_id = "f1", .feedback_type = "positive"},
  };
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    ops[i].app_id = "a";
    ops[i].workspace = "w2";
    ops[i].thread_id = "t1";
    assert_int_equal(write_wait(fx, &ops[i], NULL), -ENOENT);
  }
  mq.workspace = "w1";
  assert_string_equal(msg_ids(fx, &mq, buf, sizeof buf), "m1");
  sw_cloud_msgs_t l;
  assert_int_equal(store_cloud_messages(fx->s, &mq, &l), 0);
  assert_string_equal(l.v[0].content, "{\"text\":\"hi\"}");
  store_cloud_msgs_free(&l);
}

/* The list: most recent last_message_at first, filters, keyset paging. */
static void test_thread_list(void **state) {
  fx_t *fx = *state;
  char id[8], buf[512];
  for (int i = 0; i < 6; i++) {
    snprintf(id, sizeof id, "t%d", i);
    char ext[8];
    snprintf(ext, sizeof ext, "e%d", i);
    assert_int_equal(create_thread(fx, "w", id, ext, false, NULL), 0);
  }
  sw_cloud_thread_q_t q = tq("w");
  assert_string_equal(thread_ids(fx, &q, buf, sizeof buf), "t5,t4,t3,t2,t1,t0");
  /* A message moves its thread to the top. */
  assert_int_equal(create_msg(fx, "w", "t1", "m1", NULL, NULL, NULL), 0);
  assert_string_equal(thread_ids(fx, &q, buf, sizeof buf), "t1,t5,t4,t3,t2,t0");
  /* Archive t4 and t2. */
  for (int i = 4; i >= 2; i -= 2) {
    snprintf(id, sizeof id, "t%d", i);
    sw_cloud_op_t up = {.kind = SW_CLOUD_THREAD_UPDATE, .app_id = "a", .workspace = "w", .thread_id = id,
                        .last_message_at = -1, .is_archived = 1, .now = clock_ms++};
    assert_int_equal(write_wait(fx, &up, NULL), 0);
  }
  q.archived = 1;
  assert_string_equal(thread_ids(fx, &q, buf, sizeof buf), "t4,t2");
  q.archived = 0;
  assert_string_equal(thread_ids(fx, &q, buf, sizeof buf), "t1,t5,t3,t0");
  q.archived = -1;
  q.external_id = "e3";
  assert_string_equal(thread_ids(fx, &q, buf, sizeof buf), "t3");
  q.external_id = NULL;
  /* Pages of 2, each after the last of the one before. */
  q.limit = 2;
  assert_string_equal(thread_ids(fx, &q, buf, sizeof buf), "t1,t5");
  q.after = "t5";
  assert_string_equal(thread_ids(fx, &q, buf, sizeof buf), "t4,t3");
  q.after = "t3";
  assert_string_equal(thread_ids(fx, &q, buf, sizeof buf), "t2,t0");
  q.after = "t0";
  assert_string_equal(thread_ids(fx, &q, buf, sizeof buf), "");
  /* A cursor that names no thread of the workspace gives no rows. */
  q.after = "nope";
  assert_string_equal(thread_ids(fx, &q, buf, sizeof buf), "");
  /* Equal last_message_at: id descending keeps the order total. */
  sw_cloud_op_t same[2] = {
      {.kind = SW_CLOUD_THREAD_CREATE, .app_id = "a", .workspace = "v", .thread_id = "a1", .last_message_at = 7},
      {.kind = SW_CLOUD_THREAD_CREATE, .app_id = "a", .workspace = "v", .thread_id = "a2", .last_message_at = 7},
  };
  assert_int_equal(write_wait(fx, &same[0], NULL), 0);
  assert_int_equal(write_wait(fx, &same[1], NULL), 0);
  sw_cloud_thread_q_t v = tq("v");
  v.limit = 1;
  assert_string_equal(thread_ids(fx, &v, buf, sizeof buf), "a2");
  v.after = "a2";
  assert_string_equal(thread_ids(fx, &v, buf, sizeof buf), "a1");
}

/* Messages: parents and heights, newest first, paging, format filter,
 * update, delete, feedback. */
static void test_messages(void **state) {
  fx_t *fx = *state;
  sw_cloud_result_t res;
  assert_int_equal(create_msg(fx, "w", "t", "m0", NULL, NULL, NULL), -ENOENT); /* no thread */
  assert_int_equal(create_thread(fx, "w", "t", NULL, false, NULL), 0);
  assert_int_equal(create_msg(fx, "w", "t", "m0", NULL, "local-0", &res), 0);
  assert_int_equal(res.height, 0);
  assert_string_equal(res.parent_id, "");
  assert_int_equal(create_msg(fx, "w", "t", "m1", "m0", NULL, &res), 0);
  assert_int_equal(res.height, 1);
  assert_string_equal(res.parent_id, "m0");
  /* A parent named by the client's own id (its external_id). */
  assert_int_equal(create_msg(fx, "w", "t", "m2", "local-0", NULL, &res), 0);
  assert_int_equal(res.height, 1);
  assert_string_equal(res.parent_id, "m0");
  sw_cloud_op_t byext = {.kind = SW_CLOUD_MSG_CREATE, .app_id = "a", .workspace = "w", .thread_id = "t",
                         .id = "m3", .parent_external_id = "local-0", .format = "other", .content = "{}",
                         .now = clock_ms++};
  assert_int_equal(write_wait(fx, &byext, &res), 0);
  assert_string_equal(res.parent_id, "m0");
  assert_int_equal(create_msg(fx, "w", "t", "m4", "nope", NULL, NULL), -ESRCH);
  assert_int_equal(create_msg(fx, "w", "t", "m3", NULL, NULL, NULL), -EEXIST); /* id taken */

  char buf[256];
  sw_cloud_msg_q_t q = {.app_id = "a", .workspace = "w", .thread_id = "t", .limit = 100};
  assert_string_equal(msg_ids(fx, &q, buf, sizeof buf), "m3,m2,m1,m0");
  q.format = "aui/v0";
  assert_string_equal(msg_ids(fx, &q, buf, sizeof buf), "m2,m1,m0");
  q.format = NULL;
  q.limit = 2;
  assert_string_equal(msg_ids(fx, &q, buf, sizeof buf), "m3,m2");
  q.after = "m2";
  assert_string_equal(msg_ids(fx, &q, buf, sizeof buf), "m1,m0");
  q.after = "m0";
  assert_string_equal(msg_ids(fx, &q, buf, sizeof buf), "");
  q.after = "nope";
  assert_string_equal(msg_ids(fx, &q, buf, sizeof buf), "");
  q.after = NULL;
  q.limit = 100;

  sw_cloud_msgs_t l;
  assert_int_equal(store_cloud_messages(fx->s, &q, &l), 0);
  assert_int_equal(l.n, 4);
  assert_string_equal(l.v[2].id, "m1");
  assert_string_equal(l.v[2].parent_id, "m0");
  assert_null(l.v[3].parent_id);
  assert_string_equal(l.v[3].external_id, "local-0");
  assert_null(l.v[2].external_id);
  store_cloud_msgs_free(&l);

  sw_cloud_op_t up = {.kind = SW_CLOUD_MSG_UPDATE, .app_id = "a", .workspace = "w", .thread_id = "t",
                      .id = "m1", .content = "{\"v\":2}", .now = 777777};
  assert_int_equal(write_wait(fx, &up, NULL), 0);
  up.id = "nope";
  assert_int_equal(write_wait(fx, &up, NULL), -ENOENT);
  assert_int_equal(store_cloud_messages(fx->s, &q, &l), 0);
  assert_string_equal(l.v[2].content, "{\"v\":2}");
  assert_int_equal(l.v[2].updated_at, 777777);
  assert_true(l.v[2].created_at < 777777);
  store_cloud_msgs_free(&l);

  sw_cloud_op_t fb = {.kind = SW_CLOUD_FEEDBACK, .app_id = "a", .workspace = "w", .thread_id = "t", .id = "m1",
                      .feedback_id = "f1", .feedback_type = "positive", .now = clock_ms++};
  assert_int_equal(write_wait(fx, &fb, NULL), 0);
  fb.feedback_id = "f2"; /* the latest replaces it */
  fb.feedback_type = "negative";
  fb.comment = "no";
  assert_int_equal(write_wait(fx, &fb, NULL), 0);
  fb.id = "nope";
  assert_int_equal(write_wait(fx, &fb, NULL), -ENOENT);

  const char *ids[] = {"m1", "nope", "m3"};
  sw_cloud_op_t del = {.kind = SW_CLOUD_MSG_DELETE, .app_id = "a", .workspace = "w", .thread_id = "t",
                       .ids = ids, .n_ids = 3};
  assert_int_equal(write_wait(fx, &del, &res), 0);
  assert_int_equal(res.deleted, 2);
  assert_string_equal(msg_ids(fx, &q, buf, sizeof buf), "m2,m0");
  /* New messages keep coming after the deleted ones. */
  assert_int_equal(create_msg(fx, "w", "t", "m5", NULL, NULL, NULL), 0);
  assert_string_equal(msg_ids(fx, &q, buf, sizeof buf), "m5,m2,m0");

  /* Deleting the thread deletes its messages. */
  sw_cloud_op_t tdel = {.kind = SW_CLOUD_THREAD_DELETE, .app_id = "a", .workspace = "w", .thread_id = "t"};
  assert_int_equal(write_wait(fx, &tdel, NULL), 0);
  assert_int_equal(create_thread(fx, "w", "t", NULL, false, NULL), 0);
  assert_string_equal(msg_ids(fx, &q, buf, sizeof buf), "");
  if (fx->sqlite) {
    fx_close(fx);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM cloud_messages) + "
                                            "(SELECT count(*) FROM cloud_feedback)", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_int_equal(store_open(&fx->loop, &fx->opts, &fx->s), 0);
  }
}

/* Threads and messages survive a restart (SQLite), and delete_app
 * removes them (both). */
static void test_durable_and_delete_app(void **state) {
  fx_t *fx = *state;
  assert_int_equal(create_thread(fx, "w", "t", "e", false, NULL), 0);
  assert_int_equal(create_msg(fx, "w", "t", "m0", NULL, NULL, NULL), 0);
  assert_int_equal(create_msg(fx, "w", "t", "m1", "m0", NULL, NULL), 0);
  char buf[256];
  if (fx->sqlite) {
    fx_close(fx);
    assert_int_equal(store_open(&fx->loop, &fx->opts, &fx->s), 0);
  }
  sw_cloud_thread_q_t q = tq("w");
  assert_string_equal(thread_ids(fx, &q, buf, sizeof buf), "t");
  sw_cloud_msg_q_t mq = {.app_id = "a", .workspace = "w", .thread_id = "t", .limit = 100};
  assert_string_equal(msg_ids(fx, &mq, buf, sizeof buf), "m1,m0");
  /* The message serial continues after the reopen. */
  assert_int_equal(create_msg(fx, "w", "t", "m2", NULL, NULL, NULL), 0);
  assert_string_equal(msg_ids(fx, &mq, buf, sizeof buf), "m2,m1,m0");
  assert_int_equal(store_delete_app(fx->s, "a"), 0);
  assert_string_equal(thread_ids(fx, &q, buf, sizeof buf), "");
  assert_string_equal(msg_ids(fx, &mq, buf, sizeof buf), "");
}

/* Refusals before anything is queued, and the count bound. */
static void test_edges(void **state) {
  fx_t *fx = *state;
  sw_cloud_op_t bad = {.kind = SW_CLOUD_MSG_CREATE, .app_id = "a", .workspace = "w", .thread_id = "t"};
  assert_int_equal(store_cloud_write(fx->s, &bad, on_done, NULL), -EINVAL); /* no id, format, content */
  bad.kind = 99;
  assert_int_equal(store_cloud_write(fx->s, &bad, on_done, NULL), -EINVAL);
  sw_cloud_thread_q_t q = tq("w");
  q.limit = 0;
  sw_cloud_threads_t l;
  assert_int_equal(store_cloud_threads(fx->s, &q, &l), 0);
  assert_int_equal(l.n, 0);
  /* Messages per thread are bounded (live ones: a delete makes room). */
  assert_int_equal(create_thread(fx, "w", "t", NULL, false, NULL), 0);
  if (fx->sqlite) {
    /* Filling 10,000 rows one transaction each is slow: set the count. */
    fx_close(fx);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE cloud_threads SET n_msgs = %d", SW_CLOUD_MAX_MESSAGES_PER_THREAD - 1);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(store_open(&fx->loop, &fx->opts, &fx->s), 0);
    assert_int_equal(create_msg(fx, "w", "t", "last", NULL, NULL, NULL), 0);
  } else {
    char id[16];
    for (int i = 0; i < SW_CLOUD_MAX_MESSAGES_PER_THREAD; i++) {
      snprintf(id, sizeof id, "m%d", i);
      assert_int_equal(create_msg(fx, "w", "t", id, NULL, NULL, NULL), 0);
    }
  }
  assert_int_equal(create_msg(fx, "w", "t", "over", NULL, NULL, NULL), -EDQUOT);
  const char *ids[] = {fx->sqlite ? "last" : "m0"};
  sw_cloud_op_t del = {.kind = SW_CLOUD_MSG_DELETE, .app_id = "a", .workspace = "w", .thread_id = "t",
                       .ids = ids, .n_ids = 1};
  assert_int_equal(write_wait(fx, &del, NULL), 0);
  assert_int_equal(create_msg(fx, "w", "t", "over", NULL, NULL, NULL), 0);
}

/* A page of a thread's messages is one range scan of the primary key, and
 * the thread list walks its index (SQLite). */
static void test_sqlite_plans(void **state) {
  fx_t *fx = *state;
  if (!fx->sqlite) {
    skip();
    return;
  }
  fx_close(fx);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
  struct {
    const char *sql, *want;
  } plans[] = {
      {"EXPLAIN QUERY PLAN SELECT id FROM cloud_messages WHERE app = 'a' AND workspace = 'w' AND thread = 't' "
       "AND seq < 9 ORDER BY seq DESC LIMIT 5",
       "PRIMARY KEY"},
      {"EXPLAIN QUERY PLAN SELECT seq FROM cloud_messages WHERE app = 'a' AND workspace = 'w' AND thread = 't' "
       "AND id = 'm'",
       "cloud_messages_id"},
      {"EXPLAIN QUERY PLAN SELECT id FROM cloud_threads WHERE app = 'a' AND workspace = 'w' "
       "ORDER BY last_message_at DESC, id DESC LIMIT 5",
       "cloud_threads_recent"},
  };
  for (size_t i = 0; i < sizeof plans / sizeof plans[0]; i++) {
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, plans[i].sql, -1, &st, NULL), SQLITE_OK);
    bool found = false, sorted = false;
    while (sqlite3_step(st) == SQLITE_ROW) {
      const char *d = (const char *)sqlite3_column_text(st, 3);
      found = found || strstr(d, plans[i].want);
      sorted = sorted || strstr(d, "TEMP B-TREE");
    }
    sqlite3_finalize(st);
    assert_true(found);
    assert_false(sorted);
  }
  sqlite3_close(db);
  assert_int_equal(store_open(&fx->loop, &fx->opts, &fx->s), 0);
}

#define BOTH(t)                                               \
  cmocka_unit_test_setup_teardown(t, setup_sqlite, teardown), \
      cmocka_unit_test_setup_teardown(t, setup_memory, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      BOTH(test_thread_crud),  BOTH(test_workspace_isolation), BOTH(test_thread_list), BOTH(test_messages),
      BOTH(test_durable_and_delete_app), BOTH(test_edges),     BOTH(test_sqlite_plans),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
