#include "proto/textenc.h"

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* EVP_*Block take an int length; work in chunks well below INT_MAX that
 * keep base64 groups whole (multiples of 3 raw / 4 encoded bytes). */
#define B64_RAW_CHUNK ((size_t)3 << 20)
#define B64_TEXT_CHUNK ((size_t)4 << 20)

int textenc_base64_append(sw_buf_t *out, const uint8_t *p, size_t n) {
  size_t need = (n / 3 + (n % 3 != 0)) * 4;
  /* +1: EVP_EncodeBlock writes a trailing NUL we then drop. */
  if (need / 4 < n / 3 || buf_reserve(out, need + 1)) return -ENOMEM;
  while (n > 0) {
    size_t take = n < B64_RAW_CHUNK ? n : B64_RAW_CHUNK;
    int w = EVP_EncodeBlock(out->data + out->len, p, (int)take);
    out->len += (size_t)w;
    p += take;
    n -= take;
  }
  return 0;
}

static bool b64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

int textenc_base64_decode(const char *s, size_t n, uint8_t **out, size_t *outlen) {
  /* EVP_DecodeBlock skips surrounding whitespace and counts padding as
   * zero bytes, so validate strictly first and subtract the padding. */
  if (n % 4 != 0) return -EINVAL;
  size_t pad = 0;
  if (n >= 4 && s[n - 1] == '=') pad = s[n - 2] == '=' ? 2 : 1;
  for (size_t i = 0; i < n - pad; i++)
    if (!b64_char(s[i])) return -EINVAL;
  size_t raw = n / 4 * 3;
  uint8_t *buf = malloc(raw + 1);
  if (!buf) return -ENOMEM;
  size_t done = 0;
  for (size_t off = 0; off < n; off += B64_TEXT_CHUNK) {
    size_t take = n - off < B64_TEXT_CHUNK ? n - off : B64_TEXT_CHUNK;
    int r = EVP_DecodeBlock(buf + done, (const unsigned char *)s + off, (int)take);
    if (r < 0) {
      free(buf);
      return -EINVAL;
    }
    done += (size_t)r;
  }
  done -= pad;
  buf[done] = '\0';
  *out = buf;
  *outlen = done;
  return 0;
}

size_t textenc_utf8_seq(const uint8_t *p, size_t n) {
  uint8_t c = p[0];
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0; /* continuation byte, overlong 0xc0/0xc1, or > 0xf4 */
  }
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    cp = cp << 6 | (p[i] & 0x3f);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) return 0;
  if (cp >= 0xd800 && cp <= 0xdfff) return 0;
  return len;
}

bool textenc_utf8_valid(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    /* ASCII eight bytes at a time: ids, names, serials and most text are
     * ASCII, and every string of every msgpack frame passes through here. */
    uint64_t w;
    if (n - i >= sizeof w && (memcpy(&w, p + i, sizeof w), (w & 0x8080808080808080ull) == 0)) {
      i += sizeof w;
      continue;
    }
    if (p[i] < 0x80) {
      i++;
      continue;
    }
    size_t l = textenc_utf8_seq(p + i, n - i);
    if (l == 0) return false;
    i += l;
  }
  return true;
}
