/* transport_tcp.c: the plain TCP transport (ws://, http://).
 *
 * Lifetime: the owner calls ops->close() once; after that no callback runs.
 * The struct is freed when libuv has let go of everything (the resolver
 * request and the TCP handle), which may be after close() returns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct tcp {
  swc_transport_t base;
  uv_loop_t *loop;
  swc_transport_cbs_t cbs;
  void *ud;
  uv_getaddrinfo_t gai;
  struct addrinfo *addrs, *next_addr;
  uv_tcp_t tcp;
  uv_connect_t conn;
  bool gai_pending;
  bool tcp_open;      /* tcp initialised and not yet closed */
  bool tcp_closing;
  bool released;      /* the owner called close */
  bool ended;         /* on_close delivered (or the owner released first) */
  bool connected;
  bool retry_next;    /* connect to next_addr once the failed handle is closed */
  uint8_t rbuf[65536];
} tcp_t;

typedef struct write_req {
  uv_write_t req;
  uint8_t *data;
} write_req_t;

static void try_connect(tcp_t *t);

static void maybe_free(tcp_t *t) {
  if (t->released && !t->gai_pending && !t->tcp_open && !t->tcp_closing) {
    if (t->addrs) uv_freeaddrinfo(t->addrs);
    free(t);
  }
}

static void on_tcp_closed(uv_handle_t *h) {
  tcp_t *t = h->data;
  t->tcp_closing = false;
  if (t->retry_next && !t->released) {
    t->retry_next = false;
    try_connect(t);
    return;
  }
  maybe_free(t);
}

static void close_tcp(tcp_t *t) {
  if (!t->tcp_open) return;
  t->tcp_open = false;
  t->tcp_closing = true;
  uv_close((uv_handle_t *)&t->tcp, on_tcp_closed);
}

/* Reports the end of the stream to the owner, once. */
static void end(tcp_t *t, int status) {
  if (t->ended || t->released) return;
  t->ended = true;
  if (t->tcp_open) uv_read_stop((uv_stream_t *)&t->tcp);
  t->cbs.on_close(t->ud, status);
}

static void fail_connect(tcp_t *t, int status) {
  if (t->released) return;
  t->ended = true;
  t->cbs.on_connect(t->ud, status);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  tcp_t *t = h->data;
  (void)suggested;
  *buf = uv_buf_init((char *)t->rbuf, sizeof t->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  tcp_t *t = s->data;
  (void)buf;
  if (t->released || t->ended) return;
  if (nread > 0) t->cbs.on_data(t->ud, t->rbuf, (size_t)nread);
  else if (nread < 0) end(t, nread == UV_EOF ? 0 : (int)nread);
}

static void on_connected(uv_connect_t *req, int status) {
  tcp_t *t = req->data;
  if (t->released) return;
  if (status < 0) {
    /* Try the next address before giving up (e.g. ::1 then 127.0.0.1). */
    if (t->next_addr && status != UV_ECANCELED) {
      t->retry_next = true;
      close_tcp(t);
      return;
    }
    fail_connect(t, status);
    return;
  }
  t->connected = true;
  uv_tcp_nodelay(&t->tcp, 1); /* small protocol messages: latency over batching */
  int rc = uv_read_start((uv_stream_t *)&t->tcp, on_alloc, on_read);
  if (rc) {
    fail_connect(t, rc);
    return;
  }
  t->cbs.on_connect(t->ud, 0);
}

static void try_connect(tcp_t *t) {
  while (t->next_addr) {
    struct addrinfo *ai = t->next_addr;
    t->next_addr = ai->ai_next;
    if (uv_tcp_init(t->loop, &t->tcp)) continue;
    t->tcp.data = t;
    t->tcp_open = true;
    t->conn.data = t;
    if (uv_tcp_connect(&t->conn, &t->tcp, ai->ai_addr, on_connected) == 0) return;
    t->retry_next = t->next_addr != NULL;
    close_tcp(t);
    if (t->retry_next) return; /* continues in on_tcp_closed */
  }
  fail_connect(t, UV_ECONNREFUSED);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  tcp_t *t = req->data;
  t->gai_pending = false;
  t->addrs = res;
  if (t->released) {
    maybe_free(t);
    return;
  }
  if (status < 0) {
    fail_connect(t, status);
    return;
  }
  t->next_addr = res;
  try_connect(t);
}

static void on_written(uv_write_t *req, int status) {
  write_req_t *w = (write_req_t *)req;
  tcp_t *t = req->data;
  free(w->data);
  free(w);
  /* A write error shows up as a read error too; report it once. */
  if (status < 0 && status != UV_ECANCELED && t && !t->released) end(t, status);
}

static int tcp_write(swc_transport_t *base, uint8_t *data, size_t off, size_t len) {
  tcp_t *t = (tcp_t *)base;
  if (!t->connected || t->ended || !t->tcp_open) {
    free(data);
    return UV_ENOTCONN;
  }
  uv_buf_t b = uv_buf_init((char *)data + off, (unsigned)len);
  /* Most frames fit in the socket buffer: skip the request allocation. */
  if (uv_stream_get_write_queue_size((uv_stream_t *)&t->tcp) == 0) {
    int n = uv_try_write((uv_stream_t *)&t->tcp, &b, 1);
    if (n == (int)len) {
      free(data);
      return 0;
    }
    if (n > 0) b = uv_buf_init((char *)data + off + n, (unsigned)(len - (size_t)n));
    else if (n != UV_EAGAIN) {
      free(data);
      return n;
    }
  }
  write_req_t *w = malloc(sizeof *w);
  if (!w) {
    free(data);
    return UV_ENOMEM;
  }
  w->data = data;
  w->req.data = t;
  int rc = uv_write(&w->req, (uv_stream_t *)&t->tcp, &b, 1, on_written);
  if (rc) {
    free(data);
    free(w);
  }
  return rc;
}

static void tcp_close(swc_transport_t *base) {
  tcp_t *t = (tcp_t *)base;
  if (t->released) return;
  t->released = true;
  if (t->gai_pending) uv_cancel((uv_req_t *)&t->gai);
  close_tcp(t);
  maybe_free(t);
}

static int tcp_fileno(const swc_transport_t *base) {
  const tcp_t *t = (const tcp_t *)base;
  uv_os_fd_t fd;
  if (!t->tcp_open || uv_fileno((const uv_handle_t *)&t->tcp, &fd)) return -1;
  return (int)fd;
}

static const swc_transport_ops_t tcp_ops = {.write = tcp_write, .close = tcp_close, .fileno = tcp_fileno};

swc_transport_t *swc_tcp_open(uv_loop_t *loop, const char *host, int port, const swc_transport_cbs_t *cbs,
                              void *ud) {
  tcp_t *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->base.ops = &tcp_ops;
  t->loop = loop;
  t->cbs = *cbs;
  t->ud = ud;
  t->gai.data = t;
  char port_s[16];
  snprintf(port_s, sizeof port_s, "%d", port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
  int rc = uv_getaddrinfo(loop, &t->gai, on_resolved, host, port_s, &hints);
  if (rc) {
    /* Report asynchronously through the normal path: resolve failed. */
    t->gai_pending = false;
    free(t);
    return NULL;
  }
  t->gai_pending = true;
  return &t->base;
}
