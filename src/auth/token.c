/* token.c: self-contained Ably tokens, encrypted and authenticated with the
 * server secret (encrypt-then-MAC: AES-256-CTR, HMAC-SHA256), and the
 * references that stand for large ones kept in the store. See token.h and
 * docs/tokens.md. */
#include "auth/token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "auth/b64url.h"

#define IV_LEN 16
#define TAG_LEN 32
#define PAYLOAD_VERSION 1

/* Payload flag bits; any other bit set makes a payload invalid, so a later
 * version cannot be half-understood by this one. */
#define F_REVOCABLE 0x01u
#define F_CLIENT_ID 0x02u
#define F_REVOCATION_KEY 0x04u
#define F_KNOWN (F_REVOCABLE | F_CLIENT_ID | F_REVOCATION_KEY)

/* Longest base64url text after the prefix, and the most raw bytes it holds. */
#define B64_MAX (SW_TOKEN_MAX_LEN - SW_TOKEN_PREFIX_LEN)
#define RAW_MAX (B64_MAX / 4 * 3 + (B64_MAX % 4 ? B64_MAX % 4 - 1 : 0))

static int fail(sw_error_t *err, int code, const char *msg) {
  if (err) errors_set(err, code, "%s", msg);
  return -1;
}

/* ---- key derivation ----
 * Two independent keys from one secret, so the cipher and the MAC never
 * share a key; the labels also keep these keys apart from anything else the
 * server may derive from the same secret. HMAC-SHA256 keyed with a uniformly
 * random 32-byte secret is a PRF, which is all a KDF needs here (HKDF's
 * extract step exists for secrets that are not uniform). */
static int derive(const uint8_t secret[SW_TOKEN_SECRET_LEN], const char *label, uint8_t out[32]) {
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), secret, SW_TOKEN_SECRET_LEN, (const unsigned char *)label, strlen(label), out,
            &len) ||
      len != 32)
    return -1;
  return 0;
}

static const char ENC_LABEL[] = "switchboard token v1 encryption";
static const char MAC_LABEL[] = "switchboard token v1 authentication";

/* AES-256-CTR is its own inverse: the same call encrypts and decrypts. */
static int ctr_xor(const uint8_t key[32], const uint8_t iv[IV_LEN], const uint8_t *in, size_t n,
                   uint8_t *out) {
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  if (!ctx) return -1;
  int ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_ctr(), NULL, key, iv) == 1;
  int outl = 0, fin = 0;
  if (ok && n) ok = EVP_EncryptUpdate(ctx, out, &outl, in, (int)n) == 1 && (size_t)outl == n;
  if (ok) ok = EVP_EncryptFinal_ex(ctx, out + outl, &fin) == 1 && fin == 0;
  EVP_CIPHER_CTX_free(ctx);
  return ok ? 0 : -1;
}

/* ---- payload ---- */

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static void put_i64(uint8_t *p, int64_t v) {
  uint64_t u = (uint64_t)v;
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(u >> (56 - 8 * i));
}

/* Encodes info; returns a malloc'd buffer of *len bytes or NULL. */
static uint8_t *payload_encode(const sw_token_info_t *info, size_t *len) {
  const char *nul = memchr(info->key_name, '\0', sizeof info->key_name);
  if (!nul || nul == info->key_name || !info->capability || info->expires <= info->issued) return NULL;
  size_t kn = (size_t)(nul - info->key_name);
  size_t cn = strlen(info->capability);
  size_t in = info->client_id ? strlen(info->client_id) : 0;
  size_t rn = info->revocation_key ? strlen(info->revocation_key) : 0;
  /* Each length is also bounded by RAW_MAX, far below UINT32_MAX, so the
   * casts below are exact and the sum cannot overflow. */
  if (cn > RAW_MAX || in > RAW_MAX || rn > RAW_MAX) return NULL;
  size_t total =
      1 + 1 + 8 + 8 + 1 + kn + 4 + cn + (info->client_id ? 4 + in : 0) + (info->revocation_key ? 4 + rn : 0);
  if (total > RAW_MAX) return NULL;
  uint8_t *p = malloc(total), *w = p;
  if (!p) return NULL;
  *w++ = PAYLOAD_VERSION;
  *w++ = (uint8_t)((info->revocable ? F_REVOCABLE : 0) | (info->client_id ? F_CLIENT_ID : 0) |
                   (info->revocation_key ? F_REVOCATION_KEY : 0));
  put_i64(w, info->issued), w += 8;
  put_i64(w, info->expires), w += 8;
  *w++ = (uint8_t)kn;
  memcpy(w, info->key_name, kn), w += kn;
  put_u32(w, (uint32_t)cn), w += 4;
  memcpy(w, info->capability, cn), w += cn;
  if (info->client_id) {
    put_u32(w, (uint32_t)in), w += 4;
    memcpy(w, info->client_id, in), w += in;
  }
  if (info->revocation_key) {
    put_u32(w, (uint32_t)rn), w += 4;
    memcpy(w, info->revocation_key, rn), w += rn;
  }
  *len = total;
  return p;
}

typedef struct reader {
  const uint8_t *p;
  size_t n, off;
} reader_t;

static bool rd_u8(reader_t *r, uint8_t *v) {
  if (r->n - r->off < 1) return false;
  *v = r->p[r->off++];
  return true;
}

static bool rd_u32(reader_t *r, uint32_t *v) {
  if (r->n - r->off < 4) return false;
  const uint8_t *p = r->p + r->off;
  *v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
  r->off += 4;
  return true;
}

static bool rd_i64(reader_t *r, int64_t *v) {
  if (r->n - r->off < 8) return false;
  uint64_t u = 0;
  for (int i = 0; i < 8; i++) u = u << 8 | r->p[r->off + (size_t)i];
  r->off += 8;
  *v = (int64_t)u;
  return true;
}

/* A length-prefixed string without NUL; *s is malloc'd. Returns 0, -1 for
 * malformed input, -2 when out of memory. */
static int rd_str(reader_t *r, uint32_t len, char **s) {
  if (r->n - r->off < len || memchr(r->p + r->off, '\0', len)) return -1;
  *s = malloc((size_t)len + 1);
  if (!*s) return -2;
  memcpy(*s, r->p + r->off, len);
  (*s)[len] = '\0';
  r->off += len;
  return 0;
}

int token_payload_decode(const uint8_t *p, size_t n, sw_token_info_t *out, sw_error_t *err) {
  memset(out, 0, sizeof *out);
  reader_t r = {p, n, 0};
  uint8_t version, flags, kn;
  uint32_t len;
  int rc = -1;
  if (!rd_u8(&r, &version) || version != PAYLOAD_VERSION || !rd_u8(&r, &flags) || (flags & ~F_KNOWN) ||
      !rd_i64(&r, &out->issued) || !rd_i64(&r, &out->expires) || !rd_u8(&r, &kn) || kn == 0 ||
      kn >= sizeof out->key_name || r.n - r.off < kn || memchr(r.p + r.off, '\0', kn))
    goto bad;
  memcpy(out->key_name, r.p + r.off, kn);
  r.off += kn;
  out->revocable = (flags & F_REVOCABLE) != 0;
  if (!rd_u32(&r, &len) || (rc = rd_str(&r, len, &out->capability)) != 0) goto bad;
  if (flags & F_CLIENT_ID) {
    rc = -1;
    if (!rd_u32(&r, &len) || (rc = rd_str(&r, len, &out->client_id)) != 0) goto bad;
  }
  if (flags & F_REVOCATION_KEY) {
    rc = -1;
    if (!rd_u32(&r, &len) || (rc = rd_str(&r, len, &out->revocation_key)) != 0) goto bad;
  }
  rc = -1;
  if (r.off != r.n || out->expires <= out->issued) goto bad;
  return 0;
bad:
  token_info_clear(out);
  return rc == -2 ? fail(err, SW_E_INTERNAL, "out of memory decoding token")
                  : fail(err, 40145 /* invalid Ably token */, "invalid token");
}

/* ---- sealing ---- */

char *token_seal(const uint8_t secret[SW_TOKEN_SECRET_LEN], const uint8_t *payload, size_t payload_len) {
  if (payload_len > RAW_MAX - IV_LEN - TAG_LEN) return NULL;
  size_t raw_len = IV_LEN + payload_len + TAG_LEN;
  size_t text_len = (raw_len * 4 + 2) / 3;
  if (SW_TOKEN_PREFIX_LEN + text_len > SW_TOKEN_MAX_LEN) return NULL;

  /* One buffer holds prefix || iv || ciphertext || tag, so the tag is
   * computed over contiguous bytes. */
  uint8_t *buf = malloc(SW_TOKEN_PREFIX_LEN + raw_len);
  char *tok = malloc(SW_TOKEN_PREFIX_LEN + text_len + 1);
  uint8_t enc_key[32], mac_key[32];
  bool ok = buf && tok;
  if (ok) {
    uint8_t *iv = buf + SW_TOKEN_PREFIX_LEN, *ct = iv + IV_LEN, *tag = ct + payload_len;
    memcpy(buf, SW_TOKEN_PREFIX, SW_TOKEN_PREFIX_LEN);
    unsigned int tl = 0;
    /* A random 128-bit IV per token: CTR mode must never reuse (key, IV),
     * and 2^64 tokens would be needed for a likely collision. */
    ok = RAND_bytes(iv, IV_LEN) == 1 && derive(secret, ENC_LABEL, enc_key) == 0 &&
         derive(secret, MAC_LABEL, mac_key) == 0 && ctr_xor(enc_key, iv, payload, payload_len, ct) == 0 &&
         HMAC(EVP_sha256(), mac_key, sizeof mac_key, buf, SW_TOKEN_PREFIX_LEN + IV_LEN + payload_len, tag,
              &tl) &&
         tl == TAG_LEN;
  }
  if (ok) {
    memcpy(tok, SW_TOKEN_PREFIX, SW_TOKEN_PREFIX_LEN);
    ok = b64url_encode(buf + SW_TOKEN_PREFIX_LEN, raw_len, tok + SW_TOKEN_PREFIX_LEN, text_len + 1) ==
         (long)text_len;
  }
  OPENSSL_cleanse(enc_key, sizeof enc_key);
  OPENSSL_cleanse(mac_key, sizeof mac_key);
  free(buf);
  if (!ok) {
    free(tok);
    return NULL;
  }
  return tok;
}

char *token_mint(const uint8_t secret[SW_TOKEN_SECRET_LEN], const sw_token_info_t *info) {
  if (!secret || !info) return NULL;
  size_t len;
  uint8_t *payload = payload_encode(info, &len);
  if (!payload) return NULL;
  char *tok = token_seal(secret, payload, len);
  OPENSSL_cleanse(payload, len);
  free(payload);
  return tok;
}

bool token_looks_like(const char *s, size_t n) {
  if (!s || n <= SW_TOKEN_PREFIX_LEN || n > SW_TOKEN_MAX_LEN ||
      memcmp(s, SW_TOKEN_PREFIX, SW_TOKEN_PREFIX_LEN))
    return false;
  for (size_t i = SW_TOKEN_PREFIX_LEN; i < n; i++)
    if (!b64url_is_char((unsigned char)s[i])) return false;
  return true;
}

/* ---- references ---- */

#define REF_RAW 32
_Static_assert(sizeof SW_TOKEN_REF_PREFIX - 1 == SW_TOKEN_PREFIX_LEN, "one prefix length for both forms");
_Static_assert(SW_TOKEN_PREFIX_LEN + (REF_RAW * 4 + 2) / 3 == SW_TOKEN_REF_LEN, "reference length");

char *token_ref_new(void) {
  uint8_t raw[REF_RAW];
  char *ref = malloc(SW_TOKEN_REF_LEN + 1);
  if (!ref || RAND_bytes(raw, sizeof raw) != 1 ||
      b64url_encode(raw, sizeof raw, ref + SW_TOKEN_PREFIX_LEN, SW_TOKEN_REF_LEN - SW_TOKEN_PREFIX_LEN + 1) !=
          SW_TOKEN_REF_LEN - SW_TOKEN_PREFIX_LEN) {
    free(ref);
    return NULL;
  }
  memcpy(ref, SW_TOKEN_REF_PREFIX, SW_TOKEN_PREFIX_LEN);
  OPENSSL_cleanse(raw, sizeof raw);
  return ref;
}

bool token_ref_looks_like(const char *s, size_t n) {
  uint8_t raw[REF_RAW];
  return s && n == SW_TOKEN_REF_LEN && memcmp(s, SW_TOKEN_REF_PREFIX, SW_TOKEN_PREFIX_LEN) == 0 &&
         b64url_decode(s + SW_TOKEN_PREFIX_LEN, n - SW_TOKEN_PREFIX_LEN, raw, sizeof raw) == REF_RAW;
}

void token_ref_id(const char *s, size_t n, char out[SW_TOKEN_REF_ID_LEN + 1]) {
  static const char hex[] = "0123456789abcdef";
  uint8_t h[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)s, n, h);
  for (size_t i = 0; i < sizeof h; i++) {
    out[2 * i] = hex[h[i] >> 4];
    out[2 * i + 1] = hex[h[i] & 15];
  }
  out[SW_TOKEN_REF_ID_LEN] = '\0';
}

int token_open(const uint8_t secret[SW_TOKEN_SECRET_LEN], const char *tok, size_t n, uint8_t **payload,
               size_t *payload_len, sw_error_t *err) {
  *payload = NULL;
  *payload_len = 0;
  /* Length and shape first, before any allocation or cryptography. */
  if (!tok || !token_looks_like(tok, n)) return fail(err, 40145 /* invalid Ably token */, "invalid token");
  size_t text_len = n - SW_TOKEN_PREFIX_LEN;
  if (text_len < b64url_encoded_len(IV_LEN + TAG_LEN)) return fail(err, 40145, "invalid token");

  /* One buffer holds prefix || iv || ciphertext || tag, as when sealing. */
  size_t cap = b64url_decoded_len(text_len);
  uint8_t *buf = malloc(SW_TOKEN_PREFIX_LEN + cap);
  if (!buf) return fail(err, SW_E_INTERNAL, "out of memory checking token");
  memcpy(buf, SW_TOKEN_PREFIX, SW_TOKEN_PREFIX_LEN);
  /* Strict: only the canonical spelling of a byte string decodes, so one
   * token has exactly one text. */
  long raw = b64url_decode(tok + SW_TOKEN_PREFIX_LEN, text_len, buf + SW_TOKEN_PREFIX_LEN, cap);
  if (raw < IV_LEN + TAG_LEN) {
    free(buf);
    return fail(err, 40145, "invalid token");
  }
  size_t ct_len = (size_t)raw - IV_LEN - TAG_LEN;
  const uint8_t *iv = buf + SW_TOKEN_PREFIX_LEN, *ct = iv + IV_LEN, *tag = ct + ct_len;

  uint8_t enc_key[32], mac_key[32], want[TAG_LEN];
  unsigned int tl = 0;
  int rc;
  if (derive(secret, MAC_LABEL, mac_key) ||
      !HMAC(EVP_sha256(), mac_key, sizeof mac_key, buf, SW_TOKEN_PREFIX_LEN + IV_LEN + ct_len, want, &tl) ||
      tl != TAG_LEN) {
    rc = fail(err, SW_E_INTERNAL, "token check failed");
  } else if (CRYPTO_memcmp(want, tag, TAG_LEN) != 0) {
    /* Not issued by this server with its current secret, or altered. */
    rc = fail(err, 40143 /* token unrecognized */, "token not recognised");
  } else {
    /* +1 so a zero-length payload still gets a distinct allocation. */
    uint8_t *pt = malloc(ct_len + 1);
    if (!pt) {
      rc = fail(err, SW_E_INTERNAL, "out of memory checking token");
    } else if (derive(secret, ENC_LABEL, enc_key) || ctr_xor(enc_key, iv, ct, ct_len, pt)) {
      free(pt);
      rc = fail(err, SW_E_INTERNAL, "token check failed");
    } else {
      *payload = pt;
      *payload_len = ct_len;
      rc = 0;
    }
  }
  OPENSSL_cleanse(enc_key, sizeof enc_key);
  OPENSSL_cleanse(mac_key, sizeof mac_key);
  free(buf);
  return rc;
}

int token_verify(const uint8_t secret[SW_TOKEN_SECRET_LEN], const char *tok, size_t n, int64_t now_ms,
                 sw_token_info_t *out, sw_error_t *err) {
  memset(out, 0, sizeof *out);
  uint8_t *payload;
  size_t len;
  if (token_open(secret, tok, n, &payload, &len, err)) return -1;
  int rc = token_payload_decode(payload, len, out, err);
  OPENSSL_cleanse(payload, len);
  free(payload);
  if (rc) return -1;
  if (now_ms >= out->expires) {
    token_info_clear(out);
    return fail(err, SW_E_TOKEN_EXPIRED, "token expired");
  }
  return 0;
}

void token_info_clear(sw_token_info_t *t) {
  if (!t) return;
  free(t->capability);
  free(t->client_id);
  free(t->revocation_key);
  memset(t, 0, sizeof *t);
}
