/* serial.h: per-channel message serials.
 *
 * A channel's messages are numbered 1, 2, 3, ... (seq 0 means "before the
 * first message"). On the wire a serial is the seq as 16 lowercase hex
 * digits, so serials of one channel sort the same way as strings and as
 * numbers; clients treat them as opaque (TM2r, RTL15b). */
#ifndef SW_CORE_SERIAL_H
#define SW_CORE_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#define SW_SERIAL_LEN 16

/* Writes the serial of seq (>= 0) and a NUL into out[SW_SERIAL_LEN + 1]. */
void serial_format(int64_t seq, char out[SW_SERIAL_LEN + 1]);

/* Parses a serial written by serial_format. Returns 0 and *seq, or -1 if s
 * is not exactly 16 lowercase hex digits (or exceeds INT64_MAX). Pure. */
int serial_parse(const char *s, size_t len, int64_t *seq);

#endif
