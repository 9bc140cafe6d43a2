/* presence_rest.c: presence over REST (RSP3 members, RSP4 history). */
#include <stdlib.h>
#include <string.h>

#include "core/presence.h"
#include "core/server.h"
#include "core/sock.h"
#include "net/url.h"
#include "rest/rest.h"
#include "rest/route.h"
#include "store/store.h"
#include "util/clock.h"

/* RSP3: the current members, optionally filtered by clientId/connectionId. */
void rest_presence_get(route_ctx_t *r, const char *name) {
  page_t pg;
  if (!route_require(r, name, SW_OP_SUBSCRIBE, "presence") || !route_page(r, &pg)) return;
  char cid[256], conn[64];
  bool by_cid = url_query_get(r->req->query, "clientId", cid, sizeof cid) >= 0;
  bool by_conn = url_query_get(r->req->query, "connectionId", conn, sizeof conn) >= 0;
  sw_channel_t *ch = channel_get(r->s->srv, r->app, name);
  /* The cursor is the number of matching members already returned: the
   * set iterates in a stable order between changes. */
  int64_t skip = pg.cursor > 0 ? pg.cursor : 0, seen = 0;
  size_t n = 0;
  bool more = false;
  sw_presence_t *out = ch ? calloc((size_t)pg.limit, sizeof *out) : NULL;
  /* Cut by size as well as by limit (route_page_budget). */
  size_t budget = route_page_budget(r), bytes = 0;
  sw_buf_t one = {0};
  for (sw_member_t *mb = ch ? ch->members : NULL; out && mb; mb = mb->hh.next) {
    if (by_cid && strcmp(mb->p.client_id, cid) != 0) continue;
    if (by_conn && strcmp(mb->p.connection_id, conn) != 0) continue;
    if (seen++ < skip) continue;
    one.len = 0;
    codec_encode_presence_array(r->fmt, &mb->p, 1, &one);
    if (n == (size_t)pg.limit || (n && bytes + one.len > budget)) {
      more = true;
      break;
    }
    bytes += one.len;
    out[n++] = mb->p; /* shallow: the set keeps ownership */
  }
  buf_free(&one);
  sw_buf_t body = {0};
  codec_encode_presence_array(r->fmt, out, n, &body);
  sw_buf_t filters = {0};
  if (by_cid) buf_append_str(&filters, "&clientId="), url_encode(&filters, cid, strlen(cid));
  if (by_conn) buf_append_str(&filters, "&connectionId="), url_encode(&filters, conn, strlen(conn));
  buf_append_byte(&filters, 0);
  route_reply_page(r, "presence", &pg, &body, more, skip + (int64_t)n, (const char *)filters.data);
  buf_free(&filters);
  buf_free(&body);
  free(out);
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
