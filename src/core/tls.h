/* tls.h: TLS on the listener (OpenSSL 3), under the HTTP and WebSocket code.
 *
 * The socket layer keeps owning the socket: OpenSSL never sees it. Each TLS socket has
 * an SSL object whose one BIO (a custom source/sink, not a BIO_s_mem pair)
 * reads the ciphertext the socket layer just received, straight from the
 * shared read buffer, and appends what OpenSSL writes to `out`, which the
 * socket layer hands to the kernel. So an idle TLS connection holds no
 * buffer of ours (SSL_MODE_RELEASE_BUFFERS lets OpenSSL drop its own), and
 * ciphertext is copied once, by OpenSSL into `out`, on its way out.
 *
 * The SSL_CTX is built once from the certificate chain and key files, and
 * again on SIGHUP (tls_ctx_load): a new context serves new connections,
 * while existing ones keep theirs (an SSL holds a reference to its context).
 * core/sock.c drives all of this; see docs/design.md, "TLS". */
#ifndef SW_CORE_TLS_H
#define SW_CORE_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/buf.h"

/* tls_pull's refusals. */
enum { SW_TLS_CLOSED = -1, SW_TLS_ERROR = -2 };

typedef struct sw_tls {
  SSL *ssl;
  const uint8_t *in; /* ciphertext being fed (tls_feed), not ours */
  size_t in_len;
  sw_buf_t out;      /* ciphertext to write; out.data + out_off onwards */
  size_t out_off;
  bool ready;        /* handshake complete */
  bool failed;       /* a fatal error: nothing more is encrypted */
  bool shut;         /* close_notify queued */
  bool plain_http;   /* the handshake failed on a plain HTTP request */
  char reason[96];   /* why it failed, for the log */
} sw_tls_t;

/* A server context for cert_file (PEM, the certificate then its chain, as
 * Let's Encrypt's fullchain.pem) and key_file (PEM): TLS 1.2 and 1.3,
 * ECDHE with AES-GCM or ChaCha20-Poly1305 for 1.2, the server's cipher
 * order, no renegotiation, no compression, stateless session tickets.
 * NULL with a message in err if the files cannot be read, do not parse
 * or do not match. */
SSL_CTX *tls_ctx_load(const char *cert_file, const char *key_file, char *err, size_t errlen);
/* "notAfter" of ctx's certificate as "YYYY-MM-DDTHH:MM:SSZ", for the log. */
void tls_ctx_expiry(SSL_CTX *ctx, char out[32]);

/* A server-side connection on ctx (which it references); NULL when out of
 * memory. */
sw_tls_t *tls_new(SSL_CTX *ctx);
void tls_free(sw_tls_t *t);

/* Input: tls_feed(t, p, n) lends OpenSSL n bytes of ciphertext, then
 * tls_pull decrypts into buf until it returns 0 (it has used every byte
 * fed: a partial record waits inside OpenSSL), SW_TLS_CLOSED (the peer
 * sent close_notify) or SW_TLS_ERROR (a failed handshake or a bad record;
 * t->reason says why, and an alert may be waiting in `out`). The
 * handshake happens inside: t->ready says when it is done. Output it
 * produces (handshake messages, session tickets, alerts) lands in `out`. */
void tls_feed(sw_tls_t *t, const uint8_t *p, size_t n);
ssize_t tls_pull(sw_tls_t *t, uint8_t *buf, size_t cap);

/* Output: encrypts n bytes into `out` (one TLS record per 16 KiB); 0, or -1
 * (out of memory or a failed connection). */
int tls_push(sw_tls_t *t, const void *p, size_t n);
/* Queues close_notify, once, if the handshake is done and nothing failed. */
void tls_close_notify(sw_tls_t *t);
static inline size_t tls_out_pending(const sw_tls_t *t) { return t->out.len - t->out_off; }

#endif
