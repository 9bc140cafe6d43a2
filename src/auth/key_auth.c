#include "auth/key_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

int key_auth_check(const sw_apps_t *apps, const char *keystr, size_t len, sw_app_t **app,
                   sw_key_t **key, sw_error_t *err) {
  const char *colon = memchr(keystr, ':', len);
  const char *dot = memchr(keystr, '.', len);
  if (!colon || !dot || dot > colon || dot == keystr || colon == dot + 1)
    return errors_set(err, SW_E_INVALID_CREDENTIAL, "invalid key; expected appId.keyId:secret");
  char app_id[128];
  size_t alen = (size_t)(dot - keystr);
  if (alen >= sizeof app_id) return errors_set(err, SW_E_INVALID_CREDENTIAL, "invalid key; app id too long");
  memcpy(app_id, keystr, alen);
  app_id[alen] = '\0';
  /* A key of an unknown app, or an unknown key, is refused like a wrong
   * secret (40101, as Ably does): the answer does not tell which apps or
   * keys exist. */
  sw_app_t *a = apps_find(apps, app_id);
  sw_key_t *k = a ? app_find_key(a, keystr, (size_t)(colon - keystr)) : NULL;
  if (!k) return errors_set(err, SW_E_INVALID_CREDENTIALS, "invalid credentials");
  const char *secret = colon + 1;
  size_t slen = len - (size_t)(secret - keystr);
  /* Length is not secret (it is fixed per key); contents are compared in constant time. */
  if (slen != strlen(k->secret) || CRYPTO_memcmp(secret, k->secret, slen) != 0)
    return errors_set(err, SW_E_INVALID_CREDENTIALS, "invalid credentials");
  *app = a;
  *key = k;
  return 0;
}

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
