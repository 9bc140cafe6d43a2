/* bench_peer.c: links to the peers, as small raw protocol drivers on the
 * worker's libuv loop:
 *
 *   Redis      RESP2 over TCP: AUTH, SUBSCRIBE, PUBLISH (replies checked:
 *              every PUBLISH must reach every subscriber).
 *   mosquitto  MQTT 3.1.1 over WebSocket (RFC 6455 client, masked frames):
 *              CONNECT with username/password, SUBSCRIBE at QoS 0, PUBLISH
 *              QoS 0.
 *   raw Ably   (connect --raw only) the WebSocket upgrade with a JWT and the
 *              CONNECTED ProtocolMessage, nothing else: the connect storm
 *              without the client library's own per-connection cost, to
 *              tell the server's capacity from libswitchboard's.
 *
 * Why not hiredis and libmosquitto: Debian 12's libmosquitto (2.0.11) has no
 * WebSocket client transport, so MQTT over WebSocket needs a driver of our
 * own anyway; and with both peers on the same loop, the same read buffer
 * and the same write path, the client-side cost is alike for both and no
 * heavier than libswitchboard's, so the ratios compare servers rather than
 * client libraries. Nor does the `switchboard` binary grow two link-time
 * dependencies for a benchmark. Server frames are parsed with the server's
 * own src/net/ws_frame.c. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/ws_frame.h"
#include "proto/codec.h"
#include "tools/bench.h"

enum { P_CONNECTING = 0, P_HANDSHAKE, P_AUTH, P_SUBSCRIBING, P_READY };

typedef struct pconn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  struct plink *l;
  int idx; /* local subscriber index; -1: the publisher */
  int stage;
  bool open;
  char chan[64];
  const char *token; /* raw Ably: the JWT (borrowed from the bench) */
  uint8_t *in; /* unparsed socket bytes */
  size_t in_len, in_cap;
  uint8_t *mq; /* mqtt: unparsed MQTT bytes from WebSocket payloads */
  size_t mq_len, mq_cap;
} pconn_t;

enum { K_REDIS = 0, K_MQTT, K_ABLY };

typedef struct plink {
  bench_link_t base;
  int kind;
  bool mqtt; /* WebSocket framing: MQTT and raw Ably */
  bool closing;
  int open_handles;
  pconn_t *subs;
  pconn_t pub;
  uint8_t *out; /* scratch for building frames */
  size_t out_cap;
  uint64_t rng; /* WebSocket masks */
} plink_t;

static bench_worker_t *W(const pconn_t *c) { return c->l->base.w; }

static void pfail(pconn_t *c, const char *what) {
  if (c->l->closing) return;
  static const char *const names[] = {"redis", "mosquitto", "raw Ably"};
  bench_fail(W(c), "%s %s %d: %s", names[c->l->kind], c->idx < 0 ? "publisher" : "connection", c->idx, what);
}

static int grow(uint8_t **p, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap : 4096;
  while (n < need) n *= 2;
  uint8_t *q = realloc(*p, n);
  if (!q) return -1;
  *p = q;
  *cap = n;
  return 0;
}

/* ---- writing ---------------------------------------------------------------- */

typedef struct pwrite {
  uv_write_t req;
  char data[];
} pwrite_t;

static void on_written(uv_write_t *req, int status) {
  (void)status;
  free(req);
}

/* Writes at once if the socket takes it (the common case), queues the rest:
 * uv_try_write refuses while anything is queued, so order holds. */
static int psend(pconn_t *c, const void *p, size_t n) {
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
  int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (w == (int)n) return 0;
  if (w < 0 && w != UV_EAGAIN) return w;
  size_t done = w > 0 ? (size_t)w : 0;
  pwrite_t *q = malloc(sizeof *q + n - done);
  if (!q) return UV_ENOMEM;
  memcpy(q->data, (const char *)p + done, n - done);
  b = uv_buf_init(q->data, (unsigned)(n - done));
  int rc = uv_write(&q->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
  if (rc) free(q);
  return rc;
}

/* ---- Redis (RESP2) ---------------------------------------------------------- */

typedef struct resp {
  char type; /* + - : $ or * */
  int64_t num;
  const uint8_t *s; /* simple/bulk string */
  size_t len;
  int n_el; /* arrays: elements kept (at most 3) */
  const uint8_t *el[3];
  size_t el_len[3];
} resp_t;

static long resp_line_end(const uint8_t *p, size_t n, size_t from) {
  for (size_t i = from; i + 1 < n; i++)
    if (p[i] == '\r' && p[i + 1] == '\n') return (long)i;
  return -1;
}

static int64_t resp_int(const uint8_t *p, size_t n) {
  int64_t v = 0;
  bool neg = n && p[0] == '-';
  for (size_t i = neg ? 1 : 0; i < n; i++) v = v * 10 + (p[i] - '0');
  return neg ? -v : v;
}

/* One scalar at p: bytes consumed, 0 if incomplete, -1 if malformed. */
static long resp_scalar(const uint8_t *p, size_t n, char *type, const uint8_t **s, size_t *len, int64_t *num) {
  if (n < 1) return 0;
  long e = resp_line_end(p, n, 1);
  if (e < 0) return 0;
  *type = (char)p[0];
  switch (p[0]) {
  case '+':
  case '-':
    *s = p + 1;
    *len = (size_t)e - 1;
    return e + 2;
  case ':':
    *num = resp_int(p + 1, (size_t)e - 1);
    return e + 2;
  case '$': {
    int64_t l = resp_int(p + 1, (size_t)e - 1);
    if (l < 0) { /* nil */
      *s = NULL;
      *len = 0;
      return e + 2;
    }
    if ((size_t)e + 2 + (size_t)l + 2 > n) return 0;
    *s = p + e + 2;
    *len = (size_t)l;
    return e + 2 + (long)l + 2;
  }
  default: return -1;
  }
}

static long resp_next(const uint8_t *p, size_t n, resp_t *v) {
  memset(v, 0, sizeof *v);
  if (n < 1) return 0;
  if (p[0] != '*') return resp_scalar(p, n, &v->type, &v->s, &v->len, &v->num);
  long e = resp_line_end(p, n, 1);
  if (e < 0) return 0;
  v->type = '*';
  int64_t cnt = resp_int(p + 1, (size_t)e - 1);
  long off = e + 2;
  for (int64_t k = 0; k < cnt; k++) {
    char t;
    const uint8_t *s = NULL;
    size_t len = 0;
    int64_t num;
    long used = resp_scalar(p + off, n - (size_t)off, &t, &s, &len, &num);
    if (used <= 0) return used;
    if (k < 3) {
      v->el[k] = s;
      v->el_len[k] = len;
      v->n_el = (int)k + 1;
    }
    off += used;
  }
  return off;
}

static bool resp_is(const uint8_t *s, size_t len, const char *word) {
  return s && len == strlen(word) && memcmp(s, word, len) == 0;
}

static int redis_cmd(pconn_t *c, int argc, const char **argv, const size_t *lens) {
  plink_t *l = c->l;
  size_t need = 32;
  for (int i = 0; i < argc; i++) need += lens[i] + 32;
  if (grow(&l->out, &l->out_cap, need)) return UV_ENOMEM;
  size_t o = (size_t)snprintf((char *)l->out, l->out_cap, "*%d\r\n", argc);
  for (int i = 0; i < argc; i++) {
    o += (size_t)snprintf((char *)l->out + o, l->out_cap - o, "$%zu\r\n", lens[i]);
    memcpy(l->out + o, argv[i], lens[i]);
    o += lens[i];
    l->out[o++] = '\r';
    l->out[o++] = '\n';
  }
  return psend(c, l->out, o);
}

static void redis_start(pconn_t *c) {
  const bench_opts_t *o = &W(c)->b->o;
  int rc = 0;
  c->stage = P_SUBSCRIBING;
  if (o->password) {
    const char *a[] = {"AUTH", o->password};
    size_t al[] = {4, strlen(o->password)};
    rc = redis_cmd(c, 2, a, al);
    c->stage = P_AUTH;
  }
  /* Pipelined: AUTH and SUBSCRIBE go in one round trip. */
  if (!rc && c->idx >= 0) {
    const char *a[] = {"SUBSCRIBE", c->chan};
    size_t al[] = {9, strlen(c->chan)};
    rc = redis_cmd(c, 2, a, al);
  }
  if (rc) pfail(c, "write failed");
  else if (c->stage == P_SUBSCRIBING && c->idx < 0) {
    c->stage = P_READY;
    c->l->base.ev->pub_ready(&c->l->base);
  }
}

static void redis_value(pconn_t *c, const resp_t *v) {
  plink_t *l = c->l;
  if (v->type == '-') {
    pfail(c, "Redis error reply");
    return;
  }
  if (c->stage == P_AUTH) {
    if (v->type != '+') { pfail(c, "AUTH refused"); return; }
    c->stage = P_SUBSCRIBING;
    if (c->idx < 0) {
      c->stage = P_READY;
      l->base.ev->pub_ready(&l->base);
    }
    return;
  }
  if (c->idx < 0) {
    /* PUBLISH answers with how many subscribers got the message. */
    if (v->type == ':' && v->num != W(c)->b->o.subs) {
      char m[96];
      snprintf(m, sizeof m, "PUBLISH reached %lld of %d subscribers", (long long)v->num, W(c)->b->o.subs);
      pfail(c, m);
    }
    return;
  }
  if (v->type != '*' || v->n_el < 3) return;
  if (resp_is(v->el[0], v->el_len[0], "message")) {
    l->base.ev->message(&l->base, c->idx, v->el[2], v->el_len[2]);
  } else if (resp_is(v->el[0], v->el_len[0], "subscribe") && c->stage == P_SUBSCRIBING) {
    c->stage = P_READY;
    l->base.ev->sub_ready(&l->base, c->idx);
  }
}

/* Parses what it can; returns bytes consumed or -1. */
static long redis_parse(pconn_t *c, const uint8_t *p, size_t n) {
  size_t off = 0;
  while (off < n && !c->l->closing) {
    resp_t v;
    long used = resp_next(p + off, n - off, &v);
    if (used < 0) return -1;
    if (used == 0) break;
    redis_value(c, &v);
    off += (size_t)used;
  }
  return (long)off;
}

/* ---- MQTT 3.1.1 over WebSocket -------------------------------------------- */

static size_t mqtt_varint(uint8_t *out, size_t v) {
  size_t i = 0;
  do {
    uint8_t d = v % 128;
    v /= 128;
    out[i++] = (uint8_t)(d | (v ? 0x80 : 0));
  } while (v);
  return i;
}

static size_t mqtt_str(uint8_t *out, const char *s, size_t n) {
  out[0] = (uint8_t)(n >> 8);
  out[1] = (uint8_t)n;
  memcpy(out + 2, s, n);
  return n + 2;
}

/* Wraps p[0..n) into one masked binary frame appended at l->out + *at. */
static int ws_wrap(plink_t *l, size_t *at, const uint8_t *p, size_t n) {
  if (grow(&l->out, &l->out_cap, *at + n + SW_WS_MAX_HEADER)) return -1;
  uint8_t *o = l->out + *at;
  size_t h = 0;
  o[h++] = 0x82; /* FIN, binary */
  if (n < 126) o[h++] = (uint8_t)(0x80 | n);
  else if (n < 65536) {
    o[h++] = 0x80 | 126;
    o[h++] = (uint8_t)(n >> 8);
    o[h++] = (uint8_t)n;
  } else {
    o[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--) o[h++] = (uint8_t)((uint64_t)n >> (8 * i));
  }
  /* xorshift: masks only need to vary, not to be secret, on loopback. */
  l->rng ^= l->rng << 13, l->rng ^= l->rng >> 7, l->rng ^= l->rng << 17;
  uint8_t mask[4] = {(uint8_t)l->rng, (uint8_t)(l->rng >> 8), (uint8_t)(l->rng >> 16), (uint8_t)(l->rng >> 24)};
  memcpy(o + h, mask, 4);
  h += 4;
  for (size_t i = 0; i < n; i++) o[h + i] = p[i] ^ mask[i & 3];
  *at += h + n;
  return 0;
}

/* Builds one MQTT packet (type byte, body) in a stack buffer and frames it. */
static int mqtt_packet(plink_t *l, size_t *at, uint8_t type, const uint8_t *body, size_t n) {
  uint8_t hdr[5];
  hdr[0] = type;
  size_t h = 1 + mqtt_varint(hdr + 1, n);
  uint8_t *pk = malloc(h + n);
  if (!pk) return -1;
  memcpy(pk, hdr, h);
  memcpy(pk + h, body, n);
  int rc = ws_wrap(l, at, pk, h + n);
  free(pk);
  return rc;
}

static void mqtt_start(pconn_t *c) {
  plink_t *l = c->l;
  const bench_opts_t *o = &W(c)->b->o;
  uint8_t body[512];
  size_t n = 0, at = 0;
  char cid[48];
  snprintf(cid, sizeof cid, "b%d-%d-%d", (int)getpid(), W(c)->id, c->idx);
  n += mqtt_str(body + n, "MQTT", 4);
  body[n++] = 4; /* protocol level 3.1.1 */
  /* clean session; keep-alive 0 (off): a run is shorter than any sensible one */
  uint8_t flags = 0x02 | (o->user ? 0x80 : 0) | (o->user && o->password ? 0x40 : 0);
  body[n++] = flags;
  body[n++] = 0;
  body[n++] = 0;
  n += mqtt_str(body + n, cid, strlen(cid));
  if (o->user) n += mqtt_str(body + n, o->user, strlen(o->user) > 200 ? 200 : strlen(o->user));
  if (o->user && o->password) n += mqtt_str(body + n, o->password, strlen(o->password) > 200 ? 200 : strlen(o->password));
  int rc = mqtt_packet(l, &at, 0x10, body, n);
  if (!rc && c->idx >= 0) {
    /* Pipelined behind CONNECT, as Redis's SUBSCRIBE is behind AUTH. */
    size_t m = 0;
    body[m++] = 0;
    body[m++] = 1; /* packet id */
    m += mqtt_str(body + m, c->chan, strlen(c->chan));
    body[m++] = 0; /* QoS 0 */
    rc = mqtt_packet(l, &at, 0x82, body, m);
  }
  c->stage = P_AUTH;
  if (rc || psend(c, l->out, at)) pfail(c, "write failed");
}

static void mqtt_packet_in(pconn_t *c, uint8_t type, const uint8_t *p, size_t n) {
  plink_t *l = c->l;
  switch (type >> 4) {
  case 2: /* CONNACK */
    if (n < 2 || p[1] != 0) { pfail(c, "CONNECT refused"); return; }
    c->stage = P_SUBSCRIBING;
    if (c->idx < 0) {
      c->stage = P_READY;
      l->base.ev->pub_ready(&l->base);
    }
    return;
  case 9: /* SUBACK */
    if (n < 3 || p[2] == 0x80) { pfail(c, "SUBSCRIBE refused"); return; }
    if (c->stage == P_SUBSCRIBING) {
      c->stage = P_READY;
      l->base.ev->sub_ready(&l->base, c->idx);
    }
    return;
  case 3: { /* PUBLISH */
    if (n < 2) { pfail(c, "short PUBLISH"); return; }
    size_t tl = (size_t)p[0] << 8 | p[1];
    size_t off = 2 + tl + (((type >> 1) & 3) ? 2 : 0);
    if (off > n) { pfail(c, "short PUBLISH"); return; }
    if (c->idx >= 0) l->base.ev->message(&l->base, c->idx, p + off, n - off);
    return;
  }
  default: return; /* PINGRESP and the like */
  }
}

/* MQTT packets from the WebSocket payload stream; returns bytes consumed. */
static long mqtt_parse(pconn_t *c, const uint8_t *p, size_t n) {
  size_t off = 0;
  while (off + 2 <= n && !c->l->closing) {
    size_t len = 0, mul = 1, i = off + 1;
    for (;; i++) {
      if (i >= n) return (long)off;
      if (i - off > 4) return -1;
      len += (size_t)(p[i] & 127) * mul;
      mul *= 128;
      if (!(p[i] & 128)) break;
    }
    size_t start = i + 1;
    if (start + len > n) break;
    mqtt_packet_in(c, p[off], p + start, len);
    off = start + len;
  }
  return (long)off;
}

static int mqtt_feed(pconn_t *c, const uint8_t *p, size_t n) {
  if (c->mq_len == 0) {
    /* The usual case: whole packets in one frame, parsed in place. */
    long used = mqtt_parse(c, p, n);
    if (used < 0) return -1;
    if ((size_t)used < n) {
      if (grow(&c->mq, &c->mq_cap, n - (size_t)used)) return -1;
      memcpy(c->mq, p + used, n - (size_t)used);
      c->mq_len = n - (size_t)used;
    }
    return 0;
  }
  if (grow(&c->mq, &c->mq_cap, c->mq_len + n)) return -1;
  memcpy(c->mq + c->mq_len, p, n);
  c->mq_len += n;
  long used = mqtt_parse(c, c->mq, c->mq_len);
  if (used < 0) return -1;
  memmove(c->mq, c->mq + used, c->mq_len - (size_t)used);
  c->mq_len -= (size_t)used;
  return 0;
}

/* Raw Ably: the first ProtocolMessage must be CONNECTED; what follows
 * (heartbeats) is read and dropped. Server frames are unfragmented. */
static int ably_frame(pconn_t *c, const uint8_t *p, size_t n) {
  if (c->stage == P_READY) return 0;
  sw_pmsg_t m;
  sw_error_t err = {0};
  memset(&m, 0, sizeof m);
  if (codec_decode_pmsg(SW_FMT_MSGPACK, p, n, &m, &err)) {
    pfail(c, "undecodable first message");
    return -1;
  }
  int action = m.action;
  pmsg_free(&m);
  if (action != SW_ACTION_CONNECTED) {
    pfail(c, "the first message is not CONNECTED");
    return -1;
  }
  c->stage = P_READY;
  c->l->base.ev->sub_ready(&c->l->base, c->idx);
  return 0;
}

/* WebSocket frames from the server (unmasked); returns bytes consumed. */
static long ws_parse(pconn_t *c, const uint8_t *p, size_t n) {
  size_t off = 0;
  if (c->stage == P_HANDSHAKE) {
    const uint8_t *end = memmem(p, n, "\r\n\r\n", 4);
    if (!end) return n > 8192 ? -1 : 0;
    if (n < 12 || memcmp(p, "HTTP/1.1 101", 12) != 0) {
      pfail(c, "WebSocket upgrade refused");
      return -1;
    }
    off = (size_t)(end - p) + 4;
    c->stage = P_AUTH;
    if (c->l->kind == K_MQTT) mqtt_start(c);
  }
  while (off < n && !c->l->closing) {
    sw_ws_frame_t f;
    int h = ws_frame_parse(p + off, n - off, false, 1 << 24, &f);
    if (h < 0) return -1;
    if (h == 0 || off + (size_t)h + f.payload_len > n) break;
    const uint8_t *pl = p + off + h;
    size_t pn = (size_t)f.payload_len;
    switch (f.opcode) {
    case SW_WS_OP_BINARY:
    case SW_WS_OP_TEXT:
    case SW_WS_OP_CONT:
      if (c->l->kind == K_ABLY) {
        if (ably_frame(c, pl, pn)) return -1;
      } else if (mqtt_feed(c, pl, pn))
        return -1;
      break;
    case SW_WS_OP_PING: {
      size_t at = 0;
      if (ws_wrap(c->l, &at, pl, pn)) return -1;
      c->l->out[0] = 0x8A; /* the same frame, as a PONG */
      if (psend(c, c->l->out, at)) return -1;
      break;
    }
    case SW_WS_OP_CLOSE: pfail(c, "WebSocket closed by the server"); return -1;
    default: break;
    }
    off += (size_t)h + pn;
  }
  return (long)off;
}

/* ---- connections ------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  pconn_t *c = h->data;
  (void)hint;
  /* One buffer per worker: every read is parsed before the next. */
  *buf = uv_buf_init(W(c)->rbuf, (unsigned)W(c)->rbuf_len);
}

static long pparse(pconn_t *c, const uint8_t *p, size_t n) {
  return c->l->mqtt ? ws_parse(c, p, n) : redis_parse(c, p, n);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  pconn_t *c = s->data;
  if (nread < 0) {
    pfail(c, nread == UV_EOF ? "connection closed by the server" : uv_strerror((int)nread));
    uv_read_stop(s);
    return;
  }
  const uint8_t *p = (const uint8_t *)buf->base;
  size_t n = (size_t)nread;
  if (c->in_len == 0) {
    long used = pparse(c, p, n);
    if (used < 0) goto bad;
    if ((size_t)used < n) {
      if (grow(&c->in, &c->in_cap, n - (size_t)used)) goto bad;
      memcpy(c->in, p + used, n - (size_t)used);
      c->in_len = n - (size_t)used;
    }
    return;
  }
  if (grow(&c->in, &c->in_cap, c->in_len + n)) goto bad;
  memcpy(c->in + c->in_len, p, n);
  c->in_len += n;
  long used = pparse(c, c->in, c->in_len);
  if (used < 0) goto bad;
  memmove(c->in, c->in + used, c->in_len - (size_t)used);
  c->in_len -= (size_t)used;
  return;
bad:
  pfail(c, "protocol error");
  uv_read_stop(s);
}

static void on_connect(uv_connect_t *req, int status) {
  pconn_t *c = req->data;
  if (c->l->closing) return;
  if (status < 0) { pfail(c, uv_strerror(status)); return; }
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (c->l->mqtt) {
    char req_text[8192];
    int n;
    if (c->l->kind == K_ABLY)
      /* What libswitchboard sends, minus the agent: JWTs are base64url and
       * dots, so they need no escaping in a query. */
      n = snprintf(req_text, sizeof req_text,
                   "GET /?v=6&format=msgpack&heartbeats=true&access_token=%s HTTP/1.1\r\nHost: %s:%d\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n",
                   c->token, W(c)->b->o.host, W(c)->b->o.port);
    else
      n = snprintf(req_text, sizeof req_text,
                   "GET /mqtt HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Protocol: mqtt\r\n\r\n",
                   W(c)->b->o.host, W(c)->b->o.port);
    c->stage = P_HANDSHAKE;
    if (n < 0 || (size_t)n >= sizeof req_text || psend(c, req_text, (size_t)n)) pfail(c, "write failed");
  } else {
    redis_start(c);
  }
}

/* A socket bound to 127.0.0.(2 + n % 250) when the server is on loopback.
 * With tens of thousands of connections from one address to one port,
 * connect()'s search for a free ephemeral port (__inet_hash_connect) took
 * 40 % of a storm's client CPU; each source address has its own port space,
 * and IP_BIND_ADDRESS_NO_PORT leaves the port to connect(). -1: use a plain
 * socket. */
static int loopback_socket(const struct sockaddr_in *dst, int n) {
  if ((ntohl(dst->sin_addr.s_addr) >> 24) != 127) return -1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  struct sockaddr_in src = {.sin_family = AF_INET};
  src.sin_addr.s_addr = htonl((127u << 24) | (uint32_t)(2 + n % 250));
  if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) ||
      bind(fd, (const struct sockaddr *)&src, sizeof src)) {
    close(fd);
    return -1;
  }
  return fd;
}

static int popen_conn(plink_t *l, pconn_t *c, int idx, const char *channel) {
  bench_worker_t *w = l->base.w;
  struct sockaddr_in addr;
  c->l = l;
  c->idx = idx;
  snprintf(c->chan, sizeof c->chan, "%s", channel);
  if (uv_ip4_addr(w->b->o.host, w->b->o.port, &addr) || uv_tcp_init(&w->loop, &c->tcp)) return -1;
  c->open = true;
  l->open_handles++;
  int fd = loopback_socket(&addr, idx);
  if (fd >= 0 && uv_tcp_open(&c->tcp, fd)) close(fd);
  c->tcp.data = c;
  c->creq.data = c;
  uv_tcp_nodelay(&c->tcp, 1);
  c->stage = P_CONNECTING;
  return uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&addr, on_connect);
}

static int p_sub_open(bench_link_t *lk, int idx, int conn_idx, const char *channel) {
  plink_t *l = (plink_t *)lk;
  bench_t *b = lk->w->b;
  if (l->kind == K_ABLY) {
    if (!b->n_jwts) return -1;
    l->subs[idx].token = b->jwts[(size_t)conn_idx % b->n_jwts];
  }
  return popen_conn(l, &l->subs[idx], idx, channel);
}

static int p_pub_open(bench_link_t *lk, int conn_idx, const char *channel) {
  plink_t *l = (plink_t *)lk;
  (void)conn_idx;
  return popen_conn(l, &l->pub, -1, channel);
}

static int p_publish(bench_link_t *lk, const void *p, size_t n) {
  plink_t *l = (plink_t *)lk;
  pconn_t *c = &l->pub;
  if (!l->mqtt) {
    const char *a[] = {"PUBLISH", c->chan, p};
    size_t al[] = {7, strlen(c->chan), n};
    return redis_cmd(c, 3, a, al);
  }
  size_t tl = strlen(c->chan), at = 0;
  uint8_t *body = malloc(2 + tl + n);
  if (!body) return -1;
  mqtt_str(body, c->chan, tl);
  memcpy(body + 2 + tl, p, n);
  int rc = mqtt_packet(l, &at, 0x30, body, 2 + tl + n);
  free(body);
  return rc ? rc : psend(c, l->out, at);
}

static void plink_free(plink_t *l) {
  for (int i = 0; i < l->base.n_subs; i++) {
    free(l->subs[i].in);
    free(l->subs[i].mq);
  }
  free(l->pub.in);
  free(l->pub.mq);
  free(l->subs);
  free(l->out);
  free(l);
}

static void on_closed(uv_handle_t *h) {
  pconn_t *c = h->data;
  plink_t *l = c->l;
  if (--l->open_handles == 0) plink_free(l);
}

static void p_close_all(bench_link_t *lk) {
  plink_t *l = (plink_t *)lk;
  l->closing = true;
  int n = l->open_handles;
  for (int i = 0; i < lk->n_subs; i++)
    if (l->subs[i].open) uv_close((uv_handle_t *)&l->subs[i].tcp, on_closed);
  if (l->pub.open) uv_close((uv_handle_t *)&l->pub.tcp, on_closed);
  if (n == 0) plink_free(l);
}

static const bench_link_ops_t p_ops = {
    .sub_open = p_sub_open, .pub_open = p_pub_open, .publish = p_publish, .close_all = p_close_all};

static bench_link_t *plink_new(bench_worker_t *w, int n_subs, int kind) {
  plink_t *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->subs = calloc((size_t)n_subs + 1, sizeof *l->subs);
  if (!l->subs) {
    free(l);
    return NULL;
  }
  l->kind = kind;
  l->mqtt = kind != K_REDIS;
  l->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)getpid() << 16) ^ (uint64_t)w->id;
  l->base.ops = &p_ops;
  l->base.w = w;
  l->base.n_subs = n_subs;
  return &l->base;
}

bench_link_t *bench_link_redis(bench_worker_t *w, int n_subs) { return plink_new(w, n_subs, K_REDIS); }
bench_link_t *bench_link_mqtt(bench_worker_t *w, int n_subs) { return plink_new(w, n_subs, K_MQTT); }
bench_link_t *bench_link_ably_raw(bench_worker_t *w, int n_subs) { return plink_new(w, n_subs, K_ABLY); }
