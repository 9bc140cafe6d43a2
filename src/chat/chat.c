#include "chat/chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/channel_name.h"
#include "core/annotation.h"
#include "core/bus.h"
#include "core/channel.h"
#include "core/mutation.h"
#include "core/serial.h"
#include "core/server.h"
#include "core/sock.h"
#include "net/url.h"
#include "rest/rest.h"
#include "rest/route.h"
#include "store/store.h"
#include "util/clock.h"

#define CHAT_PREFIX "/chat/v4/rooms/"
#define CHAT_MESSAGE_NAME "chat.message"
/* A room name with its "::$chat" suffix fits route_ctx_t.channel. */
#define ROOM_MAX (sizeof ((route_ctx_t *)0)->channel - sizeof SW_CHAT_SUFFIX)

bool chat_route(const sw_http_req_t *req) {
  return req->path.n >= 6 && memcmp(req->path.p, "/chat/", 6) == 0;
}

static void fail(route_ctx_t *r, int code, const char *msg) {
  sw_error_t err;
  errors_set(&err, code, "%s", msg);
  route_error(r, &err);
}

/* ------------------------------------------------------- message shape */

static const char *action_name(int action) {
  switch (action) {
  case SW_MSG_UPDATE:
  case SW_MSG_APPEND: return "message.update";
  case SW_MSG_DELETE: return "message.delete";
  default: return "message.create";
  }
}

/* The reactions of a head: its summaries of Chat's three annotation types. */
static json_t *reactions(const sw_msg_t *m) {
  json_t *sum = m->annotations ? json_object_get(m->annotations, "summary") : NULL;
  static const char *const kinds[] = {"unique", "distinct", "multiple"};
  json_t *out = json_object();
  for (size_t i = 0; out && i < 3; i++) {
    char type[32];
    snprintf(type, sizeof type, "reaction:%s.v1", kinds[i]);
    json_t *v = json_object_get(sum, type);
    json_object_set_new(out, kinds[i], json_is_object(v) ? json_deep_copy(v) : json_object());
  }
  return out;
}

/* The SDK's REST message (its RestMessage type) of a stored head or
 * version event. New reference, NULL when out of memory. */
static json_t *rest_message(const sw_msg_t *m) {
  json_t *data = NULL;
  const char *text = "";
  if (m->data.kind == SW_DATA_STRING && m->encoding && strcmp(m->encoding, "json") == 0)
    data = json_loadb((const char *)m->data.bytes, m->data.len, 0, NULL);
  else if (m->data.kind == SW_DATA_STRING)
    text = (const char *)m->data.bytes;
  json_t *t = json_object_get(data, "text"), *meta = json_object_get(data, "metadata");
  if (json_is_string(t)) text = json_string_value(t);
  json_t *headers = m->extras ? json_object_get(m->extras, "headers") : NULL;
  json_t *claim = m->extras ? json_object_get(m->extras, "userClaim") : NULL;
  json_t *version = m->version ? json_deep_copy(m->version)
                               : json_pack("{s:s, s:I}", "serial", m->serial ? m->serial : "", "timestamp",
                                           (json_int_t)m->timestamp);
  json_t *o = json_pack("{s:s, s:o, s:s, s:s, s:s, s:o, s:o, s:I, s:o}", "serial", m->serial ? m->serial : "",
                        "version", version, "text", text, "clientId", m->client_id ? m->client_id : "", "action",
                        action_name(m->action), "metadata", json_is_object(meta) ? json_deep_copy(meta) : json_object(),
                        "headers", json_is_object(headers) ? json_deep_copy(headers) : json_object(), "timestamp",
                        (json_int_t)m->timestamp, "reactions", reactions(m));
  if (o && json_is_string(claim)) json_object_set(o, "userClaim", claim);
  json_decref(data);
  return o;
}

/* The head of message seq as a REST message, or NULL. */
static json_t *load_message(sw_server_t *srv, const sw_app_t *app, const char *channel, int64_t seq) {
  sw_store_row_t row = {0};
  sw_msg_t msg = {0};
  json_t *o = NULL;
  if (store_get(srv->store, app->id, channel, seq, &row) == 1 && codec_msg_from_blob(row.blob, row.blob_len, &msg) == 0)
    o = rest_message(&msg);
  msg_clear(&msg);
  free(row.blob);
  return o;
}

/* ------------------------------------------------ reads on a cluster
 *
 * On a shared bus (docs/cluster.md) messages, history and versions are in
 * Redis: read through the bus, answered from its callback, the socket held
 * meanwhile (as rest/history.c does). */

typedef enum { READ_MESSAGE, READ_PAGE, READ_VERSIONS, READ_CLIENT_REACTIONS } read_kind_t;

typedef struct chat_read {
  route_ctx_t r; /* the socket (referenced), format, keep-alive, app: not the request */
  page_t pg;
  read_kind_t kind;
  int status;  /* READ_MESSAGE: the answer's status */
  bool lookup; /* READ_MESSAGE: a GET (absent: 40400), not the read back of a change (absent: 50000) */
  bool has_cid;
  char cid[256]; /* READ_CLIENT_REACTIONS: whose */
} chat_read_t;

static void reply_client_reactions(route_ctx_t *r, json_t *m, const char *cid);

static void reply_page(route_ctx_t *r, const char *resource, const page_t *pg, const sw_store_rows_t *rows,
                       bool by_vseq);

/* A row as a REST message: its serial, when stored without it, is its seq. */
static json_t *row_message(const sw_store_row_t *row) {
  sw_msg_t msg = {0};
  json_t *o = NULL;
  if (codec_msg_from_blob(row->blob, row->blob_len, &msg) == 0) {
    if (!msg.serial) {
      char serial[SW_SERIAL_LEN + 1];
      serial_format(row->seq, serial);
      msg.serial = strdup(serial);
    }
    if (msg.serial) o = rest_message(&msg);
  }
  msg_clear(&msg);
  return o;
}

static void on_chat_read(void *ud, const sw_error_t *err, sw_store_rows_t *rows, int64_t cursor, bool more) {
  (void)cursor, (void)more;
  chat_read_t *q = ud;
  sw_sock_t *s = q->r.s;
  if (s->closing) {
  } else if (err) {
    route_error(&q->r, err);
  } else if (q->kind == READ_CLIENT_REACTIONS) {
    json_t *m = rows->n == 1 ? row_message(&rows->rows[0]) : NULL;
    if (m) reply_client_reactions(&q->r, m, q->has_cid ? q->cid : NULL);
    else fail(&q->r, SW_E_NOT_FOUND, "no such message");
    json_decref(m);
  } else if (q->kind == READ_MESSAGE) {
    json_t *m = rows->n == 1 ? row_message(&rows->rows[0]) : NULL;
    if (m) rest_reply_value(s, q->status, q->r.fmt, m, q->r.keep_alive, NULL);
    else if (q->lookup) fail(&q->r, SW_E_NOT_FOUND, "no such message");
    else fail(&q->r, SW_E_INTERNAL, "the message could not be read back");
    json_decref(m);
  } else {
    reply_page(&q->r, q->kind == READ_PAGE ? "messages" : "versions", &q->pg, rows, q->kind == READ_VERSIONS);
  }
  store_rows_free(rows);
  sock_unref(s);
  free(q);
}

/* A read for socket s (referenced until it is answered), or NULL. */
static chat_read_t *read_new(sw_sock_t *s, sw_format_t fmt, bool keep_alive, sw_app_t *app, read_kind_t kind) {
  chat_read_t *q = calloc(1, sizeof *q);
  if (!q) return NULL;
  q->r = (route_ctx_t){.s = s, .fmt = fmt, .keep_alive = keep_alive, .app = app};
  q->kind = kind;
  sock_ref(s);
  return q;
}

static void read_fail(chat_read_t *q, const sw_error_t *err) {
  if (!q->r.s->closing) route_error(&q->r, err);
  sock_unref(q->r.s);
  free(q);
}

/* The head of message seq, answered with status (see chat_read_t.lookup). */
static void read_message(sw_sock_t *s, sw_format_t fmt, bool keep_alive, sw_app_t *app, const char *channel,
                         int64_t seq, int status, bool lookup) {
  sw_error_t err;
  chat_read_t *q = read_new(s, fmt, keep_alive, app, READ_MESSAGE);
  if (!q) {
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    rest_error(s, fmt, &err, keep_alive);
    return;
  }
  q->status = status;
  q->lookup = lookup;
  sw_bus_range_t br = {.app_id = app->id, .channel = channel, .after_seq = seq - 1, .before_seq = seq + 1,
                       .forwards = true, .limit = 1, .now = clock_now_ms()};
  if (seq < 1) {
    errors_set(&err, SW_E_NOT_FOUND, "no such message");
    read_fail(q, &err);
  } else if (bus_read(s->srv->bus, &br, on_chat_read, q, &err)) {
    read_fail(q, &err);
  }
}

static bool shared(const route_ctx_t *r) {
  return r->s->srv->bus && bus_shared(r->s->srv->bus);
}

/* Replies with rows (heads or version events) as one page of REST
 * messages: at most pg->limit (rows holds one more when there are more),
 * within the page budget and at least one; `next` after the last row. */
static void reply_page(route_ctx_t *r, const char *resource, const page_t *pg, const sw_store_rows_t *rows,
                       bool by_vseq) {
  size_t n = rows->n > (size_t)pg->limit ? (size_t)pg->limit : rows->n;
  bool more = rows->n > n;
  size_t budget = route_page_budget(r), bytes = 0, used = 0;
  json_t *arr = json_array();
  for (; arr && used < n; used++) {
    json_t *o = row_message(&rows->rows[used]);
    if (!o) continue;
    size_t len = json_dumpb(o, NULL, 0, JSON_COMPACT);
    if (json_array_size(arr) && bytes + len + 1 > budget) {
      json_decref(o);
      more = true;
      break;
    }
    bytes += len + 1;
    json_array_append_new(arr, o);
  }
  sw_buf_t body = {0};
  codec_encode_value(r->fmt, arr, &body);
  const sw_store_row_t *last = used ? &rows->rows[used - 1] : NULL;
  route_reply_page(r, resource, pg, &body, more, last ? (by_vseq ? last->vseq : last->seq) : -1, NULL);
  buf_free(&body);
  json_decref(arr);
}

/* ------------------------------------------------- answers when durable */

typedef struct chat_done {
  sw_app_t *app;
  char channel[sizeof ((route_ctx_t *)0)->channel];
  int64_t seq; /* the message; -1: the serial published (a send) */
  int status;
  sw_format_t fmt;
  bool keep_alive;
} chat_done_t;

/* sw_publisher_t.done: answers with the message as it is now durable. */
static void on_done(const sw_publisher_t *who, const char *channel, const sw_error_t *err, char **serials, size_t n) {
  chat_done_t *d = who->done_ud;
  sw_sock_t *s = who->rest_sock;
  if (s && !s->closing && s->srv->bus && bus_shared(s->srv->bus)) {
    int64_t seq = d->seq;
    if (err && err->code) rest_error(s, d->fmt, err, d->keep_alive);
    else if (seq >= 0 || (n && serials[0] && serial_parse(serials[0], strlen(serials[0]), &seq) == 0))
      read_message(s, d->fmt, d->keep_alive, d->app, d->channel, seq, d->status, false);
    else {
      sw_error_t e;
      errors_set(&e, SW_E_INTERNAL, "the message could not be read back");
      rest_error(s, d->fmt, &e, d->keep_alive);
    }
  } else if (s && !s->closing) {
    int64_t seq = d->seq;
    json_t *m = NULL;
    if (!(err && err->code) && (seq >= 0 || (n && serials[0] && serial_parse(serials[0], strlen(serials[0]), &seq) == 0)))
      m = load_message(s->srv, d->app, d->channel, seq);
    if (err && err->code) {
      rest_error(s, d->fmt, err, d->keep_alive);
    } else if (!m) {
      sw_error_t e;
      errors_set(&e, SW_E_INTERNAL, "the message could not be read back");
      rest_error(s, d->fmt, &e, d->keep_alive);
    } else {
      rest_reply_value(s, d->status, d->fmt, m, d->keep_alive, NULL);
    }
    json_decref(m);
  }
  free(d);
}

static chat_done_t *done_new(route_ctx_t *r, const char *channel, int64_t seq, int status, sw_publisher_t *who) {
  chat_done_t *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  d->app = r->app;
  snprintf(d->channel, sizeof d->channel, "%s", channel);
  d->seq = seq;
  d->status = status;
  d->fmt = r->fmt;
  d->keep_alive = r->keep_alive;
  *who = (sw_publisher_t){.rest_sock = r->s, .rest_format = r->fmt, .rest_keep_alive = r->keep_alive,
                          .principal = &r->p, .done = on_done, .done_ud = d};
  return d;
}

/* ------------------------------------------------------------ requests */

/* The request body as a JSON object (an empty body is {}), or NULL with
 * the error sent. */
static json_t *body_object(route_ctx_t *r) {
  if (r->req->body.n == 0) return json_object();
  sw_error_t err = {0};
  json_t *b = codec_decode_value(rest_body_format(r->req), (const uint8_t *)r->req->body.p, r->req->body.n, &err);
  if (b && !json_is_object(b)) {
    json_decref(b);
    b = NULL;
    errors_set(&err, SW_E_INVALID_BODY, "the request body must be an object");
  }
  if (!b) route_error(r, &err);
  return b;
}

/* Checks an optional member: absent/null, or of the given kind. */
static bool optional(json_t *o, const char *k, bool (*is)(const json_t *)) {
  json_t *v = json_object_get(o, k);
  return !v || json_is_null(v) || is(v);
}
static bool is_object(const json_t *v) { return json_is_object(v); }
static bool is_string(const json_t *v) { return json_is_string(v); }

/* Fills a message's content from {text, metadata, headers}: data the JSON
 * {"text", "metadata"}, extras {"headers"}. 0, or -1 with err. */
static int set_content(sw_msg_t *m, json_t *src, sw_error_t *err) {
  json_t *text = json_object_get(src, "text");
  if (!json_is_string(text)) return errors_set(err, SW_E_INVALID_PARAM, "a chat message needs a text string");
  if (!optional(src, "metadata", is_object) || !optional(src, "headers", is_object))
    return errors_set(err, SW_E_INVALID_PARAM, "metadata and headers must be objects");
  json_t *meta = json_object_get(src, "metadata"), *headers = json_object_get(src, "headers");
  json_t *data = json_pack("{s:O, s:o}", "text", text, "metadata", json_is_object(meta) ? json_deep_copy(meta) : json_object());
  char *s = data ? json_dumps(data, JSON_COMPACT) : NULL;
  json_decref(data);
  m->name = strdup(CHAT_MESSAGE_NAME);
  m->encoding = strdup("json");
  m->extras = json_pack("{s:o}", "headers", json_is_object(headers) ? json_deep_copy(headers) : json_object());
  if (!s || !m->name || !m->encoding || !m->extras) {
    free(s);
    return errors_set(err, SW_E_INTERNAL, "out of memory");
  }
  m->data = (sw_data_t){.kind = SW_DATA_STRING, .bytes = (uint8_t *)s, .len = strlen(s)};
  return 0;
}

/* The operation's {description, metadata} (TM2s4, TM2s5) as the message's
 * version request. 0, or -1 with err. */
static int set_operation(sw_msg_t *m, json_t *src, sw_error_t *err) {
  if (!optional(src, "description", is_string) || !optional(src, "metadata", is_object))
    return errors_set(err, SW_E_INVALID_PARAM, "description must be a string and metadata an object");
  json_t *d = json_object_get(src, "description"), *md = json_object_get(src, "metadata");
  m->version = json_object();
  if (!m->version) return errors_set(err, SW_E_INTERNAL, "out of memory");
  if (json_is_string(d)) json_object_set(m->version, "description", d);
  if (json_is_object(md)) json_object_set(m->version, "metadata", md);
  return 0;
}

static void send_message(route_ctx_t *r, sw_channel_t *ch) {
  if (!route_require(r, ch->name, SW_OP_PUBLISH, "publish")) return;
  json_t *b = body_object(r);
  if (!b) return;
  sw_error_t err = {0};
  sw_msg_t *m = calloc(1, sizeof *m);
  sw_publisher_t who;
  chat_done_t *d = NULL;
  if (!m) {
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    goto fail;
  }
  m->action = SW_MSG_CREATE;
  m->timestamp = clock_now_ms();
  if (set_content(m, b, &err) || principal_check_message_client_id(&r->p, r->client_id, &m->client_id, &err)) goto fail;
  json_t *claim = principal_channel_claim(&r->p, ch->name);
  if (claim) json_object_set(m->extras, "userClaim", claim);
  /* The SDK's idempotencyKey is the message id: a retry is not published twice (RSL1k). */
  char key[257];
  ssize_t kn = url_query_get(r->req->query, "idempotencyKey", key, sizeof key);
  if (kn == -2) {
    errors_set(&err, 40031, "idempotencyKey longer than 256 bytes");
    goto fail;
  }
  if (kn > 0 && !(m->id = strdup(key))) {
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    goto fail;
  }
  if (msg_size(m) > (size_t)r->s->srv->cfg->limits.max_message_size) {
    errors_set(&err, SW_E_MESSAGE_TOO_LARGE, "message size exceeds maxMessageSize");
    goto fail;
  }
  if (!(d = done_new(r, ch->name, -1, 201, &who))) {
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    goto fail;
  }
  json_decref(b);
  if (channel_publish(ch, m, 1, &who, &err)) { /* m is consumed */
    free(d);
    route_error(r, &err);
  }
  return;
fail:
  if (m) msg_clear(m);
  free(m);
  json_decref(b);
  route_error(r, &err);
}

/* PUT (update: body {message: {text, metadata, headers}, description,
 * metadata}) or POST .../delete (body {description, metadata}). */
static void change_message(route_ctx_t *r, sw_channel_t *ch, const char *serial, int action) {
  json_t *b = body_object(r);
  if (!b) return;
  sw_error_t err = {0};
  sw_msg_t m = {.action = action};
  int64_t seq = -1;
  serial_parse(serial, strlen(serial), &seq);
  if (action == SW_MSG_UPDATE && !json_is_object(json_object_get(b, "message")))
    errors_set(&err, SW_E_INVALID_PARAM, "an update needs a message object");
  else if (action == SW_MSG_UPDATE && set_content(&m, json_object_get(b, "message"), &err)) {
    /* err set */
  } else if (set_operation(&m, b, &err)) {
    /* err set */
  } else if (!(m.serial = strdup(serial))) {
    errors_set(&err, SW_E_INTERNAL, "out of memory");
  }
  json_decref(b);
  sw_publisher_t who;
  chat_done_t *d = err.code ? NULL : done_new(r, ch->name, seq, 200, &who);
  if (!err.code && !d) errors_set(&err, SW_E_INTERNAL, "out of memory");
  if (err.code) {
    msg_clear(&m);
    route_error(r, &err);
    return;
  }
  if (mutation_apply(ch, &r->p, r->client_id, &m, &who, &err)) { /* m is consumed */
    free(d);
    route_error(r, &err);
  }
}

static void get_message(route_ctx_t *r, const char *channel, const char *serial) {
  if (!route_require(r, channel, SW_OP_HISTORY, "history")) return;
  int64_t seq;
  if (shared(r)) {
    if (serial_parse(serial, strlen(serial), &seq)) seq = -1;
    read_message(r->s, r->fmt, r->keep_alive, r->app, channel, seq, 200, true);
    return;
  }
  json_t *m = serial_parse(serial, strlen(serial), &seq) ? NULL : load_message(r->s->srv, r->app, channel, seq);
  if (!m) {
    fail(r, SW_E_NOT_FOUND, "no such message");
    return;
  }
  rest_reply_value(r->s, 200, r->fmt, m, r->keep_alive, NULL);
  json_decref(m);
}

/* History: newest first unless orderBy says otherwise (the SDK sends
 * direction); fromSerial bounds it at the subscription point, inclusive. */
static void history(route_ctx_t *r, const char *channel) {
  page_t pg;
  if (!route_require(r, channel, SW_OP_HISTORY, "history") || !route_page(r, &pg)) return;
  sw_history_q_t q = route_history_query(r, channel, &pg);
  if (shared(r)) {
    sw_error_t err;
    chat_read_t *cq = read_new(r->s, r->fmt, r->keep_alive, r->app, READ_PAGE);
    if (!cq) {
      fail(r, SW_E_INTERNAL, "out of memory");
      return;
    }
    cq->pg = pg;
    sw_bus_range_t br = {.app_id = q.app_id, .channel = q.channel, .after_seq = q.after_seq,
                         .before_seq = q.before_seq, .forwards = q.forwards, .limit = q.limit, .now = q.now,
                         .start = q.start, .end = q.end};
    if (bus_read(r->s->srv->bus, &br, on_chat_read, cq, &err)) read_fail(cq, &err);
    return;
  }
  sw_store_rows_t rows = {0};
  if (store_history(r->s->srv->store, &q, &rows)) {
    fail(r, SW_E_INTERNAL, "history could not be read");
    return;
  }
  reply_page(r, "messages", &pg, &rows, false);
  store_rows_free(&rows);
}

static void versions(route_ctx_t *r, const char *channel, const char *serial) {
  page_t pg;
  int64_t seq;
  if (!route_require(r, channel, SW_OP_HISTORY, "history") || !route_page(r, &pg)) return;
  sw_store_rows_t rows = {0};
  if (serial_parse(serial, strlen(serial), &seq)) {
    fail(r, SW_E_NOT_FOUND, "no such message");
    return;
  }
  if (shared(r)) {
    sw_error_t err;
    chat_read_t *cq = read_new(r->s, r->fmt, r->keep_alive, r->app, READ_VERSIONS);
    if (!cq) {
      fail(r, SW_E_INTERNAL, "out of memory");
      return;
    }
    cq->pg = pg;
    if (!r->s->srv->bus->ops->read_versions ||
        bus_read_versions(r->s->srv->bus, r->app->id, channel, seq, false, pg.forwards, (size_t)pg.limit + 1, pg.cursor,
                          on_chat_read, cq, &err)) {
      if (!r->s->srv->bus->ops->read_versions)
        errors_set(&err, SW_E_MUTABLE_NOT_ENABLED, "message versions are not available on this cluster");
      read_fail(cq, &err);
    }
    return;
  }
  if (store_versions(r->s->srv->store, r->app->id, channel, seq, pg.forwards, (size_t)pg.limit + 1, pg.cursor, &rows)) {
    fail(r, SW_E_INTERNAL, "versions could not be read");
    return;
  }
  reply_page(r, "versions", &pg, &rows, true);
  store_rows_free(&rows);
}

/* A reaction type of the SDK (MessageReactionType) as an annotation type. */
static bool reaction_type(const char *t, char *out, size_t cap) {
  if (!t || (strcmp(t, "unique") && strcmp(t, "distinct") && strcmp(t, "multiple"))) return false;
  snprintf(out, cap, "reaction:%s.v1", t);
  return true;
}

/* POST .../reactions {type, name, count} or DELETE .../reactions?type=&name=:
 * an annotation of the message (create or delete). */
static void react(route_ctx_t *r, sw_channel_t *ch, const char *serial, bool del) {
  char t[16] = "", name[1024] = "", type[32];
  bool named = false, bad = false;
  int64_t count = 0;
  if (del) {
    bad = url_query_get(r->req->query, "type", t, sizeof t) == -2;
    ssize_t nn = url_query_get(r->req->query, "name", name, sizeof name);
    bad = bad || nn == -2;
    named = nn > 0;
  } else {
    json_t *b = body_object(r);
    if (!b) return;
    json_t *jt = json_object_get(b, "type"), *jn = json_object_get(b, "name"), *jc = json_object_get(b, "count");
    bad = (jt && !json_is_string(jt)) || !json_is_string(jn) || json_string_length(jn) >= sizeof name ||
          (jc && !json_is_integer(jc));
    if (!bad) {
      snprintf(t, sizeof t, "%s", jt ? json_string_value(jt) : "distinct");
      snprintf(name, sizeof name, "%s", json_string_value(jn));
      named = true;
      count = jc ? json_integer_value(jc) : 0;
    }
    json_decref(b);
  }
  if (bad || !reaction_type(t, type, sizeof type)) {
    fail(r, SW_E_INVALID_PARAM, "a reaction needs a type (unique, distinct or multiple) and a name");
    return;
  }
  sw_msg_t *a = calloc(1, sizeof *a);
  char id[32];
  app_random_id(id, 12);
  if (a) {
    a->action = del ? SW_ANN_DELETE : SW_ANN_CREATE;
    a->type = strdup(type);
    a->name = named ? strdup(name) : NULL;
    a->message_serial = strdup(serial);
    a->id = strdup(id);
    a->count = count;
    a->has_count = count != 0 && strcmp(t, "multiple") == 0;
  }
  if (!a || !a->type || !a->message_serial || !a->id || (named && !a->name)) {
    if (a) msg_clear(a);
    free(a);
    fail(r, SW_E_INTERNAL, "out of memory");
    return;
  }
  sw_error_t err = {0};
  sw_publisher_t who = {.rest_sock = r->s, .rest_format = r->fmt, .rest_keep_alive = r->keep_alive,
                        .principal = &r->p, .done = rest_publish_done};
  if (annotation_publish(ch, &r->p, r->client_id, a, 1, &who, &err)) route_error(r, &err);
}

/* The reactions a client (forClientId, else the caller) appears in, from
 * the message's summaries (a clipped list shows only the clients it lists). */
static void client_reactions(route_ctx_t *r, const char *channel, const char *serial) {
  if (!route_require(r, channel, SW_OP_HISTORY, "history")) return;
  char who[256];
  const char *cid = url_query_get(r->req->query, "forClientId", who, sizeof who) > 0 ? who : r->client_id;
  int64_t seq;
  if (shared(r)) {
    sw_error_t err;
    chat_read_t *q = read_new(r->s, r->fmt, r->keep_alive, r->app, READ_CLIENT_REACTIONS);
    if (!q) {
      fail(r, SW_E_INTERNAL, "out of memory");
      return;
    }
    if (cid) {
      q->has_cid = true;
      snprintf(q->cid, sizeof q->cid, "%s", cid);
    }
    if (serial_parse(serial, strlen(serial), &seq)) seq = 0;
    sw_bus_range_t br = {.app_id = r->app->id, .channel = channel, .after_seq = seq - 1, .before_seq = seq + 1,
                         .forwards = true, .limit = 1, .now = clock_now_ms()};
    if (seq < 1) {
      errors_set(&err, SW_E_NOT_FOUND, "no such message");
      read_fail(q, &err);
    } else if (bus_read(r->s->srv->bus, &br, on_chat_read, q, &err)) {
      read_fail(q, &err);
    }
    return;
  }
  json_t *m = serial_parse(serial, strlen(serial), &seq) ? NULL : load_message(r->s->srv, r->app, channel, seq);
  if (!m) {
    fail(r, SW_E_NOT_FOUND, "no such message");
    return;
  }
  reply_client_reactions(r, m, cid);
  json_decref(m);
}

/* Answers the reactions of m (a REST message) that client cid is in. */
static void reply_client_reactions(route_ctx_t *r, json_t *m, const char *cid) {
  json_t *all = json_object_get(m, "reactions"), *out = json_object();
  const char *kind;
  json_t *names;
  json_object_foreach(all, kind, names) {
    json_t *mine = json_object();
    const char *nm;
    json_t *e;
    json_object_foreach(names, nm, e) {
      json_t *ids = json_object_get(e, "clientIds");
      bool in = false;
      if (json_is_object(ids)) {
        json_t *c = cid ? json_object_get(ids, cid) : NULL;
        if ((in = c != NULL)) json_object_set_new(e, "clientIds", json_pack("{s:O}", cid, c));
      } else {
        size_t i;
        json_t *v;
        json_array_foreach(ids, i, v) in = in || (cid && json_is_string(v) && strcmp(json_string_value(v), cid) == 0);
        if (in) json_object_set_new(e, "clientIds", json_pack("[s]", cid));
      }
      if (in) json_object_set(mine, nm, e);
    }
    json_object_set_new(out, kind, mine);
  }
  rest_reply_value(r->s, 200, r->fmt, out, r->keep_alive, NULL);
  json_decref(out);
}

static void occupancy(route_ctx_t *r, const char *channel) {
  if (!route_require(r, channel, SW_OP_CHANNEL_METADATA, "occupancy (channel-metadata)")) return;
  sw_channel_t *ch = channel_find(r->s->srv, r->app, channel);
  sw_occupancy_t o = channel_occupancy(ch); /* on a cluster node holding the room, every node's */
  json_t *v = json_pack("{s:I, s:I}", "connections", (json_int_t)o.n[SW_OCC_CONNECTIONS], "presenceMembers",
                        (json_int_t)o.n[SW_OCC_PRESENCE_MEMBERS]);
  rest_reply_value(r->s, 200, r->fmt, v, r->keep_alive, NULL);
  json_decref(v);
}

/* Splits "{room}[/rest]" after the prefix into the room's channel name
 * (r->channel) and the rest. false when the room name is not one. */
static bool room_channel(route_ctx_t *r, sw_slice_t *rest) {
  const char *p = r->req->path.p + sizeof CHAT_PREFIX - 1, *e = r->req->path.p + r->req->path.n;
  const char *slash = memchr(p, '/', (size_t)(e - p));
  const char *ne = slash ? slash : e;
  ssize_t n = url_decode(p, (size_t)(ne - p), r->channel, ROOM_MAX, false);
  if (n <= 0) return false;
  memcpy(r->channel + n, SW_CHAT_SUFFIX, sizeof SW_CHAT_SUFFIX);
  sw_channel_name_t parts;
  if (channel_name_validate(r->channel, strlen(r->channel), &parts, NULL) || parts.kind != SW_CHAN_PLAIN ||
      parts.name_off != 0 || strlen(r->channel) != (size_t)n + sizeof SW_CHAT_SUFFIX - 1)
    return false;
  *rest = (sw_slice_t){ne, (size_t)(e - ne)};
  return true;
}

static sw_channel_t *room(route_ctx_t *r) {
  sw_channel_t *ch = channel_get(r->s->srv, r->app, r->channel);
  if (!ch) fail(r, SW_E_INTERNAL, "out of memory");
  return ch;
}

static void message_route(route_ctx_t *r, sw_slice_t rest) {
  int m = r->req->method;
  char serial[64];
  const char *sp = rest.p + 10, *se = rest.p + rest.n;
  const char *slash = memchr(sp, '/', (size_t)(se - sp));
  sw_slice_t tail = {slash ? slash : se, slash ? (size_t)(se - slash) : 0};
  sw_channel_t *ch;
  if (url_decode(sp, (size_t)((slash ? slash : se) - sp), serial, sizeof serial, false) <= 0)
    fail(r, SW_E_NOT_FOUND, "no such message");
  else if (tail.n == 0 && m == HTTP_GET)
    get_message(r, r->channel, serial);
  else if (tail.n == 0 && m == HTTP_PUT)
    (ch = room(r)) ? change_message(r, ch, serial, SW_MSG_UPDATE) : (void)0;
  else if (slice_eq(tail, "/delete") && m == HTTP_POST)
    (ch = room(r)) ? change_message(r, ch, serial, SW_MSG_DELETE) : (void)0;
  else if (slice_eq(tail, "/versions") && m == HTTP_GET)
    versions(r, r->channel, serial);
  else if (slice_eq(tail, "/reactions") && (m == HTTP_POST || m == HTTP_DELETE))
    (ch = room(r)) ? react(r, ch, serial, m == HTTP_DELETE) : (void)0;
  else if (slice_eq(tail, "/client-reactions") && m == HTTP_GET)
    client_reactions(r, r->channel, serial);
  else
    fail(r, SW_E_NOT_FOUND, "no such resource");
}

void chat_handle(sw_sock_t *s, const sw_http_req_t *req) {
  const sw_slice_t *path = &req->path;
  route_ctx_t r;
  if (!(path->n > sizeof CHAT_PREFIX - 1 && memcmp(path->p, CHAT_PREFIX, sizeof CHAT_PREFIX - 1) == 0)) {
    sw_error_t err;
    errors_set(&err, SW_E_NOT_FOUND, "no such resource (this server speaks the Chat API v4)");
    rest_error(s, SW_FMT_JSON, &err, req->keep_alive);
    return;
  }
  if (!route_begin(s, req, &r)) return;
  sw_slice_t rest;
  sw_channel_t *ch;
  int m = req->method;
  /* On a cluster messages are read through the bus (docs/cluster.md);
   * reactions are annotations, refused there (93002) by annotation_publish. */
  if (!room_channel(&r, &rest))
    fail(&r, SW_E_INVALID_CHANNEL, "invalid room name");
  else if (slice_eq(rest, "/messages") && m == HTTP_POST)
    (ch = room(&r)) ? send_message(&r, ch) : (void)0;
  else if (slice_eq(rest, "/messages") && m == HTTP_GET)
    history(&r, r.channel);
  else if (rest.n > 10 && memcmp(rest.p, "/messages/", 10) == 0)
    message_route(&r, rest);
  else if (slice_eq(rest, "/occupancy") && m == HTTP_GET)
    occupancy(&r, r.channel);
  else
    fail(&r, SW_E_NOT_FOUND, "no such resource");
  route_end(&r);
}
