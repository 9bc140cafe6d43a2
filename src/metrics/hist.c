#include "metrics/hist.h"

const uint64_t sw_hist_bound_ns[SW_HIST_BOUNDS] = {
    50000,      100000,     250000,     500000,     1000000,    2500000,
    5000000,    10000000,   25000000,   50000000,   100000000,  250000000,
    500000000,  1000000000, 2500000000, 5000000000, 10000000000,
};

const char *const sw_hist_bound_le[SW_HIST_BOUNDS] = {
    "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",    "0.1",    "0.25",    "0.5",    "1",     "2.5",    "5",     "10",
};

void sw_hist_observe(sw_hist_t *h, uint64_t ns) {
  unsigned i = 0;
  while (i < SW_HIST_BOUNDS && ns > sw_hist_bound_ns[i]) i++;
  h->bucket[i]++;
  h->count++;
  h->sum_ns += ns;
}

void sw_hist_merge(sw_hist_t *into, const sw_hist_t *from) {
  for (unsigned i = 0; i <= SW_HIST_BOUNDS; i++) into->bucket[i] += from->bucket[i];
  into->count += from->count;
  into->sum_ns += from->sum_ns;
}
