/* bench_sw.c: everything that drives switchboard through libswitchboard's
 * public API: the link used by fanout and idle, and the connect, durable
 * and ai scenarios. All clients of a worker share the worker's loop. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard.h"
#include "tools/bench.h"

void bench_sw_options(bench_worker_t *w, sw_options_t *o, int conn_idx) {
  bench_t *b = w->b;
  sw_options_init(o);
  o->host = b->o.host;
  o->port = b->o.port;
  o->tls = b->o.tls;
  o->tls_ca_file = b->o.ca_file;
  o->loop = &w->loop;
  if (b->n_jwts) o->token = b->jwts[(size_t)conn_idx % b->n_jwts];
  else o->key = b->key;
  o->log_level = SW_LOG_NONE;
  /* Server-stamped ids are enough here; client ids would only add the
   * server's two-minute duplicate memo to what we measure. */
  o->idempotent = false;
  /* A storm of thousands queues behind the accept loop: allow for it rather
   * than time out and retry, which would measure the retry policy. */
  o->realtime_request_timeout_ms = 60000;
}

/* A connection that goes away mid-run is an error for the bench: it would
 * resume and lose nothing, but the figures would be about the reconnect. */
static bool state_is_bad(const sw_state_change_t *ch) {
  return ch->current == SW_CONN_FAILED || ch->current == SW_CONN_DISCONNECTED ||
         ch->current == SW_CONN_SUSPENDED || ch->current == SW_CONN_CLOSED;
}

static void fail_state(bench_worker_t *w, const char *who, int idx, const sw_state_change_t *ch) {
  bench_fail(w, "%s %d: %s (%d %s)", who, idx, sw_conn_state_name(ch->current), ch->reason ? ch->reason->code : 0,
             ch->reason ? ch->reason->message : "");
}

/* ---- the link for fanout and idle ---------------------------------------- */

typedef struct swl_conn {
  struct swl *l;
  sw_client_t *c;
  sw_channel_t *ch;
  int idx; /* local subscriber index, -1 for the publisher */
  bool up;
} swl_conn_t;

typedef struct swl {
  bench_link_t base;
  swl_conn_t *subs;
  swl_conn_t pub;
} swl_t;

static void swl_state(sw_client_t *c, const sw_state_change_t *ch, void *ud) {
  swl_conn_t *k = ud;
  (void)c;
  if (k->idx < 0 && ch->current == SW_CONN_CONNECTED && !k->up) {
    k->up = true;
    k->l->base.ev->pub_ready(&k->l->base);
  } else if (state_is_bad(ch)) {
    fail_state(k->l->base.w, k->idx < 0 ? "publisher" : "subscriber", k->idx, ch);
  }
}

static void swl_attached(sw_channel_t *ch, const sw_errinfo_t *err, void *ud) {
  swl_conn_t *k = ud;
  (void)ch;
  if (err) {
    bench_fail(k->l->base.w, "attach failed: %d %s", err->code, err->message);
    return;
  }
  k->up = true;
  k->l->base.ev->sub_ready(&k->l->base, k->idx);
}

static void swl_message(sw_channel_t *ch, const sw_message_t *m, void *ud) {
  swl_conn_t *k = ud;
  (void)ch;
  k->l->base.ev->message(&k->l->base, k->idx, m->data, m->data_len);
}

static int swl_open(swl_t *l, swl_conn_t *k, int conn_idx, const char *channel, bool sub) {
  sw_options_t o;
  bench_sw_options(l->base.w, &o, conn_idx);
  /* Subscribers spread over --hosts (a cluster's nodes); the publisher
   * stays on --host. */
  if (sub) o.host = bench_spread_host(l->base.w->b, conn_idx);
  o.on_state = swl_state;
  o.state_ud = k;
  o.echo = false;
  sw_errinfo_t err;
  k->l = l;
  if (sw_client_new(&o, &k->c, &err)) return -1;
  k->ch = sw_client_channel(k->c, channel);
  if (!k->ch) return -1;
  if (sub && (sw_channel_subscribe(k->ch, NULL, swl_message, k) < 0 || sw_channel_attach(k->ch, swl_attached, k)))
    return -1;
  return sw_client_connect(k->c);
}

static int swl_sub_open(bench_link_t *lk, int idx, int conn_idx, const char *channel) {
  swl_t *l = (swl_t *)lk;
  l->subs[idx].idx = idx;
  return swl_open(l, &l->subs[idx], conn_idx, channel, true);
}

static int swl_pub_open(bench_link_t *lk, int conn_idx, const char *channel) {
  swl_t *l = (swl_t *)lk;
  l->pub.idx = -1;
  return swl_open(l, &l->pub, conn_idx, channel, false);
}

static void swl_acked(sw_channel_t *ch, const sw_errinfo_t *err, const char *const *serials, size_t n, void *ud) {
  swl_t *l = ud;
  (void)ch, (void)serials, (void)n;
  if (err) bench_fail(l->base.w, "publish refused: %d %s", err->code, err->message);
}

static int swl_publish(bench_link_t *lk, const void *p, size_t n) {
  swl_t *l = (swl_t *)lk;
  sw_message_t m = {.name = "m", .data = p, .data_len = n, .data_type = SW_PAYLOAD_STRING, .action = -1};
  return sw_channel_publish_messages(l->pub.ch, &m, 1, swl_acked, l);
}

static void swl_close_all(bench_link_t *lk) {
  swl_t *l = (swl_t *)lk;
  /* sw_client_free closes asynchronously and calls nothing back, so the
   * link itself can go at once. */
  for (int i = 0; i < lk->n_subs; i++) sw_client_free(l->subs[i].c);
  sw_client_free(l->pub.c);
  free(l->subs);
  free(l);
}

static const bench_link_ops_t swl_ops = {
    .sub_open = swl_sub_open, .pub_open = swl_pub_open, .publish = swl_publish, .close_all = swl_close_all};

bench_link_t *bench_link_switchboard(bench_worker_t *w, int n_subs) {
  swl_t *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->subs = calloc((size_t)n_subs + 1, sizeof *l->subs);
  if (!l->subs) {
    free(l);
    return NULL;
  }
  l->base.ops = &swl_ops;
  l->base.w = w;
  l->base.n_subs = n_subs;
  return &l->base;
}

/* ---- connect: a storm of JWT-authenticated connections -------------------- */

typedef struct storm_conn {
  struct storm *s;
  sw_client_t *c;
  int64_t t0;
  int idx;
  bool up;
} storm_conn_t;

typedef struct storm {
  bench_worker_t *w;
  storm_conn_t *conns;
  bench_link_t *raw; /* --raw: the connections are a raw link's */
  int first, n, opened, up;
} storm_t;

static void storm_open_more(storm_t *s);

static void storm_connected(storm_t *s, storm_conn_t *k) {
  int64_t now = bench_now_ns();
  k->up = true;
  s->up++;
  s->w->res->ops++;
  bench_sample(s->w, &s->w->res->lat, k->t0, now);
  if (s->up == s->n) {
    s->w->res->t_done_ns = now;
    bench_done(s->w);
  }
  storm_open_more(s);
}

static void storm_state(sw_client_t *c, const sw_state_change_t *ch, void *ud) {
  storm_conn_t *k = ud;
  storm_t *s = k->s;
  (void)c;
  if (ch->current == SW_CONN_CONNECTED && !k->up) storm_connected(s, k);
  else if (state_is_bad(ch) && s->w->phase < PH_EXIT) fail_state(s->w, "connection", k->idx, ch);
}

static void storm_raw_up(bench_link_t *lk, int idx) {
  storm_t *s = lk->ud;
  if (!s->conns[idx].up) storm_connected(s, &s->conns[idx]);
}

static void storm_raw_none(bench_link_t *lk) { (void)lk; }
static void storm_raw_msg(bench_link_t *lk, int idx, const void *p, size_t n) { (void)lk, (void)idx, (void)p, (void)n; }

static const bench_link_events_t storm_raw_events = {
    .sub_ready = storm_raw_up, .pub_ready = storm_raw_none, .message = storm_raw_msg};

static void storm_open_more(storm_t *s) {
  int conc = s->w->b->o.concurrency;
  while (s->opened < s->n && s->opened - s->up < conc) {
    int i = s->opened++;
    storm_conn_t *k = &s->conns[i];
    k->s = s;
    k->idx = s->first + i;
    k->t0 = bench_now_ns();
    s->w->res->conns++;
    if (s->raw) {
      if (s->raw->ops->sub_open(s->raw, i, k->idx, "")) {
        bench_fail(s->w, "connection %d could not start", k->idx);
        return;
      }
      continue;
    }
    sw_options_t o;
    bench_sw_options(s->w, &o, k->idx);
    o.on_state = storm_state;
    o.state_ud = k;
    /* As the raw clients do (bench_peer.c): on loopback, spread the storm
     * over source addresses 127.0.0.2-251, each with its own ephemeral
     * ports, so connect()'s port search does not dominate the load. */
    char src[16];
    struct in_addr dst;
    if (inet_pton(AF_INET, o.host, &dst) == 1 && (ntohl(dst.s_addr) >> 24) == 127) {
      snprintf(src, sizeof src, "127.0.0.%d", 2 + k->idx % 250);
      o.local_address = src;
    }
    sw_errinfo_t err = {0};
    if (sw_client_new(&o, &k->c, &err) || sw_client_connect(k->c)) {
      bench_fail(s->w, "connection %d could not start: %s", k->idx, err.message);
      return;
    }
  }
}

static int connect_setup(bench_worker_t *w) {
  storm_t *s = calloc(1, sizeof *s);
  if (!s) return -1;
  w->state = s;
  s->w = w;
  bench_share(w, w->b->o.conns, &s->first, &s->n);
  s->conns = calloc((size_t)s->n + 1, sizeof *s->conns);
  if (!s->conns) return -1;
  if (w->b->o.raw) {
    if (!(s->raw = bench_link_ably_raw(w, s->n))) return -1;
    s->raw->ev = &storm_raw_events;
    s->raw->ud = s;
  }
  bench_ready(w); /* nothing to prepare: the storm is the measurement */
  return 0;
}

static void connect_run(bench_worker_t *w) {
  storm_t *s = w->state;
  if (s->n == 0) {
    w->res->t_done_ns = bench_now_ns();
    bench_done(w);
  }
  storm_open_more(s);
}

static void connect_stop(bench_worker_t *w) { (void)w; /* done when the last one came up */ }

static void connect_teardown(bench_worker_t *w) {
  storm_t *s = w->state;
  if (!s) return;
  if (s->raw) s->raw->ops->close_all(s->raw);
  for (int i = 0; i < s->opened; i++) sw_client_free(s->conns[i].c);
  free(s->conns);
  free(s);
  w->state = NULL;
}

const bench_scenario_t bench_connect_scenario = {
    .name = "connect", .setup = connect_setup, .run = connect_run, .stop = connect_stop, .teardown = connect_teardown};

/* ---- durable: several publishers, each with a window of publishes ------- */

typedef struct dpub {
  struct dur *d;
  sw_client_t *c;
  sw_channel_t *ch;
  int idx, in_flight;
  bool up;
  uint64_t seq;
  int64_t *sent_at; /* FIFO of send times: ACKs come in msgSerial order */
  int head, tail;
} dpub_t;

typedef struct dur {
  bench_worker_t *w;
  dpub_t *pubs;
  int first, n, up, drained;
  bool running;
  char *buf;
  /* --pub-rate: this worker's share, paced by a 1 ms timer. Publish k is
   * due at t0 + k / rate; its ACK latency counts from then, so a publish
   * held back by a full window (a slow server) shows as latency. */
  double rate;
  int64_t t0;
  uint64_t issued;
  uv_timer_t pace;
  bool pace_open;
} dur_t;

static void dur_publish(dpub_t *p);
static int dur_send(dpub_t *p, int64_t t);

static void dur_acked(sw_channel_t *ch, const sw_errinfo_t *err, const char *const *serials, size_t n, void *ud) {
  dpub_t *p = ud;
  dur_t *d = p->d;
  bench_worker_t *w = d->w;
  (void)ch, (void)serials, (void)n;
  int64_t now = bench_now_ns();
  if (err) {
    bench_fail(w, "publish NACKed: %d %s", err->code, err->message);
    return;
  }
  int64_t t = p->sent_at[p->head];
  p->head = (p->head + 1) % w->b->o.window;
  p->in_flight--;
  w->res->got++;
  if (bench_in_window(w, t)) {
    w->res->ops++;
    bench_sample(w, &w->res->lat, t, now);
  }
  if (d->running) {
    if (d->rate <= 0) dur_publish(p);
  } else if (p->in_flight == 0 && ++d->drained == d->n) bench_done(w);
}

/* One publish on p, its latency counted from t. */
static int dur_send(dpub_t *p, int64_t t) {
  dur_t *d = p->d;
  bench_worker_t *w = d->w;
  size_t len = (size_t)w->b->o.payload;
  bench_payload(d->buf, len, ++p->seq, t);
  sw_message_t m = {.name = "m", .data = d->buf, .data_len = len, .data_type = SW_PAYLOAD_STRING, .action = -1};
  if (sw_channel_publish_messages(p->ch, &m, 1, dur_acked, p)) {
    bench_fail(w, "publish failed");
    return -1;
  }
  p->sent_at[p->tail] = t;
  p->tail = (p->tail + 1) % w->b->o.window;
  p->in_flight++;
  w->res->sent++;
  return 0;
}

static void dur_publish(dpub_t *p) {
  dur_t *d = p->d;
  while (d->running && p->in_flight < d->w->b->o.window)
    if (dur_send(p, bench_now_ns())) return;
}

/* --pub-rate: sends every publish due by now, round-robin over this
 * worker's publishers; one whose window is full holds the rest back until
 * an ACK frees it (their latency grows: that is the figure). */
static void dur_pace(uv_timer_t *t) {
  dur_t *d = t->data;
  if (!d->running) return;
  int64_t now = bench_now_ns();
  uint64_t due = (uint64_t)((double)(now - d->t0) * d->rate / 1e9);
  while (d->issued < due) {
    dpub_t *p = &d->pubs[d->issued % (uint64_t)d->n];
    if (p->in_flight >= d->w->b->o.window) break;
    int64_t at = d->t0 + (int64_t)((double)d->issued * 1e9 / d->rate);
    if (dur_send(p, at)) return;
    d->issued++;
  }
}

static void dur_state(sw_client_t *c, const sw_state_change_t *ch, void *ud) {
  dpub_t *p = ud;
  (void)c;
  if (ch->current == SW_CONN_CONNECTED && !p->up) {
    p->up = true;
    if (++p->d->up == p->d->n) bench_ready(p->d->w);
  } else if (state_is_bad(ch) && p->d->w->phase < PH_EXIT) {
    fail_state(p->d->w, "publisher", p->idx, ch);
  }
}

static int durable_setup(bench_worker_t *w) {
  dur_t *d = calloc(1, sizeof *d);
  if (!d) return -1;
  w->state = d;
  d->w = w;
  const bench_opts_t *o = &w->b->o;
  bench_share(w, o->publishers, &d->first, &d->n);
  d->pubs = calloc((size_t)d->n + 1, sizeof *d->pubs);
  d->buf = malloc((size_t)o->payload + 1);
  if (!d->pubs || !d->buf) return -1;
  for (int i = 0; i < d->n; i++) {
    dpub_t *p = &d->pubs[i];
    p->d = d;
    p->idx = d->first + i;
    p->sent_at = calloc((size_t)o->window, sizeof *p->sent_at);
    sw_options_t so;
    bench_sw_options(w, &so, p->idx);
    so.host = bench_spread_host(w->b, p->idx);
    so.on_state = dur_state;
    so.state_ud = p;
    sw_errinfo_t err;
    char name[64];
    snprintf(name, sizeof name, "durable:p%d", p->idx);
    if (!p->sent_at || sw_client_new(&so, &p->c, &err) || !(p->ch = sw_client_channel(p->c, name)) ||
        sw_client_connect(p->c))
      return -1;
    w->res->conns++;
  }
  if (o->pub_rate > 0 && d->n > 0) {
    d->rate = (double)o->pub_rate * d->n / o->publishers;
    uv_timer_init(&w->loop, &d->pace);
    d->pace.data = d;
    d->pace_open = true;
  }
  if (d->n == 0) bench_ready(w);
  return 0;
}

static void durable_run(bench_worker_t *w) {
  dur_t *d = w->state;
  d->running = true;
  if (d->pace_open) {
    d->t0 = bench_now_ns();
    uv_timer_start(&d->pace, dur_pace, 1, 1);
    return;
  }
  for (int i = 0; i < d->n; i++) dur_publish(&d->pubs[i]);
}

static void durable_stop(bench_worker_t *w) {
  dur_t *d = w->state;
  d->running = false;
  if (d->pace_open) uv_timer_stop(&d->pace);
  d->drained = 0;
  for (int i = 0; i < d->n; i++)
    if (d->pubs[i].in_flight == 0) d->drained++;
  if (d->drained == d->n) bench_done(w);
}

static void dur_free(dur_t *d) {
  free(d->pubs);
  free(d->buf);
  free(d);
}

static void dur_pace_closed(uv_handle_t *h) { dur_free(h->data); }

static void durable_teardown(bench_worker_t *w) {
  dur_t *d = w->state;
  if (!d) return;
  for (int i = 0; i < d->n; i++) {
    sw_client_free(d->pubs[i].c);
    free(d->pubs[i].sent_at);
  }
  w->state = NULL;
  /* The pacing timer lives in d: d goes once it has closed. */
  if (d->pace_open) uv_close((uv_handle_t *)&d->pace, dur_pace_closed);
  else dur_free(d);
}

const bench_scenario_t bench_durable_scenario = {
    .name = "durable", .setup = durable_setup, .run = durable_run, .stop = durable_stop, .teardown = durable_teardown};

/* ---- ai: streams of appends, each watched by subscribers ------------------ */

#define AI_RING 1024 /* appends of one stream awaiting their ACK */

typedef struct ai_agent {
  struct ai *a;
  sw_client_t *c;
  int idx;
  bool up;
} ai_agent_t;

typedef struct ai_watch {
  struct ai_stream *s;
  sw_client_t *c;
  sw_channel_t *ch;
  int idx;
  bool up;
} ai_watch_t;

typedef struct ai_stream {
  struct ai *a;
  int idx; /* global stream number */
  ai_agent_t *agent;
  sw_channel_t *ch; /* on the agent's client */
  ai_watch_t *watch;
  int watchers_up;
  char *serial; /* of the message the appends extend */
  bool creating, ready;
  uv_timer_t timer;
  bool timer_open;
  uint64_t seq, acked;
  int64_t sent_at[AI_RING];
  int head, tail;
} ai_stream_t;

typedef struct ai {
  bench_worker_t *w;
  ai_stream_t *streams;
  ai_agent_t *agents;
  int first, n;   /* streams */
  int afirst, an; /* agents */
  int opened, pending; /* connections opened / still on their way */
  int ready;
  bool running, stopping;
  int closing;
  char *buf;
} ai_t;

static void ai_open_more(ai_t *a);
static void ai_check_done(ai_t *a);

/* Every watcher attached and the agent up: start the stream's message. */
static void ai_stream_acked_create(sw_channel_t *ch, const sw_errinfo_t *err, const char *const *serials, size_t n,
                                   void *ud) {
  ai_stream_t *s = ud;
  (void)ch;
  if (err || n < 1 || !serials[0]) {
    bench_fail(s->a->w, "stream %d: creating its message failed: %d %s", s->idx, err ? err->code : 0,
               err ? err->message : "no serial");
    return;
  }
  s->serial = strdup(serials[0]);
  s->ready = true;
  if (++s->a->ready == s->a->n) bench_ready(s->a->w);
}

static void ai_stream_maybe_create(ai_stream_t *s) {
  ai_t *a = s->a;
  if (s->creating || !s->agent->up || s->watchers_up < a->w->b->o.watchers) return;
  s->creating = true;
  sw_message_t m = {.name = "answer", .data = "", .data_type = SW_PAYLOAD_STRING, .action = -1};
  if (sw_channel_publish_messages(s->ch, &m, 1, ai_stream_acked_create, s)) bench_fail(a->w, "create failed");
}

static void ai_agent_state(sw_client_t *c, const sw_state_change_t *ch, void *ud) {
  ai_agent_t *g = ud;
  ai_t *a = g->a;
  (void)c;
  if (ch->current == SW_CONN_CONNECTED && !g->up) {
    g->up = true;
    a->pending--;
    ai_open_more(a);
    for (int i = 0; i < a->n; i++)
      if (a->streams[i].agent == g) ai_stream_maybe_create(&a->streams[i]);
  } else if (state_is_bad(ch) && a->w->phase < PH_EXIT) {
    fail_state(a->w, "agent", g->idx, ch);
  }
}

static void ai_watch_state(sw_client_t *c, const sw_state_change_t *ch, void *ud) {
  ai_watch_t *v = ud;
  (void)c;
  if (state_is_bad(ch) && v->s->a->w->phase < PH_EXIT) fail_state(v->s->a->w, "watcher", v->idx, ch);
}

static void ai_watch_attached(sw_channel_t *ch, const sw_errinfo_t *err, void *ud) {
  ai_watch_t *v = ud;
  ai_t *a = v->s->a;
  (void)ch;
  if (err) {
    bench_fail(a->w, "watcher %d: attach failed: %d %s", v->idx, err->code, err->message);
    return;
  }
  v->up = true;
  a->pending--;
  v->s->watchers_up++;
  ai_open_more(a);
  ai_stream_maybe_create(v->s);
}

static void ai_watch_message(sw_channel_t *ch, const sw_message_t *m, void *ud) {
  ai_watch_t *v = ud;
  ai_t *a = v->s->a;
  bench_worker_t *w = a->w;
  (void)ch;
  if (m->action != SW_MESSAGE_APPEND) return; /* the create, delivered before the appends */
  uint64_t seq;
  int64_t t, now = bench_now_ns();
  /* One delivery may carry several appends, joined (the server's append
   * rollup, when a server's appendRollupWindow is not 0): each is one
   * payload of the bench's size, measured on its own. */
  size_t len = (size_t)w->b->o.payload;
  if (!len || !m->data_len || m->data_len % len) {
    bench_fail(w, "malformed append (%zu bytes)", m->data_len);
    return;
  }
  for (size_t off = 0; off < m->data_len; off += len) {
    if (!bench_payload_parse((const char *)m->data + off, len, &seq, &t)) {
      bench_fail(w, "malformed append (%zu bytes)", m->data_len);
      return;
    }
    w->res->got++;
    if (bench_in_window(w, t)) {
      w->res->ops++;
      bench_sample(w, &w->res->lat, t, now);
    }
  }
  if (a->stopping) ai_check_done(a);
}

static void ai_append_acked(sw_channel_t *ch, const sw_errinfo_t *err, const char *const *serials, size_t n,
                            void *ud) {
  ai_stream_t *s = ud;
  ai_t *a = s->a;
  bench_worker_t *w = a->w;
  (void)ch, (void)serials, (void)n;
  if (err) {
    bench_fail(w, "stream %d: append NACKed: %d %s", s->idx, err->code, err->message);
    return;
  }
  int64_t t = s->sent_at[s->head];
  s->head = (s->head + 1) % AI_RING;
  s->acked++;
  if (bench_in_window(w, t)) {
    w->res->ops2++;
    bench_sample(w, &w->res->lat2, t, bench_now_ns());
  }
  if (a->stopping) ai_check_done(a);
}

static void ai_tick(uv_timer_t *t) {
  ai_stream_t *s = t->data;
  ai_t *a = s->a;
  bench_worker_t *w = a->w;
  if (!a->running) return;
  if ((s->tail + 1) % AI_RING == s->head) {
    bench_fail(w, "stream %d: %d appends without an ACK", s->idx, AI_RING - 1);
    return;
  }
  size_t len = (size_t)w->b->o.payload;
  int64_t now = bench_now_ns();
  bench_payload(a->buf, len, ++s->seq, now);
  sw_message_t m = {.serial = s->serial, .data = a->buf, .data_len = len, .data_type = SW_PAYLOAD_STRING,
                    .action = -1};
  if (sw_channel_append_message(s->ch, &m, ai_append_acked, s)) {
    bench_fail(w, "stream %d: append failed", s->idx);
    return;
  }
  s->sent_at[s->tail] = now;
  s->tail = (s->tail + 1) % AI_RING;
  w->res->sent++;
  w->res->expected += (uint64_t)w->b->o.watchers;
}

/* Opens connections (agents first) while fewer than `concurrency` are on
 * their way. */
static void ai_open_more(ai_t *a) {
  bench_worker_t *w = a->w;
  const bench_opts_t *o = &w->b->o;
  int total = a->an + a->n * o->watchers;
  while (a->opened < total && a->pending < o->concurrency) {
    int i = a->opened++;
    sw_options_t so;
    sw_errinfo_t err;
    a->pending++;
    w->res->conns++;
    if (i < a->an) {
      ai_agent_t *g = &a->agents[i];
      bench_sw_options(w, &so, g->idx);
      so.on_state = ai_agent_state;
      so.state_ud = g;
      so.echo = false;
      if (sw_client_new(&so, &g->c, &err)) goto fail;
      for (int k = 0; k < a->n; k++) {
        ai_stream_t *s = &a->streams[k];
        if (s->agent != g) continue;
        char name[64];
        snprintf(name, sizeof name, "ai:s%d", s->idx);
        if (!(s->ch = sw_client_channel(g->c, name))) goto fail;
      }
      if (sw_client_connect(g->c)) goto fail;
    } else {
      int j = i - a->an;
      ai_stream_t *s = &a->streams[j / o->watchers];
      ai_watch_t *v = &s->watch[j % o->watchers];
      v->s = s;
      v->idx = s->idx * o->watchers + j % o->watchers;
      bench_sw_options(w, &so, v->idx);
      so.on_state = ai_watch_state;
      so.state_ud = v;
      char name[64];
      snprintf(name, sizeof name, "ai:s%d", s->idx);
      if (sw_client_new(&so, &v->c, &err) || !(v->ch = sw_client_channel(v->c, name)) ||
          sw_channel_subscribe(v->ch, NULL, ai_watch_message, v) < 0 ||
          sw_channel_attach(v->ch, ai_watch_attached, v) || sw_client_connect(v->c))
        goto fail;
    }
  }
  return;
fail:
  bench_fail(w, "could not open connection %d", a->opened - 1);
}

static void ai_check_done(ai_t *a) {
  bench_result_t *r = a->w->res;
  if (!a->stopping || r->got < r->expected) return;
  for (int i = 0; i < a->n; i++)
    if (a->streams[i].acked < a->streams[i].seq) return;
  bench_done(a->w);
}

static int ai_setup(bench_worker_t *w) {
  ai_t *a = calloc(1, sizeof *a);
  if (!a) return -1;
  w->state = a;
  a->w = w;
  const bench_opts_t *o = &w->b->o;
  bench_share(w, o->streams, &a->first, &a->n);
  bench_share(w, o->agents, &a->afirst, &a->an);
  if (a->an > a->n) a->an = a->n;
  a->streams = calloc((size_t)a->n + 1, sizeof *a->streams);
  a->agents = calloc((size_t)a->an + 1, sizeof *a->agents);
  a->buf = malloc((size_t)o->payload + 1);
  if (!a->streams || !a->agents || !a->buf) return -1;
  for (int i = 0; i < a->an; i++) {
    a->agents[i].a = a;
    /* JWTs: watchers first (stream * watchers + k), then agents. */
    a->agents[i].idx = o->streams * o->watchers + a->afirst + i;
  }
  for (int i = 0; i < a->n; i++) {
    ai_stream_t *s = &a->streams[i];
    s->a = a;
    s->idx = a->first + i;
    s->agent = &a->agents[i % a->an];
    s->watch = calloc((size_t)o->watchers + 1, sizeof *s->watch);
    if (!s->watch) return -1;
    uv_timer_init(&w->loop, &s->timer);
    s->timer.data = s;
    s->timer_open = true;
  }
  if (a->n == 0) bench_ready(w);
  ai_open_more(a);
  return 0;
}

static void ai_run(bench_worker_t *w) {
  ai_t *a = w->state;
  int period = 1000 / w->b->o.rate;
  if (period < 1) period = 1;
  a->running = true;
  /* Spread the streams' ticks over the period, as independent agents'
   * tokens would be, rather than bursting every stream in the same ms. */
  for (int i = 0; i < a->n; i++)
    uv_timer_start(&a->streams[i].timer, ai_tick, 1 + (uint64_t)(i * period / (a->n ? a->n : 1)),
                   (uint64_t)period);
}

static void ai_stop(bench_worker_t *w) {
  ai_t *a = w->state;
  a->running = false;
  a->stopping = true;
  for (int i = 0; i < a->n; i++) uv_timer_stop(&a->streams[i].timer);
  ai_check_done(a);
}

static void ai_free(ai_t *a) {
  for (int i = 0; i < a->n; i++) {
    free(a->streams[i].watch);
    free(a->streams[i].serial);
  }
  free(a->streams);
  free(a->agents);
  free(a->buf);
  free(a);
}

static void ai_timer_closed(uv_handle_t *h) {
  ai_stream_t *s = h->data;
  ai_t *a = s->a;
  if (--a->closing == 0) ai_free(a);
}

static void ai_teardown(bench_worker_t *w) {
  ai_t *a = w->state;
  if (!a) return;
  w->state = NULL;
  for (int i = 0; i < a->an; i++) sw_client_free(a->agents[i].c);
  for (int i = 0; i < a->n; i++)
    for (int k = 0; k < w->b->o.watchers; k++) sw_client_free(a->streams[i].watch[k].c);
  /* The timers live in the streams: free everything after they close. */
  a->closing = 1;
  for (int i = 0; i < a->n; i++)
    if (a->streams[i].timer_open) a->closing++, uv_close((uv_handle_t *)&a->streams[i].timer, ai_timer_closed);
  if (--a->closing == 0) ai_free(a);
}

const bench_scenario_t bench_ai_scenario = {
    .name = "ai", .setup = ai_setup, .run = ai_run, .stop = ai_stop, .teardown = ai_teardown};
