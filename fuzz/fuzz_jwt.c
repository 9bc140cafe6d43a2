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
 *   - the keyed-HMAC cache changes nothing (with and without opts.cache),
 *     nor does its header memo: the token is also verified through a cache
 *     primed with a valid token that has the same header text;
 *   - only the documented codes come out, err and out are consistent, and
 *     no message contains a key secret (except a 40400 echoing the kid);
 *   - an accepted token passes jwt_looks_like and has exp > iat, a kid
 *     known to the lookup (or an embedded token and no other claims);
 *   - base64url decoding of the raw input either fails or re-encodes to
 *     exactly the input, and agrees with OpenSSL's EVP_DecodeBlock on a
 *     translated copy (b64url.c decodes with a loop of its own). */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/b64url.h"
#include "auth/jwt.h"

#include "check.h"

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

static char *sign(const uint8_t *h, size_t hn, const uint8_t *c, size_t cn);

/* Claims valid at NOW_MS. */
static const char VALID_CLAIMS[] = "{\"iat\":1795348260,\"exp\":1795351860}";

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
  /* A fresh cache primed with a valid token carrying this header text
   * (when it decodes): if the header is fine it is now remembered, and the
   * answer must not change. */
  const char *dot = memchr(tok, '.', n);
  uint8_t hdr[1024];
  long hn = dot && (size_t)(dot - tok) <= 1300 ? b64url_decode(tok, (size_t)(dot - tok), hdr, sizeof hdr) : -1;
  if (hn >= 0) {
    sw_jwt_cache_t *primed = jwt_cache_new();
    CHECK(primed != NULL);
    cached.cache = primed;
    char *primer = sign(hdr, (size_t)hn, (const uint8_t *)VALID_CLAIMS, sizeof VALID_CLAIMS - 1);
    CHECK(memcmp(primer, tok, (size_t)(dot - tok) + 1) == 0);
    sw_error_t ep = {0}, ed = {0};
    jwt_verify(primer, strlen(primer), lookup, NULL, &cached, &c, &ep);
    jwt_clear(&c);
    free(primer);
    int rcd = jwt_verify(tok, n, lookup, NULL, &cached, &c, &ed);
    same(ra, &a, &ea, rcd, &c, &ed);
    jwt_clear(&c);
    jwt_cache_free(primed);
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

/* base64url decoding as b64url.c did before its own loop: OpenSSL's base64
 * on a translated, padded copy, plus the strictness rules. Returns the
 * length or -1; out holds b64url_decoded_len(n) + 3 bytes. */
static long ref_decode(const uint8_t *in, size_t n, uint8_t *out) {
  if (n % 4 == 1) return -1;
  size_t padded = (n + 3) / 4 * 4;
  unsigned char *t = malloc(padded + 1);
  CHECK(t != NULL);
  long len = (long)b64url_decoded_len(n);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = in[i];
    if (ch == '+' || ch == '/' || ch == '=' || ch <= ' ' || ch >= 0x7f) len = -1;
    t[i] = ch == '-' ? '+' : ch == '_' ? '/' : ch;
  }
  for (size_t i = n; i < padded; i++) t[i] = '=';
  if (len >= 0 && n && EVP_DecodeBlock(out, t, (int)padded) != (int)(padded / 4 * 3)) len = -1;
  free(t);
  if (len > 0 && n % 4) {
    /* Canonical: the unused low bits of the last character are zero. */
    char back[4];
    CHECK(b64url_encode(out + len - (n % 4 - 1), n % 4 - 1, back, sizeof back) == (long)(n % 4));
    if (memcmp(back, in + n - n % 4, n % 4) != 0) len = -1;
  }
  return len;
}

static void b64_roundtrip(const uint8_t *data, size_t size) {
  size_t cap = b64url_decoded_len(size) + 1;
  uint8_t *dec = malloc(cap), *ref = malloc(cap + 3);
  CHECK(dec != NULL && ref != NULL);
  long n = b64url_decode((const char *)data, size, dec, cap);
  long rn = ref_decode(data, size, ref);
  CHECK(n == rn);
  if (n > 0) CHECK(memcmp(dec, ref, (size_t)n) == 0);
  free(ref);
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
