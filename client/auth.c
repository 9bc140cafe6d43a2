/* auth.c: credentials and token renewal (RSA4, RSA8, RTC8, RTN22), and
 * minting of Ably JWTs and TokenRequests (the same code the server's tests
 * use: src/auth/jwt.c, src/auth/token_request.c).
 *
 * A renewal is one "auth attempt" at a time (c->auth_pending): the auth
 * callback, then, if it returned a TokenRequest, its exchange at
 * requestToken; or, with a key and use_token_auth, a TokenRequest signed
 * here and exchanged. The attempt ends in swc_auth_token_result(), which
 * opens the transport (CONNECTING), sends AUTH in-band (CONNECTED) and wakes
 * REST requests waiting for a token. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/b64url.h"
#include "auth/jwt.h"
#include "auth/token_request.h"
#include "internal.h"

/* A cached token this close to its expiry is renewed before use (RSA4b1). */
#define EXPIRY_MARGIN_MS 1000

int swc_parse_key(const char *key, char **name, char **secret) {
  const char *colon = strchr(key, ':');
  if (!colon || colon == key || !colon[1]) return -1;
  const char *dot = memchr(key, '.', (size_t)(colon - key));
  if (!dot || dot == key || dot + 1 == colon) return -1;
  *name = strndup(key, (size_t)(colon - key));
  *secret = strdup(colon + 1);
  if (!*name || !*secret) {
    free(*name);
    free(*secret);
    *name = *secret = NULL;
    return -1;
  }
  return 0;
}

void swc_token_times(const char *tok, int64_t *issued, int64_t *expires) {
  size_t n = strlen(tok);
  if (!jwt_looks_like(tok, n)) return;
  const char *a = strchr(tok, '.') + 1, *b = strchr(a, '.');
  size_t len = (size_t)(b - a);
  uint8_t *raw = malloc(b64url_decoded_len(len) + 1);
  if (!raw) return;
  long got = b64url_decode(a, len, raw, b64url_decoded_len(len) + 1);
  json_t *claims = got > 0 ? json_loadb((const char *)raw, (size_t)got, 0, NULL) : NULL;
  free(raw);
  json_t *exp = json_object_get(claims, "exp"), *iat = json_object_get(claims, "iat");
  if (json_is_number(exp)) *expires = (int64_t)(json_number_value(exp) * 1000);
  if (json_is_number(iat)) *issued = (int64_t)(json_number_value(iat) * 1000);
  json_decref(claims);
}

bool swc_auth_renewable(const sw_client_t *c) {
  return c->auth_cb || (c->key && c->token_mode);
}

bool swc_token_usable(const sw_client_t *c) {
  return c->token && *c->token && (!c->token_expires || c->token_expires > swc_now_ms() + EXPIRY_MARGIN_MS);
}

int swc_auth_header(sw_client_t *c, sw_buf_t *out) {
  /* Basic with the key, or Bearer with the base64 of the token (RSA11, RSA3). */
  const char *cred = c->token_mode ? c->token : c->key;
  if (!cred) return 0;
  int rc = buf_append_str(out, c->token_mode ? "Authorization: Bearer " : "Authorization: Basic ");
  size_t n = strlen(cred);
  size_t enc_len = 4 * ((n + 2) / 3) + 1;
  char *enc = malloc(enc_len);
  if (!enc) return -1;
  EVP_EncodeBlock((unsigned char *)enc, (const unsigned char *)cred, (int)n);
  rc |= buf_append_str(out, enc) | buf_append_str(out, "\r\n");
  OPENSSL_cleanse(enc, enc_len);
  free(enc);
  return rc;
}

/* ---- the auth attempt ---- */

static void on_auth_timer(uv_timer_t *t) {
  swc_auth_on_timer(t->data);
}

void swc_auth_cancel(sw_client_t *c) {
  if (c->auth_req) c->auth_req->c = NULL; /* the app still completes it; we ignore the result */
  c->auth_req = NULL;
  if (c->auth_exchange) {
    swc_rest_t *r = c->auth_exchange;
    c->auth_exchange = NULL;
    swc_http_cancel(r->http);
    r->http = NULL;
    swc_rest_free(r);
  }
  if (c->auth_pending) uv_timer_stop(&c->t_auth);
  c->auth_pending = false;
}

void swc_auth_schedule_renewal(sw_client_t *c) {
  uv_timer_stop(&c->t_auth);
  if (!c->token_expires || !swc_auth_renewable(c)) return;
  /* The server asks (AUTH) min(30 s, ttl/3) before expiry; renew on our own
   * half that margin before, in case a server never asks. */
  int64_t now = swc_now_ms();
  int64_t issued = c->token_issued && c->token_issued <= now ? c->token_issued : now;
  int64_t ttl = c->token_expires - issued;
  int64_t margin = ttl / 3 < 30000 ? ttl / 3 : 30000;
  int64_t at = c->token_expires - margin / 2 - now;
  uv_timer_start(&c->t_auth, on_auth_timer, (uint64_t)(at > 0 ? at : 0), 0);
}

void swc_auth_on_timer(sw_client_t *c) {
  if (c->auth_pending) {
    sw_errinfo_t e;
    swc_set_error(&e, SW_ERR_AUTH_CALLBACK, 401, "no token within %lld ms", (long long)c->t_request);
    swc_auth_cancel(c);
    swc_auth_token_result(c, NULL, 0, 0, &e);
    return;
  }
  if (c->state == SW_CONN_CONNECTED) swc_auth_start(c, true);
}

void swc_auth_token_result(sw_client_t *c, const char *token, int64_t issued, int64_t expires,
                           const sw_errinfo_t *err) {
  if (c->auth_req) c->auth_req->c = NULL;
  c->auth_req = NULL;
  c->auth_exchange = NULL;
  c->auth_pending = false;
  uv_timer_stop(&c->t_auth);
  if (err || !token) {
    sw_errinfo_t e;
    /* RSA4c1: 80019, with the cause in the message. */
    swc_set_error(&e, SW_ERR_AUTH_FAILED, 401, "authentication failed: %d %s", err ? err->code : 0,
                  err ? err->message : "no token");
    swc_log(c, SW_LOG_WARN, "%s", e.message);
    swc_rest_on_token(c, &e);
    if (c->freeing) return;
    if (c->state == SW_CONN_CONNECTING && !c->ws) swc_connection_failed_attempt(c, &e); /* RSA4c2 */
    else if (c->state == SW_CONN_CONNECTED) swc_emit_update(c, &e);                    /* RSA4c3 */
    return;
  }
  char *copy = strdup(token);
  if (!copy) {
    sw_errinfo_t e;
    swc_set_error(&e, 50000, 500, "out of memory");
    swc_auth_token_result(c, NULL, 0, 0, &e);
    return;
  }
  free(c->token);
  c->token = copy;
  c->token_issued = issued;
  c->token_expires = expires;
  if (!expires) swc_token_times(copy, &c->token_issued, &c->token_expires);
  swc_log(c, SW_LOG_DEBUG, "new token, expires in %lld ms",
          (long long)(c->token_expires ? c->token_expires - swc_now_ms() : -1));
  swc_auth_schedule_renewal(c);
  if (c->state == SW_CONN_CONNECTING && !c->ws) {
    swc_open_transport(c);
  } else if (c->state == SW_CONN_CONNECTED && c->ws_connected) {
    sw_pmsg_t m = {.action = SW_ACTION_AUTH, .auth_access_token = c->token}; /* RTC8a */
    swc_send_pmsg(c, &m);
  }
  if (c->freeing) return;
  swc_rest_on_token(c, NULL);
}

/* Runs the app's callback on a clean stack. */
static void call_auth_cb(sw_client_t *c, swc_call_t *call) {
  sw_auth_request_t *req = call->ptr;
  if (req->c != c || c->auth_req != req) return; /* superseded or timed out; the app still completes it */
  c->auth_cb(c, req, c->auth_ud);
}

/* TokenRequest JSON signed with the client's key for its clientId. */
static char *key_token_request(sw_client_t *c, sw_errinfo_t *err) {
  sw_token_params_t p = {.client_id = c->client_id_opt};
  char *out = NULL;
  if (sw_token_request_create(c->key, &p, &out, err)) return NULL;
  return out;
}

void swc_auth_start(sw_client_t *c, bool in_band) {
  (void)in_band;
  if (c->auth_pending || c->freeing) return;
  if (!swc_auth_renewable(c)) {
    swc_log(c, SW_LOG_WARN, "a new token is needed, but there is no auth callback or key");
    return;
  }
  c->auth_pending = true;
  c->auth_gen++;
  uv_timer_start(&c->t_auth, on_auth_timer, (uint64_t)c->t_request, 0);
  if (c->auth_cb) {
    sw_auth_request_t *req = calloc(1, sizeof *req);
    swc_call_t *call = swc_call_new(call_auth_cb);
    if (!req || !call || (c->client_id_opt && !(req->client_id = strdup(c->client_id_opt)))) {
      free(req);
      free(call);
      sw_errinfo_t e;
      swc_set_error(&e, 50000, 500, "out of memory");
      swc_auth_token_result(c, NULL, 0, 0, &e);
      return;
    }
    req->c = c;
    c->auth_req = req;
    call->ptr = req;
    swc_defer(c, call);
    return;
  }
  sw_errinfo_t e;
  char *tr = key_token_request(c, &e);
  if (!tr || swc_rest_exchange_token_request(c, c->key_name, tr)) {
    if (tr) swc_set_error(&e, 50000, 500, "out of memory");
    free(tr);
    swc_auth_token_result(c, NULL, 0, 0, &e);
    return;
  }
  free(tr);
}

/* The credential the app returned, processed on a clean stack. */
static void process_credential(sw_client_t *c, swc_call_t *call) {
  if (!c->auth_pending || c->auth_req || call->gen != c->auth_gen) return; /* timed out or superseded */
  if (call->has_err) {
    swc_auth_token_result(c, NULL, 0, 0, &call->err);
    return;
  }
  const char *cred = call->ptr;
  while (*cred == ' ' || *cred == '\t' || *cred == '\r' || *cred == '\n') cred++;
  sw_errinfo_t e;
  if (*cred == '{') {
    json_error_t je;
    json_t *o = json_loads(cred, JSON_REJECT_DUPLICATES, &je);
    const char *mac = json_string_value(json_object_get(o, "mac"));
    const char *key_name = json_string_value(json_object_get(o, "keyName"));
    const char *token = json_string_value(json_object_get(o, "token"));
    if (mac && key_name) {
      /* RSA8: exchange the TokenRequest, exactly as signed, for a token. */
      if (swc_rest_exchange_token_request(c, key_name, cred)) {
        swc_set_error(&e, 50000, 500, "out of memory");
        swc_auth_token_result(c, NULL, 0, 0, &e);
      }
    } else if (token && *token) {
      json_t *iss = json_object_get(o, "issued"), *exp = json_object_get(o, "expires");
      swc_auth_token_result(c, token, json_is_integer(iss) ? json_integer_value(iss) : 0,
                            json_is_integer(exp) ? json_integer_value(exp) : 0, NULL);
    } else {
      swc_set_error(&e, SW_ERR_AUTH_CALLBACK, 401,
                    "the auth callback returned JSON that is neither TokenDetails nor a TokenRequest");
      swc_auth_token_result(c, NULL, 0, 0, &e);
    }
    json_decref(o);
    return;
  }
  size_t n = strlen(cred);
  while (n && (cred[n - 1] == ' ' || cred[n - 1] == '\r' || cred[n - 1] == '\n' || cred[n - 1] == '\t')) n--;
  if (n == 0 || memchr(cred, ' ', n)) {
    swc_set_error(&e, SW_ERR_AUTH_CALLBACK, 401, "the auth callback returned an invalid token"); /* RSA4e */
    swc_auth_token_result(c, NULL, 0, 0, &e);
    return;
  }
  char *tok = strndup(cred, n);
  if (!tok) {
    swc_set_error(&e, 50000, 500, "out of memory");
    swc_auth_token_result(c, NULL, 0, 0, &e);
    return;
  }
  swc_auth_token_result(c, tok, 0, 0, NULL);
  free(tok);
}

static void drop_credential(swc_call_t *call) {
  if (call->ptr) OPENSSL_cleanse(call->ptr, strlen(call->ptr));
  free(call->ptr);
}

SW_API int sw_auth_complete(sw_auth_request_t *req, const char *credential, const sw_errinfo_t *err) {
  if (!req || (!credential && !err)) return SW_EINVAL;
  sw_client_t *c = req->c;
  int rc = SW_OK;
  if (c && c->auth_req == req) {
    c->auth_req = NULL;
    swc_call_t *call = swc_call_new(process_credential);
    if (call) {
      call->gen = c->auth_gen;
      call->drop = drop_credential;
      if (err) {
        call->err = *err;
        call->has_err = true;
      } else if (!(call->ptr = strdup(credential))) {
        free(call);
        call = NULL;
      }
    }
    if (call) {
      swc_defer(c, call);
    } else {
      sw_errinfo_t e;
      swc_set_error(&e, 50000, 500, "out of memory");
      swc_auth_token_result(c, NULL, 0, 0, &e);
      rc = SW_ENOMEM;
    }
  }
  free(req->client_id);
  free(req);
  return rc;
}

SW_API const char *sw_auth_request_client_id(const sw_auth_request_t *req) {
  return req ? req->client_id : NULL;
}

/* ---- minting ---- */

static int check_params(const char *key, const sw_token_params_t *p, char **name, char **secret, sw_errinfo_t *err) {
  if (!key || swc_parse_key(key, name, secret)) {
    swc_set_error(err, 40005, 400, "invalid key: expected appId.keyId:secret");
    return SW_EINVAL;
  }
  const char *why = NULL;
  if (p && p->ttl_ms < 0) why = "ttl must be positive";
  else if (p && p->capability) {
    json_t *cap = json_loads(p->capability, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(cap)) why = "capability must be a JSON object";
    json_decref(cap);
  } else if (p && p->client_id && !*p->client_id) {
    why = "clientId must not be empty";
  }
  if (why) {
    swc_set_error(err, strstr(why, "capability") ? 40000 : strstr(why, "clientId") ? 40012 : 40003, 400, "%s", why);
    OPENSSL_cleanse(*secret, strlen(*secret));
    free(*name);
    free(*secret);
    return SW_EINVAL;
  }
  return SW_OK;
}

SW_API int sw_jwt_create(const char *key, const sw_token_params_t *p, char **out, sw_errinfo_t *err) {
  if (!out) return SW_EINVAL;
  *out = NULL;
  char *name, *secret;
  int rc = check_params(key, p, &name, &secret, err);
  if (rc) return rc;
  int64_t now = p && p->timestamp_ms ? p->timestamp_ms : swc_now_ms();
  int64_t ttl = p && p->ttl_ms ? p->ttl_ms : 3600000;
  int64_t iat = now / 1000, exp = iat + (ttl + 999) / 1000;
  *out = jwt_sign_ably(name, (const uint8_t *)secret, strlen(secret), iat, exp, p ? p->capability : NULL,
                       p ? p->client_id : NULL, p ? p->revocation_key : NULL);
  OPENSSL_cleanse(secret, strlen(secret));
  free(name);
  free(secret);
  if (!*out) {
    swc_set_error(err, 50000, 500, "out of memory");
    return SW_ENOMEM;
  }
  return SW_OK;
}

SW_API int sw_token_request_create(const char *key, const sw_token_params_t *p, char **out, sw_errinfo_t *err) {
  if (!out) return SW_EINVAL;
  *out = NULL;
  char *name, *secret;
  int rc = check_params(key, p, &name, &secret, err);
  if (rc) return rc;
  int64_t ts = p && p->timestamp_ms ? p->timestamp_ms : swc_now_ms();
  int64_t ttl = p && p->ttl_ms ? p->ttl_ms : 3600000;
  /* RSA9c: a random nonce of 16+ characters; 24 alphanumerics here. */
  static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  uint8_t rnd[24];
  char nonce[25], ttl_s[24], ts_s[24];
  if (swc_random(rnd, sizeof rnd)) rc = SW_EIO;
  for (size_t i = 0; i < sizeof rnd; i++) nonce[i] = alnum[rnd[i] % 62];
  nonce[24] = 0;
  snprintf(ttl_s, sizeof ttl_s, "%lld", (long long)ttl);
  snprintf(ts_s, sizeof ts_s, "%lld", (long long)ts);
  sw_token_request_t tr = {.key_name = name, .ttl = ttl_s, .timestamp = ts_s, .nonce = nonce};
  char *cap = NULL;
  if (p && p->capability) {
    /* Compact, as JSON.stringify would send it; the mac covers this text. */
    json_t *o = json_loads(p->capability, 0, NULL);
    cap = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!cap) rc = SW_ENOMEM;
    tr.capability = cap;
  }
  if (p && p->client_id) tr.client_id = (char *)p->client_id;
  json_t *j = NULL;
  if (!rc && token_request_sign(&tr, secret, strlen(secret))) rc = SW_ENOMEM;
  if (!rc) {
    j = json_pack("{s:s, s:I, s:I, s:s, s:s}", "keyName", name, "ttl", (json_int_t)ttl, "timestamp", (json_int_t)ts,
                  "nonce", nonce, "mac", tr.mac);
    if (j && cap) json_object_set_new(j, "capability", json_string(cap));
    if (j && tr.client_id) json_object_set_new(j, "clientId", json_string(tr.client_id));
    *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (!*out) rc = SW_ENOMEM;
  }
  json_decref(j);
  free(tr.mac);
  free(cap);
  OPENSSL_cleanse(secret, strlen(secret));
  free(name);
  free(secret);
  if (rc) swc_set_error(err, 50000, 500, rc == SW_EIO ? "no random bytes" : "out of memory");
  return rc;
}
