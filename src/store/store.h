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
 * -ESHUTDOWN (store closing), -EEXIST ((app, channel, seq) already stored,
 * or a serial that clashes, see sw_store_op_t), -ENOENT (a VERSION of a
 * message that is not stored), -ENOSPC (disk full), -EBUSY (database locked
 * by another process), -ENOTSUP (database schema newer than this build),
 * -EIO (anything else).
 *
 * Mutable messages (message updates, deletes and appends): a stored message
 * (seq N) can later receive version events, each with its own channel serial
 * (its "vseq", drawn from the same strictly increasing sequence as message
 * seqs). The store keeps per message one head (the aggregated latest state,
 * replaced by every version) and the list of version events. A message
 * without versions has vseq == seq.
 *
 * See docs/storage.md for the design and the durability guarantees. */
#ifndef SW_STORE_STORE_H
#define SW_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "metrics/hist.h"

typedef struct sw_store sw_store_t;
struct sw_buf;

/* One message to persist. All pointers are borrowed for the duration of
 * store_submit only (the store deep-copies them). */
typedef enum {
  /* A new message: seq is its serial, its vseq is seq (rec.vseq and
   * version_blob are ignored). -EEXIST if (app, channel, seq) is stored, or
   * if seq is the vseq of another message's head. */
  SW_STORE_INSERT = 0,
  /* A version event (update, delete, append) of the stored message `seq`:
   * vseq is the event's own serial (> seq; else store_submit fails with
   * -EINVAL), blob the new head (replaces the stored head's blob; its
   * timestamp, msg_id and expires_at stay those of the INSERT), version_blob
   * the event itself, timestamp the event's. msg_id and expires_at are
   * ignored; keep_count applies as for an INSERT. The submission fails with
   * -ENOENT when the message is not stored (never was, or was pruned or
   * deleted), and with -EEXIST when vseq <= the head's current vseq (versions
   * apply in serial order; a replayed or stale version is refused) or vseq is
   * already the vseq of another head or version of the channel. */
  SW_STORE_VERSION = 1,
  /* A version event that extends the stored message `seq` (an append): like
   * VERSION, but the caller gives only the event (version_blob; blob must be
   * empty) and the new head is the previous one with the event folded in by
   * sw_store_opts_t.fold. Reads see the folded head from the moment the
   * submission is durable. The SQLite backend logs the event alone and folds
   * heads later, several appends at a time (docs/storage.md, "Appends"), so
   * an append costs one small sequential row instead of a rewrite of the
   * whole message. Same errors as VERSION (-ENOENT, -EEXIST). */
  SW_STORE_APPEND = 2,
  /* An annotation of the stored message `seq` (RTAN, RSAN): vseq is the
   * annotation's own serial (> seq; else -EINVAL), version_blob the
   * annotation, timestamp its time. It is kept with the message's events
   * but listed only by store_annotations, never by store_versions. blob,
   * when not empty, is the message's new head (its annotation summary
   * changed): it replaces the head as a VERSION's does, and the head's vseq
   * becomes the annotation's serial, so a resume (history by vseq) finds
   * it; an empty blob leaves the head as it is. -ENOENT when the message is
   * not stored, -EEXIST when vseq is not above the head's current vseq or
   * is another event's serial. Deleted with its message, like versions. */
  SW_STORE_ANNOTATION = 3,
} sw_store_op_t;

/* One message (or version event) to persist. All pointers are borrowed for
 * the duration of store_submit only (the store deep-copies them). A zeroed
 * op/vseq/version_blob is a plain INSERT, as before versions existed. */
typedef struct sw_store_rec {
  const char *app_id;
  const char *channel;
  int64_t seq;         /* per (app, channel) serial; strictly increasing, assigned by the caller */
  int64_t timestamp;   /* ms since epoch */
  const char *msg_id;  /* may be NULL */
  const uint8_t *blob; /* the encoded message (opaque to the store); may be NULL if blob_len is 0 */
  size_t blob_len;
  int64_t expires_at;  /* ms; 0 = never (age retention) */
  int64_t keep_count;  /* count retention, see store_submit; 0 = unlimited */
  sw_store_op_t op;    /* SW_STORE_INSERT (0) or SW_STORE_VERSION */
  int64_t vseq;        /* VERSION only: the event's serial (> seq) */
  const uint8_t *version_blob; /* VERSION only: the event; may be NULL if its len is 0 */
  size_t version_blob_len;
  /* APPEND only, optional: a value opaque to the store, handed back to
   * sw_store_opts_t.fold with the event while the process lives (0 after a
   * restart). The server's says where the fragment lies in version_blob, so
   * a fold need not parse the event. */
  uint64_t fold_hint;
} sw_store_rec_t;

/* Called on the loop thread once the batch holding the submission is durable
 * (status 0) or failed (negative errno). */
typedef void (*sw_store_done_cb)(void *ud, int status);

/* One append event given to a fold: its version blob and the fold_hint of
 * its record (0 if unknown). */
typedef struct sw_store_event {
  const uint8_t *blob;
  size_t len;
  uint64_t hint;
} sw_store_event_t;

/* Folds append events (of SW_STORE_APPEND records, in serial order) into a
 * head: writes the new head blob to *out (appending to it). Must be pure and
 * thread-safe: the store calls it on its commit thread and on the loop
 * thread. 0, or a negative errno (the store then keeps the old head and logs
 * the failure; the events stay listed as versions). */
typedef int (*sw_store_fold_fn)(const uint8_t *head, size_t head_len, const sw_store_event_t *events, size_t n,
                                struct sw_buf *out);

typedef struct sw_store_opts {
  const char *path;     /* SQLite file; NULL selects the in-memory backend */
  int synchronous_full; /* 1: PRAGMA synchronous=FULL (survives power loss);
                           0: NORMAL (survives a process crash; WAL mode) */
  size_t max_batch;     /* max records per transaction; 0 means 4096 */
  sw_store_fold_fn fold; /* required for SW_STORE_APPEND (-EINVAL without it) */
} sw_store_opts_t;

/* Opens the backend (creating the SQLite file and schema if needed) and starts
 * the commit thread. The uv_async_t it registers keeps `loop` alive until
 * store_close. With SQLite, the file is reserved to this store until
 * store_close: an exclusive lock on "<path>.lock" (created if need be, never
 * removed) keeps any other store, in this process or another, from opening
 * it. On success *out is set and 0 returned; otherwise a negative errno
 * (-EINVAL, -ENOMEM, -EAGAIN (thread), -EBUSY (another store holds the
 * file's lock), -ENOTSUP (WAL unavailable or schema newer than this build),
 * -ENOENT/-EACCES (path), -EIO...), *out is untouched and nothing is left to
 * clean up. */
int store_open(uv_loop_t *loop, const sw_store_opts_t *opts, sw_store_t **out);

/* Queues n records for the commit thread, deep-copying them (strings and
 * blobs, into one allocation per call). cb(ud, status) is invoked exactly once
 * on the loop thread, after all n records are durable (status 0) or the
 * transaction failed (the n records of one call are always committed in the
 * same transaction: all or none; records apply in array order, so a call may
 * INSERT a message and then VERSION it). A failing call does not fail the
 * other calls committed in the same group. Callbacks run in submission
 * order. n may be 0: the callback then fires once everything submitted before
 * it is durable (a flush barrier). A call with n > max_batch is committed
 * alone in a transaction larger than max_batch rather than being split.
 *
 * The channel's serial (store_last_seq) becomes the max of itself and every
 * seq and vseq written. Count retention: for every record that ends a run of
 * consecutive records of one channel and has keep_count > 0, messages of
 * that channel with seq <= M - keep_count are deleted with their versions,
 * where M is the highest stored message seq of the channel after the batch
 * (version serials do not count, so updates alone never push messages out;
 * gaps in the message seqs, e.g. serials used by versions, keep fewer).
 *
 * Returns 0 (cb will be called), or -EINVAL (NULL strings, a NULL blob with
 * a length, an unknown op, a VERSION with vseq <= seq) / -ENOMEM /
 * -ESHUTDOWN (cb will NOT be called). */
int store_submit(sw_store_t *s, const sw_store_rec_t *recs, size_t n, sw_store_done_cb cb,
                 void *ud);

/* store_submit with the caller's state in the submission's own allocation:
 * *ud_out is set to ud_size bytes (aligned for any type, uninitialised)
 * that cb later gets as its ud; they are freed after cb returns. The loop
 * thread may fill them after the call (the commit thread never reads them).
 * Saves the caller an allocation of its own per submission. */
int store_submit_ud(sw_store_t *s, const sw_store_rec_t *recs, size_t n, sw_store_done_cb cb, size_t ud_size,
                    void **ud_out);

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
  int64_t seq;       /* the message's seq */
  int64_t timestamp; /* a head: the message's (INSERT) timestamp; a version: the event's */
  uint8_t *blob;     /* NULL when blob_len is 0 */
  size_t blob_len;
  int64_t vseq;      /* a head: the serial of its latest version, seq if none;
                        a version event: its serial */
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
  int64_t start, end; /* message timestamp bounds in ms, inclusive; 0 / INT64_MAX for none */
  bool forwards;      /* ascending seq when true, else descending */
  size_t limit;       /* max rows; 0 returns no rows */
  int64_t now;        /* rows with expires_at != 0 && expires_at <= now are invisible */
  bool by_vseq;       /* after_seq/before_seq bound the heads' vseq instead of seq,
                         and rows are ordered by vseq: "every message whose head
                         changed after serial S" is after_seq = S */
} sw_history_q_t;

/* Runs a history query over message heads: each message appears once, with
 * its latest head (blob) and vseq. Sees every submission whose callback
 * reported 0. On success returns 0 and fills *out (out->rows NULL when n is
 * 0), which the caller frees with store_rows_free. On error returns -EINVAL /
 * -ENOMEM / -ESHUTDOWN / -EIO and *out is {NULL, 0}. */
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

/* Finds the stored message with msg_id (its INSERT's) on (app, channel) and
 * returns its head; if several messages share the id, the one with the
 * highest seq. No index: the SQLite backend scans the channel from its
 * newest message (the server does not call this). Expired rows are found until
 * they are pruned. Returns 1 when found (row filled; row->blob is malloc'd,
 * the caller free()s it; NULL if blob_len is 0), 0 when not found, or a
 * negative errno. */
int store_find_by_id(sw_store_t *s, const char *app_id, const char *channel, const char *msg_id,
                     sw_store_row_t *row);

/* The head of message seq on (app, channel). Like store_find_by_id, an
 * expired message is found until it is pruned. Returns 1 when found (row
 * filled; row->blob is malloc'd, the caller free()s it; NULL if blob_len is
 * 0), 0 when not stored, or -EINVAL / -ENOMEM / -ESHUTDOWN / -EIO. */
int store_get(sw_store_t *s, const char *app_id, const char *channel, int64_t seq,
              sw_store_row_t *row);

/* The version events of message seq on (app, channel), ordered by vseq:
 * each row has seq = the message's seq, vseq = the event's serial,
 * timestamp = the event's, blob = its version_blob.
 *  forwards:  rows with vseq > after_vseq, ascending (after_vseq < 0: from
 *             the first);
 *  !forwards: rows with vseq < after_vseq, descending (after_vseq < 0: from
 *             the newest), i.e. after_vseq is then "before_vseq".
 * Either way, the next page starts from the last row's vseq. At most limit
 * rows (0: none). A message without versions, or not stored, gives 0 rows
 * (store_get tells them apart); versions are visible until their message is
 * pruned. Returns 0 and fills *out (free with store_rows_free), or -EINVAL /
 * -ENOMEM / -ESHUTDOWN / -EIO with *out = {NULL, 0}. */
int store_versions(sw_store_t *s, const char *app_id, const char *channel, int64_t seq,
                   bool forwards, size_t limit, int64_t after_vseq, sw_store_rows_t *out);

/* The annotations of message seq (SW_STORE_ANNOTATION records), with the
 * paging rules of store_versions: rows have seq = the message's seq, vseq =
 * the annotation's serial, timestamp its time, blob the annotation. Visible
 * until their message is pruned. Same returns as store_versions. */
int store_annotations(sw_store_t *s, const char *app_id, const char *channel, int64_t seq,
                      bool forwards, size_t limit, int64_t after_vseq, sw_store_rows_t *out);

/* ---- Maintenance (executed by the commit thread, in queue order) ---- */

/* Queues deletion of messages with expires_at != 0 && expires_at <= now,
 * with their versions (a message's age counts from its INSERT: a version does
 * not extend it), and of expiring values (store_expiring_put) with
 * expires <= now.
 * Asynchronous, no callback. A large prune runs as several bounded
 * transactions (2000 rows each), each continuation requeued behind whatever
 * was submitted meanwhile, so publish latency stays bounded; hence a
 * zero-record submission queued after store_prune only guarantees the first
 * chunk ran. Silently dropped if the store is closing or memory is short (it
 * is periodic). Counts in sw_store_stats_t.pruned. */
void store_prune(sw_store_t *s, int64_t now);

/* Deletes every message (with its versions) of an app, its channel
 * serials (a recreated app starts its serials again at 0) and its Assistant
 * Cloud threads and messages. Blocks the loop
 * thread until the commit thread has done it (after everything queued
 * before). Returns 0, -EINVAL, -ESHUTDOWN, -EIO... */
int store_delete_app(sw_store_t *s, const char *app_id);

/* ---- Key-value table for small server state (rare, write-through) ---- */

/* Sets ns/key to value, or deletes it when value is NULL (deleting a missing
 * key is not an error). Synchronous: executed on the commit thread (which owns
 * the SQLite write connection) while the loop thread waits, so it is durable
 * when it returns 0. Returns 0, -EINVAL, -ENOMEM, -ESHUTDOWN, -EIO... */
int store_kv_put(sw_store_t *s, const char *ns, const char *key, const char *value);

/* Like store_kv_put, but without blocking the loop thread: ns, key and value
 * are copied, the write is queued behind everything submitted before it,
 * and cb(ud, status) runs on the loop thread once it is durable (0) or
 * failed (negative errno), in order with the submissions' callbacks. For
 * checks that must not hang the server when the disk does (GET /readyz).
 * Returns 0 (cb will be called), or -EINVAL / -ENOMEM / -ESHUTDOWN (cb will
 * NOT be called). */
int store_kv_put_async(sw_store_t *s, const char *ns, const char *key, const char *value, sw_store_done_cb cb,
                       void *ud);

/* Calls each(ud, key, value) for every key of ns, in ascending byte order of
 * key. The entries are snapshotted before the first call, so `each` may call
 * any store function. Strings are valid only during the call. Returns 0 or a
 * negative errno (then `each` was not called). */
int store_kv_list(sw_store_t *s, const char *ns,
                  void (*each)(void *ud, const char *key, const char *value), void *ud);

/* ---- Values with an expiry (Ably tokens kept server-side) ----
 *
 * A small table of (id, value, expires), for tokens too large to hand to a
 * client (auth/token.h, "References"). Bounded: the caller passes the most
 * entries and bytes of values it allows. */

/* Stores value under id until expires (ms since the epoch). First deletes
 * every entry with expires <= now; then refuses with -EDQUOT when max_count
 * entries are stored, or when value would take the values' total over
 * max_bytes. Synchronous (the commit thread writes it while the loop thread
 * waits), durable when it returns 0. Returns 0, -EEXIST (id is stored),
 * -EDQUOT, -EINVAL, -ENOMEM, -ESHUTDOWN, -EIO... */
int store_expiring_put(sw_store_t *s, const char *id, const char *value, int64_t expires, int64_t now,
                       size_t max_count, size_t max_bytes);

/* Reads id: 1 with *value (malloc'd, the caller frees) and *expires, 0 when
 * it is not stored (never was, or pruned after it expired; an expired entry
 * not yet pruned is returned, with its expiry), or a negative errno. */
int store_expiring_get(sw_store_t *s, const char *id, char **value, int64_t *expires);
/* ---- Assistant Cloud threads and messages (src/cloud/) ----
 *
 * Threads and their messages, kept in the same database as history and
 * keyed by (app, workspace, id): every read and write names the workspace,
 * so nothing reaches another workspace's rows. Writes go through the commit
 * thread like publishes (each in its own transaction, after what was queued
 * before it) and complete on the loop thread; reads are synchronous.
 * Times are ms since the epoch. Callers bound every size (src/cloud/cloud.h
 * has the limits); the store copies what it is given.
 *
 * Errors of a write: -ENOENT (the thread, or the message named, is not in
 * that workspace), -ESRCH (MSG_CREATE: the parent is not in the thread),
 * -EEXIST (THREAD_CREATE without upsert: the external_id is taken),
 * -EDQUOT (a count bound below would be passed), plus the store's usual
 * -EINVAL / -ENOMEM / -ESHUTDOWN / -EIO. */

#define SW_CLOUD_MAX_THREADS_PER_WORKSPACE 10000 /* -EDQUOT beyond */
#define SW_CLOUD_MAX_MESSAGES_PER_THREAD 10000   /* -EDQUOT beyond */
#define SW_CLOUD_ID_MAX 64                       /* ids the server makes, NUL included */

typedef enum {
  SW_CLOUD_THREAD_CREATE = 1, /* thread_id is the new id; with upsert and an external_id
                                 already in the workspace, that thread's id is the result */
  SW_CLOUD_THREAD_UPDATE,     /* the fields given (title/metadata non-NULL, last_message_at
                                 >= 0, is_archived >= 0); updated_at = now */
  SW_CLOUD_THREAD_DELETE,     /* with its messages and their feedback */
  SW_CLOUD_MSG_CREATE,        /* id in thread_id; parent by parent_id or, failing that,
                                 parent_external_id (the newest with it); height = the
                                 parent's + 1 (0 for a root); raises the thread's
                                 last_message_at and updated_at to now */
  SW_CLOUD_MSG_UPDATE,        /* content (and format when non-NULL); updated_at = now */
  SW_CLOUD_MSG_DELETE,        /* ids[0..n_ids) of thread_id; ids not there are skipped */
  SW_CLOUD_FEEDBACK,          /* feedback id on message `id` of thread_id */
} sw_cloud_op_kind_t;

/* One write. Strings are borrowed for the duration of store_cloud_write. */
typedef struct sw_cloud_op {
  sw_cloud_op_kind_t kind;
  const char *app_id, *workspace, *thread_id;
  const char *id;          /* MSG_CREATE/UPDATE: the message; FEEDBACK: the message */
  const char *external_id; /* THREAD_CREATE, MSG_CREATE: NULL for none */
  bool upsert;             /* THREAD_CREATE */
  const char *title;       /* THREAD_CREATE/UPDATE: NULL for none / unchanged */
  const char *metadata;    /* JSON text; NULL for none / unchanged */
  int64_t last_message_at; /* THREAD_CREATE: its value; THREAD_UPDATE: < 0 unchanged */
  int is_archived;         /* THREAD_UPDATE: -1 unchanged, 0 or 1 */
  const char *parent_id, *parent_external_id; /* MSG_CREATE: NULL for none */
  const char *format;      /* MSG_CREATE (required), MSG_UPDATE (NULL: unchanged) */
  const char *content;     /* MSG_CREATE/UPDATE: JSON text */
  const char *const *ids;  /* MSG_DELETE */
  size_t n_ids;
  const char *feedback_id, *feedback_type, *comment; /* FEEDBACK (comment may be NULL) */
  int64_t now;
} sw_cloud_op_t;

typedef struct sw_cloud_result {
  char id[SW_CLOUD_ID_MAX];        /* THREAD_CREATE: the thread's id (an existing one after upsert) */
  bool existed;                    /* THREAD_CREATE: upsert found the external_id */
  char parent_id[SW_CLOUD_ID_MAX]; /* MSG_CREATE: the parent resolved, "" for a root */
  int64_t height;                  /* MSG_CREATE */
  size_t deleted;                  /* MSG_DELETE: messages deleted */
} sw_cloud_result_t;

/* status 0 with res filled, or a negative errno (res zeroed). */
typedef void (*sw_cloud_done_cb)(void *ud, int status, const sw_cloud_result_t *res);

/* Queues op for the commit thread (deep copy, one allocation); cb runs on
 * the loop thread once it is durable or failed, in submission order with
 * every other write. Returns 0 (cb will be called), or -EINVAL (a required
 * string missing) / -ENOMEM / -ESHUTDOWN (cb will not be called). */
int store_cloud_write(sw_store_t *s, const sw_cloud_op_t *op, sw_cloud_done_cb cb, void *ud);

typedef struct sw_cloud_thread {
  char *id, *external_id, *title, *metadata; /* NULL when absent; metadata is JSON text */
  int64_t created_at, updated_at, last_message_at;
  bool is_archived;
} sw_cloud_thread_t;

typedef struct sw_cloud_msg {
  char *id, *parent_id, *external_id, *format, *content; /* parent/external NULL when absent */
  int64_t height, created_at, updated_at;
} sw_cloud_msg_t;

/* Results of the reads below; free with store_cloud_threads_free /
 * store_cloud_msgs_free. */
typedef struct sw_cloud_threads {
  sw_cloud_thread_t *v;
  size_t n;
} sw_cloud_threads_t;
typedef struct sw_cloud_msgs {
  sw_cloud_msg_t *v;
  size_t n;
} sw_cloud_msgs_t;

typedef struct sw_cloud_thread_q {
  const char *app_id, *workspace;
  const char *id;          /* that thread only (the filters below then do not apply) */
  int archived;            /* -1 any, 0 or 1 */
  const char *external_id; /* NULL: any */
  const char *after;       /* a thread id: only the threads listed after it; an id not in
                              the workspace gives no rows */
  size_t limit;            /* 0 gives no rows */
} sw_cloud_thread_q_t;

/* Threads of a workspace, most recent first: last_message_at descending,
 * then id descending. 0 and *out filled, or a negative errno. */
int store_cloud_threads(sw_store_t *s, const sw_cloud_thread_q_t *q, sw_cloud_threads_t *out);

typedef struct sw_cloud_msg_q {
  const char *app_id, *workspace, *thread_id;
  const char *format; /* NULL: any */
  const char *after;  /* a message id: only older messages; an id not in the thread gives no rows */
  size_t limit;
} sw_cloud_msg_q_t;

/* Messages of one thread, newest first (creation order, descending). A
 * thread not in the workspace has no messages: check it with
 * store_cloud_threads. 0 and *out filled, or a negative errno. */
int store_cloud_messages(sw_store_t *s, const sw_cloud_msg_q_t *q, sw_cloud_msgs_t *out);

void store_cloud_threads_free(sw_cloud_threads_t *t);
void store_cloud_msgs_free(sw_cloud_msgs_t *m);

/* ---- Introspection (tests, metrics) ---- */

typedef struct sw_store_stats {
  uint64_t batches;     /* message transactions committed */
  uint64_t records;     /* records (INSERTs and VERSIONs) committed */
  uint64_t submissions; /* submissions completed with status 0 */
  uint64_t failures;    /* submissions completed with an error */
  uint64_t pruned;      /* messages deleted by store_prune (versions not counted) */
  /* Wall time of each committed message transaction (the backend's
   * write_batch, fsync included): one observation per `batches`. Measured
   * on the commit thread and handed over with the completions. */
  sw_hist_t commit_latency;
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
