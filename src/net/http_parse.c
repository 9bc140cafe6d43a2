/* http_parse.c: one-shot HTTP/1.1 request parsing on top of http-parser.
 *
 * http-parser is a streaming push parser; we run a fresh one on the stack per
 * call and turn its callbacks into slices of the caller's buffer. Two things
 * make the one-shot use work:
 *   - on_message_complete pauses the parser, so http_parser_execute() returns
 *     exactly the first request's length even when more (pipelined) bytes
 *     follow;
 *   - the input is fed in two steps, at most max_head bytes first, so an
 *     oversized head is detected after max_head bytes whatever len is. */
#include "net/http_parse.h"

#include <limits.h>
#include <string.h>

enum { LAST_NONE, LAST_FIELD, LAST_VALUE };

typedef struct parse_ctx {
  sw_http_req_t *req;
  size_t max_body;
  int last;       /* which kind of data callback ran last */
  bool head_done; /* on_headers_complete ran */
  bool msg_done;  /* on_message_complete ran (parser is paused) */
  int err;        /* SW_HTTP_* code when a callback aborted the parse */
} parse_ctx_t;

/* Appends [at, at+n) to s. http-parser only splits an element at the end of
 * an execute() chunk, and our chunks are adjacent, so a genuine continuation
 * is always contiguous; anything else is a folded header line. */
static int slice_extend(sw_slice_t *s, const char *at, size_t n) {
  if (!s->p) {
    s->p = at;
    s->n = n;
    return 0;
  }
  if (s->p + s->n != at) return -1;
  s->n += n;
  return 0;
}

static int abort_with(parse_ctx_t *c, int code) {
  c->err = code;
  return -1; /* any value but 0/1/2 is an error even in on_headers_complete */
}

static int on_url(http_parser *hp, const char *at, size_t n) {
  parse_ctx_t *c = hp->data;
  return slice_extend(&c->req->target, at, n) ? abort_with(c, SW_HTTP_MALFORMED) : 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t n) {
  parse_ctx_t *c = hp->data;
  sw_http_req_t *r = c->req;
  if (c->last == LAST_FIELD && r->n_headers > 0) {
    sw_slice_t *cur = &r->hname[r->n_headers - 1];
    if (cur->p + cur->n == at) { /* the same name, split across chunks */
      cur->n += n;
      return 0;
    }
    /* Otherwise the previous header had an empty value. */
  }
  if (r->n_headers == SW_HTTP_MAX_HEADERS) return abort_with(c, SW_HTTP_MALFORMED);
  r->hname[r->n_headers] = (sw_slice_t){at, n};
  r->hval[r->n_headers] = (sw_slice_t){NULL, 0};
  r->n_headers++;
  c->last = LAST_FIELD;
  return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t n) {
  parse_ctx_t *c = hp->data;
  sw_http_req_t *r = c->req;
  if (r->n_headers == 0) return abort_with(c, SW_HTTP_MALFORMED);
  /* A non-contiguous second piece is obs-fold; RFC 7230 §3.2.4 lets a server
   * reject it, and one slice could not represent it anyway. */
  if (slice_extend(&r->hval[r->n_headers - 1], at, n)) return abort_with(c, SW_HTTP_MALFORMED);
  c->last = LAST_VALUE;
  return 0;
}

static int on_headers_complete(http_parser *hp) {
  parse_ctx_t *c = hp->data;
  sw_http_req_t *r = c->req;
  c->head_done = true;
  r->method = (int)hp->method;
  r->http_major = hp->http_major;
  r->http_minor = hp->http_minor;
  r->keep_alive = http_should_keep_alive(hp) != 0;
  r->upgrade = (hp->flags & F_UPGRADE) && (hp->flags & F_CONNECTION_UPGRADE);
  if (hp->http_major != 1) return abort_with(c, SW_HTTP_MALFORMED);
  /* Refuse chunked bodies: we only buffer bodies whose size is known up front. */
  if (hp->flags & F_CHUNKED) return abort_with(c, SW_HTTP_LENGTH_REQUIRED);
  /* Decide on the size before any of the body is waited for. INT_MAX / 2
   * keeps head + body representable in our int return. */
  if ((hp->flags & F_CONTENTLENGTH) &&
      (hp->content_length > c->max_body || hp->content_length > INT_MAX / 2))
    return abort_with(c, SW_HTTP_BODY_TOO_LARGE);
  return 0;
}

static int on_body(http_parser *hp, const char *at, size_t n) {
  parse_ctx_t *c = hp->data;
  return slice_extend(&c->req->body, at, n) ? abort_with(c, SW_HTTP_MALFORMED) : 0;
}

static int on_message_complete(http_parser *hp) {
  parse_ctx_t *c = hp->data;
  c->msg_done = true;
  http_parser_pause(hp, 1); /* stop here: later bytes are not ours */
  return 0;
}

/* Maps a stopped parser to our return code (NEED_MORE if it just ran out). */
static int parse_status(const http_parser *hp, const parse_ctx_t *c) {
  enum http_errno e = HTTP_PARSER_ERRNO(hp);
  if (e == HPE_OK || e == HPE_PAUSED) return SW_HTTP_NEED_MORE;
  if (c->err) return c->err;
  if (e == HPE_HEADER_OVERFLOW) return SW_HTTP_HEAD_TOO_LARGE;
  return SW_HTTP_MALFORMED;
}

static bool is_ows(char ch) { return ch == ' ' || ch == '\t'; }

/* RFC 9110 §5.6.2 tchar. http-parser (non-strict build) lets a space into
 * header names, and "Content-Length : 5" would then slip past its length
 * handling, so names are re-checked here. */
static bool is_token(sw_slice_t s) {
  if (s.n == 0) return false;
  for (size_t i = 0; i < s.n; i++) {
    unsigned char c = (unsigned char)s.p[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
    if (!ok) return false;
  }
  return true;
}

/* Splits target into path and query (dropping any fragment). */
static void split_target(sw_http_req_t *r) {
  const char *t = r->target.p;
  size_t n = r->target.n;
  r->path = r->target;
  r->query = (sw_slice_t){t + n, 0};
  if (n > 0 && t[0] == '/') { /* origin-form, the usual case */
    size_t i = 0;
    while (i < n && t[i] != '?' && t[i] != '#') i++;
    r->path.n = i;
    if (i < n && t[i] == '?') {
      size_t q = ++i;
      while (i < n && t[i] != '#') i++;
      r->query = (sw_slice_t){t + q, i - q};
    }
    return;
  }
  /* absolute-form (proxies may send it); "*" and authority-form keep path =
   * target. http_parser_url offsets are 16-bit, hence the size check. */
  struct http_parser_url u;
  http_parser_url_init(&u);
  if (n == 0 || n > UINT16_MAX || http_parser_parse_url(t, n, 0, &u) != 0) return;
  if (u.field_set & (1u << UF_PATH))
    r->path = (sw_slice_t){t + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len};
  else
    r->path = (sw_slice_t){"/", 1};
  if (u.field_set & (1u << UF_QUERY))
    r->query = (sw_slice_t){t + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len};
}

/* Completes req once the head has been parsed; used is what the parser
 * consumed (the head plus whatever body bytes it saw). Cross-checks the
 * callbacks against the parser's count so a misunderstanding of http-parser
 * can never yield bad slices. Returns 0, SW_HTTP_MALFORMED or
 * SW_HTTP_HEAD_TOO_LARGE. */
static int finish_head(sw_http_req_t *req, const char *p, size_t used, size_t max_head) {
  if (used < req->body.n) return SW_HTTP_MALFORMED;
  req->head_len = used - req->body.n;
  if (req->body.n > 0 && req->body.p != p + req->head_len) return SW_HTTP_MALFORMED;
  if (req->body.n == 0) req->body = (sw_slice_t){p + req->head_len, 0};
  if (req->head_len > max_head) return SW_HTTP_HEAD_TOO_LARGE;
  for (size_t i = 0; i < req->n_headers; i++) {
    if (!is_token(req->hname[i])) return SW_HTTP_MALFORMED;
    sw_slice_t *v = &req->hval[i];
    if (!v->p) *v = (sw_slice_t){req->hname[i].p + req->hname[i].n, 0};
    while (v->n > 0 && is_ows(v->p[v->n - 1])) v->n--; /* trailing OWS */
    while (v->n > 0 && is_ows(v->p[0])) v->p++, v->n--;
  }
  /* A repeated singleton is ambiguous: a proxy in front may have read the
   * other copy. */
  if (http_req_header_count(req, "Host") > 1 || http_req_header_count(req, "Authorization") > 1)
    return SW_HTTP_MALFORMED;
  if (!req->target.p) return SW_HTTP_MALFORMED;
  split_target(req);
  return 0;
}

int http_req_parse(const uint8_t *buf, size_t len, const sw_http_limits_t *lim,
                   sw_http_req_t *req) {
  const sw_http_limits_t dflt = {SW_HTTP_DEFAULT_MAX_HEAD, SW_HTTP_DEFAULT_MAX_BODY};
  if (!lim) lim = &dflt;
  memset(req, 0, sizeof *req);
  if (len == 0) return SW_HTTP_NEED_MORE; /* execute() with 0 bytes means EOF */
  size_t max_head = lim->max_head < INT_MAX / 2 ? lim->max_head : INT_MAX / 2;

  parse_ctx_t c = {.req = req, .max_body = lim->max_body, .last = LAST_NONE};
  http_parser hp;
  http_parser_init(&hp, HTTP_REQUEST);
  hp.data = &c;
  http_parser_settings s;
  http_parser_settings_init(&s);
  s.on_url = on_url;
  s.on_header_field = on_header_field;
  s.on_header_value = on_header_value;
  s.on_headers_complete = on_headers_complete;
  s.on_body = on_body;
  s.on_message_complete = on_message_complete;

  const char *p = (const char *)buf;
  size_t first = len < max_head ? len : max_head;
  size_t used = 0;
  if (first > 0) used = http_parser_execute(&hp, &s, p, first);
  if (!c.msg_done) {
    int st = parse_status(&hp, &c);
    if (st != SW_HTTP_NEED_MORE) return st;
    if (!c.head_done) return len > max_head ? SW_HTTP_HEAD_TOO_LARGE : SW_HTTP_NEED_MORE;
    if (first < len) used += http_parser_execute(&hp, &s, p + first, len - first);
    if (!c.msg_done) {
      st = parse_status(&hp, &c);
      if (st != SW_HTTP_NEED_MORE) return st;
      /* Head complete, body outstanding: publish the head so the caller can
       * answer early (Expect: 100-continue, 401, 404...). */
      st = finish_head(req, p, used, max_head);
      return st < 0 ? st : SW_HTTP_NEED_MORE;
    }
  }
  int st = finish_head(req, p, used, max_head);
  return st < 0 ? st : (int)used;
}

const sw_slice_t *http_req_header(const sw_http_req_t *req, const char *name) {
  for (size_t i = 0; i < req->n_headers; i++)
    if (slice_ieq(req->hname[i], name)) return &req->hval[i];
  return NULL;
}

size_t http_req_header_count(const sw_http_req_t *req, const char *name) {
  size_t n = 0;
  for (size_t i = 0; i < req->n_headers; i++) n += slice_ieq(req->hname[i], name);
  return n;
}

bool slice_eq(sw_slice_t s, const char *lit) {
  size_t n = strlen(lit);
  return s.n == n && (n == 0 || memcmp(s.p, lit, n) == 0);
}

static char ascii_lower(char ch) { return (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch; }

bool slice_ieq(sw_slice_t s, const char *lit) {
  size_t n = strlen(lit);
  if (s.n != n) return false;
  for (size_t i = 0; i < n; i++)
    if (ascii_lower(s.p[i]) != ascii_lower(lit[i])) return false;
  return true;
}
