/* store.h: durable message storage (history, channel serials, small kv state).
 *
 * Threading: every function here is called from the libuv loop thread. Writes
 * (store_submit, store_prune, store_delete_app, store_kv_put) are executed by
 * one commit thread that owns the write connection; submissions are grouped
 * into one transaction per batch ("group commit") and their callbacks come
 * back to the loop thread through a uv_async_t. Reads are synchronous on the
 * loop thread (a separate read-only SQLite connection in WAL mode, or the
 * memory backend's structures under a mutex).
 *
 * Errors are negative errno values: -EINVAL (bad argument), -ENOMEM,
 * -ESHUTDOWN (store closing), -EEXIST ((app, channel, seq) already stored),
 * -ENOSPC (disk full), -EBUSY (database locked by another process),
 * -ENOTSUP (database schema newer than this build), -EIO (anything else).
 *
 * See docs/storage.md for the design and the durability guarantees. */
#ifndef SW_STORE_STORE_H
#define SW_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct sw_store sw_store_t;

/* One message to persist. All pointers are borrowed for the duration of
 * store_submit only (the store deep-copies them). */
typedef struct sw_store_rec {
  const char *app_id;
  const char *channel;
  int64_t seq;         /* per (app, channel) serial; strictly increasing, assigned by the caller */
  int64_t timestamp;   /* ms since epoch */
  const char *msg_id;  /* may be NULL */
  const uint8_t *blob; /* the encoded message (opaque to the store); may be NULL if blob_len is 0 */
  size_t blob_len;
  int64_t expires_at;  /* ms; 0 = never (age retention) */
  int64_t keep_count;  /* keep at most this many newest per channel; 0 = unlimited */
} sw_store_rec_t;

/* Called on the loop thread once the batch holding the submission is durable
 * (status 0) or failed (negative errno). */
typedef void (*sw_store_done_cb)(void *ud, int status);

typedef struct sw_store_opts {
  const char *path;     /* SQLite file; NULL selects the in-memory backend */
  int synchronous_full; /* 1: PRAGMA synchronous=FULL (survives power loss);
                           0: NORMAL (survives a process crash; WAL mode) */
  size_t max_batch;     /* max records per transaction; 0 means 4096 */
} sw_store_opts_t;

/* Opens the backend (creating the SQLite file and schema if needed) and starts
 * the commit thread. The uv_async_t it registers keeps `loop` alive until
 * store_close. On success *out is set and 0 returned; otherwise a negative
 * errno (-EINVAL, -ENOMEM, -EAGAIN (thread), -ENOTSUP (WAL unavailable or
 * schema newer than this build), -ENOENT/-EACCES (path), -EIO...), *out is
 * untouched and nothing is left to clean up. */
int store_open(uv_loop_t *loop, const sw_store_opts_t *opts, sw_store_t **out);

/* Queues n records for the commit thread, deep-copying them (strings and
 * blobs, into one allocation per call). cb(ud, status) is invoked exactly once
 * on the loop thread, after all n records are durable (status 0) or the
 * transaction failed (the n records of one call are always committed in the
 * same transaction: all or none). Callbacks run in submission order. n may be
 * 0: the callback then fires once everything submitted before it is durable (a
 * flush barrier). A call with n > max_batch is committed alone in a
 * transaction larger than max_batch rather than being split.
 * Returns 0 (cb will be called), or -EINVAL / -ENOMEM / -ESHUTDOWN (cb will
 * NOT be called). */
int store_submit(sw_store_t *s, const sw_store_rec_t *recs, size_t n, sw_store_done_cb cb,
                 void *ud);

/* Flushes what is queued (its transactions are committed as usual), stops and
 * joins the commit thread, invokes every pending callback (on this thread,
 * before returning), closes the database and uv_close()s the async handle; the
 * store's memory is freed in that close callback, so the caller keeps running
 * the loop until it has no more work. `s` must not be used after this call
 * except from callbacks invoked during it: there, submissions fail with
 * -ESHUTDOWN while reads still work until the callbacks are done. */
void store_close(sw_store_t *s);

/* ---- Reads (loop thread, synchronous) ---- */

typedef struct sw_store_row {
  int64_t seq;
  int64_t timestamp;
  uint8_t *blob; /* NULL when blob_len is 0 */
  size_t blob_len;
} sw_store_row_t;

/* rows and all their blobs are one allocation; free with store_rows_free. */
typedef struct sw_store_rows {
  sw_store_row_t *rows;
  size_t n;
} sw_store_rows_t;

typedef struct sw_history_q {
  const char *app_id, *channel;
  int64_t after_seq;  /* only seq > after_seq (-1 for none) */
  int64_t before_seq; /* only seq < before_seq (INT64_MAX for none) */
  int64_t start, end; /* timestamp bounds in ms, inclusive; 0 / INT64_MAX for none */
  bool forwards;      /* ascending seq when true, else descending */
  size_t limit;       /* max rows; 0 returns no rows */
  int64_t now;        /* rows with expires_at != 0 && expires_at <= now are invisible */
} sw_history_q_t;

/* Runs a history query. Sees every submission whose callback reported 0.
 * On success returns 0 and fills *out (out->rows NULL when n is 0), which
 * the caller frees with store_rows_free. On error returns -EINVAL / -ENOMEM /
 * -ESHUTDOWN / -EIO and *out is {NULL, 0}. */
int store_history(sw_store_t *s, const sw_history_q_t *q, sw_store_rows_t *out);

/* Frees the rows of a store_history result and resets *r to {NULL, 0}.
 * NULL or an already-empty r is fine. */
void store_rows_free(sw_store_rows_t *r);

/* Highest seq ever durably stored for (app, channel), including rows since
 * deleted by retention (kept in a separate table, so a channel's serial keeps
 * increasing after pruning and across restarts). Returns 0 with *seq = -1 when
 * the channel never had a message (or its app was deleted), else -EINVAL /
 * -ESHUTDOWN / -EIO. */
int store_last_seq(sw_store_t *s, const char *app_id, const char *channel, int64_t *seq);

/* Finds the stored message with msg_id on (app, channel); if several rows
 * share the id, the one with the highest seq. Expired rows are found until
 * they are pruned. Returns 1 when found (row filled; row->blob is malloc'd,
 * the caller free()s it; NULL if blob_len is 0), 0 when not found, or a
 * negative errno. */
int store_find_by_id(sw_store_t *s, const char *app_id, const char *channel, const char *msg_id,
                     sw_store_row_t *row);

/* ---- Maintenance (executed by the commit thread, in queue order) ---- */

/* Queues deletion of rows with expires_at != 0 && expires_at <= now.
 * Asynchronous, no callback. A large prune runs as several bounded
 * transactions (2000 rows each), each continuation requeued behind whatever
 * was submitted meanwhile, so publish latency stays bounded; hence a
 * zero-record submission queued after store_prune only guarantees the first
 * chunk ran. Silently dropped if the store is closing or memory is short (it
 * is periodic). Counts in sw_store_stats_t.pruned. */
void store_prune(sw_store_t *s, int64_t now);

/* Deletes every message of an app and its channel serials (a recreated app
 * starts its serials again at 0). Blocks the loop thread until the commit
 * thread has done it (after everything queued before). Returns 0, -EINVAL,
 * -ESHUTDOWN, -EIO... */
int store_delete_app(sw_store_t *s, const char *app_id);

/* ---- Key-value table for small server state (rare, write-through) ---- */

/* Sets ns/key to value, or deletes it when value is NULL (deleting a missing
 * key is not an error). Synchronous: executed on the commit thread (which owns
 * the SQLite write connection) while the loop thread waits, so it is durable
 * when it returns 0. Returns 0, -EINVAL, -ENOMEM, -ESHUTDOWN, -EIO... */
int store_kv_put(sw_store_t *s, const char *ns, const char *key, const char *value);

/* Calls each(ud, key, value) for every key of ns, in ascending byte order of
 * key. The entries are snapshotted before the first call, so `each` may call
 * any store function. Strings are valid only during the call. Returns 0 or a
 * negative errno (then `each` was not called). */
int store_kv_list(sw_store_t *s, const char *ns,
                  void (*each)(void *ud, const char *key, const char *value), void *ud);

/* ---- Introspection (tests, metrics) ---- */

typedef struct sw_store_stats {
  uint64_t batches;     /* message transactions committed */
  uint64_t records;     /* records committed */
  uint64_t submissions; /* submissions completed with status 0 */
  uint64_t failures;    /* submissions completed with an error */
  uint64_t pruned;      /* rows deleted by store_prune */
} sw_store_stats_t;

/* Copies the counters (consistent with each other) into *st. Any thread. */
void store_stats(sw_store_t *s, sw_store_stats_t *st);

/* Test hook: while hold is true the commit thread takes no new work, so a
 * test can queue many submissions and observe them committed as one group.
 * store_close releases the hold, and a synchronous call (store_delete_app,
 * store_kv_put) processes the whole queue despite it (instead of deadlocking).
 * Not for production use. */
void store_debug_hold(sw_store_t *s, bool hold);

#endif
