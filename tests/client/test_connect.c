/* test_connect.c: connecting with every kind of credential (key, token from
 * requestToken, JWT / TokenRequest / TokenDetails from the auth callback,
 * key with use_token_auth), error codes (40101, 40144, 40160, 93002, 40171,
 * 80019), and REST time, against the real server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

enum { AUTH_JWT, AUTH_TOKEN_REQUEST, AUTH_TOKEN_DETAILS, AUTH_ERROR, AUTH_GARBAGE };

typedef struct auth_ctx {
  const char *key;
  int mode;
  int calls;
  int64_t ttl_ms;
  const char *client_id;
  sw_client_t *rest; /* AUTH_TOKEN_DETAILS: a key client for requestToken */
  sw_auth_request_t *pending;
  int fail_first; /* fail this many calls first (AUTH_ERROR until then) */
} auth_ctx_t;

static void on_token_for_details(sw_client_t *c, const sw_errinfo_t *err, const sw_token_details_t *td, void *ud) {
  auth_ctx_t *a = ud;
  (void)c;
  if (err) {
    sw_auth_complete(a->pending, NULL, err);
  } else {
    /* Hand the TokenDetails over as JSON, as an app server would. */
    json_t *j = json_pack("{s:s, s:I, s:I}", "token", td->token, "issued", (json_int_t)td->issued, "expires",
                          (json_int_t)td->expires);
    char *s = json_dumps(j, JSON_COMPACT);
    sw_auth_complete(a->pending, s, NULL);
    free(s);
    json_decref(j);
  }
  a->pending = NULL;
}

static void auth_cb(sw_client_t *c, sw_auth_request_t *req, void *ud) {
  auth_ctx_t *a = ud;
  (void)c;
  a->calls++;
  sw_token_params_t p = {.ttl_ms = a->ttl_ms, .client_id = a->client_id};
  char *out = NULL;
  sw_errinfo_t err = {0};
  int mode = a->calls <= a->fail_first ? AUTH_ERROR : a->mode;
  switch (mode) {
  case AUTH_JWT:
    assert_int_equal(sw_jwt_create(a->key, &p, &out, &err), 0);
    break;
  case AUTH_TOKEN_REQUEST:
    assert_int_equal(sw_token_request_create(a->key, &p, &out, &err), 0);
    break;
  case AUTH_TOKEN_DETAILS:
    a->pending = req;
    assert_int_equal(sw_request_token(a->rest, &p, on_token_for_details, a), 0);
    return;
  case AUTH_GARBAGE:
    assert_int_equal(sw_auth_complete(req, "{\"neither\":1}", NULL), 0);
    return;
  default: {
    sw_errinfo_t e = {.code = 40300, .status_code = 403};
    snprintf(e.message, sizeof e.message, "app server says no");
    assert_int_equal(sw_auth_complete(req, NULL, &e), 0);
    return;
  }
  }
  assert_int_equal(sw_auth_complete(req, out, NULL), 0);
  free(out);
}

/* Attaches, publishes one message and receives it: the connection works. */
static void roundtrip(tctx_t *t, sw_client_t *c, const char *channel) {
  sw_channel_t *ch = sw_client_channel(c, channel);
  assert_non_null(ch);
  recv_log_t r = {0};
  ack_log_t a = {0};
  done_log_t d = {0};
  assert_true(sw_channel_subscribe(ch, NULL, recv_cb, &r) > 0);
  assert_int_equal(sw_channel_attach(ch, done_cb, &d), 0);
  assert_true(run_until(&t->loop, &d.done, 5000));
  assert_int_equal(d.err.code, 0);
  assert_int_equal(sw_channel_state(ch), SW_CHANNEL_ATTACHED);
  assert_int_equal(sw_channel_publish(ch, "n", "hello", ack_cb, &a), 0);
  bool got = false;
  for (int i = 0; i < 500 && !(got = r.msgs && json_array_size(r.msgs) == 1 && a.acked == 1); i++) run_for(&t->loop, 10);
  assert_true(got);
  assert_string_equal(json_string_value(json_object_get(json_array_get(r.msgs, 0), "data")), "hello");
  assert_string_equal(json_string_value(json_array_get(a.serials, 0)),
                      json_string_value(json_object_get(json_array_get(r.msgs, 0), "serial")));
  json_decref(r.msgs);
  json_decref(a.serials);
}

static void connect_with_key(void **state, int format) {
  tctx_t t;
  tctx_init(&t, *state, NULL);
  sw_options_t o;
  tctx_options(&t, &o, format);
  o.client_id = "keyed";
  state_log_t log = {0};
  sw_client_t *c = tconnect(&t, &o, &log);
  assert_non_null(sw_client_connection_id(c));
  assert_non_null(sw_client_connection_key(c));
  assert_string_equal(sw_client_client_id(c), "keyed");
  assert_null(sw_client_error_reason(c));
  assert_true(sw_client_fileno(c) >= 0);
  roundtrip(&t, c, "keyed");
  tclose(&t, c, &log);
  assert_true(log.closed);
  tctx_done(&t);
}

static void test_key_json(void **state) {
  connect_with_key(state, SW_FORMAT_JSON);
}

static void test_key_msgpack(void **state) {
  connect_with_key(state, SW_FORMAT_MSGPACK);
}

typedef struct token_wait {
  bool done;
  sw_errinfo_t err;
  char *token;
  char *client_id;
  int64_t expires;
} token_wait_t;

static void on_token(sw_client_t *c, const sw_errinfo_t *err, const sw_token_details_t *td, void *ud) {
  token_wait_t *w = ud;
  (void)c;
  w->done = true;
  if (err) {
    w->err = *err;
    return;
  }
  w->token = strdup(td->token);
  w->client_id = td->client_id ? strdup(td->client_id) : NULL;
  w->expires = td->expires;
}

static void test_token_from_request_token(void **state) {
  tctx_t t;
  tctx_init(&t, *state, NULL);
  sw_options_t o;
  tctx_options(&t, &o, SW_FORMAT_MSGPACK);
  sw_client_t *keyed = NULL;
  assert_int_equal(sw_client_new(&o, &keyed, NULL), 0);
  token_wait_t w = {0};
  sw_token_params_t p = {.client_id = "alice", .ttl_ms = 60000, .capability = "{\"tok:*\":[\"*\"]}"};
  assert_int_equal(sw_request_token(keyed, &p, on_token, &w), 0);
  assert_true(run_until(&t.loop, &w.done, 5000));
  assert_int_equal(w.err.code, 0);
  assert_non_null(w.token);
  assert_string_equal(w.client_id, "alice");
  assert_true(w.expires > 0);
  sw_client_free(keyed);

  test_options(&o, &t.env->srv, &t.loop, SW_FORMAT_JSON);
  o.token = w.token;
  state_log_t log = {0};
  sw_client_t *c = tconnect(&t, &o, &log);
  assert_string_equal(sw_client_client_id(c), "alice");
  roundtrip(&t, c, "tok:1");
  tclose(&t, c, &log);
  free(w.token);
  free(w.client_id);
  tctx_done(&t);
}

static void connect_with_callback(void **state, int mode, int format) {
  tctx_t t;
  tctx_init(&t, *state, NULL);
  auth_ctx_t a = {.key = t.key, .mode = mode, .ttl_ms = 60000, .client_id = "bob"};
  sw_options_t o;
  test_options(&o, &t.env->srv, &t.loop, format);
  if (mode == AUTH_TOKEN_DETAILS) {
    o.key = t.key;
    assert_int_equal(sw_client_new(&o, &a.rest, NULL), 0);
    o.key = NULL;
  }
  o.auth_cb = auth_cb;
  o.auth_ud = &a;
  state_log_t log = {0};
  sw_client_t *c = tconnect(&t, &o, &log);
  assert_int_equal(a.calls, 1);
  assert_string_equal(sw_client_client_id(c), "bob");
  roundtrip(&t, c, "cb");
  /* An explicit reauthorisation goes in-band: the connection stays (RTC8). */
  const char *id = sw_client_connection_id(c);
  char *before = strdup(id);
  assert_int_equal(sw_client_authorize(c), 0);
  bool updated = false;
  for (int i = 0; i < 300 && !(updated = log.update_count == 1); i++) run_for(&t.loop, 10);
  assert_true(updated);
  assert_int_equal(a.calls, 2);
  assert_string_equal(sw_client_connection_id(c), before);
  free(before);
  tclose(&t, c, &log);
  sw_client_free(a.rest);
  tctx_done(&t);
}

static void test_jwt_callback(void **state) {
  connect_with_callback(state, AUTH_JWT, SW_FORMAT_MSGPACK);
}

static void test_token_request_callback(void **state) {
  connect_with_callback(state, AUTH_TOKEN_REQUEST, SW_FORMAT_JSON);
}

static void test_token_details_callback(void **state) {
  connect_with_callback(state, AUTH_TOKEN_DETAILS, SW_FORMAT_MSGPACK);
}

static void test_key_with_token_auth(void **state) {
  tctx_t t;
  tctx_init(&t, *state, NULL);
  sw_options_t o;
  tctx_options(&t, &o, SW_FORMAT_JSON);
  o.use_token_auth = true;
  o.client_id = "carol";
  state_log_t log = {0};
  sw_client_t *c = tconnect(&t, &o, &log);
  assert_string_equal(sw_client_client_id(c), "carol");
  roundtrip(&t, c, "tokenauth");
  tclose(&t, c, &log);
  tctx_done(&t);
}

static void test_wrong_secret(void **state) {
  tctx_t t;
  tctx_init(&t, *state, NULL);
  char bad[256];
  snprintf(bad, sizeof bad, "%.*s:not-the-secret", (int)(strchr(t.key, ':') - t.key), t.key);
  sw_options_t o;
  test_options(&o, &t.env->srv, &t.loop, SW_FORMAT_MSGPACK);
  o.key = bad;
  state_log_t log = {0};
  sw_client_t *c = tclient(&t, &o, &log);
  assert_true(run_until(&t.loop, &log.failed, 5000));
  assert_int_equal(sw_client_state(c), SW_CONN_FAILED);
  assert_int_equal(sw_client_error_reason(c)->code, 40101);
  assert_int_equal(sw_client_error_reason(c)->status_code, 401);
  /* Publishing on a failed connection is refused at once. */
  assert_int_equal(sw_channel_publish(sw_client_channel(c, "x"), NULL, "x", NULL, NULL), SW_ESTATE);
  /* requestToken with the wrong secret: 40101 from the server. */
  token_wait_t w = {0};
  assert_int_equal(sw_request_token(c, NULL, on_token, &w), 0);
  assert_true(run_until(&t.loop, &w.done, 5000));
  assert_int_equal(w.err.code, 40101);
  assert_int_equal(w.err.status_code, 401);
  sw_client_free(c);

  /* A JWT signed with the wrong secret: 40144, a token error, so the
   * client renews, gets the same refusal and backs off (RTN14b). */
  auth_ctx_t a = {.key = bad, .mode = AUTH_JWT, .ttl_ms = 60000};
  test_options(&o, &t.env->srv, &t.loop, SW_FORMAT_JSON);
  o.auth_cb = auth_cb;
  o.auth_ud = &a;
  state_log_t log2 = {0};
  c = tclient(&t, &o, &log2);
  bool disconnected = false;
  for (int i = 0; i < 500 && !disconnected; i++) {
    run_for(&t.loop, 10);
    disconnected = sw_client_state(c) == SW_CONN_DISCONNECTED;
  }
  assert_true(disconnected);
  assert_int_equal(log2.last_reason.code, 40144);
  assert_int_equal(log2.last_reason.status_code, 401);
  assert_true(a.calls >= 2);
  tclose(&t, c, &log2);
  tctx_done(&t);
}

static void test_denied_channel(void **state) {
  tctx_t t;
  tctx_init(&t, *state, "{\"keys\":[{\"capability\":{\"allowed:*\":[\"*\"]}}]}");
  sw_options_t o;
  tctx_options(&t, &o, SW_FORMAT_JSON);
  state_log_t log = {0};
  sw_client_t *c = tconnect(&t, &o, &log);
  sw_channel_t *denied = sw_client_channel(c, "secret:room");
  done_log_t d = {0};
  assert_int_equal(sw_channel_attach(denied, done_cb, &d), 0);
  assert_true(run_until(&t.loop, &d.done, 5000));
  assert_int_equal(d.err.code, 40160);
  assert_int_equal(d.err.status_code, 401);
  assert_int_equal(sw_channel_state(denied), SW_CHANNEL_FAILED);
  assert_int_equal(sw_channel_error_reason(denied)->code, 40160);
  /* Publishing there: NACK 40160; the connection stays up. */
  ack_log_t a = {0};
  sw_channel_t *denied2 = sw_client_channel(c, "secret:other");
  assert_int_equal(sw_channel_publish(denied2, NULL, "x", ack_cb, &a), 0);
  bool nacked = false;
  for (int i = 0; i < 500 && !(nacked = a.nacked == 1); i++) run_for(&t.loop, 10);
  assert_true(nacked);
  assert_int_equal(a.last_err.code, 40160);
  assert_int_equal(sw_client_state(c), SW_CONN_CONNECTED);
  roundtrip(&t, c, "allowed:room");
  json_decref(a.serials);
  tclose(&t, c, &log);
  tctx_done(&t);
}

static void test_message_operations(void **state) {
  tctx_t t;
  tctx_init(&t, *state, NULL);
  sw_options_t o;
  tctx_options(&t, &o, SW_FORMAT_MSGPACK);
  state_log_t log = {0};
  sw_client_t *c = tconnect(&t, &o, &log);
  sw_channel_t *ch = sw_client_channel(c, "ops");
  ack_log_t a = {0};
  assert_int_equal(sw_channel_publish(ch, "stream", "hel", ack_cb, &a), 0);
  bool acked = false;
  for (int i = 0; i < 500 && !(acked = a.acked == 1); i++) run_for(&t.loop, 10);
  assert_true(acked);
  const char *serial = json_string_value(json_array_get(a.serials, 0));
  sw_message_t m = {.serial = serial, .data = "lo", .data_type = SW_PAYLOAD_STRING};
  /* Without a serial an operation is refused locally. */
  sw_message_t no_serial = {.data = "x", .data_type = SW_PAYLOAD_STRING};
  assert_int_equal(sw_channel_append_message(ch, &no_serial, ack_cb, &a), SW_EINVAL);
  /* This namespace has no mutableMessages: NACK 93002 for each operation. */
  assert_int_equal(sw_channel_append_message(ch, &m, ack_cb, &a), 0);
  assert_int_equal(sw_channel_update_message(ch, &m, ack_cb, &a), 0);
  assert_int_equal(sw_channel_delete_message(ch, &m, ack_cb, &a), 0);
  bool nacked = false;
  for (int i = 0; i < 500 && !(nacked = a.nacked == 3); i++) run_for(&t.loop, 10);
  assert_true(nacked);
  assert_int_equal(a.last_err.code, 93002);
  json_decref(a.serials);
  tclose(&t, c, &log);
  tctx_done(&t);
}

static void test_static_token_cannot_renew(void **state) {
  tctx_t t;
  tctx_init(&t, *state, NULL);
  char *jwt = NULL;
  sw_token_params_t p = {.ttl_ms = 3000};
  assert_int_equal(sw_jwt_create(t.key, &p, &jwt, NULL), 0);
  sw_options_t o;
  test_options(&o, &t.env->srv, &t.loop, SW_FORMAT_JSON);
  o.token = jwt;
  state_log_t log = {0};
  sw_client_t *c = tconnect(&t, &o, &log);
  /* At expiry the server disconnects with 40142; with nothing to renew
   * the token with, the connection fails (RTN15h1, RSA4a). */
  assert_true(run_until(&t.loop, &log.failed, 8000));
  assert_int_equal(sw_client_error_reason(c)->code, SW_ERR_NO_RENEWAL);
  assert_non_null(strstr(sw_client_error_reason(c)->message, "40142"));
  sw_client_free(c);
  free(jwt);
  tctx_done(&t);
}

static void test_auth_callback_errors(void **state) {
  tctx_t t;
  tctx_init(&t, *state, NULL);
  /* The app server refuses once, then gives a JWT: DISCONNECTED with
   * 80019 carrying the cause (RSA4c), then CONNECTED. */
  auth_ctx_t a = {.key = t.key, .mode = AUTH_JWT, .ttl_ms = 60000, .fail_first = 1};
  sw_options_t o;
  test_options(&o, &t.env->srv, &t.loop, SW_FORMAT_MSGPACK);
  o.disconnected_retry_ms = 100;
  o.auth_cb = auth_cb;
  o.auth_ud = &a;
  state_log_t log = {0};
  sw_client_t *c = tconnect(&t, &o, &log);
  assert_int_equal(a.calls, 2);
  bool saw = false;
  for (int i = 0; i < log.n; i++)
    if (log.states[i] == SW_CONN_DISCONNECTED && log.reasons[i].code == SW_ERR_AUTH_FAILED)
      saw = strstr(log.reasons[i].message, "40300") != NULL;
  assert_true(saw);
  tclose(&t, c, &log);

  a = (auth_ctx_t){.key = t.key, .mode = AUTH_GARBAGE};
  state_log_t log2 = {0};
  c = tclient(&t, &o, &log2);
  bool disc = false;
  for (int i = 0; i < 300 && !disc; i++) {
    run_for(&t.loop, 10);
    disc = log2.last_reason.code == SW_ERR_AUTH_FAILED;
  }
  assert_true(disc);
  assert_non_null(strstr(log2.last_reason.message, "40170"));
  tclose(&t, c, &log2);
  tctx_done(&t);
}

typedef struct time_wait {
  bool done;
  int64_t t;
  sw_errinfo_t err;
} time_wait_t;

static void on_time(sw_client_t *c, const sw_errinfo_t *err, int64_t t, void *ud) {
  time_wait_t *w = ud;
  (void)c;
  w->done = true;
  w->t = t;
  if (err) w->err = *err;
}

static void test_time_and_validation(void **state) {
  tctx_t t;
  tctx_init(&t, *state, NULL);
  sw_options_t o;
  tctx_options(&t, &o, SW_FORMAT_MSGPACK);
  sw_client_t *c = NULL;
  assert_int_equal(sw_client_new(&o, &c, NULL), 0);
  time_wait_t w = {0};
  assert_int_equal(sw_time(c, on_time, &w), 0);
  assert_true(run_until(&t.loop, &w.done, 5000));
  assert_int_equal(w.err.code, 0);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t now = (int64_t)ts.tv_sec * 1000;
  assert_true(w.t > now - 60000 && w.t < now + 60000);
  sw_client_free(c);

  /* Options and arguments are checked up front. */
  sw_errinfo_t err = {0};
  o.key = "not-a-key";
  assert_int_equal(sw_client_new(&o, &c, &err), SW_EINVAL);
  assert_int_equal(err.code, 40005);
  o.key = NULL;
  assert_int_equal(sw_client_new(&o, &c, &err), SW_EINVAL);
  assert_int_equal(err.code, 40106);
  char *out = NULL;
  sw_token_params_t p = {.capability = "[1]"};
  assert_int_equal(sw_jwt_create(t.key, &p, &out, &err), SW_EINVAL);
  assert_int_equal(err.code, 40000);
  assert_null(out);
  assert_int_equal(sw_token_request_create("x:y", NULL, &out, &err), SW_EINVAL);
  sw_client_free(NULL);
  sw_history_page_free(NULL);
  tctx_done(&t);
}

int main(int argc, char **argv) {
  test_env_t env = {.bin = TEST_SERVER_BIN(argc, argv)};
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_prestate(test_key_json, &env),
      cmocka_unit_test_prestate(test_key_msgpack, &env),
      cmocka_unit_test_prestate(test_token_from_request_token, &env),
      cmocka_unit_test_prestate(test_jwt_callback, &env),
      cmocka_unit_test_prestate(test_token_request_callback, &env),
      cmocka_unit_test_prestate(test_token_details_callback, &env),
      cmocka_unit_test_prestate(test_key_with_token_auth, &env),
      cmocka_unit_test_prestate(test_wrong_secret, &env),
      cmocka_unit_test_prestate(test_denied_channel, &env),
      cmocka_unit_test_prestate(test_message_operations, &env),
      cmocka_unit_test_prestate(test_static_token_cannot_renew, &env),
      cmocka_unit_test_prestate(test_auth_callback_errors, &env),
      cmocka_unit_test_prestate(test_time_and_validation, &env),
  };
  return run_with_server(tests, &env, NULL);
}
