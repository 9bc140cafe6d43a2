#include "rest/rest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/channel_name.h"
#include "auth/jwt.h"
#include "auth/key_auth.h"
#include "auth/token.h"
#include "core/conn.h"
#include "core/mutation.h"
#include "core/presence.h"
#include "core/principal.h"
#include "proto/textenc.h"
#include "rest/keys.h"
#include "rest/route.h"
#include "core/channel.h"
#include "core/serial.h"
#include "core/server.h"
#include "core/sock.h"
#include "metrics/metrics.h"
#include "net/http_parse.h"
#include "net/http_response.h"
#include "net/origin.h"
#include "net/url.h"
#include "util/clock.h"
#include "util/log.h"


/* Every response carries these: CORS for browsers, with the X-Ably-*
 * headers exposed, since ably-js in a browser recognises Ably errors only
 * by X-Ably-ErrorCode. */
void rest_cors_headers(sw_buf_t *h, const sw_sock_t *s) {
  /* ably-js in a browser sends Authorization with credentials mode
   * "include", which a wildcard origin does not satisfy: echo the origin. */
  if (s->origin)
    buf_printf(h, "Access-Control-Allow-Origin: %s\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n",
               s->origin);
  else
    buf_append_str(h, "Access-Control-Allow-Origin: *\r\n");
}

static void common_headers(sw_buf_t *h, const sw_sock_t *s, const sw_server_t *srv) {
  rest_cors_headers(h, s);
  buf_printf(h,
             "Access-Control-Expose-Headers: Link, X-Ably-ErrorCode, X-Ably-ErrorMessage, X-Ably-ServerId\r\n"
             "X-Ably-ServerId: %s\r\n",
             srv->server_id);
}

static const char *content_type(sw_format_t fmt) {
  return fmt == SW_FMT_MSGPACK ? "application/x-msgpack" : "application/json";
}

void rest_reply(sw_sock_t *s, int status, sw_format_t fmt, const sw_buf_t *body, bool keep_alive,
                const char *extra_headers) {
  sw_buf_t h = {0}, out = {0};
  common_headers(&h, s, s->srv);
  if (extra_headers) buf_append_str(&h, extra_headers);
  buf_append_byte(&h, 0);
  size_t blen = body ? body->len : 0;
  http_response_head(&out, status, blen ? content_type(fmt) : NULL, blen, (const char *)h.data, keep_alive);
  if (blen) buf_append(&out, body->data, blen);
  sock_send_bytes(s, out.data, out.len);
  buf_free(&h);
  buf_free(&out);
  if (!keep_alive) sock_close(s, true);
}

void rest_reply_value(sw_sock_t *s, int status, sw_format_t fmt, const json_t *v, bool keep_alive,
                      const char *extra_headers) {
  sw_buf_t body = {0};
  codec_encode_value(fmt, v, &body);
  rest_reply(s, status, fmt, &body, keep_alive, extra_headers);
  buf_free(&body);
}

void rest_error(sw_sock_t *s, sw_format_t fmt, const sw_error_t *e, bool keep_alive) {
  /* Refused credentials at info, server faults as warnings; the code only,
   * since a message may quote what the client sent. */
  int level = e->status >= 500 ? SW_LOG_WARN : e->status == 401 || e->status == 403 ? SW_LOG_INFO : SW_LOG_DEBUG;
  log_ev(level, "http.error", NULL, NULL, e->code, "HTTP request refused with status %d", e->status);
  metrics_auth_failure(e->code);
  sw_buf_t h = {0}, out = {0};
  common_headers(&h, s, s->srv);
  buf_append_byte(&h, 0);
  if (http_error_response(&out, fmt, e, (const char *)h.data, keep_alive) == 0)
    sock_send_bytes(s, out.data, out.len);
  else
    keep_alive = false; /* out of memory: no answer, so no next request either */
  buf_free(&h);
  buf_free(&out);
  if (!keep_alive) sock_close(s, true);
}

/* Response format: msgpack when the client accepts it (RSC8). */
static sw_format_t response_format(const sw_http_req_t *req) {
  char f[16];
  if (url_query_get(req->query, "format", f, sizeof f) >= 0) return strcmp(f, "msgpack") == 0 ? SW_FMT_MSGPACK : SW_FMT_JSON;
  const sw_slice_t *acc = http_req_header(req, "Accept");
  if (acc && memmem(acc->p, acc->n, "application/x-msgpack", 21)) return SW_FMT_MSGPACK;
  return SW_FMT_JSON;
}

sw_format_t rest_body_format(const sw_http_req_t *req) {
  const sw_slice_t *ct = http_req_header(req, "Content-Type");
  return ct && memmem(ct->p, ct->n, "msgpack", 7) ? SW_FMT_MSGPACK : SW_FMT_JSON;
}

/* Decodes base64 into out (NUL-terminated); the length, or -1 if invalid,
 * too long or holding a NUL. */
static ssize_t b64_into(const char *in, size_t n, char *out, size_t cap) {
  uint8_t *dec;
  size_t len;
  if (textenc_base64_decode(in, n, &dec, &len)) return -1;
  ssize_t rc = -1;
  if (len < cap && !memchr(dec, '\0', len)) {
    memcpy(out, dec, len);
    out[len] = '\0';
    rc = (ssize_t)len;
  }
  OPENSSL_cleanse(dec, len);
  free(dec);
  return rc;
}

/* A Bearer value is the token itself (the spec's tests) or its base64
 * (what ably-js and ably-go send): take it raw when it already looks like a
 * token, else decode it. */
static int bearer_token(const sw_slice_t *v, char *out, size_t cap) {
  if (token_looks_like(v->p, v->n) || jwt_looks_like(v->p, v->n)) {
    if (v->n >= cap) return -1;
    memcpy(out, v->p, v->n);
    out[v->n] = '\0';
    return (int)v->n;
  }
  ssize_t n = b64_into(v->p, v->n, out, cap);
  if (n >= 0) return (int)n;
  /* Not base64 either: pass it on raw, so the token checks say what is wrong. */
  if (v->n >= cap) return -1;
  memcpy(out, v->p, v->n);
  out[v->n] = '\0';
  return (int)v->n;
}

/* RSA11 Basic auth, Bearer tokens (RSA3), the key / access_token query
 * parameters, or the configured session cookie. */
int rest_authenticate(sw_sock_t *s, const sw_http_req_t *req, sw_principal_t *p, sw_error_t *err) {
  sw_server_t *srv = s->srv;
  size_t cap = (srv->cfg->auth.max_token_len ? srv->cfg->auth.max_token_len : 8192) * 2 + 2;
  char *buf = malloc(cap);
  if (!buf) return errors_set(err, SW_E_INTERNAL, "out of memory");
  const sw_slice_t *auth = http_req_header(req, "Authorization");
  ssize_t n;
  int rc;
  if (auth && auth->n >= 7 && strncasecmp(auth->p, "Bearer ", 7) == 0) {
    sw_slice_t v = {auth->p + 7, auth->n - 7};
    n = bearer_token(&v, buf, cap);
    rc = n < 0 ? errors_set(err, 40143, "malformed Bearer token") : principal_from_token(srv, buf, (size_t)n, p, err);
  } else if (auth) {
    if (key_auth_basic_decode(auth->p, auth->n, buf, cap)) rc = errors_set(err, SW_E_INVALID_CREDENTIAL, "malformed Authorization header");
    else rc = conn_basic_allowed(s, err) ? principal_from_key(srv, buf, strlen(buf), p, err) : -1;
  } else if ((n = url_query_get(req->query, "key", buf, cap)) >= 0) {
    rc = conn_basic_allowed(s, err) ? principal_from_key(srv, buf, (size_t)n, p, err) : -1;
  } else if ((n = url_query_get(req->query, "access_token", buf, cap)) >= 0 ||
             (n = url_query_get(req->query, "accessToken", buf, cap)) >= 0) {
    rc = principal_from_token(srv, buf, (size_t)n, p, err);
  } else {
    /* The configured session cookie: its value is the token. */
    n = origin_cookie_get(req, srv->cfg->auth.cookie_name, buf, cap);
    rc = n >= 0 ? principal_from_token(srv, buf, (size_t)n, p, err)
         : n == -2 ? errors_set(err, SW_E_INVALID_CREDENTIAL, "malformed token cookie") /* as on the WebSocket */
                   : -1;
    if (rc && !err->code) errors_set(err, SW_E_INVALID_CREDENTIALS, "no authentication credentials given");
  }
  OPENSSL_cleanse(buf, cap);
  free(buf);
  return rc;
}

static void get_time(route_ctx_t *r) {
  json_t *v = json_pack("[I]", (json_int_t)clock_now_ms());
  rest_reply_value(r->s, 200, r->fmt, v, r->keep_alive, NULL);
  json_decref(v);
}

/* TM2h: a REST message carrying a realtime connection's connectionKey is
 * published on behalf of that connection: it takes its connectionId (and
 * its clientId, when the connection is identified). A key that names no
 * connection of this app, a clientId other than the connection's, or a
 * connectionId other than its own (or one without a key) is Ably's 40006. */
static void on_behalf(route_ctx_t *r, sw_msg_t *m, sw_error_t *err) {
  sw_conn_t *c = NULL;
  if (m->connection_key && !(c = conn_find_by_key(r->s->srv, m->connection_key, r->app))) {
    errors_set(err, 40006, "Malformed message; invalid connectionKey");
    return;
  }
  if (m->connection_id && (!c || strcmp(m->connection_id, c->id) != 0)) {
    errors_set(err, 40006, "Malformed message; mismatched connectionId");
    return;
  }
  if (!c) return;
  const char *cid = c->client_id && strcmp(c->client_id, "*") ? c->client_id : NULL;
  if (cid && m->client_id && strcmp(m->client_id, cid) != 0) {
    errors_set(err, 40006, "Malformed message; clientId %.64s does not match the connection's", m->client_id);
    return;
  }
  if (cid && !m->client_id) m->client_id = strdup(cid);
  free(m->connection_id);
  m->connection_id = strdup(c->id);
}

/* Checks and stamps the messages of a REST publish on ch (one channel of a
 * batch publish too): clientId (RSA7), userClaim, timestamp, no updates,
 * size. 0, or -1 with err. */
int rest_prepare_publish(route_ctx_t *r, sw_channel_t *ch, sw_msg_t *msgs, size_t n, sw_error_t *err) {
  size_t total = 0;
  int64_t now = clock_now_ms();
  if (app_namespace_transport_check(ch->ns, r->s->secure, err)) return -1;
  for (size_t i = 0; i < n && !err->code; i++) {
    sw_msg_t *m = &msgs[i];
    total += msg_size(m);
    if (principal_check_message_client_id(&r->p, r->client_id, &m->client_id, err))
      break;
    if (m->extras) {
      json_object_del(m->extras, "userClaim");
      json_object_del(m->extras, "delta"); /* the server's (RTL19), as on realtime */
    }
    json_t *claim = principal_channel_claim(&r->p, ch->name);
    if (claim && (m->extras || (m->extras = json_object()))) json_object_set(m->extras, "userClaim", claim);
    if (m->action > 0)
      errors_set(err, ch->ns->mutable_messages ? SW_E_BAD_REQUEST : SW_E_MUTABLE_NOT_ENABLED,
                 "message updates, deletes and appends are not %s", ch->ns->mutable_messages ? "supported yet" : "enabled on this channel");
    if (!m->timestamp) m->timestamp = now;
    m->action = 0;
    if (!err->code) on_behalf(r, m, err);
    free(m->connection_key);
    m->connection_key = NULL;
  }
  if (!err->code && n == 0) errors_set(err, SW_E_BAD_REQUEST, "no messages to publish");
  if (!err->code && total > (size_t)r->s->srv->cfg->limits.max_message_size)
    errors_set(err, SW_E_MESSAGE_TOO_LARGE, "message size %zu exceeds maxMessageSize %lld", total,
               (long long)r->s->srv->cfg->limits.max_message_size);
  return err->code ? -1 : 0;
}

static void publish(route_ctx_t *r, sw_channel_t *ch) {
  sw_error_t err = {0};
  if (!route_require(r, ch->name, SW_OP_PUBLISH, "publish")) return;
  sw_msg_t *msgs = NULL;
  size_t n = 0;
  if (codec_decode_msgs(rest_body_format(r->req), (const uint8_t *)r->req->body.p, r->req->body.n, &msgs, &n, &err)) {
    rest_error(r->s, r->fmt, &err, r->keep_alive);
    return;
  }
  if (rest_prepare_publish(r, ch, msgs, n, &err)) {
    for (size_t i = 0; i < n; i++) msg_clear(&msgs[i]);
    free(msgs);
    rest_error(r->s, r->fmt, &err, r->keep_alive);
    return;
  }
  sw_publisher_t who = {.rest_sock = r->s, .rest_format = r->fmt, .rest_keep_alive = r->keep_alive,
                        .principal = &r->p, .done = rest_publish_done};
  if (channel_publish(ch, msgs, n, &who, &err)) rest_error(r->s, r->fmt, &err, r->keep_alive);
}

void rest_publish_done(const sw_publisher_t *who, const char *channel, const sw_error_t *err, char **serials,
                       size_t n) {
  sw_sock_t *s = who->rest_sock;
  sw_format_t fmt = (sw_format_t)who->rest_format;
  bool keep_alive = who->rest_keep_alive, version = who->rest_version;
  if (s->closing) return;
  if (err && err->code) {
    rest_error(s, fmt, err, keep_alive);
    return;
  }
  if (version) {
    /* RSL15: an update/delete/append answers with its version serial. */
    json_t *v = json_pack("{s:s?}", "versionSerial", n ? serials[0] : NULL);
    rest_reply_value(s, 200, fmt, v, keep_alive, NULL);
    json_decref(v);
    return;
  }
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(arr, serials[i] ? json_string(serials[i]) : json_null());
  json_t *v = json_pack("{s:s, s:o}", "channel", channel, "serials", arr);
  rest_reply_value(s, 201, fmt, v, keep_alive, NULL);
  json_decref(v);
}

/* RSL8: ChannelDetails. */
static void channel_status(route_ctx_t *r, const char *name) {
  if (!route_require(r, name, SW_OP_CHANNEL_METADATA, "channel status (channel-metadata)")) return;
  sw_channel_t *ch = channel_find(r->s->srv, r->app, name);
  /* On a cluster node holding the channel, the other nodes' counts too. */
  sw_occupancy_t o = channel_occupancy(ch);
  json_int_t conns = o.n[SW_OCC_CONNECTIONS], pubs = o.n[SW_OCC_PUBLISHERS], subs = o.n[SW_OCC_SUBSCRIBERS],
             pconns = o.n[SW_OCC_PRESENCE_CONNECTIONS], psubs = o.n[SW_OCC_PRESENCE_SUBSCRIBERS];
  json_int_t members = o.n[SW_OCC_PRESENCE_MEMBERS];
  json_t *v = json_pack("{s:s, s:s, s:{s:b, s:{s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}}}}", "channelId", name,
                        "name", name, "status", "isActive", conns > 0, "occupancy", "metrics", "connections",
                        conns, "publishers", pubs, "subscribers", subs, "presenceConnections", pconns,
                        "presenceMembers", members, "presenceSubscribers", psubs,
                        "objectPublishers", pubs);
  rest_reply_value(r->s, 200, r->fmt, v, r->keep_alive, NULL);
  json_decref(v);
}

/* Splits "/channels/<enc>[/<rest>]" into a decoded channel name and the rest. */
static int channel_path(const sw_slice_t *path, char *name, size_t cap, sw_slice_t *rest) {
  const char *p = path->p + 10, *e = path->p + path->n;
  const char *slash = memchr(p, '/', (size_t)(e - p));
  const char *ne = slash ? slash : e;
  if (url_decode(p, (size_t)(ne - p), name, cap, false) < 0) return -1;
  *rest = (sw_slice_t){ne, (size_t)(e - ne)};
  return 0;
}

bool route_begin(sw_sock_t *s, const sw_http_req_t *req, route_ctx_t *r) {
  *r = (route_ctx_t){.s = s, .req = req, .fmt = response_format(req), .keep_alive = req->keep_alive};
  sw_error_t err = {0};
  if (rest_authenticate(s, req, &r->p, &err)) {
    rest_error(s, r->fmt, &err, r->keep_alive);
    return false;
  }
  r->app = r->p.app;
  /* RSA7e2: X-Ably-ClientId carries the clientId, base64-encoded. */
  char requested[256];
  const sw_slice_t *xc = http_req_header(req, "X-Ably-ClientId");
  ssize_t rn = xc ? b64_into(xc->p, xc->n, requested, sizeof requested) : -1;
  if (xc && rn < 0) {
    errors_set(&err, SW_E_INVALID_CLIENT_ID, "malformed X-Ably-ClientId header");
  } else {
    principal_client_id(&r->p, rn >= 0 ? requested : NULL, &r->client_id, &err);
  }
  if (err.code) {
    rest_error(s, r->fmt, &err, r->keep_alive);
    route_end(r);
    return false;
  }
  return true;
}

void route_end(route_ctx_t *r) {
  free(r->client_id);
  r->client_id = NULL;
  principal_clear(&r->p);
}

void rest_handle(sw_sock_t *s, const sw_http_req_t *req) {
  route_ctx_t r = {.s = s, .req = req, .fmt = response_format(req), .keep_alive = req->keep_alive};
  sw_error_t err = {0};
  const sw_slice_t *path = &req->path;

  if (slice_eq(*path, "/time") && req->method == HTTP_GET) {
    get_time(&r); /* RSC16: no authentication */
    return;
  }
  if (path->n > 6 && memcmp(path->p, "/keys/", 6) == 0) {
    keys_handle(s, req, r.fmt);
    return;
  }
  /* The batch API (RSC22, RSC24): authenticated like the channel routes. */
  bool batch = (slice_eq(*path, "/messages") && req->method == HTTP_POST) ||
               (slice_eq(*path, "/presence") && req->method == HTTP_GET);
  if (!batch && !(path->n > 10 && memcmp(path->p, "/channels/", 10) == 0)) {
    errors_set(&err, SW_E_NOT_FOUND, "no such resource");
    rest_error(s, r.fmt, &err, r.keep_alive);
    return;
  }
  if (!route_begin(s, req, &r)) return;
  if (batch) {
    if (req->method == HTTP_POST) rest_batch_publish(&r);
    else rest_batch_presence(&r);
    goto done;
  }
  sw_slice_t rest;
  sw_channel_name_t parts;
  if (channel_path(path, r.channel, sizeof r.channel, &rest) ||
      channel_name_validate(r.channel, strlen(r.channel), &parts, &err) || parts.kind != SW_CHAN_PLAIN) {
    if (!err.code) errors_set(&err, SW_E_INVALID_CHANNEL, "invalid channel name");
    rest_error(s, r.fmt, &err, r.keep_alive);
    goto done;
  }
  /* REST has no use for params in the name: the channel is the plain name. */
  memmove(r.channel, r.channel + parts.name_off, strlen(r.channel + parts.name_off) + 1);
  if (slice_eq(rest, "/messages") && req->method == HTTP_POST) {
    sw_channel_t *ch = channel_get(s->srv, r.app, r.channel);
    if (!ch) {
      errors_set(&err, SW_E_INTERNAL, "out of memory");
      rest_error(s, r.fmt, &err, r.keep_alive);
      goto done;
    }
    publish(&r, ch);
  } else if (slice_eq(rest, "/messages") && req->method == HTTP_GET) {
    rest_history(&r, r.channel);
  } else if (rest.n > 10 && memcmp(rest.p, "/messages/", 10) == 0) {
    /* /messages/{serial} and /messages/{serial}/versions */
    char serial[64];
    const char *sp = rest.p + 10, *se = rest.p + rest.n;
    const char *slash = memchr(sp, '/', (size_t)(se - sp));
    sw_slice_t tail = {slash ? slash : se, slash ? (size_t)(se - slash) : 0};
    if (url_decode(sp, (size_t)((slash ? slash : se) - sp), serial, sizeof serial, false) <= 0) {
      errors_set(&err, SW_E_NOT_FOUND, "no such message");
      rest_error(s, r.fmt, &err, r.keep_alive);
    } else if (tail.n == 0 && req->method == HTTP_GET) {
      rest_message_get(&r, r.channel, serial);
    } else if (slice_eq(tail, "/versions") && req->method == HTTP_GET) {
      rest_message_versions(&r, r.channel, serial);
    } else if (slice_eq(tail, "/annotations") && req->method == HTTP_GET) {
      rest_annotations_get(&r, r.channel, serial);
    } else if (slice_eq(tail, "/annotations") && req->method == HTTP_POST) {
      sw_channel_t *ch = channel_get(s->srv, r.app, r.channel);
      if (ch) rest_annotations_post(&r, ch, serial);
      else {
        errors_set(&err, SW_E_INTERNAL, "out of memory");
        rest_error(s, r.fmt, &err, r.keep_alive);
      }
    } else if (tail.n == 0 && req->method == HTTP_PATCH) {
      sw_channel_t *ch = channel_get(s->srv, r.app, r.channel);
      if (ch) rest_message_patch(&r, ch, serial);
      else {
        errors_set(&err, SW_E_INTERNAL, "out of memory");
        rest_error(s, r.fmt, &err, r.keep_alive);
      }
    } else {
      errors_set(&err, SW_E_NOT_FOUND, "no such resource");
      rest_error(s, r.fmt, &err, r.keep_alive);
    }
  } else if (slice_eq(rest, "/presence") && req->method == HTTP_GET) {
    rest_presence_get(&r, r.channel);
  } else if (slice_eq(rest, "/presence/history") && req->method == HTTP_GET) {
    rest_presence_history(&r, r.channel);
  } else if (rest.n == 0 && req->method == HTTP_GET) {
    channel_status(&r, r.channel);
  } else {
    errors_set(&err, SW_E_NOT_FOUND, "no such resource");
    rest_error(s, r.fmt, &err, r.keep_alive);
  }
done:
  route_end(&r);
}
