/* channel.h: channels, attachments, the publish pipeline and fan-out.
 *
 * Publish: serials are assigned on the loop thread (seq = ++last_seq), the
 * messages go to the storage commit thread, and when the batch is durable
 * the loop thread fans them out and ACKs. Completions arrive in submission
 * order, so subscribers see seq order, and durable_seq is the highest seq
 * already fanned out: a replay from storage reads up to durable_seq and
 * live fan-out continues after it, with neither a gap nor a duplicate. */
#ifndef SW_CORE_CHANNEL_H
#define SW_CORE_CHANNEL_H

#include <stdbool.h>
#include <stdint.h>
#include "util/hash.h"
#include "util/ptrmap.h"

#include "core/app.h"
#include "proto/pmsg.h"

typedef struct sw_server sw_server_t;
typedef struct sw_conn sw_conn_t;
typedef struct sw_sock sw_sock_t;

/* The suffix of an Ably Chat room's channel: room "r" is channel "r::$chat". */
#define SW_CHAT_SUFFIX "::$chat"

/* Occupancy metrics of a channel (docs "Occupancy"), in this order in
 * sw_occupancy_t.n and in the [meta]occupancy events. */
enum {
  SW_OCC_CONNECTIONS,
  SW_OCC_PUBLISHERS,
  SW_OCC_SUBSCRIBERS,
  SW_OCC_PRESENCE_CONNECTIONS,
  SW_OCC_PRESENCE_MEMBERS,
  SW_OCC_PRESENCE_SUBSCRIBERS,
  SW_OCC_OBJECT_PUBLISHERS,
  SW_OCC_OBJECT_SUBSCRIBERS,
  SW_OCC_COUNT
};
typedef struct sw_occupancy {
  int64_t n[SW_OCC_COUNT];
} sw_occupancy_t;
/* [meta]occupancy events go out at most this often per channel, unless a
 * metric goes from zero to some or back (Ably: debounced, at most 15 s). */
#define SW_OCCUPANCY_DEBOUNCE_MS 1000

typedef struct sw_recent_id {
  char *id;
  int64_t seq;
  int64_t expires_at;
  UT_hash_handle hh;
} sw_recent_id_t;

/* What their last [meta]occupancy said, and when (channel.c). */
struct sw_occ_sent {
  sw_occupancy_t o;
  int64_t ms;
};

/* The fields most channels never use, in one block allocated on first use
 * (channel_ext) and freed with the channel: an idle channel with one
 * subscriber carries a NULL pointer instead of 96 bytes. Readers that must
 * not allocate use channel_xr, which gives an all-zero block for a channel
 * without one. The fan-out reads only `rollups`, `delta` and `derived`
 * (and a derived channel its `filter`) here, once per message, never once
 * per subscriber. */
typedef struct sw_channel_ext {
  struct sw_head *heads;      /* heads being changed (core/mutation.c) */
  size_t n_heads;
  struct sw_vqueue *vq;       /* changes waiting for the shared bus, in order (core/mutation.c) */
  struct sw_turn *turns;      /* AI turn owners (core/ai_turns.c) */
  struct sw_rollups *rollups; /* appends held for their rollup window (core/rollup.c) */
  /* What the channel's last [meta]occupancy said, and when: allocated
   * when the channel first has occupancy subscribers. */
  struct sw_occ_sent *occ_sent;
  /* A shared bus: the cluster's counts (core/occ_share.c); NULL on one node. */
  struct sw_occ_share *occ_share;
  /* Derived channels ("[filter=<base64>]name", RTS5): a derived channel
   * has no messages of its own; its base's are delivered to its
   * attachments when they pass its filter, and replays read its base's. */
  struct sw_channel *base;          /* derived: the channel it filters; NULL otherwise */
  struct sw_filter *filter;         /* derived: its compiled filter (owned) */
  struct sw_channel *derived;       /* base: its derived channels, linked by next_derived */
  struct sw_channel *next_derived;
  struct sw_delta *delta;           /* delta=vcdiff state (core/delta.c); NULL until a delta subscriber */
} sw_channel_ext_t;

typedef struct sw_channel {
  sw_server_t *srv;
  sw_app_t *app;
  const char *name; /* stored right after the struct */
  const sw_namespace_t *ns;
  int64_t last_seq;    /* last assigned */
  int64_t durable_seq; /* last durable and fanned out */
  struct sw_attach *subs; /* doubly linked list */
  struct pub *pubs;    /* those publishes, in order (channel.c) */
  sw_recent_id_t *recent_ids; /* idempotent publish window (RSL1k) */
  struct sw_member *members;  /* presence set (core/presence.c) */
  int64_t presence_seq;       /* last presence history seq; -1 until read from the store */
  sw_channel_ext_t *ext;      /* rarely used fields (channel_ext / channel_xr); NULL until one is */
  /* Counts in 32 bits. The limits that bound them (maxConnections,
   * maxPresenceMembers, maxPendingPublishes) are not capped by the config,
   * but each thing counted is a heap object of its own (an attachment, a
   * member, a publish of at least 64 bytes), so 2^32 of them would need
   * 256 GiB: they cannot wrap. */
  uint32_t n_subs;
  uint32_t pending;          /* publishes waiting for the bus, or for their delivery (ch->pubs) */
  uint32_t n_members;
  uint32_t n_remote_members; /* of those, members of other nodes (a shared bus: core/presence.c) */
  uint32_t n_occupancy;      /* attachments with the occupancy param */
  /* Message updates, deletes, appends and annotations are allowed: the
   * namespace's mutableMessages rule, or an Ably Chat room's channel
   * ("<room>::$chat"), where Chat always has them. */
  bool mutable_messages : 1;
  /* The bus (core/bus.h): bus_sub, subscribed (a shared bus: the root
   * channel's first attachment subscribes, its free unsubscribes);
   * bus_ready, durable_seq is the start point and attachments may go
   * live (always, on bus_local). */
  bool bus_sub : 1;
  bool bus_ready : 1;
} sw_channel_t;

/* The server's channels (srv->channels, core/server.h): a util/ptrmap.h
 * map keyed by (app->id, name), ~13 bytes per channel where a uthash
 * handle was 56 in every channel, plus its buckets. Deleting leaves a
 * tombstone, so SW_CHANNELS_EACH may free the channel it is at; adding
 * may rehash, so no channel is created while iterating. The order of
 * iteration is the table's, not the order of creation. */
#define SW_CHANNELS_EACH(m, ch) SW_PTRMAP_EACH_(&(m)->map, ch, sw_ch_i_)
/* ch's rare fields, allocated (zeroed) on first use; NULL on OOM. */
sw_channel_ext_t *channel_ext(sw_channel_t *ch);
/* ch's rare fields to read: all zero when it has none (never allocates). */
extern const sw_channel_ext_t sw_channel_ext_none;
static inline const sw_channel_ext_t *channel_xr(const sw_channel_t *ch) {
  return ch->ext ? ch->ext : &sw_channel_ext_none;
}
/* A derived channel's base, NULL for any other. */
static inline struct sw_channel *channel_base(const sw_channel_t *ch) { return ch->ext ? ch->ext->base : NULL; }

/* An attachment's fields that are set only for a while (an ATTACH's wait,
 * a replay) or only for some attachments (another spelling of the name,
 * messages sent in full, delta=vcdiff): one block, allocated when one is
 * set (attach_side), freed when none is any more (attach_side_trim) and
 * with the attachment. An idle attachment carries a NULL pointer instead of
 * 40 bytes. The fan-out reads a->side once per subscriber, as it read
 * a->replay before: the same one load when it is NULL. */
typedef struct sw_attach_side {
  char *wire_name;  /* the name the client attached with, if not ch->name */
  struct sw_seen *full_sent; /* older messages it was since sent in full */
  struct sw_replay *replay;  /* a replay from storage in progress: live messages wait for it */
  struct attach_wait *wait;  /* an ATTACH waiting for the channel's start point or its rewind read */
  /* The delta channel param (core/delta.c): the seq of the message it was
   * last sent (0: another kind, or none yet); `delta` says whether deltas
   * are wanted (the block is kept while it is set). */
  int64_t delta_seq;
} sw_attach_side_t;

typedef struct sw_attach {
  sw_conn_t *conn;
  sw_channel_t *ch;
  uint32_t modes;
  uint32_t requested_modes; /* asked for in the ATTACH: modes = these ∩ the capability, again after a reauth */
  /* The occupancy channel param: 0 none, 1 "metrics" (all), 2 + k
   * "metrics.<k-th metric>" (that one only). occ_due: send the current
   * metrics even if they did not change (it attached since). (Here, with
   * the other small fields: no padding holes in every attachment.) */
  uint8_t occupancy;
  bool delivering : 1; /* attached on the current transport */
  bool presence_lost : 1; /* the connection's members left while it was away: the next ATTACH is not RESUMED */
  bool occ_due : 1;
  bool delta : 1; /* the delta channel param asks for vcdiff deltas (core/delta.c) */
  int64_t from_seq; /* the client holds messages after this seq (live or replayed) */
  int64_t live_seq; /* durable_seq when live delivery began (attach, or the end of a replay) */
  sw_attach_side_t *side; /* see sw_attach_side_t; NULL when none of its fields is set */
  struct sw_attach *prev, *next; /* in ch->subs (the connection's are in conn->att) */
} sw_attach_t;

/* a's side block, allocated (zeroed) on first use; NULL on OOM. */
sw_attach_side_t *attach_side(sw_attach_t *a);
/* Frees a's side block if none of its fields is set (and no delta). */
void attach_side_trim(sw_attach_t *a);
/* a's side fields to read: all zero when it has none (never allocates). */
extern const sw_attach_side_t sw_attach_side_none;
static inline const sw_attach_side_t *attach_sr(const sw_attach_t *a) {
  return a->side ? a->side : &sw_attach_side_none;
}
/* The name a's messages go out under. */
static inline char *attach_wire_name(const sw_attach_t *a) {
  return a->side && a->side->wire_name ? a->side->wire_name : (char *)a->ch->name;
}

/* Finds or creates the channel (name already validated). NULL on OOM. */
sw_channel_t *channel_get(sw_server_t *srv, sw_app_t *app, const char *name);
sw_channel_t *channel_find(sw_server_t *srv, const sw_app_t *app, const char *name);
sw_channel_t *channel_find_id(sw_server_t *srv, const char *app_id, const char *name);
/* The handlers the server's bus calls (core/bus.h): deliver (fan-out),
 * ready (a subscription's start point: waiting ATTACHes finish), state. */
struct sw_bus_handlers;
void channel_bus_handlers(sw_server_t *srv, struct sw_bus_handlers *h);
/* The handlers' deliver() for a channel the bus already holds (bus_local,
 * given sw_bus_policy_t.ch): the same, without the lookup by name. */
void channel_deliver(sw_channel_t *ch, int64_t seq, const uint8_t *blob, size_t len);
/* The derived channel of base channel `name` with filter filter_b64[0..len)
 * (the base64 text of "[filter=...]"): found, or created with its base and
 * its compiled filter. NULL with err (40010 for a filter that does not
 * decode or compile, 50000 out of memory). find only looks. */
sw_channel_t *channel_get_derived(sw_server_t *srv, sw_app_t *app, const char *name, const char *filter_b64,
                                  size_t len, sw_error_t *err);
sw_channel_t *channel_find_derived(sw_server_t *srv, const sw_app_t *app, const char *name, const char *filter_b64,
                                   size_t len);
/* Sends m (a MESSAGE of ch's) to ch's derived channels: to each, the
 * messages that pass its filter. */
void channel_broadcast_derived(sw_channel_t *ch, const sw_pmsg_t *m, const char *skip_conn_id);

/* Who asked for a publish, to be told when it is durable. */
typedef struct sw_publisher {
  const char *conn_id;  /* realtime: connection to ACK (NULL for REST) */
  int64_t msg_serial;
  /* The fields below are kept for `done` and never read by core/: */
  sw_sock_t *rest_sock; /* a socket to answer (referenced until done) */
  int rest_format;
  bool rest_keep_alive;
  bool rest_version;    /* REST mutation: answer {versionSerial} */
  const struct sw_principal *principal; /* the publisher's credentials (during the call only) */
  /* The completion of a publish that did not come from a realtime
   * connection (REST: rest_publish_done; chat, batch: their own): core/
   * never calls a layer above it by name, so whoever publishes says how to
   * answer. Called exactly once if the publish was accepted (the call
   * returned 0), with who (its rest_sock referenced meanwhile; may be
   * closing), the channel's name, the outcome and the serials; it owns
   * done_ud. Not called when the call fails. Without done, the outcome
   * goes to conn_id's connection (ACK/NACK). */
  void (*done)(const struct sw_publisher *who, const char *channel, const sw_error_t *err, char **serials,
               size_t n);
  void *done_ud;
  const char *id_base; /* ids of messages without one: "<id_base>:<index>" (during the call only; NULL: random) */
} sw_publisher_t;

/* Publishes msgs (ownership of the array and its contents moves to the
 * channel, also on error). Fields id, timestamp, connectionId must be
 * stamped already; this assigns serials, applies idempotency, persists,
 * then fans out and tells the publisher. Returns 0 or -1 with err. */
int channel_publish(sw_channel_t *ch, sw_msg_t *msgs, size_t n, const sw_publisher_t *who,
                    sw_error_t *err);

/* Attaches c (replacing an existing attachment's modes, and its replay if
 * one is in progress) and sends ATTACHED, then starts the replay: messages
 * after channel_serial (resume, RTL4c1/RTN15c6) or the rewind backlog
 * (count or seconds). The replay is paced by the socket: rows are read and
 * queued while the output queue is below sock_low_water, and continue from
 * conn_on_drain. Until it has caught up with durable_seq, live messages are
 * not delivered to the attachment (the replay reads them from storage), so
 * the hand-over to live delivery has neither a gap nor a duplicate. Every
 * replayed MESSAGE carries its own channelSerial, so a client cut off
 * mid-replay resumes where it was (docs/design.md, "Continuity").
 * Returns 0 or -1 on OOM. */
typedef struct sw_attach_req {
  uint32_t modes;
  const char *channel_serial; /* NULL: fresh attach */
  int64_t rewind_count;       /* -1: none */
  int64_t rewind_ms;          /* -1: none */
  json_t *params;             /* echoed in ATTACHED (borrowed) */
  const char *channel_name;   /* as the client wrote it (may carry a [?params] qualifier) */
} sw_attach_req_t;
int channel_attach(sw_channel_t *ch, sw_conn_t *c, const sw_attach_req_t *req);
void channel_detach(sw_attach_t *a);
/* Continues a's replay after its socket drained (conn_on_drain). */
void channel_replay_continue(sw_attach_t *a);
/* Ends a's replay, if any, without switching to live delivery: for a
 * transport that is gone (the client re-attaches on the next one). */
void channel_replay_end(sw_attach_t *a);


/* Tells a publisher the outcome of its publish (its done callback, else the
 * ACK/NACK); serials are those of the messages (or version) published. */
void channel_notify(sw_server_t *srv, const sw_publisher_t *who, const char *channel, const sw_error_t *err,
                    char **serials, size_t n);

/* Sends m, encoded once per wire format, to every delivering attachment
 * whose modes include one of mode_mask, except skip_conn_id's connection
 * (NULL: none). Attachments under another spelling of the name get their
 * own encoding. */
void channel_broadcast(sw_channel_t *ch, const sw_pmsg_t *m, uint32_t mode_mask, const char *skip_conn_id);

/* The channel's occupancy now (ch may be NULL: all zero). */
sw_occupancy_t channel_occupancy(const sw_channel_t *ch);
/* This node's attachments only (channel_occupancy adds a cluster's other
 * nodes' counts, core/occ_share.h). */
sw_occupancy_t channel_occupancy_local(const sw_channel_t *ch);

/* Drops expired idempotency ids; sends [meta]occupancy events. */
void channel_tick(sw_server_t *srv, int64_t now_ms);
void channels_free(sw_server_t *srv);

#endif
