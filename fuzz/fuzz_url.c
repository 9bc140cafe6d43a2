/* fuzz_url.c: libFuzzer target for url_decode, the query-string helpers and
 * url_encode.
 *
 * Invariants (abort() on violation):
 *   - url_decode never reports more bytes than fit, always NUL-terminates,
 *     never decodes to more bytes than it read, and its output contains no
 *     NUL (strlen(out) == result);
 *   - url_query_next yields in-bounds slices with no '&' in them, advancing
 *     until it returns 0;
 *   - url_query_get finds every name the iterator yields (unless an earlier
 *     parameter decodes to the same name) and agrees with url_decode;
 *   - url_encode emits only unreserved characters and %XX, and decoding it
 *     gives back the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/url.h"

/* Invariant check that survives -DNDEBUG and names the failed condition. */
#include "check.h"

static bool in(sw_slice_t s, sw_slice_t q) {
  return s.n == 0 || (s.p >= q.p && s.p + s.n <= q.p + q.n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  char *out = malloc(size + 1);
  CHECK(out);

  /* Decoding, with a roomy buffer and a tight one. */
  for (int plus = 0; plus < 2; plus++) {
    ssize_t r = url_decode(s, size, out, size + 1, plus);
    CHECK(r >= -1 && r <= (ssize_t)size);
    if (r >= 0) CHECK(strlen(out) == (size_t)r);
    else CHECK(out[0] == '\0');
    size_t cap = size / 2 + 1;
    ssize_t r2 = url_decode(s, size, out, cap, plus);
    if (r2 >= 0) CHECK(r2 == r && (size_t)r2 < cap);
    else CHECK(r < 0 || (size_t)r >= cap);
  }

  /* Query iteration and lookup. */
  sw_slice_t q = {s, size};
  size_t pos = 0, prev = 0, count = 0;
  sw_slice_t k, v;
  char name[64];
  while (url_query_next(q, &pos, &k, &v)) {
    CHECK(pos > prev && pos <= size);
    prev = pos;
    CHECK(in(k, q) && in(v, q));
    CHECK(!memchr(k.p, '&', k.n) && !memchr(v.p, '&', v.n) && !memchr(k.p, '=', k.n));
    CHECK(++count <= size);
    ssize_t nl = url_decode(k.p, k.n, name, sizeof name, true);
    if (nl < 0) continue;
    ssize_t g = url_query_get(q, name, out, size + 1);
    CHECK(g >= 0 || g == -2); /* the name is there */
  }
  CHECK(url_query_next(q, &pos, &k, &v) == 0);

  /* Encode then decode is the identity (when there is no NUL to refuse). */
  sw_buf_t b = {0};
  CHECK(url_encode(&b, s, size) == 0);
  for (size_t i = 0; i < b.len; i++) {
    uint8_t c = b.data[i];
    bool unres = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '.' || c == '_' || c == '~' || c == '%';
    CHECK(unres);
  }
  if (!memchr(s, '\0', size)) {
    char *back = malloc(size + 1);
    CHECK(back);
    CHECK(url_decode((const char *)b.data, b.len, back, size + 1, false) == (ssize_t)size);
    CHECK(size == 0 || memcmp(back, s, size) == 0);
    free(back);
  }
  buf_free(&b);
  free(out);
  return 0;
}
