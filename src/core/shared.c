/* shared.c: the shared-state interface (core/shared.h), its one-node
 * implementation (the data directory's store, as before issue 12), and
 * what a node does when it learns of a change. */
#include "core/shared.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/token.h"
#include "core/conn.h"
#include "core/principal.h"
#include "core/presence.h"
#include "core/server.h"
#include "identity/identity.h"
#include "util/log.h"

/* ------------------------------------------------- what a node applies */

void server_delete_app(sw_server_t *srv, sw_app_t *app) {
  if (app->deleted) return;
  app->deleted = true;
  if (srv->identity) identity_remove(srv->identity, app->idps, app->n_idps); /* its issuers are free for other apps */
  /* Live connections of a deleted app end with the error a new one would get. */
  sw_conn_t *c;
  SW_CONNS_EACH(&srv->conns, c) {
    if (c->app != app) continue;
    if (c->sock) conn_fail(c, SW_E_NOT_FOUND, "application deleted", false);
    else conn_destroy(c);
  }
  if (srv->store) {
    store_kv_put(srv->store, "apps", app->id, NULL);
    store_delete_app(srv->store, app->id);
  }
}

void server_enforce_revocations(sw_server_t *srv, const sw_key_t *key, int64_t now, int64_t applies_at) {
  /* Live connections on revoked tokens go now; with a margin they are asked
   * to reauthenticate first, and go when the margin ends (conn_tick). */
  sw_conn_t *c;
  SW_CONNS_EACH(&srv->conns, c) {
    if (!c->sock || c->auth.key != key) continue;
    sw_error_t rerr;
    if (principal_revoked(srv, &c->auth, now, &rerr)) {
      conn_fail(c, rerr.code, rerr.message, true);
    } else if (applies_at > now && principal_revoked(srv, &c->auth, applies_at, &rerr)) {
      sw_pmsg_t a = {.action = SW_ACTION_AUTH};
      conn_send_pmsg(c, &a);
    }
  }
}

int server_store_token(sw_server_t *srv, const char *id, const char *sealed, int64_t expires, int64_t now,
                       sw_error_t *err) {
  int rc = srv->store ? store_expiring_put(srv->store, id, sealed, expires, now, SW_TOKEN_STORED_MAX,
                                            SW_TOKEN_STORED_MAX_BYTES)
                      : -ESHUTDOWN;
  if (rc == 0 || rc == -EEXIST) return 0;
  /* 429 and a code outside 4014x: ably-js reports it instead of retrying a
   * renewal in a loop; a later request can succeed once tokens expire. */
  if (rc == -EDQUOT)
    return errors_set(err, SW_E_RATE_LIMIT,
                      "too many large tokens are live (a token over %d bytes is kept by the server); retry "
                      "later or request a smaller capability",
                      SW_TOKEN_INLINE_MAX);
  return errors_set(err, SW_E_INTERNAL, "token could not be stored");
}

/* First start with no apps: a development app, printed with a snippet. Its
 * namespaces serve what the README and the examples use out of the box:
 * `persisted:` keeps history 24 h (other channels: 2 minutes, as Ably), and
 * `conversations:` has the rules AI Transport needs (docs/ai-transport.md,
 * examples/ai-chat): appends (mutableMessages), history a reload reads
 * (persisted), and cancels only by the turn's owner. */
json_t *server_dev_app_spec(void) {
  return json_pack("{s:s, s:[{}], s:[{s:s, s:b}, {s:s, s:b, s:b, s:b}]}", "id", "dev", "keys", "namespaces", "id",
                   "persisted", "persisted", 1, "id", "conversations", "mutableMessages", 1, "persisted", 1,
                   "cancelByTurnOwnerOnly", 1);
}

void server_announce_dev_app(sw_server_t *srv, const sw_app_t *a) {
  printf("created development app \"%s\"\n"
         "  API key: %s:%s\n"
         "  (keep it secret: it grants full access; %s)\n"
         "  namespaces: persisted: (history 24 h), conversations: (AI Transport: appends, history 24 h);\n"
         "  other channels keep history 2 minutes\n",
         a->id, a->keys[0].name, a->keys[0].secret,
         srv->cfg->redis_url ? "it is kept in Redis, shared by every node"
         : srv->cfg->memory  ? "--memory: it is gone when the server stops"
                             : "`switchboard apps` shows it again");
  /* ably-js takes a TLS port as tlsPort, a plain one as port. */
  printf("  client: new Ably.Realtime({ key: '%s:%s', endpoint: '%s', %s: %d, tls: %s })\n", a->keys[0].name,
         a->keys[0].secret, srv->cfg->host, srv->tls_ctx ? "tlsPort" : "port", srv->cfg->port,
         srv->tls_ctx ? "true" : "false");
}

/* ------------------------------------------------ the shortcuts */

void shared_app_create(sw_server_t *srv, sw_app_t *a, sw_shared_app_fn done, void *ud) {
  srv->shared.ops->app_create(srv->shared.impl, srv, a, done, ud);
}

void shared_app_delete(sw_server_t *srv, sw_app_t *a, sw_shared_done_fn done, void *ud) {
  srv->shared.ops->app_delete(srv->shared.impl, srv, a, done, ud);
}

void shared_revoked(sw_server_t *srv, const char *app_id, const sw_revocation_t *rules, size_t n,
                    sw_shared_done_fn done, void *ud) {
  srv->shared.ops->revoked(srv->shared.impl, srv, app_id, rules, n, done, ud);
}

void shared_nonce_claim(sw_server_t *srv, const char *app_id, const char *key_name, const char *nonce,
                        int64_t timestamp_ms, int64_t now_ms, sw_shared_done_fn done, void *ud) {
  srv->shared.ops->nonce_claim(srv->shared.impl, srv, app_id, key_name, nonce, timestamp_ms, now_ms, done, ud);
}

void shared_token_put(sw_server_t *srv, const char *app_id, const char *id, const char *sealed, int64_t expires,
                      int64_t now_ms, sw_shared_done_fn done, void *ud) {
  srv->shared.ops->token_put(srv->shared.impl, srv, app_id, id, sealed, expires, now_ms, done, ud);
}

/* ------------------------------------- one node: the data directory */

static void load_kv_value(void *ud, const char *key, const char *value) {
  json_t **obj = ud;
  json_object_set_new(*obj, key, json_string(value));
}

/* The secret that seals Ably tokens: made once, kept in the data directory
 * so tokens survive a restart. Revocation rules are kept beside it. */
static int load_server_state(sw_server_t *srv) {
  json_t *kv = json_object();
  if (store_kv_list(srv->store, "server", load_kv_value, &kv)) {
    json_decref(kv);
    return -1;
  }
  const char *hex = json_string_value(json_object_get(kv, "tokenSecret"));
  int rc = 0;
  if (hex && strlen(hex) == 2 * SW_TOKEN_SECRET_LEN) {
    for (size_t i = 0; i < SW_TOKEN_SECRET_LEN; i++) sscanf(hex + 2 * i, "%2hhx", &srv->token_secret[i]);
  } else {
    char fresh[2 * SW_TOKEN_SECRET_LEN + 1];
    if (RAND_bytes(srv->token_secret, SW_TOKEN_SECRET_LEN) != 1) rc = -1;
    for (size_t i = 0; i < SW_TOKEN_SECRET_LEN; i++) snprintf(fresh + 2 * i, 3, "%02x", srv->token_secret[i]);
    if (rc == 0) rc = store_kv_put(srv->store, "server", "tokenSecret", fresh);
    OPENSSL_cleanse(fresh, sizeof fresh);
  }
  const char *rev = json_string_value(json_object_get(kv, "revocations"));
  if (rev) revocations_load(&srv->revocations, rev);
  json_decref(kv);
  return rc;
}

typedef struct load_ctx {
  sw_server_t *srv;
  int failed;
} load_ctx_t;

static void load_stored_app(void *ud, const char *key, const char *value) {
  load_ctx_t *lc = ud;
  sw_error_t err = {0};
  json_t *spec = json_loads(value, 0, NULL);
  sw_app_t *a = spec ? app_from_spec(spec, false, &err) : NULL;
  json_decref(spec);
  if (!a || apps_add(&lc->srv->apps, a, &err)) {
    log_error("stored app %s: %s", key, err.message);
    app_free(a);
    lc->failed = 1;
  }
}

static int create_dev_app(sw_server_t *srv) {
  sw_error_t err = {0};
  json_t *spec = server_dev_app_spec();
  sw_app_t *a = spec ? app_from_spec(spec, true, &err) : NULL;
  json_decref(spec);
  if (!a || apps_add(&srv->apps, a, &err) || server_persist_app(srv, a)) {
    log_error("cannot create the development app: %s", err.message);
    app_free(a);
    return -1;
  }
  server_announce_dev_app(srv, a);
  return 0;
}

static int local_load(void *impl, sw_server_t *srv) {
  (void)impl;
  if (load_server_state(srv)) {
    fprintf(stderr, "switchboard: cannot read or write the server state (token secret, revocations) in storage\n");
    return -1;
  }
  load_ctx_t lc = {.srv = srv};
  if (store_kv_list(srv->store, "apps", load_stored_app, &lc) || lc.failed ||
      (srv->apps.n == 0 && create_dev_app(srv))) {
    fprintf(stderr, "switchboard: cannot load the apps\n");
    return -1;
  }
  return 0;
}

static void local_app_create(void *impl, sw_server_t *srv, sw_app_t *a, sw_shared_app_fn done, void *ud) {
  (void)impl;
  sw_error_t err = {0};
  if (apps_add(&srv->apps, a, &err)) {
    app_free(a); /* not registered (a duplicate id, or a provider's issuer taken) */
    done(ud, NULL, &err);
    return;
  }
  /* Fixture channels' members enter now, as on Ably: their ENTERs are
   * queued for storage ahead of the app itself, whose write is synchronous,
   * so presence history has them by the time the app is answered. */
  presence_load_app_fixtures(srv, a);
  if (server_persist_app(srv, a)) {
    errors_set(&err, SW_E_INTERNAL, "app could not be stored");
    done(ud, NULL, &err);
    return;
  }
  done(ud, a, &err);
}

static void local_app_delete(void *impl, sw_server_t *srv, sw_app_t *a, sw_shared_done_fn done, void *ud) {
  (void)impl, (void)srv, (void)a;
  sw_error_t ok = {0};
  done(ud, &ok);
}

static int persist_revocations(sw_server_t *srv) {
  char *json = revocations_dump(&srv->revocations);
  if (!json) return -1;
  int rc = store_kv_put(srv->store, "server", "revocations", json);
  free(json);
  return rc;
}

static void local_revoked(void *impl, sw_server_t *srv, const char *app_id, const sw_revocation_t *rules, size_t n,
                          sw_shared_done_fn done, void *ud) {
  (void)impl, (void)app_id, (void)rules, (void)n;
  sw_error_t err = {0};
  if (persist_revocations(srv)) errors_set(&err, SW_E_INTERNAL, "revocation could not be stored");
  done(ud, &err);
}

static void local_nonce_claim(void *impl, sw_server_t *srv, const char *app_id, const char *key_name,
                              const char *nonce, int64_t ts, int64_t now, sw_shared_done_fn done, void *ud) {
  (void)impl, (void)app_id;
  sw_error_t err = {0};
  nonce_cache_check(srv->nonces, key_name, nonce, ts, now, &err);
  done(ud, &err);
}

static void local_token_put(void *impl, sw_server_t *srv, const char *app_id, const char *id, const char *sealed,
                            int64_t expires, int64_t now, sw_shared_done_fn done, void *ud) {
  (void)impl, (void)app_id;
  sw_error_t err = {0};
  server_store_token(srv, id, sealed, expires, now, &err);
  done(ud, &err);
}

const sw_shared_ops_t shared_local_ops = {
    .name = "local",
    .load = local_load,
    .app_create = local_app_create,
    .app_delete = local_app_delete,
    .revoked = local_revoked,
    .nonce_claim = local_nonce_claim,
    .token_put = local_token_put,
};
