/* cloud_memory.c: Assistant Cloud threads and messages in memory.
 *
 * A hash of workspaces keyed by "app\0workspace"; a workspace holds its
 * threads in an array, a thread its messages in creation order (each with
 * the latest feedback). Lookups by id are linear scans, bounded by the
 * store's count limits (SW_CLOUD_MAX_*): this backend serves tests and
 * ephemeral servers. Every write checks everything it can refuse before it
 * changes anything, so a refused write leaves no trace. */
#include "store/cloud_memory.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "store/backend.h"
#include "util/hash.h"

typedef struct mmsg {
  sw_cloud_msg_t m; /* owned strings */
  int64_t seq;
  char *fb_id, *fb_type, *fb_comment; /* the latest feedback, or NULL */
} mmsg_t;

typedef struct mthread {
  sw_cloud_thread_t t; /* owned strings */
  int64_t msg_seq;
  mmsg_t *msgs;
  size_t n, cap;
} mthread_t;

typedef struct mws {
  char *key; /* "app\0workspace" */
  size_t key_len;
  char *app;  /* points into key */
  mthread_t **threads;
  size_t n, cap;
  UT_hash_handle hh;
} mws_t;

struct mem_cloud {
  uv_mutex_t mu;
  mws_t *ws;
};

static char *dup_opt(const char *s, bool *oom) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) *oom = true;
  return d;
}

static void msg_free(mmsg_t *m) {
  free(m->m.id);
  free(m->m.parent_id);
  free(m->m.external_id);
  free(m->m.format);
  free(m->m.content);
  free(m->fb_id);
  free(m->fb_type);
  free(m->fb_comment);
}

static void thread_free(mthread_t *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n; i++) msg_free(&t->msgs[i]);
  free(t->msgs);
  free(t->t.id);
  free(t->t.external_id);
  free(t->t.title);
  free(t->t.metadata);
  free(t);
}

static void ws_free(mws_t *w) {
  for (size_t i = 0; i < w->n; i++) thread_free(w->threads[i]);
  free(w->threads);
  free(w->key);
  free(w);
}

static mws_t *ws_find(mem_cloud_t *c, const char *app, const char *ws, bool create) {
  size_t la = strlen(app), lw = strlen(ws), kl = la + 1 + lw;
  char *key = malloc(kl + 1);
  if (!key) return NULL;
  memcpy(key, app, la + 1);
  memcpy(key + la + 1, ws, lw + 1);
  mws_t *w = NULL;
  HASH_FIND(hh, c->ws, key, kl, w);
  if (w || !create || !(w = calloc(1, sizeof *w))) {
    free(key);
    return w;
  }
  w->key = key;
  w->key_len = kl;
  w->app = key;
  HASH_ADD_KEYPTR(hh, c->ws, w->key, w->key_len, w);
  return w;
}

static mthread_t *thread_find(const mws_t *w, const char *id, size_t *at) {
  for (size_t i = 0; w && i < w->n; i++)
    if (strcmp(w->threads[i]->t.id, id) == 0) {
      if (at) *at = i;
      return w->threads[i];
    }
  return NULL;
}

static mmsg_t *msg_find(const mthread_t *t, const char *id, bool by_external) {
  /* Newest first: an external id names the newest message carrying it. */
  for (size_t i = t->n; i-- > 0;) {
    const char *k = by_external ? t->msgs[i].m.external_id : t->msgs[i].m.id;
    if (k && strcmp(k, id) == 0) return &t->msgs[i];
  }
  return NULL;
}

static void copy_id(char *dst, const char *src) {
  size_t n = strlen(src);
  if (n >= SW_CLOUD_ID_MAX) n = SW_CLOUD_ID_MAX - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

static int thread_create(mem_cloud_t *c, const sw_cloud_op_t *o, sw_cloud_result_t *res) {
  mws_t *w = ws_find(c, o->app_id, o->workspace, true);
  if (!w) return -ENOMEM;
  for (size_t i = 0; o->external_id && i < w->n; i++) {
    const mthread_t *t = w->threads[i];
    if (t->t.external_id && strcmp(t->t.external_id, o->external_id) == 0) {
      copy_id(res->id, t->t.id);
      if (!o->upsert) return -EEXIST;
      res->existed = true;
      return 0;
    }
  }
  if (w->n >= SW_CLOUD_MAX_THREADS_PER_WORKSPACE) return -EDQUOT;
  if (w->n == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 8;
    mthread_t **p = realloc(w->threads, cap * sizeof *p);
    if (!p) return -ENOMEM;
    w->threads = p;
    w->cap = cap;
  }
  mthread_t *t = calloc(1, sizeof *t);
  bool oom = !t;
  if (t) {
    t->t = (sw_cloud_thread_t){.created_at = o->now, .updated_at = o->now,
                               .last_message_at = o->last_message_at >= 0 ? o->last_message_at : o->now};
    t->t.id = dup_opt(o->thread_id, &oom);
    t->t.external_id = dup_opt(o->external_id, &oom);
    t->t.title = dup_opt(o->title, &oom);
    t->t.metadata = dup_opt(o->metadata, &oom);
  }
  if (oom) {
    thread_free(t);
    return -ENOMEM;
  }
  w->threads[w->n++] = t;
  copy_id(res->id, o->thread_id);
  return 0;
}

static int thread_update(mthread_t *t, const sw_cloud_op_t *o) {
  char *title = o->title ? strdup(o->title) : NULL, *meta = o->metadata ? strdup(o->metadata) : NULL;
  if ((o->title && !title) || (o->metadata && !meta)) {
    free(title);
    free(meta);
    return -ENOMEM;
  }
  if (title) free(t->t.title), t->t.title = title;
  if (meta) free(t->t.metadata), t->t.metadata = meta;
  if (o->last_message_at >= 0) t->t.last_message_at = o->last_message_at;
  if (o->is_archived >= 0) t->t.is_archived = o->is_archived != 0;
  t->t.updated_at = o->now;
  return 0;
}

static int msg_create(mthread_t *t, const sw_cloud_op_t *o, sw_cloud_result_t *res) {
  if (t->n >= SW_CLOUD_MAX_MESSAGES_PER_THREAD) return -EDQUOT;
  if (msg_find(t, o->id, false)) return -EEXIST;
  const mmsg_t *parent = NULL;
  const char *ext = o->parent_id ? o->parent_id : o->parent_external_id;
  if (o->parent_id) parent = msg_find(t, o->parent_id, false);
  if (!parent && ext && !(parent = msg_find(t, ext, true))) return -ESRCH;
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 8;
    mmsg_t *p = realloc(t->msgs, cap * sizeof *p);
    if (!p) return -ENOMEM;
    t->msgs = p;
    t->cap = cap;
  }
  mmsg_t m = {.seq = t->msg_seq + 1};
  bool oom = false;
  m.m = (sw_cloud_msg_t){.height = parent ? parent->m.height + 1 : 0, .created_at = o->now, .updated_at = o->now};
  m.m.id = dup_opt(o->id, &oom);
  m.m.parent_id = dup_opt(parent ? parent->m.id : NULL, &oom);
  m.m.external_id = dup_opt(o->external_id, &oom);
  m.m.format = dup_opt(o->format, &oom);
  m.m.content = dup_opt(o->content, &oom);
  if (oom) {
    msg_free(&m);
    return -ENOMEM;
  }
  copy_id(res->parent_id, parent ? parent->m.id : "");
  res->height = m.m.height;
  t->msgs[t->n++] = m;
  t->msg_seq = m.seq;
  t->t.updated_at = o->now;
  if (o->now > t->t.last_message_at) t->t.last_message_at = o->now;
  return 0;
}

static int msg_update(mthread_t *t, const sw_cloud_op_t *o) {
  mmsg_t *m = msg_find(t, o->id, false);
  if (!m) return -ENOENT;
  char *content = strdup(o->content), *format = o->format ? strdup(o->format) : NULL;
  if (!content || (o->format && !format)) {
    free(content);
    free(format);
    return -ENOMEM;
  }
  free(m->m.content);
  m->m.content = content;
  if (format) free(m->m.format), m->m.format = format;
  m->m.updated_at = o->now;
  return 0;
}

static void msg_delete(mthread_t *t, const sw_cloud_op_t *o, sw_cloud_result_t *res) {
  for (size_t k = 0; k < o->n_ids; k++) {
    mmsg_t *m = msg_find(t, o->ids[k], false);
    if (!m) continue;
    size_t i = (size_t)(m - t->msgs);
    msg_free(m);
    memmove(&t->msgs[i], &t->msgs[i + 1], (t->n - i - 1) * sizeof *t->msgs);
    t->n--;
    res->deleted++;
  }
}

static int feedback(mthread_t *t, const sw_cloud_op_t *o) {
  mmsg_t *m = msg_find(t, o->id, false);
  if (!m) return -ENOENT;
  bool oom = false;
  char *id = dup_opt(o->feedback_id, &oom), *type = dup_opt(o->feedback_type, &oom),
       *comment = dup_opt(o->comment, &oom);
  if (oom) {
    free(id);
    free(type);
    free(comment);
    return -ENOMEM;
  }
  free(m->fb_id);
  free(m->fb_type);
  free(m->fb_comment);
  m->fb_id = id;
  m->fb_type = type;
  m->fb_comment = comment;
  return 0;
}

static int write_locked(mem_cloud_t *c, const sw_cloud_op_t *o, sw_cloud_result_t *res) {
  if (o->kind == SW_CLOUD_THREAD_CREATE) return thread_create(c, o, res);
  mws_t *w = ws_find(c, o->app_id, o->workspace, false);
  size_t at = 0;
  mthread_t *t = thread_find(w, o->thread_id, &at);
  if (!t) return -ENOENT;
  switch (o->kind) {
  case SW_CLOUD_THREAD_UPDATE: return thread_update(t, o);
  case SW_CLOUD_THREAD_DELETE:
    thread_free(t);
    memmove(&w->threads[at], &w->threads[at + 1], (w->n - at - 1) * sizeof *w->threads);
    w->n--;
    return 0;
  case SW_CLOUD_MSG_CREATE: return msg_create(t, o, res);
  case SW_CLOUD_MSG_UPDATE: return msg_update(t, o);
  case SW_CLOUD_MSG_DELETE: msg_delete(t, o, res); return 0;
  case SW_CLOUD_FEEDBACK: return feedback(t, o);
  default: return -EINVAL;
  }
}

int mem_cloud_write(mem_cloud_t *c, const sw_cloud_op_t *o, sw_cloud_result_t *res) {
  uv_mutex_lock(&c->mu);
  int rc = write_locked(c, o, res);
  uv_mutex_unlock(&c->mu);
  return rc;
}

void mem_cloud_delete_app(mem_cloud_t *c, const char *app_id) {
  uv_mutex_lock(&c->mu);
  mws_t *w, *tmp;
  HASH_ITER(hh, c->ws, w, tmp) {
    if (strcmp(w->app, app_id) != 0) continue;
    HASH_DEL(c->ws, w);
    ws_free(w);
  }
  uv_mutex_unlock(&c->mu);
}

/* The list order: last_message_at descending, then id descending. */
static int thread_cmp(const void *a, const void *b) {
  const sw_cloud_thread_t *x = &(*(mthread_t *const *)a)->t, *y = &(*(mthread_t *const *)b)->t;
  if (x->last_message_at != y->last_message_at) return x->last_message_at > y->last_message_at ? -1 : 1;
  return -strcmp(x->id, y->id);
}

static bool thread_matches(const sw_cloud_thread_t *t, const sw_cloud_thread_q_t *q) {
  return (q->archived < 0 || t->is_archived == (q->archived != 0)) &&
         (!q->external_id || (t->external_id && strcmp(t->external_id, q->external_id) == 0));
}

static int threads_locked(mem_cloud_t *c, const sw_cloud_thread_q_t *q, sw_cloud_threads_t *out) {
  mws_t *w = ws_find(c, q->app_id, q->workspace, false);
  if (!w || w->n == 0) return 0;
  if (q->id) {
    const mthread_t *t = thread_find(w, q->id, NULL);
    return t ? cloud_threads_push(out, &t->t) : 0;
  }
  const mthread_t *cursor = q->after ? thread_find(w, q->after, NULL) : NULL;
  if (q->after && !cursor) return 0;
  mthread_t **sorted = malloc(w->n * sizeof *sorted);
  if (!sorted) return -ENOMEM;
  memcpy(sorted, w->threads, w->n * sizeof *sorted);
  qsort(sorted, w->n, sizeof *sorted, thread_cmp);
  size_t i = 0;
  if (cursor) {
    while (i < w->n && sorted[i] != cursor) i++;
    i++;
  }
  int rc = 0;
  for (; i < w->n && out->n < q->limit && rc == 0; i++)
    if (thread_matches(&sorted[i]->t, q)) rc = cloud_threads_push(out, &sorted[i]->t);
  free(sorted);
  return rc;
}

int mem_cloud_threads(mem_cloud_t *c, const sw_cloud_thread_q_t *q, sw_cloud_threads_t *out) {
  uv_mutex_lock(&c->mu);
  int rc = threads_locked(c, q, out);
  uv_mutex_unlock(&c->mu);
  return rc;
}

static int messages_locked(mem_cloud_t *c, const sw_cloud_msg_q_t *q, sw_cloud_msgs_t *out) {
  const mthread_t *t = thread_find(ws_find(c, q->app_id, q->workspace, false), q->thread_id, NULL);
  if (!t) return 0;
  size_t end = t->n;
  if (q->after) {
    const mmsg_t *m = msg_find(t, q->after, false);
    if (!m) return 0;
    end = (size_t)(m - t->msgs);
  }
  int rc = 0;
  for (size_t i = end; i-- > 0 && out->n < q->limit && rc == 0;)
    if (!q->format || strcmp(t->msgs[i].m.format, q->format) == 0) rc = cloud_msgs_push(out, &t->msgs[i].m);
  return rc;
}

int mem_cloud_messages(mem_cloud_t *c, const sw_cloud_msg_q_t *q, sw_cloud_msgs_t *out) {
  uv_mutex_lock(&c->mu);
  int rc = messages_locked(c, q, out);
  uv_mutex_unlock(&c->mu);
  return rc;
}

int mem_cloud_open(mem_cloud_t **out) {
  mem_cloud_t *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  if (uv_mutex_init(&c->mu)) {
    free(c);
    return -ENOMEM;
  }
  *out = c;
  return 0;
}

void mem_cloud_close(mem_cloud_t *c) {
  if (!c) return;
  mws_t *w, *tmp;
  HASH_ITER(hh, c->ws, w, tmp) {
    HASH_DEL(c->ws, w);
    ws_free(w);
  }
  uv_mutex_destroy(&c->mu);
  free(c);
}
