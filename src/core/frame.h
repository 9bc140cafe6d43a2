/* frame.h: refcounted, immutable output bytes.
 *
 * A frame is what a socket writes: an HTTP response, or one complete
 * WebSocket frame (header + payload). A message fanned out to many
 * subscribers is encoded once per wire format into one frame, and every
 * subscriber's socket queues a reference to the same bytes. */
#ifndef SW_CORE_FRAME_H
#define SW_CORE_FRAME_H

#include <stddef.h>
#include <stdint.h>

typedef struct sw_frame {
  uint32_t refs;
  uint32_t len;
  uint8_t data[];
} sw_frame_t;

/* A frame of len bytes with refs = 1, contents uninitialised; NULL on OOM. */
sw_frame_t *frame_new(size_t len);
/* A frame holding a copy of p. */
sw_frame_t *frame_copy(const void *p, size_t len);
/* A WebSocket frame (unmasked, FIN) carrying payload, refs = 1. */
sw_frame_t *frame_ws(uint8_t opcode, const void *payload, size_t len);
static inline sw_frame_t *frame_ref(sw_frame_t *f) {
  f->refs++;
  return f;
}
void frame_unref(sw_frame_t *f);

struct sw_pmsg;
/* A binary WebSocket frame of the msgpack ProtocolMessage m whose one
 * message is the stored blob raw (codec_encode_pmsg_msgpack_raw). */
sw_frame_t *frame_pmsg_msgpack_raw(const struct sw_pmsg *m, const uint8_t *raw, size_t raw_len);

#endif
