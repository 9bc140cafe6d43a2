#include "core/mutation.h"

#include "core/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/annotation.h"
#include "core/app.h"
#include "core/conn.h"
#include "core/delta.h"
#include "core/rollup.h"
#include "core/serial.h"
#include "core/server.h"
#include "core/sock.h"
#include "metrics/metrics.h"
#include "proto/blob_append.h"
#include "proto/codec.h"
#include "proto/filter.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/zalloc.h"

/* Heads kept per channel beyond those with versions in flight. */
#define MAX_HEADS 256

void mutation_mark_full(sw_attach_t *a, int64_t seq) {
  if (seq > a->from_seq) return; /* it holds those anyway */
  sw_seen_t *s = NULL;
  HASH_FIND(hh, attach_sr(a)->full_sent, &seq, sizeof seq, s);
  sw_attach_side_t *x = s ? NULL : attach_side(a);
  if (!x || !(s = calloc(1, sizeof *s))) return;
  s->seq = seq;
  HASH_ADD(hh, x->full_sent, seq, sizeof s->seq, s);
}

static bool holds_full(sw_attach_t *a, int64_t seq) {
  if (seq > a->from_seq) return true;
  sw_seen_t *s = NULL;
  HASH_FIND(hh, attach_sr(a)->full_sent, &seq, sizeof seq, s);
  return s != NULL;
}

void mutation_attach_free(sw_attach_t *a) {
  if (!a->side) return;
  sw_seen_t *s, *tmp;
  HASH_ITER(hh, a->side->full_sent, s, tmp) {
    HASH_DEL(a->side->full_sent, s);
    free(s);
  }
}

static void vqueue_free(sw_channel_t *ch);

static void head_free(sw_head_t *h) {
  msg_clear(&h->msg);
  json_decref(h->spare_version);
  free(h);
}

void mutation_channel_free(sw_channel_t *ch) {
  if (!ch->ext) return;
  sw_head_t *h, *tmp;
  HASH_ITER(hh, ch->ext->heads, h, tmp) {
    HASH_DEL(ch->ext->heads, h);
    head_free(h);
  }
  ch->ext->n_heads = 0;
  vqueue_free(ch);
}

/* Keeps the head of message seq decoded from blob (none kept for it yet).
 * NULL if it does not decode (or out of memory). */
static sw_head_t *head_add(sw_channel_t *ch, int64_t seq, const uint8_t *blob, size_t len) {
  sw_channel_ext_t *x = channel_ext(ch);
  sw_head_t *h = x ? calloc(1, sizeof *h) : NULL;
  if (!h || codec_msg_from_blob(blob, len, &h->msg)) {
    free(h);
    return NULL;
  }
  h->seq = seq;
  /* Oldest first in uthash order: evict those without versions in flight. */
  if (x->n_heads >= MAX_HEADS) {
    sw_head_t *e, *tmp;
    HASH_ITER(hh, x->heads, e, tmp) {
      if (x->n_heads < MAX_HEADS) break;
      if (e->pending) continue;
      HASH_DEL(x->heads, e);
      head_free(e);
      x->n_heads--;
    }
  }
  HASH_ADD(hh, x->heads, seq, sizeof h->seq, h);
  x->n_heads++;
  return h;
}

/* The current head of message seq: from memory (it may have versions not
 * yet durable), else from storage. NULL if there is no such message. */
sw_head_t *mutation_head(sw_channel_t *ch, int64_t seq) {
  sw_head_t *h = NULL;
  HASH_FIND(hh, channel_xr(ch)->heads, &seq, sizeof seq, h);
  if (h) return h;
  sw_store_row_t row = {0};
  if (store_get(ch->srv->store, ch->app->id, ch->name, seq, &row) != 1) return NULL;
  h = head_add(ch, seq, row.blob, row.blob_len);
  free(row.blob);
  return h;
}

typedef struct version {
  sw_channel_t *ch;
  int64_t seq, vseq;
  sw_msg_t event;  /* what live subscribers get, owned: for an append, the fragment */
  bool append;
  size_t data_len; /* append: the head's data length after it */
  unsigned gen;    /* append: the head's generation (see sw_head_t) */
  sw_msg_t full;   /* append: the head after it, when an update or delete
                      overtook it before it was durable (else derived) */
  bool has_full;
  struct version *next_inflight; /* in its head's list */
  char serial[SW_SERIAL_LEN + 1];
  sw_publisher_t who;
  char conn_id[SW_CONN_ID_LEN + 1];
  sw_buf_t blobs;        /* what was stored; event's blob at ev_off, for fanout */
  size_t ev_off, ev_len; /* (ev_len 0: none) */
} version_t;

static void version_free(version_t *v) {
  msg_clear(&v->event);
  /* Only snapshot_inflight fills it (msg_copy clears it on failure): an
   * append's usual version skips clearing an empty message (nine free). */
  if (v->has_full) msg_clear(&v->full);
  buf_free(&v->blobs);
  if (v->who.rest_sock) sock_unref(v->who.rest_sock);
  free(v);
}

/* Takes v off its head's list; false when h is not v's head (one read
 * again from storage after a failure dropped v's). */
static bool inflight_remove(sw_head_t *h, version_t *v) {
  for (struct version **pp = &h->inflight; *pp; pp = &(*pp)->next_inflight)
    if (*pp == v) {
      *pp = v->next_inflight;
      return true;
    }
  return false;
}

/* The head just after append v, for a subscriber that does not hold the
 * message: derived from the head in memory (appends only extend its data,
 * so it is a prefix plus v's extras and version), unless an update or delete
 * came in between, which made a copy first (snapshot_inflight). The view
 * borrows everything; it is never freed. */
static bool head_after(const sw_head_t *h, const version_t *v, sw_msg_t *view) {
  if (v->has_full) {
    *view = v->full;
    return true;
  }
  if (!h || h->gen != v->gen || h->msg.data.len < v->data_len) return false;
  *view = h->msg;
  view->data.len = v->data_len;
  view->extras = v->event.extras;
  view->version = v->event.version;
  view->action = SW_MSG_UPDATE;
  return true;
}

/* Live delivery to the attachments of ch (the version's channel, or one
 * derived from it) of event, the versions first_vseq to last_vseq of
 * message seq, with channelSerial serial: each subscriber gets the event, except
 * that, for an append, one which does not hold the message in full, or
 * went live after first_vseq (its attach or replay gave it the head with
 * part of the event in it), gets *whole (when known) instead, and one that
 * went live after last_vseq, which has all of it, gets nothing. */
static void fanout(sw_channel_t *ch, int64_t seq, int64_t first_vseq, int64_t last_vseq, const char *serial,
                   const char *conn_id, const sw_msg_t *event, bool append, const sw_msg_t *whole_view,
                   const sw_buf_t *raw) {
  sw_pmsg_t ev = {.action = SW_ACTION_MESSAGE,
                  .channel = (char *)ch->name,
                  .channel_serial = (char *)serial,
                  .timestamp = event->timestamp,
                  .messages = (sw_msg_t *)event,
                  .n_messages = 1};
  sw_pmsg_t full = ev;
  full.messages = (sw_msg_t *)(whole_view ? whole_view : event);
  sw_frame_t *frames[2][2] = {{NULL, NULL}, {NULL, NULL}}; /* [full][fmt] */
  delta_forget(ch); /* subscribers get a version: the base they hold is not known */
  for (sw_attach_t *a = ch->subs; a; a = a->next) {
    sw_conn_t *c = a->conn;
    /* During a replay the version comes from storage, in order. */
    if (!a->delivering || attach_sr(a)->replay || !(a->modes & SW_MODE_SUBSCRIBE)) continue;
    if (!c->echo && conn_id[0] && strcmp(c->id, conn_id) == 0) continue;
    if (last_vseq <= a->live_seq) continue;
    bool whole = append && (!holds_full(a, seq) || first_vseq <= a->live_seq);
    if (whole) mutation_mark_full(a, seq);
    const sw_pmsg_t *m = whole ? &full : &ev;
    metrics_inc(SW_M_MESSAGES_OUT);
    if (a->side && a->side->wire_name) {
      sw_pmsg_t own = *m;
      own.channel = a->side->wire_name;
      sw_frame_t *f = pmsg_frame(c->fmt, &own);
      if (f) conn_send_frame(c, f);
      frame_unref(f);
      continue;
    }
    sw_frame_t **slot = &frames[whole][c->fmt];
    /* msgpack: the event's stored blob is its wire form (not re-encoded) */
    if (!*slot) *slot = raw && !whole && c->fmt == SW_FMT_MSGPACK ? frame_pmsg_msgpack_raw(m, raw->data, raw->len)
                                                                    : pmsg_frame(c->fmt, m);
    if (*slot) conn_send_frame(c, *slot);
  }
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) frame_unref(frames[i][j]);
}

/* To ch, and to its derived channels whose filter the message passes
 * (judged on m, the message as it is after the version: an append's
 * fragment has no name). */
static void fanout_all(sw_channel_t *ch, const sw_msg_t *m, int64_t seq, int64_t first_vseq, int64_t last_vseq,
                       const char *serial, const char *conn_id, const sw_msg_t *event, bool append,
                       const sw_msg_t *whole_view, const sw_buf_t *raw) {
  fanout(ch, seq, first_vseq, last_vseq, serial, conn_id, event, append, whole_view, raw);
  for (sw_channel_t *d = channel_xr(ch)->derived; d; d = d->ext->next_derived)
    if (d->subs && filter_match(d->ext->filter, m->name, json_object_get(m->extras, "headers")))
      fanout(d, seq, first_vseq, last_vseq, serial, conn_id, event, append, whole_view, raw);
}

/* Live delivery of a durable version. An append may be held for its
 * publisher's appendRollupWindow (core/rollup.c); anything else first
 * delivers what is held, so that channelSerials go out in order. */
static void broadcast(version_t *v, const sw_head_t *h) {
  sw_channel_t *ch = v->ch;
  if (v->append && !v->has_full) {
    const sw_conn_t *pc = v->conn_id[0] ? conn_find(ch->srv, v->conn_id) : NULL;
    sw_rollup_in_t in = {.seq = v->seq, .vseq = v->vseq, .serial = v->serial, .conn_id = v->conn_id,
                         .window_ms = pc ? pc->append_rollup_ms : 0, .event = &v->event, .gen = v->gen,
                         .data_len = v->data_len};
    if (rollup_append(ch, &in)) return;
  } else {
    rollup_flush(ch);
  }
  sw_msg_t view;
  bool have_full = v->append && head_after(h, v, &view);
  const sw_msg_t *m = h ? &h->msg : v->has_full ? &v->full : &v->event;
  /* A version from the shared bus has no stored blob here (ev_len 0). */
  sw_buf_t raw = {.data = v->ev_len ? v->blobs.data + v->ev_off : NULL, .len = v->ev_len};
  fanout_all(ch, m, v->seq, v->vseq, v->vseq, v->serial, v->conn_id, &v->event, v->append, have_full ? &view : NULL,
             v->ev_len ? &raw : NULL);
}

void mutation_deliver_held(sw_channel_t *ch, int64_t seq, int64_t first_vseq, int64_t last_vseq, const char *serial,
                           const char *conn_id, const sw_msg_t *event, unsigned gen, size_t data_len) {
  /* The head after the last held append: the one in memory (appends only
   * extend it, and an update or delete delivers what is held before it
   * changes the head), else, if it was evicted, the durable one, which is
   * that head since no version of it is in flight. */
  sw_head_t *h = NULL;
  HASH_FIND(hh, channel_xr(ch)->heads, &seq, sizeof seq, h);
  bool loaded = !h;
  if (loaded) h = mutation_head(ch, seq);
  sw_msg_t view;
  bool have_full = h && (loaded || h->gen == gen) && h->msg.data.len >= data_len;
  if (have_full) {
    view = h->msg;
    view.data.len = data_len;
    view.extras = event->extras;
    view.version = event->version;
    view.action = SW_MSG_UPDATE;
  }
  const sw_msg_t *m = have_full ? &view : h ? &h->msg : event;
  fanout_all(ch, m, seq, first_vseq, last_vseq, serial, conn_id, event, true, have_full ? &view : NULL, NULL);
}

static void on_stored(void *ud, int status) {
  version_t *v = ud;
  sw_channel_t *ch = v->ch;
  ch->pending--;
  sw_head_t *h = NULL;
  HASH_FIND(hh, channel_xr(ch)->heads, &v->seq, sizeof v->seq, h);
  if (h && !inflight_remove(h, v)) h = NULL;
  if (h && h->pending) h->pending--;
  sw_error_t err = {0};
  if (status == 0) {
    if (v->vseq > ch->durable_seq) ch->durable_seq = v->vseq;
    metrics_inc(SW_M_MESSAGES_IN);
    broadcast(v, h);
  } else {
    errors_set(&err, status == -ENOENT ? SW_E_NOT_FOUND : SW_E_INTERNAL, "message version could not be stored");
    log_error("version storage failed on %s: %d", ch->name, status);
    /* The in-memory head ran ahead of storage: forget it (it is read again
     * from storage next time; versions still in flight find no head). */
    if (h) {
      HASH_DEL(ch->ext->heads, h);
      head_free(h);
      ch->ext->n_heads--;
    }
  }
  char *serials[1] = {v->serial};
  sw_publisher_t who = v->who;
  who.conn_id = v->conn_id[0] ? v->conn_id : NULL;
  channel_notify(ch->srv, &who, ch->name, status ? &err : NULL, serials, 1);
  version_free(v);
}

/* The operation (version) fields a client may set: description, metadata;
 * the server sets serial, timestamp and clientId (TM2s). */
static json_t *make_version(const sw_msg_t *msg, const char *serial, int64_t now, const char *client_id) {
  json_t *v = json_object();
  if (!v) return NULL;
  /* _nocheck: literal keys and a serial of hex digits are ASCII */
  json_object_set_new_nocheck(v, "serial", json_string_nocheck(serial));
  json_object_set_new_nocheck(v, "timestamp", json_integer(now));
  if (client_id) json_object_set_new_nocheck(v, "clientId", json_string(client_id));
  if (msg->version) {
    json_t *d = json_object_get(msg->version, "description");
    json_t *m = json_object_get(msg->version, "metadata");
    if (json_is_string(d)) json_object_set(v, "description", d);
    if (json_is_object(m)) json_object_set(v, "metadata", m);
  }
  return v;
}

/* Sets the head's version object v in place to what make_version would
 * build, when that changes only its serial and timestamp: v is the head's
 * alone (the last event that shared it is gone; a copy of a message deep
 * copies its JSON) and holds exactly serial, timestamp and the same
 * clientId, and the request gives no description or metadata. A stream of
 * appends then skips an object's build and free (~2.5k instructions per
 * append); the keys keep their order, so the encoding is the same. */
static bool version_reuse(json_t *v, const sw_msg_t *msg, const char *serial, int64_t now, const char *client_id) {
  if (!json_is_object(v) || v->refcount != 1) return false;
  if (json_object_size(v) != (client_id ? 3u : 2u)) return false;
  if (msg->version && (json_is_string(json_object_get(msg->version, "description")) ||
                       json_is_object(json_object_get(msg->version, "metadata"))))
    return false;
  /* In make_version's order (jansson keeps insertion order). */
  void *it = json_object_iter(v);
  json_t *s = it && strcmp(json_object_iter_key(it), "serial") == 0 ? json_object_iter_value(it) : NULL;
  it = json_object_iter_next(v, it);
  json_t *t = it && strcmp(json_object_iter_key(it), "timestamp") == 0 ? json_object_iter_value(it) : NULL;
  if (!json_is_string(s) || !json_is_integer(t)) return false;
  if (client_id) {
    it = json_object_iter_next(v, it);
    json_t *c = it && strcmp(json_object_iter_key(it), "clientId") == 0 ? json_object_iter_value(it) : NULL;
    if (!json_is_string(c) || strcmp(json_string_value(c), client_id) != 0) return false;
  }
  /* _nocheck: a serial of hex digits is ASCII; on failure s is unchanged
   * and the caller builds a new object. */
  if (json_string_set_nocheck(s, serial)) return false;
  json_integer_set(t, now);
  return true;
}

static int append_data(sw_data_t *dst, const sw_data_t *add, sw_error_t *err) {
  if (add->kind == SW_DATA_NONE) return 0;
  if (dst->kind != SW_DATA_NONE && dst->kind != add->kind)
    return errors_set(err, SW_E_INVALID_MESSAGE_DATA, "an append must have the same data type as the message");
  size_t need = dst->len + add->len + 1;
  if (need > dst->cap) {
    /* Geometric growth: a stream of appends costs amortised O(fragment),
     * not a copy of the whole message each time. */
    size_t cap = dst->cap > need / 2 ? dst->cap * 2 : need + need / 2;
    if (cap < 64) cap = 64;
    uint8_t *p = realloc(dst->bytes, cap);
    if (!p) return errors_set(err, SW_E_INTERNAL, "out of memory");
    dst->bytes = p;
    dst->cap = cap;
  }
  memcpy(dst->bytes + dst->len, add->bytes, add->len);
  dst->len += add->len;
  dst->bytes[dst->len] = '\0';
  dst->kind = add->kind;
  return 0;
}

/* A copy of want: the request's own string from *from when it is the same
 * (it is cleared after the fold anyway), else strdup. An append request
 * carries the message's serial and its connection's id: two strdup and two
 * free fewer per append. */
static char *take_or_dup(char **from, const char *want) {
  if (!want) return NULL;
  if (*from && (*from == want || strcmp(*from, want) == 0)) {
    char *s = *from;
    *from = NULL;
    return s;
  }
  return strdup(want);
}

/* Takes a message field from src when src has it (TM5 update semantics). */
#define TAKE(field)            \
  if (src->field) {            \
    free(dst->field);          \
    dst->field = src->field;   \
    src->field = NULL;         \
  }

/* The head's version object for version vserial: its own one set in
 * place (version_reuse), else, while an event not yet durable shares that
 * one, the spare *spare (one an earlier event shared and has let go) set
 * in place and swapped in, else a new one; a shared one the head lets go
 * becomes the spare when there is none. A stream of appends on a store
 * whose commits take longer than the gap between two appends shared the
 * head's object with the previous event ~1 time in 4 (bench ai on SQLite,
 * 30 streams x 20/s) and built a new one each time (~2.9k instructions).
 * NULL on OOM. */
static json_t *fold_version(sw_msg_t *head, json_t **spare, const sw_msg_t *msg, const char *vserial, int64_t now,
                            const char *actor) {
  json_t *cur = head->version;
  if (version_reuse(cur, msg, vserial, now, actor)) return cur;
  if (spare && *spare && cur && cur->refcount > 1 && version_reuse(*spare, msg, vserial, now, actor)) {
    head->version = *spare;
    *spare = cur; /* the head's reference moves */
    return head->version;
  }
  json_t *v = make_version(msg, vserial, now, actor);
  if (!v) return NULL;
  if (spare && !*spare && cur && cur->refcount > 1)
    *spare = cur; /* kept for a later version of the head */
  else
    json_decref(cur);
  head->version = v;
  return v;
}

int mutation_fold(sw_msg_t *head, sw_msg_t *event, sw_msg_t *msg, const char *vserial, int64_t now,
                  const char *actor, sw_error_t *err) {
  return mutation_fold_spare(head, NULL, event, msg, vserial, now, actor, err);
}

int mutation_fold_spare(sw_msg_t *head, json_t **spare, sw_msg_t *event, sw_msg_t *msg, const char *vserial,
                        int64_t now, const char *actor, sw_error_t *err) {
  memset(event, 0, sizeof *event);
  sw_msg_t *dst = head, *src = msg;
  /* Everything that can refuse the request before the head changes. */
  if (msg->action == SW_MSG_APPEND) {
    /* Concatenation is only meaningful for plain text or bytes: JSON or
     * other encoded data would stop decoding ({"a":1}{"b":2}). */
    if ((dst->encoding && *dst->encoding) || (src->encoding && *src->encoding)) {
      errors_set(err, SW_E_INVALID_MESSAGE_DATA,
                 "appends need plain string or binary data (the message or append has encoding %.32s)",
                 dst->encoding && *dst->encoding ? dst->encoding : src->encoding);
      return -1;
    }
    if (src->data.kind != SW_DATA_NONE && dst->data.kind != SW_DATA_NONE && dst->data.kind != src->data.kind) {
      errors_set(err, SW_E_INVALID_MESSAGE_DATA, "an append must have the same data type as the message");
      return -1;
    }
  }
  json_t *version = fold_version(head, spare, msg, vserial, now, actor);
  if (!version) {
    errors_set(err, SW_E_INTERNAL, "out of memory");
    return -1;
  }
  if (msg->action == SW_MSG_APPEND) {
    if (append_data(&dst->data, &src->data, err)) return -1;
    if (src->extras) { /* the latest headers (e.g. a stream's status) win */
      json_decref(dst->extras);
      dst->extras = src->extras;
      src->extras = NULL;
    }
    dst->action = SW_MSG_UPDATE;
    /* The event is the fragment alone, with the message's identity: as on
     * Ably, that includes its name (ably-js checks it on a live append). */
    event->action = SW_MSG_APPEND;
    event->name = take_or_dup(&src->name, dst->name);
    event->data = msg->data;
    memset(&msg->data, 0, sizeof msg->data);
    /* Shared, not copied: nothing changes a message's JSON in place (a
     * head gets new objects), so the event may hold the same ones. */
    event->extras = json_incref(dst->extras);
    event->version = json_incref(version);
    event->serial = take_or_dup(&src->serial, dst->serial);
    event->id = take_or_dup(&src->id, dst->id);
    event->client_id = take_or_dup(&src->client_id, dst->client_id);
    event->connection_id = take_or_dup(&src->connection_id, src->connection_id);
    event->timestamp = now;
    return 0;
  }
  /* An update or delete is a shallow mixin, as on Ably: the fields the
   * request gives replace the head's, the others stay. A delete is a soft
   * delete: it keeps the content unless it gives new content (ably-js
   * deleteMessage({serial, data: {}})). The data and its encoding go
   * together: new data without an encoding is plain. */
  TAKE(name);
  if (src->extras) { /* a json_t: released, not freed (TAKE is for strings) */
    json_decref(dst->extras);
    dst->extras = src->extras;
    src->extras = NULL;
  }
  if (src->data.kind != SW_DATA_NONE || src->encoding) {
    data_clear(&dst->data);
    dst->data = src->data;
    memset(&src->data, 0, sizeof src->data);
    free(dst->encoding);
    dst->encoding = src->encoding;
    src->encoding = NULL;
  }
  dst->action = msg->action;
  if (msg_copy(event, dst)) {
    errors_set(err, SW_E_INTERNAL, "out of memory");
    return -1;
  }
  event->timestamp = now;
  return 0;
}

/* Copies, for every append of h still in flight, the head just after it
 * (see head_after), before an update or delete changes the head. */
static int snapshot_inflight(sw_head_t *h) {
  for (version_t *v = h->inflight; v; v = v->next_inflight) {
    sw_msg_t view;
    if (!v->append || v->has_full || !head_after(h, v, &view)) continue;
    if (msg_copy(&v->full, &view)) return -1;
    v->has_full = true;
  }
  return 0;
}

/* Forgets a head whose in-memory state ran ahead of a version that will
 * not be stored. Versions of it still in flight find no head of theirs
 * (inflight_remove) and complete without it. */
static void head_drop(sw_channel_t *ch, sw_head_t *h) {
  HASH_DEL(ch->ext->heads, h);
  head_free(h);
  ch->ext->n_heads--;
}

void mutation_head_forget(sw_channel_t *ch, int64_t seq) {
  sw_head_t *h = NULL;
  HASH_FIND(hh, channel_xr(ch)->heads, &seq, sizeof seq, h);
  if (h) head_drop(ch, h);
}

/* ops: the caller's capability operations on the channel. */
static int authorise(uint32_t ops, const char *caller, const sw_channel_t *ch, const sw_msg_t *head, int action,
                     sw_error_t *err) {
  bool del = action == SW_MSG_DELETE;
  uint32_t any = 1u << (del ? SW_OP_MESSAGE_DELETE_ANY : SW_OP_MESSAGE_UPDATE_ANY);
  uint32_t own = 1u << (del ? SW_OP_MESSAGE_DELETE_OWN : SW_OP_MESSAGE_UPDATE_OWN);
  if (ops & any) return 0;
  if (ops & own) {
    if (!caller || strcmp(caller, "*") == 0)
      return errors_set(err, 40166, "an unidentified client cannot %s its own messages", del ? "delete" : "update");
    if (head->client_id && strcmp(head->client_id, caller) == 0) return 0;
    return errors_set(err, SW_E_CAPABILITY_DENIED, "only the publisher of a message may %s it",
                      del ? "delete" : "update");
  }
  return errors_set(err, SW_E_CAPABILITY_DENIED, "%s denied; channel = %.200s",
                    del ? "message delete" : "message update", ch->name);
}

/* Bits 0-31 the offset, 32-61 the length, 62-63 the sw_data_kind_t. A hint
 * is never 0 (a blob's data follows its map header, and no data gets
 * offset 1). */
uint64_t mutation_frag_hint(size_t off, size_t len, sw_data_kind_t kind) {
  if (kind == SW_DATA_NONE) return 1;
  if (off == 0 || off > UINT32_MAX || len >= (1u << 30)) return 0;
  return (uint64_t)kind << 62 | (uint64_t)len << 32 | off;
}

/* The fragment an event's hint points at; false if the hint is absent or
 * does not fit the blob (then the blob is parsed). */
static bool frag_from_hint(const sw_store_event_t *e, sw_data_t *frag) {
  uint64_t off = e->hint & UINT32_MAX, len = e->hint >> 32 & ((1u << 30) - 1);
  sw_data_kind_t kind = (sw_data_kind_t)(e->hint >> 62);
  if (!e->hint || kind > SW_DATA_BINARY || off > e->len || len > e->len - off) return false;
  *frag = (sw_data_t){.kind = kind, .bytes = (uint8_t *)e->blob + off, .len = kind == SW_DATA_NONE ? 0 : len};
  return true;
}

/* ------------------------------------------------------ on a shared bus
 *
 * With a bus that stores versions (bus_redis: docs/cluster.md, "Mutable
 * messages"), the head lives in the shared store, not in this node's: a
 * change reads the head (bus_read of the message, heads aggregated), folds
 * the request into it here (mutation_fold, as on one node), and hands the
 * event and the new head to bus_publish_version, which stores both only if
 * no other version of the message came in between (else it is read and
 * folded again). The node's changes of one channel go one at a time, in
 * the order they came, so one publisher's appends keep their order. The
 * version comes back to every node (this one too) through deliver_version,
 * in the channel's serial order, and is fanned out from there
 * (mutation_bus_deliver). */

#define SHARED_TRIES 16 /* reads and folds again after conflicts, at most */

typedef struct sreq {
  struct sreq *next;
  sw_channel_t *ch;
  int64_t seq;
  sw_msg_t msg;  /* the request, whole: folded again after a conflict */
  uint32_t ops;  /* the caller's capability operations on the channel */
  char *caller, *actor;
  int tries;
  bool ann;                /* msg is an annotation of message seq (RSAN), stamped */
  sw_buf_t head;           /* the head sent, with the placeholder... */
  char ph[SW_SERIAL_LEN + 1]; /* ...this one */
  sw_publisher_t who;
  char conn_id[SW_CONN_ID_LEN + 1];
} sreq_t;

/* A channel's changes waiting, and the head its last change through this
 * node stored (message c_seq at version c_vseq): the next change of the
 * same message folds into it without reading it first (a stream of
 * appends costs one round trip each); if another version came in between,
 * the script refuses (CONFLICT) and the head is read. Kept until the
 * channel is freed. */
struct sw_vqueue {
  sreq_t *first, *last;
  int64_t c_seq, c_vseq;
  sw_buf_t c_head;
};

static void vqueue_free(sw_channel_t *ch) {
  if (!ch->ext || !ch->ext->vq) return;
  buf_free(&ch->ext->vq->c_head);
  free(ch->ext->vq);
  ch->ext->vq = NULL;
}

/* ch's queue, made on first use; NULL on OOM. */
static struct sw_vqueue *vqueue_get(sw_channel_t *ch) {
  sw_channel_ext_t *x = channel_ext(ch);
  if (x && !x->vq) x->vq = calloc(1, sizeof *x->vq);
  return x ? x->vq : NULL;
}

static void sreq_free(sreq_t *q) {
  msg_clear(&q->msg);
  buf_free(&q->head);
  free(q->caller);
  free(q->actor);
  if (q->who.rest_sock) sock_unref(q->who.rest_sock);
  free(q);
}

static void shared_start(sw_channel_t *ch);

/* Answers the first request of ch's queue and starts the next. */
static void shared_finish(sreq_t *q, const sw_error_t *err, int64_t vseq) {
  sw_channel_t *ch = q->ch;
  char serial[SW_SERIAL_LEN + 1] = "";
  if (!err) {
    serial_format(vseq, serial);
    metrics_inc(SW_M_MESSAGES_IN);
  } else {
    log_ev(SW_LOG_WARN, "channel.version_failed", q->conn_id[0] ? q->conn_id : NULL, ch->app->id, err->code,
           "version of %s failed: %s", ch->name, err->message);
  }
  char *serials[1] = {serial};
  sw_publisher_t who = q->who;
  who.conn_id = q->conn_id[0] ? q->conn_id : NULL;
  channel_notify(ch->srv, &who, ch->name, err, serials, 1);
  ch->ext->vq->first = q->next;
  if (!q->next) ch->ext->vq->last = NULL;
  sreq_free(q);
  ch->pending--;
  if (ch->ext->vq->first) shared_start(ch);
}

/* Keeps the head q stored as version vseq (the placeholder replaced by
 * its serial, as the script did) for the next change of the message. */
static void cache_head(sreq_t *q, int64_t vseq) {
  struct sw_vqueue *vq = q->ch->ext->vq;
  char serial[SW_SERIAL_LEN + 1];
  serial_format(vseq, serial);
  for (uint8_t *p = q->head.data, *end = p + q->head.len; p && (size_t)(end - p) >= SW_SERIAL_LEN;) {
    uint8_t *at = memmem(p, (size_t)(end - p), q->ph, SW_SERIAL_LEN);
    if (!at) break;
    memcpy(at, serial, SW_SERIAL_LEN);
    p = at + SW_SERIAL_LEN;
  }
  buf_free(&vq->c_head);
  vq->c_head = q->head;
  memset(&q->head, 0, sizeof q->head);
  vq->c_seq = q->seq;
  vq->c_vseq = vseq;
}

static void on_shared_stored(void *ud, const sw_error_t *err, bool conflict, int64_t vseq) {
  sreq_t *q = ud;
  struct sw_vqueue *vq = q->ch->ext->vq;
  if (!err) {
    if (q->head.len) cache_head(q, vseq); /* else (an annotation, no new summary) the head is as it was */
  } else if (vq->c_seq == q->seq) {
    vq->c_seq = vq->c_vseq = 0; /* not the head any more, or not known to be */
    buf_free(&vq->c_head);
  }
  if (conflict && ++q->tries < SHARED_TRIES) {
    shared_start(q->ch); /* read the head again */
    return;
  }
  shared_finish(q, err, vseq);
}

/* An annotation: its summary folded into the head (annotation_summarise,
 * as on one node); the head is sent only when the summary changed. */
static int shared_fold_annotation(sreq_t *q, sw_msg_t *head, int64_t vseq, sw_error_t *err) {
  sw_channel_t *ch = q->ch;
  sw_msg_t m = {0};
  sw_buf_t hb = {0}, eb = {0};
  int rc = -1;
  json_t *cur = head->annotations ? json_object_get(head->annotations, "summary") : NULL;
  json_t *sum = json_is_object(cur) ? json_deep_copy(cur) : json_object();
  if (!sum) return errors_set(err, SW_E_INTERNAL, "out of memory");
  int changed = annotation_summarise(sum, &q->msg, (size_t)ch->srv->cfg->limits.max_message_size, err);
  if (changed < 0) {
    json_decref(sum);
    return -1;
  }
  if (changed > 0) {
    json_t *a = json_pack("{s:o}", "summary", sum);
    sum = NULL;
    if (!a) return errors_set(err, SW_E_INTERNAL, "out of memory");
    json_decref(head->annotations);
    head->annotations = a;
    if (!head->serial) {
      char serial[SW_SERIAL_LEN + 1];
      serial_format(q->seq, serial);
      head->serial = strdup(serial);
    }
    if (!head->serial || codec_msg_to_blob(head, &hb)) {
      errors_set(err, SW_E_INTERNAL, "out of memory");
      goto out;
    }
  }
  json_decref(sum);
  if (app_random_id(q->ph, SW_SERIAL_LEN) || msg_copy(&m, &q->msg)) {
    errors_set(err, SW_E_INTERNAL, "out of memory");
    goto out;
  }
  free(m.serial);
  if (!(m.serial = strdup(q->ph)) || codec_msg_to_blob(&m, &eb)) {
    errors_set(err, SW_E_INTERNAL, "out of memory");
    goto out;
  }
  sw_bus_version_t v = {.seq = q->seq, .expect_vseq = vseq, .timestamp = m.timestamp ? m.timestamp : clock_now_ms(),
                        .event = eb.data, .event_len = eb.len, .head = hb.len ? hb.data : (const uint8_t *)"",
                        .head_len = hb.len, .placeholder = q->ph, .annotation = true};
  sw_bus_policy_t pol = {.keep_count = ch->ns->keep_count,
                         .max_age_ms = ch->ns->retention_ms > 0 ? ch->ns->retention_ms : 1};
  rc = bus_publish_version(ch->srv->bus, ch->app->id, ch->name, &v, &pol, on_shared_stored, q, err);
  if (rc == 0) {
    buf_free(&q->head);
    q->head = hb;
    memset(&hb, 0, sizeof hb);
  }
out:
  msg_clear(&m);
  buf_free(&hb);
  buf_free(&eb);
  return rc;
}

/* Folds q into the head read (blob, at its latest version vseq) and
 * publishes the version. 0, or -1 with err. */
static int shared_fold(sreq_t *q, const uint8_t *blob, size_t len, int64_t vseq, sw_error_t *err) {
  sw_channel_t *ch = q->ch;
  sw_msg_t head = {0}, event = {0}, m = {0};
  sw_buf_t hb = {0}, eb = {0};
  int rc = -1;
  if (codec_msg_from_blob(blob, len, &head)) {
    errors_set(err, SW_E_INTERNAL, "message %.32s is not readable", q->msg.serial);
    return -1;
  }
  if (q->ann) {
    rc = shared_fold_annotation(q, &head, vseq, err);
    goto out;
  }
  if (head.action == SW_MSG_DELETE) {
    errors_set(err, SW_E_BAD_REQUEST, "message %.32s was deleted", q->msg.serial);
    goto out;
  }
  /* A message is stored without its serial (redis_log.h): the head and
   * its events carry it. */
  if (!head.serial) {
    char serial[SW_SERIAL_LEN + 1];
    serial_format(q->seq, serial);
    if (!(head.serial = strdup(serial))) {
      errors_set(err, SW_E_INTERNAL, "out of memory");
      goto out;
    }
  }
  if (authorise(q->ops, q->caller, ch, &head, q->msg.action, err)) goto out;
  if (ch->ns->cancel_owner_only && q->msg.action != SW_MSG_DELETE &&
      !(q->ops & (1u << SW_OP_MESSAGE_UPDATE_ANY)) &&
      ((q->msg.name && strcmp(q->msg.name, "ai-cancel") == 0) || (head.name && strcmp(head.name, "ai-cancel") == 0))) {
    errors_set(err, SW_E_CAPABILITY_DENIED, "an ai-cancel cannot be created or changed by an update or append");
    goto out;
  }
  /* A placeholder of the serial's length: the bus puts the version's
   * serial there (redis_log.h). Random, so no message data contains it. */
  char *ph = q->ph;
  if (app_random_id(ph, SW_SERIAL_LEN) || msg_copy(&m, &q->msg)) {
    errors_set(err, SW_E_INTERNAL, "out of memory");
    goto out;
  }
  int64_t now = clock_now_ms();
  if (mutation_fold(&head, &event, &m, ph, now, q->actor, err)) goto out;
  if (codec_msg_to_blob(&head, &hb) || codec_msg_to_blob(&event, &eb)) {
    errors_set(err, SW_E_INTERNAL, "out of memory");
    goto out;
  }
  sw_bus_version_t v = {.seq = q->seq, .expect_vseq = vseq, .timestamp = now, .event = eb.data,
                        .event_len = eb.len, .head = hb.data, .head_len = hb.len, .placeholder = ph};
  sw_bus_policy_t pol = {.keep_count = ch->ns->keep_count,
                         .max_age_ms = ch->ns->retention_ms > 0 ? ch->ns->retention_ms : 1};
  rc = bus_publish_version(ch->srv->bus, ch->app->id, ch->name, &v, &pol, on_shared_stored, q, err);
  if (rc == 0) {
    buf_free(&q->head);
    q->head = hb; /* for cache_head */
    memset(&hb, 0, sizeof hb);
  }
out:
  msg_clear(&head);
  msg_clear(&event);
  msg_clear(&m);
  buf_free(&hb);
  buf_free(&eb);
  return rc;
}

static void on_shared_head(void *ud, const sw_error_t *err, sw_store_rows_t *rows, int64_t cursor, bool more) {
  (void)cursor, (void)more;
  sreq_t *q = ud;
  sw_error_t e = {0};
  if (err) {
    e = *err;
  } else if (!rows->n || rows->rows[0].seq != q->seq) {
    errors_set(&e, SW_E_NOT_FOUND, "no message with serial %.32s", q->msg.serial);
  } else if (shared_fold(q, rows->rows[0].blob, rows->rows[0].blob_len, rows->rows[0].vseq, &e) == 0) {
    store_rows_free(rows);
    return;
  }
  store_rows_free(rows);
  shared_finish(q, &e, -1);
}

/* Reads the head of the first request of ch's queue (or takes the one its
 * last change stored). */
static void shared_start(sw_channel_t *ch) {
  sreq_t *q = ch->ext->vq->first;
  struct sw_vqueue *vq = ch->ext->vq;
  if (q->tries == 0 && vq->c_seq == q->seq && vq->c_head.len) {
    sw_error_t e = {0};
    if (shared_fold(q, vq->c_head.data, vq->c_head.len, vq->c_vseq, &e) == 0) return;
    /* Refused on the head kept, which may be behind: judged on the one read. */
    vq->c_seq = vq->c_vseq = 0;
    buf_free(&vq->c_head);
  }
  sw_bus_range_t r = {.app_id = ch->app->id, .channel = ch->name, .after_seq = q->seq - 1, .before_seq = q->seq + 1,
                      .forwards = true, .limit = 1, .now = clock_now_ms()};
  sw_error_t err = {0};
  if (bus_read(ch->srv->bus, &r, on_shared_head, q, &err)) shared_finish(q, &err, -1);
}

static void shared_enqueue(sw_channel_t *ch, sreq_t *q) {
  ch->pending++; /* the channel stays while a change of it is under way */
  bool idle = !ch->ext->vq->first;
  if (ch->ext->vq->last) ch->ext->vq->last->next = q;
  else ch->ext->vq->first = q;
  ch->ext->vq->last = q;
  if (idle) shared_start(ch);
}

int mutation_annotate_shared(sw_channel_t *ch, sw_msg_t *ann, int64_t seq, const sw_publisher_t *who,
                             sw_error_t *err) {
  sreq_t *q = calloc(1, sizeof *q);
  if (!q || !vqueue_get(ch)) {
    free(q);
    msg_clear(ann);
    return errors_set(err, SW_E_INTERNAL, "out of memory");
  }
  q->ch = ch;
  q->seq = seq;
  q->ann = true;
  q->msg = *ann;
  memset(ann, 0, sizeof *ann);
  q->who = *who;
  q->who.principal = NULL;
  if (who->conn_id) snprintf(q->conn_id, sizeof q->conn_id, "%s", who->conn_id);
  if (who->rest_sock) sock_ref(who->rest_sock);
  shared_enqueue(ch, q);
  return 0;
}

void mutation_head_replace(sw_channel_t *ch, int64_t seq, const uint8_t *blob, size_t len) {
  sw_head_t *h = NULL;
  unsigned gen = 0;
  HASH_FIND(hh, channel_xr(ch)->heads, &seq, sizeof seq, h);
  if (h) {
    gen = h->gen;
    head_drop(ch, h);
  }
  if (len && (h = head_add(ch, seq, blob, len))) h->gen = gen;
}

static int shared_apply(sw_channel_t *ch, const sw_principal_t *p, const char *caller, sw_msg_t *msg,
                        const sw_publisher_t *who, sw_error_t *err) {
  int64_t seq;
  char *actor = NULL;
  if (msg->action != SW_MSG_UPDATE && msg->action != SW_MSG_DELETE && msg->action != SW_MSG_APPEND) {
    errors_set(err, SW_E_BAD_REQUEST, "message action %d cannot be published", msg->action);
    goto fail;
  }
  if (!msg->serial || serial_parse(msg->serial, strlen(msg->serial), &seq) || seq < 1) {
    errors_set(err, SW_E_NOT_FOUND, "no message with serial %.32s", msg->serial ? msg->serial : "(none)");
    goto fail;
  }
  const char *op_client_id = json_string_value(json_object_get(msg->version, "clientId"));
  if (op_client_id && !(actor = strdup(op_client_id))) goto oom;
  if (principal_check_message_client_id(p, caller, &actor, err)) goto fail;
  sreq_t *q = calloc(1, sizeof *q);
  if (!q || !vqueue_get(ch) || (caller && !(q->caller = strdup(caller)))) {
    if (q) free(q->caller);
    free(q);
    goto oom;
  }
  q->ch = ch;
  q->seq = seq;
  q->msg = *msg;
  memset(msg, 0, sizeof *msg);
  q->ops = cap_ops_for_channel(p->cap, ch->name);
  q->actor = actor;
  q->who = *who;
  if (who->conn_id) snprintf(q->conn_id, sizeof q->conn_id, "%s", who->conn_id);
  if (who->rest_sock) sock_ref(who->rest_sock);
  shared_enqueue(ch, q);
  return 0;
oom:
  errors_set(err, SW_E_INTERNAL, "out of memory");
fail:
  free(actor);
  msg_clear(msg);
  return -1;
}

void mutation_bus_deliver(void *ud, const char *app_id, const char *channel, int64_t vseq, int64_t seq, int64_t ts,
                          const uint8_t *event, size_t event_len, const uint8_t *head, size_t head_len) {
  (void)ts;
  sw_server_t *srv = ud;
  sw_channel_t *ch = channel_find_id(srv, app_id, channel);
  if (!ch || vseq <= ch->durable_seq) return;
  ch->durable_seq = vseq;
  if (ch->last_seq < vseq) ch->last_seq = vseq;
  version_t *v = calloc(1, sizeof *v);
  if (!v) return;
  if (codec_msg_from_blob(event, event_len, &v->event)) {
    log_warn("channel %s: version %lld is not readable; not delivered", ch->name, (long long)vseq);
    free(v);
    return;
  }
  v->ch = ch;
  v->seq = seq;
  v->vseq = vseq;
  v->append = v->event.action == SW_MSG_APPEND;
  serial_format(vseq, v->serial);
  if (v->event.connection_id) snprintf(v->conn_id, sizeof v->conn_id, "%s", v->event.connection_id);
  /* Appends held for their rollup window go out with the head they
   * extended, before an update or delete replaces it. */
  if (!v->append) rollup_flush(ch);
  /* The head in memory is the one that came with the version (none after
   * a gap: read from the log, a record has no head). gen goes on counting
   * updates and deletes, as rollup's held appends expect. */
  sw_head_t *h = NULL;
  unsigned gen = 0;
  HASH_FIND(hh, channel_xr(ch)->heads, &seq, sizeof seq, h);
  if (h) {
    gen = h->gen;
    head_drop(ch, h);
  }
  h = head_len ? head_add(ch, seq, head, head_len) : NULL;
  if (h) h->gen = gen + !v->append;
  v->data_len = h ? h->msg.data.len : 0;
  v->gen = h ? h->gen : 0;
  broadcast(v, h);
  version_free(v);
}

int mutation_apply(sw_channel_t *ch, const sw_principal_t *p, const char *caller_client_id, sw_msg_t *msg,
                   const sw_publisher_t *who, sw_error_t *err) {
  version_t *v = NULL;
  char *actor = NULL;
  sw_buf_t blobs = {0};
  int rc = -1;
  int64_t seq;
  if (!ch->mutable_messages) {
    errors_set(err, SW_E_MUTABLE_NOT_ENABLED,
               "message updates, deletes and appends are not enabled on this channel (mutableMessages)");
    goto out;
  }
  if (ch->srv->bus && bus_has_versions(ch->srv->bus)) return shared_apply(ch, p, caller_client_id, msg, who, err);
  /* A shared bus without versions: refused rather than kept on one node,
   * where the others would never see them. */
  if (ch->srv->bus && bus_shared(ch->srv->bus)) {
    errors_set(err, SW_E_MUTABLE_NOT_ENABLED,
               "message updates, deletes and appends are not available on a cluster (--redis) yet");
    goto out;
  }
  if (msg->action != SW_MSG_UPDATE && msg->action != SW_MSG_DELETE && msg->action != SW_MSG_APPEND) {
    errors_set(err, SW_E_BAD_REQUEST, "message action %d cannot be published", msg->action);
    goto out;
  }
  if (!msg->serial || serial_parse(msg->serial, strlen(msg->serial), &seq) || seq < 1 || seq > ch->last_seq) {
    errors_set(err, SW_E_NOT_FOUND, "no message with serial %.32s", msg->serial ? msg->serial : "(none)");
    goto out;
  }
  sw_head_t *h = mutation_head(ch, seq);
  if (!h) {
    errors_set(err, SW_E_NOT_FOUND, "no message with serial %.32s", msg->serial);
    goto out;
  }
  if (h->msg.action == SW_MSG_DELETE) {
    errors_set(err, SW_E_BAD_REQUEST, "message %.32s was deleted", msg->serial);
    goto out;
  }
  if (authorise(cap_ops_for_channel(p->cap, ch->name), caller_client_id, ch, &h->msg, msg->action, err)) goto out;
  /* cancelByTurnOwnerOnly: an update or append cannot make, or change, an ai-cancel. */
  if (ch->ns->cancel_owner_only && msg->action != SW_MSG_DELETE &&
      !cap_allows(p->cap, ch->name, SW_OP_MESSAGE_UPDATE_ANY) &&
      ((msg->name && strcmp(msg->name, "ai-cancel") == 0) || (h->msg.name && strcmp(h->msg.name, "ai-cancel") == 0))) {
    errors_set(err, SW_E_CAPABILITY_DENIED, "an ai-cancel cannot be created or changed by an update or append");
    goto out;
  }

  /* TM2s3: the version's clientId is the operation's (ably-js sends the
   * MessageOperation as the request's version), checked like a message's
   * clientId: an identified caller's own (or none given: its own), any for
   * a key or a wildcard client, none for an anonymous token (40012). */
  const char *op_client_id = json_string_value(json_object_get(msg->version, "clientId"));
  if (op_client_id && !(actor = strdup(op_client_id))) goto oom;
  if (principal_check_message_client_id(p, caller_client_id, &actor, err)) goto out;

  v = zalloc(1, sizeof *v); /* not calloc: see util/zalloc.h */
  if (!v) goto oom;
  v->ch = ch;
  v->seq = seq;
  v->who = *who;
  if (who->conn_id) /* zeroed: the copy stays terminated (snprintf was 600 instructions) */
    memcpy(v->conn_id, who->conn_id, strnlen(who->conn_id, sizeof v->conn_id - 1));
  if (who->rest_sock) sock_ref(who->rest_sock);
  int64_t now = clock_now_ms();
  /* RSL14: the first change of a message keeps its original, the
   * message.create, as a version of its own (Ably lists it among the
   * versions), with a serial of its own just before the change's. Heads
   * are message.update or message.delete once changed. */
  sw_store_rec_t recs[2];
  size_t n_recs = 0, orig_len = 0;
  if (h->msg.action <= SW_MSG_CREATE) {
    sw_msg_t orig = h->msg; /* a view: nothing is freed */
    orig.action = SW_MSG_CREATE;
    if (codec_msg_to_blob(&orig, &blobs)) goto oom;
    orig_len = blobs.len;
    recs[n_recs++] = (sw_store_rec_t){.app_id = ch->app->id,
                                      .channel = ch->name,
                                      .seq = seq,
                                      .timestamp = h->msg.timestamp,
                                      .op = SW_STORE_VERSION,
                                      .vseq = ch->last_seq + 1};
  }
  v->vseq = ch->last_seq + 1 + (int64_t)n_recs;
  serial_format(v->vseq, v->serial);
  v->append = msg->action == SW_MSG_APPEND;
  /* An update or delete replaces what appends still in flight extended:
   * they keep a copy of the head they made, for late attachers. */
  if (!v->append && snapshot_inflight(h)) goto oom;
  /* Appends held for their rollup window go out before the head changes
   * (they are delivered with the head just after them). */
  if (!v->append) rollup_flush(ch);
  /* The head in memory is changed in place and runs ahead of storage until
   * the version is durable; if the version cannot be stored it is dropped
   * (on_stored, or below). */
  if (mutation_fold_spare(&h->msg, &h->spare_version, &v->event, msg, v->serial, now, actor, err)) {
    if (err->code == SW_E_INTERNAL) head_drop(ch, h); /* it may be half changed */
    goto out;
  }
  sw_store_rec_t *rec = &recs[n_recs];
  *rec = (sw_store_rec_t){.app_id = ch->app->id, .channel = ch->name, .seq = seq, .timestamp = now, .vseq = v->vseq};
  /* Blob offsets: the buffer may move as it grows, pointers are set last. */
  size_t head_off = blobs.len, head_len = 0;
  if (v->append) {
    /* Only the fragment is written: the store folds it into the head. */
    v->data_len = h->msg.data.len;
    v->gen = h->gen;
    size_t data_off;
    if (codec_msg_to_blob_at(&v->event, &blobs, &data_off)) goto oom_drop;
    rec->op = SW_STORE_APPEND;
    rec->fold_hint = mutation_frag_hint(data_off, v->event.data.len, v->event.data.kind);
  } else {
    h->gen++;
    if (codec_msg_to_blob(&h->msg, &blobs)) goto oom_drop;
    head_len = blobs.len - head_off;
    if (codec_msg_to_blob(&v->event, &blobs)) goto oom_drop;
    rec->op = SW_STORE_VERSION;
    rec->blob = blobs.data + head_off;
    rec->blob_len = head_len;
  }
  rec->version_blob = blobs.data + head_off + head_len;
  rec->version_blob_len = blobs.len - head_off - head_len;
  if (n_recs) {
    /* The original is both the head (unchanged) and the version event. */
    recs[0].blob = recs[0].version_blob = blobs.data;
    recs[0].blob_len = recs[0].version_blob_len = orig_len;
  }
  n_recs++;
  ch->pending++;
  if (store_submit(ch->srv->store, recs, n_recs, on_stored, v)) {
    ch->pending--;
    errors_set(err, SW_E_INTERNAL, "storage unavailable");
    head_drop(ch, h);
    goto out;
  }
  ch->last_seq = v->vseq;
  h->pending++;
  v->ev_off = (size_t)(rec->version_blob - blobs.data);
  v->ev_len = rec->version_blob_len;
  v->blobs = blobs; /* kept for fanout (the store took a copy) */
  blobs = (sw_buf_t){0};
  v->next_inflight = h->inflight;
  h->inflight = v;
  v = NULL;
  rc = 0;
  goto out;
oom_drop:
  head_drop(ch, h);
oom:
  errors_set(err, SW_E_INTERNAL, "out of memory");
out:
  if (v) version_free(v);
  free(actor);
  msg_clear(msg);
  buf_free(&blobs);
  return rc;
}

/* The fold by splicing bytes (proto/blob_append.h): the head's fields
 * copied as they are, its data followed by the events' fragments, the last
 * event's extras and version, action update. The memory backend folds each
 * append as it comes, and decoding and encoding the head was ~22k of the
 * store thread's ~26k instructions per append (bench ai, --memory). 1
 * (nothing written) when a blob is not in the exact form the splice
 * reproduces, or the fold would be refused: mutation_fold_blobs_decoded
 * then gives the result, or the error. */
static int fold_splice(const uint8_t *head, size_t head_len, const sw_store_event_t *events, size_t n,
                       sw_buf_t *out) {
  blob_fields_t h, last;
  if (!n || blob_scan(head, head_len, &h) || blob_scan(events[n - 1].blob, events[n - 1].len, &last) ||
      last.action != SW_MSG_APPEND)
    return 1;
  sw_data_t few[16], *frags = n <= 16 ? few : malloc(n * sizeof *frags);
  if (!frags) return -ENOMEM;
  sw_data_kind_t kind = h.kind;
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    sw_data_t f = {0}; /* bytes borrowed from the events */
    if (i + 1 == n) {
      f = (sw_data_t){.kind = last.kind, .bytes = (uint8_t *)last.data.p, .len = last.data.len};
    } else if (!frag_from_hint(&events[i], &f)) {
      int action;
      const uint8_t *p = NULL;
      if (codec_blob_data(events[i].blob, events[i].len, &action, &f.kind, &p, &f.len) || action != SW_MSG_APPEND)
        rc = 1;
      f.bytes = (uint8_t *)p;
    }
    if (f.kind == SW_DATA_NONE) f = (sw_data_t){0}; /* as append_data: nothing to add */
    else if (kind != SW_DATA_NONE && kind != f.kind) rc = 1;
    else kind = f.kind;
    frags[i] = f;
  }
  static const uint8_t update = SW_MSG_UPDATE; /* a positive fixint */
  blob_span_t repl[BLOB_NFIELDS] = {[BLOB_F_ACTION] = {.p = &update, .len = 1}};
  if (last.val[BLOB_F_EXTRAS].p) repl[BLOB_F_EXTRAS] = last.val[BLOB_F_EXTRAS];
  if (last.val[BLOB_F_VERSION].p) repl[BLOB_F_VERSION] = last.val[BLOB_F_VERSION];
  size_t start = out->len;
  if (rc == 0 && blob_write(&h, kind, frags, n, repl, out)) {
    out->len = start; /* the decoding fold says what is wrong */
    rc = 1;
  }
  if (frags != few) free(frags);
  return rc;
}

int mutation_fold_blobs(const uint8_t *head, size_t head_len, const sw_store_event_t *events, size_t n,
                        sw_buf_t *out) {
  int rc = fold_splice(head, head_len, events, n, out);
  return rc <= 0 ? rc : mutation_fold_blobs_decoded(head, head_len, events, n, out);
}

int mutation_fold_blobs_decoded(const uint8_t *head, size_t head_len, const sw_store_event_t *events, size_t n,
                                sw_buf_t *out) {
  sw_msg_t h, ev;
  if (codec_msg_from_blob(head, head_len, &h)) return -EINVAL;
  int rc = 0;
  sw_error_t err = {0};
  /* Every event carries the head's extras and version just after it, so
   * only the last one is decoded whole; the others give only their data:
   * where the hint says, or read in place (a full decode allocates each
   * string and JSON object: it was most of a fold's cost). */
  for (size_t i = 0; i + 1 < n && rc == 0; i++) {
    sw_data_t frag = {0}; /* bytes borrowed: append_data only reads them */
    if (!frag_from_hint(&events[i], &frag)) {
      int action;
      const uint8_t *p;
      if (codec_blob_data(events[i].blob, events[i].len, &action, &frag.kind, &p, &frag.len) ||
          action != SW_MSG_APPEND) {
        rc = -EINVAL;
        break;
      }
      frag.bytes = (uint8_t *)p;
    }
    if (append_data(&h.data, &frag, &err)) rc = -EINVAL;
  }
  if (rc == 0 && n) {
    if (codec_msg_from_blob(events[n - 1].blob, events[n - 1].len, &ev)) {
      rc = -EINVAL;
    } else {
      if (ev.action != SW_MSG_APPEND || append_data(&h.data, &ev.data, &err)) rc = -EINVAL;
      if (rc == 0 && ev.extras) {
        json_decref(h.extras);
        h.extras = ev.extras;
        ev.extras = NULL;
      }
      if (rc == 0 && ev.version) {
        json_decref(h.version);
        h.version = ev.version;
        ev.version = NULL;
      }
      msg_clear(&ev);
    }
  }
  if (n) h.action = SW_MSG_UPDATE;
  if (rc == 0 && codec_msg_to_blob(&h, out)) rc = -ENOMEM;
  msg_clear(&h);
  return rc;
}
