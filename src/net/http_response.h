/* http_response.h: building HTTP/1.1 response heads.
 *
 * Pure formatting into a caller-owned sw_buf_t; nothing is sent. */
#ifndef SW_NET_HTTP_RESPONSE_H
#define SW_NET_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/codec.h"
#include "proto/errors.h"
#include "util/buf.h"

/* Appends a response head to out:
 *   "HTTP/1.1 <status> <reason>\r\n"
 *   "Content-Type: <content_type>\r\n"     (omitted when content_type is NULL)
 *   "Content-Length: <content_length>\r\n" (omitted for 1xx and 204, where
 *                                           RFC 9110 forbids it)
 *   "Connection: keep-alive|close\r\n"     (omitted for 101, whose Connection
 *                                           header belongs in extra_headers)
 *   <extra_headers> "\r\n"
 *   status:        100..599.
 *   content_type:  NUL-terminated, no CR/LF; may be NULL.
 *   extra_headers: zero or more complete "Name: value\r\n" lines, or NULL.
 * Returns 0, -EINVAL (bad status, CR/LF in content_type, extra_headers not
 * ending in CRLF) or -ENOMEM. On error out is left as it was. The caller keeps
 * ownership of every argument. */
int http_response_head(sw_buf_t *out, int status, const char *content_type,
                       size_t content_length, const char *extra_headers, bool keep_alive);

/* Appends a complete Ably error response to out: status e->status, the
 * body {"error":{"code","statusCode","message","href"}} in fmt (JSON or
 * msgpack), and the headers X-Ably-ErrorCode and X-Ably-ErrorMessage (the
 * message with every byte outside printable ASCII replaced by a space, so
 * it cannot break the head), then extra_headers (complete "Name: value\r\n"
 * lines, or NULL). Used for every HTTP refusal, from the REST layer and
 * from the socket layer alike.
 *   e: an error with code and a status of 100..599 (borrowed).
 * Returns 0, -EINVAL or -ENOMEM; out is unchanged on error. */
int http_error_response(sw_buf_t *out, sw_format_t fmt, const sw_error_t *e, const char *extra_headers,
                        bool keep_alive);

/* The standard reason phrase for status ("OK", "Not Found", ...), or
 * "Unknown" for codes we do not list. Returns a static string. */
const char *http_reason(int status);

#endif
