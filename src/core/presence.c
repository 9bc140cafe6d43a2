#include "core/presence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/channel_name.h"
#include "core/app.h"
#include "core/bus.h"
#include "core/channel.h"
#include "core/conn.h"
#include "core/server.h"
#include "proto/codec.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"

void presence_history_key(const sw_channel_t *ch, char *out, size_t cap) {
  /* Channel names cannot contain control characters, so this never
   * collides with a real channel. */
  snprintf(out, cap, "\x01presence\x01%s", ch->name);
}

static char *member_key(const char *conn_id, const char *client_id) {
  size_t n = strlen(conn_id) + 1 + strlen(client_id) + 1;
  char *k = malloc(n);
  if (k) snprintf(k, n, "%s:%s", conn_id, client_id);
  return k;
}

static void member_free(sw_member_t *mb) {
  presence_clear(&mb->p);
  free(mb->key);
  free(mb);
}

/* Counts the members a connection holds, over all its channels
 * (maxPresenceMembersPerConnection). Fixture members belong to none. */
static void count_member(sw_channel_t *ch, const char *conn_id, int delta) {
  sw_conn_t *c = conn_id ? conn_find(ch->srv, conn_id) : NULL;
  if (c) c->n_presence = delta > 0 ? c->n_presence + 1 : c->n_presence - 1;
}

static void member_unlink(sw_channel_t *ch, sw_member_t *mb) {
  HASH_DEL(ch->members, mb);
  ch->n_members--;
  if (mb->remote) ch->n_remote_members--;
  else count_member(ch, mb->p.connection_id, -1);
  member_free(mb);
}

/* Applies one event to the set (RTP2: ENTER/UPDATE/PRESENT replace, LEAVE
 * removes); remote: of another node's connection (a shared bus). Returns
 * the member (NULL when it left). */
static sw_member_t *apply_ex(sw_channel_t *ch, const sw_presence_t *ev, bool remote) {
  if (!ev->connection_id || !ev->client_id) return NULL;
  char *key = member_key(ev->connection_id, ev->client_id);
  if (!key) return NULL;
  sw_member_t *mb = NULL;
  HASH_FIND_STR(ch->members, key, mb);
  if (ev->action == SW_PRESENCE_LEAVE) {
    if (mb) member_unlink(ch, mb);
    free(key);
    return NULL;
  }
  if (mb) {
    presence_clear(&mb->p);
    free(key);
  } else {
    if (!(mb = calloc(1, sizeof *mb))) {
      free(key);
      return NULL;
    }
    mb->key = key;
    mb->remote = remote;
    HASH_ADD_KEYPTR(hh, ch->members, mb->key, strlen(mb->key), mb);
    ch->n_members++;
    if (remote) ch->n_remote_members++;
    else count_member(ch, ev->connection_id, +1);
  }
  if (presence_copy(&mb->p, ev) == 0) mb->p.action = SW_PRESENCE_PRESENT;
  return mb;
}

static void apply(sw_channel_t *ch, const sw_presence_t *ev) {
  apply_ex(ch, ev, false);
}

typedef struct presence_pub {
  sw_channel_t *ch;
  sw_presence_t *events; /* owned */
  size_t n;
  char conn_id[SW_CONN_ID_LEN + 1]; /* "" for server-made leaves */
  int64_t msg_serial;
  bool quiet; /* history only: not broadcast (fixture members) */
  int announce; /* a shared bus: ANN_* */
} presence_pub_t;

/* What a shared bus is told of an event once it is stored: nothing
 * (fixtures: every node loads its own), or the event with the member
 * changes (HSET of present members, HDEL of those that left). */
enum { ANN_NONE, ANN_MEMBERS };

/* One member as the shared set keeps it: a one-member PRESENCE
 * ProtocolMessage, msgpack, the member as PRESENT. */
static int member_blob(const sw_presence_t *ev, sw_buf_t *out) {
  sw_presence_t one = *ev; /* shallow */
  one.action = SW_PRESENCE_PRESENT;
  sw_pmsg_t m = {.action = SW_ACTION_PRESENCE, .presence = &one, .n_presence = 1};
  return codec_encode_pmsg(SW_FMT_MSGPACK, &m, out);
}

/* Tells the other nodes (core/bus.h, side events). Best effort: while the
 * shared store is down the event stays on this node. */
static void announce(sw_channel_t *ch, const sw_pmsg_t *m, int how) {
  sw_bus_t *bus = ch->srv->bus;
  if (how == ANN_NONE || !bus || !bus_shared(bus)) return;
  size_t n = how == ANN_MEMBERS ? m->n_presence : 0;
  sw_bus_member_t *ops = n ? calloc(n, sizeof *ops) : NULL;
  size_t *offs = n ? calloc(n + 1, sizeof *offs) : NULL;
  char **keys = n ? calloc(n, sizeof *keys) : NULL;
  sw_buf_t blobs = {0}, payload = {0};
  if (n && (!ops || !offs || !keys)) goto out;
  for (size_t i = 0; i < n; i++) {
    const sw_presence_t *ev = &m->presence[i];
    offs[i] = blobs.len;
    if (!(keys[i] = member_key(ev->connection_id, ev->client_id))) goto out;
    if (ev->action != SW_PRESENCE_LEAVE && member_blob(ev, &blobs)) goto out;
  }
  if (n) offs[n] = blobs.len;
  for (size_t i = 0; i < n; i++) {
    bool gone = m->presence[i].action == SW_PRESENCE_LEAVE;
    ops[i] = (sw_bus_member_t){keys[i], gone ? NULL : blobs.data + offs[i], offs[i + 1] - offs[i]};
    if (!gone && !ops[i].blob) ops[i].blob = (const uint8_t *)""; /* not reached: a blob is never empty */
  }
  if (codec_encode_pmsg(SW_FMT_MSGPACK, m, &payload) == 0 &&
      bus_announce(bus, ch->app->id, ch->name, SW_BUS_SIDE_PRESENCE, payload.data, payload.len, ops, n))
    log_warn("presence on %s not shared: the shared store is unreachable", ch->name);
out:
  for (size_t i = 0; keys && i < n; i++) free(keys[i]);
  free(keys);
  free(ops);
  free(offs);
  buf_free(&blobs);
  buf_free(&payload);
}

static void pub_free(presence_pub_t *p) {
  for (size_t i = 0; i < p->n; i++) presence_clear(&p->events[i]);
  free(p->events);
  free(p);
}

static void on_stored(void *ud, int status) {
  presence_pub_t *p = ud;
  sw_channel_t *ch = p->ch;
  ch->pending--;
  sw_error_t err = {0};
  if (status == 0 && !p->quiet) {
    sw_pmsg_t m = {.action = SW_ACTION_PRESENCE,
                   .channel = (char *)ch->name,
                   .timestamp = p->events[0].timestamp,
                   .presence = p->events,
                   .n_presence = p->n};
    if (p->conn_id[0]) m.connection_id = p->conn_id;
    /* Presence is echoed to its own connection too: ably-js keeps its own
     * members from these events (RTP17). */
    channel_broadcast(ch, &m, SW_MODE_PRESENCE_SUBSCRIBE, NULL);
    announce(ch, &m, p->announce);
  } else if (status) {
    errors_set(&err, SW_E_INTERNAL, "presence could not be stored");
    log_error("presence storage failed on %s: %d", ch->name, status);
  }
  if (p->conn_id[0]) {
    sw_conn_t *c = conn_find(ch->srv, p->conn_id);
    if (c) conn_publish_done(c, p->msg_serial, status ? &err : NULL, NULL, 0);
  }
  pub_free(p);
}

/* Persists events (ownership moves to the store path) and broadcasts them
 * when durable, unless quiet. */
static int persist(sw_channel_t *ch, sw_presence_t *events, size_t n, const char *conn_id, int64_t msg_serial,
                   bool quiet, int how) {
  sw_server_t *srv = ch->srv;
  presence_pub_t *p = calloc(1, sizeof *p);
  sw_store_rec_t *recs = calloc(n ? n : 1, sizeof *recs);
  sw_buf_t blobs = {0};
  size_t *offs = calloc(n + 1, sizeof *offs);
  char key[1100];
  int rc = -1;
  /* After shutdown (storage closed) leaves are not recorded. */
  if (!p || !recs || !offs || !srv->store) goto out;
  p->ch = ch;
  p->events = events;
  p->n = n;
  p->msg_serial = msg_serial;
  p->quiet = quiet;
  p->announce = how;
  if (conn_id) snprintf(p->conn_id, sizeof p->conn_id, "%s", conn_id);
  events = NULL;
  presence_history_key(ch, key, sizeof key);
  if (ch->presence_seq < 0 && store_last_seq(srv->store, ch->app->id, key, &ch->presence_seq)) ch->presence_seq = 0;
  if (ch->presence_seq < 0) ch->presence_seq = 0;
  int64_t now = clock_now_ms();
  for (size_t i = 0; i < n; i++) {
    /* The history blob is a one-member PRESENCE ProtocolMessage. */
    sw_pmsg_t one = {.action = SW_ACTION_PRESENCE, .presence = &p->events[i], .n_presence = 1};
    offs[i] = blobs.len;
    if (codec_encode_pmsg(SW_FMT_MSGPACK, &one, &blobs)) goto out;
    recs[i] = (sw_store_rec_t){.app_id = ch->app->id,
                               .channel = key,
                               .seq = ++ch->presence_seq,
                               .timestamp = p->events[i].timestamp,
                               .expires_at = now + ch->ns->retention_ms};
  }
  offs[n] = blobs.len;
  for (size_t i = 0; i < n; i++) {
    recs[i].blob = blobs.data + offs[i];
    recs[i].blob_len = offs[i + 1] - offs[i];
  }
  ch->pending++;
  if (store_submit(srv->store, recs, n, on_stored, p)) {
    ch->pending--;
    goto out;
  }
  p = NULL;
  rc = 0;
out:
  if (p) pub_free(p);
  if (events) {
    for (size_t i = 0; i < n; i++) presence_clear(&events[i]);
    free(events);
  }
  free(recs);
  free(offs);
  buf_free(&blobs);
  return rc;
}

/* Ably's "too many presence members" (91003, status 400). */
#define E_TOO_MANY_MEMBERS 91003

/* Bounds the member sets before they grow: maxPresenceMembers on a channel
 * (Ably's limit, 200, with Ably's message) and maxPresenceMembersPerConnection
 * over all the channels of one connection, since every member keeps its data
 * and a wildcard clientId can enter any number of them. An event for a
 * member not in the set yet counts as a new member; a batch that enters and
 * leaves the same clientId counts it too, which errs on the safe side. */
static int admit_members(sw_channel_t *ch, sw_conn_t *c, const sw_pmsg_t *m, sw_error_t *err) {
  const sw_limits_t *l = &ch->srv->cfg->limits;
  size_t fresh = 0;
  for (size_t i = 0; i < m->n_presence; i++) {
    const sw_presence_t *ev = &m->presence[i];
    if (ev->action == SW_PRESENCE_LEAVE) continue;
    char *key = member_key(c->id, ev->client_id);
    if (!key) return errors_set(err, SW_E_INTERNAL, "out of memory");
    sw_member_t *mb = NULL;
    HASH_FIND_STR(ch->members, key, mb);
    free(key);
    fresh += mb == NULL;
  }
  if (!fresh) return 0;
  if (ch->n_members + fresh > (size_t)l->max_presence_members)
    return errors_set(err, E_TOO_MANY_MEMBERS,
                      "Unable to enter member to presence channel; maximum number of %lld members exceeded",
                      (long long)l->max_presence_members);
  if (c->n_presence + fresh > (size_t)l->max_presence_per_connection)
    return errors_set(err, E_TOO_MANY_MEMBERS,
                      "Unable to enter member to presence channel; this connection already holds the maximum of "
                      "%lld presence members (maxPresenceMembersPerConnection)",
                      (long long)l->max_presence_per_connection);
  return 0;
}

int presence_publish(sw_channel_t *ch, sw_conn_t *c, sw_pmsg_t *m, sw_error_t *err) {
  if (!cap_allows(c->auth.cap, ch->name, SW_OP_PRESENCE))
    return errors_set(err, SW_E_CAPABILITY_DENIED, "presence denied; channel = %.200s", ch->name);
  sw_attach_t *a = conn_attachment(c, ch);
  if (!a) return errors_set(err, 91001, "unable to enter presence: channel %.200s is not attached", ch->name);
  if (!(a->modes & SW_MODE_PRESENCE))
    return errors_set(err, SW_E_MODE_NOT_REQUESTED, "channel attached without the presence mode");
  if (m->n_presence == 0) return errors_set(err, SW_E_BAD_REQUEST, "PRESENCE without presence messages");
  int64_t now = clock_now_ms();
  size_t total = 0;
  for (size_t i = 0; i < m->n_presence; i++) {
    sw_presence_t *ev = &m->presence[i];
    if (ev->action != SW_PRESENCE_ENTER && ev->action != SW_PRESENCE_UPDATE && ev->action != SW_PRESENCE_LEAVE &&
        ev->action != SW_PRESENCE_PRESENT)
      return errors_set(err, SW_E_BAD_REQUEST, "invalid presence action %d", ev->action);
    if (principal_check_message_client_id(&c->auth, c->client_id, &ev->client_id, err)) return -1;
    if (!ev->client_id) return errors_set(err, SW_E_PRESENCE_NO_CLIENT_ID, "unable to enter presence without a clientId");
    if (ch->ns->identified && (!c->client_id || strcmp(c->client_id, "*") == 0))
      return errors_set(err, 40161, "namespace %s requires an identified client", ch->ns->id);
    /* Members keep their extras too: they count, as for messages (TO3l8). */
    total += ev->data.len + strlen(ev->client_id);
    if (ev->extras) total += json_dumpb(ev->extras, NULL, 0, JSON_COMPACT);
    if (ev->action == SW_PRESENCE_PRESENT) ev->action = SW_PRESENCE_UPDATE;
    char id[96];
    snprintf(id, sizeof id, "%s:%lld:%zu", c->id, (long long)m->msg_serial, i);
    free(ev->id);
    ev->id = strdup(id);
    free(ev->connection_id);
    ev->connection_id = strdup(c->id);
    if (!ev->timestamp) ev->timestamp = now;
    if (ev->extras) json_object_del(ev->extras, "userClaim");
    json_t *claim = principal_channel_claim(&c->auth, ch->name);
    if (claim && (ev->extras || (ev->extras = json_object()))) json_object_set(ev->extras, "userClaim", claim);
  }
  if (total > (size_t)ch->srv->cfg->limits.max_message_size)
    return errors_set(err, SW_E_MESSAGE_TOO_LARGE, "presence data exceeds maxMessageSize");
  if (admit_members(ch, c, m, err)) return -1;
  for (size_t i = 0; i < m->n_presence; i++) apply(ch, &m->presence[i]);
  sw_presence_t *events = m->presence;
  size_t n = m->n_presence;
  m->presence = NULL;
  m->n_presence = 0;
  if (persist(ch, events, n, c->id, m->msg_serial, false, ANN_MEMBERS)) return errors_set(err, SW_E_INTERNAL, "presence could not be stored");
  return 0;
}

size_t presence_leave_conn(sw_channel_t *ch, const char *conn_id) {
  size_t n = 0;
  sw_member_t *mb, *tmp;
  HASH_ITER(hh, ch->members, mb, tmp) n += !mb->remote && mb->p.connection_id && strcmp(mb->p.connection_id, conn_id) == 0;
  if (!n) return 0;
  sw_presence_t *events = calloc(n, sizeof *events);
  if (!events) return 0;
  size_t i = 0;
  int64_t now = clock_now_ms();
  HASH_ITER(hh, ch->members, mb, tmp) {
    if (mb->remote || !mb->p.connection_id || strcmp(mb->p.connection_id, conn_id) != 0) continue;
    if (presence_copy(&events[i], &mb->p)) continue;
    /* A server-made LEAVE: its id does not start with the connectionId, so
     * SDKs order it by timestamp (RTP2b1). */
    char id[64], rnd[13];
    app_random_id(rnd, 12);
    snprintf(id, sizeof id, "leave-%s:0:0", rnd);
    free(events[i].id);
    events[i].id = strdup(id);
    events[i].action = SW_PRESENCE_LEAVE;
    events[i].timestamp = now;
    member_unlink(ch, mb);
    i++;
  }
  persist(ch, events, i, NULL, 0, false, ANN_MEMBERS);
  return i;
}

void presence_sync_requested(sw_channel_t *ch, sw_attach_t *a) {
  if (ch->n_members) {
    presence_sync(ch, a);
    return;
  }
  char sync_id[16], serial[64];
  app_random_id(sync_id, 8);
  snprintf(serial, sizeof serial, "%s:", sync_id);
  sw_pmsg_t m = {.action = SW_ACTION_SYNC,
                 .channel = attach_wire_name(a),
                 .channel_serial = serial};
  conn_send_pmsg(a->conn, &m);
}

void presence_sync(sw_channel_t *ch, sw_attach_t *a) {
  if (!ch->n_members) return;
  sw_presence_t *page = calloc(SW_PRESENCE_SYNC_PAGE, sizeof *page);
  if (!page) return;
  char sync_id[16], serial[64];
  app_random_id(sync_id, 8);
  size_t sent = 0, n = 0;
  sw_member_t *mb, *tmp;
  HASH_ITER(hh, ch->members, mb, tmp) {
    page[n++] = mb->p; /* shallow: the set keeps ownership */
    sent++;
    if (n == SW_PRESENCE_SYNC_PAGE || sent == ch->n_members) {
      /* RTP18: "<sync id>:<cursor>", an empty cursor ends the sync. */
      if (sent == ch->n_members) snprintf(serial, sizeof serial, "%s:", sync_id);
      else snprintf(serial, sizeof serial, "%s:%zu", sync_id, sent);
      sw_pmsg_t m = {.action = SW_ACTION_SYNC,
                     .channel = attach_wire_name(a),
                     .channel_serial = serial,
                     .presence = page,
                     .n_presence = n};
      conn_send_pmsg(a->conn, &m);
      n = 0;
    }
  }
  free(page);
}

/* True when ch's presence history never held an event (not even one
 * since pruned): the fixture members' ENTERs have not been recorded yet. */
static bool presence_history_unused(sw_channel_t *ch) {
  char key[1100];
  int64_t last = -1;
  if (!ch->srv->store) return false;
  presence_history_key(ch, key, sizeof key);
  if (store_last_seq(ch->srv->store, ch->app->id, key, &last) || last >= 0) return false;
  ch->presence_seq = 0;
  return true;
}

void presence_load_fixtures(sw_channel_t *ch) {
  json_t *chans = json_object_get(ch->app->spec, "channels");
  size_t i, j, n = 0, cap = 0;
  json_t *c, *p;
  /* The members are entered as on Ably when the app was made: presence
   * history (RSP4) has their ENTERs, recorded the first time the channel
   * is loaded (POST /apps loads it: presence_load_app_fixtures), and only
   * then, so a channel loaded again, or after a restart, adds none. */
  bool checked = false, record = false;
  sw_presence_t *enters = NULL;
  json_array_foreach(chans, i, c) {
    const char *name = json_string_value(json_object_get(c, "name"));
    if (!name || strcmp(name, ch->name) != 0) continue;
    if (!checked) record = presence_history_unused(ch), checked = true;
    json_array_foreach(json_object_get(c, "presence"), j, p) {
      const char *cid = json_string_value(json_object_get(p, "clientId"));
      const char *data = json_string_value(json_object_get(p, "data"));
      const char *enc = json_string_value(json_object_get(p, "encoding"));
      if (!cid) continue;
      char id[64];
      snprintf(id, sizeof id, "fixture:%zu:%zu", i, j);
      sw_presence_t ev = {.action = SW_PRESENCE_ENTER,
                          .id = id,
                          .client_id = (char *)cid,
                          .connection_id = "fixture",
                          .encoding = (char *)enc,
                          .timestamp = clock_now_ms()};
      if (data) {
        ev.data.kind = SW_DATA_STRING;
        ev.data.bytes = (uint8_t *)data;
        ev.data.len = strlen(data);
      }
      apply(ch, &ev); /* the set holds it as PRESENT */
      if (!record) continue;
      if (n == cap) {
        size_t ncap = cap ? cap * 2 : 8;
        sw_presence_t *grown = realloc(enters, ncap * sizeof *grown);
        if (!grown) continue;
        enters = grown;
        cap = ncap;
      }
      if (presence_copy(&enters[n], &ev) == 0) n++;
    }
  }
  if (n) persist(ch, enters, n, NULL, 0, true, ANN_NONE); /* takes enters */
  else free(enters);
}

void presence_load_app_fixtures(sw_server_t *srv, sw_app_t *app) {
  json_t *chans = json_object_get(app->spec, "channels");
  size_t i;
  json_t *c;
  json_array_foreach(chans, i, c) {
    const char *name = json_string_value(json_object_get(c, "name"));
    sw_channel_name_t parts;
    if (!name || channel_name_validate(name, strlen(name), &parts, NULL) || parts.kind != SW_CHAN_PLAIN ||
        parts.name_off)
      continue;
    if (!channel_find(srv, app, name)) channel_get(srv, app, name); /* loads its fixtures */
  }
}

void presence_free(sw_channel_t *ch) {
  sw_member_t *mb, *tmp;
  HASH_ITER(hh, ch->members, mb, tmp) {
    HASH_DEL(ch->members, mb);
    member_free(mb);
  }
  ch->n_members = 0;
  ch->n_remote_members = 0;
}

/* ------------------------------------------------ across nodes (bus) */

static void broadcast_events(sw_channel_t *ch, sw_presence_t *events, size_t n) {
  if (!n) return;
  sw_pmsg_t m = {.action = SW_ACTION_PRESENCE, .channel = (char *)ch->name, .timestamp = events[0].timestamp,
                 .presence = events, .n_presence = n};
  channel_broadcast(ch, &m, SW_MODE_PRESENCE_SUBSCRIBE, NULL);
}

void presence_bus_event(sw_channel_t *ch, const uint8_t *payload, size_t len) {
  sw_pmsg_t m = {0};
  sw_error_t err = {0};
  if (codec_decode_pmsg(SW_FMT_MSGPACK, payload, len, &m, &err) || m.action != SW_ACTION_PRESENCE) {
    log_warn("presence from another node on %s is not readable; ignored", ch->name);
    pmsg_free(&m);
    return;
  }
  for (size_t i = 0; i < m.n_presence; i++) apply_ex(ch, &m.presence[i], true);
  sw_pmsg_t out = {.action = SW_ACTION_PRESENCE, .channel = (char *)ch->name, .timestamp = m.timestamp,
                   .connection_id = m.connection_id, .presence = m.presence, .n_presence = m.n_presence};
  channel_broadcast(ch, &out, SW_MODE_PRESENCE_SUBSCRIBE, NULL);
  pmsg_free(&m);
}

/* One member of the shared set, decoded into ev (owned). */
int presence_member_decode(const sw_bus_member_t *bm, sw_presence_t *ev) {
  sw_pmsg_t m = {0};
  sw_error_t err = {0};
  int rc = -1;
  if (codec_decode_pmsg(SW_FMT_MSGPACK, bm->blob, bm->len, &m, &err) == 0 && m.n_presence == 1 &&
      m.presence[0].connection_id && m.presence[0].client_id) {
    *ev = m.presence[0];
    m.presence[0] = (sw_presence_t){0};
    rc = 0;
  }
  pmsg_free(&m);
  return rc;
}

/* A server-made LEAVE of member ev (in place). */
static void make_leave(sw_presence_t *ev, int64_t now) {
  char id[64], rnd[13];
  app_random_id(rnd, 12);
  snprintf(id, sizeof id, "leave-%s:0:0", rnd);
  free(ev->id);
  ev->id = strdup(id);
  ev->action = SW_PRESENCE_LEAVE;
  ev->timestamp = now;
}

void presence_bus_members(sw_channel_t *ch, const sw_bus_member_t *bm, size_t n, bool snapshot) {
  int64_t now = clock_now_ms();
  sw_presence_t *evs = calloc(n + 1, sizeof *evs);
  if (!evs) return;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) k += presence_member_decode(&bm[i], &evs[k]) == 0;
  if (snapshot) {
    /* The other nodes' members are these: those known and not among them
     * left while this node was not listening. */
    sw_member_t *mb, *tmp;
    HASH_ITER(hh, ch->members, mb, tmp) mb->mark = false;
    /* Members new or changed since this node last knew the set (after a
     * re-subscription: events missed meanwhile) are delivered as ENTER or
     * UPDATE; on the first read nobody is delivering yet (ATTACHED waits
     * for ready()), so nothing goes out. */
    sw_presence_t *news = calloc(k + 1, sizeof *news);
    size_t nn = 0;
    for (size_t i = 0; i < k; i++) {
      char *key = member_key(evs[i].connection_id, evs[i].client_id);
      sw_member_t *old = NULL;
      if (key) HASH_FIND_STR(ch->members, key, old);
      free(key);
      bool fresh = !old, changed = old && (!old->p.id || !evs[i].id || strcmp(old->p.id, evs[i].id) != 0);
      evs[i].action = SW_PRESENCE_PRESENT;
      sw_member_t *got = apply_ex(ch, &evs[i], true);
      if (got) got->mark = true;
      if (news && (fresh || changed) && presence_copy(&news[nn], &evs[i]) == 0)
        news[nn++].action = fresh ? SW_PRESENCE_ENTER : SW_PRESENCE_UPDATE;
    }
    broadcast_events(ch, news, nn);
    for (size_t i = 0; i < nn; i++) presence_clear(&news[i]);
    free(news);
    size_t gone = 0;
    HASH_ITER(hh, ch->members, mb, tmp) gone += mb->remote && !mb->mark;
    sw_presence_t *leaves = gone ? calloc(gone, sizeof *leaves) : NULL;
    size_t j = 0;
    HASH_ITER(hh, ch->members, mb, tmp) {
      if (!mb->remote || mb->mark) continue;
      if (leaves && presence_copy(&leaves[j], &mb->p) == 0) make_leave(&leaves[j++], now);
      member_unlink(ch, mb);
    }
    broadcast_events(ch, leaves, j);
    for (size_t i = 0; i < j; i++) presence_clear(&leaves[i]);
    free(leaves);
    for (size_t i = 0; i < k; i++) presence_clear(&evs[i]);
    free(evs);
    return;
  }
  /* A lapsed node's members, removed from the shared set by this node's
   * sweep: they leave here, in this node's presence history, and on the
   * other nodes through the announcement. Or this node's own, removed when
   * its bus came back: those it still has are written again (resync) and
   * do not leave; the others left while Redis could not be told (their
   * entries are removed with these LEAVEs). */
  size_t kept = 0;
  for (size_t i = 0; i < k; i++) {
    char *key = member_key(evs[i].connection_id, evs[i].client_id);
    sw_member_t *mb = NULL;
    if (key) HASH_FIND_STR(ch->members, key, mb);
    free(key);
    if (mb && !mb->remote) {
      presence_clear(&evs[i]);
      continue;
    }
    evs[kept] = evs[i];
    make_leave(&evs[kept], now);
    apply_ex(ch, &evs[kept], true);
    kept++;
  }
  k = kept;
  /* With the member changes (HDEL): a lapsed node's are gone already
   * (harmless), this node's own are removed only with their LEAVE. */
  if (k) persist(ch, evs, k, NULL, 0, false, ANN_MEMBERS); /* takes evs, also when it fails */
  else free(evs);
}

/* The bus is up again (core/bus.h state(true)): this node's members are
 * written to the shared set again and announced as PRESENT, since they
 * may have been swept while this node could not refresh its lease, or
 * lost with Redis's data. A member the other nodes still have is
 * unchanged there (ably-js ignores a PRESENT that is not newer, RTP2b). */
void presence_bus_resync(sw_server_t *srv) {
  sw_bus_t *bus = srv->bus;
  if (!bus || !bus_shared(bus)) return;
  sw_channel_t *ch;
  SW_CHANNELS_EACH(&srv->channels, ch) {
    size_t own = ch->n_members - ch->n_remote_members;
    if (!ch->bus_sub || !own) continue;
    sw_presence_t *evs = calloc(own, sizeof *evs);
    if (!evs) continue;
    size_t k = 0;
    for (sw_member_t *mb = ch->members; mb && k < own; mb = mb->hh.next) {
      if (mb->remote || !mb->p.connection_id || strcmp(mb->p.connection_id, "fixture") == 0) continue;
      if (presence_copy(&evs[k], &mb->p) == 0) evs[k++].action = SW_PRESENCE_PRESENT;
    }
    if (k) {
      sw_pmsg_t m = {.action = SW_ACTION_PRESENCE, .channel = (char *)ch->name, .timestamp = clock_now_ms(),
                     .presence = evs, .n_presence = k};
      announce(ch, &m, ANN_MEMBERS);
    }
    for (size_t i = 0; i < k; i++) presence_clear(&evs[i]);
    free(evs);
  }
}
