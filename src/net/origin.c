#include "net/origin.h"

#include <string.h>
#include <strings.h>

#include "net/url.h"

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

ssize_t origin_cookie_get(const sw_http_req_t *req, const char *name, char *out, size_t cap) {
  const sw_slice_t *h = http_req_header(req, "Cookie");
  if (!h || !name || !origin_same_site(req)) return -1;
  size_t nlen = strlen(name);
  const char *p = h->p, *end = h->p + h->n;
  while (p < end) {
    while (p < end && (*p == ' ' || *p == ';')) p++;
    const char *semi = memchr(p, ';', (size_t)(end - p));
    const char *e = semi ? semi : end;
    if ((size_t)(e - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
      ssize_t n = url_decode(p + nlen + 1, (size_t)(e - p - nlen - 1), out, cap, false);
      return n < 0 ? -2 : n;
    }
    p = e;
  }
  return -1;
}
