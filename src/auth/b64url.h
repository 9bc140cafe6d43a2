/* b64url.h: unpadded base64url (RFC 4648 section 5), as JWS uses it (RFC 7515
 * section 2, "Base64url Encoding").
 *
 * Encoding translates the output of OpenSSL's EVP_EncodeBlock (base64url
 * differs from base64 only in '-' for '+', '_' for '/' and in leaving out
 * the '=' padding). Decoding is a table loop of its own, because the
 * EVP_DecodeBlock route was a fifth of a JWT verification (b64url.c and
 * docs/benchmarks.md); tests/unit/test_jwt.c checks that it agrees with
 * OpenSSL on every input. Nothing here allocates.
 *
 * Decoding is strict, because a JWS signature must have exactly one textual
 * form: characters outside the base64url alphabet, '=' padding, whitespace,
 * a length of 1 modulo 4, and non-zero unused bits in the last character
 * are all rejected. Without the last rule "...Q" and "...R" could decode
 * to the same signature bytes, and a tampered token would still verify. */
#ifndef SW_AUTH_B64URL_H
#define SW_AUTH_B64URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when c is in the base64url alphabet (A-Z a-z 0-9 - _). */
bool b64url_is_char(unsigned char c);

/* Bytes that decoding n characters can produce at most; the exact count for
 * any valid input (n % 4 == 1 is never valid). */
size_t b64url_decoded_len(size_t n);

/* Characters that encoding n bytes produces, without the terminating NUL. */
size_t b64url_encoded_len(size_t n);

/* Decodes n characters of in (need not be NUL-terminated) into out, which
 * holds outcap bytes. Returns the number of bytes written, or -1 when the
 * input is not canonical unpadded base64url (see above) or outcap is less
 * than b64url_decoded_len(n). n == 0 decodes to 0 bytes. */
long b64url_decode(const char *in, size_t n, uint8_t *out, size_t outcap);

/* Encodes n bytes of in into out as unpadded base64url and NUL-terminates
 * it; out holds outcap bytes, which must be at least
 * b64url_encoded_len(n) + 1. Returns the length written (without the NUL),
 * or -1 when outcap is too small. */
long b64url_encode(const uint8_t *in, size_t n, char *out, size_t outcap);

#endif
