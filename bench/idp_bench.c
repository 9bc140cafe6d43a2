/* idp_bench.c: identity-provider token verification per second on one core
 * (docs/benchmarks.md, "Identity provider tokens"), for RS256 (2048-bit),
 * ES256 and EdDSA (Ed25519):
 *
 *   sig       the signature check alone as the server does it
 *             (jws_sig_ok_jwk: SHA-2 of the signing input, then
 *             EVP_PKEY_verify on the key's kept context; EdDSA:
 *             EVP_DigestVerify on the key's kept, re-initialised context),
 *             to hold against `openssl speed`'s verify;
 *   sig_fresh the same with a verify context set up per call (jws_sig_ok:
 *             EVP_DigestVerifyInit + EVP_DigestVerify), what a naive
 *             OpenSSL 3 caller does;
 *   jws       decode + header/key/signature/claims checks (auth/jws.c);
 *   identity  the whole provider path of identity_verify (routing, cache
 *             lookup, issuer selection, keys, checks, cache store) for a
 *             token the cache does not hold: what a new token costs;
 *   cached    the same token again with the cache on: a hash, no signature;
 *   stormN    (with --storm N[,N...]) N tokens of N users, each verified
 *             once to fill the cache, then all again in turn, as when N
 *             clients reconnect at once: how many the cache answers (hits=)
 *             and at what rate.
 *
 * Rates are per second of this thread's CPU time, as `openssl speed` counts
 * them (it divides by user CPU time unless given -elapsed), so that other
 * processes on a shared machine do not show up as a slower verification.
 * Each line also says which share of the wall-clock time the thread had
 * the CPU (1.00: nothing else wanted it).
 *
 * Usage: bench_idp [--seconds S | --count N] [--alg ALG] [--stage STAGE] [--tokens FILE]
 *                  [--storm N[,N...]]
 *   S: CPU seconds per measurement (default 1); N: exactly N operations
 *   each instead (for callgrind's instruction counts); --alg and --stage
 *   pick one (e.g. to run one stage under perf); --tokens writes the tokens, their
 *   JWK Sets, issuer and audience as JSON, for bench/idp_jose.mjs to verify
 *   the very same tokens.
 * Prints one line per measurement: "<alg> <stage> <ops/s> cpu=<share>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/jws.h"
#include "identity/identity.h"
#include "jose_helpers.h"
#include "util/clock.h"

#define ISSUER "https://idp.bench"
#define AUDIENCE "bench"

static double clock_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct ctx {
  int alg;
  EVP_PKEY *key;
  sw_jwks_t *keys;
  sw_identity_t *id;
  char *tok;
  sw_jws_t decoded; /* tok, decoded once for op_sig */
  sw_jws_policy_t pol;
  char **storm; /* --storm: one token per user */
  size_t storm_n, storm_i;
} ctx_t;

typedef bool (*op_fn)(ctx_t *c);

static bool op_sig(ctx_t *c) {
  const sw_jws_t *j = &c->decoded;
  return jws_sig_ok_jwk(c->alg, &c->keys->keys[0], (const uint8_t *)c->tok, j->signed_len, j->sig, j->sig_len);
}

static bool op_sig_fresh(ctx_t *c) {
  const sw_jws_t *j = &c->decoded;
  return jws_sig_ok(c->alg, c->keys->keys[0].pkey, (const uint8_t *)c->tok, j->signed_len, j->sig, j->sig_len);
}

static bool op_jws(ctx_t *c) {
  sw_jws_t j;
  sw_error_t err;
  sw_jws_result_t res;
  bool ok = jws_decode(c->tok, strlen(c->tok), 0, &j, &err) == 0 && jws_verify(&j, c->tok, &c->pol, c->keys, &res, &err) == 0;
  jws_clear(&j);
  return ok;
}

static bool op_identity(ctx_t *c, bool miss) {
  sw_identity_verify_opts_t o = {.default_leeway_ms = 30000, .cache_miss = miss};
  sw_idp_token_t t;
  sw_error_t err;
  bool ok = identity_verify(c->id, c->tok, strlen(c->tok), &o, &t, &err) == 0;
  identity_token_clear(&t);
  return ok;
}
static bool op_identity_miss(ctx_t *c) { return op_identity(c, true); }
static bool op_identity_cached(ctx_t *c) { return op_identity(c, false); }

static bool op_storm(ctx_t *c) {
  const char *tok = c->storm[c->storm_i++ % c->storm_n];
  sw_identity_verify_opts_t o = {.default_leeway_ms = 30000};
  sw_idp_token_t t;
  sw_error_t err;
  bool ok = identity_verify(c->id, tok, strlen(tok), &o, &t, &err) == 0;
  identity_token_clear(&t);
  return ok;
}

/* A Clerk-sized token of user i: the registered claims and a few custom ones. */
static char *user_token(const ctx_t *c, long i, int64_t now) {
  char sub[64], sid[64];
  snprintf(sub, sizeof sub, "user_2abcdefghijklmnopq%06ld", i);
  snprintf(sid, sizeof sid, "sess_2abcdefghijklmnopq%06ld", i);
  json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s}", "iss", ISSUER, "aud", AUDIENCE, "sub",
                             sub, "iat", (json_int_t)now, "nbf", (json_int_t)now, "exp", (json_int_t)now + 3600, "sid",
                             sid, "azp", "https://chat.example.com", "org_id", "org_2abcdefghijklmnopqrstuvwx");
  char *tok = th_sign(json_pack("{s:s, s:s}", "kid", "k1", "typ", "JWT"), claims, c->alg, c->key);
  json_decref(claims);
  return tok;
}

/* Runs op for `seconds` of this thread's CPU time; returns ops per CPU
 * second and the thread's share of the wall-clock time in *share. */
static double run(ctx_t *c, op_fn op, double seconds, long count, double *share) {
  if (!op(c)) {
    fprintf(stderr, "bench_idp: %s: verification failed\n", jws_alg_name(c->alg));
    exit(1);
  }
  long n = 0;
  double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID), cpu;
  int batch = count && count < 64 ? (int)count : 64;
  do {
    for (int i = 0; i < batch; i++) op(c);
    n += batch;
    cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
  } while (count ? n < count : cpu < seconds);
  *share = cpu / (clock_s(CLOCK_MONOTONIC) - w0);
  return (double)n / cpu;
}

/* One algorithm's entry of the --tokens file. */
static void export_token(json_t *out, const ctx_t *c, json_t *set) {
  json_object_set_new(out, jws_alg_name(c->alg),
                      json_pack("{s:s, s:O, s:s, s:s}", "token", c->tok, "jwks", set, "issuer", ISSUER, "audience",
                                AUDIENCE));
}

int main(int argc, char **argv) {
  double seconds = 1.0;
  long count = 0;
  const char *storm = NULL;
  const char *only_alg = NULL, *only_stage = NULL, *tokens_file = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = atof(argv[++i]);
    else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) count = atol(argv[++i]);
    else if (strcmp(argv[i], "--alg") == 0 && i + 1 < argc) only_alg = argv[++i];
    else if (strcmp(argv[i], "--stage") == 0 && i + 1 < argc) only_stage = argv[++i];
    else if (strcmp(argv[i], "--tokens") == 0 && i + 1 < argc) tokens_file = argv[++i];
    else if (strcmp(argv[i], "--storm") == 0 && i + 1 < argc) storm = argv[++i];
    else {
      fprintf(stderr, "usage: bench_idp [--seconds S | --count N] [--alg RS256|ES256|EdDSA] [--stage STAGE] [--tokens FILE] [--storm N[,N...]]\n");
      return 2;
    }
  }
  static const int algs[] = {SW_JWS_RS256, SW_JWS_ES256, SW_JWS_EDDSA};
  static const struct {
    const char *name;
    op_fn op;
  } stages[] = {{"sig", op_sig}, {"sig_fresh", op_sig_fresh}, {"jws", op_jws},
                {"identity", op_identity_miss}, {"cached", op_identity_cached}};
  json_t *exported = json_object();
  uv_loop_t loop;
  uv_loop_init(&loop);
  for (size_t a = 0; a < sizeof algs / sizeof *algs; a++) {
    if (only_alg && strcmp(only_alg, jws_alg_name(algs[a])) != 0) continue;
    ctx_t c = {.alg = algs[a]};
    c.key = th_keygen(c.alg);
    json_t *set = json_pack("{s:[o]}", "keys", th_jwk(c.key, c.alg, "k1"));
    json_t *cfg = json_pack("{s:s, s:s, s:O, s:[s], s:s, s:s, s:{s:[s]}}", "id", "p", "issuer", ISSUER,
                            "jwks", set, "algorithms", jws_alg_name(c.alg), "audience", AUDIENCE, "clientId", "{sub}",
                            "capability", "c:{sub}", "subscribe");
    sw_error_t err = {0};
    sw_idp_t *p = idp_parse(cfg, "bench", false, &err);
    char *text = json_dumps(set, 0);
    c.keys = jwks_parse(text, strlen(text), 0, &err);
    free(text);
    if (!p || !c.keys) {
      fprintf(stderr, "bench_idp: %s\n", err.message);
      return 1;
    }
    c.id = identity_new(&loop);
    if (identity_add(c.id, &p, 1, &err)) {
      fprintf(stderr, "bench_idp: %s\n", err.message);
      return 1;
    }
    int64_t now = clock_now_ms() / 1000;
    c.tok = user_token(&c, 0, now);
    if (jws_decode(c.tok, strlen(c.tok), 0, &c.decoded, &err)) return 1;
    static const char *const auds[] = {AUDIENCE};
    c.pol = (sw_jws_policy_t){.issuer = ISSUER, .audiences = auds, .n_audiences = 1,
                              .algs = SW_JWS_ALG_BIT(c.alg), .leeway_ms = 30000};
    const char *name = jws_alg_name(c.alg);
    export_token(exported, &c, set);
    for (size_t s = 0; s < sizeof stages / sizeof *stages; s++) {
      if (only_stage && strcmp(only_stage, stages[s].name) != 0) continue;
      double share, rate = run(&c, stages[s].op, seconds, count, &share);
      printf("%s %s %.0f cpu=%.2f\n", name, stages[s].name, rate, share);
      fflush(stdout);
    }
    for (const char *sp = storm; sp && *sp && (!only_stage || strcmp(only_stage, "storm") == 0);) {
      char *end;
      long n = strtol(sp, &end, 10);
      sp = *end == ',' ? end + 1 : "";
      if (n <= 0) continue;
      c.storm_n = (size_t)n;
      c.storm_i = 0;
      c.storm = calloc(c.storm_n, sizeof *c.storm);
      for (size_t i = 0; i < c.storm_n; i++) c.storm[i] = user_token(&c, (long)i + 1, now);
      for (size_t i = 0; i < c.storm_n; i++) op_storm(&c); /* connected once: the cache filled */
      uint64_t l0, h0, l1, h1;
      identity_cache_stats(c.id, &l0, &h0);
      double share, rate = run(&c, op_storm, seconds, count, &share);
      identity_cache_stats(c.id, &l1, &h1);
      printf("%s storm%zu %.0f cpu=%.2f hits=%.3f\n", name, c.storm_n, rate, share,
             l1 > l0 ? (double)(h1 - h0) / (double)(l1 - l0) : 0.0);
      fflush(stdout);
      for (size_t i = 0; i < c.storm_n; i++) free(c.storm[i]);
      free(c.storm);
    }
    identity_close(c.id);
    uv_run(&loop, UV_RUN_DEFAULT);
    identity_free(c.id);
    idp_free(p);
    jwks_free(c.keys);
    jws_clear(&c.decoded);
    free(c.tok);
    json_decref(set);
    json_decref(cfg);
    EVP_PKEY_free(c.key);
  }
  uv_loop_close(&loop);
  int rc = 0;
  if (tokens_file && json_dump_file(exported, tokens_file, JSON_COMPACT) != 0) {
    fprintf(stderr, "bench_idp: cannot write %s\n", tokens_file);
    rc = 1;
  }
  json_decref(exported);
  return rc;
}
