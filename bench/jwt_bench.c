/* C side of bench/jwt.sh: Ably JWT verification throughput on one core.
 *
 *   jwt_bench TOKEN KEYNAME SECRET SECONDS
 *
 * TOKEN is minted by Node's jsonwebtoken (bench/jwt_bench.mjs mint), so the
 * same bytes are measured here and in Node. Prints "<case> <ops/s>" lines:
 *   full_server     what the server does per token (src/core/principal.c):
 *                   jwt_verify with the keyed-HMAC cache, then the effective
 *                   capability from the memo (auth/cap_cache.c), then a
 *                   capability check (the target)
 *   full_cached     jwt_verify with a keyed-HMAC cache, then cap_parse of the
 *                   token's capability and cap_intersect with the key's, with
 *                   no memo: the worst case of a capability never seen before
 *   full_uncached   the same with opts.cache = NULL (HMAC keyed per call)
 *   verify_cached   jwt_verify alone
 *   verify_jansson  jwt_verify alone with opts.jansson_only (no fast scanner)
 *   cap_only        cap_parse + cap_intersect of the token's capability text
 *                   alone (auth/capability.c), to show how full_cached splits
 *   libjwt_full     the library path: libjwt's jwt_decode (signature and
 *                   parsing) plus the same claim reads and capability work;
 *                   it skips the kid lookup, which favours it
 *   libjwt_decode   jwt_decode + jwt_free alone: the library's ceiling
 * and, for the two primitives jwt.c no longer leaves to OpenSSL's EVP
 * layer (docs/benchmarks.md says why), both ways on the same token:
 *   b64_ours        b64url_decode of the three segments (auth/b64url.c)
 *   b64_evp         the same through EVP_DecodeBlock on a translated,
 *                   padded copy, as b64url.c did before
 *   hmac_lowlevel   HMAC-SHA256 of header.claims from precomputed pad
 *                   states with SHA256_Update/Final (as auth/jwt.c does)
 *   hmac_evp_mac    the same with EVP_MAC re-initialised from a keyed
 *                   context (as auth/jwt.c did before)
 * Each case runs ROUNDS times (3, or the optional fifth argument) for
 * SECONDS and the best round is reported, which filters out time lost to
 * other processes on a shared machine (the Node side does the same).
 * bench/run.sh passes 1 and takes the median of separate runs instead. Exits 1 if any path does not accept the token. */
/* hmac_lowlevel measures the SHA256_* calls auth/jwt.c uses, which
 * OpenSSL 3 marks deprecated (see there). */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <jwt.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/b64url.h"
#include "auth/cap_cache.h"
#include "auth/capability.h"
#include "auth/jwt.h"

static const char KEY_CAP[] = "{\"chat:*\":[\"*\"],\"notifications\":[\"subscribe\"]}";

typedef struct bench {
  const char *token;
  size_t token_len;
  const char *key_name;
  const uint8_t *secret;
  size_t secret_len;
  sw_cap_t *key_cap;
  sw_jwt_cache_t *cache;
  sw_cap_cache_t *cap_cache;
  SHA256_CTX hmac_inner, hmac_outer; /* hmac_lowlevel: the key's pad states */
  EVP_MAC_CTX *mac;                  /* hmac_evp_mac: keyed once */
} bench_t;

/* What the server's registry lookup does, minus the hashing: compare the
 * kid with the key names it knows. */
static int lookup(void *ud, const char *kid, size_t kid_len, const uint8_t **secret, size_t *len) {
  const bench_t *b = ud;
  if (strlen(b->key_name) != kid_len || memcmp(b->key_name, kid, kid_len) != 0) return -1;
  *secret = b->secret;
  *len = b->secret_len;
  return 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Capability work shared by every "full" case. Returns 0 when the result
 * allows publishing on chat:a. */
static int cap_work(const bench_t *b, const char *cap, size_t len) {
  sw_error_t err;
  sw_cap_t *req = cap_parse(cap, len, &err);
  if (!req) return -1;
  sw_cap_t *eff = cap_intersect(req, b->key_cap, &err);
  cap_free(req);
  if (!eff) return -1;
  int ok = cap_allows(eff, "chat:a", SW_OP_PUBLISH) ? 0 : -1;
  cap_free(eff);
  return ok;
}

static int one_ours(const bench_t *b, bool full, sw_jwt_cache_t *cache, bool jansson_only) {
  sw_jwt_opts_t o = {0};
  o.cache = cache;
  o.jansson_only = jansson_only;
  sw_jwt_t j;
  sw_error_t err;
  if (jwt_verify(b->token, b->token_len, lookup, (void *)b, &o, &j, &err) != 0) {
    fprintf(stderr, "jwt_verify: %d %s\n", err.code, err.message);
    return -1;
  }
  int rc = 0;
  if (full) rc = j.capability ? cap_work(b, j.capability, strlen(j.capability)) : -1;
  jwt_clear(&j);
  return rc;
}

/* The server's path: the effective capability comes from the memo. */
static int one_server(const bench_t *b, sw_cap_cache_t *cc) {
  sw_jwt_opts_t o = {0};
  o.cache = b->cache;
  sw_jwt_t j;
  sw_error_t err;
  if (jwt_verify(b->token, b->token_len, lookup, (void *)b, &o, &j, &err) != 0) return -1;
  int rc = -1;
  sw_cap_t *eff = j.capability ? cap_cache_effective(cc, j.kid, b->key_cap, j.capability, &err) : NULL;
  if (eff) rc = cap_allows(eff, "chat:a", SW_OP_PUBLISH) ? 0 : -1;
  cap_free(eff);
  jwt_clear(&j);
  return rc;
}

static int one_libjwt(const bench_t *b, bool full) {
  jwt_t *j = NULL;
  if (jwt_decode(&j, b->token, b->secret, (int)b->secret_len) != 0) return -1;
  int rc = 0;
  if (full) {
    /* The claim reads an Ably server needs after the library has verified
     * the signature (the library checks no times itself). */
    long iat = jwt_get_grant_int(j, "iat"), exp = jwt_get_grant_int(j, "exp");
    time_t t = time(NULL);
    const char *cap = jwt_get_grant(j, "x-ably-capability");
    const char *cid = jwt_get_grant(j, "x-ably-clientId");
    if (exp <= (long)t || iat > (long)t || exp <= iat || !cap || !cid) rc = -1;
    else rc = cap_work(b, cap, strlen(cap));
  }
  jwt_free(j);
  return rc;
}

/* The token's three segments, for the base64url cases. */
static void segments(const bench_t *b, const char **seg, size_t *len) {
  const char *d1 = memchr(b->token, '.', b->token_len), *d2 = memchr(d1 + 1, '.', b->token_len - (size_t)(d1 + 1 - b->token));
  seg[0] = b->token, len[0] = (size_t)(d1 - b->token);
  seg[1] = d1 + 1, len[1] = (size_t)(d2 - d1 - 1);
  seg[2] = d2 + 1, len[2] = b->token_len - (size_t)(d2 + 1 - b->token);
}

/* EVP_DecodeBlock on a translated copy with '=' padding; the strictness
 * checks b64url_decode adds are left out, which only favours EVP. */
static long evp_decode(const char *in, size_t n, uint8_t *out) {
  unsigned char t[1024];
  size_t padded = (n + 3) / 4 * 4;
  if (padded > sizeof t) return -1;
  for (size_t i = 0; i < n; i++) t[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : (unsigned char)in[i];
  for (size_t i = n; i < padded; i++) t[i] = '=';
  return EVP_DecodeBlock(out, t, (int)padded);
}

static int one_b64(const bench_t *b, bool evp) {
  const char *seg[3];
  size_t len[3];
  uint8_t out[1024];
  segments(b, seg, len);
  for (int i = 0; i < 3; i++)
    if ((evp ? evp_decode(seg[i], len[i], out) : b64url_decode(seg[i], len[i], out, sizeof out)) < 0) return -1;
  return 0;
}

static int one_hmac(const bench_t *b, bool evp) {
  size_t signed_len = (size_t)((const char *)memrchr(b->token, '.', b->token_len) - b->token);
  uint8_t mac[32];
  if (evp) {
    size_t outl = 0;
    return EVP_MAC_init(b->mac, NULL, 0, NULL) && EVP_MAC_update(b->mac, (const unsigned char *)b->token, signed_len) &&
                   EVP_MAC_final(b->mac, mac, &outl, sizeof mac)
               ? 0
               : -1;
  }
  SHA256_CTX c = b->hmac_inner;
  SHA256_Update(&c, b->token, signed_len);
  SHA256_Final(mac, &c);
  c = b->hmac_outer;
  SHA256_Update(&c, mac, sizeof mac);
  SHA256_Final(mac, &c);
  return 0;
}

/* Keys both HMAC cases with the secret (at most one SHA-256 block here). */
static int hmac_setup(bench_t *b) {
  uint8_t pad[64] = {0};
  if (b->secret_len > sizeof pad) return -1;
  memcpy(pad, b->secret, b->secret_len);
  for (size_t i = 0; i < sizeof pad; i++) pad[i] ^= 0x36;
  SHA256_Init(&b->hmac_inner);
  SHA256_Update(&b->hmac_inner, pad, sizeof pad);
  for (size_t i = 0; i < sizeof pad; i++) pad[i] ^= 0x36 ^ 0x5c;
  SHA256_Init(&b->hmac_outer);
  SHA256_Update(&b->hmac_outer, pad, sizeof pad);
  EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
  b->mac = m ? EVP_MAC_CTX_new(m) : NULL;
  EVP_MAC_free(m); /* the context keeps its own reference */
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                         OSSL_PARAM_construct_end()};
  if (!b->mac || !EVP_MAC_init(b->mac, b->secret, b->secret_len, params)) return -1;
  /* Both must give the token's signature. */
  uint8_t m1[32], m2[32], sig[32];
  size_t outl = 0, signed_len = (size_t)((const char *)memrchr(b->token, '.', b->token_len) - b->token);
  SHA256_CTX c = b->hmac_inner;
  SHA256_Update(&c, b->token, signed_len);
  SHA256_Final(m1, &c);
  c = b->hmac_outer;
  SHA256_Update(&c, m1, 32);
  SHA256_Final(m1, &c);
  if (!EVP_MAC_update(b->mac, (const unsigned char *)b->token, signed_len) || !EVP_MAC_final(b->mac, m2, &outl, 32))
    return -1;
  const char *s = b->token + signed_len + 1;
  if (b64url_decode(s, b->token_len - signed_len - 1, sig, sizeof sig) != 32) return -1;
  return memcmp(m1, sig, 32) == 0 && memcmp(m2, sig, 32) == 0 ? 0 : -1;
}

#define ROUNDS 3

static const char CAP_TEXT[] = "{\"chat:*\":[\"publish\",\"subscribe\",\"presence\"]}";

enum {
  FULL_SERVER, FULL_CACHED, FULL_UNCACHED, VERIFY_CACHED, VERIFY_JANSSON, CAP_ONLY, LIBJWT_FULL, LIBJWT_DECODE,
  B64_OURS, B64_EVP, HMAC_LOWLEVEL, HMAC_EVP_MAC, NCASES
};
static const char *const case_names[NCASES] = {
    "full_server", "full_cached", "full_uncached", "verify_cached", "verify_jansson", "cap_only",
    "libjwt_full", "libjwt_decode", "b64_ours", "b64_evp", "hmac_lowlevel", "hmac_evp_mac"};

static int one(const bench_t *b, int c) {
  switch (c) {
  case FULL_SERVER: return one_server(b, b->cap_cache);
  case FULL_CACHED: return one_ours(b, true, b->cache, false);
  case FULL_UNCACHED: return one_ours(b, true, NULL, false);
  case VERIFY_CACHED: return one_ours(b, false, b->cache, false);
  case VERIFY_JANSSON: return one_ours(b, false, b->cache, true);
  case CAP_ONLY: return cap_work(b, CAP_TEXT, sizeof CAP_TEXT - 1);
  case LIBJWT_FULL: return one_libjwt(b, true);
  case LIBJWT_DECODE: return one_libjwt(b, false);
  case B64_OURS: return one_b64(b, false);
  case B64_EVP: return one_b64(b, true);
  case HMAC_LOWLEVEL: return one_hmac(b, false);
  default: return one_hmac(b, true);
  }
}

/* Runs case c for about seconds; returns operations per second, or -1. */
static double run(const bench_t *b, int c, double seconds) {
  unsigned long n = 0;
  double t0 = now_s(), t;
  do {
    for (int i = 0; i < 1024; i++)
      if (one(b, c) != 0) return -1;
    n += 1024;
    t = now_s();
  } while (t - t0 < seconds);
  return (double)n / (t - t0);
}

int main(int argc, char **argv) {
  if (argc != 5 && argc != 6) {
    fprintf(stderr, "usage: %s TOKEN KEYNAME SECRET SECONDS [ROUNDS]\n", argv[0]);
    return 2;
  }
  bench_t b = {0};
  b.token = argv[1];
  b.token_len = strlen(argv[1]);
  b.key_name = argv[2];
  b.secret = (const uint8_t *)argv[3];
  b.secret_len = strlen(argv[3]);
  double seconds = atof(argv[4]);
  int rounds = argc == 6 ? atoi(argv[5]) : ROUNDS;
  if (rounds < 1 || rounds > 100) rounds = ROUNDS;
  sw_error_t err;
  b.key_cap = cap_parse(KEY_CAP, strlen(KEY_CAP), &err);
  b.cache = jwt_cache_new();
  b.cap_cache = cap_cache_new(64);
  if (!b.key_cap || !b.cache || hmac_setup(&b) != 0) return 1;
  for (int c = 0; c < NCASES; c++) {
    if (one(&b, c) != 0) {
      fprintf(stderr, "%s does not accept the token\n", case_names[c]);
      return 1;
    }
  }
  for (int c = 0; c < NCASES; c++) {
    run(&b, c, seconds / 4); /* warm caches and the CPU clock */
    double r = 0;
    for (int k = 0; k < rounds; k++) {
      double rk = run(&b, c, seconds);
      if (rk < 0) return 1;
      if (rk > r) r = rk;
    }
    printf("%s %.0f\n", case_names[c], r);
    fflush(stdout);
  }
  jwt_cache_free(b.cache);
  cap_cache_free(b.cap_cache);
  cap_free(b.key_cap);
  EVP_MAC_CTX_free(b.mac);
  return 0;
}
