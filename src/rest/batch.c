/* batch.c: the REST batch API: POST /messages (batch publish, RSC22) and
 * GET /presence (batch presence, RSC24).
 *
 * A batch publish is one ordinary publish per (spec, channel), each checked
 * on its own (name, capability, clientId, size) exactly as a single REST
 * publish is, and all in flight at once. The reply waits for all of them:
 * one BatchResult (BAR2) per spec, whose results (BPR2, BPF2) are in the
 * order of the spec's channels. Ably limits a batch to 100 channels.
 *
 * Before protocol version 3, Ably answered a single spec object (not an
 * array of specs) in the older batch format: a flat array of the per-channel
 * results, 201 when all succeeded, else 400 with {error: 40020,
 * batchResponse: [...]}; ably-js's request() tests still ask for it with
 * X-Ably-Version 2. An array of specs got BatchResults at version 2 already
 * (ably-js 1.2's batchPublish sent one with version 2), and a request without
 * X-Ably-Version gets BatchResults, as it always did here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/channel_name.h"
#include "core/app.h"
#include "core/channel.h"
#include "core/presence.h"
#include "core/server.h"
#include "core/sock.h"
#include "net/http_parse.h"
#include "net/url.h"
#include "rest/rest.h"
#include "rest/route.h"

/* Ably's limit on the channels of one batch request (publish or presence). */
#define BATCH_MAX_CHANNELS 100
/* Ably's batch_request_error: some items of an old-format batch failed. */
#define BATCH_E_PARTIAL 40020
/* The protocol version from which a single spec gets a BatchResult. */
#define BATCH_RESULT_VERSION 3.0
/* The channels query parameter of a batch presence: 100 names, each at
 * most this long once decoded. */
#define BATCH_CHANNELS_PARAM_MAX (BATCH_MAX_CHANNELS * 1024)

typedef struct batch {
  sw_sock_t *s; /* referenced until the reply */
  sw_format_t fmt;
  bool keep_alive;
  bool flat;       /* answer in the old format (see the top of this file) */
  json_t *results; /* [BatchResult], one per spec */
  size_t pending;  /* publishes in flight, plus one while they are started */
} batch_t;

/* One publish of a batch: where its result goes. */
typedef struct batch_item {
  batch_t *b;
  size_t spec, index;
  char message_id[48]; /* BPR2b: the id prefix of its messages */
} batch_item_t;

static json_t *error_json(const sw_error_t *e) {
  char href[64];
  errors_href(e->code, href, sizeof href);
  return json_pack("{s:s, s:i, s:i, s:s}", "message", e->message, "code", e->code, "statusCode", e->status, "href",
                   href);
}

/* Records the result of one (spec, channel): BPR2 on success, BPF2 with
 * err otherwise. */
static void batch_set(batch_t *b, size_t spec, size_t index, const char *channel, const char *message_id,
                      const sw_error_t *err, char **serials, size_t n) {
  json_t *res = json_array_get(b->results, spec);
  json_t *r;
  if (err && err->code) {
    r = json_pack("{s:s, s:o}", "channel", channel, "error", error_json(err));
    json_object_set_new(res, "failureCount", json_integer(json_integer_value(json_object_get(res, "failureCount")) + 1));
  } else {
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, serials[i] ? json_string(serials[i]) : json_null());
    r = json_pack("{s:s, s:s, s:o}", "channel", channel, "messageId", message_id, "serials", arr);
    json_object_set_new(res, "successCount", json_integer(json_integer_value(json_object_get(res, "successCount")) + 1));
  }
  json_array_set_new(json_object_get(res, "results"), index, r);
}

/* The old format's answer: the only spec's per-channel results, as they
 * are (201), or under a 40020 error when any failed (400). */
static void reply_flat(batch_t *b) {
  json_t *res = json_array_get(b->results, 0);
  json_t *items = json_object_get(res, "results");
  if (json_integer_value(json_object_get(res, "failureCount")) == 0) {
    rest_reply_value(b->s, 201, b->fmt, items, b->keep_alive, NULL);
    return;
  }
  sw_error_t e;
  errors_set(&e, BATCH_E_PARTIAL, "Batched response includes errors");
  json_t *v = json_pack("{s:o, s:O}", "error", error_json(&e), "batchResponse", items);
  char headers[sizeof e.message + 64];
  snprintf(headers, sizeof headers, "X-Ably-ErrorCode: %d\r\nX-Ably-ErrorMessage: %s\r\n", e.code, e.message);
  if (!v) {
    errors_set(&e, SW_E_INTERNAL, "out of memory");
    rest_error(b->s, b->fmt, &e, b->keep_alive);
    return;
  }
  rest_reply_value(b->s, e.status, b->fmt, v, b->keep_alive, headers);
  json_decref(v);
}

static void batch_release(batch_t *b) {
  if (--b->pending) return;
  if (!b->s->closing) {
    if (b->flat)
      reply_flat(b);
    else
      rest_reply_value(b->s, 201, b->fmt, b->results, b->keep_alive, NULL);
  }
  sock_unref(b->s);
  json_decref(b->results);
  free(b);
}

/* A batch answers on its own socket, b->s, once every channel is done. */
static void batch_done(const sw_publisher_t *who, const char *channel, const sw_error_t *err, char **serials,
                       size_t n) {
  batch_item_t *it = who->done_ud;
  json_t *res = json_array_get(it->b->results, it->spec);
  json_t *slot = json_array_get(json_object_get(res, "results"), it->index);
  batch_set(it->b, it->spec, it->index, json_string_value(json_object_get(slot, "channel")), it->message_id, err,
            serials, n);
  batch_t *b = it->b;
  free(it);
  batch_release(b);
}

/* Copies msgs for one channel: channel_publish consumes what it is given. */
static sw_msg_t *copy_msgs(const sw_msg_t *msgs, size_t n) {
  sw_msg_t *out = calloc(n, sizeof *out);
  for (size_t i = 0; out && i < n; i++) {
    if (msg_copy(&out[i], &msgs[i])) {
      for (size_t j = 0; j <= i; j++) msg_clear(&out[j]);
      free(out);
      return NULL;
    }
  }
  return out;
}

/* Starts the publish of spec's messages on one channel; its result is
 * recorded now (a refusal) or when it is durable. */
static void publish_one(route_ctx_t *r, batch_t *b, const sw_batch_spec_t *spec, size_t si, size_t ci) {
  const char *name = spec->channels[ci];
  sw_error_t err = {0};
  sw_channel_name_t parts;
  sw_msg_t *msgs = NULL;
  batch_item_t *it = NULL;
  sw_channel_t *ch = NULL;
  /* A placeholder carrying the name, until the result replaces it. */
  json_array_append_new(json_object_get(json_array_get(b->results, si), "results"), json_pack("{s:s}", "channel", name));
  if (channel_name_validate(name, strlen(name), &parts, &err) || parts.kind != SW_CHAN_PLAIN || parts.name_off) {
    if (!err.code) errors_set(&err, SW_E_INVALID_CHANNEL, "invalid channel name for a batch publish: %.200s", name);
  } else if (!cap_allows(r->p.cap, name, SW_OP_PUBLISH)) {
    errors_set(&err, SW_E_CAPABILITY_DENIED, "publish denied; channel = %.200s", name);
  } else if (!(ch = channel_get(r->s->srv, r->app, name)) || !(msgs = copy_msgs(spec->msgs, spec->n_msgs)) ||
             !(it = calloc(1, sizeof *it))) {
    errors_set(&err, SW_E_INTERNAL, "out of memory");
  } else if (rest_prepare_publish(r, ch, msgs, spec->n_msgs, &err) == 0) {
    *it = (batch_item_t){.b = b, .spec = si, .index = ci};
    /* Ids the server makes share one base, which is the result's messageId;
     * with the client's own ids, the first one's prefix is. */
    const char *first = msgs[0].id;
    if (first) {
      const char *colon = strrchr(first, ':');
      snprintf(it->message_id, sizeof it->message_id, "%.*s", (int)(colon ? colon - first : (long)strlen(first)),
               first);
    } else {
      app_random_id(it->message_id, 12);
    }
    sw_publisher_t who = {.principal = &r->p, .done = batch_done, .done_ud = it, .id_base = it->message_id};
    b->pending++;
    if (channel_publish(ch, msgs, spec->n_msgs, &who, &err) == 0) return; /* consumed msgs */
    msgs = NULL;
    b->pending--;
  }
  if (msgs) {
    for (size_t i = 0; i < spec->n_msgs; i++) msg_clear(&msgs[i]);
    free(msgs);
  }
  free(it);
  batch_set(b, si, ci, name, NULL, &err, NULL, 0);
}

/* True when the request's X-Ably-Version is a number below 3 (ably-js's
 * request() sends the version it is given; its own calls send 6). */
static bool old_version(const sw_http_req_t *req) {
  const sw_slice_t *v = http_req_header(req, "X-Ably-Version");
  char text[16];
  if (!v || v->n == 0 || v->n >= sizeof text) return false;
  memcpy(text, v->p, v->n);
  text[v->n] = '\0';
  char *end;
  double version = strtod(text, &end);
  return end != text && *end == '\0' && version < BATCH_RESULT_VERSION;
}

/* True when the (already decoded) body is one spec object, not an array:
 * JSON's first non-blank byte, msgpack's first type byte. */
static bool single_spec_body(sw_format_t fmt, const uint8_t *p, size_t n) {
  size_t i = 0;
  if (fmt == SW_FMT_MSGPACK) return n && !((p[0] & 0xf0) == 0x90 || p[0] == 0xdc || p[0] == 0xdd);
  while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')) i++;
  return i < n && p[i] == '{';
}

void rest_batch_publish(route_ctx_t *r) {
  sw_error_t err = {0};
  sw_batch_spec_t *specs = NULL;
  size_t n = 0, channels = 0;
  if (codec_decode_batch(rest_body_format(r->req), (const uint8_t *)r->req->body.p, r->req->body.n, &specs, &n,
                         &err)) {
    route_error(r, &err);
    return;
  }
  for (size_t i = 0; i < n; i++) channels += specs[i].n_channels;
  batch_t *b = NULL;
  if (channels > BATCH_MAX_CHANNELS)
    errors_set(&err, SW_E_INVALID_PARAM, "a batch request may name at most %d channels (got %zu)", BATCH_MAX_CHANNELS,
               channels);
  else if (!(b = calloc(1, sizeof *b)) || !(b->results = json_array()))
    errors_set(&err, SW_E_INTERNAL, "out of memory");
  for (size_t i = 0; !err.code && i < n; i++) {
    json_t *res = json_pack("{s:i, s:i, s:o}", "successCount", 0, "failureCount", 0, "results", json_array());
    if (!res || json_array_append_new(b->results, res)) errors_set(&err, SW_E_INTERNAL, "out of memory");
  }
  if (err.code) {
    if (b) json_decref(b->results);
    free(b);
    codec_batch_specs_free(specs, n);
    route_error(r, &err);
    return;
  }
  bool flat = old_version(r->req) &&
              single_spec_body(rest_body_format(r->req), (const uint8_t *)r->req->body.p, r->req->body.n);
  *b = (batch_t){
      .s = r->s, .fmt = r->fmt, .keep_alive = r->keep_alive, .flat = flat, .results = b->results, .pending = 1};
  sock_ref(r->s);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < specs[i].n_channels; j++) publish_one(r, b, &specs[i], i, j);
  codec_batch_specs_free(specs, n);
  batch_release(b);
}

/* The members of one channel as JSON values, their data in the JSON
 * protocol's form (binary as base64 with its encoding step), so the
 * response can be written in either format. NULL on failure. */
static json_t *members_json(sw_channel_t *ch) {
  size_t n = ch ? ch->n_members : 0, i = 0;
  sw_presence_t *items = n ? calloc(n, sizeof *items) : NULL;
  if (n && !items) return NULL;
  for (sw_member_t *mb = ch ? ch->members : NULL; mb && i < n; mb = mb->hh.next) items[i++] = mb->p;
  sw_buf_t body = {0};
  sw_error_t err;
  json_t *v = NULL;
  if (codec_encode_presence_array(SW_FMT_JSON, items, i, &body) == 0)
    v = codec_decode_value(SW_FMT_JSON, body.data, body.len, &err);
  buf_free(&body);
  free(items);
  return v;
}

void rest_batch_presence(route_ctx_t *r) {
  sw_error_t err = {0};
  char *param = malloc(BATCH_CHANNELS_PARAM_MAX + 1);
  ssize_t len = param ? url_query_get(r->req->query, "channels", param, BATCH_CHANNELS_PARAM_MAX + 1) : -3;
  json_t *results = json_array();
  if (!param || !results) errors_set(&err, SW_E_INTERNAL, "out of memory");
  else if (len == -2) errors_set(&err, SW_E_INVALID_PARAM, "channels parameter too long");
  else if (len <= 0) errors_set(&err, SW_E_BAD_REQUEST, "the channels parameter names no channel");
  /* The reply holds every member of every channel: it is bounded like a
   * REST page, and a channel that does not fit fails alone. */
  size_t budget = route_page_budget(r), bytes = 0, ok = 0, failed = 0, count = 0;
  char *save = NULL;
  for (char *name = err.code ? NULL : strtok_r(param, ",", &save); name && !err.code;
       name = strtok_r(NULL, ",", &save)) {
    if (++count > BATCH_MAX_CHANNELS) {
      errors_set(&err, SW_E_INVALID_PARAM, "a batch request may name at most %d channels", BATCH_MAX_CHANNELS);
      break;
    }
    sw_error_t e = {0};
    sw_channel_name_t parts;
    json_t *members = NULL;
    if (channel_name_validate(name, strlen(name), &parts, &e) || parts.kind != SW_CHAN_PLAIN || parts.name_off) {
      if (!e.code) errors_set(&e, SW_E_INVALID_CHANNEL, "invalid channel name: %.200s", name);
    } else if (!cap_allows(r->p.cap, name, SW_OP_SUBSCRIBE)) {
      errors_set(&e, SW_E_CAPABILITY_DENIED, "presence denied; channel = %.200s", name);
    } else if (app_namespace_transport_check(app_namespace_for(r->app, name), r->s->secure, &e)) {
      /* e says why: a tlsOnly namespace over plain HTTP */
    } else if (!(members = members_json(channel_find(r->s->srv, r->app, name)))) {
      errors_set(&e, SW_E_INTERNAL, "out of memory");
    } else {
      char *text = json_dumps(members, JSON_COMPACT);
      size_t size = text ? strlen(text) : SIZE_MAX;
      free(text);
      if (size > budget - bytes) {
        errors_set(&e, SW_E_BAD_REQUEST,
                   "presence of this channel does not fit in the batch response; use /channels/{id}/presence");
        json_decref(members);
        members = NULL;
      } else {
        bytes += size;
      }
    }
    json_t *item = members ? json_pack("{s:s, s:o}", "channel", name, "presence", members)
                           : json_pack("{s:s, s:o}", "channel", name, "error", error_json(&e));
    members ? ok++ : failed++;
    json_array_append_new(results, item);
  }
  free(param);
  if (err.code) {
    json_decref(results);
    route_error(r, &err);
    return;
  }
  json_t *v = json_pack("{s:I, s:I, s:o}", "successCount", (json_int_t)ok, "failureCount", (json_int_t)failed,
                        "results", results);
  rest_reply_value(r->s, 200, r->fmt, v, r->keep_alive, NULL);
  json_decref(v);
}
