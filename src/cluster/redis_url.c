/* redis_url.c: see redis_url.h. */
#include "cluster/redis_url.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct {
  const char *p;
  size_t n;
} span_t;

static int fail(sw_redis_url_t *out, const char **why, const char *msg, int err) {
  memset(out, 0, sizeof *out);
  if (why) *why = msg;
  return err;
}

static bool has_prefix(span_t s, const char *pre) {
  size_t k = strlen(pre);
  return s.n >= k && strncasecmp(s.p, pre, k) == 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes s into out (cap bytes, NUL included). Only printable
 * ASCII may appear raw; a decoded NUL is refused. -1 on error. */
static int decode(span_t s, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < s.n; i++) {
    unsigned char c = (unsigned char)s.p[i];
    if (c < 0x21 || c > 0x7e) return -1;
    if (c == '%') {
      if (s.n - i < 3) return -1;
      int h = hexval(s.p[i + 1]), l = hexval(s.p[i + 2]);
      if (h < 0 || l < 0) return -1;
      c = (unsigned char)(h * 16 + l);
      if (c == 0) return -1;
      i += 2;
    }
    if (o + 1 >= cap) return -1;
    out[o++] = (char)c;
  }
  out[o] = '\0';
  return 0;
}

/* Digits only, at most max_digits of them, value <= max. -1 if not. */
static long number(span_t s, size_t max_digits, long max) {
  if (s.n == 0 || s.n > max_digits) return -1;
  long v = 0;
  for (size_t i = 0; i < s.n; i++) {
    if (s.p[i] < '0' || s.p[i] > '9') return -1;
    v = v * 10 + (s.p[i] - '0');
  }
  return v <= max ? v : -1;
}

/* "[user]:password" (each possibly empty, percent-encoded). */
static int parse_userinfo(span_t ui, sw_redis_url_t *u, const char **why) {
  const char *colon = memchr(ui.p, ':', ui.n);
  if (!colon) {
    *why = "credentials must be written user:password@ or :password@";
    return -1;
  }
  span_t user = {ui.p, (size_t)(colon - ui.p)};
  span_t pw = {colon + 1, ui.n - user.n - 1};
  if (decode(user, u->user, sizeof u->user) < 0) {
    *why = "user is malformed or too long";
    return -1;
  }
  if (decode(pw, u->password, sizeof u->password) < 0) {
    *why = "password is malformed or too long";
    return -1;
  }
  u->has_password = true;
  return 0;
}

static bool host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

static bool ip6_char(char c) {
  return hexval(c) >= 0 || c == ':' || c == '.';
}

/* host[:port] or [ip6][:port]. */
static int parse_hostport(span_t hp, sw_redis_url_t *u, const char **why) {
  span_t host, port = {NULL, 0};
  if (hp.n && hp.p[0] == '[') {
    const char *close = memchr(hp.p, ']', hp.n);
    if (!close) {
      *why = "unterminated [ in host";
      return -1;
    }
    host = (span_t){hp.p + 1, (size_t)(close - hp.p - 1)};
    for (size_t i = 0; i < host.n; i++)
      if (!ip6_char(host.p[i])) {
        *why = "invalid IPv6 literal";
        return -1;
      }
    size_t rest = hp.n - (size_t)(close + 1 - hp.p);
    if (rest) {
      if (close[1] != ':') {
        *why = "unexpected characters after ]";
        return -1;
      }
      port = (span_t){close + 2, rest - 1};
    } else {
      port.p = close + 1;
    }
  } else {
    const char *colon = memchr(hp.p, ':', hp.n);
    host = (span_t){hp.p, colon ? (size_t)(colon - hp.p) : hp.n};
    if (colon) port = (span_t){colon + 1, hp.n - host.n - 1};
    for (size_t i = 0; i < host.n; i++)
      if (!host_char(host.p[i])) {
        *why = "invalid character in host";
        return -1;
      }
  }
  if (host.n == 0 || host.n >= sizeof u->host) {
    *why = host.n ? "host too long" : "host missing";
    return -1;
  }
  memcpy(u->host, host.p, host.n);
  u->host[host.n] = '\0';
  u->port = 6379;
  if (port.p) {
    long v = number(port, 5, 65535);
    if (v < 1) {
      *why = "port must be 1 to 65535";
      return -1;
    }
    u->port = (int)v;
  }
  return 0;
}

static int parse_tcp(span_t s, sw_redis_url_t *u, const char **why) {
  for (size_t i = 0; i < s.n; i++)
    if (s.p[i] == '?' || s.p[i] == '#') {
      *why = "no query or fragment is accepted in a redis:// URL";
      return -1;
    }
  const char *slash = memchr(s.p, '/', s.n);
  span_t auth = {s.p, slash ? (size_t)(slash - s.p) : s.n};
  span_t hp = auth;
  /* The last '@': a raw '@' in a password still parses. */
  const char *at = NULL;
  for (size_t i = auth.n; i-- > 0;)
    if (auth.p[i] == '@') {
      at = auth.p + i;
      break;
    }
  if (at) {
    if (parse_userinfo((span_t){auth.p, (size_t)(at - auth.p)}, u, why) < 0) return -1;
    hp = (span_t){at + 1, auth.n - (size_t)(at + 1 - auth.p)};
  }
  if (parse_hostport(hp, u, why) < 0) return -1;
  if (slash) {
    span_t db = {slash + 1, s.n - auth.n - 1};
    if (db.n) {
      long v = number(db, 8, SW_REDIS_DB_MAX);
      if (v < 0) {
        *why = "database must be a number from 0 to 99999999";
        return -1;
      }
      u->db = (int)v;
    }
  }
  return 0;
}

static int parse_unix(span_t s, sw_redis_url_t *u, const char **why) {
  u->unix_socket = true;
  const char *slash = memchr(s.p, '/', s.n);
  if (!slash) {
    *why = "unix:// needs an absolute socket path (unix:///path)";
    return -1;
  }
  if (slash > s.p) {
    span_t ui = {s.p, (size_t)(slash - s.p)};
    if (ui.p[ui.n - 1] != '@') {
      *why = "unix:// needs an absolute socket path (unix:///path)";
      return -1;
    }
    ui.n--;
    if (memchr(ui.p, '@', ui.n)) {
      *why = "credentials must be percent-encoded";
      return -1;
    }
    if (parse_userinfo(ui, u, why) < 0) return -1;
  }
  span_t rest = {slash, s.n - (size_t)(slash - s.p)};
  const char *q = memchr(rest.p, '?', rest.n);
  span_t path = {rest.p, q ? (size_t)(q - rest.p) : rest.n};
  for (size_t i = 0; i < path.n; i++) {
    unsigned char c = (unsigned char)path.p[i];
    if (c < 0x21 || c > 0x7e || c == '#') {
      *why = "invalid character in socket path";
      return -1;
    }
  }
  if (path.n >= sizeof u->path) {
    *why = "socket path too long";
    return -1;
  }
  memcpy(u->path, path.p, path.n);
  u->path[path.n] = '\0';
  if (q) {
    span_t query = {q + 1, rest.n - path.n - 1};
    if (query.n < 3 || memcmp(query.p, "db=", 3) != 0) {
      *why = "the only query parameter of unix:// is db=N";
      return -1;
    }
    long v = number((span_t){query.p + 3, query.n - 3}, 8, SW_REDIS_DB_MAX);
    if (v < 0) {
      *why = "database must be a number from 0 to 99999999";
      return -1;
    }
    u->db = (int)v;
  }
  return 0;
}

int redis_url_parse(const char *s, size_t n, sw_redis_url_t *out, const char **why) {
  const char *dummy;
  if (!why) why = &dummy;
  memset(out, 0, sizeof *out);
  if (!s) return fail(out, why, "no URL", -EINVAL);
  if (n > SW_REDIS_URL_MAX) return fail(out, why, "URL too long", -EINVAL);
  if (memchr(s, '\0', n)) return fail(out, why, "NUL in URL", -EINVAL);
  span_t u = {s, n};
  int r;
  if (has_prefix(u, "redis://")) {
    r = parse_tcp((span_t){s + 8, n - 8}, out, why);
  } else if (has_prefix(u, "unix://")) {
    r = parse_unix((span_t){s + 7, n - 7}, out, why);
  } else if (has_prefix(u, "rediss://")) {
    return fail(out, why, "rediss:// (TLS) is not supported: this build's hiredis has no TLS", -ENOTSUP);
  } else {
    return fail(out, why, "the URL must start with redis:// or unix://", -EINVAL);
  }
  if (r < 0) return fail(out, why, *why, -EINVAL);
  return 0;
}

static bool unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

typedef struct {
  char *p;
  size_t cap, len;
  bool over;
} out_t;

static void put(out_t *o, const char *s, size_t n) {
  if (o->over || n >= o->cap - o->len) {
    o->over = true;
    return;
  }
  memcpy(o->p + o->len, s, n);
  o->len += n;
  o->p[o->len] = '\0';
}

static void put_str(out_t *o, const char *s) {
  put(o, s, strlen(s));
}

static void put_encoded(out_t *o, const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (unreserved(c)) {
      put(o, (const char *)&c, 1);
    } else {
      char hex[4];
      snprintf(hex, sizeof hex, "%%%02X", c);
      put(o, hex, 3);
    }
  }
}

int redis_url_format(const sw_redis_url_t *u, bool redact, char *out, size_t cap) {
  if (!cap) return -1;
  out[0] = '\0';
  out_t o = {out, cap, 0, false};
  put_str(&o, u->unix_socket ? "unix://" : "redis://");
  if (u->has_password || u->user[0]) {
    put_encoded(&o, u->user);
    put_str(&o, ":");
    if (redact) put_str(&o, "***");
    else put_encoded(&o, u->password);
    put_str(&o, "@");
  }
  char num[24];
  if (u->unix_socket) {
    put_str(&o, u->path);
    if (u->db) {
      snprintf(num, sizeof num, "?db=%d", u->db);
      put_str(&o, num);
    }
  } else {
    bool ip6 = strchr(u->host, ':') != NULL;
    if (ip6) put_str(&o, "[");
    put_str(&o, u->host);
    if (ip6) put_str(&o, "]");
    snprintf(num, sizeof num, ":%d", u->port);
    put_str(&o, num);
    if (u->db) {
      snprintf(num, sizeof num, "/%d", u->db);
      put_str(&o, num);
    }
  }
  if (o.over) {
    out[0] = '\0';
    return -1;
  }
  return (int)o.len;
}
