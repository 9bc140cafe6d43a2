/* siphash.h: SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast
 * short-input PRF", 2012), for hash tables keyed by strings a client
 * chooses (channel names). With a random key per process, a client cannot
 * compute names that collide, so a table cannot be made to degrade into a
 * list (hash flooding). Written from the paper; tests/unit/test_siphash.c
 * checks the paper's test vector. */
#ifndef SW_UTIL_SIPHASH_H
#define SW_UTIL_SIPHASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct sw_siphash {
  uint64_t v0, v1, v2, v3;
  uint64_t tail; /* bytes not yet in a word, little-endian */
  size_t len;    /* bytes absorbed so far */
} sw_siphash_t;

static inline uint64_t sip_rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

static inline void sip_round(sw_siphash_t *s) {
  s->v0 += s->v1, s->v1 = sip_rotl(s->v1, 13), s->v1 ^= s->v0, s->v0 = sip_rotl(s->v0, 32);
  s->v2 += s->v3, s->v3 = sip_rotl(s->v3, 16), s->v3 ^= s->v2;
  s->v0 += s->v3, s->v3 = sip_rotl(s->v3, 21), s->v3 ^= s->v0;
  s->v2 += s->v1, s->v1 = sip_rotl(s->v1, 17), s->v1 ^= s->v2, s->v2 = sip_rotl(s->v2, 32);
}

static inline void sip_word(sw_siphash_t *s, uint64_t m) {
  s->v3 ^= m;
  sip_round(s);
  sip_round(s);
  s->v0 ^= m;
}

/* memcpy is one load; the shift loop it replaced was not recognised as one
 * by gcc 12 at -O2 (40 instructions a word, most of the hash's cost). */
static inline uint64_t sip_load_le(const uint8_t *p) {
  uint64_t w;
  memcpy(&w, p, sizeof w);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  w = __builtin_bswap64(w);
#endif
  return w;
}

/* key: 16 bytes, k0 and k1 little-endian. */
static inline void siphash_init(sw_siphash_t *s, const uint8_t key[16]) {
  uint64_t k0 = sip_load_le(key), k1 = sip_load_le(key + 8);
  s->v0 = k0 ^ 0x736f6d6570736575ull;
  s->v1 = k1 ^ 0x646f72616e646f6dull;
  s->v2 = k0 ^ 0x6c7967656e657261ull;
  s->v3 = k1 ^ 0x7465646279746573ull;
  s->tail = 0;
  s->len = 0;
}

static inline void siphash_update(sw_siphash_t *s, const void *data, size_t n) {
  const uint8_t *p = data;
  size_t i = 0;
  /* Complete a word left partly filled by the previous call, byte by byte
   * (at most 7 bytes), so that the rest of this call can go a word at a
   * time: a key hashed in parts (the channel map's "<app id>\0", then the
   * name) took the byte-at-a-time path for the whole of every part after
   * one whose length was not a multiple of 8. */
  for (; i < n && (s->len & 7) != 0; i++) {
    s->tail |= (uint64_t)p[i] << (8 * (s->len & 7));
    if ((++s->len & 7) == 0) {
      sip_word(s, s->tail);
      s->tail = 0;
    }
  }
  for (; i + 8 <= n; i += 8, s->len += 8) sip_word(s, sip_load_le(p + i));
  for (; i < n; i++, s->len++) s->tail |= (uint64_t)p[i] << (8 * (s->len & 7));
}

static inline uint64_t siphash_final(sw_siphash_t *s) {
  sip_word(s, s->tail | (uint64_t)(s->len & 0xff) << 56);
  s->v2 ^= 0xff;
  for (int i = 0; i < 4; i++) sip_round(s);
  return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

#endif
