/* Unit tests for auth/token_request: parsing TokenRequest/TokenParams bodies
 * (JSON and msgpack), the mac against ably-js, validation, replay cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "auth/token_request.h"

#define SECRET "keySecret"
#define NOW 1700000000000LL

/* ---- helpers ---- */

static int parse_json(const char *body, sw_token_request_t *r, sw_error_t *err) {
  return token_request_parse((const uint8_t *)body, strlen(body), 0, r, err);
}

/* Parses body, which must succeed. */
static void must_parse(const char *body, sw_token_request_t *r) {
  sw_error_t err = {0};
  int rc = parse_json(body, r, &err);
  if (rc) fail_msg("parse failed (%d): %s", err.code, err.message);
}

static int parse_code(const char *body) {
  sw_token_request_t r;
  sw_error_t err = {0};
  int rc = parse_json(body, &r, &err);
  if (rc == 0) {
    token_request_clear(&r);
    return 0;
  }
  assert_int_equal(rc, -1);
  assert_null(r.key_name); /* nothing left to free on error */
  assert_null(r.mac);
  return err.code;
}

static int validate_code(const sw_token_request_t *r, int64_t now, bool revocable, int64_t *ttl,
                         int64_t *ts) {
  sw_error_t err = {0};
  int64_t t1 = -1, t2 = -1;
  int rc = token_request_validate(r, now, revocable, ttl ? ttl : &t1, ts ? ts : &t2, &err);
  if (rc == 0) return 0;
  assert_int_equal(rc, -1);
  assert_int_equal(err.status, err.code / 100);
  return err.code;
}

/* ---- mac vectors, produced at dev time by ably-js 2.x
 * rest.auth.createTokenRequest(params, { key: 'appId.keyId:keySecret' })
 * and printed with JSON.stringify (the body ably-js posts to requestToken). */

static const struct {
  const char *body;
  const char *secret;
} VECTORS[] = {
    {"{\"keyName\":\"appId.keyId\",\"nonce\":\"0123456789abcdef\",\"timestamp\":1700000000000,"
     "\"mac\":\"hof9jY3Ir8CZuMxMW/MEF7NHdZ61VWK2ByjCJDseUO0=\"}",
     SECRET},
    {"{\"keyName\":\"appId.keyId\",\"nonce\":\"nonce-with-clientid\",\"timestamp\":1700000000123,"
     "\"clientId\":\"user-1\",\"ttl\":123,\"mac\":\"QjNm9j+GjE0EKX/CHRnOhXXp7tfIErrebiS9zcxFr/g=\"}",
     SECRET},
    {"{\"keyName\":\"appId.keyId\",\"nonce\":\"1234567890123456\",\"timestamp\":1700000000000,"
     "\"capability\":\"{\\\"a\\\":[\\\"*\\\"],\\\"ch:*\\\":[\\\"publish\\\",\\\"subscribe\\\"]}\","
     "\"clientId\":\"*\",\"ttl\":3600000,\"mac\":\"57jmGdTdX36YrjAwkOExiM2D/cAwPq1ZGAzc9Bwk7kI=\"}",
     SECRET},
    {"{\"keyName\":\"appId.keyId\",\"nonce\":\"\xc3\xbcn\xc3\xaf\x63\xc3\xb8\x64\xc3\xa9-nonce-0001\","
     "\"timestamp\":1700000000000,\"clientId\":\"\xc3\xbc-client\",\"capability\":\"{\\\"ch\\\":["
     "\\\"publish\\\"]}\","
     "\"mac\":\"MPq2p+6uCqOoxZYSOVT361cRgRfuKQAgF3ZMWcZyrLs=\"}",
     SECRET},
    /* ttl and timestamp as strings */
    {"{\"keyName\":\"appId.keyId\",\"nonce\":\"string-ttl-nonce-01\",\"timestamp\":\"1700000000000\","
     "\"ttl\":\"100000\",\"mac\":\"t/LgdrNC6yFrfBrIBdDelSXO4ZDGOu0O76YRHQeqbP0=\"}",
     SECRET},
    /* ttl 0: ably-js signs "" for it */
    {"{\"keyName\":\"appId.keyId\",\"nonce\":\"ttl-zero-nonce-0001\",\"timestamp\":1700000000000,\"ttl\":0,"
     "\"mac\":\"5NA++ZB7CMAPOuR+ZSjjawiBL3HMfdXZrlStalJzeM4=\"}",
     SECRET},
    /* capability "" */
    {"{\"keyName\":\"appId.keyId\",\"nonce\":\"empty-cap-nonce-001\",\"timestamp\":1700000000000,"
     "\"capability\":\"\",\"mac\":\"Lr+i90UZ+x4P/wokvNgSceZdr8dwiWpdLzeTBcv3mFU=\"}",
     SECRET},
    /* clientId null */
    {"{\"keyName\":\"appId.keyId\",\"nonce\":\"null-client-nonce-1\",\"timestamp\":1700000000000,"
     "\"clientId\":null,\"mac\":\"TXH7IazzARIp2hG+t8doOv11m8XxaF2EDgVADfUWsaU=\"}",
     SECRET},
    /* ttl null, capability null given (ably-js sends capability "") */
    {"{\"keyName\":\"appId.keyId\",\"nonce\":\"null-ttl-nonce-0001\",\"timestamp\":1700000000000,\"ttl\":"
     "null,"
     "\"capability\":\"\",\"mac\":\"xsVo/22E7TvHRq9giNO78fuHGw4K7H0dioUtpdyx0Qs=\"}",
     SECRET},
    /* a real-looking key secret */
    {"{\"keyName\":\"xVLyHw.A-pwh7wicf3afTfgiw\",\"nonce\":\"other-secret-nonce1\",\"timestamp\":"
     "1700000000000,"
     "\"mac\":\"GnrCcS1VEDQa6MXUEHVNC4RyPSrqsIUboNJTFdGqolU=\"}",
     "7bHtkdw6TA1TjgSMlqcH4lWRO1I9c2OwC7vpoTpLkqE"},
};
#define NVECTORS (sizeof VECTORS / sizeof *VECTORS)

static void test_mac_vectors(void **state) {
  (void)state;
  for (size_t i = 0; i < NVECTORS; i++) {
    sw_token_request_t r;
    must_parse(VECTORS[i].body, &r);
    sw_error_t err = {0};
    const char *s = VECTORS[i].secret;
    if (token_request_check_mac(&r, s, strlen(s), &err)) fail_msg("vector %zu: %s", i, err.message);

    /* Signing the parsed fields reproduces ably-js's mac. */
    char *orig = strdup(r.mac);
    free(r.mac);
    r.mac = strdup("x");
    assert_int_equal(token_request_sign(&r, s, strlen(s)), 0);
    assert_string_equal(r.mac, orig);
    free(orig);

    /* A different secret, or a secret one byte short, fails. */
    err.code = 0;
    assert_int_equal(token_request_check_mac(&r, "keySecreT", 9, &err), -1);
    assert_int_equal(err.code, 40101);
    assert_int_equal(err.status, 401);
    assert_null(strstr(err.message, s)); /* never the secret in a message */
    assert_int_equal(token_request_check_mac(&r, s, strlen(s) - 1, NULL), -1);
    token_request_clear(&r);
  }
}

static void test_sign_text(void **state) {
  (void)state;
  sw_token_request_t r;
  must_parse(VECTORS[2].body, &r);
  char *text = token_request_sign_text(&r);
  assert_string_equal(text, "appId.keyId\n3600000\n{\"a\":[\"*\"],\"ch:*\":[\"publish\",\"subscribe\"]}\n*\n"
                            "1700000000000\n1234567890123456\n");
  free(text);
  token_request_clear(&r);

  /* Absent fields are empty lines, the final newline stays. */
  memset(&r, 0, sizeof r);
  text = token_request_sign_text(&r);
  assert_string_equal(text, "\n\n\n\n\n\n");
  free(text);
}

static void test_mac_tampering(void **state) {
  (void)state;
  sw_token_request_t r;
  must_parse(VECTORS[2].body, &r);
  assert_int_equal(token_request_check_mac(&r, SECRET, strlen(SECRET), NULL), 0);

  /* Any change to a signed field breaks the mac. */
  char **fields[] = {&r.key_name, &r.ttl, &r.capability, &r.client_id, &r.timestamp, &r.nonce};
  for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
    char *saved = *fields[i];
    *fields[i] = strdup("changed");
    assert_int_equal(token_request_check_mac(&r, SECRET, strlen(SECRET), NULL), -1);
    free(*fields[i]);
    *fields[i] = NULL; /* absent is also a change */
    assert_int_equal(token_request_check_mac(&r, SECRET, strlen(SECRET), NULL), -1);
    *fields[i] = saved;
  }
  assert_int_equal(token_request_check_mac(&r, SECRET, strlen(SECRET), NULL), 0);

  /* Mac variants: case, padding, length, one flipped character. */
  char *good = r.mac;
  const char *bad[] = {
      "", "57jmGdTdX36YrjAwkOExiM2D/cAwPq1ZGAzc9Bwk7kI", "57jmGdTdX36YrjAwkOExiM2D/cAwPq1ZGAzc9Bwk7kI==",
      "57JMGdTdX36YrjAwkOExiM2D/cAwPq1ZGAzc9Bwk7kI=", "57jmGdTdX36YrjAwkOExiM2D_cAwPq1ZGAzc9Bwk7kI="};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    r.mac = (char *)bad[i];
    sw_error_t err = {0};
    assert_int_equal(token_request_check_mac(&r, SECRET, strlen(SECRET), &err), -1);
    assert_int_equal(err.code, 40101);
  }
  r.mac = NULL;
  sw_error_t err = {0};
  assert_int_equal(token_request_check_mac(&r, SECRET, strlen(SECRET), &err), -1);
  assert_int_equal(err.code, 40101);
  r.mac = good;
  token_request_clear(&r);
}

/* ---- parsing ---- */

static void test_parse_fields(void **state) {
  (void)state;
  sw_token_request_t r;
  must_parse(VECTORS[1].body, &r);
  assert_string_equal(r.key_name, "appId.keyId");
  assert_string_equal(r.ttl, "123");
  assert_null(r.capability);
  assert_string_equal(r.client_id, "user-1");
  assert_true(r.has_client_id);
  assert_string_equal(r.timestamp, "1700000000123");
  assert_string_equal(r.nonce, "nonce-with-clientid");
  assert_string_equal(r.mac, "QjNm9j+GjE0EKX/CHRnOhXXp7tfIErrebiS9zcxFr/g=");
  token_request_clear(&r);
  assert_null(r.key_name);
  token_request_clear(&r); /* twice is fine */
  token_request_clear(NULL);

  /* Tolerances of the checklist. */
  must_parse(VECTORS[6].body, &r); /* capability "" */
  assert_string_equal(r.capability, "");
  token_request_clear(&r);
  must_parse(VECTORS[7].body, &r); /* clientId null */
  assert_null(r.client_id);
  assert_false(r.has_client_id);
  token_request_clear(&r);
  must_parse(VECTORS[5].body, &r); /* ttl 0 */
  assert_null(r.ttl);
  token_request_clear(&r);
  must_parse(VECTORS[4].body, &r); /* strings kept verbatim */
  assert_string_equal(r.ttl, "100000");
  assert_string_equal(r.timestamp, "1700000000000");
  token_request_clear(&r);

  /* Numbers are written as JavaScript writes them. */
  must_parse("{\"ttl\":3600000.0,\"timestamp\":1.7e12}", &r);
  assert_string_equal(r.ttl, "3600000");
  assert_string_equal(r.timestamp, "1700000000000");
  token_request_clear(&r);
  must_parse("{\"ttl\":1.5,\"timestamp\":-0.0}", &r);
  assert_string_equal(r.ttl, "1.5");
  assert_string_equal(r.timestamp, "0");
  token_request_clear(&r);
  must_parse("{\"ttl\":\"007\",\"timestamp\":\"\"}", &r); /* strings untouched */
  assert_string_equal(r.ttl, "007");
  assert_string_equal(r.timestamp, "");
  token_request_clear(&r);

  /* Unsigned TokenParams: nothing is required. */
  must_parse("{}", &r);
  assert_null(r.mac);
  assert_null(r.key_name);
  token_request_clear(&r);
  must_parse("{\"clientId\":\"bob\",\"ttl\":1000,\"unknownField\":[1,2,{}]}", &r);
  assert_null(r.mac);
  assert_string_equal(r.client_id, "bob");
  token_request_clear(&r);

  /* A capability object is kept as compact JSON in the order received. */
  must_parse("{\"capability\": {\"b\": [\"subscribe\"], \"a\": [\"*\"]}}", &r);
  assert_string_equal(r.capability, "{\"b\":[\"subscribe\"],\"a\":[\"*\"]}");
  token_request_clear(&r);
  /* A capability string is verbatim, spaces and all. */
  must_parse("{\"capability\":\"{ \\\"a\\\" : [\\\"*\\\"] }\"}", &r);
  assert_string_equal(r.capability, "{ \"a\" : [\"*\"] }");
  token_request_clear(&r);
}

static void test_parse_errors(void **state) {
  (void)state;
  assert_int_equal(parse_code(""), 40000);
  assert_int_equal(parse_code("not json"), 40000);
  assert_int_equal(parse_code("[]"), 40000);
  assert_int_equal(parse_code("\"str\""), 40000);
  assert_int_equal(parse_code("{\"a\":1"), 40000);
  assert_int_equal(parse_code("{\"nonce\":\"a\",\"nonce\":\"b\"}"), 40000); /* ambiguous */

  assert_int_equal(parse_code("{\"keyName\":5}"), 40001);
  assert_int_equal(parse_code("{\"nonce\":[]}"), 40001);
  assert_int_equal(parse_code("{\"mac\":true}"), 40001);
  assert_int_equal(parse_code("{\"ttl\":true}"), 40001);
  assert_int_equal(parse_code("{\"ttl\":{}}"), 40001);
  assert_int_equal(parse_code("{\"timestamp\":[1]}"), 40001);
  assert_int_equal(parse_code("{\"capability\":[\"a\"]}"), 40001);
  assert_int_equal(parse_code("{\"capability\":12}"), 40001);
  assert_int_equal(parse_code("{\"nonce\":\"abc\\u0000def\"}"), 40001);
  assert_int_equal(parse_code("{\"clientId\":5}"), 40012);
  assert_int_equal(parse_code("{\"clientId\":{}}"), 40012);
  assert_int_equal(parse_code("{\"clientId\":false}"), 40012);

  /* A signed request needs keyName, timestamp and nonce. */
  assert_int_equal(parse_code("{\"mac\":\"m\",\"timestamp\":1,\"nonce\":\"n\"}"), 40001);
  assert_int_equal(parse_code("{\"mac\":\"m\",\"keyName\":\"k\",\"nonce\":\"n\"}"), 40001);
  assert_int_equal(parse_code("{\"mac\":\"m\",\"keyName\":\"k\",\"timestamp\":1}"), 40001);
  assert_int_equal(parse_code("{\"mac\":\"m\",\"keyName\":\"k\",\"timestamp\":null,\"nonce\":\"n\"}"), 40001);
  assert_int_equal(parse_code("{\"mac\":\"m\",\"keyName\":\"k\",\"timestamp\":1,\"nonce\":\"n\"}"), 0);

  /* Size limit, checked before decoding. */
  size_t n = SW_TOKEN_REQUEST_MAX_BODY + 1;
  char *big = malloc(n + 1);
  memset(big, ' ', n);
  big[0] = '{';
  big[n - 1] = '}';
  big[n] = 0;
  assert_int_equal(parse_code(big), 40000);
  big[n - 2] = '}'; /* at the limit it parses */
  big[n - 1] = 0;
  assert_int_equal(parse_code(big), 0);
  free(big);

  /* err may be NULL. */
  sw_token_request_t r;
  assert_int_equal(token_request_parse((const uint8_t *)"[", 1, 0, &r, NULL), -1);
}

/* msgpack bodies: what ably-java/ably-go send. */
static void pack_str(msgpack_packer *pk, const char *s) {
  msgpack_pack_str(pk, strlen(s));
  msgpack_pack_str_body(pk, s, strlen(s));
}

static void test_parse_msgpack(void **state) {
  (void)state;
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  /* The same request as VECTORS[1]; ttl as a float64 123.0. */
  msgpack_pack_map(&pk, 7);
  pack_str(&pk, "keyName"), pack_str(&pk, "appId.keyId");
  pack_str(&pk, "nonce"), pack_str(&pk, "nonce-with-clientid");
  pack_str(&pk, "timestamp"), msgpack_pack_uint64(&pk, 1700000000123ULL);
  pack_str(&pk, "clientId"), pack_str(&pk, "user-1");
  pack_str(&pk, "ttl"), msgpack_pack_double(&pk, 123.0);
  pack_str(&pk, "capability"), msgpack_pack_nil(&pk);
  pack_str(&pk, "mac"), pack_str(&pk, "QjNm9j+GjE0EKX/CHRnOhXXp7tfIErrebiS9zcxFr/g=");
  sw_token_request_t r;
  sw_error_t err = {0};
  assert_int_equal(token_request_parse((const uint8_t *)sb.data, sb.size, 1, &r, &err), 0);
  assert_string_equal(r.ttl, "123");
  assert_string_equal(r.timestamp, "1700000000123");
  assert_null(r.capability);
  assert_int_equal(token_request_check_mac(&r, SECRET, strlen(SECRET), NULL), 0);
  token_request_clear(&r);

  /* The JSON body read as msgpack is garbage: refused, not misread. */
  assert_int_equal(
      token_request_parse((const uint8_t *)VECTORS[0].body, strlen(VECTORS[0].body), 1, &r, &err), -1);
  assert_int_equal(err.code, 40000);

  /* A string with NUL inside (legal in msgpack) is refused. */
  msgpack_sbuffer_clear(&sb);
  msgpack_pack_map(&pk, 1);
  pack_str(&pk, "nonce");
  msgpack_pack_str(&pk, 3);
  msgpack_pack_str_body(&pk, "a\0b", 3);
  assert_int_equal(token_request_parse((const uint8_t *)sb.data, sb.size, 1, &r, &err), -1);
  assert_int_equal(err.code, 40001);

  /* An array root is refused. */
  msgpack_sbuffer_clear(&sb);
  msgpack_pack_array(&pk, 0);
  assert_int_equal(token_request_parse((const uint8_t *)sb.data, sb.size, 1, &r, &err), -1);
  assert_int_equal(err.code, 40000);
  msgpack_sbuffer_destroy(&sb);
}

/* ---- validation ---- */

static void test_validate_defaults(void **state) {
  (void)state;
  sw_token_request_t r;
  int64_t ttl, ts;
  must_parse(VECTORS[0].body, &r); /* no ttl: 60 minutes (RSA5) */
  assert_int_equal(validate_code(&r, NOW, false, &ttl, &ts), 0);
  assert_int_equal(ttl, 3600000);
  assert_int_equal(ts, NOW);
  assert_int_equal(validate_code(&r, NOW, true, &ttl, &ts), 0); /* 1 h is fine for revocable */
  assert_int_equal(ttl, 3600000);
  token_request_clear(&r);

  must_parse(VECTORS[4].body, &r); /* strings */
  assert_int_equal(validate_code(&r, NOW, false, &ttl, &ts), 0);
  assert_int_equal(ttl, 100000);
  assert_int_equal(ts, NOW);
  token_request_clear(&r);

  must_parse(VECTORS[5].body, &r); /* ttl 0 = default */
  assert_int_equal(validate_code(&r, NOW, false, &ttl, &ts), 0);
  assert_int_equal(ttl, 3600000);
  token_request_clear(&r);

  /* TokenParams without timestamp: server time. */
  must_parse("{\"ttl\":1}", &r);
  assert_int_equal(validate_code(&r, NOW + 5, false, &ttl, &ts), 0);
  assert_int_equal(ttl, 1);
  assert_int_equal(ts, NOW + 5);
  token_request_clear(&r);
  must_parse("{\"ttl\":\"\",\"timestamp\":\"\"}", &r); /* "" = absent */
  assert_int_equal(validate_code(&r, NOW, false, &ttl, &ts), 0);
  assert_int_equal(ttl, 3600000);
  assert_int_equal(ts, NOW);
  token_request_clear(&r);
}

static void test_validate_window(void **state) {
  (void)state;
  sw_token_request_t r;
  must_parse(VECTORS[0].body, &r); /* timestamp NOW */
  const int64_t w = SW_TOKEN_REQUEST_WINDOW_MS;
  assert_int_equal(w, 120000);
  assert_int_equal(validate_code(&r, NOW + w, false, NULL, NULL), 0);
  assert_int_equal(validate_code(&r, NOW - w, false, NULL, NULL), 0);
  assert_int_equal(validate_code(&r, NOW + w + 1, false, NULL, NULL), 40104);
  assert_int_equal(validate_code(&r, NOW - w - 1, false, NULL, NULL), 40104);
  assert_int_equal(validate_code(&r, INT64_MIN, false, NULL, NULL), 40104);
  assert_int_equal(validate_code(&r, INT64_MAX, false, NULL, NULL), 40104);
  token_request_clear(&r);

  /* Also for TokenParams that carry a timestamp. */
  must_parse("{\"timestamp\":1700000000000}", &r);
  assert_int_equal(validate_code(&r, NOW + w + 1, false, NULL, NULL), 40104);
  token_request_clear(&r);

  /* Non-integer timestamps. */
  const char *bad[] = {"{\"timestamp\":\"abc\"}", "{\"timestamp\":\"17e11\"}",
                       "{\"timestamp\":1.5}",     "{\"timestamp\":\" 1700\"}",
                       "{\"timestamp\":\"-\"}",   "{\"timestamp\":\"99999999999999999999\"}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    must_parse(bad[i], &r);
    assert_int_equal(validate_code(&r, NOW, false, NULL, NULL), 40003);
    token_request_clear(&r);
  }
  /* Signed without timestamp (only reachable by building the struct). */
  memset(&r, 0, sizeof r);
  r.mac = "m";
  r.nonce = "0123456789abcdef";
  assert_int_equal(validate_code(&r, NOW, false, NULL, NULL), 40001);
}

static void test_validate_nonce(void **state) {
  (void)state;
  sw_token_request_t r;
  must_parse("{\"keyName\":\"k\",\"timestamp\":1700000000000,\"nonce\":\"0123456789abcde\",\"mac\":\"m\"}",
             &r);
  assert_int_equal(validate_code(&r, NOW, false, NULL, NULL), 40003); /* 15 characters */
  token_request_clear(&r);
  must_parse("{\"keyName\":\"k\",\"timestamp\":1700000000000,\"nonce\":\"0123456789abcdef\",\"mac\":\"m\"}",
             &r);
  assert_int_equal(validate_code(&r, NOW, false, NULL, NULL), 0);
  token_request_clear(&r);
  /* At most 256 characters: the replay cache keeps them. */
  char body[512];
  snprintf(body, sizeof body, "{\"keyName\":\"k\",\"timestamp\":1700000000000,\"nonce\":\"%0257d\",\"mac\":\"m\"}", 0);
  must_parse(body, &r);
  assert_int_equal(validate_code(&r, NOW, false, NULL, NULL), 40003); /* 257 characters */
  token_request_clear(&r);
  snprintf(body, sizeof body, "{\"keyName\":\"k\",\"timestamp\":1700000000000,\"nonce\":\"%0256d\",\"mac\":\"m\"}", 0);
  must_parse(body, &r);
  assert_int_equal(validate_code(&r, NOW, false, NULL, NULL), 0);
  token_request_clear(&r);
  /* TokenParams need no nonce. */
  must_parse("{\"nonce\":\"short\"}", &r);
  assert_int_equal(validate_code(&r, NOW, false, NULL, NULL), 0);
  token_request_clear(&r);
}

static void test_validate_ttl(void **state) {
  (void)state;
  static const struct {
    const char *ttl; /* JSON value */
    bool revocable;
    int code;
    int64_t want;
  } cases[] = {
      {"1", false, 0, 1},
      {"123", false, 0, 123},
      {"100000", false, 0, 100000},
      {"3600000", false, 0, 3600000},
      {"86400000", false, 0, 86400000},
      {"\"86400000\"", false, 0, 86400000},
      {"86400001", false, 40003, 0},
      {"9223372036854775807", false, 40003, 0},
      {"-1", false, 40003, 0},
      {"\"0\"", false, 40003, 0},
      {"\"-5\"", false, 40003, 0},
      {"\"abc\"", false, 40003, 0},
      {"\"1e3\"", false, 40003, 0},
      {"1.5", false, 40003, 0},
      {"\"+5\"", false, 40003, 0},
      {"3600000", true, 0, 3600000},
      {"3600001", true, 40003, 0},
      {"86400000", true, 40003, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char body[128];
    snprintf(body, sizeof body, "{\"ttl\":%s}", cases[i].ttl);
    sw_token_request_t r;
    must_parse(body, &r);
    int64_t ttl = -1, ts;
    int code = validate_code(&r, NOW, cases[i].revocable, &ttl, &ts);
    if (code != cases[i].code) fail_msg("ttl %s: got %d, want %d", cases[i].ttl, code, cases[i].code);
    if (code == 0) assert_int_equal(ttl, cases[i].want);
    token_request_clear(&r);
  }
}

static void test_validate_client_id(void **state) {
  (void)state;
  sw_token_request_t r;
  must_parse("{\"clientId\":\"\"}", &r);
  assert_true(r.has_client_id);
  assert_int_equal(validate_code(&r, NOW, false, NULL, NULL), 40012);
  token_request_clear(&r);
  must_parse("{\"clientId\":\"*\"}", &r); /* wildcard is allowed in a token */
  assert_int_equal(validate_code(&r, NOW, false, NULL, NULL), 0);
  token_request_clear(&r);
  must_parse("{\"clientId\":null}", &r);
  assert_int_equal(validate_code(&r, NOW, false, NULL, NULL), 0);
  token_request_clear(&r);
}

/* ---- nonce replay cache ---- */

static int nc(sw_nonce_cache_t *c, const char *k, const char *n, int64_t ts, int64_t now) {
  sw_error_t err = {0};
  int rc = nonce_cache_check(c, k, n, ts, now, &err);
  if (rc == 0) return 0;
  assert_int_equal(rc, -1);
  assert_int_equal(err.status, err.code / 100);
  return err.code;
}

static void test_nonce_replay(void **state) {
  (void)state;
  const int64_t w = SW_TOKEN_REQUEST_WINDOW_MS;
  sw_nonce_cache_t *c = nonce_cache_new(100, w);
  assert_non_null(c);
  assert_int_equal(nc(c, "app.key", "0123456789abcdef", NOW, NOW), 0);
  assert_int_equal(nc(c, "app.key", "0123456789abcdef", NOW, NOW), 40105);
  assert_int_equal(nc(c, "app.key", "0123456789abcdef", NOW, NOW + w), 40105); /* still in the window */
  /* Distinct triples are distinct. */
  assert_int_equal(nc(c, "app.key", "0123456789abcdef", NOW + 1, NOW), 0);
  assert_int_equal(nc(c, "app.key2", "0123456789abcdef", NOW, NOW), 0);
  assert_int_equal(nc(c, "app.ke", "y0123456789abcdef", NOW, NOW), 0); /* no concatenation ambiguity */
  assert_int_equal(nonce_cache_size(c), 4);
  /* Outside the window: refused, not remembered. */
  assert_int_equal(nc(c, "app.key", "fresh-nonce-00001", NOW - w - 1, NOW), 40104);
  assert_int_equal(nc(c, "app.key", "fresh-nonce-00001", NOW + w + 1, NOW), 40104);
  assert_int_equal(nc(c, "app.key", "fresh-nonce-00001", INT64_MAX, INT64_MIN), 40104);
  assert_int_equal(nonce_cache_size(c), 4);
  /* Each entry's size is bounded too. */
  char longer[SW_TOKEN_NONCE_MAX_LEN + 2];
  memset(longer, 'n', sizeof longer - 1);
  longer[sizeof longer - 1] = '\0';
  assert_int_equal(nc(c, "app.key", longer, NOW, NOW), 40003);
  longer[SW_TOKEN_NONCE_MAX_LEN] = '\0';
  assert_int_equal(nc(c, "app.key", longer, NOW, NOW), 0);
  assert_int_equal(nonce_cache_size(c), 5);
  /* Once the window has passed everything is forgotten; the triple would be
   * refused by the window anyway. */
  assert_int_equal(nc(c, "app.key", "0123456789abcdef", NOW, NOW + w + 2), 40104);
  assert_int_equal(nonce_cache_size(c), 0);
  nonce_cache_free(c);

  assert_null(nonce_cache_new(0, w));
  assert_null(nonce_cache_new(10, 0));
  nonce_cache_free(NULL);
}

static void test_nonce_expiry_order_and_bound(void **state) {
  (void)state;
  const int64_t w = 1000;
  sw_nonce_cache_t *c = nonce_cache_new(3, w);
  /* Inserted out of timestamp order; they expire at ts + w. */
  assert_int_equal(nc(c, "k", "n-late", NOW + 500, NOW), 0);  /* until NOW+1500 */
  assert_int_equal(nc(c, "k", "n-early", NOW - 500, NOW), 0); /* until NOW+500 */
  assert_int_equal(nc(c, "k", "n-mid", NOW, NOW), 0);         /* until NOW+1000 */
  /* Full of live entries: refused with 42910 rather than forgetting one. */
  assert_int_equal(nc(c, "k", "n-new", NOW, NOW), 42910);
  assert_int_equal(nonce_cache_size(c), 3);
  /* At NOW+500 nothing has expired yet (the boundary is still accepted). */
  assert_int_equal(nc(c, "k", "n-new", NOW, NOW + 500), 42910);
  /* At NOW+501 the earliest one goes first, the others stay. */
  assert_int_equal(nc(c, "k", "n-new", NOW, NOW + 501), 0);
  assert_int_equal(nonce_cache_size(c), 3);
  assert_int_equal(nc(c, "k", "n-late", NOW + 500, NOW + 501), 40105);
  assert_int_equal(nc(c, "k", "n-mid", NOW, NOW + 501), 40105);
  /* At NOW+1001 n-mid and n-new (both until NOW+1000) go. */
  assert_int_equal(nc(c, "k", "n-other", NOW + 1000, NOW + 1001), 0);
  assert_int_equal(nonce_cache_size(c), 2);
  assert_int_equal(nc(c, "k", "n-late", NOW + 500, NOW + 1001), 40105);
  nonce_cache_free(c); /* frees live entries (ASan checks) */
}

/* Against a naive model over a random sequence. */
static void test_nonce_cache_model(void **state) {
  (void)state;
  enum { MAX = 16, OPS = 20000 };
  const int64_t w = 50;
  sw_nonce_cache_t *c = nonce_cache_new(MAX, w);
  struct {
    int key, nonce;
    int64_t ts;
  } model[MAX];
  size_t mlen = 0;
  srand(7);
  int64_t now = 1000;
  int fresh = 0, replays = 0, full = 0;
  for (int op = 0; op < OPS; op++) {
    now += rand() % 4;
    /* Few distinct triples, so that replays are frequent; timestamps
     * anywhere in the window, in the past and the future. */
    int key = rand() % 2, nonce = rand() % 10;
    int64_t ts = now + (rand() % 5 - 2) * (w / 2);
    /* Model: forget expired, then decide. */
    size_t j = 0;
    for (size_t i = 0; i < mlen; i++)
      if (model[i].ts + w >= now) model[j++] = model[i];
    mlen = j;
    int want = 0;
    for (size_t i = 0; i < mlen; i++)
      if (model[i].key == key && model[i].nonce == nonce && model[i].ts == ts) want = 40105;
    if (!want && mlen == MAX) want = 42910;
    if (!want) model[mlen].key = key, model[mlen].nonce = nonce, model[mlen].ts = ts, mlen++;

    char k[16], n[32];
    snprintf(k, sizeof k, "key%d", key);
    snprintf(n, sizeof n, "nonce-%016d", nonce);
    int got = nc(c, k, n, ts, now);
    if (got != want) fail_msg("op %d: got %d, want %d", op, got, want);
    assert_int_equal(nonce_cache_size(c), mlen);
    fresh += want == 0, replays += want == 40105, full += want == 42910;
  }
  nonce_cache_free(c);
  print_message("fresh %d, replays %d, full %d\n", fresh, replays, full);
  /* The sequence exercised every outcome. */
  assert_true(fresh > 100 && replays > 100 && full > 100);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mac_vectors),
      cmocka_unit_test(test_sign_text),
      cmocka_unit_test(test_mac_tampering),
      cmocka_unit_test(test_parse_fields),
      cmocka_unit_test(test_parse_errors),
      cmocka_unit_test(test_parse_msgpack),
      cmocka_unit_test(test_validate_defaults),
      cmocka_unit_test(test_validate_window),
      cmocka_unit_test(test_validate_nonce),
      cmocka_unit_test(test_validate_ttl),
      cmocka_unit_test(test_validate_client_id),
      cmocka_unit_test(test_nonce_replay),
      cmocka_unit_test(test_nonce_expiry_order_and_bound),
      cmocka_unit_test(test_nonce_cache_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
