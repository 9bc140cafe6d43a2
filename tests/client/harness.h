/* harness.h: runs the real switchboard binary for the client tests.
 *
 * Every test binary's main() is run_with_server(): it starts `switchboard
 * serve --listen 127.0.0.1:0 --memory --sandbox` (the binary's path is
 * argv[1], set by ctest), reads the port from its "listening on
 * http://127.0.0.1:PORT" line, runs the tests and stops it with SIGTERM,
 * expecting exit status 0. Each test makes its own app through the admin
 * API (tctx_init: POST /apps) and its clients with tctx_options + tconnect. */
#ifndef SW_TESTS_CLIENT_HARNESS_H
#define SW_TESTS_CLIENT_HARNESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "switchboard.h"

typedef struct test_server {
  pid_t pid;
  int port;
} test_server_t;

/* Starts the server binary; 0 or -1. */
int server_start(const char *bin, test_server_t *s);
/* The same with a JSON configuration (written to a temporary file). */
int server_start_config(const char *bin, const char *config_json, test_server_t *s);
/* SIGTERM and wait; returns the exit status (0 on a clean shutdown). */
int server_stop(test_server_t *s);

/* A blocking HTTP/1.1 request to 127.0.0.1:port. *body (malloc'd, NUL-
 * terminated) gets the response body. Returns the status or -1. */
int http_call(int port, const char *method, const char *path, const char *headers, const char *body, char **resp);

/* POST /apps with body (e.g. {"keys":[{}]}); returns the parsed answer
 * (json_decref it) or NULL. key_str(app, i) is keys[i].keyStr. */
json_t *create_app(int port, const char *body);
const char *key_str(const json_t *app, size_t i);

/* The server binary (argv[1]) and the server shared by a test binary. */
typedef struct test_env {
  const char *bin;
  test_server_t srv;
} test_env_t;

/* The server binary a test was given: argv[1] (ctest passes it), else
 * build/switchboard. */
#define TEST_SERVER_BIN(argc, argv) ((argc) > 1 ? (argv)[1] : "build/switchboard")

/* Extra set-up around the shared server, e.g. a proxy in front of it:
 * after_start runs once the server listens (non-zero: give up), before_stop
 * after the tests. Either may be NULL. */
typedef struct server_hooks {
  int (*after_start)(void *ud);
  void (*before_stop)(void *ud);
  void *ud;
} server_hooks_t;

/* What main() of a client test does: starts env's server (a fresh
 * --memory --sandbox one), runs the group (each test gets env, or what it
 * was given with cmocka_unit_test_prestate), stops the server. Returns the
 * exit status for main: failed tests, plus one if the server could not start
 * or did not shut down cleanly. hooks may be NULL. */
struct CMUnitTest;
int run_with_server_(const char *group, const struct CMUnitTest *tests, size_t n, test_env_t *env,
                     const server_hooks_t *hooks);
#define run_with_server(tests, env, hooks) \
  run_with_server_(#tests, tests, sizeof(tests) / sizeof((tests)[0]), env, hooks)

/* Runs loop until *flag is true or timeout_ms passes; returns *flag. A
 * ticker wakes the loop so that conditions set by any callback are seen. */
bool run_until(uv_loop_t *loop, const bool *flag, int timeout_ms);
/* Runs loop until cond(arg) or the timeout; returns cond(arg). */
bool run_until_fn(uv_loop_t *loop, bool (*cond)(void *), void *arg, int timeout_ms);
/* Runs loop for ms. */
void run_for(uv_loop_t *loop, int ms);

/* Default client options for the test server (JSON or msgpack). */
void test_options(sw_options_t *o, const test_server_t *s, uv_loop_t *loop, int format);

/* Logs the library's messages to stderr when SW_CLIENT_LOG is set. */
void test_log(int level, const char *msg, void *ud);

/* Records every connection state change of a client. */
typedef struct state_log {
  sw_conn_state_t states[256];
  sw_errinfo_t reasons[256];
  bool resumed[256];
  int n;
  bool connected, failed, closed;
  int connected_count, resumed_count, update_count;
  sw_errinfo_t last_reason;
} state_log_t;
void state_log_cb(sw_client_t *c, const sw_state_change_t *ch, void *ud);


/* ---- per-test context ---- */

typedef struct tctx {
  uv_loop_t loop;
  test_env_t *env;
  json_t *app;
  const char *key; /* keys[0].keyStr */
} tctx_t;

/* A loop and a new app (app_body NULL: {"keys":[{}]}). */
void tctx_init(tctx_t *t, test_env_t *env, const char *app_body);
/* Runs the loop until every handle is closed; asserts it closes cleanly. */
void tctx_done(tctx_t *t);

/* Default options (test_options) for t's server and loop, with t's key. */
void tctx_options(tctx_t *t, sw_options_t *o, int format);
/* Creates a client with o (on_state set to log) and connects it. */
sw_client_t *tclient(tctx_t *t, sw_options_t *o, state_log_t *log);
/* tclient, then asserts it is CONNECTED within 5 s. */
sw_client_t *tconnect(tctx_t *t, sw_options_t *o, state_log_t *log);
/* Closes c, waits for CLOSED, frees it. */
void tclose(tctx_t *t, sw_client_t *c, state_log_t *log);

/* Records received messages as JSON objects: id, name, data (string; binary
 * as base64), type ("string"|"binary"|"none"), encoding, clientId,
 * connectionId, timestamp, serial, extras (parsed). */
typedef struct recv_log {
  json_t *msgs; /* array */
} recv_log_t;
void recv_cb(sw_channel_t *ch, const sw_message_t *m, void *ud);
json_t *message_json(const sw_message_t *m);

/* Records publish results. */
typedef struct ack_log {
  int acked, nacked;
  sw_errinfo_t last_err;
  json_t *serials; /* array of the serials of every acked message, in callback order */
} ack_log_t;
void ack_cb(sw_channel_t *ch, const sw_errinfo_t *err, const char *const *serials, size_t n, void *ud);

/* Channel attach/detach completion. */
typedef struct done_log {
  bool done;
  sw_errinfo_t err;
} done_log_t;
void done_cb(sw_channel_t *ch, const sw_errinfo_t *err, void *ud);

/* Publishes "m000000", "m000001", ... on ch, batch per tick every
 * interval_ms, until total are published; acks in f->acks. */
typedef struct flow {
  sw_channel_t *ch;
  int total, sent, batch;
  ack_log_t acks;
  uv_timer_t timer;
  bool running;
} flow_t;
void flow_start(flow_t *f, uv_loop_t *loop, sw_channel_t *ch, int total, int interval_ms, int batch);
void flow_stop(flow_t *f);
/* Asserts r holds exactly m000000..m<total-1>, in order, once each. */
void assert_sequence(const recv_log_t *r, int total);

/* Runs loop until r holds at least n messages or timeout_ms passes. */
bool wait_received(uv_loop_t *loop, const recv_log_t *r, size_t n, int timeout_ms);
/* Runs loop until f has an answer (ACK or NACK) for total publishes and r
 * holds total messages, or timeout_ms passes. */
bool wait_flow_through(uv_loop_t *loop, const recv_log_t *r, const flow_t *f, int total, int timeout_ms);

/* Counts a channel's ATTACHED states, and those that were resumed
 * (sw_channel_on_state(ch, chan_log_cb, &log)). */
typedef struct chan_log {
  int attached, resumed;
} chan_log_t;
void chan_log_cb(sw_channel_t *ch, sw_channel_state_t prev, sw_channel_state_t cur, const sw_errinfo_t *reason,
                 bool resumed, void *ud);

#endif
