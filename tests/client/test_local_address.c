/* test_local_address.c: sw_options_t.local_address against the real server.
 * A client bound to 127.0.0.x connects, and the server's side of the
 * connection (found in the kernel's socket table, /proc/net/tcp, by the
 * server's port and the client's port) has 127.0.0.x as its peer; REST
 * works through the bound address too. An address of the other family, one
 * this machine does not have, and one that is not numeric are refused with
 * the errors the header documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "harness.h"

/* True when /proc/net/tcp holds an established socket whose local end is
 * 127.0.0.1:server_port and whose remote end is peer:peer_port: the
 * server's accepted connection, as the kernel sees it. */
static bool server_sees_peer(int server_port, const struct sockaddr_in *peer) {
  FILE *f = fopen("/proc/net/tcp", "r");
  if (!f) return false;
  char local[32], remote[32], line[512];
  /* The kernel prints the address as the raw 32-bit value in hex (host
   * order on the machine that prints it) and the port in plain hex. */
  snprintf(local, sizeof local, "%08X:%04X", (unsigned)htonl(INADDR_LOOPBACK), (unsigned)server_port);
  snprintf(remote, sizeof remote, "%08X:%04X", (unsigned)peer->sin_addr.s_addr, (unsigned)ntohs(peer->sin_port));
  /* htonl(INADDR_LOOPBACK) is the raw value of 127.0.0.1, as s_addr is. */
  bool found = false;
  while (!found && fgets(line, sizeof line, f)) {
    char l[64], r[64];
    unsigned st;
    if (sscanf(line, " %*d: %63s %63s %x", l, r, &st) == 3)
      found = strcmp(l, local) == 0 && strcmp(r, remote) == 0 && st == 1 /* TCP_ESTABLISHED */;
  }
  fclose(f);
  return found;
}

typedef struct time_wait {
  bool done;
  sw_errinfo_t err;
} time_wait_t;

static void on_time(sw_client_t *c, const sw_errinfo_t *err, int64_t t, void *ud) {
  time_wait_t *w = ud;
  (void)c, (void)t;
  w->done = true;
  if (err) w->err = *err;
}

static void connect_from(void **state, const char *src) {
  tctx_t t;
  tctx_init(&t, *state, NULL);
  sw_options_t o;
  tctx_options(&t, &o, SW_FORMAT_MSGPACK);
  o.local_address = src;
  state_log_t log = {0};
  sw_client_t *c = tconnect(&t, &o, &log);

  struct sockaddr_in me;
  socklen_t len = sizeof me;
  assert_int_equal(getsockname(sw_client_fileno(c), (struct sockaddr *)&me, &len), 0);
  char ip[INET_ADDRSTRLEN];
  assert_non_null(inet_ntop(AF_INET, &me.sin_addr, ip, sizeof ip));
  assert_string_equal(ip, src);
  assert_true(server_sees_peer(t.env->srv.port, &me));

  time_wait_t w = {0};
  assert_int_equal(sw_time(c, on_time, &w), 0);
  assert_true(run_until(&t.loop, &w.done, 5000));
  assert_int_equal(w.err.code, 0);
  tclose(&t, c, &log);
  tctx_done(&t);
}

static void test_bound_source(void **state) {
  connect_from(state, "127.0.0.7");
  connect_from(state, "127.0.0.251");
}

/* Without the option the source is the kernel's choice, 127.0.0.1 here:
 * the check above is not satisfied by default behaviour. */
static void test_default_source(void **state) {
  tctx_t t;
  tctx_init(&t, *state, NULL);
  sw_options_t o;
  tctx_options(&t, &o, SW_FORMAT_MSGPACK);
  state_log_t log = {0};
  sw_client_t *c = tconnect(&t, &o, &log);
  struct sockaddr_in me;
  socklen_t len = sizeof me;
  assert_int_equal(getsockname(sw_client_fileno(c), (struct sockaddr *)&me, &len), 0);
  assert_int_equal(ntohl(me.sin_addr.s_addr), INADDR_LOOPBACK);
  assert_true(server_sees_peer(t.env->srv.port, &me));
  tclose(&t, c, &log);
  tctx_done(&t);
}

static bool disconnected(void *arg) {
  const state_log_t *l = arg;
  for (int i = 0; i < l->n; i++)
    if (l->states[i] == SW_CONN_DISCONNECTED) return true;
  return false;
}

/* A connection attempt that cannot start from src: DISCONNECTED with 80000
 * and reason text containing what. */
static void refused_from(void **state, const char *src, const char *what) {
  tctx_t t;
  tctx_init(&t, *state, NULL);
  sw_options_t o;
  tctx_options(&t, &o, SW_FORMAT_MSGPACK);
  o.local_address = src;
  state_log_t log = {0};
  sw_client_t *c = tclient(&t, &o, &log);
  assert_true(run_until_fn(&t.loop, disconnected, &log, 5000));
  assert_false(log.connected);
  const sw_errinfo_t *e = sw_client_error_reason(c);
  assert_non_null(e);
  assert_int_equal(e->code, SW_ERR_CONNECTION_FAILED);
  if (!strstr(e->message, what)) fail_msg("reason \"%s\" lacks \"%s\"", e->message, what);
  sw_client_free(c);
  tctx_done(&t);
}

static void test_unusable_source(void **state) {
  /* TEST-NET-1: not an address of this machine. */
  refused_from(state, "192.0.2.1", "address not available");
  /* IPv6 source, IPv4 server. */
  refused_from(state, "::1", "address family not supported");
}

static void test_invalid_option(void **state) {
  test_env_t *env = *state;
  sw_options_t o;
  test_options(&o, &env->srv, NULL, SW_FORMAT_JSON);
  o.key = "a.b:secretsecret";
  sw_client_t *c = NULL;
  sw_errinfo_t err = {0};
  const char *bad[] = {"localhost", "127.0.0.1:80", "", "1.2.3"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    o.local_address = bad[i];
    assert_int_equal(sw_client_new(&o, &c, &err), SW_EINVAL);
    assert_null(c);
    assert_int_equal(err.code, 40000);
  }
  o.local_address = "::1";
  assert_int_equal(sw_client_new(&o, &c, &err), 0);
  sw_client_free(c);
}

int main(int argc, char **argv) {
  test_env_t env = {.bin = TEST_SERVER_BIN(argc, argv)};
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_prestate(test_bound_source, &env),
      cmocka_unit_test_prestate(test_default_source, &env),
      cmocka_unit_test_prestate(test_unusable_source, &env),
      cmocka_unit_test_prestate(test_invalid_option, &env),
  };
  return run_with_server(tests, &env, NULL);
}
