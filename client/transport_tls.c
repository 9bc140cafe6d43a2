/* transport_tls.c: TLS (wss://, https://) as a filter over the TCP transport.
 *
 * OpenSSL runs on two memory BIOs: bytes read from the socket are written
 * into rbio, and whatever SSL has to send is taken out of wbio and handed to
 * the TCP transport's write. Why not SSL_read/SSL_write on the socket's fd:
 * the TCP transport already owns everything about the socket (resolution,
 * the source address, the non-blocking connect, the write queue,
 * send(MSG_NOSIGNAL) so a vanished peer never raises SIGPIPE in the host
 * process, the per-thread read buffer). SSL on the fd would duplicate all of
 * that, write with write(2) and so bring SIGPIPE back, and OpenSSL's
 * WANT_READ/WANT_WRITE retry rules (retry with the same buffer) would leak
 * into the write queue. With memory BIOs SSL never blocks and never touches
 * the socket, and ws.c and http.c see exactly the byte stream they see over
 * plain TCP: the WebSocket upgrade, both wire formats, reconnects with
 * resume and token renewal need no change.
 *
 * Verification: the SSL_CTX (one per client, swc_tls_ctx_new) verifies the
 * chain against the system trust store or options.tls_ca_file; each
 * connection checks the certificate's name against the host it was asked
 * for (SSL_set1_host for names, the IP address SANs for an IP literal) and
 * sends the name as SNI (names only: RFC 6066 forbids IP literals there).
 *
 * Lifetime is the TCP transport's: the owner calls close() once, after which
 * no callback runs; the struct is freed once no callback of ours is on the
 * stack. Failures are reported through on_connect (before the handshake
 * completed) or on_close (after), with the status codes of internal.h's
 * SWC_TLS_* ranges, which swc_tls_strerror turns into text. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "internal.h"

typedef struct tls {
  swc_transport_t base;
  swc_transport_t *tcp; /* the socket; NULL once closed */
  swc_transport_cbs_t cbs;
  void *ud;
  SSL *ssl;
  BIO *rbio, *wbio; /* owned by ssl */
  bool handshaken;  /* on_connect(0) delivered */
  bool ended;       /* a failure or the end was reported */
  bool released;    /* the owner called close */
  int busy;         /* our callbacks on the stack: free only at 0 */
} tls_t;

static void tls_free(tls_t *t) {
  SSL_free(t->ssl);
  free(t);
}

static void leave(tls_t *t) {
  if (--t->busy == 0 && t->released) tls_free(t);
}

/* The status for a failed SSL call (err from SSL_get_error). Clears the
 * thread's OpenSSL error queue, which other code on this thread shares. */
static int ssl_status(tls_t *t, int err) {
  int status = SWC_TLS_ERROR_BASE;
  long verify = SSL_get_verify_result(t->ssl);
  unsigned long e = ERR_peek_last_error();
  if (err == SSL_ERROR_SSL && ERR_GET_LIB(e) == ERR_LIB_SSL &&
      ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED && verify != X509_V_OK && verify > 0 && verify < 1000)
    status = SWC_TLS_VERIFY_BASE - (int)verify;
  else if (e && ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) > 0 && ERR_GET_REASON(e) < 10000)
    status = SWC_TLS_ERROR_BASE - ERR_GET_REASON(e);
  ERR_clear_error();
  return status;
}

/* Hands what SSL wants to send to the socket. 0 or a negative uv error. */
static int flush_out(tls_t *t) {
  size_t n = BIO_ctrl_pending(t->wbio);
  if (!n || !t->tcp) return 0;
  uint8_t *buf = malloc(n);
  if (!buf) return UV_ENOMEM;
  int got = BIO_read(t->wbio, buf, (int)n);
  if (got <= 0) {
    free(buf);
    return UV_EPROTO;
  }
  return t->tcp->ops->write(t->tcp, buf, 0, (size_t)got);
}

/* Reports a failure or the end of the stream to the owner, once. */
static void fail(tls_t *t, int status) {
  if (t->ended || t->released) return;
  t->ended = true;
  if (t->handshaken) t->cbs.on_close(t->ud, status);
  else t->cbs.on_connect(t->ud, status < 0 ? status : UV_ECONNRESET);
}

static void handshake(tls_t *t) {
  ERR_clear_error();
  int rc = SSL_do_handshake(t->ssl);
  int err = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, rc);
  /* ClientHello, Finished, or the alert that tells the server why we
   * refused its certificate: sent in every case. */
  int frc = flush_out(t);
  if (err != SSL_ERROR_NONE && err != SSL_ERROR_WANT_READ) {
    fail(t, ssl_status(t, err));
  } else if (frc) {
    fail(t, frc);
  } else if (err == SSL_ERROR_NONE) {
    t->handshaken = true;
    t->cbs.on_connect(t->ud, 0);
  }
}

/* Decrypts everything rbio holds and passes it on. */
static void read_app(tls_t *t) {
  /* One TLS record's worth (16 KiB). Plaintext lives only during on_data,
   * as with the TCP transport's shared buffer. */
  uint8_t buf[16384];
  while (!t->released && !t->ended) {
    ERR_clear_error();
    int n = SSL_read(t->ssl, buf, sizeof buf);
    if (n > 0) {
      t->cbs.on_data(t->ud, buf, (size_t)n);
      continue;
    }
    int err = SSL_get_error(t->ssl, n);
    int frc = flush_out(t); /* e.g. the answer to a KeyUpdate */
    if (err == SSL_ERROR_WANT_READ) {
      if (frc) fail(t, frc);
    } else if (err == SSL_ERROR_ZERO_RETURN) {
      fail(t, 0); /* close_notify: a clean end of stream */
    } else {
      fail(t, ssl_status(t, err));
    }
    break;
  }
}

/* ---- the TCP transport's callbacks ---- */

static void in_connect(void *ud, int status) {
  tls_t *t = ud;
  t->busy++;
  if (status < 0) fail(t, status);
  else handshake(t);
  leave(t);
}

static void in_data(void *ud, const uint8_t *p, size_t n) {
  tls_t *t = ud;
  t->busy++;
  if (!t->released && !t->ended) {
    if (BIO_write(t->rbio, p, (int)n) != (int)n) {
      fail(t, UV_ENOMEM);
    } else {
      if (!t->handshaken) handshake(t);
      /* Application data may follow the handshake in the same read. */
      if (t->handshaken) read_app(t);
    }
  }
  leave(t);
}

static void in_close(void *ud, int status) {
  tls_t *t = ud;
  t->busy++;
  /* A clean end is close_notify (read_app); EOF without it may be a
   * truncation, so it is reported as a reset, never as a clean end. */
  fail(t, status < 0 ? status : UV_ECONNRESET);
  leave(t);
}

static const swc_transport_cbs_t in_cbs = {.on_connect = in_connect, .on_data = in_data, .on_close = in_close};

/* ---- ops ---- */

static int tls_write(swc_transport_t *base, uint8_t *buf, size_t off, size_t len) {
  tls_t *t = (tls_t *)base;
  if (!t->handshaken || t->ended || t->released || len > INT32_MAX) {
    free(buf);
    return UV_ENOTCONN;
  }
  if (len == 0) {
    free(buf);
    return 0;
  }
  ERR_clear_error();
  /* Into a memory BIO: the whole buffer is taken at once or not at all. */
  int n = SSL_write(t->ssl, buf + off, (int)len);
  int err = n > 0 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, n);
  OPENSSL_cleanse(buf + off, len); /* plaintext: tokens, messages */
  free(buf);
  if (err != SSL_ERROR_NONE) return ssl_status(t, err);
  return flush_out(t);
}

static void tls_close(swc_transport_t *base) {
  tls_t *t = (tls_t *)base;
  if (t->released) return;
  t->released = true;
  if (t->tcp) {
    /* close_notify, best effort: the socket closes now. */
    if (t->handshaken && !t->ended) {
      ERR_clear_error();
      SSL_shutdown(t->ssl);
      flush_out(t);
      ERR_clear_error();
    }
    t->tcp->ops->close(t->tcp);
    t->tcp = NULL;
  }
  if (t->busy == 0) tls_free(t);
}

static int tls_fileno(const swc_transport_t *base) {
  const tls_t *t = (const tls_t *)base;
  return t->tcp ? t->tcp->ops->fileno(t->tcp) : -1;
}

static const swc_transport_ops_t tls_ops = {.write = tls_write, .close = tls_close, .fileno = tls_fileno};

static swc_transport_t *tls_open(uv_loop_t *loop, const swc_endpoint_t *ep, const swc_transport_cbs_t *cbs,
                                 void *ud) {
  tls_t *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->base.ops = &tls_ops;
  t->cbs = *cbs;
  t->ud = ud;
  BIO *r = NULL, *w = NULL;
  if (!(t->ssl = SSL_new(ep->tls)) || !(r = BIO_new(BIO_s_mem())) || !(w = BIO_new(BIO_s_mem()))) {
    BIO_free(r);
    goto fail;
  }
  SSL_set_bio(t->ssl, r, w); /* ssl owns both from here */
  t->rbio = r;
  t->wbio = w;
  SSL_set_connect_state(t->ssl);
  unsigned char ip[16];
  if (inet_pton(AF_INET, ep->host, ip) == 1 || inet_pton(AF_INET6, ep->host, ip) == 1) {
    if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), ep->host)) goto fail;
  } else {
    /* A wildcard only as a whole leftmost label (RFC 6125 §6.4.3). */
    SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (!SSL_set_tlsext_host_name(t->ssl, ep->host) || !SSL_set1_host(t->ssl, ep->host)) goto fail;
  }
  if (!(t->tcp = swc_tcp_open(loop, ep, &in_cbs, t))) goto fail;
  return &t->base;
fail:
  ERR_clear_error();
  tls_free(t);
  return NULL;
}

swc_transport_t *swc_transport_open(uv_loop_t *loop, const swc_endpoint_t *ep, const swc_transport_cbs_t *cbs,
                                    void *ud) {
  return ep->tls ? tls_open(loop, ep, cbs, ud) : swc_tcp_open(loop, ep, cbs, ud);
}

/* ---- the client's context ---- */

SSL_CTX *swc_tls_ctx_new(const char *ca_file, sw_errinfo_t *err) {
  ERR_clear_error();
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    swc_set_error(err, 50000, 500, "could not create a TLS context");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  /* Idle connections keep no read/write buffers (16+ KiB each). */
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) : SSL_CTX_set_default_verify_paths(ctx);
  if (!ok) {
    unsigned long e = ERR_peek_last_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;
    if (ca_file) swc_set_error(err, 40000, 400, "cannot load tls_ca_file %s: %s", ca_file, why ? why : "error");
    else swc_set_error(err, 50000, 500, "cannot load the system trust store: %s", why ? why : "error");
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
  }
  ERR_clear_error();
  return ctx;
}

bool swc_tls_is_error(int status) {
  return status <= SWC_TLS_VERIFY_BASE && status > SWC_TLS_ERROR_BASE - 10000;
}

const char *swc_tls_strerror(int status, char *buf, size_t n) {
  if (status <= SWC_TLS_VERIFY_BASE && status > SWC_TLS_VERIFY_BASE - 1000) {
    snprintf(buf, n, "TLS certificate verify failed: %s",
             X509_verify_cert_error_string(SWC_TLS_VERIFY_BASE - status));
  } else if (status < SWC_TLS_ERROR_BASE && status > SWC_TLS_ERROR_BASE - 10000) {
    const char *why = ERR_reason_error_string(ERR_PACK(ERR_LIB_SSL, 0, SWC_TLS_ERROR_BASE - status));
    snprintf(buf, n, "TLS error: %s", why ? why : "unknown");
  } else {
    snprintf(buf, n, "TLS error");
  }
  return buf;
}
