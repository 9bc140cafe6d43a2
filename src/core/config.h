/* config.h: server configuration (CLI flags and the JSON config file).
 *
 * Config file shape (every field optional):
 * {"listen": "127.0.0.1:8080", "data": "./data", "sandbox": false,
 *  "adminKey": "secret for the admin API (Authorization: Bearer <adminKey>)",
 *  "synchronous": "full" | "normal",
 *  "auth": {"clockSkewMs": 30000, "maxTokenLength": 8192, "basicOverHttp": "loopback"|"allow"|"deny",
 *           "cookie": "cookie-name", "reauthMarginMs": 30000},
 *  "limits": {"maxMessageSize": 65536, "maxFrameSize": 524288, "maxInboundRate": 250,
 *             "connectionStateTtl": 120000, "maxIdleInterval": 15000,
 *             "maxOutboundBytes": 4194304, "maxConnections": 100000, "maxHttpBody": 1048576,
 *             "httpHeadTimeout": 10000, "httpBodyTimeout": 30000, "httpIdleTimeout": 30000,
 *             "closeTimeout": 30000, "lingerTimeout": 2000, "lingerBytes": 4194304,
 *             "maxPendingSockets": 10000, "maxPendingPerIp": 1024},
 *  "apps": [app specs, see core/app.h]} */
#ifndef SW_CORE_CONFIG_H
#define SW_CORE_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sw_limits {
  int64_t max_message_size;     /* CD2c, bytes of one publish */
  int64_t max_frame_size;       /* CD2d, bytes of one inbound protocol message */
  int64_t max_inbound_rate;     /* CD2e, messages/s advertised */
  int64_t connection_state_ttl; /* CD2f, ms a lost connection stays resumable */
  int64_t max_idle_interval;    /* CD2h, ms between server heartbeats */
  size_t max_outbound_bytes;    /* queued output per socket before a slow consumer is dropped */
  size_t max_connections;
  size_t max_http_head;
  size_t max_http_body;
  /* Sockets before they are useful (issue 11; core/sock.c, docs/design.md
   * "Limits"). A socket is useful once it is a WebSocket bound to an Ably
   * connection; until then, and while it closes, deadlines apply and it
   * counts against the pending budgets. Times in ms. */
  int64_t http_head_timeout;  /* a request head: from accept, or from its first byte on keep-alive */
  int64_t http_body_timeout;  /* a request body, from the end of its head */
  int64_t http_idle_timeout;  /* keep-alive: between a response and the next request */
  int64_t close_timeout;      /* last words (error, DISCONNECTED, close frame) of a closing socket */
  int64_t linger_timeout;     /* after the last words: input read and discarded until EOF */
  size_t linger_bytes;        /*   ... or this much of it */
  size_t max_pending_sockets; /* not-yet-useful sockets; the oldest is closed for a new one */
  size_t max_pending_per_ip;  /* per peer address; a new one over it is closed at accept; 0: off */
} sw_limits_t;

/* Where Basic (API key) auth is allowed without TLS (RSA1: Ably refuses it
 * with 40103). switchboard itself speaks plain HTTP; put TLS in front of it. */
typedef enum { SW_BASIC_LOOPBACK = 0, SW_BASIC_ALLOW, SW_BASIC_DENY } sw_basic_policy_t;

typedef struct sw_auth_config {
  int64_t clock_skew_ms;   /* leeway on token iat/exp */
  size_t max_token_len;    /* longest JWT accepted (0: 8 KiB) */
  sw_basic_policy_t basic; /* Basic auth over plain HTTP/ws */
  char *cookie_name;       /* a cookie holding a token, for browsers; NULL = off */
  int64_t reauth_margin_ms;/* server-requested AUTH this long before expiry */
} sw_auth_config_t;

typedef struct sw_config {
  char host[64];
  int port;
  char *data_dir;  /* NULL with memory */
  bool memory;
  bool sandbox;
  bool sync_full;
  char *admin_key; /* NULL: admin API closed unless sandbox */
  sw_limits_t limits;
  sw_auth_config_t auth;
  json_t *apps;    /* array of app specs from the file, or NULL */
} sw_config_t;

/* Defaults (listen 127.0.0.1:8080, data ./data). */
void config_defaults(sw_config_t *c);
/* Merges a JSON config file into c. Returns 0 or -1 with a message in err. */
int config_load_file(sw_config_t *c, const char *path, char *err, size_t errlen);
/* Parses "HOST:PORT" into c. Returns 0 or -1. */
int config_set_listen(sw_config_t *c, const char *hostport);
void config_free(sw_config_t *c);

#endif
