/* Unit tests for auth/token: minting, verification, tampering, expiry,
 * the shape of token strings, and the payload decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "auth/jwt.h"
#include "auth/token.h"

/* ---- helpers ---- */

static const uint8_t SECRET[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

#define NOW 1700000000000LL

static void info_init(sw_token_info_t *t, const char *key_name, const char *cap, const char *cid,
                      const char *rk) {
  memset(t, 0, sizeof *t);
  snprintf(t->key_name, sizeof t->key_name, "%s", key_name);
  t->issued = NOW;
  t->expires = NOW + 3600000;
  t->capability = cap ? strdup(cap) : NULL;
  t->client_id = cid ? strdup(cid) : NULL;
  t->revocation_key = rk ? strdup(rk) : NULL;
}

static void assert_str_or_null(const char *a, const char *b) {
  if (!a || !b)
    assert_ptr_equal(a, b);
  else
    assert_string_equal(a, b);
}

static void assert_info_equal(const sw_token_info_t *a, const sw_token_info_t *b) {
  assert_string_equal(a->key_name, b->key_name);
  assert_int_equal(a->issued, b->issued);
  assert_int_equal(a->expires, b->expires);
  assert_string_equal(a->capability, b->capability);
  assert_str_or_null(a->client_id, b->client_id);
  assert_int_equal(a->revocable, b->revocable);
  assert_str_or_null(a->revocation_key, b->revocation_key);
}

/* What a JWT detector would match: exactly three non-empty dot-separated
 * base64url segments. Our tokens must never look like this. */
static bool jwt_shape(const char *s) {
  int segs = 1;
  size_t run = 0;
  for (; *s; s++) {
    if (*s == '.') {
      if (!run) return false;
      segs++;
      run = 0;
    } else if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
               *s == '-' || *s == '_') {
      run++;
    } else {
      return false;
    }
  }
  return segs == 3 && run;
}

static int verify_code(const char *tok, size_t n, int64_t now) {
  sw_token_info_t out;
  sw_error_t err = {0};
  int rc = token_verify(SECRET, tok, n, now, &out, &err);
  if (rc == 0) {
    token_info_clear(&out);
    return 0;
  }
  assert_int_equal(rc, -1);
  assert_int_equal(err.status, err.code == 50000 ? 500 : 401);
  /* An error leaves nothing to free. */
  assert_null(out.capability);
  return err.code;
}

/* Base64url body of a token, decoded, for looking inside. */
static uint8_t *raw_body(const char *tok, size_t *len) {
  const char *b = tok + SW_TOKEN_PREFIX_LEN;
  size_t n = strlen(b), pad = (4 - n % 4) % 4;
  char *std = malloc(n + pad + 1);
  for (size_t i = 0; i < n; i++) std[i] = b[i] == '-' ? '+' : b[i] == '_' ? '/' : b[i];
  memset(std + n, '=', pad);
  std[n + pad] = 0;
  uint8_t *out = malloc(n + 4);
  int m = EVP_DecodeBlock(out, (unsigned char *)std, (int)(n + pad));
  free(std);
  assert_true(m >= 0);
  *len = (size_t)m - pad;
  return out;
}

/* ---- round trips ---- */

static void test_round_trip_full(void **state) {
  (void)state;
  sw_token_info_t in, out;
  info_init(&in, "appId.keyId", "{\"ch:*\":[\"publish\",\"subscribe\"]}", "user-1", "group:1");
  in.revocable = true;
  char *tok = token_mint(SECRET, &in);
  assert_non_null(tok);
  assert_memory_equal(tok, "sbt1.", 5);
  sw_error_t err = {0};
  assert_int_equal(token_verify(SECRET, tok, strlen(tok), NOW, &out, &err), 0);
  assert_info_equal(&in, &out);
  token_info_clear(&out);
  assert_null(out.capability);
  assert_int_equal(out.key_name[0], 0);
  free(tok);
  token_info_clear(&in);
}

static void test_round_trip_optional_absent(void **state) {
  (void)state;
  const char *cids[] = {NULL, "*", "", "ü-client"};
  for (size_t i = 0; i < sizeof cids / sizeof *cids; i++) {
    sw_token_info_t in, out;
    info_init(&in, "a.b", "{\"*\":[\"*\"]}", cids[i], NULL);
    in.expires = in.issued + 1; /* ttl 1 ms, as ably-js tests use */
    char *tok = token_mint(SECRET, &in);
    assert_non_null(tok);
    assert_int_equal(token_verify(SECRET, tok, strlen(tok), NOW, &out, NULL), 0);
    assert_info_equal(&in, &out);
    token_info_clear(&out);
    free(tok);
    token_info_clear(&in);
  }
}

static void test_not_nul_terminated_input(void **state) {
  (void)state;
  sw_token_info_t in;
  info_init(&in, "a.b", "{}", NULL, NULL);
  char *tok = token_mint(SECRET, &in);
  size_t n = strlen(tok);
  char *copy = malloc(n); /* exactly n bytes, no terminator: ASan checks */
  memcpy(copy, tok, n);
  assert_int_equal(verify_code(copy, n, NOW), 0);
  free(copy);
  free(tok);
  token_info_clear(&in);
}

static void test_unique_and_encrypted(void **state) {
  (void)state;
  sw_token_info_t in;
  info_init(&in, "app.key", "{\"confidential-channel-name\":[\"subscribe\"]}", "secret-client-id",
            "rk-value");
  char *a = token_mint(SECRET, &in), *b = token_mint(SECRET, &in);
  assert_non_null(a);
  assert_non_null(b);
  assert_string_not_equal(a, b); /* a random IV per token */
  /* Nothing of the payload is readable without the secret (Ably tokens keep
   * capabilities confidential, unlike JWTs). */
  size_t len;
  uint8_t *raw = raw_body(a, &len);
  assert_null(memmem(raw, len, "confidential", 12));
  assert_null(memmem(raw, len, "secret-client", 13));
  assert_null(memmem(raw, len, "app.key", 7));
  assert_null(memmem(raw, len, "rk-value", 8));
  free(raw);
  free(a);
  free(b);
  token_info_clear(&in);
}

/* ---- tampering ---- */

static void test_tamper_every_position(void **state) {
  (void)state;
  sw_token_info_t in;
  info_init(&in, "appId.keyId", "{\"*\":[\"*\"]}", "c", NULL);
  char *tok = token_mint(SECRET, &in);
  size_t n = strlen(tok);
  for (size_t i = 0; i < n; i++) {
    char *t = strdup(tok);
    /* Another character of the same alphabet, so only the content changes. */
    t[i] = t[i] == 'A' ? 'B' : 'A';
    int code = verify_code(t, n, NOW);
    if (i < SW_TOKEN_PREFIX_LEN)
      assert_int_equal(code, 40145); /* not our prefix */
    else if (i < n - 1)
      assert_int_equal(code, 40143); /* bad tag */
    else
      assert_true(code == 40143 || code == 40145); /* last char may be non-canonical */
    free(t);
  }
  free(tok);
  token_info_clear(&in);
}

static void test_tamper_shape(void **state) {
  (void)state;
  sw_token_info_t in;
  info_init(&in, "appId.keyId", "{\"*\":[\"*\"]}", NULL, NULL);
  char *tok = token_mint(SECRET, &in);
  size_t n = strlen(tok);
  char buf[4096];
  assert_true(n + 8 < sizeof buf);

  /* Truncations: every length is refused. */
  for (size_t k = 0; k < n; k++) {
    int code = verify_code(tok, k, NOW);
    assert_true(code == 40143 || code == 40145);
  }
  /* Dropping 4 characters keeps valid base64url: the tag no longer matches. */
  assert_int_equal(verify_code(tok, n - 4, NOW), 40143);
  /* Appended data. */
  snprintf(buf, sizeof buf, "%s=", tok);
  assert_int_equal(verify_code(buf, n + 1, NOW), 40145);
  snprintf(buf, sizeof buf, "%sAAAA", tok);
  assert_int_equal(verify_code(buf, n + 4, NOW), 40143);
  snprintf(buf, sizeof buf, "%s.x", tok);
  assert_int_equal(verify_code(buf, n + 2, NOW), 40145);
  /* Standard base64 characters are not base64url. */
  memcpy(buf, tok, n + 1);
  buf[10] = '+';
  assert_int_equal(verify_code(buf, n, NOW), 40145);
  /* Prefix variants. */
  memcpy(buf, tok, n + 1);
  buf[3] = '2';
  assert_int_equal(verify_code(buf, n, NOW), 40145);
  buf[3] = '1';
  buf[0] = 'S';
  assert_int_equal(verify_code(buf, n, NOW), 40145);
  assert_int_equal(verify_code(tok + 5, n - 5, NOW), 40145);
  assert_int_equal(verify_code("", 0, NOW), 40145);
  assert_int_equal(verify_code("sbt1.", 5, NOW), 40145);
  assert_int_equal(verify_code(NULL, 0, NOW), 40145);
  free(tok);
  token_info_clear(&in);
}

/* The unused low bits of the last base64url character must be zero: one
 * token, one spelling (so tokens can be compared and logged as strings). */
static void test_non_canonical_base64url(void **state) {
  (void)state;
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  int tried = 0;
  for (int extra = 0; extra < 3; extra++) {
    char cap[8] = "{}";
    for (int i = 0; i < extra; i++) strcat(cap, " ");
    sw_token_info_t in;
    info_init(&in, "a.b", cap, NULL, NULL);
    char *tok = token_mint(SECRET, &in);
    size_t n = strlen(tok);
    if ((n - SW_TOKEN_PREFIX_LEN) % 4 != 0) {
      tried++;
      assert_int_equal(verify_code(tok, n, NOW), 0);
      size_t v = (size_t)(strchr(alphabet, tok[n - 1]) - alphabet);
      tok[n - 1] = alphabet[v ^ 1]; /* only an unused bit changes */
      assert_int_equal(verify_code(tok, n, NOW), 40145);
    }
    free(tok);
    token_info_clear(&in);
  }
  assert_int_equal(tried, 2); /* both partial-group lengths were covered */
}

static void test_wrong_secret(void **state) {
  (void)state;
  sw_token_info_t in;
  info_init(&in, "appId.keyId", "{\"*\":[\"*\"]}", NULL, NULL);
  char *tok = token_mint(SECRET, &in);
  uint8_t other[32];
  memcpy(other, SECRET, 32);
  other[31] ^= 0x80;
  sw_token_info_t out;
  sw_error_t err = {0};
  assert_int_equal(token_verify(other, tok, strlen(tok), NOW, &out, &err), -1);
  assert_int_equal(err.code, 40143);
  assert_int_equal(err.status, 401);
  /* Error messages never carry the token. */
  assert_null(strstr(err.message, tok + 5));
  assert_null(strstr(err.message, "sbt1"));
  free(tok);
  token_info_clear(&in);
}

static void test_expiry(void **state) {
  (void)state;
  sw_token_info_t in;
  info_init(&in, "appId.keyId", "{\"*\":[\"*\"]}", NULL, NULL);
  in.expires = NOW + 123;
  char *tok = token_mint(SECRET, &in);
  size_t n = strlen(tok);
  assert_int_equal(verify_code(tok, n, NOW), 0);
  assert_int_equal(verify_code(tok, n, NOW + 122), 0);
  assert_int_equal(verify_code(tok, n, NOW + 123), 40142); /* now >= expires */
  assert_int_equal(verify_code(tok, n, INT64_MAX), 40142);
  /* A token is not refused for being used before its issue time (clock skew
   * between processes is not the client's fault). */
  assert_int_equal(verify_code(tok, n, NOW - 100000), 0);
  sw_error_t err = {0};
  sw_token_info_t out;
  assert_int_equal(token_verify(SECRET, tok, n, NOW + 200, &out, &err), -1);
  assert_int_equal(err.status, 401);
  free(tok);
  token_info_clear(&in);
}

/* ---- shape ---- */

static char *random_string(size_t maxlen) {
  static const char alphabet[] = ":{}[]\"\\.,*-_ abcXYZ019/+=\t\n";
  size_t n = (size_t)rand() % (maxlen + 1);
  char *s = malloc(n + 1);
  for (size_t i = 0; i < n; i++) {
    int r = rand() % 4;
    /* Mostly troublesome ASCII, some raw high bytes (never NUL). */
    s[i] = r == 0 ? (char)(0x80 + rand() % 0x80) : alphabet[(size_t)rand() % (sizeof alphabet - 1)];
  }
  s[n] = 0;
  return s;
}

static void test_shape_over_random_infos(void **state) {
  (void)state;
  srand(12345);
  for (int i = 0; i < 3000; i++) {
    sw_token_info_t in, out;
    memset(&in, 0, sizeof in);
    char *kn = random_string(127);
    if (!*kn) {
      free(kn);
      kn = strdup(":");
    }
    snprintf(in.key_name, sizeof in.key_name, "%s", kn);
    free(kn);
    in.issued = (int64_t)rand() * 1000;
    in.expires = in.issued + 1 + rand() % 86400000;
    in.capability = random_string(i % 50 == 0 ? 5000 : 200);
    in.client_id = rand() % 3 ? random_string(64) : NULL;
    in.revocation_key = rand() % 3 ? NULL : random_string(64);
    in.revocable = rand() % 2;
    char *tok = token_mint(SECRET, &in);
    assert_non_null(tok);
    size_t n = strlen(tok);
    assert_null(strchr(tok, ':'));
    assert_int_not_equal(tok[0], '{');
    assert_true(n <= SW_TOKEN_MAX_LEN);
    assert_ptr_equal(strchr(tok, '.'), tok + 4); /* the only dot */
    assert_null(strchr(tok + 5, '.'));
    assert_false(jwt_shape(tok));
    assert_false(jwt_looks_like(tok, n)); /* the server's own JWT detector */
    assert_true(token_looks_like(tok, n));
    assert_int_equal(token_verify(SECRET, tok, n, in.issued, &out, NULL), 0);
    assert_info_equal(&in, &out);
    token_info_clear(&out);
    free(tok);
    token_info_clear(&in);
  }
}

static void test_looks_like(void **state) {
  (void)state;
  static const char *no[] = {
      "",
      "sbt1.",
      "sbt1",
      "sbt1.abc=",
      "sbt1.ab.cd",
      "sbt1.ab+cd",
      "SBT1.abcd",
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjF9.c2lnbmF0dXJl", /* JWT */
      "appId.keyId:secret",                                             /* API key */
      "{\"token\":\"x\"}",                                              /* TokenDetails JSON */
      "xVLyHw.DQ2u7ifdyQ",                                              /* Ably-style token */
  };
  for (size_t i = 0; i < sizeof no / sizeof *no; i++) assert_false(token_looks_like(no[i], strlen(no[i])));
  assert_true(jwt_looks_like(no[7], strlen(no[7]))); /* the JWT above is one */
  assert_false(token_looks_like(NULL, 0));
  assert_true(token_looks_like("sbt1.AAAA", 9));
  assert_true(token_looks_like("sbt1.A-_z", 9));
  /* Only the given length is looked at. */
  assert_true(token_looks_like("sbt1.AAAA:extra", 9));

  /* The length limit. */
  char *big = malloc(SW_TOKEN_MAX_LEN + 2);
  memcpy(big, "sbt1.", 5);
  memset(big + 5, 'A', SW_TOKEN_MAX_LEN - 4);
  big[SW_TOKEN_MAX_LEN + 1] = 0;
  assert_true(token_looks_like(big, SW_TOKEN_MAX_LEN));
  assert_false(token_looks_like(big, SW_TOKEN_MAX_LEN + 1));
  assert_int_equal(verify_code(big, SW_TOKEN_MAX_LEN + 1, NOW), 40145);
  free(big);
}

/* ---- references (tokens kept server-side) ---- */

static void test_references(void **state) {
  (void)state;
  char *a = token_ref_new(), *b = token_ref_new();
  assert_non_null(a);
  assert_non_null(b);
  /* Shape: the token string rules hold (no ':', no leading '{', exactly
   * one '.'), and it is neither a sealed token nor a JWT. */
  assert_int_equal(strlen(a), SW_TOKEN_REF_LEN);
  assert_memory_equal(a, "sbr1.", 5);
  assert_null(strchr(a, ':'));
  assert_ptr_equal(strchr(a, '.'), strrchr(a, '.'));
  assert_true(token_ref_looks_like(a, strlen(a)));
  assert_false(token_looks_like(a, strlen(a)));
  assert_false(jwt_looks_like(a, strlen(a)));
  assert_string_not_equal(a, b);
  /* The store key: the SHA-256 of the reference, in hex; one per reference. */
  char ia[SW_TOKEN_REF_ID_LEN + 1], ia2[SW_TOKEN_REF_ID_LEN + 1], ib[SW_TOKEN_REF_ID_LEN + 1];
  token_ref_id(a, strlen(a), ia);
  token_ref_id(a, strlen(a), ia2);
  token_ref_id(b, strlen(b), ib);
  assert_string_equal(ia, ia2);
  assert_string_not_equal(ia, ib);
  assert_int_equal(strlen(ia), SW_TOKEN_REF_ID_LEN);
  assert_int_equal(strspn(ia, "0123456789abcdef"), SW_TOKEN_REF_ID_LEN);
  assert_null(strstr(ia, a + 5));
  char sha_abc[SW_TOKEN_REF_ID_LEN + 1];
  token_ref_id("abc", 3, sha_abc); /* FIPS 180-2 test vector */
  assert_string_equal(sha_abc, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

  /* Not references: wrong length, prefix, alphabet, or a last character
   * with unused bits set (only the canonical spelling is one). */
  char t[SW_TOKEN_REF_LEN + 2];
  memcpy(t, a, SW_TOKEN_REF_LEN + 1);
  assert_false(token_ref_looks_like(t, SW_TOKEN_REF_LEN - 1));
  assert_false(token_ref_looks_like(NULL, 0));
  t[3] = '2';
  assert_false(token_ref_looks_like(t, SW_TOKEN_REF_LEN));
  memcpy(t, a, SW_TOKEN_REF_LEN + 1);
  t[10] = '+';
  assert_false(token_ref_looks_like(t, SW_TOKEN_REF_LEN));
  memcpy(t, a, SW_TOKEN_REF_LEN + 1);
  /* 32 bytes in 43 characters leave the last 2 bits unused. */
  const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  int v = (int)(strchr(alpha, t[SW_TOKEN_REF_LEN - 1]) - alpha);
  t[SW_TOKEN_REF_LEN - 1] = alpha[v ^ 1];
  assert_false(token_ref_looks_like(t, SW_TOKEN_REF_LEN));
  memcpy(t, a, SW_TOKEN_REF_LEN + 1);
  t[SW_TOKEN_REF_LEN] = 'A';
  t[SW_TOKEN_REF_LEN + 1] = '\0';
  assert_false(token_ref_looks_like(t, SW_TOKEN_REF_LEN + 1));
  /* A sealed token is no reference. */
  sw_token_info_t info;
  info_init(&info, "app.key", "{\"*\":[\"*\"]}", NULL, NULL);
  char *tok = token_mint(SECRET, &info);
  assert_false(token_ref_looks_like(tok, strlen(tok)));
  free(tok);
  token_info_clear(&info);
  free(a);
  free(b);
}

/* ---- mint refusals and limits ---- */

static void test_mint_refusals(void **state) {
  (void)state;
  sw_token_info_t in;
  info_init(&in, "appId.keyId", "{}", NULL, NULL);
  free(in.capability);
  in.capability = NULL;
  assert_null(token_mint(SECRET, &in)); /* capability required */
  in.capability = strdup("{}");
  in.expires = in.issued;
  assert_null(token_mint(SECRET, &in)); /* ttl must be > 0 */
  in.expires = in.issued + 1;
  in.key_name[0] = 0;
  assert_null(token_mint(SECRET, &in)); /* key name required */
  memset(in.key_name, 'k', sizeof in.key_name);
  assert_null(token_mint(SECRET, &in)); /* not NUL-terminated */
  snprintf(in.key_name, sizeof in.key_name, "a.b");
  assert_null(token_mint(SECRET, NULL));
  assert_null(token_mint(NULL, &in));
  char *tok = token_mint(SECRET, &in);
  assert_non_null(tok);
  free(tok);

  /* A 64 KiB capability (the capability parser's limit) fits; 100 KiB does
   * not fit in 128 KiB of token text. */
  free(in.capability);
  in.capability = malloc(64 * 1024 + 1);
  memset(in.capability, 'c', 64 * 1024);
  in.capability[64 * 1024] = 0;
  tok = token_mint(SECRET, &in);
  assert_non_null(tok);
  assert_true(strlen(tok) <= SW_TOKEN_MAX_LEN);
  assert_int_equal(verify_code(tok, strlen(tok), NOW), 0);
  free(tok);
  free(in.capability);
  in.capability = malloc(100 * 1024 + 1);
  memset(in.capability, 'c', 100 * 1024);
  in.capability[100 * 1024] = 0;
  assert_null(token_mint(SECRET, &in));
  token_info_clear(&in);
}

/* ---- stability: a token minted by an earlier build still verifies ---- */

/* Minted once with SECRET for {key_name "fixture.key", issued 1700000000000,
 * expires 4102444800000 (2100-01-01), capability {"*":["*"]}, clientId
 * "fixture-client", revocable, revocation key "rk"}. If this fails, the
 * format changed and every token in the field would be refused after an
 * upgrade: bump the prefix and keep reading the old one instead. */
static const char FIXTURE[] =
    "sbt1.4y-tjiqHryVmV3Za6tD7mk7Ysg_9IH9yTA5nQJxe9pP4vHwmHvdqslcrbmAsNVuaM0936IQfxYf_iDfpHitI9X_eDb_"
    "FzovxEU3oKFjNw4KbC22BIjeTfK-k9Emosb_69061WlQ4P1Z6VEMn-ASjn5XWCg4N";

static void test_fixture_still_verifies(void **state) {
  (void)state;
  sw_token_info_t out;
  sw_error_t err = {0};
  assert_int_equal(token_verify(SECRET, FIXTURE, strlen(FIXTURE), NOW, &out, &err), 0);
  assert_string_equal(out.key_name, "fixture.key");
  assert_int_equal(out.issued, 1700000000000LL);
  assert_int_equal(out.expires, 4102444800000LL);
  assert_string_equal(out.capability, "{\"*\":[\"*\"]}");
  assert_string_equal(out.client_id, "fixture-client");
  assert_true(out.revocable);
  assert_string_equal(out.revocation_key, "rk");
  token_info_clear(&out);
}

/* ---- payload decoder, reached through tokens sealed with the right key ---- */

static int sealed_code(const uint8_t *payload, size_t n) {
  char *tok = token_seal(SECRET, payload, n);
  assert_non_null(tok);
  int code = verify_code(tok, strlen(tok), NOW);
  free(tok);
  return code;
}

static size_t build_payload(uint8_t *p, uint8_t version, uint8_t flags, int64_t issued, int64_t expires,
                            const char *kn, const char *cap, const char *cid, const char *rk) {
  size_t o = 0;
  p[o++] = version;
  p[o++] = flags;
  for (int i = 0; i < 8; i++) p[o++] = (uint8_t)((uint64_t)issued >> (56 - 8 * i));
  for (int i = 0; i < 8; i++) p[o++] = (uint8_t)((uint64_t)expires >> (56 - 8 * i));
  size_t kl = strlen(kn);
  p[o++] = (uint8_t)kl;
  memcpy(p + o, kn, kl), o += kl;
  const char *strs[3] = {cap, cid, rk};
  for (int s = 0; s < 3; s++) {
    if (!strs[s]) continue;
    size_t l = strlen(strs[s]);
    p[o++] = 0, p[o++] = 0, p[o++] = (uint8_t)(l >> 8), p[o++] = (uint8_t)l;
    memcpy(p + o, strs[s], l), o += l;
  }
  return o;
}

static void test_payload_decoder(void **state) {
  (void)state;
  uint8_t p[512];
  size_t n;
  int64_t i0 = NOW, e0 = NOW + 1000;

  n = build_payload(p, 1, 0x07, i0, e0, "a.b", "{}", "cid", "rk");
  assert_int_equal(sealed_code(p, n), 0);
  n = build_payload(p, 1, 0x00, i0, e0, "a.b", "{}", NULL, NULL);
  assert_int_equal(sealed_code(p, n), 0);

  /* An authentic token whose payload is invalid is 40145, not a crash. */
  n = build_payload(p, 2, 0x00, i0, e0, "a.b", "{}", NULL, NULL);
  assert_int_equal(sealed_code(p, n), 40145); /* unknown version */
  n = build_payload(p, 1, 0x08, i0, e0, "a.b", "{}", NULL, NULL);
  assert_int_equal(sealed_code(p, n), 40145); /* unknown flag */
  n = build_payload(p, 1, 0x00, i0, i0, "a.b", "{}", NULL, NULL);
  assert_int_equal(sealed_code(p, n), 40145); /* expires == issued */
  n = build_payload(p, 1, 0x00, i0, e0, "", "{}", NULL, NULL);
  assert_int_equal(sealed_code(p, n), 40145); /* empty key name */
  n = build_payload(p, 1, 0x02, i0, e0, "a.b", "{}", NULL, NULL);
  assert_int_equal(sealed_code(p, n), 40145); /* flag says clientId, none follows */
  n = build_payload(p, 1, 0x00, i0, e0, "a.b", "{}", NULL, NULL);
  p[n++] = 0;
  assert_int_equal(sealed_code(p, n), 40145); /* trailing byte */
  n = build_payload(p, 1, 0x00, i0, e0, "a.b", "{x}", NULL, NULL);
  p[n - 2] = 0;
  assert_int_equal(sealed_code(p, n), 40145); /* NUL inside a string */
  n = build_payload(p, 1, 0x00, i0, e0, "a.b", "{}", NULL, NULL);
  p[n - 3] = 0x7f; /* capability length far beyond the end */
  assert_int_equal(sealed_code(p, n), 40145);
  for (size_t k = 0; k < n; k++) assert_int_equal(sealed_code(p, k), 40145); /* every truncation */
  assert_int_equal(sealed_code((const uint8_t *)"", 0), 40145);

  /* token_open gives back exactly what was sealed. */
  n = build_payload(p, 1, 0x00, i0, e0, "a.b", "{}", NULL, NULL);
  char *tok = token_seal(SECRET, p, n);
  uint8_t *back;
  size_t blen;
  assert_int_equal(token_open(SECRET, tok, strlen(tok), &back, &blen, NULL), 0);
  assert_int_equal(blen, n);
  assert_memory_equal(back, p, n);
  free(back);
  free(tok);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip_full),
      cmocka_unit_test(test_round_trip_optional_absent),
      cmocka_unit_test(test_not_nul_terminated_input),
      cmocka_unit_test(test_unique_and_encrypted),
      cmocka_unit_test(test_tamper_every_position),
      cmocka_unit_test(test_tamper_shape),
      cmocka_unit_test(test_non_canonical_base64url),
      cmocka_unit_test(test_wrong_secret),
      cmocka_unit_test(test_expiry),
      cmocka_unit_test(test_shape_over_random_infos),
      cmocka_unit_test(test_looks_like),
      cmocka_unit_test(test_references),
      cmocka_unit_test(test_mint_refusals),
      cmocka_unit_test(test_fixture_still_verifies),
      cmocka_unit_test(test_payload_decoder),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
