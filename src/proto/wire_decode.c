/* wire_decode.c: a parsed JSON or msgpack tree (wire_val_t views) onto the
 * pmsg.h structs, shared by both formats so that the two protocols accept
 * exactly the same messages.
 *
 * Every function here either succeeds or returns -1 with *err set; the root
 * callbacks release whatever was filled in before a failure. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/textenc.h"
#include "proto/wire.h"
#include "util/zalloc.h"

/* Decode options. */
enum { RD_RAW_DATA = 1 }; /* blob: data is stored canonical, no base64 step */

/* The field checks (WIRE_KEY_IS, wire_bad_field, wire_take_i64...) are in
 * wire.h, shared with the C client's receive path. */
#define KEY_IS WIRE_KEY_IS
#define bad_field wire_bad_field
#define no_memory wire_no_memory
#define take_i64 wire_take_i64
#define take_int wire_take_int
#define want_array wire_want_array

static char *dup_bytes(const char *p, size_t n) {
  char *s = malloc(n + 1);
  if (!s) return NULL;
  memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

/* Ids, names and the like (see wire_check_str). A repeated key (possible in
 * msgpack maps) is malformed rather than leaked. */
static int take_str(const wire_val_t *v, const char *field, char **dst, sw_error_t *err) {
  if (wire_check_str(v, field, *dst != NULL, err)) return -1;
  if (v->kind == WIRE_NIL) return 0;
  if (!(*dst = dup_bytes(v->s.p, v->s.len))) return no_memory(err);
  return 0;
}

static int take_object(const wire_val_t *v, const char *field, json_t **dst, sw_error_t *err) {
  if (wire_check_object(v, field, *dst != NULL, err)) return -1;
  if (v->kind == WIRE_NIL) return 0;
  return (*dst = v->ops->to_json(v, err)) ? 0 : -1;
}

/* TR4q: params is an object of strings; ably-js sends a number as it was
 * given (channels.get(name, {params: {rewind: 1}})), so numbers and
 * booleans become their string form and null means no param, as Ably
 * takes them. Other values are left for the receiver to refuse (an ATTACH
 * fails alone, 40003: the connection need not). */
static int take_params(const wire_val_t *v, json_t **dst, sw_error_t *err) {
  if (take_object(v, "params", dst, err)) return -1;
  const char *k;
  json_t *val, *tmp;
  json_object_foreach_safe(*dst, tmp, k, val) {
    char s[32];
    if (json_is_null(val)) {
      json_object_del(*dst, k);
      continue;
    }
    if (json_is_integer(val)) snprintf(s, sizeof s, "%" JSON_INTEGER_FORMAT, json_integer_value(val));
    else if (json_is_real(val)) snprintf(s, sizeof s, "%.15g", json_real_value(val));
    else if (json_is_boolean(val)) snprintf(s, sizeof s, "%s", json_is_true(val) ? "true" : "false");
    else continue;
    if (json_object_set_new(*dst, k, json_string(s))) {
      json_decref(*dst);
      *dst = NULL;
      return no_memory(err);
    }
  }
  return 0;
}

/* ---- data (RSL4, see pmsg.h for the canonical form) ---- */

static bool last_step_is(const char *enc, const char *step) {
  const char *slash = strrchr(enc, '/');
  return strcmp(slash ? slash + 1 : enc, step) == 0;
}

static void drop_last_step(char **enc) {
  char *slash = strrchr(*enc, '/');
  if (slash && slash != *enc) {
    *slash = '\0';
  } else {
    free(*enc);
    *enc = NULL;
  }
}

static int append_step(char **enc, const char *step, sw_error_t *err) {
  size_t a = *enc ? strlen(*enc) : 0, b = strlen(step);
  char *s = malloc(a + 1 + b + 1);
  if (!s) return no_memory(err);
  if (a) {
    memcpy(s, *enc, a);
    s[a++] = '/';
  }
  memcpy(s + a, step, b + 1);
  free(*enc);
  *enc = s;
  return 0;
}

static int set_data(sw_data_t *d, sw_data_kind_t kind, const char *p, size_t n, sw_error_t *err) {
  if (!(d->bytes = (uint8_t *)dup_bytes(p, n))) return no_memory(err);
  d->kind = kind;
  d->len = n;
  return 0;
}

/* Object/array data becomes its compact JSON text plus a "json" step. */
static int data_from_tree(const wire_val_t *v, char **enc, sw_data_t *d, sw_error_t *err) {
  json_t *j = v->ops->to_json(v, err);
  if (!j) return -1;
  sw_buf_t text = {0};
  wire_writer_t w;
  codec_json_writer_init(&w, &text);
  int rc = w.ops->json(&w, j);
  json_decref(j);
  if (rc == 0) rc = buf_append_byte(&text, '\0');
  if (rc) {
    buf_free(&text);
    return no_memory(err);
  }
  d->kind = SW_DATA_STRING;
  d->bytes = buf_steal(&text, &d->len);
  d->len--; /* the NUL */
  return append_step(enc, "json", err);
}

static int finish_data(const wire_val_t *v, char **enc, sw_data_t *d, int opts, sw_error_t *err) {
  if (*enc && !**enc) { /* "" is no encoding at all */
    free(*enc);
    *enc = NULL;
  }
  switch (v->kind) {
  case WIRE_NIL: return 0;
  case WIRE_BIN: return set_data(d, SW_DATA_BINARY, v->s.p, v->s.len, err);
  case WIRE_STR:
    if (!(opts & RD_RAW_DATA) && *enc && last_step_is(*enc, "base64")) {
      int rc = textenc_base64_decode(v->s.p, v->s.len, &d->bytes, &d->len);
      if (rc == -ENOMEM) return no_memory(err);
      if (rc) {
        errors_set(err, SW_E_INVALID_MESSAGE_DATA, "invalid base64 data");
        return -1;
      }
      d->kind = SW_DATA_BINARY;
      drop_last_step(enc);
      return 0;
    }
    return set_data(d, SW_DATA_STRING, v->s.p, v->s.len, err);
  case WIRE_MAP:
  case WIRE_ARRAY: return data_from_tree(v, enc, d, err);
  default:
    errors_set(err, SW_E_INVALID_MESSAGE_DATA,
               "invalid 'data': expected a string, binary, object or array");
    return -1;
  }
}

/* ---- Message (TM2) and PresenceMessage (TP3) ---- */

typedef struct item_ctx {
  sw_msg_t *m; /* one of m, p */
  sw_presence_t *p;
  int opts;
  wire_val_t data; /* kept until the encoding is known: map order is free */
} item_ctx_t;

static int msg_field(void *ctx, const char *k, size_t kl, const wire_val_t *v, sw_error_t *err) {
  item_ctx_t *c = ctx;
  sw_msg_t *m = c->m;
  if (KEY_IS(k, kl, "id")) return take_str(v, "id", &m->id, err);
  if (KEY_IS(k, kl, "name")) return take_str(v, "name", &m->name, err);
  if (KEY_IS(k, kl, "encoding")) return take_str(v, "encoding", &m->encoding, err);
  if (KEY_IS(k, kl, "data")) {
    c->data = *v;
    return 0;
  }
  if (KEY_IS(k, kl, "clientId")) return take_str(v, "clientId", &m->client_id, err);
  if (KEY_IS(k, kl, "connectionId")) return take_str(v, "connectionId", &m->connection_id, err);
  if (KEY_IS(k, kl, "connectionKey")) return take_str(v, "connectionKey", &m->connection_key, err);
  if (KEY_IS(k, kl, "serial")) return take_str(v, "serial", &m->serial, err);
  if (KEY_IS(k, kl, "timestamp")) return take_i64(v, "timestamp", &m->timestamp, NULL, err);
  if (KEY_IS(k, kl, "action")) return take_int(v, "action", &m->action, NULL, err);
  if (KEY_IS(k, kl, "extras")) return take_object(v, "extras", &m->extras, err);
  if (KEY_IS(k, kl, "version")) return take_object(v, "version", &m->version, err);
  /* The summary is the server's: only a stored head carries it. */
  if (KEY_IS(k, kl, "annotations") && (c->opts & RD_RAW_DATA)) return take_object(v, "annotations", &m->annotations, err);
  if (KEY_IS(k, kl, "messageSerial")) return take_str(v, "messageSerial", &m->message_serial, err);
  if (KEY_IS(k, kl, "type")) return take_str(v, "type", &m->type, err);
  if (KEY_IS(k, kl, "count")) return take_i64(v, "count", &m->count, &m->has_count, err);
  return 0;
}

static int presence_field(void *ctx, const char *k, size_t kl, const wire_val_t *v,
                          sw_error_t *err) {
  item_ctx_t *c = ctx;
  sw_presence_t *p = c->p;
  if (KEY_IS(k, kl, "action")) return take_int(v, "action", &p->action, NULL, err);
  if (KEY_IS(k, kl, "id")) return take_str(v, "id", &p->id, err);
  if (KEY_IS(k, kl, "clientId")) return take_str(v, "clientId", &p->client_id, err);
  if (KEY_IS(k, kl, "connectionId")) return take_str(v, "connectionId", &p->connection_id, err);
  if (KEY_IS(k, kl, "encoding")) return take_str(v, "encoding", &p->encoding, err);
  if (KEY_IS(k, kl, "data")) {
    c->data = *v;
    return 0;
  }
  if (KEY_IS(k, kl, "extras")) return take_object(v, "extras", &p->extras, err);
  if (KEY_IS(k, kl, "timestamp")) return take_i64(v, "timestamp", &p->timestamp, NULL, err);
  return 0;
}

/* m must be zeroed; on failure it holds a partial message for msg_clear. */
static int decode_msg(const wire_val_t *v, sw_msg_t *m, int opts, sw_error_t *err) {
  m->action = -1;
  if (v->kind != WIRE_MAP) return bad_field(err, "messages", "expected message objects");
  item_ctx_t c = {.m = m, .opts = opts, .data = {.kind = WIRE_NIL}};
  if (v->ops->each(v, msg_field, &c, err)) return -1;
  return finish_data(&c.data, &m->encoding, &m->data, opts, err);
}

static int decode_presence(const wire_val_t *v, sw_presence_t *p, sw_error_t *err) {
  if (v->kind != WIRE_MAP) return bad_field(err, "presence", "expected presence objects");
  item_ctx_t c = {.p = p, .data = {.kind = WIRE_NIL}};
  if (v->ops->each(v, presence_field, &c, err)) return -1;
  return finish_data(&c.data, &p->encoding, &p->data, 0, err);
}

static int take_msgs(const wire_val_t *v, const char *field, sw_msg_t **dst, size_t *count, sw_error_t *err) {
  size_t n;
  if (want_array(v, field, &n, err)) return -1;
  if (*dst) return bad_field(err, field, "given twice");
  if (n == 0) return 0;
  /* Publish the array first so the caller's cleanup covers a partial fill. */
  if (!(*dst = zalloc(n, sizeof **dst))) return no_memory(err);
  *count = n;
  for (size_t i = 0; i < n; i++) {
    wire_val_t item;
    v->ops->item(v, i, &item);
    if (decode_msg(&item, &(*dst)[i], 0, err)) return -1;
  }
  return 0;
}

static int take_presence(const wire_val_t *v, sw_presence_t **dst, size_t *count, sw_error_t *err) {
  size_t n;
  if (want_array(v, "presence", &n, err)) return -1;
  if (*dst) return bad_field(err, "presence", "given twice");
  if (n == 0) return 0;
  if (!(*dst = calloc(n, sizeof **dst))) return no_memory(err);
  *count = n;
  for (size_t i = 0; i < n; i++) {
    wire_val_t item;
    v->ops->item(v, i, &item);
    if (decode_presence(&item, &(*dst)[i], err)) return -1;
  }
  return 0;
}

/* ---- ProtocolMessage (TR4) ---- */

static int error_field(void *ctx, const char *k, size_t kl, const wire_val_t *v, sw_error_t *err) {
  sw_error_t *e = ctx;
  if (KEY_IS(k, kl, "code")) return take_int(v, "error.code", &e->code, NULL, err);
  if (KEY_IS(k, kl, "statusCode")) return take_int(v, "error.statusCode", &e->status, NULL, err);
  if (KEY_IS(k, kl, "message")) {
    if (v->kind == WIRE_NIL) return 0;
    if (v->kind != WIRE_STR) return bad_field(err, "error.message", "expected a string");
    if (memchr(v->s.p, '\0', v->s.len)) return bad_field(err, "error.message", "contains NUL");
    /* Truncate to the fixed field on a UTF-8 boundary so that re-encoding
     * it is lossless. */
    size_t n = v->s.len < sizeof e->message - 1 ? v->s.len : sizeof e->message - 1;
    if (n < v->s.len)
      while (n > 0 && ((uint8_t)v->s.p[n] & 0xc0) == 0x80) n--;
    memcpy(e->message, v->s.p, n);
    e->message[n] = '\0';
  }
  return 0;
}

static int auth_field(void *ctx, const char *k, size_t kl, const wire_val_t *v, sw_error_t *err) {
  if (KEY_IS(k, kl, "accessToken")) return take_str(v, "auth.accessToken", ctx, err);
  return 0;
}

static int res_field(void *ctx, const char *k, size_t kl, const wire_val_t *v, sw_error_t *err) {
  sw_publish_result_t *r = ctx;
  if (!KEY_IS(k, kl, "serials")) return 0;
  size_t n;
  if (want_array(v, "res.serials", &n, err)) return -1;
  if (r->serials) return bad_field(err, "res.serials", "given twice");
  if (n == 0) return 0;
  if (!(r->serials = calloc(n, sizeof *r->serials))) return no_memory(err);
  r->n_serials = n;
  for (size_t i = 0; i < n; i++) {
    wire_val_t s;
    v->ops->item(v, i, &s);
    if (take_str(&s, "res.serials", &r->serials[i], err)) return -1;
  }
  return 0;
}

static int take_res(const wire_val_t *v, sw_pmsg_t *p, sw_error_t *err) {
  size_t n;
  if (want_array(v, "res", &n, err)) return -1;
  if (p->res) return bad_field(err, "res", "given twice");
  if (n == 0) return 0;
  if (!(p->res = calloc(n, sizeof *p->res))) return no_memory(err);
  p->n_res = n;
  for (size_t i = 0; i < n; i++) {
    wire_val_t item;
    v->ops->item(v, i, &item);
    if (item.kind != WIRE_MAP) return bad_field(err, "res", "expected objects");
    if (v->ops->each(&item, res_field, &p->res[i], err)) return -1;
  }
  return 0;
}

static int take_map(const wire_val_t *v, const char *field, wire_field_cb cb, void *ctx,
                    sw_error_t *err) {
  if (v->kind == WIRE_NIL) return 0;
  if (v->kind != WIRE_MAP) return bad_field(err, field, "expected an object");
  return v->ops->each(v, cb, ctx, err);
}

static int pmsg_field(void *ctx, const char *k, size_t kl, const wire_val_t *v, sw_error_t *err) {
  sw_pmsg_t *p = ctx;
  if (KEY_IS(k, kl, "action")) return take_int(v, "action", &p->action, NULL, err);
  if (KEY_IS(k, kl, "flags")) return take_i64(v, "flags", &p->flags, &p->has_flags, err);
  if (KEY_IS(k, kl, "count")) return take_i64(v, "count", &p->count, &p->has_count, err);
  if (KEY_IS(k, kl, "msgSerial"))
    return take_i64(v, "msgSerial", &p->msg_serial, &p->has_msg_serial, err);
  if (KEY_IS(k, kl, "timestamp")) return take_i64(v, "timestamp", &p->timestamp, NULL, err);
  if (KEY_IS(k, kl, "id")) return take_str(v, "id", &p->id, err);
  if (KEY_IS(k, kl, "channel")) return take_str(v, "channel", &p->channel, err);
  if (KEY_IS(k, kl, "channelSerial")) return take_str(v, "channelSerial", &p->channel_serial, err);
  if (KEY_IS(k, kl, "connectionId")) return take_str(v, "connectionId", &p->connection_id, err);
  if (KEY_IS(k, kl, "connectionKey")) return take_str(v, "connectionKey", &p->connection_key, err);
  if (KEY_IS(k, kl, "error")) return take_map(v, "error", error_field, &p->error, err);
  if (KEY_IS(k, kl, "params")) return take_params(v, &p->params, err);
  if (KEY_IS(k, kl, "auth")) return take_map(v, "auth", auth_field, &p->auth_access_token, err);
  if (KEY_IS(k, kl, "messages")) return take_msgs(v, "messages", &p->messages, &p->n_messages, err);
  if (KEY_IS(k, kl, "annotations")) return take_msgs(v, "annotations", &p->annotations, &p->n_annotations, err);
  if (KEY_IS(k, kl, "presence")) return take_presence(v, &p->presence, &p->n_presence, err);
  if (KEY_IS(k, kl, "res")) return take_res(v, p, err);
  return 0; /* connectionDetails is outbound only; unknown fields are ignored (RSF1) */
}

int wire_decode_pmsg(const wire_val_t *root, void *out, sw_error_t *err) {
  sw_pmsg_t *p = out;
  memset(p, 0, sizeof *p);
  if (root->kind != WIRE_MAP) return bad_field(err, "ProtocolMessage", "expected an object");
  /* A missing action stays 0: the ably-js fixtures omit it, and the
   * server judges actions itself. */
  int rc = root->ops->each(root, pmsg_field, p, err);
  if (rc) pmsg_free(p);
  return rc;
}

int wire_decode_msgs(const wire_val_t *root, void *out, sw_error_t *err) {
  wire_msgs_out_t *o = out;
  o->msgs = NULL;
  o->n = 0;
  size_t n = 1;
  if (root->kind == WIRE_ARRAY) {
    if (want_array(root, "messages", &n, err)) return -1;
    if (n == 0) return 0;
  } else if (root->kind != WIRE_MAP) {
    return bad_field(err, "body", "expected a message object or an array of them");
  }
  sw_msg_t *msgs = calloc(n, sizeof *msgs);
  if (!msgs) return no_memory(err);
  for (size_t i = 0; i < n; i++) {
    wire_val_t item = *root;
    if (root->kind == WIRE_ARRAY) root->ops->item(root, i, &item);
    if (decode_msg(&item, &msgs[i], 0, err)) {
      for (size_t j = 0; j <= i; j++) msg_clear(&msgs[j]);
      free(msgs);
      return -1;
    }
  }
  o->msgs = msgs;
  o->n = n;
  return 0;
}

/* One BatchPublishSpec's fields; unknown ones are ignored (RSF1). */
static int batch_spec_field(void *ctx, const char *key, size_t klen, const wire_val_t *v, sw_error_t *err) {
  sw_batch_spec_t *s = ctx;
  if (KEY_IS(key, klen, "channels")) {
    if (s->channels) return bad_field(err, "channels", "given twice");
    size_t n = 1;
    if (v->kind == WIRE_ARRAY) {
      if (want_array(v, "channels", &n, err)) return -1;
    } else if (v->kind != WIRE_STR) {
      return bad_field(err, "channels", "expected a channel name or an array of them");
    }
    if (n == 0) return bad_field(err, "channels", "no channels");
    if (!(s->channels = calloc(n, sizeof *s->channels))) return no_memory(err);
    for (size_t i = 0; i < n; i++) {
      wire_val_t item = *v;
      if (v->kind == WIRE_ARRAY) v->ops->item(v, i, &item);
      if (item.kind != WIRE_STR) return bad_field(err, "channels", "expected strings");
      if (take_str(&item, "channels", &s->channels[i], err)) return -1;
      s->n_channels = i + 1;
    }
    return 0;
  }
  if (KEY_IS(key, klen, "messages")) {
    if (s->msgs) return bad_field(err, "messages", "given twice");
    wire_msgs_out_t o;
    if (wire_decode_msgs(v, &o, err)) return -1;
    s->msgs = o.msgs;
    s->n_msgs = o.n;
    return 0;
  }
  return 0;
}

int wire_decode_batch(const wire_val_t *root, void *out, sw_error_t *err) {
  wire_batch_out_t *o = out;
  o->specs = NULL;
  o->n = 0;
  size_t n = 1;
  if (root->kind == WIRE_ARRAY) {
    if (want_array(root, "body", &n, err)) return -1;
  } else if (root->kind != WIRE_MAP) {
    return bad_field(err, "body", "expected a BatchPublishSpec object or an array of them");
  }
  if (n == 0) return bad_field(err, "body", "no BatchPublishSpec");
  sw_batch_spec_t *specs = calloc(n, sizeof *specs);
  if (!specs) return no_memory(err);
  for (size_t i = 0; i < n; i++) {
    wire_val_t item = *root;
    if (root->kind == WIRE_ARRAY) root->ops->item(root, i, &item);
    int rc = item.kind == WIRE_MAP ? item.ops->each(&item, batch_spec_field, &specs[i], err)
                                   : bad_field(err, "body", "expected BatchPublishSpec objects");
    if (rc == 0 && (!specs[i].n_channels || !specs[i].n_msgs))
      rc = bad_field(err, "body", "a BatchPublishSpec needs channels and messages");
    if (rc) {
      codec_batch_specs_free(specs, i + 1);
      return -1;
    }
  }
  o->specs = specs;
  o->n = n;
  return 0;
}

int wire_decode_blob(const wire_val_t *root, void *out, sw_error_t *err) {
  sw_msg_t *m = out;
  memset(m, 0, sizeof *m);
  int rc = decode_msg(root, m, RD_RAW_DATA, err);
  if (rc) msg_clear(m);
  return rc;
}

static int blob_data_field(void *ctx, const char *key, size_t klen, const wire_val_t *v, sw_error_t *err) {
  wire_blob_data_t *d = ctx;
  (void)err;
  if (klen == 4 && memcmp(key, "data", 4) == 0 && (v->kind == WIRE_STR || v->kind == WIRE_BIN)) {
    d->kind = v->kind == WIRE_STR ? SW_DATA_STRING : SW_DATA_BINARY;
    d->p = (const uint8_t *)v->s.p;
    d->len = v->s.len;
  } else if (klen == 6 && memcmp(key, "action", 6) == 0 && v->kind == WIRE_INT) {
    d->action = v->i;
  }
  return 0;
}

int wire_decode_blob_data(const wire_val_t *root, void *out, sw_error_t *err) {
  wire_blob_data_t *d = out;
  *d = (wire_blob_data_t){.kind = SW_DATA_NONE, .action = -1};
  if (root->kind != WIRE_MAP) return errors_set(err, SW_E_BAD_REQUEST, "a stored message is a map");
  return root->ops->each(root, blob_data_field, d, err);
}

int wire_decode_json(const wire_val_t *root, void *out, sw_error_t *err) {
  json_t **j = out;
  *j = root->ops->to_json(root, err);
  return *j ? 0 : -1;
}
