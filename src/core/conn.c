#include "core/conn.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/channel_name.h"
#include "auth/key_auth.h"
#include "core/channel.h"
#include "core/server.h"
#include "core/sock.h"
#include "net/http_parse.h"
#include "net/url.h"
#include "util/clock.h"
#include "util/log.h"

/* Default modes requested by an ATTACH without mode flags (RTL4l). */
#define DEFAULT_MODES \
  (SW_MODE_SUBSCRIBE | SW_MODE_PUBLISH | SW_MODE_PRESENCE_SUBSCRIBE | SW_MODE_PRESENCE | SW_MODE_ANNOTATION_PUBLISH)

/* Protocol versions we speak: v2+ carries channelSerial continuity. */
#define MIN_PROTOCOL_VERSION 2
#define MAX_PROTOCOL_VERSION 6

sw_frame_t *pmsg_frame(sw_format_t fmt, const sw_pmsg_t *m) {
  sw_buf_t b = {0};
  sw_frame_t *f = NULL;
  if (codec_encode_pmsg(fmt, m, &b) == 0)
    f = frame_ws(fmt == SW_FMT_JSON ? SW_WS_OP_TEXT : SW_WS_OP_BINARY, b.data, b.len);
  buf_free(&b);
  return f;
}

static int send_on_sock(sw_sock_t *s, sw_format_t fmt, const sw_pmsg_t *m) {
  sw_frame_t *f = pmsg_frame(fmt, m);
  if (!f) return -1;
  int rc = sock_send(s, f);
  frame_unref(f);
  return rc;
}

int conn_send_pmsg(sw_conn_t *c, const sw_pmsg_t *m) {
  if (!c->sock) return -1;
  c->last_tx = uv_now(c->srv->loop);
  return send_on_sock(c->sock, c->fmt, m);
}

void conn_send_frame(sw_conn_t *c, sw_frame_t *f) {
  if (!c->sock) return;
  c->last_tx = uv_now(c->srv->loop);
  sock_send(c->sock, f);
}

/* Refuses a WebSocket connection after the upgrade: ERROR then close, so
 * the SDK sees an Ably error rather than a dropped socket (RTN14). */
static void refuse(sw_sock_t *s, sw_format_t fmt, const sw_error_t *e) {
  sw_pmsg_t m = {.action = SW_ACTION_ERROR, .error = *e};
  send_on_sock(s, fmt, &m);
  sock_close(s, true);
}

void conn_fail(sw_conn_t *c, int code, const char *msg, bool disconnected) {
  sw_pmsg_t m = {.action = disconnected ? SW_ACTION_DISCONNECTED : SW_ACTION_ERROR};
  errors_set(&m.error, code, "%s", msg);
  sw_sock_t *s = c->sock;
  if (!s) return;
  conn_send_pmsg(c, &m);
  sock_close(s, true);
  if (!disconnected) {
    /* A fatal ERROR ends the connection: it is not resumable (RTN15i). */
    s->conn = NULL;
    c->sock = NULL;
    conn_destroy(c);
  }
}

void conn_on_slow_consumer(sw_conn_t *c) {
  sw_pmsg_t m = {.action = SW_ACTION_DISCONNECTED};
  errors_set(&m.error, SW_E_SLOW_CONSUMER, "connection too slow to keep up: outbound backlog exceeded");
  sw_frame_t *f = pmsg_frame(c->fmt, &m);
  if (f) sock_send_last(c->sock, f);
  frame_unref(f);
}

void conn_send_channel_error(sw_conn_t *c, const char *channel, const sw_error_t *e) {
  sw_pmsg_t m = {.action = SW_ACTION_ERROR, .channel = (char *)channel, .error = *e};
  conn_send_pmsg(c, &m);
}

sw_conn_t *conn_find(sw_server_t *srv, const char *id) {
  sw_conn_t *c = NULL;
  HASH_FIND_STR(srv->conns, id, c);
  return c;
}

static void memo_clear(sw_ack_memo_t *m) {
  for (size_t i = 0; i < m->n_serials; i++) free(m->serials[i]);
  free(m->serials);
  memset(m, 0, sizeof *m);
}

static sw_ack_memo_t *memo_at(sw_conn_t *c, int64_t serial) {
  if (serial < c->memo_base || serial >= c->memo_base + (int64_t)c->memo_len) return NULL;
  return &c->memo[(c->memo_head + (size_t)(serial - c->memo_base)) % c->memo_cap];
}

/* Appends the memo for msgSerial serial (> every serial seen). */
static sw_ack_memo_t *memo_push(sw_conn_t *c, int64_t serial) {
  if (c->memo_len == 0) c->memo_base = c->next_answer = serial;
  while (c->memo_base + (int64_t)c->memo_len <= serial) {
    if (c->memo_len == c->memo_cap) {
      size_t cap = c->memo_cap ? c->memo_cap * 2 : 16;
      sw_ack_memo_t *m = calloc(cap, sizeof *m);
      if (!m) return NULL;
      for (size_t i = 0; i < c->memo_len; i++) m[i] = c->memo[(c->memo_head + i) % c->memo_cap];
      free(c->memo);
      c->memo = m;
      c->memo_cap = cap;
      c->memo_head = 0;
    }
    sw_ack_memo_t *e = &c->memo[(c->memo_head + c->memo_len) % c->memo_cap];
    memset(e, 0, sizeof *e);
    /* A msgSerial the client skipped (recover continues its numbering). */
    e->done = e->silent = c->memo_base + (int64_t)c->memo_len < serial;
    c->memo_len++;
  }
  return memo_at(c, serial);
}

static void nack(sw_conn_t *c, int64_t msg_serial, const sw_error_t *e);
static void ack(sw_conn_t *c, int64_t msg_serial, char **serials, size_t n);

/* Sends every outcome that is known and whose predecessors are answered. */
static void memo_flush(sw_conn_t *c) {
  sw_ack_memo_t *m;
  while ((m = memo_at(c, c->next_answer)) && m->done) {
    /* Without a transport the client will resend, and be answered then. */
    if (c->sock && !m->silent) {
      if (m->err.code) nack(c, c->next_answer, &m->err);
      else ack(c, c->next_answer, m->serials, m->n_serials);
    }
    c->next_answer++;
  }
  while (c->memo_len && c->next_answer - c->memo_base > SW_ACK_MEMORY) {
    memo_clear(&c->memo[c->memo_head]);
    c->memo_head = (c->memo_head + 1) % c->memo_cap;
    c->memo_len--;
    c->memo_base++;
  }
}

void conn_destroy(sw_conn_t *c) {
  sw_attach_t *a, *tmp;
  HASH_ITER(hh, c->attachments, a, tmp) channel_detach(a);
  if (c->sock) {
    c->sock->conn = NULL;
    sock_close(c->sock, true);
  }
  for (size_t i = 0; i < c->memo_len; i++) memo_clear(&c->memo[(c->memo_head + i) % c->memo_cap]);
  free(c->memo);
  HASH_DEL(c->srv->conns, c);
  free(c->client_id);
  free(c);
}

void conn_on_transport_lost(sw_conn_t *c) {
  c->sock = NULL;
  c->lost_at = clock_now_ms();
  sw_attach_t *a, *tmp;
  HASH_ITER(hh, c->attachments, a, tmp) a->delivering = false;
}

static void send_connected(sw_conn_t *c, const sw_error_t *err) {
  const sw_limits_t *l = &c->srv->cfg->limits;
  sw_conn_details_t d = {
      .client_id = c->client_id,
      .connection_key = c->key,
      .max_message_size = l->max_message_size,
      .max_frame_size = l->max_frame_size,
      .max_inbound_rate = l->max_inbound_rate,
      .connection_state_ttl = l->connection_state_ttl,
      .max_idle_interval = l->max_idle_interval,
      .server_id = c->srv->server_id,
  };
  sw_pmsg_t m = {.action = SW_ACTION_CONNECTED, .connection_id = c->id, .connection_details = &d};
  if (err) m.error = *err;
  conn_send_pmsg(c, &m);
}

/* Binds socket s to connection c (new or resumed). */
static void bind_transport(sw_conn_t *c, sw_sock_t *s, sw_format_t fmt, bool echo, bool heartbeats) {
  if (c->sock && c->sock != s) {
    /* The client gave up on its old socket before we noticed. */
    sw_sock_t *old = c->sock;
    old->conn = NULL;
    sock_close(old, false);
  }
  c->sock = s;
  s->conn = c;
  c->fmt = fmt;
  c->echo = echo;
  c->heartbeats = heartbeats;
  c->lost_at = 0;
  c->last_tx = uv_now(c->srv->loop);
}

/* Looks up a resumable connection by its connectionKey, in constant time
 * for the secret part. */
static sw_conn_t *find_by_key(sw_server_t *srv, const char *key, const sw_app_t *app) {
  const char *bang = strchr(key, '!');
  if (!bang || (size_t)(bang - key) > SW_CONN_ID_LEN) return NULL;
  char id[SW_CONN_ID_LEN + 1];
  memcpy(id, key, (size_t)(bang - key));
  id[bang - key] = '\0';
  sw_conn_t *c = conn_find(srv, id);
  if (!c || c->app != app) return NULL;
  size_t n = strlen(key);
  if (n != strlen(c->key) || CRYPTO_memcmp(key, c->key, n) != 0) return NULL;
  return c;
}

static bool query_flag(sw_slice_t q, const char *name, bool dflt) {
  char v[8];
  ssize_t n = url_query_get(q, name, v, sizeof v);
  if (n < 0) return dflt;
  return strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
}

void conn_on_upgrade(sw_sock_t *s, const sw_http_req_t *req) {
  sw_server_t *srv = s->srv;
  sw_slice_t q = req->query;
  sw_error_t err = {0};
  char buf[1024];

  sw_format_t fmt = SW_FMT_MSGPACK; /* RTN2a */
  if (url_query_get(q, "format", buf, sizeof buf) >= 0) {
    if (strcmp(buf, "json") == 0) fmt = SW_FMT_JSON;
    else if (strcmp(buf, "msgpack") != 0) {
      errors_set(&err, SW_E_INVALID_PARAM, "unsupported format %.32s", buf);
      refuse(s, SW_FMT_JSON, &err);
      return;
    }
  }
  if (url_query_get(q, "v", buf, sizeof buf) >= 0) {
    char *end;
    double v = strtod(buf, &end);
    if (*end || end == buf || v < MIN_PROTOCOL_VERSION || v > MAX_PROTOCOL_VERSION) {
      errors_set(&err, SW_E_BAD_PROTOCOL_VERSION, "unsupported protocol version %.16s", buf);
      refuse(s, fmt, &err);
      return;
    }
  }

  sw_app_t *app = NULL;
  sw_key_t *key = NULL;
  ssize_t kn = url_query_get(q, "key", buf, sizeof buf);
  if (kn >= 0) {
    if (key_auth_check(&srv->apps, buf, (size_t)kn, &app, &key, &err)) {
      refuse(s, fmt, &err);
      return;
    }
  } else if (url_query_get(q, "access_token", buf, sizeof buf) >= 0 ||
             url_query_get(q, "accessToken", buf, sizeof buf) >= 0) {
    errors_set(&err, SW_E_INVALID_CREDENTIALS, "token authentication is not available on this server yet");
    refuse(s, fmt, &err);
    return;
  } else {
    errors_set(&err, SW_E_INVALID_CREDENTIALS, "no credentials: give a key or a token");
    refuse(s, fmt, &err);
    return;
  }
  OPENSSL_cleanse(buf, sizeof buf);

  char client_id[256] = "";
  ssize_t cn = url_query_get(q, "clientId", client_id, sizeof client_id);
  if (cn == -2 || (cn >= 0 && (cn == 0 || strcmp(client_id, "*") == 0))) {
    errors_set(&err, SW_E_INVALID_CLIENT_ID, "invalid clientId");
    refuse(s, fmt, &err);
    return;
  }
  bool echo = query_flag(q, "echo", true);
  bool heartbeats = query_flag(q, "heartbeats", false);

  /* RTN15b / RTN16k: resume or recover an existing connection. */
  char rkey[80];
  sw_conn_t *c = NULL;
  bool tried_resume = false;
  if (url_query_get(q, "resume", rkey, sizeof rkey) >= 0 || url_query_get(q, "recover", rkey, sizeof rkey) >= 0) {
    tried_resume = true;
    c = find_by_key(srv, rkey, app);
    if (c && c->client_id && cn >= 0 && strcmp(c->client_id, client_id) != 0) c = NULL;
  }
  if (c) {
    bind_transport(c, s, fmt, echo, heartbeats);
    log_debug("connection %s resumed", c->id);
    send_connected(c, NULL);
    return;
  }

  c = calloc(1, sizeof *c);
  if (!c || app_random_id(c->id, 12)) {
    free(c);
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    refuse(s, fmt, &err);
    return;
  }
  char secret[24];
  app_random_id(secret, 16);
  snprintf(c->key, sizeof c->key, "%s!%s", c->id, secret);
  c->srv = srv;
  c->app = app;
  c->key_ref = key;
  c->cap = key->cap;
  c->client_id = cn > 0 ? strdup(client_id) : NULL;
  HASH_ADD_STR(srv->conns, id, c);
  bind_transport(c, s, fmt, echo, heartbeats);
  if (tried_resume) {
    /* RTN15c7: a new connection, with the reason continuity was lost. */
    errors_set(&err, SW_E_RESUME_FAILED, "unable to resume connection: not found or expired");
    send_connected(c, &err);
  } else {
    send_connected(c, NULL);
  }
}

static void nack(sw_conn_t *c, int64_t msg_serial, const sw_error_t *e) {
  sw_pmsg_t m = {.action = SW_ACTION_NACK, .msg_serial = msg_serial, .has_msg_serial = true,
                 .count = 1, .has_count = true, .error = *e};
  conn_send_pmsg(c, &m);
}

static void ack(sw_conn_t *c, int64_t msg_serial, char **serials, size_t n) {
  sw_publish_result_t res = {.serials = serials, .n_serials = n};
  sw_pmsg_t m = {.action = SW_ACTION_ACK, .msg_serial = msg_serial, .has_msg_serial = true,
                 .count = 1, .has_count = true, .res = &res, .n_res = 1};
  conn_send_pmsg(c, &m);
}

void conn_publish_done(sw_conn_t *c, int64_t msg_serial, const sw_error_t *err, char **serials,
                       size_t n) {
  sw_ack_memo_t *memo = memo_at(c, msg_serial);
  if (!memo || memo->done) return;
  memo->done = true;
  if (err && err->code) {
    memo->err = *err;
  } else if (n && (memo->serials = calloc(n, sizeof *memo->serials))) {
    memo->n_serials = n;
    for (size_t i = 0; i < n; i++) memo->serials[i] = serials[i] ? strdup(serials[i]) : NULL;
  }
  memo_flush(c);
}

/* Parses a rewind value: "N" messages, or "Ns"/"Nm" duration (RTL? rewind). */
static int parse_rewind(const char *v, int64_t *count, int64_t *ms) {
  char *end;
  long long n = strtoll(v, &end, 10);
  if (end == v || n < 0) return -1;
  if (*end == '\0') *count = n > 100 ? 100 : n;
  else if (strcmp(end, "s") == 0) *ms = n * 1000;
  else if (strcmp(end, "m") == 0) *ms = n * 60000;
  else return -1;
  return 0;
}

/* Resolves and checks a channel named in a protocol message: the name may
 * carry channel params ("[?rewind=1]name"); the channel is the plain name.
 * On error fills err and returns NULL. */
static sw_channel_t *resolve_channel(sw_conn_t *c, const char *name, sw_channel_name_t *parts,
                                     sw_error_t *err) {
  if (!name) {
    errors_set(err, SW_E_INVALID_CHANNEL, "channel name missing");
    return NULL;
  }
  if (channel_name_validate(name, strlen(name), parts, err)) return NULL;
  if (parts->kind != SW_CHAN_PLAIN) {
    errors_set(err, SW_E_INVALID_CHANNEL, "metachannels and derived channels are not supported");
    return NULL;
  }
  sw_channel_t *ch = channel_get(c->srv, c->app, name + parts->name_off);
  if (!ch) errors_set(err, SW_E_INTERNAL, "out of memory");
  return ch;
}

static void handle_attach(sw_conn_t *c, sw_pmsg_t *m) {
  sw_error_t err = {0};
  sw_channel_name_t parts;
  sw_channel_t *ch = resolve_channel(c, m->channel, &parts, &err);
  if (!ch) goto fail;
  uint32_t ops = cap_ops_for_channel(c->cap, ch->name);
  if (!ops) {
    errors_set(&err, SW_E_CAPABILITY_DENIED, "channel denied access based on given capability; channelId = %.200s",
               ch->name);
    goto fail;
  }
  if (ch->ns->identified && !c->client_id) {
    errors_set(&err, 40161, "namespace %s requires an identified client", ch->ns->id);
    goto fail;
  }
  uint32_t requested = m->has_flags ? (uint32_t)m->flags & SW_MODE_ALL : 0;
  if (!requested) requested = DEFAULT_MODES;

  sw_attach_req_t req = {.modes = requested & cap_modes_for_ops(ops),
                         .channel_serial = m->channel_serial,
                         .rewind_count = -1,
                         .rewind_ms = -1};
  json_t *params = NULL;
  /* Params from the name qualifier, overridden by ATTACH params (TR4q). */
  if (parts.params_len) {
    params = json_object();
    sw_slice_t qs = {m->channel + parts.params_off, parts.params_len};
    size_t pos = 0;
    sw_slice_t pn, pv;
    while (url_query_next(qs, &pos, &pn, &pv) == 1) {
      char k[64], v[64];
      if (url_decode(pn.p, pn.n, k, sizeof k, true) >= 0 && url_decode(pv.p, pv.n, v, sizeof v, true) >= 0)
        json_object_set_new(params, k, json_string(v));
    }
  }
  if (json_is_object(m->params)) {
    if (!params) params = json_object();
    json_object_update(params, m->params);
  }
  const char *rewind = json_string_value(json_object_get(params, "rewind"));
  if (rewind && parse_rewind(rewind, &req.rewind_count, &req.rewind_ms)) {
    json_decref(params);
    errors_set(&err, SW_E_INVALID_PARAM, "invalid rewind parameter %.32s", rewind);
    goto fail;
  }
  req.params = params;
  req.channel_name = m->channel;
  channel_attach(ch, c, &req);
  json_decref(params);
  return;
fail:
  conn_send_channel_error(c, m->channel, &err);
}

static void handle_detach(sw_conn_t *c, sw_pmsg_t *m) {
  if (!m->channel) {
    conn_fail(c, SW_E_BAD_REQUEST, "DETACH without channel", false);
    return;
  }
  sw_channel_name_t parts;
  sw_channel_t *ch = NULL;
  if (channel_name_validate(m->channel, strlen(m->channel), &parts, NULL) == 0)
    ch = channel_find(c->srv, c->app, m->channel + parts.name_off);
  sw_attach_t *a = NULL;
  if (ch) HASH_FIND_PTR(c->attachments, &ch, a);
  if (a) channel_detach(a);
  sw_pmsg_t r = {.action = SW_ACTION_DETACHED, .channel = m->channel};
  conn_send_pmsg(c, &r);
}

/* Applies the clientId rules to one message (RTL6g, RSA7e/RSA8f). */
static int check_client_id(const sw_conn_t *c, sw_msg_t *msg, sw_error_t *err) {
  if (msg->client_id && (strcmp(msg->client_id, "*") == 0 || !*msg->client_id))
    return errors_set(err, SW_E_INVALID_CLIENT_ID, "invalid clientId in message");
  if (c->client_id) {
    if (!msg->client_id) msg->client_id = strdup(c->client_id);
    else if (strcmp(msg->client_id, c->client_id) != 0)
      return errors_set(err, SW_E_INVALID_CLIENT_ID, "mismatched clientId %.64s for a connection identified as %.64s",
                        msg->client_id, c->client_id);
  }
  return 0;
}

static void handle_message(sw_conn_t *c, sw_pmsg_t *m) {
  sw_error_t err = {0};
  if (!m->has_msg_serial) {
    conn_fail(c, SW_E_BAD_REQUEST, "MESSAGE without msgSerial", false);
    return;
  }
  int64_t serial = m->msg_serial;
  if (serial < c->next_msg_serial) {
    /* RTN19a2: a publish resent after resume; answer it, never republish.
     * One still in flight is answered when it completes. */
    sw_ack_memo_t *memo = memo_at(c, serial);
    if (memo && memo->done && serial < c->next_answer && !memo->silent) {
      if (memo->err.code) nack(c, serial, &memo->err);
      else ack(c, serial, memo->serials, memo->n_serials);
    }
    return;
  }
  c->next_msg_serial = serial + 1;
  if (!memo_push(c, serial)) {
    conn_fail(c, SW_E_INTERNAL, "out of memory", false);
    return;
  }

  sw_channel_name_t parts;
  sw_channel_t *ch = resolve_channel(c, m->channel, &parts, &err);
  if (!ch) goto fail;
  sw_attach_t *a = NULL;
  HASH_FIND_PTR(c->attachments, &ch, a);
  if (!cap_allows(c->cap, ch->name, SW_OP_PUBLISH)) {
    errors_set(&err, SW_E_CAPABILITY_DENIED, "unable to publish: permission denied; channel = %.200s", ch->name);
    goto fail;
  }
  if (a && !(a->modes & SW_MODE_PUBLISH)) {
    errors_set(&err, SW_E_MODE_NOT_REQUESTED, "channel attached without the publish mode");
    goto fail;
  }
  if (m->n_messages == 0) {
    errors_set(&err, SW_E_BAD_REQUEST, "MESSAGE without messages");
    goto fail;
  }
  size_t total = 0;
  int64_t now = clock_now_ms();
  for (size_t i = 0; i < m->n_messages; i++) {
    sw_msg_t *msg = &m->messages[i];
    total += msg_size(msg);
    if (msg->action > 0) {
      if (!ch->ns->mutable_messages)
        errors_set(&err, SW_E_MUTABLE_NOT_ENABLED, "message updates, deletes and appends are not enabled on this channel");
      else
        errors_set(&err, SW_E_BAD_REQUEST, "message action %d is not supported yet", msg->action);
      goto fail;
    }
    if (check_client_id(c, msg, &err)) goto fail;
    if (!msg->id) {
      char id[64];
      snprintf(id, sizeof id, "%s:%lld:%zu", c->id, (long long)serial, i);
      msg->id = strdup(id);
    }
    free(msg->connection_id);
    msg->connection_id = strdup(c->id);
    if (!msg->timestamp) msg->timestamp = now;
    msg->action = 0; /* TM5 message.create */
  }
  if (total > (size_t)c->srv->cfg->limits.max_message_size) {
    errors_set(&err, SW_E_MESSAGE_TOO_LARGE, "message size %zu exceeds maxMessageSize %lld", total,
               (long long)c->srv->cfg->limits.max_message_size);
    goto fail;
  }
  sw_publisher_t who = {.conn_id = c->id, .msg_serial = serial};
  sw_msg_t *msgs = m->messages;
  size_t n = m->n_messages;
  m->messages = NULL;
  m->n_messages = 0;
  if (channel_publish(ch, msgs, n, &who, &err)) goto fail;
  return;
fail:
  conn_publish_done(c, serial, &err, NULL, 0);
}

void conn_on_ws_message(sw_conn_t *c, const uint8_t *p, size_t n, bool is_text) {
  sw_pmsg_t m = {0};
  sw_error_t err = {0};
  if (codec_decode_pmsg(c->fmt, p, n, &m, &err)) {
    conn_fail(c, err.code ? err.code : SW_E_BAD_REQUEST, err.message, false);
    return;
  }
  switch (m.action) {
  case SW_ACTION_HEARTBEAT: {
    sw_pmsg_t r = {.action = SW_ACTION_HEARTBEAT, .id = m.id};
    conn_send_pmsg(c, &r);
    break;
  }
  case SW_ACTION_CLOSE: {
    sw_pmsg_t r = {.action = SW_ACTION_CLOSED};
    conn_send_pmsg(c, &r);
    sw_sock_t *s = c->sock;
    s->conn = NULL;
    c->sock = NULL;
    sock_close(s, true);
    conn_destroy(c); /* RTN12: a closed connection cannot be resumed */
    break;
  }
  case SW_ACTION_DISCONNECT:
    sock_close(c->sock, true);
    break;
  case SW_ACTION_ATTACH:
    handle_attach(c, &m);
    break;
  case SW_ACTION_DETACH:
    handle_detach(c, &m);
    break;
  case SW_ACTION_MESSAGE:
    handle_message(c, &m);
    break;
  case SW_ACTION_PRESENCE:
  case SW_ACTION_ANNOTATION:
  case SW_ACTION_OBJECT: {
    sw_error_t e;
    errors_set(&e, SW_E_BAD_REQUEST, "action %d is not supported by this server yet", m.action);
    if (m.has_msg_serial && m.msg_serial >= c->next_msg_serial) {
      c->next_msg_serial = m.msg_serial + 1;
      if (memo_push(c, m.msg_serial)) conn_publish_done(c, m.msg_serial, &e, NULL, 0);
    } else {
      conn_send_channel_error(c, m.channel, &e);
    }
    break;
  }
  case SW_ACTION_AUTH:
    conn_fail(c, SW_E_INVALID_CREDENTIALS, "token authentication is not available on this server yet", false);
    break;
  default: {
    char msg[64];
    snprintf(msg, sizeof msg, "unexpected protocol action %d", m.action);
    conn_fail(c, SW_E_BAD_REQUEST, msg, false);
  }
  }
  pmsg_free(&m);
}

void conn_tick(sw_server_t *srv, uint64_t now_loop, int64_t now_ms) {
  const sw_limits_t *l = &srv->cfg->limits;
  sw_conn_t *c, *tmp;
  HASH_ITER(hh, srv->conns, c, tmp) {
    if (c->sock) {
      /* RTN23: keep the client's idle timer from firing. */
      if (now_loop - c->last_tx + 1000 >= (uint64_t)l->max_idle_interval) {
        if (c->heartbeats) {
          sw_pmsg_t hb = {.action = SW_ACTION_HEARTBEAT};
          conn_send_pmsg(c, &hb);
        } else {
          sw_frame_t *ping = frame_ws(SW_WS_OP_PING, NULL, 0);
          if (ping) conn_send_frame(c, ping);
          frame_unref(ping);
        }
      }
    } else if (now_ms - c->lost_at > l->connection_state_ttl) {
      log_debug("connection %s expired", c->id);
      conn_destroy(c);
    }
  }
}
