/* jwt.h: Ably JWTs (docs "JSON Web Tokens", features TN3, RSA3/RSA8).
 *
 * An Ably JWT is a JWS in compact form, HMAC-SHA256 signed with the secret
 * of an Ably API key and naming that key in the JOSE header:
 *   header  {"alg":"HS256","typ":"JWT","kid":"<appId>.<keyId>"}
 *   claims  {"iat":<s>,"exp":<s>,"x-ably-capability":"<json>",
 *            "x-ably-clientId":"<id>", ...}
 * Tokens from any JWT library work, e.g. Node's
 *   jwt.sign({...claims}, keySecret, {algorithm:'HS256', keyid: keyName, expiresIn:'1h'})
 * where the secret is the UTF-8 key secret string.
 *
 * A JWT may instead carry an Ably token (or Ably JWT) under "x-ably-token",
 * in the JOSE header or as a claim (docs "Embed an Ably Token in a JWT").
 * The outer JWT is signed by a third party whose key we do not have, so its
 * signature is not checked and its claims grant nothing: jwt_verify returns
 * only the inner token and the outer expiry, and the caller verifies the
 * inner token and refuses the outer one when its exp is later than the
 * inner token's expiry.
 *
 * Error codes, their sources and the decisions behind them are in
 * docs/jwt.md. Verification computes HMAC-SHA256 with OpenSSL's SHA-256
 * (with an optional per-thread cache of keyed HMAC states), and reads
 * header and claims with a scanner for flat objects that hands everything
 * else to jansson; minting uses libjwt. docs/benchmarks.md has the numbers
 * behind that split. */
#ifndef SW_AUTH_JWT_H
#define SW_AUTH_JWT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/errors.h"

#define SW_JWT_DEFAULT_MAX_LEN 8192u                 /* bytes; JWTs travel in HTTP headers */
#define SW_JWT_DEFAULT_MAX_TTL_MS (24LL * 3600 * 1000) /* Ably's cap for access tokens */
#define SW_JWT_KID_MAX 128u                          /* sizeof sw_jwt_t.kid, NUL included */

/* Verified claims. Strings are owned by the struct (NUL-terminated, no
 * embedded NUL); free them with jwt_clear. */
typedef struct sw_jwt {
  char kid[SW_JWT_KID_MAX];  /* keyName "appId.keyId"; "" for an embedded token */
  int64_t iat_ms, exp_ms;    /* converted from seconds; iat_ms 0 when an embedding JWT has none */
  char *capability;          /* x-ably-capability as JSON text (an object claim is serialised);
                                NULL if absent: the key's capability applies */
  char *client_id;           /* x-ably-clientId, may be "*"; NULL if absent */
  char *revocation_key;      /* x-ably-revocation-key; NULL if absent */
  char *client_type;         /* x-ably-clientType (e.g. "server"); NULL if absent */
  char *workspace;           /* x-switchboard-workspace (the Assistant Cloud workspace,
                                docs/identity.md); NULL if absent */
  json_t *channel_claims;    /* object: resource pattern -> claim value (any JSON), from
                                "ably.channel.<resource>" claims; NULL if none */
  char *embedded_token;      /* x-ably-token (header or claim); NULL if none. When set, only
                                exp_ms and iat_ms above are filled in */
} sw_jwt_t;

/* Finds the secret of the key named kid (kid_len bytes, also NUL-terminated).
 * Returns 0 with *secret and *len set (borrowed: they must stay valid until
 * jwt_verify returns), or -1 if there is no such app or key. */
typedef int (*sw_jwt_key_lookup)(void *ud, const char *kid, size_t kid_len, const uint8_t **secret,
                                 size_t *len);

/* Keyed HMAC-SHA256 states, reused across verifications with the same
 * key so that the key's pads are not hashed again for every token. A
 * small direct-mapped table indexed by kid; an entry is reused only when
 * the looked-up secret is byte-for-byte the one it was keyed with, so
 * rotating a key's secret needs no invalidation. Holds copies of secrets
 * and the states derived from them (wiped on eviction and free). Not
 * thread-safe: use one per thread (e.g. per event loop). */
typedef struct sw_jwt_cache sw_jwt_cache_t;

/* New empty cache, owned by the caller (free with jwt_cache_free); NULL
 * when out of memory. */
sw_jwt_cache_t *jwt_cache_new(void);

/* Frees c and wipes the secrets it copied; NULL is a no-op. */
void jwt_cache_free(sw_jwt_cache_t *c);

typedef struct sw_jwt_opts {
  int64_t now_ms;         /* current time; 0 means the wall clock */
  int64_t leeway_ms;      /* clock skew tolerated on iat and nbf (an issuer whose clock is
                             ahead); <= 0 means none. Not on exp: expiry is judged by this
                             server's clock, as Ably's servers do (RSA4b1) */
  size_t max_len;         /* longest token accepted; 0 means SW_JWT_DEFAULT_MAX_LEN */
  int64_t max_ttl_ms;     /* longest exp - iat; 0 means 24 h. Pass 1 h for a key with
                             revocable tokens */
  bool forbid_embedded;   /* set when verifying a token found in x-ably-token: a second
                             level of embedding is refused */
  sw_jwt_cache_t *cache;  /* optional, see above; NULL keys HMAC afresh every time */
  bool jansson_only;      /* testing: parse header and claims with jansson alone instead of
                             the fast scanner, to check that both agree (fuzz/fuzz_jwt.c) */
} sw_jwt_opts_t;

/* Is s (n bytes) shaped like a JWS: exactly three '.'-separated segments of
 * base64url characters, the first two non-empty? Tells a JWT from an Ably
 * token string ("appId.random") or a key. Cheap; no allocation. */
bool jwt_looks_like(const char *s, size_t n);

/* Verifies an Ably JWT of n bytes (need not be NUL-terminated).
 *
 * Checks, in this order: length (opts->max_len), three segments of
 * canonical unpadded base64url, a JSON object header without "crit", typ
 * "JWT" if present, alg exactly "HS256" (an allow-list: "none", HS384,
 * RS256, ES256 and the rest are refused, so an RS256 header can never make
 * the key secret act as a public key), kid present and known to lookup, the
 * HMAC-SHA256 of "header.payload" compared in constant time, and only then
 * the claims: a JSON object with numeric iat and exp (seconds), exp after
 * now (no leeway), iat and nbf not after (now + leeway), exp > iat,
 * exp - iat <= max_ttl, and the Ably claims well-typed when present
 * (x-ably-capability a non-empty string or an object, x-ably-clientId,
 * x-ably-revocation-key, x-ably-clientType and x-switchboard-workspace
 * non-empty strings). Duplicate
 * names in header or claims are refused. Unknown claims are ignored.
 * The capability is returned as text, not parsed: cap_parse it and
 * cap_intersect it with the key's capability.
 *
 * A token with x-ably-token (see the top of this file) skips alg, kid and
 * signature; it needs a numeric exp that is not past and returns 0 with
 * embedded_token, exp_ms and iat_ms set and nothing else.
 *
 * Returns 0 and fills *out (which the caller frees with jwt_clear), or -1
 * with *out zeroed and err filled (err may be NULL):
 *   40144 (401) malformed or oversized token, unsupported alg, missing or
 *         bad kid, bad signature, missing or wrongly typed claims, iat or
 *         nbf in the future, exp <= iat, nested embedding;
 *   40142 (401) expired;
 *   40400 (404) kid names no known app or key;
 *   40003 (400) exp - iat over max_ttl;
 *   50000 (500) out of memory.
 * Messages name the failing check and never contain secrets or token
 * text. opts may be NULL for all defaults. */
int jwt_verify(const char *tok, size_t n, sw_jwt_key_lookup lookup, void *ud,
               const sw_jwt_opts_t *opts, sw_jwt_t *out, sw_error_t *err);

/* Frees what j owns and zeroes it; safe on a zeroed struct, twice, or NULL. */
void jwt_clear(sw_jwt_t *j);

/* Mints an Ably JWT (tests, the `switchboard token` CLI): header
 * {"alg":"HS256","kid":key_name,"typ":"JWT"}, claims iat and exp (seconds,
 * taken as given: no checks, so tests can mint expired tokens) and, when
 * non-NULL, x-ably-capability (JSON text), x-ably-clientId and
 * x-ably-revocation-key. Uses libjwt. Returns a malloc'd NUL-terminated
 * token the caller frees with free(), or NULL when an argument is NULL,
 * secret_len is 0 or over INT_MAX, or out of memory. */
char *jwt_sign_ably(const char *key_name, const uint8_t *secret, size_t secret_len, int64_t iat_s,
                    int64_t exp_s, const char *capability, const char *client_id,
                    const char *revocation_key);
/* jwt_sign_ably with an x-switchboard-workspace claim too (when non-NULL):
 * the tokens the Assistant Cloud API hands out (src/cloud/). */
char *jwt_sign_ably_ws(const char *key_name, const uint8_t *secret, size_t secret_len, int64_t iat_s,
                       int64_t exp_s, const char *capability, const char *client_id,
                       const char *revocation_key, const char *workspace);

#endif
