/* bench_fanout.c: the fanout and idle scenarios, written once against a
 * link (bench_link_t) so switchboard, Redis and mosquitto run exactly the
 * same load: same subscriber count, same payload, same window.
 *
 * fanout: one publisher (in worker 0) keeps `window` messages in flight on
 * one channel that every subscriber is subscribed to. A message is complete
 * when all subscribers, in whatever process, have it: each delivery counts
 * down the message's slot in shared memory, and whoever takes it to zero
 * tells the publisher (directly in worker 0, through the eventfd from other
 * workers), which then publishes the next one. So the publisher runs as fast
 * as the slowest subscriber allows, and the latency of each delivery (the
 * publish time is in the payload; all processes read the same monotonic
 * clock) is measured at that throughput.
 *
 * idle: every connection authenticates and subscribes to one channel, then
 * sits; the parent reads the server's RSS before and after. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/bench.h"

bench_link_t *bench_link_new(bench_worker_t *w, int n_subs) {
  switch (w->b->o.target) {
  case TARGET_REDIS: return bench_link_redis(w, n_subs);
  case TARGET_MQTT: return bench_link_mqtt(w, n_subs);
  default: return bench_link_switchboard(w, n_subs);
  }
}

typedef struct fan {
  bench_worker_t *w;
  bench_link_t *lk;
  bool fanout;        /* false: idle */
  int first, n;       /* this worker's subscribers [first, first + n) */
  int opened, ready;  /* subscribers opened / subscribed so far */
  int total_subs;
  /* publisher (worker 0 only) */
  bool is_pub, pub_up, running, stopping;
  uint64_t seq;
  int in_flight;
  int64_t last_progress_ns;
  char *buf;
  uv_poll_t efd_poll;
  uv_timer_t watchdog;
  bool poll_open, watchdog_open;
  int closing; /* handles in f still closing: f is freed after the last */
} fan_t;

static void fan_channel(const fan_t *f, int conn_idx, char *out, size_t n) {
  if (f->fanout) {
    snprintf(out, n, "fanout-bench");
    return;
  }
  int ch = f->w->b->o.channels;
  snprintf(out, n, "idle-%d", ch ? conn_idx % ch : conn_idx);
}

/* Opens subscribers while fewer than `concurrency` are still on their way,
 * so the accept backlog of no server overflows. */
static void fan_open_more(fan_t *f) {
  int conc = f->w->b->o.concurrency;
  while (f->opened < f->n && f->opened - f->ready < conc) {
    char ch[64];
    int conn_idx = f->first + f->opened;
    fan_channel(f, conn_idx, ch, sizeof ch);
    int i = f->opened++;
    if (f->lk->ops->sub_open(f->lk, i, conn_idx, ch)) {
      bench_fail(f->w, "could not open subscriber %d", conn_idx);
      return;
    }
    f->w->res->conns++;
  }
}

static void fan_check_ready(fan_t *f) {
  if (f->ready == f->n && (!f->is_pub || f->pub_up)) bench_ready(f->w);
}

static void on_sub_ready(bench_link_t *lk, int idx) {
  fan_t *f = lk->ud;
  (void)idx;
  f->ready++;
  fan_open_more(f);
  fan_check_ready(f);
}

static void on_pub_ready(bench_link_t *lk) {
  fan_t *f = lk->ud;
  f->pub_up = true;
  fan_check_ready(f);
}

/* Publishes until the window is full. The slot's countdown is set before
 * the message leaves, so no delivery can find it unset. */
static void fan_pump(fan_t *f) {
  bench_shared_t *sh = f->w->b->sh;
  size_t len = (size_t)f->w->b->o.payload;
  while (f->running && f->in_flight < f->w->b->o.window) {
    uint64_t seq = ++f->seq;
    atomic_store_explicit(&sh->remaining[seq % BENCH_RING], f->total_subs, memory_order_relaxed);
    bench_payload(f->buf, len, seq, bench_now_ns());
    if (f->lk->ops->publish(f->lk, f->buf, len)) {
      bench_fail(f->w, "publish failed");
      f->running = false;
      return;
    }
    f->in_flight++;
    f->w->res->sent++;
    f->w->res->expected += (uint64_t)f->total_subs;
  }
}

static void fan_completed(fan_t *f, uint64_t k) {
  f->in_flight -= (int)k;
  f->last_progress_ns = bench_now_ns();
  if (f->running) fan_pump(f);
  else if (f->stopping && f->in_flight <= 0) bench_done(f->w);
}

static void on_message(bench_link_t *lk, int idx, const void *p, size_t n) {
  fan_t *f = lk->ud;
  bench_worker_t *w = f->w;
  (void)idx;
  uint64_t seq;
  int64_t t;
  int64_t now = bench_now_ns();
  if (!f->fanout) return;
  if (!bench_payload_parse(p, n, &seq, &t)) {
    bench_fail(w, "malformed delivery (%zu bytes)", n);
    return;
  }
  w->res->got++;
  if (bench_in_window(w, t)) {
    w->res->ops++;
    bench_sample(w, &w->res->lat, t, now);
  }
  int prev = atomic_fetch_sub_explicit(&w->b->sh->remaining[seq % BENCH_RING], 1, memory_order_acq_rel);
  if (prev == 1) {
    if (f->is_pub) fan_completed(f, 1);
    else {
      uint64_t one = 1;
      if (write(w->b->efd, &one, sizeof one) != sizeof one) bench_fail(w, "eventfd write failed");
    }
  } else if (prev <= 0) {
    bench_fail(w, "message %llu delivered more often than there are subscribers", (unsigned long long)seq);
  }
}

static void on_efd(uv_poll_t *p, int status, int events) {
  fan_t *f = p->data;
  (void)events;
  uint64_t k = 0;
  if (status < 0) return;
  if (read(f->w->b->efd, &k, sizeof k) == sizeof k && k) fan_completed(f, k);
}

/* A message that never completes (a server dropped it) would stall the
 * window for ever: after 5 s without progress the run fails as lossy. */
static void on_watchdog(uv_timer_t *t) {
  fan_t *f = t->data;
  if (f->in_flight > 0 && bench_now_ns() - f->last_progress_ns > 5000000000LL)
    bench_fail(f->w, "%d message(s) not delivered to every subscriber within 5 s (lost)", f->in_flight);
}

static const bench_link_events_t fan_events = {
    .sub_ready = on_sub_ready, .pub_ready = on_pub_ready, .message = on_message};

static int fan_setup(bench_worker_t *w, bool fanout) {
  fan_t *f = calloc(1, sizeof *f);
  if (!f) return -1;
  w->state = f;
  f->w = w;
  f->fanout = fanout;
  const bench_opts_t *o = &w->b->o;
  f->total_subs = fanout ? o->subs : o->conns;
  bench_share(w, f->total_subs, &f->first, &f->n);
  f->is_pub = fanout && w->id == 0;
  f->lk = bench_link_new(w, f->n);
  if (!f->lk) return -1;
  f->lk->ev = &fan_events;
  f->lk->ud = f;
  if (f->is_pub) {
    f->buf = malloc((size_t)o->payload + 1);
    if (!f->buf) return -1;
    if (o->procs > 1) {
      uv_poll_init(&w->loop, &f->efd_poll, w->b->efd);
      f->efd_poll.data = f;
      uv_poll_start(&f->efd_poll, UV_READABLE, on_efd);
      f->poll_open = true;
    }
    uv_timer_init(&w->loop, &f->watchdog);
    f->watchdog.data = f;
    f->watchdog_open = true;
    char ch[64];
    fan_channel(f, 0, ch, sizeof ch);
    /* The publisher's connection comes after every subscriber's. */
    if (f->lk->ops->pub_open(f->lk, f->total_subs, ch)) return -1;
  }
  fan_open_more(f);
  fan_check_ready(f);
  return 0;
}

static int fanout_setup(bench_worker_t *w) { return fan_setup(w, true); }
static int idle_setup(bench_worker_t *w) { return fan_setup(w, false); }

static void fanout_run(bench_worker_t *w) {
  fan_t *f = w->state;
  if (!f->is_pub) return;
  f->running = true;
  f->last_progress_ns = bench_now_ns();
  uv_timer_start(&f->watchdog, on_watchdog, 100, 100);
  fan_pump(f);
}

static void fanout_stop(bench_worker_t *w) {
  fan_t *f = w->state;
  if (!f->is_pub) {
    /* Subscribers keep receiving until EXIT; worker 0 knows when all is in. */
    bench_done(w);
    return;
  }
  f->running = false;
  f->stopping = true;
  if (f->in_flight <= 0) bench_done(w);
}

static void on_handle_closed(uv_handle_t *h) {
  fan_t *f = h->data;
  if (--f->closing == 0) {
    free(f->buf);
    free(f);
  }
}

static void fan_teardown(bench_worker_t *w) {
  fan_t *f = w->state;
  if (!f) return;
  w->state = NULL;
  if (f->lk) f->lk->ops->close_all(f->lk);
  f->lk = NULL;
  /* The handles live in f, so f goes when the last of them has closed. */
  f->closing = 1;
  if (f->poll_open) f->closing++, uv_close((uv_handle_t *)&f->efd_poll, on_handle_closed);
  if (f->watchdog_open) f->closing++, uv_close((uv_handle_t *)&f->watchdog, on_handle_closed);
  if (--f->closing == 0) {
    free(f->buf);
    free(f);
  }
}

const bench_scenario_t bench_fanout_scenario = {
    .name = "fanout", .setup = fanout_setup, .run = fanout_run, .stop = fanout_stop, .teardown = fan_teardown};

const bench_scenario_t bench_idle_scenario = {
    .name = "idle", .setup = idle_setup, .run = NULL, .stop = NULL, .teardown = fan_teardown};
