/* config.h: server configuration (CLI flags and the JSON config file).
 *
 * Config file shape (every field optional):
 * {"listen": "127.0.0.1:8080", "data": "./data", "sandbox": false,
 *  "metricsListen": "127.0.0.1:9090" (a second listener for /metrics, /healthz, /readyz),
 *  "adminKey": "secret for the admin API (Authorization: Bearer <adminKey>)",
 *  "synchronous": "full" | "normal", "logFormat": "text" | "json",
 *  "auth": {"clockSkewMs": 30000, "maxTokenLength": 8192, "basicOverHttp": "loopback"|"allow"|"deny",
 *           "cookie": "cookie-name", "reauthMarginMs": 30000},
 *  "limits": {"maxMessageSize": 65536, "maxFrameSize": 524288, "maxInboundRate": 250,
 *             "connectionStateTtl": 120000, "maxIdleInterval": 15000,
 *             "maxOutboundBytes": 4194304, "maxConnections": 100000, "maxHttpBody": 1048576,
 *             "maxPendingPublishes": 1000, "maxChannelsPerConnection": 200, "maxPresenceMembers": 200,
 *             "maxPresenceMembersPerConnection": 1000, "maxIdempotencyIds": 100000,
 *             "maxMessageIdLength": 256, "maxTokenRequestNonces": 100000, "maxRevocations": 10000,
 *             "maxChannelParams": 16, "maxRewind": 100, "appendRollupWindow": 40,
 *             "httpHeadTimeout": 10000, "httpBodyTimeout": 30000, "httpIdleTimeout": 30000,
 *             "closeTimeout": 30000, "lingerTimeout": 2000, "lingerBytes": 4194304,
 *             "maxPendingSockets": 10000, "maxPendingPerIp": 1024, "tlsHandshakeTimeout": 10000},
 *  "tls": {"cert": "fullchain.pem", "key": "privkey.pem"} (HTTPS and WSS on the listener; SIGHUP reloads them),
 *  "trustedProxies": ["127.0.0.1", "10.0.0.0/8", "::1"] (peers whose X-Forwarded-For/-Proto are believed),
 *  "redis": "redis://HOST:PORT/DB" or {"url": URL} or {"host", "port", "db", "user", "password"} or
 *           {"socket": PATH, "db", ...}, with "connectTimeout", "commandTimeout" (ms), "maxPending"
 *           (a cluster node: docs/cluster.md; --redis URL overrides the url),
 *  "apps": [app specs, see core/app.h]} */
#ifndef SW_CORE_CONFIG_H
#define SW_CORE_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/forwarded.h"

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
  /* What a client can make the server keep, each checked before anything is
   * allocated (docs/design.md, "Limits"); defaults are Ably's published
   * limits where there is one. */
  int64_t max_pending_publishes;     /* unanswered publishes per connection; NACK 42911 beyond */
  int64_t max_channels_per_connection; /* attachments per connection (Ably: 200); 90010 */
  int64_t max_presence_members;      /* members per channel (Ably: 200); 91003 */
  int64_t max_presence_per_connection; /* members one connection entered, all channels; 91003 */
  int64_t max_idempotency_ids;       /* client-chosen message ids kept per channel (RSL1k); 42913 */
  int64_t max_message_id_length;     /* bytes of a client-chosen message id; 40031 */
  int64_t max_token_request_nonces;  /* TokenRequest nonces remembered; 42910 when full */
  int64_t max_revocations;           /* revocation rules kept (revokeTokens); 42910 per target */
  int64_t max_channel_params;        /* params of one ATTACH (and [?...] qualifier); 40003 */
  int64_t max_rewind;                /* messages a rewind sends (Ably: 100) */
  int64_t append_rollup_window;      /* ms, for connections without the appendRollupWindow
                                        transport param (Ably: 40); 0 to 500 (core/rollup.h) */
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
  int64_t tls_handshake_timeout; /* a TLS handshake, from accept; closed without a word after it */
} sw_limits_t;

/* Where Basic (API key) auth is allowed without TLS (RSA1: Ably refuses it
 * with 40103). Over TLS (the listener's own, or a trusted proxy's
 * X-Forwarded-Proto: https) it is always allowed. */
typedef enum { SW_BASIC_LOOPBACK = 0, SW_BASIC_ALLOW, SW_BASIC_DENY } sw_basic_policy_t;

typedef struct sw_auth_config {
  int64_t clock_skew_ms;   /* leeway on token iat/nbf (none on exp: RSA4b1) */
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
  int log_format;  /* SW_LOG_TEXT or SW_LOG_JSON (util/log.h), "logFormat" */
  char *admin_key; /* NULL: admin API closed unless sandbox */
  /* "metricsListen" / --metrics-listen: a listener serving only /metrics,
   * /healthz and /readyz, without credentials (root/health.c). */
  bool metrics_listen;
  char metrics_host[64];
  int metrics_port;
  sw_limits_t limits;
  sw_auth_config_t auth;
  /* "tls" / --tls-cert, --tls-key: the listener speaks only HTTPS and WSS.
   * Both set or neither (config_check). */
  char *tls_cert, *tls_key;
  /* "trustedProxies": peers whose X-Forwarded-For and X-Forwarded-Proto are
   * believed (core/sock.c), at most SW_MAX_TRUSTED_PROXIES. */
  sw_cidr_t *trusted_proxies;
  size_t n_trusted_proxies;
  json_t *apps;    /* array of app specs from the file, or NULL */
  /* "redis" / --redis: this server is a node of a cluster on that Redis
   * (docs/cluster.md). Plain values: core/ never names Redis; the root
   * (src/root/) checks and parses them (redis_url_parse) at start-up.
   * redis_url, or the parts (redis_host or redis_socket, ...); none of
   * them: one process on the embedded store. */
  char *redis_url;
  char *redis_host, *redis_socket, *redis_user, *redis_password;
  int redis_port, redis_db;               /* 0: 6379 / 0 */
  int64_t redis_connect_timeout_ms;       /* 0: the default (2000) */
  int64_t redis_command_timeout_ms;       /* 0: the default (5000) */
  int64_t redis_max_pending;              /* 0: the default (10000) */
} sw_config_t;

#define SW_MAX_TRUSTED_PROXIES 1024

/* Defaults (listen 127.0.0.1:8080, data ./data). */
void config_defaults(sw_config_t *c);
/* Merges a JSON config file into c. Returns 0 or -1 with a message in err. */
int config_load_file(sw_config_t *c, const char *path, char *err, size_t errlen);
/* Parses "HOST:PORT" into c. Returns 0 or -1. */
int config_set_listen(sw_config_t *c, const char *hostport);
/* Parses "HOST:PORT" as the metrics listener's address. Returns 0 or -1. */
int config_set_metrics_listen(sw_config_t *c, const char *hostport);
/* Sets the TLS certificate chain and key files (either may be NULL: kept). */
void config_set_tls(sw_config_t *c, const char *cert, const char *key);
/* Whether a Redis is configured (a cluster node). */
bool config_has_redis(const sw_config_t *c);
/* Checks what only the whole configuration can tell (flags merged over the
 * file): 0, or -1 with a message in err. */
int config_check(const sw_config_t *c, char *err, size_t errlen);
void config_free(sw_config_t *c);

#endif
