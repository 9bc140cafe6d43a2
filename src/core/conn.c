#include "core/conn.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/channel_name.h"
#include "auth/key_auth.h"
#include "core/annotation.h"
#include "core/channel.h"
#include "core/bus.h"
#include "core/mutation.h"
#include "core/presence.h"
#include "core/rollup.h"
#include "core/serial.h"
#include "core/server.h"
#include "core/sock.h"
#include "metrics/metrics.h"
#include "net/http_parse.h"
#include "net/origin.h"
#include "net/url.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"

/* Default modes requested by an ATTACH without mode flags (RTL4l). */
#define DEFAULT_MODES \
  (SW_MODE_SUBSCRIBE | SW_MODE_PUBLISH | SW_MODE_PRESENCE_SUBSCRIBE | SW_MODE_PRESENCE | SW_MODE_ANNOTATION_PUBLISH)

/* Ably's rule for server-requested reauthentication (RTN22): a token
 * adopted (on connect, resume or AUTH) with this little life left is not
 * asked to renew. It expires and the client is disconnected with 40142
 * (RTN22a), which it renews through (RTN15h) or, unable to, fails with
 * 40171. Prompting it would race its own expiry, and a client renewing
 * with another such token would loop through in-band renewals. */
#define REAUTH_NO_PROMPT_MS 5500

/* How long the presence members of a connection whose transport was lost
 * stay before they leave, unless it resumes: Ably's 15 s, or the client's
 * remainPresentFor transport param (ms). Either way no longer than the
 * connection itself (connectionStateTtl). */
#define REMAIN_PRESENT_DEFAULT_MS 15000

/* Protocol versions we speak: v2+ carries channelSerial continuity. */
#define MIN_PROTOCOL_VERSION 2
#define MAX_PROTOCOL_VERSION 6

/* Frames are encoded into a buffer kept per thread, so that a frame costs
 * one allocation (its own) rather than a buffer grown from 64 bytes by
 * doubling and then freed. A buffer grown past SCRATCH_KEEP by a large
 * message is released after it. */
#define SCRATCH_KEEP (64 * 1024)

/* The period of conn_tick (server.c's TICK_MS). */
#define CONN_TICK_MS 250

sw_frame_t *pmsg_frame(sw_format_t fmt, const sw_pmsg_t *m) {
  static _Thread_local sw_buf_t scratch;
  sw_frame_t *f = NULL;
  scratch.len = 0;
  if (codec_encode_pmsg(fmt, m, &scratch) == 0)
    f = frame_ws(fmt == SW_FMT_JSON ? SW_WS_OP_TEXT : SW_WS_OP_BINARY, scratch.data, scratch.len);
  if (scratch.cap > SCRATCH_KEEP) buf_free(&scratch);
  return f;
}

static int send_on_sock(sw_sock_t *s, sw_format_t fmt, const sw_pmsg_t *m) {
  metrics_auth_failure(m->error.code); /* ERROR, DISCONNECTED, NACK, DETACHED with 401xx/403xx */
  sw_frame_t *f = pmsg_frame(fmt, m);
  if (!f) return -1;
  int rc = sock_send(s, f);
  frame_unref(f);
  return rc;
}

int conn_send_pmsg(sw_conn_t *c, const sw_pmsg_t *m) {
  if (!c->sock) return -1;
  c->last_tx = uv_now(c->srv->loop);
  return send_on_sock(c->sock, c->fmt, m);
}

void conn_send_frame(sw_conn_t *c, sw_frame_t *f) {
  if (!c->sock) return;
  c->last_tx = uv_now(c->srv->loop);
  sock_send(c->sock, f);
}

/* Refuses a WebSocket connection after the upgrade: ERROR then close, so
 * the SDK sees an Ably error rather than a dropped socket (RTN14). */
static void refuse(sw_sock_t *s, sw_format_t fmt, const sw_error_t *e) {
  /* The code only: a message may quote what the client sent. */
  log_ev(SW_LOG_INFO, "conn.refused", NULL, NULL, e->code, "connection refused");
  sw_pmsg_t m = {.action = SW_ACTION_ERROR, .error = *e};
  send_on_sock(s, fmt, &m);
  sock_close(s, true);
}

void conn_fail(sw_conn_t *c, int code, const char *msg, bool disconnected) {
  sw_pmsg_t m = {.action = disconnected ? SW_ACTION_DISCONNECTED : SW_ACTION_ERROR};
  errors_set(&m.error, code, "%s", msg);
  sw_sock_t *s = c->sock;
  if (!s) return;
  /* Credential failures (401xx, 403xx) at info, like a refused connection. */
  int level = code / 100 == 401 || code / 100 == 403 ? SW_LOG_INFO : SW_LOG_DEBUG;
  log_ev(level, disconnected ? "conn.disconnected" : "conn.failed", c->id, c->app ? c->app->id : NULL, code,
         disconnected ? "connection disconnected" : "connection failed");
  conn_send_pmsg(c, &m);
  sock_close(s, true);
  if (!disconnected) {
    /* A fatal ERROR ends the connection: it is not resumable (RTN15i). */
    s->conn = NULL;
    c->sock = NULL;
    conn_destroy(c);
  }
}

void conn_on_slow_consumer(sw_conn_t *c) {
  sw_pmsg_t m = {.action = SW_ACTION_DISCONNECTED};
  errors_set(&m.error, SW_E_SLOW_CONSUMER, "connection too slow to keep up: outbound backlog exceeded");
  sw_frame_t *f = pmsg_frame(c->fmt, &m);
  if (f) sock_send_last(c->sock, f);
  frame_unref(f);
}

void conn_send_channel_error(sw_conn_t *c, const char *channel, const sw_error_t *e) {
  sw_pmsg_t m = {.action = SW_ACTION_ERROR, .channel = (char *)channel, .error = *e};
  conn_send_pmsg(c, &m);
}

/* ---- the connection map (conn.h) ---- */

/* The map's hash (util/ptrmap.h takes the caller's). Not the map's keyed
 * SipHash: every id in the map is the server's own random one
 * (app_random_id, here or on another node for a take-over), never a
 * client's choice, so there is no flood to defend against, and this costs
 * less than half as much. A client's id (resume, recover) is only looked up. */
static uint32_t id_hash(const char *id) {
  uint32_t h = 2166136261u; /* FNV-1a: ids are random already */
  for (; *id; id++) h = (h ^ (uint8_t)*id) * 16777619u;
  return h;
}

static uint64_t conn_hash(const sw_ptrmap_t *m, const void *item) {
  (void)m;
  return id_hash(((const sw_conn_t *)item)->id);
}

static bool conn_eq(const void *item, const void *id) { return strcmp(((const sw_conn_t *)item)->id, id) == 0; }

int conn_map_reserve(sw_conn_map_t *m) { return ptrmap_reserve(&m->map, conn_hash); }

/* After conn_map_reserve. */
static void map_add(sw_conn_map_t *m, sw_conn_t *c) { ptrmap_add(&m->map, conn_hash(&m->map, c), c); }

static void map_del(sw_conn_map_t *m, sw_conn_t *c) { ptrmap_del(&m->map, conn_hash(&m->map, c), c); }

void conn_map_free(sw_conn_map_t *m) { ptrmap_free(&m->map); }

sw_conn_t *conn_find(sw_server_t *srv, const char *id) {
  const sw_ptrmap_t *m = &srv->conns.map;
  return m->n ? ptrmap_find(m, id_hash(id), conn_eq, id) : NULL;
}

/* A NACK reason that could not be copied (out of memory): still a NACK. */
static sw_error_t memo_oom_error = {.code = SW_E_INTERNAL, .status = 500, .message = "out of memory"};

static void memo_clear(sw_ack_memo_t *m) {
  free(m->serials); /* the strings are in the same block (memo_keep_serials) */
  if (m->err != &memo_oom_error) free(m->err);
  memset(m, 0, sizeof *m);
}

static sw_ack_memo_t *memo_entry(const sw_conn_t *c, size_t i) {
  return &c->memo[(c->memo_head + i) % c->memo_cap];
}

/* The entry answering msgSerial serial, or NULL (a serial the client
 * skipped, or one answered so long ago it is forgotten). Entries are in
 * msgSerial order: a binary search. */
static sw_ack_memo_t *memo_find(const sw_conn_t *c, int64_t serial, size_t *index) {
  /* Publishes are mostly answered in order: the first unanswered entry. */
  if (c->memo_answered < c->memo_len) {
    sw_ack_memo_t *e = memo_entry(c, c->memo_answered);
    if (serial >= e->serial && serial - e->serial < e->count) {
      if (index) *index = c->memo_answered;
      return e;
    }
  }
  size_t lo = 0, hi = c->memo_len;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    sw_ack_memo_t *e = memo_entry(c, mid);
    if (serial < e->serial) {
      hi = mid;
    } else if (serial - e->serial >= e->count) {
      lo = mid + 1;
    } else {
      if (index) *index = mid;
      return e;
    }
  }
  return NULL;
}

/* Appends the entry for msgSerial serial (> every serial seen), whatever
 * the client skipped before it. The ring holds at most SW_ACK_MEMORY
 * answered entries, memo_pending (<= maxPendingPublishes) accepted
 * publishes and at most one refused run after each of those, so it stays
 * under SW_ACK_MEMORY + 2 * maxPendingPublishes + 2 entries however the
 * client numbers its publishes. */
static sw_ack_memo_t *memo_push(sw_conn_t *c, int64_t serial) {
  if (c->memo_len == c->memo_cap) {
    if (c->memo_cap >= (UINT32_MAX >> 1)) return NULL; /* not reached under any sane maxPendingPublishes */
    uint32_t cap = c->memo_cap ? c->memo_cap * 2 : 16;
    sw_ack_memo_t *m = calloc(cap, sizeof *m);
    if (!m) return NULL;
    for (size_t i = 0; i < c->memo_len; i++) m[i] = *memo_entry(c, i);
    free(c->memo);
    c->memo = m;
    c->memo_cap = cap;
    c->memo_head = 0;
  }
  sw_ack_memo_t *e = memo_entry(c, c->memo_len++);
  memset(e, 0, sizeof *e);
  e->serial = serial;
  e->count = 1;
  return e;
}

static void nack(sw_conn_t *c, int64_t msg_serial, int64_t count, const sw_error_t *e);
static void ack(sw_conn_t *c, int64_t msg_serial, char **serials, size_t n);

/* The ACK of memo's publish msg_serial, its serials kept inline or not. */
static void memo_ack(sw_conn_t *c, int64_t msg_serial, sw_ack_memo_t *m) {
  char *one = m->one;
  ack(c, msg_serial, m->serials ? m->serials : m->n_serials == 1 ? &one : NULL, m->n_serials);
}

/* Sends every outcome that is known and whose predecessors are answered,
 * then forgets the oldest answered ones beyond SW_ACK_MEMORY. */
static void memo_flush(sw_conn_t *c) {
  while (c->memo_answered < c->memo_len) {
    sw_ack_memo_t *m = memo_entry(c, c->memo_answered);
    if (!m->done) break;
    /* Without a transport the client will resend, and be answered then. */
    if (c->sock) {
      if (m->err) nack(c, m->serial, m->count, m->err);
      else memo_ack(c, m->serial, m);
    }
    if (!m->refused) c->memo_pending--;
    c->memo_answered++;
  }
  while (c->memo_answered > SW_ACK_MEMORY) {
    memo_clear(memo_entry(c, 0));
    c->memo_head = (c->memo_head + 1) % c->memo_cap;
    c->memo_len--;
    c->memo_answered--;
  }
}

/* Refuses publish serial because maxPendingPublishes publishes of this
 * connection are unanswered. Its NACK still goes out in msgSerial order,
 * after theirs; refusals in a row share one entry (one NACK with a count),
 * so a flood of them costs nothing more. 42911 is Ably's code for a
 * connection publishing faster than it may ("per-connection publish rate
 * exceeded"): the client may publish again once ACKs arrive. */
static void memo_refuse(sw_conn_t *c, int64_t serial) {
  sw_ack_memo_t *last = c->memo_len > c->memo_answered ? memo_entry(c, c->memo_len - 1) : NULL;
  if (last && last->refused) {
    last->count = serial - last->serial + 1;
    return;
  }
  sw_error_t *err = malloc(sizeof *err);
  sw_ack_memo_t *e = err ? memo_push(c, serial) : NULL;
  if (!e) {
    free(err);
    conn_fail(c, SW_E_INTERNAL, "out of memory", false);
    return;
  }
  errors_set(err, 42911, "too many publishes awaiting their ACK on this connection (maxPendingPublishes %lld)",
             (long long)c->srv->cfg->limits.max_pending_publishes);
  e->err = err;
  e->done = e->refused = true;
  memo_flush(c);
}

sw_attach_t *conn_attachment(const sw_conn_t *c, const sw_channel_t *ch) {
  if (c->att_cap <= 1) return c->n_att && c->att.one->ch == ch ? c->att.one : NULL;
  for (uint32_t i = 0; i < c->n_att; i++)
    if (c->att.many[i].ch == ch) return c->att.many[i].a;
  return NULL;
}

int conn_attachment_add(sw_conn_t *c, sw_channel_t *ch, sw_attach_t *a) {
  if (c->n_att == 0 && c->att_cap <= 1) {
    c->att.one = a; /* (a->ch is ch) */
    c->att_cap = 1;
    c->n_att = 1;
    return 0;
  }
  if (c->att_cap <= 1 || c->n_att == c->att_cap) {
    uint32_t cap = c->att_cap <= 1 ? 4 : c->att_cap * 2;
    sw_attach_ref_t *v = malloc(cap * sizeof *v);
    if (!v) return -1;
    if (c->att_cap <= 1) v[0] = (sw_attach_ref_t){c->att.one->ch, c->att.one};
    else {
      memcpy(v, c->att.many, c->n_att * sizeof *v);
      free(c->att.many);
    }
    c->att.many = v;
    c->att_cap = cap;
  }
  c->att.many[c->n_att++] = (sw_attach_ref_t){ch, a};
  return 0;
}

void conn_attachment_remove(sw_conn_t *c, const sw_attach_t *a) {
  if (c->att_cap <= 1) {
    if (c->n_att && c->att.one == a) c->n_att = 0;
    return;
  }
  uint32_t i = 0;
  while (i < c->n_att && c->att.many[i].a != a) i++;
  if (i == c->n_att) return;
  memmove(c->att.many + i, c->att.many + i + 1, (c->n_att - i - 1) * sizeof *c->att.many);
  c->n_att--;
  if (c->n_att <= 1) {
    /* Back inline: a connection left with one channel holds no array. */
    sw_attach_ref_t *v = c->att.many;
    c->att.one = c->n_att ? v[0].a : NULL;
    c->att_cap = 1;
    free(v);
  }
}

void conn_destroy(sw_conn_t *c) {
  const sw_shared_ops_t *ops = c->srv->shared.ops;
  if (ops && ops->conn_forget) ops->conn_forget(c->srv->shared.impl, c->srv, c->id);
  while (c->n_att) channel_detach(conn_attachment_at(c, 0));
  if (c->sock) {
    c->sock->conn = NULL;
    sock_close(c->sock, true);
  }
  for (size_t i = 0; i < c->memo_len; i++) memo_clear(memo_entry(c, i));
  free(c->memo);
  if (c->att_cap > 1) free(c->att.many);
  map_del(&c->srv->conns, c);
  if (!c->client_id_shared) free(c->client_id);
  principal_clear(&c->auth);
  free(c);
}

/* The connection's clientId is usually its token's: then c->client_id
 * points at c->auth.client_id instead of holding a copy (32 bytes of every
 * identified connection). */
static void share_client_id(sw_conn_t *c) {
  if (c->client_id_shared || !c->client_id || !c->auth.client_id || strcmp(c->client_id, c->auth.client_id)) return;
  free(c->client_id);
  c->client_id = c->auth.client_id;
  c->client_id_shared = true;
}

/* Replaces c's credentials (resume, AUTH); c->client_id stays as it is. */
static void replace_auth(sw_conn_t *c, sw_principal_t p) {
  if (c->client_id_shared) c->auth.client_id = NULL; /* c->client_id keeps the string */
  c->client_id_shared = false;
  principal_clear(&c->auth);
  c->auth = p;
  share_client_id(c);
}

void conn_on_drain(sw_conn_t *c) {
  for (uint32_t i = 0; i < c->n_att; i++) {
    sw_attach_t *a = conn_attachment_at(c, i);
    if (attach_sr(a)->replay) channel_replay_continue(a);
  }
}

void conn_on_transport_lost(sw_conn_t *c) {
  log_ev(SW_LOG_DEBUG, "conn.transport_lost", c->id, c->app->id, 0, "transport lost; connection resumable");
  c->sock = NULL;
  c->lost_at = clock_now_ms();
  for (uint32_t i = 0; i < c->n_att; i++) {
    sw_attach_t *a = conn_attachment_at(c, i);
    /* The client re-attaches from its channelSerial on the next transport. */
    a->delivering = false;
    channel_replay_end(a);
  }
}

/* c's connectionKey, "<id>!<secret>", into out. */
static void conn_key(const sw_conn_t *c, char out[SW_CONN_ID_LEN + 18]) {
  size_t n = strnlen(c->id, SW_CONN_ID_LEN);
  memcpy(out, c->id, n);
  out[n] = '!';
  memcpy(out + n + 1, c->secret, sizeof c->secret); /* with its NUL */
}

static void send_connected(sw_conn_t *c, const sw_error_t *err) {
  const sw_limits_t *l = &c->srv->cfg->limits;
  char key[SW_CONN_ID_LEN + 18];
  conn_key(c, key);
  sw_conn_details_t d = {
      .client_id = c->client_id,
      .connection_key = key,
      .max_message_size = l->max_message_size,
      .max_frame_size = l->max_frame_size,
      .max_inbound_rate = l->max_inbound_rate,
      .connection_state_ttl = l->connection_state_ttl,
      .max_idle_interval = l->max_idle_interval,
      .server_id = c->srv->server_id,
  };
  sw_pmsg_t m = {.action = SW_ACTION_CONNECTED, .connection_id = c->id, .connection_details = &d};
  if (err) m.error = *err;
  conn_send_pmsg(c, &m);
}

/* Binds socket s to connection c (new or resumed). */
static void bind_transport(sw_conn_t *c, sw_sock_t *s, sw_format_t fmt, bool echo, bool heartbeats) {
  if (c->sock && c->sock != s) {
    /* The client gave up on its old socket before we noticed. */
    sw_sock_t *old = c->sock;
    old->conn = NULL;
    sock_close(old, false);
    conn_on_transport_lost(c); /* as if it had been noticed: no delivery until re-attach */
  }
  c->sock = s;
  s->conn = c;
  c->fmt = fmt;
  c->echo = echo;
  c->heartbeats = heartbeats;
  c->lost_at = 0;
  c->last_tx = uv_now(c->srv->loop);
}

/* Looks up a resumable connection by its connectionKey, in constant time
 * for the secret part. */
static sw_conn_t *find_by_key(sw_server_t *srv, const char *key, const sw_app_t *app) {
  const char *bang = strchr(key, '!');
  if (!bang || (size_t)(bang - key) > SW_CONN_ID_LEN) return NULL;
  char id[SW_CONN_ID_LEN + 1];
  memcpy(id, key, (size_t)(bang - key));
  id[bang - key] = '\0';
  sw_conn_t *c = conn_find(srv, id);
  if (!c || c->app != app) return NULL;
  /* The id matched exactly (the lookup); the secret in constant time. */
  const char *secret = bang + 1;
  if (strlen(secret) != strlen(c->secret) || CRYPTO_memcmp(secret, c->secret, strlen(secret)) != 0) return NULL;
  return c;
}

/* Whether key has the form of the connectionKeys this server issues,
 * "<12-character id>!<16-character secret>" (app_random_id's alphabet):
 * a resume or recover with another is 80018 (invalid connection key),
 * one of that form but unknown 80008. */
static bool key_well_formed(const char *key) {
  size_t id = strspn(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
  if (id != 12 || key[id] != '!') return false;
  const char *secret = key + id + 1;
  return strspn(secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 16 && !secret[16];
}

sw_conn_t *conn_find_by_key(sw_server_t *srv, const char *key, const sw_app_t *app) {
  return key && key_well_formed(key) ? find_by_key(srv, key, app) : NULL;
}

static bool query_flag(sw_slice_t q, const char *name, bool dflt) {
  char v[8];
  ssize_t n = url_query_get(q, name, v, sizeof v);
  if (n < 0) return dflt;
  return strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
}

/* Basic (key) auth needs TLS (RSA1): over TLS (ours, or a trusted proxy's)
 * it is allowed; over plain HTTP it is a configuration switch. */
bool conn_basic_allowed(const sw_sock_t *s, sw_error_t *err) {
  sw_basic_policy_t pol = s->srv->cfg->auth.basic;
  if (s->secure || pol == SW_BASIC_ALLOW || (pol == SW_BASIC_LOOPBACK && s->peer_loopback)) return true;
  errors_set(err, SW_E_BASIC_NEEDS_TLS, "Basic authentication over a non-TLS connection is not allowed; use a token");
  return false;
}

int conn_credentials(sw_sock_t *s, const sw_http_req_t *req, sw_principal_t *p, sw_error_t *err) {
  sw_server_t *srv = s->srv;
  /* Tokens can be large (capabilities); keys are short. */
  size_t cap = srv->cfg->auth.max_token_len ? srv->cfg->auth.max_token_len + 1 : 16385;
  char *buf = malloc(cap);
  if (!buf) return errors_set(err, SW_E_INTERNAL, "out of memory");
  /* What may hold a credential's bytes, to be wiped: the longest value
   * read, or all of buf after a value that did not fit or decode (it may
   * have been written in part). Wiping all 16 KiB per connect cost more
   * than a tenth of a connect. */
  size_t used = 1;
#define CRED_READ(call) (n = (call), used = n == -2 ? cap : n >= 0 && (size_t)n + 1 > used ? (size_t)n + 1 : used, n)
  ssize_t n;
  int rc;
  if (CRED_READ(url_query_get(req->query, "key", buf, cap)) >= 0)
    rc = conn_basic_allowed(s, err) ? principal_from_key(srv, buf, (size_t)n, p, err) : -1;
  else if (CRED_READ(url_query_get(req->query, "access_token", buf, cap)) >= 0 ||
           CRED_READ(url_query_get(req->query, "accessToken", buf, cap)) >= 0 ||
           CRED_READ(origin_cookie_get(req, srv->cfg->auth.cookie_name, buf, cap)) >= 0)
    rc = principal_from_token(srv, buf, (size_t)n, p, err);
  else if (n == -2)
    rc = errors_set(err, SW_E_INVALID_CREDENTIAL, "credential too long or malformed");
  else
    rc = errors_set(err, SW_E_INVALID_CREDENTIALS, "no credentials: give a key or a token");
#undef CRED_READ
  OPENSSL_cleanse(buf, used < cap ? used : cap);
  free(buf);
  return rc;
}

/* A fresh connectionKey for c: its id and a new random secret. */
static void new_key(sw_conn_t *c) {
  app_random_id(c->secret, 16);
}

/* Takes note of a newly adopted credential: whether conn_tick is to ask
 * for its renewal before it expires (see REAUTH_NO_PROMPT_MS). */
static void adopt_auth(sw_conn_t *c) {
  c->reauth_sent = c->auth.expires && c->auth.expires - clock_now_ms() <= REAUTH_NO_PROMPT_MS;
}

static bool same_client_id(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* What an upgrade asks for, checked: kept while a resume waits for the
 * record of a connection held by another node (conn_load). */
typedef struct upgrade {
  sw_sock_t *s;
  sw_format_t fmt;
  bool echo, heartbeats;
  bool tried_resume, bad_key, recover;
  int rollup_ms;
  int64_t remain_present;
  sw_principal_t auth; /* owned until adopted */
  char *client_id;     /* owned until adopted */
  char rkey[80];       /* the resume or recover key */
  char id[SW_CONN_ID_LEN + 1];
} upgrade_t;

static void upgrade_clear(upgrade_t *u) {
  principal_clear(&u->auth);
  free(u->client_id);
  u->client_id = NULL;
  OPENSSL_cleanse(u->rkey, sizeof u->rkey);
}

/* The hex SHA-256 of a connectionKey: what a connection record keeps, so
 * that whoever reads Redis cannot take a connection over. */
static void key_hash(const char *key, char out[65]) {
  unsigned char md[32];
  unsigned int n = 0;
  EVP_Digest(key, strlen(key), md, &n, EVP_sha256(), NULL);
  for (unsigned int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Writes c's record for the other nodes (no-op on one node). */
static void record_save(sw_conn_t *c) {
  const sw_shared_ops_t *ops = c->srv->shared.ops;
  if (!ops || !ops->conn_save) return;
  char h[65], key[SW_CONN_ID_LEN + 18];
  conn_key(c, key);
  key_hash(key, h);
  OPENSSL_cleanse(key, sizeof key);
  ops->conn_save(c->srv->shared.impl, c->srv, c->id, h, c->app->id, c->client_id);
}

/* Resumes (or recovers) connection c on u's socket. */
static void resume_on(upgrade_t *u, sw_conn_t *c) {
  sw_error_t err = {0};
  if (!same_client_id(c->client_id, u->client_id)) {
    errors_set(&err, SW_E_INCOMPATIBLE_CREDENTIALS, "a resumed connection keeps its clientId");
    upgrade_clear(u);
    refuse(u->s, u->fmt, &err);
    return;
  }
  free(u->client_id);
  u->client_id = NULL;
  replace_auth(c, u->auth);
  memset(&u->auth, 0, sizeof u->auth);
  adopt_auth(c);
  bind_transport(c, u->s, u->fmt, u->echo, u->heartbeats);
  c->append_rollup_ms = u->rollup_ms;
  c->remain_present_ms = (uint32_t)u->remain_present; /* clamped in conn_on_upgrade */
  c->presence_left = false;
  /* RTN16d: a recovered connection gets a new connectionKey, so a
   * recovery key (which holds the old one) recovers it once. A resume
   * keeps its key: a client whose CONNECTED was lost retries with it. */
  if (u->recover) {
    new_key(c);
    record_save(c);
  }
  log_ev(SW_LOG_DEBUG, "conn.resumed", c->id, c->app->id, 0, "connection resumed");
  metrics_inc(SW_M_CONNECTIONS_RESUMED);
  send_connected(c, NULL);
}

/* A new connection: id given (taken over from another node, with the
 * client's key) or made here. NULL after refusing (out of memory). */
static sw_conn_t *conn_new(upgrade_t *u, const char *id) {
  sw_server_t *srv = u->s->srv;
  sw_conn_t *c = conn_map_reserve(&srv->conns) ? NULL : calloc(1, sizeof *c);
  if (!c || (id ? (snprintf(c->id, sizeof c->id, "%s", id), 0) : app_random_id(c->id, 12))) {
    sw_error_t err;
    free(c);
    upgrade_clear(u);
    errors_set(&err, SW_E_INTERNAL, "out of memory");
    refuse(u->s, u->fmt, &err);
    return NULL;
  }
  /* Taken over: the client's key (well formed: its record matched), so
   * only its secret is kept, as for every connection. */
  if (id) snprintf(c->secret, sizeof c->secret, "%s", strchr(u->rkey, '!') + 1);
  else new_key(c);
  c->srv = srv;
  c->auth = u->auth;
  memset(&u->auth, 0, sizeof u->auth);
  c->app = c->auth.app;
  c->client_id = u->client_id;
  u->client_id = NULL;
  share_client_id(c);
  adopt_auth(c);
  map_add(&srv->conns, c);
  bind_transport(c, u->s, u->fmt, u->echo, u->heartbeats);
  c->append_rollup_ms = u->rollup_ms;
  c->remain_present_ms = (uint32_t)u->remain_present; /* clamped in conn_on_upgrade */
  return c;
}

/* A connection that could not be resumed or recovered, or none asked:
 * a new one (RTN15c7: with the reason continuity was lost). */
static void open_new(upgrade_t *u) {
  sw_conn_t *c = conn_new(u, NULL);
  if (!c) return;
  metrics_inc(SW_M_CONNECTIONS_OPENED);
  record_save(c);
  log_ev(SW_LOG_DEBUG, "conn.opened", c->id, c->app->id,
         u->bad_key ? SW_E_INVALID_CONNECTION_KEY : u->tried_resume ? SW_E_RESUME_FAILED : 0, "connection opened");
  sw_error_t err = {0};
  if (u->tried_resume) {
    if (u->bad_key) errors_set(&err, SW_E_INVALID_CONNECTION_KEY, "invalid connection key: a new connection was made");
    else errors_set(&err, SW_E_RESUME_FAILED, "unable to resume connection: not found or expired");
    send_connected(c, &err);
  } else {
    send_connected(c, NULL);
  }
}

/* ---- resume of a connection another node holds (a cluster) ----
 *
 * The socket is held (sock_ref) while its record is read and claimed;
 * both are Redis commands, bounded by its command timeout. The client
 * sends nothing before CONNECTED (RTN2), so nothing waits but the socket. */

/* Ends the wait: the socket is bound (made live) or refused by now. */
static void remote_done(upgrade_t *u) {
  sw_sock_t *s = u->s;
  if (s->conn && !s->closing) sock_ws_bound(s);
  upgrade_clear(u);
  sock_unref(s);
  free(u);
}

/* Whether the wait is still worth finishing. */
static bool remote_alive(const upgrade_t *u) {
  return !u->s->closing && !u->s->srv->shutting_down;
}

static void on_claimed(void *ud, const sw_error_t *err) {
  upgrade_t *u = ud;
  sw_server_t *srv = u->s->srv;
  if (!remote_alive(u)) {
    remote_done(u);
    return;
  }
  sw_conn_t *c = conn_find(srv, u->id);
  if (err->code) {
    open_new(u);
  } else if (c) {
    /* It came back here meanwhile: the local check, as always. */
    if (find_by_key(srv, u->rkey, u->auth.app)) resume_on(u, c);
    else open_new(u);
  } else if ((c = conn_new(u, u->id))) {
    /* The connectionId is kept (RTN15c6); channels re-attach from their
     * channelSerials (RTL4c1) and replay from the shared log. */
    log_ev(SW_LOG_DEBUG, "conn.taken_over", c->id, c->app->id, 0, "connection resumed from another node");
    metrics_inc(SW_M_CONNECTIONS_RESUMED);
    c->taken_over = srv->bus && bus_shared(srv->bus);
    if (u->recover) new_key(c);
    record_save(c);
    send_connected(c, NULL);
  }
  remote_done(u);
}

static void on_record(void *ud, const sw_conn_record_t *rec, const sw_error_t *err) {
  upgrade_t *u = ud;
  sw_server_t *srv = u->s->srv;
  if (!remote_alive(u)) {
    remote_done(u);
    return;
  }
  sw_conn_t *c = conn_find(srv, u->id);
  if (c) {
    /* It came back to this node meanwhile: the local check, as always. */
    if (find_by_key(srv, u->rkey, u->auth.app)) resume_on(u, c);
    else open_new(u);
    remote_done(u);
    return;
  }
  char h[65];
  key_hash(u->rkey, h);
  bool ok = !err->code && rec && rec->key_hash && rec->app_id && rec->node && strlen(rec->key_hash) == 64 &&
            CRYPTO_memcmp(h, rec->key_hash, 64) == 0 && strcmp(rec->app_id, u->auth.app->id) == 0;
  if (!ok) {
    open_new(u);
    remote_done(u);
    return;
  }
  if (!same_client_id(rec->client_id, u->client_id)) {
    sw_error_t e;
    errors_set(&e, SW_E_INCOMPATIBLE_CREDENTIALS, "a resumed connection keeps its clientId");
    refuse(u->s, u->fmt, &e);
    remote_done(u);
    return;
  }
  srv->shared.ops->conn_claim(srv->shared.impl, srv, u->id, rec->node, on_claimed, u);
}

/* Whether this node holds the connection key names (whatever its secret):
 * then it is this node's to answer, never another's. */
static bool conn_held(sw_server_t *srv, const char *key) {
  char id[SW_CONN_ID_LEN + 1];
  snprintf(id, sizeof id, "%.*s", (int)strcspn(key, "!"), key);
  return conn_find(srv, id) != NULL;
}

/* Asks the other nodes for connection u->rkey: true when the answer will
 * come (u is then theirs), false when there is no one to ask. */
static bool resume_remote(upgrade_t *u) {
  sw_server_t *srv = u->s->srv;
  const sw_shared_ops_t *ops = srv->shared.ops;
  if (!ops || !ops->conn_load || !ops->conn_claim) return false;
  upgrade_t *h = malloc(sizeof *h);
  if (!h) return false;
  *h = *u;
  const char *bang = strchr(h->rkey, '!');
  snprintf(h->id, sizeof h->id, "%.*s", (int)(bang - h->rkey), h->rkey);
  sock_ref(h->s);
  ops->conn_load(srv->shared.impl, srv, h->id, on_record, h);
  return true;
}

void conn_moved(sw_server_t *srv, const char *id) {
  sw_conn_t *c = conn_find(srv, id);
  if (!c) return;
  log_ev(SW_LOG_DEBUG, "conn.moved", c->id, c->app->id, 0, "connection taken over by another node");
  conn_destroy(c); /* its record is the other node's now: conn_forget leaves it */
}

void conn_on_upgrade(sw_sock_t *s, const sw_http_req_t *req) {
  sw_server_t *srv = s->srv;
  sw_slice_t q = req->query;
  sw_error_t err = {0};
  char buf[64];
  upgrade_t u = {.s = s, .fmt = SW_FMT_MSGPACK}; /* RTN2a */

  if (url_query_get(q, "format", buf, sizeof buf) >= 0) {
    if (strcmp(buf, "json") == 0) u.fmt = SW_FMT_JSON;
    else if (strcmp(buf, "msgpack") != 0) {
      errors_set(&err, SW_E_INVALID_PARAM, "unsupported format %.32s", buf);
      refuse(s, SW_FMT_JSON, &err);
      return;
    }
  }
  if (url_query_get(q, "v", buf, sizeof buf) >= 0) {
    char *end;
    double v = strtod(buf, &end);
    if (*end || end == buf || v < MIN_PROTOCOL_VERSION || v > MAX_PROTOCOL_VERSION) {
      errors_set(&err, SW_E_BAD_PROTOCOL_VERSION, "unsupported protocol version %.16s", buf);
      refuse(s, u.fmt, &err);
      return;
    }
  }

  if (conn_credentials(s, req, &u.auth, &err)) {
    refuse(s, u.fmt, &err);
    return;
  }
  char requested[256];
  ssize_t cn = url_query_get(q, "clientId", requested, sizeof requested);
  if (cn == -2) errors_set(&err, SW_E_INVALID_CLIENT_ID, "invalid clientId");
  else principal_client_id(&u.auth, cn >= 0 ? requested : NULL, &u.client_id, &err);
  if (err.code) {
    upgrade_clear(&u);
    refuse(s, u.fmt, &err);
    return;
  }
  u.echo = query_flag(q, "echo", true);
  u.heartbeats = query_flag(q, "heartbeats", false);
  u.remain_present = REMAIN_PRESENT_DEFAULT_MS;
  if (url_query_get(q, "remainPresentFor", buf, sizeof buf) > 0) {
    char *end;
    long long v = strtoll(buf, &end, 10);
    if (!*end && v >= 0) u.remain_present = v > UINT32_MAX ? UINT32_MAX : v; /* (conn.h) */
  }
  /* Ably's transportParams: {appendRollupWindow: ms} (core/rollup.h). */
  u.rollup_ms = rollup_window_param(url_query_get(q, "appendRollupWindow", buf, sizeof buf) >= 0 ? buf : NULL,
                                    (int)srv->cfg->limits.append_rollup_window);

  /* RTN15b / RTN16k: resume or recover an existing connection. A resume
   * may bring a new token (the old one may have expired, RTN15h), but not
   * another identity. A connection this node does not hold may be held by
   * another node of a cluster: its record is asked for (resume_remote). */
  sw_conn_t *c = NULL;
  ssize_t rn = url_query_get(q, "resume", u.rkey, sizeof u.rkey);
  if (rn == -1) u.recover = (rn = url_query_get(q, "recover", u.rkey, sizeof u.rkey)) != -1;
  if (rn != -1) {
    u.tried_resume = true;
    u.bad_key = rn < 0 || !key_well_formed(u.rkey);
    if (!u.bad_key) c = find_by_key(srv, u.rkey, u.auth.app);
    if (!u.bad_key && !c && !conn_held(srv, u.rkey) && resume_remote(&u)) {
      OPENSSL_cleanse(u.rkey, sizeof u.rkey); /* the copy waiting has it */
      return;
    }
  }
  if (c) resume_on(&u, c);
  else open_new(&u);
  OPENSSL_cleanse(u.rkey, sizeof u.rkey);
}

/* The name capabilities are checked against: a derived channel's base. */
static const char *cap_name(const sw_channel_t *ch) { return channel_base(ch) ? channel_base(ch)->name : ch->name; }

/* RTC8: in-band reauthorisation with a new token. The connection keeps its
 * id and clientId; the new capability applies at once, and channels it no
 * longer allows fail with 40160 while the connection stays. */
static void handle_auth(sw_conn_t *c, sw_pmsg_t *m) {
  sw_error_t err = {0};
  sw_principal_t p;
  if (!m->auth_access_token) {
    conn_fail(c, SW_E_BAD_REQUEST, "AUTH without auth.accessToken", false);
    return;
  }
  if (principal_from_token(c->srv, m->auth_access_token, strlen(m->auth_access_token), &p, &err)) {
    conn_fail(c, err.code, err.message, false);
    return;
  }
  char *id = NULL;
  if (p.app != c->app)
    errors_set(&err, SW_E_INCOMPATIBLE_CREDENTIALS, "the new token is for another app");
  else if (principal_client_id(&p, c->client_id && strcmp(c->client_id, "*") ? c->client_id : NULL, &id, &err) == 0 &&
           !same_client_id(id, c->client_id))
    errors_set(&err, SW_E_INCOMPATIBLE_CREDENTIALS, "the clientId of a connection cannot change");
  free(id);
  if (err.code) {
    principal_clear(&p);
    conn_fail(c, err.code, err.message, false);
    return;
  }
  replace_auth(c, p);
  adopt_auth(c);
  send_connected(c, NULL);
  for (uint32_t i = 0; i < c->n_att;) {
    sw_attach_t *a = conn_attachment_at(c, i);
    uint32_t ops = cap_ops_for_channel(c->auth.cap, cap_name(a->ch));
    if (ops) {
      /* The modes follow the capability both ways: a token that adds
       * publish lets an attached channel publish (as on Ably). */
      a->modes = a->requested_modes & cap_modes_for_ops(ops) & (channel_base(a->ch) ? SW_MODE_SUBSCRIBE : SW_MODE_ALL);
      i++;
      continue;
    }
    /* Detached below: the next one takes its place at i. */
    sw_error_t e;
    errors_set(&e, SW_E_CAPABILITY_DENIED, "channel denied access based on given capability; channelId = %.200s",
               a->ch->name);
    char *name = strdup(attach_wire_name(a));
    channel_detach(a);
    if (name) conn_send_channel_error(c, name, &e);
    free(name);
  }
}

static void nack(sw_conn_t *c, int64_t msg_serial, int64_t count, const sw_error_t *e) {
  sw_pmsg_t m = {.action = SW_ACTION_NACK, .msg_serial = msg_serial, .has_msg_serial = true,
                 .count = count, .has_count = true, .error = *e};
  conn_send_pmsg(c, &m);
}

static void ack(sw_conn_t *c, int64_t msg_serial, char **serials, size_t n) {
  /* msgpack, one serial: the ACK's bytes written directly (the generic
   * encoder was ~900 instructions of an AI append's ~23k). */
  uint8_t b[SW_CODEC_ACK_MAX];
  size_t len = c->sock && c->fmt == SW_FMT_MSGPACK && n == 1 ? codec_ack_msgpack(b, SW_ACTION_ACK, msg_serial, serials[0]) : 0;
  if (len) {
    sw_frame_t *f = frame_ws(SW_WS_OP_BINARY, b, len);
    if (f) conn_send_frame(c, f);
    frame_unref(f);
    return;
  }
  sw_publish_result_t res = {.serials = serials, .n_serials = n};
  sw_pmsg_t m = {.action = SW_ACTION_ACK, .msg_serial = msg_serial, .has_msg_serial = true,
                 .count = 1, .has_count = true, .res = &res, .n_res = 1};
  conn_send_pmsg(c, &m);
}

/* Copies an ACK's serials into memo: one serial that fits into memo->one
 * (a publish of one message, an AI append: no allocation at all), else one
 * allocation, the pointer array then the strings (one malloc and one free
 * instead of 1 + n of each). Out of memory, the ACK goes out without
 * serials, as before. */
static void memo_keep_serials(sw_ack_memo_t *memo, char **serials, size_t n) {
  size_t l1 = n == 1 && serials[0] ? strlen(serials[0]) : SIZE_MAX;
  if (l1 < sizeof memo->one) {
    memcpy(memo->one, serials[0], l1 + 1);
    memo->n_serials = 1;
    return;
  }
  size_t need = n * sizeof *memo->serials;
  for (size_t i = 0; i < n; i++) need += serials[i] ? strlen(serials[i]) + 1 : 0;
  char **p = malloc(need);
  if (!p) return;
  char *at = (char *)(p + n);
  for (size_t i = 0; i < n; i++) {
    size_t l = serials[i] ? strlen(serials[i]) + 1 : 0;
    p[i] = l ? memcpy(at, serials[i], l) : NULL;
    at += l;
  }
  memo->serials = p;
  memo->n_serials = n;
}

void conn_publish_done(sw_conn_t *c, int64_t msg_serial, const sw_error_t *err, char **serials,
                       size_t n) {
  sw_ack_memo_t *memo = memo_find(c, msg_serial, NULL);
  if (!memo || memo->done) return;
  memo->done = true;
  if (err && err->code) {
    memo->err = malloc(sizeof *memo->err);
    if (memo->err) *memo->err = *err;
    else memo->err = &memo_oom_error;
  } else if (n) {
    memo_keep_serials(memo, serials, n);
  }
  memo_flush(c);
}

/* Channel params (ATTACH params and the "[?k=v&...]" name qualifier) are
 * echoed in ATTACHED: their number is limits.maxChannelParams, and a name or
 * value longer than these is refused, not truncated (40003). Ably's params
 * (rewind, rewindLimit, delta, occupancy...) are short. */
#define CHANNEL_PARAM_NAME_MAX 64
#define CHANNEL_PARAM_VALUE_MAX 256
/* Ably's "too many channels" (90010, status 400): its message names the
 * per-connection limit. */
#define E_TOO_MANY_CHANNELS 90010

/* A non-negative decimal count, saturating at INT64_MAX; the end in *end. */
static int parse_count(const char *v, int64_t *n, const char **end) {
  if (*v < '0' || *v > '9') return -1;
  int64_t x = 0;
  for (; *v >= '0' && *v <= '9'; v++) x = x > (INT64_MAX - 9) / 10 ? INT64_MAX : x * 10 + (*v - '0');
  *n = x;
  *end = v;
  return 0;
}

/* Parses a rewind value: "N" messages, or "Ns"/"Nm" back in time. Bounded
 * here, never refused for being large: a count is at most max_count (Ably
 * sends at most 100 messages), a duration at most max_ms (the channel's
 * retention: nothing older is kept). */
static int parse_rewind(const char *v, int64_t max_count, int64_t max_ms, int64_t *count, int64_t *ms) {
  const char *end;
  int64_t n;
  if (parse_count(v, &n, &end)) return -1;
  if (*end == '\0') *count = n > max_count ? max_count : n;
  else if (strcmp(end, "s") == 0) *ms = n > max_ms / 1000 ? max_ms : n * 1000;
  else if (strcmp(end, "m") == 0) *ms = n > max_ms / 60000 ? max_ms : n * 60000;
  else return -1;
  return 0;
}

/* The params of an ATTACH: the name qualifier's, overridden by the ATTACH
 * message's (TR4q), each bounded before it is copied. NULL with err set
 * when refused (or *out NULL and no error when there are none). */
static int attach_params(const sw_conn_t *c, const sw_pmsg_t *m, const sw_channel_name_t *parts, json_t **out,
                         sw_error_t *err) {
  size_t max = (size_t)c->srv->cfg->limits.max_channel_params;
  json_t *params = NULL;
  *out = NULL;
  if (m->params && !json_is_object(m->params))
    return errors_set(err, SW_E_INVALID_PARAM, "channel params must be an object of strings");
  if (json_object_size(m->params) > max)
    return errors_set(err, SW_E_INVALID_PARAM, "too many channel params (at most %zu)", max);
  const char *k;
  json_t *v;
  json_object_foreach(m->params, k, v) {
    if (!json_is_string(v) || strlen(k) > CHANNEL_PARAM_NAME_MAX || json_string_length(v) > CHANNEL_PARAM_VALUE_MAX)
      return errors_set(err, SW_E_INVALID_PARAM,
                        "invalid channel param %.64s: a string, name up to %d bytes, value up to %d", k,
                        CHANNEL_PARAM_NAME_MAX, CHANNEL_PARAM_VALUE_MAX);
  }
  if (parts->params_len) {
    sw_slice_t qs = {m->channel + parts->params_off, parts->params_len};
    size_t pos = 0, n = 0;
    sw_slice_t pn, pv;
    if (!(params = json_object())) return errors_set(err, SW_E_INTERNAL, "out of memory");
    while (url_query_next(qs, &pos, &pn, &pv) == 1) {
      char kb[CHANNEL_PARAM_NAME_MAX + 1], vb[CHANNEL_PARAM_VALUE_MAX + 1];
      if (++n > max || url_decode(pn.p, pn.n, kb, sizeof kb, true) < 0 ||
          url_decode(pv.p, pv.n, vb, sizeof vb, true) < 0) {
        json_decref(params);
        return errors_set(err, SW_E_INVALID_PARAM,
                          "invalid channel params qualifier: at most %zu params, names up to %d bytes, values up to %d",
                          max, CHANNEL_PARAM_NAME_MAX, CHANNEL_PARAM_VALUE_MAX);
      }
      json_object_set_new(params, kb, json_string(vb));
    }
  }
  if (m->params) {
    if (!params) params = json_object();
    json_object_update(params, m->params);
  }
  /* Each side is bounded; so is their union, but keep the rule exact. */
  if (json_object_size(params) > max) {
    json_decref(params);
    return errors_set(err, SW_E_INVALID_PARAM, "too many channel params (at most %zu)", max);
  }
  *out = params;
  return 0;
}

/* RTL4k1: ATTACHED echoes the params the server recognises, not others
 * (as Ably drops them), and only those reach channel_attach. "delta"
 * ("vcdiff") asks for deltas (core/delta.c); "occupancy" subscribes to
 * [meta]occupancy events (channel.c). NULL when none is left. */
static json_t *recognised_params(const json_t *params) {
  static const char *const known[] = {"rewind", "rewindLimit", "delta", "modes", "occupancy"};
  json_t *out = NULL;
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
    json_t *v = json_object_get(params, known[i]);
    if (!v) continue;
    if (!out && !(out = json_object())) return NULL;
    json_object_set(out, known[i], v);
  }
  return out;
}

/* The channel modes named in a "modes" channel param: a comma-separated
 * list of TB2d ChannelMode names, in lower case as ably-js writes them
 * ("subscribe,presence_subscribe"). Returns -1 for a name it does not
 * know. */
static int parse_modes(const char *v, uint32_t *modes) {
  static const struct {
    const char *name;
    uint32_t mode;
  } names[] = {
      {"presence", SW_MODE_PRESENCE},
      {"publish", SW_MODE_PUBLISH},
      {"subscribe", SW_MODE_SUBSCRIBE},
      {"presence_subscribe", SW_MODE_PRESENCE_SUBSCRIBE},
      {"annotation_publish", SW_MODE_ANNOTATION_PUBLISH},
      {"annotation_subscribe", SW_MODE_ANNOTATION_SUBSCRIBE},
      {"object_subscribe", SW_MODE_OBJECT_SUBSCRIBE},
      {"object_publish", SW_MODE_OBJECT_PUBLISH},
  };
  uint32_t m = 0;
  while (*v) {
    size_t n = strcspn(v, ",");
    size_t i = 0;
    while (i < sizeof names / sizeof names[0] && !(strlen(names[i].name) == n && strncasecmp(names[i].name, v, n) == 0))
      i++;
    if (i == sizeof names / sizeof names[0]) return -1;
    m |= names[i].mode;
    v += n;
    if (*v == ',') v++;
  }
  *modes = m;
  return 0;
}

/* The rewind of an ATTACH (the channel param "rewind", with
 * "rewindLimit" for a time rewind): at most maxRewind messages, never
 * further back than the channel's retention. */
static int attach_rewind(const sw_conn_t *c, const sw_channel_t *ch, json_t *params, sw_attach_req_t *req,
                         sw_error_t *err) {
  const char *rewind = json_string_value(json_object_get(params, "rewind"));
  const char *limit = json_string_value(json_object_get(params, "rewindLimit"));
  int64_t max = c->srv->cfg->limits.max_rewind, lim = max;
  const char *end;
  if (!rewind) return 0;
  if (limit && (parse_count(limit, &lim, &end) || *end))
    return errors_set(err, SW_E_INVALID_PARAM, "invalid rewindLimit parameter %.32s", limit);
  if (lim > max) lim = max;
  if (parse_rewind(rewind, lim, ch->ns->retention_ms, &req->rewind_count, &req->rewind_ms))
    return errors_set(err, SW_E_INVALID_PARAM, "invalid rewind parameter %.32s", rewind);
  /* A time rewind sends the latest lim messages of its period; "0s",
   * "0m", "0" and rewindLimit=0 send nothing. */
  if (req->rewind_ms >= 0) req->rewind_count = req->rewind_ms > 0 ? lim : 0;
  if (req->rewind_count == 0) req->rewind_ms = -1;
  return 0;
}

/* Resolves and checks a channel named in a protocol message: the name may
 * carry channel params ("[?rewind=1]name"); the channel is the plain name.
 * On error fills err and returns NULL. */
static sw_channel_t *resolve_channel(sw_conn_t *c, const char *name, sw_channel_name_t *parts,
                                     sw_error_t *err) {
  if (!name) {
    errors_set(err, SW_E_INVALID_CHANNEL, "channel name missing");
    return NULL;
  }
  if (channel_name_validate(name, strlen(name), parts, err)) return NULL;
  if (parts->kind != SW_CHAN_PLAIN) {
    errors_set(err, SW_E_INVALID_CHANNEL, parts->kind == SW_CHAN_FILTER
                                              ? "a derived channel can only be attached to and subscribed to"
                                              : "metachannels are not supported");
    return NULL;
  }
  sw_channel_t *ch = channel_get(c->srv, c->app, name + parts->name_off);
  if (!ch) errors_set(err, SW_E_INTERNAL, "out of memory");
  return ch;
}

/* The existing channel a validated name designates: the plain channel, or
 * for "[filter=...]name" the derived channel. NULL if there is none. */
static sw_channel_t *find_named(sw_conn_t *c, const char *name, const sw_channel_name_t *parts) {
  if (parts->kind == SW_CHAN_FILTER)
    return channel_find_derived(c->srv, c->app, name + parts->name_off, name + parts->filter_off, parts->filter_len);
  return channel_find(c->srv, c->app, name + parts->name_off);
}

/* The channel an ATTACH names: as resolve_channel, and a derived channel
 * ("[filter=<base64>]name", RTS5) too, made on first use. */
static sw_channel_t *resolve_attach(sw_conn_t *c, const char *name, sw_channel_name_t *parts, sw_error_t *err) {
  if (name && channel_name_validate(name, strlen(name), parts, NULL) == 0 && parts->kind == SW_CHAN_FILTER)
    return channel_get_derived(c->srv, c->app, name + parts->name_off, name + parts->filter_off, parts->filter_len,
                               err);
  return resolve_channel(c, name, parts, err);
}

/* Whether an ATTACH would add an attachment beyond
 * maxChannelsPerConnection: checked before the channel is created. A
 * re-attach of an attached channel adds none. */
static bool attach_over_limit(sw_conn_t *c, const char *name) {
  if ((size_t)c->n_att < (size_t)c->srv->cfg->limits.max_channels_per_connection) return false;
  sw_channel_name_t parts;
  if (!name || channel_name_validate(name, strlen(name), &parts, NULL)) return false; /* refused anyway */
  sw_channel_t *ch = find_named(c, name, &parts);
  return !ch || !conn_attachment(c, ch);
}

static void handle_attach(sw_conn_t *c, sw_pmsg_t *m) {
  sw_error_t err = {0};
  sw_channel_name_t parts;
  if (attach_over_limit(c, m->channel)) {
    errors_set(&err, E_TOO_MANY_CHANNELS, "Maximum number of channels per connection (%lld) exceeded",
               (long long)c->srv->cfg->limits.max_channels_per_connection);
    goto fail;
  }
  sw_channel_t *ch = resolve_attach(c, m->channel, &parts, &err);
  if (!ch) goto fail;
  uint32_t ops = cap_ops_for_channel(c->auth.cap, cap_name(ch));
  /* A derived channel only delivers messages: it needs subscribe. */
  if (channel_base(ch) && !(cap_modes_for_ops(ops) & SW_MODE_SUBSCRIBE)) ops = 0;
  if (!ops) {
    errors_set(&err, SW_E_CAPABILITY_DENIED, "channel denied access based on given capability; channelId = %.200s",
               cap_name(ch));
    goto fail;
  }
  if (ch->ns->identified && (!c->client_id || strcmp(c->client_id, "*") == 0)) {
    errors_set(&err, 40161, "namespace %s requires an identified client", ch->ns->id);
    goto fail;
  }
  if (app_namespace_transport_check(ch->ns, c->sock && c->sock->secure, &err)) goto fail;
  sw_attach_req_t req = {.channel_serial = m->channel_serial, .rewind_count = -1, .rewind_ms = -1};
  json_t *params;
  if (attach_params(c, m, &parts, &params, &err)) goto fail;
  /* The "modes" channel param, when given, names the modes requested in
   * place of the ATTACH flags (ably-js sends flags for ChannelOptions.modes
   * and this param for params.modes). */
  uint32_t requested = m->has_flags ? (uint32_t)m->flags & SW_MODE_ALL : 0;
  const char *modes = json_string_value(json_object_get(params, "modes"));
  if (modes && parse_modes(modes, &requested))
    errors_set(&err, SW_E_INVALID_PARAM, "invalid modes parameter %.64s", modes);
  if (!requested) requested = DEFAULT_MODES;
  req.modes = requested & cap_modes_for_ops(ops);
  if (channel_base(ch)) req.modes &= SW_MODE_SUBSCRIBE; /* a derived channel delivers messages, nothing else */
  if (err.code || attach_rewind(c, ch, params, &req, &err)) {
    json_decref(params);
    goto fail;
  }
  /* RTL4j: ATTACH_RESUME marks a reattach of a channel the client had
   * attached; it has had the rewind already, so, as on Ably, it is not
   * replayed again (RTL4j2). The param is still checked above. */
  if (m->has_flags && (m->flags & SW_FLAG_ATTACH_RESUME)) req.rewind_count = req.rewind_ms = -1;
  req.params = recognised_params(params);
  req.channel_name = m->channel;
  if (channel_attach(ch, c, &req) == 0) {
    sw_attach_t *a = conn_attachment(c, ch);
    if (a) a->requested_modes = requested;
  }
  json_decref(req.params);
  json_decref(params);
  return;
fail:
  conn_send_channel_error(c, m->channel, &err);
}

static void handle_detach(sw_conn_t *c, sw_pmsg_t *m) {
  if (!m->channel) {
    conn_fail(c, SW_E_BAD_REQUEST, "DETACH without channel", false);
    return;
  }
  sw_channel_name_t parts;
  sw_channel_t *ch = NULL;
  if (channel_name_validate(m->channel, strlen(m->channel), &parts, NULL) == 0) ch = find_named(c, m->channel, &parts);
  sw_attach_t *a = ch ? conn_attachment(c, ch) : NULL;
  if (a) channel_detach(a);
  sw_pmsg_t r = {.action = SW_ACTION_DETACHED, .channel = m->channel};
  conn_send_pmsg(c, &r);
}

/* A client's SYNC asks for the presence set again (ably-js channel.sync(),
 * RTP19): sent as on attach, to an attachment with PRESENCE_SUBSCRIBE. A
 * SYNC for a channel not attached (or without that mode) has nothing to
 * answer and is ignored: it is no reason to end the connection. */
static void handle_sync(sw_conn_t *c, sw_pmsg_t *m) {
  sw_channel_name_t parts;
  sw_channel_t *ch = NULL;
  if (m->channel && channel_name_validate(m->channel, strlen(m->channel), &parts, NULL) == 0)
    ch = find_named(c, m->channel, &parts);
  sw_attach_t *a = ch ? conn_attachment(c, ch) : NULL;
  if (a && a->delivering && (a->modes & SW_MODE_PRESENCE_SUBSCRIBE)) presence_sync_requested(ch, a);
}

/* Takes msgSerial serial for a new publish (MESSAGE, PRESENCE, ANNOTATION,
 * OBJECT), or answers a resend: RTN19a2, a publish resent after resume is
 * answered, never applied twice; one still in flight is answered when it
 * completes. A publish over maxPendingPublishes is refused here (NACK 42911,
 * in order). Returns false when there is nothing more to do. */
static bool accept_serial(sw_conn_t *c, int64_t serial) {
  if (serial < 0 || serial > SW_MAX_MSG_SERIAL) {
    conn_fail(c, SW_E_INVALID_PARAM, "msgSerial out of range (0 to 2^53-1)", false);
    return false;
  }
  if (serial < c->next_msg_serial) {
    size_t i;
    sw_ack_memo_t *memo = memo_find(c, serial, &i);
    if (memo && i < c->memo_answered) {
      if (memo->err) nack(c, serial, 1, memo->err);
      else memo_ack(c, serial, memo);
    }
    return false;
  }
  c->next_msg_serial = serial + 1;
  if (c->memo_pending >= (size_t)c->srv->cfg->limits.max_pending_publishes) {
    memo_refuse(c, serial);
    return false;
  }
  if (!memo_push(c, serial)) {
    conn_fail(c, SW_E_INTERNAL, "out of memory", false);
    return false;
  }
  c->memo_pending++;
  return true;
}

/* JWT channel claims (ably.channel.<resource>) are stamped by the server
 * into extras.userClaim; a client cannot set that field itself. Nor
 * extras.delta: the server writes it on delta-encoded messages (RTL19), and
 * a forged one makes every ably-js subscriber fail to decode and re-attach. */
static void stamp_user_claim(sw_conn_t *c, const sw_channel_t *ch, sw_msg_t *msg) {
  if (msg->extras) {
    json_object_del(msg->extras, "userClaim");
    json_object_del(msg->extras, "delta");
  }
  json_t *claim = principal_channel_claim(&c->auth, ch->name);
  if (!claim) return;
  if (!msg->extras) msg->extras = json_object();
  if (msg->extras) json_object_set(msg->extras, "userClaim", claim);
}

/* ---- RTN19a2 after a take-over ----
 *
 * A connection taken over from a node that died may have publishes that
 * node stored without answering; ably-js resends them (RTN19a) with their
 * msgSerials, first, in order. Their ids are the server's
 * (connectionId:msgSerial:index, the same on every node), not in the
 * idempotency window (which holds ids clients chose), so each publish of
 * such a connection is first looked for among the channel's latest
 * RESEND_LOOKBACK messages: found, it is answered with its serials and not
 * stored again; the first one not found ends the checks (what the dead
 * node had not stored is a prefix it never reached). Publishes arriving
 * while checks are in flight are checked too, so that they stay in order
 * (a bus's reads answer in order). */
#define RESEND_LOOKBACK 1000

typedef struct resend {
  sw_server_t *srv;
  sw_app_t *app; /* never freed while the server runs */
  char conn_id[SW_CONN_ID_LEN + 1];
  char *channel;
  int64_t msg_serial;
  sw_msg_t *msgs; /* owned until published or answered */
  size_t n;
} resend_t;

static void resend_free(resend_t *r) {
  if (r->msgs) {
    for (size_t i = 0; i < r->n; i++) msg_clear(&r->msgs[i]);
    free(r->msgs);
  }
  free(r->channel);
  free(r);
}

/* The seq of the message whose id is id among rows, or -1. */
static int64_t rows_find_id(const sw_store_rows_t *rows, const char *id) {
  size_t idn = strlen(id);
  for (size_t i = 0; rows && i < rows->n; i++) {
    const sw_store_row_t *row = &rows->rows[i];
    if (!row->blob || !memmem(row->blob, row->blob_len, id, idn)) continue;
    sw_msg_t m = {0};
    bool same = codec_msg_from_blob(row->blob, row->blob_len, &m) == 0 && m.id && strcmp(m.id, id) == 0;
    msg_clear(&m);
    if (same) return row->seq;
  }
  return -1;
}

static void on_resend_read(void *ud, const sw_error_t *err, sw_store_rows_t *rows, int64_t cursor, bool more) {
  resend_t *r = ud;
  (void)cursor, (void)more;
  sw_conn_t *c = conn_find(r->srv, r->conn_id);
  char id[SW_CONN_ID_LEN + 48];
  snprintf(id, sizeof id, "%s:%lld:0", r->conn_id, (long long)r->msg_serial);
  int64_t seq = !err && c ? rows_find_id(rows, id) : -1;
  store_rows_free(rows);
  if (!c) {
    resend_free(r);
    return;
  }
  c->resend_checks--;
  if (seq >= 0) {
    /* Stored by the node that died: answered with its serials (the
     * messages of one publish are consecutive). */
    char bufs[r->n][SW_SERIAL_LEN + 1];
    char *serials[r->n];
    for (size_t i = 0; i < r->n; i++) {
      serial_format(seq + (int64_t)i, bufs[i]);
      serials[i] = bufs[i];
    }
    log_ev(SW_LOG_INFO, "conn.resend_answered", c->id, c->app->id, 0,
           "a resent publish the previous node had stored: answered, not stored again (RTN19a2)");
    conn_publish_done(c, r->msg_serial, NULL, serials, r->n);
    resend_free(r);
    return;
  }
  c->taken_over = false;
  sw_error_t perr = {0};
  sw_channel_t *ch = channel_get(r->srv, r->app, r->channel);
  sw_publisher_t who = {.conn_id = c->id, .msg_serial = r->msg_serial, .principal = &c->auth};
  sw_msg_t *msgs = r->msgs;
  r->msgs = NULL;
  if (!ch) {
    for (size_t i = 0; i < r->n; i++) msg_clear(&msgs[i]);
    free(msgs);
    errors_set(&perr, SW_E_INTERNAL, "out of memory");
    conn_publish_done(c, r->msg_serial, &perr, NULL, 0);
  } else if (channel_publish(ch, msgs, r->n, &who, &perr)) {
    conn_publish_done(c, r->msg_serial, &perr, NULL, 0);
  }
  resend_free(r);
}

/* Starts the check of a publish (msgs owned by it from now): true, or
 * false when it cannot (the caller publishes at once). */
static bool resend_check(sw_conn_t *c, sw_channel_t *ch, sw_msg_t *msgs, size_t n, int64_t serial) {
  sw_server_t *srv = c->srv;
  if (!srv->bus || !bus_shared(srv->bus) || c->resend_checks == UINT16_MAX || n > 1000) return false;
  resend_t *r = calloc(1, sizeof *r);
  if (!r || !(r->channel = strdup(ch->name))) {
    free(r);
    return false;
  }
  r->srv = srv;
  r->app = c->app;
  snprintf(r->conn_id, sizeof r->conn_id, "%s", c->id);
  r->msg_serial = serial;
  sw_bus_range_t q = {.app_id = c->app->id, .channel = ch->name, .after_seq = -1, .before_seq = INT64_MAX,
                      .forwards = false, .limit = RESEND_LOOKBACK, .now = clock_now_ms(), .end = INT64_MAX};
  sw_error_t err = {0};
  c->resend_checks++;
  r->msgs = msgs;
  r->n = n;
  if (bus_read(srv->bus, &q, on_resend_read, r, &err)) {
    /* Not asked: nothing to wait for (the read's callback never runs). */
    c->resend_checks--;
    r->msgs = NULL;
    resend_free(r);
    return false;
  }
  return true;
}

static void handle_message(sw_conn_t *c, sw_pmsg_t *m) {
  sw_error_t err = {0};
  if (!m->has_msg_serial) {
    conn_fail(c, SW_E_BAD_REQUEST, "MESSAGE without msgSerial", false);
    return;
  }
  int64_t serial = m->msg_serial;
  if (!accept_serial(c, serial)) return;

  sw_channel_name_t parts;
  sw_channel_t *ch = resolve_channel(c, m->channel, &parts, &err);
  if (!ch) goto fail;
  sw_attach_t *a = conn_attachment(c, ch);
  if (m->n_messages == 1 && m->messages[0].action > 0) {
    /* RTL32: an update, delete or append of an earlier message; its own
     * capabilities (message-update/delete-own/any) apply, not publish. */
    sw_msg_t *msg = &m->messages[0];
    if (msg_size(msg) > (size_t)c->srv->cfg->limits.max_message_size) {
      errors_set(&err, SW_E_MESSAGE_TOO_LARGE, "message size exceeds maxMessageSize");
      goto fail;
    }
    free(msg->connection_id);
    msg->connection_id = strdup(c->id);
    if (msg->extras) json_object_del(msg->extras, "userClaim");
    sw_publisher_t who = {.conn_id = c->id, .msg_serial = serial};
    sw_msg_t one = *msg;
    memset(msg, 0, sizeof *msg);
    if (mutation_apply(ch, &c->auth, c->client_id, &one, &who, &err)) goto fail;
    return;
  }
  if (!cap_allows(c->auth.cap, ch->name, SW_OP_PUBLISH)) {
    errors_set(&err, SW_E_CAPABILITY_DENIED, "unable to publish: permission denied; channel = %.200s", ch->name);
    goto fail;
  }
  if (a && !(a->modes & SW_MODE_PUBLISH)) {
    errors_set(&err, SW_E_MODE_NOT_REQUESTED, "channel attached without the publish mode");
    goto fail;
  }
  if (m->n_messages == 0) {
    errors_set(&err, SW_E_BAD_REQUEST, "MESSAGE without messages");
    goto fail;
  }
  size_t total = 0;
  int64_t now = clock_now_ms();
  for (size_t i = 0; i < m->n_messages; i++) {
    sw_msg_t *msg = &m->messages[i];
    total += msg_size(msg);
    if (msg->action > 0) {
      errors_set(&err, SW_E_BAD_REQUEST, "a message update, delete or append must be published alone");
      goto fail;
    }
    if (principal_check_message_client_id(&c->auth, c->client_id, &msg->client_id, &err)) goto fail;
    stamp_user_claim(c, ch, msg);
    /* channel_publish gives it this connection's id (who.conn_id). */
    free(msg->connection_id);
    msg->connection_id = NULL;
    if (!msg->timestamp) msg->timestamp = now;
    msg->action = 0; /* TM5 message.create */
  }
  if (total > (size_t)c->srv->cfg->limits.max_message_size) {
    errors_set(&err, SW_E_MESSAGE_TOO_LARGE, "message size %zu exceeds maxMessageSize %lld", total,
               (long long)c->srv->cfg->limits.max_message_size);
    goto fail;
  }
  sw_publisher_t who = {.conn_id = c->id, .msg_serial = serial, .principal = &c->auth};
  sw_msg_t *msgs = m->messages;
  size_t n = m->n_messages;
  m->messages = NULL;
  m->n_messages = 0;
  if ((c->taken_over || c->resend_checks) && !msgs[0].id && resend_check(c, ch, msgs, n, serial)) return;
  if (channel_publish(ch, msgs, n, &who, &err)) goto fail;
  return;
fail:
  conn_publish_done(c, serial, &err, NULL, 0);
}

static void handle_presence(sw_conn_t *c, sw_pmsg_t *m) {
  sw_error_t err = {0};
  if (!m->has_msg_serial) {
    conn_fail(c, SW_E_BAD_REQUEST, "PRESENCE without msgSerial", false);
    return;
  }
  int64_t serial = m->msg_serial;
  if (!accept_serial(c, serial)) return;
  sw_channel_name_t parts;
  sw_channel_t *ch = resolve_channel(c, m->channel, &parts, &err);
  if (!ch || presence_publish(ch, c, m, &err)) conn_publish_done(c, serial, &err, NULL, 0);
}

/* Annotations (RTAN1): stored with the message they annotate, summarised
 * into its head, delivered when durable (core/annotation.h). */
static void handle_annotation(sw_conn_t *c, sw_pmsg_t *m) {
  sw_error_t err = {0};
  if (!m->has_msg_serial) {
    conn_fail(c, SW_E_BAD_REQUEST, "ANNOTATION without msgSerial", false);
    return;
  }
  int64_t serial = m->msg_serial;
  if (!accept_serial(c, serial)) return;
  sw_channel_name_t parts;
  sw_channel_t *ch = resolve_channel(c, m->channel, &parts, &err);
  sw_attach_t *a = ch ? conn_attachment(c, ch) : NULL;
  if (ch && a && ch->mutable_messages && !(a->modes & SW_MODE_ANNOTATION_PUBLISH) && cap_allows(c->auth.cap, ch->name, SW_OP_ANNOTATION_PUBLISH))
    errors_set(&err, SW_E_MODE_NOT_REQUESTED, "channel attached without the annotation_publish mode");
  if (err.code) {
    conn_publish_done(c, serial, &err, NULL, 0);
    return;
  }
  for (size_t i = 0; i < m->n_annotations; i++) {
    char id[96];
    snprintf(id, sizeof id, "%s:%lld:%zu", c->id, (long long)serial, i);
    free(m->annotations[i].id);
    m->annotations[i].id = strdup(id);
  }
  sw_publisher_t who = {.conn_id = c->id, .msg_serial = serial};
  sw_msg_t *anns = m->annotations;
  size_t n = m->n_annotations;
  m->annotations = NULL;
  m->n_annotations = 0;
  if (annotation_publish(ch, &c->auth, c->client_id, anns, n, &who, &err)) conn_publish_done(c, serial, &err, NULL, 0);
}

void conn_on_ws_message(sw_conn_t *c, const uint8_t *p, size_t n, bool is_text) {
  sw_pmsg_t m = {0};
  sw_error_t err = {0};
  if (codec_decode_pmsg(c->fmt, p, n, &m, &err)) {
    conn_fail(c, err.code ? err.code : SW_E_BAD_REQUEST, err.message, false);
    return;
  }
  switch (m.action) {
  case SW_ACTION_HEARTBEAT: {
    sw_pmsg_t r = {.action = SW_ACTION_HEARTBEAT, .id = m.id};
    conn_send_pmsg(c, &r);
    break;
  }
  case SW_ACTION_CLOSE: {
    sw_pmsg_t r = {.action = SW_ACTION_CLOSED};
    conn_send_pmsg(c, &r);
    sw_sock_t *s = c->sock;
    s->conn = NULL;
    c->sock = NULL;
    sock_close(s, true);
    log_ev(SW_LOG_DEBUG, "conn.closed", c->id, c->app->id, 0, "connection closed by the client");
    conn_destroy(c); /* RTN12: a closed connection cannot be resumed */
    break;
  }
  case SW_ACTION_DISCONNECT:
    sock_close(c->sock, true);
    break;
  case SW_ACTION_ATTACH:
    handle_attach(c, &m);
    break;
  case SW_ACTION_DETACH:
    handle_detach(c, &m);
    break;
  case SW_ACTION_MESSAGE:
    handle_message(c, &m);
    break;
  case SW_ACTION_PRESENCE:
    handle_presence(c, &m);
    break;
  case SW_ACTION_ANNOTATION:
    handle_annotation(c, &m);
    break;
  case SW_ACTION_OBJECT: {
    sw_error_t e;
    errors_set(&e, SW_E_BAD_REQUEST, "action %d is not supported by this server yet", m.action);
    if (!m.has_msg_serial) conn_send_channel_error(c, m.channel, &e);
    else if (accept_serial(c, m.msg_serial)) conn_publish_done(c, m.msg_serial, &e, NULL, 0);
    break;
  }
  case SW_ACTION_AUTH:
    handle_auth(c, &m);
    break;
  case SW_ACTION_SYNC:
    handle_sync(c, &m);
    break;
  default: {
    char msg[64];
    snprintf(msg, sizeof msg, "unexpected protocol action %d", m.action);
    conn_fail(c, SW_E_BAD_REQUEST, msg, false);
  }
  }
  pmsg_free(&m);
}

/* The ticks between two renewals of a connection's record: half
 * connectionStateTtl (conn_touch, core/shared.h). Connections are spread
 * over the period by their hash, so renewals are even, without a field. */
static uint64_t touch_period(const sw_server_t *srv) {
  uint64_t p = (uint64_t)srv->cfg->limits.connection_state_ttl / 2 / CONN_TICK_MS;
  return p ? p : 1;
}

void conn_tick(sw_server_t *srv, uint64_t now_loop, int64_t now_ms) {
  const sw_limits_t *l = &srv->cfg->limits;
  const sw_shared_ops_t *ops = srv->shared.ops;
  uint64_t period = touch_period(srv);
  sw_conn_t *c;
  SW_CONNS_EACH(&srv->conns, c) {
    if (ops && ops->conn_touch && (srv->tick_count + id_hash(c->id)) % period == 0)
      ops->conn_touch(srv->shared.impl, srv, c->id);
    if (c->sock && c->auth.expires) {
      /* RTN22: ask for a new token before this one expires (unless it was
       * adopted near expiry: adopt_auth); RTN15h: at expiry, DISCONNECTED
       * 40142 so the SDK renews and resumes. */
      int64_t ttl = c->auth.expires - c->auth.issued;
      int64_t margin = srv->cfg->auth.reauth_margin_ms;
      if (ttl > 0 && margin > ttl / 3) margin = ttl / 3;
      if (now_ms >= c->auth.expires) {
        conn_fail(c, SW_E_TOKEN_EXPIRED, "token expired", true);
        continue;
      }
      if (!c->reauth_sent && now_ms >= c->auth.expires - margin) {
        sw_pmsg_t r = {.action = SW_ACTION_AUTH};
        conn_send_pmsg(c, &r);
        c->reauth_sent = true;
      }
    }
    sw_error_t rerr;
    if (c->sock && srv->revocations.n && principal_revoked(srv, &c->auth, now_ms, &rerr)) {
      conn_fail(c, rerr.code, rerr.message, true);
      continue;
    }
    if (c->sock) {
      /* RTN23: keep the client's idle timer from firing. */
      if (now_loop - c->last_tx + 1000 >= (uint64_t)l->max_idle_interval) {
        if (c->heartbeats) {
          sw_pmsg_t hb = {.action = SW_ACTION_HEARTBEAT};
          conn_send_pmsg(c, &hb);
        } else {
          sw_frame_t *ping = frame_ws(SW_WS_OP_PING, NULL, 0);
          if (ping) conn_send_frame(c, ping);
          frame_unref(ping);
        }
      }
    } else if (now_ms - c->lost_at > l->connection_state_ttl) {
      log_ev(SW_LOG_DEBUG, "conn.expired", c->id, c->app->id, 0, "connection state expired");
      conn_destroy(c);
    } else if (!c->presence_left && now_ms - c->lost_at >= (int64_t)c->remain_present_ms) {
      /* Its members leave now; if it resumes later, its channels re-attach
       * without RESUMED so that the client enters them again (RTP17i). */
      c->presence_left = true;
      for (uint32_t i = 0; i < c->n_att; i++) {
        sw_attach_t *a = conn_attachment_at(c, i);
        if (presence_leave_conn(a->ch, c->id)) a->presence_lost = true;
      }
    }
  }
}
