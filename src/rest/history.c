/* history.c: message history and message versions over REST (RSL2,
 * RSL11, RSL14, RSL15). */
#include <stdlib.h>
#include <string.h>

#include "core/bus.h"
#include "core/mutation.h"
#include "core/serial.h"
#include "core/server.h"
#include "core/sock.h"
#include "rest/rest.h"
#include "rest/route.h"
#include "store/store.h"
#include "util/clock.h"

/* Decodes stored message rows and replies with one page: at most
 * pg->limit items (rows holds one more when there are more), and no more
 * than the page budget of encoded bytes but at least one item (a reply
 * larger than maxOutboundBytes would not be sent at all). `next` continues
 * after the last row the page covers. */
void route_reply_msgs(route_ctx_t *r, const char *resource, const page_t *pg, const sw_store_rows_t *rows,
                      bool by_vseq) {
  size_t n = rows->n > (size_t)pg->limit ? (size_t)pg->limit : rows->n;
  bool more = rows->n > n;
  sw_msg_t *msgs = calloc(n ? n : 1, sizeof *msgs);
  if (!msgs) {
    sw_error_t err;
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    route_error(r, &err);
    return;
  }
  size_t budget = route_page_budget(r), bytes = 0, got = 0, used = 0;
  sw_buf_t one = {0};
  for (; used < n; used++) {
    const sw_store_row_t *row = &rows->rows[used];
    if (codec_msg_from_blob(row->blob, row->blob_len, &msgs[got])) continue;
    /* A cluster's log stores messages before their serial is known: it is their seq. */
    if (!msgs[got].serial) {
      char serial[SW_SERIAL_LEN + 1];
      serial_format(row->seq, serial);
      msgs[got].serial = strdup(serial);
    }
    /* Each item is encoded once more to measure it: exact, whatever the
     * format's expansion (JSON escapes, base64). */
    one.len = 0;
    codec_encode_msg(r->fmt, &msgs[got], &one);
    if (got && bytes + one.len + 1 > budget) {
      msg_clear(&msgs[got]);
      more = true;
      break;
    }
    bytes += one.len + 1;
    got++;
  }
  buf_free(&one);
  sw_buf_t body = {0};
  codec_encode_msgs(r->fmt, msgs, got, &body);
  const sw_store_row_t *last = used ? &rows->rows[used - 1] : NULL;
  int64_t next = last ? (by_vseq ? last->vseq : last->seq) : -1;
  route_reply_page(r, resource, pg, &body, more, next, NULL);
  for (size_t i = 0; i < got; i++) msg_clear(&msgs[i]);
  free(msgs);
  buf_free(&body);
}

sw_history_q_t route_history_query(const route_ctx_t *r, const char *name, const page_t *pg) {
  sw_history_q_t q = {.app_id = r->app->id, .channel = name, .after_seq = -1, .before_seq = INT64_MAX,
                      .start = pg->start, .end = pg->end, .forwards = pg->forwards,
                      .limit = (size_t)pg->limit + 1, .now = clock_now_ms()};
  int64_t seq;
  /* untilAttach (RTL10b), Chat's fromSerial: only messages up to that serial. */
  if (pg->from[0] && serial_parse(pg->from, strlen(pg->from), &seq) == 0) q.before_seq = seq + 1;
  if (pg->cursor >= 0) {
    if (pg->forwards) q.after_seq = pg->cursor;
    else if (pg->cursor < q.before_seq) q.before_seq = pg->cursor;
  }
  /* Messages not yet durable are not history yet: reads stay consistent
   * with live delivery. A shared log holds only durable messages, some
   * maybe acknowledged before this node delivered them: all are history. */
  sw_server_t *srv = r->s->srv;
  sw_channel_t *ch = channel_find(srv, r->app, name);
  bool shared = srv->bus && bus_shared(srv->bus);
  if (ch && !shared && ch->durable_seq + 1 < q.before_seq) q.before_seq = ch->durable_seq + 1;
  return q;
}

/* A history request waiting for the bus's read: what its reply needs
 * (the socket, referenced until then; not the request, nor the principal). */
typedef struct hist_req {
  route_ctx_t r;
  page_t pg;
} hist_req_t;

static void on_history(void *ud, const sw_error_t *err, sw_store_rows_t *rows, int64_t cursor, bool more) {
  (void)cursor, (void)more;
  hist_req_t *h = ud;
  if (!h->r.s->closing) {
    if (err) route_error(&h->r, err);
    else route_reply_msgs(&h->r, "messages", &h->pg, rows, false);
  }
  store_rows_free(rows);
  sock_unref(h->r.s);
  free(h);
}

/* RSL2: history, newest first by default; one item per message, its head.
 * Read through the bus (core/bus.h): from the embedded store at once, from
 * a cluster's Redis later (the socket is held meanwhile). */
void rest_history(route_ctx_t *r, const char *name) {
  page_t pg;
  if (!route_require(r, name, SW_OP_HISTORY, "history") || !route_page(r, &pg)) return;
  sw_history_q_t q = route_history_query(r, name, &pg);
  sw_error_t err;
  hist_req_t *h = calloc(1, sizeof *h);
  if (!h) {
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    route_error(r, &err);
    return;
  }
  h->r = (route_ctx_t){.s = r->s, .fmt = r->fmt, .keep_alive = r->keep_alive, .app = r->app};
  h->pg = pg;
  sw_bus_range_t br = {.app_id = q.app_id, .channel = q.channel, .after_seq = q.after_seq,
                       .before_seq = q.before_seq, .forwards = q.forwards, .limit = q.limit, .now = q.now,
                       .start = q.start, .end = q.end};
  sock_ref(r->s);
  if (!r->s->srv->bus || bus_read(r->s->srv->bus, &br, on_history, h, &err)) {
    if (!r->s->srv->bus) errors_set(&err, SW_E_INTERNAL, "server shutting down");
    route_error(r, &err);
    sock_unref(r->s);
    free(h);
  }
}

/* A cluster's getMessage: the log's entry at seq, read through the bus. */
static void on_message_read(void *ud, const sw_error_t *err, sw_store_rows_t *rows, int64_t cursor, bool more) {
  (void)cursor, (void)more;
  hist_req_t *h = ud;
  sw_msg_t msg = {0};
  sw_error_t e;
  if (h->r.s->closing) {
  } else if (err) {
    route_error(&h->r, err);
  } else if (rows->n != 1 || codec_msg_from_blob(rows->rows[0].blob, rows->rows[0].blob_len, &msg)) {
    errors_set(&e, SW_E_NOT_FOUND, "no message with serial %.32s", h->pg.from);
    route_error(&h->r, &e);
  } else {
    if (!msg.serial) msg.serial = strdup(h->pg.from);
    sw_buf_t body = {0};
    codec_encode_msg(h->r.fmt, &msg, &body);
    rest_reply(h->r.s, 200, h->r.fmt, &body, h->r.keep_alive, NULL);
    buf_free(&body);
  }
  msg_clear(&msg);
  store_rows_free(rows);
  sock_unref(h->r.s);
  free(h);
}

static void message_get_shared(route_ctx_t *r, const char *name, const char *serial, int64_t seq) {
  sw_error_t err;
  hist_req_t *h = calloc(1, sizeof *h);
  if (!h) {
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    route_error(r, &err);
    return;
  }
  h->r = (route_ctx_t){.s = r->s, .fmt = r->fmt, .keep_alive = r->keep_alive, .app = r->app};
  snprintf(h->pg.from, sizeof h->pg.from, "%s", serial); /* the serial asked for */
  sw_bus_range_t q = {.app_id = r->app->id, .channel = name, .after_seq = seq - 1, .before_seq = seq + 1,
                      .forwards = true, .limit = 1, .now = clock_now_ms()};
  sock_ref(r->s);
  if (bus_read(r->s->srv->bus, &q, on_message_read, h, &err)) {
    route_error(r, &err);
    sock_unref(r->s);
    free(h);
  }
}

/* RSL11: one message by serial, as its latest head. */
void rest_message_get(route_ctx_t *r, const char *name, const char *serial) {
  if (!route_require(r, name, SW_OP_HISTORY, "history")) return;
  int64_t seq;
  sw_bus_t *bus = r->s->srv->bus;
  if (bus && bus_shared(bus) && serial_parse(serial, strlen(serial), &seq) == 0 && seq > 0) {
    message_get_shared(r, name, serial, seq);
    return;
  }
  sw_store_row_t row = {0};
  sw_msg_t msg = {0};
  if (serial_parse(serial, strlen(serial), &seq) || store_get(r->s->srv->store, r->app->id, name, seq, &row) != 1 ||
      codec_msg_from_blob(row.blob, row.blob_len, &msg)) {
    free(row.blob);
    sw_error_t err;
    errors_set(&err, SW_E_NOT_FOUND, "no message with serial %.32s", serial);
    route_error(r, &err);
    return;
  }
  sw_buf_t body = {0};
  codec_encode_msg(r->fmt, &msg, &body);
  rest_reply(r->s, 200, r->fmt, &body, r->keep_alive, NULL);
  buf_free(&body);
  msg_clear(&msg);
  free(row.blob);
}

static void on_versions(void *ud, const sw_error_t *err, sw_store_rows_t *rows, int64_t cursor, bool more) {
  (void)cursor, (void)more;
  hist_req_t *h = ud;
  if (!h->r.s->closing) {
    if (err) route_error(&h->r, err);
    else route_reply_msgs(&h->r, "versions", &h->pg, rows, true);
  }
  store_rows_free(rows);
  sock_unref(h->r.s);
  free(h);
}

/* A cluster's versions (RSL14): read through the bus, answered later. */
static void versions_shared(route_ctx_t *r, const char *name, const char *serial, const page_t *pg) {
  sw_error_t err;
  int64_t seq;
  if (serial_parse(serial, strlen(serial), &seq) || seq < 1) {
    errors_set(&err, SW_E_NOT_FOUND, "no message with serial %.32s", serial);
    route_error(r, &err);
    return;
  }
  hist_req_t *h = calloc(1, sizeof *h);
  if (!h) {
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    route_error(r, &err);
    return;
  }
  h->r = (route_ctx_t){.s = r->s, .fmt = r->fmt, .keep_alive = r->keep_alive, .app = r->app};
  h->pg = *pg;
  sock_ref(r->s);
  if (bus_read_versions(r->s->srv->bus, r->app->id, name, seq, false, pg->forwards, (size_t)pg->limit + 1, pg->cursor,
                        on_versions, h, &err)) {
    route_error(r, &err);
    sock_unref(r->s);
    free(h);
  }
}

/* RSL14: the versions of a message (its update/delete/append events). */
void rest_message_versions(route_ctx_t *r, const char *name, const char *serial) {
  page_t pg;
  int64_t seq;
  if (!route_require(r, name, SW_OP_HISTORY, "history") || !route_page(r, &pg)) return;
  sw_error_t err = {0};
  sw_bus_t *bus = r->s->srv->bus;
  if (bus && bus_shared(bus)) {
    if (bus->ops->read_versions) {
      versions_shared(r, name, serial, &pg);
      return;
    }
    errors_set(&err, SW_E_MUTABLE_NOT_ENABLED, "message versions are not available on a cluster (--redis) yet");
    route_error(r, &err);
    return;
  }
  sw_store_rows_t rows = {0};
  if (serial_parse(serial, strlen(serial), &seq))
    errors_set(&err, SW_E_NOT_FOUND, "no message with serial %.32s", serial);
  else if (store_versions(r->s->srv->store, r->app->id, name, seq, pg.forwards, (size_t)pg.limit + 1, pg.cursor, &rows))
    errors_set(&err, SW_E_INTERNAL, "versions could not be read");
  if (err.code) {
    route_error(r, &err);
    return;
  }
  /* A message never changed has one version, its message.create (its first
   * change stores the create among the versions: mutation_apply). */
  sw_store_row_t head = {0};
  if (rows.n == 0 && pg.cursor < 0 && pg.limit > 0 &&
      store_get(r->s->srv->store, r->app->id, name, seq, &head) == 1) {
    sw_store_rows_t one = {.rows = &head, .n = 1};
    route_reply_msgs(r, "versions", &pg, &one, true);
    free(head.blob);
    store_rows_free(&rows);
    return;
  }
  free(head.blob);
  route_reply_msgs(r, "versions", &pg, &rows, true);
  store_rows_free(&rows);
}

/* RSL15: PATCH a message: update, delete or append (the body's action). */
void rest_message_patch(route_ctx_t *r, sw_channel_t *ch, const char *serial) {
  sw_error_t err = {0};
  sw_msg_t *msgs = NULL;
  size_t n = 0;
  const sw_slice_t *ct = http_req_header(r->req, "Content-Type");
  sw_format_t bfmt = ct && memmem(ct->p, ct->n, "msgpack", 7) ? SW_FMT_MSGPACK : SW_FMT_JSON;
  if (codec_decode_msgs(bfmt, (const uint8_t *)r->req->body.p, r->req->body.n, &msgs, &n, &err)) {
    route_error(r, &err);
    return;
  }
  if (n != 1 || msgs[0].action <= 0) {
    for (size_t i = 0; i < n; i++) msg_clear(&msgs[i]);
    free(msgs);
    errors_set(&err, SW_E_BAD_REQUEST, "PATCH takes one message with action message.update, message.delete or message.append");
    route_error(r, &err);
    return;
  }
  sw_msg_t one = msgs[0];
  free(msgs);
  free(one.serial);
  one.serial = strdup(serial);
  if (one.extras) json_object_del(one.extras, "userClaim");
  sw_publisher_t who = {.rest_sock = r->s, .rest_format = r->fmt, .rest_keep_alive = r->keep_alive,
                        .rest_version = true, .principal = &r->p, .done = rest_publish_done};
  if (mutation_apply(ch, &r->p, r->client_id, &one, &who, &err)) route_error(r, &err);
}
