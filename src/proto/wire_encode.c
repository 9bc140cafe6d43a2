/* wire_encode.c: the pmsg.h structs as writer calls, shared by the JSON and
 * msgpack formats (wire.h). Absent fields are skipped; the map helpers
 * count what they write, so msgpack map headers are always right. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/wire.h"

/* One map being written. The first failure sticks in rc and makes every
 * later call a no-op, so encoders read as a plain list of fields. */
typedef struct wmap {
  wire_writer_t *w;
  size_t mark;
  size_t n;
  int rc;
} wmap_t;

static void map_open(wmap_t *m, wire_writer_t *w) {
  *m = (wmap_t){.w = w};
  m->rc = w->ops->map_open(w, &m->mark);
}

static int map_close(wmap_t *m) {
  if (!m->rc) m->rc = m->w->ops->map_close(m->w, m->mark, m->n);
  return m->rc;
}

/* The field helpers are inlined so that strlen of a literal key folds to a
 * constant and an absent field costs a test (an AI delivery and its blob
 * write ~60 fields: measured ~1,000 instructions per append). */
#define SW_INLINE static inline __attribute__((always_inline))

/* Writes the key; true if the caller should now write the value. */
SW_INLINE bool field(wmap_t *m, const char *key) {
  if (m->rc) return false;
  m->rc = m->w->ops->key(m->w, key, strlen(key));
  m->n++;
  return m->rc == 0;
}

SW_INLINE void f_str(wmap_t *m, const char *key, const char *s) {
  if (s && field(m, key)) m->rc = m->w->ops->str(m->w, s, strlen(s));
}

SW_INLINE void f_i64(wmap_t *m, const char *key, int64_t v, bool present) {
  if (present && field(m, key)) m->rc = m->w->ops->i64(m->w, v);
}

SW_INLINE void f_json(wmap_t *m, const char *key, const json_t *v) {
  if (v && field(m, key)) m->rc = m->w->ops->json(m->w, v);
}

/* "<enc>/base64" or "base64": bytes written as text gain a step (RSL4d1). */
static void f_encoding_b64(wmap_t *m, const char *enc) {
  static const char step[] = "base64";
  char small[128];
  size_t a = enc ? strlen(enc) : 0, n = a + (a ? 1 : 0) + sizeof step - 1;
  char *s = n < sizeof small ? small : malloc(n + 1);
  if (!s) {
    m->rc = -ENOMEM;
    return;
  }
  if (a) {
    memcpy(s, enc, a);
    s[a++] = '/';
  }
  memcpy(s + a, step, sizeof step);
  if (field(m, "encoding")) m->rc = m->w->ops->str(m->w, s, n);
  if (s != small) free(s);
}

static void f_data(wmap_t *m, const sw_data_t *d, const char *enc) {
  if (d->kind == SW_DATA_STRING && field(m, "data")) {
    m->rc = m->w->ops->str(m->w, (const char *)d->bytes, d->len);
    m->w->data_end = m->w->out->len;
  }
  if (d->kind != SW_DATA_BINARY) {
    f_str(m, "encoding", enc);
    return;
  }
  if (field(m, "data")) {
    m->rc = m->w->ops->bin(m->w, d->bytes, d->len);
    m->w->data_end = m->w->out->len;
  }
  if (m->w->text)
    f_encoding_b64(m, enc);
  else
    f_str(m, "encoding", enc);
}

static void f_error(wmap_t *m, const char *key, const sw_error_t *e) {
  if (!field(m, key)) return;
  char href[64];
  errors_href(e->code, href, sizeof href);
  wmap_t em;
  map_open(&em, m->w);
  f_i64(&em, "code", e->code, true);
  f_i64(&em, "statusCode", e->status ? e->status : errors_status(e->code), true);
  f_str(&em, "message", e->message);
  f_str(&em, "href", href);
  m->rc = map_close(&em);
}

static void f_conn_details(wmap_t *m, const sw_conn_details_t *cd) {
  if (!cd || !field(m, "connectionDetails")) return;
  wmap_t c;
  map_open(&c, m->w);
  f_str(&c, "clientId", cd->client_id);
  f_str(&c, "connectionKey", cd->connection_key);
  f_i64(&c, "maxMessageSize", cd->max_message_size, true);
  f_i64(&c, "maxFrameSize", cd->max_frame_size, true);
  f_i64(&c, "maxInboundRate", cd->max_inbound_rate, true);
  f_i64(&c, "connectionStateTtl", cd->connection_state_ttl, true);
  f_i64(&c, "maxIdleInterval", cd->max_idle_interval, true);
  f_str(&c, "serverId", cd->server_id);
  m->rc = map_close(&c);
}

static void f_auth(wmap_t *m, const char *token) {
  if (!token || !field(m, "auth")) return;
  wmap_t a;
  map_open(&a, m->w);
  f_str(&a, "accessToken", token);
  m->rc = map_close(&a);
}

static int write_serials(wire_writer_t *w, const sw_publish_result_t *r) {
  wmap_t m;
  map_open(&m, w);
  if (field(&m, "serials")) {
    m.rc = w->ops->array_open(w, r->n_serials);
    for (size_t i = 0; i < r->n_serials && !m.rc; i++)
      m.rc = r->serials[i] ? w->ops->str(w, r->serials[i], strlen(r->serials[i])) : w->ops->nil(w);
    if (!m.rc) m.rc = w->ops->array_close(w);
  }
  return map_close(&m);
}

int wire_encode_msg(wire_writer_t *w, const sw_msg_t *msg) {
  wmap_t m;
  map_open(&m, w);
  f_str(&m, "id", msg->id);
  f_str(&m, "clientId", msg->client_id);
  f_str(&m, "connectionId", msg->connection_id);
  f_str(&m, "connectionKey", msg->connection_key);
  f_str(&m, "name", msg->name);
  f_data(&m, &msg->data, msg->encoding);
  f_json(&m, "extras", msg->extras);
  f_i64(&m, "timestamp", msg->timestamp, msg->timestamp != 0);
  f_str(&m, "serial", msg->serial);
  f_i64(&m, "action", msg->action, msg->action >= 0);
  f_json(&m, "version", msg->version);
  f_json(&m, "annotations", msg->annotations);
  f_str(&m, "messageSerial", msg->message_serial);
  f_str(&m, "type", msg->type);
  f_i64(&m, "count", msg->count, msg->has_count);
  return map_close(&m);
}

static int write_presence(wire_writer_t *w, const sw_presence_t *p) {
  wmap_t m;
  map_open(&m, w);
  f_i64(&m, "action", p->action, true);
  f_str(&m, "id", p->id);
  f_str(&m, "clientId", p->client_id);
  f_str(&m, "connectionId", p->connection_id);
  f_data(&m, &p->data, p->encoding);
  f_json(&m, "extras", p->extras);
  f_i64(&m, "timestamp", p->timestamp, p->timestamp != 0);
  return map_close(&m);
}

/* An array of n items of `size` bytes each, written by one function. */
static int write_array(wire_writer_t *w, const void *items, size_t n, size_t size,
                       int (*one)(wire_writer_t *, const void *)) {
  int rc = w->ops->array_open(w, n);
  for (size_t i = 0; i < n && !rc; i++) rc = one(w, (const char *)items + i * size);
  return rc ? rc : w->ops->array_close(w);
}

static int one_msg(wire_writer_t *w, const void *m) { return wire_encode_msg(w, m); }
static int one_presence(wire_writer_t *w, const void *p) { return write_presence(w, p); }
static int one_res(wire_writer_t *w, const void *r) { return write_serials(w, r); }

static void f_array(wmap_t *m, const char *key, const void *items, size_t n, size_t size,
                    int (*one)(wire_writer_t *, const void *)) {
  if (n && field(m, key)) m->rc = write_array(m->w, items, n, size, one);
}

int wire_encode_msgs(wire_writer_t *w, const sw_msg_t *msgs, size_t n) {
  return write_array(w, msgs, n, sizeof *msgs, one_msg);
}

int wire_encode_presence_array(wire_writer_t *w, const sw_presence_t *p, size_t n) {
  return write_array(w, p, n, sizeof *p, one_presence);
}

static int encode_pmsg(wire_writer_t *w, const sw_pmsg_t *p, const uint8_t *raw, size_t raw_len) {
  wmap_t m;
  map_open(&m, w);
  f_i64(&m, "action", p->action, true);
  f_i64(&m, "flags", p->flags, p->has_flags);
  f_i64(&m, "count", p->count, p->has_count);
  f_i64(&m, "msgSerial", p->msg_serial, p->has_msg_serial);
  f_str(&m, "id", p->id);
  f_str(&m, "channel", p->channel);
  f_str(&m, "channelSerial", p->channel_serial);
  f_str(&m, "connectionId", p->connection_id);
  f_str(&m, "connectionKey", p->connection_key);
  f_i64(&m, "timestamp", p->timestamp, p->timestamp != 0);
  if (p->error.code) f_error(&m, "error", &p->error);
  f_json(&m, "params", p->params);
  f_auth(&m, p->auth_access_token);
  f_conn_details(&m, p->connection_details);
  if (raw) {
    if (field(&m, "messages") && !(m.rc = w->ops->array_open(w, 1))) m.rc = buf_append(w->out, raw, raw_len);
  } else {
    f_array(&m, "messages", p->messages, p->n_messages, sizeof *p->messages, one_msg);
  }
  f_array(&m, "presence", p->presence, p->n_presence, sizeof *p->presence, one_presence);
  f_array(&m, "annotations", p->annotations, p->n_annotations, sizeof *p->annotations, one_msg);
  f_array(&m, "res", p->res, p->n_res, sizeof *p->res, one_res);
  return map_close(&m);
}

int wire_encode_pmsg(wire_writer_t *w, const sw_pmsg_t *p) { return encode_pmsg(w, p, NULL, 0); }

int wire_encode_pmsg_raw(wire_writer_t *w, const sw_pmsg_t *p, const uint8_t *raw, size_t raw_len) {
  if (w->text || !raw) return -EINVAL;
  return encode_pmsg(w, p, raw, raw_len);
}

int wire_encode_error_body(wire_writer_t *w, const sw_error_t *e) {
  wmap_t m;
  map_open(&m, w);
  f_error(&m, "error", e);
  return map_close(&m);
}
