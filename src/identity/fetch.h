/* fetch.h: small HTTPS GETs on the libuv loop, for identity providers' JWK
 * Sets and discovery documents.
 *
 * libcurl's multi interface driven by the loop (uv_poll per socket, one
 * uv_timer for curl's timeouts), so a fetch never blocks the loop; names
 * are resolved by libcurl's threaded resolver. Every request has a total
 * timeout and a body limit (checked against Content-Length and again as
 * bytes arrive), follows no redirects, speaks only https (plus http to a
 * loopback host when the caller allows it), and verifies the peer with the
 * system's CA bundle or the given caFile. Loop thread only. */
#ifndef SW_IDENTITY_FETCH_H
#define SW_IDENTITY_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct sw_fetcher sw_fetcher_t;
typedef struct sw_fetch sw_fetch_t;

typedef struct sw_fetch_opts {
  int64_t timeout_ms;   /* whole request */
  size_t max_bytes;     /* body */
  const char *ca_file;  /* NULL: the system's bundle */
  bool allow_http;      /* http:// too (the caller checked the host is loopback) */
} sw_fetch_opts_t;

/* The outcome, valid only during the callback. ok: HTTP 200 with a body
 * within the limit; otherwise error says why (timeout, TLS, status...).
 * max_age_s: Cache-Control max-age of the response, -1 if none, 0 for
 * no-cache/no-store. */
typedef struct sw_fetch_result {
  bool ok;
  long status;
  const char *body;
  size_t len;
  int64_t max_age_s;
  const char *error;
} sw_fetch_result_t;

typedef void (*sw_fetch_cb)(void *ud, const sw_fetch_result_t *r);

/* A fetcher on loop; NULL on failure. */
sw_fetcher_t *fetcher_new(uv_loop_t *loop);
/* Starts GET url; cb runs later on the loop (never from inside this call),
 * exactly once unless the fetch is cancelled first. Returns the request, or
 * NULL when it could not start (cb does not run). */
sw_fetch_t *fetch_start(sw_fetcher_t *f, const char *url, const sw_fetch_opts_t *opts, sw_fetch_cb cb, void *ud);
/* Abandons a request whose callback has not run yet; cb never runs. */
void fetch_cancel(sw_fetch_t *r);
/* Cancels everything and closes the loop handles; the fetcher frees itself
 * once they are closed (run the loop). */
void fetcher_close(sw_fetcher_t *f);

#endif
