/* forwarded.h: who a request came from when a reverse proxy sits in front:
 * trusted proxy lists (addresses and CIDR blocks), X-Forwarded-For and
 * X-Forwarded-Proto. Pure: no I/O, no allocation.
 *
 * Addresses are 16 bytes: IPv6 as is, IPv4 as the mapped ::ffff:a.b.c.d,
 * so that one list and one comparison serve both families. */
#ifndef SW_NET_FORWARDED_H
#define SW_NET_FORWARDED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "net/http_parse.h"

typedef struct sw_cidr {
  uint8_t addr[16]; /* the network: bits past `bits` are zero */
  uint8_t bits;     /* prefix length over the 16 bytes (an IPv4 /24 is 120) */
} sw_cidr_t;

/* "10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::1"; 0 or -1. An IPv4
 * prefix longer than 32 or IPv6 longer than 128 is refused; so are host
 * bits set past the prefix ("10.0.0.1/8": a typo, probably). */
int cidr_parse(const char *s, size_t n, sw_cidr_t *out);
/* An IP literal (no prefix) as 16 bytes; also "[v6]", "[v6]:port" and
 * "a.b.c.d:port", as proxies may write them; 0 or -1. */
int addr_parse(const char *s, size_t n, uint8_t out[16]);
/* A socket address as 16 bytes; false if it is neither IPv4 nor IPv6. */
bool addr_from_sockaddr(const struct sockaddr *sa, uint8_t out[16]);
/* Text of a 16-byte address (IPv4-mapped as a.b.c.d); out has 46 bytes. */
void addr_format(const uint8_t addr[16], char out[46]);
bool addr_is_loopback(const uint8_t addr[16]);
bool addr_is_v4(const uint8_t addr[16]); /* ::ffff:a.b.c.d */

bool cidr_match(const sw_cidr_t *list, size_t n, const uint8_t addr[16]);

/* The client of a request that came from a trusted proxy: the X-Forwarded-For
 * lists (all such headers, in order, as one list) read from the right, past
 * every address that is itself in `trusted`, to the first one that is not.
 * If every address is trusted, the leftmost; an entry that is not an
 * address ends the walk at the last good one. False (out untouched) when
 * the request has no usable X-Forwarded-For: the proxy itself is the client. */
bool forwarded_for(const sw_http_req_t *req, const sw_cidr_t *trusted, size_t n, uint8_t out[16]);
/* Whether X-Forwarded-Proto says https: the last value of the last such
 * header, which the nearest proxy wrote (a client's own is not believed). */
bool forwarded_https(const sw_http_req_t *req);

#endif
