/* redis_conn.h: one connection to Redis on the libuv loop (a hiredis async
 * context polled by a uv_poll_t: our own small adapter, see redis_conn.c
 * for why not hiredis's adapters/libuv.h), that keeps itself up.
 *
 * - Connects (names resolved with uv_getaddrinfo, so the loop never blocks
 *   on DNS), then AUTH (when the URL has a password), SELECT (db > 0),
 *   SCRIPT LOAD of opts.scripts, and PING. The connection is UP once that PING is answered; the whole
 *   handshake has `connect_timeout_ms`.
 * - Lost (EOF, error, a command unanswered for `command_timeout_ms`, a
 *   failed handshake): every pending command completes with an error, the
 *   state callback says DOWN (once per UP period), and the connection
 *   retries after a capped exponential backoff with jitter:
 *   a uniformly random delay in [d/2, d], d = min(backoff_max, backoff_min * 2^attempt).
 * - While DOWN (and during the handshake), redis_conn_command fails at once
 *   with -ENOTCONN and calls nothing: callers refuse the request (an Ably
 *   error), they never queue behind an absent Redis. At most `max_pending`
 *   commands are unanswered at once (-ENOBUFS beyond), so a slow Redis
 *   cannot make the queue grow without bound.
 * - Subscriber mode (opts.on_message set): the connection keeps a set of
 *   pub/sub channels (redis_conn_subscribe/unsubscribe), subscribes to all
 *   of them again after every reconnect and reports each confirmation
 *   (on_subscribed: from then on every PUBLISH to the channel arrives, in
 *   order). RESP2 allows only (UN)SUBSCRIBE and PING on such a connection,
 *   so a node uses one connection for commands and one for its
 *   subscriptions. Plain SUBSCRIBE, not SSUBSCRIBE: Debian 12's hiredis
 *   0.14 knows only SUBSCRIBE/PSUBSCRIBE replies in its async API.
 *
 * Loop thread only. Every callback runs on the loop. */
#ifndef SW_CLUSTER_REDIS_CONN_H
#define SW_CLUSTER_REDIS_CONN_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/redis_url.h"

typedef struct sw_redis_conn sw_redis_conn_t;

typedef struct sw_redis_conn_opts {
  sw_redis_url_t url;
  const char *name;            /* for logs ("cmd", "sub"); may be NULL */
  uint32_t connect_timeout_ms; /* connect + handshake; 0: 2000 */
  uint32_t command_timeout_ms; /* oldest unanswered command; 0: 5000 */
  uint32_t backoff_min_ms;     /* 0: 100 */
  uint32_t backoff_max_ms;     /* 0: 5000 */
  size_t max_pending;          /* 0: 10000 */
  /* Lua scripts to SCRIPT LOAD in every handshake (before the PING), so
   * that EVALSHA finds them once the connection is UP. Borrowed: they must
   * outlive the connection (static text). */
  const char *const *scripts;
  size_t n_scripts;
  /* UP (true) once the handshake is answered, DOWN (false) when an UP
   * connection is lost; why is a short reason (static or valid during the
   * call). May be NULL. */
  void (*on_state)(void *ud, bool up, const char *why);
  /* Subscriber mode when set: a message published on a subscribed channel. */
  void (*on_message)(void *ud, const char *channel, size_t channel_len, const char *payload, size_t len);
  /* Subscriber mode: Redis confirmed the subscription (also after every
   * reconnect). May be NULL. */
  void (*on_subscribed)(void *ud, const char *channel, size_t channel_len);
  void *ud;
} sw_redis_conn_opts_t;

/* A command's outcome: err 0 with the reply (which may be a Redis error
 * reply, REDIS_REPLY_ERROR: the command reached Redis), or err < 0 with
 * r NULL: -ECONNRESET (the connection was lost before the reply: the
 * command may or may not have run), -ETIMEDOUT (unanswered for
 * command_timeout_ms; the connection is dropped; the same uncertainty),
 * -ESHUTDOWN (redis_conn_close). The reply is valid during the call only. */
typedef void (*sw_redis_reply_cb)(void *ud, const redisReply *r, int err);

/* Starts connecting at once. 0 and *out, or -EINVAL / -ENOMEM. */
int redis_conn_open(uv_loop_t *loop, const sw_redis_conn_opts_t *opts, sw_redis_conn_t **out);

/* Fails every pending command with -ESHUTDOWN (from the loop, soon after
 * this returns: never from inside this call), drops the connection and
 * frees c once its handles are closed: keep running the loop. No callback
 * of opts runs after this call. */
void redis_conn_close(sw_redis_conn_t *c);

bool redis_conn_is_up(const sw_redis_conn_t *c);

/* Sends one command (argv[i] of lens[i] bytes, binary-safe). 0: cb runs
 * exactly once, later. Else nothing was sent and cb will not run:
 * -ENOTCONN (DOWN or handshaking), -ENOBUFS (max_pending unanswered),
 * -EINVAL (subscriber connection, or argc < 1), -ENOMEM. */
int redis_conn_command(sw_redis_conn_t *c, sw_redis_reply_cb cb, void *ud, int argc, const char **argv,
                       const size_t *lens);

/* Subscriber mode: wants (or no longer wants) the pub/sub channel. Takes
 * effect now if UP, else at the next connect. Idempotent. 0, -EINVAL (not
 * a subscriber connection, empty name) or -ENOMEM. No reference counting
 * here: the bus counts. */
int redis_conn_subscribe(sw_redis_conn_t *c, const char *channel, size_t len);
int redis_conn_unsubscribe(sw_redis_conn_t *c, const char *channel, size_t len);
/* Subscriber mode: whether the channel's subscription is confirmed now. */
bool redis_conn_subscribed(const sw_redis_conn_t *c, const char *channel, size_t len);

typedef struct sw_redis_conn_stats {
  uint64_t connects;     /* handshakes completed (UP transitions) */
  uint64_t failures;     /* connect attempts or connections that failed */
  uint64_t timeouts;     /* connections dropped for a command timeout */
  uint64_t refused;      /* commands refused at once (down or full) */
  size_t pending;        /* unanswered commands now */
  uint32_t next_delay_ms; /* the backoff delay last drawn */
} sw_redis_conn_stats_t;
void redis_conn_stats(const sw_redis_conn_t *c, sw_redis_conn_stats_t *st);

#endif
