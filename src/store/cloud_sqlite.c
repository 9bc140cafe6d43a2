/* cloud_sqlite.c: Assistant Cloud threads, messages and feedback in SQLite.
 *
 * Tables (schema version 5, docs/storage.md "Assistant Cloud"):
 *  cloud_threads: clustered on (app, workspace, id); cloud_threads_recent
 *    orders a workspace's threads for the list (last_message_at, id), and
 *    the partial unique index cloud_threads_ext makes an external_id name
 *    one thread per workspace (upsert). msg_seq is the last message serial
 *    the thread gave out, n_msgs its live message count.
 *  cloud_messages: clustered on (app, workspace, thread, seq), so a page of
 *    a thread's messages is one range scan; cloud_messages_id finds one by
 *    id (unique within the thread), cloud_messages_ext by external_id.
 *  cloud_feedback: the latest feedback per message.
 * Every statement names app and workspace in its key prefix: a row of
 * another workspace is never read or written. */
#include "store/cloud_sqlite.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/backend.h"

const char SQ_CLOUD_MIGRATE_V5[] =
    "CREATE TABLE cloud_threads("
    "  app TEXT NOT NULL, workspace TEXT NOT NULL, id TEXT NOT NULL,"
    "  external_id TEXT, title TEXT, metadata TEXT,"
    "  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, last_message_at INTEGER NOT NULL,"
    "  is_archived INTEGER NOT NULL DEFAULT 0, msg_seq INTEGER NOT NULL DEFAULT 0,"
    "  n_msgs INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY(app, workspace, id)) WITHOUT ROWID;"
    "CREATE INDEX cloud_threads_recent ON cloud_threads(app, workspace, last_message_at, id);"
    "CREATE UNIQUE INDEX cloud_threads_ext ON cloud_threads(app, workspace, external_id) "
    "  WHERE external_id IS NOT NULL;"
    "CREATE TABLE cloud_messages("
    "  app TEXT NOT NULL, workspace TEXT NOT NULL, thread TEXT NOT NULL, seq INTEGER NOT NULL,"
    "  id TEXT NOT NULL, parent_id TEXT, external_id TEXT, height INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, format TEXT NOT NULL,"
    "  content TEXT NOT NULL,"
    "  PRIMARY KEY(app, workspace, thread, seq)) WITHOUT ROWID;"
    "CREATE UNIQUE INDEX cloud_messages_id ON cloud_messages(app, workspace, thread, id);"
    "CREATE INDEX cloud_messages_ext ON cloud_messages(app, workspace, thread, external_id) "
    "  WHERE external_id IS NOT NULL;"
    "CREATE TABLE cloud_feedback("
    "  app TEXT NOT NULL, workspace TEXT NOT NULL, thread TEXT NOT NULL, message TEXT NOT NULL,"
    "  id TEXT NOT NULL, type TEXT NOT NULL, comment TEXT, created_at INTEGER NOT NULL,"
    "  PRIMARY KEY(app, workspace, thread, message)) WITHOUT ROWID;"
    "PRAGMA user_version = 5;";

struct sq_cloud {
  sqlite3 *w, *r;
  /* writer */
  sqlite3_stmt *begin, *commit, *rollback;
  sqlite3_stmt *t_by_ext, *t_count, *t_ins, *t_upd, *t_del, *t_state, *t_msg_added, *t_msgs_removed;
  sqlite3_stmt *m_by_id, *m_by_ext, *m_ins, *m_upd, *m_del, *m_exists, *m_del_thread;
  sqlite3_stmt *f_put, *f_del_msg, *f_del_thread;
  sqlite3_stmt *app_f, *app_m, *app_t;
  /* reader */
  sqlite3_stmt *r_thread, *r_cursor_t, *r_threads, *r_cursor_m, *r_msgs;
};

#define THREAD_COLS "id, external_id, title, metadata, created_at, updated_at, last_message_at, is_archived"
#define MSG_COLS "id, parent_id, external_id, height, created_at, updated_at, format, content"

static void bind_text(sqlite3_stmt *st, int i, const char *s) {
  if (s)
    sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, i);
}

/* Binds app and workspace (?1, ?2) and, when non-NULL, a third key (?3). */
static void bind_key(sqlite3_stmt *st, const char *app, const char *ws, const char *k3) {
  bind_text(st, 1, app);
  bind_text(st, 2, ws);
  if (k3) bind_text(st, 3, k3);
}

static int done(sqlite3 *db, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : store_sqlite_errno(db, rc);
}

/* Steps st for one row: 1 (row available: the caller resets st), 0 (none,
 * reset) or a negative errno (reset). */
static int row(sqlite3 *db, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) return 1;
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : store_sqlite_errno(db, rc);
}

static const char *col_text(sqlite3_stmt *st, int i) { return (const char *)sqlite3_column_text(st, i); }

static void copy_id(char *dst, const char *src) {
  size_t n = src ? strlen(src) : 0;
  if (n >= SW_CLOUD_ID_MAX) n = SW_CLOUD_ID_MAX - 1;
  memcpy(dst, src ? src : "", n);
  dst[n] = '\0';
}

/* ------------------------------------------------------------- writes */

static int thread_create(sq_cloud_t *c, const sw_cloud_op_t *o, sw_cloud_result_t *res) {
  int rc;
  if (o->external_id) {
    bind_key(c->t_by_ext, o->app_id, o->workspace, o->external_id);
    if ((rc = row(c->w, c->t_by_ext)) == 1) {
      copy_id(res->id, col_text(c->t_by_ext, 0));
      sqlite3_reset(c->t_by_ext);
      if (!o->upsert) return -EEXIST;
      res->existed = true;
      return 0;
    }
    if (rc < 0) return rc;
  }
  bind_key(c->t_count, o->app_id, o->workspace, NULL);
  if ((rc = row(c->w, c->t_count)) < 0) return rc;
  int64_t n = rc == 1 ? sqlite3_column_int64(c->t_count, 0) : 0;
  sqlite3_reset(c->t_count);
  if (n >= SW_CLOUD_MAX_THREADS_PER_WORKSPACE) return -EDQUOT;
  sqlite3_stmt *st = c->t_ins;
  bind_key(st, o->app_id, o->workspace, o->thread_id);
  bind_text(st, 4, o->external_id);
  bind_text(st, 5, o->title);
  bind_text(st, 6, o->metadata);
  sqlite3_bind_int64(st, 7, o->now);
  sqlite3_bind_int64(st, 8, o->last_message_at >= 0 ? o->last_message_at : o->now);
  if ((rc = done(c->w, st))) return rc;
  copy_id(res->id, o->thread_id);
  return 0;
}

static int thread_update(sq_cloud_t *c, const sw_cloud_op_t *o) {
  sqlite3_stmt *st = c->t_upd;
  bind_key(st, o->app_id, o->workspace, o->thread_id);
  bind_text(st, 4, o->title);
  bind_text(st, 5, o->metadata);
  sqlite3_bind_int64(st, 6, o->last_message_at);
  sqlite3_bind_int64(st, 7, o->is_archived);
  sqlite3_bind_int64(st, 8, o->now);
  int rc = done(c->w, st);
  if (rc == 0 && sqlite3_changes(c->w) == 0) rc = -ENOENT;
  return rc;
}

static int thread_delete(sq_cloud_t *c, const sw_cloud_op_t *o) {
  sqlite3_stmt *sts[] = {c->f_del_thread, c->m_del_thread, c->t_del};
  int rc = 0;
  for (size_t i = 0; i < 3 && rc == 0; i++) {
    bind_key(sts[i], o->app_id, o->workspace, o->thread_id);
    rc = done(c->w, sts[i]);
  }
  if (rc == 0 && sqlite3_changes(c->w) == 0) rc = -ENOENT;
  return rc;
}

/* The thread's message serial and count: 0, -ENOENT or an errno. */
static int thread_state(sq_cloud_t *c, const sw_cloud_op_t *o, int64_t *seq, int64_t *n) {
  bind_key(c->t_state, o->app_id, o->workspace, o->thread_id);
  int rc = row(c->w, c->t_state);
  if (rc <= 0) return rc ? rc : -ENOENT;
  *seq = sqlite3_column_int64(c->t_state, 0);
  *n = sqlite3_column_int64(c->t_state, 1);
  sqlite3_reset(c->t_state);
  return 0;
}

/* Finds a message of the thread by id (st = m_by_id) or external_id
 * (m_by_ext, the newest): 1 with its id and height, 0, or an errno. */
static int find_msg(sq_cloud_t *c, sqlite3_stmt *st, const sw_cloud_op_t *o, const char *key, char *id,
                    int64_t *height) {
  bind_key(st, o->app_id, o->workspace, o->thread_id);
  bind_text(st, 4, key);
  int rc = row(c->w, st);
  if (rc != 1) return rc;
  copy_id(id, col_text(st, 0));
  *height = sqlite3_column_int64(st, 1);
  sqlite3_reset(st);
  return 1;
}

/* The parent of a new message: parent_id as an id, then as an external id
 * (clients that send their own id before they learn the server's), or
 * parent_external_id. 0 (res->parent_id "" for a root), -ESRCH, an errno. */
static int resolve_parent(sq_cloud_t *c, const sw_cloud_op_t *o, sw_cloud_result_t *res, int64_t *height) {
  *height = -1;
  res->parent_id[0] = '\0';
  const char *ext = o->parent_id ? o->parent_id : o->parent_external_id;
  if (!ext) return 0;
  int rc = o->parent_id ? find_msg(c, c->m_by_id, o, o->parent_id, res->parent_id, height) : 0;
  if (rc == 0) rc = find_msg(c, c->m_by_ext, o, ext, res->parent_id, height);
  return rc == 1 ? 0 : rc == 0 ? -ESRCH : rc;
}

static int msg_create(sq_cloud_t *c, const sw_cloud_op_t *o, sw_cloud_result_t *res) {
  int64_t seq, n, ph;
  int rc = thread_state(c, o, &seq, &n);
  if (rc) return rc;
  if (n >= SW_CLOUD_MAX_MESSAGES_PER_THREAD) return -EDQUOT;
  if ((rc = resolve_parent(c, o, res, &ph))) return rc;
  res->height = ph + 1;
  sqlite3_stmt *st = c->m_ins;
  bind_key(st, o->app_id, o->workspace, o->thread_id);
  sqlite3_bind_int64(st, 4, seq + 1);
  bind_text(st, 5, o->id);
  bind_text(st, 6, res->parent_id[0] ? res->parent_id : NULL);
  bind_text(st, 7, o->external_id);
  sqlite3_bind_int64(st, 8, res->height);
  sqlite3_bind_int64(st, 9, o->now);
  bind_text(st, 10, o->format);
  bind_text(st, 11, o->content);
  if ((rc = done(c->w, st))) return rc; /* -EEXIST: the id is taken in the thread */
  st = c->t_msg_added;
  bind_key(st, o->app_id, o->workspace, o->thread_id);
  sqlite3_bind_int64(st, 4, seq + 1);
  sqlite3_bind_int64(st, 5, o->now);
  return done(c->w, st);
}

static int msg_update(sq_cloud_t *c, const sw_cloud_op_t *o) {
  sqlite3_stmt *st = c->m_upd;
  bind_key(st, o->app_id, o->workspace, o->thread_id);
  bind_text(st, 4, o->id);
  bind_text(st, 5, o->content);
  bind_text(st, 6, o->format);
  sqlite3_bind_int64(st, 7, o->now);
  int rc = done(c->w, st);
  if (rc == 0 && sqlite3_changes(c->w) == 0) rc = -ENOENT;
  return rc;
}

static int msg_delete(sq_cloud_t *c, const sw_cloud_op_t *o, sw_cloud_result_t *res) {
  int64_t seq, n;
  int rc = thread_state(c, o, &seq, &n);
  for (size_t i = 0; rc == 0 && i < o->n_ids; i++) {
    for (int k = 0; k < 2 && rc == 0; k++) {
      sqlite3_stmt *st = k == 0 ? c->f_del_msg : c->m_del;
      bind_key(st, o->app_id, o->workspace, o->thread_id);
      bind_text(st, 4, o->ids[i]);
      rc = done(c->w, st);
      if (rc == 0 && k == 1) res->deleted += (size_t)sqlite3_changes(c->w);
    }
  }
  if (rc == 0 && res->deleted) {
    sqlite3_stmt *st = c->t_msgs_removed;
    bind_key(st, o->app_id, o->workspace, o->thread_id);
    sqlite3_bind_int64(st, 4, (int64_t)res->deleted);
    rc = done(c->w, st);
  }
  return rc;
}

static int feedback(sq_cloud_t *c, const sw_cloud_op_t *o) {
  bind_key(c->m_exists, o->app_id, o->workspace, o->thread_id);
  bind_text(c->m_exists, 4, o->id);
  int rc = row(c->w, c->m_exists);
  if (rc <= 0) return rc ? rc : -ENOENT;
  sqlite3_reset(c->m_exists);
  sqlite3_stmt *st = c->f_put;
  bind_key(st, o->app_id, o->workspace, o->thread_id);
  bind_text(st, 4, o->id);
  bind_text(st, 5, o->feedback_id);
  bind_text(st, 6, o->feedback_type);
  bind_text(st, 7, o->comment);
  sqlite3_bind_int64(st, 8, o->now);
  return done(c->w, st);
}

int sq_cloud_write(sq_cloud_t *c, const sw_cloud_op_t *o, sw_cloud_result_t *res) {
  int rc = done(c->w, c->begin);
  if (rc) return rc;
  switch (o->kind) {
  case SW_CLOUD_THREAD_CREATE: rc = thread_create(c, o, res); break;
  case SW_CLOUD_THREAD_UPDATE: rc = thread_update(c, o); break;
  case SW_CLOUD_THREAD_DELETE: rc = thread_delete(c, o); break;
  case SW_CLOUD_MSG_CREATE: rc = msg_create(c, o, res); break;
  case SW_CLOUD_MSG_UPDATE: rc = msg_update(c, o); break;
  case SW_CLOUD_MSG_DELETE: rc = msg_delete(c, o, res); break;
  case SW_CLOUD_FEEDBACK: rc = feedback(c, o); break;
  default: rc = -EINVAL;
  }
  if (rc == 0) rc = done(c->w, c->commit);
  if (rc && !sqlite3_get_autocommit(c->w)) done(c->w, c->rollback);
  return rc;
}

int sq_cloud_delete_app(sq_cloud_t *c, const char *app_id) {
  sqlite3_stmt *sts[] = {c->app_f, c->app_m, c->app_t};
  int rc = 0;
  for (size_t i = 0; i < 3 && rc == 0; i++) {
    bind_text(sts[i], 1, app_id);
    rc = done(c->w, sts[i]);
  }
  return rc;
}

/* -------------------------------------------------------------- reads */

static int read_threads(sq_cloud_t *c, sqlite3_stmt *st, sw_cloud_threads_t *out) {
  int rc, err = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    sw_cloud_thread_t t = {
        .id = (char *)col_text(st, 0),
        .external_id = (char *)col_text(st, 1),
        .title = (char *)col_text(st, 2),
        .metadata = (char *)col_text(st, 3),
        .created_at = sqlite3_column_int64(st, 4),
        .updated_at = sqlite3_column_int64(st, 5),
        .last_message_at = sqlite3_column_int64(st, 6),
        .is_archived = sqlite3_column_int64(st, 7) != 0,
    };
    if (!t.id || (err = cloud_threads_push(out, &t))) {
      err = -ENOMEM;
      break;
    }
  }
  if (!err && rc != SQLITE_DONE) err = store_sqlite_errno(c->r, rc);
  sqlite3_reset(st);
  return err;
}

int sq_cloud_threads(sq_cloud_t *c, const sw_cloud_thread_q_t *q, sw_cloud_threads_t *out) {
  if (q->id) {
    bind_key(c->r_thread, q->app_id, q->workspace, q->id);
    return read_threads(c, c->r_thread, out);
  }
  /* The cursor's place in the order: (last_message_at, id). */
  int64_t at = INT64_MAX;
  const char *after_id = NULL;
  if (q->after) {
    bind_key(c->r_cursor_t, q->app_id, q->workspace, q->after);
    int rc = row(c->r, c->r_cursor_t);
    if (rc <= 0) return rc;
    at = sqlite3_column_int64(c->r_cursor_t, 0);
    sqlite3_reset(c->r_cursor_t);
    after_id = q->after;
  }
  sqlite3_stmt *st = c->r_threads;
  bind_key(st, q->app_id, q->workspace, NULL);
  sqlite3_bind_int64(st, 3, q->archived);
  bind_text(st, 4, q->external_id);
  sqlite3_bind_int64(st, 5, at);
  bind_text(st, 6, after_id);
  sqlite3_bind_int64(st, 7, q->limit > INT64_MAX ? INT64_MAX : (int64_t)q->limit);
  return read_threads(c, st, out);
}

int sq_cloud_messages(sq_cloud_t *c, const sw_cloud_msg_q_t *q, sw_cloud_msgs_t *out) {
  int64_t before = INT64_MAX;
  if (q->after) {
    bind_key(c->r_cursor_m, q->app_id, q->workspace, q->thread_id);
    bind_text(c->r_cursor_m, 4, q->after);
    int rc = row(c->r, c->r_cursor_m);
    if (rc <= 0) return rc;
    before = sqlite3_column_int64(c->r_cursor_m, 0);
    sqlite3_reset(c->r_cursor_m);
  }
  sqlite3_stmt *st = c->r_msgs;
  bind_key(st, q->app_id, q->workspace, q->thread_id);
  sqlite3_bind_int64(st, 4, before);
  bind_text(st, 5, q->format);
  sqlite3_bind_int64(st, 6, q->limit > INT64_MAX ? INT64_MAX : (int64_t)q->limit);
  int rc, err = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    sw_cloud_msg_t m = {
        .id = (char *)col_text(st, 0),
        .parent_id = (char *)col_text(st, 1),
        .external_id = (char *)col_text(st, 2),
        .height = sqlite3_column_int64(st, 3),
        .created_at = sqlite3_column_int64(st, 4),
        .updated_at = sqlite3_column_int64(st, 5),
        .format = (char *)col_text(st, 6),
        .content = (char *)col_text(st, 7),
    };
    if (!m.id || !m.format || !m.content || cloud_msgs_push(out, &m)) {
      err = -ENOMEM;
      break;
    }
  }
  if (!err && rc != SQLITE_DONE) err = store_sqlite_errno(c->r, rc);
  sqlite3_reset(st);
  return err;
}

/* --------------------------------------------------------- open/close */

#define KEY3 "app = ?1 AND workspace = ?2 AND id = ?3"
#define MKEY "app = ?1 AND workspace = ?2 AND thread = ?3"

int sq_cloud_open(sqlite3 *w, sqlite3 *r, sq_cloud_t **out) {
  sq_cloud_t *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  c->w = w;
  c->r = r;
  struct {
    sqlite3 *db;
    sqlite3_stmt **st;
    const char *sql;
  } s[] = {
      {w, &c->begin, "BEGIN IMMEDIATE"},
      {w, &c->commit, "COMMIT"},
      {w, &c->rollback, "ROLLBACK"},
      {w, &c->t_by_ext, "SELECT id FROM cloud_threads WHERE app = ?1 AND workspace = ?2 AND external_id = ?3"},
      {w, &c->t_count, "SELECT count(*) FROM cloud_threads WHERE app = ?1 AND workspace = ?2"},
      {w, &c->t_ins, "INSERT INTO cloud_threads(app, workspace, id, external_id, title, metadata, created_at, "
                     "updated_at, last_message_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)"},
      {w, &c->t_upd, "UPDATE cloud_threads SET title = coalesce(?4, title), metadata = coalesce(?5, metadata), "
                     "last_message_at = CASE WHEN ?6 >= 0 THEN ?6 ELSE last_message_at END, "
                     "is_archived = CASE WHEN ?7 >= 0 THEN ?7 ELSE is_archived END, updated_at = ?8 WHERE " KEY3},
      {w, &c->t_del, "DELETE FROM cloud_threads WHERE " KEY3},
      {w, &c->t_state, "SELECT msg_seq, n_msgs FROM cloud_threads WHERE " KEY3},
      {w, &c->t_msg_added, "UPDATE cloud_threads SET msg_seq = ?4, n_msgs = n_msgs + 1, updated_at = ?5, "
                           "last_message_at = max(last_message_at, ?5) WHERE " KEY3},
      {w, &c->t_msgs_removed, "UPDATE cloud_threads SET n_msgs = n_msgs - ?4 WHERE " KEY3},
      {w, &c->m_by_id, "SELECT id, height FROM cloud_messages WHERE " MKEY " AND id = ?4"},
      {w, &c->m_by_ext, "SELECT id, height FROM cloud_messages WHERE " MKEY " AND external_id = ?4 "
                        "ORDER BY seq DESC LIMIT 1"},
      {w, &c->m_ins, "INSERT INTO cloud_messages(app, workspace, thread, seq, id, parent_id, external_id, height, "
                     "created_at, updated_at, format, content) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11)"},
      {w, &c->m_upd, "UPDATE cloud_messages SET content = ?5, format = coalesce(?6, format), updated_at = ?7 "
                     "WHERE " MKEY " AND id = ?4"},
      {w, &c->m_del, "DELETE FROM cloud_messages WHERE " MKEY " AND id = ?4"},
      {w, &c->m_exists, "SELECT 1 FROM cloud_messages WHERE " MKEY " AND id = ?4"},
      {w, &c->m_del_thread, "DELETE FROM cloud_messages WHERE " MKEY},
      {w, &c->f_put, "INSERT INTO cloud_feedback(app, workspace, thread, message, id, type, comment, created_at) "
                     "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(app, workspace, thread, message) DO UPDATE "
                     "SET id = excluded.id, type = excluded.type, comment = excluded.comment, "
                     "created_at = excluded.created_at"},
      {w, &c->f_del_msg, "DELETE FROM cloud_feedback WHERE " MKEY " AND message = ?4"},
      {w, &c->f_del_thread, "DELETE FROM cloud_feedback WHERE " MKEY},
      {w, &c->app_f, "DELETE FROM cloud_feedback WHERE app = ?1"},
      {w, &c->app_m, "DELETE FROM cloud_messages WHERE app = ?1"},
      {w, &c->app_t, "DELETE FROM cloud_threads WHERE app = ?1"},
      {r, &c->r_thread, "SELECT " THREAD_COLS " FROM cloud_threads WHERE " KEY3},
      {r, &c->r_cursor_t, "SELECT last_message_at FROM cloud_threads WHERE " KEY3},
      /* Row values keep the keyset order (last_message_at, id) exact. */
      {r, &c->r_threads, "SELECT " THREAD_COLS " FROM cloud_threads INDEXED BY cloud_threads_recent "
                         "WHERE app = ?1 AND workspace = ?2 AND (?3 < 0 OR is_archived = ?3) "
                         "AND (?4 IS NULL OR external_id = ?4) "
                         "AND (?6 IS NULL OR (last_message_at, id) < (?5, ?6)) "
                         "ORDER BY last_message_at DESC, id DESC LIMIT ?7"},
      {r, &c->r_cursor_m, "SELECT seq FROM cloud_messages WHERE " MKEY " AND id = ?4"},
      {r, &c->r_msgs, "SELECT " MSG_COLS " FROM cloud_messages WHERE " MKEY " AND seq < ?4 "
                      "AND (?5 IS NULL OR format = ?5) ORDER BY seq DESC LIMIT ?6"},
  };
  for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
    int rc = sqlite3_prepare_v3(s[i].db, s[i].sql, -1, SQLITE_PREPARE_PERSISTENT, s[i].st, NULL);
    if (rc != SQLITE_OK) {
      rc = store_sqlite_errno(s[i].db, rc);
      sq_cloud_close(c);
      return rc;
    }
  }
  *out = c;
  return 0;
}

void sq_cloud_close(sq_cloud_t *c) {
  if (!c) return;
  sqlite3_stmt *all[] = {c->begin,    c->commit,     c->rollback,     c->t_by_ext,  c->t_count,      c->t_ins,
                         c->t_upd,    c->t_del,      c->t_state,      c->t_msg_added, c->t_msgs_removed,
                         c->m_by_id,  c->m_by_ext,   c->m_ins,        c->m_upd,     c->m_del,        c->m_exists,
                         c->m_del_thread, c->f_put,  c->f_del_msg,    c->f_del_thread, c->app_f,     c->app_m,
                         c->app_t,    c->r_thread,   c->r_cursor_t,   c->r_threads, c->r_cursor_m,   c->r_msgs};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sqlite3_finalize(all[i]);
  free(c);
}
