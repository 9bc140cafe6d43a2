#include "core/app.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "identity/identity.h"

/* Checks of an app spec that belong to a layer above core/ (set once at
 * start-up by the composition root, src/root/). */
static sw_app_spec_check_fn spec_check;

void app_set_spec_check(sw_app_spec_check_fn fn) { spec_check = fn; }

/* What Ably's POST /apps gives a key created without a capability. */
#define DEFAULT_KEY_CAPABILITY "{\"*\":[\"*\"]}"

/* Random bytes are drawn from OpenSSL a block at a time: every RAND_bytes
 * call costs a DRBG generate (re-keying its AES-CTR, ~12k instructions
 * under callgrind) whatever its size, and a connect takes two ids (its id
 * and its connectionKey's secret). Each byte is handed out once and wiped
 * as it is; the block is per thread, and refilled in a forked child
 * (OpenSSL reseeds there; a copy of the parent's block must not be used). */
#define RANDOM_POOL 512

static atomic_uint fork_gen; /* bumped in a forked child: no getpid() call per id */
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void forked(void) { atomic_fetch_add(&fork_gen, 1); }
static void watch_forks(void) { pthread_atfork(NULL, NULL, forked); }

static int random_bytes(unsigned char *out, size_t n) {
  static _Thread_local unsigned char pool[RANDOM_POOL];
  static _Thread_local size_t left;
  static _Thread_local unsigned gen;
  if (n > RANDOM_POOL) return RAND_bytes(out, (int)n) == 1 ? 0 : -1;
  pthread_once(&fork_once, watch_forks);
  unsigned g = atomic_load(&fork_gen);
  if (gen != g) left = 0;
  if (left < n) {
    if (RAND_bytes(pool, RANDOM_POOL) != 1) return -1;
    left = RANDOM_POOL;
    gen = g;
  }
  unsigned char *p = pool + RANDOM_POOL - left;
  memcpy(out, p, n);
  OPENSSL_cleanse(p, n);
  left -= n;
  return 0;
}

int app_random_id(char *out, size_t n) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  unsigned char rnd[64];
  for (size_t done = 0; done < n;) {
    size_t chunk = n - done < sizeof rnd ? n - done : sizeof rnd;
    if (random_bytes(rnd, chunk)) return -1;
    /* 64 symbols: the low 6 bits of a uniform byte are uniform. */
    for (size_t i = 0; i < chunk; i++) out[done + i] = alphabet[rnd[i] & 63];
    done += chunk;
  }
  OPENSSL_cleanse(rnd, sizeof rnd);
  out[n] = '\0';
  return 0;
}

static bool json_flag(const json_t *o, const char *name) {
  return json_is_true(json_object_get(o, name));
}

static int64_t json_int_or(const json_t *o, const char *name, int64_t dflt) {
  json_t *v = json_object_get(o, name);
  return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static int namespace_from_json(sw_namespace_t *ns, const json_t *o, sw_error_t *err) {
  const char *id = json_string_value(json_object_get(o, "id"));
  if (!id || !*id || strchr(id, ':'))
    return errors_set(err, SW_E_BAD_REQUEST, "namespace needs an id without ':'");
  ns->id = strdup(id);
  ns->persisted = json_flag(o, "persisted");
  ns->mutable_messages = json_flag(o, "mutableMessages");
  ns->push_enabled = json_flag(o, "pushEnabled");
  ns->identified = json_flag(o, "identified");
  ns->authenticated = json_flag(o, "authenticated");
  ns->tls_only = json_flag(o, "tlsOnly");
  ns->cancel_owner_only = json_flag(o, "cancelByTurnOwnerOnly");
  ns->retention_ms = json_int_or(o, "retentionSeconds", -1);
  /* Bounded so that the ms figure, and now + it, cannot overflow. */
  if (ns->retention_ms > SW_MAX_RETENTION_S)
    return errors_set(err, SW_E_BAD_REQUEST, "retentionSeconds must be at most %lld (100 years)",
                      (long long)SW_MAX_RETENTION_S);
  ns->retention_ms = ns->retention_ms >= 0 ? ns->retention_ms * 1000
                     : ns->persisted       ? SW_PERSISTED_RETENTION_MS
                                           : SW_DEFAULT_RETENTION_MS;
  ns->keep_count = json_int_or(o, "retentionCount", 0);
  if (ns->keep_count < 0) return errors_set(err, SW_E_BAD_REQUEST, "retentionCount must be >= 0");
  return ns->id ? 0 : errors_set(err, SW_E_INTERNAL, "out of memory");
}

/* Fills in a key's id and secret when generating, checks them otherwise. */
static int key_from_json(sw_key_t *k, const char *app_id, json_t *o, bool generate, sw_error_t *err) {
  char idbuf[8], secretbuf[44];
  const char *id = json_string_value(json_object_get(o, "id"));
  const char *secret = json_string_value(json_object_get(o, "secret"));
  if (!id && generate) {
    if (app_random_id(idbuf, 6)) return errors_set(err, SW_E_INTERNAL, "no randomness");
    id = idbuf;
    json_object_set_new(o, "id", json_string(id));
  }
  if (!secret && generate) {
    if (app_random_id(secretbuf, 43)) return errors_set(err, SW_E_INTERNAL, "no randomness");
    secret = secretbuf;
    json_object_set_new(o, "secret", json_string(secret));
  }
  if (!id || !*id || strpbrk(id, ".:"))
    return errors_set(err, SW_E_BAD_REQUEST, "key id must be non-empty without '.' or ':'");
  if (!secret || strlen(secret) < 8)
    return errors_set(err, SW_E_BAD_REQUEST, "key secret must have at least 8 characters");

  /* The capability may be given as a JSON string (Ably's wire form) or an object. */
  json_t *capv = json_object_get(o, "capability");
  char *cap = json_is_string(capv)   ? strdup(json_string_value(capv))
              : json_is_object(capv) ? json_dumps(capv, JSON_COMPACT)
                                     : strdup(DEFAULT_KEY_CAPABILITY);
  if (!cap) return errors_set(err, SW_E_INTERNAL, "out of memory");
  k->cap = cap_parse(cap, strlen(cap), err);
  free(cap);
  if (!k->cap) return -1;
  /* Capabilities are always shown in canonical form (sorted), as Ably does. */
  k->capability = cap_canonical(k->cap);
  if (!k->capability) return errors_set(err, SW_E_INTERNAL, "out of memory");
  size_t nlen = strlen(app_id) + 1 + strlen(id) + 1;
  k->name = malloc(nlen);
  k->secret = strdup(secret);
  if (!k->name || !k->secret) return errors_set(err, SW_E_INTERNAL, "out of memory");
  snprintf(k->name, nlen, "%s.%s", app_id, id);
  k->revocable = json_flag(o, "revocableTokens");
  return 0;
}

/* identityProviders: parsed by identity/provider.c; the bounding key, if
 * any, must be one of this app's (its revocableTokens decides the token
 * rules: iat required, at most 1 h). */
static int providers_from_json(sw_app_t *a, const json_t *arr, bool allow_files, sw_error_t *err) {
  if (!arr) return 0;
  if (!json_is_array(arr) || json_array_size(arr) > SW_IDP_MAX_PER_APP)
    return errors_set(err, SW_E_BAD_REQUEST, "identityProviders must be an array of at most %d providers",
                      SW_IDP_MAX_PER_APP);
  a->idps = calloc(json_array_size(arr) + 1, sizeof *a->idps);
  if (!a->idps) return errors_set(err, SW_E_INTERNAL, "out of memory");
  size_t i;
  json_t *v;
  json_array_foreach(arr, i, v) {
    sw_idp_t *p = idp_parse(v, a->id, allow_files, err);
    if (!p) return -1;
    a->idps[a->n_idps++] = p;
    for (size_t j = 0; j < a->n_idps - 1; j++)
      if (strcmp(a->idps[j]->id, p->id) == 0)
        return errors_set(err, SW_E_BAD_REQUEST, "identity provider id %.64s is used twice", p->id);
    if (p->key_id) {
      const sw_key_t *k = app_find_key(a, p->key_id, strlen(p->key_id));
      if (!k) return errors_set(err, SW_E_BAD_REQUEST, "identity provider %.64s: no key %.128s in this app", p->id, p->key_id);
      p->key_revocable = k->revocable;
    }
  }
  return 0;
}

sw_app_t *app_from_spec(const json_t *spec_in, bool generate, sw_error_t *err) {
  if (!json_is_object(spec_in)) {
    errors_set(err, SW_E_BAD_REQUEST, "app spec must be a JSON object");
    return NULL;
  }
  sw_app_t *a = calloc(1, sizeof *a);
  if (!a) goto oom;
  a->spec = json_deep_copy(spec_in);
  if (!a->spec) goto oom;

  char idbuf[8];
  const char *id = json_string_value(json_object_get(a->spec, "id"));
  if (!id && generate) {
    if (app_random_id(idbuf, 6)) goto oom;
    id = idbuf;
    json_object_set_new(a->spec, "id", json_string(id));
  }
  if (!id || !*id || strpbrk(id, ".:/")) {
    errors_set(err, SW_E_BAD_REQUEST, "app id must be non-empty without '.', ':' or '/'");
    goto fail;
  }
  a->id = strdup(id);
  if (!a->id) goto oom;

  json_t *keys = json_object_get(a->spec, "keys");
  if (!keys) json_object_set_new(a->spec, "keys", keys = json_array());
  if (!json_is_array(keys) || json_array_size(keys) > 1000) {
    errors_set(err, SW_E_BAD_REQUEST, "keys must be an array of at most 1000 keys");
    goto fail;
  }
  if (json_array_size(keys) == 0 && generate) json_array_append_new(keys, json_object());
  a->keys = calloc(json_array_size(keys) + 1, sizeof *a->keys);
  if (!a->keys) goto oom;
  size_t i;
  json_t *v;
  json_array_foreach(keys, i, v) {
    if (!json_is_object(v)) {
      errors_set(err, SW_E_BAD_REQUEST, "each key must be an object");
      goto fail;
    }
    a->n_keys++;
    if (key_from_json(&a->keys[i], a->id, v, generate, err)) goto fail;
  }

  a->default_ns.retention_ms = SW_DEFAULT_RETENTION_MS;
  json_t *nss = json_object_get(a->spec, "namespaces");
  if (nss && (!json_is_array(nss) || json_array_size(nss) > 1000)) {
    errors_set(err, SW_E_BAD_REQUEST, "namespaces must be an array of at most 1000 rules");
    goto fail;
  }
  a->namespaces = calloc(json_array_size(nss) + 1, sizeof *a->namespaces);
  if (!a->namespaces) goto oom;
  json_array_foreach(nss, i, v) {
    if (!json_is_object(v)) {
      errors_set(err, SW_E_BAD_REQUEST, "each namespace must be an object");
      goto fail;
    }
    a->n_namespaces++;
    if (namespace_from_json(&a->namespaces[i], v, err)) goto fail;
  }
  /* Sections of the spec owned above core/ (the Assistant Cloud API's
   * "anonymous"): checked by their owner. */
  if (spec_check && spec_check(a, err)) goto fail;
  if (providers_from_json(a, json_object_get(a->spec, "identityProviders"), !generate, err)) goto fail;
  return a;
oom:
  errors_set(err, SW_E_INTERNAL, "out of memory");
fail:
  app_free(a);
  return NULL;
}

void app_free(sw_app_t *a) {
  if (!a) return;
  for (size_t i = 0; i < a->n_keys; i++) {
    free(a->keys[i].name);
    free(a->keys[i].secret);
    free(a->keys[i].capability);
    cap_free(a->keys[i].cap);
  }
  for (size_t i = 0; i < a->n_namespaces; i++) free(a->namespaces[i].id);
  for (size_t i = 0; i < a->n_idps; i++) idp_free(a->idps[i]);
  free(a->idps);
  free(a->keys);
  free(a->namespaces);
  json_decref(a->spec);
  free(a->id);
  free(a);
}

int apps_add(sw_apps_t *r, sw_app_t *a, sw_error_t *err) {
  if (apps_find(r, a->id)) return errors_set(err, SW_E_BAD_REQUEST, "app %s exists", a->id);
  sw_app_t **n = realloc(r->apps, (r->n + 1) * sizeof *n);
  if (!n) return errors_set(err, SW_E_INTERNAL, "out of memory");
  r->apps = n;
  if (a->n_idps && (!r->identity || identity_add(r->identity, a->idps, a->n_idps, err))) {
    if (!r->identity) errors_set(err, SW_E_BAD_REQUEST, "identity providers are not available here");
    return -1;
  }
  r->apps[r->n++] = a;
  return 0;
}

sw_app_t *apps_find(const sw_apps_t *r, const char *id) {
  for (size_t i = 0; i < r->n; i++)
    if (!r->apps[i]->deleted && strcmp(r->apps[i]->id, id) == 0) return r->apps[i];
  return NULL;
}

int apps_key_check(const sw_apps_t *apps, const char *keystr, size_t len, sw_app_t **app, sw_key_t **key,
                   sw_error_t *err) {
  const char *colon = memchr(keystr, ':', len);
  const char *dot = memchr(keystr, '.', len);
  if (!colon || !dot || dot > colon || dot == keystr || colon == dot + 1)
    return errors_set(err, SW_E_INVALID_CREDENTIAL, "invalid key; expected appId.keyId:secret");
  char app_id[128];
  size_t alen = (size_t)(dot - keystr);
  if (alen >= sizeof app_id) return errors_set(err, SW_E_INVALID_CREDENTIAL, "invalid key; app id too long");
  memcpy(app_id, keystr, alen);
  app_id[alen] = '\0';
  /* A key of an unknown app, or an unknown key, is refused like a wrong
   * secret (40101, as Ably does): the answer does not tell which apps or
   * keys exist. */
  sw_app_t *a = apps_find(apps, app_id);
  sw_key_t *k = a ? app_find_key(a, keystr, (size_t)(colon - keystr)) : NULL;
  if (!k) return errors_set(err, SW_E_INVALID_CREDENTIALS, "invalid credentials");
  const char *secret = colon + 1;
  size_t slen = len - (size_t)(secret - keystr);
  /* Length is not secret (it is fixed per key); contents are compared in constant time. */
  if (slen != strlen(k->secret) || CRYPTO_memcmp(secret, k->secret, slen) != 0)
    return errors_set(err, SW_E_INVALID_CREDENTIALS, "invalid credentials");
  *app = a;
  *key = k;
  return 0;
}

void apps_free(sw_apps_t *r) {
  for (size_t i = 0; i < r->n; i++) app_free(r->apps[i]);
  free(r->apps);
  r->apps = NULL;
  r->n = 0;
}

sw_key_t *app_find_key(const sw_app_t *a, const char *key_name, size_t len) {
  for (size_t i = 0; i < a->n_keys; i++)
    if (strlen(a->keys[i].name) == len && memcmp(a->keys[i].name, key_name, len) == 0)
      return &a->keys[i];
  return NULL;
}

const sw_namespace_t *app_namespace_for(const sw_app_t *a, const char *channel) {
  const char *colon = strchr(channel, ':');
  if (colon) {
    size_t n = (size_t)(colon - channel);
    for (size_t i = 0; i < a->n_namespaces; i++)
      if (strlen(a->namespaces[i].id) == n && memcmp(a->namespaces[i].id, channel, n) == 0)
        return &a->namespaces[i];
  }
  return &a->default_ns;
}

int app_namespace_transport_check(const sw_namespace_t *ns, bool secure, sw_error_t *err) {
  if (!ns->tls_only || secure) return 0;
  /* Ably's table names 40311 "Application requires a TLS connection"; the
   * namespace is the application's rule for these channels. */
  errors_set(err, 40311, "namespace %.64s requires a TLS connection", ns->id ? ns->id : "");
  return -1;
}

json_t *app_to_json(const sw_app_t *a) {
  json_t *keys = json_array();
  for (size_t i = 0; i < a->n_keys; i++) {
    const sw_key_t *k = &a->keys[i];
    const char *kid = strchr(k->name, '.') + 1;
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "id", kid, "value", k->secret, "keyName",
                          k->name, "keySecret", k->secret, "capability", k->capability,
                          "revocableTokens", k->revocable);
    json_object_set_new(o, "keyStr", json_sprintf("%s:%s", k->name, k->secret));
    json_array_append_new(keys, o);
  }
  json_t *out = json_pack("{s:s, s:s, s:o}", "appId", a->id, "id", a->id, "keys", keys);
  json_t *ns = json_object_get(a->spec, "namespaces");
  json_object_set_new(out, "namespaces", ns ? json_deep_copy(ns) : json_array());
  json_t *ch = json_object_get(a->spec, "channels");
  if (ch) json_object_set_new(out, "channels", json_deep_copy(ch));
  json_t *idps = json_object_get(a->spec, "identityProviders");
  if (idps) {
    json_t *copy = json_deep_copy(idps);
    size_t i;
    json_t *v;
    json_array_foreach(copy, i, v) json_object_del(v, "sharedSecret");
    json_object_set_new(out, "identityProviders", copy);
  }
  return out;
}
