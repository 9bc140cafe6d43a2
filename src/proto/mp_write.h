/* mp_write.h: msgpack's headers and scalars written straight into an
 * sw_buf_t, each in its smallest form (the bytes msgpack-c's packer
 * writes): the writer of codec_msgpack.c and the storage form's direct
 * writer (codec.c) share them. Internal to src/proto. Each int function
 * returns 0, -ENOMEM, or -EINVAL for a body of 4 GiB or more. */
#ifndef SW_PROTO_MP_WRITE_H
#define SW_PROTO_MP_WRITE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/buf.h"

/* Room for n more bytes at the end of b, or NULL. */
static inline uint8_t *mp_room(sw_buf_t *b, size_t n) { return buf_reserve(b, n) ? NULL : b->data + b->len; }

/* Writes tag and the low n (1, 2, 4 or 8) bytes of v big-endian at p;
 * returns the length. One store per width: a timestamp is 8 bytes on
 * every message. */
static inline size_t mp_be(uint8_t *p, uint8_t tag, uint64_t v, size_t n) {
  p[0] = tag;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  if (n == 1) {
    p[1] = (uint8_t)v;
  } else if (n == 2) {
    uint16_t x = __builtin_bswap16((uint16_t)v);
    memcpy(p + 1, &x, 2);
  } else if (n == 4) {
    uint32_t x = __builtin_bswap32((uint32_t)v);
    memcpy(p + 1, &x, 4);
  } else {
    uint64_t x = __builtin_bswap64(v);
    memcpy(p + 1, &x, 8);
  }
#else
  for (size_t i = 0; i < n; i++) p[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
#endif
  return 1 + n;
}

/* A str or bin: header then body. fix: the fixstr base (0 for bin, which
 * has none); tag8/16/32 the longer forms. */
static inline int mp_raw(sw_buf_t *b, uint8_t fix, uint8_t tag8, uint8_t tag16, uint8_t tag32, const void *body,
                  size_t n) {
  if (n > UINT32_MAX) return -EINVAL;
  uint8_t *p = mp_room(b, 5 + n);
  if (!p) return -ENOMEM;
  size_t hn = fix && n < 32 ? (p[0] = (uint8_t)(fix | n), 1)
              : n < 256     ? mp_be(p, tag8, n, 1)
              : n < 65536   ? mp_be(p, tag16, n, 2)
                            : mp_be(p, tag32, n, 4);
  if (n) memcpy(p + hn, body, n);
  b->len += hn + n;
  return 0;
}

/* Keys and most strings are short: the fixstr path is kept small. */
static inline int mp_str(sw_buf_t *b, const char *s, size_t n) {
  if (n >= 32) return mp_raw(b, 0xa0, 0xd9, 0xda, 0xdb, s, n);
  uint8_t *p = mp_room(b, 1 + n);
  if (!p) return -ENOMEM;
  p[0] = (uint8_t)(0xa0 | n);
  memcpy(p + 1, s, n);
  b->len += 1 + n;
  return 0;
}

/* A map or array header: fix base, 16- and 32-bit tags. */
static inline int mp_count(sw_buf_t *b, uint8_t fix, uint8_t tag16, uint8_t tag32, size_t n) {
  if (n > UINT32_MAX) return -EINVAL;
  uint8_t *p = mp_room(b, 5);
  if (!p) return -ENOMEM;
  b->len += n < 16 ? (p[0] = (uint8_t)(fix | n), 1) : n < 65536 ? mp_be(p, tag16, n, 2) : mp_be(p, tag32, n, 4);
  return 0;
}

static inline int mp_i64(sw_buf_t *b, int64_t d) {
  uint8_t *p = mp_room(b, 9);
  if (!p) return -ENOMEM;
  uint64_t u = (uint64_t)d;
  size_t n;
  if (d >= -32 && d < 128)
    p[0] = (uint8_t)d, n = 1;
  else if (d < 0)
    n = d >= -128      ? mp_be(p, 0xd0, u, 1)
        : d >= -32768  ? mp_be(p, 0xd1, u, 2)
        : d >= INT32_MIN ? mp_be(p, 0xd2, u, 4)
                         : mp_be(p, 0xd3, u, 8);
  else
    n = d < 256           ? mp_be(p, 0xcc, u, 1)
        : d < 65536       ? mp_be(p, 0xcd, u, 2)
        : d <= UINT32_MAX ? mp_be(p, 0xce, u, 4)
                          : mp_be(p, 0xcf, u, 8);
  b->len += n;
  return 0;
}

#endif
