/* bench.c: `switchboard bench SCENARIO [options] [--json]`, the parent side:
 * options, the server under test, the app and tokens, forking the workers,
 * moving them through the phases, and the report. See bench.h for the
 * overall shape, docs/benchmarks.md for what each scenario measures.
 *
 *   switchboard bench fanout --quick              # own server, a few seconds
 *   switchboard bench fanout --target redis --port 6379 --server-pid PID --password P
 *   switchboard bench durable --json             # SQLite FULL and NORMAL
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "switchboard.h"
#include "tools/bench.h"
#include "tools/tools.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: switchboard bench SCENARIO [options] [--json]\n"
          "\n"
          "scenarios:\n"
          "  connect   connect storm with JWT auth: connects/s, connect latency p50/p99\n"
          "  idle      N idle authenticated connections, one attachment each: server RSS per connection\n"
          "  fanout    one publisher to N subscribers: deliveries/s, delivery latency p50/p99\n"
          "  durable   durable publish (SQLite, synchronous FULL and NORMAL): messages/s, ACK p50/p99\n"
          "  ai        AI streams with appends, watched by subscribers: append-to-delivery p50/p99,\n"
          "            server CPU and RSS\n"
          "\n"
          "server under test (default: start `switchboard serve` on 127.0.0.1:0 with --sandbox):\n"
          "  --target switchboard|redis|mosquitto   protocol to drive (fanout, idle; default switchboard)\n"
          "  --host HOST --port PORT   an existing server (peers: required)\n"
          "  --server-pid PID[,PID..]  the server's pid for /proc figures (RSS of the first; CPU summed over\n"
          "                            all and reported for each: a cluster's nodes and its Redis)\n"
          "  --hosts H1,H2,..          fanout: subscribers round-robin over these addresses (same --port),\n"
          "                            the publisher on --host; durable: publishers round-robin\n"
          "  --key KEY                 switchboard key appId.keyId:secret (default: POST /apps, needs --sandbox)\n"
          "  --password P --user U     peers: Redis AUTH password; MQTT username and password\n"
          "  --server-bin PATH         switchboard binary for the own server (default: this one)\n"
          "  --memory                  own server with --memory instead of SQLite in a temp dir\n"
          "  --tls --ca-file PEM       a server with TLS (--tls-cert): the clients over wss://, trusting PEM\n"
          "                            (needs --port and --key; not --raw)\n"
          "  --raw                     connect: bare WebSocket connections (upgrade with the JWT, wait for\n"
          "                            CONNECTED) instead of libswitchboard clients: the server's capacity\n"
          "  --sync full|normal|both   durable: SQLite synchronous mode(s) (default both)\n"
          "  --server-cpus LIST --load-cpus LIST   pin the own server / the load (e.g. 0, 1, 0-1)\n"
          "\n"
          "load (defaults per scenario; --quick: a few seconds for the test suite):\n"
          "  --procs N          load processes (default 1)\n"
          "  --connections N    connect, idle       --concurrency N  connections opening at once per process\n"
          "  --subscribers N    fanout              --window N       fanout: messages in flight;\n"
          "  --payload BYTES    message data size                      durable: publishes in flight per publisher\n"
          "  --publishers N     durable             --channels N     idle: distinct channels (0: one each)\n"
          "  --pub-rate N       durable: N publishes/s in all, paced every millisecond (ACK latency from\n"
          "                     when each was due, so a stall is not hidden); 0: as fast as the windows allow\n"
          "  --streams N --rate PER_S --watchers N --agents N       ai: streams, appends/s per stream,\n"
          "                                         subscribers per stream, writer connections\n"
          "  --seconds S        measured time       --warmup S       unmeasured time before it\n"
          "  --settle S         idle: read RSS every second until the readings of the last --settle-window\n"
          "                     seconds lie within 0.5 %%, at most S seconds (default: one reading 1 s\n"
          "  --settle-window W  after setup); W defaults to 10\n"
          "  --append-rollup MS ai: the own server's limits.appendRollupWindow (default 0: every append\n"
          "                     delivered on its own; Ably's default is 40)\n"
          "  --quick --json --verbose\n"
          "\n"
          "Exits 1 on errors (failed connections, NACKs, lost or stalled messages), 2 on bad usage;\n"
          "missed performance targets are reported, not errors.\n");
}

/* ---- options -------------------------------------------------------------- */

typedef struct defaults {
  int conns, quick_conns, subs, quick_subs, publishers, quick_publishers, window, quick_window;
  int streams, quick_streams, rate, quick_rate;
  double seconds, quick_seconds, warmup, quick_warmup;
} defaults_t;

static int parse_int(const char *s, int lo, int hi, int *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || end == s || v < lo || v > hi) return -1;
  *out = (int)v;
  return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end || end == s || !(v >= lo && v <= hi)) return -1;
  *out = v;
  return 0;
}

static int parse_cpus(const char *s, cpu_set_t *set) {
  CPU_ZERO(set);
  const char *p = s;
  while (*p) {
    char *end;
    long a = strtol(p, &end, 10), z;
    if (end == p || a < 0 || a >= CPU_SETSIZE) return -1;
    z = a;
    p = end;
    if (*p == '-') {
      z = strtol(p + 1, &end, 10);
      if (end == p + 1 || z < a || z >= CPU_SETSIZE) return -1;
      p = end;
    }
    for (long i = a; i <= z; i++) CPU_SET((int)i, set);
    if (*p == ',') p++;
    else if (*p) return -1;
  }
  return CPU_COUNT(set) ? 0 : -1;
}

/* --server-pid P or P1,P2,...: the first is the server (RSS); CPU is summed. */
static int parse_pids(const char *s, bench_opts_t *o) {
  o->n_server_pids = 0;
  for (const char *p = s; *p;) {
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (errno || end == p || v < 1 || v > (1L << 30) || o->n_server_pids == BENCH_MAX_PIDS) return -1;
    o->server_pids[o->n_server_pids++] = (pid_t)v;
    p = end;
    if (*p == ',') p++;
    else if (*p) return -1;
  }
  if (!o->n_server_pids) return -1;
  o->server_pid = o->server_pids[0];
  return 0;
}

/* --hosts H1,H2,...: numeric IPv4 (the clients resolve nothing). */
static int parse_hosts(const char *s, bench_opts_t *o) {
  free(o->hosts_buf);
  o->hosts_buf = strdup(s);
  o->n_hosts = 0;
  if (!o->hosts_buf) return -1;
  for (char *save = NULL, *h = strtok_r(o->hosts_buf, ",", &save); h; h = strtok_r(NULL, ",", &save)) {
    struct in_addr a;
    if (o->n_hosts == BENCH_MAX_HOSTS || inet_pton(AF_INET, h, &a) != 1) return -1;
    o->hosts[o->n_hosts++] = h;
  }
  return o->n_hosts ? 0 : -1;
}

const char *bench_spread_host(const bench_t *b, int conn_idx) {
  const bench_opts_t *o = &b->o;
  return o->n_hosts ? o->hosts[(conn_idx < 0 ? 0 : conn_idx) % o->n_hosts] : o->host;
}

static int bad_usage(const char *what, const char *arg) {
  fprintf(stderr, "switchboard bench: %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
  return 2;
}

static int parse_opts(bench_opts_t *o, int argc, char **argv) {
  memset(o, 0, sizeof *o);
  o->host = "127.0.0.1";
  o->procs = 1;
  o->sync = "both";
  o->payload = -1;
  o->conns = o->subs = o->publishers = o->window = o->streams = o->rate = o->watchers = o->agents = -1;
  o->concurrency = -1;
  o->channels = 0;
  o->seconds = o->warmup = -1;
  o->settle_window = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int *iv = NULL, lo = 1, hi = 1000000;
    double *dv = NULL;
    if (a[0] != '-') {
      if (o->scenario) return bad_usage("unexpected argument", a);
      o->scenario = a;
      continue;
    }
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 1;
    }
    if (!strcmp(a, "--quick")) { o->quick = true; continue; }
    if (!strcmp(a, "--json")) { o->json = true; continue; }
    if (!strcmp(a, "--verbose")) { o->verbose = true; continue; }
    if (!strcmp(a, "--memory")) { o->memory = true; continue; }
    if (!strcmp(a, "--raw")) { o->raw = true; continue; }
    if (!strcmp(a, "--tls")) { o->tls = true; continue; }
    if (!v) return bad_usage("missing value for", a);
    i++;
    if (!strcmp(a, "--host")) o->host = v;
    else if (!strcmp(a, "--key")) o->key = v;
    else if (!strcmp(a, "--user")) o->user = v;
    else if (!strcmp(a, "--password")) o->password = v;
    else if (!strcmp(a, "--server-bin")) o->server_bin = v;
    else if (!strcmp(a, "--ca-file")) o->ca_file = v;
    else if (!strcmp(a, "--server-cpus")) o->server_cpus = v;
    else if (!strcmp(a, "--load-cpus")) o->load_cpus = v;
    else if (!strcmp(a, "--sync")) {
      if (strcmp(v, "full") && strcmp(v, "normal") && strcmp(v, "both")) return bad_usage("bad --sync", v);
      o->sync = v;
    } else if (!strcmp(a, "--target")) {
      if (!strcmp(v, "switchboard")) o->target = TARGET_SWITCHBOARD;
      else if (!strcmp(v, "redis")) o->target = TARGET_REDIS;
      else if (!strcmp(v, "mosquitto") || !strcmp(v, "mqtt")) o->target = TARGET_MQTT;
      else return bad_usage("bad --target", v);
    } else if (!strcmp(a, "--port")) iv = &o->port, hi = 65535;
    else if (!strcmp(a, "--server-pid")) {
      if (parse_pids(v, o)) return bad_usage("bad --server-pid (PID or PID,PID,..., at most 8)", v);
    } else if (!strcmp(a, "--hosts")) {
      if (parse_hosts(v, o)) return bad_usage("bad --hosts (IPv4 addresses, comma-separated, at most 16)", v);
    } else if (!strcmp(a, "--pub-rate")) iv = &o->pub_rate, lo = 0, hi = 1000000;
    else if (!strcmp(a, "--procs")) iv = &o->procs, hi = BENCH_MAX_PROCS;
    else if (!strcmp(a, "--connections")) iv = &o->conns;
    else if (!strcmp(a, "--concurrency")) iv = &o->concurrency, hi = 10000;
    else if (!strcmp(a, "--subscribers")) iv = &o->subs;
    else if (!strcmp(a, "--window")) iv = &o->window, hi = BENCH_RING / 2;
    else if (!strcmp(a, "--payload")) iv = &o->payload, lo = 32, hi = 65536;
    else if (!strcmp(a, "--publishers")) iv = &o->publishers, hi = 10000;
    else if (!strcmp(a, "--streams")) iv = &o->streams, hi = 100000;
    else if (!strcmp(a, "--rate")) iv = &o->rate, hi = 1000;
    else if (!strcmp(a, "--watchers")) iv = &o->watchers, lo = 0, hi = 100;
    else if (!strcmp(a, "--agents")) iv = &o->agents;
    else if (!strcmp(a, "--channels")) iv = &o->channels, lo = 0;
    else if (!strcmp(a, "--seconds")) dv = &o->seconds;
    else if (!strcmp(a, "--warmup")) dv = &o->warmup;
    else if (!strcmp(a, "--settle")) dv = &o->settle;
    else if (!strcmp(a, "--settle-window")) dv = &o->settle_window;
    else if (!strcmp(a, "--append-rollup")) iv = &o->append_rollup, lo = 0, hi = 500;
    else return bad_usage("unknown option", a);
    if (iv && parse_int(v, lo, hi, iv)) return bad_usage("bad value for", a);
    if (dv && parse_double(v, 0, 3600, dv)) return bad_usage("bad value for", a);
  }
  if (!o->scenario) {
    usage(stderr);
    return 2;
  }
  /* Bounded defaults: full runs for docs/benchmarks.md, --quick for CI. */
  /* 15,000 connections: this box caps descriptors at 20,000 per process. */
  const defaults_t d = {.conns = 15000, .quick_conns = 200, .subs = 1000, .quick_subs = 50,
                        .publishers = 8, .quick_publishers = 2, .window = 16, .quick_window = 8,
                        .streams = 1000, .quick_streams = 10, .rate = 50, .quick_rate = 20,
                        .seconds = 10, .quick_seconds = 1, .warmup = 2, .quick_warmup = 0.3};
  bool q = o->quick;
  bool idle = !strcmp(o->scenario, "idle"), durable = !strcmp(o->scenario, "durable");
  if (o->conns < 0) o->conns = q ? d.quick_conns : idle ? 10000 : d.conns;
  if (o->concurrency < 0) o->concurrency = 128;
  if (o->subs < 0) o->subs = q ? d.quick_subs : d.subs;
  if (o->publishers < 0) o->publishers = q ? d.quick_publishers : d.publishers;
  /* durable: 8 x 16 in flight is where this box gets the most messages/s
   * with ACK p99 near 5 ms (more only queues; fewer idles the commits). */
  if (o->window < 0) o->window = durable ? (q ? 8 : 16) : (q ? d.quick_window : d.window);
  /* ai: a fragment about the size of a few LLM tokens plus our timestamp. */
  if (o->payload < 0) o->payload = !strcmp(o->scenario, "ai") ? 32 : 128;
  if (o->streams < 0) o->streams = q ? d.quick_streams : d.streams;
  if (o->rate < 0) o->rate = q ? d.quick_rate : d.rate;
  if (o->watchers < 0) o->watchers = 2;
  if (o->agents < 0) o->agents = o->streams;
  if (o->agents > o->streams) o->agents = o->streams;
  if (o->agents < o->procs) o->agents = o->procs; /* every load process needs a writer */
  if (o->procs > 1 && !strcmp(o->scenario, "ai") && o->streams < o->procs)
    return bad_usage("ai needs at least one stream per process", NULL);
  if (o->seconds < 0) o->seconds = idle ? (q ? 0.5 : 2) : q ? d.quick_seconds : d.seconds;
  if (o->warmup < 0) o->warmup = idle ? 0 : q ? d.quick_warmup : d.warmup;
  if (o->target != TARGET_SWITCHBOARD && strcmp(o->scenario, "fanout") && !idle)
    return bad_usage("--target redis/mosquitto is for fanout and idle", NULL);
  if (o->target != TARGET_SWITCHBOARD && !o->port) return bad_usage("--target needs --port", NULL);
  if (o->settle > 0 && !idle) return bad_usage("--settle is for idle", NULL);
  if (o->n_hosts && (!o->port || o->target != TARGET_SWITCHBOARD || (strcmp(o->scenario, "fanout") && !durable)))
    return bad_usage("--hosts is for fanout and durable against running switchboard nodes (give --port)", NULL);
  if (o->pub_rate && !durable) return bad_usage("--pub-rate is for durable", NULL);
  if (o->settle_window < 0 || o->settle_window > 600) return bad_usage("--settle-window is 1 to 600 seconds", NULL);
  if (o->settle_window == 0) o->settle_window = 10;
  if (o->append_rollup && (strcmp(o->scenario, "ai") || o->port))
    return bad_usage("--append-rollup is for ai against the bench's own server", NULL);
  if (o->tls && (!o->port || !o->key || o->raw || o->target != TARGET_SWITCHBOARD))
    return bad_usage("--tls is for a switchboard you started with --tls-cert: give --port and --key (not --raw)", NULL);
  if (o->ca_file && !o->tls) return bad_usage("--ca-file needs --tls", NULL);
  cpu_set_t s;
  if (o->server_cpus && parse_cpus(o->server_cpus, &s)) return bad_usage("bad --server-cpus", o->server_cpus);
  if (o->load_cpus && parse_cpus(o->load_cpus, &s)) return bad_usage("bad --load-cpus", o->load_cpus);
  return 0;
}

/* ---- the server under test ------------------------------------------------ */

static int write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  int rc = fputs(text, f) < 0 ? -1 : 0;
  if (fclose(f)) rc = -1;
  return rc;
}

/* Starts `switchboard serve` on a free loopback port with its own config and
 * data directory, pinned if asked. Its output goes to a log file (so it can
 * never block on a full pipe), which we read until it prints its port. */
static int server_start(bench_t *b, const char *sync) {
  bench_opts_t *o = &b->o;
  char cfg[300], data[300], log[300], conf[512];
  snprintf(cfg, sizeof cfg, "%s/config.json", b->tmpdir);
  snprintf(data, sizeof data, "%s/data-%s", b->tmpdir, sync);
  snprintf(log, sizeof log, "%s/server.log", b->tmpdir);
  /* maxConnections above the bench's largest storm; maxPendingPublishes
   * above what a shared writer connection has in flight (ai --agents 2
   * carries 500 streams' appends, 10,000-25,000 a second, on each: a
   * commit's worth of ACKs outstanding passes the default 1000);
   * appendRollupWindow 0 unless --append-rollup (libswitchboard sends no
   * transport params): ai measures each append's delivery, not a window's
   * (docs/benchmarks.md); everything else is the default a user gets. */
  snprintf(conf, sizeof conf,
           "{\"synchronous\": \"%s\", \"limits\": {\"maxConnections\": 1000000, \"maxPendingPublishes\": 1000000, "
           "\"appendRollupWindow\": %d}}\n",
           sync, o->append_rollup);
  if (write_file(cfg, conf)) return -1;
  unlink(log);
  const char *bin = o->server_bin ? o->server_bin : "/proc/self/exe";
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    cpu_set_t set;
    if (o->server_cpus && !parse_cpus(o->server_cpus, &set)) sched_setaffinity(0, sizeof set, &set);
    char *argv[] = {(char *)bin, "serve", "--listen", "127.0.0.1:0", "--sandbox", "--config", cfg,
                    o->memory ? "--memory" : "--data", o->memory ? NULL : data, NULL};
    execv(bin, argv);
    _exit(127);
  }
  b->own_pid = pid;
  o->server_pid = pid;
  for (int waited = 0; waited < 10000; waited += 20) {
    usleep(20000);
    FILE *f = fopen(log, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
      const char *at = strstr(line, "listening on http://127.0.0.1:");
      if (at) {
        o->port = atoi(at + strlen("listening on http://127.0.0.1:"));
        fclose(f);
        return o->port > 0 ? 0 : -1;
      }
    }
    if (f) fclose(f);
    if (waitpid(pid, NULL, WNOHANG) == pid) {
      b->own_pid = 0;
      break;
    }
  }
  fprintf(stderr, "switchboard bench: the server did not start (see %s)\n", log);
  return -1;
}

static void server_stop(bench_t *b) {
  if (!b->own_pid) return;
  kill(b->own_pid, SIGTERM);
  for (int i = 0; i < 400; i++) {
    if (waitpid(b->own_pid, NULL, WNOHANG) == b->own_pid) {
      b->own_pid = 0;
      return;
    }
    usleep(25000);
  }
  kill(b->own_pid, SIGKILL);
  waitpid(b->own_pid, NULL, 0);
  b->own_pid = 0;
}

/* One blocking HTTP/1.1 request (Connection: close) before any loop runs;
 * returns the status and the body in *resp (malloc'd). */
static int http_post(const char *host, int port, const char *path, const char *body, char **resp) {
  *resp = NULL;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
    close(fd);
    return -1;
  }
  char head[512];
  int hn = snprintf(head, sizeof head,
                    "POST %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\nContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\n\r\n",
                    path, host, port, strlen(body));
  if (write(fd, head, (size_t)hn) != hn || write(fd, body, strlen(body)) != (ssize_t)strlen(body)) {
    close(fd);
    return -1;
  }
  size_t len = 0, cap = 8192;
  char *in = malloc(cap);
  for (ssize_t got; in && (got = read(fd, in + len, cap - len - 1)) > 0;) {
    len += (size_t)got;
    if (cap - len < 1024) {
      char *n = realloc(in, cap *= 2);
      if (!n) {
        free(in);
        in = NULL;
      } else
        in = n;
    }
  }
  close(fd);
  if (!in) return -1;
  in[len] = 0;
  int status = -1;
  sscanf(in, "HTTP/1.1 %d", &status);
  char *bd = strstr(in, "\r\n\r\n");
  *resp = strdup(bd ? bd + 4 : "");
  free(in);
  return status;
}

/* The bench's app: one key with every right, a mutableMessages namespace for
 * the AI streams and a persisted one for durable publishes. */
static int create_app(bench_t *b) {
  const char *spec = "{\"keys\":[{}],\"namespaces\":[{\"id\":\"ai\",\"mutableMessages\":true},"
                     "{\"id\":\"durable\",\"persisted\":true}]}";
  char *resp = NULL;
  int st = http_post(b->o.host, b->o.port, "/apps", spec, &resp);
  json_t *j = st == 201 && resp ? json_loads(resp, 0, NULL) : NULL;
  const char *k = json_string_value(json_object_get(json_array_get(json_object_get(j, "keys"), 0), "keyStr"));
  int rc = -1;
  if (k && strlen(k) < sizeof b->key) {
    snprintf(b->key, sizeof b->key, "%s", k);
    rc = 0;
  } else
    fprintf(stderr, "switchboard bench: POST /apps answered %d %s (the server needs --sandbox, or pass --key)\n",
            st, resp ? resp : "");
  json_decref(j);
  free(resp);
  return rc;
}

/* JWTs are minted before the clock starts, as an app server would have
 * done: one per connection, each with its own clientId, so the server
 * verifies a different token for every connect. */
static int mint_jwts(bench_t *b, size_t n) {
  b->jwts = calloc(n, sizeof *b->jwts);
  if (!b->jwts) return -1;
  for (size_t i = 0; i < n; i++) {
    char cid[32];
    snprintf(cid, sizeof cid, "bench-%zu", i);
    sw_token_params_t p = {.client_id = cid, .ttl_ms = 3600 * 1000};
    sw_errinfo_t err;
    if (sw_jwt_create(b->key, &p, &b->jwts[i], &err)) {
      fprintf(stderr, "switchboard bench: minting a JWT failed: %d %s\n", err.code, err.message);
      return -1;
    }
    b->n_jwts++;
  }
  return 0;
}

static void free_jwts(bench_t *b) {
  for (size_t i = 0; i < b->n_jwts; i++) free(b->jwts[i]);
  free(b->jwts);
  b->jwts = NULL;
  b->n_jwts = 0;
}

/* ---- workers -------------------------------------------------------------- */

static double self_cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_tick_closed(uv_handle_t *h) { (void)h; }

/* Every millisecond: follow the parent's phase. Phases may be skipped (an
 * abort goes straight to EXIT), so each step checks what was done. */
static void on_tick(uv_timer_t *t) {
  bench_worker_t *w = t->data;
  int ph = atomic_load(&w->b->sh->phase);
  if (!w->cpu_from_taken && atomic_load(&w->b->sh->measure_from_ns)) {
    w->cpu_from = self_cpu_s();
    w->cpu_from_taken = true;
  }
  if (ph == w->phase) return;
  if (ph >= PH_RUN && w->phase < PH_RUN && w->sc->run) {
    w->phase = PH_RUN;
    w->sc->run(w);
  }
  if (ph >= PH_STOP && w->phase < PH_STOP) {
    w->phase = PH_STOP;
    if (w->cpu_from_taken) w->res->cpu_s = self_cpu_s() - w->cpu_from;
    if (w->sc->stop) w->sc->stop(w);
    else bench_done(w);
  }
  if (ph >= PH_EXIT) {
    w->phase = PH_EXIT;
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, on_tick_closed);
    if (w->sc->teardown) w->sc->teardown(w);
  }
}

static void worker_main(bench_t *b, const bench_scenario_t *sc, int id) {
  bench_worker_t *w = calloc(1, sizeof *w);
  if (!w) _exit(3);
  w->b = b;
  w->sc = sc;
  w->id = id;
  w->res = &b->sh->res[id];
  w->phase = PH_SETUP;
  w->rbuf_len = 256 * 1024;
  w->rbuf = malloc(w->rbuf_len);
  cpu_set_t set;
  if (b->o.load_cpus && !parse_cpus(b->o.load_cpus, &set)) sched_setaffinity(0, sizeof set, &set);
  if (!w->rbuf || uv_loop_init(&w->loop)) _exit(3);
  uv_timer_init(&w->loop, &w->tick);
  w->tick.data = w;
  uv_timer_start(&w->tick, on_tick, 1, 1);
  if (sc->setup(w)) bench_fail(w, "setup failed");
  uv_run(&w->loop, UV_RUN_DEFAULT);
  /* A libswitchboard client may still hold handles closing; run until dry. */
  while (uv_loop_close(&w->loop) == UV_EBUSY) uv_run(&w->loop, UV_RUN_NOWAIT);
  free(w->rbuf);
  free(w);
  /* exit, not _exit: the sanitizers' leak check runs in the workers too
   * (stdio was flushed before the fork, so nothing is written twice). */
  exit(0);
}

/* ---- one measured pass ------------------------------------------------------ */

typedef struct pass {
  bench_result_t total;
  double window_s;    /* the measured window */
  double srv_cpu_s;   /* server CPU in that window (all its processes) */
  double srv_cpu_each[BENCH_MAX_PIDS]; /* per --server-pid process */
  double srv_sys_s;   /* of srv_cpu_s, in the kernel (stime) */
  int n_pids;
  double load_cpu_s;  /* the load processes' CPU in that window */
  long rss_before_kb; /* before any connection */
  long rss_ready_kb;  /* after setup (idle: all connected and attached) */
  long rss_end_kb;    /* at the end of the load */
  long rss_first_kb;  /* idle with --settle: the reading 1 s after setup */
  double settle_s;    /* idle with --settle: setup done -> the RSS it reports */
  bool settled;       /* two readings within 0.5 % before the cap */
  int n_samples;
  long samples_kb[128]; /* idle with --settle: the readings, the first 128 */
  double setup_s;
  bool failed;
  char err[300];
} pass_t;

static void sleep_s(double s) {
  if (s <= 0) return;
  struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - floor(s)) * 1e9)};
  while (nanosleep(&ts, &ts) && errno == EINTR) {
  }
}

/* Waits until *counter reaches want, a worker fails, or timeout_s passes. */
static bool wait_count(bench_shared_t *sh, _Atomic int *counter, int want, double timeout_s) {
  int64_t end = bench_now_ns() + (int64_t)(timeout_s * 1e9);
  while (atomic_load(counter) < want) {
    if (atomic_load(&sh->failed) || bench_now_ns() > end) return false;
    sleep_s(0.001);
  }
  return true;
}

/* idle --settle: a server may keep per-connection memory for a while after
 * its clients went quiet, so RSS read 1 s after setup is not its steady
 * state. Redis 7 with 10,000 idle clients, read every second: 110 MB flat
 * for 3 s (two readings within 0.2 %), then down to 33 MB over the next
 * 10 s as it frees idle clients' query buffers and jemalloc returns the
 * pages on its 10 s decay, then flat. So "two consecutive readings alike"
 * is not enough: RSS is read every second until every reading of the last
 * o->settle_window seconds lies within 0.5 % of the others (max - min <=
 * 0.5 % of max), or o->settle seconds pass; the last reading is the figure,
 * and every reading is kept for the report. */
static void settle_rss(const bench_t *b, pid_t spid, pass_t *ps) {
  bench_shared_t *sh = b->sh;
  const int cap_n = (int)(sizeof ps->samples_kb / sizeof *ps->samples_kb);
  int64_t t0 = bench_now_ns(), cap = (int64_t)(b->o.settle * 1e9);
  int need = (int)b->o.settle_window + 1; /* readings spanning the window */
  long ring[601], cur = -1;
  int n = 0;
  if (need > 601) need = 601;
  if (need < 2) need = 2;
  for (;;) {
    sleep_s(1);
    cur = proc_rss_kb(spid);
    if (ps->n_samples < cap_n) ps->samples_kb[ps->n_samples++] = cur;
    if (n == 0) ps->rss_first_kb = cur;
    ring[n++ % need] = cur;
    if (cur < 0 || atomic_load(&sh->failed)) break;
    if (n >= need) {
      long lo = ring[0], hi = ring[0];
      for (int i = 1; i < need; i++) {
        if (ring[i] < lo) lo = ring[i];
        if (ring[i] > hi) hi = ring[i];
      }
      if ((hi - lo) * 200 <= hi) {
        ps->settled = true;
        break;
      }
    }
    if (bench_now_ns() - t0 >= cap) break;
  }
  ps->settle_s = (double)(bench_now_ns() - t0) / 1e9;
  ps->rss_ready_kb = cur;
}

/* utime+stime of every server process (--server-pid list, or the one
 * server): into each[], returns the sum; the sum of stime in *sys. */
static double servers_cpu_s(const bench_opts_t *o, double each[BENCH_MAX_PIDS], double *sys) {
  double sum = 0;
  *sys = 0;
  int n = o->n_server_pids ? o->n_server_pids : (o->server_pid ? 1 : 0);
  for (int i = 0; i < n; i++) {
    pid_t p = o->n_server_pids ? o->server_pids[i] : o->server_pid;
    double st = 0;
    each[i] = proc_cpu_split_s(p, &st);
    sum += each[i];
    *sys += st;
  }
  return sum;
}

/* Sleeps s seconds, returning early (false) if a worker fails. */
static bool watch_sleep(bench_shared_t *sh, double s) {
  int64_t end = bench_now_ns() + (int64_t)(s * 1e9);
  while (bench_now_ns() < end) {
    if (atomic_load(&sh->failed)) return false;
    sleep_s(0.002);
  }
  return true;
}

static int run_pass(bench_t *b, const bench_scenario_t *sc, pass_t *ps) {
  bench_opts_t *o = &b->o;
  bench_shared_t *sh = b->sh;
  memset(sh, 0, sizeof *sh);
  memset(ps, 0, sizeof *ps);
  atomic_store(&sh->measure_to_ns, INT64_MAX);
  bool is_connect = !strcmp(sc->name, "connect"), is_idle = !strcmp(sc->name, "idle");
  pid_t spid = o->server_pid;
  ps->rss_before_kb = spid ? proc_rss_kb(spid) : -1;

  pid_t kids[BENCH_MAX_PROCS] = {0};
  fflush(NULL);
  for (int i = 0; i < o->procs; i++) {
    pid_t p = fork();
    if (p < 0) {
      atomic_store(&sh->failed, 1);
      break;
    }
    if (p == 0) worker_main(b, sc, i);
    kids[i] = p;
  }

  /* Setup: generous, proportional to the connections being opened. */
  int64_t t_setup = bench_now_ns();
  double setup_timeout = 30 + (double)(o->conns + o->subs + o->streams * (o->watchers + 1)) / 500.0;
  const char *fail = NULL;
  if (!wait_count(sh, &sh->ready, o->procs, setup_timeout)) fail = "setup did not finish";
  ps->setup_s = (double)(bench_now_ns() - t_setup) / 1e9;
  /* Let the server's allocations settle before reading RSS. */
  if (!fail && is_idle && o->settle > 0 && spid) {
    settle_rss(b, spid, ps);
  } else {
    if (!fail && is_idle) sleep_s(o->quick ? 0.2 : 1);
    ps->rss_ready_kb = spid ? proc_rss_kb(spid) : -1;
  }

  double cpu0 = 0, cpu1 = 0, sys0 = 0, sys1 = 0, each0[BENCH_MAX_PIDS] = {0}, each1[BENCH_MAX_PIDS] = {0};
  int64_t t0 = 0, t1 = 0;
  ps->n_pids = o->n_server_pids ? o->n_server_pids : (spid ? 1 : 0);
  if (!fail) {
    int64_t now = bench_now_ns();
    atomic_store(&sh->run_ns, now);
    if (is_connect) {
      /* The storm is measured from its first connect. */
      atomic_store(&sh->measure_from_ns, now);
      cpu0 = servers_cpu_s(o, each0, &sys0);
      t0 = now;
    }
    atomic_store(&sh->phase, PH_RUN);
    if (is_connect) {
      if (!wait_count(sh, &sh->done, o->procs, 60 + o->conns / 200.0)) fail = "connections did not all come up";
      t1 = 0;
      for (int i = 0; i < o->procs; i++)
        if (sh->res[i].t_done_ns > t1) t1 = sh->res[i].t_done_ns;
      if (!t1) t1 = bench_now_ns();
      cpu1 = servers_cpu_s(o, each1, &sys1);
    } else {
      if (!watch_sleep(sh, o->warmup)) fail = "failed during warm-up";
      t0 = bench_now_ns();
      cpu0 = servers_cpu_s(o, each0, &sys0);
      atomic_store(&sh->measure_from_ns, t0);
      if (!fail && !watch_sleep(sh, o->seconds)) fail = "failed during the run";
      t1 = bench_now_ns();
      atomic_store(&sh->measure_to_ns, t1);
      cpu1 = servers_cpu_s(o, each1, &sys1);
    }
    ps->rss_end_kb = spid ? proc_rss_kb(spid) : -1;
    atomic_store(&sh->phase, PH_STOP);
    /* Drain: what was sent in the window must arrive. */
    if (!fail && !wait_count(sh, &sh->done, o->procs, 15)) fail = "messages still undelivered 15 s after the run";
  }
  atomic_store(&sh->phase, PH_EXIT);
  for (int i = 0; i < o->procs; i++) {
    if (!kids[i]) continue;
    int st = 0;
    bool gone = false;
    for (int k = 0; k < 3000 && !gone; k++) {
      if (waitpid(kids[i], &st, WNOHANG) == kids[i]) gone = true;
      else sleep_s(0.01);
    }
    if (!gone) {
      kill(kids[i], SIGKILL);
      waitpid(kids[i], &st, 0);
    }
    if (!fail && (!WIFEXITED(st) || WEXITSTATUS(st))) fail = "a load process crashed";
  }

  ps->window_s = (double)(t1 - t0) / 1e9;
  ps->srv_cpu_s = cpu1 - cpu0;
  ps->srv_sys_s = sys1 - sys0;
  for (int i = 0; i < ps->n_pids; i++) ps->srv_cpu_each[i] = each1[i] - each0[i];
  bench_result_t *tot = &ps->total;
  for (int i = 0; i < o->procs; i++) {
    bench_result_t *r = &sh->res[i];
    hist_merge(&tot->lat, &r->lat);
    hist_merge(&tot->lat2, &r->lat2);
    tot->ops += r->ops;
    tot->ops2 += r->ops2;
    tot->sent += r->sent;
    tot->got += r->got;
    tot->expected += r->expected;
    tot->conns += r->conns;
    tot->errors += r->errors;
    ps->load_cpu_s += r->cpu_s;
    if (r->failed && !ps->err[0]) snprintf(ps->err, sizeof ps->err, "process %d: %s", i, r->err);
  }
  if (fail && !ps->err[0]) snprintf(ps->err, sizeof ps->err, "%s", fail);
  ps->failed = fail || tot->errors;
  return ps->failed ? -1 : 0;
}

/* ---- report ----------------------------------------------------------------- */

static double ms(double us) { return round(us * 10.0) / 1e4; } /* us -> ms, 0.1 us precision */

static double r1(double v) { return round(v * 10.0) / 10.0; }

static const char *target_name(bench_target_t t) {
  return t == TARGET_REDIS ? "redis" : t == TARGET_MQTT ? "mosquitto" : "switchboard";
}

static void add_latency(json_t *j, const char *prefix, const bench_hist_t *h) {
  char k[64];
  snprintf(k, sizeof k, "%s_p50_ms", prefix);
  json_object_set_new(j, k, json_real(ms(hist_quantile_us(h, 0.50))));
  snprintf(k, sizeof k, "%s_p99_ms", prefix);
  json_object_set_new(j, k, json_real(ms(hist_quantile_us(h, 0.99))));
  snprintf(k, sizeof k, "%s_max_ms", prefix);
  json_object_set_new(j, k, json_real(ms((double)h->max_us)));
}

static void add_common(json_t *j, const bench_t *b, const pass_t *ps) {
  json_object_set_new(j, "server_cpu_pct", json_real(ps->window_s > 0 ? r1(100 * ps->srv_cpu_s / ps->window_s) : 0));
  /* How much of that the kernel spent on the server's behalf (its
   * syscalls, and on loopback the receiving sockets' TCP input too). */
  json_object_set_new(j, "server_kernel_pct", json_real(ps->srv_cpu_s > 0 ? r1(100 * ps->srv_sys_s / ps->srv_cpu_s) : 0));
  json_object_set_new(j, "load_cpu_pct", json_real(ps->window_s > 0 ? r1(100 * ps->load_cpu_s / ps->window_s) : 0));
  json_object_set_new(j, "server_rss_mb", json_real(r1((double)ps->rss_end_kb / 1024.0)));
  json_object_set_new(j, "errors", json_integer((json_int_t)ps->total.errors));
  if (ps->err[0]) json_object_set_new(j, "error", json_string(ps->err));
  (void)b;
}

/* Server CPU per operation: what the server spends, whoever limits the rate
 * (on two cores the load generator often does). /proc ticks are 10 ms, so
 * this needs a window of seconds. */
static void add_cost(json_t *j, const char *key, const pass_t *ps, uint64_t ops) {
  if (ops) json_object_set_new(j, key, json_real(round(ps->srv_cpu_s * 1e8 / (double)ops) / 100));
  /* Several server processes (a cluster and its Redis): each one's share,
   * as server1_..., server2_... in --server-pid order. */
  if (ps->n_pids < 2) return;
  const char *op = strstr(key, "_per_");
  for (int i = 0; i < ps->n_pids; i++) {
    char k[96];
    if (ops && op) {
      snprintf(k, sizeof k, "server%d_us%s", i + 1, op);
      json_object_set_new(j, k, json_real(round(ps->srv_cpu_each[i] * 1e8 / (double)ops) / 100));
    }
    snprintf(k, sizeof k, "server%d_cpu_pct", i + 1);
    json_object_set_new(j, k, json_real(ps->window_s > 0 ? r1(100 * ps->srv_cpu_each[i] / ps->window_s) : 0));
  }
}

static json_t *report(const bench_t *b, const pass_t *ps) {
  const bench_opts_t *o = &b->o;
  const bench_result_t *t = &ps->total;
  json_t *j = json_object();
  const char *sc = o->scenario;
  json_object_set_new(j, "scenario", json_string(sc));
  json_object_set_new(j, "target", json_string(target_name(o->target)));
  json_object_set_new(j, "procs", json_integer(o->procs));
  if (!strcmp(sc, "connect")) {
    json_object_set_new(j, "connections", json_integer((json_int_t)t->conns));
    json_object_set_new(j, "concurrency", json_integer(o->concurrency * o->procs));
    json_object_set_new(j, "client", json_string(o->raw ? "raw" : "libswitchboard"));
    json_object_set_new(j, "seconds", json_real(r1(ps->window_s * 1000) / 1000));
    json_object_set_new(j, "connects_per_s", json_real(r1(ps->window_s > 0 ? (double)t->ops / ps->window_s : 0)));
    add_latency(j, "connect", &t->lat);
    add_cost(j, "server_us_per_connect", ps, t->ops);
  } else if (!strcmp(sc, "idle")) {
    json_object_set_new(j, "connections", json_integer((json_int_t)t->conns));
    json_object_set_new(j, "channels", json_integer(o->channels ? o->channels : (int)t->conns));
    json_object_set_new(j, "setup_s", json_real(r1(ps->setup_s * 100) / 100));
    json_object_set_new(j, "rss_before_kb", json_integer(ps->rss_before_kb));
    json_object_set_new(j, "rss_after_kb", json_integer(ps->rss_ready_kb));
    double per = t->conns ? (double)(ps->rss_ready_kb - ps->rss_before_kb) * 1024.0 / (double)t->conns : 0;
    json_object_set_new(j, "rss_per_conn_bytes", json_integer((json_int_t)llround(per)));
    if (o->settle > 0) {
      double first = t->conns ? (double)(ps->rss_first_kb - ps->rss_before_kb) * 1024.0 / (double)t->conns : 0;
      json_object_set_new(j, "rss_per_conn_first_bytes", json_integer((json_int_t)llround(first)));
      json_object_set_new(j, "settle_s", json_real(r1(ps->settle_s * 10) / 10));
      json_object_set_new(j, "settled", json_boolean(ps->settled));
      json_object_set_new(j, "settle_window_s", json_real(o->settle_window));
      json_t *a = json_array();
      for (int i = 0; i < ps->n_samples; i++) json_array_append_new(a, json_integer(ps->samples_kb[i]));
      json_object_set_new(j, "rss_samples_kb", a);
    }
  } else if (!strcmp(sc, "fanout")) {
    json_object_set_new(j, "subscribers", json_integer(o->subs));
    json_object_set_new(j, "hosts", json_integer(o->n_hosts ? o->n_hosts : 1));
    json_object_set_new(j, "payload_bytes", json_integer(o->payload));
    json_object_set_new(j, "window", json_integer(o->window));
    json_object_set_new(j, "seconds", json_real(r1(ps->window_s * 100) / 100));
    json_object_set_new(j, "messages", json_integer((json_int_t)t->sent));
    json_object_set_new(j, "deliveries", json_integer((json_int_t)t->got));
    json_object_set_new(j, "lost", json_integer((json_int_t)(t->expected > t->got ? t->expected - t->got : 0)));
    json_object_set_new(j, "deliveries_per_s", json_real(r1(ps->window_s > 0 ? (double)t->ops / ps->window_s : 0)));
    add_latency(j, "latency", &t->lat);
    add_cost(j, "server_us_per_delivery", ps, t->ops);
  } else if (!strcmp(sc, "durable")) {
    json_object_set_new(j, "sync", json_string(b->sync_mode));
    json_object_set_new(j, "publishers", json_integer(o->publishers));
    json_object_set_new(j, "pub_rate", json_integer(o->pub_rate));
    json_object_set_new(j, "hosts", json_integer(o->n_hosts ? o->n_hosts : 1));
    json_object_set_new(j, "window", json_integer(o->window));
    json_object_set_new(j, "payload_bytes", json_integer(o->payload));
    json_object_set_new(j, "seconds", json_real(r1(ps->window_s * 100) / 100));
    json_object_set_new(j, "messages", json_integer((json_int_t)t->got));
    json_object_set_new(j, "messages_per_s", json_real(r1(ps->window_s > 0 ? (double)t->ops / ps->window_s : 0)));
    add_latency(j, "ack", &t->lat);
    add_cost(j, "server_us_per_message", ps, t->ops);
  } else if (!strcmp(sc, "ai")) {
    json_object_set_new(j, "streams", json_integer(o->streams));
    json_object_set_new(j, "appends_per_s_per_stream", json_integer(o->rate));
    json_object_set_new(j, "watchers", json_integer(o->watchers));
    json_object_set_new(j, "writer_connections", json_integer(o->agents));
    if (!o->port) json_object_set_new(j, "append_rollup_ms", json_integer(o->append_rollup));
    json_object_set_new(j, "payload_bytes", json_integer(o->payload));
    json_object_set_new(j, "seconds", json_real(r1(ps->window_s * 100) / 100));
    json_object_set_new(j, "appends", json_integer((json_int_t)t->sent));
    json_object_set_new(j, "appends_per_s", json_real(r1(ps->window_s > 0 ? (double)t->ops2 / ps->window_s : 0)));
    json_object_set_new(j, "deliveries_per_s", json_real(r1(ps->window_s > 0 ? (double)t->ops / ps->window_s : 0)));
    json_object_set_new(j, "lost", json_integer((json_int_t)(t->expected > t->got ? t->expected - t->got : 0)));
    add_latency(j, "latency", &t->lat);
    add_latency(j, "ack", &t->lat2);
    add_cost(j, "server_us_per_append", ps, t->ops2);
  }
  add_common(j, b, ps);
  return j;
}

static void print_report(const bench_t *b, json_t *j) {
  if (b->o.json) {
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    if (s) printf("%s\n", s);
    free(s);
  } else {
    const char *k;
    json_t *v;
    printf("%s (%s)\n", json_string_value(json_object_get(j, "scenario")),
           json_string_value(json_object_get(j, "target")));
    json_object_foreach(j, k, v) {
      if (!strcmp(k, "scenario") || !strcmp(k, "target")) continue;
      if (json_is_string(v)) printf("  %-26s %s\n", k, json_string_value(v));
      else if (json_is_integer(v)) printf("  %-26s %lld\n", k, (long long)json_integer_value(v));
      else printf("  %-26s %.4g\n", k, json_real_value(v));
    }
  }
  fflush(stdout);
}

/* ---- entry ------------------------------------------------------------------ */

static const bench_scenario_t *find_scenario(const char *name) {
  const bench_scenario_t *all[] = {&bench_connect_scenario, &bench_idle_scenario, &bench_fanout_scenario,
                                   &bench_durable_scenario, &bench_ai_scenario};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    if (!strcmp(all[i]->name, name)) return all[i];
  return NULL;
}

/* The switchboard connections a scenario opens (one JWT each). */
static size_t jwts_needed(const bench_opts_t *o) {
  const char *s = o->scenario;
  if (!strcmp(s, "connect") || !strcmp(s, "idle")) return (size_t)o->conns;
  if (!strcmp(s, "fanout")) return (size_t)o->subs + 1;
  if (!strcmp(s, "durable")) return (size_t)o->publishers;
  return (size_t)o->streams * (size_t)o->watchers + (size_t)o->agents;
}

/* Raises the descriptor limit: a storm holds every connection open, twice
 * over when the server is our child on the same machine. */
static void raise_nofile(void) {
  struct rlimit r;
  if (getrlimit(RLIMIT_NOFILE, &r)) return;
  rlim_t want = 1 << 20;
  struct rlimit n = {.rlim_cur = want, .rlim_max = want > r.rlim_max ? want : r.rlim_max};
  if (setrlimit(RLIMIT_NOFILE, &n)) {
    n.rlim_cur = r.rlim_max;
    n.rlim_max = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &n);
  }
}

/* Storms hold every connection open: the server (our child, or a peer) and
 * each load process need a descriptor per connection. Better a clear
 * refusal than EMFILE half-way through. */
static int check_nofile(const bench_opts_t *o) {
  struct rlimit r;
  bool many = !strcmp(o->scenario, "connect") || !strcmp(o->scenario, "idle");
  if (!many || getrlimit(RLIMIT_NOFILE, &r) || r.rlim_cur == RLIM_INFINITY) return 0;
  if ((rlim_t)o->conns + 256 <= r.rlim_cur) return 0;
  fprintf(stderr,
          "switchboard bench: %d connections need more descriptors than this process may open (%llu, and it "
          "cannot raise its hard limit); use --connections %llu or less\n",
          o->conns, (unsigned long long)r.rlim_cur, (unsigned long long)(r.rlim_cur - 256));
  return 2;
}

/* One scenario against one server configuration (sync mode). */
static int run_one(bench_t *b, const bench_scenario_t *sc, const char *sync) {
  bench_opts_t *o = &b->o;
  bool own = o->target == TARGET_SWITCHBOARD && !o->port;
  int rc = 1;
  b->sync_mode = sync;
  if (own && server_start(b, sync)) goto out;
  if (o->target == TARGET_SWITCHBOARD) {
    if (o->key) snprintf(b->key, sizeof b->key, "%s", o->key);
    else if (create_app(b)) goto out;
    if (mint_jwts(b, jwts_needed(o))) goto out;
  }
  if (o->verbose)
    fprintf(stderr, "bench %s: %s on %s:%d (pid %d)\n", sc->name, target_name(o->target), o->host, o->port,
            (int)o->server_pid);
  pass_t ps;
  int prc = run_pass(b, sc, &ps);
  json_t *j = report(b, &ps);
  print_report(b, j);
  json_decref(j);
  if (prc) fprintf(stderr, "switchboard bench %s: %s\n", sc->name, ps.err[0] ? ps.err : "errors");
  rc = prc ? 1 : 0;
out:
  free_jwts(b);
  if (own) {
    server_stop(b);
    o->port = 0;
    o->server_pid = 0;
  }
  return rc;
}

static void rm_tree(const char *dir) {
  /* Our own temp dir only: config, log and SQLite files, one level deep. */
  char cmd[400];
  if (strncmp(dir, "/tmp/swbench-", 13)) return;
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd)) {
  }
}

static int bench_main(bench_t *b, int argc, char **argv) {
  int rc = parse_opts(&b->o, argc, argv);
  if (rc) return rc == 1 ? 0 : rc;
  const bench_scenario_t *sc = find_scenario(b->o.scenario);
  if (!sc) {
    bad_usage("unknown scenario", b->o.scenario);
    usage(stderr);
    return 2;
  }
  raise_nofile();
  if ((rc = check_nofile(&b->o))) return rc;
  signal(SIGPIPE, SIG_IGN);
  snprintf(b->tmpdir, sizeof b->tmpdir, "/tmp/swbench-XXXXXX");
  if (!mkdtemp(b->tmpdir)) {
    perror("switchboard bench: mkdtemp");
    return 1;
  }
  b->sh = mmap(NULL, sizeof *b->sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  b->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (b->sh == MAP_FAILED || b->efd < 0) {
    perror("switchboard bench");
    rm_tree(b->tmpdir);
    return 1;
  }
  if (!strcmp(sc->name, "durable") && !strcmp(b->o.sync, "both") && !b->o.port) {
    rc = run_one(b, sc, "full");
    rc |= run_one(b, sc, "normal");
  } else {
    /* An external server keeps its own synchronous setting. */
    const char *mode = b->o.port ? "server's" : !strcmp(sc->name, "durable") ? b->o.sync : "full";
    rc = run_one(b, sc, mode);
  }
  munmap(b->sh, sizeof *b->sh);
  close(b->efd);
  rm_tree(b->tmpdir);
  return rc;
}

int tool_bench(int argc, char **argv) {
  bench_t b;
  memset(&b, 0, sizeof b);
  b.efd = -1;
  int rc = bench_main(&b, argc, argv);
  free(b.o.hosts_buf);
  return rc;
}
