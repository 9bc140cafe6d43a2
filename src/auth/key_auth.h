/* key_auth.h: API-key (Basic) authentication, RSA11 / RTN2.
 *
 * A key string is "appId.keyId:secret"; the keyName is everything before the
 * first ':'. Secrets are compared in constant time. */
#ifndef SW_AUTH_KEY_AUTH_H
#define SW_AUTH_KEY_AUTH_H

#include <stddef.h>

#include "core/app.h"
#include "proto/errors.h"

/* Checks a full key string. On success returns 0 with *app and *key set
 * (borrowed from the registry). Errors: 40005 malformed key, 40400 unknown
 * app or key, 40101 wrong secret. */
int key_auth_check(const sw_apps_t *apps, const char *keystr, size_t len, sw_app_t **app,
                   sw_key_t **key, sw_error_t *err);

/* Decodes an "Authorization: Basic <b64>" value into out (NUL-terminated).
 * Returns 0 or -1 if it is not valid Basic credentials. */
int key_auth_basic_decode(const char *hdr, size_t len, char *out, size_t outcap);

#endif
