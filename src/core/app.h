/* app.h: apps, their keys and namespaces (the tenant model).
 *
 * An app is described by a JSON spec, the same shape for the config file,
 * for POST /apps (the post_apps body of Ably's sandbox set-up; our tests' is
 * tests/fixtures/app-setup.json)
 * and for what is persisted: {"id", "keys":[{"id","secret","capability",
 * "revocableTokens"}], "namespaces":[{"id", rules...}], "channels":[...],
 * "anonymous":{...}} (anonymous users of the Assistant Cloud API, checked
 * by cloud/, through app_set_spec_check: docs/identity.md), "identityProviders":[see
 * identity/provider.h].
 * app_from_spec() fills in what a POST leaves out (ids, secrets) so the
 * stored spec is complete.
 *
 * Ownership: the registry owns its apps; an app owns its keys, namespaces,
 * identity providers and spec. Apps are never freed while the server runs (deleted apps are
 * only marked) so connections may keep plain pointers to them. */
#ifndef SW_CORE_APP_H
#define SW_CORE_APP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth/capability.h"
#include "identity/provider.h"
#include "proto/errors.h"

/* Ably's default retention for non-persisted channels is two minutes. */
#define SW_DEFAULT_RETENTION_MS (2 * 60 * 1000LL)
#define SW_PERSISTED_RETENTION_MS (24 * 3600 * 1000LL)
#define SW_MAX_RETENTION_S (100 * 365 * 24 * 3600LL) /* a namespace's retentionSeconds */

typedef struct sw_key {
  char *name;           /* "appId.keyId" (keyName) */
  char *secret;
  char *capability;     /* canonical capability JSON (cap_canonical) */
  sw_cap_t *cap;
  bool revocable;
} sw_key_t;

typedef struct sw_namespace {
  char *id;             /* channel-name prefix before the first ':' */
  bool persisted;
  bool mutable_messages;
  bool push_enabled;
  bool identified;      /* only identified clients (40161) */
  bool authenticated;   /* no anonymous/basic-less access (tokens or keys) */
  bool tls_only;
  bool cancel_owner_only; /* cancelByTurnOwnerOnly (core/ai_turns.h) */
  int64_t retention_ms; /* age retention */
  int64_t keep_count;   /* count retention, 0 = unlimited */
} sw_namespace_t;

typedef struct sw_app {
  char *id;
  sw_key_t *keys;
  size_t n_keys;
  sw_namespace_t *namespaces;
  size_t n_namespaces;
  sw_namespace_t default_ns; /* rules for channels outside any namespace */
  sw_idp_t **idps;           /* identityProviders (identity/provider.h), owned */
  size_t n_idps;
  json_t *spec;              /* complete spec, persisted as-is */
  bool deleted;
} sw_app_t;

struct sw_identity;

typedef struct sw_apps {
  sw_app_t **apps;
  size_t n;
  struct sw_identity *identity; /* where apps_add registers identity providers; NULL: nowhere */
} sw_apps_t;

/* Builds an app from a spec. generate: fill in missing app id, key ids and
 * secrets (admin API); otherwise they are required (config file). Returns
 * NULL with err set (40000 family) on an invalid spec. identityProviders
 * may name local files (jwksFile, caFile) only when !generate: the admin
 * API must not make the server read files. */
sw_app_t *app_from_spec(const json_t *spec, bool generate, sw_error_t *err);
/* The check app_from_spec applies to the sections of a spec that a layer
 * above core/ owns ("anonymous": cloud/), on the app it built: 0, or -1
 * with err. Set once at start-up, before any app is made (root_init). */
typedef int (*sw_app_spec_check_fn)(const struct sw_app *a, sw_error_t *err);
void app_set_spec_check(sw_app_spec_check_fn fn);
void app_free(sw_app_t *a);

/* Adds a (the registry takes ownership) and registers its identity
 * providers with r->identity. Returns 0, or -1 with err 40000 if an app with
 * the same id exists or a provider conflicts with another app's (the same
 * issuer and audience: identity_add). */
int apps_add(sw_apps_t *r, sw_app_t *a, sw_error_t *err);
/* Live app by id, or NULL (deleted apps are not found). */
sw_app_t *apps_find(const sw_apps_t *r, const char *id);
/* Checks a full key string, "appId.keyId:secret" (the keyName is everything
 * before the first ':'; the secret is compared in constant time). On
 * success returns 0 with *app and *key set (borrowed from the registry).
 * Errors: 40005 malformed key; 40101 unknown app or key, or wrong secret
 * (alike, so the answer does not tell which apps or keys exist). */
int apps_key_check(const sw_apps_t *apps, const char *keystr, size_t len, sw_app_t **app, sw_key_t **key,
                   sw_error_t *err);
void apps_free(sw_apps_t *r);

/* Key by keyName ("appId.keyId") within app, or NULL. */
sw_key_t *app_find_key(const sw_app_t *a, const char *key_name, size_t len);
/* The namespace rules for a channel (its prefix before ':', else defaults). */
const sw_namespace_t *app_namespace_for(const sw_app_t *a, const char *channel);
/* The namespace's transport rule: a tlsOnly namespace refuses any use over a
 * connection or request that did not come over TLS (ours, or a trusted
 * proxy's X-Forwarded-Proto: https), with 40311 (403). 0, or -1 with *err. */
int app_namespace_transport_check(const sw_namespace_t *ns, bool secure, sw_error_t *err);

/* The POST /apps response: {appId, keys:[{id, value, keyName, keySecret,
 * keyStr, capability, revocableTokens}], namespaces, channels}. New ref. */
json_t *app_to_json(const sw_app_t *a);

/* Random URL-safe identifier of n characters from OpenSSL's CSPRNG into
 * out[n + 1]. Returns 0, or -1 if the CSPRNG fails. */
int app_random_id(char *out, size_t n);

#endif
