/* zalloc.h: zeroed allocation through malloc's fast path.
 *
 * glibc 2.36's calloc does not use the per-thread cache: it goes to
 * _int_malloc every time (measured ~280 instructions a call against ~60
 * for malloc). On the publish path, where a few small zeroed objects are
 * made per message, malloc and memset are cheaper. The caller frees with
 * free() as usual. */
#ifndef SW_UTIL_ZALLOC_H
#define SW_UTIL_ZALLOC_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* n objects of size bytes, zeroed; NULL on overflow or out of memory. */
static inline void *zalloc(size_t n, size_t size) {
  if (size && n > SIZE_MAX / size) return NULL;
  size_t bytes = n * size;
  void *p = malloc(bytes > 0 ? bytes : 1);
  if (p) {
    /* Keeps the compiler from folding malloc + memset back into calloc. */
    __asm__ volatile("" : : "r"(p) : "memory");
    memset(p, 0, bytes);
  }
  return p;
}

#endif
