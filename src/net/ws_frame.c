/* ws_frame.c: RFC 6455 frame codec, message reassembly, close payloads and
 * UTF-8 validation. */
#include "net/ws_frame.h"

#include <errno.h>
#include <string.h>

static bool opcode_known(uint8_t op) {
  return op == SW_WS_OP_CONT || op == SW_WS_OP_TEXT || op == SW_WS_OP_BINARY ||
         op == SW_WS_OP_CLOSE || op == SW_WS_OP_PING || op == SW_WS_OP_PONG;
}

int ws_frame_parse(const uint8_t *p, size_t n, bool require_mask, uint64_t max_payload,
                   sw_ws_frame_t *f) {
  if (n < 1) return SW_WS_NEED_MORE;
  uint8_t b0 = p[0];
  bool fin = b0 & 0x80;
  uint8_t op = b0 & 0x0F;
  /* Fail on the first byte when we can, so a peer cannot park garbage. */
  if (b0 & 0x70) return SW_WS_MALFORMED; /* RSV1-3: no extension negotiated */
  if (!opcode_known(op)) return SW_WS_MALFORMED;
  bool control = op & 0x08;
  if (control && !fin) return SW_WS_MALFORMED; /* §5.5: control frames never fragment */
  if (n < 2) return SW_WS_NEED_MORE;

  uint8_t b1 = p[1];
  bool masked = b1 & 0x80;
  uint8_t len7 = b1 & 0x7F;
  if (require_mask && !masked) return SW_WS_MALFORMED; /* §5.1 */
  if (control && len7 > SW_WS_MAX_CONTROL_PAYLOAD) return SW_WS_MALFORMED;

  size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
  size_t hlen = 2 + ext + (masked ? 4 : 0);
  if (ext == 8 && n >= 3 && (p[2] & 0x80)) return SW_WS_MALFORMED; /* §5.2: MSB must be 0 */
  if (n < hlen) return SW_WS_NEED_MORE;

  uint64_t len = len7;
  if (ext) {
    len = 0;
    for (size_t i = 0; i < ext; i++) len = (len << 8) | p[2 + i];
  }
  if (len > max_payload) return SW_WS_TOO_LARGE;

  f->fin = fin;
  f->opcode = op;
  f->masked = masked;
  if (masked)
    memcpy(f->mask, p + 2 + ext, 4);
  else
    memset(f->mask, 0, 4);
  f->payload_len = len;
  f->header_len = hlen;
  return (int)hlen;
}

void ws_unmask(uint8_t *buf, size_t n, const uint8_t mask[4], uint64_t offset) {
  /* Rotate the mask so that m[0] applies to buf[0]. */
  uint8_t m[8];
  for (size_t i = 0; i < 8; i++) m[i] = mask[(offset + i) & 3];
  size_t i = 0;
  /* Eight bytes at a time; memcpy keeps it alignment- and aliasing-safe and
   * compiles to plain loads/stores. */
  uint64_t mw;
  memcpy(&mw, m, 8);
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, buf + i, 8);
    w ^= mw;
    memcpy(buf + i, &w, 8);
  }
  for (; i < n; i++) buf[i] ^= m[i & 7];
}

size_t ws_frame_header(uint8_t out[10], bool fin, uint8_t opcode, uint64_t payload_len) {
  out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
  if (payload_len <= 125) {
    out[1] = (uint8_t)payload_len;
    return 2;
  }
  if (payload_len <= 0xFFFF) {
    out[1] = 126;
    out[2] = (uint8_t)(payload_len >> 8);
    out[3] = (uint8_t)payload_len;
    return 4;
  }
  if (payload_len > INT64_MAX) payload_len = INT64_MAX; /* keep the MSB clear */
  out[1] = 127;
  for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
  return 10;
}

int ws_msg_asm_add(sw_ws_msg_asm_t *a, const sw_ws_frame_t *f, const uint8_t *payload,
                   size_t n, uint8_t *opcode) {
  if (f->opcode & 0x08) return SW_WS_MALFORMED; /* control frames are the caller's */
  if (f->payload_len != n) return SW_WS_MALFORMED;
  if (f->opcode == SW_WS_OP_CONT) {
    if (!a->active) return SW_WS_MALFORMED; /* §5.4: nothing to continue */
  } else {
    if (a->active) return SW_WS_MALFORMED; /* §5.4: fragments must not interleave */
    if (f->opcode != SW_WS_OP_TEXT && f->opcode != SW_WS_OP_BINARY) return SW_WS_MALFORMED;
    buf_reset(&a->buf); /* drop the previous, already delivered message */
    a->opcode = f->opcode;
    a->active = true;
  }
  /* Check the limit before growing the buffer. */
  if (n > a->max_msg || a->buf.len > a->max_msg - n) return SW_WS_TOO_LARGE;
  if (buf_append(&a->buf, payload, n)) return -ENOMEM;
  if (!f->fin) return 0;
  a->active = false;
  *opcode = a->opcode;
  return 1;
}

void ws_msg_asm_reset(sw_ws_msg_asm_t *a) {
  buf_reset(&a->buf);
  a->opcode = 0;
  a->active = false;
}

void ws_msg_asm_free(sw_ws_msg_asm_t *a) {
  buf_free(&a->buf);
  a->opcode = 0;
  a->active = false;
}

int ws_close_payload_parse(const uint8_t *p, size_t n) {
  if (n == 0) return 1005; /* "no status received" is what the peer meant */
  if (n == 1 || n > SW_WS_MAX_CONTROL_PAYLOAD) return -1;
  int code = (p[0] << 8) | p[1];
  bool ok = (code >= 1000 && code <= 1003) || /* normal, going away, protocol, data */
            (code >= 1007 && code <= 1014) || /* IANA-registered codes */
            (code >= 3000 && code <= 4999);   /* libraries/frameworks, private use */
  /* 1004 reserved; 1005, 1006, 1015 must never be sent; the rest unassigned. */
  if (!ok) return -1;
  if (!utf8_valid(p + 2, n - 2)) return -1;
  return code;
}

bool utf8_valid(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    /* Skip ASCII a word at a time: most text is ASCII. */
    while (i + 8 <= n) {
      uint64_t w;
      memcpy(&w, p + i, 8);
      if (w & UINT64_C(0x8080808080808080)) break;
      i += 8;
    }
    if (i >= n) break;
    uint8_t c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    /* Well-formed sequences per Unicode Table 3-7: the second byte's range
     * depends on the lead byte, which excludes overlongs (E0, F0), surrogates
     * (ED) and code points above U+10FFFF (F4). */
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false; /* 80..C1 (continuation or overlong lead), F5..FF */
    }
    if (n - i - 1 < need) return false;
    if (p[i + 1] < lo || p[i + 1] > hi) return false;
    for (size_t k = 2; k <= need; k++)
      if ((p[i + k] & 0xC0) != 0x80) return false;
    i += need + 1;
  }
  return true;
}
