#include "core/rollup.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/channel.h"
#include "core/conn.h"
#include "core/mutation.h"
#include "core/serial.h"
#include "core/server.h"

/* The wheel: one slot per millisecond, more slots than the longest window,
 * so every deadline (at most SW_ROLLUP_MAX_MS ahead when it is set) has a
 * slot of its own within one lap. Why a wheel and not a uv_timer per
 * channel: a channel is freed synchronously (channel_tick), a libuv handle
 * only after uv_close's callback, so per-channel timers would have to
 * outlive their channels; the wheel has one handle for the server, closed
 * at shutdown like the tick, and scheduling or cancelling a channel is a
 * list operation. Its timer is armed for the earliest deadline (found
 * through a bitmap of occupied slots), so it only wakes when a window
 * ends, never every millisecond. */
#define WHEEL_SLOTS 512
#define WHEEL_MASK (WHEEL_SLOTS - 1)

/* One message with a window open on a channel. */
typedef struct stream {
  int64_t seq;                      /* the message */
  char conn_id[SW_CONN_ID_LEN + 1]; /* its publisher */
  int window;                       /* ms */
  bool sent;                        /* delivered something: last_sent is set */
  uint64_t last_sent;               /* loop ms of the last delivery */
  bool held;
  uint64_t due;                     /* held: last_sent + window */
  int64_t first_vseq, last_vseq;    /* held: the appends it carries */
  char serial[SW_SERIAL_LEN + 1];   /* held: the last one's version serial */
  sw_msg_t event;                   /* held: the last append's event, data = every held fragment */
  unsigned gen;                     /* held: the head just after the last one */
  size_t data_len;
} stream_t;

typedef struct sw_rollups {
  sw_channel_t *ch;
  stream_t *s;
  size_t n, cap, n_held;
  uint64_t due; /* scheduled on the wheel at this ms; 0: not scheduled */
  struct sw_rollups *prev, *next; /* in its slot */
} sw_rollups_t;

typedef struct sw_rollup_wheel {
  uv_timer_t timer;
  uint64_t cursor; /* slots up to this ms have been run */
  uint64_t armed;  /* the timer fires at this ms; 0: not armed */
  sw_rollups_t *slot[WHEEL_SLOTS];
  uint64_t bits[WHEEL_SLOTS / 64];
} sw_rollup_wheel_t;

int rollup_window_param(const char *value, int dflt) {
  if (!value || !*value) return dflt;
  long ms = 0;
  for (const char *p = value; *p; p++) {
    if (*p < '0' || *p > '9') return dflt;
    if (ms <= SW_ROLLUP_MAX_MS) ms = ms * 10 + (*p - '0');
  }
  return ms > SW_ROLLUP_MAX_MS ? SW_ROLLUP_MAX_MS : (int)ms;
}

/* ------------------------------------------------------------ the wheel */

static void wheel_link(sw_rollup_wheel_t *w, sw_rollups_t *rs, uint64_t due) {
  unsigned i = (unsigned)(due & WHEEL_MASK);
  rs->due = due;
  rs->prev = NULL;
  rs->next = w->slot[i];
  if (rs->next) rs->next->prev = rs;
  w->slot[i] = rs;
  w->bits[i / 64] |= 1ull << (i % 64);
}

static void wheel_unlink(sw_rollup_wheel_t *w, sw_rollups_t *rs) {
  unsigned i = (unsigned)(rs->due & WHEEL_MASK);
  if (rs->prev) rs->prev->next = rs->next;
  else w->slot[i] = rs->next;
  if (rs->next) rs->next->prev = rs->prev;
  if (!w->slot[i]) w->bits[i / 64] &= ~(1ull << (i % 64));
  rs->prev = rs->next = NULL;
  rs->due = 0;
}

/* Milliseconds from now to the first occupied slot after it, or 0. Every
 * deadline left lies within one lap after now (see on_wheel). */
static uint64_t wheel_next(const sw_rollup_wheel_t *w, uint64_t now) {
  for (unsigned d = 1; d <= WHEEL_SLOTS;) {
    unsigned i = (unsigned)((now + d) & WHEEL_MASK);
    uint64_t word = w->bits[i / 64] >> (i % 64);
    if (word) {
      unsigned z = 0;
      while (!(word & 1)) {
        word >>= 1;
        z++;
      }
      return d + z <= WHEEL_SLOTS ? d + z : 0;
    }
    d += 64 - i % 64;
  }
  return 0;
}

static void on_wheel(uv_timer_t *t);

static void wheel_arm_at(sw_rollup_wheel_t *w, uint64_t now, uint64_t due) {
  w->armed = due;
  uv_timer_start(&w->timer, on_wheel, due > now ? due - now : 0, 0);
}

static sw_rollup_wheel_t *wheel_get(sw_server_t *srv) {
  if (srv->shutting_down) return NULL;
  if (srv->rollup_wheel) return srv->rollup_wheel;
  sw_rollup_wheel_t *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  uv_timer_init(srv->loop, &w->timer);
  w->timer.data = srv;
  w->cursor = uv_now(srv->loop);
  srv->rollup_wheel = w;
  return w;
}

/* Puts rs on the wheel for due, unless it is due earlier already. */
static void schedule(sw_server_t *srv, sw_rollups_t *rs, uint64_t due) {
  sw_rollup_wheel_t *w = srv->rollup_wheel;
  if (!w || (rs->due && rs->due <= due)) return;
  if (rs->due) wheel_unlink(w, rs);
  wheel_link(w, rs, due);
  if (!w->armed || due < w->armed) wheel_arm_at(w, uv_now(srv->loop), due);
}

static void unschedule(sw_server_t *srv, sw_rollups_t *rs) {
  if (rs->due && srv->rollup_wheel) wheel_unlink(srv->rollup_wheel, rs);
  rs->due = 0;
}

/* ------------------------------------------------------------- delivery */

static void stream_deliver(sw_channel_t *ch, stream_t *s, uint64_t now) {
  mutation_deliver_held(ch, s->seq, s->first_vseq, s->last_vseq, s->serial, s->conn_id, &s->event, s->gen, s->data_len);
  msg_clear(&s->event);
  s->held = false;
  s->sent = true;
  s->last_sent = now;
}

/* Delivers everything rs holds, oldest last channelSerial first: a client
 * that gets one of them and is cut off resumes after its serial, and every
 * message still held has a version after that, so none is lost. */
static void flush_all(sw_rollups_t *rs, uint64_t now) {
  unschedule(rs->ch->srv, rs);
  while (rs->n_held) {
    stream_t *first = NULL;
    for (size_t i = 0; i < rs->n; i++)
      if (rs->s[i].held && (!first || rs->s[i].last_vseq < first->last_vseq)) first = &rs->s[i];
    rs->n_held--;
    stream_deliver(rs->ch, first, now);
  }
}

void rollup_flush(sw_channel_t *ch) {
  sw_rollups_t *rs = channel_xr(ch)->rollups;
  if (rs && rs->n_held) flush_all(rs, uv_now(ch->srv->loop));
}

static void on_wheel(uv_timer_t *t) {
  sw_server_t *srv = t->data;
  sw_rollup_wheel_t *w = srv->rollup_wheel;
  uint64_t now = uv_now(srv->loop);
  w->armed = 0;
  /* Run the slots since the last run (all of them after a long stall);
   * a deadline in a slot run here is at most one lap ahead: kept. */
  uint64_t from = now - w->cursor >= WHEEL_SLOTS ? now - WHEEL_SLOTS + 1 : w->cursor + 1;
  for (uint64_t ms = from; ms <= now; ms++) {
    unsigned i = (unsigned)(ms & WHEEL_MASK);
    /* One at a time from the slot's head: a delivery may change the wheel. */
    for (;;) {
      sw_rollups_t *rs = w->slot[i];
      while (rs && rs->due > now) rs = rs->next;
      if (!rs) break;
      flush_all(rs, now); /* unschedules it */
    }
  }
  w->cursor = now;
  uint64_t d = wheel_next(w, now);
  if (d) wheel_arm_at(w, now, now + d);
}

static void on_wheel_closed(uv_handle_t *h) { free(h); }

void rollup_shutdown(sw_server_t *srv) {
  sw_rollup_wheel_t *w = srv->rollup_wheel;
  if (!w) return;
  uint64_t now = uv_now(srv->loop);
  for (unsigned i = 0; i < WHEEL_SLOTS; i++)
    while (w->slot[i]) flush_all(w->slot[i], now);
  srv->rollup_wheel = NULL;
  uv_close((uv_handle_t *)&w->timer, on_wheel_closed); /* the timer is the first member */
}

/* --------------------------------------------------------------- appends */

static stream_t *stream_find(sw_rollups_t *rs, int64_t seq) {
  for (size_t i = 0; i < rs->n; i++)
    if (rs->s[i].seq == seq) return &rs->s[i];
  return NULL;
}

/* Drops the streams whose window has ended with nothing held. */
static void streams_gc(sw_rollups_t *rs, uint64_t now) {
  size_t k = 0;
  for (size_t i = 0; i < rs->n; i++) {
    stream_t *s = &rs->s[i];
    if (!s->held && (!s->sent || now - s->last_sent >= (uint64_t)s->window)) continue;
    if (k != i) rs->s[k] = *s;
    k++;
  }
  rs->n = k;
}

static stream_t *stream_add(sw_rollups_t *rs, int64_t seq, const char *conn_id, uint64_t now) {
  streams_gc(rs, now);
  if (rs->n == SW_ROLLUP_MAX_STREAMS) return NULL;
  if (rs->n == rs->cap) {
    size_t cap = rs->cap ? rs->cap * 2 : 4;
    stream_t *p = realloc(rs->s, cap * sizeof *p);
    if (!p) return NULL;
    rs->s = p;
    rs->cap = cap;
  }
  stream_t *s = &rs->s[rs->n++];
  memset(s, 0, sizeof *s);
  s->seq = seq;
  snprintf(s->conn_id, sizeof s->conn_id, "%s", conn_id);
  return s;
}

/* Appends add's bytes to the held data (kept NUL-terminated, grown
 * geometrically). 0 or -ENOMEM. */
static int data_cat(sw_data_t *acc, const sw_data_t *add) {
  if (add->kind == SW_DATA_NONE) return 0;
  size_t need = acc->len + add->len + 1;
  size_t have = acc->cap ? acc->cap : (acc->bytes ? acc->len + 1 : 0);
  if (need > have) {
    size_t cap = need < 64 ? 64 : need + need / 2;
    uint8_t *p = realloc(acc->bytes, cap);
    if (!p) return -ENOMEM;
    acc->bytes = p;
    acc->cap = cap;
  }
  memcpy(acc->bytes + acc->len, add->bytes, add->len);
  acc->len += add->len;
  acc->bytes[acc->len] = '\0';
  acc->kind = add->kind;
  return 0;
}

/* Takes in's event into the held stream s: its fragment joins the held
 * data, its other fields (version, extras, timestamp) replace the held ones. */
static int stream_take(stream_t *s, sw_rollup_in_t *in) {
  if (!s->held) {
    s->event = *in->event;
    memset(in->event, 0, sizeof *in->event);
    s->held = true;
    s->first_vseq = in->vseq;
  } else {
    if (data_cat(&s->event.data, &in->event->data)) return -ENOMEM;
    sw_data_t acc = s->event.data;
    memset(&s->event.data, 0, sizeof s->event.data);
    msg_clear(&s->event);
    s->event = *in->event;
    memset(in->event, 0, sizeof *in->event);
    data_clear(&s->event.data);
    s->event.data = acc;
  }
  s->last_vseq = in->vseq;
  snprintf(s->serial, sizeof s->serial, "%s", in->serial);
  s->gen = in->gen;
  s->data_len = in->data_len;
  return 0;
}

bool rollup_append(sw_channel_t *ch, sw_rollup_in_t *in) {
  sw_server_t *srv = ch->srv;
  sw_rollups_t *rs = channel_xr(ch)->rollups;
  uint64_t now = uv_now(srv->loop);
  sw_rollup_wheel_t *w = in->window_ms > 0 && in->conn_id && in->conn_id[0] ? wheel_get(srv) : NULL;
  if (!w) {
    if (rs) flush_all(rs, now);
    return false;
  }
  if (!rs) {
    sw_channel_ext_t *x = channel_ext(ch);
    rs = x ? (x->rollups = calloc(1, sizeof *rs)) : NULL;
    if (!rs) return false; /* nothing was held */
    rs->ch = ch;
  }
  size_t max = (size_t)srv->cfg->limits.max_message_size;
  stream_t *s = stream_find(rs, in->seq);
  if (s && strcmp(s->conn_id, in->conn_id) != 0) {
    /* Another connection appends to the message: what is held goes first
     * (the fragments keep their order), and the window is the newcomer's. */
    flush_all(rs, now);
    snprintf(s->conn_id, sizeof s->conn_id, "%s", in->conn_id);
    s->sent = false;
  } else if (s && s->held && s->event.data.len + in->event->data.len > max) {
    flush_all(rs, now); /* a held delivery stays within maxMessageSize */
  }
  if (!s && !(s = stream_add(rs, in->seq, in->conn_id, now))) {
    flush_all(rs, now); /* too many streams: this one is not rolled up */
    return false;
  }
  s->window = in->window_ms;
  if (!s->held && (!s->sent || now - s->last_sent >= (uint64_t)s->window)) {
    /* The first append of a window goes at once, after what is held. */
    flush_all(rs, now);
    s->sent = true;
    s->last_sent = now;
    return false;
  }
  bool was_held = s->held;
  if (stream_take(s, in)) {
    flush_all(rs, now); /* out of memory: what is held goes now, then this */
    return false;
  }
  if (!was_held) rs->n_held++;
  s->due = s->last_sent + (uint64_t)s->window;
  schedule(srv, rs, s->due > now ? s->due : now + 1);
  return true;
}

void rollup_channel_free(sw_channel_t *ch) {
  sw_rollups_t *rs = channel_xr(ch)->rollups;
  if (!rs) return;
  unschedule(ch->srv, rs);
  for (size_t i = 0; i < rs->n; i++)
    if (rs->s[i].held) msg_clear(&rs->s[i].event);
  free(rs->s);
  free(rs);
  ch->ext->rollups = NULL;
}
