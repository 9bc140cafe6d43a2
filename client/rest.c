/* rest.c: REST requests with the client's credentials: time (RSC16),
 * history with paging (RSL2), requestToken (RSA8), and the TokenRequest
 * exchange behind auth callbacks. A request that needs a token waits for
 * the auth attempt; a token error renews once and retries (RSA4b). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct sw_history_page {
  sw_client_t *c;
  sw_msg_t *msgs;
  size_t n;
  sw_message_t *views;
  char **extras;
  char *next_target; /* NULL: last page */
  char *base;        /* "/channels/<enc>/" */
};

swc_rest_t *swc_rest_new(sw_client_t *c, int kind, const char *method, const char *target, bool needs_auth) {
  swc_rest_t *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->c = c;
  r->kind = kind;
  r->needs_auth = needs_auth;
  r->method = strdup(method);
  r->target = strdup(target);
  if (!r->method || !r->target) {
    free(r->method);
    free(r->target);
    free(r);
    return NULL;
  }
  r->next = c->rest_ops;
  if (c->rest_ops) c->rest_ops->prev = r;
  c->rest_ops = r;
  return r;
}

void swc_rest_free(swc_rest_t *r) {
  sw_client_t *c = r->c;
  if (r->prev) r->prev->next = r->next;
  else c->rest_ops = r->next;
  if (r->next) r->next->prev = r->prev;
  swc_http_cancel(r->http);
  free(r->method);
  free(r->target);
  free(r->body);
  free(r->history_base);
  free(r);
}

void swc_rest_cancel_all(sw_client_t *c) {
  c->auth_exchange = NULL;
  while (c->rest_ops) swc_rest_free(c->rest_ops);
}

static sw_format_t resp_format(const swc_http_resp_t *resp) {
  return resp && resp->content_type && strstr(resp->content_type, "msgpack") ? SW_FMT_MSGPACK : SW_FMT_JSON;
}

void swc_rest_error(sw_client_t *c, int rc, const swc_http_resp_t *resp, sw_errinfo_t *err) {
  (void)c;
  if (rc == UV_ETIMEDOUT) {
    swc_set_error(err, SW_ERR_TIMEOUT, 504, "request timed out");
    return;
  }
  if (swc_tls_is_error(rc)) {
    char why[200];
    swc_set_error(err, SW_ERR_CONNECTION_FAILED, 500, "request failed: %s", swc_tls_strerror(rc, why, sizeof why));
    return;
  }
  if (rc < 0 || !resp) {
    swc_set_error(err, SW_ERR_CONNECTION_FAILED, 500, "request failed: %s", uv_strerror(rc));
    return;
  }
  /* RSC7: the body's ErrorInfo, else the X-Ably-ErrorCode header, else the status. */
  sw_error_t perr;
  json_t *v = resp->body.len ? codec_decode_value(resp_format(resp), resp->body.data, resp->body.len, &perr) : NULL;
  json_t *e = json_object_get(v, "error");
  json_t *code = json_object_get(e, "code"), *status = json_object_get(e, "statusCode");
  const char *msg = json_string_value(json_object_get(e, "message"));
  if (json_is_integer(code)) {
    swc_set_error(err, (int)json_integer_value(code), json_is_integer(status) ? (int)json_integer_value(status) : resp->status,
                  "%s", msg ? msg : "request failed");
  } else {
    int c2 = resp->ably_error_code ? resp->ably_error_code : resp->status * 100;
    swc_set_error(err, c2, resp->status, "HTTP %d", resp->status);
  }
  json_decref(v);
}

/* ---- completion ----
 * Each completion frees the request before calling user code: a callback
 * may free the client, which cancels (frees) every request still listed. */

static void fail(swc_rest_t *r, const sw_errinfo_t *err) {
  sw_client_t *c = r->c;
  int kind = r->kind;
  void *cb = r->cb, *ud = r->ud;
  bool current_auth = kind == SWC_REST_AUTH_EXCHANGE && c->auth_exchange == r;
  if (current_auth) c->auth_exchange = NULL;
  swc_rest_free(r);
  if (c->freeing) return;
  switch (kind) {
  case SWC_REST_TIME:
    ((sw_time_cb)cb)(c, err, 0, ud);
    break;
  case SWC_REST_HISTORY:
    ((sw_history_cb)cb)(c, err, NULL, ud);
    break;
  case SWC_REST_TOKEN:
    ((sw_token_cb)cb)(c, err, NULL, ud);
    break;
  case SWC_REST_AUTH_EXCHANGE:
    if (current_auth) swc_auth_token_result(c, NULL, 0, 0, err);
    break;
  }
}

static void token_done(swc_rest_t *r, const swc_http_resp_t *resp) {
  sw_client_t *c = r->c;
  sw_error_t perr;
  sw_errinfo_t err;
  json_t *v = codec_decode_value(resp_format(resp), resp->body.data, resp->body.len, &perr);
  const char *token = json_string_value(json_object_get(v, "token"));
  if (!token) {
    json_decref(v);
    swc_set_error(&err, SW_ERR_AUTH_FAILED, 401, "requestToken answered without a token");
    fail(r, &err);
    return;
  }
  json_t *iss = json_object_get(v, "issued"), *exp = json_object_get(v, "expires");
  sw_token_details_t td = {
      .token = token,
      .issued = json_is_integer(iss) ? json_integer_value(iss) : 0,
      .expires = json_is_integer(exp) ? json_integer_value(exp) : 0,
      .capability = json_string_value(json_object_get(v, "capability")),
      .client_id = json_string_value(json_object_get(v, "clientId")),
  };
  int kind = r->kind;
  void *cb = r->cb, *ud = r->ud;
  bool current = kind == SWC_REST_AUTH_EXCHANGE && c->auth_exchange == r;
  if (current) c->auth_exchange = NULL;
  swc_rest_free(r);
  if (current) swc_auth_token_result(c, td.token, td.issued, td.expires, NULL);
  else if (kind == SWC_REST_TOKEN && !c->freeing) ((sw_token_cb)cb)(c, NULL, &td, ud);
  json_decref(v);
}

/* The target of Link's rel="next", resolved against base. */
static char *next_link(const char *link, const char *base) {
  if (!link) return NULL;
  for (const char *p = link; (p = strchr(p, '<'));) {
    const char *end = strchr(p, '>');
    if (!end) return NULL;
    const char *semi = end + 1;
    const char *stop = strchr(semi, '<');
    size_t span = stop ? (size_t)(stop - semi) : strlen(semi);
    char attrs[128];
    snprintf(attrs, sizeof attrs, "%.*s", (int)(span < sizeof attrs ? span : sizeof attrs - 1), semi);
    if (strstr(attrs, "rel=\"next\"") || strstr(attrs, "rel=next")) {
      const char *t = p + 1;
      size_t tl = (size_t)(end - t);
      if (tl >= 2 && t[0] == '.' && t[1] == '/') {
        t += 2;
        tl -= 2;
      }
      sw_buf_t b = {0};
      if (*t != '/') buf_append_str(&b, base);
      buf_append(&b, t, tl);
      if (buf_append_byte(&b, 0)) {
        buf_free(&b);
        return NULL;
      }
      return (char *)buf_steal(&b, NULL);
    }
    p = end;
  }
  return NULL;
}

static void history_done(swc_rest_t *r, const swc_http_resp_t *resp) {
  sw_client_t *c = r->c;
  sw_errinfo_t err;
  sw_error_t perr;
  sw_history_page_t *pg = calloc(1, sizeof *pg);
  if (!pg) {
    swc_set_error(&err, 50000, 500, "out of memory");
    fail(r, &err);
    return;
  }
  pg->c = c;
  if (resp->body.len && codec_decode_msgs(resp_format(resp), resp->body.data, resp->body.len, &pg->msgs, &pg->n, &perr)) {
    free(pg);
    swc_err_from(&err, &perr);
    fail(r, &err);
    return;
  }
  pg->views = calloc(pg->n ? pg->n : 1, sizeof *pg->views);
  pg->extras = calloc(pg->n ? pg->n : 1, sizeof *pg->extras);
  pg->base = swc_strdup(r->history_base);
  if (!pg->views || !pg->extras || !pg->base) {
    sw_history_page_free(pg);
    swc_set_error(&err, 50000, 500, "out of memory");
    fail(r, &err);
    return;
  }
  for (size_t i = 0; i < pg->n; i++) swc_message_view(&pg->msgs[i], NULL, i, &pg->views[i], &pg->extras[i], NULL, 0);
  pg->next_target = next_link(resp->link, pg->base);
  sw_history_cb cb = (sw_history_cb)r->cb;
  void *ud = r->ud;
  swc_rest_free(r);
  if (!c->freeing) cb(c, NULL, pg, ud);
  else sw_history_page_free(pg);
}

static void time_done(swc_rest_t *r, const swc_http_resp_t *resp) {
  sw_client_t *c = r->c;
  sw_error_t perr;
  json_t *v = codec_decode_value(resp_format(resp), resp->body.data, resp->body.len, &perr);
  json_t *t = json_array_get(v, 0);
  if (!json_is_integer(t)) {
    sw_errinfo_t err;
    swc_set_error(&err, 50000, 500, "unexpected /time answer");
    json_decref(v);
    fail(r, &err);
    return;
  }
  sw_time_cb cb = (sw_time_cb)r->cb;
  void *ud = r->ud;
  int64_t ms = json_integer_value(t);
  json_decref(v);
  swc_rest_free(r);
  if (!c->freeing) cb(c, NULL, ms, ud);
}

static int start_http(swc_rest_t *r);

static void on_http(void *ud, int rc, const swc_http_resp_t *resp) {
  swc_rest_t *r = ud;
  sw_client_t *c = r->c;
  r->http = NULL;
  if (rc == 0 && resp->status >= 200 && resp->status < 300) {
    switch (r->kind) {
    case SWC_REST_TIME: time_done(r, resp); return;
    case SWC_REST_HISTORY: history_done(r, resp); return;
    default: token_done(r, resp); return;
    }
  }
  sw_errinfo_t err;
  swc_rest_error(c, rc, resp, &err);
  if (r->needs_auth && c->token_mode && swc_is_token_error(&err) && !r->retried && swc_auth_renewable(c)) {
    /* RSA4b: renew once and retry. */
    r->retried = true;
    free(c->token);
    c->token = NULL;
    r->waiting_token = true;
    swc_auth_start(c, false);
    return;
  }
  fail(r, &err);
}


/* Starts the request; SW_ENOMEM when it could not (r untouched). */
static int start_http(swc_rest_t *r) {
  sw_client_t *c = r->c;
  sw_buf_t h = {0};
  int rc = buf_printf(&h, "Accept: %s\r\n", c->fmt == SW_FMT_MSGPACK ? "application/x-msgpack" : "application/json");
  if (r->body) rc |= buf_append_str(&h, "Content-Type: application/json\r\n");
  if (r->needs_auth) rc |= swc_auth_header(c, &h);
  rc |= buf_append_byte(&h, 0);
  swc_endpoint_t ep;
  swc_client_endpoint(c, &ep);
  if (!rc)
    r->http = swc_http_start(c->loop, &ep, r->method, r->target, (const char *)h.data, r->body,
                             r->body_len, c->t_http, on_http, r);
  buf_free(&h);
  return r->http ? SW_OK : SW_ENOMEM;
}

static void start_or_fail(swc_rest_t *r) {
  if (start_http(r)) {
    sw_errinfo_t err;
    swc_set_error(&err, 50000, 500, "out of memory");
    fail(r, &err);
  }
}

static void call_rest_fail(sw_client_t *c, swc_call_t *call) {
  swc_rest_t *r = call->ptr;
  (void)c;
  fail(r, &call->err);
}

int swc_rest_submit(swc_rest_t *r) {
  sw_client_t *c = r->c;
  if (r->needs_auth && c->token_mode && !swc_token_usable(c)) {
    if (!swc_auth_renewable(c)) {
      /* Reported on the next iteration, like any completion. */
      swc_call_t *call = swc_call_new(call_rest_fail);
      if (!call) {
        swc_rest_free(r);
        return SW_ENOMEM;
      }
      call->ptr = r;
      swc_set_error(&call->err, SW_ERR_NO_RENEWAL, 401, "the token has expired and there is no way to renew it");
      swc_defer(c, call);
      return SW_OK;
    }
    r->waiting_token = true;
    swc_auth_start(c, false); /* its callback is deferred: no completion runs here */
    return SW_OK;
  }
  if (start_http(r)) {
    swc_rest_free(r);
    return SW_ENOMEM;
  }
  return SW_OK;
}

void swc_rest_on_token(sw_client_t *c, const sw_errinfo_t *err) {
  /* Restart the scan after each step: callbacks may add or cancel requests. */
  bool again = true;
  while (again && !c->freeing) {
    again = false;
    for (swc_rest_t *r = c->rest_ops; r; r = r->next) {
      if (!r->waiting_token) continue;
      r->waiting_token = false;
      if (err) fail(r, err);
      else start_or_fail(r);
      again = true;
      break;
    }
  }
}

int swc_rest_exchange_token_request(sw_client_t *c, const char *key_name, const char *body) {
  sw_buf_t t = {0};
  int rc = buf_append_str(&t, "/keys/") | swc_url_encode(&t, key_name) | buf_append_str(&t, "/requestToken") |
           buf_append_byte(&t, 0);
  swc_rest_t *r = rc ? NULL : swc_rest_new(c, SWC_REST_AUTH_EXCHANGE, "POST", (const char *)t.data, false);
  buf_free(&t);
  if (!r) return SW_ENOMEM;
  r->body_len = strlen(body);
  if (!(r->body = (uint8_t *)strdup(body))) {
    swc_rest_free(r);
    return SW_ENOMEM;
  }
  if (start_http(r)) {
    swc_rest_free(r);
    return SW_ENOMEM;
  }
  c->auth_exchange = r;
  return SW_OK;
}

/* ---- public REST API ---- */

SW_API int sw_time(sw_client_t *c, sw_time_cb cb, void *ud) {
  if (!c || c->freeing || !cb) return SW_EINVAL;
  swc_rest_t *r = swc_rest_new(c, SWC_REST_TIME, "GET", "/time", false);
  if (!r) return SW_ENOMEM;
  r->cb = (void *)cb;
  r->ud = ud;
  return swc_rest_submit(r);
}

SW_API int sw_request_token(sw_client_t *c, const sw_token_params_t *params, sw_token_cb cb, void *ud) {
  if (!c || c->freeing || !cb || !c->key) return SW_EINVAL;
  char *tr = NULL;
  int rc = sw_token_request_create(c->key, params, &tr, NULL);
  if (rc) return rc;
  sw_buf_t t = {0};
  rc = buf_append_str(&t, "/keys/") | swc_url_encode(&t, c->key_name) | buf_append_str(&t, "/requestToken") |
       buf_append_byte(&t, 0);
  swc_rest_t *r = rc ? NULL : swc_rest_new(c, SWC_REST_TOKEN, "POST", (const char *)t.data, false);
  buf_free(&t);
  if (!r) {
    free(tr);
    return SW_ENOMEM;
  }
  r->body = (uint8_t *)tr;
  r->body_len = strlen(tr);
  r->cb = (void *)cb;
  r->ud = ud;
  return swc_rest_submit(r);
}

static int history_request(sw_client_t *c, const char *target, const char *base, sw_history_cb cb, void *ud) {
  swc_rest_t *r = swc_rest_new(c, SWC_REST_HISTORY, "GET", target, true);
  if (!r) return SW_ENOMEM;
  if (!(r->history_base = strdup(base))) {
    swc_rest_free(r);
    return SW_ENOMEM;
  }
  r->cb = (void *)cb;
  r->ud = ud;
  return swc_rest_submit(r);
}

SW_API int sw_channel_history(sw_channel_t *ch, const sw_history_params_t *p, sw_history_cb cb, void *ud) {
  if (!ch || ch->released || ch->c->freeing || !cb) return SW_EINVAL;
  sw_history_params_t d = {0};
  if (!p) p = &d;
  if (p->limit < 0 || p->limit > 1000 || p->start < 0 || p->end < 0 || (p->end && p->start > p->end)) return SW_EINVAL;
  if (p->until_attach && (ch->state != SW_CHANNEL_ATTACHED || !ch->attach_serial)) return SW_ESTATE;
  sw_buf_t base = {0}, t = {0};
  int rc = buf_append_str(&base, "/channels/") | swc_url_encode(&base, ch->name) | buf_append_str(&base, "/") |
           buf_append_byte(&base, 0);
  if (!rc) {
    rc = buf_printf(&t, "%smessages?direction=%s", (const char *)base.data, p->forwards ? "forwards" : "backwards");
    if (p->limit) rc |= buf_printf(&t, "&limit=%d", p->limit);
    if (p->start) rc |= buf_printf(&t, "&start=%lld", (long long)p->start);
    if (p->end) rc |= buf_printf(&t, "&end=%lld", (long long)p->end);
    if (p->until_attach) rc |= buf_append_str(&t, "&from_serial=") | swc_url_encode(&t, ch->attach_serial);
    rc |= buf_append_byte(&t, 0);
  }
  if (!rc) rc = history_request(ch->c, (const char *)t.data, (const char *)base.data, cb, ud);
  else rc = SW_ENOMEM;
  buf_free(&base);
  buf_free(&t);
  return rc;
}

SW_API size_t sw_history_page_count(const sw_history_page_t *pg) {
  return pg ? pg->n : 0;
}

SW_API const sw_message_t *sw_history_page_item(const sw_history_page_t *pg, size_t i) {
  return pg && i < pg->n ? &pg->views[i] : NULL;
}

SW_API bool sw_history_page_has_next(const sw_history_page_t *pg) {
  return pg && pg->next_target;
}

SW_API int sw_history_page_next(const sw_history_page_t *pg, sw_history_cb cb, void *ud) {
  if (!pg || !cb || pg->c->freeing) return SW_EINVAL;
  if (!pg->next_target) return SW_ESTATE;
  return history_request(pg->c, pg->next_target, pg->base, cb, ud);
}

SW_API void sw_history_page_free(sw_history_page_t *pg) {
  if (!pg) return;
  for (size_t i = 0; i < pg->n; i++) {
    msg_clear(&pg->msgs[i]);
    if (pg->extras) free(pg->extras[i]);
  }
  free(pg->msgs);
  free(pg->views);
  free(pg->extras);
  free(pg->next_target);
  free(pg->base);
  free(pg);
}
