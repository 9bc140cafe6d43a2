#include "core/channel.h"

#include <stdlib.h>
#include <string.h>

#include "core/ai_turns.h"
#include "core/bus.h"
#include "core/annotation.h"
#include "core/conn.h"
#include "core/delta.h"
#include "core/mutation.h"
#include "core/occ_share.h"
#include "core/presence.h"
#include "core/rollup.h"
#include "core/serial.h"
#include "core/server.h"
#include "core/sock.h"
#include "metrics/metrics.h"
#include "proto/codec.h"
#include "proto/filter.h"
#include "proto/textenc.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/fmt.h"
#include "util/log.h"

/* Idempotent publishing window (RSL1k): Ably dedupes ids for 2 minutes. */
#define IDEMPOTENCY_WINDOW_MS (2 * 60 * 1000)
/* Replay reads pages of at most this many rows, sized to about the
 * socket's low-water mark of data (replay_read); the first page has
 * REPLAY_FIRST_PAGE rows. */
#define REPLAY_PAGE 500
#define REPLAY_FIRST_PAGE 32

sw_channel_t *channel_find(sw_server_t *srv, const sw_app_t *app, const char *name) {
  return channel_find_id(srv, app->id, name);
}

/* ---- the channel map (srv->channels, channel.h) ---- */

typedef struct sw_channel_map sw_channel_map_t;

/* SipHash-2-4 of (app id, name) under the map's random key
 * (ptrmap_hash_str2): names are chosen by clients, and an unkeyed hash
 * (FNV, Jenkins) lets one compute thousands of names on one probe chain,
 * making every lookup of them a walk (hash flooding). */
static uint64_t channel_hash(const sw_ptrmap_t *m, const void *item) {
  const sw_channel_t *ch = item;
  return ptrmap_hash_str2(m, ch->app->id, ch->name);
}

typedef struct channel_key {
  const char *app_id, *name;
} channel_key_t;

/* The bus is called with the channel's own strings (bus_publish): the
 * same pointers need no strcmp. */
static bool channel_eq(const void *item, const void *key) {
  const sw_channel_t *ch = item;
  const channel_key_t *k = key;
  return (ch->name == k->name || strcmp(ch->name, k->name) == 0) &&
         (ch->app->id == k->app_id || strcmp(ch->app->id, k->app_id) == 0);
}

/* Room for one more channel: 0, or -1 on OOM. */
static int map_reserve(sw_channel_map_t *m) { return ptrmap_reserve(&m->map, channel_hash); }

/* After map_reserve. */
static void map_add(sw_channel_map_t *m, sw_channel_t *ch) { ptrmap_add(&m->map, channel_hash(&m->map, ch), ch); }

static void map_del(sw_channel_map_t *m, sw_channel_t *ch) {
  if (m->last == ch) m->last = NULL;
  ptrmap_del(&m->map, channel_hash(&m->map, ch), ch);
}

/* A durable publish finds its channel three times (channel_get from the
 * connection, the bus's publish, the bus's deliver after the commit), and
 * a connection's publishes come in runs on one channel: the memo of the
 * last channel found answers those without hashing. */
sw_channel_t *channel_find_id(sw_server_t *srv, const char *app_id, const char *name) {
  sw_channel_map_t *cm = &srv->channels;
  channel_key_t k = {app_id, name};
  if (cm->last && channel_eq(cm->last, &k)) return cm->last;
  if (!cm->map.n) return NULL;
  sw_channel_t *ch = ptrmap_find(&cm->map, ptrmap_hash_str2(&cm->map, app_id, name), channel_eq, &k);
  if (ch) cm->last = ch;
  return ch;
}

/* A derived channel's messages, serials and storage are its base's. */
static sw_channel_t *root_of(sw_channel_t *ch) {
  sw_channel_t *base = channel_base(ch);
  return base ? base : ch;
}

const sw_channel_ext_t sw_channel_ext_none;
const sw_attach_side_t sw_attach_side_none;

sw_attach_side_t *attach_side(sw_attach_t *a) {
  if (!a->side) a->side = calloc(1, sizeof *a->side);
  return a->side;
}

void attach_side_trim(sw_attach_t *a) {
  const sw_attach_side_t *x = a->side;
  if (x && !x->wire_name && !x->full_sent && !x->replay && !x->wait && !a->delta) {
    free(a->side);
    a->side = NULL;
  }
}

sw_channel_ext_t *channel_ext(sw_channel_t *ch) {
  if (!ch->ext) ch->ext = calloc(1, sizeof *ch->ext);
  return ch->ext;
}

/* A new channel object in the server's hash, touching no storage. */
static sw_channel_t *channel_new(sw_server_t *srv, sw_app_t *app, const char *name) {
  size_t nlen = strlen(name);
  /* The name right after the struct: one allocation, not two. */
  sw_channel_t *ch = map_reserve(&srv->channels) ? NULL : calloc(1, sizeof *ch + nlen + 1);
  if (!ch) return NULL;
  char *own = (char *)(ch + 1);
  memcpy(own, name, nlen + 1);
  ch->name = own;
  ch->app = app;
  ch->srv = srv;
  ch->presence_seq = -1;
  map_add(&srv->channels, ch);
  return ch;
}

sw_channel_t *channel_get(sw_server_t *srv, sw_app_t *app, const char *name) {
  sw_channel_t *ch = channel_find(srv, app, name);
  if (ch) return ch;
  if (!(ch = channel_new(srv, app, name))) return NULL;
  ch->ns = app_namespace_for(app, ch->name);
  size_t cl = sizeof SW_CHAT_SUFFIX - 1, nlen = strlen(ch->name);
  ch->mutable_messages = ch->ns->mutable_messages || (nlen >= cl && memcmp(ch->name + nlen - cl, SW_CHAT_SUFFIX, cl) == 0);
  if (srv->bus && bus_shared(srv->bus)) {
    /* Serials are the shared bus's: known once subscribed (ready). */
    ch->last_seq = ch->durable_seq = -1;
  } else {
    int64_t last = -1;
    if (store_last_seq(srv->store, app->id, ch->name, &last)) last = -1;
    ch->last_seq = ch->durable_seq = last < 0 ? 0 : last;
    ch->bus_ready = true;
  }
  presence_load_fixtures(ch);
  return ch;
}

/* "[filter=<b64>]<name>": a derived channel's name in the hash. */
static char *derived_name(const char *name, const char *b64, size_t len) {
  size_t n = strlen(name);
  char *s = malloc(8 + len + 1 + n + 1);
  if (!s) return NULL;
  memcpy(s, "[filter=", 8);
  memcpy(s + 8, b64, len);
  s[8 + len] = ']';
  memcpy(s + 9 + len, name, n + 1);
  return s;
}

sw_channel_t *channel_find_derived(sw_server_t *srv, const sw_app_t *app, const char *name, const char *filter_b64,
                                   size_t len) {
  char *dn = derived_name(name, filter_b64, len);
  sw_channel_t *d = dn ? channel_find(srv, app, dn) : NULL;
  free(dn);
  return d;
}

/* The filter of "[filter=<b64>]": decoded and compiled, bounded first. */
static sw_filter_t *derived_filter(const char *b64, size_t len, sw_error_t *err) {
  if (len > (SW_FILTER_MAX_LEN / 3 + 1) * 4) {
    errors_set(err, SW_E_INVALID_CHANNEL, "invalid filter expression: longer than %d bytes", SW_FILTER_MAX_LEN);
    return NULL;
  }
  uint8_t *expr;
  size_t n;
  if (textenc_base64_decode(b64, len, &expr, &n)) {
    errors_set(err, SW_E_INVALID_CHANNEL, "invalid filter expression: not base64");
    return NULL;
  }
  sw_filter_t *f = filter_compile((const char *)expr, n, err);
  free(expr);
  return f;
}

static void channel_free(sw_server_t *srv, sw_channel_t *ch);

sw_channel_t *channel_get_derived(sw_server_t *srv, sw_app_t *app, const char *name, const char *filter_b64,
                                  size_t len, sw_error_t *err) {
  sw_channel_t *d = channel_find_derived(srv, app, name, filter_b64, len);
  if (d) return d;
  sw_filter_t *f = derived_filter(filter_b64, len, err);
  if (!f) return NULL;
  sw_channel_t *base = channel_get(srv, app, name);
  char *dn = derived_name(name, filter_b64, len);
  sw_channel_ext_t *bx = base ? channel_ext(base) : NULL, *dx = NULL;
  if (!bx || !dn || !(d = channel_new(srv, app, dn)) || !(dx = channel_ext(d))) {
    if (d) channel_free(srv, d);
    free(dn);
    filter_free(f);
    errors_set(err, SW_E_INTERNAL, "out of memory");
    return NULL;
  }
  free(dn);
  d->ns = base->ns;
  dx->base = base;
  dx->filter = f;
  d->last_seq = base->last_seq;
  d->durable_seq = base->durable_seq;
  d->bus_ready = true; /* its base's start point is the one that counts (root_of) */
  dx->next_derived = bx->derived;
  bx->derived = d;
  return d;
}

static void pubs_free_all(sw_channel_t *ch);

static void channel_free(sw_server_t *srv, sw_channel_t *ch) {
  sw_recent_id_t *r, *tmp;
  HASH_ITER(hh, ch->recent_ids, r, tmp) {
    HASH_DEL(ch->recent_ids, r);
    free(r->id);
    free(r);
  }
  presence_free(ch);
  rollup_channel_free(ch);
  mutation_channel_free(ch);
  ai_turns_free(ch);
  sw_channel_t *base = channel_base(ch);
  if (base) {
    sw_channel_t **pp = &base->ext->derived; /* a base has its ext: it holds this list */
    while (*pp && *pp != ch) pp = &(*pp)->ext->next_derived;
    if (*pp) *pp = ch->ext->next_derived;
  }
  filter_free(channel_xr(ch)->filter);
  delta_free(ch);
  occ_share_free(ch);
  if (ch->bus_sub && srv->bus) bus_unsubscribe(srv->bus, ch->app->id, ch->name);
  /* Publishes answered but not delivered yet (a shared bus closed at
   * shutdown: no deliver() comes any more). On the tick there are none
   * (ch->pending). */
  pubs_free_all(ch);
  map_del(&srv->channels, ch);
  if (ch->ext) free(ch->ext->occ_sent);
  free(ch->ext);
  free(ch);
}

/* One publish on its way through the bus (core/bus.h). It stays on its
 * channel's list (ch->pubs, in publish order; counted in ch->pending) until
 * the bus has answered (done: the publisher is told) and, if its messages
 * are to be delivered on this node, deliver() has fanned them out: the
 * node's own messages then go out as published (one ProtocolMessage per
 * publish, with its id), without decoding their blobs. */
typedef struct pub {
  sw_server_t *srv;
  sw_channel_t *ch;
  sw_msg_t *msgs; /* owned */
  size_t n;
  bool *dup;      /* msgs[i] was a duplicate id: not stored, not delivered */
  char **serials; /* msgs[i]'s serial (borrowed from msgs) */
  /* The serials and server-made ids of msgs are written here, in the
   * publish's own allocation, not strdup'd: msgs[i].serial is text +
   * i * (SW_SERIAL_LEN + 1), the ids follow. pub_free takes them back
   * from msgs before msg_clear. */
  char *text;
  size_t text_len;
  int64_t first_seq, last_seq; /* of its stored messages; -1 until known (a shared bus tells in done) */
  bool answered;  /* done ran: the publisher was told */
  bool fanned;    /* its messages went out (fanout) */
  struct pub *next;
  sw_publisher_t who;
  char conn_id[SW_CONN_ID_LEN + 1];
} pub_t;

/* Whether s lies in p's text (compared as integers: s may be any string). */
static bool pub_owns(const pub_t *p, const char *s) {
  return s && (uintptr_t)s - (uintptr_t)p->text < p->text_len;
}

/* msgs[i]'s serial becomes seq's, written in p's text. */
static void pub_set_serial(pub_t *p, size_t i, int64_t seq) {
  sw_msg_t *m = &p->msgs[i];
  if (!pub_owns(p, m->serial)) free(m->serial);
  m->serial = p->text + i * (SW_SERIAL_LEN + 1);
  serial_format(seq, m->serial);
  p->serials[i] = m->serial;
}

static void pub_free(pub_t *p) {
  for (size_t i = 0; i < p->n; i++) {
    if (p->msgs[i].connection_id == p->conn_id) p->msgs[i].connection_id = NULL;
    if (pub_owns(p, p->msgs[i].id)) p->msgs[i].id = NULL;
    if (pub_owns(p, p->msgs[i].serial)) p->msgs[i].serial = NULL;
    msg_clear(&p->msgs[i]);
  }
  free(p->msgs);
  if (p->who.rest_sock) sock_unref(p->who.rest_sock);
  free(p); /* dup, serials and text are in the same allocation */
}

static void pubs_free_all(sw_channel_t *ch) {
  while (ch->pubs) {
    pub_t *p = ch->pubs;
    ch->pubs = p->next;
    pub_free(p);
  }
}

static void pub_link(sw_channel_t *ch, pub_t *p) {
  pub_t **pp = &ch->pubs;
  while (*pp) pp = &(*pp)->next;
  *pp = p;
  ch->pending++;
}

static void pub_unlink(sw_channel_t *ch, pub_t *p) {
  for (pub_t **pp = &ch->pubs; *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      ch->pending--;
      return;
    }
}

void channel_broadcast(sw_channel_t *ch, const sw_pmsg_t *m, uint32_t mode_mask, const char *skip_conn_id) {
  /* Appends held for their rollup window go first: channelSerials reach
   * clients in order (core/rollup.h). */
  if (channel_xr(ch)->rollups && m->action == SW_ACTION_MESSAGE) rollup_flush(ch);
  /* Encoded lazily, once per wire format, for every subscriber using it. */
  sw_frame_t *frames[2] = {NULL, NULL};
  /* The connection to skip, found once: a pointer compared per subscriber
   * instead of a strcmp of ids (ids are unique among connections). */
  const sw_conn_t *skip = skip_conn_id ? conn_find(ch->srv, skip_conn_id) : NULL;
  for (sw_attach_t *a = ch->subs; a; a = a->next) {
    sw_conn_t *c = a->conn;
    if (!a->delivering || !(a->modes & mode_mask)) continue;
    const sw_attach_side_t *x = a->side;
    /* Messages wait while a replay runs: it reads them from storage, in order. */
    if (x && x->replay && (mode_mask & SW_MODE_SUBSCRIBE)) continue;
    if (c == skip) continue;
    if (m->action == SW_ACTION_MESSAGE) metrics_add(SW_M_MESSAGES_OUT, m->n_messages);
    sw_frame_t *df = a->delta ? delta_frame(a, m) : NULL; /* delta=vcdiff: the same bytes for all in step */
    if (df) {
      conn_send_frame(c, df);
      frame_unref(df);
      continue;
    }
    if (x && x->wire_name) {
      /* Attached under another spelling ([?params]name): its own frame. */
      sw_pmsg_t own = *m;
      own.channel = x->wire_name;
      sw_frame_t *f = pmsg_frame(c->fmt, &own);
      if (f) conn_send_frame(c, f);
      frame_unref(f);
      continue;
    }
    sw_frame_t **slot = &frames[c->fmt];
    if (!*slot) *slot = pmsg_frame(c->fmt, m);
    if (*slot) conn_send_frame(c, *slot);
  }
  frame_unref(frames[0]);
  frame_unref(frames[1]);
}

/* echo=false (RTC1a): the publisher's own connection is skipped, if it is
 * on this node. */
static const char *echo_skip(sw_server_t *srv, const char *conn_id) {
  if (!conn_id || !conn_id[0]) return NULL;
  sw_conn_t *pc = conn_find(srv, conn_id);
  return pc && !pc->echo ? conn_id : NULL;
}

static void fanout(sw_channel_t *ch, pub_t *p) {
  p->fanned = true;
  /* A channel nobody listens to (a durable publisher's own, often):
   * nothing to build. */
  if (!ch->subs && !channel_xr(ch)->derived) return;
  sw_msg_t *live = malloc(p->n * sizeof *live);
  if (!live) return;
  size_t n = 0;
  for (size_t i = 0; i < p->n; i++)
    if (!p->dup[i]) live[n++] = p->msgs[i]; /* shallow: p still owns */
  if (n == 0) {
    free(live);
    return;
  }
  char pid[SW_CONN_ID_LEN + 32];
  sw_pmsg_t m = {
      .action = SW_ACTION_MESSAGE,
      .channel = (char *)ch->name,
      .channel_serial = live[n - 1].serial,
      .timestamp = live[0].timestamp,
      .messages = live,
      .n_messages = n,
  };
  if (p->conn_id[0]) {
    fmt_id(pid, sizeof pid, p->conn_id, p->who.msg_serial);
    m.id = pid;
    m.connection_id = p->conn_id;
  }
  const char *skip = echo_skip(ch->srv, p->conn_id);
  delta_begin(ch, &m);
  channel_broadcast(ch, &m, SW_MODE_SUBSCRIBE, skip);
  delta_end(ch, &m);
  channel_broadcast_derived(ch, &m, skip);
  free(live);
}

void channel_broadcast_derived(sw_channel_t *ch, const sw_pmsg_t *m, const char *skip_conn_id) {
  if (!channel_xr(ch)->derived || !m->n_messages) return;
  sw_msg_t *pass = malloc(m->n_messages * sizeof *pass);
  if (!pass) return;
  for (sw_channel_t *d = ch->ext->derived; d; d = d->ext->next_derived) {
    if (!d->subs) continue;
    size_t k = 0;
    for (size_t i = 0; i < m->n_messages; i++) {
      const sw_msg_t *x = &m->messages[i];
      if (filter_match(d->ext->filter, x->name, json_object_get(x->extras, "headers"))) pass[k++] = *x; /* shallow */
    }
    if (!k) continue;
    sw_pmsg_t dm = *m;
    dm.channel = (char *)d->name;
    dm.messages = pass;
    dm.n_messages = k;
    /* The serial of the last message it gets: resuming from there misses
     * none of those that pass. */
    if (k < m->n_messages) dm.channel_serial = pass[k - 1].serial;
    channel_broadcast(d, &dm, SW_MODE_SUBSCRIBE, skip_conn_id);
  }
  free(pass);
}

void channel_notify(sw_server_t *srv, const sw_publisher_t *who, const char *channel, const sw_error_t *err,
                    char **serials, size_t n) {
  if (who->done) {
    who->done(who, channel, err, serials, n);
  } else if (who->conn_id) {
    sw_conn_t *c = conn_find(srv, who->conn_id);
    if (c) conn_publish_done(c, who->msg_serial, err, serials, n);
  }
}

static void notify(pub_t *p, const sw_error_t *err) {
  sw_publisher_t who = p->who;
  who.conn_id = p->conn_id[0] ? p->conn_id : NULL;
  channel_notify(p->srv, &who, p->ch->name, err, p->serials, p->n);
}

/* Frees the publishes that are answered and will not be delivered here
 * (delivered already, nothing stored, or a shared bus's channel this node
 * does not hear: not subscribed, or its start point is past them). */
static void pubs_settle(sw_channel_t *ch) {
  bool shared = ch->srv->bus && bus_shared(ch->srv->bus);
  bool hears = shared && ch->bus_ready;
  for (pub_t *p = ch->pubs, *next; p; p = next) {
    next = p->next;
    /* bus_local answers in publish order, and every answered publish
     * leaves here: the answered ones are the list's head, and the walk can
     * stop at the first that is not (a window of publishes in flight was
     * walked in full on every completion). */
    if (!p->answered) {
      if (!shared) break;
      continue;
    }
    if (!p->fanned && p->first_seq >= 0 && hears && p->last_seq > ch->durable_seq) continue;
    pub_unlink(ch, p);
    pub_free(p);
  }
}

/* The bus's done(): the publisher is told (ACK/NACK, the REST answer). A
 * shared bus gives the serials only now (and says which ids it had
 * already, RSL1k); bus_local gave them at the call, and has delivered the
 * messages just before. */
static void on_published(void *ud, const sw_error_t *err, const sw_bus_seq_t *seqs, size_t n) {
  pub_t *p = ud;
  sw_channel_t *ch = p->ch;
  p->answered = true;
  if (err) {
    log_ev(SW_LOG_WARN, "channel.publish_failed", p->conn_id[0] ? p->conn_id : NULL, ch->app->id, err->code,
           "publish on %s failed: %s", ch->name, err->message);
    notify(p, err);
    pub_unlink(ch, p);
    pub_free(p);
    return;
  }
  if (bus_shared(ch->srv->bus)) {
    size_t k = 0;
    for (size_t i = 0; i < p->n && k < n; i++) {
      if (p->dup[i]) continue;
      const sw_bus_seq_t *s = &seqs[k++];
      if (s->seq >= 0) {
        pub_set_serial(p, i, s->seq);
      } else {
        if (!pub_owns(p, p->msgs[i].serial)) free(p->msgs[i].serial);
        p->msgs[i].serial = p->serials[i] = NULL;
      }
      if (s->dup) {
        p->dup[i] = true;
        continue;
      }
      if (p->first_seq < 0) p->first_seq = s->seq;
      p->last_seq = s->seq;
    }
  }
  /* Messages in: stored ones published through this node. */
  size_t stored = 0;
  for (size_t i = 0; i < p->n; i++) stored += !p->dup[i];
  metrics_add(SW_M_MESSAGES_IN, stored);
  notify(p, NULL);
  /* Answered: a REST socket need not wait for the delivery. */
  if (p->who.rest_sock) sock_unref(p->who.rest_sock);
  p->who.rest_sock = NULL;
  pubs_settle(ch);
}

/* A message of another publisher (another node's, or the node's own whose
 * publish was not answered yet) from its blob: decoded once here, fanned
 * out to every subscriber of this node. */
static void deliver_decoded(sw_channel_t *ch, int64_t seq, const uint8_t *blob, size_t len) {
  sw_msg_t msg = {0};
  if (codec_msg_from_blob(blob, len, &msg)) {
    log_warn("channel %s: message %lld is not readable; not delivered", ch->name, (long long)seq);
    return;
  }
  char serial[SW_SERIAL_LEN + 1];
  serial_format(seq, serial);
  if (!msg.serial) msg.serial = strdup(serial);
  sw_pmsg_t m = {.action = SW_ACTION_MESSAGE, .channel = (char *)ch->name, .channel_serial = serial,
                 .timestamp = msg.timestamp, .connection_id = msg.connection_id, .messages = &msg, .n_messages = 1};
  const char *skip = echo_skip(ch->srv, msg.connection_id);
  delta_begin(ch, &m);
  channel_broadcast(ch, &m, SW_MODE_SUBSCRIBE, skip);
  delta_end(ch, &m);
  channel_broadcast_derived(ch, &m, skip);
  msg_clear(&msg);
}

/* A publish of this channel not fanned out yet, other than p. */
static bool more_in_flight(const sw_channel_t *ch, const pub_t *p) {
  for (const pub_t *q = ch->pubs; q; q = q->next)
    if (q != p && !q->fanned) return true;
  return false;
}

/* The bus's deliver(): message seq of (app_id, channel) is durable and in
 * order; it goes to this node's subscribers, once. */
static void on_bus_deliver(void *ud, const char *app_id, const char *channel, int64_t seq, int64_t ts,
                           const uint8_t *blob, size_t len) {
  (void)ts;
  sw_server_t *srv = ud;
  sw_channel_t *ch = channel_find_id(srv, app_id, channel);
  if (ch) channel_deliver(ch, seq, blob, len);
}

void channel_deliver(sw_channel_t *ch, int64_t seq, const uint8_t *blob, size_t len) {
  /* A publish's later messages went out with its first. */
  if (seq <= ch->durable_seq) return;
  pub_t *own = NULL;
  for (pub_t *p = ch->pubs; p && !own; p = p->next)
    if (!p->fanned && p->first_seq >= 0 && seq >= p->first_seq && seq <= p->last_seq) own = p;
  /* A publish's messages are durable together (one store transaction, or
   * one Redis script), so all of them go out now. */
  ch->durable_seq = own ? own->last_seq : seq;
  if (ch->last_seq < ch->durable_seq) ch->last_seq = ch->durable_seq;
  if (own) fanout(ch, own);
  else deliver_decoded(ch, seq, blob, len);
  /* More of this channel's publishes are on their way: their fan-out can
   * share this one's writes (core/sock.h). */
  if (ch->n_subs >= SW_FLUSH_HOLD_MIN_SUBS && more_in_flight(ch, own)) socks_hold_flush(ch->srv);
  if (ch->pubs) pubs_settle(ch);
}

static sw_recent_id_t *recent_find(sw_channel_t *ch, const char *id) {
  sw_recent_id_t *r = NULL;
  HASH_FIND_STR(ch->recent_ids, id, r);
  return r;
}

static void recent_add(sw_channel_t *ch, const char *id, int64_t seq, int64_t now) {
  sw_recent_id_t *r = calloc(1, sizeof *r);
  if (!r || !(r->id = strdup(id))) {
    free(r);
    return;
  }
  r->seq = seq;
  r->expires_at = now + IDEMPOTENCY_WINDOW_MS;
  HASH_ADD_KEYPTR(hh, ch->recent_ids, r->id, strlen(r->id), r);
}

/* RSL1k keeps every client-chosen id for two minutes, so they are bounded
 * per channel before any is kept: at most maxIdempotencyIds ids, each at
 * most maxMessageIdLength bytes (ids the server makes are never kept). An id
 * too long is Ably's 40031 (invalid client-specified message id). A full
 * window is 42913, Ably's per-channel publish rate code: it fills only when
 * the channel gets more than maxIdempotencyIds new ids in two minutes, and
 * frees itself as they expire. A resend of an id in the window is no new id
 * and is still answered as the duplicate it is. On a shared bus the window
 * is the bus's (in Redis, across nodes): only the length is checked here. */
static int recent_ids_admit(sw_channel_t *ch, const sw_msg_t *msgs, size_t n, bool shared, sw_error_t *err) {
  const sw_limits_t *l = &ch->srv->cfg->limits;
  size_t fresh = 0;
  for (size_t i = 0; i < n; i++) {
    if (!msgs[i].id) continue;
    if (strlen(msgs[i].id) > (size_t)l->max_message_id_length)
      return errors_set(err, 40031, "message id longer than %lld bytes (maxMessageIdLength)",
                        (long long)l->max_message_id_length);
    fresh += !shared && recent_find(ch, msgs[i].id) == NULL;
  }
  if (fresh && HASH_COUNT(ch->recent_ids) + fresh > (size_t)l->max_idempotency_ids)
    return errors_set(err, 42913,
                      "too many message ids published on this channel in the last two minutes "
                      "(maxIdempotencyIds %lld); retry later",
                      (long long)l->max_idempotency_ids);
  return 0;
}

/* extras.ephemeral (Ably: not persisted, Chat's typing and room reactions). */
static bool all_ephemeral(const sw_msg_t *msgs, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!msgs[i].extras || !json_is_true(json_object_get(msgs[i].extras, "ephemeral"))) return false;
  return n > 0;
}

/* A shared bus: the other nodes' subscribers get it too (core/bus.h, side
 * events; never logged). Best effort, like its delivery here. */
static void ephemeral_announce(sw_channel_t *ch, const pub_t *p) {
  sw_bus_t *bus = ch->srv->bus;
  if (!bus || !bus_shared(bus)) return;
  sw_pmsg_t m = {.action = SW_ACTION_MESSAGE, .channel = (char *)ch->name, .timestamp = p->msgs[0].timestamp,
                 .messages = p->msgs, .n_messages = p->n};
  if (p->conn_id[0]) m.connection_id = (char *)p->conn_id;
  sw_buf_t out = {0};
  if (codec_encode_pmsg(SW_FMT_MSGPACK, &m, &out) == 0 &&
      bus_announce(bus, ch->app->id, ch->name, SW_BUS_SIDE_EPHEMERAL, out.data, out.len, NULL, 0))
    log_warn("ephemeral message on %s not shared: the shared store is unreachable", ch->name);
  buf_free(&out);
}

/* Another node's ephemeral publish: to this node's subscribers. */
static void ephemeral_deliver(sw_channel_t *ch, const uint8_t *payload, size_t len) {
  sw_pmsg_t m = {0};
  sw_error_t err = {0};
  if (codec_decode_pmsg(SW_FMT_MSGPACK, payload, len, &m, &err) == 0 && m.action == SW_ACTION_MESSAGE &&
      m.n_messages) {
    sw_pmsg_t out = {.action = SW_ACTION_MESSAGE, .channel = (char *)ch->name, .timestamp = m.timestamp,
                     .connection_id = m.connection_id, .messages = m.messages, .n_messages = m.n_messages};
    channel_broadcast(ch, &out, SW_MODE_SUBSCRIBE, NULL);
    channel_broadcast_derived(ch, &out, NULL);
  }
  pmsg_free(&m);
}

/* An ephemeral publish is delivered at once and never stored: no serial
 * (so no channelSerial: a resume neither expects nor replays it), no
 * history, no rewind, no idempotency window. The publisher is answered as
 * usual (its ACK still waits for its earlier publishes, conn.c). On a
 * shared bus it reaches the other nodes' subscribers through the bus's
 * side events (ephemeral_announce). */
static void publish_ephemeral(sw_channel_t *ch, pub_t *p) {
  char base[SW_CONN_ID_LEN + 32];
  if (p->conn_id[0]) fmt_id(base, sizeof base, p->conn_id, p->who.msg_serial);
  else app_random_id(base, 12);
  for (size_t i = 0; i < p->n; i++) {
    if (p->msgs[i].id) continue;
    char id[SW_CONN_ID_LEN + 64];
    fmt_id(id, sizeof id, base, (int64_t)i);
    p->msgs[i].id = strdup(id);
  }
  metrics_add(SW_M_MESSAGES_IN, p->n);
  fanout(ch, p);
  ephemeral_announce(ch, p);
  notify(p, NULL);
  pub_free(p);
}

/* A batch up to this size has its bus records on the stack (they only live
 * through the bus_publish call). */
#define BMSGS_ON_STACK 8

/* The storage blobs of a publish are encoded into a buffer kept per thread
 * (the bus copies them in bus_publish), unless a large batch grew it past
 * this: a buffer grown from empty for every publish was a malloc, a
 * realloc and a free per message. */
#define BLOB_SCRATCH_KEEP (64 * 1024)
static _Thread_local sw_buf_t blob_scratch;

int channel_publish(sw_channel_t *ch, sw_msg_t *msgs, size_t n, const sw_publisher_t *who,
                    sw_error_t *err) {
  sw_bus_t *bus = ch->srv->bus;
  bool shared = bus && bus_shared(bus);
  if (recent_ids_admit(ch, msgs, n, shared, err)) {
    for (size_t i = 0; i < n; i++) msg_clear(&msgs[i]);
    free(msgs);
    return -1;
  }
  /* Ids the server makes itself (connectionId:msgSerial:index, TM2a; or a
   * random base for REST) are unique by construction: only ids the client
   * chose enter the idempotency window. The base is known before the
   * allocation, so the ids fit in it. */
  char conn_id[SW_CONN_ID_LEN + 1] = {0};
  if (who->conn_id) memcpy(conn_id, who->conn_id, strnlen(who->conn_id, sizeof conn_id - 1));
  char base[SW_CONN_ID_LEN + 32];
  if (conn_id[0]) fmt_id(base, sizeof base, conn_id, who->msg_serial);
  else if (who->id_base) snprintf(base, sizeof base, "%.40s", who->id_base);
  else app_random_id(base, 12);
  size_t id_cap = strlen(base) + 22, n_ids = 0; /* base ":" index (at most 20 digits) NUL */
  for (size_t i = 0; i < n; i++) n_ids += msgs[i].id == NULL;
  /* One allocation for the publish and its per-message arrays (serials,
   * the dup flags, then the text of the serials and ids), one buffer kept
   * per thread for the blobs and the bus records on the stack: allocations
   * per publish were a fifth of the loop thread's instructions. n is
   * bounded by the frame or body it was decoded from (maxFrameSize,
   * maxHttpBody), so the sizes cannot overflow. */
  size_t text_len = n * (SW_SERIAL_LEN + 1) + n_ids * id_cap;
  /* malloc and a memset of all but the text: glibc's calloc skips its
   * per-thread cache (measured ~250 instructions more per publish). */
  size_t zeroed = sizeof(pub_t) + n * (sizeof(char *) + sizeof(bool));
  pub_t *p = malloc(zeroed + text_len);
  if (p) memset(p, 0, zeroed);
  sw_bus_msg_t small[BMSGS_ON_STACK];
  size_t small_offs[BMSGS_ON_STACK + 1];
  sw_bus_msg_t *bmsgs = NULL;
  size_t *offs = NULL;
  sw_buf_t blobs = blob_scratch; /* taken, so that a nested publish could not share it */
  blob_scratch = (sw_buf_t){0};
  blobs.len = 0;
  if (!p) goto oom;
  p->serials = (char **)(p + 1);
  p->dup = (bool *)(p->serials + n);
  p->text = (char *)(p->dup + n);
  p->text_len = text_len;
  if (!ch->srv->store || !bus) {
    free(p);
    p = NULL;
    errors_set(err, SW_E_INTERNAL, "server shutting down");
    goto fail;
  }
  p->msgs = msgs;
  p->n = n;
  msgs = NULL; /* owned by p from here */
  p->who = *who;
  p->who.id_base = NULL; /* used above, during the call only */
  memcpy(p->conn_id, conn_id, sizeof conn_id);
  if (who->rest_sock) sock_ref(who->rest_sock);
  p->ch = ch;
  p->srv = ch->srv;
  /* A realtime publish's messages carry their connection's id (conn.c
   * leaves it to here): the publish's copy, not a strdup per message. */
  for (size_t i = 0; p->conn_id[0] && i < n; i++) {
    free(p->msgs[i].connection_id);
    p->msgs[i].connection_id = p->conn_id;
  }
  p->first_seq = p->last_seq = -1;
  if (n <= BMSGS_ON_STACK) {
    bmsgs = small;
    offs = small_offs;
  } else {
    bmsgs = malloc(n * sizeof *bmsgs + (n + 1) * sizeof *offs);
    if (!bmsgs) goto oom;
    offs = (size_t *)(bmsgs + n);
  }

  /* The cancelByTurnOwnerOnly rule: an ai-cancel only from the turn's owner. */
  for (size_t i = 0; ch->ns->cancel_owner_only && i < n; i++) {
    sw_msg_t *m = &p->msgs[i];
    if (m->name && strcmp(m->name, "ai-cancel") == 0 && who->principal &&
        ai_turns_check_cancel(ch, who->principal, m, err)) {
      pub_free(p);
      p = NULL;
      goto fail;
    }
  }
  for (size_t i = 0; ch->ns->cancel_owner_only && i < n; i++) ai_turns_observe(ch, &p->msgs[i]);
  if (all_ephemeral(p->msgs, n)) {
    publish_ephemeral(ch, p);
    p = NULL;
    goto done;
  }
  int64_t now = clock_now_ms();
  size_t nrec = 0;
  /* bus_local assigns ch->last_seq + 1.. in the call (core/bus.h), so a
   * local publish knows its serials now, and they go into the blobs as the
   * store has always had them; a shared bus assigns them in Redis, and
   * readers take a message's serial from its seq. */
  int64_t first_seq = shared ? -1 : ch->last_seq + 1;
  char *next_id = p->text + n * (SW_SERIAL_LEN + 1);
  for (size_t i = 0; i < n; i++) {
    sw_msg_t *m = &p->msgs[i];
    bool chosen = m->id != NULL;
    if (!chosen) {
      m->id = next_id;
      next_id += fmt_id(next_id, id_cap, base, (int64_t)i) + 1;
    }
    free(m->serial);
    m->serial = NULL;
    if (!shared) {
      sw_recent_id_t *r = chosen ? recent_find(ch, m->id) : NULL;
      bool dup_in_batch = false;
      for (size_t j = 0; chosen && j < i && !dup_in_batch; j++)
        dup_in_batch = !p->dup[j] && p->msgs[j].id && strcmp(p->msgs[j].id, m->id) == 0;
      if (r || dup_in_batch) {
        /* RSL1k: an id seen within the window is acknowledged, not republished. */
        p->dup[i] = true;
        continue;
      }
      int64_t seq = first_seq + (int64_t)nrec;
      pub_set_serial(p, i, seq);
      if (chosen) recent_add(ch, m->id, seq, now);
    }
    offs[nrec] = blobs.len;
    if (codec_msg_to_blob(m, &blobs)) goto oom;
    bmsgs[nrec] = (sw_bus_msg_t){.timestamp = m->timestamp, .id = m->id, .idempotent = chosen};
    nrec++;
  }
  offs[nrec] = blobs.len;
  for (size_t i = 0; i < nrec; i++) {
    bmsgs[i].blob = blobs.data + offs[i];
    bmsgs[i].len = offs[i + 1] - offs[i];
  }
  if (!shared && nrec) {
    p->first_seq = first_seq;
    p->last_seq = first_seq + (int64_t)nrec - 1;
  }
  /* Duplicates keep the serial their first publish got, if still known. */
  for (size_t i = 0; !shared && i < n; i++) {
    if (!p->dup[i]) continue;
    sw_recent_id_t *r = p->msgs[i].id ? recent_find(ch, p->msgs[i].id) : NULL;
    if (r) pub_set_serial(p, i, r->seq);
  }
  /* Every publish goes through the bus, even one of duplicates only (a
   * barrier on bus_local), so completions (and so ACKs) keep publish order.
   * A message's age counts from now; retentionSeconds 0 keeps it 1 ms. */
  sw_bus_policy_t pol = {.keep_count = ch->ns->keep_count,
                         .max_age_ms = ch->ns->retention_ms > 0 ? ch->ns->retention_ms : 1,
                         .max_ids = ch->srv->cfg->limits.max_idempotency_ids,
                         .ch = ch /* pinned until done(): pub_link counts it in ch->pending */};
  pub_link(ch, p);
  if (bus_publish(bus, ch->app->id, ch->name, bmsgs, nrec, &pol, on_published, p, err)) {
    pub_unlink(ch, p);
    pub_free(p);
    p = NULL;
    goto fail;
  }
done:
  if (bmsgs != small) free(bmsgs); /* offs is in the same allocation */
  if (blobs.cap > BLOB_SCRATCH_KEEP || blob_scratch.data) buf_free(&blobs);
  else blob_scratch = blobs;
  return 0;
oom:
  errors_set(err, SW_E_INTERNAL, "out of memory");
  if (p) pub_free(p);
fail:
  if (msgs) {
    for (size_t i = 0; i < n; i++) msg_clear(&msgs[i]);
    free(msgs);
  }
  if (bmsgs != small) free(bmsgs);
  if (blobs.cap > BLOB_SCRATCH_KEEP || blob_scratch.data) buf_free(&blobs);
  else blob_scratch = blobs;
  return -1;
}

/* A replay from storage in progress (sw_attach.replay), in two phases:
 *  1. rewind: the heads of the rewind window in seq order, up to seq_end
 *     (durable_seq at the attach), each with its own serial (its seq) as
 *     channelSerial; a head that changed after seq_end is left to phase 2;
 *  2. every head whose latest version is after `after`, in version order
 *     (by_vseq), each with that version's serial as channelSerial, up to
 *     the channel's durable_seq at the time: a resume is this phase alone,
 *     and a rewind continues with it from seq_end.
 * A client cut off mid-replay re-attaches with the last channelSerial it
 * processed, S, and is resumed by phase 2 from S: every head it has not
 * been sent since has a vseq after S (a message's vseq is at least its
 * seq), so it may get a head twice but misses none. */
typedef struct sw_replay {
  bool by_vseq;         /* phase 2 */
  bool last_page;       /* the page read held every row up to its bound */
  bool running;         /* inside replay_step: channel_replay_end sets ended instead of freeing */
  bool ended;
  int64_t after;        /* rows after this seq (phase 1) or vseq (phase 2) are still to send */
  int64_t resume_from;  /* phase 2 began after this serial: the client holds the messages up to it */
  int64_t seq_end;      /* phase 1 ends with this seq */
  int64_t start_ms;     /* phase 1: only messages since then (rewind by time); 0 for all */
  int64_t read_upto;    /* ch->durable_seq when the page was read */
  sw_store_rows_t rows; /* the page read; rows[next..] are not sent yet */
  size_t next;
  size_t page_rows;     /* rows to ask for in the next read */
  size_t low_water;     /* the socket's mark when the read was asked for */
  bool reading;         /* a bus_read is in flight: the step continues from its answer */
  bool read_failed;     /* ... and it failed (err) */
  sw_error_t err;
  sw_attach_t *a;       /* valid while !ended */
} sw_replay_t;

static void replay_step(sw_attach_t *a);

static void replay_free(sw_replay_t *r) {
  store_rows_free(&r->rows);
  free(r);
}

/* An ATTACH waiting for its channel's start point (a shared bus's ready())
 * or for the read that finds where a rewind starts (sw_attach.wait). */
typedef struct attach_wait {
  sw_attach_t *a;       /* NULL once cancelled (detach, a new ATTACH, the transport gone) */
  bool reading;         /* the rewind read is in flight: its answer frees a cancelled wait */
  uint32_t modes;
  char *channel_serial; /* NULL: fresh attach */
  int64_t rewind_count, rewind_ms;
  json_t *params;
  char *channel_name;
  /* Worked out when the channel is ready: */
  int64_t up_to, after, start_ms;
  bool resumed, replaying;
} attach_wait_t;

static void attach_wait_free(attach_wait_t *w) {
  free(w->channel_serial);
  free(w->channel_name);
  json_decref(w->params);
  free(w);
}

static void attach_wait_cancel(sw_attach_t *a) {
  attach_wait_t *w = attach_sr(a)->wait;
  if (!w) return;
  a->side->wait = NULL;
  attach_side_trim(a);
  w->a = NULL;
  if (!w->reading) attach_wait_free(w);
}

void channel_replay_end(sw_attach_t *a) {
  attach_wait_cancel(a);
  sw_replay_t *r = attach_sr(a)->replay;
  if (!r) return;
  a->side->replay = NULL;
  attach_side_trim(a);
  r->ended = true;
  /* replay_step frees it when the send returns; a read's answer when it comes. */
  if (!r->running && !r->reading) replay_free(r);
}

/* The answer of a replay's read: the page is kept and the step goes on
 * (unless it is running: bus_local answers from inside bus_read). */
static void on_replay_read(void *ud, const sw_error_t *err, sw_store_rows_t *rows, int64_t cursor, bool more) {
  (void)cursor, (void)more;
  sw_replay_t *r = ud;
  r->reading = false;
  if (r->ended) {
    store_rows_free(rows);
    if (!r->running) replay_free(r);
    return;
  }
  if (err) {
    r->read_failed = true;
    r->err = *err;
    store_rows_free(rows);
  } else {
    r->rows = *rows;
    r->last_page = r->rows.n < r->page_rows;
    /* The next page is about one low-water mark of data: small messages in
     * few reads, large ones without holding megabytes per replay. */
    size_t bytes = 0;
    for (size_t i = 0; i < r->rows.n; i++) bytes += r->rows.rows[i].blob_len;
    if (r->rows.n) {
      size_t fit = r->low_water / (bytes / r->rows.n + 1) + 1;
      r->page_rows = fit < REPLAY_PAGE ? fit : REPLAY_PAGE;
    }
  }
  if (!r->running) replay_step(r->a);
}

/* Asks the bus for the next page after r->after (the answer may come
 * later: r->reading). 0, or -1 with r->err. */
static int replay_read(sw_attach_t *a, sw_replay_t *r, size_t low_water) {
  sw_channel_t *ch = root_of(a->ch);
  store_rows_free(&r->rows);
  r->next = 0;
  r->read_upto = ch->durable_seq;
  r->low_water = low_water;
  sw_bus_range_t q = {.app_id = ch->app->id, .channel = ch->name, .after_seq = r->after,
                      .before_seq = (r->by_vseq ? ch->durable_seq : r->seq_end) + 1,
                      .start = r->by_vseq ? 0 : r->start_ms, .end = INT64_MAX, .forwards = true,
                      .limit = r->page_rows, .now = clock_now_ms(), .by_vseq = r->by_vseq};
  r->reading = true;
  if (bus_read(ch->srv->bus, &q, on_replay_read, r, &r->err)) {
    r->reading = false;
    return -1;
  }
  return 0;
}

/* Sends one stored head as a MESSAGE whose channelSerial is serial. In
 * phase 2 (holds >= 0: the client holds every message up to that serial),
 * a head whose last change was its annotation summary goes as Ably sends
 * that change, a message.summary of a message the client holds, after the
 * head itself if the client lacks one of its versions too. */
static void replay_send(sw_attach_t *a, const sw_store_row_t *row, int64_t serial, int64_t holds) {
  sw_conn_t *c = a->conn;
  sw_msg_t msg = {0};
  if (codec_msg_from_blob(row->blob, row->blob_len, &msg)) return;
  char own[SW_SERIAL_LEN + 1];
  if (!msg.serial) {
    /* A cluster's log stores messages before their serial is known: it is their seq. */
    serial_format(row->seq, own);
    msg.serial = strdup(own);
  }
  int64_t version = annotation_head_version(&msg, row->seq);
  bool summary = holds >= 0 && row->vseq > version && row->seq <= holds && msg.annotations;
  bool head = !summary || version > holds;
  char cs[SW_SERIAL_LEN + 1];
  serial_format(serial, cs);
  sw_pmsg_t m = {.action = SW_ACTION_MESSAGE,
                 .channel = attach_wire_name(a),
                 .channel_serial = cs,
                 .timestamp = msg.timestamp,
                 .connection_id = msg.connection_id,
                 .messages = &msg,
                 .n_messages = 1};
  /* A head is the message in full. */
  mutation_mark_full(a, row->seq);
  const sw_filter_t *filt = channel_xr(a->ch)->filter;
  bool pass = !filt || filter_match(filt, msg.name, json_object_get(msg.extras, "headers"));
  bool sent = head && pass && (c->echo || !msg.connection_id || strcmp(msg.connection_id, c->id) != 0);
  if (sent) {
    conn_send_pmsg(c, &m);
    metrics_inc(SW_M_MESSAGES_OUT);
  }
  /* Sent whole; the channel's delta base if it is the message as published. */
  if (sent || (summary && pass)) {
    bool first = sent && !summary && row->vseq == row->seq;
    delta_sent_whole(a, first ? &msg : NULL, row->seq);
  }
  if (summary && pass) {
    sw_msg_t ev = annotation_summary_event(&msg, msg.annotations, msg.timestamp);
    sw_pmsg_t sm = m;
    sm.connection_id = NULL;
    sm.messages = &ev;
    conn_send_pmsg(c, &sm);
    metrics_inc(SW_M_MESSAGES_OUT);
  }
  msg_clear(&msg);
}

/* Queues replayed rows while the socket's queue is below its low-water
 * mark, then asks for a drain notification (conn_on_drain continues). Once
 * every row up to durable_seq is sent, the attachment goes live: steps run
 * on the loop thread between store completions, so durable_seq cannot move
 * during one and the hand-over is exact. */
static void replay_step(sw_attach_t *a) {
  sw_replay_t *r = attach_sr(a)->replay;
  if (!r || r->running) return;
  sw_conn_t *c = a->conn;
  r->running = true;
  for (;;) {
    sw_sock_t *s = c->sock;
    if (!s || s->closing) break; /* the replay ends with the transport */
    size_t low = sock_low_water(s);
    if (s->q_bytes >= low) {
      s->drain_wanted = true;
      break;
    }
    if (r->next < r->rows.n) {
      const sw_store_row_t *row = &r->rows.rows[r->next++];
      if (r->by_vseq) {
        r->after = row->vseq;
        replay_send(a, row, row->vseq, r->resume_from);
      } else {
        r->after = row->seq;
        if (row->vseq <= r->seq_end) replay_send(a, row, row->seq, -1);
      }
      if (r->ended) break;
      continue;
    }
    if (r->last_page && !r->by_vseq) {
      /* The rewind window is sent: phase 2 from its end. */
      r->by_vseq = true;
      r->after = r->resume_from = r->seq_end;
      r->last_page = false;
    } else if (r->last_page && r->read_upto == root_of(a->ch)->durable_seq) {
      /* Caught up: live fan-out continues after durable_seq. */
      a->side->replay = NULL;
      attach_side_trim(a);
      a->live_seq = root_of(a->ch)->durable_seq;
      r->ended = true;
      break;
    }
    if (replay_read(a, r, low) == 0 && !r->read_failed) {
      if (r->reading) break; /* on_replay_read continues */
      continue;
    }
    /* The log cannot be read (a shared store unreachable): the client is
     * told the channel is detached and re-attaches from its channelSerial
     * (RTL13a), rather than going live past what it missed. */
    log_ev(SW_LOG_WARN, "channel.replay_failed", c->id, a->ch->app->id, r->err.code, "replay on %s stopped: %s",
           a->ch->name, r->err.message);
    a->side->replay = NULL;
    attach_side_trim(a);
    a->delivering = false;
    r->ended = true;
    sw_pmsg_t d = {.action = SW_ACTION_DETACHED, .channel = attach_wire_name(a),
                   .error = r->err};
    conn_send_pmsg(c, &d);
    break;
  }
  r->running = false;
  if (r->ended && !r->reading) replay_free(r);
}

void channel_replay_continue(sw_attach_t *a) { replay_step(a); }


/* ------------------------------------------------------------ occupancy */

static const char *const occ_names[SW_OCC_COUNT] = {
    [SW_OCC_CONNECTIONS] = "connections",
    [SW_OCC_PUBLISHERS] = "publishers",
    [SW_OCC_SUBSCRIBERS] = "subscribers",
    [SW_OCC_PRESENCE_CONNECTIONS] = "presenceConnections",
    [SW_OCC_PRESENCE_MEMBERS] = "presenceMembers",
    [SW_OCC_PRESENCE_SUBSCRIBERS] = "presenceSubscribers",
    [SW_OCC_OBJECT_PUBLISHERS] = "objectPublishers",
    [SW_OCC_OBJECT_SUBSCRIBERS] = "objectSubscribers",
};

sw_occupancy_t channel_occupancy_local(const sw_channel_t *ch) {
  sw_occupancy_t o = {{0}};
  for (const sw_attach_t *a = ch ? ch->subs : NULL; a; a = a->next) {
    o.n[SW_OCC_CONNECTIONS]++;
    o.n[SW_OCC_PUBLISHERS] += (a->modes & SW_MODE_PUBLISH) != 0;
    o.n[SW_OCC_SUBSCRIBERS] += (a->modes & SW_MODE_SUBSCRIBE) != 0;
    o.n[SW_OCC_PRESENCE_CONNECTIONS] += (a->modes & SW_MODE_PRESENCE) != 0;
    o.n[SW_OCC_PRESENCE_SUBSCRIBERS] += (a->modes & SW_MODE_PRESENCE_SUBSCRIBE) != 0;
    o.n[SW_OCC_OBJECT_PUBLISHERS] += (a->modes & SW_MODE_OBJECT_PUBLISH) != 0;
    o.n[SW_OCC_OBJECT_SUBSCRIBERS] += (a->modes & SW_MODE_OBJECT_SUBSCRIBE) != 0;
  }
  if (ch) o.n[SW_OCC_PRESENCE_MEMBERS] = (int64_t)ch->n_members;
  return o;
}

sw_occupancy_t channel_occupancy(const sw_channel_t *ch) {
  sw_occupancy_t o = channel_occupancy_local(ch);
  if (ch && channel_xr(ch)->occ_share) occ_share_add(ch, &o, clock_now_ms()); /* a cluster's other nodes */
  return o;
}

/* The occupancy param's value: "metrics" (1) or "metrics.<name>" (2 + the
 * metric); 0 for none or a value we do not know (ignored, as unknown
 * params are). Subscribing to occupancy needs channel-metadata (Ably's
 * rule): without it the param is ignored. */
static uint8_t occupancy_param(const sw_conn_t *c, const sw_channel_t *ch, const json_t *params) {
  json_t *v = params ? json_object_get(params, "occupancy") : NULL;
  if (!json_is_string(v) || !cap_allows(c->auth.cap, ch->name, SW_OP_CHANNEL_METADATA)) return 0;
  const char *s = json_string_value(v);
  if (strcmp(s, "metrics") == 0) return 1;
  if (strncmp(s, "metrics.", 8) == 0)
    for (int k = 0; k < SW_OCC_COUNT; k++)
      if (strcmp(s + 8, occ_names[k]) == 0) return (uint8_t)(2 + k);
  return 0;
}

/* Sends a's [meta]occupancy event: a message with data {"metrics": {...}}
 * (only the metric it asked for, if one), no serial or channelSerial: it
 * is not stored. */
static void occupancy_send(sw_attach_t *a, const sw_occupancy_t *o, int64_t now) {
  json_t *metrics = json_object();
  for (int k = 0; metrics && k < SW_OCC_COUNT; k++)
    if (a->occupancy == 1 || a->occupancy == 2 + k) json_object_set_new(metrics, occ_names[k], json_integer(o->n[k]));
  json_t *data = json_pack("{s:o}", "metrics", metrics);
  char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
  json_decref(data);
  char id[32];
  app_random_id(id, 12);
  strcat(id, ":0:0");
  sw_msg_t m = {.action = -1, .id = id, .name = (char *)"[meta]occupancy", .encoding = (char *)"json",
                .timestamp = now};
  if (text) m.data = (sw_data_t){.kind = SW_DATA_STRING, .bytes = (uint8_t *)text, .len = strlen(text)};
  sw_pmsg_t pm = {.action = SW_ACTION_MESSAGE, .channel = attach_wire_name(a),
                  .timestamp = now, .messages = &m, .n_messages = 1};
  if (text) conn_send_pmsg(a->conn, &pm);
  if (text) delta_sent_whole(a, NULL, 0);
  free(text);
}

/* Called on the tick: sends the channel's occupancy to its occupancy
 * subscribers when it changed (at most every SW_OCCUPANCY_DEBOUNCE_MS,
 * at once when a metric goes from or to zero), and to those that attached
 * since in any case. */
static void occupancy_tick(sw_channel_t *ch, int64_t now) {
  sw_channel_ext_t *x = channel_ext(ch);
  if (!x || (!x->occ_sent && !(x->occ_sent = calloc(1, sizeof *x->occ_sent)))) return; /* next tick */
  struct sw_occ_sent *sent = x->occ_sent;
  sw_occupancy_t o = channel_occupancy(ch);
  bool changed = memcmp(&o, &sent->o, sizeof o) != 0, edge = false;
  for (int k = 0; k < SW_OCC_COUNT; k++) edge = edge || ((o.n[k] == 0) != (sent->o.n[k] == 0));
  bool all = changed && (edge || now - sent->ms >= SW_OCCUPANCY_DEBOUNCE_MS);
  for (sw_attach_t *a = ch->subs; a; a = a->next) {
    if (!a->occupancy || !a->delivering || !(a->modes & SW_MODE_SUBSCRIBE) || !(all || a->occ_due)) continue;
    a->occ_due = false;
    occupancy_send(a, &o, now);
  }
  if (all) {
    sent->o = o;
    sent->ms = now;
  }
}

static void attach_finish(attach_wait_t *w);

/* The answer of the read that finds where a rewind starts: before the
 * last last_n messages up to up_to, or before the first one since
 * start_ms; up_to if none (or if the read failed: no backlog). */
static void on_rewind_read(void *ud, const sw_error_t *err, sw_store_rows_t *rows, int64_t cursor, bool more) {
  (void)cursor, (void)more;
  attach_wait_t *w = ud;
  w->reading = false;
  if (!err && rows->n) w->after = rows->rows[rows->n - 1].seq - 1;
  store_rows_free(rows);
  if (!w->a) {
    attach_wait_free(w); /* cancelled meanwhile */
    return;
  }
  attach_finish(w);
}

/* The channel is ready (its durable_seq is the start point): works out
 * what to replay, then finishes the attach, once the rewind's start is
 * read if there is one. */
static void attach_go(attach_wait_t *w) {
  sw_attach_t *a = w->a;
  sw_channel_t *ch = a->ch, *root = root_of(ch);
  int64_t up_to = root->durable_seq, after = up_to, start_ms = 0, last_n = 0;
  bool resumed = false, replaying = false;
  int64_t seq;
  if (w->channel_serial && serial_parse(w->channel_serial, strlen(w->channel_serial), &seq) == 0 && seq <= up_to) {
    /* RTL4c1: continue after the last message the client saw. */
    after = seq;
    resumed = replaying = true;
    /* Unless the connection's members left meanwhile (remainPresentFor):
     * without RESUMED the client enters them again (RTP17i). */
    if (a->presence_lost) resumed = false;
  } else if (w->rewind_count > 0 || w->rewind_ms > 0) {
    /* A rewind sends at most maxRewind messages (Ably: 100), the latest. */
    int64_t cap = ch->srv->cfg->limits.max_rewind;
    last_n = w->rewind_count > 0 && w->rewind_count < cap ? w->rewind_count : cap;
    if (w->rewind_ms > 0) start_ms = clock_now_ms() - w->rewind_ms;
    replaying = true;
  }
  a->presence_lost = false;
  replaying = replaying && (a->modes & SW_MODE_SUBSCRIBE);
  w->up_to = up_to;
  w->after = after;
  w->start_ms = start_ms;
  w->resumed = resumed;
  w->replaying = replaying;
  if (!replaying || resumed) {
    attach_finish(w);
    return;
  }
  sw_bus_range_t q = {.app_id = root->app->id, .channel = root->name, .after_seq = -1, .before_seq = up_to + 1,
                      .start = start_ms, .end = INT64_MAX, .forwards = false, .limit = (size_t)last_n,
                      .now = clock_now_ms()};
  sw_error_t err;
  w->reading = true;
  if (bus_read(ch->srv->bus, &q, on_rewind_read, w, &err)) {
    w->reading = false;
    attach_finish(w); /* no backlog */
  }
}

/* Sends ATTACHED and starts the replay, if any; frees w. */
static void attach_finish(attach_wait_t *w) {
  sw_attach_t *a = w->a;
  sw_channel_t *ch = a->ch;
  sw_conn_t *c = a->conn;
  a->side->wait = NULL; /* (w was a's wait: a has its side) */
  attach_side_trim(a);
  int64_t up_to = w->up_to, after = w->after;
  bool resumed = w->resumed, replaying = w->replaying;
  sw_replay_t *r = replaying && attach_side(a) ? calloc(1, sizeof *r) : NULL;
  if (replaying && !r) replaying = false, after = up_to;

  /* ably-js takes ATTACHED's channelSerial as its own (RTL15b): with a
   * replay it is where the replay starts, so a client cut off before the
   * first replayed message resumes from there; with a rewind it is also
   * the attachSerial, and history untilAttach (RTL10b) ends where the
   * rewind begins. */
  char serial[SW_SERIAL_LEN + 1];
  serial_format(replaying ? after : up_to, serial);
  sw_pmsg_t m = {.action = SW_ACTION_ATTACHED,
                 .channel = (char *)(w->channel_name ? w->channel_name : ch->name),
                 .flags = (int64_t)a->modes | (resumed ? SW_FLAG_RESUMED : 0) |
                          (ch->n_members ? SW_FLAG_HAS_PRESENCE : 0) |
                          /* RTL2i: a rewind with messages to replay */
                          (replaying && !resumed && after < up_to ? SW_FLAG_HAS_BACKLOG : 0),
                 .has_flags = true,
                 .channel_serial = serial,
                 .params = w->params};
  conn_send_pmsg(c, &m);
  a->delivering = true;
  a->from_seq = replaying ? after : up_to;
  a->live_seq = up_to;
  mutation_attach_free(a);
  int64_t start_ms = w->start_ms;
  attach_wait_free(w);
  if (a->modes & SW_MODE_PRESENCE_SUBSCRIBE) presence_sync(ch, a);
  if (r) {
    r->a = a;
    r->by_vseq = resumed;
    r->after = r->resume_from = after;
    r->seq_end = up_to;
    r->start_ms = start_ms;
    r->page_rows = REPLAY_FIRST_PAGE;
    a->side->replay = r; /* (allocated with r above; nothing since trimmed it) */
    replay_step(a);
  } else {
    attach_side_trim(a); /* full_sent went (mutation_attach_free) */
  }
}

int channel_attach(sw_channel_t *ch, sw_conn_t *c, const sw_attach_req_t *req) {
  sw_attach_t *a = conn_attachment(c, ch);
  if (!a) {
    a = calloc(1, sizeof *a);
    if (!a) return -1;
    a->conn = c;
    a->ch = ch;
    if (conn_attachment_add(c, ch, a)) {
      free(a);
      return -1;
    }
    a->next = ch->subs;
    if (ch->subs) ch->subs->prev = a;
    ch->subs = a;
    ch->n_subs++;
  }
  channel_replay_end(a); /* a new attach replaces a replay (or a wait) in progress */
  if (a->side) {
    free(a->side->wire_name);
    a->side->wire_name = NULL;
  }
  if (req->channel_name && strcmp(req->channel_name, ch->name)) {
    sw_attach_side_t *x = attach_side(a);
    if (!x || !(x->wire_name = strdup(req->channel_name))) return -1;
  }
  a->modes = req->modes;
  uint8_t occ = occupancy_param(c, ch, req->params);
  ch->n_occupancy += (occ != 0) - (a->occupancy != 0);
  a->occupancy = occ;
  a->occ_due = occ != 0;
  if (delta_attach(a, req->params)) return -1;

  attach_wait_t *w = calloc(1, sizeof *w);
  if (!w) return -1;
  *w = (attach_wait_t){.a = a, .modes = req->modes, .rewind_count = req->rewind_count, .rewind_ms = req->rewind_ms,
                       .params = json_incref(req->params)};
  if ((req->channel_serial && !(w->channel_serial = strdup(req->channel_serial))) ||
      (req->channel_name && !(w->channel_name = strdup(req->channel_name)))) {
    attach_wait_free(w);
    return -1;
  }
  sw_attach_side_t *x = attach_side(a);
  if (!x) {
    attach_wait_free(w);
    return -1;
  }
  x->wait = w;
  sw_channel_t *root = root_of(ch);
  if (!root->bus_ready) {
    /* A shared bus: ATTACHED waits for the channel's start point (ready),
     * asked for by the channel's first attachment. Nothing is delivered
     * to the attachment meanwhile. */
    a->delivering = false;
    if (!root->bus_sub) {
      if (bus_subscribe(ch->srv->bus, root->app->id, root->name)) {
        attach_wait_cancel(a);
        return -1;
      }
      root->bus_sub = true;
    }
    return 0;
  }
  attach_go(w);
  return 0;
}

/* The bus's ready(): the channel's start point. The attachments waiting
 * for it (the channel's and its derived channels') finish their ATTACH. */
static void on_bus_ready(void *ud, const char *app_id, const char *channel, int64_t last_seq) {
  sw_server_t *srv = ud;
  sw_channel_t *ch = channel_find_id(srv, app_id, channel);
  if (!ch || !ch->bus_sub || ch->bus_ready) return;
  ch->bus_ready = true;
  ch->durable_seq = last_seq;
  if (ch->last_seq < last_seq) ch->last_seq = last_seq;
  for (sw_channel_t *d = ch; d; d = d == ch ? channel_xr(ch)->derived : d->ext->next_derived)
    for (sw_attach_t *a = d->subs, *next; a; a = next) {
      next = a->next;
      if (attach_sr(a)->wait && !a->side->wait->reading) attach_go(a->side->wait);
    }
  if (ch->pubs) pubs_settle(ch);
}

static void on_bus_state(void *ud, bool up) {
  if (up) presence_bus_resync(ud);
  log_ev(up ? SW_LOG_INFO : SW_LOG_WARN, up ? "cluster.up" : "cluster.down", NULL, NULL, up ? 0 : SW_BUS_E_UNAVAILABLE,
         "%s", up ? "the shared store is reachable: publishes are accepted"
                  : "the shared store is unreachable: publishes are refused (50004) until it is back");
}

/* The bus's side events: another node's presence event or ephemeral
 * message on a channel this node holds. */
static void on_bus_side(void *ud, const char *app_id, const char *channel, int kind, const uint8_t *payload,
                        size_t len) {
  sw_channel_t *ch = channel_find_id(ud, app_id, channel);
  if (!ch) return;
  if (kind == SW_BUS_SIDE_PRESENCE) presence_bus_event(ch, payload, len);
  else if (kind == SW_BUS_SIDE_EPHEMERAL) ephemeral_deliver(ch, payload, len);
  else if (kind == SW_BUS_SIDE_OCCUPANCY) occ_share_event(ch, payload, len, clock_now_ms());
}

static void on_bus_members(void *ud, const char *app_id, const char *channel, const sw_bus_member_t *m, size_t n,
                           bool snapshot) {
  sw_channel_t *ch = channel_find_id(ud, app_id, channel);
  if (ch) presence_bus_members(ch, m, n, snapshot);
}

void channel_bus_handlers(sw_server_t *srv, sw_bus_handlers_t *h) {
  *h = (sw_bus_handlers_t){.deliver = on_bus_deliver, .deliver_version = mutation_bus_deliver,
                           .deliver_annotation = annotation_bus_deliver, .ready = on_bus_ready,
                           .state = on_bus_state, .ud = srv, .side = on_bus_side, .members = on_bus_members};
}

void channel_detach(sw_attach_t *a) {
  sw_channel_t *ch = a->ch;
  /* Detaching leaves presence (RTP5a); so does the end of a connection. */
  presence_leave_conn(ch, a->conn->id);
  channel_replay_end(a);
  conn_attachment_remove(a->conn, a);
  if (a->prev) a->prev->next = a->next;
  else ch->subs = a->next;
  if (a->next) a->next->prev = a->prev;
  ch->n_subs--;
  if (a->occupancy) ch->n_occupancy--;
  mutation_attach_free(a);
  if (a->side) free(a->side->wire_name);
  free(a->side);
  free(a);
}

void channel_tick(sw_server_t *srv, int64_t now_ms) {
  sw_channel_t *ch;
  SW_CHANNELS_EACH(&srv->channels, ch) {
    /* Ids are added in time order, and uthash iterates in insertion order. */
    sw_recent_id_t *r, *rtmp;
    HASH_ITER(hh, ch->recent_ids, r, rtmp) {
      if (r->expires_at > now_ms) break;
      HASH_DEL(ch->recent_ids, r);
      free(r->id);
      free(r);
    }
    if (ch->bus_sub) occ_share_tick(ch, now_ms);
    if (ch->n_occupancy) occupancy_tick(ch, now_ms);
    /* An idle channel is rebuilt from storage when next used (a base
     * stays while it has derived channels, freed first). */
    /* Other nodes' members (a shared bus) do not keep it: they are read
     * again when it is next used. */
    if (!ch->subs && !ch->recent_ids && !ch->pending && ch->n_members == ch->n_remote_members && !channel_xr(ch)->derived)
      channel_free(srv, ch);
  }
}

void channels_free(sw_server_t *srv) {
  sw_channel_t *ch;
  /* Derived channels first: freeing one unlinks it from its base. */
  SW_CHANNELS_EACH(&srv->channels, ch) if (channel_base(ch)) channel_free(srv, ch);
  SW_CHANNELS_EACH(&srv->channels, ch) channel_free(srv, ch);
  ptrmap_free(&srv->channels.map);
  srv->channels.last = NULL;
}
