#include "root/root.h"

#include <string.h>

#include "admin/admin.h"
#include "chat/chat.h"
#include "cloud/cloud.h"
#include "cluster/state_redis.h"
#include "core/conn.h"
#include "core/sock.h"
#include "net/http_parse.h"
#include "net/http_response.h"
#include "net/ws_handshake.h"
#include "rest/rest.h"
#include "root/health.h"
#include "util/buf.h"

/* ------------------------------------------------------------- apps */

/* The Assistant Cloud API's "anonymous" section of an app spec. */
static int check_app_spec(const sw_app_t *a, sw_error_t *err) {
  /* Anonymous users of the Assistant Cloud API: off unless configured. */
  return cloud_anon_check(json_object_get(a->spec, "anonymous"), a, err);
}

void root_init(void) { app_set_spec_check(check_app_spec); }

/* ----------------------------------------------------------- routing */

static void cors_preflight(sw_sock_t *s, const sw_http_req_t *req) {
  sw_buf_t h = {0}, out = {0};
  const sw_slice_t *rh = http_req_header(req, "Access-Control-Request-Headers");
  rest_cors_headers(&h, s);
  buf_printf(&h,
             "Access-Control-Allow-Methods: GET, POST, PUT, PATCH, DELETE, OPTIONS\r\n"
             "Access-Control-Allow-Headers: %.*s\r\n"
             "Access-Control-Max-Age: 86400\r\n",
             rh ? (int)rh->n : 13, rh ? rh->p : "Authorization");
  buf_append_byte(&h, 0);
  http_response_head(&out, 204, NULL, 0, (const char *)h.data, req->keep_alive);
  sock_send_bytes(s, out.data, out.len);
  buf_free(&h);
  buf_free(&out);
}

/* The WebSocket upgrade of "/": the handshake, then the socket belongs to
 * an Ably connection (core/conn.c). */
static void upgrade(sw_sock_t *s, const sw_http_req_t *req) {
  char accept[29];
  sw_error_t err = {0};
  if (ws_handshake_check(req, accept, &err)) {
    rest_error(s, SW_FMT_JSON, &err, false);
    return;
  }
  sw_buf_t out = {0};
  ws_handshake_response(&out, accept, NULL);
  sock_send_bytes(s, out.data, out.len);
  buf_free(&out);
  s->is_ws = true;
  conn_on_upgrade(s, req);
}

/* sw_server_hooks_t.on_request: every HTTP request, by path. */
static void on_request(sw_sock_t *s, const sw_http_req_t *req) {
  if (health_route(s, req)) return;
  if (req->method == HTTP_OPTIONS) {
    cors_preflight(s, req);
    return;
  }
  if (req->upgrade && slice_eq(req->path, "/")) {
    upgrade(s, req);
    return;
  }
  if (req->path.n >= 5 && memcmp(req->path.p, "/apps", 5) == 0 &&
      (req->path.n == 5 || req->path.p[5] == '/')) {
    admin_handle(s, req);
    return;
  }
  if (req->path.n > 7 && memcmp(req->path.p, "/cloud/", 7) == 0) {
    cloud_handle(s, req);
    return;
  }
  if (chat_route(req)) {
    chat_handle(s, req);
    return;
  }
  rest_handle(s, req);
}

/* ------------------------------------------------ the server's hooks */

/* sw_server_hooks_t.start: the health endpoints, and with --redis the
 * shared state in Redis (cluster/state_redis.h) in place of the data
 * directory's, before server_start loads it. */
static int on_start(sw_server_t *srv) {
  if (health_start(srv)) return -1;
  return srv->cfg->redis_url ? state_redis_install_url(srv, srv->cfg->redis_url) : 0;
}

static void on_free(sw_server_t *srv) {
  health_free(srv);
  cloud_free(srv);
}

int root_server_start(sw_server_t *srv, uv_loop_t *loop, sw_config_t *cfg, int *port_out) {
  static const sw_server_hooks_t hooks = {
      .on_request = on_request,
      .start = on_start,
      .tick = health_tick,
      .close = health_close,
      .free = on_free,
  };
  return server_start(srv, loop, cfg, &hooks, port_out);
}
