/* harness.c: see harness.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int server_start(const char *bin, test_server_t *s) {
  return server_start_config(bin, NULL, s);
}

int server_start_config(const char *bin, const char *config_json, test_server_t *s) {
  char cfg[] = "/tmp/swc-test-config-XXXXXX";
  if (config_json) {
    int fd = mkstemp(cfg);
    if (fd < 0) return -1;
    ssize_t n = write(fd, config_json, strlen(config_json));
    close(fd);
    if (n != (ssize_t)strlen(config_json)) return -1;
  }
  int out[2];
  if (pipe(out)) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  char *argv[] = {(char *)bin, "serve", "--listen", "127.0.0.1:0", "--memory", "--sandbox", NULL, NULL, NULL};
  if (config_json) {
    argv[6] = "--config";
    argv[7] = cfg;
  }
  int rc = posix_spawn(&s->pid, bin, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  if (rc) {
    close(out[0]);
    fprintf(stderr, "cannot start %s: %s\n", bin, strerror(rc));
    return -1;
  }
  /* Read stdout until the listening line (10 s at most). */
  char buf[4096];
  size_t len = 0;
  s->port = 0;
  for (int waited = 0; waited < 10000 && !s->port;) {
    struct pollfd p = {.fd = out[0], .events = POLLIN};
    int n = poll(&p, 1, 100);
    waited += 100;
    if (n <= 0) continue;
    ssize_t got = read(out[0], buf + len, sizeof buf - 1 - len);
    if (got <= 0) break;
    len += (size_t)got;
    buf[len] = 0;
    const char *at = strstr(buf, "listening on http");
    if (at && strchr(at, '\n') && (at = strstr(at, "://127.0.0.1:"))) s->port = atoi(at + strlen("://127.0.0.1:"));
  }
  if (config_json) unlink(cfg);
  close(out[0]); /* the server writes nothing more to stdout that we need */
  if (!s->port) {
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    return -1;
  }
  return 0;
}

int server_stop(test_server_t *s) {
  if (s->pid <= 0) return -1;
  kill(s->pid, SIGTERM);
  int status = 0;
  for (int i = 0; i < 200; i++) {
    if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
      s->pid = 0;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    usleep(50000);
  }
  kill(s->pid, SIGKILL);
  waitpid(s->pid, &status, 0);
  s->pid = 0;
  return -1;
}

int http_call(int port, const char *method, const char *path, const char *headers, const char *body, char **resp) {
  if (resp) *resp = NULL;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
    close(fd);
    return -1;
  }
  size_t blen = body ? strlen(body) : 0;
  char *req = NULL;
  size_t rlen = 0;
  FILE *f = open_memstream(&req, &rlen);
  fprintf(f, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\nContent-Length: %zu\r\n%s%s\r\n", method,
          path, port, blen, body ? "Content-Type: application/json\r\n" : "", headers ? headers : "");
  if (body) fputs(body, f);
  fclose(f);
  ssize_t w = write(fd, req, rlen);
  free(req);
  if (w != (ssize_t)rlen) {
    close(fd);
    return -1;
  }
  char *in = NULL;
  size_t ilen = 0, icap = 0;
  for (;;) {
    if (ilen + 4096 + 1 > icap) {
      icap = icap ? icap * 2 : 8192;
      in = realloc(in, icap);
    }
    ssize_t got = read(fd, in + ilen, icap - ilen - 1);
    if (got <= 0) break;
    ilen += (size_t)got;
  }
  close(fd);
  if (!in) return -1;
  in[ilen] = 0;
  int status = -1;
  sscanf(in, "HTTP/1.1 %d", &status);
  char *b = strstr(in, "\r\n\r\n");
  if (resp) *resp = strdup(b ? b + 4 : "");
  free(in);
  return status;
}

json_t *create_app(int port, const char *body) {
  char *resp = NULL;
  int st = http_call(port, "POST", "/apps", NULL, body, &resp);
  json_t *v = st == 201 && resp ? json_loads(resp, 0, NULL) : NULL;
  if (!v) fprintf(stderr, "POST /apps: %d %s\n", st, resp ? resp : "");
  free(resp);
  return v;
}

const char *key_str(const json_t *app, size_t i) {
  return json_string_value(json_object_get(json_array_get(json_object_get(app, "keys"), i), "keyStr"));
}

int run_with_server_(const char *group, const struct CMUnitTest *tests, size_t n, test_env_t *env,
                     const server_hooks_t *hooks) {
  if (server_start(env->bin, &env->srv)) {
    fprintf(stderr, "could not start the server %s\n", env->bin);
    return 1;
  }
  int failed = 0;
  if (hooks && hooks->after_start && hooks->after_start(hooks->ud)) {
    failed = 1;
  } else {
    failed = _cmocka_run_group_tests(group, tests, n, NULL, NULL);
  }
  if (hooks && hooks->before_stop) hooks->before_stop(hooks->ud);
  if (server_stop(&env->srv) != 0) {
    fprintf(stderr, "the server did not shut down cleanly\n");
    failed++;
  }
  return failed;
}

static void on_tick(uv_timer_t *t) {
  (void)t;
}

bool run_until_fn(uv_loop_t *loop, bool (*cond)(void *), void *arg, int timeout_ms) {
  uv_timer_t ticker;
  uv_timer_init(loop, &ticker);
  uv_timer_start(&ticker, on_tick, 5, 5);
  uv_update_time(loop);
  uint64_t deadline = uv_now(loop) + (uint64_t)timeout_ms;
  while (!cond(arg) && uv_now(loop) < deadline) uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&ticker, NULL);
  uv_run(loop, UV_RUN_NOWAIT); /* let the close complete */
  return cond(arg);
}

static bool flag_set(void *arg) {
  return *(const bool *)arg;
}

bool run_until(uv_loop_t *loop, const bool *flag, int timeout_ms) {
  return run_until_fn(loop, flag_set, (void *)flag, timeout_ms);
}

static bool never(void *arg) {
  (void)arg;
  return false;
}

void run_for(uv_loop_t *loop, int ms) {
  run_until_fn(loop, never, NULL, ms);
}

void test_log(int level, const char *msg, void *ud) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  fprintf(stderr, "[%ld.%03ld %s L%d] %s\n", (long)ts.tv_sec % 1000, ts.tv_nsec / 1000000, ud ? (const char *)ud : "",
          level, msg);
}

void test_options(sw_options_t *o, const test_server_t *s, uv_loop_t *loop, int format) {
  sw_options_init(o);
  o->host = "127.0.0.1";
  o->port = s->port;
  o->loop = loop;
  o->format = format;
  o->disconnected_retry_ms = 500;
  o->realtime_request_timeout_ms = 5000;
  if (getenv("SW_CLIENT_LOG")) {
    o->log_cb = test_log;
    o->log_level = SW_LOG_DEBUG;
  }
}

void state_log_cb(sw_client_t *c, const sw_state_change_t *ch, void *ud) {
  state_log_t *l = ud;
  (void)c;
  if (l->n < 256) {
    l->states[l->n] = ch->current;
    if (ch->reason) l->reasons[l->n] = *ch->reason;
    l->resumed[l->n] = ch->resumed;
    l->n++;
  }
  if (ch->reason) l->last_reason = *ch->reason;
  if (ch->current == SW_CONN_CONNECTED && ch->previous != SW_CONN_CONNECTED) {
    l->connected_count++;
    if (ch->resumed) l->resumed_count++;
  }
  if (ch->current == SW_CONN_CONNECTED && ch->previous == SW_CONN_CONNECTED) l->update_count++;
  l->connected = ch->current == SW_CONN_CONNECTED;
  if (ch->current == SW_CONN_FAILED) l->failed = true;
  if (ch->current == SW_CONN_CLOSED) l->closed = true;
  if (getenv("SW_CLIENT_LOG"))
    fprintf(stderr, "state %s -> %s (%d %s)\n", sw_conn_state_name(ch->previous), sw_conn_state_name(ch->current),
            ch->reason ? ch->reason->code : 0, ch->reason ? ch->reason->message : "");
}

/* ---- per-test context ---- */

void tctx_init(tctx_t *t, test_env_t *env, const char *app_body) {
  memset(t, 0, sizeof *t);
  t->env = env;
  assert_int_equal(uv_loop_init(&t->loop), 0);
  t->app = create_app(env->srv.port, app_body ? app_body : "{\"keys\":[{}]}");
  assert_non_null(t->app);
  t->key = key_str(t->app, 0);
  assert_non_null(t->key);
}

void tctx_done(tctx_t *t) {
  /* Sockets and timers close asynchronously: let them finish. */
  for (int i = 0; i < 1000 && uv_run(&t->loop, UV_RUN_NOWAIT); i++) usleep(1000);
  assert_int_equal(uv_loop_close(&t->loop), 0);
  json_decref(t->app);
}

void tctx_options(tctx_t *t, sw_options_t *o, int format) {
  test_options(o, &t->env->srv, &t->loop, format);
  o->key = t->key;
}

sw_client_t *tconnect(tctx_t *t, sw_options_t *o, state_log_t *log) {
  sw_client_t *c = tclient(t, o, log);
  assert_true(run_until(&t->loop, &log->connected, 5000));
  return c;
}

sw_client_t *tclient(tctx_t *t, sw_options_t *o, state_log_t *log) {
  o->on_state = state_log_cb;
  o->state_ud = log;
  sw_client_t *c = NULL;
  sw_errinfo_t err = {0};
  int rc = sw_client_new(o, &c, &err);
  if (rc) fprintf(stderr, "sw_client_new: %d %d %s\n", rc, err.code, err.message);
  assert_int_equal(rc, 0);
  assert_int_equal(sw_client_connect(c), 0);
  return c;
}

void tclose(tctx_t *t, sw_client_t *c, state_log_t *log) {
  sw_client_close(c);
  if (log) {
    bool done = log->closed || log->failed;
    if (!done) run_until(&t->loop, &log->closed, 5000);
  }
  sw_client_free(c);
}

json_t *message_json(const sw_message_t *m) {
  json_t *o = json_object();
#define S(k, v) \
  if (v) json_object_set_new(o, k, json_string(v))
  S("id", m->id);
  S("name", m->name);
  S("encoding", m->encoding);
  S("clientId", m->client_id);
  S("connectionId", m->connection_id);
  S("serial", m->serial);
#undef S
  if (m->data_type == SW_PAYLOAD_STRING) {
    json_object_set_new(o, "data", json_stringn(m->data, m->data_len));
    json_object_set_new(o, "type", json_string("string"));
  } else if (m->data_type == SW_PAYLOAD_BINARY) {
    char *b64 = malloc(4 * ((m->data_len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)b64, m->data, (int)m->data_len);
    json_object_set_new(o, "data", json_string(b64));
    free(b64);
    json_object_set_new(o, "type", json_string("binary"));
  } else {
    json_object_set_new(o, "type", json_string("none"));
  }
  if (m->timestamp) json_object_set_new(o, "timestamp", json_integer(m->timestamp));
  if (m->extras) json_object_set_new(o, "extras", json_loads(m->extras, 0, NULL));
  if (m->version) json_object_set_new(o, "version", json_loads(m->version, 0, NULL));
  json_object_set_new(o, "action", json_integer(m->action));
  return o;
}

void recv_cb(sw_channel_t *ch, const sw_message_t *m, void *ud) {
  recv_log_t *r = ud;
  (void)ch;
  if (!r->msgs) r->msgs = json_array();
  json_array_append_new(r->msgs, message_json(m));
}

void ack_cb(sw_channel_t *ch, const sw_errinfo_t *err, const char *const *serials, size_t n, void *ud) {
  ack_log_t *a = ud;
  (void)ch;
  if (!a->serials) a->serials = json_array();
  if (err) {
    a->nacked++;
    a->last_err = *err;
    return;
  }
  a->acked++;
  for (size_t i = 0; i < n; i++) json_array_append_new(a->serials, serials[i] ? json_string(serials[i]) : json_null());
}

void done_cb(sw_channel_t *ch, const sw_errinfo_t *err, void *ud) {
  done_log_t *d = ud;
  (void)ch;
  d->done = true;
  if (err) d->err = *err;
}

static void on_flow_tick(uv_timer_t *t) {
  flow_t *f = t->data;
  for (int i = 0; i < f->batch && f->sent < f->total; i++) {
    char data[16];
    snprintf(data, sizeof data, "m%06d", f->sent);
    assert_int_equal(sw_channel_publish(f->ch, "seq", data, ack_cb, &f->acks), 0);
    f->sent++;
  }
  if (f->sent >= f->total) uv_timer_stop(t);
}

void flow_start(flow_t *f, uv_loop_t *loop, sw_channel_t *ch, int total, int interval_ms, int batch) {
  memset(f, 0, sizeof *f);
  f->ch = ch;
  f->total = total;
  f->batch = batch > 0 ? batch : 1;
  uv_timer_init(loop, &f->timer);
  f->timer.data = f;
  f->running = true;
  uv_timer_start(&f->timer, on_flow_tick, 0, (uint64_t)interval_ms);
}

void flow_stop(flow_t *f) {
  if (!f->running) return;
  f->running = false;
  uv_close((uv_handle_t *)&f->timer, NULL);
  json_decref(f->acks.serials);
  f->acks.serials = NULL;
}

void assert_sequence(const recv_log_t *r, int total) {
  size_t n = r->msgs ? json_array_size(r->msgs) : 0;
  for (size_t i = 0; i < n; i++) {
    char want[32];
    snprintf(want, sizeof want, "m%06zu", i);
    const char *got = json_string_value(json_object_get(json_array_get(r->msgs, i), "data"));
    if (!got || strcmp(got, want) != 0) {
      fprintf(stderr, "message %zu: got %s, want %s (of %zu received, %d sent)\n", i, got ? got : "(none)", want, n, total);
      fail();
    }
  }
  if (n != (size_t)total) fprintf(stderr, "received %zu of %d\n", n, total);
  assert_int_equal(n, (size_t)total);
}

typedef struct received_wait {
  const recv_log_t *r;
  size_t n;
} received_wait_t;

static bool received_n(void *arg) {
  const received_wait_t *w = arg;
  return w->r->msgs && json_array_size(w->r->msgs) >= w->n;
}

bool wait_received(uv_loop_t *loop, const recv_log_t *r, size_t n, int timeout_ms) {
  received_wait_t w = {r, n};
  return run_until_fn(loop, received_n, &w, timeout_ms);
}

typedef struct flow_wait {
  const recv_log_t *r;
  const flow_t *f;
  int total;
} flow_wait_t;

static bool flow_through(void *arg) {
  const flow_wait_t *w = arg;
  return w->f->acks.acked + w->f->acks.nacked >= w->total && w->r->msgs &&
         json_array_size(w->r->msgs) >= (size_t)w->total;
}

bool wait_flow_through(uv_loop_t *loop, const recv_log_t *r, const flow_t *f, int total, int timeout_ms) {
  flow_wait_t w = {r, f, total};
  return run_until_fn(loop, flow_through, &w, timeout_ms);
}

void chan_log_cb(sw_channel_t *ch, sw_channel_state_t prev, sw_channel_state_t cur, const sw_errinfo_t *reason,
                 bool resumed, void *ud) {
  chan_log_t *l = ud;
  (void)ch;
  (void)prev;
  (void)reason;
  if (cur == SW_CHANNEL_ATTACHED) {
    l->attached++;
    if (resumed) l->resumed++;
  }
}
