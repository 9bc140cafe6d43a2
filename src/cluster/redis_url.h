/* redis_url.h: the address of the Redis a cluster node uses, from a URL.
 *
 *   redis://[[user][:password]@]host[:port][/db]     TCP (port 6379 by default)
 *   unix://[[user][:password]@]/path/to/socket[?db=N] a Unix domain socket
 *
 * host is a name, an IPv4 literal or a bracketed IPv6 literal ([::1]); user
 * and password may be percent-encoded (%40 for '@'); db is 0 to 99999999.
 * `rediss://` (TLS) is recognised and refused with -ENOTSUP: Debian 12's
 * hiredis (0.14) has no TLS (docs/cluster.md).
 *
 * Pure: no I/O, no allocation; the result lives in fixed buffers whose
 * sizes are the limits below. Fuzzed by fuzz/fuzz_redis_url.c. */
#ifndef SW_CLUSTER_REDIS_URL_H
#define SW_CLUSTER_REDIS_URL_H

#include <stdbool.h>
#include <stddef.h>

#define SW_REDIS_URL_MAX 2048      /* a longer URL is refused */
#define SW_REDIS_HOST_MAX 256      /* host, NUL included */
#define SW_REDIS_PATH_MAX 108      /* sun_path, NUL included */
#define SW_REDIS_USER_MAX 128      /* decoded, NUL included */
#define SW_REDIS_PASSWORD_MAX 512  /* decoded, NUL included */
#define SW_REDIS_DB_MAX 99999999

typedef struct sw_redis_url {
  bool unix_socket;
  char host[SW_REDIS_HOST_MAX];  /* TCP: without brackets; "" for a socket */
  int port;                      /* TCP: 1..65535; 0 for a socket */
  char path[SW_REDIS_PATH_MAX];  /* socket: absolute path; "" for TCP */
  char user[SW_REDIS_USER_MAX];  /* "" for none (AUTH password alone) */
  char password[SW_REDIS_PASSWORD_MAX]; /* "" for none (no AUTH) */
  bool has_password;             /* an empty password given ("redis://:@h") still AUTHs */
  int db;                        /* SELECT db after connecting when > 0 */
} sw_redis_url_t;

/* Parses s[0..n) (no NUL needed; a NUL inside is refused) into *out.
 * Returns 0, -EINVAL (malformed or over a limit: *why says what, a static
 * string) or -ENOTSUP (rediss://). *out is fully written either way (zeroed
 * on error). */
int redis_url_parse(const char *s, size_t n, sw_redis_url_t *out, const char **why);

/* Writes u back as a URL into out (cap bytes, NUL included): the password as
 * "***" when redact is true (for logs), else percent-encoded so that
 * redis_url_parse gives back u. Returns the length, or -1 if it does not fit
 * (out is then ""). */
int redis_url_format(const sw_redis_url_t *u, bool redact, char *out, size_t cap);

#endif
