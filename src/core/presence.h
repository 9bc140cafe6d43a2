/* presence.h: channel presence (RTP*): the member set, ENTER/UPDATE/LEAVE
 * from clients, SYNC to attaching clients, LEAVE when a member's connection
 * detaches or ends, and presence history.
 *
 * Members are keyed by memberKey = connectionId ":" clientId (RTP2). Events
 * are made durable (presence history) before they are broadcast and ACKed,
 * like messages. */
#ifndef SW_CORE_PRESENCE_H
#define SW_CORE_PRESENCE_H

#include <stdbool.h>
#include <stdint.h>
#include "util/hash.h"

#include "proto/pmsg.h"

typedef struct sw_channel sw_channel_t;
typedef struct sw_conn sw_conn_t;
typedef struct sw_attach sw_attach_t;

/* TP2 presence actions. */
enum { SW_PRESENCE_ABSENT = 0, SW_PRESENCE_PRESENT, SW_PRESENCE_ENTER, SW_PRESENCE_LEAVE, SW_PRESENCE_UPDATE };

/* SYNC pages carry at most this many members (RTP18). */
#define SW_PRESENCE_SYNC_PAGE 100

typedef struct sw_member {
  char *key;       /* memberKey */
  sw_presence_t p; /* the member as PRESENT, owned */
  bool remote;     /* a member of another node's connection (a shared bus) */
  bool mark;       /* scratch: seen in a snapshot (presence_bus_members) */
  UT_hash_handle hh;
} sw_member_t;

/* Applies a PRESENCE ProtocolMessage from c: capability (presence, 40160),
 * a concrete clientId (91000), identified namespaces (40161); stamps ids,
 * connectionId and timestamps; updates the set; persists; then broadcasts
 * and answers msgSerial through conn_publish_done. Returns 0, or -1 with err
 * when nothing was applied (the caller answers with NACK). m's presence
 * array is consumed. */
int presence_publish(sw_channel_t *ch, sw_conn_t *c, sw_pmsg_t *m, sw_error_t *err);
/* Sends the member set to a newly attached client as SYNC pages. */
void presence_sync(sw_channel_t *ch, sw_attach_t *a);
/* The same on the client's request (a SYNC from ably-js's channel.sync()):
 * also when the set is empty (one empty SYNC page), since the client waits
 * for its end. */
void presence_sync_requested(sw_channel_t *ch, sw_attach_t *a);
/* LEAVEs every member entered by connection conn_id on ch (detach, end of
 * connection). */
size_t presence_leave_conn(sw_channel_t *ch, const char *conn_id); /* how many left */
/* Members from the app spec's channel fixtures (test-app-setup.json). The
 * first load of a channel also records their ENTERs in presence history. */
void presence_load_fixtures(sw_channel_t *ch);
/* Loads every fixture channel of a new app (POST /apps), so that their
 * ENTERs are submitted to storage before the app is answered. */
typedef struct sw_server sw_server_t;
typedef struct sw_app sw_app_t;
void presence_load_app_fixtures(sw_server_t *srv, sw_app_t *app);
/* The store channel key under which ch's presence history is kept. */
void presence_history_key(const sw_channel_t *ch, char *out, size_t cap);
void presence_free(sw_channel_t *ch);

/* A shared bus (core/bus.h, side events): another node's presence event
 * (a PRESENCE ProtocolMessage, msgpack), applied to the set and delivered
 * to this node's presence subscribers. */
void presence_bus_event(sw_channel_t *ch, const uint8_t *payload, size_t len);
/* The bus's members(): snapshot, the other nodes' members now (replacing
 * those known); else members of a lapsed node, removed: they LEAVE. */
struct sw_bus_member;
void presence_bus_members(sw_channel_t *ch, const struct sw_bus_member *m, size_t n, bool snapshot);
/* One member of a shared set, decoded into ev (owned: presence_clear). 0 or -1. */
int presence_member_decode(const struct sw_bus_member *bm, sw_presence_t *ev);
/* The bus is up (again): this node's members are written to the shared
 * set again and announced (as PRESENT). */
void presence_bus_resync(sw_server_t *srv);

#endif
