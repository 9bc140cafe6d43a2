/* bench.h: `switchboard bench`, the load generator (issue 5 item 3).
 *
 * Shape of a run. The parent process sets up (starts a server unless one is
 * given, creates an app over POST /apps, mints JWTs), then forks --procs
 * workers. Each worker runs its own libuv loop with its share of the
 * connections. Parent and workers share one anonymous mmap (bench_shared_t):
 * the parent moves everyone through phases (SETUP -> RUN -> STOP -> EXIT),
 * samples the server's /proc figures at the phase changes, and after the
 * workers exit merges their results from the shared slots. Workers watch the
 * phase with a 1 ms timer; nothing on the measured path waits on it.
 *
 * Scenarios are a small table of hooks (bench_scenario_t). fanout and idle
 * talk to their server through a link (bench_link_t) so the same scenario
 * code drives switchboard (libswitchboard), Redis (RESP) and mosquitto
 * (MQTT 3.1.1 over WebSocket); the peers' clients are small raw protocol
 * drivers on the same libuv loop (bench_peer.c).
 *
 * No globals: everything hangs off the driver context (bench_t) or a
 * worker (bench_worker_t). */
#ifndef SW_TOOLS_BENCH_H
#define SW_TOOLS_BENCH_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#define BENCH_MAX_PROCS 16
#define BENCH_MAX_PIDS 8
#define BENCH_MAX_HOSTS 16
/* Log-linear latency histogram in microseconds: exact below 128 us, then
 * 64 sub-buckets per power of two (<= 1.6 % error), up to 2^40 us. */
#define BENCH_HIST_LINEAR 128
#define BENCH_HIST_SUB 64
#define BENCH_HIST_BUCKETS (BENCH_HIST_LINEAR + 34 * BENCH_HIST_SUB)
/* fanout: per-message countdown slots; the in-flight window must stay below. */
#define BENCH_RING 8192

typedef struct bench_hist {
  uint64_t n, sum_us, max_us;
  uint64_t b[BENCH_HIST_BUCKETS];
} bench_hist_t;

void hist_add(bench_hist_t *h, uint64_t us);
void hist_merge(bench_hist_t *into, const bench_hist_t *from);
/* The value (us) below which a fraction q of the samples fall. */
double hist_quantile_us(const bench_hist_t *h, double q);

/* One worker's results, in shared memory. */
typedef struct bench_result {
  bench_hist_t lat;  /* the scenario's latency: connect, delivery, ACK, append delivery */
  bench_hist_t lat2; /* a second one where useful (ai: append ACK) */
  uint64_t ops;      /* measured operations: connects, deliveries, ACKs, append deliveries */
  uint64_t ops2;     /* ai: appends ACKed in the window */
  uint64_t sent;     /* messages or appends sent (all, not only the window) */
  uint64_t got;      /* deliveries or ACKs received (all) */
  uint64_t expected; /* deliveries expected for `sent` (fanout, ai), for the loss check */
  uint64_t conns;    /* connections this worker opened */
  uint64_t errors;
  int64_t t_done_ns; /* connect: when the last connection came up */
  double cpu_s;      /* this worker's own CPU time (user + system) */
  int failed;
  char err[256];
} bench_result_t;

enum { PH_SETUP = 0, PH_RUN = 1, PH_STOP = 2, PH_EXIT = 3 };

typedef struct bench_shared {
  _Atomic int phase;
  _Atomic int ready;  /* workers set up */
  _Atomic int done;   /* workers finished (connect: all up; others: drained) */
  _Atomic int failed; /* a worker hit an error: the parent aborts */
  /* Samples count when their start time is inside [measure_from, measure_to):
   * the parent opens the window after the warm-up and closes it at STOP. */
  _Atomic int64_t measure_from_ns, measure_to_ns;
  _Atomic int64_t run_ns; /* when RUN began */
  _Atomic int32_t remaining[BENCH_RING]; /* fanout: deliveries still due per message */
  bench_result_t res[BENCH_MAX_PROCS];
} bench_shared_t;

typedef enum { TARGET_SWITCHBOARD = 0, TARGET_REDIS, TARGET_MQTT } bench_target_t;

typedef struct bench_opts {
  const char *scenario;
  bench_target_t target;
  const char *host;
  int port;          /* 0: the bench starts its own switchboard */
  pid_t server_pid;  /* the server to watch in /proc (given or started) */
  /* --server-pid P1,P2,...: every process of the server under test (a
   * cluster's nodes and its Redis); CPU is summed over them and reported
   * for each too. server_pids[0] == server_pid. */
  pid_t server_pids[BENCH_MAX_PIDS];
  int n_server_pids;
  /* --hosts H1,H2,...: fanout subscribers (and durable publishers) are
   * spread round-robin over these; the fanout publisher stays on --host. */
  const char *hosts[BENCH_MAX_HOSTS];
  int n_hosts;
  char *hosts_buf;
  int pub_rate;      /* durable: total publishes/s, paced (0: as fast as the windows allow) */
  const char *key;   /* switchboard: appId.keyId:secret; else POST /apps */
  const char *user, *password; /* peers: Redis AUTH password, MQTT username/password */
  const char *server_bin;
  const char *server_cpus, *load_cpus; /* CPU lists, e.g. "0" or "0-1" */
  bool memory;       /* own switchboard with --memory instead of SQLite */
  bool raw;          /* connect: raw WebSocket connections instead of libswitchboard */
  bool tls;          /* libswitchboard clients over TLS (a running server: --port, --key) */
  const char *ca_file; /* with tls: the CA to trust instead of the system's */
  const char *sync;  /* durable: full, normal or both */
  bool quick, json, verbose;
  int procs;
  int conns;         /* connect, idle: connections */
  int concurrency;   /* connections being opened at once, per worker */
  int subs;          /* fanout: subscribers */
  int window;        /* fanout: messages in flight; durable: publishes in flight per publisher */
  int payload;       /* bytes of message data */
  int publishers;    /* durable */
  int streams, rate, watchers, agents; /* ai */
  double seconds, warmup;
  int channels;      /* idle: distinct channels (0: one per connection) */
  double settle;     /* idle: poll server RSS every second until it stops changing, at most this long (0: off) */
  double settle_window; /* idle: ... i.e. within 0.5 % over this many seconds */
  int append_rollup; /* ai: the own server's limits.appendRollupWindow, ms */
} bench_opts_t;

/* The driver context: options, the shared region and what setup produced. */
typedef struct bench {
  bench_opts_t o;
  bench_shared_t *sh;
  int efd; /* fanout: eventfd the subscribers poke when a message is fully delivered */
  char key[512];
  char **jwts; /* one per switchboard connection, minted before the clock starts */
  size_t n_jwts;
  pid_t own_pid; /* the server this bench started, or 0 */
  char tmpdir[256];
  const char *sync_mode; /* durable: the mode of the current run */
} bench_t;

typedef struct bench_worker bench_worker_t;

typedef struct bench_scenario {
  const char *name;
  /* Starts connecting; calls bench_ready() once set up. Nonzero: failed. */
  int (*setup)(bench_worker_t *w);
  void (*run)(bench_worker_t *w);      /* the load starts */
  void (*stop)(bench_worker_t *w);     /* the load stops; bench_done() once drained */
  void (*teardown)(bench_worker_t *w); /* free everything (the loop then runs dry) */
} bench_scenario_t;

struct bench_worker {
  bench_t *b;
  const bench_scenario_t *sc;
  int id;
  uv_loop_t loop;
  uv_timer_t tick;
  int phase;
  bench_result_t *res;
  bool readied, finished;
  double cpu_from; /* own CPU time when the measured window opened */
  bool cpu_from_taken;
  char *rbuf; /* the raw drivers' shared read buffer */
  size_t rbuf_len;
  void *state; /* the scenario's */
};

/* Monotonic clock (shared by all processes on the machine), ns. */
int64_t bench_now_ns(void);
/* The worker's share [*first, *first + *n) of total items. */
void bench_share(const bench_worker_t *w, int total, int *first, int *n);
void bench_ready(bench_worker_t *w);
void bench_done(bench_worker_t *w);
/* Records a failure (printf-style) and tells the parent to abort. */
void bench_fail(bench_worker_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Counts a sample if t_start_ns is inside the measured window. */
bool bench_in_window(const bench_worker_t *w, int64_t t_start_ns);
void bench_sample(bench_worker_t *w, bench_hist_t *h, int64_t t_start_ns, int64_t now_ns);

/* A payload of n bytes (n >= 32) carrying seq and a send time:
 * "<seq> <t_ns> xxxx...". Returns n. */
size_t bench_payload(char *out, size_t n, uint64_t seq, int64_t t_ns);
/* Reads seq and t_ns back; false when malformed. */
bool bench_payload_parse(const void *p, size_t n, uint64_t *seq, int64_t *t_ns);

/* /proc figures of a process: VmRSS in KiB, and utime + stime in seconds. */
long proc_rss_kb(pid_t pid);
double proc_cpu_s(pid_t pid);
/* The same, with its kernel part (stime) in *sys_s when sys_s is set. */
double proc_cpu_split_s(pid_t pid, double *sys_s);

/* ---- links: fanout and idle over any of the three servers ---------------- */

typedef struct bench_link bench_link_t;

/* What a link reports back to its scenario. */
typedef struct bench_link_events {
  void (*sub_ready)(bench_link_t *lk, int idx);  /* subscriber idx is subscribed */
  void (*pub_ready)(bench_link_t *lk);           /* the publisher is connected */
  void (*message)(bench_link_t *lk, int idx, const void *p, size_t n);
} bench_link_events_t;

typedef struct bench_link_ops {
  /* Opens local subscriber idx (0..n_subs) on channel: connect,
   * authenticate, subscribe. conn_idx numbers the connection across all
   * workers (it picks the JWT). */
  int (*sub_open)(bench_link_t *lk, int idx, int conn_idx, const char *channel);
  int (*pub_open)(bench_link_t *lk, int conn_idx, const char *channel);
  int (*publish)(bench_link_t *lk, const void *p, size_t n);
  /* Closes every connection; the link frees itself once its handles have
   * closed (the loop must run on). No event after this. */
  void (*close_all)(bench_link_t *lk);
} bench_link_ops_t;

struct bench_link {
  const bench_link_ops_t *ops;
  const bench_link_events_t *ev;
  bench_worker_t *w;
  void *ud; /* the scenario's */
  int n_subs;
};

bench_link_t *bench_link_switchboard(bench_worker_t *w, int n_subs);
bench_link_t *bench_link_redis(bench_worker_t *w, int n_subs);
bench_link_t *bench_link_mqtt(bench_worker_t *w, int n_subs);
/* Raw Ably WebSocket connections: sub_ready once CONNECTED (connect --raw). */
bench_link_t *bench_link_ably_raw(bench_worker_t *w, int n_subs);
bench_link_t *bench_link_new(bench_worker_t *w, int n_subs);

/* ---- scenarios ------------------------------------------------------------ */

extern const bench_scenario_t bench_connect_scenario;
extern const bench_scenario_t bench_idle_scenario;
extern const bench_scenario_t bench_fanout_scenario;
extern const bench_scenario_t bench_durable_scenario;
extern const bench_scenario_t bench_ai_scenario;

/* Options every libswitchboard connection of the bench uses. */
struct sw_options;
void bench_sw_options(bench_worker_t *w, struct sw_options *o, int conn_idx);
/* The host a spread connection (fanout subscriber, durable publisher) uses:
 * --hosts round-robin by conn_idx, else --host. */
const char *bench_spread_host(const bench_t *b, int conn_idx);

#endif
