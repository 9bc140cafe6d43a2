/* ptrmap.h: a set of pointers by key, open addressing with linear probing.
 * The server's channels (by app id and name) and connections (by id) are
 * kept here: one pointer per slot, at most 3/4 of the slots used
 * (tombstones included), so ~13 bytes per entry at half to 3/4 full,
 * where a uthash handle was 56 bytes inside every object.
 *
 * The map does not know what a key is. The caller passes each call the
 * key's hash and, to find, an equality function; to rehash, the map asks
 * the caller for an entry's hash (the hash_of function). The hash is
 * ptrmap_hash_str/ptrmap_hash_str2 (SipHash-2-4 under the map's own random
 * key, util/siphash.h) wherever clients choose keys (channel names): with
 * an unkeyed hash one could compute thousands of names on one probe chain
 * and make every lookup of them a walk (hash flooding); without the key,
 * one cannot. A map whose keys no client chooses (the server's random
 * connection ids) may pass a cheaper hash.
 *
 * Deleting leaves a tombstone, so SW_PTRMAP_EACH may delete the entry it
 * is at; adding (ptrmap_reserve first) may rehash, so nothing is added
 * while iterating. The order of iteration is the table's. */
#ifndef SW_UTIL_PTRMAP_H
#define SW_UTIL_PTRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/siphash.h"

typedef struct sw_ptrmap {
  void **slot; /* NULL: never used; SW_PTRMAP_TOMB: deleted */
  uint32_t cap, n, tombs;
  /* SipHash-2-4's state after the key (random, chosen with the first
   * slots): each hash starts from a copy. */
  sw_siphash_t seed;
} sw_ptrmap_t;

#define SW_PTRMAP_TOMB ((void *)(uintptr_t)1)

/* Every entry, as p; i names the index variable (distinct names let two
 * iterations nest). */
#define SW_PTRMAP_EACH_(m, p, i)                       \
  for (uint32_t i = 0; i < (m)->cap; i++)              \
    if (((p) = (m)->slot[i]) != NULL && (void *)(p) != SW_PTRMAP_TOMB)
#define SW_PTRMAP_EACH(m, p) SW_PTRMAP_EACH_(m, p, sw_ptrmap_i_)

/* An entry's hash, as it was added (used when rehashing). */
typedef uint64_t (*sw_ptrmap_hash_fn)(const sw_ptrmap_t *m, const void *item);
/* Whether the entry item has the key being looked for. */
typedef bool (*sw_ptrmap_eq_fn)(const void *item, const void *key);

/* SipHash-2-4 under m's key of the string s, or of a then b. Each string
 * is absorbed in whole 8-byte words, its last one zero-padded (so it holds
 * the string's end: different strings, or pairs, never give the same
 * bytes). Valid once ptrmap_reserve has succeeded; before that the map is
 * empty and the hash is not needed. */
uint64_t ptrmap_hash_str(const sw_ptrmap_t *m, const char *s);
uint64_t ptrmap_hash_str2(const sw_ptrmap_t *m, const char *a, const char *b);

/* Room for one more entry: 0, or -1 on OOM (or no random key). Grows
 * (and drops tombstones) when the map would be over 3/4 full; at most
 * half full after a rehash. The first call chooses the key. */
int ptrmap_reserve(sw_ptrmap_t *m, sw_ptrmap_hash_fn hash_of);
/* After ptrmap_reserve: adds item (not in the map) under hash. */
void ptrmap_add(sw_ptrmap_t *m, uint64_t hash, void *item);
/* Removes item (by pointer) added under hash: true if it was there. */
bool ptrmap_del(sw_ptrmap_t *m, uint64_t hash, const void *item);
/* Frees the slots; the map is empty (and may be used again). */
void ptrmap_free(sw_ptrmap_t *m);

/* The entry under hash for which eq(entry, key) holds, or NULL. Inline:
 * the lookup is on every publish's path. */
static inline void *ptrmap_find(const sw_ptrmap_t *m, uint64_t hash, sw_ptrmap_eq_fn eq, const void *key) {
  if (!m->n) return NULL;
  uint32_t mask = m->cap - 1;
  for (uint32_t i = (uint32_t)hash & mask;; i = (i + 1) & mask) {
    void *p = m->slot[i];
    if (!p) return NULL;
    if (p != SW_PTRMAP_TOMB && eq(p, key)) return p;
  }
}

#endif
