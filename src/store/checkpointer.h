/* checkpointer.h: WAL checkpoints of one SQLite file, off the commit thread
 * (internal to src/store).
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that crosses the
 * threshold: that commit then copies every page of the WAL into the database
 * and syncs it, tens of milliseconds during which no batch is acknowledged
 * and no message is delivered. Here the writer's automatic checkpoint is
 * off; a hook on the writer wakes a thread of our own, which checkpoints
 * (PASSIVE: it never waits for, nor blocks, the writer) on its own
 * connection.
 *
 * A passive checkpoint alone never shrinks the WAL of a busy writer: SQLite
 * restarts the log only when a write transaction begins while every frame is
 * already copied, and a writer that commits during the checkpoint's sync has
 * always added new frames by then. So once the WAL is several thresholds
 * long, the hook also runs a passive checkpoint on the writer itself, while
 * the thread is idle: it has only the few frames the thread has not copied
 * yet, and the writer's next transaction starts the log afresh. */
#ifndef SW_STORE_CHECKPOINTER_H
#define SW_STORE_CHECKPOINTER_H

#include <sqlite3.h>
#include <stdbool.h>
#include <uv.h>

typedef struct sw_checkpointer {
  sqlite3 *writer; /* borrowed: its wal hook is ours while started */
  sqlite3 *db;     /* the thread's own connection */
  int pages;       /* WAL length (pages) that wakes the thread */
  uv_thread_t thread;
  uv_mutex_t lock;
  uv_cond_t wake;
  bool wanted, running, stop; /* under lock */
  int copied;                 /* under lock: frames the last checkpoint copied */
  bool started;
} sw_checkpointer_t;

/* Opens a connection to `path`, turns the writer's automatic checkpoint off
 * and starts the thread. `pages` <= 0 picks SQLite's default threshold
 * (1000 pages). Returns 0 or a negative errno (nothing started). */
int checkpointer_start(sw_checkpointer_t *c, const char *path, sqlite3 *writer, int pages);

/* Stops the thread, closes its connection and gives the writer back its
 * automatic checkpoint. NULL-safe; a checkpointer never started is a no-op. */
void checkpointer_stop(sw_checkpointer_t *c);

#endif
