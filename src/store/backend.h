/* backend.h: the storage backend vtable (internal to src/store).
 *
 * store.c owns the commit thread and the queue; a backend only stores. The
 * thread contract every backend must honour:
 *  - write_batch, prune, delete_app, kv_put, exp_put and maintain are called only from the
 *    commit thread, one at a time;
 *  - history, last_seq, find_by_id, get, versions, kv_list and exp_get are called only from
 *    the loop thread, concurrently with the writes above;
 *  - open and close run on the loop thread while the commit thread does not
 *    exist (before it starts / after it is joined).
 * A backend adding a write path must keep those two sides safe against each
 * other (SQLite: two connections in WAL mode; memory: one mutex). */
#ifndef SW_STORE_BACKEND_H
#define SW_STORE_BACKEND_H

#include "store/store.h"
#include "util/buf.h"

typedef struct sw_backend sw_backend_t;

/* What sw_backend_ops_t.versions lists. */
enum { SW_EVENTS_VERSIONS = 0, SW_EVENTS_ANNOTATIONS = 1 };

typedef struct sw_backend_ops {
  /* Writes recs[0..n) in order in one atomic transaction (all or none) and
   * raises each channel's serial to the max seq/vseq written. INSERT adds a
   * message with vseq = seq; VERSION replaces the head blob and vseq of an
   * existing message and adds the version event (rules and error codes:
   * sw_store_op_t in store.h). store.c has validated the records and set
   * vseq = seq on INSERTs. Then count retention: for every record that ends
   * a run of consecutive records of one channel and has keep_count > 0,
   * messages of that channel with seq <= M - keep_count are deleted with
   * their versions, M being the highest message seq stored after the whole
   * batch (with a constant keep_count per channel this keeps at most the
   * keep_count newest, fewer if seqs have gaps). Durable per the synchronous
   * option when it returns 0. */
  int (*write_batch)(sw_backend_t *b, const sw_store_rec_t *recs, size_t n);
  /* Deletes up to about `limit` messages with expires_at != 0 &&
   * expires_at <= now and their versions (a backend may delete more);
   * *deleted gets the count of messages, *more whether expired ones may be
   * left (the caller then prunes again). Also deletes every expiring value
   * with expires <= now. */
  int (*prune)(sw_backend_t *b, int64_t now, size_t limit, size_t *deleted, bool *more);
  /* Deletes every message, version and channel serial of app_id. */
  int (*delete_app)(sw_backend_t *b, const char *app_id);
  /* Upserts (value != NULL) or deletes (value == NULL) ns/key. */
  int (*kv_put)(sw_backend_t *b, const char *ns, const char *key, const char *value);
  /* store_expiring_put, in one transaction: prune expired values, check
   * the bounds, insert. */
  int (*exp_put)(sw_backend_t *b, const char *id, const char *value, int64_t expires, int64_t now,
                 size_t max_count, size_t max_bytes);

  /* Reads: see store.h for the semantics; out is filled via sw_rows_builder. */
  int (*history)(sw_backend_t *b, const sw_history_q_t *q, sw_store_rows_t *out);
  int (*last_seq)(sw_backend_t *b, const char *app_id, const char *channel, int64_t *seq);
  int (*find_by_id)(sw_backend_t *b, const char *app_id, const char *channel, const char *msg_id,
                    sw_store_row_t *row);
  int (*get)(sw_backend_t *b, const char *app_id, const char *channel, int64_t seq,
             sw_store_row_t *row);
  /* Events of one message with lo < vseq < hi, ascending when forwards,
   * at most limit (> 0) rows: its versions (kind SW_EVENTS_VERSIONS) or its
   * annotations (SW_EVENTS_ANNOTATIONS). */
  int (*versions)(sw_backend_t *b, const char *app_id, const char *channel, int64_t seq,
                  bool forwards, size_t limit, int64_t lo, int64_t hi, int kind, sw_store_rows_t *out);
  /* Appends "key\0value\0" for every key of ns, ascending by key, to *out
   * and sets *count. */
  int (*kv_list)(sw_backend_t *b, const char *ns, sw_buf_t *out, size_t *count);
  /* store_expiring_get. */
  int (*exp_get)(sw_backend_t *b, const char *id, char **value, int64_t *expires);

  /* Assistant Cloud threads and messages (store.h): one write in its own
   * transaction (commit thread; res is zeroed by the caller), and the two
   * reads (loop thread; out is zeroed by the caller and filled with the
   * cloud_*_push helpers below). delete_app deletes an app's cloud rows too. */
  int (*cloud_write)(sw_backend_t *b, const sw_cloud_op_t *op, sw_cloud_result_t *res);
  int (*cloud_threads)(sw_backend_t *b, const sw_cloud_thread_q_t *q, sw_cloud_threads_t *out);
  int (*cloud_messages)(sw_backend_t *b, const sw_cloud_msg_q_t *q, sw_cloud_msgs_t *out);

  /* Optional (commit thread): background work between batches; force does
   * all of it now. Returns ms until it is due again, or -1 when nothing is
   * pending. close does what is pending first. */
  int64_t (*maintain)(sw_backend_t *b, bool force);

  /* Releases everything, including b itself. */
  void (*close)(sw_backend_t *b);
} sw_backend_ops_t;

struct sw_backend {
  const sw_backend_ops_t *ops;
};

/* Constructors: 0 and *out set, or a negative errno (nothing leaked). */
int backend_sqlite_open(const sw_store_opts_t *opts, sw_backend_t **out);
int backend_memory_open(const sw_store_opts_t *opts, sw_backend_t **out);

/* Accumulates history rows so the result is a single allocation: the row
 * array followed by every blob (store_rows_free is then one free()). A zeroed
 * builder is empty. Implemented in store.c. */
typedef struct sw_rows_builder {
  sw_buf_t rows;  /* packed sw_rows_entry_t */
  sw_buf_t blobs; /* concatenated blob bytes */
  size_t n;
} sw_rows_builder_t;

/* Appends one row (copies blob). 0 or -ENOMEM. */
int rows_builder_add(sw_rows_builder_t *rb, int64_t seq, int64_t vseq, int64_t ts,
                     const void *blob, size_t blob_len);
/* Moves the rows into *out (one allocation) and empties rb. 0 or -ENOMEM
 * (rb is then freed and *out is {NULL, 0}). */
int rows_builder_finish(sw_rows_builder_t *rb, sw_store_rows_t *out);
void rows_builder_free(sw_rows_builder_t *rb);

/* Appends a deep copy of *src to the list (store.c). 0 or -ENOMEM (the
 * list is then unchanged). */
int cloud_threads_push(sw_cloud_threads_t *l, const sw_cloud_thread_t *src);
int cloud_msgs_push(sw_cloud_msgs_t *l, const sw_cloud_msg_t *src);

#endif
