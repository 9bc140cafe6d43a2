/* state_redis.h: the shared state of a cluster (core/shared.h) in Redis:
 * the token-sealing secret, apps (keys, namespaces, identity providers),
 * revocation rules, TokenRequest nonces and stored large tokens
 * (docs/cluster.md, "Shared app state").
 *
 * Every node keeps its copy where a single node keeps it (srv->apps,
 * srv->revocations, the store's expiring values, srv->token_secret), so
 * every check on the request path stays synchronous and local; writes go to
 * Redis first and are announced on the pub/sub channel {sw}:state, which
 * every node applies. After every (re)subscription, and when the command
 * connection comes back, a node reloads the whole state (a full reload),
 * so what it missed while the channel was down is made good. Nonces are the
 * exception: a claim is one SET NX PX in Redis (asynchronous), never
 * replicated.
 *
 * Key layout (every app key hash-tagged by app: {app:<id>}):
 *   {sw}:token-secret       string  hex secret that seals Ably tokens (SET NX)
 *   {sw}:apps               set     ids of the apps made through the admin API
 *   {sw}:state              pub/sub the change announcements (JSON)
 *   {app:<id>}:spec         string  the app's complete spec (JSON)
 *   {app:<id>}:revoked      hash    "<keyName>\n<type>\n<value>" -> "<issuedBefore>:<appliesAt>"
 *   {app:<id>}:tokens       hash    <reference id> -> "<expires>:<sealed token>"
 *   {app:<id>}:nonce:<h>    string  h = hex SHA-256 of keyName NUL nonce NUL timestamp; PX 2 windows
 *   {conn:<id>}             hash    a connection record (k key hash, a app, c clientId, n node); PX
 *   {node:<server id>}:conn pub/sub ids of this node's connections another node took over
 *
 * Loop thread only. */
#ifndef SW_CLUSTER_STATE_REDIS_H
#define SW_CLUSTER_STATE_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/redis_url.h"
#include "core/server.h"

typedef struct sw_state_redis_opts {
  sw_redis_url_t url;
  uint32_t connect_timeout_ms, command_timeout_ms, backoff_min_ms, backoff_max_ms; /* 0: redis_conn's defaults */
  size_t max_pending;                                                               /* 0: redis_conn's */
  uint32_t load_timeout_ms; /* how long start-up waits for the first full load; 0: 10 s */
} sw_state_redis_opts_t;

/* Opens the two connections (commands, the {sw}:state subscription) and
 * installs the Redis implementation as srv->shared; its `load` (called by
 * server_start) waits, running the loop, for the first full load. 0, or -1
 * with a message on stderr. */
int state_redis_install(sw_server_t *srv, const sw_state_redis_opts_t *o);

typedef struct sw_state_redis_stats {
  uint64_t reloads;  /* full loads completed */
  uint64_t messages; /* announcements applied (other nodes') */
  bool loaded;       /* a full load has completed */
} sw_state_redis_stats_t;
/* Zeroes *st when srv->shared is not the Redis implementation. */
void state_redis_stats(const sw_server_t *srv, sw_state_redis_stats_t *st);

#endif
