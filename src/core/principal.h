/* principal.h: who a connection or REST request acts as, from any
 * credential: an API key (Basic), an Ably token, an Ably JWT (plain or
 * carrying an embedded token), or a JWT of an app's identity provider
 * (docs/identity.md).
 *
 * A principal owns its capability (already narrowed to the issuing key's:
 * token ∩ key), its clientId and the claims it carries. */
#ifndef SW_CORE_PRINCIPAL_H
#define SW_CORE_PRINCIPAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth/capability.h"
#include "core/app.h"
#include "proto/errors.h"

typedef struct sw_server sw_server_t;

typedef enum { SW_CRED_KEY = 1, SW_CRED_TOKEN, SW_CRED_JWT, SW_CRED_PROVIDER } sw_cred_kind_t;

typedef struct sw_principal {
  sw_cred_kind_t kind;
  bool revocable;         /* (here, beside kind: no padding hole in every connection) */
  sw_app_t *app;
  const sw_key_t *key;    /* the issuing key; for a provider token the provider's bounding
                             key, or NULL when it has none */
  const sw_idp_t *idp;    /* SW_CRED_PROVIDER: the provider that issued the token */
  char *workspace;        /* the Assistant Cloud workspace (src/cloud/): an Ably JWT's
                             x-switchboard-workspace claim, or a provider token's workspace
                             template expanded; NULL if none (the cloud then uses the clientId) */
  sw_cap_t *cap;          /* effective capability, owned */
  char *client_id;        /* NULL: anonymous (a key: may act as anyone); "*": wildcard */
  int64_t issued;         /* ms; 0 for keys */
  int64_t expires;        /* ms; 0 for keys */
  char *revocation_key;   /* JWT x-ably-revocation-key / token revocation key */
  json_t *channel_claims; /* JWT ably.channel.* claims, or NULL */
} sw_principal_t;

/* From a full key string "appId.keyId:secret". 0 or -1 with err. */
int principal_from_key(sw_server_t *srv, const char *keystr, size_t n, sw_principal_t *p,
                       sw_error_t *err);
/* From a token string (Ably token, Ably JWT, or an identity provider's
 * JWT); checks expiry and revocation. Errors are 4014x (so SDKs renew),
 * 40400 for an unknown key, 40160 when the token's capability does not
 * intersect the key's, 40101 when a provider's template cannot be filled
 * from the token's claims. */
int principal_from_token(sw_server_t *srv, const char *tok, size_t n, sw_principal_t *p,
                         sw_error_t *err);
/* The identity a connection or request acts as (RSA7, RTN2d): requested is
 * the clientId the client asked for (NULL if none). *out becomes NULL
 * (anonymous), "*" (wildcard) or a name; malloc'd. Errors: 40012 invalid
 * clientId, 40102 a clientId the credentials do not allow. */
int principal_client_id(const sw_principal_t *p, const char *requested, char **out, sw_error_t *err);
/* May a client acting as conn_client_id (see principal_client_id) publish
 * or enter presence with message clientId *msg_client_id? Stamps the
 * identity when the message has none. 0 or -1 with 40012. */
int principal_check_message_client_id(const sw_principal_t *p, const char *conn_client_id,
                                      char **msg_client_id, sw_error_t *err);
/* Is the principal revoked now (RSA17)? Fills err with 40141 when it is. */
bool principal_revoked(sw_server_t *srv, const sw_principal_t *p, int64_t now_ms, sw_error_t *err);
/* The user claim for a channel (most specific matching resource), or NULL. Borrowed. */
json_t *principal_channel_claim(const sw_principal_t *p, const char *channel);
void principal_clear(sw_principal_t *p);

#endif
