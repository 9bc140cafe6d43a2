/* metrics.h: the server's counters, exposed by GET /metrics (root/health.c)
 * in the Prometheus text format (metrics/prom.h).
 *
 * One registry per process, like the log settings: the server is one per
 * process, and a call site is then one line that needs no server pointer,
 * `metrics_inc(SW_M_...)`. Counters are plain integers touched only on the
 * loop thread (every call site runs there), so an increment costs one add.
 * What other threads measure is handed over differently: the store's commit
 * latency histogram travels with its completions (store/store.h stats).
 * Gauges (connections, channels, sockets) are not kept here: the scrape
 * counts them from the server's own structures when asked. */
#ifndef SW_METRICS_METRICS_H
#define SW_METRICS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

typedef enum sw_counter {
  SW_M_CONNECTIONS_OPENED,  /* new Ably connections (CONNECTED with a new id) */
  SW_M_CONNECTIONS_RESUMED, /* connections taken over by a new transport (RTN15c6) */
  SW_M_MESSAGES_IN,         /* messages and message versions published and stored */
  SW_M_MESSAGES_OUT,        /* messages sent to realtime subscribers */
  SW_M_BYTES_RECEIVED,      /* bytes read from client sockets */
  SW_M_BYTES_SENT,          /* bytes taken by the kernel (or a write waiting for POLLOUT) */
  SW_M_SLOW_CONSUMERS,      /* sockets disconnected for an outbound backlog (42916) */
  SW_M_COUNTERS
} sw_counter_t;

/* Ably codes counted as authentication failures: 401xx and 403xx, the
 * codes whose HTTP status is 401 or 403. */
#define SW_M_AUTH_CODE_MIN 40100
#define SW_M_AUTH_CODE_MAX 40399

typedef struct sw_metrics {
  uint64_t counter[SW_M_COUNTERS];
  /* Failures by code, indexed by code - SW_M_AUTH_CODE_MIN: a fixed table,
   * so no code a client provokes can grow it. */
  uint64_t auth_failures[SW_M_AUTH_CODE_MAX - SW_M_AUTH_CODE_MIN + 1];
} sw_metrics_t;

/* The process's registry. Loop thread only. */
extern sw_metrics_t sw_metrics;

static inline void metrics_inc(sw_counter_t c) { sw_metrics.counter[c]++; }
static inline void metrics_add(sw_counter_t c, uint64_t n) { sw_metrics.counter[c] += n; }

/* Counts an error sent to a client (a refused connection or request, an
 * ERROR, DISCONNECTED or NACK) when its code is an authentication failure
 * (401xx, 403xx); any other code, 0 included, is ignored. */
void metrics_auth_failure_in(sw_metrics_t *m, int code);
static inline void metrics_auth_failure(int code) { metrics_auth_failure_in(&sw_metrics, code); }

/* Appends every counter family of m (HELP, TYPE, samples). Families
 * without samples (no auth failure yet) still get their HELP and TYPE, so
 * a dashboard finds every name from the first scrape. 0 or -ENOMEM. */
int metrics_write_counters(sw_buf_t *out, const sw_metrics_t *m);

#endif
