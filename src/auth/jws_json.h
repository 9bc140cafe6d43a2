/* jws_json.h: the header and claims objects of a provider JWT, parsed fast.
 *
 * jansson's json_loadb is the reference, and it is slow for this job: it
 * reads its input a byte at a time through a stream with UTF-8 checks and a
 * growing token buffer, ~3 us for 250 bytes of typical claims, a fifth of
 * a whole RS256 verification (docs/benchmarks.md, "Identity provider
 * tokens"). Building the same object through jansson's API costs a tenth
 * of that. So jws_json_object first tries a direct parser for the JSON real
 * tokens hold: objects and arrays nested up to JWS_JSON_FAST_DEPTH levels
 * (the top object is one), strings of ASCII or valid UTF-8 with the simple
 * escapes (\" \\ \/ \b \f \n \r \t), integers of at most 18 digits,
 * true, false, null. Anything else (\u
 * escapes, numbers with a fraction or an exponent or more digits, deeper
 * nesting, duplicate names, any syntax error) goes to json_loadb with
 * JSON_REJECT_DUPLICATES, which then decides, so the answer is always
 * exactly jansson's (fuzz/fuzz_jws.c checks this differentially). */
#ifndef SW_AUTH_JWS_JSON_H
#define SW_AUTH_JWS_JSON_H

#include <jansson.h>
#include <stddef.h>

#define JWS_JSON_FAST_DEPTH 16

/* The JSON object in p (n bytes, need not be NUL-terminated), as
 * json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL) would give it; NULL when
 * that fails or is not an object. The caller json_decref()s it. */
json_t *jws_json_object(const char *p, size_t n);

/* The fast parser alone: 0 with *out (a new object) when it could parse p,
 * 1 when jansson must decide (nothing allocated). Exposed for the
 * differential fuzzer and the unit tests. */
int jws_json_fast(const char *p, size_t n, json_t **out);

#endif
