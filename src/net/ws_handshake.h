/* ws_handshake.h: the server side of the RFC 6455 §4.2 opening handshake.
 *
 * Pure: validates an already parsed request and formats the 101 response.
 * SHA-1 and base64 come from OpenSSL's libcrypto. */
#ifndef SW_NET_WS_HANDSHAKE_H
#define SW_NET_WS_HANDSHAKE_H

#include "net/http_parse.h"
#include "proto/errors.h"
#include "util/buf.h"

/* Length of a Sec-WebSocket-Accept value (base64 of 20 bytes), without NUL. */
#define SW_WS_ACCEPT_LEN 28

/* Validates a WebSocket upgrade request: method GET, HTTP/1.1 or later,
 * an Upgrade header whose token list contains "websocket", a Connection
 * header whose token list contains "upgrade" (both case-insensitive, across
 * repeated headers), exactly one "Sec-WebSocket-Version: 13", and exactly one
 * Sec-WebSocket-Key that is base64 of 16 bytes (24 characters ending in "=="; surrounding
 * whitespace was already trimmed by the parser).
 *   req:        a request from http_req_parse() (borrowed).
 *   accept_out: receives the NUL-terminated Sec-WebSocket-Accept value,
 *               base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
 *   err:        on failure, filled via errors_set() with code 40000 (status
 *               400) and a message naming the problem; may be NULL.
 * Returns 0, or -1 (accept_out is then an empty string). A version mismatch
 * should be answered with "Sec-WebSocket-Version: 13" (RFC 6455 §4.4). */
int ws_handshake_check(const sw_http_req_t *req, char accept_out[29], sw_error_t *err);

/* Appends the "101 Switching Protocols" response to out, with Upgrade,
 * Connection and Sec-WebSocket-Accept, then extra_headers (complete
 * "Name: value\r\n" lines, or NULL) and the blank line.
 * Returns 0, -EINVAL (accept or extra_headers contain a bad CR/LF) or
 * -ENOMEM; out is unchanged on error. */
int ws_handshake_response(sw_buf_t *out, const char *accept, const char *extra_headers);

#endif
