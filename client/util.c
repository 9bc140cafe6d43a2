/* util.c: small helpers shared by the client's files. */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* ---- random bytes ----
 * RAND_bytes costs thousands of instructions a call, whatever the size
 * (OpenSSL's provider lookup and locking), and a connect asked for it three
 * times (message-id prefix, WebSocket key, mask pool): 21k instructions per
 * connect in `bench connect`, callgrind. Small requests are served from a
 * per-thread pool filled 4 KiB at a time. A forked child must not hand out
 * the bytes its parent also has: pthread_atfork empties the forking
 * thread's pool in the child (the only thread there). */
#define RND_POOL 4096

typedef struct rnd_pool {
  size_t off; /* bytes used; RND_POOL: empty */
  uint8_t b[RND_POOL];
} rnd_pool_t;

static pthread_once_t rnd_once = PTHREAD_ONCE_INIT;
static pthread_key_t rnd_key;
static bool rnd_key_ok;

static void rnd_free(void *p) {
  OPENSSL_cleanse(p, sizeof(rnd_pool_t));
  free(p);
}

static void rnd_after_fork(void) {
  rnd_pool_t *r = rnd_key_ok ? pthread_getspecific(rnd_key) : NULL;
  if (r) {
    OPENSSL_cleanse(r->b, sizeof r->b);
    r->off = RND_POOL;
  }
}

static void rnd_init(void) {
  rnd_key_ok = pthread_key_create(&rnd_key, rnd_free) == 0 && pthread_atfork(NULL, NULL, rnd_after_fork) == 0;
}

int swc_random(void *p, size_t n) {
  pthread_once(&rnd_once, rnd_init);
  rnd_pool_t *r = rnd_key_ok ? pthread_getspecific(rnd_key) : NULL;
  if (!r && rnd_key_ok && n <= RND_POOL / 8 && (r = malloc(sizeof *r))) {
    r->off = RND_POOL;
    if (pthread_setspecific(rnd_key, r)) {
      free(r);
      r = NULL;
    }
  }
  if (!r || n > RND_POOL / 8) return RAND_bytes(p, (int)n) == 1 ? 0 : -1;
  if (RND_POOL - r->off < n) {
    if (RAND_bytes(r->b, RND_POOL) != 1) return -1;
    r->off = 0;
  }
  memcpy(p, r->b + r->off, n);
  OPENSSL_cleanse(r->b + r->off, n); /* handed out once */
  r->off += n;
  return 0;
}

char *swc_strdup(const char *s) {
  return s ? strdup(s) : NULL;
}

int64_t swc_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int swc_url_encode(sw_buf_t *out, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  /* Room for the worst case at once, then plain stores: a byte at a time
   * through buf_append_byte (and buf_printf per escape) was 7k
   * instructions for a connect's token (callgrind, bench connect). */
  size_t n = strlen(s);
  if (n == 0) return 0; /* out->data may be NULL */
  if (n > (SIZE_MAX - out->len) / 3 || buf_reserve(out, 3 * n)) return -ENOMEM;
  uint8_t *w = out->data + out->len;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    unsigned char ch = *p;
    bool keep = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                ch == '_' || ch == '.' || ch == '~';
    if (keep) {
      *w++ = ch;
    } else {
      *w++ = '%';
      *w++ = (uint8_t)hex[ch >> 4];
      *w++ = (uint8_t)hex[ch & 15];
    }
  }
  out->len = (size_t)(w - out->data);
  return 0;
}

/* ---- errors and logging ---- */

int swc_status_for(int code) {
  int s = code / 100;
  return s >= 100 && s < 600 ? s : 500;
}

void swc_set_error(sw_errinfo_t *e, int code, int status, const char *fmt, ...) {
  if (!e) return;
  e->code = code;
  e->status_code = status ? status : swc_status_for(code);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof e->message, fmt, ap);
  va_end(ap);
}

void swc_err_from(sw_errinfo_t *dst, const sw_error_t *src) {
  dst->code = src->code;
  dst->status_code = src->status ? src->status : swc_status_for(src->code);
  snprintf(dst->message, sizeof dst->message, "%s", src->message);
}

bool swc_is_token_error(const sw_errinfo_t *e) {
  return e && e->code >= 40140 && e->code < 40150;
}

void swc_log(sw_client_t *c, int level, const char *fmt, ...) {
  if (!c->log_cb || level > c->log_level) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  c->log_cb(level, msg, c->log_ud);
}

SW_API const char *sw_strerror(int rc) {
  switch (rc) {
  case SW_OK: return "ok";
  case SW_EINVAL: return "invalid argument";
  case SW_ENOMEM: return "out of memory";
  case SW_ESTATE: return "not possible in the current state";
  case SW_EIO: return "system error";
  default: return "unknown error";
  }
}

SW_API const char *sw_version(void) {
  return SW_CLIENT_VERSION;
}

/* ---- deferred callbacks ---- */

swc_call_t *swc_call_new(void (*fn)(sw_client_t *, swc_call_t *)) {
  swc_call_t *call = calloc(1, sizeof *call);
  if (call) call->fn = fn;
  return call;
}

static void call_free(swc_call_t *call) {
  if (call->ch) swc_channel_unref(call->ch);
  free(call);
}

static void on_defer_timer(uv_timer_t *t) {
  swc_defer_run_all(t->data);
}

int swc_defer(sw_client_t *c, swc_call_t *call) {
  if (!call) return SW_ENOMEM;
  if (c->freeing) {
    if (call->drop) call->drop(call);
    call_free(call);
    return 0;
  }
  call->next = NULL;
  if (c->defer_tail) c->defer_tail->next = call;
  else c->defer_head = call;
  c->defer_tail = call;
  if (!uv_is_active((uv_handle_t *)&c->t_defer)) uv_timer_start(&c->t_defer, on_defer_timer, 0, 0);
  return 0;
}

void swc_defer_run_all(sw_client_t *c) {
  /* Only the calls queued so far: new ones wait for the next iteration. */
  swc_call_t *batch = c->defer_head;
  c->defer_head = c->defer_tail = NULL;
  while (batch) {
    swc_call_t *call = batch;
    batch = call->next;
    if (!c->freeing) call->fn(c, call);
    if (call->drop) call->drop(call);
    call_free(call);
  }
}

void swc_defer_drop_all(sw_client_t *c) {
  swc_call_t *call = c->defer_head;
  c->defer_head = c->defer_tail = NULL;
  while (call) {
    swc_call_t *next = call->next;
    if (call->drop) call->drop(call);
    call_free(call);
    call = next;
  }
}

/* ---- messages ---- */

void swc_message_view(const sw_msg_t *m, const sw_pmsg_t *pm, size_t index, sw_message_t *out, char **extras,
                      char *idbuf, size_t idcap) {
  memset(out, 0, sizeof *out);
  out->id = m->id;
  /* TM2a, TM2c, TM2f: fill id, connectionId and timestamp from the
   * ProtocolMessage when the message has none. */
  if (!out->id && pm && pm->id && strlen(pm->id) <= SWC_MAX_SYNTH_ID) {
    int n = snprintf(idbuf, idcap, "%s:%zu", pm->id, index);
    if (n >= 0 && (size_t)n < idcap) out->id = idbuf; /* never a truncated id */
  }
  out->name = m->name;
  out->data_type = m->data.kind == SW_DATA_STRING ? SW_PAYLOAD_STRING
                   : m->data.kind == SW_DATA_BINARY ? SW_PAYLOAD_BINARY
                                                    : SW_PAYLOAD_NONE;
  out->data = m->data.kind == SW_DATA_NONE ? NULL : m->data.bytes;
  out->data_len = m->data.kind == SW_DATA_NONE ? 0 : m->data.len;
  out->encoding = m->encoding;
  out->client_id = m->client_id;
  out->connection_id = m->connection_id ? m->connection_id : pm ? pm->connection_id : NULL;
  out->timestamp = m->timestamp ? m->timestamp : pm ? pm->timestamp : 0;
  out->serial = m->serial;
  *extras = NULL;
  out->action = m->action;
  if (!m->extras && !m->version) return;
  /* extras and version share one allocation, "<extras>\0<version>\0",
   * written by the codec's JSON writer as rx.c writes them for realtime
   * messages (compact, the same escapes and numbers). */
  sw_buf_t b = {0};
  int rc = 0;
  if (m->extras) rc = codec_encode_value(SW_FMT_JSON, m->extras, &b) || buf_append_byte(&b, 0);
  size_t ver_at = b.len;
  if (!rc && m->version) rc = codec_encode_value(SW_FMT_JSON, m->version, &b) || buf_append_byte(&b, 0);
  if (rc) {
    buf_free(&b);
    return;
  }
  *extras = (char *)buf_steal(&b, NULL);
  out->extras = m->extras ? *extras : NULL;
  out->version = m->version ? *extras + ver_at : NULL;
}

int swc_message_import(const sw_message_t *in, sw_msg_t *m) {
  memset(m, 0, sizeof *m);
  m->action = -1;
  m->id = swc_strdup(in->id);
  m->name = swc_strdup(in->name);
  m->encoding = swc_strdup(in->encoding);
  m->client_id = swc_strdup(in->client_id);
  m->serial = swc_strdup(in->serial);
  if ((in->id && !m->id) || (in->name && !m->name) || (in->encoding && !m->encoding) ||
      (in->client_id && !m->client_id) || (in->serial && !m->serial))
    goto oom;
  if (in->data_type == SW_PAYLOAD_STRING || in->data_type == SW_PAYLOAD_BINARY) {
    if (!in->data && in->data_len) goto inval;
    size_t n = in->data_type == SW_PAYLOAD_STRING && in->data_len == 0 && in->data ? strlen(in->data) : in->data_len;
    m->data.bytes = malloc(n + 1);
    if (!m->data.bytes) goto oom;
    if (n) memcpy(m->data.bytes, in->data, n);
    m->data.bytes[n] = 0;
    m->data.len = n;
    m->data.kind = in->data_type == SW_PAYLOAD_STRING ? SW_DATA_STRING : SW_DATA_BINARY;
  } else if (in->data_type != SW_PAYLOAD_NONE) {
    goto inval;
  }
  if (in->extras) {
    json_error_t je;
    m->extras = json_loads(in->extras, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(m->extras)) goto inval;
  }
  return 0;
inval:
  msg_clear(m);
  return SW_EINVAL;
oom:
  msg_clear(m);
  return SW_ENOMEM;
}
