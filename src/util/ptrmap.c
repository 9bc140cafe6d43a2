#include "util/ptrmap.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

/* s in whole words, straight into the rounds (sip_word): the string's last
 * bytes go in a zero-padded word of their own (a word of zeros if its
 * length is a multiple of 8). That word holds the string's terminating
 * NUL, so the encoding of a sequence of strings (without NULs) is
 * unambiguous. The hash is SipHash-2-4 of those words (siphash_update of
 * the padded bytes gives the same, test_ptrmap checks it), without
 * padding a copy of each string first. */
static void absorb_str(sw_siphash_t *h, const char *s) {
  size_t n = strlen(s), whole = n & ~(size_t)7;
  for (size_t i = 0; i < whole; i += 8) sip_word(h, sip_load_le((const uint8_t *)s + i));
  uint64_t last = 0;
  for (size_t i = n; i > whole; i--) last = last << 8 | (uint8_t)s[i - 1];
  sip_word(h, last);
  h->len += whole + 8;
}

uint64_t ptrmap_hash_str(const sw_ptrmap_t *m, const char *s) {
  sw_siphash_t h = m->seed;
  absorb_str(&h, s);
  return siphash_final(&h);
}

uint64_t ptrmap_hash_str2(const sw_ptrmap_t *m, const char *a, const char *b) {
  sw_siphash_t h = m->seed;
  absorb_str(&h, a);
  absorb_str(&h, b);
  return siphash_final(&h);
}

int ptrmap_reserve(sw_ptrmap_t *m, sw_ptrmap_hash_fn hash_of) {
  if ((uint64_t)(m->n + m->tombs + 1) * 4 <= (uint64_t)m->cap * 3) return 0;
  if (!m->cap) {
    uint8_t key[16];
    if (RAND_bytes(key, sizeof key) != 1) return -1;
    siphash_init(&m->seed, key);
  }
  uint64_t cap = 16;
  while ((uint64_t)(m->n + 1) * 2 > cap) cap *= 2;
  if (cap > UINT32_MAX / 2 + 1) return -1; /* 2^31 slots: never in practice */
  void **slot = calloc((size_t)cap, sizeof *slot);
  if (!slot) return -1;
  uint32_t mask = (uint32_t)cap - 1;
  for (uint32_t i = 0; i < m->cap; i++) {
    void *p = m->slot[i];
    if (!p || p == SW_PTRMAP_TOMB) continue;
    uint32_t k = (uint32_t)hash_of(m, p) & mask;
    while (slot[k]) k = (k + 1) & mask;
    slot[k] = p;
  }
  free(m->slot);
  m->slot = slot;
  m->cap = (uint32_t)cap;
  m->tombs = 0;
  return 0;
}

void ptrmap_add(sw_ptrmap_t *m, uint64_t hash, void *item) {
  uint32_t mask = m->cap - 1, i = (uint32_t)hash & mask;
  /* The first free slot: a tombstone is reused (the probe for item passes
   * it either way), so deletes and adds in turn do not fill the map. */
  while (m->slot[i] && m->slot[i] != SW_PTRMAP_TOMB) i = (i + 1) & mask;
  if (m->slot[i] == SW_PTRMAP_TOMB) m->tombs--;
  m->slot[i] = item;
  m->n++;
}

bool ptrmap_del(sw_ptrmap_t *m, uint64_t hash, const void *item) {
  if (!m->cap) return false;
  uint32_t mask = m->cap - 1;
  for (uint32_t i = (uint32_t)hash & mask; m->slot[i]; i = (i + 1) & mask) {
    if (m->slot[i] != item) continue;
    /* A tombstone, not NULL: entries further on the probe chain stay
     * reachable. The next rehash drops it. */
    m->slot[i] = SW_PTRMAP_TOMB;
    m->n--;
    m->tombs++;
    return true;
  }
  return false;
}

void ptrmap_free(sw_ptrmap_t *m) {
  free(m->slot);
  *m = (sw_ptrmap_t){0};
}
