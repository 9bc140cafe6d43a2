/* health.h: GET /metrics (Prometheus text), /healthz (the process answers)
 * and /readyz (storage takes a write), and the optional second listener
 * (--metrics-listen, "metricsListen") that serves only those three paths.
 *
 * Access: /healthz and /readyz are open, for load balancers and
 * orchestrators. /metrics on the main listener follows the admin API's
 * rule (admin/admin.h: Bearer adminKey, or open with --sandbox); on the
 * metrics listener it needs no credentials (bind it to a private address).
 *
 * /readyz writes a small key (kv "server"/"readyz") through the store's
 * commit thread without blocking the loop (store_kv_put_async): 200 once it
 * is durable; 503 with an Ably error when the write fails (50000, e.g. disk
 * full or the database locked by another process) or has not finished
 * within READY_DEADLINE_MS (50003). A result is reused for READY_REUSE_MS and
 * at most one probe is in flight, so a flood of probes costs the disk at
 * most one small transaction a second. */
#ifndef SW_ROOT_HEALTH_H
#define SW_ROOT_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

typedef struct sw_server sw_server_t;
typedef struct sw_sock sw_sock_t;
struct sw_http_req;

/* Creates srv->health and, when configured, binds the metrics listener
 * (printing "metrics on http://HOST:PORT/metrics"). 0, or -1 with a message
 * on stderr; either way health_close and health_free clean up. */
int health_start(sw_server_t *srv);

/* Answers req when it is GET /metrics, /healthz or /readyz, and every
 * request that came through the metrics listener (404 beyond those paths).
 * Returns false when the request is not ours. */
bool health_route(sw_sock_t *s, const struct sw_http_req *req);

/* Answers the /readyz requests whose deadline has passed (server tick). */
void health_tick(sw_server_t *srv, uint64_t now_loop);

/* Closes the metrics listener (graceful shutdown). */
void health_close(sw_server_t *srv);

/* Frees srv->health after the loop has ended. */
void health_free(sw_server_t *srv);

#endif
