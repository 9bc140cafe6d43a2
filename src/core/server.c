#include "core/server.h"

#include "core/mutation.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth/cap_cache.h"
#include "identity/identity.h"
#include "core/bus.h"
#include "core/channel.h"
#include "core/conn.h"
#include "core/rollup.h"
#include "core/sock.h"
#include "core/tls.h"
#include "net/http_parse.h"
#include "util/clock.h"
#include "util/log.h"

/* The tick drives heartbeats, token expiry and revocation: a quarter second
 * keeps expiry prompt at negligible cost. */
#define TICK_MS 250
#define PRUNE_EVERY_TICKS 40

static void on_tick(uv_timer_t *t) {
  sw_server_t *srv = t->data;
  uint64_t now_loop = uv_now(srv->loop);
  int64_t now = clock_now_ms();
  conn_tick(srv, now_loop, now);
  if (srv->hooks.tick) srv->hooks.tick(srv, now_loop);
  channel_tick(srv, now);
  socks_tick(srv, now_loop); /* deadlines: pending and closing sockets only */
  if (++srv->tick_count % PRUNE_EVERY_TICKS == 0) {
    store_prune(srv->store, now);
    revocations_expire(&srv->revocations, now, SW_TOKEN_MAX_TTL_MS);
  }
}

static void on_signal(uv_signal_t *h, int signum) {
  sw_server_t *srv = h->data;
  log_ev(SW_LOG_INFO, "server.signal", NULL, NULL, 0, "signal %d: shutting down", signum);
  server_shutdown(srv);
}

/* SIGHUP (systemctl reload): the TLS certificate and key are read again
 * (a renewed certificate), and the new context serves new connections;
 * existing ones keep the context they were accepted with (each SSL holds a
 * reference), so nothing is dropped. If the files do not load, the old
 * context stays and the error is logged. Nothing else is reloadable; without
 * TLS the signal is only logged, instead of ending the process, its
 * default action. */
static void on_hup(uv_signal_t *h, int signum) {
  sw_server_t *srv = h->data;
  const sw_config_t *cfg = srv->cfg;
  if (!srv->tls_ctx) {
    log_ev(SW_LOG_INFO, "server.reload", NULL, NULL, 0, "SIGHUP: nothing to reload");
    return;
  }
  char err[512], expiry[32];
  SSL_CTX *ctx = tls_ctx_load(cfg->tls_cert, cfg->tls_key, err, sizeof err);
  if (!ctx) {
    log_ev(SW_LOG_ERROR, "server.reload", NULL, NULL, 0, "SIGHUP: %s; the previous certificate stays in use", err);
    return;
  }
  SSL_CTX_free(srv->tls_ctx);
  srv->tls_ctx = ctx;
  tls_ctx_expiry(ctx, expiry);
  log_ev(SW_LOG_INFO, "server.reload", NULL, NULL, 0,
         "SIGHUP: TLS certificate %s reloaded (valid until %s); new connections use it", cfg->tls_cert, expiry);
}

/* The listener's TLS context and buffers, if it has a certificate. */
static int tls_start(sw_server_t *srv) {
  const sw_config_t *cfg = srv->cfg;
  if (!cfg->tls_cert) return 0;
  char err[512];
  if (!(srv->tls_ctx = tls_ctx_load(cfg->tls_cert, cfg->tls_key, err, sizeof err))) {
    fprintf(stderr, "switchboard: %s\n", err);
    return -1;
  }
  srv->tls_plain = malloc(SW_READ_BUF);
  srv->tls_gather = malloc(SW_TLS_RECORD);
  if (!srv->tls_plain || !srv->tls_gather) {
    fprintf(stderr, "switchboard: out of memory\n");
    return -1;
  }
  return 0;
}

static void hup_start(sw_server_t *srv) {
  uv_signal_init(srv->loop, &srv->sighup);
  srv->sighup.data = srv;
  uv_signal_start(&srv->sighup, on_hup, SIGHUP);
}

void server_on_request(sw_sock_t *s, const sw_http_req_t *req) {
  const sw_slice_t *o = http_req_header(req, "Origin");
  free(s->origin);
  s->origin = NULL;
  if (o && o->n < 256) {
    /* Echoed in a response header: printable ASCII only. */
    bool ok = true;
    for (size_t i = 0; i < o->n; i++) ok = ok && o->p[i] > 0x20 && o->p[i] < 0x7f;
    if (ok) s->origin = strndup(o->p, o->n);
  }
  s->srv->hooks.on_request(s, req);
}

int server_persist_app(sw_server_t *srv, const sw_app_t *a) {
  char *json = json_dumps(a->spec, JSON_COMPACT);
  if (!json) return -1;
  int rc = store_kv_put(srv->store, "apps", a->id, json);
  free(json);
  return rc;
}

static int open_store(sw_server_t *srv) {
  sw_config_t *cfg = srv->cfg;
  char path[4096];
  sw_store_opts_t opts = {
      .path = NULL, .synchronous_full = cfg->sync_full, .max_batch = 4096, .fold = mutation_fold_blobs};
  if (!cfg->memory) {
    if (mkdir(cfg->data_dir, 0700) && errno != EEXIST) {
      fprintf(stderr, "switchboard: cannot create %s: %s\n", cfg->data_dir, strerror(errno));
      return -1;
    }
    snprintf(path, sizeof path, "%s/switchboard.db", cfg->data_dir);
    opts.path = path;
  }
  int rc = store_open(srv->loop, &opts, &srv->store);
  if (rc == -EBUSY && opts.path)
    fprintf(stderr,
            "switchboard: the data directory %s is in use by another switchboard process (%s.lock is locked);"
            " stop that server or give this one another --data directory\n",
            cfg->data_dir, path);
  else if (rc)
    fprintf(stderr, "switchboard: cannot open storage %s: %s\n", opts.path ? opts.path : "(memory)", strerror(-rc));
  return rc;
}

/* The config file's apps, then the shared state (core/shared.h): the
 * token secret, the apps made through the admin API, revocations. */
static int load_apps(sw_server_t *srv) {
  sw_error_t err = {0};
  size_t i;
  json_t *spec;
  json_array_foreach(srv->cfg->apps, i, spec) {
    sw_app_t *a = app_from_spec(spec, false, &err);
    if (!a || apps_add(&srv->apps, a, &err)) {
      fprintf(stderr, "switchboard: config app %zu: %s\n", i, err.message);
      app_free(a);
      return -1;
    }
  }
  return srv->shared.ops->load(srv->shared.impl, srv);
}

/* The bus (core/bus.h): the root's (bus_redis when configured), else
 * bus_local on the store. */
static int open_bus(sw_server_t *srv) {
  sw_bus_handlers_t h;
  channel_bus_handlers(srv, &h);
  if (srv->hooks.open_bus) return srv->hooks.open_bus(srv, &h, &srv->bus) ? -1 : 0;
  if (bus_local_open(srv, &h, &srv->bus)) {
    fprintf(stderr, "switchboard: out of memory\n");
    return -1;
  }
  return 0;
}

static int listen_on(sw_server_t *srv, int *port_out) {
  struct sockaddr_storage addr;
  sw_config_t *cfg = srv->cfg;
  if (uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&addr) &&
      uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&addr)) {
    fprintf(stderr, "switchboard: bad listen address %s\n", cfg->host);
    return -1;
  }
  /* Accepted sockets go to the server's own epoll (core/sock.c). */
  int rc = socks_io_init(srv);
  if (!rc) rc = sock_listen(srv, &srv->listener, (struct sockaddr *)&addr, 1024, false);
  if (rc) {
    fprintf(stderr, "switchboard: cannot listen on %s:%d: %s\n", cfg->host, cfg->port, uv_strerror(rc));
    return -1;
  }
  *port_out = sock_listener_port(&srv->listener);
  return 0;
}

int server_start(sw_server_t *srv, uv_loop_t *loop, sw_config_t *cfg, const sw_server_hooks_t *hooks,
                 int *port_out) {
  memset(srv, 0, sizeof *srv);
  srv->hooks = *hooks;
  srv->loop = loop;
  srv->cfg = cfg;
  char rnd[13];
  app_random_id(rnd, 12);
  snprintf(srv->server_id, sizeof srv->server_id, "switchboard-%s", rnd);
  /* One node unless the start hook installs another implementation. */
  srv->shared.ops = &shared_local_ops;
  int rc = tls_start(srv) || open_store(srv) || open_bus(srv) || listen_on(srv, port_out) ||
                   (srv->hooks.start && srv->hooks.start(srv)) ? -1 : 0;
  if (rc == 0) {
    cfg->port = *port_out;
    /* Before the apps: registering an app registers its identity providers. */
    srv->identity = identity_new(loop);
    srv->apps.identity = srv->identity;
    if (!srv->identity) {
      fprintf(stderr, "switchboard: out of memory\n");
      rc = -1;
    } else if (load_apps(srv)) {
      rc = -1;
    }
  }
  if (rc == 0) {
    srv->jwt_cache = jwt_cache_new();
    srv->nonces = nonce_cache_new((size_t)cfg->limits.max_token_request_nonces, SW_TOKEN_REQUEST_WINDOW_MS);
    srv->cap_cache = cap_cache_new(4096);
    if (!srv->jwt_cache || !srv->nonces || !srv->cap_cache) {
      fprintf(stderr, "switchboard: out of memory\n");
      rc = -1;
    }
  }
  if (rc) {
    /* Undo whatever was opened (the store, the listener) and let the loop
     * run their close callbacks, so the caller only calls server_free. */
    server_shutdown(srv);
    uv_run(loop, UV_RUN_DEFAULT);
    return -1;
  }
  socks_flush_init(srv);
  uv_timer_init(loop, &srv->tick);
  srv->tick.data = srv;
  uv_timer_start(&srv->tick, on_tick, TICK_MS, TICK_MS);
  uv_signal_init(loop, &srv->sigterm);
  uv_signal_init(loop, &srv->sigint);
  srv->sigterm.data = srv->sigint.data = srv;
  uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
  uv_signal_start(&srv->sigint, on_signal, SIGINT);
  hup_start(srv);
  return 0;
}

/* Closes h unless it was never initialised or is already closing. The
 * server is zeroed by server_start, so a handle that start-up did not reach
 * still has type UV_UNKNOWN_HANDLE (uv_close would abort on it). */
static void close_handle(uv_handle_t *h) {
  if (uv_handle_get_type(h) != UV_UNKNOWN_HANDLE && !uv_is_closing(h)) uv_close(h, NULL);
}

/* The shutdown flush deadline: a client that stopped reading must not keep
 * the process alive. Every socket still open is closed now, its unwritten
 * output dropped. */
static void on_drain_deadline(uv_timer_t *t) {
  sw_server_t *srv = t->data;
  size_t n = 0;
  for (sw_sock_t *s = srv->socks; s; s = s->next) n += s->fd >= 0;
  socks_close_all(srv);
  if (n) log_warn("shutdown: closed %zu connection(s) that did not take their last output within %d ms", n,
                  SW_SHUTDOWN_FLUSH_MS);
  close_handle((uv_handle_t *)t);
}

void server_shutdown(sw_server_t *srv) {
  if (srv->shutting_down) return;
  srv->shutting_down = true;
  sock_listener_close(&srv->listener);
  if (srv->hooks.close) srv->hooks.close(srv);
  if (srv->shared.ops && srv->shared.ops->close) srv->shared.ops->close(srv->shared.impl, srv);
  close_handle((uv_handle_t *)&srv->tick);
  close_handle((uv_handle_t *)&srv->sigterm);
  close_handle((uv_handle_t *)&srv->sigint);
  close_handle((uv_handle_t *)&srv->sighup);
  identity_close(srv->identity);
  /* Flush storage first: pending publishes are ACKed before clients go. */
  if (srv->store) store_close(srv->store);
  srv->store = NULL;
  /* Then the bus: bus_local's last completions ran in store_close; a shared
   * bus fails what it still waits for (NACKs, from the loop). */
  if (srv->bus) bus_close(srv->bus);
  srv->bus = NULL;
  rollup_shutdown(srv); /* held appends go out before DISCONNECTED */
  /* RTN15: DISCONNECTED (not an error) so SDKs reconnect to the restarted server. */
  sw_conn_t *c;
  SW_CONNS_EACH(&srv->conns, c) {
    if (c->sock) conn_fail(c, SW_E_DISCONNECTED, "server shutting down", true);
  }
  for (sw_sock_t *s = srv->socks, *next; s; s = next) {
    next = s->next;
    sock_close(s, true);
  }
  /* Hand all of that to the kernel now; what it cannot take yet is written
   * as the sockets drain, and they close when done. */
  socks_flush_close(srv);
  /* The epoll and its handles go once the last socket has (the reaper
   * calls this again until then). */
  socks_io_close(srv);
  /* Sockets still writing keep the loop alive, until the deadline at the
   * latest. The timer itself does not (uv_unref): when every socket is done
   * first, the loop ends at once and server_free closes the timer. */
  if (srv->socks) {
    uv_timer_init(srv->loop, &srv->drain);
    srv->drain.data = srv;
    uv_timer_start(&srv->drain, on_drain_deadline, SW_SHUTDOWN_FLUSH_MS, 0);
    uv_unref((uv_handle_t *)&srv->drain);
  }
}

void server_free(sw_server_t *srv) {
  /* The drain timer, if the sockets finished before it fired: its close
   * callback needs one more turn of the (otherwise idle) loop. */
  if (uv_handle_get_type((uv_handle_t *)&srv->drain) != UV_UNKNOWN_HANDLE &&
      !uv_is_closing((uv_handle_t *)&srv->drain)) {
    uv_close((uv_handle_t *)&srv->drain, NULL);
    uv_run(srv->loop, UV_RUN_DEFAULT);
  }
  sw_conn_t *c;
  SW_CONNS_EACH(&srv->conns, c) conn_destroy(c);
  conn_map_free(&srv->conns);
  channels_free(srv);
  identity_free(srv->identity); /* before the apps: it points at their providers */
  srv->identity = NULL;
  apps_free(&srv->apps);
  jwt_cache_free(srv->jwt_cache);
  cap_cache_free(srv->cap_cache);
  nonce_cache_free(srv->nonces);
  revocations_free(&srv->revocations);
  if (srv->shared.ops && srv->shared.ops->free) srv->shared.ops->free(srv->shared.impl);
  srv->shared.impl = NULL;
  if (srv->hooks.free) srv->hooks.free(srv);
  socks_free_spares(srv);
  SSL_CTX_free(srv->tls_ctx); /* the connections' references went with them */
  free(srv->tls_plain);
  free(srv->tls_gather);
  OPENSSL_cleanse(srv->token_secret, sizeof srv->token_secret);
}
