/* token_request.h: TokenRequest and TokenParams bodies of
 * POST /keys/{keyName}/requestToken (TE1-TE6, TK1-TK2, RSA5, RSA6, RSA9).
 *
 * A signed TokenRequest carries a mac made with the key secret and needs no
 * other credential; a body without "mac" is plain TokenParams, which the
 * caller must only accept on a Basic-authenticated request. Suggested order
 * for a handler:
 *   token_request_parse -> find the key (r->key_name, or the URL's) ->
 *   token_request_check_mac (when r->mac) -> token_request_validate ->
 *   nonce_cache_check (when r->mac) -> capability: cap_parse(r->capability)
 *   unless NULL or "" (then the key's), cap_intersect with the key's -> mint.
 * Pure functions except the nonce cache, which is owned by one thread (the
 * loop) and is not locked. See docs/tokens.md for the error-code choices. */
#ifndef SW_AUTH_TOKEN_REQUEST_H
#define SW_AUTH_TOKEN_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/errors.h"

/* ably-js refuses a TokenRequest that serialises to more than 128 KiB
 * (RSA4f); larger bodies are refused before decoding. */
#define SW_TOKEN_REQUEST_MAX_BODY (128u * 1024u)
/* A timestamp further than this from the server's clock gets 40104. */
#define SW_TOKEN_REQUEST_WINDOW_MS (2 * 60 * 1000)
/* Default ttl when none is requested (RSA5, TK2a): 60 minutes. */
#define SW_TOKEN_DEFAULT_TTL_MS (60 * 60 * 1000)
/* Longest ttl: 24 hours; 1 hour for a key with revocable tokens. */
#define SW_TOKEN_MAX_TTL_MS (24 * 60 * 60 * 1000)
#define SW_TOKEN_MAX_TTL_REVOCABLE_MS (60 * 60 * 1000)
/* RSA9c, TK2e: "a unique 16+ character nonce". */
#define SW_TOKEN_NONCE_MIN_LEN 16
/* Our bound: the replay cache keeps every nonce for up to twice the window,
 * so its size must not depend on what the client sends. ably-js sends 16
 * characters; a UUID or a 64-character hex string fit easily. */
#define SW_TOKEN_NONCE_MAX_LEN 256

/* The fields as received, as NUL-terminated malloc'd strings, NULL when
 * absent or null. Numbers are kept as the text JavaScript's String() gives
 * them (3600000 -> "3600000"), which is what ably-js signs; strings are kept
 * byte for byte. A numeric ttl of 0 counts as absent, as it does for ably-js
 * ("ttl || ''") and ably-java. capability "" is kept as "" (= none asked);
 * a capability given as a JSON object is kept as its compact text. */
typedef struct sw_token_request {
  char *key_name;
  char *ttl;
  char *capability;
  char *client_id;
  char *timestamp;
  char *nonce;
  char *mac;          /* NULL: unsigned TokenParams */
  bool has_client_id; /* clientId present and not null (client_id != NULL) */
} sw_token_request_t;

/* Parses a TokenRequest/TokenParams body p[0..n), JSON or msgpack. Unknown
 * fields are ignored. Returns 0 with *out filled (caller frees with
 * token_request_clear), or -1 with *out empty and err set (err may be NULL):
 *   40000 body over SW_TOKEN_REQUEST_MAX_BODY, undecodable, or not an object;
 *   40001 a field of the wrong type (a string field that is not a string,
 *         a number field that is neither a number nor a string, a string
 *         with NUL), or, when "mac" is present, keyName, timestamp or nonce
 *         missing (Ably's docs give "missing keyName in a token request" as
 *         their 40001 example);
 *   40012 clientId present but neither a string nor null;
 *   50000 out of memory. */
int token_request_parse(const uint8_t *p, size_t n, int is_msgpack, sw_token_request_t *out, sw_error_t *err);

/* Frees the strings of r and zeroes it. NULL is a no-op. */
void token_request_clear(sw_token_request_t *r);

/* The text the mac signs (RSA9g, as ably-js builds it):
 *   keyName "\n" ttl "\n" capability "\n" clientId "\n" timestamp "\n" nonce "\n"
 * with each field as received and "" for an absent one. Returns a malloc'd
 * string (caller frees) or NULL when out of memory. */
char *token_request_sign_text(const sw_token_request_t *r);

/* Checks r->mac: standard base64 (with padding) of HMAC-SHA256 keyed with
 * the key secret secret[0..secret_len) (its UTF-8 bytes) over
 * token_request_sign_text(r). The comparison is constant-time. Returns 0,
 * or -1 with err (may be NULL) 40101 (401) when the mac is absent or wrong,
 * 50000 when out of memory. */
int token_request_check_mac(const sw_token_request_t *r, const char *secret, size_t secret_len,
                            sw_error_t *err);

/* Signs r in place: replaces r->mac with the mac for its current fields.
 * For tests and tools that create TokenRequests (RSA9). Returns 0, or -1
 * when out of memory (r->mac is then unchanged). */
int token_request_sign(sw_token_request_t *r, const char *secret, size_t secret_len);

/* Validates the values of a parsed request at server time now_ms; checks run
 * in this order, the first failure wins (err may be NULL):
 *   timestamp: absent is an error for a signed request (40001) and means
 *              now_ms for TokenParams; otherwise an integer (40003 if not)
 *              no further than SW_TOKEN_REQUEST_WINDOW_MS from now_ms, else
 *              40104 (401, "Timestamp not current");
 *   nonce:     a signed request's nonce has at least SW_TOKEN_NONCE_MIN_LEN
 *              and at most SW_TOKEN_NONCE_MAX_LEN bytes, else 40003;
 *   ttl:       absent means SW_TOKEN_DEFAULT_TTL_MS; else an integer
 *              (40003), > 0 (40003), <= SW_TOKEN_MAX_TTL_MS (40003), and
 *              <= SW_TOKEN_MAX_TTL_REVOCABLE_MS when revocable_key (40003);
 *   clientId:  "" is 40012 (400).
 * On success returns 0 and sets *ttl_ms and *timestamp_ms. The capability is
 * not looked at here (see the order in the file comment). */
int token_request_validate(const sw_token_request_t *r, int64_t now_ms, bool revocable_key, int64_t *ttl_ms,
                           int64_t *timestamp_ms, sw_error_t *err);

/* Nonce replay cache: remembers (keyName, nonce, timestamp) of accepted
 * signed requests until their timestamp leaves the window, so a captured
 * TokenRequest cannot be used twice. Memory is bounded by max_entries.
 * One owner, one thread. */
typedef struct sw_nonce_cache sw_nonce_cache_t;

/* New cache holding at most max_entries (>= 1) triples for window_ms (> 0,
 * normally SW_TOKEN_REQUEST_WINDOW_MS). Returns NULL when out of memory or
 * for invalid arguments. Free with nonce_cache_free. */
sw_nonce_cache_t *nonce_cache_new(size_t max_entries, int64_t window_ms);

/* Records (key_name, nonce, timestamp_ms) at time now_ms, first forgetting
 * every entry whose timestamp is no longer within the window. Returns 0 when
 * the triple is fresh (it is now remembered), or -1 with err (may be NULL):
 *   40105 (401) the same triple was seen within the window (replay);
 *   40104 (401) timestamp_ms is outside the window (it could never be
 *         remembered long enough, so it is refused rather than recorded);
 *   40003 (400) nonce longer than SW_TOKEN_NONCE_MAX_LEN or key_name longer
 *         than 1024 bytes (validation refuses such requests first);
 *   42910 (429) the cache is full of unexpired entries: refusing is the
 *         only choice that keeps the replay guarantee, and the client may
 *         retry with a new TokenRequest once entries expire;
 *   50000 out of memory. */
int nonce_cache_check(sw_nonce_cache_t *c, const char *key_name, const char *nonce, int64_t timestamp_ms,
                      int64_t now_ms, sw_error_t *err);

/* Number of triples currently remembered (for tests and metrics). */
size_t nonce_cache_size(const sw_nonce_cache_t *c);

/* Frees c and everything in it; NULL is a no-op. */
void nonce_cache_free(sw_nonce_cache_t *c);

#endif
