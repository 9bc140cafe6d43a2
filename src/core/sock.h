/* sock.h: one accepted TCP connection, speaking HTTP/1.1 until it upgrades
 * to WebSocket.
 *
 * Output is a queue of frame references, so queuing a fanned-out message
 * costs no allocation. Queuing does not write: it puts the socket on the
 * server's dirty list, and once per loop turn, before the loop waits for
 * events and so after every callback of the turn (reads, store completions,
 * timers), each dirty socket is flushed with one writev of its whole queue.
 * Only what the kernel does not take waits, for EPOLLOUT on the socket, and
 * is continued when it is writable. So a burst of messages to many
 * subscribers costs one system call per subscriber, not one per message.
 * The queue is bounded by limits.max_outbound_bytes: past it the socket is
 * a slow consumer and is closed (the Ably connection is told why when
 * possible).
 *
 * I/O: a socket is a plain non-blocking descriptor in the server's own
 * epoll instance (level-triggered), which the loop watches with one
 * uv_poll_t: no libuv handle per connection (docs/design.md, "I/O").
 *
 * Lifetime: the server owns every sock. sock_close() may close the
 * descriptor at once, but memory is released in a later phase of the loop
 * (the server's reaper), once no reference (sock_ref, held by pending REST
 * publishes) remains, so code that closes a socket may still touch it in
 * the same call and callbacks never see freed memory. */
#ifndef SW_CORE_SOCK_H
#define SW_CORE_SOCK_H

#include <stdbool.h>
#include <uv.h>

#include "core/frame.h"
#include "net/ws_frame.h"
#include "util/buf.h"

typedef struct sw_server sw_server_t;
typedef struct sw_conn sw_conn_t;
typedef struct sw_listener sw_listener_t;
struct sockaddr;


/* What a socket is waiting for; each phase but LIVE has a deadline (the
 * limits named in sw_limits_t), checked by the server's tick. */
typedef enum {
  SW_SOCK_HEAD = 0, /* a request head: from accept, or from its first byte */
  SW_SOCK_BODY,     /* the rest of a request body */
  SW_SOCK_IDLE,     /* keep-alive: the next request */
  SW_SOCK_LIVE,     /* a WebSocket bound to an Ably connection: no deadline */
  SW_SOCK_CLOSING,  /* last words being written (close_timeout) */
  SW_SOCK_LINGER,   /* write side shut, input discarded until EOF (linger_timeout) */
  SW_SOCK_HANDSHAKE, /* TLS: the handshake, from accept (tls_handshake_timeout) */
} sw_sock_phase_t;

/* An idle authenticated connection is mostly this struct, so it is kept
 * small: no libuv handle (a descriptor in the server's epoll), no output ring while nothing is queued, no input buffer
 * until a read ends mid-request or mid-frame, no reassembly state unless a
 * message is fragmented, flags in bits, and fields ordered so that there are
 * no holes. */
typedef struct sw_sock {
  sw_server_t *srv;
  struct sw_sock *prev, *next; /* server's list */
  /* In the server's dirty list (output queued, not yet flushed) while
   * dirty_pprev is set: it points at the link that points here. */
  struct sw_sock *dirty_next, **dirty_pprev;
  /* In srv->pending or srv->closing (see `list`), or in neither (LIVE);
   * once closed, list_next links srv->dead. */
  struct sw_sock *list_prev, *list_next;
  struct sw_peer *peer; /* the per-address count this socket is in, or NULL */
  sw_conn_t *conn;   /* the Ably connection on this transport, or NULL */
  char *origin;      /* Origin of the HTTP request being answered (malloc'd), or NULL:
                        most sockets are WebSockets, so it is not kept inline */
  struct sw_tls *tls; /* TLS state (core/tls.h), or NULL on a plain socket */
  uint8_t *fwd;      /* from a trusted proxy: the client address its X-Forwarded-For
                        gave for the current request (16 bytes, malloc'd), or NULL */
  sw_buf_t *in;      /* what a read left of a partial request or frame (malloc'd), or NULL */
  /* output queue: a ring of frame references */
  sw_frame_t **q;
  size_t q_bytes;    /* bytes queued, including those being written */
  uint32_t q_head, q_len; /* the bound keeps a ring far below 2^32 frames */
  uint32_t head_off; /* bytes of q[q_head] already written (a frame's len is 32-bit) */
  unsigned refs;
  int fd;              /* the socket; -1 once closed */
  uint64_t deadline;   /* loop ms at which the phase ends (not LIVE) */
  uint32_t discarded;  /* input bytes dropped while closing (saturates) */
  uint8_t q_log2;      /* the ring holds 1 << q_log2 frames (while q is set) */
  uint8_t phase : 3;   /* sw_sock_phase_t */
  uint8_t list : 2;    /* 0: none, 1: srv->pending, 2: srv->closing */
  /* Flags as one-bit fields: 14 bools were 14 bytes of every socket. */
  bool is_ws : 1;
  /* The client of the current request: the TCP peer, or behind a trusted
   * proxy what the proxy said (X-Forwarded-For, X-Forwarded-Proto). */
  bool peer_loopback : 1; /* the client is on 127.0.0.0/8 or ::1 */
  bool secure : 1;        /* it reached us over TLS: ours, or the proxy's */
  bool via_proxy : 1;     /* the TCP peer is in trustedProxies */
  bool proxy_loopback : 1; /* ... and on loopback itself */
  bool closing : 1;      /* sock_close called */
  bool close_after_flush : 1;
  bool overflowed : 1;   /* the outbound bound was hit */
  bool reaped : 1;       /* closed and off the server's lists: freed once refs is 0 */
  bool blocked : 1;      /* the kernel took less than offered: output waits for EPOLLOUT */
  bool no_input : 1;     /* reading stopped (the peer shut its side while we write) */
  bool ep_in : 1, ep_out : 1; /* the events the fd is registered for in srv->epfd */
  bool drain_wanted : 1; /* a paced producer (a replay) waits for q_bytes < sock_low_water */
  bool metrics_only : 1; /* accepted by the metrics listener (root/health.c) */
  bool req_started : 1;  /* HEAD: bytes of the awaited request have arrived */
  bool peer_eof : 1;     /* the peer shut its side while our last words were queued */
  /* HTTP/1.1 answers pipelined requests in order (RFC 9112, 9.3.2): while
   * a request is answered later (its handler holds a sock_ref: storage,
   * Redis), the requests behind it wait unparsed in `in` and reading
   * stops; the last sock_unref resumes them (resume_in: from the flush). */
  bool held_req : 1;
  bool resume_in : 1;
  /* A fragmented WebSocket message being reassembled (malloc'd while one
   * is, freed once it is complete), or NULL: most clients never fragment. */
  sw_ws_msg_asm_t *wsasm;
} sw_sock_t;

/* The server's socket I/O (the epoll instance, its uv_poll_t, the reaper);
 * 0 or a negative errno. socks_io_close closes them once no socket is
 * left (shutdown; the reaper calls it again as the last ones go). */
int socks_io_init(sw_server_t *srv);
void socks_io_close(sw_server_t *srv);

/* Opens a listener on addr (SO_REUSEADDR; TCP_NODELAY and keep-alive for
 * its sockets to inherit) watched by the loop; 0 or a negative errno. Its
 * connections are accepted into srv's epoll. The port it is bound to:
 * sock_listener_port. */
int sock_listen(sw_server_t *srv, sw_listener_t *l, const struct sockaddr *addr, int backlog, bool metrics_only);
int sock_listener_port(const sw_listener_t *l);
void sock_listener_close(sw_listener_t *l);

/* Takes fd, just accepted on l: 0, or a negative errno (UV_EAGAIN: refused
 * by the budgets or at shutdown; fd is closed). */
int sock_accept(sw_listener_t *l, int fd);

/* Queues a reference to f (the caller keeps its own). Returns 0, or -1 when
 * the socket is closing or its queue is over the bound (the socket is then
 * being closed as a slow consumer). */
int sock_send(sw_sock_t *s, sw_frame_t *f);
/* Queues f even beyond the bound: the last words to a slow consumer. */
int sock_send_last(sw_sock_t *s, sw_frame_t *f);
/* The queue level below which a paced producer queues more: a replay
 * stops queuing at it and sets drain_wanted; once the queue has drained
 * below it, conn_on_drain is called. A quarter of maxOutboundBytes, at most
 * 1 MiB: the bound stays for live traffic, and one mark's worth of frames
 * is enough to keep the kernel's buffers full. REST pages use the same
 * budget (rest/route.c). */
size_t sock_low_water(const sw_sock_t *s);
/* Queues a copy of bytes. */
int sock_send_bytes(sw_sock_t *s, const void *p, size_t n);
/* Starts closing. after_flush: a lingering close. Queued output (the last
 * words) is written, bounded by limits.close_timeout; then the write side
 * is shut (the peer reads EOF after everything) and input is read and
 * discarded until the peer closes, limits.linger_timeout passes or
 * limits.linger_bytes arrive, so that unread input does not make the
 * kernel answer with a reset that could destroy the last words at the
 * peer. Without after_flush the TCP connection is closed at once. A later
 * call can only make it more abrupt. */
void sock_close(sw_sock_t *s, bool after_flush);

/* The deadlines, from the server's tick: closes or answers (408) every
 * pending or closing socket whose phase has run out. Bound WebSockets are
 * not visited. */
void socks_tick(sw_server_t *srv, uint64_t now);
/* Closes every socket at once, queued output dropped: the shutdown deadline. */
void socks_close_all(sw_server_t *srv);

/* The per-turn flush (a uv_prepare handle on the server's loop). Until
 * socks_flush_init, and after socks_flush_close, queued output is written at
 * once instead. */
void socks_flush_init(sw_server_t *srv);
/* A fan-out to many subscribers whose channel has more publishes being
 * committed asks the next flush to wait one loop turn, at most
 * SW_FLUSH_HOLD_MS: the next commit's fan-out then goes out in the same
 * writes. A store's group commits alternate small and large batches (one
 * publish committed alone while the rest of the window queues behind its
 * fsync), so half the writes carried one frame; a kernel write costs far
 * more than its bytes (docs/design.md, "Output and slow consumers"). A
 * turn that waited is always followed by a flush. */
#define SW_FLUSH_HOLD_MS 2
#define SW_FLUSH_HOLD_MIN_SUBS 32 /* fewer subscribers: not worth the wait */
void socks_hold_flush(sw_server_t *srv);
/* Flushes every dirty socket now and closes the flush handle: for shutdown,
 * after the last words to every client are queued. */
void socks_flush_close(sw_server_t *srv);
/* Frees the spare output rings (after the loop has ended). */
void socks_free_spares(sw_server_t *srv);

/* The client's address as text (46 bytes): the TCP peer's, or the one a
 * trusted proxy forwarded for the current request; "?" if unknown. */
void sock_client_address(const sw_sock_t *s, char out[46]);

/* A WebSocket whose upgrade was answered later (a resume that waited for
 * another node) is now bound to an Ably connection: no deadline any more. */
void sock_ws_bound(sw_sock_t *s);

void sock_ref(sw_sock_t *s);
void sock_unref(sw_sock_t *s);

#endif
