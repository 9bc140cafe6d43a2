#include "identity/fetch.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CONNECT_TIMEOUT_MS 5000L
#define MAX_HEADER_LINE 8192u

typedef struct poll_ctx poll_ctx_t;

struct sw_fetcher {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  sw_fetch_t *reqs;   /* live requests, to cancel on close */
  poll_ctx_t *polls;  /* watched sockets, to close on close */
  int open_handles;   /* uv handles not yet closed (timer + polls) */
  bool closing;
};

struct sw_fetch {
  sw_fetcher_t *f;
  CURL *easy;
  sw_fetch_cb cb;
  void *ud;
  char *body;
  size_t len, cap, max;
  bool too_big;
  int64_t max_age_s;
  char errbuf[CURL_ERROR_SIZE];
  sw_fetch_t *prev, *next;
};

/* One socket curl asked us to watch. */
struct poll_ctx {
  uv_poll_t poll; /* first: the close callback gets the handle */
  curl_socket_t fd;
  sw_fetcher_t *f;
  poll_ctx_t *prev, *next;
};

static void maybe_free(sw_fetcher_t *f) {
  if (f->closing && f->open_handles == 0) free(f);
}

static void on_handle_closed(uv_handle_t *h) {
  sw_fetcher_t *f;
  if (h->type == UV_POLL) {
    poll_ctx_t *p = (poll_ctx_t *)h;
    f = p->f;
    free(p);
  } else {
    f = h->data;
  }
  f->open_handles--;
  maybe_free(f);
}

static void poll_close(poll_ctx_t *p) {
  sw_fetcher_t *f = p->f;
  if (p->prev) p->prev->next = p->next;
  else f->polls = p->next;
  if (p->next) p->next->prev = p->prev;
  uv_poll_stop(&p->poll);
  uv_close((uv_handle_t *)&p->poll, on_handle_closed);
}

static void unlink_req(sw_fetch_t *r) {
  if (r->prev) r->prev->next = r->next;
  else r->f->reqs = r->next;
  if (r->next) r->next->prev = r->prev;
}

static void req_free(sw_fetch_t *r) {
  curl_multi_remove_handle(r->f->multi, r->easy);
  curl_easy_cleanup(r->easy);
  unlink_req(r);
  free(r->body);
  free(r);
}

/* Runs the callbacks of finished transfers. */
static void check_done(sw_fetcher_t *f) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(f->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    sw_fetch_t *r = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    CURLcode rc = m->data.result;
    sw_fetch_result_t res = {.max_age_s = r->max_age_s};
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
    char why[CURL_ERROR_SIZE + 64];
    if (r->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
      snprintf(why, sizeof why, "response larger than %zu bytes", r->max);
      res.error = why;
    } else if (rc != CURLE_OK) {
      snprintf(why, sizeof why, "%s", r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
      res.error = why;
    } else if (res.status != 200) {
      snprintf(why, sizeof why, "HTTP status %ld", res.status);
      res.error = why;
    } else {
      res.ok = true;
      res.body = r->body ? r->body : "";
      res.len = r->len;
    }
    sw_fetch_cb cb = r->cb;
    void *ud = r->ud;
    /* Free first: the callback may start new fetches or close the fetcher. */
    char *body = r->body;
    r->body = NULL;
    req_free(r);
    cb(ud, &res);
    free(body);
  }
}

static void on_poll(uv_poll_t *h, int status, int events) {
  poll_ctx_t *p = h->data;
  sw_fetcher_t *f = p->f;
  int flags = 0, running;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action(f->multi, p->fd, flags, &running);
  check_done(f);
}

static void on_timer(uv_timer_t *t) {
  sw_fetcher_t *f = t->data;
  int running;
  curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(f);
}

static int socket_cb(CURL *e, curl_socket_t s, int action, void *userp, void *socketp) {
  sw_fetcher_t *f = userp;
  poll_ctx_t *p = socketp;
  if (action == CURL_POLL_REMOVE) {
    if (p) {
      poll_close(p);
      curl_multi_assign(f->multi, s, NULL);
    }
    return 0;
  }
  if (!p) {
    if (f->closing) return -1;
    p = calloc(1, sizeof *p);
    if (!p || uv_poll_init_socket(f->loop, &p->poll, s)) {
      free(p);
      return -1;
    }
    p->fd = s;
    p->f = f;
    p->poll.data = p;
    p->next = f->polls;
    if (f->polls) f->polls->prev = p;
    f->polls = p;
    f->open_handles++;
    curl_multi_assign(f->multi, s, p);
  }
  int ev = (action & CURL_POLL_IN ? UV_READABLE : 0) | (action & CURL_POLL_OUT ? UV_WRITABLE : 0);
  uv_poll_start(&p->poll, ev, on_poll);
  return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp) {
  sw_fetcher_t *f = userp;
  if (f->closing) return 0;
  if (timeout_ms < 0) uv_timer_stop(&f->timer);
  else uv_timer_start(&f->timer, on_timer, (uint64_t)timeout_ms, 0);
  return 0;
}

sw_fetcher_t *fetcher_new(uv_loop_t *loop) {
  static bool inited;
  if (!inited) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
    inited = true;
  }
  sw_fetcher_t *f = calloc(1, sizeof *f);
  if (!f || !(f->multi = curl_multi_init())) {
    free(f);
    return NULL;
  }
  f->loop = loop;
  uv_timer_init(loop, &f->timer);
  f->timer.data = f;
  f->open_handles = 1;
  curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
  curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
  return f;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  sw_fetch_t *r = ud;
  size_t n = size * nmemb;
  if (n > r->max - r->len) {
    r->too_big = true;
    return 0; /* aborts the transfer */
  }
  if (r->len + n > r->cap) {
    size_t cap = r->cap ? r->cap : 4096;
    while (cap < r->len + n) cap *= 2;
    if (cap > r->max) cap = r->max;
    char *b = realloc(r->body, cap + 1);
    if (!b) return 0;
    r->body = b;
    r->cap = cap;
  }
  memcpy(r->body + r->len, data, n);
  r->len += n;
  r->body[r->len] = '\0';
  return n;
}

/* Reads Cache-Control of the final response (a new status line starts over). */
static size_t on_header(char *data, size_t size, size_t nmemb, void *ud) {
  sw_fetch_t *r = ud;
  size_t n = size * nmemb;
  if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) r->max_age_s = -1;
  if (n > 14 && n < MAX_HEADER_LINE && strncasecmp(data, "cache-control:", 14) == 0) {
    char line[MAX_HEADER_LINE];
    memcpy(line, data + 14, n - 14);
    line[n - 14] = '\0';
    for (char *p = line; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    if (strstr(line, "no-store") || strstr(line, "no-cache")) {
      r->max_age_s = 0;
    } else {
      char *m = strstr(line, "max-age=");
      if (m && (m == line || m[-1] == ' ' || m[-1] == ',')) {
        char *end;
        long long v = strtoll(m + 8, &end, 10);
        if (end != m + 8 && v >= 0) r->max_age_s = v;
      }
    }
  }
  return n;
}

sw_fetch_t *fetch_start(sw_fetcher_t *f, const char *url, const sw_fetch_opts_t *o, sw_fetch_cb cb, void *ud) {
  if (f->closing) return NULL;
  sw_fetch_t *r = calloc(1, sizeof *r);
  if (!r || !(r->easy = curl_easy_init())) {
    free(r);
    return NULL;
  }
  r->f = f;
  r->cb = cb;
  r->ud = ud;
  r->max = o->max_bytes;
  r->max_age_s = -1;
  CURL *e = r->easy;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, o->allow_http ? "https,http" : "https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  /* A JWK Set is fetched every few minutes at most: no idle connections. */
  curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->timeout_ms < CONNECT_TIMEOUT_MS ? (long)o->timeout_ms : CONNECT_TIMEOUT_MS);
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_bytes);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "switchboard/" SW_VERSION);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
  if (o->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
  /* Loopback URLs never go through a proxy from the environment. */
  if (o->allow_http) curl_easy_setopt(e, CURLOPT_NOPROXY, "127.0.0.1,localhost,::1");
  r->next = f->reqs;
  if (f->reqs) f->reqs->prev = r;
  f->reqs = r;
  if (curl_multi_add_handle(f->multi, e) != CURLM_OK) {
    req_free(r);
    return NULL;
  }
  return r;
}

void fetch_cancel(sw_fetch_t *r) {
  if (r) req_free(r);
}

void fetcher_close(sw_fetcher_t *f) {
  if (!f || f->closing) return;
  f->closing = true;
  while (f->reqs) req_free(f->reqs); /* removing a handle may close its sockets (socket_cb REMOVE) */
  curl_multi_cleanup(f->multi);
  f->multi = NULL;
  while (f->polls) poll_close(f->polls);
  uv_timer_stop(&f->timer);
  uv_close((uv_handle_t *)&f->timer, on_handle_closed);
}
