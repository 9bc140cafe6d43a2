/* Unit tests for message versions (core/mutation.c: mutation_fold):
 * append aggregation, update/delete semantics and version serial order. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/mutation.h"
#include "core/serial.h"
#include "proto/blob_append.h"
#include "proto/codec.h"

static void set_data(sw_msg_t *m, const char *s) {
  m->data.kind = SW_DATA_STRING;
  m->data.len = strlen(s);
  m->data.bytes = (uint8_t *)strdup(s);
}

static sw_msg_t make_head(const char *data) {
  sw_msg_t h = {0};
  h.action = SW_MSG_CREATE;
  h.id = strdup("conn:0:0");
  h.serial = strdup("0000000000000001");
  h.client_id = strdup("agent");
  h.name = strdup("answer");
  set_data(&h, data);
  return h;
}

static sw_msg_t request(int action, const char *data) {
  sw_msg_t r = {0};
  r.action = action;
  r.serial = strdup("0000000000000001");
  if (data) set_data(&r, data);
  return r;
}

static const char *version_serial(const sw_msg_t *m) {
  return json_string_value(json_object_get(m->version, "serial"));
}

/* Appends concatenate into the head, which becomes message.update; each
 * event is the fragment alone, as message.append, with the head's serial. */
static void appends_aggregate(void **state) {
  sw_msg_t head = make_head("Hel");
  const char *parts[] = {"lo", ", ", "world"};
  char vs[SW_SERIAL_LEN + 1];
  for (int i = 0; i < 3; i++) {
    sw_msg_t req = request(SW_MSG_APPEND, parts[i]), ev;
    sw_error_t err = {0};
    serial_format(2 + i, vs);
    assert_int_equal(mutation_fold(&head, &ev, &req, vs, 1000 + i, "agent", &err), 0);
    assert_int_equal(ev.action, SW_MSG_APPEND);
    assert_string_equal((char *)ev.data.bytes, parts[i]);
    assert_string_equal(ev.serial, "0000000000000001");
    assert_string_equal(version_serial(&ev), vs);
    assert_true(ev.timestamp == 1000 + i);
    msg_clear(&ev);
    msg_clear(&req);
  }
  assert_int_equal(head.action, SW_MSG_UPDATE);
  assert_string_equal((char *)head.data.bytes, "Hello, world");
  assert_int_equal(head.data.len, strlen("Hello, world"));
  assert_string_equal(head.serial, "0000000000000001"); /* the message keeps its serial */
  assert_string_equal(head.name, "answer");
  assert_string_equal(version_serial(&head), "0000000000000004");
  assert_string_equal(json_string_value(json_object_get(head.version, "clientId")), "agent");
  msg_clear(&head);
}

/* The head's version object is set in place while the head alone holds it
 * and only serial and timestamp change; otherwise it is built anew: an
 * event still holding it keeps its own serial, a description or another
 * clientId gives a new object, and a later plain append drops the old
 * description (a version is the operation's, TM2s). */
static void append_version_reuse(void **state) {
  (void)state;
  sw_msg_t head = make_head("a");
  sw_error_t err = {0};
  sw_msg_t req = request(SW_MSG_APPEND, "b"), ev1, ev2;
  assert_int_equal(mutation_fold(&head, &ev1, &req, "0000000000000002", 10, "agent", &err), 0);
  msg_clear(&req);
  json_t *v1 = head.version;
  /* ev1 still holds the version: a new object, ev1's is unchanged. */
  req = request(SW_MSG_APPEND, "c");
  assert_int_equal(mutation_fold(&head, &ev2, &req, "0000000000000003", 11, "agent", &err), 0);
  msg_clear(&req);
  assert_ptr_not_equal(head.version, v1);
  assert_string_equal(version_serial(&ev1), "0000000000000002");
  assert_true(json_integer_value(json_object_get(ev1.version, "timestamp")) == 10);
  msg_clear(&ev1);
  msg_clear(&ev2);
  /* The head's alone now: set in place, same keys in the same order. */
  json_t *v2 = head.version;
  req = request(SW_MSG_APPEND, "d");
  assert_int_equal(mutation_fold(&head, &ev1, &req, "0000000000000004", 12, "agent", &err), 0);
  msg_clear(&req);
  assert_ptr_equal(head.version, v2);
  char *js = json_dumps(head.version, 0);
  assert_string_equal(js, "{\"serial\": \"0000000000000004\", \"timestamp\": 12, \"clientId\": \"agent\"}");
  free(js);
  msg_clear(&ev1);
  /* A description: a new object with it; the next plain append drops it. */
  req = request(SW_MSG_APPEND, "e");
  req.version = json_pack("{s:s}", "description", "why");
  assert_int_equal(mutation_fold(&head, &ev1, &req, "0000000000000005", 13, "agent", &err), 0);
  msg_clear(&req);
  msg_clear(&ev1);
  assert_string_equal(json_string_value(json_object_get(head.version, "description")), "why");
  req = request(SW_MSG_APPEND, "f");
  assert_int_equal(mutation_fold(&head, &ev1, &req, "0000000000000006", 14, "agent", &err), 0);
  msg_clear(&req);
  msg_clear(&ev1);
  js = json_dumps(head.version, 0);
  assert_string_equal(js, "{\"serial\": \"0000000000000006\", \"timestamp\": 14, \"clientId\": \"agent\"}");
  free(js);
  /* Another clientId, then none: each its own object. */
  req = request(SW_MSG_APPEND, "g");
  assert_int_equal(mutation_fold(&head, &ev1, &req, "0000000000000007", 15, "other", &err), 0);
  msg_clear(&req);
  msg_clear(&ev1);
  assert_string_equal(json_string_value(json_object_get(head.version, "clientId")), "other");
  req = request(SW_MSG_APPEND, "h");
  assert_int_equal(mutation_fold(&head, &ev1, &req, "0000000000000008", 16, NULL, &err), 0);
  msg_clear(&req);
  msg_clear(&ev1);
  js = json_dumps(head.version, 0);
  assert_string_equal(js, "{\"serial\": \"0000000000000008\", \"timestamp\": 16}");
  free(js);
  assert_string_equal((char *)head.data.bytes, "abcdefgh");
  msg_clear(&head);
}

/* An append's event carries the message's identity: the request's own
 * strings are taken where they are the same (its serial, its connection's
 * id), copied from the head where they differ (a name the request gives
 * does not rename the message). */
static void append_event_identity(void **state) {
  (void)state;
  sw_msg_t head = make_head("a"), ev;
  sw_msg_t req = request(SW_MSG_APPEND, "b");
  req.connection_id = strdup("conn-1");
  req.name = strdup("other");
  sw_error_t err = {0};
  assert_int_equal(mutation_fold(&head, &ev, &req, "0000000000000002", 5, "agent", &err), 0);
  assert_string_equal(ev.serial, "0000000000000001");
  assert_string_equal(ev.connection_id, "conn-1");
  assert_string_equal(ev.name, "answer");
  assert_string_equal(ev.id, "conn:0:0");
  assert_string_equal(ev.client_id, "agent");
  assert_null(req.serial); /* taken, not copied */
  assert_null(req.connection_id);
  assert_string_equal(req.name, "other");
  assert_string_equal(head.serial, "0000000000000001");
  assert_string_equal(head.name, "answer");
  msg_clear(&ev);
  msg_clear(&req);
  msg_clear(&head);
}

/* The latest extras (a stream's status header) replace the head's. */
static void append_takes_latest_extras(void **state) {
  sw_msg_t head = make_head("a"), ev;
  head.extras = json_pack("{s:{s:{s:s}}}", "ai", "transport", "status", "streaming");
  sw_msg_t req = request(SW_MSG_APPEND, "b");
  req.extras = json_pack("{s:{s:{s:s}}}", "ai", "transport", "status", "complete");
  sw_error_t err = {0};
  assert_int_equal(mutation_fold(&head, &ev, &req, "0000000000000002", 5, "agent", &err), 0);
  json_t *st = json_object_get(json_object_get(json_object_get(head.extras, "ai"), "transport"), "status");
  assert_string_equal(json_string_value(st), "complete");
  msg_clear(&ev);
  msg_clear(&req);
  msg_clear(&head);
}

/* An update's extras replace the head's; the old ones are released (a
 * nested object leaked under ASan when they were free()d). */
static void update_replaces_extras(void **state) {
  (void)state;
  sw_msg_t head = make_head("a"), ev;
  head.extras = json_pack("{s:{s:s}}", "headers", "h", "old");
  sw_msg_t req = request(SW_MSG_UPDATE, "b");
  req.extras = json_pack("{s:{s:s}}", "headers", "h", "new");
  sw_error_t err = {0};
  assert_int_equal(mutation_fold(&head, &ev, &req, "0000000000000002", 5, "agent", &err), 0);
  assert_string_equal(json_string_value(json_object_get(json_object_get(head.extras, "headers"), "h")), "new");
  msg_clear(&ev);
  msg_clear(&req);
  msg_clear(&head);
}

/* An append must keep the data type: binary onto a string is refused. */
static void append_type_mismatch(void **state) {
  sw_msg_t head = make_head("text"), ev;
  sw_msg_t req = request(SW_MSG_APPEND, NULL);
  req.data.kind = SW_DATA_BINARY;
  req.data.bytes = malloc(3);
  memcpy(req.data.bytes, "\x01\x02", 3);
  req.data.len = 2;
  sw_error_t err = {0};
  assert_int_equal(mutation_fold(&head, &ev, &req, "0000000000000002", 5, "agent", &err), -1);
  assert_int_equal(err.code, SW_E_INVALID_MESSAGE_DATA);
  assert_string_equal((char *)head.data.bytes, "text");
  msg_clear(&ev);
  msg_clear(&req);
  msg_clear(&head);
}

/* While the previous event (not yet durable) shares the head's version
 * object, the spare one an earlier event let go is set in place and
 * swapped in; an object still shared is never changed, and the head's
 * version reads exactly as a new one would. */
static void append_version_spare(void **state) {
  (void)state;
  sw_msg_t head = make_head("a"), ev[4];
  json_t *spare = NULL, *made[4];
  sw_error_t err = {0};
  const char *serials[] = {"0000000000000002", "0000000000000003", "0000000000000004", "0000000000000005"};
  for (int i = 0; i < 4; i++) {
    sw_msg_t req = request(SW_MSG_APPEND, "x");
    assert_int_equal(mutation_fold_spare(&head, &spare, &ev[i], &req, serials[i], 10 + i, "agent", &err), 0);
    msg_clear(&req);
    made[i] = head.version;
    assert_ptr_equal(ev[i].version, head.version);
    if (i >= 1) { /* the previous event, still shared, kept its version */
      assert_string_equal(version_serial(&ev[i - 1]), serials[i - 1]);
      assert_ptr_not_equal(head.version, ev[i - 1].version);
      msg_clear(&ev[i - 1]); /* durable one append later */
    }
    char want[128];
    snprintf(want, sizeof want, "{\"serial\": \"%s\", \"timestamp\": %d, \"clientId\": \"agent\"}", serials[i], 10 + i);
    char *js = json_dumps(head.version, 0);
    assert_string_equal(js, want);
    free(js);
  }
  /* From the third append on, the two objects take turns: none built. */
  assert_ptr_equal(made[2], made[0]);
  assert_ptr_equal(made[3], made[1]);
  assert_ptr_equal(spare, made[0]);
  msg_clear(&ev[3]);
  json_decref(spare);
  msg_clear(&head);
}

/* The store's fold of stored blobs gives the head the in-memory fold gave:
 * the data of every event (the middle ones from their fold hints, or read
 * without a full decode when there is none), the last event's extras and
 * version, action update. */
static void stored_fold_matches(void **state) {
  (void)state;
  sw_msg_t head = make_head("Hel"), live = make_head("Hel");
  sw_buf_t hb = {0}, evb[3] = {{0}}, out = {0};
  assert_int_equal(codec_msg_to_blob(&head, &hb), 0);
  const char *parts[] = {"lo", ", ", "world"};
  sw_store_event_t evs[3];
  char vs[SW_SERIAL_LEN + 1];
  for (int i = 0; i < 3; i++) {
    sw_msg_t req = request(SW_MSG_APPEND, parts[i]), ev;
    if (i == 1) req.extras = json_pack("{s:s}", "status", "streaming");
    sw_error_t err = {0};
    serial_format(2 + i, vs);
    assert_int_equal(mutation_fold(&live, &ev, &req, vs, 1000 + i, "agent", &err), 0);
    size_t off;
    assert_int_equal(codec_msg_to_blob_at(&ev, &evb[i], &off), 0);
    assert_memory_equal(evb[i].data + off, parts[i], strlen(parts[i])); /* where the data is */
    evs[i] = (sw_store_event_t){.blob = evb[i].data, .len = evb[i].len, .hint = mutation_frag_hint(off, ev.data.len, ev.data.kind)};
    msg_clear(&ev);
    msg_clear(&req);
  }
  /* With hints, without (events read back after a restart), and with hints
   * that do not fit their blob (ignored): the same head. */
  sw_store_event_t plain[3], wrong[3];
  for (int i = 0; i < 3; i++) {
    plain[i] = wrong[i] = evs[i];
    plain[i].hint = 0;
    wrong[i].hint = (uint64_t)SW_DATA_STRING << 62 | (uint64_t)2 << 32 | (evs[i].len - 1);
  }
  sw_buf_t out_plain = {0}, out_wrong = {0};
  assert_int_equal(mutation_fold_blobs(hb.data, hb.len, plain, 3, &out_plain), 0);
  assert_int_equal(mutation_fold_blobs(hb.data, hb.len, wrong, 3, &out_wrong), 0);
  assert_int_equal(mutation_fold_blobs(hb.data, hb.len, evs, 3, &out), 0);
  assert_int_equal(out.len, out_plain.len);
  assert_memory_equal(out.data, out_plain.data, out.len);
  assert_int_equal(out.len, out_wrong.len);
  assert_memory_equal(out.data, out_wrong.data, out.len);
  buf_free(&out_plain);
  buf_free(&out_wrong);
  /* A hint that fits is what the fold reads: the first one cut to one byte. */
  sw_store_event_t cut[3] = {evs[0], evs[1], evs[2]};
  cut[0].hint = evs[0].hint & ~((uint64_t)((1u << 30) - 1) << 32);
  cut[0].hint |= (uint64_t)1 << 32;
  sw_buf_t out_cut = {0};
  assert_int_equal(mutation_fold_blobs(hb.data, hb.len, cut, 3, &out_cut), 0);
  sw_msg_t cm;
  assert_int_equal(codec_msg_from_blob(out_cut.data, out_cut.len, &cm), 0);
  assert_string_equal((char *)cm.data.bytes, "Hell, world");
  msg_clear(&cm);
  buf_free(&out_cut);
  sw_msg_t folded;
  assert_int_equal(codec_msg_from_blob(out.data, out.len, &folded), 0);
  assert_int_equal(folded.action, SW_MSG_UPDATE);
  assert_int_equal(folded.data.len, strlen("Hello, world"));
  assert_string_equal((char *)folded.data.bytes, "Hello, world");
  assert_string_equal(version_serial(&folded), "0000000000000004");
  assert_true(json_equal(folded.version, live.version));
  assert_string_equal(json_string_value(json_object_get(folded.extras, "status")), "streaming");
  assert_string_equal(folded.name, "answer");
  msg_clear(&folded);
  /* A middle event that is not an append is refused, whatever follows. */
  sw_msg_t upd = make_head("x");
  upd.action = SW_MSG_UPDATE;
  sw_buf_t ub = {0};
  assert_int_equal(codec_msg_to_blob(&upd, &ub), 0);
  sw_store_event_t bad[3] = {plain[0], {.blob = ub.data, .len = ub.len}, plain[2]};
  buf_free(&out);
  assert_int_equal(mutation_fold_blobs(hb.data, hb.len, bad, 3, &out), -EINVAL);
  /* Bytes onto a string head are refused from the middle too. */
  sw_msg_t bin = request(SW_MSG_APPEND, NULL);
  bin.data.kind = SW_DATA_BINARY;
  bin.data.bytes = (uint8_t *)strdup("\x01");
  bin.data.len = 1;
  sw_buf_t bb = {0};
  assert_int_equal(codec_msg_to_blob(&bin, &bb), 0);
  bad[1] = (sw_store_event_t){.blob = bb.data, .len = bb.len};
  assert_int_equal(mutation_fold_blobs(hb.data, hb.len, bad, 3, &out), -EINVAL);
  buf_free(&bb);
  buf_free(&ub);
  msg_clear(&bin);
  msg_clear(&upd);
  for (int i = 0; i < 3; i++) buf_free(&evb[i]);
  buf_free(&hb);
  buf_free(&out);
  msg_clear(&live);
  msg_clear(&head);
}

/* A head the encoder wrote, with every kind of field and JSON value. */
static sw_msg_t rich_head(sw_data_kind_t kind, size_t len) {
  sw_msg_t h = make_head("");
  free(h.data.bytes);
  h.data.kind = kind;
  h.data.len = len;
  h.data.bytes = malloc(len + 1);
  for (size_t i = 0; i < len; i++) h.data.bytes[i] = (uint8_t)('a' + i % 26);
  h.data.bytes[len] = 0;
  h.connection_id = strdup("conn-1");
  h.connection_key = strdup("key!conn-1");
  h.timestamp = 1700000000123;
  h.message_serial = strdup("0000000000000000");
  h.type = strdup("t");
  h.count = -70000;
  h.has_count = true;
  h.extras = json_pack("{s:{s:s,s:i,s:i,s:i,s:I,s:I,s:I,s:f,s:b,s:n,s:[i,s,{}]}}", "headers", "status",
                       "streaming \xc3\xa9", "small", 5, "neg", -100, "mid", 70000, "big", (json_int_t)1 << 40,
                       "nbig", -((json_int_t)1 << 40), "n32", (json_int_t)-40000, "f", 1.5, "b", 1, "z", "arr", 7,
                       "x");
  h.annotations = json_pack("{s:{s:{s:i}}}", "summary", "reaction:distinct.v1", "total", 3);
  assert_non_null(h.extras);
  assert_non_null(h.annotations);
  return h;
}

/* An append event of the live fold: fragment frag (NULL: none), extras
 * given or not; *off where the fragment lies. */
static void event_blob(sw_msg_t *live, const char *frag, sw_data_kind_t kind, bool extras, int i, sw_buf_t *b,
                       sw_store_event_t *e) {
  sw_msg_t req = request(SW_MSG_APPEND, NULL), ev;
  if (frag) {
    set_data(&req, frag);
    req.data.kind = kind;
  }
  if (extras) req.extras = json_pack("{s:{s:s,s:i}}", "headers", "status", i % 2 ? "a" : "bb", "i", i * 1000);
  char vs[SW_SERIAL_LEN + 1];
  serial_format(100 + i, vs);
  sw_error_t err = {0};
  assert_int_equal(mutation_fold(live, &ev, &req, vs, 2000 + i, "agent", &err), 0);
  size_t off;
  assert_int_equal(codec_msg_to_blob_at(&ev, b, &off), 0);
  *e = (sw_store_event_t){.blob = b->data, .len = b->len, .hint = mutation_frag_hint(off, ev.data.len, ev.data.kind)};
  msg_clear(&ev);
  msg_clear(&req);
}

/* Both folds of hb with events: the same result, byte for byte. */
static void assert_folds_equal(const sw_buf_t *hb, const sw_store_event_t *evs, size_t n, int want) {
  sw_buf_t a = {0}, b = {0};
  assert_int_equal(mutation_fold_blobs(hb->data, hb->len, evs, n, &a), want);
  assert_int_equal(mutation_fold_blobs_decoded(hb->data, hb->len, evs, n, &b), want);
  if (want == 0) {
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
  }
  buf_free(&a);
  buf_free(&b);
}

/* The splicing fold writes exactly what decoding and encoding writes, for
 * heads with every field, data lengths across each header size (the
 * head's and the result's), events with and without extras, data or
 * hints, and heads without data; and it takes the encoder's blobs (else
 * it would never be used). */
static void splice_fold_matches_decoded(void **state) {
  (void)state;
  const size_t lens[] = {0, 5, 31, 32, 250, 255, 256, 65530, 65535, 65536};
  for (int k = 0; k < 2; k++) {
    sw_data_kind_t kind = k ? SW_DATA_BINARY : SW_DATA_STRING;
    for (size_t l = 0; l < sizeof lens / sizeof *lens; l++) {
      sw_msg_t head = rich_head(kind, lens[l]), live = rich_head(kind, lens[l]);
      sw_buf_t hb = {0}, evb[4] = {{0}};
      assert_int_equal(codec_msg_to_blob(&head, &hb), 0);
      blob_fields_t f;
      assert_int_equal(blob_scan(hb.data, hb.len, &f), 0);
      sw_store_event_t evs[4];
      const char *frags[] = {"x", NULL, "0123", "yz"};
      for (int i = 0; i < 4; i++) event_blob(&live, frags[i], kind, i != 3, i, &evb[i], &evs[i]);
      assert_int_equal(blob_scan(evb[3].data, evb[3].len, &f), 0);
      for (size_t n = 1; n <= 4; n++) assert_folds_equal(&hb, evs, n, 0);
      for (int i = 0; i < 4; i++) evs[i].hint = 0;
      assert_folds_equal(&hb, evs, 4, 0);
      /* The result is the live head. */
      sw_buf_t out = {0}, lb = {0};
      assert_int_equal(mutation_fold_blobs(hb.data, hb.len, evs, 4, &out), 0);
      assert_int_equal(codec_msg_to_blob(&live, &lb), 0);
      assert_int_equal(out.len, lb.len);
      assert_memory_equal(out.data, lb.data, lb.len);
      buf_free(&out);
      buf_free(&lb);
      for (int i = 0; i < 4; i++) buf_free(&evb[i]);
      buf_free(&hb);
      msg_clear(&head);
      msg_clear(&live);
    }
  }
  /* A head without data, extras or annotations: the fold adds them. */
  sw_msg_t head = make_head(""), live;
  free(head.data.bytes);
  memset(&head.data, 0, sizeof head.data);
  assert_int_equal(msg_copy(&live, &head), 0);
  sw_buf_t hb = {0}, eb = {0};
  sw_store_event_t ev;
  assert_int_equal(codec_msg_to_blob(&head, &hb), 0);
  event_blob(&live, "abc", SW_DATA_STRING, true, 1, &eb, &ev);
  assert_folds_equal(&hb, &ev, 1, 0);
  buf_free(&eb);
  /* Another data type: both refuse it. */
  msg_clear(&live);
  assert_int_equal(msg_copy(&live, &head), 0);
  set_data(&live, "s");
  event_blob(&live, "abc", SW_DATA_STRING, false, 1, &eb, &ev);
  sw_msg_t bin = make_head("");
  bin.data.kind = SW_DATA_BINARY;
  sw_buf_t bb = {0};
  assert_int_equal(codec_msg_to_blob(&bin, &bb), 0);
  assert_folds_equal(&bb, &ev, 1, -EINVAL);
  buf_free(&bb);
  buf_free(&eb);
  buf_free(&hb);
  msg_clear(&bin);
  msg_clear(&live);
  msg_clear(&head);
}

/* Blobs in other forms than the encoder's (written by hand: wider
 * headers or integers, keys out of order or twice, float32, bin in
 * JSON, an encoding, NUL in a string) are not spliced: the fold's
 * result is still exactly the decoding fold's. */
static void splice_refuses_other_forms(void **state) {
  (void)state;
  sw_msg_t live = make_head("");
  sw_buf_t eb = {0};
  sw_store_event_t ev;
  event_blob(&live, "yz", SW_DATA_STRING, false, 1, &eb, &ev);
#define A "\xa6" "action"
#define D "\xa4" "data"
#define E "\xa6" "extras"
  static const struct {
    const char *b;
    size_t len;
  } heads[] = {
#define H(s) {s, sizeof s - 1}
      H("\x82" D "\xa2hi" A "\x00"),                       /* the encoder's: spliced */
      H("\x82" D "\xd9\x02hi" A "\x00"),                   /* str8 for 2 bytes */
      H("\x82" A "\x00" D "\xa2hi"),                       /* keys out of order */
      H("\x83" D "\xa2hi" D "\xa2hi" A "\x00"),            /* a key twice */
      H("\x83" D "\xa2hi" E "\x81\xa1k\xcc\x05" A "\x00"), /* 5 as uint8 */
      H("\x83" D "\xa2hi" E "\x81\xa1k\xd0\xf0" A "\x00"), /* -16 as int8 */
      H("\x83" D "\xa2hi" E "\x81\xa1k\xca\x3f\x80\x00\x00" A "\x00"),           /* float32 */
      H("\x83" D "\xa2hi" E "\x81\xa1k\xc4\x01x" A "\x00"),                      /* bin in JSON */
      H("\x83" D "\xa2hi" E "\x82\xa1k\x01\xa1k\x02" A "\x00"),                  /* a JSON key twice */
      H("\x83" D "\xa2hi" "\xa8" "encoding" "\xa5utf-8" A "\x00"),              /* an encoding */
      H("\x83" "\xa2id" "\xa3" "a\x00b" D "\xa2hi" A "\x00"),                   /* NUL in a string */
      H("\x83" D "\xa2hi" "\xa9timestamp" "\x00" A "\x00"),                      /* timestamp 0 */
      H("\x83" D "\xa2hi" A "\x00" "\xa5other" "\x01"),                          /* a key not read */
      H("\x82" D "\xa2hi" A "\x00\x00"),                                         /* trailing bytes */
#undef H
  };
  for (size_t i = 0; i < sizeof heads / sizeof *heads; i++) {
    blob_fields_t f;
    assert_int_equal(blob_scan((const uint8_t *)heads[i].b, heads[i].len, &f), i == 0 ? 0 : -1);
    sw_buf_t hb = {.data = (uint8_t *)heads[i].b, .len = heads[i].len};
    sw_buf_t a = {0}, b = {0};
    int ra = mutation_fold_blobs(hb.data, hb.len, &ev, 1, &a);
    int rb = mutation_fold_blobs_decoded(hb.data, hb.len, &ev, 1, &b);
    assert_int_equal(ra, rb);
    assert_int_equal(a.len, b.len);
    if (a.len) assert_memory_equal(a.data, b.data, a.len);
    buf_free(&a);
    buf_free(&b);
  }
#undef A
#undef D
#undef E
  buf_free(&eb);
  msg_clear(&live);
}

/* An update replaces the fields it names and keeps the others; the event is
 * the whole new head. */
static void update_replaces(void **state) {
  sw_msg_t head = make_head("old"), ev;
  head.extras = json_pack("{s:{s:s}}", "headers", "k", "old");
  sw_msg_t req = request(SW_MSG_UPDATE, "new");
  req.version = json_pack("{s:s, s:{s:s}}", "description", "typo", "metadata", "k", "v");
  req.extras = json_pack("{s:{s:s}}", "headers", "k", "new"); /* replaces the head's (released: ASan) */
  sw_error_t err = {0};
  assert_int_equal(mutation_fold(&head, &ev, &req, "0000000000000009", 7, "editor", &err), 0);
  assert_int_equal(head.action, SW_MSG_UPDATE);
  assert_string_equal((char *)head.data.bytes, "new");
  assert_string_equal(head.name, "answer");
  assert_string_equal(json_string_value(json_object_get(head.version, "description")), "typo");
  assert_string_equal(json_string_value(json_object_get(json_object_get(head.extras, "headers"), "k")), "new");
  assert_string_equal(json_string_value(json_object_get(json_object_get(head.version, "metadata"), "k")), "v");
  assert_int_equal(ev.action, SW_MSG_UPDATE);
  assert_string_equal((char *)ev.data.bytes, "new");
  assert_string_equal(version_serial(&ev), "0000000000000009");
  msg_clear(&ev);
  msg_clear(&req);
  msg_clear(&head);
}

/* A delete is a shallow mixin like an update (Ably's soft delete): without
 * new content it keeps the content; with some, that replaces it, its
 * encoding with it. The identity stays either way. */
static void delete_mixin(void **state) {
  sw_msg_t head = make_head("secret"), ev;
  head.encoding = strdup("utf-8");
  sw_msg_t req = request(SW_MSG_DELETE, NULL);
  sw_error_t err = {0};
  assert_int_equal(mutation_fold(&head, &ev, &req, "0000000000000003", 7, "mod", &err), 0);
  assert_int_equal(head.action, SW_MSG_DELETE);
  assert_string_equal((char *)head.data.bytes, "secret");
  assert_string_equal(head.encoding, "utf-8");
  assert_string_equal(head.serial, "0000000000000001");
  assert_string_equal(head.id, "conn:0:0");
  assert_int_equal(ev.action, SW_MSG_DELETE);
  assert_string_equal((char *)ev.data.bytes, "secret");
  msg_clear(&ev);
  msg_clear(&req);
  req = request(SW_MSG_DELETE, "{}");
  req.encoding = strdup("json");
  assert_int_equal(mutation_fold(&head, &ev, &req, "0000000000000004", 8, "mod", &err), 0);
  assert_string_equal((char *)head.data.bytes, "{}");
  assert_string_equal(head.encoding, "json");
  msg_clear(&ev);
  msg_clear(&req);
  /* New data without an encoding is plain: the old encoding goes. */
  req = request(SW_MSG_UPDATE, "plain");
  assert_int_equal(mutation_fold(&head, &ev, &req, "0000000000000005", 9, "mod", &err), 0);
  assert_string_equal((char *)head.data.bytes, "plain");
  assert_null(head.encoding);
  msg_clear(&ev);
  msg_clear(&req);
  msg_clear(&head);
}

/* Version serials are channel serials: later versions sort after earlier
 * ones as strings, which is how @ably/ai-transport orders them. */
static void version_serials_order(void **state) {
  char a[SW_SERIAL_LEN + 1], b[SW_SERIAL_LEN + 1];
  for (int64_t s = 1; s < 70000; s += 97) {
    serial_format(s, a);
    serial_format(s + 1, b);
    assert_true(strcmp(a, b) < 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(appends_aggregate),    cmocka_unit_test(append_version_reuse),
      cmocka_unit_test(append_event_identity),
      cmocka_unit_test(append_takes_latest_extras), cmocka_unit_test(update_replaces_extras),
      cmocka_unit_test(append_type_mismatch), cmocka_unit_test(update_replaces),
      cmocka_unit_test(delete_mixin),       cmocka_unit_test(version_serials_order),
      cmocka_unit_test(append_version_spare),  cmocka_unit_test(stored_fold_matches), cmocka_unit_test(splice_fold_matches_decoded),
      cmocka_unit_test(splice_refuses_other_forms),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
