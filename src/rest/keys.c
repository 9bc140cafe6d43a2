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
#include "core/shared.h"
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

/* A token request held across the shared state's answers (core/shared.h):
 * the nonce claim of a signed TokenRequest, then the storage of a large
 * token. Owns its strings; the socket is referenced until it answers. */
typedef struct treq {
  sw_sock_t *s;
  sw_format_t fmt;
  bool keep_alive;
  sw_key_t *key; /* borrowed: apps and keys are never freed while the server runs */
  char app_id[128];
  sw_token_request_t tr;
  int64_t now, ttl;
  char *canonical;
  char *token; /* the sealed token, or its reference once stored */
  char *ref;
} treq_t;

static void treq_finish(treq_t *t, const sw_error_t *err) {
  if (!t->s->closing) {
    if (err && err->code) {
      rest_error(t->s, t->fmt, err, t->keep_alive);
    } else {
      json_t *td = json_pack("{s:s, s:s, s:I, s:I, s:s}", "token", t->ref ? t->ref : t->token, "keyName",
                             t->key->name, "issued", (json_int_t)t->now, "expires", (json_int_t)(t->now + t->ttl),
                             "capability", t->canonical);
      if (t->tr.client_id) json_object_set_new(td, "clientId", json_string(t->tr.client_id));
      rest_reply_value(t->s, 200, t->fmt, td, t->keep_alive, NULL);
      json_decref(td);
    }
  }
  sock_unref(t->s);
  if (t->token) OPENSSL_cleanse(t->token, strlen(t->token));
  free(t->token);
  free(t->ref);
  free(t->canonical);
  token_request_clear(&t->tr);
  free(t);
}

static void token_stored(void *ud, const sw_error_t *err) { treq_finish(ud, err); }

/* A sealed token too long to travel well (its capability is large) is kept
 * server-side (in a cluster, on every node); the client gets a short
 * reference to it (auth/token.h, "References"). The inline bound also stays
 * within auth.maxTokenLength, the longest credential a WebSocket URL may
 * carry here. */
static void reference_if_large(treq_t *t) {
  sw_server_t *srv = t->s->srv;
  size_t inline_max = SW_TOKEN_INLINE_MAX;
  size_t cfg_max = srv->cfg->auth.max_token_len;
  if (cfg_max && cfg_max < inline_max) inline_max = cfg_max;
  if (strlen(t->token) <= inline_max) {
    treq_finish(t, NULL);
    return;
  }
  sw_error_t err = {0};
  if (!(t->ref = token_ref_new())) {
    errors_set(&err, SW_E_INTERNAL, "token could not be issued");
    treq_finish(t, &err);
    return;
  }
  char id[SW_TOKEN_REF_ID_LEN + 1];
  token_ref_id(t->ref, SW_TOKEN_REF_LEN, id);
  shared_token_put(srv, t->app_id, id, t->token, t->now + t->ttl, t->now, token_stored, t);
}

/* Mints the token (TK2b/RSA9: the requested capability narrowed to the key's). */
static void mint(treq_t *t) {
  sw_server_t *srv = t->s->srv;
  sw_error_t err = {0};
  sw_cap_t *requested = NULL, *granted = NULL;
  if (t->tr.capability && *t->tr.capability) {
    requested = cap_parse(t->tr.capability, strlen(t->tr.capability), &err);
    if (requested) granted = cap_intersect(requested, t->key->cap, &err);
    if (!granted) goto fail;
  }
  t->canonical = cap_canonical(granted ? granted : t->key->cap);
  sw_token_info_t info = {.issued = t->now,
                          .expires = t->now + t->ttl,
                          .capability = t->canonical,
                          .client_id = t->tr.client_id,
                          .revocable = t->key->revocable};
  size_t kl = strlen(t->key->name);
  if (kl >= sizeof info.key_name) {
    errors_set(&err, SW_E_INVALID_CREDENTIAL, "key name too long for a token");
    goto fail;
  }
  memcpy(info.key_name, t->key->name, kl + 1);
  t->token = t->canonical ? token_mint(srv->token_secret, &info) : NULL;
  if (!t->token) {
    errors_set(&err, SW_E_INTERNAL, "token could not be issued");
    goto fail;
  }
  cap_free(requested);
  cap_free(granted);
  reference_if_large(t);
  return;
fail:
  cap_free(requested);
  cap_free(granted);
  treq_finish(t, &err);
}

static void nonce_claimed(void *ud, const sw_error_t *err) {
  treq_t *t = ud;
  if (err->code) treq_finish(t, err);
  else mint(t);
}

/* RSA8: a signed TokenRequest needs no credentials (the mac is the proof);
 * unsigned token params need Basic auth with the key itself. A signed
 * request's nonce is claimed through the shared state (in a cluster: once
 * across every node), so the answer may come later. */
static void request_token(sw_sock_t *s, const sw_http_req_t *req, sw_format_t fmt, const char *key_name) {
  sw_server_t *srv = s->srv;
  sw_error_t err = {0};
  sw_principal_t basic = {0};
  int64_t ts = 0;
  treq_t *t = calloc(1, sizeof *t);
  if (!t) {
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    rest_error(s, fmt, &err, req->keep_alive);
    return;
  }
  t->s = s;
  t->fmt = fmt;
  t->keep_alive = req->keep_alive;
  t->now = clock_now_ms();
  sock_ref(s);

  const char *dot = strchr(key_name, '.');
  t->key = lookup_key(srv, key_name);
  if (!t->key) {
    errors_set(&err, SW_E_NOT_FOUND, "key not found");
    goto fail;
  }
  snprintf(t->app_id, sizeof t->app_id, "%.*s", (int)(dot - key_name), key_name);
  sw_token_request_t *tr = &t->tr;
  if (token_request_parse((const uint8_t *)req->body.p, req->body.n, body_is_msgpack(req), tr, &err)) goto fail;
  if (tr->mac) {
    if (!tr->key_name || strcmp(tr->key_name, key_name) != 0) {
      errors_set(&err, SW_E_INVALID_CREDENTIALS, "token request keyName does not match the key in the path");
      goto fail;
    }
    if (token_request_check_mac(tr, t->key->secret, strlen(t->key->secret), &err) ||
        token_request_validate(tr, t->now, t->key->revocable, &t->ttl, &ts, &err))
      goto fail;
    shared_nonce_claim(srv, t->app_id, key_name, tr->nonce, ts, t->now, nonce_claimed, t);
    return;
  }
  if (rest_authenticate(s, req, &basic, &err)) goto fail;
  if (basic.kind != SW_CRED_KEY || basic.key != t->key) {
    errors_set(&err, SW_E_INVALID_CREDENTIALS, "an unsigned token request needs Basic auth with the key %s", key_name);
    goto fail;
  }
  principal_clear(&basic);
  if (token_request_validate(tr, t->now, t->key->revocable, &t->ttl, &ts, &err)) goto fail;
  mint(t);
  return;
fail:
  principal_clear(&basic);
  treq_finish(t, &err);
}

/* A revokeTokens answer waits for the rules to be shared (core/shared.h). */
typedef struct revoke_op {
  sw_sock_t *s;
  sw_format_t fmt;
  bool keep_alive;
  json_t *resp;
} revoke_op_t;

static void revoke_shared(void *ud, const sw_error_t *err) {
  revoke_op_t *op = ud;
  if (!op->s->closing) {
    if (err->code) {
      sw_error_t e = *err;
      if (e.code == SW_E_INTERNAL) errors_set(&e, SW_E_INTERNAL, "revocation could not be stored");
      rest_error(op->s, op->fmt, &e, op->keep_alive);
    } else {
      rest_reply_value(op->s, 201, op->fmt, op->resp, op->keep_alive, NULL);
    }
  }
  sock_unref(op->s);
  json_decref(op->resp);
  free(op);
}

/* RSA17: revokeTokens, with the issuing key's Basic credentials only. The
 * rules are in force on this node at once (its connections are checked
 * now); the answer waits until they are stored (and, in a cluster, every
 * node has been told). */
static void revoke_tokens(sw_sock_t *s, const sw_http_req_t *req, sw_format_t fmt, const char *key_name) {
  sw_server_t *srv = s->srv;
  sw_error_t err = {0};
  sw_principal_t p = {0};
  json_t *body = NULL, *results = NULL;
  sw_revocation_t added[MAX_REVOKE_TARGETS];
  size_t n_added = 0;
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
      /* Borrowed from the request's body, which lives until the end. */
      added[n_added++] = (sw_revocation_t){.key_name = (char *)key_name,
                                           .type = type,
                                           .value = (char *)value,
                                           .issued_before = issued_before,
                                           .applies_at = applies_at};
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
  server_enforce_revocations(srv, p.key, now, applies_at);
  revoke_op_t *op = calloc(1, sizeof *op);
  if (!op) {
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    goto fail;
  }
  *op = (revoke_op_t){.s = s, .fmt = fmt, .keep_alive = req->keep_alive};
  op->resp = json_pack("{s:I, s:I, s:O}", "successCount", (json_int_t)ok, "failureCount", (json_int_t)bad,
                       "results", results);
  sock_ref(s);
  if (ok) {
    const char *dot = strchr(key_name, '.');
    char app_id[128];
    snprintf(app_id, sizeof app_id, "%.*s", (int)(dot - key_name), key_name);
    shared_revoked(srv, app_id, added, n_added, revoke_shared, op);
  } else {
    sw_error_t none = {0};
    revoke_shared(op, &none);
  }
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
