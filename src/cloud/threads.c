/* threads.c: /v1/threads and /v1/threads/{id}/messages of the Assistant
 * Cloud API, in the shapes the npm `assistant-cloud` client reads
 * (AssistantCloudThreads.ts, AssistantCloudThreadMessages.ts).
 *
 * Reads answer at once from the store; writes are store jobs answered
 * when durable. A message written through the API is then published on its
 * thread's channel, cloud:{workspace}:{threadId}, through the ordinary
 * publish path, so the user's other devices see it live (docs/identity.md,
 * "Assistant Cloud"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/cloud_int.h"
#include "core/channel.h"
#include "core/server.h"
#include "core/sock.h"
#include "net/url.h"
#include "util/clock.h"
#include "util/log.h"

/* ------------------------------------------------------------ JSON */

static json_t *time_json(int64_t ms) {
  char iso[25];
  cloud_iso_time(ms, iso);
  return json_string(iso);
}

static json_t *text_or_null(const char *s) { return s ? json_string(s) : json_null(); }

/* Stored JSON text back to a value (the store holds what we serialised). */
static json_t *stored_json(const char *text) {
  json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
  return v ? v : json_null();
}

static json_t *thread_json(const cloud_req_t *c, const sw_cloud_thread_t *t) {
  json_t *o = json_object();
  json_object_set_new(o, "id", json_string(t->id));
  json_object_set_new(o, "title", text_or_null(t->title));
  json_object_set_new(o, "last_message_at", time_json(t->last_message_at));
  json_object_set_new(o, "metadata", stored_json(t->metadata));
  json_object_set_new(o, "external_id", text_or_null(t->external_id));
  json_object_set_new(o, "project_id", json_string(c->app->id));
  json_object_set_new(o, "workspace_id", json_string(c->workspace));
  json_object_set_new(o, "created_at", time_json(t->created_at));
  json_object_set_new(o, "updated_at", time_json(t->updated_at));
  json_object_set_new(o, "is_archived", json_boolean(t->is_archived));
  return o;
}

static json_t *msg_json(const sw_cloud_msg_t *m) {
  json_t *o = json_object();
  json_object_set_new(o, "id", json_string(m->id));
  json_object_set_new(o, "parent_id", text_or_null(m->parent_id));
  json_object_set_new(o, "height", json_integer(m->height));
  json_object_set_new(o, "created_at", time_json(m->created_at));
  json_object_set_new(o, "updated_at", time_json(m->updated_at));
  json_object_set_new(o, "format", json_string(m->format));
  json_object_set_new(o, "content", stored_json(m->content));
  json_object_set_new(o, "external_id", text_or_null(m->external_id));
  return o;
}

/* ---------------------------------------------------- body fields */

/* An optional string field of at most max bytes: *out NULL when absent or
 * null. false after replying 40003. */
static bool opt_string(cloud_req_t *c, json_t *body, const char *name, size_t max, const char **out) {
  json_t *v = json_object_get(body, name);
  *out = NULL;
  if (!v || json_is_null(v)) return true;
  if (!json_is_string(v)) return cloud_fail(c, SW_E_INVALID_PARAM, "%s must be a string", name);
  if (json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v))
    return cloud_fail(c, SW_E_INVALID_PARAM, "%s must be at most %zu bytes, without NUL", name, max);
  *out = json_string_value(v);
  return true;
}

/* A JSON value as compact text of at most max bytes (*out malloc'd; NULL
 * when absent or null). false after replying. */
static bool opt_json_text(cloud_req_t *c, json_t *body, const char *name, size_t max, bool object_only,
                          char **out) {
  json_t *v = json_object_get(body, name);
  *out = NULL;
  if (!v || json_is_null(v)) return true;
  if (object_only && !json_is_object(v)) return cloud_fail(c, SW_E_INVALID_PARAM, "%s must be an object", name);
  /* The body is bounded (maxHttpBody) before it is parsed, so this copy is too. */
  char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  if (!text) return cloud_fail(c, SW_E_INTERNAL, "out of memory");
  if (strlen(text) > max) {
    free(text);
    return cloud_fail(c, SW_E_MESSAGE_TOO_LARGE, "%s is larger than %zu bytes", name, max);
  }
  *out = text;
  return true;
}

/* Run leases (open_run, lease_id) are not served: a 400 makes the client
 * retry without them (CloudMessagePersistence's isRunUnsupported). */
static bool no_run_leases(cloud_req_t *c, json_t *body) {
  if (!json_object_get(body, "open_run") && !json_object_get(body, "lease_id")) return true;
  return cloud_fail(c, SW_E_INVALID_BODY, "run leases (open_run, lease_id) are not supported by this server");
}

/* An integer query parameter in [lo, hi], or dflt when absent. */
static bool query_int(cloud_req_t *c, const char *name, long lo, long hi, long dflt, long *out) {
  char buf[24];
  ssize_t n = url_query_get(c->req->query, name, buf, sizeof buf);
  *out = dflt;
  if (n == -1) return true;
  char *end;
  long v = n > 0 ? strtol(buf, &end, 10) : 0;
  if (n <= 0 || *end || v < lo || v > hi)
    return cloud_fail(c, SW_E_INVALID_PARAM, "%s must be an integer from %ld to %ld", name, lo, hi);
  *out = v;
  return true;
}

/* A string query parameter of at most cap - 1 bytes into buf; *out NULL
 * when absent. */
static bool query_str(cloud_req_t *c, const char *name, char *buf, size_t cap, const char **out) {
  ssize_t n = url_query_get(c->req->query, name, buf, cap);
  *out = n >= 0 ? buf : NULL;
  if (n == -2 || (n >= 0 && (size_t)n != strlen(buf)))
    return cloud_fail(c, SW_E_INVALID_PARAM, "%s must be at most %zu bytes", name, cap - 1);
  return true;
}

/* --------------------------------------------------------- writes */

/* A write waiting for the store. It keeps what the reply and the realtime
 * event need: the request is gone by then. */
typedef struct wctx {
  sw_sock_t *s;
  sw_server_t *srv;
  sw_app_t *app;
  bool keep_alive;
  char *exchanged;
  char *user;
  sw_cloud_op_kind_t kind;
  char workspace[CLOUD_WORKSPACE_MAX + 1];
  char thread[SW_CLOUD_ID_MAX];
  char id[SW_CLOUD_ID_MAX];
  const char *what; /* "thread" or "message", for -ENOENT */
  json_t *event;    /* the realtime event's message (MSG_*), completed on success */
  json_t *reply;    /* the 2xx body (NULL: 204) */
  int status;       /* 2xx */
} wctx_t;

static void wctx_free(wctx_t *w) {
  free(w->exchanged);
  free(w->user);
  json_decref(w->event);
  json_decref(w->reply);
  free(w);
}

static void store_error(cloud_req_t *c, const wctx_t *w, int status) {
  switch (status) {
  case -ENOENT: cloud_fail(c, SW_E_NOT_FOUND, "no such %s", w->what); break;
  case -ESRCH: cloud_fail(c, SW_E_NOT_FOUND, "no such parent message in the thread"); break;
  case -EEXIST:
    cloud_fail(c, 40900, w->kind == SW_CLOUD_THREAD_CREATE ? "a thread with this external_id exists (pass upsert: true)"
                                                          : "the id is taken");
    break;
  case -EDQUOT:
    cloud_fail(c, SW_E_FORBIDDEN, w->kind == SW_CLOUD_THREAD_CREATE ? "a workspace holds at most %d threads"
                                                                   : "a thread holds at most %d messages",
               w->kind == SW_CLOUD_THREAD_CREATE ? SW_CLOUD_MAX_THREADS_PER_WORKSPACE : SW_CLOUD_MAX_MESSAGES_PER_THREAD);
    break;
  default: cloud_fail(c, SW_E_INTERNAL, "storage error %d", status);
  }
}

/* Publishes name/data on the thread's channel as an ordinary message: it
 * is stored (for rewind and history within the namespace's retention) and
 * fanned out. A message whose content does not fit maxMessageSize goes
 * without it ("truncated": true): subscribers then read it from the API. */
static void publish_event(wctx_t *w, const char *name, json_t *data) {
  if (w->app->deleted || !w->srv->store) return;
  char chname[CLOUD_WORKSPACE_MAX + SW_CLOUD_ID_MAX + 16];
  cloud_channel(w->workspace, w->thread, chname, sizeof chname);
  sw_channel_t *ch = channel_get(w->srv, w->app, chname);
  char *text = json_dumps(data, JSON_COMPACT);
  size_t max = (size_t)w->srv->cfg->limits.max_message_size;
  json_t *msg = json_object_get(data, "message");
  if (text && strlen(text) + (w->user ? strlen(w->user) : 0) + strlen(name) > max && json_object_get(msg, "content")) {
    free(text);
    json_object_del(msg, "content");
    json_object_set_new(data, "truncated", json_true());
    text = json_dumps(data, JSON_COMPACT);
  }
  sw_msg_t *m = calloc(1, sizeof *m);
  if (!ch || !text || !m) {
    free(text);
    free(m);
    return;
  }
  m->action = 0;
  m->timestamp = clock_now_ms();
  m->name = strdup(name);
  m->encoding = strdup("json");
  m->client_id = w->user ? strdup(w->user) : NULL;
  m->data = (sw_data_t){.kind = SW_DATA_STRING, .bytes = (uint8_t *)text, .len = strlen(text)};
  sw_publisher_t who = {0};
  sw_error_t err = {0};
  if (!m->name || !m->encoding || (w->user && !m->client_id)) {
    msg_clear(m);
    free(m);
    return;
  }
  if (channel_publish(ch, m, 1, &who, &err)) /* takes m, also on error */
    log_ev(SW_LOG_WARN, "cloud.publish", NULL, w->app->id, err.code, "thread event not published: %s", err.message);
}

static void on_written(void *ud, int status, const sw_cloud_result_t *res) {
  wctx_t *w = ud;
  cloud_req_t c = {.s = w->s, .keep_alive = w->keep_alive, .exchanged = w->exchanged, .app = w->app};
  if (status == 0) {
    if (w->kind == SW_CLOUD_THREAD_CREATE) {
      json_object_set_new(w->reply, "thread_id", json_string(res->id));
      if (res->existed) w->status = 200;
    }
    json_t *m = json_object_get(w->event, "message");
    if (w->kind == SW_CLOUD_MSG_CREATE) {
      json_object_set_new(m, "parent_id", res->parent_id[0] ? json_string(res->parent_id) : json_null());
      json_object_set_new(m, "height", json_integer(res->height));
    }
    if (!w->s->closing) cloud_reply(&c, w->status, w->reply);
    const char *ev = w->kind == SW_CLOUD_MSG_CREATE   ? "message.created"
                     : w->kind == SW_CLOUD_MSG_UPDATE ? "message.updated"
                     : w->kind == SW_CLOUD_MSG_DELETE ? "message.deleted"
                                                      : NULL;
    if (ev && (w->kind != SW_CLOUD_MSG_DELETE || res->deleted)) publish_event(w, ev, w->event);
  } else if (!w->s->closing) {
    store_error(&c, w, status);
  }
  sock_unref(w->s);
  wctx_free(w);
}

static wctx_t *wctx_new(cloud_req_t *c, sw_cloud_op_kind_t kind, const char *thread, const char *what) {
  wctx_t *w = calloc(1, sizeof *w);
  if (!w) return NULL;
  *w = (wctx_t){.s = c->s, .srv = c->s->srv, .app = c->app, .keep_alive = c->keep_alive, .kind = kind,
                .what = what, .status = 204};
  snprintf(w->workspace, sizeof w->workspace, "%s", c->workspace);
  snprintf(w->thread, sizeof w->thread, "%s", thread ? thread : "");
  if ((c->exchanged && !(w->exchanged = strdup(c->exchanged))) || (c->user && !(w->user = strdup(c->user)))) {
    wctx_free(w);
    return NULL;
  }
  return w;
}

/* Queues op; the reply comes from on_written. Takes w. */
static void submit(cloud_req_t *c, sw_cloud_op_t *op, wctx_t *w) {
  op->app_id = c->app->id;
  op->workspace = c->workspace;
  if (!op->now) op->now = clock_now_ms();
  int rc = c->s->srv->store ? store_cloud_write(c->s->srv->store, op, on_written, w) : -ESHUTDOWN;
  if (rc) {
    cloud_fail(c, SW_E_INTERNAL, rc == -ESHUTDOWN ? "server shutting down" : "storage unavailable (%d)", rc);
    wctx_free(w);
    return;
  }
  sock_ref(c->s);
}

/* The event of a message write: {"thread_id", "message": {...}}. */
static json_t *event_of(const char *thread, json_t *message) {
  return json_pack("{s:s, s:o}", "thread_id", thread, "message", message);
}

/* ---------------------------------------------------------- threads */

static void list_threads(cloud_req_t *c) {
  if (!cloud_require(c, NULL, SW_OP_HISTORY)) return;
  char arch[8], ext[CLOUD_EXTERNAL_ID_MAX + 1], after[SW_CLOUD_ID_MAX];
  const char *archived, *external_id, *after_id;
  long limit;
  if (!query_str(c, "is_archived", arch, sizeof arch, &archived) ||
      !query_str(c, "external_id", ext, sizeof ext, &external_id) ||
      !query_str(c, "after", after, sizeof after, &after_id) ||
      !query_int(c, "limit", 1, CLOUD_THREADS_LIMIT_MAX, CLOUD_THREADS_LIMIT_MAX, &limit))
    return;
  int arch_v = -1;
  if (archived) {
    if (strcmp(archived, "true") && strcmp(archived, "false"))
      return (void)cloud_fail(c, SW_E_INVALID_PARAM, "is_archived must be true or false");
    arch_v = strcmp(archived, "true") == 0;
  }
  sw_cloud_thread_q_t q = {.app_id = c->app->id, .workspace = c->workspace, .archived = arch_v,
                           .external_id = external_id, .after = after_id, .limit = (size_t)limit};
  sw_cloud_threads_t l;
  int rc = store_cloud_threads(c->s->srv->store, &q, &l);
  if (rc) return (void)cloud_fail(c, SW_E_INTERNAL, "storage error %d", rc);
  json_t *arr = json_array();
  size_t bytes = 0;
  /* A page ends early rather than outgrow the socket's output bound. */
  for (size_t i = 0; i < l.n && bytes < CLOUD_PAGE_BUDGET; i++) {
    const sw_cloud_thread_t *t = &l.v[i];
    bytes += 256 + (t->title ? strlen(t->title) : 0) + (t->metadata ? strlen(t->metadata) : 0);
    json_array_append_new(arr, thread_json(c, t));
  }
  store_cloud_threads_free(&l);
  json_t *v = json_pack("{s:o}", "threads", arr);
  cloud_reply(c, 200, v);
  json_decref(v);
}

/* The thread, or NULL after replying 40400 (or 50000). Free with
 * store_cloud_threads_free. */
static bool find_thread(cloud_req_t *c, const char *id, sw_cloud_threads_t *l) {
  sw_cloud_thread_q_t q = {.app_id = c->app->id, .workspace = c->workspace, .id = id, .limit = 1};
  int rc = store_cloud_threads(c->s->srv->store, &q, l);
  if (rc) return cloud_fail(c, SW_E_INTERNAL, "storage error %d", rc);
  if (l->n == 0) return cloud_fail(c, SW_E_NOT_FOUND, "no such thread");
  return true;
}

static void get_thread(cloud_req_t *c, const char *id) {
  if (!cloud_require(c, id, SW_OP_HISTORY)) return;
  sw_cloud_threads_t l;
  if (!find_thread(c, id, &l)) return;
  json_t *v = json_pack("{s:o}", "thread", thread_json(c, &l.v[0]));
  store_cloud_threads_free(&l);
  cloud_reply(c, 200, v);
  json_decref(v);
}

/* title, metadata and last_message_at of a create or update. */
typedef struct thread_fields {
  const char *title;
  char *metadata;
  int64_t last_message_at;
} thread_fields_t;

static bool thread_fields(cloud_req_t *c, json_t *body, thread_fields_t *f) {
  f->last_message_at = -1;
  if (!opt_string(c, body, "title", CLOUD_TITLE_MAX, &f->title) ||
      !opt_json_text(c, body, "metadata", CLOUD_METADATA_MAX, false, &f->metadata))
    return false;
  json_t *at = json_object_get(body, "last_message_at");
  if (at && !json_is_null(at) && cloud_parse_time(at, &f->last_message_at))
    return cloud_fail(c, SW_E_INVALID_PARAM, "last_message_at must be an ISO 8601 date-time");
  return true;
}

static void create_thread(cloud_req_t *c) {
  if (!cloud_require(c, NULL, SW_OP_PUBLISH)) return;
  json_t *body = cloud_body(c, true);
  if (!body) return;
  thread_fields_t f = {0};
  const char *external_id;
  json_t *upsert = json_object_get(body, "upsert");
  char id[SW_CLOUD_ID_MAX];
  wctx_t *w = NULL;
  if (!thread_fields(c, body, &f) || !opt_string(c, body, "external_id", CLOUD_EXTERNAL_ID_MAX, &external_id)) goto done;
  if (upsert && !json_is_boolean(upsert)) {
    cloud_fail(c, SW_E_INVALID_PARAM, "upsert must be a boolean");
    goto done;
  }
  if (cloud_new_id("thread", id) || !(w = wctx_new(c, SW_CLOUD_THREAD_CREATE, id, "thread")) ||
      !(w->reply = json_object())) {
    if (w) wctx_free(w);
    cloud_fail(c, SW_E_INTERNAL, "out of memory");
    goto done;
  }
  w->status = 201;
  sw_cloud_op_t op = {.kind = SW_CLOUD_THREAD_CREATE, .thread_id = id, .external_id = external_id,
                      .upsert = json_is_true(upsert), .title = f.title, .metadata = f.metadata,
                      .last_message_at = f.last_message_at};
  submit(c, &op, w);
done:
  free(f.metadata);
  json_decref(body);
}

static void update_thread(cloud_req_t *c, const char *id) {
  if (!cloud_require(c, id, SW_OP_PUBLISH)) return;
  json_t *body = cloud_body(c, true);
  if (!body) return;
  thread_fields_t f = {0};
  json_t *arch = json_object_get(body, "is_archived");
  wctx_t *w;
  if (!thread_fields(c, body, &f)) goto done;
  if (arch && !json_is_boolean(arch) && !json_is_null(arch)) {
    cloud_fail(c, SW_E_INVALID_PARAM, "is_archived must be a boolean");
    goto done;
  }
  if (!(w = wctx_new(c, SW_CLOUD_THREAD_UPDATE, id, "thread"))) {
    cloud_fail(c, SW_E_INTERNAL, "out of memory");
    goto done;
  }
  sw_cloud_op_t op = {.kind = SW_CLOUD_THREAD_UPDATE, .thread_id = id, .title = f.title, .metadata = f.metadata,
                      .last_message_at = f.last_message_at,
                      .is_archived = json_is_boolean(arch) ? json_is_true(arch) : -1};
  submit(c, &op, w);
done:
  free(f.metadata);
  json_decref(body);
}

static void delete_thread(cloud_req_t *c, const char *id) {
  if (!cloud_require(c, id, SW_OP_PUBLISH)) return;
  wctx_t *w = wctx_new(c, SW_CLOUD_THREAD_DELETE, id, "thread");
  if (!w) return (void)cloud_fail(c, SW_E_INTERNAL, "out of memory");
  sw_cloud_op_t op = {.kind = SW_CLOUD_THREAD_DELETE, .thread_id = id};
  submit(c, &op, w);
}

/* --------------------------------------------------------- messages */

static void list_messages(cloud_req_t *c, const char *thread) {
  if (!cloud_require(c, thread, SW_OP_HISTORY)) return;
  char fmt[CLOUD_FORMAT_MAX + 1], after[SW_CLOUD_ID_MAX];
  const char *format, *after_id;
  long limit;
  if (!query_str(c, "format", fmt, sizeof fmt, &format) || !query_str(c, "after", after, sizeof after, &after_id) ||
      !query_int(c, "limit", 1, CLOUD_MESSAGES_LIMIT_MAX, CLOUD_MESSAGES_LIMIT_MAX, &limit))
    return;
  sw_cloud_threads_t t;
  if (!find_thread(c, thread, &t)) return;
  store_cloud_threads_free(&t);
  sw_cloud_msg_q_t q = {.app_id = c->app->id, .workspace = c->workspace, .thread_id = thread, .format = format,
                        .after = after_id, .limit = (size_t)limit};
  sw_cloud_msgs_t l;
  int rc = store_cloud_messages(c->s->srv->store, &q, &l);
  if (rc) return (void)cloud_fail(c, SW_E_INTERNAL, "storage error %d", rc);
  json_t *arr = json_array();
  size_t bytes = 0;
  for (size_t i = 0; i < l.n && bytes < CLOUD_PAGE_BUDGET; i++) {
    bytes += 256 + strlen(l.v[i].content);
    json_array_append_new(arr, msg_json(&l.v[i]));
  }
  store_cloud_msgs_free(&l);
  json_t *v = json_pack("{s:o}", "messages", arr);
  cloud_reply(c, 200, v);
  json_decref(v);
}

static void create_message(cloud_req_t *c, const char *thread) {
  if (!cloud_require(c, thread, SW_OP_PUBLISH)) return;
  json_t *body = cloud_body(c, false);
  if (!body) return;
  const char *parent_id, *parent_ext, *format, *external_id;
  char *content = NULL, id[SW_CLOUD_ID_MAX];
  wctx_t *w = NULL;
  if (!no_run_leases(c, body) || !opt_string(c, body, "parent_id", SW_CLOUD_ID_MAX - 1, &parent_id) ||
      !opt_string(c, body, "parent_external_id", CLOUD_EXTERNAL_ID_MAX, &parent_ext) ||
      !opt_string(c, body, "external_id", CLOUD_EXTERNAL_ID_MAX, &external_id) ||
      !opt_string(c, body, "format", CLOUD_FORMAT_MAX, &format) ||
      !opt_json_text(c, body, "content", CLOUD_CONTENT_MAX, true, &content))
    goto done;
  if (!format || !content) {
    cloud_fail(c, SW_E_INVALID_BODY, "a message needs a format and a content object");
    goto done;
  }
  if (cloud_new_id("msg", id) || !(w = wctx_new(c, SW_CLOUD_MSG_CREATE, thread, "thread"))) {
    cloud_fail(c, SW_E_INTERNAL, "out of memory");
    goto done;
  }
  w->status = 201;
  int64_t now = clock_now_ms();
  sw_cloud_msg_t m = {.id = id, .external_id = (char *)external_id, .format = (char *)format, .content = content,
                      .created_at = now, .updated_at = now};
  w->reply = json_pack("{s:s}", "message_id", id);
  w->event = event_of(thread, msg_json(&m));
  if (!w->reply || !w->event) {
    wctx_free(w);
    cloud_fail(c, SW_E_INTERNAL, "out of memory");
    goto done;
  }
  /* The event carries the times the store is given. */
  sw_cloud_op_t op = {.kind = SW_CLOUD_MSG_CREATE, .thread_id = thread, .id = id, .parent_id = parent_id,
                      .parent_external_id = parent_ext, .external_id = external_id, .format = format,
                      .content = content, .now = now};
  submit(c, &op, w);
done:
  free(content);
  json_decref(body);
}

static void update_message(cloud_req_t *c, const char *thread, const char *id) {
  if (!cloud_require(c, thread, SW_OP_PUBLISH)) return;
  json_t *body = cloud_body(c, false);
  if (!body) return;
  char *content = NULL;
  const char *format;
  wctx_t *w = NULL;
  if (!no_run_leases(c, body) || !opt_string(c, body, "format", CLOUD_FORMAT_MAX, &format) ||
      !opt_json_text(c, body, "content", CLOUD_CONTENT_MAX, true, &content))
    goto done;
  if (!content) {
    cloud_fail(c, SW_E_INVALID_BODY, "an update needs a content object");
    goto done;
  }
  if (!(w = wctx_new(c, SW_CLOUD_MSG_UPDATE, thread, "message"))) {
    cloud_fail(c, SW_E_INTERNAL, "out of memory");
    goto done;
  }
  sw_cloud_op_t op = {.kind = SW_CLOUD_MSG_UPDATE, .thread_id = thread, .id = id, .format = format,
                      .content = content, .now = clock_now_ms()};
  json_t *m = json_pack("{s:s, s:o, s:o}", "id", id, "content", json_loads(content, 0, NULL), "updated_at",
                        time_json(op.now));
  if (m && format) json_object_set_new(m, "format", json_string(format));
  w->event = m ? event_of(thread, m) : NULL;
  if (!w->event) {
    wctx_free(w);
    cloud_fail(c, SW_E_INTERNAL, "out of memory");
    goto done;
  }
  submit(c, &op, w);
done:
  free(content);
  json_decref(body);
}

static void delete_messages(cloud_req_t *c, const char *thread) {
  if (!cloud_require(c, thread, SW_OP_PUBLISH)) return;
  json_t *body = cloud_body(c, false);
  if (!body) return;
  json_t *ids = json_object_get(body, "message_ids");
  const char *list[CLOUD_DELETE_IDS_MAX];
  size_t n = json_array_size(ids);
  wctx_t *w = NULL;
  if (!json_is_array(ids) || n == 0 || n > CLOUD_DELETE_IDS_MAX) {
    cloud_fail(c, SW_E_INVALID_PARAM, "message_ids must be an array of 1 to %d ids", CLOUD_DELETE_IDS_MAX);
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *v = json_array_get(ids, i);
    if (!json_is_string(v) || json_string_length(v) >= SW_CLOUD_ID_MAX) {
      cloud_fail(c, SW_E_INVALID_PARAM, "message_ids must hold message ids");
      goto done;
    }
    list[i] = json_string_value(v);
  }
  if (!(w = wctx_new(c, SW_CLOUD_MSG_DELETE, thread, "thread")) ||
      !(w->event = json_pack("{s:s, s:O}", "thread_id", thread, "message_ids", ids))) {
    if (w) wctx_free(w);
    cloud_fail(c, SW_E_INTERNAL, "out of memory");
    goto done;
  }
  sw_cloud_op_t op = {.kind = SW_CLOUD_MSG_DELETE, .thread_id = thread, .ids = list, .n_ids = n};
  submit(c, &op, w);
done:
  json_decref(body);
}

static void message_feedback(cloud_req_t *c, const char *thread, const char *id) {
  if (!cloud_require(c, thread, SW_OP_PUBLISH)) return;
  json_t *body = cloud_body(c, false);
  if (!body) return;
  const char *type = json_string_value(json_object_get(body, "type")), *comment;
  char fid[SW_CLOUD_ID_MAX];
  wctx_t *w = NULL;
  if (!type || (strcmp(type, "positive") && strcmp(type, "negative"))) {
    cloud_fail(c, SW_E_INVALID_PARAM, "type must be positive or negative");
    goto done;
  }
  if (!opt_string(c, body, "comment", CLOUD_COMMENT_MAX, &comment)) goto done;
  if (cloud_new_id("feedback", fid) || !(w = wctx_new(c, SW_CLOUD_FEEDBACK, thread, "message")) ||
      !(w->reply = json_pack("{s:s, s:s, s:s?}", "feedback_id", fid, "type", type, "comment", comment))) {
    if (w) wctx_free(w);
    cloud_fail(c, SW_E_INTERNAL, "out of memory");
    goto done;
  }
  w->status = 201;
  sw_cloud_op_t op = {.kind = SW_CLOUD_FEEDBACK, .thread_id = thread, .id = id, .feedback_id = fid,
                      .feedback_type = type, .comment = comment};
  submit(c, &op, w);
done:
  json_decref(body);
}

/* ---------------------------------------------------------- routing */

#define MAX_SEGS 4

/* Splits the route after "/threads/" into decoded segments (ids are at
 * most SW_CLOUD_ID_MAX - 1 bytes: a longer one names nothing). Returns the
 * count, or -1 when a segment is empty, malformed or too long. */
static int segments(sw_slice_t route, char seg[MAX_SEGS][SW_CLOUD_ID_MAX]) {
  const char *p = route.p + 9, *end = route.p + route.n;
  int n = 0;
  while (p <= end && n < MAX_SEGS) {
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *se = slash ? slash : end;
    ssize_t l = url_decode(p, (size_t)(se - p), seg[n], SW_CLOUD_ID_MAX, false);
    if (l <= 0 || (size_t)l != strlen(seg[n])) return -1;
    n++;
    if (!slash) return n;
    p = slash + 1;
  }
  return -1;
}

void cloud_threads_route(cloud_req_t *c) {
  int m = c->req->method;
  if (slice_eq(c->route, "/threads")) {
    if (m == HTTP_GET) return list_threads(c);
    if (m == HTTP_POST) return create_thread(c);
    return (void)cloud_fail(c, SW_E_METHOD_NOT_ALLOWED, "method not allowed");
  }
  char seg[MAX_SEGS][SW_CLOUD_ID_MAX];
  int n = segments(c->route, seg);
  if (n < 0) return (void)cloud_fail(c, SW_E_NOT_FOUND, "no such thread");
  const char *thread = seg[0];
  if (n == 1 && strcmp(thread, "claim") == 0 && m == HTTP_POST) {
    return (void)cloud_fail(c, SW_E_NOT_FOUND, "claiming anonymous threads is not supported by this server");
  } else if (n == 1) {
    if (m == HTTP_GET) return get_thread(c, thread);
    if (m == HTTP_PUT || m == HTTP_PATCH) return update_thread(c, thread);
    if (m == HTTP_DELETE) return delete_thread(c, thread);
  } else if (strcmp(seg[1], "messages") == 0 && n == 2) {
    if (m == HTTP_GET) return list_messages(c, thread);
    if (m == HTTP_POST) return create_message(c, thread);
    if (m == HTTP_DELETE) return delete_messages(c, thread);
  } else if (strcmp(seg[1], "messages") == 0 && n == 3) {
    if (m == HTTP_PUT || m == HTTP_PATCH) return update_message(c, thread, seg[2]);
  } else if (strcmp(seg[1], "messages") == 0 && n == 4 && strcmp(seg[3], "feedback") == 0) {
    if (m == HTTP_POST) return message_feedback(c, thread, seg[2]);
  } else {
    /* runs (leases), claim: not served (docs/compatibility.md). */
    return (void)cloud_fail(c, SW_E_NOT_FOUND, "no such resource");
  }
  cloud_fail(c, SW_E_METHOD_NOT_ALLOWED, "method not allowed");
}
