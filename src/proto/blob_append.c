/* blob_append.c: see blob_append.h. The forms accepted mirror the msgpack
 * writer of codec_msgpack.c (mp_str, mp_raw, mp_count, mp_i64, float64 via
 * msgpack-c) and what wire_decode.c / mr_json read back unchanged. */
#include "proto/blob_append.h"

#include <errno.h>
#include <string.h>

#include "proto/codec.h"

/* Field kinds of the top-level map. */
enum { T_STR, T_DATA, T_OBJ, T_TS, T_ACTION, T_INT };

static const struct {
  const char *key;
  uint8_t klen, type;
} FIELDS[BLOB_NFIELDS] = {
    [BLOB_F_ID] = {"id", 2, T_STR},
    [BLOB_F_CLIENT_ID] = {"clientId", 8, T_STR},
    [BLOB_F_CONNECTION_ID] = {"connectionId", 12, T_STR},
    [BLOB_F_CONNECTION_KEY] = {"connectionKey", 13, T_STR},
    [BLOB_F_NAME] = {"name", 4, T_STR},
    [BLOB_F_DATA] = {"data", 4, T_DATA},
    [BLOB_F_ENCODING] = {"encoding", 8, T_STR},
    [BLOB_F_EXTRAS] = {"extras", 6, T_OBJ},
    [BLOB_F_TIMESTAMP] = {"timestamp", 9, T_TS},
    [BLOB_F_SERIAL] = {"serial", 6, T_STR},
    [BLOB_F_ACTION] = {"action", 6, T_ACTION},
    [BLOB_F_VERSION] = {"version", 7, T_OBJ},
    [BLOB_F_ANNOTATIONS] = {"annotations", 11, T_OBJ},
    [BLOB_F_MESSAGE_SERIAL] = {"messageSerial", 13, T_STR},
    [BLOB_F_TYPE] = {"type", 4, T_STR},
    [BLOB_F_COUNT] = {"count", 5, T_INT},
};

/* Nesting the JSON values may use: the decoder allows SW_CODEC_MAX_DEPTH
 * containers, the top-level map one of them. */
#define JSON_MAX_DEPTH (SW_CODEC_MAX_DEPTH - 2)
/* Keys of one JSON map checked pairwise for duplicates; a larger map is
 * left to the decoder. */
#define JSON_MAX_KEYS 16

typedef struct cursor {
  const uint8_t *p, *end;
} cursor_t;

static uint64_t be(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v = v << 8 | p[i];
  return v;
}

/* A str (or else bin) header in its smallest form: the body's length,
 * or -1. */
static int64_t raw_len(cursor_t *c, bool str) {
  if (c->p >= c->end) return -1;
  uint8_t t = *c->p++;
  size_t hn;
  uint64_t min;
  if (str && (t & 0xe0) == 0xa0) {
    hn = 0, min = 0;
  } else if (t == (str ? 0xd9 : 0xc4)) {
    hn = 1, min = str ? 32 : 0;
  } else if (t == (str ? 0xda : 0xc5)) {
    hn = 2, min = 256;
  } else if (t == (str ? 0xdb : 0xc6)) {
    hn = 4, min = 65536;
  } else {
    return -1;
  }
  if ((size_t)(c->end - c->p) < hn) return -1;
  uint64_t n = hn ? be(c->p, hn) : (uint64_t)(t & 0x1f);
  c->p += hn;
  if (n < min || n > (uint64_t)(c->end - c->p)) return -1;
  return (int64_t)n;
}

/* A str without NUL (a C string's form, or a map key mr_json accepts);
 * *s its bytes. */
static bool str_nonul(cursor_t *c, blob_span_t *s) {
  int64_t n = raw_len(c, true);
  if (n < 0 || memchr(c->p, 0, (size_t)n)) return false;
  *s = (blob_span_t){.p = c->p, .len = (size_t)n};
  c->p += n;
  return true;
}

/* An integer in mp_i64's form; *v its value. */
static bool int_canonical(cursor_t *c, int64_t *v) {
  if (c->p >= c->end) return false;
  uint8_t t = *c->p++;
  if (t <= 0x7f || t >= 0xe0) {
    *v = (int8_t)t;
    return true;
  }
  size_t n = t == 0xcc || t == 0xd0 ? 1 : t == 0xcd || t == 0xd1 ? 2 : t == 0xce || t == 0xd2 ? 4
             : t == 0xcf || t == 0xd3                            ? 8
                                                                 : 0;
  if (!n || (size_t)(c->end - c->p) < n) return false;
  uint64_t u = be(c->p, n);
  c->p += n;
  if (t >= 0xd0) { /* signed: sign-extend, then only below the next smaller form */
    int64_t s = n == 8 ? (int64_t)u : (int64_t)(u << (64 - 8 * n)) >> (64 - 8 * n);
    int64_t below = n == 1 ? -32 : n == 2 ? -128 : n == 4 ? -32768 : INT32_MIN;
    *v = s;
    return s < below;
  }
  uint64_t from = n == 1 ? 128 : n == 2 ? 256 : n == 4 ? 65536 : (uint64_t)UINT32_MAX + 1;
  *v = (int64_t)u;
  return u >= from && u <= INT64_MAX;
}

/* One JSON value as mw_value writes it (see blob_scan). */
static bool json_canonical(cursor_t *c, int depth) {
  if (c->p >= c->end || depth > JSON_MAX_DEPTH) return false;
  uint8_t t = *c->p;
  if (t <= 0x7f || t >= 0xe0 || (t >= 0xcc && t <= 0xd3)) {
    int64_t v;
    return int_canonical(c, &v);
  }
  if ((t & 0xe0) == 0xa0 || t == 0xd9 || t == 0xda || t == 0xdb) {
    int64_t n = raw_len(c, true);
    if (n < 0) return false;
    c->p += n;
    return true;
  }
  if (t == 0xc0 || t == 0xc2 || t == 0xc3) {
    c->p++;
    return true;
  }
  if (t == 0xcb) { /* float64: finite only (jansson has no NaN or inf) */
    if (c->end - c->p < 9) return false;
    uint64_t u = be(c->p + 1, 8);
    c->p += 9;
    return (u >> 52 & 0x7ff) != 0x7ff;
  }
  bool map = (t & 0xf0) == 0x80 || t == 0xde;
  bool arr = (t & 0xf0) == 0x90 || t == 0xdc;
  if (!map && !arr) return false; /* bin, ext, float32, 32-bit counts */
  size_t n;
  c->p++;
  if (t == 0xde || t == 0xdc) {
    if (c->end - c->p < 2) return false;
    n = (size_t)be(c->p, 2);
    c->p += 2;
    if (n < 16) return false;
  } else {
    n = t & 0x0f;
  }
  if (arr) {
    for (size_t i = 0; i < n; i++)
      if (!json_canonical(c, depth + 1)) return false;
    return true;
  }
  if (n > JSON_MAX_KEYS) return false;
  blob_span_t keys[JSON_MAX_KEYS];
  for (size_t i = 0; i < n; i++) {
    if (!str_nonul(c, &keys[i])) return false;
    for (size_t j = 0; j < i; j++) /* jansson keeps one of a key given twice */
      if (keys[j].len == keys[i].len && memcmp(keys[j].p, keys[i].p, keys[i].len) == 0) return false;
    if (!json_canonical(c, depth + 1)) return false;
  }
  return true;
}

/* The value of field i (its key read) at c, checked for its type. */
static bool field_value(cursor_t *c, int i, blob_fields_t *f) {
  const uint8_t *start = c->p;
  blob_span_t s;
  int64_t v;
  switch (FIELDS[i].type) {
  case T_STR:
    if (!str_nonul(c, &s)) return false;
    break;
  case T_DATA: {
    if (c->p >= c->end) return false;
    bool str = (*c->p & 0xe0) == 0xa0 || (*c->p >= 0xd9 && *c->p <= 0xdb);
    int64_t n = raw_len(c, str);
    if (n < 0) return false;
    f->kind = str ? SW_DATA_STRING : SW_DATA_BINARY;
    f->data = (blob_span_t){.p = c->p, .len = (size_t)n};
    c->p += n;
    break;
  }
  case T_OBJ:
    if (c->p >= c->end || !((*c->p & 0xf0) == 0x80 || *c->p == 0xde) || !json_canonical(c, 1)) return false;
    break;
  case T_TS: /* written only when not 0 */
    if (!int_canonical(c, &v) || v == 0) return false;
    break;
  case T_ACTION: /* written only when >= 0; actions are small */
    if (c->p >= c->end || *c->p > 0x7f) return false;
    f->action = *c->p++;
    break;
  default:
    if (!int_canonical(c, &v)) return false;
    break;
  }
  f->val[i] = (blob_span_t){.p = start, .len = (size_t)(c->p - start)};
  return true;
}

int blob_scan(const uint8_t *p, size_t n, blob_fields_t *f) {
  memset(f, 0, sizeof *f);
  f->kind = SW_DATA_NONE;
  f->action = -1;
  cursor_t c = {.p = p, .end = p + n};
  if (!n) return -1;
  size_t count;
  if ((*c.p & 0xf0) == 0x80) {
    count = *c.p++ & 0x0f;
  } else if (*c.p == 0xde && n >= 3) { /* mw_map_close widens past 15 */
    count = (size_t)be(c.p + 1, 2);
    c.p += 3;
    if (count < 16) return -1;
  } else {
    return -1;
  }
  int next = 0; /* keys strictly in the writer's order: none twice */
  for (size_t k = 0; k < count; k++) {
    blob_span_t key;
    if (!str_nonul(&c, &key)) return -1;
    while (next < BLOB_NFIELDS &&
           !(FIELDS[next].klen == key.len && memcmp(FIELDS[next].key, key.p, key.len) == 0))
      next++;
    if (next == BLOB_NFIELDS || !field_value(&c, next, f)) return -1;
    next++;
  }
  /* An encoding changes how the data is read ("" is dropped): decoded. */
  return c.p == c.end && !f->val[BLOB_F_ENCODING].p ? 0 : -1;
}

static int put(sw_buf_t *out, const void *p, size_t n) { return buf_append(out, p, n); }

/* A str or bin header for n bytes, as mp_raw writes it. */
static int put_raw_header(sw_buf_t *out, sw_data_kind_t kind, uint64_t n) {
  uint8_t h[5];
  size_t hn;
  bool str = kind == SW_DATA_STRING;
  if (n > UINT32_MAX) return -EINVAL;
  if (str && n < 32) {
    h[0] = (uint8_t)(0xa0 | n), hn = 1;
  } else if (n < 256) {
    h[0] = str ? 0xd9 : 0xc4, h[1] = (uint8_t)n, hn = 2;
  } else if (n < 65536) {
    h[0] = str ? 0xda : 0xc5, h[1] = (uint8_t)(n >> 8), h[2] = (uint8_t)n, hn = 3;
  } else {
    h[0] = str ? 0xdb : 0xc6;
    for (int i = 0; i < 4; i++) h[1 + i] = (uint8_t)(n >> (24 - 8 * i));
    hn = 5;
  }
  return put(out, h, hn);
}

int blob_write(const blob_fields_t *h, sw_data_kind_t kind, const sw_data_t *frags, size_t n,
               const blob_span_t repl[BLOB_NFIELDS], sw_buf_t *out) {
  size_t total = h->data.len, count = 0, size = 3;
  for (size_t i = 0; i < n; i++) total += frags[i].len;
  if (kind == SW_DATA_NONE) kind = h->kind;
  bool present[BLOB_NFIELDS];
  for (int i = 0; i < BLOB_NFIELDS; i++) {
    present[i] = repl[i].p || h->val[i].p || (i == BLOB_F_DATA && kind != SW_DATA_NONE);
    count += present[i];
    size += present[i] ? 1 + FIELDS[i].klen + (repl[i].p ? repl[i].len : h->val[i].len) : 0;
  }
  if (total > UINT32_MAX) return -EINVAL;
  if (buf_reserve(out, size + total + 5)) return -ENOMEM; /* one allocation */
  uint8_t mh[3] = {0xde, (uint8_t)(count >> 8), (uint8_t)count};
  int rc = count <= 15 ? buf_append_byte(out, (uint8_t)(0x80 | count)) : put(out, mh, 3);
  for (int i = 0; i < BLOB_NFIELDS && !rc; i++) {
    if (!present[i]) continue;
    rc = buf_append_byte(out, (uint8_t)(0xa0 | FIELDS[i].klen));
    if (!rc) rc = put(out, FIELDS[i].key, FIELDS[i].klen);
    if (rc) break;
    if (repl[i].p) {
      rc = put(out, repl[i].p, repl[i].len);
    } else if (i == BLOB_F_DATA) {
      rc = put_raw_header(out, kind, total);
      if (!rc && h->data.len) rc = put(out, h->data.p, h->data.len);
      for (size_t j = 0; j < n && !rc; j++)
        if (frags[j].len) rc = put(out, frags[j].bytes, frags[j].len);
    } else {
      rc = put(out, h->val[i].p, h->val[i].len);
    }
  }
  return rc;
}
