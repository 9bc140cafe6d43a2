/* url.h: query-string and percent-encoding helpers (RFC 3986,
 * application/x-www-form-urlencoded for '+').
 *
 * Pure functions over caller-owned bytes: no allocation except into a
 * caller's sw_buf_t, no global state. */
#ifndef SW_NET_URL_H
#define SW_NET_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "net/slice.h"
#include "util/buf.h"

/* Percent-decodes s[0..n) into out[0..outcap).
 *   plus_is_space: decode '+' as ' ' (query names/values); otherwise '+' is
 *                  kept (paths).
 * Returns the decoded length (out is NUL-terminated), or -1 if a '%' is not
 * followed by two hex digits, the result would contain a NUL (%00 or a raw
 * NUL byte), or it would not fit in outcap - 1 bytes. On -1, out holds an
 * empty string when outcap > 0. The result is raw bytes: callers that need
 * text must still check UTF-8. */
ssize_t url_decode(const char *s, size_t n, char *out, size_t outcap, bool plus_is_space);

/* Finds the first parameter whose decoded name equals name (exact, case-
 * sensitive) in a raw query string (without '?'; '&'-separated) and decodes
 * its value into out (as url_decode with plus_is_space). A parameter without
 * '=' has an empty value. Parameters whose names are malformed are skipped.
 * Returns the decoded length, -1 if absent, or -2 if the value is malformed
 * or does not fit in outcap - 1 bytes. */
ssize_t url_query_get(sw_slice_t query, const char *name, char *out, size_t outcap);

/* Iterates over a raw query string's parameters, skipping empty ones
 * ("a=1&&b=2"). Start with *pos = 0. Returns 1 with name and value set to
 * raw (still encoded) slices of query (value.n = 0 when there is no '='),
 * or 0 at the end. */
int url_query_next(sw_slice_t query, size_t *pos, sw_slice_t *name, sw_slice_t *value);

/* Appends s[0..n) to out percent-encoded for a path segment or query value:
 * RFC 3986 unreserved characters (ALPHA DIGIT - . _ ~) are kept, every other
 * byte becomes %XX (upper-case hex). Returns 0, or -ENOMEM with out unchanged. */
int url_encode(sw_buf_t *out, const char *s, size_t n);

#endif
