/* test_codec.c: the protocol codecs (src/proto/codec.h, pmsg.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/codec.h"
#include "proto/textenc.h"
#include "proto/wire.h"

/* ---- helpers ---- */

/* tests/fixtures/codec.json, parsed (SW_FIXTURES_DIR is set by CMake). */
static json_t *load_fixture(const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", SW_FIXTURES_DIR, name);
  json_error_t jerr;
  json_t *j = json_load_file(path, 0, &jerr);
  if (!j) fail_msg("cannot load %s: %s", path, jerr.text);
  return j;
}

/* Appends the bytes of a hex string to b. */
static void append_hex(sw_buf_t *b, const char *hex) {
  size_t n = strlen(hex);
  assert_int_equal(n % 2, 0);
  for (size_t i = 0; i < n; i += 2) {
    unsigned v;
    assert_int_equal(sscanf(hex + i, "%2x", &v), 1);
    assert_int_equal(buf_append_byte(b, (uint8_t)v), 0);
  }
}

static const uint8_t *U(const char *s) { return (const uint8_t *)s; }

static int decode_json(const char *s, sw_pmsg_t *p, sw_error_t *err) {
  return codec_decode_pmsg(SW_FMT_JSON, U(s), strlen(s), p, err);
}

/* Encodes p as JSON and checks the exact text. */
static void assert_json_text(const sw_pmsg_t *p, const char *want) {
  sw_buf_t b = {0};
  assert_int_equal(codec_encode_pmsg(SW_FMT_JSON, p, &b), 0);
  assert_int_equal(buf_append_byte(&b, 0), 0);
  assert_string_equal((const char *)b.data, want);
  buf_free(&b);
}

/* Encodes in f and decodes the result again. */
static void transcode(sw_format_t f, const sw_pmsg_t *in, sw_pmsg_t *out) {
  sw_buf_t b = {0};
  sw_error_t err = {0};
  assert_int_equal(codec_encode_pmsg(f, in, &b), 0);
  int rc = codec_decode_pmsg(f, b.data, b.len, out, &err);
  if (rc) fail_msg("re-decode failed: %d %s", err.code, err.message);
  buf_free(&b);
}

static void assert_str_eq(const char *a, const char *b) {
  if (!a || !b)
    assert_ptr_equal(a, b);
  else
    assert_string_equal(a, b);
}

static void assert_json_eq(const json_t *a, const json_t *b) {
  if (!a || !b)
    assert_ptr_equal(a, b);
  else
    assert_true(json_equal(a, b));
}

static void assert_data_eq(const sw_data_t *a, const sw_data_t *b) {
  assert_int_equal(a->kind, b->kind);
  assert_int_equal(a->len, b->len);
  if (a->len) assert_memory_equal(a->bytes, b->bytes, a->len);
}

static void assert_msg_eq(const sw_msg_t *a, const sw_msg_t *b) {
  assert_str_eq(a->id, b->id);
  assert_str_eq(a->client_id, b->client_id);
  assert_str_eq(a->connection_id, b->connection_id);
  assert_str_eq(a->connection_key, b->connection_key);
  assert_str_eq(a->name, b->name);
  assert_str_eq(a->encoding, b->encoding);
  assert_str_eq(a->serial, b->serial);
  assert_int_equal(a->timestamp, b->timestamp);
  assert_int_equal(a->action, b->action);
  assert_data_eq(&a->data, &b->data);
  assert_json_eq(a->extras, b->extras);
  assert_json_eq(a->version, b->version);
}

static void assert_presence_eq(const sw_presence_t *a, const sw_presence_t *b) {
  assert_int_equal(a->action, b->action);
  assert_str_eq(a->id, b->id);
  assert_str_eq(a->client_id, b->client_id);
  assert_str_eq(a->connection_id, b->connection_id);
  assert_str_eq(a->encoding, b->encoding);
  assert_int_equal(a->timestamp, b->timestamp);
  assert_data_eq(&a->data, &b->data);
  assert_json_eq(a->extras, b->extras);
}

static void assert_pmsg_eq(const sw_pmsg_t *a, const sw_pmsg_t *b) {
  assert_int_equal(a->action, b->action);
  assert_int_equal(a->has_flags, b->has_flags);
  assert_int_equal(a->flags, b->flags);
  assert_int_equal(a->has_count, b->has_count);
  assert_int_equal(a->count, b->count);
  assert_int_equal(a->has_msg_serial, b->has_msg_serial);
  assert_int_equal(a->msg_serial, b->msg_serial);
  assert_int_equal(a->timestamp, b->timestamp);
  assert_str_eq(a->id, b->id);
  assert_str_eq(a->channel, b->channel);
  assert_str_eq(a->channel_serial, b->channel_serial);
  assert_str_eq(a->connection_id, b->connection_id);
  assert_str_eq(a->connection_key, b->connection_key);
  assert_int_equal(a->error.code, b->error.code);
  assert_int_equal(a->error.status, b->error.status);
  assert_string_equal(a->error.message, b->error.message);
  assert_json_eq(a->params, b->params);
  assert_str_eq(a->auth_access_token, b->auth_access_token);
  assert_int_equal(a->n_messages, b->n_messages);
  for (size_t i = 0; i < a->n_messages; i++) assert_msg_eq(&a->messages[i], &b->messages[i]);
  assert_int_equal(a->n_presence, b->n_presence);
  for (size_t i = 0; i < a->n_presence; i++) assert_presence_eq(&a->presence[i], &b->presence[i]);
  assert_int_equal(a->n_res, b->n_res);
  for (size_t i = 0; i < a->n_res; i++) {
    assert_int_equal(a->res[i].n_serials, b->res[i].n_serials);
    for (size_t j = 0; j < a->res[i].n_serials; j++)
      assert_str_eq(a->res[i].serials[j], b->res[i].serials[j]);
  }
}

static void set_data(sw_data_t *d, sw_data_kind_t kind, const void *p, size_t n) {
  d->kind = kind;
  d->bytes = malloc(n + 1);
  memcpy(d->bytes, p, n);
  d->bytes[n] = 0;
  d->len = n;
}

/* A ProtocolMessage with every decodable field set; the caller frees it. */
static void full_pmsg(sw_pmsg_t *p) {
  memset(p, 0, sizeof *p);
  p->action = SW_ACTION_MESSAGE;
  p->flags = SW_FLAG_HAS_BACKLOG | SW_MODE_PUBLISH;
  p->has_flags = true;
  p->count = 3;
  p->has_count = true;
  p->msg_serial = 0; /* zero but present */
  p->has_msg_serial = true;
  p->timestamp = 1700000000123;
  p->id = strdup("conn:0");
  p->channel = strdup("chän/nel");
  p->channel_serial = strdup("cs:1");
  p->connection_id = strdup("conn");
  p->connection_key = strdup("key!x");
  errors_set(&p->error, 40160, "denied \"quoted\" \xc3\xa9");
  p->params = json_pack("{s:s,s:s}", "rewind", "1", "delta", "vcdiff");
  p->auth_access_token = strdup("tok.en");
  p->n_messages = 3;
  p->messages = calloc(3, sizeof *p->messages);
  sw_msg_t *m = &p->messages[0];
  m->id = strdup("id:0");
  m->client_id = strdup("client");
  m->connection_id = strdup("conn");
  m->connection_key = strdup("ckey");
  m->name = strdup("greeting");
  m->encoding = strdup("utf-8/cipher+aes-128-cbc");
  m->serial = strdup("01234@abc");
  m->timestamp = 42;
  m->action = 0;
  m->extras = json_pack("{s:{s:b,s:I,s:f},s:[s,n]}", "headers", "ok", 1, "big", (json_int_t)1 << 53,
                        "r", 1.25, "list", "a");
  m->version = json_pack("{s:s,s:I}", "serial", "v1", "timestamp", (json_int_t)1700000000000);
  static const uint8_t bin[] = {0, 1, 2, 0xff, 0xfe, '"', '\\'};
  set_data(&m->data, SW_DATA_BINARY, bin, sizeof bin);
  m = &p->messages[1];
  m->action = -1;
  static const char text[] = "line\n\ttab \x01 nul\0end \xe2\x82\xac";
  set_data(&m->data, SW_DATA_STRING, text, sizeof text - 1);
  m = &p->messages[2];
  m->action = 99; /* unknown to us, still carried */
  m->encoding = strdup("json");
  set_data(&m->data, SW_DATA_STRING, "{\"a\":1}", 7);
  p->n_presence = 1;
  p->presence = calloc(1, sizeof *p->presence);
  p->presence[0].action = 2;
  p->presence[0].id = strdup("p:0");
  p->presence[0].client_id = strdup("bob");
  p->presence[0].connection_id = strdup("conn");
  p->presence[0].timestamp = 7;
  p->presence[0].extras = json_pack("{s:s}", "k", "v");
  set_data(&p->presence[0].data, SW_DATA_BINARY, "\x00\x10", 2);
  p->n_res = 2;
  p->res = calloc(2, sizeof *p->res);
  p->res[0].n_serials = 2;
  p->res[0].serials = calloc(2, sizeof(char *));
  p->res[0].serials[0] = strdup("s0");
  p->res[1].n_serials = 0;
}

/* ---- round trips ---- */

static void test_roundtrip_struct(void **state) {
  (void)state;
  sw_pmsg_t p, q;
  full_pmsg(&p);
  for (int f = SW_FMT_JSON; f <= SW_FMT_MSGPACK; f++) {
    transcode(f, &p, &q);
    assert_pmsg_eq(&p, &q);
    pmsg_free(&q);
  }
  pmsg_free(&p);
  assert_null(p.messages);
}

/* JSON text -> struct -> JSON text is stable, and so is msgpack. */
static void test_roundtrip_bytes_stable(void **state) {
  (void)state;
  sw_pmsg_t p;
  full_pmsg(&p);
  for (int f = SW_FMT_JSON; f <= SW_FMT_MSGPACK; f++) {
    sw_buf_t a = {0}, b = {0};
    sw_pmsg_t q;
    sw_error_t err;
    assert_int_equal(codec_encode_pmsg(f, &p, &a), 0);
    assert_int_equal(codec_decode_pmsg(f, a.data, a.len, &q, &err), 0);
    assert_int_equal(codec_encode_pmsg(f, &q, &b), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    pmsg_free(&q);
    buf_free(&a);
    buf_free(&b);
  }
  pmsg_free(&p);
}

/* TR4q: param values that are numbers or booleans are taken as strings
 * (ably-js sends {rewind: 1} as given), null as no param; others are left
 * for the receiver to refuse. */
static void test_params_coerced(void **state) {
  (void)state;
  const char *in = "{\"action\":10,\"params\":{\"rewind\":1,\"a\":1.5,\"b\":true,\"c\":null,\"d\":{\"x\":1}}}";
  sw_pmsg_t p;
  sw_error_t err = {0};
  assert_int_equal(decode_json(in, &p, &err), 0);
  assert_string_equal(json_string_value(json_object_get(p.params, "rewind")), "1");
  assert_string_equal(json_string_value(json_object_get(p.params, "a")), "1.5");
  assert_string_equal(json_string_value(json_object_get(p.params, "b")), "true");
  assert_null(json_object_get(p.params, "c"));
  assert_true(json_is_object(json_object_get(p.params, "d")));
  pmsg_free(&p);
}

static void test_json_decode_fields(void **state) {
  (void)state;
  const char *in =
      "{\"action\":10,\"flags\":65536,\"channel\":\"c\",\"msgSerial\":7,\"count\":1,"
      "\"timestamp\":1.7e12,\"params\":{\"rewind\":\"1\"},\"auth\":{\"accessToken\":\"T\"},"
      "\"error\":{\"code\":40140,\"statusCode\":401,\"message\":\"m\",\"href\":\"h\"},"
      "\"unknown\":{\"deep\":[1,2]},\"connectionDetails\":{\"clientId\":\"x\"},"
      "\"messages\":[{\"name\":\"n\",\"data\":\"d\",\"encoding\":null,\"id\":null}],"
      "\"presence\":[{\"action\":1,\"clientId\":\"c\",\"data\":[1,{\"a\":null}]}],"
      "\"res\":[{\"serials\":[\"a\",null]}]}";
  sw_pmsg_t p;
  sw_error_t err = {0};
  assert_int_equal(decode_json(in, &p, &err), 0);
  assert_int_equal(p.action, SW_ACTION_ATTACH);
  assert_true(p.has_flags);
  assert_int_equal(p.flags, SW_MODE_PRESENCE);
  assert_string_equal(p.channel, "c");
  assert_true(p.has_msg_serial);
  assert_int_equal(p.msg_serial, 7);
  assert_int_equal(p.count, 1);
  assert_int_equal(p.timestamp, 1700000000000);
  assert_string_equal(json_string_value(json_object_get(p.params, "rewind")), "1");
  assert_string_equal(p.auth_access_token, "T");
  assert_int_equal(p.error.code, 40140);
  assert_int_equal(p.error.status, 401);
  assert_string_equal(p.error.message, "m");
  assert_int_equal(p.n_messages, 1);
  assert_string_equal(p.messages[0].name, "n");
  assert_null(p.messages[0].id);
  assert_null(p.messages[0].encoding);
  assert_int_equal(p.messages[0].action, -1);
  assert_int_equal(p.messages[0].data.kind, SW_DATA_STRING);
  assert_string_equal((char *)p.messages[0].data.bytes, "d");
  assert_int_equal(p.n_presence, 1);
  assert_int_equal(p.presence[0].action, 1);
  assert_string_equal((char *)p.presence[0].data.bytes, "[1,{\"a\":null}]");
  assert_string_equal(p.presence[0].encoding, "json");
  assert_int_equal(p.n_res, 1);
  assert_int_equal(p.res[0].n_serials, 2);
  assert_string_equal(p.res[0].serials[0], "a");
  assert_null(p.res[0].serials[1]);
  pmsg_free(&p);
}

static void test_unknown_action_decodes(void **state) {
  (void)state;
  sw_pmsg_t p;
  sw_error_t err;
  assert_int_equal(decode_json("{\"action\":250}", &p, &err), 0);
  assert_int_equal(p.action, 250);
  pmsg_free(&p);
  /* msgpack {"action": 30} */
  assert_int_equal(codec_decode_pmsg(SW_FMT_MSGPACK,
                                     U("\x81\xa6"
                                       "action\x1e"),
                                     9, &p, &err),
                   0);
  assert_int_equal(p.action, 30);
  pmsg_free(&p);
}

/* ---- data canonical form ---- */

static void test_json_base64_to_binary(void **state) {
  (void)state;
  sw_pmsg_t p, q;
  sw_error_t err;
  assert_int_equal(
      decode_json(
          "{\"action\":15,\"messages\":[{\"data\":\"3q2+7w==\",\"encoding\":\"base64\"},"
          "{\"data\":\"YQ==\",\"encoding\":\"utf-8/base64\"},"
          "{\"data\":\"\",\"encoding\":\"base64\"},{\"data\":\"YWI=\",\"encoding\":\"base64\"}]}",
          &p, &err),
      0);
  sw_msg_t *m = p.messages;
  assert_int_equal(m[0].data.kind, SW_DATA_BINARY);
  assert_int_equal(m[0].data.len, 4);
  assert_memory_equal(m[0].data.bytes, "\xde\xad\xbe\xef", 4);
  assert_null(m[0].encoding);
  assert_int_equal(m[1].data.kind, SW_DATA_BINARY);
  assert_int_equal(m[1].data.len, 1);
  assert_string_equal(m[1].encoding, "utf-8");
  assert_int_equal(m[2].data.kind, SW_DATA_BINARY);
  assert_int_equal(m[2].data.len, 0);
  assert_int_equal(m[3].data.len, 2);
  assert_memory_equal(m[3].data.bytes, "ab", 3); /* NUL-terminated */

  /* To msgpack: bin, no base64 step. */
  sw_buf_t b = {0};
  assert_int_equal(codec_encode_pmsg(SW_FMT_MSGPACK, &p, &b), 0);
  assert_non_null(memmem(b.data, b.len,
                         "\xa4"
                         "data\xc4\x04\xde\xad\xbe\xef",
                         11));
  assert_null(memmem(b.data, b.len, "base64", 6));
  assert_int_equal(codec_decode_pmsg(SW_FMT_MSGPACK, b.data, b.len, &q, &err), 0);
  assert_pmsg_eq(&p, &q);
  /* And back to JSON text. */
  assert_json_text(&q,
                   "{\"action\":15,\"messages\":[{\"data\":\"3q2+7w==\",\"encoding\":\"base64\"},"
                   "{\"data\":\"YQ==\",\"encoding\":\"utf-8/base64\"},"
                   "{\"data\":\"\",\"encoding\":\"base64\"},"
                   "{\"data\":\"YWI=\",\"encoding\":\"base64\"}]}");
  buf_free(&b);
  pmsg_free(&p);
  pmsg_free(&q);
  /* Dropping the step leaves no empty encoding behind. */
  assert_int_equal(
      decode_json("{\"action\":15,\"messages\":[{\"data\":\"YQ==\",\"encoding\":\"/base64\"}]}", &p,
                  &err),
      0);
  assert_null(p.messages[0].encoding);
  pmsg_free(&p);
}

/* A msgpack publisher's bin reaches JSON subscribers as base64. */
static void test_msgpack_bin_to_json(void **state) {
  (void)state;
  /* {"action":15,"messages":[{"data":bin(00 ff),"encoding":"cipher"}]} */
  static const char in[] = "\x82\xa6"
                           "action\x0f\xa8"
                           "messages\x91\x82\xa4"
                           "data\xc4\x02\x00\xff"
                           "\xa8"
                           "encoding\xa6"
                           "cipher";
  sw_pmsg_t p;
  sw_error_t err;
  assert_int_equal(codec_decode_pmsg(SW_FMT_MSGPACK, U(in), sizeof in - 1, &p, &err), 0);
  assert_int_equal(p.messages[0].data.kind, SW_DATA_BINARY);
  assert_int_equal(p.messages[0].data.len, 2);
  assert_json_text(
      &p, "{\"action\":15,\"messages\":[{\"data\":\"AP8=\",\"encoding\":\"cipher/base64\"}]}");
  pmsg_free(&p);
}

static void test_object_data_gets_json_step(void **state) {
  (void)state;
  sw_pmsg_t p;
  sw_error_t err;
  assert_int_equal(
      decode_json("{\"action\":15,\"messages\":[{\"data\":{\"foo\":42,\"bar\":[\"a\",1.2,"
                  "{\"boo\":\"ha\"}]}},{\"data\":[],\"encoding\":\"utf-8\"}]}",
                  &p, &err),
      0);
  assert_int_equal(p.messages[0].data.kind, SW_DATA_STRING);
  assert_string_equal((char *)p.messages[0].data.bytes,
                      "{\"foo\":42,\"bar\":[\"a\",1.2,{\"boo\":\"ha\"}]}");
  assert_string_equal(p.messages[0].encoding, "json");
  assert_string_equal((char *)p.messages[1].data.bytes, "[]");
  assert_string_equal(p.messages[1].encoding, "utf-8/json");
  pmsg_free(&p);
}

/* A fixture case's expected data: {type, text | hex | json, encoding} and,
 * for a repeated payload, repeat {byte, count}. */
static void assert_fixture_data(const char *name, const sw_data_t *d, const char *encoding, const json_t *expect,
                                const json_t *repeat) {
  const char *type = json_string_value(json_object_get(expect, "type"));
  const char *want_enc = json_string_value(json_object_get(expect, "encoding"));
  sw_data_kind_t kind = !strcmp(type, "string") ? SW_DATA_STRING : !strcmp(type, "binary") ? SW_DATA_BINARY : SW_DATA_NONE;
  if (d->kind != kind) fail_msg("%s: data kind %d, want %s", name, d->kind, type);
  if (want_enc || encoding) {
    if (!want_enc || !encoding || strcmp(want_enc, encoding))
      fail_msg("%s: encoding %s, want %s", name, encoding ? encoding : "(none)", want_enc ? want_enc : "(none)");
  }
  sw_buf_t want = {0};
  const json_t *js = json_object_get(expect, "json");
  if (js) {
    json_t *got = json_loadb((char *)d->bytes, d->len, 0, NULL);
    if (!got || !json_equal(got, js)) fail_msg("%s: JSON data differs", name);
    json_decref(got);
    return;
  }
  const char *text = json_string_value(json_object_get(expect, "text"));
  const char *hex = json_string_value(json_object_get(expect, "hex"));
  if (text) assert_int_equal(buf_append(&want, text, strlen(text)), 0);
  if (hex) append_hex(&want, hex);
  if (repeat) {
    unsigned byte;
    sscanf(json_string_value(json_object_get(repeat, "byte")), "%2x", &byte);
    for (json_int_t i = 0; i < json_integer_value(json_object_get(repeat, "count")); i++)
      assert_int_equal(buf_append_byte(&want, (uint8_t)byte), 0);
  }
  if (d->len != want.len) fail_msg("%s: %zu data bytes, want %zu", name, d->len, want.len);
  if (want.len) assert_memory_equal(d->bytes, want.data, want.len);
  buf_free(&want);
}

/* tests/fixtures/codec.json "msgpack": ProtocolMessages written byte by byte
 * from the msgpack spec, at the edges of each str and bin format. Each is
 * decoded, checked, and encoded again by our encoder (same header). */
static void test_msgpack_fixtures(void **state) {
  (void)state;
  json_t *fx = load_fixture("codec.json");
  json_t *mp = json_object_get(fx, "msgpack");
  const char *envelope = json_string_value(json_object_get(mp, "envelope"));
  json_t *cases = json_object_get(mp, "cases");
  assert_true(json_array_size(cases) >= 10);
  size_t i;
  json_t *c;
  json_array_foreach(cases, i, c) {
    const char *name = json_string_value(json_object_get(c, "name"));
    json_t *repeat = json_object_get(c, "repeat");
    sw_buf_t wire = {0};
    append_hex(&wire, envelope);
    append_hex(&wire, json_string_value(json_object_get(c, "message")));
    if (repeat) {
      unsigned byte;
      sscanf(json_string_value(json_object_get(repeat, "byte")), "%2x", &byte);
      for (json_int_t k = 0; k < json_integer_value(json_object_get(repeat, "count")); k++)
        assert_int_equal(buf_append_byte(&wire, (uint8_t)byte), 0);
    }
    sw_pmsg_t p;
    sw_error_t err = {0};
    if (codec_decode_pmsg(SW_FMT_MSGPACK, wire.data, wire.len, &p, &err)) fail_msg("%s: %s", name, err.message);
    assert_int_equal(p.action, SW_ACTION_MESSAGE);
    assert_string_equal(p.channel, "fixtures");
    assert_int_equal(p.n_messages, 1);
    const sw_msg_t *m = &p.messages[0];
    assert_fixture_data(name, &m->data, m->encoding, json_object_get(c, "expect"), repeat);
    /* Our encoder: the same message survives both formats... */
    for (int f = SW_FMT_JSON; f <= SW_FMT_MSGPACK; f++) {
      sw_pmsg_t q;
      transcode(f, &p, &q);
      assert_pmsg_eq(&p, &q);
      pmsg_free(&q);
    }
    /* ...and writes the data with the header the spec prescribes. */
    const char *head = json_string_value(json_object_get(c, "dataHead"));
    if (head) {
      sw_buf_t out = {0}, want = {0};
      append_hex(&want, "a464617461"); /* "data" */
      append_hex(&want, head);
      assert_int_equal(codec_encode_pmsg(SW_FMT_MSGPACK, &p, &out), 0);
      if (!memmem(out.data, out.len, want.data, want.len)) fail_msg("%s: our encoder does not write %s", name, head);
      buf_free(&out);
      buf_free(&want);
    }
    pmsg_free(&p);
    buf_free(&wire);
  }
  json_decref(fx);
}

/* tests/fixtures/codec.json "rest": message bodies as REST clients post them
 * (data + encoding), what we make of them, and what we send back in JSON. */
static void test_rest_message_fixtures(void **state) {
  (void)state;
  json_t *fx = load_fixture("codec.json");
  json_t *list = json_object_get(fx, "rest");
  size_t i;
  json_t *c;
  assert_true(json_array_size(list) >= 8);
  json_array_foreach(list, i, c) {
    const char *name = json_string_value(json_object_get(c, "name"));
    json_t *body = json_pack("{s:O,s:O}", "data", json_object_get(c, "data"), "encoding",
                             json_object_get(c, "encoding"));
    char *text = json_dumps(body, JSON_COMPACT);
    sw_msg_t *msgs;
    size_t n;
    sw_error_t err;
    if (codec_decode_msgs(SW_FMT_JSON, U(text), strlen(text), &msgs, &n, &err)) fail_msg("%s: %s", name, err.message);
    assert_int_equal(n, 1);
    assert_fixture_data(name, &msgs[0].data, msgs[0].encoding, json_object_get(c, "expect"), NULL);
    /* Through msgpack and back to JSON: the case's own data/encoding, or
     * what "reencoded" says when we normalise it. */
    const json_t *again_want = json_object_get(c, "reencoded") ? json_object_get(c, "reencoded") : c;
    sw_buf_t mp = {0}, js = {0};
    sw_msg_t *back;
    size_t nb;
    assert_int_equal(codec_encode_msgs(SW_FMT_MSGPACK, msgs, n, &mp), 0);
    assert_int_equal(codec_decode_msgs(SW_FMT_MSGPACK, mp.data, mp.len, &back, &nb, &err), 0);
    assert_int_equal(codec_encode_msg(SW_FMT_JSON, &back[0], &js), 0);
    json_t *again = json_loadb((char *)js.data, js.len, 0, NULL);
    if (!json_equal(json_object_get(again, "data"), json_object_get(again_want, "data")))
      fail_msg("%s: data sent back differs", name);
    if (json_is_null(json_object_get(again_want, "encoding")))
      assert_null(json_object_get(again, "encoding"));
    else if (!json_equal(json_object_get(again, "encoding"), json_object_get(again_want, "encoding")))
      fail_msg("%s: encoding sent back differs", name);
    json_decref(again);
    msg_clear(&back[0]);
    free(back);
    msg_clear(&msgs[0]);
    free(msgs);
    buf_free(&mp);
    buf_free(&js);
    free(text);
    json_decref(body);
  }
  json_decref(fx);
}

/* ---- outbound shapes ---- */

static void test_ack_res_encoding(void **state) {
  (void)state;
  sw_pmsg_t p = {.action = SW_ACTION_ACK,
                 .msg_serial = 5,
                 .has_msg_serial = true,
                 .count = 2,
                 .has_count = true};
  char *serials[] = {"s1", NULL};
  sw_publish_result_t res = {.serials = serials, .n_serials = 2};
  p.res = &res;
  p.n_res = 1;
  assert_json_text(
      &p, "{\"action\":1,\"count\":2,\"msgSerial\":5,\"res\":[{\"serials\":[\"s1\",null]}]}");
  sw_buf_t b = {0};
  assert_int_equal(codec_encode_pmsg(SW_FMT_MSGPACK, &p, &b), 0);
  static const char want[] = "\x84\xa6"
                             "action\x01\xa5"
                             "count\x02\xa9"
                             "msgSerial\x05\xa3"
                             "res\x91\x81"
                             "\xa7"
                             "serials\x92\xa2"
                             "s1\xc0";
  assert_int_equal(b.len, sizeof want - 1);
  assert_memory_equal(b.data, want, b.len);
  buf_free(&b);
}

static void test_connection_details_encoding(void **state) {
  (void)state;
  sw_conn_details_t cd = {.client_id = "bob",
                          .connection_key = "k!1",
                          .max_message_size = 65536,
                          .max_frame_size = 524288,
                          .max_inbound_rate = 50,
                          .connection_state_ttl = 120000,
                          .max_idle_interval = 15000,
                          .server_id = "sw-1"};
  sw_pmsg_t p = {.action = SW_ACTION_CONNECTED, .connection_id = "c1", .connection_details = &cd};
  assert_json_text(
      &p, "{\"action\":4,\"connectionId\":\"c1\",\"connectionDetails\":{\"clientId\":\"bob\","
          "\"connectionKey\":\"k!1\",\"maxMessageSize\":65536,\"maxFrameSize\":524288,"
          "\"maxInboundRate\":50,\"connectionStateTtl\":120000,\"maxIdleInterval\":15000,"
          "\"serverId\":\"sw-1\"}}");
  sw_buf_t b = {0};
  sw_error_t err;
  assert_int_equal(codec_encode_pmsg(SW_FMT_MSGPACK, &p, &b), 0);
  json_t *v = codec_decode_value(SW_FMT_MSGPACK, b.data, b.len, &err);
  assert_non_null(v);
  json_t *d = json_object_get(v, "connectionDetails");
  assert_int_equal(json_object_size(d), 8);
  assert_int_equal(json_integer_value(json_object_get(d, "connectionStateTtl")), 120000);
  assert_string_equal(json_string_value(json_object_get(d, "serverId")), "sw-1");
  json_decref(v);
  buf_free(&b);
}

static void test_error_body(void **state) {
  (void)state;
  sw_error_t e;
  errors_set(&e, 40101, "bad key");
  sw_buf_t b = {0};
  assert_int_equal(codec_encode_error_body(SW_FMT_JSON, &e, &b), 0);
  assert_int_equal(buf_append_byte(&b, 0), 0);
  assert_string_equal((char *)b.data,
                      "{\"error\":{\"code\":40101,\"statusCode\":401,\"message\":\"bad key\","
                      "\"href\":\"https://help.ably.io/error/40101\"}}");
  buf_reset(&b);
  assert_int_equal(codec_encode_error_body(SW_FMT_MSGPACK, &e, &b), 0);
  sw_error_t err;
  json_t *v = codec_decode_value(SW_FMT_MSGPACK, b.data, b.len, &err);
  json_t *want = json_pack("{s:{s:i,s:i,s:s,s:s}}", "error", "code", 40101, "statusCode", 401,
                           "message", "bad key", "href", "https://help.ably.io/error/40101");
  assert_true(json_equal(v, want));
  json_decref(v);
  json_decref(want);
  buf_free(&b);
  /* In a ProtocolMessage, statusCode comes from the code when unset. */
  sw_pmsg_t p = {.action = SW_ACTION_ERROR};
  p.error.code = 80013;
  strcpy(p.error.message, "x");
  assert_json_text(&p,
                   "{\"action\":9,\"error\":{\"code\":80013,\"statusCode\":400,\"message\":\"x\","
                   "\"href\":\"https://help.ably.io/error/80013\"}}");
}

static void test_presence_array_and_msgs(void **state) {
  (void)state;
  sw_presence_t pr[2] = {{.action = 1, .client_id = "a"}, {.action = 3, .client_id = "b"}};
  sw_buf_t b = {0};
  assert_int_equal(codec_encode_presence_array(SW_FMT_JSON, pr, 2, &b), 0);
  assert_int_equal(buf_append_byte(&b, 0), 0);
  assert_string_equal((char *)b.data,
                      "[{\"action\":1,\"clientId\":\"a\"},{\"action\":3,\"clientId\":\"b\"}]");
  buf_reset(&b);
  assert_int_equal(codec_encode_presence_array(SW_FMT_JSON, NULL, 0, &b), 0);
  assert_int_equal(b.len, 2);
  assert_memory_equal(b.data, "[]", 2);
  buf_reset(&b);
  sw_msg_t m[2] = {{.name = "x", .action = -1}, {.name = "y", .action = -1, .timestamp = 5}};
  assert_int_equal(codec_encode_msgs(SW_FMT_MSGPACK, m, 2, &b), 0);
  sw_msg_t *out;
  size_t n;
  sw_error_t err;
  assert_int_equal(codec_decode_msgs(SW_FMT_MSGPACK, b.data, b.len, &out, &n, &err), 0);
  assert_int_equal(n, 2);
  assert_msg_eq(&out[0], &m[0]);
  assert_msg_eq(&out[1], &m[1]);
  for (size_t i = 0; i < n; i++) msg_clear(&out[i]);
  free(out);
  buf_free(&b);
}

static void test_decode_msgs_shapes(void **state) {
  (void)state;
  sw_msg_t *out;
  size_t n;
  sw_error_t err;
  assert_int_equal(codec_decode_msgs(SW_FMT_JSON, U("{\"name\":\"a\"}"), 12, &out, &n, &err), 0);
  assert_int_equal(n, 1);
  assert_string_equal(out[0].name, "a");
  msg_clear(&out[0]);
  free(out);
  assert_int_equal(codec_decode_msgs(SW_FMT_JSON, U("[]"), 2, &out, &n, &err), 0);
  assert_int_equal(n, 0);
  assert_null(out);
  err.code = 0;
  assert_int_equal(codec_decode_msgs(SW_FMT_JSON, U("[{\"name\":\"a\"},3]"), 16, &out, &n, &err),
                   -1);
  assert_int_equal(err.code, 40000);
  assert_null(out);
  assert_int_equal(n, 0);
  err.code = 0;
  assert_int_equal(codec_decode_msgs(SW_FMT_JSON, U("\"x\""), 3, &out, &n, &err), -1);
  assert_int_equal(err.code, 40000);
}

/* Strings that are not UTF-8 (from a caller, not a decoder) still make
 * valid JSON; control characters are escaped. */
static void test_json_escaping(void **state) {
  (void)state;
  sw_msg_t m = {.action = -1, .name = "bad\xff\xc3(\x7f", .client_id = "q\"\\/\x1f"};
  sw_buf_t b = {0};
  assert_int_equal(codec_encode_msg(SW_FMT_JSON, &m, &b), 0);
  assert_int_equal(buf_append_byte(&b, 0), 0);
  assert_string_equal((char *)b.data,
                      "{\"clientId\":\"q\\\"\\\\/\\u001f\",\"name\":\"bad\\ufffd\\ufffd(\x7f\"}");
  buf_free(&b);
}

/* A NUL inside data is fine; inside an id or name it is not. */
static void test_nul_handling(void **state) {
  (void)state;
  sw_pmsg_t p;
  sw_error_t err;
  assert_int_equal(decode_json("{\"action\":15,\"messages\":[{\"data\":\"a\\u0000b\"}]}", &p, &err),
                   0);
  assert_int_equal(p.messages[0].data.len, 3);
  assert_memory_equal(p.messages[0].data.bytes, "a\0b", 4);
  assert_json_text(&p, "{\"action\":15,\"messages\":[{\"data\":\"a\\u0000b\"}]}");
  pmsg_free(&p);
}

/* ---- malformed input ---- */

typedef struct bad_case {
  const char *in;
  size_t len; /* 0: strlen */
  int code;
} bad_case_t;

static void check_bad(sw_format_t f, const bad_case_t *c, size_t n) {
  for (size_t i = 0; i < n; i++) {
    sw_pmsg_t p;
    sw_error_t err = {0};
    size_t len = c[i].len ? c[i].len : strlen(c[i].in);
    memset(&p, 0xab, sizeof p);
    int rc = codec_decode_pmsg(f, U(c[i].in), len, &p, &err);
    if (rc != -1 || err.code != c[i].code)
      fail_msg("case %zu (%s): rc %d code %d (%s), want %d", i, f ? "msgpack" : "json", rc,
               err.code, err.message, c[i].code);
    assert_int_equal(err.status, 400);
    assert_true(err.message[0] != '\0');
    /* Nothing is left allocated: the output is all zeroes. */
    static const sw_pmsg_t zero;
    assert_memory_equal(&p, &zero, sizeof p);
  }
}

static void test_malformed_json(void **state) {
  (void)state;
  static const bad_case_t cases[] = {
      {"", 0, 40000},
      {"{", 0, 40000},
      {"[]", 0, 40000},
      {"{\"action\":15} x", 0, 40000},
      {"{\"action\":\"15\"}", 0, 40000},
      {"{\"action\":1.5}", 0, 40000},
      {"{\"action\":1e300}", 0, 40000},
      {"{\"action\":4294967296}", 0, 40000},
      {"{\"action\":99999999999999999999}", 0, 40000},
      {"{\"action\":15,\"action\":15}", 0, 40000},
      {"{\"action\":15,\"channel\":5}", 0, 40000},
      {"{\"action\":15,\"channel\":\"a\\u0000b\"}", 0, 40000},
      {"{\"action\":15,\"msgSerial\":\"1\"}", 0, 40000},
      {"{\"action\":15,\"flags\":true}", 0, 40000},
      {"{\"action\":15,\"messages\":{}}", 0, 40000},
      {"{\"action\":15,\"messages\":[1]}", 0, 40000},
      {"{\"action\":15,\"messages\":[{\"name\":1}]}", 0, 40000},
      {"{\"action\":15,\"messages\":[{\"name\":\"a\\u0000\"}]}", 0, 40000},
      {"{\"action\":15,\"messages\":[{\"id\":\"x\"},{\"extras\":[1]}]}", 0, 40000},
      {"{\"action\":15,\"messages\":[{\"version\":\"1\"}]}", 0, 40000},
      {"{\"action\":15,\"messages\":[{\"timestamp\":\"1\"}]}", 0, 40000},
      {"{\"action\":15,\"messages\":[{\"encoding\":[]}]}", 0, 40000},
      {"{\"action\":15,\"presence\":[{\"action\":\"enter\"}]}", 0, 40000},
      {"{\"action\":15,\"presence\":\"x\"}", 0, 40000},
      {"{\"action\":10,\"params\":[]}", 0, 40000},
      {"{\"action\":17,\"auth\":{\"accessToken\":7}}", 0, 40000},
      {"{\"action\":17,\"auth\":\"tok\"}", 0, 40000},
      {"{\"action\":9,\"error\":{\"code\":\"x\"}}", 0, 40000},
      {"{\"action\":1,\"res\":[{\"serials\":[1]}]}", 0, 40000},
      {"{\"action\":1,\"res\":[5]}", 0, 40000},
      {"{\"action\":15,\"channel\":\"\xff\"}", 0, 40000}, /* not UTF-8 */
      /* data problems are 40013, after earlier messages were allocated */
      {"{\"action\":15,\"messages\":[{\"name\":\"ok\",\"data\":\"x\"},{\"data\":5}]}", 0, 40013},
      {"{\"action\":15,\"messages\":[{\"data\":true}]}", 0, 40013},
      {"{\"action\":15,\"messages\":[{\"data\":\"abc\",\"encoding\":\"base64\"}]}", 0, 40013},
      {"{\"action\":15,\"messages\":[{\"data\":\"ab=c\",\"encoding\":\"base64\"}]}", 0, 40013},
      {"{\"action\":15,\"messages\":[{\"data\":\"a===\",\"encoding\":\"base64\"}]}", 0, 40013},
      {"{\"action\":15,\"messages\":[{\"data\":\"YQ==\\n\",\"encoding\":\"base64\"}]}", 0, 40013},
      {"{\"action\":15,\"messages\":[{\"data\":\"Y!==\",\"encoding\":\"x/base64\"}]}", 0, 40013},
      {"{\"action\":14,\"presence\":[{\"data\":1.5}]}", 0, 40013},
  };
  check_bad(SW_FMT_JSON, cases, sizeof cases / sizeof *cases);
}

#define MP(s)                                                                                      \
  { s, sizeof(s) - 1, 40000 }
#define MP_DATA(s)                                                                                 \
  { s, sizeof(s) - 1, 40013 }

static void test_malformed_msgpack(void **state) {
  (void)state;
  static const bad_case_t cases[] = {
      {"", 0, 40000}, /* empty: len 0 -> strlen 0 */
      MP("\x81"),     /* truncated map */
      MP("\x90"),     /* not a map */
      MP("\xc1"),     /* never-used type byte */
      MP("\x81\xa6"
         "action\x0f\x00"), /* trailing byte */
      MP("\x81\xa6"
         "action\xa2"
         "15"), /* action a string */
      MP("\x81\xa6"
         "action\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00"), /* 1.5 */
      MP("\x81\xa6"
         "action\xcf\xff\xff\xff\xff\xff\xff\xff\xff"), /* > INT64_MAX */
      MP("\x81\x01\x0f"),                               /* integer key */
      MP("\x82\xa6"
         "action\x0f\xa7"
         "channel\xc4\x01x"), /* bin channel */
      MP("\x82\xa6"
         "action\x0f\xa7"
         "channel\xa2\xff\xfe"), /* not UTF-8 */
      MP("\x82\xa6"
         "action\x0f\xa7"
         "channel\xa3"
         "a\x00b"), /* NUL */
      MP("\x83\xa6"
         "action\x0f\xa2"
         "id\xa1"
         "a\xa2"
         "id\xa1"
         "b"), /* repeated string key */
      MP("\x82\xa6"
         "action\x0f\xa8"
         "messages\x81\xa1"
         "a\x01"), /* messages a map */
      MP("\x82\xa6"
         "action\x0f\xa8"
         "messages\xdd\xff\xff\xff\xff"), /* huge claimed array */
      MP("\x82\xa6"
         "action\x0f\xa8"
         "messages\xdf\x7f\xff\xff\xff"), /* huge claimed map */
      MP("\x82\xa6"
         "action\x0f\xa8"
         "messages\x91\x81\xa6"
         "extras\xd4\x01\x02"), /* ext extras */
      MP("\x82\xa6"
         "action\x0f\xa8"
         "messages\x91\x81\xa6"
         "extras\x81\xa1"
         "a\xd4\x01\x02"),
      MP("\x82\xa6"
         "action\x0f\xa8"
         "messages\x91\x81\xa6"
         "extras\x81\xa1"
         "a\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"), /* NaN */
      MP("\x82\xa6"
         "action\x0f\xa8"
         "messages\x91\x81\xa6"
         "extras\x81\x01\x02"), /* int key */
      /* NUL in a key: jansson could not read the JSON we would make of it */
      MP("\x82\xa6"
         "action\x0f\xa8"
         "messages\x91\x81\xa6"
         "extras\x81\xa3"
         "a\x00b\x01"),
      MP("\x82\xa6"
         "action\x0f\xdb\xff\xff\xff\xff"), /* str32 key past the end */
      MP("\x82\xa6"
         "action\x0f\xa8"
         "messages\x91\x81\xa4"
         "data\xc6\x00\x00\x00\x05"
         "ab"),
      MP_DATA("\x82\xa6"
              "action\x0f\xa8"
              "messages\x91\x81\xa4"
              "data\xc3"), /* bool data */
      MP_DATA("\x82\xa6"
              "action\x0f\xa8"
              "messages\x91\x82\xa4"
              "data\xa1!\xa8"
              "encoding\xa6"
              "base64"),
  };
  check_bad(SW_FMT_MSGPACK, cases, sizeof cases / sizeof *cases);
}

/* ---- limits ---- */

/* {"action":15,"messages":[{"extras":{"a":{"a":...}}}]}: the top object,
 * the array and the message make 3 levels, extras adds `nest` more. */
static char *nested_json(int nest) {
  sw_buf_t b = {0};
  buf_append_str(&b, "{\"action\":15,\"messages\":[{\"extras\":");
  for (int i = 0; i < nest - 1; i++) buf_append_str(&b, "{\"a\":");
  buf_append_str(&b, "{}");
  for (int i = 0; i < nest - 1; i++) buf_append_str(&b, "}");
  buf_append_str(&b, "}]}");
  buf_append_byte(&b, 0);
  return (char *)b.data;
}

static void nested_msgpack(int nest, sw_buf_t *b) {
  static const char head[] = "\x82\xa6"
                             "action\x0f\xa8"
                             "messages\x91\x81\xa6"
                             "extras";
  buf_append(b, head, sizeof head - 1);
  for (int i = 0; i < nest - 1; i++)
    buf_append(b,
               "\x81\xa1"
               "a",
               3);
  buf_append_byte(b, 0x80);
}

static void test_depth_limit(void **state) {
  (void)state;
  for (int nest = SW_CODEC_MAX_DEPTH - 3; nest <= SW_CODEC_MAX_DEPTH - 2; nest++) {
    bool ok = nest + 3 <= SW_CODEC_MAX_DEPTH;
    sw_pmsg_t p;
    sw_error_t err = {0};
    char *js = nested_json(nest);
    assert_int_equal(decode_json(js, &p, &err), ok ? 0 : -1);
    if (ok) {
      /* Re-encoding our own output must stay within the limit. */
      sw_pmsg_t q;
      transcode(SW_FMT_MSGPACK, &p, &q);
      assert_pmsg_eq(&p, &q);
      pmsg_free(&q);
      pmsg_free(&p);
    } else {
      assert_int_equal(err.code, 40000);
    }
    free(js);
    sw_buf_t b = {0};
    nested_msgpack(nest, &b);
    err.code = 0;
    assert_int_equal(codec_decode_pmsg(SW_FMT_MSGPACK, b.data, b.len, &p, &err), ok ? 0 : -1);
    if (ok)
      pmsg_free(&p);
    else
      assert_int_equal(err.code, 40000);
    buf_free(&b);
  }
  /* Brackets inside strings do not count. */
  sw_pmsg_t p;
  sw_error_t err;
  char deep_str[200] = "{\"action\":15,\"channel\":\"";
  memset(deep_str + strlen(deep_str), '[', 100);
  strcat(deep_str, "\\\"{\"}");
  assert_int_equal(decode_json(deep_str, &p, &err), 0);
  pmsg_free(&p);
  /* Depth of generic values is limited too. */
  char *js = nested_json(40);
  assert_null(codec_decode_value(SW_FMT_JSON, U(js), strlen(js), &err));
  assert_int_equal(err.code, 40000);
  free(js);
}

static void test_message_count_limit(void **state) {
  (void)state;
  for (size_t n = SW_CODEC_MAX_MESSAGES; n <= SW_CODEC_MAX_MESSAGES + 1; n++) {
    sw_buf_t b = {0};
    buf_append_str(&b, "{\"action\":15,\"messages\":[");
    for (size_t i = 0; i < n; i++) buf_append_str(&b, i ? ",{}" : "{}");
    buf_append_str(&b, "]}");
    sw_pmsg_t p;
    sw_error_t err = {0};
    int rc = codec_decode_pmsg(SW_FMT_JSON, b.data, b.len, &p, &err);
    if (n <= SW_CODEC_MAX_MESSAGES) {
      assert_int_equal(rc, 0);
      assert_int_equal(p.n_messages, n);
      pmsg_free(&p);
    } else {
      assert_int_equal(rc, -1);
      assert_int_equal(err.code, 40000);
    }
    /* REST bodies have the same limit. */
    sw_msg_t *msgs;
    size_t count;
    const char *arr = strchr((const char *)b.data, '[');
    rc = codec_decode_msgs(SW_FMT_JSON, U(arr), b.len - 1 - (size_t)(arr - (char *)b.data), &msgs,
                           &count, &err);
    assert_int_equal(rc, n <= SW_CODEC_MAX_MESSAGES ? 0 : -1);
    for (size_t i = 0; i < count; i++) msg_clear(&msgs[i]);
    free(msgs);
    buf_free(&b);
  }
}

/* ---- storage blob, generic values, copies ---- */

/* The validator's eight-bytes-at-a-time ASCII path against a plain
 * byte-at-a-time walk, with every kind of sequence placed at every offset
 * around the eight-byte steps. */
static bool utf8_bytewise(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t l = textenc_utf8_seq(p + i, n - i);
    if (l == 0) return false;
    i += l;
  }
  return true;
}

static void test_utf8_valid_fast_path(void **state) {
  (void)state;
  static const char *const seqs[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\x80", "\xc3",
                                     "\xe2\x82", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff"};
  uint8_t buf[64];
  for (size_t k = 0; k < sizeof seqs / sizeof seqs[0]; k++) {
    size_t sl = strlen(seqs[k]);
    for (size_t at = 0; at <= 20; at++)
      for (size_t tail = 0; tail <= 12; tail++) {
        size_t n = at + sl + tail;
        memset(buf, 'a', n);
        memcpy(buf + at, seqs[k], sl);
        assert_int_equal(textenc_utf8_valid(buf, n), utf8_bytewise(buf, n));
      }
  }
  assert_true(textenc_utf8_valid((const uint8_t *)"", 0));
  assert_true(textenc_utf8_valid((const uint8_t *)"abcdefgh", 8));
  assert_false(textenc_utf8_valid((const uint8_t *)"abcdefg\x80", 8));
  assert_false(textenc_utf8_valid((const uint8_t *)"abcdefgh\x80", 9));
}

static void test_blob_roundtrip(void **state) {
  (void)state;
  sw_pmsg_t p;
  full_pmsg(&p);
  /* Binary whose encoding still ends in base64 must come back as is. */
  free(p.messages[1].encoding);
  p.messages[1].encoding = strdup("base64");
  for (size_t i = 0; i < p.n_messages; i++) {
    sw_buf_t b = {0};
    sw_msg_t m;
    assert_int_equal(codec_msg_to_blob(&p.messages[i], &b), 0);
    assert_int_equal(codec_msg_from_blob(b.data, b.len, &m), 0);
    assert_msg_eq(&p.messages[i], &m);
    msg_clear(&m);
    assert_int_equal(codec_msg_from_blob(b.data, b.len - 1, &m), -1);
    assert_null(m.name);
    buf_free(&b);
  }
  sw_msg_t m;
  assert_int_equal(codec_msg_from_blob(U("\x81\xa4"
                                         "data\xa4"
                                         "YQ=="),
                                       11, &m),
                   0);
  assert_int_equal(m.data.kind, SW_DATA_STRING);
  msg_clear(&m);
  pmsg_free(&p);
}

static void test_value_codec(void **state) {
  (void)state;
  json_t *v = json_pack("{s:i,s:[b,n,f,s,I],s:{},s:s}", "a", 1, "b", 1, 1.5, "x",
                        (json_int_t)-9007199254740993LL, "c", "d", "\xc3\xa9\\");
  for (int f = SW_FMT_JSON; f <= SW_FMT_MSGPACK; f++) {
    sw_buf_t b = {0};
    sw_error_t err;
    assert_int_equal(codec_encode_value(f, v, &b), 0);
    json_t *back = codec_decode_value(f, b.data, b.len, &err);
    assert_non_null(back);
    assert_true(json_equal(v, back));
    json_decref(back);
    buf_free(&b);
  }
  json_decref(v);
  /* Scalars are values too; msgpack bin becomes base64. */
  sw_error_t err;
  json_t *s = codec_decode_value(SW_FMT_JSON, U("true"), 4, &err);
  assert_true(json_is_true(s));
  json_decref(s);
  s = codec_decode_value(SW_FMT_MSGPACK,
                         U("\xc4\x03"
                           "abc"),
                         5, &err);
  assert_string_equal(json_string_value(s), "YWJj");
  json_decref(s);
  /* Every msgpack number and container form passes the structural check. */
  static const char forms[] = "\xdc\x00\x0e"                      /* array16 of 14 */
                              "\xcc\xff\xcd\x01\x00\xce\x00\x01\x00\x00" /* uint 8/16/32 */
                              "\xcf\x00\x00\x00\x01\x00\x00\x00\x00"     /* uint64 */
                              "\xd0\x80\xd1\xff\x00\xd2\xff\xff\xff\xff" /* int 8/16/32 */
                              "\xd3\xff\xff\xff\xff\xff\xff\xff\xfe"     /* int64 */
                              "\xca\x3f\xc0\x00\x00"                 /* float32 1.5 */
                              "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00"     /* float64 1.5 */
                              "\xd9\x01z\xda\x00\x01y"              /* str8, str16 */
                              "\xde\x00\x01\xdb\x00\x00\x00\x01k\xc4\x01\xff" /* map16 */
                              "\xdd\x00\x00\x00\x01\xc3";         /* array32 */
  s = codec_decode_value(SW_FMT_MSGPACK, U(forms), sizeof forms - 1, &err);
  json_t *want = json_pack("[i,i,i,I,i,i,i,I,f,f,s,s,{s:s},[b]]", 255, 256, 65536,
                           (json_int_t)1 << 32, -128, -256, -1, (json_int_t)-2, 1.5, 1.5, "z", "y",
                           "k", "/w==", 1);
  assert_non_null(s);
  assert_true(json_equal(s, want));
  json_decref(s);
  json_decref(want);
  /* msgpack-c gives empty str/bin a NULL pointer. */
  s = codec_decode_value(SW_FMT_MSGPACK, U("\x92\xa0\xc4\x00"), 4, &err);
  assert_non_null(s);
  assert_string_equal(json_string_value(json_array_get(s, 0)), "");
  assert_string_equal(json_string_value(json_array_get(s, 1)), "");
  json_decref(s);
  /* Reals print in their shortest form. */
  json_t *r = json_pack("[f,f,f]", 1.2, 100.0, 1e300);
  sw_buf_t b = {0};
  assert_int_equal(codec_encode_value(SW_FMT_JSON, r, &b), 0);
  assert_int_equal(buf_append_byte(&b, 0), 0);
  assert_string_equal((char *)b.data, "[1.2,100.0,1e+300]");
  buf_free(&b);
  json_decref(r);
  assert_null(codec_decode_value(SW_FMT_JSON, U("[1,"), 3, &err));
  assert_int_equal(err.code, 40000);
}

static void test_msg_copy_and_size(void **state) {
  (void)state;
  sw_pmsg_t p;
  full_pmsg(&p);
  sw_msg_t c;
  assert_int_equal(msg_copy(&c, &p.messages[0]), 0);
  assert_msg_eq(&c, &p.messages[0]);
  assert_ptr_not_equal(c.extras, p.messages[0].extras);
  assert_ptr_not_equal(c.data.bytes, p.messages[0].data.bytes);
  msg_clear(&c);
  assert_int_equal(c.action, -1);
  assert_null(c.name);

  sw_msg_t m = {.action = -1, .name = "abc", .client_id = "de"};
  set_data(&m.data, SW_DATA_BINARY, "12345", 5);
  assert_int_equal(msg_size(&m), 10);
  m.extras = json_pack("{s:i}", "a", 1); /* {"a":1} */
  assert_int_equal(msg_size(&m), 17);
  json_decref(m.extras);
  data_clear(&m.data);
  pmsg_free(&p);
  pmsg_free(NULL);
}

/* The msgpack reader keeps one tree per thread between reads: a read
 * inside a read (a stored blob decoded while a frame is) gets a tree of its
 * own, and the outer tree stays intact; a big tree grows it (and is
 * dropped past its bound) and the next read still works. */
typedef struct nest_ctx {
  const uint8_t *inner;
  size_t inner_n;
  int depth;
  size_t seen[2];
} nest_ctx_t;

static int nest_fn(const wire_val_t *root, void *arg, sw_error_t *err) {
  nest_ctx_t *c = arg;
  int d = c->depth++;
  if (root->kind != WIRE_ARRAY) return -1;
  c->seen[d] = root->n;
  if (d == 0 && c->inner && codec_msgpack_read(c->inner, c->inner_n, nest_fn, c, err)) return -1;
  /* the outer array is read after the inner read: its items are intact */
  for (size_t i = 0; i < root->n; i++) {
    wire_val_t it;
    root->ops->item(root, i, &it);
    if (it.kind != WIRE_INT || it.i != (int64_t)i) return -1;
  }
  return 0;
}

static void pack_ints(msgpack_sbuffer *sb, size_t n) {
  msgpack_sbuffer_init(sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, (uint32_t)n);
  for (size_t i = 0; i < n; i++) msgpack_pack_uint64(&pk, i);
}

static void test_msgpack_zone_reuse(void **state) {
  (void)state;
  msgpack_sbuffer outer, inner, big;
  pack_ints(&outer, 5);
  pack_ints(&inner, 3);
  pack_ints(&big, 5000); /* 5000 objects: far past the zone's first chunk */
  sw_error_t err = {0};
  for (int round = 0; round < 3; round++) {
    nest_ctx_t c = {.inner = (const uint8_t *)inner.data, .inner_n = inner.size};
    assert_int_equal(codec_msgpack_read((const uint8_t *)outer.data, outer.size, nest_fn, &c, &err), 0);
    assert_int_equal(c.depth, 2);
    assert_int_equal(c.seen[0], 5);
    assert_int_equal(c.seen[1], 3);
    nest_ctx_t b = {0};
    assert_int_equal(codec_msgpack_read((const uint8_t *)big.data, big.size, nest_fn, &b, &err), 0);
    assert_int_equal(b.seen[0], 5000);
  }
  msgpack_sbuffer_destroy(&outer);
  msgpack_sbuffer_destroy(&inner);
  msgpack_sbuffer_destroy(&big);
}

/* ---- the msgpack reader (codec_msgpack.c) against msgpack-c ----
 * Every input here reads the same, view for view and in JSON, through
 * codec_msgpack_read as through msgpack-c behind the structural pre-check
 * the server used before its own reader (fuzz/msgpack_ref.h, the
 * reference of fuzz/fuzz_msgpack_read.c), refusals included. */

#include "../../fuzz/msgpack_ref.h"

typedef struct mp_in {
  const char *p;
  size_t n;
} mp_in_t;
#define MPIN(s) {s, sizeof(s) - 1}

static void assert_same_as_ref(bool utf8, const uint8_t *p, size_t n) {
  char *mine = mpd_describe(false, utf8, p, n), *ref = mpd_describe(true, utf8, p, n);
  assert_string_equal(mine, ref);
  free(mine);
  free(ref);
}

static int count_root(const wire_val_t *root, void *arg, sw_error_t *err) {
  (void)root, (void)err;
  ++*(int *)arg;
  return 0;
}

/* Refused 40000 before fn is called, as the reference refuses it. */
static void assert_mp_refused(bool utf8, const uint8_t *p, size_t n) {
  int calls = 0;
  sw_error_t err = {0};
  int rc = utf8 ? codec_msgpack_read(p, n, count_root, &calls, &err)
                : codec_msgpack_read_stored(p, n, count_root, &calls, &err);
  if (rc != -1) fail_msg("accepted %zu bytes starting %02x", n, n ? p[0] : 0);
  assert_int_equal(err.code, 40000);
  assert_int_equal(calls, 0);
  assert_same_as_ref(utf8, p, n);
}

static void assert_mp_accepted(bool utf8, const uint8_t *p, size_t n) {
  int calls = 0;
  sw_error_t err = {0};
  int rc = utf8 ? codec_msgpack_read(p, n, count_root, &calls, &err)
                : codec_msgpack_read_stored(p, n, count_root, &calls, &err);
  if (rc != 0) fail_msg("refused %zu bytes starting %02x: %s", n, n ? p[0] : 0, err.message);
  assert_int_equal(calls, 1);
  assert_same_as_ref(utf8, p, n);
}

static void test_msgpack_reader_refusals(void **state) {
  (void)state;
  static const mp_in_t bad[] = {
      MPIN(""),                          /* nothing */
      MPIN("\xa3" "ab"),                 /* fixstr body short */
      MPIN("\xd9"),                      /* str8 without its length */
      MPIN("\xd9\x05" "abc"),            /* str8 body short */
      MPIN("\xda\x00"),                  /* str16 length cut */
      MPIN("\xc4\x03" "ab"),             /* bin8 body short */
      MPIN("\xcd\x12"),                  /* uint16 cut */
      MPIN("\xd3\x00\x00\x00"),          /* int64 cut */
      MPIN("\xcb\x00\x00"),              /* float64 cut */
      MPIN("\xca\x00"),                  /* float32 cut */
      MPIN("\xc7\x05\x01" "ab"),         /* ext8 body short */
      MPIN("\xc8\x00"),                  /* ext16 length cut */
      MPIN("\xd6\x01\x00"),              /* fixext4 cut */
      MPIN("\x92\x01"),                  /* array missing an item */
      MPIN("\x81\xa1" "a"),              /* map key without a value */
      MPIN("\x92\x92\x01\x01"),          /* the inner array eats the outer's second item */
      MPIN("\xc1"),                      /* never-used type byte */
      MPIN("\x91\xc1"),                  /* ... inside an array */
      MPIN("\x01\x02"),                  /* trailing bytes */
      MPIN("\x80\x00"),                  /* ... after an empty map */
      MPIN("\xa1" "a" "\xa1" "b"),       /* ... two values */
      /* counts bounded by the bytes left, before anything is reserved */
      MPIN("\xdd\xff\xff\xff\xff"),                   /* array32 of 2^32-1, nothing after */
      MPIN("\xdf\xff\xff\xff\xff\x01\x01"),           /* map32 of 2^32-1 */
      MPIN("\xdf\x80\x00\x00\x00\x01\x01"),           /* map32: 2^31 entries, 2^32 items */
      MPIN("\xdc\x00\x03\x01\x01"),                   /* array16 of 3, two bytes left */
      MPIN("\xde\x00\x02\x01\x01\x01"),               /* map16 of 2, three bytes left */
      MPIN("\x91\xdd\x00\x00\x00\x03\x01\x01"),       /* a nested claim */
      MPIN("\xc6\xff\xff\xff\xff" "a"),               /* bin32 of 4 GiB */
      MPIN("\xdb\xff\xff\xff\xff" "a"),               /* str32 of 4 GiB */
      MPIN("\xc9\xff\xff\xff\xff\x01" "a"),           /* ext32 of 4 GiB */
      MPIN("\x81\xdb\xff\xff\xff\xff\x01"),           /* a key of 4 GiB */
  };
  static const mp_in_t bad_utf8[] = {
      MPIN("\xa2\xc3\x28"),              /* bad continuation */
      MPIN("\xa2\xc0\xaf"),              /* overlong */
      MPIN("\xa3\xed\xa0\x80"),          /* surrogate */
      MPIN("\xa4\xf4\x90\x80\x80"),      /* above U+10FFFF */
      MPIN("\xa1\x80"),                  /* lone continuation */
      MPIN("\xa2" "a\xe2"),              /* sequence cut by the str's end */
      MPIN("\xa9" "abcdefgh\xff"),       /* past the first 8-byte word */
      MPIN("\xd9\x28" "0123456789abcdefghijklmnopqrstuvwxyzABC\xfe"), /* last of a long str */
      MPIN("\xd9\x28\xfe" "0123456789abcdefghijklmnopqrstuvwxyzABC"), /* first of a long str */
      MPIN("\x81\xa2\xff\xfe\x01"),      /* in a key */
      MPIN("\x91\x91\xa1\xff"),          /* nested */
  };
  /* The stored variant refuses the same, but for UTF-8, which it does
   * not check (its strs were checked when they came in). */
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_mp_refused(true, U(bad[i].p), bad[i].n);
    assert_mp_refused(false, U(bad[i].p), bad[i].n);
  }
  for (size_t i = 0; i < sizeof bad_utf8 / sizeof *bad_utf8; i++) {
    assert_mp_refused(true, U(bad_utf8[i].p), bad_utf8[i].n);
    assert_mp_accepted(false, U(bad_utf8[i].p), bad_utf8[i].n);
  }

  /* Depth: SW_CODEC_MAX_DEPTH nested containers are read, one more is not. */
  for (int maps = 0; maps <= 1; maps++) {
    for (int d = SW_CODEC_MAX_DEPTH; d <= SW_CODEC_MAX_DEPTH + 1; d++) {
      sw_buf_t b = {0};
      for (int k = 0; k < d; k++) buf_append(&b, maps ? "\x81\xa1" "a" : "\x91", maps ? 3 : 1);
      buf_append_byte(&b, 0xc0);
      if (d <= SW_CODEC_MAX_DEPTH) assert_mp_accepted(true, b.data, b.len);
      else assert_mp_refused(true, b.data, b.len);
      buf_free(&b);
    }
  }
}

static int each_refused(const wire_val_t *root, void *arg, sw_error_t *err) {
  (void)err;
  sw_error_t e = {0};
  sw_buf_t text = {0};
  *(int *)arg = root->ops->each(root, mpd_field, &text, &e) ? e.code : 0;
  buf_free(&text);
  return 0;
}

/* A map whose key is not a string is read (the value is msgpack), but
 * walking it is refused 40000, and so is its JSON; a ProtocolMessage with
 * one is refused. */
static void test_msgpack_reader_non_string_keys(void **state) {
  (void)state;
  static const mp_in_t keys[] = {
      MPIN("\x81\x01\x02"), MPIN("\x81\xc4\x01" "a\x01"), MPIN("\x81\xc0\x01"), MPIN("\x81\x90\x01"),
      MPIN("\x82\xa1" "a\x01\x02\x03"), /* the second key */
  };
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
    const uint8_t *p = U(keys[i].p);
    size_t n = keys[i].n;
    assert_mp_accepted(true, p, n);
    int code = -1;
    sw_error_t err = {0};
    assert_int_equal(codec_msgpack_read(p, n, each_refused, &code, &err), 0);
    assert_int_equal(code, 40000);
    assert_null(codec_decode_value(SW_FMT_MSGPACK, p, n, &err));
    assert_int_equal(err.code, 40000);
    sw_pmsg_t pm;
    assert_int_equal(codec_decode_pmsg(SW_FMT_MSGPACK, p, n, &pm, &err), -1);
    assert_int_equal(err.code, 40000);
  }
}

/* What is accepted reads as msgpack-c reads it: every type and width, the
 * edges of each, and trees large enough to be read the growing way
 * (more than 64 KiB of views). */
static void test_msgpack_reader_values(void **state) {
  (void)state;
  static const mp_in_t ok[] = {
      MPIN("\xc0"), MPIN("\xc2"), MPIN("\xc3"), MPIN("\x00"), MPIN("\x7f"), MPIN("\xe0"), MPIN("\xff"),
      MPIN("\xcc\xff"), MPIN("\xcd\xff\xff"), MPIN("\xce\xff\xff\xff\xff"),
      MPIN("\xcf\x7f\xff\xff\xff\xff\xff\xff\xff"), MPIN("\xcf\x80\x00\x00\x00\x00\x00\x00\x00"),
      MPIN("\xcf\xff\xff\xff\xff\xff\xff\xff\xff"), MPIN("\xd0\x80"), MPIN("\xd0\x05"), MPIN("\xd1\x80\x00"),
      MPIN("\xd2\x80\x00\x00\x00"), MPIN("\xd3\x80\x00\x00\x00\x00\x00\x00\x00"),
      MPIN("\xd3\x00\x00\x00\x00\x00\x00\x00\x01"), MPIN("\xca\x3f\xc0\x00\x00"),
      MPIN("\xca\x7f\x80\x00\x00"), MPIN("\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00"),
      MPIN("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"), MPIN("\xa0"), MPIN("\xd9\x00"), MPIN("\xda\x00\x00"),
      MPIN("\xdb\x00\x00\x00\x00"), MPIN("\xc4\x00"), MPIN("\xc5\x00\x02" "\x00\xff"),
      MPIN("\xc6\x00\x00\x00\x01" "\x80"), MPIN("\xa3" "a\x00" "b"), MPIN("\xa2\xc3\xa9"),
      MPIN("\xa4\xf0\x9f\x98\x80"), MPIN("\xd4\x01\x02"), MPIN("\xd8\x01" "0123456789abcdef"),
      MPIN("\xc7\x00\x05"), MPIN("\xc7\x02\x05" "ab"), MPIN("\x90"), MPIN("\x80"), MPIN("\xdc\x00\x00"),
      MPIN("\xdf\x00\x00\x00\x00"), MPIN("\x93\x01\xa1" "a\xc4\x01" "b"),
      MPIN("\x82\xa1" "a\x91\x80\xa1" "b\x81\xa1" "c\xc0"), MPIN("\x82\xa1" "a\x01\xa1" "a\x02"),
      MPIN("\x81\xa3" "a\x00" "b\x01"), MPIN("\x91\xd4\x01\x02"), MPIN("\x81\xa1" "e\xd4\x01\x02"),
  };
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    assert_mp_accepted(true, U(ok[i].p), ok[i].n);
    assert_mp_accepted(false, U(ok[i].p), ok[i].n);
  }
  /* Large trees, each read twice (the thread's tree is kept, or dropped
   * past its bound, between reads): 20,000 ints; 3,000 maps of a str and
   * an array; a frame just under and just over the fixed-tree size. */
  for (int shape = 0; shape < 4; shape++) {
    sw_buf_t b = {0};
    if (shape == 0) {
      buf_append(&b, "\xdc\x4e\x20", 3);
      for (int i = 0; i < 20000; i++) buf_append_byte(&b, (uint8_t)(i & 0x7f));
    } else if (shape == 1) {
      buf_append(&b, "\xdc\x0b\xb8", 3);
      for (int i = 0; i < 3000; i++) buf_append(&b, "\x82\xa1" "k\xa2" "vv\xa1" "a\x92\x01\xc3", 11);
    } else {
      size_t fixed_n = 65536 / sizeof(wire_val_t); /* codec_msgpack.c's TREE_FIXED */
      size_t n = shape == 2 ? fixed_n - 1 : fixed_n; /* total bytes */
      size_t items = n - 3;
      buf_append_byte(&b, 0xdc);
      buf_append_byte(&b, (uint8_t)(items >> 8));
      buf_append_byte(&b, (uint8_t)items);
      for (size_t i = 0; i < items; i++) buf_append_byte(&b, i % 2 ? 0x90 : 0xc3);
      assert_int_equal(b.len, n);
    }
    for (int round = 0; round < 2; round++) {
      assert_mp_accepted(true, b.data, b.len);
      assert_mp_accepted(false, b.data, b.len);
    }
    /* cut short, and with a byte too many */
    assert_mp_refused(true, b.data, b.len - 1);
    buf_append_byte(&b, 0);
    assert_mp_refused(true, b.data, b.len);
    buf_free(&b);
  }
}

/* codec_ack_msgpack writes the bytes codec_encode_pmsg writes for the same
 * ACK, for every msgSerial width and serial length it takes; what it does
 * not take (a serial of 32 bytes, a negative msgSerial, none) returns 0. */
static void test_ack_msgpack_same_bytes(void **state) {
  (void)state;
  const int64_t serials[] = {0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295LL, 4294967296LL, 9007199254740991LL};
  const char *ids[] = {"", "0000000000000001", "abc", "0123456789abcdef0123456789abcde"};
  for (size_t i = 0; i < sizeof serials / sizeof *serials; i++) {
    for (size_t j = 0; j < sizeof ids / sizeof *ids; j++) {
      char *one[1] = {(char *)ids[j]};
      sw_publish_result_t res = {.serials = one, .n_serials = 1};
      sw_pmsg_t m = {.action = SW_ACTION_ACK, .msg_serial = serials[i], .has_msg_serial = true,
                     .count = 1, .has_count = true, .res = &res, .n_res = 1};
      sw_buf_t want = {0};
      assert_int_equal(codec_encode_pmsg(SW_FMT_MSGPACK, &m, &want), 0);
      uint8_t got[SW_CODEC_ACK_MAX];
      size_t n = codec_ack_msgpack(got, SW_ACTION_ACK, serials[i], ids[j]);
      assert_int_equal(n, want.len);
      assert_memory_equal(got, want.data, n);
      buf_free(&want);
    }
  }
  uint8_t b[SW_CODEC_ACK_MAX];
  assert_int_equal(codec_ack_msgpack(b, SW_ACTION_ACK, 1, "0123456789abcdef0123456789abcdef"), 0);
  assert_int_equal(codec_ack_msgpack(b, SW_ACTION_ACK, -1, "x"), 0);
  assert_int_equal(codec_ack_msgpack(b, SW_ACTION_ACK, 1, NULL), 0);
}

/* The storage blob (codec_msg_to_blob, written directly) has exactly the
 * bytes of the generic msgpack writer (codec_encode_msg): the stored rows
 * of every existing database stay what they were. Each header form at its
 * boundaries, every field, JSON values, a map of more than 15 fields. */
static void blob_same(const sw_msg_t *m) {
  sw_buf_t want = {0}, got = {0};
  assert_int_equal(codec_encode_msg(SW_FMT_MSGPACK, m, &want), 0);
  buf_append(&got, "prefix", 6); /* a blob after others in one buffer */
  size_t off = 0;
  assert_int_equal(codec_msg_to_blob_at(m, &got, &off), 0);
  assert_int_equal(got.len - 6, want.len);
  assert_memory_equal(got.data + 6, want.data, want.len);
  /* The data's offset (not checked for a map16: the writer's path, whose
   * offset is taken before the header widens, as it always was). */
  if (m->data.kind != SW_DATA_NONE && m->data.len && (want.data[0] & 0xf0) == 0x80)
    assert_memory_equal(got.data + 6 + off, m->data.bytes, m->data.len);
  buf_free(&want);
  buf_free(&got);
}

static void test_blob_same_bytes_as_writer(void **state) {
  (void)state;
  static const size_t lens[] = {0, 1, 31, 32, 255, 256, 65535, 65536, 70000};
  static const int64_t ints[] = {0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295LL, 4294967296LL, INT64_MAX,
                                 -1, -32, -33, -128, -129, -32768, -32769, INT32_MIN, (int64_t)INT32_MIN - 1,
                                 INT64_MIN};
  char *big = malloc(70001);
  assert_non_null(big);
  memset(big, 'x', 70000);
  big[70000] = '\0';
  sw_msg_t m = {.action = -1};
  blob_same(&m); /* no field at all */
  /* A durable publish's message. */
  m = (sw_msg_t){.id = "conn123:4:0", .connection_id = "conn123", .serial = "00000000000000a1", .timestamp = 1765000000000,
                 .action = 0, .data = {.kind = SW_DATA_STRING, .bytes = (uint8_t *)big, .len = 128}};
  blob_same(&m);
  for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
    big[lens[i]] = '\0';
    sw_msg_t s = {.name = big, .client_id = big, .encoding = "utf-8", .action = -1,
                  .data = {.kind = SW_DATA_STRING, .bytes = (uint8_t *)big, .len = lens[i]}};
    blob_same(&s);
    s.data.kind = SW_DATA_BINARY;
    blob_same(&s);
    s.data.kind = SW_DATA_NONE;
    blob_same(&s);
    big[lens[i]] = 'x';
  }
  big[70000] = '\0';
  for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
    sw_msg_t s = {.timestamp = ints[i], .count = ints[i], .has_count = true, .action = ints[i] >= 0 && ints[i] <= INT32_MAX ? (int)ints[i] : 5};
    blob_same(&s);
  }
  /* Every field, JSON values among them: sixteen, a map16. */
  json_t *extras = json_pack("{s:{s:s},s:b}", "headers", "k", "v", "ephemeral", 0);
  json_t *version = json_pack("{s:s,s:i}", "serial", "01", "timestamp", 5);
  json_t *ann = json_pack("{s:{}}", "summary");
  sw_msg_t all = {.id = "i", .client_id = "c", .connection_id = "cid", .connection_key = "ck", .name = "n",
                  .encoding = "json", .serial = "s", .timestamp = 7, .action = 1,
                  .data = {.kind = SW_DATA_STRING, .bytes = (uint8_t *)"{}", .len = 2},
                  .extras = extras, .version = version, .annotations = ann, .message_serial = "ms", .type = "t",
                  .count = 3, .has_count = true};
  blob_same(&all);
  all.has_count = false; /* fifteen: a fixmap */
  blob_same(&all);
  json_decref(extras);
  json_decref(version);
  json_decref(ann);
  free(big);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_struct),
      cmocka_unit_test(test_msgpack_zone_reuse),
      cmocka_unit_test(test_msgpack_reader_refusals),
      cmocka_unit_test(test_msgpack_reader_non_string_keys),
      cmocka_unit_test(test_msgpack_reader_values),
      cmocka_unit_test(test_ack_msgpack_same_bytes),
      cmocka_unit_test(test_roundtrip_bytes_stable),
      cmocka_unit_test(test_json_decode_fields),
      cmocka_unit_test(test_unknown_action_decodes),
      cmocka_unit_test(test_json_base64_to_binary),
      cmocka_unit_test(test_msgpack_bin_to_json),
      cmocka_unit_test(test_object_data_gets_json_step),
      cmocka_unit_test(test_msgpack_fixtures),
      cmocka_unit_test(test_rest_message_fixtures),
      cmocka_unit_test(test_ack_res_encoding),
      cmocka_unit_test(test_connection_details_encoding),
      cmocka_unit_test(test_error_body),
      cmocka_unit_test(test_presence_array_and_msgs),
      cmocka_unit_test(test_decode_msgs_shapes),
      cmocka_unit_test(test_json_escaping),
      cmocka_unit_test(test_nul_handling),
      cmocka_unit_test(test_params_coerced),
      cmocka_unit_test(test_malformed_json),
      cmocka_unit_test(test_malformed_msgpack),
      cmocka_unit_test(test_depth_limit),
      cmocka_unit_test(test_message_count_limit),
      cmocka_unit_test(test_utf8_valid_fast_path),
      cmocka_unit_test(test_blob_roundtrip),
      cmocka_unit_test(test_value_codec),
      cmocka_unit_test(test_msg_copy_and_size),
      cmocka_unit_test(test_blob_same_bytes_as_writer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
