#include "core/annotation.h"

#include "core/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "auth/capability.h"
#include "core/conn.h"
#include "core/mutation.h"
#include "core/serial.h"
#include "core/server.h"
#include "core/sock.h"
#include "metrics/metrics.h"
#include "proto/codec.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/log.h"

/* ---------------------------------------------------------- summaries */

typedef enum { AGG_NONE, AGG_TOTAL, AGG_FLAG, AGG_DISTINCT, AGG_UNIQUE, AGG_MULTIPLE } agg_t;

/* The method of a type "namespace:method.v1": what follows its last ':'. */
static agg_t aggregation(const char *type) {
  const char *colon = strrchr(type, ':');
  const char *m = colon ? colon + 1 : type;
  if (strcmp(m, "total.v1") == 0) return AGG_TOTAL;
  if (strcmp(m, "flag.v1") == 0) return AGG_FLAG;
  if (strcmp(m, "distinct.v1") == 0) return AGG_DISTINCT;
  if (strcmp(m, "unique.v1") == 0) return AGG_UNIQUE;
  if (strcmp(m, "multiple.v1") == 0) return AGG_MULTIPLE;
  return AGG_NONE;
}

static bool identified(const char *cid) { return cid && *cid && strcmp(cid, "*") != 0; }

static json_int_t get_int(const json_t *o, const char *k) {
  json_t *v = json_object_get(o, k);
  return json_is_integer(v) ? json_integer_value(v) : 0;
}

static void set_int(json_t *o, const char *k, json_int_t v) { json_object_set_new(o, k, json_integer(v)); }

/* o[k], an object, created when create is set (else NULL when absent). */
static json_t *child(json_t *o, const char *k, bool create) {
  json_t *c = json_object_get(o, k);
  if (json_is_object(c) || !create) return json_is_object(c) ? c : NULL;
  c = json_object();
  if (c && json_object_set_new(o, k, c)) return NULL;
  return c;
}

/* A SummaryClientIdList (TM7c1): {"total", "clientIds", "clipped"}. */
static json_t *new_list_entry(void) {
  return json_pack("{s:I, s:[], s:b}", "total", (json_int_t)0, "clientIds", "clipped", 0);
}

/* A SummaryClientIdCounts (TM7d1). */
static json_t *new_counts_entry(void) {
  return json_pack("{s:I, s:{}, s:I, s:b, s:I}", "total", (json_int_t)0, "clientIds", "totalUnidentified",
                   (json_int_t)0, "clipped", 0, "totalClientIds", (json_int_t)0);
}

/* o[k], created by make() when create is set. */
static json_t *entry(json_t *o, const char *k, bool create, json_t *(*make)(void)) {
  json_t *e = json_object_get(o, k);
  if (json_is_object(e) || !create) return json_is_object(e) ? e : NULL;
  if (!(e = make()) || json_object_set_new(o, k, e)) return NULL;
  return e;
}

static json_t *list_ids(json_t *e) {
  json_t *ids = json_object_get(e, "clientIds");
  if (!json_is_array(ids)) {
    ids = json_array();
    json_object_set_new(e, "clientIds", ids);
  }
  return ids;
}

static bool list_has(json_t *ids, const char *cid, size_t *at) {
  size_t i;
  json_t *v;
  json_array_foreach(ids, i, v) if (json_is_string(v) && strcmp(json_string_value(v), cid) == 0) {
    if (at) *at = i;
    return true;
  }
  return false;
}

/* Counts cid in a list entry, listing it when list is set (else the entry
 * is clipped). 1 if it changed, 0 if cid is listed already. */
static int list_add(json_t *e, const char *cid, bool list) {
  json_t *ids = list_ids(e);
  if (list_has(ids, cid, NULL)) return 0;
  if (list) json_array_append_new(ids, json_string(cid));
  else json_object_set_new(e, "clipped", json_true());
  set_int(e, "total", get_int(e, "total") + 1);
  return 1;
}

/* Uncounts cid. A clipped entry not listing it may still count it (among
 * those not listed): with approx set, one of those goes. 1 if it changed. */
static int list_remove(json_t *e, const char *cid, bool approx) {
  json_t *ids = list_ids(e);
  size_t at;
  json_int_t total = get_int(e, "total");
  if (list_has(ids, cid, &at)) {
    json_array_remove(ids, at);
  } else if (!(approx && json_is_true(json_object_get(e, "clipped")) && total > (json_int_t)json_array_size(ids))) {
    return 0;
  }
  set_int(e, "total", total - 1);
  return 1;
}

/* Drops o[k] when its total is 0, and o from parent (under pk) when empty. */
static void prune(json_t *parent, const char *pk, json_t *o, const char *k) {
  if (k && get_int(json_object_get(o, k), "total") <= 0) json_object_del(o, k);
  if (parent && json_object_size(o) == 0) json_object_del(parent, pk);
}

static int need(bool ok, sw_error_t *err, int code, const char *what, const char *type) {
  if (ok) return 0;
  return errors_set(err, code, "annotation of type %.64s needs %s", type, what);
}

static int apply_total(json_t *sum, const sw_msg_t *a, bool del) {
  json_t *t = child(sum, a->type, !del);
  if (!t) return del ? 0 : -ENOMEM;
  json_int_t n = get_int(t, "total");
  if (del && n <= 0) return 0;
  set_int(t, "total", del ? n - 1 : n + 1);
  if (del && n - 1 <= 0) json_object_del(sum, a->type);
  return 1;
}

static int apply_flag(json_t *sum, const sw_msg_t *a, bool del, bool list) {
  json_t *e = entry(sum, a->type, !del, new_list_entry);
  if (!e) return del ? 0 : -ENOMEM;
  int rc = del ? list_remove(e, a->client_id, true) : list_add(e, a->client_id, list);
  if (get_int(e, "total") <= 0) json_object_del(sum, a->type);
  return rc;
}

/* distinct.v1 and unique.v1: per name, a client list. */
static int apply_names(json_t *sum, const sw_msg_t *a, bool del, bool list, bool unique) {
  json_t *t = child(sum, a->type, !del);
  if (!t) return del ? 0 : -ENOMEM;
  int changed = 0;
  if (del || unique) {
    /* A delete names one entry, or all of them; a unique create leaves
     * every other name. Without a name only listed clients are removed. */
    const char *k;
    void *tmp;
    json_t *e;
    json_object_foreach_safe(t, tmp, k, e) {
      bool named = a->name && strcmp(k, a->name) == 0;
      if (del ? (a->name && !named) : named) continue;
      changed |= list_remove(e, a->client_id, del && named);
      prune(NULL, NULL, t, k);
    }
  }
  if (!del) {
    json_t *e = entry(t, a->name, true, new_list_entry);
    if (!e) return -ENOMEM;
    changed |= list_add(e, a->client_id, list);
  }
  prune(sum, a->type, t, NULL);
  return changed;
}

static int apply_multiple(json_t *sum, const sw_msg_t *a, bool del, bool list) {
  json_t *t = child(sum, a->type, !del);
  if (!t) return del ? 0 : -ENOMEM;
  bool idf = identified(a->client_id);
  int changed = 0;
  if (del) {
    /* A client's contributions to the name (or every name) go; an
     * unidentified client's cannot be told apart. */
    const char *k;
    void *tmp;
    json_t *e;
    json_object_foreach_safe(t, tmp, k, e) {
      if (!idf || (a->name && strcmp(k, a->name) != 0)) continue;
      json_t *ids = json_object_get(e, "clientIds");
      json_t *c = json_object_get(ids, a->client_id);
      if (!json_is_integer(c)) continue;
      set_int(e, "total", get_int(e, "total") - json_integer_value(c));
      set_int(e, "totalClientIds", get_int(e, "totalClientIds") - 1);
      json_object_del(ids, a->client_id);
      changed = 1;
      prune(NULL, NULL, t, k);
    }
    prune(sum, a->type, t, NULL);
    return changed;
  }
  json_int_t n = a->has_count ? a->count : 1;
  json_t *e = entry(t, a->name, true, new_counts_entry);
  if (!e) return -ENOMEM;
  json_t *ids = json_object_get(e, "clientIds");
  if (!json_is_object(ids)) json_object_set_new(e, "clientIds", ids = json_object());
  if (!idf) {
    set_int(e, "totalUnidentified", get_int(e, "totalUnidentified") + n);
  } else if (json_is_integer(json_object_get(ids, a->client_id))) {
    set_int(ids, a->client_id, json_integer_value(json_object_get(ids, a->client_id)) + n);
  } else {
    if (list) set_int(ids, a->client_id, n);
    else json_object_set_new(e, "clipped", json_true());
    set_int(e, "totalClientIds", get_int(e, "totalClientIds") + 1);
  }
  set_int(e, "total", get_int(e, "total") + n);
  return 1;
}

/* Checks what a method needs of an annotation: 0 or -1 with err. */
static int check(const sw_msg_t *a, agg_t agg, bool del, sw_error_t *err) {
  bool idf = identified(a->client_id);
  bool named = a->name && *a->name;
  switch (agg) {
  case AGG_FLAG:
    return need(idf, err, 40161, "an identified client", a->type);
  case AGG_DISTINCT:
  case AGG_UNIQUE:
    if (need(idf, err, 40161, "an identified client", a->type)) return -1;
    return need(del || named, err, SW_E_INVALID_PARAM, "a name", a->type);
  case AGG_MULTIPLE:
    if (need(del || named, err, SW_E_INVALID_PARAM, "a name", a->type)) return -1;
    return need(del || !a->has_count || a->count >= 1, err, SW_E_INVALID_PARAM, "a count of at least 1", a->type);
  default:
    return 0;
  }
}

static int apply(json_t *sum, const sw_msg_t *a, agg_t agg, bool list) {
  bool del = a->action == SW_ANN_DELETE;
  switch (agg) {
  case AGG_TOTAL: return apply_total(sum, a, del);
  case AGG_FLAG: return apply_flag(sum, a, del, list);
  case AGG_DISTINCT: return apply_names(sum, a, del, list, false);
  case AGG_UNIQUE: return apply_names(sum, a, del, list, true);
  case AGG_MULTIPLE: return apply_multiple(sum, a, del, list);
  default: return 0;
  }
}

int annotation_summarise(json_t *summary, const sw_msg_t *ann, size_t max_bytes, sw_error_t *err) {
  agg_t agg = ann->type ? aggregation(ann->type) : AGG_NONE;
  if (agg == AGG_NONE) return 0;
  if (check(ann, agg, ann->action == SW_ANN_DELETE, err)) return -1;
  /* On a copy, so a refusal leaves the summary as it was. Listed first;
   * if that is too large, counted only (clipped). */
  int rc = 0;
  json_t *work = NULL;
  for (int pass = 0; pass < 2; pass++) {
    json_decref(work);
    if (!(work = json_deep_copy(summary))) break;
    rc = apply(work, ann, agg, pass == 0);
    if (rc <= 0 || json_dumpb(work, NULL, 0, JSON_COMPACT) <= max_bytes) break;
    rc = -E2BIG;
  }
  if (!work) rc = -ENOMEM;
  if (rc > 0) {
    json_object_clear(summary);
    if (json_object_update(summary, work)) rc = -ENOMEM;
  }
  json_decref(work);
  if (rc == -E2BIG)
    errors_set(err, SW_E_MESSAGE_TOO_LARGE, "the annotation summary of message %.32s would exceed %zu bytes",
               ann->message_serial ? ann->message_serial : "", max_bytes);
  else if (rc < 0)
    errors_set(err, SW_E_INTERNAL, "out of memory");
  return rc < 0 ? -1 : rc;
}

/* ---------------------------------------------------------- publishing */

/* Annotations on their way through storage. */
typedef struct ann_pub {
  sw_channel_t *ch;
  sw_msg_t *anns; /* owned */
  size_t n;
  int64_t *target;     /* the annotated message's seq, per annotation */
  json_t **changed;    /* its head's new annotations object when the summary changed (a reference), else NULL */
  json_t **old;        /* the head's annotations before (to undo a refusal), a reference */
  char **serials;      /* borrowed from anns */
  int64_t last_vseq;
  sw_publisher_t who;
  char conn_id[SW_CONN_ID_LEN + 1];
} ann_pub_t;

static void pub_free(ann_pub_t *p) {
  for (size_t i = 0; i < p->n; i++) {
    msg_clear(&p->anns[i]);
    if (p->changed) json_decref(p->changed[i]);
    if (p->old) json_decref(p->old[i]);
  }
  free(p->anns);
  free(p->target);
  free(p->changed);
  free(p->old);
  free(p->serials);
  if (p->who.rest_sock) sock_unref(p->who.rest_sock);
  free(p);
}

static sw_head_t *cached_head(sw_channel_t *ch, int64_t seq) {
  sw_head_t *h = NULL;
  HASH_FIND(hh, channel_xr(ch)->heads, &seq, sizeof seq, h);
  return h;
}

/* Releases the heads changed so far (k of them, from the last): their
 * summaries go back when undo is set (the publish is refused). */
static void heads_release(ann_pub_t *p, size_t k, bool undo) {
  while (k-- > 0) {
    if (!p->changed[k]) continue;
    sw_head_t *h = cached_head(p->ch, p->target[k]);
    if (!h) continue;
    if (h->pending) h->pending--;
    if (undo) {
      json_decref(h->msg.annotations);
      h->msg.annotations = json_incref(p->old[k]);
    }
  }
}

int64_t annotation_head_version(const sw_msg_t *head, int64_t seq) {
  json_t *s = head->version ? json_object_get(head->version, "serial") : NULL;
  int64_t v;
  if (json_is_string(s) && serial_parse(json_string_value(s), json_string_length(s), &v) == 0 && v > seq) return v;
  return seq;
}

sw_msg_t annotation_summary_event(const sw_msg_t *head, json_t *annotations, int64_t ts) {
  sw_msg_t m = {.action = 4 /* TM5 message.summary */, .id = head->id, .serial = head->serial,
                .timestamp = ts, .annotations = annotations};
  return m;
}

static void on_stored(void *ud, int status) {
  ann_pub_t *p = ud;
  sw_channel_t *ch = p->ch;
  ch->pending--;
  heads_release(p, p->n, false);
  sw_error_t err = {0};
  if (status == 0) {
    if (p->last_vseq > ch->durable_seq) ch->durable_seq = p->last_vseq;
    int64_t now = clock_now_ms();
    sw_pmsg_t am = {.action = SW_ACTION_ANNOTATION, .channel = (char *)ch->name, .timestamp = now,
                    .annotations = p->anns, .n_annotations = p->n};
    if (p->conn_id[0]) am.connection_id = p->conn_id;
    channel_broadcast(ch, &am, SW_MODE_ANNOTATION_SUBSCRIBE, NULL);
    for (size_t i = 0; i < p->n; i++) {
      if (!p->changed[i]) continue;
      sw_msg_t head = {.serial = p->anns[i].message_serial};
      sw_msg_t ev = annotation_summary_event(&head, p->changed[i], p->anns[i].timestamp);
      sw_pmsg_t sm = {.action = SW_ACTION_MESSAGE, .channel = (char *)ch->name, .channel_serial = p->serials[i],
                      .timestamp = ev.timestamp, .messages = &ev, .n_messages = 1};
      channel_broadcast(ch, &sm, SW_MODE_SUBSCRIBE, NULL);
    }
  } else {
    errors_set(&err, status == -ENOENT ? SW_E_NOT_FOUND : SW_E_INTERNAL, "annotation could not be stored");
    log_error("annotation storage failed on %s: %d", ch->name, status);
    /* The heads ran ahead of storage: read them again next time. */
    for (size_t i = 0; i < p->n; i++)
      if (p->changed[i]) mutation_head_forget(ch, p->target[i]);
  }
  channel_notify(ch->srv, &p->who, ch->name, status ? &err : NULL, p->serials, p->n);
  pub_free(p);
}

void annotation_bus_deliver(void *ud, const char *app_id, const char *channel, int64_t vseq, int64_t seq,
                            int64_t ts, const uint8_t *event, size_t event_len, const uint8_t *head,
                            size_t head_len) {
  (void)ts;
  sw_server_t *srv = ud;
  sw_channel_t *ch = channel_find_id(srv, app_id, channel);
  if (!ch || vseq <= ch->durable_seq) return;
  ch->durable_seq = vseq;
  if (ch->last_seq < vseq) ch->last_seq = vseq;
  sw_msg_t a = {0};
  if (codec_msg_from_blob(event, event_len, &a)) {
    log_warn("channel %s: annotation %lld is not readable; not delivered", ch->name, (long long)vseq);
    return;
  }
  /* As on_stored does for one node: the annotation, then the summary. */
  sw_pmsg_t am = {.action = SW_ACTION_ANNOTATION, .channel = (char *)ch->name, .timestamp = a.timestamp,
                  .connection_id = a.connection_id, .annotations = &a, .n_annotations = 1};
  channel_broadcast(ch, &am, SW_MODE_ANNOTATION_SUBSCRIBE, NULL);
  if (head_len) {
    mutation_head_replace(ch, seq, head, head_len);
    sw_msg_t h = {0};
    if (codec_msg_from_blob(head, head_len, &h) == 0) {
      char serial[SW_SERIAL_LEN + 1], mserial[SW_SERIAL_LEN + 1];
      serial_format(vseq, serial);
      serial_format(seq, mserial);
      sw_msg_t hv = {.serial = mserial, .id = h.id};
      sw_msg_t ev = annotation_summary_event(&hv, h.annotations, a.timestamp);
      sw_pmsg_t sm = {.action = SW_ACTION_MESSAGE, .channel = (char *)ch->name, .channel_serial = serial,
                      .timestamp = ev.timestamp, .messages = &ev, .n_messages = 1};
      channel_broadcast(ch, &sm, SW_MODE_SUBSCRIBE, NULL);
    }
    msg_clear(&h);
  }
  msg_clear(&a);
}

/* Checks and stamps one annotation; 0 or -1 with err. */
static int stamp(sw_channel_t *ch, const sw_principal_t *p, const char *caller, sw_msg_t *a, const char *conn_id,
                 int64_t now, int64_t *target, sw_error_t *err) {
  const sw_limits_t *l = &ch->srv->cfg->limits;
  if (a->action < 0) a->action = SW_ANN_CREATE;
  if (a->action > SW_ANN_DELETE) return errors_set(err, SW_E_BAD_REQUEST, "invalid annotation action %d", a->action);
  if (!a->type || !*a->type) return errors_set(err, SW_E_INVALID_PARAM, "an annotation needs a type");
  /* On a shared bus the node may not know the channel's last serial: the
   * bus checks the message exists. */
  bool shared = ch->srv->bus && bus_shared(ch->srv->bus);
  if (!a->message_serial || serial_parse(a->message_serial, strlen(a->message_serial), target) || *target < 1 ||
      (!shared && *target > ch->last_seq))
    return errors_set(err, SW_E_NOT_FOUND, "no message with serial %.32s", a->message_serial ? a->message_serial : "");
  if (msg_size(a) > (size_t)l->max_message_size)
    return errors_set(err, SW_E_MESSAGE_TOO_LARGE, "annotation exceeds maxMessageSize");
  if (principal_check_message_client_id(p, caller, &a->client_id, err)) return -1;
  /* JWT channel claims are the server's to stamp (as on messages). */
  if (a->extras) json_object_del(a->extras, "userClaim");
  json_t *claim = principal_channel_claim(p, ch->name);
  if (claim && (a->extras || (a->extras = json_object()))) json_object_set(a->extras, "userClaim", claim);
  free(a->connection_id);
  a->connection_id = conn_id ? strdup(conn_id) : NULL;
  if (!a->timestamp) a->timestamp = now;
  return 0;
}

/* Computes annotation i's summary on its head (kept in memory until the
 * publish is durable) and encodes the records' blobs into blobs. */
static int summarise_one(ann_pub_t *pub, size_t i, sw_buf_t *blobs, size_t *head_off, size_t *head_len,
                         sw_error_t *err) {
  sw_channel_t *ch = pub->ch;
  sw_msg_t *a = &pub->anns[i];
  sw_head_t *h = mutation_head(ch, pub->target[i]);
  if (!h) return errors_set(err, SW_E_NOT_FOUND, "no message with serial %.32s", a->message_serial);
  json_t *cur = h->msg.annotations ? json_object_get(h->msg.annotations, "summary") : NULL;
  json_t *sum = json_is_object(cur) ? json_deep_copy(cur) : json_object();
  if (!sum) return errors_set(err, SW_E_INTERNAL, "out of memory");
  int rc = annotation_summarise(sum, a, (size_t)ch->srv->cfg->limits.max_message_size, err);
  if (rc <= 0) {
    json_decref(sum);
    return rc;
  }
  json_t *ann = json_pack("{s:o}", "summary", sum);
  if (!ann) return errors_set(err, SW_E_INTERNAL, "out of memory");
  pub->old[i] = h->msg.annotations; /* the reference moves */
  h->msg.annotations = json_incref(ann);
  pub->changed[i] = ann;
  h->pending++; /* kept in memory until durable */
  *head_off = blobs->len;
  if (codec_msg_to_blob(&h->msg, blobs)) return errors_set(err, SW_E_INTERNAL, "out of memory");
  *head_len = blobs->len - *head_off;
  return 0;
}

int annotation_publish(sw_channel_t *ch, const sw_principal_t *p, const char *caller_client_id, sw_msg_t *anns,
                       size_t n, const sw_publisher_t *who, sw_error_t *err) {
  ann_pub_t *pub = calloc(1, sizeof *pub);
  sw_store_rec_t *recs = calloc(n ? n : 1, sizeof *recs);
  size_t *offs = calloc(2 * n + 1, sizeof *offs);
  sw_buf_t blobs = {0};
  size_t changed_upto = 0;
  int rc = -1;
  if (!pub || !recs || !offs) {
    errors_set(err, SW_E_INTERNAL, "out of memory");
    goto fail_anns;
  }
  pub->ch = ch;
  pub->anns = anns;
  pub->n = n;
  anns = NULL; /* owned by pub from here */
  if (!ch->mutable_messages) {
    errors_set(err, SW_E_MUTABLE_NOT_ENABLED, "annotations are not enabled on this channel (mutableMessages)");
    goto fail;
  }
  bool shared = ch->srv->bus && bus_shared(ch->srv->bus);
  if (shared && !bus_has_versions(ch->srv->bus)) {
    errors_set(err, SW_E_MUTABLE_NOT_ENABLED, "annotations are not available on a cluster (--redis) yet");
    goto fail;
  }
  if (!cap_allows(p->cap, ch->name, SW_OP_ANNOTATION_PUBLISH)) {
    errors_set(err, SW_E_CAPABILITY_DENIED, "annotation-publish denied; channel = %.200s", ch->name);
    goto fail;
  }
  if (n == 0) {
    errors_set(err, SW_E_BAD_REQUEST, "no annotations to publish");
    goto fail;
  }
  if (!ch->srv->store) {
    errors_set(err, SW_E_INTERNAL, "server shutting down");
    goto fail;
  }
  pub->target = calloc(n, sizeof *pub->target);
  pub->changed = calloc(n, sizeof *pub->changed);
  pub->old = calloc(n, sizeof *pub->old);
  pub->serials = calloc(n, sizeof *pub->serials);
  if (!pub->target || !pub->changed || !pub->old || !pub->serials) {
    errors_set(err, SW_E_INTERNAL, "out of memory");
    goto fail;
  }
  int64_t now = clock_now_ms();
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    if (stamp(ch, p, caller_client_id, &pub->anns[i], who->conn_id, now, &pub->target[i], err)) goto fail;
    total += msg_size(&pub->anns[i]);
  }
  /* RSAN1a4: annotations published together count together (TO3l8). */
  if (total > (size_t)ch->srv->cfg->limits.max_message_size) {
    errors_set(err, SW_E_MESSAGE_TOO_LARGE, "annotations size %zu exceeds maxMessageSize %lld", total,
               (long long)ch->srv->cfg->limits.max_message_size);
    goto fail;
  }
  /* On a shared bus (docs/cluster.md, "Annotations"): one at a time, its
   * summary folded in and its serial taken by the bus (core/mutation.c). */
  if (shared) {
    if (n != 1) {
      errors_set(err, SW_E_BAD_REQUEST, "publish one annotation at a time on a cluster (--redis)");
      goto fail;
    }
    rc = mutation_annotate_shared(ch, &pub->anns[0], pub->target[0], who, err);
    pub->who = (sw_publisher_t){0};
    pub_free(pub);
    goto out;
  }
  /* Serials: the channel's next ones, taken only once the submission is
   * queued. */
  for (size_t i = 0; i < n; i++) {
    sw_msg_t *a = &pub->anns[i];
    char s[SW_SERIAL_LEN + 1];
    serial_format(ch->last_seq + 1 + (int64_t)i, s);
    free(a->serial);
    if (!(a->serial = strdup(s))) {
      errors_set(err, SW_E_INTERNAL, "out of memory");
      goto fail;
    }
    pub->serials[i] = a->serial;
    size_t hoff = 0, hlen = 0;
    changed_upto = i + 1;
    if (summarise_one(pub, i, &blobs, &hoff, &hlen, err)) goto fail;
    offs[2 * i] = blobs.len;
    if (codec_msg_to_blob(a, &blobs)) {
      errors_set(err, SW_E_INTERNAL, "out of memory");
      goto fail;
    }
    recs[i] = (sw_store_rec_t){.app_id = ch->app->id, .channel = ch->name, .op = SW_STORE_ANNOTATION,
                               .seq = pub->target[i], .vseq = ch->last_seq + 1 + (int64_t)i, .timestamp = a->timestamp,
                               .blob_len = hlen, .version_blob_len = blobs.len - offs[2 * i]};
    offs[2 * i + 1] = hoff; /* where its head is, when hlen > 0 */
  }
  for (size_t i = 0; i < n; i++) {
    recs[i].version_blob = blobs.data + offs[2 * i];
    if (recs[i].blob_len) recs[i].blob = blobs.data + offs[2 * i + 1];
  }
  pub->who = *who;
  if (who->conn_id) snprintf(pub->conn_id, sizeof pub->conn_id, "%s", who->conn_id);
  pub->who.conn_id = pub->conn_id[0] ? pub->conn_id : NULL;
  pub->who.principal = NULL; /* valid during this call only */
  pub->last_vseq = ch->last_seq + (int64_t)n;
  ch->pending++;
  if (store_submit(ch->srv->store, recs, n, on_stored, pub)) {
    ch->pending--;
    errors_set(err, SW_E_INTERNAL, "storage unavailable");
    goto fail;
  }
  if (who->rest_sock) sock_ref(who->rest_sock);
  ch->last_seq = pub->last_vseq;
  rc = 0;
  goto out;
fail:
  if (pub->changed) heads_release(pub, changed_upto, true);
  pub->who = (sw_publisher_t){0};
  pub_free(pub);
  goto out;
fail_anns:
  free(pub);
  for (size_t i = 0; anns && i < n; i++) msg_clear(&anns[i]);
  free(anns);
out:
  free(recs);
  free(offs);
  buf_free(&blobs);
  return rc;
}
