/* libFuzzer target for auth/token.
 *
 * Input: one mode byte, then the data.
 *   mode even: the data is a token string for token_verify;
 *   mode odd:  the data is a payload, sealed with the fuzzer's secret so the
 *              tag is right and the payload decoder itself gets fuzzed.
 * Checks, aborting on any violation:
 *   - failures use 40143/40145/40142 (or 50000) with status 401 (500) and
 *     leave nothing allocated in the output;
 *   - a string token_verify reaches the tag check for looks like a token;
 *   - an accepted payload decodes to an info whose token, minted again,
 *     verifies to the same info and opens to exactly the same payload bytes
 *     (the encoding is canonical). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/token.h"

#include "check.h"

/* The seeds in fuzz/corpus/token were minted with this secret. */
static const uint8_t SECRET[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

/* A fixed "now" before every seed's expiry, and one after. */
#define NOW 1700000000000LL

static int str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

static void check_error(int rc, const sw_token_info_t *out, const sw_error_t *err) {
  CHECK(rc == -1);
  CHECK(err->code == 40143 || err->code == 40145 || err->code == 40142 || err->code == 50000);
  CHECK(err->status == (err->code == 50000 ? 500 : 401));
  CHECK(!out->capability && !out->client_id && !out->revocation_key);
}

static void check_info(const sw_token_info_t *t) {
  CHECK(memchr(t->key_name, '\0', sizeof t->key_name) != NULL);
  CHECK(t->key_name[0] != '\0');
  CHECK(t->capability != NULL);
  CHECK(t->expires > t->issued);
}

/* Mint info again; it must verify to the same info and carry the same
 * payload bytes as `payload`. */
static void check_round_trip(const sw_token_info_t *t, const uint8_t *payload, size_t n) {
  char *tok = token_mint(SECRET, t);
  CHECK(tok != NULL);
  size_t len = strlen(tok);
  CHECK(token_looks_like(tok, len) && len <= SW_TOKEN_MAX_LEN && !strchr(tok, ':') && tok[0] != '{');
  uint8_t *back;
  size_t blen;
  CHECK(token_open(SECRET, tok, len, &back, &blen, NULL) == 0);
  CHECK(blen == n && memcmp(back, payload, n) == 0);
  free(back);
  sw_token_info_t again;
  CHECK(token_verify(SECRET, tok, len, t->issued, &again, NULL) == 0);
  CHECK(strcmp(again.key_name, t->key_name) == 0 && again.issued == t->issued &&
        again.expires == t->expires && str_eq(again.capability, t->capability) &&
        str_eq(again.client_id, t->client_id) && again.revocable == t->revocable &&
        str_eq(again.revocation_key, t->revocation_key));
  token_info_clear(&again);
  free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t mode = data[0];
  data++, size--;
  sw_token_info_t out;
  sw_error_t err = {0};

  if (!(mode & 1)) {
    const char *s = (const char *)data;
    int rc = token_verify(SECRET, s, size, NOW, &out, &err);
    if (rc == 0) {
      check_info(&out);
      token_info_clear(&out);
      return 0;
    }
    check_error(rc, &out, &err);
    if (err.code != 40145) CHECK(token_looks_like(s, size));
    return 0;
  }

  char *tok = token_seal(SECRET, data, size);
  if (!tok) {
    CHECK(size > SW_TOKEN_MAX_LEN / 4 * 3 - 48 - 8); /* only too long may fail */
    return 0;
  }
  sw_token_info_t decoded;
  int drc = token_payload_decode(data, size, &decoded, &err);
  int rc = token_verify(SECRET, tok, strlen(tok), INT64_MIN, &out, &err);
  free(tok);
  /* token_verify succeeds exactly when the payload decodes (nothing has
   * expired at INT64_MIN). */
  CHECK((rc == 0) == (drc == 0));
  if (rc == 0) {
    check_info(&out);
    check_round_trip(&out, data, size);
    token_info_clear(&out);
    token_info_clear(&decoded);
  } else {
    check_error(rc, &out, &err);
    CHECK(err.code == 40145 || err.code == 50000);
  }
  return 0;
}
