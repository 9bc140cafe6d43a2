/* mp_compare.h: describes a msgpack reader's result as text, so that
 * client/mpread.c (swc_mp_read) can be compared with the codec's reader
 * (codec_msgpack_read, itself compared with msgpack-c by
 * fuzz/fuzz_msgpack_read.c) value for value: test_mpread.c and
 * fuzz/fuzz_client_mpread.c.
 *
 * The description walks the views through their ops (item, each) and adds
 * the root's to_json result (JSON text, or the refusal's code), so both the
 * views and the JSON the receive path builds from them are covered. A
 * refused input is "refused <code>". The caller frees the result. */
#ifndef SWC_MP_COMPARE_H
#define SWC_MP_COMPARE_H

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "proto/wire.h"

static void mpc_bytes(sw_buf_t *b, const char *p, size_t n) {
  buf_printf(b, "%zu:", n);
  for (size_t i = 0; i < n; i++) buf_printf(b, "%02x", (unsigned char)p[i]);
}

static int mpc_val(sw_buf_t *b, const wire_val_t *v, sw_error_t *err);

static int mpc_field(void *ctx, const char *k, size_t kl, const wire_val_t *v, sw_error_t *err) {
  sw_buf_t *b = ctx;
  buf_append(b, "k", 1);
  mpc_bytes(b, k, kl);
  buf_append(b, "=", 1);
  return mpc_val(b, v, err);
}

static int mpc_val(sw_buf_t *b, const wire_val_t *v, sw_error_t *err) {
  switch (v->kind) {
  case WIRE_NIL: buf_append(b, "nil ", 4); break;
  case WIRE_BOOL: buf_printf(b, "b%d ", v->b ? 1 : 0); break;
  case WIRE_INT: buf_printf(b, "i%" PRId64 " ", v->i); break;
  case WIRE_REAL: {
    uint64_t bits;
    memcpy(&bits, &v->d, sizeof bits);
    buf_printf(b, "r%016" PRIx64 " ", bits);
    break;
  }
  case WIRE_STR:
  case WIRE_BIN:
    buf_append(b, v->kind == WIRE_STR ? "s" : "x", 1);
    mpc_bytes(b, v->s.p, v->s.len);
    buf_append(b, " ", 1);
    break;
  case WIRE_ARRAY:
    buf_printf(b, "[%zu ", v->n);
    for (size_t i = 0; i < v->n; i++) {
      wire_val_t it;
      v->ops->item(v, i, &it);
      if (mpc_val(b, &it, err)) return -1;
    }
    buf_append(b, "] ", 2);
    break;
  case WIRE_MAP: {
    buf_printf(b, "{%zu ", v->n);
    sw_error_t e2 = {0};
    /* A non-string key refuses the walk: the refusal is part of the result. */
    if (v->ops->each(v, mpc_field, b, &e2)) buf_printf(b, "each-refused %d ", e2.code);
    buf_append(b, "} ", 2);
    break;
  }
  default: buf_append(b, "other ", 6); break;
  }
  (void)err;
  return 0;
}

static int mpc_root(const wire_val_t *root, void *arg, sw_error_t *err) {
  sw_buf_t *b = arg;
  if (mpc_val(b, root, err)) return -1;
  sw_error_t e2 = {0};
  json_t *j = root->ops->to_json(root, &e2);
  if (j) {
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    buf_printf(b, "json %s", s ? s : "(dump failed)");
    free(s);
    json_decref(j);
  } else {
    buf_printf(b, "json-refused %d", e2.code);
  }
  return 0;
}

/* The description of p[0..n) read by swc_mp_read (mine) or codec_msgpack_read. */
static char *mpc_describe(bool mine, const uint8_t *p, size_t n) {
  sw_buf_t b = {0}, scratch = {0};
  sw_error_t err = {0};
  int rc = mine ? swc_mp_read(&scratch, p, n, mpc_root, &b, &err) : codec_msgpack_read(p, n, mpc_root, &b, &err);
  if (rc) {
    b.len = 0;
    buf_printf(&b, "refused %d", err.code);
  }
  buf_append_byte(&b, 0);
  buf_free(&scratch);
  return (char *)buf_steal(&b, NULL);
}

#endif
