/* rest.h: Ably's REST API (RSC*, RSL*): publish, history, channel status,
 * time, and the HTTP side of errors and CORS. */
#ifndef SW_REST_REST_H
#define SW_REST_REST_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/codec.h"

typedef struct sw_sock sw_sock_t;
struct sw_http_req;

typedef struct sw_principal sw_principal_t;
/* Authenticates a REST request: Basic, Bearer (raw or base64), the key and
 * access_token query parameters, or the configured cookie. 0 or -1 with err. */
int rest_authenticate(sw_sock_t *s, const struct sw_http_req *req, sw_principal_t *p, sw_error_t *err);

/* Handles one non-upgrade HTTP request. */
void rest_handle(sw_sock_t *s, const struct sw_http_req *req);

/* sw_publisher_t.done of a REST publish: answers who->rest_sock once the
 * publish is durable (or failed), in who->rest_format: the channel and the
 * serials (201), or {versionSerial} for a mutation (who->rest_version). */
struct sw_publisher;
void rest_publish_done(const struct sw_publisher *who, const char *channel, const sw_error_t *err, char **serials,
                       size_t n);

/* The Access-Control-Allow-Origin (and -Credentials) lines for s's request. */
void rest_cors_headers(sw_buf_t *h, const sw_sock_t *s);

/* Writes a response with an encoded body (NULL for none) and the CORS and
 * Ably headers every response carries. */
void rest_reply(sw_sock_t *s, int status, sw_format_t fmt, const sw_buf_t *body, bool keep_alive,
                const char *extra_headers);
/* Writes an Ably error response: status = e->status, body
 * {"error":{...}}, X-Ably-ErrorCode and X-Ably-ErrorMessage headers. */
void rest_error(sw_sock_t *s, sw_format_t fmt, const sw_error_t *e, bool keep_alive);
/* Writes a json_t value as the response body (in fmt). */
void rest_reply_value(sw_sock_t *s, int status, sw_format_t fmt, const json_t *v, bool keep_alive,
                      const char *extra_headers);

#endif
