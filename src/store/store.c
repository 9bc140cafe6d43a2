/* store.c: the backend-independent half of the store: the job queue, the
 * commit thread (group commit), completion delivery to the loop thread, and
 * the read pass-throughs.
 *
 * Data flow of a publish:
 *   loop thread: store_submit copies the records into one job allocation and
 *                appends it to `queue` (under mu), signalling `wake`.
 *   commit thread: takes the whole queue at once, groups consecutive
 *                submissions up to max_batch records into one backend
 *                transaction, moves the completed jobs to `done` (under mu)
 *                and pokes the uv_async_t.
 *   loop thread: on_async moves `done` to the loop-private `cbq` and invokes
 *                the callbacks in submission order.
 * The only state shared between the threads is what sits under `mu`; the job
 * contents are handed over through those lists, so the mutex orders every
 * access. */
#include "store/store.h"

#include "store/backend.h"

#include <errno.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_BATCH 4096
/* Rows deleted per prune transaction: small enough that a big expiry sweep
 * does not hold the writer (and so publish acks) for long. */
#define PRUNE_CHUNK 2000

enum job_kind { JOB_SUBMIT, JOB_PRUNE, JOB_DELETE_APP, JOB_KV_PUT, JOB_EXP_PUT, JOB_KV_ASYNC, JOB_CLOUD };

typedef struct sw_job {
  struct sw_job *next;
  enum job_kind kind;
  int status;
  /* JOB_SUBMIT: recs point into the same allocation as the job. */
  sw_store_done_cb cb;
  void *ud;
  bool ud_inline; /* ud is in the job's allocation (store_submit_ud): freed after cb */
  sw_store_rec_t *recs;
  size_t n;
  /* JOB_PRUNE */
  int64_t now;
  /* JOB_DELETE_APP / JOB_KV_PUT / JOB_EXP_PUT: the job lives on the waiting
   * caller's stack and the strings are the caller's (it blocks until
   * `finished`). JOB_EXP_PUT also uses now, and the key as the id.
   * JOB_KV_ASYNC: the strings are copies in the job's allocation, and cb/ud
   * are called as for a submission. */
  const char *app_id, *ns, *key, *value;
  int64_t expires;
  size_t max_count, max_bytes;
  bool finished;
} sw_job_t;

/* JOB_CLOUD: an Assistant Cloud write. The job comes first, so a cloud_job_t
 * is freed like any job; the op's strings live in the same allocation. Kept
 * apart from sw_job_t so a publish's job does not grow by it. */
typedef struct cloud_job {
  sw_job_t job;
  sw_cloud_op_t op;
  sw_cloud_result_t res;
  sw_cloud_done_cb cb;
} cloud_job_t;

/* A FIFO of jobs. */
typedef struct job_list {
  sw_job_t *head, *tail;
} job_list_t;

struct sw_store {
  uv_loop_t *loop;
  uv_async_t async;
  uv_thread_t thread;
  sw_backend_t *be;
  size_t max_batch;
  sw_store_fold_fn fold;

  uv_mutex_t mu;
  uv_cond_t wake;      /* commit thread: work queued or stop requested */
  uv_cond_t sync_done; /* loop thread: a synchronous job finished */
  /* Under mu. */
  job_list_t queue;
  job_list_t done;
  int sync_waiting; /* synchronous jobs queued: they override `hold` */
  bool stop;
  bool hold;
  sw_store_stats_t stats;

  /* Loop thread only. */
  job_list_t cbq; /* completed jobs whose callbacks are being invoked */
  bool closing;   /* store_close started: no new writes */
  bool closed;    /* backend closed: no reads */

  /* Commit thread only. */
  sw_store_rec_t *scratch;
  size_t scratch_cap;
};

static void list_push(job_list_t *l, sw_job_t *j) {
  j->next = NULL;
  if (l->tail)
    l->tail->next = j;
  else
    l->head = j;
  l->tail = j;
}

static void list_concat(job_list_t *l, job_list_t *m) {
  if (!m->head) return;
  if (l->tail)
    l->tail->next = m->head;
  else
    l->head = m->head;
  l->tail = m->tail;
  m->head = m->tail = NULL;
}

static sw_job_t *list_pop(job_list_t *l) {
  sw_job_t *j = l->head;
  if (j) {
    l->head = j->next;
    if (!l->head) l->tail = NULL;
    j->next = NULL;
  }
  return j;
}

/* ---------------------------------------------------------------- rows */

typedef struct sw_rows_entry {
  int64_t seq, vseq, ts;
  size_t off, len;
} sw_rows_entry_t;

int rows_builder_add(sw_rows_builder_t *rb, int64_t seq, int64_t vseq, int64_t ts,
                     const void *blob, size_t blob_len) {
  sw_rows_entry_t e = {.seq = seq, .vseq = vseq, .ts = ts, .off = rb->blobs.len, .len = blob_len};
  if (buf_reserve(&rb->rows, sizeof e) || buf_reserve(&rb->blobs, blob_len)) return -ENOMEM;
  buf_append(&rb->rows, &e, sizeof e);
  buf_append(&rb->blobs, blob, blob_len);
  rb->n++;
  return 0;
}

void rows_builder_free(sw_rows_builder_t *rb) {
  buf_free(&rb->rows);
  buf_free(&rb->blobs);
  rb->n = 0;
}

int rows_builder_finish(sw_rows_builder_t *rb, sw_store_rows_t *out) {
  out->rows = NULL;
  out->n = 0;
  if (rb->n == 0) {
    rows_builder_free(rb);
    return 0;
  }
  size_t head = rb->n * sizeof(sw_store_row_t);
  sw_store_row_t *rows = malloc(head + rb->blobs.len);
  if (!rows) {
    rows_builder_free(rb);
    return -ENOMEM;
  }
  uint8_t *arena = (uint8_t *)rows + head;
  if (rb->blobs.len) memcpy(arena, rb->blobs.data, rb->blobs.len);
  const sw_rows_entry_t *e = (const sw_rows_entry_t *)(const void *)rb->rows.data;
  for (size_t i = 0; i < rb->n; i++) {
    rows[i].seq = e[i].seq;
    rows[i].vseq = e[i].vseq;
    rows[i].timestamp = e[i].ts;
    rows[i].blob = e[i].len ? arena + e[i].off : NULL;
    rows[i].blob_len = e[i].len;
  }
  out->rows = rows;
  out->n = rb->n;
  rows_builder_free(rb);
  return 0;
}

void store_rows_free(sw_store_rows_t *r) {
  if (!r) return;
  free(r->rows); /* the blobs live in the same allocation */
  r->rows = NULL;
  r->n = 0;
}

/* -------------------------------------------------------- commit thread */

/* Hands completed submissions to the loop thread. */
static void publish_done(sw_store_t *s, job_list_t *done, const sw_store_stats_t *delta) {
  uv_mutex_lock(&s->mu);
  bool any = done->head != NULL;
  list_concat(&s->done, done);
  s->stats.batches += delta->batches;
  s->stats.records += delta->records;
  s->stats.submissions += delta->submissions;
  s->stats.failures += delta->failures;
  s->stats.pruned += delta->pruned;
  sw_hist_merge(&s->stats.commit_latency, &delta->commit_latency);
  uv_mutex_unlock(&s->mu);
  /* uv_async_send is the one libuv call that is safe from another thread;
   * store_close joins this thread before closing the handle. */
  if (any) uv_async_send(&s->async);
}

/* One message transaction, counted in st when it commits: batches,
 * records and its latency. uv_hrtime is monotonic and thread-safe. */
static int timed_write(sw_store_t *s, const sw_store_rec_t *recs, size_t n, sw_store_stats_t *st) {
  uint64_t t0 = uv_hrtime();
  int rc = s->be->ops->write_batch(s->be, recs, n);
  if (rc == 0) {
    sw_hist_observe(&st->commit_latency, uv_hrtime() - t0);
    st->batches++;
    st->records += n;
  }
  return rc;
}

/* Commits the submissions first..last (consecutive in the list, `total`
 * records) as one transaction. If that fails and the group holds several
 * submissions, each is retried in its own transaction so that one bad
 * submission (e.g. a duplicate seq) does not fail its neighbours. */
static void commit_group(sw_store_t *s, sw_job_t *first, sw_job_t *last, size_t total,
                         sw_store_stats_t *st) {
  sw_job_t *end = last->next;
  int rc = 0;
  bool single = first == last;
  if (total > 0) {
    const sw_store_rec_t *recs = first->recs;
    if (!single) {
      if (total > s->scratch_cap) {
        sw_store_rec_t *p = realloc(s->scratch, total * sizeof *p);
        if (p) {
          s->scratch = p;
          s->scratch_cap = total;
        }
      }
      if (total <= s->scratch_cap) {
        /* Struct copies only: the strings and blobs stay in the jobs. */
        size_t k = 0;
        for (sw_job_t *j = first; j != end; j = j->next) {
          if (j->n) memcpy(s->scratch + k, j->recs, j->n * sizeof *j->recs);
          k += j->n;
        }
        recs = s->scratch;
      } else {
        rc = -ENOMEM; /* falls back to one transaction per submission below */
      }
    }
    if (rc == 0) rc = timed_write(s, recs, total, st);
  }
  if (rc != 0 && !single) {
    for (sw_job_t *j = first; j != end; j = j->next) j->status = j->n ? timed_write(s, j->recs, j->n, st) : 0;
  } else {
    for (sw_job_t *j = first; j != end; j = j->next) j->status = rc;
  }
  for (sw_job_t *j = first; j != end; j = j->next) {
    if (j->status == 0)
      st->submissions++;
    else
      st->failures++;
  }
}

static void run_jobs(sw_store_t *s, sw_job_t *j) {
  job_list_t requeue = {0};
  while (j) {
    sw_store_stats_t st = {0};
    job_list_t done = {0};
    if (j->kind == JOB_SUBMIT) {
      /* Group every consecutive submission that fits in max_batch (the first
       * always goes in, however large). */
      sw_job_t *last = j;
      size_t total = j->n;
      while (last->next && last->next->kind == JOB_SUBMIT && total < s->max_batch &&
             last->next->n <= s->max_batch - total) {
        last = last->next;
        total += last->n;
      }
      commit_group(s, j, last, total, &st);
      sw_job_t *next = last->next;
      last->next = NULL;
      done.head = j;
      done.tail = last;
      publish_done(s, &done, &st);
      j = next;
    } else if (j->kind == JOB_PRUNE) {
      sw_job_t *next = j->next;
      size_t deleted = 0;
      bool more = false;
      int rc = s->be->ops->prune(s->be, j->now, PRUNE_CHUNK, &deleted, &more);
      st.pruned = deleted;
      publish_done(s, &done, &st);
      /* More may remain: go again after whatever was queued meanwhile. */
      if (rc == 0 && more)
        list_push(&requeue, j);
      else
        free(j);
      j = next;
    } else if (j->kind == JOB_KV_ASYNC || j->kind == JOB_CLOUD) {
      /* Each in its own transaction: these are rare next to publishes, and
       * the failure of one (a missing thread...) must not fail a group. */
      sw_job_t *next = j->next;
      if (j->kind == JOB_KV_ASYNC) {
        j->status = s->be->ops->kv_put(s->be, j->ns, j->key, j->value);
      } else {
        cloud_job_t *cj = (cloud_job_t *)j;
        j->status = s->be->ops->cloud_write(s->be, &cj->op, &cj->res);
      }
      done.head = done.tail = j;
      j->next = NULL;
      publish_done(s, &done, &st);
      j = next;
    } else {
      sw_job_t *next = j->next;
      int rc = j->kind == JOB_DELETE_APP ? s->be->ops->delete_app(s->be, j->app_id)
               : j->kind == JOB_KV_PUT   ? s->be->ops->kv_put(s->be, j->ns, j->key, j->value)
                                         : s->be->ops->exp_put(s->be, j->key, j->value, j->expires, j->now,
                                                               j->max_count, j->max_bytes);
      uv_mutex_lock(&s->mu);
      j->status = rc;
      j->finished = true; /* j is the waiter's; do not touch it after unlock */
      s->sync_waiting--;
      uv_cond_broadcast(&s->sync_done);
      uv_mutex_unlock(&s->mu);
      j = next;
    }
  }
  if (requeue.head) {
    uv_mutex_lock(&s->mu);
    list_concat(&s->queue, &requeue);
    uv_mutex_unlock(&s->mu);
  }
}

/* Background work of the backend (SQLite: folding logged appends into
 * heads) when no batch is waiting. Returns the ms until it wants to run
 * again, or -1 for never (until the next batch). */
static int64_t maintain(sw_store_t *s) {
  return s->be->ops->maintain ? s->be->ops->maintain(s->be, false) : -1;
}

static void commit_thread(void *arg) {
  sw_store_t *s = arg;
  uv_mutex_lock(&s->mu);
  for (;;) {
    if (s->queue.head && (!s->hold || s->stop || s->sync_waiting > 0)) {
      /* Take everything queued: this is what makes the commit a group. */
      sw_job_t *jobs = s->queue.head;
      s->queue.head = s->queue.tail = NULL;
      uv_mutex_unlock(&s->mu);
      run_jobs(s, jobs);
      uv_mutex_lock(&s->mu);
      continue;
    }
    if (s->stop) break;
    /* Idle: background work first, unless a submission came meanwhile. */
    uv_mutex_unlock(&s->mu);
    int64_t next_ms = maintain(s);
    uv_mutex_lock(&s->mu);
    if (s->queue.head || s->stop) continue;
    if (next_ms < 0)
      uv_cond_wait(&s->wake, &s->mu);
    else
      uv_cond_timedwait(&s->wake, &s->mu, (uint64_t)next_ms * 1000000u + 1);
  }
  uv_mutex_unlock(&s->mu);
}

/* ----------------------------------------------------------- loop side */

/* Frees a completed job, then invokes its callback. */
static void job_finish(sw_job_t *j) {
  int status = j->status;
  void *ud = j->ud;
  if (j->kind == JOB_CLOUD) {
    cloud_job_t *cj = (cloud_job_t *)j;
    sw_cloud_done_cb cb = cj->cb;
    sw_cloud_result_t res = status ? (sw_cloud_result_t){0} : cj->res;
    free(j);
    if (cb) cb(ud, status, &res);
    return;
  }
  sw_store_done_cb cb = j->cb;
  if (j->ud_inline) {
    if (cb) cb(ud, status);
    free(j);
    return;
  }
  free(j);
  if (cb) cb(ud, status);
}

/* Invokes callbacks one job at a time from s->cbq so that a callback calling
 * store_close (which drains cbq itself) neither loses nor repeats any. */
static void run_callbacks(sw_store_t *s) {
  for (;;) {
    sw_job_t *j = list_pop(&s->cbq);
    if (!j) {
      uv_mutex_lock(&s->mu);
      list_concat(&s->cbq, &s->done);
      uv_mutex_unlock(&s->mu);
      j = list_pop(&s->cbq);
      if (!j) return;
    }
    job_finish(j);
  }
}

static void on_async(uv_async_t *h) {
  sw_store_t *s = h->data;
  /* Take only what is done now: a busy commit thread must not starve I/O. */
  uv_mutex_lock(&s->mu);
  list_concat(&s->cbq, &s->done);
  uv_mutex_unlock(&s->mu);
  while (!s->closing) {
    sw_job_t *j = list_pop(&s->cbq);
    if (!j) break;
    job_finish(j);
  }
}

static void store_free(sw_store_t *s) {
  uv_cond_destroy(&s->sync_done);
  uv_cond_destroy(&s->wake);
  uv_mutex_destroy(&s->mu);
  free(s->scratch);
  free(s);
}

static void on_close(uv_handle_t *h) { store_free(h->data); }

int store_open(uv_loop_t *loop, const sw_store_opts_t *opts, sw_store_t **out) {
  if (!loop || !opts || !out) return -EINVAL;
  sw_store_t *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->loop = loop;
  s->max_batch = opts->max_batch ? opts->max_batch : DEFAULT_MAX_BATCH;
  s->fold = opts->fold;
  int rc = opts->path ? backend_sqlite_open(opts, &s->be) : backend_memory_open(opts, &s->be);
  if (rc) {
    free(s);
    return rc;
  }
  if (uv_mutex_init(&s->mu)) goto fail_be;
  if (uv_cond_init(&s->wake)) goto fail_mu;
  if (uv_cond_init(&s->sync_done)) goto fail_wake;
  /* The thread before the handle, so a failure to start it leaves no handle
   * to close asynchronously. It cannot touch the handle yet: it only pokes it
   * after completing a job, and none can be queued before we return. */
  if (uv_thread_create(&s->thread, commit_thread, s)) {
    rc = -EAGAIN;
    goto fail_cond;
  }
  if ((rc = uv_async_init(loop, &s->async, on_async)) != 0) {
    uv_mutex_lock(&s->mu);
    s->stop = true;
    uv_cond_signal(&s->wake);
    uv_mutex_unlock(&s->mu);
    uv_thread_join(&s->thread);
    goto fail_cond;
  }
  s->async.data = s;
  *out = s;
  return 0;

fail_cond:
  uv_cond_destroy(&s->sync_done);
fail_wake:
  uv_cond_destroy(&s->wake);
fail_mu:
  uv_mutex_destroy(&s->mu);
fail_be:
  s->be->ops->close(s->be);
  free(s);
  return rc ? rc : -ENOMEM;
}

/* Rounds n up to a multiple of a (a power of two). */
static size_t align_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }

static int submit(sw_store_t *s, const sw_store_rec_t *recs, size_t n, sw_store_done_cb cb, void *ud,
                  size_t ud_size, void **ud_out);

int store_submit(sw_store_t *s, const sw_store_rec_t *recs, size_t n, sw_store_done_cb cb,
                 void *ud) {
  return submit(s, recs, n, cb, ud, 0, NULL);
}

int store_submit_ud(sw_store_t *s, const sw_store_rec_t *recs, size_t n, sw_store_done_cb cb, size_t ud_size,
                    void **ud_out) {
  if (!ud_out || ud_size > SIZE_MAX / 2) return -EINVAL;
  return submit(s, recs, n, cb, NULL, ud_size, ud_out);
}

static int submit(sw_store_t *s, const sw_store_rec_t *recs, size_t n, sw_store_done_cb cb, void *ud,
                  size_t ud_size, void **ud_out) {
  if (!s || (n && !recs)) return -EINVAL;
  if (s->closing) return -ESHUTDOWN;
  /* One allocation per submission: job, the caller's state (ud_size),
   * record array, then the bytes. A run of records sharing the same
   * app/channel pointer shares one copy. */
  size_t ud_off = align_up(sizeof(sw_job_t), alignof(max_align_t));
  size_t head = ud_out ? align_up(ud_off + ud_size, alignof(sw_store_rec_t))
                       : align_up(sizeof(sw_job_t), alignof(sw_store_rec_t));
  if (n > (SIZE_MAX - head) / sizeof(sw_store_rec_t)) return -ENOMEM;
  size_t total = head + n * sizeof(sw_store_rec_t);
  for (size_t i = 0; i < n; i++) {
    const sw_store_rec_t *r = &recs[i];
    if (!r->app_id || !r->channel || (r->blob_len && !r->blob)) return -EINVAL;
    bool version = r->op == SW_STORE_VERSION || r->op == SW_STORE_APPEND || r->op == SW_STORE_ANNOTATION;
    if (!version && r->op != SW_STORE_INSERT) return -EINVAL;
    if (version && (r->vseq <= r->seq || (r->version_blob_len && !r->version_blob)))
      return -EINVAL;
    if (r->op == SW_STORE_APPEND && (!s->fold || r->blob_len)) return -EINVAL;
    size_t vlen = version ? r->version_blob_len : 0;
    if (r->blob_len > SIZE_MAX - vlen) return -ENOMEM;
    size_t add = r->blob_len + vlen;
    size_t fixed = add;
    if (i == 0 || r->app_id != recs[i - 1].app_id) add += strlen(r->app_id) + 1;
    if (i == 0 || r->channel != recs[i - 1].channel) add += strlen(r->channel) + 1;
    if (r->msg_id && !version) add += strlen(r->msg_id) + 1;
    if (add < fixed || add > SIZE_MAX - total) return -ENOMEM;
    total += add;
  }
  sw_job_t *j = malloc(total);
  if (!j) return -ENOMEM;
  memset(j, 0, sizeof *j);
  j->kind = JOB_SUBMIT;
  j->cb = cb;
  j->ud = ud;
  if (ud_out) {
    j->ud = *ud_out = (char *)j + ud_off;
    j->ud_inline = true;
  }
  j->n = n;
  j->recs = (sw_store_rec_t *)(void *)((char *)j + head);
  char *p = (char *)j + head + n * sizeof(sw_store_rec_t);
  for (size_t i = 0; i < n; i++) {
    const sw_store_rec_t *r = &recs[i];
    sw_store_rec_t *d = &j->recs[i];
    *d = *r;
    if (i > 0 && r->app_id == recs[i - 1].app_id) {
      d->app_id = j->recs[i - 1].app_id;
    } else {
      size_t l = strlen(r->app_id) + 1;
      d->app_id = memcpy(p, r->app_id, l);
      p += l;
    }
    if (i > 0 && r->channel == recs[i - 1].channel) {
      d->channel = j->recs[i - 1].channel;
    } else {
      size_t l = strlen(r->channel) + 1;
      d->channel = memcpy(p, r->channel, l);
      p += l;
    }
    /* Normalised for the backends: an INSERT carries vseq = seq and no
     * version; a VERSION carries no msg_id. */
    if (r->op != SW_STORE_APPEND) d->fold_hint = 0;
    if (r->op != SW_STORE_INSERT) {
      d->msg_id = NULL;
      d->expires_at = 0;
    } else {
      d->vseq = r->seq;
      d->version_blob = NULL;
      d->version_blob_len = 0;
    }
    if (d->msg_id) {
      size_t l = strlen(r->msg_id) + 1;
      d->msg_id = memcpy(p, r->msg_id, l);
      p += l;
    }
    if (r->blob_len) {
      d->blob = memcpy(p, r->blob, r->blob_len);
      p += r->blob_len;
    } else {
      d->blob = NULL;
    }
    if (d->version_blob_len) {
      d->version_blob = memcpy(p, r->version_blob, r->version_blob_len);
      p += r->version_blob_len;
    } else {
      d->version_blob = NULL;
    }
  }
  uv_mutex_lock(&s->mu);
  list_push(&s->queue, j);
  uv_cond_signal(&s->wake);
  uv_mutex_unlock(&s->mu);
  return 0;
}

/* Queues a job that the caller waits for (it lives on the caller's stack). */
static int run_sync(sw_store_t *s, sw_job_t *j) {
  if (s->closing) return -ESHUTDOWN;
  uv_mutex_lock(&s->mu);
  list_push(&s->queue, j);
  s->sync_waiting++;
  uv_cond_signal(&s->wake);
  while (!j->finished) uv_cond_wait(&s->sync_done, &s->mu);
  int rc = j->status;
  uv_mutex_unlock(&s->mu);
  return rc;
}

void store_prune(sw_store_t *s, int64_t now) {
  if (!s || s->closing) return;
  sw_job_t *j = calloc(1, sizeof *j);
  if (!j) return;
  j->kind = JOB_PRUNE;
  j->now = now;
  uv_mutex_lock(&s->mu);
  list_push(&s->queue, j);
  uv_cond_signal(&s->wake);
  uv_mutex_unlock(&s->mu);
}

int store_delete_app(sw_store_t *s, const char *app_id) {
  if (!s || !app_id) return -EINVAL;
  sw_job_t j = {.kind = JOB_DELETE_APP, .app_id = app_id};
  return run_sync(s, &j);
}

int store_kv_put(sw_store_t *s, const char *ns, const char *key, const char *value) {
  if (!s || !ns || !key) return -EINVAL;
  sw_job_t j = {.kind = JOB_KV_PUT, .ns = ns, .key = key, .value = value};
  return run_sync(s, &j);
}

int store_expiring_put(sw_store_t *s, const char *id, const char *value, int64_t expires, int64_t now,
                       size_t max_count, size_t max_bytes) {
  if (!s || !id || !value) return -EINVAL;
  sw_job_t j = {.kind = JOB_EXP_PUT,
                .key = id,
                .value = value,
                .expires = expires,
                .now = now,
                .max_count = max_count,
                .max_bytes = max_bytes};
  return run_sync(s, &j);
}

int store_kv_put_async(sw_store_t *s, const char *ns, const char *key, const char *value, sw_store_done_cb cb,
                       void *ud) {
  if (!s || !ns || !key) return -EINVAL;
  if (s->closing) return -ESHUTDOWN;
  size_t nl = strlen(ns) + 1, kl = strlen(key) + 1, vl = value ? strlen(value) + 1 : 0;
  sw_job_t *j = calloc(1, sizeof *j + nl + kl + vl);
  if (!j) return -ENOMEM;
  char *p = (char *)(j + 1);
  j->kind = JOB_KV_ASYNC;
  j->cb = cb;
  j->ud = ud;
  j->ns = memcpy(p, ns, nl);
  j->key = memcpy(p + nl, key, kl);
  j->value = value ? memcpy(p + nl + kl, value, vl) : NULL;
  uv_mutex_lock(&s->mu);
  list_push(&s->queue, j);
  uv_cond_signal(&s->wake);
  uv_mutex_unlock(&s->mu);
  return 0;
}

/* ------------------------------------------------------ Assistant Cloud */

/* The strings of an op, in one order, for sizing and copying. */
#define CLOUD_OP_STRINGS(o)                                                                  \
  &(o)->app_id, &(o)->workspace, &(o)->thread_id, &(o)->id, &(o)->external_id, &(o)->title, \
      &(o)->metadata, &(o)->parent_id, &(o)->parent_external_id, &(o)->format, &(o)->content, \
      &(o)->feedback_id, &(o)->feedback_type, &(o)->comment

static bool cloud_op_valid(const sw_cloud_op_t *o) {
  if (!o->app_id || !o->workspace || !o->thread_id) return false;
  switch (o->kind) {
  case SW_CLOUD_THREAD_CREATE:
    return strlen(o->thread_id) < SW_CLOUD_ID_MAX;
  case SW_CLOUD_THREAD_UPDATE:
  case SW_CLOUD_THREAD_DELETE:
    return true;
  case SW_CLOUD_MSG_CREATE:
    return o->id && o->format && o->content && strlen(o->id) < SW_CLOUD_ID_MAX;
  case SW_CLOUD_MSG_UPDATE:
    return o->id && o->content;
  case SW_CLOUD_MSG_DELETE:
    if (o->n_ids && !o->ids) return false;
    for (size_t i = 0; i < o->n_ids; i++)
      if (!o->ids[i]) return false;
    return true;
  case SW_CLOUD_FEEDBACK:
    return o->id && o->feedback_id && o->feedback_type;
  }
  return false;
}

int store_cloud_write(sw_store_t *s, const sw_cloud_op_t *op, sw_cloud_done_cb cb, void *ud) {
  if (!s || !op || !cloud_op_valid(op)) return -EINVAL;
  if (s->closing) return -ESHUTDOWN;
  const char *const *src[] = {CLOUD_OP_STRINGS(op)};
  size_t head = align_up(sizeof(cloud_job_t), alignof(char *));
  if (op->n_ids > (SIZE_MAX - head) / sizeof(char *)) return -ENOMEM;
  size_t total = head + op->n_ids * sizeof(char *);
  for (size_t i = 0; i < sizeof src / sizeof src[0]; i++) {
    size_t l = *src[i] ? strlen(*src[i]) + 1 : 0;
    if (l > SIZE_MAX - total) return -ENOMEM;
    total += l;
  }
  for (size_t i = 0; i < op->n_ids; i++) {
    size_t l = strlen(op->ids[i]) + 1;
    if (l > SIZE_MAX - total) return -ENOMEM;
    total += l;
  }
  cloud_job_t *cj = malloc(total);
  if (!cj) return -ENOMEM;
  memset(cj, 0, sizeof *cj);
  cj->job.kind = JOB_CLOUD;
  cj->job.ud = ud;
  cj->cb = cb;
  cj->op = *op;
  const char **dst[] = {CLOUD_OP_STRINGS(&cj->op)};
  const char **ids = (const char **)(void *)((char *)cj + head);
  char *p = (char *)(ids + op->n_ids);
  for (size_t i = 0; i < sizeof dst / sizeof dst[0]; i++) {
    if (!*src[i]) continue;
    size_t l = strlen(*src[i]) + 1;
    *dst[i] = memcpy(p, *src[i], l);
    p += l;
  }
  for (size_t i = 0; i < op->n_ids; i++) {
    size_t l = strlen(op->ids[i]) + 1;
    ids[i] = memcpy(p, op->ids[i], l);
    p += l;
  }
  cj->op.ids = op->n_ids ? ids : NULL;
  uv_mutex_lock(&s->mu);
  list_push(&s->queue, &cj->job);
  uv_cond_signal(&s->wake);
  uv_mutex_unlock(&s->mu);
  return 0;
}

static char *dup_or_null(const char *s, bool *oom) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) *oom = true;
  return d;
}

static void cloud_thread_clear(sw_cloud_thread_t *t) {
  free(t->id);
  free(t->external_id);
  free(t->title);
  free(t->metadata);
}

static void cloud_msg_clear(sw_cloud_msg_t *m) {
  free(m->id);
  free(m->parent_id);
  free(m->external_id);
  free(m->format);
  free(m->content);
}

int cloud_threads_push(sw_cloud_threads_t *l, const sw_cloud_thread_t *src) {
  sw_cloud_thread_t *v = realloc(l->v, (l->n + 1) * sizeof *v);
  if (!v) return -ENOMEM;
  l->v = v;
  bool oom = false;
  sw_cloud_thread_t t = *src;
  t.id = dup_or_null(src->id, &oom);
  t.external_id = dup_or_null(src->external_id, &oom);
  t.title = dup_or_null(src->title, &oom);
  t.metadata = dup_or_null(src->metadata, &oom);
  if (oom) {
    cloud_thread_clear(&t);
    return -ENOMEM;
  }
  l->v[l->n++] = t;
  return 0;
}

int cloud_msgs_push(sw_cloud_msgs_t *l, const sw_cloud_msg_t *src) {
  sw_cloud_msg_t *v = realloc(l->v, (l->n + 1) * sizeof *v);
  if (!v) return -ENOMEM;
  l->v = v;
  bool oom = false;
  sw_cloud_msg_t m = *src;
  m.id = dup_or_null(src->id, &oom);
  m.parent_id = dup_or_null(src->parent_id, &oom);
  m.external_id = dup_or_null(src->external_id, &oom);
  m.format = dup_or_null(src->format, &oom);
  m.content = dup_or_null(src->content, &oom);
  if (oom) {
    cloud_msg_clear(&m);
    return -ENOMEM;
  }
  l->v[l->n++] = m;
  return 0;
}

void store_cloud_threads_free(sw_cloud_threads_t *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n; i++) cloud_thread_clear(&t->v[i]);
  free(t->v);
  t->v = NULL;
  t->n = 0;
}

void store_cloud_msgs_free(sw_cloud_msgs_t *m) {
  if (!m) return;
  for (size_t i = 0; i < m->n; i++) cloud_msg_clear(&m->v[i]);
  free(m->v);
  m->v = NULL;
  m->n = 0;
}

int store_cloud_threads(sw_store_t *s, const sw_cloud_thread_q_t *q, sw_cloud_threads_t *out) {
  if (out) *out = (sw_cloud_threads_t){0};
  if (!s || !q || !out || !q->app_id || !q->workspace) return -EINVAL;
  if (s->closed) return -ESHUTDOWN;
  if (q->limit == 0) return 0;
  int rc = s->be->ops->cloud_threads(s->be, q, out);
  if (rc) store_cloud_threads_free(out);
  return rc;
}

int store_cloud_messages(sw_store_t *s, const sw_cloud_msg_q_t *q, sw_cloud_msgs_t *out) {
  if (out) *out = (sw_cloud_msgs_t){0};
  if (!s || !q || !out || !q->app_id || !q->workspace || !q->thread_id) return -EINVAL;
  if (s->closed) return -ESHUTDOWN;
  if (q->limit == 0) return 0;
  int rc = s->be->ops->cloud_messages(s->be, q, out);
  if (rc) store_cloud_msgs_free(out);
  return rc;
}

void store_close(sw_store_t *s) {
  if (!s || s->closing) return;
  s->closing = true;
  uv_mutex_lock(&s->mu);
  s->stop = true;
  s->hold = false;
  uv_cond_signal(&s->wake);
  uv_mutex_unlock(&s->mu);
  /* The thread drains the queue before it exits. */
  uv_thread_join(&s->thread);
  run_callbacks(s);
  s->be->ops->close(s->be);
  s->be = NULL;
  s->closed = true;
  uv_close((uv_handle_t *)&s->async, on_close);
}

/* ----------------------------------------------------------------- reads */

int store_history(sw_store_t *s, const sw_history_q_t *q, sw_store_rows_t *out) {
  if (out) {
    out->rows = NULL;
    out->n = 0;
  }
  if (!s || !q || !out || !q->app_id || !q->channel) return -EINVAL;
  if (s->closed) return -ESHUTDOWN;
  if (q->limit == 0) return 0;
  return s->be->ops->history(s->be, q, out);
}

int store_last_seq(sw_store_t *s, const char *app_id, const char *channel, int64_t *seq) {
  if (!s || !app_id || !channel || !seq) return -EINVAL;
  if (s->closed) return -ESHUTDOWN;
  return s->be->ops->last_seq(s->be, app_id, channel, seq);
}

int store_find_by_id(sw_store_t *s, const char *app_id, const char *channel, const char *msg_id,
                     sw_store_row_t *row) {
  if (!s || !app_id || !channel || !msg_id || !row) return -EINVAL;
  if (s->closed) return -ESHUTDOWN;
  return s->be->ops->find_by_id(s->be, app_id, channel, msg_id, row);
}

int store_get(sw_store_t *s, const char *app_id, const char *channel, int64_t seq,
              sw_store_row_t *row) {
  if (!s || !app_id || !channel || !row) return -EINVAL;
  if (s->closed) return -ESHUTDOWN;
  return s->be->ops->get(s->be, app_id, channel, seq, row);
}

static int read_events(sw_store_t *s, const char *app_id, const char *channel, int64_t seq, bool forwards,
                       size_t limit, int64_t after_vseq, int kind, sw_store_rows_t *out) {
  if (out) {
    out->rows = NULL;
    out->n = 0;
  }
  if (!s || !app_id || !channel || !out) return -EINVAL;
  if (s->closed) return -ESHUTDOWN;
  if (limit == 0) return 0;
  /* Exclusive bounds lo < vseq < hi; a negative after_vseq is no bound. */
  int64_t lo = INT64_MIN, hi = INT64_MAX;
  if (after_vseq >= 0) {
    if (forwards)
      lo = after_vseq;
    else
      hi = after_vseq;
  }
  return s->be->ops->versions(s->be, app_id, channel, seq, forwards, limit, lo, hi, kind, out);
}

int store_versions(sw_store_t *s, const char *app_id, const char *channel, int64_t seq,
                   bool forwards, size_t limit, int64_t after_vseq, sw_store_rows_t *out) {
  return read_events(s, app_id, channel, seq, forwards, limit, after_vseq, SW_EVENTS_VERSIONS, out);
}

int store_annotations(sw_store_t *s, const char *app_id, const char *channel, int64_t seq,
                      bool forwards, size_t limit, int64_t after_vseq, sw_store_rows_t *out) {
  return read_events(s, app_id, channel, seq, forwards, limit, after_vseq, SW_EVENTS_ANNOTATIONS, out);
}

int store_kv_list(sw_store_t *s, const char *ns,
                  void (*each)(void *ud, const char *key, const char *value), void *ud) {
  if (!s || !ns || !each) return -EINVAL;
  if (s->closed) return -ESHUTDOWN;
  sw_buf_t snap = {0};
  size_t count = 0;
  int rc = s->be->ops->kv_list(s->be, ns, &snap, &count);
  if (rc == 0) {
    const char *p = (const char *)snap.data;
    for (size_t i = 0; i < count; i++) {
      const char *k = p;
      const char *v = k + strlen(k) + 1;
      p = v + strlen(v) + 1;
      each(ud, k, v);
    }
  }
  buf_free(&snap);
  return rc;
}

int store_expiring_get(sw_store_t *s, const char *id, char **value, int64_t *expires) {
  if (value) *value = NULL;
  if (!s || !id || !value || !expires) return -EINVAL;
  if (s->closed) return -ESHUTDOWN;
  return s->be->ops->exp_get(s->be, id, value, expires);
}

void store_stats(sw_store_t *s, sw_store_stats_t *st) {
  uv_mutex_lock(&s->mu);
  *st = s->stats;
  uv_mutex_unlock(&s->mu);
}

void store_debug_hold(sw_store_t *s, bool hold) {
  uv_mutex_lock(&s->mu);
  s->hold = hold && !s->stop;
  uv_cond_signal(&s->wake);
  uv_mutex_unlock(&s->mu);
}
