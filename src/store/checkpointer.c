/* checkpointer.c: see checkpointer.h. */
#include "store/checkpointer.h"

#include <errno.h>

#include "util/log.h"

#define DEFAULT_PAGES 1000 /* SQLite's own wal_autocheckpoint default */
/* WAL length, in thresholds, from which the writer finishes a checkpoint
 * itself so that the log restarts (checkpointer.h)... */
#define RESTART_FACTOR 4
/* ...when at most this many frames are left to copy, or regardless once the
 * log is this many thresholds long. */
#define RESTART_BEHIND 64
#define RESTART_FORCE 16

/* Returns the frames now copied into the database (0 when none or failed). */
static int checkpoint(sqlite3 *db, const char *who) {
  int frames = 0, copied = 0;
  int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, &copied);
  /* BUSY: the other side is checkpointing; its work counts as ours. */
  if (rc != SQLITE_OK && rc != SQLITE_BUSY) log_warn("store: %s checkpoint failed: %s", who, sqlite3_errstr(rc));
  return rc == SQLITE_OK && copied > 0 ? copied : 0;
}

static void thread_main(void *arg) {
  sw_checkpointer_t *c = arg;
  uv_mutex_lock(&c->lock);
  for (;;) {
    while (!c->wanted && !c->stop) uv_cond_wait(&c->wake, &c->lock);
    if (c->stop) break;
    c->wanted = false;
    c->running = true;
    uv_mutex_unlock(&c->lock);
    int copied = checkpoint(c->db, "background");
    uv_mutex_lock(&c->lock);
    c->running = false;
    c->copied = copied;
  }
  uv_mutex_unlock(&c->lock);
}

/* The writer's wal hook: runs on the commit thread after every commit, with
 * the WAL's length in pages. */
static int on_commit(void *arg, sqlite3 *db, const char *name, int pages) {
  sw_checkpointer_t *c = arg;
  (void)name;
  if (pages < c->pages) return SQLITE_OK;
  uv_mutex_lock(&c->lock);
  if (pages < c->copied) c->copied = 0; /* the log restarted */
  int behind = pages - c->copied;
  bool restart = pages >= c->pages * RESTART_FACTOR;
  /* The thread runs once half a threshold of frames is new since its last
   * checkpoint (not after every commit), and when the log is long enough to
   * restart, until the writer has only a few frames left to copy. */
  bool wake = behind >= c->pages / 2 || (restart && behind > RESTART_BEHIND);
  bool finish = restart && (behind <= RESTART_BEHIND || pages >= c->pages * RESTART_FORCE);
  if (c->running) {
    wake = finish = false;
  } else if (wake && !finish) {
    c->wanted = true;
    uv_cond_signal(&c->wake);
  }
  uv_mutex_unlock(&c->lock);
  if (finish) checkpoint(db, "writer");
  return SQLITE_OK;
}

int checkpointer_start(sw_checkpointer_t *c, const char *path, sqlite3 *writer, int pages) {
  *c = (sw_checkpointer_t){.writer = writer, .pages = pages > 0 ? pages : DEFAULT_PAGES};
  int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  /* A connection learns the file is in WAL mode when it first reads it;
   * until then a checkpoint does nothing. */
  if (rc == SQLITE_OK) rc = sqlite3_exec(c->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    sqlite3_close(c->db);
    return -EIO;
  }
  if (uv_mutex_init(&c->lock)) {
    sqlite3_close(c->db);
    return -ENOMEM;
  }
  if (uv_cond_init(&c->wake)) {
    uv_mutex_destroy(&c->lock);
    sqlite3_close(c->db);
    return -ENOMEM;
  }
  if (uv_thread_create(&c->thread, thread_main, c)) {
    uv_cond_destroy(&c->wake);
    uv_mutex_destroy(&c->lock);
    sqlite3_close(c->db);
    return -EAGAIN;
  }
  /* Replaces the automatic checkpoint, which is itself a wal hook. */
  sqlite3_wal_hook(writer, on_commit, c);
  c->started = true;
  return 0;
}

void checkpointer_stop(sw_checkpointer_t *c) {
  if (!c || !c->started) return;
  sqlite3_wal_autocheckpoint(c->writer, DEFAULT_PAGES);
  uv_mutex_lock(&c->lock);
  c->stop = true;
  uv_cond_signal(&c->wake);
  uv_mutex_unlock(&c->lock);
  uv_thread_join(&c->thread);
  uv_cond_destroy(&c->wake);
  uv_mutex_destroy(&c->lock);
  sqlite3_close(c->db);
  c->started = false;
}
