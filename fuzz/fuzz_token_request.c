/* libFuzzer target for auth/token_request.
 *
 * Input: one flags byte, then a TokenRequest body. Bit 0 of the flags picks
 * msgpack over JSON, bit 1 a revocable key. Checks, aborting on any
 * violation:
 *   - a refused body gets 40000/40001/40012 (or 50000) and leaves nothing
 *     allocated; an accepted signed one has keyName, timestamp and nonce;
 *   - has_client_id matches client_id;
 *   - after token_request_sign the mac checks, and fails with another secret;
 *   - validation either fails with one of its documented codes or gives a
 *     ttl within the limits for the key;
 *   - the nonce cache accepts a fresh triple once and then reports 40105. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/token_request.h"

#include "check.h"

/* Near the timestamps of the seeds, so the window check passes for them. */
#define NOW 1700000000000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t flags = data[0];
  data++, size--;
  sw_token_request_t r;
  sw_error_t err = {0};
  if (token_request_parse(data, size, flags & 1, &r, &err)) {
    CHECK(err.code == 40000 || err.code == 40001 || err.code == 40012 || err.code == 50000);
    CHECK(!r.key_name && !r.ttl && !r.capability && !r.client_id && !r.timestamp && !r.nonce && !r.mac);
    return 0;
  }
  CHECK(r.has_client_id == (r.client_id != NULL));
  if (r.mac) CHECK(r.key_name && r.timestamp && r.nonce);

  /* The parsed mac is checked like any other (almost always wrong). */
  int mac_rc = token_request_check_mac(&r, "keySecret", 9, &err);
  CHECK(mac_rc == 0 || err.code == 40101);

  int64_t ttl = -1, ts = -1;
  err.code = 0;
  bool revocable = (flags & 2) != 0;
  if (token_request_validate(&r, NOW, revocable, &ttl, &ts, &err) == 0) {
    CHECK(ttl > 0 && ttl <= (revocable ? SW_TOKEN_MAX_TTL_REVOCABLE_MS : SW_TOKEN_MAX_TTL_MS));
    CHECK(ts >= NOW - SW_TOKEN_REQUEST_WINDOW_MS && ts <= NOW + SW_TOKEN_REQUEST_WINDOW_MS);
    if (r.mac) {
      sw_nonce_cache_t *c = nonce_cache_new(4, SW_TOKEN_REQUEST_WINDOW_MS);
      CHECK(c != NULL);
      CHECK(nonce_cache_check(c, r.key_name, r.nonce, ts, NOW, &err) == 0);
      CHECK(nonce_cache_check(c, r.key_name, r.nonce, ts, NOW, &err) == -1 && err.code == 40105);
      nonce_cache_free(c);
    }
  } else {
    CHECK(err.code == 40001 || err.code == 40003 || err.code == 40104 || err.code == 40012);
  }

  /* Signing makes the mac right for exactly this secret. */
  CHECK(token_request_sign(&r, "keySecret", 9) == 0);
  CHECK(token_request_check_mac(&r, "keySecret", 9, NULL) == 0);
  CHECK(token_request_check_mac(&r, "keySecreT", 9, NULL) == -1);
  token_request_clear(&r);
  return 0;
}
