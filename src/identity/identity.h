/* identity.h: identity providers at run time: which provider a token is
 * for, and the provider's keys, loaded and kept fresh on the loop
 * (docs/identity.md).
 *
 * core/ calls this interface; it uses auth/ (pure: JWK Sets, JWS checks)
 * and identity/fetch.h (HTTPS on the loop), never core/. Providers are
 * owned by their apps (core/app.c parses them with idp_parse); this module
 * keeps each registered provider's runtime state:
 *
 *   keys        per provider, so a kid is only ever looked up among the keys
 *               of the provider the token's iss (and aud) selected, never
 *               across providers;
 *   freshness   a remote JWK Set is fetched when registered and again when
 *               its Cache-Control max-age runs out, clamped to
 *               [refreshMinSeconds, refreshMaxSeconds]; a jwksFile is read
 *               again on the same schedule;
 *   unknown kid a token whose kid is not in the set starts one refetch, at
 *               most one per refreshMinSeconds per provider, however many
 *               such tokens arrive (no amplification); the token itself is
 *               refused (40144), and the SDK's renewal brings it back;
 *   outages     a failed refresh keeps the cached keys until maxStaleSeconds
 *               after the last good fetch, retrying with backoff (from
 *               refreshMinSeconds, doubling, up to refreshMaxSeconds);
 *   verified    tokens that verified are remembered by the SHA-256 of their
 *               text (1024 slots) until they expire or their provider's
 *               keys change, so reconnecting with the same token costs no
 *               signature check.
 * Loop thread only. */
#ifndef SW_IDENTITY_IDENTITY_H
#define SW_IDENTITY_IDENTITY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "identity/provider.h"
#include "proto/errors.h"

typedef struct sw_identity sw_identity_t;

/* A module on loop; NULL when out of memory. */
sw_identity_t *identity_new(uv_loop_t *loop);

/* Registers an app's providers: refuses (40000) a provider that could
 * claim the same tokens as one already registered (same issuer, and an
 * audience in common or none on either side), and a jwksFile that cannot be
 * read as a JWK Set; then starts loading remote keys. All or nothing. */
int identity_add(sw_identity_t *id, sw_idp_t *const *idps, size_t n, sw_error_t *err);
/* Unregisters providers (their app was deleted): pending fetches are
 * cancelled and their keys freed. */
void identity_remove(sw_identity_t *id, sw_idp_t *const *idps, size_t n);
/* Any provider registered? (When none, no token is even looked at.) */
bool identity_any(const sw_identity_t *id);

/* A token verified for a provider. */
typedef struct sw_idp_token {
  const sw_idp_t *idp;
  json_t *claims;    /* owned: the verified claims */
  int64_t exp_ms, iat_ms;
} sw_idp_token_t;

/* Is kid (NUL-terminated) the keyName of an app key? Then the token is an
 * Ably JWT, not a provider's. */
typedef bool (*sw_identity_is_key_fn)(void *ud, const char *kid);

typedef struct sw_identity_verify_opts {
  int64_t now_ms;            /* 0: the wall clock */
  int64_t default_leeway_ms; /* the server's auth.clockSkewMs */
  size_t max_len;            /* longest token */
  sw_identity_is_key_fn is_key;
  void *is_key_ud;
  bool cache_miss;           /* benchmarks: the verified-token cache never
                                answers (the token is still hashed, looked
                                up and stored), so a repeated token costs
                                what a new one does */
} sw_identity_verify_opts_t;

/* Verifies tok if it is a provider's token. Returns:
 *   1  not a provider token (not a JWS, a kid that names an app key, an
 *      x-ably-token, no iss, or an iss no provider has while the token is
 *      HS256): the caller treats it as an Ably JWT;
 *   0  verified: *out filled (free with identity_token_clear);
 *  -1  refused, err set: 40144 (header, key, signature, claims; unknown kid),
 *      40142 expired, 40003 lifetime over the limit, 40140 the provider's
 *      keys are not available (not fetched yet, or stale after failures). */
int identity_verify(sw_identity_t *id, const char *tok, size_t n, const sw_identity_verify_opts_t *o,
                    sw_idp_token_t *out, sw_error_t *err);
void identity_token_clear(sw_idp_token_t *t);

/* Diagnostics for one provider (the CLI check): whether keys are loaded,
 * how many, how many fetches ran, and the last fetch error ("" if none). */
typedef struct sw_idp_status {
  bool has_keys;
  size_t n_keys;
  uint64_t fetches;
  bool fetching;
  char last_error[256];
} sw_idp_status_t;
void identity_status(const sw_idp_t *p, sw_idp_status_t *st);

/* The verified-token cache's counters since identity_new: lookups (one per
 * provider token verified) and hits (answered without a signature check). */
void identity_cache_stats(const sw_identity_t *id, uint64_t *lookups, uint64_t *hits);

/* Closes the loop handles (shutdown); identity_free after the loop ended. */
void identity_close(sw_identity_t *id);
void identity_free(sw_identity_t *id);

#endif
