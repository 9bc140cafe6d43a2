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
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

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
  UT_hash_handle hh;
} chan_t;

struct bus_redis {
  sw_bus_t base;
  uv_loop_t *loop;
  sw_redis_conn_t *cmd, *sub;
  chan_t *chans;
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

static void chan_free(chan_t *ch) {
  held_clear(ch);
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

static void on_message(void *ud, const char *bus, size_t bus_len, const char *payload, size_t len) {
  bus_redis_t *b = ud;
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
  if (!redis_conn_is_up(b->cmd)) return; /* on_cmd_state pumps again */
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

static void on_cmd_state(void *ud, bool up, const char *why) {
  bus_redis_t *b = ud;
  (void)why;
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
  buf_free(&key);
  if (redis_conn_subscribe(b->sub, ch->bus, ch->bus_len)) {
    chan_free(ch);
    return -ENOMEM;
  }
  HASH_ADD_KEYPTR(hh, b->chans, ch->bus, ch->bus_len, ch);
  b->st.channels++;
  return 0;
oom:
  buf_free(&key);
  return -ENOMEM;
}

static void chan_drop(bus_redis_t *b, chan_t *ch) {
  HASH_DEL(b->chans, ch);
  b->st.channels--;
  redis_conn_unsubscribe(b->sub, ch->bus, ch->bus_len);
  ch->dead = true;
  held_clear(ch);
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
  static const char *scripts[1];
  scripts[0] = redis_log_script();
  sw_redis_conn_opts_t co = {.url = o->url, .name = "cmd", .connect_timeout_ms = o->connect_timeout_ms,
                             .command_timeout_ms = o->command_timeout_ms, .backoff_min_ms = o->backoff_min_ms,
                             .backoff_max_ms = o->backoff_max_ms, .max_pending = o->max_pending,
                             .scripts = scripts, .n_scripts = 1, .on_state = on_cmd_state, .ud = b};
  int rc = redis_conn_open(loop, &co, &b->cmd);
  if (rc) {
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
