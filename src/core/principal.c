#include "core/principal.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "auth/cap_cache.h"
#include "auth/claim_template.h"
#include "auth/jwt.h"
#include "auth/token.h"
#include "auth/token_request.h"
#include "core/server.h"
#include "identity/identity.h"
#include "util/clock.h"

void principal_clear(sw_principal_t *p) {
  cap_free(p->cap);
  free(p->client_id);
  free(p->workspace);
  free(p->revocation_key);
  json_decref(p->channel_claims);
  memset(p, 0, sizeof *p);
}

int principal_from_key(sw_server_t *srv, const char *keystr, size_t n, sw_principal_t *p,
                       sw_error_t *err) {
  sw_app_t *app;
  sw_key_t *key;
  memset(p, 0, sizeof *p);
  if (apps_key_check(&srv->apps, keystr, n, &app, &key, err)) return -1;
  p->kind = SW_CRED_KEY;
  p->app = app;
  p->key = key;
  p->cap = cap_ref(key->cap);
  return 0;
}

/* Splits a keyName into its app and key. */
static int find_key(sw_server_t *srv, const char *key_name, sw_app_t **app, sw_key_t **key) {
  const char *dot = strchr(key_name, '.');
  if (!dot || (size_t)(dot - key_name) >= 128) return -1;
  char app_id[128];
  memcpy(app_id, key_name, (size_t)(dot - key_name));
  app_id[dot - key_name] = '\0';
  *app = apps_find(&srv->apps, app_id);
  *key = *app ? app_find_key(*app, key_name, strlen(key_name)) : NULL;
  return *key ? 0 : -1;
}

static int jwt_lookup(void *ud, const char *kid, size_t kid_len, const uint8_t **secret, size_t *len) {
  sw_server_t *srv = ud;
  char name[SW_JWT_KID_MAX];
  if (kid_len >= sizeof name) return -1;
  memcpy(name, kid, kid_len);
  name[kid_len] = '\0';
  sw_app_t *app;
  sw_key_t *key;
  if (find_key(srv, name, &app, &key)) return -1;
  *secret = (const uint8_t *)key->secret;
  *len = strlen(key->secret);
  return 0;
}

/* Narrows a token's capability to what its key allows now (the key's
 * capability may have changed since the token was issued). */
static int narrow(sw_server_t *srv, sw_principal_t *p, const char *cap_json, sw_error_t *err) {
  if (!cap_json) {
    p->cap = cap_ref(p->key->cap);
    return 0;
  }
  sw_error_t cerr = {0};
  p->cap = cap_cache_effective(srv->cap_cache, p->key->name, p->key->cap, cap_json, &cerr);
  if (p->cap) return 0;
  if (cerr.code == SW_E_CAPABILITY_DENIED) {
    *err = cerr;
    return -1;
  }
  return errors_set(err, 40144, "invalid capability in token: %s", cerr.message);
}

/* The sealed token a reference stands for (auth/token.h, "References"):
 * 0 with *sealed (malloc'd), or -1 with err. A reference the store does not
 * hold is 40143, which errors.json gives for a token Ably "could not find a
 * record of" (it keeps records only while tokens are valid, as we do: the
 * store prunes expired ones). */
static int dereference(sw_server_t *srv, const char *ref, size_t n, char **sealed, sw_error_t *err) {
  char id[SW_TOKEN_REF_ID_LEN + 1];
  int64_t expires = 0;
  token_ref_id(ref, n, id);
  int rc = srv->store ? store_expiring_get(srv->store, id, sealed, &expires) : 0;
  if (rc == 1) return 0;
  if (rc < 0) return errors_set(err, SW_E_INTERNAL, "token lookup failed");
  return errors_set(err, 40143, "token not recognised");
}

static int from_ably_token(sw_server_t *srv, const char *tok, size_t n, int64_t now, sw_principal_t *p,
                           sw_error_t *err) {
  sw_token_info_t info = {0};
  char *sealed = NULL;
  if (token_ref_looks_like(tok, n)) {
    if (dereference(srv, tok, n, &sealed, err)) return -1;
    tok = sealed;
    n = strlen(sealed);
  }
  int vrc = token_verify(srv->token_secret, tok, n, now, &info, err);
  if (sealed) OPENSSL_cleanse(sealed, n);
  free(sealed);
  if (vrc) return -1;
  sw_app_t *app;
  sw_key_t *key;
  int rc = -1;
  if (find_key(srv, info.key_name, &app, &key)) {
    /* The issuing key was removed: the token is no longer recognised. */
    errors_set(err, 40143, "token not recognised: its key no longer exists");
    goto done;
  }
  p->kind = SW_CRED_TOKEN;
  p->app = app;
  p->key = key;
  p->issued = info.issued;
  p->expires = info.expires;
  p->revocable = info.revocable;
  p->client_id = info.client_id;
  p->revocation_key = info.revocation_key;
  info.client_id = info.revocation_key = NULL;
  rc = narrow(srv, p, info.capability, err);
done:
  token_info_clear(&info);
  return rc;
}

static int from_jwt(sw_server_t *srv, const char *tok, size_t n, int64_t now, bool embedded, sw_principal_t *p,
                    sw_error_t *err) {
  sw_jwt_t j = {0};
  sw_jwt_opts_t o = {.now_ms = now,
                     .leeway_ms = srv->cfg->auth.clock_skew_ms,
                     .max_len = srv->cfg->auth.max_token_len,
                     .forbid_embedded = embedded,
                     .cache = srv->jwt_cache};
  if (jwt_verify(tok, n, jwt_lookup, srv, &o, &j, err)) return -1;
  /* Tokens of keys with revocable tokens live at most an hour (RSA17). */
  if (!j.embedded_token) {
    sw_app_t *kapp;
    sw_key_t *kkey;
    if (find_key(srv, j.kid, &kapp, &kkey) == 0 && kkey->revocable && j.exp_ms - j.iat_ms > SW_TOKEN_MAX_TTL_REVOCABLE_MS) {
      jwt_clear(&j);
      return errors_set(err, SW_E_INVALID_PARAM, "a token of a key with revocable tokens may live at most 1 hour");
    }
  }
  int rc = -1;
  if (j.embedded_token) {
    /* An Ably token or JWT inside a JWT (its outer signature is not ours
     * to check); the outer token may not outlive the inner one. */
    const char *inner = j.embedded_token;
    size_t in = strlen(inner);
    rc = jwt_looks_like(inner, in) ? from_jwt(srv, inner, in, now, true, p, err)
                                   : from_ably_token(srv, inner, in, now, p, err);
    if (rc == 0 && j.exp_ms > p->expires) {
      principal_clear(p);
      rc = errors_set(err, 40144, "invalid JWT: the outer token expires after the embedded token");
    }
    jwt_clear(&j);
    return rc;
  }
  sw_app_t *app;
  sw_key_t *key;
  if (find_key(srv, j.kid, &app, &key)) {
    errors_set(err, SW_E_NOT_FOUND, "key not found");
    goto done;
  }
  p->kind = SW_CRED_JWT;
  p->app = app;
  p->key = key;
  p->issued = j.iat_ms;
  p->expires = j.exp_ms;
  /* JWTs of a key with revocable tokens can be revoked (by clientId,
   * revocationKey or channel). */
  p->revocable = key->revocable;
  p->client_id = j.client_id;
  p->revocation_key = j.revocation_key;
  p->channel_claims = j.channel_claims;
  p->workspace = j.workspace;
  j.workspace = NULL;
  j.client_id = j.revocation_key = NULL;
  j.channel_claims = NULL;
  rc = narrow(srv, p, j.capability, err);
done:
  jwt_clear(&j);
  return rc;
}

/* ---- identity providers (docs/identity.md) ---- */

/* The provider's capability templates filled from the token's claims, as
 * JSON text; two templates that expand to one resource get the union of
 * their operations. NULL with err (40101 a claim cannot fill a template). */
static char *provider_capability(const sw_idp_t *idp, const json_t *claims, sw_error_t *err) {
  json_t *cap = json_object();
  char *text = NULL;
  for (size_t i = 0; cap && i < idp->n_cap; i++) {
    char *res = tmpl_expand(idp->cap[i].resource, claims, err);
    if (!res) goto done;
    json_t *have = json_object_get(cap, res);
    if (!have) {
      json_object_set_new(cap, res, json_deep_copy(idp->cap[i].ops));
    } else {
      size_t k;
      json_t *op;
      json_array_foreach(idp->cap[i].ops, k, op) json_array_append(have, op);
    }
    free(res);
  }
  if (!cap || !(text = json_dumps(cap, JSON_COMPACT | JSON_SORT_KEYS))) errors_set(err, SW_E_INTERNAL, "out of memory");
done:
  json_decref(cap);
  return text;
}

/* "ably.channel.<resource>" claims, as an Ably JWT's (docs/jwt.md). */
static json_t *provider_channel_claims(const json_t *claims) {
  static const char prefix[] = "ably.channel.";
  json_t *out = NULL;
  const char *name;
  json_t *v;
  json_object_foreach((json_t *)claims, name, v) {
    if (strncmp(name, prefix, sizeof prefix - 1) != 0 || !name[sizeof prefix - 1]) continue;
    if (!out && !(out = json_object())) return NULL;
    json_object_set(out, name + sizeof prefix - 1, v);
  }
  return out;
}

/* A verified provider token becomes a principal: the app of the provider,
 * its bounding key (or none), clientId and workspace from their templates,
 * the capability from its templates narrowed to the key's (or alone), then
 * narrowed again by an x-ably-capability claim if the token has one. */
static int from_provider(sw_server_t *srv, sw_idp_token_t *t, sw_principal_t *p, sw_error_t *err) {
  const sw_idp_t *idp = t->idp;
  sw_app_t *app = apps_find(&srv->apps, idp->app_id);
  sw_key_t *key = NULL;
  if (!app) return errors_set(err, SW_E_NOT_FOUND, "the identity provider's app no longer exists");
  if (idp->key_id && !(key = app_find_key(app, idp->key_id, strlen(idp->key_id))))
    return errors_set(err, 40143, "token not recognised: the identity provider's key no longer exists");
  p->kind = SW_CRED_PROVIDER;
  p->app = app;
  p->key = key;
  p->idp = idp;
  p->issued = t->iat_ms;
  p->expires = t->exp_ms;
  p->revocable = key && key->revocable;
  const json_t *c = t->claims;
  if (idp->client_id_tmpl && !(p->client_id = tmpl_expand(idp->client_id_tmpl, c, err))) return -1;
  if (idp->workspace_tmpl && !(p->workspace = tmpl_expand(idp->workspace_tmpl, c, err))) return -1;
  const char *rk = json_string_value(json_object_get(c, "x-ably-revocation-key"));
  if (rk && *rk && !(p->revocation_key = strdup(rk))) return errors_set(err, SW_E_INTERNAL, "out of memory");
  p->channel_claims = provider_channel_claims(c);
  if (!idp->n_cap) {
    p->cap = cap_ref(key->cap);
  } else {
    char *text = provider_capability(idp, c, err);
    if (!text) return -1;
    sw_error_t cerr = {0};
    p->cap = cap_cache_effective(srv->cap_cache, key ? key->name : idp->cache_name, key ? key->cap : idp->no_key_bound,
                                 text, &cerr);
    free(text);
    if (!p->cap) {
      *err = cerr;
      if (cerr.code != SW_E_CAPABILITY_DENIED)
        errors_set(err, SW_E_INVALID_CREDENTIALS, "the identity provider's capability for this token is invalid: %s",
                   cerr.message);
      return -1;
    }
  }
  const json_t *xc = json_object_get(c, "x-ably-capability");
  if (xc) {
    char *text = json_is_string(xc) ? strdup(json_string_value(xc)) : json_is_object(xc) ? json_dumps(xc, JSON_COMPACT) : NULL;
    sw_error_t cerr = {0};
    sw_cap_t *want = text ? cap_parse(text, strlen(text), &cerr) : NULL;
    free(text);
    if (!want) return errors_set(err, 40144, "invalid JWT: x-ably-capability is not a valid capability");
    sw_cap_t *narrowed = cap_intersect(want, p->cap, &cerr);
    cap_free(want);
    if (!narrowed) {
      *err = cerr;
      return -1;
    }
    cap_free(p->cap);
    p->cap = narrowed;
  }
  return 0;
}

static bool kid_is_key(void *ud, const char *kid) {
  sw_app_t *app;
  sw_key_t *key;
  return find_key(ud, kid, &app, &key) == 0;
}

/* 1: not a provider's token (an Ably JWT); 0 or -1 as principal_from_token. */
static int try_provider(sw_server_t *srv, const char *tok, size_t n, int64_t now, sw_principal_t *p, sw_error_t *err) {
  sw_identity_verify_opts_t o = {.now_ms = now,
                                 .default_leeway_ms = srv->cfg->auth.clock_skew_ms,
                                 .max_len = srv->cfg->auth.max_token_len,
                                 .is_key = kid_is_key,
                                 .is_key_ud = srv};
  sw_idp_token_t t;
  int rc = identity_verify(srv->identity, tok, n, &o, &t, err);
  if (rc == 0) {
    rc = from_provider(srv, &t, p, err) ? -1 : 0;
    identity_token_clear(&t);
  }
  return rc;
}

int principal_from_token(sw_server_t *srv, const char *tok, size_t n, sw_principal_t *p,
                         sw_error_t *err) {
  int64_t now = clock_now_ms();
  memset(p, 0, sizeof *p);
  int rc;
  if (token_looks_like(tok, n) || token_ref_looks_like(tok, n)) rc = from_ably_token(srv, tok, n, now, p, err);
  else if (jwt_looks_like(tok, n)) {
    /* A kid naming an app key makes an Ably JWT; otherwise iss (and aud)
     * may select an identity provider. Without providers nothing changes. */
    rc = identity_any(srv->identity) ? try_provider(srv, tok, n, now, p, err) : 1;
    if (rc == 1) rc = from_jwt(srv, tok, n, now, false, p, err);
  }
  /* Dotted but not three segments: a JWT with a segment missing or a JWE. */
  else if (memchr(tok, '.', n)) rc = errors_set(err, 40144, "invalid JWT: expected header.claims.signature");
  else rc = errors_set(err, 40143, "token not recognised");
  if (rc == 0 && p->client_id && !*p->client_id) rc = errors_set(err, SW_E_INVALID_CLIENT_ID, "empty clientId in token");
  /* Expiry is judged by this server's clock, without leeway (RSA4b1; the
   * clock-skew leeway is for an issuer's iat): a connection is dropped at
   * the token's expiry, so it is not accepted after it either. */
  if (rc == 0 && p->expires && p->expires <= now) rc = errors_set(err, SW_E_TOKEN_EXPIRED, "token expired");
  if (rc == 0 && principal_revoked(srv, p, now, err)) rc = -1;
  if (rc) principal_clear(p);
  return rc ? -1 : 0;
}

int principal_client_id(const sw_principal_t *p, const char *requested, char **out, sw_error_t *err) {
  *out = NULL;
  if (requested && (!*requested || strcmp(requested, "*") == 0))
    return errors_set(err, SW_E_INVALID_CLIENT_ID, "invalid clientId: must be a non-empty string other than *");
  const char *id = requested;
  if (p->kind != SW_CRED_KEY) {
    const char *tc = p->client_id;
    if (!requested) id = tc;
    else if (!tc)
      return errors_set(err, SW_E_INCOMPATIBLE_CREDENTIALS,
                        "clientId %.64s is not allowed: the token has no clientId", requested);
    else if (strcmp(tc, "*") != 0 && strcmp(tc, requested) != 0)
      return errors_set(err, SW_E_INCOMPATIBLE_CREDENTIALS,
                        "clientId %.64s is incompatible with the token's clientId %.64s", requested, tc);
  }
  if (id && !(*out = strdup(id))) return errors_set(err, SW_E_INTERNAL, "out of memory");
  return 0;
}

int principal_check_message_client_id(const sw_principal_t *p, const char *conn_client_id,
                                      char **msg_client_id, sw_error_t *err) {
  const char *m = *msg_client_id;
  if (m && (!*m || strcmp(m, "*") == 0))
    return errors_set(err, SW_E_INVALID_CLIENT_ID, "invalid clientId in message");
  if (conn_client_id && strcmp(conn_client_id, "*") != 0) {
    if (!m) return (*msg_client_id = strdup(conn_client_id)) ? 0 : errors_set(err, SW_E_INTERNAL, "out of memory");
    if (strcmp(m, conn_client_id) != 0)
      return errors_set(err, SW_E_INVALID_CLIENT_ID, "mismatched clientId %.64s for a client identified as %.64s", m,
                        conn_client_id);
    return 0;
  }
  /* Anonymous token clients cannot claim an identity (RSA8f); wildcard
   * clients and API keys may name any. */
  if (m && !conn_client_id && p->kind != SW_CRED_KEY)
    return errors_set(err, SW_E_INVALID_CLIENT_ID, "an anonymous client cannot publish with clientId %.64s", m);
  return 0;
}

static bool cap_names_resource(const sw_cap_t *c, const char *resource) {
  char *s = cap_canonical(c);
  json_t *o = s ? json_loads(s, 0, NULL) : NULL;
  bool found = json_object_get(o, resource) != NULL;
  json_decref(o);
  free(s);
  return found;
}

bool principal_revoked(sw_server_t *srv, const sw_principal_t *p, int64_t now_ms, sw_error_t *err) {
  if (!p->revocable || p->kind == SW_CRED_KEY) return false;
  const sw_revocations_t *r = &srv->revocations;
  for (size_t i = 0; i < r->n; i++) {
    const sw_revocation_t *e = &r->rules[i];
    if (now_ms < e->applies_at || p->issued >= e->issued_before || strcmp(e->key_name, p->key->name) != 0)
      continue;
    bool match = false;
    switch (e->type) {
    case SW_REVOKE_CLIENT_ID: match = p->client_id && strcmp(p->client_id, e->value) == 0; break;
    case SW_REVOKE_REVOCATION_KEY: match = p->revocation_key && strcmp(p->revocation_key, e->value) == 0; break;
    case SW_REVOKE_CHANNEL: match = cap_names_resource(p->cap, e->value); break;
    }
    if (match) {
      errors_set(err, SW_E_TOKEN_REVOKED, "token revoked");
      return true;
    }
  }
  return false;
}

json_t *principal_channel_claim(const sw_principal_t *p, const char *channel) {
  if (!p->channel_claims) return NULL;
  const char *resource;
  json_t *v, *best = NULL;
  size_t best_score = 0;
  json_object_foreach(p->channel_claims, resource, v) {
    /* A one-resource capability reuses the capability matcher. */
    json_t *capj = json_pack("{s:[s]}", resource, "subscribe");
    char *text = capj ? json_dumps(capj, JSON_COMPACT) : NULL;
    sw_cap_t *c = text ? cap_parse(text, strlen(text), NULL) : NULL;
    if (c && cap_ops_for_channel(c, channel)) {
      /* Most specific wins: the exact name, then the longest pattern. */
      size_t score = strcmp(resource, channel) == 0 ? SIZE_MAX : strlen(resource) + 1;
      if (score > best_score) {
        best = v;
        best_score = score;
      }
    }
    cap_free(c);
    free(text);
    json_decref(capj);
  }
  return best;
}
