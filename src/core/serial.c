#include "core/serial.h"

#include <stdio.h>

void serial_format(int64_t seq, char out[SW_SERIAL_LEN + 1]) {
  snprintf(out, SW_SERIAL_LEN + 1, "%016llx", (unsigned long long)seq);
}

int serial_parse(const char *s, size_t len, int64_t *seq) {
  if (!s || len != SW_SERIAL_LEN) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    unsigned d;
    if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
    else return -1;
    v = v << 4 | d;
  }
  if (v > INT64_MAX) return -1;
  *seq = (int64_t)v;
  return 0;
}
