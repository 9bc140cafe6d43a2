/* jws.h: verifying JWTs signed by an identity provider (RFC 7515, RFC 7519,
 * with the rules of RFC 8725, "JWT Best Current Practices").
 *
 * Pure: the caller (src/identity/) supplies the provider's policy and its
 * keys; nothing here fetches or caches. Two steps, so that the caller can
 * pick the provider from the token's issuer before anything is verified:
 *
 *   jws_decode  splits the compact form and decodes header and claims
 *               (bounded; nothing in them is trusted yet);
 *   jws_verify  checks the header, picks the key, verifies the signature
 *               and only then the claims.
 *
 * Rules (docs/identity.md lists each refusal with its code):
 *   - alg must be in the provider's allow-list; "none" is not an algorithm
 *     here at all. HS256/384/512 verify only with an explicitly configured
 *     shared secret, and a provider with a shared secret allows no other
 *     algorithm, so a public key can never be used as an HMAC secret;
 *   - headers that point at keys (jku, x5u, x5c, jwk) and crit are refused:
 *     keys come only from the provider's own configuration, and no URL from a
 *     token is ever fetched;
 *   - typ, if present, is JWT or at+jwt (RFC 9068), any case, with or
 *     without "application/";
 *   - the key: the provider's keys whose kid equals the token's and that fit
 *     alg; a token without kid needs exactly one fitting key;
 *   - iss equal to the provider's issuer (byte for byte), aud containing one
 *     of the configured audiences (when configured), exp required, nbf and
 *     iat (when present) not after now + leeway, exp > iat, and exp - iat
 *     (or exp - now without iat) at most max_ttl. */
#ifndef SW_AUTH_JWS_H
#define SW_AUTH_JWS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/jwk.h"
#include "proto/errors.h"

#define SW_JWS_DEFAULT_MAX_LEN 8192u
#define SW_JWS_MAX_SIG 1024u /* an RSA-8192 signature */

/* A decoded, not yet verified token. Owns header and claims. */
typedef struct sw_jws {
  json_t *header;          /* JSON object */
  json_t *claims;          /* JSON object */
  size_t signed_len;       /* "header.claims" is the token's first signed_len bytes */
  uint8_t sig[SW_JWS_MAX_SIG];
  size_t sig_len;
  int alg;                 /* jws_alg_from_name(header alg), or -1 */
  const char *kid;         /* into header; NULL when absent or not a string */
  const char *iss;         /* into claims; NULL when absent or not a string */
  /* The SHA-256 of the signed part, when the caller already had it
   * (jws_decode_rest): RS256, PS256 and ES256 then do not hash it again. */
  uint8_t signed_sha256[32];
  bool has_signed_sha256;
} sw_jws_t;

/* Splits and decodes tok (n bytes, need not be NUL-terminated): at most
 * max_len bytes (0: SW_JWS_DEFAULT_MAX_LEN), three segments of canonical
 * unpadded base64url, header and claims JSON objects without duplicate
 * names, a signature of at most SW_JWS_MAX_SIG bytes. Returns 0 and fills
 * *out (free with jws_clear), or -1 with 40144 (or 50000). */
int jws_decode(const char *tok, size_t n, size_t max_len, sw_jws_t *out, sw_error_t *err);
void jws_clear(sw_jws_t *j);

/* The header alone (the first segment as a JSON object), for routing a
 * token before anything else is decoded; NULL when it is not one. The
 * caller json_decref()s it, or hands it to jws_decode_rest. */
json_t *jws_decode_header(const char *tok, size_t n);

/* jws_decode for a token whose header jws_decode_header already gave:
 * header (non-NULL, of this very tok) is taken over, on failure too, and
 * not decoded again. signed_sha256, if not NULL, is the SHA-256 of tok's
 * first signed_len bytes, which the caller hashed already (identity.c's
 * cache key): it is kept for the signature check when signed_len is
 * indeed the length of the token's signed part, and ignored otherwise.
 * Same answers as jws_decode. */
int jws_decode_rest(const char *tok, size_t n, size_t max_len, json_t *header, const uint8_t *signed_sha256,
                    size_t signed_len, sw_jws_t *out, sw_error_t *err);

/* What a provider accepts. */
typedef struct sw_jws_policy {
  const char *issuer;              /* required: exact iss */
  const char *const *audiences;    /* aud must contain one of these; n_audiences 0: aud not checked */
  size_t n_audiences;
  uint32_t algs;                   /* SW_JWS_ALG_BIT mask; HMAC bits need hmac_secret */
  const uint8_t *hmac_secret;      /* the explicit sharedSecret option; NULL otherwise */
  size_t hmac_secret_len;
  int64_t now_ms;                  /* 0: the wall clock */
  int64_t leeway_ms;               /* on nbf and iat */
  int64_t max_ttl_ms;              /* 0: 24 h */
  bool require_iat;
} sw_jws_policy_t;

/* The outcome of a verification. */
typedef struct sw_jws_result {
  int64_t exp_ms, iat_ms;  /* iat_ms 0 when the token has none */
  bool unknown_kid;        /* refused because no key has the token's kid: the
                              caller may refresh the provider's keys */
} sw_jws_result_t;

/* Verifies a decoded token j (tok is the same text, for the signed part)
 * against policy pol and keys (may be NULL with a shared secret). Returns 0
 * with *res filled (the claims stay in j), or -1 with err:
 *   40144 (401) header refused, no fitting key, bad signature, iss/aud
 *         mismatch, a claim missing or mistyped, nbf/iat in the future;
 *   40142 (401) expired (exp <= now - leeway; callers drop a connection at
 *         the real exp);
 *   40003 (400) exp - iat over max_ttl. */
int jws_verify(const sw_jws_t *j, const char *tok, const sw_jws_policy_t *pol, const sw_jwks_t *keys,
               sw_jws_result_t *res, sw_error_t *err);

/* The signature check alone: does sig verify data with key under alg?
 * (RS*: PKCS#1 v1.5; PS*: PSS with MGF1 and a salt as long as the hash; ES*:
 * the raw R||S of RFC 7518 section 3.4; EdDSA: Ed25519.) */
bool jws_sig_ok(int alg, EVP_PKEY *key, const uint8_t *data, size_t dlen, const uint8_t *sig, size_t slen);

/* The same with a JWK whose OpenSSL objects are kept between calls (the
 * key's memo, jwk.h): RS, PS and ES hash the data with the kept digest and
 * run EVP_PKEY_verify on the kept context; EdDSA re-initialises the kept
 * EVP_DigestVerify context without a key (OpenSSL 3 keeps the key) and
 * verifies. Nothing is fetched or allocated per call, apart from what
 * OpenSSL allocates inside a verification. Same answers as jws_sig_ok. */
bool jws_sig_ok_jwk(int alg, sw_jwk_t *k, const uint8_t *data, size_t dlen, const uint8_t *sig, size_t slen);

#endif
