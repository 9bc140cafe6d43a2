/* tails.h: appends that are durable in the SQLite backend's append log but
 * not yet folded into their message's stored head (internal to src/store).
 *
 * One tail per message: its events in serial order. The commit thread is the
 * only writer; the loop thread reads (to fold the events into the heads it
 * returns). Events a transaction adds are invisible until it commits
 * (tail_commit), and a fold's removal of events happens at its commit too, so
 * a reader holding the lock sees, for every message, exactly the committed
 * events not yet folded, or (in the instant between a fold's COMMIT and its
 * tail_commit) some already folded ones, which it tells apart by serial
 * (an event with vseq <= the stored head's vseq is in the head already).
 *
 * Locking: every function that changes a tail takes the lock itself; readers
 * bracket their whole read (SQL and tails) with tails_lock/tails_unlock. The
 * commit thread reads its own structure without the lock. */
#ifndef SW_STORE_TAILS_H
#define SW_STORE_TAILS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/hash.h"
#include <uv.h>

typedef struct sw_tail_ev {
  int64_t vseq, ts;
  int64_t log_id; /* its append_log row */
  uint8_t *blob;  /* owned */
  size_t len;
  uint64_t hint;  /* the record's fold_hint (0 when read back from the log) */
} sw_tail_ev_t;

typedef struct sw_tail {
  char *key; /* app NUL channel NUL seq (8 bytes): owned, the hash key */
  size_t key_len;
  const char *app, *channel; /* point into key */
  int64_t seq;
  sw_tail_ev_t *ev;
  size_t n, cap;
  size_t n_committed;  /* ev[0..n_committed) are visible to readers */
  size_t fold_to;      /* ev[0..fold_to) are folded by the open transaction */
  uint64_t since_ms;   /* monotonic time ev[0] became visible */
  uint64_t last_ms;    /* monotonic time the last event became visible */
  /* Commit thread: the message's head is known to be stored with vseq
   * head_vseq (read or written by this process, and no retention ran on
   * its channel since), so an append needs no lookup. */
  bool verified;
  int64_t head_vseq;
  bool touched;        /* in the open transaction's list */
  UT_hash_handle hh;
} sw_tail_t;

typedef struct sw_tails {
  uv_mutex_t mu;
  sw_tail_t *all;
  sw_tail_t **touched; /* tails the open transaction changed (commit thread) */
  size_t n_touched, cap_touched;
} sw_tails_t;

int tails_init(sw_tails_t *t);
void tails_free(sw_tails_t *t);
void tails_lock(sw_tails_t *t);
void tails_unlock(sw_tails_t *t);

/* The tail of a message, or NULL. Readers: under the lock. */
sw_tail_t *tails_find(sw_tails_t *t, const char *app, const char *channel, int64_t seq);

/* Commit thread: adds an event (not visible until tails_commit). Copies the
 * blob. *tailp: the message's tail when the caller has looked it up
 * already (tails_find), or NULL; on success, the tail the event went to.
 * Passing the tail saves a second lookup (a SipHash of the key) per
 * append. 0 or -ENOMEM. */
int tails_push(sw_tails_t *t, sw_tail_t **tailp, const char *app, const char *channel, int64_t seq, int64_t vseq,
               int64_t ts, int64_t log_id, const uint8_t *blob, size_t len, uint64_t hint);

/* Commit thread: the open transaction folds ev[0..tail->n) into the head (or
 * drops them); they go at tails_commit. 0 or -ENOMEM. */
int tails_mark_folded(sw_tails_t *t, sw_tail_t *tail);

/* After the transaction committed: makes its events visible and removes the
 * folded ones (and tails left empty). now_ms: monotonic clock. */
void tails_commit(sw_tails_t *t, uint64_t now_ms);
/* After it rolled back: forgets its events and folds. */
void tails_rollback(sw_tails_t *t);

/* Commit thread: drops every tail of app (the app's rows are being deleted
 * in a transaction that has committed). */
void tails_drop_app(sw_tails_t *t, const char *app);

/* Commit thread: forgets that the heads of app's channel (all channels
 * when channel is NULL) are stored, after retention deleted messages. */
void tails_unverify(sw_tails_t *t, const char *app, const char *channel);

/* The highest committed event serial of a channel's tails, or -1. Readers:
 * under the lock. */
int64_t tails_channel_max(sw_tails_t *t, const char *app, const char *channel);

/* The smallest log id still needed (first unfolded event of any tail), or
 * INT64_MAX when none is. Commit thread. */
int64_t tails_min_log_id(const sw_tails_t *t);

#endif
