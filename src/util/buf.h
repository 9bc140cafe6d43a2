/* buf.h: a growable byte buffer.
 *
 * Owner: whoever embeds the sw_buf_t. buf_free() releases the storage; a
 * zeroed sw_buf_t is a valid empty buffer. Every append returns 0 or -ENOMEM
 * and leaves the buffer unchanged on failure. */
#ifndef SW_UTIL_BUF_H
#define SW_UTIL_BUF_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct sw_buf {
  uint8_t *data;
  size_t len;
  size_t cap;
} sw_buf_t;

/* Grows the storage to hold extra more bytes (the slow path of the two
 * below). */
int buf_grow(sw_buf_t *b, size_t extra);

/* Inline: the msgpack packer appends every type byte and every field on its
 * own (a hundred appends per AI delivery and its storage blob), and the call
 * was more than the copy (measured: ~35 instructions per append). */
static inline int buf_reserve(sw_buf_t *b, size_t extra) {
  return extra <= b->cap - b->len ? 0 : buf_grow(b, extra);
}

static inline int buf_append(sw_buf_t *b, const void *p, size_t n) {
  if (n == 0) return 0;
  if (n > b->cap - b->len && buf_grow(b, n)) return -ENOMEM;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}
int buf_append_str(sw_buf_t *b, const char *s);
int buf_append_byte(sw_buf_t *b, uint8_t c);
int buf_printf(sw_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes (n <= len). */
void buf_consume(sw_buf_t *b, size_t n);
void buf_reset(sw_buf_t *b);
/* Hands the storage to the caller (who must free() it) and empties b. */
uint8_t *buf_steal(sw_buf_t *b, size_t *len);
void buf_free(sw_buf_t *b);

#endif
