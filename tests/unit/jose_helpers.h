/* jose_helpers.h: test-only helpers that make keys, JWKs and signed JWTs
 * with OpenSSL directly, independently of src/auth/jws.c (which only
 * verifies). Included by the unit tests of jwk/jws/identity. */
#ifndef SW_TEST_JOSE_HELPERS_H
#define SW_TEST_JOSE_HELPERS_H

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/b64url.h"
#include "auth/jwk.h"

/* A fresh key pair for alg (RSA 2048 for RS and PS). */
static inline EVP_PKEY *th_keygen(int alg) {
  switch (jws_alg_family(alg)) {
  case SW_JWK_RSA: return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  case SW_JWK_P256: return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  case SW_JWK_P384: return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
  case SW_JWK_P521: return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
  case SW_JWK_ED25519: return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  default: return NULL;
  }
}

static inline json_t *th_b64_json(const uint8_t *p, size_t n) {
  char *s = malloc(b64url_encoded_len(n) + 1);
  b64url_encode(p, n, s, b64url_encoded_len(n) + 1);
  json_t *v = json_string(s);
  free(s);
  return v;
}

static inline json_t *th_bn_json(EVP_PKEY *k, const char *name) {
  BIGNUM *bn = NULL;
  EVP_PKEY_get_bn_param(k, name, &bn);
  uint8_t buf[1024];
  int n = BN_bn2bin(bn, buf);
  BN_free(bn);
  return th_b64_json(buf, (size_t)n);
}

/* The public JWK of k, as the provider would publish it. */
static inline json_t *th_jwk(EVP_PKEY *k, int alg, const char *kid) {
  json_t *o = json_object();
  if (kid) json_object_set_new(o, "kid", json_string(kid));
  if (alg >= 0) json_object_set_new(o, "alg", json_string(jws_alg_name(alg)));
  json_object_set_new(o, "use", json_string("sig"));
  sw_jwk_family_t fam = jws_alg_family(alg);
  if (fam == SW_JWK_RSA) {
    json_object_set_new(o, "kty", json_string("RSA"));
    json_object_set_new(o, "n", th_bn_json(k, OSSL_PKEY_PARAM_RSA_N));
    json_object_set_new(o, "e", th_bn_json(k, OSSL_PKEY_PARAM_RSA_E));
  } else if (fam == SW_JWK_ED25519) {
    uint8_t pub[32];
    size_t n = sizeof pub;
    EVP_PKEY_get_raw_public_key(k, pub, &n);
    json_object_set_new(o, "kty", json_string("OKP"));
    json_object_set_new(o, "crv", json_string("Ed25519"));
    json_object_set_new(o, "x", th_b64_json(pub, n));
  } else {
    uint8_t pt[1 + 2 * 66];
    size_t n = 0;
    EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, sizeof pt, &n);
    size_t c = (n - 1) / 2;
    json_object_set_new(o, "kty", json_string("EC"));
    json_object_set_new(o, "crv", json_string(fam == SW_JWK_P256 ? "P-256" : fam == SW_JWK_P384 ? "P-384" : "P-521"));
    json_object_set_new(o, "x", th_b64_json(pt + 1, c));
    json_object_set_new(o, "y", th_b64_json(pt + 1 + c, c));
  }
  return o;
}

static inline const EVP_MD *th_md(int alg) {
  switch (alg) {
  case SW_JWS_RS256: case SW_JWS_PS256: case SW_JWS_ES256: case SW_JWS_HS256: return EVP_sha256();
  case SW_JWS_RS384: case SW_JWS_PS384: case SW_JWS_ES384: case SW_JWS_HS384: return EVP_sha384();
  case SW_JWS_EDDSA: return NULL;
  default: return EVP_sha512();
  }
}

/* Signs "b64(header).b64(claims)" with k under alg (for HS*, k is NULL and
 * secret is used) and returns the compact token (malloc'd). header and
 * claims are JSON texts, used verbatim. */
static inline char *th_sign_text(const char *header, const char *claims, int alg, EVP_PKEY *k, const uint8_t *secret,
                                 size_t secret_len) {
  size_t hl = strlen(header), cl = strlen(claims);
  size_t cap = b64url_encoded_len(hl) + b64url_encoded_len(cl) + 2048;
  char *tok = malloc(cap);
  long a = b64url_encode((const uint8_t *)header, hl, tok, cap);
  tok[a] = '.';
  long b = b64url_encode((const uint8_t *)claims, cl, tok + a + 1, cap - (size_t)a - 1);
  size_t signed_len = (size_t)(a + 1 + b);
  uint8_t sig[1024];
  size_t slen = sizeof sig;
  if (alg >= SW_JWS_HS256) {
    EVP_Q_mac(NULL, "HMAC", NULL, EVP_MD_get0_name(th_md(alg)), NULL, secret, secret_len, (uint8_t *)tok, signed_len,
              sig, sizeof sig, &slen);
  } else {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    EVP_DigestSignInit(md, &pctx, th_md(alg), NULL, k);
    if (alg >= SW_JWS_PS256 && alg <= SW_JWS_PS512) {
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
      EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    EVP_DigestSign(md, sig, &slen, (uint8_t *)tok, signed_len);
    EVP_MD_CTX_free(md);
    if (alg >= SW_JWS_ES256 && alg <= SW_JWS_ES512) {
      /* DER -> R||S */
      size_t half = alg == SW_JWS_ES256 ? 32 : alg == SW_JWS_ES384 ? 48 : 66;
      const uint8_t *p = sig;
      ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)slen);
      uint8_t raw[132] = {0};
      BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, (int)half);
      BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + half, (int)half);
      ECDSA_SIG_free(es);
      memcpy(sig, raw, 2 * half);
      slen = 2 * half;
    }
  }
  tok[signed_len] = '.';
  b64url_encode(sig, slen, tok + signed_len + 1, cap - signed_len - 1);
  return tok;
}

/* The same with JSON values; the header gets "alg" (unless it has one).
 * Takes over header (a new reference, typically json_pack's); borrows claims. */
static inline char *th_sign(json_t *header, json_t *claims, int alg, EVP_PKEY *k) {
  if (!json_object_get(header, "alg")) json_object_set_new(header, "alg", json_string(jws_alg_name(alg)));
  char *h = json_dumps(header, JSON_COMPACT), *c = json_dumps(claims, JSON_COMPACT);
  json_decref(header);
  char *t = th_sign_text(h, c, alg, k, NULL, 0);
  free(h);
  free(c);
  return t;
}

#endif
