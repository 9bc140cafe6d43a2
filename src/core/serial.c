#include "core/serial.h"

/* By hand, not snprintf: one per message and per append (~900 instructions
 * through snprintf). Same output as "%016llx". */
void serial_format(int64_t seq, char out[SW_SERIAL_LEN + 1]) {
  static const char hex[] = "0123456789abcdef";
  uint64_t v = (uint64_t)seq;
  for (int i = SW_SERIAL_LEN - 1; i >= 0; i--, v >>= 4) out[i] = hex[v & 0xf];
  out[SW_SERIAL_LEN] = '\0';
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
