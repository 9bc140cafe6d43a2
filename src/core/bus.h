/* bus.h: the bus interface, what core/ calls to publish on
 * a channel and to hear of its messages, whether the channel lives in this
 * process only or is shared by several nodes (docs/cluster.md).
 *
 * Two implementations: bus_local (core/bus_local.c: one process, the
 * embedded store) and bus_redis (cluster/bus_redis.h: several nodes on
 * Redis). core/ names neither: the composition root (src/root/) opens one
 * and hands it to the server (sw_server_t.bus); core/channel.c publishes,
 * reads and hears of messages only through this interface.
 *
 * The contract, for every implementation:
 *
 *  publish   bus_publish(channel, msgs) assigns the n messages consecutive
 *            serials (seqs) of the channel, makes them durable in the
 *            channel's log and calls done(seqs) once they are: only
 *            then may the publisher be acknowledged. Or it refuses with an
 *            Ably error: at once (bus_publish returns -1 and fills *err;
 *            done is not called) when it knows it cannot (the shared store
 *            is unreachable: 50004), or later through done (50003 when the
 *            store did not answer in time: the publish may have happened,
 *            as with any timeout, which is what idempotent ids settle;
 *            50000 when the store refused it). A publish is never
 *            acknowledged unsaved and never queued without bound.
 *            A message with `idempotent` set whose id the log already had
 *            within the idempotency window (RSL1k) is not stored again: its
 *            seqs[i] is the first one's, with dup set (a shared bus checks
 *            this where the serial is assigned, so it holds across nodes).
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
#ifndef SW_CORE_BUS_H
#define SW_CORE_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "proto/errors.h"
#include "store/store.h"

typedef struct sw_bus sw_bus_t;
struct sw_bus_member;
struct sw_channel;

/* Ably codes of the refusals (shared/ably/errors.json). */
#define SW_BUS_E_UNAVAILABLE 50004 /* "Server temporarily busy": store down, or too much unanswered */
#define SW_BUS_E_TIMEOUT 50003     /* "Request timed out server-side" */
#define SW_BUS_E_INTERNAL 50000    /* the store refused or answered nonsense */

typedef struct sw_bus_msg {
  int64_t timestamp;   /* ms */
  const uint8_t *blob; /* the storage form (codec_msg_to_blob) */
  size_t len;
  const char *id;      /* the message's id (may be NULL) */
  bool idempotent;     /* id was chosen by the client: RSL1k applies (shared buses) */
} sw_bus_msg_t;

typedef struct sw_bus_policy {
  int64_t keep_count; /* count retention; 0 none */
  int64_t max_age_ms; /* age retention; 0 none */
  int64_t max_ids;    /* idempotent ids kept per channel (maxIdempotencyIds); 0: the bus's default */
  /* bus_local only (a shared bus ignores it): the publishing channel, which
   * the caller keeps alive until done() (channel.c: ch->pending). It saves
   * a lookup by name at the publish and at each deliver(). NULL: found by
   * name. */
  struct sw_channel *ch;
} sw_bus_policy_t;

/* The outcome of one message of a publish: its serial, and whether it was
 * a duplicate of a message already in the log (then seq is that one's, or
 * -1 if no longer known). */
typedef struct sw_bus_seq {
  int64_t seq;
  bool dup;
} sw_bus_seq_t;

/* err NULL: durable, seqs[i] the serial of msgs[i] (n entries; the stored
 * ones are consecutive and in order). err set: seqs NULL. */
typedef void (*sw_bus_done_cb)(void *ud, const sw_error_t *err, const sw_bus_seq_t *seqs, size_t n);

typedef struct sw_bus_range {
  const char *app_id, *channel;
  int64_t after_seq, before_seq; /* exclusive bounds; -1 / INT64_MAX for none */
  bool forwards;
  size_t limit;                  /* 1..1000 */
  int64_t now;                   /* expired rows are left out */
  int64_t start, end;            /* timestamp bounds (ms, inclusive); 0 / 0 or INT64_MAX for none */
  bool by_vseq;                  /* bounds and order on the heads' latest version (store.h); both
                                    buses read heads (a changed message as it is now) */
} sw_bus_range_t;

/* err NULL with rows (the callback owns them: store_rows_free), cursor (the
 * last seq looked at: continue from it) and more (there may be more). */
typedef void (*sw_bus_read_cb)(void *ud, const sw_error_t *err, sw_store_rows_t *rows, int64_t cursor, bool more);

/* A message version (an update, delete or append of message seq) for a
 * shared bus: the node folded it into the head it read at expect_vseq
 * (seq: never changed); the bus assigns the next serial (vseq) and stores
 * event and head together only if the head is still at expect_vseq, else
 * done says conflict (nothing stored: read the head again, fold again).
 * placeholder (SW_SERIAL_LEN bytes) stands in event and head for the
 * version's serial, which only the bus knows; it puts the serial there. */
typedef struct sw_bus_version {
  int64_t seq, expect_vseq, timestamp;
  const uint8_t *event, *head; /* storage blobs (codec_msg_to_blob), borrowed for the call */
  size_t event_len, head_len;
  const char *placeholder;
  bool annotation; /* an annotation of message seq (RSAN): event is the annotation; head, when
                      not empty, the message's head with its new summary */
} sw_bus_version_t;

/* err NULL: stored as version vseq. conflict: the head changed meanwhile
 * (err set too). */
typedef void (*sw_bus_version_cb)(void *ud, const sw_error_t *err, bool conflict, int64_t vseq);

/* What the bus tells its owner (core/: the server). */
typedef struct sw_bus_handlers {
  void (*deliver)(void *ud, const char *app_id, const char *channel, int64_t seq, int64_t timestamp,
                  const uint8_t *blob, size_t len);
  /* Shared buses: version vseq of message seq, in the channel's seq order
   * like deliver() (the same sequence of serials): the event, and the head
   * just after it (head_len 0 when not known: one read from the log after
   * a gap). May be NULL: versions are then skipped. */
  void (*deliver_version)(void *ud, const char *app_id, const char *channel, int64_t vseq, int64_t seq,
                          int64_t timestamp, const uint8_t *event, size_t event_len, const uint8_t *head,
                          size_t head_len);
  /* The same for an annotation (event: the annotation; head_len 0 when
   * its message's summary did not change). May be NULL: skipped. */
  void (*deliver_annotation)(void *ud, const char *app_id, const char *channel, int64_t vseq, int64_t seq,
                             int64_t timestamp, const uint8_t *event, size_t event_len, const uint8_t *head,
                             size_t head_len);
  void (*ready)(void *ud, const char *app_id, const char *channel, int64_t last_seq);
  void (*state)(void *ud, bool up); /* may be NULL */
  void *ud;
  /* Shared buses only; each may be NULL (see "side events" below). */
  void (*side)(void *ud, const char *app_id, const char *channel, int kind, const uint8_t *payload, size_t len);
  void (*members)(void *ud, const char *app_id, const char *channel, const struct sw_bus_member *m, size_t n,
                  bool snapshot);
} sw_bus_handlers_t;

/* ---- side events (shared buses): presence and ephemeral messages ----
 *
 * Neither is logged nor numbered. announce() hands a payload to every
 * OTHER node subscribed to the channel (their side() handler; the sender
 * delivers to its own subscribers itself), and for presence (kind
 * SW_BUS_SIDE_PRESENCE) applies the member changes `ops` to the channel's
 * shared member set first, in one step: the members of connections on this
 * node, owned by it (and by its lease: when the node stops refreshing it,
 * its members are removed by the nodes that still hold the channel).
 * Fire and forget: there is no completion; while the shared store is down
 * the call fails (-1) and the event stays node-local.
 *
 * members(snapshot true): the channel's whole shared member set as the
 * store has it, owned by other nodes (this node's own are left out: core/
 * has them), after every (re)subscription and before ready(). members
 * (snapshot false): members that must leave: other nodes' members removed
 * because their node's lease lapsed, or this node's own entries as the
 * store had them when the bus came back up (core/ skips those it still
 * has; the others left while the store could not be told). core/ makes
 * their LEAVEs, delivers them locally and announces them with their
 * removal (ops). state(true) is also when core/ writes its members again. */
enum { SW_BUS_SIDE_PRESENCE = 1, SW_BUS_SIDE_EPHEMERAL = 2 };

typedef struct sw_bus_member {
  const char *key;     /* memberKey (connectionId:clientId) */
  const uint8_t *blob; /* the member: a one-member PRESENCE ProtocolMessage, msgpack; NULL in ops: removed */
  size_t len;
} sw_bus_member_t;

/* err NULL: the members (owned by the callee only during the call). */
typedef void (*sw_bus_members_cb)(void *ud, const sw_error_t *err, const sw_bus_member_t *m, size_t n);

typedef struct sw_bus_ops {
  const char *name;
  /* false (bus_local): a channel's serials and subscribers are this
   * process's own; subscribe/unsubscribe do nothing, ready() never runs
   * (a channel is ready at once, from its own last serial) and core/ keeps
   * its in-process features (idempotency window, message versions,
   * presence) as they were. true (bus_redis): shared by several nodes. */
  bool shared;
  int (*publish)(sw_bus_t *b, const char *app_id, const char *channel, const sw_bus_msg_t *msgs, size_t n,
                 const sw_bus_policy_t *pol, sw_bus_done_cb done, void *ud, sw_error_t *err);
  int (*subscribe)(sw_bus_t *b, const char *app_id, const char *channel);
  void (*unsubscribe)(sw_bus_t *b, const char *app_id, const char *channel);
  int (*read)(sw_bus_t *b, const sw_bus_range_t *q, sw_bus_read_cb cb, void *ud, sw_error_t *err);
  bool (*is_up)(const sw_bus_t *b);
  void (*close)(sw_bus_t *b);
  /* Shared buses only (NULL in bus_local, whose versions core/mutation.c
   * stores itself): 0 (done runs once, later) or -1 with *err. */
  int (*publish_version)(sw_bus_t *b, const char *app_id, const char *channel, const sw_bus_version_t *v,
                         const sw_bus_policy_t *pol, sw_bus_version_cb done, void *ud, sw_error_t *err);
  /* Shared buses only (NULL in bus_local: store_versions): the versions of
   * message seq (RSL14), its create first, as store_versions gives them
   * (annotations: its annotations instead, as store_annotations does)
   * (rows' vseq the version's serial; paged after (forwards) or before
   * (backwards) cursor, -1 for none). 0 (cb runs once, later) or -1. */
  int (*read_versions)(sw_bus_t *b, const char *app_id, const char *channel, int64_t seq, bool annotations,
                       bool forwards, size_t limit, int64_t cursor, sw_bus_read_cb cb, void *ud, sw_error_t *err);
  /* Side events (above); NULL on bus_local (one process: nothing to tell). */
  int (*announce)(sw_bus_t *b, const char *app_id, const char *channel, int kind, const uint8_t *payload,
                  size_t len, const sw_bus_member_t *ops, size_t n_ops);
  /* The whole shared member set (all nodes'), asynchronously: REST presence. */
  int (*members_read)(sw_bus_t *b, const char *app_id, const char *channel, sw_bus_members_cb cb, void *ud,
                      sw_error_t *err);
} sw_bus_ops_t;

/* Every implementation starts with this. */
struct sw_bus {
  const sw_bus_ops_t *ops;
  sw_bus_handlers_t h;
};

/* 0 (done will run exactly once, never from inside this call) or -1 with
 * *err (done will not run). n is 1..1000; bus_local also takes 0 (a
 * barrier: done runs once everything published before is done). */
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
/* 0 (cb will run exactly once; bus_local runs it from inside this call,
 * its store's reads being synchronous) or -1 with *err (cb will not run). */
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

/* Whether the bus stores message versions (publish_version). */
static inline bool bus_has_versions(const sw_bus_t *b) {
  return b->ops->publish_version != NULL;
}
static inline int bus_publish_version(sw_bus_t *b, const char *app_id, const char *channel, const sw_bus_version_t *v,
                                      const sw_bus_policy_t *pol, sw_bus_version_cb done, void *ud, sw_error_t *err) {
  return b->ops->publish_version(b, app_id, channel, v, pol, done, ud, err);
}

static inline int bus_read_versions(sw_bus_t *b, const char *app_id, const char *channel, int64_t seq,
                                    bool annotations, bool forwards, size_t limit, int64_t cursor, sw_bus_read_cb cb,
                                    void *ud, sw_error_t *err) {
  return b->ops->read_versions(b, app_id, channel, seq, annotations, forwards, limit, cursor, cb, ud, err);
}

/* 0, or -1 when the bus has no side events or cannot send now. */
static inline int bus_announce(sw_bus_t *b, const char *app_id, const char *channel, int kind,
                               const uint8_t *payload, size_t len, const sw_bus_member_t *ops, size_t n_ops) {
  return b->ops->announce ? b->ops->announce(b, app_id, channel, kind, payload, len, ops, n_ops) : -1;
}
static inline bool bus_has_members(const sw_bus_t *b) {
  return b->ops->members_read != NULL;
}
/* 0 (cb runs exactly once, later) or -1 with *err. */
static inline int bus_members_read(sw_bus_t *b, const char *app_id, const char *channel, sw_bus_members_cb cb,
                                   void *ud, sw_error_t *err) {
  return b->ops->members_read(b, app_id, channel, cb, ud, err);
}

static inline bool bus_shared(const sw_bus_t *b) {
  return b->ops->shared;
}

/* ---- bus_local: one process (core/bus_local.c) ----
 *
 * Today's in-process path: seq = ++ch->last_seq on the loop thread,
 * store_submit() of the batch, and in the store's completion deliver() per
 * message, then done(); read is store_history. Not shared. */
struct sw_server;
int bus_local_open(struct sw_server *srv, const sw_bus_handlers_t *h, sw_bus_t **out);

#endif
