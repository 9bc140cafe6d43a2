#include "auth/b64url.h"

#include <openssl/evp.h>
#include <string.h>

/* Characters translated per EVP_DecodeBlock call: a multiple of 4, small
 * enough for the stack. */
#define DECODE_CHUNK 512u
/* Bytes per EVP_EncodeBlock call: a multiple of 3. */
#define ENCODE_CHUNK 384u

bool b64url_is_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

size_t b64url_decoded_len(size_t n) {
  size_t r = n % 4;
  return n / 4 * 3 + (r == 2 ? 1 : r == 3 ? 2 : 0);
}

size_t b64url_encoded_len(size_t n) {
  size_t r = n % 3;
  return n / 3 * 4 + (r == 1 ? 2 : r == 2 ? 3 : 0);
}

/* Copies k base64url characters to dst as base64. Returns -1 on a
 * character EVP_DecodeBlock would accept but base64url does not: its own
 * alphabet's '+' and '/', the '=' padding, and whitespace (which it skips
 * at either end). Every other stray character it refuses itself. */
/* One character of translate(); returns 1 for a refused one. */
static inline unsigned char translate1(unsigned char c, unsigned char *dst) {
  unsigned char bad = (unsigned char)((c == '+') | (c == '/') | (c == '=') | (c <= ' ') | (c >= 0x7f));
  c = c == '-' ? '+' : c;
  c = c == '_' ? '/' : c;
  *dst = c;
  return bad;
}

static int translate(const char *restrict src, size_t k, unsigned char *restrict dst) {
  /* Branch-free, in blocks of a fixed 16 so that the compiler vectorises
   * the inner loop even at -O2: this runs over every byte of every token. */
  unsigned char bad = 0;
  size_t i = 0;
  for (; i + 16 <= k; i += 16)
    for (size_t j = 0; j < 16; j++) bad |= translate1((unsigned char)src[i + j], dst + i + j);
  for (; i < k; i++) bad |= translate1((unsigned char)src[i], dst + i);
  return bad ? -1 : 0;
}

long b64url_decode(const char *in, size_t n, uint8_t *out, size_t outcap) {
  if (n % 4 == 1) return -1;
  size_t want = b64url_decoded_len(n);
  if (outcap < want) return -1;
  unsigned char tmp[DECODE_CHUNK];
  size_t full = n / 4 * 4, done = 0, w = 0;
  while (done < full) {
    size_t k = full - done < DECODE_CHUNK ? full - done : DECODE_CHUNK;
    if (translate(in + done, k, tmp) != 0) return -1;
    int got = EVP_DecodeBlock(out + w, tmp, (int)k);
    if (got != (int)(k / 4 * 3)) return -1;
    w += (size_t)got;
    done += k;
  }

  size_t rem = n - full;
  if (rem) {
    unsigned char grp[4] = {'=', '=', '=', '='}, bytes[3], back[5];
    if (translate(in + full, rem, grp) != 0) return -1;
    if (EVP_DecodeBlock(bytes, grp, 4) != 3) return -1;
    size_t nb = rem - 1; /* 2 chars -> 1 byte, 3 chars -> 2 bytes */
    /* Canonical form: encoding the bytes again must give back the same
     * characters, i.e. the unused low bits of the last one are zero. */
    EVP_EncodeBlock(back, bytes, (int)nb);
    if (memcmp(back, grp, rem) != 0) return -1;
    memcpy(out + w, bytes, nb);
    w += nb;
  }
  return (long)w;
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
