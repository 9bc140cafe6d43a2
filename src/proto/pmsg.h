/* pmsg.h: the Ably protocol data model (ProtocolMessage TR*, Message TM*,
 * PresenceMessage TP*, ConnectionDetails CD*, ErrorInfo TI*).
 *
 * Every string and byte field is NUL-terminated and owned by the struct that
 * holds it (malloc'd); NULL means "absent". pmsg_free()/msg_clear()/
 * presence_clear() release everything. json_t fields hold one reference each.
 *
 * Payload data is kept in one canonical form whatever the wire format: a
 * string, or raw bytes. Decoders turn a JSON-protocol payload whose encoding
 * ends in "base64" into bytes and drop that last encoding step; encoders for
 * the JSON format turn bytes back into base64 and append "base64" to the
 * encoding (RSL4d1), the msgpack encoder writes bytes as bin (RSL4c1). A
 * JSON object or array given as data is stored as its compact JSON text with
 * "json" appended to the encoding (RSL4c3). */
#ifndef SW_PROTO_PMSG_H
#define SW_PROTO_PMSG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/errors.h"

/* TR2 actions. */
enum {
  SW_ACTION_HEARTBEAT = 0,
  SW_ACTION_ACK = 1,
  SW_ACTION_NACK = 2,
  SW_ACTION_CONNECT = 3,
  SW_ACTION_CONNECTED = 4,
  SW_ACTION_DISCONNECT = 5,
  SW_ACTION_DISCONNECTED = 6,
  SW_ACTION_CLOSE = 7,
  SW_ACTION_CLOSED = 8,
  SW_ACTION_ERROR = 9,
  SW_ACTION_ATTACH = 10,
  SW_ACTION_ATTACHED = 11,
  SW_ACTION_DETACH = 12,
  SW_ACTION_DETACHED = 13,
  SW_ACTION_PRESENCE = 14,
  SW_ACTION_MESSAGE = 15,
  SW_ACTION_SYNC = 16,
  SW_ACTION_AUTH = 17,
  SW_ACTION_ACTIVATE = 18,
  SW_ACTION_OBJECT = 19,
  SW_ACTION_OBJECT_SYNC = 20,
  SW_ACTION_ANNOTATION = 21,
  SW_ACTION_MAX = 21,
};

/* TR3 flags. */
enum {
  SW_FLAG_HAS_PRESENCE = 1 << 0,
  SW_FLAG_HAS_BACKLOG = 1 << 1,
  SW_FLAG_RESUMED = 1 << 2,
  SW_FLAG_TRANSIENT = 1 << 4,
  SW_FLAG_ATTACH_RESUME = 1 << 5,
  SW_FLAG_HAS_OBJECTS = 1 << 7,
  SW_MODE_PRESENCE = 1 << 16,
  SW_MODE_PUBLISH = 1 << 17,
  SW_MODE_SUBSCRIBE = 1 << 18,
  SW_MODE_PRESENCE_SUBSCRIBE = 1 << 19,
  SW_MODE_ANNOTATION_PUBLISH = 1 << 21,
  SW_MODE_ANNOTATION_SUBSCRIBE = 1 << 22,
  SW_MODE_OBJECT_SUBSCRIBE = 1 << 24,
  SW_MODE_OBJECT_PUBLISH = 1 << 25,
  SW_MODE_ALL = SW_MODE_PRESENCE | SW_MODE_PUBLISH | SW_MODE_SUBSCRIBE | SW_MODE_PRESENCE_SUBSCRIBE |
                SW_MODE_ANNOTATION_PUBLISH | SW_MODE_ANNOTATION_SUBSCRIBE | SW_MODE_OBJECT_SUBSCRIBE |
                SW_MODE_OBJECT_PUBLISH,
};

typedef enum { SW_DATA_NONE = 0, SW_DATA_STRING, SW_DATA_BINARY } sw_data_kind_t;

typedef struct sw_data {
  sw_data_kind_t kind;
  uint8_t *bytes; /* NUL-terminated for convenience even when binary */
  size_t len;
  size_t cap;     /* bytes allocated when known to exceed len + 1 (a head
                     grown by appends); 0: exactly len + 1 */
} sw_data_t;

/* TM2: a Message. timestamp 0 = absent. action -1 = absent (TM5). */
typedef struct sw_msg {
  char *id;
  char *client_id;
  char *connection_id;
  char *connection_key; /* TM2h: only accepted inbound on REST */
  char *name;
  char *encoding;
  char *serial;
  int64_t timestamp;
  int action;
  sw_data_t data;
  json_t *extras; /* an object, or NULL */
  json_t *version; /* TM2s: object, passed through as-is, or NULL */
  /* TM2u: {"summary": {...}}, the message's annotation summary (TM8a),
   * set by the server only: read from stored heads, never from a client. */
  json_t *annotations;
  /* Annotation fields (TAN*): an annotation is carried as a message with
   * these set; action 0 annotation.create, 1 annotation.delete. */
  char *message_serial; /* the annotated message's serial */
  char *type;
  int64_t count;
  bool has_count;
} sw_msg_t;

/* TP3: a PresenceMessage. action is TP2 (0 absent, 1 present, 2 enter, 3 leave, 4 update). */
typedef struct sw_presence {
  int action;
  char *id;
  char *client_id;
  char *connection_id;
  char *encoding;
  int64_t timestamp;
  sw_data_t data;
  json_t *extras;
} sw_presence_t;

/* CD2: ConnectionDetails (outbound only). */
typedef struct sw_conn_details {
  const char *client_id; /* borrowed */
  const char *connection_key; /* borrowed */
  int64_t max_message_size;
  int64_t max_frame_size;
  int64_t max_inbound_rate;
  int64_t connection_state_ttl;
  int64_t max_idle_interval;
  const char *server_id; /* borrowed */
} sw_conn_details_t;

/* One entry of ACK.res (a PublishResult): the serials of one ProtocolMessage's
 * messages, NULL entries for messages discarded as duplicates. */
typedef struct sw_publish_result {
  char **serials;
  size_t n_serials;
} sw_publish_result_t;

/* TR4: a ProtocolMessage. Presence of optional integer fields is tracked by
 * the has_* flags. */
typedef struct sw_pmsg {
  int action;
  int64_t flags;
  bool has_flags;
  int64_t count;
  bool has_count;
  int64_t msg_serial;
  bool has_msg_serial;
  int64_t timestamp; /* 0 = absent */
  char *id;
  char *channel;
  char *channel_serial;
  char *connection_id;
  char *connection_key; /* legacy top-level field, decode only */
  sw_error_t error;     /* error.code == 0: absent */
  json_t *params;       /* TR4q: object of string values, or NULL */
  char *auth_access_token; /* TR4s AuthDetails.accessToken, or NULL */
  sw_conn_details_t *connection_details; /* encode only; borrowed, not freed */
  sw_msg_t *messages;
  size_t n_messages;
  sw_presence_t *presence;
  size_t n_presence;
  sw_msg_t *annotations; /* ANNOTATION (TR4? annotations), see sw_msg_t */
  size_t n_annotations;
  sw_publish_result_t *res; /* ACK only */
  size_t n_res;
} sw_pmsg_t;

void data_clear(sw_data_t *d);
void msg_clear(sw_msg_t *m);
void presence_clear(sw_presence_t *p);
/* Releases everything p owns and zeroes it. NULL-safe. */
void pmsg_free(sw_pmsg_t *p);

/* Deep copy of a message; returns 0 or -ENOMEM (dst left zeroed on failure). */
int msg_copy(sw_msg_t *dst, const sw_msg_t *src);

/* Deep copy of a presence message; 0 or -ENOMEM (dst left zeroed). */
int presence_copy(sw_presence_t *dst, const sw_presence_t *src);

/* Approximate size of a message for the maxMessageSize check (TO3l8):
 * name + clientId + data bytes + extras as JSON. */
size_t msg_size(const sw_msg_t *m);

#endif
