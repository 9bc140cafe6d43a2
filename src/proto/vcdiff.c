/* vcdiff.c: the RFC 3284 VCDIFF encoder (see vcdiff.h). Written from the
 * RFC: sections 4 (delta file organisation), 5.1 (integers), 5.3 (address
 * modes) and 5.6 (the default code table). */
#include "proto/vcdiff.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MIN_MATCH 4 /* the default code table's smallest COPY with its size in the opcode */

/* Default code table (RFC 3284 5.6) opcodes this encoder uses. */
#define OP_ADD0 1   /* ADD, size follows */
#define OP_COPY0 19 /* COPY mode 0, size follows; mode m at OP_COPY0 + 16 m */
#define MODE_SELF 0 /* address as is */
#define MODE_HERE 1 /* here - address */

/* A section being written: never beyond cap. */
typedef struct {
  uint8_t *p;
  size_t len, cap;
  bool full;
} sect_t;

static void put_byte(sect_t *s, uint8_t b) {
  if (s->len >= s->cap) {
    s->full = true;
    return;
  }
  s->p[s->len++] = b;
}

static size_t int_len(size_t v) {
  size_t n = 1;
  while (v >>= 7) n++;
  return n;
}

/* 5.1: base-128 digits, most significant first, bit 7 set on all but the last. */
static void put_int(sect_t *s, size_t v) {
  uint8_t tmp[10];
  size_t n = int_len(v);
  for (size_t i = n; i-- > 0; v >>= 7) tmp[i] = (uint8_t)((v & 0x7f) | (i + 1 < n ? 0x80 : 0));
  for (size_t i = 0; i < n; i++) put_byte(s, tmp[i]);
}

static void put_bytes(sect_t *s, const uint8_t *b, size_t n) {
  if (n > s->cap - s->len) {
    s->full = true;
    return;
  }
  memcpy(s->p + s->len, b, n);
  s->len += n;
}

typedef struct {
  sect_t data, inst, addr;
  size_t slen; /* target position t is address slen + t in the window's U */
} enc_t;

static void emit_add(enc_t *e, const uint8_t *bytes, size_t n) {
  if (!n) return;
  if (n <= 17) {
    put_byte(&e->inst, (uint8_t)(OP_ADD0 + n));
  } else {
    put_byte(&e->inst, OP_ADD0);
    put_int(&e->inst, n);
  }
  put_bytes(&e->data, bytes, n);
}

/* A COPY of n >= MIN_MATCH bytes from source address addr, the target
 * being at t: VCD_HERE when its distance is shorter to write. */
static void emit_copy(enc_t *e, size_t addr, size_t t, size_t n) {
  size_t here = e->slen + t;
  int mode = int_len(here - addr) < int_len(addr) ? MODE_HERE : MODE_SELF;
  int op = OP_COPY0 + 16 * mode;
  if (n <= 18) {
    put_byte(&e->inst, (uint8_t)(op + (int)(n - 3)));
  } else {
    put_byte(&e->inst, (uint8_t)op);
    put_int(&e->inst, n);
  }
  put_int(&e->addr, mode == MODE_HERE ? here - addr : addr);
}

static uint32_t hash4(const uint8_t *p, uint32_t mask) {
  uint32_t v;
  memcpy(&v, p, 4);
  return (v * 2654435761u) >> 7 & mask;
}

/* The sections of the one window: matches against the source, the rest
 * added literally. */
static void encode_sections(enc_t *e, const uint8_t *src, size_t slen, const uint8_t *tgt, size_t tlen,
                            uint32_t *table, uint32_t mask) {
  size_t pending = 0; /* tgt[pending..t) is not emitted yet */
  size_t t = 0;
  while (table && t + MIN_MATCH <= tlen) {
    if (e->data.full || e->inst.full || e->addr.full) return;
    uint32_t cand = table[hash4(tgt + t, mask)];
    if (cand == 0) {
      t++;
      continue;
    }
    size_t s = cand - 1;
    if (memcmp(src + s, tgt + t, MIN_MATCH) != 0) {
      t++;
      continue;
    }
    size_t n = MIN_MATCH;
    while (s + n < slen && t + n < tlen && src[s + n] == tgt[t + n]) n++;
    /* Backwards over bytes not emitted yet. */
    while (s > 0 && t > pending && src[s - 1] == tgt[t - 1]) {
      s--;
      t--;
      n++;
    }
    emit_add(e, tgt + pending, t - pending);
    emit_copy(e, s, t, n);
    t += n;
    pending = t;
  }
  if (tlen > pending) emit_add(e, tgt + pending, tlen - pending); /* tgt may be NULL when tlen is 0 */
}

/* Entries 1 + position of the last 4-byte block of the source with each
 * hash (0: none), or NULL when the source is too short to match. */
static uint32_t *build_table(const uint8_t *src, size_t slen, uint32_t *mask, bool *nomem) {
  *nomem = false;
  if (slen < MIN_MATCH) return NULL;
  size_t size = 256;
  while (size < slen && size < SW_VCDIFF_MAX_HASH) size <<= 1;
  uint32_t *table = calloc(size, sizeof *table);
  if (!table) {
    *nomem = true;
    return NULL;
  }
  *mask = (uint32_t)(size - 1);
  /* Backwards, so that the first block with a hash wins: matches then
   * tend to continue in order through the source. */
  for (size_t i = slen - MIN_MATCH + 1; i-- > 0;) table[hash4(src + i, *mask)] = (uint32_t)(i + 1);
  return table;
}

sw_vcdiff_rc_t vcdiff_encode(const uint8_t *source, size_t slen, const uint8_t *target, size_t tlen, uint8_t *out,
                             size_t cap, size_t *out_len) {
  if ((slen && !source) || (tlen && !target) || !out_len || (cap && !out)) return SW_VCDIFF_INVALID;
  if (slen > SW_VCDIFF_MAX_INPUT || tlen > SW_VCDIFF_MAX_INPUT) return SW_VCDIFF_INVALID;
  /* No section can be larger than the whole delta, nor need to be much
   * larger than the target. */
  size_t sect_cap = cap < 2 * tlen + 16 ? cap : 2 * tlen + 16;
  uint8_t *buf = malloc(3 * sect_cap + 1);
  if (!buf) return SW_VCDIFF_NOMEM;
  enc_t e = {.data = {buf, 0, sect_cap, false},
             .inst = {buf + sect_cap, 0, sect_cap, false},
             .addr = {buf + 2 * sect_cap, 0, sect_cap, false},
             .slen = slen};
  uint32_t mask = 0;
  bool nomem;
  uint32_t *table = build_table(source, slen, &mask, &nomem);
  if (nomem) {
    free(buf);
    return SW_VCDIFF_NOMEM;
  }
  encode_sections(&e, source, slen, target, tlen, table, mask);
  free(table);
  if (e.data.full || e.inst.full || e.addr.full) {
    free(buf);
    return SW_VCDIFF_TOO_BIG;
  }

  /* The delta encoding (4.3): target length, Delta_Indicator, the three
   * section lengths, the sections. */
  size_t enc_len = int_len(tlen) + 1 + int_len(e.data.len) + int_len(e.inst.len) + int_len(e.addr.len) +
                   e.data.len + e.inst.len + e.addr.len;
  size_t total = 5 + 1 + (slen ? int_len(slen) + int_len(0) : 0) + int_len(enc_len) + enc_len;
  if (total > cap) {
    free(buf);
    return SW_VCDIFF_TOO_BIG;
  }
  sect_t o = {out, 0, cap, false};
  static const uint8_t magic[5] = {0xD6, 0xC3, 0xC4, 0x00, 0x00}; /* "VCD" | 0x80, version 0, Hdr_Indicator 0 */
  put_bytes(&o, magic, sizeof magic);
  if (slen) {
    put_byte(&o, 0x01); /* VCD_SOURCE: the whole source is the segment */
    put_int(&o, slen);
    put_int(&o, 0);
  } else {
    put_byte(&o, 0x00);
  }
  put_int(&o, enc_len);
  put_int(&o, tlen);
  put_byte(&o, 0x00); /* Delta_Indicator: no secondary compression */
  put_int(&o, e.data.len);
  put_int(&o, e.inst.len);
  put_int(&o, e.addr.len);
  put_bytes(&o, e.data.p, e.data.len);
  put_bytes(&o, e.inst.p, e.inst.len);
  put_bytes(&o, e.addr.p, e.addr.len);
  free(buf);
  if (o.full || o.len != total) return SW_VCDIFF_TOO_BIG; /* cannot happen: total was checked */
  *out_len = o.len;
  return SW_VCDIFF_OK;
}
