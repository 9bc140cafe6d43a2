/* test_pubsub.c: publish, subscribe and history in JSON and msgpack (and
 * across them): every Message field, binary data, JSON data, extras, name
 * filters, echo, batches, queueing before connect, history paging and
 * untilAttach, detach/attach and release. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

typedef struct count_wait {
  recv_log_t *r;
  ack_log_t *a;
  size_t want_msgs;
  int want_acks;
} count_wait_t;

static bool counts_reached(void *arg) {
  count_wait_t *w = arg;
  return (!w->r || (w->r->msgs && json_array_size(w->r->msgs) >= w->want_msgs)) &&
         (!w->a || w->a->acked + w->a->nacked >= w->want_acks);
}

static bool wait_counts(tctx_t *t, recv_log_t *r, size_t msgs, ack_log_t *a, int acks) {
  count_wait_t w = {r, a, msgs, acks};
  return run_until_fn(&t->loop, counts_reached, &w, 8000);
}

static sw_channel_t *attached(tctx_t *t, sw_client_t *c, const char *name, recv_log_t *r, const char *filter) {
  sw_channel_t *ch = sw_client_channel(c, name);
  assert_non_null(ch);
  if (r) assert_true(sw_channel_subscribe(ch, filter, recv_cb, r) > 0);
  done_log_t d = {0};
  assert_int_equal(sw_channel_attach(ch, done_cb, &d), 0);
  assert_true(run_until(&t->loop, &d.done, 5000));
  assert_int_equal(d.err.code, 0);
  return ch;
}

static const char *jstr(const json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

/* pub_format -> sub_format: every field arrives as sent. */
static void pubsub(void **state, int pub_format, int sub_format) {
  tctx_t t;
  tctx_init(&t, *state, NULL);
  sw_options_t o;
  state_log_t lp = {0}, ls = {0};
  tctx_options(&t, &o, sub_format);
  sw_client_t *sub = tclient(&t, &o, &ls);
  tctx_options(&t, &o, pub_format);
  o.client_id = "publisher";
  sw_client_t *pub = tclient(&t, &o, &lp);
  assert_true(run_until(&t.loop, &ls.connected, 5000));
  assert_true(run_until(&t.loop, &lp.connected, 5000));

  recv_log_t all = {0}, only_b = {0};
  sw_channel_t *sch = attached(&t, sub, "fields", &all, NULL);
  assert_true(sw_channel_subscribe(sch, "b", recv_cb, &only_b) > 0);
  sw_channel_t *pch = sw_client_channel(pub, "fields");

  const uint8_t bin[] = {0x00, 0x01, 0xfe, 0xff, 0x80, 0x00, 0x7f};
  sw_message_t msgs[3] = {
      {.name = "a", .data = "héllo wörld", .data_type = SW_PAYLOAD_STRING, .extras = "{\"headers\":{\"k\":\"v\"}}"},
      {.name = "b", .data = bin, .data_len = sizeof bin, .data_type = SW_PAYLOAD_BINARY, .id = "my-own-id"},
      {.name = "c", .data = "{\"x\":[1,2]}", .data_type = SW_PAYLOAD_STRING, .encoding = "json"},
  };
  ack_log_t a = {0};
  assert_int_equal(sw_channel_publish_messages(pch, msgs, 3, ack_cb, &a), 0);
  assert_int_equal(sw_channel_publish(pch, NULL, NULL, ack_cb, &a), 0); /* no name, no data */
  assert_true(wait_counts(&t, &all, 4, &a, 2));
  assert_int_equal(a.acked, 2);
  assert_int_equal(json_array_size(a.serials), 4);
  assert_int_equal(json_array_size(all.msgs), 4);
  assert_int_equal(json_array_size(only_b.msgs), 1);

  const char *pub_conn = sw_client_connection_id(pub);
  for (size_t i = 0; i < 4; i++) {
    json_t *m = json_array_get(all.msgs, i);
    assert_string_equal(jstr(m, "serial"), json_string_value(json_array_get(a.serials, i)));
    assert_string_equal(jstr(m, "connectionId"), pub_conn);
    assert_string_equal(jstr(m, "clientId"), "publisher");
    assert_non_null(jstr(m, "id"));
    assert_true(json_integer_value(json_object_get(m, "timestamp")) > 0);
  }
  json_t *m0 = json_array_get(all.msgs, 0), *m1 = json_array_get(all.msgs, 1), *m2 = json_array_get(all.msgs, 2),
         *m3 = json_array_get(all.msgs, 3);
  assert_string_equal(jstr(m0, "name"), "a");
  assert_string_equal(jstr(m0, "data"), "héllo wörld");
  assert_string_equal(jstr(m0, "type"), "string");
  assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(m0, "extras"), "headers"), "k")), "v");
  assert_string_equal(jstr(m1, "type"), "binary");
  assert_string_equal(jstr(m1, "data"), "AAH+/4AAfw==");
  assert_string_equal(jstr(m1, "id"), "my-own-id");
  assert_null(json_object_get(m1, "encoding"));
  assert_string_equal(jstr(m2, "data"), "{\"x\":[1,2]}");
  assert_string_equal(jstr(m2, "encoding"), "json");
  assert_null(json_object_get(m3, "name"));
  assert_string_equal(jstr(m3, "type"), "none");
  assert_string_equal(jstr(json_array_get(only_b.msgs, 0), "name"), "b");

  json_decref(all.msgs);
  json_decref(only_b.msgs);
  json_decref(a.serials);
  tclose(&t, pub, &lp);
  tclose(&t, sub, &ls);
  tctx_done(&t);
}

static void test_pubsub_json(void **state) {
  pubsub(state, SW_FORMAT_JSON, SW_FORMAT_JSON);
}
static void test_pubsub_msgpack(void **state) {
  pubsub(state, SW_FORMAT_MSGPACK, SW_FORMAT_MSGPACK);
}
static void test_pubsub_json_to_msgpack(void **state) {
  pubsub(state, SW_FORMAT_JSON, SW_FORMAT_MSGPACK);
}
static void test_pubsub_msgpack_to_json(void **state) {
  pubsub(state, SW_FORMAT_MSGPACK, SW_FORMAT_JSON);
}

static void test_echo_queue_and_unsubscribe(void **state) {
  tctx_t t;
  tctx_init(&t, *state, NULL);
  sw_options_t o;
  tctx_options(&t, &o, SW_FORMAT_MSGPACK);
  o.echo = false;
  state_log_t la = {0}, lb = {0};
  sw_client_t *a = NULL, *b = NULL;
  o.on_state = state_log_cb;
  o.state_ud = &la;
  assert_int_equal(sw_client_new(&o, &a, NULL), 0);
  /* Published before connecting: queued, sent on CONNECTED (RTL6c2). */
  ack_log_t acks = {0};
  sw_channel_t *ach = sw_client_channel(a, "echo");
  assert_int_equal(sw_channel_publish(ach, "early", "1", ack_cb, &acks), 0);
  recv_log_t own = {0}, other = {0};
  assert_true(sw_channel_subscribe(ach, NULL, recv_cb, &own) > 0);
  assert_int_equal(sw_client_connect(a), 0);
  assert_true(wait_counts(&t, NULL, 0, &acks, 1));
  assert_int_equal(acks.acked, 1);
  o.echo = true;
  b = tconnect(&t, &o, &lb);
  sw_channel_t *bch = attached(&t, b, "echo", &other, NULL);
  assert_int_equal(sw_channel_state(ach), SW_CHANNEL_ATTACHED);
  /* echo=false: a's own message does not come back; b sees both. */
  assert_int_equal(sw_channel_publish(ach, "late", "2", ack_cb, &acks), 0);
  assert_int_equal(sw_channel_publish(bch, "fromb", "3", ack_cb, &acks), 0);
  assert_true(wait_counts(&t, &own, 1, &acks, 3));
  assert_true(wait_counts(&t, &other, 2, NULL, 0));
  run_for(&t.loop, 200);
  assert_int_equal(json_array_size(own.msgs), 1);
  assert_string_equal(jstr(json_array_get(own.msgs, 0), "name"), "fromb");
  assert_int_equal(json_array_size(other.msgs), 2); /* "early" came before b attached */
  /* Unsubscribe all: nothing more is delivered, the channel stays attached. */
  assert_int_equal(sw_channel_unsubscribe(ach, 0), 0);
  assert_int_equal(sw_channel_unsubscribe(ach, 12345), SW_EINVAL);
  assert_int_equal(sw_channel_publish(bch, "after", "4", ack_cb, &acks), 0);
  assert_true(wait_counts(&t, &other, 3, &acks, 4));
  run_for(&t.loop, 100);
  assert_int_equal(json_array_size(own.msgs), 1);
  json_decref(own.msgs);
  json_decref(other.msgs);
  json_decref(acks.serials);
  tclose(&t, a, &la);
  tclose(&t, b, &lb);
  tctx_done(&t);
}

static void test_detach_attach_release(void **state) {
  tctx_t t;
  tctx_init(&t, *state, NULL);
  sw_options_t o;
  tctx_options(&t, &o, SW_FORMAT_JSON);
  state_log_t l = {0};
  sw_client_t *c = tconnect(&t, &o, &l);
  recv_log_t r = {0};
  sw_channel_t *ch = attached(&t, c, "da", &r, NULL);
  done_log_t d = {0};
  assert_int_equal(sw_channel_detach(ch, done_cb, &d), 0);
  assert_int_equal(sw_channel_state(ch), SW_CHANNEL_DETACHING);
  assert_true(run_until(&t.loop, &d.done, 5000));
  assert_int_equal(d.err.code, 0);
  assert_int_equal(sw_channel_state(ch), SW_CHANNEL_DETACHED);
  /* Detached: publishing still works (no attach needed), nothing is received. */
  ack_log_t a = {0};
  assert_int_equal(sw_channel_publish(ch, NULL, "while detached", ack_cb, &a), 0);
  assert_true(wait_counts(&t, NULL, 0, &a, 1));
  assert_int_equal(a.acked, 1);
  run_for(&t.loop, 100);
  assert_null(r.msgs);
  /* Attached again: delivery resumes. Attaching twice completes at once. */
  done_log_t d2 = {0}, d3 = {0};
  assert_int_equal(sw_channel_attach(ch, done_cb, &d2), 0);
  assert_true(run_until(&t.loop, &d2.done, 5000));
  assert_int_equal(sw_channel_attach(ch, done_cb, &d3), 0);
  assert_false(d3.done); /* never from inside the call */
  assert_true(run_until(&t.loop, &d3.done, 1000));
  assert_int_equal(sw_channel_publish(ch, NULL, "again", ack_cb, &a), 0);
  assert_true(wait_counts(&t, &r, 1, &a, 2));
  /* Release: the handle goes; the name gives a fresh one. */
  assert_int_equal(sw_channel_release(ch), 0);
  sw_channel_t *fresh = sw_client_channel(c, "da");
  assert_non_null(fresh);
  assert_int_equal(sw_channel_state(fresh), SW_CHANNEL_INITIALIZED);
  run_for(&t.loop, 200); /* the DETACHED of the release */
  /* Messages for the name reach the fresh handle, not the released one the
   * client received the last message for. */
  recv_log_t r2 = {0};
  assert_ptr_equal(attached(&t, c, "da", &r2, NULL), fresh);
  assert_int_equal(sw_channel_publish(fresh, NULL, "fresh", ack_cb, &a), 0);
  assert_true(wait_counts(&t, &r2, 1, &a, 3));
  assert_string_equal(jstr(json_array_get(r2.msgs, 0), "data"), "fresh");
  assert_int_equal(json_array_size(r.msgs), 1);
  json_decref(r2.msgs);
  json_decref(r.msgs);
  json_decref(a.serials);
  tclose(&t, c, &l);
  tctx_done(&t);
}

typedef struct hist {
  bool done;
  sw_errinfo_t err;
  sw_history_page_t *page;
} hist_t;

static void on_page(sw_client_t *c, const sw_errinfo_t *err, sw_history_page_t *page, void *ud) {
  hist_t *h = ud;
  (void)c;
  h->done = true;
  if (err) h->err = *err;
  h->page = page;
}

static sw_history_page_t *page_of(tctx_t *t, hist_t *h) {
  assert_true(run_until(&t->loop, &h->done, 5000));
  if (h->err.code) fprintf(stderr, "history: %d %s\n", h->err.code, h->err.message);
  assert_int_equal(h->err.code, 0);
  assert_non_null(h->page);
  return h->page;
}

static void history(void **state, int format) {
  tctx_t t;
  tctx_init(&t, *state, NULL);
  sw_options_t o;
  tctx_options(&t, &o, format);
  state_log_t l = {0};
  sw_client_t *c = tconnect(&t, &o, &l);
  sw_channel_t *ch = sw_client_channel(c, "hist");
  ack_log_t a = {0};
  char data[16];
  for (int i = 0; i < 25; i++) {
    snprintf(data, sizeof data, "m%02d", i);
    assert_int_equal(sw_channel_publish(ch, "h", data, ack_cb, &a), 0);
  }
  const uint8_t bin[] = {0, 255, 7};
  sw_message_t bm = {.name = "bin", .data = bin, .data_len = 3, .data_type = SW_PAYLOAD_BINARY, .extras = "{\"e\":1}"};
  assert_int_equal(sw_channel_publish_messages(ch, &bm, 1, ack_cb, &a), 0);
  assert_true(wait_counts(&t, NULL, 0, &a, 26));
  assert_int_equal(a.acked, 26);

  /* Backwards (default), 10 a page: 10, 10, 6 (the binary one first). */
  hist_t h = {0};
  sw_history_params_t p = {.limit = 10};
  assert_int_equal(sw_channel_history(ch, &p, on_page, &h), 0);
  sw_history_page_t *pg = page_of(&t, &h);
  assert_int_equal(sw_history_page_count(pg), 10);
  const sw_message_t *first = sw_history_page_item(pg, 0);
  assert_string_equal(first->name, "bin");
  assert_int_equal(first->data_type, SW_PAYLOAD_BINARY);
  assert_int_equal(first->data_len, 3);
  assert_memory_equal(first->data, bin, 3);
  assert_string_equal(first->extras, "{\"e\":1}");
  assert_string_equal(first->serial, json_string_value(json_array_get(a.serials, 25)));
  assert_string_equal((const char *)sw_history_page_item(pg, 1)->data, "m24");
  assert_null(sw_history_page_item(pg, 10));
  assert_true(sw_history_page_has_next(pg));
  size_t total = 10;
  int pages = 1;
  char last[8] = "";
  while (sw_history_page_has_next(pg)) {
    hist_t h2 = {0};
    assert_int_equal(sw_history_page_next(pg, on_page, &h2), 0);
    sw_history_page_free(pg); /* the request copied what it needs */
    pg = page_of(&t, &h2);
    total += sw_history_page_count(pg);
    pages++;
    if (sw_history_page_count(pg))
      snprintf(last, sizeof last, "%s", (const char *)sw_history_page_item(pg, sw_history_page_count(pg) - 1)->data);
  }
  assert_int_equal(total, 26);
  assert_int_equal(pages, 3);
  assert_string_equal(last, "m00");
  assert_int_equal(sw_history_page_next(pg, on_page, &h), SW_ESTATE);
  sw_history_page_free(pg);

  /* Forwards: oldest first. */
  hist_t hf = {0};
  sw_history_params_t pf = {.limit = 5, .forwards = true};
  assert_int_equal(sw_channel_history(ch, &pf, on_page, &hf), 0);
  pg = page_of(&t, &hf);
  assert_int_equal(sw_history_page_count(pg), 5);
  assert_string_equal((const char *)sw_history_page_item(pg, 0)->data, "m00");
  assert_string_equal((const char *)sw_history_page_item(pg, 4)->data, "m04");
  sw_history_page_free(pg);

  /* untilAttach: only what was there when the channel attached. */
  hist_t hu = {0};
  sw_history_params_t pu = {.until_attach = true};
  assert_int_equal(sw_channel_history(ch, &pu, on_page, &hu), SW_ESTATE); /* not attached */
  attached(&t, c, "hist", NULL, NULL);
  assert_int_equal(sw_channel_publish(ch, "h", "after attach", ack_cb, &a), 0);
  assert_true(wait_counts(&t, NULL, 0, &a, 27));
  assert_int_equal(sw_channel_history(ch, &pu, on_page, &hu), 0);
  pg = page_of(&t, &hu);
  assert_int_equal(sw_history_page_count(pg), 26);
  assert_string_equal(sw_history_page_item(pg, 0)->name, "bin");
  sw_history_page_free(pg);

  /* Invalid parameters are refused before any request. */
  sw_history_params_t bad = {.limit = 5000};
  assert_int_equal(sw_channel_history(ch, &bad, on_page, &h), SW_EINVAL);
  json_decref(a.serials);
  tclose(&t, c, &l);
  tctx_done(&t);
}

static void test_history_json(void **state) {
  history(state, SW_FORMAT_JSON);
}
static void test_history_msgpack(void **state) {
  history(state, SW_FORMAT_MSGPACK);
}

static void test_history_with_token(void **state) {
  /* REST with a callback token: Bearer auth, the token fetched on demand. */
  tctx_t t;
  tctx_init(&t, *state, NULL);
  sw_options_t o;
  tctx_options(&t, &o, SW_FORMAT_JSON);
  o.use_token_auth = true;
  sw_client_t *c = NULL;
  assert_int_equal(sw_client_new(&o, &c, NULL), 0);
  hist_t h = {0};
  assert_int_equal(sw_channel_history(sw_client_channel(c, "empty"), NULL, on_page, &h), 0);
  sw_history_page_t *pg = page_of(&t, &h);
  assert_int_equal(sw_history_page_count(pg), 0);
  assert_false(sw_history_page_has_next(pg));
  sw_history_page_free(pg);
  assert_int_equal(sw_client_state(c), SW_CONN_INITIALIZED); /* REST alone does not connect */
  sw_client_free(c);
  tctx_done(&t);
}

/* Message operations on a namespace with mutableMessages (RTL32): the
 * append, update and delete reach a subscriber with their action, the
 * target's serial and a version; history serves the aggregated head. */
static void test_mutable_messages(void **state) {
  tctx_t t;
  tctx_init(&t, *state, "{\"keys\":[{}],\"namespaces\":[{\"id\":\"ai\",\"mutableMessages\":true}]}");
  sw_options_t o;
  tctx_options(&t, &o, SW_FORMAT_MSGPACK);
  o.client_id = "agent";
  state_log_t l = {0};
  sw_client_t *c = tconnect(&t, &o, &l);
  recv_log_t r = {0};
  sw_channel_t *ch = attached(&t, c, "ai:stream", &r, NULL);
  ack_log_t a = {0};
  assert_int_equal(sw_channel_publish(ch, "answer", "hel", ack_cb, &a), 0);
  assert_true(wait_counts(&t, &r, 1, &a, 1));
  assert_int_equal(a.acked, 1);
  const char *serial = json_string_value(json_array_get(a.serials, 0));
  sw_message_t frag = {.serial = serial, .data = "lo", .data_type = SW_PAYLOAD_STRING};
  assert_int_equal(sw_channel_append_message(ch, &frag, ack_cb, &a), 0);
  assert_true(wait_counts(&t, &r, 2, &a, 2));
  sw_message_t upd = {.serial = serial, .name = "answer", .data = "hello!", .data_type = SW_PAYLOAD_STRING};
  assert_int_equal(sw_channel_update_message(ch, &upd, ack_cb, &a), 0);
  assert_true(wait_counts(&t, &r, 3, &a, 3));
  if (a.nacked) fprintf(stderr, "mutable: %d %s\n", a.last_err.code, a.last_err.message);
  assert_int_equal(a.acked, 3);
  /* ACKs of operations carry the version's serial, a new one each time. */
  const char *v1 = json_string_value(json_array_get(a.serials, 1)), *v2 = json_string_value(json_array_get(a.serials, 2));
  assert_non_null(v1);
  assert_non_null(v2);
  assert_true(strcmp(v1, serial) > 0 && strcmp(v2, v1) > 0);
  json_t *append = json_array_get(r.msgs, 1), *update = json_array_get(r.msgs, 2);
  assert_int_equal(json_integer_value(json_object_get(append, "action")), SW_MESSAGE_APPEND);
  assert_string_equal(jstr(append, "serial"), serial);
  assert_string_equal(jstr(append, "data"), "lo");
  assert_non_null(json_object_get(append, "version"));
  assert_string_equal(json_string_value(json_object_get(json_object_get(append, "version"), "serial")), v1);
  assert_int_equal(json_integer_value(json_object_get(update, "action")), SW_MESSAGE_UPDATE);
  assert_string_equal(jstr(update, "data"), "hello!");
  assert_string_equal(jstr(update, "serial"), serial);
  json_decref(r.msgs);
  json_decref(a.serials);
  tclose(&t, c, &l);
  tctx_done(&t);
}

/* Every callback may free its own client or release its own channel; the
 * sanitizer build checks that nothing is touched afterwards. */
typedef struct freer {
  sw_client_t *c;
  bool fired;
  int count;
} freer_t;

static void free_on_message(sw_channel_t *ch, const sw_message_t *m, void *ud) {
  freer_t *f = ud;
  (void)ch;
  (void)m;
  f->fired = true;
  sw_client_free(f->c);
}

static void release_on_message(sw_channel_t *ch, const sw_message_t *m, void *ud) {
  freer_t *f = ud;
  (void)m;
  f->count++;
  f->fired = true;
  assert_int_equal(sw_channel_release(ch), 0);
}

static void free_on_time(sw_client_t *c, const sw_errinfo_t *err, int64_t t, void *ud) {
  freer_t *f = ud;
  (void)err;
  (void)t;
  f->fired = true;
  sw_client_free(c);
}

static void free_on_page(sw_client_t *c, const sw_errinfo_t *err, sw_history_page_t *pg, void *ud) {
  freer_t *f = ud;
  (void)err;
  f->fired = true;
  sw_client_free(c);
  assert_true(sw_history_page_count(pg) >= 1); /* the page outlives the client */
  sw_history_page_free(pg);
}

static void free_on_ack(sw_channel_t *ch, const sw_errinfo_t *err, const char *const *s, size_t n, void *ud) {
  freer_t *f = ud;
  (void)err;
  (void)s;
  (void)n;
  f->count++;
  if (f->fired) return;
  f->fired = true;
  sw_client_free(sw_channel_client(ch));
}

static void free_on_connected(sw_client_t *c, const sw_state_change_t *chg, void *ud) {
  freer_t *f = ud;
  if (chg->current != SW_CONN_CONNECTED) return;
  f->fired = true;
  sw_client_free(c);
}

static void free_in_auth(sw_client_t *c, sw_auth_request_t *req, void *ud) {
  freer_t *f = ud;
  f->fired = true;
  sw_client_free(c);
  assert_int_equal(sw_auth_complete(req, "ignored.token", NULL), 0); /* just frees req */
}

static void free_on_attach(sw_channel_t *ch, const sw_errinfo_t *err, void *ud) {
  freer_t *f = ud;
  (void)err;
  f->fired = true;
  sw_client_free(sw_channel_client(ch));
}

static void test_free_in_callbacks(void **state) {
  tctx_t t;
  tctx_init(&t, *state, NULL);
  sw_options_t o;
  tctx_options(&t, &o, SW_FORMAT_MSGPACK);
  state_log_t lp = {0};
  sw_client_t *pub = tconnect(&t, &o, &lp);
  sw_channel_t *pch = sw_client_channel(pub, "freeing");

  /* In a message callback, with more messages in the same read. */
  freer_t fm = {0};
  sw_client_t *a = NULL;
  assert_int_equal(sw_client_new(&o, &a, NULL), 0);
  fm.c = a;
  assert_int_equal(sw_client_connect(a), 0);
  attached(&t, a, "freeing", NULL, NULL);
  assert_true(sw_channel_subscribe(sw_client_channel(a, "freeing"), NULL, free_on_message, &fm) > 0);
  /* Releasing a channel from its own callback. */
  freer_t fr = {0};
  sw_client_t *b = NULL;
  assert_int_equal(sw_client_new(&o, &b, NULL), 0);
  assert_int_equal(sw_client_connect(b), 0);
  attached(&t, b, "freeing", NULL, NULL);
  assert_true(sw_channel_subscribe(sw_client_channel(b, "freeing"), NULL, release_on_message, &fr) > 0);
  sw_message_t burst[5] = {{.name = "1"}, {.name = "2"}, {.name = "3"}, {.name = "4"}, {.name = "5"}};
  assert_int_equal(sw_channel_publish_messages(pch, burst, 5, NULL, NULL), 0);
  assert_true(run_until(&t.loop, &fm.fired, 5000));
  assert_true(run_until(&t.loop, &fr.fired, 5000));
  run_for(&t.loop, 100);
  assert_int_equal(fr.count, 1);
  tclose(&t, b, NULL);

  /* In REST callbacks. */
  freer_t ft = {0}, fh = {0};
  sw_client_t *c = NULL;
  assert_int_equal(sw_client_new(&o, &c, NULL), 0);
  assert_int_equal(sw_time(c, free_on_time, &ft), 0);
  assert_int_equal(sw_time(c, free_on_time, &ft), 0); /* still pending when the first frees */
  assert_true(run_until(&t.loop, &ft.fired, 5000));
  assert_int_equal(sw_client_new(&o, &c, NULL), 0);
  assert_int_equal(sw_channel_history(sw_client_channel(c, "freeing"), NULL, free_on_page, &fh), 0);
  assert_true(run_until(&t.loop, &fh.fired, 5000));

  /* In an ACK callback with more ACKs to come, a state callback, the auth
   * callback and an attach callback. */
  freer_t fa = {0}, fs = {0}, fu = {0}, fat = {0};
  assert_int_equal(sw_client_new(&o, &c, NULL), 0);
  assert_int_equal(sw_client_connect(c), 0);
  for (int i = 0; i < 20; i++) assert_int_equal(sw_channel_publish(sw_client_channel(c, "freeing"), NULL, "x", free_on_ack, &fa), 0);
  assert_true(run_until(&t.loop, &fa.fired, 5000));
  assert_int_equal(fa.count, 1);
  sw_options_t os = o;
  os.on_state = free_on_connected;
  os.state_ud = &fs;
  assert_int_equal(sw_client_new(&os, &c, NULL), 0);
  assert_int_equal(sw_client_connect(c), 0);
  assert_true(run_until(&t.loop, &fs.fired, 5000));
  sw_options_t oa = o;
  oa.key = NULL;
  oa.auth_cb = free_in_auth;
  oa.auth_ud = &fu;
  assert_int_equal(sw_client_new(&oa, &c, NULL), 0);
  assert_int_equal(sw_client_connect(c), 0);
  assert_true(run_until(&t.loop, &fu.fired, 5000));
  assert_int_equal(sw_client_new(&o, &c, NULL), 0);
  assert_int_equal(sw_client_connect(c), 0);
  assert_int_equal(sw_channel_attach(sw_client_channel(c, "freeing"), free_on_attach, &fat), 0);
  assert_true(run_until(&t.loop, &fat.fired, 5000));

  tclose(&t, pub, &lp);
  tctx_done(&t);
}

int main(int argc, char **argv) {
  test_env_t env = {.bin = TEST_SERVER_BIN(argc, argv)};
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_prestate(test_pubsub_json, &env),
      cmocka_unit_test_prestate(test_pubsub_msgpack, &env),
      cmocka_unit_test_prestate(test_pubsub_json_to_msgpack, &env),
      cmocka_unit_test_prestate(test_pubsub_msgpack_to_json, &env),
      cmocka_unit_test_prestate(test_echo_queue_and_unsubscribe, &env),
      cmocka_unit_test_prestate(test_detach_attach_release, &env),
      cmocka_unit_test_prestate(test_history_json, &env),
      cmocka_unit_test_prestate(test_history_msgpack, &env),
      cmocka_unit_test_prestate(test_history_with_token, &env),
      cmocka_unit_test_prestate(test_free_in_callbacks, &env),
      cmocka_unit_test_prestate(test_mutable_messages, &env),
  };
  return run_with_server(tests, &env, NULL);
}
