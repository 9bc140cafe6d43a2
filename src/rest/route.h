/* route.h: what the REST handlers share (internal to src/rest/): the
 * request context, capability checks and paginated replies. */
#ifndef SW_REST_ROUTE_H
#define SW_REST_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/app.h"
#include "core/channel.h"
#include "core/principal.h"
#include "net/http_parse.h"
#include "proto/codec.h"
#include "store/store.h"

typedef struct sw_sock sw_sock_t;

#define SW_PAGE_DEFAULT_LIMIT 100
#define SW_PAGE_MAX_LIMIT 1000

typedef struct route_ctx {
  sw_sock_t *s;
  const sw_http_req_t *req;
  sw_format_t fmt;
  bool keep_alive;
  sw_app_t *app;
  sw_principal_t p;
  char *client_id; /* the identity requests act as (principal_client_id) */
  char channel[1024];
} route_ctx_t;

/* Paging parameters of a history-like GET (RSL2b, RSP4b). */
typedef struct page {
  int64_t limit;
  int64_t start, end; /* ms, inclusive; 0 / INT64_MAX when absent */
  bool forwards;
  int64_t cursor;     /* seq of the last item of the previous page; -1 none */
  char from[32];      /* from_serial (untilAttach), "" when absent */
} page_t;

/* Starts a request that needs credentials: fills r (response format,
 * principal, the clientId it acts as, RSA7e2's X-Ably-ClientId included).
 * true, or the Ably error is sent and false (nothing to release). */
bool route_begin(sw_sock_t *s, const sw_http_req_t *req, route_ctx_t *r);
/* Releases what route_begin filled. */
void route_end(route_ctx_t *r);
/* A request body's format: msgpack when its Content-Type says so (RSC8). */
sw_format_t rest_body_format(const sw_http_req_t *req);

/* Sends err and returns false unless the principal may do op on channel. */
bool route_require(route_ctx_t *r, const char *channel, int op, const char *what);
/* Reads limit, start, end, direction, cursor and from_serial. Returns true,
 * or sends 40003 and returns false. */
bool route_page(route_ctx_t *r, page_t *pg);
/* The byte budget of one page (sock_low_water: 1 MiB, well under
 * maxOutboundBytes). A page takes items while their encoding fits in it,
 * and at least one; when it stops early, `next` continues after the last
 * item it holds, so the pages together still give every item. */
size_t route_page_budget(const route_ctx_t *r);
/* Replies 200 with body and Link headers relative to resource ("messages",
 * "history", "versions"): rel="first", and rel="next" (from next_cursor) when
 * there is more, in the ./resource?query form ably-js resolves. extra_query
 * ("&name=value..." or NULL) is kept in both links. */
void route_reply_page(route_ctx_t *r, const char *resource, const page_t *pg, const sw_buf_t *body, bool more,
                      int64_t next_cursor, const char *extra_query);
void route_error(route_ctx_t *r, const sw_error_t *e);
/* Replies with one page of stored messages (or annotations): at most
 * pg->limit items (rows holds one more when there are more) within the
 * page budget, `next` continuing after the last row given (its vseq when
 * by_vseq, else its seq). */
void route_reply_msgs(route_ctx_t *r, const char *resource, const page_t *pg, const sw_store_rows_t *rows,
                      bool by_vseq);

/* The format of a request body (Content-Type: msgpack or JSON). */
sw_format_t rest_body_format(const sw_http_req_t *req);
/* Checks and stamps the messages of a REST publish on ch (rest.c). 0, or -1
 * with err. */
int rest_prepare_publish(route_ctx_t *r, sw_channel_t *ch, sw_msg_t *msgs, size_t n, sw_error_t *err);

/* Handlers (rest/history.c, rest/presence_rest.c, rest/batch.c). */
void rest_batch_publish(route_ctx_t *r);
void rest_batch_presence(route_ctx_t *r);
void rest_history(route_ctx_t *r, const char *channel);
void rest_message_get(route_ctx_t *r, const char *channel, const char *serial);
void rest_message_versions(route_ctx_t *r, const char *channel, const char *serial);
void rest_message_patch(route_ctx_t *r, sw_channel_t *ch, const char *serial);
void rest_presence_get(route_ctx_t *r, const char *channel);
/* rest/annotations_rest.c: POST and GET /channels/{ch}/messages/{serial}/annotations (RSAN1-3). */
void rest_annotations_post(route_ctx_t *r, sw_channel_t *ch, const char *serial);
void rest_annotations_get(route_ctx_t *r, const char *channel, const char *serial);
void rest_presence_history(route_ctx_t *r, const char *channel);

#endif
