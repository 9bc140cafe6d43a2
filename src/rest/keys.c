#include "rest/keys.h"

#include <openssl/crypto.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "auth/token.h"
#include "auth/token_request.h"
#include "core/conn.h"
#include "core/principal.h"
#include "core/server.h"
#include "core/sock.h"
#include "net/http_parse.h"
#include "net/url.h"
#include "rest/rest.h"
#include "util/clock.h"

/* ably's revokeTokens takes at most 100 targets per request. */
#define MAX_REVOKE_TARGETS 100
/* allowReauthMargin delays a revocation by 30 s so clients can reauth. */
#define REAUTH_MARGIN_MS 30000

static bool body_is_msgpack(const sw_http_req_t *req) {
  const sw_slice_t *ct = http_req_header(req, "Content-Type");
  return ct && memmem(ct->p, ct->n, "msgpack", 7);
}

static sw_key_t *lookup_key(sw_server_t *srv, const char *key_name) {
  const char *dot = strchr(key_name, '.');
  if (!dot || dot - key_name >= 128) return NULL;
  char app_id[128];
  memcpy(app_id, key_name, (size_t)(dot - key_name));
  app_id[dot - key_name] = '\0';
  sw_app_t *app = apps_find(&srv->apps, app_id);
  return app ? app_find_key(app, key_name, strlen(key_name)) : NULL;
}

/* A sealed token too long to travel well (its capability is large) is kept
 * in the store; the client gets a short reference to it (auth/token.h,
 * "References"). On success *token is the reference (the sealed token is
 * freed), else err is set and *token untouched. The inline bound also stays
 * within auth.maxTokenLength, the longest credential a WebSocket URL may
 * carry here. */
static int reference_if_large(sw_server_t *srv, char **token, int64_t expires, int64_t now, sw_error_t *err) {
  size_t inline_max = SW_TOKEN_INLINE_MAX;
  size_t cfg_max = srv->cfg->auth.max_token_len;
  if (cfg_max && cfg_max < inline_max) inline_max = cfg_max;
  size_t len = strlen(*token);
  if (len <= inline_max) return 0;
  char *ref = token_ref_new();
  if (!ref) return errors_set(err, SW_E_INTERNAL, "token could not be issued");
  char id[SW_TOKEN_REF_ID_LEN + 1];
  token_ref_id(ref, SW_TOKEN_REF_LEN, id);
  int rc = srv->store ? store_expiring_put(srv->store, id, *token, expires, now, SW_TOKEN_STORED_MAX,
                                            SW_TOKEN_STORED_MAX_BYTES)
                      : -ESHUTDOWN;
  if (rc) {
    free(ref);
    /* 429 and a code outside 4014x: ably-js reports it instead of retrying a
     * renewal in a loop; a later request can succeed once tokens expire. */
    if (rc == -EDQUOT)
      return errors_set(err, SW_E_RATE_LIMIT,
                        "too many large tokens are live (a token over %d bytes is kept by the server); retry "
                        "later or request a smaller capability",
                        SW_TOKEN_INLINE_MAX);
    return errors_set(err, SW_E_INTERNAL, "token could not be stored");
  }
  OPENSSL_cleanse(*token, len);
  free(*token);
  *token = ref;
  return 0;
}

/* RSA8: a signed TokenRequest needs no credentials (the mac is the proof);
 * unsigned token params need Basic auth with the key itself. */
static void request_token(sw_sock_t *s, const sw_http_req_t *req, sw_format_t fmt, const char *key_name) {
  sw_server_t *srv = s->srv;
  sw_error_t err = {0};
  sw_token_request_t tr = {0};
  sw_principal_t basic = {0};
  sw_cap_t *requested = NULL, *granted = NULL;
  char *canonical = NULL, *token = NULL;
  int64_t now = clock_now_ms(), ttl = 0, ts = 0;

  sw_key_t *key = lookup_key(srv, key_name);
  if (!key) {
    errors_set(&err, SW_E_NOT_FOUND, "key not found");
    goto fail;
  }
  if (token_request_parse((const uint8_t *)req->body.p, req->body.n, body_is_msgpack(req), &tr, &err)) goto fail;
  if (tr.mac) {
    if (!tr.key_name || strcmp(tr.key_name, key_name) != 0) {
      errors_set(&err, SW_E_INVALID_CREDENTIALS, "token request keyName does not match the key in the path");
      goto fail;
    }
    if (token_request_check_mac(&tr, key->secret, strlen(key->secret), &err) ||
        token_request_validate(&tr, now, key->revocable, &ttl, &ts, &err) ||
        nonce_cache_check(srv->nonces, key_name, tr.nonce, ts, now, &err))
      goto fail;
  } else {
    if (rest_authenticate(s, req, &basic, &err)) goto fail;
    if (basic.kind != SW_CRED_KEY || basic.key != key) {
      errors_set(&err, SW_E_INVALID_CREDENTIALS, "an unsigned token request needs Basic auth with the key %s", key_name);
      goto fail;
    }
    if (token_request_validate(&tr, now, key->revocable, &ttl, &ts, &err)) goto fail;
  }
  /* TK2b/RSA9: the token gets the requested capability narrowed to the key's. */
  if (tr.capability && *tr.capability) {
    requested = cap_parse(tr.capability, strlen(tr.capability), &err);
    if (!requested) goto fail;
    granted = cap_intersect(requested, key->cap, &err);
    if (!granted) goto fail;
  }
  canonical = cap_canonical(granted ? granted : key->cap);
  sw_token_info_t info = {.issued = now,
                          .expires = now + ttl,
                          .capability = canonical,
                          .client_id = tr.client_id,
                          .revocable = key->revocable};
  size_t kl = strlen(key_name);
  if (kl >= sizeof info.key_name) {
    errors_set(&err, SW_E_INVALID_CREDENTIAL, "key name too long for a token");
    goto fail;
  }
  memcpy(info.key_name, key_name, kl + 1);
  token = canonical ? token_mint(srv->token_secret, &info) : NULL;
  if (!token) {
    errors_set(&err, SW_E_INTERNAL, "token could not be issued");
    goto fail;
  }
  if (reference_if_large(srv, &token, info.expires, now, &err)) goto fail;
  json_t *td = json_pack("{s:s, s:s, s:I, s:I, s:s}", "token", token, "keyName", key_name, "issued", (json_int_t)now,
                         "expires", (json_int_t)(now + ttl), "capability", canonical);
  if (tr.client_id) json_object_set_new(td, "clientId", json_string(tr.client_id));
  rest_reply_value(s, 200, fmt, td, req->keep_alive, NULL);
  json_decref(td);
  goto done;
fail:
  rest_error(s, fmt, &err, req->keep_alive);
done:
  if (token) OPENSSL_cleanse(token, strlen(token));
  free(token);
  free(canonical);
  cap_free(requested);
  cap_free(granted);
  principal_clear(&basic);
  token_request_clear(&tr);
}

/* RSA17: revokeTokens, with the issuing key's Basic credentials only. */
static void revoke_tokens(sw_sock_t *s, const sw_http_req_t *req, sw_format_t fmt, const char *key_name) {
  sw_server_t *srv = s->srv;
  sw_error_t err = {0};
  sw_principal_t p = {0};
  json_t *body = NULL, *results = NULL;
  if (rest_authenticate(s, req, &p, &err)) goto fail;
  if (p.kind != SW_CRED_KEY) {
    errors_set(&err, 40162, "revoking tokens requires Basic authentication with the issuing key");
    goto fail;
  }
  if (strcmp(p.key->name, key_name) != 0) {
    errors_set(&err, 40133, "tokens can only be revoked with the key that issued them");
    goto fail;
  }
  if (!p.key->revocable) {
    errors_set(&err, 40163, "token revocation is not enabled for key %s (revocableTokens)", key_name);
    goto fail;
  }
  body = codec_decode_value(body_is_msgpack(req) ? SW_FMT_MSGPACK : SW_FMT_JSON, (const uint8_t *)req->body.p,
                            req->body.n, &err);
  if (!body) goto fail;
  json_t *targets = json_object_get(body, "targets");
  json_t *ib = json_object_get(body, "issuedBefore");
  int64_t now = clock_now_ms();
  if (!json_is_array(targets) || json_array_size(targets) == 0 || json_array_size(targets) > MAX_REVOKE_TARGETS ||
      (ib && !json_is_integer(ib))) {
    errors_set(&err, SW_E_INVALID_BODY, "targets must be an array of 1 to %d strings; issuedBefore a time in ms",
               MAX_REVOKE_TARGETS);
    goto fail;
  }
  int64_t issued_before = ib ? json_integer_value(ib) : now;
  if (issued_before > now) issued_before = now;
  int64_t applies_at = json_is_true(json_object_get(body, "allowReauthMargin")) ? now + REAUTH_MARGIN_MS : now;

  results = json_array();
  size_t ok = 0, bad = 0, i;
  size_t max = (size_t)srv->cfg->limits.max_revocations;
  json_t *t;
  json_array_foreach(targets, i, t) {
    const char *target = json_string_value(t), *value;
    sw_revoke_type_t type;
    int rc = target && revocation_parse_target(target, &type, &value) == 0
                 ? revocations_add(&srv->revocations, max, now, key_name, type, value, issued_before, applies_at)
                 : -EBADMSG;
    if (rc == 0) {
      json_array_append_new(results, json_pack("{s:s, s:I, s:I}", "target", target, "issuedBefore",
                                               (json_int_t)issued_before, "appliesAt", (json_int_t)applies_at));
      ok++;
      continue;
    }
    /* Each target fails alone. Rules are bounded (limits.maxRevocations,
     * kept for a day): when they are all in use the target gets 42910, the
     * rate limit code, as the caller may retry once older rules expire. */
    sw_error_t e;
    if (rc == -ENOSPC)
      errors_set(&e, SW_E_RATE_LIMIT, "too many revocations in force (maxRevocations %zu); retry later", max);
    else if (rc == -EINVAL)
      errors_set(&e, SW_E_INVALID_PARAM, "revocation target longer than %d bytes", SW_REVOCATION_VALUE_MAX);
    else if (rc == -ENOMEM)
      errors_set(&e, SW_E_INTERNAL, "out of memory");
    else
      errors_set(&e, SW_E_BAD_REQUEST, "invalid revocation target");
    json_array_append_new(results, json_pack("{s:s?, s:{s:i, s:i, s:s}}", "target", target, "error", "code", e.code,
                                             "statusCode", e.status, "message", e.message));
    bad++;
  }
  if (ok && server_persist_revocations(srv)) {
    errors_set(&err, SW_E_INTERNAL, "revocation could not be stored");
    goto fail;
  }
  /* Live connections on revoked tokens go now; with a margin they are asked
   * to reauthenticate first, and go when the margin ends (conn_tick). */
  sw_conn_t *c;
  SW_CONNS_EACH(&srv->conns, c) {
    if (!c->sock || c->auth.key != p.key) continue;
    sw_error_t rerr;
    if (principal_revoked(srv, &c->auth, now, &rerr)) {
      conn_fail(c, rerr.code, rerr.message, true);
    } else if (applies_at > now && principal_revoked(srv, &c->auth, applies_at, &rerr)) {
      sw_pmsg_t a = {.action = SW_ACTION_AUTH};
      conn_send_pmsg(c, &a);
    }
  }
  json_t *resp = json_pack("{s:I, s:I, s:O}", "successCount", (json_int_t)ok, "failureCount", (json_int_t)bad,
                           "results", results);
  rest_reply_value(s, 201, fmt, resp, req->keep_alive, NULL);
  json_decref(resp);
  goto done;
fail:
  rest_error(s, fmt, &err, req->keep_alive);
done:
  json_decref(results);
  json_decref(body);
  principal_clear(&p);
}

void keys_handle(sw_sock_t *s, const sw_http_req_t *req, sw_format_t fmt) {
  sw_error_t err = {0};
  const char *p = req->path.p + 6, *end = req->path.p + req->path.n;
  const char *slash = memchr(p, '/', (size_t)(end - p));
  char key_name[256];
  if (slash && req->method == HTTP_POST && url_decode(p, (size_t)(slash - p), key_name, sizeof key_name, false) > 0) {
    sw_slice_t op = {slash, (size_t)(end - slash)};
    if (slice_eq(op, "/requestToken")) {
      request_token(s, req, fmt, key_name);
      return;
    }
    if (slice_eq(op, "/revokeTokens")) {
      revoke_tokens(s, req, fmt, key_name);
      return;
    }
  }
  errors_set(&err, SW_E_NOT_FOUND, "no such resource");
  rest_error(s, fmt, &err, req->keep_alive);
}
