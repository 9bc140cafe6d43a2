/* annotations_rest.c: a message's annotations over REST (RSAN1 publish,
 * RSAN2 delete, RSAN3 get): /channels/{ch}/messages/{serial}/annotations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/annotation.h"
#include "core/bus.h"
#include "core/serial.h"
#include "core/server.h"
#include "core/sock.h"
#include "net/url.h"
#include "rest/rest.h"
#include "rest/route.h"
#include "store/store.h"

/* RSAN1/RSAN2: the body is one annotation or an array of them, for the
 * message of the path (RSAN1c2); answered 201 {channel, serials} once they
 * are durable, like a publish. */
void rest_annotations_post(route_ctx_t *r, sw_channel_t *ch, const char *serial) {
  sw_error_t err = {0};
  sw_msg_t *anns = NULL;
  size_t n = 0;
  if (app_namespace_transport_check(ch->ns, r->s->secure, &err)) {
    route_error(r, &err);
    return;
  }
  const sw_slice_t *ct = http_req_header(r->req, "Content-Type");
  sw_format_t bfmt = ct && memmem(ct->p, ct->n, "msgpack", 7) ? SW_FMT_MSGPACK : SW_FMT_JSON;
  if (codec_decode_msgs(bfmt, (const uint8_t *)r->req->body.p, r->req->body.n, &anns, &n, &err)) {
    route_error(r, &err);
    return;
  }
  /* Ids the client chose are kept (RSAN1c4); others get a random base. */
  char base[32];
  app_random_id(base, 12);
  for (size_t i = 0; i < n; i++) {
    sw_msg_t *a = &anns[i];
    free(a->message_serial);
    a->message_serial = strdup(serial);
    free(a->connection_key);
    a->connection_key = NULL;
    a->timestamp = 0; /* the server's (TAN2h) */
    if (!a->id) {
      char id[64];
      snprintf(id, sizeof id, "%s:%zu", base, i);
      a->id = strdup(id);
    }
  }
  sw_publisher_t who = {.rest_sock = r->s, .rest_format = r->fmt, .rest_keep_alive = r->keep_alive,
                        .principal = &r->p, .done = rest_publish_done};
  if (annotation_publish(ch, &r->p, r->client_id, anns, n, &who, &err)) route_error(r, &err);
}
/* A cluster's annotations of a message: read through the bus (its list
 * {t}:a:<seq>, docs/cluster.md), answered later, the socket held. */
typedef struct ann_read {
  route_ctx_t r;
  page_t pg;
} ann_read_t;

static void on_list(void *ud, const sw_error_t *err, sw_store_rows_t *rows, int64_t cursor, bool more) {
  (void)cursor, (void)more;
  ann_read_t *q = ud;
  if (!q->r.s->closing) {
    if (err) route_error(&q->r, err);
    else route_reply_msgs(&q->r, "annotations", &q->pg, rows, true);
  }
  store_rows_free(rows);
  sock_unref(q->r.s);
  free(q);
}

static void list_shared(route_ctx_t *r, const char *name, int64_t seq, const page_t *pg) {
  sw_error_t err;
  sw_bus_t *bus = r->s->srv->bus;
  ann_read_t *q = calloc(1, sizeof *q);
  if (!q) {
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    route_error(r, &err);
    return;
  }
  q->r = (route_ctx_t){.s = r->s, .fmt = r->fmt, .keep_alive = r->keep_alive, .app = r->app};
  q->pg = *pg;
  sock_ref(r->s);
  if (!bus->ops->read_versions)
    errors_set(&err, SW_E_MUTABLE_NOT_ENABLED, "annotations are not available on a cluster (--redis) yet");
  if (!bus->ops->read_versions ||
      bus_read_versions(bus, r->app->id, name, seq, true, pg->forwards, (size_t)pg->limit + 1, pg->cursor, on_list, q,
                        &err)) {
    route_error(r, &err);
    sock_unref(r->s);
    free(q);
  }
}


/* RSAN3: the annotations of a message, oldest first unless direction says
 * otherwise, paged like history (cursor: the last annotation's serial). */
void rest_annotations_get(route_ctx_t *r, const char *name, const char *serial) {
  sw_error_t err = {0};
  if (!cap_allows(r->p.cap, name, SW_OP_HISTORY) && !cap_allows(r->p.cap, name, SW_OP_ANNOTATION_SUBSCRIBE)) {
    errors_set(&err, SW_E_CAPABILITY_DENIED, "annotations denied (history or annotation-subscribe); channel = %.200s",
               name);
    route_error(r, &err);
    return;
  }
  if (app_namespace_transport_check(app_namespace_for(r->app, name), r->s->secure, &err)) {
    route_error(r, &err);
    return;
  }
  page_t pg;
  if (!route_page(r, &pg)) return;
  char dir[16];
  if (url_query_get(r->req->query, "direction", dir, sizeof dir) < 0) pg.forwards = true;
  sw_channel_t *ch = channel_get(r->s->srv, r->app, name);
  int64_t seq;
  sw_store_rows_t rows = {0};
  if (!ch)
    errors_set(&err, SW_E_INTERNAL, "out of memory");
  else if (!ch->mutable_messages)
    errors_set(&err, SW_E_MUTABLE_NOT_ENABLED, "annotations are not enabled on this channel (mutableMessages)");
  else if (serial_parse(serial, strlen(serial), &seq))
    errors_set(&err, SW_E_NOT_FOUND, "no message with serial %.32s", serial);
  else if (r->s->srv->bus && bus_shared(r->s->srv->bus)) {
    list_shared(r, name, seq, &pg);
    return;
  } else if (store_annotations(r->s->srv->store, r->app->id, name, seq, pg.forwards, (size_t)pg.limit + 1, pg.cursor,
                             &rows))
    errors_set(&err, SW_E_INTERNAL, "annotations could not be read");
  if (err.code) {
    route_error(r, &err);
    return;
  }
  route_reply_msgs(r, "annotations", &pg, &rows, true);
  store_rows_free(&rows);
}
