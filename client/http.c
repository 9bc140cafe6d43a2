/* http.c: one HTTP/1.1 request per connection (Connection: close), the
 * response parsed with http-parser. REST calls are rare next to realtime
 * traffic, so a connection pool would buy little. */
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct swc_http {
  swc_transport_t *t;
  uv_timer_t timer;
  uint8_t *request;
  size_t request_len;
  swc_http_cb cb;
  void *ud;
  bool done; /* cb ran or was cancelled */
  http_parser hp;
  http_parser_settings hs;
  sw_buf_t hfield, hvalue;
  bool in_value, complete;
  swc_http_resp_t resp;
};

static void http_free(uv_handle_t *h) {
  swc_http_t *r = h->data;
  free(r->request);
  buf_free(&r->hfield);
  buf_free(&r->hvalue);
  buf_free(&r->resp.body);
  free(r->resp.link);
  free(r->resp.content_type);
  free(r);
}

/* Calls back once, then lets go of the socket and the timer. */
static void finish(swc_http_t *r, int rc) {
  if (r->done) return;
  r->done = true;
  if (r->t) r->t->ops->close(r->t);
  r->t = NULL;
  uv_timer_stop(&r->timer);
  r->cb(r->ud, rc, rc == 0 ? &r->resp : NULL);
  uv_close((uv_handle_t *)&r->timer, http_free);
}

void swc_http_cancel(swc_http_t *r) {
  if (!r || r->done) return;
  r->done = true;
  if (r->t) r->t->ops->close(r->t);
  r->t = NULL;
  uv_timer_stop(&r->timer);
  uv_close((uv_handle_t *)&r->timer, http_free);
}

static void header_done(swc_http_t *r) {
  if (!r->hfield.len) return;
  buf_append_byte(&r->hfield, 0);
  buf_append_byte(&r->hvalue, 0);
  const char *k = (const char *)r->hfield.data, *v = r->hvalue.data ? (const char *)r->hvalue.data : "";
  if (strcasecmp(k, "Link") == 0) {
    /* Repeated Link headers are one comma-separated list (RFC 8288). */
    if (r->resp.link) {
      size_t a = strlen(r->resp.link), b = strlen(v);
      char *j = realloc(r->resp.link, a + b + 3);
      if (j) {
        memcpy(j + a, ", ", 2);
        memcpy(j + a + 2, v, b + 1);
        r->resp.link = j;
      }
    } else {
      r->resp.link = strdup(v);
    }
  } else if (strcasecmp(k, "Content-Type") == 0) {
    free(r->resp.content_type);
    r->resp.content_type = strdup(v);
  } else if (strcasecmp(k, "X-Ably-ErrorCode") == 0) {
    r->resp.ably_error_code = atoi(v);
  }
  buf_reset(&r->hfield);
  buf_reset(&r->hvalue);
}

static int on_hfield(http_parser *p, const char *at, size_t n) {
  swc_http_t *r = p->data;
  if (r->in_value) {
    header_done(r);
    r->in_value = false;
  }
  return buf_append(&r->hfield, at, n) ? -1 : 0;
}

static int on_hvalue(http_parser *p, const char *at, size_t n) {
  swc_http_t *r = p->data;
  r->in_value = true;
  return buf_append(&r->hvalue, at, n) ? -1 : 0;
}

static int on_headers_complete(http_parser *p) {
  swc_http_t *r = p->data;
  header_done(r);
  r->resp.status = (int)p->status_code;
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  swc_http_t *r = p->data;
  /* REST bodies are bounded by the server's limits; refuse silly ones. */
  if (r->resp.body.len + n > 64u * 1024 * 1024) return -1;
  return buf_append(&r->resp.body, at, n) ? -1 : 0;
}

static int on_message_complete(http_parser *p) {
  swc_http_t *r = p->data;
  r->complete = true;
  return 0;
}

static void t_on_connect(void *ud, int status) {
  swc_http_t *r = ud;
  if (status < 0) {
    finish(r, status);
    return;
  }
  uint8_t *req = r->request;
  r->request = NULL;
  int rc = r->t->ops->write(r->t, req, 0, r->request_len);
  if (rc) finish(r, rc);
}

static void t_on_data(void *ud, const uint8_t *p, size_t n) {
  swc_http_t *r = ud;
  size_t used = http_parser_execute(&r->hp, &r->hs, (const char *)p, n);
  if (r->complete) finish(r, 0);
  else if (used != n || HTTP_PARSER_ERRNO(&r->hp) != HPE_OK) finish(r, UV_EPROTO);
}

static void t_on_close(void *ud, int status) {
  swc_http_t *r = ud;
  /* EOF ends a body without Content-Length. */
  if (status == 0 && !r->complete) http_parser_execute(&r->hp, &r->hs, NULL, 0);
  finish(r, r->complete ? 0 : status < 0 ? status : UV_EPROTO);
}

static const swc_transport_cbs_t t_cbs = {.on_connect = t_on_connect, .on_data = t_on_data, .on_close = t_on_close};

static void on_timeout(uv_timer_t *t) {
  finish(t->data, UV_ETIMEDOUT);
}

swc_http_t *swc_http_start(uv_loop_t *loop, const swc_endpoint_t *ep, const char *method, const char *target,
                           const char *headers, const uint8_t *body, size_t body_len, int64_t timeout_ms,
                           swc_http_cb cb, void *ud) {
  swc_http_t *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->cb = cb;
  r->ud = ud;
  sw_buf_t b = {0};
  int rc = buf_printf(&b,
                      "%s %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: libswitchboard/%s\r\nX-Ably-Version: %d\r\n"
                      "%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
                      method, target, ep->host, ep->port, SW_CLIENT_VERSION, SW_PROTOCOL_VERSION, headers ? headers : "",
                      body_len);
  if (!rc && body_len) rc = buf_append(&b, body, body_len);
  if (rc) {
    buf_free(&b);
    free(r);
    return NULL;
  }
  r->request = buf_steal(&b, &r->request_len);
  http_parser_init(&r->hp, HTTP_RESPONSE);
  r->hp.data = r;
  http_parser_settings_init(&r->hs);
  r->hs.on_header_field = on_hfield;
  r->hs.on_header_value = on_hvalue;
  r->hs.on_headers_complete = on_headers_complete;
  r->hs.on_body = on_body;
  r->hs.on_message_complete = on_message_complete;
  uv_timer_init(loop, &r->timer);
  r->timer.data = r;
  r->t = swc_transport_open(loop, ep, &t_cbs, r);
  if (!r->t) {
    r->done = true;
    uv_close((uv_handle_t *)&r->timer, http_free);
    return NULL;
  }
  uv_timer_start(&r->timer, on_timeout, (uint64_t)(timeout_ms > 0 ? timeout_ms : 10000), 0);
  return r;
}
