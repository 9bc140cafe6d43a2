/* jwk.h: JSON Web Keys (RFC 7517) and JWS algorithms (RFC 7518, RFC 8037),
 * for verifying the tokens of identity providers (docs/identity.md).
 *
 * Pure: bytes in, keys out. A JWK Set is parsed with jansson and each usable
 * public key becomes an OpenSSL EVP_PKEY through EVP_PKEY_fromdata (RSA n/e,
 * EC x/y on P-256/P-384/P-521, OKP Ed25519 x). Nothing here fetches,
 * caches or knows about providers: src/identity/ does that.
 *
 * What a set may hold and what is skipped (a skipped key is never used, the
 * rest of the set still is):
 *   - kty RSA with a modulus of 2048..8192 bits and an odd public exponent
 *     of at most 32 bits (a huge exponent would make every verification
 *     slow); kty EC on P-256/P-384/P-521 with a point on the curve; kty OKP
 *     with crv Ed25519;
 *   - "use", if present, "sig"; "key_ops", if present, including "verify";
 *     "alg", if present, one this file knows and that fits the key type;
 *   - keys carrying private members (d, p, q, dp, dq, qi, oth) are skipped:
 *     a published private key means anyone can sign, so it must not verify;
 *   - kty "oct" (a shared secret) is always skipped: HMAC is only ever
 *     keyed from a provider's explicit sharedSecret option, never from a
 *     JWK Set, so a public key can never become an HMAC secret;
 *   - x5c, x5u, x5t and every other member are ignored (no URL is fetched).
 * The whole set fails (and a cache keeps its previous keys) when the text
 * is longer than the limit, not a JSON object with a "keys" array, has more
 * than SW_JWKS_MAX_KEYS entries, or has no usable key. */
#ifndef SW_AUTH_JWK_H
#define SW_AUTH_JWK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/errors.h"

#define SW_JWK_KID_MAX 256u          /* sizeof sw_jwk_t.kid: longest kid 255 bytes */
#define SW_JWKS_MAX_KEYS 64u         /* entries in one set */
#define SW_JWKS_DEFAULT_MAX_BYTES (256u * 1024u) /* a set's text; real ones are 1-30 KiB */

/* JWS algorithms (RFC 7518 section 3, RFC 8037 for EdDSA). "none" is not
 * one of them: it can never be named, allowed or selected. */
typedef enum {
  SW_JWS_RS256,
  SW_JWS_RS384,
  SW_JWS_RS512,
  SW_JWS_PS256,
  SW_JWS_PS384,
  SW_JWS_PS512,
  SW_JWS_ES256,
  SW_JWS_ES384,
  SW_JWS_ES512,
  SW_JWS_EDDSA,
  SW_JWS_HS256,
  SW_JWS_HS384,
  SW_JWS_HS512,
  SW_JWS_ALG_COUNT
} sw_jws_alg_t;

#define SW_JWS_ALG_BIT(a) (1u << (a))
#define SW_JWS_HMAC_ALGS (SW_JWS_ALG_BIT(SW_JWS_HS256) | SW_JWS_ALG_BIT(SW_JWS_HS384) | SW_JWS_ALG_BIT(SW_JWS_HS512))

/* Key families: which algorithms a key can verify. */
typedef enum {
  SW_JWK_RSA = 1, /* RS*, PS* */
  SW_JWK_P256,    /* ES256 */
  SW_JWK_P384,    /* ES384 */
  SW_JWK_P521,    /* ES512 */
  SW_JWK_ED25519, /* EdDSA */
} sw_jwk_family_t;

/* The algorithm named exactly s (n bytes, case-sensitive as RFC 7515
 * requires), or -1: "none", "hs256", "RS256 " and unknown names are -1. */
int jws_alg_from_name(const char *s, size_t n);
/* The registered name of a, e.g. "ES256"; "?" when out of range. */
const char *jws_alg_name(int a);
/* The key family that verifies a, or 0 for HMAC (no JWK) and bad values. */
sw_jwk_family_t jws_alg_family(int a);

typedef struct evp_pkey_st EVP_PKEY;

/* One usable public key. */
typedef struct sw_jwk {
  char kid[SW_JWK_KID_MAX]; /* "" when the JWK had no kid */
  bool has_kid;
  sw_jwk_family_t family;
  int alg;                  /* the JWK's "alg", or -1: any algorithm of its family */
  EVP_PKEY *pkey;           /* owned */
  /* What verifying with pkey under vctx_alg needs, set up on first use and
   * kept (auth/jws.c), so that OpenSSL 3's fetches and context set-up are
   * paid once per key, not per token (docs/benchmarks.md, "Identity
   * provider tokens"):
   *   RS/PS/ES: vctx, an EVP_PKEY_verify context with padding and digest
   *             set; md, the digest fetched once; mdctx, hashing the
   *             signing input with it;
   *   EdDSA:    mdctx, an EVP_DigestVerify context with the key, re-
   *             initialised per message (Ed25519 is one-shot).
   * mdctx is NULL until the first use (then vctx_alg says for which
   * algorithm). A memo, so a key is not thread-safe. */
  struct evp_pkey_ctx_st *vctx;
  struct evp_md_ctx_st *mdctx;
  struct evp_md_st *md;
  int vctx_alg;
} sw_jwk_t;

/* A parsed JWK Set: the usable keys in their order in the set. */
typedef struct sw_jwks {
  sw_jwk_t *keys;
  size_t n;
  size_t skipped;      /* entries not usable (see above) */
  char skip_note[160]; /* why the first skipped entry was skipped, for diagnostics; "" if none */
} sw_jwks_t;

/* Parses a JWK Set of n bytes (need not be NUL-terminated), at most
 * max_bytes long (0: SW_JWKS_DEFAULT_MAX_BYTES). Returns a new set the
 * caller frees with jwks_free, or NULL with err (40000: what is wrong with
 * the text; 50000 out of memory). A set that parses but holds no usable key
 * is an error too, with the first skip reason in the message. */
sw_jwks_t *jwks_parse(const char *text, size_t n, size_t max_bytes, sw_error_t *err);

/* The same for one JWK given as a JSON value (for a set built in memory).
 * Returns 0 and fills *out (the caller frees out->pkey with jwk_clear), or
 * -1 with a reason in note (noteN bytes) when the key is not usable. */
int jwk_from_json(const json_t *o, sw_jwk_t *out, char *note, size_t noteN);

void jwk_clear(sw_jwk_t *k);
void jwks_free(sw_jwks_t *s);

/* Does key k fit algorithm alg (family, and the JWK's own alg if it named one)? */
bool jwk_fits(const sw_jwk_t *k, int alg);

#endif
