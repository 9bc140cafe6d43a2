/* libFuzzer target for auth/jwk: JWK Set parsing (untrusted bytes from a
 * provider's JWKS endpoint or a jwksFile).
 *
 * Input: the JWK Set text. Checks, aborting on any violation:
 *   - a refusal is 40000 (or 50000) with status 400 (500);
 *   - an accepted set has 1..SW_JWKS_MAX_KEYS keys, each with an OpenSSL key
 *     of the family it claims, a NUL-terminated kid, and an alg (if any)
 *     that fits the family; skipped + kept is the number of entries;
 *   - no key ever fits an HMAC algorithm (a JWK Set cannot key HMAC);
 *   - verifying a fixed signature with every key neither crashes nor passes. */
#include <openssl/evp.h>
#include <stdint.h>
#include <string.h>

#include "auth/jwk.h"
#include "auth/jws.h"

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sw_error_t err = {0};
  sw_jwks_t *s = jwks_parse((const char *)data, size, 0, &err);
  if (!s) {
    CHECK(err.code == 40000 || err.code == 50000);
    CHECK(err.status == (err.code == 50000 ? 500 : 400));
    return 0;
  }
  CHECK(s->n >= 1 && s->n <= SW_JWKS_MAX_KEYS);
  static const uint8_t msg[] = "e30.e30";
  uint8_t sig[512] = {0};
  for (size_t i = 0; i < s->n; i++) {
    const sw_jwk_t *k = &s->keys[i];
    CHECK(k->pkey != NULL);
    CHECK(memchr(k->kid, '\0', sizeof k->kid) != NULL);
    CHECK(k->has_kid == (k->kid[0] != '\0'));
    CHECK(k->family >= SW_JWK_RSA && k->family <= SW_JWK_ED25519);
    CHECK(k->alg < 0 || jws_alg_family(k->alg) == k->family);
    const char *type = k->family == SW_JWK_RSA ? "RSA" : k->family == SW_JWK_ED25519 ? "ED25519" : "EC";
    CHECK(EVP_PKEY_is_a(k->pkey, type));
    for (int a = 0; a < SW_JWS_ALG_COUNT; a++) {
      if (SW_JWS_ALG_BIT(a) & SW_JWS_HMAC_ALGS) CHECK(!jwk_fits(k, a));
      if (!jwk_fits(k, a)) continue;
      size_t slen = k->family == SW_JWK_RSA ? (size_t)EVP_PKEY_get_size(k->pkey) : 64;
      if (slen > sizeof sig) slen = sizeof sig;
      CHECK(!jws_sig_ok(a, k->pkey, msg, sizeof msg - 1, sig, slen));
    }
  }
  jwks_free(s);
  return 0;
}
