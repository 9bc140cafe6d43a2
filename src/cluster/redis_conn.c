/* redis_conn.c: see redis_conn.h.
 *
 * hiredis 0.14 (Debian 12) frees its context itself when the connection
 * fails, and calls back into us while it does; calling redisAsyncFree from
 * inside one of its callbacks (the connect callback in particular) would
 * free memory it still uses. So every drop we decide on (timeout, a failed
 * handshake, redis_conn_close) is done from our own timer, outside hiredis
 * (`kill`), and every drop hiredis decides on reaches us through the
 * disconnect or connect callback, after which we never touch its context. */
#include "cluster/redis_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "util/hash.h"

#include "util/log.h"

/* ------------------------------------------------ hiredis on the loop
 *
 * Our own event adapter, not hiredis's adapters/libuv.h: libuv reports an
 * error on the socket (POLLERR: a refused connect, a reset) as a callback
 * with status < 0, having stopped the handle, and that adapter ignores such
 * a callback, so a refused connect would hang until our connect deadline.
 * Here hiredis is told in either case and finds the error itself: a
 * connect in progress from its write handler, an established connection
 * from its read handler. */
typedef struct uvev {
  redisAsyncContext *ac;
  uv_poll_t poll;
  int events;
} uvev_t;

static void ev_poll(uv_poll_t *h, int status, int events) {
  uvev_t *e = h->data;
  if (!e->ac) return;
  if (status < 0) {
    if (!(e->ac->c.flags & REDIS_CONNECTED)) redisAsyncHandleWrite(e->ac);
    else redisAsyncHandleRead(e->ac);
    if (e->ac && e->events) uv_poll_start(&e->poll, e->events, ev_poll); /* still there: poll again */
    return;
  }
  if (events & UV_READABLE) redisAsyncHandleRead(e->ac);
  if (e->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(e->ac);
}

static void ev_update(uvev_t *e, int add, int del) {
  e->events = (e->events | add) & ~del;
  if (e->events) uv_poll_start(&e->poll, e->events, ev_poll);
  else uv_poll_stop(&e->poll);
}

static void ev_add_read(void *p) {
  ev_update(p, UV_READABLE, 0);
}
static void ev_del_read(void *p) {
  ev_update(p, 0, UV_READABLE);
}
static void ev_add_write(void *p) {
  ev_update(p, UV_WRITABLE, 0);
}
static void ev_del_write(void *p) {
  ev_update(p, 0, UV_WRITABLE);
}

static void ev_closed(uv_handle_t *h) {
  free(h->data);
}

/* hiredis is freeing the context: the handle goes, later. */
static void ev_cleanup(void *p) {
  uvev_t *e = p;
  e->ac = NULL;
  uv_close((uv_handle_t *)&e->poll, ev_closed);
}

static int ev_attach(redisAsyncContext *ac, uv_loop_t *loop) {
  if (ac->ev.data) return -1;
  uvev_t *e = calloc(1, sizeof *e);
  if (!e) return -1;
  if (uv_poll_init(loop, &e->poll, ac->c.fd) != 0) {
    free(e);
    return -1;
  }
  e->ac = ac;
  e->poll.data = e;
  ac->ev.addRead = ev_add_read;
  ac->ev.delRead = ev_del_read;
  ac->ev.addWrite = ev_add_write;
  ac->ev.delWrite = ev_del_write;
  ac->ev.cleanup = ev_cleanup;
  ac->ev.data = e;
  return 0;
}

typedef struct pending {
  sw_redis_conn_t *c;
  sw_redis_reply_cb cb;
  void *ud;
  uint64_t deadline; /* uv_now() ms */
  struct pending *prev, *next;
} pending_t;

typedef enum { SUB_NONE, SUB_SENT, SUB_OK, UNSUB_SENT } sub_state_t;

typedef struct sub {
  char *name;
  size_t len;
  bool wanted;
  sub_state_t st;
  UT_hash_handle hh;
} sub_t;

typedef enum { PH_IDLE, PH_RESOLVING, PH_CONNECTING, PH_HANDSHAKE, PH_UP } phase_t;

struct sw_redis_conn {
  uv_loop_t *loop;
  sw_redis_conn_opts_t o;
  char name[16];
  redisAsyncContext *ac;
  phase_t phase;
  uv_timer_t timer;
  uv_getaddrinfo_t gai;
  bool resolving;
  pending_t *head, *tail;
  size_t n_pending;
  sub_t *subs;
  int hs_left;       /* handshake replies still expected */
  uint32_t attempt;  /* failures since the last UP */
  uint64_t deadline; /* connect/handshake deadline */
  uint64_t retry_at;
  bool kill;         /* drop the context from the timer */
  int kill_err;      /* what the pending commands of a kill get */
  int fail_err;      /* what a NULL reply means while hiredis frees */
  bool in_free;      /* inside our redisAsyncFree */
  bool closing, finalized;
  char why[160];
  uint64_t rng;
  sw_redis_conn_stats_t st;
};

static void on_timer(uv_timer_t *t);
static void start_connect(sw_redis_conn_t *c);
static void resubscribe_all(sw_redis_conn_t *c);

/* ------------------------------------------------------------- helpers */

static uint64_t next_rand(sw_redis_conn_t *c) {
  uint64_t x = c->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return c->rng = x;
}

static void set_why(sw_redis_conn_t *c, const char *why) {
  snprintf(c->why, sizeof c->why, "%s", why && *why ? why : "connection lost");
}

static void arm(sw_redis_conn_t *c, uint64_t at) {
  if (c->finalized) return;
  uint64_t now = uv_now(c->loop);
  uv_timer_start(&c->timer, on_timer, at > now ? at - now : 0, 0);
}

/* Asks the timer to drop the context (never from inside hiredis). */
static void request_kill(sw_redis_conn_t *c, int err, const char *why) {
  if (!c->ac) return;
  if (!c->kill) {
    c->kill = true;
    c->kill_err = err;
    if (why) set_why(c, why);
  }
  arm(c, 0);
}

static void on_timer_closed(uv_handle_t *h) {
  sw_redis_conn_t *c = h->data;
  sub_t *s, *tmp;
  HASH_ITER(hh, c->subs, s, tmp) {
    HASH_DEL(c->subs, s);
    free(s->name);
    free(s);
  }
  free(c);
}

/* Frees c once nothing refers to it any more. */
static void maybe_finalize(sw_redis_conn_t *c) {
  if (!c->closing || c->finalized || c->ac || c->resolving) return;
  c->finalized = true;
  uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

/* A connect attempt, or a connection, failed: back off and retry. */
static void schedule_retry(sw_redis_conn_t *c) {
  c->phase = PH_IDLE;
  c->st.failures++;
  uint32_t lo = c->o.backoff_min_ms, hi = c->o.backoff_max_ms;
  uint64_t d = lo;
  for (uint32_t i = 0; i < c->attempt && d < hi; i++) d *= 2;
  if (d > hi) d = hi;
  c->attempt++;
  /* "Equal jitter": between half the delay and the delay, so nodes that
   * lost Redis together do not all come back in the same millisecond. */
  uint64_t delay = d / 2 + (d / 2 ? next_rand(c) % (d / 2 + 1) : 0);
  c->st.next_delay_ms = (uint32_t)delay;
  c->retry_at = uv_now(c->loop) + delay;
  if (c->attempt == 1) log_warn("redis %s: %s; retrying", c->name, c->why);
  else log_debug("redis %s: %s; retry in %llu ms", c->name, c->why, (unsigned long long)delay);
  arm(c, c->retry_at);
}

/* The context is gone (freed by hiredis or by us): forget the
 * subscriptions' server-side state and go on. */
static void after_drop(sw_redis_conn_t *c) {
  bool was_up = c->phase == PH_UP;
  c->ac = NULL;
  c->phase = PH_IDLE;
  sub_t *s, *tmp;
  HASH_ITER(hh, c->subs, s, tmp) {
    s->st = SUB_NONE;
    if (!s->wanted) {
      HASH_DEL(c->subs, s);
      free(s->name);
      free(s);
    }
  }
  if (c->closing) {
    maybe_finalize(c);
    return;
  }
  schedule_retry(c);
  if (was_up && c->o.on_state) c->o.on_state(c->o.ud, false, c->why);
}

static void do_kill(sw_redis_conn_t *c) {
  c->kill = false;
  redisAsyncContext *ac = c->ac;
  if (!ac) return;
  /* Commands fail at once from here (phase is no longer UP) and pending
   * ones complete with kill_err inside redisAsyncFree. */
  phase_t was = c->phase;
  c->phase = PH_IDLE;
  c->fail_err = c->kill_err;
  c->in_free = true;
  redisAsyncFree(ac);
  c->in_free = false;
  c->fail_err = 0;
  c->phase = was; /* so after_drop knows whether it was UP */
  after_drop(c);
}

static void on_timer(uv_timer_t *t) {
  sw_redis_conn_t *c = t->data;
  uint64_t now = uv_now(c->loop);
  if (c->kill) {
    do_kill(c);
    return;
  }
  if (c->closing) return;
  switch (c->phase) {
  case PH_IDLE:
    if (now >= c->retry_at) start_connect(c);
    else arm(c, c->retry_at);
    break;
  case PH_RESOLVING:
    if (now >= c->deadline) uv_cancel((uv_req_t *)&c->gai); /* on_resolved retries */
    else arm(c, c->deadline);
    break;
  case PH_CONNECTING:
  case PH_HANDSHAKE:
    if (now >= c->deadline) request_kill(c, -ETIMEDOUT, "connect timed out");
    else arm(c, c->deadline);
    break;
  case PH_UP:
    if (c->head && now >= c->head->deadline) {
      c->st.timeouts++;
      log_warn("redis %s: a command was unanswered for %u ms; reconnecting", c->name, c->o.command_timeout_ms);
      request_kill(c, -ETIMEDOUT, "command timed out");
    } else if (c->head) {
      arm(c, c->head->deadline);
    }
    break;
  }
}

/* --------------------------------------------------------- connecting */

static void on_disconnect(const redisAsyncContext *ac, int status) {
  sw_redis_conn_t *c = ac->data;
  (void)status;
  if (c->in_free) return; /* do_kill goes on */
  set_why(c, ac->errstr[0] ? ac->errstr : "connection closed");
  after_drop(c);
}

static void on_up(sw_redis_conn_t *c) {
  c->phase = PH_UP;
  c->attempt = 0;
  c->st.connects++;
  log_info("redis %s: connected", c->name);
  if (c->o.on_message) resubscribe_all(c);
  if (c->o.on_state) c->o.on_state(c->o.ud, true, "connected");
  if (c->head) arm(c, c->head->deadline);
  else if (!c->kill) uv_timer_stop(&c->timer);
}

static void on_handshake(redisAsyncContext *ac, void *rv, void *priv) {
  sw_redis_conn_t *c = priv;
  redisReply *r = rv;
  (void)ac;
  if (!r || c->closing || c->kill) return; /* the drop is under way */
  if (r->type == REDIS_REPLY_ERROR) {
    char why[160];
    snprintf(why, sizeof why, "handshake refused: %.120s", r->str);
    request_kill(c, -ECONNRESET, why);
    return;
  }
  if (--c->hs_left == 0) on_up(c);
}

static int hs_send(sw_redis_conn_t *c, int argc, const char **argv) {
  size_t lens[3];
  for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
  if (redisAsyncCommandArgv(c->ac, on_handshake, c, argc, argv, lens) != REDIS_OK) return -1;
  c->hs_left++;
  return 0;
}

static void on_connect(const redisAsyncContext *cac, int status) {
  sw_redis_conn_t *c = cac->data;
  if (status != REDIS_OK) {
    /* hiredis frees the context when this returns. */
    set_why(c, cac->errstr[0] ? cac->errstr : "connect failed");
    c->kill = false;
    after_drop(c);
    return;
  }
  if (c->closing || c->kill) return;
  c->phase = PH_HANDSHAKE;
  c->hs_left = 0;
  const sw_redis_url_t *u = &c->o.url;
  int bad = 0;
  if (u->has_password) {
    const char *auth_user[] = {"AUTH", u->user, u->password};
    const char *auth[] = {"AUTH", u->password};
    bad |= u->user[0] ? hs_send(c, 3, auth_user) : hs_send(c, 2, auth);
  }
  if (u->db > 0) {
    char db[16];
    snprintf(db, sizeof db, "%d", u->db);
    const char *sel[] = {"SELECT", db};
    bad |= hs_send(c, 2, sel);
  }
  for (size_t i = 0; i < c->o.n_scripts; i++) {
    const char *load[] = {"SCRIPT", "LOAD", c->o.scripts[i]};
    bad |= hs_send(c, 3, load);
  }
  const char *ping[] = {"PING"};
  bad |= hs_send(c, 1, ping);
  if (bad) request_kill(c, -ECONNRESET, "handshake could not be sent");
}

static void connect_to(sw_redis_conn_t *c, const char *ip) {
  redisAsyncContext *ac =
      c->o.url.unix_socket ? redisAsyncConnectUnix(c->o.url.path) : redisAsyncConnect(ip, c->o.url.port);
  if (!ac) {
    set_why(c, "out of memory");
    schedule_retry(c);
    return;
  }
  if (ac->err) {
    set_why(c, ac->errstr);
    redisAsyncFree(ac);
    schedule_retry(c);
    return;
  }
  if (ev_attach(ac, c->loop) != 0) {
    set_why(c, "cannot poll the socket");
    redisAsyncFree(ac);
    schedule_retry(c);
    return;
  }
  if (!c->o.url.unix_socket) redisEnableKeepAlive(&ac->c); /* a silent peer is found within a minute */
  ac->data = c;
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  c->ac = ac;
  c->phase = PH_CONNECTING;
  arm(c, c->deadline);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  sw_redis_conn_t *c = req->data;
  c->resolving = false;
  if (c->closing) {
    if (res) uv_freeaddrinfo(res);
    maybe_finalize(c);
    return;
  }
  char ip[64] = "";
  if (status == 0 && res) {
    if (res->ai_family == AF_INET6)
      uv_ip6_name((const struct sockaddr_in6 *)res->ai_addr, ip, sizeof ip);
    else
      uv_ip4_name((const struct sockaddr_in *)res->ai_addr, ip, sizeof ip);
  }
  if (res) uv_freeaddrinfo(res);
  if (!ip[0]) {
    char why[160];
    snprintf(why, sizeof why, "cannot resolve %.100s: %s", c->o.url.host,
             status ? uv_strerror(status) : "no address");
    set_why(c, why);
    schedule_retry(c);
    return;
  }
  connect_to(c, ip);
}

static void start_connect(sw_redis_conn_t *c) {
  c->deadline = uv_now(c->loop) + c->o.connect_timeout_ms;
  const sw_redis_url_t *u = &c->o.url;
  unsigned char tmp[16];
  if (u->unix_socket || inet_pton(AF_INET, u->host, tmp) == 1 || inet_pton(AF_INET6, u->host, tmp) == 1) {
    connect_to(c, u->host);
    return;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  c->gai.data = c;
  int r = uv_getaddrinfo(c->loop, &c->gai, on_resolved, u->host, NULL, &hints);
  if (r < 0) {
    set_why(c, uv_strerror(r));
    schedule_retry(c);
    return;
  }
  c->resolving = true;
  c->phase = PH_RESOLVING;
  arm(c, c->deadline);
}

/* ------------------------------------------------------------- public */

int redis_conn_open(uv_loop_t *loop, const sw_redis_conn_opts_t *opts, sw_redis_conn_t **out) {
  if (!loop || !opts || !out) return -EINVAL;
  if (opts->url.unix_socket ? !opts->url.path[0] : !opts->url.host[0]) return -EINVAL;
  sw_redis_conn_t *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  c->loop = loop;
  c->o = *opts;
  snprintf(c->name, sizeof c->name, "%s", opts->name ? opts->name : "conn");
  if (!c->o.connect_timeout_ms) c->o.connect_timeout_ms = 2000;
  if (!c->o.command_timeout_ms) c->o.command_timeout_ms = 5000;
  if (!c->o.backoff_min_ms) c->o.backoff_min_ms = 100;
  if (!c->o.backoff_max_ms) c->o.backoff_max_ms = 5000;
  if (c->o.backoff_max_ms < c->o.backoff_min_ms) c->o.backoff_max_ms = c->o.backoff_min_ms;
  if (!c->o.max_pending) c->o.max_pending = 10000;
  c->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)c ^ 0x9e3779b97f4a7c15ULL;
  if (!c->rng) c->rng = 1;
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  set_why(c, "not connected");
  start_connect(c);
  *out = c;
  return 0;
}

void redis_conn_close(sw_redis_conn_t *c) {
  if (!c || c->closing) return;
  c->closing = true;
  if (c->resolving) uv_cancel((uv_req_t *)&c->gai);
  if (c->ac) request_kill(c, -ESHUTDOWN, "closed");
  else maybe_finalize(c);
}

bool redis_conn_is_up(const sw_redis_conn_t *c) {
  return c && c->phase == PH_UP && !c->kill && !c->closing;
}

static void on_reply(redisAsyncContext *ac, void *rv, void *priv) {
  pending_t *p = priv;
  sw_redis_conn_t *c = p->c;
  (void)ac;
  /* Replies come in command order: p is the head. */
  if (p->prev) p->prev->next = p->next;
  else c->head = p->next;
  if (p->next) p->next->prev = p->prev;
  else c->tail = p->prev;
  c->n_pending--;
  int err = rv ? 0 : (c->fail_err ? c->fail_err : -ECONNRESET);
  p->cb(p->ud, rv, err);
  free(p);
}

int redis_conn_command(sw_redis_conn_t *c, sw_redis_reply_cb cb, void *ud, int argc, const char **argv,
                       const size_t *lens) {
  if (!c || !cb || argc < 1 || c->o.on_message) return -EINVAL;
  if (!redis_conn_is_up(c)) {
    c->st.refused++;
    return -ENOTCONN;
  }
  if (c->n_pending >= c->o.max_pending) {
    c->st.refused++;
    return -ENOBUFS;
  }
  pending_t *p = calloc(1, sizeof *p);
  if (!p) return -ENOMEM;
  p->c = c;
  p->cb = cb;
  p->ud = ud;
  p->deadline = uv_now(c->loop) + c->o.command_timeout_ms;
  if (redisAsyncCommandArgv(c->ac, on_reply, p, argc, argv, lens) != REDIS_OK) {
    free(p);
    c->st.refused++;
    return -ENOTCONN; /* hiredis is tearing the context down */
  }
  p->prev = c->tail;
  if (c->tail) c->tail->next = p;
  else c->head = p;
  c->tail = p;
  /* The timer watches the oldest command; start it if it sleeps. */
  if (c->n_pending++ == 0 && !uv_is_active((uv_handle_t *)&c->timer)) arm(c, p->deadline);
  return 0;
}

/* ------------------------------------------------------------- pub/sub */

static sub_t *sub_find(const sw_redis_conn_t *c, const char *name, size_t len) {
  sub_t *s = NULL;
  HASH_FIND(hh, c->subs, name, len, s);
  return s;
}

static void on_sub(redisAsyncContext *ac, void *rv, void *priv);

static int send_subs(sw_redis_conn_t *c, const char *verb, sub_t **v, size_t n) {
  const char *argv[257];
  size_t lens[257];
  argv[0] = verb;
  lens[0] = strlen(verb);
  for (size_t i = 0; i < n; i++) {
    argv[i + 1] = v[i]->name;
    lens[i + 1] = v[i]->len;
  }
  return redisAsyncCommandArgv(c->ac, on_sub, c, (int)n + 1, argv, lens) == REDIS_OK ? 0 : -1;
}

static void send_one(sw_redis_conn_t *c, sub_t *s, bool subscribe) {
  if (send_subs(c, subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE", &s, 1) == 0)
    s->st = subscribe ? SUB_SENT : UNSUB_SENT;
}

/* After a (re)connect: every wanted channel, 256 to a command. */
static void resubscribe_all(sw_redis_conn_t *c) {
  sub_t *batch[256], *s, *tmp;
  size_t n = 0;
  HASH_ITER(hh, c->subs, s, tmp) {
    if (!s->wanted || s->st != SUB_NONE) continue;
    batch[n++] = s;
    if (n == 256) {
      if (send_subs(c, "SUBSCRIBE", batch, n) == 0)
        for (size_t i = 0; i < n; i++) batch[i]->st = SUB_SENT;
      n = 0;
    }
  }
  if (n && send_subs(c, "SUBSCRIBE", batch, n) == 0)
    for (size_t i = 0; i < n; i++) batch[i]->st = SUB_SENT;
}

static bool is(const redisReply *e, const char *word) {
  return e->type == REDIS_REPLY_STRING && e->len == strlen(word) && strncasecmp(e->str, word, e->len) == 0;
}

static void on_sub(redisAsyncContext *ac, void *rv, void *priv) {
  sw_redis_conn_t *c = priv;
  redisReply *r = rv;
  (void)ac;
  if (!r || c->closing || r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
  const redisReply *kind = r->element[0], *ch = r->element[1], *val = r->element[2];
  if (ch->type != REDIS_REPLY_STRING) return;
  sub_t *s = sub_find(c, ch->str, ch->len);
  if (!s) return;
  if (is(kind, "message")) {
    if (s->st == SUB_OK && s->wanted && val->type == REDIS_REPLY_STRING)
      c->o.on_message(c->o.ud, ch->str, ch->len, val->str, val->len);
  } else if (is(kind, "subscribe")) {
    s->st = SUB_OK;
    if (!s->wanted) send_one(c, s, false);
    else if (c->o.on_subscribed) c->o.on_subscribed(c->o.ud, s->name, s->len);
  } else if (is(kind, "unsubscribe")) {
    s->st = SUB_NONE;
    if (s->wanted) {
      /* Wanted again while the UNSUBSCRIBE was in flight: only now, since
       * hiredis 0.14 drops the channel's callback on this reply. */
      send_one(c, s, true);
    } else {
      HASH_DEL(c->subs, s);
      free(s->name);
      free(s);
    }
  }
}

int redis_conn_subscribe(sw_redis_conn_t *c, const char *channel, size_t len) {
  if (!c || !c->o.on_message || !channel || !len) return -EINVAL;
  sub_t *s = sub_find(c, channel, len);
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s || !(s->name = malloc(len + 1))) {
      free(s);
      return -ENOMEM;
    }
    memcpy(s->name, channel, len);
    s->name[len] = '\0';
    s->len = len;
    HASH_ADD_KEYPTR(hh, c->subs, s->name, s->len, s);
  }
  s->wanted = true;
  if (redis_conn_is_up(c) && s->st == SUB_NONE) send_one(c, s, true);
  return 0;
}

int redis_conn_unsubscribe(sw_redis_conn_t *c, const char *channel, size_t len) {
  if (!c || !c->o.on_message || !channel || !len) return -EINVAL;
  sub_t *s = sub_find(c, channel, len);
  if (!s) return 0;
  s->wanted = false;
  if (s->st == SUB_NONE) {
    HASH_DEL(c->subs, s);
    free(s->name);
    free(s);
  } else if (s->st == SUB_OK && redis_conn_is_up(c)) {
    send_one(c, s, false);
  } /* SUB_SENT: the confirmation unsubscribes; UNSUB_SENT: under way */
  return 0;
}

bool redis_conn_subscribed(const sw_redis_conn_t *c, const char *channel, size_t len) {
  const sub_t *s = c ? sub_find(c, channel, len) : NULL;
  return s && s->wanted && s->st == SUB_OK && redis_conn_is_up(c);
}

void redis_conn_stats(const sw_redis_conn_t *c, sw_redis_conn_stats_t *st) {
  *st = c->st;
  st->pending = c->n_pending;
}
