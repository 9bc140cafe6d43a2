/* transport_tcp.c: the plain TCP transport (ws://, http://).
 *
 * A non-blocking socket watched with uv_poll rather than a uv_tcp_t: libuv
 * streams write with write(2), which raises SIGPIPE when the peer has gone,
 * and a library must not kill its host process or make it ignore SIGPIPE.
 * Here every write is send(2) with MSG_NOSIGNAL.
 *
 * Lifetime: the owner calls ops->close() once; after that no callback runs.
 * The struct is freed when libuv has let go of everything (the resolver
 * request and the poll handle), which may be after close() returns. Errors
 * found while writing are reported from the loop (on_close), never from
 * inside write(), so callers are not re-entered; nor does open call back.
 *
 * Connect storms: a numeric host (127.0.0.1, ::1) is connected to at once,
 * without a uv_getaddrinfo round trip through libuv's thread pool; and reads
 * land in one buffer per thread, not one per connection (64 KiB zeroed for
 * every connect was a quarter of a storm's client CPU).
 *
 * A local (source) address, when given, is bound before connect() with
 * IP_BIND_ADDRESS_NO_PORT: the kernel then picks the port at connect time,
 * per (source, destination) pair, instead of reserving one at bind time
 * from the source's whole port range. That keeps the point of spreading a
 * storm over several source addresses: each has its own ephemeral ports, so
 * connect()'s search for a free one (__inet_hash_connect) stays short. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

typedef struct wq_item {
  struct wq_item *next;
  uint8_t *buf; /* owned */
  size_t off, end;
} wq_item_t;

typedef struct tcp {
  /* What every read and write touches first, next to the poll handle
   * libuv touches (see swc_ws: fewer cache lines, fewer misses). */
  swc_transport_t base;
  swc_transport_cbs_t cbs;
  void *ud;
  int fd;
  int events;       /* what poll is started for */
  int write_error;  /* a failed send, reported from the loop */
  bool connected;
  bool released;    /* the owner called close */
  bool ended;       /* on_close or a failed on_connect delivered */
  bool poll_open;   /* initialised and not yet closing */
  wq_item_t *wq_head, *wq_tail;
  uv_poll_t poll;
  /* connecting and closing */
  uv_loop_t *loop;
  uv_getaddrinfo_t gai;
  struct addrinfo *addrs, *next_addr;
  struct sockaddr_in6 local; /* holds a sockaddr_in too */
  socklen_t local_len;       /* 0: no local address */
  int last_error;            /* why the last address could not be tried */
  bool gai_pending;
  bool poll_closing;
  bool retry_next;  /* connect to next_addr once the failed socket is closed */
} tcp_t;

/* ---- the read buffer ----
 * Received bytes only live during on_data (ws.c and http.c copy what they
 * keep), and a loop runs on one thread, so one buffer per thread serves every
 * connection of every loop on it. The exception is a callback that runs
 * another loop on the same thread (sw_client_run_for on a client with a
 * private loop, from inside a callback) while bytes of the shared buffer are
 * still being handled further up the stack: such a nested read gets a buffer
 * of its own. Allocated on a thread's first read, freed when it exits. */
#define READ_BUF 65536

typedef struct read_buf {
  bool busy; /* a read on this thread is handling data[] */
  uint8_t data[READ_BUF];
} read_buf_t;

static pthread_once_t rb_once = PTHREAD_ONCE_INIT;
static pthread_key_t rb_key;
static bool rb_key_ok;

static void rb_key_make(void) { rb_key_ok = pthread_key_create(&rb_key, free) == 0; }

/* This thread's buffer, or NULL when there is none (out of memory). */
static read_buf_t *rb_thread(void) {
  pthread_once(&rb_once, rb_key_make);
  if (!rb_key_ok) return NULL;
  read_buf_t *rb = pthread_getspecific(rb_key);
  if (!rb && (rb = malloc(sizeof *rb))) {
    rb->busy = false;
    if (pthread_setspecific(rb_key, rb)) {
      free(rb);
      rb = NULL;
    }
  }
  return rb;
}

static void try_connect(tcp_t *t);
static void on_poll(uv_poll_t *h, int status, int events);

static void wq_free(tcp_t *t) {
  while (t->wq_head) {
    wq_item_t *w = t->wq_head;
    t->wq_head = w->next;
    free(w->buf);
    free(w);
  }
  t->wq_tail = NULL;
}

static void maybe_free(tcp_t *t) {
  if (t->released && !t->gai_pending && !t->poll_open && !t->poll_closing) {
    if (t->addrs) uv_freeaddrinfo(t->addrs);
    wq_free(t);
    free(t);
  }
}

static void on_poll_closed(uv_handle_t *h) {
  tcp_t *t = h->data;
  t->poll_closing = false;
  if (t->fd >= 0) close(t->fd);
  t->fd = -1;
  if (t->retry_next && !t->released) {
    t->retry_next = false;
    try_connect(t);
    return;
  }
  maybe_free(t);
}

/* Stops watching and closes the socket (once libuv has let go of it). */
static void close_socket(tcp_t *t) {
  if (t->poll_open) {
    t->poll_open = false;
    t->poll_closing = true;
    uv_poll_stop(&t->poll);
    uv_close((uv_handle_t *)&t->poll, on_poll_closed);
  } else if (t->fd >= 0 && !t->poll_closing) {
    close(t->fd);
    t->fd = -1;
  }
}

static void set_events(tcp_t *t, int events) {
  if (!t->poll_open || events == t->events) return;
  t->events = events;
  uv_poll_start(&t->poll, events, on_poll);
}

/* Reports the end of the stream to the owner, once. */
static void end(tcp_t *t, int status) {
  if (t->ended || t->released) return;
  t->ended = true;
  set_events(t, 0);
  t->cbs.on_close(t->ud, status);
}

static void fail_connect(tcp_t *t, int status) {
  if (t->released || t->ended) return;
  t->ended = true;
  t->cbs.on_connect(t->ud, status);
}

/* Sends queued data until done or the socket is full. 0 or a uv error. */
static int flush(tcp_t *t) {
  while (t->wq_head) {
    wq_item_t *w = t->wq_head;
    ssize_t n = send(t->fd, w->buf + w->off, w->end - w->off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      return -errno;
    }
    w->off += (size_t)n;
    if (w->off < w->end) break;
    t->wq_head = w->next;
    if (!t->wq_head) t->wq_tail = NULL;
    free(w->buf);
    free(w);
  }
  return 0;
}

/* The connect finished, one way or the other: SO_ERROR says which. status is
 * the poll's: libuv reports POLLERR as UV_EBADF (a refused connect raises
 * POLLERR), so it is used only when the socket itself names no error. */
static void on_connected(tcp_t *t, int status) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (!err && status < 0) err = -status;
  if (err) {
    /* Try the next address (e.g. ::1 then 127.0.0.1) before giving up. */
    if (t->next_addr) {
      t->retry_next = true;
      close_socket(t);
      return;
    }
    fail_connect(t, -err);
    return;
  }
  t->connected = true;
  set_events(t, UV_READABLE | UV_DISCONNECT | (t->wq_head ? UV_WRITABLE : 0));
  t->cbs.on_connect(t->ud, 0);
}

/* A few reads per wakeup: fair to other handles, cheap when busy. */
static void read_some(tcp_t *t) {
  read_buf_t *rb = rb_thread(), *own = NULL;
  if (!rb || rb->busy) {
    if (!(rb = own = malloc(sizeof *rb))) {
      end(t, UV_ENOMEM);
      return;
    }
  }
  rb->busy = true;
  for (int i = 0; i < 4 && !t->released && !t->ended; i++) {
    ssize_t n = recv(t->fd, rb->data, sizeof rb->data, 0);
    if (n > 0) {
      t->cbs.on_data(t->ud, rb->data, (size_t)n);
      if ((size_t)n < sizeof rb->data) break;
    } else if (n == 0) {
      end(t, 0);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    } else if (errno != EINTR) {
      end(t, -errno);
    }
  }
  rb->busy = false;
  free(own);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  tcp_t *t = h->data;
  if (t->released || t->ended) return;
  if (!t->connected) {
    on_connected(t, status);
    return;
  }
  if (t->write_error) {
    end(t, t->write_error);
    return;
  }
  if (status < 0) {
    end(t, status);
    return;
  }
  if (events & UV_WRITABLE) {
    int rc = flush(t);
    if (rc) {
      end(t, rc);
      return;
    }
    if (!t->wq_head) set_events(t, UV_READABLE | UV_DISCONNECT);
  }
  if (events & (UV_READABLE | UV_DISCONNECT)) read_some(t);
}

/* Binds the new socket to the local address, if any. 0 or -errno. */
static int bind_local(tcp_t *t) {
  if (!t->local_len) return 0;
  int one = 1;
#ifdef IP_BIND_ADDRESS_NO_PORT
  /* Linux >= 4.2; IPv6 sockets take the IPPROTO_IP option too. Without it
   * the bind below still works, it only reserves the port earlier. */
  setsockopt(t->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#else
  (void)one;
#endif
  return bind(t->fd, (const struct sockaddr *)&t->local, t->local_len) < 0 ? -errno : 0;
}

/* Starts a non-blocking connect to ai; 0 once the poll handle waits for it,
 * else a negative uv error (uv errors are -errno on Linux). */
static int start_connect(tcp_t *t, const struct addrinfo *ai) {
  /* A source address of one family cannot reach the other. */
  if (t->local_len && ai->ai_family != t->local.sin6_family) return UV_EAFNOSUPPORT;
  t->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (t->fd < 0) return -errno;
  int one = 1, rc;
  setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* small messages: latency first */
  if ((rc = bind_local(t)) == 0 && connect(t->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
    rc = -errno;
  if (rc == 0) rc = uv_poll_init_socket(t->loop, &t->poll, t->fd);
  if (rc) {
    close(t->fd);
    t->fd = -1;
    return rc;
  }
  t->poll.data = t;
  t->poll_open = true;
  t->events = UV_WRITABLE; /* writable = connected, or failed (SO_ERROR) */
  uv_poll_start(&t->poll, t->events, on_poll);
  return 0;
}

static void try_connect(tcp_t *t) {
  while (t->next_addr) {
    struct addrinfo *ai = t->next_addr;
    t->next_addr = ai->ai_next;
    int rc = start_connect(t, ai);
    if (rc == 0) return;
    /* Keep the most telling reason: a bind error (EADDRNOTAVAIL) over a
     * family mismatch with another of the host's addresses. */
    if (!t->last_error || rc != UV_EAFNOSUPPORT) t->last_error = rc;
  }
  fail_connect(t, t->last_error ? t->last_error : UV_ECONNREFUSED);
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

static int tcp_write(swc_transport_t *base, uint8_t *buf, size_t off, size_t len) {
  tcp_t *t = (tcp_t *)base;
  if (!t->connected || t->ended || t->released || t->write_error) {
    free(buf);
    return UV_ENOTCONN;
  }
  size_t endpos = off + len;
  /* Most frames fit in the socket buffer at once: no queue entry. */
  if (!t->wq_head) {
    ssize_t n;
    do n = send(t->fd, buf + off, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)len) {
      free(buf);
      return 0;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      int rc = -errno;
      free(buf);
      /* Reported by on_poll: an error socket polls writable. */
      t->write_error = rc;
      set_events(t, UV_READABLE | UV_DISCONNECT | UV_WRITABLE);
      return rc;
    }
    if (n > 0) off += (size_t)n;
  }
  wq_item_t *w = malloc(sizeof *w);
  if (!w) {
    free(buf);
    return UV_ENOMEM;
  }
  *w = (wq_item_t){.buf = buf, .off = off, .end = endpos};
  if (t->wq_tail) t->wq_tail->next = w;
  else t->wq_head = w;
  t->wq_tail = w;
  set_events(t, UV_READABLE | UV_DISCONNECT | UV_WRITABLE);
  return 0;
}

static void tcp_close(swc_transport_t *base) {
  tcp_t *t = (tcp_t *)base;
  if (t->released) return;
  t->released = true;
  if (t->gai_pending) uv_cancel((uv_req_t *)&t->gai);
  close_socket(t);
  maybe_free(t);
}

static int tcp_fileno(const swc_transport_t *base) {
  const tcp_t *t = (const tcp_t *)base;
  return t->connected ? t->fd : -1;
}

static const swc_transport_ops_t tcp_ops = {.write = tcp_write, .close = tcp_close, .fileno = tcp_fileno};

swc_transport_t *swc_tcp_open(uv_loop_t *loop, const swc_endpoint_t *ep, const swc_transport_cbs_t *cbs, void *ud) {
  const char *host = ep->host;
  int port = ep->port;
  tcp_t *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->base.ops = &tcp_ops;
  t->loop = loop;
  t->cbs = *cbs;
  t->ud = ud;
  t->fd = -1;
  if (ep->local && ep->local_len <= sizeof t->local) {
    memcpy(&t->local, ep->local, ep->local_len);
    t->local_len = ep->local_len;
  }
  /* A numeric address needs no resolver. Anything that fails here is left
   * to the resolver path, which reports it from the loop, not from inside
   * this call. */
  struct sockaddr_storage ss;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0) {
    struct addrinfo ai = {
        .ai_family = ss.ss_family,
        .ai_socktype = SOCK_STREAM,
        .ai_protocol = IPPROTO_TCP,
        .ai_addr = (struct sockaddr *)&ss,
        .ai_addrlen = ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6),
    };
    if (start_connect(t, &ai) == 0) return &t->base;
  }
  t->gai.data = t;
  char port_s[16];
  snprintf(port_s, sizeof port_s, "%d", port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
  if (uv_getaddrinfo(loop, &t->gai, on_resolved, host, port_s, &hints)) {
    free(t);
    return NULL;
  }
  t->gai_pending = true;
  return &t->base;
}
