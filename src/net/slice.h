/* slice.h: a borrowed, non-NUL-terminated view of bytes.
 *
 * A slice never owns memory: it points into a buffer that someone else keeps
 * alive (usually the connection's input buffer). Kept in its own header so
 * url.h and friends need not pull in http_parser. */
#ifndef SW_NET_SLICE_H
#define SW_NET_SLICE_H

#include <stddef.h>

typedef struct sw_slice {
  const char *p; /* first byte; may be NULL only when n == 0 */
  size_t n;      /* length in bytes */
} sw_slice_t;

#endif
