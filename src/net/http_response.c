/* http_response.c: response-head formatting. */
#include "net/http_response.h"

#include <errno.h>
#include <string.h>

#include "proto/codec.h"

const char *http_reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 206: return "Partial Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 406: return "Not Acceptable";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 412: return "Precondition Failed";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 416: return "Range Not Satisfiable";
  case 417: return "Expectation Failed";
  case 422: return "Unprocessable Content";
  case 426: return "Upgrade Required";
  case 428: return "Precondition Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
}

int http_response_head(sw_buf_t *out, int status, const char *content_type,
                       size_t content_length, const char *extra_headers, bool keep_alive) {
  if (status < 100 || status > 599) return -EINVAL;
  /* A CR or LF here would let a caller's value inject headers. */
  if (content_type && strpbrk(content_type, "\r\n")) return -EINVAL;
  if (!extra_headers) extra_headers = "";
  size_t xl = strlen(extra_headers);
  if (xl > 0 && (xl < 2 || strcmp(extra_headers + xl - 2, "\r\n") != 0)) return -EINVAL;

  size_t start = out->len;
  int rc = buf_printf(out, "HTTP/1.1 %d %s\r\n", status, http_reason(status));
  if (!rc && content_type) rc = buf_printf(out, "Content-Type: %s\r\n", content_type);
  if (!rc && status >= 200 && status != 204)
    rc = buf_printf(out, "Content-Length: %zu\r\n", content_length);
  if (!rc && status != 101)
    rc = buf_append_str(out, keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
  if (!rc) rc = buf_append(out, extra_headers, xl);
  if (!rc) rc = buf_append(out, "\r\n", 2);
  if (rc) out->len = start; /* all or nothing */
  return rc ? -ENOMEM : 0;
}

int http_error_response(sw_buf_t *out, sw_format_t fmt, const sw_error_t *e, const char *extra_headers,
                        bool keep_alive) {
  sw_buf_t body = {0}, h = {0};
  /* Header values must not carry CR/LF or non-ASCII. */
  char msg[sizeof e->message];
  size_t i = 0;
  for (; e->message[i] && i < sizeof msg - 1; i++)
    msg[i] = (e->message[i] >= 0x20 && e->message[i] < 0x7f) ? e->message[i] : ' ';
  msg[i] = '\0';
  int rc = codec_encode_error_body(fmt, e, &body);
  if (!rc) rc = buf_printf(&h, "X-Ably-ErrorCode: %d\r\nX-Ably-ErrorMessage: %s\r\n%s", e->code, msg,
                           extra_headers ? extra_headers : "");
  if (!rc) rc = buf_append_byte(&h, 0);
  size_t start = out->len;
  if (!rc)
    rc = http_response_head(out, e->status, fmt == SW_FMT_MSGPACK ? "application/x-msgpack" : "application/json",
                            body.len, (const char *)h.data, keep_alive);
  if (!rc && buf_append(out, body.data, body.len)) {
    out->len = start;
    rc = -ENOMEM;
  }
  buf_free(&body);
  buf_free(&h);
  return rc ? (rc == -EINVAL ? -EINVAL : -ENOMEM) : 0;
}
