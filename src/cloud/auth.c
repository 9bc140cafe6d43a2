/* auth.c: the token routes of the Assistant Cloud API, the token exchange,
 * and anonymous users (docs/identity.md, "Anonymous users").
 *
 * Every token this file hands out is an Ably JWT (HS256, signed with an app
 * key, kid = its keyName) carrying x-switchboard-workspace: principal_from_token
 * accepts it, the assistant-cloud client can read its exp, and an ably SDK
 * can connect with it (e.g. to subscribe to the thread channels).
 *
 *  POST /v1/auth/tokens            a backend (app key + Aui-User-Id +
 *                                  Aui-Workspace-Id) gets {token} for a
 *                                  browser's authToken callback;
 *  POST /v1/auth/tokens/anonymous  a new anonymous identity: {access_token,
 *                                  refresh_token: {token, expires_at}};
 *                                  rate limited per client address and app;
 *  POST /v1/auth/tokens/refresh    {refresh_token} -> the same identity again.
 *  Any other request made with a token that is not already one of these
 *  (no x-switchboard-workspace) gets one in its Authorization response
 *  header, which the client then uses until it nears expiry. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/b64url.h"
#include "auth/jwt.h"
#include "cloud/cloud.h"
#include "cloud/cloud_int.h"
#include "core/server.h"
#include "core/sock.h"
#include "util/clock.h"
#include "util/hash.h"

#define EXCHANGE_TTL_S 900       /* a token of ours lives 15 minutes, at most as long as the one it replaces */
#define BACKEND_TOKEN_TTL_S 3600 /* what /auth/tokens hands out */
#define REFRESH_MAX_LEN 1024     /* bytes of a refresh token we accept */
#define RATE_WINDOW_MS 60000
#define RATE_MAX_ADDRESSES 10000 /* client addresses remembered per app (docs/design.md, "Limits") */
#define CLOUD_OPS "[\"history\",\"publish\",\"subscribe\"]"

/* ------------------------------------------------------------ minting */

/* An Ably JWT signed with key, its capability cap ∩ the key's. NULL with
 * err (40160 when nothing is left, 50000). */
static char *mint(const sw_key_t *key, const sw_cap_t *cap, int64_t iat_s, int64_t exp_s, const char *client_id,
                  const char *revocation_key, const char *workspace, sw_error_t *err) {
  sw_cap_t *eff = cap_intersect(cap, key->cap, err);
  char *text = eff ? cap_canonical(eff) : NULL;
  char *tok = text ? jwt_sign_ably_ws(key->name, (const uint8_t *)key->secret, strlen(key->secret), iat_s, exp_s,
                                      text, client_id, revocation_key, workspace)
                   : NULL;
  if (eff && !tok) errors_set(err, SW_E_INTERNAL, "cannot sign a token");
  cap_free(eff);
  free(text);
  return tok;
}

/* {"cloud:{workspace}:*": [history, publish, subscribe]}. */
static sw_cap_t *workspace_cap(const char *workspace, sw_error_t *err) {
  char ch[CLOUD_WORKSPACE_MAX + 16];
  cloud_channel(workspace, NULL, ch, sizeof ch);
  json_t *o = json_object();
  json_object_set_new(o, ch, json_loads(CLOUD_OPS, 0, NULL));
  char *text = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  sw_cap_t *c = text ? cap_parse(text, strlen(text), err) : NULL;
  free(text);
  return c;
}

void cloud_exchange(cloud_req_t *c) {
  const sw_principal_t *p = &c->p;
  /* Keys need nothing; a token carrying a workspace is already ours (or
   * an issuer's that sets it). A provider token without a bounding key
   * has nothing to sign with: the client keeps its own token. */
  if (p->kind == SW_CRED_KEY || (p->kind == SW_CRED_JWT && p->workspace) || !p->key) return;
  int64_t now_s = clock_now_ms() / 1000, exp_s = now_s + EXCHANGE_TTL_S;
  if (p->expires && p->expires / 1000 < exp_s) exp_s = p->expires / 1000;
  if (exp_s <= now_s + 60) return; /* about to expire: the client renews it anyway */
  sw_error_t err = {0};
  c->exchanged = mint(p->key, p->cap, now_s, exp_s, p->client_id, p->revocation_key, c->workspace, &err);
}

/* POST /v1/auth/tokens: a backend mints a token for one of its users. */
static void backend_token(cloud_req_t *c) {
  if (!cloud_authenticate(c)) return;
  if (c->p.kind != SW_CRED_KEY)
    return (void)cloud_fail(c, 40162, "creating tokens needs the app's API key (Bearer or Basic)");
  sw_error_t err = {0};
  sw_cap_t *cap = workspace_cap(c->workspace, &err);
  int64_t now_s = clock_now_ms() / 1000;
  char *tok = cap ? mint(c->p.key, cap, now_s, now_s + BACKEND_TOKEN_TTL_S, c->user, NULL, c->workspace, &err) : NULL;
  cap_free(cap);
  if (!tok) return cloud_error(c, &err);
  json_t *v = json_pack("{s:s}", "token", tok);
  cloud_reply(c, 200, v);
  json_decref(v);
  OPENSSL_cleanse(tok, strlen(tok));
  free(tok);
}

/* ------------------------------------------------------- configuration */

typedef struct anon_cfg {
  const char *client_id; /* template with {id} */
  const json_t *capability; /* resource templates ({clientId}, {id}) -> operations; NULL: the default */
  int64_t ttl_ms, refresh_ttl_ms;
  const char *key_id;    /* NULL: the app's first key */
  int64_t per_address, per_app; /* new identities per minute */
} anon_cfg_t;

static int64_t int_or(const json_t *o, const char *name, int64_t dflt) {
  json_t *v = json_object_get(o, name);
  return json_is_integer(v) ? json_integer_value(v) : dflt;
}

/* Reads the "anonymous" object of an app spec. 0, or -1 with err 40000. */
static int anon_read(const json_t *o, anon_cfg_t *cfg, sw_error_t *err) {
  if (!json_is_object(o)) return errors_set(err, SW_E_BAD_REQUEST, "anonymous must be an object");
  json_t *rl = json_object_get(o, "rateLimit");
  *cfg = (anon_cfg_t){
      .client_id = json_object_get(o, "clientId") ? json_string_value(json_object_get(o, "clientId")) : "anon-{id}",
      .capability = json_object_get(o, "capability"),
      .ttl_ms = int_or(o, "ttl", 10 * 60 * 1000),
      .refresh_ttl_ms = int_or(o, "refreshTtl", 30LL * 24 * 3600 * 1000),
      .key_id = json_string_value(json_object_get(o, "key")),
      .per_address = int_or(rl, "perAddressPerMinute", 10),
      .per_app = int_or(rl, "perMinute", 600),
  };
  if (!cfg->client_id || !strstr(cfg->client_id, "{id}") || strlen(cfg->client_id) > 64)
    return errors_set(err, SW_E_BAD_REQUEST, "anonymous.clientId must be a string of at most 64 bytes holding {id}");
  if (cfg->capability && (!json_is_object(cfg->capability) || json_object_size(cfg->capability) == 0))
    return errors_set(err, SW_E_BAD_REQUEST, "anonymous.capability must be a non-empty object");
  if (cfg->ttl_ms < 60000 || cfg->ttl_ms > 3600000)
    return errors_set(err, SW_E_BAD_REQUEST, "anonymous.ttl must be from 60000 to 3600000 ms");
  if (cfg->refresh_ttl_ms < cfg->ttl_ms || cfg->refresh_ttl_ms > 366LL * 24 * 3600 * 1000)
    return errors_set(err, SW_E_BAD_REQUEST, "anonymous.refreshTtl must be from ttl to 366 days (ms)");
  if (cfg->per_address < 1 || cfg->per_app < 1 || (rl && !json_is_object(rl)))
    return errors_set(err, SW_E_BAD_REQUEST, "anonymous.rateLimit needs perAddressPerMinute and perMinute >= 1");
  if (json_object_get(o, "key") && !cfg->key_id)
    return errors_set(err, SW_E_BAD_REQUEST, "anonymous.key must be a key id");
  return 0;
}

/* Replaces every {name} of tmpl by its value (names: id unless id is NULL,
 * clientId unless client_id is NULL). */
static char *expand(const char *tmpl, const char *id, const char *client_id) {
  sw_buf_t b = {0};
  for (const char *p = tmpl; *p;) {
    if (id && strncmp(p, "{id}", 4) == 0) {
      buf_append_str(&b, id);
      p += 4;
    } else if (client_id && strncmp(p, "{clientId}", 10) == 0) {
      buf_append_str(&b, client_id);
      p += 10;
    } else {
      buf_append_byte(&b, (uint8_t)*p++);
    }
  }
  buf_append_byte(&b, 0);
  return (char *)b.data; /* NULL only when out of memory */
}

/* The capability of an anonymous identity, {clientId} filled in (only the
 * clientId: a refresh knows nothing else of the identity). */
static sw_cap_t *anon_cap(const anon_cfg_t *cfg, const char *client_id, sw_error_t *err) {
  if (!cfg->capability) return workspace_cap(client_id, err);
  json_t *o = json_object();
  const char *res;
  json_t *ops;
  json_object_foreach((json_t *)cfg->capability, res, ops) {
    char *r = expand(res, NULL, client_id);
    if (r) json_object_set(o, r, ops);
    free(r);
  }
  char *text = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  sw_cap_t *c = text ? cap_parse(text, strlen(text), err) : NULL;
  free(text);
  return c;
}

static const sw_key_t *anon_key(const sw_app_t *app, const anon_cfg_t *cfg) {
  if (!cfg->key_id) return app->n_keys ? &app->keys[0] : NULL;
  char name[256];
  int n = snprintf(name, sizeof name, "%s.%s", app->id, cfg->key_id);
  return n > 0 && (size_t)n < sizeof name ? app_find_key(app, name, (size_t)n) : NULL;
}

int cloud_anon_check(const json_t *anonymous, const sw_app_t *app, sw_error_t *err) {
  if (!anonymous) return 0;
  anon_cfg_t cfg;
  if (anon_read(anonymous, &cfg, err)) return -1;
  char *cid = expand(cfg.client_id, "AAAAAAAAAAAAAAAAAAAA", NULL);
  bool ok = cid && cloud_workspace_valid(cid, strlen(cid));
  sw_error_t cerr = {0};
  sw_cap_t *cap = ok ? anon_cap(&cfg, cid, &cerr) : NULL;
  free(cid);
  if (!ok) return errors_set(err, SW_E_BAD_REQUEST, "anonymous.clientId must make a workspace id: no ':', '*' or spaces");
  if (!cap) return errors_set(err, SW_E_BAD_REQUEST, "anonymous.capability: %s", cerr.message);
  const sw_key_t *key = anon_key(app, &cfg);
  /* Tokens are narrowed to the key: one that grants nothing is a mistake. */
  sw_cap_t *eff = key ? cap_intersect(cap, key->cap, NULL) : NULL;
  cap_free(cap);
  if (!key) return errors_set(err, SW_E_BAD_REQUEST, "anonymous.key names no key of the app");
  if (!eff) return errors_set(err, SW_E_BAD_REQUEST, "anonymous.capability grants nothing the signing key allows");
  cap_free(eff);
  return 0;
}

/* ----------------------------------------------------------- rate limit */

typedef struct rate_entry {
  char addr[48];
  int64_t window, count;
  UT_hash_handle hh;
} rate_entry_t;

typedef struct rate_app {
  char *app_id;
  rate_entry_t *addrs;
  int64_t window, count;
  UT_hash_handle hh;
} rate_app_t;

struct sw_cloud_state {
  rate_app_t *apps;
};

/* Counts a new identity for (app, address) in fixed one-minute windows.
 * 0, or -1 with err 42910: over either bound, or the address table full of
 * addresses seen this minute (a flood from many addresses then waits). */
static int rate_admit(sw_server_t *srv, const sw_app_t *app, const char *addr, const anon_cfg_t *cfg,
                      sw_error_t *err) {
  if (!srv->cloud && !(srv->cloud = calloc(1, sizeof *srv->cloud))) return errors_set(err, SW_E_INTERNAL, "out of memory");
  int64_t now = clock_now_ms();
  rate_app_t *ra;
  HASH_FIND_STR(srv->cloud->apps, app->id, ra);
  if (!ra) {
    if (!(ra = calloc(1, sizeof *ra)) || !(ra->app_id = strdup(app->id))) {
      free(ra);
      return errors_set(err, SW_E_INTERNAL, "out of memory");
    }
    HASH_ADD_KEYPTR(hh, srv->cloud->apps, ra->app_id, strlen(ra->app_id), ra);
  }
  if (now - ra->window >= RATE_WINDOW_MS) ra->window = now, ra->count = 0;
  rate_entry_t *e;
  HASH_FIND_STR(ra->addrs, addr, e);
  if (!e && HASH_COUNT(ra->addrs) >= RATE_MAX_ADDRESSES) {
    rate_entry_t *x, *tmp;
    HASH_ITER(hh, ra->addrs, x, tmp) {
      if (now - x->window < RATE_WINDOW_MS) continue;
      HASH_DEL(ra->addrs, x);
      free(x);
    }
    if (HASH_COUNT(ra->addrs) >= RATE_MAX_ADDRESSES)
      return errors_set(err, SW_E_RATE_LIMIT, "too many anonymous sign-ups; try again in a minute");
  }
  if (!e) {
    if (!(e = calloc(1, sizeof *e))) return errors_set(err, SW_E_INTERNAL, "out of memory");
    snprintf(e->addr, sizeof e->addr, "%s", addr);
    e->window = now;
    HASH_ADD_STR(ra->addrs, addr, e);
  }
  if (now - e->window >= RATE_WINDOW_MS) e->window = now, e->count = 0;
  if (e->count >= cfg->per_address || ra->count >= cfg->per_app)
    return errors_set(err, SW_E_RATE_LIMIT, "at most %lld new anonymous identities a minute from one address (%lld for the app)",
                      (long long)cfg->per_address, (long long)cfg->per_app);
  e->count++;
  ra->count++;
  return 0;
}

void cloud_free(sw_server_t *srv) {
  if (!srv->cloud) return;
  rate_app_t *ra, *rt;
  HASH_ITER(hh, srv->cloud->apps, ra, rt) {
    rate_entry_t *e, *et;
    HASH_ITER(hh, ra->addrs, e, et) {
      HASH_DEL(ra->addrs, e);
      free(e);
    }
    HASH_DEL(srv->cloud->apps, ra);
    free(ra->app_id);
    free(ra);
  }
  free(srv->cloud);
  srv->cloud = NULL;
}

/* ------------------------------------------------------ refresh tokens */

/* "sbr1.<payload>.<mac>": payload = base64url {"a": appId, "c": clientId,
 * "e": expiry ms}, mac = base64url HMAC-SHA256 over "sbr1.<payload>" with a
 * key derived from the server's token secret. Stateless: a refresh token
 * is valid until it expires (or the app turns anonymous users off). */
static void refresh_key(const sw_server_t *srv, uint8_t key[32]) {
  static const char label[] = "switchboard anonymous refresh token v1";
  unsigned int n = 32;
  HMAC(EVP_sha256(), srv->token_secret, sizeof srv->token_secret, (const uint8_t *)label, sizeof label - 1, key, &n);
}

static int refresh_mac(const sw_server_t *srv, const char *signed_part, size_t n, char out[48]) {
  uint8_t key[32], mac[32];
  unsigned int ml = sizeof mac;
  refresh_key(srv, key);
  uint8_t *r = HMAC(EVP_sha256(), key, sizeof key, (const uint8_t *)signed_part, n, mac, &ml);
  OPENSSL_cleanse(key, sizeof key);
  return r && b64url_encode(mac, sizeof mac, out, 48) > 0 ? 0 : -1;
}

static char *refresh_issue(const sw_server_t *srv, const char *app_id, const char *client_id, int64_t expires) {
  json_t *o = json_pack("{s:s, s:s, s:I}", "a", app_id, "c", client_id, "e", (json_int_t)expires);
  char *payload = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (!payload) return NULL;
  size_t pl = strlen(payload);
  sw_buf_t b = {0};
  char *enc = malloc(b64url_encoded_len(pl) + 1);
  char mac[48];
  if (enc && b64url_encode((const uint8_t *)payload, pl, enc, b64url_encoded_len(pl) + 1) > 0) {
    buf_printf(&b, "sbr1.%s", enc);
    if (b.data && refresh_mac(srv, (const char *)b.data, b.len, mac) == 0) {
      buf_printf(&b, ".%s", mac);
      buf_append_byte(&b, 0);
    } else {
      buf_free(&b);
    }
  }
  free(enc);
  free(payload);
  return (char *)b.data;
}

/* The clientId a refresh token names, or NULL with err (40101 bad, 40142
 * expired). */
static char *refresh_verify(const sw_server_t *srv, const sw_app_t *app, const char *tok, sw_error_t *err) {
  size_t n = strlen(tok);
  const char *dot = n <= REFRESH_MAX_LEN && strncmp(tok, "sbr1.", 5) == 0 ? strrchr(tok, '.') : NULL;
  char mac[48];
  if (!dot || dot < tok + 5 || refresh_mac(srv, tok, (size_t)(dot - tok), mac) || strlen(mac) != strlen(dot + 1) ||
      CRYPTO_memcmp(mac, dot + 1, strlen(mac)) != 0) {
    errors_set(err, SW_E_INVALID_CREDENTIALS, "invalid refresh token");
    return NULL;
  }
  uint8_t payload[REFRESH_MAX_LEN];
  long pl = b64url_decode(tok + 5, (size_t)(dot - tok - 5), payload, sizeof payload);
  json_t *o = pl > 0 ? json_loadb((const char *)payload, (size_t)pl, 0, NULL) : NULL;
  const char *a = json_string_value(json_object_get(o, "a")), *cid = json_string_value(json_object_get(o, "c"));
  json_t *e = json_object_get(o, "e");
  char *out = NULL;
  if (!a || !cid || !json_is_integer(e) || strcmp(a, app->id) != 0)
    errors_set(err, SW_E_INVALID_CREDENTIALS, "invalid refresh token");
  else if (json_integer_value(e) <= clock_now_ms())
    errors_set(err, SW_E_TOKEN_EXPIRED, "refresh token expired");
  else if (!(out = strdup(cid)))
    errors_set(err, SW_E_INTERNAL, "out of memory");
  json_decref(o);
  return out;
}

/* ------------------------------------------------------ anonymous users */

/* {access_token, token_type, client_id, refresh_token: {token,
 * expires_at}} for the identity client_id. */
static void reply_identity(cloud_req_t *c, const anon_cfg_t *cfg, const char *client_id) {
  sw_error_t err = {0};
  const sw_key_t *key = anon_key(c->app, cfg);
  if (!key) return (void)cloud_fail(c, SW_E_INTERNAL, "anonymous.key names no key of the app");
  int64_t now = clock_now_ms(), refresh_exp = now + cfg->refresh_ttl_ms;
  sw_cap_t *cap = anon_cap(cfg, client_id, &err);
  char *tok = cap ? mint(key, cap, now / 1000, (now + cfg->ttl_ms) / 1000, client_id, NULL, client_id, &err) : NULL;
  char *refresh = tok ? refresh_issue(c->s->srv, c->app->id, client_id, refresh_exp) : NULL;
  cap_free(cap);
  if (!tok) {
    if (!err.code) errors_set(&err, SW_E_INTERNAL, "cannot sign a token");
    cloud_error(c, &err);
  } else if (!refresh) {
    cloud_fail(c, SW_E_INTERNAL, "out of memory");
  } else {
    char iso[25];
    cloud_iso_time(refresh_exp, iso);
    json_t *v = json_pack("{s:s, s:s, s:s, s:{s:s, s:s}}", "access_token", tok, "token_type", "Bearer", "client_id",
                          client_id, "refresh_token", "token", refresh, "expires_at", iso);
    cloud_reply(c, 200, v);
    json_decref(v);
  }
  if (tok) OPENSSL_cleanse(tok, strlen(tok));
  if (refresh) OPENSSL_cleanse(refresh, strlen(refresh));
  free(tok);
  free(refresh);
}

/* The app's anonymous configuration, or false after replying 40300 (off). */
static bool anon_enabled(cloud_req_t *c, anon_cfg_t *cfg) {
  const json_t *o = json_object_get(c->app->spec, "anonymous");
  sw_error_t err = {0};
  if (!o) return cloud_fail(c, SW_E_FORBIDDEN, "anonymous users are not enabled for this app");
  if (anon_read(o, cfg, &err)) {
    cloud_error(c, &err);
    return false;
  }
  return true;
}

static void anonymous_token(cloud_req_t *c) {
  anon_cfg_t cfg;
  if (!anon_enabled(c, &cfg)) return;
  char addr[46];
  sw_error_t err = {0};
  sock_client_address(c->s, addr); /* behind a trusted proxy, the forwarded client */
  if (rate_admit(c->s->srv, c->app, addr, &cfg, &err)) return cloud_error(c, &err);
  char id[21];
  if (app_random_id(id, 20)) return (void)cloud_fail(c, SW_E_INTERNAL, "no randomness");
  char *client_id = expand(cfg.client_id, id, NULL);
  if (!client_id) return (void)cloud_fail(c, SW_E_INTERNAL, "out of memory");
  reply_identity(c, &cfg, client_id);
  free(client_id);
}

static void refresh_token(cloud_req_t *c) {
  anon_cfg_t cfg;
  if (!anon_enabled(c, &cfg)) return;
  json_t *body = cloud_body(c, false);
  if (!body) return;
  const char *tok = json_string_value(json_object_get(body, "refresh_token"));
  sw_error_t err = {0};
  char *client_id = tok ? refresh_verify(c->s->srv, c->app, tok, &err) : NULL;
  if (!tok) cloud_fail(c, SW_E_INVALID_BODY, "refresh_token must be a string");
  else if (!client_id) cloud_error(c, &err);
  else reply_identity(c, &cfg, client_id);
  free(client_id);
  json_decref(body);
}

void cloud_auth_route(cloud_req_t *c) {
  if (c->req->method != HTTP_POST) return (void)cloud_fail(c, SW_E_METHOD_NOT_ALLOWED, "method not allowed");
  if (slice_eq(c->route, "/auth/tokens")) return backend_token(c);
  if (slice_eq(c->route, "/auth/tokens/anonymous")) return anonymous_token(c);
  if (slice_eq(c->route, "/auth/tokens/refresh")) return refresh_token(c);
  cloud_fail(c, SW_E_NOT_FOUND, "no such resource");
}
