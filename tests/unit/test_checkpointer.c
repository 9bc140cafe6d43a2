/* Unit tests: WAL checkpoints off the writer (src/store/checkpointer.c).
 *
 * With the checkpointer started the writer's automatic checkpoint is off,
 * so the WAL would grow without bound unless the thread (and the writer's
 * finishing checkpoints) copy it back and let it restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/checkpointer.h"

typedef struct fx {
  char dir[64];
  char path[96];
  sqlite3 *w;
} fx_t;

static int setup(void **state) {
  fx_t *fx = calloc(1, sizeof *fx);
  snprintf(fx->dir, sizeof fx->dir, "/tmp/sw_ckpt_XXXXXX");
  if (!mkdtemp(fx->dir)) return -1;
  snprintf(fx->path, sizeof fx->path, "%s/db", fx->dir);
  if (sqlite3_open(fx->path, &fx->w) != SQLITE_OK) return -1;
  if (sqlite3_exec(fx->w, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                          "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)", NULL, NULL, NULL) != SQLITE_OK)
    return -1;
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fx_t *fx = *state;
  sqlite3_close(fx->w);
  char p[128];
  const char *sfx[] = {"", "-wal", "-shm"};
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s%s", fx->path, sfx[i]);
    unlink(p);
  }
  rmdir(fx->dir);
  free(fx);
  return 0;
}

/* One transaction that dirties about `pages` pages (a blob of that size). */
static void write_txn(fx_t *fx, int pages) {
  static uint8_t blob[64 * 4096];
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(fx->w, "INSERT INTO t(v) VALUES(?1)", -1, &st, NULL), SQLITE_OK);
  sqlite3_bind_blob(st, 1, blob, pages * 4000, SQLITE_STATIC);
  assert_int_equal(sqlite3_step(st), SQLITE_DONE);
  sqlite3_finalize(st);
}

/* The WAL's length in frames, without copying anything (a passive
 * checkpoint from a connection of its own would copy: ask the writer's
 * file size instead). */
static long wal_bytes(fx_t *fx) {
  char p[128];
  snprintf(p, sizeof p, "%s-wal", fx->path);
  struct stat st;
  return stat(p, &st) == 0 ? (long)st.st_size : 0;
}

/* How many times the log restarted: the WAL header's checkpoint sequence
 * number (bytes 12-15, big-endian), which each restart increments. */
static uint32_t wal_restarts(fx_t *fx) {
  char p[128];
  snprintf(p, sizeof p, "%s-wal", fx->path);
  FILE *f = fopen(p, "rb");
  uint8_t h[16] = {0};
  if (f) {
    if (fread(h, 1, sizeof h, f) != sizeof h) memset(h, 0, sizeof h);
    fclose(f);
  }
  return (uint32_t)h[12] << 24 | (uint32_t)h[13] << 16 | (uint32_t)h[14] << 8 | h[15];
}

static int64_t count_rows(fx_t *fx) {
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(fx->w, "SELECT count(*) FROM t", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}

/* Thousands of pages written through a 16-page threshold: the log keeps
 * restarting, though the writer never checkpoints on its own. */
static void test_wal_stays_bounded(void **state) {
  fx_t *fx = *state;
  sw_checkpointer_t c;
  assert_int_equal(checkpointer_start(&c, fx->path, fx->w, 16), 0);
  for (int i = 0; i < 600; i++) {
    write_txn(fx, 4);
    usleep(300); /* a live writer's gaps between batches */
  }
  checkpointer_stop(&c);
  /* ~2,400 pages went through. The log restarts at 4 thresholds once the
   * thread has left the writer little to copy, and at 16 whatever is left,
   * so it restarted many times (the exact count and the file's size depend
   * on how long the thread's checkpoints ran, which a loaded machine
   * stretches: its file, which keeps its longest length, is no measure). */
  assert_true(wal_restarts(fx) >= 2);
  assert_int_equal(count_rows(fx), 600);
}

/* Past the threshold but short of the restart length, the copying is the
 * thread's alone: it must have checkpointed on its own connection. */
static void test_thread_copies_frames(void **state) {
  fx_t *fx = *state;
  sw_checkpointer_t c;
  assert_int_equal(checkpointer_start(&c, fx->path, fx->w, 16), 0);
  write_txn(fx, 10);
  write_txn(fx, 10); /* ~20 frames: over 16, under the restart length (64) */
  int copied = 0;
  for (int i = 0; i < 200 && copied == 0; i++) {
    usleep(10000);
    uv_mutex_lock(&c.lock);
    copied = c.copied;
    uv_mutex_unlock(&c.lock);
  }
  checkpointer_stop(&c);
  assert_true(copied >= 16);
}

/* Without the checkpointer, the same writes with automatic checkpoints off
 * grow the WAL with every page: what the test above would see if the
 * thread did nothing (a passive checkpoint on a connection that never read
 * the file is a silent no-op, a bug this catches). */
static void test_without_it_wal_grows(void **state) {
  fx_t *fx = *state;
  sqlite3_wal_autocheckpoint(fx->w, 0);
  for (int i = 0; i < 600; i++) write_txn(fx, 4);
  assert_true(wal_bytes(fx) > 2000L * 4096);
  assert_int_equal(wal_restarts(fx), 0);
}

/* Stopping gives the writer its automatic checkpoint back. */
static void test_stop_restores_autocheckpoint(void **state) {
  fx_t *fx = *state;
  sw_checkpointer_t c;
  assert_int_equal(checkpointer_start(&c, fx->path, fx->w, 16), 0);
  checkpointer_stop(&c);
  checkpointer_stop(&c); /* twice: a no-op */
  for (int i = 0; i < 600; i++) write_txn(fx, 4);
  /* SQLite's own threshold (1000 pages) bounds it now. */
  assert_true(wal_bytes(fx) < 1100L * 4120);
  assert_int_equal(count_rows(fx), 600);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_wal_stays_bounded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_thread_copies_frames, setup, teardown),
      cmocka_unit_test_setup_teardown(test_without_it_wal_grows, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stop_restores_autocheckpoint, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
