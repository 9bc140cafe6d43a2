#include "root/health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "admin/admin.h"
#include "cluster/bus_redis.h"
#include "cluster/redis_conn.h"
#include "core/bus.h"
#include "core/channel.h"
#include "core/conn.h"
#include "core/server.h"
#include "core/sock.h"
#include "metrics/metrics.h"
#include "metrics/prom.h"
#include "net/http_parse.h"
#include "net/http_response.h"
#include "rest/rest.h"
#include "util/clock.h"
#include "util/log.h"

/* A /readyz answer waits at most this long for its storage write. */
#define READY_DEADLINE_MS 2000
/* A probe's result answers every /readyz for this long after it. */
#define READY_REUSE_MS 1000
/* /readyz requests waiting at once; more are refused (50004) rather than
 * queued without bound. */
#define READY_MAX_WAITERS 1024

typedef struct ready_waiter {
  struct ready_waiter *next;
  sw_sock_t *s; /* sock_ref'd until answered */
  uint64_t deadline;
  bool keep_alive;
} ready_waiter_t;

typedef struct sw_health {
  sw_server_t *srv;
  sw_listener_t listener; /* core/sock.c: its sockets are metrics_only */
  int64_t started_ms; /* wall clock at start: switchboard_start_time_seconds */
  /* /readyz, FIFO: deadlines are in arrival order. */
  ready_waiter_t *waiters, **waiters_tail;
  size_t n_waiters;
  bool probing;     /* a probe write is queued in the store */
  bool have_result; /* result and result_at hold the last probe's outcome */
  int result;       /* 0 or the store's negative errno */
  uint64_t result_at;
} sw_health_t;

/* ------------------------------------------------------------ responses */

static void reply_text(sw_sock_t *s, const char *content_type, const sw_buf_t *body, bool keep_alive) {
  sw_buf_t out = {0};
  http_response_head(&out, 200, content_type, body->len, "Cache-Control: no-store\r\n", keep_alive);
  buf_append(&out, body->data, body->len);
  sock_send_bytes(s, out.data, out.len);
  buf_free(&out);
  if (!keep_alive) sock_close(s, true);
}

static void reply_status(sw_sock_t *s, const char *status, bool keep_alive) {
  json_t *v = json_pack("{s:s}", "status", status);
  rest_reply_value(s, 200, SW_FMT_JSON, v, keep_alive, "Cache-Control: no-store\r\n");
  json_decref(v);
}

/* An Ably error with HTTP status 503 (the probe's answer when not ready). */
static void reply_unavailable(sw_sock_t *s, int code, const char *msg, bool keep_alive) {
  sw_error_t e;
  errors_set(&e, code, "%s", msg);
  e.status = 503;
  rest_error(s, SW_FMT_JSON, &e, keep_alive);
}

/* ------------------------------------------------------------- /metrics */

/* The gauges, counted from the server's structures at scrape time. */
static int write_gauges(sw_buf_t *out, sw_server_t *srv, const sw_health_t *h) {
  uint64_t connected = 0, away = 0, ch_attached = 0, ch_idle = 0, attachments = 0;
  sw_conn_t *c;
  SW_CONNS_EACH(&srv->conns, c) {
    if (c->sock) connected++;
    else away++;
  }
  sw_channel_t *ch;
  SW_CHANNELS_EACH(&srv->channels, ch) {
    if (ch->n_subs) ch_attached++;
    else ch_idle++;
    attachments += ch->n_subs;
  }
  sw_prom_label_t version = {"version", SW_VERSION};
  sw_prom_label_t st_connected = {"state", "connected"}, st_away = {"state", "disconnected"};
  sw_prom_label_t st_attached = {"state", "attached"}, st_idle = {"state", "idle"};
  int rc = prom_family(out, "switchboard_build_info", "gauge", "Always 1; the version label is the server's.");
  if (!rc) rc = prom_sample(out, "switchboard_build_info", &version, 1, 1);
  if (!rc)
    rc = prom_family(out, "switchboard_start_time_seconds", "gauge",
                     "When the server started, in seconds since the Unix epoch.");
  if (!rc) rc = prom_sample_fixed(out, "switchboard_start_time_seconds", NULL, 0, (uint64_t)h->started_ms, 3);
  if (!rc)
    rc = prom_family(out, "switchboard_connections", "gauge",
                     "Ably connections: connected (with a transport) or disconnected (transport lost, "
                     "resumable for connectionStateTtl).");
  if (!rc) rc = prom_sample(out, "switchboard_connections", &st_connected, 1, connected);
  if (!rc) rc = prom_sample(out, "switchboard_connections", &st_away, 1, away);
  if (!rc)
    rc = prom_family(out, "switchboard_sockets", "gauge",
                     "Open TCP connections (WebSocket, REST and metrics requests).");
  if (!rc) rc = prom_sample(out, "switchboard_sockets", NULL, 0, srv->n_socks);
  if (!rc)
    rc = prom_family(out, "switchboard_channels", "gauge",
                     "Channels in memory: attached (at least one attachment) or idle (kept briefly "
                     "for pending publishes and idempotency ids).");
  if (!rc) rc = prom_sample(out, "switchboard_channels", &st_attached, 1, ch_attached);
  if (!rc) rc = prom_sample(out, "switchboard_channels", &st_idle, 1, ch_idle);
  if (!rc)
    rc = prom_family(out, "switchboard_channel_attachments", "gauge",
                     "Channel attachments of all connections.");
  if (!rc) rc = prom_sample(out, "switchboard_channel_attachments", NULL, 0, attachments);
  return rc;
}

static int write_store(sw_buf_t *out, sw_store_t *store) {
  sw_store_stats_t st;
  store_stats(store, &st);
  int rc = prom_histogram(out, "switchboard_store_commit_seconds",
                          "Time to commit one storage transaction of messages (a group commit; fsync "
                          "included with synchronous=full).",
                          &st.commit_latency);
  const sw_prom_scalar_t m[] = {
      {"switchboard_store_records_total", "counter", "Records (messages and message versions) committed to storage.",
       st.records},
      {"switchboard_store_commit_failures_total", "counter",
       "Publishes whose storage transaction failed (answered with 50000).", st.failures},
      {"switchboard_store_pruned_total", "counter", "Messages deleted by retention (expired by age).", st.pruned},
  };
  if (!rc) rc = prom_scalars(out, m, sizeof m / sizeof m[0]);
  return rc;
}

/* A cluster node's Redis: whether it is up, its two connections, the bus. */
static int write_cluster(sw_buf_t *out, const sw_bus_t *bus) {
  sw_bus_redis_stats_t b;
  sw_redis_conn_stats_t cs[2];
  bus_redis_stats(bus, &b);
  bus_redis_conn_stats(bus, &cs[0], &cs[1]);
  sw_prom_label_t conn[2] = {{"connection", "command"}, {"connection", "pubsub"}};
  /* The per-connection families: a sample for each of the two connections. */
  const struct {
    const char *name, *type, *help;
    uint64_t v[2];
  } per_conn[] = {
      {"switchboard_redis_connects_total", "counter", "Redis handshakes completed.", {cs[0].connects, cs[1].connects}},
      {"switchboard_redis_failures_total", "counter",
       "Redis connection attempts or connections that failed (command timeouts included).",
       {cs[0].failures, cs[1].failures}},
      {"switchboard_redis_pending_commands", "gauge", "Redis commands waiting for their reply.",
       {cs[0].pending, cs[1].pending}},
  };
  const sw_prom_scalar_t m[] = {
      {"switchboard_cluster_published_total", "counter", "Messages this node stored in the shared log.", b.published},
      {"switchboard_cluster_delivered_total", "counter",
       "Messages of subscribed channels this node heard from the shared bus (all nodes').", b.delivered},
      {"switchboard_cluster_refused_total", "counter",
       "Publishes and reads refused at once (Redis down or too many commands waiting: 50004).", b.refused},
      {"switchboard_cluster_catchup_reads_total", "counter",
       "Reads of the shared log to fill a gap in the bus (after a pub/sub reconnect).", b.catchup_reads},
      {"switchboard_cluster_channels", "gauge", "Channels this node is subscribed to on the bus.", b.channels},
  };
  const sw_prom_scalar_t up = {"switchboard_cluster_up", "gauge",
                               "1 while both Redis connections are up (publishes accepted), else 0.",
                               (uint64_t)bus_is_up(bus)};
  int rc = prom_scalars(out, &up, 1);
  for (size_t f = 0; !rc && f < sizeof per_conn / sizeof per_conn[0]; f++) {
    rc = prom_family(out, per_conn[f].name, per_conn[f].type, per_conn[f].help);
    for (int i = 0; !rc && i < 2; i++) rc = prom_sample(out, per_conn[f].name, &conn[i], 1, per_conn[f].v[i]);
  }
  if (!rc) rc = prom_scalars(out, m, sizeof m / sizeof m[0]);
  return rc;
}

static void get_metrics(sw_sock_t *s, const sw_http_req_t *req) {
  sw_server_t *srv = s->srv;
  sw_buf_t body = {0};
  int rc = write_gauges(&body, srv, srv->health);
  if (!rc) rc = metrics_write_counters(&body, &sw_metrics);
  if (!rc && srv->store) rc = write_store(&body, srv->store);
  if (!rc && bus_is_redis(srv->bus)) rc = write_cluster(&body, srv->bus);
  if (rc) {
    sw_error_t e;
    errors_set(&e, SW_E_INTERNAL, "out of memory");
    rest_error(s, SW_FMT_JSON, &e, req->keep_alive);
  } else {
    reply_text(s, SW_PROM_CONTENT_TYPE, &body, req->keep_alive);
  }
  buf_free(&body);
}

/* -------------------------------------------------------------- /readyz */

static void ready_answer(sw_sock_t *s, bool keep_alive, int result) {
  if (result == 0) {
    reply_status(s, "ready", keep_alive);
  } else {
    char msg[96];
    snprintf(msg, sizeof msg, "storage is not writable: %s", uv_strerror(result));
    reply_unavailable(s, SW_E_INTERNAL, msg, keep_alive);
  }
}

static void waiter_finish(ready_waiter_t *w, int code, int result) {
  if (!w->s->closing) {
    if (code) {
      char msg[96];
      snprintf(msg, sizeof msg, "storage did not complete a write within %d ms", READY_DEADLINE_MS);
      reply_unavailable(w->s, code, msg, w->keep_alive);
    } else {
      ready_answer(w->s, w->keep_alive, result);
    }
  }
  sock_unref(w->s);
  free(w);
}

static ready_waiter_t *waiter_pop(sw_health_t *h) {
  ready_waiter_t *w = h->waiters;
  if (!w) return NULL;
  h->waiters = w->next;
  if (!h->waiters) h->waiters_tail = &h->waiters;
  h->n_waiters--;
  return w;
}

/* The probe's write is durable (0) or failed: every waiter gets that. */
static void on_probe(void *ud, int status) {
  sw_health_t *h = ud;
  h->probing = false;
  h->have_result = true;
  h->result = status;
  h->result_at = uv_now(h->srv->loop);
  if (status) log_warn("readiness probe: storage write failed: %s", uv_strerror(status));
  ready_waiter_t *w;
  while ((w = waiter_pop(h))) waiter_finish(w, 0, status);
}

static void get_ready(sw_sock_t *s, const sw_http_req_t *req) {
  sw_server_t *srv = s->srv;
  sw_health_t *h = srv->health;
  uint64_t now = uv_now(srv->loop);
  if (!srv->store || srv->shutting_down) {
    reply_unavailable(s, SW_E_INTERNAL, "server shutting down", req->keep_alive);
    return;
  }
  /* A cluster node whose Redis is unreachable refuses publishes: not ready. */
  if (srv->bus && !bus_is_up(srv->bus)) {
    reply_unavailable(s, SW_BUS_E_UNAVAILABLE, "the shared store (Redis) is unreachable", req->keep_alive);
    return;
  }
  if (h->have_result && now - h->result_at < READY_REUSE_MS) {
    ready_answer(s, req->keep_alive, h->result);
    return;
  }
  if (h->n_waiters >= READY_MAX_WAITERS) {
    reply_unavailable(s, 50004, "too many readiness checks waiting", req->keep_alive);
    return;
  }
  if (!h->probing) {
    char value[32];
    snprintf(value, sizeof value, "%lld", (long long)clock_now_ms());
    int rc = store_kv_put_async(srv->store, "server", "readyz", value, on_probe, h);
    if (rc) {
      ready_answer(s, req->keep_alive, rc);
      return;
    }
    h->probing = true;
  }
  ready_waiter_t *w = calloc(1, sizeof *w);
  if (!w) {
    ready_answer(s, req->keep_alive, UV_ENOMEM);
    return;
  }
  w->s = s;
  w->deadline = now + READY_DEADLINE_MS;
  w->keep_alive = req->keep_alive;
  sock_ref(s);
  *h->waiters_tail = w;
  h->waiters_tail = &w->next;
  h->n_waiters++;
}

void health_tick(sw_server_t *srv, uint64_t now_loop) {
  sw_health_t *h = srv->health;
  while (h && h->waiters && h->waiters->deadline <= now_loop) waiter_finish(waiter_pop(h), SW_E_TIMEOUT, 0);
}

/* --------------------------------------------------------------- routing */

bool health_route(sw_sock_t *s, const sw_http_req_t *req) {
  const sw_slice_t *p = &req->path;
  bool metrics = slice_eq(*p, "/metrics"), healthz = slice_eq(*p, "/healthz"), readyz = slice_eq(*p, "/readyz");
  if (!metrics && !healthz && !readyz && !s->metrics_only) return false;
  /* A browser's CORS preflight on the main listener: server.c answers it. */
  if (req->method == HTTP_OPTIONS && !s->metrics_only) return false;
  sw_error_t e = {0};
  if (!metrics && !healthz && !readyz)
    errors_set(&e, SW_E_NOT_FOUND, "this listener serves only /metrics, /healthz and /readyz");
  else if (req->method != HTTP_GET)
    errors_set(&e, SW_E_METHOD_NOT_ALLOWED, "only GET is allowed here");
  else if (metrics && !s->metrics_only && !admin_authorized(s->srv, req))
    errors_set(&e, SW_E_INVALID_CREDENTIALS, "GET /metrics needs the admin key (Authorization: Bearer)");
  if (e.code) rest_error(s, SW_FMT_JSON, &e, req->keep_alive);
  else if (metrics) get_metrics(s, req);
  else if (healthz) reply_status(s, "ok", req->keep_alive);
  else get_ready(s, req);
  return true;
}

/* ------------------------------------------------------------- lifecycle */

static int listen_metrics(sw_server_t *srv, sw_health_t *h) {
  const sw_config_t *cfg = srv->cfg;
  struct sockaddr_storage addr;
  if (uv_ip4_addr(cfg->metrics_host, cfg->metrics_port, (struct sockaddr_in *)&addr) &&
      uv_ip6_addr(cfg->metrics_host, cfg->metrics_port, (struct sockaddr_in6 *)&addr)) {
    fprintf(stderr, "switchboard: bad metrics listen address %s\n", cfg->metrics_host);
    return -1;
  }
  int rc = sock_listen(srv, &h->listener, (struct sockaddr *)&addr, 128, true);
  if (rc) {
    fprintf(stderr, "switchboard: cannot listen for metrics on %s:%d: %s\n", cfg->metrics_host, cfg->metrics_port,
            uv_strerror(rc));
    return -1;
  }
  int port = sock_listener_port(&h->listener);
  bool v6 = strchr(cfg->metrics_host, ':') != NULL;
  printf("metrics on http://%s%s%s:%d/metrics\n", v6 ? "[" : "", cfg->metrics_host, v6 ? "]" : "", port);
  return 0;
}

int health_start(sw_server_t *srv) {
  sw_health_t *h = calloc(1, sizeof *h);
  if (!h) return -1;
  h->srv = srv;
  h->started_ms = clock_now_ms();
  h->waiters_tail = &h->waiters;
  srv->health = h;
  return srv->cfg->metrics_listen ? listen_metrics(srv, h) : 0;
}

void health_close(sw_server_t *srv) {
  sw_health_t *h = srv->health;
  if (h) sock_listener_close(&h->listener);
}

void health_free(sw_server_t *srv) {
  sw_health_t *h = srv->health;
  if (!h) return;
  ready_waiter_t *w;
  while ((w = waiter_pop(h))) {
    sock_unref(w->s);
    free(w);
  }
  free(h);
  srv->health = NULL;
}
