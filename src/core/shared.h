/* shared.h: the state every node of a cluster must agree on, behind one
 * interface (issue 12; docs/cluster.md, "Shared app state"):
 *
 *   - the secret that seals Ably tokens, apps (keys, namespaces, identity
 *     providers: the whole spec), revocation rules, stored large tokens
 *     (the "sbr1." references), and TokenRequest nonces.
 *
 * Reads stay local and synchronous: every node keeps its copy in the
 * structures it always had (srv->apps, srv->revocations, srv->store's
 * expiring values, srv->nonces, srv->token_secret). Writes go through
 * these operations, which answer through `done`, possibly later: the local
 * implementation (one node; today's behaviour) answers at once, inside
 * the call; the Redis one (src/cluster/state_redis.c) once Redis has the
 * write and the other nodes have been told. A caller therefore does
 * nothing after calling an operation (the callback may already have run)
 * and holds what it answers on (sock_ref) until `done`.
 *
 * core/ never names Redis: the composition root (src/root/) installs
 * another implementation from its start hook (srv->shared), before the
 * state is loaded. Loop thread only. */
#ifndef SW_CORE_SHARED_H
#define SW_CORE_SHARED_H

#include <stddef.h>
#include <stdint.h>

#include "core/app.h"
#include "core/revocation.h"
#include "proto/errors.h"

struct sw_server;

/* err->code 0: done; else the Ably error to answer with. */
typedef void (*sw_shared_done_fn)(void *ud, const sw_error_t *err);
/* app_create's answer: the app, registered (borrowed from srv->apps), or
 * NULL with err. */
typedef void (*sw_shared_app_fn)(void *ud, sw_app_t *a, const sw_error_t *err);

/* A connection record (RTN15c6 on another node, docs/cluster.md,
 * "Connection records"): what a node needs to take over a connection whose
 * node is gone or elsewhere. Borrowed during the callback only. */
typedef struct sw_conn_record {
  const char *app_id;
  const char *key_hash;  /* hex SHA-256 of the connectionKey: never the key itself */
  const char *client_id; /* NULL: anonymous */
  const char *node;      /* the server id of the node that holds it */
} sw_conn_record_t;
/* conn_load's answer: rec NULL and err->code 0 when there is no record;
 * err->code set when it could not be read. */
typedef void (*sw_shared_conn_fn)(void *ud, const sw_conn_record_t *rec, const sw_error_t *err);

typedef struct sw_shared_ops {
  const char *name; /* "local", "redis" */
  /* server_start, after the config file's apps: the token secret, the
   * apps, the revocation rules and stored tokens. 0, or -1 (message on
   * stderr). */
  int (*load)(void *impl, struct sw_server *srv);
  /* The admin API made a (validated, not registered; the callee owns it). */
  void (*app_create)(void *impl, struct sw_server *srv, sw_app_t *a, sw_shared_app_fn done, void *ud);
  /* The admin API deletes a; done before the node drops it
   * (server_delete_app). */
  void (*app_delete)(void *impl, struct sw_server *srv, sw_app_t *a, sw_shared_done_fn done, void *ud);
  /* Rules revokeTokens has just added to srv->revocations (key_name of app_id). */
  void (*revoked)(void *impl, struct sw_server *srv, const char *app_id, const sw_revocation_t *rules, size_t n,
                  sw_shared_done_fn done, void *ud);
  /* Claims a signed TokenRequest's (key_name, nonce, timestamp) once, in
   * the window: nonce_cache_check's errors, and 50004 when the claim
   * cannot be made. */
  void (*nonce_claim)(void *impl, struct sw_server *srv, const char *app_id, const char *key_name, const char *nonce,
                      int64_t timestamp_ms, int64_t now_ms, sw_shared_done_fn done, void *ud);
  /* Keeps a sealed token under its reference id until expires. */
  void (*token_put)(void *impl, struct sw_server *srv, const char *app_id, const char *id, const char *sealed,
                    int64_t expires, int64_t now_ms, sw_shared_done_fn done, void *ud);
  /* server_shutdown: stop; operations still pending complete soon after,
   * from the loop, with an error (50004), so their callers release what
   * they hold. free: after the loop has ended. Either may be NULL. */
  void (*close)(void *impl, struct sw_server *srv);
  void (*free)(void *impl);
  /* Connection records, so that a client resumes on another node (the
   * connectionId kept, RTN15c6). All NULL in the local implementation: a
   * connection lives on its node only, as it always has.
   *
   * conn_save: a connection this node holds, written at CONNECTED (new,
   * recovered with a new key); its life is about 1.5 connectionStateTtl,
   * renewed by conn_touch, which core calls every half connectionStateTtl
   * for every connection it holds. Fire and forget: a record that could
   * not be written only costs that connection its resume elsewhere.
   * conn_forget: the connection ended here (closed, failed, expired); the
   * record goes only if this node still holds it. */
  void (*conn_save)(void *impl, struct sw_server *srv, const char *id, const char *key_hash, const char *app_id,
                    const char *client_id);
  void (*conn_touch)(void *impl, struct sw_server *srv, const char *id);
  void (*conn_forget)(void *impl, struct sw_server *srv, const char *id);
  /* Reads connection id's record; done later, exactly once. */
  void (*conn_load)(void *impl, struct sw_server *srv, const char *id, sw_shared_conn_fn done, void *ud);
  /* Makes this node the holder of connection id if from_node still is,
   * and tells from_node to drop its copy (conn_moved there). done: 0, or
   * 80008 when another node took it first, 5000x when Redis failed. */
  void (*conn_claim)(void *impl, struct sw_server *srv, const char *id, const char *from_node,
                     sw_shared_done_fn done, void *ud);
} sw_shared_ops_t;

typedef struct sw_shared {
  const sw_shared_ops_t *ops;
  void *impl;
} sw_shared_t;

/* The one-node implementation (today's behaviour: the data directory's
 * store). server_start installs it before its start hook runs. */
extern const sw_shared_ops_t shared_local_ops;

/* Shortcuts through srv->shared. */
void shared_app_create(struct sw_server *srv, sw_app_t *a, sw_shared_app_fn done, void *ud);
void shared_app_delete(struct sw_server *srv, sw_app_t *a, sw_shared_done_fn done, void *ud);
void shared_revoked(struct sw_server *srv, const char *app_id, const sw_revocation_t *rules, size_t n,
                    sw_shared_done_fn done, void *ud);
void shared_nonce_claim(struct sw_server *srv, const char *app_id, const char *key_name, const char *nonce,
                        int64_t timestamp_ms, int64_t now_ms, sw_shared_done_fn done, void *ud);
void shared_token_put(struct sw_server *srv, const char *app_id, const char *id, const char *sealed, int64_t expires,
                      int64_t now_ms, sw_shared_done_fn done, void *ud);

/* Another node took over connection id (a resume there): the copy here,
 * if any, ends without a word to its client (it has moved) and without
 * forgetting the record (core/conn.c). */
void conn_moved(struct sw_server *srv, const char *id);

/* What a node does when it learns of a change, whoever made it (the admin
 * API here, or another node through an implementation's channel):
 *
 * server_delete_app: a is deleted (marked: never freed while the server
 * runs), its identity providers released, its live connections fail with
 * 40400, its stored history dropped. Idempotent. */
void server_delete_app(struct sw_server *srv, sw_app_t *a);
/* Live connections on a token of key that rules now in force revoke fail
 * (40141); those revoked from applies_at (> now) are asked to
 * reauthenticate (an AUTH) first. */
void server_enforce_revocations(struct sw_server *srv, const sw_key_t *key, int64_t now_ms, int64_t applies_at);
/* Keeps a sealed token in this node's store: 0, or -1 with err (42910 when
 * the store's bounds are reached, 50000 otherwise). -EEXIST counts as 0. */
int server_store_token(struct sw_server *srv, const char *id, const char *sealed, int64_t expires, int64_t now_ms,
                       sw_error_t *err);
/* The development app the first start without apps creates (id "dev"): its
 * spec (new reference), and the lines that print it once it is registered. */
json_t *server_dev_app_spec(void);
void server_announce_dev_app(struct sw_server *srv, const sw_app_t *a);

#endif
