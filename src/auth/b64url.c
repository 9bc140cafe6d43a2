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

/* base64url character to its base64 twin. */
static char to_std(char c) { return c == '-' ? '+' : c == '_' ? '/' : c; }

long b64url_decode(const char *in, size_t n, uint8_t *out, size_t outcap) {
  if (n % 4 == 1) return -1;
  size_t want = b64url_decoded_len(n);
  if (outcap < want) return -1;
  /* EVP_DecodeBlock skips surrounding whitespace and accepts '=', so the
   * alphabet is checked here first. */
  for (size_t i = 0; i < n; i++)
    if (!b64url_is_char((unsigned char)in[i])) return -1;

  unsigned char tmp[DECODE_CHUNK];
  size_t full = n / 4 * 4, done = 0, w = 0;
  while (done < full) {
    size_t k = full - done < DECODE_CHUNK ? full - done : DECODE_CHUNK;
    for (size_t i = 0; i < k; i++) tmp[i] = (unsigned char)to_std(in[done + i]);
    int got = EVP_DecodeBlock(out + w, tmp, (int)k);
    if (got != (int)(k / 4 * 3)) return -1;
    w += (size_t)got;
    done += k;
  }

  size_t rem = n - full;
  if (rem) {
    unsigned char grp[4] = {'=', '=', '=', '='}, bytes[3], back[5];
    for (size_t i = 0; i < rem; i++) grp[i] = (unsigned char)to_std(in[full + i]);
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
