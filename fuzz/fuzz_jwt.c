/* libFuzzer target for auth/jwt and auth/b64url.
 *
 * The first input byte picks what the rest is:
 *   even: a token, verified as it is (mostly refused at the signature);
 *   odd:  header JSON, a 0xFF byte, claims JSON: encoded and correctly
 *         signed with the fixed key "fz.k1", so the claim checks and both
 *         JSON readers see arbitrary text behind a valid signature.
 * Checks, aborting on any violation:
 *   - the fast scanner and jansson agree: jwt_verify with and without
 *     opts.jansson_only gives the same result, code, message and claims;
 *   - the keyed-HMAC cache changes nothing (with and without opts.cache);
 *   - only the documented codes come out, err and out are consistent, and
 *     no message contains a key secret (except a 40400 echoing the kid);
 *   - an accepted token passes jwt_looks_like and has exp > iat, a kid
 *     known to the lookup (or an embedded token and no other claims);
 *   - base64url decoding of the raw input either fails or re-encodes to
 *     exactly the input. */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/b64url.h"
#include "auth/jwt.h"

#define CHECK(cond)                                                         \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                              \
    }                                                                       \
  } while (0)

#define SECRET1 "fuzz-secret-k1-0123456789"
#define SECRET2 "fuzz-secret-k2-abcdefghij"
/* Fixed time inside typical seeds' [iat, exp] (2026-11-22). */
#define NOW_MS 1795348320000LL

static int lookup(void *ud, const char *kid, size_t kid_len, const uint8_t **secret, size_t *len) {
  (void)ud;
  CHECK(strlen(kid) == kid_len);
  const char *s = strcmp(kid, "fz.k1") == 0 ? SECRET1 : strcmp(kid, "fz.k2") == 0 ? SECRET2 : NULL;
  if (!s) return -1;
  *secret = (const uint8_t *)s;
  *len = strlen(s);
  return 0;
}

static bool str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

static bool zeroed(const sw_jwt_t *j) {
  static const sw_jwt_t zero;
  return memcmp(j, &zero, sizeof zero) == 0;
}

static void check_one(const char *tok, size_t n, int rc, const sw_jwt_t *j, const sw_error_t *e) {
  if (rc == 0) {
    CHECK(e->code == 0);
    CHECK(jwt_looks_like(tok, n));
    if (j->embedded_token) {
      CHECK(j->embedded_token[0] != '\0');
      CHECK(j->kid[0] == '\0' && !j->capability && !j->client_id && !j->revocation_key && !j->client_type &&
            !j->channel_claims);
      CHECK(j->exp_ms > NOW_MS);
    } else {
      CHECK(strcmp(j->kid, "fz.k1") == 0 || strcmp(j->kid, "fz.k2") == 0);
      CHECK(j->exp_ms > j->iat_ms && j->exp_ms > NOW_MS && j->iat_ms <= NOW_MS);
      CHECK(j->exp_ms - j->iat_ms <= SW_JWT_DEFAULT_MAX_TTL_MS);
      CHECK(!j->capability || j->capability[0]);
      CHECK(!j->client_id || j->client_id[0]);
      CHECK(!j->channel_claims || json_is_object(j->channel_claims));
    }
  } else {
    CHECK(rc == -1);
    CHECK(zeroed(j));
    CHECK(e->code == 40144 || e->code == 40142 || e->code == 40400 || e->code == 40003);
    CHECK(e->status == (e->code == 40400 ? 404 : e->code == 40003 ? 400 : 401));
    /* 40400 echoes the kid, which is the caller's own text and may spell
     * anything, a secret included; no other message quotes input. */
    if (e->code != 40400) CHECK(!strstr(e->message, SECRET1) && !strstr(e->message, SECRET2));
  }
}

static void same(int rc1, const sw_jwt_t *a, const sw_error_t *ea, int rc2, const sw_jwt_t *b,
                 const sw_error_t *eb) {
  CHECK(rc1 == rc2);
  CHECK(ea->code == eb->code);
  if (ea->code) CHECK(strcmp(ea->message, eb->message) == 0);
  CHECK(strcmp(a->kid, b->kid) == 0);
  CHECK(a->iat_ms == b->iat_ms && a->exp_ms == b->exp_ms);
  CHECK(str_eq(a->capability, b->capability));
  CHECK(str_eq(a->client_id, b->client_id));
  CHECK(str_eq(a->revocation_key, b->revocation_key));
  CHECK(str_eq(a->client_type, b->client_type));
  CHECK(str_eq(a->embedded_token, b->embedded_token));
  CHECK((!a->channel_claims && !b->channel_claims) ||
        (a->channel_claims && b->channel_claims && json_equal(a->channel_claims, b->channel_claims)));
}

static void verify_all_ways(const char *tok, size_t n) {
  sw_jwt_cache_t *cache = jwt_cache_new();
  CHECK(cache != NULL);
  sw_jwt_opts_t fast = {.now_ms = NOW_MS, .leeway_ms = 0};
  sw_jwt_opts_t ref = fast;
  ref.jansson_only = true;
  sw_jwt_opts_t cached = fast;
  cached.cache = cache;
  sw_jwt_t a, b, c;
  sw_error_t ea = {0}, eb = {0}, ec = {0};
  int ra = jwt_verify(tok, n, lookup, NULL, &fast, &a, &ea);
  int rb = jwt_verify(tok, n, lookup, NULL, &ref, &b, &eb);
  check_one(tok, n, ra, &a, &ea);
  same(ra, &a, &ea, rb, &b, &eb);
  /* Twice through the cache: a miss that keys a slot, then a hit. */
  for (int k = 0; k < 2; k++) {
    int rcc = jwt_verify(tok, n, lookup, NULL, &cached, &c, &ec);
    same(ra, &a, &ea, rcc, &c, &ec);
    jwt_clear(&c);
  }
  jwt_clear(&a);
  jwt_clear(&b);
  jwt_cache_free(cache);
}

/* header.claims.signature over the two JSON texts with SECRET1. */
static char *sign(const uint8_t *h, size_t hn, const uint8_t *c, size_t cn) {
  size_t hl = b64url_encoded_len(hn), cl = b64url_encoded_len(cn);
  char *tok = malloc(hl + cl + 64);
  CHECK(tok != NULL);
  CHECK(b64url_encode(h, hn, tok, hl + 1) == (long)hl);
  tok[hl] = '.';
  CHECK(b64url_encode(c, cn, tok + hl + 1, cl + 1) == (long)cl);
  size_t signed_len = hl + 1 + cl;
  unsigned char mac[32];
  unsigned int ml = 0;
  CHECK(HMAC(EVP_sha256(), SECRET1, (int)strlen(SECRET1), (unsigned char *)tok, signed_len, mac, &ml));
  tok[signed_len] = '.';
  CHECK(b64url_encode(mac, ml, tok + signed_len + 1, 44) == 43);
  return tok;
}

static void b64_roundtrip(const uint8_t *data, size_t size) {
  size_t cap = b64url_decoded_len(size) + 1;
  uint8_t *dec = malloc(cap);
  CHECK(dec != NULL);
  long n = b64url_decode((const char *)data, size, dec, cap);
  if (n >= 0) {
    CHECK((size_t)n == b64url_decoded_len(size));
    char *enc = malloc(size + 1);
    CHECK(enc != NULL);
    CHECK(b64url_encode(dec, (size_t)n, enc, size + 1) == (long)size);
    CHECK(memcmp(enc, data, size) == 0);
    free(enc);
  }
  free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 16384) return 0;
  uint8_t mode = data[0];
  data++;
  size--;
  b64_roundtrip(data, size);
  if ((mode & 1) == 0) {
    verify_all_ways((const char *)data, size);
    return 0;
  }
  const uint8_t *sep = memchr(data, 0xFF, size);
  if (!sep) return 0;
  size_t hn = (size_t)(sep - data), cn = size - hn - 1;
  char *tok = sign(data, hn, sep + 1, cn);
  verify_all_ways(tok, strlen(tok));
  free(tok);
  return 0;
}
