#include "core/frame.h"

#include <stdlib.h>
#include <string.h>

#include "net/ws_frame.h"
#include "proto/codec.h"
#include "util/buf.h"

/* Like conn.c's pmsg_frame: one scratch buffer per thread, kept unless a
 * large message grew it. */
#define RAW_SCRATCH_KEEP (64 * 1024)

sw_frame_t *frame_new(size_t len) {
  if (len > UINT32_MAX) return NULL;
  sw_frame_t *f = malloc(sizeof *f + len);
  if (!f) return NULL;
  f->refs = 1;
  f->len = (uint32_t)len;
  return f;
}

sw_frame_t *frame_copy(const void *p, size_t len) {
  sw_frame_t *f = frame_new(len);
  if (f && len) memcpy(f->data, p, len);
  return f;
}

sw_frame_t *frame_ws(uint8_t opcode, const void *payload, size_t len) {
  uint8_t hdr[10];
  size_t hlen = ws_frame_header(hdr, true, opcode, len);
  sw_frame_t *f = frame_new(hlen + len);
  if (!f) return NULL;
  memcpy(f->data, hdr, hlen);
  if (len) memcpy(f->data + hlen, payload, len);
  return f;
}

void frame_unref(sw_frame_t *f) {
  if (f && --f->refs == 0) free(f);
}

sw_frame_t *frame_pmsg_msgpack_raw(const struct sw_pmsg *m, const uint8_t *raw, size_t raw_len) {
  static _Thread_local sw_buf_t scratch;
  sw_frame_t *f = NULL;
  scratch.len = 0;
  if (codec_encode_pmsg_msgpack_raw(m, raw, raw_len, &scratch) == 0)
    f = frame_ws(SW_WS_OP_BINARY, scratch.data, scratch.len);
  if (scratch.cap > RAW_SCRATCH_KEEP) buf_free(&scratch);
  return f;
}
