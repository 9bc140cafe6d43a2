/* bench/floor.c: what the AI benchmark's traffic costs this machine with no
 * server in it. A relay process and load processes exchange fixed-size
 * frames over loopback TCP in the shape of `switchboard bench ai`: agent
 * connections send one frame per append, the relay writes each frame to
 * every watcher of its stream (one write per delivery, as a server must when
 * no watcher has two frames waiting) and one acknowledgement per read back to
 * the agent. No protocol, no storage, no allocation on the way: what this
 * costs is the kernel's share, the floor under any server on this box.
 *
 * Usage: floor [--streams N] [--rate PER_S] [--watchers N] [--agents N]
 *              [--procs N] [--seconds S] [--frame BYTES] [--json]
 * Prints appends/s, delivery latency p50/p99/max (send to receipt), and the
 * CPU of the relay and of the load processes (% of one core); with --json,
 * one JSON line with the keys `switchboard bench ai --json` uses.
 * Build: gcc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra bench/floor.c -o floor */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { HIST_US = 1000000, MAX_FRAME = 4096, WARMUP_S = 2 };

typedef struct { /* the first bytes of every frame */
  uint32_t stream;
  uint32_t kind; /* 0: append, 1: ack */
  uint64_t sent_ns;
} hdr_t;

static struct {
  int streams, rate, watchers, agents, procs, seconds, frame, json;
} o = {1000, 50, 2, 2, 2, 5, 312, 0}; /* 312 bytes: a delivery of `bench ai` (strace) */

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static double cpu_s(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return (double)r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) die("write");
    c += w;
    n -= (size_t)w;
  }
}

static void read_all(int fd, void *p, size_t n) {
  char *c = p;
  while (n) {
    ssize_t r = read(fd, c, n);
    if (r <= 0) die("read");
    c += r;
    n -= (size_t)r;
  }
}

static void nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* One connection's receive buffer: frames are fixed-size, so a partial one
 * waits here for its remaining bytes. */
typedef struct {
  int fd;
  size_t have;
  unsigned char buf[64 * 1024];
} rx_t;

/* Reads what fd has; calls on_frame per whole frame. 0, or -1 on EOF. */
static int rx_pump(rx_t *r, void (*on_frame)(const unsigned char *)) {
  ssize_t n = read(r->fd, r->buf + r->have, sizeof r->buf - r->have);
  if (n == 0) return -1;
  if (n < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
  r->have += (size_t)n;
  size_t off = 0, f = (size_t)o.frame;
  for (; r->have - off >= f; off += f) on_frame(r->buf + off);
  memmove(r->buf, r->buf + off, r->have - off);
  r->have -= off;
  return 0;
}

/* ---- relay ------------------------------------------------------------ */

typedef struct {
  int *watchers; /* fds */
  int n;
} stream_t;

static stream_t *streams;
static int relayed; /* frames in the current read */

static void relay_frame(const unsigned char *f) {
  hdr_t h;
  memcpy(&h, f, sizeof h);
  if (h.stream >= (uint32_t)o.streams) return;
  stream_t *s = &streams[h.stream];
  for (int i = 0; i < s->n; i++) write_all(s->watchers[i], f, (size_t)o.frame);
  relayed++;
}

static void relay(int lfd) {
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  streams = calloc((size_t)o.streams, sizeof *streams);
  for (int i = 0; i < o.streams; i++) streams[i].watchers = calloc((size_t)o.watchers, sizeof(int));
  struct epoll_event evs[256];
  unsigned char ack[MAX_FRAME] = {0};
  ((hdr_t *)ack)->kind = 1;
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      rx_t *r = evs[i].data.ptr;
      if (!r) { /* a new connection: its first 8 bytes say what it is */
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) continue;
        nodelay(fd);
        uint32_t hello[2];
        if (recv(fd, hello, sizeof hello, MSG_WAITALL) != sizeof hello) die("hello");
        if (hello[0] == 1) { /* a watcher of stream hello[1]: written to, never read */
          stream_t *s = &streams[hello[1] % (uint32_t)o.streams];
          if (s->n < o.watchers) s->watchers[s->n++] = fd;
          continue;
        }
        r = calloc(1, sizeof *r);
        r->fd = fd;
        struct epoll_event a = {.events = EPOLLIN, .data.ptr = r};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &a);
        continue;
      }
      relayed = 0;
      if (rx_pump(r, relay_frame)) exit(0);
      if (relayed) write_all(r->fd, ack, (size_t)o.frame); /* one ACK per read, as for a batch */
    }
  }
}

/* ---- load ------------------------------------------------------------- */

static uint32_t *hist; /* delivery latency, 1 us buckets */
static uint64_t window_start, window_end;

static void watcher_frame(const unsigned char *f) {
  hdr_t h;
  memcpy(&h, f, sizeof h);
  uint64_t t = now_ns();
  if (h.kind != 0 || h.sent_ns < window_start || h.sent_ns >= window_end) return;
  uint64_t us = (t - h.sent_ns) / 1000;
  hist[us < HIST_US ? us : HIST_US - 1]++;
}

static void ack_frame(const unsigned char *f) {
  (void)f;
}

static int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) die("connect");
  nodelay(fd);
  return fd;
}

static int add_conn(int ep, rx_t *r, int port, uint32_t kind, uint32_t stream) {
  r->fd = connect_to(port);
  uint32_t hello[2] = {kind, stream};
  write_all(r->fd, hello, sizeof hello);
  struct epoll_event e = {.events = EPOLLIN, .data.ptr = r};
  return epoll_ctl(ep, EPOLL_CTL_ADD, r->fd, &e);
}

/* Load process k of o.procs: its share of streams (with their watchers) and
 * of agents. Writes its CPU seconds, appends sent and histogram to out. */
static void load(int k, int port, int out, uint64_t start_ns) {
  int s0 = o.streams * k / o.procs, s1 = o.streams * (k + 1) / o.procs, ns = s1 - s0;
  int a0 = o.agents * k / o.procs, a1 = o.agents * (k + 1) / o.procs;
  int na = a1 > a0 ? a1 - a0 : 1;
  hist = calloc(HIST_US, sizeof *hist);
  int ep = epoll_create1(0);
  rx_t *rx = calloc((size_t)(ns * o.watchers + na), sizeof *rx);
  int nrx = 0;
  for (int s = s0; s < s1; s++)
    for (int w = 0; w < o.watchers; w++) add_conn(ep, &rx[nrx++], port, 1, (uint32_t)s);
  rx_t *agents = &rx[nrx];
  for (int i = 0; i < na; i++) add_conn(ep, &rx[nrx++], port, 0, 0);
  /* Every stream sends every 1/rate s, the streams' phases spread evenly
   * over the period, as independent agents' would be. */
  uint64_t period = 1000000000ull / (uint64_t)o.rate;
  uint64_t *next = calloc((size_t)ns, sizeof *next);
  for (int i = 0; i < ns; i++) next[i] = start_ns + period * (uint64_t)i / (uint64_t)ns;
  window_start = start_ns + WARMUP_S * 1000000000ull;
  window_end = window_start + (uint64_t)o.seconds * 1000000000ull;
  unsigned char frame[MAX_FRAME] = {0};
  double cpu0 = 0;
  uint64_t appends = 0;
  int in_window = 0;
  struct epoll_event evs[256];
  for (;;) {
    uint64_t t = now_ns();
    if (!in_window && t >= window_start) {
      cpu0 = cpu_s();
      in_window = 1;
    }
    if (t >= window_end + 500000000ull) break; /* half a second for the last deliveries */
    for (int i = 0; i < ns && t < window_end; i++) { /* appends due: one write each */
      if (next[i] > t) continue;
      hdr_t h = {.stream = (uint32_t)(s0 + i), .kind = 0, .sent_ns = now_ns()};
      memcpy(frame, &h, sizeof h);
      write_all(agents[i % na].fd, frame, (size_t)o.frame);
      if (h.sent_ns >= window_start && h.sent_ns < window_end) appends++;
      next[i] += period;
    }
    int n = epoll_wait(ep, evs, 256, 1);
    for (int i = 0; i < n; i++) {
      rx_t *r = evs[i].data.ptr;
      if (rx_pump(r, r >= agents ? ack_frame : watcher_frame)) die("relay closed");
    }
  }
  double cpu = cpu_s() - cpu0;
  write_all(out, &cpu, sizeof cpu);
  write_all(out, &appends, sizeof appends);
  write_all(out, hist, HIST_US * sizeof *hist);
  exit(0);
}

static double proc_cpu_s(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  unsigned long ut = 0, st = 0;
  /* Fields 14 and 15 (utime, stime), after the parenthesised command name. */
  if (fscanf(f, "%*d (%*[^)]) %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) ut = st = 0;
  fclose(f);
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Every append is delivered to every watcher: 0, else 1 with a message. */
static int lost(uint64_t appends, uint64_t deliveries) {
  if (deliveries == appends * (uint64_t)o.watchers) return 0;
  fprintf(stderr, "floor: %llu deliveries for %llu appends x %d watchers\n", (unsigned long long)deliveries,
          (unsigned long long)appends, o.watchers);
  return 1;
}

static int parse_args(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) {
      o.json = 1;
      continue;
    }
    int *v = !strcmp(argv[i], "--streams")    ? &o.streams
             : !strcmp(argv[i], "--rate")     ? &o.rate
             : !strcmp(argv[i], "--watchers") ? &o.watchers
             : !strcmp(argv[i], "--agents")   ? &o.agents
             : !strcmp(argv[i], "--procs")    ? &o.procs
             : !strcmp(argv[i], "--seconds")  ? &o.seconds
             : !strcmp(argv[i], "--frame")    ? &o.frame
                                              : NULL;
    if (!v || i + 1 >= argc) {
      fprintf(stderr, "floor: unknown option or missing value: %s\n", argv[i]);
      return -1;
    }
    *v = atoi(argv[++i]);
  }
  if (o.frame < (int)sizeof(hdr_t) || o.frame > MAX_FRAME || o.streams < 1 || o.rate < 1 || o.procs < 1 ||
      o.watchers < 0 || o.seconds < 1 || o.agents < o.procs) {
    fprintf(stderr, "floor: bad options (frame 16..4096, agents >= procs)\n");
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (parse_args(argc, argv)) return 2;
  signal(SIGPIPE, SIG_IGN);
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 4096) ||
      getsockname(lfd, (struct sockaddr *)&a, &alen))
    die("listen");
  pid_t rpid = fork();
  if (rpid == 0) relay(lfd);
  close(lfd);
  uint64_t start = now_ns() + 500000000ull; /* every process connected by then */
  pid_t *pids = calloc((size_t)o.procs, sizeof *pids);
  int *pipes = calloc((size_t)o.procs, sizeof *pipes);
  for (int k = 0; k < o.procs; k++) {
    int p[2];
    if (pipe(p)) die("pipe");
    if ((pids[k] = fork()) == 0) {
      close(p[0]);
      load(k, ntohs(a.sin_port), p[1], start);
    }
    close(p[1]);
    pipes[k] = p[0];
  }
  /* The relay's CPU over the load processes' window. */
  uint64_t w0 = start + WARMUP_S * 1000000000ull, w1 = w0 + (uint64_t)o.seconds * 1000000000ull;
  while (now_ns() < w0) usleep(1000);
  double r0 = proc_cpu_s(rpid);
  while (now_ns() < w1) usleep(1000);
  double relay_cpu = proc_cpu_s(rpid) - r0, load_cpu = 0;
  uint32_t *h = calloc(HIST_US, sizeof *h), *part = calloc(HIST_US, sizeof *part);
  uint64_t total = 0;
  for (int k = 0; k < o.procs; k++) {
    double c;
    uint64_t n;
    read_all(pipes[k], &c, sizeof c);
    read_all(pipes[k], &n, sizeof n);
    read_all(pipes[k], part, HIST_US * sizeof *part);
    load_cpu += c;
    total += n;
    for (int i = 0; i < HIST_US; i++) h[i] += part[i];
    waitpid(pids[k], NULL, 0);
  }
  kill(rpid, SIGTERM);
  waitpid(rpid, NULL, 0);
  uint64_t count = 0, seen = 0;
  for (int i = 0; i < HIST_US; i++) count += h[i];
  double p50 = -1, p99 = -1, max = 0;
  for (int i = 0; i < HIST_US; i++) {
    if (!h[i]) continue;
    seen += h[i];
    if (p50 < 0 && seen >= count / 2) p50 = i / 1000.0;
    if (p99 < 0 && seen >= count - count / 100) p99 = i / 1000.0;
    max = i / 1000.0;
  }
  free(h);
  free(part);
  double aps = (double)total / o.seconds, dps = (double)count / o.seconds;
  double rpct = 100 * relay_cpu / o.seconds, lpct = 100 * load_cpu / o.seconds;
  if (o.json) {
    printf("{\"scenario\":\"floor\",\"streams\":%d,\"appends_per_s_per_stream\":%d,\"watchers\":%d,"
           "\"writer_connections\":%d,\"procs\":%d,\"frame_bytes\":%d,\"seconds\":%d,\"appends_per_s\":%.0f,"
           "\"deliveries_per_s\":%.0f,\"latency_p50_ms\":%.3f,\"latency_p99_ms\":%.3f,\"latency_max_ms\":%.3f,"
           "\"relay_cpu_pct\":%.1f,\"load_cpu_pct\":%.1f}\n",
           o.streams, o.rate, o.watchers, o.agents, o.procs, o.frame, o.seconds, aps, dps, p50, p99, max, rpct,
           lpct);
    return lost(total, count);
  }
  printf("floor: %d streams x %d/s x %d watchers, %d agent connections, %d load procs, %d-byte frames, %d s\n",
         o.streams, o.rate, o.watchers, o.agents, o.procs, o.frame, o.seconds);
  printf("  appends_per_s      %.0f\n  deliveries_per_s   %.0f\n", aps, dps);
  printf("  latency_p50_ms     %.3f\n  latency_p99_ms     %.3f\n  latency_max_ms     %.3f\n", p50, p99, max);
  printf("  relay_cpu_pct      %.1f\n  load_cpu_pct       %.1f\n", rpct, lpct);
  return lost(total, count);
}
