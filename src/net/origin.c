#include "net/origin.h"

#include <strings.h>

bool origin_matches_host(sw_slice_t origin, sw_slice_t host) {
  const char *p = origin.p;
  size_t n = origin.n;
  for (size_t i = 0; i + 2 < n; i++) {
    if (p[i] == ':' && p[i + 1] == '/' && p[i + 2] == '/') {
      p += i + 3;
      n -= i + 3;
      break;
    }
  }
  return n > 0 && n == host.n && strncasecmp(p, host.p, n) == 0;
}

bool origin_same_site(const sw_http_req_t *req) {
  const sw_slice_t *o = http_req_header(req, "Origin");
  if (!o) return true;
  const sw_slice_t *h = http_req_header(req, "Host");
  return h && origin_matches_host(*o, *h);
}
