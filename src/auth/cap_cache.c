#include "auth/cap_cache.h"

#include <stdlib.h>
#include <string.h>
#include "util/hash.h"

typedef struct entry {
  char *key;             /* key_name NUL requested_json */
  size_t key_len;
  const sw_cap_t *key_cap; /* identity check only */
  sw_cap_t *effective;   /* one reference held by the cache */
  UT_hash_handle hh;
} entry_t;

struct sw_cap_cache {
  entry_t *map;
  size_t n, max;
};

sw_cap_cache_t *cap_cache_new(size_t max) {
  sw_cap_cache_t *cc = calloc(1, sizeof *cc);
  if (cc) cc->max = max ? max : 1;
  return cc;
}

static void entry_free(entry_t *e) {
  cap_free(e->effective);
  free(e->key);
  free(e);
}

static void clear(sw_cap_cache_t *cc) {
  entry_t *e, *tmp;
  HASH_ITER(hh, cc->map, e, tmp) {
    HASH_DEL(cc->map, e);
    entry_free(e);
  }
  cc->n = 0;
}

sw_cap_t *cap_cache_effective(sw_cap_cache_t *cc, const char *key_name, sw_cap_t *key_cap,
                              const char *requested_json, sw_error_t *err) {
  size_t kl = strlen(key_name), rl = strlen(requested_json);
  char stack[512];
  char *k = kl + 1 + rl <= sizeof stack ? stack : malloc(kl + 1 + rl);
  if (!k) {
    errors_set(err, SW_E_INTERNAL, "out of memory");
    return NULL;
  }
  memcpy(k, key_name, kl + 1);
  memcpy(k + kl + 1, requested_json, rl);
  entry_t *e = NULL;
  HASH_FIND(hh, cc->map, k, kl + 1 + rl, e);
  if (e && e->key_cap == key_cap) {
    if (k != stack) free(k);
    return cap_ref(e->effective);
  }
  if (e) { /* the key's capability object changed: recompute */
    HASH_DEL(cc->map, e);
    entry_free(e);
    cc->n--;
  }
  sw_cap_t *requested = cap_parse(requested_json, rl, err);
  sw_cap_t *eff = requested ? cap_intersect(requested, key_cap, err) : NULL;
  cap_free(requested);
  if (!eff) {
    if (k != stack) free(k);
    return NULL;
  }
  if (cc->n >= cc->max) clear(cc);
  e = calloc(1, sizeof *e);
  char *owned = e ? malloc(kl + 1 + rl) : NULL;
  if (e && owned) {
    memcpy(owned, k, kl + 1 + rl);
    e->key = owned;
    e->key_len = kl + 1 + rl;
    e->key_cap = key_cap;
    e->effective = cap_ref(eff);
    HASH_ADD_KEYPTR(hh, cc->map, e->key, e->key_len, e);
    cc->n++;
  } else {
    free(e); /* not cached; the result is still good */
  }
  if (k != stack) free(k);
  return eff;
}

size_t cap_cache_size(const sw_cap_cache_t *cc) { return cc->n; }

void cap_cache_free(sw_cap_cache_t *cc) {
  if (!cc) return;
  clear(cc);
  free(cc);
}
