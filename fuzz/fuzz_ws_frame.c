/* fuzz_ws_frame.c: libFuzzer target for the WebSocket frame codec.
 *
 * Treats the input as a stream of client frames and, per frame, checks:
 *   - ws_frame_parse returns a header length in 2..14 that fits the input,
 *     or one of the SW_WS_* codes; the parsed frame obeys the rules it
 *     claims to enforce (known opcode, control frames fin and <= 125 bytes,
 *     masked when required, payload_len <= max);
 *   - ws_frame_header re-encodes the same fin/opcode/length;
 *   - unmasking in two pieces equals unmasking at once, and twice restores;
 *   - the message assembler never holds more than max_msg bytes;
 *   - ws_close_payload_parse returns only codes that are valid to receive;
 *   - utf8_valid agrees with a straightforward reference decoder. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/ws_frame.h"

/* Invariant check that survives -DNDEBUG and names the failed condition. */
#include "check.h"

/* Reference: decode each scalar value and check it by value. */
static bool ref_utf8(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint32_t c = p[i], cp;
    size_t len;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; k++) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  CHECK(utf8_valid(data, size) == ref_utf8(data, size));
  if (size == 0) return 0;
  /* The first byte picks the mode so both server and client views run. */
  bool require_mask = data[0] & 1;
  uint64_t max_payload = (data[0] & 2) ? 64 : 4096;
  data++, size--;

  sw_ws_msg_asm_t a = {.max_msg = 256};
  size_t off = 0;
  while (off < size) {
    sw_ws_frame_t f;
    int rc = ws_frame_parse(data + off, size - off, require_mask, max_payload, &f);
    CHECK(rc >= SW_WS_TOO_LARGE && rc <= SW_WS_MAX_HEADER);
    if (rc <= 0) break;
    CHECK(rc >= 2 && (size_t)rc <= size - off && f.header_len == (size_t)rc);
    CHECK(f.payload_len <= max_payload);
    CHECK(f.opcode <= 2 || (f.opcode >= 8 && f.opcode <= 10));
    if (f.opcode & 8) CHECK(f.fin && f.payload_len <= SW_WS_MAX_CONTROL_PAYLOAD);
    if (require_mask) CHECK(f.masked);
    CHECK(f.header_len == 2 + (f.masked ? 4u : 0u) +
                              ((data[off + 1] & 0x7F) == 126   ? 2u
                               : (data[off + 1] & 0x7F) == 127 ? 8u
                                                               : 0u));

    uint8_t h[10];
    size_t hl = ws_frame_header(h, f.fin, f.opcode, f.payload_len);
    sw_ws_frame_t g;
    CHECK(ws_frame_parse(h, hl, false, UINT64_MAX, &g) == (int)hl);
    CHECK(g.fin == f.fin && g.opcode == f.opcode && g.payload_len == f.payload_len && !g.masked);

    off += (size_t)rc;
    if (f.payload_len > size - off) break; /* payload not all here */
    size_t n = (size_t)f.payload_len;
    uint8_t *pl = malloc(n ? n : 1), *pl2 = malloc(n ? n : 1);
    CHECK(pl && pl2);
    memcpy(pl, data + off, n);
    memcpy(pl2, data + off, n);
    size_t cut = n ? data[off] % (n + 1) : 0;
    ws_unmask(pl, n, f.mask, 0);
    ws_unmask(pl2, cut, f.mask, 0);
    ws_unmask(pl2 + cut, n - cut, f.mask, cut);
    CHECK(n == 0 || memcmp(pl, pl2, n) == 0);
    ws_unmask(pl2, n, f.mask, 0);
    CHECK(n == 0 || memcmp(pl2, data + off, n) == 0);
    off += n;

    if (f.opcode == SW_WS_OP_CLOSE) {
      int code = ws_close_payload_parse(pl, n);
      CHECK(code == -1 || (code == 1005 && n == 0) || (code >= 1000 && code <= 1003) ||
            (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999));
      if (n == 0) CHECK(code == 1005);
      if (n == 1) CHECK(code == -1);
    } else if (!(f.opcode & 8)) {
      uint8_t op;
      int r = ws_msg_asm_add(&a, &f, pl, n, &op);
      CHECK(r == 1 || r == 0 || r == SW_WS_MALFORMED || r == SW_WS_TOO_LARGE);
      CHECK(a.buf.len <= a.max_msg);
      if (r == 1) {
        CHECK(op == SW_WS_OP_TEXT || op == SW_WS_OP_BINARY);
        CHECK(!a.active);
        if (op == SW_WS_OP_TEXT) CHECK(utf8_valid(a.buf.data, a.buf.len) == ref_utf8(a.buf.data, a.buf.len));
      }
      if (r < 0) ws_msg_asm_reset(&a);
    }
    free(pl);
    free(pl2);
  }
  ws_msg_asm_free(&a);
  return 0;
}
