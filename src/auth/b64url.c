#include "auth/b64url.h"

#include <openssl/evp.h>
#include <string.h>

/* Bytes per EVP_EncodeBlock call: a multiple of 3. */
#define ENCODE_CHUNK 384u

/* Decoding is a table loop of our own rather than EVP_DecodeBlock. On the
 * benchmark's 293-byte JWT the OpenSSL route (translate '-' and '_' into a
 * stack copy, then EVP_DecodeBlock, which also trims whitespace and
 * handles '=') took ~250 ns for the three segments, a fifth of a whole
 * verification; this loop takes a fraction of that (docs/benchmarks.md,
 * "Ably JWT verification", has the measurement). Encoding is not on a hot
 * path and stays with EVP_EncodeBlock.
 *
 * The alphabet as (character, 6-bit value) pairs expands into four tables,
 * one per position in a 4-character group, each holding the value already
 * shifted into place plus a marker bit of its own (bit 24 + position). A
 * group decodes to the OR of four lookups. Characters outside the alphabet
 * ('+', '/', '=', whitespace, NUL, non-ASCII, ...) are 0 in every table,
 * so the AND over all groups keeps the four marker bits only if every
 * character was valid. */
#define ALPHABET(X)                                                                         \
  X('A', 0) X('B', 1) X('C', 2) X('D', 3) X('E', 4) X('F', 5) X('G', 6) X('H', 7) X('I', 8)  \
  X('J', 9) X('K', 10) X('L', 11) X('M', 12) X('N', 13) X('O', 14) X('P', 15) X('Q', 16)     \
  X('R', 17) X('S', 18) X('T', 19) X('U', 20) X('V', 21) X('W', 22) X('X', 23) X('Y', 24)    \
  X('Z', 25) X('a', 26) X('b', 27) X('c', 28) X('d', 29) X('e', 30) X('f', 31) X('g', 32)    \
  X('h', 33) X('i', 34) X('j', 35) X('k', 36) X('l', 37) X('m', 38) X('n', 39) X('o', 40)    \
  X('p', 41) X('q', 42) X('r', 43) X('s', 44) X('t', 45) X('u', 46) X('v', 47) X('w', 48)    \
  X('x', 49) X('y', 50) X('z', 51) X('0', 52) X('1', 53) X('2', 54) X('3', 55) X('4', 56)    \
  X('5', 57) X('6', 58) X('7', 59) X('8', 60) X('9', 61) X('-', 62) X('_', 63)
#define MARK(pos) (1u << (24 + (pos)))
#define ALL_MARKS (MARK(0) | MARK(1) | MARK(2) | MARK(3))
#define E0(c, v) [c] = ((uint32_t)(v) << 18) | MARK(0),
#define E1(c, v) [c] = ((uint32_t)(v) << 12) | MARK(1),
#define E2(c, v) [c] = ((uint32_t)(v) << 6) | MARK(2),
#define E3(c, v) [c] = (uint32_t)(v) | MARK(3),
static const uint32_t D0[256] = {ALPHABET(E0)};
static const uint32_t D1[256] = {ALPHABET(E1)};
static const uint32_t D2[256] = {ALPHABET(E2)};
static const uint32_t D3[256] = {ALPHABET(E3)};

bool b64url_is_char(unsigned char c) { return D3[c] != 0; }

size_t b64url_decoded_len(size_t n) {
  size_t r = n % 4;
  return n / 4 * 3 + (r == 2 ? 1 : r == 3 ? 2 : 0);
}

size_t b64url_encoded_len(size_t n) {
  size_t r = n % 3;
  return n / 3 * 4 + (r == 1 ? 2 : r == 2 ? 3 : 0);
}

long b64url_decode(const char *in, size_t n, uint8_t *out, size_t outcap) {
  if (n % 4 == 1) return -1;
  size_t want = b64url_decoded_len(n);
  if (outcap < want) return -1;
  const unsigned char *s = (const unsigned char *)in;
  /* ok is the AND of every group (see above). The input is a public token,
   * so an early exit would be harmless; running to the end keeps the loop
   * free of branches. */
  uint32_t ok = ALL_MARKS;
  size_t full = n / 4 * 4, w = 0;
  for (size_t i = 0; i < full; i += 4, w += 3) {
    uint32_t g = D0[s[i]] | D1[s[i + 1]] | D2[s[i + 2]] | D3[s[i + 3]];
    ok &= g;
    out[w] = (uint8_t)(g >> 16);
    out[w + 1] = (uint8_t)(g >> 8);
    out[w + 2] = (uint8_t)g;
  }
  size_t rem = n - full;
  if (rem) {
    /* 2 characters carry 12 bits for 1 byte, 3 carry 18 for 2; the absent
     * positions count as valid. The unused low bits must be zero
     * (canonical form): otherwise "...Q" and "...R" would decode to the
     * same byte and a tampered signature would still verify. */
    uint32_t g = D0[s[full]] | D1[s[full + 1]] | (rem == 3 ? D2[s[full + 2]] : MARK(2)) | MARK(3);
    ok &= g;
    if (g & (rem == 2 ? 0xffffu : 0xffu)) return -1;
    out[w++] = (uint8_t)(g >> 16);
    if (rem == 3) out[w++] = (uint8_t)(g >> 8);
  }
  return ok == ALL_MARKS ? (long)w : -1;
}

long b64url_encode(const uint8_t *in, size_t n, char *out, size_t outcap) {
  size_t want = b64url_encoded_len(n);
  if (outcap < want + 1) return -1;
  size_t full = n / 3 * 3, done = 0, w = 0;
  while (done < full) {
    size_t k = full - done < ENCODE_CHUNK ? full - done : ENCODE_CHUNK;
    /* Writes k/3*4 characters and a NUL, all within want + 1. */
    w += (size_t)EVP_EncodeBlock((unsigned char *)out + w, in + done, (int)k);
    done += k;
  }
  if (n - full) {
    unsigned char grp[5];
    EVP_EncodeBlock(grp, in + full, (int)(n - full));
    size_t keep = n - full + 1; /* 1 byte -> 2 chars, 2 bytes -> 3 chars */
    memcpy(out + w, grp, keep);
    w += keep;
  }
  out[w] = '\0';
  for (size_t i = 0; i < w; i++) {
    if (out[i] == '+') out[i] = '-';
    else if (out[i] == '/') out[i] = '_';
  }
  return (long)w;
}
