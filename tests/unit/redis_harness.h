/* redis_harness.h: a real redis-server for the cluster tests, started on
 * loopback on a free port in a temporary directory and stopped at the end.
 * redis-server must be installed (scripts/deps.sh test installs it): when
 * it is missing the test FAILS, it is not skipped. */
#ifndef SW_TEST_REDIS_HARNESS_H
#define SW_TEST_REDIS_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

typedef struct rh_server {
  pid_t pid;
  int port;
  char dir[64];
  char sock[96]; /* fits sockaddr_un.sun_path (108) */
  char password[64]; /* "" for none */
  bool aof;          /* appendonly yes, appendfsync always */
} rh_server_t;

static bool rh_find_bin(char *out, size_t cap) {
  const char *path = getenv("PATH");
  char buf[4096];
  snprintf(buf, sizeof buf, "%s:/usr/bin:/usr/sbin:/usr/local/bin", path ? path : "");
  for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    snprintf(out, cap, "%s/redis-server", d);
    if (access(out, X_OK) == 0) return true;
  }
  return false;
}

/* A port nobody listens on now (bound to :0 and released). */
static int rh_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &len)) {
    fprintf(stderr, "no free port: %s\n", strerror(errno));
    abort();
  }
  close(fd);
  return ntohs(a.sin_port);
}

static bool rh_accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  if (fd >= 0) close(fd);
  return ok;
}

/* Our server is up: its unix socket accepts. redis-server binds its TCP
 * port before it creates the unix socket and exits when the port is taken,
 * so this also says the TCP port is ours. Checking the TCP port alone could
 * reach another process that took the port meanwhile (the integration
 * suite's servers pick free ports on this machine at the same time). */
static bool rh_unix_accepts(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  if (fd >= 0) close(fd);
  return ok;
}

static void rh_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Kills the server with sig (SIGKILL: a crash) and reaps it. */
static void rh_kill(rh_server_t *s, int sig) {
  if (s->pid <= 0) return;
  kill(s->pid, sig);
  waitpid(s->pid, NULL, 0);
  s->pid = 0;
}

/* Spawns the server and waits for it: true once it serves, false if it
 * exited (its port was taken) or did not come up in 20 s. */
static bool rh_spawn(rh_server_t *s, const char *bin) {
  char port[16];
  snprintf(port, sizeof port, "%d", s->port);
  pid_t pid = fork();
  if (pid < 0) abort();
  if (pid == 0) {
    const char *argv[40];
    int a = 0;
    argv[a++] = bin;
    argv[a++] = "--port";
    argv[a++] = port;
    argv[a++] = "--bind";
    argv[a++] = "127.0.0.1";
    argv[a++] = "--dir";
    argv[a++] = s->dir;
    argv[a++] = "--unixsocket";
    argv[a++] = s->sock;
    argv[a++] = "--unixsocketperm";
    argv[a++] = "700";
    argv[a++] = "--save";
    argv[a++] = "";
    argv[a++] = "--appendonly";
    argv[a++] = s->aof ? "yes" : "no";
    argv[a++] = "--appendfsync";
    argv[a++] = "always";
    argv[a++] = "--daemonize";
    argv[a++] = "no";
    argv[a++] = "--loglevel";
    argv[a++] = "warning";
    argv[a++] = "--logfile";
    argv[a++] = "";
    if (s->password[0]) {
      argv[a++] = "--requirepass";
      argv[a++] = s->password;
    }
    argv[a] = NULL;
    /* Dies with the test (a crashed test leaves no server behind), and
     * holds none of its output pipes (a pipeline reading the test's output
     * would wait for the server otherwise). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
      dup2(null, 1);
      dup2(null, 2);
    }
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  s->pid = pid;
  for (int i = 0; i < 400; i++) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) break;
    if (rh_unix_accepts(s->sock) && rh_accepts(s->port)) return true;
    rh_sleep_ms(50);
  }
  rh_kill(s, SIGKILL);
  return false;
}

/* Starts (or restarts, same port and directory) the server; aborts the
 * test when redis-server is missing or does not come up. A first start
 * whose free port was taken before the server bound it tries another
 * port; a restart keeps its port (the buses' URLs name it) and tries
 * again on the same one. */
static void rh_start(rh_server_t *s) {
  char bin[512];
  if (!rh_find_bin(bin, sizeof bin)) {
    fprintf(stderr, "FAIL: redis-server is not installed; run scripts/deps.sh test\n");
    abort();
  }
  if (!s->dir[0]) {
    snprintf(s->dir, sizeof s->dir, "/tmp/sw-redis-XXXXXX");
    if (!mkdtemp(s->dir)) abort();
    snprintf(s->sock, sizeof s->sock, "%s/redis.sock", s->dir);
  }
  bool fixed = s->port != 0;
  for (int attempt = 0; attempt < 5; attempt++) {
    if (!fixed) s->port = rh_free_port();
    unlink(s->sock); /* a killed server leaves its socket file behind */
    if (rh_spawn(s, bin)) return;
    rh_sleep_ms(200);
  }
  fprintf(stderr, "FAIL: redis-server did not start on port %d\n", s->port);
  abort();
}

/* Stops the server and removes its directory. */
static void rh_stop(rh_server_t *s) {
  rh_kill(s, SIGKILL);
  if (s->dir[0]) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", s->dir);
    s->dir[0] = '\0';
  }
}

/* Runs the loop until *flag or timeout_ms; false on timeout. */
static bool rh_run_until(uv_loop_t *loop, const bool *flag, int timeout_ms) {
  uint64_t end = uv_hrtime() + (uint64_t)timeout_ms * 1000000ULL;
  while (!*flag) {
    if (uv_hrtime() > end) return false;
    uv_run(loop, UV_RUN_NOWAIT);
    if (!*flag) rh_sleep_ms(1);
  }
  return true;
}

/* Runs the loop for ms. */
static void rh_run_for(uv_loop_t *loop, int ms) {
  bool never = false;
  rh_run_until(loop, &never, ms);
}

/* Closes every handle left and runs the loop until it is empty. */
static void rh_loop_drain(uv_loop_t *loop) {
  for (int i = 0; i < 2000 && uv_run(loop, UV_RUN_NOWAIT); i++) rh_sleep_ms(1);
}

#endif
