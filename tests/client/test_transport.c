/* test_transport.c: white-box tests of the TCP transport (client/
 * transport_tcp.c) against real loopback listeners: numeric IPv4 and IPv6
 * hosts connect without the resolver, names go through it, failures are
 * reported from the loop and never from inside open, and the read buffer
 * shared by a thread's connections survives a callback that runs another
 * loop on the same thread, and a thread's buffer goes with the thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "harness.h"
#include "internal.h"

/* ---- a listener that accepts one connection ---- */

typedef struct listener {
  uv_tcp_t server;
  uv_tcp_t peer; /* the accepted connection */
  bool accepted;
  int port;
} listener_t;

static void on_peer(uv_stream_t *server, int status) {
  listener_t *l = server->data;
  assert_int_equal(status, 0);
  uv_tcp_init(server->loop, &l->peer);
  assert_int_equal(uv_accept(server, (uv_stream_t *)&l->peer), 0);
  l->accepted = true;
}

/* Listens on ip:0; false when the address is not available (no IPv6). */
static bool listen_on(uv_loop_t *loop, listener_t *l, const char *ip) {
  memset(l, 0, sizeof *l);
  struct sockaddr_storage ss;
  if (uv_ip4_addr(ip, 0, (struct sockaddr_in *)&ss) && uv_ip6_addr(ip, 0, (struct sockaddr_in6 *)&ss)) return false;
  uv_tcp_init(loop, &l->server);
  l->server.data = l;
  if (uv_tcp_bind(&l->server, (struct sockaddr *)&ss, 0) || uv_listen((uv_stream_t *)&l->server, 8, on_peer)) {
    uv_close((uv_handle_t *)&l->server, NULL);
    return false;
  }
  struct sockaddr_storage bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&l->server, (struct sockaddr *)&bound, &len);
  l->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                              : ((struct sockaddr_in *)&bound)->sin_port);
  return true;
}

static void listener_close(listener_t *l) {
  if (l->accepted) uv_close((uv_handle_t *)&l->peer, NULL);
  uv_close((uv_handle_t *)&l->server, NULL);
}

/* Writes bytes from the accepted side; loopback takes them at once. */
static void peer_send(listener_t *l, const void *p, size_t n) {
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
  assert_int_equal(uv_try_write((uv_stream_t *)&l->peer, &b, 1), (int)n);
}

/* ---- a transport that records what happens ---- */

typedef struct conn {
  swc_transport_t *t;
  bool connect_done;
  int connect_status;
  bool closed;
  uint8_t got[256];
  size_t n_got;
  /* When set: the first data callback runs this other loop until its
   * connection has received data, then checks its own bytes. */
  struct nested *nested;
} conn_t;

typedef struct nested {
  uv_loop_t *loop;
  listener_t *l;
  conn_t *c;
  bool ran;
  bool intact;
} nested_t;

static void c_on_connect(void *ud, int status) {
  conn_t *c = ud;
  c->connect_done = true;
  c->connect_status = status;
}

static bool got_n(void *arg);

static void c_on_data(void *ud, const uint8_t *p, size_t n) {
  conn_t *c = ud;
  nested_t *x = c->nested;
  if (x && !x->ran) {
    /* The other loop's connection reads while our bytes are still in use. */
    x->ran = true;
    uint8_t before[64];
    size_t k = n < sizeof before ? n : sizeof before;
    memcpy(before, p, k);
    peer_send(x->l, "BBBBBBBBBBBBBBBB", 16);
    assert_true(run_until_fn(x->loop, got_n, x->c, 5000));
    x->intact = memcmp(p, before, k) == 0;
  }
  if (c->n_got + n <= sizeof c->got) {
    memcpy(c->got + c->n_got, p, n);
    c->n_got += n;
  }
}

static void c_on_close(void *ud, int status) {
  conn_t *c = ud;
  (void)status;
  c->closed = true;
}

static const swc_transport_cbs_t cbs = {.on_connect = c_on_connect, .on_data = c_on_data, .on_close = c_on_close};

static bool got_n(void *arg) {
  conn_t *c = arg;
  return c->n_got >= 16;
}

/* Connects to host, then receives what the listener sends. */
static void connect_and_receive(const char *listen_ip, const char *host) {
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  listener_t l;
  if (!listen_on(&loop, &l, listen_ip)) {
    uv_loop_close(&loop);
    print_message("no %s on this machine: skipped\n", listen_ip);
    return;
  }
  conn_t c = {0};
  c.t = swc_tcp_open(&loop, &(swc_endpoint_t){.host = host, .port = l.port}, &cbs, &c);
  assert_non_null(c.t);
  assert_false(c.connect_done); /* never from inside open */
  assert_true(run_until(&loop, &c.connect_done, 5000));
  assert_int_equal(c.connect_status, 0);
  assert_true(run_until(&loop, &l.accepted, 5000));
  peer_send(&l, "0123456789abcdef", 16);
  assert_true(run_until_fn(&loop, got_n, &c, 5000));
  assert_memory_equal(c.got, "0123456789abcdef", 16);
  c.t->ops->close(c.t);
  listener_close(&l);
  while (uv_run(&loop, UV_RUN_NOWAIT)) {
  }
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_numeric_ipv4(void **state) {
  (void)state;
  connect_and_receive("127.0.0.1", "127.0.0.1");
}

static void test_numeric_ipv6(void **state) {
  (void)state;
  connect_and_receive("::1", "::1");
}

static void test_name_resolved(void **state) {
  (void)state;
  /* localhost may resolve to ::1 first: the transport tries each address. */
  connect_and_receive("127.0.0.1", "localhost");
}

/* A numeric address with nothing listening: refused, reported from the loop. */
static void test_numeric_refused(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  listener_t l;
  assert_true(listen_on(&loop, &l, "127.0.0.1"));
  int port = l.port;
  listener_close(&l);
  while (uv_run(&loop, UV_RUN_NOWAIT)) {
  }
  conn_t c = {0};
  c.t = swc_tcp_open(&loop, &(swc_endpoint_t){.host = "127.0.0.1", .port = port}, &cbs, &c);
  assert_non_null(c.t);
  assert_false(c.connect_done);
  assert_true(run_until(&loop, &c.connect_done, 5000));
  /* The socket's own error, not the poll's (libuv reports POLLERR as EBADF). */
  assert_int_equal(c.connect_status, UV_ECONNREFUSED);
  c.t->ops->close(c.t);
  while (uv_run(&loop, UV_RUN_NOWAIT)) {
  }
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* A thread of its own gets its own read buffer, freed when the thread ends
 * (LeakSanitizer, in the sanitizer build, checks that). */
static void *thread_body(void *arg) {
  (void)arg;
  connect_and_receive("127.0.0.1", "127.0.0.1");
  return NULL;
}

static void test_other_thread(void **state) {
  (void)state;
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, thread_body, NULL), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
}

/* A callback of a connection on loop A runs loop B on the same thread (as
 * sw_client_run_for on another client would), and B's connection reads: the
 * bytes A is still handling must not be overwritten. */
static void test_nested_loop_read(void **state) {
  (void)state;
  uv_loop_t la, lb;
  assert_int_equal(uv_loop_init(&la), 0);
  assert_int_equal(uv_loop_init(&lb), 0);
  listener_t l_a, l_b;
  assert_true(listen_on(&la, &l_a, "127.0.0.1"));
  assert_true(listen_on(&lb, &l_b, "127.0.0.1"));
  conn_t b = {0};
  b.t = swc_tcp_open(&lb, &(swc_endpoint_t){.host = "127.0.0.1", .port = l_b.port}, &cbs, &b);
  assert_true(run_until(&lb, &b.connect_done, 5000));
  assert_true(run_until(&lb, &l_b.accepted, 5000));
  nested_t x = {.loop = &lb, .l = &l_b, .c = &b};
  conn_t a = {.nested = &x};
  a.t = swc_tcp_open(&la, &(swc_endpoint_t){.host = "127.0.0.1", .port = l_a.port}, &cbs, &a);
  assert_true(run_until(&la, &a.connect_done, 5000));
  assert_true(run_until(&la, &l_a.accepted, 5000));
  peer_send(&l_a, "AAAAAAAAAAAAAAAA", 16);
  assert_true(run_until_fn(&la, got_n, &a, 5000));
  assert_true(x.ran);
  assert_true(x.intact);
  assert_memory_equal(a.got, "AAAAAAAAAAAAAAAA", 16);
  assert_memory_equal(b.got, "BBBBBBBBBBBBBBBB", 16);
  a.t->ops->close(a.t);
  b.t->ops->close(b.t);
  listener_close(&l_a);
  listener_close(&l_b);
  while (uv_run(&la, UV_RUN_NOWAIT) | uv_run(&lb, UV_RUN_NOWAIT)) {
  }
  assert_int_equal(uv_loop_close(&la), 0);
  assert_int_equal(uv_loop_close(&lb), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_numeric_ipv4),
      cmocka_unit_test(test_numeric_ipv6),
      cmocka_unit_test(test_name_resolved),
      cmocka_unit_test(test_numeric_refused),
      cmocka_unit_test(test_nested_loop_read),
      cmocka_unit_test(test_other_thread),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
