/* fuzz_fold.c: libFuzzer target for the fold of appends into a stored
 * message (core/mutation.c mutation_fold_blobs), which splices bytes
 * (proto/blob_append.c: blob_scan, blob_write) when the blobs are exactly
 * what the storage encoder writes, and decodes and encodes otherwise.
 * Stored blobs are the server's own bytes, but a file or a shared store
 * can hold anything, and the splice must never read or write past them.
 *
 * Input: byte 0 the number of events (1 to 3), then the head's length and
 * each event's (2 bytes each, big-endian, cut to what is left), then the
 * blobs. Invariant (abort() on violation): the splicing fold and the
 * decoding one (mutation_fold_blobs_decoded) give the same result code
 * and, on success, the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/mutation.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  size_t n = (size_t)data[0] % 3 + 1, hdr = 1 + 2 * (n + 1);
  if (size < hdr) return 0;
  size_t lens[4], off = hdr;
  for (size_t i = 0; i <= n; i++) {
    size_t want = (size_t)data[1 + 2 * i] << 8 | data[2 + 2 * i], left = size - off;
    lens[i] = want < left ? want : left;
    off += lens[i];
  }
  const uint8_t *head = data + hdr;
  sw_store_event_t ev[3];
  off = hdr + lens[0];
  for (size_t i = 0; i < n; i++) {
    ev[i] = (sw_store_event_t){.blob = data + off, .len = lens[i + 1], .hint = 0};
    off += lens[i + 1];
  }
  sw_buf_t a = {0}, b = {0};
  int ra = mutation_fold_blobs(head, lens[0], ev, n, &a);
  int rb = mutation_fold_blobs_decoded(head, lens[0], ev, n, &b);
  CHECK(ra == rb);
  if (ra == 0) CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
  buf_free(&a);
  buf_free(&b);
  return 0;
}
