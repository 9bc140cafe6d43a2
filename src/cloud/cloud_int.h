/* cloud_int.h: what the Assistant Cloud handlers share (internal to
 * src/cloud/): the request context, the limits, replies and helpers. */
#ifndef SW_CLOUD_CLOUD_INT_H
#define SW_CLOUD_CLOUD_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/app.h"
#include "core/principal.h"
#include "net/http_parse.h"
#include "proto/errors.h"
#include "store/store.h"

typedef struct sw_sock sw_sock_t;

/* Sizes a client controls, each checked before it is stored (and the body
 * as a whole by maxHttpBody before it is read). docs/design.md, "Limits". */
#define CLOUD_WORKSPACE_MAX 128    /* bytes of a workspace id */
#define CLOUD_USER_MAX 256         /* bytes of Aui-User-Id */
#define CLOUD_TITLE_MAX 1024       /* bytes of a thread title */
#define CLOUD_EXTERNAL_ID_MAX 256  /* bytes of an external_id */
#define CLOUD_METADATA_MAX 16384   /* bytes of a thread's metadata, as compact JSON */
#define CLOUD_CONTENT_MAX 262144   /* bytes of a message's content, as compact JSON */
#define CLOUD_FORMAT_MAX 64        /* bytes of a message format */
#define CLOUD_COMMENT_MAX 4096     /* bytes of a feedback comment */
#define CLOUD_DELETE_IDS_MAX 200   /* message ids in one delete */
#define CLOUD_THREADS_LIMIT_MAX 100
#define CLOUD_MESSAGES_LIMIT_MAX 200 /* the client pages messages by 200 */
#define CLOUD_PAGE_BUDGET (2u << 20) /* bytes of rows in one list response */

/* One request to /cloud/{appId}/v1/... */
typedef struct cloud_req {
  sw_sock_t *s;
  const sw_http_req_t *req;
  bool keep_alive;
  sw_app_t *app;
  sw_slice_t route;  /* the path after /v1 */
  bool authed;
  sw_principal_t p;
  char workspace[CLOUD_WORKSPACE_MAX + 1];
  char *user;        /* who writes: Aui-User-Id or the token's clientId; NULL if none */
  char *exchanged;   /* a token of our own for the Authorization response header, or NULL */
} cloud_req_t;

/* ---- cloud.c ---- */

/* Replies with v as JSON (NULL: no body), adding the exchanged token header
 * when there is one. */
void cloud_reply(cloud_req_t *c, int status, const json_t *v);
void cloud_error(cloud_req_t *c, const sw_error_t *e);
/* Sends err (code, message) and returns false; for `return cloud_fail(...)`. */
bool cloud_fail(cloud_req_t *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The request body as a JSON object (40001 when it is not one); an empty
 * body is {} when allow_empty. NULL after replying with the error. */
json_t *cloud_body(cloud_req_t *c, bool allow_empty);
/* Authenticates the request and sets c->workspace (and c->user). false
 * after replying with the error. */
bool cloud_authenticate(cloud_req_t *c);
/* Does the principal allow op on the thread channel (thread NULL: the whole
 * workspace, "cloud:{ws}:*")? Replies 40160 and returns false if not. */
bool cloud_require(cloud_req_t *c, const char *thread, int op);
/* The channel of a thread: "cloud:{workspace}:{thread}". */
void cloud_channel(const char *workspace, const char *thread, char *out, size_t cap);
/* A workspace id: 1..CLOUD_WORKSPACE_MAX printable ASCII bytes, without ':'
 * or '*' (so a capability "cloud:{sub}:*" names exactly one workspace). */
bool cloud_workspace_valid(const char *ws, size_t n);
/* "2026-07-16T12:30:00.000Z" (Date#toISOString) into out[25]. */
void cloud_iso_time(int64_t ms, char out[25]);
/* Parses an ISO 8601 date-time with Z or an offset (or a JSON number of
 * ms). 0 or -1. */
int cloud_parse_time(const json_t *v, int64_t *ms);
/* A random id "prefix_" + 20 characters into out[SW_CLOUD_ID_MAX]. */
int cloud_new_id(const char *prefix, char *out);

/* ---- threads.c ---- */
void cloud_threads_route(cloud_req_t *c);

/* ---- auth.c ---- */
void cloud_auth_route(cloud_req_t *c);
/* The token a request made with some other token gets back in the
 * Authorization response header (c->exchanged), or none (not an error). */
void cloud_exchange(cloud_req_t *c);

#endif
