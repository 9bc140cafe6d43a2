/* Unit tests for auth/jwt and auth/b64url.
 *
 * Every attack case starts from a token that verifies and changes one
 * thing, and checks the exact code and status, so a check that stopped
 * running would make its test fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/b64url.h"
#include "auth/capability.h"
#include "auth/jwt.h"

/* ---- keys ---- */

#define SECRET "fixture-secret-\xc3\xbc\xc3\xa9-0123456789" /* UTF-8, as Node sends it */
#define OTHER_SECRET "other-secret-0123456789"

typedef struct test_key {
  const char *kid;
  const char *secret;
} test_key_t;

typedef struct keyring {
  test_key_t keys[4];
  size_t n;
  int calls;
} keyring_t;

static int lookup(void *ud, const char *kid, size_t kid_len, const uint8_t **secret, size_t *len) {
  keyring_t *kr = ud;
  kr->calls++;
  assert_int_equal(strlen(kid), kid_len); /* promised NUL-terminated */
  for (size_t i = 0; i < kr->n; i++) {
    if (strcmp(kr->keys[i].kid, kid) == 0) {
      *secret = (const uint8_t *)kr->keys[i].secret;
      *len = strlen(kr->keys[i].secret);
      return 0;
    }
  }
  return -1;
}

static keyring_t keyring(void) {
  keyring_t kr = {{{"sbtest.k1", SECRET}, {"other.k1", OTHER_SECRET}}, 2, 0};
  return kr;
}

/* Time of the Node fixtures: their iat is 1795348260 s. */
#define FIX_IAT 1795348260LL
#define NOW_MS ((FIX_IAT + 60) * 1000)

/* ---- fixtures minted by Node's jsonwebtoken 9.0.2 at development time ----
 * const jwt = require('jsonwebtoken');
 * const keyName = 'sbtest.k1', keySecret = 'fixture-secret-\u00fc\u00e9-0123456789';
 * jwt.sign({'x-ably-capability': JSON.stringify({'chat:*': ['publish','subscribe','presence']}),
 *           'x-ably-clientId': 'user-42'}, keySecret, {algorithm: 'HS256', keyid: keyName, expiresIn: '1h'});
 * and variations named below. */

/* The snippet above, verbatim. */
static const char NODE_SNIPPET[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InNidGVzdC5rMSJ9."
    "eyJ4LWFibHktY2FwYWJpbGl0eSI6IntcImNoYXQ6KlwiOltcInB1Ymxpc2hcIixcInN1YnNjcmliZVwiLFwicHJlc2VuY2VcIl19IiwieC1hYmx5LWNsaWVudElkIjoidXNlci00MiIsImlhdCI6MTc5NTM0ODI2MCwiZXhwIjoxNzk1MzUxODYwfQ."
    "nIS3RkPs9zjFM8xWY5s5OVTj8We8VktP4H3tubAbHwE";
/* + 'ably.channel.chat:lobby': JSON.stringify({role:'moderator',displayName:'Alice'}),
 *   'ably.limits.publish.perAttachment.maxRate.*': 10 */
static const char NODE_CHANNEL_CLAIM[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InNidGVzdC5rMSJ9."
    "eyJ4LWFibHktY2FwYWJpbGl0eSI6IntcImNoYXQ6KlwiOltcInB1Ymxpc2hcIixcInN1YnNjcmliZVwiLFwicHJlc2VuY2VcIl19IiwieC1hYmx5LWNsaWVudElkIjoidXNlci00MiIsImFibHkuY2hhbm5lbC5jaGF0OmxvYmJ5Ijoie1wicm9sZVwiOlwibW9kZXJhdG9yXCIsXCJkaXNwbGF5TmFtZVwiOlwiQWxpY2VcIn0iLCJhYmx5LmxpbWl0cy5wdWJsaXNoLnBlckF0dGFjaG1lbnQubWF4UmF0ZS4qIjoxMCwiaWF0IjoxNzk1MzQ4MjYwLCJleHAiOjE3OTUzNTE4NjB9."
    "BhJjUp6et9Bj5CzrRZg6VCAAKOOsVRkcNFmHyajIFws";
/* {'x-ably-clientId': '*'} */
static const char NODE_WILDCARD[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InNidGVzdC5rMSJ9."
    "eyJ4LWFibHktY2xpZW50SWQiOiIqIiwiaWF0IjoxNzk1MzQ4MjYwLCJleHAiOjE3OTUzNTE4NjB9."
    "zoYkYOK4PWGnJs7F_YSyorgV3z9K10BJmB99_qN7K_o";
/* {'x-ably-capability': {'*': ['*']}}: an object, not JSON text */
static const char NODE_CAP_OBJECT[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InNidGVzdC5rMSJ9."
    "eyJ4LWFibHktY2FwYWJpbGl0eSI6eyIqIjpbIioiXX0sImlhdCI6MTc5NTM0ODI2MCwiZXhwIjoxNzk1MzUxODYwfQ."
    "Jvf6KSGvedTBCoSNfBbBRe5OkhxxfL6ydEvYzUWQdC8";
/* signed with 'not-the-secret' */
static const char NODE_WRONG_SECRET[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InNidGVzdC5rMSJ9."
    "eyJ4LWFibHktY2xpZW50SWQiOiJ1c2VyLTQyIiwiaWF0IjoxNzk1MzQ4MjYwLCJleHAiOjE3OTUzNTE4NjB9."
    "pG-mgUgX1O7t7yNgF-szUux_KFCm_KS2wwvyGCLSAyA";
/* algorithm: 'HS384' */
static const char NODE_HS384[] =
    "eyJhbGciOiJIUzM4NCIsInR5cCI6IkpXVCIsImtpZCI6InNidGVzdC5rMSJ9."
    "eyJ4LWFibHktY2xpZW50SWQiOiJ1c2VyLTQyIiwiaWF0IjoxNzk1MzQ4MjYwLCJleHAiOjE3OTUzNTE4NjB9."
    "l7t3N5CmURJt2dCuFtn4SzhjPA0rOH9NHK4tzIyLYcH766HLOcKsiIKaZ0tGyPXo";
/* noTimestamp: true */
static const char NODE_NO_IAT[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InNidGVzdC5rMSJ9."
    "eyJ4LWFibHktY2xpZW50SWQiOiJ1c2VyLTQyIiwiZXhwIjoxNzk1MzUxODYwfQ."
    "CNit2D-JOFfzIcwDk3e42pA9Umy_dTXW9YE3SD0pS2M";
/* expiresIn: '25h' */
static const char NODE_TTL_25H[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InNidGVzdC5rMSJ9."
    "eyJ4LWFibHktY2xpZW50SWQiOiJ1c2VyLTQyIiwiaWF0IjoxNzk1MzQ4MjYwLCJleHAiOjE3OTU0MzgyNjB9."
    "e-q66gRcC8HrBe1XJxLHjnprJaoMDgZ7DmbykR_nyNo";
/* no keyid */
static const char NODE_NO_KID[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJ4LWFibHktY2xpZW50SWQiOiJ1c2VyLTQyIiwiaWF0IjoxNzk1MzQ4MjYwLCJleHAiOjE3OTUzNTE4NjB9."
    "U86OBh8nrh8Xe7Rz6CDbwawR3Alz8xEN3TMaS6IuDeY";

/* ---- helpers ---- */

static sw_jwt_opts_t opts_at(int64_t now_ms) {
  sw_jwt_opts_t o = {0};
  o.now_ms = now_ms;
  return o;
}

static char *b64(const char *s, size_t n) {
  size_t cap = b64url_encoded_len(n) + 1;
  char *out = malloc(cap);
  assert_non_null(out);
  assert_int_equal(b64url_encode((const uint8_t *)s, n, out, cap), (long)(cap - 1));
  return out;
}

/* header.claims.HMAC(md, secret) from JSON texts; md NULL leaves the
 * signature empty. Caller frees. */
static char *craft_md(const char *header, const char *claims, const EVP_MD *md, const char *secret) {
  char *h = b64(header, strlen(header)), *c = b64(claims, strlen(claims));
  size_t cap = strlen(h) + strlen(c) + 100;
  char *tok = malloc(cap);
  assert_non_null(tok);
  snprintf(tok, cap, "%s.%s.", h, c);
  if (md) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    size_t signed_len = strlen(tok) - 1;
    assert_non_null(HMAC(md, secret, (int)strlen(secret), (const unsigned char *)tok, signed_len, mac, &ml));
    char *s = malloc(b64url_encoded_len(ml) + 1);
    assert_non_null(s);
    b64url_encode(mac, ml, s, b64url_encoded_len(ml) + 1);
    strncat(tok, s, cap - strlen(tok) - 1);
    free(s);
  }
  free(h);
  free(c);
  return tok;
}

static char *craft(const char *header, const char *claims) {
  return craft_md(header, claims, EVP_sha256(), SECRET);
}

#define HDR "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"sbtest.k1\"}"
/* Claims valid at NOW_MS, with a format hole for extra members. */
#define CLAIMS_FMT "{\"iat\":1795348260,\"exp\":1795351860%s}"

static char *claims_with(const char *extra) {
  char *s = malloc(strlen(CLAIMS_FMT) + strlen(extra) + 1);
  assert_non_null(s);
  sprintf(s, CLAIMS_FMT, extra);
  return s;
}

/* Verifies tok at NOW_MS and expects success. */
static void verify_ok_opts(const char *tok, const sw_jwt_opts_t *o, sw_jwt_t *out) {
  keyring_t kr = keyring();
  sw_error_t err = {0};
  int rc = jwt_verify(tok, strlen(tok), lookup, &kr, o, out, &err);
  if (rc != 0) fail_msg("jwt_verify failed: %d %s", err.code, err.message);
  assert_int_equal(err.code, 0);
}

static void verify_ok(const char *tok, sw_jwt_t *out) {
  sw_jwt_opts_t o = opts_at(NOW_MS);
  verify_ok_opts(tok, &o, out);
}

static void expect_code_opts(const char *tok, size_t n, const sw_jwt_opts_t *o, int code, int status) {
  keyring_t kr = keyring();
  sw_error_t err = {0};
  sw_jwt_t out;
  memset(&out, 0xAB, sizeof out); /* must come back zeroed */
  int rc = jwt_verify(tok, n, lookup, &kr, o, &out, &err);
  if (rc != -1 || err.code != code)
    fail_msg("expected %d, got rc %d code %d (%s)", code, rc, err.code, err.message);
  assert_int_equal(err.status, status);
  sw_jwt_t zero;
  memset(&zero, 0, sizeof zero);
  assert_memory_equal(&out, &zero, sizeof out);
  /* No secret in any message. */
  assert_null(strstr(err.message, "fixture-secret"));
  assert_null(strstr(err.message, OTHER_SECRET));
}

static void expect_code(const char *tok, int code, int status) {
  sw_jwt_opts_t o = opts_at(NOW_MS);
  expect_code_opts(tok, strlen(tok), &o, code, status);
}

/* craft(HDR, claims) must fail with code. */
static void expect_claims(const char *extra, int code, int status) {
  char *c = claims_with(extra);
  char *t = craft(HDR, c);
  expect_code(t, code, status);
  free(t);
  free(c);
}

/* ---- Node fixtures ---- */

static void test_node_snippet(void **state) {
  (void)state;
  sw_jwt_t j;
  verify_ok(NODE_SNIPPET, &j);
  assert_string_equal(j.kid, "sbtest.k1");
  assert_int_equal(j.iat_ms, FIX_IAT * 1000);
  assert_int_equal(j.exp_ms, (FIX_IAT + 3600) * 1000);
  assert_string_equal(j.capability, "{\"chat:*\":[\"publish\",\"subscribe\",\"presence\"]}");
  assert_string_equal(j.client_id, "user-42");
  assert_null(j.revocation_key);
  assert_null(j.client_type);
  assert_null(j.channel_claims);
  assert_null(j.embedded_token);

  /* What a connection does next: intersect with the key's capability. */
  sw_error_t err = {0};
  const char *keycap = "{\"*\":[\"subscribe\",\"publish\"]}";
  sw_cap_t *req = cap_parse(j.capability, strlen(j.capability), &err);
  sw_cap_t *key = cap_parse(keycap, strlen(keycap), &err);
  assert_non_null(req);
  assert_non_null(key);
  sw_cap_t *eff = cap_intersect(req, key, &err);
  assert_non_null(eff);
  assert_true(cap_allows(eff, "chat:room1", SW_OP_PUBLISH));
  assert_false(cap_allows(eff, "chat:room1", SW_OP_PRESENCE));
  assert_false(cap_allows(eff, "other", SW_OP_SUBSCRIBE));
  cap_free(eff);
  cap_free(req);
  cap_free(key);
  jwt_clear(&j);
  jwt_clear(&j); /* idempotent */
}

static void test_node_fixtures(void **state) {
  (void)state;
  sw_jwt_t j;
  verify_ok(NODE_CHANNEL_CLAIM, &j);
  assert_non_null(j.channel_claims);
  assert_int_equal(json_object_size(j.channel_claims), 1);
  assert_string_equal(json_string_value(json_object_get(j.channel_claims, "chat:lobby")),
                      "{\"role\":\"moderator\",\"displayName\":\"Alice\"}");
  jwt_clear(&j);

  verify_ok(NODE_WILDCARD, &j);
  assert_string_equal(j.client_id, "*");
  assert_null(j.capability);
  jwt_clear(&j);

  verify_ok(NODE_CAP_OBJECT, &j);
  assert_string_equal(j.capability, "{\"*\":[\"*\"]}");
  jwt_clear(&j);

  expect_code(NODE_WRONG_SECRET, 40144, 401);
  expect_code(NODE_HS384, 40144, 401);
  expect_code(NODE_NO_IAT, 40144, 401);
  expect_code(NODE_TTL_25H, 40003, 400);
  expect_code(NODE_NO_KID, 40144, 401);

  /* Expiry of the snippet token: valid one ms before exp, not at exp. */
  sw_jwt_opts_t o = opts_at((FIX_IAT + 3600) * 1000 - 1);
  verify_ok_opts(NODE_SNIPPET, &o, &j);
  jwt_clear(&j);
  o = opts_at((FIX_IAT + 3600) * 1000);
  expect_code_opts(NODE_SNIPPET, strlen(NODE_SNIPPET), &o, 40142, 401);
}

/* ---- minting and the cache ---- */

static void test_sign_roundtrip(void **state) {
  (void)state;
  char *t = jwt_sign_ably("sbtest.k1", (const uint8_t *)SECRET, strlen(SECRET), FIX_IAT, FIX_IAT + 600,
                          "{\"a:*\":[\"publish\"]}", "alice", "rk-1");
  assert_non_null(t);
  assert_true(jwt_looks_like(t, strlen(t)));
  /* The header jwt_sign_ably promises. */
  const char *dot = strchr(t, '.');
  uint8_t hdr[256];
  long hl = b64url_decode(t, (size_t)(dot - t), hdr, sizeof hdr);
  assert_true(hl > 0);
  json_t *h = json_loadb((const char *)hdr, (size_t)hl, 0, NULL);
  assert_string_equal(json_string_value(json_object_get(h, "alg")), "HS256");
  assert_string_equal(json_string_value(json_object_get(h, "typ")), "JWT");
  assert_string_equal(json_string_value(json_object_get(h, "kid")), "sbtest.k1");
  json_decref(h);

  sw_jwt_t j;
  verify_ok(t, &j);
  assert_string_equal(j.kid, "sbtest.k1");
  assert_int_equal(j.exp_ms - j.iat_ms, 600000);
  assert_string_equal(j.capability, "{\"a:*\":[\"publish\"]}");
  assert_string_equal(j.client_id, "alice");
  assert_string_equal(j.revocation_key, "rk-1");
  jwt_clear(&j);
  free(t);

  assert_null(jwt_sign_ably(NULL, (const uint8_t *)"x", 1, 0, 1, NULL, NULL, NULL));
  assert_null(jwt_sign_ably("a.b", (const uint8_t *)"x", 0, 0, 1, NULL, NULL, NULL));

  /* The Assistant Cloud's tokens carry their workspace (src/cloud/). */
  t = jwt_sign_ably_ws("sbtest.k1", (const uint8_t *)SECRET, strlen(SECRET), FIX_IAT, FIX_IAT + 600, NULL, "bob",
                       NULL, "team-1");
  assert_non_null(t);
  verify_ok(t, &j);
  assert_string_equal(j.workspace, "team-1");
  assert_string_equal(j.client_id, "bob");
  assert_null(j.capability);
  jwt_clear(&j);
  free(t);
}

static void test_cache(void **state) {
  (void)state;
  sw_jwt_cache_t *cache = jwt_cache_new();
  assert_non_null(cache);
  sw_jwt_opts_t o = opts_at(NOW_MS);
  o.cache = cache;
  keyring_t kr = keyring();
  sw_error_t err = {0};
  sw_jwt_t j;
  /* Hits after the first use, and the same answers as without a cache. */
  for (int i = 0; i < 3; i++) {
    assert_int_equal(jwt_verify(NODE_SNIPPET, strlen(NODE_SNIPPET), lookup, &kr, &o, &j, &err), 0);
    jwt_clear(&j);
    assert_int_equal(jwt_verify(NODE_WRONG_SECRET, strlen(NODE_WRONG_SECRET), lookup, &kr, &o, &j, &err), -1);
    assert_int_equal(err.code, 40144);
  }
  /* Rotating the secret of a cached kid: old tokens stop verifying at once. */
  kr.keys[0].secret = "rotated-secret-000";
  assert_int_equal(jwt_verify(NODE_SNIPPET, strlen(NODE_SNIPPET), lookup, &kr, &o, &j, &err), -1);
  assert_int_equal(err.code, 40144);
  char *t = jwt_sign_ably("sbtest.k1", (const uint8_t *)"rotated-secret-000", 18, FIX_IAT, FIX_IAT + 600,
                          NULL, NULL, NULL);
  assert_int_equal(jwt_verify(t, strlen(t), lookup, &kr, &o, &j, &err), 0);
  jwt_clear(&j);
  free(t);
  /* Same secret under a secret of another length, and many kids competing
   * for slots: every answer stays right. */
  static char kids[200][16], secrets[200][24];
  for (int i = 0; i < 200; i++) {
    snprintf(kids[i], sizeof kids[i], "app%d.k", i);
    snprintf(secrets[i], sizeof secrets[i], "secret-%d", i * 7);
  }
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < 200; i++) {
      keyring_t one = {{{kids[i], secrets[i]}}, 1, 0};
      char *tk = jwt_sign_ably(kids[i], (const uint8_t *)secrets[i], strlen(secrets[i]), FIX_IAT,
                               FIX_IAT + 600, NULL, NULL, NULL);
      assert_int_equal(jwt_verify(tk, strlen(tk), lookup, &one, &o, &j, &err), 0);
      assert_string_equal(j.kid, kids[i]);
      jwt_clear(&j);
      /* The neighbour's secret under this kid must fail. */
      keyring_t wrong = {{{kids[i], secrets[(i + 1) % 200]}}, 1, 0};
      assert_int_equal(jwt_verify(tk, strlen(tk), lookup, &wrong, &o, &j, &err), -1);
      assert_int_equal(err.code, 40144);
      free(tk);
    }
  }
  jwt_cache_free(cache);
  jwt_cache_free(NULL);
}

/* HMAC is computed from precomputed pad states with the low-level SHA-256
 * calls (jwt.c says why); it must agree with OpenSSL's HMAC() for keys
 * shorter than, equal to and longer than the 64-byte block (long keys are
 * hashed first), the empty key, and signed texts ending on either side of
 * a block boundary, with and without the cache. */
static void test_hmac_matches_openssl(void **state) {
  (void)state;
  sw_jwt_cache_t *cache = jwt_cache_new();
  assert_non_null(cache);
  static char secret[201];
  char claims[256];
  sw_error_t err = {0};
  sw_jwt_t j;
  for (size_t len = 0; len <= 200; len += len < 70 ? 1 : 13) {
    for (size_t i = 0; i < len; i++) secret[i] = (char)('!' + (i * 7 + len) % 90);
    secret[len] = '\0';
    keyring_t kr = {{{"sbtest.k1", secret}}, 1, 0};
    for (size_t pad = 0; pad < 70; pad += len % 3 + 1) {
      snprintf(claims, sizeof claims, "{\"iat\":1795348260,\"exp\":1795351860,\"p\":\"%.*s\"}", (int)pad,
               "0123456789012345678901234567890123456789012345678901234567890123456789");
      char *tok = craft_md(HDR, claims, EVP_sha256(), secret);
      for (int cached = 0; cached < 2; cached++) {
        sw_jwt_opts_t o = opts_at(NOW_MS);
        o.cache = cached ? cache : NULL;
        assert_int_equal(jwt_verify(tok, strlen(tok), lookup, &kr, &o, &j, &err), 0);
        jwt_clear(&j);
      }
      /* A different key must fail. */
      keyring_t wrong = {{{"sbtest.k1", len ? "x" : "y"}}, 1, 0};
      if (len == 1) wrong.keys[0].secret = secret[0] == 'x' ? "y" : "x";
      sw_jwt_opts_t o = opts_at(NOW_MS);
      o.cache = cache;
      assert_int_equal(jwt_verify(tok, strlen(tok), lookup, &wrong, &o, &j, &err), -1);
      assert_int_equal(err.code, 40144);
      free(tok);
    }
  }
  jwt_cache_free(cache);
}

/* The cache also remembers headers of verified tokens (jwt.c, hdr_memo).
 * A remembered header must change no answer: every token below, many of
 * them sharing the primed header text, gets the same result with a primed
 * cache as without any cache. */
static void test_header_memo(void **state) {
  (void)state;
  sw_jwt_cache_t *cache = jwt_cache_new();
  assert_non_null(cache);
  keyring_t kr = keyring();
  sw_error_t err = {0};
  sw_jwt_t j;
  sw_jwt_opts_t plain = opts_at(NOW_MS), cached = plain;
  cached.cache = cache;
  /* Prime: NODE_SNIPPET's header, and HDR. */
  char *c = claims_with(""), *primer = craft(HDR, c);
  free(c);
  for (int k = 0; k < 2; k++) {
    assert_int_equal(jwt_verify(NODE_SNIPPET, strlen(NODE_SNIPPET), lookup, &kr, &cached, &j, &err), 0);
    jwt_clear(&j);
    assert_int_equal(jwt_verify(primer, strlen(primer), lookup, &kr, &cached, &j, &err), 0);
    jwt_clear(&j);
  }
  char *toks[32];
  size_t nt = 0;
  /* Same header text, refused later: wrong key, bad claims, expired, an
   * embedded token signed by our key, a tampered signature. */
  toks[nt++] = strdup(NODE_WRONG_SECRET);
  toks[nt++] = strdup(NODE_NO_IAT);
  toks[nt++] = strdup(NODE_TTL_25H);
  toks[nt++] = craft(HDR, "{\"iat\":1795348260,\"exp\":1795348261}");
  toks[nt++] = craft(HDR, "{\"iat\":1795348260,\"exp\":1795351860,\"x-ably-token\":\"app.tok\"}");
  toks[nt++] = craft(HDR, "[1]");
  toks[nt++] = craft_md(HDR, "{\"iat\":1795348260,\"exp\":1795351860}", EVP_sha256(), OTHER_SECRET);
  char *t = strdup(primer);
  t[strlen(t) - 2] = t[strlen(t) - 2] == 'A' ? 'B' : 'A';
  toks[nt++] = t;
  /* Headers like the primed ones where it matters: the same length and
   * the same last characters (the memo's slot), another alg, typ, crit,
   * x-ably-token, or kid; and one with nothing after the kid's dot. */
  toks[nt++] = craft_md("{\"alg\":\"HS512\",\"typ\":\"JWT\",\"kid\":\"sbtest.k1\"}", "{\"iat\":1795348260,\"exp\":1795351860}",
                        EVP_sha512(), SECRET);
  toks[nt++] = craft("{\"alg\":\"HS256\",\"typ\":\"JWE\",\"kid\":\"sbtest.k1\"}", "{\"iat\":1795348260,\"exp\":1795351860}");
  toks[nt++] = craft("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"kid\":\"sbtest.k1\"}", "{\"iat\":1795348260,\"exp\":1795351860}");
  toks[nt++] = craft("{\"alg\":\"HS256\",\"x-ably-token\":\"a.b\",\"kid\":\"sbtest.k1\"}", "{\"iat\":1795348260,\"exp\":1795351860}");
  toks[nt++] = craft("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"unknown.k1\"}", "{\"iat\":1795348260,\"exp\":1795351860}");
  toks[nt++] = craft("{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"sbtest.k1\"}", "{\"iat\":1795348260,\"exp\":1795351860}");
  toks[nt++] = craft_md(HDR, "{\"iat\":1795348260,\"exp\":1795351860}", NULL, SECRET);
  for (size_t i = 0; i < nt; i++) {
    sw_jwt_t a, b;
    sw_error_t ea = {0}, eb = {0};
    int ra = jwt_verify(toks[i], strlen(toks[i]), lookup, &kr, &plain, &a, &ea);
    int rb = jwt_verify(toks[i], strlen(toks[i]), lookup, &kr, &cached, &b, &eb);
    if (ra != rb || ea.code != eb.code || strcmp(ea.message, eb.message) != 0)
      fail_msg("token %zu: %d %d (%s) without the memo, %d %d (%s) with it", i, ra, ea.code, ea.message, rb,
               eb.code, eb.message);
    assert_string_equal(a.kid, b.kid);
    assert_true((!a.embedded_token && !b.embedded_token) || strcmp(a.embedded_token, b.embedded_token) == 0);
    jwt_clear(&a);
    jwt_clear(&b);
    free(toks[i]);
  }
  /* The key disappears after its header was remembered: 40400 as before. */
  keyring_t none = {{{"other.k1", OTHER_SECRET}}, 1, 0};
  assert_int_equal(jwt_verify(primer, strlen(primer), lookup, &none, &cached, &j, &err), -1);
  assert_int_equal(err.code, 40400);
  /* ... and comes back with another secret: the old token fails. */
  keyring_t rotated = {{{"sbtest.k1", OTHER_SECRET}}, 1, 0};
  assert_int_equal(jwt_verify(primer, strlen(primer), lookup, &rotated, &cached, &j, &err), -1);
  assert_int_equal(err.code, 40144);
  free(primer);
  jwt_cache_free(cache);
}

/* ---- the attack list ---- */

static void test_alg_none_and_others(void **state) {
  (void)state;
  const char *claims = "{\"iat\":1795348260,\"exp\":1795351860,\"x-ably-clientId\":\"mallory\"}";
  /* Baseline: this token verifies as HS256. */
  char *t = craft(HDR, claims);
  sw_jwt_t j;
  verify_ok(t, &j);
  jwt_clear(&j);
  free(t);

  /* alg none, empty signature and with a valid HS256 signature. */
  t = craft_md("{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"sbtest.k1\"}", claims, NULL, NULL);
  expect_code(t, 40144, 401);
  free(t);
  t = craft("{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"sbtest.k1\"}", claims);
  expect_code(t, 40144, 401);
  free(t);
  /* Spellings that loose comparisons would accept. */
  static const char *const bad_algs[] = {
      "{\"alg\":\"None\",\"kid\":\"sbtest.k1\"}",   "{\"alg\":\"hs256\",\"kid\":\"sbtest.k1\"}",
      "{\"alg\":\"HS256 \",\"kid\":\"sbtest.k1\"}", "{\"alg\":\"HS256\\u0000\",\"kid\":\"sbtest.k1\"}",
      "{\"alg\":[\"HS256\"],\"kid\":\"sbtest.k1\"}", "{\"kid\":\"sbtest.k1\"}",
      "{\"alg\":\"HS512\",\"kid\":\"sbtest.k1\"}",  "{\"alg\":\"ES256\",\"kid\":\"sbtest.k1\"}",
      "{\"alg\":\"PS256\",\"kid\":\"sbtest.k1\"}",  "{\"alg\":null,\"kid\":\"sbtest.k1\"}",
  };
  for (size_t i = 0; i < sizeof bad_algs / sizeof bad_algs[0]; i++) {
    t = craft(bad_algs[i], claims);
    expect_code(t, 40144, 401);
    free(t);
  }
  /* HS384 really signed with the secret. */
  t = craft_md("{\"alg\":\"HS384\",\"typ\":\"JWT\",\"kid\":\"sbtest.k1\"}", claims, EVP_sha384(), SECRET);
  expect_code(t, 40144, 401);
  free(t);
  /* HS/RS confusion: an RS256 header over an HMAC made with the key secret
   * standing in for the "public key". */
  t = craft("{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"sbtest.k1\"}", claims);
  expect_code(t, 40144, 401);
  free(t);
}

static void test_kid_attacks(void **state) {
  (void)state;
  const char *claims = "{\"iat\":1795348260,\"exp\":1795351860}";
  /* Another app's kid over our secret: the signature does not match its key. */
  char *t = craft("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"other.k1\"}", claims);
  expect_code(t, 40144, 401);
  free(t);
  /* ...while that app's own token verifies. */
  t = craft_md("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"other.k1\"}", claims, EVP_sha256(), OTHER_SECRET);
  sw_jwt_t j;
  verify_ok(t, &j);
  assert_string_equal(j.kid, "other.k1");
  jwt_clear(&j);
  free(t);
  /* Unknown key in a known app, unknown app. */
  t = craft("{\"alg\":\"HS256\",\"kid\":\"sbtest.nokey\"}", claims);
  expect_code(t, 40400, 404);
  free(t);
  t = craft("{\"alg\":\"HS256\",\"kid\":\"invalid.invalid\"}", claims);
  expect_code(t, 40400, 404);
  free(t);
  /* Malformed kids. */
  static const char *const bad_kids[] = {
      "{\"alg\":\"HS256\",\"kid\":\"\"}",
      "{\"alg\":\"HS256\",\"kid\":5}",
      "{\"alg\":\"HS256\",\"kid\":null}",
      "{\"alg\":\"HS256\",\"kid\":\"sbtest.k1\\u0000x\"}",
      "{\"alg\":\"HS256\",\"kid\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
  };
  for (size_t i = 0; i < sizeof bad_kids / sizeof bad_kids[0]; i++) {
    t = craft(bad_kids[i], claims);
    expect_code(t, 40144, 401);
    free(t);
  }
  /* No lookup at all behaves as an unknown key. */
  sw_error_t err = {0};
  sw_jwt_opts_t o = opts_at(NOW_MS);
  assert_int_equal(jwt_verify(NODE_SNIPPET, strlen(NODE_SNIPPET), NULL, NULL, &o, &j, &err), -1);
  assert_int_equal(err.code, 40400);
}

/* Replaces segment seg (0..2) of tok by repl. Caller frees. */
static char *swap_segment(const char *tok, int seg, const char *repl) {
  const char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
  const char *start[3] = {tok, d1 + 1, d2 + 1}, *end[3] = {d1, d2, tok + strlen(tok)};
  char *out = malloc(strlen(tok) + strlen(repl) + 1);
  assert_non_null(out);
  out[0] = '\0';
  for (int i = 0; i < 3; i++) {
    if (i) strcat(out, ".");
    if (i == seg) strcat(out, repl);
    else strncat(out, start[i], (size_t)(end[i] - start[i]));
  }
  return out;
}

static void test_tampering(void **state) {
  (void)state;
  /* Header: same alg and kid, one more member. */
  char *h = b64("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"sbtest.k1\",\"x\":1}", 51);
  char *t = swap_segment(NODE_SNIPPET, 0, h);
  expect_code(t, 40144, 401);
  free(t);
  free(h);
  /* Claims: another clientId. */
  const char *c = "{\"x-ably-clientId\":\"admin\",\"iat\":1795348260,\"exp\":1795351860}";
  char *cb = b64(c, strlen(c));
  t = swap_segment(NODE_SNIPPET, 1, cb);
  expect_code(t, 40144, 401);
  free(t);
  free(cb);
  /* Signature: every single-character change, including those that only
   * touch the unused low bits of the last character. */
  char *sig = strdup(strrchr(NODE_SNIPPET, '.') + 1);
  size_t sl = strlen(sig);
  static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (size_t pos = 0; pos < sl; pos += (pos + 1 == sl - 1 ? 1 : 7)) {
    char orig = sig[pos];
    for (const char *a = alpha; *a; a++) {
      if (*a == orig) continue;
      sig[pos] = *a;
      t = swap_segment(NODE_SNIPPET, 2, sig);
      expect_code(t, 40144, 401);
      free(t);
    }
    sig[pos] = orig;
  }
  /* Truncated, extended, empty signature. */
  sig[sl - 1] = '\0';
  t = swap_segment(NODE_SNIPPET, 2, sig);
  expect_code(t, 40144, 401);
  free(t);
  free(sig);
  t = swap_segment(NODE_SNIPPET, 2, "nIS3RkPs9zjFM8xWY5s5OVTj8We8VktP4H3tubAbHwEA");
  expect_code(t, 40144, 401);
  free(t);
  t = swap_segment(NODE_SNIPPET, 2, "");
  expect_code(t, 40144, 401);
  free(t);
}

static void test_size_and_shape(void **state) {
  (void)state;
  size_t n = strlen(NODE_SNIPPET);
  sw_jwt_opts_t o = opts_at(NOW_MS);
  o.max_len = n - 1;
  expect_code_opts(NODE_SNIPPET, n, &o, 40144, 401);
  o.max_len = n;
  sw_jwt_t j;
  verify_ok_opts(NODE_SNIPPET, &o, &j);
  jwt_clear(&j);

  /* Default limit 8 KiB: a signed token just over it fails, one under passes. */
  for (int over = 0; over < 2; over++) {
    char *pad = malloc(9000);
    size_t fill = 0;
    char *t = NULL;
    /* Grow a claim until the token length lands on 8192 or 8193. */
    for (fill = 5900; fill < 6300; fill++) {
      memset(pad, 'p', fill);
      pad[fill] = '\0';
      char extra[9100];
      snprintf(extra, sizeof extra, ",\"pad\":\"%s\"", pad);
      char *c = claims_with(extra);
      t = craft(HDR, c);
      free(c);
      if (strlen(t) == SW_JWT_DEFAULT_MAX_LEN + (size_t)over) break;
      free(t);
      t = NULL;
    }
    assert_non_null(t);
    if (over) {
      expect_code(t, 40144, 401);
    } else {
      verify_ok(t, &j);
      jwt_clear(&j);
    }
    free(t);
    free(pad);
  }

  /* Segment counts and empties. */
  const char *d2 = strrchr(NODE_SNIPPET, '.');
  char *two = strndup(NODE_SNIPPET, (size_t)(d2 - NODE_SNIPPET));
  expect_code(two, 40144, 401);
  char four[1024], five[1024];
  snprintf(four, sizeof four, "%s.AAAA", NODE_SNIPPET);
  snprintf(five, sizeof five, "%s.AAAA.AAAA", NODE_SNIPPET);
  expect_code(four, 40144, 401);
  expect_code(five, 40144, 401);
  free(two);
  expect_code("..", 40144, 401);
  expect_code("", 40144, 401);
  char *t = swap_segment(NODE_SNIPPET, 0, "");
  expect_code(t, 40144, 401);
  free(t);
  t = swap_segment(NODE_SNIPPET, 1, "");
  expect_code(t, 40144, 401);
  free(t);
  /* The length is what counts, not a NUL: bytes after a NUL are refused. */
  char withnul[1024];
  memcpy(withnul, NODE_SNIPPET, n);
  withnul[n] = '\0';
  withnul[n + 1] = 'A';
  expect_code_opts(withnul, n + 2, &o, 40144, 401);
  o.max_len = 0;
  expect_code_opts(NODE_SNIPPET, 0, &o, 40144, 401);
}

static void test_encoding(void **state) {
  (void)state;
  /* Non-base64url characters anywhere: '+', '/', ' ', '=', '%', non-ASCII. */
  static const char *const subs[] = {"+", "/", " ", "=", "%", "\xc3\xa9", "\n"};
  size_t n = strlen(NODE_SNIPPET);
  for (int seg = 0; seg < 3; seg++) {
    for (size_t k = 0; k < sizeof subs / sizeof subs[0]; k++) {
      char t[1024];
      const char *at = seg == 0 ? NODE_SNIPPET + 4 : strchr(NODE_SNIPPET, '.') + 4;
      if (seg == 2) at = strrchr(NODE_SNIPPET, '.') + 4;
      size_t off = (size_t)(at - NODE_SNIPPET);
      snprintf(t, sizeof t, "%.*s%s%s", (int)off, NODE_SNIPPET, subs[k], NODE_SNIPPET + off + 1);
      expect_code(t, 40144, 401);
    }
  }
  (void)n;
  /* Padding: standard base64 segments with '=' (header of 36 bytes pads). */
  const char *hdr = "{\"alg\":\"HS256\",\"kid\":\"sbtest.k1\"}  ";
  char *t = craft(hdr, "{\"iat\":1795348260,\"exp\":1795351860}");
  sw_jwt_t j;
  verify_ok(t, &j); /* sanity: the unpadded form is fine */
  jwt_clear(&j);
  char padded[1024];
  const char *d1 = strchr(t, '.');
  snprintf(padded, sizeof padded, "%.*s==%s", (int)(d1 - t), t, d1);
  expect_code(padded, 40144, 401);
  free(t);
  t = swap_segment(NODE_SNIPPET, 2, "nIS3RkPs9zjFM8xWY5s5OVTj8We8VktP4H3tubAbHwE=");
  expect_code(t, 40144, 401);
  free(t);
  /* Header or claims that are not JSON objects, or carry duplicates. */
  static const char *const bad_headers[] = {
      "[\"HS256\"]", "\"HS256\"", "{\"alg\":\"HS256\",\"kid\":\"sbtest.k1\"", "null",
      "{\"alg\":\"none\",\"alg\":\"HS256\",\"kid\":\"sbtest.k1\"}",
      "{\"alg\":\"HS256\",\"kid\":\"sbtest.k1\",\"crit\":[\"exp\"]}",
      "{\"alg\":\"HS256\",\"typ\":\"JWS\",\"kid\":\"sbtest.k1\"}",
      "{\"alg\":\"HS256\",\"typ\":1,\"kid\":\"sbtest.k1\"}",
  };
  for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
    t = craft(bad_headers[i], "{\"iat\":1795348260,\"exp\":1795351860}");
    expect_code(t, 40144, 401);
    free(t);
  }
  /* typ is case-insensitive and optional. */
  t = craft("{\"alg\":\"HS256\",\"typ\":\"jwt\",\"kid\":\"sbtest.k1\"}", "{\"iat\":1795348260,\"exp\":1795351860}");
  verify_ok(t, &j);
  jwt_clear(&j);
  free(t);
  static const char *const bad_claims[] = {
      "[1795348260,1795351860]", "1795351860", "{\"iat\":1795348260,\"exp\":1795351860",
      "{\"iat\":1795348260,\"exp\":1795351860,\"exp\":1895351860}",
  };
  for (size_t i = 0; i < sizeof bad_claims / sizeof bad_claims[0]; i++) {
    t = craft(HDR, bad_claims[i]);
    expect_code(t, 40144, 401);
    free(t);
  }
}

static void test_times(void **state) {
  (void)state;
  sw_jwt_t j;
  sw_jwt_opts_t o = opts_at(NOW_MS);
  /* RSA4b1: expiry is judged by the server's clock, so a token that expired
   * a second ago is refused also with 30 s of leeway (which is for iat);
   * one that expires a second from now is accepted. */
  char *t = craft(HDR, "{\"iat\":1795348200,\"exp\":1795348319}");
  expect_code(t, 40142, 401);
  o.leeway_ms = 30000;
  expect_code_opts(t, strlen(t), &o, 40142, 401);
  free(t);
  t = craft(HDR, "{\"iat\":1795348200,\"exp\":1795348321}");
  verify_ok_opts(t, &o, &j);
  jwt_clear(&j);
  free(t);
  /* Issued 40 s in the future: refused without leeway, and with 30 s. */
  t = craft(HDR, "{\"iat\":1795348360,\"exp\":1795351860}");
  expect_code(t, 40144, 401);
  expect_code_opts(t, strlen(t), &o, 40144, 401);
  o.leeway_ms = 60000;
  verify_ok_opts(t, &o, &j);
  jwt_clear(&j);
  free(t);
  o.leeway_ms = 0;
  /* nbf in the future. */
  expect_claims(",\"nbf\":1795348400", 40144, 401);
  t = claims_with(",\"nbf\":1795348300");
  char *tt = craft(HDR, t);
  verify_ok(tt, &j);
  jwt_clear(&j);
  free(tt);
  free(t);
  /* exp before or equal to iat. */
  t = craft(HDR, "{\"iat\":1795348260,\"exp\":1795348250}");
  expect_code(t, 40142, 401); /* also expired: expiry is reported first */
  free(t);
  t = craft(HDR, "{\"iat\":1795348270,\"exp\":1795348265}");
  o = opts_at(1795348262000LL);
  o.leeway_ms = 10000;
  expect_code_opts(t, strlen(t), &o, 40144, 401);
  free(t);
  t = craft(HDR, "{\"iat\":1795348260,\"exp\":1795348260}");
  o = opts_at(1795348250000LL);
  expect_code_opts(t, strlen(t), &o, 40144, 401);
  free(t);
  /* TTL: exactly 24 h passes, one second more is 40003; a 1 h cap for a
   * revocable key. */
  t = craft(HDR, "{\"iat\":1795348260,\"exp\":1795434660}");
  verify_ok(t, &j);
  jwt_clear(&j);
  o = opts_at(NOW_MS);
  o.max_ttl_ms = 3600 * 1000;
  expect_code_opts(t, strlen(t), &o, 40003, 400);
  free(t);
  expect_claims(",\"exp\":1795434661", 40144, 401); /* duplicate exp */
  t = craft(HDR, "{\"iat\":1795348260,\"exp\":1795434661}");
  expect_code(t, 40003, 400);
  free(t);
  /* Fractional seconds are taken to the millisecond. */
  t = craft(HDR, "{\"iat\":1795348260.25,\"exp\":1795351860.5}");
  verify_ok(t, &j);
  assert_int_equal(j.iat_ms, 1795348260250LL);
  assert_int_equal(j.exp_ms, 1795351860500LL);
  jwt_clear(&j);
  free(t);
  /* now_ms 0 means the wall clock: the fixture from 2026-11 is judged by
   * today's date, so only check it does not crash and answers sensibly. */
  o = opts_at(0);
  keyring_t kr = keyring();
  sw_error_t err = {0};
  int rc = jwt_verify(NODE_SNIPPET, strlen(NODE_SNIPPET), lookup, &kr, &o, &j, &err);
  assert_true(rc == 0 || err.code == 40142 || err.code == 40144);
  jwt_clear(&j);
}

static void test_claim_types(void **state) {
  (void)state;
  static const char *const missing[] = {
      "{\"exp\":1795351860}", "{\"iat\":1795348260}", "{}",
  };
  for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
    char *t = craft(HDR, missing[i]);
    expect_code(t, 40144, 401);
    free(t);
  }
  static const char *const wrong_times[] = {
      "{\"iat\":\"1795348260\",\"exp\":1795351860}", "{\"iat\":1795348260,\"exp\":\"1795351860\"}",
      "{\"iat\":true,\"exp\":1795351860}",           "{\"iat\":null,\"exp\":1795351860}",
      "{\"iat\":-1,\"exp\":1795351860}",             "{\"iat\":1795348260,\"exp\":1795351860000}",
      "{\"iat\":1795348260,\"exp\":[1795351860]}",   "{\"iat\":1795348260,\"exp\":1e400}",
      "{\"iat\":1795348260,\"exp\":1795351860,\"nbf\":\"x\"}",
  };
  for (size_t i = 0; i < sizeof wrong_times / sizeof wrong_times[0]; i++) {
    char *t = craft(HDR, wrong_times[i]);
    expect_code(t, 40144, 401);
    free(t);
  }
  static const char *const wrong_ably[] = {
      ",\"x-ably-capability\":\"\"",       ",\"x-ably-capability\":5",
      ",\"x-ably-capability\":null",       ",\"x-ably-capability\":[\"*\"]",
      ",\"x-ably-clientId\":\"\"",         ",\"x-ably-clientId\":42",
      ",\"x-ably-clientId\":null",         ",\"x-ably-clientId\":\"a\\u0000b\"",
      ",\"x-ably-revocation-key\":\"\"",   ",\"x-ably-revocation-key\":7",
      ",\"x-ably-clientType\":[\"server\"]", ",\"ably.channel.\":\"x\"",
      ",\"x-switchboard-workspace\":\"\"",  ",\"x-switchboard-workspace\":3",
  };
  for (size_t i = 0; i < sizeof wrong_ably / sizeof wrong_ably[0]; i++) expect_claims(wrong_ably[i], 40144, 401);

  /* Well-typed Ably claims all come back. */
  char *c = claims_with(",\"x-ably-clientType\":\"server\",\"x-ably-revocation-key\":\"grp\","
                        "\"ably.channel.a:*\":{\"role\":\"x\"},\"ably.channel.b\":\"y\",\"x-ably-other\":1");
  char *t = craft(HDR, c);
  sw_jwt_t j;
  verify_ok(t, &j);
  assert_string_equal(j.client_type, "server");
  assert_string_equal(j.revocation_key, "grp");
  assert_int_equal(json_object_size(j.channel_claims), 2);
  assert_string_equal(json_string_value(json_object_get(json_object_get(j.channel_claims, "a:*"), "role")), "x");
  assert_string_equal(json_string_value(json_object_get(j.channel_claims, "b")), "y");
  jwt_clear(&j);
  free(t);
  free(c);
}

static void test_embedded(void **state) {
  (void)state;
  sw_jwt_t j;
  /* Third-party outer JWT (RS256, unverifiable signature) with an Ably token
   * in the header: its capability claim must not come back. */
  const char *hdr = "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"x-ably-token\":\"sbtest.Zm9vYmFy\"}";
  char *t = craft(hdr, "{\"exp\":1795351000,\"x-ably-capability\":\"{\\\"*\\\":[\\\"*\\\"]}\",\"x-ably-clientId\":\"root\"}");
  verify_ok(t, &j);
  assert_string_equal(j.embedded_token, "sbtest.Zm9vYmFy");
  assert_int_equal(j.exp_ms, 1795351000000LL);
  assert_int_equal(j.iat_ms, 0);
  assert_string_equal(j.kid, "");
  assert_null(j.capability);
  assert_null(j.client_id);
  jwt_clear(&j);
  /* Outer expired; nested embedding refused. */
  sw_jwt_opts_t o = opts_at(1795351000000LL);
  expect_code_opts(t, strlen(t), &o, 40142, 401);
  o = opts_at(NOW_MS);
  o.forbid_embedded = true;
  expect_code_opts(t, strlen(t), &o, 40144, 401);
  free(t);
  /* As a claim, with no kid and an alg we would never verify. */
  t = craft("{\"alg\":\"ES256\"}", "{\"exp\":1795351000,\"iat\":1795348000,\"x-ably-token\":\"" "sbtest.abc" "\"}");
  verify_ok(t, &j);
  assert_string_equal(j.embedded_token, "sbtest.abc");
  assert_int_equal(j.iat_ms, 1795348000000LL);
  jwt_clear(&j);
  free(t);
  /* Signed by our key and embedding: the inner token still rules. */
  t = craft(HDR, "{\"iat\":1795348260,\"exp\":1795351000,\"x-ably-token\":\"inner\",\"x-ably-clientId\":\"c\"}");
  verify_ok(t, &j);
  assert_string_equal(j.embedded_token, "inner");
  assert_string_equal(j.kid, "");
  assert_null(j.client_id);
  jwt_clear(&j);
  free(t);
  /* Malformed embeddings. */
  static const char *const bad[][2] = {
      {"{\"alg\":\"RS256\",\"x-ably-token\":\"\"}", "{\"exp\":1795351000}"},
      {"{\"alg\":\"RS256\",\"x-ably-token\":5}", "{\"exp\":1795351000}"},
      {"{\"alg\":\"RS256\",\"x-ably-token\":\"a\"}", "{\"iat\":1795348000}"},
      {"{\"alg\":\"RS256\",\"x-ably-token\":\"a\"}", "{\"exp\":\"soon\"}"},
      {"{\"alg\":\"RS256\",\"x-ably-token\":\"a\"}", "[1]"},
      {"{\"alg\":\"RS256\",\"x-ably-token\":\"a\"}", "{\"exp\":1795351000,\"x-ably-token\":\"b\"}"},
      {"{\"alg\":\"RS256\",\"x-ably-token\":\"a\"}", "{\"exp\":1795351000,\"iat\":1795349000}"},
      {"{\"alg\":\"RS256\"}", "{\"exp\":1795351000,\"x-ably-token\":null}"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    t = craft(bad[i][0], bad[i][1]);
    expect_code(t, 40144, 401);
    free(t);
  }
}

static void test_looks_like(void **state) {
  (void)state;
  assert_true(jwt_looks_like(NODE_SNIPPET, strlen(NODE_SNIPPET)));
  assert_true(jwt_looks_like("a.b.", 4)); /* alg none shape: still routed to JWT checks */
  assert_true(jwt_looks_like("a-_.b.c", 7));
  assert_false(jwt_looks_like("appid.tokenbytes", 16)); /* Ably token */
  assert_false(jwt_looks_like("app.key:secret", 14));   /* API key */
  assert_false(jwt_looks_like(".b.c", 4));
  assert_false(jwt_looks_like("a..c", 4));
  assert_false(jwt_looks_like("a.b.c.d", 7));
  assert_false(jwt_looks_like("a.b.c=", 6));
  assert_false(jwt_looks_like("a+b.c.d", 7));
  assert_false(jwt_looks_like("", 0));
  assert_false(jwt_looks_like(NULL, 0));
}

/* ---- the fast scanner against jansson ---- */

static bool same_str(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

/* Verifies craft(header, claims) with the scanner and with jansson alone;
 * both must give the same answer. Returns the code (0 on success). */
static int both_ways(const char *header, const char *claims) {
  char *t = craft(header, claims);
  keyring_t kr = keyring();
  sw_jwt_opts_t fast = opts_at(NOW_MS), ref = opts_at(NOW_MS);
  ref.jansson_only = true;
  sw_jwt_t a, b;
  sw_error_t ea = {0}, eb = {0};
  int ra = jwt_verify(t, strlen(t), lookup, &kr, &fast, &a, &ea);
  int rb = jwt_verify(t, strlen(t), lookup, &kr, &ref, &b, &eb);
  if (ra != rb || ea.code != eb.code || strcmp(ea.message, eb.message) != 0)
    fail_msg("%s / %s: scanner %d %s, jansson %d %s", header, claims, ea.code, ea.message, eb.code, eb.message);
  assert_string_equal(a.kid, b.kid);
  assert_int_equal(a.iat_ms, b.iat_ms);
  assert_int_equal(a.exp_ms, b.exp_ms);
  assert_true(same_str(a.capability, b.capability));
  assert_true(same_str(a.client_id, b.client_id));
  assert_true(same_str(a.revocation_key, b.revocation_key));
  assert_true(same_str(a.client_type, b.client_type));
  assert_true(same_str(a.embedded_token, b.embedded_token));
  assert_true((!a.channel_claims && !b.channel_claims) || json_equal(a.channel_claims, b.channel_claims));
  jwt_clear(&a);
  jwt_clear(&b);
  free(t);
  return ea.code;
}

static void test_scanner_agrees(void **state) {
  (void)state;
  static const struct {
    const char *claims;
    int code;
  } cases[] = {
      /* What the scanner reads itself. */
      {"{\"iat\":1795348260,\"exp\":1795351860}", 0},
      {" {\n\"iat\" : 1795348260 ,\t\"exp\":1795351860 }\r\n", 0},
      {"{\"iat\":1795348260,\"exp\":1795351860,\"x-ably-clientId\":\"a\\\"b\\\\c\\/d\\te\"}", 0},
      {"{\"iat\":1795348260,\"exp\":1795351860,\"t\":true,\"f\":false,\"n\":null,\"z\":-0}", 0},
      {"{\"iat\":1795348260,\"exp\":1795351860,\"big\":999999999999999999}", 0},
      {"{\"iat\":1795348260,\"exp\":1795351860,\"ably.channel.c\":7,\"ably.channel.d\":\"x\\ny\"}", 0},
      {"{\"iat\":1795348260,\"exp\":1795351860,\"\":1}", 0},
      /* What it leaves to jansson, accepted. */
      {"{\"iat\":1795348260,\"exp\":1795351860,\"x-ably-clientId\":\"\\u00e9\\ud83d\\ude00\"}", 0},
      {"{\"iat\":1795348260,\"exp\":1795351860,\"x-ably-clientId\":\"\xc3\xa9\"}", 0},
      {"{\"iat\":1795348260,\"exp\":1795351860,\"x-ably-cl\\u0069entId\":\"esc\"}", 0},
      {"{\"iat\":1795348260.0,\"exp\":17953518.6e2}", 0},
      {"{\"iat\":1795348260,\"exp\":1795351860,\"ably.channel.n\":{\"a\":[1,{\"b\":null}]}}", 0},
      {"{\"iat\":1795348260,\"exp\":1795351860,\"x-ably-capability\":{\"a\":[\"publish\"]}}", 0},
      /* ...and refused by both. */
      {"{\"iat\":1795348260,\"exp\":1795351860,\"big\":1234567890123456789012}", 40144},
      {"{\"iat\":1795348260,\"exp\":1795351860,\"x\":01}", 40144},
      {"{\"iat\":1795348260,\"exp\":1795351860,\"x\":\"\\u0000\"}", 40144},
      {"{\"iat\":1795348260,\"exp\":1795351860,\"x\":\"\\x\"}", 40144},
      {"{\"iat\":1795348260,\"exp\":1795351860,\"x\":\"a\tb\"}", 40144},
      {"{\"iat\":1795348260,\"exp\":1795351860,\"x\":\"\xc3\"}", 40144},
      {"{\"iat\":1795348260,\"exp\":1795351860,\"x\":tru}", 40144},
      {"{\"iat\":1795348260,\"exp\":1795351860,}", 40144},
      {"{\"iat\":1795348260,\"exp\":1795351860} x", 40144},
      {"{\"iat\":1795348260,\"exp\":1795351860,\"a\":1,\"a\":1}", 40144},
      {"{\"iat\":1795348260,\"exp\":1795351860,\"x-ably-clientId\":\"x\",\"x-ably-cl\\u0069entId\":\"y\"}", 40144},
      {"{\"iat\":-5,\"exp\":1795351860}", 40144},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int code = both_ways(HDR, cases[i].claims);
    if (code != cases[i].code) fail_msg("case %zu (%s): got %d, want %d", i, cases[i].claims, code, cases[i].code);
  }
  /* More members than the scanner holds. */
  char many[2048] = "{\"iat\":1795348260,\"exp\":1795351860";
  for (int k = 0; k < 40; k++) snprintf(many + strlen(many), sizeof many - strlen(many), ",\"m%d\":%d", k, k);
  strcat(many, "}");
  assert_int_equal(both_ways(HDR, many), 0);
  /* Headers too, including an escaped kid. */
  assert_int_equal(both_ways("{\"alg\":\"HS256\",\"kid\":\"sbtest.k\\u0031\"}", "{\"iat\":1795348260,\"exp\":1795351860}"), 0);
  assert_int_equal(both_ways("{\"alg\":\"HS\\u0032\\u00356\",\"kid\":\"sbtest.k1\"}", "{\"iat\":1795348260,\"exp\":1795351860}"), 0);
  assert_int_equal(both_ways("{\"alg\":\"HS256\",\"kid\":\"sbtest.k1\",\"typ\":\"J\\/T\"}", "{\"iat\":1795348260,\"exp\":1795351860}"), 40144);
}

/* ---- b64url ---- */

static void test_b64url(void **state) {
  (void)state;
  /* RFC 4648 section 10 vectors, unpadded. */
  static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  static const char *const enc[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
  for (size_t i = 0; i < 7; i++) {
    char out[16];
    assert_int_equal(b64url_encode((const uint8_t *)plain[i], strlen(plain[i]), out, sizeof out),
                     (long)strlen(enc[i]));
    assert_string_equal(out, enc[i]);
    uint8_t dec[16];
    long n = b64url_decode(enc[i], strlen(enc[i]), dec, sizeof dec);
    assert_int_equal(n, (long)strlen(plain[i]));
    assert_memory_equal(dec, plain[i], (size_t)n);
    assert_int_equal(b64url_decoded_len(strlen(enc[i])), strlen(plain[i]));
    assert_int_equal(b64url_encoded_len(strlen(plain[i])), strlen(enc[i]));
  }
  /* The two URL-safe characters. */
  const uint8_t bytes[] = {0xfb, 0xff, 0xbf};
  char out[8];
  b64url_encode(bytes, 3, out, sizeof out);
  assert_string_equal(out, "-_-_");
  uint8_t dec[8];
  assert_int_equal(b64url_decode("-_-_", 4, dec, sizeof dec), 3);
  assert_memory_equal(dec, bytes, 3);
  /* Refusals: standard alphabet, padding, bad lengths, dirty low bits, small
   * output buffers. */
  assert_int_equal(b64url_decode("+/+/", 4, dec, sizeof dec), -1);
  assert_int_equal(b64url_decode("Zg==", 4, dec, sizeof dec), -1);
  assert_int_equal(b64url_decode("Z", 1, dec, sizeof dec), -1);
  assert_int_equal(b64url_decode("Zm9vY", 5, dec, sizeof dec), -1);
  assert_int_equal(b64url_decode("Zh", 2, dec, sizeof dec), -1);  /* "Zg" with a stray bit */
  assert_int_equal(b64url_decode("Zm9", 3, dec, sizeof dec), -1); /* "Zm8" likewise */
  assert_int_equal(b64url_decode("Zm 9v", 5, dec, sizeof dec), -1);
  assert_int_equal(b64url_decode("Zm9v", 4, dec, 2), -1);
  assert_int_equal(b64url_encode((const uint8_t *)"foo", 3, out, 4), -1);
  /* Long input crosses the chunking. */
  uint8_t big[3000], back[3000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 31 + 7);
  for (size_t len = 1990; len < 2010; len++) {
    char *e = malloc(b64url_encoded_len(len) + 1);
    assert_int_equal(b64url_encode(big, len, e, b64url_encoded_len(len) + 1), (long)b64url_encoded_len(len));
    assert_int_equal(b64url_decode(e, strlen(e), back, sizeof back), (long)len);
    assert_memory_equal(back, big, len);
    free(e);
  }
}

/* The reference for b64url_decode: OpenSSL's base64 on a translated copy,
 * with base64url's strictness added (what b64url.c did before its own
 * loop). Returns the decoded length or -1, like b64url_decode. */
static long ref_decode(const char *in, size_t n, uint8_t *out, size_t outcap) {
  if (n % 4 == 1 || outcap < b64url_decoded_len(n)) return -1;
  unsigned char t[64] = {0};
  uint8_t tmp[64];
  assert_true(n + 4 <= sizeof t);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c == '+' || c == '/' || c == '=' || c <= ' ' || c >= 0x7f) return -1;
    t[i] = c == '-' ? '+' : c == '_' ? '/' : c;
  }
  size_t padded = (n + 3) / 4 * 4;
  for (size_t i = n; i < padded; i++) t[i] = '=';
  int got = n ? EVP_DecodeBlock(tmp, t, (int)padded) : 0;
  if (got != (int)(padded / 4 * 3)) return -1;
  long len = (long)b64url_decoded_len(n);
  /* Canonical: encoding the bytes again gives back the same text. */
  char back[64];
  b64url_encode(tmp, (size_t)len, back, sizeof back);
  if (strlen(back) != n || memcmp(back, in, n) != 0) return -1;
  memcpy(out, tmp, (size_t)len);
  return len;
}

/* b64url_decode is a table loop of its own (docs/benchmarks.md says why);
 * it must agree with OpenSSL on every input: all strings of up to 3 bytes,
 * then random ones mixing the alphabet with near misses. */
static void test_b64url_matches_openssl(void **state) {
  (void)state;
  char s[40];
  uint8_t a[40], b[40];
  for (unsigned x = 0; x < 1u << 24; x += x < 1u << 16 ? 1 : 7) {
    s[0] = (char)x, s[1] = (char)(x >> 8), s[2] = (char)(x >> 16);
    for (size_t n = 1; n <= 3; n++) {
      long ra = ref_decode(s, n, a, sizeof a), rb = b64url_decode(s, n, b, sizeof b);
      assert_int_equal(ra, rb);
      if (ra > 0) assert_memory_equal(a, b, (size_t)ra);
    }
  }
  static const char pool[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/= \n\t\r.\x80\xff";
  uint32_t rng = 12345;
  for (int it = 0; it < 300000; it++) {
    rng = rng * 1103515245u + 12345u;
    size_t n = (rng >> 8) % 33;
    bool dirty = (rng >> 20) % 4 == 0;
    for (size_t i = 0; i < n; i++) {
      rng = rng * 1103515245u + 12345u;
      s[i] = pool[(rng >> 8) % (dirty ? sizeof pool - 1 : 64)];
    }
    size_t cap = (rng >> 24) % 8 == 0 ? (rng >> 16) % 25 : sizeof a;
    long ra = ref_decode(s, n, a, cap), rb = b64url_decode(s, n, b, cap);
    assert_int_equal(ra, rb);
    if (ra > 0) assert_memory_equal(a, b, (size_t)ra);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_node_snippet),  cmocka_unit_test(test_node_fixtures),
      cmocka_unit_test(test_sign_roundtrip), cmocka_unit_test(test_cache),
      cmocka_unit_test(test_hmac_matches_openssl), cmocka_unit_test(test_header_memo),
      cmocka_unit_test(test_alg_none_and_others), cmocka_unit_test(test_kid_attacks),
      cmocka_unit_test(test_tampering),     cmocka_unit_test(test_size_and_shape),
      cmocka_unit_test(test_encoding),      cmocka_unit_test(test_times),
      cmocka_unit_test(test_claim_types),   cmocka_unit_test(test_embedded),
      cmocka_unit_test(test_looks_like),    cmocka_unit_test(test_b64url),
      cmocka_unit_test(test_scanner_agrees), cmocka_unit_test(test_b64url_matches_openssl),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
