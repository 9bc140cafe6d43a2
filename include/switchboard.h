/* switchboard.h: libswitchboard, a C client for switchboard and other
 * servers speaking Ably's realtime protocol (v6), over WebSocket and HTTP.
 *
 * Model
 *   A client (sw_client_t) is one realtime connection plus REST access to
 *   the same server. Everything runs on one libuv loop: the application's
 *   own (sw_options_t.loop) or one the client creates and runs in
 *   sw_client_run(). No function is thread-safe; call them all from the
 *   loop's thread (or before the loop runs).
 *
 * Callbacks
 *   Every callback runs on the loop thread. Completion callbacks (attach,
 *   detach, publish, REST, auth) never run from inside the call that passed
 *   them: results known at once arrive on the next loop iteration. State
 *   observers may run from inside a call that changes the state (e.g.
 *   ATTACHING from sw_channel_attach). A callback may call any function of
 *   this API, including sw_client_free() and sw_channel_release() on the
 *   handle it was called for: handles are closed asynchronously, and after
 *   sw_client_free() no callback of that client runs again.
 *
 * Ownership
 *   Strings and structs passed in are copied before the call returns unless
 *   stated otherwise. Pointers handed to a callback (messages, errors,
 *   serials) are borrowed: valid until the callback returns. Handles
 *   returned by sw_client_channel() belong to the client. Anything the
 *   library allocates for the caller says how to free it; all *_free(NULL)
 *   calls are no-ops.
 *
 * Errors
 *   Functions return 0 (SW_OK) or a negative SW_E* code for misuse or
 *   resource problems. Protocol and server errors are Ably ErrorInfo values
 *   (sw_errinfo_t: code, statusCode, message), e.g. 40101 (bad credentials),
 *   40142 (token expired), 40160 (capability denied), 80003 (disconnected).
 *
 * Wire formats: JSON and msgpack (sw_options_t.format). Transports: plain
 * ws:// and http:// (switchboard's own), or wss:// and https:// with
 * sw_options_t.tls (OpenSSL; Ably's endpoints, or TLS in front of
 * switchboard). */
#ifndef SWITCHBOARD_H
#define SWITCHBOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SW_API __attribute__((visibility("default")))

#define SW_CLIENT_VERSION "0.1.0"
/* The Ably protocol version this library speaks. */
#define SW_PROTOCOL_VERSION 6

struct uv_loop_s; /* libuv's uv_loop_t */

typedef struct sw_client sw_client_t;
typedef struct sw_channel sw_channel_t;
typedef struct sw_auth_request sw_auth_request_t;
typedef struct sw_history_page sw_history_page_t;

/* ---- return codes -------------------------------------------------------- */

enum {
  SW_OK = 0,
  SW_EINVAL = -1,  /* an argument is invalid (NULL handle, malformed key, bad JSON...) */
  SW_ENOMEM = -2,  /* out of memory */
  SW_ESTATE = -3,  /* not possible in the current state (client closed or failed,
                      channel failed, request already completed...) */
  SW_EIO = -4,     /* a system call failed */
};

/* An Ably ErrorInfo (TI1). code 0 means "no error". */
typedef struct sw_errinfo {
  int code;          /* Ably error code, e.g. 40142 */
  int status_code;   /* HTTP-style status, e.g. 401 */
  char message[256]; /* NUL-terminated, possibly truncated */
} sw_errinfo_t;

/* Library-originated Ably codes, in addition to those the server sends. */
enum {
  SW_ERR_TIMEOUT = 50003,            /* a request got no answer in time */
  SW_ERR_CONNECTION_FAILED = 80000,  /* the transport could not be opened */
  SW_ERR_CONNECTION_SUSPENDED = 80002,
  SW_ERR_DISCONNECTED = 80003,       /* the transport was lost */
  SW_ERR_RESUME_FAILED = 80008,      /* CONNECTED on a new connection after a resume */
  SW_ERR_CONNECTION_CLOSED = 80017,
  SW_ERR_AUTH_FAILED = 80019,        /* getting a token failed (RSA4c1) */
  SW_ERR_AUTH_CALLBACK = 40170,      /* the auth callback failed or returned garbage */
  SW_ERR_NO_RENEWAL = 40171,         /* a token error, and no way to renew the token */
  SW_ERR_CHANNEL_FAILED = 90000,     /* channel operation failed */
  SW_ERR_CHANNEL_DETACHED = 90001,
  SW_ERR_CHANNEL_TIMEOUT = 90007,    /* no ATTACHED/DETACHED in time */
};

/* A short English name for an SW_E* return code. */
SW_API const char *sw_strerror(int rc);

/* The library version, SW_CLIENT_VERSION. */
SW_API const char *sw_version(void);

/* ---- connection states (RTN4) -------------------------------------------- */

typedef enum {
  SW_CONN_INITIALIZED = 0,
  SW_CONN_CONNECTING,
  SW_CONN_CONNECTED,
  SW_CONN_DISCONNECTED, /* retrying (retry_in_ms) */
  SW_CONN_SUSPENDED,    /* disconnected longer than connectionStateTtl; retrying less often */
  SW_CONN_CLOSING,
  SW_CONN_CLOSED,       /* terminal until sw_client_connect() */
  SW_CONN_FAILED,       /* terminal until sw_client_connect(): a fatal error */
} sw_conn_state_t;

/* "initialized", "connecting", ... */
SW_API const char *sw_conn_state_name(sw_conn_state_t s);

/* A connection state change. previous == current == SW_CONN_CONNECTED is an
 * UPDATE: a new token was accepted in-band (RTN24), or a reauth failed
 * while the connection stays up (reason set). */
typedef struct sw_state_change {
  sw_conn_state_t previous, current;
  const sw_errinfo_t *reason; /* NULL if none; borrowed */
  int64_t retry_in_ms;        /* DISCONNECTED/SUSPENDED: time until the next attempt, else 0 */
  bool resumed;               /* CONNECTED: the same connection continued (RTN15c6) */
} sw_state_change_t;

typedef void (*sw_state_cb)(sw_client_t *c, const sw_state_change_t *change, void *ud);

/* ---- authentication ------------------------------------------------------ */

/* Called whenever the client needs a token: before connecting, when the
 * server asks for reauthentication (AUTH, RTN22), on a token error
 * (40140-40149) and before a cached token expires. The application obtains
 * a credential (typically from its own server) and hands it over with
 * sw_auth_complete(), exactly once, from inside the callback or later on the
 * loop thread. req stays valid until then, even if the client is freed
 * meanwhile (the result is then discarded). The client waits at most
 * realtime_request_timeout_ms; a late completion is ignored. */
typedef void (*sw_auth_cb)(sw_client_t *c, sw_auth_request_t *req, void *ud);

/* Completes an auth request.
 *   credential: one of (copied)
 *     - an Ably JWT or an Ably token string (used as is);
 *     - TokenDetails JSON ({"token":...,"expires":...}), as requestToken returns;
 *     - a signed TokenRequest JSON ({"keyName","mac",...}), as
 *       sw_token_request_create() or Ably's createTokenRequest() make: the
 *       library exchanges it at POST /keys/{keyName}/requestToken.
 *   err: non-NULL to report failure (credential is then ignored); the
 *     connection goes DISCONNECTED (or stays CONNECTED for a reauth) with
 *     80019 (RSA4c).
 * Frees req. Returns 0, SW_EINVAL (req NULL, or both credential and err
 * NULL: req is then not freed), SW_ENOMEM. */
SW_API int sw_auth_complete(sw_auth_request_t *req, const char *credential, const sw_errinfo_t *err);

/* The clientId the connection asked for (options.client_id), or NULL;
 * borrowed from req. Handy when the callback asks the app server for a token. */
SW_API const char *sw_auth_request_client_id(const sw_auth_request_t *req);

/* ---- client options ------------------------------------------------------- */

enum { SW_FORMAT_JSON = 0, SW_FORMAT_MSGPACK = 1 };
enum { SW_LOG_NONE = 0, SW_LOG_ERROR = 1, SW_LOG_WARN = 2, SW_LOG_INFO = 3, SW_LOG_DEBUG = 4 };

typedef void (*sw_log_cb)(int level, const char *message, void *ud);

/* Fill with sw_options_init() then override fields. Strings are borrowed
 * only until sw_client_new() returns. Exactly one credential source is
 * needed: key, token or auth_cb (token + auth_cb: the token is used first,
 * the callback renews it). */
typedef struct sw_options {
  const char *host;   /* default "127.0.0.1" */
  int port;           /* default 8080 */
  const char *local_address; /* NULL (default): the kernel picks the source
                                address. Else a numeric IPv4 or IPv6 address
                                (e.g. "127.0.0.2") that every connection of
                                this client (WebSocket and REST) is bound to
                                before connecting; the port is still chosen
                                at connect time (IP_BIND_ADDRESS_NO_PORT).
                                Only host addresses of its family are tried.
                                Anything else makes sw_client_new fail with
                                SW_EINVAL (40000); an address this machine
                                does not have fails each connection attempt
                                (80000, "address not available").
                                For clients of many connections to one
                                server: each source address has its own
                                ephemeral ports. */
  bool tls;           /* default false: ws:// and http://, as switchboard
                         itself speaks. true: wss:// and https:// for every
                         connection (WebSocket and REST), for Ably's
                         endpoints (port 443) or a TLS proxy in front of
                         switchboard. The server's certificate chain is
                         verified (tls_ca_file, else the system trust
                         store), its name must match host (DNS names; an IP
                         literal host must be among its IP addresses), and
                         host is sent as SNI unless it is an IP literal. There
                         is no way to turn verification off. TLS 1.2 or
                         later. A refused certificate fails each connection
                         attempt with 80000 and the reason, e.g. "TLS
                         certificate verify failed: hostname mismatch". */
  const char *tls_ca_file; /* with tls: a PEM file of the CA certificates to
                              trust instead of the system trust store (e.g.
                              a private CA). NULL (default): the system store
                              (OpenSSL's default paths, /etc/ssl/certs on
                              Debian). Read by sw_client_new: an unreadable
                              file, or this without tls, is SW_EINVAL (40000). */

  const char *key;    /* "appId.keyId:secret". Sent as the `key` parameter
                         (switchboard allows that over plain HTTP only from
                         loopback) unless use_token_auth */
  bool use_token_auth; /* with key: sign TokenRequests locally, exchange them
                          for tokens, renew them automatically */
  const char *token;  /* an Ably token or JWT (not renewable without auth_cb) */
  sw_auth_cb auth_cb;
  void *auth_ud;

  const char *client_id; /* NULL: none requested */
  int format;            /* SW_FORMAT_MSGPACK (default) or SW_FORMAT_JSON */
  bool echo;             /* receive own messages (default true) */
  bool idempotent;       /* give each published message a unique id so a
                            publish retried on a new connection is not
                            duplicated (RSL1k; default true) */
  bool queue_messages;   /* queue publishes while not connected (default true) */

  struct uv_loop_s *loop; /* NULL: the client creates and owns a loop */

  sw_state_cb on_state;  /* connection state changes; may be NULL */
  void *state_ud;

  int64_t realtime_request_timeout_ms; /* default 10000: connect, attach, auth, close */
  int64_t http_request_timeout_ms;     /* default 10000: REST requests */
  int64_t disconnected_retry_ms;       /* default 15000 (RTB1 backoff applies) */
  int64_t suspended_retry_ms;          /* default 30000 */
  int64_t channel_retry_ms;            /* default 15000 */
  int64_t connection_state_ttl_ms;     /* default 120000, until the server says otherwise */

  sw_log_cb log_cb;  /* NULL: no logging */
  void *log_ud;
  int log_level;     /* default SW_LOG_WARN */
} sw_options_t;

/* Sets every field of o to its default (see above). */
SW_API void sw_options_init(sw_options_t *o);

/* ---- the client ----------------------------------------------------------- */

/* Creates a client (state INITIALIZED; nothing happens until
 * sw_client_connect or a REST call). Copies everything it needs from opts.
 * Returns 0 with *out set (free with sw_client_free), or
 *   SW_EINVAL: no credential, malformed key (err 40005), bad port/format/
 *              local_address, unreadable tls_ca_file (40000);
 *   SW_ENOMEM;  SW_EIO: the private loop or the TLS context could not be
 *              created (or the system trust store not loaded).
 * err (may be NULL) gets the reason. */
SW_API int sw_client_new(const sw_options_t *opts, sw_client_t **out, sw_errinfo_t *err);

/* Frees the client: closes the transport at once (without CLOSE: the
 * connection stays resumable on the server until it expires), cancels REST
 * requests and frees every channel. No callback of this client runs after
 * this. Safe inside a callback. With the application's loop, the
 * asynchronous closes complete when that loop runs next; with a private
 * loop, outside sw_client_run(), they complete before this returns (so run
 * a private loop only through sw_client_run*, never with uv_run directly).
 * History pages stay readable, but sw_history_page_next() must not be
 * called on them any more. NULL is a no-op. */
SW_API void sw_client_free(sw_client_t *c);

/* Starts connecting (INITIALIZED, CLOSED, FAILED), or retries at once
 * (DISCONNECTED, SUSPENDED). No-op when CONNECTING or CONNECTED.
 * Returns 0, SW_EINVAL, SW_ESTATE (CLOSING). */
SW_API int sw_client_connect(sw_client_t *c);

/* Closes the connection (RTN12): sends CLOSE, waits for CLOSED (at most
 * realtime_request_timeout_ms), then CLOSED. Queued and unacknowledged
 * publishes fail with 80017; channels become DETACHED. The connection
 * cannot be resumed afterwards. Returns 0 or SW_EINVAL. */
SW_API int sw_client_close(sw_client_t *c);

/* Asks for a new token now and sends it in-band (RTC8) when connected.
 * Needs a renewable credential (auth_cb or key). Returns 0, SW_EINVAL,
 * SW_ESTATE (no way to get a token). */
SW_API int sw_client_authorize(sw_client_t *c);

SW_API sw_conn_state_t sw_client_state(const sw_client_t *c);
/* The current connection's id and key (NULL before the first CONNECTED);
 * borrowed, valid until the next state change. */
SW_API const char *sw_client_connection_id(const sw_client_t *c);
SW_API const char *sw_client_connection_key(const sw_client_t *c);
/* The clientId the server assigned (connectionDetails.clientId), or NULL. */
SW_API const char *sw_client_client_id(const sw_client_t *c);
/* The last connection error (RTN25), or NULL; borrowed. */
SW_API const sw_errinfo_t *sw_client_error_reason(const sw_client_t *c);

/* The loop the client runs on. */
SW_API struct uv_loop_s *sw_client_loop(const sw_client_t *c);

/* Runs the client's loop until nothing is left to do (the client is CLOSED
 * or FAILED and no request is pending) or sw_client_stop() is called.
 * Works with a private or an application loop (it then runs that loop).
 * Returns 0, SW_EINVAL, SW_ESTATE (called from inside a callback). */
SW_API int sw_client_run(sw_client_t *c);

/* Runs the loop for at most timeout_ms (or until sw_client_stop()).
 * Returns 0, SW_EINVAL, SW_ESTATE (re-entered). */
SW_API int sw_client_run_for(sw_client_t *c, int64_t timeout_ms);

/* Makes a running sw_client_run()/sw_client_run_for() return soon. */
SW_API void sw_client_stop(sw_client_t *c);

/* The socket of the current WebSocket transport (with tls, the TCP socket
 * under TLS), or -1. For diagnostics and tests (e.g. shutdown(2) to
 * simulate a network cut); do not read or write it. */
SW_API int sw_client_fileno(const sw_client_t *c);

/* ---- messages ------------------------------------------------------------- */

enum { SW_PAYLOAD_NONE = 0, SW_PAYLOAD_STRING = 1, SW_PAYLOAD_BINARY = 2 };

/* TM5 message actions. */
enum {
  SW_MESSAGE_CREATE = 0,
  SW_MESSAGE_UPDATE = 1,
  SW_MESSAGE_DELETE = 2,
  SW_MESSAGE_META = 3,
  SW_MESSAGE_SUMMARY = 4,
  SW_MESSAGE_APPEND = 5,
};

/* A Message (TM2). Received: every pointer is borrowed from the library
 * (valid during the callback, or while its history page lives); NULL means
 * absent. To publish: fill what you need, the rest zero (data_type
 * SW_PAYLOAD_NONE, timestamp 0, action ignored). */
typedef struct sw_message {
  const char *id;
  const char *name;
  const void *data;      /* received data is NUL-terminated even when binary */
  size_t data_len;       /* publishing a string: 0 means strlen(data) */
  int data_type;         /* SW_PAYLOAD_* */
  const char *encoding;  /* remaining encoding, e.g. "json" for JSON text data */
  const char *client_id;
  const char *connection_id;
  int64_t timestamp;     /* ms since the epoch; 0 absent */
  const char *serial;    /* the channel serial the server gave it (TM2r) */
  const char *extras;    /* JSON object text, or NULL */
  int action;            /* SW_MESSAGE_*; -1 absent */
  const char *version;   /* received: the version (TM2s) as JSON object text
                            (serial, timestamp, clientId...), or NULL; ignored
                            when publishing */
} sw_message_t;

/* ---- channels ------------------------------------------------------------- */

typedef enum {
  SW_CHANNEL_INITIALIZED = 0,
  SW_CHANNEL_ATTACHING,
  SW_CHANNEL_ATTACHED,
  SW_CHANNEL_DETACHING,
  SW_CHANNEL_DETACHED,
  SW_CHANNEL_SUSPENDED,
  SW_CHANNEL_FAILED,
} sw_channel_state_t;

SW_API const char *sw_channel_state_name(sw_channel_state_t s);

/* Channel modes (TR3), for sw_channel_set_modes. */
enum {
  SW_CHANNEL_MODE_PRESENCE = 1 << 16,
  SW_CHANNEL_MODE_PUBLISH = 1 << 17,
  SW_CHANNEL_MODE_SUBSCRIBE = 1 << 18,
  SW_CHANNEL_MODE_PRESENCE_SUBSCRIBE = 1 << 19,
};

/* previous == current == ATTACHED is an UPDATE (RTL12). resumed: the
 * ATTACHED carried the RESUMED flag (no message was lost, RTL2f). */
typedef void (*sw_channel_state_cb)(sw_channel_t *ch, sw_channel_state_t previous,
                                    sw_channel_state_t current, const sw_errinfo_t *reason,
                                    bool resumed, void *ud);
/* Completion of attach/detach: err NULL on success. */
typedef void (*sw_channel_done_cb)(sw_channel_t *ch, const sw_errinfo_t *err, void *ud);
/* A received message; m is borrowed. */
typedef void (*sw_message_cb)(sw_channel_t *ch, const sw_message_t *m, void *ud);
/* Completion of a publish: on ACK err is NULL and serials[0..n) are the
 * serials of the published messages in order (an entry is NULL for a
 * message the server discarded as a duplicate); on NACK or failure err is
 * set and n is 0. Everything is borrowed. */
typedef void (*sw_publish_cb)(sw_channel_t *ch, const sw_errinfo_t *err, const char *const *serials,
                              size_t n, void *ud);

/* The channel called name, created on first use (RTS3a); the same handle
 * for the same name. Owned by the client: valid until sw_channel_release()
 * or sw_client_free(). Returns NULL for NULL/empty name or out of memory. */
SW_API sw_channel_t *sw_client_channel(sw_client_t *c, const char *name);

/* Detaches the channel if attached and drops the handle: its subscriptions
 * and callbacks are forgotten (pending publishes still get their
 * callbacks). The handle must not be used afterwards; a later
 * sw_client_channel() with the name makes a new one. Safe inside the
 * channel's own callbacks. Returns 0 or SW_EINVAL. */
SW_API int sw_channel_release(sw_channel_t *ch);

SW_API const char *sw_channel_name(const sw_channel_t *ch);
SW_API sw_channel_state_t sw_channel_state(const sw_channel_t *ch);
/* The last channel error, or NULL; borrowed. */
SW_API const sw_errinfo_t *sw_channel_error_reason(const sw_channel_t *ch);
/* The channelSerial the next (re-)ATTACH will carry (RTL15b), or NULL; borrowed. */
SW_API const char *sw_channel_serial(const sw_channel_t *ch);
SW_API sw_client_t *sw_channel_client(const sw_channel_t *ch);

/* Observes state changes (one observer per channel; NULL removes it). */
SW_API void sw_channel_on_state(sw_channel_t *ch, sw_channel_state_cb cb, void *ud);

/* Modes to request at the next ATTACH (0: the server's default, all the
 * capability allows). Returns 0 or SW_EINVAL. */
SW_API int sw_channel_set_modes(sw_channel_t *ch, uint32_t modes);
/* A channel param (TB2c) for the next ATTACH, e.g. ("rewind", "10");
 * value NULL removes it. Returns 0, SW_EINVAL, SW_ENOMEM. */
SW_API int sw_channel_set_param(sw_channel_t *ch, const char *key, const char *value);

/* Attaches (RTL4): cb (may be NULL) runs once ATTACHED or with the error.
 * Attaching while the connection is not yet up waits for it. Returns 0,
 * SW_EINVAL, SW_ENOMEM, SW_ESTATE (client CLOSING/CLOSED/FAILED/SUSPENDED). */
SW_API int sw_channel_attach(sw_channel_t *ch, sw_channel_done_cb cb, void *ud);

/* Detaches (RTL5): cb (may be NULL) runs once DETACHED or with the error.
 * Returns 0, SW_EINVAL, SW_ENOMEM. */
SW_API int sw_channel_detach(sw_channel_t *ch, sw_channel_done_cb cb, void *ud);

/* Subscribes cb to messages named name (NULL: all) and attaches the
 * channel if needed (RTL7g). Returns a subscription id (> 0) for
 * sw_channel_unsubscribe, or SW_EINVAL, SW_ENOMEM, SW_ESTATE (as attach;
 * the subscription is then not kept). Messages arrive only while the
 * channel is ATTACHED (RTL17), in channel order. */
SW_API int sw_channel_subscribe(sw_channel_t *ch, const char *name, sw_message_cb cb, void *ud);

/* Removes a subscription (id from sw_channel_subscribe; 0 removes all).
 * Does not detach. Returns 0 or SW_EINVAL (unknown id). */
SW_API int sw_channel_unsubscribe(sw_channel_t *ch, int id);

/* Publishes messages[0..n) (1..1000) in one ProtocolMessage (RTL6). The
 * messages are copied. Publishing does not need an attached channel. While
 * not connected they are queued (queue_messages) and sent on CONNECTED;
 * unacknowledged ones are resent after a resume with the same msgSerial
 * (RTN19a2). cb (may be NULL) gets the ACK serials or the error, including
 * local ones (40009 too large, 90000 channel failed or suspended, 80017 closed...).
 * Returns 0, SW_EINVAL (n out of range, extras not a JSON object, message
 * field invalid), SW_ENOMEM, SW_ESTATE (client CLOSING, CLOSED, FAILED or
 * SUSPENDED (RTL6c4), or not connected and queue_messages false). */
SW_API int sw_channel_publish_messages(sw_channel_t *ch, const sw_message_t *messages, size_t n,
                                       sw_publish_cb cb, void *ud);

/* Publishes one message with a name (may be NULL) and UTF-8 string data
 * (may be NULL). As sw_channel_publish_messages. */
SW_API int sw_channel_publish(sw_channel_t *ch, const char *name, const char *data, sw_publish_cb cb,
                              void *ud);

/* Message operations on an existing message (mutable messages, RTL32):
 * sends msg as a MESSAGE with action SW_MESSAGE_UPDATE, _DELETE or _APPEND
 * and msg->serial naming the target (required). The server answers with an
 * ACK, or a NACK such as 93002 when the channel's namespace does not allow
 * mutable messages. As sw_channel_publish_messages otherwise. */
SW_API int sw_channel_update_message(sw_channel_t *ch, const sw_message_t *msg, sw_publish_cb cb, void *ud);
SW_API int sw_channel_delete_message(sw_channel_t *ch, const sw_message_t *msg, sw_publish_cb cb, void *ud);
SW_API int sw_channel_append_message(sw_channel_t *ch, const sw_message_t *msg, sw_publish_cb cb, void *ud);

/* ---- REST ----------------------------------------------------------------- */

/* Server time in ms since the epoch (RSC16), or err. */
typedef void (*sw_time_cb)(sw_client_t *c, const sw_errinfo_t *err, int64_t time_ms, void *ud);

/* GET /time. cb is required. Returns 0, SW_EINVAL, SW_ENOMEM. */
SW_API int sw_time(sw_client_t *c, sw_time_cb cb, void *ud);

typedef struct sw_history_params {
  int64_t start;     /* ms; 0: no lower bound */
  int64_t end;       /* ms; 0: no upper bound */
  int limit;         /* 1..1000; 0: server default (100) */
  bool forwards;     /* default false: newest first */
  bool until_attach; /* only messages up to the channel's attach point (RTL10b;
                        the channel must be ATTACHED) */
} sw_history_params_t;

/* A page of history. page is the caller's (free with sw_history_page_free,
 * also when err is set: page is then NULL). */
typedef void (*sw_history_cb)(sw_client_t *c, const sw_errinfo_t *err, sw_history_page_t *page, void *ud);

/* GET /channels/{name}/messages (RSL2) with the client's credentials.
 * params may be NULL. cb is required. Returns 0, SW_EINVAL, SW_ENOMEM,
 * SW_ESTATE (until_attach on a channel that is not attached). */
SW_API int sw_channel_history(sw_channel_t *ch, const sw_history_params_t *params, sw_history_cb cb, void *ud);

SW_API size_t sw_history_page_count(const sw_history_page_t *page);
/* Item i (< count), borrowed from the page. */
SW_API const sw_message_t *sw_history_page_item(const sw_history_page_t *page, size_t i);
SW_API bool sw_history_page_has_next(const sw_history_page_t *page);
/* Fetches the next page (the page itself may be freed right after this
 * returns). Returns 0, SW_EINVAL, SW_ENOMEM, SW_ESTATE (no next page). */
SW_API int sw_history_page_next(const sw_history_page_t *page, sw_history_cb cb, void *ud);
SW_API void sw_history_page_free(sw_history_page_t *page);

/* ---- tokens --------------------------------------------------------------- */

typedef struct sw_token_params {
  const char *client_id;      /* NULL: none; "*": any */
  const char *capability;     /* JSON object text; NULL: the key's capability */
  int64_t ttl_ms;             /* 0: 1 hour */
  const char *revocation_key; /* JWT only: x-ably-revocation-key */
  int64_t timestamp_ms;       /* 0: now */
} sw_token_params_t;

/* TokenDetails (TD1); strings borrowed during the callback. */
typedef struct sw_token_details {
  const char *token;
  int64_t issued, expires; /* ms */
  const char *capability;  /* JSON text or NULL */
  const char *client_id;   /* NULL if none */
} sw_token_details_t;

typedef void (*sw_token_cb)(sw_client_t *c, const sw_errinfo_t *err, const sw_token_details_t *td, void *ud);

/* Requests a token (RSA8): signs a TokenRequest with the client's key and
 * POSTs it to /keys/{keyName}/requestToken. Does not change the client's
 * own credentials. params may be NULL. cb is required. Returns 0,
 * SW_EINVAL (no key, or bad params), SW_ENOMEM. */
SW_API int sw_request_token(sw_client_t *c, const sw_token_params_t *params, sw_token_cb cb, void *ud);

/* Mints an Ably JWT signed with key ("keyName:secret"): header
 * {"alg":"HS256","kid":keyName,"typ":"JWT"}, claims iat, exp (iat +
 * ttl, rounded up to a whole second), x-ably-capability,
 * x-ably-clientId, x-ably-revocation-key as given. No server round trip.
 * Returns 0 with *out a NUL-terminated string the caller frees with free(),
 * or SW_EINVAL (err 40005 malformed key, 40003 bad ttl, 40000 capability
 * not a JSON object), SW_ENOMEM. err may be NULL. */
SW_API int sw_jwt_create(const char *key, const sw_token_params_t *params, char **out, sw_errinfo_t *err);

/* Makes a signed TokenRequest (RSA9) as JSON text: keyName, ttl (ms),
 * capability, clientId (when given), timestamp, a 24-character random
 * nonce, and the mac (base64 HMAC-SHA256 over the fields, keyed with the
 * secret). Give it to a client (sw_auth_complete, Ably SDKs'
 * authCallback) to exchange for a token. Returns and frees as
 * sw_jwt_create. */
SW_API int sw_token_request_create(const char *key, const sw_token_params_t *params, char **out,
                                   sw_errinfo_t *err);

#ifdef __cplusplus
}
#endif

#endif
