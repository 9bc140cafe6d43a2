/* keys.h: the key endpoints: POST /keys/{keyName}/requestToken (RSA8,
 * TokenRequest → TokenDetails) and POST /keys/{keyName}/revokeTokens
 * (RSA17). */
#ifndef SW_REST_KEYS_H
#define SW_REST_KEYS_H

#include "proto/codec.h"

typedef struct sw_sock sw_sock_t;
struct sw_http_req;

void keys_handle(sw_sock_t *s, const struct sw_http_req *req, sw_format_t fmt);

#endif
