/* bus_redis.h: the bus (core/bus.h) on Redis: several nodes sharing
 * channels (docs/cluster.md). core/ never names it: the composition root
 * (src/root/) opens it when --redis is given and hands the sw_bus_t to the
 * server. */
#ifndef SW_CLUSTER_BUS_REDIS_H
#define SW_CLUSTER_BUS_REDIS_H

#include <uv.h>

#include "cluster/redis_url.h"
#include "core/bus.h"

/* ---- bus_redis: several nodes sharing channels through Redis ----
 *
 * Two connections (redis_conn.h): one for commands (the append script,
 * reads), one for pub/sub. Up when both are up. A subscription SUBSCRIBEs
 * to {app:channel}:bus; once Redis confirms it, the channel's serial is
 * read (ready(last_seq)), and every bus message after it is delivered in
 * seq order. A message ahead of the next expected seq (after the pub/sub
 * connection came back, say) is held (at most SW_BUS_MAX_HELD per channel)
 * while the log fills the gap. */
#define SW_BUS_MAX_HELD 1024

/* Presence across nodes (docs/cluster.md, "Presence"): a node's lease
 * `{node:<id>}:lease` lives SW_BUS_LEASE_MS and is refreshed every
 * SW_BUS_SWEEP_MS, when the node also checks the leases of the other
 * owners of members on its channels and removes the members of lapsed
 * ones. A dead node's members therefore leave within
 * SW_BUS_LEASE_MS + SW_BUS_SWEEP_MS (plus one Redis round trip). */
#define SW_BUS_LEASE_MS 10000
#define SW_BUS_SWEEP_MS 3000
#define SW_BUS_NODE_ID_LEN 16
#define SW_BUS_MAX_SIDE_HELD 1024 /* side events held per channel while its member set is read */
#define SW_BUS_MAX_OWNERS 64      /* other owners tracked per channel */

typedef struct sw_bus_redis_opts {
  sw_redis_url_t url;
  uint32_t connect_timeout_ms, command_timeout_ms; /* 0: redis_conn's defaults */
  uint32_t backoff_min_ms, backoff_max_ms;
  size_t max_pending; /* commands unanswered at once; beyond, publishes are refused 50004 */
} sw_bus_redis_opts_t;

/* 0 and *out (connecting; state(true) once up), or -EINVAL / -ENOMEM. */
int bus_redis_open(uv_loop_t *loop, const sw_bus_redis_opts_t *o, const sw_bus_handlers_t *h, sw_bus_t **out);

/* Test and metrics view of a bus_redis. */
typedef struct sw_bus_redis_stats {
  uint64_t published, delivered, held, dropped_held, catchup_reads, refused;
  size_t channels;
} sw_bus_redis_stats_t;
void bus_redis_stats(const sw_bus_t *b, sw_bus_redis_stats_t *st);
/* Whether b is a bus_redis (the root's metrics ask). */
bool bus_is_redis(const sw_bus_t *b);
/* Its two connections' stats (redis_conn.h): commands and pub/sub. */
struct sw_redis_conn_stats;
void bus_redis_conn_stats(const sw_bus_t *b, struct sw_redis_conn_stats *cmd, struct sw_redis_conn_stats *sub);

#endif
