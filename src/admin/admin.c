#include "admin/admin.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conn.h"
#include "core/server.h"
#include "core/shared.h"
#include "core/sock.h"
#include "net/http_parse.h"
#include "net/url.h"
#include "rest/rest.h"

bool admin_authorized(const sw_server_t *srv, const sw_http_req_t *req) {
  if (srv->cfg->sandbox) return true;
  const char *want = srv->cfg->admin_key;
  const sw_slice_t *auth = http_req_header(req, "Authorization");
  if (!want || !auth || auth->n < 7 || strncasecmp(auth->p, "Bearer ", 7) != 0) return false;
  size_t n = auth->n - 7;
  return n == strlen(want) && CRYPTO_memcmp(auth->p + 7, want, n) == 0;
}

/* The routing fields of ably-js's local-sandbox test set-up: with
 * ABLY_LOCAL_SANDBOX_URL its testapp_manager.js creates each test app through
 * POST /apps and routes every client at the `endpoint`, `port` and `tls` of
 * the answer. They say where this request reached the server: the Host
 * header's host and port (a Host without a port means the scheme's default,
 * 80 or 443), and whether it came over TLS (ours, or a trusted proxy's). A
 * Host the server cannot echo (absent, too long, empty, a bad port) gives the
 * configured listen host and the listener's port instead. */
static void add_routing(json_t *v, const sw_sock_t *s, const sw_http_req_t *req) {
  const sw_server_t *srv = s->srv;
  char host[256];
  int port = -1;
  snprintf(host, sizeof host, "%s", srv->cfg->host);
  const sw_slice_t *h = http_req_header(req, "Host");
  if (h && h->n > 0 && h->n < sizeof host) {
    const char *colon = memrchr(h->p, ':', h->n);
    const char *close = memchr(h->p, ']', h->n);
    /* In "[::1]:8080" the port follows the last ':' only after the ']'. */
    bool has_port = colon && (h->p[0] != '[' || (close && colon > close));
    size_t hn = has_port ? (size_t)(colon - h->p) : h->n;
    long p = s->secure ? 443 : 80;
    bool ok = hn > 0;
    if (has_port) {
      char digits[8], *end = NULL;
      size_t dn = h->n - hn - 1;
      p = 0;
      if (dn > 0 && dn < sizeof digits) {
        memcpy(digits, colon + 1, dn);
        digits[dn] = 0;
        p = strtol(digits, &end, 10);
      }
      ok = ok && end && *end == 0 && p > 0 && p < 65536;
    }
    if (ok) {
      memcpy(host, h->p, hn);
      host[hn] = 0;
      port = (int)p;
    }
  }
  if (port < 0) {
    int bound = sock_listener_port(&srv->listener);
    port = bound > 0 ? bound : srv->cfg->port;
  }
  json_t *endpoint = json_string(host); /* NULL if the Host is not UTF-8 */
  json_object_set_new(v, "endpoint", endpoint ? endpoint : json_string(srv->cfg->host));
  json_object_set_new(v, "port", json_integer(port));
  json_object_set_new(v, "tls", json_boolean(s->secure));
}

/* A request held until the shared state answers (core/shared.h): the
 * socket stays referenced, the routing fields are taken from the request
 * now (it does not outlive this call). */
typedef struct admin_op {
  sw_sock_t *s;
  sw_format_t fmt;
  bool keep_alive;
  json_t *routing;
  sw_app_t *app; /* delete: the app */
} admin_op_t;

static admin_op_t *op_new(sw_sock_t *s, sw_format_t fmt, bool keep_alive) {
  admin_op_t *op = calloc(1, sizeof *op);
  if (!op) return NULL;
  op->s = s;
  op->fmt = fmt;
  op->keep_alive = keep_alive;
  sock_ref(s);
  return op;
}

static void op_free(admin_op_t *op) {
  sock_unref(op->s);
  json_decref(op->routing);
  free(op);
}

static void created(void *ud, sw_app_t *app, const sw_error_t *err) {
  admin_op_t *op = ud;
  if (!op->s->closing) {
    if (!app) {
      rest_error(op->s, op->fmt, err, op->keep_alive);
    } else {
      json_t *v = app_to_json(app);
      json_object_update(v, op->routing);
      rest_reply_value(op->s, 201, op->fmt, v, op->keep_alive, NULL);
      json_decref(v);
    }
  }
  op_free(op);
}

static void create_app(sw_sock_t *s, const sw_http_req_t *req, sw_format_t fmt) {
  sw_server_t *srv = s->srv;
  sw_error_t err = {0};
  const sw_slice_t *ct = http_req_header(req, "Content-Type");
  sw_format_t bfmt = ct && memmem(ct->p, ct->n, "msgpack", 7) ? SW_FMT_MSGPACK : SW_FMT_JSON;
  json_t *spec = req->body.n ? codec_decode_value(bfmt, (const uint8_t *)req->body.p, req->body.n, &err)
                             : json_object();
  if (!spec) {
    rest_error(s, fmt, &err, req->keep_alive);
    return;
  }
  sw_app_t *app = app_from_spec(spec, true, &err);
  json_decref(spec);
  admin_op_t *op = app ? op_new(s, fmt, req->keep_alive) : NULL;
  if (app && (!op || !(op->routing = json_object()))) errors_set(&err, SW_E_INTERNAL, "out of memory");
  if (!op || !op->routing) {
    app_free(app);
    if (op) op_free(op);
    rest_error(s, fmt, &err, req->keep_alive);
    return;
  }
  add_routing(op->routing, s, req);
  /* Registered here and, in a cluster, on every node; answered once it is. */
  shared_app_create(srv, app, created, op);
}

static void deleted(void *ud, const sw_error_t *err) {
  admin_op_t *op = ud;
  if (!err->code) server_delete_app(op->s->srv, op->app);
  if (!op->s->closing) {
    if (err->code) rest_error(op->s, op->fmt, err, op->keep_alive);
    else rest_reply(op->s, 204, op->fmt, NULL, op->keep_alive, NULL);
  }
  op_free(op);
}

static void delete_app(sw_sock_t *s, sw_app_t *app, sw_format_t fmt, bool keep_alive) {
  admin_op_t *op = op_new(s, fmt, keep_alive);
  if (!op) {
    sw_error_t err;
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    rest_error(s, fmt, &err, keep_alive);
    return;
  }
  op->app = app;
  shared_app_delete(s->srv, app, deleted, op);
}

void admin_handle(sw_sock_t *s, const sw_http_req_t *req) {
  sw_server_t *srv = s->srv;
  const char *acc = NULL;
  const sw_slice_t *a = http_req_header(req, "Accept");
  if (a && memmem(a->p, a->n, "msgpack", 7)) acc = "msgpack";
  sw_format_t fmt = acc ? SW_FMT_MSGPACK : SW_FMT_JSON;
  sw_error_t err = {0};
  if (!admin_authorized(srv, req)) {
    errors_set(&err, SW_E_INVALID_CREDENTIALS, "the admin API needs the admin key");
    rest_error(s, fmt, &err, req->keep_alive);
    return;
  }
  const sw_slice_t *p = &req->path;
  if (slice_eq(*p, "/apps") && req->method == HTTP_POST) {
    create_app(s, req, fmt);
    return;
  }
  char id[128];
  if (p->n > 6 && memcmp(p->p, "/apps/", 6) == 0 && url_decode(p->p + 6, p->n - 6, id, sizeof id, false) > 0) {
    sw_app_t *app = apps_find(&srv->apps, id);
    if (!app) {
      errors_set(&err, SW_E_NOT_FOUND, "no application with id %.64s", id);
      rest_error(s, fmt, &err, req->keep_alive);
      return;
    }
    if (req->method == HTTP_DELETE) {
      delete_app(s, app, fmt, req->keep_alive);
      return;
    }
    if (req->method == HTTP_GET) {
      json_t *v = app_to_json(app);
      rest_reply_value(s, 200, fmt, v, req->keep_alive, NULL);
      json_decref(v);
      return;
    }
  }
  errors_set(&err, SW_E_NOT_FOUND, "no such resource");
  rest_error(s, fmt, &err, req->keep_alive);
}
