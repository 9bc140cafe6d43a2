#include "identity/identity.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jws.h"
#include "identity/fetch.h"
#include "util/clock.h"
#include "util/log.h"

#define TICK_MS 1000
#define ONE_HOUR_MS (3600LL * 1000)
#define ONE_DAY_MS (24 * ONE_HOUR_MS)
#define REDISCOVER_MS ONE_DAY_MS /* an issuer's jwks_uri is looked up again at least daily */
#define MAX_DISCOVERY_BYTES (64u * 1024u)
#define VCACHE_SLOTS 1024u /* power of two */
#define VCACHE_WAYS 4u     /* entries a token may take: VCACHE_SLOTS / VCACHE_WAYS sets */

typedef struct sw_idp_rt {
  sw_idp_t *idp;
  sw_identity_t *owner;
  sw_jwks_t *keys;        /* current keys (NULL until loaded) */
  bool owns_keys;         /* false for inline keys, which the provider owns */
  uint64_t keys_gen;      /* bumped whenever keys change: verified-token cache entries expire */
  int64_t good_at;        /* ms of the last successful load; 0 never */
  int64_t next_refresh;   /* ms: the next scheduled load */
  int64_t last_start;     /* ms the last load started: the unknown-kid rate limit */
  int64_t backoff_ms;     /* after failures; 0 after a success */
  uint64_t fetches;
  sw_fetch_t *req;        /* in flight */
  bool req_is_discovery;
  char *jwks_uri;         /* discovered (SW_IDP_SRC_DISCOVERY) */
  int64_t discovered_at;
  char last_error[256];
} sw_idp_rt_t;

/* A token that verified, by the SHA-256 of its signed part (header.claims)
 * and the exact text of its signature: a reconnect storm of the same
 * tokens then costs a hash each, not a signature check. (The signed part's
 * digest is the one RS256, PS256 and ES256 verify, so a new token hashes
 * once; the signature's text must match too, or the claims of a cached
 * token would pass with any signature.) An entry
 * counts only while its provider's key set is the one it verified with
 * (keys_gen) and usable, and the token has not expired; everything after
 * verification (templates, capability, revocation) still runs per use.
 * A token's digest picks a set of VCACHE_WAYS entries, and a new token
 * takes an empty or unusable entry of its set, else the one least recently
 * used: up to a few hundred tokens in a storm all stay (with one entry per
 * digest, two of 300 tokens would already share one in 30% of cases, and
 * then alternate). */
typedef struct vslot {
  uint8_t digest[SHA256_DIGEST_LENGTH];
  char *sig;             /* owned: the signature segment's text */
  size_t sig_len;
  sw_idp_rt_t *rt;       /* NULL: empty */
  uint64_t gen;
  uint64_t used;         /* the cache's clock when last stored or hit */
  json_t *claims;
  int64_t exp_ms, iat_ms;
} vslot_t;

struct sw_identity {
  uv_loop_t *loop;
  vslot_t *vcache;       /* VCACHE_SLOTS, allocated with the first provider */
  EVP_MD *sha256;        /* fetched once, and a context kept for the cache's */
  EVP_MD_CTX *mdctx;     /* digests (SHA256() would fetch it per call) */
  uint64_t lookups, hits; /* the cache's, for identity_cache_stats */
  uint64_t clock;         /* the cache's: counts stores and hits */
  sw_fetcher_t *fetcher; /* created with the first remote provider */
  uv_timer_t timer;
  bool timer_init;
  sw_idp_rt_t **rts;
  size_t n, cap;
  bool closed;
};

static bool is_remote(const sw_idp_t *p) { return p->source == SW_IDP_SRC_URI || p->source == SW_IDP_SRC_DISCOVERY; }
static bool is_loaded(const sw_idp_t *p) { return is_remote(p) || p->source == SW_IDP_SRC_FILE; }

sw_identity_t *identity_new(uv_loop_t *loop) {
  sw_identity_t *id = calloc(1, sizeof *id);
  if (id) id->loop = loop;
  return id;
}

bool identity_any(const sw_identity_t *id) { return id && id->n > 0; }

/* ---- loading keys ---- */

static void set_keys(sw_idp_rt_t *rt, sw_jwks_t *k, bool owns) {
  if (rt->owns_keys) jwks_free(rt->keys);
  rt->keys = k;
  rt->owns_keys = owns;
  rt->keys_gen++;
}

static void vcache_flush(sw_identity_t *id) {
  for (size_t i = 0; id->vcache && i < VCACHE_SLOTS; i++) {
    json_decref(id->vcache[i].claims);
    free(id->vcache[i].sig);
    memset(&id->vcache[i], 0, sizeof id->vcache[i]);
  }
}

static void load_failed(sw_idp_rt_t *rt, int64_t now, const char *why) {
  const sw_idp_t *p = rt->idp;
  /* Cut to fit on purpose; the precision tells gcc -O3 (bench/run.sh's Release build) so. */
  snprintf(rt->last_error, sizeof rt->last_error, "%.*s", (int)sizeof rt->last_error - 1, why);
  rt->backoff_ms = rt->backoff_ms ? rt->backoff_ms * 2 : p->refresh_min_ms;
  if (rt->backoff_ms > p->refresh_max_ms) rt->backoff_ms = p->refresh_max_ms;
  rt->next_refresh = now + rt->backoff_ms;
  /* A discovery document may have moved the JWK Set: look it up again. */
  free(rt->jwks_uri);
  rt->jwks_uri = NULL;
  log_warn("identity provider %s/%s: cannot load keys: %s%s", p->app_id, p->id, why,
           rt->keys ? " (keeping the cached keys)" : "");
}

static void load_text(sw_idp_rt_t *rt, int64_t now, const char *text, size_t len, int64_t max_age_s) {
  const sw_idp_t *p = rt->idp;
  sw_error_t err = {0};
  sw_jwks_t *k = jwks_parse(text, len, p->max_jwks_bytes, &err);
  if (!k) {
    load_failed(rt, now, err.message);
    return;
  }
  if (k->skipped) log_info("identity provider %s/%s: %zu key(s) skipped: %s", p->app_id, p->id, k->skipped, k->skip_note);
  set_keys(rt, k, true);
  rt->good_at = now;
  rt->backoff_ms = 0;
  rt->last_error[0] = '\0';
  int64_t age = max_age_s < 0 ? p->refresh_max_ms : max_age_s * 1000;
  if (age < p->refresh_min_ms) age = p->refresh_min_ms;
  if (age > p->refresh_max_ms) age = p->refresh_max_ms;
  rt->next_refresh = now + age;
}

/* Reads a jwksFile, at most max bytes (one more to tell it is too long). */
static char *read_file(const char *path, size_t max, size_t *len, char *why, size_t whyN) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(why, whyN, "cannot open %s: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(max + 1);
  size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
  bool err = ferror(f);
  fclose(f);
  if (!buf || err || n > max) {
    snprintf(why, whyN, "%s: %s", path, !buf ? "out of memory" : err ? "read error" : "larger than maxJwksBytes");
    free(buf);
    return NULL;
  }
  *len = n;
  return buf;
}

static void load_file(sw_idp_rt_t *rt, int64_t now) {
  char why[200];
  size_t len;
  char *text = read_file(rt->idp->jwks_file, rt->idp->max_jwks_bytes, &len, why, sizeof why);
  if (!text) load_failed(rt, now, why);
  else load_text(rt, now, text, len, -1);
  free(text);
}

static void start_load(sw_idp_rt_t *rt, int64_t now);

static sw_fetch_opts_t fetch_opts(const sw_idp_t *p, const char *url, size_t max) {
  return (sw_fetch_opts_t){.timeout_ms = p->fetch_timeout_ms,
                           .max_bytes = max,
                           .ca_file = p->ca_file,
                           .allow_http = strncmp(url, "http:", 5) == 0};
}

static void on_jwks(void *ud, const sw_fetch_result_t *r) {
  sw_idp_rt_t *rt = ud;
  rt->req = NULL;
  int64_t now = clock_now_ms();
  if (!r->ok) load_failed(rt, now, r->error);
  else load_text(rt, now, r->body, r->len, r->max_age_s);
}

static void fetch_jwks(sw_idp_rt_t *rt, const char *url, int64_t now) {
  sw_fetch_opts_t o = fetch_opts(rt->idp, url, rt->idp->max_jwks_bytes);
  rt->req_is_discovery = false;
  rt->req = fetch_start(rt->owner->fetcher, url, &o, on_jwks, rt);
  if (!rt->req) load_failed(rt, now, "cannot start the request");
}

/* OIDC Discovery 1.0 section 4: the document's issuer must be exactly
 * ours, and its jwks_uri passes the same https rule as a configured one. */
static void on_discovery(void *ud, const sw_fetch_result_t *r) {
  sw_idp_rt_t *rt = ud;
  rt->req = NULL;
  int64_t now = clock_now_ms();
  if (!r->ok) {
    char why[300];
    snprintf(why, sizeof why, "discovery: %s", r->error);
    load_failed(rt, now, why);
    return;
  }
  json_t *doc = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, NULL);
  const char *iss = json_string_value(json_object_get(doc, "issuer"));
  const char *uri = json_string_value(json_object_get(doc, "jwks_uri"));
  if (!json_is_object(doc) || !iss || strcmp(iss, rt->idp->issuer) != 0)
    load_failed(rt, now, "discovery: the document's issuer is not the configured issuer");
  else if (!uri || strlen(uri) > 2048 || !idp_url_ok(uri))
    load_failed(rt, now, "discovery: jwks_uri missing, or not https (http only on a loopback address)");
  else if (!(rt->jwks_uri = strdup(uri)))
    load_failed(rt, now, "out of memory");
  else {
    rt->discovered_at = now;
    fetch_jwks(rt, rt->jwks_uri, now);
  }
  json_decref(doc);
}

static void start_load(sw_idp_rt_t *rt, int64_t now) {
  const sw_idp_t *p = rt->idp;
  if (rt->req || !is_loaded(p)) return;
  rt->last_start = now;
  rt->fetches++;
  if (p->source == SW_IDP_SRC_FILE) {
    load_file(rt, now);
  } else if (p->source == SW_IDP_SRC_URI) {
    fetch_jwks(rt, p->jwks_uri, now);
  } else if (rt->jwks_uri && now - rt->discovered_at < REDISCOVER_MS) {
    fetch_jwks(rt, rt->jwks_uri, now);
  } else {
    free(rt->jwks_uri);
    rt->jwks_uri = NULL;
    /* The issuer without a trailing slash, then the well-known path. */
    size_t n = strlen(p->issuer);
    while (n && p->issuer[n - 1] == '/') n--;
    char url[1200];
    snprintf(url, sizeof url, "%.*s/.well-known/openid-configuration", (int)n, p->issuer);
    sw_fetch_opts_t o = fetch_opts(p, url, MAX_DISCOVERY_BYTES);
    rt->req_is_discovery = true;
    rt->req = fetch_start(rt->owner->fetcher, url, &o, on_discovery, rt);
    if (!rt->req) load_failed(rt, now, "cannot start the discovery request");
  }
}

/* An unknown kid or missing keys: load again now, unless a load is running
 * or the last one started less than refreshMinSeconds ago. This is the only
 * way a token can cause a fetch, so a flood of bad tokens costs at most one
 * fetch per provider per refreshMinSeconds. */
static void refresh_soon(sw_idp_rt_t *rt, int64_t now) {
  if (!rt->req && now - rt->last_start >= rt->idp->refresh_min_ms) start_load(rt, now);
}

static void on_tick(uv_timer_t *t) {
  sw_identity_t *id = t->data;
  int64_t now = clock_now_ms();
  for (size_t i = 0; i < id->n; i++) {
    sw_idp_rt_t *rt = id->rts[i];
    if (is_loaded(rt->idp) && !rt->req && now >= rt->next_refresh) start_load(rt, now);
  }
}

/* ---- registration ---- */

static void rt_free(sw_idp_rt_t *rt) {
  if (!rt) return;
  fetch_cancel(rt->req);
  set_keys(rt, NULL, false);
  free(rt->jwks_uri);
  rt->idp->rt = NULL;
  free(rt);
}

int identity_add(sw_identity_t *id, sw_idp_t *const *idps, size_t n, sw_error_t *err) {
  if (!n) return 0;
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < id->n; j++)
      if (idp_conflict(idps[i], id->rts[j]->idp))
        return errors_set(err, SW_E_BAD_REQUEST,
                          "identity provider %.64s: app %.64s's provider %.64s already has issuer %.200s with an "
                          "overlapping audience (a token must select exactly one provider)",
                          idps[i]->id, id->rts[j]->idp->app_id, id->rts[j]->idp->id, idps[i]->issuer), -1;
    for (size_t j = 0; j < i; j++)
      if (idp_conflict(idps[i], idps[j]) || strcmp(idps[i]->id, idps[j]->id) == 0)
        return errors_set(err, SW_E_BAD_REQUEST,
                          "identity providers %.64s and %.64s: duplicate id, or the same issuer with an overlapping "
                          "audience", idps[j]->id, idps[i]->id), -1;
  }
  if (id->n + n > id->cap) {
    size_t cap = id->cap ? id->cap * 2 : 8;
    while (cap < id->n + n) cap *= 2;
    sw_idp_rt_t **r = realloc(id->rts, cap * sizeof *r);
    if (!r) return errors_set(err, SW_E_INTERNAL, "out of memory"), -1;
    id->rts = r;
    id->cap = cap;
  }
  sw_idp_rt_t *rts[SW_IDP_MAX_PER_APP] = {0};
  if (n > SW_IDP_MAX_PER_APP) return errors_set(err, SW_E_BAD_REQUEST, "at most %d identity providers per app", SW_IDP_MAX_PER_APP), -1;
  int64_t now = clock_now_ms();
  bool remote = false;
  for (size_t i = 0; i < n; i++) {
    if (!(rts[i] = calloc(1, sizeof **rts))) goto oom;
    rts[i]->idp = idps[i];
    rts[i]->owner = id;
    idps[i]->rt = rts[i];
    remote |= is_remote(idps[i]);
    if (idps[i]->source == SW_IDP_SRC_INLINE) {
      set_keys(rts[i], idps[i]->inline_keys, false);
      rts[i]->good_at = now;
    } else if (idps[i]->source == SW_IDP_SRC_FILE) {
      load_file(rts[i], now);
      rts[i]->last_start = now;
      rts[i]->fetches = 1;
      if (!rts[i]->keys) {
        errors_set(err, SW_E_BAD_REQUEST, "identity provider %.64s: jwksFile: %.180s", idps[i]->id, rts[i]->last_error);
        goto fail;
      }
    }
  }
  if (remote && !id->fetcher && !(id->fetcher = fetcher_new(id->loop))) goto oom;
  if (!id->vcache && !(id->vcache = calloc(VCACHE_SLOTS, sizeof *id->vcache))) goto oom;
  if (!id->sha256 && !(id->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL))) goto oom;
  if (!id->mdctx && !(id->mdctx = EVP_MD_CTX_new())) goto oom;
  if (!id->timer_init) {
    uv_timer_init(id->loop, &id->timer);
    id->timer.data = id;
    uv_timer_start(&id->timer, on_tick, TICK_MS, TICK_MS);
    /* The tick alone must not keep the loop running at shutdown. */
    uv_unref((uv_handle_t *)&id->timer);
    id->timer_init = true;
  }
  for (size_t i = 0; i < n; i++) {
    id->rts[id->n++] = rts[i];
    if (is_remote(idps[i])) start_load(rts[i], now);
  }
  return 0;
oom:
  errors_set(err, SW_E_INTERNAL, "out of memory");
fail:
  for (size_t i = 0; i < n; i++) rt_free(rts[i]);
  return -1;
}

void identity_remove(sw_identity_t *id, sw_idp_t *const *idps, size_t n) {
  vcache_flush(id); /* entries point at the providers' runtime state */
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < id->n; j++) {
      if (id->rts[j]->idp != idps[i]) continue;
      rt_free(id->rts[j]);
      id->rts[j] = id->rts[--id->n];
      break;
    }
  }
}

void identity_status(const sw_idp_t *p, sw_idp_status_t *st) {
  memset(st, 0, sizeof *st);
  const sw_idp_rt_t *rt = p->rt;
  if (!rt) return;
  st->has_keys = rt->keys != NULL;
  st->n_keys = rt->keys ? rt->keys->n : 0;
  st->fetches = rt->fetches;
  st->fetching = rt->req != NULL;
  snprintf(st->last_error, sizeof st->last_error, "%s", rt->last_error);
}

void identity_cache_stats(const sw_identity_t *id, uint64_t *lookups, uint64_t *hits) {
  *lookups = id ? id->lookups : 0;
  *hits = id ? id->hits : 0;
}

void identity_close(sw_identity_t *id) {
  if (!id || id->closed) return;
  id->closed = true;
  for (size_t i = 0; i < id->n; i++) {
    fetch_cancel(id->rts[i]->req);
    id->rts[i]->req = NULL;
  }
  if (id->fetcher) fetcher_close(id->fetcher);
  id->fetcher = NULL;
  if (id->timer_init) uv_close((uv_handle_t *)&id->timer, NULL);
}

void identity_free(sw_identity_t *id) {
  if (!id) return;
  vcache_flush(id);
  free(id->vcache);
  EVP_MD_CTX_free(id->mdctx);
  EVP_MD_free(id->sha256);
  for (size_t i = 0; i < id->n; i++) rt_free(id->rts[i]);
  free(id->rts);
  free(id);
}

/* ---- verification ---- */

void identity_token_clear(sw_idp_token_t *t) {
  if (!t) return;
  json_decref(t->claims);
  memset(t, 0, sizeof *t);
}

static bool aud_has(const json_t *aud, const char *want) {
  if (json_is_string(aud)) return strcmp(json_string_value(aud), want) == 0;
  size_t i;
  const json_t *v;
  json_array_foreach(aud, i, v) if (json_is_string(v) && strcmp(json_string_value(v), want) == 0) return true;
  return false;
}

/* The provider a token's iss and aud select; NULL with err when none or
 * more than one does. *none: no provider has this issuer at all. */
static sw_idp_rt_t *select_provider(sw_identity_t *id, const sw_jws_t *j, bool *none, sw_error_t *err) {
  sw_idp_rt_t *found = NULL;
  size_t same_iss = 0, matches = 0;
  const json_t *aud = json_object_get(j->claims, "aud");
  for (size_t i = 0; i < id->n; i++) {
    const sw_idp_t *p = id->rts[i]->idp;
    if (strcmp(p->issuer, j->iss) != 0) continue;
    same_iss++;
    bool m = p->n_audiences == 0;
    for (size_t a = 0; a < p->n_audiences && !m; a++) m = aud_has(aud, p->audiences[a]);
    if (m) {
      matches++;
      found = id->rts[i];
    }
  }
  *none = same_iss == 0;
  if (same_iss && matches == 1) return found;
  if (!same_iss)
    errors_set(err, 40144, "invalid JWT: no identity provider has issuer %.160s", j->iss);
  else if (!matches)
    errors_set(err, 40144, "invalid JWT: aud names no audience of the identity providers with issuer %.120s", j->iss);
  else
    errors_set(err, 40144, "invalid JWT: aud selects more than one identity provider with issuer %.120s", j->iss);
  return NULL;
}

static const sw_jwks_t *usable_keys(const sw_idp_rt_t *rt, int64_t now) {
  if (!rt->keys) return NULL;
  if (is_loaded(rt->idp) && now - rt->good_at > rt->idp->max_stale_ms) return NULL;
  return rt->keys;
}

/* A token's key in the cache: the SHA-256 of its signed part and the text
 * of its signature. */
typedef struct vkey {
  uint8_t digest[SHA256_DIGEST_LENGTH];
  size_t signed_len;
  const char *sig; /* into the token */
  size_t sig_len;
} vkey_t;

/* Fills *k for tok; false when tok is not three dot-separated segments
 * (it then cannot verify anyway). */
static bool token_key(sw_identity_t *id, const char *tok, size_t n, vkey_t *k) {
  const char *d1 = memchr(tok, '.', n);
  const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - tok)) : NULL;
  if (!d2) return false;
  k->signed_len = (size_t)(d2 - tok);
  k->sig = d2 + 1;
  k->sig_len = n - k->signed_len - 1;
  unsigned len = 0;
  return EVP_DigestInit_ex2(id->mdctx, id->sha256, NULL) == 1 && EVP_DigestUpdate(id->mdctx, tok, k->signed_len) == 1 &&
         EVP_DigestFinal_ex(id->mdctx, k->digest, &len) == 1 && len == SHA256_DIGEST_LENGTH;
}

static bool vslot_is(const vslot_t *v, const vkey_t *k) {
  return v->rt && v->sig_len == k->sig_len && memcmp(v->digest, k->digest, sizeof v->digest) == 0 &&
         memcmp(v->sig, k->sig, k->sig_len) == 0;
}

/* The VCACHE_WAYS entries a key may take. */
static vslot_t *vcache_set(sw_identity_t *id, const vkey_t *k) {
  size_t set = (k->digest[0] | (size_t)k->digest[1] << 8) & (VCACHE_SLOTS / VCACHE_WAYS - 1);
  return &id->vcache[set * VCACHE_WAYS];
}

/* Does entry v still stand for a good verification? */
static bool vslot_good(const vslot_t *v, int64_t now) {
  return v->rt && v->gen == v->rt->keys_gen && v->exp_ms > now &&
         (v->rt->idp->source == SW_IDP_SRC_SECRET || usable_keys(v->rt, now));
}

/* A cached verification of this token, if one is still good. */
static bool vcache_get(sw_identity_t *id, const vkey_t *k, int64_t now, sw_idp_token_t *out) {
  vslot_t *set = vcache_set(id, k);
  for (size_t w = 0; w < VCACHE_WAYS; w++) {
    vslot_t *v = &set[w];
    if (!vslot_is(v, k)) continue;
    if (!vslot_good(v, now)) return false;
    v->used = ++id->clock;
    out->idp = v->rt->idp;
    out->claims = json_incref(v->claims);
    out->exp_ms = v->exp_ms;
    out->iat_ms = v->iat_ms;
    return true;
  }
  return false;
}

static void vcache_put(sw_identity_t *id, const vkey_t *k, sw_idp_rt_t *rt, const sw_idp_token_t *t, int64_t now) {
  vslot_t *set = vcache_set(id, k), *v = NULL;
  /* The token's own entry (gone stale), else an empty or unusable one,
   * else the least recently used. */
  for (size_t w = 0; w < VCACHE_WAYS && !v; w++)
    if (vslot_is(&set[w], k)) v = &set[w];
  for (size_t w = 0; w < VCACHE_WAYS && !v; w++)
    if (!vslot_good(&set[w], now)) v = &set[w];
  if (!v) {
    v = &set[0];
    for (size_t w = 1; w < VCACHE_WAYS; w++)
      if (set[w].used < v->used) v = &set[w];
  }
  char *sig = v->sig_len == k->sig_len ? v->sig : malloc(k->sig_len ? k->sig_len : 1);
  if (!sig) return; /* not cached: it verifies again next time */
  if (sig != v->sig) free(v->sig);
  json_decref(v->claims);
  memcpy(sig, k->sig, k->sig_len);
  memcpy(v->digest, k->digest, sizeof v->digest);
  v->sig = sig;
  v->sig_len = k->sig_len;
  v->rt = rt;
  v->gen = rt->keys_gen;
  v->used = ++id->clock;
  v->claims = json_incref(t->claims);
  v->exp_ms = t->exp_ms;
  v->iat_ms = t->iat_ms;
}

int identity_verify(sw_identity_t *id, const char *tok, size_t n, const sw_identity_verify_opts_t *o,
                    sw_idp_token_t *out, sw_error_t *err) {
  memset(out, 0, sizeof *out);
  /* The common case with providers configured is still an Ably JWT: its
   * header's kid names an app key, and nothing else is looked at. */
  size_t max_len = o->max_len ? o->max_len : SW_JWS_DEFAULT_MAX_LEN;
  json_t *hdr = n <= max_len ? jws_decode_header(tok, n) : NULL;
  const char *hkid = json_string_value(json_object_get(hdr, "kid"));
  if (!hdr || (hkid && o->is_key && o->is_key(o->is_key_ud, hkid))) {
    json_decref(hdr);
    return 1;
  }
  vkey_t key;
  int64_t now = o->now_ms ? o->now_ms : clock_now_ms();
  bool cache = id->vcache && token_key(id, tok, n, &key);
  if (cache) {
    id->lookups++;
    if (vcache_get(id, &key, now, out) && !o->cache_miss) {
      id->hits++;
      json_decref(hdr);
      return 0;
    }
    identity_token_clear(out);
  }
  sw_jws_t j;
  sw_error_t derr;
  /* Anything that does not decode as a JWS is left to the Ably JWT code,
   * which gives the errors it always gave. The header decoded above is
   * not decoded again. */
  if (jws_decode_rest(tok, n, o->max_len, hdr, cache ? key.digest : NULL, cache ? key.signed_len : 0, &j, &derr))
    return 1;
  int rc = 1;
  if (json_object_get(j.header, "x-ably-token") || json_object_get(j.claims, "x-ably-token") || !j.iss) goto done;
  bool none;
  sw_error_t serr = {0};
  sw_idp_rt_t *rt = select_provider(id, &j, &none, &serr);
  if (!rt) {
    /* An HS256 token with an unknown issuer is most likely an Ably JWT with
     * a stray iss claim: the Ably JWT checks decide. */
    if (!(none && j.alg == SW_JWS_HS256)) {
      *err = serr;
      rc = -1;
    }
    goto done;
  }
  const sw_idp_t *p = rt->idp;
  const sw_jwks_t *keys = usable_keys(rt, now);
  rc = -1;
  if (p->source != SW_IDP_SRC_SECRET && !keys) {
    refresh_soon(rt, now);
    errors_set(err, SW_E_TOKEN_ERROR, "the keys of identity provider %.64s are not available%s%.160s", p->id,
               rt->last_error[0] ? ": " : " yet", rt->last_error);
    goto done;
  }
  sw_jws_policy_t pol = {.issuer = p->issuer,
                         .audiences = (const char *const *)p->audiences,
                         .n_audiences = p->n_audiences,
                         .algs = p->algs,
                         .hmac_secret = p->secret,
                         .hmac_secret_len = p->secret_len,
                         .now_ms = now,
                         .leeway_ms = p->leeway_ms >= 0 ? p->leeway_ms : o->default_leeway_ms,
                         .max_ttl_ms = p->key_revocable ? ONE_HOUR_MS : ONE_DAY_MS,
                         .require_iat = p->key_revocable};
  sw_jws_result_t res;
  if (jws_verify(&j, tok, &pol, keys, &res, err)) {
    if (res.unknown_kid) refresh_soon(rt, now);
    goto done;
  }
  out->idp = p;
  out->claims = j.claims;
  j.claims = NULL;
  out->exp_ms = res.exp_ms;
  out->iat_ms = res.iat_ms;
  if (cache) vcache_put(id, &key, rt, out, now);
  rc = 0;
done:
  jws_clear(&j);
  return rc;
}
