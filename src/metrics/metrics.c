#include "metrics/metrics.h"

#include <stdio.h>

#include "metrics/prom.h"

sw_metrics_t sw_metrics;

/* Names and help of the counters, in sw_counter_t order. */
static const struct {
  const char *name, *help;
} counters[SW_M_COUNTERS] = {
    [SW_M_CONNECTIONS_OPENED] = {"switchboard_connections_opened_total",
                                 "Ably connections opened (a new connectionId; resumes not counted)."},
    [SW_M_CONNECTIONS_RESUMED] = {"switchboard_connections_resumed_total",
                                  "Ably connections resumed or recovered on a new transport."},
    [SW_M_MESSAGES_IN] = {"switchboard_messages_in_total",
                          "Messages published (realtime or REST) and stored, message versions (update, "
                          "delete, append) included; idempotent duplicates are not counted."},
    [SW_M_MESSAGES_OUT] = {"switchboard_messages_out_total",
                           "Messages sent to realtime subscribers, once per subscriber (live fan-out, "
                           "replay on attach, resume or rewind)."},
    [SW_M_BYTES_RECEIVED] = {"switchboard_bytes_received_total",
                             "Bytes read from client sockets (HTTP and WebSocket)."},
    [SW_M_BYTES_SENT] = {"switchboard_bytes_sent_total",
                         "Bytes written to client sockets (taken by the kernel, or by a write waiting for the socket)."},
    [SW_M_SLOW_CONSUMERS] = {"switchboard_slow_consumer_disconnects_total",
                             "Sockets disconnected because their outbound backlog passed "
                             "limits.maxOutboundBytes (42916)."},
};

void metrics_auth_failure_in(sw_metrics_t *m, int code) {
  if (code < SW_M_AUTH_CODE_MIN || code > SW_M_AUTH_CODE_MAX) return;
  if (code / 100 != 401 && code / 100 != 403) return;
  m->auth_failures[code - SW_M_AUTH_CODE_MIN]++;
}

int metrics_write_counters(sw_buf_t *out, const sw_metrics_t *m) {
  int rc = 0;
  for (unsigned i = 0; i < SW_M_COUNTERS && !rc; i++) {
    rc = prom_family(out, counters[i].name, "counter", counters[i].help);
    if (!rc) rc = prom_sample(out, counters[i].name, NULL, 0, m->counter[i]);
  }
  const char *af = "switchboard_auth_failures_total";
  if (!rc)
    rc = prom_family(out, af, "counter",
                     "Authentication and authorisation failures sent to clients (refused connections and "
                     "requests, ERROR, DISCONNECTED, NACK), by Ably error code (401xx, 403xx).");
  for (int code = SW_M_AUTH_CODE_MIN; code <= SW_M_AUTH_CODE_MAX && !rc; code++) {
    uint64_t n = m->auth_failures[code - SW_M_AUTH_CODE_MIN];
    if (!n) continue;
    char v[8];
    snprintf(v, sizeof v, "%d", code);
    sw_prom_label_t l = {"code", v};
    rc = prom_sample(out, af, &l, 1, n);
  }
  return rc;
}
