#include "net/forwarded.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const uint8_t V4_MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool addr_is_v4(const uint8_t a[16]) { return memcmp(a, V4_MAPPED, 12) == 0; }

/* inet_pton wants a NUL-terminated string: s[0..n) copied, at most 63 bytes. */
static int pton(const char *s, size_t n, uint8_t out[16], bool *v4) {
  char tmp[64];
  if (n == 0 || n >= sizeof tmp) return -1;
  memcpy(tmp, s, n);
  tmp[n] = 0;
  struct in_addr a4;
  if (inet_pton(AF_INET, tmp, &a4) == 1) {
    memcpy(out, V4_MAPPED, 12);
    memcpy(out + 12, &a4, 4);
    *v4 = true;
    return 0;
  }
  if (inet_pton(AF_INET6, tmp, out) == 1) {
    *v4 = false;
    return 0;
  }
  return -1;
}

int cidr_parse(const char *s, size_t n, sw_cidr_t *out) {
  const char *slash = memchr(s, '/', n);
  size_t alen = slash ? (size_t)(slash - s) : n;
  bool v4;
  uint8_t a[16];
  if (pton(s, alen, a, &v4)) return -1;
  unsigned bits = v4 ? 32 : 128;
  if (slash) {
    const char *d = slash + 1, *end = s + n;
    if (d == end || end - d > 3) return -1;
    unsigned v = 0;
    for (; d < end; d++) {
      if (*d < '0' || *d > '9') return -1;
      v = v * 10 + (unsigned)(*d - '0');
    }
    if (v > bits) return -1;
    bits = v;
  }
  if (v4) bits += 96;
  /* Host bits past the prefix: refused rather than silently dropped. */
  for (unsigned i = bits; i < 128; i++)
    if (a[i / 8] & (0x80 >> (i % 8))) return -1;
  memcpy(out->addr, a, 16);
  out->bits = (uint8_t)bits;
  return 0;
}

int addr_parse(const char *s, size_t n, uint8_t out[16]) {
  bool v4;
  if (n > 0 && s[0] == '[') {
    /* "[v6]" or "[v6]:port" */
    const char *close = memchr(s, ']', n);
    if (!close) return -1;
    size_t rest = n - (size_t)(close - s) - 1;
    if (rest && close[1] != ':') return -1;
    return pton(s + 1, (size_t)(close - s) - 1, out, &v4) == 0 && !v4 ? 0 : -1;
  }
  if (pton(s, n, out, &v4) == 0) return 0;
  /* "a.b.c.d:port": exactly one colon (more would be IPv6, refused above). */
  const char *colon = memchr(s, ':', n);
  if (!colon || memchr(colon + 1, ':', n - (size_t)(colon - s) - 1)) return -1;
  return pton(s, (size_t)(colon - s), out, &v4) == 0 && v4 ? 0 : -1;
}

bool addr_from_sockaddr(const struct sockaddr *sa, uint8_t out[16]) {
  if (sa->sa_family == AF_INET) {
    memcpy(out, V4_MAPPED, 12);
    memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    memcpy(out, ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr, 16);
    return true;
  }
  return false;
}

void addr_format(const uint8_t addr[16], char out[46]) {
  if (addr_is_v4(addr)) inet_ntop(AF_INET, addr + 12, out, 46);
  else inet_ntop(AF_INET6, addr, out, 46);
}

bool addr_is_loopback(const uint8_t addr[16]) {
  static const uint8_t v6_loopback[16] = {[15] = 1};
  return addr_is_v4(addr) ? addr[12] == 127 : memcmp(addr, v6_loopback, 16) == 0;
}

bool cidr_match(const sw_cidr_t *list, size_t n, const uint8_t addr[16]) {
  for (size_t i = 0; i < n; i++) {
    unsigned bits = list[i].bits, whole = bits / 8, rest = bits % 8;
    if (memcmp(list[i].addr, addr, whole) != 0) continue;
    if (rest && ((list[i].addr[whole] ^ addr[whole]) & (uint8_t)(0xff00 >> rest))) continue;
    return true;
  }
  return false;
}

static bool is_space(char c) { return c == ' ' || c == '\t'; }

/* [*a, *z) is [p, end) without surrounding blanks. */
static void trim(const char *p, const char *end, const char **a, const char **z) {
  while (p < end && is_space(*p)) p++;
  while (end > p && is_space(end[-1])) end--;
  *a = p;
  *z = end;
}

bool forwarded_for(const sw_http_req_t *req, const sw_cidr_t *trusted, size_t n, uint8_t out[16]) {
  bool found = false;
  /* The headers from the last to the first, each list from the right. */
  for (size_t h = req->n_headers; h-- > 0;) {
    if (!slice_ieq(req->hname[h], "X-Forwarded-For")) continue;
    const char *begin = req->hval[h].p, *end = begin + req->hval[h].n;
    for (;;) {
      const char *p = end, *a, *z;
      while (p > begin && p[-1] != ',') p--;
      trim(p, end, &a, &z);
      if (z > a) { /* empty elements ("a,,b") are skipped */
        uint8_t addr[16];
        if (addr_parse(a, (size_t)(z - a), addr)) return found; /* stop at the last good one */
        memcpy(out, addr, 16);
        found = true;
        if (!cidr_match(trusted, n, addr)) return true;
      }
      if (p == begin) break;
      end = p - 1; /* the comma */
    }
  }
  return found;
}

bool forwarded_https(const sw_http_req_t *req) {
  for (size_t h = req->n_headers; h-- > 0;) {
    if (!slice_ieq(req->hname[h], "X-Forwarded-Proto")) continue;
    const char *begin = req->hval[h].p, *end = begin + req->hval[h].n, *p = end, *a, *z;
    while (p > begin && p[-1] != ',') p--;
    trim(p, end, &a, &z);
    return slice_ieq((sw_slice_t){a, (size_t)(z - a)}, "https");
  }
  return false;
}
