#include "identity/provider.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/capability.h"
#include "auth/claim_template.h"

#define DEFAULT_REFRESH_MIN_S 60
#define DEFAULT_REFRESH_MAX_S 3600
#define DEFAULT_MAX_STALE_S 86400
#define DEFAULT_FETCH_TIMEOUT_S 10
#define MAX_SECONDS (7 * 86400)
#define MIN_SECRET 32

static const char *const KNOWN[] = {
    "id", "issuer", "audience", "algorithms", "clientId", "capability", "workspace", "key", "jwksUri",
    "discovery", "jwksFile", "jwks", "sharedSecret", "caFile", "clockSkewSeconds", "refreshMinSeconds",
    "refreshMaxSeconds", "maxStaleSeconds", "fetchTimeoutSeconds", "maxJwksBytes",
};

void idp_free(sw_idp_t *p) {
  if (!p) return;
  free(p->id);
  free(p->app_id);
  free(p->issuer);
  for (size_t i = 0; i < p->n_audiences; i++) free(p->audiences[i]);
  free(p->audiences);
  free(p->client_id_tmpl);
  for (size_t i = 0; i < p->n_cap; i++) {
    free(p->cap[i].resource);
    json_decref(p->cap[i].ops);
  }
  free(p->cap);
  free(p->workspace_tmpl);
  free(p->key_id);
  cap_free(p->no_key_bound);
  free(p->cache_name);
  free(p->jwks_uri);
  free(p->jwks_file);
  free(p->ca_file);
  jwks_free(p->inline_keys);
  if (p->secret) OPENSSL_cleanse(p->secret, p->secret_len);
  free(p->secret);
  free(p);
}

static bool host_is_loopback(const char *h) {
  if (strcasecmp(h, "localhost") == 0 || strcmp(h, "[::1]") == 0 || strcmp(h, "::1") == 0) return true;
  /* 127.0.0.0/8 as a dotted quad */
  unsigned a, b, c, d;
  char tail;
  return sscanf(h, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 && c < 256 && d < 256;
}

bool idp_url_ok(const char *u) {
  CURLU *h = curl_url();
  char *scheme = NULL, *host = NULL;
  bool ok = h && curl_url_set(h, CURLUPART_URL, u, 0) == CURLUE_OK &&
            curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
            curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK;
  if (ok) ok = strcasecmp(scheme, "https") == 0 || (strcasecmp(scheme, "http") == 0 && host_is_loopback(host));
  curl_free(scheme);
  curl_free(host);
  curl_url_cleanup(h);
  return ok;
}

bool idp_conflict(const sw_idp_t *a, const sw_idp_t *b) {
  if (strcmp(a->issuer, b->issuer) != 0) return false;
  if (!a->n_audiences || !b->n_audiences) return true;
  for (size_t i = 0; i < a->n_audiences; i++)
    for (size_t j = 0; j < b->n_audiences; j++)
      if (strcmp(a->audiences[i], b->audiences[j]) == 0) return true;
  return false;
}

/* ---- field readers: each returns 0 or -1 with err naming the field ---- */

static int bad(sw_error_t *err, const char *id, const char *msg) {
  return errors_set(err, SW_E_BAD_REQUEST, "identity provider %.64s: %s", id ? id : "?", msg), -1;
}

static int opt_string(const json_t *o, const char *name, size_t max, char **out, const char *id, sw_error_t *err) {
  const json_t *v = json_object_get(o, name);
  if (!v) return 0;
  if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max ||
      strlen(json_string_value(v)) != json_string_length(v)) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a non-empty string of at most %zu bytes", name, max);
    return bad(err, id, msg);
  }
  if (!(*out = strdup(json_string_value(v)))) return errors_set(err, SW_E_INTERNAL, "out of memory"), -1;
  return 0;
}

static int opt_seconds(const json_t *o, const char *name, int64_t dflt, int64_t *ms, const char *id, sw_error_t *err) {
  const json_t *v = json_object_get(o, name);
  if (!v) {
    *ms = dflt < 0 ? -1 : dflt * 1000;
    return 0;
  }
  if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > MAX_SECONDS) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a whole number of seconds from 0 to %d", name, MAX_SECONDS);
    return bad(err, id, msg);
  }
  *ms = json_integer_value(v) * 1000;
  return 0;
}

static int opt_template(const json_t *o, const char *name, char **out, const char *id, sw_error_t *err) {
  if (opt_string(o, name, SW_TMPL_MAX_LEN, out, id, err)) return -1;
  sw_error_t terr = {0};
  if (*out && tmpl_check(*out, &terr)) {
    char msg[200];
    snprintf(msg, sizeof msg, "%s: %.150s", name, terr.message);
    return bad(err, id, msg);
  }
  return 0;
}

static int read_audiences(const json_t *o, sw_idp_t *p, sw_error_t *err) {
  const json_t *v = json_object_get(o, "audience");
  if (!v) return 0;
  json_t *arr = json_is_string(v) ? json_pack("[O]", v) : json_incref((json_t *)v);
  int rc = 0;
  if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > SW_IDP_MAX_AUDIENCES) {
    rc = bad(err, p->id, "audience must be a string or an array of 1 to 16 strings");
    goto done;
  }
  p->audiences = calloc(json_array_size(arr), sizeof *p->audiences);
  if (!p->audiences) {
    rc = errors_set(err, SW_E_INTERNAL, "out of memory");
    goto done;
  }
  size_t i;
  json_t *a;
  json_array_foreach(arr, i, a) {
    if (!json_is_string(a) || json_string_length(a) == 0 || json_string_length(a) > 256 ||
        strlen(json_string_value(a)) != json_string_length(a)) {
      rc = bad(err, p->id, "each audience must be a non-empty string of at most 256 bytes");
      goto done;
    }
    if (!(p->audiences[p->n_audiences++] = strdup(json_string_value(a)))) {
      rc = errors_set(err, SW_E_INTERNAL, "out of memory");
      goto done;
    }
  }
done:
  json_decref(arr);
  return rc;
}

static int read_algorithms(const json_t *o, sw_idp_t *p, sw_error_t *err) {
  const json_t *v = json_object_get(o, "algorithms");
  if (!v) {
    p->algs = p->source == SW_IDP_SRC_SECRET ? SW_JWS_ALG_BIT(SW_JWS_HS256) : SW_JWS_ALG_BIT(SW_JWS_RS256);
    return 0;
  }
  if (!json_is_array(v) || json_array_size(v) == 0) return bad(err, p->id, "algorithms must be a non-empty array");
  size_t i;
  const json_t *a;
  json_array_foreach(v, i, a) {
    int alg = json_is_string(a) ? jws_alg_from_name(json_string_value(a), json_string_length(a)) : -1;
    if (alg < 0)
      return bad(err, p->id,
                 "algorithms may name RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA "
                 "(and HS256/384/512 with sharedSecret); never none");
    p->algs |= SW_JWS_ALG_BIT(alg);
  }
  bool hmac = p->algs & SW_JWS_HMAC_ALGS, asym = p->algs & ~SW_JWS_HMAC_ALGS;
  if (p->source == SW_IDP_SRC_SECRET && asym)
    return bad(err, p->id, "a provider with sharedSecret allows only HS256, HS384 or HS512");
  if (p->source != SW_IDP_SRC_SECRET && hmac)
    return bad(err, p->id, "HS256/384/512 need the sharedSecret option (a JWK Set never keys HMAC)");
  return 0;
}

static int read_capability(const json_t *o, sw_idp_t *p, sw_error_t *err) {
  const json_t *v = json_object_get(o, "capability");
  if (!v) return 0;
  if (!json_is_object(v) || json_object_size(v) == 0 || json_object_size(v) > SW_IDP_MAX_CAP_RESOURCES)
    return bad(err, p->id, "capability must be an object of 1 to 64 resource templates");
  p->cap = calloc(json_object_size(v), sizeof *p->cap);
  if (!p->cap) return errors_set(err, SW_E_INTERNAL, "out of memory"), -1;
  /* The whole capability, with every placeholder replaced by a valid value,
   * must parse as a capability: a template error shows up now, not at the
   * first token. */
  json_t *sample = json_object();
  const char *res;
  json_t *ops;
  int rc = 0;
  json_object_foreach((json_t *)v, res, ops) {
    sw_error_t terr = {0};
    if (tmpl_check(res, &terr)) {
      char msg[200];
      snprintf(msg, sizeof msg, "capability resource: %.150s", terr.message);
      rc = bad(err, p->id, msg);
      break;
    }
    sw_idp_cap_entry_t *e = &p->cap[p->n_cap++];
    e->resource = strdup(res);
    e->ops = json_deep_copy(ops);
    char *s = tmpl_sample(res);
    if (!e->resource || !e->ops || !s) {
      free(s);
      rc = errors_set(err, SW_E_INTERNAL, "out of memory");
      break;
    }
    json_object_set(sample, s, ops);
    free(s);
  }
  if (rc == 0) {
    char *text = json_dumps(sample, JSON_COMPACT);
    sw_error_t cerr = {0};
    sw_cap_t *c = text ? cap_parse(text, strlen(text), &cerr) : NULL;
    if (!c) {
      char msg[240];
      snprintf(msg, sizeof msg, "capability: %.200s", text ? cerr.message : "out of memory");
      rc = bad(err, p->id, msg);
    }
    cap_free(c);
    free(text);
  }
  json_decref(sample);
  return rc;
}

static int read_key_source(const json_t *o, sw_idp_t *p, bool allow_files, sw_error_t *err) {
  int n = !!json_object_get(o, "jwksUri") + json_is_true(json_object_get(o, "discovery")) +
          !!json_object_get(o, "jwksFile") + !!json_object_get(o, "jwks") + !!json_object_get(o, "sharedSecret");
  if (n != 1) return bad(err, p->id, "give exactly one of jwksUri, discovery: true, jwksFile, jwks, sharedSecret");
  const json_t *disc = json_object_get(o, "discovery");
  if (disc && !json_is_boolean(disc)) return bad(err, p->id, "discovery must be true or false");
  if ((json_object_get(o, "jwksFile") || json_object_get(o, "caFile")) && !allow_files)
    return bad(err, p->id, "jwksFile and caFile are allowed only in the config file");
  if (opt_string(o, "jwksUri", 2048, &p->jwks_uri, p->id, err) ||
      opt_string(o, "jwksFile", 4096, &p->jwks_file, p->id, err) ||
      opt_string(o, "caFile", 4096, &p->ca_file, p->id, err))
    return -1;
  if (p->jwks_uri) {
    p->source = SW_IDP_SRC_URI;
    if (!idp_url_ok(p->jwks_uri)) return bad(err, p->id, "jwksUri must be an https URL (http only on a loopback address)");
  } else if (json_is_true(disc)) {
    p->source = SW_IDP_SRC_DISCOVERY;
    if (!idp_url_ok(p->issuer))
      return bad(err, p->id, "discovery needs an https issuer (http only on a loopback address)");
  } else if (p->jwks_file) {
    p->source = SW_IDP_SRC_FILE;
  } else if (json_object_get(o, "jwks")) {
    p->source = SW_IDP_SRC_INLINE;
    char *text = json_dumps(json_object_get(o, "jwks"), JSON_COMPACT);
    sw_error_t kerr = {0};
    p->inline_keys = text ? jwks_parse(text, strlen(text), 0, &kerr) : NULL;
    free(text);
    if (!p->inline_keys) {
      char msg[240];
      snprintf(msg, sizeof msg, "jwks: %.200s", kerr.message);
      return bad(err, p->id, msg);
    }
  } else {
    p->source = SW_IDP_SRC_SECRET;
    const json_t *s = json_object_get(o, "sharedSecret");
    if (!json_is_string(s) || json_string_length(s) < MIN_SECRET)
      return bad(err, p->id, "sharedSecret must be a string of at least 32 bytes");
    p->secret_len = json_string_length(s);
    if (!(p->secret = malloc(p->secret_len))) return errors_set(err, SW_E_INTERNAL, "out of memory"), -1;
    memcpy(p->secret, json_string_value(s), p->secret_len);
  }
  if (p->ca_file && p->source != SW_IDP_SRC_URI && p->source != SW_IDP_SRC_DISCOVERY)
    return bad(err, p->id, "caFile goes with jwksUri or discovery");
  return 0;
}

static int read_limits(const json_t *o, sw_idp_t *p, sw_error_t *err) {
  if (opt_seconds(o, "clockSkewSeconds", -1, &p->leeway_ms, p->id, err) ||
      opt_seconds(o, "refreshMinSeconds", DEFAULT_REFRESH_MIN_S, &p->refresh_min_ms, p->id, err) ||
      opt_seconds(o, "refreshMaxSeconds", DEFAULT_REFRESH_MAX_S, &p->refresh_max_ms, p->id, err) ||
      opt_seconds(o, "maxStaleSeconds", DEFAULT_MAX_STALE_S, &p->max_stale_ms, p->id, err) ||
      opt_seconds(o, "fetchTimeoutSeconds", DEFAULT_FETCH_TIMEOUT_S, &p->fetch_timeout_ms, p->id, err))
    return -1;
  if (p->refresh_min_ms < 1000 || p->refresh_max_ms < p->refresh_min_ms)
    return bad(err, p->id, "refreshMinSeconds must be at least 1 and at most refreshMaxSeconds");
  if (p->max_stale_ms < p->refresh_max_ms) return bad(err, p->id, "maxStaleSeconds must be at least refreshMaxSeconds");
  if (p->fetch_timeout_ms < 1000) return bad(err, p->id, "fetchTimeoutSeconds must be at least 1");
  p->max_jwks_bytes = SW_JWKS_DEFAULT_MAX_BYTES;
  const json_t *m = json_object_get(o, "maxJwksBytes");
  if (m) {
    if (!json_is_integer(m) || json_integer_value(m) < 256 || json_integer_value(m) > 4 * 1024 * 1024)
      return bad(err, p->id, "maxJwksBytes must be from 256 to 4194304");
    p->max_jwks_bytes = (size_t)json_integer_value(m);
  }
  return 0;
}

static bool id_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 64) return false;
  for (size_t i = 0; i < n; i++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", s[i])) return false;
  return true;
}

static int read_key(const json_t *o, sw_idp_t *p, const char *app_id, sw_error_t *err) {
  const json_t *v = json_object_get(o, "key");
  if (!v) return 0;
  const char *k = json_string_value(v);
  if (!k || !*k || strlen(k) > 256) return bad(err, p->id, "key must name a key of the app (keyId or appId.keyId)");
  const char *dot = strchr(k, '.');
  size_t alen = strlen(app_id);
  if (dot && ((size_t)(dot - k) != alen || memcmp(k, app_id, alen) != 0))
    return bad(err, p->id, "key must be a key of the same app");
  const char *kid = dot ? dot + 1 : k;
  size_t n = alen + 1 + strlen(kid) + 1;
  if (!(p->key_id = malloc(n))) return errors_set(err, SW_E_INTERNAL, "out of memory"), -1;
  snprintf(p->key_id, n, "%s.%s", app_id, kid);
  return 0;
}

sw_idp_t *idp_parse(const json_t *o, const char *app_id, bool allow_files, sw_error_t *err) {
  if (!json_is_object(o)) {
    errors_set(err, SW_E_BAD_REQUEST, "each identity provider must be an object");
    return NULL;
  }
  const char *name;
  json_t *v;
  json_object_foreach((json_t *)o, name, v) {
    bool known = false;
    for (size_t i = 0; i < sizeof KNOWN / sizeof *KNOWN && !known; i++) known = strcmp(KNOWN[i], name) == 0;
    if (!known) {
      errors_set(err, SW_E_BAD_REQUEST, "identity provider: unknown field \"%.64s\"", name);
      return NULL;
    }
  }
  const char *id = json_string_value(json_object_get(o, "id"));
  if (!id || !id_ok(id)) {
    errors_set(err, SW_E_BAD_REQUEST, "identity provider: id must be 1 to 64 characters from [A-Za-z0-9_.-]");
    return NULL;
  }
  sw_idp_t *p = calloc(1, sizeof *p);
  if (!p || !(p->id = strdup(id)) || !(p->app_id = strdup(app_id))) {
    errors_set(err, SW_E_INTERNAL, "out of memory");
    idp_free(p);
    return NULL;
  }
  if (opt_string(o, "issuer", 1024, &p->issuer, id, err)) goto fail;
  if (!p->issuer) {
    bad(err, id, "issuer is required (the exact iss of its tokens)");
    goto fail;
  }
  if (read_key_source(o, p, allow_files, err) || read_audiences(o, p, err) || read_algorithms(o, p, err) ||
      opt_template(o, "clientId", &p->client_id_tmpl, id, err) ||
      opt_template(o, "workspace", &p->workspace_tmpl, id, err) || read_capability(o, p, err) ||
      read_key(o, p, app_id, err) || read_limits(o, p, err))
    goto fail;
  if (!p->n_cap && !p->key_id) {
    bad(err, id, "give a capability, a key whose capability applies, or both");
    goto fail;
  }
  size_t cn = strlen(app_id) + strlen(id) + 6;
  if (!(p->no_key_bound = cap_all_qualified()) || !(p->cache_name = malloc(cn))) {
    errors_set(err, SW_E_INTERNAL, "out of memory");
    goto fail;
  }
  snprintf(p->cache_name, cn, "idp:%s/%s", app_id, id);
  return p;
fail:
  idp_free(p);
  return NULL;
}
