/* ws_handshake.c: RFC 6455 §4.2 server handshake checks and Accept key. */
#include "net/ws_handshake.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#include "net/http_response.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static bool is_ows(char ch) { return ch == ' ' || ch == '\t'; }

/* True if any header called name holds token in its comma-separated list
 * (RFC 9110 §5.6.1), compared case-insensitively. Repeated headers count as
 * one joined list. */
static bool header_has_token(const sw_http_req_t *req, const char *name, const char *token) {
  for (size_t h = 0; h < req->n_headers; h++) {
    if (!slice_ieq(req->hname[h], name)) continue;
    sw_slice_t v = req->hval[h];
    size_t i = 0;
    while (i < v.n) {
      size_t s = i;
      while (i < v.n && v.p[i] != ',') i++;
      size_t e = i;
      while (s < e && is_ows(v.p[s])) s++;
      while (e > s && is_ows(v.p[e - 1])) e--;
      if (slice_ieq((sw_slice_t){v.p + s, e - s}, token)) return true;
      i++; /* past the comma */
    }
  }
  return false;
}

static bool b64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '+' || c == '/';
}

/* A 16-byte nonce is 22 base64 characters and "==". Non-zero padding bits
 * in the 22nd character are tolerated, as most decoders do. */
static bool key_valid(sw_slice_t k) {
  if (k.n != 24 || k.p[22] != '=' || k.p[23] != '=') return false;
  for (size_t i = 0; i < 22; i++)
    if (!b64_char(k.p[i])) return false;
  unsigned char raw[18];
  return EVP_DecodeBlock(raw, (const unsigned char *)k.p, 24) == 18; /* 16 + 2 pad */
}

static int fail(sw_error_t *err, char accept_out[29], const char *msg) {
  accept_out[0] = '\0';
  if (err) errors_set(err, SW_E_BAD_REQUEST, "invalid WebSocket upgrade: %s", msg);
  return -1;
}

int ws_handshake_check(const sw_http_req_t *req, char accept_out[29], sw_error_t *err) {
  if (req->method != HTTP_GET) return fail(err, accept_out, "method must be GET");
  if (req->http_major < 1 || (req->http_major == 1 && req->http_minor < 1))
    return fail(err, accept_out, "HTTP/1.1 or later required");
  if (!header_has_token(req, "Upgrade", "websocket"))
    return fail(err, accept_out, "Upgrade header must contain \"websocket\"");
  if (!header_has_token(req, "Connection", "upgrade"))
    return fail(err, accept_out, "Connection header must contain \"Upgrade\"");
  /* RFC 6455 §11.3.1 and §11.3.5: neither may appear more than once in a
   * request (§4.2.1: answer 400). Upgrade and Connection are token lists,
   * which may legally be split over several lines (RFC 9110 §5.3): the
   * checks above read every line. */
  if (http_req_header_count(req, "Sec-WebSocket-Key") > 1)
    return fail(err, accept_out, "Sec-WebSocket-Key sent more than once");
  if (http_req_header_count(req, "Sec-WebSocket-Version") > 1)
    return fail(err, accept_out, "Sec-WebSocket-Version sent more than once");
  const sw_slice_t *ver = http_req_header(req, "Sec-WebSocket-Version");
  if (!ver || !slice_eq(*ver, "13"))
    return fail(err, accept_out, "Sec-WebSocket-Version must be 13");
  const sw_slice_t *key = http_req_header(req, "Sec-WebSocket-Key");
  if (!key || !key_valid(*key))
    return fail(err, accept_out, "Sec-WebSocket-Key must be base64 of 16 bytes");

  unsigned char in[24 + sizeof ws_guid - 1];
  memcpy(in, key->p, 24);
  memcpy(in + 24, ws_guid, sizeof ws_guid - 1);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  /* The digest is fetched and its context made once per thread: with
   * EVP_sha1() every call fetched the implementation again and allocated a
   * context (more than half of the digest's cost; they live as long as the
   * thread, like OpenSSL's own per-thread state). */
  static _Thread_local EVP_MD *sha1;
  static _Thread_local EVP_MD_CTX *ctx;
  if (!sha1) sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
  if (!ctx) ctx = EVP_MD_CTX_new();
  if (!sha1 || !ctx || !EVP_DigestInit_ex(ctx, sha1, NULL) || !EVP_DigestUpdate(ctx, in, sizeof in) ||
      !EVP_DigestFinal_ex(ctx, md, &md_len) || md_len != 20)
    return fail(err, accept_out, "SHA-1 unavailable");
  /* EVP_EncodeBlock writes 28 characters and a NUL. */
  if (EVP_EncodeBlock((unsigned char *)accept_out, md, 20) != SW_WS_ACCEPT_LEN)
    return fail(err, accept_out, "base64 failed");
  return 0;
}

int ws_handshake_response(sw_buf_t *out, const char *accept, const char *extra_headers) {
  if (strpbrk(accept, "\r\n")) return -EINVAL;
  if (!extra_headers) extra_headers = "";
  size_t xl = strlen(extra_headers);
  if (xl > 0 && (xl < 2 || strcmp(extra_headers + xl - 2, "\r\n") != 0)) return -EINVAL;
  /* Pieces appended, not buf_printf: vsnprintf was a tenth of an upgrade's
   * own instructions. Reserved first, so out is unchanged on failure. */
  const char *reason = http_reason(101);
  static const char head[] = "HTTP/1.1 101 ";
  static const char mid[] = "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ";
  size_t rl = strlen(reason), al = strlen(accept);
  if (buf_reserve(out, sizeof head - 1 + rl + sizeof mid - 1 + al + 2 + xl + 2)) return -ENOMEM;
  buf_append(out, head, sizeof head - 1);
  buf_append(out, reason, rl);
  buf_append(out, mid, sizeof mid - 1);
  buf_append(out, accept, al);
  buf_append(out, "\r\n", 2);
  buf_append(out, extra_headers, xl);
  buf_append(out, "\r\n", 2);
  return 0;
}
