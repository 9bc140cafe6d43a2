/* server.h: the server: one libuv loop thread owning every socket,
 * connection, channel and app, plus the storage commit thread (store/). */
#ifndef SW_CORE_SERVER_H
#define SW_CORE_SERVER_H

#include <stdbool.h>
#include <uv.h>

#include "auth/jwt.h"
#include "auth/token.h"
#include "auth/token_request.h"
#include "core/app.h"
#include "core/config.h"
#include "core/revocation.h"
#include "store/store.h"

typedef struct sw_sock sw_sock_t;
typedef struct sw_conn sw_conn_t;
typedef struct sw_channel sw_channel_t;

/* Frames written by one writev (a longer queue takes several), and the read
 * buffer every socket shares (core/sock.c). */
#define SW_READ_BUF 65536
#define SW_SOCK_MAX_IOV 64

typedef struct sw_server {
  uv_loop_t *loop;
  sw_config_t *cfg;
  uv_tcp_t listener;
  uv_signal_t sigterm, sigint;
  uv_timer_t tick;      /* once a second: heartbeats, expiry of lost connections, retention */
  sw_apps_t apps;
  sw_store_t *store;
  sw_channel_t *channels; /* uthash by (app id, name) */
  sw_conn_t *conns;       /* uthash by connection id */
  sw_sock_t *socks;       /* every open socket */
  size_t n_socks;
  /* Sockets with queued output, flushed once per loop turn by `flush`
   * before the loop waits for events (core/sock.c); FIFO, so sockets are written in the order they were
   * first given output (a fan-out's subscriber order). */
  sw_sock_t *dirty, **dirty_tail;
  uv_prepare_t flush;
  bool flush_open;        /* `flush` initialised and not closed */
  union sw_wreq *wreq_spare; /* write requests for sockets waiting for POLLOUT */
  unsigned n_wreq_spare;
  char server_id[32];
  /* Scratch for building a socket's writev: uv_try_write uses it during the
   * call and uv_write copies the buffer descriptors, so one array serves
   * every socket (loop thread only). */
  uv_buf_t iov[SW_SOCK_MAX_IOV];
  uint8_t rbuf[SW_READ_BUF];
  uint8_t token_secret[SW_TOKEN_SECRET_LEN]; /* seals Ably tokens; persisted */
  sw_jwt_cache_t *jwt_cache;   /* keyed HMAC states per key */
  struct sw_identity *identity; /* identity providers' keys (identity/identity.h) */
  struct sw_cap_cache *cap_cache; /* effective token capabilities (auth/cap_cache.h) */
  sw_nonce_cache_t *nonces;    /* TokenRequest replay protection */
  sw_revocations_t revocations;
  uint64_t tick_count;
  bool shutting_down;
  int exit_code;
} sw_server_t;

/* Creates the server on loop: opens storage, loads apps (config file, then
 * those created through the admin API), binds the listener. On success the
 * bound port is in *port_out. Returns 0 or -1 (message on stderr). */
int server_start(sw_server_t *srv, uv_loop_t *loop, sw_config_t *cfg, int *port_out);
/* Graceful shutdown (SIGTERM): DISCONNECTED to every client, flush storage,
 * close everything; the loop then ends. */
void server_shutdown(sw_server_t *srv);
/* Releases what server_start allocated after the loop has ended. */
void server_free(sw_server_t *srv);

/* Persists an app spec (admin API) so it survives restarts. */
int server_persist_app(sw_server_t *srv, const sw_app_t *a);

/* Persists the revocation rules. */
int server_persist_revocations(sw_server_t *srv);

/* Routes one parsed HTTP request (called by the socket layer). */
struct sw_http_req;
void server_on_request(sw_sock_t *s, const struct sw_http_req *req);

#endif
