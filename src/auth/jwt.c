#include "auth/jwt.h"

#include <jwt.h> /* libjwt, for minting only */
#include <limits.h>
#include <math.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/b64url.h"
#include "util/clock.h"

#define SIG_LEN 32u      /* HMAC-SHA256 */
#define SIG_CHARS 43u    /* unpadded base64url of 32 bytes */
#define CACHE_SLOTS 64u  /* power of two */
#define STACK_JSON 1536u /* decoded header/claims that fit here need no malloc */
/* Latest iat/exp/nbf accepted, in seconds: 9999-12-31T23:59:59Z. Bounds the
 * conversion to milliseconds and catches exp given in milliseconds. */
#define MAX_TIME_S 253402300799LL

static const char CLAIM_CHANNEL_PREFIX[] = "ably.channel.";

/* ---- keyed HMAC cache ---- */

typedef struct cache_slot {
  char kid[SW_JWT_KID_MAX];
  size_t kid_len;
  uint8_t *secret; /* copy, compared against the looked-up secret */
  size_t secret_len;
  EVP_MAC_CTX *ctx; /* keyed with secret; NULL while the slot is empty */
} cache_slot_t;

struct sw_jwt_cache {
  EVP_MAC *mac;
  cache_slot_t slot[CACHE_SLOTS];
};

sw_jwt_cache_t *jwt_cache_new(void) {
  sw_jwt_cache_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  if (!c->mac) {
    free(c);
    return NULL;
  }
  return c;
}

static void slot_reset(cache_slot_t *s) {
  if (s->secret) {
    OPENSSL_cleanse(s->secret, s->secret_len);
    free(s->secret);
  }
  EVP_MAC_CTX_free(s->ctx);
  memset(s, 0, sizeof *s);
}

void jwt_cache_free(sw_jwt_cache_t *c) {
  if (!c) return;
  for (size_t i = 0; i < CACHE_SLOTS; i++) slot_reset(&c->slot[i]);
  EVP_MAC_free(c->mac);
  free(c);
}

/* FNV-1a: spreads keyNames of one app ("app.k1", "app.k2") over slots. */
static size_t slot_index(const char *kid, size_t len) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)kid[i]) * 16777619u;
  return h & (CACHE_SLOTS - 1);
}

/* A non-NULL key pointer even for an empty secret: OpenSSL treats a NULL
 * key as "keep the previous key". */
static const unsigned char empty_key[1];

/* HMAC-SHA256 of data into mac (32 bytes) through the cache. Returns 0, or
 * -1 when OpenSSL fails (out of memory). */
static int hmac_cached(sw_jwt_cache_t *c, const char *kid, size_t kid_len, const uint8_t *secret,
                       size_t secret_len, const char *data, size_t dlen, uint8_t *mac) {
  cache_slot_t *s = &c->slot[slot_index(kid, kid_len)];
  bool hit = s->ctx && s->kid_len == kid_len && memcmp(s->kid, kid, kid_len) == 0 &&
             s->secret_len == secret_len && CRYPTO_memcmp(s->secret, secret, secret_len) == 0;
  if (hit) {
    /* A NULL key re-initialises HMAC from the saved inner/outer pads. */
    if (!EVP_MAC_init(s->ctx, NULL, 0, NULL)) {
      slot_reset(s);
      return -1;
    }
  } else {
    slot_reset(s);
    s->ctx = EVP_MAC_CTX_new(c->mac);
    s->secret = malloc(secret_len ? secret_len : 1);
    if (!s->ctx || !s->secret) {
      slot_reset(s);
      return -1;
    }
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (!EVP_MAC_init(s->ctx, secret_len ? secret : empty_key, secret_len, params)) {
      slot_reset(s);
      return -1;
    }
    memcpy(s->secret, secret, secret_len);
    s->secret_len = secret_len;
    memcpy(s->kid, kid, kid_len);
    s->kid_len = kid_len;
  }
  size_t outl = 0;
  if (!EVP_MAC_update(s->ctx, (const unsigned char *)data, dlen) ||
      !EVP_MAC_final(s->ctx, mac, &outl, SIG_LEN) || outl != SIG_LEN) {
    slot_reset(s);
    return -1;
  }
  return 0;
}

static int hmac_once(const uint8_t *secret, size_t secret_len, const char *data, size_t dlen,
                     uint8_t *mac) {
  unsigned int outl = 0;
  if (secret_len > INT_MAX) return -1;
  if (!HMAC(EVP_sha256(), secret_len ? secret : empty_key, (int)secret_len,
            (const unsigned char *)data, dlen, mac, &outl) ||
      outl != SIG_LEN)
    return -1;
  return 0;
}

/* ---- helpers ---- */

void jwt_clear(sw_jwt_t *j) {
  if (!j) return;
  free(j->capability);
  free(j->client_id);
  free(j->revocation_key);
  free(j->client_type);
  json_decref(j->channel_claims);
  free(j->embedded_token);
  memset(j, 0, sizeof *j);
}

/* errors_set with an optional err. Always returns -1. */
static int fail(sw_error_t *err, int code, const char *msg) {
  if (err) errors_set(err, code, "%s", msg);
  return -1;
}

bool jwt_looks_like(const char *s, size_t n) {
  if (!s) return false;
  size_t dots = 0, seg = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '.') {
      if (seg == 0 || ++dots > 2) return false;
      seg = 0;
    } else if (b64url_is_char(c)) {
      seg++;
    } else {
      return false;
    }
  }
  return dots == 2;
}

/* Decodes a base64url segment and parses it as a JSON object. Returns 0
 * with *obj (a new reference), 1 when the segment is not base64url or not
 * a JSON object, -1 when out of memory. */
static int decode_object(const char *seg, size_t len, json_t **obj) {
  uint8_t stackbuf[STACK_JSON];
  size_t cap = b64url_decoded_len(len);
  uint8_t *buf = cap <= sizeof stackbuf ? stackbuf : malloc(cap);
  if (!buf) return -1;
  long got = b64url_decode(seg, len, buf, cap);
  int rc = 1;
  *obj = NULL;
  if (got >= 0) {
    json_error_t jerr;
    /* Duplicate names are refused: two "alg" or two "exp" could be read
     * differently by another parser on the way. */
    json_t *v = json_loadb((const char *)buf, (size_t)got, JSON_REJECT_DUPLICATES, &jerr);
    if (json_is_object(v)) {
      *obj = v;
      rc = 0;
    } else {
      json_decref(v);
    }
  }
  if (buf != stackbuf) free(buf);
  return rc;
}

/* A NumericDate claim (RFC 7519 section 2) in milliseconds. Returns 0 with
 * *ms, 1 when absent, -1 when not a number in [0, MAX_TIME_S]. */
static int claim_time(const json_t *claims, const char *name, int64_t *ms) {
  const json_t *v = json_object_get(claims, name);
  if (!v) return 1;
  if (json_is_integer(v)) {
    json_int_t s = json_integer_value(v);
    if (s < 0 || s > MAX_TIME_S) return -1;
    *ms = (int64_t)s * 1000;
    return 0;
  }
  if (json_is_real(v)) {
    double s = json_real_value(v);
    if (!isfinite(s) || s < 0 || s > (double)MAX_TIME_S) return -1;
    *ms = (int64_t)floor(s * 1000.0);
    return 0;
  }
  return -1;
}

/* An optional non-empty string claim, copied into *out. Returns 0 (absent
 * leaves *out NULL), 1 when present but not a non-empty string without
 * NUL, -1 when out of memory. */
static int claim_string(const json_t *obj, const char *name, char **out) {
  const json_t *v = json_object_get(obj, name);
  if (!v) return 0;
  if (!json_is_string(v)) return 1;
  size_t len = json_string_length(v);
  const char *s = json_string_value(v);
  if (len == 0 || memchr(s, '\0', len)) return 1;
  *out = strdup(s);
  return *out ? 0 : -1;
}

/* Fills the caller-visible result of an embedding JWT (x-ably-token in
 * header or claims). Nothing of the outer token is trusted except its
 * expiry, which can only shorten the inner token's life. */
static int verify_embedded(const json_t *header, const json_t *claims, const sw_jwt_opts_t *o,
                           sw_jwt_t *out, sw_error_t *err) {
  if (o->forbid_embedded) return fail(err, 40144, "Invalid JWT; x-ably-token inside an embedded token");
  char *h = NULL, *c = NULL;
  int rh = claim_string(header, "x-ably-token", &h);
  int rc = claims ? claim_string(claims, "x-ably-token", &c) : 0;
  if (rh < 0 || rc < 0) {
    free(h);
    free(c);
    return fail(err, 50000, "out of memory");
  }
  if (rh || rc) {
    free(h);
    free(c);
    return fail(err, 40144, "Invalid JWT; x-ably-token must be a non-empty string");
  }
  if (h && c && strcmp(h, c) != 0) {
    free(h);
    free(c);
    return fail(err, 40144, "Invalid JWT; x-ably-token differs in header and claims");
  }
  out->embedded_token = h ? h : c;
  if (h && c) free(c);
  if (!claims) return fail(err, 40144, "Invalid JWT; claims are not a JSON object");
  int r = claim_time(claims, "exp", &out->exp_ms);
  if (r) return fail(err, 40144, r > 0 ? "Invalid JWT; exp must be specified" : "Invalid JWT; exp must be a NumericDate in seconds");
  r = claim_time(claims, "iat", &out->iat_ms);
  if (r < 0) return fail(err, 40144, "Invalid JWT; iat must be a NumericDate in seconds");
  if (out->exp_ms <= o->now_ms - o->leeway_ms) return fail(err, 40142, "Token expired");
  if (r == 0 && out->iat_ms > o->now_ms + o->leeway_ms)
    return fail(err, 40144, "Invalid JWT; issuedAt time must not be in the future");
  return 0;
}

/* The Ably claims of a verified token. */
static int read_claims(const json_t *claims, const sw_jwt_opts_t *o, sw_jwt_t *out, sw_error_t *err) {
  int r = claim_time(claims, "iat", &out->iat_ms);
  if (r) return fail(err, 40144, r > 0 ? "Invalid JWT; iat must be specified" : "Invalid JWT; iat must be a NumericDate in seconds");
  r = claim_time(claims, "exp", &out->exp_ms);
  if (r) return fail(err, 40144, r > 0 ? "Invalid JWT; exp must be specified" : "Invalid JWT; exp must be a NumericDate in seconds");
  int64_t nbf_ms = 0;
  r = claim_time(claims, "nbf", &nbf_ms);
  if (r < 0) return fail(err, 40144, "Invalid JWT; nbf must be a NumericDate in seconds");
  bool has_nbf = r == 0;

  if (out->exp_ms <= o->now_ms - o->leeway_ms) return fail(err, 40142, "Token expired");
  if (out->iat_ms > o->now_ms + o->leeway_ms)
    return fail(err, 40144, "Invalid JWT; issuedAt time must not be in the future");
  if (has_nbf && nbf_ms > o->now_ms + o->leeway_ms) return fail(err, 40144, "Invalid JWT; token not yet valid (nbf)");
  if (out->exp_ms <= out->iat_ms) return fail(err, 40144, "Invalid JWT; exp must be later than iat");
  if (out->exp_ms - out->iat_ms > o->max_ttl_ms) {
    if (err) errors_set(err, 40003, "Invalid JWT; ttl (exp - iat) exceeds %lld ms", (long long)o->max_ttl_ms);
    return -1;
  }

  /* x-ably-capability: JSON text as the docs show, or the object itself as
   * some issuers (e.g. the Ably CLI) write it. */
  const json_t *cap = json_object_get(claims, "x-ably-capability");
  if (cap) {
    if (json_is_object(cap)) {
      out->capability = json_dumps(cap, JSON_COMPACT);
      if (!out->capability) return fail(err, 50000, "out of memory");
    } else {
      r = claim_string(claims, "x-ably-capability", &out->capability);
      if (r < 0) return fail(err, 50000, "out of memory");
      if (r) return fail(err, 40144, "Invalid JWT; x-ably-capability must be a non-empty JSON string");
    }
  }
  static const struct {
    const char *name;
    size_t off;
  } strs[] = {{"x-ably-clientId", offsetof(sw_jwt_t, client_id)},
              {"x-ably-revocation-key", offsetof(sw_jwt_t, revocation_key)},
              {"x-ably-clientType", offsetof(sw_jwt_t, client_type)}};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
    r = claim_string(claims, strs[i].name, (char **)((char *)out + strs[i].off));
    if (r < 0) return fail(err, 50000, "out of memory");
    if (r) {
      if (err) errors_set(err, 40144, "Invalid JWT; %s must be a non-empty string", strs[i].name);
      return -1;
    }
  }

  /* ably.channel.<resource>: trusted per-channel user claims. The value is
   * kept as given (the docs use JSON text in a string). */
  const char *name;
  json_t *v;
  size_t plen = sizeof CLAIM_CHANNEL_PREFIX - 1;
  json_object_foreach((json_t *)claims, name, v) {
    if (strncmp(name, CLAIM_CHANNEL_PREFIX, plen) != 0) continue;
    if (name[plen] == '\0') return fail(err, 40144, "Invalid JWT; ably.channel. claim without a resource");
    if (!out->channel_claims && !(out->channel_claims = json_object()))
      return fail(err, 50000, "out of memory");
    if (json_object_set(out->channel_claims, name + plen, v)) return fail(err, 50000, "out of memory");
  }
  return 0;
}

/* ---- verification ---- */

int jwt_verify(const char *tok, size_t n, sw_jwt_key_lookup lookup, void *ud,
               const sw_jwt_opts_t *opts, sw_jwt_t *out, sw_error_t *err) {
  memset(out, 0, sizeof *out);
  sw_jwt_opts_t o = opts ? *opts : (sw_jwt_opts_t){0};
  if (o.now_ms == 0) o.now_ms = clock_now_ms();
  if (o.leeway_ms < 0) o.leeway_ms = 0;
  if (o.max_len == 0) o.max_len = SW_JWT_DEFAULT_MAX_LEN;
  if (o.max_ttl_ms <= 0) o.max_ttl_ms = SW_JWT_DEFAULT_MAX_TTL_MS;

  /* Everything before the signature check runs on unauthenticated input,
   * so it is bounded first and kept to the header. */
  if (!tok || n == 0) return fail(err, 40144, "Invalid JWT; empty token");
  if (n > o.max_len) {
    if (err) errors_set(err, 40144, "Invalid JWT; longer than %zu bytes", o.max_len);
    return -1;
  }
  const char *d1 = memchr(tok, '.', n);
  const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - tok)) : NULL;
  if (!d2) return fail(err, 40144, "Invalid JWT; expected header.claims.signature");
  if (memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - tok)))
    return fail(err, 40144, "Invalid JWT; too many segments (encrypted JWTs are not supported)");
  size_t hlen = (size_t)(d1 - tok), plen = (size_t)(d2 - d1 - 1), slen = n - (size_t)(d2 + 1 - tok);
  if (hlen == 0 || plen == 0) return fail(err, 40144, "Invalid JWT; empty header or claims");

  json_t *header = NULL, *claims = NULL;
  int ret = -1;
  int r = decode_object(tok, hlen, &header);
  if (r) {
    fail(err, r < 0 ? 50000 : 40144, r < 0 ? "out of memory" : "Invalid JWT; header is not base64url JSON object");
    goto done;
  }

  if (json_object_get(header, "x-ably-token")) {
    /* The outer token's claims are needed only for its exp. */
    r = decode_object(d1 + 1, plen, &claims);
    if (r < 0) {
      fail(err, 50000, "out of memory");
      goto done;
    }
    ret = verify_embedded(header, claims, &o, out, err);
    goto done;
  }

  const json_t *kid = json_object_get(header, "kid");
  if (!kid) {
    /* Without a kid this can only be an embedding JWT with the token as a
     * claim; the claims are decoded only to look for it. */
    r = decode_object(d1 + 1, plen, &claims);
    if (r < 0) {
      fail(err, 50000, "out of memory");
      goto done;
    }
    if (r == 0 && json_object_get(claims, "x-ably-token")) {
      ret = verify_embedded(header, claims, &o, out, err);
      goto done;
    }
  }

  /* RFC 7515 4.1.11: unknown critical extensions must be refused, and we
   * understand none. */
  if (json_object_get(header, "crit")) {
    fail(err, 40144, "Invalid JWT; crit header is not supported");
    goto done;
  }
  const json_t *typ = json_object_get(header, "typ");
  if (typ && (!json_is_string(typ) || json_string_length(typ) != 3 ||
              strcasecmp(json_string_value(typ), "JWT") != 0)) {
    fail(err, 40144, "Invalid JWT; typ must be JWT");
    goto done;
  }
  /* The algorithm is an allow-list of one: anything the header says other
   * than exactly HS256 is refused before any key is touched. */
  const json_t *alg = json_object_get(header, "alg");
  if (!json_is_string(alg) || json_string_length(alg) != 5 ||
      strcmp(json_string_value(alg), "HS256") != 0) {
    fail(err, 40144, "Invalid JWT; unsupported alg (only HS256 is accepted)");
    goto done;
  }
  if (!kid) {
    fail(err, 40144, "Invalid JWT; kid (the Ably key name) must be specified");
    goto done;
  }
  size_t kid_len = json_is_string(kid) ? json_string_length(kid) : 0;
  if (kid_len == 0 || kid_len >= SW_JWT_KID_MAX || memchr(json_string_value(kid), '\0', kid_len)) {
    fail(err, 40144, "Invalid JWT; kid must be a key name (appId.keyId)");
    goto done;
  }
  memcpy(out->kid, json_string_value(kid), kid_len + 1);

  const uint8_t *secret = NULL;
  size_t secret_len = 0;
  if (!lookup || lookup(ud, out->kid, kid_len, &secret, &secret_len) != 0 || !secret) {
    /* kid is a public key name, safe to echo; it has no NUL and < 128 bytes. */
    if (err) errors_set(err, 40400, "No key %s found (app or key does not exist)", out->kid);
    goto done;
  }

  uint8_t sig[SIG_LEN], mac[SIG_LEN];
  if (slen != SIG_CHARS || b64url_decode(d2 + 1, slen, sig, sizeof sig) != (long)SIG_LEN) {
    fail(err, 40144, "Invalid JWT; signature verification failed");
    goto done;
  }
  size_t signed_len = (size_t)(d2 - tok);
  r = o.cache ? hmac_cached(o.cache, out->kid, kid_len, secret, secret_len, tok, signed_len, mac)
              : hmac_once(secret, secret_len, tok, signed_len, mac);
  if (r) {
    fail(err, 50000, "HMAC failed");
    goto done;
  }
  bool good = CRYPTO_memcmp(mac, sig, SIG_LEN) == 0;
  OPENSSL_cleanse(mac, sizeof mac);
  if (!good) {
    fail(err, 40144, "Invalid JWT; signature verification failed");
    goto done;
  }

  r = decode_object(d1 + 1, plen, &claims);
  if (r) {
    fail(err, r < 0 ? 50000 : 40144, r < 0 ? "out of memory" : "Invalid JWT; claims are not a base64url JSON object");
    goto done;
  }
  if (json_object_get(claims, "x-ably-token")) {
    /* Signed by one of our keys and still carrying a token: the inner token
     * is what grants access, as for any embedding JWT. */
    memset(out->kid, 0, sizeof out->kid);
    ret = verify_embedded(header, claims, &o, out, err);
    goto done;
  }
  ret = read_claims(claims, &o, out, err) == 0 ? 0 : -1;

done:
  json_decref(header);
  json_decref(claims);
  if (ret != 0) jwt_clear(out);
  return ret;
}

/* ---- minting ---- */

char *jwt_sign_ably(const char *key_name, const uint8_t *secret, size_t secret_len, int64_t iat_s,
                    int64_t exp_s, const char *capability, const char *client_id,
                    const char *revocation_key) {
  if (!key_name || !secret || secret_len == 0 || secret_len > INT_MAX) return NULL;
  jwt_t *j = NULL;
  char *tok = NULL;
  if (jwt_new(&j)) return NULL;
  if (jwt_set_alg(j, JWT_ALG_HS256, secret, (int)secret_len) || jwt_add_header(j, "kid", key_name) ||
      jwt_add_grant_int(j, "iat", (long)iat_s) || jwt_add_grant_int(j, "exp", (long)exp_s) ||
      (capability && jwt_add_grant(j, "x-ably-capability", capability)) ||
      (client_id && jwt_add_grant(j, "x-ably-clientId", client_id)) ||
      (revocation_key && jwt_add_grant(j, "x-ably-revocation-key", revocation_key)))
    goto done;
  tok = jwt_encode_str(j);
done:
  jwt_free(j);
  return tok;
}
