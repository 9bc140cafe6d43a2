/* fuzz_redis_url.c: libFuzzer target for redis_url_parse and
 * redis_url_format (src/cluster/redis_url.c).
 *
 * Invariants (abort() on violation):
 *   - the parse returns 0, -EINVAL or -ENOTSUP, and on error leaves *out
 *     zeroed and says why;
 *   - a parsed URL's strings are NUL-terminated within their buffers, a TCP
 *     URL has a host and a port in 1..65535, a socket URL an absolute path,
 *     and db is within 0..SW_REDIS_DB_MAX;
 *   - formatting a parsed URL (unredacted) and parsing that again gives
 *     back the same fields (the formatter percent-encodes what it must);
 *   - the redacted form never contains a non-empty password. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cluster/redis_url.h"

static bool terminated(const char *s, size_t cap) {
  return memchr(s, '\0', cap) != NULL;
}

static bool same(const sw_redis_url_t *a, const sw_redis_url_t *b) {
  return a->unix_socket == b->unix_socket && a->port == b->port && a->db == b->db &&
         a->has_password == b->has_password && strcmp(a->host, b->host) == 0 &&
         strcmp(a->path, b->path) == 0 && strcmp(a->user, b->user) == 0 &&
         strcmp(a->password, b->password) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sw_redis_url_t u, back;
  const char *why = NULL;
  int r = redis_url_parse((const char *)data, size, &u, &why);
  CHECK(r == 0 || r == -EINVAL || r == -ENOTSUP);
  if (r != 0) {
    sw_redis_url_t zero;
    memset(&zero, 0, sizeof zero);
    CHECK(memcmp(&u, &zero, sizeof u) == 0);
    CHECK(why && *why);
    return 0;
  }
  CHECK(terminated(u.host, sizeof u.host) && terminated(u.path, sizeof u.path));
  CHECK(terminated(u.user, sizeof u.user) && terminated(u.password, sizeof u.password));
  CHECK(u.db >= 0 && u.db <= SW_REDIS_DB_MAX);
  if (u.unix_socket) CHECK(u.path[0] == '/' && u.host[0] == '\0' && u.port == 0);
  else CHECK(u.host[0] && u.port >= 1 && u.port <= 65535 && u.path[0] == '\0');
  if (!u.has_password) CHECK(u.user[0] == '\0' && u.password[0] == '\0');

  /* Three bytes per encoded byte, plus the rest: 8 KiB always fits. */
  char *text = malloc(8192);
  CHECK(text);
  int n = redis_url_format(&u, false, text, 8192);
  CHECK(n > 0 && (size_t)n == strlen(text));
  CHECK(redis_url_parse(text, (size_t)n, &back, &why) == 0);
  CHECK(same(&u, &back));

  n = redis_url_format(&u, true, text, 8192);
  CHECK(n > 0);
  if (u.password[0]) CHECK(strstr(text, ":***@") != NULL);
  /* Too small a buffer: -1 and an empty string, never an overflow. */
  char tiny[8];
  int t = redis_url_format(&u, false, tiny, sizeof tiny);
  CHECK((t < 0 && tiny[0] == '\0') || (t >= 0 && (size_t)t < sizeof tiny));
  free(text);
  return 0;
}
