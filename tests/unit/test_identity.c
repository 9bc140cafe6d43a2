/* Unit tests for identity/provider (configuration) and identity/identity
 * (provider selection and verification with inline and file keys; the
 * HTTPS paths are covered by tests/integration/identity.test.mjs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "identity/identity.h"
#include "identity/provider.h"
#include "jose_helpers.h"
#include "util/clock.h"

static sw_idp_t *parse(const char *json, bool allow_files, sw_error_t *err) {
  json_error_t je;
  json_t *o = json_loads(json, 0, &je);
  if (!o) fail_msg("bad test JSON: %s", je.text);
  sw_idp_t *p = idp_parse(o, "app", allow_files, err);
  json_decref(o);
  return p;
}

#define BASE "\"id\":\"p\",\"issuer\":\"https://idp.example.com\",\"capability\":{\"c:{sub}\":[\"subscribe\"]}"
#define INLINE_JWKS "\"jwks\":{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"cgLvfNUYzyynE0-tO0B9Ienqqg7qGvsSNkOThD0cIWk\"}]}"

static void test_parse_ok(void **state) {
  sw_error_t err = {0};
  sw_idp_t *p = parse("{" BASE ",\"jwksUri\":\"https://idp.example.com/jwks\",\"audience\":[\"a\",\"b\"],"
                      "\"algorithms\":[\"RS256\",\"EdDSA\"],\"clientId\":\"{sub}\",\"workspace\":\"w-{org}\","
                      "\"key\":\"k1\",\"refreshMinSeconds\":5}",
                      false, &err);
  if (!p) fail_msg("%s", err.message);
  assert_int_equal(p->source, SW_IDP_SRC_URI);
  assert_int_equal(p->n_audiences, 2);
  assert_int_equal(p->algs, SW_JWS_ALG_BIT(SW_JWS_RS256) | SW_JWS_ALG_BIT(SW_JWS_EDDSA));
  assert_string_equal(p->key_id, "app.k1");
  assert_int_equal(p->refresh_min_ms, 5000);
  assert_int_equal(p->refresh_max_ms, 3600000);
  assert_int_equal(p->leeway_ms, -1);
  assert_string_equal(p->cache_name, "idp:app/p");
  idp_free(p);
  /* Defaults: RS256 only; a single audience string. */
  p = parse("{" BASE ",\"discovery\":true,\"audience\":\"x\"}", false, &err);
  assert_non_null(p);
  assert_int_equal(p->algs, SW_JWS_ALG_BIT(SW_JWS_RS256));
  assert_int_equal(p->source, SW_IDP_SRC_DISCOVERY);
  idp_free(p);
  p = parse("{" BASE "," INLINE_JWKS ",\"algorithms\":[\"EdDSA\"]}", false, &err);
  assert_non_null(p);
  assert_int_equal(p->inline_keys->n, 1);
  idp_free(p);
  p = parse("{\"id\":\"s\",\"issuer\":\"x\",\"key\":\"app.k\",\"sharedSecret\":\"0123456789abcdef0123456789abcdef\"}", false, &err);
  assert_non_null(p);
  assert_int_equal(p->algs, SW_JWS_ALG_BIT(SW_JWS_HS256));
  idp_free(p);
}

static void test_parse_refusals(void **state) {
  static const char *const bad[] = {
      "{" BASE "}",                                                                 /* no key source */
      "{" BASE ",\"jwksUri\":\"https://x/j\",\"discovery\":true}",                  /* two sources */
      "{" BASE ",\"jwksUri\":\"http://idp.example.com/jwks\"}",                     /* http off loopback */
      "{" BASE ",\"jwksUri\":\"ftp://127.0.0.1/jwks\"}",
      "{" BASE ",\"jwksUri\":\"not a url\"}",
      "{\"id\":\"p\",\"issuer\":\"http://idp.example.com\",\"discovery\":true,\"key\":\"k\"}", /* discovery over http */
      "{" BASE ",\"jwksFile\":\"/tmp/x\"}",                                         /* files: config only */
      "{" BASE ",\"jwksUri\":\"https://x/j\",\"caFile\":\"/tmp/ca\"}",
      "{" BASE ",\"jwksUri\":\"https://x/j\",\"audiance\":\"typo\"}",               /* unknown field */
      "{" BASE ",\"jwksUri\":\"https://x/j\",\"algorithms\":[\"none\"]}",
      "{" BASE ",\"jwksUri\":\"https://x/j\",\"algorithms\":[\"HS256\"]}",          /* HMAC needs sharedSecret */
      "{" BASE ",\"jwksUri\":\"https://x/j\",\"algorithms\":[]}",
      "{" BASE ",\"jwksUri\":\"https://x/j\",\"algorithms\":[\"rs256\"]}",
      "{" BASE ",\"sharedSecret\":\"0123456789abcdef0123456789abcdef\",\"algorithms\":[\"RS256\"]}",
      "{" BASE ",\"sharedSecret\":\"short\"}",
      "{" BASE ",\"jwksUri\":\"https://x/j\",\"clientId\":\"{sub\"}",
      "{" BASE ",\"jwksUri\":\"https://x/j\",\"workspace\":\"}\"}",
      "{" BASE ",\"jwksUri\":\"https://x/j\",\"audience\":[]}",
      "{" BASE ",\"jwksUri\":\"https://x/j\",\"audience\":[1]}",
      "{" BASE ",\"jwksUri\":\"https://x/j\",\"key\":\"other.k1\"}",                /* another app's key */
      "{" BASE ",\"jwksUri\":\"https://x/j\",\"refreshMinSeconds\":0}",
      "{" BASE ",\"jwksUri\":\"https://x/j\",\"refreshMinSeconds\":100,\"refreshMaxSeconds\":10}",
      "{" BASE ",\"jwksUri\":\"https://x/j\",\"maxStaleSeconds\":10}",
      "{" BASE ",\"jwksUri\":\"https://x/j\",\"maxJwksBytes\":10}",
      "{" BASE ",\"jwks\":{\"keys\":[]}}",
      "{\"id\":\"p\",\"issuer\":\"https://i\",\"jwksUri\":\"https://x/j\"}",        /* no capability, no key */
      "{\"id\":\"p\",\"issuer\":\"https://i\",\"jwksUri\":\"https://x/j\",\"capability\":{\"c:{sub}\":[\"fly\"]}}",
      "{\"id\":\"p\",\"issuer\":\"https://i\",\"jwksUri\":\"https://x/j\",\"capability\":{\"c:{sub\":[\"subscribe\"]}}",
      "{\"id\":\"p\",\"issuer\":\"https://i\",\"jwksUri\":\"https://x/j\",\"capability\":{}}",
      "{\"id\":\"a b\",\"issuer\":\"https://i\",\"jwksUri\":\"https://x/j\",\"key\":\"k\"}",
      "{\"issuer\":\"https://i\",\"jwksUri\":\"https://x/j\",\"key\":\"k\"}",
      "{\"id\":\"p\",\"jwksUri\":\"https://x/j\",\"key\":\"k\"}",
      "[]",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    sw_error_t err = {0};
    sw_idp_t *p = parse(bad[i], false, &err);
    if (p) fail_msg("accepted: %s", bad[i]);
    assert_int_equal(err.code, 40000);
    print_message("%-40.40s -> %s\n", bad[i] + (strlen(bad[i]) > 60 ? strlen(bad[i]) - 40 : 0), err.message);
  }
}

static void test_urls(void **state) {
  assert_true(idp_url_ok("https://idp.example.com/.well-known/jwks.json"));
  assert_true(idp_url_ok("http://127.0.0.1:8080/jwks"));
  assert_true(idp_url_ok("http://127.1.2.3/jwks"));
  assert_true(idp_url_ok("http://localhost/jwks"));
  assert_true(idp_url_ok("http://[::1]:9/jwks"));
  assert_false(idp_url_ok("http://example.com/jwks"));
  assert_false(idp_url_ok("http://127.0.0.1.evil.com/jwks"));
  assert_false(idp_url_ok("http://128.0.0.1/jwks"));
  assert_false(idp_url_ok("file:///etc/passwd"));
  assert_false(idp_url_ok("gopher://127.0.0.1/"));
  assert_false(idp_url_ok(""));
}

static void test_conflicts(void **state) {
  sw_error_t err = {0};
  sw_idp_t *a = parse("{" BASE "," INLINE_JWKS ",\"audience\":[\"x\",\"y\"]}", false, &err);
  sw_idp_t *b = parse("{" BASE "," INLINE_JWKS ",\"audience\":\"y\"}", false, &err);
  sw_idp_t *c = parse("{" BASE "," INLINE_JWKS ",\"audience\":\"z\"}", false, &err);
  sw_idp_t *d = parse("{" BASE "," INLINE_JWKS "}", false, &err);
  sw_idp_t *e = parse("{\"id\":\"e\",\"issuer\":\"https://other\",\"key\":\"k\"," INLINE_JWKS "}", false, &err);
  assert_true(idp_conflict(a, b));
  assert_false(idp_conflict(a, c));
  assert_true(idp_conflict(a, d)); /* no audience: claims every token of the issuer */
  assert_true(idp_conflict(d, c));
  assert_false(idp_conflict(a, e));
  /* identity_add refuses the conflicting one and keeps the others. */
  sw_identity_t *id = identity_new(uv_default_loop());
  assert_int_equal(identity_add(id, &a, 1, &err), 0);
  assert_int_equal(identity_add(id, &b, 1, &err), -1);
  assert_int_equal(err.code, 40000);
  assert_null(b->rt);
  sw_idp_t *pair[2] = {c, e};
  assert_int_equal(identity_add(id, pair, 2, &err), 0);
  assert_true(identity_any(id));
  identity_remove(id, &a, 1);
  assert_int_equal(identity_add(id, &b, 1, &err), 0); /* a's issuer and audience are free again */
  identity_close(id);
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  identity_free(id);
  idp_free(a), idp_free(b), idp_free(c), idp_free(d), idp_free(e);
}

static bool never_key(void *ud, const char *kid) { return ud && strcmp(kid, ud) == 0; }

/* Verification through the module with a jwksFile and inline keys. */
static void test_verify_file_and_inline(void **state) {
  EVP_PKEY *k = th_keygen(SW_JWS_ES256), *k2 = th_keygen(SW_JWS_EDDSA);
  char path[] = "/tmp/sw-test-jwks-XXXXXX";
  int fd = mkstemp(path);
  json_t *set = json_pack("{s:[o]}", "keys", th_jwk(k, SW_JWS_ES256, "f1"));
  char *text = json_dumps(set, 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  char cfg[512];
  snprintf(cfg, sizeof cfg,
           "{\"id\":\"f\",\"issuer\":\"https://file\",\"jwksFile\":\"%s\",\"algorithms\":[\"ES256\"],\"key\":\"k\"}", path);
  sw_error_t err = {0};
  sw_idp_t *pf = parse(cfg, true, &err);
  assert_non_null(pf);
  json_t *inl = json_pack("{s:s,s:s,s:{s:[o]},s:[s],s:s}", "id", "i", "issuer", "https://inline", "jwks", "keys",
                          th_jwk(k2, SW_JWS_EDDSA, "i1"), "algorithms", "EdDSA", "key", "k");
  sw_idp_t *pi = idp_parse(inl, "app", false, &err);
  json_decref(inl);
  assert_non_null(pi);
  sw_identity_t *id = identity_new(uv_default_loop());
  sw_idp_t *both[2] = {pf, pi};
  assert_int_equal(identity_add(id, both, 2, &err), 0);
  sw_idp_status_t st;
  identity_status(pf, &st);
  assert_true(st.has_keys);
  assert_int_equal(st.fetches, 1);

  int64_t now = clock_now_ms() / 1000;
  sw_identity_verify_opts_t o = {.default_leeway_ms = 30000, .is_key = never_key, .is_key_ud = "app.k"};
  sw_idp_token_t t;
  json_t *claims = json_pack("{s:s,s:s,s:I,s:I}", "iss", "https://file", "sub", "u", "iat", (json_int_t)now, "exp",
                             (json_int_t)now + 60);
  char *tok = th_sign(json_pack("{s:s}", "kid", "f1"), claims, SW_JWS_ES256, k);
  assert_int_equal(identity_verify(id, tok, strlen(tok), &o, &t, &err), 0);
  assert_ptr_equal(t.idp, pf);
  assert_string_equal(json_string_value(json_object_get(t.claims, "sub")), "u");
  identity_token_clear(&t);
  /* Again: from the verified-token cache, then as a forced miss (what the
   * benchmark measures), with the same answer. */
  for (int miss = 0; miss < 2; miss++) {
    o.cache_miss = miss;
    assert_int_equal(identity_verify(id, tok, strlen(tok), &o, &t, &err), 0);
    assert_ptr_equal(t.idp, pf);
    assert_int_equal(t.exp_ms, (now + 60) * 1000);
    assert_string_equal(json_string_value(json_object_get(t.claims, "sub")), "u");
    identity_token_clear(&t);
  }
  o.cache_miss = false;
  /* While it is cached: its header.claims with another signature, and its
   * signature on other claims, are still refused (the cache key is the
   * signed part's digest and the signature's text). */
  char *forged = strdup(tok);
  char *sigpart = strrchr(forged, '.') + 5;
  *sigpart = *sigpart == 'A' ? 'B' : 'A';
  assert_int_equal(identity_verify(id, forged, strlen(forged), &o, &t, &err), -1);
  assert_int_equal(err.code, 40144);
  json_t *other = json_pack("{s:s,s:s,s:I,s:I}", "iss", "https://file", "sub", "v", "iat", (json_int_t)now, "exp",
                            (json_int_t)now + 60);
  char *tok2 = th_sign(json_pack("{s:s}", "kid", "f1"), other, SW_JWS_ES256, k);
  char *spliced = malloc(strlen(tok) + strlen(tok2) + 1);
  strcpy(spliced, tok2);
  strcpy(strrchr(spliced, '.') + 1, strrchr(tok, '.') + 1);
  assert_int_equal(identity_verify(id, spliced, strlen(spliced), &o, &t, &err), -1);
  assert_int_equal(err.code, 40144);
  assert_int_equal(identity_verify(id, tok, strlen(tok), &o, &t, &err), 0); /* the real one still is */
  identity_token_clear(&t);
  free(forged);
  free(spliced);
  free(tok2);
  json_decref(other);
  free(tok);
  /* The inline provider's key under the file provider's issuer: refused. */
  tok = th_sign(json_pack("{s:s}", "kid", "i1"), claims, SW_JWS_EDDSA, k2);
  assert_int_equal(identity_verify(id, tok, strlen(tok), &o, &t, &err), -1);
  assert_int_equal(err.code, 40144);
  free(tok);
  /* A kid naming an app key: not a provider token, whatever the iss. */
  tok = th_sign(json_pack("{s:s}", "kid", "app.k"), claims, SW_JWS_ES256, k);
  assert_int_equal(identity_verify(id, tok, strlen(tok), &o, &t, &err), 1);
  free(tok);
  json_decref(claims);
  /* Unknown issuer: HS256 goes to the Ably JWT code, anything else is refused here. */
  claims = json_pack("{s:s,s:I}", "iss", "https://nobody", "exp", (json_int_t)now + 60);
  char *c = json_dumps(claims, JSON_COMPACT);
  tok = th_sign_text("{\"alg\":\"HS256\",\"kid\":\"x.y\"}", c, SW_JWS_HS256, NULL, (const uint8_t *)"s", 1);
  assert_int_equal(identity_verify(id, tok, strlen(tok), &o, &t, &err), 1);
  free(tok);
  tok = th_sign(json_pack("{s:s}", "kid", "f1"), claims, SW_JWS_ES256, k);
  assert_int_equal(identity_verify(id, tok, strlen(tok), &o, &t, &err), -1);
  assert_int_equal(err.code, 40144);
  free(tok);
  free(c);
  json_decref(claims);
  /* Not a JWS at all: left to the caller. */
  assert_int_equal(identity_verify(id, "abc.def", 7, &o, &t, &err), 1);
  /* A header that decodes, the rest not (the decoded header is handed on
   * and freed: ASan checks). */
  assert_int_equal(identity_verify(id, "e30.e30.e30.AAAA", 16, &o, &t, &err), 1);
  assert_int_equal(identity_verify(id, "e30.!!.AAAA", 11, &o, &t, &err), 1);
  assert_int_equal(identity_verify(id, "e30.e30.", 8, &o, &t, &err), 1);

  identity_close(id);
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  identity_free(id);
  idp_free(pf);
  idp_free(pi);
  unlink(path);
  free(text);
  json_decref(set);
  EVP_PKEY_free(k);
  EVP_PKEY_free(k2);
}

/* The verified-token cache keeps four tokens whose digests pick the same
 * set (docs/benchmarks.md: a reconnect storm): the second round of the
 * four is answered from the cache, none needs a signature check. With one
 * entry per digest (before), each evicted the previous one and the second
 * round missed every time. The set index is identity.c's: the low bits of
 * the SHA-256 of the token's signed part. */
static void test_cache_keeps_colliding_tokens(void **state) {
  static const char secret[] = "0123456789abcdef0123456789abcdef";
  sw_error_t err = {0};
  sw_idp_t *p = parse("{\"id\":\"h\",\"issuer\":\"https://hs\",\"algorithms\":[\"HS256\"],"
                      "\"sharedSecret\":\"0123456789abcdef0123456789abcdef\",\"capability\":{\"c:{sub}\":[\"subscribe\"]}}",
                      false, &err);
  if (!p) fail_msg("%s", err.message);
  sw_identity_t *id = identity_new(uv_default_loop());
  assert_int_equal(identity_add(id, &p, 1, &err), 0);
  int64_t now = clock_now_ms() / 1000;
  /* HS256 tokens are cheap to make: make them until four share the low 10
   * bits of their digest (2048 tokens: about 2 per value, so a value with
   * four is all but certain; more are made if not). */
  enum { BUCKETS = 1024, WANT = 4 };
  static char *toks[BUCKETS][WANT];
  static int count[BUCKETS];
  memset(count, 0, sizeof count);
  int full = -1;
  for (int i = 0; full < 0 && i < 100000; i++) {
    char claims[160];
    snprintf(claims, sizeof claims, "{\"iss\":\"https://hs\",\"sub\":\"u%d\",\"exp\":%lld}", i, (long long)now + 600);
    char *tok = th_sign_text("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, SW_JWS_HS256, NULL,
                             (const uint8_t *)secret, sizeof secret - 1);
    uint8_t d[32];
    SHA256((const uint8_t *)tok, (size_t)(strrchr(tok, '.') - tok), d); /* the signed part's */
    int b = (d[0] | d[1] << 8) & (BUCKETS - 1);
    if (count[b] < WANT) toks[b][count[b]++] = tok;
    else free(tok);
    if (count[b] == WANT) full = b;
  }
  assert_true(full >= 0);
  sw_identity_verify_opts_t o = {.default_leeway_ms = 30000};
  sw_idp_token_t t;
  uint64_t l0, h0, l1, h1;
  for (int round = 0; round < 2; round++) {
    identity_cache_stats(id, &l0, &h0);
    for (int k = 0; k < WANT; k++) {
      assert_int_equal(identity_verify(id, toks[full][k], strlen(toks[full][k]), &o, &t, &err), 0);
      assert_ptr_equal(t.idp, p);
      identity_token_clear(&t);
    }
    identity_cache_stats(id, &l1, &h1);
    assert_int_equal(l1 - l0, WANT);
    assert_int_equal(h1 - h0, round == 0 ? 0 : WANT);
  }
  for (int b = 0; b < BUCKETS; b++)
    for (int k = 0; k < count[b]; k++) free(toks[b][k]);
  identity_close(id);
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  identity_free(id);
  idp_free(p);
}

static void test_bad_jwks_file(void **state) {
  sw_error_t err = {0};
  sw_idp_t *p = parse("{\"id\":\"f\",\"issuer\":\"https://file\",\"jwksFile\":\"/nonexistent/jwks.json\",\"key\":\"k\"}", true, &err);
  assert_non_null(p);
  sw_identity_t *id = identity_new(uv_default_loop());
  assert_int_equal(identity_add(id, &p, 1, &err), -1);
  assert_int_equal(err.code, 40000);
  assert_non_null(strstr(err.message, "cannot open"));
  assert_false(identity_any(id));
  identity_close(id);
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  identity_free(id);
  idp_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_ok),       cmocka_unit_test(test_parse_refusals),
      cmocka_unit_test(test_urls),           cmocka_unit_test(test_conflicts),
      cmocka_unit_test(test_verify_file_and_inline), cmocka_unit_test(test_bad_jwks_file),
      cmocka_unit_test(test_cache_keeps_colliding_tokens),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
