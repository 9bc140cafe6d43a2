/* test_tls.c: sw_options_t.tls against the real server, both directly
 * (switchboard's own TLS listener: --tls-cert/--tls-key) and behind a real
 * TLS proxy (tls_proxy.mjs, Node's tls module, for what one listener cannot
 * show: a second certificate, the SNI sent), with a throwaway CA and two
 * server certificates the proxy makes with the openssl command line in a
 * temporary directory: "good" (DNS:localhost, IP:127.0.0.1) and "other"
 * (DNS:other.invalid), both signed by the CA, plus a second, unrelated CA.
 * The direct server serves "good", with basicOverHttp "deny": the client's
 * key (Basic) is accepted because the connection is TLS (RSA1).
 *
 * Checked: publish/subscribe/history/time in JSON and msgpack over wss:// and
 * https://; SNI and hostname verification for a name and for an IP literal;
 * a resume after the socket is cut; in-band token renewal; and refusals with
 * a clear reason: the wrong CA, the system store (which does not trust the
 * test CA), a name or an IP the certificate does not carry, TLS to a plain
 * port. The proxy speaks only TLS, so a connection that works went through
 * it encrypted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#ifndef SWC_TESTS_DIR
#define SWC_TESTS_DIR "tests/client"
#endif

typedef struct tls_env {
  test_env_t env; /* first: the harness's tctx_init takes a test_env_t * */
  char dir[64];   /* certificates, keys, sni.log */
  char ca[128], ca2[128];
  pid_t proxy;
  int proxy_stdin;
  int good, other; /* the proxy's ports */
  test_server_t direct; /* switchboard with --tls-cert good.pem (config), its app's key DIRECT_KEY */
} tls_env_t;

#define DIRECT_KEY "tlsapp.k:direct-secret-1234"

/* Where a test connects: the proxy's "good" port, or the TLS listener. */
static int good_port(const tls_env_t *e, bool direct) { return direct ? e->direct.port : e->good; }

/* Starts the proxy and reads its ports. */
static int proxy_start(tls_env_t *e) {
  int in[2], out[2];
  if (pipe(in) || pipe(out)) return -1;
  char upstream[16];
  snprintf(upstream, sizeof upstream, "%d", e->env.srv.port);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[1]);
    close(out[0]);
    execlp("node", "node", SWC_TESTS_DIR "/tls_proxy.mjs", e->dir, upstream, (char *)NULL);
    perror("node");
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  e->proxy = pid;
  e->proxy_stdin = in[1];
  char line[256];
  size_t n = 0;
  while (n < sizeof line - 1 && !memchr(line, '\n', n)) {
    struct pollfd p = {.fd = out[0], .events = POLLIN};
    if (poll(&p, 1, 15000) <= 0) break;
    ssize_t k = read(out[0], line + n, sizeof line - 1 - n);
    if (k <= 0) break;
    n += (size_t)k;
  }
  close(out[0]);
  line[n] = 0;
  json_t *j = json_loads(line, 0, NULL);
  e->good = (int)json_integer_value(json_object_get(j, "good"));
  e->other = (int)json_integer_value(json_object_get(j, "other"));
  json_decref(j);
  return e->good > 0 && e->other > 0 ? 0 : -1;
}

static void proxy_stop(tls_env_t *e) {
  if (e->proxy <= 0) return;
  close(e->proxy_stdin);
  kill(e->proxy, SIGTERM);
  waitpid(e->proxy, NULL, 0);
  e->proxy = 0;
}

static void tls_options(sw_options_t *o, tctx_t *t, tls_env_t *e, const char *host, int port, int format) {
  tctx_options(t, o, format);
  o->host = host;
  o->port = port;
  o->tls = true;
  o->tls_ca_file = e->ca;
}

static void assert_through_proxy(sw_client_t *c, int port) {
  struct sockaddr_storage peer;
  socklen_t len = sizeof peer;
  assert_int_equal(getpeername(sw_client_fileno(c), (struct sockaddr *)&peer, &len), 0);
  int got = ntohs(peer.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&peer)->sin6_port
                                             : ((struct sockaddr_in *)&peer)->sin_port);
  assert_int_equal(got, port);
}

typedef struct rest_wait {
  bool done;
  sw_errinfo_t err;
  size_t count;
} rest_wait_t;

static void on_time(sw_client_t *c, const sw_errinfo_t *err, int64_t t, void *ud) {
  rest_wait_t *w = ud;
  (void)c;
  w->done = true;
  if (err) w->err = *err;
  else assert_true(t > 0);
}

static void on_page(sw_client_t *c, const sw_errinfo_t *err, sw_history_page_t *pg, void *ud) {
  rest_wait_t *w = ud;
  (void)c;
  w->done = true;
  if (err) w->err = *err;
  w->count = sw_history_page_count(pg);
  sw_history_page_free(pg);
}

/* Subscribes, publishes three messages, receives them; then REST. */
static void pubsub_over_tls(void **state, const char *host, int format, bool direct) {
  tls_env_t *e = *state;
  tctx_t t;
  tctx_init(&t, &e->env, NULL);
  sw_options_t o;
  tls_options(&o, &t, e, host, good_port(e, direct), format);
  if (direct) o.key = DIRECT_KEY;
  state_log_t log = {0};
  sw_client_t *c = tclient(&t, &o, &log);
  assert_true(run_until(&t.loop, &log.connected, 10000));
  assert_through_proxy(c, good_port(e, direct));
  char name[32];
  snprintf(name, sizeof name, "tls:chat-%d-%d", format, direct); /* the direct server's app is shared */
  sw_channel_t *ch = sw_client_channel(c, name);
  recv_log_t r = {.msgs = json_array()};
  assert_true(sw_channel_subscribe(ch, NULL, recv_cb, &r) > 0);
  ack_log_t a = {.serials = json_array()};
  for (int i = 0; i < 3; i++) {
    char data[16];
    snprintf(data, sizeof data, "m%06d", i);
    assert_int_equal(sw_channel_publish(ch, "n", data, ack_cb, &a), 0);
  }
  assert_true(wait_received(&t.loop, &r, 3, 10000));
  run_for(&t.loop, 100);
  assert_int_equal(a.acked, 3);
  assert_sequence(&r, 3);

  rest_wait_t tw = {0};
  assert_int_equal(sw_time(c, on_time, &tw), 0);
  assert_true(run_until(&t.loop, &tw.done, 10000));
  assert_int_equal(tw.err.code, 0);
  rest_wait_t hw = {0};
  assert_int_equal(sw_channel_history(ch, NULL, on_page, &hw), 0);
  assert_true(run_until(&t.loop, &hw.done, 10000));
  assert_int_equal(hw.err.code, 0);
  assert_int_equal(hw.count, 3);

  json_decref(r.msgs);
  json_decref(a.serials);
  tclose(&t, c, &log);
  assert_true(log.closed);
  tctx_done(&t);
}

static void test_pubsub_json_ip(void **state) {
  pubsub_over_tls(state, "127.0.0.1", SW_FORMAT_JSON, false);
}

/* switchboard's own TLS listener, JSON and msgpack, by IP and by name. */
static void test_direct_pubsub(void **state) {
  pubsub_over_tls(state, "127.0.0.1", SW_FORMAT_JSON, true);
  pubsub_over_tls(state, "localhost", SW_FORMAT_MSGPACK, true);
}

static bool sni_seen(tls_env_t *e, const char *name) {
  char path[128], line[256];
  snprintf(path, sizeof path, "%s/sni.log", e->dir);
  FILE *f = fopen(path, "r");
  bool found = false;
  while (f && !found && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    found = strcmp(line, name) == 0;
  }
  if (f) fclose(f);
  return found;
}

/* A name: resolved, verified against the DNS names, sent as SNI. */
static void test_pubsub_msgpack_name(void **state) {
  tls_env_t *e = *state;
  assert_false(sni_seen(e, "localhost"));
  pubsub_over_tls(state, "localhost", SW_FORMAT_MSGPACK, false);
  assert_true(sni_seen(e, "localhost"));
}

static bool disconnected(void *arg) {
  const state_log_t *l = arg;
  for (int i = 0; i < l->n; i++)
    if (l->states[i] == SW_CONN_DISCONNECTED) return true;
  return false;
}

/* A connection attempt refused: DISCONNECTED with 80000, never CONNECTED,
 * and a reason containing each of the what[] strings. */
static void refused(void **state, const char *host, int port, const char *ca, bool tls, const char *const *what) {
  tls_env_t *e = *state;
  tctx_t t;
  tctx_init(&t, &e->env, NULL);
  sw_options_t o;
  tls_options(&o, &t, e, host, port, SW_FORMAT_MSGPACK);
  o.tls = tls;
  o.tls_ca_file = tls ? ca : NULL;
  state_log_t log = {0};
  sw_client_t *c = tclient(&t, &o, &log);
  assert_true(run_until_fn(&t.loop, disconnected, &log, 10000));
  assert_int_equal(log.connected_count, 0);
  const sw_errinfo_t *err = sw_client_error_reason(c);
  assert_non_null(err);
  print_message("%s:%d refused: %d %s\n", host, port, err->code, err->message);
  for (int i = 0; what[i]; i++)
    if (!strstr(err->message, what[i])) fail_msg("reason \"%s\" lacks \"%s\"", err->message, what[i]);
  sw_client_free(c);
  tctx_done(&t);
}

static void test_wrong_ca(void **state) {
  tls_env_t *e = *state;
  for (int direct = 0; direct < 2; direct++)
    refused(state, "127.0.0.1", good_port(e, direct), e->ca2, true,
            (const char *[]){"failed: TLS certificate verify failed: unable to get local issuer certificate", NULL});
}

/* Verification is on without tls_ca_file too: the system store does not
 * know the test CA. */
static void test_system_store_refuses(void **state) {
  tls_env_t *e = *state;
  refused(state, "127.0.0.1", e->good, NULL, true, (const char *[]){"TLS certificate verify failed", NULL});
}

static void test_wrong_name(void **state) {
  tls_env_t *e = *state;
  /* "other" is signed by the trusted CA, but for other.invalid. */
  refused(state, "localhost", e->other, e->ca, true,
          (const char *[]){"TLS certificate verify failed: hostname mismatch", NULL});
  refused(state, "127.0.0.1", e->other, e->ca, true,
          (const char *[]){"TLS certificate verify failed: IP address mismatch", NULL});
}

/* TLS to switchboard's plain port: a TLS error, not a hang. */
static void test_tls_to_plain_port(void **state) {
  tls_env_t *e = *state;
  refused(state, "127.0.0.1", e->env.srv.port, e->ca, true, (const char *[]){"TLS error", NULL});
}

static void test_options_checked(void **state) {
  tls_env_t *e = *state;
  sw_options_t o;
  test_options(&o, &e->env.srv, NULL, SW_FORMAT_JSON);
  o.key = "a.b:secretsecret";
  sw_client_t *c = NULL;
  sw_errinfo_t err = {0};
  o.tls_ca_file = e->ca; /* without tls */
  assert_int_equal(sw_client_new(&o, &c, &err), SW_EINVAL);
  assert_int_equal(err.code, 40000);
  o.tls = true;
  o.tls_ca_file = "/nonexistent/ca.pem";
  assert_int_equal(sw_client_new(&o, &c, &err), SW_EINVAL);
  assert_int_equal(err.code, 40000);
  assert_non_null(strstr(err.message, "cannot load tls_ca_file"));
  assert_null(c);
  o.tls_ca_file = e->ca;
  assert_int_equal(sw_client_new(&o, &c, &err), 0);
  sw_client_free(c);
}

/* The socket under TLS is cut while messages flow: the client resumes over
 * a new TLS connection and nothing is lost or duplicated. */
static void resume(void **state, bool direct) {
  tls_env_t *e = *state;
  tctx_t t;
  tctx_init(&t, &e->env, NULL);
  sw_options_t o;
  tls_options(&o, &t, e, "127.0.0.1", good_port(e, direct), SW_FORMAT_MSGPACK);
  if (direct) o.key = DIRECT_KEY;
  state_log_t ls = {0}, lp = {0};
  sw_client_t *sub = tclient(&t, &o, &ls);
  sw_client_t *pub = tclient(&t, &o, &lp);
  assert_true(run_until(&t.loop, &ls.connected, 10000));
  assert_true(run_until(&t.loop, &lp.connected, 10000));
  char *sub_id = strdup(sw_client_connection_id(sub));
  sw_channel_t *sch = sw_client_channel(sub, "tls:resume");
  recv_log_t r = {0};
  assert_true(sw_channel_subscribe(sch, NULL, recv_cb, &r) > 0);
  done_log_t d = {0};
  assert_int_equal(sw_channel_attach(sch, done_cb, &d), 0);
  assert_true(run_until(&t.loop, &d.done, 10000));

  const int total = 300;
  flow_t f;
  flow_start(&f, &t.loop, sw_client_channel(pub, "tls:resume"), total, 5, 10);
  assert_true(wait_received(&t.loop, &r, 100, 10000));
  assert_int_equal(shutdown(sw_client_fileno(sub), SHUT_RDWR), 0);
  assert_int_equal(shutdown(sw_client_fileno(pub), SHUT_RDWR), 0);
  assert_true(wait_received(&t.loop, &r, (size_t)total, 20000));
  run_for(&t.loop, 300);
  assert_int_equal(f.acks.acked, total);
  assert_sequence(&r, total);
  assert_true(ls.resumed_count >= 1);
  assert_true(lp.resumed_count >= 1);
  assert_string_equal(sw_client_connection_id(sub), sub_id);
  assert_through_proxy(sub, good_port(e, direct));
  free(sub_id);
  flow_stop(&f);
  json_decref(r.msgs);
  tclose(&t, pub, &lp);
  tclose(&t, sub, &ls);
  tctx_done(&t);
}

/* Tokens of 4 s from an auth callback: the SDK renews before expiry (the
 * server does not ask for so short a token) and the new token goes in-band
 * (AUTH) over the TLS connection. */
typedef struct auth_ctx {
  const char *key;
  int calls;
} auth_ctx_t;

static void auth_cb(sw_client_t *c, sw_auth_request_t *req, void *ud) {
  auth_ctx_t *a = ud;
  (void)c;
  a->calls++;
  sw_token_params_t p = {.ttl_ms = 4000};
  char *jwt = NULL;
  assert_int_equal(sw_jwt_create(a->key, &p, &jwt, NULL), 0);
  assert_int_equal(sw_auth_complete(req, jwt, NULL), 0);
  free(jwt);
}

static void test_resume(void **state) { resume(state, false); }
static void test_direct_resume(void **state) { resume(state, true); }

static bool renewed_twice(void *arg) {
  const state_log_t *l = arg;
  return l->update_count >= 2;
}

static void token_renewal(void **state, bool direct) {
  tls_env_t *e = *state;
  tctx_t t;
  tctx_init(&t, &e->env, NULL);
  sw_options_t o;
  tls_options(&o, &t, e, "127.0.0.1", good_port(e, direct), SW_FORMAT_JSON);
  auth_ctx_t a = {.key = direct ? DIRECT_KEY : t.key};
  o.key = NULL;
  o.auth_cb = auth_cb;
  o.auth_ud = &a;
  state_log_t log = {0};
  sw_client_t *c = tclient(&t, &o, &log);
  assert_true(run_until(&t.loop, &log.connected, 10000));
  char *id = strdup(sw_client_connection_id(c));
  assert_true(run_until_fn(&t.loop, renewed_twice, &log, 15000));
  assert_true(a.calls >= 3);
  assert_int_equal(log.connected_count, 1); /* renewed in-band, never reconnected */
  assert_string_equal(sw_client_connection_id(c), id);
  /* REST with the renewed token (Bearer), over https. */
  rest_wait_t hw = {0};
  assert_int_equal(sw_channel_history(sw_client_channel(c, "tls:renew"), NULL, on_page, &hw), 0);
  assert_true(run_until(&t.loop, &hw.done, 10000));
  assert_int_equal(hw.err.code, 0);
  free(id);
  tclose(&t, c, &log);
  tctx_done(&t);
}

static void test_token_renewal(void **state) { token_renewal(state, false); }

/* SIGTERM: the TLS server's sockets close (close_notify, then FIN) and it
 * exits 0. */
static void test_direct_shutdown(void **state) {
  tls_env_t *e = *state;
  assert_int_equal(server_stop(&e->direct), 0);
}
static void test_direct_token_renewal(void **state) { token_renewal(state, true); }

/* Hooks around the shared server: the proxy needs its port; the direct TLS
 * server needs the certificate the proxy makes. */
static int proxy_after_start(void *ud) {
  tls_env_t *e = ud;
  if (proxy_start(e)) {
    fprintf(stderr, "could not start the TLS proxy (node %s/tls_proxy.mjs; it needs the openssl command)\n",
            SWC_TESTS_DIR);
    return -1;
  }
  char cfg[512];
  snprintf(cfg, sizeof cfg,
           "{\"tls\":{\"cert\":\"%s/good.pem\",\"key\":\"%s/good.key\"},\"auth\":{\"basicOverHttp\":\"deny\"},"
           "\"apps\":[{\"id\":\"tlsapp\",\"keys\":[{\"id\":\"k\",\"secret\":\"direct-secret-1234\"}]}]}",
           e->dir, e->dir);
  if (server_start_config(e->env.bin, cfg, &e->direct) == 0) return 0;
  fprintf(stderr, "could not start switchboard with --tls-cert\n");
  return -1;
}

static void proxy_before_stop(void *ud) {
  tls_env_t *e = ud;
  proxy_stop(e);
  if (e->direct.pid > 0) server_stop(&e->direct); /* test_direct_shutdown did not run */
}

int main(int argc, char **argv) {
  tls_env_t e = {.env = {.bin = TEST_SERVER_BIN(argc, argv)}};
  snprintf(e.dir, sizeof e.dir, "/tmp/sw-tls-XXXXXX");
  if (!mkdtemp(e.dir)) {
    perror("mkdtemp");
    return 1;
  }
  snprintf(e.ca, sizeof e.ca, "%s/ca.pem", e.dir);
  snprintf(e.ca2, sizeof e.ca2, "%s/ca2.pem", e.dir);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_prestate(test_pubsub_json_ip, &e),
      cmocka_unit_test_prestate(test_pubsub_msgpack_name, &e),
      cmocka_unit_test_prestate(test_wrong_ca, &e),
      cmocka_unit_test_prestate(test_system_store_refuses, &e),
      cmocka_unit_test_prestate(test_wrong_name, &e),
      cmocka_unit_test_prestate(test_tls_to_plain_port, &e),
      cmocka_unit_test_prestate(test_options_checked, &e),
      cmocka_unit_test_prestate(test_resume, &e),
      cmocka_unit_test_prestate(test_token_renewal, &e),
      cmocka_unit_test_prestate(test_direct_pubsub, &e),
      cmocka_unit_test_prestate(test_direct_resume, &e),
      cmocka_unit_test_prestate(test_direct_token_renewal, &e),
      cmocka_unit_test_prestate(test_direct_shutdown, &e),
  };
  server_hooks_t hooks = {.after_start = proxy_after_start, .before_stop = proxy_before_stop, .ud = &e};
  int failed = run_with_server(tests, &e.env, &hooks);
  char rm[128];
  snprintf(rm, sizeof rm, "rm -rf '%s'", e.dir);
  if (system(rm) != 0) fprintf(stderr, "could not remove %s\n", e.dir);
  return failed;
}
