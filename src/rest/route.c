#include "rest/route.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/serial.h"
#include "core/sock.h"
#include "net/url.h"
#include "rest/rest.h"

void route_error(route_ctx_t *r, const sw_error_t *e) { rest_error(r->s, r->fmt, e, r->keep_alive); }

size_t route_page_budget(const route_ctx_t *r) { return sock_low_water(r->s); }

bool route_require(route_ctx_t *r, const char *channel, int op, const char *what) {
  sw_error_t err;
  if (!cap_allows(r->p.cap, channel, op)) {
    errors_set(&err, SW_E_CAPABILITY_DENIED, "%s denied; channel = %.200s", what, channel);
  } else if (app_namespace_transport_check(app_namespace_for(r->app, channel), r->s->secure, &err) == 0) {
    return true;
  }
  route_error(r, &err);
  return false;
}

/* A paging parameter's value into out: true when present. A value that is
 * malformed or longer than out (none of them is long) sets *bad: it is
 * refused, not ignored, so a too-long from_serial cannot silently drop
 * untilAttach, nor a too-long limit fall back to the default. */
static bool query_str(const sw_http_req_t *req, const char *name, char *out, size_t cap, bool *bad) {
  ssize_t n = url_query_get(req->query, name, out, cap);
  if (n == -2) *bad = true;
  return n >= 0;
}

/* A decimal integer parameter; out of range (strtoll's ERANGE) is bad. */
static int64_t query_int(const sw_http_req_t *req, const char *name, int64_t dflt, bool *bad) {
  char v[32];
  if (!query_str(req, name, v, sizeof v, bad)) return dflt;
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (end == v || *end || errno == ERANGE) *bad = true;
  return *bad ? dflt : x;
}

bool route_page(route_ctx_t *r, page_t *pg) {
  const sw_http_req_t *req = r->req;
  bool bad = false;
  char dir[16], cursor[32];
  memset(pg, 0, sizeof *pg);
  pg->limit = query_int(req, "limit", SW_PAGE_DEFAULT_LIMIT, &bad);
  pg->start = query_int(req, "start", 0, &bad);
  pg->end = query_int(req, "end", INT64_MAX, &bad);
  pg->cursor = -1;
  if (!query_str(req, "direction", dir, sizeof dir, &bad)) strcpy(dir, "backwards");
  pg->forwards = strcmp(dir, "forwards") == 0;
  if (!pg->forwards && strcmp(dir, "backwards") != 0) bad = true;
  if (query_str(req, "cursor", cursor, sizeof cursor, &bad) && serial_parse(cursor, strlen(cursor), &pg->cursor))
    bad = true;
  /* ably-js sends from_serial for untilAttach (RTL10b); accept the camel-case spelling too. */
  if (!query_str(req, "from_serial", pg->from, sizeof pg->from, &bad) &&
      !query_str(req, "fromSerial", pg->from, sizeof pg->from, &bad))
    pg->from[0] = '\0';
  /* limit: Ably's history returns at most 1000 items a page (RSL2b3). */
  if (bad || pg->limit < 1 || pg->limit > SW_PAGE_MAX_LIMIT || pg->start < 0 || pg->end < pg->start) {
    sw_error_t err;
    errors_set(&err, SW_E_INVALID_PARAM,
               "invalid paging parameters (limit 1..%d, start <= end, direction forwards|backwards)",
               SW_PAGE_MAX_LIMIT);
    route_error(r, &err);
    return false;
  }
  return true;
}

void route_reply_page(route_ctx_t *r, const char *resource, const page_t *pg, const sw_buf_t *body, bool more,
                      int64_t next_cursor, const char *extra_query) {
  sw_buf_t base = {0}, links = {0};
  buf_printf(&base, "limit=%lld&direction=%s", (long long)pg->limit, pg->forwards ? "forwards" : "backwards");
  if (pg->start) buf_printf(&base, "&start=%lld", (long long)pg->start);
  if (pg->end != INT64_MAX) buf_printf(&base, "&end=%lld", (long long)pg->end);
  if (pg->from[0]) buf_printf(&base, "&from_serial=%s", pg->from);
  if (extra_query) buf_append_str(&base, extra_query);
  buf_append_byte(&base, 0);
  buf_printf(&links, "Link: <./%s?%s>; rel=\"first\"", resource, (char *)base.data);
  if (more) {
    char c[SW_SERIAL_LEN + 1];
    serial_format(next_cursor, c);
    buf_printf(&links, ", <./%s?%s&cursor=%s>; rel=\"next\"", resource, (char *)base.data, c);
  }
  buf_append_str(&links, "\r\n");
  buf_append_byte(&links, 0);
  rest_reply(r->s, 200, r->fmt, body, r->keep_alive, (const char *)links.data);
  buf_free(&base);
  buf_free(&links);
}
