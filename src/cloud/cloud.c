/* cloud.c: routing, authentication and replies of the Assistant Cloud API.
 *
 * /cloud/{appId}/v1/... is the baseUrl of the npm `assistant-cloud`
 * client. Every route but the anonymous and refresh token endpoints needs a
 * credential, and every credential yields one workspace:
 *  - an app key as the Bearer "API key" (the client's apiKey mode, from a
 *    backend) or Basic, with the Aui-Workspace-Id and Aui-User-Id headers;
 *  - any token principal_from_token accepts (Ably token, Ably JWT, and
 *    whatever it learns to accept): its workspace (an Ably JWT's
 *    x-switchboard-workspace claim), else its clientId.
 * Rows of other workspaces do not exist for the request (store.h). */
#include "cloud/cloud.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "cloud/cloud_int.h"
#include "core/app.h"
#include "core/conn.h"
#include "core/server.h"
#include "core/sock.h"
#include "net/url.h"
#include "rest/rest.h"
#include "util/buf.h"

/* ---------------------------------------------------------- replies */

void cloud_reply(cloud_req_t *c, int status, const json_t *v) {
  sw_buf_t body = {0}, h = {0};
  if (v) {
    char *text = json_dumps(v, JSON_COMPACT);
    if (text) buf_append_str(&body, text);
    free(text);
  }
  /* The client takes a token of ours from this header; a browser may read
   * it only when it is exposed. */
  if (c->exchanged) {
    buf_printf(&h, "Authorization: Bearer %s\r\nAccess-Control-Expose-Headers: Authorization\r\n", c->exchanged);
    buf_append_byte(&h, 0);
  }
  rest_reply(c->s, status, SW_FMT_JSON, v ? &body : NULL, c->keep_alive, h.len ? (const char *)h.data : NULL);
  buf_free(&body);
  buf_free(&h);
}

void cloud_error(cloud_req_t *c, const sw_error_t *e) { rest_error(c->s, SW_FMT_JSON, e, c->keep_alive); }

bool cloud_fail(cloud_req_t *c, int code, const char *fmt, ...) {
  sw_error_t e = {.code = code, .status = errors_status(code)};
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e.message, sizeof e.message, fmt, ap);
  va_end(ap);
  cloud_error(c, &e);
  return false;
}

json_t *cloud_body(cloud_req_t *c, bool allow_empty) {
  const sw_slice_t *b = &c->req->body;
  if (b->n == 0 && allow_empty) return json_object();
  json_error_t je;
  json_t *v = json_loadb(b->p, b->n, JSON_REJECT_DUPLICATES, &je);
  if (!json_is_object(v)) {
    json_decref(v);
    cloud_fail(c, SW_E_INVALID_BODY, "the body must be a JSON object");
    return NULL;
  }
  return v;
}

/* ---------------------------------------------------------- helpers */

void cloud_channel(const char *workspace, const char *thread, char *out, size_t cap) {
  snprintf(out, cap, "cloud:%s:%s", workspace, thread ? thread : "*");
}

bool cloud_workspace_valid(const char *ws, size_t n) {
  if (n == 0 || n > CLOUD_WORKSPACE_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)ws[i];
    if (ch <= 0x20 || ch >= 0x7f || ch == ':' || ch == '*') return false;
  }
  return true;
}

void cloud_iso_time(int64_t ms, char out[25]) {
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  /* Fields are in range after gmtime_r; the casts tell the compiler so. */
  snprintf(out, 25, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned)(tm.tm_year + 1900) % 10000u,
           (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u,
           (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u, (unsigned)(ms % 1000));
}

/* Reads n digits at *p into *v; false if they are not all digits. */
static bool digits(const char **p, int n, int *v) {
  *v = 0;
  for (int i = 0; i < n; i++, (*p)++) {
    if (!isdigit((unsigned char)**p)) return false;
    *v = *v * 10 + (**p - '0');
  }
  return true;
}

int cloud_parse_time(const json_t *v, int64_t *ms) {
  if (json_is_integer(v)) {
    *ms = json_integer_value(v);
    return *ms >= 0 ? 0 : -1;
  }
  const char *p = json_string_value(v);
  if (!p || strlen(p) > 40) return -1;
  int y, mo, d, h, mi, s, frac = 0;
  if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' || !digits(&p, 2, &d) ||
      (*p != 'T' && *p != 't' && *p != ' '))
    return -1;
  p++;
  if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' || !digits(&p, 2, &s)) return -1;
  if (*p == '.') {
    p++;
    int n = 0;
    for (; isdigit((unsigned char)*p); p++, n++)
      if (n < 3) frac = frac * 10 + (*p - '0');
    if (n == 0) return -1;
    for (; n < 3; n++) frac *= 10;
  }
  int off = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int sign = *p++ == '-' ? -1 : 1, oh, om;
    if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om)) return -1;
    off = sign * (oh * 60 + om);
  } else {
    return -1;
  }
  if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return -1;
  struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};
  time_t t = timegm(&tm);
  if (t == (time_t)-1) return -1;
  *ms = ((int64_t)t - off * 60) * 1000 + frac;
  return *ms >= 0 ? 0 : -1;
}

int cloud_new_id(const char *prefix, char *out) {
  char rnd[21];
  if (app_random_id(rnd, 20)) return -1;
  snprintf(out, SW_CLOUD_ID_MAX, "%s_%s", prefix, rnd);
  return 0;
}

/* ---------------------------------------------------- authentication */

/* Copies a header value into out (NUL-terminated); false when absent, empty,
 * too long or not printable ASCII. */
static bool header_text(const sw_http_req_t *req, const char *name, char *out, size_t cap) {
  const sw_slice_t *v = http_req_header(req, name);
  if (!v || v->n == 0 || v->n >= cap) return false;
  for (size_t i = 0; i < v->n; i++)
    if ((unsigned char)v->p[i] < 0x20 || (unsigned char)v->p[i] >= 0x7f) return false;
  memcpy(out, v->p, v->n);
  out[v->n] = '\0';
  return true;
}

/* The backend mode: an app key with Aui-Workspace-Id and Aui-User-Id. */
static bool key_workspace(cloud_req_t *c) {
  char user[CLOUD_USER_MAX + 1];
  if (!header_text(c->req, "Aui-Workspace-Id", c->workspace, sizeof c->workspace) ||
      !cloud_workspace_valid(c->workspace, strlen(c->workspace)))
    return cloud_fail(c, 40004,
                      "Aui-Workspace-Id must name the workspace: 1 to %d printable ASCII characters, not ':' or '*'",
                      CLOUD_WORKSPACE_MAX);
  if (!header_text(c->req, "Aui-User-Id", user, sizeof user) || strcmp(user, "*") == 0)
    return cloud_fail(c, 40004, "Aui-User-Id must name the user: 1 to %d printable ASCII characters",
                      CLOUD_USER_MAX);
  if (!(c->user = strdup(user))) return cloud_fail(c, SW_E_INTERNAL, "out of memory");
  return true;
}

/* A token's workspace: its own, else its clientId. */
static bool token_workspace(cloud_req_t *c) {
  const char *cid = c->p.client_id && strcmp(c->p.client_id, "*") != 0 ? c->p.client_id : NULL;
  const char *ws = c->p.workspace ? c->p.workspace : cid;
  if (!ws)
    return cloud_fail(c, 40161,
                      "the Assistant Cloud API needs an identified client: a token with a clientId or a workspace");
  if (!cloud_workspace_valid(ws, strlen(ws)))
    return cloud_fail(c, SW_E_INVALID_PARAM,
                      "the token's workspace must be 1 to %d printable ASCII characters, not ':' or '*'",
                      CLOUD_WORKSPACE_MAX);
  snprintf(c->workspace, sizeof c->workspace, "%s", ws);
  if (cid && !(c->user = strdup(cid))) return cloud_fail(c, SW_E_INTERNAL, "out of memory");
  return true;
}

/* "Bearer appId.keyId:secret": the client's apiKey mode sends the key as a
 * Bearer value. Tokens never hold a ':'. */
static bool bearer_is_key(const sw_slice_t *auth) {
  return auth && auth->n > 7 && strncasecmp(auth->p, "Bearer ", 7) == 0 && memchr(auth->p + 7, ':', auth->n - 7);
}

bool cloud_authenticate(cloud_req_t *c) {
  sw_server_t *srv = c->s->srv;
  sw_error_t err = {0};
  const sw_slice_t *auth = http_req_header(c->req, "Authorization");
  int rc;
  if (bearer_is_key(auth)) {
    char key[1024];
    size_t n = auth->n - 7;
    if (n >= sizeof key) return cloud_fail(c, SW_E_INVALID_CREDENTIAL, "malformed API key");
    memcpy(key, auth->p + 7, n);
    key[n] = '\0';
    rc = conn_basic_allowed(c->s, &err) ? principal_from_key(srv, key, n, &c->p, &err) : -1;
    OPENSSL_cleanse(key, sizeof key);
  } else {
    rc = rest_authenticate(c->s, c->req, &c->p, &err);
  }
  if (rc) {
    cloud_error(c, &err);
    return false;
  }
  c->authed = true;
  if (c->p.app != c->app) return cloud_fail(c, SW_E_INVALID_CREDENTIALS, "the credentials are for another app");
  return c->p.kind == SW_CRED_KEY ? key_workspace(c) : token_workspace(c);
}

bool cloud_require(cloud_req_t *c, const char *thread, int op) {
  char ch[CLOUD_WORKSPACE_MAX + SW_CLOUD_ID_MAX + 16];
  cloud_channel(c->workspace, thread, ch, sizeof ch);
  if (cap_allows(c->p.cap, ch, op)) return true;
  return cloud_fail(c, SW_E_CAPABILITY_DENIED, "%s denied; channel = %.200s",
                    op == SW_OP_PUBLISH ? "publish (writing threads and messages)" : "history (reading threads and messages)",
                    ch);
}

/* ----------------------------------------------------------- routing */

void cloud_handle(sw_sock_t *s, const sw_http_req_t *req) {
  cloud_req_t c = {.s = s, .req = req, .keep_alive = req->keep_alive};
  const char *p = req->path.p + 7, *end = req->path.p + req->path.n; /* after "/cloud/" */
  const char *slash = memchr(p, '/', (size_t)(end - p));
  char app_id[128];
  ssize_t n = slash ? url_decode(p, (size_t)(slash - p), app_id, sizeof app_id, false) : -1;
  if (n <= 0 || !(c.app = apps_find(&s->srv->apps, app_id))) {
    cloud_fail(&c, SW_E_NOT_FOUND, "no such app; the baseUrl is http(s)://HOST:PORT/cloud/{appId}");
    return;
  }
  sw_slice_t rest = {slash, (size_t)(end - slash)};
  if (rest.n < 4 || memcmp(rest.p, "/v1/", 4) != 0) {
    cloud_fail(&c, SW_E_NOT_FOUND, "no such resource");
    return;
  }
  c.route = (sw_slice_t){rest.p + 3, rest.n - 3};
  if (c.route.n >= 6 && memcmp(c.route.p, "/auth/", 6) == 0) {
    cloud_auth_route(&c);
  } else if (slice_eq(c.route, "/threads") || (c.route.n > 9 && memcmp(c.route.p, "/threads/", 9) == 0)) {
    if (cloud_authenticate(&c)) {
      cloud_exchange(&c);
      cloud_threads_route(&c);
    }
  } else {
    /* files, runs, scores, events, projects: not served (docs/compatibility.md). */
    cloud_fail(&c, SW_E_NOT_FOUND, "no such resource (this server serves threads, messages and auth tokens)");
  }
  if (c.authed) principal_clear(&c.p);
  free(c.user);
  if (c.exchanged) OPENSSL_cleanse(c.exchanged, strlen(c.exchanged));
  free(c.exchanged);
}
