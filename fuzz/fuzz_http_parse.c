/* fuzz_http_parse.c: libFuzzer target for http_req_parse (and, on what it
 * accepts, ws_handshake_check and the header lookup).
 *
 * Invariants checked (abort() on violation):
 *   - the return is > 0 or one of the SW_HTTP_* codes, and never > len;
 *   - on success head_len + body.n == consumed, head_len <= max_head,
 *     body.n <= max_body, and every slice lies inside the consumed bytes
 *     (except a path of "/", which may be static);
 *   - header names are non-empty and values carry no CR/LF; Host and
 *     Authorization appear at most once, and an accepted WebSocket upgrade
 *     has exactly one Sec-WebSocket-Key and Sec-WebSocket-Version;
 *   - re-parsing exactly the consumed bytes gives the same answer, and a
 *     strict prefix of a complete request is never "complete".
 * The same input is parsed under three limit sets so both the default and
 * the tight-limit paths (including the two-step feed) are exercised. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_parse.h"
#include "net/ws_handshake.h"

/* Invariant check that survives -DNDEBUG and names the failed condition. */
#include "check.h"

static void check_slice(sw_slice_t s, const uint8_t *base, size_t len) {
  const char *b = (const char *)base;
  if (s.n == 0) return;
  CHECK(s.p >= b && s.p <= b + len && s.n <= (size_t)(b + len - s.p));
}

static int parse_checked(const uint8_t *data, size_t size, const sw_http_limits_t *lim) {
  sw_http_req_t r;
  int rc = http_req_parse(data, size, lim, &r);
  CHECK(rc >= SW_HTTP_LENGTH_REQUIRED);
  if (rc < 0) return rc;
  /* NEED_MORE with a complete head: the head part must be sound too. */
  if (rc == 0 && r.head_len == 0) return rc;
  size_t n = rc ? (size_t)rc : size;
  size_t max_head = lim ? lim->max_head : SW_HTTP_DEFAULT_MAX_HEAD;
  size_t max_body = lim ? lim->max_body : SW_HTTP_DEFAULT_MAX_BODY;
  CHECK(n <= size);
  CHECK(r.head_len + r.body.n == n);
  CHECK(r.head_len <= max_head);
  CHECK(r.body.n <= max_body);
  CHECK(r.n_headers <= SW_HTTP_MAX_HEADERS);
  CHECK(r.http_major == 1);
  CHECK(http_req_header_count(&r, "Host") <= 1 && http_req_header_count(&r, "Authorization") <= 1);
  check_slice(r.target, data, r.head_len);
  if (!slice_eq(r.path, "/")) check_slice(r.path, data, r.head_len); /* may be static "/" */
  check_slice(r.query, data, r.head_len);
  check_slice(r.body, data, n);
  if (r.body.n) CHECK(r.body.p == (const char *)data + r.head_len);
  for (size_t i = 0; i < r.n_headers; i++) {
    CHECK(r.hname[i].n > 0);
    check_slice(r.hname[i], data, r.head_len);
    check_slice(r.hval[i], data, r.head_len);
    CHECK(!memchr(r.hval[i].p, '\r', r.hval[i].n) && !memchr(r.hval[i].p, '\n', r.hval[i].n));
    const sw_slice_t *v = http_req_header(&r, "Content-Length");
    if (v) check_slice(*v, data, r.head_len);
  }
  char accept[29];
  sw_error_t err;
  if (ws_handshake_check(&r, accept, &err) == 0) {
    CHECK(strlen(accept) == SW_WS_ACCEPT_LEN);
    CHECK(r.method == HTTP_GET);
    CHECK(http_req_header_count(&r, "Sec-WebSocket-Key") == 1);
    CHECK(http_req_header_count(&r, "Sec-WebSocket-Version") == 1);
  } else {
    CHECK(err.code == SW_E_BAD_REQUEST && accept[0] == '\0');
  }
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* Limits derived from the input length so runs are deterministic. */
  sw_http_limits_t tight = {.max_head = 64 + size % 193, .max_body = size % 97};
  sw_http_limits_t tiny = {.max_head = 1 + size % 7, .max_body = 0};
  const sw_http_limits_t *lims[] = {NULL, &tight, &tiny};
  for (size_t k = 0; k < 3; k++) {
    int rc = parse_checked(data, size, lims[k]);
    if (rc <= 0) continue;
    /* Exactly the consumed bytes parse identically (on an exact-size copy,
     * so ASan sees any read past the end)... */
    uint8_t *copy = malloc((size_t)rc);
    CHECK(copy);
    memcpy(copy, data, (size_t)rc);
    CHECK(parse_checked(copy, (size_t)rc, lims[k]) == rc);
    /* ...and a strict prefix is never a complete request. */
    for (size_t cut = (size_t)rc / 2; cut < (size_t)rc; cut += ((size_t)rc - cut + 1) / 2) {
      sw_http_req_t r;
      CHECK(http_req_parse(copy, cut, lims[k], &r) <= 0);
    }
    free(copy);
  }
  return 0;
}
