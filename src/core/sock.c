#include "core/sock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conn.h"
#include "core/server.h"
#include "metrics/metrics.h"
#include "net/http_parse.h"
#include "net/http_response.h"
#include "util/log.h"


/* A write request is needed only while a write waits for POLLOUT, which few
 * sockets do at any moment: requests come from a free list in the server
 * instead of taking 192 bytes in every socket. The list keeps at most
 * WREQ_SPARE_MAX, enough for a fan-out whose subscribers all lag at once. */
typedef union sw_wreq {
  uv_write_t req;
  union sw_wreq *next; /* while spare */
} sw_wreq_t;
#define WREQ_SPARE_MAX 256

static uv_write_t *wreq_get(sw_server_t *srv) {
  sw_wreq_t *w = srv->wreq_spare;
  if (w) {
    srv->wreq_spare = w->next;
    srv->n_wreq_spare--;
  } else if (!(w = malloc(sizeof *w))) {
    return NULL;
  }
  return &w->req;
}

static void wreq_put(sw_server_t *srv, uv_write_t *req) {
  sw_wreq_t *w = (sw_wreq_t *)req; /* req is the union's first member */
  if (srv->n_wreq_spare >= WREQ_SPARE_MAX) {
    free(w);
    return;
  }
  w->next = srv->wreq_spare;
  srv->wreq_spare = w;
  srv->n_wreq_spare++;
}

void socks_free_spares(sw_server_t *srv) {
  while (srv->wreq_spare) {
    sw_wreq_t *w = srv->wreq_spare;
    srv->wreq_spare = w->next;
    free(w);
  }
  srv->n_wreq_spare = 0;
}

static void sock_free(sw_sock_t *s) {
  free(s->origin);
  buf_free(&s->in);
  ws_msg_asm_free(&s->wsasm);
  free(s->q);
  free(s);
}

/* Takes s off the server's dirty list, if it is on it. */
static void dirty_unlink(sw_sock_t *s) {
  if (!s->dirty_pprev) return;
  *s->dirty_pprev = s->dirty_next;
  if (s->dirty_next) s->dirty_next->dirty_pprev = s->dirty_pprev;
  else s->srv->dirty_tail = s->dirty_pprev;
  s->dirty_next = NULL;
  s->dirty_pprev = NULL;
}

/* Drops the frame at the head of the queue: written, or abandoned. */
static void pop_head(sw_sock_t *s) {
  sw_frame_t *f = s->q[s->q_head];
  s->q_bytes -= f->len;
  frame_unref(f);
  s->q_head = (s->q_head + 1) % s->q_cap;
  s->q_len--;
  s->head_off = 0;
}

static void on_close(uv_handle_t *h) {
  sw_sock_t *s = h->data;
  s->handle_closed = true;
  dirty_unlink(s); /* close_now did; nothing relists a closing socket */
  while (s->q_len) pop_head(s);
  sw_server_t *srv = s->srv;
  if (s->prev) s->prev->next = s->next;
  else srv->socks = s->next;
  if (s->next) s->next->prev = s->prev;
  srv->n_socks--;
  if (s->refs == 0) sock_free(s);
}

/* Closes the TCP handle now; queued output is dropped. */
static void close_now(sw_sock_t *s) {
  s->closing = true;
  if (uv_is_closing((uv_handle_t *)&s->tcp)) return;
  /* Nothing more will be written: the flush must not see it again, and
   * the memory goes in the close callback. */
  dirty_unlink(s);
  if (s->conn) {
    sw_conn_t *c = s->conn;
    s->conn = NULL;
    conn_on_transport_lost(c);
  }
  uv_close((uv_handle_t *)&s->tcp, on_close);
}

void sock_close(sw_sock_t *s, bool after_flush) {
  if (uv_is_closing((uv_handle_t *)&s->tcp)) return;
  s->closing = true;
  uv_read_stop((uv_stream_t *)&s->tcp);
  if (after_flush && (s->writing || s->q_len)) {
    /* The flush closes it once the queue is written; the server's tick
     * closes sockets that do not drain in time. */
    s->close_after_flush = true;
    s->close_deadline = uv_now(s->srv->loop) + 5000;
    return;
  }
  close_now(s);
}

void sock_expire(sw_sock_t *s, uint64_t now) {
  if (s->close_after_flush && now >= s->close_deadline) close_now(s);
}

void sock_ref(sw_sock_t *s) { s->refs++; }

void sock_unref(sw_sock_t *s) {
  if (--s->refs == 0 && s->handle_closed) sock_free(s);
}

static void mark_dirty(sw_sock_t *s);

size_t sock_low_water(const sw_sock_t *s) {
  size_t q = s->srv->cfg->limits.max_outbound_bytes / 4;
  return q < ((size_t)1 << 20) ? q : (size_t)1 << 20;
}

/* Tells the connection that its queue drained, if a replay asked for it.
 * Called after writes only (the per-turn flush and on_write), never from
 * inside a send, so a replay never runs nested in a fan-out. */
static void drained(sw_sock_t *s) {
  if (!s->drain_wanted || s->closing || !s->conn || s->q_bytes >= sock_low_water(s)) return;
  s->drain_wanted = false;
  conn_on_drain(s->conn);
}

static void on_write(uv_write_t *req, int status) {
  sw_sock_t *s = req->data;
  wreq_put(s->srv, req);
  s->writing = false;
  for (uint32_t i = 0; i < s->n_inflight; i++) pop_head(s);
  s->n_inflight = 0;
  if (status < 0) {
    close_now(s);
    return;
  }
  /* What was queued while the kernel was full goes with this turn's flush. */
  if (s->q_len) mark_dirty(s);
  else if (s->close_after_flush) close_now(s);
  if (s->drain_wanted) drained(s);
}

/* Hands the queue to the kernel: one uv_try_write (writev) of up to
 * SW_SOCK_MAX_IOV frames at a time, as long as the kernel takes all of it.
 * What it does not take goes to one uv_write, which waits for POLLOUT and
 * continues the queue from on_write; only then does libuv touch epoll. */
static void flush(sw_sock_t *s) {
  uv_buf_t *iov = s->srv->iov;
  while (s->q_len && !s->writing) {
    size_t n = s->q_len < SW_SOCK_MAX_IOV ? s->q_len : SW_SOCK_MAX_IOV;
    for (size_t i = 0; i < n; i++) {
      sw_frame_t *f = s->q[(s->q_head + i) % s->q_cap];
      size_t off = i == 0 ? s->head_off : 0;
      iov[i] = uv_buf_init((char *)f->data + off, (unsigned)(f->len - off));
    }
    int w = uv_try_write((uv_stream_t *)&s->tcp, iov, (unsigned)n);
    if (w < 0 && w != UV_EAGAIN) {
      close_now(s);
      return;
    }
    size_t done = w > 0 ? (size_t)w : 0, k = 0;
    metrics_add(SW_M_BYTES_SENT, done);
    while (k < n && done >= iov[k].len) {
      done -= iov[k].len;
      k++;
      pop_head(s);
    }
    if (k == n) continue;
    /* The kernel is full: frame k went out in part (done bytes), if at all. */
    s->head_off += (uint32_t)done;
    iov[k].base += done;
    iov[k].len -= done;
    uv_write_t *req = wreq_get(s->srv);
    if (!req) {
      close_now(s);
      return;
    }
    req->data = s;
    if (uv_write(req, (uv_stream_t *)&s->tcp, iov + k, (unsigned)(n - k), on_write) < 0) {
      wreq_put(s->srv, req);
      close_now(s);
      return;
    }
    s->writing = true;
    s->n_inflight = (uint32_t)(n - k);
    for (size_t i = k; i < n; i++) metrics_add(SW_M_BYTES_SENT, iov[i].len);
  }
  if (!s->q_len && !s->writing && s->close_after_flush) close_now(s);
}

/* Runs in libuv's prepare phase: once per loop turn, right before the loop
 * blocks in epoll for more events, so everything a turn queued is written
 * first. Between two such points the loop runs the I/O phase (reads,
 * completed writes, the store's uv_async completions: a commit batch fanned
 * out to every subscriber), then the check and close callbacks, the timers
 * (heartbeats, AUTH before expiry) and the pending callbacks: output queued
 * in any of them is in the same flush, so each socket is written once with
 * all of it. (A check handle would run after the I/O phase only: output
 * queued by a timer would wait until epoll returned, up to a tick.)
 * Flushing can close a socket, which may queue output on others: they join
 * the list and are flushed in the same pass. */
static void on_flush(uv_prepare_t *h) {
  sw_server_t *srv = h->data;
  sw_sock_t *s;
  while ((s = srv->dirty)) {
    dirty_unlink(s);
    flush(s);
    /* A replay may queue more: s joins the list again, same pass. */
    if (s->drain_wanted) drained(s);
  }
  uv_prepare_stop(h);
}

/* Output was queued on s: it is flushed before the loop next waits. The
 * prepare handle is active exactly while the list is not empty, which also
 * keeps the loop alive for it; any callback may queue output (there is no
 * phase of the turn after which a listed socket would be forgotten). Before
 * the flush handle exists and after shutdown has closed it, output is
 * written at once. */
static void mark_dirty(sw_sock_t *s) {
  sw_server_t *srv = s->srv;
  if (s->dirty_pprev || s->writing || uv_is_closing((uv_handle_t *)&s->tcp)) return;
  if (!srv->flush_open) {
    flush(s);
    return;
  }
  s->dirty_next = NULL;
  s->dirty_pprev = srv->dirty_tail;
  *srv->dirty_tail = s;
  srv->dirty_tail = &s->dirty_next;
  uv_prepare_start(&srv->flush, on_flush);
}

void socks_flush_init(sw_server_t *srv) {
  srv->dirty = NULL;
  srv->dirty_tail = &srv->dirty;
  uv_prepare_init(srv->loop, &srv->flush);
  srv->flush.data = srv;
  srv->flush_open = true;
}

void socks_flush_close(sw_server_t *srv) {
  if (!srv->flush_open) return;
  on_flush(&srv->flush);
  uv_close((uv_handle_t *)&srv->flush, NULL);
  srv->flush_open = false;
}

static int enqueue(sw_sock_t *s, sw_frame_t *f) {
  if (s->q_len == s->q_cap) {
    uint32_t cap = s->q_cap ? s->q_cap * 2 : 16;
    sw_frame_t **q = cap > s->q_cap ? malloc(cap * sizeof *q) : NULL;
    if (!q) {
      close_now(s);
      return -1;
    }
    for (uint32_t i = 0; i < s->q_len; i++) q[i] = s->q[(s->q_head + i) % s->q_cap];
    free(s->q);
    s->q = q;
    s->q_cap = cap;
    s->q_head = 0;
  }
  s->q[(s->q_head + s->q_len) % s->q_cap] = frame_ref(f);
  s->q_len++;
  s->q_bytes += f->len;
  mark_dirty(s);
  return 0;
}

int sock_send(sw_sock_t *s, sw_frame_t *f) {
  if (s->closing) return -1;
  if (uv_is_closing((uv_handle_t *)&s->tcp)) return -1;
  if (s->q_bytes + f->len > s->srv->cfg->limits.max_outbound_bytes) {
    /* A slow consumer: its queue cannot take more without unbounded growth.
     * It gets one last frame saying why, beyond the bound; the connection
     * stays resumable and the client catches up from storage. */
    if (!s->overflowed) {
      s->overflowed = true;
      metrics_inc(SW_M_SLOW_CONSUMERS);
      sw_conn_t *c = s->conn;
      log_ev(SW_LOG_WARN, "conn.slow_consumer", c ? c->id : NULL, c ? c->app->id : NULL, c ? SW_E_SLOW_CONSUMER : 0,
             "outbound queue over %zu bytes: disconnecting a slow consumer", s->srv->cfg->limits.max_outbound_bytes);
      if (s->conn) conn_on_slow_consumer(s->conn);
      sock_close(s, true);
    }
    return -1;
  }
  return enqueue(s, f);
}

int sock_send_last(sw_sock_t *s, sw_frame_t *f) {
  if (uv_is_closing((uv_handle_t *)&s->tcp)) return -1;
  return enqueue(s, f);
}

int sock_send_bytes(sw_sock_t *s, const void *p, size_t n) {
  sw_frame_t *f = frame_copy(p, n);
  if (!f) return -1;
  int rc = sock_send(s, f);
  frame_unref(f);
  return rc;
}

/* An HTTP-level refusal before any handler ran: status and close. */
static void http_refuse(sw_sock_t *s, int status) {
  sw_buf_t b = {0};
  const char *body = http_reason(status);
  http_response_head(&b, status, "text/plain", strlen(body), NULL, false);
  buf_append_str(&b, body);
  sock_send_bytes(s, b.data, b.len);
  buf_free(&b);
  sock_close(s, true);
}

static void ws_close_with(sw_sock_t *s, uint16_t code) {
  uint8_t payload[2] = {(uint8_t)(code >> 8), (uint8_t)code};
  sw_frame_t *f = frame_ws(SW_WS_OP_CLOSE, payload, 2);
  if (f) {
    sock_send(s, f);
    frame_unref(f);
  }
  sock_close(s, true);
}

static void deliver(sw_sock_t *s, uint8_t opcode, const uint8_t *p, size_t n) {
  if (opcode == SW_WS_OP_TEXT && !utf8_valid(p, n)) {
    ws_close_with(s, 1007);
    return;
  }
  if (s->conn) conn_on_ws_message(s->conn, p, n, opcode == SW_WS_OP_TEXT);
}

/* Handles complete WebSocket frames at in[pos..]; returns the new pos. */
static size_t process_ws(sw_sock_t *s, uint8_t *data, size_t len, size_t pos) {
  const sw_limits_t *lim = &s->srv->cfg->limits;
  while (!s->closing && pos < len) {
    sw_ws_frame_t f;
    uint8_t *p = data + pos;
    size_t avail = len - pos;
    int r = ws_frame_parse(p, avail, true, (uint64_t)lim->max_frame_size, &f);
    if (r == SW_WS_NEED_MORE) break;
    if (r == SW_WS_MALFORMED) {
      ws_close_with(s, 1002);
      break;
    }
    if (r == SW_WS_TOO_LARGE) {
      if (s->conn)
        conn_fail(s->conn, SW_E_MESSAGE_TOO_LARGE, "frame exceeds maxFrameSize", false);
      else
        ws_close_with(s, 1009);
      break;
    }
    if (avail - f.header_len < f.payload_len) break;
    uint8_t *payload = p + f.header_len;
    size_t plen = (size_t)f.payload_len;
    ws_unmask(payload, plen, f.mask, 0);
    pos += f.header_len + plen;
    switch (f.opcode) {
    case SW_WS_OP_PING: {
      sw_frame_t *pong = frame_ws(SW_WS_OP_PONG, payload, plen);
      if (pong) {
        sock_send(s, pong);
        frame_unref(pong);
      }
      break;
    }
    case SW_WS_OP_PONG:
      break;
    case SW_WS_OP_CLOSE: {
      int code = ws_close_payload_parse(payload, plen);
      ws_close_with(s, code < 0 ? 1002 : code == 1005 ? 1000 : (uint16_t)code);
      break;
    }
    default:
      if (f.fin && f.opcode != SW_WS_OP_CONT && !s->wsasm.active) {
        deliver(s, f.opcode, payload, plen);
      } else {
        uint8_t op;
        int a = ws_msg_asm_add(&s->wsasm, &f, payload, plen, &op);
        if (a == SW_WS_MALFORMED) ws_close_with(s, 1002);
        else if (a == SW_WS_TOO_LARGE) ws_close_with(s, 1009);
        else if (a == 1) {
          deliver(s, op, s->wsasm.buf.data, s->wsasm.buf.len);
          ws_msg_asm_reset(&s->wsasm);
        }
      }
    }
  }
  return pos;
}

/* Handles the complete requests or frames in data[0..len), which may be
 * modified in place (unmasking); returns the bytes consumed. */
static size_t process(sw_sock_t *s, uint8_t *data, size_t len) {
  const sw_limits_t *lim = &s->srv->cfg->limits;
  sw_http_limits_t hl = {.max_head = lim->max_http_head, .max_body = lim->max_http_body};
  size_t pos = 0;
  while (!s->closing && pos < len) {
    if (s->is_ws) {
      pos = process_ws(s, data, len, pos);
      break;
    }
    sw_http_req_t req;
    int r = http_req_parse(data + pos, len - pos, &hl, &req);
    if (r == SW_HTTP_NEED_MORE) break;
    if (r < 0) {
      http_refuse(s, r == SW_HTTP_HEAD_TOO_LARGE   ? 431
                     : r == SW_HTTP_BODY_TOO_LARGE ? 413
                     : r == SW_HTTP_LENGTH_REQUIRED ? 411
                                                    : 400);
      return len;
    }
    server_on_request(s, &req);
    pos += (size_t)r;
  }
  return s->closing ? len : pos;
}

/* Reads land in the server's one read buffer; only a partial request or
 * frame is copied into the socket's own buffer, so an idle connection holds
 * no input memory. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  sw_sock_t *s = h->data;
  *b = uv_buf_init((char *)s->srv->rbuf, SW_READ_BUF);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b) {
  sw_sock_t *s = st->data;
  if (nread < 0) {
    close_now(s);
    return;
  }
  if (nread == 0) return;
  metrics_add(SW_M_BYTES_RECEIVED, (uint64_t)nread);
  s->last_rx_ms = uv_now(s->srv->loop);
  uint8_t *data = (uint8_t *)b->base;
  size_t len = (size_t)nread;
  if (s->in.len) {
    /* Bounded: a request or frame larger than the limits is refused by
     * the parsers before this grows past them. */
    if (buf_append(&s->in, data, len)) {
      close_now(s);
      return;
    }
    size_t used = process(s, s->in.data, s->in.len);
    buf_consume(&s->in, used);
    if (!s->in.len) buf_free(&s->in);
    return;
  }
  size_t used = process(s, data, len);
  if (used < len && !s->closing && buf_append(&s->in, data + used, len - used)) close_now(s);
}

int sock_accept(sw_server_t *srv, uv_stream_t *listener) {
  sw_sock_t *s = calloc(1, sizeof *s);
  if (!s) return UV_ENOMEM;
  s->srv = srv;
  uv_tcp_init(srv->loop, &s->tcp);
  s->tcp.data = s;
  s->next = srv->socks;
  if (srv->socks) srv->socks->prev = s;
  srv->socks = s;
  srv->n_socks++;
  s->metrics_only = listener != (uv_stream_t *)&srv->listener;
  int rc = uv_accept(listener, (uv_stream_t *)&s->tcp);
  if (rc == 0 && (srv->shutting_down || srv->n_socks > srv->cfg->limits.max_connections))
    rc = UV_EAGAIN;
  if (rc < 0) {
    close_now(s);
    return rc;
  }
  struct sockaddr_storage peer;
  int plen = sizeof peer;
  if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&peer, &plen) == 0) {
    if (peer.ss_family == AF_INET) {
      s->peer_loopback = (ntohl(((struct sockaddr_in *)&peer)->sin_addr.s_addr) >> 24) == 127;
    } else if (peer.ss_family == AF_INET6) {
      const struct in6_addr *a = &((struct sockaddr_in6 *)&peer)->sin6_addr;
      s->peer_loopback = IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
  }
  uv_tcp_nodelay(&s->tcp, 1);
  uv_tcp_keepalive(&s->tcp, 1, 60);
  s->wsasm.max_msg = (uint64_t)srv->cfg->limits.max_frame_size;
  s->last_rx_ms = uv_now(srv->loop);
  return uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
}
