/* server.h: the server: one libuv loop thread owning every socket,
 * connection, channel and app, plus the storage commit thread (store/). */
#ifndef SW_CORE_SERVER_H
#define SW_CORE_SERVER_H

#include <stdbool.h>
#include <sys/uio.h>
#include <uv.h>

#include "auth/jwt.h"
#include "auth/token.h"
#include "auth/token_request.h"
#include "core/app.h"
#include "core/config.h"
#include "core/revocation.h"
#include "core/shared.h"
#include "store/store.h"
#include "util/ptrmap.h"

typedef struct sw_sock sw_sock_t;
typedef struct sw_conn sw_conn_t;
typedef struct sw_channel sw_channel_t;

/* Frames written by one writev (a longer queue takes several), and the read
 * buffer every socket shares (core/sock.c). */
#define SW_READ_BUF 65536
#define SW_SOCK_MAX_IOV 64
/* TLS: the most plaintext one record carries. */
#define SW_TLS_RECORD 16384
/* On shutdown, how long sockets may take to write their last output. */
#define SW_SHUTDOWN_FLUSH_MS 5000

/* A list of sockets through sw_sock_t.list_prev/list_next, oldest first
 * (core/sock.c). */
typedef struct sw_sock_list {
  sw_sock_t *head, *tail;
  size_t n;
} sw_sock_list_t;

/* A listening socket of ours (core/sock.c): libuv's uv_listen would make
 * every accepted connection a uv_tcp_t, so the listener is a plain socket
 * watched by a uv_poll_t, and accepted sockets go to the server's own epoll
 * instance (sw_server_t.epfd). */
typedef struct sw_listener {
  uv_poll_t poll;
  struct sw_server *srv;
  int fd;             /* -1 while not open */
  bool open;          /* poll initialised: sock_listener_close must close it */
  bool metrics_only;  /* the metrics listener (root/health.c): its sockets are marked */
  bool inherits_opts; /* accepted sockets get TCP_NODELAY and keep-alive from it (Linux) */
} sw_listener_t;

struct sw_http_req;
struct sw_bus;
struct sw_bus_handlers;
struct sw_server;

/* What lives above core/ (rest/, admin/, chat/, cloud/, the health
 * endpoints), reached only through these hooks, which the composition root
 * (src/root/) passes to server_start: core/ names no layer above it. */
/* The server's connections by id (srv->conns): a util/ptrmap.h map, ~13
 * bytes per connection, where a uthash handle was 56 bytes in every
 * connection. Deleting leaves a tombstone, so SW_CONNS_EACH may run
 * conn_destroy on the connection it is at; inserting (conn_map_reserve
 * first) may rehash, so no connection is added while iterating. The order
 * of iteration is the table's, not the order of insertion. */
typedef struct sw_conn_map {
  sw_ptrmap_t map; /* of sw_conn_t, by id (core/conn.c) */
} sw_conn_map_t;
#define SW_CONNS_EACH(m, c) SW_PTRMAP_EACH_(&(m)->map, c, sw_conn_i_)
typedef struct sw_server_hooks {
  /* Every parsed HTTP request, the metrics listener's too (routing,
   * CORS preflight, the WebSocket upgrade). Required. */
  void (*on_request)(sw_sock_t *s, const struct sw_http_req *req);
  /* Optional. start: after the listener is bound, before the apps load;
   * -1 fails start-up (message on stderr; close and free still run). It
   * may install another shared-state implementation (srv->shared).
   * tick: every server tick, first after the connections'. close: on
   * shutdown, with the listener. free: after the loop has ended. */
  int (*start)(struct sw_server *srv);
  void (*tick)(struct sw_server *srv, uint64_t now_loop);
  void (*close)(struct sw_server *srv);
  void (*free)(struct sw_server *srv);
  /* Optional: opens the server's bus (core/bus.h) with the handlers given,
   * after the store is open: 0 and *out, or -1 (message on stderr: start-up
   * fails). NULL: bus_local (one process). The root gives bus_redis here
   * when the configuration names a Redis. */
  int (*open_bus)(struct sw_server *srv, const struct sw_bus_handlers *h, struct sw_bus **out);
} sw_server_hooks_t;

typedef struct sw_server {
  uv_loop_t *loop;
  sw_server_hooks_t hooks;
  sw_config_t *cfg;
  sw_listener_t listener;
  uv_signal_t sigterm, sigint;
  uv_signal_t sighup;   /* reload: the TLS certificate and key (server.c on_hup) */
  uv_timer_t tick;      /* once a second: heartbeats, expiry of lost connections, retention */
  uv_timer_t drain;     /* shutdown: closes the sockets still writing at SW_SHUTDOWN_FLUSH_MS */
  sw_apps_t apps;
  sw_store_t *store;
  struct sw_bus *bus;     /* publishes, fan-out and reads of channels (core/bus.h); NULL once closed */
  /* By (app id, name): a util/ptrmap.h map, as conns (the map:
   * core/channel.c; SW_CHANNELS_EACH in core/channel.h). */
  struct sw_channel_map {
    sw_ptrmap_t map;
    /* The last channel found (NULL when it is removed): a publish looks
     * its channel up several times in a row (channel_find_id). */
    sw_channel_t *last;
  } channels;
  sw_conn_map_t conns;    /* by connection id (the map: core/conn.c) */
  sw_sock_t *socks;       /* every socket not yet freed (open, or closed and waiting for `reaper`) */
  size_t n_socks;
  /* Socket I/O (core/sock.c): one epoll instance of ours holds every
   * accepted socket, and the loop watches it with one uv_poll_t (nested
   * epoll, Linux only), so a connection has no libuv handle. Closed sockets
   * wait on `dead` (through list_next) until `reaper` (an idle handle, so
   * the loop does not block meanwhile) frees them in a later phase. */
  int epfd;
  int reserve_fd;  /* a spare descriptor, given up to shed connections when accept hits EMFILE */
  uv_poll_t io;
  uv_idle_t reaper;
  sw_sock_t *dead;
  bool io_open;    /* epfd, reserve_fd, io and reaper are open */
  /* Deadlines and budgets (core/sock.c): sockets not yet useful (before
   * they are a WebSocket bound to an Ably connection), and useful ones that
   * are closing; both are walked by the tick, bound WebSockets never are.
   * `peers` counts the pending sockets per peer address. */
  sw_sock_list_t pending, closing;
  struct sw_peer *peers;
  uint64_t n_evicted, n_peer_refused, n_timed_out; /* since they were last logged */
  /* Sockets with queued output, flushed once per loop turn by `flush`
   * before the loop waits for events (core/sock.c); FIFO, so sockets are written in the order they were
   * first given output (a fan-out's subscriber order). */
  sw_sock_t *dirty, **dirty_tail;
  uv_prepare_t flush;
  bool flush_open;        /* `flush` initialised and not closed */
  bool flush_hold, flush_held; /* socks_hold_flush: asked for; this turn waited (core/sock.c) */
  uv_timer_t hold_timer;   /* bounds such a wait (SW_FLUSH_HOLD_MS) */
  union sw_ring *ring_spare; /* spare output rings (core/sock.c) */
  unsigned n_ring_spare;
  char server_id[32];
  /* Scratch for building a socket's writev, used during the call only, so
   * one array serves every socket (loop thread only). */
  struct iovec iov[SW_SOCK_MAX_IOV];
  uint8_t rbuf[SW_READ_BUF];
  /* TLS (core/tls.h), when the listener has a certificate: the context new
   * connections get (SIGHUP swaps in a new one; connections keep theirs),
   * the buffer a read's plaintext is decrypted into (the ciphertext is in
   * rbuf) and the one small frames are gathered in to be encrypted as one
   * record (SW_TLS_RECORD). Loop thread only. */
  struct ssl_ctx_st *tls_ctx;
  uint8_t *tls_plain; /* SW_READ_BUF bytes */
  uint8_t *tls_gather; /* SW_TLS_RECORD bytes */
  uint8_t token_secret[SW_TOKEN_SECRET_LEN]; /* seals Ably tokens; persisted */
  sw_jwt_cache_t *jwt_cache;   /* keyed HMAC states per key */
  struct sw_identity *identity; /* identity providers' keys (identity/identity.h) */
  struct sw_cap_cache *cap_cache; /* effective token capabilities (auth/cap_cache.h) */
  sw_nonce_cache_t *nonces;    /* TokenRequest replay protection */
  sw_revocations_t revocations;
  /* Where the state every node must agree on is written (core/shared.h):
   * shared_local_ops, or what the start hook installed. */
  sw_shared_t shared;
  struct sw_health *health; /* /metrics, /healthz, /readyz, the metrics listener (root/health.c) */
  struct sw_cloud_state *cloud; /* Assistant Cloud anonymous-endpoint rate limits (cloud/auth.c) */
  struct sw_rollup_wheel *rollup_wheel; /* ends append rollup windows (core/rollup.c); NULL until used */
  uint64_t tick_count;
  bool shutting_down;
  int exit_code;
} sw_server_t;

/* Creates the server on loop: opens storage, loads apps (config file, then
 * those created through the admin API), binds the listener. On success the
 * bound port is in *port_out. Returns 0 or -1 (message on stderr); after a
 * failure everything it opened is closed again (it runs the loop for the
 * close callbacks) and only server_free remains to be called. */
int server_start(sw_server_t *srv, uv_loop_t *loop, sw_config_t *cfg, const sw_server_hooks_t *hooks,
                 int *port_out);
/* Graceful shutdown (SIGTERM): flush storage, DISCONNECTED to every client,
 * close everything; the loop then ends, at the latest SW_SHUTDOWN_FLUSH_MS
 * later (sockets whose last output is not written by then are closed).
 * Closes only the handles start-up initialised. */
void server_shutdown(sw_server_t *srv);
/* Releases what server_start allocated after the loop has ended (or after
 * a failed server_start). */
void server_free(sw_server_t *srv);

/* Persists an app spec (admin API) so it survives restarts. */
int server_persist_app(sw_server_t *srv, const sw_app_t *a);

/* One parsed HTTP request (called by the socket layer): notes its Origin
 * (s->origin, for the CORS headers) and hands it to hooks.on_request. */
void server_on_request(sw_sock_t *s, const struct sw_http_req *req);

#endif
