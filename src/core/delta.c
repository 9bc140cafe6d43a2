/* delta.c: delta compression for delta=vcdiff subscribers (see delta.h). */
#include "core/delta.h"

#include <stdlib.h>
#include <string.h>

#include "core/channel.h"
#include "core/conn.h"
#include "core/serial.h"
#include "core/server.h"
#include "proto/vcdiff.h"

/* What a delta message replaces in its message: owned here. */
typedef struct {
  uint8_t *bytes;
  char *encoding;
  json_t *extras;
} replaced_t;

struct sw_delta {
  /* The base: the data of the channel's last message fanned out, as its
   * subscribers hold it, while it has delta subscribers. */
  int64_t base_seq; /* 0: none */
  char *base_id;
  uint8_t *base;
  size_t base_len;
  /* The fan-out in progress, between delta_begin and delta_end. */
  const sw_pmsg_t *cur;
  int64_t cur_seq;   /* the seq of cur's last message */
  bool computed;     /* dm is built */
  bool any;          /* dm holds at least one delta */
  bool subscribers;  /* a delta subscriber was sent cur */
  sw_pmsg_t dm;      /* cur with its deltas; messages are shallow copies but for `own` */
  replaced_t *own;
  sw_frame_t *frames[2]; /* dm per wire format */
};

int delta_attach(sw_attach_t *a, const json_t *params) {
  const char *v = json_string_value(json_object_get(params, "delta"));
  /* A derived channel's messages are its base's, filtered: a subscriber
   * does not get all of them, so it holds no predictable predecessor. */
  a->delta = v && strcmp(v, "vcdiff") == 0 && !channel_base(a->ch);
  if (a->side) a->side->delta_seq = 0;
  sw_channel_ext_t *x = a->delta ? channel_ext(a->ch) : NULL;
  /* A delta subscriber keeps its side block (delta_seq) while a->delta. */
  if (a->delta && (!x || (!x->delta && !(x->delta = calloc(1, sizeof *x->delta))) || !attach_side(a))) {
    a->delta = false;
    attach_side_trim(a);
    return -1;
  }
  attach_side_trim(a);
  return 0;
}

/* Data a delta can be made from and to: bytes or a string of at most
 * maxMessageSize, with an id to name it by. Not data whose encoding ends in
 * "base64" (a string a client base64-decodes: its base would be the decoded
 * bytes). */
static bool usable(const sw_msg_t *m, size_t max) {
  if (m->data.kind != SW_DATA_STRING && m->data.kind != SW_DATA_BINARY) return false;
  if (m->data.len > max || !m->id) return false;
  size_t n = m->encoding ? strlen(m->encoding) : 0;
  return n < 6 || strcmp(m->encoding + n - 6, "base64") != 0;
}

static void base_clear(sw_delta_t *d) {
  free(d->base);
  free(d->base_id);
  d->base = NULL;
  d->base_id = NULL;
  d->base_len = 0;
  d->base_seq = 0;
}

/* The base becomes m's data (usable), as message seq. */
static void base_set(sw_delta_t *d, const sw_msg_t *m, int64_t seq) {
  base_clear(d);
  d->base = malloc(m->data.len + 1);
  d->base_id = strdup(m->id);
  if (!d->base || !d->base_id) {
    base_clear(d);
    return;
  }
  memcpy(d->base, m->data.bytes, m->data.len);
  d->base_len = m->data.len;
  d->base_seq = seq;
}

void delta_begin(sw_channel_t *ch, const sw_pmsg_t *m) {
  sw_delta_t *d = channel_xr(ch)->delta;
  if (!d || !m->n_messages) return;
  const char *s = m->messages[m->n_messages - 1].serial;
  int64_t seq = 0;
  if (!s || serial_parse(s, strlen(s), &seq)) seq = 0;
  d->cur = m;
  d->cur_seq = seq;
  d->computed = d->any = d->subscribers = false;
}

/* The delta of message i of m from its predecessor (the base, or message
 * i - 1), into own[i] and dm.messages[i]; nothing when it would not be
 * smaller than the message's data. */
static void compute_one(sw_delta_t *d, size_t i, size_t max) {
  const sw_msg_t *t = &d->cur->messages[i];
  const uint8_t *src;
  size_t slen;
  const char *from;
  if (i == 0) {
    if (!d->base_seq) return;
    src = d->base, slen = d->base_len, from = d->base_id;
  } else {
    const sw_msg_t *p = &d->cur->messages[i - 1];
    if (!usable(p, max)) return;
    src = p->data.bytes, slen = p->data.len, from = p->id;
  }
  if (!usable(t, max) || t->data.len < 2) return;
  size_t cap = t->data.len - 1, n = 0;
  uint8_t *out = malloc(cap);
  if (!out || vcdiff_encode(src, slen, t->data.bytes, t->data.len, out, cap, &n) != SW_VCDIFF_OK) {
    free(out);
    return;
  }
  /* The encoding steps a client undoes, last first: vcdiff, then utf-8
   * for a string, then the message's own. */
  const char *own = t->encoding ? t->encoding : "";
  const char *text = t->data.kind == SW_DATA_STRING ? "utf-8/" : "";
  size_t elen = strlen(own) + 1 + strlen(text) + sizeof "vcdiff";
  char *enc = malloc(elen);
  json_t *extras = t->extras ? json_copy(t->extras) : json_object();
  json_t *info = json_pack("{s:s, s:s}", "from", from, "format", "vcdiff");
  if (!enc || !extras || !info || json_object_set_new(extras, "delta", info)) {
    if (!extras) json_decref(info);
    free(out);
    free(enc);
    json_decref(extras);
    return;
  }
  snprintf(enc, elen, "%s%s%svcdiff", own, *own ? "/" : "", text);
  d->own[i] = (replaced_t){out, enc, extras};
  sw_msg_t *x = &d->dm.messages[i];
  x->data = (sw_data_t){.kind = SW_DATA_BINARY, .bytes = out, .len = n};
  x->encoding = enc;
  x->extras = extras;
  d->any = true;
}

/* The deltas of cur, once per fan-out, when a subscriber in step needs them. */
static void compute(sw_delta_t *d, size_t max) {
  d->computed = true;
  size_t n = d->cur->n_messages;
  d->dm = *d->cur;
  d->dm.messages = malloc(n * sizeof *d->dm.messages);
  d->own = calloc(n, sizeof *d->own);
  if (!d->dm.messages || !d->own) {
    free(d->dm.messages);
    free(d->own);
    d->dm.messages = NULL;
    d->own = NULL;
    return;
  }
  memcpy(d->dm.messages, d->cur->messages, n * sizeof *d->dm.messages); /* shallow */
  for (size_t i = 0; i < n; i++) compute_one(d, i, max);
}

sw_frame_t *delta_frame(sw_attach_t *a, const sw_pmsg_t *m) {
  if (m->action != SW_ACTION_MESSAGE) return NULL;
  sw_delta_t *d = channel_xr(a->ch)->delta;
  if (!d || d->cur != m) {
    /* Not a fan-out of new messages (a summary): whole, and it is now
     * the client's last message. */
    a->side->delta_seq = 0; /* (a->delta: a has its side) */
    return NULL;
  }
  d->subscribers = true;
  bool in_step = d->base_seq > 0 && a->side->delta_seq == d->base_seq;
  a->side->delta_seq = d->cur_seq;
  if (!in_step) return NULL;
  if (!d->computed) compute(d, (size_t)a->ch->srv->cfg->limits.max_message_size);
  if (!d->any) return NULL;
  sw_format_t fmt = a->conn->fmt;
  if (a->side->wire_name) {
    sw_pmsg_t own = d->dm;
    own.channel = a->side->wire_name;
    return pmsg_frame(fmt, &own);
  }
  if (!d->frames[fmt]) d->frames[fmt] = pmsg_frame(fmt, &d->dm);
  return d->frames[fmt] ? frame_ref(d->frames[fmt]) : NULL;
}

static void fanout_clear(sw_delta_t *d) {
  if (d->own)
    for (size_t i = 0; i < d->cur->n_messages; i++) {
      free(d->own[i].bytes);
      free(d->own[i].encoding);
      json_decref(d->own[i].extras);
    }
  free(d->own);
  free(d->dm.messages);
  for (int f = 0; f < 2; f++) frame_unref(d->frames[f]);
  memset(&d->dm, 0, sizeof d->dm);
  d->own = NULL;
  d->frames[0] = d->frames[1] = NULL;
  d->cur = NULL;
}

void delta_end(sw_channel_t *ch, const sw_pmsg_t *m) {
  sw_delta_t *d = channel_xr(ch)->delta;
  if (!d || d->cur != m) return;
  const sw_msg_t *last = &m->messages[m->n_messages - 1];
  bool keep = d->subscribers && d->cur_seq > 0 && usable(last, (size_t)ch->srv->cfg->limits.max_message_size);
  int64_t seq = d->cur_seq;
  fanout_clear(d);
  base_clear(d);
  if (keep) base_set(d, last, seq);
}

void delta_sent_whole(sw_attach_t *a, const sw_msg_t *msg, int64_t seq) {
  if (!a->delta) return;
  a->side->delta_seq = msg ? seq : 0; /* (a->delta: a has its side) */
  sw_delta_t *d = channel_xr(a->ch)->delta;
  if (!msg || !d || d->cur || seq <= 0 || seq != a->ch->durable_seq || d->base_seq == seq) return;
  if (usable(msg, (size_t)a->ch->srv->cfg->limits.max_message_size)) base_set(d, msg, seq);
}

void delta_forget(sw_channel_t *ch) {
  sw_delta_t *d = channel_xr(ch)->delta;
  if (d) base_clear(d);
}

void delta_free(sw_channel_t *ch) {
  sw_delta_t *d = channel_xr(ch)->delta;
  if (!d) return;
  if (d->cur) fanout_clear(d);
  base_clear(d);
  free(d);
  ch->ext->delta = NULL;
}
