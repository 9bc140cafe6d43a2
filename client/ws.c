/* ws.c: the client side of RFC 6455 over a transport (ws://, or wss:// when
 * the transport is TLS).
 *
 * Framing reuses the server's pure codec (src/net/ws_frame.c): the parser
 * for server frames, the header writer and the XOR loop. What a client adds
 * is masking (§5.3: every client frame carries a fresh unpredictable mask)
 * and the opening handshake, whose response is parsed with http-parser. */
#include <errno.h>
#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "net/ws_frame.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum { WS_CONNECTING, WS_HANDSHAKE, WS_OPEN, WS_DONE };

struct swc_ws {
  /* What every frame touches first (a connection is cold in the cache when
   * its frame arrives: fewer lines, fewer misses). */
  swc_transport_t *t;
  swc_ws_cbs_t cbs;
  void *ud;
  int state;
  int busy;      /* nesting depth of our own callbacks: free only at 0 */
  bool released; /* the owner let go */
  size_t max_msg;
  sw_buf_t rbuf; /* only the start of a frame still arriving */
  sw_ws_msg_asm_t asm_;
  size_t pool_off;
  uint8_t pool[256]; /* random bytes for masks, refilled in bulk */
  /* the handshake */
  char *request; /* the request, sent on connect */
  char accept[32];
  http_parser hp;
  http_parser_settings hs;
  sw_buf_t hfield, hvalue;
  bool in_value;
  bool accept_ok, upgrade_ok, headers_done;
};

int swc_ws_frame_masked(sw_buf_t *out, uint8_t opcode, const uint8_t *p, size_t n, const uint8_t mask[4]) {
  uint8_t hdr[SW_WS_MAX_HEADER];
  size_t hl = ws_frame_header(hdr, true, opcode, n);
  hdr[1] |= 0x80; /* MASK bit; the mask follows the length */
  memcpy(hdr + hl, mask, 4);
  hl += 4;
  if (buf_reserve(out, hl + n)) return -ENOMEM;
  size_t at = out->len;
  buf_append(out, hdr, hl);
  if (n) buf_append(out, p, n);
  ws_unmask(out->data + at + hl, n, mask, 0);
  return 0;
}

static void ws_free(swc_ws_t *ws) {
  free(ws->request);
  buf_free(&ws->hfield);
  buf_free(&ws->hvalue);
  buf_free(&ws->rbuf);
  ws_msg_asm_free(&ws->asm_);
  OPENSSL_cleanse(ws->pool, sizeof ws->pool);
  free(ws);
}

/* Ends the socket and tells the owner, once. */
static void finish(swc_ws_t *ws, int code) {
  if (ws->state == WS_DONE) return;
  ws->state = WS_DONE;
  if (!ws->released) ws->cbs.on_close(ws->ud, code);
}

static int next_mask(swc_ws_t *ws, uint8_t mask[4]) {
  if (ws->pool_off + 4 > sizeof ws->pool) {
    if (swc_random(ws->pool, sizeof ws->pool)) return -1;
    ws->pool_off = 0;
  }
  memcpy(mask, ws->pool + ws->pool_off, 4);
  ws->pool_off += 4;
  return 0;
}

static int send_frame(swc_ws_t *ws, uint8_t opcode, const uint8_t *p, size_t n) {
  uint8_t mask[4];
  if (next_mask(ws, mask)) return UV_EIO;
  sw_buf_t b = {0};
  if (swc_ws_frame_masked(&b, opcode, p, n, mask)) return UV_ENOMEM;
  size_t len;
  uint8_t *data = buf_steal(&b, &len);
  return ws->t->ops->write(ws->t, data, 0, len);
}

int swc_ws_send_buf(swc_ws_t *ws, bool text, sw_buf_t *b) {
  if (!ws || ws->state != WS_OPEN || b->len < SWC_WS_HEADROOM) {
    buf_free(b);
    return -1;
  }
  uint8_t mask[4];
  if (next_mask(ws, mask)) {
    buf_free(b);
    return UV_EIO;
  }
  size_t n = b->len - SWC_WS_HEADROOM;
  uint8_t hdr[SW_WS_MAX_HEADER];
  size_t hl = ws_frame_header(hdr, true, text ? SW_WS_OP_TEXT : SW_WS_OP_BINARY, n);
  hdr[1] |= 0x80;
  memcpy(hdr + hl, mask, 4);
  hl += 4;
  size_t off = SWC_WS_HEADROOM - hl;
  memcpy(b->data + off, hdr, hl);
  ws_unmask(b->data + SWC_WS_HEADROOM, n, mask, 0);
  size_t len;
  uint8_t *data = buf_steal(b, &len);
  return ws->t->ops->write(ws->t, data, off, len - off);
}

int swc_ws_send(swc_ws_t *ws, bool text, const uint8_t *p, size_t n) {
  if (!ws || ws->state != WS_OPEN) return -1;
  return send_frame(ws, text ? SW_WS_OP_TEXT : SW_WS_OP_BINARY, p, n);
}

int swc_ws_fileno(const swc_ws_t *ws) {
  return ws && ws->t ? ws->t->ops->fileno(ws->t) : -1;
}

/* ---- handshake response ---- */

static void header_done(swc_ws_t *ws) {
  if (!ws->hfield.len) return;
  buf_append_byte(&ws->hfield, 0);
  buf_append_byte(&ws->hvalue, 0);
  const char *k = (const char *)ws->hfield.data, *v = ws->hvalue.data ? (const char *)ws->hvalue.data : "";
  if (strcasecmp(k, "Sec-WebSocket-Accept") == 0) ws->accept_ok = strcmp(v, ws->accept) == 0;
  else if (strcasecmp(k, "Upgrade") == 0) ws->upgrade_ok = strcasecmp(v, "websocket") == 0;
  buf_reset(&ws->hfield);
  buf_reset(&ws->hvalue);
}

static int on_hfield(http_parser *p, const char *at, size_t n) {
  swc_ws_t *ws = p->data;
  if (ws->in_value) {
    header_done(ws);
    ws->in_value = false;
  }
  return buf_append(&ws->hfield, at, n) ? -1 : 0;
}

static int on_hvalue(http_parser *p, const char *at, size_t n) {
  swc_ws_t *ws = p->data;
  ws->in_value = true;
  return buf_append(&ws->hvalue, at, n) ? -1 : 0;
}

static int on_headers_complete(http_parser *p) {
  swc_ws_t *ws = p->data;
  header_done(ws);
  ws->headers_done = true;
  /* 2: stop right after the head of a 101, the rest is WebSocket; 1: skip any body. */
  return p->status_code == 101 ? 2 : 1;
}

/* ---- frames ---- */

/* A received buffer larger than this is freed once it has been used, so
 * that one big message does not pin its memory to the connection. */
#define RBUF_KEEP 65536

/* Handles every complete frame in p[0..n) and returns how many bytes they
 * took (the rest is the start of a frame still arriving), or SIZE_MAX when
 * the socket finished or the owner let go, after which nothing else of p
 * matters. p is only borrowed: a whole message in one frame is handed to
 * on_message straight from it. */
static size_t parse_frames(swc_ws_t *ws, const uint8_t *p, size_t n) {
  size_t off = 0;
  while (ws->state == WS_OPEN && !ws->released) {
    const uint8_t *at = p + off;
    size_t avail = n - off;
    sw_ws_frame_t f;
    int rc = ws_frame_parse(at, avail, false, ws->max_msg, &f);
    if (rc == SW_WS_NEED_MORE) return off;
    /* §5.1: a client must close on a masked server frame. */
    if (rc < 0 || f.masked) {
      finish(ws, SWC_WS_PROTOCOL_ERROR);
      return SIZE_MAX;
    }
    if (avail - f.header_len < f.payload_len) return off;
    const uint8_t *payload = at + f.header_len;
    size_t len = (size_t)f.payload_len;
    off += f.header_len + len;
    if (f.opcode == SW_WS_OP_PING) {
      send_frame(ws, SW_WS_OP_PONG, payload, len);
    } else if (f.opcode == SW_WS_OP_PONG) {
      /* activity only */
    } else if (f.opcode == SW_WS_OP_CLOSE) {
      int code = ws_close_payload_parse(payload, len);
      uint8_t echo[2] = {0x03, 0xE8}; /* 1000 */
      send_frame(ws, SW_WS_OP_CLOSE, echo, 2);
      finish(ws, code < 0 ? SWC_WS_PROTOCOL_ERROR : code);
      return SIZE_MAX;
    } else if (f.fin && f.opcode != SW_WS_OP_CONT && !ws->asm_.active) {
      /* The common case, a whole message in one frame: no copy. */
      bool text = f.opcode == SW_WS_OP_TEXT;
      if (text && !utf8_valid(payload, len)) {
        finish(ws, SWC_WS_PROTOCOL_ERROR);
        return SIZE_MAX;
      }
      ws->cbs.on_message(ws->ud, text, payload, len);
    } else {
      uint8_t op;
      rc = ws_msg_asm_add(&ws->asm_, &f, payload, len, &op);
      if (rc < 0) {
        finish(ws, SWC_WS_PROTOCOL_ERROR);
        return SIZE_MAX;
      }
      if (rc == 1) {
        bool text = op == SW_WS_OP_TEXT;
        if (text && !utf8_valid(ws->asm_.buf.data, ws->asm_.buf.len)) {
          finish(ws, SWC_WS_PROTOCOL_ERROR);
          return SIZE_MAX;
        }
        ws->cbs.on_message(ws->ud, text, ws->asm_.buf.data, ws->asm_.buf.len);
      }
    }
  }
  return SIZE_MAX;
}

/* Bytes of the open WebSocket. Frames that arrive whole are parsed where
 * they are (the transport's read buffer); only a frame cut by the end of a
 * read is copied, to rbuf, and completed there by the following reads. */
static void frames_data(swc_ws_t *ws, const uint8_t *p, size_t n) {
  if (ws->rbuf.len == 0) {
    size_t used = parse_frames(ws, p, n);
    if (used != SIZE_MAX && used < n && buf_append(&ws->rbuf, p + used, n - used)) finish(ws, UV_ENOMEM);
    return;
  }
  if (buf_append(&ws->rbuf, p, n)) {
    finish(ws, UV_ENOMEM);
    return;
  }
  size_t used = parse_frames(ws, ws->rbuf.data, ws->rbuf.len);
  if (used == SIZE_MAX) return;
  buf_consume(&ws->rbuf, used);
  if (ws->rbuf.len == 0 && ws->rbuf.cap > RBUF_KEEP) buf_free(&ws->rbuf);
}

static void handshake_data(swc_ws_t *ws, const uint8_t *p, size_t n) {
  size_t used = http_parser_execute(&ws->hp, &ws->hs, (const char *)p, n);
  if (!ws->headers_done) {
    if (HTTP_PARSER_ERRNO(&ws->hp) != HPE_OK || used != n) finish(ws, SWC_WS_HANDSHAKE_ERROR);
    return;
  }
  if (ws->hp.status_code != 101 || !ws->accept_ok || !ws->upgrade_ok) {
    finish(ws, SWC_WS_HANDSHAKE_ERROR);
    return;
  }
  ws->state = WS_OPEN;
  buf_free(&ws->hfield);
  buf_free(&ws->hvalue);
  ws->cbs.on_open(ws->ud);
  if (ws->released || ws->state != WS_OPEN) return;
  if (used < n) frames_data(ws, p + used, n - used);
}

/* ---- transport callbacks ---- */

static void leave(swc_ws_t *ws) {
  if (--ws->busy == 0 && ws->released) ws_free(ws);
}

static void t_on_connect(void *ud, int status) {
  swc_ws_t *ws = ud;
  ws->busy++;
  if (status < 0) {
    finish(ws, status);
  } else {
    ws->state = WS_HANDSHAKE;
    size_t len = strlen(ws->request);
    uint8_t *copy = malloc(len);
    int rc = copy ? 0 : UV_ENOMEM;
    if (copy) {
      memcpy(copy, ws->request, len);
      rc = ws->t->ops->write(ws->t, copy, 0, len);
    }
    if (rc) finish(ws, rc);
  }
  leave(ws);
}

static void t_on_data(void *ud, const uint8_t *p, size_t n) {
  swc_ws_t *ws = ud;
  ws->busy++;
  if (ws->cbs.on_activity) ws->cbs.on_activity(ws->ud);
  if (!ws->released) {
    if (ws->state == WS_HANDSHAKE) {
      handshake_data(ws, p, n);
    } else if (ws->state == WS_OPEN) {
      frames_data(ws, p, n);
    }
  }
  leave(ws);
}

static void t_on_close(void *ud, int status) {
  swc_ws_t *ws = ud;
  ws->busy++;
  finish(ws, status);
  leave(ws);
}

static const swc_transport_cbs_t t_cbs = {.on_connect = t_on_connect, .on_data = t_on_data, .on_close = t_on_close};

void swc_ws_close(swc_ws_t *ws) {
  if (!ws || ws->released) return;
  ws->released = true;
  if (ws->state == WS_OPEN) {
    uint8_t code[2] = {0x03, 0xE8}; /* 1000: best effort, the transport closes now */
    send_frame(ws, SW_WS_OP_CLOSE, code, 2);
  }
  ws->state = WS_DONE;
  if (ws->t) ws->t->ops->close(ws->t);
  ws->t = NULL;
  if (ws->busy == 0) ws_free(ws);
}

swc_ws_t *swc_ws_open(uv_loop_t *loop, const swc_endpoint_t *ep, const char *target, size_t max_msg,
                      const swc_ws_cbs_t *cbs, void *ud) {
  swc_ws_t *ws = calloc(1, sizeof *ws);
  if (!ws) return NULL;
  ws->cbs = *cbs;
  ws->ud = ud;
  ws->max_msg = max_msg;
  ws->asm_.max_msg = max_msg;
  ws->pool_off = sizeof ws->pool;

  /* Sec-WebSocket-Key: base64 of 16 random bytes; we expect
   * base64(SHA-1(key + GUID)) back (§4.1). */
  uint8_t raw[16];
  char key[32];
  if (swc_random(raw, sizeof raw)) goto fail;
  EVP_EncodeBlock((unsigned char *)key, raw, sizeof raw);
  char cat[64 + sizeof WS_GUID];
  snprintf(cat, sizeof cat, "%s%s", key, WS_GUID);
  uint8_t digest[SHA_DIGEST_LENGTH];
  SHA1((const unsigned char *)cat, strlen(cat), digest);
  EVP_EncodeBlock((unsigned char *)ws->accept, digest, sizeof digest);

  /* Appended piece by piece: through buf_printf (vsnprintf twice over a
   * target that carries the whole token) it was 18k instructions a
   * connect (callgrind, bench connect). */
  sw_buf_t req = {0};
  char port[16];
  snprintf(port, sizeof port, "%d", ep->port);
  if (buf_append_str(&req, "GET ") || buf_append_str(&req, target) || buf_append_str(&req, " HTTP/1.1\r\nHost: ") ||
      buf_append_str(&req, ep->host) || buf_append_str(&req, ":") || buf_append_str(&req, port) ||
      buf_append_str(&req, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ") ||
      buf_append_str(&req, key) ||
      buf_append_str(&req, "\r\nSec-WebSocket-Version: 13\r\nUser-Agent: libswitchboard/" SW_CLIENT_VERSION
                           "\r\n\r\n") ||
      buf_append_byte(&req, 0)) {
    buf_free(&req);
    goto fail;
  }
  ws->request = (char *)buf_steal(&req, NULL);

  http_parser_init(&ws->hp, HTTP_RESPONSE);
  ws->hp.data = ws;
  http_parser_settings_init(&ws->hs);
  ws->hs.on_header_field = on_hfield;
  ws->hs.on_header_value = on_hvalue;
  ws->hs.on_headers_complete = on_headers_complete;

  ws->state = WS_CONNECTING;
  ws->t = swc_transport_open(loop, ep, &t_cbs, ws);
  if (!ws->t) goto fail;
  return ws;
fail:
  ws_free(ws);
  return NULL;
}
