/* vcdiff.h: an RFC 3284 VCDIFF encoder, for Ably's delta compression
 * (channel param delta=vcdiff, RTL19/RTL20: a subscriber gets a message's
 * data as a delta from the previous message's).
 *
 * Pure: no I/O, no global state. What it writes is the subset every
 * VCDIFF decoder reads, Ably's @ably/vcdiff-decoder included: the header
 * with Hdr_Indicator 0 (no secondary compressor, no custom code table, no
 * application header), then one window whose source segment is the whole
 * source (VCD_SOURCE; no source: Win_Indicator 0), Delta_Indicator 0, no
 * checksum, instructions from the default code table (RFC 3284 5.6), ADD
 * and COPY with the VCD_SELF and VCD_HERE address modes only.
 *
 * Matching: a hash of every 4-byte block of the source, each target
 * position looked up, a hit verified and extended forwards and backwards
 * (into bytes not yet emitted). Linear in slen + tlen, with a hash table of
 * at most SW_VCDIFF_MAX_HASH entries. */
#ifndef SW_PROTO_VCDIFF_H
#define SW_PROTO_VCDIFF_H

#include <stddef.h>
#include <stdint.h>

/* Inputs larger than this are refused (VCDIFF integers are unbounded, but
 * Ably's decoder computes them in 32-bit signed arithmetic). */
#define SW_VCDIFF_MAX_INPUT ((size_t)1 << 30)
/* Hash table entries (4 bytes each), whatever the source's size. */
#define SW_VCDIFF_MAX_HASH ((size_t)1 << 18)

typedef enum {
  SW_VCDIFF_OK = 0,
  SW_VCDIFF_TOO_BIG = -1, /* the delta would exceed cap bytes: send the target whole */
  SW_VCDIFF_NOMEM = -2,
  SW_VCDIFF_INVALID = -3, /* an input over SW_VCDIFF_MAX_INPUT, or a NULL pointer with a length */
} sw_vcdiff_rc_t;

/* Encodes target[0..tlen) as a delta from source[0..slen) into
 * out[0..cap). On SW_VCDIFF_OK, *out_len is the delta's length, at most
 * cap. Never writes past out + cap. Allocates a bounded hash table and
 * section buffers of at most 3 * cap bytes, freed before it returns. */
sw_vcdiff_rc_t vcdiff_encode(const uint8_t *source, size_t slen, const uint8_t *target, size_t tlen, uint8_t *out,
                             size_t cap, size_t *out_len);

#endif
