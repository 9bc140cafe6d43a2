/* hist.h: a latency histogram with fixed bucket bounds, in the shape
 * Prometheus exposes (cumulative "le" buckets, _sum, _count).
 *
 * Plain integers, no locking: a histogram has one writer at a time. The
 * store's commit thread fills one per batch of completions and hands it to
 * the loop thread's side under the store's mutex, together with those
 * completions (store.c publish_done), so nothing here needs atomics. */
#ifndef SW_METRICS_HIST_H
#define SW_METRICS_HIST_H

#include <stdint.h>

/* Finite upper bounds, ascending: 50 us .. 10 s. An in-memory commit takes
 * microseconds, an fsync on a good SSD a millisecond or two, a struggling
 * disk hundreds of milliseconds. */
#define SW_HIST_BOUNDS 17

/* Bound i in nanoseconds (what observations are compared with) and as the
 * exact decimal text of its "le" label, in seconds. */
extern const uint64_t sw_hist_bound_ns[SW_HIST_BOUNDS];
extern const char *const sw_hist_bound_le[SW_HIST_BOUNDS];

typedef struct sw_hist {
  /* Observations per bucket, NOT cumulative: bucket[i] holds values in
   * (bound[i-1], bound[i]]; bucket[SW_HIST_BOUNDS] those above the last
   * bound (the +Inf bucket only). */
  uint64_t bucket[SW_HIST_BOUNDS + 1];
  uint64_t count;
  uint64_t sum_ns;
} sw_hist_t;

/* Records one observation of ns nanoseconds. A value equal to a bound
 * falls in that bound's bucket ("le": less than or equal). */
void sw_hist_observe(sw_hist_t *h, uint64_t ns);

/* Adds every observation of from into into. */
void sw_hist_merge(sw_hist_t *into, const sw_hist_t *from);

#endif
