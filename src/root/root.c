#include "root/root.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "admin/admin.h"
#include "chat/chat.h"
#include "cloud/cloud.h"
#include "cluster/bus_redis.h"
#include "cluster/state_redis.h"
#include "core/bus.h"
#include "core/conn.h"
#include "core/sock.h"
#include "net/http_parse.h"
#include "net/http_response.h"
#include "net/ws_handshake.h"
#include "rest/rest.h"
#include "root/health.h"
#include "util/buf.h"
#include "util/log.h"

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

/* ----------------------------------------------------------- the bus */

/* Copies v into dst (cap bytes, NUL included): -1 if it does not fit. */
static int put(char *dst, size_t cap, const char *v, const char *what) {
  if (!v) return 0;
  if (strlen(v) >= cap) {
    fprintf(stderr, "switchboard: redis.%s is longer than %zu bytes\n", what, cap - 1);
    return -1;
  }
  memcpy(dst, v, strlen(v) + 1);
  return 0;
}

/* The Redis the configuration names: its URL parsed, or the config
 * object's parts checked. 0, or -1 with the reason on stderr. */
static int redis_target(const sw_config_t *c, sw_redis_url_t *u) {
  memset(u, 0, sizeof *u);
  if (c->redis_url) {
    const char *why = NULL;
    int rc = redis_url_parse(c->redis_url, strlen(c->redis_url), u, &why);
    if (rc == -ENOTSUP) {
      fprintf(stderr, "switchboard: --redis: rediss:// (TLS) is not supported: this build's hiredis (0.14) has no "
                      "TLS; reach Redis over a private network, a Unix socket or a TLS tunnel (docs/cluster.md)\n");
      return -1;
    }
    if (rc) {
      fprintf(stderr, "switchboard: --redis: not a Redis URL (%s); want redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] "
                      "or unix:///PATH[?db=N]\n", why ? why : "malformed");
      return -1;
    }
    return 0;
  }
  u->unix_socket = c->redis_socket != NULL;
  if (put(u->host, sizeof u->host, c->redis_host, "host") || put(u->path, sizeof u->path, c->redis_socket, "socket") ||
      put(u->user, sizeof u->user, c->redis_user, "user") ||
      put(u->password, sizeof u->password, c->redis_password, "password"))
    return -1;
  if (u->unix_socket && u->path[0] != '/') {
    fprintf(stderr, "switchboard: redis.socket must be an absolute path\n");
    return -1;
  }
  u->has_password = c->redis_password != NULL;
  u->port = u->unix_socket ? 0 : c->redis_port ? c->redis_port : 6379;
  u->db = c->redis_db;
  return 0;
}

/* sw_server_hooks_t.open_bus: bus_redis when the configuration names a
 * Redis (a cluster node), else bus_local. A Redis that is not up yet is
 * no reason to fail: the node starts, refuses publishes (50004) and
 * answers /readyz 503 until it is. */
static int open_bus(sw_server_t *srv, const sw_bus_handlers_t *h, sw_bus_t **out) {
  const sw_config_t *c = srv->cfg;
  if (!config_has_redis(c)) {
    if (bus_local_open(srv, h, out) == 0) return 0;
    fprintf(stderr, "switchboard: out of memory\n");
    return -1;
  }
  sw_bus_redis_opts_t o = {.connect_timeout_ms = (uint32_t)c->redis_connect_timeout_ms,
                           .command_timeout_ms = (uint32_t)c->redis_command_timeout_ms,
                           .max_pending = (size_t)c->redis_max_pending};
  int rc = redis_target(c, &o.url);
  char shown[SW_REDIS_URL_MAX + 64];
  if (rc == 0 && redis_url_format(&o.url, true, shown, sizeof shown) < 0) snprintf(shown, sizeof shown, "(redis)");
  if (rc == 0 && (rc = bus_redis_open(srv->loop, &o, h, out)))
    fprintf(stderr, "switchboard: cannot use Redis %s: %s\n", shown, strerror(-rc));
  memset(o.url.password, 0, sizeof o.url.password);
  if (rc) return -1;
  log_ev(SW_LOG_INFO, "cluster.start", NULL, NULL, 0, "cluster node: channels are shared through Redis %s", shown);
  return 0;
}

/* ------------------------------------------------ the server's hooks */

/* sw_server_hooks_t.start: the health endpoints, and with --redis the
 * shared state in Redis (cluster/state_redis.h) in place of the data
 * directory's, before server_start loads it. */
static int on_start(sw_server_t *srv) {
  if (health_start(srv)) return -1;
  const sw_config_t *c = srv->cfg;
  if (!config_has_redis(c)) return 0;
  sw_state_redis_opts_t o = {.connect_timeout_ms = (uint32_t)c->redis_connect_timeout_ms,
                             .command_timeout_ms = (uint32_t)c->redis_command_timeout_ms,
                             .max_pending = (size_t)c->redis_max_pending};
  int rc = redis_target(c, &o.url) ? -1 : state_redis_install(srv, &o);
  memset(o.url.password, 0, sizeof o.url.password);
  return rc;
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
      .open_bus = open_bus,
  };
  return server_start(srv, loop, cfg, &hooks, port_out);
}
