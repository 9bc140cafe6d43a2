/* token.h: Ably tokens issued by this server (TD1-TD7, RSA8), self-contained.
 *
 * A token string carries everything the server needs to authenticate a
 * request made with it (key name, issue and expiry times, granted
 * capability, clientId, revocation data), encrypted and authenticated with
 * a 32-byte server secret that the server persists. No token is stored, so
 * tokens stay valid across a restart for as long as the secret does; a new
 * secret makes every earlier token fail (40143, and SDKs renew).
 *
 * Format (docs/tokens.md has the details and the reasons):
 *   "sbt1." base64url( iv[16] || AES-256-CTR(enc_key, iv, payload) || tag[32] )
 *   tag = HMAC-SHA256(mac_key, "sbt1." || iv || ciphertext)
 * with enc_key and mac_key derived from the server secret. The string never
 * contains ':' (SDKs take such strings for API keys, RSC1a), never starts
 * with '{', has exactly one '.' (so it is never taken for a JWT, which has
 * three segments) and is at most SW_TOKEN_MAX_LEN bytes (RSA4f).
 *
 * Every function here is pure: no I/O, no globals, safe from any thread. */
#ifndef SW_AUTH_TOKEN_H
#define SW_AUTH_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/errors.h"

/* Fixed prefix, naming the format version. */
#define SW_TOKEN_PREFIX "sbt1."
#define SW_TOKEN_PREFIX_LEN 5
/* ably-js refuses tokens longer than 128 KiB (RSA4f); so do we. */
#define SW_TOKEN_MAX_LEN (128u * 1024u)
#define SW_TOKEN_SECRET_LEN 32

/* What a token says. Strings are owned by the struct (malloc'd); a
 * zero-initialised struct is empty, token_info_clear frees and re-zeroes. */
typedef struct sw_token_info {
  char key_name[128];   /* "appId.keyId", NUL-terminated, 1..127 bytes */
  int64_t issued;       /* ms since the epoch */
  int64_t expires;      /* ms since the epoch; expires - issued is the ttl */
  char *capability;     /* granted capability, canonical JSON; never NULL in a valid token */
  char *client_id;      /* NULL: anonymous; "*": wildcard; else the identity */
  bool revocable;       /* issued by a key with revocableTokens on */
  char *revocation_key; /* NULL when none */
} sw_token_info_t;

/* Mints a token for info with a fresh random IV. Requirements: key_name
 * non-empty and NUL-terminated within its array, capability non-NULL,
 * expires > issued, no string containing NUL (they are C strings), and the
 * result within SW_TOKEN_MAX_LEN. Returns a malloc'd NUL-terminated token
 * the caller frees with free(), or NULL when a requirement fails, when out
 * of memory or when the system RNG fails. The secret is only read. */
char *token_mint(const uint8_t secret[SW_TOKEN_SECRET_LEN], const sw_token_info_t *info);

/* Cheap shape test, no cryptography: true when s[0..n) starts with
 * SW_TOKEN_PREFIX followed by base64url characters only, and n is within
 * the limits a token can have. Lets a caller route a credential to
 * token_verify rather than to the JWT verifier; a true result says nothing
 * about validity. */
bool token_looks_like(const char *s, size_t n);

/* Authenticates and decodes tok[0..n) (need not be NUL-terminated). The tag
 * is checked (in constant time) before anything is decrypted or parsed.
 * Returns 0 with *out filled (the caller owns it: token_info_clear), or -1
 * with *out zeroed and err set (err may be NULL):
 *   40145 (401) the string is not a well-formed token of this format
 *         (prefix, alphabet, length, non-canonical base64url);
 *   40143 (401) well-formed but the tag does not verify: minted with another
 *         server secret or altered, i.e. not a token this server issued;
 *   40142 (401) expired: now_ms >= expires;
 *   50000 (500) out of memory.
 * All are token errors (40140-40149, 401) except 50000, so SDKs renew their
 * token. Messages never quote the token or any secret. */
int token_verify(const uint8_t secret[SW_TOKEN_SECRET_LEN], const char *tok, size_t n, int64_t now_ms,
                 sw_token_info_t *out, sw_error_t *err);

/* Frees the strings of t and zeroes it. NULL is a no-op. */
void token_info_clear(sw_token_info_t *t);

/* ---- References to tokens kept server-side ----
 *
 * A token carries its capability, so a large capability (Ably tokens exist
 * for capabilities too large for a JWT) makes a large token: an 18.9 KB
 * capability seals to 25 KB, more than an HTTP head may hold (16 KiB), and
 * the WebSocket upgrade carries the token in its URL. A token whose sealed
 * form is longer than SW_TOKEN_INLINE_MAX is therefore kept in the server's
 * store and the client gets a reference to it instead:
 *   "sbr1." base64url(32 random bytes)      (SW_TOKEN_REF_LEN characters)
 * which keeps every property of a token string (no ':', no leading '{',
 * exactly one '.', safe in a URL and a header, never taken for a JWT). The
 * store holds the sealed token under token_ref_id (the SHA-256 of the
 * reference, in hex), so neither the store's contents nor the timing of an
 * index lookup reveal a usable reference. */
#define SW_TOKEN_REF_PREFIX "sbr1."
#define SW_TOKEN_REF_LEN 48
#define SW_TOKEN_REF_ID_LEN 64
/* Sealed tokens up to this length are handed out as they are. */
#define SW_TOKEN_INLINE_MAX 4096
/* The most referenced tokens, and bytes of sealed tokens, the store keeps
 * (expired ones are pruned first); past either, requestToken answers 42910. */
#define SW_TOKEN_STORED_MAX 100000
#define SW_TOKEN_STORED_MAX_BYTES (256u << 20)

/* A fresh random reference (malloc'd, NUL-terminated), or NULL when out of
 * memory or when the system RNG fails. */
char *token_ref_new(void);
/* True when s[0..n) is shaped like a reference: the prefix and 43 canonical
 * base64url characters. Says nothing about whether it is stored. */
bool token_ref_looks_like(const char *s, size_t n);
/* The store key of reference s[0..n): SHA-256 in lower-case hex, NUL-terminated. */
void token_ref_id(const char *s, size_t n, char out[SW_TOKEN_REF_ID_LEN + 1]);

/* Lower layer, exposed for the unit tests and the fuzzer: seal arbitrary
 * payload bytes into a token string (what token_mint does after encoding
 * info), and open a token back into its payload bytes after checking the
 * tag. token_seal returns a malloc'd string or NULL (too long, no memory,
 * RNG failure). token_open returns 0 with *payload (malloc'd, caller frees)
 * and *payload_len, or -1 with err as token_verify (40145, 40143, 50000). */
char *token_seal(const uint8_t secret[SW_TOKEN_SECRET_LEN], const uint8_t *payload, size_t payload_len);
int token_open(const uint8_t secret[SW_TOKEN_SECRET_LEN], const char *tok, size_t n, uint8_t **payload,
               size_t *payload_len, sw_error_t *err);

/* Decodes a payload (the plaintext inside a token) into *out. Returns 0, or
 * -1 with err 40145 when the bytes are not a valid payload (or 50000 when
 * out of memory). Does not check expiry. */
int token_payload_decode(const uint8_t *p, size_t n, sw_token_info_t *out, sw_error_t *err);

#endif
