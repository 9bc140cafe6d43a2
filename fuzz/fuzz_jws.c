/* libFuzzer target for auth/jws: provider JWTs (decode, header rules, key
 * selection, signature, claims).
 *
 * Input: one mode byte, then the data.
 *   mode even: the data is a token, verified against a fixed JWK Set
 *              (RS256, ES256 and Ed25519 keys) and the HMAC secret;
 *   mode odd:  the data is "<header JSON>\n<claims JSON>", signed here with
 *              the fuzzer's HS256 secret so the claim checks get fuzzed.
 * Also, for the data itself and (odd mode) each of the two texts: the fast
 * JSON parser of auth/jws_json.c gives exactly what json_loadb with
 * JSON_REJECT_DUPLICATES gives (same members, same order), or leaves the
 * text to it.
 * Checks, aborting on any violation:
 *   - refusals are 40144/40142 (401), 40003 (400) or 50000;
 *   - an accepted token has alg in the allow-list, no jku/x5u/x5c/jwk/crit,
 *     iss exactly the issuer, an aud naming the audience, and an exp after
 *     now - leeway; unknown_kid is only set on a refusal;
 *   - an even-mode token is never accepted (no valid signature is known). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "auth/b64url.h"
#include "auth/jws.h"
#include "auth/jws_json.h"

#include "check.h"

#define NOW 1700000000000LL
#define ISS "https://idp.example.com"

/* Public keys made once with OpenSSL for this target. */
static const char JWKS[] =
    "{\"keys\":["
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"ec\",\"x\":\"tU3CLfZaX5GNZ9J00xdzgyayedEVSzlhtYVI3AHiGBs\","
    "\"y\":\"HBjPNwIoOoe0OgUG5u3iL4khbFRxcwbfopQ6ppwPyQQ\"},"
    "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ed\",\"x\":\"cgLvfNUYzyynE0-tO0B9Ienqqg7qGvsSNkOThD0cIWk\"},"
    "{\"kty\":\"RSA\",\"kid\":\"rsa\",\"alg\":\"RS256\",\"e\":\"AQAB\",\"n\":"
    "\"sZlyAPiAUadLMKLT9Y3HloDNYTS6Zkf5-tSLY4ZwohUOmqA1sz5eX740VQmI6PFbt57ffN8cE9pcl7S4i2JK7EUacXbckTv_GF2sZ9UC7CfeBj1NwGte30JZ"
    "rWKXl1uxtV89JcYoX4Dig2qIWKTpVFRwCLydNWqheu7lM52cWcSNgOtnPUcKxIZ7hOy49XIGTt0B7_fmU6C-8ZT68rxiXgNVhryztdopfumb3NPb9uLVc1gdmu6n"
    "Jx44P0TURJy8OnYG0rqWl7bI8DOCddKXnLE-xyAQJj5P5-EEQnW2DJwcz_-xWvdELv1D7oT6-TqSqHa3jqheci3MJi5ri0vzFQ\"}"
    "]}";

static const uint8_t SECRET[] = "fuzz-shared-secret-of-32-bytes!!";
static const char *const AUDS[] = {"my-app"};

static sw_jwks_t *keys(void) {
  static sw_jwks_t *k;
  if (!k) {
    sw_error_t err;
    k = jwks_parse(JWKS, sizeof JWKS - 1, 0, &err);
    CHECK(k != NULL && k->n == 3);
  }
  return k;
}

/* "b64(header).b64(claims).b64(HMAC)" of the two texts; NULL if too long. */
static char *sign(const char *h, size_t hn, const char *c, size_t cn) {
  size_t cap = b64url_encoded_len(hn) + b64url_encoded_len(cn) + 96;
  char *t = malloc(cap);
  CHECK(t != NULL);
  long a = b64url_encode((const uint8_t *)h, hn, t, cap);
  t[a] = '.';
  long b = b64url_encode((const uint8_t *)c, cn, t + a + 1, cap - (size_t)a - 1);
  size_t len = (size_t)(a + 1 + b);
  uint8_t mac[32];
  size_t maclen = 0;
  CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, SECRET, sizeof SECRET - 1, (uint8_t *)t, len, mac, sizeof mac,
                  &maclen));
  t[len] = '.';
  b64url_encode(mac, maclen, t + len + 1, cap - len - 1);
  return t;
}

static bool aud_ok(const json_t *aud) {
  if (json_is_string(aud)) return strcmp(json_string_value(aud), "my-app") == 0;
  size_t i;
  const json_t *v;
  json_array_foreach(aud, i, v) if (json_is_string(v) && strcmp(json_string_value(v), "my-app") == 0) return true;
  return false;
}

/* jws_json against jansson on text p (n bytes). */
static void json_differential(const char *p, size_t n) {
  json_t *ref = json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL);
  if (ref && !json_is_object(ref)) {
    json_decref(ref);
    ref = NULL;
  }
  json_t *fast = NULL, *got = jws_json_object(p, n);
  if (jws_json_fast(p, n, &fast) == 0) {
    CHECK(ref && json_equal(fast, ref));
  } else {
    CHECK(fast == NULL);
  }
  CHECK(!got == !ref);
  if (ref) {
    CHECK(json_equal(got, ref));
    char *a = json_dumps(got, JSON_COMPACT), *b = json_dumps(ref, JSON_COMPACT);
    CHECK(a && b && strcmp(a, b) == 0);
    free(a);
    free(b);
  }
  json_decref(ref);
  json_decref(got);
  json_decref(fast);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 16384) return 0;
  bool signed_here = data[0] & 1;
  const char *p = (const char *)data + 1;
  size_t n = size - 1;
  char *tok;
  json_differential(p, n);
  if (signed_here) {
    const char *nl = memchr(p, '\n', n);
    if (!nl) return 0;
    json_differential(p, (size_t)(nl - p));
    json_differential(nl + 1, n - (size_t)(nl + 1 - p));
    tok = sign(p, (size_t)(nl - p), nl + 1, n - (size_t)(nl + 1 - p));
  } else {
    tok = malloc(n + 1);
    CHECK(tok != NULL);
    memcpy(tok, p, n);
    tok[n] = '\0';
  }
  sw_jws_policy_t pol = {.issuer = ISS,
                         .audiences = AUDS,
                         .n_audiences = 1,
                         .algs = SW_JWS_ALG_BIT(SW_JWS_RS256) | SW_JWS_ALG_BIT(SW_JWS_ES256) |
                                 SW_JWS_ALG_BIT(SW_JWS_EDDSA) | SW_JWS_ALG_BIT(SW_JWS_HS256),
                         .hmac_secret = SECRET,
                         .hmac_secret_len = sizeof SECRET - 1,
                         .now_ms = NOW,
                         .leeway_ms = 30000};
  sw_jws_t j;
  sw_error_t err = {0};
  sw_jws_result_t res = {0};
  int rc = jws_decode(tok, strlen(tok), 0, &j, &err);
  if (rc == 0) rc = jws_verify(&j, tok, &pol, keys(), &res, &err);
  if (rc) {
    CHECK(err.code == 40144 || err.code == 40142 || err.code == 40003 || err.code == 50000);
    CHECK(err.status == (err.code == 40003 ? 400 : err.code == 50000 ? 500 : 401));
  } else {
    CHECK(signed_here);
    CHECK(j.alg >= 0 && (pol.algs & SW_JWS_ALG_BIT(j.alg)));
    static const char *const refused[] = {"jku", "x5u", "x5c", "jwk", "crit"};
    for (size_t i = 0; i < 5; i++) CHECK(!json_object_get(j.header, refused[i]));
    CHECK(j.iss && strcmp(j.iss, ISS) == 0 && strlen(ISS) == json_string_length(json_object_get(j.claims, "iss")));
    CHECK(aud_ok(json_object_get(j.claims, "aud")));
    CHECK(res.exp_ms > NOW - 30000 && !res.unknown_kid);
  }
  jws_clear(&j);
  free(tok);
  return 0;
}
