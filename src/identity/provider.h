/* provider.h: an identity provider's configuration (issue 16; the user's
 * view is docs/identity.md).
 *
 * An app may list "identityProviders" in its spec (config file or POST
 * /apps). Each becomes an sw_idp_t, owned by its app (core/app.c), parsed
 * and checked here without I/O: a bad provider refuses the whole app with
 * 40000 and a message naming the field. The keys themselves are loaded by
 * the identity module (identity.h), which also keeps each provider's
 * runtime state in `rt`.
 *
 * Shape (every name is the interface; unknown names are refused, so a typo
 * such as "audiance" cannot silently switch a check off):
 *   {"id": "clerk",                          required, [A-Za-z0-9_.-]{1,64}
 *    "issuer": "https://clerk.example.com",  required, compared byte for byte with iss
 *    "audience": "my-app" | ["my-app", ...], optional; when set aud is required
 *    "algorithms": ["RS256", "ES256", "EdDSA"], default ["RS256"]
 *    "clientId": "{sub}",                    template; absent: no clientId
 *    "capability": {"conversations:{sub}:*": ["publish", ...]}, templates
 *    "workspace": "{sub}",                   template; for the Assistant Cloud API
 *    "key": "keyId" | "appId.keyId",         an app key that bounds the capability
 *    one key source:
 *      "jwksUri": "https://.../jwks.json"  | "discovery": true
 *      | "jwksFile": "/path" (config file only) | "jwks": {"keys": [...]}
 *      | "sharedSecret": "..." (HS256/384/512 only, at least 32 bytes)
 *    "caFile": "/path/ca.pem",               config file only; with jwksUri/discovery
 *    "clockSkewSeconds", "refreshMinSeconds", "refreshMaxSeconds",
 *    "maxStaleSeconds", "fetchTimeoutSeconds", "maxJwksBytes"}
 * A provider needs "capability" or "key" (or both). */
#ifndef SW_IDENTITY_PROVIDER_H
#define SW_IDENTITY_PROVIDER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/jwk.h"
#include "proto/errors.h"

#define SW_IDP_MAX_PER_APP 16
#define SW_IDP_MAX_AUDIENCES 16
#define SW_IDP_MAX_CAP_RESOURCES 64

typedef enum {
  SW_IDP_SRC_URI = 1,   /* jwksUri */
  SW_IDP_SRC_DISCOVERY, /* OIDC discovery from the issuer */
  SW_IDP_SRC_FILE,      /* jwksFile */
  SW_IDP_SRC_INLINE,    /* jwks */
  SW_IDP_SRC_SECRET,    /* sharedSecret (HMAC) */
} sw_idp_source_t;

typedef struct sw_idp_cap_entry {
  char *resource; /* template */
  json_t *ops;    /* array of operation names, as configured */
} sw_idp_cap_entry_t;

typedef struct sw_idp {
  char *id;
  char *app_id;
  char *issuer;
  char **audiences;
  size_t n_audiences;
  uint32_t algs;                 /* SW_JWS_ALG_BIT mask */
  char *client_id_tmpl;          /* NULL: tokens give no clientId */
  sw_idp_cap_entry_t *cap;       /* NULL with n_cap 0: the key's capability */
  size_t n_cap;
  char *workspace_tmpl;          /* NULL: none */
  char *key_id;                  /* the bounding key's keyName "appId.keyId", or NULL */
  bool key_revocable;            /* set by the app: tokens then need iat and live <= 1 h */
  struct sw_cap *no_key_bound;   /* {"[*]*":["*"]}: what bounds the capability without a key */
  char *cache_name;              /* "idp:<app>/<id>", this provider's name in the capability memo */
  sw_idp_source_t source;
  char *jwks_uri;                /* SW_IDP_SRC_URI */
  char *jwks_file;               /* SW_IDP_SRC_FILE */
  char *ca_file;                 /* NULL: the system's CA bundle */
  sw_jwks_t *inline_keys;        /* SW_IDP_SRC_INLINE */
  uint8_t *secret;               /* SW_IDP_SRC_SECRET, wiped on free */
  size_t secret_len;
  int64_t leeway_ms;             /* -1: the server's auth.clockSkewMs */
  int64_t refresh_min_ms, refresh_max_ms, max_stale_ms, fetch_timeout_ms;
  size_t max_jwks_bytes;
  struct sw_idp_rt *rt;          /* identity module's runtime state; NULL until registered */
} sw_idp_t;

/* Parses one provider of app app_id. allow_files: jwksFile and caFile are
 * accepted (config file only: the admin API must not make the server read
 * local files). Returns a new provider (free with idp_free) or NULL with
 * err 40000 (50000 out of memory). */
sw_idp_t *idp_parse(const json_t *o, const char *app_id, bool allow_files, sw_error_t *err);
void idp_free(sw_idp_t *p);

/* Is u an acceptable URL to fetch keys or discovery from: https, or http on
 * a loopback host (127.0.0.0/8, ::1, localhost)? Checked with libcurl's own
 * URL parser, so the check and the fetch read the URL the same way. */
bool idp_url_ok(const char *u);

/* May a and b never claim the same token? They conflict when their issuers
 * are equal and either has no audience or they share one. */
bool idp_conflict(const sw_idp_t *a, const sw_idp_t *b);

#endif
