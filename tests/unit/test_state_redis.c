/* test_state_redis.c: the shared state in Redis (src/cluster/state_redis.c)
 * with two "nodes" (two servers' state on one loop) and a real
 * redis-server on loopback: one token secret and one development app for
 * the cluster, apps created and deleted through either node, one app per
 * id, revocation rules announced and merged, TokenRequest nonces claimed
 * once across nodes (40105) and refused while Redis is down (50004),
 * stored tokens replicated, and a full reload after Redis restarts (an
 * app spec with incomplete keys is not served). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "auth/token.h"
#include "cluster/state_redis.h"
#include "core/shared.h"
#include "redis_harness.h"
#include "util/clock.h"

typedef struct node {
  sw_server_t srv;
  sw_config_t cfg;
} node_t;

typedef struct fx {
  uv_loop_t loop;
  rh_server_t redis;
  node_t n[2];
  int opened;
} fx_t;

typedef struct result {
  bool done;
  sw_error_t err;
  sw_app_t *app;
} result_t;

static void on_done(void *ud, const sw_error_t *err) {
  result_t *r = ud;
  r->done = true;
  r->err = *err;
}

static void on_app(void *ud, sw_app_t *a, const sw_error_t *err) {
  result_t *r = ud;
  r->done = true;
  r->app = a;
  r->err = *err;
}

static void node_open(fx_t *f, node_t *n, const char *name) {
  memset(n, 0, sizeof *n);
  config_defaults(&n->cfg);
  n->cfg.memory = true;
  n->cfg.redis_url = strdup("redis://test");
  n->srv.loop = &f->loop;
  n->srv.cfg = &n->cfg;
  n->srv.shared.ops = &shared_local_ops;
  snprintf(n->srv.server_id, sizeof n->srv.server_id, "%s", name);
  sw_store_opts_t so = {0};
  assert_int_equal(store_open(&f->loop, &so, &n->srv.store), 0);
  n->srv.nonces = nonce_cache_new(1000, SW_TOKEN_REQUEST_WINDOW_MS);
  assert_non_null(n->srv.nonces);
  sw_state_redis_opts_t o = {.backoff_min_ms = 20, .backoff_max_ms = 200, .load_timeout_ms = 10000};
  char url[64];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d", f->redis.port);
  const char *why = NULL;
  assert_int_equal(redis_url_parse(url, strlen(url), &o.url, &why), 0);
  assert_int_equal(state_redis_install(&n->srv, &o), 0);
  f->opened++;
}

static int node_load(node_t *n) { return n->srv.shared.ops->load(n->srv.shared.impl, &n->srv); }

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof *f);
  uv_loop_init(&f->loop);
  f->redis.aof = true;
  rh_start(&f->redis);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_t *f = *state;
  for (int i = 0; i < f->opened; i++) {
    sw_server_t *s = &f->n[i].srv;
    s->shared.ops->close(s->shared.impl, s);
    store_close(s->store);
  }
  rh_loop_drain(&f->loop);
  for (int i = 0; i < f->opened; i++) {
    sw_server_t *s = &f->n[i].srv;
    s->shared.ops->free(s->shared.impl);
    apps_free(&s->apps);
    revocations_free(&s->revocations);
    nonce_cache_free(s->nonces);
    config_free(&f->n[i].cfg);
  }
  assert_int_equal(uv_loop_close(&f->loop), 0);
  rh_stop(&f->redis);
  free(f);
  return 0;
}

/* Both nodes opened and loaded (A first: it makes the development app). */
static void two_nodes(fx_t *f) {
  node_open(f, &f->n[0], "node-a");
  assert_int_equal(node_load(&f->n[0]), 0);
  node_open(f, &f->n[1], "node-b");
  assert_int_equal(node_load(&f->n[1]), 0);
}

static bool wait_for(fx_t *f, bool (*cond)(void *), void *ud, int ms) {
  uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000ULL;
  while (!cond(ud)) {
    if (uv_hrtime() > end) return false;
    uv_run(&f->loop, UV_RUN_NOWAIT);
    rh_sleep_ms(1);
  }
  return true;
}

static void run_until_done(fx_t *f, result_t *r) { assert_true(rh_run_until(&f->loop, &r->done, 10000)); }

typedef struct find {
  sw_server_t *srv;
  const char *id;
} find_t;
static bool app_present(void *ud) {
  find_t *q = ud;
  return apps_find(&q->srv->apps, q->id) != NULL;
}
static bool app_absent(void *ud) { return !app_present(ud); }

static sw_app_t *make_app(const char *id) {
  json_t *spec = json_pack("{s:s, s:[{s:s, s:s, s:b}]}", "id", id, "keys", "id", "k1", "secret", "secret-0123456789",
                           "revocableTokens", 1);
  sw_error_t err = {0};
  sw_app_t *a = app_from_spec(spec, true, &err);
  json_decref(spec);
  assert_non_null(a);
  return a;
}

/* A synchronous hiredis connection for looking into Redis. */
static redisReply *raw(fx_t *f, const char *fmt, ...) {
  redisContext *c = redisConnect("127.0.0.1", f->redis.port);
  assert_non_null(c);
  assert_int_equal(c->err, 0);
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(c, fmt, ap);
  va_end(ap);
  redisFree(c);
  assert_non_null(r);
  return r;
}

static void one_secret_and_one_dev_app(void **state) {
  fx_t *f = *state;
  two_nodes(f);
  sw_app_t *a = apps_find(&f->n[0].srv.apps, "dev"), *b = apps_find(&f->n[1].srv.apps, "dev");
  assert_non_null(a);
  assert_non_null(b);
  assert_string_equal(a->keys[0].secret, b->keys[0].secret);
  assert_memory_equal(f->n[0].srv.token_secret, f->n[1].srv.token_secret, SW_TOKEN_SECRET_LEN);
  /* A token sealed on A opens on B. */
  sw_token_info_t info = {.issued = clock_now_ms(), .expires = clock_now_ms() + 60000, .capability = "{\"*\":[\"*\"]}"};
  snprintf(info.key_name, sizeof info.key_name, "%s", a->keys[0].name);
  char *tok = token_mint(f->n[0].srv.token_secret, &info);
  assert_non_null(tok);
  sw_token_info_t out = {0};
  sw_error_t err = {0};
  assert_int_equal(token_verify(f->n[1].srv.token_secret, tok, strlen(tok), clock_now_ms(), &out, &err), 0);
  token_info_clear(&out);
  free(tok);
}

static void apps_created_and_deleted_through_either_node(void **state) {
  fx_t *f = *state;
  two_nodes(f);
  sw_server_t *A = &f->n[0].srv, *B = &f->n[1].srv;
  result_t r = {0};
  shared_app_create(A, make_app("app1"), on_app, &r);
  run_until_done(f, &r);
  assert_int_equal(r.err.code, 0);
  assert_non_null(r.app);
  find_t q = {B, "app1"};
  assert_true(wait_for(f, app_present, &q, 5000));
  /* One app per id, whichever node is asked. */
  result_t dup = {0};
  shared_app_create(B, make_app("app1"), on_app, &dup);
  run_until_done(f, &dup);
  assert_int_equal(dup.err.code, 40000);
  assert_null(dup.app);
  /* Deleted through B: gone on A too, and from Redis. */
  result_t del = {0};
  sw_app_t *b1 = apps_find(&B->apps, "app1");
  shared_app_delete(B, b1, on_done, &del);
  run_until_done(f, &del);
  assert_int_equal(del.err.code, 0);
  server_delete_app(B, b1);
  find_t qa = {A, "app1"};
  assert_true(wait_for(f, app_absent, &qa, 5000));
  redisReply *rr = raw(f, "EXISTS {app:app1}:spec");
  assert_int_equal(rr->integer, 0);
  freeReplyObject(rr);
}

typedef struct nrules {
  sw_server_t *srv;
  size_t n;
} nrules_t;
static bool has_rules(void *ud) {
  nrules_t *q = ud;
  return q->srv->revocations.n >= q->n;
}

static void revocations_announced_and_merged(void **state) {
  fx_t *f = *state;
  two_nodes(f);
  sw_server_t *A = &f->n[0].srv, *B = &f->n[1].srv;
  result_t r = {0};
  shared_app_create(A, make_app("rev"), on_app, &r);
  run_until_done(f, &r);
  assert_int_equal(r.err.code, 0);
  int64_t now = clock_now_ms();
  sw_revocation_t rule = {.key_name = "rev.k1", .type = SW_REVOKE_CLIENT_ID, .value = "bob",
                          .issued_before = now - 1000, .applies_at = now - 1000};
  assert_int_equal(revocations_add(&A->revocations, 100, now, rule.key_name, rule.type, rule.value,
                                   rule.issued_before, rule.applies_at), 0);
  result_t d = {0};
  shared_revoked(A, "rev", &rule, 1, on_done, &d);
  run_until_done(f, &d);
  assert_int_equal(d.err.code, 0);
  nrules_t q = {B, 1};
  assert_true(wait_for(f, has_rules, &q, 5000));
  assert_string_equal(B->revocations.rules[0].key_name, "rev.k1");
  assert_string_equal(B->revocations.rules[0].value, "bob");
  assert_int_equal(B->revocations.rules[0].issued_before, now - 1000);
  /* A later rule with a reauth margin: stored merged (the later
   * issuedBefore from the earlier time: the safe side), and it expires. */
  sw_revocation_t later = rule;
  later.issued_before = now;
  later.applies_at = now + 30000;
  result_t d2 = {0};
  shared_revoked(B, "rev", &later, 1, on_done, &d2);
  run_until_done(f, &d2);
  assert_int_equal(d2.err.code, 0);
  redisReply *rr = raw(f, "HGET {app:rev}:revoked %s", "rev.k1\n1\nbob");
  assert_int_equal(rr->type, REDIS_REPLY_STRING);
  char want[64];
  snprintf(want, sizeof want, "%lld:%lld", (long long)now, (long long)(now - 1000));
  assert_string_equal(rr->str, want);
  freeReplyObject(rr);
  rr = raw(f, "PTTL {app:rev}:revoked");
  assert_true(rr->integer > (long long)SW_TOKEN_MAX_TTL_MS - 60000);
  freeReplyObject(rr);
}

static void nonce_claimed_once_across_nodes(void **state) {
  fx_t *f = *state;
  two_nodes(f);
  sw_server_t *A = &f->n[0].srv, *B = &f->n[1].srv;
  int64_t now = clock_now_ms();
  const char *nonce = "0123456789abcdef0123";
  result_t r1 = {0}, r2 = {0}, r3 = {0}, r4 = {0};
  shared_nonce_claim(A, "dev", "dev.k", nonce, now, now, on_done, &r1);
  run_until_done(f, &r1);
  assert_int_equal(r1.err.code, 0);
  shared_nonce_claim(B, "dev", "dev.k", nonce, now, now, on_done, &r2);
  run_until_done(f, &r2);
  assert_int_equal(r2.err.code, 40105);
  assert_int_equal(r2.err.status, 401);
  shared_nonce_claim(A, "dev", "dev.k", nonce, now, now, on_done, &r3);
  run_until_done(f, &r3);
  assert_int_equal(r3.err.code, 40105);
  /* The same nonce with another timestamp is another request. */
  shared_nonce_claim(B, "dev", "dev.k", nonce, now + 1, now, on_done, &r4);
  run_until_done(f, &r4);
  assert_int_equal(r4.err.code, 0);
  redisReply *rr = raw(f, "KEYS {app:dev}:nonce:*");
  assert_int_equal(rr->elements, 2);
  freeReplyObject(rr);
  /* Redis down: refused (never accepted unchecked), with 50004. */
  rh_kill(&f->redis, SIGKILL);
  rh_run_for(&f->loop, 300);
  result_t r5 = {0};
  shared_nonce_claim(B, "dev", "dev.k", "another-nonce-0123456", now, now, on_done, &r5);
  run_until_done(f, &r5);
  assert_int_equal(r5.err.code, 50004);
}

typedef struct tokq {
  sw_server_t *srv;
  const char *id;
} tokq_t;
static bool token_there(void *ud) {
  tokq_t *q = ud;
  char *v = NULL;
  int64_t exp = 0;
  int rc = store_expiring_get(q->srv->store, q->id, &v, &exp);
  free(v);
  return rc == 1;
}

static void stored_token_replicated(void **state) {
  fx_t *f = *state;
  two_nodes(f);
  sw_server_t *A = &f->n[0].srv, *B = &f->n[1].srv;
  char id[SW_TOKEN_REF_ID_LEN + 1];
  memset(id, 'a', SW_TOKEN_REF_ID_LEN);
  id[SW_TOKEN_REF_ID_LEN] = 0;
  int64_t now = clock_now_ms();
  result_t r = {0};
  shared_token_put(A, "dev", id, "sbt1.sealed-token-text", now + 60000, now, on_done, &r);
  run_until_done(f, &r);
  assert_int_equal(r.err.code, 0);
  tokq_t q = {B, id};
  assert_true(wait_for(f, token_there, &q, 5000));
  redisReply *rr = raw(f, "HGET {app:dev}:tokens %s", id);
  assert_int_equal(rr->type, REDIS_REPLY_STRING);
  assert_non_null(strstr(rr->str, ":sbt1.sealed-token-text"));
  freeReplyObject(rr);
}

static void refused_while_down_reloaded_after_restart(void **state) {
  fx_t *f = *state;
  two_nodes(f);
  sw_server_t *A = &f->n[0].srv, *B = &f->n[1].srv;
  result_t r = {0};
  shared_app_create(A, make_app("before"), on_app, &r);
  run_until_done(f, &r);
  assert_int_equal(r.err.code, 0);
  rh_kill(&f->redis, SIGKILL);
  rh_run_for(&f->loop, 300);
  result_t down = {0};
  shared_app_create(A, make_app("during"), on_app, &down);
  run_until_done(f, &down);
  assert_int_equal(down.err.code, 50004);
  assert_null(apps_find(&A->apps, "during"));
  rh_start(&f->redis); /* appendonly: "before" survived */
  /* Written behind the nodes' backs: only a full load finds it. */
  redisReply *rr = raw(f, "SET {app:late}:spec %s",
                       "{\"id\":\"late\",\"keys\":[{\"id\":\"k\",\"secret\":\"late-secret-123\"}]}");
  freeReplyObject(rr);
  rr = raw(f, "SADD {sw}:apps late");
  freeReplyObject(rr);
  /* Incomplete keys: each node would make up different secrets; refused. */
  rr = raw(f, "SET {app:bad}:spec %s", "{\"id\":\"bad\",\"keys\":[{\"id\":\"k\"}]}");
  freeReplyObject(rr);
  rr = raw(f, "SADD {sw}:apps bad");
  freeReplyObject(rr);
  find_t qa = {A, "late"}, qb = {B, "late"}, qbefore = {B, "before"};
  assert_true(wait_for(f, app_present, &qa, 10000));
  assert_true(wait_for(f, app_present, &qb, 10000));
  assert_true(app_present(&qbefore));
  assert_null(apps_find(&A->apps, "bad"));
  assert_null(apps_find(&B->apps, "bad"));
  sw_state_redis_stats_t st;
  state_redis_stats(B, &st);
  assert_true(st.loaded);
  assert_true(st.reloads >= 2);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(one_secret_and_one_dev_app, setup, teardown),
      cmocka_unit_test_setup_teardown(apps_created_and_deleted_through_either_node, setup, teardown),
      cmocka_unit_test_setup_teardown(revocations_announced_and_merged, setup, teardown),
      cmocka_unit_test_setup_teardown(nonce_claimed_once_across_nodes, setup, teardown),
      cmocka_unit_test_setup_teardown(stored_token_replicated, setup, teardown),
      cmocka_unit_test_setup_teardown(refused_while_down_reloaded_after_restart, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
