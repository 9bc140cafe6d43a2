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
 * Each case runs ROUNDS times for SECONDS and the best round is reported,
 * which filters out time lost to other processes on a shared machine (the
 * Node side does the same). Exits 1 if any path does not accept the token. */
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

#define ROUNDS 3

static const char CAP_TEXT[] = "{\"chat:*\":[\"publish\",\"subscribe\",\"presence\"]}";

enum { FULL_SERVER, FULL_CACHED, FULL_UNCACHED, VERIFY_CACHED, VERIFY_JANSSON, CAP_ONLY, LIBJWT_FULL, LIBJWT_DECODE, NCASES };
static const char *const case_names[NCASES] = {"full_server", "full_cached", "full_uncached", "verify_cached", "verify_jansson",
                                               "cap_only",    "libjwt_full",   "libjwt_decode"};

static int one(const bench_t *b, int c) {
  switch (c) {
  case FULL_SERVER: return one_server(b, b->cap_cache);
  case FULL_CACHED: return one_ours(b, true, b->cache, false);
  case FULL_UNCACHED: return one_ours(b, true, NULL, false);
  case VERIFY_CACHED: return one_ours(b, false, b->cache, false);
  case VERIFY_JANSSON: return one_ours(b, false, b->cache, true);
  case CAP_ONLY: return cap_work(b, CAP_TEXT, sizeof CAP_TEXT - 1);
  case LIBJWT_FULL: return one_libjwt(b, true);
  default: return one_libjwt(b, false);
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
  if (argc != 5) {
    fprintf(stderr, "usage: %s TOKEN KEYNAME SECRET SECONDS\n", argv[0]);
    return 2;
  }
  bench_t b = {argv[1], strlen(argv[1]), argv[2], (const uint8_t *)argv[3], strlen(argv[3]), NULL, NULL, NULL};
  double seconds = atof(argv[4]);
  sw_error_t err;
  b.key_cap = cap_parse(KEY_CAP, strlen(KEY_CAP), &err);
  b.cache = jwt_cache_new();
  b.cap_cache = cap_cache_new(64);
  if (!b.key_cap || !b.cache) return 1;
  for (int c = 0; c < NCASES; c++) {
    if (one(&b, c) != 0) {
      fprintf(stderr, "%s does not accept the token\n", case_names[c]);
      return 1;
    }
  }
  for (int c = 0; c < NCASES; c++) {
    run(&b, c, seconds / 4); /* warm caches and the CPU clock */
    double r = 0;
    for (int k = 0; k < ROUNDS; k++) {
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
  return 0;
}
