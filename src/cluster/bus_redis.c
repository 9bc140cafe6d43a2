/* bus_redis.c: the bus (bus.h) on Redis: redis_log for the log, one
 * command connection and one pub/sub connection (redis_conn).
 *
 * Per subscribed channel: `next`, the next seq to deliver. Bus messages
 * are delivered when they are `next`; one ahead of it is held (sorted,
 * bounded) while a catch-up read of the log fills the gap; one behind it
 * is a duplicate and dropped. Gaps appear only when the pub/sub connection
 * was lost (messages published meanwhile never arrive) or the held list
 * overflowed: a Redis script runs alone, so a connection that stays up
 * receives a channel's messages in seq order with none missing.
 *
 * Numbering: the log numbers a channel's messages from 0 (redis_log.h);
 * core/ from 1, 0 being "before the first message" (the channelSerial of
 * an ATTACHED on an empty channel, which untilAttach sends back). The bus
 * adds 1 to every seq it hands out (deliver, ready, done, rows read) and
 * takes 1 from the bounds it is given; inside, `next` and the held
 * messages are the log's. */
#include <errno.h>
#include <stdio.h>
#include <sys/random.h>
#include <stdlib.h>
#include <string.h>
#include "util/hash.h"

#include "cluster/bus_redis.h"
#include "cluster/redis_conn.h"
#include "cluster/redis_log.h"
#include "util/clock.h"
#include "util/log.h"

#define CATCHUP_PAGE 100 /* rows; a page holds at most 100 messages of maxMessageSize */

typedef struct held {
  int64_t seq, ts;
  size_t len;
  struct held *next;
  uint8_t blob[];
} held_t;

typedef struct bus_redis bus_redis_t;

typedef struct chan {
  bus_redis_t *b;
  char *bus; /* "{app:channel}:bus": the hash key; app and name follow it */
  size_t bus_len;
  char *app, *name;
  size_t refs;
  bool ready;       /* the start point is known: `next` is meaningful */
  bool seq_pending; /* the GET of the serial is in flight */
  bool reading;     /* a catch-up read is in flight */
  bool need_read;   /* a catch-up read is wanted */
  bool dead;        /* unsubscribed: freed once nothing in flight refers to it */
  bool confirmed;   /* Redis confirmed the subscription at least once */
  int inflight;     /* requests and handler calls under way that refer to it */
  int64_t next;
  held_t *held;
  size_t n_held;
  /* Side events (presence, ephemeral): "{app:channel}:side". */
  char *side;
  size_t side_len;
  bool side_confirmed; /* Redis confirmed the side subscription at least once */
  bool want_snap;      /* the member set is to be read (first subscription, after a reconnect) */
  bool snap_pending;   /* its HGETALL is in flight: side events are held until it is answered */
  held_t *side_held;   /* those (seq unused), in arrival order */
  held_t **side_tail;
  size_t n_side_held;
  char (*owners)[SW_BUS_NODE_ID_LEN + 1]; /* other nodes seen owning members here (the sweep asks their leases) */
  size_t n_owners;
  UT_hash_handle hh;
} chan_t;

struct bus_redis {
  sw_bus_t base;
  uv_loop_t *loop;
  sw_redis_conn_t *cmd, *sub;
  chan_t *chans;
  char node[SW_BUS_NODE_ID_LEN + 1]; /* this node's id: owner of its members, sender of its side events */
  char *lease_key;                   /* "{node:<id>}:lease" */
  uv_timer_t *lease_timer;           /* refreshes the lease and sweeps lapsed owners */
  bool up, closing;
  size_t inflight; /* publishes, reads and channel requests under way */
  sw_bus_redis_stats_t st;
};

static void pump(chan_t *ch);

/* ---------------------------------------------------------- lifetimes */

static void held_clear(chan_t *ch) {
  while (ch->held) {
    held_t *h = ch->held;
    ch->held = h->next;
    free(h);
  }
  ch->n_held = 0;
}

static void maybe_free_bus(bus_redis_t *b) {
  if (b->closing && b->inflight == 0 && !b->chans) free(b);
}

static void side_held_clear(chan_t *ch) {
  while (ch->side_held) {
    held_t *h = ch->side_held;
    ch->side_held = h->next;
    free(h);
  }
  ch->side_tail = &ch->side_held;
  ch->n_side_held = 0;
}

static void chan_free(chan_t *ch) {
  held_clear(ch);
  side_held_clear(ch);
  free(ch->side);
  free(ch->owners);
  free(ch->bus);
  free(ch);
}

/* A reference for a request, or for the duration of handler calls that
 * may unsubscribe or close the bus under our feet. */
static void chan_hold(chan_t *ch) {
  ch->inflight++;
  ch->b->inflight++;
}

/* Drops that reference: true if ch is dead (and then freed if it was the
 * last reference; the bus too if it is closed and idle). */
static bool chan_back(chan_t *ch) {
  bus_redis_t *b = ch->b;
  ch->inflight--;
  b->inflight--;
  if (!ch->dead) return false;
  if (ch->inflight == 0) chan_free(ch);
  maybe_free_bus(b);
  return true;
}

static chan_t *chan_find(bus_redis_t *b, const char *bus, size_t len) {
  chan_t *ch = NULL;
  HASH_FIND(hh, b->chans, bus, len, ch);
  return ch;
}

/* ------------------------------------------------------------ delivery */

static void deliver(chan_t *ch, int64_t seq, int64_t ts, const uint8_t *blob, size_t len) {
  bus_redis_t *b = ch->b;
  ch->next = seq + 1;
  b->st.delivered++;
  /* A version's record (redis_log_parse_record) takes the same place in
   * the channel's order as a message: it goes out where it is. */
  int64_t mseq;
  const uint8_t *ev, *head;
  size_t el, hl;
  if (redis_log_parse_record(blob, len, &mseq, &ev, &el, &head, &hl) == 0) {
    if (redis_log_record_is_annotation(blob, len)) {
      if (b->base.h.deliver_annotation)
        b->base.h.deliver_annotation(b->base.h.ud, ch->app, ch->name, seq + 1, mseq + 1, ts, ev, el, head, hl);
    } else if (b->base.h.deliver_version) {
      b->base.h.deliver_version(b->base.h.ud, ch->app, ch->name, seq + 1, mseq + 1, ts, ev, el, head, hl);
    }
    return;
  }
  b->base.h.deliver(b->base.h.ud, ch->app, ch->name, seq + 1, ts, blob, len);
}

/* Delivers the held messages that are next; drops those behind. */
static void deliver_held(chan_t *ch) {
  while (ch->held && !ch->dead && ch->held->seq <= ch->next) {
    held_t *h = ch->held;
    ch->held = h->next;
    ch->n_held--;
    if (h->seq == ch->next) deliver(ch, h->seq, h->ts, h->blob, h->len);
    free(h);
  }
}

static void hold(chan_t *ch, int64_t seq, int64_t ts, const uint8_t *blob, size_t len) {
  held_t **pp = &ch->held;
  while (*pp && (*pp)->seq < seq) pp = &(*pp)->next;
  if (*pp && (*pp)->seq == seq) return; /* already held */
  if (ch->n_held >= SW_BUS_MAX_HELD) {
    /* Dropped here, read from the log later. */
    ch->b->st.dropped_held++;
    ch->need_read = true;
    return;
  }
  held_t *h = malloc(sizeof *h + len);
  if (!h) {
    ch->need_read = true;
    return;
  }
  h->seq = seq;
  h->ts = ts;
  h->len = len;
  if (len) memcpy(h->blob, blob, len);
  h->next = *pp;
  *pp = h;
  ch->n_held++;
  ch->b->st.held++;
}

static int on_one(void *ud, int64_t seq, int64_t ts, const uint8_t *blob, size_t len) {
  chan_t *ch = ud;
  if (ch->dead) return 1;
  if (ch->ready && seq < ch->next) return 0; /* a duplicate */
  if (ch->ready && !ch->reading && !ch->held && seq == ch->next) {
    deliver(ch, seq, ts, blob, len);
    return 0;
  }
  hold(ch, seq, ts, blob, len);
  return 0;
}


/* ------------------------------------------------------- side events */

/* Remembers another node owning members on ch (bounded: beyond, its
 * members are still swept by the nodes that track it). */
static void owner_note(chan_t *ch, const char *node, size_t len) {
  if (len != SW_BUS_NODE_ID_LEN || memcmp(node, ch->b->node, len) == 0) return;
  for (size_t i = 0; i < ch->n_owners; i++)
    if (memcmp(ch->owners[i], node, len) == 0) return;
  if (ch->n_owners >= SW_BUS_MAX_OWNERS) return;
  if (!ch->owners && !(ch->owners = calloc(SW_BUS_MAX_OWNERS, sizeof *ch->owners))) return;
  memcpy(ch->owners[ch->n_owners], node, len);
  ch->owners[ch->n_owners++][len] = '\0';
}

/* A side payload is "<node id>\n<kind byte><payload>". */
static void side_deliver(chan_t *ch, const char *msg, size_t len) {
  bus_redis_t *b = ch->b;
  if (len < SW_BUS_NODE_ID_LEN + 2 || msg[SW_BUS_NODE_ID_LEN] != '\n') return;
  if (memcmp(msg, b->node, SW_BUS_NODE_ID_LEN) == 0) return; /* our own: delivered locally already */
  int kind = (unsigned char)msg[SW_BUS_NODE_ID_LEN + 1];
  if (kind == SW_BUS_SIDE_PRESENCE) owner_note(ch, msg, SW_BUS_NODE_ID_LEN);
  if (b->base.h.side)
    b->base.h.side(b->base.h.ud, ch->app, ch->name, kind, (const uint8_t *)msg + SW_BUS_NODE_ID_LEN + 2,
                   len - SW_BUS_NODE_ID_LEN - 2);
}

static void side_message(bus_redis_t *b, const char *key, size_t key_len, const char *payload, size_t len) {
  /* "{t}:side" -> "{t}:bus", the channel's key. */
  sw_buf_t bus = {0};
  if (buf_printf(&bus, "%.*s:bus", (int)(key_len - 5), key)) {
    buf_free(&bus);
    return;
  }
  chan_t *ch = chan_find(b, (const char *)bus.data, bus.len);
  buf_free(&bus);
  if (!ch || ch->dead) return;
  if (ch->snap_pending) {
    /* After the member set being read: held, in order, bounded. */
    held_t *h = ch->n_side_held < SW_BUS_MAX_SIDE_HELD ? malloc(sizeof *h + len) : NULL;
    if (!h) return;
    h->len = len;
    h->next = NULL;
    memcpy(h->blob, payload, len);
    *ch->side_tail = h;
    ch->side_tail = &h->next;
    ch->n_side_held++;
    return;
  }
  chan_hold(ch);
  side_deliver(ch, payload, len);
  chan_back(ch);
}

/* The members of an HGETALL reply of "{t}:presence": field memberKey,
 * value "<owner node>\n<blob>". skip_own leaves this node's out. Returns
 * how many were put in out (sized r->elements / 2). */
static size_t members_parse(chan_t *ch, bus_redis_t *b, const redisReply *r, bool skip_own, sw_bus_member_t *out) {
  size_t n = 0;
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    const redisReply *f = r->element[i], *v = r->element[i + 1];
    if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
    if (v->len < SW_BUS_NODE_ID_LEN + 1 || v->str[SW_BUS_NODE_ID_LEN] != '\n') continue;
    bool own = memcmp(v->str, b->node, SW_BUS_NODE_ID_LEN) == 0;
    if (ch && !own) owner_note(ch, v->str, SW_BUS_NODE_ID_LEN);
    if (own && skip_own) continue;
    out[n++] = (sw_bus_member_t){f->str, (const uint8_t *)v->str + SW_BUS_NODE_ID_LEN + 1,
                                 v->len - SW_BUS_NODE_ID_LEN - 1};
  }
  return n;
}

static void on_snapshot(void *ud, const redisReply *r, int err) {
  chan_t *ch = ud;
  bus_redis_t *b = ch->b;
  ch->snap_pending = false;
  if (!ch->dead && (err || !r || r->type != REDIS_REPLY_ARRAY)) {
    ch->want_snap = true; /* again when the command connection is back */
    side_held_clear(ch);
  } else if (!ch->dead) {
    sw_bus_member_t *m = r->elements ? calloc(r->elements / 2 + 1, sizeof *m) : NULL;
    size_t n = m ? members_parse(ch, b, r, true, m) : 0;
    if (b->base.h.members) b->base.h.members(b->base.h.ud, ch->app, ch->name, m, n, true);
    free(m);
    /* Then the side events that arrived meanwhile, in order. */
    while (ch->side_held && !ch->dead) {
      held_t *h = ch->side_held;
      ch->side_held = h->next;
      ch->n_side_held--;
      side_deliver(ch, (const char *)h->blob, h->len);
      free(h);
    }
    if (!ch->side_held) side_held_clear(ch);
  }
  chan_back(ch);
}

/* Reads ch's member set (HGETALL {t}:presence) on the command connection,
 * before the GET of its serial, so the snapshot is in core/ before ready(). */
static void snapshot_read(chan_t *ch) {
  bus_redis_t *b = ch->b;
  if (!b->base.h.members) {
    ch->want_snap = false;
    return;
  }
  sw_buf_t key = {0};
  if (redis_log_key(&key, ch->app, ch->name, ":presence")) {
    buf_free(&key);
    return;
  }
  const char *argv[2] = {"HGETALL", (const char *)key.data};
  size_t lens[2] = {7, key.len};
  if (redis_conn_command(b->cmd, on_snapshot, ch, 2, argv, lens) == 0) {
    ch->want_snap = false;
    ch->snap_pending = true;
    chan_hold(ch);
  }
  buf_free(&key);
}

static void on_message(void *ud, const char *bus, size_t bus_len, const char *payload, size_t len) {
  bus_redis_t *b = ud;
  if (bus_len > 5 && memcmp(bus + bus_len - 5, ":side", 5) == 0) {
    side_message(b, bus, bus_len, payload, len);
    return;
  }
  chan_t *ch = chan_find(b, bus, bus_len);
  if (!ch) return;
  chan_hold(ch); /* deliver() may unsubscribe, or close the bus */
  if (redis_log_decode_bus(payload, len, on_one, ch) == -EINVAL)
    log_warn("cluster: malformed message on %.*s ignored", (int)(bus_len > 200 ? 200 : bus_len), bus);
  if (ch->ready && !ch->dead) {
    deliver_held(ch);
    if (ch->held && !ch->reading) ch->need_read = true; /* a gap */
    pump(ch);
  }
  chan_back(ch);
}

/* ------------------------------------------------- start point, catch-up */

static void on_last_seq(void *ud, int err, int64_t last) {
  chan_t *ch = ud;
  ch->seq_pending = false;
  /* The request's reference is kept until the end: ready() and deliver()
   * may unsubscribe or close the bus. On error the GET is retried when the
   * command connection is up again. */
  if (!err && !ch->dead) {
    ch->ready = true;
    ch->next = last + 1;
    ch->b->base.h.ready(ch->b->base.h.ud, ch->app, ch->name, last + 1);
    if (!ch->dead) {
      deliver_held(ch);
      if (ch->held) ch->need_read = true;
      pump(ch);
    }
  }
  chan_back(ch);
}

static void on_catchup(void *ud, int err, sw_log_page_t *page) {
  chan_t *ch = ud;
  ch->reading = false;
  /* The request's reference is kept until the end (deliver() may
   * unsubscribe or close the bus). On error need_read stays set: the read
   * is retried when the command connection is up again. */
  if (!err && !ch->dead) {
    int64_t before = ch->next;
    for (size_t i = 0; i < page->rows.n && !ch->dead; i++) {
      const sw_store_row_t *r = &page->rows.rows[i];
      if (r->seq >= ch->next) deliver(ch, r->seq, r->timestamp, r->blob, r->blob_len);
    }
    if (!ch->dead) {
      /* Entries looked at but left out (expired) are behind us too. */
      if (page->cursor >= ch->next) ch->next = page->cursor + 1;
      if (page->more) {
        ch->need_read = true;
      } else {
        ch->need_read = false;
        deliver_held(ch);
        if (ch->held && !ch->dead) {
          if (ch->next == before) {
            /* The log has nothing between next and the first held
             * message: those serials are gone (trimmed) or never stored. */
            ch->next = ch->held->seq;
            deliver_held(ch);
          }
          if (ch->held) ch->need_read = true;
        }
      }
      pump(ch);
    }
  }
  if (page) store_rows_free(&page->rows);
  chan_back(ch);
}

/* Does what the channel needs next, if the connections allow. */
static void pump(chan_t *ch) {
  bus_redis_t *b = ch->b;
  if (ch->dead || b->closing || !redis_conn_subscribed(b->sub, ch->bus, ch->bus_len)) return;
  if (!redis_conn_subscribed(b->sub, ch->side, ch->side_len)) return;
  if (!redis_conn_is_up(b->cmd)) return; /* on_cmd_state pumps again */
  if (ch->want_snap && !ch->snap_pending) snapshot_read(ch);
  if (!ch->ready) {
    if (ch->seq_pending) return;
    if (redis_log_last_seq(b->cmd, ch->app, ch->name, on_last_seq, ch) == 0) {
      ch->seq_pending = true;
      ch->inflight++;
      b->inflight++;
    }
    return;
  }
  if (ch->reading || !ch->need_read) return;
  sw_log_range_t q = {.app_id = ch->app, .channel = ch->name, .after_seq = ch->next - 1,
                      .before_seq = INT64_MAX, .forwards = true, .limit = CATCHUP_PAGE,
                      .now = clock_now_ms()};
  if (redis_log_read(b->cmd, &q, on_catchup, ch) == 0) {
    ch->reading = true;
    ch->inflight++;
    b->inflight++;
    b->st.catchup_reads++;
  }
}

/* ----------------------------------------------------------- state */

/* Tells the owner when the bus goes up or down. False if the owner closed
 * the bus meanwhile (b may then be freed: do not touch it). */
static bool update_state(bus_redis_t *b) {
  bool up = redis_conn_is_up(b->cmd) && redis_conn_is_up(b->sub);
  if (up == b->up) return true;
  b->up = up;
  if (!b->base.h.state) return true;
  b->inflight++;
  b->base.h.state(b->base.h.ud, up);
  b->inflight--;
  if (!b->closing) return true;
  maybe_free_bus(b);
  return false;
}

static void lease_refresh(bus_redis_t *b);
static void own_sweep(bus_redis_t *b);

static void on_cmd_state(void *ud, bool up, const char *why) {
  bus_redis_t *b = ud;
  (void)why;
  /* The lease first: state(true) may write this node's members again
   * (core/presence.c), and a sweeper must not find them without it. */
  if (up && !b->closing) {
    lease_refresh(b);
    own_sweep(b); /* this node's entries as they were before core/ writes them again (same connection) */
  }
  if (!update_state(b) || !up) return;
  chan_t *ch, *tmp;
  HASH_ITER(hh, b->chans, ch, tmp) pump(ch);
}

static void on_sub_state(void *ud, bool up, const char *why) {
  bus_redis_t *b = ud;
  (void)why;
  update_state(b);
}

static void on_subscribed(void *ud, const char *bus, size_t len) {
  bus_redis_t *b = ud;
  if (len > 5 && memcmp(bus + len - 5, ":side", 5) == 0) {
    sw_buf_t key = {0};
    chan_t *sc = buf_printf(&key, "%.*s:bus", (int)(len - 5), bus) ? NULL : chan_find(b, (const char *)key.data, key.len);
    buf_free(&key);
    if (!sc) return;
    /* Side events published while the subscription was down are lost:
     * the member set is read again. */
    if (sc->side_confirmed) sc->want_snap = true;
    sc->side_confirmed = true;
    pump(sc);
    return;
  }
  chan_t *ch = chan_find(b, bus, len);
  if (!ch) return;
  /* A first confirmation finds the start point; a later one (after the
   * pub/sub connection came back) reads what was published meanwhile,
   * also when the start point is still being read. */
  if (ch->confirmed) ch->need_read = true;
  ch->confirmed = true;
  pump(ch);
}

/* ------------------------------------------------------------ the ops */

typedef struct pub_req {
  bus_redis_t *b;
  sw_bus_done_cb done;
  void *ud;
  size_t n;
} pub_req_t;

static void on_published(void *ud, int err, int64_t first, const int64_t *res, const char *why) {
  (void)first;
  pub_req_t *q = ud;
  bus_redis_t *b = q->b;
  sw_error_t e = {0};
  if (!err) {
    sw_bus_seq_t one = {-1, false}, *seqs = q->n == 1 ? &one : calloc(q->n, sizeof *seqs);
    if (seqs) {
      /* A duplicate id's result is -2 - the first one's seq (redis_log.h). */
      for (size_t i = 0; i < q->n; i++) {
        seqs[i] = res[i] >= 0 ? (sw_bus_seq_t){res[i] + 1, false} : (sw_bus_seq_t){-2 - res[i] + 1, true};
        b->st.published += !seqs[i].dup;
      }
      q->done(q->ud, NULL, seqs, q->n);
      if (seqs != &one) free(seqs);
    } else {
      errors_set(&e, SW_BUS_E_INTERNAL, "out of memory");
      q->done(q->ud, &e, NULL, q->n);
    }
  } else {
    if (err == -ETIMEDOUT) errors_set(&e, SW_BUS_E_TIMEOUT, "the shared store did not answer in time");
    else if (err == -EDQUOT)
      errors_set(&e, 42913, "too many message ids published on this channel in the last two minutes; retry later");
    else if (err == -EIO) errors_set(&e, SW_BUS_E_INTERNAL, "the shared store refused the publish: %.150s", why ? why : "");
    else errors_set(&e, SW_BUS_E_UNAVAILABLE, "the shared store (Redis) is unreachable; publish again later");
    q->done(q->ud, &e, NULL, q->n);
  }
  free(q);
  b->inflight--;
  maybe_free_bus(b);
}

/* A publish or read refused at once; `what` names it ("publish", "read"). */
static int refuse_op(bus_redis_t *b, int rc, sw_error_t *err, const char *what) {
  b->st.refused++;
  if (rc == -ENOTCONN)
    return errors_set(err, SW_BUS_E_UNAVAILABLE, "the shared store (Redis) is unreachable; %s again later", what), -1;
  if (rc == -ENOBUFS) return errors_set(err, SW_BUS_E_UNAVAILABLE, "too many operations waiting for the shared store"), -1;
  return errors_set(err, SW_BUS_E_INTERNAL, "%s failed (%d)", what, rc), -1;
}

static int refuse(bus_redis_t *b, int rc, sw_error_t *err) {
  return refuse_op(b, rc, err, "publish");
}

static int r_publish(sw_bus_t *base, const char *app_id, const char *channel, const sw_bus_msg_t *msgs, size_t n,
                     const sw_bus_policy_t *pol, sw_bus_done_cb done, void *ud, sw_error_t *err) {
  bus_redis_t *b = (bus_redis_t *)base;
  if (b->closing) return refuse(b, -ENOTCONN, err);
  if (n < 1 || n > SW_REDIS_LOG_MAX_BATCH) return refuse(b, -EINVAL, err);
  sw_log_msg_t *lm = malloc(n * sizeof *lm);
  pub_req_t *q = malloc(sizeof *q);
  if (!lm || !q) {
    free(lm);
    free(q);
    return refuse(b, -ENOMEM, err);
  }
  for (size_t i = 0; i < n; i++)
    lm[i] = (sw_log_msg_t){msgs[i].timestamp, msgs[i].blob, msgs[i].len, msgs[i].idempotent ? msgs[i].id : NULL};
  *q = (pub_req_t){b, done, ud, n};
  int64_t now = clock_now_ms();
  sw_log_append_t req = {.app_id = app_id, .channel = channel, .msgs = lm, .n = n,
                         .keep_count = pol ? pol->keep_count : 0, .max_age_ms = pol ? pol->max_age_ms : 0,
                         .now = now, .max_ids = pol ? pol->max_ids : 0};
  int rc = redis_log_append(b->cmd, &req, on_published, q);
  free(lm);
  if (rc) {
    free(q);
    return refuse(b, rc, err);
  }
  b->inflight++;
  return 0;
}

static int r_subscribe(sw_bus_t *base, const char *app_id, const char *channel) {
  bus_redis_t *b = (bus_redis_t *)base;
  sw_buf_t key = {0};
  if (redis_log_key(&key, app_id, channel, ":bus")) goto oom;
  chan_t *ch = chan_find(b, (const char *)key.data, key.len);
  if (ch) {
    ch->refs++;
    buf_free(&key);
    return 0;
  }
  size_t al = strlen(app_id), nl = strlen(channel);
  ch = calloc(1, sizeof *ch);
  if (!ch || !(ch->bus = malloc(key.len + 1 + al + 1 + nl + 1))) {
    free(ch);
    goto oom;
  }
  ch->b = b;
  ch->bus_len = key.len;
  memcpy(ch->bus, key.data, key.len);
  ch->bus[key.len] = '\0';
  ch->app = ch->bus + key.len + 1;
  memcpy(ch->app, app_id, al + 1);
  ch->name = ch->app + al + 1;
  memcpy(ch->name, channel, nl + 1);
  ch->refs = 1;
  ch->side_tail = &ch->side_held;
  ch->want_snap = true;
  buf_free(&key);
  if (redis_log_key(&key, app_id, channel, ":side")) goto oom_ch;
  ch->side = (char *)key.data; /* NUL-terminated by buf_printf */
  ch->side_len = key.len;
  key = (sw_buf_t){0};
  /* The side channel first: confirmed before the bus, so the member set,
   * read once the bus is confirmed, misses no event. */
  if (redis_conn_subscribe(b->sub, ch->side, ch->side_len) || redis_conn_subscribe(b->sub, ch->bus, ch->bus_len)) {
    redis_conn_unsubscribe(b->sub, ch->side, ch->side_len);
    chan_free(ch);
    return -ENOMEM;
  }
  HASH_ADD_KEYPTR(hh, b->chans, ch->bus, ch->bus_len, ch);
  b->st.channels++;
  return 0;
oom_ch:
  chan_free(ch);
oom:
  buf_free(&key);
  return -ENOMEM;
}

static void chan_drop(bus_redis_t *b, chan_t *ch) {
  HASH_DEL(b->chans, ch);
  b->st.channels--;
  redis_conn_unsubscribe(b->sub, ch->bus, ch->bus_len);
  redis_conn_unsubscribe(b->sub, ch->side, ch->side_len);
  ch->dead = true;
  held_clear(ch);
  side_held_clear(ch);
  if (ch->inflight == 0) chan_free(ch);
}

static void r_unsubscribe(sw_bus_t *base, const char *app_id, const char *channel) {
  bus_redis_t *b = (bus_redis_t *)base;
  sw_buf_t key = {0};
  if (redis_log_key(&key, app_id, channel, ":bus")) {
    buf_free(&key);
    return;
  }
  chan_t *ch = chan_find(b, (const char *)key.data, key.len);
  buf_free(&key);
  if (ch && --ch->refs == 0) chan_drop(b, ch);
}

typedef struct read_req {
  bus_redis_t *b;
  sw_bus_read_cb cb;
  void *ud;
  int64_t start, end; /* timestamp bounds: rows outside are left out */
} read_req_t;

/* Leaves out the rows outside [start, end] (the log is by seq only; the
 * cursor still says how far the page looked). */
static void filter_time(sw_store_rows_t *rows, int64_t start, int64_t end) {
  size_t k = 0;
  for (size_t i = 0; i < rows->n; i++)
    if (rows->rows[i].timestamp >= start && rows->rows[i].timestamp <= end) rows->rows[k++] = rows->rows[i];
  rows->n = k;
}

static void on_read(void *ud, int err, sw_log_page_t *page) {
  read_req_t *q = ud;
  bus_redis_t *b = q->b;
  if (!err) {
    filter_time(&page->rows, q->start, q->end);
    for (size_t i = 0; i < page->rows.n; i++) {
      page->rows.rows[i].seq++;
      page->rows.rows[i].vseq++;
    }
    if (page->cursor >= 0) page->cursor++;
    q->cb(q->ud, NULL, &page->rows, page->cursor, page->more);
  } else {
    sw_error_t e;
    if (err == -ETIMEDOUT) errors_set(&e, SW_BUS_E_TIMEOUT, "the shared store did not answer in time");
    else if (err == -EIO || err == -ENOMEM) errors_set(&e, SW_BUS_E_INTERNAL, "reading the shared store failed");
    else errors_set(&e, SW_BUS_E_UNAVAILABLE, "the shared store is unreachable");
    sw_store_rows_t none = {NULL, 0};
    q->cb(q->ud, &e, &none, -1, false);
  }
  free(q);
  b->inflight--;
  maybe_free_bus(b);
}

static int r_read(sw_bus_t *base, const sw_bus_range_t *r, sw_bus_read_cb cb, void *ud, sw_error_t *err) {
  bus_redis_t *b = (bus_redis_t *)base;
  if (b->closing) return refuse_op(b, -ENOTCONN, err, "read");
  read_req_t *q = malloc(sizeof *q);
  if (!q) return refuse_op(b, -ENOMEM, err, "read");
  *q = (read_req_t){b, cb, ud, r->start, r->end > 0 ? r->end : INT64_MAX};
  /* core/'s seq s is the log's s - 1. */
  sw_log_range_t lr = {.app_id = r->app_id, .channel = r->channel, .after_seq = r->after_seq > 0 ? r->after_seq - 1 : -1,
                       .before_seq = r->before_seq == INT64_MAX ? INT64_MAX : r->before_seq > 0 ? r->before_seq - 1 : 0,
                       .forwards = r->forwards, .limit = r->limit, .now = r->now, .heads = true,
                       .by_vseq = r->by_vseq};
  int rc = redis_log_read(b->cmd, &lr, on_read, q);
  if (rc) {
    free(q);
    if (rc == -EINVAL) return errors_set(err, SW_E_INVALID_PARAM, "invalid history range"), -1;
    return refuse_op(b, rc, err, "read");
  }
  b->inflight++;
  return 0;
}

typedef struct ver_req {
  bus_redis_t *b;
  sw_bus_version_cb done;
  void *ud;
} ver_req_t;

static void on_versioned(void *ud, int err, int64_t vseq, const char *why) {
  ver_req_t *q = ud;
  bus_redis_t *b = q->b;
  sw_error_t e = {0};
  if (!err) {
    b->st.published++;
    q->done(q->ud, NULL, false, vseq + 1);
  } else {
    if (err == -EAGAIN) errors_set(&e, SW_BUS_E_INTERNAL, "the message changed meanwhile");
    else if (err == -ENOENT) errors_set(&e, SW_E_NOT_FOUND, "no such message");
    else if (err == -ETIMEDOUT) errors_set(&e, SW_BUS_E_TIMEOUT, "the shared store did not answer in time");
    else if (err == -EIO) errors_set(&e, SW_BUS_E_INTERNAL, "the shared store refused the version: %.150s", why ? why : "");
    else errors_set(&e, SW_BUS_E_UNAVAILABLE, "the shared store (Redis) is unreachable; publish again later");
    q->done(q->ud, &e, err == -EAGAIN, -1);
  }
  free(q);
  b->inflight--;
  maybe_free_bus(b);
}

static int r_publish_version(sw_bus_t *base, const char *app_id, const char *channel, const sw_bus_version_t *v,
                             const sw_bus_policy_t *pol, sw_bus_version_cb done, void *ud, sw_error_t *err) {
  bus_redis_t *b = (bus_redis_t *)base;
  if (b->closing) return refuse(b, -ENOTCONN, err);
  if (v->seq < 1 || v->expect_vseq < v->seq) return refuse(b, -EINVAL, err);
  ver_req_t *q = malloc(sizeof *q);
  if (!q) return refuse(b, -ENOMEM, err);
  *q = (ver_req_t){b, done, ud};
  /* core/'s serials are the log's + 1; a head never changed is at its own seq. */
  sw_log_version_t lv = {.app_id = app_id, .channel = channel, .seq = v->seq - 1,
                         .expect_vseq = v->expect_vseq == v->seq ? -1 : v->expect_vseq - 1,
                         .timestamp = v->timestamp, .event = v->event, .event_len = v->event_len,
                         .head = v->head, .head_len = v->head_len, .placeholder = v->placeholder,
                         .keep_count = pol ? pol->keep_count : 0, .max_age_ms = pol ? pol->max_age_ms : 0,
                         .annotation = v->annotation};
  int rc = redis_log_version(b->cmd, &lv, on_versioned, q);
  if (rc) {
    free(q);
    return refuse(b, rc, err);
  }
  b->inflight++;
  return 0;
}

static int r_read_versions(sw_bus_t *base, const char *app_id, const char *channel, int64_t seq, bool annotations,
                           bool forwards, size_t limit, int64_t cursor, sw_bus_read_cb cb, void *ud,
                           sw_error_t *err) {
  bus_redis_t *b = (bus_redis_t *)base;
  if (b->closing) return refuse_op(b, -ENOTCONN, err, "read");
  if (seq < 1) return errors_set(err, SW_E_NOT_FOUND, "no such message"), -1;
  read_req_t *q = malloc(sizeof *q);
  if (!q) return refuse_op(b, -ENOMEM, err, "read");
  *q = (read_req_t){b, cb, ud, 0, INT64_MAX};
  int64_t c = cursor > 0 ? cursor - 1 : -1; /* the log's serials are core/'s - 1 */
  sw_log_range_t lr = {.app_id = app_id, .channel = channel, .after_seq = forwards ? c : -1,
                       .before_seq = !forwards && c >= 0 ? c : INT64_MAX, .forwards = forwards, .limit = limit,
                       .now = clock_now_ms(), .versions = true, .versions_seq = seq - 1,
                       .annotations = annotations};
  int rc = redis_log_read(b->cmd, &lr, on_read, q);
  if (rc) {
    free(q);
    if (rc == -EINVAL) return errors_set(err, SW_E_INVALID_PARAM, "invalid versions range"), -1;
    return refuse_op(b, rc, err, "read");
  }
  b->inflight++;
  return 0;
}


/* ------------------------------------------------ presence, leases */

static void on_ignored(void *ud, const redisReply *r, int err) {
  (void)r;
  (void)err;
  bus_redis_t *b = ud;
  b->inflight--;
  maybe_free_bus(b);
}

static int send_ignored(bus_redis_t *b, int argc, const char **argv, const size_t *lens) {
  int rc = redis_conn_command(b->cmd, on_ignored, b, argc, argv, lens);
  if (rc == 0) b->inflight++;
  return rc;
}

/* The member changes (HSET / HDEL of {t}:presence, values owned by this
 * node), then PUBLISH on {t}:side: one connection, so in this order. */
static int r_announce(sw_bus_t *base, const char *app_id, const char *channel, int kind, const uint8_t *payload,
                      size_t len, const sw_bus_member_t *ops, size_t n_ops) {
  bus_redis_t *b = (bus_redis_t *)base;
  if (b->closing || !redis_conn_is_up(b->cmd)) return -1;
  sw_buf_t key = {0}, side = {0}, val = {0};
  int rc = -1;
  if (redis_log_key(&key, app_id, channel, ":presence") || redis_log_key(&side, app_id, channel, ":side")) goto out;
  for (size_t i = 0; i < n_ops; i++) {
    if (ops[i].blob) {
      val.len = 0;
      if (buf_printf(&val, "%s\n", b->node) || buf_append(&val, ops[i].blob, ops[i].len)) goto out;
      const char *argv[4] = {"HSET", (const char *)key.data, ops[i].key, (const char *)val.data};
      size_t lens[4] = {4, key.len, strlen(ops[i].key), val.len};
      if (send_ignored(b, 4, argv, lens)) goto out;
    } else {
      const char *argv[3] = {"HDEL", (const char *)key.data, ops[i].key};
      size_t lens[3] = {4, key.len, strlen(ops[i].key)};
      if (send_ignored(b, 3, argv, lens)) goto out;
    }
  }
  val.len = 0;
  char k = (char)kind;
  if (buf_printf(&val, "%s\n", b->node) || buf_append(&val, &k, 1) || buf_append(&val, payload, len)) goto out;
  const char *argv[3] = {"PUBLISH", (const char *)side.data, (const char *)val.data};
  size_t lens[3] = {7, side.len, val.len};
  rc = send_ignored(b, 3, argv, lens) ? -1 : 0;
out:
  buf_free(&key);
  buf_free(&side);
  buf_free(&val);
  return rc;
}

/* A REST read of a member set: the HGETALL, then EXISTS of each other
 * owner's lease, so that a dead node's members are left out even where no
 * node holding the channel has swept them yet. */
typedef struct members_req {
  bus_redis_t *b;
  sw_bus_members_cb cb;
  void *ud;
  redisReply *set;                        /* the HGETALL answer (owned copy) */
  char (*owners)[SW_BUS_NODE_ID_LEN + 1]; /* distinct other owners */
  bool *alive;
  size_t n_owners, answered;
  int err;
} members_req_t;

typedef struct lease_probe {
  members_req_t *q;
  size_t i;
} lease_probe_t;

static void members_req_free(members_req_t *q) {
  if (q->set) freeReplyObject(q->set);
  free(q->owners);
  free(q->alive);
  free(q);
}

static void members_finish(members_req_t *q) {
  bus_redis_t *b = q->b;
  sw_error_t e;
  if (q->err) {
    if (q->err == -ETIMEDOUT) errors_set(&e, SW_BUS_E_TIMEOUT, "the shared store did not answer in time");
    else if (q->err == -EIO) errors_set(&e, SW_BUS_E_INTERNAL, "reading the shared store failed");
    else errors_set(&e, SW_BUS_E_UNAVAILABLE, "the shared store is unreachable");
    q->cb(q->ud, &e, NULL, 0);
  } else {
    sw_bus_member_t *m = calloc(q->set->elements / 2 + 1, sizeof *m);
    if (!m) {
      errors_set(&e, SW_BUS_E_INTERNAL, "out of memory");
      q->cb(q->ud, &e, NULL, 0);
    } else {
      size_t n = members_parse(NULL, b, q->set, false, m), k = 0;
      for (size_t i = 0; i < n; i++) {
        /* the owner is the value's first SW_BUS_NODE_ID_LEN bytes, just before the blob */
        const char *owner = (const char *)m[i].blob - SW_BUS_NODE_ID_LEN - 1;
        bool keep = memcmp(owner, b->node, SW_BUS_NODE_ID_LEN) == 0;
        for (size_t j = 0; j < q->n_owners && !keep; j++)
          keep = q->alive[j] && memcmp(owner, q->owners[j], SW_BUS_NODE_ID_LEN) == 0;
        if (keep) m[k++] = m[i];
      }
      q->cb(q->ud, NULL, m, k);
      free(m);
    }
  }
  members_req_free(q);
  b->inflight--;
  maybe_free_bus(b);
}

static void on_member_lease(void *ud, const redisReply *r, int err) {
  lease_probe_t *lp = ud;
  members_req_t *q = lp->q;
  if (err) q->err = err;
  else if (!r || r->type != REDIS_REPLY_INTEGER) q->err = -EIO;
  else q->alive[lp->i] = r->integer > 0;
  free(lp);
  if (++q->answered == q->n_owners) members_finish(q);
}

/* Deep copy of an HGETALL answer: hiredis frees its own after the callback. */
static redisReply *set_copy(const redisReply *r) {
  redisReply *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->type = REDIS_REPLY_ARRAY;
  if (!(c->element = calloc(r->elements + 1, sizeof *c->element))) {
    free(c);
    return NULL;
  }
  for (size_t i = 0; i < r->elements; i++) {
    const redisReply *e = r->element[i];
    redisReply *d = calloc(1, sizeof *d);
    if (!d) goto fail;
    c->element[c->elements++] = d;
    d->type = e->type;
    if (e->type == REDIS_REPLY_STRING) {
      if (!(d->str = malloc(e->len + 1))) goto fail;
      memcpy(d->str, e->str, e->len);
      d->str[e->len] = '\0';
      d->len = e->len;
    }
  }
  return c;
fail:
  freeReplyObject(c);
  return NULL;
}

static void on_members(void *ud, const redisReply *r, int err) {
  members_req_t *q = ud;
  bus_redis_t *b = q->b;
  if (err || !r || r->type != REDIS_REPLY_ARRAY) {
    q->err = err ? err : -EIO;
    members_finish(q);
    return;
  }
  if (!(q->set = set_copy(r)) || !(q->owners = calloc(r->elements / 2 + 1, sizeof *q->owners)) ||
      !(q->alive = calloc(r->elements / 2 + 1, sizeof *q->alive))) {
    q->err = -EIO;
    members_finish(q);
    return;
  }
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    const redisReply *v = r->element[i + 1];
    if (v->type != REDIS_REPLY_STRING || v->len < SW_BUS_NODE_ID_LEN + 1) continue;
    if (memcmp(v->str, b->node, SW_BUS_NODE_ID_LEN) == 0) continue;
    bool seen = false;
    for (size_t j = 0; j < q->n_owners && !seen; j++) seen = memcmp(q->owners[j], v->str, SW_BUS_NODE_ID_LEN) == 0;
    if (seen) continue;
    memcpy(q->owners[q->n_owners], v->str, SW_BUS_NODE_ID_LEN);
    q->owners[q->n_owners++][SW_BUS_NODE_ID_LEN] = '\0';
  }
  if (q->n_owners == 0) {
    members_finish(q);
    return;
  }
  /* Each probe answers or fails exactly once (or is counted failed here). */
  size_t n = q->n_owners;
  for (size_t i = 0; i < n; i++) {
    lease_probe_t *lp = malloc(sizeof *lp);
    sw_buf_t key = {0};
    int rc = -ENOMEM;
    if (lp && !buf_printf(&key, "{node:%s}:lease", q->owners[i])) {
      *lp = (lease_probe_t){q, i};
      const char *argv[2] = {"EXISTS", (const char *)key.data};
      size_t lens[2] = {6, key.len};
      rc = redis_conn_command(b->cmd, on_member_lease, lp, 2, argv, lens);
    }
    buf_free(&key);
    if (rc) {
      free(lp);
      q->err = rc;
      if (++q->answered == q->n_owners) {
        members_finish(q);
        return;
      }
    }
  }
}

static int r_members_read(sw_bus_t *base, const char *app_id, const char *channel, sw_bus_members_cb cb, void *ud,
                          sw_error_t *err) {
  bus_redis_t *b = (bus_redis_t *)base;
  if (b->closing) return refuse_op(b, -ENOTCONN, err, "read");
  members_req_t *q = calloc(1, sizeof *q);
  sw_buf_t key = {0};
  if (!q || redis_log_key(&key, app_id, channel, ":presence")) {
    free(q);
    buf_free(&key);
    return refuse_op(b, -ENOMEM, err, "read");
  }
  q->b = b;
  q->cb = cb;
  q->ud = ud;
  const char *argv[2] = {"HGETALL", (const char *)key.data};
  size_t lens[2] = {7, key.len};
  int rc = redis_conn_command(b->cmd, on_members, q, 2, argv, lens);
  buf_free(&key);
  if (rc) {
    free(q);
    return refuse_op(b, rc, err, "read");
  }
  b->inflight++;
  return 0;
}

/* Removes the members of a lapsed owner from one channel's set, in one
 * step (two sweeping nodes cannot both get a member), and returns them. */
static const char SWEEP_SCRIPT[] =
    "local all = redis.call('HGETALL', KEYS[1])\n"
    "local pre = ARGV[1] .. '\\n'\n"
    "local out = {}\n"
    "for i = 1, #all, 2 do\n"
    "  local v = all[i + 1]\n"
    "  if string.sub(v, 1, #pre) == pre then\n"
    "    redis.call('HDEL', KEYS[1], all[i])\n"
    "    out[#out + 1] = all[i]\n"
    "    out[#out + 1] = v\n"
    "  end\n"
    "end\n"
    "return out\n";

static void on_swept(void *ud, const redisReply *r, int err) {
  chan_t *ch = ud;
  bus_redis_t *b = ch->b;
  if (!err && r && r->type == REDIS_REPLY_ARRAY && r->elements && !ch->dead && b->base.h.members) {
    sw_bus_member_t *m = calloc(r->elements / 2 + 1, sizeof *m);
    size_t n = m ? members_parse(NULL, b, r, true, m) : 0;
    if (n) b->base.h.members(b->base.h.ud, ch->app, ch->name, m, n, false);
    free(m);
  }
  chan_back(ch);
}

/* This node's own entries, read when its bus comes up again: what core/
 * still has it writes again (state(true)); what it no longer has left
 * while Redis could not be told, and core/ removes them now with their
 * LEAVEs (HDEL + PUBLISH on one connection: if that fails too, the next
 * time the bus comes up finds them again). */
static void on_own_read(void *ud, const redisReply *r, int err) {
  chan_t *ch = ud;
  bus_redis_t *b = ch->b;
  if (!err && r && r->type == REDIS_REPLY_ARRAY && r->elements && !ch->dead && b->base.h.members) {
    sw_bus_member_t *m = calloc(r->elements / 2 + 1, sizeof *m);
    size_t n = m ? members_parse(NULL, b, r, false, m) : 0, k = 0;
    for (size_t i = 0; i < n; i++)
      if (memcmp((const char *)m[i].blob - SW_BUS_NODE_ID_LEN - 1, b->node, SW_BUS_NODE_ID_LEN) == 0) m[k++] = m[i];
    if (k) b->base.h.members(b->base.h.ud, ch->app, ch->name, m, k, false);
    free(m);
  }
  chan_back(ch);
}

static void own_sweep(bus_redis_t *b) {
  chan_t *ch, *tmp;
  HASH_ITER(hh, b->chans, ch, tmp) {
    sw_buf_t key = {0};
    if (!redis_log_key(&key, ch->app, ch->name, ":presence")) {
      const char *argv[2] = {"HGETALL", (const char *)key.data};
      size_t lens[2] = {7, key.len};
      if (redis_conn_command(b->cmd, on_own_read, ch, 2, argv, lens) == 0) chan_hold(ch);
    }
    buf_free(&key);
  }
}

static void owner_forget(chan_t *ch, size_t i) {
  ch->owners[i][0] = '\0';
  memmove(ch->owners[i], ch->owners[ch->n_owners - 1], sizeof ch->owners[i]);
  ch->n_owners--;
}

typedef struct lease_req {
  bus_redis_t *b;
  char node[SW_BUS_NODE_ID_LEN + 1];
} lease_req_t;

/* The answer to EXISTS {node:<id>}:lease: a lapsed owner's members are
 * swept from every channel this node tracks it on. */
static void on_lease(void *ud, const redisReply *r, int err) {
  lease_req_t *q = ud;
  bus_redis_t *b = q->b;
  if (!err && r && r->type == REDIS_REPLY_INTEGER && r->integer == 0 && !b->closing) {
    chan_t *ch, *tmp;
    HASH_ITER(hh, b->chans, ch, tmp) {
      for (size_t i = 0; i < ch->n_owners; i++) {
        if (strcmp(ch->owners[i], q->node) != 0) continue;
        owner_forget(ch, i);
        sw_buf_t key = {0};
        if (!redis_log_key(&key, ch->app, ch->name, ":presence")) {
          const char *argv[5] = {"EVAL", SWEEP_SCRIPT, "1", (const char *)key.data, q->node};
          size_t lens[5] = {4, sizeof SWEEP_SCRIPT - 1, 1, key.len, SW_BUS_NODE_ID_LEN};
          if (redis_conn_command(b->cmd, on_swept, ch, 5, argv, lens) == 0) chan_hold(ch);
        }
        buf_free(&key);
        break;
      }
    }
  }
  free(q);
  b->inflight--;
  maybe_free_bus(b);
}

static void lease_ask(bus_redis_t *b, const char *node) {
  lease_req_t *q = malloc(sizeof *q);
  sw_buf_t key = {0};
  if (q && !buf_printf(&key, "{node:%s}:lease", node)) {
    q->b = b;
    memcpy(q->node, node, sizeof q->node);
    const char *argv[2] = {"EXISTS", (const char *)key.data};
    size_t lens[2] = {6, key.len};
    if (redis_conn_command(b->cmd, on_lease, q, 2, argv, lens) == 0) {
      b->inflight++;
      q = NULL;
    }
  }
  free(q);
  buf_free(&key);
}

/* Every SW_BUS_SWEEP_MS: this node's lease, then each other owner's. */
static void lease_refresh(bus_redis_t *b) {
  char px[16];
  snprintf(px, sizeof px, "%d", SW_BUS_LEASE_MS);
  const char *argv[5] = {"SET", b->lease_key, "1", "PX", px};
  size_t lens[5] = {3, strlen(b->lease_key), 1, 2, strlen(px)};
  send_ignored(b, 5, argv, lens);
}

static void on_lease_timer(uv_timer_t *t) {
  bus_redis_t *b = t->data;
  if (b->closing || !redis_conn_is_up(b->cmd)) return;
  lease_refresh(b);
  /* Each owner once per tick, however many channels it has members on. */
  char (*asked)[SW_BUS_NODE_ID_LEN + 1] = NULL;
  size_t n_asked = 0, cap = 0;
  chan_t *ch, *tmp;
  HASH_ITER(hh, b->chans, ch, tmp) {
    for (size_t i = 0; i < ch->n_owners; i++) {
      bool seen = false;
      for (size_t k = 0; k < n_asked && !seen; k++) seen = strcmp(asked[k], ch->owners[i]) == 0;
      if (seen) continue;
      if (n_asked == cap) {
        size_t ncap = cap ? cap * 2 : 8;
        void *grown = realloc(asked, ncap * sizeof *asked);
        if (!grown) break;
        asked = grown;
        cap = ncap;
      }
      memcpy(asked[n_asked++], ch->owners[i], sizeof *asked);
      lease_ask(b, ch->owners[i]);
    }
  }
  free(asked);
}

static void on_timer_closed(uv_handle_t *h) {
  free(h);
}

static bool r_is_up(const sw_bus_t *base) {
  const bus_redis_t *b = (const bus_redis_t *)base;
  return !b->closing && redis_conn_is_up(b->cmd) && redis_conn_is_up(b->sub);
}

static void r_close(sw_bus_t *base) {
  bus_redis_t *b = (bus_redis_t *)base;
  if (b->closing) return;
  b->closing = true;
  chan_t *ch, *tmp;
  HASH_ITER(hh, b->chans, ch, tmp) {
    HASH_DEL(b->chans, ch);
    ch->dead = true;
    held_clear(ch);
    if (ch->inflight == 0) chan_free(ch);
  }
  redis_conn_close(b->cmd);
  redis_conn_close(b->sub);
  if (b->lease_timer) {
    uv_timer_stop(b->lease_timer);
    uv_close((uv_handle_t *)b->lease_timer, on_timer_closed);
    b->lease_timer = NULL;
  }
  free(b->lease_key);
  b->lease_key = NULL;
  maybe_free_bus(b);
}

static const sw_bus_ops_t REDIS_OPS = {
    .name = "redis",
    .shared = true,
    .publish = r_publish,
    .subscribe = r_subscribe,
    .unsubscribe = r_unsubscribe,
    .read = r_read,
    .is_up = r_is_up,
    .close = r_close,
    .announce = r_announce,
    .members_read = r_members_read,
    .publish_version = r_publish_version,
    .read_versions = r_read_versions,
};

int bus_redis_open(uv_loop_t *loop, const sw_bus_redis_opts_t *o, const sw_bus_handlers_t *h, sw_bus_t **out) {
  if (!loop || !o || !h || !h->deliver || !h->ready || !out) return -EINVAL;
  bus_redis_t *b = calloc(1, sizeof *b);
  if (!b) return -ENOMEM;
  b->base.ops = &REDIS_OPS;
  b->base.h = *h;
  b->loop = loop;
  /* A node id of its own per process: a restarted node is a new owner,
   * and its predecessor's members lapse with its lease. */
  uint8_t rnd[SW_BUS_NODE_ID_LEN / 2];
  if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
    free(b);
    return -EIO;
  }
  for (size_t i = 0; i < sizeof rnd; i++) snprintf(b->node + 2 * i, 3, "%02x", rnd[i]);
  sw_buf_t lk = {0};
  if (buf_printf(&lk, "{node:%s}:lease", b->node) || !(b->lease_timer = malloc(sizeof *b->lease_timer))) {
    buf_free(&lk);
    free(b);
    return -ENOMEM;
  }
  b->lease_key = (char *)lk.data;
  uv_timer_init(loop, b->lease_timer);
  b->lease_timer->data = b;
  uv_timer_start(b->lease_timer, on_lease_timer, 0, SW_BUS_SWEEP_MS);
  uv_unref((uv_handle_t *)b->lease_timer);
  static const char *scripts[1];
  scripts[0] = redis_log_script();
  sw_redis_conn_opts_t co = {.url = o->url, .name = "cmd", .connect_timeout_ms = o->connect_timeout_ms,
                             .command_timeout_ms = o->command_timeout_ms, .backoff_min_ms = o->backoff_min_ms,
                             .backoff_max_ms = o->backoff_max_ms, .max_pending = o->max_pending,
                             .scripts = scripts, .n_scripts = 1, .on_state = on_cmd_state, .ud = b};
  int rc = redis_conn_open(loop, &co, &b->cmd);
  if (rc) {
    uv_close((uv_handle_t *)b->lease_timer, on_timer_closed);
    free(b->lease_key);
    free(b);
    return rc;
  }
  co.name = "sub";
  co.scripts = NULL;
  co.n_scripts = 0;
  co.on_state = on_sub_state;
  co.on_message = on_message;
  co.on_subscribed = on_subscribed;
  rc = redis_conn_open(loop, &co, &b->sub);
  if (rc) {
    redis_conn_close(b->cmd);
    uv_close((uv_handle_t *)b->lease_timer, on_timer_closed);
    free(b->lease_key);
    free(b);
    return rc;
  }
  *out = &b->base;
  return 0;
}

void bus_redis_stats(const sw_bus_t *base, sw_bus_redis_stats_t *st) {
  *st = ((const bus_redis_t *)base)->st;
}

bool bus_is_redis(const sw_bus_t *base) {
  return base && base->ops == &REDIS_OPS;
}

void bus_redis_conn_stats(const sw_bus_t *base, sw_redis_conn_stats_t *cmd, sw_redis_conn_stats_t *sub) {
  const bus_redis_t *b = (const bus_redis_t *)base;
  redis_conn_stats(b->cmd, cmd);
  redis_conn_stats(b->sub, sub);
}
