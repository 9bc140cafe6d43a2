/* vcdiff_decode.h: an RFC 3284 VCDIFF decoder for the tests of the
 * encoder (tests/unit/test_vcdiff.c, fuzz/fuzz_vcdiff.c) only: the server
 * never decodes deltas (clients do, ably-js with @ably/vcdiff-decoder).
 * Written from the RFC: the default code table (5.6), all address modes
 * and caches (5.3), ADD, RUN and COPY (overlapping copies included),
 * VCD_SOURCE and VCD_TARGET windows, and xdelta3's VCD_ADLER32 window
 * checksum (read, not verified); no secondary compression, no custom code
 * table. Every read is bounds-checked: any malformed delta is refused. */
#ifndef SW_TESTS_VCDIFF_DECODE_H
#define SW_TESTS_VCDIFF_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { VCD_NOOP = 0, VCD_ADD = 1, VCD_RUN = 2, VCD_COPY = 3 };

typedef struct {
  uint8_t type[2], size[2], mode[2];
} vcd_code_t;

/* RFC 3284 5.6, in the RFC's order. */
static void vcd_default_table(vcd_code_t t[256]) {
  memset(t, 0, 256 * sizeof *t);
  int i = 0;
  t[i++].type[0] = VCD_RUN;
  for (int s = 0; s <= 17; s++, i++) t[i].type[0] = VCD_ADD, t[i].size[0] = (uint8_t)s;
  for (int m = 0; m <= 8; m++) {
    t[i].type[0] = VCD_COPY, t[i].mode[0] = (uint8_t)m, i++;
    for (int s = 4; s <= 18; s++, i++) t[i].type[0] = VCD_COPY, t[i].size[0] = (uint8_t)s, t[i].mode[0] = (uint8_t)m;
  }
  for (int m = 0; m <= 5; m++)
    for (int a = 1; a <= 4; a++)
      for (int c = 4; c <= 6; c++, i++) {
        t[i].type[0] = VCD_ADD, t[i].size[0] = (uint8_t)a;
        t[i].type[1] = VCD_COPY, t[i].size[1] = (uint8_t)c, t[i].mode[1] = (uint8_t)m;
      }
  for (int m = 6; m <= 8; m++)
    for (int a = 1; a <= 4; a++, i++) {
      t[i].type[0] = VCD_ADD, t[i].size[0] = (uint8_t)a;
      t[i].type[1] = VCD_COPY, t[i].size[1] = 4, t[i].mode[1] = (uint8_t)m;
    }
  for (int m = 0; m <= 8; m++, i++) {
    t[i].type[0] = VCD_COPY, t[i].size[0] = 4, t[i].mode[0] = (uint8_t)m;
    t[i].type[1] = VCD_ADD, t[i].size[1] = 1;
  }
}

typedef struct {
  const uint8_t *p;
  size_t len, pos;
} vcd_rd_t;

static bool vcd_byte(vcd_rd_t *r, uint8_t *b) {
  if (r->pos >= r->len) return false;
  *b = r->p[r->pos++];
  return true;
}

static bool vcd_int(vcd_rd_t *r, size_t *v) {
  size_t x = 0;
  uint8_t b;
  for (int i = 0; i < 10; i++) {
    if (!vcd_byte(r, &b)) return false;
    if (x > (SIZE_MAX >> 7)) return false;
    x = x << 7 | (b & 0x7f);
    if (!(b & 0x80)) {
      *v = x;
      return true;
    }
  }
  return false;
}

/* Decodes delta[0..dlen) against source[0..slen) into out[0..cap).
 * Returns 0 with *out_len, or -1 for a malformed delta or one whose
 * target would exceed cap. */
static int vcdiff_decode(const uint8_t *source, size_t slen, const uint8_t *delta, size_t dlen, uint8_t *out,
                         size_t cap, size_t *out_len) {
  vcd_code_t table[256];
  vcd_default_table(table);
  vcd_rd_t r = {delta, dlen, 0};
  uint8_t b, hdr;
  static const uint8_t magic[4] = {0xD6, 0xC3, 0xC4, 0x00};
  for (int i = 0; i < 4; i++)
    if (!vcd_byte(&r, &b) || b != magic[i]) return -1;
  if (!vcd_byte(&r, &hdr) || (hdr & ~0x04)) return -1; /* only VCD_APPHEADER */
  if (hdr & 0x04) {
    size_t n;
    if (!vcd_int(&r, &n) || n > r.len - r.pos) return -1;
    r.pos += n;
  }
  size_t opos = 0;
  while (r.pos < r.len) {
    uint8_t win;
    size_t seg_len = 0, seg_pos = 0, enc_len, tw_len, data_len, inst_len, addr_len;
    const uint8_t *seg = NULL;
    if (!vcd_byte(&r, &win) || (win & ~0x07) || (win & 0x03) == 0x03) return -1;
    if (win & 0x03) {
      if (!vcd_int(&r, &seg_len) || !vcd_int(&r, &seg_pos)) return -1;
      size_t avail = (win & 0x01) ? slen : opos;
      if (seg_pos > avail || seg_len > avail - seg_pos) return -1;
      seg = (win & 0x01) ? source + seg_pos : out + seg_pos;
    }
    if (!vcd_int(&r, &enc_len) || enc_len > r.len - r.pos) return -1;
    size_t end = r.pos + enc_len;
    if (!vcd_int(&r, &tw_len) || !vcd_byte(&r, &b) || b != 0) return -1;
    if (!vcd_int(&r, &data_len) || !vcd_int(&r, &inst_len) || !vcd_int(&r, &addr_len)) return -1;
    if (win & 0x04) {
      if (r.len - r.pos < 4) return -1;
      r.pos += 4;
    }
    if (r.pos > end || data_len > end - r.pos || inst_len > end - r.pos - data_len ||
        addr_len != end - r.pos - data_len - inst_len)
      return -1;
    if (tw_len > cap - opos) return -1;
    vcd_rd_t data = {delta + r.pos, data_len, 0};
    vcd_rd_t inst = {delta + r.pos + data_len, inst_len, 0};
    vcd_rd_t addr = {delta + r.pos + data_len + inst_len, addr_len, 0};
    r.pos = end;
    uint8_t *tw = out + opos;
    size_t t = 0, near[4] = {0}, same[3 * 256] = {0};
    int next_near = 0;
    uint8_t op;
    while (vcd_byte(&inst, &op)) {
      for (int h = 0; h < 2; h++) {
        const vcd_code_t *c = &table[op];
        if (c->type[h] == VCD_NOOP) continue;
        size_t size = c->size[h];
        if (size == 0 && !vcd_int(&inst, &size)) return -1;
        if (size > tw_len - t) return -1;
        if (c->type[h] == VCD_ADD) {
          if (size > data.len - data.pos) return -1;
          memcpy(tw + t, data.p + data.pos, size);
          data.pos += size;
        } else if (c->type[h] == VCD_RUN) {
          if (!vcd_byte(&data, &b)) return -1;
          memset(tw + t, b, size);
        } else {
          size_t here = seg_len + t, a, v;
          int m = c->mode[h];
          if (m == 0) {
            if (!vcd_int(&addr, &a)) return -1;
          } else if (m == 1) {
            if (!vcd_int(&addr, &v) || v > here) return -1;
            a = here - v;
          } else if (m <= 5) {
            if (!vcd_int(&addr, &v)) return -1;
            a = near[m - 2] + v;
          } else {
            if (!vcd_byte(&addr, &b)) return -1;
            a = same[(m - 6) * 256 + b];
          }
          if (a >= here) return -1;
          near[next_near] = a;
          next_near = (next_near + 1) % 4;
          same[a % (3 * 256)] = a;
          /* Byte by byte: a copy may overlap the bytes it writes. */
          for (size_t k = 0; k < size; k++, a++) tw[t + k] = a < seg_len ? seg[a] : tw[a - seg_len];
        }
        t += size;
      }
    }
    if (t != tw_len || data.pos != data.len || addr.pos != addr.len) return -1;
    opos += tw_len;
  }
  *out_len = opos;
  return 0;
}

#endif
