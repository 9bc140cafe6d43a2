#include "auth/jwk.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/b64url.h"

static const char *const ALG_NAMES[SW_JWS_ALG_COUNT] = {
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512",
};

int jws_alg_from_name(const char *s, size_t n) {
  for (int a = 0; a < SW_JWS_ALG_COUNT; a++)
    if (strlen(ALG_NAMES[a]) == n && memcmp(ALG_NAMES[a], s, n) == 0) return a;
  return -1;
}

const char *jws_alg_name(int a) { return a >= 0 && a < SW_JWS_ALG_COUNT ? ALG_NAMES[a] : "?"; }

sw_jwk_family_t jws_alg_family(int a) {
  switch (a) {
  case SW_JWS_RS256: case SW_JWS_RS384: case SW_JWS_RS512:
  case SW_JWS_PS256: case SW_JWS_PS384: case SW_JWS_PS512: return SW_JWK_RSA;
  case SW_JWS_ES256: return SW_JWK_P256;
  case SW_JWS_ES384: return SW_JWK_P384;
  case SW_JWS_ES512: return SW_JWK_P521;
  case SW_JWS_EDDSA: return SW_JWK_ED25519;
  default: return 0;
  }
}

bool jwk_fits(const sw_jwk_t *k, int alg) {
  return jws_alg_family(alg) == k->family && (k->alg < 0 || k->alg == alg);
}

void jwk_clear(sw_jwk_t *k) {
  if (!k) return;
  EVP_PKEY_CTX_free(k->vctx);
  EVP_MD_CTX_free(k->mdctx);
  EVP_MD_free(k->md);
  EVP_PKEY_free(k->pkey);
  memset(k, 0, sizeof *k);
}

void jwks_free(sw_jwks_t *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n; i++) jwk_clear(&s->keys[i]);
  free(s->keys);
  free(s);
}

/* ---- members ---- */

static int skip(char *note, size_t noteN, const char *fmt, const char *arg) {
  snprintf(note, noteN, fmt, arg);
  return -1;
}

/* A base64url member of exactly want bytes (0: 1..max bytes) into out.
 * Returns its length, or -1. */
static long b64_member(const json_t *o, const char *name, uint8_t *out, size_t max, size_t want) {
  const json_t *v = json_object_get(o, name);
  if (!json_is_string(v)) return -1;
  size_t n = json_string_length(v);
  if (n == 0 || b64url_decoded_len(n) > max) return -1;
  long got = b64url_decode(json_string_value(v), n, out, max);
  if (got <= 0 || (want && (size_t)got != want)) return -1;
  return got;
}

/* "use" and "key_ops", if present, must allow verifying signatures. */
static bool usable_for_verify(const json_t *o) {
  const json_t *use = json_object_get(o, "use");
  if (use && !(json_is_string(use) && strcmp(json_string_value(use), "sig") == 0)) return false;
  const json_t *ops = json_object_get(o, "key_ops");
  if (!ops) return true;
  if (!json_is_array(ops)) return false;
  size_t i;
  const json_t *op;
  json_array_foreach(ops, i, op) if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0) return true;
  return false;
}

/* ---- key construction (EVP_PKEY_fromdata) ---- */

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld) {
  OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
  EVP_PKEY *pkey = NULL;
  if (ctx && EVP_PKEY_fromdata_init(ctx) == 1 && EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
    pkey = NULL;
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  return pkey;
}

static int rsa_key(const json_t *o, sw_jwk_t *k, char *note, size_t noteN) {
  uint8_t n[1024], e[8];
  long nlen = b64_member(o, "n", n, sizeof n, 0);
  long elen = b64_member(o, "e", e, sizeof e, 0);
  if (nlen < 0 || elen < 0) return skip(note, noteN, "%s", "RSA key without valid n and e");
  /* Leading zero bytes are not canonical but harmless; the size counts bits. */
  const uint8_t *np = n;
  while (nlen > 0 && *np == 0) np++, nlen--;
  const uint8_t *ep = e;
  while (elen > 0 && *ep == 0) ep++, elen--;
  int bits = nlen ? (int)(nlen - 1) * 8 + (32 - __builtin_clz(np[0])) : 0;
  if (bits < 2048 || bits > 8192) return skip(note, noteN, "%s", "RSA modulus must have 2048 to 8192 bits");
  if (elen == 0 || elen > 4 || !(ep[elen - 1] & 1) || (elen == 1 && ep[0] < 3))
    return skip(note, noteN, "%s", "RSA public exponent must be odd, at least 3 and at most 32 bits");
  BIGNUM *bn = BN_bin2bn(np, (int)nlen, NULL), *be = BN_bin2bn(ep, (int)elen, NULL);
  OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
  if (bn && be && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
    k->pkey = from_params("RSA", bld);
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn);
  BN_free(be);
  if (!k->pkey) return skip(note, noteN, "%s", "RSA key rejected by OpenSSL");
  k->family = SW_JWK_RSA;
  return 0;
}

static int ec_key(const json_t *o, sw_jwk_t *k, char *note, size_t noteN) {
  const char *crv = json_string_value(json_object_get(o, "crv"));
  const char *group;
  size_t clen;
  sw_jwk_family_t fam;
  if (crv && strcmp(crv, "P-256") == 0) group = "P-256", clen = 32, fam = SW_JWK_P256;
  else if (crv && strcmp(crv, "P-384") == 0) group = "P-384", clen = 48, fam = SW_JWK_P384;
  else if (crv && strcmp(crv, "P-521") == 0) group = "P-521", clen = 66, fam = SW_JWK_P521;
  else return skip(note, noteN, "%s", "EC key on an unsupported curve (P-256, P-384, P-521 only)");
  /* The uncompressed point: 0x04 || x || y, each coordinate exactly clen
   * bytes (RFC 7518 section 6.2.1.2). */
  uint8_t pt[1 + 2 * 66];
  pt[0] = 0x04;
  if (b64_member(o, "x", pt + 1, 66, clen) < 0 || b64_member(o, "y", pt + 1 + clen, 66, clen) < 0)
    return skip(note, noteN, "%s", "EC key without valid x and y of the curve's size");
  OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
  if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) &&
      OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * clen))
    k->pkey = from_params("EC", bld);
  OSSL_PARAM_BLD_free(bld);
  /* fromdata decodes the point; the public check makes sure it is on the
   * curve and not the point at infinity (invalid-curve attacks). */
  EVP_PKEY_CTX *ctx = k->pkey ? EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL) : NULL;
  bool ok = ctx && EVP_PKEY_public_check(ctx) == 1;
  EVP_PKEY_CTX_free(ctx);
  if (!ok) {
    EVP_PKEY_free(k->pkey);
    k->pkey = NULL;
    return skip(note, noteN, "%s", "EC key is not a valid point on its curve");
  }
  k->family = fam;
  return 0;
}

static int okp_key(const json_t *o, sw_jwk_t *k, char *note, size_t noteN) {
  const char *crv = json_string_value(json_object_get(o, "crv"));
  if (!crv || strcmp(crv, "Ed25519") != 0) return skip(note, noteN, "%s", "OKP key on a curve other than Ed25519");
  uint8_t x[32];
  if (b64_member(o, "x", x, sizeof x, sizeof x) < 0) return skip(note, noteN, "%s", "Ed25519 key without a 32-byte x");
  OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
  if (bld && OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, x, sizeof x))
    k->pkey = from_params("ED25519", bld);
  OSSL_PARAM_BLD_free(bld);
  if (!k->pkey) return skip(note, noteN, "%s", "Ed25519 key rejected by OpenSSL");
  k->family = SW_JWK_ED25519;
  return 0;
}

int jwk_from_json(const json_t *o, sw_jwk_t *k, char *note, size_t noteN) {
  memset(k, 0, sizeof *k);
  k->alg = -1;
  if (!json_is_object(o)) return skip(note, noteN, "%s", "a key that is not a JSON object");
  const json_t *kidv = json_object_get(o, "kid");
  if (kidv) {
    size_t kn = json_string_length(kidv);
    if (!json_is_string(kidv) || kn == 0 || kn >= sizeof k->kid || memchr(json_string_value(kidv), 0, kn))
      return skip(note, noteN, "%s", "kid must be a string of 1 to 255 bytes");
    memcpy(k->kid, json_string_value(kidv), kn + 1);
    k->has_kid = true;
  }
  static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};
  for (size_t i = 0; i < sizeof private_members / sizeof *private_members; i++)
    if (json_object_get(o, private_members[i]))
      return skip(note, noteN, "a key with the secret member \"%s\" (never publish private keys)", private_members[i]);
  if (!usable_for_verify(o)) return skip(note, noteN, "%s", "a key whose use/key_ops is not signature verification");
  const json_t *algv = json_object_get(o, "alg");
  if (algv) {
    k->alg = json_is_string(algv) ? jws_alg_from_name(json_string_value(algv), json_string_length(algv)) : -1;
    if (k->alg < 0 || !jws_alg_family(k->alg))
      return skip(note, noteN, "%s", "a key with an alg this server does not verify with");
  }
  const char *kty = json_string_value(json_object_get(o, "kty"));
  int rc;
  if (!kty) rc = skip(note, noteN, "%s", "a key without kty");
  else if (strcmp(kty, "RSA") == 0) rc = rsa_key(o, k, note, noteN);
  else if (strcmp(kty, "EC") == 0) rc = ec_key(o, k, note, noteN);
  else if (strcmp(kty, "OKP") == 0) rc = okp_key(o, k, note, noteN);
  else rc = skip(note, noteN, "a key of kty \"%.32s\" (RSA, EC and OKP only; oct never)", kty);
  if (rc == 0 && k->alg >= 0 && jws_alg_family(k->alg) != k->family) {
    rc = skip(note, noteN, "%s", "a key whose alg does not fit its kty or curve");
  }
  if (rc) jwk_clear(k);
  return rc;
}

sw_jwks_t *jwks_parse(const char *text, size_t n, size_t max_bytes, sw_error_t *err) {
  if (!max_bytes) max_bytes = SW_JWKS_DEFAULT_MAX_BYTES;
  if (n > max_bytes) {
    errors_set(err, SW_E_BAD_REQUEST, "JWK Set of %zu bytes is over the limit of %zu", n, max_bytes);
    return NULL;
  }
  json_error_t je;
  json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
  const json_t *keys = json_object_get(root, "keys");
  sw_jwks_t *s = NULL;
  if (!root || !json_is_object(root) || !json_is_array(keys)) {
    errors_set(err, SW_E_BAD_REQUEST, "not a JWK Set: %s",
               !root ? je.text : "expected an object with a \"keys\" array");
    goto done;
  }
  size_t count = json_array_size(keys);
  if (count > SW_JWKS_MAX_KEYS) {
    errors_set(err, SW_E_BAD_REQUEST, "JWK Set has %zu keys, more than %u", count, SW_JWKS_MAX_KEYS);
    goto done;
  }
  s = calloc(1, sizeof *s);
  if (!s || !(s->keys = calloc(count ? count : 1, sizeof *s->keys))) {
    errors_set(err, SW_E_INTERNAL, "out of memory");
    goto fail;
  }
  for (size_t i = 0; i < count; i++) {
    char note[128];
    if (jwk_from_json(json_array_get(keys, i), &s->keys[s->n], note, sizeof note) == 0) {
      s->n++;
    } else {
      if (!s->skipped) snprintf(s->skip_note, sizeof s->skip_note, "key %zu: %s", i, note);
      s->skipped++;
    }
  }
  if (s->n == 0) {
    errors_set(err, SW_E_BAD_REQUEST, "JWK Set has no usable signing key%s%s", s->skipped ? "; " : "", s->skip_note);
    goto fail;
  }
  goto done;
fail:
  jwks_free(s);
  s = NULL;
done:
  json_decref(root);
  return s;
}
