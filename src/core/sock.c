#include "core/sock.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/conn.h"
#include "core/server.h"
#include "core/tls.h"
#include "metrics/metrics.h"
#include "net/forwarded.h"
#include "net/http_parse.h"
#include "net/http_response.h"
#include "util/hash.h"
#include "util/log.h"


/* The output ring of frame references is needed only while a socket has
 * output queued: an idle connection holds none. A ring of the first size
 * (RING_CAP0 references, 128 bytes) comes from a free list in the server
 * when output is queued and goes back once the queue has drained, so the
 * sockets of a fan-out share a few rings turn after turn instead of each
 * keeping one (or each calling malloc and free per turn). A ring grown by a
 * backlog is freed once drained. The list keeps at most RING_SPARE_MAX. */
#define RING_CAP0 16 /* a power of two, and rings double: indexes are masked, not divided */
typedef union sw_ring {
  sw_frame_t *slot[RING_CAP0];
  union sw_ring *next; /* while spare */
} sw_ring_t;
#define RING_SPARE_MAX 1024

static sw_frame_t **ring_get(sw_server_t *srv) {
  sw_ring_t *r = srv->ring_spare;
  if (r) {
    srv->ring_spare = r->next;
    srv->n_ring_spare--;
    return r->slot;
  }
  r = malloc(sizeof *r);
  return r ? r->slot : NULL;
}

/* Releases a ring of cap slots (its frames already dropped). */
static void ring_put(sw_server_t *srv, sw_frame_t **q, uint32_t cap) {
  sw_ring_t *r = (sw_ring_t *)q; /* slot is the union's first member */
  if (!r) return;
  if (cap != RING_CAP0 || srv->n_ring_spare >= RING_SPARE_MAX) {
    free(r);
    return;
  }
  r->next = srv->ring_spare;
  srv->ring_spare = r;
  srv->n_ring_spare++;
}

/* The ring's capacity: a power of two, so indexes are masked. */
static inline uint32_t qcap(const sw_sock_t *s) { return s->q ? (uint32_t)1 << s->q_log2 : 0; }

/* The queue is empty and nothing of it is being written: its ring goes. */
static void ring_release(sw_sock_t *s) {
  if (s->q_len || !s->q) return;
  ring_put(s->srv, s->q, qcap(s));
  s->q = NULL;
  s->q_log2 = 0;
  s->q_head = 0;
}

void socks_free_spares(sw_server_t *srv) {
  while (srv->ring_spare) {
    sw_ring_t *r = srv->ring_spare;
    srv->ring_spare = r->next;
    free(r);
  }
  srv->n_ring_spare = 0;
}

/* ---- deadlines and budgets ----------------------------------------------
 *
 * A socket is useful once it is a WebSocket bound to an Ably connection
 * (LIVE): idle connections are the product, and they have no deadline.
 * Before that (HTTP heads, bodies, keep-alive, and a refused upgrade being
 * closed) a socket is on srv->pending, oldest first, with a deadline for
 * its phase; a useful socket that starts closing goes on srv->closing. The
 * 250 ms tick walks only these two lists. srv->pending is bounded
 * (max_pending_sockets: a new socket closes the oldest) and so is each peer
 * address's share of it (max_pending_per_ip: a new socket over it is closed
 * at once), so a flood of half-open connections can neither fill
 * maxConnections nor the descriptor table, and cannot crowd out the
 * handshakes of real clients on other addresses. */

enum { LIST_NONE = 0, LIST_PENDING = 1, LIST_CLOSING = 2 };

/* Pending sockets per peer address: an IPv4 address, or an IPv6 /64 (one
 * host usually holds a whole /64). */
typedef struct sw_peer {
  uint8_t key[16];
  uint32_t n;
  UT_hash_handle hh;
} sw_peer_t;

static sw_sock_list_t *list_of(sw_sock_t *s) {
  return s->list == LIST_PENDING ? &s->srv->pending : s->list == LIST_CLOSING ? &s->srv->closing : NULL;
}

static void list_unlink(sw_sock_t *s) {
  sw_sock_list_t *l = list_of(s);
  if (!l) return;
  if (s->list_prev) s->list_prev->list_next = s->list_next;
  else l->head = s->list_next;
  if (s->list_next) s->list_next->list_prev = s->list_prev;
  else l->tail = s->list_prev;
  s->list_prev = s->list_next = NULL;
  s->list = LIST_NONE;
  l->n--;
}

static void list_append(sw_sock_t *s, int which) {
  sw_sock_list_t *l = which == LIST_PENDING ? &s->srv->pending : &s->srv->closing;
  s->list = (uint8_t)which;
  s->list_next = NULL;
  s->list_prev = l->tail;
  if (l->tail) l->tail->list_next = s;
  else l->head = s;
  l->tail = s;
  l->n++;
}

static void peer_release(sw_sock_t *s) {
  sw_peer_t *p = s->peer;
  if (!p) return;
  s->peer = NULL;
  if (--p->n == 0) {
    HASH_DEL(s->srv->peers, p);
    free(p);
  }
}

/* The key of the peer's address; false if it has none we can read. Also
 * sets s->peer_loopback, and s->via_proxy if the peer is a trusted proxy. */
static bool peer_key(sw_sock_t *s, uint8_t key[16]) {
  struct sockaddr_storage peer;
  socklen_t plen = sizeof peer;
  uint8_t a[16];
  memset(key, 0, 16);
  if (s->fd < 0 || getpeername(s->fd, (struct sockaddr *)&peer, &plen) != 0 ||
      !addr_from_sockaddr((struct sockaddr *)&peer, a))
    return false;
  const sw_config_t *cfg = s->srv->cfg;
  s->peer_loopback = s->proxy_loopback = addr_is_loopback(a);
  s->via_proxy = cfg->n_trusted_proxies && cidr_match(cfg->trusted_proxies, cfg->n_trusted_proxies, a);
  /* IPv4 (as ::ffff:a.b.c.d, so a mapped address is the same peer) whole,
   * IPv6 by its /64. */
  memcpy(key, a, addr_is_v4(a) ? 16 : 8);
  return true;
}

/* A request from a trusted proxy: its client is who the proxy says it is,
 * for the Basic rule (secure, peer_loopback) and per-client limits (fwd).
 * Set per request, since a proxy may carry many clients' requests over one
 * keep-alive connection. */
static void forwarded(sw_sock_t *s, const sw_http_req_t *req) {
  const sw_config_t *cfg = s->srv->cfg;
  uint8_t a[16];
  s->secure = s->tls || forwarded_https(req);
  if (forwarded_for(req, cfg->trusted_proxies, cfg->n_trusted_proxies, a) && (s->fwd || (s->fwd = malloc(16)))) {
    memcpy(s->fwd, a, 16);
    s->peer_loopback = addr_is_loopback(a);
    return;
  }
  free(s->fwd);
  s->fwd = NULL;
  s->peer_loopback = s->proxy_loopback; /* no X-Forwarded-For: the proxy's own request */
}

void sock_client_address(const sw_sock_t *s, char out[46]) {
  struct sockaddr_storage peer;
  socklen_t plen = sizeof peer;
  uint8_t a[16];
  if (s->fwd) {
    addr_format(s->fwd, out);
  } else if (s->fd >= 0 && getpeername(s->fd, (struct sockaddr *)&peer, &plen) == 0 &&
             addr_from_sockaddr((struct sockaddr *)&peer, a)) {
    addr_format(a, out);
  } else {
    snprintf(out, 46, "?");
  }
}

/* Counts s against its peer's share; false if the share is full. */
static bool peer_admit(sw_sock_t *s, const uint8_t key[16]) {
  size_t cap = s->srv->cfg->limits.max_pending_per_ip;
  if (cap == 0) return true;
  sw_peer_t *p = NULL;
  HASH_FIND(hh, s->srv->peers, key, 16, p);
  if (p && p->n >= cap) return false;
  if (!p) {
    if (!(p = calloc(1, sizeof *p))) return true; /* uncounted rather than refused */
    memcpy(p->key, key, 16);
    HASH_ADD(hh, s->srv->peers, key, 16, p);
  }
  p->n++;
  s->peer = p;
  return true;
}

static void set_phase(sw_sock_t *s, sw_sock_phase_t ph, int64_t timeout) {
  s->phase = (uint8_t)ph;
  s->deadline = uv_now(s->srv->loop) + (uint64_t)timeout;
}

/* s is now a bound WebSocket: no deadline, out of the pending budget. */
static void became_useful(sw_sock_t *s) {
  list_unlink(s);
  peer_release(s);
  /* The upgrade's Origin (browsers send one) is echoed only in HTTP
   * responses, which a WebSocket gets no more of. */
  free(s->origin);
  s->origin = NULL;
  s->phase = SW_SOCK_LIVE;
}

void sock_ws_bound(sw_sock_t *s) {
  if (s->phase != SW_SOCK_LIVE && !s->closing) became_useful(s);
}

static void sock_free(sw_sock_t *s) {
  tls_free(s->tls);
  free(s->fwd);
  free(s->origin);
  if (s->in) buf_free(s->in);
  free(s->in);
  if (s->wsasm) ws_msg_asm_free(s->wsasm);
  free(s->wsasm);
  free(s->q); /* a ring (by the union's first member) or a grown array */
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
  s->q_head = (s->q_head + 1) & (qcap(s) - 1);
  s->q_len--;
  s->head_off = 0;
}

static void mark_dirty(sw_sock_t *s);

/* Frees the closed sockets (srv->dead), from the reaper: an idle handle,
 * so this runs in a later phase of the loop than the close, as libuv's
 * close callbacks did, and the loop does not block while any wait. A
 * socket still referenced is freed by its last sock_unref. */
static void reap(uv_idle_t *h) {
  sw_server_t *srv = h->data;
  sw_sock_t *s;
  while ((s = srv->dead)) {
    srv->dead = s->list_next;
    s->list_next = NULL;
    while (s->q_len) pop_head(s);
    if (s->prev) s->prev->next = s->next;
    else srv->socks = s->next;
    if (s->next) s->next->prev = s->prev;
    srv->n_socks--;
    s->reaped = true;
    if (s->refs == 0) sock_free(s);
  }
  uv_idle_stop(h);
  if (srv->shutting_down) socks_io_close(srv);
}

/* Closes the socket now; queued output is dropped. The descriptor goes at
 * once (which also takes it out of the epoll set: it is never duplicated);
 * the memory waits for the reaper, so a caller, or a later event of the
 * same epoll_wait batch, may still look at s (fd is -1). */
static void close_now(sw_sock_t *s) {
  s->closing = true;
  if (s->fd < 0) return;
  /* Nothing more will be written: the flush must not see it again. It
   * leaves the budgets now, so that an eviction makes room at once. */
  dirty_unlink(s);
  list_unlink(s);
  peer_release(s);
  close(s->fd);
  s->fd = -1;
  sw_server_t *srv = s->srv;
  s->list_next = srv->dead;
  srv->dead = s;
  uv_idle_start(&srv->reaper, reap);
  if (s->conn) {
    sw_conn_t *c = s->conn;
    s->conn = NULL;
    conn_on_transport_lost(c);
  }
}

/* The last words are written: shut the write side (the peer reads them,
 * then EOF) and linger, reading and discarding, until the peer closes too.
 * Closing with unread input would make the kernel send a reset, and a peer
 * that is still sending (an oversized POST) could lose our answer to it. */
static void finish_close(sw_sock_t *s) {
  if (s->phase == SW_SOCK_LINGER || s->fd < 0) return;
  /* At shutdown the tick no longer runs: nothing may wait for it. */
  if (s->peer_eof || s->srv->shutting_down || shutdown(s->fd, SHUT_WR)) {
    close_now(s);
    return;
  }
  set_phase(s, SW_SOCK_LINGER, s->srv->cfg->limits.linger_timeout);
}

void sock_close(sw_sock_t *s, bool after_flush) {
  if (s->fd < 0) return;
  if (!after_flush) {
    close_now(s);
    return;
  }
  if (s->closing) return; /* already on its way out, with its own deadline */
  s->closing = true;
  s->close_after_flush = true;
  /* Only the bounded last words go out from now on; pending sockets keep
   * their place (and share) in the pending budget. */
  if (s->list == LIST_NONE) list_append(s, LIST_CLOSING);
  set_phase(s, SW_SOCK_CLOSING, s->srv->cfg->limits.close_timeout);
  /* Otherwise the flush finishes once the queue is written; under TLS it
   * also has close_notify, or an alert, to write first. */
  if (s->tls) mark_dirty(s);
  else if (!s->blocked && !s->q_len) finish_close(s);
}

void sock_ref(sw_sock_t *s) { s->refs++; }

static void resume_later(sw_sock_t *s);

void sock_unref(sw_sock_t *s) {
  if (--s->refs) return;
  if (s->reaped) sock_free(s);
  else if (s->held_req) resume_later(s);
}

size_t sock_low_water(const sw_sock_t *s) {
  size_t q = s->srv->cfg->limits.max_outbound_bytes / 4;
  return q < ((size_t)1 << 20) ? q : (size_t)1 << 20;
}

/* Tells the connection that its queue drained, if a replay asked for it.
 * Called after writes only (the per-turn flush and on_writable), never from
 * inside a send, so a replay never runs nested in a fan-out. */
static void drained(sw_sock_t *s) {
  if (!s->drain_wanted || s->closing || !s->conn || s->q_bytes >= sock_low_water(s)) return;
  s->drain_wanted = false;
  conn_on_drain(s->conn);
}

/* Registers the events s now waits for in the server's epoll: input
 * unless reading stopped, EPOLLOUT while the kernel is full. Only a change
 * costs a system call. False if the socket had to be closed. */
static bool ep_sync(sw_sock_t *s) {
  bool in = !s->no_input, out = s->blocked;
  if (s->fd < 0) return false;
  if (in == s->ep_in && out == s->ep_out) return true;
  struct epoll_event ev = {.events = (in ? EPOLLIN : 0u) | (out ? EPOLLOUT : 0u), .data.ptr = s};
  if (epoll_ctl(s->srv->epfd, EPOLL_CTL_MOD, s->fd, &ev)) {
    close_now(s);
    return false;
  }
  s->ep_in = in;
  s->ep_out = out;
  return true;
}

/* One gathered write; the bytes the kernel took (0: it is full), or -1
 * for a broken connection. MSG_NOSIGNAL: a peer's reset is an error here,
 * not SIGPIPE (which main also ignores). */
static ssize_t write_some(sw_sock_t *s, struct iovec *iov, size_t n) {
  struct msghdr m = {.msg_iov = iov, .msg_iovlen = n};
  for (;;) {
    ssize_t w = sendmsg(s->fd, &m, MSG_NOSIGNAL);
    if (w >= 0) return w;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
  }
}

/* Hands the queue to the kernel: one writev of up to SW_SOCK_MAX_IOV frames
 * at a time, as long as the kernel takes all of it. Where it stops (head_off
 * bytes into the head frame) the socket waits for EPOLLOUT, and
 * on_writable continues from there; every frame stays in the ring until
 * written, so a slow consumer's backlog can still be dropped
 * (slow_consumer). */
static void flush_tls(sw_sock_t *s);

static void flush(sw_sock_t *s) {
  if (s->fd < 0 || s->blocked) return;
  if (s->tls) {
    flush_tls(s);
    return;
  }
  struct iovec *iov = s->srv->iov;
  while (s->q_len && !s->blocked) {
    size_t n = s->q_len < SW_SOCK_MAX_IOV ? s->q_len : SW_SOCK_MAX_IOV;
    for (size_t i = 0; i < n; i++) {
      sw_frame_t *f = s->q[(s->q_head + i) & (qcap(s) - 1)];
      size_t off = i == 0 ? s->head_off : 0;
      iov[i] = (struct iovec){(char *)f->data + off, f->len - off};
    }
    ssize_t w = write_some(s, iov, n);
    if (w < 0) {
      close_now(s);
      return;
    }
    size_t done = (size_t)w, k = 0;
    metrics_add(SW_M_BYTES_SENT, done);
    while (k < n && done >= iov[k].iov_len) {
      done -= iov[k].iov_len;
      k++;
      pop_head(s);
    }
    if (k == n) continue;
    /* The kernel is full: frame k went out in part (done bytes), if at all. */
    s->head_off += (uint32_t)done;
    s->blocked = true;
  }
  if (!ep_sync(s)) return;
  ring_release(s);
  if (!s->q_len && !s->blocked && s->close_after_flush) finish_close(s);
}

/* EPOLLOUT: the kernel takes more; the queue continues (with what was
 * queued meanwhile: a blocked socket is not on the dirty list). */
static void on_writable(sw_sock_t *s) {
  dirty_unlink(s);
  s->blocked = false;
  flush(s);
  if (s->fd >= 0 && s->drain_wanted) drained(s);
}

/* ---- TLS output ------------------------------------------------------------
 *
 * Frames stay plaintext in the ring until the flush encrypts them, a
 * bounded batch at a time, into the socket's TLS output (a buffer the
 * socket owns until the kernel has taken all of it), and that goes to the
 * kernel as the plain path's frames do; what the kernel does not take waits
 * for EPOLLOUT. Only then is the next batch encrypted, so ciphertext waits
 * for one write at most and a slow consumer's backlog is still frames in
 * the ring, which slow_consumer can drop. The copy a TLS socket pays is
 * OpenSSL's, into the output; small frames are also gathered into one
 * record first. */

/* Writes the pending ciphertext. True if the kernel took all of it; false
 * if the rest waits for EPOLLOUT (s->blocked), or the socket closed. */
static bool write_tls(sw_sock_t *s) {
  sw_tls_t *t = s->tls;
  size_t n = tls_out_pending(t);
  struct iovec b = {t->out.data + t->out_off, n};
  ssize_t w = write_some(s, &b, 1);
  if (w < 0) {
    close_now(s);
    return false;
  }
  size_t done = (size_t)w;
  metrics_add(SW_M_BYTES_SENT, done);
  if (done == n) {
    buf_free(&t->out); /* an idle connection holds no output buffer */
    t->out_off = 0;
    return true;
  }
  /* New output (OpenSSL's, or the next batch) is appended behind it. */
  t->out_off += done;
  s->blocked = true;
  return false;
}

/* Encrypts about SW_READ_BUF bytes of queued frames. Frames smaller than a
 * record are gathered first, so that a fan-out of small messages costs one
 * record (one AEAD seal, 22 to 29 bytes of overhead) per 16 KiB rather than
 * one per message; larger ones are encrypted where they are. 0 or -1. */
static int encrypt_some(sw_sock_t *s) {
  sw_tls_t *t = s->tls;
  uint8_t *g = s->srv->tls_gather;
  size_t used = 0, total = 0;
  while (s->q_len && total < SW_READ_BUF) {
    sw_frame_t *f = s->q[s->q_head];
    if (used && f->len > SW_TLS_RECORD - used) {
      if (tls_push(t, g, used)) return -1;
      used = 0;
    }
    if (f->len < SW_TLS_RECORD) {
      memcpy(g + used, f->data, f->len);
      used += f->len;
    } else if (tls_push(t, f->data, f->len)) {
      return -1;
    }
    total += f->len;
    pop_head(s);
  }
  return used ? tls_push(t, g, used) : 0;
}

/* flush() of a TLS socket: the ciphertext already made, then the frames,
 * then, for a closing socket, close_notify, and only then the close. */
static void flush_tls(sw_sock_t *s) {
  sw_tls_t *t = s->tls;
  for (;;) {
    if (s->fd < 0) return;
    if (tls_out_pending(t)) {
      if (!write_tls(s)) {
        ep_sync(s);
        return;
      }
    } else if (s->q_len && t->ready && !t->failed) {
      if (encrypt_some(s)) {
        close_now(s);
        return;
      }
    } else if (s->close_after_flush && t->ready && !t->failed && !t->shut) {
      tls_close_notify(t);
    } else {
      break;
    }
  }
  if (!ep_sync(s)) return;
  ring_release(s);
  if (!s->close_after_flush) return;
  while (s->q_len) pop_head(s); /* a failed or unfinished handshake: nothing can be sent */
  finish_close(s);
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
static void resume_pipelined(sw_sock_t *s);

static void flush_all(sw_server_t *srv) {
  sw_sock_t *s;
  srv->flush_hold = srv->flush_held = false;
  uv_timer_stop(&srv->hold_timer);
  while ((s = srv->dirty)) {
    dirty_unlink(s);
    if (s->resume_in) resume_pipelined(s);
    flush(s);
    /* A replay may queue more: s joins the list again, same pass. */
    if (s->drain_wanted) drained(s);
  }
  uv_prepare_stop(&srv->flush);
}

/* The hold's bound: the loop wakes, and the prepare phase flushes. */
static void on_hold_timeout(uv_timer_t *t) { (void)t; }

static void on_flush(uv_prepare_t *h) {
  sw_server_t *srv = h->data;
  if (srv->flush_hold && !srv->flush_held) {
    /* One turn's wait (socks_hold_flush): the handle stays active, so the
     * next turn flushes, whatever wakes the loop first. */
    srv->flush_hold = false;
    srv->flush_held = true;
    uv_timer_start(&srv->hold_timer, on_hold_timeout, SW_FLUSH_HOLD_MS, 0);
    return;
  }
  flush_all(srv);
}

void socks_hold_flush(sw_server_t *srv) {
  if (srv->flush_open) srv->flush_hold = true;
}

/* Output was queued on s: it is flushed before the loop next waits. The
 * prepare handle is active exactly while the list is not empty, which also
 * keeps the loop alive for it; any callback may queue output (there is no
 * phase of the turn after which a listed socket would be forgotten). Before
 * the flush handle exists and after shutdown has closed it, output is
 * written at once. */
static void mark_dirty(sw_sock_t *s) {
  sw_server_t *srv = s->srv;
  /* A blocked socket is continued by on_writable, with all its queue. */
  if (s->dirty_pprev || s->blocked || s->fd < 0) return;
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

/* The request a socket's pipelined input waited behind has been answered
 * (its last reference went, inside whoever answered): reading resumes, and
 * the waiting requests are handled from the next flush, not from inside
 * that caller. The socket joins the dirty list even while blocked: flush()
 * skips a blocked socket, and its queue then continues from on_writable. */
static void resume_later(sw_sock_t *s) {
  s->held_req = false;
  if (s->fd < 0 || s->closing) return;
  s->no_input = false;
  if (!ep_sync(s)) return;
  if (!s->in || !s->in->len) return;
  sw_server_t *srv = s->srv;
  s->resume_in = true;
  if (s->dirty_pprev || !srv->flush_open) return; /* at shutdown nothing more is answered */
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
  uv_timer_init(srv->loop, &srv->hold_timer);
  uv_unref((uv_handle_t *)&srv->hold_timer); /* a bound, never a reason to keep the loop alive */
  srv->flush_open = true;
}

void socks_flush_close(sw_server_t *srv) {
  if (!srv->flush_open) return;
  flush_all(srv);
  uv_close((uv_handle_t *)&srv->flush, NULL);
  uv_close((uv_handle_t *)&srv->hold_timer, NULL);
  srv->flush_open = false;
}

static int enqueue(sw_sock_t *s, sw_frame_t *f) {
  uint32_t old = qcap(s);
  if (s->q_len == old) {
    uint32_t cap = old ? old * 2 : RING_CAP0;
    sw_frame_t **q = cap <= old ? NULL : old ? malloc(cap * sizeof *q) : ring_get(s->srv);
    if (!q) {
      close_now(s);
      return -1;
    }
    for (uint32_t i = 0; i < s->q_len; i++) q[i] = s->q[(s->q_head + i) & (old - 1)];
    ring_put(s->srv, s->q, old);
    s->q = q;
    s->q_log2 = (uint8_t)__builtin_ctz(cap);
    s->q_head = 0;
  }
  s->q[(s->q_head + s->q_len) & (qcap(s) - 1)] = frame_ref(f);
  s->q_len++;
  s->q_bytes += f->len;
  mark_dirty(s);
  return 0;
}

/* Drops the queued frames not yet begun: all but a head frame the kernel
 * has part of (cut short, it would break the stream's framing). A WebSocket
 * client gets them again from storage when it resumes (RTN15c6), so the
 * last words can follow right after what the kernel already holds instead
 * of after megabytes the client may never read. */
static void drop_unsent(sw_sock_t *s) {
  uint32_t keep = s->head_off ? 1 : 0;
  while (s->q_len > keep) {
    uint32_t i = (s->q_head + s->q_len - 1) & (qcap(s) - 1);
    s->q_bytes -= s->q[i]->len;
    frame_unref(s->q[i]);
    s->q_len--;
  }
}

/* A slow consumer: its queue cannot take more without unbounded growth. It
 * gets its last words beyond the bound: DISCONNECTED (42916), so the Ably
 * connection stays resumable and the client catches up from storage, then
 * a close frame (1013, "try again later") with the reason.
 * A stalled client (the kernel's buffer is full: output waits for
 * EPOLLOUT) loses the unsent backlog, so the last words come right after
 * what the kernel holds. A queue that overflowed within one loop turn,
 * before the kernel was offered it (a burst while the client reads), is
 * kept: the client reads it and then the last words, and resumes from
 * there; dropping it would make such a client lose everything each time. */
static void slow_consumer(sw_sock_t *s) {
  s->overflowed = true;
  metrics_inc(SW_M_SLOW_CONSUMERS);
  sw_conn_t *c = s->conn;
  log_ev(SW_LOG_WARN, "conn.slow_consumer", c ? c->id : NULL, c ? c->app->id : NULL, c ? SW_E_SLOW_CONSUMER : 0,
         "outbound queue over %zu bytes: disconnecting a slow consumer", s->srv->cfg->limits.max_outbound_bytes);
  if (s->blocked) drop_unsent(s);
  if (s->conn) conn_on_slow_consumer(s->conn);
  if (s->is_ws) {
    static const char reason[] = "42916: connection too slow to keep up: outbound backlog exceeded";
    uint8_t payload[2 + sizeof reason - 1] = {1013 >> 8, 1013 & 0xff};
    memcpy(payload + 2, reason, sizeof reason - 1);
    sw_frame_t *f = frame_ws(SW_WS_OP_CLOSE, payload, sizeof payload);
    if (f) {
      sock_send_last(s, f);
      frame_unref(f);
    }
  }
  sock_close(s, true);
}

int sock_send(sw_sock_t *s, sw_frame_t *f) {
  if (s->closing || s->fd < 0) return -1;
  if (s->q_bytes + f->len > s->srv->cfg->limits.max_outbound_bytes) {
    if (!s->overflowed) slow_consumer(s);
    return -1;
  }
  return enqueue(s, f);
}

int sock_send_last(sw_sock_t *s, sw_frame_t *f) {
  /* Lingering, the write side is shut. */
  if (s->fd < 0 || s->phase == SW_SOCK_LINGER) return -1;
  return enqueue(s, f);
}

int sock_send_bytes(sw_sock_t *s, const void *p, size_t n) {
  sw_frame_t *f = frame_copy(p, n);
  if (!f) return -1;
  int rc = sock_send(s, f);
  frame_unref(f);
  return rc;
}

/* An HTTP-level refusal before any handler ran (the request could not be
 * parsed, or did not arrive in time): the Ably error response, as REST
 * errors have (http_error_response), then a lingering close. The request's
 * Origin is unknown, so CORS allows any (the error is not a secret). */
static void http_refuse(sw_sock_t *s, int status, int code, const char *msg) {
  sw_error_t e;
  errors_set(&e, code, "%s", msg);
  e.status = status;
  char h[256];
  snprintf(h, sizeof h,
           "Access-Control-Allow-Origin: *\r\n"
           "Access-Control-Expose-Headers: X-Ably-ErrorCode, X-Ably-ErrorMessage, X-Ably-ServerId\r\n"
           "X-Ably-ServerId: %s\r\n",
           s->srv->server_id);
  sw_buf_t b = {0};
  if (http_error_response(&b, SW_FMT_JSON, &e, h, false) == 0) sock_send_bytes(s, b.data, b.len);
  buf_free(&b);
  sock_close(s, true);
}

static void http_refuse_parse(sw_sock_t *s, int r) {
  const sw_limits_t *lim = &s->srv->cfg->limits;
  char msg[128];
  switch (r) {
  case SW_HTTP_HEAD_TOO_LARGE:
    snprintf(msg, sizeof msg, "request head larger than %zu bytes", lim->max_http_head);
    http_refuse(s, 431, SW_E_INVALID_HEADER, msg);
    break;
  case SW_HTTP_BODY_TOO_LARGE:
    snprintf(msg, sizeof msg, "request body larger than maxHttpBody (%zu bytes)", lim->max_http_body);
    http_refuse(s, 413, SW_E_MESSAGE_TOO_LARGE, msg);
    break;
  case SW_HTTP_LENGTH_REQUIRED:
    http_refuse(s, 411, SW_E_BAD_REQUEST, "chunked request bodies are not accepted: send Content-Length");
    break;
  default:
    http_refuse(s, 400, SW_E_BAD_REQUEST, "malformed HTTP request");
  }
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
      if (f.fin && f.opcode != SW_WS_OP_CONT && !s->wsasm) {
        deliver(s, f.opcode, payload, plen);
      } else {
        if (!s->wsasm && !(s->wsasm = calloc(1, sizeof *s->wsasm))) {
          close_now(s);
          break;
        }
        s->wsasm->max_msg = (uint64_t)lim->max_frame_size;
        uint8_t op;
        int a = ws_msg_asm_add(s->wsasm, &f, payload, plen, &op);
        if (a == SW_WS_MALFORMED) ws_close_with(s, 1002);
        else if (a == SW_WS_TOO_LARGE) ws_close_with(s, 1009);
        else if (a < 0) close_now(s); /* out of memory */
        else if (a == 1) {
          /* The message is the socket's until delivered; then it goes. */
          sw_ws_msg_asm_t *m = s->wsasm;
          s->wsasm = NULL;
          deliver(s, op, m->buf.data, m->buf.len);
          ws_msg_asm_free(m);
          free(m);
        }
      }
    }
  }
  return pos;
}

/* After a request was handled: an upgrade either bound an Ably connection
 * (the socket is useful now) or was refused (it is closing). Otherwise
 * keep-alive waits for the next request, whose head is already due if its
 * first bytes came with this one. */
static void after_request(sw_sock_t *s, bool more) {
  const sw_limits_t *lim = &s->srv->cfg->limits;
  if (s->closing) return;
  if (s->is_ws) {
    if (s->conn) {
      became_useful(s);
      return;
    }
    if (s->refs) {
      /* A resume waits for another node's record (conn.c, resume_remote),
       * bounded by the cluster's command timeout: it binds the socket
       * (sock_ws_bound) or refuses it. Until then the socket keeps an idle
       * deadline, which a held socket only renews (expire). */
      set_phase(s, SW_SOCK_IDLE, lim->http_idle_timeout);
      return;
    }
    /* Not bound and not refused: the upgrade binds or refuses in the same
     * turn (credentials are in its query, RTN2), so this does not happen.
     * Were it ever to, an unbound WebSocket is not kept waiting: it has
     * nothing to wait for, and no HTTP deadline could answer it. */
    ws_close_with(s, 1008);
    return;
  }
  s->req_started = more;
  if (more) set_phase(s, SW_SOCK_HEAD, lim->http_head_timeout);
  else set_phase(s, SW_SOCK_IDLE, lim->http_idle_timeout);
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
    if (r == SW_HTTP_NEED_MORE) {
      /* The head is in: the body has its own deadline, from now. */
      if (req.head_len > 0 && s->phase != SW_SOCK_BODY) set_phase(s, SW_SOCK_BODY, lim->http_body_timeout);
      break;
    }
    if (r < 0) {
      http_refuse_parse(s, r);
      return len;
    }
    if (s->via_proxy) forwarded(s, &req);
    unsigned refs = s->refs;
    server_on_request(s, &req);
    pos += (size_t)r;
    if (!s->is_ws && !s->closing && s->refs > refs) {
      /* Answered later: what follows waits for that answer (held_req). */
      s->held_req = true;
      s->no_input = true;
      after_request(s, false);
      ep_sync(s);
      break;
    }
    after_request(s, pos < len);
  }
  return s->closing ? len : pos;
}

/* The pipelined requests a socket kept in `in` while one before them was
 * answered later (held_req), from the flush once that answer is queued. */
static void resume_pipelined(sw_sock_t *s) {
  s->resume_in = false;
  if (s->fd < 0 || s->closing || s->held_req || !s->in) return;
  if (s->phase == SW_SOCK_IDLE) set_phase(s, SW_SOCK_HEAD, s->srv->cfg->limits.http_head_timeout);
  s->req_started = true;
  size_t used = process(s, s->in->data, s->in->len);
  if (s->fd < 0 || !s->in) return;
  buf_consume(s->in, used);
  if (!s->in->len) {
    buf_free(s->in);
    free(s->in);
    s->in = NULL;
  }
}

/* Input of a closing socket is read and dropped (a lingering close), up to
 * linger_bytes. */
static void discard(sw_sock_t *s, size_t n) {
  uint64_t total = (uint64_t)s->discarded + n;
  s->discarded = total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
  if (total > s->srv->cfg->limits.linger_bytes) close_now(s);
}

/* Plaintext received: requests or frames, after what an earlier read left
 * incomplete in s->in. */
static void on_plain(sw_sock_t *s, uint8_t *data, size_t len) {
  if (s->held_req) {
    /* Behind a request answered later; reading has stopped, so this is
     * at most what one read already decrypted (TLS). */
    if ((!s->in && !(s->in = calloc(1, sizeof *s->in))) || buf_append(s->in, data, len)) close_now(s);
    return;
  }
  if (!s->is_ws) {
    /* The first bytes of the next keep-alive request start its head's deadline. */
    if (s->phase == SW_SOCK_IDLE) set_phase(s, SW_SOCK_HEAD, s->srv->cfg->limits.http_head_timeout);
    s->req_started = true;
  }
  if (s->in) {
    /* Bounded: a request or frame larger than the limits is refused by
     * the parsers before this grows past them. */
    if (buf_append(s->in, data, len)) {
      close_now(s);
      return;
    }
    size_t used = process(s, s->in->data, s->in->len);
    buf_consume(s->in, used);
    if (!s->in->len) {
      buf_free(s->in);
      free(s->in);
      s->in = NULL;
    }
    return;
  }
  size_t used = process(s, data, len);
  if (used < len && !s->closing && (!(s->in = calloc(1, sizeof *s->in)) || buf_append(s->in, data + used, len - used)))
    close_now(s);
}

/* The handshake is done: the first request's head is due. */
static void handshaken(sw_sock_t *s) {
  if (s->phase != SW_SOCK_HANDSHAKE) return;
  s->req_started = false;
  set_phase(s, SW_SOCK_HEAD, s->srv->cfg->limits.http_head_timeout);
}

/* A plain HTTP request on the TLS listener (OpenSSL recognises one and
 * fails the handshake): it is answered in plain HTTP, with the Ably error,
 * instead of a TLS alert it could not read. ably-js with `tls: false`, or
 * curl with http://, then says what is wrong. */
static void refuse_plain_http(sw_sock_t *s) {
  sw_tls_t *t = s->tls;
  sw_error_t e;
  errors_set(&e, SW_E_BAD_REQUEST, "this server speaks only TLS: use https:// and wss:// (ably-js: tls: true)");
  e.status = 400;
  buf_free(&t->out); /* the alert */
  t->out_off = 0;
  char h[160];
  snprintf(h, sizeof h, "Access-Control-Allow-Origin: *\r\nX-Ably-ServerId: %s\r\n", s->srv->server_id);
  /* Straight into the output, which the flush writes as it is. */
  http_error_response(&t->out, SW_FMT_JSON, &e, h, false);
}

/* A TLS socket's read: decrypts into the server's plaintext buffer (the
 * ciphertext is in the read buffer), then the plain path. The handshake
 * happens in tls_pull; what it answers is in the TLS output, which this
 * turn's flush writes. */
static void read_tls(sw_sock_t *s, const uint8_t *data, size_t len) {
  sw_tls_t *t = s->tls;
  uint8_t *plain = s->srv->tls_plain;
  size_t have = 0;
  ssize_t r;
  tls_feed(t, data, len);
  while ((r = tls_pull(t, plain + have, SW_READ_BUF - have)) > 0) {
    have += (size_t)r;
    if (have < SW_READ_BUF) continue;
    handshaken(s);
    on_plain(s, plain, have);
    have = 0;
    if (s->closing) break;
  }
  tls_feed(t, NULL, 0); /* what was not used belongs to a closing socket */
  if (t->ready) handshaken(s);
  if (have && !s->closing) on_plain(s, plain, have);
  if (r == SW_TLS_ERROR && !s->closing) {
    log_ev(SW_LOG_DEBUG, "tls.failed", NULL, NULL, 0, "TLS %s failed: %s", t->ready ? "connection" : "handshake",
           t->reason);
    if (t->plain_http) refuse_plain_http(s);
    sock_close(s, true); /* the alert (or the plain answer) first */
  } else if (r == SW_TLS_CLOSED && !s->closing) {
    close_now(s); /* close_notify: as the end of the stream on a plain socket */
  }
  if (tls_out_pending(t)) mark_dirty(s);
}

/* nread bytes arrived in the server's read buffer. */
static void on_data(sw_sock_t *s, size_t nread) {
  uint8_t *data = s->srv->rbuf;
  metrics_add(SW_M_BYTES_RECEIVED, (uint64_t)nread);
  if (s->closing) {
    discard(s, nread);
    return;
  }
  if (s->tls) {
    read_tls(s, data, nread);
    return;
  }
  on_plain(s, data, nread);
}

/* The peer closed its side (or the connection broke). */
static void on_eof(sw_sock_t *s) {
  /* A peer that shut its side may still read: let the last words go. */
  if (s->close_after_flush && s->phase == SW_SOCK_CLOSING) {
    s->peer_eof = true;
    s->no_input = true; /* level-triggered: EOF would be reported forever */
    ep_sync(s);
    return;
  }
  close_now(s);
}

/* EPOLLIN. Reads land in the server's one read buffer; only a partial
 * request or frame is copied into the socket's own buffer, so an idle
 * connection holds no input memory. A few reads per event at most: the
 * epoll is level-triggered, so what is left is reported again next turn,
 * and one busy client cannot hold the loop. */
#define READS_PER_EVENT 4
static void on_readable(sw_sock_t *s) {
  for (int i = 0; i < READS_PER_EVENT && s->fd >= 0 && !s->no_input; i++) {
    ssize_t n = read(s->fd, s->srv->rbuf, SW_READ_BUF);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) close_now(s);
      return;
    }
    if (n == 0) {
      on_eof(s);
      return;
    }
    on_data(s, (size_t)n);
    if (n < SW_READ_BUF) return;
  }
}

/* The server's epoll instance is readable: dispatches what is ready. A
 * socket closed by an earlier event of the batch is still allocated (the
 * reaper frees it later) and has fd -1: skipped. */
#define EVENTS_PER_WAIT 256
static void on_io(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  sw_server_t *srv = h->data;
  struct epoll_event evs[EVENTS_PER_WAIT];
  int n = epoll_wait(srv->epfd, evs, EVENTS_PER_WAIT, 0);
  for (int i = 0; i < n; i++) {
    sw_sock_t *s = evs[i].data.ptr;
    uint32_t e = evs[i].events;
    if (s->fd < 0) continue;
    /* An error or hang-up shows in the read or write that is wanted; with
     * neither wanted nothing more can happen on the socket. */
    if (e & (EPOLLERR | EPOLLHUP)) {
      if (!s->ep_in && !s->ep_out) {
        close_now(s);
        continue;
      }
      e |= (s->ep_in ? EPOLLIN : 0u) | (s->ep_out ? EPOLLOUT : 0u);
    }
    if ((e & EPOLLOUT) && s->ep_out) on_writable(s);
    if ((e & EPOLLIN) && s->fd >= 0) on_readable(s);
  }
}

/* What the peer sees when a phase runs out: a request under way gets 408
 * with the Ably error (which deadline, how long); a socket that sent
 * nothing of a request is closed without a word, as an idle keep-alive
 * connection is (an unsolicited 408 would be read as the answer to the
 * client's next request). Last words that do not go out in time are
 * dropped with the connection. */
static void expire(sw_sock_t *s, uint64_t now) {
  const sw_limits_t *lim = &s->srv->cfg->limits;
  char msg[128];
  s->srv->n_timed_out++;
  switch ((sw_sock_phase_t)s->phase) {
  case SW_SOCK_HEAD:
    if (!s->req_started) break;
    snprintf(msg, sizeof msg, "request head not received within httpHeadTimeout (%lld ms)",
             (long long)lim->http_head_timeout);
    http_refuse(s, 408, SW_E_BAD_REQUEST, msg);
    return;
  case SW_SOCK_BODY:
    snprintf(msg, sizeof msg, "request body not received within httpBodyTimeout (%lld ms)",
             (long long)lim->http_body_timeout);
    http_refuse(s, 408, SW_E_BAD_REQUEST, msg);
    return;
  case SW_SOCK_HANDSHAKE:
    break; /* nothing can be said before the handshake: closed */
  case SW_SOCK_IDLE:
    if (s->refs) {
      /* A request is still being answered (a REST publish waits for
       * storage): idle time starts after it. */
      s->srv->n_timed_out--;
      set_phase(s, SW_SOCK_IDLE, lim->http_idle_timeout);
      return;
    }
    if (s->q_len || s->blocked || s->tls) {
      sock_close(s, true); /* the answer is still being read; or TLS: close_notify first */
      return;
    }
    break;
  default:
    break;
  }
  close_now(s);
}

static void expire_list(sw_sock_list_t *l, uint64_t now) {
  /* expire() only ever unlinks s itself, or moves it to the tail of the
   * same list (sock_close of a pending socket keeps its place). */
  for (sw_sock_t *s = l->head, *next; s; s = next) {
    next = s->list_next;
    if (now >= s->deadline) expire(s, now);
  }
}

void socks_tick(sw_server_t *srv, uint64_t now) {
  expire_list(&srv->pending, now);
  expire_list(&srv->closing, now);
  /* One line per ~10 s under a flood, not one per socket. */
  if (srv->tick_count % 40 == 0 && (srv->n_evicted || srv->n_peer_refused || srv->n_timed_out)) {
    log_info("sockets: %llu past a deadline, %llu oldest pending evicted, %llu refused over the per-address cap "
             "(%zu pending, %zu closing)",
             (unsigned long long)srv->n_timed_out, (unsigned long long)srv->n_evicted,
             (unsigned long long)srv->n_peer_refused, srv->pending.n, srv->closing.n);
    srv->n_timed_out = srv->n_evicted = srv->n_peer_refused = 0;
  }
}

void socks_close_all(sw_server_t *srv) {
  for (sw_sock_t *s = srv->socks; s; s = s->next) close_now(s); /* unlinked in on_close, later */
}

/* Makes room in the budgets for a new socket (the oldest pending one goes),
 * or says there is none. */
static bool admit(sw_sock_t *s) {
  sw_server_t *srv = s->srv;
  const sw_limits_t *lim = &srv->cfg->limits;
  uint8_t key[16];
  /* A trusted proxy carries many clients: its sockets are not held to one
   * address's share (they still count in max_pending_sockets). */
  if (peer_key(s, key) && !s->via_proxy && !peer_admit(s, key)) {
    srv->n_peer_refused++;
    return false;
  }
  while (srv->pending.n >= lim->max_pending_sockets && srv->pending.head) {
    srv->n_evicted++;
    close_now(srv->pending.head);
  }
  if (srv->n_socks > lim->max_connections) {
    /* Sockets being closed count until their close callback. */
    if (!srv->pending.head) return false;
    srv->n_evicted++;
    close_now(srv->pending.head);
  }
  return true;
}

/* TCP_NODELAY (frames are written whole, once per turn) and keep-alive
 * after 60 s idle, as libuv's uv_tcp_nodelay and uv_tcp_keepalive set. */
static int tcp_opts(int fd) {
  int on = 1, idle = 60;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) ||
      setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) ||
      setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle))
    return -errno;
  return 0;
}

int sock_accept(sw_listener_t *l, int fd) {
  sw_server_t *srv = l->srv;
  sw_sock_t *s = calloc(1, sizeof *s);
  if (!s) {
    close(fd);
    return UV_ENOMEM;
  }
  s->srv = srv;
  s->fd = fd;
  s->next = srv->socks;
  if (srv->socks) srv->socks->prev = s;
  srv->socks = s;
  srv->n_socks++;
  s->metrics_only = l->metrics_only;
  if (srv->shutting_down || !admit(s)) {
    close_now(s);
    return UV_EAGAIN;
  }
  list_append(s, LIST_PENDING);
  if (srv->tls_ctx && !s->metrics_only) {
    /* The listener speaks only TLS; the metrics listener stays plain. */
    if (!(s->tls = tls_new(srv->tls_ctx))) {
      close_now(s);
      return UV_ENOMEM;
    }
    s->secure = true;
    set_phase(s, SW_SOCK_HANDSHAKE, srv->cfg->limits.tls_handshake_timeout);
  } else {
    set_phase(s, SW_SOCK_HEAD, srv->cfg->limits.http_head_timeout);
  }
  if (!l->inherits_opts) tcp_opts(fd); /* best effort, as before */
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
  if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev)) {
    int rc = -errno;
    close_now(s);
    return rc;
  }
  s->ep_in = true;
  return 0;
}

/* ---- listeners -------------------------------------------------------------
 *
 * libuv's uv_listen accepts only into a uv_tcp_t, so listeners are our own
 * sockets, each watched by a uv_poll_t. A readable listener is drained up
 * to ACCEPTS_PER_EVENT connections (level-triggered: the rest come next
 * turn). Out of descriptors (EMFILE, ENFILE), the pending connections are
 * accepted with the reserve descriptor and closed at once, as libuv does,
 * so that the listener does not stay readable and spin the loop. */
#define ACCEPTS_PER_EVENT 64

static void shed_pending(sw_server_t *srv, int lfd) {
  if (srv->reserve_fd < 0) return;
  close(srv->reserve_fd);
  for (int i = 0; i < ACCEPTS_PER_EVENT * 4; i++) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      break;
    }
    close(fd);
  }
  srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void on_listener(uv_poll_t *h, int status, int events) {
  (void)events;
  sw_listener_t *l = h->data;
  const char *what = l->metrics_only ? "metrics accept" : "accept";
  if (status < 0) {
    log_warn("%s: %s", what, uv_strerror(status));
    return;
  }
  for (int i = 0; i < ACCEPTS_PER_EVENT && l->fd >= 0; i++) {
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EINTR || err == ECONNABORTED) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EMFILE || err == ENFILE) shed_pending(l->srv, l->fd);
      log_warn("%s: %s", what, strerror(err));
      return;
    }
    int rc = sock_accept(l, fd);
    if (rc < 0 && rc != UV_EAGAIN) log_warn("%s: %s", what, uv_strerror(rc));
  }
}

int sock_listen(sw_server_t *srv, sw_listener_t *l, const struct sockaddr *addr, int backlog, bool metrics_only) {
  memset(l, 0, sizeof *l);
  l->srv = srv;
  l->metrics_only = metrics_only;
  l->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (l->fd < 0) return -errno;
  int on = 1;
  socklen_t alen = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  int rc = 0;
  if (setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) || bind(l->fd, addr, alen) ||
      listen(l->fd, backlog))
    rc = -errno;
  if (!rc) rc = uv_poll_init(srv->loop, &l->poll, l->fd);
  if (rc) {
    close(l->fd);
    l->fd = -1;
    return rc;
  }
  l->open = true;
  l->poll.data = l;
#ifdef __linux__
  /* Accepted sockets inherit these from the listener on Linux: three
   * setsockopt calls fewer per connection (sock_accept). */
  l->inherits_opts = tcp_opts(l->fd) == 0;
#endif
  return uv_poll_start(&l->poll, UV_READABLE, on_listener);
}

int sock_listener_port(const sw_listener_t *l) {
  struct sockaddr_storage bound;
  socklen_t len = sizeof bound;
  if (l->fd < 0 || getsockname(l->fd, (struct sockaddr *)&bound, &len)) return -1;
  return ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                           : ((struct sockaddr_in *)&bound)->sin_port);
}

void sock_listener_close(sw_listener_t *l) {
  if (!l->open) return;
  l->open = false;
  uv_close((uv_handle_t *)&l->poll, NULL); /* stops watching fd first */
  close(l->fd);
  l->fd = -1;
}

/* ---- the server's epoll ----------------------------------------------------*/

int socks_io_init(sw_server_t *srv) {
  if (srv->io_open) return 0;
  srv->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (srv->epfd < 0) return -errno;
  int rc = uv_poll_init(srv->loop, &srv->io, srv->epfd);
  if (rc) {
    close(srv->epfd);
    return rc;
  }
  srv->io.data = srv;
  uv_idle_init(srv->loop, &srv->reaper);
  srv->reaper.data = srv;
  srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  srv->io_open = true;
  return uv_poll_start(&srv->io, UV_READABLE, on_io);
}

void socks_io_close(sw_server_t *srv) {
  if (!srv->io_open || srv->socks || srv->dead) return;
  srv->io_open = false;
  uv_close((uv_handle_t *)&srv->io, NULL);
  uv_close((uv_handle_t *)&srv->reaper, NULL);
  close(srv->epfd);
  srv->epfd = -1;
  if (srv->reserve_fd >= 0) close(srv->reserve_fd);
  srv->reserve_fd = -1;
}
