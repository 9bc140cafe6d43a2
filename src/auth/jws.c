#include "auth/jws.h"

#include <math.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
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

int jws_decode(const char *tok, size_t n, size_t max_len, sw_jws_t *out, sw_error_t *err) {
  memset(out, 0, sizeof *out);
  out->alg = -1;
  if (!max_len) max_len = SW_JWS_DEFAULT_MAX_LEN;
  if (n == 0 || n > max_len) return bad(err, "empty or longer than the token length limit");
  const char *d1 = memchr(tok, '.', n);
  const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - tok)) : NULL;
  if (!d2 || memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - tok)))
    return bad(err, "expected three segments header.claims.signature");
  size_t hlen = (size_t)(d1 - tok), clen = (size_t)(d2 - d1 - 1), slen = n - (size_t)(d2 + 1 - tok);
  if (!hlen || !clen || !slen) return bad(err, "empty segment");
  if (b64url_decoded_len(slen) > SW_JWS_MAX_SIG) return bad(err, "signature too long");
  long sl = b64url_decode(d2 + 1, slen, out->sig, sizeof out->sig);
  if (sl <= 0) return bad(err, "signature is not canonical base64url");
  out->sig_len = (size_t)sl;
  out->header = segment_object(tok, hlen);
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

/* ---- signatures ---- */

static const EVP_MD *alg_md(int alg) {
  switch (alg) {
  case SW_JWS_RS256: case SW_JWS_PS256: case SW_JWS_ES256: case SW_JWS_HS256: return EVP_sha256();
  case SW_JWS_RS384: case SW_JWS_PS384: case SW_JWS_ES384: case SW_JWS_HS384: return EVP_sha384();
  case SW_JWS_RS512: case SW_JWS_PS512: case SW_JWS_ES512: case SW_JWS_HS512: return EVP_sha512();
  default: return NULL;
  }
}

/* JWS carries ECDSA signatures as R||S, each exactly the curve's size
 * (RFC 7518 section 3.4); OpenSSL verifies DER. Returns the DER length
 * written into der (at most 160 bytes), or 0 when sig is malformed. */
static size_t ecdsa_raw_to_der(int alg, const uint8_t *sig, size_t slen, uint8_t *der, size_t dercap) {
  size_t half = alg == SW_JWS_ES256 ? 32 : alg == SW_JWS_ES384 ? 48 : 66;
  if (slen != 2 * half) return 0;
  ECDSA_SIG *es = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(sig, (int)half, NULL), *s = BN_bin2bn(sig + half, (int)half, NULL);
  size_t out = 0;
  if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
    r = s = NULL; /* owned by es now */
    int len = i2d_ECDSA_SIG(es, NULL);
    if (len > 0 && (size_t)len <= dercap) {
      uint8_t *p = der;
      out = (size_t)i2d_ECDSA_SIG(es, &p);
    }
  }
  BN_free(r);
  BN_free(s);
  ECDSA_SIG_free(es);
  return out;
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

/* A verify context for k under alg, kept in k (see jwk.h). */
static EVP_PKEY_CTX *verify_ctx(sw_jwk_t *k, int alg) {
  if (k->vctx && k->vctx_alg == alg) return k->vctx;
  EVP_PKEY_CTX_free(k->vctx);
  k->vctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
  bool pss = alg == SW_JWS_PS256 || alg == SW_JWS_PS384 || alg == SW_JWS_PS512;
  bool ok = k->vctx && EVP_PKEY_verify_init(k->vctx) == 1 && EVP_PKEY_CTX_set_signature_md(k->vctx, alg_md(alg)) == 1;
  if (ok && k->family == SW_JWK_RSA)
    ok = EVP_PKEY_CTX_set_rsa_padding(k->vctx, pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) == 1 &&
         (!pss || (EVP_PKEY_CTX_set_rsa_pss_saltlen(k->vctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
                   EVP_PKEY_CTX_set_rsa_mgf1_md(k->vctx, alg_md(alg)) == 1));
  if (!ok) {
    EVP_PKEY_CTX_free(k->vctx);
    k->vctx = NULL;
  }
  k->vctx_alg = alg;
  return k->vctx;
}

bool jws_sig_ok_jwk(int alg, sw_jwk_t *k, const uint8_t *data, size_t dlen, const uint8_t *sig, size_t slen) {
  sw_jwk_family_t fam = jws_alg_family(alg);
  if (!fam || fam == SW_JWK_ED25519 || fam != k->family) return jws_sig_ok(alg, k->pkey, data, dlen, sig, slen);
  uint8_t der[160];
  if (fam != SW_JWK_RSA) {
    slen = ecdsa_raw_to_der(alg, sig, slen, der, sizeof der);
    if (!slen) return false;
    sig = der;
  } else if (slen != (size_t)EVP_PKEY_get_size(k->pkey)) {
    return false;
  }
  uint8_t md[64];
  size_t mdlen;
  const EVP_MD *m = alg_md(alg);
  if (m == EVP_sha256()) SHA256(data, dlen, md), mdlen = 32;
  else if (m == EVP_sha384()) SHA384(data, dlen, md), mdlen = 48;
  else SHA512(data, dlen, md), mdlen = 64;
  EVP_PKEY_CTX *ctx = verify_ctx(k, alg);
  return ctx && EVP_PKEY_verify(ctx, sig, slen, md, mdlen) == 1;
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
  for (size_t i = 0; keys && i < keys->n; i++) {
    const sw_jwk_t *k = &keys->keys[i];
    if (j->kid && (!k->has_kid || strcmp(k->kid, j->kid) != 0)) continue;
    same_kid++;
    if (!jwk_fits(k, j->alg)) continue;
    fitting++;
    only = k;
    /* The keys' verify contexts are a memo (jwk.h), hence the cast. */
    if (j->kid && jws_sig_ok_jwk(j->alg, (sw_jwk_t *)k, data, j->signed_len, j->sig, j->sig_len)) return 0;
  }
  if (j->kid && !same_kid) {
    res->unknown_kid = true;
    return errors_set(err, 40144, "invalid JWT: no key with kid %.64s at this identity provider", j->kid), -1;
  }
  if (!fitting) return errors_set(err, 40144, "invalid JWT: no key of this identity provider fits %s", jws_alg_name(j->alg)), -1;
  if (!j->kid) {
    if (fitting > 1) return bad(err, "no kid, and the identity provider has several keys for this algorithm");
    if (jws_sig_ok_jwk(j->alg, (sw_jwk_t *)only, data, j->signed_len, j->sig, j->sig_len)) return 0;
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
