/* test_renewal.c: token renewal with messages flowing, none lost:
 *  - short-lived (4 s) JWTs from the auth callback, renewed in-band before
 *    expiry, several times over (by the SDK's own timer: the server does not
 *    ask, RTN22, for a token adopted with 5.5 s or less to live);
 *  - an auth callback too slow for the server: DISCONNECTED 40142, then
 *    renewal and resume (RTN15h2) without losing or duplicating a message;
 *  - TokenRequests (exchanged for server tokens) and key + use_token_auth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define TTL_MS 4000

typedef struct renew_ctx {
  const char *key;
  int calls;
  bool token_request; /* TokenRequests instead of JWTs */
  int slow_call;      /* this call completes only after slow_ms */
  int slow_ms;
  uv_timer_t slow_timer;
  bool slow_timer_open;
  sw_auth_request_t *slow_req;
} renew_ctx_t;

static void complete(renew_ctx_t *r, sw_auth_request_t *req) {
  sw_token_params_t p = {.ttl_ms = TTL_MS};
  char *out = NULL;
  int rc = r->token_request ? sw_token_request_create(r->key, &p, &out, NULL) : sw_jwt_create(r->key, &p, &out, NULL);
  assert_int_equal(rc, 0);
  assert_int_equal(sw_auth_complete(req, out, NULL), 0);
  free(out);
}

static void on_slow(uv_timer_t *t) {
  renew_ctx_t *r = t->data;
  complete(r, r->slow_req);
  r->slow_req = NULL;
}

static void renew_cb(sw_client_t *c, sw_auth_request_t *req, void *ud) {
  renew_ctx_t *r = ud;
  (void)c;
  r->calls++;
  if (r->calls == r->slow_call) {
    /* Answer after the token has expired: the server disconnects first. */
    r->slow_req = req;
    uv_timer_init(sw_client_loop(c), &r->slow_timer);
    r->slow_timer.data = r;
    r->slow_timer_open = true;
    uv_timer_start(&r->slow_timer, on_slow, (uint64_t)r->slow_ms, 0);
    return;
  }
  complete(r, req);
}

static bool has_state(const state_log_t *l, sw_conn_state_t s, int code) {
  for (int i = 0; i < l->n; i++)
    if (l->states[i] == s && (!code || l->reasons[i].code == code)) return true;
  return false;
}

/* Subscriber and publisher on renewing credentials; 240 messages over ~12 s. */
static void flow_with_renewals(void **state, renew_ctx_t *rs, renew_ctx_t *rp, int format, state_log_t *ls,
                               state_log_t *lp, chan_log_t *cl) {
  tctx_t t;
  tctx_init(&t, *state, NULL);
  rs->key = rp->key = t.key;
  sw_options_t o;
  test_options(&o, &t.env->srv, &t.loop, format);
  o.auth_cb = renew_cb;
  o.auth_ud = rs;
  sw_client_t *sub = tclient(&t, &o, ls);
  o.auth_ud = rp;
  sw_client_t *pub = tclient(&t, &o, lp);
  assert_true(run_until(&t.loop, &ls->connected, 5000));
  assert_true(run_until(&t.loop, &lp->connected, 5000));
  char *sub_id = strdup(sw_client_connection_id(sub)), *pub_id = strdup(sw_client_connection_id(pub));

  recv_log_t r = {0};
  sw_channel_t *sch = sw_client_channel(sub, "renewal");
  sw_channel_on_state(sch, chan_log_cb, cl);
  assert_true(sw_channel_subscribe(sch, NULL, recv_cb, &r) > 0);
  done_log_t d = {0};
  assert_int_equal(sw_channel_attach(sch, done_cb, &d), 0);
  assert_true(run_until(&t.loop, &d.done, 5000));

  const int total = 240;
  flow_t f;
  flow_start(&f, &t.loop, sw_client_channel(pub, "renewal"), total, 50, 1);
  assert_true(wait_flow_through(&t.loop, &r, &f, total, 30000));
  run_for(&t.loop, 200); /* nothing extra arrives */
  assert_int_equal(f.acks.acked, total);
  assert_int_equal(f.acks.nacked, 0);
  assert_sequence(&r, total);
  /* Renewal keeps the connections (in-band, or by resuming). */
  assert_string_equal(sw_client_connection_id(sub), sub_id);
  assert_string_equal(sw_client_connection_id(pub), pub_id);
  assert_int_equal(sw_client_state(sub), SW_CONN_CONNECTED);
  free(sub_id);
  free(pub_id);
  flow_stop(&f);
  json_decref(r.msgs);
  tclose(&t, pub, lp);
  tclose(&t, sub, ls);
  if (rs->slow_timer_open) uv_close((uv_handle_t *)&rs->slow_timer, NULL);
  if (rp->slow_timer_open) uv_close((uv_handle_t *)&rp->slow_timer, NULL);
  tctx_done(&t);
}

static void test_renewal_in_band_jwt(void **state) {
  renew_ctx_t rs = {0}, rp = {0};
  state_log_t ls = {0}, lp = {0};
  chan_log_t cl = {0};
  flow_with_renewals(state, &rs, &rp, SW_FORMAT_MSGPACK, &ls, &lp, &cl);
  /* ~12 s of 4 s tokens: at least 3 renewals each, all in-band (UPDATE),
   * no disconnection. */
  assert_true(rs.calls >= 4);
  assert_true(rp.calls >= 4);
  assert_true(ls.update_count >= 3);
  assert_true(lp.update_count >= 3);
  assert_int_equal(ls.connected_count, 1);
  assert_int_equal(lp.connected_count, 1);
  assert_false(has_state(&ls, SW_CONN_DISCONNECTED, 0));
  assert_int_equal(cl.attached, 1);
}

static void test_renewal_after_40142(void **state) {
  renew_ctx_t rs = {.slow_call = 2, .slow_ms = 3500}, rp = {.slow_call = 3, .slow_ms = 3500};
  state_log_t ls = {0}, lp = {0};
  chan_log_t cl = {0};
  flow_with_renewals(state, &rs, &rp, SW_FORMAT_JSON, &ls, &lp, &cl);
  /* The slow renewal let the token expire: DISCONNECTED 40142, then a
   * resumed CONNECTED; the channel re-attached with RESUMED. */
  assert_true(has_state(&ls, SW_CONN_DISCONNECTED, 40142));
  assert_true(has_state(&lp, SW_CONN_DISCONNECTED, 40142));
  assert_true(ls.resumed_count >= 1);
  assert_true(lp.resumed_count >= 1);
  assert_true(cl.resumed >= 1);
  assert_true(rs.calls >= 3);
}

static void test_renewal_token_requests(void **state) {
  renew_ctx_t rs = {.token_request = true}, rp = {.token_request = true};
  state_log_t ls = {0}, lp = {0};
  chan_log_t cl = {0};
  flow_with_renewals(state, &rs, &rp, SW_FORMAT_JSON, &ls, &lp, &cl);
  assert_true(rs.calls >= 3);
  assert_true(rp.calls >= 3);
  assert_true(ls.update_count >= 2);
  assert_int_equal(ls.connected_count, 1);
}

int main(int argc, char **argv) {
  test_env_t env = {.bin = TEST_SERVER_BIN(argc, argv)};
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_prestate(test_renewal_in_band_jwt, &env),
      cmocka_unit_test_prestate(test_renewal_after_40142, &env),
      cmocka_unit_test_prestate(test_renewal_token_requests, &env),
  };
  return run_with_server(tests, &env, NULL);
}
