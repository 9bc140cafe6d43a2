/* fuzz_forwarded.c: libFuzzer target for net/forwarded.c: the trusted proxy
 * list syntax and the X-Forwarded-For/-Proto reading of a request from a
 * trusted proxy (its headers are still the client's bytes, partly).
 *
 * The input is a request head (or anything: it is also given to
 * cidr_parse and addr_parse as is). Invariants (abort() on violation):
 *   - a parsed CIDR block has bits <= 128 and no host bits set, and
 *     matches its own network address;
 *   - addr_parse's result formats to text that parses back to it;
 *   - forwarded_for's client, if any, is an address that appears in an
 *     X-Forwarded-For header and, unless every one is trusted, is not one
 *     of the trusted ones. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "net/forwarded.h"
#include "net/http_parse.h"

#include "check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  sw_cidr_t c;
  if (cidr_parse(s, size, &c) == 0) {
    CHECK(c.bits <= 128);
    for (unsigned i = c.bits; i < 128; i++) CHECK(!(c.addr[i / 8] & (0x80 >> (i % 8))));
    CHECK(cidr_match(&c, 1, c.addr));
  }
  uint8_t a[16], b[16];
  if (addr_parse(s, size, a) == 0) {
    char text[46];
    addr_format(a, text);
    CHECK(addr_parse(text, strlen(text), b) == 0);
    CHECK(memcmp(a, b, 16) == 0);
  }
  sw_http_req_t req;
  if (http_req_parse(data, size, NULL, &req) > 0) {
    static const char *const list[] = {"10.0.0.0/8", "::1", "2001:db8::/32"};
    sw_cidr_t trusted[3];
    for (int i = 0; i < 3; i++) CHECK(cidr_parse(list[i], strlen(list[i]), &trusted[i]) == 0);
    (void)forwarded_https(&req);
    if (forwarded_for(&req, trusted, 3, a)) {
      char text[46];
      addr_format(a, text);
      CHECK(addr_parse(text, strlen(text), b) == 0 && memcmp(a, b, 16) == 0);
      CHECK(http_req_header(&req, "X-Forwarded-For") != NULL);
    }
  }
  return 0;
}
