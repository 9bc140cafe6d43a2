/* client.c: the realtime connection (RTN*): connect, CONNECTED/DISCONNECTED/
 * ERROR/CLOSED handling, reconnect with backoff and resume, heartbeats and
 * the idle timer, close, and the client's lifetime and run loop.
 *
 * Reentrancy: user callbacks may call anything, including sw_client_free().
 * So every handler does its bookkeeping first and calls user code last, and
 * sw_client_free() only marks the client and closes its handles: memory is
 * released in destroy(), from a libuv close callback or after the private
 * loop stops, never below a frame that still uses it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "internal.h"
#include "proto/wire.h"

/* Largest message accepted from the server (its maxFrameSize is 512 KiB). */
#define MAX_INBOUND_MESSAGE (16u * 1024 * 1024)

SW_API void sw_options_init(sw_options_t *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->host = "127.0.0.1";
  o->port = 8080;
  o->format = SW_FORMAT_MSGPACK;
  o->echo = true;
  o->idempotent = true;
  o->queue_messages = true;
  o->realtime_request_timeout_ms = 10000;
  o->http_request_timeout_ms = 10000;
  o->disconnected_retry_ms = 15000;
  o->suspended_retry_ms = 30000;
  o->channel_retry_ms = 15000;
  o->connection_state_ttl_ms = 120000;
  o->log_level = SW_LOG_WARN;
}

SW_API const char *sw_conn_state_name(sw_conn_state_t s) {
  static const char *names[] = {"initialized", "connecting", "connected", "disconnected",
                                "suspended",   "closing",    "closed",    "failed"};
  return (unsigned)s < sizeof names / sizeof *names ? names[s] : "unknown";
}

/* ---- small helpers ---- */

static void on_conn_timer(uv_timer_t *t);

static void set_reason(sw_client_t *c, const sw_errinfo_t *reason) {
  if (!reason) return;
  c->reason = *reason;
  c->has_reason = true;
}

static void emit(sw_client_t *c, sw_conn_state_t prev, const sw_errinfo_t *reason, int64_t retry_in, bool resumed) {
  if (c->freeing || !c->on_state) return;
  sw_state_change_t ch = {.previous = prev, .current = c->state, .reason = reason, .retry_in_ms = retry_in,
                          .resumed = resumed};
  c->on_state(c, &ch, c->state_ud);
}

void swc_emit_update(sw_client_t *c, const sw_errinfo_t *reason) {
  set_reason(c, reason);
  emit(c, c->state, reason, 0, false);
}

uint64_t swc_backoff_ms(int64_t base, int retry) {
  /* RTB1: base * min((n + 2) / 3, 2) * a jitter in [0.8, 1]. */
  double coeff = (retry + 2) / 3.0;
  if (coeff > 2) coeff = 2;
  uint16_t r = 0;
  swc_random(&r, sizeof r);
  double jitter = 1.0 - 0.2 * (r / 65535.0);
  return (uint64_t)((double)base * coeff * jitter);
}

int swc_send_pmsg(sw_client_t *c, const sw_pmsg_t *m) {
  if (!c->ws || !c->ws_connected) return -1;
  /* Encoded after room for the frame header: sent without another copy. */
  sw_buf_t b = {0};
  int rc = buf_reserve(&b, 256);
  if (rc == 0) {
    b.len = SWC_WS_HEADROOM;
    rc = codec_encode_pmsg(c->fmt, m, &b);
  }
  if (rc == 0) rc = swc_ws_send_buf(c->ws, c->fmt == SW_FMT_JSON, &b);
  buf_free(&b);
  if (rc) swc_log(c, SW_LOG_WARN, "send of action %d failed: %d", m->action, rc);
  return rc;
}

static void drop_ws(sw_client_t *c) {
  if (c->ws) swc_ws_close(c->ws);
  c->ws = NULL;
  c->ws_connected = false;
  uv_timer_stop(&c->t_idle);
}

static void clear_connection(sw_client_t *c) {
  free(c->conn_id);
  free(c->conn_key);
  c->conn_id = c->conn_key = NULL;
  c->msg_serial = 0;
}

/* ---- terminal states ---- */

static void to_terminal(sw_client_t *c, sw_conn_state_t s, const sw_errinfo_t *reason) {
  sw_conn_state_t prev = c->state;
  drop_ws(c);
  uv_timer_stop(&c->t_conn);
  swc_auth_cancel(c);
  uv_timer_stop(&c->t_auth);
  uv_timer_stop(&c->t_chan); /* channels leave ATTACHING/DETACHING below */
  clear_connection(c); /* RTN12, RTN15i: neither can be resumed */
  c->state = s;
  c->disconnected_at = 0;
  c->retry_count = 0;
  set_reason(c, reason);
  emit(c, prev, reason, 0, false);
  if (c->freeing || c->state != s) return;
  swc_channels_on_conn_state(c, s, reason);
  if (c->freeing) return;
  sw_errinfo_t e;
  if (reason) e = *reason;
  else swc_set_error(&e, SW_ERR_CONNECTION_CLOSED, 400, "connection closed");
  swc_pubs_fail_all(c, &e); /* RTN7c */
}

static void to_failed(sw_client_t *c, const sw_errinfo_t *reason) {
  swc_log(c, SW_LOG_WARN, "connection failed: %d %s", reason->code, reason->message);
  to_terminal(c, SW_CONN_FAILED, reason);
}

static void to_closed(sw_client_t *c) {
  to_terminal(c, SW_CONN_CLOSED, NULL);
}

static void to_suspended(sw_client_t *c, const sw_errinfo_t *cause) {
  sw_conn_state_t prev = c->state;
  sw_errinfo_t e;
  swc_set_error(&e, SW_ERR_CONNECTION_SUSPENDED, 400, "connection suspended after %lld ms without a connection%s%s",
                (long long)c->state_ttl_ms, cause ? ": " : "", cause ? cause->message : "");
  c->state = SW_CONN_SUSPENDED;
  set_reason(c, &e);
  uint64_t retry = (uint64_t)c->t_susp_retry;
  uv_timer_start(&c->t_conn, on_conn_timer, retry, 0);
  emit(c, prev, &e, (int64_t)retry, false);
  if (c->freeing || c->state != SW_CONN_SUSPENDED) return;
  swc_channels_on_conn_state(c, SW_CONN_SUSPENDED, &e);
  if (c->freeing) return;
  swc_pubs_fail_all(c, &e); /* RTN7c */
}

/* ---- connecting ---- */

void swc_connection_failed_attempt(sw_client_t *c, const sw_errinfo_t *reason) {
  drop_ws(c);
  c->token_retried = false;
  uv_timer_stop(&c->t_conn);
  uint64_t now = uv_now(c->loop);
  if (!c->disconnected_at) c->disconnected_at = now;
  set_reason(c, reason);
  /* RTN14e: past connectionStateTtl, SUSPENDED. */
  if (now - c->disconnected_at >= (uint64_t)c->state_ttl_ms) {
    to_suspended(c, reason);
    return;
  }
  sw_conn_state_t prev = c->state;
  c->state = SW_CONN_DISCONNECTED;
  uint64_t retry = swc_backoff_ms(c->t_disc_retry, ++c->retry_count);
  uv_timer_start(&c->t_conn, on_conn_timer, retry, 0);
  swc_log(c, SW_LOG_INFO, "disconnected (%d %s), retrying in %llu ms", reason ? reason->code : 0,
          reason ? reason->message : "", (unsigned long long)retry);
  emit(c, prev, reason, (int64_t)retry, false);
}

/* A transport that was CONNECTED went away: reconnect at once and resume
 * (RTN15a, RTN15h3), passing briefly through DISCONNECTED (RTN15h2i). */
static void lost_connected(sw_client_t *c, const sw_errinfo_t *reason) {
  drop_ws(c);
  if (!c->disconnected_at) c->disconnected_at = uv_now(c->loop);
  set_reason(c, reason);
  sw_conn_state_t prev = c->state;
  c->state = SW_CONN_DISCONNECTED;
  swc_log(c, SW_LOG_INFO, "connection lost (%d %s), resuming", reason->code, reason->message);
  emit(c, prev, reason, 0, false);
  if (c->freeing || c->state != SW_CONN_DISCONNECTED) return;
  swc_connect_attempt(c);
}

static void on_transport_lost(sw_client_t *c, const sw_errinfo_t *reason) {
  switch (c->state) {
  case SW_CONN_CLOSING:
    to_closed(c);
    break;
  case SW_CONN_CONNECTED:
    lost_connected(c, reason);
    break;
  case SW_CONN_CONNECTING:
    swc_connection_failed_attempt(c, reason);
    break;
  default:
    drop_ws(c);
  }
}

static void on_idle_timer(uv_timer_t *t);

static void start_idle_timer(sw_client_t *c) {
  if (c->max_idle_ms <= 0) return;
  /* RTN23a: maxIdleInterval + realtimeRequestTimeout without any byte. */
  c->last_activity = uv_now(c->loop);
  uv_timer_start(&c->t_idle, on_idle_timer, (uint64_t)(c->max_idle_ms + c->t_request), 0);
}

static void on_idle_timer(uv_timer_t *t) {
  sw_client_t *c = t->data;
  /* Activity only stamps a time (cheap per frame); re-arm for the rest. */
  uint64_t limit = (uint64_t)(c->max_idle_ms + c->t_request), idle = uv_now(c->loop) - c->last_activity;
  if (idle < limit) {
    uv_timer_start(&c->t_idle, on_idle_timer, limit - idle, 0);
    return;
  }
  sw_errinfo_t e;
  swc_set_error(&e, SW_ERR_DISCONNECTED, 408, "no activity from the server for %lld ms",
                (long long)(c->max_idle_ms + c->t_request));
  on_transport_lost(c, &e);
}

static void on_conn_timer(uv_timer_t *t) {
  sw_client_t *c = t->data;
  sw_errinfo_t e;
  switch (c->state) {
  case SW_CONN_CONNECTING:
    swc_set_error(&e, SW_ERR_TIMEOUT, 504, "no CONNECTED within %lld ms", (long long)c->t_request);
    swc_connection_failed_attempt(c, &e);
    break;
  case SW_CONN_DISCONNECTED:
  case SW_CONN_SUSPENDED:
    swc_connect_attempt(c);
    break;
  case SW_CONN_CLOSING:
    to_closed(c);
    break;
  default:
    break;
  }
}

/* ---- WebSocket callbacks ---- */

static void ws_on_open(void *ud) {
  sw_client_t *c = ud;
  swc_log(c, SW_LOG_DEBUG, "websocket open");
}

static void ws_on_activity(void *ud) {
  sw_client_t *c = ud;
  if (c->ws_connected) c->last_activity = uv_now(c->loop);
}

static void ws_on_close(void *ud, int code) {
  sw_client_t *c = ud;
  sw_errinfo_t e;
  if (code < 0 && code > -10000)
    swc_set_error(&e, c->ws_connected ? SW_ERR_DISCONNECTED : SW_ERR_CONNECTION_FAILED, 503,
                  "connection to %s:%d failed: %s", c->host, c->port, uv_strerror(code));
  else if (swc_tls_is_error(code)) {
    char why[200];
    swc_set_error(&e, c->ws_connected ? SW_ERR_DISCONNECTED : SW_ERR_CONNECTION_FAILED, 503,
                  "connection to %s:%d failed: %s", c->host, c->port, swc_tls_strerror(code, why, sizeof why));
  } else if (code == SWC_WS_HANDSHAKE_ERROR)
    swc_set_error(&e, SW_ERR_CONNECTION_FAILED, 503, "WebSocket handshake with %s:%d failed", c->host, c->port);
  else if (code == SWC_WS_PROTOCOL_ERROR)
    swc_set_error(&e, SW_ERR_DISCONNECTED, 503, "WebSocket protocol error");
  else if (code == 0)
    swc_set_error(&e, SW_ERR_DISCONNECTED, 503, "the connection was closed (end of stream)");
  else
    swc_set_error(&e, SW_ERR_DISCONNECTED, 503, "the server closed the WebSocket (code %d)", code);
  on_transport_lost(c, &e);
}

/* Reads connectionDetails, which the shared decoder does not keep, from
 * the frame's views (the same reader as the receive path) rather than from
 * a json_t of the whole frame: converting every CONNECTED to a tree was 16k
 * instructions a connect (callgrind, bench connect). As json_object_get on
 * that tree did, a repeated key counts by its last value; unlike it, a
 * value elsewhere in the frame with no JSON form (which no server sends)
 * no longer hides the details. */
typedef struct details {
  wire_val_t d;                  /* connectionDetails */
  wire_val_t key, cid;           /* connectionKey, clientId */
  wire_val_t idle, ttl, max_size; /* maxIdleInterval, connectionStateTtl, maxMessageSize */
} details_t;

static int details_root(void *ctx, const char *k, size_t kl, const wire_val_t *v, sw_error_t *err) {
  (void)err;
  if (WIRE_KEY_IS(k, kl, "connectionDetails")) ((details_t *)ctx)->d = *v;
  return 0;
}

static int details_field(void *ctx, const char *k, size_t kl, const wire_val_t *v, sw_error_t *err) {
  details_t *x = ctx;
  (void)err;
  if (WIRE_KEY_IS(k, kl, "connectionKey")) x->key = *v;
  else if (WIRE_KEY_IS(k, kl, "clientId")) x->cid = *v;
  else if (WIRE_KEY_IS(k, kl, "maxIdleInterval")) x->idle = *v;
  else if (WIRE_KEY_IS(k, kl, "connectionStateTtl")) x->ttl = *v;
  else if (WIRE_KEY_IS(k, kl, "maxMessageSize")) x->max_size = *v;
  return 0;
}

/* A string view as a C string (up to a NUL, as strdup of a json_t's
 * value was), or NULL when it is not a string. */
static char *view_strdup(const wire_val_t *v) {
  if (v->kind != WIRE_STR) return NULL;
  size_t n = strnlen(v->s.p, v->s.len);
  char *s = malloc(n + 1);
  if (s) {
    memcpy(s, v->s.p, n);
    s[n] = 0;
  }
  return s;
}

typedef struct details_call {
  sw_client_t *c;
} details_call_t;

static int details_read(const wire_val_t *root, void *arg, sw_error_t *err) {
  sw_client_t *c = ((details_call_t *)arg)->c;
  details_t x;
  x.d.kind = x.key.kind = x.cid.kind = x.idle.kind = x.ttl.kind = x.max_size.kind = WIRE_NIL;
  if (root->kind != WIRE_MAP || root->ops->each(root, details_root, &x, err)) return -1;
  if (x.d.kind != WIRE_MAP || x.d.ops->each(&x.d, details_field, &x, err)) return -1;
  if (x.key.kind == WIRE_STR) {
    free(c->conn_key);
    c->conn_key = view_strdup(&x.key);
  }
  free(c->server_client_id);
  c->server_client_id = view_strdup(&x.cid);
  if (x.idle.kind == WIRE_INT) c->max_idle_ms = x.idle.i;
  if (x.ttl.kind == WIRE_INT) c->state_ttl_ms = x.ttl.i;
  if (x.max_size.kind == WIRE_INT) c->max_message_size = x.max_size.i;
  return 0;
}

static void read_details(sw_client_t *c, const uint8_t *raw, size_t n) {
  sw_error_t err;
  details_call_t call = {.c = c};
  if (c->fmt == SW_FMT_MSGPACK) {
    sw_buf_t tree = {0};
    swc_mp_read(&tree, raw, n, details_read, &call, &err);
    buf_free(&tree);
  } else {
    codec_json_read(raw, n, details_read, &call, &err);
  }
}

static void on_connected(sw_client_t *c, const sw_pmsg_t *m, const uint8_t *raw, size_t n) {
  sw_errinfo_t e = {0};
  if (m->error.code) swc_err_from(&e, &m->error);
  if (c->state == SW_CONN_CONNECTED && c->ws_connected) {
    /* RTN24: a CONNECTED on a live connection answers an in-band AUTH. */
    read_details(c, raw, n);
    swc_log(c, SW_LOG_DEBUG, "reauthorised in-band");
    swc_emit_update(c, e.code ? &e : NULL);
    return;
  }
  if (c->state != SW_CONN_CONNECTING || !m->connection_id) return;
  uv_timer_stop(&c->t_conn);
  bool resumed = c->conn_id && strcmp(c->conn_id, m->connection_id) == 0 && !e.code;
  if (!resumed) c->msg_serial = 0; /* RTN15c7: a new connection counts from 0 */
  free(c->conn_id);
  c->conn_id = strdup(m->connection_id);
  read_details(c, raw, n);
  c->ws_connected = true;
  c->retry_count = 0;
  c->disconnected_at = 0;
  c->token_retried = false;
  if (e.code) set_reason(c, &e);
  sw_conn_state_t prev = c->state;
  c->state = SW_CONN_CONNECTED;
  start_idle_timer(c);
  swc_log(c, SW_LOG_INFO, "connected %s (%s)", c->conn_id, resumed ? "resumed" : "new");
  /* RTN19a2: unacknowledged publishes first, with their msgSerial if the
   * connection was resumed, renumbered from 0 if not (RTN15c7); anything
   * published from the callbacks below comes after them. */
  swc_pubs_send_all(c, resumed);
  emit(c, prev, e.code ? &e : NULL, 0, resumed);
  if (c->freeing || c->state != SW_CONN_CONNECTED) return;
  swc_channels_on_connected(c); /* RTL3d: (re-)attach with channelSerial (RTN15c6, RTL4c1) */
}

/* A token error from the server, in DISCONNECTED or ERROR (RTN14b, RTN15h). */
static void on_token_error(sw_client_t *c, const sw_errinfo_t *err) {
  if (!swc_auth_renewable(c)) {
    sw_errinfo_t e;
    swc_set_error(&e, SW_ERR_NO_RENEWAL, 401, "%s (%d), and no way to renew the token", err->message, err->code);
    to_failed(c, &e); /* RSA4a, RTN15h1 */
    return;
  }
  free(c->token);
  c->token = NULL;
  if (c->token_retried) {
    /* The renewed token was refused too: back off rather than loop (RTN14b). */
    c->token_retried = false;
    swc_connection_failed_attempt(c, err);
    return;
  }
  c->token_retried = true;
  drop_ws(c);
  set_reason(c, err);
  if (c->state == SW_CONN_CONNECTED) {
    sw_conn_state_t prev = c->state;
    c->state = SW_CONN_DISCONNECTED;
    if (!c->disconnected_at) c->disconnected_at = uv_now(c->loop);
    emit(c, prev, err, 0, false);
    if (c->freeing || c->state != SW_CONN_DISCONNECTED) return;
  }
  swc_connect_attempt(c); /* renews, then resumes (RTN15h2) */
}

static void on_server_disconnected(sw_client_t *c, const sw_pmsg_t *m) {
  sw_errinfo_t e;
  if (m->error.code) swc_err_from(&e, &m->error);
  else swc_set_error(&e, SW_ERR_DISCONNECTED, 503, "disconnected by the server");
  swc_log(c, SW_LOG_INFO, "DISCONNECTED %d %s", e.code, e.message);
  drop_ws(c);
  if (swc_is_token_error(&e) && (c->state == SW_CONN_CONNECTED || c->state == SW_CONN_CONNECTING)) {
    on_token_error(c, &e);
    return;
  }
  on_transport_lost(c, &e);
}

static void on_server_error(sw_client_t *c, const sw_pmsg_t *m) {
  sw_errinfo_t e;
  if (m->error.code) swc_err_from(&e, &m->error);
  else swc_set_error(&e, SW_ERR_CHANNEL_FAILED, 500, "connection error");
  swc_log(c, SW_LOG_INFO, "ERROR %d %s", e.code, e.message);
  drop_ws(c);
  if (swc_is_token_error(&e) && (c->state == SW_CONN_CONNECTED || c->state == SW_CONN_CONNECTING)) {
    on_token_error(c, &e);
    return;
  }
  if (c->state == SW_CONN_CLOSING) {
    to_closed(c);
    return;
  }
  to_failed(c, &e); /* RTN14g, RTN15i */
}

/* A received frame, for on_pmsg (CONNECTED reads its raw details again). */
typedef struct frame {
  sw_client_t *c;
  const uint8_t *p;
  size_t n;
} frame_t;

static void on_pmsg(void *ud, const swc_rx_pmsg_t *r) {
  const frame_t *f = ud;
  sw_client_t *c = f->c;
  const sw_pmsg_t *m = &r->pm;
  switch (m->action) {
  case SW_ACTION_CONNECTED:
    on_connected(c, m, f->p, f->n);
    break;
  case SW_ACTION_DISCONNECTED:
    on_server_disconnected(c, m);
    break;
  case SW_ACTION_ERROR:
    if (m->channel) swc_channel_on_pmsg(c, r);
    else on_server_error(c, m);
    break;
  case SW_ACTION_CLOSED:
    if (c->state == SW_CONN_CLOSING || c->state == SW_CONN_CONNECTED) to_closed(c);
    break;
  case SW_ACTION_HEARTBEAT:
    break;
  case SW_ACTION_AUTH:
    swc_log(c, SW_LOG_DEBUG, "server asked for reauthentication");
    swc_auth_start(c, true); /* RTN22 */
    break;
  case SW_ACTION_ACK:
  case SW_ACTION_NACK:
    swc_pubs_on_ack(c, m, m->action == SW_ACTION_NACK);
    break;
  default:
    if (m->channel) swc_channel_on_pmsg(c, r);
    break;
  }
}

static void ws_on_message(void *ud, bool text, const uint8_t *p, size_t n) {
  sw_client_t *c = ud;
  (void)text;
  frame_t f = {.c = c, .p = p, .n = n};
  sw_error_t err = {0};
  if (swc_rx_decode(c->fmt, p, n, on_pmsg, &f, &err))
    swc_log(c, SW_LOG_WARN, "undecodable protocol message dropped: %s", err.message);
}

static const swc_ws_cbs_t ws_cbs = {
    .on_open = ws_on_open, .on_message = ws_on_message, .on_activity = ws_on_activity, .on_close = ws_on_close};

void swc_client_endpoint(const sw_client_t *c, swc_endpoint_t *ep) {
  *ep = (swc_endpoint_t){.host = c->host, .port = c->port, .tls = c->tls_ctx};
  if (c->local_len) {
    ep->local = (const struct sockaddr *)&c->local;
    ep->local_len = c->local_len;
  }
}

void swc_open_transport(sw_client_t *c) {
  sw_buf_t t = {0};
  int rc = buf_printf(&t, "/?v=%d&format=%s&heartbeats=true&agent=libswitchboard%%2F%s", SW_PROTOCOL_VERSION,
                      c->fmt == SW_FMT_JSON ? "json" : "msgpack", SW_CLIENT_VERSION);
  if (!c->echo) rc |= buf_append_str(&t, "&echo=false");
  if (c->client_id_opt) rc |= buf_append_str(&t, "&clientId=") | swc_url_encode(&t, c->client_id_opt);
  if (c->token_mode) rc |= buf_append_str(&t, "&access_token=") | swc_url_encode(&t, c->token ? c->token : "");
  else rc |= buf_append_str(&t, "&key=") | swc_url_encode(&t, c->key);
  if (c->conn_key) rc |= buf_append_str(&t, "&resume=") | swc_url_encode(&t, c->conn_key); /* RTN15b */
  rc |= buf_append_byte(&t, 0);
  drop_ws(c);
  swc_endpoint_t ep;
  swc_client_endpoint(c, &ep);
  if (!rc) c->ws = swc_ws_open(c->loop, &ep, (const char *)t.data, MAX_INBOUND_MESSAGE, &ws_cbs, c);
  buf_free(&t);
  if (!c->ws) {
    sw_errinfo_t e;
    swc_set_error(&e, SW_ERR_CONNECTION_FAILED, 500, "out of memory opening the transport");
    swc_connection_failed_attempt(c, &e);
    return;
  }
  swc_log(c, SW_LOG_DEBUG, "opening %s://%s:%d (%s)", c->tls_ctx ? "wss" : "ws", c->host, c->port,
          c->conn_key ? "resume" : "new");
  uv_timer_start(&c->t_conn, on_conn_timer, (uint64_t)c->t_request, 0); /* RTN14c */
}

void swc_connect_attempt(sw_client_t *c) {
  uv_timer_stop(&c->t_conn);
  sw_conn_state_t prev = c->state;
  c->state = SW_CONN_CONNECTING;
  if (prev != SW_CONN_CONNECTING) {
    emit(c, prev, NULL, 0, false);
    if (c->freeing || c->state != SW_CONN_CONNECTING) return;
  }
  if (c->token_mode && !swc_token_usable(c)) {
    if (!swc_auth_renewable(c)) {
      sw_errinfo_t e;
      swc_set_error(&e, SW_ERR_NO_RENEWAL, 401, "the token has expired and there is no way to renew it");
      to_failed(c, &e);
      return;
    }
    swc_auth_start(c, false); /* continues in swc_auth_token_result */
    return;
  }
  swc_open_transport(c);
}

/* ---- public API ---- */

static void destroy(sw_client_t *c) {
  swc_defer_drop_all(c);
  swc_pubs_free_all(c);
  swc_channels_free(c);
  free(c->host);
  SSL_CTX_free(c->tls_ctx);
  if (c->key) OPENSSL_cleanse(c->key, strlen(c->key));
  if (c->key_secret) OPENSSL_cleanse(c->key_secret, strlen(c->key_secret));
  free(c->key);
  free(c->key_name);
  free(c->key_secret);
  free(c->token_opt);
  free(c->client_id_opt);
  free(c->conn_id);
  free(c->conn_key);
  free(c->server_client_id);
  free(c->token);
  if (c->own_loop) {
    /* Let anything still closing (sockets, resolver requests) finish. */
    while (uv_run(c->loop, UV_RUN_DEFAULT)) {
    }
    uv_loop_close(c->loop);
    free(c->loop);
  }
  free(c);
}

void swc_handle_close(uv_handle_t *h) {
  sw_client_t *c = h->data;
  if (--c->handles == 0 && c->freeing && !c->own_loop && !c->in_run) destroy(c);
}

static void init_timer(sw_client_t *c, uv_timer_t *t) {
  uv_timer_init(c->loop, t);
  t->data = c;
  c->handles++;
}

static char *dup_opt(const char *s, bool *oom) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) *oom = true;
  return d;
}

SW_API int sw_client_new(const sw_options_t *o, sw_client_t **out, sw_errinfo_t *err) {
  if (out) *out = NULL;
  if (!o || !out) {
    swc_set_error(err, 40000, 400, "options and out are required");
    return SW_EINVAL;
  }
  if (!o->key && !o->token && !o->auth_cb) {
    swc_set_error(err, 40106, 401, "no credentials: give a key, a token or an auth callback");
    return SW_EINVAL;
  }
  if (!o->host || !*o->host || o->port <= 0 || o->port > 65535 ||
      (o->format != SW_FORMAT_JSON && o->format != SW_FORMAT_MSGPACK)) {
    swc_set_error(err, 40000, 400, "invalid host, port or format");
    return SW_EINVAL;
  }
  if (o->client_id && (!*o->client_id || strcmp(o->client_id, "*") == 0)) {
    swc_set_error(err, 40012, 400, "invalid clientId");
    return SW_EINVAL;
  }
  if (o->tls_ca_file && !o->tls) {
    swc_set_error(err, 40000, 400, "tls_ca_file is set but tls is not");
    return SW_EINVAL;
  }
  /* Parsed here, so a typo fails sw_client_new rather than every connect. */
  struct sockaddr_storage local = {0};
  socklen_t local_len = 0;
  if (o->local_address) {
    if (uv_ip4_addr(o->local_address, 0, (struct sockaddr_in *)&local) == 0) {
      local_len = sizeof(struct sockaddr_in);
    } else if (uv_ip6_addr(o->local_address, 0, (struct sockaddr_in6 *)&local) == 0) {
      local_len = sizeof(struct sockaddr_in6);
    } else {
      swc_set_error(err, 40000, 400, "invalid local_address: expected a numeric IPv4 or IPv6 address");
      return SW_EINVAL;
    }
  }
  sw_client_t *c = calloc(1, sizeof *c);
  if (!c) goto oom;
  c->local = local;
  c->local_len = local_len;
  bool oom = false;
  c->host = dup_opt(o->host, &oom);
  c->port = o->port;
  c->key = dup_opt(o->key, &oom);
  c->token_opt = dup_opt(o->token, &oom);
  c->client_id_opt = dup_opt(o->client_id, &oom);
  c->token = dup_opt(o->token, &oom);
  if (oom) goto oom;
  if (c->key && swc_parse_key(c->key, &c->key_name, &c->key_secret)) {
    swc_set_error(err, 40005, 400, "invalid key: expected appId.keyId:secret");
    destroy(c);
    return SW_EINVAL;
  }
  /* One context per client: the trust store is loaded once, not at every
   * (re)connect or REST request. */
  sw_errinfo_t tls_err = {0};
  if (o->tls && !(c->tls_ctx = swc_tls_ctx_new(o->tls_ca_file, &tls_err))) {
    if (err) *err = tls_err;
    int rc = tls_err.code == 40000 ? SW_EINVAL : SW_EIO;
    destroy(c);
    return rc;
  }
  c->auth_cb = o->auth_cb;
  c->auth_ud = o->auth_ud;
  c->use_token_auth = o->use_token_auth;
  c->token_mode = !(c->key && !o->use_token_auth && !o->token && !o->auth_cb);
  c->fmt = o->format == SW_FORMAT_JSON ? SW_FMT_JSON : SW_FMT_MSGPACK;
  c->echo = o->echo;
  c->idempotent = o->idempotent;
  c->queue_messages = o->queue_messages;
  c->on_state = o->on_state;
  c->state_ud = o->state_ud;
  c->t_request = o->realtime_request_timeout_ms > 0 ? o->realtime_request_timeout_ms : 10000;
  c->t_http = o->http_request_timeout_ms > 0 ? o->http_request_timeout_ms : 10000;
  c->t_disc_retry = o->disconnected_retry_ms > 0 ? o->disconnected_retry_ms : 15000;
  c->t_susp_retry = o->suspended_retry_ms > 0 ? o->suspended_retry_ms : 30000;
  c->t_chan_retry = o->channel_retry_ms > 0 ? o->channel_retry_ms : 15000;
  c->state_ttl_opt = o->connection_state_ttl_ms > 0 ? o->connection_state_ttl_ms : 120000;
  c->state_ttl_ms = c->state_ttl_opt;
  c->log_cb = o->log_cb;
  c->log_ud = o->log_ud;
  c->log_level = o->log_level;
  if (c->token) swc_token_times(c->token, &c->token_issued, &c->token_expires);
  uint8_t rnd[6];
  if (swc_random(rnd, sizeof rnd)) goto io;
  for (size_t i = 0; i < sizeof rnd; i++) snprintf(c->id_prefix + 2 * i, 3, "%02x", rnd[i]);

  if (o->loop) {
    c->loop = (uv_loop_t *)o->loop;
  } else {
    c->loop = malloc(sizeof *c->loop);
    if (!c->loop) goto oom;
    if (uv_loop_init(c->loop)) {
      free(c->loop);
      c->loop = NULL;
      goto io;
    }
    c->own_loop = true;
  }
  init_timer(c, &c->t_conn);
  init_timer(c, &c->t_idle);
  init_timer(c, &c->t_auth);
  init_timer(c, &c->t_chan);
  init_timer(c, &c->t_defer);
  init_timer(c, &c->t_stop);
  c->state = SW_CONN_INITIALIZED;
  *out = c;
  return SW_OK;
oom:
  swc_set_error(err, 50000, 500, "out of memory");
  if (c) destroy(c);
  return SW_ENOMEM;
io:
  swc_set_error(err, 50000, 500, "could not create an event loop or random bytes");
  destroy(c);
  return SW_EIO;
}

SW_API void sw_client_free(sw_client_t *c) {
  if (!c || c->freeing) return;
  c->freeing = true;
  drop_ws(c);
  swc_auth_cancel(c);
  swc_rest_cancel_all(c);
  uv_timer_t *timers[] = {&c->t_conn, &c->t_idle, &c->t_auth, &c->t_chan, &c->t_defer, &c->t_stop};
  for (size_t i = 0; i < sizeof timers / sizeof *timers; i++) uv_close((uv_handle_t *)timers[i], swc_handle_close);
  if (c->own_loop && !c->in_run) {
    while (c->handles > 0 && uv_run(c->loop, UV_RUN_ONCE)) {
    }
    destroy(c);
  }
}

SW_API int sw_client_connect(sw_client_t *c) {
  if (!c || c->freeing) return SW_EINVAL;
  switch (c->state) {
  case SW_CONN_CONNECTING:
  case SW_CONN_CONNECTED:
    return SW_OK;
  case SW_CONN_CLOSING:
    return SW_ESTATE;
  case SW_CONN_DISCONNECTED:
  case SW_CONN_SUSPENDED:
    break;
  default:
    c->disconnected_at = 0;
    c->retry_count = 0;
    c->has_reason = false;
    c->state_ttl_ms = c->state_ttl_opt;
    break;
  }
  swc_connect_attempt(c);
  return SW_OK;
}

SW_API int sw_client_close(sw_client_t *c) {
  if (!c || c->freeing) return SW_EINVAL;
  switch (c->state) {
  case SW_CONN_CLOSING:
  case SW_CONN_CLOSED:
  case SW_CONN_FAILED:
    return SW_OK;
  case SW_CONN_CONNECTED:
    if (c->ws_connected) {
      sw_pmsg_t m = {.action = SW_ACTION_CLOSE};
      swc_send_pmsg(c, &m);
      sw_conn_state_t prev = c->state;
      c->state = SW_CONN_CLOSING;
      uv_timer_start(&c->t_conn, on_conn_timer, (uint64_t)c->t_request, 0);
      emit(c, prev, NULL, 0, false);
      return SW_OK;
    }
    /* fall through */
  default:
    to_closed(c);
    return SW_OK;
  }
}

SW_API int sw_client_authorize(sw_client_t *c) {
  if (!c || c->freeing) return SW_EINVAL;
  if (!swc_auth_renewable(c)) return SW_ESTATE;
  if (c->state == SW_CONN_CONNECTED) {
    swc_auth_start(c, true);
  } else {
    /* Next connect uses a new token. */
    free(c->token);
    c->token = NULL;
    if (c->state == SW_CONN_CONNECTING && !c->ws) swc_auth_start(c, false);
  }
  return SW_OK;
}

SW_API sw_conn_state_t sw_client_state(const sw_client_t *c) {
  return c ? c->state : SW_CONN_FAILED;
}

SW_API const char *sw_client_connection_id(const sw_client_t *c) {
  return c ? c->conn_id : NULL;
}

SW_API const char *sw_client_connection_key(const sw_client_t *c) {
  return c ? c->conn_key : NULL;
}

SW_API const char *sw_client_client_id(const sw_client_t *c) {
  return c ? c->server_client_id : NULL;
}

SW_API const sw_errinfo_t *sw_client_error_reason(const sw_client_t *c) {
  return c && c->has_reason ? &c->reason : NULL;
}

SW_API struct uv_loop_s *sw_client_loop(const sw_client_t *c) {
  return c ? c->loop : NULL;
}

SW_API int sw_client_fileno(const sw_client_t *c) {
  return c && c->ws ? swc_ws_fileno(c->ws) : -1;
}

SW_API int sw_client_run(sw_client_t *c) {
  if (!c) return SW_EINVAL;
  if (c->in_run || c->freeing) return SW_ESTATE;
  c->in_run++;
  uv_run(c->loop, UV_RUN_DEFAULT);
  c->in_run--;
  /* Freed from a callback meanwhile: finish here, where nothing uses it. */
  if (c->freeing && c->handles == 0) destroy(c);
  return SW_OK;
}

static void on_stop_timer(uv_timer_t *t) {
  sw_client_t *c = t->data;
  uv_stop(c->loop);
}

SW_API int sw_client_run_for(sw_client_t *c, int64_t timeout_ms) {
  if (!c) return SW_EINVAL;
  if (c->in_run || c->freeing) return SW_ESTATE;
  uv_timer_start(&c->t_stop, on_stop_timer, (uint64_t)(timeout_ms > 0 ? timeout_ms : 0), 0);
  c->in_run++;
  uv_run(c->loop, UV_RUN_DEFAULT);
  c->in_run--;
  if (c->freeing) {
    if (c->handles == 0) destroy(c);
    return SW_OK;
  }
  uv_timer_stop(&c->t_stop);
  return SW_OK;
}

SW_API void sw_client_stop(sw_client_t *c) {
  if (c && c->loop) uv_stop(c->loop);
}
