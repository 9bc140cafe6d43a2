/* store_sqlite.c: the SQLite backend.
 *
 * Two connections to one WAL-mode database file:
 *  - the writer, used only by the commit thread (writes, kv_put included: the
 *    kv table is written through the commit thread too, so the writer has a
 *    single owner and needs no lock);
 *  - the reader, opened read-only, used only by the loop thread (history,
 *    last_seq, find_by_id, kv_list). WAL lets it read a consistent snapshot
 *    while the writer commits; every read statement is reset right after use
 *    so it never pins an old snapshot (which would also stall checkpoints).
 * Each connection is used by one thread at a time, so both are opened with
 * SQLITE_OPEN_NOMUTEX. Statements are prepared once per connection.
 *
 * Schema (user_version 1):
 *  messages: WITHOUT ROWID, clustered on (app, channel, seq), so a history
 *    page is one range scan of adjacent b-tree pages and inserts of a live
 *    channel append at the right edge of its range. Rows larger than ~1 KB
 *    spill to overflow pages, which costs the same extra page reads a rowid
 *    table would need for its separate (app, channel, seq) index lookup.
 *  messages_msg_id: partial index for find_by_id (only rows with an id).
 *  messages_expiry: partial index for prune (only rows that can expire).
 *  channel_seq: highest seq ever written per channel, updated in the same
 *    transaction as the rows, so serials never go backwards after retention
 *    deleted the rows or across restarts.
 *  kv: small server state. */
#include "store/backend.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_VERSION 1
#define BUSY_TIMEOUT_MS 5000

typedef struct sq_backend {
  sw_backend_t base;
  sqlite3 *w; /* commit thread */
  sqlite3 *r; /* loop thread */
  /* Writer statements. */
  sqlite3_stmt *begin, *commit, *rollback;
  sqlite3_stmt *ins, *seq_up, *keep_del, *prune, *del_app_msgs, *del_app_seq, *kv_set, *kv_del;
  /* Reader statements. */
  sqlite3_stmt *hist_fwd, *hist_bwd, *last_seq, *find_id, *kv_list;
} sq_backend_t;

static const char SCHEMA[] =
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

/* Maps an SQLite result code to a negative errno. For OS-level failures the
 * underlying errno (disk full, permission...) is more useful than -EIO. */
static int sq_err(sqlite3 *db, int rc) {
  switch (rc & 0xff) {
  case SQLITE_OK:
  case SQLITE_ROW:
  case SQLITE_DONE:
    return 0;
  case SQLITE_NOMEM:
    return -ENOMEM;
  case SQLITE_CONSTRAINT:
    return -EEXIST;
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return -EBUSY;
  case SQLITE_FULL:
    return -ENOSPC;
  case SQLITE_READONLY:
    return -EROFS;
  case SQLITE_TOOBIG:
    return -E2BIG;
  case SQLITE_IOERR:
  case SQLITE_CANTOPEN: {
    int e = db ? sqlite3_system_errno(db) : 0;
    return e > 0 ? -e : -EIO;
  }
  default:
    return -EIO;
  }
}

/* Steps a statement that returns no rows, then resets it. */
static int exec_stmt(sqlite3 *db, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : sq_err(db, rc);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s) {
  if (s)
    sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, i);
}

static int64_t clamp_limit(size_t n) { return n > (size_t)INT64_MAX ? INT64_MAX : (int64_t)n; }

/* ------------------------------------------------------------- writes */

static void rollback_if_open(sq_backend_t *b) {
  if (!sqlite3_get_autocommit(b->w)) exec_stmt(b->w, b->rollback);
}

static bool same_channel(const sw_store_rec_t *a, const sw_store_rec_t *c) {
  return (a->app_id == c->app_id || strcmp(a->app_id, c->app_id) == 0) &&
         (a->channel == c->channel || strcmp(a->channel, c->channel) == 0);
}

/* True when recs[i] is the last of a run of records of one channel. */
static bool run_ends(const sw_store_rec_t *recs, size_t n, size_t i) {
  return i + 1 == n || !same_channel(&recs[i], &recs[i + 1]);
}

static int sq_write_batch(sw_backend_t *be, const sw_store_rec_t *recs, size_t n) {
  sq_backend_t *b = (sq_backend_t *)be;
  int rc = exec_stmt(b->w, b->begin);
  if (rc) return rc;
  /* Pass 1: the rows, and each channel's serial once per run of consecutive
   * records of that channel (a batch is usually a few long runs; interleaved
   * channels just repeat the idempotent max()). */
  int64_t run_max = INT64_MIN;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const sw_store_rec_t *r = &recs[i];
    sqlite3_stmt *st = b->ins;
    bind_text(st, 1, r->app_id);
    bind_text(st, 2, r->channel);
    sqlite3_bind_int64(st, 3, r->seq);
    sqlite3_bind_int64(st, 4, r->timestamp);
    bind_text(st, 5, r->msg_id);
    sqlite3_bind_int64(st, 6, r->expires_at);
    /* A non-NULL pointer so an empty blob is stored as x'' rather than NULL. */
    sqlite3_bind_blob64(st, 7, r->blob ? (const void *)r->blob : (const void *)"", r->blob_len,
                        SQLITE_STATIC);
    rc = exec_stmt(b->w, st);
    if (r->seq > run_max) run_max = r->seq;
    if (rc == 0 && run_ends(recs, n, i)) {
      st = b->seq_up;
      bind_text(st, 1, r->app_id);
      bind_text(st, 2, r->channel);
      sqlite3_bind_int64(st, 3, run_max);
      rc = exec_stmt(b->w, st);
      run_max = INT64_MIN;
    }
  }
  /* Pass 2: count retention against the final serials. */
  for (size_t i = 0; i < n && rc == 0; i++) {
    const sw_store_rec_t *r = &recs[i];
    if (r->keep_count <= 0 || !run_ends(recs, n, i)) continue;
    sqlite3_stmt *st = b->keep_del;
    bind_text(st, 1, r->app_id);
    bind_text(st, 2, r->channel);
    sqlite3_bind_int64(st, 3, r->keep_count);
    rc = exec_stmt(b->w, st);
  }
  if (rc == 0) rc = exec_stmt(b->w, b->commit);
  if (rc) rollback_if_open(b);
  return rc;
}

static int sq_prune(sw_backend_t *be, int64_t now, size_t limit, size_t *deleted) {
  sq_backend_t *b = (sq_backend_t *)be;
  sqlite3_bind_int64(b->prune, 1, now);
  sqlite3_bind_int64(b->prune, 2, clamp_limit(limit));
  int rc = exec_stmt(b->w, b->prune);
  *deleted = rc == 0 ? (size_t)sqlite3_changes(b->w) : 0;
  return rc;
}

static int sq_delete_app(sw_backend_t *be, const char *app_id) {
  sq_backend_t *b = (sq_backend_t *)be;
  int rc = exec_stmt(b->w, b->begin);
  if (rc) return rc;
  bind_text(b->del_app_msgs, 1, app_id);
  rc = exec_stmt(b->w, b->del_app_msgs);
  if (rc == 0) {
    bind_text(b->del_app_seq, 1, app_id);
    rc = exec_stmt(b->w, b->del_app_seq);
  }
  if (rc == 0) rc = exec_stmt(b->w, b->commit);
  if (rc) rollback_if_open(b);
  return rc;
}

static int sq_kv_put(sw_backend_t *be, const char *ns, const char *key, const char *value) {
  sq_backend_t *b = (sq_backend_t *)be;
  sqlite3_stmt *st = value ? b->kv_set : b->kv_del;
  bind_text(st, 1, ns);
  bind_text(st, 2, key);
  if (value) bind_text(st, 3, value);
  return exec_stmt(b->w, st);
}

/* -------------------------------------------------------------- reads */

static int sq_history(sw_backend_t *be, const sw_history_q_t *q, sw_store_rows_t *out) {
  sq_backend_t *b = (sq_backend_t *)be;
  sqlite3_stmt *st = q->forwards ? b->hist_fwd : b->hist_bwd;
  bind_text(st, 1, q->app_id);
  bind_text(st, 2, q->channel);
  sqlite3_bind_int64(st, 3, q->after_seq);
  sqlite3_bind_int64(st, 4, q->before_seq);
  sqlite3_bind_int64(st, 5, q->start);
  sqlite3_bind_int64(st, 6, q->end);
  sqlite3_bind_int64(st, 7, q->now);
  sqlite3_bind_int64(st, 8, clamp_limit(q->limit));
  sw_rows_builder_t rb = {0};
  int rc, err = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const void *blob = sqlite3_column_blob(st, 2);
    size_t len = (size_t)sqlite3_column_bytes(st, 2);
    err = rows_builder_add(&rb, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), blob,
                           len);
    if (err) break;
  }
  if (!err && rc != SQLITE_DONE) err = sq_err(b->r, rc);
  sqlite3_reset(st); /* ends the read transaction */
  if (err) {
    rows_builder_free(&rb);
    return err;
  }
  return rows_builder_finish(&rb, out);
}

static int sq_last_seq(sw_backend_t *be, const char *app_id, const char *channel, int64_t *seq) {
  sq_backend_t *b = (sq_backend_t *)be;
  sqlite3_stmt *st = b->last_seq;
  bind_text(st, 1, app_id);
  bind_text(st, 2, channel);
  int rc = sqlite3_step(st);
  int err = 0;
  if (rc == SQLITE_ROW)
    *seq = sqlite3_column_int64(st, 0);
  else if (rc == SQLITE_DONE)
    *seq = -1;
  else
    err = sq_err(b->r, rc);
  sqlite3_reset(st);
  return err;
}

static int sq_find_by_id(sw_backend_t *be, const char *app_id, const char *channel,
                         const char *msg_id, sw_store_row_t *row) {
  sq_backend_t *b = (sq_backend_t *)be;
  sqlite3_stmt *st = b->find_id;
  bind_text(st, 1, app_id);
  bind_text(st, 2, channel);
  bind_text(st, 3, msg_id);
  int rc = sqlite3_step(st);
  int ret;
  if (rc == SQLITE_ROW) {
    const void *blob = sqlite3_column_blob(st, 2);
    size_t len = (size_t)sqlite3_column_bytes(st, 2);
    uint8_t *copy = NULL;
    if (len && !(copy = malloc(len))) {
      ret = -ENOMEM;
    } else {
      if (len) memcpy(copy, blob, len);
      row->seq = sqlite3_column_int64(st, 0);
      row->timestamp = sqlite3_column_int64(st, 1);
      row->blob = copy;
      row->blob_len = len;
      ret = 1;
    }
  } else {
    ret = rc == SQLITE_DONE ? 0 : sq_err(b->r, rc);
  }
  sqlite3_reset(st);
  return ret;
}

static int sq_kv_list(sw_backend_t *be, const char *ns, sw_buf_t *out, size_t *count) {
  sq_backend_t *b = (sq_backend_t *)be;
  sqlite3_stmt *st = b->kv_list;
  bind_text(st, 1, ns);
  int rc, err = 0;
  *count = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const unsigned char *k = sqlite3_column_text(st, 0);
    size_t kl = (size_t)sqlite3_column_bytes(st, 0);
    const unsigned char *v = sqlite3_column_text(st, 1);
    size_t vl = (size_t)sqlite3_column_bytes(st, 1);
    if (!k || !v) { /* NULL here means out of memory */
      err = -ENOMEM;
      break;
    }
    if (buf_reserve(out, kl + vl + 2)) {
      err = -ENOMEM;
      break;
    }
    buf_append(out, k, kl);
    buf_append_byte(out, 0);
    buf_append(out, v, vl);
    buf_append_byte(out, 0);
    (*count)++;
  }
  if (!err && rc != SQLITE_DONE) err = sq_err(b->r, rc);
  sqlite3_reset(st);
  return err;
}

/* --------------------------------------------------------- open/close */

static void sq_close(sw_backend_t *be) {
  sq_backend_t *b = (sq_backend_t *)be;
  if (!b) return;
  sqlite3_stmt *all[] = {b->begin,    b->commit,       b->rollback,    b->ins,      b->seq_up,
                         b->keep_del, b->prune,        b->del_app_msgs, b->del_app_seq,
                         b->kv_set,   b->kv_del,       b->hist_fwd,    b->hist_bwd, b->last_seq,
                         b->find_id,  b->kv_list};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sqlite3_finalize(all[i]);
  /* Reader first: the writer, closing last, checkpoints and removes the WAL. */
  sqlite3_close(b->r);
  sqlite3_close(b->w);
  free(b);
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st) {
  int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
  return rc == SQLITE_OK ? 0 : sq_err(db, rc);
}

/* Runs a single-row pragma query and copies its first column's integer. */
static int pragma_int(sqlite3 *db, const char *sql, int64_t *v) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) return sq_err(db, rc);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 0 : sq_err(db, rc);
}

static int open_conn(const char *path, int flags, sqlite3 **db) {
  int rc = sqlite3_open_v2(path, db, flags | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) return sq_err(*db, rc);
  sqlite3_extended_result_codes(*db, 1);
  sqlite3_busy_timeout(*db, BUSY_TIMEOUT_MS);
  return 0;
}

/* Creates the schema on a fresh file; refuses a newer one. */
static int init_schema(sqlite3 *db) {
  int rc = sq_err(db, sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL));
  if (rc) return rc;
  int64_t ver = 0;
  rc = pragma_int(db, "PRAGMA user_version", &ver);
  if (rc == 0 && ver == 0) rc = sq_err(db, sqlite3_exec(db, SCHEMA, NULL, NULL, NULL));
  else if (rc == 0 && ver > SCHEMA_VERSION) rc = -ENOTSUP;
  if (rc == 0) rc = sq_err(db, sqlite3_exec(db, "COMMIT", NULL, NULL, NULL));
  if (rc) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

static int setup_writer(sq_backend_t *b, const sw_store_opts_t *opts) {
  int rc = open_conn(opts->path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &b->w);
  if (rc) return rc;
  /* WAL is what lets the reader run beside the writer; insist on it. */
  sqlite3_stmt *st;
  if ((rc = prepare(b->w, "PRAGMA journal_mode=WAL", &st))) return rc;
  rc = sqlite3_step(st);
  const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
  bool wal = mode && strcmp(mode, "wal") == 0;
  rc = rc == SQLITE_ROW ? 0 : sq_err(b->w, rc);
  sqlite3_finalize(st);
  if (rc) return rc;
  if (!wal) return -ENOTSUP;
  const char *sync = opts->synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL";
  if ((rc = sq_err(b->w, sqlite3_exec(b->w, sync, NULL, NULL, NULL)))) return rc;
  if ((rc = init_schema(b->w))) return rc;

  struct {
    sqlite3_stmt **st;
    const char *sql;
  } w[] = {
      {&b->begin, "BEGIN IMMEDIATE"},
      {&b->commit, "COMMIT"},
      {&b->rollback, "ROLLBACK"},
      {&b->ins, "INSERT INTO messages(app, channel, seq, ts, msg_id, expires_at, blob) "
                "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
      {&b->seq_up, "INSERT INTO channel_seq(app, channel, last_seq) VALUES(?1, ?2, ?3) "
                   "ON CONFLICT(app, channel) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)"},
      {&b->keep_del, "DELETE FROM messages WHERE app = ?1 AND channel = ?2 AND seq <= "
                     "(SELECT last_seq FROM channel_seq WHERE app = ?1 AND channel = ?2) - ?3"},
      {&b->prune, "DELETE FROM messages WHERE (app, channel, seq) IN "
                  "(SELECT app, channel, seq FROM messages "
                  " WHERE expires_at != 0 AND expires_at <= ?1 LIMIT ?2)"},
      {&b->del_app_msgs, "DELETE FROM messages WHERE app = ?1"},
      {&b->del_app_seq, "DELETE FROM channel_seq WHERE app = ?1"},
      {&b->kv_set, "INSERT INTO kv(ns, key, value) VALUES(?1, ?2, ?3) "
                   "ON CONFLICT(ns, key) DO UPDATE SET value = excluded.value"},
      {&b->kv_del, "DELETE FROM kv WHERE ns = ?1 AND key = ?2"},
  };
  for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
    if ((rc = prepare(b->w, w[i].sql, w[i].st))) return rc;
  return 0;
}

#define HISTORY_SQL(dir)                                                                   \
  "SELECT seq, ts, blob FROM messages WHERE app = ?1 AND channel = ?2 AND seq > ?3 AND "   \
  "seq < ?4 AND ts >= ?5 AND ts <= ?6 AND (expires_at = 0 OR expires_at > ?7) ORDER BY seq " \
  dir " LIMIT ?8"

static int setup_reader(sq_backend_t *b, const char *path) {
  int rc = open_conn(path, SQLITE_OPEN_READONLY, &b->r);
  if (rc) return rc;
  struct {
    sqlite3_stmt **st;
    const char *sql;
  } r[] = {
      {&b->hist_fwd, HISTORY_SQL("ASC")},
      {&b->hist_bwd, HISTORY_SQL("DESC")},
      {&b->last_seq, "SELECT last_seq FROM channel_seq WHERE app = ?1 AND channel = ?2"},
      {&b->find_id, "SELECT seq, ts, blob FROM messages WHERE app = ?1 AND channel = ?2 AND "
                    "msg_id = ?3 ORDER BY seq DESC LIMIT 1"},
      {&b->kv_list, "SELECT key, value FROM kv WHERE ns = ?1 ORDER BY key"},
  };
  for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
    if ((rc = prepare(b->r, r[i].sql, r[i].st))) return rc;
  return 0;
}

static const sw_backend_ops_t SQ_OPS = {
    .write_batch = sq_write_batch,
    .prune = sq_prune,
    .delete_app = sq_delete_app,
    .kv_put = sq_kv_put,
    .history = sq_history,
    .last_seq = sq_last_seq,
    .find_by_id = sq_find_by_id,
    .kv_list = sq_kv_list,
    .close = sq_close,
};

int backend_sqlite_open(const sw_store_opts_t *opts, sw_backend_t **out) {
  if (!opts->path) return -EINVAL;
  sq_backend_t *b = calloc(1, sizeof *b);
  if (!b) return -ENOMEM;
  b->base.ops = &SQ_OPS;
  int rc = setup_writer(b, opts);
  if (rc == 0) rc = setup_reader(b, opts->path);
  if (rc) {
    sq_close(&b->base);
    return rc;
  }
  *out = &b->base;
  return 0;
}
