/* http_parse.h: HTTP/1.1 request parsing (on Debian's http-parser 2.9).
 *
 * A pure decoder: http_req_parse() reads bytes the caller already holds,
 * does no I/O, keeps no state between calls and allocates nothing. Every
 * slice in sw_http_req_t points into the caller's buffer, so the request is
 * only valid while that buffer is unchanged. A caller that receives more bytes
 * simply calls again from the start of the buffer; the work is bounded by
 * max_head + max_body. */
#ifndef SW_NET_HTTP_PARSE_H
#define SW_NET_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#include "net/slice.h"

#define SW_HTTP_MAX_HEADERS 64

/* Default limits, used when http_req_parse() gets lim == NULL. */
#define SW_HTTP_DEFAULT_MAX_HEAD (16u * 1024u)
#define SW_HTTP_DEFAULT_MAX_BODY (1024u * 1024u)

typedef struct sw_http_limits {
  size_t max_head; /* request line + headers + blank line, in bytes */
  size_t max_body; /* Content-Length ceiling, in bytes */
} sw_http_limits_t;

typedef struct sw_http_req {
  int method; /* enum http_method (HTTP_GET, HTTP_POST, ...) */
  int http_major, http_minor;
  sw_slice_t target; /* request-target exactly as sent */
  sw_slice_t path;   /* target without query/fragment; for absolute-form
                        targets ("http://h/x") just the path part, or a
                        static "/" when that is empty (the one slice that
                        may point outside the buffer) */
  sw_slice_t query;  /* raw query without '?' (n = 0 if none) */
  sw_slice_t hname[SW_HTTP_MAX_HEADERS], hval[SW_HTTP_MAX_HEADERS];
  size_t n_headers;  /* names as sent; values without surrounding SP/HT */
  bool keep_alive;   /* http_should_keep_alive() */
  bool upgrade;      /* "Connection: upgrade" token and an Upgrade header */
  size_t head_len;   /* bytes of request line + headers + blank line */
  sw_slice_t body;   /* Content-Length body (n = 0 when none) */
} sw_http_req_t;

enum {
  SW_HTTP_NEED_MORE = 0,
  SW_HTTP_MALFORMED = -1,       /* 400 */
  SW_HTTP_HEAD_TOO_LARGE = -2,  /* 431 */
  SW_HTTP_BODY_TOO_LARGE = -3,  /* 413 */
  SW_HTTP_LENGTH_REQUIRED = -4, /* 411: chunked request bodies are refused */
};

/* Parses one request at the start of buf[0..len).
 *   buf, len: bytes received so far (not modified; need not be NUL-terminated).
 *   lim:      size limits; NULL means SW_HTTP_DEFAULT_MAX_HEAD/_BODY.
 *   req:      filled on success; its slices point into buf. On NEED_MORE,
 *             req->head_len is 0 until the head is complete; once it is > 0
 *             everything but body is filled in (and body holds the bytes
 *             seen so far), so the caller may answer early, e.g. to
 *             "Expect: 100-continue". Unspecified on other returns.
 * Returns the bytes the request occupies (> 0: head plus Content-Length body;
 * later bytes are the next pipelined request, or for an upgrade request the
 * new protocol's), or:
 *   SW_HTTP_NEED_MORE       the request is incomplete; call again with more;
 *   SW_HTTP_MALFORMED       not HTTP/1.x, or more than SW_HTTP_MAX_HEADERS
 *                           headers, or a folded (obs-fold) header line, or
 *                           a singleton header sent twice (Host, RFC 9112
 *                           §3.2; Authorization, which layers could read
 *                           differently; Content-Length: http-parser);
 *   SW_HTTP_HEAD_TOO_LARGE  the head exceeds max_head (reported as soon as
 *                           max_head bytes arrived without the head ending);
 *   SW_HTTP_BODY_TOO_LARGE  Content-Length > max_body (reported as soon as
 *                           the head is complete, before the body arrives);
 *   SW_HTTP_LENGTH_REQUIRED Transfer-Encoding: chunked request.
 * Any negative return means the connection cannot be resynchronised. */
int http_req_parse(const uint8_t *buf, size_t len, const sw_http_limits_t *lim,
                   sw_http_req_t *req);

/* Case-insensitive lookup of the first header called name (a NUL-terminated
 * literal). Returns a pointer into req->hval, or NULL if absent. */
const sw_slice_t *http_req_header(const sw_http_req_t *req, const char *name);

/* How many headers are called name (case-insensitive, NUL-terminated). */
size_t http_req_header_count(const sw_http_req_t *req, const char *name);

/* True if s holds exactly the bytes of the NUL-terminated lit. */
bool slice_eq(sw_slice_t s, const char *lit);

/* As slice_eq, ignoring ASCII case. */
bool slice_ieq(sw_slice_t s, const char *lit);

#endif
