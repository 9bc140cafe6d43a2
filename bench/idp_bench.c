/* idp_bench.c: identity-provider token verification per second on one core
 * (docs/benchmarks.md, "Identity provider tokens"), for RS256 (2048-bit),
 * ES256 and EdDSA (Ed25519):
 *
 *   sig       the signature check alone (jws_sig_ok_jwk: the hash, then
 *             EVP_PKEY_verify on the key's kept context; EdDSA:
 *             EVP_DigestVerify), to hold against `openssl speed`'s verify;
 *   sig_fresh the same with a verify context set up per call (jws_sig_ok:
 *             EVP_DigestVerifyInit + EVP_DigestVerify), what a naive
 *             OpenSSL 3 caller does;
 *   jws       decode + header/key/signature/claims checks (auth/jws.c);
 *   identity  the whole provider path of identity_verify (issuer selection,
 *             keys, checks) with the verified-token cache off;
 *   cached    the same token again with the cache on: a hash, no signature.
 *
 * Usage: bench_idp [--seconds S]   (default 1 per measurement)
 * Prints one line per measurement: "<alg> <stage> <ops/s>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/jws.h"
#include "identity/identity.h"
#include "jose_helpers.h"
#include "util/clock.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
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

static bool op_identity(ctx_t *c, bool no_cache) {
  sw_identity_verify_opts_t o = {.default_leeway_ms = 30000, .no_cache = no_cache};
  sw_idp_token_t t;
  sw_error_t err;
  bool ok = identity_verify(c->id, c->tok, strlen(c->tok), &o, &t, &err) == 0;
  identity_token_clear(&t);
  return ok;
}
static bool op_identity_nocache(ctx_t *c) { return op_identity(c, true); }
static bool op_identity_cached(ctx_t *c) { return op_identity(c, false); }

static double run(ctx_t *c, op_fn op, double seconds) {
  if (!op(c)) {
    fprintf(stderr, "bench_idp: %s: verification failed\n", jws_alg_name(c->alg));
    exit(1);
  }
  long n = 0;
  double t0 = now_s(), t;
  do {
    for (int i = 0; i < 64; i++) op(c);
    n += 64;
    t = now_s();
  } while (t - t0 < seconds);
  return (double)n / (t - t0);
}

int main(int argc, char **argv) {
  double seconds = 1.0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = atof(argv[++i]);
    else {
      fprintf(stderr, "usage: bench_idp [--seconds S]\n");
      return 2;
    }
  }
  static const int algs[] = {SW_JWS_RS256, SW_JWS_ES256, SW_JWS_EDDSA};
  uv_loop_t loop;
  uv_loop_init(&loop);
  for (size_t a = 0; a < sizeof algs / sizeof *algs; a++) {
    ctx_t c = {.alg = algs[a]};
    c.key = th_keygen(c.alg);
    json_t *set = json_pack("{s:[o]}", "keys", th_jwk(c.key, c.alg, "k1"));
    json_t *cfg = json_pack("{s:s, s:s, s:O, s:[s], s:s, s:s, s:{s:[s]}}", "id", "p", "issuer", "https://idp.bench",
                            "jwks", set, "algorithms", jws_alg_name(c.alg), "audience", "bench", "clientId", "{sub}",
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
    /* A Clerk-sized token: the registered claims and a few custom ones. */
    json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s}", "iss", "https://idp.bench", "aud",
                               "bench", "sub", "user_2abcdefghijklmnopqrstuvwx", "iat", (json_int_t)now, "nbf",
                               (json_int_t)now, "exp", (json_int_t)now + 3600, "sid", "sess_2abcdefghijklmnopqrstuvwx",
                               "azp", "https://chat.example.com", "org_id", "org_2abcdefghijklmnopqrstuvwx");
    c.tok = th_sign(json_pack("{s:s, s:s}", "kid", "k1", "typ", "JWT"), claims, c.alg, c.key);
    if (jws_decode(c.tok, strlen(c.tok), 0, &c.decoded, &err)) return 1;
    static const char *const auds[] = {"bench"};
    c.pol = (sw_jws_policy_t){.issuer = "https://idp.bench", .audiences = auds, .n_audiences = 1,
                              .algs = SW_JWS_ALG_BIT(c.alg), .leeway_ms = 30000};
    const char *name = jws_alg_name(c.alg);
    printf("%s sig %.0f\n", name, run(&c, op_sig, seconds));
    printf("%s sig_fresh %.0f\n", name, run(&c, op_sig_fresh, seconds));
    printf("%s jws %.0f\n", name, run(&c, op_jws, seconds));
    printf("%s identity %.0f\n", name, run(&c, op_identity_nocache, seconds));
    printf("%s cached %.0f\n", name, run(&c, op_identity_cached, seconds));
    fflush(stdout);
    identity_close(c.id);
    uv_run(&loop, UV_RUN_DEFAULT);
    identity_free(c.id);
    idp_free(p);
    jwks_free(c.keys);
    jws_clear(&c.decoded);
    free(c.tok);
    json_decref(claims);
    json_decref(set);
    json_decref(cfg);
    EVP_PKEY_free(c.key);
  }
  uv_loop_close(&loop);
  return 0;
}
