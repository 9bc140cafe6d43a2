/* test_resume.c: the socket is cut under the library (shutdown(2) on its
 * fd) while messages flow; the client reconnects with resume=<key>, keeps
 * its connectionId (RTN15c6), re-attaches with its channelSerial (RTL4c1)
 * and resends unacknowledged publishes with their msgSerial (RTN19a2):
 * nothing is lost, nothing is duplicated, in history either. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "harness.h"

typedef struct pages {
  bool done;
  sw_errinfo_t err;
  json_t *datas;
} pages_t;

static void on_page(sw_client_t *c, const sw_errinfo_t *err, sw_history_page_t *pg, void *ud) {
  pages_t *p = ud;
  (void)c;
  if (err) {
    p->err = *err;
    p->done = true;
    return;
  }
  for (size_t i = 0; i < sw_history_page_count(pg); i++)
    json_array_append_new(p->datas, json_string((const char *)sw_history_page_item(pg, i)->data));
  if (sw_history_page_has_next(pg)) assert_int_equal(sw_history_page_next(pg, on_page, p), 0);
  else p->done = true;
  sw_history_page_free(pg);
}

/* History, oldest first, holds exactly the sequence. */
static void assert_history(tctx_t *t, sw_channel_t *ch, int total) {
  pages_t p = {.datas = json_array()};
  sw_history_params_t hp = {.forwards = true, .limit = 100};
  assert_int_equal(sw_channel_history(ch, &hp, on_page, &p), 0);
  assert_true(run_until(&t->loop, &p.done, 10000));
  assert_int_equal(p.err.code, 0);
  recv_log_t as_recv = {.msgs = json_array()};
  for (size_t i = 0; i < json_array_size(p.datas); i++) {
    json_t *o = json_object();
    json_object_set(o, "data", json_array_get(p.datas, i));
    json_array_append_new(as_recv.msgs, o);
  }
  assert_sequence(&as_recv, total);
  json_decref(as_recv.msgs);
  json_decref(p.datas);
}

static void cut(sw_client_t *c) {
  int fd = sw_client_fileno(c);
  assert_true(fd >= 0);
  assert_int_equal(shutdown(fd, SHUT_RDWR), 0);
}

static void resume_while_flowing(void **state, int format, bool cut_sub, bool cut_pub) {
  tctx_t t;
  tctx_init(&t, *state, NULL);
  sw_options_t o;
  tctx_options(&t, &o, format);
  state_log_t ls = {0}, lp = {0};
  sw_client_t *sub = tclient(&t, &o, &ls);
  sw_client_t *pub = tclient(&t, &o, &lp);
  assert_true(run_until(&t.loop, &ls.connected, 5000));
  assert_true(run_until(&t.loop, &lp.connected, 5000));
  char *sub_id = strdup(sw_client_connection_id(sub)), *pub_id = strdup(sw_client_connection_id(pub));

  recv_log_t r = {0};
  chan_log_t cl = {0};
  sw_channel_t *sch = sw_client_channel(sub, "resume");
  sw_channel_on_state(sch, chan_log_cb, &cl);
  assert_true(sw_channel_subscribe(sch, NULL, recv_cb, &r) > 0);
  done_log_t d = {0};
  assert_int_equal(sw_channel_attach(sch, done_cb, &d), 0);
  assert_true(run_until(&t.loop, &d.done, 5000));

  /* 600 messages, 10 every 5 ms: plenty in flight when the cuts happen. */
  const int total = 600;
  flow_t f;
  flow_start(&f, &t.loop, sw_client_channel(pub, "resume"), total, 5, 10);
  assert_true(wait_received(&t.loop, &r, 100, 10000));
  if (cut_sub) cut(sub);
  if (cut_pub) cut(pub);
  assert_true(wait_received(&t.loop, &r, 300, 10000));
  if (cut_pub) cut(pub); /* again, mid-flow */
  assert_true(wait_flow_through(&t.loop, &r, &f, total, 20000));
  run_for(&t.loop, 300);
  assert_int_equal(f.acks.acked, total);
  assert_int_equal(f.acks.nacked, 0);
  assert_sequence(&r, total);
  /* Every ACK serial is distinct: no message was published twice. */
  json_t *seen = json_object();
  for (size_t i = 0; i < json_array_size(f.acks.serials); i++) {
    const char *s = json_string_value(json_array_get(f.acks.serials, i));
    assert_non_null(s);
    assert_null(json_object_get(seen, s));
    json_object_set_new(seen, s, json_true());
  }
  json_decref(seen);
  /* Same connections, resumed; the channel re-attached with RESUMED. */
  assert_string_equal(sw_client_connection_id(sub), sub_id);
  assert_string_equal(sw_client_connection_id(pub), pub_id);
  if (cut_sub) {
    assert_true(ls.resumed_count >= 1);
    assert_true(cl.resumed >= 1);
    assert_int_equal(ls.last_reason.code, SW_ERR_DISCONNECTED);
  }
  if (cut_pub) assert_true(lp.resumed_count >= 2);
  assert_history(&t, sch, total);
  free(sub_id);
  free(pub_id);
  flow_stop(&f);
  json_decref(r.msgs);
  tclose(&t, pub, &lp);
  tclose(&t, sub, &ls);
  tctx_done(&t);
}

static void test_resume_subscriber_json(void **state) {
  resume_while_flowing(state, SW_FORMAT_JSON, true, false);
}

static void test_resume_subscriber_msgpack(void **state) {
  resume_while_flowing(state, SW_FORMAT_MSGPACK, true, false);
}

static void test_resume_publisher_msgpack(void **state) {
  resume_while_flowing(state, SW_FORMAT_MSGPACK, false, true);
}

static void test_resume_both_json(void **state) {
  resume_while_flowing(state, SW_FORMAT_JSON, true, true);
}

/* A resume the server can no longer honour (its connectionStateTtl has
 * passed): CONNECTED with a new connectionId and 80008 (RTN15c7). msgSerial
 * restarts from 0, unacknowledged and queued publishes are sent again with
 * their ids (deduplicated by the server), channels re-attach from their
 * channelSerial: still nothing lost or duplicated. The gap is made by an
 * auth callback that answers the renewal after the token has expired. */
typedef struct slow_auth {
  const char *key;
  int calls;
  uv_timer_t timer;
  bool timer_open;
  sw_auth_request_t *req;
} slow_auth_t;

static void slow_complete(slow_auth_t *a, sw_auth_request_t *req) {
  sw_token_params_t p = {.ttl_ms = 3000};
  char *jwt = NULL;
  assert_int_equal(sw_jwt_create(a->key, &p, &jwt, NULL), 0);
  assert_int_equal(sw_auth_complete(req, jwt, NULL), 0);
  free(jwt);
}

static void on_slow(uv_timer_t *t) {
  slow_auth_t *a = t->data;
  slow_complete(a, a->req);
}

static void slow_auth_cb(sw_client_t *c, sw_auth_request_t *req, void *ud) {
  slow_auth_t *a = ud;
  if (++a->calls != 2) {
    slow_complete(a, req);
    return;
  }
  a->req = req;
  uv_timer_init(sw_client_loop(c), &a->timer);
  a->timer.data = a;
  a->timer_open = true;
  uv_timer_start(&a->timer, on_slow, 3500, 0);
}

static void test_failed_resume(void **state) {
  test_env_t *env = *state, env2 = {.bin = env->bin};
  assert_int_equal(server_start_config(env->bin, "{\"limits\":{\"connectionStateTtl\":1000}}", &env2.srv), 0);
  tctx_t t;
  tctx_init(&t, &env2, NULL);
  sw_options_t o;
  test_options(&o, &env2.srv, &t.loop, SW_FORMAT_MSGPACK);
  o.realtime_request_timeout_ms = 8000;
  slow_auth_t a = {.key = t.key};
  o.auth_cb = slow_auth_cb;
  o.auth_ud = &a;
  state_log_t lp = {0}, ls = {0};
  sw_client_t *pub = tclient(&t, &o, &lp);
  test_options(&o, &env2.srv, &t.loop, SW_FORMAT_JSON);
  o.key = t.key;
  sw_client_t *sub = tclient(&t, &o, &ls);
  assert_true(run_until(&t.loop, &lp.connected, 5000));
  assert_true(run_until(&t.loop, &ls.connected, 5000));
  char *first_id = strdup(sw_client_connection_id(pub));

  recv_log_t rs = {0}, rp = {0};
  chan_log_t cl = {0};
  sw_channel_t *sch = sw_client_channel(sub, "gap"), *pch = sw_client_channel(pub, "gap");
  sw_channel_on_state(pch, chan_log_cb, &cl);
  assert_true(sw_channel_subscribe(sch, NULL, recv_cb, &rs) > 0);
  assert_true(sw_channel_subscribe(pch, NULL, recv_cb, &rp) > 0);
  done_log_t d1 = {0}, d2 = {0};
  assert_int_equal(sw_channel_attach(sch, done_cb, &d1), 0);
  assert_int_equal(sw_channel_attach(pch, done_cb, &d2), 0);
  assert_true(run_until(&t.loop, &d1.done, 5000));
  assert_true(run_until(&t.loop, &d2.done, 5000));

  /* 8 s of publishing, 10 per 100 ms, across the ~5 s gap. */
  const int total = 800;
  flow_t f;
  flow_start(&f, &t.loop, pch, total, 100, 10);
  assert_true(wait_flow_through(&t.loop, &rs, &f, total, 30000));
  assert_true(wait_received(&t.loop, &rp, (size_t)total, 10000));
  run_for(&t.loop, 300);
  assert_int_equal(f.acks.acked, total);
  assert_sequence(&rs, total);
  assert_sequence(&rp, total);
  /* It really was a new connection, announced with 80008. */
  bool saw_80008 = false;
  for (int i = 0; i < lp.n; i++)
    if (lp.states[i] == SW_CONN_CONNECTED && lp.reasons[i].code == SW_ERR_RESUME_FAILED) saw_80008 = true;
  assert_true(saw_80008);
  assert_string_not_equal(sw_client_connection_id(pub), first_id);
  assert_true(cl.attached >= 2);
  assert_history(&t, sch, total);
  free(first_id);
  flow_stop(&f);
  json_decref(rs.msgs);
  json_decref(rp.msgs);
  tclose(&t, pub, &lp);
  tclose(&t, sub, &ls);
  if (a.timer_open) uv_close((uv_handle_t *)&a.timer, NULL);
  tctx_done(&t);
  assert_int_equal(server_stop(&env2.srv), 0);
}

/* Writing to a socket that was cut must not raise SIGPIPE (default
 * disposition here, so it would kill the test): the publish stays pending,
 * goes out again after the resume and is acknowledged once. */
static void test_write_after_cut(void **state) {
  tctx_t t;
  tctx_init(&t, *state, NULL);
  sw_options_t o;
  tctx_options(&t, &o, SW_FORMAT_JSON);
  state_log_t l = {0};
  sw_client_t *c = tconnect(&t, &o, &l);
  recv_log_t r = {0};
  sw_channel_t *ch = sw_client_channel(c, "sigpipe");
  assert_true(sw_channel_subscribe(ch, NULL, recv_cb, &r) > 0);
  done_log_t d = {0};
  assert_int_equal(sw_channel_attach(ch, done_cb, &d), 0);
  assert_true(run_until(&t.loop, &d.done, 5000));
  ack_log_t a = {0};
  cut(c);
  for (int i = 0; i < 3; i++) { /* sent at once, into the cut socket */
    char data[16];
    snprintf(data, sizeof data, "m%06d", i);
    assert_int_equal(sw_channel_publish(ch, "seq", data, ack_cb, &a), 0);
  }
  assert_true(wait_received(&t.loop, &r, 3, 5000));
  run_for(&t.loop, 200);
  assert_int_equal(a.acked, 3);
  assert_sequence(&r, 3);
  assert_true(l.resumed_count >= 1);
  json_decref(r.msgs);
  json_decref(a.serials);
  tclose(&t, c, &l);
  tctx_done(&t);
}

/* While the server is unreachable the client backs off and keeps its
 * publishes queued; it connects once the server is back. */
static void test_reconnect_backoff(void **state) {
  test_env_t *env = *state;
  tctx_t t;
  memset(&t, 0, sizeof t);
  assert_int_equal(uv_loop_init(&t.loop), 0);
  t.env = env;
  sw_options_t o;
  test_options(&o, &env->srv, &t.loop, SW_FORMAT_JSON);
  o.port = 1; /* nothing listens there */
  o.key = "app.key:secret";
  o.disconnected_retry_ms = 100;
  state_log_t l = {0};
  sw_client_t *c = tclient(&t, &o, &l);
  ack_log_t a = {0};
  assert_int_equal(sw_channel_publish(sw_client_channel(c, "q"), NULL, "queued", ack_cb, &a), 0);
  run_for(&t.loop, 1000);
  int disconnected = 0;
  for (int i = 0; i < l.n; i++)
    if (l.states[i] == SW_CONN_DISCONNECTED) {
      disconnected++;
      assert_int_equal(l.reasons[i].code, SW_ERR_CONNECTION_FAILED);
    }
  assert_true(disconnected >= 3); /* ~100, 133, 166, 200 ms... (RTB1) */
  assert_true(disconnected <= 12);
  assert_int_equal(a.acked + a.nacked, 0); /* still queued */
  tclose(&t, c, &l);
  assert_int_equal(a.nacked, 1); /* closing fails it (80017) */
  assert_int_equal(a.last_err.code, SW_ERR_CONNECTION_CLOSED);
  json_decref(a.serials);
  for (int i = 0; i < 1000 && uv_run(&t.loop, UV_RUN_NOWAIT); i++) {
  }
  assert_int_equal(uv_loop_close(&t.loop), 0);
}

int main(int argc, char **argv) {
  test_env_t env = {.bin = TEST_SERVER_BIN(argc, argv)};
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_prestate(test_resume_subscriber_json, &env),
      cmocka_unit_test_prestate(test_resume_subscriber_msgpack, &env),
      cmocka_unit_test_prestate(test_resume_publisher_msgpack, &env),
      cmocka_unit_test_prestate(test_resume_both_json, &env),
      cmocka_unit_test_prestate(test_write_after_cut, &env),
      cmocka_unit_test_prestate(test_reconnect_backoff, &env),
      cmocka_unit_test_prestate(test_failed_resume, &env),
  };
  return run_with_server(tests, &env, NULL);
}
