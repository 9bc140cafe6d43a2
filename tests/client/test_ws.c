/* test_ws.c: white-box tests of the WebSocket client (client/ws.c) against
 * a hand-driven peer on a loopback socket, which completes the opening
 * handshake and then writes server frames in pieces the test chooses:
 * several frames in one read, frames cut anywhere (inside the header, the
 * payload, right after the handshake response), a message larger than the
 * transport's 64 KiB read buffer, a fragmented message spread over reads,
 * and an owner that lets go from inside on_message while more frames wait
 * in the same read. Every message must arrive whole, once, in order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "harness.h"
#include "internal.h"
#include "net/ws_frame.h"

/* ---- the peer: accepts one connection and answers the handshake ---- */

typedef struct peer {
  uv_tcp_t server, conn;
  bool accepted;
  int port;
  sw_buf_t request;  /* what the client sent before the handshake ended */
  bool got_request;  /* the whole request head is in */
  sw_buf_t received; /* bytes after the request head (masked client frames) */
} peer_t;

static void p_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)h, (void)hint;
  static char mem[65536];
  *b = uv_buf_init(mem, sizeof mem);
}

static void p_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  peer_t *p = s->data;
  if (n <= 0) return;
  if (p->got_request) {
    assert_int_equal(buf_append(&p->received, b->base, (size_t)n), 0);
    return;
  }
  assert_int_equal(buf_append(&p->request, b->base, (size_t)n), 0);
  assert_int_equal(buf_append_byte(&p->request, 0), 0);
  p->request.len--;
  p->got_request = strstr((const char *)p->request.data, "\r\n\r\n") != NULL;
}

static void p_on_conn(uv_stream_t *server, int status) {
  peer_t *p = server->data;
  assert_int_equal(status, 0);
  uv_tcp_init(server->loop, &p->conn);
  p->conn.data = p;
  assert_int_equal(uv_accept(server, (uv_stream_t *)&p->conn), 0);
  p->accepted = true;
  uv_read_start((uv_stream_t *)&p->conn, p_alloc, p_read);
}

static void peer_listen(uv_loop_t *loop, peer_t *p) {
  memset(p, 0, sizeof *p);
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_init(loop, &p->server);
  p->server.data = p;
  assert_int_equal(uv_tcp_bind(&p->server, (struct sockaddr *)&a, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&p->server, 4, p_on_conn), 0);
  struct sockaddr_in bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&p->server, (struct sockaddr *)&bound, &len);
  p->port = ntohs(bound.sin_port);
}

static void peer_close(peer_t *p) {
  if (p->accepted) uv_close((uv_handle_t *)&p->conn, NULL);
  uv_close((uv_handle_t *)&p->server, NULL);
  buf_free(&p->request);
  buf_free(&p->received);
}

/* Writes everything (blocking until the kernel took it: the client reads
 * concurrently only when the loop runs, so big writes go in steps). */
static void peer_write(uv_loop_t *loop, peer_t *p, const void *data, size_t n) {
  const char *at = data;
  while (n) {
    uv_buf_t b = uv_buf_init((char *)at, (unsigned)(n < 65536 ? n : 65536));
    int w = uv_try_write((uv_stream_t *)&p->conn, &b, 1);
    if (w == UV_EAGAIN) {
      uv_run(loop, UV_RUN_NOWAIT);
      continue;
    }
    assert_true(w > 0);
    at += w;
    n -= (size_t)w;
  }
}

/* The 101 response for the request the peer received. */
static void handshake_response(peer_t *p, sw_buf_t *out) {
  const char *req = (const char *)p->request.data;
  const char *k = strstr(req, "Sec-WebSocket-Key: ");
  assert_non_null(k);
  k += strlen("Sec-WebSocket-Key: ");
  const char *end = strstr(k, "\r\n");
  char cat[128];
  snprintf(cat, sizeof cat, "%.*s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", (int)(end - k), k);
  uint8_t digest[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)cat, strlen(cat), digest);
  char accept[64];
  EVP_EncodeBlock((unsigned char *)accept, digest, sizeof digest);
  assert_int_equal(buf_printf(out,
                              "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Accept: %s\r\n\r\n",
                              accept),
                   0);
}

/* Appends an unmasked server frame. */
static void frame(sw_buf_t *out, bool fin, uint8_t opcode, const void *payload, size_t n) {
  uint8_t hdr[SW_WS_MAX_HEADER];
  size_t hl = ws_frame_header(hdr, fin, opcode, n);
  assert_int_equal(buf_append(out, hdr, hl), 0);
  if (n) assert_int_equal(buf_append(out, payload, n), 0);
}

/* ---- the client side: records what ws.c delivers ---- */

typedef struct got {
  bool text;
  uint8_t *p;
  size_t n;
} got_t;

typedef struct client {
  swc_ws_t *ws;
  bool open, closed;
  int close_code;
  int reads; /* on_activity calls: one per transport read */
  got_t msgs[16];
  int n;
  int close_after; /* let go of ws from inside the n-th message (1-based), 0 never */
  int want;        /* n_msgs: how many messages to wait for */
} client_t;

static void c_open(void *ud) { ((client_t *)ud)->open = true; }

static void c_message(void *ud, bool text, const uint8_t *p, size_t n) {
  client_t *c = ud;
  assert_true(c->n < 16);
  got_t *g = &c->msgs[c->n++];
  g->text = text;
  g->n = n;
  g->p = malloc(n ? n : 1);
  if (n) memcpy(g->p, p, n);
  if (c->close_after == c->n) {
    swc_ws_close(c->ws);
    c->ws = NULL;
  }
}

static void c_activity(void *ud) { ((client_t *)ud)->reads++; }

static void c_close(void *ud, int code) {
  client_t *c = ud;
  c->closed = true;
  c->close_code = code;
}

static const swc_ws_cbs_t c_cbs = {
    .on_open = c_open, .on_message = c_message, .on_activity = c_activity, .on_close = c_close};

typedef struct fixture {
  uv_loop_t loop;
  peer_t peer;
  client_t c;
} fixture_t;

static bool request_in(void *arg) { return ((peer_t *)arg)->got_request; }

/* Connects a client and lets the peer read its handshake request; the
 * response is left to the test. */
static void start(fixture_t *f) {
  memset(f, 0, sizeof *f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  peer_listen(&f->loop, &f->peer);
  swc_endpoint_t ep = {.host = "127.0.0.1", .port = f->peer.port};
  f->c.ws = swc_ws_open(&f->loop, &ep, "/", 1u << 20, &c_cbs, &f->c);
  assert_non_null(f->c.ws);
  assert_true(run_until_fn(&f->loop, request_in, &f->peer, 5000));
}

static void finish_fixture(fixture_t *f) {
  if (f->c.ws) swc_ws_close(f->c.ws);
  peer_close(&f->peer);
  while (uv_run(&f->loop, UV_RUN_NOWAIT)) {
  }
  assert_int_equal(uv_loop_close(&f->loop), 0);
  for (int i = 0; i < f->c.n; i++) free(f->c.msgs[i].p);
}

/* Sends bytes as one write and waits until the client has read them. */
static void send_and_wait(fixture_t *f, const void *p, size_t n) {
  int before = f->c.reads;
  peer_write(&f->loop, &f->peer, p, n);
  uv_run(&f->loop, UV_RUN_NOWAIT);
  for (int i = 0; i < 500 && f->c.reads == before; i++) run_for(&f->loop, 1);
  assert_true(f->c.reads > before);
}

static bool n_msgs(void *arg) {
  client_t *c = arg;
  return c->n >= c->want || c->closed;
}

static void expect_msg(const client_t *c, int i, bool text, const void *p, size_t n) {
  assert_true(i < c->n);
  assert_int_equal(c->msgs[i].text, text);
  assert_int_equal(c->msgs[i].n, n);
  if (n) assert_memory_equal(c->msgs[i].p, p, n);
}

static uint8_t *pattern(size_t n, unsigned seed) {
  uint8_t *p = malloc(n);
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 131 + seed + (i >> 8));
  return p;
}

/* The response and the first frames in one write, then several frames,
 * a ping among them, in one read. */
static void test_frames_in_one_read(void **state) {
  (void)state;
  fixture_t f;
  start(&f);
  sw_buf_t b = {0};
  handshake_response(&f.peer, &b);
  frame(&b, true, SW_WS_OP_TEXT, "first", 5);
  send_and_wait(&f, b.data, b.len);
  assert_true(f.c.open);
  buf_reset(&b);
  frame(&b, true, SW_WS_OP_BINARY, "\x00\x01\x02", 3);
  frame(&b, true, SW_WS_OP_PING, "pi", 2);
  frame(&b, true, SW_WS_OP_TEXT, "", 0);
  frame(&b, true, SW_WS_OP_TEXT, "last", 4);
  send_and_wait(&f, b.data, b.len);
  assert_int_equal(f.c.n, 4);
  expect_msg(&f.c, 0, true, "first", 5);
  expect_msg(&f.c, 1, false, "\x00\x01\x02", 3);
  expect_msg(&f.c, 2, true, "", 0);
  expect_msg(&f.c, 3, true, "last", 4);
  /* The ping was answered: a masked PONG with its payload. */
  sw_ws_frame_t pf;
  for (int i = 0; i < 500 && f.peer.received.len < 8; i++) run_for(&f.loop, 1);
  assert_true(ws_frame_parse(f.peer.received.data, f.peer.received.len, true, 125, &pf) > 0);
  assert_int_equal(pf.opcode, SW_WS_OP_PONG);
  assert_int_equal(pf.payload_len, 2);
  assert_false(f.c.closed);
  buf_free(&b);
  finish_fixture(&f);
}

/* Frames cut everywhere: inside the response, inside a header, inside a
 * payload, and a read holding the end of one frame, a whole one and the
 * start of the next. */
static void test_frames_split_across_reads(void **state) {
  (void)state;
  fixture_t f;
  start(&f);
  sw_buf_t b = {0};
  handshake_response(&f.peer, &b);
  size_t head = b.len;
  uint8_t *big = pattern(300, 1); /* a 16-bit length */
  frame(&b, true, SW_WS_OP_BINARY, big, 300);
  frame(&b, true, SW_WS_OP_TEXT, "middle", 6);
  frame(&b, true, SW_WS_OP_BINARY, big, 200);
  size_t cuts[] = {head - 3, head + 1, head + 3, head + 150, head + 4 + 300 + 3, b.len - 100, b.len};
  size_t from = 0;
  for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
    send_and_wait(&f, b.data + from, cuts[i] - from);
    from = cuts[i];
    if (i == 0) assert_false(f.c.open);
  }
  assert_true(f.c.open);
  assert_int_equal(f.c.n, 3);
  expect_msg(&f.c, 0, false, big, 300);
  expect_msg(&f.c, 1, true, "middle", 6);
  expect_msg(&f.c, 2, false, big, 200);
  assert_false(f.c.closed);
  free(big);
  buf_free(&b);
  finish_fixture(&f);
}

/* A message larger than a read (64-bit length), then a fragmented text
 * message whose fragments and a ping between them arrive over several
 * reads, then a small message in the same read as the last fragment. */
static void test_large_and_fragmented(void **state) {
  (void)state;
  fixture_t f;
  start(&f);
  sw_buf_t b = {0};
  handshake_response(&f.peer, &b);
  send_and_wait(&f, b.data, b.len);
  assert_true(f.c.open);
  buf_reset(&b);
  size_t big_n = 300000;
  uint8_t *big = pattern(big_n, 7);
  frame(&b, true, SW_WS_OP_BINARY, big, big_n);
  f.c.want = 1;
  peer_write(&f.loop, &f.peer, b.data, b.len);
  assert_true(run_until_fn(&f.loop, n_msgs, &f.c, 5000));
  expect_msg(&f.c, 0, false, big, big_n);

  buf_reset(&b);
  frame(&b, false, SW_WS_OP_TEXT, "hel", 3);
  frame(&b, true, SW_WS_OP_PING, "", 0);
  frame(&b, false, SW_WS_OP_CONT, "lo w", 4);
  size_t cut = b.len - 2;
  frame(&b, true, SW_WS_OP_CONT, "orld", 4);
  frame(&b, true, SW_WS_OP_BINARY, "x", 1);
  send_and_wait(&f, b.data, 5);
  send_and_wait(&f, b.data + 5, cut - 5);
  assert_int_equal(f.c.n, 1);
  send_and_wait(&f, b.data + cut, b.len - cut);
  assert_int_equal(f.c.n, 3);
  expect_msg(&f.c, 1, true, "hello world", 11);
  expect_msg(&f.c, 2, false, "x", 1);
  assert_false(f.c.closed);
  free(big);
  buf_free(&b);
  finish_fixture(&f);
}

/* The owner lets go inside on_message: the frames after it in the same
 * read, and any later bytes, are never delivered; nothing is touched after
 * the close (ASan would tell). Also when the frames came from rbuf. */
static void close_inside_callback(bool from_rbuf) {
  fixture_t f;
  start(&f);
  sw_buf_t b = {0};
  handshake_response(&f.peer, &b);
  send_and_wait(&f, b.data, b.len);
  buf_reset(&b);
  frame(&b, true, SW_WS_OP_TEXT, "one", 3);
  frame(&b, true, SW_WS_OP_TEXT, "two", 3);
  frame(&b, true, SW_WS_OP_TEXT, "three", 5);
  f.c.close_after = 2;
  if (from_rbuf) send_and_wait(&f, b.data, 1);
  send_and_wait(&f, b.data + (from_rbuf ? 1 : 0), b.len - (from_rbuf ? 1 : 0));
  assert_int_equal(f.c.n, 2);
  assert_null(f.c.ws);
  run_for(&f.loop, 20);
  assert_int_equal(f.c.n, 2);
  assert_false(f.c.closed); /* no callback after the owner let go */
  buf_free(&b);
  finish_fixture(&f);
}

static void test_close_inside_callback(void **state) {
  (void)state;
  close_inside_callback(false);
  close_inside_callback(true);
}

/* A masked server frame is a protocol error (§5.1), also when it is cut. */
static void test_masked_server_frame(void **state) {
  (void)state;
  fixture_t f;
  start(&f);
  sw_buf_t b = {0};
  handshake_response(&f.peer, &b);
  send_and_wait(&f, b.data, b.len);
  buf_reset(&b);
  const uint8_t mask[4] = {1, 2, 3, 4};
  assert_int_equal(swc_ws_frame_masked(&b, SW_WS_OP_TEXT, (const uint8_t *)"abc", 3, mask), 0);
  send_and_wait(&f, b.data, 1);
  assert_false(f.c.closed);
  send_and_wait(&f, b.data + 1, b.len - 1);
  assert_true(f.c.closed);
  assert_int_equal(f.c.close_code, SWC_WS_PROTOCOL_ERROR);
  assert_int_equal(f.c.n, 0);
  buf_free(&b);
  finish_fixture(&f);
}

int main(int argc, char **argv) {
  (void)argc, (void)argv;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_frames_in_one_read),    cmocka_unit_test(test_frames_split_across_reads),
      cmocka_unit_test(test_large_and_fragmented),  cmocka_unit_test(test_close_inside_callback),
      cmocka_unit_test(test_masked_server_frame),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
