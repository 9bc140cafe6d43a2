#include "auth/key_auth.h"

#include <openssl/evp.h>
#include <string.h>

int key_auth_basic_decode(const char *hdr, size_t len, char *out, size_t outcap) {
  if (len < 6 || strncasecmp(hdr, "Basic ", 6) != 0) return -1;
  hdr += 6;
  len -= 6;
  while (len && *hdr == ' ') hdr++, len--;
  if (len == 0 || len % 4 || len / 4 * 3 + 1 > outcap) return -1;
  int n = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)hdr, (int)len);
  if (n < 0) return -1;
  /* EVP_DecodeBlock counts padding bytes as zeros; drop them. */
  if (hdr[len - 1] == '=') n--;
  if (hdr[len - 2] == '=') n--;
  out[n] = '\0';
  if (memchr(out, '\0', (size_t)n)) return -1;
  return 0;
}
