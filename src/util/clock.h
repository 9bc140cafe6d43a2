/* clock.h: wall-clock time in milliseconds since the epoch (Ably timestamps). */
#ifndef SW_UTIL_CLOCK_H
#define SW_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
