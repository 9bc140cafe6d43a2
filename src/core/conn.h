/* conn.h: an Ably realtime connection (RTN*), independent of the transport
 * that currently carries it.
 *
 * A connection outlives its WebSocket: when the socket is lost the
 * connection stays resumable for connectionStateTtl (RTN15), keeping its
 * attachments, and a new socket with resume=<connectionKey> takes it over.
 * Attachments stop delivering while no transport is bound and until the
 * client re-attaches on the new one; the re-attach replays from storage
 * what the client missed (by channelSerial), so nothing is queued per
 * connection. */
#ifndef SW_CORE_CONN_H
#define SW_CORE_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include "util/hash.h"

#include "auth/capability.h"
#include "core/app.h"
#include "core/principal.h"
#include "proto/codec.h"

typedef struct sw_server sw_server_t;
typedef struct sw_sock sw_sock_t;
typedef struct sw_attach sw_attach_t;
typedef struct sw_frame sw_frame_t;

#define SW_CONN_ID_LEN 20
#define SW_ACK_MEMORY 256 /* answered outcomes kept to answer resends (RTN19a2) */
/* The largest msgSerial: ably-js counts in a JavaScript number, exact up to
 * 2^53 - 1, and the server's counter must never overflow. */
#define SW_MAX_MSG_SERIAL 9007199254740991LL

/* The outcome of published ProtocolMessages. ACKs and NACKs must reach the
 * client in msgSerial order (ably-js completes every queued message up to
 * an ACK's serial), so outcomes wait here until all earlier ones are known,
 * and stay a while after to answer resends after a resume.
 *
 * An entry answers msgSerials serial .. serial + count - 1. A client may
 * skip msgSerials (recover continues its numbering), and a skipped run has
 * no entry at all: entries are kept in msgSerial order, not one per serial,
 * so a gap costs nothing. count is 1, except for publishes refused because
 * too many were unanswered (maxPendingPublishes), which share one entry and
 * one NACK while they are consecutive. */
typedef struct sw_ack_memo {
  int64_t serial;
  int64_t count;
  bool done;       /* durable (or failed) */
  bool refused;    /* a run refused over maxPendingPublishes */
  /* An ACK's one serial, when it fits (serials NULL, n_serials 1): a
   * publish of one message costs no allocation here (conn.c, memo_keep_serials). */
  char one[17];
  sw_error_t *err; /* owned; NULL = acked */
  char **serials;  /* owned */
  size_t n_serials;
} sw_ack_memo_t;

/* A connection's attachments, in the order they were made. An entry holds
 * the channel beside its attachment, so a lookup scans contiguous channel
 * pointers (at most maxChannelsPerConnection: Ably's 200) without touching
 * the attachments. One attachment, the common case, is held inline: an idle
 * connection with one channel costs no table at all (a uthash table with
 * its buckets was 160 bytes, and its handle 56 more in every attachment).
 * The inline one is the attachment alone: its channel is a->ch. */
typedef struct sw_attach_ref {
  struct sw_channel *ch;
  sw_attach_t *a;
} sw_attach_ref_t;

typedef struct sw_conn_map sw_conn_map_t; /* core/server.h */
/* Room for one more connection: 0, or -1 on OOM. */
int conn_map_reserve(sw_conn_map_t *m);
void conn_map_free(sw_conn_map_t *m);

typedef struct sw_conn {
  /* Ordered so that there are no holes: an idle connection is mostly this
   * struct and its socket. */
  char id[SW_CONN_ID_LEN + 1];
  /* The connectionKey, the resume credential, is "<id>!<secret>": only the
   * secret is kept (conn_key() writes the whole key). */
  char secret[17];
  bool reauth_sent : 1; /* server-requested AUTH sent, or not due (adopted near expiry), for the current token */
  bool echo : 1;
  bool heartbeats : 1;
  bool presence_left : 1;    /* its presence members have left, for the current loss */
  bool client_id_shared : 1; /* client_id is auth.client_id's string, not a copy (conn.c) */
  /* Taken over from another node of a cluster (core/shared.h): its first
   * publishes may be resends (RTN19a) of ones that node stored without
   * answering, looked for in the channel's log first (conn.c,
   * resend_check) until one is not there; resend_checks are in flight. */
  bool taken_over : 1;
  uint16_t resend_checks;
  /* Its presence members leave this long after the transport is lost (the
   * remainPresentFor param, clamped to 2^32 - 1 ms, 49 days: longer than
   * any connection stays resumable). Here, in the hole after the strings. */
  uint32_t remain_present_ms;
  sw_server_t *srv;
  sw_sock_t *sock; /* current transport or NULL */
  sw_app_t *app;     /* == auth.app; an app is never freed while running */
  sw_principal_t auth; /* current credentials (replaced by AUTH, RTC8) */
  char *client_id;  /* the connection's identity (CD2a): NULL anonymous, "*" wildcard;
                       never changes once set */
  sw_format_t fmt;
  int append_rollup_ms; /* the appendRollupWindow transport param (core/rollup.h) */
  int64_t next_msg_serial; /* the msgSerial the next new publish must carry */
  /* ring in msgSerial order: memo[(memo_head + i) % memo_cap], i < memo_len
   * (bounded far below 2^32: SW_ACK_MEMORY + 2 * maxPendingPublishes + 2) */
  sw_ack_memo_t *memo;
  uint32_t memo_head, memo_len, memo_cap;
  uint32_t memo_answered;   /* the first memo_answered entries have been answered */
  uint32_t memo_pending;    /* accepted publishes not answered yet (<= maxPendingPublishes) */
  uint32_t n_att, att_cap;  /* see sw_attach_ref_t and the conn_attachment* functions */
  uint32_t n_presence;      /* presence members this connection entered, on all channels (<= maxPresenceMembersPerConnection) */
  union {
    sw_attach_t *one;      /* att_cap <= 1 (its channel: one->ch) */
    sw_attach_ref_t *many; /* att_cap > 1 (malloc'd) */
  } att;
  int64_t lost_at;          /* ms when the transport was lost; 0 while bound */
  uint64_t last_tx;         /* loop ms of the last frame sent */
} sw_conn_t;

/* c's attachments: the i-th (i < c->n_att), in the order they were made;
 * the one to channel ch, or NULL; add (0, or -1 on OOM: not added) and
 * remove (order kept). */
static inline sw_attach_t *conn_attachment_at(const sw_conn_t *c, uint32_t i) {
  return c->att_cap <= 1 ? c->att.one : c->att.many[i].a;
}
sw_attach_t *conn_attachment(const sw_conn_t *c, const struct sw_channel *ch);
int conn_attachment_add(sw_conn_t *c, struct sw_channel *ch, sw_attach_t *a);
void conn_attachment_remove(sw_conn_t *c, const sw_attach_t *a);

/* Handles a WebSocket upgrade request on GET / (RTN2): authenticates,
 * creates or resumes a connection and sends CONNECTED, or sends ERROR and
 * closes. The 101 response has already been written. */
struct sw_http_req;
void conn_on_upgrade(sw_sock_t *s, const struct sw_http_req *req);
/* Extracts and checks credentials from a WebSocket upgrade (key, access_token
 * or accessToken, or the configured cookie). 0 or -1 with err. */
int conn_credentials(sw_sock_t *s, const struct sw_http_req *req, sw_principal_t *p, sw_error_t *err);
/* Is Basic (key) auth allowed on this socket (the basicOverHttp switch)? */
bool conn_basic_allowed(const sw_sock_t *s, sw_error_t *err);
/* One complete WebSocket data message from the client. */
void conn_on_ws_message(sw_conn_t *c, const uint8_t *p, size_t n, bool is_text);
/* The socket's outbound bound was hit: DISCONNECTED with 42916 goes out
 * past the bound; the socket is then closed and the connection resumable. */
void conn_on_slow_consumer(sw_conn_t *c);
/* The socket's output queue drained below its low-water mark after a
 * replay asked for it (sock.c): the connection's replays continue. */
void conn_on_drain(sw_conn_t *c);
/* The transport went away (socket closed by either side). */
void conn_on_transport_lost(sw_conn_t *c);

/* Encodes m in c's format and sends it as one WebSocket frame. */
int conn_send_pmsg(sw_conn_t *c, const sw_pmsg_t *m);
/* Sends a shared, already encoded frame (fan-out). */
void conn_send_frame(sw_conn_t *c, sw_frame_t *f);
/* Sends a connection-level ERROR, or DISCONNECTED when disconnected is set,
 * and closes the transport. */
void conn_fail(sw_conn_t *c, int code, const char *msg, bool disconnected);
/* Sends an ERROR or NACK etc.: channel-level error (channel set) fails only that channel. */
void conn_send_channel_error(sw_conn_t *c, const char *channel, const sw_error_t *e);

/* Completes publish msg_serial (called when it is durable or failed);
 * serials are copied. */
void conn_publish_done(sw_conn_t *c, int64_t msg_serial, const sw_error_t *err, char **serials,
                       size_t n);
/* One WebSocket frame holding m encoded in fmt; NULL on OOM. */
sw_frame_t *pmsg_frame(sw_format_t fmt, const sw_pmsg_t *m);

/* Once-a-second housekeeping: heartbeats, expiry of lost connections. */
void conn_tick(sw_server_t *srv, uint64_t now_loop, int64_t now_ms);
/* Destroys a connection: detaches everything, forgets it (no resume). */
void conn_destroy(sw_conn_t *c);
sw_conn_t *conn_find(sw_server_t *srv, const char *id);
/* The live (or resumable) connection of app whose connectionKey is key,
 * compared in constant time; NULL if none. */
sw_conn_t *conn_find_by_key(sw_server_t *srv, const char *key, const sw_app_t *app);

#endif
