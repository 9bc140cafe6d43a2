/* bus.h: the cluster layer's interface, what core/ will call to publish on
 * a channel and to hear of its messages, whether the channel lives in this
 * process only or is shared by several nodes (docs/cluster.md).
 *
 * NOT WIRED YET: core/ still calls store_submit and fans out itself
 * (core/channel.c); `switchboard serve` does not accept --redis. This file
 * fixes the contract so that the wiring can follow without reshaping it.
 *
 * The contract, for every implementation:
 *
 *  publish   bus_publish(channel, msgs) assigns the n messages consecutive
 *            serials (seqs) of the channel, makes them durable in the
 *            channel's log and calls done(first_seq) once they are: only
 *            then may the publisher be acknowledged. Or it refuses with an
 *            Ably error: at once (bus_publish returns -1 and fills *err;
 *            done is not called) when it knows it cannot (the shared store
 *            is unreachable: 50004), or later through done (50003 when the
 *            store did not answer in time: the publish may have happened,
 *            as with any timeout, which is what idempotent ids settle;
 *            50000 when the store refused it). A publish is never
 *            acknowledged unsaved and never queued without bound.
 *  deliver   every message published on a channel this node subscribes to,
 *            by ANY node, reaches deliver() exactly once, in seq order,
 *            with no gap other than messages already gone from the log
 *            (retention), after the channel's ready() and before its
 *            unsubscribe. The node's own publishes come back through
 *            deliver() like everybody else's: fan-out has one path, and a
 *            message is encoded once per format per node by core/ there.
 *            deliver() may run before or after the publisher's done().
 *  ready     ready(channel, last_seq) once per subscribe: from then on every
 *            message with seq > last_seq is delivered. core/ uses last_seq
 *            as the channel's durable_seq for the replay hand-over (a
 *            replay reads the log up to durable_seq; live delivery goes on
 *            after it, as in docs/design.md, "Continuity").
 *  read      bus_read(range) reads the log by seq, forwards or backwards,
 *            in the store's row shape (sw_store_row_t), asynchronously.
 *  state     bus_is_up() and state(up): whether publishes can be accepted.
 *            While down, live connections stay up; publishes are refused
 *            (50004) and the implementation reconnects by itself.
 *
 * Subscriptions are reference counted per channel: N attachments of this
 * node to a channel cost one subscription to the shared bus.
 *
 * Loop thread only; every callback runs on the loop thread. Strings passed
 * in are borrowed for the call; blobs passed to callbacks are valid during
 * the call. */
#ifndef SW_CLUSTER_BUS_H
#define SW_CLUSTER_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/redis_url.h"
#include "proto/errors.h"
#include "store/store.h"

typedef struct sw_bus sw_bus_t;

/* Ably codes of the refusals (shared/ably/errors.json). */
#define SW_BUS_E_UNAVAILABLE 50004 /* "Server temporarily busy": store down, or too much unanswered */
#define SW_BUS_E_TIMEOUT 50003     /* "Request timed out server-side" */
#define SW_BUS_E_INTERNAL 50000    /* the store refused or answered nonsense */

typedef struct sw_bus_msg {
  int64_t timestamp;   /* ms */
  const uint8_t *blob; /* the storage form (codec_msg_to_blob) */
  size_t len;
} sw_bus_msg_t;

typedef struct sw_bus_policy {
  int64_t keep_count; /* count retention; 0 none */
  int64_t max_age_ms; /* age retention; 0 none */
} sw_bus_policy_t;

/* err NULL: durable with seqs first_seq .. first_seq + n - 1. */
typedef void (*sw_bus_done_cb)(void *ud, const sw_error_t *err, int64_t first_seq, size_t n);

typedef struct sw_bus_range {
  const char *app_id, *channel;
  int64_t after_seq, before_seq; /* exclusive bounds; -1 / INT64_MAX for none */
  bool forwards;
  size_t limit;                  /* 1..1000 */
  int64_t now;                   /* expired rows are left out */
} sw_bus_range_t;

/* err NULL with rows (the callback owns them: store_rows_free), cursor (the
 * last seq looked at: continue from it) and more (there may be more). */
typedef void (*sw_bus_read_cb)(void *ud, const sw_error_t *err, sw_store_rows_t *rows, int64_t cursor, bool more);

/* What the bus tells its owner (core/: the server). */
typedef struct sw_bus_handlers {
  void (*deliver)(void *ud, const char *app_id, const char *channel, int64_t seq, int64_t timestamp,
                  const uint8_t *blob, size_t len);
  void (*ready)(void *ud, const char *app_id, const char *channel, int64_t last_seq);
  void (*state)(void *ud, bool up); /* may be NULL */
  void *ud;
} sw_bus_handlers_t;

typedef struct sw_bus_ops {
  const char *name;
  int (*publish)(sw_bus_t *b, const char *app_id, const char *channel, const sw_bus_msg_t *msgs, size_t n,
                 const sw_bus_policy_t *pol, sw_bus_done_cb done, void *ud, sw_error_t *err);
  int (*subscribe)(sw_bus_t *b, const char *app_id, const char *channel);
  void (*unsubscribe)(sw_bus_t *b, const char *app_id, const char *channel);
  int (*read)(sw_bus_t *b, const sw_bus_range_t *q, sw_bus_read_cb cb, void *ud, sw_error_t *err);
  bool (*is_up)(const sw_bus_t *b);
  void (*close)(sw_bus_t *b);
} sw_bus_ops_t;

/* Every implementation starts with this. */
struct sw_bus {
  const sw_bus_ops_t *ops;
  sw_bus_handlers_t h;
};

/* 0 (done will run exactly once) or -1 with *err (done will not run). */
static inline int bus_publish(sw_bus_t *b, const char *app_id, const char *channel, const sw_bus_msg_t *msgs,
                              size_t n, const sw_bus_policy_t *pol, sw_bus_done_cb done, void *ud,
                              sw_error_t *err) {
  return b->ops->publish(b, app_id, channel, msgs, n, pol, done, ud, err);
}
/* Adds a reference; the first one subscribes (ready() follows). 0 or -ENOMEM. */
static inline int bus_subscribe(sw_bus_t *b, const char *app_id, const char *channel) {
  return b->ops->subscribe(b, app_id, channel);
}
/* Drops a reference; the last one unsubscribes: no deliver() after it. */
static inline void bus_unsubscribe(sw_bus_t *b, const char *app_id, const char *channel) {
  b->ops->unsubscribe(b, app_id, channel);
}
/* 0 (cb will run exactly once) or -1 with *err (cb will not run). */
static inline int bus_read(sw_bus_t *b, const sw_bus_range_t *q, sw_bus_read_cb cb, void *ud, sw_error_t *err) {
  return b->ops->read(b, q, cb, ud, err);
}
static inline bool bus_is_up(const sw_bus_t *b) {
  return b->ops->is_up(b);
}
/* Pending publishes and reads complete with an error (not from inside this
 * call); no handler runs after it. Keep running the loop until it is idle. */
static inline void bus_close(sw_bus_t *b) {
  b->ops->close(b);
}

/* ---- bus_redis: several nodes sharing channels through Redis ----
 *
 * Two connections (redis_conn.h): one for commands (the append script,
 * reads), one for pub/sub. Up when both are up. A subscription SUBSCRIBEs
 * to {app:channel}:bus; once Redis confirms it, the channel's serial is
 * read (ready(last_seq)), and every bus message after it is delivered in
 * seq order. A message ahead of the next expected seq (after the pub/sub
 * connection came back, say) is held (at most SW_BUS_MAX_HELD per channel)
 * while the log fills the gap. */
#define SW_BUS_MAX_HELD 1024

typedef struct sw_bus_redis_opts {
  sw_redis_url_t url;
  uint32_t connect_timeout_ms, command_timeout_ms; /* 0: redis_conn's defaults */
  uint32_t backoff_min_ms, backoff_max_ms;
  size_t max_pending; /* commands unanswered at once; beyond, publishes are refused 50004 */
} sw_bus_redis_opts_t;

/* 0 and *out (connecting; state(true) once up), or -EINVAL / -ENOMEM. */
int bus_redis_open(uv_loop_t *loop, const sw_bus_redis_opts_t *o, const sw_bus_handlers_t *h, sw_bus_t **out);

/* Test and metrics view of a bus_redis. */
typedef struct sw_bus_redis_stats {
  uint64_t published, delivered, held, dropped_held, catchup_reads, refused;
  size_t channels;
} sw_bus_redis_stats_t;
void bus_redis_stats(const sw_bus_t *b, sw_bus_redis_stats_t *st);

/* ---- bus_local: one node (today's behaviour) ----
 *
 * Not a function yet. In-process, the bus is what core/channel.c does now:
 * seq = ++ch->last_seq on the loop thread, store_submit() of the batch,
 * and in the store's completion (on_stored) durable_seq is raised and the
 * batch fanned out to the channel's attachments; subscribe/unsubscribe are
 * the attachments themselves; read is store_history (synchronous). Turning
 * that into `int bus_local_open(uv_loop_t *, sw_store_t *, const
 * sw_bus_handlers_t *, sw_bus_t **)` moves those lines out of channel.c,
 * which is for the wiring step (docs/cluster.md, "What is left to wire"):
 * core/ is being edited by others now. */

#endif
