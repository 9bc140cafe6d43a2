/* token_request.c: TokenRequest/TokenParams parsing, mac check, validation
 * and the nonce replay cache. See token_request.h and docs/tokens.md. */
#include "auth/token_request.h"

#include <jansson.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/codec.h"

/* Out of memory in the replay cache is reported, not fatal (uthash's default
 * is exit()). */
#define HASH_NONFATAL_OOM 1
#include "util/hash.h"

/* Codes not in proto/errors.h's enum (Ably's errors table). */
#define E_TIMESTAMP_NOT_CURRENT 40104
#define E_NONCE_REPLAYED 40105

static int fail(sw_error_t *err, int code, const char *msg) {
  if (err) errors_set(err, code, "%s", msg);
  return -1;
}

/* ---- parsing ---- */

static char *dup_n(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

/* A JSON number as JavaScript's String() writes it, for the integers that
 * ttl and timestamp are. Reals that hold an integer print without a
 * fraction (3600000.0 -> "3600000", -0 -> "0"), as in JavaScript. Other
 * reals get the shortest %g that reads back the same, which can differ from
 * JavaScript's spelling; such values are refused by validation anyway. */
static int number_text(const json_t *v, char *out, size_t cap) {
  if (json_is_integer(v)) return snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  double d = json_real_value(v);
  if (d == 0) return snprintf(out, cap, "0");
  if (d == trunc(d) && fabs(d) < 1e21) return snprintf(out, cap, "%.0f", d);
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(out, cap, "%.*g", prec, d);
    if (strtod(out, NULL) == d) break;
  }
  return (int)strlen(out);
}

/* Field kinds. */
enum { K_STRING, K_NUMBER, K_CAPABILITY };

/* Reads one field of obj into *dst (NULL when absent or null). Returns 0,
 * or -1 with err. */
static int get_field(const json_t *obj, const char *name, int kind, char **dst, sw_error_t *err) {
  *dst = NULL;
  const json_t *v = json_object_get(obj, name);
  if (!v || json_is_null(v)) return 0;
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    /* Fields become C strings, and the mac is over text: NUL has no place. */
    if (memchr(s, '\0', n)) {
      if (err) errors_set(err, SW_E_INVALID_BODY, "invalid token request: %s contains NUL", name);
      return -1;
    }
    *dst = dup_n(s, n);
  } else if (kind == K_NUMBER && json_is_number(v)) {
    /* ably-js signs "ttl || ''": a ttl of 0 is no ttl at all. */
    if (strcmp(name, "ttl") == 0 && json_number_value(v) == 0) return 0;
    char buf[64];
    int len = number_text(v, buf, sizeof buf);
    if (len < 0 || (size_t)len >= sizeof buf) {
      if (err) errors_set(err, SW_E_INVALID_BODY, "invalid token request: bad %s", name);
      return -1;
    }
    *dst = dup_n(buf, (size_t)len);
  } else if (kind == K_CAPABILITY && json_is_object(v)) {
    /* Not what ably-js sends (it stringifies), but a natural TokenParams
     * body; compact text with keys in the order received. */
    *dst = json_dumps(v, JSON_COMPACT);
  } else {
    if (err)
      errors_set(err, strcmp(name, "clientId") == 0 ? SW_E_INVALID_CLIENT_ID : SW_E_INVALID_BODY,
                 "invalid token request: %s has the wrong type", name);
    return -1;
  }
  if (!*dst) return fail(err, SW_E_INTERNAL, "out of memory parsing token request");
  return 0;
}

int token_request_parse(const uint8_t *p, size_t n, int is_msgpack, sw_token_request_t *out,
                        sw_error_t *err) {
  memset(out, 0, sizeof *out);
  if (!p || n == 0 || n > SW_TOKEN_REQUEST_MAX_BODY)
    return fail(err, SW_E_BAD_REQUEST, n ? "token request body too large" : "empty token request body");
  sw_error_t derr = {0};
  json_t *root = codec_decode_value(is_msgpack ? SW_FMT_MSGPACK : SW_FMT_JSON, p, n, &derr);
  if (!root) {
    if (derr.code == SW_E_INTERNAL) return fail(err, SW_E_INTERNAL, "out of memory parsing token request");
    return fail(err, SW_E_BAD_REQUEST, "invalid token request body");
  }
  if (!json_is_object(root)) {
    json_decref(root);
    return fail(err, SW_E_BAD_REQUEST, "token request body is not an object");
  }
  int rc = 0;
  if (get_field(root, "keyName", K_STRING, &out->key_name, err) ||
      get_field(root, "ttl", K_NUMBER, &out->ttl, err) ||
      get_field(root, "capability", K_CAPABILITY, &out->capability, err) ||
      get_field(root, "clientId", K_STRING, &out->client_id, err) ||
      get_field(root, "timestamp", K_NUMBER, &out->timestamp, err) ||
      get_field(root, "nonce", K_STRING, &out->nonce, err) ||
      get_field(root, "mac", K_STRING, &out->mac, err)) {
    rc = -1;
  } else if (out->mac && (!out->key_name || !out->timestamp || !out->nonce)) {
    /* The mac signs these and replay protection needs them. */
    rc = fail(err, SW_E_INVALID_BODY,
              !out->key_name    ? "invalid token request: keyName missing"
              : !out->timestamp ? "invalid token request: timestamp missing"
                                : "invalid token request: nonce missing");
  }
  json_decref(root);
  if (rc) {
    token_request_clear(out);
    return -1;
  }
  out->has_client_id = out->client_id != NULL;
  return 0;
}

void token_request_clear(sw_token_request_t *r) {
  if (!r) return;
  free(r->key_name);
  free(r->ttl);
  free(r->capability);
  free(r->client_id);
  free(r->timestamp);
  free(r->nonce);
  free(r->mac);
  memset(r, 0, sizeof *r);
}

/* ---- mac ---- */

char *token_request_sign_text(const sw_token_request_t *r) {
  const char *f[6] = {r->key_name, r->ttl, r->capability, r->client_id, r->timestamp, r->nonce};
  size_t len = 1;
  for (int i = 0; i < 6; i++) len += (f[i] ? strlen(f[i]) : 0) + 1;
  char *text = malloc(len), *w = text;
  if (!text) return NULL;
  for (int i = 0; i < 6; i++) {
    size_t n = f[i] ? strlen(f[i]) : 0;
    memcpy(w, f[i] ? f[i] : "", n);
    w += n;
    *w++ = '\n';
  }
  *w = '\0';
  return text;
}

/* Base64 of a SHA-256 digest: 44 characters with padding. */
#define MAC_B64_LEN 44

/* Computes the expected mac of r into out (MAC_B64_LEN + 1 bytes). */
static int compute_mac(const sw_token_request_t *r, const char *secret, size_t secret_len,
                       char out[MAC_B64_LEN + 1]) {
  char *text = token_request_sign_text(r);
  if (!text) return -1;
  uint8_t digest[32];
  unsigned int dl = 0;
  /* A non-NULL key pointer even for an empty secret: OpenSSL reads it. */
  const unsigned char *key = (const unsigned char *)(secret ? secret : "");
  bool ok =
      HMAC(EVP_sha256(), key, (int)secret_len, (const unsigned char *)text, strlen(text), digest, &dl) &&
      dl == sizeof digest;
  free(text);
  if (ok) ok = EVP_EncodeBlock((unsigned char *)out, digest, (int)sizeof digest) == MAC_B64_LEN;
  OPENSSL_cleanse(digest, sizeof digest);
  return ok ? 0 : -1;
}

int token_request_check_mac(const sw_token_request_t *r, const char *secret, size_t secret_len,
                            sw_error_t *err) {
  if (!r->mac) return fail(err, SW_E_INVALID_CREDENTIALS, "token request has no mac");
  char want[MAC_B64_LEN + 1];
  if (compute_mac(r, secret, secret_len, want))
    return fail(err, SW_E_INTERNAL, "token request mac check failed");
  /* The length of a mac is public (always 44); its content is compared in
   * constant time. */
  bool ok = strlen(r->mac) == MAC_B64_LEN && CRYPTO_memcmp(r->mac, want, MAC_B64_LEN) == 0;
  OPENSSL_cleanse(want, sizeof want);
  return ok ? 0 : fail(err, SW_E_INVALID_CREDENTIALS, "invalid token request mac");
}

int token_request_sign(sw_token_request_t *r, const char *secret, size_t secret_len) {
  char mac[MAC_B64_LEN + 1];
  if (compute_mac(r, secret, secret_len, mac)) return -1;
  char *m = dup_n(mac, MAC_B64_LEN);
  if (!m) return -1;
  free(r->mac);
  r->mac = m;
  return 0;
}

/* ---- validation ---- */

/* Strict decimal integer: optional '-', 1-19 digits, nothing else, no
 * overflow. Returns 0 or -1. */
static int parse_int64(const char *s, int64_t *out) {
  bool neg = *s == '-';
  if (neg) s++;
  if (!*s) return -1;
  uint64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    unsigned d = (unsigned)(*s - '0');
    if (v > (UINT64_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX) return -1;
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 0;
}

/* |a - b| without overflow. */
static uint64_t distance(int64_t a, int64_t b) {
  return a > b ? (uint64_t)a - (uint64_t)b : (uint64_t)b - (uint64_t)a;
}

int token_request_validate(const sw_token_request_t *r, int64_t now_ms, bool revocable_key, int64_t *ttl_ms,
                           int64_t *timestamp_ms, sw_error_t *err) {
  bool signed_req = r->mac != NULL;
  int64_t ts = now_ms, ttl = SW_TOKEN_DEFAULT_TTL_MS;

  /* "" counts as absent for the numbers: it is what ably-js signs for them
   * when unset, and some callers send it. */
  if (r->timestamp && *r->timestamp) {
    if (parse_int64(r->timestamp, &ts))
      return fail(err, SW_E_INVALID_PARAM, "invalid token request timestamp");
    if (distance(ts, now_ms) > SW_TOKEN_REQUEST_WINDOW_MS)
      return fail(err, E_TIMESTAMP_NOT_CURRENT, "Timestamp not current");
  } else if (signed_req) {
    return fail(err, SW_E_INVALID_BODY, "invalid token request: timestamp missing");
  }

  if (signed_req) {
    if (!r->nonce) return fail(err, SW_E_INVALID_BODY, "invalid token request: nonce missing");
    size_t nl = strlen(r->nonce);
    if (nl < SW_TOKEN_NONCE_MIN_LEN)
      return fail(err, SW_E_INVALID_PARAM, "invalid token request: nonce shorter than 16 characters");
    if (nl > SW_TOKEN_NONCE_MAX_LEN)
      return fail(err, SW_E_INVALID_PARAM, "invalid token request: nonce longer than 256 characters");
  }

  if (r->ttl && *r->ttl) {
    if (parse_int64(r->ttl, &ttl) || ttl <= 0)
      return fail(err, SW_E_INVALID_PARAM, "invalid ttl: must be a positive number of milliseconds");
    if (ttl > SW_TOKEN_MAX_TTL_MS) return fail(err, SW_E_INVALID_PARAM, "invalid ttl: more than 24 hours");
    if (revocable_key && ttl > SW_TOKEN_MAX_TTL_REVOCABLE_MS)
      return fail(err, SW_E_INVALID_PARAM,
                  "invalid ttl: tokens of a key with revocable tokens last at most 1 hour");
  }

  if (r->client_id && !*r->client_id)
    return fail(err, SW_E_INVALID_CLIENT_ID, "clientId can't be an empty string");

  *ttl_ms = ttl;
  *timestamp_ms = ts;
  return 0;
}

/* ---- nonce replay cache ----
 * A uthash set for lookups plus a binary min-heap ordered by expiry, so the
 * entries that expire first are forgotten first, in O(log n). The hash is
 * not keyed, but only requests whose mac verified reach the cache, so only
 * key holders choose its keys. */

typedef struct nc_entry {
  UT_hash_handle hh;
  int64_t expires_at; /* forget once now > expires_at */
  size_t klen;
  char key[]; /* key_name NUL nonce NUL timestamp (8 bytes, big-endian) */
} nc_entry_t;

struct sw_nonce_cache {
  nc_entry_t *set;
  nc_entry_t **heap;
  size_t len, max;
  int64_t window;
};

sw_nonce_cache_t *nonce_cache_new(size_t max_entries, int64_t window_ms) {
  if (max_entries == 0 || window_ms <= 0 || max_entries > SIZE_MAX / sizeof(nc_entry_t *)) return NULL;
  sw_nonce_cache_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->heap = malloc(max_entries * sizeof *c->heap);
  if (!c->heap) {
    free(c);
    return NULL;
  }
  c->max = max_entries;
  c->window = window_ms;
  return c;
}

static void heap_swap(nc_entry_t **h, size_t a, size_t b) {
  nc_entry_t *t = h[a];
  h[a] = h[b];
  h[b] = t;
}

static void heap_push(sw_nonce_cache_t *c, nc_entry_t *e) {
  size_t i = c->len++;
  c->heap[i] = e;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (c->heap[parent]->expires_at <= c->heap[i]->expires_at) break;
    heap_swap(c->heap, parent, i);
    i = parent;
  }
}

static void heap_pop(sw_nonce_cache_t *c) {
  c->heap[0] = c->heap[--c->len];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < c->len && c->heap[l]->expires_at < c->heap[m]->expires_at) m = l;
    if (r < c->len && c->heap[r]->expires_at < c->heap[m]->expires_at) m = r;
    if (m == i) break;
    heap_swap(c->heap, i, m);
    i = m;
  }
}

static void expire(sw_nonce_cache_t *c, int64_t now_ms) {
  while (c->len && c->heap[0]->expires_at < now_ms) {
    nc_entry_t *e = c->heap[0];
    heap_pop(c);
    HASH_DEL(c->set, e);
    free(e);
  }
}

int nonce_cache_check(sw_nonce_cache_t *c, const char *key_name, const char *nonce, int64_t timestamp_ms,
                      int64_t now_ms, sw_error_t *err) {
  expire(c, now_ms);
  /* Outside the window the request is refused anyway; refusing here too
   * means no entry ever needs to outlive timestamp + window. */
  if (distance(timestamp_ms, now_ms) > (uint64_t)c->window)
    return fail(err, E_TIMESTAMP_NOT_CURRENT, "Timestamp not current");

  size_t kn = strlen(key_name), nn = strlen(nonce);
  /* Every entry's size is bounded, not only their number. */
  if (kn > 1024 || nn > SW_TOKEN_NONCE_MAX_LEN) return fail(err, SW_E_INVALID_PARAM, "nonce or key name too long");
  size_t klen = kn + 1 + nn + 1 + 8;
  nc_entry_t *e = malloc(sizeof *e + klen);
  if (!e) return fail(err, SW_E_INTERNAL, "out of memory in nonce cache");
  memset(e, 0, sizeof *e);
  memcpy(e->key, key_name, kn + 1);
  memcpy(e->key + kn + 1, nonce, nn + 1);
  uint64_t ts = (uint64_t)timestamp_ms;
  for (int i = 0; i < 8; i++) e->key[kn + 1 + nn + 1 + i] = (char)(uint8_t)(ts >> (56 - 8 * i));
  e->klen = klen;
  /* timestamp <= now + window here, so this only saturates near INT64_MAX. */
  e->expires_at = timestamp_ms > INT64_MAX - c->window ? INT64_MAX : timestamp_ms + c->window;

  nc_entry_t *seen = NULL;
  HASH_FIND(hh, c->set, e->key, (unsigned)klen, seen);
  if (seen) {
    free(e);
    return fail(err, E_NONCE_REPLAYED, "Nonce value replayed");
  }
  if (c->len >= c->max) {
    free(e);
    return fail(err, SW_E_RATE_LIMIT, "too many token requests; retry with a new token request later");
  }
  HASH_ADD_KEYPTR(hh, c->set, e->key, (unsigned)klen, e);
  if (!e->hh.tbl) {
    free(e);
    return fail(err, SW_E_INTERNAL, "out of memory in nonce cache");
  }
  heap_push(c, e);
  return 0;
}

size_t nonce_cache_size(const sw_nonce_cache_t *c) { return c ? c->len : 0; }

void nonce_cache_free(sw_nonce_cache_t *c) {
  if (!c) return;
  /* HASH_CLEAR frees the table only; every entry is also in the heap. */
  HASH_CLEAR(hh, c->set);
  for (size_t i = 0; i < c->len; i++) free(c->heap[i]);
  free(c->heap);
  free(c);
}
