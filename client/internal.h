/* internal.h: libswitchboard's private structures and the interfaces between
 * its files. Everything runs on the client's loop thread.
 *
 *   transport_tcp.c  the transport seam (swc_transport_t) and its TCP implementation
 *   ws.c             WebSocket client over a transport: handshake, masked frames
 *   http.c           one-shot HTTP/1.1 requests over a transport (http-parser)
 *   client.c         the connection state machine (RTN*), timers, the run loop
 *   auth.c           credentials, tokens, renewal (RSA*, RTC8), JWT/TokenRequest minting
 *   channel.c        channels (RTL*), subscriptions, the publish queue and ACKs
 *   rest.c           REST requests: time, history, requestToken
 *   rx.c             received frames to ProtocolMessages (MESSAGE and ACK without copies)
 *   mpread.c         msgpack frames to wire.h views in one pass, no allocation per frame
 *   util.c           errors, random bytes, logging, deferred callbacks, message views
 *
 * Internal functions are prefixed swc_ and hidden from the library's ABI. */
#ifndef SWC_INTERNAL_H
#define SWC_INTERNAL_H

#include <jansson.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <uthash.h>
#include <uv.h>

#include "proto/codec.h"
#include "proto/pmsg.h"
#include "switchboard.h"
#include "util/buf.h"

/* ---- transport seam ------------------------------------------------------
 * A byte stream to host:port: TCP (transport_tcp.c), or TLS over TCP with
 * memory BIOs (transport_tls.c). ws.c and http.c do not know which. */

typedef struct swc_transport swc_transport_t;

typedef struct swc_transport_cbs {
  void (*on_connect)(void *ud, int status); /* 0, or a negative uv error */
  void (*on_data)(void *ud, const uint8_t *p, size_t n);
  void (*on_close)(void *ud, int status); /* peer closed (0) or failed (< 0); at most once */
} swc_transport_cbs_t;

typedef struct swc_transport_ops {
  /* Queues buf[off..off+len) and takes buf (malloc'd; freed once written,
   * or at once on error). 0 or a negative uv error. */
  int (*write)(swc_transport_t *t, uint8_t *buf, size_t off, size_t len);
  /* The owner lets go: no callback runs after this; memory is freed
   * asynchronously. Safe inside the transport's own callbacks. */
  void (*close)(swc_transport_t *t);
  int (*fileno)(const swc_transport_t *t);
} swc_transport_ops_t;

struct swc_transport {
  const swc_transport_ops_t *ops;
};

/* Where and how to connect. Borrowed by the open functions for the call
 * only: a transport copies what it keeps. */
typedef struct swc_endpoint {
  const char *host;
  int port;
  /* Bind to this source address (its port 0) before connecting; NULL: the
   * kernel picks. Only destinations of the same family are tried. */
  const struct sockaddr *local;
  socklen_t local_len;
  SSL_CTX *tls; /* non-NULL: TLS with this context (verification set up) */
} swc_endpoint_t;

/* Resolves ep->host and connects; NULL when out of memory. */
swc_transport_t *swc_tcp_open(uv_loop_t *loop, const swc_endpoint_t *ep, const swc_transport_cbs_t *cbs, void *ud);
/* TLS over TCP when ep->tls, else swc_tcp_open. NULL when out of memory. */
swc_transport_t *swc_transport_open(uv_loop_t *loop, const swc_endpoint_t *ep, const swc_transport_cbs_t *cbs,
                                    void *ud);

/* TLS failures as transport statuses, below uv's errors and SWC_WS_*:
 * SWC_TLS_VERIFY_BASE - X509_V_ERR_* (certificate verification), and
 * SWC_TLS_ERROR_BASE - an OpenSSL SSL reason code (other TLS errors). */
enum { SWC_TLS_VERIFY_BASE = -11000, SWC_TLS_ERROR_BASE = -20000 };
bool swc_tls_is_error(int status);
/* "TLS certificate verify failed: hostname mismatch", ... into buf. */
const char *swc_tls_strerror(int status, char *buf, size_t n);
/* A client context: peer verification against ca_file (PEM) or, when NULL,
 * the system trust store; TLS 1.2 at least. NULL with err set on failure
 * (40000: ca_file unreadable). Free with SSL_CTX_free. */
SSL_CTX *swc_tls_ctx_new(const char *ca_file, sw_errinfo_t *err);

/* ---- WebSocket client (ws.c) --------------------------------------------- */

typedef struct swc_ws swc_ws_t;

enum { SWC_WS_PROTOCOL_ERROR = -10000, SWC_WS_HANDSHAKE_ERROR = -10001 };

typedef struct swc_ws_cbs {
  void (*on_open)(void *ud);
  void (*on_message)(void *ud, bool text, const uint8_t *p, size_t n);
  void (*on_activity)(void *ud); /* any bytes received (RTN23a) */
  /* The socket is gone (once): code is the peer's close code (1000...), 0
   * for EOF without a close frame, a negative uv error, or SWC_WS_*. */
  void (*on_close)(void *ud, int code);
} swc_ws_cbs_t;

/* Opens ws://host:port<target> (ep). max_msg bounds a reassembled message. */
swc_ws_t *swc_ws_open(uv_loop_t *loop, const swc_endpoint_t *ep, const char *target, size_t max_msg,
                      const swc_ws_cbs_t *cbs, void *ud);
/* Sends one masked data frame. 0, -1 (not open), or a negative uv error. */
int swc_ws_send(swc_ws_t *ws, bool text, const uint8_t *p, size_t n);
/* Room to leave at the start of a buffer for swc_ws_send_buf's header. */
#define SWC_WS_HEADROOM 14
/* Sends b->data[SWC_WS_HEADROOM..b->len) as one frame without copying:
 * writes the header into the headroom, masks in place and hands the
 * buffer to the transport (b is left empty). Same returns as swc_ws_send. */
int swc_ws_send_buf(swc_ws_t *ws, bool text, sw_buf_t *b);
/* Lets go of ws (no callbacks after; safe inside its callbacks). */
void swc_ws_close(swc_ws_t *ws);
int swc_ws_fileno(const swc_ws_t *ws);

/* Pure: appends a client frame (FIN set, MASK bit set, mask, masked payload)
 * to out. 0 or -ENOMEM. */
int swc_ws_frame_masked(sw_buf_t *out, uint8_t opcode, const uint8_t *p, size_t n, const uint8_t mask[4]);

/* ---- HTTP client (http.c) ------------------------------------------------ */

typedef struct swc_http swc_http_t;

typedef struct swc_http_resp {
  int status;
  sw_buf_t body;
  char *link;          /* Link header, or NULL */
  char *content_type;  /* or NULL */
  int ably_error_code; /* X-Ably-ErrorCode, or 0 */
} swc_http_resp_t;

/* rc: 0 (resp valid), or a negative uv error / UV_ETIMEDOUT / UV_EPROTO. */
typedef void (*swc_http_cb)(void *ud, int rc, const swc_http_resp_t *resp);

/* Sends one request (Connection: close). headers: extra complete
 * "Name: value\r\n" lines or NULL. body copied. cb runs exactly once
 * unless cancelled. NULL when out of memory. */
swc_http_t *swc_http_start(uv_loop_t *loop, const swc_endpoint_t *ep, const char *method, const char *target,
                           const char *headers, const uint8_t *body, size_t body_len, int64_t timeout_ms,
                           swc_http_cb cb, void *ud);
/* No callback after this; frees asynchronously. */
void swc_http_cancel(swc_http_t *h);

/* ---- receiving ProtocolMessages (rx.c) ------------------------------------ */

/* The receive path's scratch memory, reused from frame to frame. */
typedef struct swc_rx {
  sw_buf_t text; /* the NUL-terminated strings of the frame being handled */
  sw_buf_t recs; /* per-message (or per-ACK-result) records while text grows */
  sw_buf_t out;  /* what the handler gets: message views, ACK results */
  sw_buf_t tree; /* a msgpack frame's views (swc_mp_read) */
} swc_rx_t;

/* ---- reading msgpack (mpread.c) ------------------------------------------- */

/* codec_msgpack_read without msgpack-c: parses the value p[0..n) into views
 * kept in scratch (reused; its old contents are dropped) and calls fn with
 * the root view, which lives until scratch is next used or freed. Accepts
 * exactly what codec_msgpack_read accepts; returns fn's result, or -1 with
 * *err set (40000; 50000 when out of memory). A pure function of p[0..n). */
struct wire_val;
typedef int (*swc_mp_root_fn)(const struct wire_val *root, void *arg, sw_error_t *err);
int swc_mp_read(sw_buf_t *scratch, const uint8_t *p, size_t n, swc_mp_root_fn fn, void *arg, sw_error_t *err);

/* One received ProtocolMessage. pm has the header fields (ACK: and res);
 * for a MESSAGE, msgs[0..n_msgs) are its messages as the application sees
 * them (id, connectionId and timestamp filled in from pm: TM2a, c, f); use
 * them, not pm.messages. Everything is borrowed for the handler's call. */
typedef struct swc_rx_pmsg {
  sw_pmsg_t pm;
  const sw_message_t *msgs;
  size_t n_msgs;
} swc_rx_pmsg_t;

typedef void (*swc_rx_handler)(void *ud, const swc_rx_pmsg_t *m);

/* Decodes the frame p[0..n) into the calling thread's scratch and calls
 * handler once with it. 0, or -1 with *err set when it is malformed
 * (handler not called). The handler may decode other frames. */
int swc_rx_decode(sw_format_t fmt, const uint8_t *p, size_t n, swc_rx_handler handler, void *ud, sw_error_t *err);
/* The same into the scratch rx: swc_rx_decode's core, which tests drive
 * directly. */
int swc_rx_frame(swc_rx_t *rx, sw_format_t fmt, const uint8_t *p, size_t n, swc_rx_handler handler, void *ud,
                 sw_error_t *err);
void swc_rx_free(swc_rx_t *rx);

/* ---- deferred callbacks (util.c) ------------------------------------------ */

typedef struct swc_call swc_call_t;
struct swc_call {
  swc_call_t *next;
  void (*fn)(sw_client_t *c, swc_call_t *call); /* runs it; the call is freed after */
  void (*drop)(swc_call_t *call);               /* frees what it holds, run or not; may be NULL */
  sw_channel_t *ch;                             /* a reference, released after */
  void *cb, *ud, *ptr;
  sw_errinfo_t err;
  bool has_err;
  uint64_t gen; /* e.g. which auth attempt it belongs to */
};

/* Queues a call for the next loop iteration; 0 or SW_ENOMEM (call freed). */
int swc_defer(sw_client_t *c, swc_call_t *call);
swc_call_t *swc_call_new(void (*fn)(sw_client_t *, swc_call_t *));

/* ---- channels and publishes ---------------------------------------------- */

typedef struct swc_sub {
  struct swc_sub *next;
  int id;
  char *name; /* NULL: all */
  sw_message_cb cb;
  void *ud;
  bool removed;
} swc_sub_t;

typedef struct swc_waiter {
  struct swc_waiter *next;
  sw_channel_done_cb cb;
  void *ud;
} swc_waiter_t;

enum { SWC_DEADLINE_NONE = 0, SWC_DEADLINE_ATTACH, SWC_DEADLINE_DETACH, SWC_DEADLINE_RETRY };

struct sw_channel {
  /* What a received message touches, first (see sw_client). */
  sw_client_t *c;
  char *name;
  swc_sub_t *subs;
  char *serial;        /* RTL15b channelSerial */
  size_t serial_cap;   /* bytes allocated for serial (it changes with every message) */
  int refs; /* the client's table while not released, deferred calls, publishes */
  int dispatching;
  sw_channel_state_t state;
  bool released;

  UT_hash_handle hh;
  sw_errinfo_t reason;
  bool has_reason;
  char *attach_serial; /* channelSerial of the last ATTACHED (RTL10b untilAttach) */
  uint32_t modes;
  json_t *params;      /* object of strings, or NULL */
  bool attached_before; /* ATTACH_RESUME on re-attach (RTL4j) */
  bool attach_after_detach;
  int next_sub_id;
  swc_waiter_t *attach_waiters, *detach_waiters;
  sw_channel_state_cb state_cb;
  void *state_ud;
  int deadline_kind;
  uint64_t deadline; /* uv_now */
  int retry_count;
  sw_channel_state_t before_detach;
};

typedef struct swc_pub {
  struct swc_pub *next;
  sw_channel_t *ch; /* a reference */
  sw_pmsg_t pm;     /* MESSAGE: channel borrowed from ch, messages = msgs */
  size_t size;      /* msg_size total, for maxMessageSize */
  int64_t msg_serial;
  bool sent;
  sw_publish_cb cb;
  void *ud;
  sw_msg_t msgs[]; /* pm.n_messages of them, owned, in the same allocation */
} swc_pub_t;

/* ---- REST operations (rest.c) --------------------------------------------- */

enum { SWC_REST_TIME, SWC_REST_HISTORY, SWC_REST_TOKEN, SWC_REST_AUTH_EXCHANGE };

typedef struct swc_rest swc_rest_t;
struct swc_rest {
  swc_rest_t *prev, *next; /* in c->rest_ops */
  sw_client_t *c;
  int kind;
  char *method, *target;
  uint8_t *body;
  size_t body_len;
  bool needs_auth;
  bool retried;       /* already renewed the token once for this request (RSA4b) */
  bool waiting_token;
  swc_http_t *http;
  void *cb, *ud;
  char *history_base; /* "/channels/<enc>/" for resolving Link targets */
};

/* ---- auth (auth.c) --------------------------------------------------------- */

struct sw_auth_request {
  sw_client_t *c; /* NULL once the client no longer waits for it */
  char *client_id;
};

/* ---- the client ------------------------------------------------------------ */

struct sw_client {
  /* What every received frame and every publish touches comes first and
   * together: with thousands of connections, a client is cold in the cache
   * when its frame arrives, and each further cache line costs a miss. */
  uv_loop_t *loop;
  swc_ws_t *ws;
  sw_channel_t *channels; /* by name (uthash) */
  sw_channel_t *rx_ch;    /* the channel of the last MESSAGE, tried before the hash; or NULL
                           * (always one in the table: see unlink_channel) */
  /* publishes: queued (not sent) and pending (sent, awaiting ACK), in order */
  swc_pub_t *q_head, *q_tail, *p_head, *p_tail;
  uint64_t last_activity; /* uv_now of the last byte received (RTN23a) */
  int64_t msg_serial;
  int64_t max_message_size;
  uint64_t id_counter;
  sw_conn_state_t state;
  sw_format_t fmt;
  bool freeing;
  bool ws_connected; /* CONNECTED received on this transport */
  bool idempotent, queue_messages;

  /* options (owned copies) */
  char *host;
  int port;
  struct sockaddr_storage local; /* options.local_address, parsed (port 0) */
  socklen_t local_len;           /* 0: none */
  SSL_CTX *tls_ctx;              /* options.tls: owned; NULL for plain TCP */
  char *key, *key_name, *key_secret;
  char *token_opt;
  sw_auth_cb auth_cb;
  void *auth_ud;
  bool use_token_auth;
  char *client_id_opt;
  bool echo;
  sw_state_cb on_state;
  void *state_ud;
  int64_t t_request, t_http, t_disc_retry, t_susp_retry, t_chan_retry, state_ttl_opt;
  sw_log_cb log_cb;
  void *log_ud;
  int log_level;

  /* loop and lifetime */
  bool own_loop;
  int handles;   /* open uv handles embedded here; freed when 0 after freeing */
  int in_run;
  uv_timer_t t_conn;  /* connect timeout, retry, close timeout (by state) */
  uv_timer_t t_idle;  /* RTN23a */
  uv_timer_t t_auth;  /* renewal before expiry; auth request timeout while pending */
  uv_timer_t t_chan;  /* channel deadlines */
  uv_timer_t t_defer; /* deferred callbacks */
  uv_timer_t t_stop;  /* sw_client_run_for */

  /* connection */
  sw_errinfo_t reason;
  bool has_reason;
  char *conn_id, *conn_key, *server_client_id;
  int64_t max_idle_ms, state_ttl_ms;
  int retry_count;
  uint64_t disconnected_at; /* uv_now of the first loss, 0 when connected */

  /* auth */
  bool token_mode;   /* realtime and REST use tokens (not the key itself) */
  char *token;
  int64_t token_issued, token_expires; /* ms since the epoch; 0 unknown */
  bool auth_pending; /* callback or TokenRequest exchange in flight */
  uint64_t auth_gen; /* counts auth attempts: stale results are dropped */
  sw_auth_request_t *auth_req;
  swc_rest_t *auth_exchange;
  bool token_retried; /* renewed once after a token error; a second one backs off (RTN14b, RTN15h2) */

  char id_prefix[16]; /* of message ids (RSL1k1) */
  swc_rest_t *rest_ops;
  swc_call_t *defer_head, *defer_tail;
};

/* client.c */
void swc_set_error(sw_errinfo_t *e, int code, int status, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void swc_err_from(sw_errinfo_t *dst, const sw_error_t *src);
int swc_status_for(int code);
void swc_log(sw_client_t *c, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int swc_send_pmsg(sw_client_t *c, const sw_pmsg_t *m);
void swc_handle_close(uv_handle_t *h); /* close callback for embedded handles */
void swc_open_transport(sw_client_t *c);
/* The client's endpoint (host, port, local address, TLS); borrows from c. */
void swc_client_endpoint(const sw_client_t *c, swc_endpoint_t *ep);
void swc_connect_attempt(sw_client_t *c);
void swc_connection_failed_attempt(sw_client_t *c, const sw_errinfo_t *reason);
void swc_emit_update(sw_client_t *c, const sw_errinfo_t *reason);
bool swc_is_token_error(const sw_errinfo_t *e);
uint64_t swc_backoff_ms(int64_t base, int retry);

/* auth.c */
bool swc_auth_renewable(const sw_client_t *c);
bool swc_token_usable(const sw_client_t *c);
void swc_auth_start(sw_client_t *c, bool in_band);
void swc_auth_cancel(sw_client_t *c);
void swc_auth_on_timer(sw_client_t *c);
void swc_auth_schedule_renewal(sw_client_t *c);
void swc_auth_token_result(sw_client_t *c, const char *token, int64_t issued, int64_t expires,
                           const sw_errinfo_t *err);
int swc_parse_key(const char *key, char **name, char **secret);
/* iat and exp of a JWT (ms; untouched when tok is not a readable JWT). */
void swc_token_times(const char *tok, int64_t *issued, int64_t *expires);
/* REST Authorization header line for the current credentials into out, or
 * nothing when none applies. */
int swc_auth_header(sw_client_t *c, sw_buf_t *out);

/* channel.c */
void swc_channel_ref(sw_channel_t *ch);
void swc_channel_unref(sw_channel_t *ch);
void swc_channels_on_connected(sw_client_t *c);
void swc_channels_on_conn_state(sw_client_t *c, sw_conn_state_t s, const sw_errinfo_t *reason);
void swc_channel_on_pmsg(sw_client_t *c, const swc_rx_pmsg_t *m);
void swc_channels_timer(sw_client_t *c);
void swc_channels_free(sw_client_t *c);
void swc_pubs_on_ack(sw_client_t *c, const sw_pmsg_t *m, bool nack);
void swc_pubs_send_all(sw_client_t *c, bool resumed);
void swc_pubs_fail_all(sw_client_t *c, const sw_errinfo_t *err);
void swc_pubs_free_all(sw_client_t *c);

/* rest.c */
swc_rest_t *swc_rest_new(sw_client_t *c, int kind, const char *method, const char *target, bool needs_auth);
/* Starts r, or queues it behind a token; SW_OK, or SW_ENOMEM (r freed). */
int swc_rest_submit(swc_rest_t *r);
void swc_rest_on_token(sw_client_t *c, const sw_errinfo_t *err); /* wakes requests waiting for a token */
void swc_rest_cancel_all(sw_client_t *c);
void swc_rest_free(swc_rest_t *r);
/* The Ably error in a failed response (body, X-Ably-ErrorCode, or status). */
void swc_rest_error(sw_client_t *c, int rc, const swc_http_resp_t *resp, sw_errinfo_t *err);
int swc_rest_exchange_token_request(sw_client_t *c, const char *key_name, const char *body);

/* util.c */
int swc_random(void *p, size_t n);
char *swc_strdup(const char *s); /* NULL-safe */
void swc_defer_run_all(sw_client_t *c);
void swc_defer_drop_all(sw_client_t *c);
/* TM2a: a message without an id gets "<ProtocolMessage id>:<index>" when that
 * id has at most this many bytes. Every such message repeats the whole id,
 * so a longer one (no server sends one) would make a frame's messages cost
 * up to 1000 times its size; their id stays NULL. */
#define SWC_MAX_SYNTH_ID 1024
/* What a synthesised id needs: the id, ':', an index, NUL. */
#define SWC_SYNTH_ID_CAP(id_len) ((id_len) + 22)

/* A public view of m (from a MESSAGE pm, or NULL for history); *extras gets
 * one malloc'd block holding the extras and version JSON texts, which the
 * caller frees; idbuf (idcap bytes, SWC_SYNTH_ID_CAP of pm's id) holds a
 * synthesised id (SWC_MAX_SYNTH_ID). */
void swc_message_view(const sw_msg_t *m, const sw_pmsg_t *pm, size_t index, sw_message_t *out, char **extras,
                      char *idbuf, size_t idcap);
/* A deep copy of a public message into m (zeroed first). SW_EINVAL or SW_ENOMEM. */
int swc_message_import(const sw_message_t *in, sw_msg_t *m);
int64_t swc_now_ms(void);
/* Percent-encodes s into out (RFC 3986 unreserved kept). */
int swc_url_encode(sw_buf_t *out, const char *s);

#endif
