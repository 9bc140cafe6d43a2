/* origin.h: same-origin checks for browser credentials.
 *
 * A session cookie is sent by the browser to whatever page makes the
 * request, so a cookie credential is honoured only when the request comes
 * from switchboard's own origin: no Origin header (not a cross-site browser
 * request), or an Origin whose host[:port] equals the Host header. This is
 * what stops another site from reading REST data or opening a WebSocket
 * (cross-site WebSocket hijacking) with a user's cookie. */
#ifndef SW_NET_ORIGIN_H
#define SW_NET_ORIGIN_H

#include <stdbool.h>
#include <sys/types.h>

#include "net/http_parse.h"

/* Pure: true if origin ("scheme://host[:port]") names host ("host[:port]"),
 * compared case-insensitively. */
bool origin_matches_host(sw_slice_t origin, sw_slice_t host);
/* True if req carries no Origin header or its Origin matches its Host. */
bool origin_same_site(const sw_http_req_t *req);

/* The value of cookie name in req's Cookie header, percent-decoded into
 * out (NUL-terminated): its length, -1 when absent or when the request is
 * not same-site (origin_same_site: a cookie is a browser credential), -2
 * when malformed or longer than cap - 1. */
ssize_t origin_cookie_get(const sw_http_req_t *req, const char *name, char *out, size_t cap);

#endif
