/* key_auth.h: the Basic Authorization header of API-key authentication,
 * RSA11 / RTN2. Checking the key string against the apps is
 * apps_key_check (core/app.h): auth/ knows no apps. */
#ifndef SW_AUTH_KEY_AUTH_H
#define SW_AUTH_KEY_AUTH_H

#include <stddef.h>

/* Decodes an "Authorization: Basic <b64>" value into out (NUL-terminated).
 * Returns 0 or -1 if it is not valid Basic credentials. */
int key_auth_basic_decode(const char *hdr, size_t len, char *out, size_t outcap);

#endif
