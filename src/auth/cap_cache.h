/* cap_cache.h: a memo of effective token capabilities.
 *
 * Every token connect or REST request computes token capability ∩ key
 * capability (RSA9/TK2b). Parsing and intersecting costs more than verifying
 * the JWT itself (docs/benchmarks.md), and real apps mint a handful of
 * distinct capabilities for many tokens, so the result is memoised per
 * (key, requested capability text). Bounded: when full it is emptied and
 * refilled. One thread (the loop) only. */
#ifndef SW_AUTH_CAP_CACHE_H
#define SW_AUTH_CAP_CACHE_H

#include <stddef.h>

#include "auth/capability.h"
#include "proto/errors.h"

typedef struct sw_cap_cache sw_cap_cache_t;

/* A cache holding at most max entries; NULL on OOM. Caller frees. */
sw_cap_cache_t *cap_cache_new(size_t max);
/* The effective capability of requested_json (a token's capability text)
 * narrowed to key_cap, for the key named key_name: a new reference the
 * caller releases with cap_free, or NULL with err (40000 invalid capability,
 * 40160 empty intersection). key_cap must stay the same object for a key
 * name (the cache remembers it and recomputes if it changes). */
sw_cap_t *cap_cache_effective(sw_cap_cache_t *cc, const char *key_name, sw_cap_t *key_cap,
                              const char *requested_json, sw_error_t *err);
size_t cap_cache_size(const sw_cap_cache_t *cc);
void cap_cache_free(sw_cap_cache_t *cc);

#endif
