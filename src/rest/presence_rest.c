/* presence_rest.c: presence over REST (RSP3 members, RSP4 history). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bus.h"
#include "core/presence.h"
#include "core/server.h"
#include "core/sock.h"
#include "net/url.h"
#include "rest/rest.h"
#include "rest/route.h"
#include "store/store.h"
#include "util/clock.h"

/* The filters and page of a presence GET, kept while the members are read. */
typedef struct pres_q {
  route_ctx_t r; /* the socket (referenced while waiting), format, app; not the request */
  page_t pg;
  char cid[256], conn[64];
  bool by_cid, by_conn;
} pres_q_t;

/* Replies with one page of the members (the cursor is the number of
 * matching members already returned: the set iterates in a stable order
 * between changes). */
static void reply_members(pres_q_t *q, const sw_presence_t *const *set, size_t n_set) {
  route_ctx_t *r = &q->r;
  int64_t skip = q->pg.cursor > 0 ? q->pg.cursor : 0, seen = 0;
  size_t n = 0;
  bool more = false;
  sw_presence_t *out = calloc((size_t)q->pg.limit, sizeof *out);
  /* Cut by size as well as by limit (route_page_budget). */
  size_t budget = route_page_budget(r), bytes = 0;
  sw_buf_t one = {0};
  for (size_t i = 0; out && i < n_set; i++) {
    const sw_presence_t *p = set[i];
    if (q->by_cid && strcmp(p->client_id, q->cid) != 0) continue;
    if (q->by_conn && strcmp(p->connection_id, q->conn) != 0) continue;
    if (seen++ < skip) continue;
    one.len = 0;
    codec_encode_presence_array(r->fmt, p, 1, &one);
    if (n == (size_t)q->pg.limit || (n && bytes + one.len > budget)) {
      more = true;
      break;
    }
    bytes += one.len;
    out[n++] = *p; /* shallow: the caller keeps ownership */
  }
  buf_free(&one);
  sw_buf_t body = {0};
  codec_encode_presence_array(r->fmt, out, n, &body);
  sw_buf_t filters = {0};
  if (q->by_cid) buf_append_str(&filters, "&clientId="), url_encode(&filters, q->cid, strlen(q->cid));
  if (q->by_conn) buf_append_str(&filters, "&connectionId="), url_encode(&filters, q->conn, strlen(q->conn));
  buf_append_byte(&filters, 0);
  route_reply_page(r, "presence", &q->pg, &body, more, skip + (int64_t)n, (const char *)filters.data);
  buf_free(&filters);
  buf_free(&body);
  free(out);
}

/* A cluster's member set, read from the shared store (core/bus.h) for a
 * channel this node does not hold: every node's members, and this node's
 * fixture members (each node loads its own). */
static void on_members(void *ud, const sw_error_t *err, const sw_bus_member_t *m, size_t n) {
  pres_q_t *q = ud;
  if (!q->r.s->closing) {
    if (err) {
      route_error(&q->r, err);
    } else {
      sw_channel_t *ch = channel_find(q->r.s->srv, q->r.app, q->r.channel);
      size_t n_local = ch ? ch->n_members : 0;
      sw_presence_t *dec = calloc(n + 1, sizeof *dec);
      const sw_presence_t **set = calloc(n + n_local + 1, sizeof *set);
      size_t k = 0, d = 0;
      for (size_t i = 0; dec && set && i < n; i++)
        if (presence_member_decode(&m[i], &dec[d]) == 0) set[k++] = &dec[d++];
      for (sw_member_t *mb = ch && set ? ch->members : NULL; mb; mb = mb->hh.next)
        if (!mb->remote && mb->p.connection_id && strcmp(mb->p.connection_id, "fixture") == 0) set[k++] = &mb->p;
      reply_members(q, set, k);
      for (size_t i = 0; dec && i < d; i++) presence_clear(&dec[i]);
      free(dec);
      free(set);
    }
  }
  sock_unref(q->r.s);
  free(q);
}

/* RSP3: the current members, optionally filtered by clientId/connectionId. */
void rest_presence_get(route_ctx_t *r, const char *name) {
  pres_q_t *q = calloc(1, sizeof *q);
  sw_error_t err;
  if (!q) {
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    route_error(r, &err);
    return;
  }
  if (!route_require(r, name, SW_OP_SUBSCRIBE, "presence") || !route_page(r, &q->pg)) {
    free(q);
    return;
  }
  q->by_cid = url_query_get(r->req->query, "clientId", q->cid, sizeof q->cid) >= 0;
  q->by_conn = url_query_get(r->req->query, "connectionId", q->conn, sizeof q->conn) >= 0;
  q->r = (route_ctx_t){.s = r->s, .fmt = r->fmt, .keep_alive = r->keep_alive, .app = r->app};
  snprintf(q->r.channel, sizeof q->r.channel, "%s", name);
  sw_channel_t *ch = channel_get(r->s->srv, r->app, name);
  sw_bus_t *bus = r->s->srv->bus;
  if (ch && bus && bus_shared(bus) && bus_has_members(bus) && !ch->bus_ready) {
    /* A cluster node that does not hold the channel: its set is in Redis. */
    sock_ref(r->s);
    if (bus_members_read(bus, r->app->id, name, on_members, q, &err) == 0) return;
    sock_unref(r->s);
    route_error(r, &err);
    free(q);
    return;
  }
  /* One node, or a node holding the channel: its set is every node's. */
  size_t n_set = ch ? ch->n_members : 0;
  const sw_presence_t **set = calloc(n_set + 1, sizeof *set);
  size_t k = 0;
  for (sw_member_t *mb = ch && set ? ch->members : NULL; mb; mb = mb->hh.next) set[k++] = &mb->p;
  reply_members(q, set, k);
  free(set);
  free(q);
}

/* RSP4: presence history, paginated like message history. */
void rest_presence_history(route_ctx_t *r, const char *name) {
  page_t pg;
  if (!route_require(r, name, SW_OP_HISTORY, "presence history") || !route_page(r, &pg)) return;
  sw_error_t err = {0};
  sw_channel_t *ch = channel_get(r->s->srv, r->app, name);
  if (!ch) {
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    route_error(r, &err);
    return;
  }
  char key[1100];
  presence_history_key(ch, key, sizeof key);
  sw_history_q_t q = {.app_id = r->app->id, .channel = key, .after_seq = -1, .before_seq = INT64_MAX,
                      .start = pg.start, .end = pg.end, .forwards = pg.forwards,
                      .limit = (size_t)pg.limit + 1, .now = clock_now_ms()};
  if (pg.cursor >= 0) {
    if (pg.forwards) q.after_seq = pg.cursor;
    else q.before_seq = pg.cursor;
  }
  sw_store_rows_t rows = {0};
  if (store_history(r->s->srv->store, &q, &rows)) {
    errors_set(&err, SW_E_INTERNAL, "presence history could not be read");
    route_error(r, &err);
    return;
  }
  bool more = rows.n > (size_t)pg.limit;
  size_t n = more ? (size_t)pg.limit : rows.n, got = 0, used = 0;
  /* Each row is a one-member PRESENCE ProtocolMessage (core/presence.c). */
  sw_pmsg_t *decoded = calloc(n ? n : 1, sizeof *decoded);
  sw_presence_t *items = calloc(n ? n : 1, sizeof *items);
  if (!decoded || !items) {
    free(decoded);
    free(items);
    store_rows_free(&rows);
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    route_error(r, &err);
    return;
  }
  /* Cut by size as well as by limit (route_page_budget). */
  size_t budget = route_page_budget(r), bytes = 0;
  sw_buf_t one = {0};
  for (; used < n; used++) {
    sw_error_t derr;
    if (codec_decode_pmsg(SW_FMT_MSGPACK, rows.rows[used].blob, rows.rows[used].blob_len, &decoded[got], &derr))
      continue;
    if (decoded[got].n_presence != 1) {
      pmsg_free(&decoded[got]);
      continue;
    }
    one.len = 0;
    codec_encode_presence_array(r->fmt, decoded[got].presence, 1, &one);
    if (got && bytes + one.len > budget) {
      pmsg_free(&decoded[got]);
      more = true;
      break;
    }
    bytes += one.len;
    items[got] = decoded[got].presence[0], got++;
  }
  buf_free(&one);
  sw_buf_t body = {0};
  codec_encode_presence_array(r->fmt, items, got, &body);
  route_reply_page(r, "history", &pg, &body, more, used ? rows.rows[used - 1].seq : -1, NULL);
  for (size_t i = 0; i < got; i++) pmsg_free(&decoded[i]);
  free(decoded);
  free(items);
  buf_free(&body);
  store_rows_free(&rows);
}
