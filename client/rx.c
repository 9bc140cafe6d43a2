/* rx.c: the receive path, from a WebSocket message to a ProtocolMessage.
 *
 * A frame is parsed once, by the client's msgpack reader (mpread.c, which
 * accepts what codec_msgpack_read does, without its per-frame allocation)
 * or the codec's codec_json_read: fuzzed parsers, which check structure,
 * depth and UTF-8 before anything else looks at the bytes. It is then
 * mapped from the parsed tree in one of two ways:
 *
 *   - MESSAGE and ACK, what a busy client receives all the time, are read
 *     straight from the tree. What the application gets as a string is
 *     copied, NUL-terminated, into the thread's scratch buffers (swc_rx_t),
 *     which are reused from frame to frame, rather than malloc'd field by
 *     field into an sw_pmsg_t; extras and version are written as JSON text
 *     from the tree rather than built as a json_t and dumped.
 *   - Anything else, and a MESSAGE or ACK with a field only the full
 *     decoder reads (presence, error, auth...), goes through the full
 *     decoder (wire_decode_pmsg) as before.
 *
 * Both accept and refuse the same frames: the field checks are wire.h's,
 * which wire_decode.c uses too, and the fields below follow wire_decode.c's
 * (test_rx.c and fuzz/fuzz_client_rx.c compare the two on many frames,
 * malformed ones included). What the handler gets lives until it returns. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "proto/textenc.h"
#include "proto/wire.h"

/* Scratch buffers larger than this are freed after the frame, so one big
 * message does not pin its memory to the connection. */
#define RX_KEEP 65536
/* Maps with more keys than this are checked for repeated keys by jansson
 * (through a json_t tree) instead of pairwise. */
#define RX_MAX_KEYS 32
/* An offset into rx->text meaning "absent". */
#define RX_NONE SIZE_MAX

/* ---- field checks: wire.h's, which wire_decode.c uses too ---- */

#define KEY_IS WIRE_KEY_IS
#define bad_field wire_bad_field
#define no_memory wire_no_memory
#define check_i64 wire_take_i64

static int check_int(const wire_val_t *v, const char *field, int *dst, sw_error_t *err) {
  return wire_take_int(v, field, dst, NULL, err);
}

/* The checks of wire_decode.c's take_str, take_object and want_array (then
 * "given twice"), keeping a view in *slot instead of a copy. */
static int check_str(const wire_val_t *v, const char *field, wire_val_t *slot, sw_error_t *err) {
  if (wire_check_str(v, field, slot->kind != WIRE_NIL, err)) return -1;
  if (v->kind == WIRE_STR) *slot = *v;
  return 0;
}

/* Whether an object has a JSON form is found when it is written. */
static int check_object(const wire_val_t *v, const char *field, wire_val_t *slot, sw_error_t *err) {
  if (wire_check_object(v, field, slot->kind != WIRE_NIL, err)) return -1;
  if (v->kind == WIRE_MAP) *slot = *v;
  return 0;
}

/* Null or empty is absent; anything after a non-empty one, null included,
 * is refused. */
static int check_array(const wire_val_t *v, const char *field, wire_val_t *slot, sw_error_t *err) {
  size_t n;
  if (wire_want_array(v, field, &n, err)) return -1;
  if (slot->kind != WIRE_NIL) return bad_field(err, field, "given twice");
  if (n) *slot = *v;
  return 0;
}

/* ---- the scratch text ---- */

static void rx_reset(swc_rx_t *rx) {
  rx->text.len = rx->recs.len = rx->out.len = 0;
}

/* Appends p[0..n) and a NUL to rx->text; *off gets where it starts. */
static int put_str(swc_rx_t *rx, const char *p, size_t n, size_t *off, sw_error_t *err) {
  if (buf_reserve(&rx->text, n + 1)) return no_memory(err);
  /* Room is reserved: plain stores (buf_append_byte is out of line and
   * checks again; ten strings a frame). */
  uint8_t *at = rx->text.data + rx->text.len;
  if (n) memcpy(at, p, n);
  at[n] = 0;
  *off = rx->text.len;
  rx->text.len += n + 1;
  return 0;
}

/* A string field's view into rx->text, or RX_NONE when absent. */
static int put_view(swc_rx_t *rx, const wire_val_t *v, size_t *off, sw_error_t *err) {
  *off = RX_NONE;
  return v->kind == WIRE_STR ? put_str(rx, v->s.p, v->s.len, off, err) : 0;
}

static const char *at(const swc_rx_t *rx, size_t off) {
  return off == RX_NONE ? NULL : (const char *)rx->text.data + off;
}

/* ---- JSON text straight from the tree ---- */

typedef struct jwalk {
  wire_writer_t w;
  bool tree; /* a map repeats a key (or has too many to compare): use a json_t */
} jwalk_t;

static int write_value(jwalk_t *j, const wire_val_t *v, sw_error_t *err);

typedef struct keys {
  const char *p[RX_MAX_KEYS];
  size_t n[RX_MAX_KEYS];
  size_t count;
} keys_t;

static int collect_key(void *ctx, const char *k, size_t kl, const wire_val_t *v, sw_error_t *err) {
  keys_t *ks = ctx;
  (void)v, (void)err;
  if (ks->count == RX_MAX_KEYS) return -1;
  ks->p[ks->count] = k;
  ks->n[ks->count++] = kl;
  return 0;
}

/* msgpack maps may repeat a key, which a json_t would collapse to one (the
 * last value): such maps, and maps too big to compare cheaply, are left to
 * the tree. */
static bool keys_unique(const wire_val_t *map, sw_error_t *err) {
  if (map->n > RX_MAX_KEYS) return false;
  keys_t ks;
  ks.count = 0;
  if (map->ops->each(map, collect_key, &ks, err)) return false;
  for (size_t a = 1; a < ks.count; a++)
    for (size_t b = 0; b < a; b++)
      if (ks.n[a] == ks.n[b] && memcmp(ks.p[a], ks.p[b], ks.n[a]) == 0) return false;
  return true;
}

static int write_entry(void *ctx, const char *k, size_t kl, const wire_val_t *v, sw_error_t *err) {
  jwalk_t *j = ctx;
  /* As the msgpack reader's json_t conversion (and jansson) refuse. */
  if (memchr(k, '\0', kl)) return errors_set(err, SW_E_BAD_REQUEST, "malformed msgpack: map key contains NUL");
  if (j->w.ops->key(&j->w, k, kl)) return no_memory(err);
  return write_value(j, v, err);
}

/* Depth is bounded by the readers (SW_CODEC_MAX_DEPTH). */
static int write_value(jwalk_t *j, const wire_val_t *v, sw_error_t *err) {
  wire_writer_t *w = &j->w;
  int rc = 0;
  switch (v->kind) {
  case WIRE_NIL: rc = w->ops->nil(w); break;
  case WIRE_BOOL: rc = w->ops->json(w, v->b ? json_true() : json_false()); break; /* static, no allocation */
  case WIRE_INT: rc = w->ops->i64(w, v->i); break;
  case WIRE_REAL: {
    if (!isfinite(v->d)) return errors_set(err, SW_E_BAD_REQUEST, "malformed msgpack: number is not finite");
    json_t *r = json_real(v->d);
    rc = r ? w->ops->json(w, r) : -ENOMEM;
    json_decref(r);
    break;
  }
  case WIRE_STR: rc = w->ops->str(w, v->s.p, v->s.len); break;
  case WIRE_BIN: rc = w->ops->bin(w, (const uint8_t *)v->s.p, v->s.len); break;
  case WIRE_ARRAY:
    if (w->ops->array_open(w, v->n)) return no_memory(err);
    for (size_t i = 0; i < v->n; i++) {
      wire_val_t item;
      v->ops->item(v, i, &item);
      if (write_value(j, &item, err)) return -1;
    }
    rc = w->ops->array_close(w);
    break;
  case WIRE_MAP: {
    if (!keys_unique(v, err)) {
      j->tree = true;
      return -1;
    }
    size_t mark;
    if (w->ops->map_open(w, &mark)) return no_memory(err);
    if (v->ops->each(v, write_entry, j, err)) return -1;
    rc = w->ops->map_close(w, mark, v->n);
    break;
  }
  default: return errors_set(err, SW_E_BAD_REQUEST, "malformed msgpack: ext values are not supported");
  }
  return rc ? no_memory(err) : 0;
}

/* v (an object or array) as compact JSON text in rx->text; *off gets where. */
static int put_json(swc_rx_t *rx, const wire_val_t *v, size_t *off, sw_error_t *err) {
  size_t start = rx->text.len;
  jwalk_t j = {.tree = false};
  codec_json_writer_init(&j.w, &rx->text);
  int rc = write_value(&j, v, err);
  if (rc && j.tree) {
    rx->text.len = start;
    json_t *t = v->ops->to_json(v, err);
    if (!t) return -1;
    rc = j.w.ops->json(&j.w, t) ? no_memory(err) : 0;
    json_decref(t);
  }
  if (rc) return -1;
  if (buf_append_byte(&rx->text, 0)) return no_memory(err);
  *off = start;
  return 0;
}

/* ---- Message (TM2) ---- */

/* A message while its fields are read: views into the tree. */
typedef struct msg_fields {
  wire_val_t id, name, encoding, data, client_id, connection_id, connection_key, serial, extras, version,
      message_serial, type;
  int64_t timestamp, count;
  int action;
} msg_fields_t;

/* A decoded message: offsets into rx->text until the text stops growing. */
typedef struct rx_msg {
  size_t id, name, data, encoding, client_id, connection_id, serial, extras, version;
  size_t data_len;
  int data_type;
  int action;
  int64_t timestamp;
} rx_msg_t;

static int msg_field(void *ctx, const char *k, size_t kl, const wire_val_t *v, sw_error_t *err) {
  msg_fields_t *m = ctx;
  if (KEY_IS(k, kl, "id")) return check_str(v, "id", &m->id, err);
  if (KEY_IS(k, kl, "name")) return check_str(v, "name", &m->name, err);
  if (KEY_IS(k, kl, "encoding")) return check_str(v, "encoding", &m->encoding, err);
  if (KEY_IS(k, kl, "data")) {
    m->data = *v; /* the last one counts; checked once the encoding is known */
    return 0;
  }
  if (KEY_IS(k, kl, "clientId")) return check_str(v, "clientId", &m->client_id, err);
  if (KEY_IS(k, kl, "connectionId")) return check_str(v, "connectionId", &m->connection_id, err);
  if (KEY_IS(k, kl, "connectionKey")) return check_str(v, "connectionKey", &m->connection_key, err);
  if (KEY_IS(k, kl, "serial")) return check_str(v, "serial", &m->serial, err);
  if (KEY_IS(k, kl, "timestamp")) return check_i64(v, "timestamp", &m->timestamp, NULL, err);
  if (KEY_IS(k, kl, "action")) return check_int(v, "action", &m->action, err);
  if (KEY_IS(k, kl, "extras")) return check_object(v, "extras", &m->extras, err);
  if (KEY_IS(k, kl, "version")) return check_object(v, "version", &m->version, err);
  if (KEY_IS(k, kl, "messageSerial")) return check_str(v, "messageSerial", &m->message_serial, err);
  if (KEY_IS(k, kl, "type")) return check_str(v, "type", &m->type, err);
  if (KEY_IS(k, kl, "count")) return check_i64(v, "count", &m->count, NULL, err);
  return 0;
}

/* The start of the last step of an encoding ("utf-8/base64" -> "base64"). */
static size_t last_step(const char *enc, size_t n) {
  size_t i = n;
  while (i > 0 && enc[i - 1] != '/') i--;
  return i;
}

/* A data string; with a "base64" last encoding step, the bytes it encodes,
 * and the step is dropped from *enc_n ("a/base64" -> "a"; "base64" or
 * "/base64" -> none). */
static int str_data(swc_rx_t *rx, const wire_val_t *d, const char *enc, size_t *enc_n, rx_msg_t *m, sw_error_t *err) {
  size_t step = enc ? last_step(enc, *enc_n) : 0;
  if (!enc || *enc_n - step != 6 || memcmp(enc + step, "base64", 6) != 0) {
    m->data_type = SW_PAYLOAD_STRING;
    m->data_len = d->s.len;
    return put_str(rx, d->s.p, d->s.len, &m->data, err);
  }
  uint8_t *bytes;
  size_t n;
  int rc = textenc_base64_decode(d->s.p, d->s.len, &bytes, &n);
  if (rc == -ENOMEM) return no_memory(err);
  if (rc) return errors_set(err, SW_E_INVALID_MESSAGE_DATA, "invalid base64 data");
  rc = put_str(rx, (const char *)bytes, n, &m->data, err);
  free(bytes);
  m->data_type = SW_PAYLOAD_BINARY;
  m->data_len = n;
  *enc_n = step > 1 ? step - 1 : 0;
  return rc;
}

/* Object or array data: its JSON text, and the encoding with a "json" step
 * ("a" -> "a/json", none -> "json"). */
static int tree_data(swc_rx_t *rx, const wire_val_t *d, const char *enc, size_t enc_n, rx_msg_t *m, sw_error_t *err) {
  if (put_json(rx, d, &m->data, err)) return -1;
  m->data_type = SW_PAYLOAD_STRING;
  m->data_len = rx->text.len - 1 - m->data;
  size_t start = rx->text.len;
  if ((enc_n && (buf_append(&rx->text, enc, enc_n) || buf_append_byte(&rx->text, '/'))) ||
      buf_append(&rx->text, "json", 5))
    return no_memory(err);
  m->encoding = start;
  return 0;
}

/* data and encoding in pmsg.h's canonical form, as wire_decode.c's
 * finish_data makes it; an empty encoding is none. */
static int put_data(swc_rx_t *rx, const msg_fields_t *f, rx_msg_t *m, sw_error_t *err) {
  const char *enc = f->encoding.kind == WIRE_STR ? f->encoding.s.p : NULL;
  size_t enc_n = enc ? f->encoding.s.len : 0;
  const wire_val_t *d = &f->data;
  m->data = m->encoding = RX_NONE;
  m->data_type = SW_PAYLOAD_NONE;
  switch (d->kind) {
  case WIRE_NIL: break;
  case WIRE_BIN:
    m->data_type = SW_PAYLOAD_BINARY;
    m->data_len = d->s.len;
    if (put_str(rx, d->s.p, d->s.len, &m->data, err)) return -1;
    break;
  case WIRE_STR:
    if (str_data(rx, d, enc_n ? enc : NULL, &enc_n, m, err)) return -1;
    break;
  case WIRE_MAP:
  case WIRE_ARRAY: return tree_data(rx, d, enc, enc_n, m, err);
  default:
    return errors_set(err, SW_E_INVALID_MESSAGE_DATA, "invalid 'data': expected a string, binary, object or array");
  }
  return enc_n ? put_str(rx, enc, enc_n, &m->encoding, err) : 0;
}

/* "<pm id>:<i>" (TM2a), written by hand: through buf_printf it was a fifth
 * of a fan-out delivery's decoding (vfprintf's setup per message). */
static int put_synth_id(swc_rx_t *rx, const wire_val_t *pm_id, size_t i, size_t *off, sw_error_t *err) {
  char digits[24];
  size_t k = sizeof digits;
  do digits[--k] = (char)('0' + i % 10);
  while ((i /= 10) != 0);
  size_t nd = sizeof digits - k;
  if (buf_reserve(&rx->text, pm_id->s.len + 1 + nd + 1)) return no_memory(err);
  *off = rx->text.len;
  buf_append(&rx->text, pm_id->s.p, pm_id->s.len);
  buf_append_byte(&rx->text, ':');
  buf_append(&rx->text, digits + k, nd);
  buf_append_byte(&rx->text, 0);
  return 0;
}

/* Every view WIRE_NIL, field by field: a memset of the whole struct (half
 * a kilobyte of views) was a rep stos costing more than the fields'
 * reading. A view's other members are read only when its kind says so. */
static void msg_fields_init(msg_fields_t *f) {
  wire_val_t *views[] = {&f->id,         &f->name,   &f->encoding, &f->data,           &f->client_id, &f->connection_id,
                         &f->connection_key, &f->serial, &f->extras, &f->version, &f->message_serial, &f->type};
  for (size_t i = 0; i < sizeof views / sizeof *views; i++) views[i]->kind = WIRE_NIL;
  f->timestamp = f->count = 0;
  f->action = -1;
}

/* Message i of a MESSAGE; pm_id is the view of the ProtocolMessage's id (the
 * message's own id is "<pm id>:<i>" when it has none, TM2a). */
static int put_msg(swc_rx_t *rx, const wire_val_t *v, size_t i, const wire_val_t *pm_id, rx_msg_t *m,
                   sw_error_t *err) {
  if (v->kind != WIRE_MAP) return bad_field(err, "messages", "expected message objects");
  msg_fields_t f;
  msg_fields_init(&f);
  if (v->ops->each(v, msg_field, &f, err)) return -1;
  *m = (rx_msg_t){.action = f.action, .timestamp = f.timestamp, .extras = RX_NONE, .version = RX_NONE};
  if (put_view(rx, &f.id, &m->id, err) || put_view(rx, &f.name, &m->name, err) ||
      put_view(rx, &f.client_id, &m->client_id, err) || put_view(rx, &f.connection_id, &m->connection_id, err) ||
      put_view(rx, &f.serial, &m->serial, err) || put_data(rx, &f, m, err))
    return -1;
  if (f.extras.kind == WIRE_MAP && put_json(rx, &f.extras, &m->extras, err)) return -1;
  if (f.version.kind == WIRE_MAP && put_json(rx, &f.version, &m->version, err)) return -1;
  if (m->id == RX_NONE && pm_id->kind == WIRE_STR && pm_id->s.len <= SWC_MAX_SYNTH_ID)
    return put_synth_id(rx, pm_id, i, &m->id, err);
  return 0;
}

/* ---- ProtocolMessage (TR4) ---- */

typedef struct head {
  int action;
  int64_t flags, count, msg_serial, timestamp;
  bool has_flags, has_count, has_msg_serial;
  wire_val_t id, channel, channel_serial, connection_id, messages, res;
  bool full; /* a field only the full decoder reads */
} head_t;

static int head_field(void *ctx, const char *k, size_t kl, const wire_val_t *v, sw_error_t *err) {
  head_t *h = ctx;
  if (KEY_IS(k, kl, "action")) return check_int(v, "action", &h->action, err);
  if (KEY_IS(k, kl, "flags")) return check_i64(v, "flags", &h->flags, &h->has_flags, err);
  if (KEY_IS(k, kl, "count")) return check_i64(v, "count", &h->count, &h->has_count, err);
  if (KEY_IS(k, kl, "msgSerial")) return check_i64(v, "msgSerial", &h->msg_serial, &h->has_msg_serial, err);
  if (KEY_IS(k, kl, "timestamp")) return check_i64(v, "timestamp", &h->timestamp, NULL, err);
  if (KEY_IS(k, kl, "id")) return check_str(v, "id", &h->id, err);
  if (KEY_IS(k, kl, "channel")) return check_str(v, "channel", &h->channel, err);
  if (KEY_IS(k, kl, "channelSerial")) return check_str(v, "channelSerial", &h->channel_serial, err);
  if (KEY_IS(k, kl, "connectionId")) return check_str(v, "connectionId", &h->connection_id, err);
  if (KEY_IS(k, kl, "messages")) return check_array(v, "messages", &h->messages, err);
  if (KEY_IS(k, kl, "res")) return check_array(v, "res", &h->res, err);
  if (KEY_IS(k, kl, "connectionKey") || KEY_IS(k, kl, "error") || KEY_IS(k, kl, "params") ||
      KEY_IS(k, kl, "auth") || KEY_IS(k, kl, "annotations") || KEY_IS(k, kl, "presence"))
    h->full = true;
  return 0; /* unknown fields are ignored (RSF1) */
}

/* The header fields into rx->text and pm (strings resolved later). */
typedef struct head_offs {
  size_t id, channel, channel_serial, connection_id;
} head_offs_t;

static int put_head(swc_rx_t *rx, const head_t *h, sw_pmsg_t *pm, head_offs_t *o, sw_error_t *err) {
  *pm = (sw_pmsg_t){.action = h->action, .flags = h->flags, .has_flags = h->has_flags, .count = h->count,
                    .has_count = h->has_count, .msg_serial = h->msg_serial, .has_msg_serial = h->has_msg_serial,
                    .timestamp = h->timestamp};
  return put_view(rx, &h->id, &o->id, err) || put_view(rx, &h->channel, &o->channel, err) ||
                 put_view(rx, &h->channel_serial, &o->channel_serial, err) ||
                 put_view(rx, &h->connection_id, &o->connection_id, err)
             ? -1
             : 0;
}

static void resolve_head(const swc_rx_t *rx, const head_offs_t *o, sw_pmsg_t *pm) {
  pm->id = (char *)at(rx, o->id);
  pm->channel = (char *)at(rx, o->channel);
  pm->channel_serial = (char *)at(rx, o->channel_serial);
  pm->connection_id = (char *)at(rx, o->connection_id);
}

typedef struct rx_call {
  swc_rx_t *rx;
  swc_rx_handler handler;
  void *ud;
} rx_call_t;

/* A MESSAGE: every message is decoded before any is delivered, so that a
 * bad one refuses the whole frame, as the full decoder does. */
static int fast_message(rx_call_t *x, const head_t *h, sw_error_t *err) {
  swc_rx_t *rx = x->rx;
  swc_rx_pmsg_t r; /* put_head sets all of r.pm (zeroing it twice showed in profiles), msgs below */
  head_offs_t o;
  if (put_head(rx, h, &r.pm, &o, err)) return -1;
  size_t n = h->messages.kind == WIRE_ARRAY ? h->messages.n : 0;
  if (n && (buf_reserve(&rx->recs, n * sizeof(rx_msg_t)) || buf_reserve(&rx->out, n * sizeof(sw_message_t))))
    return no_memory(err);
  rx_msg_t *recs = (rx_msg_t *)rx->recs.data;
  for (size_t i = 0; i < n; i++) {
    wire_val_t item;
    h->messages.ops->item(&h->messages, i, &item);
    if (put_msg(rx, &item, i, &h->id, &recs[i], err)) return -1;
  }
  /* rx->text is complete: offsets become pointers. */
  resolve_head(rx, &o, &r.pm);
  sw_message_t *views = (sw_message_t *)rx->out.data;
  for (size_t i = 0; i < n; i++) {
    const rx_msg_t *m = &recs[i];
    views[i] = (sw_message_t){
        .id = at(rx, m->id),
        .name = at(rx, m->name),
        .data = at(rx, m->data),
        .data_len = m->data_len,
        .data_type = m->data_type,
        .encoding = at(rx, m->encoding),
        .client_id = at(rx, m->client_id),
        /* TM2c, TM2f: from the ProtocolMessage when the message has none. */
        .connection_id = m->connection_id != RX_NONE ? at(rx, m->connection_id) : r.pm.connection_id,
        .timestamp = m->timestamp ? m->timestamp : r.pm.timestamp,
        .serial = at(rx, m->serial),
        .extras = at(rx, m->extras),
        .action = m->action,
        .version = at(rx, m->version),
    };
  }
  r.msgs = n ? views : NULL;
  r.n_msgs = n;
  x->handler(x->ud, &r);
  return 0;
}

/* One entry of res: its serials' offsets, preceded by their count, go to
 * rx->recs (SIZE_MAX: a null entry, a message discarded as a duplicate). */
static int res_field(void *ctx, const char *k, size_t kl, const wire_val_t *v, sw_error_t *err) {
  wire_val_t *serials = ctx;
  return KEY_IS(k, kl, "serials") ? check_array(v, "res.serials", serials, err) : 0;
}

static int put_res(swc_rx_t *rx, const wire_val_t *item, size_t *total, sw_error_t *err) {
  if (item->kind != WIRE_MAP) return bad_field(err, "res", "expected objects");
  wire_val_t serials = {.kind = WIRE_NIL};
  if (item->ops->each(item, res_field, &serials, err)) return -1;
  size_t n = serials.kind == WIRE_ARRAY ? serials.n : 0;
  if (buf_reserve(&rx->recs, (n + 1) * sizeof(size_t))) return no_memory(err);
  size_t *rec = (size_t *)(rx->recs.data + rx->recs.len);
  rec[0] = n;
  for (size_t i = 0; i < n; i++) {
    wire_val_t s, slot = {.kind = WIRE_NIL};
    serials.ops->item(&serials, i, &s);
    if (check_str(&s, "res.serials", &slot, err) || put_view(rx, &slot, &rec[1 + i], err)) return -1;
  }
  rx->recs.len += (n + 1) * sizeof(size_t);
  *total += n;
  return 0;
}

/* An ACK: pm.res[i].serials point into rx->text. */
static int fast_ack(rx_call_t *x, const head_t *h, sw_error_t *err) {
  swc_rx_t *rx = x->rx;
  swc_rx_pmsg_t r = {0};
  head_offs_t o;
  if (put_head(rx, h, &r.pm, &o, err)) return -1;
  size_t n_res = h->res.kind == WIRE_ARRAY ? h->res.n : 0, total = 0;
  for (size_t i = 0; i < n_res; i++) {
    wire_val_t item;
    h->res.ops->item(&h->res, i, &item);
    if (put_res(rx, &item, &total, err)) return -1;
  }
  resolve_head(rx, &o, &r.pm);
  if (n_res) {
    if (buf_reserve(&rx->out, n_res * sizeof(sw_publish_result_t) + total * sizeof(char *))) return no_memory(err);
    sw_publish_result_t *res = (sw_publish_result_t *)rx->out.data;
    char **ptrs = (char **)(res + n_res);
    const size_t *rec = (const size_t *)rx->recs.data;
    for (size_t i = 0; i < n_res; i++) {
      size_t n = *rec++;
      res[i] = (sw_publish_result_t){.serials = n ? ptrs : NULL, .n_serials = n};
      for (size_t k = 0; k < n; k++) *ptrs++ = (char *)at(rx, *rec++);
    }
    r.pm.res = res;
    r.pm.n_res = n_res;
  }
  x->handler(x->ud, &r);
  return 0;
}

/* ---- the full decoder, for everything else ---- */

/* Views of a fully decoded MESSAGE's messages; *extras[i] are the
 * allocations swc_message_view made. */
static int full_message_views(const sw_pmsg_t *pm, sw_message_t **views, char ***extras, char **ids) {
  size_t n = pm->n_messages, id_len = pm->id ? strlen(pm->id) : 0;
  size_t cap = id_len <= SWC_MAX_SYNTH_ID ? SWC_SYNTH_ID_CAP(id_len) : 1;
  *views = calloc(n, sizeof **views);
  *extras = calloc(n, sizeof **extras);
  *ids = malloc(n * cap);
  if (!*views || !*extras || !*ids) return -1;
  for (size_t i = 0; i < n; i++)
    swc_message_view(&pm->messages[i], pm, i, &(*views)[i], &(*extras)[i], *ids + i * cap, cap);
  return 0;
}

static int full_decode(rx_call_t *x, const wire_val_t *root, sw_error_t *err) {
  swc_rx_pmsg_t r = {0};
  if (wire_decode_pmsg(root, &r.pm, err)) return -1;
  sw_message_t *views = NULL;
  char **extras = NULL, *ids = NULL;
  int rc = 0;
  if (r.pm.action == SW_ACTION_MESSAGE && r.pm.n_messages) {
    rc = full_message_views(&r.pm, &views, &extras, &ids) ? no_memory(err) : 0;
    r.msgs = views;
    r.n_msgs = r.pm.n_messages;
  }
  if (rc == 0) x->handler(x->ud, &r);
  for (size_t i = 0; extras && i < r.pm.n_messages; i++) free(extras[i]);
  free(extras);
  free(views);
  free(ids);
  pmsg_free(&r.pm);
  return rc;
}

/* Views WIRE_NIL (see msg_fields_init); a missing action is 0. */
static void head_init(head_t *h) {
  h->action = 0;
  h->flags = h->count = h->msg_serial = h->timestamp = 0;
  h->has_flags = h->has_count = h->has_msg_serial = h->full = false;
  h->id.kind = h->channel.kind = h->channel_serial.kind = h->connection_id.kind = h->messages.kind = h->res.kind =
      WIRE_NIL;
}

static int on_root(const wire_val_t *root, void *arg, sw_error_t *err) {
  rx_call_t *x = arg;
  if (root->kind != WIRE_MAP) return bad_field(err, "ProtocolMessage", "expected an object");
  head_t h;
  head_init(&h);
  if (root->ops->each(root, head_field, &h, err)) return -1;
  if (!h.full && h.action == SW_ACTION_MESSAGE && h.res.kind == WIRE_NIL) return fast_message(x, &h, err);
  if (!h.full && h.action == SW_ACTION_ACK && h.messages.kind == WIRE_NIL) return fast_ack(x, &h, err);
  return full_decode(x, root, err);
}

int swc_rx_frame(swc_rx_t *rx, sw_format_t fmt, const uint8_t *p, size_t n, swc_rx_handler handler, void *ud,
                 sw_error_t *err) {
  rx_call_t x = {.rx = rx, .handler = handler, .ud = ud};
  rx_reset(rx);
  int rc = fmt == SW_FMT_MSGPACK ? swc_mp_read(&rx->tree, p, n, on_root, &x, err)
                                 : codec_json_read(p, n, on_root, &x, err);
  if (rx->text.cap > RX_KEEP || rx->recs.cap > RX_KEEP || rx->out.cap > RX_KEEP || rx->tree.cap > RX_KEEP)
    swc_rx_free(rx);
  return rc;
}

void swc_rx_free(swc_rx_t *rx) {
  buf_free(&rx->text);
  buf_free(&rx->recs);
  buf_free(&rx->out);
  buf_free(&rx->tree);
}

/* ---- the thread's scratch ----
 * What a frame is decoded into lives only while its handler runs, and a
 * loop runs on one thread, so one scratch per thread serves every client on
 * it, and it stays in the cache whichever of thousands of connections the
 * frame came from (a scratch per client was cold memory on every frame, as
 * slow as the mallocs it replaced). A frame decoded while another is still
 * being handled further up the stack (a callback that runs another client's
 * private loop) gets a scratch of its own. Allocated on a thread's first
 * frame, freed when the thread exits. */

typedef struct rx_thread {
  bool busy; /* a frame on this thread is using rx */
  swc_rx_t rx;
} rx_thread_t;

static pthread_once_t rt_once = PTHREAD_ONCE_INIT;
static pthread_key_t rt_key;
static bool rt_key_ok;

static void rt_free(void *p) {
  rx_thread_t *t = p;
  swc_rx_free(&t->rx);
  free(t);
}

static void rt_key_make(void) { rt_key_ok = pthread_key_create(&rt_key, rt_free) == 0; }

/* This thread's scratch, or NULL when there is none (out of memory). */
static rx_thread_t *rt_get(void) {
  pthread_once(&rt_once, rt_key_make);
  if (!rt_key_ok) return NULL;
  rx_thread_t *t = pthread_getspecific(rt_key);
  if (!t && (t = calloc(1, sizeof *t)) && pthread_setspecific(rt_key, t)) {
    free(t);
    t = NULL;
  }
  return t;
}

int swc_rx_decode(sw_format_t fmt, const uint8_t *p, size_t n, swc_rx_handler handler, void *ud, sw_error_t *err) {
  rx_thread_t *t = rt_get();
  if (!t || t->busy) {
    swc_rx_t own = {0};
    int rc = swc_rx_frame(&own, fmt, p, n, handler, ud, err);
    swc_rx_free(&own);
    return rc;
  }
  t->busy = true;
  int rc = swc_rx_frame(&t->rx, fmt, p, n, handler, ud, err);
  t->busy = false;
  return rc;
}
