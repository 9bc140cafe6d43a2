#include "core/channel.h"

#include <stdlib.h>
#include <string.h>

#include "core/ai_turns.h"
#include "core/conn.h"
#include "core/mutation.h"
#include "core/presence.h"
#include "core/serial.h"
#include "core/server.h"
#include "core/sock.h"
#include "metrics/metrics.h"
#include "proto/codec.h"
#include "rest/rest.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"

/* Idempotent publishing window (RSL1k): Ably dedupes ids for 2 minutes. */
#define IDEMPOTENCY_WINDOW_MS (2 * 60 * 1000)
/* Replay is read from storage in pages of this many messages. */
#define REPLAY_PAGE 500

sw_channel_t *channel_find(sw_server_t *srv, const sw_app_t *app, const char *name) {
  size_t alen = strlen(app->id), nlen = strlen(name);
  char stackkey[512];
  char *key = alen + nlen + 1 <= sizeof stackkey ? stackkey : malloc(alen + nlen + 1);
  if (!key) return NULL;
  memcpy(key, app->id, alen + 1);
  memcpy(key + alen + 1, name, nlen);
  sw_channel_t *ch = NULL;
  HASH_FIND(hh, srv->channels, key, alen + 1 + nlen, ch);
  if (key != stackkey) free(key);
  return ch;
}

sw_channel_t *channel_get(sw_server_t *srv, sw_app_t *app, const char *name) {
  sw_channel_t *ch = channel_find(srv, app, name);
  if (ch) return ch;
  size_t alen = strlen(app->id), nlen = strlen(name);
  ch = calloc(1, sizeof *ch);
  if (!ch) return NULL;
  ch->hkey_len = alen + 1 + nlen;
  ch->hkey = malloc(ch->hkey_len + 1);
  if (!ch->hkey) {
    free(ch);
    return NULL;
  }
  memcpy(ch->hkey, app->id, alen + 1);
  memcpy(ch->hkey + alen + 1, name, nlen + 1);
  ch->name = ch->hkey + alen + 1;
  ch->app = app;
  ch->srv = srv;
  ch->ns = app_namespace_for(app, ch->name);
  int64_t last = -1;
  if (store_last_seq(srv->store, app->id, ch->name, &last)) last = -1;
  ch->last_seq = ch->durable_seq = last < 0 ? 0 : last;
  ch->presence_seq = -1;
  HASH_ADD_KEYPTR(hh, srv->channels, ch->hkey, ch->hkey_len, ch);
  presence_load_fixtures(ch);
  return ch;
}

static void channel_free(sw_server_t *srv, sw_channel_t *ch) {
  sw_recent_id_t *r, *tmp;
  HASH_ITER(hh, ch->recent_ids, r, tmp) {
    HASH_DEL(ch->recent_ids, r);
    free(r->id);
    free(r);
  }
  presence_free(ch);
  mutation_channel_free(ch);
  ai_turns_free(ch);
  HASH_DEL(srv->channels, ch);
  free(ch->hkey);
  free(ch);
}

/* One publish on its way through storage. */
typedef struct pub {
  sw_server_t *srv;
  sw_channel_t *ch;
  sw_msg_t *msgs; /* owned */
  size_t n;
  bool *dup;      /* msgs[i] was a duplicate id: not stored, not delivered */
  char **serials; /* msgs[i]'s serial (borrowed from msgs or recent ids) */
  int64_t last_seq;
  sw_publisher_t who;
  char conn_id[SW_CONN_ID_LEN + 1];
} pub_t;

static void pub_free(pub_t *p) {
  for (size_t i = 0; i < p->n; i++) msg_clear(&p->msgs[i]);
  free(p->msgs);
  free(p->dup);
  free(p->serials);
  if (p->who.rest_sock) sock_unref(p->who.rest_sock);
  free(p);
}

void channel_broadcast(sw_channel_t *ch, const sw_pmsg_t *m, uint32_t mode_mask, const char *skip_conn_id) {
  /* Encoded lazily, once per wire format, for every subscriber using it. */
  sw_frame_t *frames[2] = {NULL, NULL};
  for (sw_attach_t *a = ch->subs; a; a = a->next) {
    sw_conn_t *c = a->conn;
    if (!a->delivering || !(a->modes & mode_mask)) continue;
    if (skip_conn_id && strcmp(c->id, skip_conn_id) == 0) continue;
    if (m->action == SW_ACTION_MESSAGE) metrics_add(SW_M_MESSAGES_OUT, m->n_messages);
    if (a->wire_name) {
      /* Attached under another spelling ([?params]name): its own frame. */
      sw_pmsg_t own = *m;
      own.channel = a->wire_name;
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

static void fanout(sw_channel_t *ch, pub_t *p) {
  sw_msg_t *live = malloc(p->n * sizeof *live);
  if (!live) return;
  size_t n = 0;
  for (size_t i = 0; i < p->n; i++)
    if (!p->dup[i]) live[n++] = p->msgs[i]; /* shallow: p still owns */
  if (n == 0) {
    free(live);
    return;
  }
  metrics_add(SW_M_MESSAGES_IN, n);
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
    snprintf(pid, sizeof pid, "%s:%lld", p->conn_id, (long long)p->who.msg_serial);
    m.id = pid;
    m.connection_id = p->conn_id;
  }
  /* echo=false (RTC1a): the publisher's own connection is skipped. */
  const char *skip = NULL;
  if (p->conn_id[0]) {
    sw_conn_t *pc = conn_find(ch->srv, p->conn_id);
    if (pc && !pc->echo) skip = p->conn_id;
  }
  channel_broadcast(ch, &m, SW_MODE_SUBSCRIBE, skip);
  free(live);
}

void channel_notify(sw_server_t *srv, const sw_publisher_t *who, const char *channel, const sw_error_t *err,
                    char **serials, size_t n) {
  if (who->rest_sock) {
    rest_publish_done(who->rest_sock, (sw_format_t)who->rest_format, who->rest_keep_alive, who->rest_version,
                      channel, err, serials, n);
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

static void on_stored(void *ud, int status) {
  pub_t *p = ud;
  sw_channel_t *ch = p->ch;
  ch->pending--;
  if (status == 0) {
    if (p->last_seq > ch->durable_seq) ch->durable_seq = p->last_seq;
    fanout(ch, p);
    notify(p, NULL);
  } else {
    sw_error_t err;
    errors_set(&err, SW_E_INTERNAL, "message could not be stored");
    log_error("storage failed for channel %s: %d", ch->name, status);
    notify(p, &err);
  }
  pub_free(p);
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

int channel_publish(sw_channel_t *ch, sw_msg_t *msgs, size_t n, const sw_publisher_t *who,
                    sw_error_t *err) {
  sw_server_t *srv;
  pub_t *p = calloc(1, sizeof *p);
  sw_store_rec_t *recs = NULL;
  sw_buf_t blobs = {0};
  size_t *offs = NULL;
  if (!p) goto oom;
  if (!ch->srv->store) {
    free(p);
    p = NULL;
    errors_set(err, SW_E_INTERNAL, "server shutting down");
    goto fail;
  }
  p->msgs = msgs;
  p->n = n;
  msgs = NULL; /* owned by p from here */
  p->who = *who;
  if (who->conn_id) snprintf(p->conn_id, sizeof p->conn_id, "%s", who->conn_id);
  if (who->rest_sock) sock_ref(who->rest_sock);
  p->ch = ch;
  p->dup = calloc(n, sizeof *p->dup);
  p->serials = calloc(n, sizeof *p->serials);
  recs = calloc(n, sizeof *recs);
  offs = calloc(n + 1, sizeof *offs);
  if (!p->dup || !p->serials || !recs || !offs) goto oom;

  srv = p->srv = ch->srv;

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
  int64_t now = clock_now_ms();
  size_t nrec = 0;
  int64_t first_seq = ch->last_seq + 1;
  /* Ids the server makes itself (connectionId:msgSerial:index, TM2a; or a
   * random base for REST) are unique by construction: only ids the client
   * chose enter the idempotency window. */
  char base[SW_CONN_ID_LEN + 32];
  if (p->conn_id[0]) snprintf(base, sizeof base, "%s:%lld", p->conn_id, (long long)who->msg_serial);
  else app_random_id(base, 12);
  for (size_t i = 0; i < n; i++) {
    sw_msg_t *m = &p->msgs[i];
    bool chosen = m->id != NULL;
    if (!chosen) {
      char id[SW_CONN_ID_LEN + 64];
      snprintf(id, sizeof id, "%s:%zu", base, i);
      if (!(m->id = strdup(id))) goto oom;
    }
    sw_recent_id_t *r = chosen ? recent_find(ch, m->id) : NULL;
    bool dup_in_batch = false;
    for (size_t j = 0; chosen && j < i && !dup_in_batch; j++)
      dup_in_batch = !p->dup[j] && p->msgs[j].id && strcmp(p->msgs[j].id, m->id) == 0;
    if (r || dup_in_batch) {
      /* RSL1k: an id seen within the window is acknowledged, not republished. */
      p->dup[i] = true;
      continue;
    }
    char serial[SW_SERIAL_LEN + 1];
    int64_t seq = ++ch->last_seq;
    serial_format(seq, serial);
    free(m->serial);
    m->serial = strdup(serial);
    if (!m->serial) goto oom;
    p->serials[i] = m->serial;
    if (chosen) recent_add(ch, m->id, seq, now);
    offs[nrec] = blobs.len;
    if (codec_msg_to_blob(m, &blobs)) goto oom;
    recs[nrec] = (sw_store_rec_t){
        .app_id = ch->app->id,
        .channel = ch->name,
        .seq = seq,
        .timestamp = m->timestamp,
        .msg_id = m->id,
        .expires_at = now + ch->ns->retention_ms,
        .keep_count = ch->ns->keep_count,
    };
    nrec++;
  }
  offs[nrec] = blobs.len;
  for (size_t i = 0; i < nrec; i++) {
    recs[i].blob = blobs.data + offs[i];
    recs[i].blob_len = offs[i + 1] - offs[i];
  }
  p->last_seq = ch->last_seq;
  /* Duplicates keep the serial their first publish got, if still known. */
  for (size_t i = 0; i < n; i++) {
    if (!p->dup[i]) continue;
    sw_recent_id_t *r = p->msgs[i].id ? recent_find(ch, p->msgs[i].id) : NULL;
    if (r) {
      char serial[SW_SERIAL_LEN + 1];
      serial_format(r->seq, serial);
      free(p->msgs[i].serial);
      p->msgs[i].serial = strdup(serial);
      p->serials[i] = p->msgs[i].serial;
    }
  }
  /* Every publish goes through the store, even one of duplicates only, so
   * completions (and so ACKs) keep submission order. */
  ch->pending++;
  if (store_submit(srv->store, recs, nrec, on_stored, p)) {
    ch->pending--;
    if (ch->last_seq == p->last_seq) ch->last_seq = first_seq - 1;
    errors_set(err, SW_E_INTERNAL, "storage unavailable");
    pub_free(p);
    p = NULL;
    goto fail;
  }
  free(recs);
  free(offs);
  buf_free(&blobs);
  return 0;
oom:
  errors_set(err, SW_E_INTERNAL, "out of memory");
  if (p) pub_free(p);
fail:
  if (msgs) {
    for (size_t i = 0; i < n; i++) msg_clear(&msgs[i]);
    free(msgs);
  }
  free(recs);
  free(offs);
  buf_free(&blobs);
  return -1;
}

/* Sends stored messages to a newly attached client, one MESSAGE each:
 *  - resume (after_seq >= 0): every head whose latest version is after
 *    after_seq, in version order, each with its version's serial as the
 *    channelSerial (RTL15b), so the client continues exactly there;
 *  - rewind: the last N messages, or those since start_ms, by serial.
 * Only what is durable (<= durable_seq) is read; live delivery continues
 * after it. Sets a->from_seq: the seq after which the client holds every
 * message (mutation.c converts appends to older ones into full updates). */
static void replay(sw_channel_t *ch, sw_attach_t *a, int64_t after_seq, int64_t start_ms, int64_t last_n) {
  sw_conn_t *c = a->conn;
  sw_store_t *st = c->srv->store;
  int64_t now = clock_now_ms();
  bool resume = after_seq >= 0;
  if (resume) a->from_seq = after_seq;
  char attach_serial[SW_SERIAL_LEN + 1];
  serial_format(ch->durable_seq, attach_serial);
  if (last_n > 0) {
    /* Find the seq before the last N stored messages. */
    sw_history_q_t q = {.app_id = ch->app->id, .channel = ch->name, .after_seq = -1,
                        .before_seq = ch->durable_seq + 1, .start = 0, .end = INT64_MAX,
                        .forwards = false, .limit = (size_t)last_n, .now = now};
    sw_store_rows_t rows = {0};
    if (store_history(st, &q, &rows) == 0 && rows.n) after_seq = rows.rows[rows.n - 1].seq - 1;
    else after_seq = ch->durable_seq;
    store_rows_free(&rows);
  }
  bool first = true;
  for (;;) {
    sw_history_q_t q = {.app_id = ch->app->id, .channel = ch->name, .after_seq = after_seq,
                        .before_seq = ch->durable_seq + 1, .start = start_ms, .end = INT64_MAX,
                        .forwards = true, .limit = REPLAY_PAGE, .now = now, .by_vseq = resume};
    sw_store_rows_t rows = {0};
    if (store_history(st, &q, &rows)) break;
    for (size_t i = 0; i < rows.n && c->sock; i++) {
      const sw_store_row_t *row = &rows.rows[i];
      sw_msg_t msg = {0};
      after_seq = resume ? row->vseq : row->seq;
      if (!resume && first) a->from_seq = row->seq - 1;
      first = false;
      if (codec_msg_from_blob(row->blob, row->blob_len, &msg)) continue;
      /* A head is the message in full. */
      mutation_mark_full(a, row->seq);
      if (c->echo || !msg.connection_id || strcmp(msg.connection_id, c->id) != 0) {
        char vserial[SW_SERIAL_LEN + 1];
        serial_format(row->vseq, vserial);
        sw_pmsg_t m = {.action = SW_ACTION_MESSAGE,
                       .channel = a->wire_name ? a->wire_name : (char *)ch->name,
                       .channel_serial = resume ? vserial : attach_serial,
                       .timestamp = msg.timestamp,
                       .connection_id = msg.connection_id,
                       .messages = &msg,
                       .n_messages = 1};
        conn_send_pmsg(c, &m);
        metrics_inc(SW_M_MESSAGES_OUT);
      }
      msg_clear(&msg);
    }
    size_t got = rows.n;
    store_rows_free(&rows);
    if (got < REPLAY_PAGE || !c->sock) break;
  }
}

int channel_attach(sw_channel_t *ch, sw_conn_t *c, const sw_attach_req_t *req) {
  sw_attach_t *a = NULL;
  HASH_FIND_PTR(c->attachments, &ch, a);
  if (!a) {
    a = calloc(1, sizeof *a);
    if (!a) return -1;
    a->conn = c;
    a->ch = ch;
    HASH_ADD_PTR(c->attachments, ch, a);
    a->next = ch->subs;
    if (ch->subs) ch->subs->prev = a;
    ch->subs = a;
    ch->n_subs++;
  }
  free(a->wire_name);
  a->wire_name = req->channel_name && strcmp(req->channel_name, ch->name) ? strdup(req->channel_name) : NULL;
  a->modes = req->modes;

  int64_t after = -1, start_ms = 0, last_n = 0;
  bool resumed = false, replaying = false;
  int64_t seq;
  if (req->channel_serial && serial_parse(req->channel_serial, strlen(req->channel_serial), &seq) == 0 &&
      seq <= ch->durable_seq) {
    /* RTL4c1: continue after the last message the client saw. */
    after = seq;
    resumed = replaying = true;
  } else if (req->rewind_count > 0) {
    last_n = req->rewind_count;
    replaying = true;
  } else if (req->rewind_ms > 0) {
    start_ms = clock_now_ms() - req->rewind_ms;
    replaying = true;
  }

  char serial[SW_SERIAL_LEN + 1];
  serial_format(ch->durable_seq, serial);
  sw_pmsg_t m = {.action = SW_ACTION_ATTACHED,
                 .channel = (char *)(req->channel_name ? req->channel_name : ch->name),
                 .flags = (int64_t)a->modes | (resumed ? SW_FLAG_RESUMED : 0) |
                          (ch->n_members ? SW_FLAG_HAS_PRESENCE : 0),
                 .has_flags = true,
                 .channel_serial = serial,
                 .params = req->params};
  conn_send_pmsg(c, &m);
  a->delivering = true;
  a->from_seq = ch->durable_seq;
  mutation_attach_free(a);
  if (a->modes & SW_MODE_PRESENCE_SUBSCRIBE) presence_sync(ch, a);
  if (replaying && (a->modes & SW_MODE_SUBSCRIBE)) replay(ch, a, after, start_ms, last_n);
  return 0;
}

void channel_detach(sw_attach_t *a) {
  sw_channel_t *ch = a->ch;
  /* Detaching leaves presence (RTP5a); so does the end of a connection. */
  presence_leave_conn(ch, a->conn->id);
  HASH_DEL(a->conn->attachments, a);
  if (a->prev) a->prev->next = a->next;
  else ch->subs = a->next;
  if (a->next) a->next->prev = a->prev;
  ch->n_subs--;
  mutation_attach_free(a);
  free(a->wire_name);
  free(a);
}

void channel_tick(sw_server_t *srv, int64_t now_ms) {
  sw_channel_t *ch, *tmp;
  HASH_ITER(hh, srv->channels, ch, tmp) {
    /* Ids are added in time order, and uthash iterates in insertion order. */
    sw_recent_id_t *r, *rtmp;
    HASH_ITER(hh, ch->recent_ids, r, rtmp) {
      if (r->expires_at > now_ms) break;
      HASH_DEL(ch->recent_ids, r);
      free(r->id);
      free(r);
    }
    /* An idle channel is rebuilt from storage when next used. */
    if (!ch->subs && !ch->recent_ids && !ch->pending && !ch->n_members) channel_free(srv, ch);
  }
}

void channels_free(sw_server_t *srv) {
  sw_channel_t *ch, *tmp;
  HASH_ITER(hh, srv->channels, ch, tmp) channel_free(srv, ch);
}
