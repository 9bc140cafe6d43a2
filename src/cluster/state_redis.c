/* state_redis.c: the shared state (core/shared.h) in Redis; see
 * state_redis.h for the layout and docs/cluster.md for the consistency it
 * gives.
 *
 * Writes: each operation is a short pipeline on the command connection
 * whose last command is the PUBLISH on {sw}:state; the operation is done
 * when every reply is in (the first error wins). Announcements carry this
 * node's server id, so a node skips its own.
 *
 * Full load: SET NX / GET of the secret, SMEMBERS {sw}:apps, then per app
 * (RELOAD_CHUNK apps at a time, so a reload never holds more than a few
 * hundred commands) GET spec, HGETALL revoked, HGETALL tokens; then apps
 * this node took from Redis earlier and that are gone are deleted. An app
 * announced (created or deleted) while a load runs is left as the
 * announcement put it: the load's replies may have been read before it. */
#include "cluster/state_redis.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/token.h"
#include "auth/token_request.h"
#include "cluster/redis_conn.h"
#include "core/conn.h"
#include "core/presence.h"
#include "core/shared.h"
#include "util/clock.h"
#include "util/log.h"

#define STATE_CHANNEL "{sw}:state"
#define SECRET_KEY "{sw}:token-secret"
#define APPS_KEY "{sw}:apps"
#define RELOAD_CHUNK 64
#define RETRY_MS 1000
/* Revocation rules live a day past issuedBefore (the longest token ttl). */
#define REVOKED_TTL_MS ((int64_t)SW_TOKEN_MAX_TTL_MS + 60000)
/* The most app ids a full load takes (the admin API's apps). */
#define MAX_APPS 100000

/* Merges a rule into the target's field: a rule the stored one covers
 * changes nothing, one that covers it replaces it; two that do not cover
 * each other (a later issuedBefore, but a later appliesAt: a reauth margin)
 * become one that revokes both sets from the earlier time, the safe side.
 * The hash lives a day past its last write (Redis 7.0 has no per-field
 * expiry; loads drop stale fields). */
static const char REVOKE_SCRIPT[] =
    "local ib, at, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local cur = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if cur then\n"
    "  local c = string.find(cur, ':', 1, true)\n"
    "  local eib, eat = tonumber(string.sub(cur, 1, c - 1)), tonumber(string.sub(cur, c + 1))\n"
    "  if ib < eib then ib = eib end\n"
    "  if at > eat then at = eat end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], string.format('%d:%d', ib, at))\n"
    "if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end\n"
    "return 1\n";

/* A stored token's field; the hash lives as long as its latest token. */
static const char TOKEN_SCRIPT[] =
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "local ttl = tonumber(ARGV[3])\n"
    "if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end\n"
    "return 1\n";

typedef struct state state_t;

/* One operation: a pipeline of commands, done when all have answered. */
typedef struct op {
  state_t *st;
  int remaining;
  sw_error_t err;
  sw_shared_done_fn done;
  sw_shared_app_fn app_done;
  sw_app_t *app; /* app_create: the app (owned until registered) */
  void *ud;
} op_t;

/* The full load in progress. */
typedef struct reload {
  json_t *ids;     /* array of app ids from SMEMBERS */
  json_t *seen;    /* object: ids found */
  size_t next;     /* next index of ids to ask about */
  int inflight;
  bool failed;
} reload_t;

struct state {
  sw_server_t *srv;
  sw_redis_conn_t *cmd, *sub;
  uv_timer_t retry;
  bool closing;
  bool loaded;
  bool have_secret;
  bool want_reload; /* a reload is needed once both connections are ready */
  bool again;       /* another reload after the running one */
  reload_t *rl;
  json_t *known;    /* object: ids of apps taken from Redis (config apps are not) */
  json_t *touched;  /* object: ids announced while a reload runs */
  uint32_t load_timeout_ms;
  char url_redacted[SW_REDIS_URL_MAX + 16];
  sw_state_redis_stats_t stats;
};

static const sw_shared_ops_t REDIS_STATE_OPS;

/* ------------------------------------------------------------ helpers */

static int cmd_sendv(state_t *st, sw_redis_reply_cb cb, void *ud, int argc, const char **argv, const size_t *lens) {
  size_t l[16];
  if (!lens) {
    for (int i = 0; i < argc && i < 16; i++) l[i] = strlen(argv[i]);
    lens = l;
  }
  return redis_conn_command(st->cmd, cb, ud, argc, argv, lens);
}

/* The Ably error for a command that could not run or did not answer. */
static void set_conn_error(sw_error_t *err, int rc) {
  if (rc == -ETIMEDOUT || rc == -ECONNRESET)
    errors_set(err, SW_E_TIMEOUT, "the cluster state (Redis) did not answer; the change may have been made");
  else
    errors_set(err, 50004, "the cluster state (Redis) is unavailable; retry later");
}

static void app_key(char *out, size_t cap, const char *app_id, const char *suffix) {
  snprintf(out, cap, "{app:%s}:%s", app_id, suffix);
}

static void on_ignored(void *ud, const redisReply *r, int err) {
  (void)ud, (void)r, (void)err;
}

/* ------------------------------------------------------- operations */

static op_t *op_new(state_t *st, void *ud) {
  op_t *op = calloc(1, sizeof *op);
  if (!op) return NULL;
  op->st = st;
  op->ud = ud;
  return op;
}

static void op_finish(op_t *op) {
  if (op->app_done) {
    if (op->err.code) op->app_done(op->ud, NULL, &op->err);
    else op->app_done(op->ud, op->app, &op->err);
  } else {
    op->done(op->ud, &op->err);
  }
  free(op);
}

static void on_op_reply(void *ud, const redisReply *r, int rc) {
  op_t *op = ud;
  if (!op->err.code) {
    if (rc) set_conn_error(&op->err, rc);
    else if (r->type == REDIS_REPLY_ERROR) {
      log_error("cluster state: Redis refused a write: %.*s", (int)r->len, r->str);
      errors_set(&op->err, SW_E_INTERNAL, "the cluster state (Redis) refused the change");
    }
  }
  if (--op->remaining == 0) op_finish(op);
}

/* Adds one command to op; a command that cannot be sent fails op (it still
 * completes once the ones sent have answered). */
static void op_send(op_t *op, int argc, const char **argv, const size_t *lens) {
  op->remaining++;
  int rc = cmd_sendv(op->st, on_op_reply, op, argc, argv, lens);
  if (rc) {
    if (!op->err.code) set_conn_error(&op->err, rc);
    op->remaining--;
  }
}

/* Ends the pipeline: done now if nothing was sent. */
static void op_sent(op_t *op) {
  if (op->remaining == 0) op_finish(op);
}

/* PUBLISH of an announcement (a JSON object; its "n" is set here). */
static void op_announce(op_t *op, json_t *msg) {
  json_object_set_new(msg, "n", json_string(op->st->srv->server_id));
  char *text = json_dumps(msg, JSON_COMPACT);
  json_decref(msg);
  if (!text) {
    if (!op->err.code) errors_set(&op->err, SW_E_INTERNAL, "out of memory");
    return;
  }
  const char *argv[] = {"PUBLISH", STATE_CHANNEL, text};
  op_send(op, 3, argv, NULL);
  free(text);
}

/* ----------------------------------------------------------- apps */

static void note_touched(state_t *st, const char *id) {
  if (st->rl) json_object_set_new(st->touched, id, json_true());
}

/* An app from Redis (a spec announced or loaded): registered unless an
 * app with its id is live already. generate=true: a spec from the admin
 * API is complete, and may not name local files. */
static void apply_app(state_t *st, const json_t *spec) {
  sw_server_t *srv = st->srv;
  const char *id = json_string_value(json_object_get(spec, "id"));
  if (!id || apps_find(&srv->apps, id)) return;
  /* generate=true would make up a missing key id or secret, differently on
   * every node: a spec without them (written by hand) is refused. */
  size_t i;
  json_t *k, *keys = json_object_get(spec, "keys");
  bool complete = json_array_size(keys) > 0;
  json_array_foreach(keys, i, k) complete = complete && json_is_string(json_object_get(k, "id")) &&
                                            json_is_string(json_object_get(k, "secret"));
  if (!complete) {
    log_error("cluster state: app %.64s in Redis has no keys, or a key without an id or a secret; not served", id);
    return;
  }
  sw_error_t err = {0};
  sw_app_t *a = app_from_spec(spec, true, &err);
  if (!a || apps_add(&srv->apps, a, &err)) {
    log_error("cluster state: app %.64s not served on this node: %s", id, err.message);
    app_free(a);
    return;
  }
  json_object_set_new(st->known, a->id, json_true());
}

static void apply_app_delete(state_t *st, const char *id) {
  sw_app_t *a = apps_find(&st->srv->apps, id);
  json_object_del(st->known, id);
  if (a) server_delete_app(st->srv, a);
}

static void on_spec_set(void *ud, const redisReply *r, int rc) {
  op_t *op = ud;
  state_t *st = op->st;
  sw_server_t *srv = st->srv;
  sw_app_t *a = op->app;
  if (rc || r->type == REDIS_REPLY_ERROR) {
    if (rc) set_conn_error(&op->err, rc);
    else errors_set(&op->err, SW_E_INTERNAL, "the cluster state (Redis) refused the app");
  } else if (r->type == REDIS_REPLY_NIL) {
    errors_set(&op->err, SW_E_BAD_REQUEST, "app %s exists", a->id);
  } else if (st->closing) {
    errors_set(&op->err, 50004, "server shutting down");
  } else if (apps_add(&srv->apps, a, &op->err)) {
    /* Not servable here (an identity provider's issuer taken): undone. */
    char key[192];
    app_key(key, sizeof key, a->id, "spec");
    const char *argv[] = {"DEL", key};
    cmd_sendv(st, on_ignored, NULL, 2, argv, NULL);
  } else {
    /* The fixture channels' members enter on this node (presence is per
     * node until presence is shared: docs/cluster.md). */
    presence_load_app_fixtures(srv, a);
    json_object_set_new(st->known, a->id, json_true());
    note_touched(st, a->id);
    const char *argv[] = {"SADD", APPS_KEY, a->id};
    op_send(op, 3, argv, NULL);
    op_announce(op, json_pack("{s:s, s:O}", "t", "app", "spec", a->spec));
    op_sent(op);
    return;
  }
  app_free(a);
  op->app = NULL;
  op_finish(op);
}

static void r_app_create(void *impl, sw_server_t *srv, sw_app_t *a, sw_shared_app_fn done, void *ud) {
  state_t *st = impl;
  sw_error_t err = {0};
  op_t *op = NULL;
  char *text = NULL;
  if (apps_find(&srv->apps, a->id)) {
    errors_set(&err, SW_E_BAD_REQUEST, "app %s exists", a->id);
  } else if (!(op = op_new(st, ud)) || !(text = json_dumps(a->spec, JSON_COMPACT))) {
    errors_set(&err, SW_E_INTERNAL, "out of memory");
  } else {
    op->app = a;
    op->app_done = done;
    char key[192];
    app_key(key, sizeof key, a->id, "spec");
    /* NX: one app per id across the cluster, whichever node is asked. */
    const char *argv[] = {"SET", key, text, "NX"};
    int rc = cmd_sendv(st, on_spec_set, op, 4, argv, NULL);
    free(text);
    text = NULL;
    if (rc == 0) return;
    set_conn_error(&err, rc);
  }
  free(text);
  free(op);
  app_free(a);
  done(ud, NULL, &err);
}

static void r_app_delete(void *impl, sw_server_t *srv, sw_app_t *a, sw_shared_done_fn done, void *ud) {
  state_t *st = impl;
  (void)srv;
  op_t *op = op_new(st, ud);
  if (!op) {
    sw_error_t err;
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    done(ud, &err);
    return;
  }
  op->done = done;
  char k1[192], k2[192], k3[192];
  app_key(k1, sizeof k1, a->id, "spec");
  app_key(k2, sizeof k2, a->id, "revoked");
  app_key(k3, sizeof k3, a->id, "tokens");
  const char *del[] = {"DEL", k1, k2, k3};
  op_send(op, 4, del, NULL);
  const char *srem[] = {"SREM", APPS_KEY, a->id};
  if (!op->err.code) op_send(op, 3, srem, NULL);
  json_object_del(st->known, a->id);
  note_touched(st, a->id);
  if (!op->err.code) op_announce(op, json_pack("{s:s, s:s}", "t", "del", "id", a->id));
  op_sent(op);
}

/* ------------------------------------------------------- revocations */

static void revocation_field(char *out, size_t cap, const char *key_name, int type, const char *value) {
  snprintf(out, cap, "%s\n%d\n%s", key_name, type, value);
}

/* A rule from Redis: in force here, whatever this node's own bound (a
 * rule accepted once is kept, as revocations_load does). conn_tick drops
 * the connections it revokes within a tick; an announcement also enforces
 * at once (enforce_rules), as the node that took the request does. */
static void apply_rule(state_t *st, const char *key_name, int type, const char *value, int64_t issued_before,
                       int64_t applies_at, int64_t now) {
  if (type < SW_REVOKE_CLIENT_ID || type > SW_REVOKE_CHANNEL) return;
  revocations_add(&st->srv->revocations, SIZE_MAX, now, key_name, (sw_revoke_type_t)type, value, issued_before,
                  applies_at);
}

static void enforce_rules(state_t *st, const char *app_id, const char *key_name, int64_t applies_at, int64_t now) {
  sw_app_t *a = apps_find(&st->srv->apps, app_id);
  sw_key_t *k = a ? app_find_key(a, key_name, strlen(key_name)) : NULL;
  if (k) server_enforce_revocations(st->srv, k, now, applies_at);
}

static void r_revoked(void *impl, sw_server_t *srv, const char *app_id, const sw_revocation_t *rules, size_t n,
                      sw_shared_done_fn done, void *ud) {
  state_t *st = impl;
  (void)srv;
  op_t *op = op_new(st, ud);
  json_t *arr = json_array();
  if (!op || !arr) {
    free(op);
    json_decref(arr);
    sw_error_t err;
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    done(ud, &err);
    return;
  }
  op->done = done;
  char key[192], ttl[24];
  app_key(key, sizeof key, app_id, "revoked");
  snprintf(ttl, sizeof ttl, "%lld", (long long)REVOKED_TTL_MS);
  for (size_t i = 0; i < n && !op->err.code; i++) {
    const sw_revocation_t *r = &rules[i];
    char field[SW_REVOCATION_VALUE_MAX + 1100], ib[24], at[24];
    revocation_field(field, sizeof field, r->key_name, (int)r->type, r->value);
    snprintf(ib, sizeof ib, "%lld", (long long)r->issued_before);
    snprintf(at, sizeof at, "%lld", (long long)r->applies_at);
    const char *argv[] = {"EVAL", REVOKE_SCRIPT, "1", key, field, ib, at, ttl};
    op_send(op, 8, argv, NULL);
    json_array_append_new(arr, json_pack("{s:s, s:i, s:s, s:I, s:I}", "keyName", r->key_name, "type", (int)r->type,
                                         "value", r->value, "issuedBefore", (json_int_t)r->issued_before,
                                         "appliesAt", (json_int_t)r->applies_at));
  }
  if (!op->err.code) op_announce(op, json_pack("{s:s, s:s, s:o}", "t", "rev", "app", app_id, "rules", arr));
  else json_decref(arr);
  op_sent(op);
}

/* ------------------------------------------------------------ nonces */

static void on_nonce_set(void *ud, const redisReply *r, int rc) {
  op_t *op = ud;
  if (rc) set_conn_error(&op->err, rc);
  else if (r->type == REDIS_REPLY_ERROR) errors_set(&op->err, SW_E_INTERNAL, "the cluster state (Redis) refused the nonce");
  else if (r->type == REDIS_REPLY_NIL) errors_set(&op->err, 40105, "Nonce value replayed");
  op_finish(op);
}

/* The claim: this node's cache first (its bound and its answers, without
 * a round trip for a replay here), then SET NX in Redis, the arbiter
 * between nodes. The key's life covers every time the triple's timestamp
 * can still be accepted on any node. */
static void r_nonce_claim(void *impl, sw_server_t *srv, const char *app_id, const char *key_name, const char *nonce,
                          int64_t ts, int64_t now, sw_shared_done_fn done, void *ud) {
  state_t *st = impl;
  sw_error_t err = {0};
  if (nonce_cache_check(srv->nonces, key_name, nonce, ts, now, &err)) {
    done(ud, &err);
    return;
  }
  unsigned char md[32];
  unsigned int mdlen = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  char tsbuf[24];
  int tl = snprintf(tsbuf, sizeof tsbuf, "%lld", (long long)ts);
  bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
            EVP_DigestUpdate(ctx, key_name, strlen(key_name) + 1) && EVP_DigestUpdate(ctx, nonce, strlen(nonce) + 1) &&
            EVP_DigestUpdate(ctx, tsbuf, (size_t)tl) && EVP_DigestFinal_ex(ctx, md, &mdlen);
  EVP_MD_CTX_free(ctx);
  op_t *op = ok ? op_new(st, ud) : NULL;
  if (!op) {
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    done(ud, &err);
    return;
  }
  op->done = done;
  char key[192 + 80], px[24];
  int kl = snprintf(key, sizeof key, "{app:%s}:nonce:", app_id);
  for (unsigned i = 0; i < mdlen && kl + 3 < (int)sizeof key; i++) kl += snprintf(key + kl, 3, "%02x", md[i]);
  snprintf(px, sizeof px, "%lld", (long long)(2 * SW_TOKEN_REQUEST_WINDOW_MS));
  const char *argv[] = {"SET", key, "1", "NX", "PX", px};
  int rc = cmd_sendv(st, on_nonce_set, op, 6, argv, NULL);
  if (rc) {
    set_conn_error(&op->err, rc);
    op_finish(op);
  }
}

/* ------------------------------------------------------------ tokens */

static void r_token_put(void *impl, sw_server_t *srv, const char *app_id, const char *id, const char *sealed,
                        int64_t expires, int64_t now, sw_shared_done_fn done, void *ud) {
  state_t *st = impl;
  sw_error_t err = {0};
  op_t *op = NULL;
  char *value = NULL;
  size_t sl = strlen(sealed);
  if (server_store_token(srv, id, sealed, expires, now, &err)) goto fail;
  if (!(op = op_new(st, ud)) || !(value = malloc(sl + 24))) {
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    goto fail;
  }
  op->done = done;
  int vl = snprintf(value, sl + 24, "%lld:%s", (long long)expires, sealed);
  char key[192], ttl[24];
  app_key(key, sizeof key, app_id, "tokens");
  snprintf(ttl, sizeof ttl, "%lld", (long long)(expires - now + 60000));
  const char *argv[] = {"EVAL", TOKEN_SCRIPT, "1", key, id, value, ttl};
  size_t lens[] = {4, strlen(TOKEN_SCRIPT), 1, strlen(key), strlen(id), (size_t)vl, strlen(ttl)};
  op_send(op, 7, argv, lens);
  OPENSSL_cleanse(value, (size_t)vl);
  free(value);
  if (!op->err.code)
    op_announce(op, json_pack("{s:s, s:s, s:s, s:I, s:s}", "t", "tok", "app", app_id, "id", id, "expires",
                              (json_int_t)expires, "sealed", sealed));
  op_sent(op);
  return;
fail:
  free(op);
  done(ud, &err);
}

static void apply_token(state_t *st, const char *id, const char *sealed, int64_t expires, int64_t now) {
  if (expires <= now) return;
  sw_error_t err = {0};
  if (server_store_token(st->srv, id, sealed, expires, now, &err))
    log_warn("cluster state: a stored token from another node is not kept here: %s", err.message);
}

/* ------------------------------------------------ connection records */

/* {conn:<id>}: a hash, hash-tagged by connection (one slot per record):
 *   k  hex SHA-256 of the connectionKey (the key itself is never stored)
 *   a  app id
 *   c  clientId (absent: anonymous)
 *   n  server id of the node that holds the connection
 * PX 1.5 connectionStateTtl + 5 s, renewed every half connectionStateTtl
 * while a node holds it: after that node dies it lives between
 * connectionStateTtl + 5 s and 1.5 connectionStateTtl + 5 s, so a client
 * can resume elsewhere for at least connectionStateTtl.
 * {node:<server id>}:conn: pub/sub, the ids of connections another node
 * took over, which this node drops (conn_moved). */
#define CONN_NODE_SUFFIX "}:conn"

/* Saves a record whole: stale fields (a clientId) never survive. */
static const char CONN_SAVE_SCRIPT[] =
    "redis.call('DEL', KEYS[1])\n"
    "redis.call('HSET', KEYS[1], unpack(ARGV, 2))\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
    "return 1\n";

/* Forgets a record only if this node (ARGV[1]) still holds it. */
static const char CONN_FORGET_SCRIPT[] =
    "if redis.call('HGET', KEYS[1], 'n') == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";

/* Moves a record from node ARGV[1] to ARGV[2] if ARGV[1] still holds it
 * (two nodes taking one connection over at once: one wins), renews it and
 * tells the old node, unless it is this one. 1, or 0 when it is gone or
 * taken. */
static const char CONN_CLAIM_SCRIPT[] =
    "if redis.call('HGET', KEYS[1], 'n') ~= ARGV[1] then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'n', ARGV[2])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
    "if ARGV[1] ~= ARGV[2] then redis.call('PUBLISH', '{node:' .. ARGV[1] .. '" CONN_NODE_SUFFIX "', ARGV[4]) end\n"
    "return 1\n";

static void conn_key(char *out, size_t cap, const char *id) {
  snprintf(out, cap, "{conn:%s}", id);
}

static void node_channel(char *out, size_t cap, const char *server_id) {
  snprintf(out, cap, "{node:%s" CONN_NODE_SUFFIX, server_id);
}

static void conn_ttl(const state_t *st, char out[24]) {
  int64_t ttl = st->srv->cfg->limits.connection_state_ttl;
  snprintf(out, 24, "%lld", (long long)(ttl + ttl / 2 + 5000));
}

static void on_conn_write(void *ud, const redisReply *r, int rc) {
  (void)ud;
  if (!rc && r->type == REDIS_REPLY_ERROR) log_warn("cluster state: Redis refused a connection record: %s", r->str);
}

static void r_conn_save(void *impl, sw_server_t *srv, const char *id, const char *key_hash, const char *app_id,
                        const char *client_id) {
  state_t *st = impl;
  if (st->closing) return;
  char key[64], ttl[24];
  conn_key(key, sizeof key, id);
  conn_ttl(st, ttl);
  const char *argv[] = {"EVAL", CONN_SAVE_SCRIPT, "1", key, ttl, "k", key_hash, "a", app_id, "n", srv->server_id,
                        "c", client_id};
  /* Not sent (Redis down): that connection can only resume on this node. */
  cmd_sendv(st, on_conn_write, NULL, client_id ? 13 : 11, argv, NULL);
}

static void r_conn_touch(void *impl, sw_server_t *srv, const char *id) {
  state_t *st = impl;
  (void)srv;
  if (st->closing) return;
  char key[64], ttl[24];
  conn_key(key, sizeof key, id);
  conn_ttl(st, ttl);
  const char *argv[] = {"PEXPIRE", key, ttl};
  cmd_sendv(st, on_ignored, NULL, 3, argv, NULL);
}

static void r_conn_forget(void *impl, sw_server_t *srv, const char *id) {
  state_t *st = impl;
  /* Shutting down: records stay, so that clients resume on other nodes. */
  if (st->closing || srv->shutting_down) return;
  char key[64];
  conn_key(key, sizeof key, id);
  const char *argv[] = {"EVAL", CONN_FORGET_SCRIPT, "1", key, srv->server_id};
  cmd_sendv(st, on_ignored, NULL, 5, argv, NULL);
}

typedef struct conn_req {
  sw_shared_conn_fn load_done;
  sw_shared_done_fn done;
  void *ud;
} conn_req_t;

/* The field f of an HGETALL reply (a flat array), or NULL. */
static const char *reply_field(const redisReply *r, const char *f) {
  for (size_t i = 0; i + 1 < r->elements; i += 2)
    if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, f) == 0 &&
        r->element[i + 1]->type == REDIS_REPLY_STRING)
      return r->element[i + 1]->str;
  return NULL;
}

static void on_conn_loaded(void *ud, const redisReply *r, int rc) {
  conn_req_t *q = ud;
  sw_error_t err = {0};
  if (rc || r->type != REDIS_REPLY_ARRAY) {
    if (rc) set_conn_error(&err, rc);
    else errors_set(&err, SW_E_INTERNAL, "the cluster state (Redis) refused to read a connection record");
    q->load_done(q->ud, NULL, &err);
  } else if (r->elements == 0) {
    q->load_done(q->ud, NULL, &err);
  } else {
    sw_conn_record_t rec = {.app_id = reply_field(r, "a"), .key_hash = reply_field(r, "k"),
                            .client_id = reply_field(r, "c"), .node = reply_field(r, "n")};
    q->load_done(q->ud, &rec, &err);
  }
  free(q);
}

static void r_conn_load(void *impl, sw_server_t *srv, const char *id, sw_shared_conn_fn done, void *ud) {
  state_t *st = impl;
  (void)srv;
  sw_error_t err = {0};
  conn_req_t *q = calloc(1, sizeof *q);
  int rc = -ENOMEM;
  if (q && !st->closing) {
    q->load_done = done;
    q->ud = ud;
    char key[64];
    conn_key(key, sizeof key, id);
    const char *argv[] = {"HGETALL", key};
    if ((rc = cmd_sendv(st, on_conn_loaded, q, 2, argv, NULL)) == 0) return;
  }
  free(q);
  set_conn_error(&err, rc);
  done(ud, NULL, &err);
}

static void on_conn_claimed(void *ud, const redisReply *r, int rc) {
  conn_req_t *q = ud;
  sw_error_t err = {0};
  if (rc) set_conn_error(&err, rc);
  else if (r->type == REDIS_REPLY_ERROR) errors_set(&err, SW_E_INTERNAL, "the cluster state (Redis) refused a claim");
  else if (r->type != REDIS_REPLY_INTEGER || r->integer != 1)
    errors_set(&err, SW_E_RESUME_FAILED, "unable to resume connection: taken over by another node");
  q->done(q->ud, &err);
  free(q);
}

static void r_conn_claim(void *impl, sw_server_t *srv, const char *id, const char *from_node, sw_shared_done_fn done,
                         void *ud) {
  state_t *st = impl;
  sw_error_t err = {0};
  conn_req_t *q = calloc(1, sizeof *q);
  int rc = -ENOMEM;
  if (q && !st->closing) {
    q->done = done;
    q->ud = ud;
    char key[64], ttl[24];
    conn_key(key, sizeof key, id);
    conn_ttl(st, ttl);
    const char *argv[] = {"EVAL", CONN_CLAIM_SCRIPT, "1", key, from_node, srv->server_id, ttl, id};
    if ((rc = cmd_sendv(st, on_conn_claimed, q, 8, argv, NULL)) == 0) return;
  }
  free(q);
  set_conn_error(&err, rc);
  done(ud, &err);
}

/* A message on this node's channel: a connection taken over elsewhere. */
static void on_node_message(state_t *st, const char *payload, size_t len) {
  char id[SW_CONN_ID_LEN + 1];
  if (len == 0 || len > SW_CONN_ID_LEN) return;
  memcpy(id, payload, len);
  id[len] = '\0';
  conn_moved(st->srv, id);
}

/* ------------------------------------------------------ announcements */

static void on_message(void *ud, const char *channel, size_t channel_len, const char *payload, size_t len) {
  state_t *st = ud;
  if (st->closing) return;
  if (channel_len != strlen(STATE_CHANNEL) || memcmp(channel, STATE_CHANNEL, channel_len) != 0) {
    on_node_message(st, payload, len);
    return;
  }
  json_t *m = json_loadb(payload, len, 0, NULL);
  const char *t = json_string_value(json_object_get(m, "t"));
  const char *from = json_string_value(json_object_get(m, "n"));
  if (!t || !from || strcmp(from, st->srv->server_id) == 0) {
    json_decref(m);
    return;
  }
  int64_t now = clock_now_ms();
  st->stats.messages++;
  if (strcmp(t, "app") == 0) {
    json_t *spec = json_object_get(m, "spec");
    const char *id = json_string_value(json_object_get(spec, "id"));
    if (id) note_touched(st, id);
    if (json_is_object(spec)) apply_app(st, spec);
  } else if (strcmp(t, "del") == 0) {
    const char *id = json_string_value(json_object_get(m, "id"));
    if (id) {
      note_touched(st, id);
      apply_app_delete(st, id);
    }
  } else if (strcmp(t, "rev") == 0) {
    const char *app = json_string_value(json_object_get(m, "app"));
    const char *key = NULL;
    int64_t applies_at = now;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(m, "rules"), i, r) {
      const char *k = json_string_value(json_object_get(r, "keyName"));
      const char *v = json_string_value(json_object_get(r, "value"));
      if (!app || !k || !v) continue;
      key = k; /* one request's rules: one key, one appliesAt */
      applies_at = json_integer_value(json_object_get(r, "appliesAt"));
      apply_rule(st, k, (int)json_integer_value(json_object_get(r, "type")), v,
                 json_integer_value(json_object_get(r, "issuedBefore")), applies_at, now);
    }
    if (key) enforce_rules(st, app, key, applies_at, now);
  } else if (strcmp(t, "tok") == 0) {
    const char *id = json_string_value(json_object_get(m, "id"));
    const char *sealed = json_string_value(json_object_get(m, "sealed"));
    if (id && sealed && strlen(id) == SW_TOKEN_REF_ID_LEN)
      apply_token(st, id, sealed, json_integer_value(json_object_get(m, "expires")), now);
  }
  json_decref(m);
}

/* -------------------------------------------------------- full load */

static void reload_start(state_t *st);
static void reload_pump(state_t *st);
static void on_retry(uv_timer_t *t);

static void reload_end(state_t *st) {
  reload_t *rl = st->rl;
  if (!rl->failed) {
    /* Apps taken from Redis earlier and gone now: deleted meanwhile. One
     * announced during the load is as the announcement left it. */
    const char *id;
    json_t *v, *gone = json_array();
    json_object_foreach(st->known, id, v) {
      if (!json_object_get(rl->seen, id) && !json_object_get(st->touched, id)) json_array_append_new(gone, json_string(id));
    }
    size_t i;
    json_array_foreach(gone, i, v) apply_app_delete(st, json_string_value(v));
    json_decref(gone);
    st->loaded = true;
    st->stats.reloads++;
  }
  bool failed = rl->failed;
  json_decref(rl->ids);
  json_decref(rl->seen);
  free(rl);
  st->rl = NULL;
  json_object_clear(st->touched);
  if (st->closing) return;
  if (failed) {
    uv_timer_start(&st->retry, on_retry, RETRY_MS, 0);
  } else if (st->again) {
    st->again = false;
    reload_start(st);
  }
}

typedef struct rl_cmd {
  state_t *st;
  int kind; /* 0 secret, 1 apps, 2 spec, 3 revoked, 4 tokens */
  char app[128];
} rl_cmd_t;

static void rl_done(state_t *st) {
  reload_t *rl = st->rl;
  if (--rl->inflight > 0) return;
  if (rl->failed || st->closing || (rl->ids && rl->next >= json_array_size(rl->ids))) reload_end(st);
  else reload_pump(st);
}

static void load_secret(state_t *st, const redisReply *r) {
  if (r->type != REDIS_REPLY_STRING || r->len != 2 * SW_TOKEN_SECRET_LEN) {
    st->rl->failed = true;
    return;
  }
  uint8_t secret[SW_TOKEN_SECRET_LEN];
  for (size_t i = 0; i < SW_TOKEN_SECRET_LEN; i++) sscanf(r->str + 2 * i, "%2hhx", &secret[i]);
  if (!st->have_secret) {
    memcpy(st->srv->token_secret, secret, sizeof secret);
    st->have_secret = true;
  } else if (CRYPTO_memcmp(secret, st->srv->token_secret, sizeof secret) != 0) {
    /* Redis lost its data and another node made a new secret first: the
     * nodes now seal differently; restart this node to take the new one. */
    log_error("cluster state: the token secret in Redis is not this node's; tokens from other nodes are refused "
              "here until this node restarts");
  }
  OPENSSL_cleanse(secret, sizeof secret);
}

/* A full load's rules: conn_tick enforces them (one pass over the
 * connections per tick, not one per rule). */
static void load_revoked(state_t *st, const char *app, const redisReply *r, int64_t now) {
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    const redisReply *f = r->element[i], *v = r->element[i + 1];
    if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
    char field[SW_REVOCATION_VALUE_MAX + 1100];
    if (f->len >= sizeof field) continue;
    memcpy(field, f->str, f->len);
    field[f->len] = 0;
    char *nl1 = strchr(field, '\n'), *nl2 = nl1 ? strchr(nl1 + 1, '\n') : NULL;
    long long ib = 0, at = 0;
    if (!nl2 || sscanf(v->str, "%lld:%lld", &ib, &at) != 2) continue;
    *nl1 = *nl2 = 0;
    if (ib + REVOKED_TTL_MS < now) {
      char key[192];
      app_key(key, sizeof key, app, "revoked");
      const char *argv[] = {"HDEL", key, f->str};
      size_t lens[] = {4, strlen(key), f->len};
      cmd_sendv(st, on_ignored, NULL, 3, argv, lens);
      continue;
    }
    apply_rule(st, field, atoi(nl1 + 1), nl2 + 1, ib, at, now);
  }
}

static void load_tokens(state_t *st, const char *app, const redisReply *r, int64_t now) {
  for (size_t i = 0; i + 1 < r->elements; i += 2) {
    const redisReply *f = r->element[i], *v = r->element[i + 1];
    if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || f->len != SW_TOKEN_REF_ID_LEN) continue;
    char id[SW_TOKEN_REF_ID_LEN + 1];
    memcpy(id, f->str, f->len);
    id[f->len] = 0;
    long long expires = strtoll(v->str, NULL, 10);
    const char *colon = memchr(v->str, ':', v->len);
    if (!colon) continue;
    if (expires <= now) {
      char key[192];
      app_key(key, sizeof key, app, "tokens");
      const char *argv[] = {"HDEL", key, id};
      cmd_sendv(st, on_ignored, NULL, 3, argv, NULL);
      continue;
    }
    apply_token(st, id, colon + 1, expires, now);
  }
}

static void on_rl_reply(void *ud, const redisReply *r, int rc) {
  rl_cmd_t *c = ud;
  state_t *st = c->st;
  reload_t *rl = st->rl;
  if (rc || r->type == REDIS_REPLY_ERROR) {
    if (!rl->failed && !st->closing)
      log_warn("cluster state: full load failed (%s); retrying", rc ? strerror(-rc) : r->str);
    rl->failed = true;
  } else if (!st->closing && !rl->failed) {
    int64_t now = clock_now_ms();
    switch (c->kind) {
    case 0:
      load_secret(st, r);
      break;
    case 1:
      if (r->type != REDIS_REPLY_ARRAY || r->elements > MAX_APPS) {
        log_error("cluster state: %s is not a set of at most %d app ids", APPS_KEY, MAX_APPS);
        rl->failed = true;
        break;
      }
      rl->ids = json_array();
      for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING && r->element[i]->len < sizeof c->app)
          json_array_append_new(rl->ids, json_stringn(r->element[i]->str, r->element[i]->len));
      break;
    case 2:
      if (r->type == REDIS_REPLY_STRING && !json_object_get(st->touched, c->app)) {
        json_t *spec = json_loadb(r->str, r->len, 0, NULL);
        if (json_is_object(spec)) {
          json_object_set_new(rl->seen, c->app, json_true());
          apply_app(st, spec);
        } else {
          log_error("cluster state: the spec of app %s in Redis is not JSON", c->app);
        }
        json_decref(spec);
      } else if (r->type == REDIS_REPLY_STRING) {
        json_object_set_new(rl->seen, c->app, json_true());
      }
      break;
    case 3:
      if (r->type == REDIS_REPLY_ARRAY) load_revoked(st, c->app, r, now);
      break;
    case 4:
      if (r->type == REDIS_REPLY_ARRAY) load_tokens(st, c->app, r, now);
      break;
    }
  }
  free(c);
  rl_done(st);
}

static void rl_send(state_t *st, int kind, const char *app, int argc, const char **argv) {
  reload_t *rl = st->rl;
  rl_cmd_t *c = calloc(1, sizeof *c);
  if (!c) {
    rl->failed = true;
    return;
  }
  c->st = st;
  c->kind = kind;
  if (app) snprintf(c->app, sizeof c->app, "%s", app);
  rl->inflight++;
  if (cmd_sendv(st, on_rl_reply, c, argc, argv, NULL)) {
    rl->inflight--;
    rl->failed = true;
    free(c);
  }
}

/* The next chunk of apps. */
static void reload_pump(state_t *st) {
  reload_t *rl = st->rl;
  rl->inflight++; /* held while sending, so a reply cannot end the load early */
  size_t end = rl->next + RELOAD_CHUNK;
  for (; rl->next < end && rl->next < json_array_size(rl->ids) && !rl->failed; rl->next++) {
    const char *id = json_string_value(json_array_get(rl->ids, rl->next));
    char k[192];
    app_key(k, sizeof k, id, "spec");
    const char *get[] = {"GET", k};
    rl_send(st, 2, id, 2, get);
    app_key(k, sizeof k, id, "revoked");
    const char *h1[] = {"HGETALL", k};
    rl_send(st, 3, id, 2, h1);
    app_key(k, sizeof k, id, "tokens");
    const char *h2[] = {"HGETALL", k};
    rl_send(st, 4, id, 2, h2);
  }
  rl_done(st);
}

static void reload_start(state_t *st) {
  st->rl = calloc(1, sizeof *st->rl);
  if (!st->rl) {
    st->want_reload = true;
    return;
  }
  st->rl->seen = json_object();
  st->rl->inflight++;
  /* The secret: this node's, or a fresh one, unless Redis has one; then
   * read back (the winner's). Also restores it after Redis lost its data. */
  char hex[2 * SW_TOKEN_SECRET_LEN + 1];
  uint8_t fresh[SW_TOKEN_SECRET_LEN];
  const uint8_t *mine = st->srv->token_secret;
  if (!st->have_secret) {
    if (RAND_bytes(fresh, sizeof fresh) != 1) st->rl->failed = true;
    mine = fresh;
  }
  for (size_t i = 0; i < SW_TOKEN_SECRET_LEN; i++) snprintf(hex + 2 * i, 3, "%02x", mine[i]);
  const char *set[] = {"SET", SECRET_KEY, hex, "NX"};
  if (!st->rl->failed) {
    st->rl->inflight++;
    if (cmd_sendv(st, on_ignored, NULL, 4, set, NULL)) st->rl->failed = true;
    st->rl->inflight--;
  }
  OPENSSL_cleanse(hex, sizeof hex);
  OPENSSL_cleanse(fresh, sizeof fresh);
  const char *get[] = {"GET", SECRET_KEY};
  if (!st->rl->failed) rl_send(st, 0, NULL, 2, get);
  const char *members[] = {"SMEMBERS", APPS_KEY};
  if (!st->rl->failed) rl_send(st, 1, NULL, 2, members);
  /* The apps' chunks follow once SMEMBERS has answered (rl_done). */
  st->rl->inflight--;
  if (st->rl->inflight == 0) reload_end(st);
}

/* A full load when both connections are ready; one at a time. */
static void want_reload(state_t *st) {
  if (st->closing) return;
  if (!redis_conn_is_up(st->cmd) || !redis_conn_subscribed(st->sub, STATE_CHANNEL, strlen(STATE_CHANNEL))) {
    st->want_reload = true;
    return;
  }
  st->want_reload = false;
  if (st->rl) st->again = true;
  else reload_start(st);
}

static void on_retry(uv_timer_t *t) { want_reload(t->data); }

static void on_cmd_state(void *ud, bool up, const char *why) {
  state_t *st = ud;
  if (!up) {
    log_warn("cluster state: Redis command connection lost (%s)", why ? why : "?");
    return;
  }
  want_reload(st);
}

static void on_subscribed(void *ud, const char *channel, size_t len) {
  if (len != strlen(STATE_CHANNEL) || memcmp(channel, STATE_CHANNEL, len) != 0) return; /* the node's channel */
  /* Announcements made while unsubscribed never arrive: load everything. */
  want_reload(ud);
}

/* ------------------------------------------------------- life cycle */

/* Start-up: runs the loop until the first full load, then makes the
 * development app if the cluster has no app at all. */
static bool run_until_loaded(state_t *st, uint64_t deadline) {
  while (!st->loaded && uv_hrtime() < deadline) uv_run(st->srv->loop, UV_RUN_ONCE);
  return st->loaded;
}

typedef struct dev_wait {
  bool done;
  sw_app_t *app;
  sw_error_t err;
} dev_wait_t;

static void dev_created(void *ud, sw_app_t *a, const sw_error_t *err) {
  dev_wait_t *w = ud;
  w->done = true;
  w->app = a;
  w->err = *err;
}

static int r_load(void *impl, sw_server_t *srv) {
  state_t *st = impl;
  uint64_t deadline = uv_hrtime() + (uint64_t)st->load_timeout_ms * 1000000ULL;
  if (!run_until_loaded(st, deadline)) {
    fprintf(stderr, "switchboard: cannot load the cluster state from Redis at %s within %u ms\n", st->url_redacted,
            st->load_timeout_ms);
    return -1;
  }
  if (srv->apps.n > 0) return 0;
  sw_error_t err = {0};
  json_t *spec = server_dev_app_spec();
  sw_app_t *a = spec ? app_from_spec(spec, true, &err) : NULL;
  json_decref(spec);
  if (!a) {
    fprintf(stderr, "switchboard: cannot create the development app: %s\n", err.message);
    return -1;
  }
  dev_wait_t w = {0};
  r_app_create(st, srv, a, dev_created, &w);
  while (!w.done && uv_hrtime() < deadline + 5000000000ULL) uv_run(srv->loop, UV_RUN_ONCE);
  if (w.app) {
    server_announce_dev_app(srv, w.app);
    return 0;
  }
  /* Another node made it first: it is in Redis now. */
  st->loaded = false;
  want_reload(st);
  if (run_until_loaded(st, uv_hrtime() + (uint64_t)st->load_timeout_ms * 1000000ULL) && srv->apps.n > 0) return 0;
  fprintf(stderr, "switchboard: cannot create the development app: %s\n", w.done ? w.err.message : "timed out");
  return -1;
}

static void r_close(void *impl, sw_server_t *srv) {
  state_t *st = impl;
  (void)srv;
  if (st->closing) return;
  st->closing = true;
  uv_close((uv_handle_t *)&st->retry, NULL);
  redis_conn_close(st->cmd);
  redis_conn_close(st->sub);
}

static void r_free(void *impl) {
  state_t *st = impl;
  json_decref(st->known);
  json_decref(st->touched);
  free(st);
}

static const sw_shared_ops_t REDIS_STATE_OPS = {
    .name = "redis",
    .load = r_load,
    .app_create = r_app_create,
    .app_delete = r_app_delete,
    .revoked = r_revoked,
    .nonce_claim = r_nonce_claim,
    .token_put = r_token_put,
    .close = r_close,
    .free = r_free,
    .conn_save = r_conn_save,
    .conn_touch = r_conn_touch,
    .conn_forget = r_conn_forget,
    .conn_load = r_conn_load,
    .conn_claim = r_conn_claim,
};

int state_redis_install(sw_server_t *srv, const sw_state_redis_opts_t *o) {
  state_t *st = calloc(1, sizeof *st);
  if (!st || !(st->known = json_object()) || !(st->touched = json_object())) {
    if (st) r_free(st);
    fprintf(stderr, "switchboard: out of memory\n");
    return -1;
  }
  st->srv = srv;
  st->load_timeout_ms = o->load_timeout_ms ? o->load_timeout_ms : 10000;
  redis_url_format(&o->url, true, st->url_redacted, sizeof st->url_redacted);
  uv_timer_init(srv->loop, &st->retry);
  st->retry.data = st;
  sw_redis_conn_opts_t co = {.url = o->url, .name = "state", .connect_timeout_ms = o->connect_timeout_ms,
                             .command_timeout_ms = o->command_timeout_ms, .backoff_min_ms = o->backoff_min_ms,
                             .backoff_max_ms = o->backoff_max_ms, .max_pending = o->max_pending,
                             .on_state = on_cmd_state, .ud = st};
  int rc = redis_conn_open(srv->loop, &co, &st->cmd);
  if (rc == 0) {
    co.name = "state-sub";
    co.on_state = NULL;
    co.on_message = on_message;
    co.on_subscribed = on_subscribed;
    rc = redis_conn_open(srv->loop, &co, &st->sub);
  }
  if (rc == 0) rc = redis_conn_subscribe(st->sub, STATE_CHANNEL, strlen(STATE_CHANNEL));
  if (rc == 0) {
    char node[96];
    node_channel(node, sizeof node, srv->server_id);
    rc = redis_conn_subscribe(st->sub, node, strlen(node));
  }
  if (rc) {
    fprintf(stderr, "switchboard: cannot use Redis at %s: %s\n", st->url_redacted, strerror(-rc));
    if (st->cmd) redis_conn_close(st->cmd);
    if (st->sub) redis_conn_close(st->sub);
    uv_close((uv_handle_t *)&st->retry, NULL);
    /* The handles close on the loop; st is freed with the server. */
    st->closing = true;
  }
  srv->shared.ops = &REDIS_STATE_OPS;
  srv->shared.impl = st;
  if (rc == 0) log_info("cluster state in Redis at %s", st->url_redacted);
  return rc ? -1 : 0;
}

void state_redis_stats(const sw_server_t *srv, sw_state_redis_stats_t *st) {
  memset(st, 0, sizeof *st);
  if (srv->shared.ops != &REDIS_STATE_OPS || !srv->shared.impl) return;
  const state_t *s = srv->shared.impl;
  *st = s->stats;
  st->loaded = s->loaded;
}
