/* test_rx.c: white-box tests of the receive path (client/rx.c), which
 * reads MESSAGE and ACK frames straight from the parsed tree into scratch
 * buffers instead of through the full decoder.
 *
 * The main check is differential: for every frame, what swc_rx_frame hands
 * its handler must equal what the full decoder (codec_decode_pmsg) plus
 * swc_message_view make of it, and both must refuse the same frames. The
 * frames are hand-written corner cases and a few thousand random ones, in
 * msgpack (repeated keys, NUL in keys, ext, NaN, bin...) and JSON. Then
 * specific cases check the values themselves: the benchmark's append
 * delivery, the data encodings, ACK serials, and scratch reuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>
#include <msgpack.h>

#include "internal.h"

#define RX_EXPECT(c) assert_true(c)
#include "rx_compare.h"

/* ---- the two paths ---- */

static void on_rx(void *ud, const swc_rx_pmsg_t *m) {
  char **out = ud;
  assert_null(*out); /* called once */
  *out = describe(&m->pm, m->msgs, m->n_msgs);
}

static int new_path(swc_rx_t *rx, sw_format_t f, const uint8_t *p, size_t n, char **desc) {
  sw_error_t err = {0};
  *desc = NULL;
  int rc = swc_rx_frame(rx, f, p, n, on_rx, desc, &err);
  if (rc) {
    assert_null(*desc);
    assert_int_not_equal(err.code, 0);
  } else {
    assert_non_null(*desc);
  }
  return rc;
}

typedef struct tally {
  int frames, accepted, messages, acks;
} tally_t;

/* Both paths agree on p[0..n): both refuse it, or both make the same of it. */
static int check_same(swc_rx_t *rx, sw_format_t f, const uint8_t *p, size_t n, tally_t *t) {
  char *a, *b;
  int rc_new = new_path(rx, f, p, n, &a), rc_old = old_path(f, p, n, &b);
  if (rc_new != rc_old || (a && strcmp(a, b) != 0)) {
    print_error("paths disagree (%s) on %zu bytes: new %d %s\n  old %d %s\n", f == SW_FMT_JSON ? "json" : "msgpack",
                n, rc_new, a ? a : "-", rc_old, b ? b : "-");
    if (f == SW_FMT_JSON) print_error("  frame: %.*s\n", (int)n, (const char *)p);
    fail();
  }
  if (t) {
    t->frames++;
    if (!rc_new) {
      t->accepted++;
      if (strstr(a, "\"action\":15,") == a + 1 && !strstr(a, "\"messages\":[]")) t->messages++;
      if (strstr(a, "\"action\":1,") == a + 1 && !strstr(a, "\"res\":[]")) t->acks++;
    }
  }
  free(a);
  free(b);
  return rc_new;
}

/* ---- building msgpack by hand ---- */

typedef struct mp {
  msgpack_sbuffer sb;
  msgpack_packer pk;
} mp_t;

static void mp_init(mp_t *m) {
  msgpack_sbuffer_init(&m->sb);
  msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void mp_str(mp_t *m, const char *s) { msgpack_pack_str_with_body(&m->pk, s, strlen(s)); }
static void mp_strn(mp_t *m, const char *s, size_t n) { msgpack_pack_str_with_body(&m->pk, s, n); }
static void mp_kv_str(mp_t *m, const char *k, const char *v) { mp_str(m, k), mp_str(m, v); }
static void mp_kv_int(mp_t *m, const char *k, int64_t v) { mp_str(m, k), msgpack_pack_int64(&m->pk, v); }

/* ---- random frames ---- */

typedef struct gen {
  uint64_t s;
  mp_t m;
} gen_t;

static uint64_t rnd(gen_t *g) {
  g->s ^= g->s << 13;
  g->s ^= g->s >> 7;
  g->s ^= g->s << 17;
  return g->s;
}

static unsigned pick(gen_t *g, unsigned n) { return (unsigned)(rnd(g) % n); }
static bool chance(gen_t *g, unsigned pct) { return pick(g, 100) < pct; }

static const char *const strs[] = {"abc", "ai:s1", "00000000000000033", "h\xc3\xa9llo", "", "a\"b\\c\n\x01",
                                   "pKu5ucOiu1Sb:0:0", "bench-57", "aGVsbG8=", "a$b", "json", "x/y"};
static const char *const encodings[] = {"", "json", "base64", "utf-8/base64", "/base64", "a//base64",
                                        "cipher/json", "base64/json", "utf-8"};

static void gen_any(gen_t *g, int depth);

static void gen_map(gen_t *g, int depth) {
  unsigned n = pick(g, 4);
  msgpack_pack_map(&g->m.pk, n);
  for (unsigned i = 0; i < n; i++) {
    if (chance(g, 3)) mp_strn(&g->m, "n\0l", 3); /* a key with NUL */
    else if (chance(g, 2)) msgpack_pack_int(&g->m.pk, 7); /* not a string */
    else mp_str(&g->m, (const char *[]){"a", "b", "serial", "timestamp", "headers"}[pick(g, 5)]); /* repeats happen */
    gen_any(g, depth + 1);
  }
}

static void gen_any(gen_t *g, int depth) {
  msgpack_packer *pk = &g->m.pk;
  switch (pick(g, depth < 3 ? 14 : 11)) {
  case 0: msgpack_pack_nil(pk); break;
  case 1: chance(g, 50) ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
  case 2: msgpack_pack_int64(pk, (int64_t)(rnd(g) % 2000) - 1000); break;
  case 3: msgpack_pack_uint64(pk, rnd(g)); break; /* above INT64_MAX half the time */
  case 4: msgpack_pack_double(pk, chance(g, 50) ? 3.0 : 2.5); break;
  case 5: msgpack_pack_double(pk, chance(g, 50) ? NAN : INFINITY); break;
  case 6: msgpack_pack_float(pk, 1.25f); break;
  case 7:
  case 8: mp_str(&g->m, strs[pick(g, sizeof strs / sizeof *strs)]); break;
  case 9: msgpack_pack_bin_with_body(pk, "\x00\xff\x10", 3); break;
  case 10: msgpack_pack_ext_with_body(pk, "ab", 2, 1); break;
  case 11:
  case 12: gen_map(g, depth); break;
  default: {
    unsigned n = pick(g, 3);
    msgpack_pack_array(pk, n);
    for (unsigned i = 0; i < n; i++) gen_any(g, depth + 1);
  }
  }
}

/* Mostly what the field should hold, sometimes anything. */
static void gen_str(gen_t *g) {
  if (chance(g, 94)) mp_str(&g->m, strs[pick(g, sizeof strs / sizeof *strs)]);
  else if (chance(g, 30)) mp_strn(&g->m, "nu\0l", 4);
  else gen_any(g, 2);
}

static void gen_int(gen_t *g) {
  if (chance(g, 95)) msgpack_pack_int64(&g->m.pk, (int64_t)(rnd(g) % 3000000000000ull));
  else gen_any(g, 2);
}

static void gen_object(gen_t *g) {
  if (chance(g, 85)) gen_map(g, 0);
  else gen_any(g, 2);
}

static void gen_data(gen_t *g) {
  switch (pick(g, 6)) {
  case 0: mp_str(&g->m, "aGVsbG8="); break;
  case 1: mp_str(&g->m, "not base64!"); break;
  default: gen_any(g, 1);
  }
}

static const char *const msg_keys[] = {"id",        "name",   "encoding", "data",    "clientId",      "connectionId",
                                       "connectionKey", "serial", "timestamp", "action", "extras", "version",
                                       "messageSerial", "type", "count", "other"};

/* k distinct keys of keys[0..n) (k <= n), in random order. */
static void pick_keys(gen_t *g, const char *const *keys, unsigned n, const char **out, unsigned k) {
  const char *pool[32];
  memcpy(pool, keys, n * sizeof *pool);
  for (unsigned i = 0; i < k; i++) {
    unsigned j = i + pick(g, n - i);
    const char *t = pool[i];
    pool[i] = pool[j];
    pool[j] = t;
    out[i] = pool[i];
  }
}

static void gen_message(gen_t *g) {
  if (chance(g, 3)) {
    gen_any(g, 2);
    return;
  }
  const char *keys[16];
  unsigned n = pick(g, 9);
  pick_keys(g, msg_keys, sizeof msg_keys / sizeof *msg_keys, keys, n);
  if (n && chance(g, 5)) keys[n - 1] = keys[0]; /* a repeated key */
  msgpack_pack_map(&g->m.pk, n);
  for (unsigned i = 0; i < n; i++) {
    const char *k = keys[i];
    mp_str(&g->m, k);
    if (!strcmp(k, "encoding")) chance(g, 95) ? mp_str(&g->m, encodings[pick(g, 9)]) : gen_any(g, 2);
    else if (!strcmp(k, "data")) gen_data(g);
    else if (!strcmp(k, "timestamp") || !strcmp(k, "count")) gen_int(g);
    else if (!strcmp(k, "action")) chance(g, 95) ? msgpack_pack_int(&g->m.pk, (int)pick(g, 7) - 1) : gen_any(g, 2);
    else if (!strcmp(k, "extras") || !strcmp(k, "version")) gen_object(g);
    else if (!strcmp(k, "other")) gen_any(g, 1);
    else gen_str(g);
  }
}

static void gen_array_of(gen_t *g, void (*item)(gen_t *)) {
  if (chance(g, 5)) {
    gen_any(g, 2);
    return;
  }
  unsigned n = pick(g, 4);
  msgpack_pack_array(&g->m.pk, n);
  for (unsigned i = 0; i < n; i++) item(g);
}

static void gen_serial(gen_t *g) {
  if (chance(g, 15)) msgpack_pack_nil(&g->m.pk);
  else gen_str(g);
}

static void gen_res_item(gen_t *g) {
  if (chance(g, 5)) {
    gen_any(g, 2);
    return;
  }
  unsigned n = chance(g, 10) ? 2 : 1;
  msgpack_pack_map(&g->m.pk, n);
  for (unsigned i = 0; i < n; i++) {
    mp_str(&g->m, chance(g, 90) ? "serials" : "other");
    gen_array_of(g, gen_serial);
  }
}

static const char *const pm_keys[] = {"action", "flags", "count", "msgSerial", "timestamp", "id",
                                      "channel", "channelSerial", "connectionId", "messages", "res",
                                      "error", "presence", "params", "connectionKey", "other"};

static const char *const ack_keys[] = {"msgSerial", "count", "res", "id", "timestamp"};
static const char *const msg_pm_keys[] = {"channel", "channelSerial", "timestamp", "messages", "id", "connectionId",
                                          "flags"};

static void gen_frame(gen_t *g) {
  bool ack = chance(g, 35);
  const char *keys[16];
  unsigned n = ack ? 1 + pick(g, 5) : 1 + pick(g, 7);
  pick_keys(g, ack ? ack_keys : msg_pm_keys, ack ? 5 : 7, keys, n);
  /* Now and then any other field, maybe one already there. */
  if (chance(g, 15)) keys[n++] = pm_keys[pick(g, sizeof pm_keys / sizeof *pm_keys)];
  msgpack_pack_map(&g->m.pk, n + 1);
  mp_str(&g->m, "action");
  if (chance(g, 95)) msgpack_pack_int(&g->m.pk, ack ? (chance(g, 90) ? 1 : 2) : (chance(g, 90) ? 15 : 11));
  else gen_any(g, 2);
  for (unsigned i = 0; i < n; i++) {
    const char *k = keys[i];
    mp_str(&g->m, k);
    if (!strcmp(k, "messages")) gen_array_of(g, gen_message);
    else if (!strcmp(k, "res")) gen_array_of(g, gen_res_item);
    else if (!strcmp(k, "action")) msgpack_pack_int(&g->m.pk, 15);
    else if (!strcmp(k, "flags") || !strcmp(k, "count") || !strcmp(k, "msgSerial") || !strcmp(k, "timestamp"))
      gen_int(g);
    else if (!strcmp(k, "error") || !strcmp(k, "params")) chance(g, 80) ? gen_map(g, 1) : gen_any(g, 2);
    else if (!strcmp(k, "presence") || !strcmp(k, "other")) gen_any(g, 1);
    else gen_str(g);
  }
}

/* The same frame as JSON text, when it has a JSON form. */
static char *as_json(const uint8_t *p, size_t n) {
  sw_error_t err;
  json_t *v = codec_decode_value(SW_FMT_MSGPACK, p, n, &err);
  if (!v) return NULL;
  char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(v);
  return text;
}

static void test_random_frames(void **state) {
  (void)state;
  swc_rx_t rx = {0};
  gen_t g = {.s = 0x9e3779b97f4a7c15ull};
  tally_t tm = {0}, tj = {0};
  for (int i = 0; i < 20000; i++) {
    mp_init(&g.m);
    gen_frame(&g);
    const uint8_t *p = (const uint8_t *)g.m.sb.data;
    size_t n = g.m.sb.size;
    check_same(&rx, SW_FMT_MSGPACK, p, n, &tm);
    char *j = as_json(p, n);
    if (j) check_same(&rx, SW_FMT_JSON, (const uint8_t *)j, strlen(j), &tj);
    free(j);
    /* And a damaged copy: a byte changed. */
    if (n > 1) {
      uint8_t *bad = malloc(n);
      memcpy(bad, p, n);
      bad[pick(&g, (unsigned)n)] ^= (uint8_t)(1u << pick(&g, 8));
      check_same(&rx, SW_FMT_MSGPACK, bad, n, NULL);
      free(bad);
    }
    msgpack_sbuffer_destroy(&g.m.sb);
  }
  print_message("msgpack: %d frames, %d accepted (%d MESSAGE with messages, %d ACK with res); "
                "json: %d frames, %d accepted (%d, %d)\n",
                tm.frames, tm.accepted, tm.messages, tm.acks, tj.frames, tj.accepted, tj.messages, tj.acks);
  /* Not vacuous: plenty of each kind got through both decoders. */
  assert_true(tm.messages > 1000 && tm.acks > 1000);
  assert_true(tj.messages > 1000 && tj.acks > 1000);
  swc_rx_free(&rx);
}

/* ---- specific frames ---- */

typedef struct seen {
  sw_pmsg_t pm;
  size_t n;
  char *desc;
  json_t *msgs; /* describe_msg of each */
} seen_t;

static void on_seen(void *ud, const swc_rx_pmsg_t *m) {
  seen_t *s = ud;
  s->pm = m->pm;
  s->n = m->n_msgs;
  s->desc = describe(&m->pm, m->msgs, m->n_msgs);
  json_error_t je;
  json_t *all = json_loads(s->desc, 0, &je);
  s->msgs = json_incref(json_object_get(all, "messages"));
  json_decref(all);
}

static void seen_free(seen_t *s) {
  free(s->desc);
  json_decref(s->msgs);
  memset(s, 0, sizeof *s);
}

static const char *field(const seen_t *s, size_t i, const char *k) {
  return json_string_value(json_object_get(json_array_get(s->msgs, i), k));
}

/* What the AI benchmark's watchers receive for every append. */
static void test_append_delivery(void **state) {
  (void)state;
  mp_t m;
  mp_init(&m);
  msgpack_pack_map(&m.pk, 5);
  mp_kv_int(&m, "action", 15);
  mp_kv_str(&m, "channel", "ai:s17");
  mp_kv_str(&m, "channelSerial", "00000000000000033");
  mp_kv_int(&m, "timestamp", 1790000000000);
  mp_str(&m, "messages");
  msgpack_pack_array(&m.pk, 1);
  msgpack_pack_map(&m.pk, 8);
  mp_kv_str(&m, "id", "pKu5ucOiu1Sb:0:0");
  mp_kv_str(&m, "clientId", "bench-57");
  mp_kv_str(&m, "connectionId", "pKu5ucOiu1Sb");
  mp_kv_str(&m, "data", "50 2002479076541 xxxxxxxxxxxxxx");
  mp_kv_int(&m, "timestamp", 1790000000001);
  mp_kv_str(&m, "serial", "00000000000000001");
  mp_kv_int(&m, "action", SW_MESSAGE_APPEND);
  mp_str(&m, "version");
  msgpack_pack_map(&m.pk, 3);
  mp_kv_str(&m, "serial", "00000000000000033");
  mp_kv_int(&m, "timestamp", 1790000000002);
  mp_kv_str(&m, "clientId", "bench-57");

  swc_rx_t rx = {0};
  seen_t s = {0};
  sw_error_t err;
  assert_int_equal(swc_rx_frame(&rx, SW_FMT_MSGPACK, (const uint8_t *)m.sb.data, m.sb.size, on_seen, &s, &err), 0);
  assert_int_equal(s.pm.action, SW_ACTION_MESSAGE);
  assert_int_equal(s.n, 1);
  assert_string_equal(field(&s, 0, "id"), "pKu5ucOiu1Sb:0:0");
  assert_string_equal(field(&s, 0, "serial"), "00000000000000001");
  assert_string_equal(field(&s, 0, "version"),
                      "{\"serial\":\"00000000000000033\",\"timestamp\":1790000000002,\"clientId\":\"bench-57\"}");
  assert_null(field(&s, 0, "extras"));
  assert_int_equal(json_integer_value(json_object_get(json_array_get(s.msgs, 0), "action")), SW_MESSAGE_APPEND);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(s.msgs, 0), "type")), SW_PAYLOAD_STRING);
  assert_true(strstr(s.desc, "\"channel\":\"ai:s17\",\"channelSerial\":\"00000000000000033\""));
  check_same(&rx, SW_FMT_MSGPACK, (const uint8_t *)m.sb.data, m.sb.size, NULL);
  seen_free(&s);
  swc_rx_free(&rx);
  msgpack_sbuffer_destroy(&m.sb);
}

/* Runs a JSON frame through both paths and returns the new one's view. */
static int json_frame(swc_rx_t *rx, const char *text, seen_t *s) {
  check_same(rx, SW_FMT_JSON, (const uint8_t *)text, strlen(text), NULL);
  sw_error_t err;
  memset(s, 0, sizeof *s);
  return swc_rx_frame(rx, SW_FMT_JSON, (const uint8_t *)text, strlen(text), on_seen, s, &err);
}

/* RSL4: base64 text loses its last encoding step and becomes bytes; JSON
 * object or array data becomes JSON text with a "json" step; TM2a/c/f. */
static void test_data_and_inherited_fields(void **state) {
  (void)state;
  swc_rx_t rx = {0};
  seen_t s;
  assert_int_equal(
      json_frame(&rx,
                 "{\"action\":15,\"channel\":\"c\",\"id\":\"pm\",\"connectionId\":\"conn\",\"timestamp\":42,\"messages\":["
                 "{\"data\":\"aGVsbG8=\",\"encoding\":\"utf-8/base64\"},"
                 "{\"data\":\"aGk=\",\"encoding\":\"base64\",\"id\":\"own\",\"connectionId\":\"c2\",\"timestamp\":7},"
                 "{\"data\":{\"k\":[1,2.5,true,null,\"\\u0001\"]},\"encoding\":\"cipher\"},"
                 "{\"data\":[],\"extras\":{\"headers\":{\"a\":\"b\"}}}]}",
                 &s),
      0);
  assert_int_equal(s.n, 4);
  assert_string_equal(field(&s, 0, "data"), "68656c6c6f"); /* hello */
  assert_string_equal(field(&s, 0, "encoding"), "utf-8");
  assert_string_equal(field(&s, 0, "id"), "pm:0");
  assert_string_equal(field(&s, 0, "connectionId"), "conn");
  assert_int_equal(json_integer_value(json_object_get(json_array_get(s.msgs, 0), "timestamp")), 42);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(s.msgs, 0), "type")), SW_PAYLOAD_BINARY);
  assert_null(field(&s, 1, "encoding"));
  assert_string_equal(field(&s, 1, "id"), "own");
  assert_string_equal(field(&s, 1, "connectionId"), "c2");
  assert_int_equal(json_integer_value(json_object_get(json_array_get(s.msgs, 1), "timestamp")), 7);
  assert_string_equal(field(&s, 2, "encoding"), "cipher/json");
  /* {"k":[1,2.5,true,null,"\u0001"]} */
  assert_string_equal(field(&s, 2, "data"), "7b226b223a5b312c322e352c747275652c6e756c6c2c225c7530303031225d7d");
  assert_string_equal(field(&s, 3, "encoding"), "json");
  assert_string_equal(field(&s, 3, "data"), "5b5d");
  assert_string_equal(field(&s, 3, "extras"), "{\"headers\":{\"a\":\"b\"}}");
  seen_free(&s);
  /* Bad base64 refuses the frame, as does data of the wrong type. */
  assert_int_equal(json_frame(&rx, "{\"action\":15,\"channel\":\"c\",\"messages\":[{\"data\":\"a$\",\"encoding\":\"base64\"}]}", &s), -1);
  assert_int_equal(json_frame(&rx, "{\"action\":15,\"channel\":\"c\",\"messages\":[{},{\"data\":5}]}", &s), -1);
  swc_rx_free(&rx);
}

/* msgpack maps may repeat keys: the JSON text keeps the last value once,
 * as the json_t conversion does; a key with NUL, an ext value or a NaN
 * has no JSON form and refuses the frame. */
static void test_extras_edge_cases(void **state) {
  (void)state;
  swc_rx_t rx = {0};
  for (int variant = 0; variant < 4; variant++) {
    mp_t m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 3);
    mp_kv_int(&m, "action", 15);
    mp_kv_str(&m, "channel", "c");
    mp_str(&m, "messages");
    msgpack_pack_array(&m.pk, 1);
    msgpack_pack_map(&m.pk, 1);
    mp_str(&m, "extras");
    msgpack_pack_map(&m.pk, 2);
    if (variant == 0) {
      mp_kv_int(&m, "a", 1);
      mp_kv_int(&m, "a", 2);
    } else if (variant == 1) {
      mp_kv_int(&m, "a", 1);
      mp_strn(&m, "b\0", 2), msgpack_pack_int(&m.pk, 2);
    } else if (variant == 2) {
      mp_kv_int(&m, "a", 1);
      mp_str(&m, "b"), msgpack_pack_ext_with_body(&m.pk, "x", 1, 3);
    } else {
      mp_kv_int(&m, "a", 1);
      mp_str(&m, "b"), msgpack_pack_double(&m.pk, NAN);
    }
    seen_t s = {0};
    sw_error_t err;
    int rc = swc_rx_frame(&rx, SW_FMT_MSGPACK, (const uint8_t *)m.sb.data, m.sb.size, on_seen, &s, &err);
    check_same(&rx, SW_FMT_MSGPACK, (const uint8_t *)m.sb.data, m.sb.size, NULL);
    if (variant == 0) {
      assert_int_equal(rc, 0);
      assert_string_equal(field(&s, 0, "extras"), "{\"a\":2}");
    } else {
      assert_int_equal(rc, -1);
    }
    seen_free(&s);
    msgpack_sbuffer_destroy(&m.sb);
  }
  swc_rx_free(&rx);
}

/* ACK serials, null ones included; NACK, error and presence frames go
 * through the full decoder and still arrive. */
static void test_ack_and_full_decoder(void **state) {
  (void)state;
  swc_rx_t rx = {0};
  seen_t s;
  assert_int_equal(json_frame(&rx, "{\"action\":1,\"msgSerial\":5,\"count\":3,\"res\":[{\"serials\":[\"s1\",null]},{},"
                                   "{\"serials\":[\"s3\"]}]}",
                              &s),
                   0);
  assert_int_equal(s.pm.action, SW_ACTION_ACK);
  assert_true(strstr(s.desc, "\"msgSerial\":5") != NULL);
  assert_true(strstr(s.desc, "\"res\":[[\"s1\",null],[],[\"s3\"]]") != NULL);
  seen_free(&s);
  assert_int_equal(json_frame(&rx, "{\"action\":2,\"msgSerial\":1,\"error\":{\"code\":40160,\"message\":\"no\"}}", &s), 0);
  assert_int_equal(s.pm.error.code, 40160);
  seen_free(&s);
  assert_int_equal(json_frame(&rx, "{\"action\":15,\"channel\":\"c\",\"presence\":[],\"messages\":[{\"name\":\"n\"}]}", &s), 0);
  assert_int_equal(s.n, 1);
  assert_string_equal(field(&s, 0, "name"), "n");
  seen_free(&s);
  assert_int_equal(json_frame(&rx, "{\"action\":1,\"res\":[{\"serials\":[3]}]}", &s), -1);
  assert_int_equal(json_frame(&rx, "{\"action\":1,\"res\":[5]}", &s), -1);
  swc_rx_free(&rx);
}

/* msgpack maps may repeat a key: an array field after a non-empty one is
 * refused even when it is null, as the full decoder does (the receive path
 * took the null as absent and accepted the frame). */
static void mp_kv_array(mp_t *m, const char *key, int n, void (*one)(mp_t *)) {
  mp_str(m, key);
  if (n < 0) {
    msgpack_pack_nil(&m->pk);
    return;
  }
  msgpack_pack_array(&m->pk, (size_t)n);
  for (int i = 0; i < n; i++) one(m);
}

static void mp_empty_map(mp_t *m) { msgpack_pack_map(&m->pk, 0); }
static void mp_serial(mp_t *m) { mp_str(m, "s1"); }

static int mp_check(swc_rx_t *rx, mp_t *m) {
  int rc = check_same(rx, SW_FMT_MSGPACK, (const uint8_t *)m->sb.data, m->sb.size, NULL);
  msgpack_sbuffer_destroy(&m->sb);
  mp_init(m);
  return rc;
}

static void test_array_given_twice(void **state) {
  (void)state;
  swc_rx_t rx = {0};
  mp_t m;
  mp_init(&m);
  for (int first = 0; first <= 1; first++) {
    for (int second = -1; second <= 1; second++) { /* null, empty, one entry */
      int want = first ? -1 : 0;
      msgpack_pack_map(&m.pk, 3);
      mp_kv_int(&m, "action", SW_ACTION_MESSAGE);
      mp_kv_array(&m, "messages", first, mp_empty_map);
      mp_kv_array(&m, "messages", second, mp_empty_map);
      assert_int_equal(mp_check(&rx, &m), want);

      msgpack_pack_map(&m.pk, 3);
      mp_kv_int(&m, "action", SW_ACTION_ACK);
      mp_kv_array(&m, "res", first, mp_empty_map);
      mp_kv_array(&m, "res", second, mp_empty_map);
      assert_int_equal(mp_check(&rx, &m), want);

      msgpack_pack_map(&m.pk, 2);
      mp_kv_int(&m, "action", SW_ACTION_ACK);
      mp_str(&m, "res");
      msgpack_pack_array(&m.pk, 1);
      msgpack_pack_map(&m.pk, 2);
      mp_kv_array(&m, "serials", first, mp_serial);
      mp_kv_array(&m, "serials", second, mp_serial);
      assert_int_equal(mp_check(&rx, &m), want);
    }
  }
  msgpack_sbuffer_destroy(&m.sb);
  swc_rx_free(&rx);
}

/* TM2a ids from a long ProtocolMessage id: whole on both paths (the full
 * decoder's path cut them at 159 bytes, dropping the index: a fuzzer
 * finding); beyond SWC_MAX_SYNTH_ID bytes, none, so that a frame cannot
 * make its messages cost 1000 times its size. */
static void test_long_message_ids(void **state) {
  (void)state;
  swc_rx_t rx = {0};
  size_t lens[] = {150, 200, SWC_MAX_SYNTH_ID, SWC_MAX_SYNTH_ID + 1};
  for (size_t k = 0; k < sizeof lens / sizeof *lens; k++) {
    size_t len = lens[k];
    for (int full = 0; full < 2; full++) { /* connectionKey: only the full decoder reads it */
      sw_buf_t frame = {0};
      buf_printf(&frame, "{\"action\":15,\"channel\":\"c\",%s\"id\":\"", full ? "\"connectionKey\":\"k\"," : "");
      for (size_t i = 0; i < len; i++) buf_append_byte(&frame, 'p');
      buf_printf(&frame, "\",\"messages\":[{\"data\":\"a\"},{\"id\":\"own\"},{}]}");
      buf_append_byte(&frame, 0);
      seen_t s;
      assert_int_equal(json_frame(&rx, (const char *)frame.data, &s), 0);
      assert_int_equal(s.n, 3);
      if (len <= SWC_MAX_SYNTH_ID) {
        for (size_t i = 0; i < 3; i += 2) {
          const char *id = field(&s, i, "id");
          assert_non_null(id);
          assert_int_equal(strlen(id), len + 2);
          assert_int_equal(strspn(id, "p"), len);
          assert_string_equal(id + len, i ? ":2" : ":0");
        }
      } else {
        assert_null(field(&s, 0, "id"));
        assert_null(field(&s, 2, "id"));
      }
      assert_string_equal(field(&s, 1, "id"), "own");
      seen_free(&s);
      buf_free(&frame);
    }
  }
  swc_rx_free(&rx);
}

/* The scratch buffers are reused: a frame after a longer one sees only its
 * own strings; after a frame too big to keep, the memory is let go. */
static void test_scratch_reuse(void **state) {
  (void)state;
  swc_rx_t rx = {0};
  seen_t s;
  assert_int_equal(json_frame(&rx, "{\"action\":15,\"channel\":\"a-long-channel-name\",\"messages\":[{\"name\":\"first-name\","
                                   "\"data\":\"first data, long\"}]}",
                              &s),
                   0);
  seen_free(&s);
  assert_true(rx.text.cap > 0 && rx.text.cap <= 65536); /* kept for the next frame */
  assert_int_equal(json_frame(&rx, "{\"action\":15,\"channel\":\"b\",\"messages\":[{\"name\":\"n\",\"data\":\"d\"}]}", &s), 0);
  assert_string_equal(field(&s, 0, "name"), "n");
  assert_string_equal(field(&s, 0, "data"), "64");
  assert_true(strstr(s.desc, "\"channel\":\"b\"") != NULL);
  seen_free(&s);
  size_t big = 200000;
  char *text = malloc(big + 100);
  int k = snprintf(text, 100, "{\"action\":15,\"channel\":\"c\",\"messages\":[{\"data\":\"");
  memset(text + k, 'z', big);
  strcpy(text + k + big, "\"}]}");
  assert_int_equal(json_frame(&rx, text, &s), 0);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(s.msgs, 0), "len")), (json_int_t)big);
  seen_free(&s);
  assert_int_equal(rx.text.cap, 0);
  free(text);
  swc_rx_free(&rx);
}

/* A handler that decodes another frame (as a callback running another
 * client's private loop would) gets its views intact afterwards: the inner
 * frame had a scratch of its own. */
typedef struct nested {
  int depth;
  char *inner;
} nested_t;

static const char *const outer_frame = "{\"action\":15,\"channel\":\"outer\",\"messages\":[{\"name\":\"o\",\"data\":\"outer data\"}]}";
static const char *const inner_frame = "{\"action\":15,\"channel\":\"inner\",\"messages\":[{\"name\":\"i\",\"data\":\"INNER DATA, longer\"}]}";

static void on_nested(void *ud, const swc_rx_pmsg_t *m) {
  nested_t *x = ud;
  if (x->depth++ == 0) {
    char *before = describe(&m->pm, m->msgs, m->n_msgs);
    sw_error_t err;
    assert_int_equal(swc_rx_decode(SW_FMT_JSON, (const uint8_t *)inner_frame, strlen(inner_frame), on_nested, x, &err), 0);
    char *after = describe(&m->pm, m->msgs, m->n_msgs);
    assert_string_equal(before, after);
    assert_non_null(strstr(after, "\"channel\":\"outer\""));
    free(before);
    free(after);
  } else {
    x->inner = describe(&m->pm, m->msgs, m->n_msgs);
  }
}

static void test_nested_decode(void **state) {
  (void)state;
  nested_t x = {0};
  sw_error_t err;
  for (int round = 0; round < 2; round++) { /* the second reuses the thread's scratch */
    x.depth = 0;
    assert_int_equal(swc_rx_decode(SW_FMT_JSON, (const uint8_t *)outer_frame, strlen(outer_frame), on_nested, &x, &err), 0);
    assert_int_equal(x.depth, 2);
    assert_non_null(strstr(x.inner, "\"channel\":\"inner\""));
    free(x.inner);
  }
}

/* The client's receive cache (rx_ch: the channel of the previous MESSAGE)
 * never outlives the channel: after the cached channel is released, frames
 * for its name, for another channel and for a fresh handle of the same name
 * go where they should (under ASan, a stale cache is a use-after-free here). */
typedef struct chan_count {
  int a, b;
} chan_count_t;

static void count_a(sw_channel_t *ch, const sw_message_t *m, void *ud) {
  (void)ch, (void)m;
  ((chan_count_t *)ud)->a++;
}

static void count_b(sw_channel_t *ch, const sw_message_t *m, void *ud) {
  (void)ch, (void)m;
  ((chan_count_t *)ud)->b++;
}

static void to_channels(void *ud, const swc_rx_pmsg_t *r) { swc_channel_on_pmsg(ud, r); }

static void deliver(sw_client_t *c, const char *channel) {
  char frame[128];
  int n = snprintf(frame, sizeof frame, "{\"action\":15,\"channel\":\"%s\",\"messages\":[{\"data\":\"x\"}]}", channel);
  sw_error_t err;
  assert_int_equal(swc_rx_decode(SW_FMT_JSON, (const uint8_t *)frame, (size_t)n, to_channels, c, &err), 0);
}

static sw_channel_t *attached_channel(sw_client_t *c, const char *name, sw_message_cb cb, void *ud) {
  sw_channel_t *ch = sw_client_channel(c, name);
  assert_non_null(ch);
  ch->state = SW_CHANNEL_ATTACHED; /* as after an ATTACHED; the client never connects */
  assert_true(sw_channel_subscribe(ch, NULL, cb, ud) > 0);
  return ch;
}

static void test_release_cached_channel(void **state) {
  (void)state;
  sw_options_t o;
  sw_options_init(&o);
  o.key = "app1.key1:the-secret-value";
  sw_client_t *c;
  assert_int_equal(sw_client_new(&o, &c, NULL), SW_OK);
  chan_count_t got = {0}, fresh = {0};
  sw_channel_t *a = attached_channel(c, "a", count_a, &got);
  attached_channel(c, "b", count_b, &got);
  deliver(c, "a");
  assert_ptr_equal(c->rx_ch, a);
  assert_int_equal(got.a, 1);

  assert_int_equal(sw_channel_release(a), SW_OK); /* the table's reference was the last: a is freed */
  assert_null(c->rx_ch);
  deliver(c, "a"); /* no such channel now: dropped */
  deliver(c, "b");
  assert_int_equal(got.a, 1);
  assert_int_equal(got.b, 1);

  sw_channel_t *a2 = attached_channel(c, "a", count_a, &fresh);
  deliver(c, "a");
  assert_ptr_equal(c->rx_ch, a2);
  assert_int_equal(fresh.a, 1);
  assert_int_equal(got.a, 1);
  sw_client_free(c); /* and the cache goes with the table */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_random_frames),      cmocka_unit_test(test_append_delivery),
      cmocka_unit_test(test_data_and_inherited_fields), cmocka_unit_test(test_extras_edge_cases),
      cmocka_unit_test(test_ack_and_full_decoder), cmocka_unit_test(test_scratch_reuse),
      cmocka_unit_test(test_nested_decode),     cmocka_unit_test(test_release_cached_channel),
      cmocka_unit_test(test_long_message_ids),  cmocka_unit_test(test_array_given_twice),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
