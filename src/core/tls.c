#include "core/tls.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* TLS 1.2 suites: forward secrecy and AEAD only (Mozilla's "intermediate"
 * list without the DHE ones, which need parameters). TLS 1.3 keeps
 * OpenSSL's default suites. */
#define TLS12_CIPHERS                                                                                          \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"                   \
  "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* The last OpenSSL error, as "what: reason", in err. */
static void ssl_err(char *err, size_t errlen, const char *what, const char *file) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  snprintf(err, errlen, "%s %s: %s", what, file, r ? r : "unknown error");
  ERR_clear_error();
}

SSL_CTX *tls_ctx_load(const char *cert_file, const char *key_file, char *err, size_t errlen) {
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    ssl_err(err, errlen, "cannot create a TLS context", "");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  /* Idle connections are the product: OpenSSL frees its record buffers
   * while a connection has nothing in flight. */
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  /* Resumption by stateless tickets only: no session cache to bound. */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
    ssl_err(err, errlen, "cannot set the TLS 1.2 ciphers", "");
  } else if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
    ssl_err(err, errlen, "cannot load the TLS certificate chain", cert_file);
  } else if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
    ssl_err(err, errlen, "cannot load the TLS private key", key_file);
  } else if (SSL_CTX_check_private_key(ctx) != 1) {
    ssl_err(err, errlen, "the TLS private key does not match the certificate in", cert_file);
  } else {
    return ctx;
  }
  SSL_CTX_free(ctx);
  return NULL;
}

void tls_ctx_expiry(SSL_CTX *ctx, char out[32]) {
  snprintf(out, 32, "?");
  X509 *x = SSL_CTX_get0_certificate(ctx);
  const ASN1_TIME *t = x ? X509_get0_notAfter(x) : NULL;
  struct tm tm;
  if (t && ASN1_TIME_to_tm(t, &tm) == 1) strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- the BIO: ciphertext in from the read buffer, out into t->out ---- */

static BIO_METHOD *bio_method;

static int bio_write(BIO *b, const char *p, size_t n, size_t *written) {
  sw_tls_t *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (buf_append(&t->out, p, n)) return 0;
  *written = n;
  return 1;
}

static int bio_read(BIO *b, char *p, size_t n, size_t *got) {
  sw_tls_t *t = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  if (t->in_len == 0) {
    BIO_set_retry_read(b); /* no more for now: SSL_ERROR_WANT_READ */
    return 0;
  }
  size_t k = n < t->in_len ? n : t->in_len;
  memcpy(p, t->in, k);
  t->in += k;
  t->in_len -= k;
  *got = k;
  return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  sw_tls_t *t = BIO_get_data(b);
  switch (cmd) {
  case BIO_CTRL_FLUSH:
    return 1; /* the socket layer writes `out` */
  case BIO_CTRL_PENDING:
    return t ? (long)t->in_len : 0;
  default:
    return 0;
  }
}

static BIO_METHOD *method(void) {
  if (!bio_method) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "switchboard socket");
    if (!m || !BIO_meth_set_write_ex(m, bio_write) || !BIO_meth_set_read_ex(m, bio_read) ||
        !BIO_meth_set_ctrl(m, bio_ctrl)) {
      BIO_meth_free(m);
      return NULL;
    }
    bio_method = m; /* one for the process (loop thread only) */
  }
  return bio_method;
}

sw_tls_t *tls_new(SSL_CTX *ctx) {
  BIO_METHOD *m = method();
  sw_tls_t *t = m ? calloc(1, sizeof *t) : NULL;
  if (!t) return NULL;
  BIO *b = BIO_new(m);
  t->ssl = b ? SSL_new(ctx) : NULL;
  if (!t->ssl) {
    BIO_free(b);
    free(t);
    return NULL;
  }
  BIO_set_data(b, t);
  BIO_set_init(b, 1);
  SSL_set_bio(t->ssl, b, b); /* one reference, now the SSL's */
  SSL_set_accept_state(t->ssl);
  return t;
}

void tls_free(sw_tls_t *t) {
  if (!t) return;
  SSL_free(t->ssl);
  buf_free(&t->out);
  free(t);
}

void tls_feed(sw_tls_t *t, const uint8_t *p, size_t n) {
  t->in = p;
  t->in_len = n;
}

/* Why a connection failed, from OpenSSL's error queue. */
static void set_reason(sw_tls_t *t, int ssl_error) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  t->plain_http = e && ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST;
  if (r) snprintf(t->reason, sizeof t->reason, "%s", r);
  else snprintf(t->reason, sizeof t->reason, "SSL error %d", ssl_error);
  ERR_clear_error();
}

ssize_t tls_pull(sw_tls_t *t, uint8_t *buf, size_t cap) {
  if (t->failed) return SW_TLS_ERROR;
  ERR_clear_error();
  size_t n = 0;
  int r = SSL_read_ex(t->ssl, buf, cap, &n);
  if (!t->ready && SSL_is_init_finished(t->ssl)) t->ready = true;
  if (r == 1) return (ssize_t)n;
  int e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_WANT_READ) return 0;
  if (e == SSL_ERROR_ZERO_RETURN) return SW_TLS_CLOSED;
  t->failed = true;
  set_reason(t, e);
  return SW_TLS_ERROR;
}

int tls_push(sw_tls_t *t, const void *p, size_t n) {
  if (t->failed || !t->ready) return -1;
  if (n == 0) return 0;
  ERR_clear_error();
  size_t w = 0;
  int r = SSL_write_ex(t->ssl, p, n, &w);
  if (r == 1 && w == n) return 0;
  t->failed = true;
  set_reason(t, SSL_get_error(t->ssl, r));
  return -1;
}

void tls_close_notify(sw_tls_t *t) {
  if (t->shut || t->failed || !t->ready) return;
  t->shut = true;
  ERR_clear_error();
  SSL_shutdown(t->ssl); /* 0: sent, the peer's not yet seen; we do not wait for it */
  ERR_clear_error();
}
