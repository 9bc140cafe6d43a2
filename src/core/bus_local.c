/* bus_local.c: the bus (core/bus.h) of one process, on the embedded store
 * (store/store.h). What core/channel.c did itself before the bus existed:
 *
 *  publish  seq = ch->last_seq + 1 .. + n on the loop thread, one
 *           store_submit of the batch; in the store's completion (on the
 *           loop thread, in submission order) deliver() of each message,
 *           then done(). Given the channel (sw_bus_policy_t.ch: every
 *           channel_publish), the pending publish lives in the store's
 *           allocation of the submission (store_submit_ud) and keeps no
 *           blobs: deliver() is channel_deliver, which fans out the
 *           channel's own pending publish. Otherwise the blobs are kept
 *           (one allocation per publish) for deliver() by name.
 *  read     store_history, answered from inside bus_read (the store's
 *           reads are synchronous).
 *  subscribe, unsubscribe: nothing (not shared: the attachments are the
 *           subscription, and a channel is ready at once).
 *
 * The channel's serial is core/'s own (sw_channel_t.last_seq, loaded from
 * the store by channel_get): message versions and annotations
 * (core/mutation.c, core/annotation.c) draw from the same counter. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/bus.h"
#include "core/channel.h"
#include "core/server.h"
#include "util/clock.h"

typedef struct bus_local {
  sw_bus_t base;
  sw_server_t *srv;
} bus_local_t;

/* One publish waiting for the store: its serials, and for a deliver() by
 * name its messages (blobs copied after the array) and the channel's
 * names. Given the channel (sw_bus_policy_t.ch, channel_publish's), it is
 * in the store's own allocation of the submission (store_submit_ud) and
 * keeps no blobs: the channel's publish is pending with the messages
 * (channel_deliver fans out the publish's own, core/channel.c). */
typedef struct lpub {
  bus_local_t *b;
  sw_bus_done_cb done;
  void *ud;
  size_t n;
  int64_t first;
  sw_channel_t *ch; /* pinned by the caller until done(); or NULL, and then: */
  char *app, *channel;
  sw_bus_msg_t *msgs;
  bool in_job; /* in the store's allocation: the store frees it */
  sw_bus_seq_t *seqs;
} lpub_t;

/* Records of a batch up to this size are built on the stack: store_submit
 * copies them, so a heap array was one more malloc and free per publish. */
#define RECS_ON_STACK 8

static void on_stored(void *ud, int status) {
  lpub_t *p = ud;
  bus_local_t *b = p->b;
  if (status == 0) {
    for (size_t i = 0; i < p->n; i++) {
      int64_t seq = p->first + (int64_t)i;
      if (p->ch) channel_deliver(p->ch, seq, NULL, 0);
      else b->base.h.deliver(b->base.h.ud, p->app, p->channel, seq, p->msgs[i].timestamp, p->msgs[i].blob,
                             p->msgs[i].len);
    }
    p->done(p->ud, NULL, p->seqs, p->n);
  } else {
    sw_error_t err;
    errors_set(&err, SW_E_INTERNAL, "message could not be stored");
    p->done(p->ud, &err, NULL, p->n);
  }
  if (!p->in_job) free(p);
}

/* The store records of msgs (seq first..), their blobs still the caller's
 * (store_submit copies them). */
static void make_recs(sw_store_rec_t *recs, const char *app_id, const char *channel, const sw_bus_msg_t *msgs,
                      size_t n, int64_t first, const sw_bus_policy_t *pol) {
  int64_t now = clock_now_ms();
  for (size_t i = 0; i < n; i++)
    recs[i] = (sw_store_rec_t){.app_id = app_id,
                               .channel = channel,
                               .seq = first + (int64_t)i,
                               .timestamp = msgs[i].timestamp,
                               .msg_id = msgs[i].id,
                               .blob = msgs[i].blob,
                               .blob_len = msgs[i].len,
                               .expires_at = pol && pol->max_age_ms ? now + pol->max_age_ms : 0,
                               .keep_count = pol ? pol->keep_count : 0};
}

/* l_publish of the channel the caller gave: the pending publish in the
 * store's allocation (one malloc and free per publish fewer). */
static int publish_on(bus_local_t *b, sw_channel_t *ch, const sw_bus_msg_t *msgs, size_t n,
                      const sw_bus_policy_t *pol, sw_bus_done_cb done, void *ud, sw_error_t *err) {
  sw_store_rec_t small[RECS_ON_STACK];
  sw_store_rec_t *recs = n <= RECS_ON_STACK ? small : malloc(n * sizeof *recs);
  if (!recs) return errors_set(err, SW_E_INTERNAL, "out of memory"), -1;
  int64_t first = ch->last_seq + 1;
  make_recs(recs, ch->app->id, ch->name, msgs, n, first, pol);
  void *mem = NULL;
  int rc = store_submit_ud(b->srv->store, recs, n, on_stored, sizeof(lpub_t) + n * sizeof(sw_bus_seq_t), &mem);
  if (recs != small) free(recs);
  if (rc) return errors_set(err, SW_E_INTERNAL, "storage unavailable"), -1;
  lpub_t *p = mem;
  *p = (lpub_t){.b = b, .done = done, .ud = ud, .n = n, .first = first, .ch = ch, .in_job = true};
  p->seqs = (sw_bus_seq_t *)(p + 1);
  for (size_t i = 0; i < n; i++) p->seqs[i] = (sw_bus_seq_t){first + (int64_t)i, false};
  ch->last_seq += (int64_t)n;
  return 0;
}

static int l_publish(sw_bus_t *base, const char *app_id, const char *channel, const sw_bus_msg_t *msgs, size_t n,
                     const sw_bus_policy_t *pol, sw_bus_done_cb done, void *ud, sw_error_t *err) {
  bus_local_t *b = (bus_local_t *)base;
  sw_server_t *srv = b->srv;
  if (srv->store && pol && pol->ch) return publish_on(b, pol->ch, msgs, n, pol, done, ud, err);
  sw_channel_t *ch = channel_find_id(srv, app_id, channel);
  if (!srv->store || !ch) return errors_set(err, SW_E_INTERNAL, "server shutting down"), -1;
  size_t al = strlen(app_id) + 1, cl = strlen(channel) + 1, bytes = 0;
  for (size_t i = 0; i < n; i++) bytes += msgs[i].len;
  lpub_t *p = malloc(sizeof *p + n * (sizeof *p->msgs + sizeof *p->seqs) + al + cl + bytes);
  sw_store_rec_t small[RECS_ON_STACK];
  sw_store_rec_t *recs = n <= RECS_ON_STACK ? small : malloc(n * sizeof *recs);
  if (!p || !recs) {
    free(p);
    if (recs != small) free(recs);
    return errors_set(err, SW_E_INTERNAL, "out of memory"), -1;
  }
  *p = (lpub_t){.b = b, .done = done, .ud = ud, .n = n, .first = ch->last_seq + 1};
  p->msgs = (sw_bus_msg_t *)(p + 1);
  p->seqs = (sw_bus_seq_t *)(p->msgs + n);
  uint8_t *blobs = (uint8_t *)(p->seqs + n);
  p->app = memcpy(blobs, app_id, al);
  p->channel = memcpy(blobs + al, channel, cl);
  blobs += al + cl;
  make_recs(recs, app_id, channel, msgs, n, p->first, pol);
  for (size_t i = 0; i < n; i++) {
    p->msgs[i] = msgs[i];
    p->msgs[i].blob = blobs;
    p->msgs[i].id = NULL; /* borrowed by the caller: the store copied it */
    if (msgs[i].len) memcpy(blobs, msgs[i].blob, msgs[i].len);
    blobs += msgs[i].len;
    p->seqs[i] = (sw_bus_seq_t){p->first + (int64_t)i, false};
  }
  int rc = store_submit(srv->store, recs, n, on_stored, p);
  if (recs != small) free(recs);
  if (rc) {
    free(p);
    return errors_set(err, SW_E_INTERNAL, "storage unavailable"), -1;
  }
  ch->last_seq += (int64_t)n;
  return 0;
}

static int l_subscribe(sw_bus_t *base, const char *app_id, const char *channel) {
  (void)base, (void)app_id, (void)channel;
  return 0;
}

static void l_unsubscribe(sw_bus_t *base, const char *app_id, const char *channel) {
  (void)base, (void)app_id, (void)channel;
}

static int l_read(sw_bus_t *base, const sw_bus_range_t *r, sw_bus_read_cb cb, void *ud, sw_error_t *err) {
  bus_local_t *b = (bus_local_t *)base;
  if (!b->srv->store) return errors_set(err, SW_E_INTERNAL, "server shutting down"), -1;
  sw_history_q_t q = {.app_id = r->app_id, .channel = r->channel, .after_seq = r->after_seq,
                      .before_seq = r->before_seq, .start = r->start, .end = r->end > 0 ? r->end : INT64_MAX,
                      .forwards = r->forwards, .limit = r->limit, .now = r->now, .by_vseq = r->by_vseq};
  sw_store_rows_t rows = {0};
  int rc = store_history(b->srv->store, &q, &rows);
  if (rc) {
    sw_error_t e;
    errors_set(&e, SW_E_INTERNAL, "history could not be read");
    cb(ud, &e, &rows, -1, false);
    return 0;
  }
  const sw_store_row_t *last = rows.n ? &rows.rows[rows.n - 1] : NULL;
  int64_t cursor = last ? (r->by_vseq ? last->vseq : last->seq) : -1;
  bool more = rows.n >= r->limit && r->limit > 0;
  cb(ud, NULL, &rows, cursor, more);
  return 0;
}

static bool l_is_up(const sw_bus_t *base) {
  return ((const bus_local_t *)base)->srv->store != NULL;
}

static void l_close(sw_bus_t *base) {
  free(base);
}

static const sw_bus_ops_t LOCAL_OPS = {
    .name = "local",
    .shared = false,
    .publish = l_publish,
    .subscribe = l_subscribe,
    .unsubscribe = l_unsubscribe,
    .read = l_read,
    .is_up = l_is_up,
    .close = l_close,
};

int bus_local_open(sw_server_t *srv, const sw_bus_handlers_t *h, sw_bus_t **out) {
  if (!srv || !h || !h->deliver || !out) return -EINVAL;
  bus_local_t *b = calloc(1, sizeof *b);
  if (!b) return -ENOMEM;
  b->base.ops = &LOCAL_OPS;
  b->base.h = *h;
  b->srv = srv;
  *out = &b->base;
  return 0;
}
