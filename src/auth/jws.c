#include "auth/jws.h"

#include <math.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/b64url.h"
#include "auth/jws_json.h"
#include "util/clock.h"

#define MAX_TIME_S 253402300799.0 /* 9999-12-31T23:59:59Z, as jwt.c */
#define DEFAULT_MAX_TTL_MS (24LL * 3600 * 1000)

void jws_clear(sw_jws_t *j) {
  if (!j) return;
  json_decref(j->header);
  json_decref(j->claims);
  memset(j, 0, sizeof *j);
}

static int bad(sw_error_t *err, const char *msg) { return errors_set(err, 40144, "invalid JWT: %s", msg), -1; }

/* Decodes one base64url segment holding a JSON object. */
static json_t *segment_object(const char *seg, size_t len) {
  size_t cap = b64url_decoded_len(len);
  char stack[2048];
  char *buf = cap <= sizeof stack ? stack : malloc(cap ? cap : 1);
  if (!buf) return NULL;
  long got = b64url_decode(seg, len, (uint8_t *)buf, cap);
  json_t *o = got > 0 ? jws_json_object(buf, (size_t)got) : NULL;
  if (buf != stack) free(buf);
  return o;
}

json_t *jws_decode_header(const char *tok, size_t n) {
  const char *d1 = memchr(tok, '.', n);
  return d1 && d1 > tok ? segment_object(tok, (size_t)(d1 - tok)) : NULL;
}

/* jws_decode, with the header already decoded (hdr, taken over) or not (NULL). */
static int decode(const char *tok, size_t n, size_t max_len, json_t *hdr, sw_jws_t *out, sw_error_t *err) {
  memset(out, 0, sizeof *out);
  out->alg = -1;
  if (!max_len) max_len = SW_JWS_DEFAULT_MAX_LEN;
  out->header = hdr; /* freed by jws_clear on every failure below */
  if (n == 0 || n > max_len) {
    jws_clear(out);
    return bad(err, "empty or longer than the token length limit");
  }
  const char *d1 = memchr(tok, '.', n);
  const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - tok)) : NULL;
  const char *why = NULL;
  size_t hlen = 0, clen = 0, slen = 0;
  if (!d2 || memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - tok))) {
    why = "expected three segments header.claims.signature";
  } else {
    hlen = (size_t)(d1 - tok), clen = (size_t)(d2 - d1 - 1), slen = n - (size_t)(d2 + 1 - tok);
    if (!hlen || !clen || !slen) why = "empty segment";
    else if (b64url_decoded_len(slen) > SW_JWS_MAX_SIG) why = "signature too long";
  }
  long sl = why ? 0 : b64url_decode(d2 + 1, slen, out->sig, sizeof out->sig);
  if (!why && sl <= 0) why = "signature is not canonical base64url";
  if (why) {
    jws_clear(out);
    return bad(err, why);
  }
  out->sig_len = (size_t)sl;
  if (!out->header) out->header = segment_object(tok, hlen);
  if (!out->header) {
    jws_clear(out);
    return bad(err, "header is not a base64url JSON object without duplicate names");
  }
  out->claims = segment_object(d1 + 1, clen);
  if (!out->claims) {
    jws_clear(out);
    return bad(err, "claims are not a base64url JSON object without duplicate names");
  }
  out->signed_len = (size_t)(d2 - tok);
  out->alg = -1;
  const json_t *alg = json_object_get(out->header, "alg");
  if (json_is_string(alg)) out->alg = jws_alg_from_name(json_string_value(alg), json_string_length(alg));
  out->kid = json_string_value(json_object_get(out->header, "kid"));
  out->iss = json_string_value(json_object_get(out->claims, "iss"));
  return 0;
}

int jws_decode(const char *tok, size_t n, size_t max_len, sw_jws_t *out, sw_error_t *err) {
  return decode(tok, n, max_len, NULL, out, err);
}

int jws_decode_rest(const char *tok, size_t n, size_t max_len, json_t *header, const uint8_t *signed_sha256,
                    size_t signed_len, sw_jws_t *out, sw_error_t *err) {
  int rc = decode(tok, n, max_len, header, out, err);
  if (rc == 0 && signed_sha256 && signed_len == out->signed_len) {
    memcpy(out->signed_sha256, signed_sha256, sizeof out->signed_sha256);
    out->has_signed_sha256 = true;
  }
  return rc;
}

/* ---- signatures ---- */

static const EVP_MD *alg_md(int alg) {
  switch (alg) {
  case SW_JWS_RS256: case SW_JWS_PS256: case SW_JWS_ES256: case SW_JWS_HS256: return EVP_sha256();
  case SW_JWS_RS384: case SW_JWS_PS384: case SW_JWS_ES384: case SW_JWS_HS384: return EVP_sha384();
  case SW_JWS_RS512: case SW_JWS_PS512: case SW_JWS_ES512: case SW_JWS_HS512: return EVP_sha512();
  default: return NULL;
  }
}

static const char *alg_md_name(int alg) {
  const EVP_MD *m = alg_md(alg);
  return m == EVP_sha256() ? "SHA256" : m == EVP_sha384() ? "SHA384" : "SHA512";
}

/* A DER INTEGER of the big-endian unsigned number b (len bytes) at out:
 * leading zeros dropped (one kept for zero), a zero byte in front when the
 * top bit is set. Returns the bytes written (at most len + 3). */
static size_t der_uint(const uint8_t *b, size_t len, uint8_t *out) {
  while (len > 1 && b[0] == 0) b++, len--;
  size_t pad = b[0] & 0x80 ? 1 : 0;
  out[0] = 0x02;
  out[1] = (uint8_t)(len + pad);
  out[2] = 0;
  memcpy(out + 2 + pad, b, len);
  return 2 + pad + len;
}

/* JWS carries ECDSA signatures as R||S, each exactly the curve's size
 * (RFC 7518 section 3.4); OpenSSL verifies DER: SEQUENCE { INTEGER r,
 * INTEGER s }, written here directly (what i2d_ECDSA_SIG writes, without
 * its BIGNUMs and allocations). Returns the DER length written into der
 * (at most 144 bytes, for P-521), or 0 when sig is malformed. */
static size_t ecdsa_raw_to_der(int alg, const uint8_t *sig, size_t slen, uint8_t *der, size_t dercap) {
  size_t half = alg == SW_JWS_ES256 ? 32 : alg == SW_JWS_ES384 ? 48 : 66;
  if (slen != 2 * half || dercap < 3 + 2 * (half + 3)) return 0;
  uint8_t body[2 * (66 + 3)];
  size_t blen = der_uint(sig, half, body);
  blen += der_uint(sig + half, half, body + blen);
  size_t off = 0;
  der[off++] = 0x30;
  if (blen >= 0x80) der[off++] = 0x81; /* at most 138 bytes: one length byte */
  der[off++] = (uint8_t)blen;
  memcpy(der + off, body, blen);
  return off + blen;
}

bool jws_sig_ok(int alg, EVP_PKEY *key, const uint8_t *data, size_t dlen, const uint8_t *sig, size_t slen) {
  sw_jwk_family_t fam = jws_alg_family(alg);
  if (!fam || !key) return false;
  uint8_t der[160];
  if (fam != SW_JWK_RSA && fam != SW_JWK_ED25519) {
    slen = ecdsa_raw_to_der(alg, sig, slen, der, sizeof der);
    if (!slen) return false;
    sig = der;
  } else if (fam == SW_JWK_RSA && slen != (size_t)EVP_PKEY_get_size(key)) {
    return false; /* RFC 8017: the signature is exactly as long as the modulus */
  }
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = NULL;
  bool ok = false;
  if (md && EVP_DigestVerifyInit(md, &pctx, fam == SW_JWK_ED25519 ? NULL : alg_md(alg), NULL, key) == 1) {
    bool pss = alg == SW_JWS_PS256 || alg == SW_JWS_PS384 || alg == SW_JWS_PS512;
    if (!pss || (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
                 EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
                 EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, alg_md(alg)) == 1))
      ok = EVP_DigestVerify(md, sig, slen, data, dlen) == 1;
  }
  EVP_MD_CTX_free(md);
  return ok;
}

static void memo_clear(sw_jwk_t *k) {
  EVP_PKEY_CTX_free(k->vctx);
  EVP_MD_CTX_free(k->mdctx);
  EVP_MD_free(k->md);
  k->vctx = NULL;
  k->mdctx = NULL;
  k->md = NULL;
}

/* Sets up k's memo (jwk.h) for alg, once: the digest fetched, contexts
 * made. Returns false when OpenSSL refuses (k then has no memo). */
static bool memo_for(sw_jwk_t *k, int alg) {
  if (k->mdctx && k->vctx_alg == alg) return true;
  memo_clear(k);
  k->vctx_alg = alg;
  bool ok = (k->mdctx = EVP_MD_CTX_new()) != NULL;
  if (ok && k->family == SW_JWK_ED25519) {
    ok = EVP_DigestVerifyInit_ex(k->mdctx, NULL, NULL, NULL, NULL, k->pkey, NULL) == 1;
  } else if (ok) {
    bool pss = alg == SW_JWS_PS256 || alg == SW_JWS_PS384 || alg == SW_JWS_PS512;
    ok = (k->md = EVP_MD_fetch(NULL, alg_md_name(alg), NULL)) != NULL &&
         (k->vctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL)) != NULL && EVP_PKEY_verify_init(k->vctx) == 1 &&
         EVP_PKEY_CTX_set_signature_md(k->vctx, k->md) == 1;
    if (ok && k->family == SW_JWK_RSA)
      ok = EVP_PKEY_CTX_set_rsa_padding(k->vctx, pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) == 1 &&
           (!pss || (EVP_PKEY_CTX_set_rsa_pss_saltlen(k->vctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
                     EVP_PKEY_CTX_set_rsa_mgf1_md(k->vctx, k->md) == 1));
  }
  if (!ok) memo_clear(k);
  return ok;
}

/* jws_sig_ok_jwk, with the SHA-256 of data when the caller has it (NULL
 * otherwise; used only by the algorithms that hash with SHA-256). */
static bool sig_ok_kept(int alg, sw_jwk_t *k, const uint8_t *data, size_t dlen, const uint8_t *sha256,
                        const uint8_t *sig, size_t slen) {
  sw_jwk_family_t fam = jws_alg_family(alg);
  if (!fam || fam != k->family || !memo_for(k, alg)) return jws_sig_ok(alg, k->pkey, data, dlen, sig, slen);
  if (fam == SW_JWK_ED25519) {
    /* Re-initialising with no key reuses the one set (OpenSSL 3): a
     * fraction of a fresh EVP_DigestVerifyInit, and it clears the
     * context's "finalised" state for the next one-shot verify. */
    if (EVP_DigestVerifyInit_ex(k->mdctx, NULL, NULL, NULL, NULL, NULL, NULL) != 1) {
      memo_clear(k);
      return jws_sig_ok(alg, k->pkey, data, dlen, sig, slen);
    }
    return EVP_DigestVerify(k->mdctx, sig, slen, data, dlen) == 1;
  }
  uint8_t der[160];
  if (fam != SW_JWK_RSA) {
    slen = ecdsa_raw_to_der(alg, sig, slen, der, sizeof der);
    if (!slen) return false;
    sig = der;
  } else if (slen != (size_t)EVP_PKEY_get_size(k->pkey)) {
    return false;
  }
  if (sha256 && alg_md(alg) == EVP_sha256()) return EVP_PKEY_verify(k->vctx, sig, slen, sha256, 32) == 1;
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  return EVP_DigestInit_ex2(k->mdctx, k->md, NULL) == 1 && EVP_DigestUpdate(k->mdctx, data, dlen) == 1 &&
         EVP_DigestFinal_ex(k->mdctx, md, &mdlen) == 1 && EVP_PKEY_verify(k->vctx, sig, slen, md, mdlen) == 1;
}

bool jws_sig_ok_jwk(int alg, sw_jwk_t *k, const uint8_t *data, size_t dlen, const uint8_t *sig, size_t slen) {
  return sig_ok_kept(alg, k, data, dlen, NULL, sig, slen);
}

static bool hmac_ok(int alg, const uint8_t *secret, size_t slen, const uint8_t *data, size_t dlen,
                    const uint8_t *sig, size_t siglen) {
  uint8_t mac[EVP_MAX_MD_SIZE];
  size_t maclen = 0;
  const char *digest = alg == SW_JWS_HS256 ? "SHA256" : alg == SW_JWS_HS384 ? "SHA384" : "SHA512";
  if (!EVP_Q_mac(NULL, "HMAC", NULL, digest, NULL, secret, slen, data, dlen, mac, sizeof mac, &maclen))
    return false;
  bool ok = maclen == siglen && CRYPTO_memcmp(mac, sig, maclen) == 0;
  OPENSSL_cleanse(mac, sizeof mac);
  return ok;
}

/* ---- header ---- */

static int check_header(const sw_jws_t *j, const sw_jws_policy_t *pol, sw_error_t *err) {
  static const char *const refused[] = {"crit", "jku", "x5u", "x5c", "jwk"};
  for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
    if (json_object_get(j->header, refused[i]))
      return errors_set(err, 40144, "invalid JWT: the %s header is not accepted (keys come only from the provider's configuration)",
                        refused[i]), -1;
  const json_t *alg = json_object_get(j->header, "alg");
  if (!json_is_string(alg)) return bad(err, "no alg in the header");
  if (j->alg < 0 || !(pol->algs & SW_JWS_ALG_BIT(j->alg)))
    return errors_set(err, 40144, "invalid JWT: algorithm %.16s is not allowed for this identity provider",
                      json_string_value(alg)), -1;
  const json_t *typ = json_object_get(j->header, "typ");
  if (typ) {
    const char *t = json_string_value(typ);
    if (t && strncasecmp(t, "application/", 12) == 0) t += 12;
    if (!t || (strcasecmp(t, "JWT") != 0 && strcasecmp(t, "at+jwt") != 0)) return bad(err, "typ must be JWT or at+jwt");
  }
  const json_t *kid = json_object_get(j->header, "kid");
  if (kid && (!json_is_string(kid) || json_string_length(kid) == 0 || json_string_length(kid) >= SW_JWK_KID_MAX))
    return bad(err, "kid must be a string of 1 to 255 bytes");
  return 0;
}

/* Verifies the signature with the keys that fit: those with the token's
 * kid (any number; a provider may publish one kid per algorithm), or the
 * only fitting key when the token has no kid. */
static int check_signature(const sw_jws_t *j, const char *tok, const sw_jws_policy_t *pol, const sw_jwks_t *keys,
                           sw_jws_result_t *res, sw_error_t *err) {
  const uint8_t *data = (const uint8_t *)tok;
  if (SW_JWS_ALG_BIT(j->alg) & SW_JWS_HMAC_ALGS) {
    if (!pol->hmac_secret || !hmac_ok(j->alg, pol->hmac_secret, pol->hmac_secret_len, data, j->signed_len, j->sig, j->sig_len))
      return bad(err, "signature does not verify");
    return 0;
  }
  size_t same_kid = 0, fitting = 0;
  const sw_jwk_t *only = NULL;
  const uint8_t *sha256 = j->has_signed_sha256 ? j->signed_sha256 : NULL;
  for (size_t i = 0; keys && i < keys->n; i++) {
    const sw_jwk_t *k = &keys->keys[i];
    if (j->kid && (!k->has_kid || strcmp(k->kid, j->kid) != 0)) continue;
    same_kid++;
    if (!jwk_fits(k, j->alg)) continue;
    fitting++;
    only = k;
    /* The keys' verify contexts are a memo (jwk.h), hence the cast. */
    if (j->kid && sig_ok_kept(j->alg, (sw_jwk_t *)k, data, j->signed_len, sha256, j->sig, j->sig_len)) return 0;
  }
  if (j->kid && !same_kid) {
    res->unknown_kid = true;
    return errors_set(err, 40144, "invalid JWT: no key with kid %.64s at this identity provider", j->kid), -1;
  }
  if (!fitting) return errors_set(err, 40144, "invalid JWT: no key of this identity provider fits %s", jws_alg_name(j->alg)), -1;
  if (!j->kid) {
    if (fitting > 1) return bad(err, "no kid, and the identity provider has several keys for this algorithm");
    if (sig_ok_kept(j->alg, (sw_jwk_t *)only, data, j->signed_len, sha256, j->sig, j->sig_len)) return 0;
  }
  return bad(err, "signature does not verify");
}

/* ---- claims ---- */

/* A NumericDate claim (RFC 7519: seconds, may have a fraction) in ms.
 * Returns 1 when present and valid, 0 when absent, -1 when invalid. */
static int time_claim(const json_t *claims, const char *name, int64_t *ms) {
  const json_t *v = json_object_get(claims, name);
  if (!v) return 0;
  if (!json_is_number(v)) return -1;
  double s = json_number_value(v);
  if (!isfinite(s) || s < 0 || s > MAX_TIME_S) return -1;
  *ms = (int64_t)floor(s * 1000.0);
  return 1;
}

static bool aud_matches(const json_t *aud, const sw_jws_policy_t *pol) {
  for (size_t i = 0; i < pol->n_audiences; i++) {
    const char *want = pol->audiences[i];
    if (json_is_string(aud) && strcmp(json_string_value(aud), want) == 0) return true;
    size_t k;
    const json_t *v;
    if (json_is_array(aud))
      json_array_foreach(aud, k, v) if (json_is_string(v) && strcmp(json_string_value(v), want) == 0) return true;
  }
  return false;
}

static int check_claims(const sw_jws_t *j, const sw_jws_policy_t *pol, sw_jws_result_t *res, sw_error_t *err) {
  const json_t *iss = json_object_get(j->claims, "iss");
  size_t want = strlen(pol->issuer);
  if (!json_is_string(iss) || json_string_length(iss) != want || memcmp(json_string_value(iss), pol->issuer, want) != 0)
    return bad(err, "iss is not this identity provider's issuer");
  if (pol->n_audiences) {
    const json_t *aud = json_object_get(j->claims, "aud");
    if (!aud) return bad(err, "no aud claim, and the identity provider requires an audience");
    if (!aud_matches(aud, pol)) return bad(err, "aud does not name an audience this identity provider accepts");
  }
  int64_t now = pol->now_ms ? pol->now_ms : clock_now_ms();
  int64_t leeway = pol->leeway_ms > 0 ? pol->leeway_ms : 0;
  int64_t exp = 0, iat = 0, nbf = 0;
  int has_exp = time_claim(j->claims, "exp", &exp);
  int has_iat = time_claim(j->claims, "iat", &iat);
  int has_nbf = time_claim(j->claims, "nbf", &nbf);
  if (has_exp <= 0) return bad(err, has_exp ? "exp is not a NumericDate" : "no exp claim");
  if (has_iat < 0 || has_nbf < 0) return bad(err, "iat or nbf is not a NumericDate");
  if (!has_iat && pol->require_iat) return bad(err, "no iat claim");
  if (exp <= now - leeway) return errors_set(err, SW_E_TOKEN_EXPIRED, "token expired"), -1;
  if (has_iat && iat > now + leeway)
    return errors_set(err, 40144, "invalid token; issuedAt time must not be in the future"), -1;
  if (has_nbf && nbf > now + leeway) return bad(err, "nbf is in the future (not yet valid)");
  if (has_iat && exp <= iat) return bad(err, "exp is not after iat");
  int64_t max_ttl = pol->max_ttl_ms > 0 ? pol->max_ttl_ms : DEFAULT_MAX_TTL_MS;
  if (exp - (has_iat ? iat : now) > max_ttl)
    return errors_set(err, SW_E_INVALID_PARAM, "token lifetime is over the limit of %lld s",
                      (long long)(max_ttl / 1000)), -1;
  res->exp_ms = exp;
  res->iat_ms = has_iat ? iat : 0;
  return 0;
}

int jws_verify(const sw_jws_t *j, const char *tok, const sw_jws_policy_t *pol, const sw_jwks_t *keys,
               sw_jws_result_t *res, sw_error_t *err) {
  memset(res, 0, sizeof *res);
  if (!pol->issuer) return bad(err, "no issuer configured");
  if (check_header(j, pol, err) || check_signature(j, tok, pol, keys, res, err)) return -1;
  bool unknown = res->unknown_kid;
  int rc = check_claims(j, pol, res, err);
  res->unknown_kid = unknown;
  return rc ? -1 : 0;
}
